/*
 * pd_cidr.c: address lists (room.allow, room.deny, center.allow) as CIDR
 * blocks.  IPv4 is kept mapped into IPv6 so one comparison serves both.
 */

#include "pd_core.h"

static void
pd_cidr_addr128(struct sockaddr *sa, uint32_t out[4])
{
    if (sa->sa_family == AF_INET6) {
        pd_memcpy(out, &((struct sockaddr_in6 *) sa)->sin6_addr, 16);
        return;
    }

    out[0] = 0;
    out[1] = 0;
    out[2] = htonl(0xffff);
    pd_memcpy(&out[3], &((struct sockaddr_in *) sa)->sin_addr, 4);
}

/* parses "10.0.0.0/8", "::1", "2001:db8::/32", "all" into pd_cidr_t */
const char *
pd_cidr_parse(pd_cycle_t *cycle, pd_array_t *in, pd_array_t **out)
{
    static char      err[160];
    pd_cidr_t  *cidr;
    pd_str_t        *s;
    char             text[64], *slash;
    struct in_addr   a4;
    struct in6_addr  a6;
    pd_int_t         bits, max, v4;
    pd_uint_t        i, b;
    uint32_t         mask;

    if (in == NULL) {
        *out = NULL;
        return NULL;
    }

    *out = pd_array_create(cycle->pool, in->nelts, sizeof(pd_cidr_t));
    if (*out == NULL) {
        return "out of memory";
    }

    s = in->elts;

    for (i = 0; i < in->nelts; i++) {
        cidr = pd_array_push(*out);
        if (cidr == NULL) {
            return "out of memory";
        }

        pd_memzero(cidr, sizeof(pd_cidr_t));

        if (s[i].len == 3 && memcmp(s[i].data, "all", 3) == 0) {
            cidr->bits = 0;
            continue;
        }

        if (s[i].len >= sizeof(text)) {
            goto invalid;
        }

        pd_memcpy(text, s[i].data, s[i].len);
        text[s[i].len] = '\0';

        slash = strchr(text, '/');
        if (slash != NULL) {
            *slash++ = '\0';
        }

        if (inet_pton(AF_INET, text, &a4) == 1) {
            v4 = 1;
            max = 32;
            cidr->addr[2] = htonl(0xffff);
            pd_memcpy(&cidr->addr[3], &a4, 4);

        } else if (inet_pton(AF_INET6, text, &a6) == 1) {
            v4 = 0;
            max = 128;
            pd_memcpy(cidr->addr, &a6, 16);

        } else {
            goto invalid;
        }

        bits = max;

        if (slash != NULL) {
            bits = pd_atoi((u_char *) slash, strlen(slash));
            if (bits < 0 || bits > max) {
                goto invalid;
            }
        }

        cidr->bits = (uint32_t) (v4 ? bits + 96 : bits);

        /* clear the host bits so the compare is a masked equality */
        for (b = 0; b < 4; b++) {
            if (cidr->bits >= (b + 1) * 32) {
                continue;
            }
            mask = (cidr->bits <= b * 32) ? 0
                   : htonl(~0U << (32 - (cidr->bits - b * 32)));
            cidr->addr[b] &= mask;
        }
    }

    return NULL;

invalid:

    (void) snprintf(err, sizeof(err), "invalid address \"%.*s\"",
                    (int) pd_min(s[i].len, 64), s[i].data);
    return err;
}

pd_int_t
pd_cidr_match(pd_array_t *cidrs, struct sockaddr *sa)
{
    pd_cidr_t  *cidr;
    uint32_t         addr[4], mask;
    pd_uint_t        i, b;

    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
        return 0;
    }

    pd_cidr_addr128(sa, addr);
    cidr = cidrs->elts;

    for (i = 0; i < cidrs->nelts; i++) {
        for (b = 0; b < 4; b++) {
            if (cidr[i].bits >= (b + 1) * 32) {
                mask = ~0U;
            } else if (cidr[i].bits <= b * 32) {
                mask = 0;
            } else {
                mask = htonl(~0U << (32 - (cidr[i].bits - b * 32)));
            }

            if ((addr[b] & mask) != cidr[i].addr[b]) {
                break;
            }
        }

        if (b == 4) {
            return 1;
        }
    }

    return 0;
}
