/*
 * pd_saver_module.c: the saver's directives, lifecycle and the calls the
 * room and the center use.  The memory backend is a shared-memory store
 * (pd_saver_store.c) created by the master before fork.
 */

#include "pd_core.h"
#include "pd_saver.h"
#include "pd_register.h"

static void *pd_saver_create_conf(pd_cycle_t *cycle);
static const char *pd_saver_init_conf(pd_cycle_t *cycle, void *conf);
static pd_int_t pd_saver_init_module(pd_cycle_t *cycle);
static pd_int_t pd_saver_init_process(pd_cycle_t *cycle);
static void pd_saver_sweep(pd_timer_t *t);
static void pd_saver_exit_process(pd_cycle_t *cycle);

pd_saver_conf_t        *pd_saver;
pd_saver_backend_t     *pd_saver_backend;
static pd_msg_zone_t   *pd_saver_zone;
static pd_timer_t       pd_saver_sweep_timer;
static int              pd_saver_zone_tag;

/* data of a message fits a channel batch with its frame around it */
#define PD_SAVER_MAX_PAYLOAD  (12 * 1024)

static pd_conf_enum_t  pd_saver_backends[] = {
    { pd_string("memory"), PD_SAVER_MEMORY },
    { pd_string("redis"), PD_SAVER_REDIS },
    { pd_null_string, 0 }
};

static pd_conf_bounds_t  pd_saver_timeout_bounds = { 10, 60 * 1000 };

static pd_conf_bounds_t  pd_saver_memory_bounds = {
    1024 * 1024, (int64_t) 64 * 1024 * 1024 * 1024
};
static pd_conf_bounds_t  pd_saver_ttl_bounds = { 1000,
                                                 (int64_t) 365 * 86400000 };
static pd_conf_bounds_t  pd_saver_redeliveries_bounds = { 1, 1000 };
static pd_conf_bounds_t  pd_saver_mailbox_bounds = { 1, 1000000 };
static pd_conf_bounds_t  pd_saver_sweep_bounds = { 10, 3600 * 1000 };

static pd_command_t  pd_saver_commands[] = {

    { "backend", PD_CONF_ENUM, pd_conf_set_enum_slot,
      offsetof(pd_saver_conf_t, backend), pd_saver_backends,
      "where messages are kept: `memory`, a shared-memory store of this "
      "host; `redis`, hot in Redis (saver.redis, else the register's "
      "servers) and durable in PostgreSQL (needs postgres, and "
      "register.backend redis unless saver.redis is set); the memory "
      "store then keeps only retained broadcasts (default: memory)" },

    { "redis", PD_CONF_LIST, pd_conf_set_list_slot,
      offsetof(pd_saver_conf_t, redis), NULL,
      "the Redis servers of the message store, \"ip:port\", the uids "
      "sharded over them, when they are not the register's: the store "
      "wants persistence and memory that presence does not (the redis "
      "backend; default: the register's servers)" },

    { "redis_password", PD_CONF_STRING, pd_conf_set_secret_slot,
      offsetof(pd_saver_conf_t, redis_password), NULL,
      "AUTH password of saver.redis (default: none)" },

    { "redis_user", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_saver_conf_t, redis_user), NULL,
      "the Redis 6+ ACL user of saver.redis_password (default: the "
      "default user)" },

    { "postgres", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_saver_conf_t, postgres), NULL,
      "libpq conninfo of the durable log, numeric host or a socket "
      "directory, e.g. \"host=127.0.0.1 port=5432 dbname=pushd "
      "user=pushd\" (the redis backend; the table is created on first "
      "start)" },

    { "timeout", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_saver_conf_t, timeout), &pd_saver_timeout_bounds,
      "a PostgreSQL command unanswered this long breaks the link; qos 1 "
      "pushes get 503 until it is back (default: 2s)" },

    { "memory", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_saver_conf_t, memory), &pd_saver_memory_bounds,
      "size of the store: half for payloads, half for about 180 bytes per "
      "(uid, message); when full, qos 1 pushes get 503 (default: 256m)" },

    { "ttl", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_saver_conf_t, ttl), &pd_saver_ttl_bounds,
      "how long a message is kept when the push names no ttl "
      "(default: 1d)" },

    { "max_ttl", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_saver_conf_t, max_ttl), &pd_saver_ttl_bounds,
      "the longest ttl a push may ask for; longer gets 400 (default: 7d)" },

    { "max_redeliveries", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_saver_conf_t, max_redeliveries),
      &pd_saver_redeliveries_bounds,
      "deliveries of a message without an ack before it is dropped and "
      "counted, so a client that never acks cannot loop (default: 5)" },

    { "max_per_mailbox", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_saver_conf_t, max_per_mailbox), &pd_saver_mailbox_bounds,
      "messages kept per (uid, app); a push to a full mailbox does not "
      "store for that uid and says so in \"stored\" (default: 1000)" },

    { "sweep", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_saver_conf_t, sweep), &pd_saver_sweep_bounds,
      "how often each worker reclaims a slice of expired messages "
      "(default: 1s)" },

    { "inline_bodies", PD_CONF_FLAG, pd_conf_set_flag_slot,
      offsetof(pd_saver_conf_t, inline_bodies), NULL,
      "backend redis: a unicast's body is kept in the uid's own hash, its "
      "list holding \"~id\" (two commands a store, two calls an ack); "
      "nodes of versions before it cannot read those: set false on every "
      "node for a rolling upgrade, then true once all run this version "
      "(default: true)" },

    pd_null_command
};

