/* test_pd_timer.c: unit tests for the timer heap of pd_timer.c. */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>


#define PD_TEST_NTIMERS  4000


static pd_timer_t        pd_test_timers[PD_TEST_NTIMERS];
static pd_timer_heap_t   pd_test_heap;

/* keys of the timers in the order their handlers ran */
static pd_msec_t         pd_test_fired[PD_TEST_NTIMERS * 4];
static pd_uint_t         pd_test_nfired;
static pd_msec_t         pd_test_now;

static uint64_t          pd_test_seed;


static uint64_t
pd_test_rand(void)
{
    /* xorshift64: deterministic, so a failure replays the same way */
    pd_test_seed ^= pd_test_seed << 13;
    pd_test_seed ^= pd_test_seed >> 7;
    pd_test_seed ^= pd_test_seed << 17;

    return pd_test_seed;
}


/* the heap property and every timer's notion of its own slot */
static void
pd_test_check_heap(pd_timer_heap_t *th)
{
    pd_uint_t  i;

    assert_true(th->n <= th->nalloc);
    assert_true(th->nalloc <= th->max);

    for (i = 0; i < th->n; i++) {
        assert_int_equal(pd_timer_slot(th->heap[i]), i);

        if (i > 0) {
            assert_true(th->heap[(i - 1) / 2]->key <= th->heap[i]->key);
        }
    }
}


static void
pd_test_record(pd_timer_t *t)
{
    /* a handler sees its timer already unset */
    assert_false(pd_timer_is_set(t));
    assert_true(t->node.key <= pd_test_now);

    pd_test_fired[pd_test_nfired++] = t->node.key;
}


static void
pd_test_setup_run(void)
{
    pd_test_nfired = 0;
    pd_test_now = 0;
}


static void
pd_test_empty(void **state)
{
    pd_timer_heap_t  th;

    (void) state;

    assert_int_equal(pd_timer_heap_init(&th, 0, 0, NULL), PD_OK);
    assert_int_equal(th.n, 0);
    assert_int_equal(pd_timer_find(&th, 100), PD_TIMER_INFINITE);
    assert_int_equal(pd_timer_expire(&th, 100), 0);
    pd_timer_heap_free(&th);
    assert_null(th.heap);

    /* an initial size above the bound is clamped to it */
    assert_int_equal(pd_timer_heap_init(&th, 64, 8, NULL), PD_OK);
    assert_int_equal(th.nalloc, 8);
    pd_timer_heap_free(&th);
}


/* a timer's handler finds its owner from the timer alone */
typedef struct {
    u_char       before[24];
    pd_timer_t   timer;
    pd_uint_t    after;
} pd_test_owner_t;

static void
pd_test_owner(void **state)
{
    pd_test_owner_t  o;

    (void) state;

    pd_timer_init(&o.timer, pd_test_record);
    assert_ptr_equal(pd_timer_owner(&o.timer, pd_test_owner_t, timer), &o);
}


static void
pd_test_one_timer(void **state)
{
    pd_timer_t       t;
    pd_timer_heap_t  th;

    (void) state;

    pd_test_setup_run();
    assert_int_equal(pd_timer_heap_init(&th, 4, 0, NULL), PD_OK);

    pd_timer_init(&t, pd_test_record);
    assert_false(pd_timer_is_set(&t));
    assert_ptr_equal(t.handler, pd_test_record);

    assert_int_equal(pd_timer_add(&th, &t, 1000, 250), PD_OK);
    assert_true(pd_timer_is_set(&t));
    assert_int_equal(t.node.key, 1250);
    assert_int_equal(pd_timer_find(&th, 1000), 250);
    assert_int_equal(pd_timer_find(&th, 1200), 50);
    assert_int_equal(pd_timer_find(&th, 1250), 0);
    assert_int_equal(pd_timer_find(&th, 5000), 0);

    /* not due yet: nothing runs */
    pd_test_now = 1249;
    assert_int_equal(pd_timer_expire(&th, pd_test_now), 0);
    assert_true(pd_timer_is_set(&t));

    pd_test_now = 1250;
    assert_int_equal(pd_timer_expire(&th, pd_test_now), 1);
    assert_int_equal(pd_test_nfired, 1);
    assert_false(pd_timer_is_set(&t));
    assert_int_equal(pd_timer_find(&th, 1250), PD_TIMER_INFINITE);

    /* deleting an unset timer is harmless */
    pd_timer_del(&th, &t);
    assert_int_equal(th.n, 0);

    /* a key past the clock's range saturates instead of wrapping */
    assert_int_equal(pd_timer_add(&th, &t, 1000, PD_TIMER_INFINITE), PD_OK);
    assert_int_equal(t.node.key, PD_TIMER_INFINITE);
    assert_int_equal(pd_timer_expire(&th, PD_TIMER_INFINITE - 1), 0);
    pd_timer_del(&th, &t);

    pd_timer_heap_free(&th);
}


