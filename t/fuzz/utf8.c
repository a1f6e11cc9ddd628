/*
 * utf8: the incremental UTF-8 check of text frames (pd_ws.c) against a
 * plain reference decoder (RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF), on the text whole and cut in pieces anywhere.
 *
 * Input: one byte of the cut step, then the text.
 */

#include "pd_fuzz.h"

/* 1 when p[0 .. len) is valid and complete UTF-8 */
static int
pd_fuzz_utf8_ref(const uint8_t *p, size_t len)
{
    size_t    i, k, n;
    uint32_t  c, min;

    for (i = 0; i < len; i += n) {
        c = p[i];

        if (c < 0x80) {
            n = 1;
            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            n = 2; c &= 0x1f; min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3; c &= 0x0f; min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4; c &= 0x07; min = 0x10000;
        } else {
            return 0;
        }

        if (i + n > len) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            c = (c << 6) | (p[i + k] & 0x3f);
        }

        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_fuzz_in_t      in = { data, size };
    pd_utf8_state_t   st;
    u_char           *text, *piece;
    size_t            len, off, step, n;
    int               ok, whole, split;

    pd_fuzz_init();

    step = pd_fuzz_byte(&in) % 7 + 1;
    text = pd_fuzz_copy(&in, in.len, &len);

    ok = pd_fuzz_utf8_ref(text, len);

    pd_utf8_init(&st);
    whole = pd_utf8_validate(&st, text, len) == PD_OK
            && pd_utf8_complete(&st) == PD_OK;

    /* pieces of their own, so a read past one is seen */
    pd_utf8_init(&st);
    split = 1;

    for (off = 0; off < len && split; off += n) {
        n = pd_min(step, len - off);
        piece = malloc(n);
        if (piece == NULL) {
            abort();
        }

        memcpy(piece, text + off, n);
        split = pd_utf8_validate(&st, piece, n) == PD_OK;
        free(piece);
    }

    split = split && pd_utf8_complete(&st) == PD_OK;

    if (ok != whole || ok != split) {
        abort();
    }

    free(text);
    return 0;
}
