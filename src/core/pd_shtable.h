/*
 * pd_shtable.h: the crash-consistent hash table of the shared-memory
 * zones: a fixed array of slots, each found by index, chained by hash
 * from an array of bucket heads, the unused ones on a free list.  The
 * zone owns the memory and the lock; a table is a view of it that the
 * caller fills in (pointers are not kept in shared memory, so the zone
 * means the same wherever it is mapped).
 *
 * A table with a top grows with use: slots are handed out from the free
 * list, else the next never-used one, so a slot's page is first written
 * when a slot on it is first needed, and a zone formatted for a million
 * connections costs nothing until they come (PSS counts pages written).
 * Every walk over the slots stops at the top.
 *
 * Crash consistency: a slot's state byte is the only fact; it is stored
 * after the fields it commits (pd_shtable_commit) and cleared before
 * they are reused (pd_shtable_uncommit).  The chains, the free list and
 * the count are derived: when a lock holder died, pd_shtable_rebuild()
 * makes them again from the states, so the table is as if the update
 * cut short had wholly happened or never begun.
 */

#ifndef PD_SHTABLE_H
#define PD_SHTABLE_H

/* "no slot": ends hash chains and the free list */
#define PD_SHTABLE_NIL   0xffffffffU

#define PD_SHTABLE_FREE  0
#define PD_SHTABLE_USED  1

/*
 * The hash of a committed slot, from its fields: its bucket on rebuild.
 * Called only for the slots keep() accepted.
 */
typedef uint32_t (*pd_shtable_hash_pt)(void *slot, void *data);

/*
 * On rebuild, whether a used slot stays (its fields in range, what it
 * names alive); it may count what the slot refers to.  It answers
 * PD_SHTABLE_CHAIN (stays, chained by hash() and counted),
 * PD_SHTABLE_ASIDE (stays used but in no chain and not counted: a slot
 * that extends another, found from it by index) or 0: freed.
 */
typedef int (*pd_shtable_keep_pt)(void *slot, void *data);

#define PD_SHTABLE_CHAIN  1
#define PD_SHTABLE_ASIDE  2

/* where a slot type keeps what the table needs: byte offsets */
typedef struct {
    size_t               size;       /* of a slot */
    size_t               link;       /* uint32_t: the hash chain */
    size_t               free_link;  /* uint32_t: the free list (may be
                                      * link, when a slot is in one or
                                      * the other) */
    size_t               state;      /* uint8_t: PD_SHTABLE_FREE, _USED */
    pd_shtable_hash_pt   hash;
    pd_shtable_keep_pt   keep;       /* NULL: every used slot stays */
} pd_shtable_type_t;

typedef struct {
    const pd_shtable_type_t  *type;
    u_char                   *slots;
    uint32_t                 *buckets;   /* mask + 1 chain heads */
    uint32_t                 *free;      /* the free list's head, and */
    uint32_t                 *count;     /* the chained slots, in the zone */
    uint32_t                 *top;       /* in the zone: slots [0, top)
                                          * were handed out at least once,
                                          * the others never written;
                                          * NULL: all on the free list */
    uint32_t                  nslots;
    uint32_t                  mask;      /* buckets - 1, a power of two - 1 */
    void                     *data;      /* for hash() and keep() */
} pd_shtable_t;


/*
 * A process stops between two instructions when it is killed, never
 * inside a store, so only the compiler could reorder the stores a
 * commit depends on; another process reads them after taking the
 * zone's mutex, which orders memory for it.  A signal fence is exactly
 * that compiler barrier.
 */
#define pd_shtable_fence()  __atomic_signal_fence(__ATOMIC_SEQ_CST)

#define pd_shtable_u32(t, i, off)                                            \
    ((uint32_t *) ((t)->slots + (size_t) (i) * (t)->type->size + (off)))


/* slot i */
static inline void *
pd_shtable_slot(pd_shtable_t *t, uint32_t i)
{
    return t->slots + (size_t) i * t->type->size;
}


/* the first slot of hash's chain, or PD_SHTABLE_NIL */
static inline uint32_t
pd_shtable_head(pd_shtable_t *t, uint32_t hash)
{
    return t->buckets[hash & t->mask];
}


/* the slot after i in its chain, or PD_SHTABLE_NIL */
static inline uint32_t
pd_shtable_next(pd_shtable_t *t, uint32_t i)
{
    return *pd_shtable_u32(t, i, t->type->link);
}


/*
 * Derives the chains, the free list and the count from the slots' states:
 * a used slot that keep() accepts is chained by hash() (or left aside),
 * any other is marked free and put on the free list, low slots first;
 * with a top,
 * only the slots below it.  Idempotent and O(slots); formatting a table
 * (a zeroed one, or one whose top is 0) is a rebuild too.
 */
void pd_shtable_rebuild(pd_shtable_t *t);

/*
 * Takes a slot off the free list, or the top's, its state free: the
 * caller stores its fields, then pd_shtable_insert() (or
 * pd_shtable_commit() and pd_shtable_link()).  PD_SHTABLE_NIL when the
 * table is full.
 */
uint32_t pd_shtable_alloc(pd_shtable_t *t);

/* stores slot i's state as used, after every field before it */
void pd_shtable_commit(pd_shtable_t *t, uint32_t i);

/* stores slot i's state as free, before any field is changed or reused */
void pd_shtable_uncommit(pd_shtable_t *t, uint32_t i);

/* chains committed slot i at the head of hash's bucket and counts it */
void pd_shtable_link(pd_shtable_t *t, uint32_t i, uint32_t hash);

/* takes slot i out of hash's chain (if it is there) and uncounts it */
void pd_shtable_unlink(pd_shtable_t *t, uint32_t i, uint32_t hash);

/* puts an uncommitted, unlinked slot i on the free list */
void pd_shtable_free(pd_shtable_t *t, uint32_t i);

/* slots ever handed out: the end of any walk over them */
static inline uint32_t
pd_shtable_used_slots(pd_shtable_t *t)
{
    return t->top != NULL ? pd_min(*t->top, t->nslots) : t->nslots;
}

/* whether pd_shtable_alloc() would find no slot */
static inline int
pd_shtable_full(pd_shtable_t *t)
{
    return *t->free == PD_SHTABLE_NIL
           && (t->top == NULL || *t->top >= t->nslots);
}

/* the smallest power of two >= n (n at most 2^30): a bucket count */
static inline uint32_t
pd_shtable_pow2(uint32_t n)
{
    uint32_t  p;

    for (p = 1; p < n; p <<= 1) { /* void */ }

    return p;
}

/* pd_shtable_commit(), then pd_shtable_link() */
void pd_shtable_insert(pd_shtable_t *t, uint32_t i, uint32_t hash);

/* pd_shtable_uncommit(), pd_shtable_unlink(), then pd_shtable_free() */
void pd_shtable_remove(pd_shtable_t *t, uint32_t i, uint32_t hash);

#endif /* PD_SHTABLE_H */
