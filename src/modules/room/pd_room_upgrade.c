/*
 * pd_room_upgrade.c: GET /connect: access policy, limits, the token, the
 * register entry, then the 101 answer and the welcome frame.  Every
 * refusal is an HTTP status before any upgrade.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_register.h"


#define PD_ROOM_ARG_MAX  512

typedef struct {
    pd_str_t     uid;
    pd_str_t     device;
    pd_str_t     apps;
    pd_str_t     expires;
    pd_str_t     token;
    pd_str_t     hb;
    pd_str_t     sid;
    u_char       buf[7][PD_ROOM_ARG_MAX];
} pd_room_args_t;

static pd_msec_t  pd_room_rate_second;
static pd_uint_t  pd_room_rate_count;

/* failed handshakes per client address (an IPv6 client by its /64) */
#define PD_ROOM_FAIL_WINDOW  10         /* seconds */

static pd_addr_limit_t  pd_room_fails = pd_addr_limit(PD_ROOM_FAIL_WINDOW);

static pd_room_conn_t *pd_room_accept(pd_http_conn_t *hc,
    pd_room_args_t *a, uint32_t hb);

/* a decoded copy of query argument `name`; NULL when absent, or a phrase */
static const char *
pd_room_arg(pd_str_t *args, const char *name, pd_str_t *out, u_char *buf)
{
    pd_str_t  raw;
    size_t    len;

    if (pd_http_arg(args, name, &raw) != PD_OK || raw.len == 0) {
        out->len = 0;
        out->data = NULL;
        return NULL;
    }

    if (raw.len >= PD_ROOM_ARG_MAX
        || pd_http_unescape(&raw, buf, &len) != PD_OK)
    {
        return "bad";
    }

    out->data = buf;
    out->len = len;
    return NULL;
}

static const char *
pd_room_parse_args(pd_http_conn_t *hc, pd_room_args_t *a)
{
    pd_str_t  *args = &hc->req.args;

    if (pd_room_arg(args, "uid", &a->uid, a->buf[0])
        || pd_room_arg(args, "device", &a->device, a->buf[1])
        || pd_room_arg(args, "apps", &a->apps, a->buf[2])
        || pd_room_arg(args, "expires", &a->expires, a->buf[3])
        || pd_room_arg(args, "token", &a->token, a->buf[4])
        || pd_room_arg(args, "hb", &a->hb, a->buf[5])
        || pd_room_arg(args, "sid", &a->sid, a->buf[6]))
    {
        return "malformed query argument";
    }

    if (a->uid.len == 0) {
        return "missing uid";
    }

    if (a->device.len == 0) {
        return "missing device";
    }

    if (a->expires.len == 0) {
        return "missing expires";
    }

    if (a->token.len == 0) {
        return "missing token";
    }

    if (pd_token_valid_name(&a->uid, PD_UID_MAX) != PD_OK) {
        return "invalid uid";
    }

    if (pd_token_valid_name(&a->device, PD_DEVICE_MAX) != PD_OK) {
        return "invalid device";
    }

    return NULL;
}

/* splits "a,b,c" into rc->apps; a phrase on a bad or excess name */
static const char *
pd_room_parse_apps(pd_room_conn_t *rc, pd_str_t *apps, pd_uint_t max)
{
    pd_str_t   name;
    u_char    *p, *last, *comma;

    rc->napps = 0;

    if (apps->len == 0) {
        return NULL;
    }

    p = apps->data;
    last = p + apps->len;

    while (p <= last) {
        comma = memchr(p, ',', (size_t) (last - p));
        if (comma == NULL) {
            comma = last;
        }

        name.data = p;
        name.len = (size_t) (comma - p);

        if (pd_token_valid_name(&name, PD_APP_MAX) != PD_OK) {
            return "invalid app name";
        }

        if (!pd_room_app_allowed(rc->conf, name.data, name.len)) {
            return "unknown app";
        }

        if (rc->napps >= max) {
            return "too many apps";
        }

        rc->apps[rc->napps] = pd_room_app_get(name.data, name.len);
        if (rc->apps[rc->napps] == 0) {
            return "too many distinct apps on this worker";
        }
        rc->napps++;

        p = comma + 1;
    }

    return NULL;
}

