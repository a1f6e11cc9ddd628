/*
 * pd_stats.c: the shared per-process counters zone.
 */

#include "pd_core.h"

#include <sys/random.h>

pd_stats_t       *pd_stats;
pd_stats_slot_t  *pd_stats_self;

static int  pd_stats_tag;

const uint64_t  pd_stats_bounds[PD_STATS_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000
};

static pd_int_t
pd_stats_init_zone(pd_shm_zone_t *zone, void *data)
{
    struct timeval  tv;

    zone->data = zone->shm.addr;
    pd_stats = zone->data;

    if (data == NULL) {
        pd_memzero(zone->shm.addr, zone->shm.size);
        (void) gettimeofday(&tv, NULL);
        pd_stats->seq = ((uint64_t) tv.tv_sec * 1000
                         + (uint64_t) tv.tv_usec / 1000) << 12;

        if (getrandom(&pd_stats->boot, sizeof(uint64_t), 0)
            != (ssize_t) sizeof(uint64_t))
        {
            pd_stats->boot = pd_stats->seq ^ (uint64_t) getpid();
        }
    }

    return PD_OK;
}

pd_int_t
pd_stats_add_zone(pd_cycle_t *cycle)
{
    pd_shm_zone_t  *zone;
    pd_str_t        name = pd_string("pd_stats");

    zone = pd_shared_memory_add(cycle, &name, sizeof(pd_stats_t),
                                &pd_stats_tag);
    if (zone == NULL) {
        return PD_ERROR;
    }

    zone->init = pd_stats_init_zone;
    return PD_OK;
}

void
pd_stats_claim(pd_int_t process_slot, pd_int_t wslot, pd_uint_t generation)
{
    pd_stats_slot_t  *s;

    if (pd_stats == NULL || process_slot < 0
        || process_slot >= PD_MAX_PROCESSES)
    {
        return;
    }

    s = &pd_stats->slots[process_slot];
    pd_memzero(s, sizeof(pd_stats_slot_t));

    s->generation = generation;
    s->wslot = wslot;
    s->started = (uint64_t) time(NULL);
    s->pid = pd_pid;

    pd_stats_self = s;
}

/* the master, after reaping: the slot may be reused */
void
pd_stats_release(pd_int_t process_slot)
{
    if (pd_stats != NULL && process_slot >= 0
        && process_slot < PD_MAX_PROCESSES)
    {
        pd_stats->slots[process_slot].pid = 0;
    }
}

uint64_t
pd_stats_next_seq(void)
{
    return __atomic_add_fetch(&pd_stats->seq, 1, __ATOMIC_RELAXED);
}

void
pd_stats_latency(pd_msec_t ms)
{
    pd_uint_t  i;

    if (pd_stats_self == NULL) {
        return;
    }

    for (i = 0; i < PD_STATS_BUCKETS && ms > pd_stats_bounds[i]; i++) {
        /* buckets are few: a scan beats a search */
    }

    pd_stats_self->latency[i]++;
    pd_stats_self->latency_sum += ms;
}
