/*
 * pd_dispatcher_module.c: the dispatcher's directives (the nodes list
 * included), the reading of room.advertise into what this node
 * publishes, and the lifecycle: the room's hook for /v1/dispatch and, in
 * a cluster, the publishing and reading of the nodes in Redis.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_register.h"
#include "pd_dispatcher.h"

static void *pd_dispatch_create_conf(pd_cycle_t *cycle);
static const char *pd_dispatch_init_conf(pd_cycle_t *cycle, void *conf);
static const char *pd_dispatch_set_nodes(pd_conf_t *cf, pd_command_t *cmd,
    void *conf);
static pd_int_t pd_dispatch_init_process(pd_cycle_t *cycle);
static void pd_dispatch_exit_process(pd_cycle_t *cycle);
static void pd_dispatch_retire(pd_cycle_t *cycle);

static pd_conf_bounds_t  pd_dispatch_count_bounds = { 1,
                                                      PD_DISPATCH_COUNT_MAX };
static pd_conf_bounds_t  pd_dispatch_ttl_bounds = { 1000, 86400 * 1000 };
static pd_conf_bounds_t  pd_dispatch_weight_bounds = { 1, 1000 };
static pd_conf_bounds_t  pd_dispatch_backoff_bounds = { 100, 3600 * 1000 };
static pd_conf_bounds_t  pd_dispatch_jitter_bounds = { 0, 100 };
static pd_conf_bounds_t  pd_dispatch_hb_bounds = { 1000, 3600 * 1000 };
static pd_conf_bounds_t  pd_dispatch_rate_bounds = { 0, 1000000000 };

static pd_command_t  pd_dispatch_commands[] = {

    { "nodes", PD_CONF_ANY, pd_dispatch_set_nodes,
      offsetof(pd_dispatch_conf_t, nodes), NULL,
      "the room nodes clients are dispatched to, a list of {addr, idc, "
      "weight, net}: addr is one \"host:port [ssl]\" or a list of them "
      "(a node's ports), idc its data centre, weight its share of the "
      "uids (1 to 1000, default 1), net the client networks it serves "
      "(e.g. [cell]; default: all).  Without it, in a cluster "
      "(register.backend redis), the live nodes' room.advertise" },

    { "count", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_dispatch_conf_t, count), &pd_dispatch_count_bounds,
      "addresses in an answer, at most 16 (default: 3)" },

    { "ttl", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_dispatch_conf_t, ttl), &pd_dispatch_ttl_bounds,
      "how long a client may keep using an answer before it asks again "
      "(default: 5m)" },

    { "idc", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_dispatch_conf_t, idc), NULL,
      "this node's data centre, published with its room.advertise in a "
      "cluster (default: none)" },

    { "weight", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_dispatch_conf_t, weight), &pd_dispatch_weight_bounds,
      "this node's share of the uids, published with its room.advertise "
      "in a cluster (1 to 1000, default: 1)" },

    { "net", PD_CONF_LIST, pd_conf_set_list_slot,
      offsetof(pd_dispatch_conf_t, net), NULL,
      "the client networks (net=) this node serves, published with its "
      "room.advertise in a cluster (default: all)" },

    { "reconnect_base", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_dispatch_conf_t, reconnect_base),
      &pd_dispatch_backoff_bounds,
      "told to clients: the first wait before a reconnect after a "
      "failure, doubled per failure in a row (default: 1s)" },

    { "reconnect_max", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_dispatch_conf_t, reconnect_max),
      &pd_dispatch_backoff_bounds,
      "told to clients: the longest wait between reconnects "
      "(default: 2m)" },

    { "reconnect_jitter", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_dispatch_conf_t, reconnect_jitter),
      &pd_dispatch_jitter_bounds,
      "told to clients as a fraction: the part of each wait drawn at "
      "random, in percent (default: 50)" },

    { "heartbeat", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_dispatch_conf_t, heartbeat), &pd_dispatch_hb_bounds,
      "told to clients as \"hb\": the heartbeat to ask for with ?hb= "
      "(default: room.heartbeat)" },

    { "max_requests_per_ip", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_dispatch_conf_t, max_requests_per_ip),
      &pd_dispatch_rate_bounds,
      "dispatch requests one client address (an IPv6 client by its /64) "
      "may make in 10 seconds on a worker; beyond gets 429; 0 for no "
      "limit (default: 60)" },

    pd_null_command
};

/* in the order of PD_DISPATCH_STAT_* (pd_dispatcher.h) */
static pd_stats_counter_t  pd_dispatch_counters[] = {
    { "pushd_dispatch_total", "result=\"answered\"", "dispatch.answered",
      "dispatch requests, by result", PD_STATS_COUNTER },
    { "pushd_dispatch_total", "result=\"bad\"", "dispatch.bad",
      "dispatch requests, by result", PD_STATS_COUNTER },
    { "pushd_dispatch_total", "result=\"limited\"", "dispatch.limited",
      "dispatch requests, by result", PD_STATS_COUNTER },
    { "pushd_dispatch_total", "result=\"empty\"", "dispatch.empty",
      "dispatch requests, by result", PD_STATS_COUNTER },
    { NULL, NULL, NULL, NULL, 0 }
};

