/*
 * test_pd_saver_pg.c: the cluster saver's durable log (pd_saver_pg.c)
 * against a real PostgreSQL server (t/unit/pd_test_pg.h starts one, with
 * pg_stat_statements to count what ran): every statement's generic plan
 * reaches pd_messages through an index (on a new table, and on one an
 * earlier version made, where the old ack is caught reading it whole);
 * the stores of a loop turn are one INSERT, bounded, answered once
 * committed, and while batches are being committed the next turns'
 * stores wait and join; acks are one DELETE; a batch that meets a row
 * already there goes again with the conflict check, and the acks rolled
 * back with it go with the next DELETE; expired rows go in bounded
 * slices, each deleted row told to the hot store; a lost link fails what
 * it held.
 */

#include "pd_core.h"
#include "pd_saver_pg.h"

#include <setjmp.h>
#include <cmocka.h>

#include "../../pd_test_pg.h"


#define PD_TEST_BIG_TABLE   200000   /* rows: the planner's view of a
                                      * table in use */
#define PD_TEST_NSTORE      300
#define PD_TEST_NEXPIRED    2500
#define PD_TEST_FAR         "4102444800000"    /* 2100-01-01, unix ms */


/* one store's outcome, as its done callback saw it */
typedef struct {
    pd_uint_t        calls;
    pd_int_t         rc;
    const char      *id;           /* look for its row when answered */
    long             visible;      /* rows of id another session saw */
} pd_test_done_t;


/*
 * The table and the ack before this file.  convert_from() takes a name,
 * whose collation is "C", so its text compares in "C"; the primary key
 * is in the database's default collation, which therefore cannot serve
 * the comparison: every ack read the table whole.
 */
static const char  pd_test_old_table[] =
    "CREATE TABLE pd_messages ("
    " uid text NOT NULL, id text NOT NULL, app text NOT NULL,"
    " data text NOT NULL, expires bigint NOT NULL,"
    " acked boolean NOT NULL DEFAULT false,"
    " stored timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (uid, id))";
static const char  pd_test_old_index[] =
    "CREATE INDEX pd_messages_pending ON pd_messages (stored)"
    " WHERE NOT acked";
static const char  pd_test_old_ack[] =
    "UPDATE pd_messages SET acked = true"
    " WHERE uid = convert_from($1, 'UTF8')"
    " AND id = convert_from($2, 'UTF8')";

/* arguments to EXPLAIN each statement with; every statement needs one */
static const struct {
    const char  *name;
    const char  *args;
} pd_test_args[] = {
    { "pd_store", "('{u1,u2}', '{1,1}', '{n-1}', '{a}', '{x}', '{99}',"
                  " '{\"\"}')" },
    { "pd_store_again", "('{u1,u2}', '{1,1}', '{n-1}', '{a}', '{x}',"
                        " '{99}', '{\"\"}')" },
    { "pd_store_one", "('{u1}', '{n-1}', '{a}', '{x}', '{99}', '{\"\"}')" },
    { "pd_store_one_again", "('{u1}', '{n-1}', '{a}', '{x}', '{99}',"
                            " '{\"\"}')" },
    { "pd_ack", "('{u1}', '{n-1}')" },
    { "pd_reload", "(5, 'u1', '-infinity', '', 1000)" },
    { "pd_sweep", "(5, 1000)" },
    { "pd_test_old_ack", "('u1', 'n-1')" },
    { NULL, NULL }
};


/* helpers */

