/*
 * pd_coordinator_module.c: the coordinator's directives (the apps list
 * of routes included) and lifecycle.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_coordinator.h"

static void *pd_coord_create_conf(pd_cycle_t *cycle);
static const char *pd_coord_init_conf(pd_cycle_t *cycle, void *conf);
static const char *pd_coord_set_apps(pd_conf_t *cf, pd_command_t *cmd,
    void *conf);
static pd_int_t pd_coord_init_module(pd_cycle_t *cycle);
static pd_int_t pd_coord_init_process(pd_cycle_t *cycle);
static void pd_coord_exit_process(pd_cycle_t *cycle);
static void pd_coord_retire_process(pd_cycle_t *cycle);

pd_coord_conf_t  *pd_coord_conf;

static pd_conf_bounds_t  pd_coord_timeout_bounds = { 10, 600 * 1000 };
static pd_conf_bounds_t  pd_coord_pending_bounds = { 1, 1000000 };
static pd_conf_bounds_t  pd_coord_conns_bounds = { 1, 1024 };
static pd_conf_bounds_t  pd_coord_rate_bounds = { 1, 65535 };
static pd_conf_bounds_t  pd_coord_batch_bounds = { 1, 10000 };
static pd_conf_bounds_t  pd_coord_flush_bounds = { 0, 60 * 1000 };
static pd_conf_bounds_t  pd_coord_queue_bounds = { 1, 10000000 };
static pd_conf_bounds_t  pd_coord_retry_bounds = { 10, 3600 * 1000 };
static pd_conf_bounds_t  pd_coord_debounce_bounds = { 0, 600 * 1000 };

static pd_command_t  pd_coord_commands[] = {

    { "secret", PD_CONF_STRING, pd_conf_set_secret_slot,
      offsetof(pd_coord_conf_t, secret), NULL,
      "signs every callback body: X-Pushd-Signature: sha256=<hex "
      "HMAC-SHA256(secret, body)> (required, at least 16 characters)" },

    { "timeout", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_coord_conf_t, timeout), &pd_coord_timeout_bounds,
      "deadline of one callback request, connecting included "
      "(default: 3s)" },

    { "apps", PD_CONF_ANY, pd_coord_set_apps,
      offsetof(pd_coord_conf_t, apps), NULL,
      "the routes, a list of {app, uplink, types, state}: where the app's "
      "\"up\" frames go (of the listed types; all when types is absent) "
      "and where its online/offline events go; http or https URLs" },

    { "ca", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_coord_conf_t, ca), NULL,
      "CA certificates (PEM file) that https receivers are verified "
      "against (default: the system's)" },

    { "max_pending", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_coord_conf_t, max_pending), &pd_coord_pending_bounds,
      "requests in flight or waiting for a connection, per URL and "
      "worker; beyond, an \"up\" is answered with an error at once "
      "(default: 256)" },

    { "connections", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_coord_conf_t, connections), &pd_coord_conns_bounds,
      "keep-alive connections per receiving host and worker "
      "(default: 8)" },

    { "up_rate", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_coord_conf_t, up_rate), &pd_coord_rate_bounds,
      "\"up\" frames one connection may send per second; beyond, each "
      "is answered with an error (default: 20)" },

    { "state_batch", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_coord_conf_t, state_batch), &pd_coord_batch_bounds,
      "most state events in one request (default: 100)" },

    { "state_flush", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_coord_conf_t, state_flush), &pd_coord_flush_bounds,
      "how long a state event may wait for others to share its request "
      "(default: 100ms)" },

    { "state_queue", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_coord_conf_t, state_queue), &pd_coord_queue_bounds,
      "state events kept per URL and worker while the receiver is slow "
      "or down; beyond, new ones are dropped, counted and logged "
      "(default: 100000)" },

    { "state_retry", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_coord_conf_t, state_retry), &pd_coord_retry_bounds,
      "first wait before a failed state request is sent again; doubled "
      "per failure, jittered (default: 200ms)" },

    { "state_retry_max", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_coord_conf_t, state_retry_max), &pd_coord_retry_bounds,
      "longest wait between retries (default: 10s)" },

    { "state_debounce", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_coord_conf_t, state_debounce), &pd_coord_debounce_bounds,
      "an offline event is held this long and dropped if the same uid, "
      "device and app is online again by then (a flapping client), so "
      "the business never sees it go offline; 0: off (default: 0)" },

    pd_null_command
};

/* in the order of PD_COORD_STAT_* (pd_coordinator.h) */
static pd_stats_counter_t  pd_coord_counters[] = {
    { "pushd_coordinator_requests_total", "kind=\"uplink\"",
      "coordinator.uplinks", "callback requests sent", PD_STATS_COUNTER },
    { "pushd_coordinator_requests_total", "kind=\"state\"",
      "coordinator.states", "callback requests sent", PD_STATS_COUNTER },
    { "pushd_coordinator_errors_total", "reason=\"status\"",
      "coordinator.err_status", "callbacks and up frames that failed",
      PD_STATS_COUNTER },
    { "pushd_coordinator_errors_total", "reason=\"timeout\"",
      "coordinator.err_timeout", "callbacks and up frames that failed",
      PD_STATS_COUNTER },
    { "pushd_coordinator_errors_total", "reason=\"failed\"",
      "coordinator.err_failed", "callbacks and up frames that failed",
      PD_STATS_COUNTER },
    { "pushd_coordinator_errors_total", "reason=\"busy\"",
      "coordinator.err_busy", "callbacks and up frames that failed",
      PD_STATS_COUNTER },
    { "pushd_coordinator_errors_total", "reason=\"rate\"",
      "coordinator.err_rate", "callbacks and up frames that failed",
      PD_STATS_COUNTER },
    { "pushd_coordinator_errors_total", "reason=\"route\"",
      "coordinator.err_route", "callbacks and up frames that failed",
      PD_STATS_COUNTER },
    { "pushd_coordinator_retries_total", NULL, "coordinator.retries",
      "state requests sent again after a failure", PD_STATS_COUNTER },
    { "pushd_coordinator_pending", NULL, "coordinator.pending",
      "callback requests in flight or waiting for a connection",
      PD_STATS_GAUGE },
    { "pushd_coordinator_queued_events", NULL, "coordinator.queued",
      "state events waiting to be sent", PD_STATS_GAUGE },
    { "pushd_coordinator_events_total", NULL, "coordinator.events",
      "state events the receivers took", PD_STATS_COUNTER },
    { "pushd_coordinator_dropped_events_total", NULL, "coordinator.dropped",
      "state events dropped over state_queue", PD_STATS_COUNTER },
    { "pushd_coordinator_debounced_events_total", NULL,
      "coordinator.debounced", "offline events not sent: the same uid, "
      "device and app was online again within state_debounce",
      PD_STATS_COUNTER },
    { NULL, NULL, NULL, NULL, 0 }
};

