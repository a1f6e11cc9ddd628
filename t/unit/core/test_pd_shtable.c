/* test_pd_shtable.c: unit tests for the shared hash table (pd_shtable.c). */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>


#define PD_TEST_SLOTS    8
#define PD_TEST_BUCKETS  4

/* a slot whose chain and free list are two links, as in the saver */
typedef struct {
    uint32_t     next;      /* free list */
    uint32_t     hnext;     /* hash chain */
    uint32_t     key;
    uint8_t      state;
    uint8_t      bad;       /* keep() refuses it (1) or sets it aside (2) */
    uint8_t      pad[2];
} pd_test_slot_t;

typedef struct {
    pd_test_slot_t  slots[PD_TEST_SLOTS];
    uint32_t        buckets[PD_TEST_BUCKETS];
    uint32_t        free;
    uint32_t        count;
    uint32_t        kept;   /* keep() calls that said yes */
    uint32_t        top;    /* pd_test_grow: slots ever handed out */
    pd_shtable_t    t;
} pd_test_table_t;


/* the key is its own hash: keys 1, 5 and 9 share bucket 1 */
static uint32_t
pd_test_hash(void *slot, void *data)
{
    (void) data;

    return ((pd_test_slot_t *) slot)->key;
}


static int
pd_test_keep(void *slot, void *data)
{
    pd_test_table_t  *tt = data;

    if (((pd_test_slot_t *) slot)->bad == 1) {
        return 0;
    }

    tt->kept++;

    return ((pd_test_slot_t *) slot)->bad == 2 ? PD_SHTABLE_ASIDE
                                                : PD_SHTABLE_CHAIN;
}


static const pd_shtable_type_t  pd_test_type = {
    sizeof(pd_test_slot_t),
    offsetof(pd_test_slot_t, hnext),
    offsetof(pd_test_slot_t, next),
    offsetof(pd_test_slot_t, state),
    pd_test_hash,
    pd_test_keep
};


static void
pd_test_init(pd_test_table_t *tt)
{
    pd_memzero(tt, sizeof(pd_test_table_t));

    tt->t.type = &pd_test_type;
    tt->t.slots = (u_char *) tt->slots;
    tt->t.buckets = tt->buckets;
    tt->t.free = &tt->free;
    tt->t.count = &tt->count;
    tt->t.nslots = PD_TEST_SLOTS;
    tt->t.mask = PD_TEST_BUCKETS - 1;
    tt->t.data = tt;

    pd_shtable_rebuild(&tt->t);
}


static uint32_t
pd_test_add(pd_test_table_t *tt, uint32_t key)
{
    uint32_t  i;

    i = pd_shtable_alloc(&tt->t);

    if (i != PD_SHTABLE_NIL) {
        tt->slots[i].key = key;
        pd_shtable_insert(&tt->t, i, key);
    }

    return i;
}


static uint32_t
pd_test_find(pd_test_table_t *tt, uint32_t key)
{
    uint32_t  i;

    for (i = pd_shtable_head(&tt->t, key);
         i != PD_SHTABLE_NIL;
         i = pd_shtable_next(&tt->t, i))
    {
        if (tt->slots[i].key == key) {
            return i;
        }
    }

    return PD_SHTABLE_NIL;
}


/*
 * Every used slot is in its own bucket's chain once (but those set
 * aside, which are in none), every free one on the free list once, and
 * the count is the chained slots.
 */
static void
pd_test_check(pd_test_table_t *tt)
{
    uint32_t  i, b, chained, freed, aside, seen[PD_TEST_SLOTS];

    pd_memzero(seen, sizeof(seen));
    chained = 0;
    freed = 0;
    aside = 0;

    for (i = 0; i < PD_TEST_SLOTS; i++) {
        if (tt->slots[i].state == PD_SHTABLE_USED && tt->slots[i].bad == 2) {
            seen[i]++;
            aside++;
        }
    }

    for (b = 0; b < PD_TEST_BUCKETS; b++) {
        for (i = tt->buckets[b]; i != PD_SHTABLE_NIL; i = tt->slots[i].hnext)
        {
            assert_true(i < PD_TEST_SLOTS);
            assert_int_equal(tt->slots[i].state, PD_SHTABLE_USED);
            assert_int_equal(tt->slots[i].key & (PD_TEST_BUCKETS - 1), b);
            assert_int_equal(seen[i]++, 0);
            chained++;
        }
    }

    for (i = tt->free; i != PD_SHTABLE_NIL; i = tt->slots[i].next) {
        assert_true(i < PD_TEST_SLOTS);
        assert_int_equal(tt->slots[i].state, PD_SHTABLE_FREE);
        assert_int_equal(seen[i]++, 0);
        freed++;
    }

    assert_int_equal(tt->count, chained);
    assert_int_equal(chained + freed + aside, PD_TEST_SLOTS);
}


