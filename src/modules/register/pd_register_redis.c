/*
 * pd_register_redis.c: the cluster register.  Every node writes its
 * connections to Redis, uids spread over the listed servers by a hash all
 * nodes compute alike:
 *
 *   pd:u:{uid}          hash, field "node/boot/pid/conn" (hex),
 *                       value "wslot\tsince\tdevice\tapp,app"
 *   pd:n:{node}/{pid}   "boot": a worker is alive, refreshed by it every
 *                       node_ttl / 3, expiring after node_ttl (on the
 *                       first server)
 *
 * An entry counts only while its worker's key holds its boot: a dead
 * worker's or node's users vanish within node_ttl, a restarted node's
 * old ones at once (another boot).  Fields whose worker is surely gone
 * (no key, or another boot) are deleted by the lookups that meet them.
 * The node's own memory zone stays authoritative for its connections and
 * per-IP counts, and answers lookups (this node's users only) while
 * Redis is unreachable.
 */

#include "pd_core.h"
#include "pd_register.h"

#define PD_RR_NODES       64      /* other nodes' liveness, cached */
#define PD_RR_NODE_FRESH  1000    /* ms a cached liveness is trusted */
#define PD_RR_VALUE_MAX   (16 + 24 + PD_DEVICE_MAX                      \
                           + PD_APPS_MAX * (PD_APP_MAX + 1) + 8)

typedef struct {
    char         name[48];        /* "node/pid" */
    char         boot[20];        /* "" when the key is gone */
    pd_msec_t    fetched;
} pd_rr_node_t;

typedef struct pd_rr_lookup_s  pd_rr_lookup_t;

struct pd_rr_lookup_s {
    pd_register_lookup_pt   handler;
    void                   *data;
    pd_redis_t             *shard;
    pd_uint_t               n;
    pd_reg_info_t          *info;    /* one, or more allocated */
    char                  (*field)[PD_RR_FIELD_MAX];
    pd_rr_lookup_t         *next;    /* in the spare list */
    u_char                  uid[PD_UID_MAX];
    size_t                  uid_len;
    pd_uint_t               nasked;
    pd_reg_info_t           info1;   /* a uid of one connection: most */
    char                    field1[1][PD_RR_FIELD_MAX];
    char                    asked[PD_RR_NODES][48];  /* liveness fetched */
};

/*
 * A lookup's record is 4 KB, most of it the names of the nodes whose
 * liveness it may ask for, and every push of the cluster makes one per
 * uid: kept for reuse (at most PD_RR_SPARE), it costs neither malloc's
 * slow path nor zeroing on each.  Only what a lookup reads before it
 * writes is set (pd_rr_lookup_get).
 */
#define PD_RR_SPARE  64

static pd_rr_lookup_t      *pd_rr_spare;
static pd_uint_t            pd_rr_nspare;

static pd_register_conf_t  *pd_rr_conf;
pd_redis_t                **pd_register_shards;
pd_uint_t                   pd_register_nshards;
static pd_register_connected_pt  pd_rr_subscribers[PD_REGISTER_SUBSCRIBERS];
static pd_uint_t                 pd_rr_nsubscribers;
static pd_timer_t           pd_rr_refresh_timer;
static pd_rr_node_t         pd_rr_nodes[PD_RR_NODES];
static char                 pd_rr_node[PD_NODE_ID_SIZE];
static char                 pd_rr_boot[17];

static void pd_rr_refresh(pd_timer_t *t);
static void pd_rr_lookup_finish(pd_rr_lookup_t *lk);

static pd_redis_t *
pd_rr_shard(const u_char *uid, size_t len)
{
    uint32_t  n = (uint32_t) pd_register_nshards;

    return pd_register_shards[pd_redis_shard(uid, len, n)];
}

/* fire and forget: a failed write is mended by the next resync */
static void
pd_rr_ignore(pd_redis_t *r, redisReply *reply, void *data)
{
    (void) r;
    (void) data;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        pd_log_error(PD_LOG_WARN, pd_log_root, 0, "register: redis: %.*s",
                     (int) reply->len, reply->str);
    }
}

