/*
 * pd_center_push.c: POST /v1/push and POST /v1/broadcast: the body is
 * read and checked here, the rate limit and the back-pressure of the
 * channels applied, and the message handed to the room's routing
 * interface (pd_room_push_*, pd_room_broadcast), whose answer is
 * answered.
 */

#include "pd_core.h"
#include "pd_center.h"
#include "pd_room.h"
#include "pd_saver.h"

/*
 * Requests waiting for a backed-up sibling channel, in arrival order.
 * While one waits, the connection reads nothing more, so TCP holds the
 * business back: deliveries do not pile up behind the channel.
 */
typedef struct {
    pd_queue_t           queue;
    pd_http_conn_t      *hc;
    pd_http_handler_pt   handler;
    pd_msec_t            since;
    pd_uint_t            parked;
} pd_center_parked_t;

/* a worker that does not read its channel for this long (stopped, or
 * stuck) gets the requests waiting for it answered 503, not kept */
#define PD_CENTER_PARK_MAX  5000

static pd_queue_t  pd_center_parked = { &pd_center_parked,
                                        &pd_center_parked };
static pd_event_t  pd_center_drained;
static pd_timer_t  pd_center_park_timer;
static pd_uint_t   pd_center_resuming;

static pd_msec_t  pd_center_rate_second;
static pd_uint_t  pd_center_rate_count;

/* one bucket per worker: each takes its share of the node's rate */
static pd_int_t
pd_center_rate_ok(pd_center_conf_t *ccf)
{
    pd_msec_t  sec = pd_current_msec / 1000;
    pd_uint_t  share;

    if (ccf->rate_limit == 0) {
        return 1;
    }

    if (sec != pd_center_rate_second) {
        pd_center_rate_second = sec;
        pd_center_rate_count = 0;
    }

    share = (pd_uint_t) ccf->rate_limit
            / pd_worker_count(pd_get_conf(pd_cycle, pd_core_module));

    return ++pd_center_rate_count <= pd_max(share, 1);
}

static void
pd_center_unpark(pd_event_t *ev)
{
    pd_center_parked_t  *pk;
    pd_queue_t          *q;

    (void) ev;

    while (!pd_queue_empty(&pd_center_parked) && !pd_channel_congested()) {
        q = pd_queue_head(&pd_center_parked);
        pk = pd_queue_data(q, pd_center_parked_t, queue);

        pd_queue_remove(q);
        pk->parked = 0;

        pd_center_resuming = 1;
        pk->handler(pk->hc);
        pd_center_resuming = 0;
    }
}

/* those that waited too long, oldest first: 503, nothing was taken */
static void
pd_center_park_expire(pd_timer_t *t)
{
    pd_center_parked_t  *pk;
    pd_queue_t          *q;

    while (!pd_queue_empty(&pd_center_parked)) {
        q = pd_queue_head(&pd_center_parked);
        pk = pd_queue_data(q, pd_center_parked_t, queue);

        if (pd_current_msec - pk->since < PD_CENTER_PARK_MAX) {
            (void) pd_timer_add(&pd_timers, t, pd_current_msec,
                                PD_CENTER_PARK_MAX
                                - (pd_current_msec - pk->since));
            return;
        }

        pd_queue_remove(q);
        pk->parked = 0;

        pd_room_stat_add(PD_ROOM_STAT_STORE_FULL, 1);
        (void) pd_http_send_error(pk->hc, 503, "a worker's channel is backed "
                                  "up: nothing was taken, try again");
    }
}

/* the request goes away (answered, or its client left) while it waits */
static void
pd_center_park_cleanup(void *data)
{
    pd_center_parked_t  *pk = data;

    if (pk->parked) {
        pd_queue_remove(&pk->queue);
        pk->parked = 0;
    }
}

/*
 * PD_OK when the request was parked until the channels drain; it is
 * handed to handler again then.  Later requests queue behind it.
 */
static pd_int_t
pd_center_park(pd_http_conn_t *hc, pd_http_handler_pt handler)
{
    pd_center_parked_t  *pk;
    pd_pool_cleanup_t   *cln;

    if (!pd_channel_congested()
        && (pd_center_resuming || pd_queue_empty(&pd_center_parked)))
    {
        return PD_DECLINED;
    }

    pk = pd_palloc(hc->pool, sizeof(pd_center_parked_t));
    cln = (pk != NULL) ? pd_pool_cleanup_add(hc->pool, 0) : NULL;

    if (cln == NULL) {
        /* no memory to wait: go on, the channel's queue takes it */
        return PD_DECLINED;
    }

    if (pd_center_drained.handler == NULL) {
        pd_center_drained.handler = pd_center_unpark;
        pd_channel_on_drain(&pd_center_drained);
    }

    pk->hc = hc;
    pk->handler = handler;
    pk->since = pd_current_msec;
    pk->parked = 1;

    if (pd_center_park_timer.handler == NULL) {
        pd_timer_init(&pd_center_park_timer, pd_center_park_expire);
    }

    if (!pd_timer_is_set(&pd_center_park_timer)) {
        (void) pd_timer_add(&pd_timers, &pd_center_park_timer,
                            pd_current_msec, PD_CENTER_PARK_MAX);
    }

    cln->handler = pd_center_park_cleanup;
    cln->data = pk;

    pd_queue_insert_tail(&pd_center_parked, &pk->queue);
    pd_center_stat(PD_CENTER_STAT_API_WAITED);

    if (!pd_channel_congested()) {
        /* only behind others: they go first, at the end of this turn */
        pd_post_event(&pd_center_drained, &pd_posted_events);
    }

    return PD_OK;
}

