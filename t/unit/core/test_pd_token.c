/* test_pd_token.c: unit tests of the connect token and names (pd_token.c). */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>

#define PD_TEST_STR(s)  { sizeof(s) - 1, (u_char *) s }

/*
 * The fixture, computed by an independent tool:
 *     printf 'u1\nd1\n1700000000' | openssl dgst -sha256 -hmac secret
 */
#define PD_TEST_TOKEN                                                        \
    "1b33662bbbf30b6474f5dac0dcc7d6502d2df054cc0842b0e27110297e750867"

#define PD_TEST_EXPIRES  1700000000


/* pd_token_check() with C strings; *err reset so each call sets it anew */
static pd_int_t
pd_test_check(const char *secret, const char *uid, const char *device,
    const char *expires, const char *token, time_t now, const char **err)
{
    pd_str_t  s, u, d, e, t;

    s.data = (u_char *) secret;
    s.len = strlen(secret);
    u.data = (u_char *) uid;
    u.len = strlen(uid);
    d.data = (u_char *) device;
    d.len = strlen(device);
    e.data = (u_char *) expires;
    e.len = strlen(expires);
    t.data = (u_char *) token;
    t.len = strlen(token);

    *err = NULL;

    return pd_token_check(&s, &u, &d, &e, &t, now, err);
}


static void
pd_test_vector(void **state)
{
    u_char       out[65];
    const char  *err;
    pd_str_t     secret = PD_TEST_STR("secret");
    pd_str_t     uid = PD_TEST_STR("u1");
    pd_str_t     device = PD_TEST_STR("d1");

    (void) state;

    pd_token_make(&secret, &uid, &device, PD_TEST_EXPIRES, out);
    assert_string_equal(out, PD_TEST_TOKEN);

    /* valid up to and including the second it expires */
    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                   PD_TEST_TOKEN, 0, &err),
                     PD_OK);
    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                   PD_TEST_TOKEN, 1699999999, &err),
                     PD_OK);
    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                   PD_TEST_TOKEN, 1700000000, &err),
                     PD_OK);
    assert_null(err);
}


/* an empty secret is legal: fixture from python3's hmac module */
static void
pd_test_empty_secret(void **state)
{
    u_char       out[65];
    const char  *err;
    pd_str_t     secret = pd_null_string;
    pd_str_t     uid = PD_TEST_STR("u1");
    pd_str_t     device = PD_TEST_STR("d1");

    static const char  token[] =
        "dfc830bb292f68e1eec505defcc05c16ce246bce76c8f9b92a570af6679eeeaf";

    (void) state;

    pd_token_make(&secret, &uid, &device, PD_TEST_EXPIRES, out);
    assert_string_equal(out, token);

    assert_int_equal(pd_test_check("", "u1", "d1", "1700000000", token,
                                   1, &err),
                     PD_OK);
    assert_int_equal(pd_test_check("", "u1", "d1", "1700000000",
                                   PD_TEST_TOKEN, 1, &err),
                     PD_DECLINED);
}


static void
pd_test_expired(void **state)
{
    const char  *err;

    (void) state;

    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                   PD_TEST_TOKEN, 1700000001, &err),
                     PD_DECLINED);
    assert_string_equal(err, "token expired");

    /* expiry is judged before the token, so a bad one is expired too */
    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                   "nonsense", 1800000000, &err),
                     PD_DECLINED);
    assert_string_equal(err, "token expired");
}


static void
pd_test_wrong(void **state)
{
    size_t       i;
    char         token[sizeof(PD_TEST_TOKEN)];
    const char  *err;

    (void) state;

    /* each field is signed: change any and the token no longer fits */
    assert_int_equal(pd_test_check("secreT", "u1", "d1", "1700000000",
                                   PD_TEST_TOKEN, 0, &err),
                     PD_DECLINED);
    assert_string_equal(err, "bad token");
    assert_int_equal(pd_test_check("secret", "u2", "d1", "1700000000",
                                   PD_TEST_TOKEN, 0, &err),
                     PD_DECLINED);
    assert_string_equal(err, "bad token");
    assert_int_equal(pd_test_check("secret", "u1", "d2", "1700000000",
                                   PD_TEST_TOKEN, 0, &err),
                     PD_DECLINED);
    assert_int_equal(pd_test_check("secret", "d1", "u1", "1700000000",
                                   PD_TEST_TOKEN, 0, &err),
                     PD_DECLINED);
    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000001",
                                   PD_TEST_TOKEN, 0, &err),
                     PD_DECLINED);
    assert_string_equal(err, "bad token");

    /* the same value spelled otherwise is a different signed text */
    assert_int_equal(pd_test_check("secret", "u1", "d1", "01700000000",
                                   PD_TEST_TOKEN, 0, &err),
                     PD_DECLINED);
    assert_string_equal(err, "bad token");

    /* any single hex digit changed, at every position */
    for (i = 0; i < 64; i++) {
        memcpy(token, PD_TEST_TOKEN, sizeof(token));
        token[i] = (token[i] == '0') ? '1' : '0';

        assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                       token, 0, &err),
                         PD_DECLINED);
        assert_string_equal(err, "bad token");
    }
}


