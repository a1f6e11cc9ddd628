/*
 * pg_rows: the rows pushd reads of PostgreSQL, the cluster saver's
 * reload of unacked messages (pd_sr_reload_row, pd_saver_redis.c), on
 * result sets built by libpq itself from the input (PQmakeEmptyPGresult,
 * PQsetResultAttrs, PQsetvalue): any number of columns, NULLs, any
 * bytes in a value.  A row taken must hold valid names, an id and a
 * number.
 *
 * Input: one byte of columns (0-7), then values, each one byte of length
 * (255: NULL) and its bytes, row after row.
 */

#include "pd_fuzz.h"
#include "pd_saver.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_fuzz_in_t       in = { data, size };
    PGresult          *res;
    PGresAttDesc       att[8];
    pd_str_t           uid, id, app, payload, node;
    uint64_t           expires, seq;
    char               name[8][16];
    u_char            *v;
    size_t             len;
    int                nf, row, col, n;
    uint8_t            l;

    pd_fuzz_init();

    nf = pd_fuzz_byte(&in) % 8;

    res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    if (res == NULL) {
        abort();
    }

    pd_memzero(att, sizeof(att));

    for (col = 0; col < nf; col++) {
        (void) snprintf(name[col], sizeof(name[col]), "c%d", col);
        att[col].name = name[col];
        att[col].typid = 25;        /* text */
        att[col].typlen = -1;
        att[col].atttypmod = -1;
    }

    if (nf && !PQsetResultAttrs(res, nf, att)) {
        abort();
    }

    for (row = 0; nf && in.len && row < 64; row++) {
        for (col = 0; col < nf; col++) {
            l = pd_fuzz_byte(&in);
            v = (l == 255) ? NULL : pd_fuzz_copy(&in, l, &len);

            if (!PQsetvalue(res, row, col, (char *) v, v ? (int) len : -1)) {
                abort();
            }

            free(v);
        }
    }

    n = PQntuples(res);

    /* past the last row too: the reader must say no, not read */
    for (row = -1; row <= n; row++) {
        if (pd_sr_reload_row(res, row, &uid, &id, &app, &payload, &expires)
            != PD_OK)
        {
            continue;
        }

        if (row < 0 || row >= n
            || pd_token_valid_name(&uid, PD_UID_MAX) != PD_OK
            || pd_token_valid_name(&app, PD_APP_MAX) != PD_OK
            || pd_msg_id_parse(id.data, id.len, &node, &seq) != PD_OK
            || (payload.len && payload.data == NULL))
        {
            abort();
        }
    }

    PQclear(res);
    return 0;
}
