/*
 * pd_connection.c: the per-worker connection array, plain socket I/O and
 * the listening sockets.
 */

#include "pd_core.h"

pd_uint_t  pd_connection_counter;
pd_uint_t  pd_active_connections;

static pd_cycle_t  *pd_conn_cycle;

pd_int_t
pd_connection_init_array(pd_cycle_t *cycle, pd_uint_t n)
{
    /*
     * calloc(), not pd_calloc(): arrays this large come zeroed from
     * mmap() and are not written here, so a slot's page costs memory
     * only once a connection first needs it (pd_get_connection takes
     * the free list first, then the next never-used slot); a worker
     * sized for 19,000 connections that holds 100 keeps 100 slots.
     */
    cycle->connections = calloc(n, sizeof(pd_connection_t));

    if (cycle->connections == NULL) {
        pd_log_error(PD_LOG_EMERG, cycle->log, errno,
                     "calloc() of %lu connections failed", (unsigned long) n);
        return PD_ERROR;
    }

    cycle->connection_n = n;
    cycle->connection_top = 0;
    cycle->free_connections = NULL;
    cycle->free_connection_n = n;
    pd_queue_init(&cycle->reusable_connections);

    pd_conn_cycle = cycle;

    return PD_OK;
}

/*
 * Slots are running short: idle keep-alive connections (a client that
 * made a request and has not upgraded or asked again) give theirs up,
 * the longest idle first, so they cannot hold slots that WebSocket
 * clients need.  Their handlers see c->close and close them.
 */
static void
pd_drain_connections(void)
{
    pd_connection_t  *c;
    pd_queue_t       *q;
    pd_uint_t         n;

    for (n = 0; n < 32; n++) {
        if (pd_queue_empty(&pd_conn_cycle->reusable_connections)) {
            break;
        }

        q = pd_queue_head(&pd_conn_cycle->reusable_connections);
        c = pd_queue_data(q, pd_connection_t, queue);

        if (n == 0) {
            pd_log_error(PD_LOG_WARN, c->log, 0, "%lu worker_connections "
                         "are not enough, closing idle keep-alive "
                         "connections",
                         (unsigned long) pd_conn_cycle->connection_n);
        }

        pd_queue_remove(q);
        c->reusable = 0;
        c->close = 1;
        c->read->handler(c->read);
    }
}

pd_uint_t
pd_connection_free_slots(pd_uint_t reserve)
{
    if (pd_conn_cycle->free_connection_n <= reserve
        || pd_conn_cycle->free_connection_n < pd_conn_cycle->connection_n / 16)
    {
        pd_drain_connections();
    }

    return pd_conn_cycle->free_connection_n;
}

pd_connection_t *
pd_get_connection(pd_socket_t fd, pd_log_t *log)
{
    pd_connection_t  *c;
    pd_event_t       *rev, *wev;
    pd_uint_t         instance, i;

    if (pd_conn_cycle->free_connection_n < pd_conn_cycle->connection_n / 16) {
        pd_drain_connections();
    }

    c = pd_conn_cycle->free_connections;

    if (c != NULL) {
        pd_conn_cycle->free_connections = c->data;

    } else if (pd_conn_cycle->connection_top < pd_conn_cycle->connection_n) {
        /* a slot never used */
        i = pd_conn_cycle->connection_top++;
        c = &pd_conn_cycle->connections[i];
        c->read->instance = 1;

    } else {
        pd_log_error(PD_LOG_ALERT, log, 0,
                     "%lu worker_connections are not enough",
                     (unsigned long) pd_conn_cycle->connection_n);
        return NULL;
    }

    pd_conn_cycle->free_connection_n--;

    rev = c->read;
    wev = c->write;
    instance = rev->instance;

    /* the events with it: they are in the slot */
    pd_memzero(c, sizeof(pd_connection_t));

    c->fd = fd;
    c->log = log;

    /* a stale event for the previous user of this slot will not match */
    rev->instance = !instance;
    wev->instance = !instance;
    wev->write = 1;
    rev->data = c;
    wev->data = c;
    pd_timer_node_init(&rev->timer);
    pd_timer_node_init(&wev->timer);

    return c;
}

