/*
 * pd_redis.c: hiredis' async API driven by the worker's epoll loop.
 *
 * hiredis 0.14 (Debian 12) keeps the protocol state and the reply
 * callbacks; this file owns the socket's place in the loop, the deadlines
 * (0.14 has no timer hook) and the reconnect policy.  The socket is a
 * pd_connection_t from the worker's array, registered once edge-triggered
 * like every client socket.  hiredis reads at most 16 KB per
 * redisAsyncHandleRead(), so the read handler asks the kernel how much is
 * left (FIONREAD) and reads again until nothing is: cheaper than making
 * these few sockets level-triggered, which would cost an epoll_ctl() per
 * write-interest change and an API the loop does not have.
 *
 * hiredis calls back from deep inside its own frames, and freeing its
 * context there is undefined; so every call into hiredis is bracketed by
 * r->busy, user work that could free (the connect handler) waits until
 * hiredis has returned, and a destroy requested meanwhile completes when
 * the outermost bracket closes.
 *
 * A subscriber bypasses hiredis' reply matching: 0.14 hands the next
 * reply, whatever it is, to the oldest regular callback even while
 * subscribed, so a PING would swallow a message, and a PONG arriving
 * after the last UNSUBSCRIBE trips an assert.  Its commands are appended
 * to the output buffer with no callback and its replies are taken from
 * the reader and dispatched here: messages by channel, subscription
 * confirmations counted, anything at all taken as a sign of life.
 */

#include "pd_core.h"

#include <sys/ioctl.h>
#include <openssl/sha.h>

#define PD_REDIS_IDLE        0   /* created, not started */
#define PD_REDIS_CONNECTING  1   /* connect(2) in progress */
#define PD_REDIS_CONNECTED   2
#define PD_REDIS_CLOSING     3   /* failed: pending commands being failed */
#define PD_REDIS_WAITING     4   /* backoff before the next attempt */
#define PD_REDIS_AUTH        5   /* connected, AUTH sent, not answered */

/* spare command records kept for reuse; more are given back to malloc */
#define PD_REDIS_FREE_CMDS   1024

/* "[" addr "]:" port */
#define PD_REDIS_ADDR_LEN    (INET6_ADDRSTRLEN + sizeof("[]:65535"))

/*
 * EVAL sends a script's whole text with every call, and the server
 * hashes it every time to find its compiled copy: a few hundred bytes
 * and a SHA1 per message in the saver's hot path.  So an EVAL of a
 * script seen before goes as EVALSHA, the script having gone once per
 * link as SCRIPT LOAD ahead of it in the same pipeline (so it is there
 * when the EVALSHA is read).  The scripts are the modules' static
 * strings, known by their address; a server that lost them (SCRIPT
 * FLUSH) answers NOSCRIPT once, and they go again.
 */
#define PD_REDIS_SCRIPTS     16
#define PD_REDIS_EVAL_ARGS   256    /* beyond, EVAL as it came */

typedef struct {
    const char           *text;
    size_t                len;
    char                  sha[SHA_DIGEST_LENGTH * 2];
} pd_redis_script_t;

static pd_redis_script_t  pd_redis_scripts[PD_REDIS_SCRIPTS];
static pd_uint_t          pd_redis_nscripts;

typedef struct pd_redis_cmd_s      pd_redis_cmd_t;
typedef struct pd_redis_channel_s  pd_redis_channel_t;

struct pd_redis_cmd_s {
    pd_queue_t            queue;      /* r->pending, oldest first */
    pd_redis_reply_pt     handler;
    void                 *data;
    pd_msec_t             start;
};

struct pd_redis_channel_s {
    pd_queue_t            queue;      /* r->channels */
    pd_redis_message_pt   handler;
    void                 *data;
    size_t                len;
    unsigned              confirmed:1;  /* the server said "subscribe" */
    char                  name[];       /* len bytes and a NUL */
};

struct pd_redis_s {
    redisAsyncContext    *ac;         /* NULL between links */
    pd_connection_t      *connection; /* its socket's slot in the loop */
    pd_log_t             *log;
    pd_timer_t            timer;      /* connect, command or backoff */
    pd_msec_t             timeout;
    pd_msec_t             backoff;    /* wait before the next attempt */

    pd_queue_t            pending;    /* pd_redis_cmd_t in flight */
    pd_uint_t             npending;
    pd_queue_t            free;       /* spare pd_redis_cmd_t */
    pd_uint_t             nfree;

    pd_queue_t            channels;   /* pd_redis_channel_t, subscriber */
    pd_uint_t             nconfirmed;
    pd_msec_t             heard;      /* the server's last reply */

    pd_redis_connect_pt   connect_handler;
    void                 *connect_data;

    pd_uint_t             state;
    pd_uint_t             busy;       /* depth of calls into hiredis */
    int                   port;
    uint32_t              loaded;     /* bit i: pd_redis_scripts[i] was
                                       * sent on this link */

    unsigned              want_write:1;  /* hiredis has output queued */
    unsigned              writing:1;     /* inside redisAsyncHandleWrite */
    unsigned              notify:1;      /* connect handler is due */
    unsigned              destroy:1;     /* free once hiredis returns */
    unsigned              subscriber:1;  /* replies dispatched here */
    unsigned              probing:1;     /* a PING is out, unanswered */

    char                 *user;       /* AUTH user, NULL: "default" */
    char                 *password;   /* NULL: no AUTH */

    char                  host[INET6_ADDRSTRLEN];
    char                  addr[PD_REDIS_ADDR_LEN];  /* for the log */
};

static pd_int_t pd_redis_open(pd_redis_t *r);
static void pd_redis_retry(pd_redis_t *r);
static void pd_redis_fail(pd_redis_t *r);
static void pd_redis_leave(pd_redis_t *r);
static void pd_redis_free(pd_redis_t *r);
static void pd_redis_arm(pd_redis_t *r, pd_msec_t msec);
static void pd_redis_timer_handler(pd_timer_t *t);
static void pd_redis_read_handler(pd_event_t *rev);
static void pd_redis_write_handler(pd_event_t *wev);
static void pd_redis_on_connect(const redisAsyncContext *ac, int status);
static void pd_redis_on_auth(redisAsyncContext *ac, void *reply,
    void *privdata);