/* a name field (app, uid) decoded into buf of max + 1 bytes */
static pd_int_t
pd_center_name(pd_json_val_t *v, u_char *buf, size_t max, pd_str_t *out)
{
    if (pd_json_string(v, buf, max + 1, &out->len) != PD_OK) {
        return PD_ERROR;
    }

    out->data = buf;
    return pd_token_valid_name(out, max);
}

/* an optional integer field in [min, max]; PD_DECLINED when absent */
static pd_int_t
pd_center_int(pd_json_val_t *v, int64_t min, int64_t max, int64_t *n)
{
    if (v->type == PD_JSON_ABSENT) {
        return PD_DECLINED;
    }

    if (pd_json_integer(v, n) != PD_OK || *n < min || *n > max) {
        return PD_ERROR;
    }

    return PD_OK;
}

enum {
    PD_CENTER_F_APP = 0,
    PD_CENTER_F_DATA,
    PD_CENTER_F_QOS,
    PD_CENTER_F_TTL,
    PD_CENTER_F_RATE,
    PD_CENTER_F_UIDS,
    PD_CENTER_F_COLLAPSE,
    PD_CENTER_F_N
};

/* the limits of the configuration and the saver's, then the body */
static const char *
pd_center_parse(pd_http_conn_t *hc, pd_center_msg_t *m, pd_uint_t broadcast,
    pd_uint_t *status)
{
    pd_center_conf_t    *ccf = hc->srv->ctx;
    pd_center_limits_t   lim;

    lim.max_message = ccf->max_message;
    lim.max_uids = (pd_uint_t) ccf->max_uids;
    lim.broadcast_rate = (pd_uint_t) ccf->broadcast_rate;
    lim.ttl = pd_saver ? pd_saver->ttl : 0;
    lim.max_ttl = pd_saver ? (int64_t) (pd_saver->max_ttl / 1000)
                           : INT32_MAX;

    return pd_center_parse_body(hc->body.data, hc->body.len, &lim, broadcast,
                                m, status);
}

