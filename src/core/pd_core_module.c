/*
 * pd_core_module.c: the top-level directives (processes, logs, limits).
 */

#include "pd_core.h"

static void *pd_core_create_conf(pd_cycle_t *cycle);
static const char *pd_core_init_conf(pd_cycle_t *cycle, void *conf);
static const char *pd_core_set_workers(pd_conf_t *cf, pd_command_t *cmd,
    void *conf);
static const char *pd_core_set_affinity(pd_conf_t *cf, pd_command_t *cmd,
    void *conf);

static pd_conf_bounds_t  pd_core_connections_bounds = { 1, 1048576 };
static pd_conf_bounds_t  pd_core_nofile_bounds = { 16, 16777216 };
static pd_conf_bounds_t  pd_core_shutdown_bounds = { 0, 3600 * 1000 };

static pd_command_t  pd_core_commands[] = {

    { "worker_processes", PD_CONF_ANY, pd_core_set_workers,
      offsetof(pd_core_conf_t, worker_processes), NULL,
      "number of worker processes, or `auto` for one per online CPU "
      "(default: auto)" },

    { "daemon", PD_CONF_FLAG, pd_conf_set_flag_slot,
      offsetof(pd_core_conf_t, daemon), NULL,
      "detach from the terminal; `false` keeps the master in the "
      "foreground for systemd and containers (default: true)" },

    { "pid", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_core_conf_t, pid), NULL,
      "pid file of the master (default: logs/pushd.pid)" },

    { "seq_file", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_core_conf_t, seq_file), NULL,
      "where the node keeps a mark above every message id it handed out, "
      "so that a restart never hands one out again, whatever the clock "
      "did; read at start (default: logs/pushd.seq)" },

    { "error_log", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_core_conf_t, error_log), NULL,
      "\"path level\": the error log and the least severe level written, "
      "debug info notice warn error crit alert emerg; `stderr` as the "
      "path logs to standard error (default: \"logs/error.log error\")" },

    { "node_id", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_core_conf_t, node_id), NULL,
      "this node's id in a cluster, 1-32 characters [A-Za-z0-9_-] "
      "(default: the host name)" },

    { "user", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_core_conf_t, user), NULL,
      "user (and optional group: \"user group\") the workers run as when "
      "the master starts as root (default: nobody)" },

    { "worker_connections", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_core_conf_t, worker_connections),
      &pd_core_connections_bounds,
      "connections each worker preallocates and may hold, listeners and "
      "channels included (default: 10240)" },

    { "worker_rlimit_nofile", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_core_conf_t, worker_rlimit_nofile), &pd_core_nofile_bounds,
      "RLIMIT_NOFILE of the workers (default: unchanged)" },

    { "worker_cpu_affinity", PD_CONF_ANY, pd_core_set_affinity,
      offsetof(pd_core_conf_t, worker_cpu_affinity), NULL,
      "`auto` binds worker N to CPU N modulo the CPU count; `off` "
      "(default) leaves scheduling to the kernel" },

    { "worker_shutdown_timeout", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_core_conf_t, worker_shutdown_timeout),
      &pd_core_shutdown_bounds,
      "how long a retiring worker (reload, graceful stop) may take to "
      "send its clients away before it closes what is left (default: 10s)" },

    pd_null_command
};

pd_module_t  pd_core_module = {
    "core",
    0,
    pd_core_commands,
    pd_core_create_conf,
    pd_core_init_conf,
    NULL,
    NULL,
    NULL,
    NULL,
    1,
    NULL,
    NULL,
    pd_core_counters,
    0,
    NULL
};

static void *
pd_core_create_conf(pd_cycle_t *cycle)
{
    pd_core_conf_t  *ccf;

    ccf = pd_pcalloc(cycle->pool, sizeof(pd_core_conf_t));
    if (ccf == NULL) {
        return NULL;
    }

    ccf->daemon = PD_CONF_UNSET;
    ccf->worker_processes = PD_CONF_UNSET;
    ccf->worker_connections = PD_CONF_UNSET_UINT;
    ccf->worker_rlimit_nofile = PD_CONF_UNSET;
    ccf->worker_cpu_affinity = PD_CONF_UNSET;
    ccf->worker_shutdown_timeout = PD_CONF_UNSET_MSEC;
    ccf->uid = (uid_t) -1;
    ccf->gid = (gid_t) -1;

    return ccf;
}

static const char *
pd_core_set_workers(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    pd_core_conf_t  *ccf = conf;
    pd_int_t         n;

    (void) cmd;

    if (cf->value.data == NULL) {
        return "must be a number or \"auto\"";
    }

    if (pd_str_eq_lit_ci(&cf->value, "auto")) {
        ccf->worker_processes = -1;
        return PD_CONF_OK;
    }

    n = pd_atoi(cf->value.data, cf->value.len);
    if (n == -1) {
        return "must be a number or \"auto\"";
    }

    if (n < 1 || n > PD_MAX_WORKERS) {
        return "must be between 1 and 64, or \"auto\"";
    }

    ccf->worker_processes = n;
    return PD_CONF_OK;
}