static void
pd_test_readd_moves(void **state)
{
    pd_uint_t        i;
    pd_timer_t       t[5];
    pd_timer_heap_t  th;

    (void) state;

    pd_test_setup_run();
    assert_int_equal(pd_timer_heap_init(&th, 2, 0, NULL), PD_OK);

    for (i = 0; i < 5; i++) {
        pd_timer_init(&t[i], pd_test_record);
        assert_int_equal(pd_timer_add(&th, &t[i], 0, 100 * (i + 1)), PD_OK);
    }
    assert_int_equal(th.n, 5);
    assert_ptr_equal(th.heap[0], &t[0]);

    /* later: the nearest becomes another one, the count stays */
    assert_int_equal(pd_timer_add(&th, &t[0], 0, 1000), PD_OK);
    assert_int_equal(th.n, 5);
    assert_ptr_equal(th.heap[0], &t[1]);
    assert_int_equal(pd_timer_find(&th, 0), 200);
    pd_test_check_heap(&th);

    /* earlier: the last one jumps to the top */
    assert_int_equal(pd_timer_add(&th, &t[4], 0, 50), PD_OK);
    assert_int_equal(th.n, 5);
    assert_ptr_equal(th.heap[0], &t[4]);
    assert_int_equal(pd_timer_find(&th, 0), 50);
    pd_test_check_heap(&th);

    /* same key again: still one entry */
    assert_int_equal(pd_timer_add(&th, &t[4], 0, 50), PD_OK);
    assert_int_equal(th.n, 5);
    pd_test_check_heap(&th);

    pd_timer_heap_free(&th);
}


static void
pd_test_delete_positions(void **state)
{
    pd_uint_t        i;
    pd_msec_t        keys[] = { 1, 100, 2, 101, 102, 3, 4 };
    pd_timer_t       t[7];
    pd_timer_node_t *victim;
    pd_timer_heap_t  th;

    (void) state;

    pd_test_setup_run();
    assert_int_equal(pd_timer_heap_init(&th, 0, 0, NULL), PD_OK);

    /* inserted in heap order, so the slots hold exactly these keys */
    for (i = 0; i < pd_nelems(t); i++) {
        pd_timer_init(&t[i], pd_test_record);
        assert_int_equal(pd_timer_add(&th, &t[i], 0, keys[i]), PD_OK);
    }
    for (i = 0; i < pd_nelems(t); i++) {
        assert_ptr_equal(th.heap[i], &t[i]);
    }

    /*
     * A middle slot of the left subtree: the last timer (key 4, from the
     * right subtree) fills it and must climb above key 100.
     */
    victim = th.heap[3];
    pd_timer_node_del(&th, victim);
    assert_false(pd_timer_node_is_set(victim));
    assert_int_equal(th.n, 6);
    assert_ptr_equal(th.heap[1], &t[6]);
    pd_test_check_heap(&th);

    /* the last slot: nothing else moves */
    victim = th.heap[th.n - 1];
    pd_timer_node_del(&th, victim);
    assert_false(pd_timer_node_is_set(victim));
    assert_int_equal(th.n, 5);
    pd_test_check_heap(&th);

    /* a middle slot whose replacement sinks */
    assert_int_equal(pd_timer_add(&th, &t[3], 0, 200), PD_OK);
    victim = th.heap[1];
    pd_timer_node_del(&th, victim);
    assert_int_equal(th.n, 5);
    pd_test_check_heap(&th);

    /* the root */
    victim = th.heap[0];
    pd_timer_node_del(&th, victim);
    assert_false(pd_timer_node_is_set(victim));
    assert_int_equal(th.n, 4);
    pd_test_check_heap(&th);

    /* all the rest leave in key order */
    pd_test_now = 10000;
    assert_int_equal(pd_timer_expire(&th, pd_test_now), 4);
    assert_int_equal(pd_test_nfired, 4);
    for (i = 1; i < pd_test_nfired; i++) {
        assert_true(pd_test_fired[i - 1] <= pd_test_fired[i]);
    }
    assert_int_equal(th.n, 0);

    pd_timer_heap_free(&th);
}


