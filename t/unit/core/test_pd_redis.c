/*
 * test_pd_redis.c: the hiredis adapter of pd_redis.c against a real
 * redis-server (a child of this test, on a free port), driven by the
 * worker's own event loop: commands, and subscribers; and the uid ->
 * shard hash.
 */

#include "pd_core.h"

#include <sys/prctl.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../pd_test_loop.h"


#define PD_TEST_NINCR      10000
#define PD_TEST_BIG        (1024 * 1024)
#define PD_TEST_NBIG       20
#define PD_TEST_NINFLIGHT  100
#define PD_TEST_NMSG       1000


/* what the callbacks of one command saw */
typedef struct {
    pd_uint_t    calls;
    pd_uint_t    nulls;
    int          type;
    long long    integer;
    size_t       len;
    u_char      *str;        /* a copy, freed by the test */
    pd_msec_t    at;
} pd_test_reply_t;

/* ordered replies of a pipeline */
typedef struct {
    pd_uint_t    next;       /* index the next reply must carry */
    pd_uint_t    in_order;
    pd_uint_t    right;      /* integer replies equal to index + 1 */
    pd_uint_t    calls[PD_TEST_NINCR];
} pd_test_pipe_t;

typedef struct {
    pd_uint_t    index;
    void        *ctx;
} pd_test_tag_t;

/* what the message handler of one channel saw */
typedef struct {
    pd_uint_t    calls;
    pd_uint_t    want;       /* pd_test_got() holds at this many calls */
    pd_uint_t    in_order;   /* sequence payloads carrying calls - 1 */
    char         channel[64];
    size_t       len;
    u_char      *payload;    /* a copy of the last, freed by the test */
    unsigned     unsubscribe:1;  /* drops its channel at the first call */
    unsigned     destroy:1;      /* destroys r at the first call */
} pd_test_msg_t;

/* a subscriber and the number of channels it should have in force */
typedef struct {
    pd_redis_t  *r;
    pd_uint_t    n;
} pd_test_sub_t;


static char         pd_test_redis_bin[PATH_MAX];
static int          pd_test_debug_command;   /* redis >= 7 needs a flag */
static pid_t        pd_test_redis_pid = -1;
static int          pd_test_port;

static pd_uint_t    pd_test_connects;

/* extra redis-server arguments (NULL-ended), and the password the
 * test's own blocking client then sends */
static const char  **pd_test_redis_args;
static const char   *pd_test_sync_pass;


static int
pd_test_is_connected(void *data)
{
    return pd_redis_connected(data) == 1;
}


static int
pd_test_is_disconnected(void *data)
{
    return pd_redis_connected(data) == 0;
}


static int
pd_test_no_pending(void *data)
{
    return pd_redis_pending(data) == 0;
}


static int
pd_test_called(void *data)
{
    pd_test_reply_t  *rep = data;

    return rep->calls > 0;
}


static int
pd_test_got(void *data)
{
    pd_test_msg_t  *m = data;

    return m->calls >= m->want;
}


static int
pd_test_is_subscribed(void *data)
{
    pd_test_sub_t  *s = data;

    return pd_redis_connected(s->r) && pd_redis_subscribed(s->r) == s->n;
}


/* the redis-server child */

static int
pd_test_find_redis(void)
{
    char  *path, *dir, *save;
    char   buf[PATH_MAX * 4];

    path = getenv("PATH");
    (void) snprintf(buf, sizeof(buf), "%s", path ? path : "");

    for (dir = strtok_r(buf, ":", &save); dir;
         dir = strtok_r(NULL, ":", &save))
    {
        (void) snprintf(pd_test_redis_bin, sizeof(pd_test_redis_bin),
                        "%s/redis-server", dir);

        if (access(pd_test_redis_bin, X_OK) == 0) {
            return 1;
        }
    }

    pd_test_redis_bin[0] = '\0';
    return 0;
}


static void
pd_test_redis_version(void)
{
    char   cmd[PATH_MAX + 32], line[256], *v;
    FILE  *p;

    (void) snprintf(cmd, sizeof(cmd), "%s --version", pd_test_redis_bin);

    p = popen(cmd, "r");
    if (p == NULL) {
        return;
    }

    if (fgets(line, sizeof(line), p) != NULL) {
        v = strstr(line, "v=");
        /* DEBUG is off by default since 7.0 */
        pd_test_debug_command = (v != NULL && atoi(v + 2) >= 7);
    }

    (void) pclose(p);
}


static int
pd_test_free_port(void)
{
    struct sockaddr_in  sin;
    socklen_t           len;
    int                 s, port;

    s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s != -1);

    pd_memzero(&sin, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    assert_int_equal(bind(s, (struct sockaddr *) &sin, sizeof(sin)), 0);

    len = sizeof(sin);
    assert_int_equal(getsockname(s, (struct sockaddr *) &sin, &len), 0);
    port = ntohs(sin.sin_port);

    close(s);
    return port;
}


/* the test's own blocking link, authenticated when the server wants it */
static redisContext *
pd_test_sync_connect(void)
{
    redisContext    *c;
    redisReply      *reply;
    struct timeval   tv = { 1, 0 };

    c = redisConnectWithTimeout("127.0.0.1", pd_test_port, tv);

    if (c == NULL || c->err) {
        if (c) {
            redisFree(c);
        }
        return NULL;
    }

    if (pd_test_sync_pass != NULL) {
        reply = redisCommand(c, "AUTH %s", pd_test_sync_pass);

        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            if (reply) {
                freeReplyObject(reply);
            }
            redisFree(c);
            return NULL;
        }

        freeReplyObject(reply);
    }

    return c;
}


/* a blocking client of the test itself: 1 when the server answers */
static int
pd_test_sync(const char *cmd, char *info, size_t len)
{
    redisContext    *c;
    redisReply      *reply;
    int              ok;

    c = pd_test_sync_connect();
    if (c == NULL) {
        return 0;
    }

    reply = redisCommand(c, cmd);
    ok = (reply != NULL && reply->type != REDIS_REPLY_ERROR);

    if (ok && info && reply->type == REDIS_REPLY_STRING) {
        (void) snprintf(info, len, "%s", reply->str);
    }

    if (reply) {
        freeReplyObject(reply);
    }

    redisFree(c);
    return ok;
}


/* the integer answer (or [name, integer]) of a blocking client; -1 */
static long long
pd_test_sync_int(int argc, const char **argv)
{
    redisContext    *c;
    redisReply      *reply;
    long long        n;

    c = pd_test_sync_connect();
    if (c == NULL) {
        return -1;
    }

    reply = redisCommandArgv(c, argc, argv, NULL);
    n = -1;

    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        n = reply->integer;

    } else if (reply && reply->type == REDIS_REPLY_ARRAY
               && reply->elements == 2
               && reply->element[1]->type == REDIS_REPLY_INTEGER)
    {
        n = reply->element[1]->integer;
    }

    if (reply) {
        freeReplyObject(reply);
    }

    redisFree(c);
    return n;
}


static void
pd_test_redis_stop(void)
{
    int  status;

    if (pd_test_redis_pid == -1) {
        return;
    }

    (void) kill(pd_test_redis_pid, SIGKILL);
    (void) waitpid(pd_test_redis_pid, &status, 0);
    pd_test_redis_pid = -1;
}