pd_module_t  pd_dispatcher_module = {
    "dispatcher",
    0,
    pd_dispatch_commands,
    pd_dispatch_create_conf,
    pd_dispatch_init_conf,
    NULL,
    pd_dispatch_init_process,
    pd_dispatch_exit_process,
    NULL,
    0,
    pd_dispatch_retire,
    NULL,
    pd_dispatch_counters,
    0,
    NULL
};

static void *
pd_dispatch_create_conf(pd_cycle_t *cycle)
{
    pd_dispatch_conf_t  *dcf;

    dcf = pd_pcalloc(cycle->pool, sizeof(pd_dispatch_conf_t));
    if (dcf == NULL) {
        return NULL;
    }

    dcf->count = PD_CONF_UNSET;
    dcf->ttl = PD_CONF_UNSET_MSEC;
    dcf->weight = PD_CONF_UNSET;
    dcf->reconnect_base = PD_CONF_UNSET_MSEC;
    dcf->reconnect_max = PD_CONF_UNSET_MSEC;
    dcf->reconnect_jitter = PD_CONF_UNSET;
    dcf->heartbeat = PD_CONF_UNSET_MSEC;
    dcf->max_requests_per_ip = PD_CONF_UNSET;

    return dcf;
}

/* a YAML scalar, NULL when the node is not one */
static const char *
pd_dispatch_scalar(yaml_node_t *node, pd_str_t *s)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.length == 0) {
        return "must be a string";
    }

    s->data = node->data.scalar.value;
    s->len = node->data.scalar.length;

    return NULL;
}

static const char *
pd_dispatch_node_addr(pd_conf_t *cf, yaml_node_t *v, pd_dispatch_node_t *n)
{
    pd_str_t    s;
    const char *err;

    if (n->naddrs == PD_DISPATCH_ADDRS_MAX) {
        cf->err_node = v;
        return "has a node with more than 8 addresses";
    }

    if (pd_dispatch_scalar(v, &s) != NULL) {
        cf->err_node = v;
        return "has an addr that is not a string";
    }

    err = pd_dispatch_parse_addr(s.data, s.len, 1, &n->addrs[n->naddrs]);
    if (err != NULL) {
        cf->err_node = v;
        (void) snprintf((char *) cf->errbuf, cf->errlen,
                        "has a bad addr \"%.*s\": it %s",
                        (int) pd_min(s.len, 80), s.data, err);
        return (const char *) cf->errbuf;
    }

    n->naddrs++;
    return PD_CONF_OK;
}

/* "addr": one address or a list of them */
static const char *
pd_dispatch_node_addrs(pd_conf_t *cf, yaml_node_t *v, pd_dispatch_node_t *n)
{
    yaml_node_item_t  *i;
    const char        *rv;

    if (v->type != YAML_SEQUENCE_NODE) {
        return pd_dispatch_node_addr(cf, v, n);
    }

    for (i = v->data.sequence.items.start; i < v->data.sequence.items.top;
         i++)
    {
        rv = pd_dispatch_node_addr(cf, yaml_document_get_node(cf->doc, *i),
                                   n);
        if (rv != PD_CONF_OK) {
            return rv;
        }
    }

    return PD_CONF_OK;
}