static pd_int_t pd_redis_auth_send(pd_redis_t *r);
static void pd_redis_ready(pd_redis_t *r);
static char *pd_redis_strdup(const char *s, pd_log_t *log);
static void pd_redis_on_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void pd_redis_ev_add_write(void *privdata);
static void pd_redis_ev_del_write(void *privdata);
static void pd_redis_ev_cleanup(void *privdata);
static pd_redis_cmd_t *pd_redis_cmd_alloc(pd_redis_t *r);
static void pd_redis_cmd_free(pd_redis_t *r, pd_redis_cmd_t *cmd);
static pd_int_t pd_redis_pubsub(const char *name, size_t len);
static pd_int_t pd_redis_sub_read(pd_redis_t *r);
static void pd_redis_sub_reply(pd_redis_t *r, redisReply *reply);
static void pd_redis_sub_send(pd_redis_t *r, const char *verb,
    const char *arg, size_t len);
static void pd_redis_sub_resend(pd_redis_t *r);
static pd_int_t pd_redis_sub_probe(pd_redis_t *r);
static pd_redis_channel_t *pd_redis_channel_find(pd_redis_t *r,
    const char *name, size_t len);
static pd_int_t pd_redis_send(pd_redis_t *r, pd_redis_reply_pt cb,
    void *data, int argc, const char **argv, const size_t *argvlen);
static pd_int_t pd_redis_script(const char *text, size_t len);
static void pd_redis_script_loaded(pd_redis_t *r, redisReply *reply,
    void *data);


pd_redis_t *
pd_redis_create(const char *host, int port, pd_msec_t timeout,
    pd_log_t *log)
{
    pd_redis_t       *r;
    struct in6_addr   a6;
    struct in_addr    a4;
    int               v6;

    v6 = 0;

    if (inet_pton(AF_INET, host, &a4) != 1) {
        if (inet_pton(AF_INET6, host, &a6) != 1) {
            pd_log_error(PD_LOG_EMERG, log, 0,
                         "redis host \"%s\" is not an IP address", host);
            return NULL;
        }
        v6 = 1;
    }

    if (port <= 0 || port > 65535) {
        pd_log_error(PD_LOG_EMERG, log, 0, "redis port %d is invalid",
                     port);
        return NULL;
    }

    r = pd_calloc(sizeof(pd_redis_t), log);
    if (r == NULL) {
        return NULL;
    }

    /* inet_pton() accepted it, so it fits */
    (void) snprintf(r->host, sizeof(r->host), "%s", host);
    (void) snprintf(r->addr, sizeof(r->addr), v6 ? "[%s]:%d" : "%s:%d",
                    host, port);

    r->port = port;
    r->timeout = timeout;
    r->log = log;
    r->backoff = PD_REDIS_BACKOFF_MIN;
    r->state = PD_REDIS_IDLE;

    pd_queue_init(&r->pending);
    pd_queue_init(&r->free);
    pd_queue_init(&r->channels);
    pd_timer_init(&r->timer, pd_redis_timer_handler);

    return r;
}


pd_redis_t *
pd_redis_create_subscriber(const char *host, int port, pd_msec_t timeout,
    pd_log_t *log)
{
    pd_redis_t  *r;

    r = pd_redis_create(host, port, timeout, log);

    if (r != NULL) {
        r->subscriber = 1;
    }

    return r;
}


void
pd_redis_set_connect_handler(pd_redis_t *r, pd_redis_connect_pt h,
    void *data)
{
    r->connect_handler = h;
    r->connect_data = data;
}


pd_int_t
pd_redis_set_auth(pd_redis_t *r, const char *user, const char *password)
{
    char  *u, *p;

    u = NULL;

    if (user != NULL) {
        u = pd_redis_strdup(user, r->log);
        if (u == NULL) {
            return PD_ERROR;
        }
    }

    p = pd_redis_strdup(password, r->log);
    if (p == NULL) {
        pd_free(u);
        return PD_ERROR;
    }

    pd_free(r->user);

    if (r->password != NULL) {
        explicit_bzero(r->password, strlen(r->password));
        pd_free(r->password);
    }

    r->user = u;
    r->password = p;

    return PD_OK;
}


pd_int_t
pd_redis_connect(pd_redis_t *r)
{
    if (r->destroy) {
        return PD_ERROR;
    }

    if (r->state != PD_REDIS_IDLE) {
        return PD_OK;
    }

    if (pd_redis_open(r) != PD_OK) {
        pd_redis_retry(r);
    }

    return PD_OK;
}


pd_int_t
pd_redis_connected(pd_redis_t *r)
{
    return r->state == PD_REDIS_CONNECTED;
}


pd_uint_t
pd_redis_pending(pd_redis_t *r)
{
    return r->npending;
}


pd_int_t
pd_redis_command(pd_redis_t *r, pd_redis_reply_pt cb, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    const char  *av[PD_REDIS_EVAL_ARGS], *load[3];
    size_t       avlen[PD_REDIS_EVAL_ARGS], loadlen[3];
    pd_int_t     i;
    int          k;

    if (argc < 3 || argvlen == NULL || argc > PD_REDIS_EVAL_ARGS
        || argvlen[0] != 4 || strncasecmp(argv[0], "EVAL", 4) != 0
        || r->state != PD_REDIS_CONNECTED || r->subscriber)
    {
        return pd_redis_send(r, cb, data, argc, argv, argvlen);
    }

    i = pd_redis_script(argv[1], argvlen[1]);
    if (i < 0) {
        return pd_redis_send(r, cb, data, argc, argv, argvlen);
    }

    if (!(r->loaded & (1u << i))) {
        load[0] = "SCRIPT";
        loadlen[0] = 6;
        load[1] = "LOAD";
        loadlen[1] = 4;
        load[2] = argv[1];
        loadlen[2] = argvlen[1];

        if (pd_redis_send(r, pd_redis_script_loaded, NULL, 3, load, loadlen)
            != PD_OK)
        {
            return pd_redis_send(r, cb, data, argc, argv, argvlen);
        }

        r->loaded |= 1u << i;
    }

    av[0] = "EVALSHA";
    avlen[0] = 7;
    av[1] = pd_redis_scripts[i].sha;
    avlen[1] = sizeof(pd_redis_scripts[i].sha);

    for (k = 2; k < argc; k++) {
        av[k] = argv[k];
        avlen[k] = argvlen[k];
    }

    return pd_redis_send(r, cb, data, argc, av, avlen);
}


