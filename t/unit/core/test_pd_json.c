/*
 * test_pd_json.c: the strict JSON reader: what it accepts, what it
 * refuses and why, spans byte for byte, decoding, and the escaper.
 */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>

/* parses an exact-size heap copy (ASan catches a read past the end) */
static pd_int_t
pd_test_parse(const char *doc, pd_json_field_t *f, pd_uint_t n,
    pd_json_err_t *err, u_char **copy)
{
    size_t  len = strlen(doc);

    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    memcpy(*copy, doc, len);

    return pd_json_object(*copy, len, f, n, err);
}

/* the elements of an array value, counted with pd_json_array_next() */
static pd_uint_t
pd_json_array_size(const pd_json_val_t *arr)
{
    pd_json_val_t   elem;
    const u_char   *pos = NULL;
    pd_uint_t       n = 0;

    while (pd_json_array_next(arr, &pos, &elem) == PD_OK) {
        n++;
    }

    return n;
}

static pd_int_t
pd_test_valid(const char *doc)
{
    pd_json_err_t  err;
    u_char        *copy;
    pd_int_t       rc;

    rc = pd_test_parse(doc, NULL, 0, &err, &copy);
    free(copy);
    return rc;
}

static const char *
pd_test_error(const char *doc, size_t *offset)
{
    pd_json_err_t  err;
    u_char        *copy;
    pd_int_t       rc;

    rc = pd_test_parse(doc, NULL, 0, &err, &copy);
    free(copy);

    assert_int_equal(rc, PD_ERROR);
    assert_non_null(err.what);
    *offset = err.offset;
    return err.what;
}

static void
test_spans_byte_for_byte(void **state)
{
    pd_json_field_t  f[3] = { { "data", { 0 } }, { "app", { 0 } },
                              { "qos", { 0 } } };
    pd_json_err_t    err;
    u_char          *copy;
    const char      *data = "{\"a\" : [1, 2.50, \"x\\\"}\"], \"b\":{}}";
    char             doc[256];

    (void) state;

    snprintf(doc, sizeof(doc), " {\n\"app\" :\"x\",\"data\":  %s , "
             "\"other\":[{\"data\":1}],\"qos\":1}\n", data);

    assert_int_equal(pd_test_parse(doc, f, 3, &err, &copy), PD_OK);

    assert_int_equal(f[0].val.type, PD_JSON_OBJECT);
    assert_int_equal(f[0].val.end - f[0].val.start, strlen(data));
    assert_memory_equal(f[0].val.start, data, strlen(data));
    assert_int_equal(f[1].val.type, PD_JSON_STRING);
    assert_int_equal(f[2].val.type, PD_JSON_NUMBER);
    assert_true(f[2].val.integer);

    free(copy);
}

static void
test_absent_and_duplicate(void **state)
{
    pd_json_field_t  f[1] = { { "data", { 0 } } };
    pd_json_err_t    err;
    u_char          *copy;

    (void) state;

    assert_int_equal(pd_test_parse("{\"dat\":1,\"datas\":2}", f, 1, &err,
                                   &copy), PD_OK);
    assert_int_equal(f[0].val.type, PD_JSON_ABSENT);
    free(copy);

    assert_int_equal(pd_test_parse("{\"data\":1,\"x\":2,\"data\":3}", f, 1,
                                   &err, &copy), PD_ERROR);
    assert_string_equal(err.what, "a duplicate key");
    assert_int_equal(err.offset, 16);
    free(copy);

    /* an escaped key still names the field */
    assert_int_equal(pd_test_parse("{\"d\\u0061ta\":null}", f, 1, &err,
                                   &copy), PD_OK);
    assert_int_equal(f[0].val.type, PD_JSON_NULL);
    free(copy);
}

static void
test_grammar(void **state)
{
    size_t  off;

    (void) state;

    assert_int_equal(pd_test_valid("{}"), PD_OK);
    assert_int_equal(pd_test_valid("{\"a\":[true,false,null,-0,1.5e-3,"
                                   "0.0,1E+2,[],{},\"\"]}"), PD_OK);

    assert_int_equal(pd_test_valid(""), PD_ERROR);
    assert_int_equal(pd_test_valid("[1]"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\":1}x"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\":1,}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\":[1,]}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{,}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{a:1}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\" 1}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\":01}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\":1.}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\":.5}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\":1e}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\":+1}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\":tru}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\":nul}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\":[1 2]}"), PD_ERROR);
    assert_int_equal(pd_test_valid("{\"a\":{\"b\"}}"), PD_ERROR);

    assert_string_equal(pd_test_error("{\"a\":1 \"b\":2}", &off),
                        "a missing ',' or bracket");
    assert_int_equal(off, 7);
    assert_string_equal(pd_test_error("{\"a\":[1,2", &off),
                        "unexpected end of input");
    assert_int_equal(off, 9);
    assert_string_equal(pd_test_error("{\"a\":x}", &off),
                        "an unexpected character");
    assert_int_equal(off, 5);
}

