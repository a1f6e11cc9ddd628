/*
 * pd_timer.h: timers on a binary min-heap; each timer remembers its heap
 * slot so insert and delete are O(log n) and the nearest is O(1).  Timers
 * live inside their owners (events, connections, modules): the heap only
 * holds pointers, and grows by doubling up to a bound.
 */

#ifndef PD_TIMER_H
#define PD_TIMER_H

typedef struct pd_timer_node_s  pd_timer_node_t;

typedef void (*pd_timer_handler_pt)(pd_timer_t *t);
typedef void (*pd_timer_node_handler_pt)(pd_timer_node_t *n);

/*
 * What the heap orders: an event's whole timer.  No handler and no data
 * pointer: the heap runs one handler for all of its bare nodes (the
 * event module's, which finds the event around the node), so an event
 * is 48 bytes, not 64, and a connection slot with its two is 32 bytes
 * smaller.  Packed to 12 bytes (4-aligned) so that the event's flags
 * fill what would be the node's padding.
 */
struct pd_timer_node_s {
    pd_msec_t              key;      /* absolute expiry, ms (monotonic) */
    uint32_t               index;    /* heap slot, or PD_TIMER_UNSET; and
                                      * PD_TIMER_OWN */
} __attribute__((packed, aligned(4)));

/*
 * A timer with its own handler (a module's, a link's), which finds its
 * owner with pd_timer_owner().  The few there are per worker cost 24
 * bytes each; every connection's two are bare nodes.
 */
struct pd_timer_s {
    pd_timer_node_t        node;
    pd_timer_handler_pt    handler;
};

#define PD_TIMER_OWN        0x80000000U  /* index bit: the node is a
                                          * pd_timer_t, its own handler */
#define PD_TIMER_SLOT       0x7fffffffU
#define PD_TIMER_UNSET      PD_TIMER_SLOT
#define PD_TIMER_INFINITE   ((pd_msec_t) -1)

typedef struct {
    pd_timer_node_t          **heap;
    pd_uint_t                  n;
    pd_uint_t                  nalloc;
    pd_uint_t                  max;     /* bound on timers, 0 = none;
                                         * at most PD_TIMER_SLOT - 1 */
    pd_timer_node_handler_pt   handler; /* of the bare nodes */
} pd_timer_heap_t;

#define pd_timer_slot(n)         ((n)->index & PD_TIMER_SLOT)
#define pd_timer_node_is_set(n)  (pd_timer_slot(n) != PD_TIMER_UNSET)
#define pd_timer_node_init(n)    (n)->index = PD_TIMER_UNSET
#define pd_timer_is_set(t)       pd_timer_node_is_set(&(t)->node)
#define pd_timer_init(t, h)                                                  \
    (t)->node.index = PD_TIMER_UNSET | PD_TIMER_OWN; (t)->handler = h
/* the struct of type whose member the timer t is */
#define pd_timer_owner(t, type, member)                                      \
    ((type *) ((u_char *) (t) - offsetof(type, member)))

/* handler: what runs a bare node that is due (NULL: no bare nodes) */
pd_int_t pd_timer_heap_init(pd_timer_heap_t *th, pd_uint_t n, pd_uint_t max,
    pd_timer_node_handler_pt handler);
void pd_timer_heap_free(pd_timer_heap_t *th);
/*
 * (Re)arms t to fire at now + msec; moves it if already set.  PD_ERROR
 * only when the heap is at its bound or cannot grow.
 */
pd_int_t pd_timer_node_add(pd_timer_heap_t *th, pd_timer_node_t *n,
    pd_msec_t now, pd_msec_t msec);
void pd_timer_node_del(pd_timer_heap_t *th, pd_timer_node_t *n);
#define pd_timer_add(th, t, now, msec)                                       \
    pd_timer_node_add(th, &(t)->node, now, msec)
#define pd_timer_del(th, t)  pd_timer_node_del(th, &(t)->node)
/* ms until the nearest timer, PD_TIMER_INFINITE when there is none */
pd_msec_t pd_timer_find(pd_timer_heap_t *th, pd_msec_t now);
/* runs (and unsets) every timer with key <= now; returns how many ran */
pd_uint_t pd_timer_expire(pd_timer_heap_t *th, pd_msec_t now);
/* the same, at most max of them, nearest first: the rest stay due, and
 * pd_timer_find() says 0 for them */
pd_uint_t pd_timer_expire_max(pd_timer_heap_t *th, pd_msec_t now,
    pd_uint_t max);

#endif /* PD_TIMER_H */
