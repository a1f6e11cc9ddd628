/*
 * pd_event.c: the worker's epoll loop.  Client sockets are registered
 * once, edge-triggered, for both directions: a write that fills the socket
 * then costs no epoll_ctl() to wait for room, only the next edge.
 * Listeners and channels are level-triggered so the per-turn accept cap
 * can leave work pending without losing the wakeup.
 */

#include "pd_core.h"

#define PD_EPOLL_EVENTS  512

pd_queue_t        pd_posted_accept_events;
pd_queue_t        pd_posted_events;
pd_queue_t        pd_posted_next_events;
pd_queue_t        pd_posted_last_events;
pd_queue_t        pd_posted_answers;
pd_uint_t         pd_event_turn;
pd_timer_heap_t   pd_timers;
/*
 * Connections accepted per listener and turn.  Each costs its first read
 * and, for a WebSocket, the whole handshake (token, register, stored
 * messages), so a storm of short-lived connections (the abuse bench)
 * made the accept step the longest part of a turn with 64; with 16 the
 * clients already connected are served between smaller slices.  The
 * rest wait one turn: the listeners are level-triggered.
 */
pd_uint_t         pd_accept_per_turn = 16;

static int                  pd_ep = -1;
static struct epoll_event  *pd_event_list;
static pd_uint_t            pd_nevents;

static void pd_event_timer_handler(pd_timer_node_t *t);

pd_int_t
pd_event_init(pd_cycle_t *cycle)
{
    pd_queue_init(&pd_posted_accept_events);
    pd_queue_init(&pd_posted_events);
    pd_queue_init(&pd_posted_next_events);
    pd_queue_init(&pd_posted_last_events);
    pd_queue_init(&pd_posted_answers);

    /* every connection holds at most two timers (read and write) */
    if (pd_timer_heap_init(&pd_timers, 64, 2 * cycle->connection_n + 64,
                           pd_event_timer_handler)
        != PD_OK)
    {
        pd_log_error(PD_LOG_EMERG, cycle->log, 0, "timer heap failed");
        return PD_ERROR;
    }

    pd_ep = epoll_create1(EPOLL_CLOEXEC);
    if (pd_ep == -1) {
        pd_log_error(PD_LOG_EMERG, cycle->log, errno,
                     "epoll_create1() failed");
        return PD_ERROR;
    }

    pd_nevents = PD_EPOLL_EVENTS;
    pd_event_list = pd_alloc(sizeof(struct epoll_event) * pd_nevents,
                             cycle->log);
    if (pd_event_list == NULL) {
        return PD_ERROR;
    }

    return PD_OK;
}

void
pd_event_done(pd_cycle_t *cycle)
{
    (void) cycle;

    if (pd_ep != -1) {
        close(pd_ep);
        pd_ep = -1;
    }

    pd_free(pd_event_list);
    pd_event_list = NULL;
    pd_timer_heap_free(&pd_timers);
}

static void *
pd_event_tag(pd_connection_t *c)
{
    /* the instance bit rides in the low bit of the pointer */
    return (void *) ((uintptr_t) c | c->read->instance);
}

pd_int_t
pd_add_conn(pd_connection_t *c)
{
    struct epoll_event  ee;

    ee.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
    ee.data.ptr = pd_event_tag(c);

    if (epoll_ctl(pd_ep, EPOLL_CTL_ADD, c->fd, &ee) == -1) {
        pd_log_error(PD_LOG_ALERT, pd_conn_log(c), errno,
                     "epoll_ctl(ADD, %d) failed", c->fd);
        return PD_ERROR;
    }

    c->read->active = 1;
    c->write->active = 1;

    return PD_OK;
}

pd_int_t
pd_del_conn(pd_connection_t *c)
{
    struct epoll_event  ee;

    c->read->active = 0;
    c->write->active = 0;

    ee.events = 0;
    ee.data.ptr = NULL;

    if (epoll_ctl(pd_ep, EPOLL_CTL_DEL, c->fd, &ee) == -1) {
        pd_log_error(PD_LOG_ALERT, pd_conn_log(c), errno,
                     "epoll_ctl(DEL, %d) failed", c->fd);
        return PD_ERROR;
    }

    return PD_OK;
}

pd_int_t
pd_add_read_event(pd_event_t *ev)
{
    pd_connection_t     *c = ev->data;
    struct epoll_event   ee;

    ee.events = EPOLLIN;
    ee.data.ptr = pd_event_tag(c);

    if (epoll_ctl(pd_ep, EPOLL_CTL_ADD, c->fd, &ee) == -1) {
        pd_log_error(PD_LOG_ALERT, pd_conn_log(c), errno,
                     "epoll_ctl(ADD, %d) failed", c->fd);
        return PD_ERROR;
    }

    ev->active = 1;
    return PD_OK;
}

pd_int_t
pd_del_read_event(pd_event_t *ev)
{
    pd_connection_t *c = ev->data;

    if (!ev->active) {
        return PD_OK;
    }

    return pd_del_conn(c);
}

void
pd_post_event(pd_event_t *ev, pd_queue_t *q)
{
    if (ev->posted) {
        return;
    }

    ev->posted = 1;
    pd_queue_insert_tail(q, &ev->queue);
}

void
pd_delete_posted_event(pd_event_t *ev)
{
    if (!ev->posted) {
        return;
    }

    ev->posted = 0;
    pd_queue_remove(&ev->queue);
}

void
pd_event_process_posted(pd_cycle_t *cycle, pd_queue_t *posted)
{
    pd_queue_t  *q;
    pd_event_t  *ev;

    (void) cycle;

    while (!pd_queue_empty(posted)) {
        q = pd_queue_head(posted);
        ev = pd_queue_data(q, pd_event_t, queue);

        pd_delete_posted_event(ev);
        ev->handler(ev);
    }
}

