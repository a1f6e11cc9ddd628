/*
 * pd_lg_util.c: the load generator's helpers: clock, histograms, the
 * message data with its send stamp, WebSocket client frames, sockets on
 * spread source addresses, readings of /proc and of pushd's /v1/stats.
 */

#define _GNU_SOURCE

#include "pd_lg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static uint64_t  pd_lg_seed = 0x9e3779b97f4a7c15ULL;

uint64_t
pd_lg_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int
pd_lg_hist_index(uint64_t v)
{
    int  e;

    if (v < PD_LG_HIST_LINEAR) {
        return (int) v;
    }

    e = 63 - __builtin_clzll(v);           /* 6 and up */

    if (e - 6 >= 40) {
        return PD_LG_HIST_N - 1;
    }

    return PD_LG_HIST_LINEAR + (e - 6) * PD_LG_HIST_SUB
           + (int) ((v >> (e - 5)) & (PD_LG_HIST_SUB - 1));
}

/* the middle of a bucket, in microseconds */
static double
pd_lg_hist_value(int i)
{
    int     e, sub;
    double  lo, width;

    if (i < PD_LG_HIST_LINEAR) {
        return (double) i + 0.5;
    }

    e = (i - PD_LG_HIST_LINEAR) / PD_LG_HIST_SUB + 6;
    sub = (i - PD_LG_HIST_LINEAR) % PD_LG_HIST_SUB;
    width = (double) (1ULL << (e - 5));
    lo = (double) (1ULL << e) + sub * width;

    return lo + width / 2;
}

void
pd_lg_hist_add(pd_lg_hist_t *h, uint64_t us)
{
    h->b[pd_lg_hist_index(us)]++;
    h->n++;

    if (us > h->max) {
        h->max = us;
    }
}

void
pd_lg_hist_merge(pd_lg_hist_t *to, const pd_lg_hist_t *from)
{
    int  i;

    for (i = 0; i < PD_LG_HIST_N; i++) {
        to->b[i] += from->b[i];
    }

    to->n += from->n;

    if (from->max > to->max) {
        to->max = from->max;
    }
}

/* the q-quantile (0..1) in milliseconds; -1 when empty */
double
pd_lg_hist_pct(const pd_lg_hist_t *h, double q)
{
    uint64_t  want, seen;
    int       i;

    if (h->n == 0) {
        return -1;
    }

    want = (uint64_t) (q * (double) h->n);
    if (want >= h->n) {
        want = h->n - 1;
    }

    seen = 0;

    for (i = 0; i < PD_LG_HIST_N; i++) {
        seen += h->b[i];

        if (seen > want) {
            return pd_lg_hist_value(i) / 1000.0;
        }
    }

    return (double) h->max / 1000.0;
}

