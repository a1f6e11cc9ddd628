/*
 * pd_wakeup.c: the host's floor for the paced unicast latency.  The
 * paced run's path is three processes and two loopback hops (the
 * publisher writes a request, a pushd worker wakes and writes a frame, a
 * receiver wakes and reads it); this is the same path with nothing in
 * it: a sender writes 16-byte records (the send time and a number) at
 * the paced rate, in the load generator's rhythm (whatever is due, then
 * a 1 ms poll), a relay process copies them from one TCP connection to
 * another, and a receiver process takes each record's latency from the
 * send time (CLOCK_MONOTONIC is the host's, across processes).  No
 * parsing, no store, no lock: what it measures is the loopback and the
 * scheduler's wake-ups on this host, so a pushd tail no better than
 * this one is the machine's, not pushd's.
 *
 *   wakeup [-r RATE] [-d SECONDS] [-l LABEL]
 *
 * Prints one JSON line: label, rate, sent, received, lost, p50/p99/
 * p999/max in ms, and how many records took over 2 ms and over 50 ms.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>

typedef struct {
    uint64_t  sent_ns;
    uint64_t  seq;
} pd_wk_rec_t;

static uint64_t
pd_wk_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static void
pd_wk_die(const char *what)
{
    fprintf(stderr, "wakeup: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* a TCP socket, and in *sin the loopback address with port (0: any) */
static int
pd_wk_socket(struct sockaddr_in *sin, uint16_t port)
{
    int  fd;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1) {
        pd_wk_die("socket");
    }

    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin->sin_port = htons(port);

    return fd;
}

/* records leave as they are written, as pushd's frames do */
static void
pd_wk_nodelay(int fd)
{
    int  one = 1;

    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* a listener on 127.0.0.1 and an ephemeral port; the port in *port */
static int
pd_wk_listen(uint16_t *port)
{
    struct sockaddr_in  sin;
    socklen_t           len = sizeof(sin);
    int                 fd;

    fd = pd_wk_socket(&sin, 0);

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
        || listen(fd, 1) == -1
        || getsockname(fd, (struct sockaddr *) &sin, &len) == -1)
    {
        pd_wk_die("listen");
    }

    *port = ntohs(sin.sin_port);
    return fd;
}

static int
pd_wk_connect(uint16_t port)
{
    struct sockaddr_in  sin;
    int                 fd;

    fd = pd_wk_socket(&sin, port);

    if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1) {
        pd_wk_die("connect");
    }

    pd_wk_nodelay(fd);
    return fd;
}

static int
pd_wk_accept(int lfd)
{
    int  fd;

    fd = accept(lfd, NULL, NULL);
    if (fd == -1) {
        pd_wk_die("accept");
    }

    pd_wk_nodelay(fd);
    close(lfd);
    return fd;
}

static void
pd_wk_write_all(int fd, const char *p, size_t n)
{
    ssize_t  w;

    while (n) {
        w = write(fd, p, n);
        if (w == -1) {
            if (errno == EINTR) {
                continue;
            }
            pd_wk_die("write");
        }
        p += w;
        n -= (size_t) w;
    }
}

/* the relay: what comes in on one connection goes out on the other */
static void
pd_wk_relay(int lfd, uint16_t out_port)
{
    char     buf[65536];
    ssize_t  n;
    int      in, out;

    in = pd_wk_accept(lfd);
    out = pd_wk_connect(out_port);

    for ( ;; ) {
        n = read(in, buf, sizeof(buf));
        if (n == 0) {
            break;
        }
        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            pd_wk_die("relay read");
        }
        pd_wk_write_all(out, buf, (size_t) n);
    }

    close(out);
    exit(0);
}

static int
pd_wk_cmp(const void *a, const void *b)
{
    uint64_t  x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return (x > y) - (x < y);
}

static double
pd_wk_pct(const uint64_t *v, size_t n, double q)
{
    size_t  i;

    if (n == 0) {
        return 0;
    }

    i = (size_t) (q * (double) (n - 1) + 0.5);
    return (double) v[i] / 1e6;
}

/* the receiver: each record's latency; the figures once the relay is
 * done, written to fd out for the sender to print */