/* the index of a script by its text's address (new ones hashed once);
 * -1 when the table is full */
static pd_int_t
pd_redis_script(const char *text, size_t len)
{
    pd_redis_script_t  *s;
    u_char              md[SHA_DIGEST_LENGTH];
    pd_uint_t           i;

    for (i = 0; i < pd_redis_nscripts; i++) {
        if (pd_redis_scripts[i].text == text
            && pd_redis_scripts[i].len == len)
        {
            return (pd_int_t) i;
        }
    }

    if (pd_redis_nscripts == PD_REDIS_SCRIPTS) {
        return -1;
    }

    s = &pd_redis_scripts[pd_redis_nscripts];
    (void) SHA1((const u_char *) text, len, md);
    (void) pd_hex_dump((u_char *) s->sha, md, SHA_DIGEST_LENGTH);
    s->text = text;
    s->len = len;

    return (pd_int_t) pd_redis_nscripts++;
}


static void
pd_redis_script_loaded(pd_redis_t *r, redisReply *reply, void *data)
{
    (void) data;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        /* its EVALSHA fails with NOSCRIPT, and the next call loads it */
        pd_log_error(PD_LOG_ERR, r->log, 0, "redis %s: SCRIPT LOAD: %s",
                     r->addr, reply->str);
        r->loaded = 0;
    }
}


/*
 * A command in RESP, formatted here into one buffer sized first: hiredis'
 * redisAsyncCommandArgv builds it with sdscatfmt, an sds grown piece by
 * piece, which with its helpers was about 6% of a cluster worker's CPU.
 * hiredis appends the result to its output as it is.  The buffer is the
 * process's, kept for the next command up to PD_REDIS_FMT_KEEP; a larger
 * command has one of its own, freed by pd_redis_format_done().
 */
#define PD_REDIS_FMT_KEEP  (64 * 1024)

static char    *pd_redis_fmt;

static char *
pd_redis_format(int argc, const char **argv, const size_t *argvlen,
    size_t *len, pd_log_t *log)
{
    size_t   need, n;
    u_char  *p;
    char    *buf;
    int      i;

    need = 1 + 20 + 2;
    for (i = 0; i < argc; i++) {
        need += 1 + 20 + 2 + (argvlen ? argvlen[i] : strlen(argv[i])) + 2;
    }

    if (need > PD_REDIS_FMT_KEEP) {
        buf = pd_alloc(need, log);

    } else {
        if (pd_redis_fmt == NULL) {
            pd_redis_fmt = pd_alloc(PD_REDIS_FMT_KEEP, log);
            if (pd_redis_fmt == NULL) {
                return NULL;
            }
        }

        buf = pd_redis_fmt;
    }

    if (buf == NULL) {
        return NULL;
    }

    p = (u_char *) buf;
    *p++ = '*';
    p = pd_dec64(p, (uint64_t) argc);
    *p++ = '\r';
    *p++ = '\n';

    for (i = 0; i < argc; i++) {
        n = argvlen ? argvlen[i] : strlen(argv[i]);
        *p++ = '$';
        p = pd_dec64(p, n);
        *p++ = '\r';
        *p++ = '\n';
        p = pd_cpymem(p, argv[i], n);
        *p++ = '\r';
        *p++ = '\n';
    }

    *len = (size_t) (p - (u_char *) buf);
    return buf;
}

static void
pd_redis_format_done(char *buf)
{
    if (buf != NULL && buf != pd_redis_fmt) {
        pd_free(buf);
    }
}

static pd_int_t
pd_redis_send(pd_redis_t *r, pd_redis_reply_pt cb, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    pd_redis_cmd_t    *cmd;
    redisAsyncContext *ac;
    size_t             len;
    char              *buf;

    if (r->subscriber) {
        pd_log_error(PD_LOG_ALERT, r->log, 0,
                     "redis %s: a subscriber takes no commands", r->addr);
        return PD_ERROR;
    }

    if (r->state != PD_REDIS_CONNECTED) {
        return PD_DECLINED;
    }

    if (argc < 1) {
        return PD_ERROR;
    }

    /* their replies are not one per command: the count below would lie */
    len = argvlen ? argvlen[0] : strlen(argv[0]);

    if (pd_redis_pubsub(argv[0], len)) {
        pd_log_error(PD_LOG_ALERT, r->log, 0,
                     "redis %s: \"%.*s\" is not a request/reply command",
                     r->addr, (int) len, argv[0]);
        return PD_ERROR;
    }

    cmd = pd_redis_cmd_alloc(r);
    if (cmd == NULL) {
        return PD_ERROR;
    }

    cmd->handler = cb;
    cmd->data = data;
    cmd->start = pd_current_msec;

    ac = r->ac;

    buf = pd_redis_format(argc, argv, argvlen, &len, r->log);

    if (buf == NULL
        || redisAsyncFormattedCommand(ac, pd_redis_on_reply, cmd, buf, len)
           != REDIS_OK)
    {
        pd_redis_format_done(buf);
        pd_redis_cmd_free(r, cmd);
        return PD_ERROR;
    }

    pd_redis_format_done(buf);

    if (ac->replies.tail == NULL || ac->replies.tail->privdata != cmd) {
        /*
         * hiredis 0.14 ignores a failed malloc() of the callback record
         * but still sends the command: its reply would then be matched
         * to the wrong callback, so this link cannot be trusted any more
         */
        pd_log_error(PD_LOG_ALERT, r->log, 0,
                     "redis %s: callback not queued, dropping the link",
                     r->addr);
        pd_redis_cmd_free(r, cmd);
        r->state = PD_REDIS_CLOSING;
        pd_redis_arm(r, 0);
        return PD_ERROR;
    }

    pd_queue_insert_tail(&r->pending, &cmd->queue);
    r->npending++;

    if (r->timeout && !pd_timer_is_set(&r->timer)) {
        pd_redis_arm(r, r->timeout);
    }

    return PD_OK;
}


