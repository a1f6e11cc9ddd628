/*
 * ws_frame: the WebSocket frame parser (pd_ws.c) on a stream of client
 * frames, as the room reads them: each frame is first offered cut short
 * (it must ask for more, and for more than it was given, without
 * touching the bytes), then whole; text messages go through the UTF-8
 * check.  Also the handshake's key check and the server frame builders.
 *
 * Input: one byte of limits; when its bit 2 is set, 24 bytes of a
 * Sec-WebSocket-Key; then the frames.
 */

#include "pd_fuzz.h"

static void
pd_fuzz_key(pd_fuzz_in_t *in)
{
    u_char   out[29], *key;
    size_t   len;

    key = pd_fuzz_copy(in, 24, &len);

    if (pd_ws_accept_key(key, len, out) == PD_OK
        && (len != 24 || strlen((char *) out) != PD_WS_ACCEPT_LEN))
    {
        abort();
    }

    free(key);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_fuzz_in_t      in = { data, size };
    pd_ws_parser_t    p, probe;
    pd_ws_frame_t     f;
    pd_utf8_state_t   utf8;
    u_char           *buf, *part, hdr[PD_WS_MAX_HEADER];
    u_char            close[PD_WS_MAX_CONTROL];
    char              reason[PD_WS_MAX_CONTROL + 1];
    size_t            len, off, consumed, cut, n;
    pd_int_t          rc;
    uint8_t           b;

    pd_fuzz_init();

    b = pd_fuzz_byte(&in);

    if (b & 4) {
        pd_fuzz_key(&in);
    }

    pd_ws_parser_init(&p, (b & 1) ? 125 : 65536, (b & 2) ? 300 : 1 << 20);
    pd_utf8_init(&utf8);

    buf = pd_fuzz_copy(&in, in.len, &len);

    for (off = 0; off < len; off += consumed) {
        /* a cut frame: AGAIN, nothing consumed, the bytes untouched */
        probe = p;
        rc = pd_ws_parse(&probe, buf + off, len - off, &f, &consumed);

        if (rc == PD_OK && consumed > 1) {
            cut = consumed - 1 - (b >> 4) % (consumed - 1);
            part = malloc(cut);
            if (part == NULL) {
                abort();
            }

            memcpy(part, buf + off, cut);
            probe = p;
            n = 1;

            if (pd_ws_parse(&probe, part, cut, &f, &n) != PD_AGAIN || n != 0
                || probe.need <= cut || memcmp(part, buf + off, cut) != 0)
            {
                abort();
            }

            free(part);
        }

        rc = pd_ws_parse(&p, buf + off, len - off, &f, &consumed);

        if (rc != PD_OK) {
            if (rc == PD_ERROR && (p.error == NULL || p.close_code < 1000)) {
                abort();
            }
            break;
        }

        if (consumed == 0 || consumed > len - off
            || f.payload + f.payload_len > buf + off + consumed)
        {
            abort();
        }

        if (f.opcode == PD_WS_CLOSE) {
            /* the reason echoed back, as a C string */
            n = f.payload_len > 2 ? f.payload_len - 2 : 0;
            pd_memcpy(reason, f.payload + (f.payload_len - n), n);
            reason[n] = '\0';
            (void) pd_ws_close_payload(close, f.close_code, reason);
            break;
        }

        if (f.message_opcode == PD_WS_TEXT) {
            if (pd_utf8_validate(&utf8, f.payload, f.payload_len) != PD_OK) {
                break;
            }

            if (f.fin) {
                (void) pd_utf8_complete(&utf8);
                pd_utf8_init(&utf8);
            }
        }

        (void) pd_ws_frame_header(hdr, f.opcode, f.payload_len);
    }

    free(buf);
    return 0;
}