static pd_int_t
pd_room_check_upgrade(pd_http_conn_t *hc)
{
    pd_str_t  *h;

    h = pd_http_header_find(&hc->req, "Upgrade");
    if (h == NULL || !pd_http_header_has_token(h, "websocket")
        || !hc->req.upgrade)
    {
        (void) pd_http_send_response(hc, 426, "application/json",
                                     "Upgrade: websocket\r\n",
                                     (u_char *) "{\"error\":\"a WebSocket "
                                     "upgrade is required\"}\n",
                                     sizeof("{\"error\":\"a WebSocket "
                                            "upgrade is required\"}\n")
                                     - 1);
        return PD_ERROR;
    }

    h = pd_http_header_find(&hc->req, "Sec-WebSocket-Version");
    if (h == NULL || h->len != 2 || h->data[0] != '1' || h->data[1] != '3') {
        (void) pd_http_send_response(hc, 426, "application/json",
                                     "Sec-WebSocket-Version: 13\r\n",
                                     (u_char *) "{\"error\":\"WebSocket "
                                     "version 13 is required\"}\n",
                                     sizeof("{\"error\":\"WebSocket "
                                            "version 13 is required\"}\n")
                                     - 1);
        return PD_ERROR;
    }

    return PD_OK;
}

static pd_int_t
pd_room_check_failures(pd_room_conf_t *rcf, pd_connection_t *c)
{
    return pd_addr_limit_check(&pd_room_fails, &c->sockaddr.sockaddr,
                               pd_time_sec,
                               (pd_uint_t) rcf->max_auth_failures);
}

static void
pd_room_count_failure(pd_connection_t *c)
{
    pd_addr_limit_count(&pd_room_fails, &c->sockaddr.sockaddr, pd_time_sec);
}

static pd_int_t
pd_room_check_rate(pd_room_conf_t *rcf)
{
    pd_msec_t  sec = pd_current_msec / 1000;

    if (sec != pd_room_rate_second) {
        pd_room_rate_second = sec;
        pd_room_rate_count = 0;
    }

    return ++pd_room_rate_count <= (pd_uint_t) rcf->handshake_rate;
}

static void
pd_room_refuse(pd_http_conn_t *hc, pd_uint_t status, const char *why)
{
    pd_log_error(PD_LOG_INFO, hc->connection->log, 0,
                 "WebSocket upgrade refused with %lu: %s",
                 (unsigned long) status, why);
    pd_room_stat(PD_ROOM_STAT_REJECTED);

    if (status == 503 || status == 429) {
        (void) pd_http_send_response(hc, status, "application/json",
                                     "Retry-After: 1\r\n", NULL, 0);
        return;
    }

    (void) pd_http_send_error(hc, status, why);
}