static PGconn *
pd_test_conn(void)
{
    PGconn  *c;

    c = PQconnectdb(pd_test_conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    (void) PQsetNoticeProcessor(c, pd_test_quiet, NULL);

    return c;
}


static void
pd_test_exec(PGconn *c, const char *sql)
{
    PGresult  *res;

    res = PQexec(c, sql);

    if (PQresultStatus(res) != PGRES_COMMAND_OK
        && PQresultStatus(res) != PGRES_TUPLES_OK)
    {
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    }

    PQclear(res);
}


/* the first field of a one-row answer, as a number */
static long
pd_test_long(const char *sql)
{
    char  v[64];

    assert_true(pd_test_sql(sql, v, sizeof(v)));

    return atol(v);
}


static const char *
pd_test_stmt_sql(const char *name)
{
    const pd_saver_pg_stmt_t  *st;

    for (st = pd_saver_pg_stmts; st->name; st++) {
        if (strcmp(st->name, name) == 0) {
            return st->sql;
        }
    }

    fail_msg("no statement \"%s\"", name);
    return NULL;
}


/* what pg_stat_statements counted for a statement: its executions, or
 * the rows they touched */
static long
pd_test_stat(const char *name, const char *what)
{
    PGconn       *c;
    PGresult     *res;
    const char   *values[1];
    char          sql[128];
    long          n;

    c = pd_test_conn();

    (void) snprintf(sql, sizeof(sql), "SELECT coalesce(sum(%s), 0)"
                    " FROM pg_stat_statements WHERE query = $1", what);
    values[0] = pd_test_stmt_sql(name);

    res = PQexecParams(c, sql, 1, NULL, values, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    n = atol(PQgetvalue(res, 0, 0));

    PQclear(res);
    PQfinish(c);

    return n;
}

/* the same for both forms of the INSERT: pd_store (the uids joined to
 * their message) and pd_store_one (one uid a message); again: their
 * ON CONFLICT forms */
static long
pd_test_stores(const char *what, int again)
{
    return pd_test_stat(again ? "pd_store_again" : "pd_store", what)
           + pd_test_stat(again ? "pd_store_one_again" : "pd_store_one",
                          what);
}


/* a fresh table and fresh counts */
static void
pd_test_fresh(void)
{
    pd_test_need_pg();

    assert_true(pd_test_sql("DROP TABLE IF EXISTS pd_messages", NULL, 0));
    assert_true(pd_test_sql("CREATE EXTENSION IF NOT EXISTS "
                            "pg_stat_statements", NULL, 0));
    assert_true(pd_test_sql("SELECT pg_stat_statements_reset()", NULL, 0));
}


/* connected, and the schema's statements answered: a test that locks
 * the table must not catch a CREATE INDEX still on its way */
static int
pd_test_log_up(void *data)
{
    return pd_saver_pg_connected(data) && pd_saver_pg_pending(data) == 0
           && pd_test_long("SELECT count(*) FROM pg_class"
                           " WHERE relname = 'pd_messages'") == 1;
}


/* the command timeout is long: these tests hold locks on purpose, and a
 * loaded machine (a sanitizer build is slow) must not turn a held lock
 * into a reconnect */
static pd_saver_pg_t *
pd_test_log_create(pd_uint_t sweep)
{
    pd_saver_pg_t  *sp;

    sp = pd_saver_pg_create(pd_test_conninfo, 60000, sweep, &pd_test_log);
    assert_non_null(sp);
    assert_int_equal(pd_saver_pg_connect(sp), PD_OK);
    assert_true(pd_test_run(pd_test_log_up, sp, 10000));

    return sp;
}


static void
pd_test_done(void *data, pd_int_t rc)
{
    pd_test_done_t  *d = data;
    char             sql[256];

    d->calls++;
    d->rc = rc;

    /* answered: committed, so another session sees the row already */
    if (d->id != NULL && rc == PD_OK) {
        (void) snprintf(sql, sizeof(sql), "SELECT count(*) FROM pd_messages"
                        " WHERE id = '%s'", d->id);
        d->visible = pd_test_long(sql);
    }
}


typedef struct {
    pd_test_done_t  *done;
    pd_uint_t        n;
} pd_test_dones_t;


static int
pd_test_all_done(void *data)
{
    pd_test_dones_t  *ds = data;
    pd_uint_t         i;

    for (i = 0; i < ds->n; i++) {
        if (ds->done[i].calls == 0) {
            return 0;
        }
    }

    return 1;
}


static void
pd_test_wait_done(pd_test_done_t *done, pd_uint_t n)
{
    pd_test_dones_t  ds = { done, n };
    pd_uint_t        i;

    assert_true(pd_test_run(pd_test_all_done, &ds, 10000));

    /* and once only: a few more turns show no second call */
    (void) pd_test_run(pd_test_never, NULL, 50);

    for (i = 0; i < n; i++) {
        assert_int_equal(done[i].calls, 1);
    }
}


/* one message of n uids "<prefix><k>" */
static pd_int_t
pd_test_store(pd_saver_pg_t *sp, const char *prefix, pd_uint_t n,
    const char *id, const char *data, uint64_t expires, pd_test_done_t *d)
{
    pd_str_t   uids[8], sid, app, sdata;
    pd_str_t   nokey = { 0, (u_char *) "" };
    char       buf[8][32];
    pd_uint_t  k;

    assert_true(n <= 8);

    for (k = 0; k < n; k++) {
        uids[k].len = (size_t) snprintf(buf[k], sizeof(buf[k]), "%s%lu",
                                        prefix, (unsigned long) k);
        uids[k].data = (u_char *) buf[k];
    }

    sid.data = (u_char *) id;
    sid.len = strlen(id);
    app.data = (u_char *) "chat";
    app.len = 4;
    sdata.data = (u_char *) data;
    sdata.len = strlen(data);

    return pd_saver_pg_store(sp, uids, n, &sid, &app, &nokey, &sdata,
                             expires, pd_test_done, d);
}


static pd_int_t
pd_test_ack(pd_saver_pg_t *sp, const char *uid, const char *id)
{
    pd_str_t  su, si;

    su.data = (u_char *) uid;
    su.len = strlen(uid);
    si.data = (u_char *) id;
    si.len = strlen(id);

    return pd_saver_pg_ack(sp, &su, &si);
}


/* the plans */

/* 1 when any line of the statement's generic plan reads pd_messages
 * whole; *indexed set when one goes through an index or a tid */
static int
pd_test_seq_scan(PGconn *c, const char *name, int *indexed)
{
    PGresult    *res;
    const char  *args, *line;
    char         sql[256];
    int          i, seq;

    args = NULL;

    for (i = 0; pd_test_args[i].name; i++) {
        if (strcmp(pd_test_args[i].name, name) == 0) {
            args = pd_test_args[i].args;
        }
    }

    if (args == NULL) {
        fail_msg("statement \"%s\" has no arguments to EXPLAIN it with",
                 name);
    }

    (void) snprintf(sql, sizeof(sql), "EXPLAIN EXECUTE %s%s", name, args);

    res = PQexec(c, sql);

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    }

    seq = 0;
    *indexed = 0;

    for (i = 0; i < PQntuples(res); i++) {
        line = PQgetvalue(res, i, 0);

        print_message("# %s: %s\n", name, line);

        if (strstr(line, "Seq Scan on pd_messages")) {
            seq = 1;
        }

        if (strstr(line, "Index Scan") || strstr(line, "Index Only Scan")
            || strstr(line, "Tid Scan"))
        {
            *indexed = 1;
        }
    }

    PQclear(res);

    return seq;
}


/* every statement of pd_saver_pg.c; with old set, the old ack too,
 * which must be caught */
static void
pd_test_check_plans(PGconn *c, int old)
{
    const pd_saver_pg_stmt_t  *st;
    int                        indexed;

    for (st = pd_saver_pg_stmts; st->name; st++) {
        if (pd_test_seq_scan(c, st->name, &indexed)) {
            fail_msg("the generic plan of \"%s\" reads pd_messages whole",
                     st->name);
        }

        /* the INSERTs read nothing; the others find their rows */
        if (strncmp(st->name, "pd_store", 8) != 0 && !indexed) {
            fail_msg("the generic plan of \"%s\" uses no index", st->name);
        }
    }

    if (old) {
        assert_true(pd_test_seq_scan(c, "pd_test_old_ack", &indexed));
    }
}


/*
 * The statements on a table as the saver's links leave it: made by
 * pd_saver_pg_setup, or (old set) made by the version before and then
 * upgraded by the same setup.  Checked empty, then in use.
 */
static void
pd_test_plans_on(PGconn *c, int old)
{
    const pd_saver_pg_stmt_t   *st;
    const char                **sql;
    PGresult                   *res;
    char                        fill[512];

    pd_test_exec(c, "RESET ALL");
    pd_test_exec(c, "DEALLOCATE ALL");
    pd_test_exec(c, old ? "SET search_path = pd_test_old"
                        : "SET search_path = public");

    if (old) {
        pd_test_exec(c, "DROP SCHEMA IF EXISTS pd_test_old CASCADE");
        pd_test_exec(c, "CREATE SCHEMA pd_test_old");
        pd_test_exec(c, pd_test_old_table);
        pd_test_exec(c, pd_test_old_index);
    }

    /* the session as the saver's links have it */
    for (sql = pd_saver_pg_setup; *sql; sql++) {
        pd_test_exec(c, *sql);
    }

    for (st = pd_saver_pg_stmts; st->name; st++) {
        res = PQprepare(c, st->name, st->sql, st->nparams, NULL);
        assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
        PQclear(res);
    }

    res = PQprepare(c, "pd_test_old_ack", pd_test_old_ack, 2, NULL);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);

    /* the plan the server would keep after five executions */
    pd_test_exec(c, "SET plan_cache_mode = force_generic_plan");

    /* a new, empty table: no statistics yet */
    pd_test_check_plans(c, old);

    /* one in use; ANALYZE makes the statements plan again */
    (void) snprintf(fill, sizeof(fill),
                    "INSERT INTO pd_messages (uid, id, app, data, expires)"
                    " SELECT 'u' || (g %% 50000), 'n-' || g, 'chat',"
                    " '{\"k\":1}', CASE WHEN g %% 10 = 0 THEN 1000"
                    " ELSE " PD_TEST_FAR " END"
                    " FROM generate_series(1, %d) AS g", PD_TEST_BIG_TABLE);
    pd_test_exec(c, fill);
    pd_test_exec(c, "ANALYZE pd_messages");

    pd_test_check_plans(c, old);
}


