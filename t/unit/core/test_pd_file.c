/*
 * test_pd_file.c: the daemon's own files (pd_file.c): what is opened,
 * what is refused and why, and the directory checks against a user.
 */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>


static char             pd_test_dir[] = "/tmp/pd_test_file.XXXXXX";
static char             pd_test_err[512];
static pd_file_guard_t  pd_test_nobody;


static int
pd_test_setup(void **state)
{
    struct passwd  *pw;

    (void) state;

    if (mkdtemp(pd_test_dir) == NULL || chmod(pd_test_dir, 0755) != 0) {
        return -1;
    }

    pw = getpwnam("nobody");
    if (pw == NULL) {
        return -1;
    }

    pd_test_nobody.uid = pw->pw_uid;
    pd_test_nobody.gid = pw->pw_gid;
    pd_test_nobody.name = "nobody";

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


static void
pd_test_path(char *buf, size_t len, const char *name)
{
    (void) snprintf(buf, len, "%s/%s", pd_test_dir, name);
}


/* a file with content, for links to point at */
static void
pd_test_target(char *path, size_t len, const char *name)
{
    int  fd;

    pd_test_path(path, len, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd != -1);
    assert_int_equal(write(fd, "precious\n", 9), 9);
    close(fd);
}


static void
pd_test_assert_content(const char *path, const char *want)
{
    char     buf[64];
    int      fd;
    ssize_t  n;

    fd = open(path, O_RDONLY);
    assert_true(fd != -1);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    assert_true(n >= 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}


static void
test_regular_file_opens(void **state)
{
    char         path[256];
    struct stat  st;
    pd_fd_t      fd;

    (void) state;

    pd_test_path(path, sizeof(path), "new.log");

    fd = pd_file_open_own(path, O_WRONLY | O_APPEND | O_CREAT, 0, NULL, &st,
                          pd_test_err, sizeof(pd_test_err));
    assert_true(fd > 2);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_nlink, 1);

    /* close-on-exec, and blocking again after the FIFO guard */
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
    close(fd);
}


static void
test_symlink_refused(void **state)
{
    char     target[256], lnk[256];
    pd_fd_t  fd;

    (void) state;

    pd_test_target(target, sizeof(target), "sym-target");
    pd_test_path(lnk, sizeof(lnk), "sym.log");
    assert_int_equal(symlink(target, lnk), 0);

    errno = 0;
    fd = pd_file_open_own(lnk, O_WRONLY | O_APPEND | O_CREAT, 0, NULL,
                          NULL, pd_test_err, sizeof(pd_test_err));
    assert_int_equal(fd, PD_INVALID_FILE);
    assert_int_equal(errno, ELOOP);
    assert_string_equal(pd_test_err,
                        "it is a symbolic link, which is not followed");

    /* a dangling one is not created through either */
    pd_test_path(target, sizeof(target), "nowhere");
    pd_test_path(lnk, sizeof(lnk), "dangling.log");
    assert_int_equal(symlink(target, lnk), 0);

    fd = pd_file_open_own(lnk, O_WRONLY | O_CREAT, 0, NULL, NULL,
                          pd_test_err, sizeof(pd_test_err));
    assert_int_equal(fd, PD_INVALID_FILE);
    assert_int_equal(access(target, F_OK), -1);
}


static void
test_hard_link_refused(void **state)
{
    char     target[256], lnk[256];
    pd_fd_t  fd;

    (void) state;

    pd_test_target(target, sizeof(target), "hard-target");
    pd_test_path(lnk, sizeof(lnk), "hard.pid");
    assert_int_equal(link(target, lnk), 0);

    errno = 0;
    fd = pd_file_open_own(lnk, O_WRONLY | O_CREAT, 0, NULL, NULL,
                          pd_test_err, sizeof(pd_test_err));
    assert_int_equal(fd, PD_INVALID_FILE);
    assert_int_equal(errno, EPERM);
    assert_string_equal(pd_test_err, "it has 2 hard links, and another name "
                        "of it could be any file");
    pd_test_assert_content(target, "precious\n");
}


static void
test_fifo_and_devices(void **state)
{
    char     path[256];
    pd_fd_t  fd;

    (void) state;

    /* without O_NONBLOCK this open would wait for a reader forever */
    pd_test_path(path, sizeof(path), "fifo.log");
    assert_int_equal(mkfifo(path, 0644), 0);

    fd = pd_file_open_own(path, O_WRONLY | O_APPEND | O_CREAT,
                          PD_FILE_DEVICE_OK, NULL, NULL, pd_test_err,
                          sizeof(pd_test_err));
    assert_int_equal(fd, PD_INVALID_FILE);

    fd = pd_file_open_own(path, O_RDONLY, 0, NULL, NULL, pd_test_err,
                          sizeof(pd_test_err));
    assert_int_equal(fd, PD_INVALID_FILE);
    assert_string_equal(pd_test_err, "it is not a regular file");

    /* /dev/null is a device: a log may go there, a pid file may not */
    fd = pd_file_open_own("/dev/null", O_WRONLY | O_APPEND,
                          PD_FILE_DEVICE_OK, NULL, NULL, pd_test_err,
                          sizeof(pd_test_err));
    assert_true(fd > 2);
    close(fd);

    fd = pd_file_open_own("/dev/null", O_WRONLY, 0, NULL, NULL, pd_test_err,
                          sizeof(pd_test_err));
    assert_int_equal(fd, PD_INVALID_FILE);
    assert_string_equal(pd_test_err, "it is not a regular file");
}


static void
test_dirs_against_a_user(void **state)
{
    char             dir[256], path[256], want[512];
    pd_file_guard_t  me;
    pd_fd_t          fd;

    (void) state;

    /* the test's own directories are out of nobody's reach */
    pd_test_path(dir, sizeof(dir), "safe");
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(pd_file_check_dirs(dir, &pd_test_nobody, pd_test_err,
                                        sizeof(pd_test_err)), PD_OK);

    pd_test_path(path, sizeof(path), "safe/x.log");
    fd = pd_file_open_own(path, O_WRONLY | O_CREAT, 0, &pd_test_nobody, NULL,
                          pd_test_err, sizeof(pd_test_err));
    assert_true(fd > 2);
    close(fd);

    /* world-writable: refused; with the sticky bit (as /tmp): fine */
    pd_test_path(dir, sizeof(dir), "open");
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(chmod(dir, 0777), 0);

    pd_test_path(path, sizeof(path), "open/x.log");
    fd = pd_file_open_own(path, O_WRONLY | O_CREAT, 0, &pd_test_nobody, NULL,
                          pd_test_err, sizeof(pd_test_err));
    assert_int_equal(fd, PD_INVALID_FILE);
    (void) snprintf(want, sizeof(want), "the directory \"%s\" is writable by "
                    "the workers' user \"nobody\" (world-writable without the "
                    "sticky bit, mode 0777): it could plant links there; "
                    "make it root's and writable by root only", dir);
    assert_string_equal(pd_test_err, want);
    assert_int_equal(access(path, F_OK), -1);

    assert_int_equal(chmod(dir, 01777), 0);
    assert_int_equal(pd_file_check_dirs(dir, &pd_test_nobody, pd_test_err,
                                        sizeof(pd_test_err)), PD_OK);

    /* a directory above counts as much: the one below can be swapped */
    pd_test_path(dir, sizeof(dir), "open/below");
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(chmod(pd_test_dir, 0777), 0);
    assert_int_equal(pd_file_check_dirs(dir, &pd_test_nobody, pd_test_err,
                                        sizeof(pd_test_err)), PD_ERROR);
    assert_non_null(strstr(pd_test_err, pd_test_dir));
    assert_int_equal(chmod(pd_test_dir, 0755), 0);

    /* the owner of a directory may chmod it: as good as writable */
    me.uid = getuid();
    me.gid = getgid();
    me.name = getpwuid(getuid())->pw_name;

    pd_test_path(dir, sizeof(dir), "safe");
    assert_int_equal(pd_file_check_dirs(dir, &me, pd_test_err,
                                        sizeof(pd_test_err)), PD_ERROR);
    assert_non_null(strstr(pd_test_err, "(owned by it, mode 0755)"));
}


static void
test_resolved_directory(void **state)
{
    char     dir[256], alias[256], path[256];
    pd_fd_t  fd;

    (void) state;

    /* a symbolic link on the way is resolved and its target checked */
    pd_test_path(dir, sizeof(dir), "real");
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    pd_test_path(alias, sizeof(alias), "alias");
    assert_int_equal(symlink(dir, alias), 0);

    pd_test_path(path, sizeof(path), "alias/x.log");
    fd = pd_file_open_own(path, O_WRONLY | O_CREAT, 0, &pd_test_nobody, NULL,
                          pd_test_err, sizeof(pd_test_err));
    assert_int_equal(fd, PD_INVALID_FILE);
    assert_non_null(strstr(pd_test_err, dir));

    assert_int_equal(chmod(dir, 0755), 0);
    fd = pd_file_open_own(path, O_WRONLY | O_CREAT, 0, &pd_test_nobody, NULL,
                          pd_test_err, sizeof(pd_test_err));
    assert_true(fd > 2);
    close(fd);

    pd_test_path(path, sizeof(path), "real/x.log");
    assert_int_equal(access(path, F_OK), 0);

    /* a relative path has no directory to check */
    fd = pd_file_open_own("x.log", O_WRONLY | O_CREAT, 0, &pd_test_nobody,
                          NULL, pd_test_err, sizeof(pd_test_err));
    assert_int_equal(fd, PD_INVALID_FILE);
    assert_string_equal(pd_test_err, "not an absolute path");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regular_file_opens),
        cmocka_unit_test(test_symlink_refused),
        cmocka_unit_test(test_hard_link_refused),
        cmocka_unit_test(test_fifo_and_devices),
        cmocka_unit_test(test_dirs_against_a_user),
        cmocka_unit_test(test_resolved_directory),
    };

    return cmocka_run_group_tests(tests, pd_test_setup, pd_test_teardown);
}
