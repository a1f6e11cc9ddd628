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

/* in the order of PD_STAT_* */
pd_stats_counter_t  pd_core_counters[] = {
    { "pushd_connections", NULL, "connections",
      "open client connections", PD_STATS_GAUGE },
    { "pushd_accepted_total", NULL, "accepted",
      "connections accepted", PD_STATS_COUNTER },
    { "pushd_requests_total", NULL, "requests",
      "HTTP requests", PD_STATS_COUNTER },
    { "pushd_bytes_in_total", NULL, "bytes_in",
      "bytes read", PD_STATS_COUNTER },
    { "pushd_bytes_out_total", NULL, "bytes_out",
      "bytes written", PD_STATS_COUNTER },
    { "pushd_channel_full_total", NULL, NULL,
      "delivery batches a worker's channel refused", PD_STATS_COUNTER },
    { "pushd_http_writes_total", NULL, "http_writes",
      "writes of HTTP answers (pipelined ones share one)",
      PD_STATS_COUNTER },
    { "pushd_tls_handshakes_deferred_total", NULL, "tls_handshakes_deferred",
      "TLS handshakes left for a later loop turn, past a turn's "
      "budget of handshake work", PD_STATS_COUNTER },
    { "pushd_http_detached_total", NULL, "http_detached",
      "requests answered later while the ones pipelined after them "
      "were served", PD_STATS_COUNTER },
    { NULL, NULL, NULL, NULL, 0 }
};

pd_int_t
pd_stats_layout(const char **err)
{
    pd_stats_counter_t  *c;
    pd_uint_t            i, base;

    base = 0;

    for (i = 0; pd_modules[i] != NULL; i++) {
        pd_modules[i]->stats_base = base;

        for (c = pd_modules[i]->counters; c != NULL && c->metric; c++) {
            base++;
        }
    }

    if (base > PD_STATS_COUNTERS) {
        *err = "the modules' counters are more than PD_STATS_COUNTERS";
        return PD_ERROR;
    }

    return PD_OK;
}

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

        if (getrandom(pd_stats->sid_key, sizeof(pd_stats->sid_key), 0)
            != (ssize_t) sizeof(pd_stats->sid_key))
        {
            pd_stats->sid_key[0] = pd_stats->boot ^ 0x736964;
            pd_stats->sid_key[1] = pd_stats->seq;
        }
    }

    return PD_OK;
}

pd_int_t
pd_stats_add_zone(pd_cycle_t *cycle)
{
    pd_shm_zone_t  *zone;
    pd_str_t        name = pd_string("pd_stats");
    const char     *err;

    if (pd_stats_layout(&err) != PD_OK) {
        pd_log_error(PD_LOG_EMERG, cycle->log, 0, "%s", err);
        return PD_ERROR;
    }

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
