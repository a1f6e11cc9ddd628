/*
 * pd_event_accept.c: accepting connections, the TLS handshake, and the
 * worker's own listeners.
 */

#include "pd_core.h"

#define PD_CONN_POOL_SIZE   1024
#define PD_CONN_POOL_LIMIT  (1024 * 1024)

static void pd_event_init_connection(pd_connection_t *c);
static void pd_ssl_handshake_handler(pd_event_t *ev);
static u_char *pd_accept_log_handler(pd_log_t *log, u_char *buf, size_t len);

static pd_msec_t  pd_accept_disabled_until;

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

    if (pd_exiting || pd_current_msec < pd_accept_disabled_until) {
        return;
    }

    /* a per-turn cap: one busy listener must not starve the others */
    for (n = 0; n < pd_accept_per_turn; n++) {
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
                pd_accept_disabled_until = pd_current_msec + 500;
            }

            return;
        }

        pd_stats_inc(PD_STAT_ACCEPTED);

        c = pd_get_connection(s, lc->log);
        if (c == NULL) {
            close(s);
            /* the array is full: leave the rest in the backlog a while */
            pd_accept_disabled_until = pd_current_msec + 100;
            return;
        }

        pd_active_connections++;
        pd_stats_inc(PD_STAT_CONNECTIONS);

        c->pool = pd_create_pool(PD_CONN_POOL_SIZE, PD_CONN_POOL_LIMIT,
                                 lc->log);
        if (c->pool == NULL) {
            pd_close_connection(c);
            return;
        }

        c->log = pd_palloc(c->pool, sizeof(pd_log_t));
        if (c->log == NULL) {
            pd_close_connection(c);
            pd_destroy_pool(c->pool);
            return;
        }

        pd_memcpy(&c->sockaddr, &sa, socklen);
        c->socklen = socklen;
        c->listening = ls;
        c->number = ++pd_connection_counter;

        *c->log = *lc->log;
        c->log->connection = c->number;
        c->log->handler = pd_accept_log_handler;
        c->log->data = c;
        c->log->action = NULL;
        c->pool->log = c->log;

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

    if (ev->timedout) {
        pd_log_error(PD_LOG_INFO, c->log, ETIMEDOUT,
                     "client timed out in the TLS handshake");
        pd_event_close_accepted(c);
        return;
    }

    rc = pd_ssl_handshake(c);

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

static u_char *
pd_accept_log_handler(pd_log_t *log, u_char *buf, size_t len)
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

pd_int_t
pd_enable_accept_events(pd_cycle_t *cycle)
{
    pd_listening_t   *ls;
    pd_connection_t  *c;
    pd_uint_t         i;

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

    c = pd_get_connection(fd, log);
    if (c == NULL) {
        (void) close(fd);
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

    pd_memcpy(&c->sockaddr, &sa, socklen);
    c->socklen = socklen;
    c->listening = ls;
    c->number = ++pd_connection_counter;

    *c->log = *log;
    c->log->connection = c->number;
    c->log->handler = pd_accept_log_handler;
    c->log->data = c;
    c->log->action = NULL;
    c->pool->log = c->log;

    if (pd_add_conn(c) != PD_OK) {
        pd_event_close_accepted(c);
        return NULL;
    }

    return c;
}
