/*
 * pd_coordinator_state.c: online/offline events per (uid, device, app),
 * queued per state URL, sent in batches (state_batch events or
 * state_flush, whichever comes first), one request at a time per URL so
 * that they arrive in order, and sent again with a jittered backoff while
 * the receiver fails.
 *
 * seq grows per uid, so a receiver orders an online and an offline that
 * arrive out of order.  On one host it is pd_seq_next(), the node's
 * message sequence, which grows across its workers and restarts.  In a
 * cluster (register.backend redis) the same uid may come online on one
 * node and go offline on another, so the counter is the uid's own, in its
 * register shard: pd:s:{uid}, raised atomically by a script to at least
 * the wall clock (ms x 1024) and then by the number of events.  The key
 * lives a day after the uid's last event; by then the clock's floor is
 * far above anything it held, so seq still grows after it expired.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_register.h"
#include "pd_coordinator.h"

/* the events of one connection while its device is looked up */
typedef struct {
    uint64_t              conn;
    pd_uint_t             online;
    pd_uint_t             n;
    size_t                sid_len;
    u_char                uid[PD_UID_MAX + 1];
    u_char                sid[64];
    u_char                device[PD_DEVICE_MAX + 1];
    u_char                apps[PD_APPS_MAX][PD_APP_MAX + 1];
    pd_coord_upstream_t  *ups[PD_APPS_MAX];
    uint64_t              seq;     /* before the first event; 0: none */
} pd_coord_state_t;

#define PD_COORD_SEQ_TTL  "86400000"

/* events waiting for their seq from Redis */
static pd_uint_t  pd_coord_seq_pending;

/* KEYS[1] pd:s:{uid}, ARGV: the clock's floor, events, ttl (ms); returns
 * the last event's seq.  Lua numbers are doubles: exact below 2^53, and
 * ms x 1024 stays below it until the year 2248. */
static const char  pd_coord_seq_lua[] =
    "local v = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "local f = tonumber(ARGV[1]) "
    "if v < f then v = f end "
    "v = v + tonumber(ARGV[2]) "
    "redis.call('SET', KEYS[1], string.format('%.0f', v), 'PX', ARGV[3]) "
    "return v";

static void pd_coord_state_device(void *data, pd_int_t rc,
    pd_reg_info_t *info, pd_uint_t n);
static pd_uint_t pd_coord_cluster(void);
static void pd_coord_state_seq(pd_coord_state_t *s);
static void pd_coord_state_seq_done(pd_redis_t *r, redisReply *reply,
    void *data);
static void pd_coord_state_emit(pd_coord_state_t *s);
static void pd_coord_state_schedule(pd_coord_upstream_t *up);
static void pd_coord_state_send(pd_coord_upstream_t *up);
static void pd_coord_state_timer(pd_timer_t *t);
static void pd_coord_state_done(void *data, pd_coord_answer_t *a);

void
pd_coord_state_init(pd_coord_conf_t *ccf)
{
    pd_coord_upstream_t  **ups = ccf->upstreams->elts;
    pd_uint_t              i;

    for (i = 0; i < ccf->upstreams->nelts; i++) {
        if (ups[i]->state) {
            pd_coord_batch_init(&ups[i]->batch,
                                (pd_uint_t) ccf->state_queue,
                                (pd_uint_t) ccf->state_batch);
            pd_timer_init(&ups[i]->timer, pd_coord_state_timer);
        }
    }
}

void
pd_coord_state_exit(void)
{
    pd_coord_upstream_t  **ups = pd_coord_conf->upstreams->elts;
    pd_uint_t              i;

    for (i = 0; i < pd_coord_conf->upstreams->nelts; i++) {
        if (!ups[i]->state) {
            continue;
        }

        if (pd_timer_is_set(&ups[i]->timer)) {
            pd_timer_del(&pd_timers, &ups[i]->timer);
        }

        if (ups[i]->batch.n) {
            pd_log_error(PD_LOG_WARN, pd_log_root, 0,
                         "coordinator: %lu state events for %s not sent "
                         "at exit", (unsigned long) ups[i]->batch.n,
                         ups[i]->url.data);
        }

        pd_coord_batch_free(&ups[i]->batch);
    }
}