void
pd_lg_srand(uint64_t seed)
{
    pd_lg_seed = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

/* xorshift64*: cheap, good enough for uids and mask keys */
uint64_t
pd_lg_rand(void)
{
    pd_lg_seed ^= pd_lg_seed >> 12;
    pd_lg_seed ^= pd_lg_seed << 25;
    pd_lg_seed ^= pd_lg_seed >> 27;

    return pd_lg_seed * 0x2545f4914f6cdd1dULL;
}

/* a masked client frame (RFC 6455 5.3); out holds len + 14 bytes */
size_t
pd_lg_ws_frame(u_char *out, int opcode, const u_char *payload, size_t len)
{
    uint32_t  key;
    u_char   *p, *m;
    size_t    i;

    p = out;
    *p++ = (u_char) (0x80 | opcode);

    if (len < 126) {
        *p++ = (u_char) (0x80 | len);

    } else if (len < 65536) {
        *p++ = 0x80 | 126;
        *p++ = (u_char) (len >> 8);
        *p++ = (u_char) len;

    } else {
        *p++ = 0x80 | 127;
        for (i = 0; i < 8; i++) {
            *p++ = (u_char) ((uint64_t) len >> (56 - 8 * i));
        }
    }

    key = (uint32_t) pd_lg_rand();
    m = p;
    memcpy(p, &key, 4);
    p += 4;

    for (i = 0; i < len; i++) {
        *p++ = payload[i] ^ m[i & 3];
    }

    return (size_t) (p - out);
}

/*
 * The message data: a JSON object of exactly pd_lg_opts.msg_size bytes
 * carrying the message's sequence number and its send time, so that the
 * receiver measures the latency and tells losses from duplicates.
 */
size_t
pd_lg_data(u_char *out, uint64_t seq, uint64_t stamp)
{
    int     n, size, pad;
    char    head[64];

    size = pd_lg_opts.msg_size;
    n = snprintf(head, sizeof(head),
                 "{\"t\":%llu,\"s\":%llu,\"r\":%u,\"p\":\"",
                 (unsigned long long) stamp, (unsigned long long) seq,
                 pd_lg_opts.run);
    pad = size - n - 2;

    if (pad < 0) {
        pad = 0;
    }

    memcpy(out, head, (size_t) n);
    memset(out + n, 'x', (size_t) pad);
    memcpy(out + n + pad, "\"}", 2);

    return (size_t) (n + pad + 2);
}

static uint64_t
pd_lg_number_after(const u_char *p, const u_char *end, const char *key,
    int *ok)
{
    const u_char  *q;
    uint64_t       v;

    q = pd_lg_memmem(p, (size_t) (end - p), key);
    if (q == NULL) {
        *ok = 0;
        return 0;
    }

    q += strlen(key);
    v = 0;

    if (q >= end || *q < '0' || *q > '9') {
        *ok = 0;
        return 0;
    }

    while (q < end && *q >= '0' && *q <= '9') {
        v = v * 10 + (uint64_t) (*q++ - '0');
    }

    return v;
}

/*
 * Finds the stamp and seq of pd_lg_data() anywhere in p: 0 when found,
 * 1 when the message is from another run (a late one), -1 on garbage.
 */
int
pd_lg_data_parse(const u_char *p, size_t len, uint64_t *seq,
    uint64_t *stamp)
{
    const u_char  *d, *end;
    uint64_t       run;
    int            ok;

    end = p + len;
    d = pd_lg_memmem(p, len, "{\"t\":");
    if (d == NULL) {
        return -1;
    }

    ok = 1;
    *stamp = pd_lg_number_after(d, end, "\"t\":", &ok);
    *seq = pd_lg_number_after(d, end, "\"s\":", &ok);
    run = pd_lg_number_after(d, end, "\"r\":", &ok);

    if (!ok) {
        return -1;
    }

    return run == pd_lg_opts.run ? 0 : 1;
}

const u_char *
pd_lg_memmem(const u_char *h, size_t hl, const char *n)
{
    return memmem(h, hl, n, strlen(n));
}

/*
 * A non-blocking TCP socket bound to 127.0.0.(2 + idx % 253), its port
 * picked at connect time (IP_BIND_ADDRESS_NO_PORT), connecting to the
 * server: one host exceeds 64k connections to one port that way.
 * Returns the fd or -1.
 */
int
pd_lg_nonblock_socket(int idx, int port)
{
    struct sockaddr_in  src, dst;
    int                 fd, one;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -1;
    }

    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void) setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                      sizeof(one));

    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t) (idx % 253));

    if (idx >= 0
        && bind(fd, (struct sockaddr *) &src, sizeof(src)) == -1)
    {
        close(fd);
        return -1;
    }

    memset(&dst, 0, sizeof(dst));
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t) port);

    if (inet_pton(AF_INET, pd_lg_opts.host, &dst.sin_addr) != 1) {
        close(fd);
        errno = EINVAL;
        return -1;
    }

    if (connect(fd, (struct sockaddr *) &dst, sizeof(dst)) == -1
        && errno != EINPROGRESS)
    {
        close(fd);
        return -1;
    }

    return fd;
}

/*
 * The sum of Pss over the processes, kB (smaps_rollup); -1 on error.
 * *shmem gets the part in shared mappings (the shared-memory zones).
 */
int64_t
pd_lg_pss_kb(const pid_t *pids, int n, int64_t *shmem)
{
    char     path[64], line[256];
    FILE    *f;
    int64_t  sum, v;
    int      i;

    sum = 0;
    *shmem = 0;

    for (i = 0; i < n; i++) {
        (void) snprintf(path, sizeof(path), "/proc/%d/smaps_rollup",
                        (int) pids[i]);
        f = fopen(path, "r");
        if (f == NULL) {
            return -1;
        }

        while (fgets(line, sizeof(line), f) != NULL) {
            if (sscanf(line, "Pss: %ld kB", &v) == 1) {
                sum += v;
            } else if (sscanf(line, "Pss_Shmem: %ld kB", &v) == 1) {
                *shmem += v;
            }
        }

        fclose(f);
    }

    return sum;
}

