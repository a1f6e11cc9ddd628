/*
 * pd_saver_pg.c: the cluster saver's durable log in PostgreSQL.
 *
 * Statements run per batch, not per message: the stores of a batch are
 * rows of one INSERT, its acks rows of one DELETE (an ack deletes the
 * row: nothing reads acked rows), both carried as arrays in PostgreSQL's
 * binary format, so no value is ever escaped or quoted.  A batch leaves
 * at the end of the loop turn, unless PD_SAVER_PG_INFLIGHT are still
 * being committed: then it grows until one of them is answered (or to
 * its bound).  Under load a commit thus carries what arrived while the
 * last ones ran, instead of each loop turn paying a commit of its own (a
 * commit costs the server as much CPU as some twenty rows).  Nobody
 * waits for an ack's DELETE: acks ride with the next INSERT sent while
 * no other is in flight, or leave after PD_SAVER_PG_ACK_WAIT when no
 * store comes (a node that only delivers what other nodes store), or
 * when their batch is full.  Only INSERTs count as in flight: a DELETE
 * never holds the next stores back.
 *
 * An INSERT has no conflict check on its first try: a (uid, id) is new
 * unless a store is made again, and the check costs the server about a
 * quarter of each row.  A batch that meets a row of its own goes again
 * as pd_store_again, which keeps the rows there; the acks its failure
 * rolled back join the next DELETE.
 *
 * Every statement reaches its rows through an index, whatever the
 * table's size (the test of this file EXPLAINs each under a generic
 * plan); expired rows leave in slices of a bounded DELETE.
 */

#include "pd_core.h"
#include "pd_saver_pg.h"

/* element types of the arrays (pg_type.oid) */
#define PD_SP_TEXTOID     25
#define PD_SP_INT8OID     20

/* a one-dimensional array in binary: ndim, has-nulls, element type,
 * length, lower bound; then each element's length and bytes */
#define PD_SP_ARR_HEAD    20


const char  *pd_saver_pg_setup[] = {

    /*
     * Each statement below is written for an index.  A prepared
     * statement keeps its generic plan until the table's statistics
     * change, and a plan made while the table was small, or before
     * autovacuum caught up with a burst, would read the whole table on
     * every ack; with seqscan off the planner takes the index whatever
     * the statistics say (a statement with no usable index would still
     * run, read whole: the plan test catches that).
     */
    "SET enable_seqscan = off",

    /* short statements: compiling them would cost more than it saves */
    "SET jit = off",

    /* acked: set by versions before acks deleted rows; such rows are
     * never reloaded, and leave when they expire.  The names are ASCII:
     * "C" compares them byte by byte, whatever the database's locale */
    "CREATE TABLE IF NOT EXISTS pd_messages ("
    " uid text COLLATE \"C\" NOT NULL, id text COLLATE \"C\" NOT NULL,"
    " app text COLLATE \"C\" NOT NULL,"
    " data text NOT NULL, expires bigint NOT NULL,"
    " acked boolean NOT NULL DEFAULT false,"
    " stored timestamptz NOT NULL DEFAULT now(),"
    " collapse text COLLATE \"C\" NOT NULL DEFAULT '',"
    " PRIMARY KEY (uid, id))",

    /* a table of a version before collapse keys ("": none); a constant
     * default makes it a catalog change, not a rewrite, and the look
     * first spares every connect the ALTER's exclusive lock */
    "DO $$ BEGIN"
    " IF NOT EXISTS (SELECT 1 FROM information_schema.columns"
    " WHERE table_schema = current_schema()"
    " AND table_name = 'pd_messages' AND column_name = 'collapse') THEN"
    " ALTER TABLE pd_messages ADD COLUMN IF NOT EXISTS"
    " collapse text COLLATE \"C\" NOT NULL DEFAULT '';"
    " END IF; END $$",

    "CREATE INDEX IF NOT EXISTS pd_messages_expires"
    " ON pd_messages (expires)",

    NULL
};


#define PD_SP_STORE                                                        \
    "INSERT INTO pd_messages (uid, id, app, data, expires, collapse)"      \
    " SELECT u.uid, m.id, m.app, m.data, m.expires, m.collapse"            \
    " FROM unnest($1::text[], $2::int8[]) AS u (uid, n)"                   \
    " JOIN unnest($3::text[], $4::text[], $5::text[], $6::int8[],"         \
    " $7::text[])"                                                         \
    " WITH ORDINALITY AS m (id, app, data, expires, collapse, n)"          \
    " USING (n)"

/* a batch whose every message has one uid (unicasts, the common case):
 * no join of the uids to their message, a sixth of an INSERT's cost */
#define PD_SP_STORE_ONE                                                    \
    "INSERT INTO pd_messages (uid, id, app, data, expires, collapse)"      \
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]," \
    " $5::int8[], $6::text[])"

