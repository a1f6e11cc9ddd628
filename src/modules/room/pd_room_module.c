/*
 * pd_room_module.c: the room's directives and lifecycle: the client-facing
 * listeners on 80/443 (plain and TLS) and the status page.
 */

#include "pd_core.h"
#include "pd_room.h"

static void *pd_room_create_conf(pd_cycle_t *cycle);
static const char *pd_room_init_conf(pd_cycle_t *cycle, void *conf);
static pd_int_t pd_room_init_module(pd_cycle_t *cycle);
static pd_int_t pd_room_init_process(pd_cycle_t *cycle);

static pd_conf_bounds_t  pd_room_header_bounds = { 1024, 65536 };
static pd_conf_bounds_t  pd_room_timeout_bounds = { 100, 3600 * 1000 };
static pd_conf_bounds_t  pd_room_hb_bounds = { 1000, PD_ROOM_HB_MAX * 1000 };
static pd_conf_bounds_t  pd_room_rotation_bounds = { 1000, 86400 * 1000 };
static pd_conf_bounds_t  pd_room_frame_bounds = { 256, 16 * 1024 * 1024 };
static pd_conf_bounds_t  pd_room_apps_bounds = { 1, PD_APPS_MAX };
static pd_conf_bounds_t  pd_room_count_bounds = { 0, 1000000000 };
static pd_conf_bounds_t  pd_room_rate_bounds = { 1, 1000000000 };
/* the connection counts them in 16 bits */
static pd_conf_bounds_t  pd_room_bad_frames_bounds = { 0, 65535 };
static pd_conf_bounds_t  pd_room_output_bounds = { 4096,
                                                   1024 * 1024 * 1024 };
