/* pd_shtable.c: the crash-consistent hash table of the shared zones. */

#include "pd_core.h"


#define pd_shtable_state(t, i)                                               \
    ((uint8_t *) pd_shtable_slot(t, i) + (t)->type->state)


void
pd_shtable_rebuild(pd_shtable_t *t)
{
    int        keep;
    void      *slot;
    uint32_t   i, b;

    for (i = 0; i <= t->mask; i++) {
        t->buckets[i] = PD_SHTABLE_NIL;
    }

    *t->free = PD_SHTABLE_NIL;
    *t->count = 0;

    if (t->top != NULL && *t->top > t->nslots) {
        *t->top = t->nslots;
    }

    /* backwards, so that the free list hands out low slots first */
    for (i = pd_shtable_used_slots(t); i-- > 0; /* void */) {
        slot = pd_shtable_slot(t, i);

        keep = 0;

        if (*pd_shtable_state(t, i) == PD_SHTABLE_USED) {
            keep = t->type->keep != NULL ? t->type->keep(slot, t->data)
                                         : PD_SHTABLE_CHAIN;
        }

        if (keep == PD_SHTABLE_ASIDE) {
            continue;
        }

        if (keep == PD_SHTABLE_CHAIN) {
            b = t->type->hash(slot, t->data) & t->mask;
            *pd_shtable_u32(t, i, t->type->link) = t->buckets[b];
            t->buckets[b] = i;
            (*t->count)++;
            continue;
        }

        *pd_shtable_state(t, i) = PD_SHTABLE_FREE;
        *pd_shtable_u32(t, i, t->type->free_link) = *t->free;
        *t->free = i;
    }
}


uint32_t
pd_shtable_alloc(pd_shtable_t *t)
{
    uint32_t  i;

    i = *t->free;

    if (i != PD_SHTABLE_NIL) {
        *t->free = *pd_shtable_u32(t, i, t->type->free_link);
        return i;
    }

    if (t->top == NULL || *t->top >= t->nslots) {
        return PD_SHTABLE_NIL;
    }

    /*
     * A slot never written: free before the top passes it, so that a
     * crash anywhere after leaves it free (the memory need not have
     * been zeroed)
     */
    i = *t->top;
    *pd_shtable_state(t, i) = PD_SHTABLE_FREE;
    pd_shtable_fence();
    *t->top = i + 1;
    pd_shtable_fence();

    return i;
}


void
pd_shtable_commit(pd_shtable_t *t, uint32_t i)
{
    pd_shtable_fence();
    *pd_shtable_state(t, i) = PD_SHTABLE_USED;
    pd_shtable_fence();
}


void
pd_shtable_uncommit(pd_shtable_t *t, uint32_t i)
{
    *pd_shtable_state(t, i) = PD_SHTABLE_FREE;
    pd_shtable_fence();
}


void
pd_shtable_link(pd_shtable_t *t, uint32_t i, uint32_t hash)
{
    uint32_t  b;

    b = hash & t->mask;
    *pd_shtable_u32(t, i, t->type->link) = t->buckets[b];
    t->buckets[b] = i;
    (*t->count)++;
}


/*
 * A slot a rebuild did not keep is in no chain: unlinking it is a walk
 * to the end that changes nothing.
 */
void
pd_shtable_unlink(pd_shtable_t *t, uint32_t i, uint32_t hash)
{
    uint32_t  j, *link;

    link = &t->buckets[hash & t->mask];

    for (j = *link; j != i && j != PD_SHTABLE_NIL; j = *link) {
        link = pd_shtable_u32(t, j, t->type->link);
    }

    if (j == i) {
        *link = *pd_shtable_u32(t, i, t->type->link);
        (*t->count)--;
    }
}


void
pd_shtable_free(pd_shtable_t *t, uint32_t i)
{
    *pd_shtable_u32(t, i, t->type->free_link) = *t->free;
    *t->free = i;
}


void
pd_shtable_insert(pd_shtable_t *t, uint32_t i, uint32_t hash)
{
    pd_shtable_commit(t, i);
    pd_shtable_link(t, i, hash);
}


void
pd_shtable_remove(pd_shtable_t *t, uint32_t i, uint32_t hash)
{
    pd_shtable_uncommit(t, i);
    pd_shtable_unlink(t, i, hash);
    pd_shtable_free(t, i);
}