const pd_saver_pg_stmt_t  pd_saver_pg_stmts[] = {

    /* $1 the uids, $2 the message (1-based) of each; $3-$7 the id, app,
     * data, expiry and collapse key of each message: a multicast's data
     * goes once */
    { "pd_store", PD_SP_STORE, 7 },

    /* the same batch again when a row of it was there already (23505),
     * or when another statement of its segment failed: a row of the
     * same (uid, id) is a store made before, and stays.  Not the first
     * try: the conflict check costs the server a quarter of an insert */
    { "pd_store_again", PD_SP_STORE " ON CONFLICT DO NOTHING", 7 },

    /* the same for a batch of one uid a message: $1 the uids, $2-$6
     * the id, app, data, expiry and collapse key of each */
    { "pd_store_one", PD_SP_STORE_ONE, 6 },
    { "pd_store_one_again", PD_SP_STORE_ONE " ON CONFLICT DO NOTHING", 6 },

    /* $1 uids, $2 ids: the pairs acked.  A join, not IN: IN made the
     * pairs distinct first (a hash aggregate), and a row met twice (an
     * id acked twice in a turn) is deleted once either way */
    { "pd_ack",
      "DELETE FROM pd_messages m USING unnest($1::text[], $2::text[])"
      " AS a (uid, id) WHERE m.uid = a.uid AND m.id = a.id", 2 },

    /* $1 now, unix ms; $2, $3, $4 the uid, stored and id of the last
     * row of the page before ("", "-infinity", "" at first); $5 the most
     * rows.  A page of the rows in uid order, each uid's in store order:
     * the primary key gives the uids in order and the sort is per uid,
     * so a page costs its own rows, wherever it starts */
    { "pd_reload",
      "SELECT uid, id, app, data, expires, collapse, stored::text"
      " FROM pd_messages WHERE uid >= $2::text COLLATE \"C\""
      " AND (uid, stored, id) > ($2::text COLLATE \"C\","
      " $3::timestamptz, $4::text COLLATE \"C\")"
      " AND NOT acked AND expires > $1::int8"
      " ORDER BY uid, stored, id LIMIT $5::int8", 5 },

    /* $1 now, unix ms; $2 the most rows; rows another node's sweep
     * holds are left to it */
    { "pd_sweep",
      "DELETE FROM pd_messages WHERE ctid = ANY (ARRAY("
      "SELECT ctid FROM pd_messages WHERE expires <= $1::int8"
      " ORDER BY expires LIMIT $2::int8 FOR UPDATE SKIP LOCKED))"
      " RETURNING uid, id", 2 },

    { NULL, NULL, 0 }
};


/* a growing array parameter, reused from batch to batch */
typedef struct {
    u_char              *buf;
    size_t               len;        /* the header's room included */
    size_t               size;
    uint32_t             n;
    uint32_t             oid;
} pd_sp_arr_t;

typedef struct {
    pd_saver_pg_done_pt  done;
    void                *data;
} pd_sp_waiter_t;

#define PD_SP_STORE_PARAMS  7

/* the stores of one INSERT: whoever waits for it, and its parameters,
 * kept until it is answered for pd_store_again */
typedef struct {
    pd_saver_pg_t       *sp;
    u_char              *params;
    int                  lens[PD_SP_STORE_PARAMS];
    unsigned             again:1;
    unsigned             one:1;      /* one uid a message: pd_store_one,
                                      * without the message numbers */
    pd_uint_t            n;
    pd_uint_t            size;
    pd_sp_waiter_t       w[];
} pd_sp_flight_t;

/* the acks of one DELETE, kept to go again if their segment is rolled
 * back by another statement's failure (a store's conflict) */
typedef struct {
    pd_saver_pg_t       *sp;
    int                  lens[2];
    u_char               params[];
} pd_sp_acks_t;

struct pd_saver_pg_s {
    pd_pg_t             *pg;
    pd_pg_t             *sweep_pg;   /* NULL: another process sweeps */
    pd_log_t            *log;

    /* posted while a batch is open: runs at the end of the loop turn */
    pd_event_t           flush;

    /* the INSERT being filled */
    pd_sp_flight_t      *stores;
    pd_sp_arr_t          uids;
    pd_sp_arr_t          msgno;
    pd_sp_arr_t          ids;
    pd_sp_arr_t          apps;
    pd_sp_arr_t          data;
    pd_sp_arr_t          expires;
    pd_sp_arr_t          collapse;
    size_t               bytes;

    /* the DELETE being filled */
    pd_sp_arr_t          ack_uids;
    pd_sp_arr_t          ack_ids;

    pd_uint_t            inflight;   /* INSERTs not answered */
    pd_uint_t            acks_inflight; /* DELETEs not answered */
    pd_timer_t           ack_timer;  /* the acks' wait, while they wait */
    unsigned             acks_due:1; /* they waited long enough */

    pd_timer_t           sweep_timer;
    unsigned             sweeping:1;  /* a sweep statement in flight */
    pd_saver_pg_swept_pt swept;       /* told the (uid, id) swept */
};


