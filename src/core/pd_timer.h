/*
 * pd_timer.h: timers on a binary min-heap; each timer remembers its heap
 * slot so insert and delete are O(log n) and the nearest is O(1).  Timers
 * live inside their owners (events, connections, modules): the heap only
 * holds pointers, and grows by doubling up to a bound.
 */

#ifndef PD_TIMER_H
#define PD_TIMER_H

typedef void (*pd_timer_handler_pt)(pd_timer_t *t);

/*
 * No data pointer: a timer lives inside its owner, which its handler
 * finds with pd_timer_owner().  Every event has one (two per
 * connection), so 8 bytes here are 16 of every idle connection.
 */
struct pd_timer_s {
    pd_msec_t              key;      /* absolute expiry, ms (monotonic) */
    pd_uint_t              index;    /* heap slot; PD_TIMER_UNSET when off */
    pd_timer_handler_pt    handler;
};

#define PD_TIMER_UNSET      ((pd_uint_t) -1)
#define PD_TIMER_INFINITE   ((pd_msec_t) -1)

typedef struct {
    pd_timer_t   **heap;
    pd_uint_t      n;
    pd_uint_t      nalloc;
    pd_uint_t      max;     /* bound on timers, 0 = none */
} pd_timer_heap_t;

#define pd_timer_is_set(t)  ((t)->index != PD_TIMER_UNSET)
#define pd_timer_init(t, h)                                                  \
    (t)->index = PD_TIMER_UNSET; (t)->handler = h
/* the struct of type whose member the timer t is */
#define pd_timer_owner(t, type, member)                                      \
    ((type *) ((u_char *) (t) - offsetof(type, member)))

pd_int_t pd_timer_heap_init(pd_timer_heap_t *th, pd_uint_t n, pd_uint_t max);
void pd_timer_heap_free(pd_timer_heap_t *th);
/*
 * (Re)arms t to fire at now + msec; moves it if already set.  PD_ERROR
 * only when the heap is at its bound or cannot grow.
 */
pd_int_t pd_timer_add(pd_timer_heap_t *th, pd_timer_t *t, pd_msec_t now,
    pd_msec_t msec);
void pd_timer_del(pd_timer_heap_t *th, pd_timer_t *t);
/* ms until the nearest timer, PD_TIMER_INFINITE when there is none */
pd_msec_t pd_timer_find(pd_timer_heap_t *th, pd_msec_t now);
/* runs (and unsets) every timer with key <= now; returns how many ran */
pd_uint_t pd_timer_expire(pd_timer_heap_t *th, pd_msec_t now);
/* the same, at most max of them, nearest first: the rest stay due, and
 * pd_timer_find() says 0 for them */
pd_uint_t pd_timer_expire_max(pd_timer_heap_t *th, pd_msec_t now,
    pd_uint_t max);

#endif /* PD_TIMER_H */
