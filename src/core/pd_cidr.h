/*
 * pd_cidr.h: lists of address blocks for access policies.
 */

#ifndef PD_CIDR_H
#define PD_CIDR_H

typedef struct {
    uint32_t         addr[4];      /* IPv4 mapped into IPv6 */
    uint32_t         bits;         /* prefix length, over 128 */
} pd_cidr_t;

/*
 * Parses a list of "10.0.0.0/8", "::1", "2001:db8::/32" or "all" (pd_str_t)
 * into *out (pd_cidr_t, in the cycle pool; NULL when in is NULL).
 * NULL or a phrase naming the bad entry.
 */
const char *pd_cidr_parse(pd_cycle_t *cycle, pd_array_t *in,
    pd_array_t **out);
/* 1 when sa (IPv4 or IPv6) is in one of the blocks */
pd_int_t pd_cidr_match(pd_array_t *cidrs, struct sockaddr *sa);

#endif /* PD_CIDR_H */
