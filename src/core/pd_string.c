/* pd_string.c: counted strings, decimal parsing and bounded formatting. */

#include "pd_core.h"


/* 1 when s equals lit ignoring ASCII case (same length), 0 otherwise */
pd_int_t
pd_str_eq_lit_ci(pd_str_t *s, const char *lit)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (lit[i] == '\0'
            || pd_tolower(s->data[i]) != pd_tolower((u_char) lit[i]))
        {
            return 0;
        }
    }

    return lit[i] == '\0';
}


/*
 * Returns a pool copy of src's bytes, NUL-terminated (one byte past len)
 * so it may also be handed to libc; NULL on allocation failure.
 */
u_char *
pd_pstrdup(pd_pool_t *pool, pd_str_t *src)
{
    u_char  *dst;

    dst = pd_pnalloc(pool, src->len + 1);
    if (dst == NULL) {
        return NULL;
    }

    if (src->len != 0) {
        pd_memcpy(dst, src->data, src->len);
    }

    dst[src->len] = '\0';

    return dst;
}


/* fills dst with a NUL-terminated pool copy of src; PD_ERROR on failure */
pd_int_t
pd_str_from_cstr(pd_pool_t *pool, pd_str_t *dst, const char *src)
{
    pd_str_t  s;

    s.len = strlen(src);
    s.data = (u_char *) src;

    dst->data = pd_pstrdup(pool, &s);
    if (dst->data == NULL) {
        dst->len = 0;
        return PD_ERROR;
    }

    dst->len = s.len;

    return PD_OK;
}


/*
 * Parses a non-negative decimal number of exactly len bytes; -1 when the
 * input is empty, holds anything but digits, or does not fit pd_int_t.
 */
pd_int_t
pd_atoi(const u_char *data, size_t len)
{
    pd_int_t  value, cutoff, cutlim;

    if (len == 0) {
        return -1;
    }

    cutoff = PD_MAX_INT_T_VALUE / 10;
    cutlim = PD_MAX_INT_T_VALUE % 10;

    for (value = 0; len--; data++) {
        if (*data < '0' || *data > '9') {
            return -1;
        }

        if (value > cutoff || (value == cutoff && *data - '0' > cutlim)) {
            return -1;
        }

        value = value * 10 + (*data - '0');
    }

    return value;
}


u_char *
pd_hex64(u_char *p, uint64_t n)
{
    static const u_char  hex[] = "0123456789abcdef";
    u_char               tmp[16], *t = tmp + sizeof(tmp);

    do {
        *--t = hex[n & 0xf];
        n >>= 4;
    } while (n);

    return pd_cpymem(p, t, (size_t) (tmp + sizeof(tmp) - t));
}

u_char *
pd_dec64(u_char *p, uint64_t n)
{
    u_char  tmp[20], *t = tmp + sizeof(tmp);

    do {
        *--t = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return pd_cpymem(p, t, (size_t) (tmp + sizeof(tmp) - t));
}

size_t
pd_key_cat(char *buf, size_t size, const char *prefix, const u_char *name,
    size_t len)
{
    size_t  plen;

    if (size == 0) {
        return 0;
    }

    plen = strlen(prefix);
    if (plen > size - 1) {
        plen = size - 1;
    }

    if (len > size - 1 - plen) {
        len = size - 1 - plen;
    }

    pd_memcpy(buf, prefix, plen);
    pd_memcpy(buf + plen, name, len);
    buf[plen + len] = '\0';

    return plen + len;
}

/* see pd_vslprintf() */
u_char *
pd_slprintf(u_char *buf, u_char *last, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = pd_vslprintf(buf, last, fmt, args);
    va_end(args);

    return p;
}


/*
 * Formats into [buf, last) and returns the end of the output; output that
 * does not fit is cut at last, and no NUL is added.  The result never
 * passes last, so callers chain p = pd_slprintf(p, last, ...) safely.
 */
u_char *
pd_vslprintf(u_char *buf, u_char *last, const char *fmt, va_list args)
{
    int       n;
    char     *full;
    size_t    avail;
    va_list   copy;

    if (buf >= last) {
        return buf;
    }

    avail = (size_t) (last - buf);

    va_copy(copy, args);
    n = vsnprintf((char *) buf, avail, fmt, args);

    if (n < 0) {
        va_end(copy);
        return buf;
    }

    if ((size_t) n < avail) {
        va_end(copy);
        return buf + n;
    }

    /*
     * vsnprintf() spent the last byte on a NUL: format the whole output
     * once more to fill that byte too.  Only truncated lines pay for it.
     */
    full = malloc((size_t) n + 1);
    if (full == NULL) {
        va_end(copy);
        return last - 1;
    }

    (void) vsnprintf(full, (size_t) n + 1, fmt, copy);
    va_end(copy);

    pd_memcpy(buf, full, avail);
    pd_free(full);

    return last;
}


/* writes 2 * len lowercase hex digits (no NUL); returns their end */
u_char *
pd_hex_dump(u_char *dst, const u_char *src, size_t len)
{
    static const u_char  pd_hex[] = "0123456789abcdef";

    while (len--) {
        *dst++ = pd_hex[*src >> 4];
        *dst++ = pd_hex[*src++ & 0xf];
    }

    return dst;
}