void
pd_coord_state(pd_room_conn_t *rc, const pd_str_t *device, pd_int_t app,
    pd_uint_t online)
{
    pd_coord_state_t   s, *p;
    pd_coord_app_t    *route;
    const u_char      *name;
    size_t             len;
    pd_uint_t          i, first, last;

    s.n = 0;
    first = app < 0 ? 0 : (pd_uint_t) app;
    last = app < 0 ? rc->napps : (pd_uint_t) app + 1;

    for (i = first; i < last && i < rc->napps; i++) {
        name = pd_room_app_name(rc->apps[i], &len);
        route = pd_coord_app(name, len);

        if (route != NULL && route->state != NULL) {
            pd_memcpy(s.apps[s.n], name, len);
            s.apps[s.n][len] = '\0';
            s.ups[s.n++] = route->state;
        }
    }

    if (s.n == 0) {
        return;
    }

    s.conn = pd_room_conn_id(rc);
    s.online = online;
    s.seq = 0;
    s.device[0] = '\0';
    pd_memcpy(s.uid, pd_room_uid(rc), rc->uid_len);
    s.uid[rc->uid_len] = '\0';
    s.sid_len = pd_room_session_id(rc, s.sid, sizeof(s.sid));

    if (device != NULL) {
        len = pd_min(device->len, PD_DEVICE_MAX);
        pd_memcpy(s.device, device->data, len);
        s.device[len] = '\0';
    }

    /* the node's own zone holds its connections in both backends and
     * answers at once, before the close removes the entry: no event
     * waits for another, so a connection's events stay in order */
    if (device == NULL && pd_register != NULL) {
        (void) pd_register_memory_backend.lookup(pd_room_uid(rc), rc->uid_len,
                                                 pd_coord_state_device, &s);
    }

    if (!pd_coord_cluster()) {
        pd_coord_state_emit(&s);
        return;
    }

    /* it waits for the uid's seq from Redis */
    p = malloc(sizeof(pd_coord_state_t));
    if (p == NULL) {
        s.seq = pd_coord_now() << 10;
        pd_coord_state_emit(&s);
        return;
    }

    *p = s;
    pd_coord_seq_pending++;
    pd_coord_state_seq(p);
}

static void
pd_coord_state_device(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n)
{
    pd_coord_state_t  *s = data;
    pd_uint_t          i;

    if (rc != PD_OK) {
        return;
    }

    for (i = 0; i < n; i++) {
        if (info[i].conn == s->conn && info[i].pid == (int32_t) pd_pid) {
            (void) snprintf((char *) s->device, sizeof(s->device), "%s",
                            info[i].device);
            return;
        }
    }
}

/* s is malloc()ed: emitted and freed here or when Redis answers */
static void
pd_coord_state_seq(pd_coord_state_t *s)
{
    const char  *argv[7];
    size_t       len[7];
    char         key[8 + PD_UID_MAX], floor[24], count[8];
    pd_redis_t  *r;
    size_t       ulen;

    ulen = strlen((char *) s->uid);
    r = pd_register_shards[pd_redis_shard(s->uid, ulen,
                                          (uint32_t) pd_register_nshards)];

    argv[0] = "EVAL";
    argv[1] = pd_coord_seq_lua;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = floor;
    argv[5] = count;
    argv[6] = PD_COORD_SEQ_TTL;

    len[0] = 4;
    len[1] = sizeof(pd_coord_seq_lua) - 1;
    len[2] = 1;
    len[3] = (size_t) snprintf(key, sizeof(key), "pd:s:%s", s->uid);
    len[4] = (size_t) snprintf(floor, sizeof(floor), "%llu",
                               (unsigned long long) pd_coord_now() << 10);
    len[5] = (size_t) snprintf(count, sizeof(count), "%lu",
                               (unsigned long) s->n);
    len[6] = sizeof(PD_COORD_SEQ_TTL) - 1;

    if (pd_redis_command(r, pd_coord_state_seq_done, s, 7, argv, len)
        != PD_OK)
    {
        pd_coord_state_seq_done(r, NULL, s);
    }
}

