/*
 * pd_dispatcher_pick.c: which addresses a client is given.  Weighted
 * rendezvous hashing ranks the nodes for the uid: every dispatcher
 * ranks them alike with no shared state, a node that leaves moves only
 * the uids it ranked first, and a node of weight w ranks first w times
 * as often as one of weight 1.  Pure: no allocation, no clock, no log.
 */

#include "pd_core.h"
#include "pd_dispatcher.h"

/* a fixed key: every node and build must hash a uid alike */
static const uint64_t  pd_dispatch_key[2] = {
    0x7075736864697370ULL, 0x6174636865723135ULL
};

/* the preference groups of a node, best first */
#define PD_DISPATCH_GROUP_OK      0
#define PD_DISPATCH_GROUP_FAILED  1   /* in an idc of a failed address */

typedef struct {
    double       score;
    uint32_t     node;
    uint32_t     group;
} pd_dispatch_rank_t;

uint64_t
pd_dispatch_uid_hash(const u_char *uid, size_t len)
{
    return pd_siphash24(pd_dispatch_key, uid, len);
}

uint64_t
pd_dispatch_node_id(const u_char *name, size_t len)
{
    /* another hash than the uid's, so that a uid named like a node
     * does not meet it */
    return pd_siphash24(pd_dispatch_key, name, len) ^ 0x9e3779b97f4a7c15ULL;
}

/* splitmix64's finaliser: every bit of x moves about half of the result */
static uint64_t
pd_dispatch_mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/*
 * log2(m) for m >= 1, to some 20 bits of fraction, by repeated squaring:
 * the ranking needs no more, and this needs neither libm nor a table.
 */
static double
pd_dispatch_log2(uint64_t m)
{
    double    x, y, b;
    int       k, i;

    k = 63 - __builtin_clzll(m);
    x = (double) m / (double) (1ULL << k);     /* in [1, 2) */
    y = (double) k;
    b = 0.5;

    for (i = 0; i < 20; i++) {
        x *= x;

        if (x >= 2.0) {
            x *= 0.5;
            y += b;
        }

        b *= 0.5;
    }

    return y;
}

/*
 * A uniform u in (0, 1) from the (uid, node) pair; the score is
 * weight / -ln(u), whose largest is a node of weight w with odds w /
 * (sum of weights).  -log2 serves as well: the base scales every score
 * alike.
 */
double
pd_dispatch_score(uint64_t uid_hash, const pd_dispatch_node_t *n)
{
    uint64_t  m;
    double    e;

    m = (pd_dispatch_mix(uid_hash ^ n->id) >> 11) | 1;   /* 53 bits */
    e = 53.0 - pd_dispatch_log2(m);

    return (double) n->weight / e;
}

