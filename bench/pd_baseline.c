/*
 * pd_baseline.c: the bare epoll fan-out server, the practical limit of
 * the host.  Workers (SO_REUSEPORT) accept WebSocket clients with the
 * least handshake that works and hold them in a dense array; a POST to
 * the control port frames its body once as a text frame, hands it to
 * every worker through a pipe, and each worker writes it to all of its
 * sockets, one write per socket per message.  Nothing else: no auth, no
 * routing, no queues beyond a partial write.
 *
 * With -b N (the coalescing baseline) a worker takes the messages it
 * read from its pipe in one go, up to N at a time, and writes them to
 * each socket in one writev(), as pushd puts up to 4 queued frames in
 * one writev(): the fair comparison for pushd's fan-out.
 *
 *   baseline -l PORT -c CTLPORT [-w WORKERS] [-a ADDR] [-b BATCH]
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <openssl/evp.h>

#define PD_BL_MAX_WORKERS  64
#define PD_BL_MAX_FRAME    (16 * 1024)
#define PD_BL_HEAD_MAX     2048
#define PD_BL_MAX_BATCH    64

typedef unsigned char  u_char;

/* a client socket; the dense array holds the established ones */
typedef struct {
    int        pos;          /* index in the dense array, -1 if none */
    uint32_t   plen;         /* bytes of pending that are unsent */
    u_char    *pending;      /* a partial write, or the request head */
} pd_bl_conn_t;

static const char   *pd_bl_addr = "127.0.0.1";
static int           pd_bl_port, pd_bl_ctl_port, pd_bl_workers = 1;
static int           pd_bl_batch = 1;   /* messages per write */
static int           pd_bl_pipes[PD_BL_MAX_WORKERS][2];
static pid_t         pd_bl_pids[PD_BL_MAX_WORKERS];
static volatile int  pd_bl_stop;

static pd_bl_conn_t *pd_bl_conns;        /* by fd */
static int          *pd_bl_dense;        /* fds of established conns */
static int           pd_bl_ndense;
static int           pd_bl_maxfd;
static int           pd_bl_ep;

static void
pd_bl_on_signal(int sig)
{
    (void) sig;
    pd_bl_stop = 1;
}

static int
pd_bl_listen(int port, int reuseport)
{
    struct sockaddr_in  sa;
    int                 fd, one;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -1;
    }

    one = 1;
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport) {
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    }

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);

    if (inet_pton(AF_INET, pd_bl_addr, &sa.sin_addr) != 1
        || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == -1
        || listen(fd, 4096) == -1)
    {
        close(fd);
        return -1;
    }

    return fd;
}

static void
pd_bl_epoll(int op, int fd, uint32_t events)
{
    struct epoll_event  ev;

    ev.events = events;
    ev.data.fd = fd;
    (void) epoll_ctl(pd_bl_ep, op, fd, &ev);
}

static void
pd_bl_close(int fd)
{
    pd_bl_conn_t  *c = &pd_bl_conns[fd];
    int            last;

    if (c->pos >= 0) {
        last = pd_bl_dense[--pd_bl_ndense];
        pd_bl_dense[c->pos] = last;
        pd_bl_conns[last].pos = c->pos;
    }

    free(c->pending);
    c->pending = NULL;
    c->plen = 0;
    c->pos = -1;
    close(fd);
}

/* Sec-WebSocket-Accept of key (RFC 6455 4.2.2) into out (29 bytes) */
static int
pd_bl_accept_key(const char *key, size_t klen, char *out)
{
    static const char  guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char      md[EVP_MAX_MD_SIZE];
    unsigned int       mdlen;
    char               buf[128];

    if (klen == 0 || klen + sizeof(guid) > sizeof(buf)) {
        return -1;
    }

    memcpy(buf, key, klen);
    memcpy(buf + klen, guid, sizeof(guid) - 1);

    if (EVP_Digest(buf, klen + sizeof(guid) - 1, md, &mdlen, EVP_sha1(),
                   NULL) != 1)
    {
        return -1;
    }

    return EVP_EncodeBlock((unsigned char *) out, md, (int) mdlen) == 28
           ? 0 : -1;
}

