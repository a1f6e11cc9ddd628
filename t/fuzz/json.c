/*
 * json: the allocation-free JSON reader (pd_json.c) on push bodies and
 * client frames.  What it accepts, jansson must accept too (pd_json is
 * the stricter); every value it hands back must lie inside the document;
 * arrays are walked, strings decoded into buffers of every size, and a
 * decoded string escaped again must decode to the same bytes.
 *
 * Input: the document.
 */

#include "pd_fuzz.h"

#include <jansson.h>

static void
pd_fuzz_value(const u_char *doc, size_t len, pd_json_val_t *v, int depth)
{
    pd_json_val_t   e, back;
    const u_char   *pos;
    u_char          buf[300], esc[6 * 300 + 3], *p;
    size_t          n, m, size;
    int64_t         i;
    pd_uint_t       count;

    if (v->start < doc || v->end > doc + len || v->start >= v->end) {
        abort();
    }

    switch (v->type) {

    case PD_JSON_ARRAY:
        pos = NULL;
        count = 0;

        while (pd_json_array_next(v, &pos, &e) == PD_OK && count++ < 100) {
            if (e.start < v->start || e.end > v->end) {
                abort();
            }

            if (depth < 3) {
                pd_fuzz_value(doc, len, &e, depth + 1);
            }
        }
        break;

    case PD_JSON_STRING:
        /* every buffer size up to what it needs: never past the buffer */
        for (size = 0; size <= sizeof(buf); size += (size < 40) ? 1 : 37) {
            p = malloc(size ? size : 1);
            if (p == NULL) {
                abort();
            }

            if (pd_json_string(v, p, size, &n) == PD_OK
                && (n >= size || p[n] != '\0'))
            {
                abort();
            }

            free(p);
        }

        if (pd_json_string(v, buf, sizeof(buf), &n) != PD_OK) {
            break;
        }

        /* escaped and read back: the same bytes */
        p = pd_json_escape(esc, esc + sizeof(esc), buf, n);
        if (p == NULL) {
            abort();
        }

        back.start = esc;
        back.end = p;
        back.type = PD_JSON_STRING;
        back.escaped = 1;
        back.integer = 0;

        if (pd_json_string(&back, esc + sizeof(esc) - 0, 0, &m) == PD_OK) {
            abort();
        }

        {
            u_char  again[300];

            if (pd_json_string(&back, again, sizeof(again), &m) != PD_OK
                || m != n || memcmp(again, buf, n) != 0)
            {
                abort();
            }
        }
        break;

    case PD_JSON_NUMBER:
        (void) pd_json_integer(v, &i);
        break;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_fuzz_in_t      in = { data, size };
    pd_json_field_t   f[8];
    pd_json_err_t     err;
    json_error_t      jerr;
    json_t           *j;
    u_char           *doc;
    size_t            len;
    pd_uint_t         i;
    static const char *keys[8] = { "app", "data", "qos", "ttl", "uids",
                                   "op", "ids", "rate" };

    pd_fuzz_init();

    doc = pd_fuzz_copy(&in, in.len, &len);

    for (i = 0; i < 8; i++) {
        f[i].key = keys[i];
    }

    if (pd_json_object(doc, len, f, 8, &err) != PD_OK) {
        if (err.what == NULL || err.offset > len) {
            abort();
        }

        free(doc);
        return 0;
    }

    /* jansson refuses numbers past a double's range and \u0000 in keys,
     * both of which JSON allows */
    j = json_loadb((const char *) doc, len,
                   JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
    if (j == NULL ? strstr(jerr.text, "overflow") == NULL
                    && strstr(jerr.text, "too big") == NULL
                    && strstr(jerr.text, "NUL") == NULL
                  : !json_is_object(j))
    {
        abort();
    }
    json_decref(j);

    for (i = 0; i < 8; i++) {
        if (f[i].val.type != PD_JSON_ABSENT) {
            pd_fuzz_value(doc, len, &f[i].val, 0);
        }
    }

    free(doc);
    return 0;
}
