/* test_pd_ws.c: unit tests and a fuzz of the WebSocket codec (pd_ws.c). */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>

#define PD_T(s)  (const u_char *) s, sizeof(s) - 1

#define PD_TEST_FUZZ_ROUNDS   10000
#define PD_TEST_UTF8_ROUNDS   20000
#define PD_TEST_KEY           0x37fa213du

/* the length encodings a client may choose */
#define PD_TEST_LEN_MIN   0     /* the shortest that fits */
#define PD_TEST_LEN_16    2
#define PD_TEST_LEN_64    8

typedef struct {
    pd_int_t     rc;
    size_t       consumed;
    pd_ws_frame_t  f;
} pd_test_res_t;

static uint64_t  pd_test_rand_state;

/* what the fuzz reached: frames parsed, errors 1002, 1007, 1009 */
static size_t    pd_test_fuzz_seen[4];


static uint32_t
pd_test_rand(void)
{
    /* xorshift64*: deterministic across runs and platforms */
    pd_test_rand_state ^= pd_test_rand_state >> 12;
    pd_test_rand_state ^= pd_test_rand_state << 25;
    pd_test_rand_state ^= pd_test_rand_state >> 27;

    return (uint32_t) ((pd_test_rand_state * 0x2545f4914f6cdd1dULL) >> 32);
}


/*
 * Writes a masked client frame: b0 is FIN|RSV|opcode, form the length
 * encoding; returns its size.  dst holds 14 + len bytes.
 */
static size_t
pd_test_frame(u_char *dst, u_char b0, const void *payload, size_t len,
    pd_uint_t form, uint32_t key)
{
    size_t         i, n;
    u_char        *p, k[4];
    const u_char  *src;

    src = payload;
    p = dst;
    *p++ = b0;

    if (form == PD_TEST_LEN_MIN) {
        form = (len < 126) ? 0 : (len <= 0xffff) ? 2 : 8;
    }

    if (form == 0) {
        *p++ = (u_char) (0x80 | len);

    } else {
        *p++ = (u_char) (0x80 | (form == 2 ? 126 : 127));

        for (i = 0; i < form; i++) {
            p[form - 1 - i] = (u_char) ((uint64_t) len >> (8 * i));
        }

        p += form;
    }

    k[0] = (u_char) (key >> 24);
    k[1] = (u_char) (key >> 16);
    k[2] = (u_char) (key >> 8);
    k[3] = (u_char) key;

    p = pd_cpymem(p, k, 4);

    for (n = 0; n < len; n++) {
        p[n] = src[n] ^ k[n & 3];
    }

    return (size_t) (p - dst) + len;
}


/* parses a copy in an exact-size heap buffer, so ASan sees any overread */
static pd_test_res_t
pd_test_parse(pd_ws_parser_t *p, const u_char *data, size_t len,
    u_char *unmasked)
{
    u_char         *copy;
    pd_test_res_t   r;

    copy = malloc(len ? len : 1);
    assert_non_null(copy);

    if (len) {
        memcpy(copy, data, len);
    }

    pd_memzero(&r, sizeof(r));
    r.rc = pd_ws_parse(p, copy, len, &r.f, &r.consumed);

    if (r.rc == PD_OK) {
        assert_true(r.consumed <= len);
        assert_ptr_equal(r.f.payload + r.f.payload_len, copy + r.consumed);

        if (unmasked) {
            memcpy(unmasked, r.f.payload, r.f.payload_len);
        }

        r.f.payload = NULL;

    } else {
        assert_int_equal(r.consumed, 0);
    }

    free(copy);

    return r;
}


static void
pd_test_expect_error(pd_ws_parser_t *p, const u_char *data, size_t len,
    pd_uint_t code)
{
    pd_test_res_t  r;

    r = pd_test_parse(p, data, len, NULL);

    assert_int_equal(r.rc, PD_ERROR);
    assert_int_equal(p->close_code, code);
    assert_non_null(p->error);
}


static void
pd_test_accept_key(void **state)
{
    size_t  i;
    u_char  out[29];

    static const char  *bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",          /* 23 */
        "dGhlIHNhbXBsZSBub25jZQ===",        /* 25 */
        "dGhlIHNhbXBsZSBub25jZQAA",         /* no padding */
        "dGhlIHNhbXBsZSBub25jZ===",         /* padding too early */
        "dGhlIHNhbXBsZSBub25jZR==",         /* low bits set: not 16 bytes */
        "dGhlIHNhbXBsZSBub25jZf==",
        "dGhlIHNhbX!sZSBub25jZQ==",         /* outside the alphabet */
        "dGhlIHNhbXBsZSBub25j-Q==",         /* base64url */
        "dGhlIHNhbXBs ZSBub25jQ==",
        " dGhlIHNhbXBsZSBub25jQ=",
        "dGhlIHNhbXBsZSBub25jZQ==dGhl",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",     /* 20 bytes */
    };

    (void) state;

    /* RFC 6455 1.3 */
    assert_int_equal(pd_ws_accept_key(PD_T("dGhlIHNhbXBsZSBub25jZQ=="), out),
                     PD_OK);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    /* both computed with: printf '<key>258EAFA5-...' | openssl dgst
       -sha1 -binary | base64 */
    assert_int_equal(pd_ws_accept_key(PD_T("x3JJHMbDL1EzLkh9GBhXDw=="), out),
                     PD_OK);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    assert_int_equal(pd_ws_accept_key(PD_T("AAAAAAAAAAAAAAAAAAAAAA=="), out),
                     PD_OK);
    assert_string_equal(out, "ICX+Yqv66kxgM0FcWaLWlFLwTAI=");

    for (i = 0; i < pd_nelems(bad); i++) {
        memcpy(out, "untouched", 10);
        assert_int_equal(pd_ws_accept_key((const u_char *) bad[i],
                                          strlen(bad[i]), out),
                         PD_ERROR);
        assert_string_equal(out, "untouched");
    }
}


