/*
 * pd_pidfile.c: the master's pid file.  It is opened and locked (flock)
 * at start, before a port is bound, and stays open and locked for the
 * master's life.  The lock, not the number in the file, tells whether a
 * master runs: a second start on the same prefix is refused instead of
 * splitting the clients with the first, and "pushd -s" never signals a
 * pid that a stale file names and another process may have by now.
 *
 * flock() rather than fcntl() locks: an flock lock belongs to the open
 * file, so it survives the fork of daemon(); a POSIX lock would stay
 * with the parent that exits.
 */

#include "pd_core.h"
#include <sys/file.h>

/* the file this master locked: a reload may name another in "pid" */
static pd_fd_t  pd_pidfile_fd = PD_INVALID_FILE;
static char     pd_pidfile_path[PATH_MAX];

static pd_int_t pd_pidfile_read(pd_fd_t fd);
static pd_fd_t pd_pidfile_open_own(const char *path, int flags,
    const pd_file_guard_t *guard, char *err, size_t len);


pd_int_t
pd_pidfile_open(pd_cycle_t *cycle, char *err, size_t len)
{
    pd_core_conf_t   *ccf;
    pd_file_guard_t   guard;
    pd_fd_t           fd;
    pd_int_t          pid;
    pd_err_t          e;
    char              why[PD_MAX_ERROR_STR / 2];

    ccf = pd_get_conf(cycle, pd_core_module);

    if (ccf->pid.len >= sizeof(pd_pidfile_path)) {
        (void) snprintf(err, len, "the pid file path is too long");
        return PD_ERROR;
    }

    /* no O_TRUNC: a file that fails the checks keeps its content */
    fd = pd_pidfile_open_own((char *) ccf->pid.data, O_RDWR | O_CREAT,
                             pd_cycle_guard(cycle, &guard), why,
                             sizeof(why));
    if (fd == PD_INVALID_FILE) {
        (void) snprintf(err, len, "cannot open the pid file \"%s\": %s",
                        ccf->pid.data, why);
        return PD_ERROR;
    }

    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        e = errno;

        if (e == EWOULDBLOCK) {
            pid = pd_pidfile_read(fd);

            if (pid > 0) {
                (void) snprintf(err, len, "already running: master process "
                                "%ld holds the pid file \"%s\"", (long) pid,
                                ccf->pid.data);
            } else {
                (void) snprintf(err, len, "already running: another master "
                                "process holds the pid file \"%s\"",
                                ccf->pid.data);
            }

        } else {
            (void) snprintf(err, len, "cannot lock the pid file \"%s\": "
                            "flock() failed: %s", ccf->pid.data,
                            strerror(e));
        }

        (void) close(fd);
        return PD_ERROR;
    }

    pd_memcpy(pd_pidfile_path, ccf->pid.data, ccf->pid.len);
    pd_pidfile_path[ccf->pid.len] = '\0';
    pd_pidfile_fd = fd;

    return PD_OK;
}


pd_int_t
pd_pidfile_write(pd_log_t *log)
{
    u_char   pid[PD_INT_T_LEN + 2], *p;
    ssize_t  n;

    if (ftruncate(pd_pidfile_fd, 0) == -1) {
        pd_log_error(PD_LOG_EMERG, log, errno, "ftruncate() \"%s\" failed",
                     pd_pidfile_path);
        return PD_ERROR;
    }

    p = pd_slprintf(pid, pid + sizeof(pid), "%d\n", (int) pd_pid);
    n = pwrite(pd_pidfile_fd, pid, (size_t) (p - pid), 0);

    if (n != p - pid) {
        pd_log_error(PD_LOG_EMERG, log, errno, "write() \"%s\" failed",
                     pd_pidfile_path);
        return PD_ERROR;
    }

    return PD_OK;
}


void
pd_pidfile_abandon(void)
{
    if (pd_pidfile_fd == PD_INVALID_FILE) {
        return;
    }

    /* still locked while it goes: nobody else is using it */
    (void) unlink(pd_pidfile_path);
    pd_pidfile_close();
}


/*
 * A binary upgrade: the file becomes "<pid>.oldbin", still ours and
 * locked (the lock is the open file's), so the new master finds no pid
 * file and writes its own; deleted at our exit under its new name.
 */
pd_int_t
pd_pidfile_rename_oldbin(pd_log_t *log)
{
    char  to[PATH_MAX + 8];

    if (pd_pidfile_fd == PD_INVALID_FILE
        || (size_t) snprintf(to, sizeof(to), "%s.oldbin", pd_pidfile_path)
           >= sizeof(pd_pidfile_path))
    {
        pd_log_error(PD_LOG_ALERT, log, 0, "no pid file to rename: the "
                     "binary upgrade is not started");
        return PD_ERROR;
    }

    if (rename(pd_pidfile_path, to) == -1) {
        pd_log_error(PD_LOG_ALERT, log, errno, "rename() \"%s\" to \"%s\" "
                     "failed: the binary upgrade is not started",
                     pd_pidfile_path, to);
        return PD_ERROR;
    }

    pd_memcpy(pd_pidfile_path, to, strlen(to) + 1);
    return PD_OK;
}

