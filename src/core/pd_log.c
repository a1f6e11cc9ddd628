/* pd_log.c: the error log: one formatted line, one write(). */

#include "pd_core.h"

pd_log_t   *pd_log_root;
pd_int_t    pd_worker = -1;
pid_t       pd_pid;

static pd_log_t  pd_log_stderr_log;

static const char  *pd_log_levels[] = {
    "stderr", "emerg", "alert", "crit", "error", "warn", "notice", "info",
    "debug"
};

static u_char *pd_log_errno(u_char *p, u_char *last, pd_err_t err);
static void pd_log_write(pd_fd_t fd, u_char *buf, size_t len);


/*
 * Returns the log used before any configuration is read: stderr at
 * notice.  It is static, so it outlives every cycle.
 */
pd_log_t *
pd_log_init(void)
{
    pd_log_stderr_log.log_level = PD_LOG_NOTICE;
    pd_log_stderr_log.fd = STDERR_FILENO;

    return &pd_log_stderr_log;
}


/*
 * Parses "path [level]" into path (pointing into value, not copied, not
 * NUL-terminated) and level.  "stderr" as the path gives an empty path,
 * which pd_log_open() takes as stderr.  Returns NULL on success or an
 * error phrase; the phrase may live in a static buffer that the next call
 * overwrites.
 */
const char *
pd_log_parse(pd_str_t *value, pd_str_t *path, pd_uint_t *level)
{
    u_char      *p, *last, *word;
    size_t       len;
    pd_str_t     name;
    pd_uint_t    n;
    static char  phrase[96];

    p = value->data;
    last = p + value->len;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    word = p;
    while (p < last && *p != ' ' && *p != '\t') {
        p++;
    }

    if (p == word) {
        return "needs a path";
    }

    path->data = word;
    path->len = p - word;

    if (path->len == sizeof("stderr") - 1
        && pd_strncmp(word, "stderr", path->len) == 0)
    {
        path->data = NULL;
        path->len = 0;
    }

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    *level = PD_LOG_ERR;

    if (p == last) {
        return NULL;
    }

    name.data = p;
    while (p < last && *p != ' ' && *p != '\t') {
        p++;
    }
    name.len = p - name.data;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (p != last) {
        return "takes \"path [level]\"";
    }

    /* "stderr" (0) is a destination, not a level a user may pick */
    for (n = PD_LOG_EMERG; n < pd_nelems(pd_log_levels); n++) {
        if (pd_str_eq_lit_ci(&name, pd_log_levels[n])) {
            *level = n;
            return NULL;
        }
    }

    len = pd_min(name.len, (size_t) 32);
    (void) snprintf(phrase, sizeof(phrase), "unknown log level \"%.*s\"",
                    (int) len, name.data);

    return phrase;
}


/*
 * Opens log->path (absolute and NUL-terminated: the cycle resolves it
 * against the prefix) for appending, or takes stderr when the path is
 * empty.  The file is one of the daemon's own (pd_file_open_own(): no
 * symbolic link followed, a regular file of one link or a character
 * device, its directories checked against guard when not NULL).
 * PD_ERROR with errno set and the reason in err on failure.
 */
pd_int_t
pd_log_open(pd_log_t *log, const pd_file_guard_t *guard, char *err,
    size_t len)
{
    pd_fd_t  fd;

    if (log->path.len == 0) {
        log->fd = STDERR_FILENO;
        return PD_OK;
    }

    fd = pd_file_open_own((const char *) log->path.data,
                          O_WRONLY | O_APPEND | O_CREAT, PD_FILE_DEVICE_OK,
                          guard, NULL, err, len);
    if (fd == PD_INVALID_FILE) {
        return PD_ERROR;
    }

    log->fd = fd;

    return PD_OK;
}


/*
 * Reopens the file after rotation (USR1), with the checks of
 * pd_log_open().  The new file is opened first and moved onto the old
 * descriptor number with dup3(), so every pd_log_t that shares the number
 * (connection logs copy it) writes to the new file without being told.
 * On failure the old file stays in use and PD_ERROR is returned with
 * errno set and the reason in err.  A stderr log is left alone.
 */
