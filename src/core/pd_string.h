/*
 * pd_string.h: counted strings and the small formatting helpers used
 * everywhere (no locale, no allocation unless a pool is passed).
 */

#ifndef PD_STRING_H
#define PD_STRING_H

typedef struct {
    size_t      len;
    u_char     *data;
} pd_str_t;

#define pd_string(s)       { sizeof(s) - 1, (u_char *) s }
#define pd_null_string     { 0, NULL }
#define pd_str_set(str, text)                                                \
    (str)->len = sizeof(text) - 1; (str)->data = (u_char *) text
#define pd_str_null(str)   (str)->len = 0; (str)->data = NULL

#define pd_strncmp(s1, s2, n)  strncmp((const char *) s1, (const char *) s2, n)
#define pd_strcmp(s1, s2)      strcmp((const char *) s1, (const char *) s2)
#define pd_strlen(s)           strlen((const char *) s)
#define pd_memcpy(dst, src, n) (void) memcpy(dst, src, n)
#define pd_cpymem(dst, src, n) (((u_char *) memcpy(dst, src, n)) + (n))
#define pd_memzero(buf, n)     (void) memset(buf, 0, n)

#define pd_tolower(c)  (u_char) ((c >= 'A' && c <= 'Z') ? (c | 0x20) : c)

/* 1 when s equals lit ignoring ASCII case, else 0 */
pd_int_t pd_str_eq_lit_ci(pd_str_t *s, const char *lit);
/* dup into the pool, NUL-terminated past len; NULL on allocation failure */
u_char *pd_pstrdup(pd_pool_t *pool, pd_str_t *src);
/* pool copy of a C string into a pd_str_t (data is NUL-terminated) */
pd_int_t pd_str_from_cstr(pd_pool_t *pool, pd_str_t *dst, const char *src);
/* decimal parse of [data, data+len): -1 on any non-digit, empty or overflow */
pd_int_t pd_atoi(const u_char *data, size_t len);
/*
 * snprintf into [buf, last), returns the end of what was written; never
 * overflows: output that does not fit fills up to last (no NUL there)
 */
u_char *pd_slprintf(u_char *buf, u_char *last, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
u_char *pd_vslprintf(u_char *buf, u_char *last, const char *fmt, va_list args);
u_char *pd_hex_dump(u_char *dst, const u_char *src, size_t len);
/* n in lowercase hex / in decimal, no leading zeros; at most 16 / 20
 * bytes are written, no NUL (the hot paths' answer to printf) */
u_char *pd_hex64(u_char *p, uint64_t n);
u_char *pd_dec64(u_char *p, uint64_t n);
/* prefix then name into buf of size bytes, NUL-terminated, cut to fit;
 * returns the length: a key such as "pd:q:<uid>" without printf's format
 * parsing (snprintf was some 5% of a cluster worker's CPU) */
size_t pd_key_cat(char *buf, size_t size, const char *prefix,
    const u_char *name, size_t len);

#endif /* PD_STRING_H */
