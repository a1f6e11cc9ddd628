/*
 * pd_center_users.c: presence and kick.
 *   GET  /v1/users/{uid}        the uid's live connections, any worker
 *   POST /v1/users/{uid}/kick   {"device"?, "reason"?}: close them
 */

#include "pd_core.h"
#include "pd_center.h"
#include "pd_register.h"
#include "pd_room.h"

#include <jansson.h>

typedef struct {
    pd_http_conn_t  *hc;
    pd_str_t         uid;
    const char      *device;     /* NULL: every device */
    const char      *reason;
} pd_center_users_ctx_t;

pd_int_t
pd_center_send_json(pd_http_conn_t *hc, pd_uint_t status, json_t *obj)
{
    char    *buf;
    size_t   n;

    if (obj == NULL) {
        return pd_http_send_error(hc, 500, "out of memory");
    }

    n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    buf = (n > 0) ? pd_pnalloc(hc->pool, n + 1) : NULL;

    if (buf == NULL) {
        json_decref(obj);
        return pd_http_send_error(hc, 500, "out of memory");
    }

    (void) json_dumpb(obj, buf, n, JSON_COMPACT);
    buf[n++] = '\n';
    json_decref(obj);

    return pd_http_send_response(hc, status, "application/json", NULL,
                                 (u_char *) buf, n);
}

static void
pd_center_presence(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n)
{
    pd_center_users_ctx_t  *ctx = data;
    pd_core_conf_t         *ccf;
    json_t                 *obj, *conns, *conn, *apps;
    pd_uint_t               i, j, live;

    if (rc != PD_OK) {
        (void) pd_http_send_error(ctx->hc, 503, "register unavailable");
        return;
    }

    ccf = pd_get_conf(pd_cycle, pd_core_module);
    conns = json_array();
    live = 0;

    for (i = 0; i < n; i++) {
        live += !info[i].lingering;

        apps = json_array();
        for (j = 0; j < info[i].napps; j++) {
            json_array_append_new(apps,
                                  json_string((char *) info[i].apps[j]));
        }

        conn = json_pack("{s:s,s:o,s:s%,s:I,s:i}",
                         "device", (char *) info[i].device,
                         "apps", apps,
                         "node", info[i].node[0] ? (char *) info[i].node
                                                 : (char *) ccf->node_id.data,
                         info[i].node[0] ? strlen((char *) info[i].node)
                                         : ccf->node_id.len,
                         "since", (json_int_t) info[i].since,
                         "worker", (int) info[i].wslot);
        json_object_set_new(conn, "state", json_string(info[i].lingering
                                                       ? "lingering"
                                                       : "online"));
        json_array_append_new(conns, conn);
    }

    obj = json_pack("{s:s%,s:b,s:o}", "uid", ctx->uid.data, ctx->uid.len,
                    "online", live > 0, "connections", conns);

    (void) pd_center_send_json(ctx->hc, 200, obj);
}

/* the room's answer; the request's cleanup releases the kick */
static void
pd_center_kicked(void *data, pd_int_t rc, pd_uint_t kicked)
{
    pd_center_users_ctx_t  *ctx = data;

    if (rc != PD_OK) {
        (void) pd_http_send_error(ctx->hc, 503, "register unavailable");
        return;
    }

    (void) pd_center_send_json(ctx->hc, 200,
                               json_pack("{s:s%,s:i}", "uid", ctx->uid.data,
                                         ctx->uid.len, "kicked",
                                         (int) kicked));
}

static void
pd_center_kick_cleanup(void *data)
{
    pd_room_kick_release(data);
}

static void
pd_center_kick(pd_http_conn_t *hc, pd_center_users_ctx_t *ctx)
{
    pd_room_kick_t     *k;
    pd_pool_cleanup_t  *cln;
    pd_str_t            device, reason;

    device.data = (u_char *) (ctx->device ? ctx->device : "");
    device.len = strlen((char *) device.data);
    reason.data = (u_char *) ctx->reason;
    reason.len = strlen(ctx->reason);

    cln = pd_pool_cleanup_add(hc->pool, 0);
    k = (cln != NULL) ? pd_room_kick_uid(&ctx->uid, &device, &reason,
                                         pd_center_kicked, ctx)
                      : NULL;

    if (k == NULL) {
        (void) pd_http_send_error(hc, 500, "out of memory");
        return;
    }

    /* held before any answer: the answer may end the request at once */
    cln->handler = pd_center_kick_cleanup;
    cln->data = k;

    if (pd_room_kick_start(k) != PD_OK) {
        (void) pd_http_send_error(hc, 503, "the register is not enabled");
    }
}