static void
test_strings_and_utf8(void **state)
{
    size_t  off;

    (void) state;

    assert_int_equal(pd_test_valid("{\"a\":\"\\\" \\\\ \\/ \\b \\f \\n \\r "
                                   "\\t \\u00e9 \\ud83d\\ude00\"}"), PD_OK);
    assert_int_equal(pd_test_valid("{\"a\":\"\xc3\xa9\xe2\x82\xac"
                                   "\xf0\x9f\x98\x80\"}"), PD_OK);

    assert_string_equal(pd_test_error("{\"a\":\"\\x\"}", &off),
                        "a bad escape in a string");
    assert_string_equal(pd_test_error("{\"a\":\"\\u12g4\"}", &off),
                        "a bad \\u escape");
    assert_string_equal(pd_test_error("{\"a\":\"\\udc00\"}", &off),
                        "a lone surrogate in \\u");
    assert_string_equal(pd_test_error("{\"a\":\"\\ud800x\"}", &off),
                        "a lone surrogate in \\u");
    assert_string_equal(pd_test_error("{\"a\":\"x\ny\"}", &off),
                        "a control character in a string");
    assert_int_equal(off, 7);
    assert_string_equal(pd_test_error("{\"a\":\"abc", &off),
                        "unexpected end of input");

    /* overlong, surrogate, past U+10FFFF, truncated, stray continuation */
    assert_string_equal(pd_test_error("{\"a\":\"\xc0\xaf\"}", &off),
                        "invalid UTF-8 in a string");
    assert_string_equal(pd_test_error("{\"a\":\"\xe0\x80\xaf\"}", &off),
                        "invalid UTF-8 in a string");
    assert_string_equal(pd_test_error("{\"a\":\"\xed\xa0\x80\"}", &off),
                        "invalid UTF-8 in a string");
    assert_string_equal(pd_test_error("{\"a\":\"\xf4\x90\x80\x80\"}", &off),
                        "invalid UTF-8 in a string");
    assert_string_equal(pd_test_error("{\"a\":\"\xe2\x82\"}", &off),
                        "invalid UTF-8 in a string");
    assert_string_equal(pd_test_error("{\"a\":\"\x80\"}", &off),
                        "invalid UTF-8 in a string");
}

static void
test_depth_bound(void **state)
{
    char    doc[PD_JSON_MAX_DEPTH * 2 + 64];
    size_t  i, n, off;

    (void) state;

    /* the object itself is level 1: 63 more arrays are allowed */
    n = 0;
    n += (size_t) sprintf(doc, "{\"a\":");
    for (i = 0; i < PD_JSON_MAX_DEPTH - 1; i++) {
        doc[n++] = '[';
    }
    for (i = 0; i < PD_JSON_MAX_DEPTH - 1; i++) {
        doc[n++] = ']';
    }
    doc[n++] = '}';
    doc[n] = '\0';
    assert_int_equal(pd_test_valid(doc), PD_OK);

    n = (size_t) sprintf(doc, "{\"a\":");
    for (i = 0; i < PD_JSON_MAX_DEPTH; i++) {
        doc[n++] = '[';
    }
    doc[n] = '\0';
    assert_string_equal(pd_test_error(doc, &off), "nested too deeply");
}

static void
test_truncations_never_overread(void **state)
{
    const char  *doc = "{\"app\":\"a\",\"data\":{\"k\":[1,\"\\\"\",{},"
                       "\"\\ud83d\\ude00\xc3\xa9\xe2\x82\xac\xf0\x9f\x98"
                       "\x80\",-1.5e3, true, null]},\"qos\":1}";
    char         buf[128];
    size_t       i, off, len = strlen(doc);

    (void) state;

    for (i = 0; i < len; i++) {
        memcpy(buf, doc, i);
        buf[i] = '\0';
        assert_int_equal(pd_test_valid(buf), PD_ERROR);

        /* a cut anywhere is called a cut, where it is (issue 13) */
        if (strcmp(pd_test_error(buf, &off), "unexpected end of input") != 0
            || off != i)
        {
            fail_msg("cut at %zu: \"%s\" at byte %zu", i,
                     pd_test_error(buf, &off), off);
        }
    }

    /* what is wrong before the end is still named */
    assert_string_equal(pd_test_error("{\"a\":\"\\u12g", &off),
                        "a bad \\u escape");
    assert_string_equal(pd_test_error("{\"a\":\"\xe0\x80", &off),
                        "invalid UTF-8 in a string");
    assert_string_equal(pd_test_error("{\"a\":\"\\ud800x", &off),
                        "a lone surrogate in \\u");
    assert_string_equal(pd_test_error("{\"a\":trux", &off),
                        "an unexpected character");

    assert_int_equal(pd_test_valid(doc), PD_OK);
}

