/*
 * pd_center_stats.c: GET /v1/stats from the shared counters, and
 * GET /v1/workers, which probes every sibling through the inter-worker
 * channel and answers once all have replied or the probe timed out.
 */

#include "pd_core.h"
#include "pd_center.h"
#include "pd_room.h"
#include "pd_saver.h"

#define PD_CENTER_JSON_MAX  (64 * 1024)

typedef struct pd_center_probe_s  pd_center_probe_t;

struct pd_center_probe_s {
    pd_http_conn_t     *hc;
    uint64_t            id;
    pd_timer_t          timer;
    pd_uint_t           waiting;
    pd_msec_t           started;
    int64_t             pid[PD_MAX_WORKERS];
    pd_msec_t           rtt[PD_MAX_WORKERS];
    u_char              asked[PD_MAX_WORKERS];
    pd_queue_t          link;
};

static pd_queue_t  pd_center_probes;
static uint64_t    pd_center_probe_id;

static void pd_center_pong(pd_cycle_t *cycle, pd_channel_msg_t *msg,
    u_char *data);
static void pd_center_probe_timeout(pd_timer_t *t);
static void pd_center_probe_done(pd_center_probe_t *pr);
static void pd_center_probe_cleanup(void *data);

pd_int_t
pd_center_workers_init(pd_cycle_t *cycle)
{
    (void) cycle;

    pd_queue_init(&pd_center_probes);
    pd_channel_set_handler(PD_CMD_PONG, pd_center_pong);

    return PD_OK;
}

void
pd_center_stats(pd_http_conn_t *hc)
{
    pd_core_conf_t   *ccf;
    pd_stats_slot_t  *s;
    u_char           *buf, *p, *last;
    pd_uint_t         i, r, first;
    uint64_t          conns, gen;

    ccf = pd_get_conf(pd_cycle, pd_core_module);
    gen = pd_cycle->generation;

    buf = pd_pnalloc(hc->pool, PD_CENTER_JSON_MAX);
    if (buf == NULL) {
        (void) pd_http_send_error(hc, 500, "out of memory");
        return;
    }

    last = buf + PD_CENTER_JSON_MAX;
    conns = 0;

    p = pd_slprintf(buf, last, "{\"node\":\"%.*s\",\"version\":\""
                    PD_VERSION "\",\"worker\":%ld,\"workers\":[",
                    (int) ccf->node_id.len, ccf->node_id.data,
                    (long) pd_worker);

    first = 1;

    for (i = 0; pd_stats && i < PD_MAX_PROCESSES; i++) {
        s = &pd_stats->slots[i];

        if (s->pid == 0 || s->generation != gen) {
            continue;
        }

        conns += s->connections;

        p = pd_slprintf(p, last, "%s{\"slot\":%ld,\"pid\":%ld,"
                        "\"started\":%lu,\"connections\":%lu,"
                        "\"websockets\":%lu,\"accepted\":%lu,"
                        "\"requests\":%lu,\"handshakes\":%lu,"
                        "\"auth_failures\":%lu,\"rejected\":%lu,"
                        "\"frames_in\":%lu,\"frames_out\":%lu,"
                        "\"bytes_in\":%lu,\"bytes_out\":%lu,"
                        "\"closes\":{",
                        first ? "" : ",", (long) s->wslot, (long) s->pid,
                        (unsigned long) s->started,
                        (unsigned long) s->connections,
                        (unsigned long) s->counters[PD_ROOM_STAT_WS],
                        (unsigned long) s->accepted,
                        (unsigned long) s->requests,
                        (unsigned long) s->counters[PD_ROOM_STAT_HANDSHAKES],
                        (unsigned long)
                            s->counters[PD_ROOM_STAT_AUTH_FAILURES],
                        (unsigned long) s->counters[PD_ROOM_STAT_REJECTED],
                        (unsigned long) s->counters[PD_ROOM_STAT_FRAMES_IN],
                        (unsigned long) s->counters[PD_ROOM_STAT_FRAMES_OUT],
                        (unsigned long) s->bytes_in,
                        (unsigned long) s->bytes_out);

        for (r = 0; r < PD_ROOM_CLOSE_N; r++) {
            p = pd_slprintf(p, last, "%s\"%s\":%lu", r ? "," : "",
                            pd_room_close_names[r],
                            (unsigned long)
                                s->counters[PD_ROOM_STAT_CLOSES + r]);
        }

        p = pd_slprintf(p, last, "}}");
        first = 0;
    }

    p = pd_slprintf(p, last, "],\"connections\":%lu}\n",
                    (unsigned long) conns);

    (void) pd_http_send_response(hc, 200, "application/json", NULL, buf,
                                 (size_t) (p - buf));
}

