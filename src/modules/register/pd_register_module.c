/*
 * pd_register_module.c: the register's directives and lifecycle.
 */

#include "pd_core.h"
#include "pd_register.h"

static void *pd_register_create_conf(pd_cycle_t *cycle);
static const char *pd_register_init_conf(pd_cycle_t *cycle, void *conf);
static pd_int_t pd_register_init_module(pd_cycle_t *cycle);
static pd_int_t pd_register_init_process(pd_cycle_t *cycle);
static void pd_register_worker_exited(pd_cycle_t *cycle, pid_t pid);

pd_register_backend_t  *pd_register;

static pd_conf_enum_t  pd_register_backends[] = {
    { pd_string("memory"), PD_REGISTER_MEMORY },
    { pd_null_string, 0 }
};

static pd_conf_bounds_t  pd_register_memory_bounds = {
    64 * 1024, (int64_t) 64 * 1024 * 1024 * 1024
};

static pd_conf_bounds_t  pd_register_ips_bounds = { 16, 16 * 1024 * 1024 };

static pd_command_t  pd_register_commands[] = {

    { "backend", PD_CONF_ENUM, pd_conf_set_enum_slot,
      offsetof(pd_register_conf_t, backend), pd_register_backends,
      "where the register lives: `memory`, a shared-memory zone of this "
      "host (default: memory)" },

    { "memory", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_register_conf_t, memory), &pd_register_memory_bounds,
      "size of the shared-memory zone; about 200 bytes per connection "
      "plus the per-IP table (default: 64m, about 300k connections)" },

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
    NULL,
    NULL,
    0,
    NULL,
    pd_register_worker_exited
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

    return rcf;
}

static const char *
pd_register_init_conf(pd_cycle_t *cycle, void *conf)
{
    pd_register_conf_t  *rcf = conf;

    (void) cycle;

    pd_conf_init_uint(rcf->backend, PD_REGISTER_MEMORY);
    pd_conf_init_size(rcf->memory, 64 * 1024 * 1024);
    pd_conf_init_value(rcf->max_ips, 65536);

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
    (void) cycle;

    pd_register = &pd_register_memory_backend;
    return PD_OK;
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