static void pd_sp_connected(pd_pg_t *pg, void *data);
static void pd_sp_setup_done(pd_pg_t *pg, PGresult *res, void *data);
static void pd_sp_flush_handler(pd_event_t *ev);
static void pd_sp_answered(pd_saver_pg_t *sp);
static void pd_sp_ack_wait(pd_timer_t *t);
static void pd_sp_flush_stores(pd_saver_pg_t *sp);
static void pd_sp_flush_acks(pd_saver_pg_t *sp);
static pd_int_t pd_sp_exec_store(pd_saver_pg_t *sp, pd_sp_flight_t *fl,
    const char *name);
static pd_int_t pd_sp_ack_add(pd_saver_pg_t *sp, const u_char *uid,
    size_t ulen, const u_char *id, size_t ilen);
static void pd_sp_acks_again(pd_saver_pg_t *sp, pd_sp_acks_t *ak);
static void pd_sp_stored(pd_pg_t *pg, PGresult *res, void *data);
static void pd_sp_acked(pd_pg_t *pg, PGresult *res, void *data);
static void pd_sp_answer(pd_sp_flight_t *fl, pd_int_t rc);
static pd_int_t pd_sp_flight_add(pd_saver_pg_t *sp,
    pd_saver_pg_done_pt done, void *ctx);
static void pd_sp_sweep(pd_timer_t *t);
static void pd_sp_swept(pd_pg_t *pg, PGresult *res, void *data);
static void pd_sp_log_result(pd_saver_pg_t *sp, PGresult *res,
    const char *what);
static void pd_sp_arr_init(pd_sp_arr_t *a, uint32_t oid);
static pd_int_t pd_sp_arr_reserve(pd_sp_arr_t *a, size_t more,
    pd_log_t *log);
static uint32_t pd_sp_get32(const u_char *p);
static void pd_sp_arr_text(pd_sp_arr_t *a, const u_char *p, size_t len);
static void pd_sp_arr_int8(pd_sp_arr_t *a, uint64_t v);
static const char *pd_sp_arr_finish(pd_sp_arr_t *a, int *len);
static void pd_sp_arr_reset(pd_sp_arr_t *a);
static void pd_sp_arr_free(pd_sp_arr_t *a);


pd_saver_pg_t *
pd_saver_pg_create(const char *conninfo, pd_msec_t timeout, pd_uint_t sweep,
    pd_log_t *log)
{
    pd_saver_pg_t  *sp;

    sp = pd_calloc(sizeof(pd_saver_pg_t), log);
    if (sp == NULL) {
        return NULL;
    }

    sp->log = log;

    sp->pg = pd_pg_create(conninfo, timeout, log);
    if (sp->pg == NULL) {
        goto failed;
    }

    pd_pg_set_connect_handler(sp->pg, pd_sp_connected, sp);

    if (sweep) {
        sp->sweep_pg = pd_pg_create(conninfo, timeout, log);
        if (sp->sweep_pg == NULL) {
            goto failed;
        }

        pd_pg_set_connect_handler(sp->sweep_pg, pd_sp_connected, sp);
        pd_timer_init(&sp->sweep_timer, pd_sp_sweep);
    }

    sp->flush.data = sp;
    sp->flush.handler = pd_sp_flush_handler;
    pd_timer_init(&sp->ack_timer, pd_sp_ack_wait);

    pd_sp_arr_init(&sp->uids, PD_SP_TEXTOID);
    pd_sp_arr_init(&sp->msgno, PD_SP_INT8OID);
    pd_sp_arr_init(&sp->ids, PD_SP_TEXTOID);
    pd_sp_arr_init(&sp->apps, PD_SP_TEXTOID);
    pd_sp_arr_init(&sp->data, PD_SP_TEXTOID);
    pd_sp_arr_init(&sp->expires, PD_SP_INT8OID);
    pd_sp_arr_init(&sp->collapse, PD_SP_TEXTOID);
    pd_sp_arr_init(&sp->ack_uids, PD_SP_TEXTOID);
    pd_sp_arr_init(&sp->ack_ids, PD_SP_TEXTOID);

    return sp;

failed:

    if (sp->pg) {
        pd_pg_destroy(sp->pg);
    }

    pd_free(sp);
    return NULL;
}


pd_int_t
pd_saver_pg_connect(pd_saver_pg_t *sp)
{
    if (pd_pg_connect(sp->pg) != PD_OK) {
        return PD_ERROR;
    }

    return sp->sweep_pg ? pd_pg_connect(sp->sweep_pg) : PD_OK;
}


void
pd_saver_pg_set_swept(pd_saver_pg_t *sp, pd_saver_pg_swept_pt swept)
{
    sp->swept = swept;
}


pd_int_t
pd_saver_pg_connected(pd_saver_pg_t *sp)
{
    return pd_pg_connected(sp->pg);
}