pd_int_t
pd_redis_publish(pd_redis_t *r, const char *channel, const u_char *payload,
    size_t len, pd_redis_reply_pt cb, void *data)
{
    const char  *argv[3];
    size_t       argvlen[3];

    argv[0] = "PUBLISH";
    argvlen[0] = sizeof("PUBLISH") - 1;
    argv[1] = channel;
    argvlen[1] = strlen(channel);
    argv[2] = (const char *) payload;
    argvlen[2] = len;

    return pd_redis_command(r, cb, data, 3, argv, argvlen);
}


pd_int_t
pd_redis_subscribe(pd_redis_t *r, const char *channel,
    pd_redis_message_pt handler, void *data)
{
    pd_redis_channel_t  *ch;
    size_t               len;

    if (!r->subscriber || r->destroy || handler == NULL) {
        pd_log_error(PD_LOG_ALERT, r->log, 0,
                     "redis %s: subscribe on a connection that is not a "
                     "subscriber, or with no handler", r->addr);
        return PD_ERROR;
    }

    len = strlen(channel);

    ch = pd_redis_channel_find(r, channel, len);

    if (ch != NULL) {
        ch->handler = handler;
        ch->data = data;
        return PD_OK;
    }

    ch = pd_alloc(sizeof(pd_redis_channel_t) + len + 1, r->log);
    if (ch == NULL) {
        return PD_ERROR;
    }

    ch->handler = handler;
    ch->data = data;
    ch->len = len;
    ch->confirmed = 0;
    memcpy(ch->name, channel, len + 1);

    pd_queue_insert_tail(&r->channels, &ch->queue);

    if (r->state == PD_REDIS_CONNECTED) {
        pd_redis_sub_send(r, "SUBSCRIBE", ch->name, ch->len);
    }

    return PD_OK;
}


pd_int_t
pd_redis_unsubscribe(pd_redis_t *r, const char *channel)
{
    pd_redis_channel_t  *ch;

    ch = pd_redis_channel_find(r, channel, strlen(channel));
    if (ch == NULL) {
        return PD_DECLINED;
    }

    pd_queue_remove(&ch->queue);

    if (ch->confirmed) {
        r->nconfirmed--;
    }

    if (r->state == PD_REDIS_CONNECTED) {
        pd_redis_sub_send(r, "UNSUBSCRIBE", ch->name, ch->len);
    }

    pd_free(ch);

    return PD_OK;
}


pd_uint_t
pd_redis_subscribed(pd_redis_t *r)
{
    return r->nconfirmed;
}


void
pd_redis_destroy(pd_redis_t *r)
{
    if (r->destroy) {
        return;
    }

    r->destroy = 1;

    if (pd_timer_is_set(&r->timer)) {
        pd_timer_del(&pd_timers, &r->timer);
    }

    if (r->ac) {
        /* inside a reply callback hiredis defers this until it returns */
        r->state = PD_REDIS_CLOSING;
        r->busy++;
        redisAsyncFree(r->ac);
        r->busy--;
    }

    if (r->busy == 0) {
        pd_redis_free(r);
    }
}


/* one attempt: PD_ERROR when it failed at once and a retry is due */
static pd_int_t
pd_redis_open(pd_redis_t *r)
{
    redisAsyncContext  *ac;
    pd_connection_t    *c;

    ac = redisAsyncConnect(r->host, r->port);

    if (ac == NULL) {
        pd_log_error(PD_LOG_ALERT, r->log, 0,
                     "redisAsyncConnect(%s) failed: no memory", r->addr);
        return PD_ERROR;
    }

    if (ac->err) {
        pd_log_error(PD_LOG_ERR, r->log, 0,
                     "connect() to redis %s failed: %s", r->addr,
                     ac->errstr);
        redisAsyncFree(ac);
        return PD_ERROR;
    }

    c = pd_get_connection(ac->c.fd, r->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        return PD_ERROR;
    }

    /* not a client: does not count among the worker's clients */
    c->shared = 1;
    c->data = r;
    c->read->handler = pd_redis_read_handler;
    c->write->handler = pd_redis_write_handler;

    if (pd_add_conn(c) != PD_OK) {
        pd_release_connection(c, 1);
        redisAsyncFree(ac);
        return PD_ERROR;
    }

    /* an idle link to a dead host is found by the kernel, not by us */
    (void) redisEnableKeepAlive(&ac->c);

    /* what the server says is read within bounds */
    pd_redis_reader_limit(ac->c.reader);

    r->ac = ac;
    r->connection = c;
    r->state = PD_REDIS_CONNECTING;
    r->want_write = 0;

    ac->data = r;
    ac->ev.data = r;
    /* no read hooks: the socket stays registered for input */
    ac->ev.addWrite = pd_redis_ev_add_write;
    ac->ev.delWrite = pd_redis_ev_del_write;
    ac->ev.cleanup = pd_redis_ev_cleanup;

    (void) redisAsyncSetConnectCallback(ac, pd_redis_on_connect);

    pd_log_debug(r->log, "redis %s: connecting, fd %d", r->addr, c->fd);

    if (r->timeout) {
        pd_redis_arm(r, r->timeout);
    }

    return PD_OK;
}


/* waits the current backoff, then doubles it for the attempt after */
static void
pd_redis_retry(pd_redis_t *r)
{
    r->state = PD_REDIS_WAITING;

    pd_log_debug(r->log, "redis %s: next attempt in %lums", r->addr,
                 (unsigned long) r->backoff);

    pd_redis_arm(r, r->backoff);
    r->backoff = pd_min(r->backoff * 2, PD_REDIS_BACKOFF_MAX);
}


/* the link is broken: fail what is pending, close, retry later */
static void
pd_redis_fail(pd_redis_t *r)
{
    r->state = PD_REDIS_CLOSING;

    r->busy++;
    redisAsyncFree(r->ac);
    r->busy--;
}


