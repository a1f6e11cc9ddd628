/*
 * pushd.c: the command line and start-up of the master.
 */

#include "pd_core.h"

static pd_int_t pd_get_options(int argc, char **argv);
static void pd_show_help(void);
static pd_int_t pd_make_paths(pd_str_t *prefix, pd_str_t *conf);
static int pd_signal_master(pd_cycle_t *bare);

static pd_uint_t   pd_show_version;
static pd_uint_t   pd_show_usage;
static const char *pd_opt_prefix;
static const char *pd_opt_conf;
static const char *pd_opt_signal;

extern char        pd_master_title[512];

int
main(int argc, char **argv)
{
    pd_cycle_t      *bare, *cycle;
    pd_core_conf_t  *ccf;
    pd_str_t         prefix, conf;
    u_char           errbuf[PD_CONF_ERRSTR_SIZE];
    size_t           len;
    long             ncpu;
    int              i, rv;

    pd_pid = getpid();
    pd_log_root = pd_log_init();
    pd_time_update();

    if (pd_get_options(argc, argv) != PD_OK) {
        return 1;
    }

    /* before the process title takes argv's memory */
    pd_upgrade_init(argc, argv);

    /* asked for, not a diagnostic: stdout, so "pushd -h | less" works */
    if (pd_show_version) {
        printf("pushd version " PD_VERSION "\n");
    }

    if (pd_show_usage) {
        pd_show_help();
    }

    if (pd_show_version || pd_show_usage) {
        return 0;
    }

    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    pd_ncpu = (ncpu > 0) ? (pd_uint_t) ncpu : 1;

    if (pd_make_paths(&prefix, &conf) != PD_OK) {
        return 1;
    }

    if (pd_ssl_init(pd_log_root) != PD_OK) {
        return 1;
    }

    bare = pd_cycle_bare(&prefix, &conf);
    if (bare == NULL) {
        return 1;
    }

    if (pd_opt_signal) {
        rv = pd_signal_master(bare);
        pd_destroy_cycle(bare);
        return rv;
    }

    cycle = pd_init_cycle(bare, errbuf, sizeof(errbuf));

    if (cycle == NULL) {
        pd_log_stderr(0, "%s", errbuf);

        if (pd_test_config) {
            pd_log_stderr(0, "configuration file %s test failed",
                          conf.data);
        }

        pd_destroy_cycle(bare);
        return 1;
    }

    if (pd_test_config) {
        pd_log_stderr(0, "the configuration file %s syntax is ok",
                      conf.data);
        pd_log_stderr(0, "configuration file %s test is successful",
                      conf.data);

        /* what the test made goes (its TLS contexts with the pool), so
         * that a leak checker sees none: nothing holds it otherwise */
        pd_destroy_cycle(cycle);
        pd_destroy_cycle(bare);
        return 0;
    }

    pd_cycle = cycle;
    ccf = pd_get_conf(cycle, pd_core_module);

    /* the master's title shows how it was started, as nginx's does */
    len = (size_t) snprintf(pd_master_title, sizeof(pd_master_title),
                            "pushd: master process");
    for (i = 0; i < argc && len < sizeof(pd_master_title) - 1; i++) {
        len += (size_t) snprintf(pd_master_title + len,
                                 sizeof(pd_master_title) - len, " %s",
                                 argv[i]);
    }

    pd_init_setproctitle(argc, argv);

    if (pd_init_signals(cycle->log) != PD_OK) {
        return 1;
    }

    /* what an old binary handed down and this configuration left */
    pd_upgrade_close_unused();

    /* the pid file was opened and locked with the cycle, before binding;
     * a new binary stays the old master's child, as nginx's does */
    if (ccf->daemon && !pd_upgrade_is_inherited()
        && pd_daemon(cycle->log) != PD_OK)
    {
        return 1;
    }

    pd_process = PD_PROCESS_MASTER;

    if (pd_pidfile_write(cycle->log) != PD_OK) {
        return 1;
    }

    if (ccf->daemon && cycle->log->fd > STDERR_FILENO
        && dup2(cycle->log->fd, STDERR_FILENO) == -1)
    {
        pd_log_error(PD_LOG_EMERG, cycle->log, errno, "dup2(STDERR) failed");
        return 1;
    }

    pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "pushd/" PD_VERSION
                 " started, node %.*s", (int) ccf->node_id.len,
                 ccf->node_id.data);

    pd_master_process_cycle(cycle);

    return 0;
}

static pd_int_t
pd_get_options(int argc, char **argv)
{
    const char  **slot;
    char         *p;
    int           i;

    for (i = 1; i < argc; i++) {
        p = argv[i];

        if (*p++ != '-' || *p == '\0') {
            pd_log_stderr(0, "invalid option: \"%s\"", argv[i]);
            return PD_ERROR;
        }

        while (*p) {
            switch (*p++) {

            case '?':
            case 'h':
                pd_show_usage = 1;
                continue;

            case 'v':
                pd_show_version = 1;
                continue;

            case 't':
                pd_test_config = 1;
                continue;

            case 'p':
                slot = &pd_opt_prefix;
                break;

            case 'c':
                slot = &pd_opt_conf;
                break;

            case 's':
                slot = &pd_opt_signal;
                break;

            default:
                pd_log_stderr(0, "invalid option: \"%c\"", p[-1]);
                return PD_ERROR;
            }

            /* "-pDIR" or "-p DIR" */
            if (*p == '\0') {
                if (i + 1 >= argc) {
                    pd_log_stderr(0, "option \"-%c\" requires an argument",
                                  p[-1]);
                    return PD_ERROR;
                }
                p = argv[++i];
            }

            *slot = p;
            break;
        }
    }

    if (pd_opt_signal && strcmp(pd_opt_signal, "stop") != 0
        && strcmp(pd_opt_signal, "quit") != 0
        && strcmp(pd_opt_signal, "reload") != 0
        && strcmp(pd_opt_signal, "reopen") != 0)
    {
        pd_log_stderr(0, "invalid option: \"-s %s\"", pd_opt_signal);
        return PD_ERROR;
    }

    return PD_OK;
}