/*
 * utime and stime summed over the processes, in clock ticks; returns how
 * many of them could be read (a process that died is not counted).
 */
int
pd_lg_cpu_ticks(const pid_t *pids, int n, uint64_t *user, uint64_t *sys)
{
    char                path[64], buf[1024], *p;
    unsigned long long  ut, st;
    FILE               *f;
    size_t              len;
    int                 i, read;

    *user = 0;
    *sys = 0;
    read = 0;

    for (i = 0; i < n; i++) {
        (void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pids[i]);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }

        len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';

        /* the command name may hold blanks: fields count from the ')' */
        p = strrchr(buf, ')');
        if (p == NULL
            || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                      "%llu %llu", &ut, &st) != 2)
        {
            continue;
        }

        *user += ut;
        *sys += st;
        read++;
    }

    return read;
}

int64_t
pd_lg_meminfo_kb(const char *key)
{
    char     line[256];
    FILE    *f;
    int64_t  v;
    size_t   kl;

    f = fopen("/proc/meminfo", "r");
    if (f == NULL) {
        return -1;
    }

    kl = strlen(key);
    v = -1;

    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtoll(line + kl + 1, NULL, 10);
            break;
        }
    }

    fclose(f);

    return v;
}

/* pushd's token: hex(HMAC-SHA256(secret, uid \n device \n expires)) */
void
pd_lg_token(char *hex, const char *uid, const char *device, long expires)
{
    unsigned char  md[EVP_MAX_MD_SIZE];
    unsigned int   mdlen, i;
    char           msg[256];
    int            n;

    n = snprintf(msg, sizeof(msg), "%s\n%s\n%ld", uid, device, expires);

    mdlen = 0;
    (void) HMAC(EVP_sha256(), pd_lg_opts.secret,
                (int) strlen(pd_lg_opts.secret), (unsigned char *) msg,
                (size_t) n, md, &mdlen);

    for (i = 0; i < mdlen; i++) {
        (void) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }

    hex[2 * mdlen] = '\0';
}

/*
 * GET path from the API port on host with the API key, blocking, the
 * answer's body NUL-terminated into out; the body's length, or -1.
 * Used between phases (pushd's /v1/stats), never while publishing.
 */
ssize_t
pd_lg_http_get(const char *path, char *out, size_t size)
{
    struct sockaddr_in  sin;
    struct timeval      tv = { 5, 0 };
    char                req[512], *body;
    size_t              len;
    ssize_t             n;
    int                 fd;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1) {
        return -1;
    }

    (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) pd_lg_opts.api_port);

    if (inet_pton(AF_INET, pd_lg_opts.host, &sin.sin_addr) != 1
        || connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1)
    {
        close(fd);
        return -1;
    }

    n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Authorization: Bearer %s\r\nConnection: close\r\n\r\n",
                 path, pd_lg_opts.api_key);

    if (n < 0 || (size_t) n >= sizeof(req) || write(fd, req, (size_t) n) != n)
    {
        close(fd);
        return -1;
    }

    len = 0;

    while (len + 1 < size
           && (n = read(fd, out + len, size - 1 - len)) > 0)
    {
        len += (size_t) n;
    }

    close(fd);
    out[len] = '\0';

    body = strstr(out, "\r\n\r\n");
    if (strncmp(out, "HTTP/1.1 200", 12) != 0 || body == NULL) {
        return -1;
    }

    body += 4;
    len -= (size_t) (body - out);
    memmove(out, body, len + 1);

    return (ssize_t) len;
}

/* the number of "key" in the object "obj" of json ("obj" may be NULL:
 * anywhere), or -1 */
double
pd_lg_json_num(const char *json, const char *obj, const char *key)
{
    char         pat[80];
    const char  *p;

    p = json;

    if (obj != NULL) {
        (void) snprintf(pat, sizeof(pat), "\"%s\":{", obj);
        p = strstr(json, pat);
        if (p == NULL) {
            return -1;
        }
    }

    (void) snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(p, pat);

    return p != NULL ? strtod(p + strlen(pat), NULL) : -1;
}