/* the request head is complete: answer 101 and join the dense array */
static void
pd_bl_upgrade(int fd, u_char *head, size_t len)
{
    pd_bl_conn_t  *c = &pd_bl_conns[fd];
    char           accept[32], resp[256];
    char          *k, *e;
    int            n;

    head[len] = '\0';
    k = strcasestr((char *) head, "\r\nSec-WebSocket-Key:");

    if (k == NULL) {
        pd_bl_close(fd);
        return;
    }

    k += 20;
    while (*k == ' ') {
        k++;
    }

    e = strstr(k, "\r\n");
    if (e == NULL || pd_bl_accept_key(k, (size_t) (e - k), accept) != 0) {
        pd_bl_close(fd);
        return;
    }

    n = snprintf(resp, sizeof(resp), "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n\r\n", accept);

    free(c->pending);
    c->pending = NULL;
    c->plen = 0;

    if (write(fd, resp, (size_t) n) != n) {
        pd_bl_close(fd);
        return;
    }

    c->pos = pd_bl_ndense;
    pd_bl_dense[pd_bl_ndense++] = fd;
}

static void
pd_bl_read(int fd)
{
    pd_bl_conn_t  *c = &pd_bl_conns[fd];
    u_char         buf[4096];
    ssize_t        n;

    if (c->pos < 0 && c->pending == NULL) {
        /* the usual case: the whole head in one read, nothing kept */
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0) {
            if (n == 0 || errno != EAGAIN) {
                pd_bl_close(fd);
            }
            return;
        }

        if (memmem(buf, (size_t) n, "\r\n\r\n", 4) != NULL) {
            pd_bl_upgrade(fd, buf, (size_t) n);
            return;
        }

        c->pending = malloc(PD_BL_HEAD_MAX + 1);
        if (c->pending == NULL || n > PD_BL_HEAD_MAX) {
            pd_bl_close(fd);
            return;
        }

        memcpy(c->pending, buf, (size_t) n);
        c->plen = (uint32_t) n;
        return;
    }

    if (c->pos < 0) {
        /* a head in pieces is kept until it is complete */
        if (c->pending == NULL) {
            c->pending = malloc(PD_BL_HEAD_MAX + 1);
            if (c->pending == NULL) {
                pd_bl_close(fd);
                return;
            }
        }

        n = read(fd, c->pending + c->plen, PD_BL_HEAD_MAX - c->plen);
        if (n <= 0) {
            if (n == 0 || errno != EAGAIN) {
                pd_bl_close(fd);
            }
            return;
        }

        c->plen += (uint32_t) n;

        if (memmem(c->pending, c->plen, "\r\n\r\n", 4) != NULL) {
            pd_bl_upgrade(fd, c->pending, c->plen);
        } else if (c->plen == PD_BL_HEAD_MAX) {
            pd_bl_close(fd);
        }
        return;
    }

    /* clients say nothing we care about: drain, notice the close */
    for ( ;; ) {
        n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            continue;
        }
        if (n == 0 || errno != EAGAIN) {
            pd_bl_close(fd);
        }
        return;
    }
}

/* the rest of a partial write; -1 when the socket was closed */
static int
pd_bl_flush(int fd)
{
    pd_bl_conn_t  *c = &pd_bl_conns[fd];
    ssize_t        n;

    if (c->plen == 0) {
        return 0;
    }

    n = write(fd, c->pending, c->plen);
    if (n == -1) {
        if (errno != EAGAIN) {
            pd_bl_close(fd);
            return -1;
        }
        return 0;
    }

    memmove(c->pending, c->pending + n, c->plen - (size_t) n);
    c->plen -= (uint32_t) n;

    if (c->plen == 0) {
        free(c->pending);
        c->pending = NULL;
        pd_bl_epoll(EPOLL_CTL_MOD, fd, EPOLLIN);
    }

    return 0;
}

/*
 * n messages to every socket: one write() (one message) or writev()
 * each, what the socket did not take kept for EPOLLOUT
 */
