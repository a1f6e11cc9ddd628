/*
 * pd_lg_pub.c: the parent's API connections: HTTP/1.1 keep-alive, each
 * with up to pipeline requests written ahead of their answers (pushd's
 * center, nchan's publisher location, the bare server's trigger).  The
 * answers come in order, so a FIFO per connection says which message an
 * answer is for.
 */

#define _GNU_SOURCE

#include "pd_lg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define PD_LG_REQ_MAX   (64 * 1024)

enum {
    PD_LG_P_CLOSED = 0,
    PD_LG_P_CONNECTING,
    PD_LG_P_OPEN
};

struct pd_lg_pub_s {
    int        fd;
    int        state;
    u_char    *out;
    size_t     outlen;
    size_t     outcap;
    u_char    *in;
    size_t     inlen;
    size_t     incap;
    uint64_t   seq[PD_LG_MAX_PIPELINE];
    uint64_t   at[PD_LG_MAX_PIPELINE];
    int        owed[PD_LG_MAX_PIPELINE];
    int        head;
    int        n;
};

pd_lg_pubstat_t   pd_lg_pubstat;
uint8_t          *pd_lg_accepted;

static pd_lg_pub_t   pd_lg_pubs[PD_LG_MAX_PUBS];
static int           pd_lg_npubs;
static int           pd_lg_pep = -1;
static u_char       *pd_lg_req;
static int           pd_lg_pub_complaints;

static int
pd_lg_pub_open(pd_lg_pub_t *p)
{
    struct epoll_event  ev;

    p->fd = pd_lg_nonblock_socket(-1, pd_lg_opts.api_port);
    if (p->fd == -1) {
        perror("loadgen: publisher connect");
        return -1;
    }

    p->state = PD_LG_P_CONNECTING;
    p->head = 0;
    p->n = 0;
    p->outlen = 0;
    p->inlen = 0;

    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = p;

    return epoll_ctl(pd_lg_pep, EPOLL_CTL_ADD, p->fd, &ev);
}

/* n API connections; 0 once all are open, -1 on failure */
int
pd_lg_pub_init(int n)
{
    uint64_t  deadline;
    int       i, open;

    /* the options refuse more (a silent cap would run another load
     * than the one reported) */
    if (n < 1 || n > PD_LG_MAX_PUBS) {
        return -1;
    }

    pd_lg_npubs = n;
    pd_lg_pep = epoll_create1(EPOLL_CLOEXEC);
    pd_lg_req = malloc(PD_LG_REQ_MAX);

    if (pd_lg_pep == -1 || pd_lg_req == NULL) {
        return -1;
    }

    for (i = 0; i < pd_lg_npubs; i++) {
        if (pd_lg_pub_open(&pd_lg_pubs[i]) != 0) {
            return -1;
        }
    }

    deadline = pd_lg_now() + 5000000000ULL;

    while (pd_lg_now() < deadline) {
        (void) pd_lg_pub_poll(5);

        open = 0;
        for (i = 0; i < pd_lg_npubs; i++) {
            open += (pd_lg_pubs[i].state == PD_LG_P_OPEN);
        }

        if (open == pd_lg_npubs) {
            return 0;
        }
    }

    fprintf(stderr, "loadgen: the API port %d does not answer\n",
            pd_lg_opts.api_port);

    return -1;
}

int
pd_lg_pub_outstanding(void)
{
    int  i, n;

    n = 0;
    for (i = 0; i < pd_lg_npubs; i++) {
        n += pd_lg_pubs[i].n;
    }

    return n;
}

static pd_lg_pub_t *
pd_lg_pub_pick(void)
{
    pd_lg_pub_t  *p, *best;
    int           i;

    best = NULL;

    for (i = 0; i < pd_lg_npubs; i++) {
        p = &pd_lg_pubs[i];

        if (p->state != PD_LG_P_OPEN || p->n >= pd_lg_opts.pipeline) {
            continue;
        }

        if (best == NULL || p->n < best->n) {
            best = p;
        }
    }

    return best;
}

int
pd_lg_pub_can_send(void)
{
    return pd_lg_pub_pick() != NULL;
}

