/*
 * pd_dispatcher_cluster.c: the nodes of a cluster, in Redis (the
 * register's first server, where the workers' liveness keys are):
 *
 *   pd:d:{node}/{pid}   what the node publishes (pd_dispatch_node_text),
 *                       set by each of its workers every node_ttl / 3,
 *                       expiring after node_ttl, deleted when the worker
 *                       retires
 *   pd:ds               set of the "{node}/{pid}" above
 *
 * A node is live while one of its workers' keys is there: a dead node
 * leaves the answers within node_ttl, a stopped one (every worker
 * retired) at once, and on a reload the new workers publish it before
 * or while the old ones leave.  A dispatcher reads the set and the keys
 * every PD_DISPATCH_READ ms into a table of its own, which the answers
 * read; while Redis is unreachable the last table stays.
 */

#include "pd_core.h"
#include "pd_register.h"
#include "pd_dispatcher.h"

#define PD_DISPATCH_READ         1000     /* ms between reads */
#define PD_DISPATCH_MEMBERS_MAX  1024     /* workers of all nodes read */
#define PD_DISPATCH_VALUE_MAX    1024

/* KEYS: a worker's key, the set; ARGV: the member.  Only a key still
 * gone is taken out: its worker may have published it again since */
static const char  pd_dispatch_forget_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then "
    "  return redis.call('SREM', KEYS[2], ARGV[1]) "
    "end "
    "return 0";

static pd_dispatch_conf_t   *pd_dc_conf;
static pd_msec_t             pd_dc_ttl;
static pd_redis_t          **pd_dc_shards;
static pd_uint_t             pd_dc_nshards;
static pd_timer_t            pd_dc_publish_timer;
static pd_timer_t            pd_dc_read_timer;
static pd_uint_t             pd_dc_reading;
static pd_uint_t             pd_dc_retired;
static char                  pd_dc_member[PD_NODE_ID_SIZE + 16];
static u_char                pd_dc_value[PD_DISPATCH_VALUE_MAX];
static size_t                pd_dc_value_len;

/* the live nodes last read (answering dispatchers only) */
static pd_dispatch_node_t   *pd_dc_nodes;
static pd_uint_t             pd_dc_nnodes;

static void pd_dc_read(pd_timer_t *t);

pd_dispatch_node_t *
pd_dispatch_cluster_nodes(pd_uint_t *n)
{
    *n = pd_dc_nnodes;
    return pd_dc_nodes;
}

static void
pd_dc_ignore(pd_redis_t *r, redisReply *reply, void *data)
{
    (void) r;
    (void) data;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        pd_log_error(PD_LOG_WARN, pd_log_root, 0, "dispatcher: redis: %.*s",
                     (int) reply->len, reply->str);
    }
}

/* this worker's node is alive and reachable at its room.advertise */
static void
pd_dc_publish(void)
{
    char         key[PD_NODE_ID_SIZE + 32], ttl[24];
    const char  *argv[5];
    size_t       len[5];

    if (pd_dc_retired || !pd_dc_conf->publish) {
        return;
    }

    argv[0] = "SET";
    len[0] = 3;
    argv[1] = key;
    len[1] = (size_t) snprintf(key, sizeof(key), "pd:d:%s", pd_dc_member);
    argv[2] = (const char *) pd_dc_value;
    len[2] = pd_dc_value_len;
    argv[3] = "PX";
    len[3] = 2;
    argv[4] = ttl;
    len[4] = (size_t) snprintf(ttl, sizeof(ttl), "%lu",
                               (unsigned long) pd_dc_ttl);

    (void) pd_redis_command(pd_dc_shards[0], pd_dc_ignore, NULL, 5, argv,
                            len);

    argv[0] = "SADD";
    len[0] = 4;
    argv[1] = "pd:ds";
    len[1] = 5;
    argv[2] = pd_dc_member;
    len[2] = strlen(pd_dc_member);

    (void) pd_redis_command(pd_dc_shards[0], pd_dc_ignore, NULL, 3, argv,
                            len);
}

static void
pd_dc_publish_timer_handler(pd_timer_t *t)
{
    pd_dc_publish();
    (void) pd_timer_add(&pd_timers, t, pd_current_msec, pd_dc_ttl / 3);
}

/* the first server (re)connected, and may have lost everything */
static void
pd_dc_connected(pd_redis_t *r)
{
    if (pd_dc_shards != NULL && r == pd_dc_shards[0]) {
        pd_dc_publish();
    }
}

/* the node name of a member "node/pid" */
static size_t
pd_dc_node_name(const char *m, size_t len)
{
    const char  *slash;

    slash = memrchr(m, '/', len);

    return slash ? (size_t) (slash - m) : len;
}

