/*
 * pd_lg_main.c: the load generator: options, the children holding the
 * subscriber connections, and the parent driving a scenario (idle,
 * fanout, unicast, storm) against pushd, nginx+nchan or the bare server;
 * prints one JSON object of results on stdout.
 */

#define _GNU_SOURCE

#include "pd_lg.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

pd_lg_opts_t    pd_lg_opts;
pd_lg_board_t  *pd_lg_board;
pd_lg_sub_t    *pd_lg_subs;
uint32_t       *pd_lg_first;

static pid_t     pd_lg_children[PD_LG_MAX_PROCS];
static int       pd_lg_nchildren;
static uint64_t  pd_lg_seq;
static int       pd_lg_connected_n;

typedef struct {
    uint64_t   t0;
    uint64_t   t_conn;
    double     connect_s;
    int64_t    pss0;
    int64_t    pss1;
    int64_t    shm0;
    int64_t    shm1;
    int64_t    pss_half;
    int64_t    shm_half;
    int        half;
    int64_t    slab0;
    int64_t    slab1;
    uint64_t   cpu_user;
    uint64_t   cpu_sys;
    int        cpu_valid;
    uint64_t   lg_user;        /* this load generator's own, all procs */
    uint64_t   lg_sys;
    uint64_t   run_start;
    uint64_t   run_end;
    uint64_t   received0;
    double     extra[8];
    int        zones;        /* pushd's /v1/stats zones were read */
    double     reg_entry;    /* bytes of one register entry */
    double     reg_bucket;   /* its hash chain heads per entry */
    double     reg_ip;       /* a per-address count and its chain head */
    double     reg_used;
    double     reg_capacity;
    double     reg_ips_used;
    double     reg_bytes;
    double     store_bytes;
} pd_lg_result_t;

static pd_lg_result_t  pd_lg_res;

static void
pd_lg_usage(void)
{
    fprintf(stderr,
"usage: loadgen --target pushd|nchan|bare --scenario idle|fanout|unicast|"
"storm\n"
"  [--host 127.0.0.1] --port P --api-port A [--conns N] [--procs P]\n"
"  [--concurrency C] [--secret S] [--api-key K] [--app A]\n"
"  [--duration S] [--msg-size B] [--window W] [--pipeline D]\n"
"  [--pubconns N] [--rate R] [--uids U] [--qos Q] [--drain S]\n"
"  [--settle S] [--pids \"PID ...\"] [--label L] [--tls]\n");
    exit(2);
}

static int
pd_lg_word(const char *s, const char **words, int n)
{
    int  i;

    for (i = 0; i < n; i++) {
        if (strcmp(s, words[i]) == 0) {
            return i;
        }
    }

    fprintf(stderr, "loadgen: unknown value \"%s\"\n", s);
    pd_lg_usage();
    return -1;
}

static void
pd_lg_parse_pids(const char *s)
{
    char  *end;
    long   v;

    while (*s && pd_lg_opts.npids < PD_LG_MAX_PIDS) {
        while (*s == ' ' || *s == ',') {
            s++;
        }
        if (*s == '\0') {
            break;
        }
        v = strtol(s, &end, 10);
        if (end == s) {
            pd_lg_usage();
        }
        pd_lg_opts.pids[pd_lg_opts.npids++] = (pid_t) v;
        s = end;
    }
}