/* the examples of RFC 6455 5.7 */
static void
pd_test_rfc_examples(void **state)
{
    u_char          data[16];
    pd_test_res_t   r;
    pd_ws_parser_t  p;

    static const u_char  masked_hello[] = {
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
    };
    static const u_char  masked_pong[] = {
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
    };
    static const u_char  unmasked_hello[] = {
        0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f
    };
    static const u_char  unmasked_ping[] = {
        0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f
    };

    (void) state;

    pd_ws_parser_init(&p, 0, 0);
    r = pd_test_parse(&p, masked_hello, sizeof(masked_hello), data);
    assert_int_equal(r.rc, PD_OK);
    assert_int_equal(r.consumed, sizeof(masked_hello));
    assert_int_equal(r.f.opcode, PD_WS_TEXT);
    assert_int_equal(r.f.message_opcode, PD_WS_TEXT);
    assert_int_equal(r.f.fin, 1);
    assert_int_equal(r.f.payload_len, 5);
    assert_memory_equal(data, "Hello", 5);

    r = pd_test_parse(&p, masked_pong, sizeof(masked_pong), data);
    assert_int_equal(r.rc, PD_OK);
    assert_int_equal(r.f.opcode, PD_WS_PONG);
    assert_int_equal(r.f.message_opcode, PD_WS_PONG);
    assert_memory_equal(data, "Hello", 5);

    /* a client must mask, even if only the second byte has arrived */
    pd_ws_parser_init(&p, 0, 0);
    pd_test_expect_error(&p, unmasked_hello, 2, PD_WS_CLOSE_PROTOCOL);
    assert_string_equal(p.error, "frame not masked");

    pd_ws_parser_init(&p, 0, 0);
    pd_test_expect_error(&p, unmasked_ping, sizeof(unmasked_ping),
                         PD_WS_CLOSE_PROTOCOL);
}


/* each length encoding, minimal or not, with the payload unmasked right */
static void
pd_test_lengths(void **state)
{
    size_t          i, j, n, len, hlen;
    u_char         *payload, *frame, *out;
    pd_test_res_t   r;
    pd_ws_parser_t  p;

    static const struct {
        size_t     len;
        pd_uint_t  form;
        size_t     hlen;
    } cases[] = {
        { 0, PD_TEST_LEN_MIN, 6 },
        { 1, PD_TEST_LEN_MIN, 6 },
        { 7, PD_TEST_LEN_MIN, 6 },
        { 125, PD_TEST_LEN_MIN, 6 },
        { 126, PD_TEST_LEN_MIN, 8 },
        { 1000, PD_TEST_LEN_MIN, 8 },
        { 65535, PD_TEST_LEN_MIN, 8 },
        { 65536, PD_TEST_LEN_MIN, 14 },
        { 70001, PD_TEST_LEN_MIN, 14 },
        /* non-minimal encodings are accepted */
        { 0, PD_TEST_LEN_16, 8 },
        { 5, PD_TEST_LEN_16, 8 },
        { 5, PD_TEST_LEN_64, 14 },
        { 300, PD_TEST_LEN_64, 14 },
    };

    (void) state;

    payload = malloc(70001);
    frame = malloc(70001 + 14);
    out = malloc(70001);
    assert_non_null(payload);
    assert_non_null(frame);
    assert_non_null(out);

    for (i = 0; i < 70001; i++) {
        payload[i] = (u_char) (i * 7 + (i >> 8));
    }

    for (i = 0; i < pd_nelems(cases); i++) {
        len = cases[i].len;
        n = pd_test_frame(frame, 0x82, payload, len, cases[i].form,
                          0xa1b2c3d4u + (uint32_t) i);
        hlen = cases[i].hlen;
        assert_int_equal(n, hlen + len);

        pd_ws_parser_init(&p, 0, 0);

        /* every cut of the header, and the last payload byte missing */
        for (j = 0; j < hlen; j++) {
            r = pd_test_parse(&p, frame, j, NULL);
            assert_int_equal(r.rc, PD_AGAIN);
            assert_true(p.need > j);
        }

        if (len) {
            r = pd_test_parse(&p, frame, n - 1, NULL);
            assert_int_equal(r.rc, PD_AGAIN);
            assert_int_equal(p.need, n);
        }

        r = pd_test_parse(&p, frame, n, out);
        assert_int_equal(r.rc, PD_OK);
        assert_int_equal(r.consumed, n);
        assert_int_equal(r.f.payload_len, len);
        assert_int_equal(r.f.opcode, PD_WS_BINARY);

        if (len) {
            assert_memory_equal(out, payload, len);
        }
    }

    free(payload);
    free(frame);
    free(out);
}


static void
pd_test_bad_lengths(void **state)
{
    pd_ws_parser_t  p;

    static const u_char  high_bit[] = {
        0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 5
    };
    static const u_char  huge[] = {
        0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
    };

    (void) state;

    /* judged from the length field, before any mask or payload */
    pd_ws_parser_init(&p, 0, 0);
    pd_test_expect_error(&p, high_bit, sizeof(high_bit),
                         PD_WS_CLOSE_PROTOCOL);
    assert_string_equal(p.error, "bad frame length");

    /* 2^63 - 1 is a legal length no limit lets through */
    pd_ws_parser_init(&p, 1 << 20, 1 << 20);
    pd_test_expect_error(&p, huge, sizeof(huge), PD_WS_CLOSE_TOO_BIG);
}


/* a stream of frames fed one byte more at a time gives the same frames */
static void
pd_test_byte_at_a_time(void **state)
{
    size_t          n, len, off, total, nframes, i;
    u_char          stream[512], out[256], big[200];
    pd_test_res_t   r, whole[8];
    pd_ws_parser_t  p;

    (void) state;

    for (i = 0; i < sizeof(big); i++) {
        big[i] = (u_char) ('a' + i % 26);
    }

    n = 0;
    n += pd_test_frame(stream + n, 0x01, "Hel", 3, PD_TEST_LEN_MIN, 1);
    n += pd_test_frame(stream + n, 0x89, "png", 3, PD_TEST_LEN_MIN, 2);
    n += pd_test_frame(stream + n, 0x00, big, 200, PD_TEST_LEN_MIN, 3);
    n += pd_test_frame(stream + n, 0x80, "lo", 2, PD_TEST_LEN_64, 4);
    n += pd_test_frame(stream + n, 0x82, "", 0, PD_TEST_LEN_MIN, 5);
    n += pd_test_frame(stream + n, 0x88, "\x03\xe8" "bye", 5,
                       PD_TEST_LEN_MIN, 6);
    total = n;

    /* the reference: the whole stream at once */
    pd_ws_parser_init(&p, 0, 0);
    off = 0;

    for (nframes = 0; off < total; nframes++) {
        whole[nframes] = pd_test_parse(&p, stream + off, total - off, NULL);
        assert_int_equal(whole[nframes].rc, PD_OK);
        off += whole[nframes].consumed;
    }

    assert_int_equal(nframes, 6);

    /* stream is intact: pd_test_parse() unmasks a copy */

    pd_ws_parser_init(&p, 0, 0);
    off = 0;
    i = 0;

    for (len = 1; len <= total - off; len++) {
        r = pd_test_parse(&p, stream + off, len, out);

        if (r.rc == PD_AGAIN) {
            assert_true(p.need > len);
            continue;
        }

        assert_int_equal(r.rc, PD_OK);
        assert_int_equal(r.consumed, whole[i].consumed);
        assert_int_equal(r.f.opcode, whole[i].f.opcode);
        assert_int_equal(r.f.message_opcode, whole[i].f.message_opcode);
        assert_int_equal(r.f.fin, whole[i].f.fin);
        assert_int_equal(r.f.payload_len, whole[i].f.payload_len);
        assert_int_equal(r.f.close_code, whole[i].f.close_code);

        if (i == 2) {
            assert_memory_equal(out, big, 200);
        }

        off += r.consumed;
        len = 0;
        i++;
    }

    assert_int_equal(i, 6);
    assert_int_equal(off, total);
    assert_int_equal(whole[5].f.close_code, 1000);
    assert_int_equal(whole[2].f.message_opcode, PD_WS_TEXT);
    assert_int_equal(whole[3].f.message_opcode, PD_WS_TEXT);
}