static const char *
pd_dispatch_node_nets(pd_conf_t *cf, yaml_node_t *v, pd_dispatch_node_t *n)
{
    yaml_node_item_t  *i;
    yaml_node_t       *item;
    pd_str_t           s;

    if (v->type != YAML_SEQUENCE_NODE) {
        cf->err_node = v;
        return "has a net that is not a list of names";
    }

    for (i = v->data.sequence.items.start; i < v->data.sequence.items.top;
         i++)
    {
        item = yaml_document_get_node(cf->doc, *i);
        cf->err_node = item;

        if (n->nnets == PD_DISPATCH_NETS_MAX) {
            return "has a node serving more than 4 nets";
        }

        if (pd_dispatch_scalar(item, &s) != NULL
            || pd_dispatch_parse_name(s.data, s.len, &n->nets[n->nnets])
               != NULL)
        {
            return "has a bad net name (1 to 32 of [A-Za-z0-9._-])";
        }

        n->nnets++;
    }

    cf->err_node = NULL;
    return PD_CONF_OK;
}

/* one node: {addr, idc, weight, net} */
static const char *
pd_dispatch_set_node(pd_conf_t *cf, void *conf, yaml_node_t *node)
{
    pd_dispatch_conf_t  *dcf = conf;
    pd_dispatch_node_t  *n;
    const char          *rv, *key;
    yaml_node_t         *k, *v;
    yaml_node_pair_t    *pair;
    pd_str_t             s;
    pd_int_t             w;

    if (node->type != YAML_MAPPING_NODE) {
        cf->err_node = node;
        return "must be a list of {addr, idc, weight, net}";
    }

    if (dcf->nodes->nelts == PD_DISPATCH_NODES_MAX) {
        cf->err_node = node;
        return "lists more than 256 nodes";
    }

    n = pd_array_push(dcf->nodes);
    if (n == NULL) {
        return "out of memory";
    }

    pd_memzero(n, sizeof(pd_dispatch_node_t));
    n->weight = 1;

    for (pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top; pair++)
    {
        k = yaml_document_get_node(cf->doc, pair->key);
        v = yaml_document_get_node(cf->doc, pair->value);
        key = k->type == YAML_SCALAR_NODE ? (char *) k->data.scalar.value
                                          : "";
        rv = PD_CONF_OK;

        if (strcmp(key, "addr") == 0) {
            rv = pd_dispatch_node_addrs(cf, v, n);

        } else if (strcmp(key, "idc") == 0) {
            if (pd_dispatch_scalar(v, &s) != NULL
                || pd_dispatch_parse_name(s.data, s.len, &n->idc) != NULL)
            {
                cf->err_node = v;
                rv = "has a bad idc name (1 to 32 of [A-Za-z0-9._-])";
            }

        } else if (strcmp(key, "weight") == 0) {
            w = (pd_dispatch_scalar(v, &s) == NULL)
                ? pd_atoi(s.data, s.len) : -1;

            if (w < 1 || w > 1000) {
                cf->err_node = v;
                rv = "has a weight that is not 1 to 1000";
            }

            n->weight = (uint32_t) w;

        } else if (strcmp(key, "net") == 0) {
            rv = pd_dispatch_node_nets(cf, v, n);

        } else {
            cf->err_node = k;
            rv = "has an unknown key (addr, idc, weight, net)";
        }

        if (rv != PD_CONF_OK) {
            return rv;
        }
    }

    if (n->naddrs == 0) {
        cf->err_node = node;
        return "has a node without \"addr\"";
    }

    /* its first address names it: the order of the list does not count */
    n->id = pd_dispatch_node_id(n->addrs[0].text, n->addrs[0].len);

    return PD_CONF_OK;
}

static const char *
pd_dispatch_set_nodes(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    pd_dispatch_conf_t  *dcf = conf;

    (void) cmd;

    return pd_conf_set_each(cf, dcf, &dcf->nodes, sizeof(pd_dispatch_node_t),
                            8, 1, "must be a list of {addr, idc, weight, "
                            "net}", pd_dispatch_set_node);
}