static void
pd_test_redis_start(void)
{
    char             port[16];
    const char      *argv[40];
    int              n, fd, status, i;
    pid_t            pid;
    struct timespec  ts = { 0, 10 * 1000 * 1000 };

    (void) snprintf(port, sizeof(port), "%d", pd_test_port);

    n = 0;
    argv[n++] = pd_test_redis_bin;
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = "/tmp";
    if (pd_test_debug_command) {
        argv[n++] = "--enable-debug-command";
        argv[n++] = "local";
    }
    for (i = 0; pd_test_redis_args && pd_test_redis_args[i]; i++) {
        argv[n++] = pd_test_redis_args[i];
    }
    argv[n] = NULL;

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        /* dies with the test, however the test ends */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);

        if (getenv("PD_TEST_VERBOSE") == NULL) {
            fd = open("/dev/null", O_WRONLY);
            if (fd != -1) {
                (void) dup2(fd, 1);
                (void) dup2(fd, 2);
            }
        }

        execv(pd_test_redis_bin, (char **) argv);
        _exit(127);
    }

    pd_test_redis_pid = pid;

    /* ready when it answers; give up after 10 s or when it exits */
    for (i = 0; i < 1000; i++) {
        if (pd_test_sync("PING", NULL, 0)) {
            return;
        }

        if (waitpid(pid, &status, WNOHANG) == pid) {
            pd_test_redis_pid = -1;
            fail_msg("redis-server exited before answering (status %d)",
                     status);
        }

        (void) nanosleep(&ts, NULL);
    }

    fail_msg("redis-server did not answer on port %d", pd_test_port);
}


static void
pd_test_need_redis(void)
{
    if (pd_test_redis_bin[0] == '\0') {
        print_message("redis-server not found in PATH: skipped "
                      "(auto/deps installs it)\n");
        skip();
    }

    if (pd_test_redis_pid == -1) {
        pd_test_redis_start();
    }
}


/* callbacks */

static void
pd_test_on_connect(pd_redis_t *r, void *data)
{
    (void) r;
    (void) data;

    pd_test_connects++;
}


static void
pd_test_record(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_test_reply_t  *rep = data;

    (void) r;

    rep->calls++;
    rep->at = pd_current_msec;

    if (reply == NULL) {
        rep->nulls++;
        return;
    }

    rep->type = reply->type;
    rep->integer = reply->integer;

    if (reply->type == REDIS_REPLY_STRING
        || reply->type == REDIS_REPLY_STATUS
        || reply->type == REDIS_REPLY_ERROR)
    {
        free(rep->str);
        rep->str = malloc(reply->len + 1);
        assert_non_null(rep->str);
        memcpy(rep->str, reply->str, reply->len);
        rep->str[reply->len] = '\0';
        rep->len = reply->len;
    }
}


static void
pd_test_pipe_reply(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_test_tag_t   *tag = data;
    pd_test_pipe_t  *p = tag->ctx;

    (void) r;

    p->calls[tag->index]++;

    if (tag->index == p->next) {
        p->in_order++;
    }

    p->next = tag->index + 1;

    if (reply && reply->type == REDIS_REPLY_INTEGER
        && reply->integer == (long long) tag->index + 1)
    {
        p->right++;
    }
}


/* a reply that destroys its connection */
static void
pd_test_destroy_reply(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_test_record(r, reply, data);
    pd_redis_destroy(r);
}


static void
pd_test_count_connect(pd_redis_t *r, void *data)
{
    pd_uint_t  *n = data;

    (void) r;

    (*n)++;
}


/* a sequence payload: the index, then bytes a C string would stop at */
static void
pd_test_seq(u_char *p, uint32_t i)
{
    memcpy(p, &i, 4);
    memcpy(p + 4, "\0\0\r\n", 4);
}


static void
pd_test_on_message(pd_redis_t *r, const char *channel,
    const u_char *payload, size_t len, void *data)
{
    pd_test_msg_t  *m = data;
    u_char          seq[8];

    pd_test_seq(seq, (uint32_t) m->calls);

    if (len == sizeof(seq) && memcmp(payload, seq, sizeof(seq)) == 0) {
        m->in_order++;
    }

    m->calls++;
    (void) snprintf(m->channel, sizeof(m->channel), "%s", channel);

    free(m->payload);
    m->payload = malloc(len + 1);
    assert_non_null(m->payload);
    memcpy(m->payload, payload, len);
    m->len = len;

    if (m->unsubscribe) {
        m->unsubscribe = 0;
        assert_int_equal(pd_redis_unsubscribe(r, channel), PD_OK);
    }

    if (m->destroy) {
        m->destroy = 0;
        pd_redis_destroy(r);
    }
}


static void
pd_test_count_one(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_uint_t  *n = data;

    (void) r;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        (*n)++;
    }
}


/* a subscriber of the test's server, not started */
static pd_redis_t *
pd_test_subscriber(pd_msec_t timeout, pd_uint_t *connects)
{
    pd_redis_t  *r;

    r = pd_redis_create_subscriber("127.0.0.1", pd_test_port, timeout,
                                   &pd_test_log);
    assert_non_null(r);

    *connects = 0;
    pd_redis_set_connect_handler(r, pd_test_count_connect, connects);

    return r;
}


static pd_int_t
pd_test_publish(pd_redis_t *r, pd_test_reply_t *rep, const char *channel,
    const char *payload, size_t len)
{
    return pd_redis_publish(r, channel, (const u_char *) payload, len,
                            rep ? pd_test_record : NULL, rep);
}


static pd_redis_t *
pd_test_connect(pd_msec_t timeout)
{
    pd_redis_t  *r;

    r = pd_redis_create("127.0.0.1", pd_test_port, timeout, &pd_test_log);
    assert_non_null(r);

    pd_redis_set_connect_handler(r, pd_test_on_connect, NULL);
    pd_test_connects = 0;

    assert_int_equal(pd_redis_connect(r), PD_OK);
    assert_true(pd_test_run(pd_test_is_connected, r, 5000));

    return r;
}


static pd_int_t
pd_test_cmd(pd_redis_t *r, pd_test_reply_t *rep, const char *a0,
    const char *a1, const char *a2)
{
    const char  *argv[3];
    int          argc;

    argv[0] = a0;
    argv[1] = a1;
    argv[2] = a2;
    argc = a2 ? 3 : (a1 ? 2 : 1);

    return pd_redis_command(r, pd_test_record, rep, argc, argv, NULL);
}


/* setup */

static int
pd_test_setup(void **state)
{
    const char  *v;

    (void) state;

    v = getenv("PD_TEST_VERBOSE");
    if (v != NULL) {
        pd_test_log.log_level = PD_LOG_DEBUG;
    }

    pd_log_root = &pd_test_log;
    pd_test_cycle.log = &pd_test_log;

    if (pd_connection_init_array(&pd_test_cycle, 64) != PD_OK
        || pd_event_init(&pd_test_cycle) != PD_OK)
    {
        return -1;
    }

    pd_timer_init(&pd_test_tick, pd_test_tick_handler);
    pd_time_update();

    if (pd_test_find_redis()) {
        pd_test_redis_version();
        pd_test_port = pd_test_free_port();
        (void) atexit(pd_test_redis_stop);
    }

    return 0;
}


static int
pd_test_teardown(void **state)
{
    (void) state;

    pd_test_redis_stop();
    pd_event_done(&pd_test_cycle);

    pd_free(pd_test_cycle.connections);

    return 0;
}


/* the shard hash */

static void
test_shard_vectors(void **state)
{
    (void) state;

    /* CRC-32 (zlib's) and Lamping-Veach jump hash, computed apart */
    assert_int_equal(pd_redis_shard((u_char *) "alice", 5, 4), 1);
    assert_int_equal(pd_redis_shard((u_char *) "bob", 3, 4), 0);
    assert_int_equal(pd_redis_shard((u_char *) "user:12345", 10, 3), 1);
    assert_int_equal(pd_redis_shard((u_char *) "alice", 5, 65536), 32028);
    assert_int_equal(pd_redis_shard((u_char *) "bob", 3, 1000), 20);
    assert_int_equal(pd_redis_shard((u_char *) "user:12345", 10, 1024),
                     642);
    assert_int_equal(pd_redis_shard((u_char *) "\0\377\r\n", 4, 65536),
                     45067);
    assert_int_equal(pd_redis_shard((u_char *) "42", 2, 1000), 755);
    assert_int_equal(pd_redis_shard((u_char *) "carol", 5, 100000),
                     64068);
    assert_int_equal(pd_redis_shard((u_char *) "", 0, 1000), 0);

    assert_int_equal(pd_redis_shard((u_char *) "alice", 5, 1), 0);
    assert_int_equal(pd_redis_shard((u_char *) "alice", 5, 0), 0);
}


