/*
 * pd_file.c: opening the daemon's own files (the error log, the pid file)
 * so that a master running as root cannot be made to write, truncate or
 * chown a file of someone else's choosing.  The attack this answers: the
 * workers' user (a compromised worker) can write the log directory,
 * replaces error.log by a symbolic link to a root file, and the next
 * USR1 reopens it as root and hands it to that user.
 */

#include "pd_core.h"

/* more than any sane account has; beyond it the check refuses */
#define PD_FILE_MAX_GROUPS  1024

static const char *pd_file_dir_exposed(struct stat *st,
    const pd_file_guard_t *guard, const gid_t *groups, int ngroups);


pd_fd_t
pd_file_open_own(const char *path, int flags, pd_uint_t opts,
    const pd_file_guard_t *guard, struct stat *st, char *err, size_t len)
{
    const char   *slash;
    char          dir[PATH_MAX], real[PATH_MAX], full[PATH_MAX];
    size_t        n;
    struct stat   sb;
    pd_fd_t       fd;
    pd_err_t      e;

    if (st == NULL) {
        st = &sb;
    }

    if (guard != NULL) {
        slash = strrchr(path, '/');
        n = slash ? (size_t) (slash - path) : 0;

        if (slash == NULL || n >= sizeof(dir)) {
            (void) snprintf(err, len, "not an absolute path");
            errno = EINVAL;
            return PD_INVALID_FILE;
        }

        /* "/x" lives in "/" */
        pd_memcpy(dir, path, n ? n : 1);
        dir[n ? n : 1] = '\0';

        if (realpath(dir, real) == NULL) {
            e = errno;
            (void) snprintf(err, len, "cannot resolve its directory: %s",
                            strerror(e));
            errno = e;
            return PD_INVALID_FILE;
        }

        if (pd_file_check_dirs(real, guard, err, len) != PD_OK) {
            errno = EPERM;
            return PD_INVALID_FILE;
        }

        /*
         * open what was checked: a symbolic link on the way (as /var/run)
         * could otherwise lead through a directory that was not
         */
        n = (size_t) snprintf(full, sizeof(full), "%s/%s",
                              strcmp(real, "/") == 0 ? "" : real, slash + 1);
        if (n >= sizeof(full)) {
            (void) snprintf(err, len, "the path is too long");
            errno = ENAMETOOLONG;
            return PD_INVALID_FILE;
        }

        path = full;
    }

    /* O_NONBLOCK: a FIFO planted there would block the open forever */
    fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);

    if (fd == PD_INVALID_FILE) {
        e = errno;
        (void) snprintf(err, len, "%s", e == ELOOP
                        ? "it is a symbolic link, which is not followed"
                        : strerror(e));
        errno = e;
        return PD_INVALID_FILE;
    }

    if (fstat(fd, st) == -1) {
        e = errno;
        (void) snprintf(err, len, "fstat() failed: %s", strerror(e));
        goto failed;
    }

    if (S_ISREG(st->st_mode)) {
        if (st->st_nlink != 1) {
            (void) snprintf(err, len, "it has %lu hard links, and another "
                            "name of it could be any file",
                            (unsigned long) st->st_nlink);
            e = EPERM;
            goto failed;
        }

    } else if (!(S_ISCHR(st->st_mode) && (opts & PD_FILE_DEVICE_OK))) {
        (void) snprintf(err, len, "it is not a regular file");
        e = EPERM;
        goto failed;
    }

    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == -1) {
        e = errno;
        (void) snprintf(err, len, "fcntl() failed: %s", strerror(e));
        goto failed;
    }

    return fd;

failed:

    (void) close(fd);
    errno = e;
    return PD_INVALID_FILE;
}


pd_int_t
pd_file_check_dirs(const char *dir, const pd_file_guard_t *guard,
    char *err, size_t len)
{
    char         path[PATH_MAX], *p;
    const char  *why;
    struct stat  st;
    gid_t        groups[PD_FILE_MAX_GROUPS];
    int          ngroups;

    ngroups = PD_FILE_MAX_GROUPS;

    if (getgrouplist(guard->name, guard->gid, groups, &ngroups) == -1) {
        (void) snprintf(err, len, "the user \"%s\" is in more than %d "
                        "groups", guard->name, PD_FILE_MAX_GROUPS);
        return PD_ERROR;
    }

    if (dir[0] != '/' || strlen(dir) >= sizeof(path)) {
        (void) snprintf(err, len, "\"%s\" is not an absolute directory",
                        dir);
        return PD_ERROR;
    }

    (void) snprintf(path, sizeof(path), "%s", dir);

    /* whoever can write a directory above can swap the one below */
    for ( ;; ) {
        if (stat(path, &st) == -1) {
            (void) snprintf(err, len, "stat(\"%s\") failed: %s", path,
                            strerror(errno));
            return PD_ERROR;
        }

        why = pd_file_dir_exposed(&st, guard, groups, ngroups);

        if (why != NULL) {
            (void) snprintf(err, len, "the directory \"%s\" is writable by "
                            "the workers' user \"%s\" (%s, mode %04o): "
                            "it could plant links there; make it root's "
                            "and writable by root only", path, guard->name,
                            why, (unsigned) (st.st_mode & 07777));
            return PD_ERROR;
        }

        if (path[1] == '\0') {
            return PD_OK;
        }

        p = strrchr(path, '/');
        p[p == path ? 1 : 0] = '\0';
    }
}


/* why the guard's user can create or rename entries in it, or NULL */
static const char *
pd_file_dir_exposed(struct stat *st, const pd_file_guard_t *guard,
    const gid_t *groups, int ngroups)
{
    int  i;

    /* the owner may chmod it at will */
    if (st->st_uid == guard->uid) {
        return "owned by it";
    }

    if (st->st_mode & S_IWGRP) {
        for (i = 0; i < ngroups; i++) {
            if (groups[i] == st->st_gid) {
                return "writable by its group";
            }
        }
    }

    /* with the sticky bit (/tmp) it cannot rename or delete our entries */
    if ((st->st_mode & S_IWOTH) && !(st->st_mode & S_ISVTX)) {
        return "world-writable without the sticky bit";
    }

    return NULL;
}
