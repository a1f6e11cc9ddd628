/*
 * pd_center_stats.c: GET /v1/stats from the shared counters, and
 * GET /v1/workers, which probes every sibling through the inter-worker
 * channel and answers once all have replied or the probe timed out.
 */

#include "pd_core.h"
#include "pd_center.h"
#include "pd_room.h"
#include "pd_saver.h"
#include "pd_register.h"

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

/*
 * A worker's counters that have a key, as JSON members after others:
 * ,"name":N, and ,"group":{"a":N,"b":N} for keys "group.a", "group.b"
 * (a group's keys come one after another in a module's table).
 */
static u_char *
pd_center_worker_counters(u_char *p, u_char *last, pd_stats_slot_t *s)
{
    pd_stats_counter_t  *c;
    const char          *dot, *group;
    pd_uint_t            i, k;
    size_t               glen;

    group = NULL;
    glen = 0;

    for (i = 0; pd_modules[i] != NULL; i++) {
        k = pd_modules[i]->stats_base;

        for (c = pd_modules[i]->counters; c != NULL && c->metric; c++, k++) {
            if (c->key == NULL) {
                continue;
            }

            dot = strchr(c->key, '.');

            if (group != NULL
                && (dot == NULL || (size_t) (dot - c->key) != glen
                    || strncmp(c->key, group, glen) != 0))
            {
                p = pd_slprintf(p, last, "}");
                group = NULL;
            }

            if (dot != NULL && group == NULL) {
                group = c->key;
                glen = (size_t) (dot - c->key);
                p = pd_slprintf(p, last, ",\"%.*s\":{", (int) glen, group);

                p = pd_slprintf(p, last, "\"%s\":%lu", dot + 1,
                                (unsigned long) s->counters[k]);
                continue;
            }

            p = pd_slprintf(p, last, ",\"%s\":%lu",
                            dot != NULL ? dot + 1 : c->key,
                            (unsigned long) s->counters[k]);
        }
    }

    if (group != NULL) {
        p = pd_slprintf(p, last, "}");
    }

    return p;
}

/*
 * The shared zones: what each holds, what it could hold and the bytes of
 * one slot, so that an operator can size them (and the bench count the
 * bytes a connection occupies in them, which the processes' PSS shows
 * only as the pages are touched).
 */
static u_char *
pd_center_zones(u_char *p, u_char *last)
{
    pd_reg_zone_stats_t  rz;
    pd_msg_stats_t       st;
    const char          *sep;

    p = pd_slprintf(p, last, ",\"zones\":{");
    sep = "";

    if (pd_register_zone != NULL
        && pd_reg_zone_stats(pd_register_zone, &rz) == PD_OK)
    {
        p = pd_slprintf(p, last, "\"register\":{\"bytes\":%lu,"
                        "\"entry_bytes\":%u,\"used\":%u,"
                        "\"more_used\":%u,\"capacity\":%u,"
                        "\"bucket_bytes\":%u,\"buckets\":%u,"
                        "\"ip_entry_bytes\":%u,\"ips_used\":%u,"
                        "\"ips_capacity\":%u,\"ip_buckets\":%u}",
                        (unsigned long) rz.bytes, rz.entry_bytes, rz.used,
                        rz.more_used, rz.capacity, rz.bucket_bytes, rz.buckets,
                        rz.ip_entry_bytes, rz.ips_used, rz.ips_capacity,
                        rz.ip_buckets);
        sep = ",";
    }

    if (pd_saver_stats(&st) == PD_OK) {
        p = pd_slprintf(p, last, "%s\"store\":{\"bytes\":%lu,"
                        "\"entry_bytes\":%u,\"used\":%lu,\"capacity\":%lu,"
                        "\"bucket_bytes\":4,\"buckets\":%u,"
                        "\"mailbox_bytes\":%u,\"mailboxes_used\":%lu,"
                        "\"mailboxes_capacity\":%u,\"cursor_bytes\":%u,"
                        "\"cursors_used\":%lu,\"cursors_capacity\":%u,"
                        "\"payload_bytes_used\":%lu,"
                        "\"payload_bytes_capacity\":%lu}",
                        sep, (unsigned long) st.bytes, st.entry_bytes,
                        (unsigned long) st.entries,
                        (unsigned long) st.max_entries, st.buckets,
                        st.mailbox_bytes, (unsigned long) st.mailboxes,
                        st.max_mailboxes, st.cursor_bytes,
                        (unsigned long) st.cursors, st.max_cursors,
                        (unsigned long) st.bytes_used,
                        (unsigned long) st.bytes_capacity);
    }

    return pd_slprintf(p, last, "}");
}

void
pd_center_stats(pd_http_conn_t *hc)
{
    pd_core_conf_t   *ccf;
    pd_stats_slot_t  *s;
    u_char           *buf, *p, *last;
    pd_uint_t         i, first;
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

        conns += s->counters[PD_STAT_CONNECTIONS];

        p = pd_slprintf(p, last, "%s{\"slot\":%ld,\"pid\":%ld,"
                        "\"started\":%lu", first ? "" : ",",
                        (long) s->wslot, (long) s->pid,
                        (unsigned long) s->started);
        p = pd_center_worker_counters(p, last, s);
        p = pd_slprintf(p, last, "}");
        first = 0;
    }

    p = pd_slprintf(p, last, "],\"connections\":%lu",
                    (unsigned long) conns);
    p = pd_center_zones(p, last);
    p = pd_slprintf(p, last, "}\n");

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

    pd_timer_init(&pr->timer, pd_center_probe_timeout);
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
    pd_center_probe_done(pd_timer_owner(t, pd_center_probe_t, timer));
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

/*
 * Every module's counters: a family's HELP and TYPE once, then a sample
 * per worker of this generation (and per label set, for a family of
 * several counters).
 */
static void
pd_center_counter_families(pd_center_text_t *t)
{
    pd_stats_counter_t  *c;
    pd_stats_slot_t     *s;
    const char          *prev;
    pd_uint_t            i, j, k;

    prev = "";

    for (i = 0; pd_modules[i] != NULL; i++) {
        k = pd_modules[i]->stats_base;

        for (c = pd_modules[i]->counters; c != NULL && c->metric; c++, k++) {
            if (strcmp(c->metric, prev) != 0) {
                pd_center_printf(t, "# HELP %s %s\n# TYPE %s %s\n",
                                 c->metric, c->help, c->metric,
                                 c->type == PD_STATS_GAUGE ? "gauge"
                                                           : "counter");
                prev = c->metric;
            }

            for (j = 0; j < PD_MAX_PROCESSES; j++) {
                s = &pd_stats->slots[j];

                if (s->pid == 0 || s->generation != pd_cycle->generation) {
                    continue;
                }

                pd_center_printf(t, "%s{worker=\"%ld\"%s%s} %lu\n",
                                 c->metric, (long) s->wslot,
                                 c->labels ? "," : "",
                                 c->labels ? c->labels : "",
                                 (unsigned long) s->counters[k]);
            }
        }
    }
}

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

    buf = pd_pnalloc(hc->pool, size);
    if (buf == NULL || pd_stats == NULL) {
        (void) pd_http_send_error(hc, 500, "out of memory");
        return;
    }

    t.pos = buf;
    t.last = buf + size;

    pd_center_counter_families(&t);

    for (i = 0; pd_modules[i] != NULL; i++) {
        if (pd_modules[i]->metrics != NULL) {
            t.pos = pd_modules[i]->metrics(t.pos, t.last);
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

    if (pd_saver_stats(&st) == PD_OK) {
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