void
pd_free_connection(pd_connection_t *c)
{
    c->data = pd_conn_cycle->free_connections;
    pd_conn_cycle->free_connections = c;
    pd_conn_cycle->free_connection_n++;
}

void
pd_close_connection(pd_connection_t *c)
{
    pd_socket_t  fd;

    if (c->fd == -1) {
        pd_log_error(PD_LOG_ALERT, pd_conn_log(c), 0,
                     "connection already closed");
        return;
    }

    pd_event_del_timer(c->read);
    pd_event_del_timer(c->write);
    pd_delete_posted_event(c->read);
    pd_delete_posted_event(c->write);

    if (c->reusable) {
        pd_queue_remove(&c->queue);
        c->reusable = 0;
    }

    if (c->shared && (c->read->active || c->write->active)) {
        /* the file description lives on in other processes (master,
         * siblings): close() alone would leave it in our epoll set */
        (void) pd_del_conn(c);
    }

    c->read->closed = 1;
    c->write->closed = 1;
    c->read->active = 0;
    c->write->active = 0;

    if (!c->shared) {
        pd_active_connections--;
        pd_stats_dec(PD_STAT_CONNECTIONS);
    }

    fd = c->fd;
    c->fd = -1;
    c->destroyed = 1;

    pd_free_connection(c);

    /* close() removes the fd from epoll: it is not shared with anyone */
    if (close(fd) == -1) {
        pd_log_error(PD_LOG_ALERT, pd_conn_log(c), errno,
                     "close() socket failed");
    }
}

void
pd_detach_connection(pd_connection_t *c)
{
    pd_socket_t  fd = c->fd;

    pd_event_del_timer(c->read);
    pd_event_del_timer(c->write);
    pd_delete_posted_event(c->read);
    pd_delete_posted_event(c->write);

    c->read->active = 0;
    c->write->active = 0;
    c->read->ready = 0;
    c->write->ready = 0;
    c->fd = -1;

    pd_active_connections--;
    pd_stats_dec(PD_STAT_CONNECTIONS);

    /* close() takes it out of epoll: it is not shared */
    if (close(fd) == -1) {
        pd_log_error(PD_LOG_ALERT, pd_conn_log(c), errno,
                     "close() socket failed");
    }
}

void
pd_attach_connection(pd_connection_t *c, pd_connection_t *from)
{
    c->fd = from->fd;
    c->tls_io = from->tls_io;
    c->ssl = from->ssl;
    c->listening = from->listening;
    c->sockaddr = from->sockaddr;

    /* a stale event of the old socket will not match */
    c->read->instance = !c->read->instance;
    c->write->instance = !c->write->instance;
    c->read->closed = 0;
    c->write->closed = 0;
    c->read->timedout = 0;
    c->write->timedout = 0;

    from->ssl = NULL;
    pd_release_connection(from, 1);
}

void
pd_release_connection(pd_connection_t *c, pd_uint_t fd_open)
{
    pd_event_del_timer(c->read);
    pd_event_del_timer(c->write);
    pd_delete_posted_event(c->read);
    pd_delete_posted_event(c->write);

    /* a closed fd left epoll by itself; an open one must be taken out */
    if (fd_open && (c->read->active || c->write->active)) {
        (void) pd_del_conn(c);
    }

    c->read->active = 0;
    c->write->active = 0;
    c->read->closed = 1;
    c->write->closed = 1;
    c->fd = -1;
    c->destroyed = 1;

    pd_free_connection(c);
}

u_char *
pd_connection_addr_text(pd_connection_t *c, u_char *buf, size_t len)
{
    return buf + pd_sock_ntop(&c->sockaddr.sockaddr, pd_conn_socklen(c),
                              buf, len, 0);
}


u_char *
pd_conn_log_handler(pd_log_t *log, u_char *buf, size_t len)
{
    pd_connection_t  *c = log->data;
    u_char           *p, *last;

    last = buf + len;
    p = pd_slprintf(buf, last, ", client: ");
    p = pd_connection_addr_text(c, p, (size_t) (last - p));

    if (c->listening != NULL) {
        p = pd_slprintf(p, last, ", server: %.*s",
                        (int) c->listening->addr_text.len,
                        c->listening->addr_text.data);
    }

    return p;
}