static void
pd_coord_state_seq_done(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_coord_state_t  *s = data;

    (void) r;

    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER
        && reply->integer >= (long long) s->n)
    {
        s->seq = (uint64_t) reply->integer - s->n;

    } else {
        /* no Redis: the clock's floor, as the script would have begun;
         * an order across nodes holds again once Redis answers */
        pd_log_error(PD_LOG_WARN, pd_log_root, 0,
                     "coordinator: no seq from redis for %s, the clock's "
                     "used", s->uid);
        s->seq = pd_coord_now() << 10;
    }

    pd_coord_seq_pending--;
    pd_coord_state_emit(s);
    pd_free(s);
    pd_coord_exit_hold();
}

/* a cluster register: seq is the uid's, from its Redis shard */
static pd_uint_t
pd_coord_cluster(void)
{
    return pd_register == &pd_register_redis_backend
           && pd_register_nshards > 0;
}

static void
pd_coord_state_emit(pd_coord_state_t *s)
{
    pd_core_conf_t       *ccf = pd_get_conf(pd_cycle, pd_core_module);
    pd_coord_upstream_t  *up;
    u_char                buf[1024], *p, *last = buf + sizeof(buf);
    pd_uint_t             i;

    for (i = 0; i < s->n; i++) {
        up = s->ups[i];

        p = pd_cpymem(buf, "{\"uid\":", sizeof("{\"uid\":") - 1);
        p = pd_json_escape(p, last, s->uid, strlen((char *) s->uid));
        p = pd_cpymem(p, ",\"device\":", sizeof(",\"device\":") - 1);
        p = pd_json_escape(p, last, s->device, strlen((char *) s->device));
        p = pd_slprintf(p, last, ",\"app\":\"%s\",\"state\":\"%s\","
                        "\"sid\":\"%.*s\",\"seq\":%llu,\"node\":",
                        s->apps[i], s->online ? "online" : "offline",
                        (int) s->sid_len, s->sid,
                        (unsigned long long) (s->seq ? ++s->seq
                                                     : pd_seq_next()));
        p = pd_json_escape(p, last, ccf->node_id.data, ccf->node_id.len);
        p = pd_slprintf(p, last, ",\"ts\":%llu}",
                        (unsigned long long) pd_coord_now());

        if (!s->online
            && pd_coord_debounce_hold(up, s->uid, s->device, s->apps[i],
                                      s->conn, buf, (size_t) (p - buf))
               == PD_OK)
        {
            continue;
        }

        pd_coord_state_queue(up, buf, (size_t) (p - buf));
    }
}

void
pd_coord_state_queue(pd_coord_upstream_t *up, const u_char *json,
    size_t len)
{
    if (pd_coord_batch_push(&up->batch, json, len) != PD_OK) {
        pd_coord_ustat(up, PD_COORD_STAT_DROPPED, 1);

        /* a receiver down for long would flood the log otherwise */
        if ((up->batch.dropped & (up->batch.dropped - 1)) == 0) {
            pd_log_error(PD_LOG_WARN, pd_log_root, 0,
                         "coordinator: state queue of %s full: "
                         "%llu events dropped so far", up->url.data,
                         (unsigned long long) up->batch.dropped);
        }

        return;
    }

    pd_coord_ustat(up, PD_COORD_STAT_QUEUED, 1);
    pd_coord_state_schedule(up);
    pd_coord_exit_hold();
}

