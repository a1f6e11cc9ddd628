/*
 * pd_coordinator_up.c: a client's "up" frame, checked, POSTed to its
 * app's uplink URL, and the answer routed back to the connection by its
 * id: upack (2xx), reply (the answer's "reply" member), or error.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_register.h"
#include "pd_coordinator.h"

#define PD_COORD_ID_MAX  64

/* an up between the frame and the answer; the connection by its id, as
 * it may be gone by then */
typedef struct {
    uint64_t              conn;
    pd_coord_upstream_t  *up;
    size_t                id_len;
    size_t                type_len;
    size_t                data_len;
    u_char                id[PD_COORD_ID_MAX + 1];
    u_char                app[PD_APP_MAX + 1];
    u_char                type[PD_APP_MAX + 1];
    u_char                uid[PD_UID_MAX + 1];
    u_char                data[];
} pd_coord_up_t;

static void pd_coord_up_device(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n);
static void pd_coord_up_send(pd_coord_up_t *u, const u_char *device);
static void pd_coord_up_done(void *data, pd_coord_answer_t *a);

uint64_t
pd_coord_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* {"op":"error","id":<id>,"error":<why>}; id NULL when it had none;
 * stat the counter, -1 when it was counted where it failed */
static pd_int_t
pd_coord_up_error(pd_room_conn_t *rc, const u_char *id, size_t len,
    const char *why, pd_int_t stat)
{
    u_char   buf[6 * PD_COORD_ID_MAX + 512], *p, *last = buf + sizeof(buf);

    if (stat >= 0) {
        pd_coord_stat(stat);
    }

    p = pd_cpymem(buf, "{\"op\":\"error\",", sizeof("{\"op\":\"error\",") - 1);

    if (id != NULL) {
        p = pd_cpymem(p, "\"id\":", sizeof("\"id\":") - 1);
        p = pd_json_escape(p, last, id, len);
        *p++ = ',';
    }

    p = pd_cpymem(p, "\"error\":", sizeof("\"error\":") - 1);
    p = pd_json_escape(p, last - 1, (u_char *) why,
                       pd_min(strlen(why), 256));
    *p++ = '}';

    return pd_room_send_text(rc, buf, (size_t) (p - buf)) == PD_ERROR
           ? PD_DONE : PD_OK;
}

/* a name member (app, type) decoded and checked; PD_ERROR: invalid */
static pd_int_t
pd_coord_up_name(pd_json_val_t *v, u_char *buf, size_t *len)
{
    pd_str_t  s;

    if (v->type != PD_JSON_STRING
        || pd_json_string(v, buf, PD_APP_MAX + 1, len) != PD_OK)
    {
        return PD_ERROR;
    }

    s.data = buf;
    s.len = *len;

    return pd_token_valid_name(&s, PD_APP_MAX);
}

static pd_int_t
pd_coord_up_bound(pd_room_conn_t *rc, const u_char *app)
{
    pd_uint_t  i;

    for (i = 0; i < rc->napps; i++) {
        if (strcmp((char *) pd_room_app(rc, i), (char *) app) == 0) {
            return 1;
        }
    }

    return 0;
}

static pd_int_t
pd_coord_up_typed(pd_coord_app_t *route, const u_char *type, size_t len)
{
    pd_str_t   *t;
    pd_uint_t   i;

    if (route->types == NULL) {
        return 1;
    }

    t = route->types->elts;

    for (i = 0; i < route->types->nelts; i++) {
        if (t[i].len == len && memcmp(t[i].data, type, len) == 0) {
            return 1;
        }
    }

    return 0;
}

/* the per-connection rate: a window of one second */
static pd_int_t
pd_coord_up_allowed(pd_room_conn_t *rc)
{
    uint32_t  now = (uint32_t) pd_time_sec;

    if (rc->up_second != now) {
        rc->up_second = now;
        rc->up_count = 0;
    }

    if (rc->up_count >= (uint16_t) pd_coord_conf->up_rate) {
        return 0;
    }

    rc->up_count++;
    return 1;
}

