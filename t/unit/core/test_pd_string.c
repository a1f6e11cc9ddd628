/* test_pd_string.c: unit tests for the string helpers of pd_string.c. */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>


#define pd_test_atoi_lit(s)  pd_atoi((u_char *) s, sizeof(s) - 1)


static void
pd_test_eq_lit_ci(void **state)
{
    pd_str_t  s = pd_string("KeepAlive");
    pd_str_t  e = pd_null_string;
    pd_str_t  sub;

    (void) state;

    assert_true(pd_str_eq_lit_ci(&s, "keepalive"));
    assert_true(pd_str_eq_lit_ci(&s, "KEEPALIVE"));
    assert_true(pd_str_eq_lit_ci(&s, "KeepAlive"));
    assert_false(pd_str_eq_lit_ci(&s, "keepaliv"));
    assert_false(pd_str_eq_lit_ci(&s, "keepalives"));
    assert_false(pd_str_eq_lit_ci(&s, "keepalivf"));
    assert_false(pd_str_eq_lit_ci(&s, ""));

    assert_true(pd_str_eq_lit_ci(&e, ""));
    assert_false(pd_str_eq_lit_ci(&e, "a"));

    /* only len bytes count: no NUL is needed after the data */
    sub.data = (u_char *) "upgrade, close";
    sub.len = 7;
    assert_true(pd_str_eq_lit_ci(&sub, "Upgrade"));
    assert_false(pd_str_eq_lit_ci(&sub, "upgrade,"));

    /* case folding is ASCII letters only */
    pd_str_set(&sub, "a@[");
    assert_false(pd_str_eq_lit_ci(&sub, "A`{"));
}


static void
pd_test_pstrdup(void **state)
{
    u_char     *p, big[200];
    pd_str_t    s = pd_string("room.listen");
    pd_str_t    e = pd_null_string;
    pd_str_t    d;
    pd_pool_t  *pool;

    (void) state;

    pool = pd_create_pool(PD_POOL_MIN_SIZE, PD_POOL_MIN_SIZE, NULL);
    assert_non_null(pool);

    p = pd_pstrdup(pool, &s);
    assert_non_null(p);
    assert_ptr_not_equal(p, s.data);
    assert_memory_equal(p, "room.listen", s.len);
    assert_int_equal(p[s.len], '\0');

    p = pd_pstrdup(pool, &e);
    assert_non_null(p);
    assert_int_equal(p[0], '\0');

    assert_int_equal(pd_str_from_cstr(pool, &d, "center"), PD_OK);
    assert_int_equal(d.len, 6);
    assert_string_equal((char *) d.data, "center");

    assert_int_equal(pd_str_from_cstr(pool, &d, ""), PD_OK);
    assert_int_equal(d.len, 0);
    assert_non_null(d.data);

    /* the pool is bounded to its first block: a long copy must fail */
    memset(big, 'b', sizeof(big));
    s.len = sizeof(big);
    s.data = big;
    assert_null(pd_pstrdup(pool, &s));

    assert_int_equal(pd_str_from_cstr(pool, &d,
        "a string far too long for what is left of a minimum-sized pool "
        "with a limit equal to its size, so the copy cannot be placed "
        "anywhere and the call reports an error instead of growing it"),
        PD_ERROR);
    assert_int_equal(d.len, 0);
    assert_null(d.data);

    pd_destroy_pool(pool);
}


static void
pd_test_atoi(void **state)
{
    (void) state;

    assert_int_equal(pd_test_atoi_lit("0"), 0);
    assert_int_equal(pd_test_atoi_lit("7"), 7);
    assert_int_equal(pd_test_atoi_lit("123"), 123);
    assert_int_equal(pd_test_atoi_lit("000042"), 42);
    assert_int_equal(pd_test_atoi_lit("9223372036854775807"), INTPTR_MAX);

    assert_int_equal(pd_test_atoi_lit(""), -1);
    assert_int_equal(pd_test_atoi_lit("-1"), -1);
    assert_int_equal(pd_test_atoi_lit("+1"), -1);
    assert_int_equal(pd_test_atoi_lit(" 1"), -1);
    assert_int_equal(pd_test_atoi_lit("1 "), -1);
    assert_int_equal(pd_test_atoi_lit("12a"), -1);
    assert_int_equal(pd_test_atoi_lit("1.5"), -1);
    assert_int_equal(pd_test_atoi_lit("9223372036854775808"), -1);
    assert_int_equal(pd_test_atoi_lit("9223372036854775810"), -1);
    assert_int_equal(pd_test_atoi_lit("99999999999999999999"), -1);
    assert_int_equal(pd_test_atoi_lit("00000000000000000000009"), 9);

    /* only len bytes are read */
    assert_int_equal(pd_atoi((u_char *) "4096k", 4), 4096);
    assert_int_equal(pd_atoi((u_char *) "", 0), -1);
}


