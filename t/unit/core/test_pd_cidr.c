/*
 * test_pd_cidr.c: address blocks of the access lists.
 */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>

static pd_cycle_t  pd_test_cycle;

static pd_array_t *
pd_test_list(const char **items, const char **err)
{
    pd_array_t  *in, *out;
    pd_str_t    *s;

    in = pd_array_create(pd_test_cycle.pool, 4, sizeof(pd_str_t));
    assert_non_null(in);

    for ( /* void */ ; *items; items++) {
        s = pd_array_push(in);
        assert_non_null(s);
        s->data = (u_char *) *items;
        s->len = strlen(*items);
    }

    *err = pd_cidr_parse(&pd_test_cycle, in, &out);
    return out;
}

static pd_int_t
pd_test_match(pd_array_t *l, const char *addr)
{
    struct sockaddr_in   a4;
    struct sockaddr_in6  a6;

    pd_memzero(&a4, sizeof(a4));
    pd_memzero(&a6, sizeof(a6));

    if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        return pd_cidr_match(l, (struct sockaddr *) &a4);
    }

    assert_int_equal(inet_pton(AF_INET6, addr, &a6.sin6_addr), 1);
    a6.sin6_family = AF_INET6;
    return pd_cidr_match(l, (struct sockaddr *) &a6);
}

static void
test_blocks(void **state)
{
    const char  *items[] = { "10.0.0.0/8", "192.168.1.7", "2001:db8::/32",
                             "172.16.5.9/12", NULL };
    const char  *err;
    pd_array_t  *l;

    (void) state;

    l = pd_test_list(items, &err);
    assert_null(err);

    assert_true(pd_test_match(l, "10.1.2.3"));
    assert_false(pd_test_match(l, "11.0.0.1"));
    assert_true(pd_test_match(l, "192.168.1.7"));
    assert_false(pd_test_match(l, "192.168.1.8"));
    assert_true(pd_test_match(l, "2001:db8:1::5"));
    assert_false(pd_test_match(l, "2001:db9::1"));
    /* host bits of the block are ignored: 172.16.0.0/12 */
    assert_true(pd_test_match(l, "172.31.255.255"));
    assert_false(pd_test_match(l, "172.32.0.1"));
    /* an IPv4-mapped IPv6 client is the same client */
    assert_true(pd_test_match(l, "::ffff:10.9.9.9"));
    assert_false(pd_test_match(l, "::1"));
}

static void
test_all_and_edges(void **state)
{
    const char  *all[] = { "all", NULL };
    const char  *zero[] = { "0.0.0.0/0", NULL };
    const char  *one[] = { "127.0.0.1/32", "::1/128", NULL };
    const char  *err;
    pd_array_t  *l;

    (void) state;

    l = pd_test_list(all, &err);
    assert_null(err);
    assert_true(pd_test_match(l, "8.8.8.8"));
    assert_true(pd_test_match(l, "2001:db8::1"));

    /* 0.0.0.0/0 is every IPv4 address, not IPv6 ones */
    l = pd_test_list(zero, &err);
    assert_null(err);
    assert_true(pd_test_match(l, "203.0.113.1"));
    assert_false(pd_test_match(l, "2001:db8::1"));

    l = pd_test_list(one, &err);
    assert_null(err);
    assert_true(pd_test_match(l, "127.0.0.1"));
    assert_false(pd_test_match(l, "127.0.0.2"));
    assert_true(pd_test_match(l, "::1"));
}

static void
test_bad_entries(void **state)
{
    const char  *bad[][2] = {
        { "10.0.0.0/33", NULL }, { "::/129", NULL }, { "10.0.0/8", NULL },
        { "example.com", NULL }, { "10.0.0.0/x", NULL }, { "", NULL },
        { "1.2.3.4/-1", NULL },
    };
    const char  *err;
    pd_uint_t    i;

    (void) state;

    for (i = 0; i < pd_nelems(bad); i++) {
        (void) pd_test_list(bad[i], &err);
        assert_non_null(err);
        assert_non_null(strstr(err, "invalid address"));
    }
}

static int
pd_test_setup(void **state)
{
    (void) state;

    pd_test_cycle.pool = pd_create_pool(4096, 0, NULL);
    return pd_test_cycle.pool == NULL;
}

static int
pd_test_teardown(void **state)
{
    (void) state;

    pd_destroy_pool(pd_test_cycle.pool);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_all_and_edges),
        cmocka_unit_test(test_bad_entries),
    };

    return cmocka_run_group_tests(tests, pd_test_setup, pd_test_teardown);
}
