/*
 * pd_coordinator_stats.c: the coordinator's figures per receiver.  The
 * module's counters (pd_coord_counters) say how the node's callbacks go
 * in all; an operator with several receivers also needs to see which one
 * is slow or failing, so each upstream (URL and kind) has its own row of
 * the same counters and a latency histogram.
 *
 * The rows live in a shared zone, one per worker slot and upstream, so
 * the worker that answers /metrics adds up every worker's rows without
 * asking them.  As with pd_stats, each row has one writer and readers
 * tolerate a slightly stale view; a worker zeroes its rows when it starts.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_coordinator.h"

typedef struct {
    uint64_t   counters[PD_COORD_STATS];
    uint64_t   latency[PD_STATS_BUCKETS + 1];   /* ms, as pd_stats */
    uint64_t   latency_sum;
} pd_coord_row_t;

static int  pd_coord_zone_tag;

static pd_int_t
pd_coord_zone_init(pd_shm_zone_t *zone, void *data)
{
    if (data == NULL) {
        pd_memzero(zone->shm.addr, zone->shm.size);
    }

    zone->data = zone->shm.addr;
    return PD_OK;
}

pd_int_t
pd_coord_stats_zone(pd_cycle_t *cycle, pd_coord_conf_t *ccf)
{
    pd_str_t  name = pd_string("pd_coordinator");
    size_t    size;

    if (ccf->upstreams == NULL || ccf->upstreams->nelts == 0) {
        return PD_OK;
    }

    size = PD_MAX_PROCESSES * ccf->upstreams->nelts * sizeof(pd_coord_row_t);

    ccf->zone = pd_shared_memory_add(cycle, &name, pd_align(size, 4096),
                                     &pd_coord_zone_tag);
    if (ccf->zone == NULL) {
        return PD_ERROR;
    }

    ccf->zone->init = pd_coord_zone_init;
    return PD_OK;
}

static pd_coord_row_t *
pd_coord_row(pd_coord_conf_t *ccf, pd_uint_t slot, pd_uint_t up)
{
    pd_coord_row_t  *rows = ccf->zone->data;

    return &rows[slot * ccf->upstreams->nelts + up];
}

void
pd_coord_stats_claim(pd_coord_conf_t *ccf)
{
    pd_coord_upstream_t  **ups = ccf->upstreams->elts;
    pd_uint_t              i, slot;

    if (pd_stats_self == NULL || ccf->zone == NULL
        || ccf->zone->data == NULL)
    {
        return;
    }

    slot = (pd_uint_t) (pd_stats_self - pd_stats->slots);

    for (i = 0; i < ccf->upstreams->nelts; i++) {
        ups[i]->index = i;
        ups[i]->row = pd_coord_row(ccf, slot, i);
        pd_memzero(ups[i]->row, sizeof(pd_coord_row_t));
    }
}

void
pd_coord_ustat(pd_coord_upstream_t *up, pd_uint_t i, int64_t n)
{
    pd_coord_row_t  *row = up->row;

    pd_coord_stat_add(i, n);

    if (row != NULL) {
        row->counters[i] += (uint64_t) n;
    }
}

void
pd_coord_ulatency(pd_coord_upstream_t *up, pd_msec_t ms)
{
    pd_coord_row_t  *row = up->row;
    pd_uint_t        i;

    if (row == NULL) {
        return;
    }

    for (i = 0; i < PD_STATS_BUCKETS && ms > pd_stats_bounds[i]; i++) {
        /* few buckets: a scan */
    }

    row->latency[i]++;
    row->latency_sum += ms;
}

/* the sum over this generation's workers */
static void
pd_coord_sum(pd_uint_t up, pd_coord_row_t *sum)
{
    pd_coord_row_t   *row;
    pd_stats_slot_t  *s;
    pd_uint_t         j, k;

    pd_memzero(sum, sizeof(pd_coord_row_t));

    for (j = 0; j < PD_MAX_PROCESSES; j++) {
        s = &pd_stats->slots[j];

        if (s->pid == 0 || s->generation != pd_cycle->generation) {
            continue;
        }

        row = pd_coord_row(pd_coord_conf, j, up);

        for (k = 0; k < PD_COORD_STATS; k++) {
            sum->counters[k] += row->counters[k];
        }

        for (k = 0; k <= PD_STATS_BUCKETS; k++) {
            sum->latency[k] += row->latency[k];
        }

        sum->latency_sum += row->latency_sum;
    }
}

/* a label value: the URL's quotes and backslashes escaped */
static u_char *
pd_coord_label(u_char *p, u_char *last, pd_str_t *url)
{
    size_t  i;

    for (i = 0; i < url->len && p + 2 < last; i++) {
        if (url->data[i] == '"' || url->data[i] == '\\') {
            *p++ = '\\';
        }

        *p++ = url->data[i] == '\n' ? ' ' : url->data[i];
    }

    return p;
}

/*
 * The counters of each upstream that concern a receiver, and its
 * histogram, as pushd_coordinator_upstream_* families labelled
 * url="..." and kind="uplink"|"state".
 */