const char *
pd_center_parse_body(const u_char *body, size_t len,
    const pd_center_limits_t *lim, pd_uint_t broadcast, pd_center_msg_t *m,
    pd_uint_t *status)
{
    pd_json_field_t    f[PD_CENTER_F_N];
    pd_json_val_t      e;
    pd_json_err_t      jerr;
    const u_char      *pos;
    u_char             uid[PD_UID_MAX + 1];
    pd_str_t           name;
    int64_t            n;
    pd_int_t           rc;
    static const char *keys[PD_CENTER_F_N] = {
        "app", "data", "qos", "ttl", "rate", "uids", "collapse"
    };

    *status = 400;

    for (n = 0; n < PD_CENTER_F_N; n++) {
        f[n].key = keys[n];
    }

    if (pd_json_object(body, len, f, PD_CENTER_F_N, &jerr) != PD_OK)
    {
        (void) snprintf(m->error, sizeof(m->error),
                        "the body must be a JSON object: %s at byte %zu",
                        jerr.what, jerr.offset);
        return m->error;
    }

    if (pd_center_name(&f[PD_CENTER_F_APP].val, m->app_buf, PD_APP_MAX,
                       &m->app)
        != PD_OK)
    {
        return "\"app\" must be an app name";
    }

    if (f[PD_CENTER_F_DATA].val.type == PD_JSON_ABSENT) {
        return "\"data\" is missing";
    }

    /* the payload goes on as it came, byte for byte */
    m->data.data = (u_char *) f[PD_CENTER_F_DATA].val.start;
    m->data.len = (size_t) (f[PD_CENTER_F_DATA].val.end
                            - f[PD_CENTER_F_DATA].val.start);

    if (m->data.len > lim->max_message) {
        *status = 413;
        return "\"data\" is larger than center.max_message";
    }

    m->qos = 1;
    rc = pd_center_int(&f[PD_CENTER_F_QOS].val, 0, 1, &n);
    if (rc == PD_ERROR) {
        return "\"qos\" must be 0 or 1";
    }
    if (rc == PD_OK) {
        m->qos = (pd_uint_t) n;
    }

    /* a push is kept saver.ttl by default; a broadcast only when asked */
    m->ttl = broadcast ? 0 : lim->ttl;
    rc = pd_center_int(&f[PD_CENTER_F_TTL].val, 0, lim->max_ttl, &n);
    if (rc == PD_ERROR) {
        return "\"ttl\" must be seconds from 0 to saver.max_ttl";
    }
    if (rc == PD_OK) {
        m->ttl = (pd_msec_t) n * 1000;
    }

    m->collapse.len = 0;

    if (f[PD_CENTER_F_COLLAPSE].val.type != PD_JSON_ABSENT) {
        if (broadcast) {
            return "\"collapse\" is for pushes, not broadcasts";
        }

        if (pd_center_name(&f[PD_CENTER_F_COLLAPSE].val, m->collapse_buf,
                           PD_COLLAPSE_MAX, &m->collapse)
            != PD_OK)
        {
            return "\"collapse\" must be a key of 1 to 64 bytes of "
                   "[A-Za-z0-9._:@-]";
        }

        if (m->qos == 0) {
            return "\"collapse\" needs qos 1: a qos 0 message is not kept";
        }
    }

    if (broadcast) {
        m->rate = lim->broadcast_rate;
        rc = pd_center_int(&f[PD_CENTER_F_RATE].val, 1, 100000000, &n);
        if (rc == PD_ERROR) {
            return "\"rate\" must be users per second, 1 to 100000000";
        }
        if (rc == PD_OK) {
            m->rate = (pd_uint_t) n;
        }
        return NULL;
    }

    m->uids = f[PD_CENTER_F_UIDS].val;
    m->nuids = 0;
    m->uid_bytes = 0;

    pos = NULL;
    while (pd_json_array_next(&m->uids, &pos, &e) == PD_OK) {
        if (++m->nuids > lim->max_uids) {
            return "\"uids\" holds more than center.max_uids";
        }

        if (pd_center_name(&e, uid, PD_UID_MAX, &name) != PD_OK) {
            return "\"uids\" must hold uids";
        }

        m->uid_bytes += name.len;
    }

    if (m->nuids == 0) {
        return "\"uids\" must be a non-empty array";
    }

    return NULL;
}

pd_uint_t
pd_center_uids(pd_center_msg_t *m, pd_pool_t *pool, pd_str_t **out)
{
    pd_json_val_t   e;
    const u_char   *pos = NULL;
    pd_str_t       *uids, *u, *o;
    uint32_t       *set;
    u_char         *p;
    pd_uint_t       i, n, h, k, mask;

    /* an open-addressing set of index + 1, at least twice as large */
    for (mask = 1; mask < 2 * m->nuids; mask <<= 1) { /* void */ }

    set = pd_pcalloc(pool, mask * sizeof(uint32_t));
    uids = pd_palloc(pool, m->nuids * sizeof(pd_str_t));
    p = pd_pnalloc(pool, m->uid_bytes + m->nuids);

    if (set == NULL || uids == NULL || p == NULL) {
        return 0;
    }

    mask--;
    n = 0;

    for (i = 0; i < m->nuids; i++) {
        (void) pd_json_array_next(&m->uids, &pos, &e);
        u = &uids[n];
        (void) pd_center_name(&e, p, PD_UID_MAX, u);

        /* FNV-1a over the uid */
        h = 2166136261U;
        for (k = 0; k < u->len; k++) {
            h = ((h ^ u->data[k]) * 16777619U) & 0xffffffffU;
        }

        for (h &= mask; set[h] != 0; h = (h + 1) & mask) {
            o = &uids[set[h] - 1];
            if (o->len == u->len && memcmp(o->data, u->data, u->len) == 0) {
                break;
            }
        }

        if (set[h] != 0) {
            continue;
        }

        set[h] = (uint32_t) n + 1;
        p += u->len + 1;
        n++;
    }

    *out = uids;
    return n;
}

/*
 * What a push and a broadcast check first: the rate limit (429), then the
 * body's fields (400).  PD_OK, or PD_DONE when the request was answered.
 */
static pd_int_t
pd_center_accept(pd_http_conn_t *hc, pd_center_conf_t *ccf,
    pd_center_msg_t *m, pd_uint_t broadcast)
{
    const char  *err;
    pd_uint_t    status;

    if (!pd_center_rate_ok(ccf)) {
        pd_center_stat(PD_CENTER_STAT_RATE_LIMITED);
        (void) pd_http_send_response(hc, 429, "application/json",
                                     "Retry-After: 1\r\n",
                                     (u_char *) "{\"error\":\"rate limit\"}\n",
                                     sizeof("{\"error\":\"rate limit\"}\n")
                                     - 1);
        return PD_DONE;
    }

    pd_memzero(m, sizeof(pd_center_msg_t));
    err = pd_center_parse(hc, m, broadcast, &status);

    if (err != NULL) {
        (void) pd_http_send_error(hc, status, err);
        return PD_DONE;
    }

    return PD_OK;
}