static void
pd_test_slprintf_fits(void **state)
{
    u_char   buf[32], *p;

    (void) state;

    memset(buf, '#', sizeof(buf));

    p = pd_slprintf(buf, buf + sizeof(buf), "%s:%d", "port", 8080);
    assert_ptr_equal(p, buf + 9);
    assert_memory_equal(buf, "port:8080", 9);

    /* chained calls continue where the last stopped */
    p = pd_slprintf(p, buf + sizeof(buf), " uid=%zu", (size_t) 17);
    assert_ptr_equal(p, buf + 9 + 7);
    assert_memory_equal(buf, "port:8080 uid=17", 16);

    p = pd_slprintf(buf, buf + sizeof(buf), "%s", "");
    assert_ptr_equal(p, buf);
}


static void
pd_test_slprintf_truncates(void **state)
{
    u_char   buf[16], *p, *last;

    (void) state;

    /* the output fills [buf, last) exactly and not one byte past it */
    memset(buf, '#', sizeof(buf));
    last = buf + 10;

    p = pd_slprintf(buf, last, "%s-%d", "0123456789abc", 5);
    assert_ptr_equal(p, last);
    assert_memory_equal(buf, "0123456789", 10);
    assert_memory_equal(last, "######", 6);

    /* an exact fit has room for every byte, so none is lost to a NUL */
    memset(buf, '#', sizeof(buf));
    p = pd_slprintf(buf, buf + 5, "%s", "hello");
    assert_ptr_equal(p, buf + 5);
    assert_memory_equal(buf, "hello#", 6);

    /* full or inverted ranges write nothing */
    memset(buf, '#', sizeof(buf));
    assert_ptr_equal(pd_slprintf(buf, buf, "%d", 1), buf);
    assert_ptr_equal(pd_slprintf(buf + 4, buf, "%d", 1), buf + 4);
    assert_int_equal(buf[0], '#');

    /* a chain of calls saturates at last */
    memset(buf, '#', sizeof(buf));
    last = buf + 8;
    p = buf;
    p = pd_slprintf(p, last, "%s", "abcde");
    p = pd_slprintf(p, last, "%s", "fghij");
    p = pd_slprintf(p, last, "%s", "klmno");
    assert_ptr_equal(p, last);
    assert_memory_equal(buf, "abcdefgh########", 16);

    /* a single byte of room keeps one character */
    memset(buf, '#', sizeof(buf));
    p = pd_slprintf(buf, buf + 1, "%s", "xyz");
    assert_ptr_equal(p, buf + 1);
    assert_int_equal(buf[0], 'x');
    assert_int_equal(buf[1], '#');
}


static void
pd_test_hex_dump(void **state)
{
    u_char   out[16], *p;
    u_char   in[] = { 0x00, 0xff, 0x10, 0xab, 0x7e };

    (void) state;

    memset(out, '#', sizeof(out));

    p = pd_hex_dump(out, in, sizeof(in));
    assert_ptr_equal(p, out + 10);
    assert_memory_equal(out, "00ff10ab7e#", 11);

    p = pd_hex_dump(out, in, 0);
    assert_ptr_equal(p, out);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_eq_lit_ci),
        cmocka_unit_test(pd_test_pstrdup),
        cmocka_unit_test(pd_test_atoi),
        cmocka_unit_test(pd_test_slprintf_fits),
        cmocka_unit_test(pd_test_slprintf_truncates),
        cmocka_unit_test(pd_test_hex_dump),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
