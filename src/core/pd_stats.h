/*
 * pd_stats.h: per-process counters in a shared-memory zone, so any worker
 * (the center) can report every worker's figures without asking them.
 * Each slot has one writer (its process); readers tolerate a slightly
 * stale view, which is why plain aligned 64-bit stores suffice here.
 */

#ifndef PD_STATS_H
#define PD_STATS_H

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
    uint64_t     counters[16];   /* owned by modules, see pd_stats_idx */
} pd_stats_slot_t;

typedef struct {
    pd_stats_slot_t  slots[PD_MAX_PROCESSES];
} pd_stats_t;

extern pd_stats_t       *pd_stats;       /* the zone, NULL before init */
extern pd_stats_slot_t  *pd_stats_self;  /* this process's slot */

pd_int_t pd_stats_add_zone(pd_cycle_t *cycle);
void pd_stats_claim(pd_int_t process_slot, pd_int_t wslot,
    pd_uint_t generation);
void pd_stats_release(pd_int_t process_slot);

#define pd_stats_inc(field)  if (pd_stats_self) pd_stats_self->field++
#define pd_stats_dec(field)  if (pd_stats_self) pd_stats_self->field--
#define pd_stats_add(field, n)  if (pd_stats_self) pd_stats_self->field += (n)

#endif /* PD_STATS_H */