/* "/v1/users/{uid}[/kick]": the decoded uid and whether it is a kick */
static const char *
pd_center_users_path(pd_http_conn_t *hc, pd_center_users_ctx_t *ctx,
    pd_uint_t *kick)
{
    pd_str_t   raw;
    u_char    *p, *last, *slash;
    size_t     len;

    p = hc->req.path.data + sizeof("/v1/users/") - 1;
    last = hc->req.path.data + hc->req.path.len;

    slash = memchr(p, '/', (size_t) (last - p));
    *kick = 0;

    if (slash != NULL) {
        if ((size_t) (last - slash) != sizeof("/kick") - 1
            || memcmp(slash, "/kick", sizeof("/kick") - 1) != 0)
        {
            return "not found";
        }
        *kick = 1;
        last = slash;
    }

    raw.data = p;
    raw.len = (size_t) (last - p);

    ctx->uid.data = pd_pnalloc(hc->pool, raw.len + 1);
    if (ctx->uid.data == NULL || raw.len == 0 || raw.len > 3 * PD_UID_MAX
        || pd_http_unescape(&raw, ctx->uid.data, &len) != PD_OK)
    {
        return "invalid uid";
    }

    ctx->uid.len = len;

    if (pd_token_valid_name(&ctx->uid, PD_UID_MAX) != PD_OK) {
        return "invalid uid";
    }

    return NULL;
}

static const char *
pd_center_kick_body(pd_http_conn_t *hc, pd_center_users_ctx_t *ctx)
{
    json_t        *body, *v;
    json_error_t   jerr;
    const char    *s;
    pd_str_t       dev;

    ctx->reason = "kicked";
    ctx->device = NULL;

    if (hc->body.len == 0) {
        return NULL;
    }

    body = json_loadb((char *) hc->body.data, hc->body.len,
                      JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL || !json_is_object(body)) {
        json_decref(body);
        return "the body must be a JSON object";
    }

    v = json_object_get(body, "device");
    if (v != NULL && !json_is_null(v)) {
        s = json_string_value(v);
        dev.data = (u_char *) s;
        dev.len = s ? strlen(s) : 0;

        if (s == NULL || pd_token_valid_name(&dev, PD_DEVICE_MAX) != PD_OK) {
            json_decref(body);
            return "\"device\" must be a device name";
        }

        ctx->device = (char *) pd_pstrdup(hc->pool, &dev);
    }

    v = json_object_get(body, "reason");
    if (v != NULL && !json_is_null(v)) {
        s = json_string_value(v);
        if (s == NULL || strlen(s) > PD_ROOM_KICK_MAX) {
            json_decref(body);
            return "\"reason\" must be a string of at most 256 bytes";
        }

        dev.data = (u_char *) s;
        dev.len = strlen(s);
        ctx->reason = (char *) pd_pstrdup(hc->pool, &dev);
    }

    json_decref(body);

    if (ctx->reason == NULL) {
        return "out of memory";
    }

    return NULL;
}

void
pd_center_users(pd_http_conn_t *hc)
{
    pd_center_users_ctx_t  *ctx;
    const char             *err;
    pd_uint_t               kick;

    ctx = pd_pcalloc(hc->pool, sizeof(pd_center_users_ctx_t));
    if (ctx == NULL) {
        (void) pd_http_send_error(hc, 500, "out of memory");
        return;
    }

    ctx->hc = hc;

    err = pd_center_users_path(hc, ctx, &kick);
    if (err != NULL) {
        (void) pd_http_send_error(hc, err[0] == 'n' ? 404 : 400, err);
        return;
    }

    if (kick ? hc->req.method != PD_HTTP_POST
             : (hc->req.method != PD_HTTP_GET
                && hc->req.method != PD_HTTP_HEAD))
    {
        (void) pd_http_send_error(hc, 405, "method not allowed");
        return;
    }

    if (pd_register == NULL) {
        (void) pd_http_send_error(hc, 503, "the register is not enabled");
        return;
    }

    if (!kick) {
        (void) pd_register->lookup(ctx->uid.data, ctx->uid.len,
                                   pd_center_presence, ctx);
        return;
    }

    err = pd_center_kick_body(hc, ctx);
    if (err != NULL) {
        (void) pd_http_send_error(hc, 400, err);
        return;
    }

    pd_center_kick(hc, ctx);
}