static void
test_shard_spread(void **state)
{
    pd_uint_t  count[4], i, moved;
    uint32_t   s4, s5;
    u_char     uid[32];
    size_t     len;

    (void) state;

    pd_memzero(count, sizeof(count));
    moved = 0;

    for (i = 0; i < 10000; i++) {
        len = (size_t) snprintf((char *) uid, sizeof(uid), "u%lu",
                                (unsigned long) i);

        s4 = pd_redis_shard(uid, len, 4);
        assert_true(s4 < 4);
        count[s4]++;

        /* growing to 5 shards moves keys only onto the new one */
        s5 = pd_redis_shard(uid, len, 5);
        if (s5 != s4) {
            assert_int_equal(s5, 4);
            moved++;
        }
    }

    for (i = 0; i < 4; i++) {
        assert_in_range(count[i], 2000, 3000);
    }

    /* about a fifth of the keys, not most of them as with a modulo */
    assert_in_range(moved, 1500, 2500);
}


/* the adapter */

static void
test_create_checks_address(void **state)
{
    pd_redis_t  *r;

    (void) state;

    /* a name would need getaddrinfo() on the loop */
    assert_null(pd_redis_create("localhost", 6379, 1000, &pd_test_log));
    assert_null(pd_redis_create("127.0.0.1", 0, 1000, &pd_test_log));
    assert_null(pd_redis_create("127.0.0.1", 65536, 1000, &pd_test_log));

    r = pd_redis_create("::1", 6379, 1000, &pd_test_log);
    assert_non_null(r);
    assert_int_equal(pd_redis_connected(r), 0);
    pd_redis_destroy(r);
}


/*
 * Nothing listens: commands are declined and attempts go on; once a
 * listener appears on the port the adapter connects by itself.
 */
static void
test_declined_and_retry(void **state)
{
    pd_test_reply_t      rep;
    pd_redis_t          *r;
    struct sockaddr_in   sin;
    int                  port, s, one;

    (void) state;

    pd_memzero(&rep, sizeof(rep));
    port = pd_test_free_port();

    r = pd_redis_create("127.0.0.1", port, 1000, &pd_test_log);
    assert_non_null(r);

    /* not started */
    assert_int_equal(pd_test_cmd(r, &rep, "PING", NULL, NULL), PD_DECLINED);

    assert_int_equal(pd_redis_connect(r), PD_OK);
    assert_int_equal(pd_redis_connect(r), PD_OK);

    /* refused for a while: 100 + 200 ms of backoff go by */
    assert_false(pd_test_run(pd_test_is_connected, r, 350));
    assert_int_equal(pd_test_cmd(r, &rep, "PING", NULL, NULL), PD_DECLINED);
    assert_int_equal(pd_redis_pending(r), 0);

    s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s != -1);
    one = 1;
    (void) setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    pd_memzero(&sin, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(port);
    assert_int_equal(bind(s, (struct sockaddr *) &sin, sizeof(sin)), 0);
    assert_int_equal(listen(s, 8), 0);

    /* the next attempt is at most 400 ms away */
    assert_true(pd_test_run(pd_test_is_connected, r, 2000));

    pd_redis_destroy(r);
    close(s);

    assert_int_equal(rep.calls, 0);
}


static void
test_ping(void **state)
{
    pd_test_reply_t   rep;
    pd_redis_t       *r;
    const char       *argv[1];

    (void) state;

    pd_test_need_redis();
    pd_memzero(&rep, sizeof(rep));

    r = pd_test_connect(1000);
    assert_int_equal(pd_test_connects, 1);

    assert_int_equal(pd_test_cmd(r, &rep, "PING", NULL, NULL), PD_OK);
    assert_int_equal(pd_redis_pending(r), 1);
    /* never answered from inside the call */
    assert_int_equal(rep.calls, 0);

    assert_true(pd_test_run(pd_test_called, &rep, 2000));
    assert_int_equal(rep.calls, 1);
    assert_int_equal(rep.nulls, 0);
    assert_int_equal(rep.type, REDIS_REPLY_STATUS);
    assert_string_equal(rep.str, "PONG");
    assert_int_equal(pd_redis_pending(r), 0);

    /* replies that are not one per command are refused */
    argv[0] = "subscribe";
    assert_int_equal(pd_redis_command(r, pd_test_record, &rep, 1, argv,
                                      NULL), PD_ERROR);
    argv[0] = "PSUBSCRIBE";
    assert_int_equal(pd_redis_command(r, pd_test_record, &rep, 1, argv,
                                      NULL), PD_ERROR);
    argv[0] = "monitor";
    assert_int_equal(pd_redis_command(r, pd_test_record, &rep, 1, argv,
                                      NULL), PD_ERROR);
    assert_int_equal(pd_redis_command(r, pd_test_record, &rep, 0, argv,
                                      NULL), PD_ERROR);
    assert_int_equal(pd_redis_pending(r), 0);

    pd_redis_destroy(r);

    free(rep.str);
    assert_int_equal(rep.calls, 1);
    assert_int_equal(pd_test_connects, 1);
}


static void
test_pipeline_incr(void **state)
{
    pd_test_pipe_t   *p;
    pd_test_tag_t    *tags;
    pd_test_reply_t   del;
    pd_redis_t       *r;
    const char       *argv[2];
    pd_uint_t         i;

    (void) state;

    pd_test_need_redis();

    p = calloc(1, sizeof(pd_test_pipe_t));
    tags = calloc(PD_TEST_NINCR, sizeof(pd_test_tag_t));
    assert_non_null(p);
    assert_non_null(tags);
    pd_memzero(&del, sizeof(del));

    r = pd_test_connect(5000);

    assert_int_equal(pd_test_cmd(r, &del, "DEL", "pd:test:counter", NULL),
                     PD_OK);

    argv[0] = "INCR";
    argv[1] = "pd:test:counter";

    /* all in one turn: in flight together, written together */
    for (i = 0; i < PD_TEST_NINCR; i++) {
        tags[i].index = i;
        tags[i].ctx = p;
        assert_int_equal(pd_redis_command(r, pd_test_pipe_reply, &tags[i],
                                          2, argv, NULL), PD_OK);
    }

    assert_int_equal(pd_redis_pending(r), PD_TEST_NINCR + 1);

    assert_true(pd_test_run(pd_test_no_pending, r, 10000));

    assert_int_equal(del.calls, 1);
    assert_int_equal(del.type, REDIS_REPLY_INTEGER);
    assert_int_equal(p->in_order, PD_TEST_NINCR);
    assert_int_equal(p->right, PD_TEST_NINCR);

    for (i = 0; i < PD_TEST_NINCR; i++) {
        assert_int_equal(p->calls[i], 1);
    }

    pd_redis_destroy(r);

    /* destroy had nothing left to fail */
    for (i = 0; i < PD_TEST_NINCR; i++) {
        assert_int_equal(p->calls[i], 1);
    }

    free(del.str);
    free(tags);
    free(p);
}


/* calls of the command name in INFO commandstats; 0 when not there */
static long
pd_test_calls(const char *name)
{
    char   info[8192], key[64], *p;

    assert_true(pd_test_sync("INFO commandstats", info, sizeof(info)));
    (void) snprintf(key, sizeof(key), "cmdstat_%s:calls=", name);

    p = strstr(info, key);
    return p ? atol(p + strlen(key)) : 0;
}


static const char  pd_test_lua[] = "return ARGV[1]";

static pd_int_t
pd_test_eval(pd_redis_t *r, pd_test_reply_t *rep, const char *arg)
{
    const char  *argv[4];
    size_t       len[4];

    argv[0] = "EVAL";
    len[0] = 4;
    argv[1] = pd_test_lua;
    len[1] = sizeof(pd_test_lua) - 1;
    argv[2] = "0";
    len[2] = 1;
    argv[3] = arg;
    len[3] = strlen(arg);

    return pd_redis_command(r, pd_test_record, rep, 4, argv, len);
}


/*
 * An EVAL goes as EVALSHA, its script loaded once per link ahead of it;
 * a server that lost its scripts fails one call with NOSCRIPT, and the
 * next loads it again.
 */