void
pd_room_upgrade(pd_http_conn_t *hc)
{
    pd_room_conf_t   *rcf = hc->srv->ctx;
    pd_connection_t  *c = hc->connection;
    pd_room_args_t   *a;
    pd_str_t         *key;
    const char       *err;
    pd_int_t          n;
    uint32_t          hb;

    /*
     * A refused upgrade closes the connection: a client that pipelines
     * handshakes after a refusal gets no second try on it.
     */
    hc->keepalive = 0;

    if (hc->req.method != PD_HTTP_GET) {
        (void) pd_http_send_error(hc, 405, "method not allowed");
        return;
    }

    if (pd_room_check_upgrade(hc) != PD_OK) {
        return;
    }

    key = pd_http_header_find(&hc->req, "Sec-WebSocket-Key");
    if (key == NULL) {
        pd_room_refuse(hc, 400, "missing Sec-WebSocket-Key");
        return;
    }

    if (pd_ws_key_valid(key->data, key->len) != PD_OK) {
        pd_room_refuse(hc, 400, "invalid Sec-WebSocket-Key");
        return;
    }

    if ((rcf->deny_cidr
         && pd_cidr_match(rcf->deny_cidr, &c->sockaddr.sockaddr))
        || (rcf->allow_cidr
            && !pd_cidr_match(rcf->allow_cidr, &c->sockaddr.sockaddr)))
    {
        pd_room_refuse(hc, 403, "address denied");
        return;
    }

    pd_time_update();

    if (pd_room_check_failures(rcf, c) != PD_OK) {
        pd_room_refuse(hc, 429, "too many failed handshakes from this "
                       "address");
        return;
    }

    a = pd_palloc(hc->pool, sizeof(pd_room_args_t));
    if (a == NULL) {
        pd_room_refuse(hc, 503, "out of memory");
        return;
    }

    err = pd_room_parse_args(hc, a);
    if (err != NULL) {
        pd_room_count_failure(c);
        pd_room_refuse(hc, 400, err);
        return;
    }

    if (pd_token_check(&rcf->auth_secret, &a->uid, &a->device, &a->expires,
                       &a->token, pd_time_sec, &err)
        != PD_OK)
    {
        pd_room_count_failure(c);
        pd_room_stat(PD_ROOM_STAT_AUTH_FAILURES);
        pd_log_error(PD_LOG_INFO, c->log, 0, "auth failed for uid \"%.*s\": "
                     "%s", (int) a->uid.len, a->uid.data, err);
        (void) pd_http_send_error(hc, err && strcmp(err, "bad expires") == 0
                                      ? 400 : 401, err);
        return;
    }

    /* only handshakes that hold a valid token use up the rate */
    if (!pd_room_check_rate(rcf)) {
        pd_room_refuse(hc, 503, "handshake rate exceeded");
        return;
    }

    hb = (uint32_t) (rcf->heartbeat / 1000);

    if (a->hb.len) {
        n = pd_atoi(a->hb.data, a->hb.len);
        if (n <= 0) {
            pd_room_refuse(hc, 400, "invalid hb");
            return;
        }

        /* a client asks; the bounds decide */
        hb = (uint32_t) pd_max((pd_msec_t) n, rcf->heartbeat_min / 1000);
        hb = (uint32_t) pd_min((pd_msec_t) hb, rcf->heartbeat_max / 1000);
    }

    /* a flash reconnect: its session back if it still lingers */
    if (a->sid.len && rcf->linger
        && pd_room_resume(hc, &a->uid, &a->device, &a->sid, hb) == PD_OK)
    {
        return;
    }

    (void) pd_room_accept(hc, a, hb);
}

/* the register's view of a connection; the device is only the
 * register's (a connection does not keep it) */
static void
pd_room_reg_info(pd_room_conn_t *rc, pd_str_t *device, pd_reg_info_t *info)
{
    uint32_t  i;

    pd_memzero(info, sizeof(pd_reg_info_t));
    pd_memcpy(info->uid, pd_room_uid(rc), rc->uid_len);
    pd_memcpy(info->device, device->data,
              pd_min(device->len, PD_DEVICE_MAX));

    for (i = 0; i < rc->napps; i++) {
        pd_memcpy(info->apps[i], pd_room_app(rc, i), PD_APP_MAX + 1);
    }

    info->napps = rc->napps;
    info->pid = (int32_t) pd_pid;
    info->wslot = (int32_t) pd_worker;
    info->conn = pd_room_conn_id(rc);
    info->since = (uint64_t) pd_time_sec * 1000;
}

static pd_int_t
pd_room_register(pd_room_conn_t *rc, pd_str_t *device, pd_http_conn_t *hc)
{
    pd_room_conf_t   *rcf = rc->conf;
    pd_connection_t  *c = rc->connection;
    pd_reg_info_t     info;
    pd_int_t          rv;

    if (pd_register == NULL) {
        return PD_OK;
    }

    if (rcf->max_connections_per_ip) {
        rv = pd_register->ip_acquire(&c->sockaddr.sockaddr,
                                     (uint32_t) rcf->max_connections_per_ip);
        if (rv == PD_BUSY || rv == PD_ERROR) {
            pd_room_refuse(hc, 429, "too many connections from this address");
            return PD_ERROR;
        }

        /* PD_DECLINED: not an IP client, nothing counted */
        rc->ip_counted = (rv == PD_OK);
    }

    pd_room_reg_info(rc, device, &info);

    if (pd_register->add(&info) != PD_OK) {
        if (rc->ip_counted) {
            pd_register->ip_release(&c->sockaddr.sockaddr);
            rc->ip_counted = 0;
        }

        pd_room_refuse(hc, 503, "register is full");
        return PD_ERROR;
    }

    rc->registered = 1;
    return PD_OK;
}