/*
 * Thousands of timers armed, re-armed and deleted at random, the heap
 * checked after every step; then the clock advances in uneven strides and
 * expiry must run every due timer and only those, in non-decreasing key
 * order.
 */
static void
pd_test_random(void **state)
{
    pd_uint_t        i, op, set, ran, step;
    pd_msec_t        last;
    pd_timer_t      *t;
    pd_timer_heap_t  *th = &pd_test_heap;

    (void) state;

    pd_test_setup_run();
    pd_test_seed = 0x9e3779b97f4a7c15ULL;

    assert_int_equal(pd_timer_heap_init(th, 1, 0, NULL), PD_OK);

    for (i = 0; i < PD_TEST_NTIMERS; i++) {
        pd_timer_init(&pd_test_timers[i], pd_test_record);
    }

    for (op = 0; op < 30000; op++) {
        t = &pd_test_timers[pd_test_rand() % PD_TEST_NTIMERS];

        if (pd_test_rand() % 4 == 0) {
            pd_timer_del(th, t);
            assert_false(pd_timer_is_set(t));

        } else {
            /* small key range: plenty of ties */
            assert_int_equal(pd_timer_add(th, t, 0, pd_test_rand() % 5000),
                             PD_OK);
            assert_true(pd_timer_is_set(t));
        }

        if (op % 7 == 0 || th->n < 64) {
            pd_test_check_heap(th);
        }
    }

    pd_test_check_heap(th);

    set = 0;
    for (i = 0; i < PD_TEST_NTIMERS; i++) {
        set += pd_timer_is_set(&pd_test_timers[i]);
    }
    assert_int_equal(th->n, set);
    assert_true(set > PD_TEST_NTIMERS / 2);

    for (pd_test_now = 0; th->n != 0; pd_test_now += step) {
        step = 1 + pd_test_rand() % 97;

        ran = pd_timer_expire(th, pd_test_now);
        assert_int_equal(pd_test_nfired, set - th->n);
        assert_true(ran <= set);

        /* nothing due is left behind */
        assert_true(pd_timer_find(th, pd_test_now) > 0);
        pd_test_check_heap(th);
    }

    assert_int_equal(pd_test_nfired, set);

    last = 0;
    for (i = 0; i < pd_test_nfired; i++) {
        assert_true(pd_test_fired[i] >= last);
        last = pd_test_fired[i];
    }

    for (i = 0; i < PD_TEST_NTIMERS; i++) {
        assert_false(pd_timer_is_set(&pd_test_timers[i]));
    }

    pd_timer_heap_free(th);
}


/* the re-arming handlers' run count (a timer carries no data) */
static pd_uint_t  *pd_test_count;


static void
pd_test_rearm(pd_timer_t *t)
{
    pd_uint_t  *count = pd_test_count;

    pd_test_record(t);

    if (++*count < 3) {
        assert_int_equal(pd_timer_add(&pd_test_heap, t, pd_test_now, 10),
                         PD_OK);
    }
}