pd_uint_t
pd_saver_pg_pending(pd_saver_pg_t *sp)
{
    return pd_pg_pending(sp->pg)
           + (sp->sweep_pg ? pd_pg_pending(sp->sweep_pg) : 0);
}


pd_int_t
pd_saver_pg_store(pd_saver_pg_t *sp, pd_str_t *uids, pd_uint_t n,
    pd_str_t *id, pd_str_t *app, pd_str_t *collapse, pd_str_t *data,
    uint64_t expires, pd_saver_pg_done_pt done, void *ctx)
{
    pd_uint_t  i, no;
    size_t     ubytes;

    if (!pd_pg_connected(sp->pg)) {
        return PD_DECLINED;
    }

    if (n == 0) {
        return PD_ERROR;
    }

    /* the bound: this message goes in the next statement */
    if (sp->stores
        && (sp->uids.n + n > PD_SAVER_PG_BATCH_ROWS
            || sp->bytes + data->len > PD_SAVER_PG_BATCH_BYTES))
    {
        pd_sp_flush_stores(sp);
    }

    ubytes = 0;
    for (i = 0; i < n; i++) {
        ubytes += 4 + uids[i].len;
    }

    /* room for everything first: a failure leaves the batch as it was */
    if (pd_sp_arr_reserve(&sp->uids, ubytes, sp->log) != PD_OK
        || pd_sp_arr_reserve(&sp->msgno, n * 12, sp->log) != PD_OK
        || pd_sp_arr_reserve(&sp->ids, 4 + id->len, sp->log) != PD_OK
        || pd_sp_arr_reserve(&sp->apps, 4 + app->len, sp->log) != PD_OK
        || pd_sp_arr_reserve(&sp->data, 4 + data->len, sp->log) != PD_OK
        || pd_sp_arr_reserve(&sp->expires, 12, sp->log) != PD_OK
        || pd_sp_arr_reserve(&sp->collapse, 4 + collapse->len, sp->log)
           != PD_OK
        || pd_sp_flight_add(sp, done, ctx) != PD_OK)
    {
        return PD_ERROR;
    }

    no = sp->stores->n;

    for (i = 0; i < n; i++) {
        pd_sp_arr_text(&sp->uids, uids[i].data, uids[i].len);
        pd_sp_arr_int8(&sp->msgno, no);
    }

    pd_sp_arr_text(&sp->ids, id->data, id->len);
    pd_sp_arr_text(&sp->apps, app->data, app->len);
    pd_sp_arr_text(&sp->data, data->data, data->len);
    pd_sp_arr_int8(&sp->expires, expires);
    pd_sp_arr_text(&sp->collapse,
                   collapse->len ? collapse->data : (u_char *) "",
                   collapse->len);
    sp->bytes += data->len;

    pd_post_event(&sp->flush, &pd_posted_events);

    return PD_OK;
}


pd_int_t
pd_saver_pg_ack(pd_saver_pg_t *sp, pd_str_t *uid, pd_str_t *id)
{
    if (pd_token_valid_name(uid, PD_UID_MAX) != PD_OK
        || pd_token_valid_name(id, PD_MSG_ID_LEN) != PD_OK
        || !pd_pg_connected(sp->pg))
    {
        return PD_DECLINED;
    }

    return pd_sp_ack_add(sp, uid->data, uid->len, id->data, id->len);
}


/* one ack into the open DELETE */
static pd_int_t
pd_sp_ack_add(pd_saver_pg_t *sp, const u_char *uid, size_t ulen,
    const u_char *id, size_t ilen)
{
    /* full: these wait for the next batch.  The open INSERT goes first,
     * as at the end of a turn: a row of it may be one this DELETE
     * forgets (a full mailbox's), and must not come in after it */
    if (sp->ack_uids.n >= PD_SAVER_PG_BATCH_ROWS) {
        pd_sp_flush_stores(sp);
        pd_sp_flush_acks(sp);
    }

    if (pd_sp_arr_reserve(&sp->ack_uids, 4 + ulen, sp->log) != PD_OK
        || pd_sp_arr_reserve(&sp->ack_ids, 4 + ilen, sp->log) != PD_OK)
    {
        return PD_ERROR;
    }

    pd_sp_arr_text(&sp->ack_uids, uid, ulen);
    pd_sp_arr_text(&sp->ack_ids, id, ilen);

    if (!pd_timer_is_set(&sp->ack_timer) && !sp->acks_due) {
        (void) pd_timer_add(&pd_timers, &sp->ack_timer, pd_current_msec,
                            PD_SAVER_PG_ACK_WAIT);
    }

    return PD_OK;
}


