/*
 * pd_coordinator.h: the coordinator, the business's webhooks: a client's
 * "up" frames are POSTed to its app's uplink URL and the answer routed
 * back; online/offline events are batched to the app's state URL.  Every
 * body is signed (X-Pushd-Signature); the HTTP client is libcurl's
 * multi-socket interface on the worker's loop.
 */

#ifndef PD_COORDINATOR_H
#define PD_COORDINATOR_H

#include <curl/curl.h>

/* one state event, serialised when it is queued */
typedef struct pd_coord_event_s  pd_coord_event_t;

struct pd_coord_event_s {
    pd_coord_event_t  *next;
    size_t             len;
    u_char             data[];
};

/*
 * The state events waiting for one receiver, oldest first.  A request
 * carries the first `sending` of them; they leave the queue only when it
 * was answered 2xx, so a receiver that is down gets them later, in order.
 * Pure bookkeeping (pd_coordinator_batch.c), driven by the state code.
 */
typedef struct {
    pd_coord_event_t  *head;
    pd_coord_event_t **tail;
    pd_uint_t          n;          /* queued, those being sent included */
    pd_uint_t          max;        /* beyond: dropped and counted */
    pd_uint_t          batch;      /* most events per request */
    pd_uint_t          sending;    /* the first n of the request out */
    pd_uint_t          failures;   /* in a row, for the backoff */
    uint64_t           dropped;
} pd_coord_batch_t;

/* one callback URL; a worker counts its own requests to it */
typedef struct {
    pd_str_t           url;        /* NUL-terminated */
    pd_uint_t          pending;    /* in flight or queued in libcurl */
    pd_uint_t          state;      /* a state URL: the fields below */
    pd_coord_batch_t   batch;
    pd_timer_t         timer;      /* flush or retry */
    pd_uint_t          index;      /* in the conf's upstreams */
    void              *row;        /* its figures in the zone, or NULL */
    unsigned           busy:1;     /* a batch is out */
    unsigned           backoff:1;  /* waiting before the retry */
} pd_coord_upstream_t;

typedef struct {
    pd_str_t               app;
    pd_array_t            *types;    /* of pd_str_t; NULL: every type */
    pd_coord_upstream_t   *uplink;   /* NULL: no uplink */
    pd_coord_upstream_t   *state;    /* NULL: no state events */
} pd_coord_app_t;

typedef struct {
    pd_str_t         secret;
    pd_msec_t        timeout;
    pd_array_t      *apps;           /* of pd_coord_app_t */
    pd_array_t      *upstreams;      /* of pd_coord_upstream_t * */
    pd_str_t         ca;             /* CA bundle for https; NULL: system */
    pd_str_t         ca_pem;         /* its bytes, read with the conf */
    pd_int_t         max_pending;    /* per upstream and worker */
    pd_int_t         connections;    /* per host and worker */
    pd_int_t         up_rate;        /* up frames per connection and s */
    pd_int_t         state_batch;
    pd_msec_t        state_flush;
    pd_int_t         state_queue;
    pd_msec_t        state_retry;    /* first backoff */
    pd_msec_t        state_retry_max;
    pd_msec_t        state_debounce; /* 0: off */
    pd_shm_zone_t   *zone;           /* the upstreams' figures */
} pd_coord_conf_t;

extern pd_module_t  pd_coordinator_module;

/* the counters, by index into pd_coord_counters (pd_coordinator_module.c) */
#define PD_COORD_STAT_UPLINKS       0   /* uplink requests sent */
#define PD_COORD_STAT_STATES        1   /* state requests sent */
#define PD_COORD_STAT_ERR_STATUS    2   /* answered, not 2xx */
#define PD_COORD_STAT_ERR_TIMEOUT   3
#define PD_COORD_STAT_ERR_FAILED    4   /* no connection, broken answer */
#define PD_COORD_STAT_ERR_BUSY      5   /* refused at the bound */
#define PD_COORD_STAT_ERR_RATE      6   /* a client over its rate */
#define PD_COORD_STAT_ERR_ROUTE     7   /* an up with no route, invalid */
#define PD_COORD_STAT_RETRIES       8   /* state batches sent again */
#define PD_COORD_STAT_PENDING       9   /* requests out, gauge */
#define PD_COORD_STAT_QUEUED       10   /* state events queued, gauge */
#define PD_COORD_STAT_EVENTS       11   /* state events delivered */
#define PD_COORD_STAT_DROPPED      12   /* state events over the bound */
#define PD_COORD_STAT_DEBOUNCED    13   /* offline events held, then dropped */
#define PD_COORD_STATS             14

#define pd_coord_stat(i)  pd_stats_module_add(pd_coordinator_module, i, 1)
#define pd_coord_stat_add(i, n)                                              \
    pd_stats_module_add(pd_coordinator_module, i, n)

/*
 * The same counters per upstream, and its latency histogram, in a shared
 * zone (pd_coordinator_stats.c): pd_coord_ustat() counts in both.
 */