static pd_conf_bounds_t  pd_room_window_bounds = { 0, 3600 * 1000 };
static pd_conf_bounds_t  pd_room_linger_bounds = { 0, 600 * 1000 };
static pd_conf_bounds_t  pd_room_linger_buffer_bounds = { 1024,
                                                          16 * 1024 * 1024 };

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

    { "ssl_ticket_key_rotation", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_room_conf_t, ssl_ticket_key_rotation),
      &pd_room_rotation_bounds,
      "how long one TLS session-ticket key encrypts new tickets; it "
      "decrypts them one period more, then is wiped, so a stolen key "
      "opens at most two periods of recorded sessions; a ticket resumes "
      "on any worker for one to two periods (default: 1h)" },

    { "header_buffer_size", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_room_conf_t, http.header_buffer_size),
      &pd_room_header_bounds,
      "largest HTTP request head (request line and headers) accepted "
      "before the upgrade; larger gets 431 (default: 4k)" },

    { "handshake_timeout", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_room_conf_t, handshake_timeout), &pd_room_timeout_bounds,
      "time a new connection has to finish its TLS handshake and send its "
      "request (default: 10s)" },

    { "auth_secret", PD_CONF_STRING, pd_conf_set_secret_slot,
      offsetof(pd_room_conf_t, auth_secret), NULL,
      "the HMAC-SHA256 key of client tokens, shared with the business "
      "back-end (required, at least 16 characters; the sample's "
      "\"change-me...\" is refused)" },

    { "heartbeat", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_room_conf_t, heartbeat), &pd_room_hb_bounds,
      "heartbeat interval told to clients in the welcome frame; a "
      "connection silent for 2 x heartbeat + 10s is closed (default: 240s)" },

    { "heartbeat_min", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_room_conf_t, heartbeat_min), &pd_room_hb_bounds,
      "the least heartbeat a client may ask for with ?hb= (default: 30s)" },

    { "heartbeat_max", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_room_conf_t, heartbeat_max), &pd_room_hb_bounds,
      "the most heartbeat a client may ask for with ?hb= (default: 600s)" },

    { "max_frame", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_room_conf_t, max_frame), &pd_room_frame_bounds,
      "largest client frame payload; larger closes with 1009 (default: 64k)" },

    { "max_message", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_room_conf_t, max_message), &pd_room_frame_bounds,
      "largest client message, fragments joined; larger closes with 1009 "
      "(default: 64k)" },

    { "max_apps", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_room_conf_t, max_apps), &pd_room_apps_bounds,
      "apps one connection may bind (default and most: 8)" },

    { "allow", PD_CONF_LIST, pd_conf_set_list_slot,
      offsetof(pd_room_conf_t, allow), NULL,
      "client addresses (CIDR: \"10.0.0.0/8\", \"::1\", \"all\") allowed to "
      "connect; others get 403 (default: all)" },

    { "deny", PD_CONF_LIST, pd_conf_set_list_slot,
      offsetof(pd_room_conf_t, deny), NULL,
      "client addresses refused with 403; checked before allow "
      "(default: none)" },

    { "max_connections_per_ip", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_room_conf_t, max_connections_per_ip),
      &pd_room_count_bounds,
      "WebSocket connections one client address may hold across all "
      "workers, 0 for no limit; beyond gets 429 (default: 1000)" },

    { "handshake_rate", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_room_conf_t, handshake_rate), &pd_room_rate_bounds,
      "WebSocket handshakes per second each worker accepts; beyond gets "
      "503 with Retry-After (default: 5000)" },

    { "output_limit", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_room_conf_t, output_limit), &pd_room_output_bounds,
      "bytes queued to one client that does not read; beyond, it is "
      "closed as a slow consumer (default: 256k)" },

    { "reconnect_window", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_room_conf_t, reconnect_window), &pd_room_window_bounds,
      "on reload or graceful stop clients are told to reconnect after a "
      "random delay up to this (default: 30s)" },

    { "reload_handover", PD_CONF_FLAG, pd_conf_set_flag_slot,
      offsetof(pd_room_conf_t, reload_handover), NULL,
      "on reload, plain WebSocket connections move to the new workers with "
      "their sessions, unnoticed by the clients; TLS ones, and all with "
      "`false`, are told to reconnect within reconnect_window.  The "
      "retiring workers' value decides (default: true)" },

    { "linger", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_room_conf_t, linger), &pd_room_linger_bounds,
      "how long a session outlives a connection that dropped without a "
      "close frame (read error, idle timeout): a reconnect with &sid= "
      "within it resumes it, with what came meanwhile; 0: off "
      "(default: 30s)" },

    { "linger_buffer", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_room_conf_t, linger_buffer), &pd_room_linger_buffer_bounds,
      "bytes of frames (qos 0 and qos 1 messages, broadcasts) a lingering "
      "session keeps for its client, in order; beyond, the resume says "
      "resumed:false and qos 1 come from the saver (default: 64k)" },

    { "max_bad_frames", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_room_conf_t, max_bad_frames), &pd_room_bad_frames_bounds,
      "bad frames (bad JSON, unknown ops) a connection may send before it "
      "is closed with 1008 (default: 10, at most 65535)" },

    { "max_auth_failures", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_room_conf_t, max_auth_failures), &pd_room_count_bounds,
      "failed handshakes (bad token, bad request) one client address (an "
      "IPv6 client by its /64) may make in 10 seconds on a worker before "
      "it gets 429 without a token check; 0 for no limit (default: 20)" },

    { "apps", PD_CONF_LIST, pd_conf_set_list_slot,
      offsetof(pd_room_conf_t, apps), NULL,
      "the app names clients may bind; an unknown one is refused (400 on "
      "connect, an error frame on bind).  Without it any client may bind "
      "any name, and made-up names can fill the register's app table "
      "(default: none, any name)" },

    { "advertise", PD_CONF_LIST, pd_conf_set_list_slot,
      offsetof(pd_room_conf_t, advertise), NULL,
      "the addresses clients reach this node's room at, a list of "
      "\"host:port [ssl]\" (a name or an IP; \"ssl\" for a TLS port); "
      "in a cluster (register.backend redis) each node publishes them "
      "with its liveness and the dispatcher hands them out (default: "
      "none: the node is not dispatched to)" },

    pd_null_command
};

