/* test_pd_log.c: unit tests for the error log (pd_log.c, pd_times.c). */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>


static char  pd_test_dir[] = "/tmp/pd_test_log.XXXXXX";
static char  pd_test_err[256];


static int
pd_test_setup(void **state)
{
    (void) state;

    if (mkdtemp(pd_test_dir) == NULL) {
        return -1;
    }

    pd_time_update();

    return 0;
}


static int
pd_test_teardown(void **state)
{
    char  cmd[128];

    (void) state;

    (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pd_test_dir);

    return system(cmd) == 0 ? 0 : -1;
}


/* a log on a fresh file of the test directory; name must be unique */
static void
pd_test_open_log(pd_log_t *log, char *path, size_t len, const char *name,
    pd_uint_t level)
{
    (void) snprintf(path, len, "%s/%s", pd_test_dir, name);

    pd_memzero(log, sizeof(pd_log_t));
    log->log_level = level;
    log->fd = PD_INVALID_FILE;
    log->path.data = (u_char *) path;
    log->path.len = strlen(path);

    assert_int_equal(pd_log_open(log, NULL, pd_test_err,
                                 sizeof(pd_test_err)), PD_OK);
    assert_true(log->fd > 2);
}


/* the whole file into buf (NUL-terminated); returns its length */
static size_t
pd_test_read(const char *path, char *buf, size_t len)
{
    int      fd;
    ssize_t  n;
    size_t   total;

    fd = open(path, O_RDONLY);
    assert_true(fd != -1);

    total = 0;

    for ( ;; ) {
        n = read(fd, buf + total, len - 1 - total);
        assert_true(n >= 0);

        if (n == 0) {
            break;
        }

        total += n;
    }

    (void) close(fd);
    buf[total] = '\0';

    return total;
}


static size_t
pd_test_count_lines(const char *text)
{
    size_t  n;

    for (n = 0; *text; text++) {
        if (*text == '\n') {
            n++;
        }
    }

    return n;
}


/* "YYYY/MM/DD HH:MM:SS": digits and separators in their places */
static void
pd_test_assert_time(const char *p)
{
    static const char  form[] = "dddd/dd/dd dd:dd:dd";
    size_t             i;

    for (i = 0; i < sizeof(form) - 1; i++) {
        if (form[i] == 'd') {
            assert_true(p[i] >= '0' && p[i] <= '9');

        } else {
            assert_int_equal(p[i], form[i]);
        }
    }
}


static u_char *
pd_test_client_handler(pd_log_t *log, u_char *buf, size_t len)
{
    return pd_slprintf(buf, buf + len, ", client: %s", (char *) log->data);
}


static u_char *
pd_test_silent_handler(pd_log_t *log, u_char *buf, size_t len)
{
    (void) log;
    (void) len;

    return buf;
}


static void
pd_test_line_format(void **state)
{
    pd_log_t  log;
    char      path[256], text[4096], expect[512];

    (void) state;

    pd_test_open_log(&log, path, sizeof(path), "format.log", PD_LOG_INFO);

    pd_pid = 1234;
    pd_worker = 0;
    log.connection = 17;
    log.action = "reading frame";
    log.handler = pd_test_client_handler;
    log.data = "10.0.0.1";

    pd_log_error(PD_LOG_ERR, &log, ECONNRESET, "recv() failed");

    pd_test_read(path, text, sizeof(text));

    pd_test_assert_time(text);

    (void) snprintf(expect, sizeof(expect),
                    " [error] 1234#0: *17 recv() failed (%d: %s) "
                    "while reading frame, client: 10.0.0.1\n",
                    ECONNRESET, strerror(ECONNRESET));

    assert_string_equal(text + 19, expect);

    (void) close(log.fd);
}