static pd_int_t
pd_rr_send(pd_redis_t *r, int argc, const char **argv, const size_t *len)
{
    return pd_redis_command(r, pd_rr_ignore, NULL, argc, argv, len);
}

static size_t
pd_rr_key(char *buf, size_t size, const u_char *uid, size_t len)
{
    return pd_key_cat(buf, size, "pd:u:", uid, len);
}

size_t
pd_rr_field(char *buf, size_t size, pid_t pid, uint64_t conn)
{
    return (size_t) snprintf(buf, size, "%s/%s/%x/%lx", pd_rr_node,
                             pd_rr_boot, (unsigned) pid,
                             (unsigned long) conn);
}

size_t
pd_rr_value(char *buf, size_t size, const pd_reg_info_t *info)
{
    size_t     n;
    uint32_t   i;

    /* "L" before the worker slot: the connection lingers */
    n = (size_t) snprintf(buf, size, "%s%x\t%lu\t%s\t",
                          info->lingering ? "L" : "", (unsigned) info->wslot,
                          (unsigned long) info->since,
                          (const char *) info->device);

    for (i = 0; i < info->napps && n < size; i++) {
        n += (size_t) snprintf(buf + n, size - n, "%s%s", i ? "," : "",
                               (const char *) info->apps[i]);
    }

    return pd_min(n, size - 1);
}

void
pd_register_redis_announce(const pd_reg_info_t *info)
{
    char         key[8 + PD_UID_MAX], field[PD_RR_FIELD_MAX];
    char         value[PD_RR_VALUE_MAX];
    const char  *argv[4];
    size_t       len[4];
    size_t       ulen;

    ulen = strlen((const char *) info->uid);

    argv[0] = "HSET";
    len[0] = 4;
    argv[1] = key;
    len[1] = pd_rr_key(key, sizeof(key), info->uid, ulen);
    argv[2] = field;
    len[2] = pd_rr_field(field, sizeof(field), info->pid, info->conn);
    argv[3] = value;
    len[3] = pd_rr_value(value, sizeof(value), info);

    (void) pd_rr_send(pd_rr_shard(info->uid, ulen), 4, argv, len);
}

static pd_int_t
pd_rr_add(const pd_reg_info_t *info)
{
    pd_int_t  rv;

    /* this node's own view first: it decides, Redis is told */
    rv = pd_register_memory_backend.add(info);

    if (rv == PD_OK) {
        pd_register_redis_announce(info);
    }

    return rv;
}

static pd_int_t
pd_rr_remove(const u_char *uid, size_t len, uint64_t conn)
{
    char         key[8 + PD_UID_MAX], field[PD_RR_FIELD_MAX];
    const char  *argv[3];
    size_t       alen[3];

    argv[0] = "HDEL";
    alen[0] = 4;
    argv[1] = key;
    alen[1] = pd_rr_key(key, sizeof(key), uid, len);
    argv[2] = field;
    alen[2] = pd_rr_field(field, sizeof(field), pd_pid, conn);

    (void) pd_rr_send(pd_rr_shard(uid, len), 3, argv, alen);

    return pd_register_memory_backend.remove(uid, len, conn);
}

/*
 * This worker's entry conn of uid as the node's zone holds it after a
 * change there: the whole value Redis is told (device, since, apps,
 * lingering).  0 when it is not there.
 */
static pd_uint_t
pd_rr_own_entry(const u_char *uid, size_t len, uint64_t conn,
    pd_reg_info_t *own)
{
    pd_reg_info_t  info[PD_REGISTER_LOOKUP_MAX];
    pd_uint_t      n, i;

    n = pd_reg_lookup(pd_register_zone, uid, len, info,
                      PD_REGISTER_LOOKUP_MAX);

    for (i = 0; i < pd_min(n, PD_REGISTER_LOOKUP_MAX); i++) {
        if (info[i].pid == (int32_t) pd_pid && info[i].conn == conn) {
            *own = info[i];
            return 1;
        }
    }

    return 0;
}