pd_int_t
pd_coord_up(pd_room_conn_t *rc, pd_room_up_t *f)
{
    u_char           id[PD_COORD_ID_MAX + 1], app[PD_APP_MAX + 1];
    u_char           type[PD_APP_MAX + 1];
    size_t           id_len, app_len, type_len, data_len;
    pd_coord_app_t  *route;
    pd_coord_up_t   *u;

    if (f->id.type != PD_JSON_STRING
        || pd_json_string(&f->id, id, sizeof(id), &id_len) != PD_OK
        || id_len == 0)
    {
        return pd_coord_up_error(rc, NULL, 0, "\"id\" must be a string of "
                                 "1 to 64 bytes", PD_COORD_STAT_ERR_ROUTE);
    }

    if (pd_coord_up_name(&f->app, app, &app_len) != PD_OK) {
        return pd_coord_up_error(rc, id, id_len, "invalid app name",
                                 PD_COORD_STAT_ERR_ROUTE);
    }

    if (!pd_coord_up_bound(rc, app)) {
        return pd_coord_up_error(rc, id, id_len, "app not bound",
                                 PD_COORD_STAT_ERR_ROUTE);
    }

    if (pd_coord_up_name(&f->type, type, &type_len) != PD_OK) {
        return pd_coord_up_error(rc, id, id_len, "invalid type",
                                 PD_COORD_STAT_ERR_ROUTE);
    }

    route = pd_coord_app(app, app_len);

    if (route == NULL || route->uplink == NULL) {
        return pd_coord_up_error(rc, id, id_len, "no uplink for this app",
                                 PD_COORD_STAT_ERR_ROUTE);
    }

    if (!pd_coord_up_typed(route, type, type_len)) {
        return pd_coord_up_error(rc, id, id_len, "no uplink for this type",
                                 PD_COORD_STAT_ERR_ROUTE);
    }

    if (f->data.type == PD_JSON_ABSENT) {
        return pd_coord_up_error(rc, id, id_len, "missing \"data\"",
                                 PD_COORD_STAT_ERR_ROUTE);
    }

    if (!pd_coord_up_allowed(rc)) {
        return pd_coord_up_error(rc, id, id_len, "rate limited",
                                 PD_COORD_STAT_ERR_RATE);
    }

    /* refused at once at the bound, before a register lookup */
    if (route->uplink->pending >= (pd_uint_t) pd_coord_conf->max_pending) {
        pd_coord_ustat(route->uplink, PD_COORD_STAT_ERR_BUSY, 1);
        return pd_coord_up_error(rc, id, id_len, "busy", -1);
    }

    /* the frame fits room.max_message, so data does too */
    data_len = (size_t) (f->data.end - f->data.start);

    u = malloc(sizeof(pd_coord_up_t) + data_len);
    if (u == NULL) {
        return pd_coord_up_error(rc, id, id_len, "out of memory",
                                 PD_COORD_STAT_ERR_FAILED);
    }

    u->conn = pd_room_conn_id(rc);
    u->up = route->uplink;
    u->id_len = id_len;
    u->type_len = type_len;
    u->data_len = data_len;
    pd_memcpy(u->id, id, id_len + 1);
    pd_memcpy(u->app, app, app_len + 1);
    pd_memcpy(u->type, type, type_len + 1);
    pd_memcpy(u->uid, pd_room_uid(rc), rc->uid_len);
    u->uid[rc->uid_len] = '\0';
    pd_memcpy(u->data, f->data.start, data_len);

    /* the device is the register's: a room connection does not keep it */
    if (pd_register == NULL
        || pd_register->lookup(pd_room_uid(rc), rc->uid_len,
                               pd_coord_up_device, u)
           != PD_OK)
    {
        pd_coord_up_send(u, (u_char *) "");
    }

    return PD_OK;
}

static void
pd_coord_up_device(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n)
{
    pd_coord_up_t  *u = data;
    pd_uint_t       i;

    if (rc == PD_OK) {
        for (i = 0; i < n; i++) {
            if (info[i].conn == u->conn && info[i].pid == (int32_t) pd_pid
                && info[i].node[0] == '\0')
            {
                pd_coord_up_send(u, info[i].device);
                return;
            }
        }
    }

    pd_coord_up_send(u, (u_char *) "");
}