pd_module_t  pd_coordinator_module = {
    "coordinator",
    0,
    pd_coord_commands,
    pd_coord_create_conf,
    pd_coord_init_conf,
    pd_coord_init_module,
    pd_coord_init_process,
    pd_coord_exit_process,
    NULL,
    0,
    pd_coord_retire_process,
    NULL,
    pd_coord_counters,
    0,
    pd_coord_metrics
};

static const char *pd_coord_read_ca(pd_cycle_t *cycle, pd_coord_conf_t *ccf);

static void *
pd_coord_create_conf(pd_cycle_t *cycle)
{
    pd_coord_conf_t  *ccf;

    ccf = pd_pcalloc(cycle->pool, sizeof(pd_coord_conf_t));
    if (ccf == NULL) {
        return NULL;
    }

    ccf->timeout = PD_CONF_UNSET_MSEC;
    ccf->max_pending = PD_CONF_UNSET;
    ccf->connections = PD_CONF_UNSET;
    ccf->up_rate = PD_CONF_UNSET;
    ccf->state_batch = PD_CONF_UNSET;
    ccf->state_flush = PD_CONF_UNSET_MSEC;
    ccf->state_queue = PD_CONF_UNSET;
    ccf->state_retry = PD_CONF_UNSET_MSEC;
    ccf->state_retry_max = PD_CONF_UNSET_MSEC;
    ccf->state_debounce = PD_CONF_UNSET_MSEC;

    return ccf;
}