/* in the order of PD_SAVER_STAT_*; the memory store's own drops are
 * its zone's (pushd_store_dropped_noack_total) */
static pd_stats_counter_t  pd_saver_counters[] = {
    { "pushd_cluster_dropped_noack_total", NULL, "cluster_dropped_noack",
      "qos 1 messages the cluster store's no-ack guard dropped after "
      "max_redeliveries deliveries", PD_STATS_COUNTER },
    { NULL, NULL, NULL, NULL, 0 }
};

pd_module_t  pd_saver_module = {
    "saver",
    0,
    pd_saver_commands,
    pd_saver_create_conf,
    pd_saver_init_conf,
    pd_saver_init_module,
    pd_saver_init_process,
    pd_saver_exit_process,
    NULL,
    0,
    NULL,
    NULL,
    pd_saver_counters,
    0,
    NULL
};

static void *
pd_saver_create_conf(pd_cycle_t *cycle)
{
    pd_saver_conf_t  *scf;

    scf = pd_pcalloc(cycle->pool, sizeof(pd_saver_conf_t));
    if (scf == NULL) {
        return NULL;
    }

    scf->backend = PD_CONF_UNSET_UINT;
    scf->memory = PD_CONF_UNSET_SIZE;
    scf->ttl = PD_CONF_UNSET_MSEC;
    scf->max_ttl = PD_CONF_UNSET_MSEC;
    scf->max_redeliveries = PD_CONF_UNSET;
    scf->max_per_mailbox = PD_CONF_UNSET;
    scf->sweep = PD_CONF_UNSET_MSEC;
    scf->timeout = PD_CONF_UNSET_MSEC;
    scf->inline_bodies = PD_CONF_UNSET;

    return scf;
}

