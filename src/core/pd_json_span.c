/*
 * pd_json_span.c: a scanner over a JSON object's top level.
 */

#include "pd_core.h"

static const u_char *
pd_json_ws(const u_char *p, const u_char *last)
{
    while (p < last && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}

/* past a string starting at its '"'; NULL if it does not end */
static const u_char *
pd_json_skip_string(const u_char *p, const u_char *last)
{
    for (p++; p < last; p++) {
        if (*p == '\\') {
            p++;
            continue;
        }

        if (*p == '"') {
            return p + 1;
        }
    }

    return NULL;
}

/* past one value: string, object, array or a scalar token */
static const u_char *
pd_json_skip_value(const u_char *p, const u_char *last)
{
    pd_uint_t  depth;

    if (p >= last) {
        return NULL;
    }

    if (*p == '"') {
        return pd_json_skip_string(p, last);
    }

    if (*p == '{' || *p == '[') {
        depth = 0;

        while (p < last) {
            if (*p == '"') {
                p = pd_json_skip_string(p, last);
                if (p == NULL) {
                    return NULL;
                }
                continue;
            }

            if (*p == '{' || *p == '[') {
                depth++;

            } else if (*p == '}' || *p == ']') {
                if (--depth == 0) {
                    return p + 1;
                }
            }

            p++;
        }

        return NULL;
    }

    while (p < last && *p != ',' && *p != '}' && *p != ']' && *p != ' '
           && *p != '\t' && *p != '\n' && *p != '\r')
    {
        p++;
    }

    return p;
}

pd_int_t
pd_json_member_span(const u_char *p, size_t len, const char *key,
    pd_str_t *value)
{
    const u_char  *last, *k, *kend, *v;
    size_t         klen;

    last = p + len;
    klen = strlen(key);

    p = pd_json_ws(p, last);
    if (p == last || *p != '{') {
        return PD_ERROR;
    }

    p++;

    for ( ;; ) {
        p = pd_json_ws(p, last);

        if (p == last) {
            return PD_ERROR;
        }

        if (*p == '}') {
            return PD_DECLINED;
        }

        if (*p != '"') {
            return PD_ERROR;
        }

        k = p + 1;
        p = pd_json_skip_string(p, last);
        if (p == NULL) {
            return PD_ERROR;
        }
        kend = p - 1;

        p = pd_json_ws(p, last);
        if (p == last || *p != ':') {
            return PD_ERROR;
        }

        p = pd_json_ws(p + 1, last);
        v = p;

        p = pd_json_skip_value(p, last);
        if (p == NULL || p == v) {
            return PD_ERROR;
        }

        if ((size_t) (kend - k) == klen && memcmp(k, key, klen) == 0) {
            value->data = (u_char *) v;
            value->len = (size_t) (p - v);
            return PD_OK;
        }

        p = pd_json_ws(p, last);

        if (p < last && *p == ',') {
            p++;
            continue;
        }

        if (p < last && *p == '}') {
            return PD_DECLINED;
        }

        return PD_ERROR;
    }
}