static void
pd_wk_receive(int lfd, size_t max, int out)
{
    pd_wk_rec_t  rec;
    uint64_t    *lat, now, over2 = 0, over50 = 0, next = 0, disorder = 0;
    size_t       n = 0, have = 0;
    char         buf[65536 + sizeof(pd_wk_rec_t)], line[512];
    ssize_t      r;
    int          fd, len;

    lat = calloc(max, sizeof(uint64_t));
    if (lat == NULL) {
        pd_wk_die("calloc");
    }

    fd = pd_wk_accept(lfd);

    for ( ;; ) {
        r = read(fd, buf + have, sizeof(buf) - have);
        if (r == 0) {
            break;
        }
        if (r == -1) {
            if (errno == EINTR) {
                continue;
            }
            pd_wk_die("receiver read");
        }

        now = pd_wk_now();
        have += (size_t) r;

        while (have >= sizeof(rec)) {
            memcpy(&rec, buf, sizeof(rec));
            memmove(buf, buf + sizeof(rec), have - sizeof(rec));
            have -= sizeof(rec);

            if (rec.seq != next) {
                disorder++;
            }
            next = rec.seq + 1;

            if (n < max) {
                lat[n++] = now - rec.sent_ns;
            }
            if (now - rec.sent_ns > 2000000) {
                over2++;
            }
            if (now - rec.sent_ns > 50000000) {
                over50++;
            }
        }
    }

    qsort(lat, n, sizeof(uint64_t), pd_wk_cmp);

    len = snprintf(line, sizeof(line),
                   "\"received\":%zu,\"disorder\":%lu,\"p50_ms\":%.3f,"
                   "\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
                   "\"over_2ms\":%lu,\"over_50ms\":%lu",
                   n, (unsigned long) disorder, pd_wk_pct(lat, n, 0.50),
                   pd_wk_pct(lat, n, 0.99), pd_wk_pct(lat, n, 0.999),
                   n ? (double) lat[n - 1] / 1e6 : 0,
                   (unsigned long) over2, (unsigned long) over50);

    pd_wk_write_all(out, line, (size_t) len);
    exit(0);
}

int
main(int argc, char **argv)
{
    pd_wk_rec_t  rec;
    uint64_t     start, end, now, sent = 0;
    double       rate = 8000, seconds = 5;
    const char  *label = "wakeup";
    uint16_t     relay_port, recv_port;
    pid_t        relay, recv;
    char         res[512];
    ssize_t      n;
    size_t       have = 0;
    int          c, lfd_relay, lfd_recv, fd, pfd[2], status;

    while ((c = getopt(argc, argv, "r:d:l:")) != -1) {
        switch (c) {
        case 'r': rate = atof(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'l': label = optarg; break;
        default:
            fprintf(stderr, "usage: wakeup [-r RATE] [-d SECONDS] "
                    "[-l LABEL]\n");
            return 2;
        }
    }

    if (rate <= 0 || seconds <= 0) {
        fprintf(stderr, "wakeup: the rate and the duration must be > 0\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);

    lfd_relay = pd_wk_listen(&relay_port);
    lfd_recv = pd_wk_listen(&recv_port);

    if (pipe(pfd) == -1) {
        pd_wk_die("pipe");
    }

    recv = fork();
    if (recv == 0) {
        close(lfd_relay);
        close(pfd[0]);
        pd_wk_receive(lfd_recv, (size_t) (rate * seconds) + 1024, pfd[1]);
    }
    close(lfd_recv);
    close(pfd[1]);

    relay = fork();
    if (relay == 0) {
        close(pfd[0]);
        pd_wk_relay(lfd_relay, recv_port);
    }
    close(lfd_relay);

    if (recv == -1 || relay == -1) {
        pd_wk_die("fork");
    }

    fd = pd_wk_connect(relay_port);

    start = pd_wk_now();
    end = start + (uint64_t) (seconds * 1e9);

    /* the load generator's rhythm: what is due, then a 1 ms poll */
    while ((now = pd_wk_now()) < end) {
        while ((double) sent < rate * (double) (now - start) / 1e9) {
            rec.seq = sent++;
            rec.sent_ns = pd_wk_now();
            pd_wk_write_all(fd, (const char *) &rec, sizeof(rec));
        }

        (void) poll(NULL, 0, 1);
    }

    close(fd);

    while ((n = read(pfd[0], res + have, sizeof(res) - 1 - have)) > 0) {
        have += (size_t) n;
    }
    res[have] = '\0';

    (void) waitpid(relay, &status, 0);
    (void) waitpid(recv, &status, 0);

    if (have == 0) {
        fprintf(stderr, "wakeup: the receiver reported nothing\n");
        return 1;
    }

    printf("{\"label\":\"%s\",\"rate\":%.0f,\"sent\":%lu,%s,"
           "\"lost\":%ld}\n", label, rate, (unsigned long) sent, res,
           (long) sent - atol(strstr(res, "\"received\":") + 11));

    return 0;
}