/* one request from next() on the least busy connection; -1 if none */
int
pd_lg_pub_send(pd_lg_next_pt next)
{
    pd_lg_pub_t  *p;
    uint64_t      seq;
    u_char       *nb;
    int           len, owed, slot;

    p = pd_lg_pub_pick();
    if (p == NULL) {
        return -1;
    }

    owed = 0;
    len = next(pd_lg_req, PD_LG_REQ_MAX, &seq, &owed);
    if (len <= 0) {
        return -1;
    }

    if (p->outlen + (size_t) len > p->outcap) {
        nb = realloc(p->out, p->outlen + (size_t) len + PD_LG_REQ_MAX);
        if (nb == NULL) {
            return -1;
        }
        p->out = nb;
        p->outcap = p->outlen + (size_t) len + PD_LG_REQ_MAX;
    }

    memcpy(p->out + p->outlen, pd_lg_req, (size_t) len);
    p->outlen += (size_t) len;

    slot = (p->head + p->n) % PD_LG_MAX_PIPELINE;
    p->seq[slot] = seq;
    p->at[slot] = pd_lg_now();
    p->owed[slot] = owed;
    p->n++;
    pd_lg_pubstat.sent++;

    return 0;
}

static void
pd_lg_pub_reset(pd_lg_pub_t *p)
{
    (void) epoll_ctl(pd_lg_pep, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);

    pd_lg_pubstat.lost_in_flight += (uint64_t) p->n;
    pd_lg_pubstat.reconnects++;
    p->state = PD_LG_P_CLOSED;

    (void) pd_lg_pub_open(p);
}

/* a header's value in the head [p, end), or NULL */
static const char *
pd_lg_header(const u_char *p, const u_char *end, const char *name)
{
    size_t  nl = strlen(name);

    while (p < end) {
        const u_char  *eol = memchr(p, '\n', (size_t) (end - p));

        if (eol == NULL) {
            return NULL;
        }

        if ((size_t) (eol - p) > nl + 1 && p[nl] == ':'
            && strncasecmp((const char *) p, name, nl) == 0)
        {
            p += nl + 1;
            while (*p == ' ') {
                p++;
            }
            return (const char *) p;
        }

        p = eol + 1;
    }

    return NULL;
}

/* the end of a chunked body starting at p, or NULL when incomplete */
static const u_char *
pd_lg_chunked_end(const u_char *p, const u_char *end)
{
    const u_char  *eol;
    unsigned long  size;

    for ( ;; ) {
        eol = pd_lg_memmem(p, (size_t) (end - p), "\r\n");
        if (eol == NULL) {
            return NULL;
        }

        size = strtoul((const char *) p, NULL, 16);
        p = eol + 2;

        if (size == 0) {
            eol = pd_lg_memmem(p, (size_t) (end - p), "\r\n\r\n");
            if ((size_t) (end - p) >= 2 && p[0] == '\r' && p[1] == '\n') {
                return p + 2;
            }
            return eol ? eol + 4 : NULL;
        }

        if ((size_t) (end - p) < size + 2) {
            return NULL;
        }

        p += size + 2;
    }
}

static void
pd_lg_pub_answer(pd_lg_pub_t *p, int status, const u_char *body,
    size_t blen)
{
    uint64_t  seq;
    int       slot;

    if (p->n == 0) {
        pd_lg_pubstat.errors++;
        return;
    }

    slot = p->head;
    seq = p->seq[slot];
    p->head = (p->head + 1) % PD_LG_MAX_PIPELINE;
    p->n--;

    pd_lg_hist_add(&pd_lg_pubstat.api, (pd_lg_now() - p->at[slot]) / 1000);

    if (status >= 100 && status < 600) {
        pd_lg_pubstat.status[status / 100]++;
    }

    if (status >= 200 && status < 300) {
        pd_lg_pubstat.accepted++;
        pd_lg_pubstat.expected += (uint64_t) p->owed[slot];

        if (seq < PD_LG_SEQ_MAX) {
            pd_lg_accepted[seq] = 1;
        }
        return;
    }

    pd_lg_pubstat.errors++;

    if (pd_lg_pub_complaints++ < 5) {
        fprintf(stderr, "loadgen: API answered %d: %.*s\n", status,
                (int) (blen > 200 ? 200 : blen), (const char *) body);
    }
}

