/*
 * pd_coordinator_debounce.c: flapping clients (state_debounce).  A phone
 * on a bad network drops and reconnects every few seconds; each time the
 * business would see an offline and an online, and act on the offline
 * (send a notice elsewhere, mark the user away).  With state_debounce an
 * offline event is held that long: when it is due, the register is asked
 * whether the same uid, device and app is online again (on any worker,
 * or any node of a cluster), and if so the offline is dropped and
 * counted.  The new session's online is sent as usual (its sid and a
 * higher seq), so the business still learns of the new session and never
 * sees the user leave.
 *
 * The held events are formatted already (their seq was taken when they
 * happened) and all wait the same time, so a FIFO is in due order and
 * one timer serves it.  At most state_queue of them per worker; beyond,
 * an offline is queued at once, undebounced.  A retiring worker decides
 * the held ones at once (pd_coord_debounce_retire), so they are sent
 * before it exits rather than lost with it.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_register.h"
#include "pd_coordinator.h"

typedef struct {
    pd_queue_t            queue;
    pd_msec_t             due;
    pd_coord_upstream_t  *up;
    uint64_t              conn;      /* the closed connection's */
    u_char                uid[PD_UID_MAX + 1];
    u_char                device[PD_DEVICE_MAX + 1];
    u_char                app[PD_APP_MAX + 1];
    size_t                len;
    u_char                json[];
} pd_coord_held_t;

static pd_queue_t   pd_coord_held;
static pd_uint_t    pd_coord_nheld;
static pd_uint_t    pd_coord_asking;    /* register lookups out */
static pd_timer_t   pd_coord_held_timer;

static void pd_coord_debounce_due(pd_timer_t *t);
static void pd_coord_debounce_answer(void *data, pd_int_t rc,
    pd_reg_info_t *info, pd_uint_t n);

void
pd_coord_debounce_init(void)
{
    pd_queue_init(&pd_coord_held);
    pd_coord_nheld = 0;
    pd_timer_init(&pd_coord_held_timer, pd_coord_debounce_due);
}

void
pd_coord_debounce_exit(void)
{
    pd_coord_held_t  *h;
    pd_queue_t       *q;

    if (pd_timer_is_set(&pd_coord_held_timer)) {
        pd_timer_del(&pd_timers, &pd_coord_held_timer);
    }

    if (pd_coord_nheld) {
        pd_log_error(PD_LOG_WARN, pd_log_root, 0,
                     "coordinator: %lu held offline events not sent at exit",
                     (unsigned long) pd_coord_nheld);
    }

    while (!pd_queue_empty(&pd_coord_held)) {
        q = pd_queue_head(&pd_coord_held);
        pd_queue_remove(q);
        h = pd_queue_data(q, pd_coord_held_t, queue);
        pd_free(h);
    }

    pd_coord_nheld = 0;
}

pd_int_t
pd_coord_debounce_hold(pd_coord_upstream_t *up, const u_char *uid,
    const u_char *device, const u_char *app, uint64_t conn,
    const u_char *json, size_t len)
{
    pd_coord_held_t  *h;

    /* a retiring worker cannot wait: its offlines go as they come */
    if (pd_coord_conf->state_debounce == 0 || pd_register == NULL
        || pd_coord_nheld >= (pd_uint_t) pd_coord_conf->state_queue
        || pd_exiting)
    {
        return PD_DECLINED;
    }

    h = malloc(sizeof(pd_coord_held_t) + len);
    if (h == NULL) {
        return PD_DECLINED;
    }

    h->due = pd_current_msec + pd_coord_conf->state_debounce;
    h->up = up;
    h->conn = conn;
    (void) snprintf((char *) h->uid, sizeof(h->uid), "%s", uid);
    (void) snprintf((char *) h->device, sizeof(h->device), "%s", device);
    (void) snprintf((char *) h->app, sizeof(h->app), "%s", app);
    h->len = len;
    pd_memcpy(h->json, json, len);

    pd_queue_insert_tail(&pd_coord_held, &h->queue);
    pd_coord_nheld++;

    if (!pd_timer_is_set(&pd_coord_held_timer)) {
        (void) pd_timer_add(&pd_timers, &pd_coord_held_timer, pd_current_msec,
                            pd_coord_conf->state_debounce);
    }

    return PD_OK;
}

static void
pd_coord_debounce_due(pd_timer_t *t)
{
    pd_coord_held_t  *h;
    pd_queue_t       *q;

    (void) t;

    while (!pd_queue_empty(&pd_coord_held)) {
        q = pd_queue_head(&pd_coord_held);
        h = pd_queue_data(q, pd_coord_held_t, queue);

        if (h->due > pd_current_msec) {
            (void) pd_timer_add(&pd_timers, &pd_coord_held_timer,
                                pd_current_msec, h->due - pd_current_msec);
            return;
        }

        pd_queue_remove(q);
        pd_coord_nheld--;
        pd_coord_asking++;

        /* the memory register answers now, Redis later */
        if (pd_register->lookup(h->uid, strlen((char *) h->uid),
                                pd_coord_debounce_answer, h)
            != PD_OK)
        {
            pd_coord_debounce_answer(h, PD_ERROR, NULL, 0);
        }
    }
}

static void
pd_coord_debounce_answer(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n)
{
    pd_coord_held_t  *h = data;
    pd_uint_t         i, j;

    pd_coord_asking--;

    if (pd_coord_conf == NULL) {
        /* answered after the worker's exit began */
        pd_free(h);
        return;
    }

    for (i = 0; rc == PD_OK && i < n; i++) {
        if (info[i].conn == h->conn && info[i].pid == (int32_t) pd_pid
            && info[i].node[0] == '\0')
        {
            continue;       /* the closed one, if Redis still has it */
        }

        if (strcmp((char *) info[i].device, (char *) h->device) != 0) {
            continue;
        }

        for (j = 0; j < info[i].napps && j < PD_APPS_MAX; j++) {
            if (strcmp((char *) info[i].apps[j], (char *) h->app) == 0) {
                pd_coord_ustat(h->up, PD_COORD_STAT_DEBOUNCED, 1);
                pd_free(h);
                pd_coord_exit_hold();
                return;
            }
        }
    }

    /* still offline, or the register could not tell: send it */
    pd_coord_state_queue(h->up, h->json, h->len);
    pd_free(h);
}


/* the worker retires: every held offline is due now */
void
pd_coord_debounce_retire(void)
{
    pd_coord_held_t  *h;
    pd_queue_t       *q;

    for (q = pd_queue_head(&pd_coord_held);
         q != pd_queue_sentinel(&pd_coord_held);
         q = pd_queue_next(q))
    {
        h = pd_queue_data(q, pd_coord_held_t, queue);
        h->due = pd_current_msec;
    }

    if (pd_timer_is_set(&pd_coord_held_timer)) {
        pd_timer_del(&pd_timers, &pd_coord_held_timer);
    }

    pd_coord_debounce_due(&pd_coord_held_timer);
}


/* offlines held, or waiting for the register's answer */
pd_uint_t
pd_coord_debounce_busy(void)
{
    return pd_coord_nheld || pd_coord_asking;
}