pd_int_t
pd_log_reopen(pd_log_t *log, const pd_file_guard_t *guard, char *err,
    size_t len)
{
    pd_fd_t   fd;
    pd_err_t  e;

    if (log->path.len == 0) {
        return PD_OK;
    }

    fd = pd_file_open_own((const char *) log->path.data,
                          O_WRONLY | O_APPEND | O_CREAT, PD_FILE_DEVICE_OK,
                          guard, NULL, err, len);
    if (fd == PD_INVALID_FILE) {
        return PD_ERROR;
    }

    if (log->fd == PD_INVALID_FILE || log->fd == STDERR_FILENO) {
        log->fd = fd;
        return PD_OK;
    }

    /* dup2() would drop close-on-exec; dup3() keeps it */
    if (dup3(fd, log->fd, O_CLOEXEC) == -1) {
        e = errno;
        (void) snprintf(err, len, "dup3() failed: %s", strerror(e));
        (void) close(fd);
        errno = e;
        return PD_ERROR;
    }

    (void) close(fd);

    return PD_OK;
}


/* the name of a level ("error"), "unknown" past debug */
const char *
pd_log_level_name(pd_uint_t level)
{
    if (level >= pd_nelems(pd_log_levels)) {
        return "unknown";
    }

    return pd_log_levels[level];
}


/*
 * Formats and writes one line:
 *   TIME [LEVEL] PID#SLOT: *CONN MESSAGE (ERRNO: TEXT) while ACTION, CONTEXT
 * SLOT is the worker slot, "m" in the master; "*CONN" only when the log
 * belongs to a connection; the context is whatever log->handler appends,
 * its leading ", " included (so a handler with nothing to say adds
 * nothing).
 * The line is cut at PD_MAX_ERROR_STR and written with a single write(),
 * which O_APPEND makes atomic against the other processes' lines.
 */
void
pd_log_error_core(pd_uint_t level, pd_log_t *log, pd_err_t err,
    const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;
    u_char    errstr[PD_MAX_ERROR_STR];

    if (level > log->log_level) {
        return;
    }

    if (pd_log_time[0] == '\0') {
        pd_time_update();
    }

    /* one byte is kept for the newline */
    last = errstr + PD_MAX_ERROR_STR - 1;

    p = pd_slprintf(errstr, last, "%s [%s] %d#", (char *) pd_log_time,
                    pd_log_level_name(level),
                    (int) (pd_pid ? pd_pid : getpid()));

    if (pd_worker >= 0) {
        p = pd_slprintf(p, last, "%d: ", (int) pd_worker);

    } else {
        p = pd_slprintf(p, last, "m: ");
    }

    if (log->connection) {
        p = pd_slprintf(p, last, "*%lu ", (unsigned long) log->connection);
    }

    va_start(args, fmt);
    p = pd_vslprintf(p, last, fmt, args);
    va_end(args);

    if (err) {
        p = pd_log_errno(p, last, err);
    }

    if (log->action != NULL) {
        p = pd_slprintf(p, last, " while %s", log->action);
    }

    if (log->handler != NULL) {
        p = log->handler(log, p, last - p);
    }

    *p++ = '\n';

    pd_log_write(log->fd, errstr, p - errstr);
}


/*
 * "pushd: message (errno: text)" on stderr, for the command line (-t, -s)
 * and start-up failures before the log is open.
 */
void
pd_log_stderr(pd_err_t err, const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;
    u_char    errstr[PD_MAX_ERROR_STR];

    last = errstr + PD_MAX_ERROR_STR - 1;

    p = pd_cpymem(errstr, "pushd: ", sizeof("pushd: ") - 1);

    va_start(args, fmt);
    p = pd_vslprintf(p, last, fmt, args);
    va_end(args);

    if (err) {
        p = pd_log_errno(p, last, err);
    }

    *p++ = '\n';

    pd_log_write(STDERR_FILENO, errstr, p - errstr);
}


static u_char *
pd_log_errno(u_char *p, u_char *last, pd_err_t err)
{
    char  *text;
    char   buf[128];

    /* the GNU strerror_r() returns the text, maybe not in buf */
    text = strerror_r(err, buf, sizeof(buf));

    return pd_slprintf(p, last, " (%d: %s)", err, text);
}


static void
pd_log_write(pd_fd_t fd, u_char *buf, size_t len)
{
    ssize_t  n;

    /*
     * There is nowhere to report a failing log.  A short write is not
     * retried: the rest would interleave with other processes' lines.
     */
    n = write(fd, buf, len);
    (void) n;
}