void
pd_center_workers(pd_http_conn_t *hc)
{
    pd_center_conf_t   *ccf = hc->srv->ctx;
    pd_center_probe_t  *pr;
    pd_pool_cleanup_t  *cln;
    pd_uint_t           w, n;
    pd_int_t            rc;

    n = pd_worker_count(pd_get_conf(pd_cycle, pd_core_module));

    pr = pd_pcalloc(hc->pool, sizeof(pd_center_probe_t));
    cln = pd_pool_cleanup_add(hc->pool, 0);

    if (pr == NULL || cln == NULL) {
        (void) pd_http_send_error(hc, 500, "out of memory");
        return;
    }

    pd_timer_init(&pr->timer, pd_center_probe_timeout, pr);
    pr->hc = hc;
    pr->id = ++pd_center_probe_id;
    pr->started = pd_current_msec;

    for (w = 0; w < n; w++) {
        pr->pid[w] = -1;

        if ((pd_int_t) w == pd_worker) {
            pr->pid[w] = pd_pid;
            continue;
        }

        rc = pd_channel_send_worker((pd_int_t) w, PD_CMD_PING, pr->id, NULL,
                                    0);
        if (rc == PD_OK) {
            pr->asked[w] = 1;
            pr->waiting++;
        }
    }

    pd_queue_insert_tail(&pd_center_probes, &pr->link);

    /* the request pool owns the probe: a closed client cancels it */
    cln->handler = pd_center_probe_cleanup;
    cln->data = pr;

    if (pr->waiting == 0) {
        pd_center_probe_done(pr);
        return;
    }

    (void) pd_timer_add(&pd_timers, &pr->timer, pd_current_msec,
                        ccf->probe_timeout);
}

static void
pd_center_pong(pd_cycle_t *cycle, pd_channel_msg_t *msg, u_char *data)
{
    pd_center_probe_t  *pr;
    pd_process_t       *p;
    pd_queue_t         *q;
    pd_int_t            w;

    (void) cycle;
    (void) data;

    if (msg->slot < 0 || msg->slot >= PD_MAX_PROCESSES) {
        return;
    }

    p = &pd_processes[msg->slot];
    w = p->wslot;

    if (w < 0 || w >= PD_MAX_WORKERS) {
        return;
    }

    for (q = pd_queue_head(&pd_center_probes);
         q != pd_queue_sentinel(&pd_center_probes);
         q = pd_queue_next(q))
    {
        pr = pd_queue_data(q, pd_center_probe_t, link);

        if (pr->id != msg->arg || !pr->asked[w] || pr->pid[w] != -1) {
            continue;
        }

        pr->pid[w] = msg->pid;
        pr->rtt[w] = pd_current_msec - pr->started;

        if (--pr->waiting == 0) {
            pd_center_probe_done(pr);
        }

        return;
    }
}

static void
pd_center_probe_timeout(pd_timer_t *t)
{
    pd_center_probe_done(t->data);
}

static void
pd_center_probe_done(pd_center_probe_t *pr)
{
    pd_http_conn_t  *hc = pr->hc;
    u_char          *buf, *p, *last;
    pd_uint_t        w, n, all;

    if (pd_timer_is_set(&pr->timer)) {
        pd_timer_del(&pd_timers, &pr->timer);
    }

    pd_queue_remove(&pr->link);
    pr->hc = NULL;

    n = pd_worker_count(pd_get_conf(pd_cycle, pd_core_module));

    buf = pd_pnalloc(hc->pool, PD_CENTER_JSON_MAX);
    if (buf == NULL) {
        (void) pd_http_send_error(hc, 500, "out of memory");
        return;
    }

    last = buf + PD_CENTER_JSON_MAX;
    all = 1;

    p = pd_slprintf(buf, last, "{\"worker\":%ld,\"workers\":[",
                    (long) pd_worker);

    for (w = 0; w < n; w++) {
        if (pr->pid[w] == -1) {
            all = 0;
        }

        p = pd_slprintf(p, last, "%s{\"slot\":%lu,\"pid\":%ld,\"ok\":%s,"
                        "\"rtt_ms\":%lu,\"via\":\"%s\"}",
                        w ? "," : "", (unsigned long) w, (long) pr->pid[w],
                        pr->pid[w] != -1 ? "true" : "false",
                        (unsigned long) pr->rtt[w],
                        (pd_int_t) w == pd_worker ? "self" : "channel");
    }

    p = pd_slprintf(p, last, "],\"ok\":%s}\n", all ? "true" : "false");

    (void) pd_http_send_response(hc, all ? 200 : 503, "application/json",
                                 NULL, buf, (size_t) (p - buf));
}