static void
pd_test_feed(pd_ws_parser_t *p, u_char b0, const char *payload,
    pd_int_t rc, pd_uint_t opcode)
{
    size_t         n;
    u_char         frame[200];
    pd_test_res_t  r;

    n = pd_test_frame(frame, b0, payload, strlen(payload), PD_TEST_LEN_MIN,
                      PD_TEST_KEY);
    r = pd_test_parse(p, frame, n, NULL);

    assert_int_equal(r.rc, rc);

    if (rc == PD_OK) {
        assert_int_equal(r.f.message_opcode, opcode);

    } else {
        assert_int_equal(p->close_code, PD_WS_CLOSE_PROTOCOL);
    }
}


static void
pd_test_fragments(void **state)
{
    pd_ws_parser_t  p;

    (void) state;

    /* good: text in three, control frames between, then binary in two */
    pd_ws_parser_init(&p, 0, 0);
    pd_test_feed(&p, 0x01, "a", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x89, "ping", PD_OK, PD_WS_PING);
    pd_test_feed(&p, 0x00, "b", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x8a, "", PD_OK, PD_WS_PONG);
    pd_test_feed(&p, 0x00, "", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x80, "c", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x82, "whole", PD_OK, PD_WS_BINARY);
    pd_test_feed(&p, 0x02, "x", PD_OK, PD_WS_BINARY);
    pd_test_feed(&p, 0x88, "", PD_OK, PD_WS_CLOSE);
    pd_test_feed(&p, 0x80, "y", PD_OK, PD_WS_BINARY);
    pd_test_feed(&p, 0x81, "next", PD_OK, PD_WS_TEXT);

    /* a continuation with no message begun */
    pd_ws_parser_init(&p, 0, 0);
    pd_test_feed(&p, 0x80, "a", PD_ERROR, 0);
    assert_string_equal(p.error, "continuation without a message");

    pd_ws_parser_init(&p, 0, 0);
    pd_test_feed(&p, 0x00, "a", PD_ERROR, 0);

    /* ... or after it ended */
    pd_ws_parser_init(&p, 0, 0);
    pd_test_feed(&p, 0x01, "a", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x80, "b", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x00, "c", PD_ERROR, 0);

    pd_ws_parser_init(&p, 0, 0);
    pd_test_feed(&p, 0x81, "a", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x80, "b", PD_ERROR, 0);

    /* a new message inside a fragmented one, of either type */
    pd_ws_parser_init(&p, 0, 0);
    pd_test_feed(&p, 0x01, "a", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x81, "b", PD_ERROR, 0);
    assert_string_equal(p.error, "new message inside a fragmented one");

    pd_ws_parser_init(&p, 0, 0);
    pd_test_feed(&p, 0x01, "a", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x89, "", PD_OK, PD_WS_PING);
    pd_test_feed(&p, 0x02, "b", PD_ERROR, 0);

    pd_ws_parser_init(&p, 0, 0);
    pd_test_feed(&p, 0x02, "a", PD_OK, PD_WS_BINARY);
    pd_test_feed(&p, 0x01, "b", PD_ERROR, 0);

    /* the error is sticky: a good frame after it still fails */
    pd_test_feed(&p, 0x89, "", PD_ERROR, 0);
}


static void
pd_test_control(void **state)
{
    u_char          frame[200], payload[126];
    size_t          n;
    pd_test_res_t   r;
    pd_ws_parser_t  p;

    static const u_char  long_ping[] = { 0x89, 0xfe, 0x00, 0x7e };
    static const u_char  long_close[] = { 0x88, 0xff };
    static const u_char  frag_ping[] = { 0x09 };
    static const u_char  frag_close[] = { 0x08 };
    static const u_char  frag_pong[] = { 0x0a };

    (void) state;

    memset(payload, 'p', sizeof(payload));

    pd_ws_parser_init(&p, 0, 0);
    n = pd_test_frame(frame, 0x89, payload, 125, PD_TEST_LEN_MIN, 9);
    r = pd_test_parse(&p, frame, n, NULL);
    assert_int_equal(r.rc, PD_OK);
    assert_int_equal(r.f.payload_len, 125);

    /* 126 in any encoding is too long, seen from the second byte */
    n = pd_test_frame(frame, 0x89, payload, 126, PD_TEST_LEN_MIN, 9);
    pd_test_expect_error(&p, frame, n, PD_WS_CLOSE_PROTOCOL);
    assert_string_equal(p.error, "control frame too long");

    pd_ws_parser_init(&p, 0, 0);
    pd_test_expect_error(&p, long_ping, 2, PD_WS_CLOSE_PROTOCOL);
    pd_ws_parser_init(&p, 0, 0);
    pd_test_expect_error(&p, long_ping, sizeof(long_ping),
                         PD_WS_CLOSE_PROTOCOL);
    pd_ws_parser_init(&p, 0, 0);
    pd_test_expect_error(&p, long_close, sizeof(long_close),
                         PD_WS_CLOSE_PROTOCOL);

    /* a control frame must use the 7-bit length, even when it is short */
    pd_ws_parser_init(&p, 0, 0);
    n = pd_test_frame(frame, 0x89, payload, 3, PD_TEST_LEN_16, 9);
    pd_test_expect_error(&p, frame, n, PD_WS_CLOSE_PROTOCOL);

    /* fragmented control frames, seen from the first byte */
    pd_ws_parser_init(&p, 0, 0);
    pd_test_expect_error(&p, frag_ping, 1, PD_WS_CLOSE_PROTOCOL);
    assert_string_equal(p.error, "fragmented control frame");
    pd_ws_parser_init(&p, 0, 0);
    pd_test_expect_error(&p, frag_close, 1, PD_WS_CLOSE_PROTOCOL);
    pd_ws_parser_init(&p, 0, 0);
    pd_test_expect_error(&p, frag_pong, 1, PD_WS_CLOSE_PROTOCOL);
}


