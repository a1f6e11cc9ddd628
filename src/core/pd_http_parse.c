/* pd_http_parse.c: the incremental HTTP/1.x request-head parser. */

#include "pd_core.h"

/*
 * The parser is a byte-at-a-time state machine: each byte is judged only
 * from the state and the bytes before it, never from how many bytes
 * follow, so the result cannot depend on how the input was split.  Limits
 * are checked per byte as well, so an over-long head is refused as soon as
 * the byte past the limit arrives, terminator or not.
 *
 * Line ends: CRLF, and a bare LF is tolerated everywhere a CRLF may stand
 * (RFC 9112 2.2 allows it); a bare CR is refused, as it is what request
 * smuggling through lenient proxies relies on.
 *
 * Between calls the result strings hold offsets into the buffer, not
 * pointers (see pd_http_set_off); they become pointers into the buffer of
 * the final call.  So a caller may move a partial head to another buffer
 * between calls, e.g. from a per-worker read buffer to a per-connection
 * one.
 */

enum {
    pd_http_sw_start = 0,       /* empty lines before the request line */
    pd_http_sw_start_lf,
    pd_http_sw_method,
    pd_http_sw_target,
    pd_http_sw_scheme,
    pd_http_sw_scheme_slash,
    pd_http_sw_scheme_slash2,
    pd_http_sw_authority_start,
    pd_http_sw_authority,
    pd_http_sw_path,
    pd_http_sw_args,
    pd_http_sw_asterisk,
    pd_http_sw_version_h,
    pd_http_sw_version_ht,
    pd_http_sw_version_htt,
    pd_http_sw_version_http,
    pd_http_sw_version_slash,
    pd_http_sw_major,
    pd_http_sw_dot,
    pd_http_sw_minor,
    pd_http_sw_line_end,
    pd_http_sw_line_lf,
    pd_http_sw_header_start,    /* first state of the header section */
    pd_http_sw_name,
    pd_http_sw_value_ows,
    pd_http_sw_value,
    pd_http_sw_header_lf,
    pd_http_sw_head_lf,
    pd_http_sw_done,
    pd_http_sw_error
};

/* Content-Length beyond this is refused as malformed, before max_body */
#define PD_HTTP_MAX_CONTENT_LENGTH  INT64_MAX

typedef struct {
    const char   *name;
    size_t        len;
    pd_uint_t     method;
} pd_http_method_t;

static pd_int_t pd_http_step_line(pd_http_request_t *r, u_char *buf,
    size_t p);
static pd_int_t pd_http_step_target(pd_http_request_t *r, u_char *buf,
    size_t p);
static pd_int_t pd_http_step_version(pd_http_request_t *r, u_char c);
static pd_int_t pd_http_step_header(pd_http_request_t *r, size_t p,
    u_char c);
static void pd_http_end_header(pd_http_request_t *r, size_t end);
static pd_int_t pd_http_finish(pd_http_request_t *r, size_t p);
static pd_int_t pd_http_check_host(pd_http_request_t *r);
static pd_int_t pd_http_check_body(pd_http_request_t *r);
static void pd_http_check_connection(pd_http_request_t *r);
static pd_int_t pd_http_parse_length(pd_str_t *value, int64_t *n);
static pd_int_t pd_http_list_is(pd_str_t *value, const char *token);
static void pd_http_resolve(pd_http_request_t *r, u_char *buf);
static pd_int_t pd_http_fail(pd_http_request_t *r, pd_uint_t status,
    const char *error);
static pd_uint_t pd_http_method(u_char *name, size_t len);
static pd_int_t pd_http_eq_ci(const u_char *s, size_t len, const char *lit);
static int pd_http_is_tchar(u_char c);


static const pd_http_method_t  pd_http_methods[] = {
    { "GET", 3, PD_HTTP_GET },
    { "HEAD", 4, PD_HTTP_HEAD },
    { "POST", 4, PD_HTTP_POST },
    { "PUT", 3, PD_HTTP_PUT },
    { "DELETE", 6, PD_HTTP_DELETE },
    { "OPTIONS", 7, PD_HTTP_OPTIONS }
};