/* in the order of PD_ROOM_STAT_* (pd_room.h) */
static pd_stats_counter_t  pd_room_counters[] = {
    { "pushd_handshakes_total", NULL, "handshakes",
      "WebSocket sessions opened", PD_STATS_COUNTER },
    { "pushd_auth_failures_total", NULL, "auth_failures",
      "tokens refused", PD_STATS_COUNTER },
    { "pushd_rejected_total", NULL, "rejected",
      "upgrades refused (limits, bad requests)", PD_STATS_COUNTER },
    { "pushd_frames_in_total", NULL, "frames_in",
      "frames from clients", PD_STATS_COUNTER },
    { "pushd_frames_out_total", NULL, "frames_out",
      "frames to clients", PD_STATS_COUNTER },
    { "pushd_websockets", NULL, "websockets",
      "open WebSocket sessions", PD_STATS_GAUGE },
#define pd_room_close_counter(r)                                            \
    { "pushd_closes_total", "reason=\"" r "\"", "closes." r,                \
      "connections closed, by reason", PD_STATS_COUNTER }
    pd_room_close_counter("client"),
    pd_room_close_counter("idle"),
    pd_room_close_counter("kick"),
    pd_room_close_counter("protocol"),
    pd_room_close_counter("slow"),
    pd_room_close_counter("shutdown"),
    pd_room_close_counter("error"),
#undef pd_room_close_counter
    { "pushd_output_queued_bytes", NULL, NULL,
      "bytes queued to clients, not yet written", PD_STATS_GAUGE },
    { "pushd_messages_accepted_total", NULL, NULL,
      "pushes and broadcasts accepted by the API", PD_STATS_COUNTER },
    { "pushd_messages_delivered_total", NULL, NULL,
      "message frames queued to connections", PD_STATS_COUNTER },
    { "pushd_messages_acked_total", NULL, NULL,
      "acks from clients", PD_STATS_COUNTER },
    { "pushd_messages_redelivered_total", NULL, NULL,
      "stored messages sent again on (re)connect or bind",
      PD_STATS_COUNTER },
    { "pushd_qos0_dropped_total", NULL, NULL,
      "qos 0 messages that reached no connection", PD_STATS_COUNTER },
    { "pushd_broadcasts_total", NULL, NULL,
      "broadcasts accepted", PD_STATS_COUNTER },
    { "pushd_store_full_total", NULL, NULL,
      "pushes refused with 503", PD_STATS_COUNTER },
    { "pushd_broadcast_frames_total", NULL, NULL,
      "broadcast frames queued to connections", PD_STATS_COUNTER },
    { "pushd_sessions_lingering", NULL, "lingering",
      "sessions whose connection dropped, kept for room.linger",
      PD_STATS_GAUGE },
    { "pushd_sessions_resumed_total", NULL, "resumed",
      "reconnects that got their session back (resumed:true)",
      PD_STATS_COUNTER },
    { "pushd_handed_over_total", NULL, "handed_over",
      "connections handed to the next generation of workers (reload)",
      PD_STATS_COUNTER },
    { "pushd_adopted_total", NULL, "adopted",
      "connections taken over from a retiring worker (reload)",
      PD_STATS_COUNTER },
    { "pushd_broadcast_walks", NULL, "broadcast_walks",
      "broadcasts being delivered (walked) by the worker", PD_STATS_GAUGE },
    { "pushd_writes_total", NULL, "writes",
      "writes of queued frames to clients (a writev() or SSL_write(); "
      "frames_out over writes is the frames a write carries)",
      PD_STATS_COUNTER },
    { NULL, NULL, NULL, NULL, 0 }
};

