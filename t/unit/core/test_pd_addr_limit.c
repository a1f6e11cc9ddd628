/*
 * test_pd_addr_limit.c: counts per client address (failed attempts:
 * check and count; a rate: hit): the bound, the window, an IPv6 client
 * counted by its /64, a non-IP client never counted.
 */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>
#include <sys/un.h>

static pd_addr_limit_t  pd_test_tab = pd_addr_limit(10);

static struct sockaddr *
pd_test_v4(struct sockaddr_in *a, const char *ip)
{
    pd_memzero(a, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_port = htons(1234);
    assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    return (struct sockaddr *) a;
}

static struct sockaddr *
pd_test_v6(struct sockaddr_in6 *a, const char *ip)
{
    pd_memzero(a, sizeof(*a));
    a->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    return (struct sockaddr *) a;
}

static void
test_bound_and_window(void **state)
{
    struct sockaddr_in  a, b;
    pd_uint_t           i;

    (void) state;

    pd_memzero(pd_test_tab.slots, sizeof(pd_test_tab.slots));
    pd_time_sec = 1000 * 10;

    for (i = 0; i < 3; i++) {
        assert_int_equal(pd_addr_limit_check(&pd_test_tab,
                                          pd_test_v4(&a, "10.0.0.1"), pd_time_sec, 3),
                         PD_OK);
        pd_addr_limit_count(&pd_test_tab, pd_test_v4(&a, "10.0.0.1"), pd_time_sec);
    }

    assert_int_equal(pd_addr_limit_check(&pd_test_tab,
                                      pd_test_v4(&a, "10.0.0.1"), pd_time_sec, 3),
                     PD_BUSY);
    /* another address, and no bound at all, are not refused */
    assert_int_equal(pd_addr_limit_check(&pd_test_tab,
                                      pd_test_v4(&b, "10.0.0.2"), pd_time_sec, 3),
                     PD_OK);
    assert_int_equal(pd_addr_limit_check(&pd_test_tab,
                                      pd_test_v4(&a, "10.0.0.1"), pd_time_sec, 0),
                     PD_OK);

    /* a rate: hit counts and answers in one */
    assert_int_equal(pd_addr_limit_hit(&pd_test_tab,
                                       pd_test_v4(&b, "10.0.0.3"),
                                       pd_time_sec, 1), PD_OK);
    assert_int_equal(pd_addr_limit_hit(&pd_test_tab,
                                       pd_test_v4(&b, "10.0.0.3"),
                                       pd_time_sec, 1), PD_BUSY);

    /* the next window forgets */
    pd_time_sec += 10;
    assert_int_equal(pd_addr_limit_check(&pd_test_tab,
                                      pd_test_v4(&a, "10.0.0.1"), pd_time_sec, 3),
                     PD_OK);
}

static void
test_ipv6_by_64(void **state)
{
    struct sockaddr_in6  a;

    (void) state;

    pd_memzero(pd_test_tab.slots, sizeof(pd_test_tab.slots));
    pd_time_sec = 2000 * 10;

    pd_addr_limit_count(&pd_test_tab, pd_test_v6(&a, "2001:db8:1:2::1"), pd_time_sec);
    pd_addr_limit_count(&pd_test_tab, pd_test_v6(&a, "2001:db8:1:2::ffff"), pd_time_sec);

    /* the same /64: two failures of one client */
    assert_int_equal(pd_addr_limit_check(&pd_test_tab,
                                      pd_test_v6(&a, "2001:db8:1:2:3::9"), pd_time_sec, 2),
                     PD_BUSY);
    assert_int_equal(pd_addr_limit_check(&pd_test_tab,
                                      pd_test_v6(&a, "2001:db8:1:3::1"), pd_time_sec, 2),
                     PD_OK);
}

static void
test_not_ip(void **state)
{
    struct sockaddr_un  u;
    pd_uint_t           i;

    (void) state;

    pd_memzero(&u, sizeof(u));
    u.sun_family = AF_UNIX;

    for (i = 0; i < 10; i++) {
        pd_addr_limit_count(&pd_test_tab, (struct sockaddr *) &u, pd_time_sec);
    }

    assert_int_equal(pd_addr_limit_check(&pd_test_tab, (struct sockaddr *) &u,
                                         pd_time_sec, 1),
                     PD_OK);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_bound_and_window),
        cmocka_unit_test(test_ipv6_by_64),
        cmocka_unit_test(test_not_ip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