static const struct {
    pd_uint_t    index;
    const char  *metric;
    const char  *labels;
    const char  *type;
} pd_coord_families[] = {
    { PD_COORD_STAT_UPLINKS, "requests_total", NULL, "counter" },
    { PD_COORD_STAT_STATES, "requests_total", NULL, "counter" },
    { PD_COORD_STAT_ERR_STATUS, "errors_total", "reason=\"status\"",
      "counter" },
    { PD_COORD_STAT_ERR_TIMEOUT, "errors_total", "reason=\"timeout\"",
      "counter" },
    { PD_COORD_STAT_ERR_FAILED, "errors_total", "reason=\"failed\"",
      "counter" },
    { PD_COORD_STAT_ERR_BUSY, "errors_total", "reason=\"busy\"", "counter" },
    { PD_COORD_STAT_RETRIES, "retries_total", NULL, "counter" },
    { PD_COORD_STAT_PENDING, "pending", NULL, "gauge" },
    { PD_COORD_STAT_QUEUED, "queued_events", NULL, "gauge" },
    { PD_COORD_STAT_EVENTS, "events_total", NULL, "counter" },
    { PD_COORD_STAT_DROPPED, "dropped_events_total", NULL, "counter" },
    { PD_COORD_STAT_DEBOUNCED, "debounced_events_total", NULL, "counter" },
};

u_char *
pd_coord_metrics(u_char *p, u_char *last)
{
    pd_coord_upstream_t  **ups;
    pd_coord_row_t        *sums;
    const char            *prev, *kind;
    uint64_t               cum;
    pd_uint_t              f, i, k, n;

    if (pd_coord_conf == NULL || pd_coord_conf->zone == NULL
        || pd_coord_conf->zone->data == NULL || pd_stats == NULL)
    {
        return p;
    }

    ups = pd_coord_conf->upstreams->elts;
    n = pd_coord_conf->upstreams->nelts;

    sums = malloc(n * sizeof(pd_coord_row_t));
    if (sums == NULL) {
        return p;
    }

    for (i = 0; i < n; i++) {
        pd_coord_sum(i, &sums[i]);
    }

    prev = "";

    for (f = 0; f < pd_nelems(pd_coord_families); f++) {
        if (strcmp(pd_coord_families[f].metric, prev) != 0) {
            prev = pd_coord_families[f].metric;
            p = pd_slprintf(p, last, "# TYPE pushd_coordinator_upstream_%s "
                            "%s\n", prev, pd_coord_families[f].type);
        }

        for (i = 0; i < n; i++) {
            k = pd_coord_families[f].index;

            /* a state URL sends no uplinks, and the other way round */
            if ((k == PD_COORD_STAT_UPLINKS && ups[i]->state)
                || (k == PD_COORD_STAT_STATES && !ups[i]->state))
            {
                continue;
            }

            kind = ups[i]->state ? "state" : "uplink";

            p = pd_slprintf(p, last, "pushd_coordinator_upstream_%s{url=\"",
                            prev);
            p = pd_coord_label(p, last, &ups[i]->url);
            p = pd_slprintf(p, last, "\",kind=\"%s\"%s%s} %lu\n", kind,
                            pd_coord_families[f].labels ? "," : "",
                            pd_coord_families[f].labels
                            ? pd_coord_families[f].labels : "",
                            (unsigned long) sums[i].counters[k]);
        }
    }

    p = pd_slprintf(p, last, "# HELP pushd_coordinator_upstream_latency_ms "
                    "from a callback sent to its answer\n"
                    "# TYPE pushd_coordinator_upstream_latency_ms "
                    "histogram\n");

    for (i = 0; i < n; i++) {
        kind = ups[i]->state ? "state" : "uplink";

        for (cum = 0, k = 0; k <= PD_STATS_BUCKETS; k++) {
            cum += sums[i].latency[k];

            p = pd_slprintf(p, last, "pushd_coordinator_upstream_latency_ms"
                            "_bucket{url=\"");
            p = pd_coord_label(p, last, &ups[i]->url);

            if (k < PD_STATS_BUCKETS) {
                p = pd_slprintf(p, last, "\",kind=\"%s\",le=\"%lu\"} %lu\n",
                                kind, (unsigned long) pd_stats_bounds[k],
                                (unsigned long) cum);
            } else {
                p = pd_slprintf(p, last, "\",kind=\"%s\",le=\"+Inf\"} %lu\n",
                                kind, (unsigned long) cum);
            }
        }

        p = pd_slprintf(p, last, "pushd_coordinator_upstream_latency_ms_sum"
                        "{url=\"");
        p = pd_coord_label(p, last, &ups[i]->url);
        p = pd_slprintf(p, last, "\",kind=\"%s\"} %lu\n"
                        "pushd_coordinator_upstream_latency_ms_count"
                        "{url=\"", kind,
                        (unsigned long) sums[i].latency_sum);
        p = pd_coord_label(p, last, &ups[i]->url);
        p = pd_slprintf(p, last, "\",kind=\"%s\"} %lu\n", kind,
                        (unsigned long) cum);
    }

    pd_free(sums);
    return p;
}