static pd_int_t
pd_rr_set_apps(const u_char *uid, size_t len, uint64_t conn,
    u_char apps[][PD_APP_MAX + 1], uint32_t napps)
{
    pd_reg_info_t  own;
    pd_int_t       rv;

    rv = pd_register_memory_backend.set_apps(uid, len, conn, apps, napps);
    if (rv != PD_OK) {
        return rv;
    }

    if (pd_rr_own_entry(uid, len, conn, &own)) {
        pd_register_redis_announce(&own);
    }

    return PD_OK;
}

static pd_int_t
pd_rr_set_lingering(const u_char *uid, size_t len, uint64_t conn,
    pd_uint_t on)
{
    pd_reg_info_t  own;
    pd_int_t       rv;

    rv = pd_register_memory_backend.set_lingering(uid, len, conn, on);
    if (rv != PD_OK) {
        return rv;
    }

    if (pd_rr_own_entry(uid, len, conn, &own)) {
        pd_register_redis_announce(&own);
    }

    return PD_OK;
}

/*
 * A connection handed over by worker pid (a reload): the node's zone
 * moves the entry at once; Redis gets the new field and loses the old
 * one in one transaction, so another node's lookup never sees both.
 */
static pd_int_t
pd_rr_move(const u_char *uid, size_t len, pid_t pid, uint64_t old_conn,
    uint64_t conn, uint32_t sid_tag)
{
    pd_reg_info_t  own;
    pd_redis_t    *r;
    char           key[8 + PD_UID_MAX], field[PD_RR_FIELD_MAX];
    const char    *argv[3];
    size_t         alen[3];
    pd_int_t       rv;

    /* the tag stays in the zone: a resume looks only there */
    rv = pd_register_memory_backend.move(uid, len, pid, old_conn, conn,
                                         sid_tag);
    if (rv != PD_OK) {
        return rv;
    }

    if (!pd_rr_own_entry(uid, len, conn, &own)) {
        return PD_OK;
    }

    r = pd_rr_shard(uid, len);

    argv[0] = "MULTI";
    alen[0] = 5;
    (void) pd_rr_send(r, 1, argv, alen);

    pd_register_redis_announce(&own);

    argv[0] = "HDEL";
    alen[0] = 4;
    argv[1] = key;
    alen[1] = pd_rr_key(key, sizeof(key), uid, len);
    argv[2] = field;
    alen[2] = pd_rr_field(field, sizeof(field), pid, old_conn);
    (void) pd_rr_send(r, 3, argv, alen);

    argv[0] = "EXEC";
    alen[0] = 4;
    (void) pd_rr_send(r, 1, argv, alen);

    return PD_OK;
}

/* the local zone's answer, while Redis is away */
static void
pd_rr_local_lookup(const u_char *uid, size_t len,
    pd_register_lookup_pt handler, void *data)
{
    (void) pd_register_memory_backend.lookup(uid, len, handler, data);
}

static pd_rr_node_t *
pd_rr_node_get(const char *name, size_t len)
{
    pd_uint_t  i, oldest;

    oldest = 0;

    for (i = 0; i < PD_RR_NODES; i++) {
        if (strlen(pd_rr_nodes[i].name) == len
            && memcmp(pd_rr_nodes[i].name, name, len) == 0)
        {
            return &pd_rr_nodes[i];
        }

        if (pd_rr_nodes[i].fetched < pd_rr_nodes[oldest].fetched) {
            oldest = i;
        }
    }

    /* the least recently fetched gives its place */
    pd_memzero(&pd_rr_nodes[oldest], sizeof(pd_rr_node_t));
    pd_memcpy(pd_rr_nodes[oldest].name, name,
              pd_min(len, sizeof(pd_rr_nodes[oldest].name) - 1));

    return &pd_rr_nodes[oldest];
}

static pd_int_t
pd_rr_self_alive(pid_t pid)
{
    pd_int_t  i;

    if (pid == pd_pid) {
        return 1;
    }

    for (i = 0; i < pd_last_process; i++) {
        if (pd_processes[i].pid == pid) {
            return 1;
        }
    }

    return 0;
}