static void
pd_coord_state_schedule(pd_coord_upstream_t *up)
{
    if (up->busy || up->backoff || up->batch.n == 0) {
        return;
    }

    /* a retiring worker does not wait for a fuller batch */
    if (up->batch.n >= up->batch.batch || pd_coord_conf->state_flush == 0
        || pd_exiting)
    {
        pd_coord_state_send(up);
        return;
    }

    if (!pd_timer_is_set(&up->timer)) {
        (void) pd_timer_add(&pd_timers, &up->timer, pd_current_msec,
                            pd_coord_conf->state_flush);
    }
}

static void
pd_coord_state_retry(pd_coord_upstream_t *up)
{
    pd_msec_t  wait;

    pd_coord_batch_done(&up->batch, 0);

    wait = pd_coord_batch_backoff(&up->batch, pd_coord_conf->state_retry,
                                  pd_coord_conf->state_retry_max,
                                  (uint32_t) random());
    up->backoff = 1;
    (void) pd_timer_add(&pd_timers, &up->timer, pd_current_msec, wait);
}

static void
pd_coord_state_send(pd_coord_upstream_t *up)
{
    u_char    *body;
    size_t     len;
    pd_int_t   rv;

    if (pd_timer_is_set(&up->timer)) {
        pd_timer_del(&pd_timers, &up->timer);
    }

    body = pd_coord_batch_take(&up->batch, &len);
    if (body == NULL) {
        return;
    }

    rv = pd_coord_post(up, body, len, pd_coord_state_done, up);

    if (rv != PD_OK) {
        pd_coord_state_retry(up);
        return;
    }

    up->busy = 1;
}

static void
pd_coord_state_timer(pd_timer_t *t)
{
    pd_coord_upstream_t  *up = pd_timer_owner(t, pd_coord_upstream_t,
                                              timer);

    if (up->backoff) {
        up->backoff = 0;
        pd_coord_ustat(up, PD_COORD_STAT_RETRIES, 1);
    }

    if (!up->busy) {
        pd_coord_state_send(up);
    }
}

static void
pd_coord_state_done(void *data, pd_coord_answer_t *a)
{
    pd_coord_upstream_t  *up = data;
    pd_uint_t             n = up->batch.sending;

    up->busy = 0;

    if (a->rc != PD_OK || a->status < 200 || a->status > 299) {
        if (a->rc == PD_OK) {
            pd_log_error(PD_LOG_WARN, pd_log_root, 0,
                         "coordinator: POST %s answered %ld, %lu state "
                         "events kept for a retry", up->url.data,
                         a->status, (unsigned long) up->batch.n);
        }

        pd_coord_state_retry(up);
        return;
    }

    pd_coord_batch_done(&up->batch, 1);
    pd_coord_ustat(up, PD_COORD_STAT_QUEUED, -(int64_t) n);
    pd_coord_ustat(up, PD_COORD_STAT_EVENTS, (int64_t) n);

    pd_coord_state_schedule(up);
    pd_coord_exit_hold();
}


/* a retiring worker sends what it holds now, without waiting for a batch */
void
pd_coord_state_retire(void)
{
    pd_coord_upstream_t  **ups = pd_coord_conf->upstreams->elts;
    pd_uint_t              i;

    for (i = 0; i < pd_coord_conf->upstreams->nelts; i++) {
        if (ups[i]->state) {
            pd_coord_state_schedule(ups[i]);
        }
    }
}


/* events queued, out, or waiting for their seq */
pd_uint_t
pd_coord_state_busy(void)
{
    pd_coord_upstream_t  **ups = pd_coord_conf->upstreams->elts;
    pd_uint_t              i;

    if (pd_coord_seq_pending) {
        return 1;
    }

    for (i = 0; i < pd_coord_conf->upstreams->nelts; i++) {
        if (ups[i]->state && (ups[i]->batch.n || ups[i]->busy)) {
            return 1;
        }
    }

    return 0;
}
