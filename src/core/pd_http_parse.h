/*
 * pd_http_parse.h: an incremental HTTP/1.1 request parser, shared by the
 * room (WebSocket upgrade) and the center (API).  Pure code: no logging,
 * no allocation.  The strings below point into the buffer passed to the
 * call that returned PD_OK (or PD_ERROR); between calls the parser keeps
 * offsets only, so a partial head may be moved to another buffer.
 */

#ifndef PD_HTTP_PARSE_H
#define PD_HTTP_PARSE_H

#define PD_HTTP_UNKNOWN   0
#define PD_HTTP_GET       1
#define PD_HTTP_HEAD      2
#define PD_HTTP_POST      3
#define PD_HTTP_PUT       4
#define PD_HTTP_DELETE    5
#define PD_HTTP_OPTIONS   6

#define PD_HTTP_MAX_HEADERS  64   /* the array's size; the limit may be lower */

typedef struct {
    pd_str_t     name;
    pd_str_t     value;
} pd_http_header_t;

typedef struct {
    /* limits, set by the caller before the first call */
    size_t             max_line;      /* request line; 414 beyond; 0: none */
    pd_uint_t          max_headers;   /* 431 beyond; 0: the array's size */
    size_t             max_header;    /* whole head in bytes; 431 beyond;
                                         0: none */
    size_t             max_body;      /* 413 beyond; 0: no body at all */

    /* results, valid once pd_http_parse_request() returned PD_OK */
    pd_uint_t          method;
    pd_str_t           method_name;
    pd_str_t           uri;           /* as sent: path?args */
    pd_str_t           path;          /* before '?', not decoded */
    pd_str_t           args;          /* after '?', may be empty */
    pd_uint_t          version;       /* 1000 * major + minor: 1000, 1001 */
    pd_http_header_t   headers[PD_HTTP_MAX_HEADERS];
    pd_uint_t          nheaders;
    int64_t            content_length;  /* -1: none */
    size_t             header_len;    /* bytes of the head, CRLFCRLF included */
    unsigned           keepalive:1;   /* by version and Connection */
    unsigned           upgrade:1;     /* Connection: upgrade present */
    unsigned           expect_continue:1;

    /* on error: the status to answer (400 411 413 414 431 501 505) */
    pd_uint_t          status;
    const char        *error;         /* a short static phrase */

    /* parser state, private */
    pd_uint_t          state;
    size_t             offset;        /* bytes of the buffer consumed */
    size_t             mark;          /* start of the token being parsed */
    size_t             mark2;
} pd_http_request_t;

/* zeroes the results and state; keeps the limits */
void pd_http_request_reset(pd_http_request_t *r);

/*
 * Parses the request head held in buf[0 .. len).  Call again with the
 * same bytes (in the same or another buffer) and a larger len as bytes
 * arrive; parsing resumes where it stopped, and the result does not
 * depend on how the bytes were split.  Never reads buf[len] or beyond.
 * Returns PD_OK when the head is complete (header_len set; bytes after
 * it are not looked at), PD_AGAIN when more bytes are needed, PD_ERROR
 * with status and error set (the strings parsed so far stay valid).
 * Once PD_OK or PD_ERROR, further calls return the same until reset.
 * Body framing (Content-Length vs max_body, Transfer-Encoding) is checked
 * here: a chunked body is refused with 411, other codings with 501.
 * An unknown method is not an error: method is PD_HTTP_UNKNOWN.
 */
pd_int_t pd_http_parse_request(pd_http_request_t *r, u_char *buf,
    size_t len);

/* the first header with this name (case-insensitive) or NULL */
pd_str_t *pd_http_header_find(pd_http_request_t *r, const char *name);
/* true when a comma-separated header value holds the token (case-insens.) */
pd_int_t pd_http_header_has_token(pd_str_t *value, const char *token);
/*
 * Finds query argument `name` in args ("a=1&b=2"); stores the raw
 * (undecoded) value and returns PD_OK, or PD_DECLINED when absent.
 */
pd_int_t pd_http_arg(pd_str_t *args, const char *name, pd_str_t *value);
/*
 * Percent-decodes src into dst (may be the same buffer; dst must hold
 * src->len bytes); '+' becomes ' '.  PD_ERROR on a bad escape.
 */
pd_int_t pd_http_unescape(pd_str_t *src, u_char *dst, size_t *len);
/* "OK", "Bad Request"...; "Unknown" for others */
const char *pd_http_status_text(pd_uint_t status);

#endif /* PD_HTTP_PARSE_H */