static void
pd_test_line_master(void **state)
{
    pd_log_t  log;
    char      path[256], text[4096];

    (void) state;

    pd_test_open_log(&log, path, sizeof(path), "master.log", PD_LOG_NOTICE);

    pd_pid = 99;
    pd_worker = -1;

    /* a handler with nothing to say adds nothing */
    log.handler = pd_test_silent_handler;

    pd_log_error(PD_LOG_NOTICE, &log, 0, "signal %d received", 1);
    pd_log_error(PD_LOG_WARN, &log, 0, "worker %d exited", 3);

    pd_test_read(path, text, sizeof(text));

    assert_memory_equal(text + 19, " [notice] 99#m: signal 1 received\n",
                        34);
    assert_string_equal(strchr(text, '\n') + 1 + 19,
                        " [warn] 99#m: worker 3 exited\n");
    assert_int_equal(pd_test_count_lines(text), 2);

    (void) close(log.fd);
}


static void
pd_test_level_filter(void **state)
{
    pd_log_t  log;
    char      path[256], text[4096];

    (void) state;

    pd_test_open_log(&log, path, sizeof(path), "level.log", PD_LOG_WARN);

    pd_pid = 1;
    pd_worker = 2;

    pd_log_error(PD_LOG_INFO, &log, 0, "dropped info");
    pd_log_error(PD_LOG_NOTICE, &log, 0, "dropped notice");
    pd_log_debug(&log, "dropped debug");
    /* the core filters too, for callers that bypass the macro */
    pd_log_error_core(PD_LOG_DEBUG, &log, 0, "dropped core debug");

    pd_log_error(PD_LOG_WARN, &log, 0, "kept warn");
    pd_log_error(PD_LOG_EMERG, &log, 0, "kept emerg");

    pd_test_read(path, text, sizeof(text));

    assert_int_equal(pd_test_count_lines(text), 2);
    assert_null(strstr(text, "dropped"));
    assert_non_null(strstr(text, " [warn] 1#2: kept warn\n"));
    assert_non_null(strstr(text, " [emerg] 1#2: kept emerg\n"));

    (void) close(log.fd);
}


/* a message past PD_MAX_ERROR_STR is cut, and the line still ends */
static void
pd_test_long_line(void **state)
{
    pd_log_t  log;
    char      path[256], big[3000], text[8192];
    size_t    n;

    (void) state;

    pd_test_open_log(&log, path, sizeof(path), "long.log", PD_LOG_ERR);

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';

    pd_log_error(PD_LOG_ERR, &log, EINVAL, "%s", big);

    n = pd_test_read(path, text, sizeof(text));

    assert_int_equal(n, PD_MAX_ERROR_STR);
    assert_int_equal(text[n - 1], '\n');
    assert_int_equal(text[n - 2], 'x');

    (void) close(log.fd);
}


static void
pd_test_reopen(void **state)
{
    pd_log_t  log, conn_log;
    char      path[256], rotated[300], text[4096];
    pd_fd_t   fd;

    (void) state;

    pd_test_open_log(&log, path, sizeof(path), "reopen.log", PD_LOG_ERR);
    fd = log.fd;

    /* a connection's log is a copy sharing the descriptor number */
    conn_log = log;
    conn_log.connection = 5;

    pd_log_error(PD_LOG_ERR, &log, 0, "line A");

    (void) snprintf(rotated, sizeof(rotated), "%s.1", path);
    assert_int_equal(rename(path, rotated), 0);

    pd_log_error(PD_LOG_ERR, &log, 0, "line B");

    assert_int_equal(pd_log_reopen(&log, NULL, pd_test_err,
                                   sizeof(pd_test_err)), PD_OK);
    assert_int_equal(log.fd, fd);

    pd_log_error(PD_LOG_ERR, &log, 0, "line C");
    pd_log_error(PD_LOG_ERR, &conn_log, 0, "line D");

    pd_test_read(rotated, text, sizeof(text));
    assert_int_equal(pd_test_count_lines(text), 2);
    assert_non_null(strstr(text, "line A"));
    assert_non_null(strstr(text, "line B"));

    pd_test_read(path, text, sizeof(text));
    assert_int_equal(pd_test_count_lines(text), 2);
    assert_non_null(strstr(text, "line C"));
    assert_non_null(strstr(text, "*5 line D"));

    /* the reopened descriptor is still closed on exec */
    assert_true(fcntl(log.fd, F_GETFD) & FD_CLOEXEC);

    (void) close(log.fd);
}


