/* test_pd_inet.c: unit tests for the socket address helpers (pd_inet.c). */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>


static socklen_t
pd_test_sin(struct sockaddr_in *sin, const char *addr, int port)
{
    pd_memzero(sin, sizeof(struct sockaddr_in));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, addr, &sin->sin_addr), 1);

    return sizeof(struct sockaddr_in);
}


static socklen_t
pd_test_sin6(struct sockaddr_in6 *sin6, const char *addr, int port)
{
    pd_memzero(sin6, sizeof(struct sockaddr_in6));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    assert_int_equal(inet_pton(AF_INET6, addr, &sin6->sin6_addr), 1);

    return sizeof(struct sockaddr_in6);
}


/* ntop into a big buffer, checking the returned length and the NUL */
static void
pd_test_ntop(struct sockaddr *sa, socklen_t len, pd_uint_t port,
    const char *expect)
{
    size_t  n;
    u_char  text[256];

    memset(text, '#', sizeof(text));

    n = pd_sock_ntop(sa, len, text, sizeof(text), port);

    assert_int_equal(n, strlen(expect));
    assert_string_equal((char *) text, expect);
}


static void
pd_test_ntop_inet(void **state)
{
    socklen_t           len;
    struct sockaddr_in  sin;

    (void) state;

    len = pd_test_sin(&sin, "192.168.1.20", 8080);
    pd_test_ntop((struct sockaddr *) &sin, len, 1, "192.168.1.20:8080");
    pd_test_ntop((struct sockaddr *) &sin, len, 0, "192.168.1.20");

    len = pd_test_sin(&sin, "0.0.0.0", 0);
    pd_test_ntop((struct sockaddr *) &sin, len, 1, "0.0.0.0:0");
}