static void
pd_test_rsv_and_opcodes(void **state)
{
    u_char          b0, frame[32];
    size_t          n;
    pd_uint_t       op;
    pd_test_res_t   r;
    pd_ws_parser_t  p;

    static const u_char  rsv[] = { 0x40, 0x20, 0x10, 0x70 };

    (void) state;

    for (n = 0; n < pd_nelems(rsv); n++) {
        b0 = 0x81 | rsv[n];

        pd_ws_parser_init(&p, 0, 0);
        pd_test_expect_error(&p, &b0, 1, PD_WS_CLOSE_PROTOCOL);
        assert_string_equal(p.error, "reserved bits set");

        /* on a control frame too */
        b0 = 0x89 | rsv[n];
        pd_ws_parser_init(&p, 0, 0);
        pd_test_expect_error(&p, &b0, 1, PD_WS_CLOSE_PROTOCOL);
    }

    for (op = 0; op < 16; op++) {
        pd_ws_parser_init(&p, 0, 0);
        n = pd_test_frame(frame, (u_char) (0x80 | op), "", 0,
                          PD_TEST_LEN_MIN, 7);
        b0 = frame[0];

        if (op == 1 || op == 2 || op == 8 || op == 9 || op == 10) {
            r = pd_test_parse(&p, frame, n, NULL);
            assert_int_equal(r.rc, PD_OK);
            assert_int_equal(r.f.opcode, op);
            continue;
        }

        pd_test_expect_error(&p, &b0, 1, PD_WS_CLOSE_PROTOCOL);

        if (op != 0) {
            assert_string_equal(p.error, "unknown opcode");
        }
    }
}


static void
pd_test_limits(void **state)
{
    u_char          frame[300], payload[200];
    size_t          n;
    pd_test_res_t   r;
    pd_ws_parser_t  p;

    (void) state;

    memset(payload, 'm', sizeof(payload));

    /* max_frame: 100 passes, 101 fails from the header alone */
    pd_ws_parser_init(&p, 100, 0);
    n = pd_test_frame(frame, 0x82, payload, 100, PD_TEST_LEN_MIN, 1);
    r = pd_test_parse(&p, frame, n, NULL);
    assert_int_equal(r.rc, PD_OK);

    n = pd_test_frame(frame, 0x82, payload, 101, PD_TEST_LEN_MIN, 1);
    pd_test_expect_error(&p, frame, 2, PD_WS_CLOSE_TOO_BIG);
    assert_string_equal(p.error, "frame too big");

    pd_ws_parser_init(&p, 100, 0);
    n = pd_test_frame(frame, 0x82, payload, 101, PD_TEST_LEN_64, 1);
    pd_test_expect_error(&p, frame, 10, PD_WS_CLOSE_TOO_BIG);

    /* it binds control frames as well */
    pd_ws_parser_init(&p, 100, 0);
    n = pd_test_frame(frame, 0x89, payload, 101, PD_TEST_LEN_MIN, 1);
    pd_test_expect_error(&p, frame, n, PD_WS_CLOSE_TOO_BIG);

    /* max_message: fragments add up to exactly 10, one byte more fails */
    pd_ws_parser_init(&p, 0, 10);
    pd_test_feed(&p, 0x01, "123456", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x89, "control frames do not count", PD_OK,
                 PD_WS_PING);
    pd_test_feed(&p, 0x00, "78", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x00, "90", PD_OK, PD_WS_TEXT);
    n = pd_test_frame(frame, 0x80, "x", 1, PD_TEST_LEN_MIN, 1);
    pd_test_expect_error(&p, frame, 2, PD_WS_CLOSE_TOO_BIG);
    assert_string_equal(p.error, "message too big");

    /* the count starts again with each message */
    pd_ws_parser_init(&p, 0, 10);
    pd_test_feed(&p, 0x01, "123456", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x80, "7890", PD_OK, PD_WS_TEXT);
    pd_test_feed(&p, 0x02, "123456", PD_OK, PD_WS_BINARY);
    pd_test_feed(&p, 0x80, "7890", PD_OK, PD_WS_BINARY);
    pd_test_feed(&p, 0x81, "1234567890", PD_OK, PD_WS_TEXT);

    /* an unfragmented message over the limit */
    n = pd_test_frame(frame, 0x81, payload, 11, PD_TEST_LEN_MIN, 1);
    pd_test_expect_error(&p, frame, 2, PD_WS_CLOSE_TOO_BIG);

    /* a first fragment over the limit */
    pd_ws_parser_init(&p, 0, 10);
    n = pd_test_frame(frame, 0x02, payload, 11, PD_TEST_LEN_MIN, 1);
    pd_test_expect_error(&p, frame, n, PD_WS_CLOSE_TOO_BIG);
}


static pd_test_res_t
pd_test_close_frame(pd_ws_parser_t *p, const u_char *payload, size_t len)
{
    u_char  frame[200];
    size_t  n;

    pd_ws_parser_init(p, 0, 0);
    n = pd_test_frame(frame, 0x88, payload, len, PD_TEST_LEN_MIN, 0x01020304);

    return pd_test_parse(p, frame, n, NULL);
}