/* this node as it publishes itself: room.advertise and the directives */
static const char *
pd_dispatch_self(pd_cycle_t *cycle, pd_dispatch_conf_t *dcf)
{
    pd_room_conf_t      *rcf;
    pd_dispatch_node_t  *n = &dcf->self;
    pd_str_t            *s;
    pd_uint_t            i;

    rcf = pd_get_conf(cycle, pd_room_module);
    n->weight = (uint32_t) dcf->weight;

    if (dcf->idc.data != NULL
        && pd_dispatch_parse_name(dcf->idc.data, dcf->idc.len, &n->idc)
           != NULL)
    {
        return "\"idc\" must be a name of 1 to 32 of [A-Za-z0-9._-]";
    }

    if (dcf->net != NULL) {
        if (dcf->net->nelts > PD_DISPATCH_NETS_MAX) {
            return "\"net\" names more than 4 nets";
        }

        s = dcf->net->elts;

        for (i = 0; i < dcf->net->nelts; i++) {
            if (pd_dispatch_parse_name(s[i].data, s[i].len, &n->nets[i])
                != NULL)
            {
                return "\"net\" must be names of 1 to 32 of "
                       "[A-Za-z0-9._-]";
            }
        }

        n->nnets = (uint8_t) dcf->net->nelts;
    }

    if (rcf->advertise == NULL) {
        return PD_CONF_OK;
    }

    if (rcf->advertise->nelts > PD_DISPATCH_ADDRS_MAX) {
        return "needs room.advertise to list at most 8 addresses";
    }

    s = rcf->advertise->elts;

    for (i = 0; i < rcf->advertise->nelts; i++) {
        if (pd_dispatch_parse_addr(s[i].data, s[i].len, 1, &n->addrs[i])
            != NULL)
        {
            return "needs each room.advertise entry to be "
                   "\"host:port [ssl]\"";
        }
    }

    n->naddrs = (uint8_t) rcf->advertise->nelts;

    return PD_CONF_OK;
}

static const char *
pd_dispatch_init_conf(pd_cycle_t *cycle, void *conf)
{
    pd_dispatch_conf_t  *dcf = conf;
    pd_register_conf_t  *gcf;
    pd_room_conf_t      *rcf;
    pd_uint_t            cluster;
    const char          *rv;

    pd_conf_init_value(dcf->count, 3);
    pd_conf_init_msec(dcf->ttl, 300 * 1000);
    pd_conf_init_value(dcf->weight, 1);
    pd_conf_init_msec(dcf->reconnect_base, 1000);
    pd_conf_init_msec(dcf->reconnect_max, 120 * 1000);
    pd_conf_init_value(dcf->reconnect_jitter, 50);
    pd_conf_init_value(dcf->max_requests_per_ip, 60);

    rcf = pd_get_conf(cycle, pd_room_module);
    gcf = pd_get_conf(cycle, pd_register_module);

    if (!pd_module_enabled(cycle, pd_dispatcher_module)) {
        if (rcf->advertise != NULL) {
            return "section is needed for room.advertise: it publishes "
                   "the addresses";
        }

        return PD_CONF_OK;
    }

    if (dcf->reconnect_max < dcf->reconnect_base) {
        return "\"reconnect_max\" must not be less than \"reconnect_base\"";
    }

    rv = pd_dispatch_self(cycle, dcf);
    if (rv != PD_CONF_OK) {
        return rv;
    }

    cluster = pd_module_enabled(cycle, pd_register_module)
              && gcf->backend == PD_REGISTER_REDIS;

    if (dcf->nodes == NULL && !cluster) {
        return "needs \"nodes\", or register.backend redis, where the "
               "nodes publish their room.advertise";
    }

    dcf->publish = cluster && dcf->self.naddrs > 0;

    return PD_CONF_OK;
}

static pd_int_t
pd_dispatch_init_process(pd_cycle_t *cycle)
{
    pd_dispatch_conf_t  *dcf;

    dcf = pd_get_conf(cycle, pd_dispatcher_module);

    if (dcf->publish || dcf->nodes == NULL) {
        if (pd_dispatch_cluster_init(cycle, dcf, dcf->nodes == NULL)
            != PD_OK)
        {
            return PD_ERROR;
        }
    }

    pd_room_dispatch_handler = pd_dispatch_http_handler;

    return PD_OK;
}

static void
pd_dispatch_retire(pd_cycle_t *cycle)
{
    (void) cycle;

    /* a node whose workers all retire (a stop) leaves the answers now;
     * on a reload the new workers publish it again */
    pd_dispatch_cluster_retire();
}

static void
pd_dispatch_exit_process(pd_cycle_t *cycle)
{
    (void) cycle;

    pd_room_dispatch_handler = NULL;
    pd_dispatch_cluster_exit();
}
