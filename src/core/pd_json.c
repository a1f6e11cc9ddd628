/*
 * pd_json.c: the strict, allocation-free JSON reader (see pd_json.h).
 *
 * One recursive descent over the bytes, bounded by PD_JSON_MAX_DEPTH, so
 * a hostile body costs its length in time and a fixed amount of stack.
 * It replaced jansson on the push and ack paths, where building a tree of
 * heap objects per request cost more than the rest of a push together.
 */

#include "pd_core.h"

typedef struct {
    const u_char   *p;
    const u_char   *last;
    const u_char   *start;
    const char     *what;
    pd_uint_t       depth;
} pd_json_ctx_t;

static pd_int_t pd_json_value(pd_json_ctx_t *cx, pd_json_val_t *v);

/*
 * Every failure whose position is the end of the input is a truncation,
 * whatever was expected there: a body cut by a client or a proxy should
 * say so, not blame a comma or a string.
 */
static pd_int_t
pd_json_fail(pd_json_ctx_t *cx, const char *what)
{
    if (cx->what == NULL) {
        cx->what = (cx->p >= cx->last) ? "unexpected end of input" : what;
    }

    return PD_ERROR;
}

static void
pd_json_ws(pd_json_ctx_t *cx)
{
    while (cx->p < cx->last
           && (*cx->p == ' ' || *cx->p == '\t' || *cx->p == '\n'
               || *cx->p == '\r'))
    {
        cx->p++;
    }
}

static pd_int_t
pd_json_hex4(const u_char *p, uint32_t *cp)
{
    pd_uint_t  i;
    uint32_t   v = 0;
    u_char     c;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';
        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (u_char) ((c | 0x20) - 'a' + 10);
        } else {
            return PD_ERROR;
        }

        v = (v << 4) | c;
    }

    *cp = v;
    return PD_OK;
}

/* one UTF-8 sequence of 2 to 4 bytes at p (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF); its length, or 0 */
static size_t
pd_json_utf8(const u_char *p, const u_char *last)
{
    u_char  c = p[0], lo = 0x80, hi = 0xbf;
    size_t  n, i;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = (c == 0xe0) ? 0xa0 : 0x80;
        hi = (c == 0xed) ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = (c == 0xf0) ? 0x90 : 0x80;
        hi = (c == 0xf4) ? 0x8f : 0xbf;
    } else {
        return 0;
    }

    if ((size_t) (last - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}

/*
 * Is p..last, shorter than the sequence its first byte announces, the
 * start of a valid one?  Completed with the lowest continuation bytes
 * allowed after each lead (0x80, or 0xa0 after e0 and f0), it must pass.
 */
static pd_uint_t
pd_json_utf8_cut(const u_char *p, const u_char *last)
{
    u_char  buf[4];
    size_t  have, i;

    have = (size_t) (last - p);

    if (have == 0 || have >= 4) {
        return 0;
    }

    pd_memcpy(buf, p, have);

    for (i = have; i < 4; i++) {
        buf[i] = 0x80;
    }

    if (pd_json_utf8(buf, buf + 4) > have) {
        return 1;
    }

    if (have == 1) {
        buf[1] = 0xa0;
        return pd_json_utf8(buf, buf + 4) > have;
    }

    return 0;
}

/* are the n bytes at p (maybe none) a prefix of "\\u" and hex digits? */
static pd_uint_t
pd_json_escape_cut(const u_char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if ((i == 0 && p[i] != '\\') || (i == 1 && p[i] != 'u')
            || (i > 1 && !isxdigit(p[i])))
        {
            return 0;
        }
    }

    return 1;
}

