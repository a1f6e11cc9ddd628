/* pd_timer.c: the timer min-heap (see pd_timer.h). */

#include "pd_core.h"

/* first allocation when the heap was initialised empty */
#define PD_TIMER_HEAP_MIN  16

#define pd_timer_parent(i)  (((i) - 1) / 2)
/* the slot changes, the PD_TIMER_OWN bit stays */
#define pd_timer_set_slot(t, i)                                              \
    (t)->index = ((t)->index & PD_TIMER_OWN) | (uint32_t) (i)

static pd_int_t pd_timer_heap_grow(pd_timer_heap_t *th);
static pd_timer_t *pd_timer_own(void *node);
static void pd_timer_sift_up(pd_timer_heap_t *th, pd_uint_t i);
static void pd_timer_sift_down(pd_timer_heap_t *th, pd_uint_t i);


/*
 * Prepares an empty heap with room for n timers (clamped to max) that
 * never holds more than max (0: no bound but the index's 31 bits).
 * PD_ERROR when malloc fails.
 */
pd_int_t
pd_timer_heap_init(pd_timer_heap_t *th, pd_uint_t n, pd_uint_t max,
    pd_timer_node_handler_pt handler)
{
    /* a slot must fit the index's 31 bits and leave PD_TIMER_UNSET */
    if (max == 0 || max > PD_TIMER_SLOT - 1) {
        max = PD_TIMER_SLOT - 1;
    }

    th->handler = handler;

    if (n > max) {
        n = max;
    }

    th->heap = NULL;
    th->n = 0;
    th->nalloc = 0;
    th->max = max;

    if (n == 0) {
        return PD_OK;
    }

    if (n > SIZE_MAX / sizeof(pd_timer_node_t *)) {
        return PD_ERROR;
    }

    th->heap = malloc(n * sizeof(pd_timer_node_t *));
    if (th->heap == NULL) {
        return PD_ERROR;
    }

    th->nalloc = n;

    return PD_OK;
}


/*
 * Frees the slot array.  Timers still in it are not touched: their owners
 * may be gone already, and whoever frees the heap is done with them.
 */
void
pd_timer_heap_free(pd_timer_heap_t *th)
{
    pd_free(th->heap);

    th->heap = NULL;
    th->n = 0;
    th->nalloc = 0;
}


/*
 * Arms t for now + msec (saturating at PD_TIMER_INFINITE).  A set timer
 * only moves, so re-arming never fails; PD_ERROR when a new timer meets
 * the bound or the slot array cannot grow.
 */
pd_int_t
pd_timer_node_add(pd_timer_heap_t *th, pd_timer_node_t *t, pd_msec_t now,
    pd_msec_t msec)
{
    pd_msec_t  key;

    key = (msec > PD_TIMER_INFINITE - now) ? PD_TIMER_INFINITE : now + msec;

    if (pd_timer_node_is_set(t)) {
        if (key < t->key) {
            t->key = key;
            pd_timer_sift_up(th, pd_timer_slot(t));

        } else {
            t->key = key;
            pd_timer_sift_down(th, pd_timer_slot(t));
        }

        return PD_OK;
    }

    if (th->n == th->nalloc && pd_timer_heap_grow(th) != PD_OK) {
        return PD_ERROR;
    }

    t->key = key;
    th->heap[th->n] = t;
    pd_timer_set_slot(t, th->n);
    th->n++;

    pd_timer_sift_up(th, th->n - 1);

    return PD_OK;
}


/* disarms t; a timer that is not set is left alone */
void
pd_timer_node_del(pd_timer_heap_t *th, pd_timer_node_t *t)
{
    pd_uint_t         i;
    pd_timer_node_t  *last;

    if (!pd_timer_node_is_set(t)) {
        return;
    }

    i = pd_timer_slot(t);
    pd_timer_set_slot(t, PD_TIMER_UNSET);

    th->n--;
    if (i == th->n) {
        return;
    }

    /* the last timer fills the hole and finds its place from there */
    last = th->heap[th->n];
    th->heap[i] = last;
    pd_timer_set_slot(last, i);

    if (i > 0 && last->key < th->heap[pd_timer_parent(i)]->key) {
        pd_timer_sift_up(th, i);

    } else {
        pd_timer_sift_down(th, i);
    }
}


