/*
 * pd_center.h: the center, the business-facing HTTP JSON API.
 */

#ifndef PD_CENTER_H
#define PD_CENTER_H

/* pushes of one connection waiting for the store at once, at most (the
 * 8 KB head buffer holds about 30 of a usual size: that bounds it too) */
#define PD_CENTER_DETACHED  64

typedef struct {
    pd_array_t      *listen;
    pd_str_t         api_key;
    pd_http_srv_t    http;
    pd_msec_t        keepalive_timeout;
    pd_msec_t        probe_timeout;
    size_t           max_message;
    pd_int_t         max_uids;
    pd_int_t         rate_limit;
    pd_int_t         broadcast_rate;
    pd_int_t         max_auth_failures;  /* per address per window */
    pd_array_t      *allow;          /* of pd_str_t, then parsed */
    pd_array_t      *allow_cidr;     /* of pd_cidr_t */
    pd_str_t         ssl_certificate;
    pd_str_t         ssl_certificate_key;
    pd_ssl_t         tls;
    unsigned         ssl:1;          /* some listener is TLS */
} pd_center_conf_t;

extern pd_module_t  pd_center_module;

/* a push's or a broadcast's body, as read by pd_center_parse_body() */
typedef struct {
    pd_str_t        app;            /* in app_buf */
    pd_str_t        data;           /* raw bytes of "data" in the body */
    pd_uint_t       qos;
    pd_msec_t       ttl;
    pd_uint_t       rate;
    pd_json_val_t   uids;           /* the array, in the body */
    pd_uint_t       nuids;
    size_t          uid_bytes;      /* decoded, without NULs */
    pd_str_t        collapse;       /* in collapse_buf; len 0: none */
    u_char          app_buf[PD_APP_MAX + 1];
    u_char          collapse_buf[PD_COLLAPSE_MAX + 1];
    char            error[128];
} pd_center_msg_t;

/* what bounds a body: the configuration's and the saver's */
typedef struct {
    size_t          max_message;    /* bytes of "data" */
    pd_uint_t       max_uids;
    pd_uint_t       broadcast_rate; /* when the body names none */
    pd_msec_t       ttl;            /* a push's when the body names none */
    int64_t         max_ttl;        /* seconds */
} pd_center_limits_t;

/* the center's counters (pd_center_counters, in this order) */
#define PD_CENTER_STAT_RATE_LIMITED  0
#define PD_CENTER_STAT_API_WAITED    1

#define pd_center_stat(i)  pd_stats_module_add(pd_center_module, i, 1)

pd_int_t pd_center_access(pd_http_conn_t *hc);
pd_int_t pd_center_head(pd_http_conn_t *hc);
void pd_center_http_handler(pd_http_conn_t *hc);
void pd_center_stats(pd_http_conn_t *hc);
void pd_center_workers(pd_http_conn_t *hc);
pd_int_t pd_center_workers_init(pd_cycle_t *cycle);
void pd_center_users(pd_http_conn_t *hc);
void pd_center_push(pd_http_conn_t *hc);
/*
 * Reads a body's fields into m, untrusted bytes to checked fields, with
 * no I/O: NULL, or a phrase for an error of *status (400, 413).  The
 * uids are checked here and decoded later, by pd_center_uids().
 */
const char *pd_center_parse_body(const u_char *body, size_t len,
    const pd_center_limits_t *lim, pd_uint_t broadcast, pd_center_msg_t *m,
    pd_uint_t *status);
/*
 * The uids of a body parsed by pd_center_parse_body(), decoded into
 * pool, each once: a uid named twice would be stored and sent twice.
 * Returns how many distinct uids are in *out, or 0 for no memory.
 */
pd_uint_t pd_center_uids(pd_center_msg_t *m, pd_pool_t *pool,
    pd_str_t **out);
void pd_center_broadcast(pd_http_conn_t *hc);
void pd_center_metrics(pd_http_conn_t *hc);

/* the admin page's files, compiled in by auto/embed (pd_center_admin.c) */
typedef struct {
    const char      *path;           /* "/admin/index.html" */
    const char      *type;
    const u_char    *data;
    size_t           len;
} pd_center_file_t;

extern const pd_center_file_t  pd_center_admin_files[];

pd_int_t pd_center_is_admin(pd_http_conn_t *hc);
void pd_center_admin(pd_http_conn_t *hc);

#include <jansson.h>

/* answers with obj (consumed) as compact JSON */
pd_int_t pd_center_send_json(pd_http_conn_t *hc, pd_uint_t status,
    json_t *obj);

#endif /* PD_CENTER_H */
