/*
 * pd_center_push.c: POST /v1/push and POST /v1/broadcast.
 *
 * A push is stored first (qos 1), then framed once and handed to the
 * connections of its uids: directly when they are on this worker, else
 * as one batch per worker through the channel.  A broadcast is framed
 * once, retained when it has a ttl, and every worker walks its own
 * connections at its share of the rate.
 */

#include "pd_core.h"
#include "pd_center.h"
#include "pd_register.h"
#include "pd_room.h"
#include "pd_saver.h"

typedef struct {
    pd_str_t        app;            /* in app_buf */
    pd_str_t        data;           /* raw bytes of "data" in the body */
    pd_uint_t       qos;
    pd_msec_t       ttl;
    pd_uint_t       rate;
    pd_json_val_t   uids;           /* the array, in the body */
    pd_uint_t       nuids;
    size_t          uid_bytes;      /* decoded, without NULs */
    u_char          app_buf[PD_APP_MAX + 1];
    char            error[128];
} pd_center_msg_t;

/* connections of one target worker, collected before the batch goes */
typedef struct {
    pid_t           pid;
    u_char          node[33];       /* empty: this node */
    pd_uint_t       n;
    uint64_t       *conns;
} pd_center_target_t;

/*
 * One push in flight.  The lookups may answer later (a networked
 * register), so it lives on the heap, not in the request pool: a client
 * that goes away meanwhile only cancels the answer, and the push is
 * freed by whichever of the two ends last.
 */
typedef struct {
    pd_http_conn_t      *hc;         /* NULL once the client is gone */
    pd_center_msg_t      m;
    pd_str_t            *uids;       /* for the store: after the lookups,
                                      * in this allocation */
    pd_shbuf_t          *frame;
    uint64_t             seq;
    pd_center_target_t   targets[PD_MAX_PROCESSES];
    pd_uint_t            ntargets;
    pd_uint_t            online;
    pd_uint_t            stored;
    pd_uint_t            pending;    /* lookups not answered yet */
    pd_uint_t            cap;        /* conns per batch */
} pd_center_route_t;

/* what one lookup answers for; an array of them follows the route */
typedef struct {
    pd_center_route_t   *r;
    pd_str_t             uid;
} pd_center_lookup_t;

/* a channel message is built here and sent at once */
static u_char  pd_center_batch_buf[PD_CHANNEL_MAX_DATA];

static void pd_center_flush_target(pd_center_route_t *r,
    pd_center_target_t *t);

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

        pd_stats_dlv(PD_DLV_STORE_FULL, 1);
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
        pd_timer_init(&pd_center_park_timer, pd_center_park_expire, NULL);
    }

    if (!pd_timer_is_set(&pd_center_park_timer)) {
        (void) pd_timer_add(&pd_timers, &pd_center_park_timer,
                            pd_current_msec, PD_CENTER_PARK_MAX);
    }

    cln->handler = pd_center_park_cleanup;
    cln->data = pk;

    pd_queue_insert_tail(&pd_center_parked, &pk->queue);
    pd_stats_dlv(PD_DLV_API_WAITED, 1);

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
    PD_CENTER_F_N
};

/*
 * Reads the body's fields into m; NULL, or a phrase for an error of
 * *status.  The uids are checked here and decoded later, by
 * pd_center_uids(), into memory of the push's own.
 */
