/*
 * pd_coordinator_http.c: the callbacks' HTTP client, libcurl's
 * multi-socket interface on the worker's loop.
 *
 * libcurl keeps the keep-alive pool, TLS with verification, DNS and the
 * protocol; this file gives its sockets a place in the worker's epoll
 * (a pd_connection_t each, edge-triggered like every socket) and its
 * single timeout a pd_timer_t.  Edge-triggered needs two cares: libcurl
 * may read less than the kernel holds, so the read handler asks the
 * kernel (FIONREAD) and goes on; and it may want a direction whose edge
 * went by already, so every change of interest posts one try.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_coordinator.h"

#include <sys/ioctl.h>

/* an answer larger than this is a failed callback: it would not fit a
 * client's frame anyway */
#define PD_COORD_ANSWER_MAX  (64 * 1024)

typedef struct {
    CURL                 *easy;
    pd_coord_upstream_t  *up;
    struct curl_slist    *headers;
    u_char               *body;
    u_char               *answer;
    size_t                len;
    size_t                cap;
    pd_coord_done_pt      done;
    void                 *data;
    pd_queue_t            queue;      /* in pd_coord_reqs */
    pd_msec_t             start;
    unsigned              too_big:1;
    char                  error[CURL_ERROR_SIZE];
} pd_coord_req_t;

static CURLM            *pd_coord_multi;
static pd_timer_t        pd_coord_timer;
static pd_coord_conf_t  *pd_coord_hconf;
static pd_log_t         *pd_coord_log;
static pd_queue_t        pd_coord_reqs;     /* the requests out */
/*
 * Easy handles of finished requests, kept for the next ones: making and
 * freeing one per request was a tenth of the worker's CPU per uplink.
 * Every option is set again for each request.
 */
#define PD_COORD_IDLE_HANDLES  64
static CURL             *pd_coord_idle[PD_COORD_IDLE_HANDLES];
static pd_uint_t         pd_coord_nidle;

static int pd_coord_socket(CURL *e, curl_socket_t s, int what, void *u,
    void *sp);
static int pd_coord_set_timer(CURLM *m, long ms, void *u);
static void pd_coord_timer_handler(pd_timer_t *t);
static void pd_coord_read_handler(pd_event_t *ev);
static void pd_coord_write_handler(pd_event_t *ev);
static void pd_coord_action(curl_socket_t s, int mask);
static void pd_coord_finish(CURLMsg *msg);
static void pd_coord_req_free(pd_coord_req_t *r);

pd_int_t
pd_coord_http_init(pd_cycle_t *cycle, pd_coord_conf_t *conf)
{
    pd_coord_multi = curl_multi_init();
    if (pd_coord_multi == NULL) {
        pd_log_error(PD_LOG_EMERG, cycle->log, 0, "curl_multi_init() failed");
        return PD_ERROR;
    }

    pd_coord_hconf = conf;
    pd_coord_log = cycle->log;
    pd_timer_init(&pd_coord_timer, pd_coord_timer_handler);
    pd_queue_init(&pd_coord_reqs);

    (void) curl_multi_setopt(pd_coord_multi, CURLMOPT_SOCKETFUNCTION,
                             pd_coord_socket);
    (void) curl_multi_setopt(pd_coord_multi, CURLMOPT_TIMERFUNCTION,
                             pd_coord_set_timer);
    /* a bound per receiver: more requests wait in libcurl for a free
     * connection, never one connection each */
    (void) curl_multi_setopt(pd_coord_multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                             (long) conf->connections);
    (void) curl_multi_setopt(pd_coord_multi, CURLMOPT_MAXCONNECTS,
                             (long) (conf->connections
                                     * conf->upstreams->nelts));

    return PD_OK;
}

void
pd_coord_http_exit(void)
{
    pd_queue_t      *q;
    pd_coord_req_t  *r;

    if (pd_coord_multi == NULL) {
        return;
    }

    if (pd_timer_is_set(&pd_coord_timer)) {
        pd_timer_del(&pd_timers, &pd_coord_timer);
    }

    /* the requests still out are dropped with the worker */
    while (!pd_queue_empty(&pd_coord_reqs)) {
        q = pd_queue_head(&pd_coord_reqs);
        r = pd_queue_data(q, pd_coord_req_t, queue);

        pd_queue_remove(q);
        (void) curl_multi_remove_handle(pd_coord_multi, r->easy);
        pd_coord_req_free(r);
    }

    while (pd_coord_nidle) {
        curl_easy_cleanup(pd_coord_idle[--pd_coord_nidle]);
    }

    (void) curl_multi_cleanup(pd_coord_multi);
    pd_coord_multi = NULL;
}

pd_int_t
pd_coord_sign(pd_str_t *secret, const u_char *body, size_t len,
    u_char out[PD_COORD_SIG_LEN + 1])
{
    u_char        md[EVP_MAX_MD_SIZE], *p;
    unsigned int  mdlen;

    if (HMAC(EVP_sha256(), secret->data, (int) secret->len, body, len, md,
             &mdlen) == NULL || mdlen != 32)
    {
        return PD_ERROR;
    }

    p = pd_cpymem(out, "sha256=", sizeof("sha256=") - 1);
    p = pd_hex_dump(p, md, 32);
    *p = '\0';

    return PD_OK;
}