/* splits "node/boot/pid/conn" */
pd_int_t
pd_rr_parse_field(const char *f, size_t len, pd_reg_info_t *info,
    const char **boot, size_t *boot_len, pid_t *pid)
{
    const char  *s1, *s2, *s3, *last = f + len;
    char         tmp[24], *end;
    size_t       n;
    long         v;

    s1 = memchr(f, '/', len);
    s2 = s1 ? memchr(s1 + 1, '/', (size_t) (last - s1 - 1)) : NULL;
    s3 = s2 ? memchr(s2 + 1, '/', (size_t) (last - s2 - 1)) : NULL;

    if (s3 == NULL || s1 - f == 0 || s1 - f > 32) {
        return PD_ERROR;
    }

    pd_memcpy(info->node, f, (size_t) (s1 - f));
    info->node[s1 - f] = '\0';

    *boot = s1 + 1;
    *boot_len = (size_t) (s2 - s1 - 1);

    n = (size_t) (s3 - s2 - 1);
    if (n == 0 || n >= sizeof(tmp)) {
        return PD_ERROR;
    }
    pd_memcpy(tmp, s2 + 1, n);
    tmp[n] = '\0';
    v = strtol(tmp, &end, 16);
    if (*end != '\0' || v <= 0 || v > INT32_MAX) {
        return PD_ERROR;
    }
    *pid = (pid_t) v;
    info->pid = (int32_t) v;

    n = (size_t) (last - s3 - 1);
    if (n == 0 || n >= sizeof(tmp)) {
        return PD_ERROR;
    }
    pd_memcpy(tmp, s3 + 1, n);
    tmp[n] = '\0';
    info->conn = strtoull(tmp, &end, 16);
    if (*end != '\0') {
        return PD_ERROR;
    }

    return PD_OK;
}

/* splits "wslot\tsince\tdevice\tapp,app" */
pd_int_t
pd_rr_parse_value(const char *v, size_t len, pd_reg_info_t *info)
{
    char         buf[PD_RR_VALUE_MAX], *p, *t, *app;
    size_t       n;

    if (len >= sizeof(buf)) {
        return PD_ERROR;
    }

    pd_memcpy(buf, v, len);
    buf[len] = '\0';

    p = buf;
    t = strsep(&p, "\t");
    info->sid_tag = 0;      /* the node's zone alone keeps tags */
    info->lingering = (*t == 'L');
    info->wslot = (int32_t) strtol(t + info->lingering, NULL, 16);
    t = p ? strsep(&p, "\t") : NULL;
    if (t == NULL) {
        return PD_ERROR;
    }
    info->since = strtoull(t, NULL, 10);
    t = p ? strsep(&p, "\t") : NULL;
    if (t == NULL || strlen(t) > PD_DEVICE_MAX) {
        return PD_ERROR;
    }
    pd_memcpy(info->device, t, strlen(t) + 1);

    info->napps = 0;

    while (p != NULL && *p && info->napps < PD_APPS_MAX) {
        app = strsep(&p, ",");
        n = strlen(app);
        if (n == 0 || n > PD_APP_MAX) {
            continue;
        }
        pd_memcpy(info->apps[info->napps++], app, n + 1);
    }

    return PD_OK;
}

pd_uint_t
pd_rr_parse_entries(const redisReply *reply, pd_reg_info_t *info,
    char (*field)[PD_RR_FIELD_MAX], pd_uint_t max)
{
    const redisReply  *f, *v;
    pd_uint_t          i, n;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return 0;
    }

    n = 0;

    for (i = 0; i < reply->elements / 2 && n < max; i++) {
        f = reply->element[2 * i];
        v = reply->element[2 * i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING
            || f->len >= PD_RR_FIELD_MAX
            || pd_rr_parse_value(v->str, v->len, &info[n]) != PD_OK)
        {
            continue;
        }

        pd_memcpy(field[n], f->str, f->len);
        field[n][f->len] = '\0';
        n++;
    }

    return n;
}

/* deletes the fields of entries that no longer count */
static void
pd_rr_prune(pd_rr_lookup_t *lk, pd_uint_t i)
{
    char         key[8 + PD_UID_MAX];
    const char  *argv[3];
    size_t       len[3];

    argv[0] = "HDEL";
    len[0] = 4;
    argv[1] = key;
    len[1] = pd_rr_key(key, sizeof(key), lk->uid, lk->uid_len);
    argv[2] = lk->field[i];
    len[2] = strlen(lk->field[i]);

    (void) pd_rr_send(lk->shard, 3, argv, len);
}

