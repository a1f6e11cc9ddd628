/*
 * pd_dispatcher_http.c: GET /v1/dispatch on the room's listeners, plain
 * and TLS, no token: the room's address policy, a per-address rate, the
 * query, the pick, and the answer built on the stack (the HTTP layer
 * copies it into the request's pool: nothing else is allocated).
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_dispatcher.h"

/* requests per client address are counted in windows of this */
#define PD_DISPATCH_WINDOW  10          /* seconds */

/* the longest answer: the addresses, escaped uid, and the policy */
#define PD_DISPATCH_ANSWER_SIZE                                              \
    (PD_DISPATCH_COUNT_MAX * (PD_DISPATCH_TEXT_SIZE + 3) + PD_UID_MAX * 6   \
     + 256)

static pd_addr_limit_t  pd_dispatch_limit = pd_addr_limit(PD_DISPATCH_WINDOW);

static pd_dispatch_conf_t *
pd_dispatch_conf(void)
{
    return pd_get_conf(pd_cycle, pd_dispatcher_module);
}

static void
pd_dispatch_refuse(pd_http_conn_t *hc, pd_uint_t status, const char *why,
    pd_uint_t stat)
{
    pd_dispatch_stat(stat);

    if (status == 429 || status == 503) {
        (void) pd_http_send_response(hc, status, "application/json",
                                     "Retry-After: 1\r\n", (u_char *) why,
                                     strlen(why));
        return;
    }

    (void) pd_http_send_error(hc, status, why);
}

static size_t
pd_dispatch_answer(pd_dispatch_conf_t *dcf, pd_room_conf_t *rcf,
    pd_dispatch_query_t *q, const pd_dispatch_addr_t **addrs, pd_uint_t n,
    u_char *buf, size_t size)
{
    u_char      *p, *last;
    pd_msec_t    hb;
    pd_uint_t    i;

    p = buf;
    last = buf + size;
    hb = dcf->heartbeat != PD_CONF_UNSET_MSEC ? dcf->heartbeat
                                              : rcf->heartbeat;

    /* a uid is of [A-Za-z0-9._:@-]: nothing to escape */
    p = pd_slprintf(p, last, "{\"uid\":\"%.*s\",\"addrs\":[",
                    (int) q->uid_len, q->uid);

    for (i = 0; i < n; i++) {
        p = pd_slprintf(p, last, "%s\"%.*s\"", i ? "," : "",
                        (int) addrs[i]->len, addrs[i]->text);
    }

    p = pd_slprintf(p, last, "],\"ttl\":%lu,\"hb\":%lu,"
                    "\"reconnect\":{\"base_ms\":%lu,\"max_ms\":%lu,"
                    "\"jitter\":%u.%02u}}\n",
                    (unsigned long) (dcf->ttl / 1000),
                    (unsigned long) (hb / 1000),
                    (unsigned long) dcf->reconnect_base,
                    (unsigned long) dcf->reconnect_max,
                    (unsigned) (dcf->reconnect_jitter / 100),
                    (unsigned) (dcf->reconnect_jitter % 100));

    return (size_t) (p - buf);
}

void
pd_dispatch_http_handler(pd_http_conn_t *hc)
{
    pd_dispatch_conf_t         *dcf;
    pd_room_conf_t             *rcf = hc->srv->ctx;
    pd_connection_t            *c = hc->connection;
    pd_dispatch_query_t         q;
    pd_dispatch_set_t           set;
    const pd_dispatch_addr_t   *addrs[PD_DISPATCH_COUNT_MAX];
    const char                 *err;
    u_char                      buf[PD_DISPATCH_ANSWER_SIZE];
    size_t                      len;
    pd_uint_t                   n;

    dcf = pd_dispatch_conf();

    if (hc->req.method != PD_HTTP_GET && hc->req.method != PD_HTTP_HEAD) {
        (void) pd_http_send_error(hc, 405, "method not allowed");
        return;
    }

    if ((rcf->deny_cidr
         && pd_cidr_match(rcf->deny_cidr, &c->sockaddr.sockaddr))
        || (rcf->allow_cidr
            && !pd_cidr_match(rcf->allow_cidr, &c->sockaddr.sockaddr)))
    {
        (void) pd_http_send_error(hc, 403, "address denied");
        return;
    }

    pd_time_update();

    if (pd_addr_limit_hit(&pd_dispatch_limit, &c->sockaddr.sockaddr,
                          pd_time_sec,
                          (pd_uint_t) dcf->max_requests_per_ip)
        != PD_OK)
    {
        pd_dispatch_refuse(hc, 429, "{\"error\":\"too many dispatch "
                           "requests from this address\"}\n",
                           PD_DISPATCH_STAT_LIMITED);
        return;
    }

    err = pd_dispatch_parse_query(&hc->req.args, &q);
    if (err != NULL) {
        pd_dispatch_refuse(hc, 400, err, PD_DISPATCH_STAT_BAD);
        return;
    }

    if (dcf->nodes != NULL) {
        set.nodes = dcf->nodes->elts;
        set.nnodes = dcf->nodes->nelts;

    } else {
        set.nodes = pd_dispatch_cluster_nodes(&set.nnodes);
    }

    set.count = (pd_uint_t) dcf->count;
    set.ssl = (c->ssl != NULL);

    n = pd_dispatch_pick(&set, &q, addrs);

    if (n == 0) {
        pd_dispatch_refuse(hc, 503, "{\"error\":\"no live room address "
                           "to dispatch to\"}\n", PD_DISPATCH_STAT_EMPTY);
        return;
    }

    len = pd_dispatch_answer(dcf, rcf, &q, addrs, n, buf, sizeof(buf));

    pd_dispatch_stat(PD_DISPATCH_STAT_ANSWERED);

    (void) pd_http_send_response(hc, 200, "application/json",
                                 "Cache-Control: no-store\r\n", buf, len);
}
