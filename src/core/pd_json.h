/*
 * pd_json.h: a strict JSON reader that allocates nothing, for the hot
 * paths (a push's body, a client's frames).  A document is validated
 * whole in one pass (RFC 8259 grammar, UTF-8 in strings, a nesting
 * bound) and the top-level members the caller names are kept as spans
 * of the original bytes: a payload goes on byte for byte, names are
 * decoded into the caller's buffer.  Also the writer's one need: a JSON
 * string escaped into a buffer.
 */

#ifndef PD_JSON_H
#define PD_JSON_H

#define PD_JSON_MAX_DEPTH  64

typedef enum {
    PD_JSON_ABSENT = 0,
    PD_JSON_OBJECT,
    PD_JSON_ARRAY,
    PD_JSON_STRING,
    PD_JSON_NUMBER,
    PD_JSON_TRUE,
    PD_JSON_FALSE,
    PD_JSON_NULL
} pd_json_type_e;

/* a value: its exact bytes in the document (quotes included) */
typedef struct {
    const u_char   *start;
    const u_char   *end;
    pd_uint_t       type;
    unsigned        escaped:1;      /* a string with backslash escapes */
    unsigned        integer:1;      /* a number without fraction/exponent */
} pd_json_val_t;

/* a top-level member the caller wants: key in, value out */
typedef struct {
    const char     *key;
    pd_json_val_t   val;            /* type PD_JSON_ABSENT when missing */
} pd_json_field_t;

typedef struct {
    const char     *what;           /* a static phrase */
    size_t          offset;         /* where in the document */
} pd_json_err_t;

/*
 * Validates p[0 .. len) as one JSON object and fills the named fields.
 * A named key seen twice is an error (what the API calls a duplicate).
 * PD_OK, or PD_ERROR with err set.
 */
pd_int_t pd_json_object(const u_char *p, size_t len, pd_json_field_t *fields,
    pd_uint_t n, pd_json_err_t *err);

/* the elements of a validated array: *pos starts NULL; PD_OK with *elem
 * filled, PD_DONE past the last */
pd_int_t pd_json_array_next(const pd_json_val_t *arr, const u_char **pos,
    pd_json_val_t *elem);

/* a string's decoded UTF-8 into buf (NUL-terminated); PD_ERROR when it
 * is not a string, holds \u0000 or needs more than size - 1 bytes */
pd_int_t pd_json_string(const pd_json_val_t *v, u_char *buf, size_t size,
    size_t *len);

/* an integer number in the int64_t range */
pd_int_t pd_json_integer(const pd_json_val_t *v, int64_t *n);

/* s as a JSON string, quotes included, into [p, last); NULL when it does
 * not fit.  Control characters are escaped, the rest goes as is */
u_char *pd_json_escape(u_char *p, u_char *last, const u_char *s,
    size_t len);

#endif /* PD_JSON_H */