static void
pd_test_ntop_inet6(void **state)
{
    size_t               n;
    socklen_t            len;
    u_char               text[INET6_ADDRSTRLEN];
    struct sockaddr_in6  sin6;

    (void) state;

    len = pd_test_sin6(&sin6, "::1", 443);
    pd_test_ntop((struct sockaddr *) &sin6, len, 1, "[::1]:443");
    pd_test_ntop((struct sockaddr *) &sin6, len, 0, "::1");

    len = pd_test_sin6(&sin6, "2001:db8::8:800:200c:417a", 80);
    pd_test_ntop((struct sockaddr *) &sin6, len, 1,
                 "[2001:db8::8:800:200c:417a]:80");

    len = pd_test_sin6(&sin6, "::ffff:10.1.2.3", 9);
    pd_test_ntop((struct sockaddr *) &sin6, len, 1, "[::ffff:10.1.2.3]:9");

    /* the longest address without its port fits c->addr_text */
    len = pd_test_sin6(&sin6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1);
    n = pd_sock_ntop((struct sockaddr *) &sin6, len, text, sizeof(text), 0);
    assert_int_equal(n, 39);
    assert_string_equal((char *) text,
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
}


static void
pd_test_ntop_truncated(void **state)
{
    size_t              n;
    socklen_t           len;
    u_char              text[16];
    struct sockaddr_in  sin;

    (void) state;

    len = pd_test_sin(&sin, "1.2.3.4", 80);

    memset(text, '#', sizeof(text));
    n = pd_sock_ntop((struct sockaddr *) &sin, len, text, 5, 1);
    assert_int_equal(n, 4);
    assert_string_equal((char *) text, "1.2.");
    assert_int_equal(text[5], '#');

    n = pd_sock_ntop((struct sockaddr *) &sin, len, text, 1, 1);
    assert_int_equal(n, 0);
    assert_int_equal(text[0], '\0');

    text[0] = '#';
    n = pd_sock_ntop((struct sockaddr *) &sin, len, text, 0, 1);
    assert_int_equal(n, 0);
    assert_int_equal(text[0], '#');

    /* exactly the room for "1.2.3.4:80" and its NUL */
    n = pd_sock_ntop((struct sockaddr *) &sin, len, text, 11, 1);
    assert_int_equal(n, 10);
    assert_string_equal((char *) text, "1.2.3.4:80");
}


static void
pd_test_ntop_unix(void **state)
{
    int                 sv[2];
    socklen_t           len;
    struct sockaddr_un  sun;
    struct sockaddr     unknown;
    u_char              text[8];

    (void) state;

    pd_memzero(&sun, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, "/run/pushd.sock");

    /* the kernel's length (path and NUL) and a hand-filled full one */
    len = offsetof(struct sockaddr_un, sun_path) + sizeof("/run/pushd.sock");
    pd_test_ntop((struct sockaddr *) &sun, len, 1, "unix:/run/pushd.sock");
    pd_test_ntop((struct sockaddr *) &sun, sizeof(sun), 0,
                 "unix:/run/pushd.sock");

    pd_memzero(&sun, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, "\0pushd", 6);
    len = offsetof(struct sockaddr_un, sun_path) + 6;
    pd_test_ntop((struct sockaddr *) &sun, len, 1, "unix:@pushd");

    /* a socketpair end has no name */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    len = sizeof(sun);
    assert_int_equal(getsockname(sv[0], (struct sockaddr *) &sun, &len), 0);
    pd_test_ntop((struct sockaddr *) &sun, len, 1, "unix:");
    (void) close(sv[0]);
    (void) close(sv[1]);

    pd_memzero(&unknown, sizeof(unknown));
    unknown.sa_family = AF_UNSPEC;
    text[0] = '#';
    assert_int_equal(pd_sock_ntop(&unknown, sizeof(unknown), text,
                                  sizeof(text), 1), 0);
    assert_int_equal(text[0], '\0');
}


static void
pd_test_cmp_inet(void **state)
{
    socklen_t            alen, blen;
    struct sockaddr_in   a, b;
    struct sockaddr_in6  a6, b6;

    (void) state;

    alen = pd_test_sin(&a, "10.0.0.1", 80);
    blen = pd_test_sin(&b, "10.0.0.1", 80);
    assert_int_equal(pd_cmp_sockaddr((struct sockaddr *) &a, alen,
                                     (struct sockaddr *) &b, blen), PD_OK);

    blen = pd_test_sin(&b, "10.0.0.1", 81);
    assert_int_equal(pd_cmp_sockaddr((struct sockaddr *) &a, alen,
                                     (struct sockaddr *) &b, blen),
                     PD_DECLINED);

    blen = pd_test_sin(&b, "10.0.0.2", 80);
    assert_int_equal(pd_cmp_sockaddr((struct sockaddr *) &a, alen,
                                     (struct sockaddr *) &b, blen),
                     PD_DECLINED);

    alen = pd_test_sin6(&a6, "::1", 443);
    blen = pd_test_sin6(&b6, "::1", 443);
    assert_int_equal(pd_cmp_sockaddr((struct sockaddr *) &a6, alen,
                                     (struct sockaddr *) &b6, blen), PD_OK);

    blen = pd_test_sin6(&b6, "::2", 443);
    assert_int_equal(pd_cmp_sockaddr((struct sockaddr *) &a6, alen,
                                     (struct sockaddr *) &b6, blen),
                     PD_DECLINED);

    blen = pd_test_sin6(&b6, "::1", 444);
    assert_int_equal(pd_cmp_sockaddr((struct sockaddr *) &a6, alen,
                                     (struct sockaddr *) &b6, blen),
                     PD_DECLINED);

    /* 0.0.0.0:80 and [::]:80 are different listeners */
    alen = pd_test_sin(&a, "0.0.0.0", 80);
    blen = pd_test_sin6(&b6, "::", 80);
    assert_int_equal(pd_cmp_sockaddr((struct sockaddr *) &a, alen,
                                     (struct sockaddr *) &b6, blen),
                     PD_DECLINED);
}


static void
pd_test_cmp_unix(void **state)
{
    socklen_t           alen, blen;
    struct sockaddr_un  a, b;

    (void) state;

    pd_memzero(&a, sizeof(a));
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, "/run/a.sock");
    alen = offsetof(struct sockaddr_un, sun_path) + sizeof("/run/a.sock");

    pd_memzero(&b, sizeof(b));
    b.sun_family = AF_UNIX;
    strcpy(b.sun_path, "/run/a.sock");

    /* one length from the kernel, one from a struct filled by hand */
    assert_int_equal(pd_cmp_sockaddr((struct sockaddr *) &a, alen,
                                     (struct sockaddr *) &b, sizeof(b)),
                     PD_OK);

    strcpy(b.sun_path, "/run/b.sock");
    assert_int_equal(pd_cmp_sockaddr((struct sockaddr *) &a, alen,
                                     (struct sockaddr *) &b, sizeof(b)),
                     PD_DECLINED);

    /* abstract names: the length is part of the name */
    pd_memzero(&a, sizeof(a));
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, "\0ab", 3);
    b = a;
    alen = offsetof(struct sockaddr_un, sun_path) + 3;
    blen = offsetof(struct sockaddr_un, sun_path) + 3;
    assert_int_equal(pd_cmp_sockaddr((struct sockaddr *) &a, alen,
                                     (struct sockaddr *) &b, blen), PD_OK);
    assert_int_equal(pd_cmp_sockaddr((struct sockaddr *) &a, alen,
                                     (struct sockaddr *) &b, blen - 1),
                     PD_DECLINED);

    /* unnamed sockets are never "the same address" */
    assert_int_equal(pd_cmp_sockaddr((struct sockaddr *) &a,
                                     sizeof(sa_family_t),
                                     (struct sockaddr *) &b,
                                     sizeof(sa_family_t)),
                     PD_DECLINED);
}