static void
pd_test_readd_in_handler(void **state)
{
    pd_uint_t   count;
    pd_timer_t  t;

    (void) state;

    pd_test_setup_run();
    assert_int_equal(pd_timer_heap_init(&pd_test_heap, 1, 0, NULL), PD_OK);

    count = 0;
    pd_test_count = &count;
    pd_timer_init(&t, pd_test_rearm);
    assert_int_equal(pd_timer_add(&pd_test_heap, &t, 0, 10), PD_OK);

    /* each run re-arms 10 ms ahead: one run per expiry */
    pd_test_now = 10;
    assert_int_equal(pd_timer_expire(&pd_test_heap, pd_test_now), 1);
    assert_true(pd_timer_is_set(&t));
    assert_int_equal(pd_timer_find(&pd_test_heap, pd_test_now), 10);

    /* a late clock: one run, re-armed relative to the late time */
    pd_test_now = 100;
    assert_int_equal(pd_timer_expire(&pd_test_heap, pd_test_now), 1);
    assert_int_equal(count, 2);
    assert_int_equal(t.node.key, 110);

    pd_test_now = 110;
    assert_int_equal(pd_timer_expire(&pd_test_heap, pd_test_now), 1);
    assert_int_equal(count, 3);
    assert_false(pd_timer_is_set(&t));
    assert_int_equal(pd_test_heap.n, 0);

    pd_timer_heap_free(&pd_test_heap);
}


static void
pd_test_rearm_now(pd_timer_t *t)
{
    pd_uint_t  *count = pd_test_count;

    /* fail rather than hang if expiry keeps running the re-armed timer */
    assert_true(++*count < 100);
    assert_int_equal(pd_timer_add(&pd_test_heap, t, pd_test_now, 0), PD_OK);
}


static void
pd_test_zero_rearm_terminates(void **state)
{
    pd_uint_t   count, ran;
    pd_timer_t  t, other;

    (void) state;

    pd_test_setup_run();
    assert_int_equal(pd_timer_heap_init(&pd_test_heap, 1, 0, NULL), PD_OK);

    count = 0;
    pd_test_count = &count;
    pd_timer_init(&t, pd_test_rearm_now);
    pd_timer_init(&other, pd_test_record);
    assert_int_equal(pd_timer_add(&pd_test_heap, &t, 0, 5), PD_OK);
    assert_int_equal(pd_timer_add(&pd_test_heap, &other, 0, 5), PD_OK);

    /*
     * A handler re-arming for 0 ms must not spin expiry forever: each
     * call runs at most the timers set on entry.  Which of the two tied
     * timers goes first is free, but within two calls the other one runs.
     */
    pd_test_now = 5;
    ran = pd_timer_expire(&pd_test_heap, pd_test_now);
    assert_int_equal(ran, 2);
    assert_true(pd_timer_is_set(&t));
    assert_int_equal(pd_timer_find(&pd_test_heap, pd_test_now), 0);

    ran += pd_timer_expire(&pd_test_heap, pd_test_now);
    assert_true(ran >= 3 && ran <= 4);
    assert_int_equal(pd_test_nfired, 1);
    assert_int_equal(count + pd_test_nfired, ran);
    assert_true(pd_timer_is_set(&t));
    assert_false(pd_timer_is_set(&other));

    pd_timer_del(&pd_test_heap, &t);
    pd_timer_heap_free(&pd_test_heap);
}


/* B, C, E, F and a far one around a handler that rearranges them */
static pd_timer_t  pd_test_b, pd_test_c, pd_test_e, pd_test_f;

static void
pd_test_meddle(pd_timer_t *t)
{
    pd_test_record(t);

    pd_timer_del(&pd_test_heap, &pd_test_b);
    pd_timer_del(&pd_test_heap, &pd_test_c);
    pd_test_check_heap(&pd_test_heap);

    assert_int_equal(pd_timer_add(&pd_test_heap, &pd_test_e, pd_test_now, 0),
                     PD_OK);
    assert_int_equal(pd_timer_add(&pd_test_heap, &pd_test_f, pd_test_now,
                                  100),
                     PD_OK);
    pd_test_check_heap(&pd_test_heap);
}