static void
pd_dc_forget(const char *member, size_t mlen)
{
    char         key[PD_NODE_ID_SIZE + 40];
    const char  *argv[6];
    size_t       len[6];

    argv[0] = "EVAL";
    len[0] = 4;
    argv[1] = pd_dispatch_forget_lua;
    len[1] = sizeof(pd_dispatch_forget_lua) - 1;
    argv[2] = "2";
    len[2] = 1;
    argv[3] = key;
    len[3] = (size_t) snprintf(key, sizeof(key), "pd:d:%.*s", (int) mlen,
                               member);
    argv[4] = "pd:ds";
    len[4] = 5;
    argv[5] = member;
    len[5] = mlen;

    (void) pd_redis_command(pd_dc_shards[0], pd_dc_ignore, NULL, 6, argv,
                            len);
}

/* one node of the table: the first live worker of each node counts */
static void
pd_dc_add(const char *member, size_t mlen, redisReply *v, pd_uint_t *n)
{
    pd_dispatch_node_t  *nd;
    size_t               nlen;
    pd_uint_t            i;
    uint64_t             id;
    const char          *err;

    nlen = pd_dc_node_name(member, mlen);
    id = pd_dispatch_node_id((const u_char *) member, nlen);

    for (i = 0; i < *n; i++) {
        if (pd_dc_nodes[i].id == id) {
            return;
        }
    }

    if (*n == PD_DISPATCH_NODES_MAX) {
        return;
    }

    nd = &pd_dc_nodes[*n];
    pd_memzero(nd, sizeof(pd_dispatch_node_t));

    err = pd_dispatch_node_parse((const u_char *) v->str, v->len, nd);
    if (err != NULL) {
        pd_log_error(PD_LOG_WARN, pd_log_root, 0, "dispatcher: node "
                     "\"%.*s\" published a value that %s", (int) nlen,
                     member, err);
        return;
    }

    nd->id = id;
    (*n)++;
}

/* the members read, kept for the answer of their keys */
typedef struct {
    size_t       len;
    char         str[PD_NODE_ID_SIZE + 16];
} pd_dc_member_t;

typedef struct {
    pd_uint_t        n;
    pd_dc_member_t   m[];
} pd_dc_members_t;

static void
pd_dc_values(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_dc_members_t  *ms = data;
    redisReply       *v;
    pd_uint_t         i, n;

    (void) r;

    pd_dc_reading = 0;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != ms->n)
    {
        pd_free(ms);
        return;
    }

    n = 0;

    for (i = 0; i < ms->n; i++) {
        v = reply->element[i];

        if (v->type == REDIS_REPLY_NIL) {
            pd_dc_forget(ms->m[i].str, ms->m[i].len);
            continue;
        }

        if (v->type == REDIS_REPLY_STRING) {
            pd_dc_add(ms->m[i].str, ms->m[i].len, v, &n);
        }
    }

    pd_dc_nnodes = n;
    pd_free(ms);
}

/* the members: read their keys at once */
static void
pd_dc_members(pd_redis_t *r, redisReply *reply, void *data)
{
    const char       **argv;
    size_t            *len;
    u_char            *keys, *k;
    redisReply        *e;
    pd_dc_members_t   *ms;
    pd_uint_t          i, n;

    (void) data;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        pd_dc_reading = 0;
        return;
    }

    n = pd_min(reply->elements, PD_DISPATCH_MEMBERS_MAX);

    if (n == 0) {
        pd_dc_nnodes = 0;
        pd_dc_reading = 0;
        return;
    }

    /* hiredis frees the reply when this returns: the members are kept
     * for the answer of their keys */
    ms = pd_alloc(sizeof(pd_dc_members_t) + n * sizeof(pd_dc_member_t),
                  pd_log_root);
    argv = pd_alloc((n + 1) * sizeof(char *), pd_log_root);
    len = pd_alloc((n + 1) * sizeof(size_t), pd_log_root);
    keys = pd_alloc(n * (PD_NODE_ID_SIZE + 40), pd_log_root);

    if (ms == NULL || argv == NULL || len == NULL || keys == NULL) {
        goto failed;
    }

    ms->n = 0;
    argv[0] = "MGET";
    len[0] = 4;
    k = keys;

    for (i = 0; i < n; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING
            || e->len >= sizeof(ms->m[0].str))
        {
            continue;
        }

        pd_memcpy(ms->m[ms->n].str, e->str, e->len);
        ms->m[ms->n].len = e->len;

        argv[1 + ms->n] = (const char *) k;
        len[1 + ms->n] = (size_t) snprintf((char *) k, PD_NODE_ID_SIZE + 40,
                                           "pd:d:%.*s", (int) e->len,
                                           e->str);
        k += PD_NODE_ID_SIZE + 40;
        ms->n++;
    }

    if (ms->n == 0
        || pd_redis_command(r, pd_dc_values, ms, (int) (1 + ms->n), argv,
                            len)
           != PD_OK)
    {
        goto failed;
    }

    pd_free(argv);
    pd_free(len);
    pd_free(keys);
    return;

