/*
 * pd_coordinator_state.c: online/offline events per (uid, device, app),
 * queued per state URL, sent in batches (state_batch events or
 * state_flush, whichever comes first), one request at a time per URL so
 * that they arrive in order, and sent again with a jittered backoff while
 * the receiver fails.
 *
 * seq: pd_stats_next_seq(), the node's message sequence, which grows on
 * the node (all its workers) and across its restarts.  So a receiver can
 * order the events of one uid on one node; across nodes it grows with
 * their clocks only (a cluster-wide counter per uid is for later).
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
    u_char                apps[PD_APPS_MAX][PD_APP_MAX + 1];
    pd_coord_upstream_t  *ups[PD_APPS_MAX];
} pd_coord_state_t;

static void pd_coord_state_device(void *data, pd_int_t rc,
    pd_reg_info_t *info, pd_uint_t n);
static void pd_coord_state_emit(pd_coord_state_t *s, const u_char *device);
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
            pd_timer_init(&ups[i]->timer, pd_coord_state_timer, ups[i]);
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

    s.conn = rc->id;
    s.online = online;
    pd_memcpy(s.uid, rc->uid, rc->uid_len);
    s.uid[rc->uid_len] = '\0';
    s.sid_len = pd_room_session_id(rc, s.sid, sizeof(s.sid));

    if (device != NULL) {
        u_char  dev[PD_DEVICE_MAX + 1];

        len = pd_min(device->len, PD_DEVICE_MAX);
        pd_memcpy(dev, device->data, len);
        dev[len] = '\0';

        pd_coord_state_emit(&s, dev);
        return;
    }

    if (pd_register == NULL) {
        pd_coord_state_emit(&s, (u_char *) "");
        return;
    }

    p = malloc(sizeof(pd_coord_state_t));
    if (p == NULL) {
        pd_coord_state_emit(&s, (u_char *) "");
        return;
    }

    *p = s;

    /* asked before the close removes it: the memory register answers
     * now, Redis in the order of the commands */
    if (pd_register->lookup(rc->uid, rc->uid_len, pd_coord_state_device, p)
        != PD_OK)
    {
        pd_coord_state_emit(p, (u_char *) "");
        pd_free(p);
    }
}

static void
pd_coord_state_device(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n)
{
    pd_coord_state_t  *s = data;
    pd_uint_t          i;
    const u_char      *device = (u_char *) "";

    if (rc == PD_OK) {
        for (i = 0; i < n; i++) {
            if (info[i].conn == s->conn && info[i].pid == (int32_t) pd_pid
                && info[i].node[0] == '\0')
            {
                device = info[i].device;
                break;
            }
        }
    }

    pd_coord_state_emit(s, device);
    pd_free(s);
}

static void
pd_coord_state_emit(pd_coord_state_t *s, const u_char *device)
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
        p = pd_json_escape(p, last, device, strlen((char *) device));
        p = pd_slprintf(p, last, ",\"app\":\"%s\",\"state\":\"%s\","
                        "\"sid\":\"%.*s\",\"seq\":%llu,\"node\":",
                        s->apps[i], s->online ? "online" : "offline",
                        (int) s->sid_len, s->sid,
                        (unsigned long long) pd_stats_next_seq());
        p = pd_json_escape(p, last, ccf->node_id.data, ccf->node_id.len);
        p = pd_slprintf(p, last, ",\"ts\":%llu}",
                        (unsigned long long) pd_coord_now());

        if (pd_coord_batch_push(&up->batch, buf, (size_t) (p - buf))
            != PD_OK)
        {
            pd_coord_stat(PD_COORD_STAT_DROPPED);

            /* a receiver down for long would flood the log otherwise */
            if ((up->batch.dropped & (up->batch.dropped - 1)) == 0) {
                pd_log_error(PD_LOG_WARN, pd_log_root, 0,
                             "coordinator: state queue of %s full: "
                             "%llu events dropped so far", up->url.data,
                             (unsigned long long) up->batch.dropped);
            }

            continue;
        }

        pd_coord_stat_add(PD_COORD_STAT_QUEUED, 1);
        pd_coord_state_schedule(up);
    }
}

static void
pd_coord_state_schedule(pd_coord_upstream_t *up)
{
    if (up->busy || up->backoff || up->batch.n == 0) {
        return;
    }

    if (up->batch.n >= up->batch.batch || pd_coord_conf->state_flush == 0) {
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
    pd_coord_upstream_t  *up = t->data;

    if (up->backoff) {
        up->backoff = 0;
        pd_coord_stat(PD_COORD_STAT_RETRIES);
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
    pd_coord_stat_add(PD_COORD_STAT_QUEUED, -(int64_t) n);
    pd_coord_stat_add(PD_COORD_STAT_EVENTS, n);

    pd_coord_state_schedule(up);
}