static pd_uint_t
pd_dispatch_same(const pd_dispatch_addr_t *a, const pd_dispatch_addr_t *b)
{
    return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

static pd_uint_t
pd_dispatch_failed(pd_dispatch_query_t *q, const pd_dispatch_addr_t *a)
{
    pd_uint_t  i;

    for (i = 0; i < q->nfailed; i++) {
        if (pd_dispatch_same(&q->failed[i], a)) {
            return 1;
        }
    }

    return 0;
}

/* the addresses of node n a client may be given: a bit each */
static uint32_t
pd_dispatch_usable(pd_dispatch_set_t *set, pd_dispatch_query_t *q,
    const pd_dispatch_node_t *n)
{
    uint32_t   bits;
    pd_uint_t  i;

    bits = 0;

    for (i = 0; i < n->naddrs; i++) {
        if (n->addrs[i].ssl == (set->ssl != 0)
            && !pd_dispatch_failed(q, &n->addrs[i]))
        {
            bits |= 1U << i;
        }
    }

    return bits;
}

static pd_uint_t
pd_dispatch_serves(const pd_dispatch_node_t *n, pd_dispatch_name_t *net)
{
    pd_uint_t  i;

    if (n->nnets == 0) {
        return 1;
    }

    for (i = 0; i < n->nnets; i++) {
        if (n->nets[i].len == net->len
            && memcmp(n->nets[i].name, net->name, net->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}

/* whether node n is in the idc of some address the client says failed */
static pd_uint_t
pd_dispatch_in_failed_idc(pd_dispatch_set_t *set, pd_dispatch_query_t *q,
    const pd_dispatch_node_t *n)
{
    pd_uint_t                  i, j;
    const pd_dispatch_node_t  *f;

    if (n->idc.len == 0 || q->nfailed == 0) {
        return 0;
    }

    for (i = 0; i < set->nnodes; i++) {
        f = &set->nodes[i];

        if (f->idc.len != n->idc.len
            || memcmp(f->idc.name, n->idc.name, n->idc.len) != 0)
        {
            continue;
        }

        for (j = 0; j < f->naddrs; j++) {
            if (pd_dispatch_failed(q, &f->addrs[j])) {
                return 1;
            }
        }
    }

    return 0;
}

/* the nodes that may answer, ranked: group, then score, then id */
static pd_uint_t
pd_dispatch_rank(pd_dispatch_set_t *set, pd_dispatch_query_t *q,
    uint64_t uh, pd_dispatch_rank_t *rank, uint32_t *usable)
{
    pd_uint_t            i, j, n, by_net;
    pd_dispatch_rank_t   r;
    pd_dispatch_node_t  *nd;

    /* a net that no node serves selects nothing: all of them answer */
    by_net = 0;

    if (q->net.len) {
        for (i = 0; i < set->nnodes; i++) {
            if (set->nodes[i].nnets
                && pd_dispatch_serves(&set->nodes[i], &q->net))
            {
                by_net = 1;
                break;
            }
        }
    }

    n = 0;

    for (i = 0; i < set->nnodes && i < PD_DISPATCH_NODES_MAX; i++) {
        nd = &set->nodes[i];

        if (by_net && !pd_dispatch_serves(nd, &q->net)) {
            continue;
        }

        usable[i] = pd_dispatch_usable(set, q, nd);
        if (usable[i] == 0) {
            continue;
        }

        r.node = (uint32_t) i;
        r.score = pd_dispatch_score(uh, nd);
        r.group = pd_dispatch_in_failed_idc(set, q, nd)
                  ? PD_DISPATCH_GROUP_FAILED : PD_DISPATCH_GROUP_OK;

        /* insertion: a few hundred nodes at the most */
        for (j = n; j > 0; j--) {
            if (rank[j - 1].group < r.group
                || (rank[j - 1].group == r.group
                    && (rank[j - 1].score > r.score
                        || (rank[j - 1].score == r.score
                            && set->nodes[rank[j - 1].node].id
                               <= nd->id))))
            {
                break;
            }

            rank[j] = rank[j - 1];
        }

        rank[j] = r;
        n++;
    }

    return n;
}

static pd_uint_t
pd_dispatch_port_given(const pd_dispatch_addr_t **out, pd_uint_t n,
    uint16_t port)
{
    pd_uint_t  i;

    for (i = 0; i < n; i++) {
        if (out[i]->port == port) {
            return 1;
        }
    }

    return 0;
}

/*
 * One more address of node nd, from those left in *left, starting at
 * from: one of a port not given yet if there is one.  -1: none left.
 */
static int
pd_dispatch_take(const pd_dispatch_node_t *nd, uint32_t *left,
    pd_uint_t from, const pd_dispatch_addr_t **out, pd_uint_t nout)
{
    pd_uint_t  i, k;
    int        any;

    any = -1;

    for (k = 0; k < nd->naddrs; k++) {
        i = (from + k) % nd->naddrs;

        if (!(*left & (1U << i))) {
            continue;
        }

        if (!pd_dispatch_port_given(out, nout, nd->addrs[i].port)) {
            any = (int) i;
            break;
        }

        if (any == -1) {
            any = (int) i;
        }
    }

    if (any != -1) {
        *left &= ~(1U << any);
    }

    return any;
}

pd_uint_t
pd_dispatch_pick(pd_dispatch_set_t *set, pd_dispatch_query_t *q,
    const pd_dispatch_addr_t **out)
{
    uint64_t             uh;
    uint32_t             usable[PD_DISPATCH_NODES_MAX];
    pd_uint_t            n, nout, want, r, i, added, from;
    int                  a;
    pd_dispatch_rank_t   rank[PD_DISPATCH_NODES_MAX];
    pd_dispatch_node_t  *nd;

    want = pd_min(set->count, PD_DISPATCH_COUNT_MAX);
    uh = pd_dispatch_uid_hash(q->uid, q->uid_len);

    n = pd_dispatch_rank(set, q, uh, rank, usable);
    nout = 0;

    /* the first: the uid's own node, an address of it chosen by the uid
     * (the port stays the same from call to call too) */
    for (r = 0; nout < want; r++) {
        added = 0;

        for (i = 0; i < n && nout < want; i++) {
            nd = &set->nodes[rank[i].node];
            from = (pd_uint_t) ((uh >> 16) + r) % nd->naddrs;

            a = pd_dispatch_take(nd, &usable[rank[i].node], from, out, nout);
            if (a < 0) {
                continue;
            }

            out[nout++] = &nd->addrs[a];
            added++;
        }

        if (added == 0) {
            break;
        }
    }

    return nout;
}
