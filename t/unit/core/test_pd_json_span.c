/*
 * test_pd_json_span.c: raw member spans of JSON objects.
 */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>

static pd_int_t
pd_test_span(const char *json, const char *key, const char *expect)
{
    pd_str_t   v;
    pd_int_t   rc;
    u_char    *copy;
    size_t     len = strlen(json);

    /* an exact-size copy: ASan catches a read past the end */
    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, json, len);

    rc = pd_json_member_span(copy, len, key, &v);

    if (rc == PD_OK) {
        assert_non_null(expect);
        assert_int_equal(v.len, strlen(expect));
        assert_memory_equal(v.data, expect, v.len);
    }

    free(copy);
    return rc;
}

static void
test_values_byte_for_byte(void **state)
{
    (void) state;

    assert_int_equal(pd_test_span("{\"data\":{\"a\" : [1, 2.50, \"x\"]}}",
                                  "data", "{\"a\" : [1, 2.50, \"x\"]}"),
                     PD_OK);
    assert_int_equal(pd_test_span("{\"app\":\"x\",\"data\":  1e+07 , \"q\":1}",
                                  "data", "1e+07"), PD_OK);
    assert_int_equal(pd_test_span("{\"data\":\"a\\\"}b\"}", "data",
                                  "\"a\\\"}b\""), PD_OK);
    assert_int_equal(pd_test_span("{\"x\":{\"data\":1},\"data\":[{}]}",
                                  "data", "[{}]"), PD_OK);
    assert_int_equal(pd_test_span("{\"data\":null}", "data", "null"), PD_OK);
    assert_int_equal(pd_test_span(" {\n\"data\"\t:\ttrue\n}\n", "data",
                                  "true"), PD_OK);
    assert_int_equal(pd_test_span("{\"s\":\"]}\",\"data\":\"\\u00e9\"}",
                                  "data", "\"\\u00e9\""), PD_OK);
}

static void
test_absent_and_malformed(void **state)
{
    (void) state;

    assert_int_equal(pd_test_span("{}", "data", NULL), PD_DECLINED);
    assert_int_equal(pd_test_span("{\"dat\":1,\"datas\":2}", "data", NULL),
                     PD_DECLINED);
    assert_int_equal(pd_test_span("[1]", "data", NULL), PD_ERROR);
    assert_int_equal(pd_test_span("", "data", NULL), PD_ERROR);
    assert_int_equal(pd_test_span("{\"data\":", "data", NULL), PD_ERROR);
    assert_int_equal(pd_test_span("{\"data\":{\"a\":1", "data", NULL),
                     PD_ERROR);
    assert_int_equal(pd_test_span("{\"data\":\"abc", "data", NULL),
                     PD_ERROR);
    assert_int_equal(pd_test_span("{\"a\":1 \"data\":2}", "data", NULL),
                     PD_ERROR);
    assert_int_equal(pd_test_span("{\"a\"", "data", NULL), PD_ERROR);
}

static void
test_truncations_never_overread(void **state)
{
    const char  *doc = "{\"app\":\"a\",\"data\":{\"k\":[1,\"\\\"\",{}]},"
                       "\"qos\":1}";
    char         buf[128];
    size_t       i, len = strlen(doc);

    (void) state;

    for (i = 0; i < len; i++) {
        memcpy(buf, doc, i);
        buf[i] = '\0';
        (void) pd_test_span(buf, "data", "{\"k\":[1,\"\\\"\",{}]}");
    }

    assert_int_equal(pd_test_span(doc, "data", "{\"k\":[1,\"\\\"\",{}]}"),
                     PD_OK);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_byte_for_byte),
        cmocka_unit_test(test_absent_and_malformed),
        cmocka_unit_test(test_truncations_never_overread),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
