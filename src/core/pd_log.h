/*
 * pd_log.h: the error log.  Lines look like
 *   2026/11/25 22:31:07 [error] 1234#0: *17 recv() failed (104: ...) ...
 * time, level, pid#worker ("m" in the master), optional connection id,
 * message, errno text, " while <action>", ", <handler context>".
 */

#ifndef PD_LOG_H
#define PD_LOG_H

#define PD_LOG_STDERR   0
#define PD_LOG_EMERG    1
#define PD_LOG_ALERT    2
#define PD_LOG_CRIT     3
#define PD_LOG_ERR      4
#define PD_LOG_WARN     5
#define PD_LOG_NOTICE   6
#define PD_LOG_INFO     7
#define PD_LOG_DEBUG    8

#define PD_MAX_ERROR_STR  2048

typedef u_char *(*pd_log_handler_pt)(pd_log_t *log, u_char *buf, size_t len);

struct pd_log_s {
    pd_uint_t            log_level;
    pd_fd_t              fd;          /* shared by every log of the cycle */
    pd_str_t             path;        /* for reopen; empty = stderr */
    pd_uint_t            connection;  /* connection number, 0 = none */
    /* appends context with its separator: ", client: 1.2.3.4" */
    pd_log_handler_pt    handler;
    void                *data;
    /* what is going on: "reading frame" adds " while reading frame" */
    const char          *action;
};

extern pd_log_t   *pd_log_root;  /* the current cycle's log */
extern pd_int_t    pd_worker;    /* worker slot, -1 in the master */
extern pid_t       pd_pid;

/* the log used before any config is read: stderr at notice */
pd_log_t *pd_log_init(void);
/*
 * Parses "path level" (level optional, default "error"; path "stderr"
 * means stderr).  Returns NULL on success or a static error phrase.
 */
const char *pd_log_parse(pd_str_t *value, pd_str_t *path, pd_uint_t *level);
/*
 * Opens path (append, 0644) as pd_file_open_own() does, its directories
 * checked against guard (NULL: not checked); PD_ERROR with errno set and
 * the reason in err on failure.
 */
pd_int_t pd_log_open(pd_log_t *log, const pd_file_guard_t *guard,
    char *err, size_t len);
/* reopens the log file (USR1) likewise; keeps the old fd on failure */
pd_int_t pd_log_reopen(pd_log_t *log, const pd_file_guard_t *guard,
    char *err, size_t len);
const char *pd_log_level_name(pd_uint_t level);

void pd_log_error_core(pd_uint_t level, pd_log_t *log, pd_err_t err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define pd_log_error(level, log, ...)                                        \
    if ((log)->log_level >= (level))                                         \
        pd_log_error_core(level, log, __VA_ARGS__)

#if (PD_DEBUG)
#define pd_log_debug(log, ...)                                               \
    if ((log)->log_level >= PD_LOG_DEBUG)                                    \
        pd_log_error_core(PD_LOG_DEBUG, log, 0, __VA_ARGS__)
#else
#define pd_log_debug(log, ...)
#endif

/* writes to stderr with "pushd: " prefix, for the command line */
void pd_log_stderr(pd_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* PD_LOG_H */
