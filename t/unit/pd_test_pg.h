/*
 * pd_test_pg.h: what the unit tests against a real PostgreSQL server
 * share: a throwaway server (initdb into a temporary directory, postgres
 * on a free port, a child of the test, as the "postgres" user when run
 * as root), a blocking client of the test's own, and a bounded run of
 * the worker's event loop.  Each test binary includes it once (its
 * functions are static); cmocka's header comes first.
 */

#ifndef PD_TEST_PG_H
#define PD_TEST_PG_H

#include <sys/prctl.h>
#include <ftw.h>
#include <glob.h>

#include "pd_test_loop.h"

/* "name=value" settings a test may add to the server's command line */
#define PD_TEST_PG_SETTINGS  8


static char         pd_test_bindir[PATH_MAX];
static char         pd_test_dir[PATH_MAX];      /* temporary, ours */
static char         pd_test_conninfo[PATH_MAX + 128];
static const char  *pd_test_no_server;          /* why none can run */
static uid_t        pd_test_uid;                /* the server runs as */
static gid_t        pd_test_gid;
static int          pd_test_drop;               /* root: become them */
static pid_t        pd_test_pg_pid = -1;
static int          pd_test_port;
static const char  *pd_test_pg_settings[PD_TEST_PG_SETTINGS];


/* the postgres child */

static int
pd_test_find_pg(void)
{
    glob_t   g;
    size_t   i;
    int      best, v;
    char    *p, path[PATH_MAX];

    if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) != 0) {
        return 0;
    }

    best = -1;

    for (i = 0; i < g.gl_pathc; i++) {
        p = g.gl_pathv[i] + sizeof("/usr/lib/postgresql/") - 1;
        v = atoi(p);

        (void) snprintf(path, sizeof(path), "%.*s/initdb",
                        (int) (strrchr(g.gl_pathv[i], '/') - g.gl_pathv[i]),
                        g.gl_pathv[i]);

        if (v > best && access(g.gl_pathv[i], X_OK) == 0
            && access(path, X_OK) == 0)
        {
            best = v;
            (void) snprintf(pd_test_bindir, sizeof(pd_test_bindir), "%.*s",
                            (int) (strrchr(g.gl_pathv[i], '/')
                                   - g.gl_pathv[i]),
                            g.gl_pathv[i]);
        }
    }

    globfree(&g);

    return best != -1;
}


static int
pd_test_free_port(void)
{
    struct sockaddr_in  sin;
    socklen_t           len;
    int                 s, port;

    s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s != -1);

    pd_memzero(&sin, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    assert_int_equal(bind(s, (struct sockaddr *) &sin, sizeof(sin)), 0);

    len = sizeof(sin);
    assert_int_equal(getsockname(s, (struct sockaddr *) &sin, &len), 0);
    port = ntohs(sin.sin_port);

    close(s);
    return port;
}


/*
 * Runs bin with argv as the server's user (PostgreSQL refuses root),
 * output appended to log in the test directory; returns the pid.
 */
static pid_t
pd_test_spawn(const char *bin, const char **argv, const char *log)
{
    char   path[PATH_MAX + 64];
    pid_t  pid;
    int    fd;

    (void) snprintf(path, sizeof(path), "%s/%s", pd_test_dir, log);

    pid = fork();

    if (pid != 0) {
        return pid;
    }

    fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd != -1) {
        (void) dup2(fd, 1);
        (void) dup2(fd, 2);
        close(fd);
    }

    if (pd_test_drop
        && (setgroups(0, NULL) == -1 || setgid(pd_test_gid) == -1
            || setuid(pd_test_uid) == -1))
    {
        _exit(126);
    }

    /* after setuid(): a change of credentials clears it */
    (void) prctl(PR_SET_PDEATHSIG, SIGKILL);

    if (chdir(pd_test_dir) == -1) {
        _exit(126);
    }

    execv(bin, (char **) argv);
    _exit(127);
}


/* waits up to ms for pid; 1 with *status when it exited */
static int
pd_test_wait(pid_t pid, int *status, pd_msec_t ms)
{
    struct timespec  ts = { 0, 10 * 1000 * 1000 };
    pd_msec_t        i;

    for (i = 0; i < ms; i += 10) {
        if (waitpid(pid, status, WNOHANG) == pid) {
            return 1;
        }

        (void) nanosleep(&ts, NULL);
    }

    return 0;
}


