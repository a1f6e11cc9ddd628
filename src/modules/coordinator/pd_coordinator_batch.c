/*
 * pd_coordinator_batch.c: the queue of state events for one receiver:
 * bounded, taken in batches, kept until a batch was answered 2xx, and
 * the jittered backoff between tries.  No I/O: the unit tests drive it.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_coordinator.h"

void
pd_coord_batch_init(pd_coord_batch_t *b, pd_uint_t max, pd_uint_t batch)
{
    pd_memzero(b, sizeof(pd_coord_batch_t));
    b->tail = &b->head;
    b->max = max;
    b->batch = batch;
}

pd_int_t
pd_coord_batch_push(pd_coord_batch_t *b, const u_char *json, size_t len)
{
    pd_coord_event_t  *e;

    if (b->n >= b->max) {
        b->dropped++;
        return PD_BUSY;
    }

    e = malloc(sizeof(pd_coord_event_t) + len);
    if (e == NULL) {
        b->dropped++;
        return PD_ERROR;
    }

    e->next = NULL;
    e->len = len;
    pd_memcpy(e->data, json, len);

    *b->tail = e;
    b->tail = &e->next;
    b->n++;

    return PD_OK;
}

u_char *
pd_coord_batch_take(pd_coord_batch_t *b, size_t *len)
{
    pd_coord_event_t  *e;
    pd_uint_t          i, n;
    size_t             size;
    u_char            *body, *p;

    n = pd_min(b->n, b->batch);

    if (n == 0) {
        return NULL;
    }

    size = sizeof("{\"events\":[]}");

    for (e = b->head, i = 0; i < n; e = e->next, i++) {
        size += e->len + 1;
    }

    body = malloc(size);
    if (body == NULL) {
        return NULL;
    }

    p = pd_cpymem(body, "{\"events\":[", sizeof("{\"events\":[") - 1);

    for (e = b->head, i = 0; i < n; e = e->next, i++) {
        if (i) {
            *p++ = ',';
        }

        p = pd_cpymem(p, e->data, e->len);
    }

    p = pd_cpymem(p, "]}", 2);

    b->sending = n;
    *len = (size_t) (p - body);

    return body;
}

void
pd_coord_batch_done(pd_coord_batch_t *b, pd_uint_t ok)
{
    pd_coord_event_t  *e;

    if (!ok) {
        b->failures++;
        b->sending = 0;
        return;
    }

    b->failures = 0;

    while (b->sending) {
        e = b->head;
        b->head = e->next;
        pd_free(e);
        b->n--;
        b->sending--;
    }

    if (b->head == NULL) {
        b->tail = &b->head;
    }
}

pd_msec_t
pd_coord_batch_backoff(pd_coord_batch_t *b, pd_msec_t base, pd_msec_t max,
    uint32_t rnd)
{
    pd_msec_t  wait;
    pd_uint_t  i;

    wait = base;

    for (i = 1; i < b->failures && wait < max; i++) {
        wait *= 2;
    }

    wait = pd_min(wait, max);

    /* between half and all of it */
    return wait / 2 + (pd_msec_t) (rnd % (wait / 2 + 1));
}

void
pd_coord_batch_free(pd_coord_batch_t *b)
{
    pd_coord_event_t  *e;

    while (b->head) {
        e = b->head;
        b->head = e->next;
        pd_free(e);
    }

    b->tail = &b->head;
    b->n = 0;
    b->sending = 0;
}