static void
pd_test_nonblocking(void **state)
{
    int   sv[2];
    char  c;

    (void) state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_false(fcntl(sv[0], F_GETFL) & O_NONBLOCK);

    assert_int_equal(pd_nonblocking(sv[0]), PD_OK);
    assert_true(fcntl(sv[0], F_GETFL) & O_NONBLOCK);

    /* already non-blocking: still fine */
    assert_int_equal(pd_nonblocking(sv[0]), PD_OK);

    errno = 0;
    assert_int_equal(read(sv[0], &c, 1), -1);
    assert_int_equal(errno, EAGAIN);

    (void) close(sv[0]);
    (void) close(sv[1]);

    errno = 0;
    assert_int_equal(pd_nonblocking(sv[0]), PD_ERROR);
    assert_int_equal(errno, EBADF);
}


static void
pd_test_client_key(void **state)
{
    struct sockaddr_in   sin;
    struct sockaddr_in6  a, b;
    struct sockaddr      un;
    u_char               ka[16], kb[16], k4[16];

    (void) state;

    pd_memzero(&a, sizeof(a));
    pd_memzero(&b, sizeof(b));
    a.sin6_family = AF_INET6;
    b.sin6_family = AF_INET6;

    /* two hosts of one /64: one client */
    assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2::1", &a.sin6_addr), 1);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2:dead:beef:0:7",
                               &b.sin6_addr), 1);
    assert_int_equal(pd_inet_client_key((struct sockaddr *) &a, ka), PD_OK);
    assert_int_equal(pd_inet_client_key((struct sockaddr *) &b, kb), PD_OK);
    assert_memory_equal(ka, kb, 16);

    /* the next /64 is another */
    assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:3::1", &b.sin6_addr), 1);
    assert_int_equal(pd_inet_client_key((struct sockaddr *) &b, kb), PD_OK);
    assert_memory_not_equal(ka, kb, 16);

    /* IPv4 and IPv4-mapped IPv6 agree, and keep all 32 bits */
    pd_memzero(&sin, sizeof(sin));
    sin.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr), 1);
    assert_int_equal(pd_inet_client_key((struct sockaddr *) &sin, k4), PD_OK);
    assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.7", &b.sin6_addr),
                     1);
    assert_int_equal(pd_inet_client_key((struct sockaddr *) &b, kb), PD_OK);
    assert_memory_equal(k4, kb, 16);

    assert_int_equal(inet_pton(AF_INET, "192.0.2.8", &sin.sin_addr), 1);
    assert_int_equal(pd_inet_client_key((struct sockaddr *) &sin, k4), PD_OK);
    assert_memory_not_equal(k4, kb, 16);

    un.sa_family = AF_UNIX;
    assert_int_equal(pd_inet_client_key(&un, ka), PD_DECLINED);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_ntop_inet),
        cmocka_unit_test(pd_test_ntop_inet6),
        cmocka_unit_test(pd_test_ntop_truncated),
        cmocka_unit_test(pd_test_ntop_unix),
        cmocka_unit_test(pd_test_cmp_inet),
        cmocka_unit_test(pd_test_cmp_unix),
        cmocka_unit_test(pd_test_nonblocking),
        cmocka_unit_test(pd_test_client_key),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