static const char *
pd_coord_init_conf(pd_cycle_t *cycle, void *conf)
{
    pd_coord_conf_t  *ccf = conf;

    pd_conf_init_msec(ccf->timeout, 3000);
    pd_conf_init_value(ccf->max_pending, 256);
    pd_conf_init_value(ccf->connections, 8);
    pd_conf_init_value(ccf->up_rate, 20);
    pd_conf_init_value(ccf->state_batch, 100);
    pd_conf_init_msec(ccf->state_flush, 100);
    pd_conf_init_value(ccf->state_queue, 100000);
    pd_conf_init_msec(ccf->state_retry, 200);
    pd_conf_init_msec(ccf->state_retry_max, 10000);
    pd_conf_init_msec(ccf->state_debounce, 0);

    if (!pd_module_enabled(cycle, pd_coordinator_module)) {
        return PD_CONF_OK;
    }

    if (ccf->secret.data == NULL) {
        return "needs \"secret\"";
    }

    if (ccf->secret.len < 16) {
        return "\"secret\" must be at least 16 characters";
    }

    if (ccf->apps == NULL || ccf->apps->nelts == 0) {
        return "needs \"apps\": a list of routes";
    }

    if (ccf->state_retry_max < ccf->state_retry) {
        return "\"state_retry_max\" must not be less than \"state_retry\"";
    }

    if (ccf->ca.data != NULL) {
        if (pd_conf_full_name(cycle, &ccf->ca) != PD_OK) {
            return "out of memory";
        }

        return pd_coord_read_ca(cycle, ccf);
    }

    return PD_CONF_OK;
}

/*
 * The CA bundle is read here, by the master, as the configuration is: the
 * workers may run as a user that cannot read it (a bundle under /root),
 * and an unreadable one is a configuration error at start or reload, not
 * a failed callback later.  libcurl takes it as a blob.
 */
#define PD_COORD_CA_MAX  (8 * 1024 * 1024)

static const char *
pd_coord_read_ca(pd_cycle_t *cycle, pd_coord_conf_t *ccf)
{
    struct stat  st;
    ssize_t      n;
    size_t       got;
    int          fd;

    fd = open((char *) ccf->ca.data, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        pd_log_error(PD_LOG_EMERG, cycle->log, errno,
                     "coordinator: open(\"%s\") failed", ccf->ca.data);
        return "\"ca\" cannot be read";
    }

    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)
        || st.st_size == 0 || st.st_size > PD_COORD_CA_MAX)
    {
        (void) close(fd);
        return "\"ca\" must be a PEM file of 1 byte to 8 MB";
    }

    ccf->ca_pem.data = pd_pnalloc(cycle->pool, (size_t) st.st_size);
    if (ccf->ca_pem.data == NULL) {
        (void) close(fd);
        return "out of memory";
    }

    for (got = 0; got < (size_t) st.st_size; got += (size_t) n) {
        n = read(fd, ccf->ca_pem.data + got, (size_t) st.st_size - got);

        if (n <= 0) {
            pd_log_error(PD_LOG_EMERG, cycle->log, n == 0 ? 0 : errno,
                         "coordinator: read(\"%s\") failed", ccf->ca.data);
            (void) close(fd);
            return "\"ca\" cannot be read";
        }
    }

    (void) close(fd);
    ccf->ca_pem.len = got;

    return PD_CONF_OK;
}


/* a scalar's copy in the pool, NUL-terminated; NULL: not a scalar */
static const char *
pd_coord_scalar(pd_conf_t *cf, yaml_node_t *node, pd_str_t *out)
{
    pd_str_t  s;

    if (node->type != YAML_SCALAR_NODE || node->data.scalar.length == 0) {
        cf->err_node = node;
        return "must be a string";
    }

    s.data = node->data.scalar.value;
    s.len = node->data.scalar.length;

    out->data = pd_pstrdup(cf->pool, &s);
    if (out->data == NULL) {
        return "out of memory";
    }

    out->len = s.len;
    return PD_CONF_OK;
}

