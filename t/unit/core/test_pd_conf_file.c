/* test_pd_conf_file.c: the YAML dispatcher, setters and value parsers. */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>


/*
 * A toplevel module and two sections of the test's own, so the
 * dispatcher is tested apart from the real modules' tables.
 */

typedef struct {
    pd_int_t     daemon;
    pd_int_t     workers;
    pd_int_t     connections;
    pd_int_t     offset;
    size_t       buffer_size;
    size_t       max_body;
    pd_msec_t    shutdown_timeout;
    pd_msec_t    idle;
    pd_str_t     pid;
    pd_uint_t    log_level;
} pd_test_top_conf_t;

typedef struct {
    pd_array_t        *listen;
    pd_array_t        *apps;
    pd_str_t           auth_secret;
    pd_msec_t          heartbeat;
    pd_str_t           ssl_certificate;
    pd_uint_t          backend;
    pd_listen_conf_t   redis;
} pd_test_room_conf_t;

static const char *pd_test_set_workers(pd_conf_t *cf, pd_command_t *cmd,
    void *conf);
static void *pd_test_top_create(pd_cycle_t *cycle);
static const char *pd_test_top_init(pd_cycle_t *cycle, void *conf);
static void *pd_test_room_create(pd_cycle_t *cycle);
static const char *pd_test_room_init(pd_cycle_t *cycle, void *conf);
static const char *pd_test_stats_init(pd_cycle_t *cycle, void *conf);

static pd_conf_bounds_t  pd_test_connections_bounds = { 1, 1048576 };
static pd_conf_bounds_t  pd_test_offset_bounds = { -10, 10 };
static pd_conf_bounds_t  pd_test_buffer_bounds = { 1024, 1024 * 1024 };
static pd_conf_bounds_t  pd_test_shutdown_bounds = { 0, 86400 * 1000 };
static pd_conf_bounds_t  pd_test_idle_bounds = { 100, 60 * 1000 };
static pd_conf_bounds_t  pd_test_heartbeat_bounds = { 1000, 3600 * 1000 };

#define PD_TEST_DEBUG   0
#define PD_TEST_INFO    1
#define PD_TEST_ERROR   2

static pd_conf_enum_t  pd_test_levels[] = {
    { pd_string("debug"), PD_TEST_DEBUG },
    { pd_string("info"), PD_TEST_INFO },
    { pd_string("error"), PD_TEST_ERROR },
    { pd_null_string, 0 }
};

#define PD_TEST_MEMORY  1
#define PD_TEST_REDIS   2

static pd_conf_enum_t  pd_test_backends[] = {
    { pd_string("memory"), PD_TEST_MEMORY },
    { pd_string("redis"), PD_TEST_REDIS },
    { pd_null_string, 0 }
};

static pd_command_t  pd_test_top_commands[] = {
    { "daemon", PD_CONF_FLAG, pd_conf_set_flag_slot,
      offsetof(pd_test_top_conf_t, daemon), NULL, "" },
    { "worker_processes", PD_CONF_ANY, pd_test_set_workers,
      offsetof(pd_test_top_conf_t, workers), NULL, "" },
    /* a second name for the same field: the setter's own duplicate check */
    { "workers", PD_CONF_ANY, pd_test_set_workers,
      offsetof(pd_test_top_conf_t, workers), NULL, "" },
    { "worker_connections", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_test_top_conf_t, connections),
      &pd_test_connections_bounds, "" },
    { "offset", PD_CONF_NUMBER, pd_conf_set_num_slot,
      offsetof(pd_test_top_conf_t, offset), &pd_test_offset_bounds, "" },
    { "buffer_size", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_test_top_conf_t, buffer_size), &pd_test_buffer_bounds, "" },
    { "max_body", PD_CONF_SIZE, pd_conf_set_size_slot,
      offsetof(pd_test_top_conf_t, max_body), NULL, "" },
    { "shutdown_timeout", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_test_top_conf_t, shutdown_timeout),
      &pd_test_shutdown_bounds, "" },
    { "idle", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_test_top_conf_t, idle), &pd_test_idle_bounds, "" },
    { "pid", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_test_top_conf_t, pid), NULL, "" },
    { "log_level", PD_CONF_ENUM, pd_conf_set_enum_slot,
      offsetof(pd_test_top_conf_t, log_level), pd_test_levels, "" },
    pd_null_command
};

static pd_command_t  pd_test_room_commands[] = {
    { "listen", PD_CONF_LISTEN, pd_conf_set_listen_slot,
      offsetof(pd_test_room_conf_t, listen), NULL, "" },
    { "apps", PD_CONF_LIST, pd_conf_set_list_slot,
      offsetof(pd_test_room_conf_t, apps), NULL, "" },
    { "auth_secret", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_test_room_conf_t, auth_secret), NULL, "" },
    { "heartbeat", PD_CONF_DURATION, pd_conf_set_msec_slot,
      offsetof(pd_test_room_conf_t, heartbeat), &pd_test_heartbeat_bounds,
      "" },
    { "ssl_certificate", PD_CONF_STRING, pd_conf_set_str_slot,
      offsetof(pd_test_room_conf_t, ssl_certificate), NULL, "" },
    { "backend", PD_CONF_ENUM, pd_conf_set_enum_slot,
      offsetof(pd_test_room_conf_t, backend), pd_test_backends, "" },
    { "redis", PD_CONF_ADDRESS, pd_conf_set_addr_slot,
      offsetof(pd_test_room_conf_t, redis), NULL, "" },
    pd_null_command
};