static void
test_plans_use_indexes(void **state)
{
    PGconn  *c;

    (void) state;

    pd_test_fresh();

    c = pd_test_conn();

    pd_test_plans_on(c, 0);
    pd_test_plans_on(c, 1);

    pd_test_exec(c, "DROP SCHEMA pd_test_old CASCADE");
    PQfinish(c);
}


/* the stores */

static void
test_store_one_insert_per_turn(void **state)
{
    pd_saver_pg_t   *sp;
    pd_test_done_t  *done;
    char             ids[PD_TEST_NSTORE][32], sql[256], v[256];
    pd_uint_t        i, rows;
    long             inserts;
    const char      *tricky;

    (void) state;

    pd_test_fresh();
    sp = pd_test_log_create(0);

    done = calloc(PD_TEST_NSTORE, sizeof(pd_test_done_t));
    assert_non_null(done);

    /* what a text literal would have to escape, and UTF-8 */
    tricky = "{\"q\":\"a\\\"b\\\\c\",\"s\":\"{x,y}\",\"u\":\"\xc3\xa9\"}";

    /* all in one loop turn: nothing runs the loop in between */
    rows = 0;
    for (i = 0; i < PD_TEST_NSTORE; i++) {
        (void) snprintf(ids[i], sizeof(ids[i]), "n-%lx", (unsigned long) i);
        done[i].id = (i == 0) ? ids[i] : NULL;

        assert_int_equal(pd_test_store(sp, "u", i % 3 + 1, ids[i],
                                       i ? "{\"k\":1}" : tricky,
                                       4000000000000ULL, &done[i]),
                         PD_OK);
        rows += i % 3 + 1;
        assert_int_equal(done[i].calls, 0);
    }

    pd_test_wait_done(done, PD_TEST_NSTORE);

    for (i = 0; i < PD_TEST_NSTORE; i++) {
        assert_int_equal(done[i].rc, PD_OK);
    }

    /* the answer came after the commit: another session saw the row */
    assert_int_equal(done[0].visible, 1);

    (void) snprintf(sql, sizeof(sql), "SELECT count(*) FROM pd_messages");
    assert_int_equal(pd_test_long(sql), rows);

    /* one statement for the turn */
    inserts = pd_test_stores("calls", 0);
    assert_int_equal(inserts, 1);
    /* multicasts in it: the form that joins uids to their message */
    assert_int_equal(pd_test_stat("pd_store", "calls"), 1);
    assert_int_equal(pd_test_stores("rows", 0), rows);

    /* byte for byte, and the multicast's rows share the message */
    assert_true(pd_test_sql("SELECT data FROM pd_messages"
                            " WHERE uid = 'u0' AND id = 'n-0'", v,
                            sizeof(v)));
    assert_string_equal(v, tricky);
    assert_int_equal(pd_test_long("SELECT count(*) FROM pd_messages"
                                  " WHERE id = 'n-2' AND app = 'chat'"
                                  " AND expires = 4000000000000"), 3);

    /* the first try has no conflict check */
    assert_int_equal(pd_test_stores("calls", 1), 0);

    /* a retry of a stored message: no new row, and stored all the same
     * (the first try fails on the primary key, the second keeps the
     * rows there) */
    pd_memzero(done, sizeof(pd_test_done_t));
    assert_int_equal(pd_test_store(sp, "u", 3, "n-2", "{\"k\":1}",
                                   4000000000000ULL, &done[0]), PD_OK);
    pd_test_wait_done(done, 1);
    assert_int_equal(done[0].rc, PD_OK);
    assert_int_equal(pd_test_long(sql), rows);
    assert_int_equal(pd_test_stores("calls", 1), 1);

    free(done);
    pd_saver_pg_destroy(sp);
}