static size_t
pd_coord_write(char *ptr, size_t size, size_t n, void *data)
{
    pd_coord_req_t  *r = data;
    size_t           len = size * n, cap;
    u_char          *a;

    if (r->len + len > PD_COORD_ANSWER_MAX) {
        r->too_big = 1;
        return 0;
    }

    if (r->len + len + 1 > r->cap) {
        cap = pd_max(r->cap * 2, r->len + len + 1);
        cap = pd_max(cap, 1024);

        a = realloc(r->answer, cap);
        if (a == NULL) {
            return 0;
        }

        r->answer = a;
        r->cap = cap;
    }

    pd_memcpy(r->answer + r->len, ptr, len);
    r->len += len;
    r->answer[r->len] = '\0';

    return len;
}

static pd_int_t
pd_coord_req_setup(pd_coord_req_t *r, size_t len)
{
    CURL    *e = r->easy;
    u_char   sig[sizeof("X-Pushd-Signature: ") + PD_COORD_SIG_LEN + 1];
    u_char  *p;

    p = pd_cpymem(sig, "X-Pushd-Signature: ",
                  sizeof("X-Pushd-Signature: ") - 1);

    if (pd_coord_sign(&pd_coord_hconf->secret, r->body, len, p) != PD_OK) {
        return PD_ERROR;
    }

    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (r->headers == NULL) {
        return PD_ERROR;
    }

    /* no "Expect: 100-continue" round trip before a larger body */
    if (curl_slist_append(r->headers, "Expect:") == NULL
        || curl_slist_append(r->headers, (char *) sig) == NULL)
    {
        return PD_ERROR;
    }

    (void) curl_easy_setopt(e, CURLOPT_URL, r->up->url.data);
    (void) curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    (void) curl_easy_setopt(e, CURLOPT_POST, 1L);
    (void) curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    (void) curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) len);
    (void) curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    (void) curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, pd_coord_write);
    (void) curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    (void) curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    (void) curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
    (void) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                            (long) pd_coord_hconf->timeout);
    (void) curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* a callback answers where it was asked: a redirect is a failure */
    (void) curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    (void) curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    (void) curl_easy_setopt(e, CURLOPT_USERAGENT, "pushd");

    if (pd_coord_hconf->ca_pem.len) {
        struct curl_blob  blob;

        /* the conf outlives every request */
        blob.data = pd_coord_hconf->ca_pem.data;
        blob.len = pd_coord_hconf->ca_pem.len;
        blob.flags = CURL_BLOB_NOCOPY;
        (void) curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
    }

    return PD_OK;
}

pd_int_t
pd_coord_post(pd_coord_upstream_t *up, u_char *body, size_t len,
    pd_coord_done_pt done, void *data)
{
    pd_coord_req_t  *r;

    if (up->pending >= (pd_uint_t) pd_coord_hconf->max_pending) {
        pd_free(body);
        return PD_BUSY;
    }

    r = calloc(1, sizeof(pd_coord_req_t));
    if (r == NULL) {
        pd_free(body);
        return PD_ERROR;
    }

    r->up = up;
    r->body = body;
    r->done = done;
    r->data = data;

    r->easy = pd_coord_nidle ? pd_coord_idle[--pd_coord_nidle]
                             : curl_easy_init();

    if (r->easy == NULL || pd_coord_req_setup(r, len) != PD_OK
        || curl_multi_add_handle(pd_coord_multi, r->easy) != CURLM_OK)
    {
        pd_log_error(PD_LOG_ERR, pd_coord_log, 0,
                     "coordinator: no memory for a request to %s",
                     up->url.data);
        pd_coord_req_free(r);
        return PD_ERROR;
    }

    pd_queue_insert_tail(&pd_coord_reqs, &r->queue);
    r->start = pd_current_msec;
    up->pending++;
    pd_coord_ustat(up, PD_COORD_STAT_PENDING, 1);
    pd_coord_ustat(up, up->state ? PD_COORD_STAT_STATES
                                 : PD_COORD_STAT_UPLINKS, 1);

    return PD_OK;
}

static void
pd_coord_req_free(pd_coord_req_t *r)
{
    if (r->easy != NULL) {
        if (pd_coord_nidle < PD_COORD_IDLE_HANDLES && pd_coord_multi != NULL) {
            pd_coord_idle[pd_coord_nidle++] = r->easy;

        } else {
            curl_easy_cleanup(r->easy);
        }
    }

    curl_slist_free_all(r->headers);
    pd_free(r->body);
    pd_free(r->answer);
    pd_free(r);
}

