/*
 * pd_inet.h: socket address helpers.
 */

#ifndef PD_INET_H
#define PD_INET_H

/* big enough for the families we accept; 28 bytes, not 128 */
typedef union {
    struct sockaddr          sockaddr;
    struct sockaddr_in       sockaddr_in;
    struct sockaddr_in6      sockaddr_in6;
} pd_sockaddr_t;

/* "1.2.3.4:80" / "[::1]:443" into text; returns bytes written */
size_t pd_sock_ntop(struct sockaddr *sa, socklen_t socklen, u_char *text,
    size_t len, pd_uint_t port);
pd_int_t pd_cmp_sockaddr(struct sockaddr *a, socklen_t alen,
    struct sockaddr *b, socklen_t blen);
pd_int_t pd_nonblocking(pd_socket_t s);

/*
 * The 16-byte key one client is counted by (per-address limits): IPv4
 * as IPv4-mapped IPv6, so a client counts once through an IPv4 and a
 * dual-stack listener; IPv6 by its /64, the least a site is given,
 * since a host may pick any address in it.  PD_DECLINED for another
 * family.
 */
pd_int_t pd_inet_client_key(const struct sockaddr *sa, u_char key[16]);

#endif /* PD_INET_H */