pd_int_t
pd_saver_pg_reload(pd_saver_pg_t *sp, uint64_t now, const char *uid,
    const char *stored, const char *id, pd_uint_t limit, pd_pg_result_pt cb,
    void *data)
{
    const char  *values[5];
    char         snow[24], slimit[24];

    (void) snprintf(snow, sizeof(snow), "%lu", (unsigned long) now);
    (void) snprintf(slimit, sizeof(slimit), "%lu", (unsigned long) limit);
    values[0] = snow;
    values[1] = uid;
    values[2] = stored;
    values[3] = id;
    values[4] = slimit;

    return pd_pg_exec(sp->pg, "pd_reload", 5, values, NULL, NULL, cb, data);
}


void
pd_saver_pg_destroy(pd_saver_pg_t *sp)
{
    if (sp->stores) {
        pd_sp_answer(sp->stores, PD_ERROR);
        sp->stores = NULL;
    }

    /* nothing left to flush when the failed statements answer below */
    pd_sp_arr_reset(&sp->ack_uids);
    pd_sp_arr_reset(&sp->ack_ids);
    sp->acks_due = 0;

    if (pd_timer_is_set(&sp->ack_timer)) {
        pd_timer_del(&pd_timers, &sp->ack_timer);
    }

    if (sp->sweep_pg) {
        if (pd_timer_is_set(&sp->sweep_timer)) {
            pd_timer_del(&pd_timers, &sp->sweep_timer);
        }

        pd_pg_destroy(sp->sweep_pg);
    }

    /* fails what is in flight: the flights answer their waiters */
    pd_pg_destroy(sp->pg);
    pd_delete_posted_event(&sp->flush);

    pd_sp_arr_free(&sp->uids);
    pd_sp_arr_free(&sp->msgno);
    pd_sp_arr_free(&sp->ids);
    pd_sp_arr_free(&sp->apps);
    pd_sp_arr_free(&sp->data);
    pd_sp_arr_free(&sp->expires);
    pd_sp_arr_free(&sp->collapse);
    pd_sp_arr_free(&sp->ack_uids);
    pd_sp_arr_free(&sp->ack_ids);

    pd_free(sp);
}


/*
 * After every connect of either link: the settings and the schema, each
 * a segment of its own, then the statements (prepared again by pd_pg on
 * later reconnects, before this runs).
 */
static void
pd_sp_connected(pd_pg_t *pg, void *data)
{
    pd_saver_pg_t             *sp = data;
    const char               **sql;
    const pd_saver_pg_stmt_t  *st;

    for (sql = pd_saver_pg_setup; *sql; sql++) {
        (void) pd_pg_query(pg, *sql, pd_sp_setup_done, sp);
    }

    for (st = pd_saver_pg_stmts; st->name; st++) {
        (void) pd_pg_prepare(pg, st->name, st->sql, st->nparams);
    }

    if (pg == sp->sweep_pg && !sp->sweeping
        && !pd_timer_is_set(&sp->sweep_timer))
    {
        (void) pd_timer_add(&pd_timers, &sp->sweep_timer, pd_current_msec,
                            PD_SAVER_PG_SWEEP_PERIOD);
    }
}


static void
pd_sp_setup_done(pd_pg_t *pg, PGresult *res, void *data)
{
    pd_saver_pg_t  *sp = data;
    const char     *state;

    (void) pg;

    if (res == NULL || PQresultStatus(res) == PGRES_COMMAND_OK) {
        return;
    }

    /* workers and nodes creating the schema at once: one of them wins
     * and the others see it there (23505 unique_violation in the
     * catalog, 42P07 duplicate_table, 42710 duplicate_object) */
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    if (state && (strcmp(state, "23505") == 0 || strcmp(state, "42P07") == 0
                  || strcmp(state, "42710") == 0))
    {
        pd_log_error(PD_LOG_INFO, sp->log, 0, "saver: postgres: %s",
                     PQresultErrorMessage(res));
        return;
    }

    pd_sp_log_result(sp, res, "setting up");
}


static void
pd_sp_flush_handler(pd_event_t *ev)
{
    pd_saver_pg_t  *sp = ev->data;

    /* the answer of an INSERT in flight posts this again; acks that
     * waited long enough have the link drain for them first */
    if (sp->inflight >= PD_SAVER_PG_INFLIGHT
        || (sp->acks_due && sp->inflight > 0))
    {
        return;
    }

    if (sp->inflight > 0) {
        /* behind an INSERT in flight: the stores alone */
        pd_sp_flush_stores(sp);
        return;
    }

    /* the acks go with stores: the commit is paid anyway; alone, one
     * DELETE at a time (its answer posts this again), so that a stalled
     * server does not get one every PD_SAVER_PG_ACK_WAIT */
    if (sp->stores || (sp->acks_due && sp->acks_inflight == 0)) {
        pd_sp_flush_stores(sp);
        pd_sp_flush_acks(sp);
    }
}


/* an INSERT answered: what waited for it may go */
static void
pd_sp_answered(pd_saver_pg_t *sp)
{
    if (--sp->inflight < PD_SAVER_PG_INFLIGHT
        && (sp->stores || sp->acks_due))
    {
        pd_post_event(&sp->flush, &pd_posted_events);
    }
}


