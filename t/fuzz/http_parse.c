/*
 * http_parse: the HTTP/1.1 request parser (pd_http_parse.c) on a request
 * whole and split in pieces, which must give the same result, then what
 * the room and the center ask of a parsed head: headers, tokens, query
 * arguments and their percent-decoding.
 *
 * Input: one byte of limits, one of the split step, then the request.
 */

#include "pd_fuzz.h"

static void
pd_fuzz_limits(pd_http_request_t *r, uint8_t b)
{
    pd_memzero(r, sizeof(pd_http_request_t));
    r->max_line = (b & 1) ? 64 : 8192;
    r->max_headers = (b & 2) ? 4 : 0;
    r->max_header = (b & 4) ? 256 : 16384;
    r->max_body = (b & 8) ? 0 : 1024 * 1024;
    pd_http_request_reset(r);
}

static void
pd_fuzz_results(pd_http_request_t *r)
{
    static const char  *names[] = { "Upgrade", "Connection",
                                    "Sec-WebSocket-Key", "Authorization",
                                    "Sec-WebSocket-Version", "Host" };
    static const char  *args[] = { "uid", "device", "token", "expires",
                                   "apps", "" };
    pd_str_t           *h, v;
    pd_uint_t           i;
    u_char             *buf;
    size_t              len;

    for (i = 0; i < pd_nelems(names); i++) {
        h = pd_http_header_find(r, names[i]);
        if (h != NULL) {
            (void) pd_http_header_has_token(h, "websocket");
            (void) pd_http_header_has_token(h, "upgrade");
        }
    }

    for (i = 0; i < pd_nelems(args); i++) {
        if (pd_http_arg(&r->args, args[i], &v) != PD_OK) {
            continue;
        }

        buf = malloc(v.len ? v.len : 1);
        if (buf == NULL) {
            abort();
        }

        if (pd_http_unescape(&v, buf, &len) == PD_OK && len > v.len) {
            abort();
        }

        free(buf);
    }

    (void) pd_http_status_text(r->status);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_fuzz_in_t        in = { data, size };
    pd_http_request_t   whole, split;
    u_char             *req, *part;
    size_t              len, upto, step;
    pd_int_t            rc1, rc2;
    uint8_t             limits;

    pd_fuzz_init();

    limits = pd_fuzz_byte(&in);
    step = pd_fuzz_byte(&in) % 16 + 1;
    req = pd_fuzz_copy(&in, in.len, &len);

    pd_fuzz_limits(&whole, limits);
    rc1 = pd_http_parse_request(&whole, req, len);

    /* again: once done, the same answer */
    if (pd_http_parse_request(&whole, req, len) != rc1) {
        abort();
    }

    if (rc1 == PD_OK) {
        pd_fuzz_results(&whole);
    }

    /* the same bytes arriving a few at a time */
    pd_fuzz_limits(&split, limits);
    rc2 = PD_AGAIN;

    for (upto = pd_min(step, len); ; upto = pd_min(upto + step, len)) {
        /* each piece in a buffer of its own size: ASan sees buf[upto] */
        part = malloc(upto ? upto : 1);
        if (part == NULL) {
            abort();
        }

        memcpy(part, req, upto);
        rc2 = pd_http_parse_request(&split, part, upto);
        free(part);

        if (rc2 != PD_AGAIN || upto == len) {
            break;
        }
    }

    if (rc1 != rc2
        || (rc1 == PD_OK && (whole.header_len != split.header_len
                             || whole.nheaders != split.nheaders
                             || whole.method != split.method
                             || whole.content_length != split.content_length
                             || whole.uri.len != split.uri.len))
        || (rc1 == PD_ERROR && whole.status != split.status))
    {
        abort();
    }

    free(req);
    return 0;
}
