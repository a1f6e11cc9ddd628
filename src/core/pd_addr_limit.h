/*
 * pd_addr_limit.h: counts per client address in fixed time windows, for
 * limits such as "20 failed handshakes per address in 10 s": a table of
 * a worker's own, a slot per hash of the address (an IPv6 client by its
 * /64).  A colliding address takes the slot over, so a collision can only
 * forget counts, never hold back a client that did not count.
 */

#ifndef PD_ADDR_LIMIT_H
#define PD_ADDR_LIMIT_H

#define PD_ADDR_LIMIT_SLOTS  4096

typedef struct {
    uint64_t     key;
    uint32_t     window;
    uint32_t     count;
} pd_addr_count_t;

typedef struct {
    uint32_t          period;      /* seconds of a window */
    pd_addr_count_t   slots[PD_ADDR_LIMIT_SLOTS];
} pd_addr_limit_t;

/* a static table counting per period seconds */
#define pd_addr_limit(period)  { (period), { { 0, 0, 0 } } }

/*
 * The count of sa's window at now (unix seconds), reset when a new
 * window began or another address held the slot; NULL for an address
 * that is not IP (a Unix socket): it is never limited.
 */
pd_addr_count_t *pd_addr_limit_slot(pd_addr_limit_t *l,
    const struct sockaddr *sa, time_t now);

/*
 * Counts one more for sa and says whether it stays within max in this
 * window: PD_OK, or PD_BUSY beyond (max 0: no limit, always PD_OK).
 */
pd_int_t pd_addr_limit_hit(pd_addr_limit_t *l, const struct sockaddr *sa,
    time_t now, pd_uint_t max);

/*
 * For limits on failures: whether sa failed max times in this window
 * already (PD_BUSY; max 0: no limit), and one more failure of sa.
 */
pd_int_t pd_addr_limit_check(pd_addr_limit_t *l, const struct sockaddr *sa,
    time_t now, pd_uint_t max);
void pd_addr_limit_count(pd_addr_limit_t *l, const struct sockaddr *sa,
    time_t now);

#endif /* PD_ADDR_LIMIT_H */