pd_module_t  pd_room_module = {
    "room",
    0,
    pd_room_commands,
    pd_room_create_conf,
    pd_room_init_conf,
    pd_room_init_module,
    pd_room_init_process,
    NULL,
    NULL,
    0,
    pd_room_retire,
    NULL,
    pd_room_counters,
    0,
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
    rcf->ssl_ticket_key_rotation = PD_CONF_UNSET_MSEC;
    rcf->heartbeat = PD_CONF_UNSET_MSEC;
    rcf->heartbeat_min = PD_CONF_UNSET_MSEC;
    rcf->heartbeat_max = PD_CONF_UNSET_MSEC;
    rcf->max_frame = PD_CONF_UNSET_SIZE;
    rcf->max_message = PD_CONF_UNSET_SIZE;
    rcf->max_apps = PD_CONF_UNSET;
    rcf->max_connections_per_ip = PD_CONF_UNSET;
    rcf->handshake_rate = PD_CONF_UNSET;
    rcf->output_limit = PD_CONF_UNSET_SIZE;
    rcf->linger = PD_CONF_UNSET_MSEC;
    rcf->linger_buffer = PD_CONF_UNSET_SIZE;
    rcf->reconnect_window = PD_CONF_UNSET_MSEC;
    rcf->reload_handover = PD_CONF_UNSET;
    rcf->max_bad_frames = PD_CONF_UNSET;
    rcf->max_auth_failures = PD_CONF_UNSET;

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
    pd_conf_init_msec(rcf->ssl_ticket_key_rotation, 3600 * 1000);
    pd_conf_init_msec(rcf->heartbeat, 240000);
    pd_conf_init_msec(rcf->heartbeat_min, 30000);
    pd_conf_init_msec(rcf->heartbeat_max, 600000);
    pd_conf_init_size(rcf->max_frame, 65536);
    pd_conf_init_size(rcf->max_message, 65536);
    pd_conf_init_value(rcf->max_apps, PD_APPS_MAX);
    pd_conf_init_value(rcf->max_connections_per_ip, 1000);
    pd_conf_init_value(rcf->handshake_rate, 5000);
    pd_conf_init_size(rcf->output_limit, 256 * 1024);
    pd_conf_init_msec(rcf->linger, 30000);
    pd_conf_init_size(rcf->linger_buffer, 64 * 1024);
    pd_conf_init_value(rcf->reload_handover, 1);
    pd_conf_init_msec(rcf->reconnect_window, 30000);
    pd_conf_init_value(rcf->max_bad_frames, 10);
    pd_conf_init_value(rcf->max_auth_failures, 20);

    rv = pd_room_apps_conf(rcf);
    if (rv != NULL) {
        return rv;
    }

    if (rcf->heartbeat_min > rcf->heartbeat_max) {
        return "\"heartbeat_min\" is above \"heartbeat_max\"";
    }

    if (rcf->heartbeat < rcf->heartbeat_min
        || rcf->heartbeat > rcf->heartbeat_max)
    {
        return "\"heartbeat\" is outside heartbeat_min .. heartbeat_max";
    }

    if (rcf->max_message < rcf->max_frame) {
        rcf->max_message = rcf->max_frame;
    }

    rv = pd_cidr_parse(cycle, rcf->allow, &rcf->allow_cidr);
    if (rv == NULL) {
        rv = pd_cidr_parse(cycle, rcf->deny, &rcf->deny_cidr);
    }

    if (rv != NULL) {
        return rv;
    }

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

    if (pd_module_enabled(cycle, pd_room_module)) {
        if (rcf->auth_secret.data == NULL) {
            return "needs \"auth_secret\"";
        }

        if (rcf->auth_secret.len < 16) {
            return "\"auth_secret\" must be at least 16 characters";
        }
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
                            &rcf->ssl_certificate_key,
                            (time_t) (rcf->ssl_ticket_key_rotation / 1000),
                            cycle->pool);
        if (err != NULL) {
            cycle->conf_errstr = err;
            return PD_ERROR;
        }
    }

    return pd_http_add_listeners(cycle, rcf->listen, &rcf->http, &rcf->tls);
}

static pd_int_t
pd_room_init_process(pd_cycle_t *cycle)
{
    pd_room_deliver_init();
    return pd_room_init_channel(cycle);
}
