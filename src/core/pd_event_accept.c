/*
 * pd_event_accept.c: accepting connections, the TLS handshake, and the
 * worker's own listeners.
 */

#include "pd_core.h"

#define PD_CONN_POOL_SIZE   1024
#define PD_CONN_POOL_LIMIT  (1024 * 1024)

static void pd_event_init_connection(pd_connection_t *c);
static void pd_event_close_accepted(pd_connection_t *c);
static void pd_ssl_handshake_handler(pd_event_t *ev);

static void pd_disable_accept_events(pd_uint_t why);
static void pd_accept_backoff_handler(pd_timer_t *t);

/*
 * Why this worker's listeners are out of the epoll set, if they are.
 * They are level-triggered: left in while nothing can be accepted, every
 * epoll_wait() would return at once for the same queued connections and
 * the worker would spin.  Out, the connections wait in the kernel's
 * backlog of this worker's socket (SO_REUSEPORT gives each its own) until
 * a slot frees (FULL, checked once a turn) or the back-off timer fires
 * (BACKOFF: the process ran out of file descriptors or memory).
 */
#define PD_ACCEPT_ON        0
#define PD_ACCEPT_FULL      1
#define PD_ACCEPT_BACKOFF   2

#define PD_ACCEPT_BACKOFF_MSEC   500
/* "worker_connections are not enough" at most this often */
#define PD_ACCEPT_LOG_INTERVAL   60000

/*
 * Slots accept leaves free: the worker's own links take slots too (a
 * Redis or PostgreSQL reconnect, a webhook, the channel to a respawned
 * sibling), and a worker full of clients must still be able to make
 * them.
 */
#define PD_ACCEPT_RESERVE_MAX    32

/*
 * TLS handshake work a turn does before it leaves the rest for the next
 * turn.  A full handshake costs a worker about 2 ms of CPU with an
 * RSA-2048 key and 1 ms with ECDSA P-256 (OpenSSL 3.0), most of it in one
 * SSL_do_handshake() call that cannot be cut, so a burst of new TLS
 * clients (a reconnect storm, a flood) read in one turn would hold every
 * other client of the worker for a millisecond or two each.
 * Past the budget, handshakes not yet begun wait in pd_ssl_hs_waiting,
 * in their order, and pd_ssl_hs_resume_ev takes them up in the next
 * turn, after the sockets had their say; one step always runs a turn,
 * so a flood of handshakes still moves at the speed of the CPU.
 */
#define PD_SSL_HANDSHAKE_TURN_NSEC  (500 * 1000)

static void pd_ssl_hs_resume(pd_event_t *ev);

static pd_uint_t   pd_ssl_hs_turn;    /* the turn pd_ssl_hs_spent counts */
static uint64_t    pd_ssl_hs_spent;   /* ns of handshake steps in it */
/* the read events of the handshakes waiting, posted here */
static pd_queue_t  pd_ssl_hs_waiting = { &pd_ssl_hs_waiting,
                                         &pd_ssl_hs_waiting };
static pd_event_t  pd_ssl_hs_resume_ev = { .handler = pd_ssl_hs_resume };
static pd_uint_t   pd_ssl_hs_resuming;

/* whether this turn's handshake budget is spent (a new turn, a new one) */
static pd_uint_t
pd_ssl_hs_spent_up(void)
{
    if (pd_ssl_hs_turn != pd_event_turn) {
        pd_ssl_hs_turn = pd_event_turn;
        pd_ssl_hs_spent = 0;
    }

    return pd_ssl_hs_spent >= PD_SSL_HANDSHAKE_TURN_NSEC;
}

static pd_cycle_t  *pd_accept_cycle;     /* the worker's, set once */
static pd_uint_t    pd_accept_reserve;
static pd_uint_t    pd_accept_state;
static pd_msec_t    pd_accept_logged;
static pd_uint_t    pd_accept_ever_logged;
static pd_timer_t   pd_accept_backoff_timer;

/*
 * A slot, a pool and a log of its own for a client's socket s, counted:
 * what an accepted connection and one a sibling sent both need.  NULL
 * (s closed, what was made undone) on failure.
 */