static void
pd_sp_ack_wait(pd_timer_t *t)
{
    pd_saver_pg_t  *sp = pd_timer_owner(t, pd_saver_pg_t, ack_timer);

    sp->acks_due = 1;
    pd_post_event(&sp->flush, &pd_posted_events);
}


/* the open INSERT goes into this turn's segment */
static void
pd_sp_flush_stores(pd_saver_pg_t *sp)
{
    pd_sp_flight_t  *fl;
    pd_sp_arr_t     *arr[PD_SP_STORE_PARAMS];
    u_char          *p;
    size_t           total;
    int              i;

    fl = sp->stores;

    if (fl == NULL) {
        return;
    }

    sp->stores = NULL;

    /* every message has a uid at least: as many uids as ids, one each */
    fl->one = (sp->uids.n == sp->ids.n);

    arr[0] = &sp->uids;
    arr[1] = &sp->msgno;
    arr[2] = &sp->ids;
    arr[3] = &sp->apps;
    arr[4] = &sp->data;
    arr[5] = &sp->expires;
    arr[6] = &sp->collapse;

    total = 0;
    for (i = 0; i < PD_SP_STORE_PARAMS; i++) {
        (void) pd_sp_arr_finish(arr[i], &fl->lens[i]);
        total += (size_t) fl->lens[i];
    }

    /* kept for pd_store_again; the arrays are free again at once */
    fl->params = pd_alloc(total, sp->log);

    if (fl->params) {
        p = fl->params;
        for (i = 0; i < PD_SP_STORE_PARAMS; i++) {
            p = pd_cpymem(p, arr[i]->buf, fl->lens[i]);
        }
    }

    for (i = 0; i < PD_SP_STORE_PARAMS; i++) {
        pd_sp_arr_reset(arr[i]);
    }

    sp->bytes = 0;

    if (fl->params == NULL
        || pd_sp_exec_store(sp, fl, fl->one ? "pd_store_one" : "pd_store")
           != PD_OK)
    {
        pd_sp_answer(fl, PD_ERROR);
        return;
    }

    sp->inflight++;
}


static pd_int_t
pd_sp_exec_store(pd_saver_pg_t *sp, pd_sp_flight_t *fl, const char *name)
{
    const char  *values[PD_SP_STORE_PARAMS];
    int          formats[PD_SP_STORE_PARAMS], lens[PD_SP_STORE_PARAMS];
    int          i, n;
    u_char      *p;

    p = fl->params;
    n = 0;

    for (i = 0; i < PD_SP_STORE_PARAMS; i++) {
        /* pd_store_one has no message numbers ($2 of pd_store) */
        if (!(fl->one && i == 1)) {
            values[n] = (const char *) p;
            lens[n] = fl->lens[i];
            formats[n] = 1;
            n++;
        }

        p += fl->lens[i];
    }

    return pd_pg_exec(sp->pg, name, n, values, lens, formats, pd_sp_stored,
                      fl);
}


static void
pd_sp_flush_acks(pd_saver_pg_t *sp)
{
    pd_sp_acks_t  *ak;
    const char    *values[2];
    int            lens[2], formats[2];

    sp->acks_due = 0;

    if (pd_timer_is_set(&sp->ack_timer)) {
        pd_timer_del(&pd_timers, &sp->ack_timer);
    }

    if (sp->ack_uids.n == 0) {
        return;
    }

    values[0] = pd_sp_arr_finish(&sp->ack_uids, &lens[0]);
    values[1] = pd_sp_arr_finish(&sp->ack_ids, &lens[1]);
    formats[0] = 1;
    formats[1] = 1;

    /* a lost ack leaves the row until it expires, which costs nothing
     * unless Redis loses its data: then it is delivered once more */
    ak = pd_alloc(sizeof(pd_sp_acks_t) + (size_t) lens[0] + (size_t) lens[1],
                  sp->log);

    if (ak != NULL) {
        ak->sp = sp;
        ak->lens[0] = lens[0];
        ak->lens[1] = lens[1];
        pd_memcpy(ak->params, values[0], lens[0]);
        pd_memcpy(ak->params + lens[0], values[1], lens[1]);

        if (pd_pg_exec(sp->pg, "pd_ack", 2, values, lens, formats,
                       pd_sp_acked, ak) == PD_OK)
        {
            sp->acks_inflight++;

        } else {
            pd_free(ak);
        }
    }

    pd_sp_arr_reset(&sp->ack_uids);
    pd_sp_arr_reset(&sp->ack_ids);
}


/*
 * 1 when the batch may go again as pd_store_again: a row of the same
 * (uid, id) was there (a store made before), or the segment was rolled
 * back by another statement's failure
 */
static pd_int_t
pd_sp_conflict(PGresult *res)
{
    const char  *state;

    if (res == NULL) {
        return 0;
    }

    if (PQresultStatus(res) == PGRES_PIPELINE_ABORTED) {
        return 1;
    }

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    return state != NULL && strcmp(state, "23505") == 0;
}