static void
pd_lg_options(int argc, char **argv)
{
    static const char  *targets[] = { "pushd", "nchan", "bare" };
    static const char  *scens[] = { "idle", "fanout", "unicast", "storm" };
    static struct option  lo[] = {
        { "target", 1, NULL, 't' }, { "scenario", 1, NULL, 's' },
        { "host", 1, NULL, 'H' }, { "port", 1, NULL, 'p' },
        { "api-port", 1, NULL, 'a' }, { "conns", 1, NULL, 'n' },
        { "procs", 1, NULL, 'P' }, { "concurrency", 1, NULL, 'C' },
        { "secret", 1, NULL, 'S' }, { "api-key", 1, NULL, 'K' },
        { "app", 1, NULL, 'A' }, { "duration", 1, NULL, 'd' },
        { "msg-size", 1, NULL, 'm' }, { "window", 1, NULL, 'w' },
        { "pipeline", 1, NULL, 'D' }, { "pubconns", 1, NULL, 'c' },
        { "rate", 1, NULL, 'r' }, { "uids", 1, NULL, 'u' },
        { "qos", 1, NULL, 'q' }, { "drain", 1, NULL, 'T' },
        { "settle", 1, NULL, 'e' }, { "pids", 1, NULL, 'i' },
        { "label", 1, NULL, 'l' }, { "tls", 0, NULL, 'L' },
        { NULL, 0, NULL, 0 }
    };
    pd_lg_opts_t  *o = &pd_lg_opts;
    long           ncpu;
    int            ch;

    ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    o->target = -1;
    o->scenario = -1;
    o->host = "127.0.0.1";
    o->conns = 10000;
    o->procs = ncpu > 0 ? (int) ncpu : 1;
    o->concurrency = 0;
    o->secret = "bench-secret-0123456789abcdef";
    o->api_key = "bench-key-0123456789abcdef";
    o->app = "bench";
    o->duration = 5;
    o->msg_size = 256;
    o->window = 8;
    o->pipeline = 32;
    o->pubconns = 16;
    o->rate = 0;
    o->uids = 1;
    o->qos = 1;
    o->drain = 5;
    o->settle = 1;
    o->label = "";

    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 't': o->target = pd_lg_word(optarg, targets, 3); break;
        case 's': o->scenario = pd_lg_word(optarg, scens, 4); break;
        case 'H': o->host = optarg; break;
        case 'p': o->port = atoi(optarg); break;
        case 'a': o->api_port = atoi(optarg); break;
        case 'n': o->conns = atoi(optarg); break;
        case 'P': o->procs = atoi(optarg); break;
        case 'C': o->concurrency = atoi(optarg); break;
        case 'S': o->secret = optarg; break;
        case 'K': o->api_key = optarg; break;
        case 'A': o->app = optarg; break;
        case 'd': o->duration = atof(optarg); break;
        case 'm': o->msg_size = atoi(optarg); break;
        case 'w': o->window = atoi(optarg); break;
        case 'D': o->pipeline = atoi(optarg); break;
        case 'c': o->pubconns = atoi(optarg); break;
        case 'r': o->rate = atof(optarg); break;
        case 'u': o->uids = atoi(optarg); break;
        case 'q': o->qos = atoi(optarg); break;
        case 'T': o->drain = atof(optarg); break;
        case 'e': o->settle = atof(optarg); break;
        case 'i': pd_lg_parse_pids(optarg); break;
        case 'l': o->label = optarg; break;
        case 'L': o->tls = 1; break;
        default: pd_lg_usage();
        }
    }

    if (o->target < 0 || o->scenario < 0 || o->port <= 0 || o->conns < 1
        || o->msg_size < 48 || o->msg_size > 8192 || o->window < 1
        || o->pipeline < 1 || o->pipeline > PD_LG_MAX_PIPELINE
        || o->pubconns < 1 || o->pubconns > PD_LG_MAX_PUBS
        || o->uids < 1 || o->uids > PD_LG_MAX_UIDS || o->uids > o->conns
        || (o->scenario != PD_LG_IDLE && o->api_port <= 0))
    {
        pd_lg_usage();
    }

    if (o->scenario == PD_LG_STORM && o->target != PD_LG_PUSHD) {
        fprintf(stderr, "loadgen: the storm needs pushd's stored "
                "messages\n");
        exit(2);
    }

    if (o->procs < (o->conns + PD_LG_PER_PROC - 1) / PD_LG_PER_PROC) {
        o->procs = (o->conns + PD_LG_PER_PROC - 1) / PD_LG_PER_PROC;
    }

    if (o->procs > o->conns) {
        o->procs = o->conns;
    }

    if (o->procs > PD_LG_MAX_PROCS) {
        fprintf(stderr, "loadgen: too many connections\n");
        exit(2);
    }

    /*
     * 2,000 handshakes in flight in all: more only queue up in the
     * server's backlog and run into its handshake timeout on a large run
     */
    if (o->concurrency <= 0) {
        o->concurrency = 2000 / o->procs > 16 ? 2000 / o->procs : 16;
    }
}