/* the handshake answer and the welcome frame leave in one write */
pd_int_t
pd_room_send_welcome(pd_room_conn_t *rc, pd_str_t *key, pd_str_t *sid,
    pd_uint_t resumed)
{
    pd_shbuf_t  *sb;
    u_char       accept[PD_WS_ACCEPT_LEN + 1], json[256], *p, *j;
    size_t       jlen;

    if (pd_ws_accept_key(key->data, key->len, accept) != PD_OK) {
        return PD_DECLINED;
    }

    j = pd_slprintf(json, json + sizeof(json),
                    "{\"op\":\"welcome\",\"sid\":\"%.*s\",\"hb\":%u,"
                    "\"resumed\":%s}",
                    (int) sid->len, sid->data, (unsigned) rc->hb,
                    resumed ? "true" : "false");
    jlen = (size_t) (j - json);

    sb = pd_shbuf_alloc(256 + PD_WS_MAX_HEADER + jlen);
    if (sb == NULL) {
        return PD_ERROR;
    }

    p = pd_slprintf(sb->data, sb->data + 256,
                    "HTTP/1.1 101 Switching Protocols\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
    p += pd_ws_frame_header(p, PD_WS_TEXT, jlen);
    p = pd_cpymem(p, json, jlen);
    sb->len = (size_t) (p - sb->data);

    /* the handshake is not a frame, but it is queued like one */
    rc->close_sent = 0;
    if (pd_room_send_shared(rc, sb) != PD_OK) {
        pd_shbuf_unref(sb);
        return PD_ERROR;
    }

    pd_shbuf_unref(sb);
    return PD_OK;
}

static pd_room_conn_t *
pd_room_accept(pd_http_conn_t *hc, pd_room_args_t *a, uint32_t hb)
{
    pd_room_conf_t   *rcf = hc->srv->ctx;
    pd_connection_t  *c = hc->connection;
    pd_room_conn_t   *rc;
    pd_str_t         *key, sid;
    const char       *err;
    u_char            sidbuf[64];
    size_t            rest;
    pd_int_t          rv;

    rc = pd_room_conn_alloc();
    if (rc == NULL) {
        pd_room_refuse(hc, 503, "out of memory");
        return NULL;
    }

    rc->connection = c;
    rc->conf = rcf;
    rc->out_last = &rc->out;
    rc->hb = (uint16_t) hb;
    if (pd_room_uid_set(rc, a->uid.data, a->uid.len) != PD_OK) {
        pd_room_conn_free(rc);
        pd_room_refuse(hc, 503, "out of memory");
        return NULL;
    }

    err = pd_room_parse_apps(rc, &a->apps, (pd_uint_t) rcf->max_apps);
    if (err != NULL) {
        pd_room_conn_free(rc);
        pd_room_refuse(hc, 400, err);
        return NULL;
    }

    if (pd_room_register(rc, &a->device, hc) != PD_OK) {
        pd_room_conn_free(rc);
        return NULL;
    }

    sid.data = sidbuf;
    sid.len = pd_room_session_id(rc, sidbuf, sizeof(sidbuf));

    key = pd_http_header_find(&hc->req, "Sec-WebSocket-Key");

    /* from here on the connection is the room's, no longer HTTP's */
    c->data = rc;
    c->read->handler = pd_room_read_handler;
    rc->ws = 1;
    c->write->handler = pd_room_write_handler;
    c->log->action = NULL;
    pd_event_del_timer(c->read);
    pd_event_del_timer(c->write);

    rv = pd_room_send_welcome(rc, key, &sid, 0);

    if (rv != PD_OK) {
        /* undo as a plain close: nothing was sent yet */
        pd_log_error(PD_LOG_ERR, c->log, 0, "no memory for the welcome");
        pd_room_drop_http(hc, rc);
        return NULL;
    }

    if (pd_room_state_handler) {
        pd_room_state_handler(rc, &a->device, -1, 1);
    }

    pd_room_stat(PD_ROOM_STAT_HANDSHAKES);
    pd_log_debug(pd_conn_log(c),
                 "uid \"%.*s\" device \"%.*s\" connected, hb %u",
                 (int) rc->uid_len, pd_room_uid(rc), (int) a->device.len,
                 a->device.data, (unsigned) hb);

    /* bytes the client sent right after its request are frames: they
     * may close the connection, so rc is not to be touched after */
    rest = (size_t) (hc->in->last - hc->in->pos) - hc->req.header_len;

    pd_room_take_over(rc, hc, hc->in->pos + hc->req.header_len, rest);

    return rc;
}
