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
 */

#include "pd_core.h"

#include <sys/ioctl.h>

#define PD_REDIS_IDLE        0   /* created, not started */
#define PD_REDIS_CONNECTING  1   /* connect(2) in progress */
#define PD_REDIS_CONNECTED   2
#define PD_REDIS_CLOSING     3   /* failed: pending commands being failed */
#define PD_REDIS_WAITING     4   /* backoff before the next attempt */

/* spare command records kept for reuse; more are given back to malloc */
#define PD_REDIS_FREE_CMDS   1024

/* "[" addr "]:" port */
#define PD_REDIS_ADDR_LEN    (INET6_ADDRSTRLEN + sizeof("[]:65535"))

typedef struct pd_redis_cmd_s  pd_redis_cmd_t;

struct pd_redis_cmd_s {
    pd_queue_t            queue;      /* r->pending, oldest first */
    pd_redis_reply_pt     handler;
    void                 *data;
    pd_msec_t             start;
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

    pd_redis_connect_pt   connect_handler;
    void                 *connect_data;

    pd_uint_t             state;
    pd_uint_t             busy;       /* depth of calls into hiredis */
    int                   port;

    unsigned              want_write:1;  /* hiredis has output queued */
    unsigned              writing:1;     /* inside redisAsyncHandleWrite */
    unsigned              notify:1;      /* connect handler is due */
    unsigned              destroy:1;     /* free once hiredis returns */

    char                  host[INET6_ADDRSTRLEN];
    char                  addr[PD_REDIS_ADDR_LEN];  /* for the log */
};

static pd_int_t pd_redis_open(pd_redis_t *r);
static void pd_redis_retry(pd_redis_t *r);
static void pd_redis_fail(pd_redis_t *r);
static void pd_redis_leave(pd_redis_t *r);
static void pd_redis_free(pd_redis_t *r);
static void pd_redis_release(pd_connection_t *c);
static void pd_redis_arm(pd_redis_t *r, pd_msec_t msec);
static void pd_redis_timer_handler(pd_timer_t *t);
static void pd_redis_read_handler(pd_event_t *rev);
static void pd_redis_write_handler(pd_event_t *wev);
static void pd_redis_on_connect(const redisAsyncContext *ac, int status);
static void pd_redis_on_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void pd_redis_ev_add_write(void *privdata);
static void pd_redis_ev_del_write(void *privdata);
static void pd_redis_ev_cleanup(void *privdata);
static pd_redis_cmd_t *pd_redis_cmd_alloc(pd_redis_t *r);
static void pd_redis_cmd_free(pd_redis_t *r, pd_redis_cmd_t *cmd);
static pd_int_t pd_redis_pubsub(const char *name, size_t len);


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
    pd_timer_init(&r->timer, pd_redis_timer_handler, r);

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
    pd_redis_cmd_t    *cmd;
    redisAsyncContext *ac;
    size_t             len;

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

    if (redisAsyncCommandArgv(ac, pd_redis_on_reply, cmd, argc, argv,
                              argvlen)
        != REDIS_OK)
    {
        pd_redis_cmd_free(r, cmd);
        return PD_ERROR;
    }

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
        pd_redis_release(c);
        redisAsyncFree(ac);
        return PD_ERROR;
    }

    /* an idle link to a dead host is found by the kernel, not by us */
    (void) redisEnableKeepAlive(&ac->c);

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


/*
 * Gives the slot back without pd_close_connection(), which would close
 * the fd: hiredis owns it and closes it itself.
 */
static void
pd_redis_release(pd_connection_t *c)
{
    pd_delete_posted_event(c->read);
    pd_delete_posted_event(c->write);

    if (c->read->active) {
        (void) pd_del_conn(c);
    }

    c->read->closed = 1;
    c->write->closed = 1;
    c->fd = -1;
    c->destroyed = 1;

    pd_free_connection(c);
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
    pd_redis_t      *r = t->data;
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

    case PD_REDIS_CONNECTED:
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
        redisAsyncHandleRead(r->ac);

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


static void
pd_redis_write_handler(pd_event_t *wev)
{
    pd_connection_t  *c = wev->data;
    pd_redis_t       *r = c->data;

    /* an EPOLLOUT edge may arrive while the write is posted */
    pd_delete_posted_event(wev);

    /* while connecting, the first edge is the answer to connect(2) */
    if (!(r->state == PD_REDIS_CONNECTING
          || (r->state == PD_REDIS_CONNECTED && r->want_write)))
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

    r->state = PD_REDIS_CONNECTED;
    r->notify = 1;

    pd_log_error(PD_LOG_NOTICE, r->log, 0, "redis %s: connected", r->addr);
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
    }

    handler(r, reply, data);
}


static void
pd_redis_ev_add_write(void *privdata)
{
    pd_redis_t  *r = privdata;
    pd_event_t  *wev;

    r->want_write = 1;

    if (r->writing || r->state != PD_REDIS_CONNECTED) {
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
    pd_redis_t  *r = privdata;

    if (r->ac->err && !r->destroy) {
        pd_log_error(PD_LOG_ERR, r->log, 0,
                     r->state == PD_REDIS_CONNECTING
                     ? "connect() to redis %s failed: %s"
                     : "redis %s: connection lost: %s",
                     r->addr, r->ac->errstr);
    }

    pd_redis_release(r->connection);

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
