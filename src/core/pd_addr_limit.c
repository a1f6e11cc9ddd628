/*
 * pd_addr_limit.c: per-address counts in fixed windows (see the header).
 */

#include "pd_core.h"

pd_addr_count_t *
pd_addr_limit_slot(pd_addr_limit_t *l, const struct sockaddr *sa, time_t now)
{
    pd_addr_count_t  *s;
    u_char            key[16];
    uint64_t          h;
    uint32_t          window;
    pd_uint_t         i;

    if (pd_inet_client_key(sa, key) != PD_OK) {
        return NULL;
    }

    /* FNV-1a; the slot index and the kept key both come from it */
    h = 0xcbf29ce484222325ULL;
    for (i = 0; i < 16; i++) {
        h = (h ^ key[i]) * 0x100000001b3ULL;
    }

    s = &l->slots[h % PD_ADDR_LIMIT_SLOTS];
    window = (uint32_t) (now / (l->period ? l->period : 1));

    if (s->key != h || s->window != window) {
        s->key = h;
        s->window = window;
        s->count = 0;
    }

    return s;
}

pd_int_t
pd_addr_limit_hit(pd_addr_limit_t *l, const struct sockaddr *sa, time_t now,
    pd_uint_t max)
{
    pd_addr_count_t  *s;

    if (max == 0) {
        return PD_OK;
    }

    s = pd_addr_limit_slot(l, sa, now);
    if (s == NULL) {
        return PD_OK;
    }

    if (s->count < UINT32_MAX) {
        s->count++;
    }

    return s->count <= max ? PD_OK : PD_BUSY;
}

pd_int_t
pd_addr_limit_check(pd_addr_limit_t *l, const struct sockaddr *sa,
    time_t now, pd_uint_t max)
{
    pd_addr_count_t  *s;

    if (max == 0) {
        return PD_OK;
    }

    s = pd_addr_limit_slot(l, sa, now);

    return (s == NULL || s->count < max) ? PD_OK : PD_BUSY;
}

void
pd_addr_limit_count(pd_addr_limit_t *l, const struct sockaddr *sa,
    time_t now)
{
    pd_addr_count_t  *s;

    s = pd_addr_limit_slot(l, sa, now);
    if (s != NULL && s->count < UINT32_MAX) {
        s->count++;
    }
}
