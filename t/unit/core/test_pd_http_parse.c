/* test_pd_http_parse.c: unit tests and a mutation fuzz of the HTTP parser. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pd_core.h"

#define PD_T(s)  s, sizeof(s) - 1

#define PD_TEST_FUZZ_ROUNDS  20000

typedef struct {
    const char  *data;
    size_t       len;
    pd_int_t     rc;
    pd_uint_t    status;
} pd_test_case_t;

/* the results of one parse, with strings as offsets into its buffer */
typedef struct {
    pd_int_t     rc;
    pd_uint_t    status;
    const char  *error;
    pd_uint_t    method;
    pd_uint_t    version;
    pd_uint_t    nheaders;
    size_t       str[4 + 2 * PD_HTTP_MAX_HEADERS][2];
    int64_t      content_length;
    size_t       header_len;
    unsigned     keepalive;
    unsigned     upgrade;
    unsigned     expect_continue;
} pd_test_snap_t;

static uint64_t  pd_test_rand_state;


static const pd_test_case_t  pd_test_cases[] = {

    /* good */
    { PD_T("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK, 0 },
    { PD_T("GET /connect?uid=u1&token=t HTTP/1.1\r\nHost: h:8080\r\n"
           "Connection: Upgrade\r\nUpgrade: websocket\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n"), PD_OK, 0 },
    { PD_T("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK, 0 },
    { PD_T("\nGET / HTTP/1.1\nHost: a\n\n"), PD_OK, 0 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\n\r\n"), PD_OK, 0 },
    { PD_T("GET / HTTP/1.0\r\n\r\n"), PD_OK, 0 },
    { PD_T("POST /v1/push HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
           "Authorization: Bearer k\r\nExpect: 100-continue\r\n\r\n"
           "0123456789"), PD_OK, 0 },
    { PD_T("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK, 0 },
    { PD_T("GET http://example.com:80/x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
      PD_OK, 0 },
    { PD_T("GET HTTPS://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK, 0 },
    { PD_T("BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK, 0 },
    { PD_T("get / HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK, 0 },
    { PD_T("GET /\xc3\xa9?q=\xff HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK, 0 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\r\nX-A: \x80\xff v\tw \t\r\n\r\n"),
      PD_OK, 0 },
    { PD_T("GET / HTTP/1.1\r\nHost:\r\nX:   \r\n\r\n"), PD_OK, 0 },
    { PD_T("PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
           "content-length: 005\r\n\r\n"), PD_OK, 0 },
    { PD_T("DELETE /a?&& HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
      PD_OK, 0 },
    { PD_T("HEAD /? HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), PD_OK, 0 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~0aZ: x\r\n\r\n"),
      PD_OK, 0 },

    /* incomplete */
    { PD_T(""), PD_AGAIN, 0 },
    { PD_T("\r\n\r\n"), PD_AGAIN, 0 },
    { PD_T("GET"), PD_AGAIN, 0 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\r\n"), PD_AGAIN, 0 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\r\n\r"), PD_AGAIN, 0 },
    { PD_T("GET http://h"), PD_AGAIN, 0 },

    /* request line */
    { PD_T(" GET / HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("\x00GET / HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("\r\rGET / HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("G\x80T / HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET\t/ HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET  / HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET /  HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1 \r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET /a b HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET /a\x01 HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET /a\x7f HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET /a\x00 HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET /a\tb HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET a HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET ?a HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET ftp://h/ HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET http:/h/ HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET http:///x HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET http://h HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET http://h?x HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET /\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / \r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / http/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1x\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/11.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.11\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/a.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\rX\n\r\n"), PD_ERROR, 400 },

    /* version */
    { PD_T("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), PD_ERROR, 505 },
    { PD_T("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), PD_ERROR, 505 },
    { PD_T("GET / HTTP/0.9\r\n\r\n"), PD_ERROR, 505 },
    { PD_T("GET / HTTP/3.0\n"), PD_ERROR, 505 },

    /* header fields */
    { PD_T("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"),
      PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHo st: a\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHost\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nH\xc3\xa9: a\r\nHost: a\r\n\r\n"),
      PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\x00" "b\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHost: \x1b\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\r\n\rX"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), PD_ERROR, 400 },

    /* framing */
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n"),
      PD_ERROR, 400 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
      PD_ERROR, 400 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n"),
      PD_ERROR, 400 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"),
      PD_ERROR, 400 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"),
      PD_ERROR, 400 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n"),
      PD_ERROR, 400 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n"),
      PD_ERROR, 400 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\n"
           "Content-Length: 9223372036854775808\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\n"
           "Content-Length: 99999999999999999999999\r\n\r\n"),
      PD_ERROR, 400 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
           "Content-Length: 6\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
           "Transfer-Encoding: chunked\r\n\r\n"), PD_ERROR, 400 },
    { PD_T("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
      PD_ERROR, 400 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
           "\r\n"), PD_ERROR, 411 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n"
           "\r\n"), PD_ERROR, 411 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked,\r\n"
           "\r\n"), PD_ERROR, 411 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked"
           "\r\n\r\n"), PD_ERROR, 501 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
      PD_ERROR, 501 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
           "Transfer-Encoding: chunked\r\n\r\n"), PD_ERROR, 501 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"),
      PD_ERROR, 501 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n"),
      PD_ERROR, 413 },
    { PD_T("POST / HTTP/1.1\r\nHost: a\r\n"
           "Content-Length: 9223372036854775807\r\n\r\n"), PD_ERROR, 413 },
};


static void
pd_test_limits(pd_http_request_t *r)
{
    r->max_line = 1024;
    r->max_headers = 32;
    r->max_header = 4096;
    r->max_body = 1048576;
    pd_http_request_reset(r);
}


static uint64_t
pd_test_rand(void)
{
    /* xorshift64*: deterministic, so a failure can be replayed */
    pd_test_rand_state ^= pd_test_rand_state >> 12;
    pd_test_rand_state ^= pd_test_rand_state << 25;
    pd_test_rand_state ^= pd_test_rand_state >> 27;

    return pd_test_rand_state * 2685821657736338717ULL;
}


static size_t
pd_test_rand_n(size_t n)
{
    return (size_t) (pd_test_rand() % n);
}


/* an exact-size heap copy, so ASan catches any read past len */
static u_char *
pd_test_copy(const void *data, size_t len)
{
    u_char  *p;

    /* nothing at all for no bytes: ASan's malloc(0) hides one byte */
    if (len == 0) {
        return NULL;
    }

    p = malloc(len);
    assert_non_null(p);
    memcpy(p, data, len);

    return p;
}


static void
pd_test_snap_str(pd_test_snap_t *s, size_t i, pd_str_t *str, u_char *buf,
    size_t len)
{
    /* every string must lie inside the bytes given */
    assert_true(str->data >= buf);
    assert_true(str->len <= len);
    assert_true((size_t) (str->data - buf) <= len - str->len);

    s->str[i][0] = str->data - buf;
    s->str[i][1] = str->len;
}


static void
pd_test_snap(pd_test_snap_t *s, pd_http_request_t *r, pd_int_t rc,
    u_char *buf, size_t len)
{
    pd_uint_t  i;

    memset(s, 0, sizeof(pd_test_snap_t));

    assert_true(rc == PD_OK || rc == PD_AGAIN || rc == PD_ERROR);
    s->rc = rc;

    if (rc == PD_AGAIN) {
        return;
    }

    if (rc == PD_ERROR) {
        assert_true(r->status == 400 || r->status == 411
                    || r->status == 413 || r->status == 414
                    || r->status == 431 || r->status == 501
                    || r->status == 505);
        assert_non_null(r->error);
        assert_string_not_equal(pd_http_status_text(r->status), "Unknown");
    }

    s->status = r->status;
    s->error = r->error;
    s->method = r->method;
    s->version = r->version;
    s->nheaders = r->nheaders;

    assert_true(r->nheaders <= PD_HTTP_MAX_HEADERS);

    pd_test_snap_str(s, 0, &r->method_name, buf, len);
    pd_test_snap_str(s, 1, &r->uri, buf, len);
    pd_test_snap_str(s, 2, &r->path, buf, len);
    pd_test_snap_str(s, 3, &r->args, buf, len);

    for (i = 0; i < r->nheaders; i++) {
        pd_test_snap_str(s, 4 + 2 * i, &r->headers[i].name, buf, len);
        pd_test_snap_str(s, 5 + 2 * i, &r->headers[i].value, buf, len);
    }

    if (rc == PD_OK) {
        assert_true(r->header_len > 0 && r->header_len <= len);
        assert_true(r->content_length >= -1);
        s->content_length = r->content_length;
        s->header_len = r->header_len;
        s->keepalive = r->keepalive;
        s->upgrade = r->upgrade;
        s->expect_continue = r->expect_continue;
    }
}


/* one call on an exact-size copy */
static void
pd_test_whole(pd_http_request_t *proto, const char *data, size_t len,
    pd_test_snap_t *s)
{
    u_char             *buf;
    pd_int_t            rc;
    pd_http_request_t   r;

    r = *proto;
    pd_http_request_reset(&r);

    buf = pd_test_copy(data, len);
    rc = pd_http_parse_request(&r, buf, len);
    pd_test_snap(s, &r, rc, buf, len);

    /* a finished parse answers the same again */
    if (rc != PD_AGAIN) {
        assert_int_equal(pd_http_parse_request(&r, buf, len), rc);
        assert_int_equal(r.status, s->status);
    }

    free(buf);
}


/*
 * Calls with growing prefixes, cut after the offsets in cuts[]; each call
 * gets a fresh exact-size copy of the prefix (the previous one freed), so
 * the parser must neither read past len nor keep a pointer across calls.
 */
static void
pd_test_pieces(pd_http_request_t *proto, const char *data, size_t len,
    size_t *cuts, size_t ncuts, pd_test_snap_t *s)
{
    size_t              i, end;
    u_char             *buf, *prev;
    pd_int_t            rc;
    pd_http_request_t   r;

    r = *proto;
    pd_http_request_reset(&r);

    prev = NULL;
    buf = NULL;
    rc = PD_AGAIN;
    end = 0;

    for (i = 0; i <= ncuts && rc == PD_AGAIN; i++) {
        end = (i < ncuts) ? cuts[i] : len;
        buf = pd_test_copy(data, end);
        rc = pd_http_parse_request(&r, buf, end);
        free(prev);
        prev = buf;
    }

    pd_test_snap(s, &r, rc, buf, end);
    free(buf);
}


static void
pd_test_bytewise(pd_http_request_t *proto, const char *data, size_t len,
    pd_test_snap_t *s)
{
    size_t   i, *cuts;

    cuts = malloc((len + 1) * sizeof(size_t));
    assert_non_null(cuts);

    for (i = 0; i < len; i++) {
        cuts[i] = i;
    }

    pd_test_pieces(proto, data, len, cuts, len, s);
    free(cuts);
}


static void
pd_test_random_split(pd_http_request_t *proto, const char *data, size_t len,
    pd_test_snap_t *s)
{
    size_t  n, cuts[8], i, j, t;

    n = (len == 0) ? 0 : pd_test_rand_n(pd_nelems(cuts) + 1);

    for (i = 0; i < n; i++) {
        cuts[i] = pd_test_rand_n(len + 1);
    }

    for (i = 1; i < n; i++) {
        for (j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
            t = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = t;
        }
    }

    pd_test_pieces(proto, data, len, cuts, n, s);
}


/* the same buffer throughout, len growing by one: the common caller */
static void
pd_test_growing(pd_http_request_t *proto, const char *data, size_t len,
    pd_test_snap_t *s)
{
    size_t              n;
    u_char             *buf;
    pd_int_t            rc;
    pd_http_request_t   r;

    r = *proto;
    pd_http_request_reset(&r);

    buf = pd_test_copy(data, len);
    rc = pd_http_parse_request(&r, buf, 0);

    for (n = 1; n <= len && rc == PD_AGAIN; n++) {
        rc = pd_http_parse_request(&r, buf, n);
    }

    pd_test_snap(s, &r, rc, buf, len);
    free(buf);
}


static void
pd_test_assert_same(pd_test_snap_t *a, pd_test_snap_t *b, const char *data)
{
    if (memcmp(a, b, sizeof(pd_test_snap_t)) != 0) {
        fail_msg("split changed the result of \"%s\": rc %d/%d status %d/%d",
                 data, (int) a->rc, (int) b->rc, (int) a->status,
                 (int) b->status);
    }
}


static void
pd_test_table(void **state)
{
    size_t                 i;
    pd_test_snap_t         s;
    pd_http_request_t      r;
    const pd_test_case_t  *c;

    (void) state;

    for (i = 0; i < pd_nelems(pd_test_cases); i++) {
        c = &pd_test_cases[i];

        pd_test_limits(&r);
        pd_test_whole(&r, c->data, c->len, &s);

        if (s.rc != c->rc || s.status != c->status) {
            fail_msg("case %zu \"%s\": rc %d status %d (%s), expected "
                     "rc %d status %d", i, c->data, (int) s.rc,
                     (int) s.status, s.error ? s.error : "-", (int) c->rc,
                     (int) c->status);
        }
    }
}


static void
pd_test_split_equivalence(void **state)
{
    size_t                 i, k;
    pd_test_snap_t         whole, split;
    pd_http_request_t      r;
    const pd_test_case_t  *c;

    (void) state;

    pd_test_rand_state = 0x5eed0001;

    for (i = 0; i < pd_nelems(pd_test_cases); i++) {
        c = &pd_test_cases[i];

        pd_test_limits(&r);
        pd_test_whole(&r, c->data, c->len, &whole);

        pd_test_bytewise(&r, c->data, c->len, &split);
        pd_test_assert_same(&whole, &split, c->data);

        pd_test_growing(&r, c->data, c->len, &split);
        pd_test_assert_same(&whole, &split, c->data);

        for (k = 0; k < 50; k++) {
            pd_test_random_split(&r, c->data, c->len, &split);
            pd_test_assert_same(&whole, &split, c->data);
        }
    }
}


static u_char *
pd_test_parse(pd_http_request_t *r, const char *data, size_t len,
    pd_int_t expect)
{
    u_char  *buf;

    pd_test_limits(r);
    buf = pd_test_copy(data, len);
    assert_int_equal(pd_http_parse_request(r, buf, len), expect);

    return buf;
}


static void
pd_test_assert_str(pd_str_t *s, const char *lit)
{
    if (s->len != strlen(lit) || memcmp(s->data, lit, s->len) != 0) {
        fail_msg("\"%.*s\" != \"%s\"", (int) s->len, s->data, lit);
    }
}


static void
pd_test_fields(void **state)
{
    u_char             *buf;
    pd_http_request_t   r;
    static const char   req[] =
        "\r\nGET /connect?uid=u1&token=t HTTP/1.1\r\n"
        "Host: h:8080\r\n"
        "Connection:  keep-alive, Upgrade\t\r\n"
        "upgrade:websocket\r\n"
        "X-Empty:\r\n"
        "X-Inner:  a  b \r\n"
        "\r\n"
        "trailing body";

    (void) state;

    buf = pd_test_parse(&r, req, sizeof(req) - 1, PD_OK);

    assert_int_equal(r.method, PD_HTTP_GET);
    pd_test_assert_str(&r.method_name, "GET");
    pd_test_assert_str(&r.uri, "/connect?uid=u1&token=t");
    pd_test_assert_str(&r.path, "/connect");
    pd_test_assert_str(&r.args, "uid=u1&token=t");
    assert_int_equal(r.version, 1001);
    assert_int_equal(r.nheaders, 5);
    pd_test_assert_str(&r.headers[0].name, "Host");
    pd_test_assert_str(&r.headers[0].value, "h:8080");
    pd_test_assert_str(&r.headers[1].value, "keep-alive, Upgrade");
    pd_test_assert_str(&r.headers[2].name, "upgrade");
    pd_test_assert_str(&r.headers[2].value, "websocket");
    pd_test_assert_str(&r.headers[3].value, "");
    pd_test_assert_str(&r.headers[4].value, "a  b");
    assert_int_equal(r.header_len, sizeof(req) - 1 - strlen("trailing body"));
    assert_int_equal(r.content_length, -1);
    assert_true(r.keepalive);
    assert_true(r.upgrade);
    assert_false(r.expect_continue);
    assert_ptr_equal(r.method_name.data, buf + 2);

    pd_test_assert_str(pd_http_header_find(&r, "UPGRADE"), "websocket");
    pd_test_assert_str(pd_http_header_find(&r, "x-inner"), "a  b");
    assert_null(pd_http_header_find(&r, "X-Inne"));
    assert_null(pd_http_header_find(&r, "X-Inner2"));

    free(buf);
}


static void
pd_test_targets(void **state)
{
    u_char             *buf;
    pd_http_request_t   r;

    (void) state;

    buf = pd_test_parse(&r, PD_T("GET http://example.com:80/x/y?a=1 "
                                 "HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK);
    pd_test_assert_str(&r.uri, "/x/y?a=1");
    pd_test_assert_str(&r.path, "/x/y");
    pd_test_assert_str(&r.args, "a=1");
    free(buf);

    buf = pd_test_parse(&r, PD_T("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
                        PD_OK);
    assert_int_equal(r.method, PD_HTTP_OPTIONS);
    pd_test_assert_str(&r.uri, "*");
    pd_test_assert_str(&r.path, "*");
    pd_test_assert_str(&r.args, "");
    free(buf);

    buf = pd_test_parse(&r, PD_T("HEAD /? HTTP/1.1\r\nHost: a\r\n\r\n"),
                        PD_OK);
    assert_int_equal(r.method, PD_HTTP_HEAD);
    pd_test_assert_str(&r.path, "/");
    pd_test_assert_str(&r.args, "");
    pd_test_assert_str(&r.uri, "/?");
    free(buf);

    buf = pd_test_parse(&r, PD_T("GET /a?b?c=%20 HTTP/1.1\r\nHost: a\r\n\r\n"),
                        PD_OK);
    pd_test_assert_str(&r.path, "/a");
    pd_test_assert_str(&r.args, "b?c=%20");
    free(buf);

    buf = pd_test_parse(&r, PD_T("BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n"),
                        PD_OK);
    assert_int_equal(r.method, PD_HTTP_UNKNOWN);
    pd_test_assert_str(&r.method_name, "BREW");
    free(buf);

    buf = pd_test_parse(&r, PD_T("get / HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK);
    assert_int_equal(r.method, PD_HTTP_UNKNOWN);
    free(buf);

    buf = pd_test_parse(&r, PD_T("POST / HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK);
    assert_int_equal(r.method, PD_HTTP_POST);
    free(buf);

    buf = pd_test_parse(&r, PD_T("PUT / HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK);
    assert_int_equal(r.method, PD_HTTP_PUT);
    free(buf);

    buf = pd_test_parse(&r, PD_T("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n"),
                        PD_OK);
    assert_int_equal(r.method, PD_HTTP_DELETE);
    free(buf);

    buf = pd_test_parse(&r, PD_T("DELETES / HTTP/1.1\r\nHost: a\r\n\r\n"),
                        PD_OK);
    assert_int_equal(r.method, PD_HTTP_UNKNOWN);
    free(buf);
}


/* the Connection and Expect rules, by version */
static void
pd_test_connection(void **state)
{
    size_t              i;
    u_char             *buf;
    pd_http_request_t   r;

    static const struct {
        const char  *req;
        unsigned     keepalive;
        unsigned     upgrade;
        unsigned     expect;
    } cases[] = {
        { "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, 0, 0 },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0, 0, 0 },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", 0, 0, 0 },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
          1, 0, 0 },
        { "GET / HTTP/1.0\r\n\r\n", 0, 0, 0 },
        { "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, 0, 0 },
        { "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1, 0, 0 },
        { "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
          0, 0, 0 },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
          "Connection: keep-alive\r\n\r\n", 0, 0, 0 },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n",
          1, 1, 0 },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive,upgrade\r\n"
          "\r\n", 1, 1, 0 },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgraded\r\n\r\n",
          1, 0, 0 },
        { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
          1, 0, 0 },
        { "GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\n"
          "Connection: upgrade, close\r\n\r\n", 0, 1, 0 },
        { "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
          "Content-Length: 3\r\n\r\n", 1, 0, 1 },
        { "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\n\r\n",
          1, 0, 0 },
        { "POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", 0, 0, 0 },
    };

    (void) state;

    for (i = 0; i < pd_nelems(cases); i++) {
        buf = pd_test_parse(&r, cases[i].req, strlen(cases[i].req), PD_OK);

        if (r.keepalive != cases[i].keepalive
            || r.upgrade != cases[i].upgrade
            || r.expect_continue != cases[i].expect)
        {
            fail_msg("case %zu: keepalive %u upgrade %u expect %u", i,
                     r.keepalive, r.upgrade, r.expect_continue);
        }

        free(buf);
    }
}


/* the status of a POST with this Content-Length under max_body */
static pd_uint_t
pd_test_body_status(size_t max_body, const char *length)
{
    char                req[128];
    u_char             *buf;
    size_t              n;
    pd_int_t            rc;
    pd_http_request_t   r;

    n = snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nHost: a\r\n"
                 "Content-Length: %s\r\n\r\n", length);

    pd_test_limits(&r);
    r.max_body = max_body;
    buf = pd_test_copy(req, n);
    rc = pd_http_parse_request(&r, buf, n);
    free(buf);

    assert_true(rc == PD_OK || rc == PD_ERROR);

    return (rc == PD_OK) ? 0 : r.status;
}


static void
pd_test_content_length(void **state)
{
    u_char             *buf;
    pd_http_request_t   r;

    (void) state;

    buf = pd_test_parse(&r, PD_T("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK);
    assert_int_equal(r.content_length, -1);
    free(buf);

    buf = pd_test_parse(&r, PD_T("POST / HTTP/1.1\r\nHost: a\r\n"
                                 "Content-Length: 0\r\n\r\n"), PD_OK);
    assert_int_equal(r.content_length, 0);
    free(buf);

    buf = pd_test_parse(&r, PD_T("POST / HTTP/1.1\r\nHost: a\r\n"
                                 "Content-Length: 007\r\n"
                                 "Content-Length: 7\r\n\r\n"), PD_OK);
    assert_int_equal(r.content_length, 7);
    free(buf);

    /* max_body itself is allowed, one more is 413, 0 allows no body */
    assert_int_equal(pd_test_body_status(100, "100"), 0);
    assert_int_equal(pd_test_body_status(100, "101"), 413);
    assert_int_equal(pd_test_body_status(0, "0"), 0);
    assert_int_equal(pd_test_body_status(0, "1"), 413);
    assert_int_equal(pd_test_body_status(0, "00"), 0);

    buf = pd_test_parse(&r, PD_T("POST / HTTP/1.1\r\nHost: a\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n"),
                        PD_ERROR);
    assert_int_equal(r.status, 411);
    assert_string_equal(r.error, "chunked request bodies are not supported, "
                        "send Content-Length");
    free(buf);
}


static void
pd_test_fill(char *p, size_t n, char c)
{
    memset(p, c, n);
}


/* 414 at max_line + 1, with or without the line end in sight */
static void
pd_test_limit_line(void **state)
{
    char                line[200];
    size_t              n;
    u_char             *buf;
    pd_http_request_t   r;

    (void) state;

    /* "GET /aaa HTTP/1.1" of exactly 100 bytes */
    memcpy(line, "GET /", 5);
    pd_test_fill(line + 5, 100 - 5 - 9, 'a');
    memcpy(line + 100 - 9, " HTTP/1.1\r\nHost: a\r\n\r\n", 23);
    n = 100 + 2 + 9 + 2;

    pd_test_limits(&r);
    r.max_line = 100;
    buf = pd_test_copy(line, n);
    assert_int_equal(pd_http_parse_request(&r, buf, n), PD_OK);
    assert_int_equal(r.uri.len, 100 - 4 - 9);
    free(buf);

    pd_test_limits(&r);
    r.max_line = 99;
    buf = pd_test_copy(line, n);
    assert_int_equal(pd_http_parse_request(&r, buf, n), PD_ERROR);
    assert_int_equal(r.status, 414);
    free(buf);

    /* leading empty lines do not count against max_line */
    pd_test_limits(&r);
    r.max_line = 100;
    buf = malloc(n + 4);
    assert_non_null(buf);
    memcpy(buf, "\r\n\r\n", 4);
    memcpy(buf + 4, line, n);
    assert_int_equal(pd_http_parse_request(&r, buf, n + 4), PD_OK);
    free(buf);

    /* an endless target is refused at byte max_line + 1 */
    pd_test_limits(&r);
    r.max_line = 100;
    pd_test_fill(line, sizeof(line), 'b');
    memcpy(line, "GET /", 5);
    buf = pd_test_copy(line, 100);
    assert_int_equal(pd_http_parse_request(&r, buf, 100), PD_AGAIN);
    free(buf);
    buf = pd_test_copy(line, 101);
    assert_int_equal(pd_http_parse_request(&r, buf, 101), PD_ERROR);
    assert_int_equal(r.status, 414);
    free(buf);
}


/* 431 when the head passes max_header, terminator or not */
static void
pd_test_limit_header(void **state)
{
    char                req[300];
    size_t              n, head;
    u_char             *buf;
    pd_http_request_t   r;

    (void) state;

    n = 0;
    memcpy(req, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 28);
    n = 28;
    pd_test_fill(req + n, 200, 'v');
    n += 200;
    memcpy(req + n, "\r\n\r\nBODY", 8);
    head = n + 4;
    n += 8;

    pd_test_limits(&r);
    r.max_header = head;
    buf = pd_test_copy(req, n);
    assert_int_equal(pd_http_parse_request(&r, buf, n), PD_OK);
    assert_int_equal(r.header_len, head);
    free(buf);

    pd_test_limits(&r);
    r.max_header = head - 1;
    buf = pd_test_copy(req, n);
    assert_int_equal(pd_http_parse_request(&r, buf, n), PD_ERROR);
    assert_int_equal(r.status, 431);
    free(buf);

    /* no terminator: AGAIN up to the limit, 431 one byte past it */
    pd_test_limits(&r);
    r.max_header = 100;
    buf = pd_test_copy(req, 100);
    assert_int_equal(pd_http_parse_request(&r, buf, 100), PD_AGAIN);
    free(buf);
    buf = pd_test_copy(req, 101);
    assert_int_equal(pd_http_parse_request(&r, buf, 101), PD_ERROR);
    assert_int_equal(r.status, 431);
    free(buf);

    /* endless empty lines before the request line are bounded too */
    pd_test_limits(&r);
    r.max_header = 64;
    memset(req, '\n', sizeof(req));
    buf = pd_test_copy(req, sizeof(req));
    assert_int_equal(pd_http_parse_request(&r, buf, sizeof(req)), PD_ERROR);
    assert_int_equal(r.status, 431);
    free(buf);
}


static size_t
pd_test_headers_req(char *req, size_t nheaders)
{
    size_t  i, n;

    n = sprintf(req, "GET / HTTP/1.1\r\n");

    for (i = 0; i < nheaders; i++) {
        n += sprintf(req + n, "X-%zu: %zu\r\n", i, i);
    }

    n += sprintf(req + n, "Host: a\r\n\r\n");

    return n;
}


static void
pd_test_limit_headers(void **state)
{
    char                req[4096];
    size_t              n;
    u_char             *buf;
    pd_http_request_t   r;

    (void) state;

    /* 9 headers with Host */
    n = pd_test_headers_req(req, 8);

    pd_test_limits(&r);
    r.max_headers = 9;
    buf = pd_test_copy(req, n);
    assert_int_equal(pd_http_parse_request(&r, buf, n), PD_OK);
    assert_int_equal(r.nheaders, 9);
    free(buf);

    pd_test_limits(&r);
    r.max_headers = 8;
    buf = pd_test_copy(req, n);
    assert_int_equal(pd_http_parse_request(&r, buf, n), PD_ERROR);
    assert_int_equal(r.status, 431);
    free(buf);

    /* 0 and anything above the array mean the array's size */
    n = pd_test_headers_req(req, PD_HTTP_MAX_HEADERS - 1);

    pd_test_limits(&r);
    r.max_headers = 0;
    buf = pd_test_copy(req, n);
    assert_int_equal(pd_http_parse_request(&r, buf, n), PD_OK);
    assert_int_equal(r.nheaders, PD_HTTP_MAX_HEADERS);
    free(buf);

    n = pd_test_headers_req(req, PD_HTTP_MAX_HEADERS);

    pd_test_limits(&r);
    r.max_headers = 1000;
    buf = pd_test_copy(req, n);
    assert_int_equal(pd_http_parse_request(&r, buf, n), PD_ERROR);
    assert_int_equal(r.status, 431);
    free(buf);
}


/* a partial head moved to another buffer between calls */
static void
pd_test_moved_buffer(void **state)
{
    u_char             *a, *b;
    size_t              n;
    pd_http_request_t   r;
    static const char   req[] =
        "POST /v1/push?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
        "X-Long: 0123456789\r\n\r\nhi";

    (void) state;

    n = sizeof(req) - 1;

    pd_test_limits(&r);
    a = pd_test_copy(req, 45);
    assert_int_equal(pd_http_parse_request(&r, a, 45), PD_AGAIN);
    b = pd_test_copy(req, n);
    memset(a, 'Z', 45);
    free(a);

    assert_int_equal(pd_http_parse_request(&r, b, n), PD_OK);
    pd_test_assert_str(&r.uri, "/v1/push?x=1");
    pd_test_assert_str(&r.args, "x=1");
    pd_test_assert_str(&r.headers[0].value, "a");
    pd_test_assert_str(&r.headers[2].value, "0123456789");
    assert_ptr_equal(r.method_name.data, b);
    assert_int_equal(r.content_length, 2);
    assert_memory_equal(b + r.header_len, "hi", 2);

    free(b);
}


/* two requests in one read: the second parses from header_len + body */
static void
pd_test_pipelined(void **state)
{
    u_char             *buf;
    size_t              n, next;
    pd_http_request_t   r;
    static const char   req[] =
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        "GET /b HTTP/1.1\r\nHost: a\r\n\r\n";

    (void) state;

    n = sizeof(req) - 1;
    buf = pd_test_copy(req, n);

    pd_test_limits(&r);
    r.max_line = 20;
    assert_int_equal(pd_http_parse_request(&r, buf, n), PD_OK);
    pd_test_assert_str(&r.path, "/a");
    next = r.header_len + r.content_length;

    /* reset keeps the limits */
    pd_http_request_reset(&r);
    assert_int_equal(r.max_line, 20);
    assert_int_equal(r.max_body, 1048576);
    assert_int_equal(r.nheaders, 0);
    assert_int_equal(r.content_length, -1);

    assert_int_equal(pd_http_parse_request(&r, buf + next, n - next), PD_OK);
    pd_test_assert_str(&r.path, "/b");
    assert_int_equal(r.header_len, n - next);

    free(buf);
}


/* an error keeps what was parsed readable and is sticky */
static void
pd_test_error_state(void **state)
{
    u_char             *buf;
    pd_http_request_t   r;

    (void) state;

    buf = pd_test_parse(&r, PD_T("GET /x?y HTTP/1.1\r\nHost: a\r\n"
                                 "Bad Name: v\r\n\r\n"), PD_ERROR);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.error, "whitespace before header colon");
    assert_string_equal(pd_http_status_text(r.status), "Bad Request");
    pd_test_assert_str(&r.uri, "/x?y");
    assert_int_equal(r.nheaders, 1);
    pd_test_assert_str(&r.headers[0].value, "a");
    assert_int_equal(pd_http_parse_request(&r, buf, 5), PD_ERROR);
    assert_int_equal(r.status, 400);
    free(buf);

    buf = pd_test_parse(&r, PD_T("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), PD_OK);
    assert_int_equal(pd_http_parse_request(&r, buf, 3), PD_OK);
    free(buf);

    /* a zero-length call reads nothing */
    pd_test_limits(&r);
    assert_int_equal(pd_http_parse_request(&r, NULL, 0), PD_AGAIN);
}


/* a valid request mutated by flips, inserts, deletes and truncation */
static size_t
pd_test_mutate(u_char *out, size_t cap, const char *in, size_t len)
{
    size_t               n, k, i, at, dup;
    static const u_char  special[] = "\r\n \t:,/?%*=&\0\x7f\x80\xffH1.";

    n = pd_min(len, cap);
    memcpy(out, in, n);

    k = 1 + pd_test_rand_n(4);

    for (i = 0; i < k; i++) {
        at = (n == 0) ? 0 : pd_test_rand_n(n);

        switch (pd_test_rand_n(6)) {

        case 0:
            if (n > 0) {
                out[at] = (u_char) pd_test_rand();
            }
            break;

        case 1:
            if (n > 0) {
                out[at] = special[pd_test_rand_n(sizeof(special) - 1)];
            }
            break;

        case 2:
            if (n < cap) {
                memmove(out + at + 1, out + at, n - at);
                out[at] = special[pd_test_rand_n(sizeof(special) - 1)];
                n++;
            }
            break;

        case 3:
            if (n > 0) {
                memmove(out + at, out + at + 1, n - at - 1);
                n--;
            }
            break;

        case 4:
            n = at;
            break;

        default:
            /* repeat a slice: duplicate headers, long lines */
            dup = pd_min(pd_test_rand_n(32), n - at);
            if (n + dup <= cap) {
                memmove(out + at + dup, out + at, n - at);
                n += dup;
            }
            break;
        }
    }

    return n;
}


static void
pd_test_fuzz(void **state)
{
    size_t                 i, j, len, base, ncases;
    u_char                 mutated[1024];
    pd_uint_t              seen[6];
    pd_test_snap_t         whole, split;
    pd_http_request_t      r;
    const pd_test_case_t  *c;

    (void) state;

    pd_test_rand_state = 0x5eed0002;
    memset(seen, 0, sizeof(seen));
    ncases = pd_nelems(pd_test_cases);

    for (i = 0; i < PD_TEST_FUZZ_ROUNDS; i++) {
        /* mutate the good requests mostly; the rest is there too */
        do {
            base = pd_test_rand_n(ncases);
            c = &pd_test_cases[base];
        } while (c->rc != PD_OK && pd_test_rand_n(4) != 0);

        len = pd_test_mutate(mutated, sizeof(mutated), c->data, c->len);

        /* small limits now and then, so the limit paths are walked too */
        pd_test_limits(&r);
        if (pd_test_rand_n(4) == 0) {
            r.max_line = 8 + pd_test_rand_n(64);
            r.max_headers = pd_test_rand_n(6);
            r.max_header = 16 + pd_test_rand_n(200);
            r.max_body = pd_test_rand_n(16);
        }

        pd_test_whole(&r, (const char *) mutated, len, &whole);

        for (j = 0; j < 2; j++) {
            pd_test_random_split(&r, (const char *) mutated, len, &split);

            if (memcmp(&whole, &split, sizeof(pd_test_snap_t)) != 0) {
                fail_msg("fuzz round %zu: split changed rc %d/%d status "
                         "%d/%d", i, (int) whole.rc, (int) split.rc,
                         (int) whole.status, (int) split.status);
            }
        }

        switch (whole.rc) {
        case PD_OK:
            seen[0]++;
            break;
        case PD_AGAIN:
            seen[1]++;
            break;
        default:
            seen[whole.status == 400 ? 2
                 : (whole.status == 431 || whole.status == 414) ? 3
                 : whole.status == 505 ? 4 : 5]++;
            break;
        }
    }

    /* the mutations must reach every kind of outcome, or they prove little */
    for (i = 0; i < pd_nelems(seen); i++) {
        if (seen[i] == 0) {
            fail_msg("fuzz never reached outcome %zu", i);
        }
    }

    print_message("fuzz: %lu ok, %lu again, %lu 400, %lu 414/431, %lu 505, "
                  "%lu other\n", (unsigned long) seen[0],
                  (unsigned long) seen[1], (unsigned long) seen[2],
                  (unsigned long) seen[3], (unsigned long) seen[4],
                  (unsigned long) seen[5]);
}


static void
pd_test_arg_ok(const char *args, const char *name, const char *expect)
{
    u_char    *buf;
    pd_str_t   a, v;

    /* exact-size copy: a scan past the end is caught */
    buf = pd_test_copy(args, strlen(args));
    a.data = buf;
    a.len = strlen(args);

    if (pd_http_arg(&a, name, &v) != PD_OK) {
        fail_msg("\"%s\" not found in \"%s\"", name, args);
    }

    pd_test_assert_str(&v, expect);
    assert_true(v.data >= buf && v.data + v.len <= buf + a.len);
    free(buf);
}


static void
pd_test_arg_declined(const char *args, const char *name)
{
    u_char    *buf;
    pd_str_t   a, v;

    buf = pd_test_copy(args, strlen(args));
    a.data = buf;
    a.len = strlen(args);

    if (pd_http_arg(&a, name, &v) != PD_DECLINED) {
        fail_msg("\"%s\" found in \"%s\"", name, args);
    }

    free(buf);
}


static void
pd_test_arg(void **state)
{
    pd_str_t  a, v;

    (void) state;

    pd_test_arg_ok("a=1&b=2&name=v", "name", "v");
    pd_test_arg_ok("name=v&a=1", "name", "v");
    pd_test_arg_ok("a=1&name=v&b=2", "name", "v");
    pd_test_arg_ok("names=1&name=2", "name", "2");
    pd_test_arg_ok("xname=1&name=2", "name", "2");
    pd_test_arg_ok("name=", "name", "");
    pd_test_arg_ok("a=1&name", "name", "");
    pd_test_arg_ok("name&a=1", "name", "");
    pd_test_arg_ok("&&name=3&", "name", "3");
    pd_test_arg_ok("name=1&name=2", "name", "1");
    pd_test_arg_ok("name=a=b", "name", "a=b");
    pd_test_arg_ok("name=%41+b", "name", "%41+b");
    pd_test_arg_ok("uid=u1&device=d&apps=a,b&expires=9&token=ab", "apps",
                   "a,b");

    pd_test_arg_declined("", "name");
    pd_test_arg_declined("names=1", "name");
    pd_test_arg_declined("xname=1", "name");
    pd_test_arg_declined("nam=1", "name");
    pd_test_arg_declined("Name=1", "name");
    pd_test_arg_declined("a=name", "name");
    pd_test_arg_declined("a=1&&", "name");
    pd_test_arg_declined("=1", "");

    a.data = NULL;
    a.len = 0;
    assert_int_equal(pd_http_arg(&a, "name", &v), PD_DECLINED);
}


static void
pd_test_unescape_ok(const char *src, const char *expect, size_t elen)
{
    u_char    *buf, *dst;
    size_t     len;
    pd_str_t   s;

    buf = pd_test_copy(src, strlen(src));
    s.data = buf;
    s.len = strlen(src);

    dst = malloc(s.len + 1);
    assert_non_null(dst);
    len = 12345;
    assert_int_equal(pd_http_unescape(&s, dst, &len), PD_OK);
    assert_int_equal(len, elen);
    assert_memory_equal(dst, expect, elen);
    free(dst);

    /* in place */
    assert_int_equal(pd_http_unescape(&s, buf, &len), PD_OK);
    assert_int_equal(len, elen);
    assert_memory_equal(buf, expect, elen);
    free(buf);
}


static void
pd_test_unescape_bad(const char *src)
{
    u_char    *buf, *dst;
    size_t     len;
    pd_str_t   s;

    buf = pd_test_copy(src, strlen(src));
    s.data = buf;
    s.len = strlen(src);

    dst = malloc(s.len + 1);
    assert_non_null(dst);
    len = 12345;

    if (pd_http_unescape(&s, dst, &len) != PD_ERROR) {
        fail_msg("\"%s\" was unescaped", src);
    }

    assert_int_equal(len, 12345);
    free(dst);
    free(buf);
}


static void
pd_test_unescape(void **state)
{
    (void) state;

    pd_test_unescape_ok("", "", 0);
    pd_test_unescape_ok("abc", "abc", 3);
    pd_test_unescape_ok("a%20b", "a b", 3);
    pd_test_unescape_ok("%2f%2F", "//", 2);
    pd_test_unescape_ok("%aB%Ab", "\xab\xab", 2);
    pd_test_unescape_ok("a+b+", "a b ", 4);
    pd_test_unescape_ok("%2B", "+", 1);
    pd_test_unescape_ok("%25", "%", 1);
    pd_test_unescape_ok("%2525", "%25", 3);
    pd_test_unescape_ok("%00x", "\0x", 2);
    pd_test_unescape_ok("%e4%bd%a0", "\xe4\xbd\xa0", 3);

    pd_test_unescape_bad("%");
    pd_test_unescape_bad("a%");
    pd_test_unescape_bad("%2");
    pd_test_unescape_bad("abc%4");
    pd_test_unescape_bad("%zz");
    pd_test_unescape_bad("%g0");
    pd_test_unescape_bad("%0g");
    pd_test_unescape_bad("%-1");
    pd_test_unescape_bad("% 1");
    pd_test_unescape_bad("ok%20then%");
}


static void
pd_test_has_token(void **state)
{
    size_t    i;
    pd_str_t  v;

    static const struct {
        const char  *value;
        const char  *token;
        pd_int_t     expect;
    } cases[] = {
        { "Upgrade", "upgrade", 1 },
        { "keep-alive, Upgrade", "upgrade", 1 },
        { "keep-alive,upgrade", "UPGRADE", 1 },
        { " \tupgrade\t ,close", "upgrade", 1 },
        { ",,upgrade,,", "upgrade", 1 },
        { "close", "close", 1 },
        { "upgrades", "upgrade", 0 },
        { "xupgrade", "upgrade", 0 },
        { "up grade", "upgrade", 0 },
        { "upgrade2, close", "upgrade", 0 },
        { "upgrad", "upgrade", 0 },
        { "", "upgrade", 0 },
        { ",", "upgrade", 0 },
        { "keep-alive", "upgrade", 0 },
    };

    (void) state;

    for (i = 0; i < pd_nelems(cases); i++) {
        v.len = strlen(cases[i].value);
        v.data = pd_test_copy(cases[i].value, v.len);

        if (pd_http_header_has_token(&v, cases[i].token) != cases[i].expect) {
            fail_msg("has_token(\"%s\", \"%s\") != %d", cases[i].value,
                     cases[i].token, (int) cases[i].expect);
        }

        free(v.data);
    }

    assert_false(pd_http_header_has_token(NULL, "upgrade"));
    v.data = NULL;
    v.len = 0;
    assert_false(pd_http_header_has_token(&v, "upgrade"));
}


static void
pd_test_status_text(void **state)
{
    size_t  i;

    static const pd_uint_t  known[] = {
        100, 101, 200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404,
        405, 408, 409, 411, 413, 414, 415, 426, 429, 431, 500, 501, 502,
        503, 504, 505
    };

    (void) state;

    for (i = 0; i < pd_nelems(known); i++) {
        if (strcmp(pd_http_status_text(known[i]), "Unknown") == 0) {
            fail_msg("no text for %lu", (unsigned long) known[i]);
        }
    }

    assert_string_equal(pd_http_status_text(200), "OK");
    assert_string_equal(pd_http_status_text(101), "Switching Protocols");
    assert_string_equal(pd_http_status_text(411), "Length Required");
    assert_string_equal(pd_http_status_text(431),
                        "Request Header Fields Too Large");
    assert_string_equal(pd_http_status_text(505),
                        "HTTP Version Not Supported");
    assert_string_equal(pd_http_status_text(418), "Unknown");
    assert_string_equal(pd_http_status_text(0), "Unknown");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_table),
        cmocka_unit_test(pd_test_split_equivalence),
        cmocka_unit_test(pd_test_fields),
        cmocka_unit_test(pd_test_targets),
        cmocka_unit_test(pd_test_connection),
        cmocka_unit_test(pd_test_content_length),
        cmocka_unit_test(pd_test_limit_line),
        cmocka_unit_test(pd_test_limit_header),
        cmocka_unit_test(pd_test_limit_headers),
        cmocka_unit_test(pd_test_moved_buffer),
        cmocka_unit_test(pd_test_pipelined),
        cmocka_unit_test(pd_test_error_state),
        cmocka_unit_test(pd_test_fuzz),
        cmocka_unit_test(pd_test_arg),
        cmocka_unit_test(pd_test_unescape),
        cmocka_unit_test(pd_test_has_token),
        cmocka_unit_test(pd_test_status_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