static void
pd_event_timer_handler(pd_timer_node_t *t)
{
    pd_event_t  *ev = pd_timer_owner(t, pd_event_t, timer);

    ev->timedout = 1;
    ev->handler(ev);
}

void
pd_event_add_timer(pd_event_t *ev, pd_msec_t msec)
{
    if (pd_timer_node_add(&pd_timers, &ev->timer, pd_current_msec, msec)
        != PD_OK)
    {
        /* the heap is bounded by 2 per connection: this cannot happen
         * unless memory is gone; the owner's idle checks still apply */
        pd_log_error(PD_LOG_ALERT, pd_log_root, 0, "pd_timer_add() failed");
    }
}

void
pd_event_del_timer(pd_event_t *ev)
{
    if (pd_timer_node_is_set(&ev->timer)) {
        pd_timer_node_del(&pd_timers, &ev->timer);
    }
}

/* what the master and the siblings send here (pd_add_channel_event) */
static pd_uint_t
pd_event_is_channel(struct epoll_event *ee)
{
    pd_connection_t  *c;

    c = (pd_connection_t *) ((uintptr_t) ee->data.ptr & ~(uintptr_t) 1);

    return c->fd != -1 && c->channel;
}

static void
pd_event_dispatch(struct epoll_event *ee)
{
    pd_connection_t  *c;
    pd_event_t       *rev, *wev;
    uint32_t          revents;
    pd_uint_t         instance;

    instance = (uintptr_t) ee->data.ptr & 1;
    c = (pd_connection_t *) ((uintptr_t) ee->data.ptr & ~(uintptr_t) 1);

    rev = c->read;

    if (c->fd == -1 || rev->instance != instance) {
        /* closed, or closed and reused, earlier in this batch */
        return;
    }

    revents = ee->events;

    if (revents & (EPOLLERR | EPOLLHUP)) {
        /* let the handlers find the error through recv()/send() */
        revents |= EPOLLIN | EPOLLOUT;
    }

    if ((revents & EPOLLIN) && rev->active) {
        rev->ready = 1;

        if (revents & EPOLLRDHUP) {
            rev->pending_eof = 1;
        }

        if (rev->accept) {
            pd_post_event(rev, &pd_posted_accept_events);
        } else {
            rev->handler(rev);
        }
    }

    wev = c->write;

    if ((revents & EPOLLOUT) && wev->active) {
        if (c->fd == -1 || wev->instance != instance) {
            return;
        }

        wev->ready = 1;
        wev->handler(wev);
    }
}

void
pd_process_events_and_timers(pd_cycle_t *cycle)
{
    pd_queue_t  now;
    pd_msec_t   timer;
    int         n, i, timeout;
    pd_err_t    err;

    pd_accept_resume(cycle);

    if (!pd_queue_empty(&pd_posted_events)
        || !pd_queue_empty(&pd_posted_next_events)
        || !pd_queue_empty(&pd_posted_last_events)
        || !pd_queue_empty(&pd_posted_answers)
        || !pd_queue_empty(&pd_posted_accept_events))
    {
        timeout = 0;

    } else {
        timer = pd_timer_find(&pd_timers, pd_current_msec);
        timeout = (timer == PD_TIMER_INFINITE) ? -1
                  : (int) pd_min(timer, (pd_msec_t) INT_MAX);
    }

    pd_event_turn++;

    n = epoll_wait(pd_ep, pd_event_list, (int) pd_nevents, timeout);
    err = (n == -1) ? errno : 0;

    pd_time_update();

    if (err) {
        if (err != EINTR) {
            pd_log_error(PD_LOG_ALERT, cycle->log, err,
                         "epoll_wait() failed");
        }

    } else {
        /*
         * The siblings' channel first: a push another worker routed here
         * and then answered must be queued for its client before a push
         * that the answered client sent next, read here in this turn on
         * a kept-alive connection, is (README, "Center API").
         */
        for (i = 0; i < n; i++) {
            if (pd_event_is_channel(&pd_event_list[i])) {
                pd_event_dispatch(&pd_event_list[i]);
                pd_event_list[i].events = 0;
            }
        }

        for (i = 0; i < n; i++) {
            if (pd_event_list[i].events) {
                pd_event_dispatch(&pd_event_list[i]);
            }
        }
    }

    pd_event_process_posted(cycle, &pd_posted_accept_events);

    /* what waited for this turn, after the sockets had their say; what
     * it posts again waits for the next one */
    if (!pd_queue_empty(&pd_posted_next_events)) {
        now.next = pd_posted_next_events.next;
        now.prev = pd_posted_next_events.prev;
        now.next->prev = &now;
        now.prev->next = &now;
        pd_queue_init(&pd_posted_next_events);

        pd_event_process_posted(cycle, &now);
    }

    /*
     * At most PD_EVENT_TIMERS_TURN timers a turn: timers set together
     * expire together (a few thousand slowloris connections opened in one
     * burst time out in one), and closing them all in one turn would hold
     * every other client of the worker for milliseconds.  The rest stay
     * due, so the next epoll_wait() does not sleep; sockets that became
     * ready meanwhile are served between the slices.
     */
    pd_timer_expire_max(&pd_timers, pd_current_msec, PD_EVENT_TIMERS_TURN);

    /*
     * Posted writes last: everything queued this turn goes in one
     * writev().  The last events after all the others, pipelined
     * requests served from the posted events included, and again while
     * they post more: the broadcasts and pushes of a whole turn are
     * queued on a connection before its frames leave.
     */
    do {
        pd_event_process_posted(cycle, &pd_posted_events);
        pd_event_process_posted(cycle, &pd_posted_last_events);
    } while (!pd_queue_empty(&pd_posted_events));
}
