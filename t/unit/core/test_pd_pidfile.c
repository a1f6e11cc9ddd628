/*
 * test_pd_pidfile.c: "pushd -s" and the pid file's lock (pd_pidfile.c):
 * only a pid in a file some master holds locked is signalled; a stale
 * file, however live the process it names, is "not running".
 */

#include "pd_core.h"
#include <sys/file.h>
#include <sys/wait.h>

#include <setjmp.h>
#include <cmocka.h>


static char  pd_test_dir[] = "/tmp/pd_test_pidfile.XXXXXX";
static char  pd_test_pid[PATH_MAX];


static int
pd_test_setup(void **state)
{
    (void) state;

    if (mkdtemp(pd_test_dir) == NULL) {
        return -1;
    }

    (void) snprintf(pd_test_pid, sizeof(pd_test_pid), "%s/pushd.pid",
                    pd_test_dir);
    return 0;
}


static int
pd_test_teardown(void **state)
{
    (void) state;

    (void) unlink(pd_test_pid);
    return rmdir(pd_test_dir);
}


/* a child that waits to be signalled */
static pid_t
pd_test_sleeper(void)
{
    pid_t  pid;

    pid = fork();
    if (pid == 0) {
        for ( ;; ) {
            pause();
        }
    }

    assert_true(pid > 0);
    return pid;
}


static void
pd_test_write(const char *text)
{
    FILE  *f;

    f = fopen(pd_test_pid, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}


static void
test_no_file(void **state)
{
    (void) state;

    (void) unlink(pd_test_pid);
    assert_int_equal(pd_pidfile_signal(pd_test_pid, "quit"), PD_ERROR);
}


/* the number names a live process, but no master holds the file */
static void
test_stale_file_signals_nobody(void **state)
{
    char   buf[32];
    pid_t  child;
    int    status;

    (void) state;

    child = pd_test_sleeper();
    (void) snprintf(buf, sizeof(buf), "%d\n", (int) child);
    pd_test_write(buf);

    assert_int_equal(pd_pidfile_signal(pd_test_pid, "stop"), PD_ERROR);
    assert_int_equal(waitpid(child, &status, WNOHANG), 0);

    assert_int_equal(kill(child, SIGKILL), 0);
    assert_int_equal(waitpid(child, &status, 0), child);
}


/* held locked (as a master holds it): its pid gets the signal */
static void
test_locked_file_is_signalled(void **state)
{
    char   buf[32];
    pid_t  child;
    int    status, fd;

    (void) state;

    child = pd_test_sleeper();
    (void) snprintf(buf, sizeof(buf), "%d\n", (int) child);
    pd_test_write(buf);

    fd = open(pd_test_pid, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);

    assert_int_equal(pd_pidfile_signal(pd_test_pid, "quit"), PD_OK);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGQUIT);

    /* locked, but no number in it */
    pd_test_write("none\n");
    assert_int_equal(pd_pidfile_signal(pd_test_pid, "quit"), PD_ERROR);

    assert_int_equal(close(fd), 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_no_file),
        cmocka_unit_test(test_stale_file_signals_nobody),
        cmocka_unit_test(test_locked_file_is_signalled),
    };

    return cmocka_run_group_tests(tests, pd_test_setup, pd_test_teardown);
}
