/*
 * pd_lg_sub.c: a load generator child: its share of the subscriber
 * connections in one epoll loop.  Connects (a bounded number of
 * handshakes in flight), upgrades to WebSocket (pushd's /connect with a
 * token, nchan's /sub/<channel>, the bare server's /), reads message
 * frames, measures their latency from the stamp in the data, acks pushd's
 * qos 1 messages, and follows the phases the parent sets on the board.
 */

#define _GNU_SOURCE

#include "pd_lg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum {
    PD_LG_C_IDLE = 0,       /* not started, or waiting for a retry */
    PD_LG_C_CONNECTING,
    PD_LG_C_TLS,            /* --tls: the TLS handshake */
    PD_LG_C_UPGRADING,      /* request sent, reading the 101 */
    PD_LG_C_WELCOME,        /* pushd: 101 read, waiting for welcome */
    PD_LG_C_OPEN,
    PD_LG_C_DONE            /* closed or given up */
};

#define PD_LG_TRIES       5
#define PD_LG_RETRY_NS    (200 * 1000000ULL)
#define PD_LG_RBUF        (256 * 1024)
#define PD_LG_WBUF        (64 * 1024)

typedef struct {
    int        fd;
    uint32_t   idx;          /* global: uid u<idx>, source address */
    uint8_t    state;
    uint8_t    tries;
    uint16_t   outlen;
    uint32_t   inlen;
    u_char    *in;           /* a partial head or frame, only while one is */
    u_char    *out;          /* unsent acks, only while there are */
    SSL       *ssl;          /* --tls */
    uint64_t   started;      /* connect() time, ns */
} pd_lg_conn_t;

typedef struct {
    uint32_t   conn;
    uint64_t   due;
} pd_lg_retry_t;

static pd_lg_conn_t   *pd_lg_conns;
static int             pd_lg_nconns;
static int             pd_lg_slot;
static int             pd_lg_ep;
static int             pd_lg_next;         /* next conn to start */
static int             pd_lg_inflight;     /* handshakes in flight */
static int             pd_lg_settled;      /* conns up or given up */
static int             pd_lg_reported;     /* the cap reported done */
static int             pd_lg_cap;          /* conns to open this phase */
static pd_lg_retry_t  *pd_lg_retries;
static int             pd_lg_rhead, pd_lg_rtail;
static u_char         *pd_lg_rbuf;
static u_char         *pd_lg_wbuf;
static size_t          pd_lg_wlen;
static uint16_t        pd_lg_expect;       /* deliveries per message */
static long            pd_lg_expires;
static int             pd_lg_complaints;
static SSL_CTX        *pd_lg_ssl_ctx;

static void pd_lg_close(pd_lg_conn_t *c, int retry);

static void
pd_lg_complain(const char *fmt, const char *what, size_t len)
{
    if (pd_lg_complaints++ < 5) {
        fprintf(stderr, fmt, (int) (len > 200 ? 200 : len), what);
    }
}

static void
pd_lg_settle(void)
{
    pd_lg_settled++;
}

static void
pd_lg_retry_push(pd_lg_conn_t *c)
{
    pd_lg_retries[pd_lg_rtail % pd_lg_nconns].conn =
        (uint32_t) (c - pd_lg_conns);
    pd_lg_retries[pd_lg_rtail % pd_lg_nconns].due = pd_lg_now()
                                                   + PD_LG_RETRY_NS;
    pd_lg_rtail++;
}

/* read() or SSL_read(): -1 with EAGAIN when there is nothing yet */
static ssize_t
pd_lg_recv(pd_lg_conn_t *c, u_char *buf, size_t size)
{
    int  n, err;

    if (c->ssl == NULL) {
        return read(c->fd, buf, size);
    }

    n = SSL_read(c->ssl, buf, (int) size);
    if (n > 0) {
        return n;
    }

    err = SSL_get_error(c->ssl, n);

    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }

    ERR_clear_error();

    if (err == SSL_ERROR_ZERO_RETURN) {
        return 0;
    }

    errno = ECONNRESET;
    return -1;
}