static void
pd_center_probe_cleanup(void *data)
{
    pd_center_probe_t  *pr = data;

    if (pr->hc == NULL) {
        return;
    }

    if (pd_timer_is_set(&pr->timer)) {
        pd_timer_del(&pd_timers, &pr->timer);
    }

    pd_queue_remove(&pr->link);
    pr->hc = NULL;
}

typedef struct {
    u_char   *pos;
    u_char   *last;
} pd_center_text_t;

static void pd_center_printf(pd_center_text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
pd_center_printf(pd_center_text_t *t, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    t->pos = pd_vslprintf(t->pos, t->last, fmt, args);
    va_end(args);
}

/* one family: HELP, TYPE and a sample per worker of this generation */
static void
pd_center_family(pd_center_text_t *t, const char *name, const char *type,
    const char *help, size_t offset)
{
    pd_stats_slot_t  *s;
    pd_uint_t         i;

    pd_center_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                     type);

    for (i = 0; i < PD_MAX_PROCESSES; i++) {
        s = &pd_stats->slots[i];

        if (s->pid == 0 || s->generation != pd_cycle->generation) {
            continue;
        }

        pd_center_printf(t, "%s{worker=\"%ld\"} %lu\n", name, (long) s->wslot,
                         (unsigned long) *(uint64_t *) ((u_char *) s
                                                        + offset));
    }
}

#define pd_center_slot_off(field)  offsetof(pd_stats_slot_t, field)

