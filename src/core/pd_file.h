/*
 * pd_file.h: the daemon's own files (the error log, the pid file), which
 * a master running as root opens in directories that others may reach.
 */

#ifndef PD_FILE_H
#define PD_FILE_H

/*
 * Whom the directories of the daemon's files must be safe from: the user
 * the workers run as (the `user` directive), with its primary group and
 * the supplementary groups initgroups() gives it.
 */
typedef struct {
    uid_t          uid;
    gid_t          gid;
    const char    *name;         /* for getgrouplist() and messages */
} pd_file_guard_t;

/* pd_file_open_own() flags: a character device (/dev/null) is fine */
#define PD_FILE_DEVICE_OK  0x01

/*
 * Opens one of the daemon's own files, path absolute and NUL-terminated,
 * with flags (O_WRONLY, O_APPEND, O_CREAT...; O_NOFOLLOW and O_CLOEXEC
 * are added; never pass O_TRUNC: truncate once the checks passed):
 *   - with a guard, neither the file's directory nor any directory above
 *     it (symbolic links resolved) may be writable by the guard's user,
 *     and the file is opened through the resolved directory, so nothing
 *     that user controls is on the way;
 *   - a symbolic link as the last component is not followed;
 *   - what was opened must be a regular file with a single link (a
 *     character device too with PD_FILE_DEVICE_OK): another name of the
 *     same file could be anything, /etc/shadow included.
 * Returns the descriptor (st filled when not NULL), or -1 with errno set
 * and a phrase for "cannot open ...: <phrase>" in err.
 */
pd_fd_t pd_file_open_own(const char *path, int flags, pd_uint_t opts,
    const pd_file_guard_t *guard, struct stat *st, char *err, size_t len);

/*
 * PD_OK when no directory from dir up to / (dir absolute, resolved:
 * no symbolic links) is writable by the guard's user: owned by it,
 * group-writable with a group of it, or world-writable without the
 * sticky bit.  PD_ERROR with the first such directory and why in err.
 */
pd_int_t pd_file_check_dirs(const char *dir, const pd_file_guard_t *guard,
    char *err, size_t len);

#endif /* PD_FILE_H */