static void
pd_test_close_payload_check(void **state)
{
    size_t          i;
    u_char          payload[8];
    pd_test_res_t   r;
    pd_ws_parser_t  p;

    static const pd_uint_t  good[] = {
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
        3000, 3999, 4000, 4999
    };
    static const pd_uint_t  bad[] = {
        0, 1, 999, 1004, 1005, 1006, 1012, 1014, 1015, 1016, 1100, 2000,
        2999, 5000, 65535
    };

    (void) state;

    r = pd_test_close_frame(&p, NULL, 0);
    assert_int_equal(r.rc, PD_OK);
    assert_int_equal(r.f.close_code, PD_WS_CLOSE_NO_STATUS);

    r = pd_test_close_frame(&p, PD_T("\x03"));
    assert_int_equal(r.rc, PD_ERROR);
    assert_int_equal(p.close_code, PD_WS_CLOSE_PROTOCOL);
    assert_string_equal(p.error, "close payload of 1 byte");

    for (i = 0; i < pd_nelems(good); i++) {
        payload[0] = (u_char) (good[i] >> 8);
        payload[1] = (u_char) good[i];
        r = pd_test_close_frame(&p, payload, 2);
        assert_int_equal(r.rc, PD_OK);
        assert_int_equal(r.f.close_code, good[i]);
    }

    for (i = 0; i < pd_nelems(bad); i++) {
        payload[0] = (u_char) (bad[i] >> 8);
        payload[1] = (u_char) bad[i];
        r = pd_test_close_frame(&p, payload, 2);
        assert_int_equal(r.rc, PD_ERROR);
        assert_int_equal(p.close_code, PD_WS_CLOSE_PROTOCOL);
        assert_string_equal(p.error, "bad close code");
    }

    r = pd_test_close_frame(&p, PD_T("\x03\xe8" "bye \xce\xba\xe1\xbd\xb9"));
    assert_int_equal(r.rc, PD_OK);
    assert_int_equal(r.f.close_code, 1000);
    assert_int_equal(r.f.payload_len, 11);

    /* a reason that is not UTF-8, or ends inside a character */
    r = pd_test_close_frame(&p, PD_T("\x03\xe8" "\xc0\xaf"));
    assert_int_equal(r.rc, PD_ERROR);
    assert_int_equal(p.close_code, PD_WS_CLOSE_INVALID_DATA);

    r = pd_test_close_frame(&p, PD_T("\x03\xe8" "ok\xe2\x82"));
    assert_int_equal(r.rc, PD_ERROR);
    assert_int_equal(p.close_code, PD_WS_CLOSE_INVALID_DATA);
}


static void
pd_test_frame_header(void **state)
{
    u_char  h[PD_WS_MAX_HEADER];

    (void) state;

    assert_int_equal(pd_ws_frame_header(h, PD_WS_TEXT, 0), 2);
    assert_memory_equal(h, "\x81\x00", 2);

    assert_int_equal(pd_ws_frame_header(h, PD_WS_PONG, 125), 2);
    assert_memory_equal(h, "\x8a\x7d", 2);

    assert_int_equal(pd_ws_frame_header(h, PD_WS_BINARY, 126), 4);
    assert_memory_equal(h, "\x82\x7e\x00\x7e", 4);

    assert_int_equal(pd_ws_frame_header(h, PD_WS_TEXT, 65535), 4);
    assert_memory_equal(h, "\x81\x7e\xff\xff", 4);

    assert_int_equal(pd_ws_frame_header(h, PD_WS_TEXT, 65536), 10);
    assert_memory_equal(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);

    assert_int_equal(pd_ws_frame_header(h, PD_WS_CLOSE,
                                        (size_t) 0x123456789aULL), 10);
    assert_memory_equal(h, "\x88\x7f\x00\x00\x00\x12\x34\x56\x78\x9a", 10);
}


static void
pd_test_close_payload_build(void **state)
{
    size_t           n;
    char             reason[300];
    u_char           out[PD_WS_MAX_CONTROL + 8];
    pd_utf8_state_t  st;

    (void) state;

    n = pd_ws_close_payload(out, PD_WS_CLOSE_NORMAL, "bye");
    assert_int_equal(n, 5);
    assert_memory_equal(out, "\x03\xe8" "bye", 5);

    n = pd_ws_close_payload(out, PD_WS_CLOSE_GOING_AWAY, NULL);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\x03\xe9", 2);

    n = pd_ws_close_payload(out, 4000, "");
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\x0f\xa0", 2);

    /* cut to 123 bytes */
    memset(reason, 'r', 200);
    reason[200] = '\0';
    memset(out, 0, sizeof(out));
    n = pd_ws_close_payload(out, PD_WS_CLOSE_TOO_BIG, reason);
    assert_int_equal(n, PD_WS_MAX_CONTROL);
    assert_memory_equal(out + 2, reason, PD_WS_MAX_REASON);
    assert_int_equal(out[PD_WS_MAX_CONTROL], 0);

    /* exactly 123 fits whole */
    reason[123] = '\0';
    assert_int_equal(pd_ws_close_payload(out, 1000, reason), 125);

    /* a 2-byte character across the cut goes whole */
    memset(reason, 'r', 122);
    strcpy(reason + 122, "\xc3\xa9 tail");
    n = pd_ws_close_payload(out, 1000, reason);
    assert_int_equal(n, 2 + 122);

    /* a 4-byte character ending exactly at the cut stays */
    memset(reason, 'r', 119);
    strcpy(reason + 119, "\xf0\x9f\x98\x80 tail");
    n = pd_ws_close_payload(out, 1000, reason);
    assert_int_equal(n, 2 + 123);

    /* ... one byte later it goes */
    memset(reason, 'r', 120);
    strcpy(reason + 120, "\xf0\x9f\x98\x80 tail");
    n = pd_ws_close_payload(out, 1000, reason);
    assert_int_equal(n, 2 + 120);

    pd_utf8_init(&st);
    assert_int_equal(pd_utf8_validate(&st, out + 2, n - 2), PD_OK);
    assert_int_equal(pd_utf8_complete(&st), PD_OK);
}


/* validates a heap copy of exactly len bytes: whole, and split at cut */
static pd_int_t
pd_test_utf8(const u_char *s, size_t len, size_t cut)
{
    u_char           *copy;
    pd_int_t          rc;
    pd_utf8_state_t   st;

    copy = malloc(len ? len : 1);
    assert_non_null(copy);

    if (len) {
        memcpy(copy, s, len);
    }

    pd_utf8_init(&st);
    rc = PD_OK;

    if (cut > len) {
        cut = len;
    }

    if (pd_utf8_validate(&st, copy, cut) != PD_OK
        || pd_utf8_validate(&st, copy + cut, len - cut) != PD_OK
        || pd_utf8_complete(&st) != PD_OK)
    {
        rc = PD_ERROR;
    }

    free(copy);

    return rc;
}