static pd_module_t  pd_test_top_module = {
    "core", 0, pd_test_top_commands, pd_test_top_create, pd_test_top_init,
    NULL, NULL, NULL, NULL, 1, NULL, NULL, NULL, 0, NULL
};

static pd_module_t  pd_test_room_module = {
    "room", 0, pd_test_room_commands, pd_test_room_create, pd_test_room_init,
    NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, 0, NULL
};

/* no directives and no conf: only its presence counts */
static pd_module_t  pd_test_stats_module = {
    "stats", 0, NULL, NULL, pd_test_stats_init,
    NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, 0, NULL
};

pd_module_t  *pd_modules[] = {
    &pd_test_top_module,
    &pd_test_room_module,
    &pd_test_stats_module,
    NULL
};

const char  *pd_module_names[] = { "core", "room", "stats", NULL };

/* how often each init_conf ran, and a switch to make stats refuse */
static pd_uint_t  pd_test_init_calls[3];
static pd_uint_t  pd_test_stats_fail;


static const char *
pd_test_set_workers(pd_conf_t *cf, pd_command_t *cmd, void *conf)
{
    pd_int_t  *np, n;

    np = (pd_int_t *) ((u_char *) conf + cmd->offset);

    if (*np != PD_CONF_UNSET) {
        return "is duplicate";
    }

    if (cf->value.data == NULL) {
        return "must be a number or \"auto\"";
    }

    if (cf->value.len == 4 && memcmp(cf->value.data, "auto", 4) == 0) {
        *np = -1;
        return PD_CONF_OK;
    }

    n = pd_atoi(cf->value.data, cf->value.len);
    if (n < 1) {
        return "must be a number or \"auto\"";
    }

    *np = n;
    return PD_CONF_OK;
}


static void *
pd_test_top_create(pd_cycle_t *cycle)
{
    pd_test_top_conf_t  *c;

    c = pd_pcalloc(cycle->pool, sizeof(pd_test_top_conf_t));
    if (c == NULL) {
        return NULL;
    }

    c->daemon = PD_CONF_UNSET;
    c->workers = PD_CONF_UNSET;
    c->connections = PD_CONF_UNSET;
    c->offset = PD_CONF_UNSET;
    c->buffer_size = PD_CONF_UNSET_SIZE;
    c->max_body = PD_CONF_UNSET_SIZE;
    c->shutdown_timeout = PD_CONF_UNSET_MSEC;
    c->idle = PD_CONF_UNSET_MSEC;
    c->log_level = PD_CONF_UNSET_UINT;

    return c;
}


static const char *
pd_test_top_init(pd_cycle_t *cycle, void *conf)
{
    pd_test_top_conf_t  *c = conf;

    (void) cycle;

    pd_test_init_calls[0]++;

    pd_conf_init_value(c->daemon, 1);
    pd_conf_init_value(c->workers, -1);
    pd_conf_init_value(c->connections, 10240);
    pd_conf_init_value(c->offset, 0);
    pd_conf_init_size(c->buffer_size, 16384);
    pd_conf_init_size(c->max_body, 1024 * 1024);
    pd_conf_init_msec(c->shutdown_timeout, 10000);
    pd_conf_init_msec(c->idle, 60000);
    pd_conf_init_uint(c->log_level, PD_TEST_ERROR);

    if (c->pid.data != NULL && c->pid.len == 0) {
        return "\"pid\" must not be empty";
    }

    return PD_CONF_OK;
}


static void *
pd_test_room_create(pd_cycle_t *cycle)
{
    pd_test_room_conf_t  *c;

    c = pd_pcalloc(cycle->pool, sizeof(pd_test_room_conf_t));
    if (c == NULL) {
        return NULL;
    }

    c->heartbeat = PD_CONF_UNSET_MSEC;
    c->backend = PD_CONF_UNSET_UINT;

    return c;
}


static const char *
pd_test_room_init(pd_cycle_t *cycle, void *conf)
{
    pd_uint_t             i;
    pd_test_room_conf_t  *c = conf;
    pd_listen_conf_t     *lc;

    (void) cycle;

    pd_test_init_calls[1]++;

    pd_conf_init_msec(c->heartbeat, 240000);
    pd_conf_init_uint(c->backend, PD_TEST_MEMORY);

    if (c->listen == NULL) {
        return PD_CONF_OK;
    }

    lc = c->listen->elts;

    for (i = 0; i < c->listen->nelts; i++) {
        if (lc[i].ssl && c->ssl_certificate.data == NULL) {
            return "needs \"ssl_certificate\" for an ssl listen";
        }
    }

    if (c->apps != NULL && c->auth_secret.data == NULL) {
        return "\"apps\" needs \"auth_secret\"";
    }

    return PD_CONF_OK;
}