static void
test_arrays_strings_integers(void **state)
{
    pd_json_field_t  f[2] = { { "uids", { 0 } }, { "n", { 0 } } };
    pd_json_err_t    err;
    pd_json_val_t    e;
    const u_char    *pos = NULL;
    u_char          *copy, buf[8];
    size_t           len;
    int64_t          v;
    const char      *want[] = { "u1", "caf\xc3\xa9", "\xf0\x9f\x98\x80",
                                "a\"b" };
    pd_uint_t        i = 0;

    (void) state;

    assert_int_equal(pd_test_parse("{\"uids\": [ \"u1\" ,\"caf\\u00e9\", "
                                   "\"\\ud83d\\ude00\",\"a\\\"b\"], "
                                   "\"n\": -9223372036854775808}",
                                   f, 2, &err, &copy), PD_OK);

    assert_int_equal(pd_json_array_size(&f[0].val), 4);

    while (pd_json_array_next(&f[0].val, &pos, &e) == PD_OK) {
        assert_true(i < 4);
        assert_int_equal(pd_json_string(&e, buf, sizeof(buf), &len), PD_OK);
        assert_int_equal(len, strlen(want[i]));
        assert_string_equal(buf, want[i]);
        i++;
    }
    assert_int_equal(i, 4);

    assert_int_equal(pd_json_integer(&f[1].val, &v), PD_OK);
    assert_true(v == INT64_MIN);

    /* too long for the buffer: refused, not cut */
    pos = NULL;
    assert_int_equal(pd_json_array_next(&f[0].val, &pos, &e), PD_OK);
    assert_int_equal(pd_json_string(&e, buf, 2, &len), PD_ERROR);
    assert_int_equal(pd_json_string(&f[1].val, buf, sizeof(buf), &len),
                     PD_ERROR);
    free(copy);

    assert_int_equal(pd_test_parse("{\"uids\":\"\\u0000\","
                                   "\"n\":9223372036854775808}",
                                   f, 2, &err, &copy), PD_OK);
    assert_int_equal(pd_json_string(&f[0].val, buf, sizeof(buf), &len),
                     PD_ERROR);
    assert_int_equal(pd_json_integer(&f[1].val, &v), PD_ERROR);
    assert_int_equal(pd_json_array_size(&f[0].val), 0);
    free(copy);

    assert_int_equal(pd_test_parse("{\"n\":1.0}", f, 2, &err, &copy), PD_OK);
    assert_int_equal(pd_json_integer(&f[1].val, &v), PD_ERROR);
    free(copy);

    assert_int_equal(pd_test_parse("{\"n\":[]}", f, 2, &err, &copy), PD_OK);
    assert_int_equal(pd_json_array_size(&f[1].val), 0);
    free(copy);
}

static void
test_escape(void **state)
{
    u_char   buf[64], *p;
    const u_char  s[] = "a\"b\\c\n\x01\xc3\xa9";

    (void) state;

    p = pd_json_escape(buf, buf + sizeof(buf), s, sizeof(s) - 1);
    assert_non_null(p);
    *p = '\0';
    assert_string_equal(buf, "\"a\\\"b\\\\c\\u000a\\u0001\xc3\xa9\"");

    /* what it writes parses back to the same bytes */
    {
        pd_json_field_t  f[1] = { { "k", { 0 } } };
        pd_json_err_t    err;
        u_char           doc[96], out[32];
        size_t           len;
        int              n;

        n = snprintf((char *) doc, sizeof(doc), "{\"k\":%s}", buf);
        assert_int_equal(pd_json_object(doc, (size_t) n, f, 1, &err), PD_OK);
        assert_int_equal(pd_json_string(&f[0].val, out, sizeof(out), &len),
                         PD_OK);
        assert_int_equal(len, sizeof(s) - 1);
        assert_memory_equal(out, s, len);
    }

    assert_null(pd_json_escape(buf, buf + 5, s, sizeof(s) - 1));
    assert_null(pd_json_escape(buf, buf + 1, (u_char *) "", 0));
    assert_non_null(pd_json_escape(buf, buf + 2, (u_char *) "", 0));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spans_byte_for_byte),
        cmocka_unit_test(test_absent_and_duplicate),
        cmocka_unit_test(test_grammar),
        cmocka_unit_test(test_strings_and_utf8),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_truncations_never_overread),
        cmocka_unit_test(test_arrays_strings_integers),
        cmocka_unit_test(test_escape),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