static void
test_eval_sha(void **state)
{
    pd_test_reply_t   rep[4];
    pd_redis_t       *r;
    pd_uint_t         i;

    (void) state;

    pd_test_need_redis();
    pd_memzero(rep, sizeof(rep));

    r = pd_test_connect(5000);
    assert_true(pd_test_sync("CONFIG RESETSTAT", NULL, 0));
    assert_true(pd_test_sync("SCRIPT FLUSH", NULL, 0));

    for (i = 0; i < 3; i++) {
        assert_int_equal(pd_test_eval(r, &rep[i], i == 1 ? "b" : "a"),
                         PD_OK);
    }

    assert_true(pd_test_run(pd_test_no_pending, r, 5000));

    for (i = 0; i < 3; i++) {
        assert_int_equal(rep[i].calls, 1);
        assert_int_equal(rep[i].type, REDIS_REPLY_STRING);
        assert_string_equal(rep[i].str, i == 1 ? "b" : "a");
    }

    assert_int_equal(pd_test_calls("script|load"), 1);
    assert_int_equal(pd_test_calls("evalsha"), 3);
    assert_int_equal(pd_test_calls("eval"), 0);

    /* the server forgets them: one NOSCRIPT, then loaded again */
    assert_true(pd_test_sync("SCRIPT FLUSH", NULL, 0));
    assert_int_equal(pd_test_eval(r, &rep[3], "c"), PD_OK);
    assert_true(pd_test_run(pd_test_no_pending, r, 5000));
    assert_int_equal(rep[3].type, REDIS_REPLY_ERROR);
    assert_memory_equal(rep[3].str, "NOSCRIPT", 8);

    assert_int_equal(pd_test_eval(r, &rep[0], "d"), PD_OK);
    assert_true(pd_test_run(pd_test_no_pending, r, 5000));
    assert_int_equal(rep[0].calls, 2);
    assert_string_equal(rep[0].str, "d");
    assert_int_equal(pd_test_calls("script|load"), 2);

    pd_redis_destroy(r);

    for (i = 0; i < 4; i++) {
        free(rep[i].str);
    }
}


/*
 * Binary values survive both ways; 20 replies of 1 MB each arrive far
 * faster than hiredis reads (16 KB a call), so the edge-triggered read
 * handler must drain the socket itself or the test stalls.
 */
static void
test_binary_values(void **state)
{
    static const char   small[] = "a\0b\r\nc\377\n$-1\r\n";
    pd_test_reply_t     set[2], get[PD_TEST_NBIG + 1];
    pd_redis_t         *r;
    u_char             *big;
    const char         *argv[3];
    size_t              argvlen[3];
    pd_uint_t           i;

    (void) state;

    pd_test_need_redis();

    big = malloc(PD_TEST_BIG);
    assert_non_null(big);

    for (i = 0; i < PD_TEST_BIG; i++) {
        big[i] = (u_char) (i * 31 + (i >> 8));
    }

    pd_memzero(set, sizeof(set));
    pd_memzero(get, sizeof(get));

    r = pd_test_connect(5000);

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = "pd:test:small";
    argvlen[1] = strlen(argv[1]);
    argv[2] = small;
    argvlen[2] = sizeof(small) - 1;
    assert_int_equal(pd_redis_command(r, pd_test_record, &set[0], 3, argv,
                                      argvlen), PD_OK);

    argv[1] = "pd:test:big";
    argvlen[1] = strlen(argv[1]);
    argv[2] = (const char *) big;
    argvlen[2] = PD_TEST_BIG;
    assert_int_equal(pd_redis_command(r, pd_test_record, &set[1], 3, argv,
                                      argvlen), PD_OK);

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = "pd:test:small";
    argvlen[1] = strlen(argv[1]);
    assert_int_equal(pd_redis_command(r, pd_test_record, &get[0], 2, argv,
                                      argvlen), PD_OK);

    argv[1] = "pd:test:big";
    argvlen[1] = strlen(argv[1]);

    for (i = 1; i <= PD_TEST_NBIG; i++) {
        assert_int_equal(pd_redis_command(r, pd_test_record, &get[i], 2,
                                          argv, argvlen), PD_OK);
    }

    assert_true(pd_test_run(pd_test_no_pending, r, 10000));

    for (i = 0; i < 2; i++) {
        assert_int_equal(set[i].calls, 1);
        assert_int_equal(set[i].type, REDIS_REPLY_STATUS);
        assert_string_equal(set[i].str, "OK");
        free(set[i].str);
    }

    assert_int_equal(get[0].calls, 1);
    assert_int_equal(get[0].type, REDIS_REPLY_STRING);
    assert_int_equal(get[0].len, sizeof(small) - 1);
    assert_memory_equal(get[0].str, small, sizeof(small) - 1);
    free(get[0].str);

    for (i = 1; i <= PD_TEST_NBIG; i++) {
        assert_int_equal(get[i].calls, 1);
        assert_int_equal(get[i].type, REDIS_REPLY_STRING);
        assert_int_equal(get[i].len, PD_TEST_BIG);
        assert_memory_equal(get[i].str, big, PD_TEST_BIG);
        free(get[i].str);
    }

    pd_redis_destroy(r);
    free(big);
}


/*
 * A reply callback destroys its connection: the commands behind it are
 * failed once each, and nothing is touched after the free (ASan).
 */
static void
test_destroy_in_callback(void **state)
{
    pd_test_reply_t   rep[PD_TEST_NINFLIGHT];
    pd_redis_t       *r;
    const char       *argv[1];
    pd_uint_t         i, nulls;

    (void) state;

    pd_test_need_redis();
    pd_memzero(rep, sizeof(rep));

    r = pd_test_connect(5000);

    argv[0] = "PING";
    assert_int_equal(pd_redis_command(r, pd_test_destroy_reply, &rep[0], 1,
                                      argv, NULL), PD_OK);

    for (i = 1; i < PD_TEST_NINFLIGHT; i++) {
        assert_int_equal(pd_redis_command(r, pd_test_record, &rep[i], 1,
                                          argv, NULL), PD_OK);
    }

    /* r is gone after the first reply: watch the records instead */
    assert_true(pd_test_run(pd_test_called, &rep[PD_TEST_NINFLIGHT - 1],
                            5000));

    assert_int_equal(rep[0].calls, 1);
    assert_int_equal(rep[0].nulls, 0);
    assert_string_equal(rep[0].str, "PONG");

    nulls = 0;

    for (i = 0; i < PD_TEST_NINFLIGHT; i++) {
        assert_int_equal(rep[i].calls, 1);
        nulls += rep[i].nulls;
        free(rep[i].str);
    }

    /* hiredis frees right after the callback that asked for it */
    assert_int_equal(nulls, PD_TEST_NINFLIGHT - 1);

    /* the slot went back: the loop goes on without it */
    assert_false(pd_test_run(pd_test_never, NULL, 20));
}


static int
pd_test_server_blocked(void *data)
{
    char  info[4096], *p;

    (void) data;

    if (!pd_test_sync("INFO clients", info, sizeof(info))) {
        return 0;
    }

    p = strstr(info, "blocked_clients:");
    return p != NULL && atoi(p + sizeof("blocked_clients:") - 1) >= 1;
}


/*
 * The server dies (SIGKILL) under a BLPOP and commands queued behind it:
 * every callback runs once, with NULL; new commands are declined.
 */