/*
 * What the connection's own log held, made again from the connection:
 * the shared log it points to (the cycle's: level, file) with its number
 * and context.  One scratch log per worker is enough, since a log line
 * is written before the next one is asked for.
 */
pd_log_t *
pd_conn_log_fill(pd_connection_t *c)
{
    static pd_log_t  scratch;

    scratch = *c->log;
    scratch.connection = c->number;
    scratch.handler = pd_conn_log_handler;
    scratch.data = c;
    scratch.action = NULL;

    return &scratch;
}

ssize_t
pd_unix_recv(pd_connection_t *c, u_char *buf, size_t size)
{
    ssize_t     n;
    pd_err_t    err;

    for ( ;; ) {
        n = recv(c->fd, buf, size, 0);

        if (n > 0) {
            pd_stats_add(PD_STAT_BYTES_IN, n);

            /*
             * Less than asked for: the socket is drained.  Edge-triggered
             * epoll reports the next bytes that arrive, so a caller may
             * stop here instead of paying a recv() for its EAGAIN (one
             * per client ack).  Not after EPOLLRDHUP: the end of the
             * stream is still to be read.
             */
            if ((size_t) n < size && !c->read->pending_eof) {
                c->read->ready = 0;
            }

            return n;
        }

        if (n == 0) {
            c->read->ready = 0;
            c->read->eof = 1;
            return 0;
        }

        err = errno;

        if (err == EAGAIN || err == EWOULDBLOCK) {
            c->read->ready = 0;
            return PD_AGAIN;
        }

        if (err != EINTR) {
            c->read->error = 1;
            pd_log_error(PD_LOG_INFO, pd_conn_log(c), err, "recv() failed");
            return PD_ERROR;
        }
    }
}

ssize_t
pd_unix_send(pd_connection_t *c, u_char *buf, size_t size)
{
    ssize_t     n;
    pd_err_t    err;

    for ( ;; ) {
        n = send(c->fd, buf, size, MSG_NOSIGNAL);

        if (n > 0) {
            if ((size_t) n < size) {
                c->write->ready = 0;
            }
            pd_stats_add(PD_STAT_BYTES_OUT, n);
            return n;
        }

        err = errno;

        if (n == 0) {
            pd_log_error(PD_LOG_ALERT, pd_conn_log(c), 0,
                         "send() returned zero");
            c->write->ready = 0;
            return PD_AGAIN;
        }

        if (err == EAGAIN || err == EWOULDBLOCK) {
            c->write->ready = 0;
            return PD_AGAIN;
        }

        if (err != EINTR) {
            c->write->error = 1;
            pd_log_error(PD_LOG_INFO, pd_conn_log(c), err, "send() failed");
            return PD_ERROR;
        }
    }
}

pd_chain_t *
pd_writev_chain(pd_connection_t *c, pd_chain_t *in, size_t limit)
{
    struct iovec   iov[64];
    pd_uint_t      niov;
    size_t         size;
    ssize_t        n;
    pd_err_t       err;

    if (limit == 0) {
        limit = SSIZE_MAX;
    }

    while (in != NULL && limit > 0) {
        niov = pd_chain_to_iovec(in, iov, pd_nelems(iov), limit, &size);

        if (niov == 0) {
            return pd_chain_update_sent(in, 0);
        }

        n = writev(c->fd, iov, (int) niov);

        if (n == -1) {
            err = errno;

            if (err == EAGAIN || err == EWOULDBLOCK) {
                c->write->ready = 0;
                return in;
            }

            if (err == EINTR) {
                continue;
            }

            c->write->error = 1;
            pd_log_error(PD_LOG_INFO, pd_conn_log(c), err, "writev() failed");
            return PD_CHAIN_ERROR;
        }

        pd_stats_add(PD_STAT_BYTES_OUT, n);
        limit -= (size_t) n;
        in = pd_chain_update_sent(in, (size_t) n);

        if ((size_t) n < size) {
            c->write->ready = 0;
            return in;
        }
    }

    return in;
}