static pd_rr_lookup_t *
pd_rr_lookup_get(void)
{
    pd_rr_lookup_t  *lk;

    lk = pd_rr_spare;

    if (lk != NULL) {
        pd_rr_spare = lk->next;
        pd_rr_nspare--;

    } else {
        lk = pd_alloc(sizeof(pd_rr_lookup_t), pd_log_root);
        if (lk == NULL) {
            return NULL;
        }
    }

    lk->n = 0;
    lk->info = NULL;
    lk->field = NULL;
    lk->nasked = 0;

    return lk;
}

static void
pd_rr_lookup_free(pd_rr_lookup_t *lk)
{
    if (lk->info != &lk->info1) {
        pd_free(lk->info);
        pd_free(lk->field);
    }

    if (pd_rr_nspare == PD_RR_SPARE) {
        pd_free(lk);
        return;
    }

    lk->next = pd_rr_spare;
    pd_rr_spare = lk;
    pd_rr_nspare++;
}

static void
pd_rr_lookups_spare_free(void)
{
    pd_rr_lookup_t  *lk;

    while (pd_rr_spare != NULL) {
        lk = pd_rr_spare;
        pd_rr_spare = lk->next;
        pd_free(lk);
    }

    pd_rr_nspare = 0;
}

/* every entry's node is known: keep the live ones, answer */
static void
pd_rr_lookup_finish(pd_rr_lookup_t *lk)
{
    pd_rr_node_t   *nd;
    pd_reg_info_t  *in;
    const char     *boot;
    size_t          boot_len;
    pid_t           pid;
    pd_uint_t       i, k;
    pd_int_t        alive, gone;
    char            name[48];
    size_t          n;

    k = 0;

    for (i = 0; i < lk->n; i++) {
        in = &lk->info[i];

        if (pd_rr_parse_field(lk->field[i], strlen(lk->field[i]), in, &boot,
                              &boot_len, &pid) != PD_OK)
        {
            pd_rr_prune(lk, i);
            continue;
        }

        if (strcmp((char *) in->node, pd_rr_node) == 0) {
            /* this node: its own process table knows its workers; an
             * entry of a sibling not seen yet is hidden, not deleted */
            gone = boot_len != strlen(pd_rr_boot)
                   || memcmp(boot, pd_rr_boot, boot_len) != 0;
            alive = !gone && pd_rr_self_alive(pid);

        } else {
            /* field "node/boot/pid/...": "node/pid" names its worker */
            n = (size_t) snprintf(name, sizeof(name), "%s/%x",
                                  (char *) in->node, (unsigned) pid);
            nd = pd_rr_node_get(name, n);
            alive = nd->fetched != 0 && strlen(nd->boot) == boot_len
                    && memcmp(nd->boot, boot, boot_len) == 0;
            gone = nd->fetched != 0 && !alive;
        }

        if (!alive) {
            if (gone) {
                pd_rr_prune(lk, i);
            }
            continue;
        }

        pd_memcpy(in->uid, lk->uid, lk->uid_len);
        in->uid[lk->uid_len] = '\0';

        if (k != i) {
            lk->info[k] = *in;
        }
        k++;
    }

    lk->handler(lk->data, PD_OK, lk->info, k);
    pd_rr_lookup_free(lk);
}

static void
pd_rr_nodes_reply(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_rr_lookup_t  *lk = data;
    pd_rr_node_t    *nd;
    redisReply      *e;
    size_t           i, len;

    (void) r;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != lk->nasked)
    {
        /* Redis went away mid-lookup: this node's view will do */
        pd_rr_local_lookup(lk->uid, lk->uid_len, lk->handler, lk->data);
        pd_rr_lookup_free(lk);
        return;
    }

    /* in the order asked; a missing key is a worker that is gone */
    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];
        nd = pd_rr_node_get(lk->asked[i], strlen(lk->asked[i]));

        /* a nil (no key: the worker is gone) has no string at all */
        len = (e->type == REDIS_REPLY_STRING) ? e->len : 0;
        len = pd_min(len, sizeof(nd->boot) - 1);

        if (len) {
            pd_memcpy(nd->boot, e->str, len);
        }

        nd->boot[len] = '\0';
        nd->fetched = pd_current_msec;
    }

    pd_rr_lookup_finish(lk);
}

