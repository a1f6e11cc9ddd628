/*
 * pd_center_stats.c: GET /v1/stats from the shared counters, and
 * GET /v1/workers, which probes every sibling through the inter-worker
 * channel and answers once all have replied or the probe timed out.
 */

#include "pd_core.h"
#include "pd_center.h"
#include "pd_room.h"

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
