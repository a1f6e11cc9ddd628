/*
 * pd_failtab.h: failed attempts per client address (a bad token on the
 * room, a wrong API key on the center), counted in a small table per
 * worker so that one address cannot try forever: a slot per hash of the
 * address (an IPv6 client's /64), the count of the current window.  A
 * colliding address takes the slot over, so a collision can only forget
 * failures, never refuse a client that did not fail.
 */

#ifndef PD_FAILTAB_H
#define PD_FAILTAB_H

#define PD_FAILTAB_SLOTS   4096
#define PD_FAILTAB_WINDOW  10         /* seconds */

typedef struct {
    uint64_t     key;
    uint32_t     window;
    uint32_t     count;
} pd_failtab_slot_t;

typedef struct {
    pd_failtab_slot_t  slots[PD_FAILTAB_SLOTS];
} pd_failtab_t;

/* PD_BUSY when sa failed max times in this window (max 0: no bound) */
pd_int_t pd_failtab_check(pd_failtab_t *t, const struct sockaddr *sa,
    pd_uint_t max);
void pd_failtab_count(pd_failtab_t *t, const struct sockaddr *sa);

#endif /* PD_FAILTAB_H */