static void
pd_test_handler_touches_others(void **state)
{
    pd_timer_t  a, d, later;

    (void) state;

    pd_test_setup_run();
    assert_int_equal(pd_timer_heap_init(&pd_test_heap, 2, 0, NULL), PD_OK);

    pd_timer_init(&a, pd_test_meddle);
    pd_timer_init(&pd_test_b, pd_test_record);
    pd_timer_init(&pd_test_c, pd_test_record);
    pd_timer_init(&d, pd_test_record);
    pd_timer_init(&pd_test_e, pd_test_record);
    pd_timer_init(&pd_test_f, pd_test_record);
    pd_timer_init(&later, pd_test_record);

    assert_int_equal(pd_timer_add(&pd_test_heap, &a, 0, 1), PD_OK);
    assert_int_equal(pd_timer_add(&pd_test_heap, &pd_test_b, 0, 2), PD_OK);
    assert_int_equal(pd_timer_add(&pd_test_heap, &pd_test_c, 0, 3), PD_OK);
    assert_int_equal(pd_timer_add(&pd_test_heap, &d, 0, 4), PD_OK);
    assert_int_equal(pd_timer_add(&pd_test_heap, &later, 0, 1000), PD_OK);

    /*
     * A runs first, deletes the due B and C (they never run), arms E for
     * now (it runs in this pass, after D) and F for later (it does not).
     */
    pd_test_now = 10;
    assert_int_equal(pd_timer_expire(&pd_test_heap, pd_test_now), 3);
    assert_int_equal(pd_test_nfired, 3);
    assert_int_equal(pd_test_fired[0], 1);
    assert_int_equal(pd_test_fired[1], 4);
    assert_int_equal(pd_test_fired[2], 10);

    assert_false(pd_timer_is_set(&a));
    assert_false(pd_timer_is_set(&pd_test_b));
    assert_false(pd_timer_is_set(&pd_test_c));
    assert_false(pd_timer_is_set(&d));
    assert_false(pd_timer_is_set(&pd_test_e));
    assert_true(pd_timer_is_set(&pd_test_f));
    assert_true(pd_timer_is_set(&later));
    assert_int_equal(pd_test_heap.n, 2);
    assert_int_equal(pd_timer_find(&pd_test_heap, pd_test_now), 100);
    pd_test_check_heap(&pd_test_heap);

    pd_timer_heap_free(&pd_test_heap);
}


static void
pd_test_bound(void **state)
{
    pd_uint_t        i;
    pd_timer_t       t[40], extra;
    pd_timer_heap_t  th;

    (void) state;

    pd_test_setup_run();

    /* growth doubles from 1 and stops at the bound of 37 */
    assert_int_equal(pd_timer_heap_init(&th, 1, 37, NULL), PD_OK);

    for (i = 0; i < 37; i++) {
        pd_timer_init(&t[i], pd_test_record);
        assert_int_equal(pd_timer_add(&th, &t[i], 0, 37 - i), PD_OK);
        assert_true(th.nalloc <= 37);
    }
    assert_int_equal(th.nalloc, 37);
    pd_test_check_heap(&th);

    pd_timer_init(&extra, pd_test_record);
    assert_int_equal(pd_timer_add(&th, &extra, 0, 1), PD_ERROR);
    assert_false(pd_timer_is_set(&extra));
    assert_int_equal(th.n, 37);
    pd_test_check_heap(&th);

    /* moving a timer that is already in never needs a slot */
    assert_int_equal(pd_timer_add(&th, &t[5], 0, 500), PD_OK);
    assert_int_equal(th.n, 37);

    /* a slot freed is a slot usable */
    pd_timer_del(&th, &t[0]);
    assert_int_equal(pd_timer_add(&th, &extra, 0, 0), PD_OK);
    assert_ptr_equal(th.heap[0], &extra);
    assert_int_equal(pd_timer_add(&th, &t[0], 0, 1), PD_ERROR);
    pd_test_check_heap(&th);

    pd_test_now = 1000;
    assert_int_equal(pd_timer_expire(&th, pd_test_now), 37);

    pd_timer_heap_free(&th);
}