/* ms until the nearest timer fires: 0 when one is due, or INFINITE */
pd_msec_t
pd_timer_find(pd_timer_heap_t *th, pd_msec_t now)
{
    pd_msec_t  key;

    if (th->n == 0) {
        return PD_TIMER_INFINITE;
    }

    key = th->heap[0]->key;

    return (key <= now) ? 0 : key - now;
}


/*
 * Runs every timer due at `now`, nearest first, each unset before its
 * handler so the handler may re-arm it or add and delete any timer.  At
 * most as many run as were set on entry: a handler re-arming itself for
 * 0 ms waits for the next call instead of spinning this one.
 */
pd_uint_t
pd_timer_expire(pd_timer_heap_t *th, pd_msec_t now)
{
    return pd_timer_expire_max(th, now, th->n);
}


pd_uint_t
pd_timer_expire_max(pd_timer_heap_t *th, pd_msec_t now, pd_uint_t max)
{
    pd_uint_t         ran, budget;
    pd_timer_t       *own;
    pd_timer_node_t  *t;

    ran = 0;
    budget = pd_min(th->n, max);

    while (ran < budget && th->n != 0 && th->heap[0]->key <= now) {
        t = th->heap[0];
        pd_timer_node_del(th, t);

        ran++;

        if (t->index & PD_TIMER_OWN) {
            own = pd_timer_own(t);
            own->handler(own);

        } else {
            th->handler(t);
        }
    }

    return ran;
}


/* doubles the slot array, never past max */
static pd_int_t
pd_timer_heap_grow(pd_timer_heap_t *th)
{
    pd_uint_t          nalloc;
    pd_timer_node_t  **heap;

    if (th->nalloc >= th->max) {
        return PD_ERROR;
    }

    nalloc = (th->nalloc == 0) ? PD_TIMER_HEAP_MIN : 2 * th->nalloc;

    if (nalloc > th->max) {
        nalloc = th->max;
    }

    if (nalloc < th->nalloc || nalloc > SIZE_MAX / sizeof(pd_timer_node_t *)) {
        return PD_ERROR;
    }

    heap = realloc(th->heap, nalloc * sizeof(pd_timer_node_t *));
    if (heap == NULL) {
        return PD_ERROR;
    }

    th->heap = heap;
    th->nalloc = nalloc;

    return PD_OK;
}


static void
pd_timer_sift_up(pd_timer_heap_t *th, pd_uint_t i)
{
    pd_uint_t         p;
    pd_timer_node_t  *t;

    t = th->heap[i];

    while (i > 0) {
        p = pd_timer_parent(i);

        if (th->heap[p]->key <= t->key) {
            break;
        }

        th->heap[i] = th->heap[p];
        pd_timer_set_slot(th->heap[i], i);
        i = p;
    }

    th->heap[i] = t;
    pd_timer_set_slot(t, i);
}


static void
pd_timer_sift_down(pd_timer_heap_t *th, pd_uint_t i)
{
    pd_uint_t         c;
    pd_timer_node_t  *t;

    t = th->heap[i];

    for ( ;; ) {
        c = 2 * i + 1;

        if (c >= th->n) {
            break;
        }

        if (c + 1 < th->n && th->heap[c + 1]->key < th->heap[c]->key) {
            c++;
        }

        if (t->key <= th->heap[c]->key) {
            break;
        }

        th->heap[i] = th->heap[c];
        pd_timer_set_slot(th->heap[i], i);
        i = c;
    }

    th->heap[i] = t;
    pd_timer_set_slot(t, i);
}


/*
 * The pd_timer_t a PD_TIMER_OWN node is the first member of, which has
 * the struct's alignment: through void *, since gcc would warn of a cast
 * from the packed node's alignment of 4.
 */
static pd_timer_t *
pd_timer_own(void *node)
{
    return node;
}
