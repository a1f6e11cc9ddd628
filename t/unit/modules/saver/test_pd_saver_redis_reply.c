/*
 * test_pd_saver_redis_reply.c: what the cluster saver reads of its
 * servers' answers (pd_saver_redis.c), untrusted, without a server: the
 * pending script's replies as hiredis' reader builds them from the
 * bytes, and the reload's rows as libpq builds them.  A row short of a
 * column once crashed the reload (strtoull() of the NULL that PQgetvalue
 * gives for a column that is not there).
 */

#include "pd_core.h"
#include "pd_saver.h"

#include <setjmp.h>
#include <cmocka.h>


/* one reply from RESP bytes; freed with freeReplyObject() */
static redisReply *
pd_test_reply(const char *resp)
{
    redisReader  *rd;
    void         *reply = NULL;

    rd = redisReaderCreate();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(rd);

    return reply;
}

typedef struct {
    pd_uint_t   taken;
    pd_uint_t   stop;
    char        ids[8][PD_SAVER_CURSOR_SIZE];
} pd_test_take_t;

static pd_int_t
pd_test_take(void *data, pd_saver_msg_t *m)
{
    pd_test_take_t  *t = data;

    assert_true(m->id.len < PD_SAVER_CURSOR_SIZE);
    pd_memcpy(t->ids[t->taken], m->id.data, m->id.len);
    t->ids[t->taken][m->id.len] = '\0';

    return (++t->taken == t->stop) ? PD_DECLINED : PD_OK;
}

static void
test_fetch_walk(void **state)
{
    redisReply      *r;
    pd_test_take_t   t;
    pd_str_t         cursor, after = pd_string("n-1");
    pd_uint_t        more;

    (void) state;

    /* two of the script's own, then id, payload pairs; a nil payload and
     * an over-long id are skipped, not taken */
    r = pd_test_reply("*10\r\n:0\r\n:0\r\n"
                      "$3\r\nn-2\r\n$5\r\nhello\r\n"
                      "$3\r\nn-3\r\n$-1\r\n"
                      "$60\r\n"
                      "012345678901234567890123456789012345678901234567890"
                      "123456789\r\n$1\r\nx\r\n"
                      "$3\r\nn-4\r\n$0\r\n\r\n");
    pd_memzero(&t, sizeof(t));
    cursor = after;
    assert_false(pd_sr_fetch_retry(r));
    assert_int_equal(pd_sr_fetch_walk(r, pd_test_take, &t, &cursor, &more),
                     PD_OK);
    assert_int_equal(t.taken, 2);
    assert_string_equal(t.ids[0], "n-2");
    assert_string_equal(t.ids[1], "n-4");
    assert_int_equal(cursor.len, 3);
    assert_memory_equal(cursor.data, "n-4", 3);
    assert_int_equal(more, 0);

    /* a take that says stop: the cursor stays on the last one taken */
    pd_memzero(&t, sizeof(t));
    t.stop = 2;
    cursor = after;
    assert_int_equal(pd_sr_fetch_walk(r, pd_test_take, &t, &cursor, &more),
                     PD_OK);
    assert_memory_equal(cursor.data, "n-2", 3);
    assert_int_equal(more, 1);
    freeReplyObject(r);

    /* not the script's answer: an error, the cursor untouched */
    r = pd_test_reply("*1\r\n:0\r\n");
    cursor = after;
    assert_int_equal(pd_sr_fetch_walk(r, pd_test_take, &t, &cursor, &more),
                     PD_ERROR);
    assert_ptr_equal(cursor.data, after.data);
    freeReplyObject(r);

    r = pd_test_reply("-ERR no script\r\n");
    assert_int_equal(pd_sr_fetch_walk(r, pd_test_take, &t, &cursor, &more),
                     PD_ERROR);
    assert_false(pd_sr_fetch_retry(r));
    freeReplyObject(r);

    assert_int_equal(pd_sr_fetch_walk(NULL, pd_test_take, &t, &cursor,
                                      &more), PD_ERROR);
    assert_false(pd_sr_fetch_retry(NULL));

    /* ids the no-ack guard dropped come first, counted by the second
     * element: they are not taken */
    r = pd_test_reply("*6\r\n:0\r\n:2\r\n$3\r\nn-7\r\n$3\r\nn-8\r\n"
                      "$3\r\nn-9\r\n$2\r\nhi\r\n");
    assert_int_equal(pd_sr_fetch_dropped(r, &more), PD_OK);
    assert_int_equal(more, 2);
    pd_memzero(&t, sizeof(t));
    cursor = after;
    assert_int_equal(pd_sr_fetch_walk(r, pd_test_take, &t, &cursor, &more),
                     PD_OK);
    assert_int_equal(t.taken, 1);
    assert_string_equal(t.ids[0], "n-9");
    freeReplyObject(r);

    /* a count past the reply's end, or below 0: not the script's */
    r = pd_test_reply("*3\r\n:0\r\n:2\r\n$3\r\nn-7\r\n");
    assert_int_equal(pd_sr_fetch_dropped(r, &more), PD_ERROR);
    assert_int_equal(pd_sr_fetch_walk(r, pd_test_take, &t, &cursor, &more),
                     PD_ERROR);
    freeReplyObject(r);

    r = pd_test_reply("*2\r\n:0\r\n:-1\r\n");
    assert_int_equal(pd_sr_fetch_dropped(r, &more), PD_ERROR);
    freeReplyObject(r);

    r = pd_test_reply("*2\r\n:0\r\n$1\r\n1\r\n");
    assert_int_equal(pd_sr_fetch_dropped(r, &more), PD_ERROR);
    freeReplyObject(r);

    /* -1 first: called again with the ids that follow */
    r = pd_test_reply("*3\r\n:-1\r\n$3\r\nn-5\r\n$3\r\nn-6\r\n");
    assert_true(pd_sr_fetch_retry(r));
    freeReplyObject(r);
}

