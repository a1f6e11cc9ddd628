/*
 * center_push: the body of POST /v1/push and /v1/broadcast, parsed as
 * the center does (pd_center_parse_body), then, for a push, the uids
 * decoded and de-duplicated (pd_center_uids): every uid a valid name,
 * each once, "data" a span of the body.
 *
 * Input: one byte (bit 0: a broadcast; bit 1: small limits), the body.
 */

#include "pd_fuzz.h"
#include "pd_center.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_fuzz_in_t         in = { data, size };
    pd_center_limits_t   lim;
    pd_center_msg_t      m;
    pd_str_t            *uids;
    pd_pool_t           *pool;
    const char          *err;
    u_char              *body;
    size_t               len;
    pd_uint_t            status, n, i, k, broadcast;
    uint8_t              b;

    pd_fuzz_init();

    b = pd_fuzz_byte(&in);
    broadcast = b & 1;

    lim.max_message = (b & 2) ? 16 : 64 * 1024;
    lim.max_uids = (b & 2) ? 3 : 10000;
    lim.broadcast_rate = 1000;
    lim.ttl = 86400 * 1000;
    lim.max_ttl = (b & 4) ? INT32_MAX : 7 * 86400;

    body = pd_fuzz_copy(&in, in.len, &len);

    pd_memzero(&m, sizeof(pd_center_msg_t));
    err = pd_center_parse_body(body, len, &lim, broadcast, &m, &status);

    if (err != NULL) {
        if (status != 400 && status != 413) {
            abort();
        }
        free(body);
        return 0;
    }

    if (m.data.data < body || m.data.data + m.data.len > body + len
        || m.data.len > lim.max_message || m.qos > 1
        || pd_token_valid_name(&m.app, PD_APP_MAX) != PD_OK
        || m.ttl > (pd_msec_t) lim.max_ttl * 1000)
    {
        abort();
    }

    if (broadcast) {
        if (m.rate == 0 || m.rate > 100000000) {
            abort();
        }
        free(body);
        return 0;
    }

    if (m.nuids == 0 || m.nuids > lim.max_uids) {
        abort();
    }

    pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, pd_log_root);
    if (pool == NULL) {
        abort();
    }

    n = pd_center_uids(&m, pool, &uids);

    if (n == 0 || n > m.nuids) {
        abort();
    }

    for (i = 0; i < n; i++) {
        if (pd_token_valid_name(&uids[i], PD_UID_MAX) != PD_OK
            || uids[i].data[uids[i].len] != '\0')
        {
            abort();
        }

        for (k = 0; k < i; k++) {
            if (uids[k].len == uids[i].len
                && memcmp(uids[k].data, uids[i].data, uids[i].len) == 0)
            {
                abort();
            }
        }
    }

    pd_destroy_pool(pool);
    free(body);
    return 0;
}