/* asks for the node's liveness in this lookup, unless fresh or asked */
static void
pd_rr_ask_node(pd_rr_lookup_t *lk, const char *name, size_t len)
{
    pd_rr_node_t  *nd;
    pd_uint_t      i;

    nd = pd_rr_node_get(name, len);

    if (nd->fetched != 0 && pd_current_msec - nd->fetched < PD_RR_NODE_FRESH)
    {
        return;
    }

    for (i = 0; i < lk->nasked; i++) {
        if (strlen(lk->asked[i]) == len
            && memcmp(lk->asked[i], name, len) == 0)
        {
            return;
        }
    }

    if (lk->nasked < PD_RR_NODES && len < sizeof(lk->asked[0])) {
        pd_memcpy(lk->asked[lk->nasked], name, len);
        lk->asked[lk->nasked][len] = '\0';
        lk->nasked++;
    }
}

static void
pd_rr_entries_reply(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_rr_lookup_t  *lk = data;
    pd_reg_info_t    tmp;
    const char      *argv[1 + PD_RR_NODES], *slash, *boot;
    size_t           alen[1 + PD_RR_NODES], boot_len, len;
    char             keys[PD_RR_NODES][56], name[48], *nl;
    pd_uint_t        i, n;
    pid_t            pid;

    (void) r;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        pd_rr_local_lookup(lk->uid, lk->uid_len, lk->handler, lk->data);
        pd_rr_lookup_free(lk);
        return;
    }

    n = pd_min(reply->elements / 2, PD_REGISTER_LOOKUP_MAX);

    if (n <= 1) {
        pd_memzero(&lk->info1, sizeof(pd_reg_info_t));
        lk->info = &lk->info1;
        lk->field = lk->field1;

    } else {
        lk->info = pd_calloc(sizeof(pd_reg_info_t) * n, pd_log_root);
        lk->field = pd_calloc(PD_RR_FIELD_MAX * n, pd_log_root);
    }

    if (lk->info == NULL || lk->field == NULL) {
        lk->handler(lk->data, PD_ERROR, NULL, 0);
        pd_rr_lookup_free(lk);
        return;
    }

    lk->n = pd_rr_parse_entries(reply, lk->info, lk->field, n);

    /* the other nodes' workers named: their liveness is asked next */
    for (i = 0; i < lk->n; i++) {
        len = strlen(lk->field[i]);
        slash = memchr(lk->field[i], '/', len);

        if (slash != NULL
            && ((size_t) (slash - lk->field[i]) != strlen(pd_rr_node)
                || memcmp(lk->field[i], pd_rr_node, strlen(pd_rr_node)) != 0)
            && pd_rr_parse_field(lk->field[i], len, &tmp, &boot, &boot_len,
                                 &pid) == PD_OK)
        {
            /* "node/pid", the pid in hex: per entry of another node,
             * so not through printf (the node's name is under 33) */
            nl = (char *) pd_cpymem(name, tmp.node,
                                    strlen((char *) tmp.node));
            *nl++ = '/';
            nl = (char *) pd_hex64((u_char *) nl, (uint64_t) (unsigned) pid);
            pd_rr_ask_node(lk, name, (size_t) (nl - name));
        }
    }

    if (lk->nasked == 0) {
        pd_rr_lookup_finish(lk);
        return;
    }

    argv[0] = "MGET";
    alen[0] = 4;

    for (i = 0; i < lk->nasked; i++) {
        (void) snprintf(keys[i], sizeof(keys[i]), "pd:n:%s", lk->asked[i]);
        argv[1 + i] = keys[i];
        alen[1 + i] = strlen(keys[i]);
    }

    if (pd_redis_command(pd_register_shards[0], pd_rr_nodes_reply, lk,
                         (int) (1 + lk->nasked), argv, alen) != PD_OK)
    {
        pd_rr_lookup_finish(lk);
    }
}

