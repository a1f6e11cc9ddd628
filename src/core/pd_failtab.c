/*
 * pd_failtab.c: failed attempts per client address, see pd_failtab.h.
 */

#include "pd_core.h"

/* the slot of the address; NULL for a non-IP client */
static pd_failtab_slot_t *
pd_failtab_slot(pd_failtab_t *t, const struct sockaddr *sa)
{
    pd_failtab_slot_t  *f;
    u_char              key[16];
    uint64_t            h;
    uint32_t            window;
    pd_uint_t           i;

    if (pd_inet_client_key(sa, key) != PD_OK) {
        return NULL;
    }

    /* FNV-1a; the slot index and the kept key both come from it */
    h = 0xcbf29ce484222325ULL;
    for (i = 0; i < 16; i++) {
        h = (h ^ key[i]) * 0x100000001b3ULL;
    }

    f = &t->slots[h % PD_FAILTAB_SLOTS];
    window = (uint32_t) (pd_time_sec / PD_FAILTAB_WINDOW);

    if (f->key != h || f->window != window) {
        f->key = h;
        f->window = window;
        f->count = 0;
    }

    return f;
}

pd_int_t
pd_failtab_check(pd_failtab_t *t, const struct sockaddr *sa, pd_uint_t max)
{
    pd_failtab_slot_t  *f;

    if (max == 0) {
        return PD_OK;
    }

    f = pd_failtab_slot(t, sa);

    return (f == NULL || f->count < max) ? PD_OK : PD_BUSY;
}

void
pd_failtab_count(pd_failtab_t *t, const struct sockaddr *sa)
{
    pd_failtab_slot_t  *f;

    f = pd_failtab_slot(t, sa);
    if (f != NULL && f->count < UINT32_MAX) {
        f->count++;
    }
}