static void
test_kill_in_flight(void **state)
{
    pd_test_reply_t   rep[PD_TEST_NINFLIGHT], after;
    pd_redis_t       *r;
    pd_uint_t         i;

    (void) state;

    pd_test_need_redis();
    pd_memzero(rep, sizeof(rep));
    pd_memzero(&after, sizeof(after));

    r = pd_test_connect(30000);

    assert_int_equal(pd_test_cmd(r, &rep[0], "BLPOP", "pd:test:nothing",
                                 "0"), PD_OK);

    for (i = 1; i < PD_TEST_NINFLIGHT; i++) {
        assert_int_equal(pd_test_cmd(r, &rep[i], "INCR", "pd:test:k", NULL),
                         PD_OK);
    }

    /* all of it is on the server's side of the socket */
    assert_true(pd_test_run(pd_test_server_blocked, NULL, 5000));
    assert_int_equal(pd_redis_pending(r), PD_TEST_NINFLIGHT);

    pd_test_redis_stop();

    assert_true(pd_test_run(pd_test_no_pending, r, 5000));

    for (i = 0; i < PD_TEST_NINFLIGHT; i++) {
        assert_int_equal(rep[i].calls, 1);
        assert_int_equal(rep[i].nulls, 1);
    }

    assert_int_equal(pd_redis_connected(r), 0);
    assert_int_equal(pd_test_cmd(r, &after, "PING", NULL, NULL),
                     PD_DECLINED);

    /* a few failed attempts later */
    assert_false(pd_test_run(pd_test_never, NULL, 200));

    pd_redis_destroy(r);

    for (i = 0; i < PD_TEST_NINFLIGHT; i++) {
        assert_int_equal(rep[i].calls, 1);
    }

    assert_int_equal(after.calls, 0);
}


/* the server comes back on the same port: the adapter follows by itself */
static void
test_restart_reconnects(void **state)
{
    pd_test_reply_t   rep;
    pd_redis_t       *r;
    pd_msec_t         start;

    (void) state;

    pd_test_need_redis();
    pd_memzero(&rep, sizeof(rep));

    r = pd_test_connect(1000);
    assert_int_equal(pd_test_connects, 1);

    pd_test_redis_stop();
    assert_true(pd_test_run(pd_test_is_disconnected, r, 5000));

    /* let it fail a couple of attempts */
    assert_false(pd_test_run(pd_test_never, NULL, 300));
    assert_int_equal(pd_redis_connected(r), 0);

    pd_test_redis_start();
    start = pd_monotonic_msec();

    assert_true(pd_test_run(pd_test_is_connected, r, 10000));
    assert_int_equal(pd_test_connects, 2);
    /* the wait between attempts is capped */
    assert_true(pd_monotonic_msec() - start < PD_REDIS_BACKOFF_MAX + 500);

    assert_int_equal(pd_test_cmd(r, &rep, "PING", NULL, NULL), PD_OK);
    assert_true(pd_test_run(pd_test_called, &rep, 2000));
    assert_int_equal(rep.nulls, 0);
    assert_string_equal(rep.str, "PONG");

    pd_redis_destroy(r);
    free(rep.str);
}


typedef struct {
    pd_redis_t       *r;
    pd_test_reply_t   ping;
    pd_uint_t         tries;
} pd_test_retry_t;


/* sends a PING whenever the link is up and none is out; done at a PONG */
static int
pd_test_ping_answered(void *data)
{
    pd_test_retry_t  *t = data;

    if (t->ping.calls > t->ping.nulls) {
        return 1;
    }

    if (pd_redis_connected(t->r) && pd_redis_pending(t->r) == 0) {
        t->tries++;
        assert_int_equal(pd_test_cmd(t->r, &t->ping, "PING", NULL, NULL),
                         PD_OK);
    }

    return 0;
}


/*
 * DEBUG SLEEP 2 with a 300 ms timeout: the command and the one behind it
 * fail within about the timeout, the link is dropped and made anew, and
 * commands work again once the server wakes.
 */
static void
test_timeout(void **state)
{
    pd_test_reply_t   nap, ping;
    pd_test_retry_t   t;
    pd_redis_t       *r;
    pd_msec_t         sent;

    (void) state;

    pd_test_need_redis();

    pd_memzero(&nap, sizeof(nap));
    pd_memzero(&ping, sizeof(ping));
    pd_memzero(&t, sizeof(t));

    r = pd_test_connect(300);

    pd_time_update();
    sent = pd_current_msec;

    assert_int_equal(pd_test_cmd(r, &nap, "DEBUG", "SLEEP", "2"), PD_OK);
    assert_int_equal(pd_test_cmd(r, &ping, "PING", NULL, NULL), PD_OK);

    assert_true(pd_test_run(pd_test_no_pending, r, 5000));

    assert_int_equal(nap.calls, 1);
    assert_int_equal(nap.nulls, 1);
    assert_int_equal(ping.calls, 1);
    assert_int_equal(ping.nulls, 1);
    assert_in_range(nap.at - sent, 290, 1000);

    /* the link is made anew while the server still sleeps */
    t.r = r;
    assert_true(pd_test_run(pd_test_ping_answered, &t, 10000));
    assert_string_equal(t.ping.str, "PONG");
    assert_true(pd_test_connects >= 2);

    pd_redis_destroy(r);
    free(t.ping.str);
}


/* the subscriber */

/*
 * A binary payload with NULs arrives whole, once; a subscriber takes no
 * commands and a plain connection no subscriptions.
 */
static void
test_subscribe_binary(void **state)
{
    static const char   bin[] = "\0bin\0ary\r\n*3\r\n\377\0";
    pd_test_reply_t     rep;
    pd_test_msg_t       m;
    pd_test_sub_t       s;
    pd_redis_t         *sub, *pub;
    pd_uint_t           connects;
    const char         *argv[1];

    (void) state;

    pd_test_need_redis();
    pd_memzero(&rep, sizeof(rep));
    pd_memzero(&m, sizeof(m));

    sub = pd_test_subscriber(1000, &connects);

    /* held before the link exists, sent once it does */
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:bin",
                                        pd_test_on_message, &m), PD_OK);
    assert_int_equal(pd_redis_subscribed(sub), 0);
    assert_int_equal(pd_redis_connect(sub), PD_OK);

    s.r = sub;
    s.n = 1;
    assert_true(pd_test_run(pd_test_is_subscribed, &s, 5000));
    assert_int_equal(connects, 1);

    argv[0] = "PING";
    assert_int_equal(pd_redis_command(sub, pd_test_record, &rep, 1, argv,
                                      NULL), PD_ERROR);
    assert_int_equal(pd_test_publish(sub, &rep, "pd:test:bin", "x", 1),
                     PD_ERROR);
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:bin", NULL, NULL),
                     PD_ERROR);

    pub = pd_test_connect(1000);

    assert_int_equal(pd_redis_subscribe(pub, "pd:test:bin",
                                        pd_test_on_message, &m), PD_ERROR);
    assert_int_equal(pd_redis_unsubscribe(pub, "pd:test:bin"), PD_DECLINED);

    assert_int_equal(pd_test_publish(pub, &rep, "pd:test:bin", bin,
                                     sizeof(bin) - 1), PD_OK);

    m.want = 1;
    assert_true(pd_test_run(pd_test_got, &m, 5000));
    assert_int_equal(m.calls, 1);
    assert_string_equal(m.channel, "pd:test:bin");
    assert_int_equal(m.len, sizeof(bin) - 1);
    assert_memory_equal(m.payload, bin, sizeof(bin) - 1);

    /* a second message behind it: the first was not delivered twice */
    assert_int_equal(pd_test_publish(pub, NULL, "pd:test:bin", "end", 3),
                     PD_OK);

    m.want = 2;
    assert_true(pd_test_run(pd_test_got, &m, 5000));
    assert_int_equal(m.calls, 2);
    assert_int_equal(m.len, 3);
    assert_memory_equal(m.payload, "end", 3);

    assert_true(pd_test_run(pd_test_no_pending, pub, 5000));
    assert_int_equal(rep.calls, 1);
    assert_int_equal(rep.type, REDIS_REPLY_INTEGER);
    assert_int_equal(rep.integer, 1);

    pd_redis_destroy(pub);
    pd_redis_destroy(sub);

    assert_int_equal(m.calls, 2);
    free(m.payload);
}