static void
pd_sp_stored(pd_pg_t *pg, PGresult *res, void *data)
{
    pd_sp_flight_t  *fl = data;
    pd_saver_pg_t   *sp = fl->sp;
    const char      *msg;

    (void) pg;

    if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
        pd_sp_answer(fl, PD_OK);

    } else if (!fl->again && pd_sp_conflict(res)) {
        msg = PQresultErrorMessage(res);
        pd_log_error(PD_LOG_INFO, sp->log, 0, "saver: postgres: a batch of "
                     "%lu stores goes again, keeping the rows there: %s",
                     (unsigned long) fl->n,
                     *msg ? msg : "its segment was rolled back");

        fl->again = 1;

        /* still in flight: the batch's place among the in-flight ones
         * passes to its second try */
        if (pd_sp_exec_store(sp, fl, fl->one ? "pd_store_one_again"
                                                 : "pd_store_again")
            == PD_OK)
        {
            return;
        }

        pd_sp_answer(fl, PD_ERROR);

    } else {
        pd_sp_log_result(sp, res, "storing");
        pd_sp_answer(fl, PD_ERROR);
    }

    pd_sp_answered(sp);
}


static void
pd_sp_acked(pd_pg_t *pg, PGresult *res, void *data)
{
    pd_sp_acks_t   *ak = data;
    pd_saver_pg_t  *sp = ak->sp;

    (void) pg;
    if (res != NULL && PQresultStatus(res) == PGRES_PIPELINE_ABORTED) {
        /* rolled back with a store of its segment: the next DELETE */
        pd_sp_acks_again(sp, ak);

    } else if (res != NULL && PQresultStatus(res) != PGRES_COMMAND_OK) {
        pd_sp_log_result(sp, res, "deleting acked messages");
    }

    pd_free(ak);

    if (--sp->acks_inflight == 0 && sp->inflight == 0 && sp->acks_due) {
        pd_post_event(&sp->flush, &pd_posted_events);
    }
}


/* the elements of a binary text array made by pd_sp_arr_finish */
static const u_char *
pd_sp_arr_next(const u_char *p, const u_char **elt, size_t *len)
{
    *len = pd_sp_get32(p);
    *elt = p + 4;

    return p + 4 + *len;
}


static void
pd_sp_acks_again(pd_saver_pg_t *sp, pd_sp_acks_t *ak)
{
    const u_char  *u, *i, *uid, *id;
    size_t         ulen, ilen;
    uint32_t       k, n;

    u = ak->params;
    i = ak->params + ak->lens[0];
    n = pd_sp_get32(u + 12);        /* the header's element count */

    u += PD_SP_ARR_HEAD;
    i += PD_SP_ARR_HEAD;

    for (k = 0; k < n; k++) {
        u = pd_sp_arr_next(u, &uid, &ulen);
        i = pd_sp_arr_next(i, &id, &ilen);

        if (pd_sp_ack_add(sp, uid, ulen, id, ilen) != PD_OK) {
            return;
        }
    }
}


/* every waiter once; then the flight is gone */
static void
pd_sp_answer(pd_sp_flight_t *fl, pd_int_t rc)
{
    pd_uint_t  i;

    for (i = 0; i < fl->n; i++) {
        fl->w[i].done(fl->w[i].data, rc);
    }

    pd_free(fl->params);
    pd_free(fl);
}


static pd_int_t
pd_sp_flight_add(pd_saver_pg_t *sp, pd_saver_pg_done_pt done, void *ctx)
{
    pd_sp_flight_t  *fl;
    pd_uint_t        size;

    fl = sp->stores;

    if (fl == NULL || fl->n == fl->size) {
        size = fl ? fl->size * 2 : 16;

        fl = realloc(fl, sizeof(pd_sp_flight_t)
                         + size * sizeof(pd_sp_waiter_t));
        if (fl == NULL) {
            pd_log_error(PD_LOG_ALERT, sp->log, errno,
                         "realloc() of a store batch failed");
            return PD_ERROR;
        }

        if (sp->stores == NULL) {
            fl->sp = sp;
            fl->params = NULL;
            fl->again = 0;
            fl->n = 0;
        }

        fl->size = size;
        sp->stores = fl;
    }

    fl->w[fl->n].done = done;
    fl->w[fl->n].data = ctx;
    fl->n++;

    return PD_OK;
}


/* ---- the sweep: expired rows, a bounded slice at a time ---- */