/*
 * pushd -s: only the pid file's path is needed, so a configuration with
 * errors does not stop "stop", "quit" or "reopen": the path is taken
 * from the file if it still loads as YAML, else the default is used, and
 * either is said.  "reload" of such a file is not sent: the master would
 * refuse it and keep the old one, and the operator would believe it
 * reloaded.
 */
static int
pd_signal_master(pd_cycle_t *bare)
{
    pd_cycle_t      *cycle;
    pd_core_conf_t  *ccf;
    pd_str_t         pid;
    u_char           errbuf[PD_CONF_ERRSTR_SIZE];
    int              rv;

    /* read the file without side effects */
    pd_test_config = 1;

    cycle = pd_init_cycle(bare, errbuf, sizeof(errbuf));

    if (cycle != NULL) {
        ccf = pd_get_conf(cycle, pd_core_module);
        rv = pd_pidfile_signal((char *) ccf->pid.data, pd_opt_signal)
             == PD_OK ? 0 : 1;
        pd_destroy_cycle(cycle);
        return rv;
    }

    pd_log_stderr(0, "%s", errbuf);

    if (strcmp(pd_opt_signal, "reload") == 0) {
        pd_log_stderr(0, "reload not sent: the master would refuse this "
                      "configuration and keep running the old one");
        return 1;
    }

    switch (pd_conf_peek_path(bare, &bare->conf_file, "pid", &pid)) {

    case PD_OK:
        pd_log_stderr(0, "the configuration has errors; its pid file \"%s\" "
                      "is used all the same", pid.data);
        break;

    case PD_DECLINED:
        pd_str_set(&pid, PD_PID_PATH);

        if (pd_conf_full_name(bare, &pid) != PD_OK) {
            return 1;
        }

        pd_log_stderr(0, "the configuration has errors; its pid file \"%s\" "
                      "(the default) is used all the same", pid.data);
        break;

    default:
        pd_str_set(&pid, PD_PID_PATH);

        if (pd_conf_full_name(bare, &pid) != PD_OK) {
            return 1;
        }

        pd_log_stderr(0, "the configuration cannot be read; the default pid "
                      "file \"%s\" is used", pid.data);
    }

    return pd_pidfile_signal((char *) pid.data, pd_opt_signal) == PD_OK
           ? 0 : 1;
}

static void
pd_show_help(void)
{
    printf(
        "Usage: pushd [-?hvt] [-s signal] [-p prefix] [-c filename]\n"
        "\n"
        "Options:\n"
        "  -?,-h         : this help\n"
        "  -v            : show version and exit\n"
        "  -t            : test the configuration and exit\n"
        "  -s signal     : send signal to the master process: "
        "stop, quit, reopen, reload\n"
        "  -p prefix     : set the prefix path (default: " PD_PREFIX ")\n"
        "  -c filename   : set the configuration file (default: "
        PD_CONF_PATH ")\n");
}

/* an absolute prefix ending in '/', and the conf path resolved in it */
static pd_int_t
pd_make_paths(pd_str_t *prefix, pd_str_t *conf)
{
    static char  pbuf[PATH_MAX + 1], cbuf[2 * PATH_MAX + 2];
    const char  *p, *c;
    char         cwd[PATH_MAX];
    int          n;

    p = pd_opt_prefix ? pd_opt_prefix : PD_PREFIX;

    if (p[0] != '/') {
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            pd_log_stderr(errno, "getcwd() failed");
            return PD_ERROR;
        }
        n = snprintf(pbuf, sizeof(pbuf), "%s/%s", cwd, p);
    } else {
        n = snprintf(pbuf, sizeof(pbuf), "%s", p);
    }

    if (n <= 0 || (size_t) n >= sizeof(pbuf) - 1) {
        pd_log_stderr(0, "prefix too long");
        return PD_ERROR;
    }

    if (pbuf[n - 1] != '/') {
        pbuf[n++] = '/';
        pbuf[n] = '\0';
    }

    prefix->data = (u_char *) pbuf;
    prefix->len = (size_t) n;

    c = pd_opt_conf ? pd_opt_conf : PD_CONF_PATH;

    if (c[0] == '/') {
        n = snprintf(cbuf, sizeof(cbuf), "%s", c);
    } else {
        n = snprintf(cbuf, sizeof(cbuf), "%s%s", pbuf, c);
    }

    if (n <= 0 || (size_t) n >= sizeof(cbuf)) {
        pd_log_stderr(0, "configuration path too long");
        return PD_ERROR;
    }

    conf->data = (u_char *) cbuf;
    conf->len = (size_t) n;

    return PD_OK;
}