/* 1000 messages published in one turn arrive all, once each, in order */
static void
test_subscribe_pipeline(void **state)
{
    pd_test_msg_t   m;
    pd_test_sub_t   s;
    pd_redis_t     *sub, *pub;
    pd_uint_t       connects, ones, i;
    u_char          seq[8];

    (void) state;

    pd_test_need_redis();
    pd_memzero(&m, sizeof(m));
    ones = 0;

    sub = pd_test_subscriber(5000, &connects);
    assert_int_equal(pd_redis_connect(sub), PD_OK);
    assert_true(pd_test_run(pd_test_is_connected, sub, 5000));

    /* added on a live link: sent at once */
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:seq",
                                        pd_test_on_message, &m), PD_OK);

    s.r = sub;
    s.n = 1;
    assert_true(pd_test_run(pd_test_is_subscribed, &s, 5000));

    pub = pd_test_connect(5000);

    for (i = 0; i < PD_TEST_NMSG; i++) {
        pd_test_seq(seq, (uint32_t) i);
        assert_int_equal(pd_redis_publish(pub, "pd:test:seq", seq,
                                          sizeof(seq), pd_test_count_one,
                                          &ones), PD_OK);
    }

    m.want = PD_TEST_NMSG;
    assert_true(pd_test_run(pd_test_got, &m, 10000));
    assert_true(pd_test_run(pd_test_no_pending, pub, 5000));

    assert_int_equal(m.calls, PD_TEST_NMSG);
    assert_int_equal(m.in_order, PD_TEST_NMSG);
    assert_int_equal(ones, PD_TEST_NMSG);
    assert_int_equal(connects, 1);

    pd_redis_destroy(pub);
    pd_redis_destroy(sub);
    free(m.payload);
}


/* PUBSUB NUMSUB channel reaches n */
static int
pd_test_numsub_is(const char *channel, long long n)
{
    const char  *argv[3];

    argv[0] = "PUBSUB";
    argv[1] = "NUMSUB";
    argv[2] = channel;

    return pd_test_sync_int(3, argv) == n;
}


static int
pd_test_a_unsubscribed(void *data)
{
    (void) data;

    return pd_test_numsub_is("pd:test:a", 0);
}


/*
 * Two channels, one dropped: only the other delivers, and the server
 * forgot the dropped one; added again, it delivers again.
 */
static void
test_unsubscribe(void **state)
{
    pd_test_reply_t   pa, pb;
    pd_test_msg_t     ma, mb;
    pd_test_sub_t     s;
    pd_redis_t       *sub, *pub;
    pd_uint_t         connects;

    (void) state;

    pd_test_need_redis();
    pd_memzero(&pa, sizeof(pa));
    pd_memzero(&pb, sizeof(pb));
    pd_memzero(&ma, sizeof(ma));
    pd_memzero(&mb, sizeof(mb));

    sub = pd_test_subscriber(1000, &connects);
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:a",
                                        pd_test_on_message, &ma), PD_OK);
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:b",
                                        pd_test_on_message, &mb), PD_OK);
    /* the same channel again: a new handler, not a second record */
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:b",
                                        pd_test_on_message, &mb), PD_OK);
    assert_int_equal(pd_redis_connect(sub), PD_OK);

    s.r = sub;
    s.n = 2;
    assert_true(pd_test_run(pd_test_is_subscribed, &s, 5000));

    pub = pd_test_connect(1000);

    assert_int_equal(pd_redis_unsubscribe(sub, "pd:test:a"), PD_OK);
    assert_int_equal(pd_redis_subscribed(sub), 1);
    assert_int_equal(pd_redis_unsubscribe(sub, "pd:test:a"), PD_DECLINED);
    assert_int_equal(pd_redis_unsubscribe(sub, "pd:test:none"),
                     PD_DECLINED);

    assert_true(pd_test_run(pd_test_a_unsubscribed, NULL, 5000));

    assert_int_equal(pd_test_publish(pub, &pa, "pd:test:a", "A", 1), PD_OK);
    assert_int_equal(pd_test_publish(pub, &pb, "pd:test:b", "B", 1), PD_OK);

    mb.want = 1;
    assert_true(pd_test_run(pd_test_got, &mb, 5000));
    assert_true(pd_test_run(pd_test_no_pending, pub, 5000));

    assert_int_equal(ma.calls, 0);
    assert_int_equal(mb.calls, 1);
    assert_memory_equal(mb.payload, "B", 1);
    assert_int_equal(pa.integer, 0);
    assert_int_equal(pb.integer, 1);

    /* and back */
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:a",
                                        pd_test_on_message, &ma), PD_OK);
    assert_true(pd_test_run(pd_test_is_subscribed, &s, 5000));

    assert_int_equal(pd_test_publish(pub, NULL, "pd:test:a", "A2", 2),
                     PD_OK);

    ma.want = 1;
    assert_true(pd_test_run(pd_test_got, &ma, 5000));
    assert_memory_equal(ma.payload, "A2", 2);
    assert_string_equal(ma.channel, "pd:test:a");
    assert_int_equal(mb.calls, 1);

    pd_redis_destroy(pub);
    pd_redis_destroy(sub);

    free(ma.payload);
    free(mb.payload);
    free(pa.str);
    free(pb.str);
}


/*
 * A handler drops its own channel with more messages behind it in the
 * same read: none of them reaches it.  Another destroys the subscriber
 * under a burst: nothing is touched after the free (ASan).
 */
static void
test_handler_unsubscribes_and_destroys(void **state)
{
    pd_test_msg_t   mc, md;
    pd_test_sub_t   s;
    pd_redis_t     *sub, *pub;
    pd_uint_t       connects, ones, i;

    (void) state;

    pd_test_need_redis();
    pd_memzero(&mc, sizeof(mc));
    pd_memzero(&md, sizeof(md));
    ones = 0;

    sub = pd_test_subscriber(1000, &connects);
    mc.unsubscribe = 1;
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:c",
                                        pd_test_on_message, &mc), PD_OK);
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:d",
                                        pd_test_on_message, &md), PD_OK);
    assert_int_equal(pd_redis_connect(sub), PD_OK);

    s.r = sub;
    s.n = 2;
    assert_true(pd_test_run(pd_test_is_subscribed, &s, 5000));

    pub = pd_test_connect(1000);

    for (i = 0; i < 10; i++) {
        assert_int_equal(pd_redis_publish(pub, "pd:test:c",
                                          (u_char *) "c", 1,
                                          pd_test_count_one, &ones), PD_OK);
    }

    assert_int_equal(pd_test_publish(pub, NULL, "pd:test:d", "d", 1),
                     PD_OK);

    /* d was published last: whatever c got came before it */
    md.want = 1;
    assert_true(pd_test_run(pd_test_got, &md, 5000));
    assert_true(pd_test_run(pd_test_no_pending, pub, 5000));

    assert_int_equal(mc.calls, 1);
    assert_int_equal(pd_redis_subscribed(sub), 1);
    /* the server still sent some of them: the adapter held them back */
    assert_true(ones > 1);

    md.destroy = 1;

    for (i = 0; i < 10; i++) {
        assert_int_equal(pd_test_publish(pub, NULL, "pd:test:d", "d", 1),
                         PD_OK);
    }

    md.want = 2;
    assert_true(pd_test_run(pd_test_got, &md, 5000));
    assert_true(pd_test_run(pd_test_no_pending, pub, 5000));
    /* sub is gone: the loop goes on without it */
    assert_false(pd_test_run(pd_test_never, NULL, 50));

    assert_int_equal(md.calls, 2);
    assert_int_equal(mc.calls, 1);

    pd_redis_destroy(pub);
    free(mc.payload);
    free(md.payload);
}


/*
 * redis-server is killed and started again on the same port: what was
 * published meanwhile is lost, the subscriber comes back and subscribes
 * again by itself, and what is published then arrives.
 */
