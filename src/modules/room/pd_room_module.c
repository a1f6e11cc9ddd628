/*
 * pd_room_module.c: the room's directives and lifecycle: the client-facing
 * listeners on 80/443 (plain and TLS) and the status page.
 */

#include "pd_core.h"
#include "pd_room.h"

static void *pd_room_create_conf(pd_cycle_t *cycle);
static const char *pd_room_init_conf(pd_cycle_t *cycle, void *conf);
static pd_int_t pd_room_init_module(pd_cycle_t *cycle);

static pd_conf_bounds_t  pd_room_header_bounds = { 1024, 65536 };
static pd_conf_bounds_t  pd_room_timeout_bounds = { 100, 3600 * 1000 };

static pd_command_t  pd_room_commands[] = {

    { "listen", PD_CONF_LISTEN, pd_conf_set_listen_slot,
      offsetof(pd_room_conf_t, listen), NULL,
      "addresses for client connections, a list of \"[addr:]port [ssl]\" "
      "(default: [\"80\", \"443 ssl\"])" },

    { "ssl_certificate", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_room_conf_t, ssl_certificate), NULL,
      "PEM certificate chain for the ssl listeners" },

    { "ssl_certificate_key", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_room_conf_t, ssl_certificate_key), NULL,
      "PEM private key for the ssl listeners" },

    { "header_buffer_size", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_room_conf_t, http.header_buffer_size),
      &pd_room_header_bounds,
      "largest HTTP request head (request line and headers) accepted "
      "before the upgrade; larger gets 431 (default: 4k)" },

    { "handshake_timeout", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_room_conf_t, handshake_timeout), &pd_room_timeout_bounds,
      "time a new connection has to finish its TLS handshake and send its "
      "request (default: 10s)" },

    pd_null_command
};

pd_module_t  pd_room_module = {
    "room",
    0,
    pd_room_commands,
    pd_room_create_conf,
    pd_room_init_conf,
    pd_room_init_module,
    NULL,
    NULL,
    NULL,
    0,
    NULL,
    NULL
};

static void *
pd_room_create_conf(pd_cycle_t *cycle)
{
    pd_room_conf_t  *rcf;

    rcf = pd_pcalloc(cycle->pool, sizeof(pd_room_conf_t));
    if (rcf == NULL) {
        return NULL;
    }

    rcf->http.header_buffer_size = PD_CONF_UNSET_SIZE;
    rcf->handshake_timeout = PD_CONF_UNSET_MSEC;

    return rcf;
}

static const char *
pd_room_init_conf(pd_cycle_t *cycle, void *conf)
{
    pd_room_conf_t    *rcf = conf;
    pd_listen_conf_t  *lc;
    pd_str_t           def[2] = { pd_string("80"), pd_string("443 ssl") };
    const char        *rv;
    pd_uint_t          i;

    pd_conf_init_size(rcf->http.header_buffer_size, 4096);
    pd_conf_init_msec(rcf->handshake_timeout, 10000);

    rcf->http.max_body = 0;
    rcf->http.max_headers = 32;
    rcf->http.read_timeout = rcf->handshake_timeout;
    rcf->http.keepalive_timeout = 15000;
    rcf->http.keepalive_requests = 100;
    rcf->http.handler = pd_room_http_handler;
    rcf->http.ctx = rcf;

    if (rcf->listen == NULL) {
        rcf->listen = pd_array_create(cycle->pool, 2,
                                      sizeof(pd_listen_conf_t));
        if (rcf->listen == NULL) {
            return "out of memory";
        }

        for (i = 0; i < 2; i++) {
            lc = pd_array_push(rcf->listen);
            if (lc == NULL) {
                return "out of memory";
            }

            rv = pd_parse_listen(&def[i], lc, cycle->pool);
            if (rv != NULL) {
                return rv;
            }
        }
    }

    lc = rcf->listen->elts;

    for (i = 0; i < rcf->listen->nelts; i++) {
        if (lc[i].ssl) {
            rcf->ssl = 1;
        }
    }

    if (rcf->ssl && (rcf->ssl_certificate.data == NULL
                     || rcf->ssl_certificate_key.data == NULL))
    {
        return "has an ssl listener but no \"ssl_certificate\" and "
               "\"ssl_certificate_key\"";
    }

    if (rcf->ssl_certificate.data
        && (pd_conf_full_name(cycle, &rcf->ssl_certificate) != PD_OK
            || pd_conf_full_name(cycle, &rcf->ssl_certificate_key)
               != PD_OK))
    {
        return "out of memory";
    }

    return PD_CONF_OK;
}

static pd_int_t
pd_room_init_module(pd_cycle_t *cycle)
{
    pd_room_conf_t  *rcf;
    const char      *err;

    rcf = pd_get_conf(cycle, pd_room_module);

    if (rcf->ssl) {
        err = pd_ssl_create(&rcf->tls, &rcf->ssl_certificate,
                            &rcf->ssl_certificate_key, cycle->pool);
        if (err != NULL) {
            cycle->conf_errstr = err;
            return PD_ERROR;
        }
    }

    return pd_http_add_listeners(cycle, rcf->listen, &rcf->http, &rcf->tls);
}