static pd_connection_t *
pd_event_new_connection(pd_listening_t *ls, pd_log_t *log, pd_socket_t s,
    pd_sockaddr_t *sa, socklen_t socklen)
{
    pd_connection_t  *c;

    c = pd_get_connection(s, log);
    if (c == NULL) {
        close(s);
        return NULL;
    }

    pd_active_connections++;
    pd_stats_inc(PD_STAT_CONNECTIONS);

    c->pool = pd_create_pool(PD_CONN_POOL_SIZE, PD_CONN_POOL_LIMIT, log);
    if (c->pool == NULL) {
        pd_close_connection(c);
        return NULL;
    }

    c->log = pd_palloc(c->pool, sizeof(pd_log_t));
    if (c->log == NULL) {
        pd_event_close_accepted(c);
        return NULL;
    }

    pd_memcpy(&c->sockaddr, sa, pd_min(socklen, sizeof(pd_sockaddr_t)));
    c->listening = ls;
    c->number = ++pd_connection_counter;

    *c->log = *log;
    c->log->connection = c->number;
    c->log->handler = pd_conn_log_handler;
    c->log->data = c;
    c->log->action = NULL;
    c->pool->log = c->log;

    return c;
}

void
pd_event_accept(pd_event_t *ev)
{
    pd_connection_t  *lc, *c;
    pd_listening_t   *ls;
    pd_sockaddr_t     sa;
    socklen_t         socklen;
    pd_socket_t       s;
    pd_err_t          err;
    pd_uint_t         n;

    lc = ev->data;
    ls = lc->listening;

    if (pd_exiting || pd_accept_state != PD_ACCEPT_ON) {
        return;
    }

    /*
     * Handshakes wait for their turns: new TLS clients stay in the
     * kernel's backlog meanwhile rather than here, each with its SSL
     * object (about 10 KB) and, once begun, its handshake buffers: taken
     * in a burst, they left the heap larger and more scattered (600-1000
     * B more per idle TLS connection after 10,000 connects).  The
     * listener is level-triggered and the waiting steps keep the loop
     * turning, so it is looked at again next turn.
     */
    if (ls->ssl && !pd_queue_empty(&pd_ssl_hs_waiting)) {
        return;
    }

    /* a per-turn cap: one busy listener must not starve the others */
    for (n = 0; n < pd_accept_per_turn; n++) {

        /* no slot: leave the connection queued rather than accept and
         * drop it, and stop listening until one frees */
        if (pd_connection_free_slots(pd_accept_reserve)
            <= pd_accept_reserve)
        {
            if (!pd_accept_ever_logged
                || pd_current_msec - pd_accept_logged
                   >= PD_ACCEPT_LOG_INTERVAL)
            {
                pd_log_error(PD_LOG_WARN, lc->log, 0,
                             "%lu worker_connections are not enough, not "
                             "accepting until a connection closes (%lu "
                             "kept for the worker's own links)",
                             (unsigned long) pd_accept_cycle->connection_n,
                             (unsigned long) pd_accept_reserve);
                pd_accept_logged = pd_current_msec;
                pd_accept_ever_logged = 1;
            }

            pd_disable_accept_events(PD_ACCEPT_FULL);
            return;
        }

        socklen = sizeof(pd_sockaddr_t);
        s = accept4(lc->fd, &sa.sockaddr, &socklen,
                    SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (s == -1) {
            err = errno;

            if (err == EAGAIN || err == EWOULDBLOCK) {
                return;
            }

            if (err == ECONNABORTED || err == EINTR || err == EPROTO) {
                continue;
            }

            pd_log_error((err == EMFILE || err == ENFILE) ? PD_LOG_CRIT
                         : PD_LOG_ALERT, lc->log, err, "accept4() failed");

            if (err == EMFILE || err == ENFILE || err == ENOBUFS
                || err == ENOMEM)
            {
                /* back off instead of spinning on a full process */
                pd_disable_accept_events(PD_ACCEPT_BACKOFF);
            }

            return;
        }

        pd_stats_inc(PD_STAT_ACCEPTED);

        c = pd_event_new_connection(ls, lc->log, s, &sa, socklen);
        if (c == NULL) {
            return;
        }

        pd_log_debug(c->log, "accept on %.*s, fd:%d",
                     (int) ls->addr_text.len, ls->addr_text.data, s);

        pd_event_init_connection(c);
    }
}

static void
pd_event_close_accepted(pd_connection_t *c)
{
    pd_pool_t  *pool = c->pool;

    if (c->ssl != NULL) {
        pd_ssl_shutdown(c);
    }

    pd_close_connection(c);
    pd_destroy_pool(pool);
}

static void
pd_event_init_connection(pd_connection_t *c)
{
    pd_listening_t  *ls = c->listening;
    int              on = 1;

    (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

    if (pd_add_conn(c) != PD_OK) {
        pd_event_close_accepted(c);
        return;
    }

    if (!ls->ssl) {
        ls->handler(c);
        return;
    }

    if (pd_ssl_create_connection(ls->ssl_ctx, c) != PD_OK) {
        pd_event_close_accepted(c);
        return;
    }

    c->log->action = "SSL handshaking";
    c->read->handler = pd_ssl_handshake_handler;
    c->write->handler = pd_ssl_handshake_handler;
    pd_event_add_timer(c->read, ls->handshake_timeout);

    pd_ssl_handshake_handler(c->read);
}

static void
pd_ssl_handshake_handler(pd_event_t *ev)
{
    pd_connection_t  *c = ev->data;
    pd_int_t          rc;
    pd_uint_t         spent;
    uint64_t          start;

    if (ev->timedout) {
        pd_log_error(PD_LOG_INFO, c->log, ETIMEDOUT,
                     "client timed out in the TLS handshake");
        pd_event_close_accepted(c);
        return;
    }

    if (c->close) {
        /* the exiting worker's sweep (worker_shutdown_timeout): a client
         * still in its handshake would hold the worker until its own
         * handshake timeout */
        pd_event_close_accepted(c);
        return;
    }

    /*
     * Behind the ones already waiting, or they could wait for ever.  Only
     * a handshake that has not begun waits (its ClientHello is the costly
     * step); the later steps of one under way are cheap, and finishing
     * them frees its buffers.
     */
    spent = pd_ssl_hs_spent_up();

    if (!pd_ssl_hs_resuming && pd_ssl_handshake_fresh(c)
        && (spent || !pd_queue_empty(&pd_ssl_hs_waiting)))
    {
        if (!c->read->posted) {
            pd_post_event(c->read, &pd_ssl_hs_waiting);
            pd_stats_inc(PD_STAT_TLS_DEFERRED);
        }

        pd_post_event(&pd_ssl_hs_resume_ev, &pd_posted_next_events);
        return;
    }

    start = pd_monotonic_nsec();
    rc = pd_ssl_handshake(c);
    pd_ssl_hs_spent += pd_monotonic_nsec() - start;

    if (rc == PD_AGAIN) {
        return;
    }

    if (rc != PD_OK) {
        pd_event_close_accepted(c);
        return;
    }

    pd_event_del_timer(c->read);
    c->log->action = NULL;
    c->listening->handler(c);
}

/* the handshake steps left waiting by the budget, in order, while it lasts */
static void
pd_ssl_hs_resume(pd_event_t *ev)
{
    pd_queue_t  *q;
    pd_event_t  *rev;

    while (!pd_queue_empty(&pd_ssl_hs_waiting)) {
        if (pd_ssl_hs_spent_up()) {
            pd_post_event(ev, &pd_posted_next_events);
            return;
        }

        q = pd_queue_head(&pd_ssl_hs_waiting);
        rev = pd_queue_data(q, pd_event_t, queue);
        pd_delete_posted_event(rev);

        pd_ssl_hs_resuming = 1;
        rev->handler(rev);
        pd_ssl_hs_resuming = 0;
    }
}


pd_int_t
pd_enable_accept_events(pd_cycle_t *cycle)
{
    pd_listening_t   *ls;
    pd_connection_t  *c;
    pd_uint_t         i;

    pd_accept_cycle = cycle;
    pd_accept_reserve = pd_min(PD_ACCEPT_RESERVE_MAX,
                               cycle->connection_n / 8);
    ls = cycle->listening.elts;

    for (i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i].fd == -1 || ls[i].worker != pd_worker) {
            continue;
        }

        c = pd_get_connection(ls[i].fd, cycle->log);
        if (c == NULL) {
            return PD_ERROR;
        }

        c->shared = 1;
        c->listening = &ls[i];
        c->log = cycle->log;
        ls[i].connection = c;

        c->read->accept = 1;
        c->read->handler = pd_event_accept;

        if (pd_add_read_event(c->read) != PD_OK) {
            return PD_ERROR;
        }
    }

    return PD_OK;
}