static const char *
pd_saver_init_conf(pd_cycle_t *cycle, void *conf)
{
    pd_saver_conf_t  *scf = conf;
    const char       *rv;

    pd_conf_init_uint(scf->backend, PD_SAVER_MEMORY);
    pd_conf_init_size(scf->memory, 256 * 1024 * 1024);
    pd_conf_init_msec(scf->ttl, 86400000);
    pd_conf_init_msec(scf->max_ttl, 7 * 86400000);
    pd_conf_init_value(scf->max_redeliveries, 5);
    pd_conf_init_value(scf->max_per_mailbox, 1000);
    pd_conf_init_msec(scf->sweep, 1000);
    pd_conf_init_msec(scf->timeout, 2000);
    pd_conf_init_value(scf->inline_bodies, 1);

    if (scf->backend == PD_SAVER_REDIS && scf->postgres.data == NULL) {
        return "backend redis needs \"postgres\"";
    }

    if (scf->redis != NULL) {
        if (scf->backend != PD_SAVER_REDIS) {
            return "has \"redis\" but backend memory: add \"backend: "
                   "redis\"";
        }

        rv = pd_register_redis_addrs(cycle, scf->redis, &scf->redis_shards);
        if (rv != NULL) {
            return rv;
        }
    }

    if ((scf->redis_password.data != NULL || scf->redis_user.data != NULL)
        && scf->redis == NULL)
    {
        return "has \"redis_password\" or \"redis_user\" but no \"redis\" "
               "(the register's servers use the register's credentials)";
    }

    if (scf->redis_user.data != NULL && scf->redis_password.data == NULL) {
        return "has \"redis_user\" but no \"redis_password\"";
    }

    if (scf->ttl > scf->max_ttl) {
        return "\"ttl\" is above \"max_ttl\"";
    }

    if (pd_msg_store_size(16, PD_SAVER_MAX_PAYLOAD) > scf->memory) {
        return "\"memory\" is too small";
    }

    return PD_CONF_OK;
}

static pd_int_t
pd_saver_zone_init(pd_shm_zone_t *zone, void *data)
{
    pd_saver_conf_t  *scf = zone->data;

    pd_saver_zone = pd_msg_store_init(zone->shm.addr, zone->shm.size,
                                      PD_SAVER_MAX_PAYLOAD,
                                      (uint32_t) scf->max_per_mailbox,
                                      data == NULL);
    if (pd_saver_zone == NULL) {
        pd_log_error(PD_LOG_EMERG, zone->shm.log, errno,
                     "message store of %lu bytes cannot be %s",
                     (unsigned long) zone->shm.size,
                     data ? "attached" : "formatted");
        return PD_ERROR;
    }

    zone->data = pd_saver_zone;
    return PD_OK;
}

static pd_int_t
pd_saver_init_module(pd_cycle_t *cycle)
{
    pd_saver_conf_t  *scf;
    pd_shm_zone_t    *zone;
    pd_str_t          name = pd_string("pd_saver");

    scf = pd_get_conf(cycle, pd_saver_module);

    zone = pd_shared_memory_add(cycle, &name, scf->memory,
                                &pd_saver_zone_tag);
    if (zone == NULL) {
        return PD_ERROR;
    }

    if (zone->data == NULL) {
        zone->data = scf;
    }

    zone->init = pd_saver_zone_init;
    scf->zone = zone;

    return PD_OK;
}

static pd_int_t
pd_saver_init_process(pd_cycle_t *cycle)
{
    pd_saver = pd_get_conf(cycle, pd_saver_module);
    pd_saver_backend = (pd_saver->backend == PD_SAVER_REDIS)
                       ? &pd_saver_redis_backend : &pd_saver_memory_backend;

    if (pd_saver_backend->init_process != NULL
        && pd_saver_backend->init_process(cycle, pd_saver) != PD_OK)
    {
        return PD_ERROR;
    }

    /* the workers sweep in turn, each a slice at a time */
    pd_timer_init(&pd_saver_sweep_timer, pd_saver_sweep);
    (void) pd_timer_add(&pd_timers, &pd_saver_sweep_timer, pd_current_msec,
                        pd_saver->sweep);

    return PD_OK;
}

static void
pd_saver_exit_process(pd_cycle_t *cycle)
{
    (void) cycle;

    if (pd_saver_backend != NULL && pd_saver_backend->exit_process != NULL) {
        pd_saver_backend->exit_process();
    }
}