static const char *
pd_core_set_affinity(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    pd_core_conf_t  *ccf = conf;

    (void) cmd;

    if (cf->value.data != NULL) {
        if (pd_str_eq_lit_ci(&cf->value, "auto")) {
            ccf->worker_cpu_affinity = 1;
            return PD_CONF_OK;
        }
        if (pd_str_eq_lit_ci(&cf->value, "off")
            || pd_str_eq_lit_ci(&cf->value, "false"))
        {
            ccf->worker_cpu_affinity = 0;
            return PD_CONF_OK;
        }
    }

    return "must be \"auto\" or \"off\"";
}

static const char *
pd_core_init_user(pd_core_conf_t *ccf, pd_cycle_t *cycle)
{
    struct passwd  *pw;
    struct group   *gr;
    u_char         *group;
    char            name[256];

    if (geteuid() != 0 && ccf->user.data == NULL) {
        return PD_CONF_OK;
    }

    if (ccf->user.data == NULL) {
        pd_str_set(&ccf->user, "nobody");
    }

    if (ccf->user.len >= sizeof(name)) {
        return "\"user\" is too long";
    }

    pd_memcpy(name, ccf->user.data, ccf->user.len);
    name[ccf->user.len] = '\0';

    group = (u_char *) strchr(name, ' ');
    if (group != NULL) {
        *group++ = '\0';
    }

    pw = getpwnam(name);
    if (pw == NULL) {
        return "\"user\" names an unknown user";
    }

    ccf->user_name = pd_pnalloc(cycle->pool, strlen(name) + 1);
    if (ccf->user_name == NULL) {
        return "out of memory";
    }
    pd_memcpy(ccf->user_name, name, strlen(name) + 1);

    ccf->uid = pw->pw_uid;
    ccf->gid = pw->pw_gid;

    if (group != NULL) {
        gr = getgrnam((char *) group);
        if (gr == NULL) {
            return "\"user\" names an unknown group";
        }
        ccf->gid = gr->gr_gid;
    }

    return PD_CONF_OK;
}

static const char *
pd_core_init_conf(pd_cycle_t *cycle, void *conf)
{
    pd_core_conf_t  *ccf = conf;
    const char      *rv;
    size_t           i;
    char             host[64];

    pd_conf_init_value(ccf->daemon, 1);
    pd_conf_init_value(ccf->worker_processes, -1);
    pd_conf_init_uint(ccf->worker_connections, 10240);
    pd_conf_init_value(ccf->worker_cpu_affinity, 0);
    pd_conf_init_msec(ccf->worker_shutdown_timeout, 10000);

    if (ccf->pid.data == NULL) {
        pd_str_set(&ccf->pid, PD_PID_PATH);
    }

    if (pd_conf_full_name(cycle, &ccf->pid) != PD_OK) {
        return "cannot resolve \"pid\"";
    }

    if (ccf->seq_file.data == NULL) {
        pd_str_set(&ccf->seq_file, PD_SEQ_PATH);
    }

    if (pd_conf_full_name(cycle, &ccf->seq_file) != PD_OK) {
        return "cannot resolve \"seq_file\"";
    }

    if (ccf->error_log.data == NULL) {
        pd_str_set(&ccf->error_log, PD_ERROR_LOG_PATH " error");
    }

    rv = pd_log_parse(&ccf->error_log, &ccf->error_log_path,
                      &ccf->error_log_level);
    if (rv != NULL) {
        return rv;
    }

    if (ccf->error_log_path.len
        && pd_conf_full_name(cycle, &ccf->error_log_path) != PD_OK)
    {
        return "cannot resolve \"error_log\"";
    }

    if (ccf->node_id.data == NULL) {
        if (gethostname(host, sizeof(host)) != 0) {
            pd_memcpy(host, "pushd", sizeof("pushd"));
        }
        host[sizeof(host) - 1] = '\0';

        for (i = 0; host[i] && i < 32; i++) {
            if (!isalnum((u_char) host[i]) && host[i] != '-') {
                host[i] = '_';
            }
        }
        host[i] = '\0';

        if (pd_str_from_cstr(cycle->pool, &ccf->node_id, host) != PD_OK) {
            return "out of memory";
        }
    }

    if (ccf->node_id.len == 0 || ccf->node_id.len > 32) {
        return "\"node_id\" must be 1-32 characters";
    }

    for (i = 0; i < ccf->node_id.len; i++) {
        u_char ch = ccf->node_id.data[i];

        if (!isalnum(ch) && ch != '-' && ch != '_') {
            return "\"node_id\" may hold only [A-Za-z0-9_-]";
        }
    }

    return pd_core_init_user(ccf, cycle);
}

pd_uint_t
pd_worker_count(pd_core_conf_t *ccf)
{
    if (ccf->worker_processes > 0) {
        return (pd_uint_t) ccf->worker_processes;
    }

    return pd_min(pd_ncpu, PD_MAX_WORKERS);
}