pd_listening_t *
pd_create_listening(pd_cycle_t *cycle, pd_listen_conf_t *lc, pd_int_t worker)
{
    pd_listening_t  *ls;

    ls = pd_array_push(&cycle->listening);
    if (ls == NULL) {
        return NULL;
    }

    pd_memzero(ls, sizeof(pd_listening_t));

    ls->fd = -1;
    pd_memcpy(&ls->sockaddr, &lc->sockaddr, lc->socklen);
    ls->socklen = lc->socklen;
    ls->addr_text = lc->text;
    ls->backlog = 4096;
    ls->worker = worker;
    ls->ssl = lc->ssl;
    ls->handshake_timeout = 10000;

    return ls;
}

/* "cannot listen on ADDR: what failed: errno text", logged and in err */
static pd_int_t
pd_listening_error(pd_cycle_t *cycle, pd_listening_t *ls, pd_err_t e,
    const char *call, char *err, size_t len)
{
    const char  *hint;

    switch (e) {
    case EADDRINUSE:
        hint = " (another process listens on this port)";
        break;
    case EACCES:
        hint = " (a port below 1024 needs root or CAP_NET_BIND_SERVICE)";
        break;
    case EADDRNOTAVAIL:
        hint = " (no interface of this host has this address)";
        break;
    default:
        hint = "";
    }

    (void) snprintf(err, len, "cannot listen on %.*s: %s failed: %s%s",
                    (int) ls->addr_text.len, ls->addr_text.data, call,
                    strerror(e), hint);

    pd_log_error(PD_LOG_EMERG, cycle->log, 0, "%s", err);

    return PD_ERROR;
}

static in_port_t
pd_listening_port(pd_listening_t *ls)
{
    if (ls->sockaddr.ss_family == AF_INET6) {
        return ((struct sockaddr_in6 *) &ls->sockaddr)->sin6_port;
    }

    return ((struct sockaddr_in *) &ls->sockaddr)->sin_port;
}

/* does one of our sockets, open in sockets[0 .. n), hold ls's port? */
static pd_uint_t
pd_listening_held(pd_listening_t *ls, pd_listening_t *sockets, pd_uint_t n)
{
    pd_uint_t  i;

    for (i = 0; i < n; i++) {
        if (sockets[i].fd != -1
            && sockets[i].sockaddr.ss_family == ls->sockaddr.ss_family
            && pd_listening_port(&sockets[i]) == pd_listening_port(ls))
        {
            return 1;
        }
    }

    return 0;
}

/*
 * SO_REUSEPORT lets any process of our user bind a port we listen on,
 * and the kernel then splits new connections between the two: a second
 * pushd started by mistake would take a share of the clients, silently.
 * A socket without SO_REUSEPORT cannot join such a group (SO_REUSEADDR
 * only passes over connections in TIME_WAIT), so binding one first tells
 * whether anybody listens there already.  Made only for a port none of
 * our own sockets holds: on reload our old generation holds it, rightly.
 */
static pd_int_t
pd_listening_probe(pd_cycle_t *cycle, pd_listening_t *ls, char *err,
    size_t len)
{
    pd_socket_t  s;
    pd_err_t     e;
    int          on = 1;

    s = socket(ls->sockaddr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s == -1) {
        return pd_listening_error(cycle, ls, errno, "socket()", err, len);
    }

    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1
        || (ls->sockaddr.ss_family == AF_INET6
            && setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on))
               == -1))
    {
        e = errno;
        close(s);
        return pd_listening_error(cycle, ls, e, "setsockopt()", err, len);
    }

    if (bind(s, (struct sockaddr *) &ls->sockaddr, ls->socklen) == -1) {
        e = errno;
        close(s);
        return pd_listening_error(cycle, ls, e, "bind()", err, len);
    }

    close(s);
    return PD_OK;
}