static const char *
pd_test_stats_init(pd_cycle_t *cycle, void *conf)
{
    (void) cycle;

    pd_test_init_calls[2]++;

    /* a module without create_conf gets no conf */
    if (conf != NULL) {
        return "got a conf it never created";
    }

    return pd_test_stats_fail ? "needs a \"zone\"" : PD_CONF_OK;
}


/* fixtures: t/unit/core/conf, found beside this source file */

typedef struct {
    const char          *file;
    const char          *expect;   /* the message after "path:" */
} pd_test_bad_t;

typedef struct {
    pd_cycle_t           cycle;
    const pd_test_bad_t *bad;
    u_char               err[PD_CONF_ERRSTR_SIZE];
    char                 path[PATH_MAX];
} pd_test_ctx_t;


static const char *
pd_test_conf_dir(void)
{
    static char  dir[PATH_MAX];
    const char  *env, *slash;
    struct stat  st;

    env = getenv("PD_TEST_CONF_DIR");
    if (env != NULL) {
        return env;
    }

    slash = strrchr(__FILE__, '/');
    if (slash == NULL) {
        return "conf";
    }

    /* the build may run the binary from objs/ with a relative __FILE__ */
    (void) snprintf(dir, sizeof(dir), "%.*s/conf",
                    (int) (slash - __FILE__), __FILE__);

    if (stat(dir, &st) != 0 && __FILE__[0] != '/') {
        (void) snprintf(dir, sizeof(dir), "../%.*s/conf",
                        (int) (slash - __FILE__), __FILE__);
    }

    return dir;
}


static int
pd_test_setup(void **state)
{
    pd_test_ctx_t  *ctx;

    ctx = calloc(1, sizeof(pd_test_ctx_t));
    if (ctx == NULL) {
        return -1;
    }

    ctx->bad = *state;
    ctx->cycle.pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, NULL);
    if (ctx->cycle.pool == NULL) {
        free(ctx);
        return -1;
    }

    pd_str_set(&ctx->cycle.prefix, "/srv/pushd/");
    pd_memzero(pd_test_init_calls, sizeof(pd_test_init_calls));
    pd_test_stats_fail = 0;

    *state = ctx;
    return 0;
}


static int
pd_test_teardown(void **state)
{
    pd_test_ctx_t  *ctx = *state;

    pd_destroy_pool(ctx->cycle.pool);
    free(ctx);

    return 0;
}


static pd_int_t
pd_test_parse(pd_test_ctx_t *ctx, const char *file)
{
    pd_str_t  name;

    (void) snprintf(ctx->path, sizeof(ctx->path), "%s/%s",
                    pd_test_conf_dir(), file);

    name.data = (u_char *) ctx->path;
    name.len = strlen(ctx->path);

    return pd_conf_parse(&ctx->cycle, &name, ctx->err, sizeof(ctx->err));
}


