/*
 * pd_stats.h: per-process counters in a shared-memory zone, so any worker
 * (the center) can report every worker's figures without asking them.
 * Each slot has one writer (its process); readers tolerate a slightly
 * stale view, which is why plain aligned 64-bit stores suffice here.
 */

#ifndef PD_STATS_H
#define PD_STATS_H

#include <pthread.h>

/* upper bounds (ms) of the accept-to-write latency histogram's buckets;
 * one more bucket counts everything above the last */
#define PD_STATS_BUCKETS  12
extern const uint64_t  pd_stats_bounds[PD_STATS_BUCKETS];

/*
 * The counters of a process are the modules': each module describes its
 * own in a table on its pd_module_t (pd_stats_counter_t, NULL-ended) and
 * gets consecutive places in the slot, from stats_base, laid out in
 * module order at start-up (pd_stats_layout).  The center reports every
 * described counter, in /metrics and /v1/stats, without knowing whose it
 * is.
 */
#define PD_STATS_COUNTERS  64

#define PD_STATS_COUNTER   0
#define PD_STATS_GAUGE     1

typedef struct {
    const char   *metric;        /* the Prometheus family; NULL ends */
    const char   *labels;        /* of this sample (reason="idle"), NULL */
    const char   *key;           /* in /v1/stats' worker object, NULL: not
                                  * there; "group.name" nests */
    const char   *help;
    pd_uint_t     type;          /* PD_STATS_COUNTER or PD_STATS_GAUGE */
} pd_stats_counter_t;

typedef struct {
    int64_t      pid;            /* 0: free */
    uint64_t     generation;
    int64_t      wslot;
    uint64_t     started;        /* unix time */
    uint64_t     counters[PD_STATS_COUNTERS];
    uint64_t     latency[PD_STATS_BUCKETS + 1];  /* histogram, ms */
    uint64_t     latency_sum;    /* ms */
} pd_stats_slot_t;

typedef struct {
    uint64_t         seq;        /* message ids of this node (pd_seq.c) */
    uint64_t         seq_limit;  /* the mark in seq_file: ids up to it */
    uint64_t         seq_floor;  /* and above this one are ours */
    pthread_mutex_t  seq_lock;   /* held to move the mark */
    uint64_t         boot;       /* this node's run, random, kept across
                                  * reloads: a cluster tells a restarted
                                  * node's stale entries by it */
    uint64_t         sid_key[2]; /* the session ids' hash key, random,
                                  * the same in every worker: any of them
                                  * tells whose a resumed session is */
    pd_stats_slot_t  slots[PD_MAX_PROCESSES];
} pd_stats_t;

extern pd_stats_t       *pd_stats;       /* the zone, NULL before init */
extern pd_stats_slot_t  *pd_stats_self;  /* this process's slot */

/* the core module's counters: it is first, so they start at 0 */
#define PD_STAT_CONNECTIONS    0   /* open client connections */
#define PD_STAT_ACCEPTED       1
#define PD_STAT_REQUESTS       2   /* HTTP requests */
#define PD_STAT_BYTES_IN       3
#define PD_STAT_BYTES_OUT      4
#define PD_STAT_CHANNEL_FULL   5   /* a worker's channel refused a batch */
#define PD_STAT_HTTP_WRITES    6   /* writes of HTTP answers */
#define PD_STAT_TLS_DEFERRED   7   /* TLS handshakes left for a later turn */
#define PD_STAT_HTTP_DETACHED  8   /* requests detached (pd_http_detach) */

extern pd_stats_counter_t  pd_core_counters[];

/* counter i of module m (its index in the module's own table) */
#define pd_stats_module_add(m, i, n)                                        \
    if (pd_stats_self) pd_stats_self->counters[(m).stats_base + (i)] += (n)

/*
 * Gives each module's counters their places; PD_ERROR (with a message
 * in err) when they are more than PD_STATS_COUNTERS in all.
 */
pd_int_t pd_stats_layout(const char **err);
pd_int_t pd_stats_add_zone(pd_cycle_t *cycle);
void pd_stats_latency(pd_msec_t ms);
void pd_stats_claim(pd_int_t process_slot, pd_int_t wslot,
    pd_uint_t generation);
void pd_stats_release(pd_int_t process_slot);

/* the core's counters, by PD_STAT_* */
#define pd_stats_inc(i)  if (pd_stats_self) pd_stats_self->counters[i]++
#define pd_stats_dec(i)  if (pd_stats_self) pd_stats_self->counters[i]--
#define pd_stats_add(i, n)  if (pd_stats_self) pd_stats_self->counters[i] += (n)

#endif /* PD_STATS_H */