static void
pd_test_bad_format(void **state)
{
    size_t       i;
    char         token[80];
    const char  *err;

    (void) state;

    /* lengths: empty, one short, one long, the digest in binary length */
    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000", "",
                                   0, &err),
                     PD_DECLINED);
    assert_string_equal(err, "bad token");

    memcpy(token, PD_TEST_TOKEN, 63);
    token[63] = '\0';
    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                   token, 0, &err),
                     PD_DECLINED);
    assert_string_equal(err, "bad token");

    memcpy(token, PD_TEST_TOKEN "0", 66);
    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                   token, 0, &err),
                     PD_DECLINED);
    assert_string_equal(err, "bad token");

    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                   "1b33662bbbf30b6474f5dac0dcc7d650",
                                   0, &err),
                     PD_DECLINED);

    /* uppercase is refused, though it is the same digest */
    for (i = 0; i < 65; i++) {
        token[i] = (char) toupper((u_char) PD_TEST_TOKEN[i]);
    }

    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                   token, 0, &err),
                     PD_DECLINED);
    assert_string_equal(err, "bad token");

    /* one uppercase letter is enough */
    memcpy(token, PD_TEST_TOKEN, 65);
    token[63] = 'B';
    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                   token, 0, &err),
                     PD_DECLINED);

    /* not hex */
    memcpy(token, PD_TEST_TOKEN, 65);
    token[10] = 'g';
    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                   token, 0, &err),
                     PD_DECLINED);
    assert_string_equal(err, "bad token");

    memcpy(token, PD_TEST_TOKEN, 65);
    token[0] = ' ';
    assert_int_equal(pd_test_check("secret", "u1", "d1", "1700000000",
                                   token, 0, &err),
                     PD_DECLINED);
}


static void
pd_test_bad_expires(void **state)
{
    size_t       i;
    u_char       out[65];
    const char  *err;
    pd_str_t     secret = PD_TEST_STR("secret");
    pd_str_t     uid = PD_TEST_STR("u1");
    pd_str_t     device = PD_TEST_STR("d1");

    static const char  *bad[] = {
        "", "-1", "+1700000000", " 1700000000", "1700000000 ", "17e8",
        "1700000000.0", "0x65", "abc",
        "9223372036854775808",          /* INT64_MAX + 1 */
        "9999999999999999999",
        "10000000000000000000",         /* 20 digits */
        "00000000000000000001",
    };

    (void) state;

    for (i = 0; i < pd_nelems(bad); i++) {
        assert_int_equal(pd_test_check("secret", "u1", "d1", bad[i],
                                       PD_TEST_TOKEN, 0, &err),
                         PD_ERROR);
        assert_string_equal(err, "bad expires");
    }

    /* the far end of the range is a plain, if distant, expiry */
    pd_token_make(&secret, &uid, &device, INT64_MAX, out);
    assert_int_equal(pd_test_check("secret", "u1", "d1",
                                   "9223372036854775807", (char *) out,
                                   1700000000, &err),
                     PD_OK);

    /* zero is a time, long past */
    assert_int_equal(pd_test_check("secret", "u1", "d1", "0", PD_TEST_TOKEN,
                                   1, &err),
                     PD_DECLINED);
    assert_string_equal(err, "token expired");
}