static void
pd_test_reopen_failure(void **state)
{
    pd_log_t  log;
    char      path[256], text[4096], gone[300];

    (void) state;

    pd_test_open_log(&log, path, sizeof(path), "keep.log", PD_LOG_ERR);

    /* the directory of the new path does not exist: the open fails */
    (void) snprintf(gone, sizeof(gone), "%s/no/such/dir.log", pd_test_dir);
    log.path.data = (u_char *) gone;
    log.path.len = strlen(gone);

    errno = 0;
    assert_int_equal(pd_log_reopen(&log, NULL, pd_test_err,
                                   sizeof(pd_test_err)), PD_ERROR);
    assert_int_equal(errno, ENOENT);

    pd_log_error(PD_LOG_ERR, &log, 0, "still here");

    pd_test_read(path, text, sizeof(text));
    assert_non_null(strstr(text, "still here"));

    (void) close(log.fd);
}


static void
pd_test_open_failure(void **state)
{
    pd_log_t  log;
    char      gone[300];

    (void) state;

    (void) snprintf(gone, sizeof(gone), "%s/missing/x.log", pd_test_dir);

    pd_memzero(&log, sizeof(pd_log_t));
    log.fd = PD_INVALID_FILE;
    log.path.data = (u_char *) gone;
    log.path.len = strlen(gone);

    errno = 0;
    assert_int_equal(pd_log_open(&log, NULL, pd_test_err,
                                 sizeof(pd_test_err)), PD_ERROR);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(log.fd, PD_INVALID_FILE);

    /* an empty path is stderr */
    log.path.len = 0;
    assert_int_equal(pd_log_open(&log, NULL, pd_test_err,
                                 sizeof(pd_test_err)), PD_OK);
    assert_int_equal(log.fd, STDERR_FILENO);
    assert_int_equal(pd_log_reopen(&log, NULL, pd_test_err,
                                   sizeof(pd_test_err)), PD_OK);
    assert_int_equal(log.fd, STDERR_FILENO);
}


static const char *
pd_test_parse(const char *value, pd_str_t *path, pd_uint_t *level)
{
    pd_str_t  v;

    v.data = (u_char *) value;
    v.len = strlen(value);

    return pd_log_parse(&v, path, level);
}


static void
pd_test_parse_values(void **state)
{
    pd_str_t    path;
    pd_uint_t   level;

    (void) state;

    assert_null(pd_test_parse("logs/error.log warn", &path, &level));
    assert_int_equal(path.len, sizeof("logs/error.log") - 1);
    assert_memory_equal(path.data, "logs/error.log", path.len);
    assert_int_equal(level, PD_LOG_WARN);

    assert_null(pd_test_parse("/var/log/pushd.log", &path, &level));
    assert_int_equal(path.len, sizeof("/var/log/pushd.log") - 1);
    assert_int_equal(level, PD_LOG_ERR);

    assert_null(pd_test_parse("stderr", &path, &level));
    assert_int_equal(path.len, 0);
    assert_int_equal(level, PD_LOG_ERR);

    assert_null(pd_test_parse("  stderr   DEBUG ", &path, &level));
    assert_int_equal(path.len, 0);
    assert_int_equal(level, PD_LOG_DEBUG);

    assert_null(pd_test_parse("/x emerg", &path, &level));
    assert_int_equal(level, PD_LOG_EMERG);

    assert_null(pd_test_parse("/x info", &path, &level));
    assert_int_equal(level, PD_LOG_INFO);

    assert_string_equal(pd_test_parse("/x loud", &path, &level),
                        "unknown log level \"loud\"");
    /* "stderr" names a destination, not a level */
    assert_string_equal(pd_test_parse("/x stderr", &path, &level),
                        "unknown log level \"stderr\"");
    assert_string_equal(pd_test_parse("", &path, &level), "needs a path");
    assert_string_equal(pd_test_parse("   ", &path, &level),
                        "needs a path");
    assert_non_null(pd_test_parse("/x info more", &path, &level));
}