static void
pd_test_format(void **state)
{
    uint32_t          i;
    pd_test_table_t   tt;

    (void) state;

    pd_test_init(&tt);
    pd_test_check(&tt);
    assert_int_equal(tt.count, 0);

    /* low slots first, then full */
    for (i = 0; i < PD_TEST_SLOTS; i++) {
        assert_int_equal(pd_test_add(&tt, 100 + i), i);
    }

    assert_int_equal(pd_test_add(&tt, 200), PD_SHTABLE_NIL);
    assert_int_equal(tt.count, PD_TEST_SLOTS);
    pd_test_check(&tt);
}


static void
pd_test_insert_find(void **state)
{
    pd_test_table_t   tt;

    (void) state;

    pd_test_init(&tt);

    assert_int_equal(pd_test_add(&tt, 1), 0);
    assert_int_equal(pd_test_add(&tt, 5), 1);
    assert_int_equal(pd_test_add(&tt, 9), 2);
    assert_int_equal(pd_test_add(&tt, 2), 3);

    assert_int_equal(pd_test_find(&tt, 1), 0);
    assert_int_equal(pd_test_find(&tt, 5), 1);
    assert_int_equal(pd_test_find(&tt, 9), 2);
    assert_int_equal(pd_test_find(&tt, 2), 3);
    assert_int_equal(pd_test_find(&tt, 13), PD_SHTABLE_NIL);
    assert_int_equal(pd_test_find(&tt, 3), PD_SHTABLE_NIL);

    /* the newest heads its chain */
    assert_int_equal(pd_shtable_head(&tt.t, 1), 2);
    assert_int_equal(pd_shtable_next(&tt.t, 2), 1);
    assert_int_equal(pd_shtable_next(&tt.t, 1), 0);
    assert_int_equal(pd_shtable_next(&tt.t, 0), PD_SHTABLE_NIL);

    assert_int_equal(tt.count, 4);
    pd_test_check(&tt);
}


static void
pd_test_unlink(void **state)
{
    pd_test_table_t   tt;

    (void) state;

    pd_test_init(&tt);

    (void) pd_test_add(&tt, 1);     /* slot 0, chain 2 1 0 */
    (void) pd_test_add(&tt, 5);
    (void) pd_test_add(&tt, 9);

    /* the middle, the head, then the last of a chain */
    pd_shtable_remove(&tt.t, 1, 5);
    assert_int_equal(pd_test_find(&tt, 5), PD_SHTABLE_NIL);
    assert_int_equal(pd_test_find(&tt, 1), 0);
    assert_int_equal(pd_test_find(&tt, 9), 2);
    assert_int_equal(tt.count, 2);
    pd_test_check(&tt);

    pd_shtable_remove(&tt.t, 2, 9);
    assert_int_equal(pd_test_find(&tt, 9), PD_SHTABLE_NIL);
    assert_int_equal(pd_test_find(&tt, 1), 0);
    pd_test_check(&tt);

    pd_shtable_remove(&tt.t, 0, 1);
    assert_int_equal(pd_test_find(&tt, 1), PD_SHTABLE_NIL);
    assert_int_equal(tt.buckets[1], PD_SHTABLE_NIL);
    assert_int_equal(tt.count, 0);
    pd_test_check(&tt);

    /* a freed slot is handed out again, the last freed first */
    assert_int_equal(pd_test_add(&tt, 7), 0);
    pd_test_check(&tt);

    /* a slot in no chain: unlinking it changes nothing */
    tt.slots[5].hnext = 0;
    pd_shtable_unlink(&tt.t, 5, 7);
    assert_int_equal(tt.count, 1);
    assert_int_equal(pd_test_find(&tt, 7), 0);
    pd_test_check(&tt);
}


/*
 * A holder dies at each step of an insert and of a remove: the rebuild
 * makes the table as if the step's update had wholly happened or never
 * begun, and the state byte alone decides which.
 */