static pd_int_t
pd_rr_lookup(const u_char *uid, size_t len, pd_register_lookup_pt handler,
    void *data)
{
    pd_rr_lookup_t  *lk;
    pd_redis_t      *shard;
    char             key[8 + PD_UID_MAX];
    const char      *argv[2];
    size_t           alen[2];

    shard = pd_rr_shard(uid, len);

    if (!pd_redis_connected(shard) || len > PD_UID_MAX) {
        pd_rr_local_lookup(uid, len, handler, data);
        return PD_OK;
    }

    lk = pd_rr_lookup_get();
    if (lk == NULL) {
        return PD_ERROR;
    }

    lk->handler = handler;
    lk->data = data;
    lk->shard = shard;
    lk->uid_len = len;
    pd_memcpy(lk->uid, uid, len);

    argv[0] = "HGETALL";
    alen[0] = 7;
    argv[1] = key;
    alen[1] = pd_rr_key(key, sizeof(key), uid, len);

    if (pd_redis_command(shard, pd_rr_entries_reply, lk, 2, argv, alen)
        != PD_OK)
    {
        pd_rr_lookup_free(lk);
        pd_rr_local_lookup(uid, len, handler, data);
    }

    return PD_OK;
}

static pd_int_t
pd_rr_ip_acquire(const struct sockaddr *sa, uint32_t limit)
{
    return pd_register_memory_backend.ip_acquire(sa, limit);
}

static void
pd_rr_ip_release(const struct sockaddr *sa)
{
    pd_register_memory_backend.ip_release(sa);
}

static pd_uint_t
pd_rr_purge(pid_t pid)
{
    return pd_register_memory_backend.purge(pid);
}

static pd_uint_t
pd_rr_count(void)
{
    return pd_register_memory_backend.count();
}

/* this worker is alive, in this run of the node */
static void
pd_rr_refresh(pd_timer_t *t)
{
    char         key[64], ttl[24];
    const char  *argv[5];
    size_t       len[5];

    argv[0] = "SET";
    len[0] = 3;
    argv[1] = key;
    len[1] = (size_t) snprintf(key, sizeof(key), "pd:n:%s/%x", pd_rr_node,
                               (unsigned) pd_pid);
    argv[2] = pd_rr_boot;
    len[2] = strlen(pd_rr_boot);
    argv[3] = "PX";
    len[3] = 2;
    argv[4] = ttl;
    len[4] = (size_t) snprintf(ttl, sizeof(ttl), "%lu",
                               (unsigned long) pd_rr_conf->node_ttl);

    (void) pd_rr_send(pd_register_shards[0], 5, argv, len);

    (void) pd_timer_add(&pd_timers, t, pd_current_msec,
                        pd_rr_conf->node_ttl / 3);
}

/* a (re)connected server may have lost everything: tell it again */
static void
pd_rr_connected(pd_redis_t *r, void *data)
{
    pd_uint_t  i;

    (void) data;

    if (r == pd_register_shards[0]) {
        pd_rr_refresh(&pd_rr_refresh_timer);
    }

    for (i = 0; i < pd_rr_nsubscribers; i++) {
        pd_rr_subscribers[i](r);
    }
}

pd_int_t
pd_register_on_connect(pd_register_connected_pt handler)
{
    pd_uint_t  i;

    for (i = 0; i < pd_rr_nsubscribers; i++) {
        if (pd_rr_subscribers[i] == handler) {
            return PD_OK;
        }
    }

    if (pd_rr_nsubscribers == PD_REGISTER_SUBSCRIBERS) {
        return PD_ERROR;
    }

    pd_rr_subscribers[pd_rr_nsubscribers++] = handler;
    return PD_OK;
}

pd_int_t
pd_register_redis_auth(pd_redis_t *r, pd_register_conf_t *rcf)
{
    if (rcf->redis_password.data == NULL) {
        return PD_OK;
    }

    return pd_redis_set_auth(r, (char *) rcf->redis_user.data,
                             (char *) rcf->redis_password.data);
}

