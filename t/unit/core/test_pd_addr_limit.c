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
pd_test_addr(struct sockaddr_storage *ss, const char *ip)
{
    struct sockaddr_in   *a4 = (struct sockaddr_in *) ss;
    struct sockaddr_in6  *a6 = (struct sockaddr_in6 *) ss;

    pd_memzero(ss, sizeof(*ss));

    if (strchr(ip, ':') != NULL) {
        a6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &a6->sin6_addr), 1);

    } else {
        a4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &a4->sin_addr), 1);
    }

    return (struct sockaddr *) ss;
}

static pd_int_t
pd_test_check(const char *ip, pd_uint_t max)
{
    struct sockaddr_storage  ss;

    return pd_addr_limit_check(&pd_test_tab, pd_test_addr(&ss, ip),
                               pd_time_sec, max);
}

static void
pd_test_count(const char *ip)
{
    struct sockaddr_storage  ss;

    pd_addr_limit_count(&pd_test_tab, pd_test_addr(&ss, ip), pd_time_sec);
}

static pd_int_t
pd_test_hit(const char *ip, pd_uint_t max)
{
    struct sockaddr_storage  ss;

    return pd_addr_limit_hit(&pd_test_tab, pd_test_addr(&ss, ip),
                             pd_time_sec, max);
}

static void
test_bound_and_window(void **state)
{
    pd_uint_t  i;

    (void) state;

    pd_memzero(pd_test_tab.slots, sizeof(pd_test_tab.slots));
    pd_time_sec = 1000 * 10;

    for (i = 0; i < 3; i++) {
        assert_int_equal(pd_test_check("10.0.0.1", 3), PD_OK);
        pd_test_count("10.0.0.1");
    }

    assert_int_equal(pd_test_check("10.0.0.1", 3), PD_BUSY);

    /* another address, and no bound at all, are not refused */
    assert_int_equal(pd_test_check("10.0.0.2", 3), PD_OK);
    assert_int_equal(pd_test_check("10.0.0.1", 0), PD_OK);

    /* a rate: hit counts and answers in one */
    assert_int_equal(pd_test_hit("10.0.0.3", 1), PD_OK);
    assert_int_equal(pd_test_hit("10.0.0.3", 1), PD_BUSY);

    /* the next window forgets */
    pd_time_sec += 10;
    assert_int_equal(pd_test_check("10.0.0.1", 3), PD_OK);
}

static void
test_ipv6_by_64(void **state)
{
    (void) state;

    pd_memzero(pd_test_tab.slots, sizeof(pd_test_tab.slots));
    pd_time_sec = 2000 * 10;

    pd_test_count("2001:db8:1:2::1");
    pd_test_count("2001:db8:1:2::ffff");

    /* the same /64: two failures of one client */
    assert_int_equal(pd_test_check("2001:db8:1:2:3::9", 2), PD_BUSY);
    assert_int_equal(pd_test_check("2001:db8:1:3::1", 2), PD_OK);
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
        pd_addr_limit_count(&pd_test_tab, (struct sockaddr *) &u,
                            pd_time_sec);
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
