/* pd_ws.c: the WebSocket codec: accept key, client frames, UTF-8. */

#include "pd_core.h"

#include <openssl/evp.h>

/*
 * The parser keeps nothing about the frame being read between calls:
 * each call judges the header again from the start of the buffer, which
 * costs a few bytes of work and buys two things: a partial frame may move
 * between buffers, and the result cannot depend on how the bytes were
 * split.  Only a complete frame changes state (the fragmented message in
 * progress), and only then is the payload unmasked in place.
 */

#define PD_WS_GUID  "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define PD_WS_KEY_LEN  24

/* a client frame's header: 2 bytes, 2 or 8 of length, 4 of mask */
#define PD_WS_MAX_CLIENT_HEADER  14

#define PD_UTF8_FAILED  0xff

static pd_int_t pd_ws_check_first(pd_ws_parser_t *p, u_char b0);
static pd_int_t pd_ws_check_size(pd_ws_parser_t *p, pd_uint_t opcode,
    uint64_t size);
static pd_int_t pd_ws_check_close(pd_ws_parser_t *p, pd_ws_frame_t *f);
static void pd_ws_follow_message(pd_ws_parser_t *p, pd_ws_frame_t *f);
static void pd_ws_unmask(u_char *data, size_t len, const u_char *key);
static pd_int_t pd_ws_fail(pd_ws_parser_t *p, pd_uint_t code,
    const char *error);


pd_int_t
pd_ws_accept_key(const u_char *key, size_t len, u_char out[29])
{
    u_char        text[PD_WS_KEY_LEN + sizeof(PD_WS_GUID) - 1];
    u_char        md[EVP_MAX_MD_SIZE];
    unsigned int  mdlen;

    if (pd_ws_key_valid(key, len) != PD_OK) {
        return PD_ERROR;
    }

    pd_memcpy(text, key, PD_WS_KEY_LEN);
    pd_memcpy(text + PD_WS_KEY_LEN, PD_WS_GUID, sizeof(PD_WS_GUID) - 1);

    if (EVP_Digest(text, sizeof(text), md, &mdlen, EVP_sha1(), NULL) != 1) {
        return PD_ERROR;
    }

    /* 20 bytes encode to 28 characters; EVP_EncodeBlock adds the NUL */
    (void) EVP_EncodeBlock(out, md, (int) mdlen);

    return PD_OK;
}


/*
 * 16 bytes are 128 bits: 21 characters carry 126 of them, the 22nd the
 * last 2 in its high bits; its 4 low bits must be zero, or the text is
 * not the encoding of any 16 bytes.
 */
pd_int_t
pd_ws_key_valid(const u_char *key, size_t len)
{
    size_t     i;
    u_char     c;
    pd_uint_t  v;

    if (len != PD_WS_KEY_LEN || key[22] != '=' || key[23] != '=') {
        return PD_ERROR;
    }

    v = 0;

    for (i = 0; i < 22; i++) {
        c = key[i];

        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';

        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;

        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;

        } else if (c == '+') {
            v = 62;

        } else if (c == '/') {
            v = 63;

        } else {
            return PD_ERROR;
        }
    }

    return (v & 0x0f) ? PD_ERROR : PD_OK;
}


void
pd_ws_parser_init(pd_ws_parser_t *p, size_t max_frame, size_t max_message)
{
    pd_memzero(p, sizeof(pd_ws_parser_t));

    p->max_frame = max_frame;
    p->max_message = max_message;
}


pd_int_t
pd_ws_parse(pd_ws_parser_t *p, u_char *buf, size_t len, pd_ws_frame_t *f,
    size_t *consumed)
{
    size_t     hlen, i, n;
    uint64_t   size;
    pd_uint_t  len7;

    *consumed = 0;

    if (p->failed) {
        return PD_ERROR;
    }

    p->need = 2;

    if (len < 1) {
        return PD_AGAIN;
    }

    if (pd_ws_check_first(p, buf[0]) != PD_OK) {
        return PD_ERROR;
    }

    if (len < 2) {
        return PD_AGAIN;
    }

    if (!(buf[1] & 0x80)) {
        return pd_ws_fail(p, PD_WS_CLOSE_PROTOCOL, "frame not masked");
    }

    len7 = buf[1] & 0x7f;

    if ((buf[0] & 0x08) && len7 > PD_WS_MAX_CONTROL) {
        return pd_ws_fail(p, PD_WS_CLOSE_PROTOCOL, "control frame too long");
    }

    /* non-minimal length encodings are accepted: nothing hinges on them */
    n = (len7 == 126) ? 2 : (len7 == 127) ? 8 : 0;
    hlen = 2 + n + 4;
    p->need = hlen;

    if (len < 2 + n) {
        return PD_AGAIN;
    }

    size = len7;

    if (n) {
        size = 0;

        for (i = 0; i < n; i++) {
            size = (size << 8) | buf[2 + i];
        }

        if (size >> 63) {
            return pd_ws_fail(p, PD_WS_CLOSE_PROTOCOL, "bad frame length");
        }
    }

    if (pd_ws_check_size(p, buf[0] & 0x0f, size) != PD_OK) {
        return PD_ERROR;
    }

    p->need = hlen + (size_t) size;

    if (len < p->need) {
        return PD_AGAIN;
    }

    f->payload = buf + hlen;
    f->payload_len = (size_t) size;
    f->opcode = buf[0] & 0x0f;
    f->fin = buf[0] >> 7;
    f->close_code = 0;

    pd_ws_unmask(f->payload, f->payload_len, buf + hlen - 4);

    if (f->opcode == PD_WS_CLOSE && pd_ws_check_close(p, f) != PD_OK) {
        return PD_ERROR;
    }

    pd_ws_follow_message(p, f);

    *consumed = p->need;

    return PD_OK;
}