/* a string at its opening quote */
static pd_int_t
pd_json_str(pd_json_ctx_t *cx, pd_json_val_t *v)
{
    const u_char  *p = cx->p + 1;
    uint32_t       cp, lo;
    size_t         n;

    v->start = cx->p;
    v->type = PD_JSON_STRING;
    v->escaped = 0;

    while (p < cx->last) {

        if (*p == '"') {
            cx->p = p + 1;
            v->end = cx->p;
            return PD_OK;
        }

        if (*p < 0x20) {
            cx->p = p;
            return pd_json_fail(cx, "a control character in a string");
        }

        if (*p < 0x80 && *p != '\\') {
            p++;
            continue;
        }

        if (*p >= 0x80) {
            n = pd_json_utf8(p, cx->last);
            if (n == 0) {
                cx->p = pd_json_utf8_cut(p, cx->last) ? cx->last : p;
                return pd_json_fail(cx, "invalid UTF-8 in a string");
            }
            p += n;
            continue;
        }

        /* a backslash */
        v->escaped = 1;

        if (cx->last - p < 2) {
            break;
        }

        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n':
        case 'r': case 't':
            p += 2;
            continue;

        case 'u':
            if (cx->last - p < 6) {
                cx->p = pd_json_escape_cut(p, (size_t) (cx->last - p))
                        ? cx->last : p;
                return pd_json_fail(cx, "a bad \\u escape");
            }

            if (pd_json_hex4(p + 2, &cp) != PD_OK) {
                cx->p = p;
                return pd_json_fail(cx, "a bad \\u escape");
            }
            p += 6;

            if (cp >= 0xdc00 && cp <= 0xdfff) {
                cx->p = p - 6;
                return pd_json_fail(cx, "a lone surrogate in \\u");
            }

            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (cx->last - p < 6
                    && pd_json_escape_cut(p, (size_t) (cx->last - p)))
                {
                    cx->p = cx->last;
                    return pd_json_fail(cx, "a lone surrogate in \\u");
                }

                if (cx->last - p < 6 || p[0] != '\\' || p[1] != 'u'
                    || pd_json_hex4(p + 2, &lo) != PD_OK
                    || lo < 0xdc00 || lo > 0xdfff)
                {
                    cx->p = p - 6;
                    return pd_json_fail(cx, "a lone surrogate in \\u");
                }
                p += 6;
            }
            continue;

        default:
            cx->p = p;
            return pd_json_fail(cx, "a bad escape in a string");
        }
    }

    cx->p = cx->last;
    return pd_json_fail(cx, "an unterminated string");
}

static pd_int_t
pd_json_num(pd_json_ctx_t *cx, pd_json_val_t *v)
{
    const u_char  *p = cx->p, *last = cx->last, *d;

    v->start = p;
    v->type = PD_JSON_NUMBER;
    v->integer = 1;

    if (p < last && *p == '-') {
        p++;
    }

    if (p < last && *p == '0') {
        p++;

    } else if (p < last && *p >= '1' && *p <= '9') {
        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }

    } else {
        cx->p = p;
        return pd_json_fail(cx, "a bad number");
    }

    if (p < last && *p == '.') {
        v->integer = 0;
        d = ++p;
        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p == d) {
            cx->p = p;
            return pd_json_fail(cx, "a bad number");
        }
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        v->integer = 0;
        p++;
        if (p < last && (*p == '+' || *p == '-')) {
            p++;
        }
        d = p;
        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p == d) {
            cx->p = p;
            return pd_json_fail(cx, "a bad number");
        }
    }

    cx->p = p;
    v->end = p;
    return PD_OK;
}

static pd_int_t
pd_json_word(pd_json_ctx_t *cx, pd_json_val_t *v, const char *w, size_t n,
    pd_uint_t type)
{
    if ((size_t) (cx->last - cx->p) < n) {
        if (memcmp(cx->p, w, (size_t) (cx->last - cx->p)) == 0) {
            cx->p = cx->last;
        }
        return pd_json_fail(cx, "an unexpected character");
    }

    if (memcmp(cx->p, w, n) != 0) {
        return pd_json_fail(cx, "an unexpected character");
    }

    v->start = cx->p;
    cx->p += n;
    v->end = cx->p;
    v->type = type;

    return PD_OK;
}

/* an object or an array at its bracket; members are checked, not kept */
static pd_int_t
pd_json_nested(pd_json_ctx_t *cx, pd_json_val_t *v)
{
    pd_json_val_t  item;
    u_char         close;
    pd_uint_t      first;

    if (++cx->depth > PD_JSON_MAX_DEPTH) {
        return pd_json_fail(cx, "nested too deeply");
    }

    v->start = cx->p;
    v->type = (*cx->p == '{') ? PD_JSON_OBJECT : PD_JSON_ARRAY;
    close = (*cx->p == '{') ? '}' : ']';
    cx->p++;

    for (first = 1; ; first = 0) {
        pd_json_ws(cx);

        if (cx->p == cx->last) {
            return pd_json_fail(cx, "unexpected end of input");
        }

        if (*cx->p == close && first) {
            break;
        }

        if (!first) {
            if (*cx->p == close) {
                break;
            }
            if (*cx->p != ',') {
                return pd_json_fail(cx, "a missing ',' or bracket");
            }
            cx->p++;
            pd_json_ws(cx);
        }

        if (close == '}') {
            if (cx->p == cx->last || *cx->p != '"') {
                return pd_json_fail(cx, "a key must be a string");
            }
            if (pd_json_str(cx, &item) != PD_OK) {
                return PD_ERROR;
            }
            pd_json_ws(cx);
            if (cx->p == cx->last || *cx->p != ':') {
                return pd_json_fail(cx, "a missing ':'");
            }
            cx->p++;
            pd_json_ws(cx);
        }

        if (pd_json_value(cx, &item) != PD_OK) {
            return PD_ERROR;
        }
    }

    cx->p++;
    v->end = cx->p;
    cx->depth--;

    return PD_OK;
}

