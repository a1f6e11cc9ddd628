/*
 * token: the connect token check (pd_token.c) on fuzzed fields: uid,
 * device, expires and token as a client sends them in the query.  A
 * token made for the fields must pass while not expired, a changed one
 * never; names are checked against their charset.
 *
 * Input: four fields separated by '\n' (uid, device, expires, token).
 */

#include "pd_fuzz.h"

static pd_str_t  pd_fuzz_secret = pd_string("fuzz-secret-0123456789");

/* the next field up to '\n' or the end, in memory of its own */
static u_char *
pd_fuzz_field(pd_fuzz_in_t *in, pd_str_t *s)
{
    const uint8_t  *nl;
    size_t          n;
    u_char         *p;

    nl = memchr(in->p, '\n', in->len);
    n = nl ? (size_t) (nl - in->p) : in->len;

    p = pd_fuzz_copy(in, n, &s->len);
    s->data = p;
    (void) pd_fuzz_byte(in);

    return p;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_fuzz_in_t   in = { data, size };
    pd_str_t       uid, device, expires, token, made;
    u_char         out[65];
    const char    *err;
    pd_int_t       rc, rc2;
    time_t         now = 1700000000;

    pd_fuzz_init();

    pd_fuzz_field(&in, &uid);
    pd_fuzz_field(&in, &device);
    pd_fuzz_field(&in, &expires);
    pd_fuzz_field(&in, &token);

    (void) pd_token_valid_name(&uid, PD_UID_MAX);
    (void) pd_token_valid_name(&device, PD_DEVICE_MAX);

    err = NULL;
    rc = pd_token_check(&pd_fuzz_secret, &uid, &device, &expires, &token,
                        now, &err);

    if ((rc == PD_OK) != (err == NULL)) {
        abort();
    }

    /* the right token for these fields */
    pd_token_make(&pd_fuzz_secret, &uid, &device, now + 60, out);
    made.data = out;
    made.len = strlen((char *) out);

    if (made.len == PD_TOKEN_LEN) {
        u_char   e[24];
        pd_str_t es;

        es.data = e;
        es.len = (size_t) snprintf((char *) e, sizeof(e), "%ld",
                                   (long) (now + 60));
        rc2 = pd_token_check(&pd_fuzz_secret, &uid, &device, &es, &made,
                             now, &err);
        if (rc2 != PD_OK) {
            abort();
        }

        /* the fuzzed token passes only if it is this one, with these
         * expires */
        if (rc == PD_OK && token.len == made.len
            && expires.len == es.len
            && memcmp(expires.data, es.data, es.len) == 0
            && memcmp(token.data, made.data, made.len) != 0)
        {
            abort();
        }
    }

    free(uid.data);
    free(device.data);
    free(expires.data);
    free(token.data);
    return 0;
}
