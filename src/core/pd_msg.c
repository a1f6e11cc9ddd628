/*
 * pd_msg.c: the message id's format and parse (pd_msg.h).
 */

#include "pd_core.h"

u_char *
pd_msg_id(u_char *p, const pd_str_t *node, uint64_t seq)
{
    p = pd_cpymem(p, node->data, pd_min(node->len, PD_NODE_ID_MAX));
    *p++ = '-';

    return pd_hex64(p, seq);
}

pd_int_t
pd_msg_id_parse(const u_char *id, size_t len, pd_str_t *node, uint64_t *seq)
{
    const u_char  *dash, *p, *last;
    uint64_t       n;
    u_char         ch;

    if (len > PD_MSG_ID_LEN) {
        return PD_ERROR;
    }

    last = id + len;

    /* the last dash: node ids may hold dashes, hex digits do not */
    for (dash = last; dash > id && dash[-1] != '-'; dash--) { /* void */ }

    if (dash == id || dash - 1 == id || (size_t) (dash - 1 - id)
                                        > PD_NODE_ID_MAX
        || last - dash == 0 || last - dash > 16)
    {
        return PD_ERROR;
    }

    n = 0;

    for (p = dash; p < last; p++) {
        ch = *p;

        if (ch >= '0' && ch <= '9') {
            n = (n << 4) | (uint64_t) (ch - '0');

        } else if (ch >= 'a' && ch <= 'f') {
            n = (n << 4) | (uint64_t) (ch - 'a' + 10);

        } else {
            return PD_ERROR;
        }
    }

    node->data = (u_char *) id;
    node->len = (size_t) (dash - 1 - id);
    *seq = n;

    return PD_OK;
}
