/*
 * pd_queue.h: intrusive doubly linked circular list (no allocation).
 */

#ifndef PD_QUEUE_H
#define PD_QUEUE_H

typedef struct pd_queue_s  pd_queue_t;

struct pd_queue_s {
    pd_queue_t  *prev;
    pd_queue_t  *next;
};

#define pd_queue_init(q)      (q)->prev = q; (q)->next = q
#define pd_queue_empty(h)     (h == (h)->prev)
#define pd_queue_head(h)      (h)->next
#define pd_queue_last(h)      (h)->prev
#define pd_queue_sentinel(h)  (h)
#define pd_queue_next(q)      (q)->next

#define pd_queue_insert_head(h, x)                                           \
    (x)->next = (h)->next; (x)->next->prev = x;                              \
    (x)->prev = h; (h)->next = x

#define pd_queue_insert_tail(h, x)                                           \
    (x)->prev = (h)->prev; (x)->prev->next = x;                              \
    (x)->next = h; (h)->prev = x

#define pd_queue_remove(x)                                                   \
    (x)->next->prev = (x)->prev; (x)->prev->next = (x)->next;                \
    (x)->prev = NULL; (x)->next = NULL

#define pd_queue_data(q, type, link)                                         \
    (type *) ((u_char *) q - offsetof(type, link))

#endif /* PD_QUEUE_H */