/* after a call into hiredis: the work that had to wait for it to return */
static void
pd_redis_leave(pd_redis_t *r)
{
    if (r->busy) {
        return;
    }

    if (r->destroy) {
        if (r->ac) {
            /* a free deferred by hiredis that it did not pick up */
            r->busy++;
            redisAsyncFree(r->ac);
            r->busy--;
        }

        pd_redis_free(r);
        return;
    }

    if (r->notify && r->state == PD_REDIS_CONNECTED) {
        r->notify = 0;

        if (r->connect_handler) {
            r->busy++;
            r->connect_handler(r, r->connect_data);
            r->busy--;

            /* the handler may have destroyed r */
            pd_redis_leave(r);
        }
    }
}


static void
pd_redis_free(pd_redis_t *r)
{
    pd_queue_t  *q;

    while (!pd_queue_empty(&r->free)) {
        q = pd_queue_head(&r->free);
        pd_queue_remove(q);
        pd_free(pd_queue_data(q, pd_redis_cmd_t, queue));
    }

    while (!pd_queue_empty(&r->channels)) {
        q = pd_queue_head(&r->channels);
        pd_queue_remove(q);
        pd_free(pd_queue_data(q, pd_redis_channel_t, queue));
    }

    if (r->password != NULL) {
        explicit_bzero(r->password, strlen(r->password));
        pd_free(r->password);
    }

    pd_free(r->user);
    pd_free(r);
}


static void
pd_redis_arm(pd_redis_t *r, pd_msec_t msec)
{
    if (pd_timer_add(&pd_timers, &r->timer, pd_current_msec, msec)
        != PD_OK)
    {
        pd_log_error(PD_LOG_ALERT, r->log, 0,
                     "redis %s: pd_timer_add() failed", r->addr);
    }
}


static void
pd_redis_timer_handler(pd_timer_t *t)
{
    pd_redis_t      *r = pd_timer_owner(t, pd_redis_t, timer);
    pd_redis_cmd_t  *cmd;
    pd_msec_t        age;

    switch (r->state) {

    case PD_REDIS_WAITING:
        if (pd_redis_open(r) != PD_OK) {
            pd_redis_retry(r);
        }
        return;

    case PD_REDIS_CONNECTING:
        pd_log_error(PD_LOG_ERR, r->log, 0,
                     "connect() to redis %s timed out", r->addr);
        break;

    case PD_REDIS_AUTH:
        pd_log_error(PD_LOG_ERR, r->log, 0,
                     "redis %s: no answer to AUTH in %lums", r->addr,
                     (unsigned long) r->timeout);
        break;

    case PD_REDIS_CONNECTED:
        if (r->subscriber) {
            if (pd_redis_sub_probe(r) == PD_OK) {
                return;
            }
            break;
        }

        if (pd_queue_empty(&r->pending)) {
            return;
        }

        cmd = pd_queue_data(pd_queue_head(&r->pending), pd_redis_cmd_t,
                            queue);
        age = pd_current_msec - cmd->start;

        if (age < r->timeout) {
            /* the oldest was answered; wait for the one now oldest */
            pd_redis_arm(r, r->timeout - age);
            return;
        }

        pd_log_error(PD_LOG_ERR, r->log, 0,
                     "redis %s: no reply in %lums, %lu commands pending; "
                     "reconnecting", r->addr, (unsigned long) age,
                     (unsigned long) r->npending);
        break;

    case PD_REDIS_CLOSING:
        /* pd_redis_command() found the link unusable */
        break;

    default:
        return;
    }

    pd_redis_fail(r);
    pd_redis_leave(r);
}


static void
pd_redis_read_handler(pd_event_t *rev)
{
    pd_connection_t  *c = rev->data;
    pd_redis_t       *r = c->data;
    int               n;

    r->busy++;

    for ( ;; ) {
        if (r->subscriber && r->state != PD_REDIS_CONNECTING
            && r->state != PD_REDIS_AUTH)
        {
            /*
             * hiredis' own matching would assert on a reply it has no
             * callback for; it only sees the socket until the connect
             * and the answer to AUTH, which has its callback
             */
            if (r->state != PD_REDIS_CONNECTED
                || pd_redis_sub_read(r) != PD_OK)
            {
                break;
            }

        } else {
            redisAsyncHandleRead(r->ac);
        }

        if (r->ac == NULL || r->state != PD_REDIS_CONNECTED) {
            /* link gone (c is back in the free list), or connect pending */
            break;
        }

        /* edge-triggered: what hiredis left unread gets no new edge */
        if (ioctl(c->fd, FIONREAD, &n) == -1) {
            n = 0;
        }

        if (n > 0) {
            continue;
        }

        if (!rev->pending_eof) {
            break;
        }

        /* the peer's FIN came with this edge: one more read sees it */
        rev->pending_eof = 0;
    }

    r->busy--;

    pd_redis_leave(r);
}


void
pd_redis_flush(pd_redis_t *r)
{
    if (r->ac != NULL && r->want_write && !r->writing
        && r->state == PD_REDIS_CONNECTED && r->connection->write->ready)
    {
        pd_redis_write_handler(r->connection->write);
    }
}


static void
pd_redis_write_handler(pd_event_t *wev)
{
    pd_connection_t  *c = wev->data;
    pd_redis_t       *r = c->data;

    /* an EPOLLOUT edge may arrive while the write is posted */
    pd_delete_posted_event(wev);

    /* while connecting, the first edge is the answer to connect(2) */
    if (!(r->state == PD_REDIS_CONNECTING
          || ((r->state == PD_REDIS_CONNECTED || r->state == PD_REDIS_AUTH)
              && r->want_write)))
    {
        return;
    }

    r->busy++;
    r->writing = 1;

    redisAsyncHandleWrite(r->ac);

    r->writing = 0;

    if (r->ac && r->want_write) {
        /* short write: the socket is full, the next edge says when not */
        wev->ready = 0;
    }

    r->busy--;

    pd_redis_leave(r);
}