/* libcurl's interest in a socket changed: its place in the loop */
static int
pd_coord_socket(CURL *e, curl_socket_t s, int what, void *u, void *sp)
{
    pd_connection_t  *c = sp;

    (void) e;
    (void) u;

    if (what == CURL_POLL_REMOVE) {
        if (c != NULL) {
            /* libcurl closes the fd itself, after this */
            pd_release_connection(c, 1);
            (void) curl_multi_assign(pd_coord_multi, s, NULL);
        }

        return 0;
    }

    if (c == NULL) {
        c = pd_get_connection(s, pd_coord_log);
        if (c == NULL) {
            return -1;
        }

        /* not a client: does not count among the worker's clients */
        c->shared = 1;
        c->data = NULL;
        c->read->handler = pd_coord_read_handler;
        c->write->handler = pd_coord_write_handler;

        if (pd_add_conn(c) != PD_OK) {
            pd_release_connection(c, 1);
            return -1;
        }

        (void) curl_multi_assign(pd_coord_multi, s, c);
    }

    /* an edge that went by before libcurl wanted it: one try each */
    if (what & CURL_POLL_IN) {
        pd_post_event(c->read, &pd_posted_events);
    }

    if (what & CURL_POLL_OUT) {
        pd_post_event(c->write, &pd_posted_events);
    }

    return 0;
}

static int
pd_coord_set_timer(CURLM *m, long ms, void *u)
{
    (void) m;
    (void) u;

    if (ms < 0) {
        if (pd_timer_is_set(&pd_coord_timer)) {
            pd_timer_del(&pd_timers, &pd_coord_timer);
        }

        return 0;
    }

    /* 0: at once, which is the next turn (no call into libcurl here) */
    if (pd_timer_add(&pd_timers, &pd_coord_timer, pd_current_msec,
                     (pd_msec_t) ms) != PD_OK)
    {
        return -1;
    }

    return 0;
}

static void
pd_coord_timer_handler(pd_timer_t *t)
{
    (void) t;

    pd_coord_action(CURL_SOCKET_TIMEOUT, 0);
}

static void
pd_coord_read_handler(pd_event_t *ev)
{
    pd_connection_t  *c = ev->data;
    pd_socket_t       fd = c->fd;
    pd_uint_t         number = c->number, i;
    int               n;

    pd_delete_posted_event(ev);

    for (i = 0; i < 64; i++) {
        pd_coord_action(fd, CURL_CSELECT_IN);

        /* libcurl may have closed it, and the slot be another's now */
        if (c->fd != fd || c->number != number
            || c->read->handler != pd_coord_read_handler)
        {
            return;
        }

        if (ioctl(fd, FIONREAD, &n) == -1 || n <= 0) {
            return;
        }
    }

    /* a flood: the rest on the next turn */
    pd_post_event(ev, &pd_posted_next_events);
}

static void
pd_coord_write_handler(pd_event_t *ev)
{
    pd_connection_t  *c = ev->data;

    pd_delete_posted_event(ev);

    pd_coord_action(c->fd, CURL_CSELECT_OUT);
}

static void
pd_coord_action(curl_socket_t s, int mask)
{
    CURLMsg  *msg;
    int       running, left;

    if (pd_coord_multi == NULL) {
        return;
    }

    (void) curl_multi_socket_action(pd_coord_multi, s, mask, &running);

    while ((msg = curl_multi_info_read(pd_coord_multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            pd_coord_finish(msg);
        }
    }
}

static void
pd_coord_finish(CURLMsg *msg)
{
    CURL               *e = msg->easy_handle;
    CURLcode            code = msg->data.result;
    pd_coord_req_t     *r;
    pd_coord_answer_t   a;

    (void) curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **) &r);
    (void) curl_multi_remove_handle(pd_coord_multi, e);
    pd_queue_remove(&r->queue);

    r->up->pending--;
    pd_coord_ustat(r->up, PD_COORD_STAT_PENDING, -1);
    pd_coord_ulatency(r->up, pd_current_msec - r->start);

    pd_memzero(&a, sizeof(pd_coord_answer_t));

    if (code == CURLE_OK) {
        (void) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a.status);
        a.rc = PD_OK;
        a.body = r->answer;
        a.len = r->len;

        if (a.status < 200 || a.status > 299) {
            pd_coord_ustat(r->up, PD_COORD_STAT_ERR_STATUS, 1);
        }

    } else {
        a.rc = code == CURLE_OPERATION_TIMEDOUT ? PD_AGAIN : PD_ERROR;
        a.error = r->too_big ? "answer too large"
                  : r->error[0] ? r->error : curl_easy_strerror(code);

        pd_coord_ustat(r->up, a.rc == PD_AGAIN ? PD_COORD_STAT_ERR_TIMEOUT
                                               : PD_COORD_STAT_ERR_FAILED, 1);
        pd_log_error(PD_LOG_WARN, pd_coord_log, 0,
                     "coordinator: POST %s failed: %s", r->up->url.data,
                     a.error);
    }

    r->done(r->data, &a);
    pd_coord_req_free(r);
}
