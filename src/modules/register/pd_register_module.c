/*
 * pd_register_module.c: the register's directives and lifecycle.
 */

#include "pd_core.h"
#include "pd_register.h"

static void *pd_register_create_conf(pd_cycle_t *cycle);
static const char *pd_register_init_conf(pd_cycle_t *cycle, void *conf);
static pd_int_t pd_register_init_module(pd_cycle_t *cycle);
static pd_int_t pd_register_init_process(pd_cycle_t *cycle);
static void pd_register_exit_process(pd_cycle_t *cycle);
static void pd_register_worker_exited(pd_cycle_t *cycle, pid_t pid);

pd_register_backend_t  *pd_register;

static pd_conf_enum_t  pd_register_backends[] = {
    { pd_string("memory"), PD_REGISTER_MEMORY },
    { pd_string("redis"), PD_REGISTER_REDIS },
    { pd_null_string, 0 }
};

static pd_conf_bounds_t  pd_register_ttl_bounds = { 1000, 3600 * 1000 };
static pd_conf_bounds_t  pd_register_timeout_bounds = { 10, 60 * 1000 };

static pd_conf_bounds_t  pd_register_memory_bounds = {
    64 * 1024, (int64_t) 64 * 1024 * 1024 * 1024
};

static pd_conf_bounds_t  pd_register_ips_bounds = { 16, 16 * 1024 * 1024 };

static pd_command_t  pd_register_commands[] = {

    { "backend", PD_CONF_ENUM, pd_conf_set_enum_slot,
      offsetof(pd_register_conf_t, backend), pd_register_backends,
      "where the register lives: `memory`, a shared-memory zone of this "
      "host; `redis`, shared by every node of a cluster (the memory zone "
      "stays as this node's own view) (default: memory)" },

    { "redis", PD_CONF_LIST, pd_conf_set_list_slot,
      offsetof(pd_register_conf_t, redis), NULL,
      "the Redis servers of the cluster register, \"ip:port\", numeric; "
      "uids are spread over them by a hash every node computes alike, so "
      "every node must list the same servers in the same order "
      "(default: [\"127.0.0.1:6379\"])" },

    { "redis_password", PD_CONF_STRING, pd_conf_set_secret_slot,
      offsetof(pd_register_conf_t, redis_password), NULL,
      "the password sent with AUTH, before anything else, on every "
      "connection to the Redis servers and after every reconnect "
      "(requirepass, or the ACL user's); anyone who reaches an "
      "unprotected Redis can inject frames through the routing channels "
      "(default: none)" },

    { "redis_user", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_register_conf_t, redis_user), NULL,
      "the Redis 6+ ACL user of redis_password; pushd needs keys and "
      "channels \"pd:*\" only, e.g. \"user pushd on >secret ~pd:* "
      "&pd:* +@all -@dangerous\" (default: none: the default user)" },

    { "node_ttl", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_register_conf_t, node_ttl), &pd_register_ttl_bounds,
      "a node that stops refreshing its liveness key for this long (it "
      "died) has its users vanish from presence; a dead worker's users "
      "vanish within a third of it (default: 15s)" },

    { "timeout", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_register_conf_t, timeout), &pd_register_timeout_bounds,
      "a Redis command unanswered this long breaks the link; it is made "
      "again with backoff (default: 1s)" },

    { "memory", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_register_conf_t, memory), &pd_register_memory_bounds,
      "size of the shared-memory zone; about 140 bytes per connection "
      "(280 when its uid and device pass 75 bytes together) plus the "
      "per-IP table (default: 64m, about 450k connections)" },

    { "max_ips", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_register_conf_t, max_ips), &pd_register_ips_bounds,
      "distinct client addresses counted at once for "
      "room.max_connections_per_ip (default: 65536)" },

    pd_null_command
};

pd_module_t  pd_register_module = {
    "register",
    0,
    pd_register_commands,
    pd_register_create_conf,
    pd_register_init_conf,
    pd_register_init_module,
    pd_register_init_process,
    pd_register_exit_process,
    NULL,
    0,
    NULL,
    pd_register_worker_exited,
    NULL,
    0,
    NULL
};