pd_int_t pd_coord_stats_zone(pd_cycle_t *cycle, pd_coord_conf_t *ccf);
void pd_coord_stats_claim(pd_coord_conf_t *ccf);
void pd_coord_ustat(pd_coord_upstream_t *up, pd_uint_t i, int64_t n);
void pd_coord_ulatency(pd_coord_upstream_t *up, pd_msec_t ms);
/* the module's /metrics families: pushd_coordinator_upstream_* */
u_char *pd_coord_metrics(u_char *p, u_char *last);

/* the worker's coordinator conf, NULL when the section is absent */
extern pd_coord_conf_t  *pd_coord_conf;

pd_coord_app_t *pd_coord_app(const u_char *name, size_t len);
/* an earlier route of the same app as last, NULL: none (checks) */
pd_coord_app_t *pd_coord_app_in(pd_coord_conf_t *ccf, pd_coord_app_t *last);

/*
 * HTTP (pd_coordinator_http.c).  A request's answer: rc PD_OK with the
 * status and body (NUL-terminated, NULL when empty), or an error phrase
 * and rc PD_AGAIN (timed out) or PD_ERROR.  The body is the request's;
 * it is freed after the handler returns.
 */
typedef struct {
    pd_int_t         rc;
    long             status;
    u_char          *body;
    size_t           len;
    const char      *error;
} pd_coord_answer_t;

typedef void (*pd_coord_done_pt)(void *data, pd_coord_answer_t *a);

pd_int_t pd_coord_http_init(pd_cycle_t *cycle, pd_coord_conf_t *conf);
void pd_coord_http_exit(void);

/*
 * A signed POST of body (malloc()ed: the request owns it from here, in
 * every case) to up.  PD_OK: done is called once, never before this
 * returns.  PD_BUSY: up is at its bound, PD_ERROR: no memory; done is
 * not called.
 */
pd_int_t pd_coord_post(pd_coord_upstream_t *up, u_char *body, size_t len,
    pd_coord_done_pt done, void *data);

/* "sha256=" and the lowercase hex HMAC-SHA256 of body: 71 bytes and a
 * NUL into out; PD_ERROR when libcrypto fails */
#define PD_COORD_SIG_LEN  (sizeof("sha256=") - 1 + 64)

pd_int_t pd_coord_sign(pd_str_t *secret, const u_char *body, size_t len,
    u_char out[PD_COORD_SIG_LEN + 1]);

/* the batch queue (pd_coordinator_batch.c) */
void pd_coord_batch_init(pd_coord_batch_t *b, pd_uint_t max,
    pd_uint_t batch);
/* PD_OK, PD_BUSY (full: dropped and counted), PD_ERROR (no memory) */
pd_int_t pd_coord_batch_push(pd_coord_batch_t *b, const u_char *json,
    size_t len);
/* {"events":[...]} of the first events (malloc()ed, the caller's), NULL
 * when the queue is empty or on no memory; marks them as being sent */
u_char *pd_coord_batch_take(pd_coord_batch_t *b, size_t *len);
/* the request out was answered: ok drops its events, else they stay */
void pd_coord_batch_done(pd_coord_batch_t *b, pd_uint_t ok);
/* the wait before the next try: base doubled per failure up to max,
 * then a random half of it to spare (rnd), so nodes do not retry as one */
pd_msec_t pd_coord_batch_backoff(pd_coord_batch_t *b, pd_msec_t base,
    pd_msec_t max, uint32_t rnd);
void pd_coord_batch_free(pd_coord_batch_t *b);

/*
 * A retiring worker sends its state events before it exits: the held
 * offlines are decided, the queues sent without waiting for state_flush,
 * and the worker's exit waits (pd_exit_holds) while any is left, up to
 * worker_shutdown_timeout.  pd_coord_exit_hold() takes or drops that
 * hold; it is called wherever the queues change.
 */
void pd_coord_exit_hold(void);
void pd_coord_state_retire(void);
pd_uint_t pd_coord_state_busy(void);
void pd_coord_debounce_retire(void);
pd_uint_t pd_coord_debounce_busy(void);

/* the room's hooks (pd_coordinator_up.c, pd_coordinator_state.c) */
pd_int_t pd_coord_up(pd_room_conn_t *rc, pd_room_up_t *up);
void pd_coord_state(pd_room_conn_t *rc, const pd_str_t *device,
    pd_int_t app, pd_uint_t online);
void pd_coord_state_init(pd_coord_conf_t *ccf);
void pd_coord_state_exit(void);
/* one serialised event into up's queue: sent, or dropped and counted */
void pd_coord_state_queue(pd_coord_upstream_t *up, const u_char *json,
    size_t len);

/*
 * Debounce (pd_coordinator_debounce.c): an offline event of uid, device
 * and app held for state_debounce, then queued unless the register has
 * them online again.  PD_OK: held; PD_DECLINED: off or full, queue it.
 */
pd_int_t pd_coord_debounce_hold(pd_coord_upstream_t *up, const u_char *uid,
    const u_char *device, const u_char *app, uint64_t conn,
    const u_char *json, size_t len);
void pd_coord_debounce_init(void);
void pd_coord_debounce_exit(void);

/* unix time in ms, for the bodies' "ts" */
uint64_t pd_coord_now(void);

#endif /* PD_COORDINATOR_H */