static void
pd_sp_sweep(pd_timer_t *t)
{
    pd_saver_pg_t  *sp = pd_timer_owner(t, pd_saver_pg_t, sweep_timer);
    const char     *values[2];
    char            snow[24], slimit[24];

    if (!pd_pg_connected(sp->sweep_pg)) {
        /* the next connect arms the timer again */
        return;
    }

    (void) snprintf(snow, sizeof(snow), "%lu", (unsigned long) pd_time_msec);
    (void) snprintf(slimit, sizeof(slimit), "%d", PD_SAVER_PG_SWEEP_ROWS);
    values[0] = snow;
    values[1] = slimit;

    if (pd_pg_exec(sp->sweep_pg, "pd_sweep", 2, values, NULL, NULL,
                   pd_sp_swept, sp) == PD_OK)
    {
        sp->sweeping = 1;
        return;
    }

    (void) pd_timer_add(&pd_timers, t, pd_current_msec,
                        PD_SAVER_PG_SWEEP_PERIOD);
}


static void
pd_sp_swept(pd_pg_t *pg, PGresult *res, void *data)
{
    pd_saver_pg_t  *sp = data;
    pd_msec_t       next;

    (void) pg;

    sp->sweeping = 0;
    next = PD_SAVER_PG_SWEEP_PERIOD;

    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
        if (sp->swept) {
            sp->swept(res);
        }

        /* a full slice: more are likely waiting */
        if (PQntuples(res) >= PD_SAVER_PG_SWEEP_ROWS) {
            next = 0;
        }

    } else if (res != NULL) {
        pd_sp_log_result(sp, res, "deleting expired messages");
    }

    /* res NULL: the link is lost, and its next connect arms the timer */
    if (res != NULL && !pd_timer_is_set(&sp->sweep_timer)) {
        (void) pd_timer_add(&pd_timers, &sp->sweep_timer, pd_current_msec,
                            next);
    }
}


static void
pd_sp_log_result(pd_saver_pg_t *sp, PGresult *res, const char *what)
{
    if (res == NULL) {
        pd_log_error(PD_LOG_ERR, sp->log, 0,
                     "saver: postgres: no answer while %s", what);
        return;
    }

    /* another command of its segment failed, and said why */
    if (PQresultStatus(res) == PGRES_PIPELINE_ABORTED) {
        pd_log_error(PD_LOG_WARN, sp->log, 0,
                     "saver: postgres: rolled back while %s", what);
        return;
    }

    pd_log_error(PD_LOG_ERR, sp->log, 0, "saver: postgres: %s while %s",
                 PQresultErrorMessage(res), what);
}


/* ---- array parameters in binary ---- */

static void
pd_sp_arr_init(pd_sp_arr_t *a, uint32_t oid)
{
    a->buf = NULL;
    a->len = PD_SP_ARR_HEAD;
    a->size = 0;
    a->n = 0;
    a->oid = oid;
}


static pd_int_t
pd_sp_arr_reserve(pd_sp_arr_t *a, size_t more, pd_log_t *log)
{
    u_char  *p;
    size_t   size;

    if (a->len + more <= a->size) {
        return PD_OK;
    }

    size = a->size ? a->size : 4096;

    while (size < a->len + more) {
        size *= 2;
    }

    p = realloc(a->buf, size);
    if (p == NULL) {
        pd_log_error(PD_LOG_ALERT, log, errno,
                     "realloc(%zu) of a batch failed", size);
        return PD_ERROR;
    }

    a->buf = p;
    a->size = size;

    return PD_OK;
}


static void
pd_sp_put32(u_char *p, uint32_t v)
{
    p[0] = (u_char) (v >> 24);
    p[1] = (u_char) (v >> 16);
    p[2] = (u_char) (v >> 8);
    p[3] = (u_char) v;
}


static uint32_t
pd_sp_get32(const u_char *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
           | ((uint32_t) p[2] << 8) | p[3];
}


/* reserved before */
static void
pd_sp_arr_text(pd_sp_arr_t *a, const u_char *p, size_t len)
{
    pd_sp_put32(a->buf + a->len, (uint32_t) len);
    pd_memcpy(a->buf + a->len + 4, p, len);
    a->len += 4 + len;
    a->n++;
}


static void
pd_sp_arr_int8(pd_sp_arr_t *a, uint64_t v)
{
    pd_sp_put32(a->buf + a->len, 8);
    pd_sp_put32(a->buf + a->len + 4, (uint32_t) (v >> 32));
    pd_sp_put32(a->buf + a->len + 8, (uint32_t) v);
    a->len += 12;
    a->n++;
}


/* the header in front of the elements; the array holds at least one */
static const char *
pd_sp_arr_finish(pd_sp_arr_t *a, int *len)
{
    pd_sp_put32(a->buf, 1);
    pd_sp_put32(a->buf + 4, 0);
    pd_sp_put32(a->buf + 8, a->oid);
    pd_sp_put32(a->buf + 12, a->n);
    pd_sp_put32(a->buf + 16, 1);

    *len = (int) a->len;

    return (const char *) a->buf;
}


static void
pd_sp_arr_reset(pd_sp_arr_t *a)
{
    a->len = PD_SP_ARR_HEAD;
    a->n = 0;
}


static void
pd_sp_arr_free(pd_sp_arr_t *a)
{
    pd_free(a->buf);
    a->buf = NULL;
}