static void
pd_redis_on_connect(const redisAsyncContext *ac, int status)
{
    pd_redis_t  *r = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context next: the cleanup hook logs, retries */
        return;
    }

    if (pd_timer_is_set(&r->timer)) {
        pd_timer_del(&pd_timers, &r->timer);
    }

    if (r->password == NULL) {
        pd_redis_ready(r);
        return;
    }

    /*
     * AUTH goes first and alone: nothing else is accepted (commands are
     * declined, subscriptions wait) until the server said yes, so no
     * command ever meets a NOAUTH on this link
     */
    r->state = PD_REDIS_AUTH;

    if (pd_redis_auth_send(r) != PD_OK) {
        r->state = PD_REDIS_CLOSING;
        pd_redis_arm(r, 0);
        return;
    }

    if (r->timeout) {
        pd_redis_arm(r, r->timeout);
    }
}


/* queues "AUTH [user] password" with its own callback */
static pd_int_t
pd_redis_auth_send(pd_redis_t *r)
{
    const char  *argv[3];
    int          argc;

    argc = 0;
    argv[argc++] = "AUTH";

    if (r->user != NULL) {
        argv[argc++] = r->user;
    }

    argv[argc++] = r->password;

    if (redisAsyncCommandArgv(r->ac, pd_redis_on_auth, r, argc, argv, NULL)
        != REDIS_OK
        || r->ac->replies.tail == NULL
        || r->ac->replies.tail->privdata != r)
    {
        /* as in pd_redis_command(): a lost callback would mismatch */
        pd_log_error(PD_LOG_ALERT, r->log, 0,
                     "redis %s: AUTH not queued, dropping the link",
                     r->addr);
        return PD_ERROR;
    }

    /* an EPOLLOUT edge may have been used up by the connect already */
    pd_redis_ev_add_write(r);

    return PD_OK;
}


static void
pd_redis_on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    pd_redis_t  *r = privdata;
    redisReply  *rep = reply;

    (void) ac;

    if (rep == NULL) {
        /* the link is failing; the cleanup hook retries */
        return;
    }

    if (rep->type == REDIS_REPLY_ERROR) {
        /* WRONGPASS, or AUTH without a password set: retried with the
         * backoff, which a refused AUTH does not reset */
        pd_log_error(PD_LOG_ERR, r->log, 0,
                     "redis %s: AUTH%s%s refused: %.*s", r->addr,
                     r->user ? " as " : "", r->user ? r->user : "",
                     (int) pd_min(rep->len, 200), rep->str);
        r->state = PD_REDIS_CLOSING;
        pd_redis_arm(r, 0);
        return;
    }

    if (pd_timer_is_set(&r->timer)) {
        pd_timer_del(&pd_timers, &r->timer);
    }

    pd_redis_ready(r);
}


/* the link is usable: commands are taken, subscriptions asked again */
static void
pd_redis_ready(pd_redis_t *r)
{
    r->state = PD_REDIS_CONNECTED;
    r->notify = 1;
    r->loaded = 0;          /* a new server may not have them */

    pd_log_error(PD_LOG_NOTICE, r->log, 0, "redis %s: connected%s%s%s",
                 r->addr, r->password ? ", authenticated" : "",
                 r->user ? " as " : "", r->user ? r->user : "");

    if (r->subscriber) {
        /* only appends to hiredis' output buffer: safe in its frame */
        pd_redis_sub_resend(r);
    }
}


static void
pd_redis_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    pd_redis_t         *r = ac->data;
    pd_redis_cmd_t     *cmd = privdata;
    pd_redis_reply_pt   handler;
    void               *data;

    pd_queue_remove(&cmd->queue);
    r->npending--;

    handler = cmd->handler;
    data = cmd->data;
    pd_redis_cmd_free(r, cmd);

    if (reply == NULL) {
        /* hiredis is failing the link: take no more commands on it */
        if (r->state == PD_REDIS_CONNECTED) {
            r->state = PD_REDIS_CLOSING;
        }

    } else {
        /* the server answers: the next loss starts the backoff anew */
        r->backoff = PD_REDIS_BACKOFF_MIN;

        if (((redisReply *) reply)->type == REDIS_REPLY_ERROR
            && strncmp(((redisReply *) reply)->str, "NOSCRIPT", 8) == 0)
        {
            pd_log_error(PD_LOG_WARN, r->log, 0, "redis %s lost the "
                         "scripts (SCRIPT FLUSH?): they go again", r->addr);
            r->loaded = 0;
        }
    }

    if (handler) {
        handler(r, reply, data);
    }
}


static void
pd_redis_ev_add_write(void *privdata)
{
    pd_redis_t  *r = privdata;
    pd_event_t  *wev;

    r->want_write = 1;

    if (r->writing
        || (r->state != PD_REDIS_CONNECTED && r->state != PD_REDIS_AUTH))
    {
        return;
    }

    wev = r->connection->write;

    if (wev->ready) {
        /* flushed at the end of the turn with whatever else is queued */
        pd_post_event(wev, &pd_posted_events);
    }
}


static void
pd_redis_ev_del_write(void *privdata)
{
    pd_redis_t  *r = privdata;

    r->want_write = 0;
}


/* hiredis is freeing the context (and closes the fd right after) */
static void
pd_redis_ev_cleanup(void *privdata)
{
    pd_redis_t          *r = privdata;
    pd_queue_t          *q;
    pd_redis_channel_t  *ch;

    /* the context's own error: a subscriber's reads bypass the copy */
    if (r->ac->c.err && !r->destroy) {
        pd_log_error(PD_LOG_ERR, r->log, 0,
                     r->state == PD_REDIS_CONNECTING
                     ? "connect() to redis %s failed: %s"
                     : "redis %s: connection lost: %s",
                     r->addr, r->ac->c.errstr);
    }

    /* the next link starts with no subscriptions */
    for (q = pd_queue_head(&r->channels);
         q != pd_queue_sentinel(&r->channels);
         q = pd_queue_next(q))
    {
        ch = pd_queue_data(q, pd_redis_channel_t, queue);
        ch->confirmed = 0;
    }

    r->nconfirmed = 0;
    r->probing = 0;

    pd_release_connection(r->connection, 1);

    r->connection = NULL;
    r->ac = NULL;
    r->want_write = 0;
    r->notify = 0;

    if (pd_timer_is_set(&r->timer)) {
        pd_timer_del(&pd_timers, &r->timer);
    }

    if (!r->destroy) {
        pd_redis_retry(r);
    }
}