static void
pd_bl_fanout(const struct iovec *iov, int niov)
{
    pd_bl_conn_t  *c;
    ssize_t        n;
    size_t         total, skip, rest;
    u_char        *nb;
    int            i, k, fd;

    total = 0;
    for (k = 0; k < niov; k++) {
        total += iov[k].iov_len;
    }

    for (i = 0; i < pd_bl_ndense; i++) {
        fd = pd_bl_dense[i];
        c = &pd_bl_conns[fd];
        n = 0;

        if (c->plen == 0) {
            n = niov == 1 ? write(fd, iov[0].iov_base, iov[0].iov_len)
                          : writev(fd, iov, niov);
            if (n == (ssize_t) total) {
                continue;
            }
            if (n == -1 && errno != EAGAIN) {
                pd_bl_close(fd);
                i--;
                continue;
            }
            if (n == -1) {
                n = 0;
            }
        }

        nb = realloc(c->pending, c->plen + total - (size_t) n);
        if (nb == NULL) {
            pd_bl_close(fd);
            i--;
            continue;
        }

        c->pending = nb;

        if (c->plen == 0) {
            pd_bl_epoll(EPOLL_CTL_MOD, fd, EPOLLIN | EPOLLOUT);
        }

        /* what the socket did not take, the first n bytes skipped */
        skip = (size_t) n;

        for (k = 0; k < niov; k++) {
            if (skip >= iov[k].iov_len) {
                skip -= iov[k].iov_len;
                continue;
            }

            rest = iov[k].iov_len - skip;
            memcpy(nb + c->plen, (u_char *) iov[k].iov_base + skip, rest);
            c->plen += (uint32_t) rest;
            skip = 0;
        }
    }
}

/* messages from the control process: a length, then the frame */
static void
pd_bl_pipe(int fd)
{
    static u_char   buf[4 * (PD_BL_MAX_FRAME + 8)];
    static size_t   have;
    struct iovec    iov[PD_BL_MAX_BATCH];
    uint32_t        len;
    ssize_t         n;
    size_t          off;
    int             niov;

    for ( ;; ) {
        n = read(fd, buf + have, sizeof(buf) - have);
        if (n <= 0) {
            if (n == 0) {
                pd_bl_stop = 1;
            }
            return;
        }

        have += (size_t) n;
        off = 0;
        niov = 0;

        /* the whole messages read, pd_bl_batch to a write */
        while (have - off >= 4) {
            memcpy(&len, buf + off, 4);
            if (have - off < 4 + len) {
                break;
            }

            iov[niov].iov_base = buf + off + 4;
            iov[niov].iov_len = len;
            niov++;
            off += 4 + len;

            if (niov == pd_bl_batch) {
                pd_bl_fanout(iov, niov);
                niov = 0;
            }
        }

        if (niov > 0) {
            pd_bl_fanout(iov, niov);
        }

        memmove(buf, buf + off, have - off);
        have -= off;
    }
}