static void
pd_test_utf8_cases(void **state)
{
    size_t           i, cut;
    pd_utf8_state_t  st;

    static const struct {
        const u_char  *s;
        size_t         len;
        pd_int_t       rc;
    } cases[] = {
        { PD_T(""), PD_OK },
        { PD_T("plain ascii, longer than a word or two"), PD_OK },
        { PD_T("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), PD_OK },
        { PD_T("\x00"), PD_OK },
        { PD_T("\x7f"), PD_OK },
        { PD_T("\xc2\x80"), PD_OK },                   /* U+0080 */
        { PD_T("\xdf\xbf"), PD_OK },                   /* U+07FF */
        { PD_T("\xe0\xa0\x80"), PD_OK },               /* U+0800 */
        { PD_T("\xed\x9f\xbf"), PD_OK },               /* U+D7FF */
        { PD_T("\xee\x80\x80"), PD_OK },               /* U+E000 */
        { PD_T("\xef\xbf\xbd"), PD_OK },               /* U+FFFD */
        { PD_T("\xef\xbf\xbf"), PD_OK },               /* U+FFFF */
        { PD_T("\xf0\x90\x80\x80"), PD_OK },           /* U+10000 */
        { PD_T("\xf4\x8f\xbf\xbf"), PD_OK },           /* U+10FFFF */
        { PD_T("\xf0\x9f\x98\x80 ok"), PD_OK },

        /* overlong forms */
        { PD_T("\xc0\xaf"), PD_ERROR },
        { PD_T("\xc1\xbf"), PD_ERROR },
        { PD_T("\xe0\x80\xaf"), PD_ERROR },
        { PD_T("\xe0\x9f\xbf"), PD_ERROR },
        { PD_T("\xf0\x80\x80\xaf"), PD_ERROR },
        { PD_T("\xf0\x8f\xbf\xbf"), PD_ERROR },
        { PD_T("\xc0\x80"), PD_ERROR },
        /* surrogates, alone and paired */
        { PD_T("\xed\xa0\x80"), PD_ERROR },
        { PD_T("\xed\xbf\xbf"), PD_ERROR },
        { PD_T("\xed\xad\xbf\xed\xb0\x80"), PD_ERROR },
        /* past U+10FFFF, and bytes that never occur */
        { PD_T("\xf4\x90\x80\x80"), PD_ERROR },
        { PD_T("\xf7\xbf\xbf\xbf"), PD_ERROR },
        { PD_T("\xf5\x80\x80\x80"), PD_ERROR },
        { PD_T("\xf8\x88\x80\x80\x80"), PD_ERROR },
        { PD_T("\xfe"), PD_ERROR },
        { PD_T("\xff"), PD_ERROR },
        /* stray continuations, missing continuations */
        { PD_T("\x80"), PD_ERROR },
        { PD_T("a\xbf" "b"), PD_ERROR },
        { PD_T("\xc2" "a"), PD_ERROR },
        { PD_T("\xe2\x82" "a"), PD_ERROR },
        { PD_T("\xf0\x9f\x98" "a"), PD_ERROR },
        { PD_T("\xe2\x82\xac\xac"), PD_ERROR },
        /* truncated at the end */
        { PD_T("\xc2"), PD_ERROR },
        { PD_T("\xe2\x82"), PD_ERROR },
        { PD_T("\xf0\x9f\x98"), PD_ERROR },
        { PD_T("abcdefgh\xe2\x82"), PD_ERROR },
    };

    (void) state;

    /* every split of every case: state carries across fragments */
    for (i = 0; i < pd_nelems(cases); i++) {
        for (cut = 0; cut <= cases[i].len; cut++) {
            assert_int_equal(pd_test_utf8(cases[i].s, cases[i].len, cut),
                             cases[i].rc);
        }
    }

    /* a character cut across fragments is fine until the end */
    pd_utf8_init(&st);
    assert_int_equal(pd_utf8_validate(&st, PD_T("ab\xf0\x9f")), PD_OK);
    assert_int_equal(pd_utf8_complete(&st), PD_ERROR);
    assert_int_equal(pd_utf8_validate(&st, PD_T("\x98")), PD_OK);
    assert_int_equal(pd_utf8_validate(&st, PD_T("\x80")), PD_OK);
    assert_int_equal(pd_utf8_complete(&st), PD_OK);

    /* fail fast: the first impossible byte fails, not the end */
    pd_utf8_init(&st);
    assert_int_equal(pd_utf8_validate(&st, PD_T("\xf4\x90")), PD_ERROR);
    pd_utf8_init(&st);
    assert_int_equal(pd_utf8_validate(&st, PD_T("\xed")), PD_OK);
    assert_int_equal(pd_utf8_validate(&st, PD_T("\xa0")), PD_ERROR);
    pd_utf8_init(&st);
    assert_int_equal(pd_utf8_validate(&st, PD_T("\xe0\x9f")), PD_ERROR);

    /* the failure is sticky */
    assert_int_equal(pd_utf8_validate(&st, PD_T("ok")), PD_ERROR);
    assert_int_equal(pd_utf8_validate(&st, NULL, 0), PD_ERROR);
    assert_int_equal(pd_utf8_complete(&st), PD_ERROR);
    pd_utf8_init(&st);
    assert_int_equal(pd_utf8_validate(&st, PD_T("ok")), PD_OK);
}


/* a bad byte at every position of an ASCII run: the word path sees it */
static void
pd_test_utf8_ascii_runs(void **state)
{
    size_t  len, pos;
    u_char  s[64];

    (void) state;

    for (len = 1; len <= sizeof(s); len++) {
        memset(s, 'a', len);
        assert_int_equal(pd_test_utf8(s, len, 0), PD_OK);

        for (pos = 0; pos < len; pos++) {
            memset(s, 'a', len);
            s[pos] = 0x80;
            assert_int_equal(pd_test_utf8(s, len, 0), PD_ERROR);
            assert_int_equal(pd_test_utf8(s, len, pos), PD_ERROR);

            s[pos] = 0xff;
            assert_int_equal(pd_test_utf8(s, len, len - pos), PD_ERROR);

            /* a good 2-byte character in the run */
            if (pos + 1 < len) {
                s[pos] = 0xc3;
                s[pos + 1] = 0xa9;
                assert_int_equal(pd_test_utf8(s, len, pos + 1), PD_OK);
            }
        }
    }
}


/*
 * An independent reference: decode each code point and judge it by its
 * value, the way the definition reads, not by byte ranges.
 */
static pd_int_t
pd_test_utf8_reference(const u_char *s, size_t len)
{
    size_t    i, k, n;
    uint32_t  cp, min;

    for (i = 0; i < len; i += n) {
        if (s[i] < 0x80) {
            n = 1;
            continue;
        }

        if ((s[i] & 0xe0) == 0xc0) {
            n = 2;
            cp = s[i] & 0x1f;
            min = 0x80;

        } else if ((s[i] & 0xf0) == 0xe0) {
            n = 3;
            cp = s[i] & 0x0f;
            min = 0x800;

        } else if ((s[i] & 0xf8) == 0xf0) {
            n = 4;
            cp = s[i] & 0x07;
            min = 0x10000;

        } else {
            return PD_ERROR;
        }

        if (i + n > len) {
            return PD_ERROR;
        }

        for (k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return PD_ERROR;
            }

            cp = (cp << 6) | (s[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return PD_ERROR;
        }
    }

    return PD_OK;
}


static size_t
pd_test_utf8_encode(u_char *p, uint32_t cp)
{
    if (cp < 0x80) {
        p[0] = (u_char) cp;
        return 1;
    }

    if (cp < 0x800) {
        p[0] = (u_char) (0xc0 | (cp >> 6));
        p[1] = (u_char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        p[0] = (u_char) (0xe0 | (cp >> 12));
        p[1] = (u_char) (0x80 | ((cp >> 6) & 0x3f));
        p[2] = (u_char) (0x80 | (cp & 0x3f));
        return 3;
    }

    p[0] = (u_char) (0xf0 | (cp >> 18));
    p[1] = (u_char) (0x80 | ((cp >> 12) & 0x3f));
    p[2] = (u_char) (0x80 | ((cp >> 6) & 0x3f));
    p[3] = (u_char) (0x80 | (cp & 0x3f));
    return 4;
}


static void
pd_test_utf8_random(void **state)
{
    size_t      i, len, target, valid;
    u_char      s[64];
    pd_int_t    ref;
    uint32_t    cp;

    static const u_char  edge[] = {
        0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
        0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3,
        0xf4, 0xf5, 0xf7, 0xf8, 0xfe, 0xff
    };

    (void) state;

    pd_test_rand_state = 0x9e3779b97f4a7c15ULL;
    valid = 0;

    for (i = 0; i < PD_TEST_UTF8_ROUNDS; i++) {
        target = pd_test_rand() % 40;
        len = 0;

        while (len < target) {
            switch (pd_test_rand() % 4) {

            case 0:
                s[len++] = edge[pd_test_rand() % pd_nelems(edge)];
                break;

            case 1:
                s[len++] = (u_char) pd_test_rand();
                break;

            default:
                /* a well-formed character, possibly a surrogate */
                cp = pd_test_rand() % 0x110000;

                if (pd_test_rand() % 2) {
                    cp &= 0xffff;
                }

                len += pd_test_utf8_encode(s + len, cp);
                break;
            }
        }

        ref = pd_test_utf8_reference(s, len);
        valid += (ref == PD_OK);

        assert_int_equal(pd_test_utf8(s, len, 0), ref);
        assert_int_equal(pd_test_utf8(s, len, pd_test_rand() % (len + 1)),
                         ref);
    }

    /* both outcomes were exercised, in earnest */
    assert_true(valid > PD_TEST_UTF8_ROUNDS / 20);
    assert_true(valid < PD_TEST_UTF8_ROUNDS - PD_TEST_UTF8_ROUNDS / 20);
}


/*
 * A random stream of client frames: mostly a sequence a client could
 * send (fragments in order, control frames between), sometimes any
 * opcode or FIN, sometimes with bits flipped, sometimes noise.
 */
static size_t
pd_test_fuzz_input(u_char *s, size_t size)
{
    size_t     len, n, plen, i;
    u_char     b0, payload[300];
    pd_uint_t  form, in_message;

    if (pd_test_rand() % 8 == 0) {
        len = pd_test_rand() % 64;

        for (i = 0; i < len; i++) {
            s[i] = (u_char) pd_test_rand();
        }

        return len;
    }

    len = 0;
    in_message = 0;
    n = 1 + pd_test_rand() % 6;

    while (n--) {
        switch (pd_test_rand() % 8) {

        case 0:
            b0 = (u_char) (pd_test_rand() & 0x8f);
            break;

        case 1:
        case 2:
            b0 = 0x80 | (0x08 + pd_test_rand() % 3);
            break;

        default:
            b0 = in_message ? PD_WS_CONT : 0x01 + pd_test_rand() % 2;
            b0 |= (pd_test_rand() % 3) ? 0x80 : 0;
            break;
        }

        if (!(b0 & 0x08)) {
            in_message = !(b0 & 0x80);
        }

        plen = pd_test_rand() % ((b0 & 0x08) ? 130 : 300);
        form = (pd_test_rand() % 4 == 0) ? PD_TEST_LEN_64 : PD_TEST_LEN_MIN;

        for (i = 0; i < plen; i++) {
            payload[i] = (u_char) (0x20 + pd_test_rand() % 95);
        }

        if ((b0 & 0x0f) == PD_WS_CLOSE && plen >= 2) {
            payload[0] = 0x03;
            payload[1] = (u_char) (0xe8 + pd_test_rand() % 4);

            if (pd_test_rand() % 4 == 0) {
                payload[2 + pd_test_rand() % (plen - 1)] = 0xff;
            }
        }

        if (len + 14 + plen > size) {
            break;
        }

        len += pd_test_frame(s + len, b0, payload, plen, form,
                             pd_test_rand());
    }

    n = (pd_test_rand() % 3 == 0) ? 1 + pd_test_rand() % 3 : 0;

    while (len && n--) {
        i = pd_test_rand() % len;
        s[i] ^= (u_char) (1 << (pd_test_rand() % 8));
    }

    return len;
}


/* FNV-1a over what the parser said, to compare two feedings */
static void
pd_test_hash(uint64_t *h, const void *data, size_t len)
{
    size_t         i;
    const u_char  *p;

    p = data;

    for (i = 0; i < len; i++) {
        *h = (*h ^ p[i]) * 0x100000001b3ULL;
    }
}


/*
 * Parses what one call sees, checking the contract's invariants, and
 * folds the outcome into the hash.  Returns the rc.
 */
static pd_int_t
pd_test_fuzz_step(pd_ws_parser_t *p, u_char *buf, size_t len, uint64_t *h,
    size_t *consumed, size_t *message)
{
    pd_int_t       rc;
    pd_uint_t      v[5];
    pd_ws_frame_t  f;

    rc = pd_ws_parse(p, buf, len, &f, consumed);

    switch (rc) {

    case PD_OK:
        assert_true(*consumed <= len);
        assert_ptr_equal(f.payload + f.payload_len, buf + *consumed);
        assert_true(f.payload >= buf + 6);

        if (p->max_frame) {
            assert_true(f.payload_len <= p->max_frame);
        }

        if (!(f.opcode & 0x08)) {
            *message += f.payload_len;

            if (p->max_message) {
                assert_true(*message <= p->max_message);
            }

            if (f.fin) {
                *message = 0;
            }
        }

        pd_test_fuzz_seen[0]++;

        v[0] = (pd_uint_t) rc;
        v[1] = f.opcode;
        v[2] = f.message_opcode;
        v[3] = f.close_code;
        v[4] = f.fin;
        pd_test_hash(h, v, sizeof(v));
        pd_test_hash(h, &f.payload_len, sizeof(size_t));
        pd_test_hash(h, f.payload, f.payload_len);
        break;

    case PD_AGAIN:
        assert_int_equal(*consumed, 0);
        assert_true(p->need > len);
        break;

    case PD_ERROR:
        assert_int_equal(*consumed, 0);
        assert_non_null(p->error);
        assert_true(p->close_code == PD_WS_CLOSE_PROTOCOL
                    || p->close_code == PD_WS_CLOSE_TOO_BIG
                    || p->close_code == PD_WS_CLOSE_INVALID_DATA);

        pd_test_fuzz_seen[p->close_code == PD_WS_CLOSE_PROTOCOL ? 1
                          : p->close_code == PD_WS_CLOSE_INVALID_DATA ? 2
                          : 3]++;

        v[0] = (pd_uint_t) rc;
        v[1] = p->close_code;
        pd_test_hash(h, v, 2 * sizeof(pd_uint_t));
        break;

    default:
        fail_msg("unexpected rc %ld", (long) rc);
    }

    return rc;
}


/* the input whole, in one exact-size buffer */
static uint64_t
pd_test_fuzz_whole(pd_ws_parser_t *p, const u_char *s, size_t len)
{
    size_t     off, consumed, message;
    u_char    *buf;
    pd_int_t   rc;
    uint64_t   h;

    buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, s, len);

    h = 0xcbf29ce484222325ULL;
    off = 0;
    message = 0;

    do {
        rc = pd_test_fuzz_step(p, buf + off, len - off, &h, &consumed,
                               &message);
        off += consumed;
    } while (rc == PD_OK);

    free(buf);

    return h;
}


/*
 * The input in random chunks, the way the room reads it: what a call
 * leaves is kept and put before the next chunk, in a new exact-size
 * buffer every time.
 */
static uint64_t
pd_test_fuzz_chunked(pd_ws_parser_t *p, const u_char *s, size_t len)
{
    size_t     off, pos, chunk, pending, consumed, message;
    u_char    *buf, *keep;
    pd_int_t   rc;
    uint64_t   h;

    h = 0xcbf29ce484222325ULL;
    keep = NULL;
    pending = 0;
    pos = 0;
    message = 0;
    rc = PD_AGAIN;

    for ( ;; ) {
        /* not inside pd_min(): it would draw twice */
        chunk = 1 + pd_test_rand() % 24;
        chunk = pd_min(len - pos, chunk);

        buf = malloc((pending + chunk) ? pending + chunk : 1);
        assert_non_null(buf);

        if (pending) {
            memcpy(buf, keep, pending);
        }

        memcpy(buf + pending, s + pos, chunk);
        pos += chunk;
        free(keep);
        keep = NULL;

        off = 0;

        do {
            rc = pd_test_fuzz_step(p, buf + off, pending + chunk - off, &h,
                                   &consumed, &message);
            off += consumed;
        } while (rc == PD_OK);

        pending = pending + chunk - off;

        if (rc == PD_AGAIN && pending) {
            keep = malloc(pending);
            assert_non_null(keep);
            memcpy(keep, buf + off, pending);
        }

        free(buf);

        if (rc == PD_ERROR || pos == len) {
            break;
        }
    }

    free(keep);

    return h;
}


static void
pd_test_fuzz(void **state)
{
    size_t          i, len, max_frame, max_message;
    u_char          s[2048];
    uint64_t        whole, chunked;
    pd_ws_parser_t  p;

    static const size_t  frames[] = { 0, 16, 200 };
    static const size_t  messages[] = { 0, 40, 1000 };

    (void) state;

    pd_test_rand_state = 0x2545f4914f6cdd1dULL;

    for (i = 0; i < PD_TEST_FUZZ_ROUNDS; i++) {
        len = pd_test_fuzz_input(s, sizeof(s));
        max_frame = frames[pd_test_rand() % 3];
        max_message = messages[pd_test_rand() % 3];

        pd_ws_parser_init(&p, max_frame, max_message);
        whole = pd_test_fuzz_whole(&p, s, len);

        /* the parser unmasked the copy only: s is as generated */
        pd_ws_parser_init(&p, max_frame, max_message);
        chunked = pd_test_fuzz_chunked(&p, s, len);

        /* how the bytes were split changes nothing */
        assert_true(whole == chunked);
    }

    print_message("frames %zu, errors: 1002 %zu, 1007 %zu, 1009 %zu\n",
                  pd_test_fuzz_seen[0], pd_test_fuzz_seen[1],
                  pd_test_fuzz_seen[2], pd_test_fuzz_seen[3]);

    /* the input reached past the header checks, and every kind of end */
    assert_true(pd_test_fuzz_seen[0] > PD_TEST_FUZZ_ROUNDS);
    assert_true(pd_test_fuzz_seen[1] > PD_TEST_FUZZ_ROUNDS / 10);
    assert_true(pd_test_fuzz_seen[2] > 10);
    assert_true(pd_test_fuzz_seen[3] > PD_TEST_FUZZ_ROUNDS / 100);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_accept_key),
        cmocka_unit_test(pd_test_rfc_examples),
        cmocka_unit_test(pd_test_lengths),
        cmocka_unit_test(pd_test_bad_lengths),
        cmocka_unit_test(pd_test_byte_at_a_time),
        cmocka_unit_test(pd_test_fragments),
        cmocka_unit_test(pd_test_control),
        cmocka_unit_test(pd_test_rsv_and_opcodes),
        cmocka_unit_test(pd_test_limits),
        cmocka_unit_test(pd_test_close_payload_check),
        cmocka_unit_test(pd_test_frame_header),
        cmocka_unit_test(pd_test_close_payload_build),
        cmocka_unit_test(pd_test_utf8_cases),
        cmocka_unit_test(pd_test_utf8_ascii_runs),
        cmocka_unit_test(pd_test_utf8_random),
        cmocka_unit_test(pd_test_fuzz),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