#define pd_test_conf(ctx, module)                                            \
    ((ctx)->cycle.conf_ctx[pd_test_##module##_module.index])

#define pd_test_str_equal(s, lit)                                            \
    do {                                                                     \
        assert_int_equal((s)->len, sizeof(lit) - 1);                         \
        assert_memory_equal((s)->data, lit, sizeof(lit) - 1);                \
        assert_int_equal((s)->data[(s)->len], '\0');                         \
    } while (0)


static void
pd_test_assert_listen(pd_listen_conf_t *lc, int family, const char *text,
    unsigned ssl)
{
    assert_int_equal(lc->sockaddr.ss_family, family);
    assert_int_equal(lc->socklen, family == AF_INET
                     ? sizeof(struct sockaddr_in)
                     : sizeof(struct sockaddr_in6));
    assert_int_equal(lc->text.len, strlen(text));
    assert_string_equal((char *) lc->text.data, text);
    assert_int_equal(lc->ssl, ssl);
}


static void
test_good_all(void **state)
{
    pd_str_t             *app;
    pd_test_ctx_t        *ctx = *state;
    pd_listen_conf_t     *lc;
    pd_test_top_conf_t   *top;
    pd_test_room_conf_t  *room;

    /* the message first: it says what went wrong */
    (void) pd_test_parse(ctx, "good_all.yaml");
    assert_string_equal((char *) ctx->err, "");

    assert_int_equal(ctx->cycle.enabled[0], 1);
    assert_int_equal(ctx->cycle.enabled[1], 1);
    assert_int_equal(ctx->cycle.enabled[2], 1);
    assert_null(ctx->cycle.conf_ctx[2]);

    top = pd_test_conf(ctx, top);
    assert_int_equal(top->daemon, 0);
    assert_int_equal(top->workers, 4);
    assert_int_equal(top->connections, 20000);
    assert_int_equal(top->offset, -3);
    assert_int_equal(top->buffer_size, 64 * 1024);
    assert_int_equal(top->max_body, 2ULL * 1024 * 1024 * 1024);
    assert_int_equal(top->shutdown_timeout, 250);
    assert_int_equal(top->idle, 45000);
    pd_test_str_equal(&top->pid, "run/pushd.pid");
    assert_int_equal(top->log_level, PD_TEST_INFO);

    room = pd_test_conf(ctx, room);
    assert_non_null(room->listen);
    assert_int_equal(room->listen->nelts, 6);
    lc = room->listen->elts;
    pd_test_assert_listen(&lc[0], AF_INET, "0.0.0.0:80", 0);
    pd_test_assert_listen(&lc[1], AF_INET, "0.0.0.0:8080", 1);
    pd_test_assert_listen(&lc[2], AF_INET, "127.0.0.1:8090", 0);
    pd_test_assert_listen(&lc[3], AF_INET, "0.0.0.0:443", 1);
    pd_test_assert_listen(&lc[4], AF_INET6, "[::1]:8080", 0);
    pd_test_assert_listen(&lc[5], AF_INET6, "[::]:80", 0);
    assert_int_equal(ntohs(((struct sockaddr_in *) &lc[2].sockaddr)->sin_port),
                     8090);
    assert_int_equal(ntohl(((struct sockaddr_in *) &lc[2].sockaddr)
                           ->sin_addr.s_addr), INADDR_LOOPBACK);

    assert_int_equal(room->apps->nelts, 3);
    app = room->apps->elts;
    pd_test_str_equal(&app[0], "chat");
    pd_test_str_equal(&app[1], "news");
    pd_test_str_equal(&app[2], "a b");

    pd_test_str_equal(&room->auth_secret, "s3cr3t");
    assert_int_equal(room->heartbeat, 240000);
    pd_test_str_equal(&room->ssl_certificate, "cert.pem");
    assert_int_equal(room->backend, PD_TEST_REDIS);
    pd_test_assert_listen(&room->redis, AF_INET, "10.0.0.1:6379", 0);

    assert_int_equal(pd_test_init_calls[0], 1);
    assert_int_equal(pd_test_init_calls[1], 1);
    assert_int_equal(pd_test_init_calls[2], 1);
}


static void
test_good_defaults(void **state)
{
    pd_test_ctx_t        *ctx = *state;
    pd_test_top_conf_t   *top;
    pd_test_room_conf_t  *room;

    assert_int_equal(pd_test_parse(ctx, "good_defaults.yaml"), PD_OK);

    assert_int_equal(ctx->cycle.enabled[0], 1);
    assert_int_equal(ctx->cycle.enabled[1], 1);
    assert_int_equal(ctx->cycle.enabled[2], 1);

    top = pd_test_conf(ctx, top);
    assert_int_equal(top->daemon, 1);
    assert_int_equal(top->workers, -1);
    assert_int_equal(top->connections, 10240);
    assert_int_equal(top->buffer_size, 16384);
    assert_int_equal(top->shutdown_timeout, 10000);
    assert_null(top->pid.data);
    assert_int_equal(top->log_level, PD_TEST_ERROR);

    room = pd_test_conf(ctx, room);
    assert_null(room->listen);
    assert_null(room->apps);
    assert_null(room->auth_secret.data);
    assert_int_equal(room->heartbeat, 240000);
    assert_int_equal(room->backend, PD_TEST_MEMORY);
    assert_int_equal(room->redis.socklen, 0);
}


static void
test_good_quoted(void **state)
{
    pd_str_t             *app;
    pd_test_ctx_t        *ctx = *state;
    pd_listen_conf_t     *lc;
    pd_test_top_conf_t   *top;
    pd_test_room_conf_t  *room;

    assert_int_equal(pd_test_parse(ctx, "good_quoted.yaml"), PD_OK);
    assert_int_equal(ctx->cycle.enabled[2], 0);

    top = pd_test_conf(ctx, top);
    assert_int_equal(top->daemon, 1);
    assert_int_equal(top->workers, -1);
    assert_int_equal(top->connections, 1048576);
    assert_int_equal(top->buffer_size, 1024 * 1024);
    assert_int_equal(top->max_body, 0);
    assert_int_equal(top->shutdown_timeout, 86400 * 1000);
    assert_int_equal(top->idle, 100);
    pd_test_str_equal(&top->pid, "/var/run/pushd.pid");
    assert_int_equal(top->log_level, PD_TEST_ERROR);

    room = pd_test_conf(ctx, room);
    assert_int_equal(room->listen->nelts, 1);
    lc = room->listen->elts;
    pd_test_assert_listen(lc, AF_INET6, "[::1]:9000", 0);

    assert_int_equal(room->apps->nelts, 1);
    app = room->apps->elts;
    pd_test_str_equal(app, "solo");

    /* the alias resolves to the anchored scalar */
    pd_test_str_equal(&room->auth_secret, "/var/run/pushd.pid");
    assert_int_equal(room->heartbeat, 1000);
    assert_int_equal(room->backend, PD_TEST_MEMORY);
    pd_test_assert_listen(&room->redis, AF_INET6, "[::1]:6379", 0);
}


/* an absent section is not enabled, but its init_conf sets defaults */
static void
test_good_top_only(void **state)
{
    pd_test_ctx_t        *ctx = *state;
    pd_test_top_conf_t   *top;
    pd_test_room_conf_t  *room;

    assert_int_equal(pd_test_parse(ctx, "good_top_only.yaml"), PD_OK);

    assert_int_equal(ctx->cycle.enabled[0], 1);
    assert_int_equal(ctx->cycle.enabled[1], 0);
    assert_int_equal(ctx->cycle.enabled[2], 0);

    top = pd_test_conf(ctx, top);
    assert_int_equal(top->daemon, 1);
    assert_int_equal(top->connections, 1);

    room = pd_test_conf(ctx, room);
    assert_int_equal(room->heartbeat, 240000);
    assert_int_equal(pd_test_init_calls[1], 1);
    assert_int_equal(pd_test_init_calls[2], 1);
}


/* the caller's own conf_ctx and enabled arrays are used, not replaced */
static void
test_caller_arrays(void **state)
{
    void           *ctxs[4];
    u_char          enabled[4];
    pd_test_ctx_t  *ctx = *state;

    pd_memzero(ctxs, sizeof(ctxs));
    memset(enabled, 7, sizeof(enabled));
    ctx->cycle.conf_ctx = ctxs;
    ctx->cycle.enabled = enabled;

    assert_int_equal(pd_test_parse(ctx, "good_top_only.yaml"), PD_OK);

    assert_ptr_equal(ctx->cycle.conf_ctx, ctxs);
    assert_non_null(ctxs[0]);
    assert_non_null(ctxs[1]);
    assert_null(ctxs[2]);
    assert_int_equal(enabled[0], 1);
    assert_int_equal(enabled[1], 0);
    assert_int_equal(enabled[2], 0);
    assert_int_equal(((pd_test_top_conf_t *) ctxs[0])->connections, 1);
}


static void
test_missing_file(void **state)
{
    pd_test_ctx_t  *ctx = *state;
    char            expect[PATH_MAX + 64];

    assert_int_equal(pd_test_parse(ctx, "no-such-file.yaml"), PD_ERROR);

    (void) snprintf(expect, sizeof(expect),
                    "open() \"%s\" failed (2: No such file or directory)",
                    ctx->path);
    assert_string_equal((char *) ctx->err, expect);
}


/* a module that is absent still has its init_conf errors reported */
static void
test_init_absent_module(void **state)
{
    pd_test_ctx_t  *ctx = *state;
    char            expect[PATH_MAX + 64];

    pd_test_stats_fail = 1;

    assert_int_equal(pd_test_parse(ctx, "good_top_only.yaml"), PD_ERROR);

    (void) snprintf(expect, sizeof(expect),
                    "%s:1:1: \"stats\" needs a \"zone\"", ctx->path);
    assert_string_equal((char *) ctx->err, expect);
}


/* a short buffer gets a cut, NUL-terminated message */
static void
test_short_err_buffer(void **state)
{
    u_char          err[8];
    pd_str_t        name;
    pd_test_ctx_t  *ctx = *state;

    (void) snprintf(ctx->path, sizeof(ctx->path), "%s/%s",
                    pd_test_conf_dir(), "bad_flag.yaml");
    name.data = (u_char *) ctx->path;
    name.len = strlen(ctx->path);

    memset(err, 'x', sizeof(err));
    assert_int_equal(pd_conf_parse(&ctx->cycle, &name, err, sizeof(err)),
                     PD_ERROR);
    assert_int_equal(err[sizeof(err) - 1], '\0');
    assert_memory_equal(err, ctx->path, sizeof(err) - 1);
}


static void
test_bad_file(void **state)
{
    pd_test_ctx_t  *ctx = *state;
    char            expect[PATH_MAX + PD_CONF_ERRSTR_SIZE];

    assert_int_equal(pd_test_parse(ctx, ctx->bad->file), PD_ERROR);

    (void) snprintf(expect, sizeof(expect), "%s:%s", ctx->path,
                    ctx->bad->expect);
    assert_string_equal((char *) ctx->err, expect);
}


static const pd_test_bad_t  pd_test_bad[] = {

    /* libyaml's own errors */
    { "bad_syntax_tab.yaml",
      "2:1: found character that cannot start any token "
      "(while scanning for the next token)" },
    { "bad_syntax_colon.yaml",
      "3:1: could not find expected ':' (while scanning a simple key)" },
    { "bad_syntax_quote.yaml",
      "3:1: found unexpected end of stream "
      "(while scanning a quoted scalar)" },
    { "bad_syntax_alias.yaml",
      "1:6: found undefined alias" },
    { "bad_syntax_utf8.yaml",
      "2:7: invalid leading UTF-8 octet" },

    /* the document's shape */
    { "bad_empty.yaml", "1:1: empty configuration file" },
    { "bad_comments_only.yaml", "1:1: empty configuration file" },
    { "bad_empty_document.yaml", "1:1: empty configuration file" },
    { "bad_root_scalar.yaml",
      "2:1: the top level must be a mapping of directives and sections" },
    { "bad_root_sequence.yaml",
      "1:1: the top level must be a mapping of directives and sections" },
    { "bad_two_documents.yaml",
      "3:1: only one YAML document is allowed" },
    { "bad_key_not_scalar.yaml",
      "2:1: a directive name must be a string" },

    /* names */
    { "bad_unknown_top.yaml", "3:1: unknown directive \"foo\"" },
    { "bad_unknown_section.yaml",
      "3:3: unknown directive \"hearbeat\" in section \"room\"" },
    { "bad_unknown_empty_module.yaml",
      "2:3: unknown directive \"enabled\" in section \"stats\"" },
    { "bad_dup_top.yaml", "3:1: \"daemon\" directive is duplicate" },
    { "bad_dup_section_directive.yaml",
      "4:3: \"heartbeat\" directive is duplicate" },
    { "bad_dup_section.yaml", "4:1: \"room\" section is duplicate" },
    { "bad_section_scalar.yaml", "1:7: \"room\" section must be a mapping" },
    { "bad_section_sequence.yaml",
      "2:3: \"room\" section must be a mapping" },
    { "bad_setter_duplicate.yaml", "2:1: \"workers\" directive is duplicate" },

    /* values */
    { "bad_flag.yaml", "1:9: \"daemon\" must be true or false" },
    { "bad_flag_mapping.yaml", "1:9: \"daemon\" must be true or false" },
    { "bad_number.yaml", "1:21: \"worker_connections\" must be a number" },
    { "bad_number_range.yaml",
      "1:21: \"worker_connections\" must be between 1 and 1048576" },
    { "bad_number_negative.yaml",
      "1:11: \"offset\" must be between -10 and 10" },
    { "bad_number_overflow.yaml",
      "1:21: \"worker_connections\" must be between 1 and 1048576" },
    { "bad_size.yaml", "1:14: \"buffer_size\" invalid size \"12q\"" },
    { "bad_size_range.yaml",
      "1:14: \"buffer_size\" must be between 1k and 1m" },
    { "bad_duration.yaml",
      "1:19: \"shutdown_timeout\" invalid duration \"5x\"" },
    { "bad_duration_range.yaml",
      "1:7: \"idle\" must be between 100ms and 1m" },
    { "bad_string_sequence.yaml", "1:6: \"pid\" must be a string" },
    { "bad_null_value.yaml", "2:1: \"pid\" must have a value" },
    { "bad_empty_value.yaml", "2:3: \"auth_secret\" must have a value" },
    { "bad_enum.yaml",
      "1:12: \"log_level\" must be \"debug\", \"info\" or \"error\"" },
    { "bad_enum_section.yaml",
      "2:12: \"backend\" must be \"memory\" or \"redis\"" },
    { "bad_list_nested.yaml",
      "2:16: \"apps\" must be a string or a list of strings" },
    { "bad_list_mapping.yaml",
      "2:9: \"apps\" must be a string or a list of strings" },
    { "bad_listen_port.yaml",
      "4:7: \"listen\" invalid listen \"70000\", "
      "port must be between 1 and 65535" },
    { "bad_listen_addr.yaml",
      "2:11: \"listen\" invalid listen \"1.2.3.4.5:80\", "
      "the host must be a numeric IP address" },
    { "bad_listen_param.yaml",
      "2:16: \"listen\" invalid listen \"443 tls\", unknown parameter" },
    { "bad_listen_ipv6.yaml",
      "2:11: \"listen\" invalid listen \"::1:80\", "
      "an IPv6 address must be in brackets" },
    { "bad_listen_null_item.yaml",
      "2:3: \"listen\" must be a string or a list of strings" },
    { "bad_address.yaml",
      "2:10: \"redis\" invalid address \"1.2.3.4.5:80\", "
      "the host must be a numeric IP address" },
    { "bad_address_noport.yaml",
      "2:10: \"redis\" invalid address \"10.0.0.1\", a port is required" },
    { "bad_address_port_only.yaml",
      "2:10: \"redis\" invalid address \"6379\", an address is required" },
    { "bad_custom_setter.yaml",
      "1:19: \"worker_processes\" must be a number or \"auto\"" },

    /* init_conf */
    { "bad_init_section.yaml",
      "3:1: \"room\" needs \"ssl_certificate\" for an ssl listen" },
    { "bad_init_toplevel.yaml", "3:6: \"pid\" must not be empty" },
    { "bad_init_directive.yaml",
      "5:9: \"room\" \"apps\" needs \"auth_secret\"" },
};


static void
test_parse_size(void **state)
{
    pd_uint_t  i;
    pd_str_t   s;

    static const struct {
        const char  *text;
        int64_t      value;
    } cases[] = {
        { "0", 0 }, { "512", 512 }, { "64k", 65536 }, { "64K", 65536 },
        { "2m", 2097152 }, { "2M", 2097152 }, { "1g", 1073741824 },
        { "3G", 3221225472LL }, { "8589934591g", 9223372035781033984LL },
        { "8589934592g", -1 },
        { "", -1 }, { "k", -1 }, { "-1", -1 }, { "12q", -1 },
        { "1kb", -1 }, { " 1k", -1 }, { "1.5m", -1 },
        { "9223372036854775807", INT64_MAX },
        { "9223372036854775808", -1 },
    };

    (void) state;

    for (i = 0; i < pd_nelems(cases); i++) {
        s.data = (u_char *) cases[i].text;
        s.len = strlen(cases[i].text);
        if (pd_parse_size(&s) != cases[i].value) {
            fail_msg("pd_parse_size(\"%s\") = %lld, expected %lld",
                     cases[i].text, (long long) pd_parse_size(&s),
                     (long long) cases[i].value);
        }
    }
}


static void
test_parse_duration(void **state)
{
    pd_uint_t  i;
    pd_str_t   s;

    static const struct {
        const char  *text;
        int64_t      value;
    } cases[] = {
        { "0", 0 }, { "30", 30000 }, { "250ms", 250 }, { "30s", 30000 },
        { "5m", 300000 }, { "1h", 3600000 }, { "1d", 86400000 },
        { "0ms", 0 }, { "", -1 }, { "ms", -1 }, { "s", -1 }, { "5x", -1 },
        { "-5s", -1 }, { "5S", -1 }, { "1m30s", -1 }, { "5 s", -1 },
        { "106751991167d", 9223372036828800000LL },
        { "106751991168d", -1 },
    };

    (void) state;

    for (i = 0; i < pd_nelems(cases); i++) {
        s.data = (u_char *) cases[i].text;
        s.len = strlen(cases[i].text);
        if (pd_parse_duration(&s) != cases[i].value) {
            fail_msg("pd_parse_duration(\"%s\") = %lld, expected %lld",
                     cases[i].text, (long long) pd_parse_duration(&s),
                     (long long) cases[i].value);
        }
    }
}


static void
test_parse_listen(void **state)
{
    pd_uint_t          i;
    pd_str_t           s;
    pd_pool_t         *pool;
    const char        *rv;
    pd_listen_conf_t   lc;

    static const struct {
        const char  *text;
        const char  *error;      /* NULL: valid */
        const char  *norm;
        int          family;
        unsigned     ssl;
    } cases[] = {
        { "80", NULL, "0.0.0.0:80", AF_INET, 0 },
        { "8080 ssl", NULL, "0.0.0.0:8080", AF_INET, 1 },
        { "  443\tssl  ", NULL, "0.0.0.0:443", AF_INET, 1 },
        { "127.0.0.1:8090", NULL, "127.0.0.1:8090", AF_INET, 0 },
        { "*:443 ssl", NULL, "0.0.0.0:443", AF_INET, 1 },
        { "[::1]:8080", NULL, "[::1]:8080", AF_INET6, 0 },
        { "[::]:80", NULL, "[::]:80", AF_INET6, 0 },
        { "[0:0::1]:65535 ssl", NULL, "[::1]:65535", AF_INET6, 1 },
        { "1", NULL, "0.0.0.0:1", AF_INET, 0 },
        { "", "a port is required", NULL, 0, 0 },
        { "0", "port must be between 1 and 65535", NULL, 0, 0 },
        { "65536", "port must be between 1 and 65535", NULL, 0, 0 },
        { "99999999999999999999", "port must be between 1 and 65535",
          NULL, 0, 0 },
        { "http", "invalid port", NULL, 0, 0 },
        { "1.2.3.4:", "invalid port", NULL, 0, 0 },
        { "1.2.3.4:-1", "invalid port", NULL, 0, 0 },
        { "1.2.3.4.5:80", "the host must be a numeric IP address",
          NULL, 0, 0 },
        { "localhost:80", "the host must be a numeric IP address",
          NULL, 0, 0 },
        { ":80", "the host must be a numeric IP address", NULL, 0, 0 },
        { "::1:80", "an IPv6 address must be in brackets", NULL, 0, 0 },
        { "[::1", "the IPv6 address misses \"]\"", NULL, 0, 0 },
        { "[::1]", "a port is required", NULL, 0, 0 },
        { "[::1]80", "a port is required", NULL, 0, 0 },
        { "[]:80", "invalid IPv6 address", NULL, 0, 0 },
        { "[::g]:80", "invalid IPv6 address", NULL, 0, 0 },
        { "[::1]:0", "port must be between 1 and 65535", NULL, 0, 0 },
        { "80 tls", "unknown parameter", NULL, 0, 0 },
        { "80 ssl x", "unknown parameter", NULL, 0, 0 },
    };

    (void) state;

    pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, NULL);
    assert_non_null(pool);

    for (i = 0; i < pd_nelems(cases); i++) {
        s.data = (u_char *) cases[i].text;
        s.len = strlen(cases[i].text);

        rv = pd_parse_listen(&s, &lc, pool);

        if (cases[i].error != NULL) {
            if (rv == NULL || strcmp(rv, cases[i].error) != 0) {
                fail_msg("pd_parse_listen(\"%s\") = \"%s\", expected \"%s\"",
                         cases[i].text, rv ? rv : "(ok)", cases[i].error);
            }
            continue;
        }

        if (rv != NULL) {
            fail_msg("pd_parse_listen(\"%s\") failed: %s", cases[i].text, rv);
        }

        pd_test_assert_listen(&lc, cases[i].family, cases[i].norm,
                              cases[i].ssl);
    }

    pd_destroy_pool(pool);
}


static void
test_full_name(void **state)
{
    pd_str_t        name;
    pd_test_ctx_t  *ctx = *state;
    u_char          buf[] = "logs/x.log";

    pd_str_set(&name, "logs/error.log");
    assert_int_equal(pd_conf_full_name(&ctx->cycle, &name), PD_OK);
    pd_test_str_equal(&name, "/srv/pushd/logs/error.log");

    pd_str_set(&ctx->cycle.prefix, "/srv/pushd");
    pd_str_set(&name, "logs/error.log");
    assert_int_equal(pd_conf_full_name(&ctx->cycle, &name), PD_OK);
    pd_test_str_equal(&name, "/srv/pushd/logs/error.log");

    pd_str_set(&name, "/var/log/pushd.log");
    assert_int_equal(pd_conf_full_name(&ctx->cycle, &name), PD_OK);
    pd_test_str_equal(&name, "/var/log/pushd.log");

    /* a name that is not NUL-terminated comes back as a terminated copy */
    name.data = buf;
    name.len = 4;
    assert_int_equal(pd_conf_full_name(&ctx->cycle, &name), PD_OK);
    pd_test_str_equal(&name, "/srv/pushd/logs");
    assert_ptr_not_equal(name.data, buf);

    pd_str_null(&ctx->cycle.prefix);
    pd_str_set(&name, "pushd.pid");
    assert_int_equal(pd_conf_full_name(&ctx->cycle, &name), PD_OK);
    pd_test_str_equal(&name, "pushd.pid");

    pd_str_set(&name, "");
    assert_int_equal(pd_conf_full_name(&ctx->cycle, &name), PD_ERROR);
}


/* the setters' own duplicate check, for fields a custom path set first */
static void
test_setter_duplicate(void **state)
{
    pd_conf_t             cf;
    pd_test_ctx_t        *ctx = *state;
    pd_test_top_conf_t    top;
    pd_test_room_conf_t   room;
    pd_array_t            a;
    u_char                errbuf[PD_CONF_ERRSTR_SIZE];

    pd_memzero(&cf, sizeof(pd_conf_t));
    cf.pool = ctx->cycle.pool;
    cf.errbuf = errbuf;
    cf.errlen = sizeof(errbuf);
    pd_str_set(&cf.value, "1");

    pd_memzero(&top, sizeof(top));
    pd_memzero(&room, sizeof(room));
    room.listen = &a;
    room.apps = &a;
    pd_str_set(&top.pid, "x");
    room.redis.socklen = sizeof(struct sockaddr_in);

    assert_string_equal(pd_conf_set_flag_slot(&cf, &pd_test_top_commands[0],
                                              &top), "is duplicate");
    assert_string_equal(pd_conf_set_num_slot(&cf, &pd_test_top_commands[3],
                                             &top), "is duplicate");
    assert_string_equal(pd_conf_set_size_slot(&cf, &pd_test_top_commands[5],
                                              &top), "is duplicate");
    assert_string_equal(pd_conf_set_msec_slot(&cf, &pd_test_top_commands[7],
                                              &top), "is duplicate");
    assert_string_equal(pd_conf_set_str_slot(&cf, &pd_test_top_commands[9],
                                             &top), "is duplicate");
    assert_string_equal(pd_conf_set_enum_slot(&cf, &pd_test_top_commands[10],
                                              &top), "is duplicate");
    assert_string_equal(pd_conf_set_listen_slot(&cf, &pd_test_room_commands[0],
                                                &room), "is duplicate");
    assert_string_equal(pd_conf_set_list_slot(&cf, &pd_test_room_commands[1],
                                              &room), "is duplicate");
    assert_string_equal(pd_conf_set_addr_slot(&cf, &pd_test_room_commands[6],
                                              &room), "is duplicate");
}


int
main(void)
{
    int                 rc;
    size_t              i, n;
    struct CMUnitTest  *tests;

    static const struct CMUnitTest  fixed[] = {
        cmocka_unit_test_setup_teardown(test_good_all, pd_test_setup,
                                        pd_test_teardown),
        cmocka_unit_test_setup_teardown(test_good_defaults, pd_test_setup,
                                        pd_test_teardown),
        cmocka_unit_test_setup_teardown(test_good_quoted, pd_test_setup,
                                        pd_test_teardown),
        cmocka_unit_test_setup_teardown(test_good_top_only, pd_test_setup,
                                        pd_test_teardown),
        cmocka_unit_test_setup_teardown(test_caller_arrays, pd_test_setup,
                                        pd_test_teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, pd_test_setup,
                                        pd_test_teardown),
        cmocka_unit_test_setup_teardown(test_init_absent_module,
                                        pd_test_setup, pd_test_teardown),
        cmocka_unit_test_setup_teardown(test_short_err_buffer, pd_test_setup,
                                        pd_test_teardown),
        cmocka_unit_test_setup_teardown(test_full_name, pd_test_setup,
                                        pd_test_teardown),
        cmocka_unit_test_setup_teardown(test_setter_duplicate, pd_test_setup,
                                        pd_test_teardown),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_listen),
    };

    /* one named case per bad fixture, so a failure names its file */
    n = pd_nelems(fixed) + pd_nelems(pd_test_bad);
    tests = calloc(n, sizeof(struct CMUnitTest));
    if (tests == NULL) {
        return 1;
    }

    memcpy(tests, fixed, sizeof(fixed));

    for (i = 0; i < pd_nelems(pd_test_bad); i++) {
        tests[pd_nelems(fixed) + i] = (struct CMUnitTest) {
            pd_test_bad[i].file, test_bad_file, pd_test_setup,
            pd_test_teardown, (void *) &pd_test_bad[i]
        };
    }

    rc = _cmocka_run_group_tests("pd_conf_file", tests, n, NULL, NULL);

    free(tests);
    return rc;
}