static void
pd_bl_worker(int slot)
{
    struct epoll_event  evs[512];
    struct rlimit       rl;
    int                 ls, in, i, n, fd;

    (void) prctl(PR_SET_PDEATHSIG, SIGTERM);

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        pd_bl_maxfd = (int) rl.rlim_cur;
    }

    pd_bl_conns = malloc(sizeof(pd_bl_conn_t) * (size_t) pd_bl_maxfd);
    pd_bl_dense = malloc(sizeof(int) * (size_t) pd_bl_maxfd);
    pd_bl_ep = epoll_create1(EPOLL_CLOEXEC);
    ls = pd_bl_listen(pd_bl_port, 1);

    if (pd_bl_conns == NULL || pd_bl_dense == NULL || pd_bl_ep == -1
        || ls == -1)
    {
        perror("baseline: worker");
        _exit(1);
    }

    for (i = 0; i < pd_bl_maxfd; i++) {
        pd_bl_conns[i].pos = -1;
        pd_bl_conns[i].plen = 0;
        pd_bl_conns[i].pending = NULL;
    }

    in = pd_bl_pipes[slot][0];
    for (i = 0; i < pd_bl_workers; i++) {
        close(pd_bl_pipes[i][1]);
        if (i != slot) {
            close(pd_bl_pipes[i][0]);
        }
    }

    (void) fcntl(in, F_SETFL, O_NONBLOCK);
    pd_bl_epoll(EPOLL_CTL_ADD, ls, EPOLLIN);
    pd_bl_epoll(EPOLL_CTL_ADD, in, EPOLLIN);

    while (!pd_bl_stop) {
        n = epoll_wait(pd_bl_ep, evs, 512, 500);

        for (i = 0; i < n; i++) {
            fd = evs[i].data.fd;

            if (fd == ls) {
                while ((fd = accept4(ls, NULL, NULL,
                                     SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1)
                {
                    if (fd >= pd_bl_maxfd) {
                        close(fd);
                        continue;
                    }
                    pd_bl_epoll(EPOLL_CTL_ADD, fd, EPOLLIN);
                }
                continue;
            }

            if (fd == in) {
                pd_bl_pipe(in);
                continue;
            }

            if ((evs[i].events & EPOLLOUT) && pd_bl_flush(fd) != 0) {
                continue;
            }

            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                pd_bl_read(fd);
            }
        }
    }

    _exit(0);
}

/* the frame of body, handed to every worker: one message, framed once */
static int
pd_bl_publish(const u_char *body, size_t blen)
{
    u_char    msg[PD_BL_MAX_FRAME + 16], *p;
    uint32_t  len;
    size_t    off;
    ssize_t   n;
    int       i;

    if (blen > PD_BL_MAX_FRAME - 10) {
        return -1;
    }

    p = msg + 4;
    *p++ = 0x81;

    if (blen < 126) {
        *p++ = (u_char) blen;
    } else {
        *p++ = 126;
        *p++ = (u_char) (blen >> 8);
        *p++ = (u_char) blen;
    }

    memcpy(p, body, blen);
    p += blen;
    len = (uint32_t) (p - msg - 4);
    memcpy(msg, &len, 4);

    for (i = 0; i < pd_bl_workers; i++) {
        /* blocking: a worker behind holds the trigger back */
        for (off = 0; off < len + 4; off += (size_t) n) {
            n = write(pd_bl_pipes[i][1], msg + off, len + 4 - off);
            if (n == -1) {
                if (errno == EINTR) {
                    n = 0;
                    continue;
                }
                return -1;
            }
        }
    }

    return 0;
}

typedef struct {
    u_char    buf[65536];
    size_t    len;
} pd_bl_ctl_t;

/* complete requests in the control connection's buffer: POST -> 200 */
static int
pd_bl_ctl_requests(int fd, pd_bl_ctl_t *cc)
{
    static const char  ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    static const char  bad[] = "HTTP/1.1 400 Bad Request\r\n"
                               "Content-Length: 0\r\n\r\n";
    u_char            *s, *end, *he;
    char              *cl;
    size_t             blen;
    int                rc;

    s = cc->buf;
    end = cc->buf + cc->len;

    while (s < end) {
        he = memmem(s, (size_t) (end - s), "\r\n\r\n", 4);
        if (he == NULL) {
            break;
        }

        *he = '\0';
        cl = strcasestr((char *) s, "\r\nContent-Length:");
        blen = cl ? strtoul(cl + 17, NULL, 10) : 0;
        *he = '\r';

        if ((size_t) (end - (he + 4)) < blen) {
            break;
        }

        rc = pd_bl_publish(he + 4, blen);

        if (rc == 0) {
            if (write(fd, ok, sizeof(ok) - 1) < 0) {
                return -1;
            }
        } else if (write(fd, bad, sizeof(bad) - 1) < 0) {
            return -1;
        }

        s = he + 4 + blen;
    }

    memmove(cc->buf, s, (size_t) (end - s));
    cc->len = (size_t) (end - s);

    return cc->len == sizeof(cc->buf) ? -1 : 0;
}