/* one upstream per distinct URL and kind, so a bound is per receiver */
static const char *
pd_coord_upstream(pd_conf_t *cf, pd_coord_conf_t *ccf, yaml_node_t *node,
    pd_uint_t state, pd_coord_upstream_t **out)
{
    pd_str_t              url;
    pd_uint_t             i;
    const char           *rv;
    pd_coord_upstream_t  *up, **ups;

    rv = pd_coord_scalar(cf, node, &url);
    if (rv != PD_CONF_OK) {
        return rv;
    }

    if (url.len < sizeof("http://x") - 1
        || (strncasecmp((char *) url.data, "http://", 7) != 0
            && strncasecmp((char *) url.data, "https://", 8) != 0))
    {
        cf->err_node = node;
        return "must be an http:// or https:// URL";
    }

    if (ccf->upstreams == NULL) {
        ccf->upstreams = pd_array_create(cf->pool, 4,
                                         sizeof(pd_coord_upstream_t *));
        if (ccf->upstreams == NULL) {
            return "out of memory";
        }
    }

    ups = ccf->upstreams->elts;

    for (i = 0; i < ccf->upstreams->nelts; i++) {
        if (ups[i]->state == state && ups[i]->url.len == url.len
            && memcmp(ups[i]->url.data, url.data, url.len) == 0)
        {
            *out = ups[i];
            return PD_CONF_OK;
        }
    }

    up = pd_pcalloc(cf->pool, sizeof(pd_coord_upstream_t));
    ups = pd_array_push(ccf->upstreams);
    if (up == NULL || ups == NULL) {
        return "out of memory";
    }

    up->url = url;
    up->state = state;
    *ups = up;
    *out = up;

    return PD_CONF_OK;
}

static const char *
pd_coord_set_types(pd_conf_t *cf, yaml_node_t *node, pd_coord_app_t *app)
{
    pd_str_t          *t;
    const char        *rv;
    yaml_node_t       *item;
    yaml_node_item_t  *i;

    if (node->type != YAML_SEQUENCE_NODE) {
        cf->err_node = node;
        return "must be a list of type names";
    }

    app->types = pd_array_create(cf->pool, 4, sizeof(pd_str_t));
    if (app->types == NULL) {
        return "out of memory";
    }

    for (i = node->data.sequence.items.start;
         i < node->data.sequence.items.top; i++)
    {
        item = yaml_document_get_node(cf->doc, *i);

        t = pd_array_push(app->types);
        if (t == NULL) {
            return "out of memory";
        }

        rv = pd_coord_scalar(cf, item, t);
        if (rv != PD_CONF_OK) {
            return rv;
        }

        if (pd_token_valid_name(t, PD_APP_MAX) != PD_OK) {
            cf->err_node = item;
            return "has an invalid type name";
        }
    }

    return PD_CONF_OK;
}

/* one route: {app, uplink, types, state} */
static const char *
pd_coord_set_app(pd_conf_t *cf, void *conf, yaml_node_t *node)
{
    pd_coord_conf_t   *ccf = conf;
    pd_coord_app_t    *app;
    const char        *rv, *key;
    yaml_node_t       *k, *v;
    yaml_node_pair_t  *pair;

    if (node->type != YAML_MAPPING_NODE) {
        cf->err_node = node;
        return "must be a list of {app, uplink, types, state}";
    }

    app = pd_array_push(ccf->apps);
    if (app == NULL) {
        return "out of memory";
    }

    pd_memzero(app, sizeof(pd_coord_app_t));

    for (pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top; pair++)
    {
        k = yaml_document_get_node(cf->doc, pair->key);
        v = yaml_document_get_node(cf->doc, pair->value);
        key = k->type == YAML_SCALAR_NODE ? (char *) k->data.scalar.value
                                          : "";

        if (strcmp(key, "app") == 0) {
            rv = pd_coord_scalar(cf, v, &app->app);
            if (rv == PD_CONF_OK
                && pd_token_valid_name(&app->app, PD_APP_MAX) != PD_OK)
            {
                cf->err_node = v;
                rv = "has an invalid app name";
            }

        } else if (strcmp(key, "uplink") == 0) {
            rv = pd_coord_upstream(cf, ccf, v, 0, &app->uplink);

        } else if (strcmp(key, "state") == 0) {
            rv = pd_coord_upstream(cf, ccf, v, 1, &app->state);

        } else if (strcmp(key, "types") == 0) {
            rv = pd_coord_set_types(cf, v, app);

        } else {
            cf->err_node = k;
            rv = "has an unknown key (app, uplink, types, state)";
        }

        if (rv != PD_CONF_OK) {
            return rv;
        }
    }

    if (app->app.data == NULL) {
        cf->err_node = node;
        return "has a route without \"app\"";
    }

    if (app->uplink == NULL && app->state == NULL) {
        cf->err_node = node;
        return "has a route with neither \"uplink\" nor \"state\"";
    }

    if (pd_coord_app_in(ccf, app) != NULL) {
        cf->err_node = node;
        return "names an app twice";
    }

    return PD_CONF_OK;
}

