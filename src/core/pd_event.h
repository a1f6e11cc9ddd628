/*
 * pd_event.h: the worker's edge-triggered epoll loop, posted events and
 * the timer heap.
 */

#ifndef PD_EVENT_H
#define PD_EVENT_H

struct pd_event_s {
    void                *data;        /* the connection */
    pd_event_handler_pt  handler;
    pd_queue_t           queue;       /* posted link */
    pd_timer_node_t      timer;       /* pd_event_timer_handler runs it */

    unsigned             write:1;
    unsigned             accept:1;
    unsigned             instance:1;  /* flips on reuse; stale-event guard */
    unsigned             active:1;    /* registered with epoll */
    unsigned             ready:1;
    unsigned             eof:1;
    unsigned             error:1;
    unsigned             timedout:1;
    unsigned             posted:1;
    unsigned             closed:1;
    unsigned             pending_eof:1;
};

/* two of these are in every connection slot, written at its first use:
 * the timer's node without a handler and the flags in what would be its
 * padding make 48 bytes */
_Static_assert(sizeof(pd_event_t) == 48, "an event is 48 bytes");

extern pd_queue_t       pd_posted_accept_events;
extern pd_queue_t       pd_posted_events;
/*
 * Work that must not run in the turn that posted it: the next request of
 * a pipelined connection.  Run from this queue, a busy API client would
 * keep one turn going without end, and no other socket (a sibling's
 * channel, clients' acks) would be read meanwhile.
 */
extern pd_queue_t       pd_posted_next_events;
/*
 * Run after every other posted event of the turn: the room's flush of
 * the connections written to, so that everything a turn queues on a
 * connection (the broadcasts of pipelined requests among them) leaves
 * in one writev().
 */
extern pd_queue_t       pd_posted_last_events;
/*
 * Answers that must not leave before what this turn handed to siblings:
 * an HTTP response written while a push sits corked for a sibling's
 * channel lets the client send the next push, through another worker,
 * ahead of it.  The worker loop runs them after pd_channel_uncork().
 */
extern pd_queue_t       pd_posted_answers;
extern pd_uint_t        pd_event_turn;     /* counts loop turns */

/* timers run per turn, at most (pd_process_events_and_timers) */
#define PD_EVENT_TIMERS_TURN  128

extern pd_timer_heap_t  pd_timers;
extern pd_uint_t        pd_accept_per_turn;

pd_int_t pd_event_init(pd_cycle_t *cycle);
void pd_event_done(pd_cycle_t *cycle);
/* one loop turn: wait (bounded by the nearest timer), dispatch, expire */
void pd_process_events_and_timers(pd_cycle_t *cycle);

/* registers fd for EPOLLIN|EPOLLOUT|EPOLLRDHUP, edge-triggered, once */
pd_int_t pd_add_conn(pd_connection_t *c);
pd_int_t pd_del_conn(pd_connection_t *c);
/* level-triggered read interest (listeners, channels) */
pd_int_t pd_add_read_event(pd_event_t *ev);
pd_int_t pd_del_read_event(pd_event_t *ev);

void pd_post_event(pd_event_t *ev, pd_queue_t *q);
void pd_delete_posted_event(pd_event_t *ev);
void pd_event_process_posted(pd_cycle_t *cycle, pd_queue_t *posted);

void pd_event_add_timer(pd_event_t *ev, pd_msec_t msec);
void pd_event_del_timer(pd_event_t *ev);

/* the accept handler of every listening socket */
void pd_event_accept(pd_event_t *ev);
/* a connection accepted by a sibling, sent here: see pd_event_accept.c */
pd_connection_t *pd_event_adopt(pd_listening_t *ls, pd_socket_t fd);
/* the listener of this worker a client's socket fd came in on (its port,
 * its address or the wildcard one), NULL: none, or no longer listening */
pd_listening_t *pd_event_listener_of(pd_cycle_t *cycle, pd_socket_t fd);
/* enables/disables accepting on this worker's listeners (retirement) */
pd_int_t pd_enable_accept_events(pd_cycle_t *cycle);
/*
 * Once a turn: listeners taken out of the epoll set because every slot
 * was taken go back in when one is free (pd_event_accept.c).
 */
void pd_accept_resume(pd_cycle_t *cycle);
void pd_close_listening_sockets(pd_cycle_t *cycle);

#endif /* PD_EVENT_H */
