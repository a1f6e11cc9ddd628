/*
 * test_pd_pg.c: the libpq adapter of pd_pg.c against a real PostgreSQL
 * server (t/unit/pd_test_pg.h starts one), driven by the worker's own
 * event loop.
 */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>

#include "../pd_test_pg.h"


#define PD_TEST_NINSERT    10000
#define PD_TEST_NBATCH     100
#define PD_TEST_NINFLIGHT  100
#define PD_TEST_BIG        (1024 * 1024)
#define PD_TEST_NBIG       4
/* results that fit the socket buffers whole, but not libpq's first */
#define PD_TEST_DRAIN      1024
#define PD_TEST_NDRAIN     16


/* what the callback of one command saw */
typedef struct {
    pd_uint_t        calls;
    pd_uint_t        nulls;
    ExecStatusType   status;
    char             value[64];     /* first field of the first row */
    char             cmd[64];       /* PQcmdStatus() */
    char             sqlstate[8];
    pd_uint_t        isnull;        /* the first field is SQL NULL */
    u_char          *bin;           /* the first field as bytea, copied */
    size_t           len;
    pd_msec_t        at;
} pd_test_res_t;

/* ordered results of a pipeline */
typedef struct {
    pd_uint_t        next;          /* index the next result must carry */
    pd_uint_t        in_order;
    pd_uint_t        right;         /* PGRES_COMMAND_OK, "INSERT 0 1" */
    pd_uint_t        calls[PD_TEST_NINSERT];
} pd_test_pipe_t;

typedef struct {
    pd_uint_t        index;
    void            *ctx;
} pd_test_tag_t;


static int          pd_test_tls;                /* the server has a cert */
static char         pd_test_ssl_cert[PATH_MAX + 32];
static char         pd_test_ssl_key[PATH_MAX + 32];

static pd_uint_t    pd_test_connects;


/* the event loop */

/* polls cond without running the loop: nothing is read meanwhile */
static int
pd_test_run_blocked(pd_test_cond_pt cond, pd_msec_t ms)
{
    struct timespec  ts = { 0, 10 * 1000 * 1000 };
    pd_msec_t        i;

    for (i = 0; i < ms; i += 10) {
        if (cond(NULL)) {
            return 1;
        }

        (void) nanosleep(&ts, NULL);
    }

    return 0;
}


static int
pd_test_is_connected(void *data)
{
    return pd_pg_connected(data) == 1;
}


static int
pd_test_is_disconnected(void *data)
{
    return pd_pg_connected(data) == 0;
}


static int
pd_test_no_pending(void *data)
{
    return pd_pg_pending(data) == 0;
}


static int
pd_test_called(void *data)
{
    pd_test_res_t  *rep = data;

    return rep->calls > 0;
}