static pd_int_t
pd_open_listening_socket(pd_cycle_t *cycle, pd_listening_t *ls, char *err,
    size_t len)
{
    pd_socket_t  s;
    pd_err_t     e;
    int          on = 1;

    s = socket(ls->sockaddr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s == -1) {
        return pd_listening_error(cycle, ls, errno, "socket()", err, len);
    }

    /* one socket per worker per address: the kernel spreads new
     * connections over them; no accept mutex, no thundering herd */
    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1
        || setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == -1)
    {
        e = errno;
        close(s);
        return pd_listening_error(cycle, ls, e, "setsockopt(SO_REUSEPORT)",
                                  err, len);
    }

    if (ls->sockaddr.ss_family == AF_INET6
        && setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
    {
        pd_log_error(PD_LOG_WARN, cycle->log, errno,
                     "setsockopt(IPV6_V6ONLY) for %.*s failed",
                     (int) ls->addr_text.len, ls->addr_text.data);
    }

    if (bind(s, (struct sockaddr *) &ls->sockaddr, ls->socklen) == -1) {
        e = errno;
        close(s);
        return pd_listening_error(cycle, ls, e, "bind()", err, len);
    }

    if (listen(s, ls->backlog) == -1) {
        e = errno;
        close(s);
        return pd_listening_error(cycle, ls, e, "listen()", err, len);
    }

    ls->fd = s;
    return PD_OK;
}

pd_int_t
pd_open_listening_sockets(pd_cycle_t *cycle, char *err, size_t len)
{
    pd_listening_t  *ls, *ols;
    pd_uint_t        i, j, nold;

    ls = cycle->listening.elts;
    ols = cycle->old_cycle ? cycle->old_cycle->listening.elts : NULL;
    nold = cycle->old_cycle ? cycle->old_cycle->listening.nelts : 0;

    for (i = 0; i < cycle->listening.nelts; i++) {

        for (j = 0; j < nold; j++) {
            if (ols[j].fd == -1 || ols[j].remain
                || ols[j].worker != ls[i].worker
                || pd_cmp_sockaddr((struct sockaddr *) &ols[j].sockaddr,
                                   ols[j].socklen,
                                   (struct sockaddr *) &ls[i].sockaddr,
                                   ls[i].socklen) != PD_OK)
            {
                continue;
            }

            ls[i].fd = ols[j].fd;
            ls[i].previous = &ols[j];
            ls[i].open = 1;
            ols[j].remain = 1;
            break;
        }

        if (ls[i].fd != -1) {
            continue;
        }

        /* a binary upgrade: the old master's socket, never closed */
        ls[i].fd = pd_upgrade_listening(&ls[i]);
        if (ls[i].fd != -1) {
            continue;
        }

        if (!pd_listening_held(&ls[i], ls, i)
            && !pd_listening_held(&ls[i], ols, nold)
            && pd_listening_probe(cycle, &ls[i], err, len) != PD_OK)
        {
            goto failed;
        }

        if (pd_open_listening_socket(cycle, &ls[i], err, len) != PD_OK) {
            goto failed;
        }
    }

    return PD_OK;

failed:

    for (j = 0; j < i; j++) {
        if (ls[j].open) {
            ls[j].previous->remain = 0;
        } else if (ls[j].fd != -1) {
            close(ls[j].fd);
        }
        ls[j].fd = -1;
    }

    return PD_ERROR;
}

/* in the master after a reload: closes the old sockets nobody took over */
void
pd_close_unused_listening(pd_cycle_t *cycle, pd_cycle_t *old)
{
    pd_listening_t  *ols;
    pd_uint_t        i;

    ols = old->listening.elts;

    for (i = 0; i < old->listening.nelts; i++) {
        if (ols[i].fd != -1 && !ols[i].remain) {
            pd_log_error(PD_LOG_NOTICE, cycle->log, 0,
                         "closing listener %.*s of worker slot %ld",
                         (int) ols[i].addr_text.len, ols[i].addr_text.data,
                         (long) ols[i].worker);
            close(ols[i].fd);
        }
        ols[i].fd = -1;
    }
}

/* in a worker: its siblings' sockets are theirs to accept from */
void
pd_close_other_workers_listening(pd_cycle_t *cycle, pd_int_t worker)
{
    pd_listening_t  *ls;
    pd_uint_t        i;

    ls = cycle->listening.elts;

    for (i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i].worker != worker && ls[i].fd != -1) {
            close(ls[i].fd);
            ls[i].fd = -1;
        }
    }
}

const pd_conn_io_t  pd_unix_io = {
    pd_unix_recv,
    pd_unix_send,
    pd_writev_chain
};

const pd_conn_io_t  *pd_conn_ios[2] = { &pd_unix_io, &pd_ssl_io };
