/*
 * pd_center_http.c: authentication and routing of the center API.
 */

#include "pd_core.h"
#include "pd_center.h"

typedef void (*pd_center_route_pt)(pd_http_conn_t *hc);

typedef struct {
    pd_uint_t            method;
    const char          *path;
    pd_center_route_pt   handler;
} pd_center_route_t;

static pd_center_route_t  pd_center_routes[] = {
    { PD_HTTP_GET, "/v1/stats", pd_center_stats },
    { PD_HTTP_GET, "/v1/workers", pd_center_workers },
    { PD_HTTP_POST, "/v1/push", pd_center_push },
    { PD_HTTP_POST, "/v1/broadcast", pd_center_broadcast },
    { PD_HTTP_GET, "/metrics", pd_center_metrics },
    { 0, NULL, NULL }
};

static const char  pd_center_unauthorized[] = "{\"error\":\"unauthorized\"}\n";

/* compares without leaking how many leading bytes matched */
static pd_int_t
pd_center_key_eq(pd_str_t *a, pd_str_t *b)
{
    size_t   i;
    u_char   diff;

    if (a->len != b->len) {
        return 0;
    }

    diff = 0;
    for (i = 0; i < a->len; i++) {
        diff |= a->data[i] ^ b->data[i];
    }

    return diff == 0;
}

static pd_int_t
pd_center_authorized(pd_http_conn_t *hc, pd_center_conf_t *ccf)
{
    pd_str_t  *h, key;

    h = pd_http_header_find(&hc->req, "Authorization");

    if (h == NULL || h->len < sizeof("Bearer ") - 1
        || strncasecmp((char *) h->data, "Bearer ", sizeof("Bearer ") - 1)
           != 0)
    {
        return 0;
    }

    key.data = h->data + sizeof("Bearer ") - 1;
    key.len = h->len - (sizeof("Bearer ") - 1);

    return pd_center_key_eq(&key, &ccf->api_key);
}

/*
 * At accept: an address outside center.allow is answered 403 before it
 * sends a byte, so it cannot make the worker hold a body for it.
 */
pd_int_t
pd_center_access(pd_http_conn_t *hc)
{
    pd_center_conf_t  *ccf = hc->srv->ctx;

    if (ccf->allow_cidr != NULL
        && !pd_cidr_match(ccf->allow_cidr,
                          &hc->connection->sockaddr.sockaddr))
    {
        (void) pd_http_send_error(hc, 403, "address not allowed");
        return PD_DONE;
    }

    return PD_OK;
}

/* wrong keys per address (center.max_auth_failures, per 10 s) */
static pd_addr_limit_t  pd_center_fails = pd_addr_limit(10);

/* after the head: the key, before any byte of the body is read */
pd_int_t
pd_center_head(pd_http_conn_t *hc)
{
    pd_center_conf_t  *ccf = hc->srv->ctx;
    struct sockaddr   *sa = &hc->connection->sockaddr.sockaddr;

    pd_time_update();

    if (pd_addr_limit_check(&pd_center_fails, sa, pd_time_sec,
                            (pd_uint_t) ccf->max_auth_failures)
        != PD_OK)
    {
        hc->keepalive = 0;
        (void) pd_http_send_error(hc, 429, "too many requests with a wrong "
                                  "or no key from this address");
        return PD_DONE;
    }

    /* the admin page's static files hold no data: the page asks for the
     * key and sends it with every API call, as any client does */
    if (pd_center_is_admin(hc)
        && (hc->req.method == PD_HTTP_GET || hc->req.method == PD_HTTP_HEAD))
    {
        return PD_OK;
    }

    if (!pd_center_authorized(hc, ccf)) {
        pd_addr_limit_count(&pd_center_fails, sa, pd_time_sec);
        (void) pd_http_send_response(hc, 401, "application/json",
                                     "WWW-Authenticate: Bearer\r\n",
                                     (u_char *) pd_center_unauthorized,
                                     sizeof(pd_center_unauthorized) - 1);
        return PD_DONE;
    }

    return PD_OK;
}

/* a whole request from an allowed address with the key */
void
pd_center_http_handler(pd_http_conn_t *hc)
{
    pd_center_route_t  *r;
    pd_uint_t           path_found;
    size_t              len;

    if (pd_center_is_admin(hc)) {
        pd_center_admin(hc);
        return;
    }

    if (hc->req.path.len > sizeof("/v1/users/") - 1
        && memcmp(hc->req.path.data, "/v1/users/", sizeof("/v1/users/") - 1)
           == 0)
    {
        pd_center_users(hc);
        return;
    }

    path_found = 0;

    for (r = pd_center_routes; r->path != NULL; r++) {
        len = strlen(r->path);

        if (hc->req.path.len != len
            || memcmp(hc->req.path.data, r->path, len) != 0)
        {
            continue;
        }

        path_found = 1;

        if (r->method == hc->req.method
            || (r->method == PD_HTTP_GET && hc->req.method == PD_HTTP_HEAD))
        {
            r->handler(hc);
            return;
        }
    }

    if (path_found) {
        (void) pd_http_send_error(hc, 405, "method not allowed");
        return;
    }

    (void) pd_http_send_error(hc, 404, "not found");
}
