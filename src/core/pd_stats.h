/*
 * pd_stats.h: per-process counters in a shared-memory zone, so any worker
 * (the center) can report every worker's figures without asking them.
 * Each slot has one writer (its process); readers tolerate a slightly
 * stale view, which is why plain aligned 64-bit stores suffice here.
 */

#ifndef PD_STATS_H
#define PD_STATS_H

/* upper bounds (ms) of the accept-to-write latency histogram's buckets;
 * one more bucket counts everything above the last */
#define PD_STATS_BUCKETS  12
extern const uint64_t  pd_stats_bounds[PD_STATS_BUCKETS];

typedef struct {
    int64_t      pid;            /* 0: free */
    uint64_t     generation;
    int64_t      wslot;
    uint64_t     started;        /* unix time */
    uint64_t     connections;    /* active client connections */
    uint64_t     accepted;
    uint64_t     requests;       /* HTTP requests */
    uint64_t     bytes_in;
    uint64_t     bytes_out;
    uint64_t     counters[16];   /* owned by the room */
    uint64_t     delivery[16];   /* owned by the delivery path */
    uint64_t     latency[PD_STATS_BUCKETS + 1];  /* histogram, ms */
    uint64_t     latency_sum;    /* ms */
} pd_stats_slot_t;

typedef struct {
    uint64_t         seq;        /* message ids of this node, see below */
    uint64_t         boot;       /* this node's run, random, kept across
                                  * reloads: a cluster tells a restarted
                                  * node's stale entries by it */
    pd_stats_slot_t  slots[PD_MAX_PROCESSES];
} pd_stats_t;

extern pd_stats_t       *pd_stats;       /* the zone, NULL before init */
extern pd_stats_slot_t  *pd_stats_self;  /* this process's slot */

/* the delivery counters, by index into pd_stats_slot_t.delivery */
#define PD_DLV_ACCEPTED        0   /* messages accepted by the API */
#define PD_DLV_DELIVERED       1   /* msg frames queued to connections */
#define PD_DLV_ACKED           2
#define PD_DLV_REDELIVERED     3   /* stored messages sent on (re)connect */
#define PD_DLV_QOS0_DROPPED    4   /* qos 0 that found no way to a client */
#define PD_DLV_CHANNEL_FULL    5   /* a worker's channel refused a batch */
#define PD_DLV_BROADCASTS      6   /* broadcasts started by this worker */
#define PD_DLV_STORE_FULL      7   /* pushes refused with 503 */
#define PD_DLV_RATE_LIMITED    8   /* API requests refused with 429 */
#define PD_DLV_BCAST_SENT      9   /* broadcast frames queued */
#define PD_DLV_API_WAITED     10   /* API requests held for a channel */
#define PD_DLV_N              11

#define pd_stats_dlv(i, n)                                                  \
    if (pd_stats_self) pd_stats_self->delivery[i] += (n)

pd_int_t pd_stats_add_zone(pd_cycle_t *cycle);
/*
 * The next message sequence number of this node: unique across workers,
 * increasing, and (started from the wall clock in ms << 12 when the zone
 * is made) increasing across restarts too.
 */
uint64_t pd_stats_next_seq(void);
void pd_stats_latency(pd_msec_t ms);
void pd_stats_claim(pd_int_t process_slot, pd_int_t wslot,
    pd_uint_t generation);
void pd_stats_release(pd_int_t process_slot);

#define pd_stats_inc(field)  if (pd_stats_self) pd_stats_self->field++
#define pd_stats_dec(field)  if (pd_stats_self) pd_stats_self->field--
#define pd_stats_add(field, n)  if (pd_stats_self) pd_stats_self->field += (n)

#endif /* PD_STATS_H */