static pd_int_t
pd_json_value(pd_json_ctx_t *cx, pd_json_val_t *v)
{
    if (cx->p == cx->last) {
        return pd_json_fail(cx, "unexpected end of input");
    }

    switch (*cx->p) {
    case '"':
        return pd_json_str(cx, v);
    case '{':
    case '[':
        return pd_json_nested(cx, v);
    case 't':
        return pd_json_word(cx, v, "true", 4, PD_JSON_TRUE);
    case 'f':
        return pd_json_word(cx, v, "false", 5, PD_JSON_FALSE);
    case 'n':
        return pd_json_word(cx, v, "null", 4, PD_JSON_NULL);
    case '-': case '0': case '1': case '2': case '3': case '4': case '5':
    case '6': case '7': case '8': case '9':
        return pd_json_num(cx, v);
    default:
        return pd_json_fail(cx, "an unexpected character");
    }
}

/* does the key (a validated string) spell name? */
static pd_int_t
pd_json_key_is(const pd_json_val_t *k, const char *name)
{
    u_char  buf[64];
    size_t  len, n = strlen(name);

    if (!k->escaped) {
        len = (size_t) (k->end - k->start) - 2;
        return len == n && memcmp(k->start + 1, name, n) == 0;
    }

    return pd_json_string(k, buf, sizeof(buf), &len) == PD_OK && len == n
           && memcmp(buf, name, n) == 0;
}

pd_int_t
pd_json_object(const u_char *p, size_t len, pd_json_field_t *fields,
    pd_uint_t n, pd_json_err_t *err)
{
    pd_json_ctx_t  cx;
    pd_json_val_t  key, val;
    pd_uint_t      i, first;

    cx.p = p;
    cx.start = p;
    cx.last = p + len;
    cx.what = NULL;
    cx.depth = 1;

    for (i = 0; i < n; i++) {
        pd_memzero(&fields[i].val, sizeof(pd_json_val_t));
    }

    pd_json_ws(&cx);

    if (cx.p == cx.last || *cx.p != '{') {
        (void) pd_json_fail(&cx, "not a JSON object");
        goto failed;
    }

    cx.p++;

    for (first = 1; ; first = 0) {
        pd_json_ws(&cx);

        if (cx.p == cx.last) {
            (void) pd_json_fail(&cx, "unexpected end of input");
            goto failed;
        }

        if (*cx.p == '}') {
            cx.p++;
            break;
        }

        if (!first) {
            if (*cx.p != ',') {
                (void) pd_json_fail(&cx, "a missing ',' or bracket");
                goto failed;
            }
            cx.p++;
            pd_json_ws(&cx);
        }

        if (cx.p == cx.last || *cx.p != '"') {
            (void) pd_json_fail(&cx, "a key must be a string");
            goto failed;
        }

        if (pd_json_str(&cx, &key) != PD_OK) {
            goto failed;
        }

        pd_json_ws(&cx);

        if (cx.p == cx.last || *cx.p != ':') {
            (void) pd_json_fail(&cx, "a missing ':'");
            goto failed;
        }

        cx.p++;
        pd_json_ws(&cx);

        if (pd_json_value(&cx, &val) != PD_OK) {
            goto failed;
        }

        for (i = 0; i < n; i++) {
            if (pd_json_key_is(&key, fields[i].key)) {
                if (fields[i].val.type != PD_JSON_ABSENT) {
                    cx.p = key.start;
                    (void) pd_json_fail(&cx, "a duplicate key");
                    goto failed;
                }
                fields[i].val = val;
                break;
            }
        }
    }

    pd_json_ws(&cx);

    if (cx.p != cx.last) {
        (void) pd_json_fail(&cx, "bytes after the object");
        goto failed;
    }

    return PD_OK;

failed:

    err->what = cx.what;
    err->offset = (size_t) (cx.p - cx.start);
    return PD_ERROR;
}

