/*
 * pd_center_module.c: the center's directives and lifecycle.
 */

#include "pd_core.h"
#include "pd_center.h"
#include "pd_room.h"

static void *pd_center_create_conf(pd_cycle_t *cycle);
static const char *pd_center_init_conf(pd_cycle_t *cycle, void *conf);
static pd_int_t pd_center_init_module(pd_cycle_t *cycle);
static pd_int_t pd_center_init_process(pd_cycle_t *cycle);

static pd_conf_bounds_t  pd_center_body_bounds = { 1024, 64 * 1024 * 1024 };
static pd_conf_bounds_t  pd_center_timeout_bounds = { 100, 3600 * 1000 };
static pd_conf_bounds_t  pd_center_message_bounds = { 16, 12 * 1024 };
static pd_conf_bounds_t  pd_center_failures_bounds = { 0, 1000000 };
static pd_conf_bounds_t  pd_center_uids_bounds = { 1, 100000 };
static pd_conf_bounds_t  pd_center_rate_bounds = { 0, 100000000 };
static pd_conf_bounds_t  pd_center_brate_bounds = { 1, 100000000 };

static pd_command_t  pd_center_commands[] = {

    { "listen", PD_CONF_LISTEN, pd_conf_set_listen_slot,
      offsetof(pd_center_conf_t, listen), NULL,
      "addresses of the business API, a list of \"[addr:]port [ssl]\"; "
      "keep it on a private address, with ssl when the business reaches "
      "it across a network it does not trust (default: "
      "[\"127.0.0.1:8090\"])" },

    { "ssl_certificate", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_center_conf_t, ssl_certificate), NULL,
      "PEM certificate chain for the center's ssl listeners (default: "
      "the room's ssl_certificate)" },

    { "ssl_certificate_key", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_center_conf_t, ssl_certificate_key), NULL,
      "PEM private key for the center's ssl listeners (default: the "
      "room's ssl_certificate_key)" },

    { "api_key", PD_CONF_STRING, pd_conf_set_secret_slot,
      offsetof(pd_center_conf_t, api_key), NULL,
      "the key callers send as \"Authorization: Bearer <api_key>\" "
      "(required, at least 16 characters; the sample's \"change-me...\" "
      "is refused)" },

    { "max_body", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_center_conf_t, http.max_body), &pd_center_body_bounds,
      "largest request body; larger gets 413 (default: 1m)" },

    { "keepalive_timeout", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_center_conf_t, keepalive_timeout),
      &pd_center_timeout_bounds,
      "how long an idle API connection is kept open (default: 75s)" },

    { "request_timeout", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_center_conf_t, http.read_timeout),
      &pd_center_timeout_bounds,
      "how long a request may take to arrive, head and body; a slower "
      "client (slowloris) is closed (default: 30s)" },

    { "max_auth_failures", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_center_conf_t, max_auth_failures),
      &pd_center_failures_bounds,
      "requests with a wrong or no key one address may make per 10 "
      "seconds; beyond, 429 before the key is looked at; 0 for no limit "
      "(default: 20)" },

    { "allow", PD_CONF_LIST, pd_conf_set_list_slot,
      offsetof(pd_center_conf_t, allow), NULL,
      "addresses (CIDR: \"10.0.0.0/8\", \"::1\", \"all\") that may call the "
      "API; others get 403 before the key is looked at (default: all)" },

    { "max_message", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_center_conf_t, max_message), &pd_center_message_bounds,
      "largest \"data\" of a push or broadcast; larger gets 413 "
      "(default: 4k, at most 12k)" },

    { "max_uids", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_center_conf_t, max_uids), &pd_center_uids_bounds,
      "uids one push may name (default: 1000)" },

    { "rate_limit", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_center_conf_t, rate_limit), &pd_center_rate_bounds,
      "pushes and broadcasts per second this node accepts, shared by the "
      "workers; beyond gets 429 with Retry-After; 0 for no limit "
      "(default: 0)" },

    { "broadcast_rate", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_center_conf_t, broadcast_rate), &pd_center_brate_bounds,
      "users per second a broadcast reaches on this node when the request "
      "names no \"rate\" (default: 20000)" },

    pd_null_command
};

/* in the order of PD_CENTER_STAT_* (pd_center.h) */
static pd_stats_counter_t  pd_center_counters[] = {
    { "pushd_rate_limited_total", NULL, NULL,
      "API requests refused with 429", PD_STATS_COUNTER },
    { "pushd_api_waited_total", NULL, NULL,
      "API requests held while a worker's channel was backed up",
      PD_STATS_COUNTER },
    { NULL, NULL, NULL, NULL, 0 }
};

pd_module_t  pd_center_module = {
    "center",
    0,
    pd_center_commands,
    pd_center_create_conf,
    pd_center_init_conf,
    pd_center_init_module,
    pd_center_init_process,
    NULL,
    NULL,
    0,
    NULL,
    NULL,
    pd_center_counters,
    0,
    NULL
};

