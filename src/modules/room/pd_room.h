/*
 * pd_room.h: the room, the client-facing gateway.
 */

#ifndef PD_ROOM_H
#define PD_ROOM_H

typedef struct {
    pd_array_t      *listen;
    pd_str_t         ssl_certificate;
    pd_str_t         ssl_certificate_key;
    pd_msec_t        handshake_timeout;
    pd_http_srv_t    http;
    pd_ssl_t         tls;
    unsigned         ssl:1;        /* some listener is TLS */
} pd_room_conf_t;

extern pd_module_t  pd_room_module;

void pd_room_http_handler(pd_http_conn_t *hc);

#endif /* PD_ROOM_H */