/* the complete answers in p->in; -1 when the connection must go */
static int
pd_lg_pub_parse(pd_lg_pub_t *p)
{
    const u_char  *s, *end, *head_end, *body, *body_end;
    const char    *v;
    int            status, close_it;
    size_t         used;

    s = p->in;
    end = p->in + p->inlen;
    close_it = 0;

    while (s < end) {
        head_end = pd_lg_memmem(s, (size_t) (end - s), "\r\n\r\n");
        if (head_end == NULL) {
            break;
        }

        status = ((size_t) (end - s) > 12 && memcmp(s, "HTTP/1.", 7) == 0)
                 ? atoi((const char *) s + 9) : 0;
        body = head_end + 4;

        v = pd_lg_header(s, head_end + 2, "Transfer-Encoding");

        if (v != NULL && strncasecmp(v, "chunked", 7) == 0) {
            body_end = pd_lg_chunked_end(body, end);
            if (body_end == NULL) {
                break;
            }

        } else {
            v = pd_lg_header(s, head_end + 2, "Content-Length");
            body_end = body + (v ? strtoul(v, NULL, 10) : 0);
            if (body_end > end) {
                break;
            }
        }

        v = pd_lg_header(s, head_end + 2, "Connection");
        if (v != NULL && strncasecmp(v, "close", 5) == 0) {
            close_it = 1;
        }

        pd_lg_pub_answer(p, status, body, (size_t) (body_end - body));
        s = body_end;

        if (close_it) {
            break;
        }
    }

    used = (size_t) (s - p->in);
    memmove(p->in, s, p->inlen - used);
    p->inlen -= used;

    return close_it ? -1 : 0;
}

static void
pd_lg_pub_read(pd_lg_pub_t *p)
{
    ssize_t   n;
    size_t    avail;
    u_char   *nb;

    for ( ;; ) {
        if (p->incap - p->inlen < 16384) {
            nb = realloc(p->in, p->incap + 65536);
            if (nb == NULL) {
                pd_lg_pub_reset(p);
                return;
            }
            p->in = nb;
            p->incap += 65536;
        }

        avail = p->incap - p->inlen;
        n = read(p->fd, p->in + p->inlen, avail);

        if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }

        if (n <= 0) {
            if (pd_lg_pub_complaints++ < 5) {
                fprintf(stderr, "loadgen: the API closed a connection "
                        "with %d requests in flight\n", p->n);
            }
            pd_lg_pub_reset(p);
            return;
        }

        p->inlen += (size_t) n;

        if (pd_lg_pub_parse(p) != 0) {
            pd_lg_pub_reset(p);
            return;
        }

        /* a short read drained the socket; epoll is level-triggered
         * here and reports what comes next: no read() for an EAGAIN */
        if ((size_t) n < avail) {
            return;
        }
    }
}

static void
pd_lg_pub_write(pd_lg_pub_t *p)
{
    ssize_t  n;

    while (p->outlen > 0) {
        n = write(p->fd, p->out, p->outlen);

        if (n == -1) {
            if (errno != EAGAIN && errno != EINTR) {
                pd_lg_pub_reset(p);
            }
            return;
        }

        memmove(p->out, p->out + n, p->outlen - (size_t) n);
        p->outlen -= (size_t) n;
    }
}

/* writes what is queued, waits up to timeout_ms, reads the answers */
int
pd_lg_pub_poll(int timeout_ms)
{
    struct epoll_event   evs[PD_LG_MAX_PUBS];
    pd_lg_pub_t         *p;
    socklen_t            sl;
    int                  i, n, err;

    for (i = 0; i < pd_lg_npubs; i++) {
        if (pd_lg_pubs[i].state == PD_LG_P_OPEN) {
            pd_lg_pub_write(&pd_lg_pubs[i]);
        }
    }

    n = epoll_wait(pd_lg_pep, evs, PD_LG_MAX_PUBS, timeout_ms);

    for (i = 0; i < n; i++) {
        p = evs[i].data.ptr;

        if (p->state == PD_LG_P_CONNECTING) {
            err = 0;
            sl = sizeof(err);
            (void) getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &sl);

            if (err != 0) {
                p->state = PD_LG_P_CLOSED;
                continue;
            }

            p->state = PD_LG_P_OPEN;
            evs[i].events = EPOLLIN;
            (void) epoll_ctl(pd_lg_pep, EPOLL_CTL_MOD, p->fd, &evs[i]);
            continue;
        }

        if (p->state == PD_LG_P_OPEN
            && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        {
            pd_lg_pub_read(p);
        }
    }

    return n;
}

void
pd_lg_pub_close(void)
{
    int  i;

    for (i = 0; i < pd_lg_npubs; i++) {
        if (pd_lg_pubs[i].state != PD_LG_P_CLOSED) {
            close(pd_lg_pubs[i].fd);
            pd_lg_pubs[i].state = PD_LG_P_CLOSED;
        }
    }
}