static const char *
pd_center_parse(pd_http_conn_t *hc, pd_center_msg_t *m, pd_uint_t broadcast,
    pd_uint_t *status)
{
    pd_center_conf_t  *ccf = hc->srv->ctx;
    pd_json_field_t    f[PD_CENTER_F_N];
    pd_json_val_t      e;
    pd_json_err_t      jerr;
    const u_char      *pos;
    u_char             uid[PD_UID_MAX + 1];
    pd_str_t           name;
    int64_t            n, max_ttl;
    pd_int_t           rc;
    static const char *keys[PD_CENTER_F_N] = {
        "app", "data", "qos", "ttl", "rate", "uids"
    };

    *status = 400;

    for (n = 0; n < PD_CENTER_F_N; n++) {
        f[n].key = keys[n];
    }

    if (pd_json_object(hc->body.data, hc->body.len, f, PD_CENTER_F_N, &jerr)
        != PD_OK)
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

    if (m->data.len > (size_t) ccf->max_message) {
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
    m->ttl = (pd_saver && !broadcast) ? pd_saver->ttl : 0;
    max_ttl = pd_saver ? (int64_t) (pd_saver->max_ttl / 1000) : INT32_MAX;
    rc = pd_center_int(&f[PD_CENTER_F_TTL].val, 0, max_ttl, &n);
    if (rc == PD_ERROR) {
        return "\"ttl\" must be seconds from 0 to saver.max_ttl";
    }
    if (rc == PD_OK) {
        m->ttl = (pd_msec_t) n * 1000;
    }

    if (broadcast) {
        m->rate = (pd_uint_t) ccf->broadcast_rate;
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
        if (++m->nuids > (pd_uint_t) ccf->max_uids) {
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

/*
 * The uids, checked by pd_center_parse(), decoded into r's own memory,
 * each once: a uid named twice would be stored and sent twice.  set is
 * an open-addressing table of at least twice nuids slots (a power of
 * two) holding index + 1, zeroed.  Returns how many distinct uids.
 */
static pd_uint_t
pd_center_uids(pd_center_route_t *r, pd_center_lookup_t *lk, u_char *p,
    uint32_t *set, pd_uint_t mask)
{
    pd_json_val_t   e;
    const u_char   *pos = NULL;
    pd_str_t       *u, *o;
    pd_uint_t       i, n, h, k;

    n = 0;

    for (i = 0; i < r->m.nuids; i++) {
        (void) pd_json_array_next(&r->m.uids, &pos, &e);
        u = &lk[n].uid;
        (void) pd_center_name(&e, p, PD_UID_MAX, u);

        /* FNV-1a over the uid */
        h = 2166136261U;
        for (k = 0; k < u->len; k++) {
            h = ((h ^ u->data[k]) * 16777619U) & 0xffffffffU;
        }

        for (h &= mask; set[h] != 0; h = (h + 1) & mask) {
            o = &lk[set[h] - 1].uid;
            if (o->len == u->len && memcmp(o->data, u->data, u->len) == 0) {
                break;
            }
        }

        if (set[h] != 0) {
            continue;
        }

        set[h] = (uint32_t) n + 1;
        lk[n].r = r;
        r->uids[n] = *u;
        p += u->len + 1;
        n++;
    }

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
        pd_stats_dlv(PD_DLV_RATE_LIMITED, 1);
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

static pd_center_target_t *
pd_center_target(pd_center_route_t *r, pd_reg_info_t *info)
{
    pd_center_target_t  *t;
    pd_uint_t            i;
    const u_char        *node;

    node = pd_register_is_local(info) ? (u_char *) "" : info->node;

    for (i = 0; i < r->ntargets; i++) {
        if (r->targets[i].pid == (pid_t) info->pid
            && strcmp((char *) r->targets[i].node, (char *) node) == 0)
        {
            return &r->targets[i];
        }
    }

    if (r->ntargets == PD_MAX_PROCESSES) {
        return NULL;
    }

    t = &r->targets[r->ntargets];
    t->conns = pd_alloc(r->cap * sizeof(uint64_t), pd_log_root);
    if (t->conns == NULL) {
        return NULL;
    }

    r->ntargets++;
    t->pid = (pid_t) info->pid;
    (void) snprintf((char *) t->node, sizeof(t->node), "%s", node);
    t->n = 0;

    return t;
}

static void pd_center_push_done(pd_center_route_t *r);
static void pd_center_push_route(pd_center_route_t *r);
static void pd_center_stored(void *data, pd_int_t rc, pd_uint_t stored,
    pd_uint_t full);
static void pd_center_push_free(pd_center_route_t *r);

/* the register's answer for one uid: route its connections of the app */
static void
pd_center_route_uid(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n)
{
    pd_center_lookup_t  *lk = data;
    pd_center_route_t   *r = lk->r;
    pd_center_target_t  *t;
    pd_room_conn_t      *room;
    pd_uint_t            i, j, found;

    found = 0;

    for (i = 0; rc == PD_OK && i < n; i++) {
        for (j = 0; j < info[i].napps; j++) {
            if (strlen((char *) info[i].apps[j]) == r->m.app.len
                && memcmp(info[i].apps[j], r->m.app.data, r->m.app.len)
                   == 0)
            {
                break;
            }
        }

        if (j == info[i].napps) {
            continue;
        }

        if (!found) {
            found = 1;

            /* qos 1: the no-ack guard decides before anything is sent */
            if (r->m.qos
                && pd_saver_delivered(&lk->uid, r->seq) == PD_ABORT)
            {
                break;
            }
        }

        if (info[i].pid == pd_pid && pd_register_is_local(&info[i])) {
            room = pd_room_find(info[i].conn);
            if (room != NULL) {
                (void) pd_room_deliver(room, r->frame);
            }
            continue;
        }

        t = pd_center_target(r, &info[i]);
        if (t == NULL) {
            continue;
        }

        t->conns[t->n++] = info[i].conn;

        if (t->n == r->cap) {
            pd_center_flush_target(r, t);
        }
    }

    r->online += found;

    if (--r->pending == 0) {
        pd_center_push_done(r);
    }
}

/* one channel message: a batch of connections of one worker */
static void
pd_center_flush_target(pd_center_route_t *r, pd_center_target_t *t)
{
    pd_room_batch_t   hdr;
    pd_reg_info_t     to;
    u_char           *p;

    if (t->n == 0) {
        return;
    }

    hdr.stamp = r->frame->stamp;
    hdr.nconns = (uint32_t) t->n;
    hdr.frame_len = (uint32_t) r->frame->len;

    p = pd_cpymem(pd_center_batch_buf, &hdr, sizeof(hdr));
    p = pd_cpymem(p, t->conns, t->n * sizeof(uint64_t));
    p = pd_cpymem(p, r->frame->data, r->frame->len);

    pd_memzero(&to, sizeof(to));
    to.pid = (int32_t) t->pid;
    pd_memcpy(to.node, t->node, sizeof(to.node));

    /* this node: the channel; another node: its worker's Redis channel */
    if (pd_register_route(&to, PD_CMD_ROOM_SEND, 0, pd_center_batch_buf,
                          (size_t) (p - pd_center_batch_buf))
        != PD_OK)
    {
        /* stored messages come again on reconnect; count it */
        pd_stats_dlv(PD_DLV_CHANNEL_FULL, 1);
        if (r->m.qos == 0) {
            pd_stats_dlv(PD_DLV_QOS0_DROPPED, t->n);
        }
    }

    t->n = 0;
}

static void
pd_center_send_batches(pd_center_route_t *r)
{
    pd_uint_t  i;

    for (i = 0; i < r->ntargets; i++) {
        pd_center_flush_target(r, &r->targets[i]);
    }
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

static void
pd_center_push_free(pd_center_route_t *r)
{
    pd_uint_t  i;

    for (i = 0; i < r->ntargets; i++) {
        pd_free(r->targets[i].conns);
    }

    pd_shbuf_unref(r->frame);
    pd_free(r);
}

/* every lookup answered: the batches go, then the answer */
static void
pd_center_push_done(pd_center_route_t *r)
{
    pd_http_conn_t  *hc = r->hc;

    pd_center_send_batches(r);

    if (r->m.qos == 0) {
        pd_stats_dlv(PD_DLV_QOS0_DROPPED, r->m.nuids - r->online);
    }

    if (hc == NULL) {
        pd_center_push_free(r);
        return;
    }

    /* the answer may end the request at once: its cleanup frees r */
    pd_center_reply_id(hc, r->seq, "online", r->online, "stored",
                       r->stored);
}

/* the request pool goes: answered, or the client left mid-way */
static void
pd_center_push_cleanup(void *data)
{
    pd_center_route_t  *r = data;

    if (r->pending == 0) {
        pd_center_push_free(r);
        return;
    }

    r->hc = NULL;
}

void
pd_center_push(pd_http_conn_t *hc)
{
    pd_center_conf_t    *ccf = hc->srv->ctx;
    pd_center_route_t   *r;
    pd_center_lookup_t  *lk;
    pd_center_msg_t      m;
    pd_pool_cleanup_t   *cln;
    const char          *err;
    pd_int_t             rv;
    pd_uint_t            mask;
    uint32_t            *set;

    if (pd_center_park(hc, pd_center_push) == PD_OK) {
        return;
    }

    if (pd_center_accept(hc, ccf, &m, 0) != PD_OK) {
        return;
    }

    err = NULL;

    if (m.qos && pd_saver == NULL) {
        err = "qos 1 needs the saver section";

    } else if (pd_register == NULL) {
        err = "the register is not enabled";
    }

    if (err != NULL) {
        (void) pd_http_send_error(hc, 503, err);
        return;
    }

    /* the route, a lookup per uid, the uids for the store, their bytes */
    r = pd_alloc(sizeof(pd_center_route_t)
                 + m.nuids * (sizeof(pd_center_lookup_t) + sizeof(pd_str_t)
                              + 1)
                 + m.uid_bytes, hc->connection->log);
    cln = (r != NULL) ? pd_pool_cleanup_add(hc->pool, 0) : NULL;

    if (cln == NULL) {
        pd_free(r);
        (void) pd_http_send_error(hc, 500, "out of memory");
        return;
    }

    /* from here r owns the frame and the uids (out of the request pool:
     * lookups may answer after the client left); "data" stays in the
     * body, read only while the request lives */
    pd_memzero(r, sizeof(pd_center_route_t));
    r->hc = hc;
    r->m = m;
    r->m.app.data = r->m.app_buf;
    cln->handler = pd_center_push_cleanup;
    cln->data = r;

    for (mask = 1; mask < 2 * m.nuids; mask <<= 1) { /* void */ }

    set = pd_pcalloc(hc->pool, mask * sizeof(uint32_t));
    if (set == NULL) {
        (void) pd_http_send_error(hc, 500, "out of memory");
        return;
    }

    lk = (pd_center_lookup_t *) (r + 1);
    r->uids = (pd_str_t *) (lk + m.nuids);
    r->m.nuids = pd_center_uids(r, lk, (u_char *) (r->uids + m.nuids),
                                set, mask - 1);

    r->seq = pd_stats_next_seq();

    if (!m.qos) {
        pd_center_push_route(r);
        return;
    }

    /* stored before it is sent: a 200 means it is kept; the answer may
     * come later (a networked store), r waits for it as for a lookup */
    r->pending = 1;

    rv = pd_saver_store(r->uids, r->m.nuids, &r->m.app, r->seq, &r->m.data,
                        m.ttl, hc->pool, pd_center_stored, r);
    if (rv != PD_OK) {
        r->pending = 0;
        pd_stats_dlv(PD_DLV_STORE_FULL, 1);
        (void) pd_http_send_error(hc, 503, rv == PD_BUSY
                                  ? "the message store is full"
                                  : "the message store is unavailable");
    }
}

static void
pd_center_stored(void *data, pd_int_t rc, pd_uint_t stored, pd_uint_t full)
{
    pd_center_route_t  *r = data;

    (void) full;

    r->pending = 0;

    if (rc != PD_OK) {
        pd_stats_dlv(PD_DLV_STORE_FULL, 1);

        if (r->hc == NULL) {
            pd_center_push_free(r);
            return;
        }

        (void) pd_http_send_error(r->hc, 503, "the message store is "
                                  "unavailable");
        return;
    }

    r->stored = stored;

    if (r->hc == NULL) {
        /* the client left: it is kept, and comes on the next connect */
        pd_center_push_free(r);
        return;
    }

    pd_center_push_route(r);
}

/* frames once, then asks the register where each uid is */
static void
pd_center_push_route(pd_center_route_t *r)
{
    pd_center_lookup_t  *lk;
    pd_uint_t            i;

    lk = (pd_center_lookup_t *) (r + 1);

    r->frame = pd_room_msg_frame(r->seq, &r->m.app, r->m.qos,
                                 r->m.data.data, r->m.data.len,
                                 pd_current_msec);
    if (r->frame == NULL) {
        (void) pd_http_send_error(r->hc, 500, "out of memory");
        return;
    }

    pd_stats_dlv(PD_DLV_ACCEPTED, 1);

    r->cap = (PD_CHANNEL_MAX_DATA - sizeof(pd_room_batch_t)
              - r->frame->len) / sizeof(uint64_t);

    /* one more than the lookups: answers that come at once do not
     * finish the push before every lookup has been asked */
    r->pending = r->m.nuids + 1;

    for (i = 0; i < r->m.nuids; i++) {
        if (pd_register->lookup(lk[i].uid.data, lk[i].uid.len,
                                pd_center_route_uid, &lk[i])
            != PD_OK)
        {
            pd_center_route_uid(&lk[i], PD_ERROR, NULL, 0);
        }
    }

    if (--r->pending == 0) {
        pd_center_push_done(r);
    }
}

void
pd_center_broadcast(pd_http_conn_t *hc)
{
    pd_center_conf_t     *ccf = hc->srv->ctx;
    pd_room_bcast_hdr_t   hdr;
    pd_center_msg_t       m;
    pd_shbuf_t           *frame;
    pd_process_t         *p;
    u_char               *buf, *b;
    pd_uint_t             workers, nw;
    pd_int_t              i;
    uint64_t              seq;

    if (pd_center_park(hc, pd_center_broadcast) == PD_OK) {
        return;
    }

    if (pd_center_accept(hc, ccf, &m, 1) != PD_OK) {
        return;
    }

    seq = pd_stats_next_seq();

    if (m.ttl && pd_saver != NULL
        && pd_saver_bcast_store(&m.app, seq, &m.data, m.ttl) != PD_OK)
    {
        pd_stats_dlv(PD_DLV_STORE_FULL, 1);
        (void) pd_http_send_error(hc, 503, "the message store is full");
        return;
    }

    frame = pd_room_msg_frame(seq, &m.app, m.qos, m.data.data, m.data.len,
                              pd_current_msec);
    buf = pd_pnalloc(hc->pool, PD_CHANNEL_MAX_DATA);

    if (frame == NULL || buf == NULL
        || sizeof(hdr) + m.app.len + frame->len > PD_CHANNEL_MAX_DATA)
    {
        pd_shbuf_unref(frame);
        (void) pd_http_send_error(hc, 500, "out of memory");
        return;
    }

    nw = pd_worker_count(pd_get_conf(pd_cycle, pd_core_module));

    hdr.stamp = pd_current_msec;
    hdr.seq = seq;
    hdr.rate = (uint32_t) pd_max(m.rate / nw, 1);
    hdr.frame_len = (uint32_t) frame->len;
    hdr.app_len = (uint16_t) m.app.len;
    hdr.retained = (m.ttl && pd_saver != NULL);

    b = pd_cpymem(buf, &hdr, sizeof(hdr));
    b = pd_cpymem(b, m.app.data, m.app.len);
    b = pd_cpymem(b, frame->data, frame->len);

    /* every live worker of every generation: retiring ones still hold
     * connections until they have sent them away */
    workers = 1;
    pd_room_bcast_start(&hdr, m.app.data, frame->data);

    for (i = 0; i < pd_last_process; i++) {
        p = &pd_processes[i];

        if (p->pid == -1 || i == pd_process_slot || p->channel[0] == -1) {
            continue;
        }

        if (pd_channel_send_pid(p->pid, PD_CMD_ROOM_BCAST, seq, buf,
                                (size_t) (b - buf))
            == PD_OK)
        {
            workers++;
        } else {
            pd_stats_dlv(PD_DLV_CHANNEL_FULL, 1);
        }
    }

    /* other nodes, when the register is a cluster one */
    (void) pd_register_broadcast(PD_CMD_ROOM_BCAST, buf, (size_t) (b - buf));

    pd_shbuf_unref(frame);
    pd_stats_dlv(PD_DLV_BROADCASTS, 1);
    pd_stats_dlv(PD_DLV_ACCEPTED, 1);

    pd_center_reply_id(hc, seq, "workers", workers, "rate", m.rate);
}