static void
pd_coord_up_send(pd_coord_up_t *u, const u_char *device)
{
    pd_core_conf_t  *ccf = pd_get_conf(pd_cycle, pd_core_module);
    pd_room_conn_t  *rc;
    u_char          *body, *p, *last;
    size_t           size;
    pd_int_t         rv;

    size = u->data_len + 6 * (PD_COORD_ID_MAX + 3 * PD_UID_MAX
                              + PD_NODE_ID_MAX)
           + 256;

    body = malloc(size);
    if (body == NULL) {
        rv = PD_ERROR;
        goto failed;
    }

    last = body + size;

    p = pd_cpymem(body, "{\"id\":", sizeof("{\"id\":") - 1);
    p = pd_json_escape(p, last, u->id, u->id_len);
    p = pd_cpymem(p, ",\"uid\":", sizeof(",\"uid\":") - 1);
    p = pd_json_escape(p, last, u->uid, strlen((char *) u->uid));
    p = pd_cpymem(p, ",\"device\":", sizeof(",\"device\":") - 1);
    p = pd_json_escape(p, last, device, strlen((char *) device));
    p = pd_slprintf(p, last, ",\"app\":\"%s\",\"type\":\"%s\",\"data\":",
                    u->app, u->type);
    p = pd_cpymem(p, u->data, u->data_len);
    p = pd_cpymem(p, ",\"node\":", sizeof(",\"node\":") - 1);
    p = pd_json_escape(p, last, ccf->node_id.data, ccf->node_id.len);
    p = pd_slprintf(p, last, ",\"ts\":%llu}",
                    (unsigned long long) pd_coord_now());

    rv = pd_coord_post(u->up, body, (size_t) (p - body), pd_coord_up_done,
                       u);
    if (rv == PD_OK) {
        return;
    }

failed:

    pd_coord_ustat(u->up, rv == PD_BUSY ? PD_COORD_STAT_ERR_BUSY
                                        : PD_COORD_STAT_ERR_FAILED, 1);

    rc = pd_room_find(u->conn);

    if (rc != NULL && rc->ws) {
        (void) pd_coord_up_error(rc, u->id, u->id_len,
                                 rv == PD_BUSY ? "busy" : "out of memory",
                                 -1);
    }

    pd_free(u);
}

/* upack, then reply with the answer's "reply" member when it has one */
static void
pd_coord_up_answered(pd_room_conn_t *rc, pd_coord_up_t *u,
    pd_coord_answer_t *a)
{
    pd_json_field_t  f[1] = { { "reply", { 0 } } };
    pd_json_err_t    jerr;
    u_char           buf[6 * PD_COORD_ID_MAX + 64], *p, *frame;
    size_t           len;

    p = pd_cpymem(buf, "{\"op\":\"upack\",\"id\":",
                  sizeof("{\"op\":\"upack\",\"id\":") - 1);
    p = pd_json_escape(p, buf + sizeof(buf) - 1, u->id, u->id_len);
    *p++ = '}';

    if (pd_room_send_text(rc, buf, (size_t) (p - buf)) == PD_ERROR) {
        return;
    }

    if (a->body == NULL
        || pd_json_object(a->body, a->len, f, 1, &jerr) != PD_OK
        || f[0].val.type == PD_JSON_ABSENT)
    {
        return;
    }

    len = (size_t) (f[0].val.end - f[0].val.start);

    frame = malloc(sizeof(buf) + len);
    if (frame == NULL) {
        return;
    }

    p = pd_cpymem(frame, "{\"op\":\"reply\",\"id\":",
                  sizeof("{\"op\":\"reply\",\"id\":") - 1);
    p = pd_json_escape(p, frame + sizeof(buf), u->id, u->id_len);
    p = pd_cpymem(p, ",\"data\":", sizeof(",\"data\":") - 1);
    p = pd_cpymem(p, f[0].val.start, len);
    *p++ = '}';

    (void) pd_room_send_text(rc, frame, (size_t) (p - frame));
    pd_free(frame);
}

static void
pd_coord_up_done(void *data, pd_coord_answer_t *a)
{
    pd_coord_up_t   *u = data;
    pd_room_conn_t  *rc;
    char             why[64];

    rc = pd_room_find(u->conn);

    if (rc == NULL || !rc->ws || rc->closing) {
        /* the client went away meanwhile: nobody to tell */
        pd_free(u);
        return;
    }

    if (a->rc == PD_OK && a->status >= 200 && a->status <= 299) {
        pd_coord_up_answered(rc, u, a);

    } else if (a->rc == PD_OK) {
        (void) snprintf(why, sizeof(why), "upstream answered %ld",
                        a->status);
        (void) pd_coord_up_error(rc, u->id, u->id_len, why,
                                 -1);

    } else {
        (void) pd_coord_up_error(rc, u->id, u->id_len,
                                 a->rc == PD_AGAIN ? "upstream timed out"
                                                   : "upstream failed",
                                 -1);
    }

    pd_free(u);
}