static int
pd_test_rm(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;

    return remove(path);
}


/* however the test ends: no server left behind, no directory */
static void
pd_test_cleanup(void)
{
    int  status;

    if (pd_test_pg_pid != -1) {
        /* immediate shutdown takes the backends down with it */
        (void) kill(pd_test_pg_pid, SIGQUIT);

        if (!pd_test_wait(pd_test_pg_pid, &status, 5000)) {
            (void) kill(pd_test_pg_pid, SIGKILL);
            (void) waitpid(pd_test_pg_pid, &status, 0);
        }

        pd_test_pg_pid = -1;
    }

    /* PD_TEST_KEEP=1 keeps the logs (and data) for a post-mortem */
    if (pd_test_dir[0] != '\0' && getenv("PD_TEST_KEEP") == NULL) {
        (void) nftw(pd_test_dir, pd_test_rm, 16, FTW_DEPTH | FTW_PHYS);
        pd_test_dir[0] = '\0';
    }
}


/* a temporary cluster, trusted locally; 0 with pd_test_no_server set */
static int
pd_test_initdb(void)
{
    char            bin[PATH_MAX + 16], data[PATH_MAX + 16];
    const char     *argv[16];
    struct passwd  *pw;
    pid_t           pid;
    int             n, status;

    if (geteuid() == 0) {
        pw = getpwnam("postgres");
        if (pw == NULL) {
            pd_test_no_server = "running as root and there is no "
                                "\"postgres\" user to run the server as";
            return 0;
        }

        pd_test_uid = pw->pw_uid;
        pd_test_gid = pw->pw_gid;
        pd_test_drop = 1;
    }

    (void) snprintf(pd_test_dir, sizeof(pd_test_dir),
                    "/tmp/pd_test_pg.XXXXXX");

    if (mkdtemp(pd_test_dir) == NULL) {
        pd_test_dir[0] = '\0';
        pd_test_no_server = "mkdtemp() failed";
        return 0;
    }

    if (pd_test_drop
        && chown(pd_test_dir, pd_test_uid, pd_test_gid) == -1)
    {
        pd_test_no_server = "chown() of the test directory failed";
        return 0;
    }

    (void) snprintf(bin, sizeof(bin), "%s/initdb", pd_test_bindir);
    (void) snprintf(data, sizeof(data), "%s/data", pd_test_dir);

    n = 0;
    argv[n++] = bin;
    argv[n++] = "-D";
    argv[n++] = data;
    argv[n++] = "-U";
    argv[n++] = "postgres";
    argv[n++] = "-A";
    argv[n++] = "trust";
    argv[n++] = "-E";
    argv[n++] = "UTF8";
    argv[n++] = "--no-locale";
    argv[n++] = "--no-sync";
    argv[n] = NULL;

    pid = pd_test_spawn(bin, argv, "initdb.log");

    if (pid == -1 || !pd_test_wait(pid, &status, 60000)
        || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    {
        pd_test_no_server = "initdb failed (see initdb.log; run with "
                            "PD_TEST_KEEP=1 to keep it)";
        return 0;
    }

    return 1;
}


static void
pd_test_quiet(void *arg, const char *message)
{
    (void) arg;
    (void) message;
}


/* a blocking client of the test itself: 1 when the statement succeeds */
static int
pd_test_sql(const char *sql, char *value, size_t len)
{
    PGconn    *c;
    PGresult  *res;
    int        ok;

    c = PQconnectdb(pd_test_conninfo);

    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return 0;
    }

    /* "does not exist, skipping" is no news here */
    (void) PQsetNoticeProcessor(c, pd_test_quiet, NULL);

    res = PQexec(c, sql);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK
         || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (ok && value) {
        (void) snprintf(value, len, "%s",
                        PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    }

    PQclear(res);
    PQfinish(c);

    return ok;
}


static void
pd_test_pg_stop(int sig)
{
    int  status;

    if (pd_test_pg_pid == -1) {
        return;
    }

    (void) kill(pd_test_pg_pid, sig);

    if (!pd_test_wait(pd_test_pg_pid, &status, 10000)) {
        (void) kill(pd_test_pg_pid, SIGKILL);
        (void) waitpid(pd_test_pg_pid, &status, 0);
        pd_test_pg_pid = -1;
        fail_msg("postgres did not stop on signal %d", sig);
    }

    pd_test_pg_pid = -1;
}


static void
pd_test_pg_start(void)
{
    char              bin[PATH_MAX + 16], data[PATH_MAX + 16], port[16];
    const char       *argv[32 + 2 * PD_TEST_PG_SETTINGS];
    int               n, status, i;
    struct timespec   ts = { 0, 10 * 1000 * 1000 };

    (void) snprintf(bin, sizeof(bin), "%s/postgres", pd_test_bindir);
    (void) snprintf(data, sizeof(data), "%s/data", pd_test_dir);
    (void) snprintf(port, sizeof(port), "%d", pd_test_port);

    n = 0;
    argv[n++] = bin;
    argv[n++] = "-D";
    argv[n++] = data;
    argv[n++] = "-p";
    argv[n++] = port;
    argv[n++] = "-k";
    argv[n++] = pd_test_dir;
    argv[n++] = "-c";
    argv[n++] = "listen_addresses=127.0.0.1";
    /* a throwaway cluster: durability only costs time here */
    argv[n++] = "-c";
    argv[n++] = "fsync=off";
    argv[n++] = "-c";
    argv[n++] = "full_page_writes=off";
    argv[n++] = "-c";
    argv[n++] = "shared_buffers=16MB";
    argv[n++] = "-c";
    argv[n++] = "max_connections=20";

    for (i = 0; i < PD_TEST_PG_SETTINGS && pd_test_pg_settings[i]; i++) {
        argv[n++] = "-c";
        argv[n++] = pd_test_pg_settings[i];
    }
    argv[n] = NULL;

    pd_test_pg_pid = pd_test_spawn(bin, argv, "postgres.log");
    assert_true(pd_test_pg_pid != -1);

    /* ready when it answers; give up after 15 s or when it exits */
    for (i = 0; i < 1500; i++) {
        if (PQping(pd_test_conninfo) == PQPING_OK) {
            return;
        }

        if (waitpid(pd_test_pg_pid, &status, WNOHANG) == pd_test_pg_pid) {
            pd_test_pg_pid = -1;
            fail_msg("postgres exited before answering (status %d), "
                     "see %s/postgres.log", status, pd_test_dir);
        }

        (void) nanosleep(&ts, NULL);
    }

    fail_msg("postgres did not answer on port %d", pd_test_port);
}


static void
pd_test_need_pg(void)
{
    if (pd_test_bindir[0] == '\0') {
        print_message("PostgreSQL binaries not found under "
                      "/usr/lib/postgresql/*/bin: skipped "
                      "(auto/deps installs them)\n");
        skip();
    }

    if (pd_test_no_server) {
        fail_msg("cannot run a PostgreSQL server: %s", pd_test_no_server);
    }

    if (pd_test_pg_pid == -1) {
        pd_test_pg_start();
    }
}


/*
 * The loop (connections, events, the tick) and, when the binaries are
 * there, a new cluster and its conninfo; the server starts with the
 * first pd_test_need_pg().  A cmocka group setup: 0, or -1.
 */
static int
pd_test_pg_setup(void)
{
    if (getenv("PD_TEST_VERBOSE") != NULL) {
        pd_test_log.log_level = PD_LOG_DEBUG;
    }

    pd_log_root = &pd_test_log;
    pd_test_cycle.log = &pd_test_log;

    if (pd_connection_init_array(&pd_test_cycle, 64) != PD_OK
        || pd_event_init(&pd_test_cycle) != PD_OK)
    {
        return -1;
    }

    pd_timer_init(&pd_test_tick, pd_test_tick_handler);
    pd_time_update();

    /* libpq would take these over what the tests spell out */
    (void) unsetenv("PGHOST");
    (void) unsetenv("PGHOSTADDR");
    (void) unsetenv("PGSERVICE");

    if (pd_test_find_pg()) {
        (void) atexit(pd_test_cleanup);

        pd_test_port = pd_test_free_port();
        (void) pd_test_initdb();

        (void) snprintf(pd_test_conninfo, sizeof(pd_test_conninfo),
                        "host=127.0.0.1 port=%d user=postgres "
                        "dbname=postgres sslmode=disable", pd_test_port);
    }

    return 0;
}


/* the server and its directory gone, the loop freed */
static void
pd_test_pg_teardown(void)
{
    pd_test_cleanup();

    pd_event_done(&pd_test_cycle);

    pd_free(pd_test_cycle.connections);
}

#endif /* PD_TEST_PG_H */