static void
test_subscriber_restart(void **state)
{
    pd_test_msg_t   m;
    pd_test_sub_t   s;
    pd_redis_t     *sub, *pub;
    pd_uint_t       connects;
    const char     *argv[3];

    (void) state;

    pd_test_need_redis();
    pd_memzero(&m, sizeof(m));

    sub = pd_test_subscriber(1000, &connects);
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:r",
                                        pd_test_on_message, &m), PD_OK);
    assert_int_equal(pd_redis_connect(sub), PD_OK);

    s.r = sub;
    s.n = 1;
    assert_true(pd_test_run(pd_test_is_subscribed, &s, 5000));
    assert_int_equal(connects, 1);

    pd_test_redis_stop();

    assert_true(pd_test_run(pd_test_is_disconnected, sub, 5000));
    assert_int_equal(pd_redis_subscribed(sub), 0);

    pd_test_redis_start();

    /* the loop has not run since: the subscriber is still away */
    argv[0] = "PUBLISH";
    argv[1] = "pd:test:r";
    argv[2] = "lost";
    assert_int_equal(pd_test_sync_int(3, argv), 0);

    assert_true(pd_test_run(pd_test_is_subscribed, &s, 10000));
    assert_int_equal(connects, 2);
    assert_true(pd_test_numsub_is("pd:test:r", 1));

    pub = pd_test_connect(1000);
    assert_int_equal(pd_test_publish(pub, NULL, "pd:test:r", "after", 5),
                     PD_OK);

    m.want = 1;
    assert_true(pd_test_run(pd_test_got, &m, 5000));
    assert_int_equal(m.calls, 1);
    assert_int_equal(m.len, 5);
    assert_memory_equal(m.payload, "after", 5);

    pd_redis_destroy(pub);
    pd_redis_destroy(sub);
    free(m.payload);
}


/* PINGs the server counted so far, from INFO commandstats */
static long
pd_test_pings(void)
{
    char  info[8192], *p;

    if (!pd_test_sync("INFO commandstats", info, sizeof(info))) {
        return -1;
    }

    p = strstr(info, "cmdstat_ping:calls=");
    return p ? atol(p + sizeof("cmdstat_ping:calls=") - 1) : 0;
}


/*
 * A subscriber idle for 2.5 x its timeout keeps its link (the command
 * timeout does not apply; its PINGs are answered), and a message
 * published then still arrives.
 */
static void
test_subscriber_idle(void **state)
{
    pd_test_msg_t   m;
    pd_test_sub_t   s;
    pd_redis_t     *sub, *pub;
    pd_uint_t       connects;
    long            pings;

    (void) state;

    pd_test_need_redis();
    pd_memzero(&m, sizeof(m));

    sub = pd_test_subscriber(300, &connects);
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:idle",
                                        pd_test_on_message, &m), PD_OK);
    assert_int_equal(pd_redis_connect(sub), PD_OK);

    s.r = sub;
    s.n = 1;
    assert_true(pd_test_run(pd_test_is_subscribed, &s, 5000));

    pings = pd_test_pings();
    assert_true(pings >= 0);

    assert_false(pd_test_run(pd_test_never, NULL, 750));

    assert_int_equal(pd_redis_connected(sub), 1);
    assert_int_equal(pd_redis_subscribed(sub), 1);
    assert_int_equal(connects, 1);
    /* kept by answered probes: one per 300 ms of silence */
    assert_true(pd_test_pings() - pings >= 2);

    pub = pd_test_connect(1000);
    assert_int_equal(pd_test_publish(pub, NULL, "pd:test:idle", "late", 4),
                     PD_OK);

    m.want = 1;
    assert_true(pd_test_run(pd_test_got, &m, 5000));
    assert_memory_equal(m.payload, "late", 4);
    assert_int_equal(connects, 1);

    pd_redis_destroy(pub);
    pd_redis_destroy(sub);
    free(m.payload);
}


typedef struct {
    pd_test_sub_t     sub;
    pd_test_reply_t  *nap;
} pd_test_wake_t;


static int
pd_test_awake_and_subscribed(void *data)
{
    pd_test_wake_t  *w = data;

    return w->nap->calls > 0 && pd_test_is_subscribed(&w->sub);
}


/*
 * The server stops answering (DEBUG SLEEP) without closing anything: the
 * unanswered PING drops the link within 2 x timeout while the server
 * still sleeps; once it wakes, the subscriber is back by itself.
 */
static void
test_subscriber_mute_server(void **state)
{
    pd_test_reply_t   nap;
    pd_test_msg_t     m;
    pd_test_wake_t    w;
    pd_redis_t       *sub, *pub;
    pd_uint_t         connects;
    pd_msec_t         start;

    (void) state;

    pd_test_need_redis();
    pd_memzero(&nap, sizeof(nap));
    pd_memzero(&m, sizeof(m));

    sub = pd_test_subscriber(200, &connects);
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:mute",
                                        pd_test_on_message, &m), PD_OK);
    assert_int_equal(pd_redis_connect(sub), PD_OK);

    w.sub.r = sub;
    w.sub.n = 1;
    w.nap = &nap;
    assert_true(pd_test_run(pd_test_is_subscribed, &w.sub, 5000));

    pub = pd_test_connect(5000);

    pd_time_update();
    start = pd_current_msec;

    assert_int_equal(pd_test_cmd(pub, &nap, "DEBUG", "SLEEP", "1.5"),
                     PD_OK);

    assert_true(pd_test_run(pd_test_is_disconnected, sub, 1200));
    /* found by the probe, not told by the server: it still sleeps */
    assert_int_equal(nap.calls, 0);
    assert_true(pd_current_msec - start < 1000);

    assert_true(pd_test_run(pd_test_awake_and_subscribed, &w, 10000));
    assert_int_equal(nap.nulls, 0);
    assert_true(connects >= 2);

    assert_int_equal(pd_test_publish(pub, NULL, "pd:test:mute", "up", 2),
                     PD_OK);

    m.want = 1;
    assert_true(pd_test_run(pd_test_got, &m, 5000));
    assert_memory_equal(m.payload, "up", 2);

    pd_redis_destroy(pub);
    pd_redis_destroy(sub);
    free(m.payload);
    free(nap.str);
}


/* AUTH: the default user's password and an ACL user */

static const char  *pd_test_auth_args[] = {
    "--requirepass", "pd-test-pass",
    "--user", "pd", "on", ">pd-user-pass", "~pd:*", "&pd:*", "+@all",
    NULL
};


static pd_redis_t *
pd_test_auth_link(const char *user, const char *password)
{
    pd_redis_t  *r;

    r = pd_redis_create("127.0.0.1", pd_test_port, 1000, &pd_test_log);
    assert_non_null(r);
    assert_int_equal(pd_redis_set_auth(r, user, password), PD_OK);
    assert_int_equal(pd_redis_connect(r), PD_OK);

    return r;
}


/* runs one command on r and waits for its answer into rep */
static void
pd_test_cmd_wait(pd_redis_t *r, pd_test_reply_t *rep, const char *a0,
    const char *a1, const char *a2)
{
    rep->calls = 0;
    assert_int_equal(pd_test_cmd(r, rep, a0, a1, a2), PD_OK);
    assert_true(pd_test_run(pd_test_called, rep, 2000));
    assert_int_equal(rep->nulls, 0);
}