static void
pd_test_level_names(void **state)
{
    (void) state;

    assert_string_equal(pd_log_level_name(PD_LOG_STDERR), "stderr");
    assert_string_equal(pd_log_level_name(PD_LOG_EMERG), "emerg");
    assert_string_equal(pd_log_level_name(PD_LOG_ALERT), "alert");
    assert_string_equal(pd_log_level_name(PD_LOG_CRIT), "crit");
    assert_string_equal(pd_log_level_name(PD_LOG_ERR), "error");
    assert_string_equal(pd_log_level_name(PD_LOG_WARN), "warn");
    assert_string_equal(pd_log_level_name(PD_LOG_NOTICE), "notice");
    assert_string_equal(pd_log_level_name(PD_LOG_INFO), "info");
    assert_string_equal(pd_log_level_name(PD_LOG_DEBUG), "debug");
    assert_string_equal(pd_log_level_name(PD_LOG_DEBUG + 1), "unknown");
}


static void
pd_test_stderr(void **state)
{
    int         fd, saved;
    char        path[256], text[1024], expect[256];
    pd_log_t   *log;

    (void) state;

    (void) snprintf(path, sizeof(path), "%s/stderr.txt", pd_test_dir);

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd != -1);

    saved = dup(STDERR_FILENO);
    assert_true(saved != -1);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);

    pd_log_stderr(ENOENT, "open() \"%s\" failed", "/x.yaml");
    pd_log_stderr(0, "configuration file %s test is successful", "/y");

    log = pd_log_init();
    pd_pid = 7;
    pd_worker = -1;
    pd_log_error(PD_LOG_NOTICE, log, 0, "init log at notice");
    pd_log_error(PD_LOG_INFO, log, 0, "not at info");

    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    (void) close(saved);
    (void) close(fd);

    pd_test_read(path, text, sizeof(text));

    (void) snprintf(expect, sizeof(expect),
                    "pushd: open() \"/x.yaml\" failed (%d: %s)\n"
                    "pushd: configuration file /y test is successful\n",
                    ENOENT, strerror(ENOENT));

    assert_memory_equal(text, expect, strlen(expect));
    assert_string_equal(text + strlen(expect) + 19,
                        " [notice] 7#m: init log at notice\n");
    assert_int_equal(log->fd, STDERR_FILENO);
    assert_int_equal(log->log_level, PD_LOG_NOTICE);
}


static void
pd_test_times(void **state)
{
    pd_msec_t  before, after;

    (void) state;

    before = pd_monotonic_msec();
    pd_time_update();
    after = pd_monotonic_msec();

    assert_true(pd_current_msec >= before);
    assert_true(pd_current_msec <= after);

    assert_int_equal(strlen((char *) pd_log_time), 19);
    pd_test_assert_time((char *) pd_log_time);

    assert_true(pd_time_sec - time(NULL) <= 1);
    assert_true(time(NULL) - pd_time_sec <= 1);

    /* the milliseconds are of the same reading as the second, and a
     * ttl counts from them: not the second's start */
    assert_true(pd_time_msec / 1000 == (uint64_t) pd_time_sec);
    {
        struct timespec  ts;
        uint64_t         wall;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        wall = (uint64_t) ts.tv_sec * 1000
               + (uint64_t) ts.tv_nsec / 1000000;
        assert_true(wall >= pd_time_msec && wall - pd_time_msec < 1000);
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_line_format),
        cmocka_unit_test(pd_test_line_master),
        cmocka_unit_test(pd_test_level_filter),
        cmocka_unit_test(pd_test_long_line),
        cmocka_unit_test(pd_test_reopen),
        cmocka_unit_test(pd_test_reopen_failure),
        cmocka_unit_test(pd_test_open_failure),
        cmocka_unit_test(pd_test_parse_values),
        cmocka_unit_test(pd_test_level_names),
        cmocka_unit_test(pd_test_stderr),
        cmocka_unit_test(pd_test_times),
    };

    return cmocka_run_group_tests(tests, pd_test_setup, pd_test_teardown);
}