static void
pd_saver_sweep(pd_timer_t *t)
{
    (void) pd_msg_expire(pd_saver_zone, pd_time_msec, 4096);
    (void) pd_timer_add(&pd_timers, t, pd_current_msec, pd_saver->sweep);
}


/* the calls callers make: the backend's */

pd_int_t
pd_saver_store(pd_str_t *uids, pd_uint_t n, pd_str_t *app,
    pd_str_t *collapse, uint64_t seq, pd_str_t *payload, pd_msec_t ttl,
    pd_pool_t *pool, pd_saver_done_pt done, void *data)
{
    return pd_saver_backend->store(uids, n, app, collapse, seq, payload,
                                   pd_time_msec + ttl, pool, done, data);
}

pd_int_t
pd_saver_fetch(pd_str_t *uid, pd_str_t *app, pd_str_t *after,
    pd_saver_take_pt take, pd_saver_fetched_pt fetched, void *data)
{
    return pd_saver_backend->fetch(uid, app, after, take, fetched, data);
}

pd_int_t
pd_saver_ack(pd_str_t *uid, pd_str_t *id)
{
    return pd_saver_backend->ack(uid, id);
}

pd_int_t
pd_saver_delivered(pd_str_t *uid, uint64_t seq)
{
    return pd_saver_backend->delivered(uid, seq);
}

pd_uint_t
pd_saver_store_orders_lookups(void)
{
    return pd_saver_backend->orders_lookups != NULL
           && pd_saver_backend->orders_lookups();
}


/* the memory backend: the shared-memory store all workers map */

static pd_int_t
pd_saver_memory_store(pd_str_t *uids, pd_uint_t n, pd_str_t *app,
    pd_str_t *collapse, uint64_t seq, pd_str_t *payload, uint64_t expires,
    pd_pool_t *pool, pd_saver_done_pt done, void *data)
{
    pd_msg_addr_t  *to;
    pd_uint_t       i, stored, full;
    pd_int_t        rv;

    to = pd_palloc(pool, n * sizeof(pd_msg_addr_t));
    if (to == NULL) {
        return PD_ERROR;
    }

    for (i = 0; i < n; i++) {
        to[i].uid = uids[i].data;
        to[i].len = uids[i].len;
    }

    /* one call, so a refusal stores nothing: the lock is held for the
     * whole list, bounded by center.max_uids */
    rv = pd_msg_store_collapse(pd_saver_zone, to, n, app->data, app->len,
                               collapse->len ? collapse->data : NULL,
                               collapse->len, seq, payload->data,
                               payload->len, expires, &stored, &full);
    if (rv != PD_OK) {
        return rv;
    }

    done(data, PD_OK, stored, full);
    return PD_OK;
}

/* a memory fetch in progress: the store walk's handler hands on */
typedef struct {
    pd_saver_take_pt   take;
    void              *data;
    pd_uint_t          stopped;
} pd_saver_walk_t;

/* under the store's lock */
static pd_int_t
pd_saver_memory_take(void *data, uint64_t seq, const u_char *payload,
    size_t len, uint64_t expires)
{
    pd_saver_walk_t  *w = data;
    pd_core_conf_t   *ccf;
    pd_saver_msg_t    m;
    u_char            id[PD_MSG_ID_LEN];
    pd_int_t          rc;

    (void) expires;

    ccf = pd_get_conf(pd_cycle, pd_core_module);

    m.id.data = id;
    m.id.len = (size_t) (pd_msg_id(id, &ccf->node_id, seq) - id);
    m.payload = (u_char *) payload;
    m.len = len;

    rc = w->take(w->data, &m);

    if (rc != PD_OK) {
        w->stopped = 1;
    }

    return rc;
}

/*
 * The cursor is the walk's position in store order (a stamp), in hex:
 * the order messages are handed out in, which their seqs need not
 * follow.
 */