static void *
pd_register_create_conf(pd_cycle_t *cycle)
{
    pd_register_conf_t  *rcf;

    rcf = pd_pcalloc(cycle->pool, sizeof(pd_register_conf_t));
    if (rcf == NULL) {
        return NULL;
    }

    rcf->backend = PD_CONF_UNSET_UINT;
    rcf->memory = PD_CONF_UNSET_SIZE;
    rcf->max_ips = PD_CONF_UNSET;
    rcf->node_ttl = PD_CONF_UNSET_MSEC;
    rcf->timeout = PD_CONF_UNSET_MSEC;

    return rcf;
}

/* "ip:port" entries into addresses the adapter takes */
const char *
pd_register_redis_addrs(pd_cycle_t *cycle, pd_array_t *list,
    pd_array_t **shards)
{
    static char          err[128];
    pd_register_addr_t  *a;
    pd_listen_conf_t     lc;
    pd_str_t            *s, def = pd_string("127.0.0.1:6379");
    pd_uint_t            i, n;
    const char          *rv;

    n = list ? list->nelts : 1;
    s = list ? list->elts : &def;

    if (n == 0) {
        return "\"redis\" names no server";
    }

    *shards = pd_array_create(cycle->pool, n, sizeof(pd_register_addr_t));
    if (*shards == NULL) {
        return "out of memory";
    }

    for (i = 0; i < n; i++) {
        rv = pd_parse_listen(&s[i], &lc, cycle->pool);

        if (rv != NULL || lc.ssl || s[i].len == 0
            || lc.sockaddr.ss_family != AF_INET
            || ((struct sockaddr_in *) &lc.sockaddr)->sin_addr.s_addr == 0)
        {
            (void) snprintf(err, sizeof(err), "\"redis\" has a bad address "
                            "\"%.*s\": use ip:port", (int) pd_min(s[i].len, 64),
                            s[i].data);
            return err;
        }

        a = pd_array_push(*shards);
        if (a == NULL) {
            return "out of memory";
        }

        (void) inet_ntop(AF_INET,
                         &((struct sockaddr_in *) &lc.sockaddr)->sin_addr,
                         a->host, sizeof(a->host));
        a->port = ntohs(((struct sockaddr_in *) &lc.sockaddr)->sin_port);
    }

    return NULL;
}

static const char *
pd_register_init_conf(pd_cycle_t *cycle, void *conf)
{
    pd_register_conf_t  *rcf = conf;
    const char          *rv;

    pd_conf_init_uint(rcf->backend, PD_REGISTER_MEMORY);
    pd_conf_init_size(rcf->memory, 64 * 1024 * 1024);
    pd_conf_init_value(rcf->max_ips, 65536);
    pd_conf_init_msec(rcf->node_ttl, 15000);
    pd_conf_init_msec(rcf->timeout, 1000);

    rv = pd_register_redis_addrs(cycle, rcf->redis, &rcf->shards);
    if (rv != NULL) {
        return rv;
    }

    if (rcf->redis_user.data != NULL && rcf->redis_password.data == NULL) {
        return "has \"redis_user\" but no \"redis_password\"";
    }

    if (pd_reg_zone_max_conns(rcf->memory, (uint32_t) rcf->max_ips) < 16) {
        return "\"memory\" is too small for \"max_ips\"";
    }

    return PD_CONF_OK;
}

static pd_int_t
pd_register_init_module(pd_cycle_t *cycle)
{
    pd_register_conf_t  *rcf;

    rcf = pd_get_conf(cycle, pd_register_module);

    return pd_register_memory_init(cycle, rcf);
}

static pd_int_t
pd_register_init_process(pd_cycle_t *cycle)
{
    pd_register_conf_t  *rcf;

    rcf = pd_get_conf(cycle, pd_register_module);

    if (rcf->backend == PD_REGISTER_REDIS) {
        pd_register = &pd_register_redis_backend;
        return pd_register_redis_init_process(cycle, rcf);
    }

    pd_register = &pd_register_memory_backend;
    return PD_OK;
}

static void
pd_register_exit_process(pd_cycle_t *cycle)
{
    if (pd_register == &pd_register_redis_backend) {
        pd_register_redis_exit_process(cycle);
    }
}

/* a dead worker's connections are gone: so are their entries */
static void
pd_register_worker_exited(pd_cycle_t *cycle, pid_t pid)
{
    pd_uint_t  n;

    if (pd_register_zone == NULL) {
        return;
    }

    n = pd_reg_purge_pid(pd_register_zone, (int32_t) pid);

    if (n) {
        pd_log_error(PD_LOG_NOTICE, cycle->log, 0,
                     "register: removed %lu entries of worker %d",
                     (unsigned long) n, (int) pid);
    }
}
