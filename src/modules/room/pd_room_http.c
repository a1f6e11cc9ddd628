/*
 * pd_room_http.c: plain HTTP on the room ports: the WebSocket upgrade at
 * "/connect", the dispatcher's "/v1/dispatch" when it is on, a short
 * status page at "/" for load balancers and operators; everything else
 * is 404.
 */

#include "pd_core.h"
#include "pd_room.h"

pd_room_dispatch_pt  pd_room_dispatch_handler;

void
pd_room_http_handler(pd_http_conn_t *hc)
{
    pd_core_conf_t  *ccf;
    pd_str_t        *path = &hc->req.path;
    u_char           buf[256], *p;

    if (path->len == sizeof("/connect") - 1
        && memcmp(path->data, "/connect", sizeof("/connect") - 1) == 0)
    {
        pd_room_upgrade(hc);
        return;
    }

    if (pd_room_dispatch_handler != NULL
        && path->len == sizeof("/v1/dispatch") - 1
        && memcmp(path->data, "/v1/dispatch", sizeof("/v1/dispatch") - 1)
           == 0)
    {
        pd_room_dispatch_handler(hc);
        return;
    }

    if (hc->req.method != PD_HTTP_GET && hc->req.method != PD_HTTP_HEAD) {
        (void) pd_http_send_error(hc, 405, "method not allowed");
        return;
    }

    if (path->len != 1 || path->data[0] != '/') {
        (void) pd_http_send_error(hc, 404, "not found");
        return;
    }

    ccf = pd_get_conf(pd_cycle, pd_core_module);

    p = pd_slprintf(buf, buf + sizeof(buf),
                    "pushd " PD_VERSION "\nnode: %.*s\nworker: %ld\n"
                    "connections: %lu\n",
                    (int) ccf->node_id.len, ccf->node_id.data,
                    (long) pd_worker, (unsigned long) pd_active_connections);

    (void) pd_http_send_response(hc, 200, "text/plain", NULL, buf,
                                 (size_t) (p - buf));
}