/* a throwaway certificate, for TLS; 0 when there is no openssl command */
static int
pd_test_make_cert(void)
{
    char         bin[PATH_MAX], *path, *dir, *save, buf[PATH_MAX * 4];
    char         key[PATH_MAX + 16], crt[PATH_MAX + 16];
    const char  *argv[24];
    pid_t        pid;
    int          n, status, found;

    path = getenv("PATH");
    (void) snprintf(buf, sizeof(buf), "%s", path ? path : "");
    found = 0;

    for (dir = strtok_r(buf, ":", &save); dir && !found;
         dir = strtok_r(NULL, ":", &save))
    {
        (void) snprintf(bin, sizeof(bin), "%s/openssl", dir);
        found = (access(bin, X_OK) == 0);
    }

    if (!found) {
        return 0;
    }

    (void) snprintf(key, sizeof(key), "%s/server.key", pd_test_dir);
    (void) snprintf(crt, sizeof(crt), "%s/server.crt", pd_test_dir);

    n = 0;
    argv[n++] = bin;
    argv[n++] = "req";
    argv[n++] = "-x509";
    argv[n++] = "-newkey";
    argv[n++] = "ec";
    argv[n++] = "-pkeyopt";
    argv[n++] = "ec_paramgen_curve:prime256v1";
    argv[n++] = "-nodes";
    argv[n++] = "-subj";
    argv[n++] = "/CN=127.0.0.1";
    argv[n++] = "-days";
    argv[n++] = "2";
    argv[n++] = "-keyout";
    argv[n++] = key;
    argv[n++] = "-out";
    argv[n++] = crt;
    argv[n] = NULL;

    /* as the server's user: it must own its key */
    pid = pd_test_spawn(bin, argv, "openssl.log");

    if (pid == -1 || !pd_test_wait(pid, &status, 30000)
        || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    {
        return 0;
    }

    /* the server refuses a key others may read */
    return chmod(key, 0600) == 0;
}


/* callbacks */

static void
pd_test_on_connect(pd_pg_t *pg, void *data)
{
    (void) pg;
    (void) data;

    pd_test_connects++;
}


static void
pd_test_record(pd_pg_t *pg, PGresult *res, void *data)
{
    pd_test_res_t  *rep = data;
    const char     *s;
    u_char         *bin;
    size_t          len;

    (void) pg;

    rep->calls++;
    rep->at = pd_current_msec;

    if (res == NULL) {
        rep->nulls++;
        return;
    }

    rep->status = PQresultStatus(res);
    (void) snprintf(rep->cmd, sizeof(rep->cmd), "%s", PQcmdStatus(res));

    s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    (void) snprintf(rep->sqlstate, sizeof(rep->sqlstate), "%s",
                    s ? s : "");

    if (rep->status != PGRES_TUPLES_OK || PQntuples(res) < 1) {
        return;
    }

    rep->isnull = PQgetisnull(res, 0, 0);
    (void) snprintf(rep->value, sizeof(rep->value), "%s",
                    PQgetvalue(res, 0, 0));

    /* a bytea in text format comes hex-escaped */
    if (PQftype(res, 0) == 17 && !rep->isnull) {
        bin = PQunescapeBytea((u_char *) PQgetvalue(res, 0, 0), &len);
        assert_non_null(bin);

        free(rep->bin);
        rep->bin = malloc(len + 1);
        assert_non_null(rep->bin);
        memcpy(rep->bin, bin, len);
        rep->len = len;

        PQfreemem(bin);
    }
}


static void
pd_test_pipe_result(pd_pg_t *pg, PGresult *res, void *data)
{
    pd_test_tag_t   *tag = data;
    pd_test_pipe_t  *p = tag->ctx;

    (void) pg;

    p->calls[tag->index]++;

    if (tag->index == p->next) {
        p->in_order++;
    }

    p->next = tag->index + 1;

    if (res && PQresultStatus(res) == PGRES_COMMAND_OK
        && strcmp(PQcmdStatus(res), "INSERT 0 1") == 0)
    {
        p->right++;
    }
}


/* a failed command's callback pokes at its connection */
static void
pd_test_poke_result(pd_pg_t *pg, PGresult *res, void *data)
{
    pd_test_res_t  *rep = data;

    pd_test_record(pg, res, data);

    if (res == NULL) {
        /* already on its way back; nothing new is taken meanwhile */
        assert_int_equal(pd_pg_connect(pg), PD_OK);
        assert_int_equal(pd_pg_query(pg, "SELECT 1", pd_test_record, rep),
                         PD_DECLINED);
        assert_int_equal(pd_pg_connected(pg), 0);
    }
}


/* a result that destroys its connection */
static void
pd_test_destroy_result(pd_pg_t *pg, PGresult *res, void *data)
{
    pd_test_record(pg, res, data);
    pd_pg_destroy(pg);
}


static pd_pg_t *
pd_test_create(pd_msec_t timeout)
{
    pd_pg_t  *pg;

    pg = pd_pg_create(pd_test_conninfo, timeout, &pd_test_log);
    assert_non_null(pg);

    pd_pg_set_connect_handler(pg, pd_test_on_connect, NULL);
    pd_test_connects = 0;

    return pg;
}


static void
pd_test_connect(pd_pg_t *pg)
{
    assert_int_equal(pd_pg_connect(pg), PD_OK);
    assert_true(pd_test_run(pd_test_is_connected, pg, 5000));
}


/* runs one statement through the adapter and waits for its result */
static void
pd_test_query(pd_pg_t *pg, const char *sql, pd_test_res_t *rep)
{
    pd_memzero(rep, sizeof(pd_test_res_t));

    assert_int_equal(pd_pg_query(pg, sql, pd_test_record, rep), PD_OK);
    assert_true(pd_test_run(pd_test_called, rep, 5000));
    assert_int_equal(rep->calls, 1);
}


static pd_int_t
pd_test_exec_int(pd_pg_t *pg, const char *name, const char *v,
    pd_test_res_t *rep)
{
    const char  *values[1];

    values[0] = v;

    return pd_pg_exec(pg, name, 1, values, NULL, NULL, pd_test_record, rep);
}


/* setup */

static int
pd_test_setup(void **state)
{
    (void) state;

    if (pd_test_pg_setup() != 0) {
        return -1;
    }

    /* a cluster was made: it serves TLS too when a cert can be made */
    if (pd_test_dir[0] != '\0' && pd_test_no_server == NULL
        && pd_test_make_cert())
    {
        pd_test_tls = 1;

        (void) snprintf(pd_test_ssl_cert, sizeof(pd_test_ssl_cert),
                        "ssl_cert_file=%s/server.crt", pd_test_dir);
        (void) snprintf(pd_test_ssl_key, sizeof(pd_test_ssl_key),
                        "ssl_key_file=%s/server.key", pd_test_dir);

        pd_test_pg_settings[0] = "ssl=on";
        pd_test_pg_settings[1] = pd_test_ssl_cert;
        pd_test_pg_settings[2] = pd_test_ssl_key;
    }

    return 0;
}


static int
pd_test_teardown(void **state)
{
    (void) state;

    pd_test_pg_teardown();

    return 0;
}


/* the adapter */

static void
test_create_checks_conninfo(void **state)
{
    pd_pg_t        *pg;
    pd_test_res_t   rep;
    const char     *values[1];
    size_t          i;

    static const char  *bad[] = {
        "host=localhost",
        "host=db.example.com port=5432",
        "host=127.0.0.1,db.example.com",
        "hostaddr=,10.0.0.2 host=db.example.com,db2.example.com",
        "postgresql://db.example.com/pushd",
        "host",
        "nosuchkeyword=1",
    };

    static const char  *good[] = {
        "host=127.0.0.1 port=1",
        "host=::1",
        "host=/var/run/postgresql",
        "hostaddr=127.0.0.1 host=db.example.com",
        "host=10.0.0.1,10.0.0.2 port=5432,5433",
        "hostaddr=10.0.0.1, host=db.example.com,10.0.0.2",
        "postgresql://127.0.0.1:5432/pushd",
        "dbname=pushd",
    };

    (void) state;

    /* a name would need getaddrinfo() on the loop */
    for (i = 0; i < pd_nelems(bad); i++) {
        if (pd_pg_create(bad[i], 1000, &pd_test_log) != NULL) {
            fail_msg("\"%s\" accepted", bad[i]);
        }
    }

    for (i = 0; i < pd_nelems(good); i++) {
        pg = pd_pg_create(good[i], 1000, &pd_test_log);

        if (pg == NULL) {
            fail_msg("\"%s\" refused", good[i]);
        }

        pd_pg_destroy(pg);
    }

    /* libpq would use PGHOST when the string has no host */
    assert_int_equal(setenv("PGHOST", "db.example.com", 1), 0);
    assert_null(pd_pg_create("dbname=pushd", 1000, &pd_test_log));
    assert_int_equal(unsetenv("PGHOST"), 0);

    pg = pd_pg_create("host=127.0.0.1 port=1", 1000, &pd_test_log);
    assert_non_null(pg);

    /* statements are remembered before any link */
    assert_int_equal(pd_pg_prepare(pg, "a", "SELECT $1::int", 1), PD_OK);
    assert_int_equal(pd_pg_prepare(pg, "a", "SELECT $1::int", 1), PD_OK);
    assert_int_equal(pd_pg_prepare(pg, "a", "SELECT $1::text", 1),
                     PD_ERROR);
    assert_int_equal(pd_pg_prepare(pg, "a", "SELECT $1::int", 2), PD_ERROR);
    assert_int_equal(pd_pg_prepare(pg, "b", "SELECT 1", -1), PD_ERROR);

    values[0] = "1";
    pd_memzero(&rep, sizeof(rep));

    assert_int_equal(pd_pg_exec(pg, "a", 1, values, NULL, NULL,
                                pd_test_record, &rep), PD_DECLINED);
    assert_int_equal(pd_pg_query(pg, "SELECT 1", pd_test_record, &rep),
                     PD_DECLINED);
    assert_int_equal(pd_pg_connected(pg), 0);
    assert_int_equal(pd_pg_pending(pg), 0);

    pd_pg_destroy(pg);

    assert_int_equal(rep.calls, 0);
}


/* nothing listens: commands are declined, attempts go on quietly */
static void
test_declined_and_retry(void **state)
{
    pd_test_res_t   rep;
    pd_pg_t        *pg;
    char            conninfo[128];

    (void) state;

    pd_memzero(&rep, sizeof(rep));

    (void) snprintf(conninfo, sizeof(conninfo),
                    "host=127.0.0.1 port=%d user=postgres",
                    pd_test_free_port());

    pg = pd_pg_create(conninfo, 1000, &pd_test_log);
    assert_non_null(pg);

    /* not started */
    assert_int_equal(pd_pg_query(pg, "SELECT 1", pd_test_record, &rep),
                     PD_DECLINED);

    assert_int_equal(pd_pg_connect(pg), PD_OK);
    assert_int_equal(pd_pg_connect(pg), PD_OK);

    /* refused for a while: 100 + 200 ms of backoff go by */
    assert_false(pd_test_run(pd_test_is_connected, pg, 350));
    assert_int_equal(pd_pg_query(pg, "SELECT 1", pd_test_record, &rep),
                     PD_DECLINED);
    assert_int_equal(pd_pg_pending(pg), 0);

    pd_pg_destroy(pg);

    assert_int_equal(rep.calls, 0);

    /* the slots went back: the loop goes on without them */
    assert_false(pd_test_run(pd_test_never, NULL, 20));
    assert_int_equal(pd_test_cycle.free_connection_n, 64);
}


static void
test_select_one(void **state)
{
    pd_test_res_t   rep, multi;
    pd_pg_t        *pg;

    (void) state;

    pd_test_need_pg();
    pd_memzero(&rep, sizeof(rep));

    pg = pd_test_create(1000);
    pd_test_connect(pg);
    assert_int_equal(pd_test_connects, 1);

    assert_int_equal(pd_pg_query(pg, "SELECT 1", pd_test_record, &rep),
                     PD_OK);
    assert_int_equal(pd_pg_pending(pg), 1);
    /* never answered from inside the call */
    assert_int_equal(rep.calls, 0);

    assert_true(pd_test_run(pd_test_called, &rep, 2000));
    assert_int_equal(rep.calls, 1);
    assert_int_equal(rep.nulls, 0);
    assert_int_equal(rep.status, PGRES_TUPLES_OK);
    assert_string_equal(rep.value, "1");
    assert_int_equal(pd_pg_pending(pg), 0);

    /* one statement per query: the extended protocol refuses two */
    pd_test_query(pg, "SELECT 1; SELECT 2", &multi);
    assert_int_equal(multi.status, PGRES_FATAL_ERROR);
    assert_string_equal(multi.sqlstate, "42601");

    /* and the link goes on */
    pd_test_query(pg, "SELECT 2", &rep);
    assert_int_equal(rep.status, PGRES_TUPLES_OK);
    assert_string_equal(rep.value, "2");

    pd_pg_destroy(pg);

    assert_int_equal(rep.calls, 1);
    assert_int_equal(pd_test_connects, 1);
    assert_int_equal(pd_test_cycle.free_connection_n, 64);
}


/* a socket directory instead of an address */
static void
test_unix_socket(void **state)
{
    pd_test_res_t   rep;
    pd_pg_t        *pg;
    char            conninfo[PATH_MAX + 64];

    (void) state;

    pd_test_need_pg();

    (void) snprintf(conninfo, sizeof(conninfo),
                    "host=%s port=%d user=postgres dbname=postgres",
                    pd_test_dir, pd_test_port);

    pg = pd_pg_create(conninfo, 1000, &pd_test_log);
    assert_non_null(pg);

    pd_test_connect(pg);

    pd_test_query(pg, "SELECT inet_server_addr() IS NULL", &rep);
    assert_int_equal(rep.status, PGRES_TUPLES_OK);
    /* no server address: not TCP */
    assert_string_equal(rep.value, "t");

    pd_pg_destroy(pg);
}


/*
 * A prepared INSERT queued 10000 times in one loop turn: callbacks in
 * order, every row there, and all of them in one transaction, as one
 * segment (one Sync) per turn promises.
 */
static void
test_pipeline_insert(void **state)
{
    pd_test_pipe_t   *p;
    pd_test_tag_t    *tags;
    pd_test_res_t     rep;
    pd_pg_t          *pg;
    const char       *values[1];
    char              num[16], count[32];
    pd_uint_t         i;

    (void) state;

    pd_test_need_pg();

    p = calloc(1, sizeof(pd_test_pipe_t));
    tags = calloc(PD_TEST_NINSERT, sizeof(pd_test_tag_t));
    assert_non_null(p);
    assert_non_null(tags);

    assert_true(pd_test_sql("DROP TABLE IF EXISTS pd_test_p", NULL, 0));
    assert_true(pd_test_sql("CREATE TABLE pd_test_p (i int)", NULL, 0));

    pg = pd_test_create(10000);
    assert_int_equal(pd_pg_prepare(pg, "pd_test_p_ins",
                                   "INSERT INTO pd_test_p VALUES ($1)", 1),
                     PD_OK);
    pd_test_connect(pg);

    for (i = 0; i < PD_TEST_NINSERT; i++) {
        /* one buffer for all: libpq copies the values at once */
        (void) snprintf(num, sizeof(num), "%lu", (unsigned long) i);
        tags[i].index = i;
        tags[i].ctx = p;
        values[0] = num;

        assert_int_equal(pd_pg_exec(pg, "pd_test_p_ins", 1, values, NULL,
                                    NULL, pd_test_pipe_result, &tags[i]),
                         PD_OK);
    }

    /* the statement's own Parse, and the inserts */
    assert_true(pd_pg_pending(pg) >= PD_TEST_NINSERT);

    assert_true(pd_test_run(pd_test_no_pending, pg, 20000));

    assert_int_equal(p->in_order, PD_TEST_NINSERT);
    assert_int_equal(p->right, PD_TEST_NINSERT);

    for (i = 0; i < PD_TEST_NINSERT; i++) {
        assert_int_equal(p->calls[i], 1);
    }

    pd_test_query(pg, "SELECT count(*) FROM pd_test_p", &rep);
    assert_string_equal(rep.value, "10000");

    pd_test_query(pg, "SELECT count(DISTINCT xmin::text) FROM pd_test_p",
                  &rep);
    assert_string_equal(rep.value, "1");

    pd_pg_destroy(pg);

    /* and another client sees them: committed */
    assert_true(pd_test_sql("SELECT count(*) FROM pd_test_p", count,
                            sizeof(count)));
    assert_string_equal(count, "10000");

    for (i = 0; i < PD_TEST_NINSERT; i++) {
        assert_int_equal(p->calls[i], 1);
    }

    free(tags);
    free(p);
}


static void
pd_test_unique_table(pd_pg_t *pg, const char *table)
{
    pd_test_res_t  rep;
    char           sql[256];

    (void) snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", table);
    pd_test_query(pg, sql, &rep);
    assert_int_equal(rep.status, PGRES_COMMAND_OK);

    (void) snprintf(sql, sizeof(sql), "CREATE TABLE %s (k int PRIMARY KEY)",
                    table);
    pd_test_query(pg, sql, &rep);
    assert_int_equal(rep.status, PGRES_COMMAND_OK);

    (void) snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES ($1)", table);
    assert_int_equal(pd_pg_prepare(pg, table, sql, 1), PD_OK);
}


/*
 * One command of a segment fails: it gets its error, the others of the
 * segment PGRES_PIPELINE_ABORTED, and none of it remains.
 */
static void
test_segment_failure(void **state)
{
    pd_test_res_t   rep[3], one;
    pd_pg_t        *pg;

    (void) state;

    pd_test_need_pg();
    pd_memzero(rep, sizeof(rep));

    pg = pd_test_create(5000);
    pd_test_connect(pg);
    pd_test_unique_table(pg, "pd_test_u");

    assert_int_equal(pd_test_exec_int(pg, "pd_test_u", "1", &rep[0]),
                     PD_OK);
    assert_int_equal(pd_test_exec_int(pg, "pd_test_u", "1", &rep[1]),
                     PD_OK);
    assert_int_equal(pd_test_exec_int(pg, "pd_test_u", "2", &rep[2]),
                     PD_OK);

    assert_true(pd_test_run(pd_test_no_pending, pg, 5000));

    /* libpq said COMMAND_OK for the first: it was rolled back after */
    assert_int_equal(rep[0].calls, 1);
    assert_int_equal(rep[0].status, PGRES_PIPELINE_ABORTED);
    assert_int_equal(rep[1].calls, 1);
    assert_int_equal(rep[1].status, PGRES_FATAL_ERROR);
    assert_string_equal(rep[1].sqlstate, "23505");
    assert_int_equal(rep[2].calls, 1);
    assert_int_equal(rep[2].status, PGRES_PIPELINE_ABORTED);

    pd_test_query(pg, "SELECT count(*) FROM pd_test_u", &one);
    assert_string_equal(one.value, "0");

    /* queued again, alone, they go through */
    pd_memzero(rep, sizeof(rep));
    assert_int_equal(pd_test_exec_int(pg, "pd_test_u", "1", &rep[0]),
                     PD_OK);
    assert_int_equal(pd_test_exec_int(pg, "pd_test_u", "2", &rep[2]),
                     PD_OK);
    assert_true(pd_test_run(pd_test_no_pending, pg, 5000));
    assert_int_equal(rep[0].status, PGRES_COMMAND_OK);
    assert_int_equal(rep[2].status, PGRES_COMMAND_OK);

    pd_test_query(pg, "SELECT count(*) FROM pd_test_u", &one);
    assert_string_equal(one.value, "2");

    pd_pg_destroy(pg);
}


/*
 * Every command of a segment succeeds but its commit fails (a deferred
 * constraint): the error comes after the last command's result, and all
 * of them are reported aborted.
 */
static void
test_commit_failure(void **state)
{
    pd_test_res_t   rep[2], one;
    pd_pg_t        *pg;
    const char     *values[2];

    (void) state;

    pd_test_need_pg();
    pd_memzero(rep, sizeof(rep));

    pg = pd_test_create(5000);
    pd_test_connect(pg);

    pd_test_query(pg, "DROP TABLE IF EXISTS pd_test_d", &one);
    pd_test_query(pg, "CREATE TABLE pd_test_d (k int PRIMARY KEY, "
                  "r int REFERENCES pd_test_d (k) "
                  "DEFERRABLE INITIALLY DEFERRED)", &one);
    assert_int_equal(one.status, PGRES_COMMAND_OK);
    assert_int_equal(pd_pg_prepare(pg, "pd_test_d",
                                   "INSERT INTO pd_test_d VALUES ($1, $2)",
                                   2), PD_OK);

    values[0] = "1";
    values[1] = NULL;
    assert_int_equal(pd_pg_exec(pg, "pd_test_d", 2, values, NULL, NULL,
                                pd_test_record, &rep[0]), PD_OK);

    /* checked only at commit */
    values[0] = "2";
    values[1] = "99";
    assert_int_equal(pd_pg_exec(pg, "pd_test_d", 2, values, NULL, NULL,
                                pd_test_record, &rep[1]), PD_OK);

    assert_true(pd_test_run(pd_test_no_pending, pg, 5000));

    assert_int_equal(rep[0].calls, 1);
    assert_int_equal(rep[0].status, PGRES_PIPELINE_ABORTED);
    assert_int_equal(rep[1].calls, 1);
    assert_int_equal(rep[1].status, PGRES_PIPELINE_ABORTED);

    pd_test_query(pg, "SELECT count(*) FROM pd_test_d", &one);
    assert_string_equal(one.value, "0");

    pd_pg_destroy(pg);
}


/*
 * BEGIN, a batch of inserts, COMMIT, queued in one go; then a batch with
 * a failing insert: COMMIT reports the rollback and the link is not left
 * inside the failed transaction.
 */
static void
test_transaction_batch(void **state)
{
    pd_test_res_t   begin, commit, rep[PD_TEST_NBATCH], one;
    pd_pg_t        *pg;
    char            num[PD_TEST_NBATCH][8];
    pd_uint_t       i;

    (void) state;

    pd_test_need_pg();

    pd_memzero(&begin, sizeof(begin));
    pd_memzero(&commit, sizeof(commit));
    pd_memzero(rep, sizeof(rep));

    pg = pd_test_create(5000);
    pd_test_connect(pg);
    pd_test_unique_table(pg, "pd_test_b");

    assert_int_equal(pd_pg_query(pg, "BEGIN", pd_test_record, &begin),
                     PD_OK);

    for (i = 0; i < PD_TEST_NBATCH; i++) {
        (void) snprintf(num[i], sizeof(num[i]), "%lu", (unsigned long) i);
        assert_int_equal(pd_test_exec_int(pg, "pd_test_b", num[i], &rep[i]),
                         PD_OK);
    }

    assert_int_equal(pd_pg_query(pg, "COMMIT", pd_test_record, &commit),
                     PD_OK);

    assert_true(pd_test_run(pd_test_no_pending, pg, 5000));

    assert_int_equal(begin.status, PGRES_COMMAND_OK);
    assert_string_equal(begin.cmd, "BEGIN");

    for (i = 0; i < PD_TEST_NBATCH; i++) {
        assert_int_equal(rep[i].calls, 1);
        assert_int_equal(rep[i].status, PGRES_COMMAND_OK);
    }

    assert_int_equal(commit.status, PGRES_COMMAND_OK);
    assert_string_equal(commit.cmd, "COMMIT");

    pd_test_query(pg, "SELECT count(*) FROM pd_test_b", &one);
    assert_string_equal(one.value, "100");

    /* the failing batch */
    pd_memzero(&begin, sizeof(begin));
    pd_memzero(&commit, sizeof(commit));
    pd_memzero(rep, sizeof(rep));

    assert_int_equal(pd_pg_query(pg, "BEGIN", pd_test_record, &begin),
                     PD_OK);
    assert_int_equal(pd_test_exec_int(pg, "pd_test_b", "1000", &rep[0]),
                     PD_OK);
    assert_int_equal(pd_test_exec_int(pg, "pd_test_b", "5", &rep[1]),
                     PD_OK);
    assert_int_equal(pd_test_exec_int(pg, "pd_test_b", "1001", &rep[2]),
                     PD_OK);
    assert_int_equal(pd_pg_query(pg, "COMMIT", pd_test_record, &commit),
                     PD_OK);

    assert_true(pd_test_run(pd_test_no_pending, pg, 5000));

    assert_string_equal(begin.cmd, "BEGIN");
    assert_int_equal(rep[0].status, PGRES_PIPELINE_ABORTED);
    assert_int_equal(rep[1].status, PGRES_FATAL_ERROR);
    assert_string_equal(rep[1].sqlstate, "23505");
    assert_int_equal(rep[2].status, PGRES_PIPELINE_ABORTED);
    assert_int_equal(commit.calls, 1);
    assert_int_equal(commit.status, PGRES_COMMAND_OK);
    assert_string_equal(commit.cmd, "ROLLBACK");

    /* out of the failed transaction: this is not "commands ignored" */
    pd_test_query(pg, "SELECT count(*) FROM pd_test_b", &one);
    assert_int_equal(one.status, PGRES_TUPLES_OK);
    assert_string_equal(one.value, "100");

    pd_pg_destroy(pg);
}


/*
 * Binary parameters with every byte value, NULs included, come back
 * whole; 1 MB results arrive far faster than libpq reads them, so the
 * edge-triggered read must drain the socket itself or the test stalls.
 */
static void
test_binary_params(void **state)
{
    pd_test_res_t   small, nul, big[PD_TEST_NBIG];
    pd_pg_t        *pg;
    u_char         *data, bytes[256];
    const char     *values[1];
    int             lengths[1], formats[1];
    pd_uint_t       i;

    (void) state;

    pd_test_need_pg();

    data = malloc(PD_TEST_BIG);
    assert_non_null(data);

    for (i = 0; i < PD_TEST_BIG; i++) {
        data[i] = (u_char) (i * 31 + (i >> 8));
    }

    for (i = 0; i < 256; i++) {
        bytes[i] = (u_char) (255 - i);
    }

    pd_memzero(&small, sizeof(small));
    pd_memzero(&nul, sizeof(nul));
    pd_memzero(big, sizeof(big));

    pg = pd_test_create(10000);
    assert_int_equal(pd_pg_prepare(pg, "pd_test_echo", "SELECT $1::bytea",
                                   1), PD_OK);
    pd_test_connect(pg);

    formats[0] = 1;

    values[0] = (const char *) bytes;
    lengths[0] = sizeof(bytes);
    assert_int_equal(pd_pg_exec(pg, "pd_test_echo", 1, values, lengths,
                                formats, pd_test_record, &small), PD_OK);

    values[0] = NULL;
    assert_int_equal(pd_pg_exec(pg, "pd_test_echo", 1, values, lengths,
                                formats, pd_test_record, &nul), PD_OK);

    values[0] = (const char *) data;
    lengths[0] = PD_TEST_BIG;

    for (i = 0; i < PD_TEST_NBIG; i++) {
        assert_int_equal(pd_pg_exec(pg, "pd_test_echo", 1, values, lengths,
                                    formats, pd_test_record, &big[i]),
                         PD_OK);
    }

    /* copied by libpq: the caller's buffer may change at once */
    memset(bytes, 0, sizeof(bytes));

    assert_true(pd_test_run(pd_test_no_pending, pg, 20000));

    assert_int_equal(small.calls, 1);
    assert_int_equal(small.status, PGRES_TUPLES_OK);
    assert_int_equal(small.len, 256);

    for (i = 0; i < 256; i++) {
        assert_int_equal(small.bin[i], 255 - i);
    }

    assert_int_equal(nul.calls, 1);
    assert_int_equal(nul.status, PGRES_TUPLES_OK);
    assert_int_equal(nul.isnull, 1);

    for (i = 0; i < PD_TEST_NBIG; i++) {
        assert_int_equal(big[i].calls, 1);
        assert_int_equal(big[i].status, PGRES_TUPLES_OK);
        assert_int_equal(big[i].len, PD_TEST_BIG);
        assert_memory_equal(big[i].bin, data, PD_TEST_BIG);
        free(big[i].bin);
    }

    pd_pg_destroy(pg);

    free(small.bin);
    free(data);
}


static int
pd_test_server_done(void *data)
{
    char  n[32];

    (void) data;

    return pd_test_sql("SELECT count(*) FROM pg_stat_activity "
                       "WHERE application_name = 'pd_test_drain' "
                       "AND state = 'idle' "
                       "AND query = 'SELECT ''pd_test_drained'''",
                       n, sizeof(n))
           && strcmp(n, "1") == 0;
}


/*
 * Results that are all in the socket before the first read: libpq reads
 * one buffer (16 KB) at a time and no new edge will come, so the read
 * handler has to see for itself that more is waiting.
 */
static void
pd_test_drain(const char *sslmode)
{
    pd_test_res_t   rep[PD_TEST_NDRAIN], done, ssl;
    pd_pg_t        *pg;
    u_char          value[PD_TEST_DRAIN];
    const char     *values[1];
    int             lengths[1], formats[1];
    char            conninfo[256];
    pd_uint_t       i;

    pd_memzero(rep, sizeof(rep));
    pd_memzero(&done, sizeof(done));
    memset(value, 0xa5, sizeof(value));

    (void) snprintf(conninfo, sizeof(conninfo),
                    "host=127.0.0.1 port=%d user=postgres dbname=postgres "
                    "sslmode=%s application_name=pd_test_drain",
                    pd_test_port, sslmode);

    pg = pd_pg_create(conninfo, 10000, &pd_test_log);
    assert_non_null(pg);
    assert_int_equal(pd_pg_prepare(pg, "pd_test_echo", "SELECT $1::bytea",
                                   1), PD_OK);
    pd_test_connect(pg);

    pd_test_query(pg, "SELECT ssl FROM pg_stat_ssl "
                  "WHERE pid = pg_backend_pid()", &ssl);
    assert_string_equal(ssl.value,
                        strcmp(sslmode, "disable") == 0 ? "f" : "t");

    values[0] = (const char *) value;
    lengths[0] = sizeof(value);
    formats[0] = 1;

    for (i = 0; i < PD_TEST_NDRAIN; i++) {
        assert_int_equal(pd_pg_exec(pg, "pd_test_echo", 1, values, lengths,
                                    formats, pd_test_record, &rep[i]),
                         PD_OK);
    }

    assert_int_equal(pd_pg_query(pg, "SELECT 'pd_test_drained'",
                                 pd_test_record, &done), PD_OK);

    /* one turn sends it all (reads come in later turns) ... */
    pd_process_events_and_timers(&pd_test_cycle);

    /* ... and the server answers everything before we read a byte */
    assert_true(pd_test_run_blocked(pd_test_server_done, 5000));

    assert_true(pd_test_run(pd_test_no_pending, pg, 5000));

    for (i = 0; i < PD_TEST_NDRAIN; i++) {
        assert_int_equal(rep[i].calls, 1);
        assert_int_equal(rep[i].status, PGRES_TUPLES_OK);
        assert_int_equal(rep[i].len, PD_TEST_DRAIN);
        assert_memory_equal(rep[i].bin, value, PD_TEST_DRAIN);
        free(rep[i].bin);
    }

    assert_int_equal(done.calls, 1);
    assert_string_equal(done.value, "pd_test_drained");

    pd_pg_destroy(pg);
}


static void
test_drain_buffered(void **state)
{
    (void) state;

    pd_test_need_pg();
    pd_test_drain("disable");
}


/* the same through TLS: the handshake runs on the loop too */
static void
test_drain_buffered_tls(void **state)
{
    (void) state;

    pd_test_need_pg();

    if (!pd_test_tls) {
        print_message("no openssl command to make a certificate: "
                      "skipped\n");
        skip();
    }

    pd_test_drain("require");
}


/*
 * A callback destroys its connection: the commands behind it are failed
 * once each, and nothing is touched after the free (ASan).
 */
static void
test_destroy_in_callback(void **state)
{
    pd_test_res_t   rep[PD_TEST_NINFLIGHT];
    pd_pg_t        *pg;
    const char     *values[1];
    pd_uint_t       i, nulls;

    (void) state;

    pd_test_need_pg();
    pd_memzero(rep, sizeof(rep));

    pg = pd_test_create(5000);
    assert_int_equal(pd_pg_prepare(pg, "pd_test_int", "SELECT $1::int", 1),
                     PD_OK);
    pd_test_connect(pg);

    values[0] = "7";
    assert_int_equal(pd_pg_exec(pg, "pd_test_int", 1, values, NULL, NULL,
                                pd_test_destroy_result, &rep[0]), PD_OK);

    for (i = 1; i < PD_TEST_NINFLIGHT; i++) {
        assert_int_equal(pd_pg_exec(pg, "pd_test_int", 1, values, NULL,
                                    NULL, pd_test_record, &rep[i]), PD_OK);
    }

    /* pg is gone after the first result: watch the records instead */
    assert_true(pd_test_run(pd_test_called, &rep[PD_TEST_NINFLIGHT - 1],
                            5000));

    assert_int_equal(rep[0].calls, 1);
    assert_int_equal(rep[0].nulls, 0);
    assert_string_equal(rep[0].value, "7");

    nulls = 0;

    for (i = 0; i < PD_TEST_NINFLIGHT; i++) {
        assert_int_equal(rep[i].calls, 1);
        nulls += rep[i].nulls;
    }

    assert_int_equal(nulls, PD_TEST_NINFLIGHT - 1);

    /* the slot went back: the loop goes on without it */
    assert_false(pd_test_run(pd_test_never, NULL, 20));
    assert_int_equal(pd_test_cycle.free_connection_n, 64);
}


static int
pd_test_server_sleeping(void *data)
{
    char  n[32];

    (void) data;

    return pd_test_sql("SELECT count(*) FROM pg_stat_activity "
                       "WHERE state = 'active' "
                       "AND query LIKE 'SELECT pg_sleep(%'", n, sizeof(n))
           && strcmp(n, "1") == 0;
}


/*
 * The server stops (fast shutdown) under a pg_sleep() and commands
 * queued behind it: every callback runs once, with NULL; new commands
 * are declined.
 */
static void
test_stop_in_flight(void **state)
{
    pd_test_res_t   rep[PD_TEST_NINFLIGHT], after;
    pd_pg_t        *pg;
    const char     *values[1];
    pd_uint_t       i;

    (void) state;

    pd_test_need_pg();
    pd_memzero(rep, sizeof(rep));
    pd_memzero(&after, sizeof(after));

    pg = pd_test_create(30000);
    assert_int_equal(pd_pg_prepare(pg, "pd_test_int", "SELECT $1::int", 1),
                     PD_OK);
    pd_test_connect(pg);

    assert_int_equal(pd_pg_query(pg, "SELECT pg_sleep(30)",
                                 pd_test_poke_result, &rep[0]), PD_OK);

    values[0] = "1";

    for (i = 1; i < PD_TEST_NINFLIGHT; i++) {
        assert_int_equal(pd_pg_exec(pg, "pd_test_int", 1, values, NULL,
                                    NULL, pd_test_record, &rep[i]), PD_OK);
    }

    /* sent, and the server is inside the sleep */
    assert_false(pd_test_run(pd_test_never, NULL, 50));
    assert_true(pd_test_run(pd_test_server_sleeping, NULL, 5000));
    assert_int_equal(pd_pg_pending(pg), PD_TEST_NINFLIGHT);

    pd_test_pg_stop(SIGINT);

    assert_true(pd_test_run(pd_test_no_pending, pg, 5000));

    for (i = 0; i < PD_TEST_NINFLIGHT; i++) {
        assert_int_equal(rep[i].calls, 1);
        assert_int_equal(rep[i].nulls, 1);
    }

    assert_int_equal(pd_pg_connected(pg), 0);
    assert_int_equal(pd_pg_query(pg, "SELECT 1", pd_test_record, &after),
                     PD_DECLINED);

    /* a few failed attempts later */
    assert_false(pd_test_run(pd_test_never, NULL, 200));

    pd_pg_destroy(pg);

    for (i = 0; i < PD_TEST_NINFLIGHT; i++) {
        assert_int_equal(rep[i].calls, 1);
    }

    assert_int_equal(after.calls, 0);
}


/*
 * The server comes back on the same port: the adapter follows by itself
 * and prepares its statements on the new session.
 */
static void
test_restart_reprepares(void **state)
{
    pd_test_res_t   rep;
    pd_pg_t        *pg;
    pd_msec_t       start;

    (void) state;

    pd_test_need_pg();

    pg = pd_test_create(1000);
    assert_int_equal(pd_pg_prepare(pg, "pd_test_add",
                                   "SELECT $1::int + 1", 1), PD_OK);
    pd_test_connect(pg);
    assert_int_equal(pd_test_connects, 1);

    pd_test_pg_stop(SIGINT);
    assert_true(pd_test_run(pd_test_is_disconnected, pg, 5000));

    /* let it fail a couple of attempts */
    assert_false(pd_test_run(pd_test_never, NULL, 300));
    assert_int_equal(pd_pg_connected(pg), 0);

    pd_memzero(&rep, sizeof(rep));
    assert_int_equal(pd_test_exec_int(pg, "pd_test_add", "41", &rep),
                     PD_DECLINED);

    pd_test_pg_start();
    start = pd_monotonic_msec();

    assert_true(pd_test_run(pd_test_is_connected, pg, 10000));
    assert_int_equal(pd_test_connects, 2);
    /* the wait between attempts is capped */
    assert_true(pd_monotonic_msec() - start < PD_PG_BACKOFF_MAX + 500);

    /* a new backend: only the adapter can have prepared it there */
    assert_int_equal(pd_test_exec_int(pg, "pd_test_add", "41", &rep),
                     PD_OK);
    assert_true(pd_test_run(pd_test_called, &rep, 2000));
    assert_int_equal(rep.nulls, 0);
    assert_int_equal(rep.status, PGRES_TUPLES_OK);
    assert_string_equal(rep.value, "42");

    pd_test_query(pg, "SELECT count(*) FROM pg_prepared_statements "
                  "WHERE name = 'pd_test_add'", &rep);
    assert_string_equal(rep.value, "1");

    pd_pg_destroy(pg);
}


typedef struct {
    pd_pg_t        *pg;
    pd_test_res_t   rep;
    pd_uint_t       tries;
} pd_test_retry_t;


/* queries whenever the link is up and idle; done at a real result */
static int
pd_test_answered(void *data)
{
    pd_test_retry_t  *t = data;

    if (t->rep.calls > t->rep.nulls) {
        return 1;
    }

    if (pd_pg_connected(t->pg) && pd_pg_pending(t->pg) == 0) {
        t->tries++;
        assert_int_equal(pd_pg_query(t->pg, "SELECT 3", pd_test_record,
                                     &t->rep), PD_OK);
    }

    return 0;
}


/*
 * pg_sleep(2) with a 300 ms timeout: the query and the one behind it
 * fail within about the timeout, the link is dropped and made anew.
 */
static void
test_timeout(void **state)
{
    pd_test_res_t     nap, next;
    pd_test_retry_t   t;
    pd_pg_t          *pg;
    pd_msec_t         sent;

    (void) state;

    pd_test_need_pg();

    pd_memzero(&nap, sizeof(nap));
    pd_memzero(&next, sizeof(next));
    pd_memzero(&t, sizeof(t));

    pg = pd_test_create(300);
    pd_test_connect(pg);

    pd_time_update();
    sent = pd_current_msec;

    assert_int_equal(pd_pg_query(pg, "SELECT pg_sleep(2)", pd_test_record,
                                 &nap), PD_OK);
    assert_int_equal(pd_pg_query(pg, "SELECT 1", pd_test_record, &next),
                     PD_OK);

    assert_true(pd_test_run(pd_test_no_pending, pg, 5000));

    assert_int_equal(nap.calls, 1);
    assert_int_equal(nap.nulls, 1);
    assert_int_equal(next.calls, 1);
    assert_int_equal(next.nulls, 1);
    assert_in_range(nap.at - sent, 290, 1000);

    /* a new session, while the old backend still sleeps */
    t.pg = pg;
    assert_true(pd_test_run(pd_test_answered, &t, 10000));
    assert_string_equal(t.rep.value, "3");
    assert_true(pd_test_connects >= 2);

    pd_pg_destroy(pg);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_create_checks_conninfo),
        cmocka_unit_test(test_declined_and_retry),
        cmocka_unit_test(test_select_one),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_pipeline_insert),
        cmocka_unit_test(test_segment_failure),
        cmocka_unit_test(test_commit_failure),
        cmocka_unit_test(test_transaction_batch),
        cmocka_unit_test(test_binary_params),
        cmocka_unit_test(test_drain_buffered),
        cmocka_unit_test(test_drain_buffered_tls),
        cmocka_unit_test(test_destroy_in_callback),
        cmocka_unit_test(test_stop_in_flight),
        cmocka_unit_test(test_restart_reprepares),
        cmocka_unit_test(test_timeout),
    };

    return cmocka_run_group_tests(tests, pd_test_setup, pd_test_teardown);
}