/* a result set as the reload query's, of nf text columns */
static PGresult *
pd_test_rows(int nf, const char *const *values, int nvalues)
{
    PGresult      *res;
    PGresAttDesc   att[8];
    char           name[8][16];
    int            i;

    res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    assert_non_null(res);
    pd_memzero(att, sizeof(att));

    for (i = 0; i < nf; i++) {
        (void) snprintf(name[i], sizeof(name[i]), "c%d", i);
        att[i].name = name[i];
        att[i].typid = 25;
        att[i].typlen = -1;
        att[i].atttypmod = -1;
    }

    assert_true(PQsetResultAttrs(res, nf, att));

    for (i = 0; i < nvalues; i++) {
        assert_true(PQsetvalue(res, i / nf, i % nf, (char *) values[i],
                               values[i] ? (int) strlen(values[i]) : -1));
    }

    return res;
}

static void
test_reload_row(void **state)
{
    PGresult     *res;
    pd_str_t      uid, id, app, payload;
    uint64_t      expires;
    static const char *good[] = {
        "u1", "node-a-1f", "chat", "{\"x\":1}", "1999999999999",
        "u 2", "node-a-20", "chat", "p", "1",        /* a bad uid */
        "u3", "node-a-21", "chat", NULL, "1",        /* a NULL */
        "u4", "nodash", "chat", "p", "1",            /* a bad id */
        "u5", "node-a-22", "chat", "p", "12x",       /* a bad expires */
        "u6", "node-a-23", "chat", "", "0"
    };
    static const char *shrt[] = { "u1", "node-a-1f", "chat", "p" };

    (void) state;

    res = pd_test_rows(5, good, pd_nelems(good));

    assert_int_equal(pd_sr_reload_row(res, 0, &uid, &id, &app, &payload,
                                      &expires), PD_OK);
    assert_int_equal(uid.len, 2);
    assert_memory_equal(uid.data, "u1", 2);
    assert_memory_equal(id.data, "node-a-1f", 9);
    assert_memory_equal(app.data, "chat", 4);
    assert_int_equal(payload.len, 7);
    assert_true(expires == 1999999999999ULL);

    assert_int_equal(pd_sr_reload_row(res, 1, &uid, &id, &app, &payload,
                                      &expires), PD_ERROR);
    assert_int_equal(pd_sr_reload_row(res, 2, &uid, &id, &app, &payload,
                                      &expires), PD_ERROR);
    assert_int_equal(pd_sr_reload_row(res, 3, &uid, &id, &app, &payload,
                                      &expires), PD_ERROR);
    assert_int_equal(pd_sr_reload_row(res, 4, &uid, &id, &app, &payload,
                                      &expires), PD_ERROR);
    assert_int_equal(pd_sr_reload_row(res, 5, &uid, &id, &app, &payload,
                                      &expires), PD_OK);
    assert_int_equal(payload.len, 0);

    /* past the rows */
    assert_int_equal(pd_sr_reload_row(res, 6, &uid, &id, &app, &payload,
                                      &expires), PD_ERROR);
    assert_int_equal(pd_sr_reload_row(res, -1, &uid, &id, &app, &payload,
                                      &expires), PD_ERROR);
    PQclear(res);

    /* four columns: no expires to read */
    res = pd_test_rows(4, shrt, pd_nelems(shrt));
    assert_int_equal(pd_sr_reload_row(res, 0, &uid, &id, &app, &payload,
                                      &expires), PD_ERROR);
    PQclear(res);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_walk),
        cmocka_unit_test(test_reload_row),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