/* what the first byte alone tells: RSV, opcode, fragment sequence */
static pd_int_t
pd_ws_check_first(pd_ws_parser_t *p, u_char b0)
{
    pd_uint_t  fin, opcode;

    fin = b0 >> 7;
    opcode = b0 & 0x0f;

    /* no extension is negotiated, so no RSV bit has a meaning */
    if (b0 & 0x70) {
        return pd_ws_fail(p, PD_WS_CLOSE_PROTOCOL, "reserved bits set");
    }

    switch (opcode) {

    case PD_WS_CONT:
        if (p->message_opcode == 0) {
            return pd_ws_fail(p, PD_WS_CLOSE_PROTOCOL,
                              "continuation without a message");
        }

        return PD_OK;

    case PD_WS_TEXT:
    case PD_WS_BINARY:
        if (p->message_opcode != 0) {
            return pd_ws_fail(p, PD_WS_CLOSE_PROTOCOL,
                              "new message inside a fragmented one");
        }

        return PD_OK;

    case PD_WS_CLOSE:
    case PD_WS_PING:
    case PD_WS_PONG:
        if (!fin) {
            return pd_ws_fail(p, PD_WS_CLOSE_PROTOCOL,
                              "fragmented control frame");
        }

        return PD_OK;

    default:
        return pd_ws_fail(p, PD_WS_CLOSE_PROTOCOL, "unknown opcode");
    }
}


/*
 * The limits are judged from the header, so that a peer cannot make us
 * buffer what we would refuse anyway.  message_len never exceeds
 * max_message, so the subtraction cannot wrap.
 */
static pd_int_t
pd_ws_check_size(pd_ws_parser_t *p, pd_uint_t opcode, uint64_t size)
{
    size_t  before;

    if (size > (uint64_t) (SIZE_MAX - PD_WS_MAX_CLIENT_HEADER)
        || (p->max_frame && size > p->max_frame))
    {
        return pd_ws_fail(p, PD_WS_CLOSE_TOO_BIG, "frame too big");
    }

    if (opcode & 0x08) {
        return PD_OK;
    }

    before = (opcode == PD_WS_CONT) ? p->message_len : 0;

    if (p->max_message && size > p->max_message - before) {
        return pd_ws_fail(p, PD_WS_CLOSE_TOO_BIG, "message too big");
    }

    return PD_OK;
}


/* a close payload is empty, or a code we may receive and a UTF-8 reason */
static pd_int_t
pd_ws_check_close(pd_ws_parser_t *p, pd_ws_frame_t *f)
{
    pd_uint_t        code;
    pd_utf8_state_t  st;

    if (f->payload_len == 0) {
        f->close_code = PD_WS_CLOSE_NO_STATUS;
        return PD_OK;
    }

    if (f->payload_len == 1) {
        return pd_ws_fail(p, PD_WS_CLOSE_PROTOCOL, "close payload of 1 byte");
    }

    code = (f->payload[0] << 8) | f->payload[1];

    /* 1004-1006 and 1015 are reserved, 1012-2999 unassigned to us */
    if (!((code >= 1000 && code <= 1003)
          || (code >= 1007 && code <= 1011)
          || (code >= 3000 && code <= 4999)))
    {
        return pd_ws_fail(p, PD_WS_CLOSE_PROTOCOL, "bad close code");
    }

    pd_utf8_init(&st);

    if (pd_utf8_validate(&st, f->payload + 2, f->payload_len - 2) != PD_OK
        || pd_utf8_complete(&st) != PD_OK)
    {
        return pd_ws_fail(p, PD_WS_CLOSE_INVALID_DATA,
                          "close reason not UTF-8");
    }

    f->close_code = code;

    return PD_OK;
}