static const char *
pd_coord_set_apps(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    pd_coord_conf_t  *ccf = conf;

    (void) cmd;

    return pd_conf_set_each(cf, ccf, &ccf->apps, sizeof(pd_coord_app_t), 4,
                            0, "must be a list of {app, uplink, types, "
                            "state}", pd_coord_set_app);
}

/* the route of app among those before last (the one being added) */
pd_coord_app_t *
pd_coord_app_in(pd_coord_conf_t *ccf, pd_coord_app_t *last)
{
    pd_coord_app_t  *a = ccf->apps->elts;
    pd_uint_t        i;

    for (i = 0; &a[i] != last && i < ccf->apps->nelts; i++) {
        if (a[i].app.len == last->app.len
            && memcmp(a[i].app.data, last->app.data, last->app.len) == 0)
        {
            return &a[i];
        }
    }

    return NULL;
}

pd_coord_app_t *
pd_coord_app(const u_char *name, size_t len)
{
    pd_coord_app_t  *a;
    pd_uint_t        i;

    if (pd_coord_conf == NULL) {
        return NULL;
    }

    a = pd_coord_conf->apps->elts;

    for (i = 0; i < pd_coord_conf->apps->nelts; i++) {
        if (a[i].app.len == len && memcmp(a[i].app.data, name, len) == 0) {
            return &a[i];
        }
    }

    return NULL;
}

static pd_int_t
pd_coord_init_module(pd_cycle_t *cycle)
{
    if (!pd_module_enabled(cycle, pd_coordinator_module)) {
        return PD_OK;
    }

    /* before fork: libcurl's and OpenSSL's global state, once */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        pd_log_error(PD_LOG_EMERG, cycle->log, 0,
                     "curl_global_init() failed");
        return PD_ERROR;
    }

    return pd_coord_stats_zone(cycle, pd_get_conf(cycle,
                                                  pd_coordinator_module));
}

static pd_int_t
pd_coord_init_process(pd_cycle_t *cycle)
{
    pd_coord_conf_t  *ccf;

    if (!pd_module_enabled(cycle, pd_coordinator_module)) {
        return PD_OK;
    }

    ccf = pd_get_conf(cycle, pd_coordinator_module);

    if (pd_coord_http_init(cycle, ccf) != PD_OK) {
        return PD_ERROR;
    }

    pd_coord_state_init(ccf);
    pd_coord_debounce_init();
    pd_coord_stats_claim(ccf);

    pd_coord_conf = ccf;
    pd_room_up_handler = pd_coord_up;
    pd_room_state_handler = pd_coord_state;

    return PD_OK;
}

/* this worker's share of pd_exit_holds */
static pd_uint_t  pd_coord_holding;

static void
pd_coord_retire_process(pd_cycle_t *cycle)
{
    (void) cycle;

    if (pd_coord_conf == NULL) {
        return;
    }

    pd_coord_debounce_retire();
    pd_coord_state_retire();
    pd_coord_exit_hold();
}

void
pd_coord_exit_hold(void)
{
    pd_uint_t  want;

    want = pd_exiting && pd_coord_conf != NULL
           && (pd_coord_state_busy() || pd_coord_debounce_busy());

    if (want && !pd_coord_holding) {
        pd_exit_holds++;

    } else if (!want && pd_coord_holding) {
        pd_exit_holds--;
    }

    pd_coord_holding = want;
}

static void
pd_coord_exit_process(pd_cycle_t *cycle)
{
    (void) cycle;

    if (pd_coord_conf == NULL) {
        return;
    }

    pd_room_up_handler = NULL;
    pd_room_state_handler = NULL;

    pd_coord_debounce_exit();
    pd_coord_state_exit();
    pd_coord_http_exit();
    pd_coord_conf = NULL;
}
