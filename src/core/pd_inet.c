/* pd_inet.c: socket address text, comparison and non-blocking mode. */

#include "pd_core.h"

static pd_int_t pd_cmp_sockaddr_un(struct sockaddr_un *a, socklen_t alen,
    struct sockaddr_un *b, socklen_t blen);


/*
 * Writes the text of sa into [text, text + len): "1.2.3.4:80",
 * "[::1]:443", "unix:/path" ("unix:@name" for the abstract namespace).
 * When port is 0 the port is left out, and so are the IPv6 brackets:
 * "::1".  The text is NUL-terminated and cut to len - 1 bytes, so
 * INET6_ADDRSTRLEN bytes hold any address without its port.  Returns the
 * bytes written, NUL excluded; 0 for an unknown family.
 */
size_t
pd_sock_ntop(struct sockaddr *sa, socklen_t socklen, u_char *text,
    size_t len, pd_uint_t port)
{
    u_char               *p, *last;
    size_t                n;
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;
    struct sockaddr_un   *sun;
    char                  addr[INET6_ADDRSTRLEN];

    if (len == 0) {
        return 0;
    }

    p = text;
    last = text + len - 1;

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;

        if (inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr)) == NULL) {
            break;
        }

        if (port) {
            p = pd_slprintf(p, last, "%s:%u", addr,
                            (unsigned) ntohs(sin->sin_port));
        } else {
            p = pd_slprintf(p, last, "%s", addr);
        }

        break;

    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;

        if (inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr))
            == NULL)
        {
            break;
        }

        if (port) {
            p = pd_slprintf(p, last, "[%s]:%u", addr,
                            (unsigned) ntohs(sin6->sin6_port));
        } else {
            p = pd_slprintf(p, last, "%s", addr);
        }

        break;

    case AF_UNIX:
        sun = (struct sockaddr_un *) sa;

        p = pd_slprintf(p, last, "unix:");

        if (socklen <= offsetof(struct sockaddr_un, sun_path)) {
            /* an unnamed socket (socketpair, unbound client) */
            break;
        }

        n = socklen - offsetof(struct sockaddr_un, sun_path);
        n = pd_min(n, sizeof(sun->sun_path));

        if (sun->sun_path[0] == '\0') {
            /* abstract: the name is the n - 1 bytes after the NUL */
            p = pd_slprintf(p, last, "@%.*s", (int) (n - 1),
                            sun->sun_path + 1);
        } else {
            p = pd_slprintf(p, last, "%.*s",
                            (int) strnlen(sun->sun_path, n), sun->sun_path);
        }

        break;

    default:
        break;
    }

    *p = '\0';

    return p - text;
}


/*
 * PD_OK when both addresses are of one family with the same address and
 * port (or the same unix path), PD_DECLINED otherwise.
 */
pd_int_t
pd_cmp_sockaddr(struct sockaddr *a, socklen_t alen, struct sockaddr *b,
    socklen_t blen)
{
    struct sockaddr_in   *sin1, *sin2;
    struct sockaddr_in6  *sin61, *sin62;

    if (a->sa_family != b->sa_family) {
        return PD_DECLINED;
    }

    switch (a->sa_family) {

    case AF_INET:
        sin1 = (struct sockaddr_in *) a;
        sin2 = (struct sockaddr_in *) b;

        if (sin1->sin_port != sin2->sin_port
            || sin1->sin_addr.s_addr != sin2->sin_addr.s_addr)
        {
            return PD_DECLINED;
        }

        return PD_OK;

    case AF_INET6:
        sin61 = (struct sockaddr_in6 *) a;
        sin62 = (struct sockaddr_in6 *) b;

        if (sin61->sin6_port != sin62->sin6_port
            || memcmp(&sin61->sin6_addr, &sin62->sin6_addr, 16) != 0)
        {
            return PD_DECLINED;
        }

        return PD_OK;

    case AF_UNIX:
        return pd_cmp_sockaddr_un((struct sockaddr_un *) a, alen,
                                  (struct sockaddr_un *) b, blen);

    default:
        return PD_DECLINED;
    }
}


/*
 * Paths compare as strings: the kernel reports a path with a shorter
 * length than a sockaddr_un filled by hand.  Abstract names (leading NUL)
 * may hold any byte, so their length is part of the name.
 */
static pd_int_t
pd_cmp_sockaddr_un(struct sockaddr_un *a, socklen_t alen,
    struct sockaddr_un *b, socklen_t blen)
{
    size_t  off, an, bn;

    off = offsetof(struct sockaddr_un, sun_path);

    an = (alen > off) ? pd_min(alen - off, sizeof(a->sun_path)) : 0;
    bn = (blen > off) ? pd_min(blen - off, sizeof(b->sun_path)) : 0;

    if (an == 0 || bn == 0) {
        /* unnamed sockets have no address to be equal by */
        return PD_DECLINED;
    }

    if (a->sun_path[0] == '\0' || b->sun_path[0] == '\0') {
        if (an != bn || memcmp(a->sun_path, b->sun_path, an) != 0) {
            return PD_DECLINED;
        }

        return PD_OK;
    }

    an = strnlen(a->sun_path, an);
    bn = strnlen(b->sun_path, bn);

    if (an != bn || memcmp(a->sun_path, b->sun_path, an) != 0) {
        return PD_DECLINED;
    }

    return PD_OK;
}


/* sets O_NONBLOCK on s; PD_ERROR with errno set on failure */
pd_int_t
pd_nonblocking(pd_socket_t s)
{
    int  flags;

    flags = fcntl(s, F_GETFL);
    if (flags == -1) {
        return PD_ERROR;
    }

    if (flags & O_NONBLOCK) {
        return PD_OK;
    }

    if (fcntl(s, F_SETFL, flags | O_NONBLOCK) == -1) {
        return PD_ERROR;
    }

    return PD_OK;
}


pd_int_t
pd_inet_client_key(const struct sockaddr *sa, u_char key[16])
{
    const struct sockaddr_in   *sin;
    const struct sockaddr_in6  *sin6;

    switch (sa->sa_family) {

    case AF_INET:
        sin = (const struct sockaddr_in *) sa;
        pd_memzero(key, 10);
        key[10] = 0xff;
        key[11] = 0xff;
        pd_memcpy(&key[12], &sin->sin_addr, 4);
        return PD_OK;

    case AF_INET6:
        sin6 = (const struct sockaddr_in6 *) sa;
        pd_memcpy(key, &sin6->sin6_addr, 16);

        if (!IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            /* the interface identifier is the host's to choose */
            pd_memzero(&key[8], 8);
        }

        return PD_OK;

    default:
        return PD_DECLINED;
    }
}