/* stores an offset where a pointer will be: see the comment on top */
static void
pd_http_set_off(pd_str_t *s, size_t off, size_t len)
{
    s->data = (u_char *) (uintptr_t) off;
    s->len = len;
}


static size_t
pd_http_get_off(pd_str_t *s)
{
    return (size_t) (uintptr_t) s->data;
}


void
pd_http_request_reset(pd_http_request_t *r)
{
    size_t     max_line, max_header, max_body;
    pd_uint_t  max_headers;

    max_line = r->max_line;
    max_headers = r->max_headers;
    max_header = r->max_header;
    max_body = r->max_body;

    pd_memzero(r, sizeof(pd_http_request_t));

    r->max_line = max_line;
    r->max_headers = max_headers;
    r->max_header = max_header;
    r->max_body = max_body;

    r->content_length = -1;
    r->state = pd_http_sw_start;
}


/*
 * A limit of 0 for max_line or max_header means "none of its own" (the
 * buffer still bounds the head); max_headers is capped by the array.
 * max_body is taken as it is: 0 refuses any body.
 */
pd_int_t
pd_http_parse_request(pd_http_request_t *r, u_char *buf, size_t len)
{
    size_t    p;
    pd_int_t  rc;

    if (r->state == pd_http_sw_done) {
        return PD_OK;
    }

    if (r->state == pd_http_sw_error) {
        return PD_ERROR;
    }

    for (p = r->offset; p < len; p++) {

        if (r->max_header != 0 && p >= r->max_header) {
            rc = pd_http_fail(r, 431, "request header too large");

        } else if (r->state < pd_http_sw_header_start) {
            rc = pd_http_step_line(r, buf, p);

        } else {
            rc = pd_http_step_header(r, p, buf[p]);
        }

        if (rc == PD_AGAIN) {
            continue;
        }

        r->offset = p;

        /* on an error too: what was parsed stays readable for a log line */
        pd_http_resolve(r, buf);

        if (rc == PD_OK) {
            rc = pd_http_finish(r, p);
        }

        return rc;
    }

    r->offset = p;

    return PD_AGAIN;
}


/* the request line up to the target, then the target and the version */
static pd_int_t
pd_http_step_line(pd_http_request_t *r, u_char *buf, size_t p)
{
    u_char  c;

    c = buf[p];

    if (r->state >= pd_http_sw_method
        && c != PD_CR && c != PD_LF
        && r->max_line != 0 && p - r->mark2 >= r->max_line)
    {
        return pd_http_fail(r, 414, "request line too long");
    }

    switch (r->state) {

    case pd_http_sw_start:
        if (c == PD_CR) {
            r->state = pd_http_sw_start_lf;
            return PD_AGAIN;
        }

        if (c == PD_LF) {
            return PD_AGAIN;
        }

        /* the line start anchors max_line and the method */
        r->mark2 = p;
        r->state = pd_http_sw_method;

        return pd_http_step_line(r, buf, p);

    case pd_http_sw_start_lf:
        if (c != PD_LF) {
            return pd_http_fail(r, 400, "invalid line ending");
        }

        r->state = pd_http_sw_start;
        return PD_AGAIN;

    case pd_http_sw_method:
        if (pd_http_is_tchar(c)) {
            return PD_AGAIN;
        }

        if (c != ' ' || p == r->mark2) {
            return pd_http_fail(r, 400, "invalid method");
        }

        pd_http_set_off(&r->method_name, r->mark2, p - r->mark2);
        r->method = pd_http_method(buf + r->mark2, p - r->mark2);
        r->mark = p + 1;
        r->state = pd_http_sw_target;
        return PD_AGAIN;

    default:
        if (r->state < pd_http_sw_version_h) {
            return pd_http_step_target(r, buf, p);
        }

        return pd_http_step_version(r, c);
    }
}