static void
pd_ws_follow_message(pd_ws_parser_t *p, pd_ws_frame_t *f)
{
    if (f->opcode & 0x08) {
        f->message_opcode = f->opcode;
        return;
    }

    if (f->opcode == PD_WS_CONT) {
        f->message_opcode = p->message_opcode;
        p->message_len += f->payload_len;

    } else {
        f->message_opcode = f->opcode;
        p->message_opcode = f->opcode;
        p->message_len = f->payload_len;
    }

    if (f->fin) {
        p->message_opcode = 0;
        p->message_len = 0;
    }
}


/* eight bytes at a time: payloads of messages are most of the input */
static void
pd_ws_unmask(u_char *data, size_t len, const u_char *key)
{
    size_t    i;
    u_char    key8[8];
    uint64_t  word, mask;

    for (i = 0; i < 8; i++) {
        key8[i] = key[i & 3];
    }

    pd_memcpy(&mask, key8, 8);

    for (i = 0; i + 8 <= len; i += 8) {
        pd_memcpy(&word, data + i, 8);
        word ^= mask;
        pd_memcpy(data + i, &word, 8);
    }

    for ( /* void */ ; i < len; i++) {
        data[i] ^= key[i & 3];
    }
}


static pd_int_t
pd_ws_fail(pd_ws_parser_t *p, pd_uint_t code, const char *error)
{
    p->failed = 1;
    p->close_code = code;
    p->error = error;

    return PD_ERROR;
}


/*
 * The ranges follow the Unicode table of well-formed byte sequences
 * (Unicode 3.9, table 3-7): the first continuation byte's range depends
 * on the lead byte, which is what rules out overlong forms (E0, F0),
 * surrogates (ED) and code points past U+10FFFF (F4) at the earliest
 * byte; later continuation bytes are 80-BF.
 */
pd_int_t
pd_utf8_validate(pd_utf8_state_t *st, const u_char *p, size_t len)
{
    u_char         c, need, lo, hi;
    uint64_t       word;
    const u_char  *end;

    need = st->need;
    lo = st->lo;
    hi = st->hi;
    end = p + len;

    if (need == PD_UTF8_FAILED) {
        return PD_ERROR;
    }

    while (p < end) {

        if (need) {
            c = *p++;

            if (c < lo || c > hi) {
                goto failed;
            }

            need--;
            lo = 0x80;
            hi = 0xbf;

            continue;
        }

        /* JSON text is mostly ASCII */
        while (end - p >= 8) {
            pd_memcpy(&word, p, 8);

            if (word & 0x8080808080808080ULL) {
                break;
            }

            p += 8;
        }

        if (p == end) {
            break;
        }

        c = *p++;

        if (c < 0x80) {
            continue;
        }

        lo = 0x80;
        hi = 0xbf;

        if (c < 0xc2) {
            /* a stray continuation byte, or C0 C1: overlong ASCII */
            goto failed;

        } else if (c < 0xe0) {
            need = 1;

        } else if (c < 0xf0) {
            need = 2;
            lo = (c == 0xe0) ? 0xa0 : 0x80;
            hi = (c == 0xed) ? 0x9f : 0xbf;

        } else if (c < 0xf5) {
            need = 3;
            lo = (c == 0xf0) ? 0x90 : 0x80;
            hi = (c == 0xf4) ? 0x8f : 0xbf;

        } else {
            goto failed;
        }
    }

    st->need = need;
    st->lo = lo;
    st->hi = hi;

    return PD_OK;

failed:

    st->need = PD_UTF8_FAILED;

    return PD_ERROR;
}


pd_int_t
pd_utf8_complete(pd_utf8_state_t *st)
{
    return (st->need == 0) ? PD_OK : PD_ERROR;
}


size_t
pd_ws_frame_header(u_char *dst, pd_uint_t opcode, size_t payload_len)
{
    size_t    i;
    uint64_t  size;

    dst[0] = (u_char) (0x80 | (opcode & 0x0f));

    if (payload_len < 126) {
        dst[1] = (u_char) payload_len;
        return 2;
    }

    if (payload_len <= 0xffff) {
        dst[1] = 126;
        dst[2] = (u_char) (payload_len >> 8);
        dst[3] = (u_char) payload_len;
        return 4;
    }

    dst[1] = 127;
    size = payload_len;

    for (i = 0; i < 8; i++) {
        dst[9 - i] = (u_char) size;
        size >>= 8;
    }

    return 10;
}


size_t
pd_ws_close_payload(u_char *dst, pd_uint_t code, const char *reason)
{
    size_t  len;

    dst[0] = (u_char) (code >> 8);
    dst[1] = (u_char) code;

    len = (reason == NULL) ? 0 : strlen(reason);

    if (len > PD_WS_MAX_REASON) {
        len = PD_WS_MAX_REASON;

        /* a character cut in two would make the reason invalid UTF-8 */
        while (len > 0 && ((u_char) reason[len] & 0xc0) == 0x80) {
            len--;
        }
    }

    if (len) {
        pd_memcpy(dst + 2, reason, len);
    }

    return 2 + len;
}