static pd_redis_cmd_t *
pd_redis_cmd_alloc(pd_redis_t *r)
{
    pd_queue_t  *q;

    if (pd_queue_empty(&r->free)) {
        return pd_alloc(sizeof(pd_redis_cmd_t), r->log);
    }

    q = pd_queue_head(&r->free);
    pd_queue_remove(q);
    r->nfree--;

    return pd_queue_data(q, pd_redis_cmd_t, queue);
}


static void
pd_redis_cmd_free(pd_redis_t *r, pd_redis_cmd_t *cmd)
{
    if (r->nfree >= PD_REDIS_FREE_CMDS) {
        pd_free(cmd);
        return;
    }

    pd_queue_insert_head(&r->free, &cmd->queue);
    r->nfree++;
}


/* the commands hiredis 0.14 treats specially, as it matches them */
static pd_int_t
pd_redis_pubsub(const char *name, size_t len)
{
    if (len == sizeof("monitor") - 1
        && strncasecmp(name, "monitor", len) == 0)
    {
        return 1;
    }

    if (len > 0 && (name[0] == 'p' || name[0] == 'P')) {
        name++;
        len--;
    }

    return (len == sizeof("subscribe") - 1
            && strncasecmp(name, "subscribe", len) == 0)
           || (len == sizeof("unsubscribe") - 1
               && strncasecmp(name, "unsubscribe", len) == 0);
}


/*
 * One read of a subscriber's socket and every reply it completes.
 * PD_OK: read on while the kernel holds more; else the link was failed
 * or a handler changed r (closed, destroyed, link dropped).
 */
static pd_int_t
pd_redis_sub_read(pd_redis_t *r)
{
    redisContext  *c;
    void          *reply;

    c = &r->ac->c;

    if (redisBufferRead(c) != REDIS_OK) {
        pd_redis_fail(r);
        return PD_ERROR;
    }

    for ( ;; ) {
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK) {
            /* a protocol error: c->errstr says which, the cleanup logs */
            pd_redis_fail(r);
            return PD_ERROR;
        }

        if (reply == NULL) {
            return PD_OK;
        }

        /* whatever it is, the server is alive and talks to us */
        r->heard = pd_current_msec;
        r->probing = 0;
        r->backoff = PD_REDIS_BACKOFF_MIN;

        pd_redis_sub_reply(r, reply);
        freeReplyObject(reply);

        if (r->ac == NULL || r->destroy || r->state != PD_REDIS_CONNECTED) {
            return PD_ERROR;
        }
    }
}


/* hiredis' own reply functions, but for the arrays' bound */
#if (HIREDIS_MAJOR >= 1)
typedef size_t  pd_redis_nelts_t;
#else
typedef int     pd_redis_nelts_t;
#endif

static redisReplyObjectFunctions  pd_redis_reply_fn;
static void *(*pd_redis_create_array)(const redisReadTask *task,
    pd_redis_nelts_t n);

static void *
pd_redis_array(const redisReadTask *task, pd_redis_nelts_t n)
{
    if ((size_t) n > PD_REDIS_MAX_ELEMENTS) {
        /* NULL is out of memory to the reader: it fails, nothing is
         * allocated */
        return NULL;
    }

    return pd_redis_create_array(task, n);
}

void
pd_redis_reader_limit(redisReader *rd)
{
    if (pd_redis_create_array == NULL) {
        pd_redis_reply_fn = *rd->fn;
        pd_redis_create_array = rd->fn->createArray;
        pd_redis_reply_fn.createArray = pd_redis_array;
    }

    rd->fn = &pd_redis_reply_fn;
}


pd_uint_t
pd_redis_sub_parse(const redisReply *reply, const redisReply **channel,
    const redisReply **payload)
{
    redisReply  **e;

    if (reply->type == REDIS_REPLY_ERROR) {
        return PD_REDIS_SUB_ERROR;
    }

    /* ["message", channel, payload], ["subscribe", channel, count]... */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        /* +PONG while no channel is held, ["pong", ""] otherwise */
        return PD_REDIS_SUB_OTHER;
    }

    e = reply->element;

    if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_STRING)
    {
        return PD_REDIS_SUB_OTHER;
    }

    *channel = e[1];

    if (e[0]->len == sizeof("message") - 1
        && memcmp(e[0]->str, "message", e[0]->len) == 0
        && e[2]->type == REDIS_REPLY_STRING)
    {
        *payload = e[2];
        return PD_REDIS_SUB_MESSAGE;
    }

    if (e[0]->len == sizeof("subscribe") - 1
        && memcmp(e[0]->str, "subscribe", e[0]->len) == 0)
    {
        return PD_REDIS_SUB_CONFIRMED;
    }

    /*
     * "unsubscribe" for a channel held: it was dropped and added again,
     * and the "subscribe" that follows is the one that counts
     */
    return PD_REDIS_SUB_OTHER;
}


static void
pd_redis_sub_reply(pd_redis_t *r, redisReply *reply)
{
    pd_redis_channel_t  *ch;
    const redisReply    *channel, *payload;
    pd_uint_t            kind;

    channel = NULL;
    payload = NULL;
    kind = pd_redis_sub_parse(reply, &channel, &payload);

    if (kind == PD_REDIS_SUB_ERROR) {
        pd_log_error(PD_LOG_ERR, r->log, 0, "redis %s: subscriber got "
                     "\"%.*s\"", r->addr, (int) reply->len, reply->str);
        return;
    }

    if (kind == PD_REDIS_SUB_OTHER) {
        return;
    }

    ch = pd_redis_channel_find(r, channel->str, channel->len);

    if (ch == NULL) {
        /* unsubscribed while this was on its way */
        return;
    }

    if (kind == PD_REDIS_SUB_MESSAGE) {
        /* hiredis' strings end in a NUL; the reply outlives the call */
        ch->handler(r, channel->str, (u_char *) payload->str, payload->len,
                    ch->data);
        return;
    }

    if (!ch->confirmed) {
        ch->confirmed = 1;
        r->nconfirmed++;
    }
}