static void
test_auth(void **state)
{
    pd_test_reply_t   rep;
    pd_test_msg_t     m;
    pd_test_sub_t     s;
    pd_redis_t       *r, *acl, *bad, *sub;
    pd_uint_t         connects;

    (void) state;

    pd_test_need_redis();
    pd_memzero(&rep, sizeof(rep));
    pd_memzero(&m, sizeof(m));

    pd_test_redis_stop();
    pd_test_redis_args = pd_test_auth_args;
    pd_test_sync_pass = "pd-test-pass";
    pd_test_redis_start();

    /* without credentials the server answers nothing but NOAUTH */
    r = pd_test_connect(1000);
    pd_test_cmd_wait(r, &rep, "PING", NULL, NULL);
    assert_int_equal(rep.type, REDIS_REPLY_ERROR);
    assert_memory_equal(rep.str, "NOAUTH", 6);
    pd_redis_destroy(r);

    /* a wrong password: never up, commands declined, tried again */
    bad = pd_test_auth_link(NULL, "wrong-pass");
    assert_false(pd_test_run(pd_test_is_connected, bad, 700));
    assert_int_equal(pd_test_cmd(bad, &rep, "PING", NULL, NULL),
                     PD_DECLINED);

    /* requirepass: the default user */
    r = pd_test_auth_link(NULL, "pd-test-pass");
    pd_redis_set_connect_handler(r, pd_test_on_connect, NULL);
    pd_test_connects = 0;
    assert_true(pd_test_run(pd_test_is_connected, r, 5000));
    assert_int_equal(pd_test_connects, 1);
    pd_test_cmd_wait(r, &rep, "SET", "other:auth", "1");
    assert_int_equal(rep.type, REDIS_REPLY_STATUS);
    assert_string_equal(rep.str, "OK");

    /* an ACL user: its key pattern holds */
    acl = pd_test_auth_link("pd", "pd-user-pass");
    assert_true(pd_test_run(pd_test_is_connected, acl, 5000));
    pd_test_cmd_wait(acl, &rep, "SET", "pd:auth", "1");
    assert_string_equal(rep.str, "OK");
    pd_test_cmd_wait(acl, &rep, "SET", "other:auth", "2");
    assert_int_equal(rep.type, REDIS_REPLY_ERROR);
    assert_memory_equal(rep.str, "NOPERM", 6);

    /* a subscriber authenticates before it subscribes */
    sub = pd_test_subscriber(1000, &connects);
    assert_int_equal(pd_redis_set_auth(sub, "pd", "pd-user-pass"), PD_OK);
    assert_int_equal(pd_redis_subscribe(sub, "pd:test:auth",
                                        pd_test_on_message, &m), PD_OK);
    assert_int_equal(pd_redis_connect(sub), PD_OK);
    s.r = sub;
    s.n = 1;
    assert_true(pd_test_run(pd_test_is_subscribed, &s, 5000));

    assert_int_equal(pd_test_publish(acl, NULL, "pd:test:auth", "hi", 2),
                     PD_OK);
    m.want = 1;
    assert_true(pd_test_run(pd_test_got, &m, 5000));
    assert_memory_equal(m.payload, "hi", 2);

    /* a restart: every link authenticates again by itself */
    pd_test_redis_stop();
    assert_true(pd_test_run(pd_test_is_disconnected, r, 5000));
    pd_test_redis_start();

    assert_true(pd_test_run(pd_test_is_connected, r, 10000));
    assert_true(pd_test_run(pd_test_is_connected, acl, 10000));
    assert_true(pd_test_run(pd_test_is_subscribed, &s, 10000));
    assert_int_equal(pd_test_connects, 2);
    assert_int_equal(connects, 2);
    assert_false(pd_redis_connected(bad));

    pd_test_cmd_wait(r, &rep, "PING", NULL, NULL);
    assert_string_equal(rep.str, "PONG");
    pd_test_cmd_wait(acl, &rep, "GET", "pd:auth", NULL);
    assert_int_equal(rep.type, REDIS_REPLY_NIL);

    assert_int_equal(pd_test_publish(acl, NULL, "pd:test:auth", "again", 5),
                     PD_OK);
    m.want = 2;
    assert_true(pd_test_run(pd_test_got, &m, 5000));
    assert_memory_equal(m.payload, "again", 5);

    pd_redis_destroy(bad);
    pd_redis_destroy(sub);
    pd_redis_destroy(acl);
    pd_redis_destroy(r);
    free(rep.str);
    free(m.payload);

    /* the next test gets a server without passwords */
    pd_test_redis_stop();
    pd_test_redis_args = NULL;
    pd_test_sync_pass = NULL;
}


/* what a subscriber's link carries, read from the bytes alone */
static void
test_sub_parse(void **state)
{
    redisReader       *rd;
    void              *reply;
    const redisReply  *ch, *payload;
    pd_uint_t          i;
    static const char  resp[] =
        "*3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$3\r\na\0b\r\n"
        "*3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:1\r\n"
        "*3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n:7\r\n"
        "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        "*3\r\n:1\r\n$2\r\nc1\r\n$1\r\nx\r\n"
        "+PONG\r\n"
        "-ERR wrong\r\n";
    static const pd_uint_t  kinds[] = {
        PD_REDIS_SUB_MESSAGE, PD_REDIS_SUB_CONFIRMED, PD_REDIS_SUB_OTHER,
        PD_REDIS_SUB_OTHER, PD_REDIS_SUB_OTHER, PD_REDIS_SUB_OTHER,
        PD_REDIS_SUB_ERROR
    };

    (void) state;

    rd = redisReaderCreate();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, resp, sizeof(resp) - 1), REDIS_OK);

    for (i = 0; i < pd_nelems(kinds); i++) {
        reply = NULL;
        assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
        assert_non_null(reply);

        ch = NULL;
        payload = NULL;
        assert_int_equal(pd_redis_sub_parse(reply, &ch, &payload), kinds[i]);

        if (i == 0) {
            assert_int_equal(ch->len, 2);
            assert_int_equal(payload->len, 3);
            assert_memory_equal(payload->str, "a\0b", 3);
        }

        freeReplyObject(reply);
    }

    redisReaderFree(rd);
}

/*
 * A reply that announces more elements than pushd would ever read fails
 * the reader at once: without the bound, hiredis allocated the array's
 * pointers from the header alone (1.7 GB for this one, found by the
 * redis_reply fuzz target).
 */
static void
test_reader_bound(void **state)
{
    redisReader  *rd;
    void         *reply;
    char          big[64];
    int           n;
    static const char  huge[] = "*211111111\r\n$22\r\nhone";

    (void) state;

    rd = redisReaderCreate();
    assert_non_null(rd);
    pd_redis_reader_limit(rd);

    reply = NULL;
    assert_int_equal(redisReaderFeed(rd, huge, sizeof(huge) - 1), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_ERR);
    assert_null(reply);
    redisReaderFree(rd);

    /* one above the bound fails, at the bound is read */
    rd = redisReaderCreate();
    assert_non_null(rd);
    pd_redis_reader_limit(rd);
    n = snprintf(big, sizeof(big), "*%d\r\n", PD_REDIS_MAX_ELEMENTS + 1);
    assert_int_equal(redisReaderFeed(rd, big, (size_t) n), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_ERR);
    redisReaderFree(rd);

    rd = redisReaderCreate();
    assert_non_null(rd);
    pd_redis_reader_limit(rd);
    n = snprintf(big, sizeof(big), "*%d\r\n", PD_REDIS_MAX_ELEMENTS);
    assert_int_equal(redisReaderFeed(rd, big, (size_t) n), REDIS_OK);
    reply = NULL;
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_null(reply);     /* the elements are still to come */
    redisReaderFree(rd);

    /* a small one as before */
    rd = redisReaderCreate();
    assert_non_null(rd);
    pd_redis_reader_limit(rd);
    assert_int_equal(redisReaderFeed(rd, "*2\r\n:1\r\n$1\r\nx\r\n", 15),
                     REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    assert_int_equal(((redisReply *) reply)->elements, 2);
    freeReplyObject(reply);
    redisReaderFree(rd);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_sub_parse),
        cmocka_unit_test(test_reader_bound),
        cmocka_unit_test(test_shard_vectors),
        cmocka_unit_test(test_shard_spread),
        cmocka_unit_test(test_create_checks_address),
        cmocka_unit_test(test_declined_and_retry),
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_pipeline_incr),
        cmocka_unit_test(test_eval_sha),
        cmocka_unit_test(test_binary_values),
        cmocka_unit_test(test_destroy_in_callback),
        cmocka_unit_test(test_kill_in_flight),
        cmocka_unit_test(test_restart_reconnects),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_subscribe_binary),
        cmocka_unit_test(test_subscribe_pipeline),
        cmocka_unit_test(test_unsubscribe),
        cmocka_unit_test(test_handler_unsubscribes_and_destroys),
        cmocka_unit_test(test_subscriber_restart),
        cmocka_unit_test(test_subscriber_idle),
        cmocka_unit_test(test_subscriber_mute_server),
        cmocka_unit_test(test_auth),
    };

    return cmocka_run_group_tests(tests, pd_test_setup, pd_test_teardown);
}