pd_int_t
pd_register_redis_init_process(pd_cycle_t *cycle, pd_register_conf_t *rcf)
{
    pd_core_conf_t      *ccf;
    pd_register_addr_t  *a;
    pd_uint_t            i;

    ccf = pd_get_conf(cycle, pd_core_module);

    pd_rr_conf = rcf;
    (void) snprintf(pd_rr_node, sizeof(pd_rr_node), "%.*s",
                    (int) ccf->node_id.len, ccf->node_id.data);
    (void) snprintf(pd_rr_boot, sizeof(pd_rr_boot), "%lx",
                    (unsigned long) pd_stats->boot);

    a = rcf->shards->elts;
    pd_register_nshards = rcf->shards->nelts;
    pd_register_shards = pd_calloc(sizeof(pd_redis_t *) * pd_register_nshards,
                             cycle->log);
    if (pd_register_shards == NULL) {
        return PD_ERROR;
    }

    for (i = 0; i < pd_register_nshards; i++) {
        pd_register_shards[i] = pd_redis_create(a[i].host, a[i].port,
                                                rcf->timeout, cycle->log);
        if (pd_register_shards[i] == NULL
            || pd_register_redis_auth(pd_register_shards[i], rcf) != PD_OK)
        {
            return PD_ERROR;
        }

        pd_redis_set_connect_handler(pd_register_shards[i], pd_rr_connected,
                                     NULL);

        /* not connected yet is fine: it keeps trying, and the node runs
         * on its own view meanwhile */
        (void) pd_redis_connect(pd_register_shards[i]);
    }

    /* the cluster's keys live on these: the saver's too */
    if (pd_redis_group_set(PD_REGISTER_REDIS_GROUP, pd_register_shards,
                           pd_register_nshards)
        != PD_OK)
    {
        return PD_ERROR;
    }

    pd_timer_init(&pd_rr_refresh_timer, pd_rr_refresh);
    (void) pd_timer_add(&pd_timers, &pd_rr_refresh_timer, pd_current_msec,
                        rcf->node_ttl / 3);

    return pd_register_route_init(cycle, rcf, pd_register_shards[0]);
}

void
pd_register_redis_exit_process(pd_cycle_t *cycle)
{
    pd_uint_t  i;

    (void) cycle;

    pd_register_route_exit();
    (void) pd_redis_group_set(PD_REGISTER_REDIS_GROUP, NULL, 0);

    for (i = 0; i < pd_register_nshards; i++) {
        pd_redis_destroy(pd_register_shards[i]);
    }

    pd_free(pd_register_shards);
    pd_register_shards = NULL;
    pd_register_nshards = 0;

    /* the links' callbacks have run: no lookup is under way */
    pd_rr_lookups_spare_free();
}

/*
 * A connect's announcement (HSET) goes without waiting: a PING behind it
 * on the uid's shard link is answered once the server has run it, so
 * from then on every node's lookup finds the connection.
 */
typedef struct {
    pd_register_done_pt   done;
    void                 *data;
} pd_rr_barrier_t;

static void
pd_rr_barrier_reply(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_rr_barrier_t  *b = data;

    (void) r;
    (void) reply;

    /* an error or a lost link ends the wait all the same: the fetch
     * goes, and finds what was stored */
    b->done(b->data);
    pd_free(b);
}

static pd_int_t
pd_rr_barrier(const u_char *uid, size_t len, pd_register_done_pt done,
    void *data)
{
    pd_rr_barrier_t  *b;
    const char       *argv[1];
    size_t            alen[1];

    b = pd_alloc(sizeof(pd_rr_barrier_t), pd_cycle->log);
    if (b == NULL) {
        return PD_DECLINED;
    }

    b->done = done;
    b->data = data;

    argv[0] = "PING";
    alen[0] = 4;

    if (pd_redis_command(pd_rr_shard(uid, len), pd_rr_barrier_reply, b, 1,
                         argv, alen)
        != PD_OK)
    {
        pd_free(b);
        return PD_DECLINED;
    }

    return PD_OK;
}


pd_register_backend_t  pd_register_redis_backend = {
    "redis",
    pd_rr_add,
    pd_rr_remove,
    pd_rr_set_apps,
    pd_rr_set_lingering,
    pd_rr_move,
    pd_rr_lookup,
    pd_rr_ip_acquire,
    pd_rr_ip_release,
    pd_rr_purge,
    pd_rr_count,
    pd_rr_barrier
};