pd_int_t
pd_json_array_next(const pd_json_val_t *arr, const u_char **pos,
    pd_json_val_t *elem)
{
    pd_json_ctx_t  cx;

    if (arr->type != PD_JSON_ARRAY) {
        return PD_DONE;
    }

    cx.p = (*pos == NULL) ? arr->start + 1 : *pos;
    cx.last = arr->end;
    cx.start = arr->start;
    cx.what = NULL;
    cx.depth = 1;

    pd_json_ws(&cx);

    if (cx.p >= cx.last || *cx.p == ']') {
        return PD_DONE;
    }

    if (*cx.p == ',') {
        cx.p++;
        pd_json_ws(&cx);
    }

    /* validated before: this only finds the end again */
    if (pd_json_value(&cx, elem) != PD_OK) {
        return PD_DONE;
    }

    *pos = cx.p;
    return PD_OK;
}

pd_int_t
pd_json_string(const pd_json_val_t *v, u_char *buf, size_t size, size_t *len)
{
    const u_char  *p, *last;
    u_char        *b, *end;
    uint32_t       cp = 0, lo = 0xdc00;

    if (v->type != PD_JSON_STRING || size == 0) {
        return PD_ERROR;
    }

    p = v->start + 1;
    last = v->end - 1;
    b = buf;
    end = buf + size - 1;

    while (p < last) {
        if (*p != '\\') {
            if (b == end) {
                return PD_ERROR;
            }
            *b++ = *p++;
            continue;
        }

        switch (p[1]) {
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            (void) pd_json_hex4(p + 2, &cp);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                (void) pd_json_hex4(p + 8, &lo);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            p += 4;
            break;
        default: cp = p[1]; break;       /* " \ / */
        }

        p += 2;

        if (cp == 0) {
            return PD_ERROR;
        }

        if (cp < 0x80) {
            if (end - b < 1) {
                return PD_ERROR;
            }
            *b++ = (u_char) cp;

        } else if (cp < 0x800) {
            if (end - b < 2) {
                return PD_ERROR;
            }
            *b++ = (u_char) (0xc0 | (cp >> 6));
            *b++ = (u_char) (0x80 | (cp & 0x3f));

        } else if (cp < 0x10000) {
            if (end - b < 3) {
                return PD_ERROR;
            }
            *b++ = (u_char) (0xe0 | (cp >> 12));
            *b++ = (u_char) (0x80 | ((cp >> 6) & 0x3f));
            *b++ = (u_char) (0x80 | (cp & 0x3f));

        } else {
            if (end - b < 4) {
                return PD_ERROR;
            }
            *b++ = (u_char) (0xf0 | (cp >> 18));
            *b++ = (u_char) (0x80 | ((cp >> 12) & 0x3f));
            *b++ = (u_char) (0x80 | ((cp >> 6) & 0x3f));
            *b++ = (u_char) (0x80 | (cp & 0x3f));
        }
    }

    *b = '\0';
    *len = (size_t) (b - buf);

    /* a raw NUL cannot be in a validated string; \u0000 was refused */
    return PD_OK;
}

pd_int_t
pd_json_integer(const pd_json_val_t *v, int64_t *n)
{
    const u_char  *p = v->start;
    uint64_t       u = 0, max = INT64_MAX;
    pd_uint_t      neg = 0;

    if (v->type != PD_JSON_NUMBER || !v->integer) {
        return PD_ERROR;
    }

    if (*p == '-') {
        neg = 1;
        max = (uint64_t) INT64_MAX + 1;
        p++;
    }

    for ( /* void */ ; p < v->end; p++) {
        if (u > (max - (uint64_t) (*p - '0')) / 10) {
            return PD_ERROR;
        }
        u = u * 10 + (uint64_t) (*p - '0');
    }

    *n = neg ? (int64_t) (0 - u) : (int64_t) u;
    return PD_OK;
}

u_char *
pd_json_escape(u_char *p, u_char *last, const u_char *s, size_t len)
{
    static const u_char  hex[] = "0123456789abcdef";
    const u_char        *end = s + len;

    if (p == last) {
        return NULL;
    }

    *p++ = '"';

    for ( /* void */ ; s < end; s++) {
        if (*s == '"' || *s == '\\') {
            if (last - p < 2) {
                return NULL;
            }
            *p++ = '\\';
            *p++ = *s;

        } else if (*s < 0x20) {
            if (last - p < 6) {
                return NULL;
            }
            *p++ = '\\';
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[*s >> 4];
            *p++ = hex[*s & 0xf];

        } else {
            if (p == last) {
                return NULL;
            }
            *p++ = *s;
        }
    }

    if (p == last) {
        return NULL;
    }

    *p++ = '"';
    return p;
}