static void
pd_test_torn_update(void **state)
{
    uint32_t          i;
    pd_test_table_t   tt;

    (void) state;

    pd_test_init(&tt);
    (void) pd_test_add(&tt, 1);
    (void) pd_test_add(&tt, 2);

    /* an insert cut short before its commit: never begun */
    i = pd_shtable_alloc(&tt.t);
    tt.slots[i].key = 3;
    pd_shtable_rebuild(&tt.t);
    pd_test_check(&tt);
    assert_int_equal(pd_test_find(&tt, 3), PD_SHTABLE_NIL);
    assert_int_equal(tt.count, 2);

    /* committed, not linked yet: it happened */
    i = pd_shtable_alloc(&tt.t);
    tt.slots[i].key = 3;
    pd_shtable_commit(&tt.t, i);
    pd_shtable_rebuild(&tt.t);
    pd_test_check(&tt);
    assert_int_equal(pd_test_find(&tt, 3), i);
    assert_int_equal(tt.count, 3);

    /* a remove cut short after its uncommit: it happened */
    i = pd_test_find(&tt, 2);
    pd_shtable_uncommit(&tt.t, i);
    pd_shtable_rebuild(&tt.t);
    pd_test_check(&tt);
    assert_int_equal(pd_test_find(&tt, 2), PD_SHTABLE_NIL);
    assert_int_equal(tt.count, 2);

    /* the derived parts trashed: all made again, idempotently */
    tt.buckets[1] = 6;
    tt.buckets[2] = 6;
    tt.free = 0;
    tt.count = 12345;
    tt.slots[0].next = 0;
    pd_shtable_rebuild(&tt.t);
    pd_test_check(&tt);
    pd_shtable_rebuild(&tt.t);
    pd_test_check(&tt);
    assert_int_equal(tt.count, 2);
    assert_true(pd_test_find(&tt, 1) != PD_SHTABLE_NIL);
    assert_true(pd_test_find(&tt, 3) != PD_SHTABLE_NIL);
}


static void
pd_test_keep_refused(void **state)
{
    uint32_t          i;
    pd_test_table_t   tt;

    (void) state;

    pd_test_init(&tt);
    (void) pd_test_add(&tt, 1);
    i = pd_test_add(&tt, 5);
    (void) pd_test_add(&tt, 6);

    /* a used slot with a field out of range is freed, state and all */
    tt.slots[i].bad = 1;
    tt.kept = 0;
    pd_shtable_rebuild(&tt.t);
    pd_test_check(&tt);
    assert_int_equal(tt.kept, 2);
    assert_int_equal(tt.slots[i].state, PD_SHTABLE_FREE);
    assert_int_equal(pd_test_find(&tt, 5), PD_SHTABLE_NIL);
    assert_int_equal(tt.count, 2);

    /* and it is the first slot handed out again */
    tt.slots[i].bad = 0;
    assert_int_equal(pd_test_add(&tt, 5), i);
    pd_test_check(&tt);
}


/*
 * A slot kept aside (the rest of another's data, in the register) stays
 * used in no chain, uncounted and off the free list, through a rebuild
 * and another; once refused it is freed like any other.
 */
static void
pd_test_keep_aside(void **state)
{
    uint32_t          i, j;
    pd_test_table_t   tt;

    (void) state;

    pd_test_init(&tt);
    (void) pd_test_add(&tt, 1);

    j = pd_shtable_alloc(&tt.t);
    tt.slots[j].key = 5;
    tt.slots[j].bad = 2;
    pd_shtable_commit(&tt.t, j);

    i = pd_test_add(&tt, 6);
    assert_int_equal(tt.count, 2);

    tt.kept = 0;
    pd_shtable_rebuild(&tt.t);
    pd_shtable_rebuild(&tt.t);
    pd_test_check(&tt);
    assert_int_equal(tt.kept, 6);
    assert_int_equal(tt.count, 2);
    assert_int_equal(tt.slots[j].state, PD_SHTABLE_USED);
    assert_int_equal(pd_test_find(&tt, 5), PD_SHTABLE_NIL);
    assert_int_not_equal(pd_test_find(&tt, 6), PD_SHTABLE_NIL);

    /* no allocation hands it out */
    while ((i = pd_shtable_alloc(&tt.t)) != PD_SHTABLE_NIL) {
        assert_int_not_equal(i, j);
    }

    /* refused later: freed, the first slot on the free list */
    pd_test_init(&tt);
    (void) pd_test_add(&tt, 1);
    j = pd_shtable_alloc(&tt.t);
    tt.slots[j].bad = 2;
    pd_shtable_commit(&tt.t, j);
    pd_shtable_rebuild(&tt.t);
    pd_test_check(&tt);
    tt.slots[j].bad = 1;
    pd_shtable_rebuild(&tt.t);
    assert_int_equal(tt.slots[j].state, PD_SHTABLE_FREE);
    assert_int_equal(tt.free, j);
    assert_int_equal(tt.count, 1);
}