static void
pd_test_unbounded_growth(void **state)
{
    pd_uint_t        i;
    pd_timer_heap_t  th;

    (void) state;

    pd_test_setup_run();
    assert_int_equal(pd_timer_heap_init(&th, 0, 0, NULL), PD_OK);

    for (i = 0; i < PD_TEST_NTIMERS; i++) {
        pd_timer_init(&pd_test_timers[i], pd_test_record);
        assert_int_equal(pd_timer_add(&th, &pd_test_timers[i], 0,
                                      (i * 7919) % 1000),
                         PD_OK);
    }

    assert_int_equal(th.n, PD_TEST_NTIMERS);
    assert_true(th.nalloc >= PD_TEST_NTIMERS && th.nalloc < 2 * 4096 + 1);
    pd_test_check_heap(&th);

    for (i = 0; i < PD_TEST_NTIMERS; i++) {
        pd_timer_del(&th, &pd_test_timers[i]);
    }
    assert_int_equal(th.n, 0);

    pd_timer_heap_free(&th);
}



/* a burst due together leaves in slices of max, nearest first, and what
 * is left stays due */
static void
pd_test_expire_max(void **state)
{
    pd_timer_heap_t  th;
    pd_uint_t        i;

    (void) state;

    pd_test_setup_run();
    assert_int_equal(pd_timer_heap_init(&th, 0, 0, NULL), PD_OK);

    for (i = 0; i < 300; i++) {
        pd_timer_init(&pd_test_timers[i], pd_test_record);
        assert_int_equal(pd_timer_add(&th, &pd_test_timers[i], 0,
                                      1000 - i), PD_OK);
    }

    pd_test_now = 2000;
    assert_int_equal(pd_timer_expire_max(&th, pd_test_now, 128), 128);
    assert_int_equal(th.n, 172);
    assert_int_equal(pd_timer_find(&th, pd_test_now), 0);
    pd_test_check_heap(&th);

    assert_int_equal(pd_timer_expire_max(&th, pd_test_now, 128), 128);
    assert_int_equal(pd_timer_expire_max(&th, pd_test_now, 128), 44);
    assert_int_equal(pd_timer_expire_max(&th, pd_test_now, 128), 0);
    assert_int_equal(th.n, 0);

    assert_int_equal(pd_test_nfired, 300);
    for (i = 1; i < pd_test_nfired; i++) {
        assert_true(pd_test_fired[i - 1] <= pd_test_fired[i]);
    }

    pd_timer_heap_free(&th);
}

/*
 * Bare nodes (an event's timer) and timers with their own handler share
 * one heap: each runs through its own path however the sifts moved it,
 * a node's flag bit surviving every move, in key order across both.
 */
typedef struct {
    pd_uint_t          id;
    pd_timer_node_t    node;
    uint32_t           flags;     /* as an event's: beside the node */
} pd_test_bare_t;

#define PD_TEST_NBARE  500

static pd_test_bare_t   pd_test_bare[PD_TEST_NBARE];
static pd_uint_t        pd_test_bare_ran[PD_TEST_NBARE];
static pd_uint_t        pd_test_own_ran[PD_TEST_NBARE];
static pd_timer_t       pd_test_own[PD_TEST_NBARE];


static void
pd_test_bare_handler(pd_timer_node_t *n)
{
    pd_test_bare_t  *b = pd_timer_owner(n, pd_test_bare_t, node);

    assert_false(pd_timer_node_is_set(n));
    assert_true(n->key <= pd_test_now);
    assert_int_equal(b->flags, 0xa5a5a5a5);
    pd_test_bare_ran[b->id]++;
    pd_test_fired[pd_test_nfired++] = n->key;
}