failed:

    pd_dc_reading = 0;
    pd_free(ms);
    pd_free(argv);
    pd_free(len);
    pd_free(keys);
}

static void
pd_dc_read(pd_timer_t *t)
{
    const char  *argv[2];
    size_t       len[2];

    (void) pd_timer_add(&pd_timers, t, pd_current_msec, PD_DISPATCH_READ);

    /* an answer still due (a slow server): no second read on top */
    if (pd_dc_reading) {
        return;
    }

    argv[0] = "SMEMBERS";
    len[0] = 8;
    argv[1] = "pd:ds";
    len[1] = 5;

    if (pd_redis_command(pd_dc_shards[0], pd_dc_members, NULL, 2, argv, len)
        == PD_OK)
    {
        pd_dc_reading = 1;
    }
}

pd_int_t
pd_dispatch_cluster_init(pd_cycle_t *cycle, pd_dispatch_conf_t *dcf,
    pd_uint_t answer)
{
    pd_core_conf_t      *ccf;
    pd_register_conf_t  *gcf;

    ccf = pd_get_conf(cycle, pd_core_module);
    gcf = pd_get_conf(cycle, pd_register_module);

    pd_dc_shards = pd_redis_group(PD_REGISTER_REDIS_GROUP, &pd_dc_nshards);
    if (pd_dc_nshards == 0) {
        pd_log_error(PD_LOG_EMERG, cycle->log, 0,
                     "dispatcher: no cluster register to publish in");
        return PD_ERROR;
    }

    pd_dc_conf = dcf;
    pd_dc_ttl = gcf->node_ttl;
    pd_dc_retired = 0;
    pd_dc_reading = 0;

    (void) snprintf(pd_dc_member, sizeof(pd_dc_member), "%.*s/%x",
                    (int) ccf->node_id.len, ccf->node_id.data,
                    (unsigned) pd_pid);
    pd_dc_value_len = pd_dispatch_node_text(&dcf->self, pd_dc_value,
                                            sizeof(pd_dc_value));

    if (pd_register_on_connect(pd_dc_connected) != PD_OK) {
        return PD_ERROR;
    }

    if (dcf->publish) {
        pd_timer_init(&pd_dc_publish_timer, pd_dc_publish_timer_handler);
        pd_dc_publish_timer_handler(&pd_dc_publish_timer);
    }

    if (answer) {
        pd_dc_nodes = pd_calloc(PD_DISPATCH_NODES_MAX
                                * sizeof(pd_dispatch_node_t), cycle->log);
        if (pd_dc_nodes == NULL) {
            return PD_ERROR;
        }

        pd_dc_nnodes = 0;
        pd_timer_init(&pd_dc_read_timer, pd_dc_read);
        pd_dc_read(&pd_dc_read_timer);
    }

    return PD_OK;
}

void
pd_dispatch_cluster_retire(void)
{
    char         key[PD_NODE_ID_SIZE + 32];
    const char  *argv[3];
    size_t       len[3];

    if (pd_dc_conf == NULL || !pd_dc_conf->publish || pd_dc_retired) {
        return;
    }

    pd_dc_retired = 1;

    if (pd_timer_is_set(&pd_dc_publish_timer)) {
        pd_timer_del(&pd_timers, &pd_dc_publish_timer);
    }

    argv[0] = "DEL";
    len[0] = 3;
    argv[1] = key;
    len[1] = (size_t) snprintf(key, sizeof(key), "pd:d:%s", pd_dc_member);

    (void) pd_redis_command(pd_dc_shards[0], pd_dc_ignore, NULL, 2, argv,
                            len);

    argv[0] = "SREM";
    len[0] = 4;
    argv[1] = "pd:ds";
    len[1] = 5;
    argv[2] = pd_dc_member;
    len[2] = strlen(pd_dc_member);

    (void) pd_redis_command(pd_dc_shards[0], pd_dc_ignore, NULL, 3, argv,
                            len);

    /* a worker with no connections exits before the end of this turn */
    pd_redis_flush(pd_dc_shards[0]);
}

void
pd_dispatch_cluster_exit(void)
{
    if (pd_dc_conf == NULL) {
        return;
    }

    if (pd_dc_conf->publish && pd_timer_is_set(&pd_dc_publish_timer)) {
        pd_timer_del(&pd_timers, &pd_dc_publish_timer);
    }

    if (pd_dc_nodes != NULL) {
        if (pd_timer_is_set(&pd_dc_read_timer)) {
            pd_timer_del(&pd_timers, &pd_dc_read_timer);
        }

        pd_free(pd_dc_nodes);
        pd_dc_nodes = NULL;
        pd_dc_nnodes = 0;
    }

    pd_dc_shards = NULL;
    pd_dc_nshards = 0;
    pd_dc_conf = NULL;
}
