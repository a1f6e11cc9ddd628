/*
 * pd_saver_pg.h: the durable log of the cluster saver in PostgreSQL: the
 * schema, the statements (one place, which the code and the plan test
 * share), and the batches that carry them: the stores of a loop turn
 * (or of the turns while the last batch was being committed) go in one
 * INSERT, the acks in one DELETE, and expired rows leave in bounded
 * slices.
 */

#ifndef PD_SAVER_PG_H
#define PD_SAVER_PG_H

/* rows of one INSERT or DELETE, and the data bytes of one INSERT; a
 * message larger than the bound (a multicast) goes whole, alone */
#define PD_SAVER_PG_BATCH_ROWS    1024
#define PD_SAVER_PG_BATCH_BYTES   (1024 * 1024)

/*
 * INSERTs being committed at once on a link; more stores wait and grow
 * the next.  Two: the server finds the next batch at hand when it
 * finishes one, instead of idling for a round trip, and batches still
 * gather what arrives while it works.  The acks' DELETE rides with an
 * INSERT sent while none is in flight (or leaves alone once due, the
 * link drained for it, one DELETE at a time), so that it never runs
 * ahead of an INSERT sent before it and tried again (a conflict's
 * second try): a row it forgets (a full mailbox's) would come back.
 * (The count was of
 * statements: a node whose acks rode with its stores, an INSERT and a
 * DELETE, had one batch in flight, and its server idled for a round
 * trip after each; see pd_saver_pg.c.)
 */
#define PD_SAVER_PG_INFLIGHT      2

/* the longest acks wait for an INSERT to go with */
#define PD_SAVER_PG_ACK_WAIT      50          /* ms */

/* the sweep: at most this many expired rows per statement, again at
 * once while a statement finds that many, else after the period */
#define PD_SAVER_PG_SWEEP_ROWS    1000
#define PD_SAVER_PG_SWEEP_PERIOD  1000        /* ms */

typedef struct pd_saver_pg_s  pd_saver_pg_t;

typedef struct {
    const char      *name;
    const char      *sql;
    int              nparams;
} pd_saver_pg_stmt_t;

/*
 * Run in order after every connect, each alone: the session's planner
 * settings, then the schema (idempotent).
 */
extern const char               *pd_saver_pg_setup[];
/* the prepared statements, up to a NULL name */
extern const pd_saver_pg_stmt_t  pd_saver_pg_stmts[];

/* a store's outcome: PD_OK once its rows are committed, else PD_ERROR */
typedef void (*pd_saver_pg_done_pt)(void *data, pd_int_t rc);

/*
 * A log on conninfo (see pd_pg_create()), not yet connected; with sweep
 * set, this process also deletes expired rows, on a link of its own so
 * that a slow delete never holds up a store.  NULL on error (logged).
 */
pd_saver_pg_t *pd_saver_pg_create(const char *conninfo, pd_msec_t timeout,
    pd_uint_t sweep, pd_log_t *log);
/*
 * The rows each sweep deleted (uid, id, in text), for the hot store to
 * let go of them too: a uid that never comes back would otherwise keep
 * their ids for ever.
 */
typedef void (*pd_saver_pg_swept_pt)(const PGresult *res);
void pd_saver_pg_set_swept(pd_saver_pg_t *sp, pd_saver_pg_swept_pt swept);

/* starts the link(s); they keep themselves up from then on */
pd_int_t pd_saver_pg_connect(pd_saver_pg_t *sp);
/* 1 when stores and acks are taken */
pd_int_t pd_saver_pg_connected(pd_saver_pg_t *sp);
/* statements sent and not yet answered, on both links (the schema after
 * a connect included) */
pd_uint_t pd_saver_pg_pending(pd_saver_pg_t *sp);

/*
 * Adds the rows of one message (n uids, the id, app, collapse key (len
 * 0: none) and data once) to
 * the next INSERT; done is called exactly once, never from
 * inside this call: PD_OK when the statement holding the rows has
 * committed, PD_ERROR when it failed or never ran.  A row already there
 * (a retry) counts as stored.  Everything is copied.  PD_OK;
 * PD_DECLINED when the link is down, PD_ERROR on no memory: done is not
 * called then.
 */
pd_int_t pd_saver_pg_store(pd_saver_pg_t *sp, pd_str_t *uids, pd_uint_t n,
    pd_str_t *id, pd_str_t *app, pd_str_t *collapse, pd_str_t *data,
    uint64_t expires, pd_saver_pg_done_pt done, void *ctx);

/*
 * Adds (uid, id) to the next DELETE (with the next INSERT, or within
 * PD_SAVER_PG_ACK_WAIT).  Both must be names of [A-Za-z0-9._:@-] (an id
 * up to PD_MSG_ID_LEN bytes): a client's ack is checked before it can
 * fail a statement that other acks share.  PD_OK;
 * PD_DECLINED: not a valid name, or the link is down.
 */
pd_int_t pd_saver_pg_ack(pd_saver_pg_t *sp, pd_str_t *uid, pd_str_t *id);

/*
 * A page of at most limit rows neither acked nor expired at now (unix
 * ms), after the row of uid, stored, id (text; "", "-infinity", "" for
 * the first page): the uids in order, each one's rows in store order.
 * Columns: uid, id, app, data, expires, collapse ("": none), stored (the
 * next page's cursor with uid and id), in text; as pd_pg_exec().
 */
pd_int_t pd_saver_pg_reload(pd_saver_pg_t *sp, uint64_t now,
    const char *uid, const char *stored, const char *id, pd_uint_t limit,
    pd_pg_result_pt cb, void *data);

/*
 * Fails the stores not yet committed (done with PD_ERROR), closes the
 * links and frees sp.
 */
void pd_saver_pg_destroy(pd_saver_pg_t *sp);

#endif /* PD_SAVER_PG_H */