static void
test_store_batch_bound(void **state)
{
    pd_saver_pg_t   *sp;
    pd_test_done_t  *done;
    char             id[32];
    pd_uint_t        i, n;

    (void) state;

    pd_test_fresh();
    sp = pd_test_log_create(0);

    /* one turn with more rows than a statement takes */
    n = PD_SAVER_PG_BATCH_ROWS + PD_SAVER_PG_BATCH_ROWS / 2;
    done = calloc(n, sizeof(pd_test_done_t));
    assert_non_null(done);

    for (i = 0; i < n; i++) {
        (void) snprintf(id, sizeof(id), "n-%lx", (unsigned long) i);
        assert_int_equal(pd_test_store(sp, "b", 1, id, "1", 4000000000000ULL,
                                       &done[i]), PD_OK);
    }

    pd_test_wait_done(done, n);

    for (i = 0; i < n; i++) {
        assert_int_equal(done[i].rc, PD_OK);
    }

    assert_int_equal(pd_test_stores("calls", 0), 2);
    /* one uid a message: the form without the join */
    assert_int_equal(pd_test_stat("pd_store_one", "calls"), 2);
    assert_int_equal(pd_test_long("SELECT count(*) FROM pd_messages"), n);

    free(done);
    pd_saver_pg_destroy(sp);
}


/* n-0 .. n-(count - 1) stored for the uids prefix0.., in one turn,
 * and their commits waited for; done has count slots */
static void
pd_test_stored(pd_saver_pg_t *sp, const char *prefix, pd_uint_t nuids,
    pd_uint_t count, pd_test_done_t *done)
{
    char       id[32];
    pd_uint_t  i;

    for (i = 0; i < count; i++) {
        (void) snprintf(id, sizeof(id), "n-%lu", (unsigned long) i);
        assert_int_equal(pd_test_store(sp, prefix, nuids, id, "1",
                                       4000000000000ULL, &done[i]), PD_OK);
    }

    pd_test_wait_done(done, count);
}


/*
 * The table held by a transaction of the test's own, so that a
 * statement on it waits as long as the test wants, until
 * pd_test_unlock_table().  A failed assertion leaves the connection
 * open: the server ends it, so that the next tests are not stuck behind
 * its lock.
 */
static PGconn *
pd_test_lock_table(void)
{
    PGconn  *c;

    c = pd_test_conn();
    pd_test_exec(c, "SET idle_in_transaction_session_timeout = '20s'");
    pd_test_exec(c, "BEGIN");
    pd_test_exec(c, "LOCK TABLE pd_messages IN SHARE ROW EXCLUSIVE MODE");

    return c;
}


static void
pd_test_unlock_table(PGconn *c)
{
    pd_test_exec(c, "COMMIT");
    PQfinish(c);
}


/* one statement on the table waits for the test's lock; data: how the
 * statement begins ("INSERT INTO", "DELETE FROM") */