static void
pd_test_own_handler(pd_timer_t *t)
{
    assert_false(pd_timer_is_set(t));
    assert_true(t->node.index & PD_TIMER_OWN);
    pd_test_own_ran[t - pd_test_own]++;
    pd_test_fired[pd_test_nfired++] = t->node.key;
}


static void
pd_test_bare_and_own(void **state)
{
    pd_uint_t        i, round, nb, no;
    pd_timer_heap_t  th;

    (void) state;

    pd_test_setup_run();
    pd_test_seed = 0x2545f4914f6cdd1dULL;
    assert_int_equal(sizeof(pd_timer_node_t), 12);
    assert_int_equal(pd_timer_heap_init(&th, 0, 0, pd_test_bare_handler),
                     PD_OK);
    pd_memzero(pd_test_bare_ran, sizeof(pd_test_bare_ran));
    pd_memzero(pd_test_own_ran, sizeof(pd_test_own_ran));

    for (i = 0; i < PD_TEST_NBARE; i++) {
        pd_test_bare[i].id = i;
        pd_test_bare[i].flags = 0xa5a5a5a5;
        pd_timer_node_init(&pd_test_bare[i].node);
        assert_false(pd_timer_node_is_set(&pd_test_bare[i].node));
        pd_timer_init(&pd_test_own[i], pd_test_own_handler);
    }

    /* arm, move and disarm at random, then let all fire */
    for (round = 0; round < 20000; round++) {
        i = pd_test_rand() % PD_TEST_NBARE;

        switch (pd_test_rand() % 4) {
        case 0:
            assert_int_equal(pd_timer_node_add(&th, &pd_test_bare[i].node,
                                               0, pd_test_rand() % 1000),
                             PD_OK);
            break;
        case 1:
            assert_int_equal(pd_timer_add(&th, &pd_test_own[i], 0,
                                          pd_test_rand() % 1000), PD_OK);
            break;
        case 2:
            pd_timer_node_del(&th, &pd_test_bare[i].node);
            break;
        default:
            pd_timer_del(&th, &pd_test_own[i]);
        }
    }

    pd_test_check_heap(&th);

    nb = 0;
    no = 0;
    for (i = 0; i < PD_TEST_NBARE; i++) {
        nb += pd_timer_node_is_set(&pd_test_bare[i].node);
        no += pd_timer_is_set(&pd_test_own[i]);
        /* the own timers keep their bit armed or not */
        assert_true(pd_test_own[i].node.index & PD_TIMER_OWN);
        assert_false(pd_test_bare[i].node.index & PD_TIMER_OWN);
    }
    assert_int_equal(th.n, nb + no);
    assert_true(nb > 0 && no > 0);

    pd_test_now = 1000;
    assert_int_equal(pd_timer_expire(&th, pd_test_now), nb + no);
    assert_int_equal(th.n, 0);

    for (i = 0; i < PD_TEST_NBARE; i++) {
        assert_true(pd_test_bare_ran[i] <= 1);
        assert_true(pd_test_own_ran[i] <= 1);
        nb -= pd_test_bare_ran[i];
        no -= pd_test_own_ran[i];
    }
    assert_int_equal(nb, 0);
    assert_int_equal(no, 0);

    for (i = 1; i < pd_test_nfired; i++) {
        assert_true(pd_test_fired[i - 1] <= pd_test_fired[i]);
    }

    pd_timer_heap_free(&th);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_empty),
        cmocka_unit_test(pd_test_owner),
        cmocka_unit_test(pd_test_one_timer),
        cmocka_unit_test(pd_test_readd_moves),
        cmocka_unit_test(pd_test_delete_positions),
        cmocka_unit_test(pd_test_random),
        cmocka_unit_test(pd_test_readd_in_handler),
        cmocka_unit_test(pd_test_zero_rearm_terminates),
        cmocka_unit_test(pd_test_handler_touches_others),
        cmocka_unit_test(pd_test_bound),
        cmocka_unit_test(pd_test_unbounded_growth),
        cmocka_unit_test(pd_test_expire_max),
        cmocka_unit_test(pd_test_bare_and_own),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