/*
 * With a top, the table grows with use: formatting writes no slot, slots
 * come from the free list first and then past the top, low ones first;
 * a rebuild (after a crash) looks at the slots below the top only, and
 * a slot past it is never read (its garbage here would say "used").
 */
static void
pd_test_grow(void **state)
{
    pd_test_table_t  tt;
    uint32_t         i;

    (void) state;

    pd_test_init(&tt);
    tt.t.top = &tt.top;

    /* garbage past the top: never written before use, never read */
    for (i = 0; i < PD_TEST_SLOTS; i++) {
        tt.slots[i].state = PD_SHTABLE_USED;
        tt.slots[i].key = 0xdead;
    }

    pd_shtable_rebuild(&tt.t);
    assert_int_equal(tt.count, 0);
    assert_int_equal(tt.free, PD_SHTABLE_NIL);
    assert_int_equal(tt.kept, 0);
    assert_false(pd_shtable_full(&tt.t));
    assert_int_equal(pd_shtable_used_slots(&tt.t), 0);

    /* handed out in order, each free until committed */
    for (i = 0; i < 3; i++) {
        assert_int_equal(pd_shtable_alloc(&tt.t), i);
        assert_int_equal(tt.slots[i].state, PD_SHTABLE_FREE);
        tt.slots[i].key = i + 1;
        pd_shtable_insert(&tt.t, i, i + 1);
    }

    assert_int_equal(tt.top, 3);
    assert_int_equal(tt.count, 3);

    /* a freed slot is used again before the top moves */
    pd_shtable_remove(&tt.t, 1, 2);
    assert_int_equal(pd_shtable_alloc(&tt.t), 1);
    assert_int_equal(tt.top, 3);
    assert_int_equal(pd_shtable_alloc(&tt.t), 3);
    assert_int_equal(tt.top, 4);

    /* a crash: slot 3 taken but never committed, 1 left uncommitted; the
     * rebuild keeps 0 and 2, frees 1 and 3, and stops at the top */
    tt.kept = 0;
    pd_shtable_rebuild(&tt.t);
    assert_int_equal(tt.count, 2);
    assert_int_equal(tt.kept, 2);
    assert_int_equal(tt.top, 4);
    assert_int_equal(tt.free, 1);
    assert_int_equal(tt.slots[1].next, 3);
    assert_int_equal(tt.slots[3].next, PD_SHTABLE_NIL);
    assert_int_equal(tt.slots[5].state, PD_SHTABLE_USED);

    /* full only when the free list is empty and the top at the end */
    for (i = 0; i < PD_TEST_SLOTS - 2; i++) {
        assert_int_not_equal(pd_shtable_alloc(&tt.t), PD_SHTABLE_NIL);
    }

    assert_true(pd_shtable_full(&tt.t));
    assert_int_equal(pd_shtable_alloc(&tt.t), PD_SHTABLE_NIL);
    assert_int_equal(tt.top, PD_TEST_SLOTS);

    /* a top beyond the table (a torn store) is taken back to its end */
    tt.top = PD_TEST_SLOTS + 5;
    pd_shtable_rebuild(&tt.t);
    assert_int_equal(tt.top, PD_TEST_SLOTS);
}


/* bucket counts: the smallest power of two at or above n */
static void
pd_test_pow2(void **state)
{
    (void) state;

    assert_int_equal(pd_shtable_pow2(0), 1);
    assert_int_equal(pd_shtable_pow2(1), 1);
    assert_int_equal(pd_shtable_pow2(2), 2);
    assert_int_equal(pd_shtable_pow2(3), 4);
    assert_int_equal(pd_shtable_pow2(1000), 1024);
    assert_int_equal(pd_shtable_pow2(1024), 1024);
    assert_int_equal(pd_shtable_pow2(1025), 2048);
    assert_int_equal(pd_shtable_pow2(1u << 30), 1u << 30);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_format),
        cmocka_unit_test(pd_test_insert_find),
        cmocka_unit_test(pd_test_unlink),
        cmocka_unit_test(pd_test_torn_update),
        cmocka_unit_test(pd_test_keep_refused),
        cmocka_unit_test(pd_test_keep_aside),
        cmocka_unit_test(pd_test_grow),
        cmocka_unit_test(pd_test_pow2),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