static void
pd_disable_accept_events(pd_uint_t why)
{
    pd_listening_t  *ls;
    pd_uint_t        i;

    ls = pd_accept_cycle->listening.elts;

    for (i = 0; i < pd_accept_cycle->listening.nelts; i++) {
        if (ls[i].connection == NULL || !ls[i].connection->read->active) {
            continue;
        }

        pd_delete_posted_event(ls[i].connection->read);
        (void) pd_del_read_event(ls[i].connection->read);
    }

    pd_accept_state = why;

    if (why == PD_ACCEPT_BACKOFF) {
        pd_timer_init(&pd_accept_backoff_timer, pd_accept_backoff_handler);
        (void) pd_timer_add(&pd_timers, &pd_accept_backoff_timer,
                            pd_current_msec, PD_ACCEPT_BACKOFF_MSEC);
    }
}

static void
pd_enable_accept_again(void)
{
    pd_listening_t  *ls;
    pd_uint_t        i;

    pd_accept_state = PD_ACCEPT_ON;

    if (pd_exiting) {
        return;
    }

    ls = pd_accept_cycle->listening.elts;

    for (i = 0; i < pd_accept_cycle->listening.nelts; i++) {
        if (ls[i].connection == NULL || ls[i].connection->read->active) {
            continue;
        }

        (void) pd_add_read_event(ls[i].connection->read);
    }
}