static void
pd_bl_control(void)
{
    struct epoll_event   evs[64];
    pd_bl_ctl_t         *ctl[1024];
    ssize_t              r;
    int                  ls, ep, i, n, fd;

    memset(ctl, 0, sizeof(ctl));
    ls = pd_bl_listen(pd_bl_ctl_port, 0);
    ep = epoll_create1(EPOLL_CLOEXEC);

    if (ls == -1 || ep == -1) {
        perror("baseline: control port");
        return;
    }

    evs[0].events = EPOLLIN;
    evs[0].data.fd = ls;
    (void) epoll_ctl(ep, EPOLL_CTL_ADD, ls, &evs[0]);

    while (!pd_bl_stop) {
        n = epoll_wait(ep, evs, 64, 500);

        for (i = 0; i < n; i++) {
            fd = evs[i].data.fd;

            if (fd == ls) {
                fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
                if (fd == -1) {
                    continue;
                }
                if (fd >= 1024 || (ctl[fd] = calloc(1, sizeof(pd_bl_ctl_t)))
                                  == NULL)
                {
                    close(fd);
                    continue;
                }
                evs[i].events = EPOLLIN;
                evs[i].data.fd = fd;
                (void) epoll_ctl(ep, EPOLL_CTL_ADD, fd, &evs[i]);
                continue;
            }

            /* blocking socket: read what epoll says is there */
            r = read(fd, ctl[fd]->buf + ctl[fd]->len,
                     sizeof(ctl[fd]->buf) - ctl[fd]->len);

            if (r > 0) {
                ctl[fd]->len += (size_t) r;
                if (pd_bl_ctl_requests(fd, ctl[fd]) == 0) {
                    continue;
                }
            }

            (void) epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            close(fd);
            free(ctl[fd]);
            ctl[fd] = NULL;
        }
    }
}

int
main(int argc, char **argv)
{
    struct sigaction  sa;
    struct rlimit     rl;
    int               ch, i;

    while ((ch = getopt(argc, argv, "l:c:w:a:b:")) != -1) {
        switch (ch) {
        case 'b': pd_bl_batch = atoi(optarg); break;
        case 'l': pd_bl_port = atoi(optarg); break;
        case 'c': pd_bl_ctl_port = atoi(optarg); break;
        case 'w': pd_bl_workers = atoi(optarg); break;
        case 'a': pd_bl_addr = optarg; break;
        default:
            fprintf(stderr, "usage: baseline -l PORT -c CTLPORT "
                    "[-w WORKERS] [-a ADDR] [-b BATCH]\n");
            return 2;
        }
    }

    if (pd_bl_port <= 0 || pd_bl_ctl_port <= 0 || pd_bl_workers < 1
        || pd_bl_workers > PD_BL_MAX_WORKERS || pd_bl_batch < 1
        || pd_bl_batch > PD_BL_MAX_BATCH)
    {
        fprintf(stderr, "usage: baseline -l PORT -c CTLPORT [-w WORKERS]\n");
        return 2;
    }

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = pd_bl_on_signal;
    (void) sigaction(SIGTERM, &sa, NULL);
    (void) sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (i = 0; i < pd_bl_workers; i++) {
        if (pipe2(pd_bl_pipes[i], O_CLOEXEC) == -1) {
            perror("baseline: pipe");
            return 1;
        }
        (void) fcntl(pd_bl_pipes[i][1], F_SETPIPE_SZ, 1024 * 1024);
    }

    for (i = 0; i < pd_bl_workers; i++) {
        pd_bl_pids[i] = fork();

        if (pd_bl_pids[i] == 0) {
            pd_bl_worker(i);
        }

        if (pd_bl_pids[i] == -1) {
            perror("baseline: fork");
            return 1;
        }
    }

    for (i = 0; i < pd_bl_workers; i++) {
        close(pd_bl_pipes[i][0]);
    }

    pd_bl_control();

    for (i = 0; i < pd_bl_workers; i++) {
        close(pd_bl_pipes[i][1]);
        (void) kill(pd_bl_pids[i], SIGTERM);
        (void) waitpid(pd_bl_pids[i], NULL, 0);
    }

    return 0;
}
