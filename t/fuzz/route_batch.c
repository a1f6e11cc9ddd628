/*
 * route_batch: the decoder of a route batch (pd_register_route.c), the
 * bytes a worker reads off its Redis batch channel, "pd:wb:", on any
 * bytes: every record it yields must lie inside the batch, with a NUL
 * in its origin, and a walk ends in PD_DONE or PD_ERROR, never past the
 * end.
 *
 * Input: the batch's data.
 */

#include "pd_fuzz.h"
#include "pd_register.h"

static volatile u_char  pd_fuzz_sink;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_fuzz_in_t              in = { data, size };
    pd_register_route_hdr_t   hdr;
    const u_char             *payload;
    u_char                   *batch, sum;
    size_t                    len, pos, last, i;
    pd_int_t                  rc;

    pd_fuzz_init();

    batch = pd_fuzz_copy(&in, PD_ROUTE_BATCH_MAX, &len);
    pos = 0;
    sum = 0;

    for ( ;; ) {
        last = pos;
        rc = pd_register_route_next(batch, len, &pos, &hdr, &payload);

        if (rc != PD_OK) {
            if ((rc == PD_DONE && pos != len) || (rc == PD_ERROR
                                                  && pos != last))
            {
                abort();
            }
            break;
        }

        if (pos <= last || pos > len || payload < batch
            || payload + hdr.len != batch + pos
            || hdr.len > PD_CHANNEL_MAX_DATA
            || memchr(hdr.origin, '\0', sizeof(hdr.origin)) == NULL)
        {
            abort();
        }

        /* the payload's bytes are read, as a handler would */
        for (i = 0; i < hdr.len; i++) {
            sum ^= payload[i];
        }
    }

    free(batch);
    pd_fuzz_sink = sum;
    return 0;
}