static pd_int_t
pd_saver_memory_fetch(pd_str_t *uid, pd_str_t *app, pd_str_t *after,
    pd_saver_take_pt take, pd_saver_fetched_pt fetched, void *data)
{
    pd_saver_walk_t  w;
    pd_str_t         cursor;
    uint64_t         resume;
    size_t           i;
    u_char           ch, buf[16];

    /* our own cursor text; anything else starts from the beginning */
    resume = 0;

    for (i = 0; i < after->len && i < 16; i++) {
        ch = after->data[i];

        if (ch >= '0' && ch <= '9') {
            resume = (resume << 4) | (uint64_t) (ch - '0');

        } else if (ch >= 'a' && ch <= 'f') {
            resume = (resume << 4) | (uint64_t) (ch - 'a' + 10);

        } else {
            resume = 0;
            break;
        }
    }

    w.take = take;
    w.data = data;
    w.stopped = 0;

    (void) pd_msg_pending_from(pd_saver_zone, uid->data, uid->len, app->data,
                               app->len, pd_time_msec,
                               (uint32_t) pd_saver->max_redeliveries, &resume,
                               pd_saver_memory_take, &w);

    cursor.data = buf;
    cursor.len = (size_t) (pd_hex64(buf, resume) - buf);

    fetched(data, PD_OK, w.stopped, &cursor);
    return PD_OK;
}

/* only ids of this node are in this node's store */
static pd_int_t
pd_saver_memory_ack(pd_str_t *uid, pd_str_t *id)
{
    pd_core_conf_t  *ccf;
    pd_str_t         node;
    uint64_t         seq;

    ccf = pd_get_conf(pd_cycle, pd_core_module);

    if (pd_msg_id_parse(id->data, id->len, &node, &seq) != PD_OK
        || node.len != ccf->node_id.len
        || memcmp(node.data, ccf->node_id.data, node.len) != 0)
    {
        return PD_DECLINED;
    }

    return pd_msg_ack(pd_saver_zone, uid->data, uid->len, seq);
}

static pd_int_t
pd_saver_memory_delivered(pd_str_t *uid, uint64_t seq)
{
    return pd_msg_delivered(pd_saver_zone, uid->data, uid->len, seq,
                            (uint32_t) pd_saver->max_redeliveries);
}

pd_saver_backend_t  pd_saver_memory_backend = {
    "memory",
    NULL,
    NULL,
    pd_saver_memory_store,
    pd_saver_memory_fetch,
    pd_saver_memory_ack,
    pd_saver_memory_delivered,
    NULL
};


/* retained broadcasts and their cursors: this node's zone, either way */

pd_int_t
pd_saver_bcast_store(pd_str_t *app, uint64_t seq, pd_str_t *payload,
    pd_msec_t ttl)
{
    pd_int_t  rv;

    rv = pd_msg_bcast_store(pd_saver_zone, app->data, app->len, seq,
                            payload->data, payload->len,
                            pd_time_msec + ttl);

    return rv == PD_DECLINED ? PD_OK : rv;
}

pd_int_t
pd_saver_bcast_pending(pd_str_t *app, uint64_t after,
    pd_saver_msg_pt handler, void *data)
{
    return pd_msg_bcast_pending(pd_saver_zone, app->data, app->len, after,
                                pd_time_msec, handler, data);
}

uint64_t
pd_saver_cursor_get(pd_str_t *uid, pd_str_t *app)
{
    return pd_msg_cursor_get(pd_saver_zone, uid->data, uid->len, app->data,
                             app->len);
}

void
pd_saver_cursor_set(pd_str_t *uid, pd_str_t *app, uint64_t seq)
{
    (void) pd_msg_cursor_set(pd_saver_zone, uid->data, uid->len, app->data,
                             app->len, seq);
}

pd_int_t
pd_saver_stats(pd_msg_stats_t *st)
{
    if (pd_saver_zone == NULL) {
        return PD_DECLINED;
    }

    return pd_msg_stats(pd_saver_zone, st);
}