void
pd_center_metrics(pd_http_conn_t *hc)
{
    pd_center_text_t   t;
    pd_msg_stats_t     st;
    pd_stats_slot_t   *s;
    u_char            *buf;
    uint64_t           cum, sum, b[PD_STATS_BUCKETS + 1];
    pd_uint_t          i, j;
    size_t             size = 256 * 1024;

    static const struct {
        const char  *name;
        const char  *type;
        const char  *help;
        size_t       offset;
    } families[] = {
        { "pushd_connections", "gauge", "open client connections",
          pd_center_slot_off(connections) },
        { "pushd_websockets", "gauge", "open WebSocket sessions",
          pd_center_slot_off(counters[PD_ROOM_STAT_WS]) },
        { "pushd_output_queued_bytes", "gauge",
          "bytes queued to clients, not yet written",
          pd_center_slot_off(counters[PD_ROOM_STAT_QUEUED]) },
        { "pushd_accepted_total", "counter", "connections accepted",
          pd_center_slot_off(accepted) },
        { "pushd_handshakes_total", "counter", "WebSocket sessions opened",
          pd_center_slot_off(counters[PD_ROOM_STAT_HANDSHAKES]) },
        { "pushd_auth_failures_total", "counter", "tokens refused",
          pd_center_slot_off(counters[PD_ROOM_STAT_AUTH_FAILURES]) },
        { "pushd_frames_in_total", "counter", "frames from clients",
          pd_center_slot_off(counters[PD_ROOM_STAT_FRAMES_IN]) },
        { "pushd_frames_out_total", "counter", "frames to clients",
          pd_center_slot_off(counters[PD_ROOM_STAT_FRAMES_OUT]) },
        { "pushd_bytes_in_total", "counter", "bytes read",
          pd_center_slot_off(bytes_in) },
        { "pushd_bytes_out_total", "counter", "bytes written",
          pd_center_slot_off(bytes_out) },
        { "pushd_messages_accepted_total", "counter",
          "pushes and broadcasts accepted by the API",
          pd_center_slot_off(delivery[PD_DLV_ACCEPTED]) },
        { "pushd_messages_delivered_total", "counter",
          "message frames queued to connections",
          pd_center_slot_off(delivery[PD_DLV_DELIVERED]) },
        { "pushd_messages_acked_total", "counter", "acks from clients",
          pd_center_slot_off(delivery[PD_DLV_ACKED]) },
        { "pushd_messages_redelivered_total", "counter",
          "stored messages sent again on (re)connect or bind",
          pd_center_slot_off(delivery[PD_DLV_REDELIVERED]) },
        { "pushd_qos0_dropped_total", "counter",
          "qos 0 messages that reached no connection",
          pd_center_slot_off(delivery[PD_DLV_QOS0_DROPPED]) },
        { "pushd_channel_full_total", "counter",
          "delivery batches a worker's channel refused",
          pd_center_slot_off(delivery[PD_DLV_CHANNEL_FULL]) },
        { "pushd_broadcasts_total", "counter", "broadcasts accepted",
          pd_center_slot_off(delivery[PD_DLV_BROADCASTS]) },
        { "pushd_broadcast_frames_total", "counter",
          "broadcast frames queued to connections",
          pd_center_slot_off(delivery[PD_DLV_BCAST_SENT]) },
        { "pushd_store_full_total", "counter", "pushes refused with 503",
          pd_center_slot_off(delivery[PD_DLV_STORE_FULL]) },
        { "pushd_rate_limited_total", "counter", "API requests refused "
          "with 429", pd_center_slot_off(delivery[PD_DLV_RATE_LIMITED]) },
        { "pushd_api_waited_total", "counter", "API requests held while "
          "a worker's channel was backed up",
          pd_center_slot_off(delivery[PD_DLV_API_WAITED]) },
    };

    buf = pd_pnalloc(hc->pool, size);
    if (buf == NULL || pd_stats == NULL) {
        (void) pd_http_send_error(hc, 500, "out of memory");
        return;
    }

    t.pos = buf;
    t.last = buf + size;

    for (i = 0; i < pd_nelems(families); i++) {
        pd_center_family(&t, families[i].name, families[i].type,
                         families[i].help, families[i].offset);
    }

    pd_center_printf(&t, "# HELP pushd_closes_total connections closed, by "
                     "reason\n# TYPE pushd_closes_total counter\n");

    for (i = 0; i < PD_MAX_PROCESSES; i++) {
        s = &pd_stats->slots[i];

        if (s->pid == 0 || s->generation != pd_cycle->generation) {
            continue;
        }

        for (j = 0; j < PD_ROOM_CLOSE_N; j++) {
            pd_center_printf(&t, "pushd_closes_total{worker=\"%ld\","
                             "reason=\"%s\"} %lu\n", (long) s->wslot,
                             pd_room_close_names[j],
                             (unsigned long)
                                 s->counters[PD_ROOM_STAT_CLOSES + j]);
        }
    }

    /* the node's histogram: the workers' buckets added up */
    pd_memzero(b, sizeof(b));
    sum = 0;

    for (i = 0; i < PD_MAX_PROCESSES; i++) {
        s = &pd_stats->slots[i];

        if (s->pid == 0) {
            continue;
        }

        for (j = 0; j <= PD_STATS_BUCKETS; j++) {
            b[j] += s->latency[j];
        }
        sum += s->latency_sum;
    }

    pd_center_printf(&t, "# HELP pushd_delivery_latency_ms from the API "
                     "accepting a message to its frame written to a "
                     "client\n# TYPE pushd_delivery_latency_ms histogram\n");

    for (cum = 0, j = 0; j < PD_STATS_BUCKETS; j++) {
        cum += b[j];
        pd_center_printf(&t, "pushd_delivery_latency_ms_bucket{le=\"%lu\"} "
                         "%lu\n", (unsigned long) pd_stats_bounds[j],
                         (unsigned long) cum);
    }

    cum += b[PD_STATS_BUCKETS];
    pd_center_printf(&t, "pushd_delivery_latency_ms_bucket{le=\"+Inf\"} %lu\n"
                     "pushd_delivery_latency_ms_sum %lu\n"
                     "pushd_delivery_latency_ms_count %lu\n",
                     (unsigned long) cum, (unsigned long) sum,
                     (unsigned long) cum);

    if (pd_saver != NULL && pd_saver_stats(&st) == PD_OK) {
        pd_center_printf(&t,
            "# TYPE pushd_store_messages gauge\n"
            "pushd_store_messages %lu\n"
            "# TYPE pushd_store_bytes gauge\n"
            "pushd_store_bytes %lu\n"
            "# TYPE pushd_store_capacity_bytes gauge\n"
            "pushd_store_capacity_bytes %lu\n"
            "# TYPE pushd_store_expired_total counter\n"
            "pushd_store_expired_total %lu\n"
            "# TYPE pushd_store_dropped_noack_total counter\n"
            "pushd_store_dropped_noack_total %lu\n"
            "# TYPE pushd_store_mailbox_full_total counter\n"
            "pushd_store_mailbox_full_total %lu\n",
            (unsigned long) st.entries, (unsigned long) st.bytes_used,
            (unsigned long) st.bytes_capacity, (unsigned long) st.expired,
            (unsigned long) st.dropped_noack,
            (unsigned long) st.refused_full);
    }

    (void) pd_http_send_response(hc, 200, "text/plain; version=0.0.4", NULL,
                                 buf, (size_t) (t.pos - buf));
}
