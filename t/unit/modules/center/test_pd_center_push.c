/*
 * test_pd_center_push.c: the body of a push and of a broadcast, as the
 * center reads it (pd_center_parse_body) with no connection: fields,
 * bounds and statuses, and the uids decoded once each (pd_center_uids).
 */

#include "pd_core.h"
#include "pd_center.h"

#include <setjmp.h>
#include <cmocka.h>


static pd_center_limits_t  pd_test_lim = {
    16,                 /* max_message */
    3,                  /* max_uids */
    1000,               /* broadcast_rate */
    86400 * 1000,       /* ttl */
    7 * 86400           /* max_ttl */
};

/* parses an exact-size copy (ASan sees a read past the end) */
static const char *
pd_test_parse(const char *body, pd_uint_t broadcast, pd_center_msg_t *m,
    pd_uint_t *status)
{
    static u_char  *copy;
    size_t          len = strlen(body);

    free(copy);
    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);

    pd_memzero(m, sizeof(pd_center_msg_t));
    *status = 0;

    return pd_center_parse_body(copy, len, &pd_test_lim, broadcast, m,
                                status);
}

static void
test_push(void **state)
{
    pd_center_msg_t   m;
    pd_uint_t         status, n;
    pd_pool_t        *pool;
    pd_str_t         *uids;

    (void) state;

    assert_null(pd_test_parse("{\"app\":\"chat\",\"data\":{\"t\":1},"
                              "\"uids\":[\"u1\",\"u\\u0032\",\"u1\"]}",
                              0, &m, &status));
    assert_int_equal(m.app.len, 4);
    assert_memory_equal(m.data.data, "{\"t\":1}", 7);
    assert_int_equal(m.qos, 1);
    assert_true(m.ttl == 86400 * 1000);
    assert_int_equal(m.nuids, 3);

    pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, pd_log_root);
    assert_non_null(pool);
    n = pd_center_uids(&m, pool, &uids);
    assert_int_equal(n, 2);
    assert_string_equal((char *) uids[0].data, "u1");
    assert_string_equal((char *) uids[1].data, "u2");
    pd_destroy_pool(pool);

    /* qos and ttl as given */
    assert_null(pd_test_parse("{\"app\":\"a\",\"data\":1,\"qos\":0,"
                              "\"ttl\":60,\"uids\":[\"x\"]}", 0, &m,
                              &status));
    assert_int_equal(m.qos, 0);
    assert_true(m.ttl == 60000);
}

static void
test_refused(void **state)
{
    pd_center_msg_t   m;
    pd_uint_t         status;

    (void) state;

    assert_non_null(pd_test_parse("[1]", 0, &m, &status));
    assert_int_equal(status, 400);
    assert_non_null(pd_test_parse("{\"app\":\"a b\",\"data\":1,"
                                  "\"uids\":[\"x\"]}", 0, &m, &status));
    assert_int_equal(status, 400);
    assert_non_null(pd_test_parse("{\"app\":\"a\",\"uids\":[\"x\"]}", 0,
                                  &m, &status));
    assert_int_equal(status, 400);

    /* "data" over max_message: 413 */
    assert_non_null(pd_test_parse("{\"app\":\"a\",\"data\":\"0123456789"
                                  "abcdef\",\"uids\":[\"x\"]}", 0, &m,
                                  &status));
    assert_int_equal(status, 413);

    assert_non_null(pd_test_parse("{\"app\":\"a\",\"data\":1,\"qos\":2,"
                                  "\"uids\":[\"x\"]}", 0, &m, &status));
    assert_non_null(pd_test_parse("{\"app\":\"a\",\"data\":1,\"ttl\":604801,"
                                  "\"uids\":[\"x\"]}", 0, &m, &status));
    assert_non_null(pd_test_parse("{\"app\":\"a\",\"data\":1,\"uids\":[]}",
                                  0, &m, &status));
    assert_non_null(pd_test_parse("{\"app\":\"a\",\"data\":1,"
                                  "\"uids\":[\"a\",\"b\",\"c\",\"d\"]}", 0,
                                  &m, &status));
    assert_non_null(pd_test_parse("{\"app\":\"a\",\"data\":1,"
                                  "\"uids\":[\"a\",1]}", 0, &m, &status));
    assert_int_equal(status, 400);
}

static void
test_broadcast(void **state)
{
    pd_center_msg_t   m;
    pd_uint_t         status;

    (void) state;

    /* no uids; a broadcast is kept only when asked */
    assert_null(pd_test_parse("{\"app\":\"news\",\"data\":\"x\"}", 1, &m,
                              &status));
    assert_int_equal(m.rate, 1000);
    assert_true(m.ttl == 0);

    assert_null(pd_test_parse("{\"app\":\"news\",\"data\":\"x\","
                              "\"rate\":5,\"ttl\":9}", 1, &m, &status));
    assert_int_equal(m.rate, 5);
    assert_true(m.ttl == 9000);

    assert_non_null(pd_test_parse("{\"app\":\"news\",\"data\":\"x\","
                                  "\"rate\":0}", 1, &m, &status));
    assert_int_equal(status, 400);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_broadcast),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