static void
pd_center_reply_id(pd_http_conn_t *hc, uint64_t seq, const char *k1,
    pd_uint_t v1, const char *k2, pd_uint_t v2)
{
    u_char  buf[256], *p;

    /* no printf: this is once per push */
    p = pd_cpymem(buf, "{\"id\":\"", sizeof("{\"id\":\"") - 1);
    p = pd_room_msg_id(p, seq);
    *p++ = '"';
    *p++ = ',';
    *p++ = '"';
    p = pd_cpymem(p, k1, strlen(k1));
    *p++ = '"';
    *p++ = ':';
    p = pd_dec64(p, v1);
    *p++ = ',';
    *p++ = '"';
    p = pd_cpymem(p, k2, strlen(k2));
    *p++ = '"';
    *p++ = ':';
    p = pd_dec64(p, v2);
    *p++ = '}';
    *p++ = '\n';

    (void) pd_http_send_response(hc, 200, "application/json", NULL, buf,
                                 (size_t) (p - buf));
}

/* the room's answer; the request's cleanup releases the push */
static void
pd_center_pushed(void *data, pd_int_t rc, uint64_t seq, pd_uint_t online,
    pd_uint_t stored)
{
    pd_http_conn_t  *hc = data;

    if (rc != PD_OK) {
        (void) pd_http_send_error(hc, 503, rc == PD_BUSY
                                  ? "the message store is full"
                                  : "the message store is unavailable");
        return;
    }

    pd_center_reply_id(hc, seq, "online", online, "stored", stored);
}

static void
pd_center_push_cleanup(void *data)
{
    pd_room_push_release(data);
}

void
pd_center_push(pd_http_conn_t *hc)
{
    pd_center_conf_t   *ccf = hc->srv->ctx;
    pd_center_msg_t     m;
    pd_room_msg_t       msg;
    pd_room_push_t     *p;
    pd_pool_cleanup_t  *cln;
    pd_str_t           *uids;
    pd_uint_t           n;
    const char         *err;

    if (pd_center_park(hc, pd_center_push) == PD_OK) {
        return;
    }

    if (pd_center_accept(hc, ccf, &m, 0) != PD_OK) {
        return;
    }

    n = pd_center_uids(&m, hc->pool, &uids);

    msg.app = m.app;
    msg.data = m.data;
    msg.qos = m.qos;
    msg.ttl = m.ttl;
    msg.collapse = m.collapse;

    cln = (n != 0) ? pd_pool_cleanup_add(hc->pool, 0) : NULL;
    p = (cln != NULL) ? pd_room_push_create(&msg, uids, n, hc->pool,
                                            pd_center_pushed, hc)
                      : NULL;

    if (p == NULL) {
        (void) pd_http_send_error(hc, 500, "out of memory");
        return;
    }

    /* held before any answer: the answer may end the request at once */
    cln->handler = pd_center_push_cleanup;
    cln->data = p;

    /* the store's answer may take a commit: the next pushes need not */
    pd_http_detachable(hc);

    err = pd_room_push_start(p);
    if (err != NULL) {
        (void) pd_http_send_error(hc, 503, err);
    }
}

void
pd_center_broadcast(pd_http_conn_t *hc)
{
    pd_center_conf_t  *ccf = hc->srv->ctx;
    pd_center_msg_t    m;
    pd_room_msg_t      msg;
    pd_room_bcast_answer_t    out;
    pd_int_t           rc;

    if (pd_center_park(hc, pd_center_broadcast) == PD_OK) {
        return;
    }

    if (pd_center_accept(hc, ccf, &m, 1) != PD_OK) {
        return;
    }

    msg.app = m.app;
    msg.data = m.data;
    msg.qos = m.qos;
    msg.ttl = m.ttl;
    msg.collapse.len = 0;
    msg.collapse.data = NULL;

    rc = pd_room_broadcast(&msg, m.rate, &out);

    if (rc == PD_AGAIN) {
        (void) pd_http_send_error(hc, 503, "too many broadcasts are being "
                                  "delivered; try again later");
        return;
    }

    if (rc != PD_OK) {
        (void) pd_http_send_error(hc, rc == PD_BUSY ? 503 : 500,
                                  rc == PD_BUSY ? "the message store is full"
                                                : "out of memory");
        return;
    }

    pd_center_reply_id(hc, out.seq, "workers", out.workers, "rate", m.rate);
}