static ssize_t
pd_lg_send(pd_lg_conn_t *c, const u_char *buf, size_t len)
{
    int  n, err;

    if (c->ssl == NULL) {
        return write(c->fd, buf, len);
    }

    n = SSL_write(c->ssl, buf, (int) len);
    if (n > 0) {
        return n;
    }

    err = SSL_get_error(c->ssl, n);
    ERR_clear_error();
    errno = (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
            ? EAGAIN : ECONNRESET;

    return -1;
}

static int
pd_lg_request(pd_lg_conn_t *c, char *buf, size_t size)
{
    pd_lg_opts_t  *o = &pd_lg_opts;
    char           uid[32], token[80];
    const char    *hdrs;

    hdrs = "Host: 127.0.0.1\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n";

    (void) snprintf(uid, sizeof(uid), "u%u", c->idx);

    switch (o->target) {

    case PD_LG_PUSHD:
        pd_lg_token(token, uid, "d", pd_lg_expires);
        return snprintf(buf, size, "GET /connect?uid=%s&device=d&apps=%s"
                        "&expires=%ld&token=%s&hb=600 HTTP/1.1\r\n%s",
                        uid, o->app, pd_lg_expires, token, hdrs);

    case PD_LG_NCHAN:
        return snprintf(buf, size, "GET /sub/%s HTTP/1.1\r\n%s",
                        o->scenario == PD_LG_FANOUT ? "all" : uid, hdrs);

    default:
        return snprintf(buf, size, "GET / HTTP/1.1\r\n%s", hdrs);
    }
}

static void
pd_lg_start(pd_lg_conn_t *c)
{
    struct epoll_event  ev;

    c->fd = pd_lg_nonblock_socket((int) c->idx, pd_lg_opts.port);

    if (c->fd == -1) {
        if (pd_lg_complaints++ < 5) {
            fprintf(stderr, "loadgen: socket/connect: %s\n",
                    strerror(errno));
        }
        c->tries++;
        __atomic_fetch_add(&pd_lg_board->retried, 1, __ATOMIC_RELAXED);

        if (c->tries >= PD_LG_TRIES) {
            c->state = PD_LG_C_DONE;
            __atomic_fetch_add(&pd_lg_board->failed, 1, __ATOMIC_RELAXED);
            pd_lg_settle();
        } else {
            pd_lg_retry_push(c);
        }
        return;
    }

    c->state = PD_LG_C_CONNECTING;
    c->started = pd_lg_now();
    pd_lg_inflight++;

    ev.events = EPOLLOUT;
    ev.data.ptr = c;
    (void) epoll_ctl(pd_lg_ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void
pd_lg_connected(pd_lg_conn_t *c)
{
    uint64_t  now, old;
    int       me = pd_lg_slot;

    c->state = PD_LG_C_OPEN;
    pd_lg_subs[c->idx].up = 1;
    pd_lg_inflight--;
    pd_lg_settle();

    now = pd_lg_now();
    pd_lg_hist_add(&pd_lg_board->conn_lat[me], (now - c->started) / 1000);
    __atomic_fetch_add(&pd_lg_board->connected, 1, __ATOMIC_RELAXED);

    old = __atomic_load_n(&pd_lg_board->last_conn_ns, __ATOMIC_RELAXED);
    while (old < now
           && !__atomic_compare_exchange_n(&pd_lg_board->last_conn_ns, &old,
                                           now, 0, __ATOMIC_RELAXED,
                                           __ATOMIC_RELAXED))
    {
        /* old was reloaded */
    }
}

/*
 * One subscriber's record of a message of this run: its count, its
 * order, and for a push whether it was meant for this uid (the uids of
 * a push are first, first + step, ... modulo the connections).
 */
static void
pd_lg_receipt(pd_lg_conn_t *c, uint64_t seq)
{
    pd_lg_sub_t  *sub = &pd_lg_subs[c->idx];
    uint32_t      n, k, step, first, d;

    sub->rx++;
    sub->seq_sum += seq;

    if (seq < sub->last) {
        sub->disorder++;
    } else {
        sub->last = (uint32_t) seq + 1;
    }

    if (pd_lg_opts.scenario == PD_LG_FANOUT || seq >= PD_LG_SEQ_MAX) {
        return;
    }

    n = (uint32_t) pd_lg_opts.conns;
    k = pd_lg_opts.scenario == PD_LG_STORM ? 1 : (uint32_t) pd_lg_opts.uids;
    step = n / k;
    first = __atomic_load_n(&pd_lg_first[seq], __ATOMIC_ACQUIRE);
    d = (c->idx + n - first % n) % n;

    if (d % step != 0 || d / step >= k) {
        __atomic_fetch_add(&pd_lg_board->wrong_uid, 1, __ATOMIC_RELAXED);
    }
}

/* a message: its latency, its count, and an ack if pushd asks for one */
static void
pd_lg_message(pd_lg_conn_t *c, const u_char *p, size_t len)
{
    uint64_t       seq, stamp, now, old, start;
    const u_char  *id, *q;
    u_char         ack[160];
    size_t         n;

    switch (pd_lg_data_parse(p, len, &seq, &stamp)) {

    case 0:
        break;

    case 1:
        /* acked below all the same: the server may stop sending it */
        __atomic_fetch_add(&pd_lg_board->stale, 1, __ATOMIC_RELAXED);
        goto ack;

    default:
        __atomic_fetch_add(&pd_lg_board->bad, 1, __ATOMIC_RELAXED);
        pd_lg_complain("loadgen: unexpected message: %.*s\n",
                       (const char *) p, len);
        return;
    }

    now = pd_lg_now();
    pd_lg_hist_add(&pd_lg_board->lat[pd_lg_slot],
                   now > stamp ? (now - stamp) / 1000 : 0);
    __atomic_fetch_add(&pd_lg_board->received, 1, __ATOMIC_RELAXED);

    /* the rate second by second: does it hold up over the run? */
    start = __atomic_load_n(&pd_lg_board->run_start_ns, __ATOMIC_RELAXED);
    if (start && now >= start
        && (now - start) / 1000000000 < PD_LG_MAX_SECS)
    {
        __atomic_fetch_add(&pd_lg_board->rx_sec[(now - start) / 1000000000],
                           1, __ATOMIC_RELAXED);
    }

    old = __atomic_load_n(&pd_lg_board->last_rx_ns, __ATOMIC_RELAXED);
    while (old < now
           && !__atomic_compare_exchange_n(&pd_lg_board->last_rx_ns, &old,
                                           now, 0, __ATOMIC_RELAXED,
                                           __ATOMIC_RELAXED))
    {
        /* old was reloaded */
    }

    pd_lg_receipt(c, seq);

    if (pd_lg_opts.scenario != PD_LG_FANOUT && seq < PD_LG_SEQ_MAX) {
        if (__atomic_fetch_add(&pd_lg_board->counts[seq], 1,
                               __ATOMIC_RELAXED)
            >= pd_lg_expect)
        {
            __atomic_fetch_add(&pd_lg_board->dups, 1, __ATOMIC_RELAXED);
        }
    }

ack:

    if (pd_lg_opts.target != PD_LG_PUSHD
        || pd_lg_memmem(p, len < 120 ? len : 120, "\"qos\":1,") == NULL)
    {
        return;
    }

    id = pd_lg_memmem(p, len, "\"id\":\"");
    if (id == NULL) {
        return;
    }

    id += 6;
    q = memchr(id, '"', (size_t) (p + len - id));
    if (q == NULL || q - id > 100) {
        return;
    }

    n = (size_t) snprintf((char *) ack, sizeof(ack),
                          "{\"op\":\"ack\",\"ids\":[\"%.*s\"]}",
                          (int) (q - id), (const char *) id);

    if (pd_lg_wlen + n + 14 <= PD_LG_WBUF) {
        pd_lg_wlen += pd_lg_ws_frame(pd_lg_wbuf + pd_lg_wlen, 0x1, ack, n);
        __atomic_fetch_add(&pd_lg_board->acks, 1, __ATOMIC_RELAXED);
    }

    (void) c;
}

static void
pd_lg_text(pd_lg_conn_t *c, const u_char *p, size_t len)
{
    if (pd_lg_opts.target != PD_LG_PUSHD) {
        pd_lg_message(c, p, len);
        return;
    }

    if (len > 14 && memcmp(p, "{\"op\":\"msg\"", 11) == 0) {
        pd_lg_message(c, p, len);
        return;
    }

    if (len > 16 && memcmp(p, "{\"op\":\"welcome\"", 15) == 0) {
        if (c->state == PD_LG_C_WELCOME) {
            pd_lg_connected(c);
        }
        return;
    }

    pd_lg_complain("loadgen: pushd said: %.*s\n", (const char *) p, len);
}

/* the frames in p; returns the bytes used, -1 when the connection ends */
static ssize_t
pd_lg_frames(pd_lg_conn_t *c, u_char *p, size_t len)
{
    size_t    used, hl, i;
    uint64_t  plen;
    int       op;
    u_char    pong[140];

    used = 0;

    while (len - used >= 2) {
        u_char  *f = p + used;
        size_t   avail = len - used;

        op = f[0] & 0x0f;
        plen = f[1] & 0x7f;
        hl = 2;

        if (plen == 126) {
            if (avail < 4) {
                break;
            }
            plen = ((uint64_t) f[2] << 8) | f[3];
            hl = 4;

        } else if (plen == 127) {
            if (avail < 10) {
                break;
            }
            plen = 0;
            for (i = 0; i < 8; i++) {
                plen = (plen << 8) | f[2 + i];
            }
            hl = 10;
        }

        if (f[1] & 0x80) {
            hl += 4;    /* a server never masks; skip the key if it did */
        }

        if (avail < hl || avail - hl < plen) {
            break;
        }

        switch (op) {

        case 0x1:
        case 0x2:
            pd_lg_text(c, f + hl, (size_t) plen);
            break;

        case 0x8:
            return -1;

        case 0x9:
            if (plen <= 125 && pd_lg_wlen + plen + 14 <= PD_LG_WBUF) {
                memcpy(pong, f + hl, (size_t) plen);
                pd_lg_wlen += pd_lg_ws_frame(pd_lg_wbuf + pd_lg_wlen, 0xa,
                                             pong, (size_t) plen);
            }
            break;

        default:
            break;
        }

        used += hl + (size_t) plen;
    }

    return (ssize_t) used;
}

/* the response head: 101 or a refusal; returns bytes used or -1 */
static ssize_t
pd_lg_head(pd_lg_conn_t *c, u_char *p, size_t len)
{
    const u_char  *end;
    int            status;

    end = pd_lg_memmem(p, len, "\r\n\r\n");
    if (end == NULL) {
        return len > 8192 ? -1 : 0;
    }

    status = (len > 12 && memcmp(p, "HTTP/1.1 ", 9) == 0)
             ? atoi((const char *) p + 9) : 0;

    if (status != 101) {
        __atomic_fetch_add(&pd_lg_board->refused[status / 100 < 8
                                                 ? status / 100 : 0],
                           1, __ATOMIC_RELAXED);
        pd_lg_complain("loadgen: upgrade refused: %.*s\n", (const char *) p,
                       len);
        return -1;
    }

    if (pd_lg_opts.target == PD_LG_PUSHD) {
        c->state = PD_LG_C_WELCOME;
    } else {
        pd_lg_connected(c);
    }

    return (end + 4) - p;
}

static void
pd_lg_flush(pd_lg_conn_t *c)
{
    struct epoll_event  ev;
    ssize_t             n;
    size_t              off;
    u_char             *nb;

    if (pd_lg_wlen == 0) {
        return;
    }

    off = 0;

    if (c->outlen == 0) {
        n = pd_lg_send(c, pd_lg_wbuf, pd_lg_wlen);
        if (n > 0) {
            off = (size_t) n;
        }
    }

    if (off < pd_lg_wlen) {
        nb = realloc(c->out, c->outlen + pd_lg_wlen - off);
        if (nb != NULL && c->outlen + pd_lg_wlen - off < 65535) {
            memcpy(nb + c->outlen, pd_lg_wbuf + off, pd_lg_wlen - off);
            c->out = nb;
            c->outlen += (uint16_t) (pd_lg_wlen - off);

            ev.events = EPOLLIN | EPOLLOUT;
            ev.data.ptr = c;
            (void) epoll_ctl(pd_lg_ep, EPOLL_CTL_MOD, c->fd, &ev);
        } else if (nb != NULL) {
            c->out = nb;
        }
    }

    pd_lg_wlen = 0;
}

static void
pd_lg_write_pending(pd_lg_conn_t *c)
{
    struct epoll_event  ev;
    ssize_t             n;

    n = pd_lg_send(c, c->out, c->outlen);
    if (n <= 0) {
        return;
    }

    memmove(c->out, c->out + n, c->outlen - (size_t) n);
    c->outlen -= (uint16_t) n;

    if (c->outlen == 0) {
        free(c->out);
        c->out = NULL;
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        (void) epoll_ctl(pd_lg_ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void
pd_lg_read(pd_lg_conn_t *c)
{
    ssize_t   n, used, u;
    size_t    have, space;
    u_char   *nb;

    for ( ;; ) {
        have = c->inlen;
        if (have) {
            memcpy(pd_lg_rbuf, c->in, have);
        }

        space = PD_LG_RBUF - have;
        n = pd_lg_recv(c, pd_lg_rbuf + have, space);

        if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
            pd_lg_close(c, c->state < PD_LG_C_OPEN);
            return;
        }

        if (n == -1) {
            return;
        }

        have += (size_t) n;
        used = 0;

        if (c->state == PD_LG_C_UPGRADING) {
            used = pd_lg_head(c, pd_lg_rbuf, have);
            if (used == -1) {
                pd_lg_close(c, 1);
                return;
            }
        }

        if (c->state >= PD_LG_C_WELCOME) {
            u = pd_lg_frames(c, pd_lg_rbuf + used, have - (size_t) used);
            pd_lg_flush(c);
            if (u == -1) {
                pd_lg_close(c, c->state < PD_LG_C_OPEN);
                return;
            }
            used += u;
        }

        have -= (size_t) used;

        if (have == 0) {
            free(c->in);
            c->in = NULL;
            c->inlen = 0;

        } else {
            nb = realloc(c->in, have);
            if (nb == NULL) {
                pd_lg_close(c, 0);
                return;
            }
            memcpy(nb, pd_lg_rbuf + used, have);
            c->in = nb;
            c->inlen = (uint32_t) have;
        }

        /* TLS hands out a record at a time: read until EAGAIN */
        if (c->ssl == NULL && (size_t) n < space) {
            return;
        }
    }
}

static void
pd_lg_send_request(pd_lg_conn_t *c)
{
    struct epoll_event  ev;
    char                req[768];
    int                 n;

    n = pd_lg_request(c, req, sizeof(req));

    if (pd_lg_send(c, (u_char *) req, (size_t) n) != n) {
        pd_lg_close(c, 1);
        return;
    }

    c->state = PD_LG_C_UPGRADING;
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    (void) epoll_ctl(pd_lg_ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
pd_lg_tls_step(pd_lg_conn_t *c)
{
    struct epoll_event  ev;
    int                 rc, err;

    rc = SSL_do_handshake(c->ssl);

    if (rc == 1) {
        pd_lg_send_request(c);
        return;
    }

    err = SSL_get_error(c->ssl, rc);

    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        if (pd_lg_complaints++ < 5) {
            fprintf(stderr, "loadgen: TLS handshake failed: %s\n",
                    ERR_reason_error_string(ERR_peek_last_error()));
        }
        ERR_clear_error();
        pd_lg_close(c, 1);
        return;
    }

    ev.events = (err == SSL_ERROR_WANT_READ) ? EPOLLIN : EPOLLOUT;
    ev.data.ptr = c;
    (void) epoll_ctl(pd_lg_ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
pd_lg_upgrade(pd_lg_conn_t *c)
{
    socklen_t  sl;
    int        err;

    err = 0;
    sl = sizeof(err);
    (void) getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl);

    if (err != 0) {
        if (pd_lg_complaints++ < 5) {
            fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
        }
        pd_lg_close(c, 1);
        return;
    }

    if (pd_lg_ssl_ctx == NULL) {
        pd_lg_send_request(c);
        return;
    }

    c->ssl = SSL_new(pd_lg_ssl_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        pd_lg_close(c, 0);
        return;
    }

    SSL_set_connect_state(c->ssl);
    c->state = PD_LG_C_TLS;
    pd_lg_tls_step(c);
}

/* retry: a handshake that failed goes to the retry queue a few times */
static void
pd_lg_close(pd_lg_conn_t *c, int retry)
{
    int  was_open = (c->state == PD_LG_C_OPEN);

    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }

    if (c->fd != -1) {
        close(c->fd);
        c->fd = -1;
    }

    free(c->in);
    free(c->out);
    c->in = NULL;
    c->out = NULL;
    c->inlen = 0;
    c->outlen = 0;

    if (was_open) {
        c->state = PD_LG_C_DONE;
        __atomic_fetch_add(&pd_lg_board->server_closed, 1,
                           __ATOMIC_RELAXED);
        __atomic_fetch_sub(&pd_lg_board->connected, 1, __ATOMIC_RELAXED);
        return;
    }

    if (c->state == PD_LG_C_DONE || c->state == PD_LG_C_IDLE) {
        return;
    }

    pd_lg_inflight--;
    c->tries++;

    if (retry && c->tries < PD_LG_TRIES) {
        c->state = PD_LG_C_IDLE;
        __atomic_fetch_add(&pd_lg_board->retried, 1, __ATOMIC_RELAXED);
        pd_lg_retry_push(c);
        return;
    }

    c->state = PD_LG_C_DONE;
    __atomic_fetch_add(&pd_lg_board->failed, 1, __ATOMIC_RELAXED);
    pd_lg_settle();
}

static void
pd_lg_start_more(void)
{
    pd_lg_retry_t  *r;
    uint64_t        now;

    now = 0;

    while (pd_lg_inflight < pd_lg_opts.concurrency
           && pd_lg_rhead < pd_lg_rtail)
    {
        r = &pd_lg_retries[pd_lg_rhead % pd_lg_nconns];
        now = now ? now : pd_lg_now();

        if (r->due > now) {
            break;
        }

        pd_lg_rhead++;
        pd_lg_start(&pd_lg_conns[r->conn]);
    }

    while (pd_lg_inflight < pd_lg_opts.concurrency
           && pd_lg_next < pd_lg_cap)
    {
        pd_lg_start(&pd_lg_conns[pd_lg_next++]);
    }
}

static void
pd_lg_begin_connect(void)
{
    int  i;

    pd_lg_next = 0;
    pd_lg_inflight = 0;
    pd_lg_settled = 0;
    pd_lg_reported = -1;
    pd_lg_rhead = 0;
    pd_lg_rtail = 0;
    pd_lg_expires = (long) time(NULL) + 86400;

    for (i = 0; i < pd_lg_nconns; i++) {
        pd_lg_conns[i].state = PD_LG_C_IDLE;
        pd_lg_conns[i].tries = 0;
    }

    pd_lg_start_more();
}

static void
pd_lg_close_all(void)
{
    int  i;

    for (i = 0; i < pd_lg_nconns; i++) {
        if (pd_lg_conns[i].ssl != NULL) {
            SSL_free(pd_lg_conns[i].ssl);
            pd_lg_conns[i].ssl = NULL;
        }

        if (pd_lg_conns[i].fd != -1) {
            close(pd_lg_conns[i].fd);
            pd_lg_conns[i].fd = -1;
            __atomic_fetch_add(&pd_lg_board->closed, 1, __ATOMIC_RELAXED);
        }

        free(pd_lg_conns[i].in);
        free(pd_lg_conns[i].out);
        pd_lg_conns[i].in = NULL;
        pd_lg_conns[i].out = NULL;
        pd_lg_conns[i].inlen = 0;
        pd_lg_conns[i].outlen = 0;
        pd_lg_conns[i].state = PD_LG_C_IDLE;
    }

    __atomic_store_n(&pd_lg_board->connected, 0, __ATOMIC_RELAXED);
}

static void
pd_lg_event(struct epoll_event *ev)
{
    pd_lg_conn_t  *c = ev->data.ptr;

    if (c->fd == -1) {
        return;
    }

    if (c->state == PD_LG_C_CONNECTING) {
        pd_lg_upgrade(c);
        return;
    }

    if (c->state == PD_LG_C_TLS) {
        pd_lg_tls_step(c);
        return;
    }

    if (ev->events & EPOLLOUT) {
        pd_lg_write_pending(c);
    }

    if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        pd_lg_read(c);
    }
}

/* the child's life: conns lo..hi-1, until the parent says exit */
void
pd_lg_child(int slot, int lo, int hi)
{
    struct epoll_event  evs[512];
    int                 i, n, phase, seen;

    pd_lg_slot = slot;
    pd_lg_nconns = hi - lo;
    pd_lg_srand((uint64_t) getpid() * 7919 + (uint64_t) pd_lg_now());
    pd_lg_expect = (uint16_t) (pd_lg_opts.uids > 0 ? pd_lg_opts.uids : 1);

    pd_lg_conns = calloc((size_t) pd_lg_nconns, sizeof(pd_lg_conn_t));
    pd_lg_retries = calloc((size_t) pd_lg_nconns, sizeof(pd_lg_retry_t));
    pd_lg_rbuf = malloc(PD_LG_RBUF);
    pd_lg_wbuf = malloc(PD_LG_WBUF);
    pd_lg_ep = epoll_create1(EPOLL_CLOEXEC);

    if (pd_lg_conns == NULL || pd_lg_retries == NULL || pd_lg_rbuf == NULL
        || pd_lg_wbuf == NULL || pd_lg_ep == -1)
    {
        fprintf(stderr, "loadgen: child %d: out of memory\n", slot);
        _exit(1);
    }

    for (i = 0; i < pd_lg_nconns; i++) {
        pd_lg_conns[i].fd = -1;
        pd_lg_conns[i].idx = (uint32_t) (lo + i);
    }

    if (pd_lg_opts.tls) {
        /* the servers' certificates are self-signed: no verification */
        pd_lg_ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (pd_lg_ssl_ctx == NULL) {
            fprintf(stderr, "loadgen: SSL_CTX_new() failed\n");
            _exit(1);
        }
        SSL_CTX_set_verify(pd_lg_ssl_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(pd_lg_ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                         | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }

    seen = PD_LG_PH_INIT;

    for ( ;; ) {
        n = epoll_wait(pd_lg_ep, evs, 512, 2);

        for (i = 0; i < n; i++) {
            pd_lg_event(&evs[i]);
        }

        phase = __atomic_load_n(&pd_lg_board->phase, __ATOMIC_ACQUIRE);

        if (phase != seen) {
            seen = phase;

            switch (phase) {

            case PD_LG_PH_CONNECT:
            case PD_LG_PH_RECONNECT:
                pd_lg_cap = (int) ((int64_t) pd_lg_nconns
                                   * pd_lg_board->cap_permille / 1000);
                pd_lg_begin_connect();
                break;

            case PD_LG_PH_CLOSE:
                pd_lg_close_all();
                __atomic_fetch_add(&pd_lg_board->ready, 1, __ATOMIC_RELEASE);
                break;

            case PD_LG_PH_EXIT:
                pd_lg_close_all();
                _exit(0);

            default:
                break;
            }
        }

        if (seen == PD_LG_PH_CONNECT || seen == PD_LG_PH_RECONNECT) {
            pd_lg_cap = (int) ((int64_t) pd_lg_nconns
                               * __atomic_load_n(&pd_lg_board->cap_permille,
                                                 __ATOMIC_ACQUIRE) / 1000);
            pd_lg_start_more();

            if (pd_lg_reported != pd_lg_cap && pd_lg_settled >= pd_lg_cap) {
                pd_lg_reported = pd_lg_cap;
                __atomic_fetch_add(&pd_lg_board->ready, 1, __ATOMIC_RELEASE);
            }
        }
    }
}
