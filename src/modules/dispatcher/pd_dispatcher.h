/*
 * pd_dispatcher.h: the dispatcher, GET /v1/dispatch on the room ports:
 * a client asks where to connect and gets a scattered set of live room
 * addresses, the first one stable for its uid (weighted rendezvous
 * hashing over the nodes), the rest on other nodes with their ports
 * mixed, the addresses it says failed left out and another idc
 * preferred; and the reconnect policy it should follow.  The nodes are
 * listed in the configuration or, in a cluster, published in Redis by
 * every node with its liveness.
 */

#ifndef PD_DISPATCHER_H
#define PD_DISPATCHER_H

#define PD_DISPATCH_HOST_MAX     64    /* a host name or an IP */
/* "[host]:65535" and its NUL */
#define PD_DISPATCH_TEXT_SIZE    (PD_DISPATCH_HOST_MAX + 10)
#define PD_DISPATCH_ADDRS_MAX    8     /* addresses of one node */
#define PD_DISPATCH_NETS_MAX     4     /* net groups a node serves */
#define PD_DISPATCH_NAME_MAX     32    /* an idc or a net name */
#define PD_DISPATCH_NODES_MAX    256   /* nodes an answer picks from */
#define PD_DISPATCH_COUNT_MAX    16    /* addresses in one answer */
#define PD_DISPATCH_FAILED_MAX   16    /* addresses in failed= */

/* one room address, as clients are told it */
typedef struct {
    u_char       text[PD_DISPATCH_TEXT_SIZE];   /* "host:port" */
    uint8_t      len;
    unsigned     ssl:1;                         /* a TLS port */
    uint16_t     port;
} pd_dispatch_addr_t;

typedef struct {
    u_char       name[PD_DISPATCH_NAME_MAX];
    uint8_t      len;
} pd_dispatch_name_t;

typedef struct {
    uint64_t            id;         /* hash of its identity: rendezvous */
    uint32_t            weight;
    uint8_t             naddrs;
    uint8_t             nnets;      /* 0: serves every net */
    pd_dispatch_name_t  idc;
    pd_dispatch_name_t  nets[PD_DISPATCH_NETS_MAX];
    pd_dispatch_addr_t  addrs[PD_DISPATCH_ADDRS_MAX];
} pd_dispatch_node_t;

/* a request's query, decoded and checked */
typedef struct {
    u_char              uid[PD_UID_MAX];
    size_t              uid_len;
    pd_dispatch_name_t  net;        /* len 0: not given */
    pd_uint_t           nfailed;
    pd_dispatch_addr_t  failed[PD_DISPATCH_FAILED_MAX];
} pd_dispatch_query_t;

/* what a pick is asked */
typedef struct {
    pd_dispatch_node_t  *nodes;
    pd_uint_t            nnodes;
    pd_uint_t            count;     /* addresses wanted */
    pd_uint_t            ssl;       /* TLS addresses, else plain ones */
} pd_dispatch_set_t;

typedef struct {
    pd_array_t      *nodes;          /* of pd_dispatch_node_t; NULL: the
                                        cluster's */
    pd_int_t         count;
    pd_msec_t        ttl;
    pd_str_t         idc;            /* this node's, when it publishes */
    pd_int_t         weight;
    pd_array_t      *net;            /* of pd_str_t */
    pd_msec_t        reconnect_base;
    pd_msec_t        reconnect_max;
    pd_int_t         reconnect_jitter;   /* percent */
    pd_msec_t        heartbeat;      /* PD_CONF_UNSET_MSEC: room's */
    pd_int_t         max_requests_per_ip;
    pd_dispatch_node_t  self;        /* what this node publishes */
    unsigned         publish:1;      /* a cluster node with an advertise */
} pd_dispatch_conf_t;

extern pd_module_t  pd_dispatcher_module;

/* the counters, by index into pd_dispatch_counters */
#define PD_DISPATCH_STAT_ANSWERED    0
#define PD_DISPATCH_STAT_BAD         1   /* 400 */
#define PD_DISPATCH_STAT_LIMITED     2   /* 429 */
#define PD_DISPATCH_STAT_EMPTY       3   /* 503: no live address */

#define pd_dispatch_stat(i)  pd_stats_module_add(pd_dispatcher_module, i, 1)

/* ---- pure parts (pd_dispatcher_parse.c, pd_dispatcher_pick.c) ---- */

/*
 * "host:port", "[v6]:port", with " ssl" after it when allow_ssl; a
 * host is a name of [A-Za-z0-9.-] or an IP, at most PD_DISPATCH_HOST_MAX
 * bytes; the port 1 to 65535.  Fills a; NULL or a phrase.
 */
const char *pd_dispatch_parse_addr(const u_char *p, size_t len,
    pd_uint_t allow_ssl, pd_dispatch_addr_t *a);

/* an idc or net name: 1 to PD_DISPATCH_NAME_MAX of [A-Za-z0-9._-] */
const char *pd_dispatch_parse_name(const u_char *p, size_t len,
    pd_dispatch_name_t *n);

/*
 * The query of a request (uid, net, failed, percent-encoded as they
 * came); NULL or a phrase for a 400.
 */
const char *pd_dispatch_parse_query(pd_str_t *args, pd_dispatch_query_t *q);

/* the identity hash of a node (its name, or its first address) */
uint64_t pd_dispatch_node_id(const u_char *name, size_t len);

/*
 * The rendezvous score of a node for a uid: the highest wins, a node of
 * weight w winning w times as often as one of weight 1.  Every node
 * computes the same for the same (uid, node), whatever its build.
 */
double pd_dispatch_score(uint64_t uid_hash, const pd_dispatch_node_t *n);
uint64_t pd_dispatch_uid_hash(const u_char *uid, size_t len);

/*
 * Picks up to set->count addresses for q into out (room for
 * PD_DISPATCH_COUNT_MAX); returns how many (0: no live address fits).
 * The first is the uid's rendezvous node's (among the nodes of q's net
 * and, when q names failed addresses, of an idc none of them is in),
 * the rest from the next nodes in score order, one per node a round,
 * each of a port not given yet where one is left.  No allocation.
 */
pd_uint_t pd_dispatch_pick(pd_dispatch_set_t *set, pd_dispatch_query_t *q,
    const pd_dispatch_addr_t **out);

/* ---- the cluster's nodes (pd_dispatcher_cluster.c) ---- */

pd_int_t pd_dispatch_cluster_init(pd_cycle_t *cycle,
    pd_dispatch_conf_t *dcf, pd_uint_t answer);
void pd_dispatch_cluster_retire(void);
void pd_dispatch_cluster_exit(void);
/* the live nodes last read from Redis, *n of them */
pd_dispatch_node_t *pd_dispatch_cluster_nodes(pd_uint_t *n);

/* the published value of a node and its parser (unit-tested) */
size_t pd_dispatch_node_text(const pd_dispatch_node_t *n, u_char *buf,
    size_t size);
const char *pd_dispatch_node_parse(const u_char *p, size_t len,
    pd_dispatch_node_t *n);

void pd_dispatch_http_handler(pd_http_conn_t *hc);

#endif /* PD_DISPATCHER_H */