static int
pd_test_waits(void *data)
{
    char  sql[256];

    (void) snprintf(sql, sizeof(sql),
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%s pd_messages%%'", (char *) data);

    return pd_test_long(sql) == 1;
}


static void
test_stores_wait_for_the_commit_in_flight(void **state)
{
    pd_saver_pg_t   *sp;
    pd_test_done_t   done[6];
    PGconn          *c;
    char             id[32];
    pd_uint_t        i;

    (void) state;

    pd_test_fresh();
    sp = pd_test_log_create(0);
    pd_memzero(done, sizeof(done));

    /* a commit that takes as long as the test wants */
    c = pd_test_lock_table();

    assert_int_equal(pd_test_store(sp, "w", 1, "n-0", "1", 4000000000000ULL,
                                   &done[0]), PD_OK);
    assert_true(pd_test_run(pd_test_waits, "INSERT INTO", 10000));

    /* five more, each in loop turns of its own, while it waits (and
     * the next ones behind it) */
    for (i = 1; i < 6; i++) {
        (void) snprintf(id, sizeof(id), "n-%lu", (unsigned long) i);
        assert_int_equal(pd_test_store(sp, "w", 1, id, "1",
                                       4000000000000ULL, &done[i]), PD_OK);
        (void) pd_test_run(pd_test_never, NULL, 20);
        assert_int_equal(done[i].calls, 0);
    }

    pd_test_unlock_table(c);

    pd_test_wait_done(done, 6);

    for (i = 0; i < 6; i++) {
        assert_int_equal(done[i].rc, PD_OK);
    }

    /* the first turns' alone, up to PD_SAVER_PG_INFLIGHT of them; then
     * one for the rest, which waited */
    assert_int_equal(pd_test_stores("calls", 0),
                     PD_SAVER_PG_INFLIGHT + 1);
    assert_int_equal(pd_test_long("SELECT count(*) FROM pd_messages"), 6);

    pd_saver_pg_destroy(sp);
}


static void
test_store_failure_fails_the_batch(void **state)
{
    pd_saver_pg_t   *sp;
    pd_test_done_t   done[3];

    (void) state;

    pd_test_fresh();
    sp = pd_test_log_create(0);
    pd_memzero(done, sizeof(done));

    /* not UTF-8: the server refuses the statement, and with it the
     * other message of the turn */
    assert_int_equal(pd_test_store(sp, "f", 1, "n-1", "\"ok\"",
                                   4000000000000ULL, &done[0]), PD_OK);
    assert_int_equal(pd_test_store(sp, "f", 1, "n-2", "\"\xff\"",
                                   4000000000000ULL, &done[1]), PD_OK);
    pd_test_wait_done(done, 2);

    assert_int_equal(done[0].rc, PD_ERROR);
    assert_int_equal(done[1].rc, PD_ERROR);
    assert_int_equal(pd_test_long("SELECT count(*) FROM pd_messages"), 0);

    /* the link goes on */
    assert_int_equal(pd_test_store(sp, "f", 1, "n-3", "\"ok\"",
                                   4000000000000ULL, &done[2]), PD_OK);
    pd_test_wait_done(&done[2], 1);
    assert_int_equal(done[2].rc, PD_OK);
    assert_int_equal(pd_test_long("SELECT count(*) FROM pd_messages"), 1);

    pd_saver_pg_destroy(sp);
}


/* the acks */

static int
pd_test_rows_left(void *data)
{
    return pd_test_long("SELECT count(*) FROM pd_messages") == *(long *) data;
}


static void
test_acks_one_delete_per_turn(void **state)
{
    pd_saver_pg_t   *sp;
    pd_test_done_t   done[10];
    char             id[32], uid[32];
    pd_uint_t        i;
    long             left;

    (void) state;

    pd_test_fresh();
    sp = pd_test_log_create(0);
    pd_memzero(done, sizeof(done));

    /* a0..a1 get n-0..n-9 each */
    pd_test_stored(sp, "a", 2, 10, done);

    /* a0 acks six in one turn, among ids a client could make up */
    for (i = 0; i < 6; i++) {
        (void) snprintf(id, sizeof(id), "n-%lu", (unsigned long) i);
        assert_int_equal(pd_test_ack(sp, "a0", id), PD_OK);
    }

    assert_int_equal(pd_test_ack(sp, "a0", "n-7') OR true --"),
                     PD_DECLINED);
    assert_int_equal(pd_test_ack(sp, "a0", ""), PD_DECLINED);
    assert_int_equal(pd_test_ack(sp, "a0", "n-\xc3\xa9"), PD_DECLINED);
    assert_int_equal(pd_test_ack(sp, "a0", "n-00000000000000000000000000000"
                                 "00000000000000000000000000000000000000"
                                 "0000000000000000"), PD_DECLINED);
    (void) snprintf(uid, sizeof(uid), "a 0");
    assert_int_equal(pd_test_ack(sp, uid, "n-8"), PD_DECLINED);

    left = 20 - 6;
    assert_true(pd_test_run(pd_test_rows_left, &left, 10000));

    assert_int_equal(pd_test_stat("pd_ack", "calls"), 1);
    assert_int_equal(pd_test_long("SELECT count(*) FROM pd_messages"
                                  " WHERE uid = 'a0'"), 4);
    assert_int_equal(pd_test_long("SELECT count(*) FROM pd_messages"
                                  " WHERE uid = 'a1'"), 10);

    pd_saver_pg_destroy(sp);
}


/*
 * A link whose acks ride with its stores keeps two INSERTs in flight all
 * the same (the count was of statements: an INSERT and its DELETE made
 * the two, and the next stores waited for both); an ack made while an
 * INSERT is in flight waits for the link to drain, then leaves.
 */
static void
test_acks_leave_two_inserts_in_flight(void **state)
{
    pd_saver_pg_t   *sp;
    pd_test_done_t   done[5];
    PGconn          *c;
    long             left;

    (void) state;

    pd_test_fresh();
    sp = pd_test_log_create(0);
    pd_memzero(done, sizeof(done));

    assert_int_equal(pd_test_store(sp, "k", 1, "n-0", "1", 4000000000000ULL,
                                   &done[0]), PD_OK);
    pd_test_wait_done(done, 1);

    c = pd_test_lock_table();

    /* a turn's store and ack: an INSERT and a DELETE, on the lock */
    assert_int_equal(pd_test_store(sp, "k", 1, "n-1", "1", 4000000000000ULL,
                                   &done[1]), PD_OK);
    assert_int_equal(pd_test_ack(sp, "k0", "n-0"), PD_OK);
    assert_true(pd_test_run(pd_test_waits, "INSERT INTO", 10000));

    /* the next turn's store goes behind it; an ack of this turn waits */
    assert_int_equal(pd_test_store(sp, "k", 1, "n-2", "1", 4000000000000ULL,
                                   &done[2]), PD_OK);
    (void) pd_test_run(pd_test_never, NULL, 20);
    assert_int_equal(pd_test_ack(sp, "k0", "n-1"), PD_OK);

    /* and the next ones wait for one of the two */
    assert_int_equal(pd_test_store(sp, "k", 1, "n-3", "1", 4000000000000ULL,
                                   &done[3]), PD_OK);
    (void) pd_test_run(pd_test_never, NULL, 20);
    assert_int_equal(pd_test_store(sp, "k", 1, "n-4", "1", 4000000000000ULL,
                                   &done[4]), PD_OK);
    (void) pd_test_run(pd_test_never, NULL, 20);

    pd_test_unlock_table(c);

    pd_test_wait_done(&done[1], 4);

    /* n-0, then n-1, n-2 (in flight together), then n-3 and n-4 */
    assert_int_equal(pd_test_stores("calls", 0), 4);

    /* both acks done: n-0 with the first, n-1 once the link drained */
    left = 3;
    assert_true(pd_test_run(pd_test_rows_left, &left, 10000));
    assert_int_equal(pd_test_stat("pd_ack", "calls"), 2);

    pd_saver_pg_destroy(sp);
}


/*
 * Acks of a node that stores nothing leave alone once due, one DELETE
 * at a time: while one waits, the next acks gather behind it instead of
 * a statement every PD_SAVER_PG_ACK_WAIT piling up on a stalled server.
 */
static void
test_acks_alone_one_delete_at_a_time(void **state)
{
    pd_saver_pg_t   *sp;
    pd_test_done_t   done[6];
    PGconn          *c;
    char             id[32];
    pd_uint_t        i;
    long             left;

    (void) state;

    pd_test_fresh();
    sp = pd_test_log_create(0);
    pd_memzero(done, sizeof(done));

    pd_test_stored(sp, "d", 1, 6, done);

    c = pd_test_lock_table();

    assert_int_equal(pd_test_ack(sp, "d0", "n-0"), PD_OK);
    assert_true(pd_test_run(pd_test_waits, "DELETE FROM", 10000));

    /* more acks, each waiting past its due time while the first waits */
    for (i = 1; i < 5; i++) {
        (void) snprintf(id, sizeof(id), "n-%lu", (unsigned long) i);
        assert_int_equal(pd_test_ack(sp, "d0", id), PD_OK);
        (void) pd_test_run(pd_test_never, NULL, 2 * PD_SAVER_PG_ACK_WAIT);
    }

    pd_test_unlock_table(c);

    left = 1;
    assert_true(pd_test_run(pd_test_rows_left, &left, 10000));

    /* the first, then the four that gathered behind it */
    assert_int_equal(pd_test_stat("pd_ack", "calls"), 2);

    pd_saver_pg_destroy(sp);
}


/*
 * A store that meets a row of its own (uid, id) fails its segment, and
 * the acks of the same turn with it: the stores go again with the
 * conflict check (a new message of the batch is stored, the old row is
 * kept), and the acks with the next DELETE.
 */
static void
test_conflict_stores_again_and_keeps_acks(void **state)
{
    pd_saver_pg_t   *sp;
    pd_test_done_t   done[5];
    long             left;

    (void) state;

    pd_test_fresh();
    sp = pd_test_log_create(0);
    pd_memzero(done, sizeof(done));

    assert_int_equal(pd_test_store(sp, "c", 1, "n-1", "\"old\"",
                                   4000000000000ULL, &done[0]), PD_OK);
    assert_int_equal(pd_test_store(sp, "c", 1, "n-2", "1",
                                   4000000000000ULL, &done[1]), PD_OK);
    pd_test_wait_done(done, 2);
    assert_int_equal(done[0].rc, PD_OK);
    assert_int_equal(done[1].rc, PD_OK);

    /* one turn: an ack, a store of an id that is there, a new one */
    assert_int_equal(pd_test_ack(sp, "c0", "n-2"), PD_OK);
    assert_int_equal(pd_test_store(sp, "c", 1, "n-1", "\"new\"",
                                   4000000000000ULL, &done[2]), PD_OK);
    assert_int_equal(pd_test_store(sp, "c", 1, "n-3", "1",
                                   4000000000000ULL, &done[3]), PD_OK);
    pd_test_wait_done(&done[2], 2);

    assert_int_equal(done[2].rc, PD_OK);
    assert_int_equal(done[3].rc, PD_OK);
    assert_int_equal(pd_test_stores("calls", 1), 1);
    assert_int_equal(pd_test_stat("pd_store_one_again", "calls"), 1);

    /* the row there stays as it was; the new message is in */
    assert_int_equal(pd_test_long("SELECT count(*) FROM pd_messages"
                                  " WHERE id = 'n-1' AND data = '\"old\"'"),
                     1);
    assert_int_equal(pd_test_long("SELECT count(*) FROM pd_messages"
                                  " WHERE id = 'n-3'"), 1);

    /* the ack rolled back with the first try went again */
    left = 2;
    assert_true(pd_test_run(pd_test_rows_left, &left, 10000));
    assert_int_equal(pd_test_long("SELECT count(*) FROM pd_messages"
                                  " WHERE id = 'n-2'"), 0);

    pd_saver_pg_destroy(sp);
}


/*
 * A full ack batch leaves at once; a row of the INSERT still open (a
 * store answered by Redis as a full mailbox, its row forgotten in the
 * same turn) must be inserted before the DELETE that forgets it runs.
 */
static void
test_full_ack_batch_after_the_open_insert(void **state)
{
    pd_saver_pg_t   *sp;
    pd_test_done_t   done;
    char             id[32];
    pd_uint_t        i;
    long             left;

    (void) state;

    pd_test_fresh();
    sp = pd_test_log_create(0);
    pd_memzero(&done, sizeof(done));

    /* open, not yet sent: it leaves at the end of the turn */
    assert_int_equal(pd_test_store(sp, "f", 1, "n-full", "1",
                                   4000000000000ULL, &done), PD_OK);

    /* its forgetting, then acks enough to fill the batch and more */
    assert_int_equal(pd_test_ack(sp, "f0", "n-full"), PD_OK);
    for (i = 0; i < PD_SAVER_PG_BATCH_ROWS; i++) {
        (void) snprintf(id, sizeof(id), "n-%lu", (unsigned long) i);
        assert_int_equal(pd_test_ack(sp, "nobody", id), PD_OK);
    }

    pd_test_wait_done(&done, 1);
    left = 0;
    assert_true(pd_test_run(pd_test_rows_left, &left, 10000));
    assert_int_equal(pd_test_long("SELECT count(*) FROM pd_messages"), 0);

    pd_saver_pg_destroy(sp);
}


/* the sweep */

static int
pd_test_expired_gone(void *data)
{
    (void) data;

    return pd_test_long("SELECT count(*) FROM pd_messages"
                        " WHERE expires < 2000") == 0;
}


/* the rows the sweeps told of: their count, and that each is an
 * expired one (uid "s<g>", id "n-<g>", g up to PD_TEST_NEXPIRED) */
static pd_uint_t  pd_test_swept_rows;
static pd_uint_t  pd_test_swept_wrong;

static void
pd_test_swept(const PGresult *res)
{
    int  i;

    for (i = 0; i < PQntuples(res); i++) {
        if (atoi(PQgetvalue(res, i, 0) + 1) > PD_TEST_NEXPIRED
            || strcmp(PQgetvalue(res, i, 0) + 1, PQgetvalue(res, i, 1) + 2)
               != 0)
        {
            pd_test_swept_wrong++;
        }
        pd_test_swept_rows++;
    }
}


static int
pd_test_all_swept(void *data)
{
    (void) data;

    return pd_test_swept_rows >= PD_TEST_NEXPIRED;
}


static void
test_sweep_in_bounded_slices(void **state)
{
    pd_saver_pg_t  *sp;
    char            sql[512];

    (void) state;

    pd_test_fresh();
    sp = pd_test_log_create(0);
    pd_saver_pg_destroy(sp);

    (void) snprintf(sql, sizeof(sql),
                    "INSERT INTO pd_messages (uid, id, app, data, expires)"
                    " SELECT 's' || g, 'n-' || g, 'chat', '1',"
                    " CASE WHEN g <= %d THEN 1000 ELSE " PD_TEST_FAR " END"
                    " FROM generate_series(1, %d) AS g",
                    PD_TEST_NEXPIRED, PD_TEST_NEXPIRED + 100);
    assert_true(pd_test_sql(sql, NULL, 0));

    /* a sweeper: it starts a period after its link is up */
    sp = pd_test_log_create(1);
    pd_saver_pg_set_swept(sp, pd_test_swept);
    assert_true(pd_test_run(pd_test_expired_gone, NULL, 20000));

    /* each deleted row told, for the hot store to let go of it (the
     * last slice's answer may come after the table shows it gone) */
    assert_true(pd_test_run(pd_test_all_swept, NULL, 10000));
    assert_int_equal(pd_test_swept_rows, PD_TEST_NEXPIRED);
    assert_int_equal(pd_test_swept_wrong, 0);

    /* slices of at most PD_SAVER_PG_SWEEP_ROWS: one statement could not
     * have done it, and the next came at once, not a period later */
    assert_true(pd_test_stat("pd_sweep", "calls")
                >= (PD_TEST_NEXPIRED + PD_SAVER_PG_SWEEP_ROWS - 1)
                   / PD_SAVER_PG_SWEEP_ROWS);
    assert_int_equal(pd_test_stat("pd_sweep", "rows"), PD_TEST_NEXPIRED);
    assert_int_equal(pd_test_long("SELECT count(*) FROM pd_messages"), 100);

    pd_saver_pg_destroy(sp);
}


/* the reload */

typedef struct {
    pd_uint_t        calls;
    pd_uint_t        rows;
    char             order[256];
    /* the last row: where the next page starts */
    char             uid[64];
    char             stored[64];
    char             id[64];
} pd_test_reload_t;


static void
pd_test_reloaded(pd_pg_t *pg, PGresult *res, void *data)
{
    pd_test_reload_t  *r = data;
    int                i;
    size_t             len;

    (void) pg;

    r->calls++;

    assert_non_null(res);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);

    assert_int_equal(PQnfields(res), 7);
    r->rows = (pd_uint_t) PQntuples(res);

    for (i = 0; i < PQntuples(res); i++) {
        len = strlen(r->order);
        (void) snprintf(r->order + len, sizeof(r->order) - len, "%s/%s ",
                        PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        (void) snprintf(r->uid, sizeof(r->uid), "%s", PQgetvalue(res, i, 0));
        (void) snprintf(r->id, sizeof(r->id), "%s", PQgetvalue(res, i, 1));
        (void) snprintf(r->stored, sizeof(r->stored), "%s",
                        PQgetvalue(res, i, 6));
    }
}


static int
pd_test_reload_called(void *data)
{
    return ((pd_test_reload_t *) data)->calls > 0;
}


/* one page after r's last row (the first when r is fresh) */
static void
pd_test_reload_page(pd_saver_pg_t *sp, pd_test_reload_t *r, pd_uint_t limit)
{
    char  uid[64], stored[64], id[64];

    (void) snprintf(uid, sizeof(uid), "%s", r->uid);
    (void) snprintf(stored, sizeof(stored), "%s",
                    r->stored[0] ? r->stored : "-infinity");
    (void) snprintf(id, sizeof(id), "%s", r->id);

    r->calls = 0;
    r->order[0] = '\0';

    pd_time_update();
    assert_int_equal(pd_saver_pg_reload(sp, pd_time_msec,
                                        uid, stored, id, limit,
                                        pd_test_reloaded, r), PD_OK);
    assert_true(pd_test_run(pd_test_reload_called, r, 10000));
    assert_int_equal(r->calls, 1);
}


static void
test_reload_unacked_unexpired_in_pages(void **state)
{
    pd_saver_pg_t     *sp;
    pd_test_reload_t   r;

    (void) state;

    pd_test_fresh();
    sp = pd_test_log_create(0);

    /* stored in this order; an expired one, and one an earlier version
     * marked acked; r1's rows stored in the same microsecond as each
     * other (the id orders them) and against their ids' order */
    assert_true(pd_test_sql("INSERT INTO pd_messages"
                            " (uid, id, app, data, expires, acked, stored)"
                            " VALUES ('r1', 'n-2', 'chat', '1', "
                            PD_TEST_FAR ", false, now() - interval '3 s'),"
                            " ('r1', 'n-1', 'chat', '1', " PD_TEST_FAR
                            ", false, now() - interval '2 s'),"
                            " ('r1', 'n-5', 'chat', '1', " PD_TEST_FAR
                            ", false, now() - interval '2 s'),"
                            " ('r2', 'n-0', 'chat', '1', 1000, false,"
                            " now() - interval '2 s'),"
                            " ('r2', 'n-3', 'chat', '1', " PD_TEST_FAR
                            ", true, now() - interval '1 s'),"
                            " ('r2', 'n-4', 'chat', '1', " PD_TEST_FAR
                            ", false, now()),"
                            " ('r0', 'n-6', 'chat', '1', " PD_TEST_FAR
                            ", false, now())", NULL, 0));

    /* all at once: the uids in order, each one's rows in store order */
    pd_memzero(&r, sizeof(r));
    pd_test_reload_page(sp, &r, 100);
    assert_int_equal(r.rows, 5);
    assert_string_equal(r.order, "r0/n-6 r1/n-2 r1/n-1 r1/n-5 r2/n-4 ");

    /* two at a time: the same rows, a page cut inside r1's, and between
     * two rows of one microsecond */
    pd_memzero(&r, sizeof(r));
    pd_test_reload_page(sp, &r, 2);
    assert_string_equal(r.order, "r0/n-6 r1/n-2 ");
    pd_test_reload_page(sp, &r, 2);
    assert_string_equal(r.order, "r1/n-1 r1/n-5 ");
    pd_test_reload_page(sp, &r, 2);
    assert_string_equal(r.order, "r2/n-4 ");
    pd_test_reload_page(sp, &r, 2);
    assert_int_equal(r.rows, 0);

    pd_saver_pg_destroy(sp);
}


/* failures */

static int
pd_test_log_down(void *data)
{
    return !pd_saver_pg_connected(data);
}


static void
test_lost_link_fails_stores(void **state)
{
    pd_saver_pg_t   *sp;
    pd_test_done_t   done[3];

    (void) state;

    pd_test_fresh();
    sp = pd_test_log_create(0);
    pd_memzero(done, sizeof(done));

    /* queued for the end of the turn; the server dies before it */
    assert_int_equal(pd_test_store(sp, "l", 1, "n-1", "1", 4000000000000ULL,
                                   &done[0]), PD_OK);
    pd_test_pg_stop(SIGQUIT);

    pd_test_wait_done(done, 1);
    assert_int_equal(done[0].rc, PD_ERROR);

    assert_true(pd_test_run(pd_test_log_down, sp, 10000));
    assert_int_equal(pd_test_store(sp, "l", 1, "n-2", "1", 4000000000000ULL,
                                   &done[1]), PD_DECLINED);

    /* back by itself once the server is */
    pd_test_need_pg();
    assert_true(pd_test_run(pd_test_log_up, sp, 20000));
    assert_int_equal(pd_test_store(sp, "l", 1, "n-2", "1", 4000000000000ULL,
                                   &done[1]), PD_OK);
    pd_test_wait_done(&done[1], 1);
    assert_int_equal(done[1].rc, PD_OK);

    /* destroyed with a store not yet sent: answered, as failed */
    assert_int_equal(pd_test_store(sp, "l", 1, "n-3", "1", 4000000000000ULL,
                                   &done[2]), PD_OK);
    pd_saver_pg_destroy(sp);
    assert_int_equal(done[2].calls, 1);
    assert_int_equal(done[2].rc, PD_ERROR);
}


static int
pd_test_setup(void **state)
{
    (void) state;

    /* to count the statements that ran */
    pd_test_pg_settings[0] = "shared_preload_libraries=pg_stat_statements";
    pd_test_pg_settings[1] = "pg_stat_statements.track_utility=off";

    return pd_test_pg_setup();
}


static int
pd_test_teardown(void **state)
{
    (void) state;

    pd_test_pg_teardown();

    return 0;
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_plans_use_indexes),
        cmocka_unit_test(test_store_one_insert_per_turn),
        cmocka_unit_test(test_store_batch_bound),
        cmocka_unit_test(test_stores_wait_for_the_commit_in_flight),
        cmocka_unit_test(test_acks_leave_two_inserts_in_flight),
        cmocka_unit_test(test_acks_alone_one_delete_at_a_time),
        cmocka_unit_test(test_store_failure_fails_the_batch),
        cmocka_unit_test(test_acks_one_delete_per_turn),
        cmocka_unit_test(test_full_ack_batch_after_the_open_insert),
        cmocka_unit_test(test_conflict_stores_again_and_keeps_acks),
        cmocka_unit_test(test_sweep_in_bounded_slices),
        cmocka_unit_test(test_reload_unacked_unexpired_in_pages),
        cmocka_unit_test(test_lost_link_fails_stores),
    };

    return cmocka_run_group_tests(tests, pd_test_setup, pd_test_teardown);
}