static void
pd_accept_backoff_handler(pd_timer_t *t)
{
    (void) t;

    if (pd_accept_state == PD_ACCEPT_BACKOFF) {
        pd_enable_accept_again();
    }
}

void
pd_accept_resume(pd_cycle_t *cycle)
{
    /* one slot over the reserve is enough: the next accept takes it,
     * the one after finds none and takes the listeners out again, an
     * epoll_ctl() pair per connection that leaves, not a spin */
    if (pd_accept_state == PD_ACCEPT_FULL
        && cycle->free_connection_n > pd_accept_reserve)
    {
        pd_enable_accept_again();
    }
}

/* a retiring worker stops accepting; the sockets stay open in the
 * master and in the next generation, so nothing queued is lost */
void
pd_close_listening_sockets(pd_cycle_t *cycle)
{
    pd_listening_t   *ls;
    pd_uint_t         i;

    ls = cycle->listening.elts;

    for (i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i].connection != NULL) {
            pd_close_connection(ls[i].connection);
            ls[i].connection = NULL;
        } else if (ls[i].fd != -1) {
            close(ls[i].fd);
        }
        ls[i].fd = -1;
    }
}

/*
 * A connection another worker accepted and sent here with its
 * descriptor (a resumed session lives here): set up as if this worker
 * had accepted it on ls, in the loop, counted; the caller starts its
 * protocol.  NULL (fd closed, logged) on failure.
 */
pd_connection_t *
pd_event_adopt(pd_listening_t *ls, pd_socket_t fd)
{
    pd_connection_t  *c;
    pd_log_t         *log = ls->connection->log;
    pd_sockaddr_t     sa;
    socklen_t         socklen = sizeof(sa);

    if (getpeername(fd, &sa.sockaddr, &socklen) == -1) {
        pd_log_error(PD_LOG_INFO, log, errno, "getpeername() failed");
        (void) close(fd);
        return NULL;
    }

    c = pd_event_new_connection(ls, log, fd, &sa, socklen);
    if (c == NULL) {
        return NULL;
    }

    if (pd_add_conn(c) != PD_OK) {
        pd_event_close_accepted(c);
        return NULL;
    }

    return c;
}

/* 2: ls listens on exactly sa's address, 1: on its port at a wildcard
 * address, 0: not on sa */
static pd_uint_t
pd_event_listener_match(pd_listening_t *ls, struct sockaddr *sa)
{
    struct sockaddr_in   *l4, *s4;
    struct sockaddr_in6  *l6, *s6;

    if (ls->sockaddr.ss_family != sa->sa_family) {
        return 0;
    }

    if (sa->sa_family == AF_INET) {
        l4 = (struct sockaddr_in *) &ls->sockaddr;
        s4 = (struct sockaddr_in *) sa;

        if (l4->sin_port != s4->sin_port) {
            return 0;
        }

        return l4->sin_addr.s_addr == s4->sin_addr.s_addr ? 2
               : l4->sin_addr.s_addr == htonl(INADDR_ANY);
    }

    if (sa->sa_family == AF_INET6) {
        l6 = (struct sockaddr_in6 *) &ls->sockaddr;
        s6 = (struct sockaddr_in6 *) sa;

        if (l6->sin6_port != s6->sin6_port) {
            return 0;
        }

        return IN6_ARE_ADDR_EQUAL(&l6->sin6_addr, &s6->sin6_addr) ? 2
               : IN6_IS_ADDR_UNSPECIFIED(&l6->sin6_addr);
    }

    return 0;
}

pd_listening_t *
pd_event_listener_of(pd_cycle_t *cycle, pd_socket_t fd)
{
    pd_listening_t           *ls, *found;
    struct sockaddr_storage   local;
    socklen_t                 len = sizeof(local);
    pd_uint_t                 i, m, best;

    if (getsockname(fd, (struct sockaddr *) &local, &len) == -1) {
        return NULL;
    }

    ls = cycle->listening.elts;
    found = NULL;
    best = 0;

    for (i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i].connection == NULL) {
            continue;
        }

        m = pd_event_listener_match(&ls[i], (struct sockaddr *) &local);

        if (m > best) {
            best = m;
            found = &ls[i];
        }
    }

    return found;
}