static void
pd_lg_raise_nofile(void)
{
    struct rlimit  rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void
pd_lg_spawn(void)
{
    int    i, lo, hi, n, procs;
    pid_t  pid;

    n = pd_lg_opts.conns;
    procs = pd_lg_opts.procs;

    for (i = 0; i < procs; i++) {
        lo = (int) ((int64_t) n * i / procs);
        hi = (int) ((int64_t) n * (i + 1) / procs);

        pid = fork();

        if (pid == -1) {
            perror("loadgen: fork");
            exit(1);
        }

        if (pid == 0) {
            (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
            pd_lg_child(i, lo, hi);
            _exit(0);
        }

        pd_lg_children[pd_lg_nchildren++] = pid;
    }
}

static void
pd_lg_set_phase(int phase)
{
    __atomic_store_n(&pd_lg_board->ready, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pd_lg_board->phase, phase, __ATOMIC_RELEASE);
}

/* until every child reports this phase done; 0, or -1 on timeout */
static int
pd_lg_wait_ready(double seconds)
{
    uint64_t  deadline;

    deadline = pd_lg_now() + (uint64_t) (seconds * 1e9);

    while (__atomic_load_n(&pd_lg_board->ready, __ATOMIC_ACQUIRE)
           < (uint64_t) pd_lg_nchildren)
    {
        if (pd_lg_now() > deadline) {
            return -1;
        }
        (void) usleep(2000);
    }

    return 0;
}

static void
pd_lg_finish(void)
{
    int  i;

    pd_lg_set_phase(PD_LG_PH_EXIT);

    for (i = 0; i < pd_lg_nchildren; i++) {
        (void) waitpid(pd_lg_children[i], NULL, 0);
    }
}

static uint64_t
pd_lg_received(void)
{
    return __atomic_load_n(&pd_lg_board->received, __ATOMIC_RELAXED);
}

/* --- the requests ------------------------------------------------------ */

static int
pd_lg_http_post(u_char *buf, size_t size, const char *path,
    const u_char *body, size_t blen)
{
    int  n;

    if (pd_lg_opts.target == PD_LG_PUSHD) {
        n = snprintf((char *) buf, size, "POST %s HTTP/1.1\r\n"
                     "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n", path,
                     pd_lg_opts.api_key, blen);
    } else {
        n = snprintf((char *) buf, size, "POST %s HTTP/1.1\r\n"
                     "Host: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n", path, blen);
    }

    if (n < 0 || (size_t) n + blen > size) {
        return -1;
    }

    memcpy(buf + n, body, blen);

    return n + (int) blen;
}

static int
pd_lg_next_fanout(u_char *buf, size_t size, uint64_t *seq, int *owed)
{
    u_char  body[9000], data[8200];
    size_t  dl;
    int     bl;

    *seq = pd_lg_seq++;
    *owed = pd_lg_connected_n;
    dl = pd_lg_data(data, *seq, pd_lg_now());

    if (pd_lg_opts.target == PD_LG_PUSHD) {
        bl = snprintf((char *) body, sizeof(body),
                      "{\"app\":\"%s\",\"qos\":0,\"ttl\":0,"
                      "\"rate\":100000000,\"data\":%.*s}",
                      pd_lg_opts.app, (int) dl, (char *) data);
        return pd_lg_http_post(buf, size, "/v1/broadcast", body,
                               (size_t) bl);
    }

    return pd_lg_http_post(buf, size, pd_lg_opts.target == PD_LG_NCHAN
                           ? "/pub/all" : "/pub", data, dl);
}

/* uids for one push: distinct, spread from a random start */
static int
pd_lg_pick_uids(char *out, size_t size, uint32_t *first)
{
    uint32_t  n, k, start, step, u;
    int       len, w;

    n = (uint32_t) pd_lg_opts.conns;
    k = (uint32_t) pd_lg_opts.uids;
    start = (uint32_t) (pd_lg_rand() % n);
    step = n / k;
    len = 0;

    for (u = 0; u < k; u++) {
        w = snprintf(out + len, size - (size_t) len, "%s\"u%u\"",
                     u ? "," : "", (start + u * step) % n);
        if (w < 0 || (size_t) (len + w) >= size) {
            return -1;
        }
        len += w;
    }

    *first = start;

    return len;
}

static int
pd_lg_next_push(u_char *buf, size_t size, uint64_t *seq, int *owed,
    int storm)
{
    u_char    body[24000], data[8200];
    char      uids[12000], path[64];
    uint32_t  first;
    size_t    dl;
    int       bl, ul;

    *seq = pd_lg_seq++;
    *owed = pd_lg_opts.uids;
    dl = pd_lg_data(data, *seq, pd_lg_now());

    if (storm) {
        first = (uint32_t) *seq;
        ul = snprintf(uids, sizeof(uids), "\"u%u\"", first);
    } else {
        ul = pd_lg_pick_uids(uids, sizeof(uids), &first);
    }

    if (ul < 0) {
        return -1;
    }

    /* the receivers check that a message came to a uid it was for */
    if (*seq < PD_LG_SEQ_MAX) {
        __atomic_store_n(&pd_lg_first[*seq], first, __ATOMIC_RELEASE);
    }

    if (pd_lg_opts.target == PD_LG_PUSHD) {
        bl = snprintf((char *) body, sizeof(body),
                      "{\"app\":\"%s\",\"uids\":[%.*s],\"qos\":%d,"
                      "\"data\":%.*s}", pd_lg_opts.app, ul, uids,
                      pd_lg_opts.qos, (int) dl, (char *) data);
        return pd_lg_http_post(buf, size, "/v1/push", body, (size_t) bl);
    }

    /* nchan: one channel per subscriber, one message per request */
    *owed = 1;
    (void) snprintf(path, sizeof(path), "/pub/u%u", first);

    return pd_lg_http_post(buf, size, path, data, dl);
}

static int
pd_lg_next_unicast(u_char *buf, size_t size, uint64_t *seq, int *owed)
{
    return pd_lg_next_push(buf, size, seq, owed, 0);
}

static int
pd_lg_next_storm(u_char *buf, size_t size, uint64_t *seq, int *owed)
{
    if (pd_lg_seq >= (uint64_t) pd_lg_connected_n) {
        return -1;
    }

    return pd_lg_next_push(buf, size, seq, owed, 1);
}

/* --- the phases -------------------------------------------------------- */

/*
 * Opens permille/1000 of the connections: a new phase, or more of the
 * same one (phase 0).  The time from the start to the last session up
 * adds to connect_s.
 */
static int
pd_lg_connect_phase(int phase, int permille)
{
    double    limit;
    uint64_t  t0;

    pd_lg_board->last_conn_ns = 0;
    t0 = pd_lg_now();
    pd_lg_res.t0 = pd_lg_res.t0 ? pd_lg_res.t0 : t0;

    __atomic_store_n(&pd_lg_board->ready, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pd_lg_board->cap_permille, permille,
                     __ATOMIC_RELEASE);

    if (phase != 0) {
        pd_lg_set_phase(phase);
    }

    limit = 60 + pd_lg_opts.conns / 1000.0;

    if (pd_lg_wait_ready(limit) != 0) {
        fprintf(stderr, "loadgen: connections not settled after %.0f s\n",
                limit);
    }

    pd_lg_connected_n = (int) __atomic_load_n(&pd_lg_board->connected,
                                              __ATOMIC_RELAXED);
    pd_lg_res.t_conn = pd_lg_board->last_conn_ns;
    pd_lg_res.connect_s += pd_lg_res.t_conn > t0
                           ? (pd_lg_res.t_conn - t0) / 1e9 : 0;

    if (permille < 1000) {
        return pd_lg_connected_n > 0 ? 0 : -1;
    }

    if (pd_lg_connected_n < pd_lg_opts.conns) {
        fprintf(stderr, "loadgen: %d of %d connections up (%lu failed)\n",
                pd_lg_connected_n, pd_lg_opts.conns,
                (unsigned long) pd_lg_board->failed);
    }

    return pd_lg_connected_n > 0 ? 0 : -1;
}

/* the load generator's own ticks: this process and its subscribers */
static void
pd_lg_self_ticks(uint64_t *u, uint64_t *s)
{
    pid_t  pids[PD_LG_MAX_PROCS + 1];
    int    i;

    pids[0] = getpid();
    for (i = 0; i < pd_lg_nchildren; i++) {
        pids[i + 1] = pd_lg_children[i];
    }

    (void) pd_lg_cpu_ticks(pids, pd_lg_nchildren + 1, u, s);
}

static void
pd_lg_cpu_begin(void)
{
    uint64_t  u, s;

    pd_lg_self_ticks(&pd_lg_res.lg_user, &pd_lg_res.lg_sys);

    pd_lg_res.cpu_valid = pd_lg_cpu_ticks(pd_lg_opts.pids,
                                          pd_lg_opts.npids, &u, &s)
                          == pd_lg_opts.npids && pd_lg_opts.npids > 0;
    pd_lg_res.cpu_user = u;
    pd_lg_res.cpu_sys = s;
}

/* a server process that died (and was respawned) spoils the figure */
static void
pd_lg_cpu_end(void)
{
    uint64_t  u, s;

    if (pd_lg_cpu_ticks(pd_lg_opts.pids, pd_lg_opts.npids, &u, &s)
        != pd_lg_opts.npids)
    {
        pd_lg_res.cpu_valid = 0;
    }

    pd_lg_res.cpu_user = u - pd_lg_res.cpu_user;
    pd_lg_res.cpu_sys = s - pd_lg_res.cpu_sys;

    pd_lg_self_ticks(&u, &s);
    pd_lg_res.lg_user = u - pd_lg_res.lg_user;
    pd_lg_res.lg_sys = s - pd_lg_res.lg_sys;
}

/*
 * Waits for the answers still in flight, then for the deliveries the
 * accepted messages owe, until none came for opts.drain seconds.
 */
static void
pd_lg_drain(uint64_t owed)
{
    uint64_t  last, seen, now;

    last = pd_lg_now();

    while (pd_lg_pub_outstanding() > 0
           && pd_lg_now() - last < (uint64_t) (pd_lg_opts.drain * 1e9))
    {
        (void) pd_lg_pub_poll(1);
    }

    if (owed == 0) {
        owed = pd_lg_pubstat.expected;
    }

    seen = pd_lg_received();
    last = pd_lg_now();

    while (pd_lg_received() - pd_lg_res.received0 < owed) {
        (void) pd_lg_pub_poll(2);
        now = pd_lg_now();

        if (pd_lg_received() != seen) {
            seen = pd_lg_received();
            last = now;
        }

        if (now - last > (uint64_t) (pd_lg_opts.drain * 1e9)) {
            break;
        }
    }
}

static void
pd_lg_run_fanout(void)
{
    uint64_t  end, window, now, last_rx, stall;

    window = (uint64_t) pd_lg_opts.window * (uint64_t) pd_lg_connected_n;
    pd_lg_res.received0 = pd_lg_received();
    pd_lg_cpu_begin();
    pd_lg_res.run_start = pd_lg_now();
    end = pd_lg_res.run_start + (uint64_t) (pd_lg_opts.duration * 1e9);
    last_rx = 0;
    stall = pd_lg_now();

    while ((now = pd_lg_now()) < end) {
        while (pd_lg_pub_can_send()
               && pd_lg_pubstat.sent * (uint64_t) pd_lg_connected_n
                  < pd_lg_received() - pd_lg_res.received0 + window)
        {
            if (pd_lg_pub_send(pd_lg_next_fanout) != 0) {
                break;
            }
        }

        (void) pd_lg_pub_poll(1);

        if (pd_lg_received() != last_rx) {
            last_rx = pd_lg_received();
            stall = now;

        } else if (now - stall > (uint64_t) (pd_lg_opts.drain * 1e9)) {
            fprintf(stderr, "loadgen: no delivery for %.0f s: stopped\n",
                    pd_lg_opts.drain);
            break;
        }
    }

    pd_lg_drain(0);
    pd_lg_res.run_end = pd_lg_board->last_rx_ns;
    pd_lg_cpu_end();
}

static void
pd_lg_run_unicast(void)
{
    uint64_t  end, now;
    double    allowed;

    pd_lg_res.received0 = pd_lg_received();
    pd_lg_cpu_begin();
    pd_lg_res.run_start = pd_lg_now();
    __atomic_store_n(&pd_lg_board->run_start_ns, pd_lg_res.run_start,
                     __ATOMIC_RELAXED);
    end = pd_lg_res.run_start + (uint64_t) (pd_lg_opts.duration * 1e9);

    while ((now = pd_lg_now()) < end) {
        allowed = pd_lg_opts.rate > 0
                  ? pd_lg_opts.rate * (double) (now - pd_lg_res.run_start)
                    / 1e9
                  : 1e18;

        while (pd_lg_pub_can_send() && (double) pd_lg_pubstat.sent < allowed
               && pd_lg_seq < PD_LG_SEQ_MAX)
        {
            if (pd_lg_pub_send(pd_lg_next_unicast) != 0) {
                break;
            }
        }

        /* every request in flight: wait for an answer (on one core of
         * two, a spinning publisher takes what the servers need) */
        (void) pd_lg_pub_poll(pd_lg_opts.rate > 0 || !pd_lg_pub_can_send()
                              ? 1 : 0);
    }

    pd_lg_drain(0);
    pd_lg_res.run_end = pd_lg_board->last_rx_ns;
    pd_lg_cpu_end();
}

static void
pd_lg_run_storm(void)
{
    uint64_t  t;

    /* everyone goes offline, then gets one stored message */
    pd_lg_set_phase(PD_LG_PH_CLOSE);
    (void) pd_lg_wait_ready(60);

    t = pd_lg_now();

    while (pd_lg_seq < (uint64_t) pd_lg_connected_n
           || pd_lg_pub_outstanding() > 0)
    {
        while (pd_lg_pub_can_send()
               && pd_lg_seq < (uint64_t) pd_lg_connected_n)
        {
            if (pd_lg_pub_send(pd_lg_next_storm) != 0) {
                break;
            }
        }

        (void) pd_lg_pub_poll(1);

        if (pd_lg_now() - t > 120 * 1000000000ULL) {
            break;
        }
    }

    pd_lg_res.extra[0] = (pd_lg_now() - t) / 1e9;

    /* and everyone comes back at once */
    pd_lg_res.received0 = pd_lg_received();
    pd_lg_cpu_begin();
    pd_lg_res.run_start = pd_lg_now();
    pd_lg_board->last_rx_ns = 0;
    pd_lg_res.t0 = 0;
    pd_lg_res.connect_s = 0;

    (void) pd_lg_connect_phase(PD_LG_PH_RECONNECT, 1000);
    pd_lg_drain(pd_lg_pubstat.expected);

    pd_lg_res.run_end = pd_lg_board->last_rx_ns;
    pd_lg_cpu_end();
}

/* --- the report -------------------------------------------------------- */

static uint64_t
pd_lg_lost(uint64_t *dups_out)
{
    uint64_t  lost, s;
    uint16_t  c, want;

    lost = 0;
    want = (uint16_t) pd_lg_opts.uids;

    for (s = 0; s < pd_lg_seq && s < PD_LG_SEQ_MAX; s++) {
        if (!pd_lg_accepted[s]) {
            continue;
        }

        c = pd_lg_board->counts[s];
        if (c < want) {
            lost += want - c;
        }
    }

    *dups_out = pd_lg_board->dups;

    return lost;
}

/*
 * pushd's register zone, with the connections held: what one connection
 * occupies in it.  Its pages may be in the PSS already (touched when
 * the zone was formatted, or by this connection): the report counts the
 * PSS outside shared memory plus these bytes, so each byte counts once.
 */
static void
pd_lg_read_zones(void)
{
    static char  buf[256 * 1024];
    double       cap, buckets, bb, ipcap, ipb, ipe, used, more;

    if (pd_lg_opts.target != PD_LG_PUSHD || pd_lg_opts.api_port <= 0
        || pd_lg_http_get("/v1/stats", buf, sizeof(buf)) < 0)
    {
        return;
    }

    cap = pd_lg_json_num(buf, "register", "capacity");
    buckets = pd_lg_json_num(buf, "register", "buckets");
    bb = pd_lg_json_num(buf, "register", "bucket_bytes");
    ipcap = pd_lg_json_num(buf, "register", "ips_capacity");
    ipb = pd_lg_json_num(buf, "register", "ip_buckets");
    ipe = pd_lg_json_num(buf, "register", "ip_entry_bytes");

    if (cap <= 0 || buckets <= 0 || bb <= 0 || ipcap <= 0 || ipb <= 0
        || ipe <= 0)
    {
        fprintf(stderr, "loadgen: no register zone in /v1/stats\n");
        return;
    }

    pd_lg_res.zones = 1;
    pd_lg_res.reg_entry = pd_lg_json_num(buf, "register", "entry_bytes");

    /* a connection whose uid and device are long takes a second slot:
     * the mean slots per connection (none before more_used existed) */
    used = pd_lg_json_num(buf, "register", "used");
    more = pd_lg_json_num(buf, "register", "more_used");

    if (used > 0 && more > 0) {
        pd_lg_res.reg_entry *= (used + more) / used;
    }

    pd_lg_res.reg_bucket = buckets * bb / cap;
    pd_lg_res.reg_ip = ipe + ipb * bb / ipcap;
    pd_lg_res.reg_used = pd_lg_json_num(buf, "register", "used");
    pd_lg_res.reg_capacity = cap;
    pd_lg_res.reg_ips_used = pd_lg_json_num(buf, "register", "ips_used");
    pd_lg_res.reg_bytes = pd_lg_json_num(buf, "register", "bytes");
    pd_lg_res.store_bytes = pd_lg_json_num(buf, "store", "bytes");
}

/*
 * Idle memory.  pss_per_conn_b: all processes' PSS growth over N;
 * marginal: the second half's growth over its connections, and the
 * same outside shared memory (private_marginal); zone_per_conn_b: the
 * register bytes one connection occupies (entry, its share of the hash
 * chain heads, and a per-address count as if each client came from its
 * own address: the worst case); counted_per_conn_b: the last two added,
 * each byte once; whole_pss_per_conn_b: every process's PSS with N held,
 * baseline included, over N.
 */
static void
pd_lg_report_idle(int conns)
{
    pd_lg_result_t  *r = &pd_lg_res;
    double           half, marginal, shm_marginal, zone;

    half = conns > r->half && r->pss_half > 0 ? conns - r->half : 0;
    marginal = half ? (r->pss1 - r->pss_half) * 1024.0 / half : -1;
    shm_marginal = half ? (r->shm1 - r->shm_half) * 1024.0 / half : -1;
    zone = r->zones ? r->reg_entry + r->reg_bucket + r->reg_ip : 0;

    printf(",\"pss_before_kb\":%ld,\"pss_after_kb\":%ld,"
           "\"pss_per_conn_b\":%.0f,\"shmem_per_conn_b\":%.0f,"
           "\"marginal_per_conn_b\":%.0f,"
           "\"marginal_shmem_per_conn_b\":%.0f,"
           "\"private_marginal_per_conn_b\":%.0f,"
           "\"whole_pss_per_conn_b\":%.0f,"
           "\"slab_per_conn_b\":%.0f",
           (long) r->pss0, (long) r->pss1,
           conns && r->pss0 >= 0 && r->pss1 >= 0
           ? (r->pss1 - r->pss0) * 1024.0 / conns : -1,
           conns && r->pss0 >= 0 && r->pss1 >= 0
           ? (r->shm1 - r->shm0) * 1024.0 / conns : -1,
           marginal, shm_marginal,
           half ? marginal - shm_marginal : -1,
           conns && r->pss1 >= 0 ? r->pss1 * 1024.0 / conns : -1,
           conns ? (r->slab1 - r->slab0) * 1024.0 / conns : -1);

    if (r->zones) {
        printf(",\"zone_entry_b\":%.0f,\"zone_bucket_b\":%.1f,"
               "\"zone_ip_b\":%.1f,\"zone_per_conn_b\":%.0f,"
               "\"counted_per_conn_b\":%.0f,\"register_used\":%.0f,"
               "\"register_capacity\":%.0f,\"register_ips_used\":%.0f,"
               "\"register_bytes\":%.0f,\"store_bytes\":%.0f",
               r->reg_entry, r->reg_bucket, r->reg_ip, zone,
               half ? marginal - shm_marginal + zone : -1, r->reg_used,
               r->reg_capacity, r->reg_ips_used, r->reg_bytes,
               r->store_bytes);
    }
}

/*
 * The fan-out, subscriber by subscriber: each whose session came up
 * must have received every accepted message once and in order.  A
 * subscriber is whole when its receipts are as many as the accepted
 * messages, their sequence numbers add up to theirs, and none came at
 * or before the one before it (strictly increasing: no duplicate, no
 * reordering).  lost and dups are summed per subscriber, so that one's
 * loss cannot hide another's duplicate.
 */
static void
pd_lg_subs_check(uint64_t *lost, uint64_t *dups)
{
    pd_lg_sub_t  *sub;
    uint64_t      want, sum, s, up, whole, shrt, over, dis, disorder;
    int           i;

    want = 0;
    sum = 0;

    for (s = 0; s < pd_lg_seq && s < PD_LG_SEQ_MAX; s++) {
        if (pd_lg_accepted[s]) {
            want++;
            sum += s;
        }
    }

    *lost = 0;
    *dups = 0;
    up = whole = shrt = over = dis = disorder = 0;

    for (i = 0; i < pd_lg_opts.conns; i++) {
        sub = &pd_lg_subs[i];

        if (!sub->up) {
            continue;
        }

        up++;
        disorder += sub->disorder;

        if (sub->rx < want) {
            *lost += want - sub->rx;
            shrt++;
        } else if (sub->rx > want) {
            *dups += sub->rx - want;
            over++;
        }

        if (sub->disorder) {
            dis++;
        }

        if (sub->rx == want && sub->seq_sum == sum && sub->disorder == 0) {
            whole++;
        }
    }

    printf(",\"subs\":%lu,\"subs_whole\":%lu,\"subs_short\":%lu,"
           "\"subs_over\":%lu,\"subs_disorder\":%lu,\"disorder\":%lu",
           (unsigned long) up, (unsigned long) whole, (unsigned long) shrt,
           (unsigned long) over, (unsigned long) dis,
           (unsigned long) disorder);
}

static void
pd_lg_report(void)
{
    static const char  *targets[] = { "pushd", "nchan", "bare" };
    static const char  *scens[] = { "idle", "fanout", "unicast", "storm" };
    pd_lg_opts_t       *o = &pd_lg_opts;
    pd_lg_hist_t        lat, cl;
    uint64_t            rx, lost, dups;
    double              secs, tick;
    int                 i, conns, cpu_ok;

    memset(&lat, 0, sizeof(lat));
    memset(&cl, 0, sizeof(cl));

    for (i = 0; i < pd_lg_nchildren; i++) {
        pd_lg_hist_merge(&lat, &pd_lg_board->lat[i]);
        pd_lg_hist_merge(&cl, &pd_lg_board->conn_lat[i]);
    }

    conns = pd_lg_connected_n;
    rx = pd_lg_received() - pd_lg_res.received0;
    cpu_ok = pd_lg_res.cpu_valid && rx > 0;
    secs = pd_lg_res.run_end > pd_lg_res.run_start
           ? (pd_lg_res.run_end - pd_lg_res.run_start) / 1e9 : 0;
    tick = (double) sysconf(_SC_CLK_TCK);

    printf("{\"label\":\"%s\",\"target\":\"%s\",\"scenario\":\"%s\","
           "\"conns\":%d,\"connected\":%d,\"failed\":%lu,\"retried\":%lu,"
           "\"refused_4xx\":%lu,\"refused_5xx\":%lu,"
           "\"server_closed\":%lu,\"connect_s\":%.3f,"
           "\"connect_rate\":%.0f,\"connect_p99_ms\":%.3f",
           o->label, targets[o->target], scens[o->scenario], o->conns,
           conns, (unsigned long) pd_lg_board->failed,
           (unsigned long) pd_lg_board->retried,
           (unsigned long) pd_lg_board->refused[4],
           (unsigned long) pd_lg_board->refused[5],
           (unsigned long) pd_lg_board->server_closed,
           pd_lg_res.connect_s,
           pd_lg_res.connect_s > 0 ? conns / pd_lg_res.connect_s : 0,
           pd_lg_hist_pct(&cl, 0.99));

    if (o->scenario == PD_LG_IDLE) {
        pd_lg_report_idle(conns);
    } else {
        if (o->scenario == PD_LG_FANOUT) {
            pd_lg_subs_check(&lost, &dups);
        } else {
            lost = pd_lg_lost(&dups);
        }

        printf(",\"sent\":%lu,\"accepted\":%lu,\"api_errors\":%lu,"
               "\"api_5xx\":%lu,\"api_4xx\":%lu,\"lost_in_flight\":%lu,"
               "\"expected\":%lu,\"received\":%lu,\"lost\":%lu,"
               "\"dups\":%lu,\"wrong_uid\":%lu,\"bad\":%lu,\"stale\":%lu,"
               "\"acks\":%lu,"
               "\"seconds\":%.3f,"
               "\"requests_per_s\":%.0f,\"deliveries_per_s\":%.0f,"
               "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
               "\"max_ms\":%.3f,\"api_p50_ms\":%.3f,\"api_p99_ms\":%.3f,"
               "\"cpu_user_s\":%.2f,\"cpu_sys_s\":%.2f,"
               "\"user_us_per_delivery\":%.3f,"
               "\"sys_us_per_delivery\":%.3f,"
               "\"lg_user_us_per_delivery\":%.3f,"
               "\"lg_sys_us_per_delivery\":%.3f",
               (unsigned long) pd_lg_pubstat.sent,
               (unsigned long) pd_lg_pubstat.accepted,
               (unsigned long) pd_lg_pubstat.errors,
               (unsigned long) pd_lg_pubstat.status[5],
               (unsigned long) pd_lg_pubstat.status[4],
               (unsigned long) pd_lg_pubstat.lost_in_flight,
               (unsigned long) pd_lg_pubstat.expected, (unsigned long) rx,
               (unsigned long) lost, (unsigned long) dups,
               (unsigned long) pd_lg_board->wrong_uid,
               (unsigned long) pd_lg_board->bad,
               (unsigned long) pd_lg_board->stale,
               (unsigned long) pd_lg_board->acks, secs,
               secs > 0 ? pd_lg_pubstat.accepted / secs : 0,
               secs > 0 ? rx / secs : 0,
               pd_lg_hist_pct(&lat, 0.5), pd_lg_hist_pct(&lat, 0.99),
               pd_lg_hist_pct(&lat, 0.999), lat.max / 1000.0,
               pd_lg_hist_pct(&pd_lg_pubstat.api, 0.5),
               pd_lg_hist_pct(&pd_lg_pubstat.api, 0.99),
               cpu_ok ? pd_lg_res.cpu_user / tick : -1,
               cpu_ok ? pd_lg_res.cpu_sys / tick : -1,
               cpu_ok ? pd_lg_res.cpu_user / tick * 1e6 / rx : -1,
               cpu_ok ? pd_lg_res.cpu_sys / tick * 1e6 / rx : -1,
               rx ? pd_lg_res.lg_user / tick * 1e6 / rx : -1,
               rx ? pd_lg_res.lg_sys / tick * 1e6 / rx : -1);
    }

    /* receipts in each second of publishing (the last may be partial) */
    if (o->scenario == PD_LG_UNICAST) {
        printf(",\"rx_per_s\":[");
        for (i = 0; i < (int) o->duration && i < PD_LG_MAX_SECS; i++) {
            printf("%s%lu", i ? "," : "",
                   (unsigned long) pd_lg_board->rx_sec[i]);
        }
        printf("]");
    }

    if (o->scenario == PD_LG_STORM) {
        printf(",\"offline_push_s\":%.3f,\"sessions_per_s\":%.0f,"
               "\"all_delivered_s\":%.3f",
               pd_lg_res.extra[0],
               pd_lg_res.connect_s > 0 ? conns / pd_lg_res.connect_s : 0,
               secs);
    }

    printf(",\"procs\":%d,\"window\":%d,\"pipeline\":%d,\"pubconns\":%d,"
           "\"rate\":%.0f,\"uids\":%d,\"msg_size\":%d,\"tls\":%s}\n",
           o->procs, o->window, o->pipeline, o->pubconns, o->rate, o->uids,
           o->msg_size, o->tls ? "true" : "false");
}

int
main(int argc, char **argv)
{
    pd_lg_opts_t  *o = &pd_lg_opts;
    int            npub;

    pd_lg_options(argc, argv);
    pd_lg_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    pd_lg_srand((uint64_t) getpid() ^ pd_lg_now());
    o->run = (unsigned) (pd_lg_rand() % 1000000000);

    pd_lg_board = mmap(NULL, sizeof(pd_lg_board_t), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pd_lg_accepted = calloc(PD_LG_SEQ_MAX, 1);
    pd_lg_subs = mmap(NULL, sizeof(pd_lg_sub_t) * (size_t) o->conns,
                      PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                      -1, 0);
    pd_lg_first = mmap(NULL, sizeof(uint32_t) * PD_LG_SEQ_MAX,
                       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                       -1, 0);

    if (pd_lg_board == MAP_FAILED || pd_lg_accepted == NULL
        || pd_lg_subs == MAP_FAILED || pd_lg_first == MAP_FAILED)
    {
        perror("loadgen: mmap");
        return 1;
    }

    pd_lg_res.pss0 = pd_lg_pss_kb(o->pids, o->npids, &pd_lg_res.shm0);
    pd_lg_res.slab0 = pd_lg_meminfo_kb("Slab");

    pd_lg_spawn();

    if (o->scenario == PD_LG_IDLE) {
        /* half, then all: the second half's growth is the marginal cost */
        if (pd_lg_connect_phase(PD_LG_PH_CONNECT, 500) == 0) {
            pd_lg_res.half = pd_lg_connected_n;
            (void) usleep((useconds_t) (o->settle * 1e6));
            pd_lg_res.pss_half = pd_lg_pss_kb(o->pids, o->npids,
                                              &pd_lg_res.shm_half);
            (void) pd_lg_connect_phase(0, 1000);
        }

        (void) usleep((useconds_t) (o->settle * 1e6));
        pd_lg_res.pss1 = pd_lg_pss_kb(o->pids, o->npids,
                                      &pd_lg_res.shm1);
        pd_lg_res.slab1 = pd_lg_meminfo_kb("Slab");
        pd_lg_read_zones();
        pd_lg_finish();
        pd_lg_report();
        return 0;
    }

    if (pd_lg_connect_phase(PD_LG_PH_CONNECT, 1000) != 0) {
        pd_lg_finish();
        pd_lg_report();
        return 1;
    }

    npub = o->scenario == PD_LG_FANOUT ? 1 : o->pubconns;

    if (pd_lg_pub_init(npub) != 0) {
        pd_lg_finish();
        return 1;
    }

    switch (o->scenario) {
    case PD_LG_FANOUT:
        pd_lg_run_fanout();
        break;
    case PD_LG_UNICAST:
        pd_lg_run_unicast();
        break;
    default:
        pd_lg_run_storm();
        break;
    }

    pd_lg_pub_close();
    pd_lg_finish();
    pd_lg_report();

    return 0;
}