/* another fixture, and names at their longest */
static void
pd_test_long_fields(void **state)
{
    u_char       out[65];
    char         uid[PD_UID_MAX + 2], token[65];
    const char  *err;
    pd_str_t     secret = PD_TEST_STR("k3y");
    pd_str_t     u, d = PD_TEST_STR("phone-1");

    (void) state;

    /* printf 'alice\nphone-1\n9223372036854775807' |
       openssl dgst -sha256 -hmac k3y */
    u.data = (u_char *) "alice";
    u.len = 5;
    pd_token_make(&secret, &u, &d, INT64_MAX, out);
    assert_string_equal(out, "ee46b475b896a7cf701026e3706b2d2d"
                             "8ddbe59be5112d8b99cdf05c5b0a12a8");

    memset(uid, 'x', PD_UID_MAX);
    uid[PD_UID_MAX] = '\0';
    u.data = (u_char *) uid;
    u.len = PD_UID_MAX;
    pd_token_make(&secret, &u, &d, PD_TEST_EXPIRES, out);
    assert_int_equal(strlen((char *) out), 64);
    memcpy(token, out, 65);

    assert_int_equal(pd_test_check("k3y", uid, "phone-1", "1700000000",
                                   token, 0, &err),
                     PD_OK);

    /* one byte longer: no token can be for it */
    uid[PD_UID_MAX] = 'x';
    uid[PD_UID_MAX + 1] = '\0';
    u.len = PD_UID_MAX + 1;
    pd_token_make(&secret, &u, &d, PD_TEST_EXPIRES, out);
    assert_string_equal(out, "");

    assert_int_equal(pd_test_check("k3y", uid, "phone-1", "1700000000",
                                   token, 0, &err),
                     PD_DECLINED);
    assert_string_equal(err, "bad token");
}


static pd_int_t
pd_test_name(const char *s, size_t max)
{
    pd_str_t  str;

    str.data = (u_char *) s;
    str.len = strlen(s);

    return pd_token_valid_name(&str, max);
}


static void
pd_test_names(void **state)
{
    int        c;
    char       name[PD_UID_MAX + 2];
    u_char     one;
    pd_str_t   str;
    pd_int_t   expect;

    (void) state;

    assert_int_equal(pd_test_name("u1", PD_UID_MAX), PD_OK);
    assert_int_equal(pd_test_name("user@example.com", PD_UID_MAX), PD_OK);
    assert_int_equal(pd_test_name("a.b_c:d@e-f", PD_DEVICE_MAX), PD_OK);
    assert_int_equal(pd_test_name("ABCXYZabcxyz0189", PD_APP_MAX), PD_OK);
    assert_int_equal(pd_test_name("-", PD_APP_MAX), PD_OK);

    /* empty, and the bounds of each kind */
    assert_int_equal(pd_test_name("", PD_UID_MAX), PD_ERROR);

    memset(name, 'n', sizeof(name));
    name[PD_UID_MAX] = '\0';
    assert_int_equal(pd_test_name(name, PD_UID_MAX), PD_OK);
    assert_int_equal(pd_test_name(name, PD_DEVICE_MAX), PD_OK);
    assert_int_equal(pd_test_name(name, PD_APP_MAX), PD_ERROR);
    name[PD_UID_MAX] = 'n';
    name[PD_UID_MAX + 1] = '\0';
    assert_int_equal(pd_test_name(name, PD_UID_MAX), PD_ERROR);
    assert_int_equal(pd_test_name(name, PD_DEVICE_MAX), PD_ERROR);

    name[PD_APP_MAX] = '\0';
    assert_int_equal(pd_test_name(name, PD_APP_MAX), PD_OK);
    name[PD_APP_MAX] = 'n';
    name[PD_APP_MAX + 1] = '\0';
    assert_int_equal(pd_test_name(name, PD_APP_MAX), PD_ERROR);

    /* a bad byte anywhere, not only first */
    assert_int_equal(pd_test_name("user name", PD_UID_MAX), PD_ERROR);
    assert_int_equal(pd_test_name("u1\n", PD_UID_MAX), PD_ERROR);
    assert_int_equal(pd_test_name("a,b", PD_APP_MAX), PD_ERROR);
    assert_int_equal(pd_test_name("a/b", PD_APP_MAX), PD_ERROR);
    assert_int_equal(pd_test_name("caf\xc3\xa9", PD_UID_MAX), PD_ERROR);

    str.data = (u_char *) "u\0v";
    str.len = 3;
    assert_int_equal(pd_token_valid_name(&str, PD_UID_MAX), PD_ERROR);

    /* every byte value alone, against the documented charset */
    for (c = 0; c < 256; c++) {
        one = (u_char) c;
        str.data = &one;
        str.len = 1;

        expect = ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                  || (c >= '0' && c <= '9') || strchr("._:@-", c) != NULL)
                 && c != 0
                 ? PD_OK : PD_ERROR;

        assert_int_equal(pd_token_valid_name(&str, PD_UID_MAX), expect);
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_vector),
        cmocka_unit_test(pd_test_empty_secret),
        cmocka_unit_test(pd_test_expired),
        cmocka_unit_test(pd_test_wrong),
        cmocka_unit_test(pd_test_bad_format),
        cmocka_unit_test(pd_test_bad_expires),
        cmocka_unit_test(pd_test_long_fields),
        cmocka_unit_test(pd_test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
