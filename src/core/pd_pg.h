/*
 * pd_pg.h: libpq in non-blocking pipeline mode on the worker's own epoll
 * loop: one long connection per pd_pg_t, prepared statements that
 * survive reconnects, one Sync (one write, one commit) per loop turn,
 * per-command timeouts and reconnection with backoff.
 */

#ifndef PD_PG_H
#define PD_PG_H

#include <libpq-fe.h>

#define PD_PG_BACKOFF_MIN   100     /* ms, first retry after a loss */
#define PD_PG_BACKOFF_MAX   5000    /* ms, doubling stops here */

typedef struct pd_pg_s  pd_pg_t;

/*
 * The result of one command, owned by pd_pg and valid only during the
 * call (PQclear() is done after it returns).  Its status is the server's
 * answer: PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_FATAL_ERROR (with
 * the SQLSTATE in PQresultErrorField()), or PGRES_PIPELINE_ABORTED when
 * another command of the same segment failed: then nothing of this one
 * remains and it may be queued again.  NULL means no answer (timeout,
 * lost link, pd_pg_destroy()); the server may or may not have committed
 * it.  A callback may queue commands and may destroy pg.
 */
typedef void (*pd_pg_result_pt)(pd_pg_t *pg, PGresult *res, void *data);
/* the link is up (again) and the remembered statements are re-sent */
typedef void (*pd_pg_connect_pt)(pd_pg_t *pg, void *data);

/*
 * A connection described by a libpq conninfo string ("host=10.0.0.5
 * port=5432 dbname=pushd user=pushd"), not yet started.  Every host must
 * be a numeric address or a socket directory, or have a hostaddr
 * (getaddrinfo() on a name may block the loop; resolve names while
 * reading the configuration); PGHOST and PGHOSTADDR are checked when the
 * string has none.  timeout bounds the connect and the age of the oldest
 * unanswered command; past it the link is considered broken.  0: no
 * timeout.  Returns NULL (logged) on a bad string, a host name or no
 * memory; the caller frees the result with pd_pg_destroy().  Needs the
 * worker's connection array and timer heap only from pd_pg_connect() on.
 */
pd_pg_t *pd_pg_create(const char *conninfo, pd_msec_t timeout,
    pd_log_t *log);

/*
 * Called from the loop after every connect, once the remembered
 * statements are queued: a place to create the schema and prepare more.
 */
void pd_pg_set_connect_handler(pd_pg_t *pg, pd_pg_connect_pt h, void *data);

/*
 * Starts the non-blocking connect on the worker's loop.  From then on the
 * connection keeps itself up: after a failed attempt or a lost link it
 * tries again after PD_PG_BACKOFF_MIN ms, doubling up to
 * PD_PG_BACKOFF_MAX, until a result shows the server healthy again.
 * PD_OK: started (or already running); PD_ERROR when called from a
 * callback on a connection that is being destroyed.
 */
pd_int_t pd_pg_connect(pd_pg_t *pg);

/*
 * Remembers a named statement of nparams parameters (their types are
 * inferred by the server) and prepares it now if the link is up, and
 * again right after every reconnect, before the connect handler runs.
 * A statement that fails to prepare (logged) is tried again by the next
 * pd_pg_prepare() of the same name, so a connect handler may create a
 * table and then prepare statements on it.  PD_OK; PD_ERROR when the
 * name is known with another text or count, nparams is out of 0..65535,
 * or on no memory.
 */
pd_int_t pd_pg_prepare(pd_pg_t *pg, const char *name, const char *sql,
    int nparams);

/*
 * Queues the execution of a statement remembered by pd_pg_prepare(),
 * with libpq's parameter arrays (values[i] NULL is SQL NULL; formats[i]
 * 1 sends lengths[i] bytes as binary; formats NULL: all text); they are
 * copied before the call returns.  Results are in text format.
 *
 * The commands queued in one loop turn form a segment: one write and one
 * Sync at the end of the turn, one implicit transaction on the server,
 * so many inserts cost one commit.  Callbacks run in queue order once
 * their segment is committed.  If a command fails, the server rolls the
 * segment back: that command gets its error and the others get
 * PGRES_PIPELINE_ABORTED.
 *
 * On PD_OK cb is called exactly once, later, never from inside this call.
 * PD_DECLINED: the link is not up (the caller answers 503 or keeps the
 * work); PD_ERROR: unknown statement, nparams other than prepared, or no
 * memory.  cb is not called on either.
 */
pd_int_t pd_pg_exec(pd_pg_t *pg, const char *name, int nparams,
    const char *const *values, const int *lengths, const int *formats,
    pd_pg_result_pt cb, void *data);

/*
 * Queues one SQL statement without parameters (schema creation, BEGIN,
 * COMMIT) in a segment of its own, so that a failed command never takes
 * a COMMIT down with it.  One statement per call: pipeline mode sends it
 * through the extended protocol, which refuses "a; b".  A transaction
 * (BEGIN, pd_pg_exec()s, COMMIT) must be queued in one go: the link is
 * shared, and whatever anyone queues in between joins it; its outcome is
 * COMMIT's PQcmdStatus(), "COMMIT" or "ROLLBACK".  COPY is not
 * supported.  Returns as pd_pg_exec().
 */
pd_int_t pd_pg_query(pd_pg_t *pg, const char *sql, pd_pg_result_pt cb,
    void *data);

/* 1 when commands are accepted, else 0 */
pd_int_t pd_pg_connected(pd_pg_t *pg);
/* commands queued or sent and not yet answered */
pd_uint_t pd_pg_pending(pd_pg_t *pg);

/*
 * Fails every pending command (cb with NULL), closes the link and frees
 * pg.  Safe from inside a callback: pg is then freed once control leaves
 * pd_pg.
 */
void pd_pg_destroy(pd_pg_t *pg);

#endif /* PD_PG_H */