/*
 * The request-target: origin-form "/path?args", absolute-form
 * "http://authority/path?args" (the authority is skipped: uri and path
 * start at its '/'), or "*" for OPTIONS.  Bytes above 0x7f are let
 * through as nginx does; controls, DEL and spaces inside are not.
 */
static pd_int_t
pd_http_step_target(pd_http_request_t *r, u_char *buf, size_t p)
{
    u_char  c;
    size_t  args;

    c = buf[p];

    switch (r->state) {

    case pd_http_sw_target:
        if (c == '/') {
            r->state = pd_http_sw_path;

        } else if (c == '*') {
            r->state = pd_http_sw_asterisk;

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
            r->state = pd_http_sw_scheme;

        } else {
            return pd_http_fail(r, 400, "invalid request target");
        }

        return PD_AGAIN;

    case pd_http_sw_scheme:
        if (c == ':') {
            if (!pd_http_eq_ci(buf + r->mark, p - r->mark, "http")
                && !pd_http_eq_ci(buf + r->mark, p - r->mark, "https"))
            {
                return pd_http_fail(r, 400, "invalid request target");
            }

            r->state = pd_http_sw_scheme_slash;
            return PD_AGAIN;
        }

        if (((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
            || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')
        {
            return PD_AGAIN;
        }

        return pd_http_fail(r, 400, "invalid request target");

    case pd_http_sw_scheme_slash:
    case pd_http_sw_scheme_slash2:
        if (c != '/') {
            return pd_http_fail(r, 400, "invalid request target");
        }

        r->state++;
        return PD_AGAIN;

    case pd_http_sw_authority_start:
    case pd_http_sw_authority:
        if (c == '/' && r->state == pd_http_sw_authority) {
            r->mark = p;
            r->state = pd_http_sw_path;
            return PD_AGAIN;
        }

        if (c <= ' ' || c == 0x7f || c == '/' || c == '?' || c == '#') {
            return pd_http_fail(r, 400, "invalid request target");
        }

        r->state = pd_http_sw_authority;
        return PD_AGAIN;

    case pd_http_sw_asterisk:
        if (c != ' ' || r->method != PD_HTTP_OPTIONS) {
            return pd_http_fail(r, 400, "invalid request target");
        }

        pd_http_set_off(&r->uri, r->mark, 1);
        r->path = r->uri;
        pd_http_set_off(&r->args, p, 0);
        r->state = pd_http_sw_version_h;
        return PD_AGAIN;

    default:
        break;
    }

    /* sw_path and sw_args */

    if (c == '?' && r->state == pd_http_sw_path) {
        pd_http_set_off(&r->path, r->mark, p - r->mark);
        r->state = pd_http_sw_args;
        return PD_AGAIN;
    }

    if (c != ' ') {
        if (c < ' ' || c == 0x7f) {
            return pd_http_fail(r, 400, "invalid request target");
        }

        return PD_AGAIN;
    }

    pd_http_set_off(&r->uri, r->mark, p - r->mark);

    if (r->state == pd_http_sw_path) {
        r->path = r->uri;
        pd_http_set_off(&r->args, p, 0);

    } else {
        args = r->mark + r->path.len + 1;
        pd_http_set_off(&r->args, args, p - args);
    }

    r->state = pd_http_sw_version_h;
    return PD_AGAIN;
}


/* "HTTP/" DIGIT "." DIGIT, then the line end */
static pd_int_t
pd_http_step_version(pd_http_request_t *r, u_char c)
{
    static const u_char  name[] = "HTTP/";

    switch (r->state) {

    case pd_http_sw_version_h:
    case pd_http_sw_version_ht:
    case pd_http_sw_version_htt:
    case pd_http_sw_version_http:
    case pd_http_sw_version_slash:
        if (c != name[r->state - pd_http_sw_version_h]) {
            return pd_http_fail(r, 400, "invalid request line");
        }

        r->state++;
        return PD_AGAIN;

    case pd_http_sw_major:
    case pd_http_sw_minor:
        if (c < '0' || c > '9') {
            return pd_http_fail(r, 400, "invalid request line");
        }

        if (r->state == pd_http_sw_major) {
            r->version = (c - '0') * 1000;

        } else {
            r->version += c - '0';
        }

        r->state++;
        return PD_AGAIN;

    case pd_http_sw_dot:
        if (c != '.') {
            return pd_http_fail(r, 400, "invalid request line");
        }

        r->state = pd_http_sw_minor;
        return PD_AGAIN;

    case pd_http_sw_line_end:
        if (c != PD_CR && c != PD_LF) {
            return pd_http_fail(r, 400, "invalid request line");
        }

        if (r->version != 1000 && r->version != 1001) {
            return pd_http_fail(r, 505, "HTTP version not supported");
        }

        r->state = (c == PD_CR) ? pd_http_sw_line_lf
                                : pd_http_sw_header_start;
        return PD_AGAIN;

    default: /* pd_http_sw_line_lf */
        if (c != PD_LF) {
            return pd_http_fail(r, 400, "invalid line ending");
        }

        r->state = pd_http_sw_header_start;
        return PD_AGAIN;
    }
}


/*
 * One byte of the header section.  mark is the start of the name, then
 * of the value; mark2 is one past the last non-blank byte of the value,
 * which trims the trailing OWS without looking back.  Returns PD_OK on
 * the empty line that ends the head.
 */
static pd_int_t
pd_http_step_header(pd_http_request_t *r, size_t p, u_char c)
{
    pd_uint_t  max;

    switch (r->state) {

    case pd_http_sw_header_start:
        if (c == PD_CR) {
            r->state = pd_http_sw_head_lf;
            return PD_AGAIN;
        }

        if (c == PD_LF) {
            return PD_OK;
        }

        if (c == ' ' || c == '\t') {
            return pd_http_fail(r, 400, "obsolete header line folding");
        }

        if (!pd_http_is_tchar(c)) {
            return pd_http_fail(r, 400, "invalid header name");
        }

        max = r->max_headers;
        if (max == 0 || max > PD_HTTP_MAX_HEADERS) {
            max = PD_HTTP_MAX_HEADERS;
        }

        if (r->nheaders >= max) {
            return pd_http_fail(r, 431, "too many header fields");
        }

        r->mark = p;
        r->state = pd_http_sw_name;
        return PD_AGAIN;

    case pd_http_sw_name:
        if (pd_http_is_tchar(c)) {
            return PD_AGAIN;
        }

        if (c == ' ' || c == '\t') {
            return pd_http_fail(r, 400, "whitespace before header colon");
        }

        if (c != ':') {
            return pd_http_fail(r, 400, "invalid header name");
        }

        pd_http_set_off(&r->headers[r->nheaders].name, r->mark, p - r->mark);
        r->mark = p + 1;
        r->mark2 = p + 1;
        r->state = pd_http_sw_value_ows;
        return PD_AGAIN;

    case pd_http_sw_value_ows:
    case pd_http_sw_value:
        if (c == ' ' || c == '\t') {
            return PD_AGAIN;
        }

        if (c == PD_CR || c == PD_LF) {
            if (r->state == pd_http_sw_value_ows) {
                r->mark = p;
                r->mark2 = p;
            }

            pd_http_end_header(r, r->mark2);
            r->state = (c == PD_CR) ? pd_http_sw_header_lf
                                    : pd_http_sw_header_start;
            return PD_AGAIN;
        }

        if (c < ' ' || c == 0x7f) {
            return pd_http_fail(r, 400, "invalid character in header value");
        }

        if (r->state == pd_http_sw_value_ows) {
            r->mark = p;
            r->state = pd_http_sw_value;
        }

        r->mark2 = p + 1;
        return PD_AGAIN;

    case pd_http_sw_header_lf:
        if (c != PD_LF) {
            return pd_http_fail(r, 400, "invalid line ending");
        }

        r->state = pd_http_sw_header_start;
        return PD_AGAIN;

    default: /* pd_http_sw_head_lf */
        if (c != PD_LF) {
            return pd_http_fail(r, 400, "invalid line ending");
        }

        return PD_OK;
    }
}


static void
pd_http_end_header(pd_http_request_t *r, size_t end)
{
    pd_http_set_off(&r->headers[r->nheaders].value, r->mark, end - r->mark);
    r->nheaders++;
}


/* the head ends at byte p and its strings are pointers: judge it */
static pd_int_t
pd_http_finish(pd_http_request_t *r, size_t p)
{
    r->header_len = p + 1;

    if (pd_http_check_host(r) != PD_OK || pd_http_check_body(r) != PD_OK) {
        return PD_ERROR;
    }

    pd_http_check_connection(r);

    r->state = pd_http_sw_done;

    return PD_OK;
}


/* RFC 9112 3.2: an HTTP/1.1 request has exactly one Host */
static pd_int_t
pd_http_check_host(pd_http_request_t *r)
{
    pd_uint_t  i, n;

    if (r->version < 1001) {
        return PD_OK;
    }

    n = 0;

    for (i = 0; i < r->nheaders; i++) {
        if (pd_http_eq_ci(r->headers[i].name.data, r->headers[i].name.len,
                          "host"))
        {
            n++;
        }
    }

    if (n == 0) {
        return pd_http_fail(r, 400, "missing Host header");
    }

    if (n > 1) {
        return pd_http_fail(r, 400, "duplicate Host header");
    }

    return PD_OK;
}


/*
 * Body framing, strictly: a request whose length two parsers could read
 * differently is refused (RFC 9112 6.3), which closes the door on request
 * smuggling behind a proxy.
 */
static pd_int_t
pd_http_check_body(pd_http_request_t *r)
{
    int64_t            n;
    pd_uint_t          i, nte;
    pd_http_header_t  *h, *te;

    r->content_length = -1;
    te = NULL;
    nte = 0;

    for (i = 0; i < r->nheaders; i++) {
        h = &r->headers[i];

        if (pd_http_eq_ci(h->name.data, h->name.len, "transfer-encoding")) {
            te = h;
            nte++;
            continue;
        }

        if (!pd_http_eq_ci(h->name.data, h->name.len, "content-length")) {
            continue;
        }

        if (pd_http_parse_length(&h->value, &n) != PD_OK) {
            return pd_http_fail(r, 400, "invalid Content-Length");
        }

        if (r->content_length != -1 && r->content_length != n) {
            return pd_http_fail(r, 400, "conflicting Content-Length");
        }

        r->content_length = n;
    }

    if (te != NULL) {
        if (r->content_length != -1) {
            return pd_http_fail(r, 400,
                                "both Transfer-Encoding and Content-Length");
        }

        /* RFC 9112 6.1: in HTTP/1.0 the framing is faulty */
        if (r->version < 1001) {
            return pd_http_fail(r, 400, "Transfer-Encoding in HTTP/1.0");
        }

        if (nte == 1 && pd_http_list_is(&te->value, "chunked")) {
            return pd_http_fail(r, 411, "chunked request bodies are not "
                                "supported, send Content-Length");
        }

        return pd_http_fail(r, 501, "unsupported Transfer-Encoding");
    }

    if (r->content_length > 0 && (uint64_t) r->content_length > r->max_body) {
        return pd_http_fail(r, 413, "request body too large");
    }

    return PD_OK;
}


static void
pd_http_check_connection(pd_http_request_t *r)
{
    pd_uint_t          i;
    pd_http_header_t  *h;

    r->keepalive = (r->version >= 1001);

    for (i = 0; i < r->nheaders; i++) {
        h = &r->headers[i];

        if (pd_http_eq_ci(h->name.data, h->name.len, "connection")) {
            if (pd_http_header_has_token(&h->value, "upgrade")) {
                r->upgrade = 1;
            }

            if (pd_http_header_has_token(&h->value, "keep-alive")) {
                r->keepalive = 1;
            }

        } else if (r->version >= 1001
                   && pd_http_eq_ci(h->name.data, h->name.len, "expect")
                   && pd_http_eq_ci(h->value.data, h->value.len,
                                    "100-continue"))
        {
            /* RFC 9110 10.1.1: ignored in an HTTP/1.0 request */
            r->expect_continue = 1;
        }
    }

    /* "close" wins over "keep-alive", whatever their order */
    for (i = 0; i < r->nheaders; i++) {
        h = &r->headers[i];

        if (pd_http_eq_ci(h->name.data, h->name.len, "connection")
            && pd_http_header_has_token(&h->value, "close"))
        {
            r->keepalive = 0;
        }
    }
}


/* 1*DIGIT, no sign, no blanks, no list; PD_ERROR on overflow */
static pd_int_t
pd_http_parse_length(pd_str_t *value, int64_t *n)
{
    size_t   i;
    int64_t  v, d;

    if (value->len == 0) {
        return PD_ERROR;
    }

    v = 0;

    for (i = 0; i < value->len; i++) {
        if (value->data[i] < '0' || value->data[i] > '9') {
            return PD_ERROR;
        }

        d = value->data[i] - '0';

        if (v > (PD_HTTP_MAX_CONTENT_LENGTH - d) / 10) {
            return PD_ERROR;
        }

        v = v * 10 + d;
    }

    *n = v;

    return PD_OK;
}


/* true when the comma-separated list holds exactly this one token */
static pd_int_t
pd_http_list_is(pd_str_t *value, const char *token)
{
    size_t     i, start, end;
    pd_uint_t  n;
    pd_int_t   match;

    n = 0;
    match = 0;
    start = 0;

    for (i = 0; i <= value->len; i++) {
        if (i < value->len && value->data[i] != ',') {
            continue;
        }

        end = i;

        while (start < end
               && (value->data[start] == ' ' || value->data[start] == '\t'))
        {
            start++;
        }

        while (end > start
               && (value->data[end - 1] == ' '
                   || value->data[end - 1] == '\t'))
        {
            end--;
        }

        /* RFC 9110 5.6.1: empty list elements do not count */
        if (end > start) {
            n++;
            match = pd_http_eq_ci(value->data + start, end - start, token);
        }

        start = i + 1;
    }

    return n == 1 && match;
}


static void
pd_http_resolve(pd_http_request_t *r, u_char *buf)
{
    pd_uint_t  i;

    r->method_name.data = buf + pd_http_get_off(&r->method_name);
    r->uri.data = buf + pd_http_get_off(&r->uri);
    r->path.data = buf + pd_http_get_off(&r->path);
    r->args.data = buf + pd_http_get_off(&r->args);

    for (i = 0; i < r->nheaders; i++) {
        r->headers[i].name.data = buf + pd_http_get_off(&r->headers[i].name);
        r->headers[i].value.data =
            buf + pd_http_get_off(&r->headers[i].value);
    }
}


static pd_int_t
pd_http_fail(pd_http_request_t *r, pd_uint_t status, const char *error)
{
    r->status = status;
    r->error = error;
    r->state = pd_http_sw_error;

    return PD_ERROR;
}


/* method names are case-sensitive (RFC 9110 9.1) */
static pd_uint_t
pd_http_method(u_char *name, size_t len)
{
    pd_uint_t  i;

    for (i = 0; i < pd_nelems(pd_http_methods); i++) {
        if (pd_http_methods[i].len == len
            && memcmp(pd_http_methods[i].name, name, len) == 0)
        {
            return pd_http_methods[i].method;
        }
    }

    return PD_HTTP_UNKNOWN;
}


pd_str_t *
pd_http_header_find(pd_http_request_t *r, const char *name)
{
    pd_uint_t  i;

    for (i = 0; i < r->nheaders; i++) {
        if (pd_http_eq_ci(r->headers[i].name.data, r->headers[i].name.len,
                          name))
        {
            return &r->headers[i].value;
        }
    }

    return NULL;
}


pd_int_t
pd_http_header_has_token(pd_str_t *value, const char *token)
{
    size_t  i, start, end;

    if (value == NULL || value->data == NULL) {
        return 0;
    }

    start = 0;

    for (i = 0; i <= value->len; i++) {
        if (i < value->len && value->data[i] != ',') {
            continue;
        }

        end = i;

        while (start < end
               && (value->data[start] == ' ' || value->data[start] == '\t'))
        {
            start++;
        }

        while (end > start
               && (value->data[end - 1] == ' '
                   || value->data[end - 1] == '\t'))
        {
            end--;
        }

        if (pd_http_eq_ci(value->data + start, end - start, token)) {
            return 1;
        }

        start = i + 1;
    }

    return 0;
}


/*
 * The key is matched exactly and as sent (not decoded); the first match
 * wins.  "name" with no '=' and "name=" both give an empty value.
 */
pd_int_t
pd_http_arg(pd_str_t *args, const char *name, pd_str_t *value)
{
    u_char  *p, *last, *amp, *eq;
    size_t   len;

    len = strlen(name);

    if (len == 0 || args == NULL || args->data == NULL) {
        return PD_DECLINED;
    }

    p = args->data;
    last = args->data + args->len;

    while (p < last) {
        amp = memchr(p, '&', last - p);
        if (amp == NULL) {
            amp = last;
        }

        eq = memchr(p, '=', amp - p);
        if (eq == NULL) {
            eq = amp;
        }

        if ((size_t) (eq - p) == len && memcmp(p, name, len) == 0) {
            value->data = (eq < amp) ? eq + 1 : eq;
            value->len = amp - value->data;
            return PD_OK;
        }

        if (amp == last) {
            break;
        }

        p = amp + 1;
    }

    return PD_DECLINED;
}


static int
pd_http_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/*
 * Writing never overtakes reading, so dst may be src->data.  The result
 * may hold any byte, NUL included ("%00"): callers use the length.  On
 * PD_ERROR dst holds a partial result and *len is not set.
 */
pd_int_t
pd_http_unescape(pd_str_t *src, u_char *dst, size_t *len)
{
    int      hi, lo;
    size_t   i, n;
    u_char   c;

    n = 0;

    for (i = 0; i < src->len; i++) {
        c = src->data[i];

        if (c == '+') {
            c = ' ';

        } else if (c == '%') {
            if (src->len - i < 3) {
                return PD_ERROR;
            }

            hi = pd_http_hex(src->data[i + 1]);
            lo = pd_http_hex(src->data[i + 2]);

            if (hi < 0 || lo < 0) {
                return PD_ERROR;
            }

            c = (u_char) (hi * 16 + lo);
            i += 2;
        }

        dst[n++] = c;
    }

    *len = n;

    return PD_OK;
}


const char *
pd_http_status_text(pd_uint_t status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}


/* case-insensitive equality of a counted string and a C literal */
static pd_int_t
pd_http_eq_ci(const u_char *s, size_t len, const char *lit)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (lit[i] == '\0' || pd_tolower(s[i]) != pd_tolower((u_char) lit[i]))
        {
            return 0;
        }
    }

    return lit[len] == '\0';
}


/* RFC 9110 5.6.2 tchar */
static int
pd_http_is_tchar(u_char c)
{
    if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) {
        return 1;
    }

    return c != '\0' && memchr("!#$%&'*+-.^_`|~", c, 15) != NULL;
}
