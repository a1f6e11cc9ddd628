/*
 * channel: the inter-worker batch decoder (pd_channel.c) on any bytes a
 * batch packet may hold: every record it yields must lie inside the
 * packet, and a walk ends in PD_DONE or PD_ERROR, never past the end.
 *
 * Input: the batch's data.
 */

#include "pd_fuzz.h"

static volatile u_char  pd_fuzz_sink;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_fuzz_in_t       in = { data, size };
    pd_channel_msg_t   msg;
    u_char            *batch, *rdata, sum;
    size_t             len, pos, last, i;
    pd_int_t           rc;

    pd_fuzz_init();

    batch = pd_fuzz_copy(&in, PD_CHANNEL_BATCH_MAX, &len);
    pos = 0;
    sum = 0;

    for ( ;; ) {
        last = pos;
        rc = pd_channel_batch_next(batch, len, &pos, &msg, &rdata);

        if (rc != PD_OK) {
            if (rc == PD_DONE && pos != len) {
                abort();
            }
            break;
        }

        if (pos <= last || pos > len || rdata < batch
            || rdata + msg.len != batch + pos || msg.len > PD_CHANNEL_MAX_DATA
            || msg.command == PD_CMD_BATCH || msg.fd != -1)
        {
            abort();
        }

        /* the record's bytes are read, as a handler would */
        for (i = 0; i < msg.len; i++) {
            sum ^= rdata[i];
        }
    }

    free(batch);
    pd_fuzz_sink = sum;
    return 0;
}