static void *
pd_center_create_conf(pd_cycle_t *cycle)
{
    pd_center_conf_t  *ccf;

    ccf = pd_pcalloc(cycle->pool, sizeof(pd_center_conf_t));
    if (ccf == NULL) {
        return NULL;
    }

    ccf->http.max_body = PD_CONF_UNSET_SIZE;
    ccf->max_auth_failures = PD_CONF_UNSET;
    ccf->http.read_timeout = PD_CONF_UNSET_MSEC;
    ccf->keepalive_timeout = PD_CONF_UNSET_MSEC;
    ccf->max_message = PD_CONF_UNSET_SIZE;
    ccf->max_uids = PD_CONF_UNSET;
    ccf->rate_limit = PD_CONF_UNSET;
    ccf->broadcast_rate = PD_CONF_UNSET;

    return ccf;
}

static const char *
pd_center_init_conf(pd_cycle_t *cycle, void *conf)
{
    pd_center_conf_t  *ccf = conf;
    pd_listen_conf_t  *lc;
    pd_str_t           def = pd_string("127.0.0.1:8090");
    const char        *rv;
    pd_uint_t          i;

    pd_conf_init_size(ccf->http.max_body, 1024 * 1024);
    pd_conf_init_value(ccf->max_auth_failures, 20);
    pd_conf_init_msec(ccf->keepalive_timeout, 75000);
    pd_conf_init_size(ccf->max_message, 4096);
    pd_conf_init_value(ccf->max_uids, 1000);
    pd_conf_init_value(ccf->rate_limit, 0);
    pd_conf_init_value(ccf->broadcast_rate, 20000);

    ccf->probe_timeout = 1000;
    ccf->http.header_buffer_size = 8192;
    ccf->http.max_headers = 64;
    pd_conf_init_msec(ccf->http.read_timeout, 30000);
    ccf->http.keepalive_timeout = ccf->keepalive_timeout;
    ccf->http.keepalive_requests = 1000000;
    ccf->http.handler = pd_center_http_handler;
    ccf->http.access = pd_center_access;
    ccf->http.head_handler = pd_center_head;
    ccf->http.batch_answers = 1;
    /* a push waits for the store (a cluster's commit): the pushes
     * pipelined behind it are served meanwhile, up to a buffer's worth */
    ccf->http.max_detached = PD_CENTER_DETACHED;
    ccf->http.ctx = ccf;

    if (ccf->listen == NULL) {
        ccf->listen = pd_array_create(cycle->pool, 1,
                                      sizeof(pd_listen_conf_t));
        lc = ccf->listen ? pd_array_push(ccf->listen) : NULL;
        if (lc == NULL) {
            return "out of memory";
        }

        if (pd_parse_listen(&def, lc, cycle->pool) != NULL) {
            return "bad default listen";
        }
    }

    rv = pd_cidr_parse(cycle, ccf->allow, &ccf->allow_cidr);
    if (rv != NULL) {
        return rv;
    }

    lc = ccf->listen->elts;

    for (i = 0; i < ccf->listen->nelts; i++) {
        if (lc[i].ssl) {
            ccf->ssl = 1;
        }
    }

    if ((ccf->ssl_certificate.data == NULL)
        != (ccf->ssl_certificate_key.data == NULL))
    {
        return "needs both \"ssl_certificate\" and \"ssl_certificate_key\", "
               "or neither (the room's are used then)";
    }

    if (ccf->ssl_certificate.data
        && (pd_conf_full_name(cycle, &ccf->ssl_certificate) != PD_OK
            || pd_conf_full_name(cycle, &ccf->ssl_certificate_key)
               != PD_OK))
    {
        return "out of memory";
    }

    if (!pd_module_enabled(cycle, pd_center_module)) {
        return PD_CONF_OK;
    }

    if (ccf->api_key.data == NULL) {
        return "needs \"api_key\"";
    }

    if (ccf->api_key.len < 16) {
        return "\"api_key\" must be at least 16 characters";
    }

    return PD_CONF_OK;
}

static pd_int_t
pd_center_init_module(pd_cycle_t *cycle)
{
    pd_center_conf_t  *ccf;
    pd_room_conf_t    *rcf;
    const char        *err;

    ccf = pd_get_conf(cycle, pd_center_module);

    if (ccf->ssl) {
        /* the room's pair unless the center names its own; both are
         * full paths by now (each module's init_conf ran) */
        if (ccf->ssl_certificate.data == NULL) {
            rcf = pd_get_conf(cycle, pd_room_module);
            ccf->ssl_certificate = rcf->ssl_certificate;
            ccf->ssl_certificate_key = rcf->ssl_certificate_key;
        }

        if (ccf->ssl_certificate.data == NULL
            || ccf->ssl_certificate_key.data == NULL)
        {
            cycle->conf_errstr = "\"center\" has an ssl listener but no "
                                 "\"ssl_certificate\" and "
                                 "\"ssl_certificate_key\", its own or "
                                 "the room's";
            return PD_ERROR;
        }

        /* its own context and ticket keys: an API ticket opens no room
         * session and the other way round */
        err = pd_ssl_create(&ccf->tls, &ccf->ssl_certificate,
                            &ccf->ssl_certificate_key, 3600, cycle->pool);
        if (err != NULL) {
            cycle->conf_errstr = err;
            return PD_ERROR;
        }
    }

    return pd_http_add_listeners(cycle, ccf->listen, &ccf->http, &ccf->tls);
}

static pd_int_t
pd_center_init_process(pd_cycle_t *cycle)
{
    return pd_center_workers_init(cycle);
}