/* the new binary failed or left: the file is the pid file again */
void
pd_pidfile_rename_back(pd_log_t *log)
{
    char    to[PATH_MAX];
    size_t  n = strlen(pd_pidfile_path);

    if (pd_pidfile_fd == PD_INVALID_FILE || n < 7
        || strcmp(pd_pidfile_path + n - 7, ".oldbin") != 0)
    {
        return;
    }

    pd_memcpy(to, pd_pidfile_path, n - 7);
    to[n - 7] = '\0';

    if (rename(pd_pidfile_path, to) == -1) {
        pd_log_error(PD_LOG_ALERT, log, errno, "rename() \"%s\" back to "
                     "\"%s\" failed", pd_pidfile_path, to);
        return;
    }

    pd_memcpy(pd_pidfile_path, to, n - 6);
}

void
pd_pidfile_close(void)
{
    if (pd_pidfile_fd != PD_INVALID_FILE) {
        (void) close(pd_pidfile_fd);
        pd_pidfile_fd = PD_INVALID_FILE;
    }
}


void
pd_pidfile_delete(pd_log_t *log)
{
    if (pd_pidfile_fd == PD_INVALID_FILE) {
        return;
    }

    /*
     * Unlinked before it is unlocked: a master starting meanwhile either
     * finds this file locked (we still run) or makes a new one; it never
     * locks and writes the file we are about to remove.
     */
    if (unlink(pd_pidfile_path) == -1) {
        pd_log_error(PD_LOG_ALERT, log, errno, "unlink() \"%s\" failed",
                     pd_pidfile_path);
    }

    pd_pidfile_close();
}


pd_int_t
pd_pidfile_signal(const char *path, const char *sig)
{
    pd_fd_t   fd;
    pd_int_t  pid;
    pd_err_t  e;
    int       signo;
    char      why[PD_MAX_ERROR_STR / 2];

    if (strcmp(sig, "stop") == 0) {
        signo = SIGTERM;
    } else if (strcmp(sig, "quit") == 0) {
        signo = SIGQUIT;
    } else if (strcmp(sig, "reload") == 0) {
        signo = SIGHUP;
    } else if (strcmp(sig, "reopen") == 0) {
        signo = SIGUSR1;
    } else {
        pd_log_stderr(0, "invalid option: \"-s %s\"", sig);
        return PD_ERROR;
    }

    /* as root, a pid planted there would be signalled as root */
    fd = pd_pidfile_open_own(path, O_RDONLY, NULL, why, sizeof(why));

    if (fd == PD_INVALID_FILE) {
        if (errno == ENOENT) {
            pd_log_stderr(0, "not running: there is no pid file \"%s\"",
                          path);
        } else {
            pd_log_stderr(0, "cannot read the pid file \"%s\": %s", path,
                          why);
        }
        return PD_ERROR;
    }

    pid = pd_pidfile_read(fd);

    /* a shared lock we can take means no master holds the file */
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        (void) close(fd);

        if (pid > 0) {
            pd_log_stderr(0, "not running: the pid file \"%s\" is stale "
                          "(it names process %ld, but no master holds it)",
                          path, (long) pid);
        } else {
            pd_log_stderr(0, "not running: the pid file \"%s\" is stale "
                          "(no master holds it)", path);
        }
        return PD_ERROR;
    }

    e = errno;
    (void) close(fd);

    if (e != EWOULDBLOCK) {
        pd_log_stderr(e, "flock() \"%s\" failed", path);
        return PD_ERROR;
    }

    if (pid <= 0) {
        pd_log_stderr(0, "invalid PID number in \"%s\"", path);
        return PD_ERROR;
    }

    if (kill((pid_t) pid, signo) == -1) {
        e = errno;

        if (e == ESRCH) {
            pd_log_stderr(0, "not running: process %ld of the pid file "
                          "\"%s\" is gone", (long) pid, path);
        } else {
            pd_log_stderr(e, "kill(%ld, %d) failed", (long) pid, signo);
        }
        return PD_ERROR;
    }

    return PD_OK;
}


/* the pid at the start of the file, or -1 */
static pd_int_t
pd_pidfile_read(pd_fd_t fd)
{
    u_char   buf[PD_INT_T_LEN + 2];
    ssize_t  n;

    n = pread(fd, buf, sizeof(buf) - 1, 0);

    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }

    return (n > 0) ? pd_atoi(buf, (size_t) n) : -1;
}


/*
 * One of the daemon's own files, and moreover ours: a pid file another
 * user owns could be made to name any process for "pushd -s stop" to
 * signal as root.  -1 with errno and a phrase in err.
 */
static pd_fd_t
pd_pidfile_open_own(const char *path, int flags,
    const pd_file_guard_t *guard, char *err, size_t len)
{
    pd_fd_t      fd;
    struct stat  st;

    fd = pd_file_open_own(path, flags, 0, guard, &st, err, len);

    if (fd != PD_INVALID_FILE && st.st_uid != geteuid()) {
        (void) snprintf(err, len, "it belongs to uid %d, not to us",
                        (int) st.st_uid);
        (void) close(fd);
        errno = EPERM;
        return PD_INVALID_FILE;
    }

    return fd;
}