/*
 * Appends one command with no callback: hiredis matches no reply to it,
 * pd_redis_sub_reply() reads the answer for what it is.
 */
static void
pd_redis_sub_send(pd_redis_t *r, const char *verb, const char *arg,
    size_t len)
{
    const char  *argv[2];
    size_t       argvlen[2];

    argv[0] = verb;
    argvlen[0] = strlen(verb);
    argv[1] = arg;
    argvlen[1] = len;

    if (redisAppendCommandArgv(&r->ac->c, arg ? 2 : 1, argv, argvlen)
        != REDIS_OK)
    {
        /* the server and we would disagree on what is subscribed */
        pd_log_error(PD_LOG_ALERT, r->log, 0,
                     "redis %s: %s not queued: %s; dropping the link",
                     r->addr, verb, r->ac->c.errstr);
        r->state = PD_REDIS_CLOSING;
        pd_redis_arm(r, 0);
        return;
    }

    pd_redis_ev_add_write(r);
}


/* a new link: the probe starts, every channel held is asked for again */
static void
pd_redis_sub_resend(pd_redis_t *r)
{
    pd_queue_t          *q;
    pd_redis_channel_t  *ch;

    r->heard = pd_current_msec;
    r->probing = 0;

    if (r->timeout) {
        pd_redis_arm(r, r->timeout);
    }

    for (q = pd_queue_head(&r->channels);
         q != pd_queue_sentinel(&r->channels)
         && r->state == PD_REDIS_CONNECTED;
         q = pd_queue_next(q))
    {
        ch = pd_queue_data(q, pd_redis_channel_t, queue);
        pd_redis_sub_send(r, "SUBSCRIBE", ch->name, ch->len);
    }
}


/*
 * The subscriber's timer on a live link: PD_OK while the link is
 * believed alive (probe sent or not yet due), PD_ERROR when a PING got
 * no reply in r->timeout.  Replies only stamp r->heard; this checks it
 * at most twice per timeout, however many messages flow.
 */
static pd_int_t
pd_redis_sub_probe(pd_redis_t *r)
{
    pd_msec_t  quiet;

    if (r->probing) {
        pd_log_error(PD_LOG_ERR, r->log, 0,
                     "redis %s: no reply to PING in %lums; reconnecting",
                     r->addr, (unsigned long) r->timeout);
        return PD_ERROR;
    }

    quiet = pd_current_msec - r->heard;

    if (quiet < r->timeout) {
        pd_redis_arm(r, r->timeout - quiet);
        return PD_OK;
    }

    /* RESP2 allows PING while subscribed; the answer is ["pong", ""] */
    r->probing = 1;
    pd_redis_arm(r, r->timeout);
    pd_redis_sub_send(r, "PING", NULL, 0);

    return PD_OK;
}


/* a subscriber holds a handful of channels (its node's, a broadcast) */
static pd_redis_channel_t *
pd_redis_channel_find(pd_redis_t *r, const char *name, size_t len)
{
    pd_queue_t          *q;
    pd_redis_channel_t  *ch;

    for (q = pd_queue_head(&r->channels);
         q != pd_queue_sentinel(&r->channels);
         q = pd_queue_next(q))
    {
        ch = pd_queue_data(q, pd_redis_channel_t, queue);

        if (ch->len == len && memcmp(ch->name, name, len) == 0) {
            return ch;
        }
    }

    return NULL;
}


static char *
pd_redis_strdup(const char *s, pd_log_t *log)
{
    char    *p;
    size_t   len;

    len = strlen(s) + 1;

    p = pd_alloc(len, log);
    if (p != NULL) {
        pd_memcpy(p, s, len);
    }

    return p;
}


/* CRC-32 (IEEE 802.3, reflected, as zlib and Ethernet) */
static uint32_t
pd_redis_crc32(const u_char *p, size_t len)
{
    uint32_t  crc;
    int       k;

    crc = 0xffffffff;

    while (len--) {
        crc ^= *p++;

        for (k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xedb88320 & (0 - (crc & 1)));
        }
    }

    return ~crc;
}


uint32_t
pd_redis_shard(const u_char *uid, size_t len, uint32_t nshards)
{
    uint64_t  key;
    int64_t   b, j;

    /* Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash" */

    key = pd_redis_crc32(uid, len);
    b = -1;
    j = 0;

    while (j < (int64_t) nshards) {
        b = j;
        key = key * 2862933555777941757ULL + 1;
        j = (int64_t) ((double) (b + 1)
                       * ((double) (1LL << 31) / (double) ((key >> 33) + 1)));
    }

    return b < 0 ? 0 : (uint32_t) b;
}


typedef struct {
    const char     *name;
    pd_redis_t    **links;
    pd_uint_t       n;
} pd_redis_group_t;

static pd_redis_group_t  pd_redis_groups[PD_REDIS_GROUPS];

pd_int_t
pd_redis_group_set(const char *name, pd_redis_t **links, pd_uint_t n)
{
    pd_redis_group_t  *g, *free;
    pd_uint_t          i;

    free = NULL;

    for (i = 0; i < PD_REDIS_GROUPS; i++) {
        g = &pd_redis_groups[i];

        if (g->name != NULL && strcmp(g->name, name) == 0) {
            break;
        }

        if (g->name == NULL && free == NULL) {
            free = g;
        }
    }

    if (i == PD_REDIS_GROUPS) {
        if (n == 0) {
            return PD_OK;
        }

        if (free == NULL) {
            return PD_ERROR;
        }

        g = free;
    }

    g->name = (n != 0) ? name : NULL;
    g->links = (n != 0) ? links : NULL;
    g->n = n;

    return PD_OK;
}

pd_redis_t **
pd_redis_group(const char *name, pd_uint_t *n)
{
    pd_uint_t  i;

    for (i = 0; i < PD_REDIS_GROUPS; i++) {
        if (pd_redis_groups[i].name != NULL
            && strcmp(pd_redis_groups[i].name, name) == 0)
        {
            *n = pd_redis_groups[i].n;
            return pd_redis_groups[i].links;
        }
    }

    *n = 0;
    return NULL;
}
