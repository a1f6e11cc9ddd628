/*
 * pd_pg.c: libpq's non-blocking API in pipeline mode, driven by the
 * worker's epoll loop.
 *
 * libpq 14+ keeps the protocol state and queues commands without waiting
 * for their results; this file owns the socket's place in the loop, the
 * segments (a Sync per loop turn), the deadlines and the reconnect policy.
 * The socket is a pd_connection_t from the worker's array, registered
 * once edge-triggered like every client socket.  Because an edge comes
 * only when new bytes arrive, every read is followed by a look at what is
 * left (FIONREAD, and openssl's buffer under TLS), and every flush by a
 * look at what libpq read meanwhile: pqSendSome() reads when the socket
 * is full, behind our back.  While connecting, libpq's wishes do not
 * follow edges at all, and a zero-timeout poll() asks the socket.
 *
 * Results are matched to commands by order: each command yields its
 * result(s) then a NULL, each Sync a PGRES_PIPELINE_SYNC.  A result is
 * held until its segment's Sync, because the segment is one implicit
 * transaction: nothing in it is committed, or final, before that.
 */

#include "pd_core.h"

#include <sys/ioctl.h>
#include <poll.h>

#define PD_PG_IDLE        0   /* created, not started */
#define PD_PG_CONNECTING  1   /* PQconnectPoll() in progress */
#define PD_PG_CONNECTED   2
#define PD_PG_CLOSING     3   /* found broken inside a call: fail it soon */
#define PD_PG_WAITING     4   /* backoff before the next attempt */

/* spare command records kept for reuse; more are given back to malloc */
#define PD_PG_FREE_CMDS   1024

/* host ":" port "/" dbname, for the log */
#define PD_PG_ADDR_LEN    256

/* a server message as one log line */
#define PD_PG_MSG_LEN     1024

typedef struct pd_pg_cmd_s   pd_pg_cmd_t;
typedef struct pd_pg_stmt_s  pd_pg_stmt_t;

struct pd_pg_cmd_s {
    pd_queue_t          queue;    /* pg->pending, in libpq's order */
    pd_pg_result_pt     handler;
    void               *data;
    PGresult           *res;      /* held until the segment's Sync */
    pd_msec_t           start;
    unsigned            done:1;   /* its results are complete */
    unsigned            sync:1;   /* last of its segment: a Sync follows */
};

struct pd_pg_stmt_s {
    pd_queue_t          queue;    /* pg->stmts */
    char               *name;
    char               *sql;
    int                 nparams;
    unsigned            sent:1;   /* prepared, or being, on this link */
};

struct pd_pg_s {
    PGconn             *conn;        /* NULL between links */
    pd_connection_t    *connection;  /* its socket's slot in the loop */
    pd_log_t           *log;
    pd_timer_t          timer;       /* connect, command or backoff */
    pd_msec_t           timeout;
    pd_msec_t           backoff;     /* wait before the next attempt */
    char               *conninfo;

    /* libpq may replace its socket while connecting, even by the same
     * number: the inode tells */
    dev_t               sock_dev;
    ino_t               sock_ino;

    pd_queue_t          pending;     /* pd_pg_cmd_t sent, oldest first */
    pd_uint_t           npending;
    pd_pg_cmd_t        *cur;         /* the next result is its */
    pd_uint_t           unsynced;    /* complete segments before a Sync */
    pd_uint_t           generation;  /* bumped whenever pending is failed */
    pd_queue_t          free;        /* spare pd_pg_cmd_t */
    pd_uint_t           nfree;
    pd_queue_t          stmts;       /* pd_pg_stmt_t to prepare */

    pd_pg_connect_pt    connect_handler;
    void               *connect_data;

    pd_uint_t           state;
    pd_uint_t           busy;        /* depth of user callbacks */

    unsigned            poll_write:1;  /* connecting: libpq waits to write */
    unsigned            open:1;        /* commands queued after last Sync */
    unsigned            failed:1;      /* the head segment had an error */
    unsigned            destroy:1;     /* free once the callbacks return */

    char                addr[PD_PG_ADDR_LEN];
};

static pd_int_t pd_pg_check(pd_pg_t *pg, const char *conninfo);
static pd_int_t pd_pg_check_hosts(pd_pg_t *pg, const char *hosts,
    const char *hostaddrs);
static pd_int_t pd_pg_open(pd_pg_t *pg);
static pd_int_t pd_pg_track_socket(pd_pg_t *pg);
static pd_int_t pd_pg_same_socket(pd_pg_t *pg);
static pd_int_t pd_pg_register(pd_pg_t *pg);
static void pd_pg_connect_poll(pd_pg_t *pg);
static pd_int_t pd_pg_ready_now(pd_pg_t *pg);
static void pd_pg_established(pd_pg_t *pg);
static pd_int_t pd_pg_send_prepare(pd_pg_t *pg, pd_pg_stmt_t *stmt);
static pd_int_t pd_pg_sync(pd_pg_t *pg);
static pd_int_t pd_pg_queued(pd_pg_t *pg, pd_pg_result_pt cb, void *data);
static void pd_pg_broken(pd_pg_t *pg);
static void pd_pg_close(pd_pg_t *pg);
static void pd_pg_fail(pd_pg_t *pg);
static void pd_pg_fail_pending(pd_pg_t *pg);
static void pd_pg_retry(pd_pg_t *pg);
static void pd_pg_leave(pd_pg_t *pg);
static void pd_pg_free(pd_pg_t *pg);
static void pd_pg_arm(pd_pg_t *pg, pd_msec_t msec);
static void pd_pg_timer_handler(pd_timer_t *t);
static void pd_pg_read_handler(pd_event_t *rev);
static void pd_pg_write_handler(pd_event_t *wev);
static void pd_pg_input(pd_pg_t *pg);
static pd_int_t pd_pg_drain(pd_pg_t *pg);
static pd_int_t pd_pg_result(pd_pg_t *pg, PGresult *res);
static pd_int_t pd_pg_deliver(pd_pg_t *pg);
static pd_int_t pd_pg_more_input(pd_pg_t *pg);
static void pd_pg_prepared(pd_pg_t *pg, PGresult *res, void *data);
static void pd_pg_notice(void *arg, const char *message);
static void pd_pg_log_conn(pd_pg_t *pg, pd_uint_t level, const char *what);
static char *pd_pg_one_line(char *line, const char *msg);
static pd_pg_stmt_t *pd_pg_stmt_find(pd_pg_t *pg, const char *name);
static pd_pg_cmd_t *pd_pg_cmd_alloc(pd_pg_t *pg);
static void pd_pg_cmd_free(pd_pg_t *pg, pd_pg_cmd_t *cmd);


pd_pg_t *
pd_pg_create(const char *conninfo, pd_msec_t timeout, pd_log_t *log)
{
    pd_pg_t  *pg;
    size_t    len;

    pg = pd_calloc(sizeof(pd_pg_t), log);
    if (pg == NULL) {
        return NULL;
    }

    pg->log = log;

    if (pd_pg_check(pg, conninfo) != PD_OK) {
        pd_free(pg);
        return NULL;
    }

    len = strlen(conninfo) + 1;

    pg->conninfo = pd_alloc(len, log);
    if (pg->conninfo == NULL) {
        pd_free(pg);
        return NULL;
    }

    pd_memcpy(pg->conninfo, conninfo, len);

    pg->timeout = timeout;
    pg->backoff = PD_PG_BACKOFF_MIN;
    pg->state = PD_PG_IDLE;

    pd_queue_init(&pg->pending);
    pd_queue_init(&pg->free);
    pd_queue_init(&pg->stmts);
    pd_timer_init(&pg->timer, pd_pg_timer_handler);

    return pg;
}


void
pd_pg_set_connect_handler(pd_pg_t *pg, pd_pg_connect_pt h, void *data)
{
    pg->connect_handler = h;
    pg->connect_data = data;
}


pd_int_t
pd_pg_connect(pd_pg_t *pg)
{
    if (pg->destroy) {
        return PD_ERROR;
    }

    if (pg->state != PD_PG_IDLE) {
        return PD_OK;
    }

    if (pd_pg_open(pg) != PD_OK) {
        pd_pg_retry(pg);
    }

    return PD_OK;
}


pd_int_t
pd_pg_prepare(pd_pg_t *pg, const char *name, const char *sql, int nparams)
{
    pd_pg_stmt_t  *stmt;
    size_t         nlen, slen;

    stmt = pd_pg_stmt_find(pg, name);

    if (stmt != NULL) {
        if (strcmp(stmt->sql, sql) != 0 || stmt->nparams != nparams) {
            pd_log_error(PD_LOG_ALERT, pg->log, 0,
                         "postgres %s: statement \"%s\" is already "
                         "prepared otherwise", pg->addr, name);
            return PD_ERROR;
        }

    } else {
        /* the protocol's bound */
        if (nparams < 0 || nparams > 65535) {
            return PD_ERROR;
        }

        nlen = strlen(name) + 1;
        slen = strlen(sql) + 1;

        stmt = pd_alloc(sizeof(pd_pg_stmt_t) + nlen + slen, pg->log);
        if (stmt == NULL) {
            return PD_ERROR;
        }

        stmt->name = (char *) (stmt + 1);
        stmt->sql = stmt->name + nlen;
        pd_memcpy(stmt->name, name, nlen);
        pd_memcpy(stmt->sql, sql, slen);
        stmt->nparams = nparams;
        stmt->sent = 0;

        pd_queue_insert_tail(&pg->stmts, &stmt->queue);
    }

    if (pg->state == PD_PG_CONNECTED && !stmt->sent) {
        /* a failure here breaks the link, which prepares it again */
        (void) pd_pg_send_prepare(pg, stmt);
    }

    return PD_OK;
}


pd_int_t
pd_pg_exec(pd_pg_t *pg, const char *name, int nparams,
    const char *const *values, const int *lengths, const int *formats,
    pd_pg_result_pt cb, void *data)
{
    pd_pg_stmt_t  *stmt;

    if (pg->state != PD_PG_CONNECTED) {
        return PD_DECLINED;
    }

    stmt = pd_pg_stmt_find(pg, name);

    if (stmt == NULL || stmt->nparams != nparams) {
        pd_log_error(PD_LOG_ALERT, pg->log, 0,
                     "postgres %s: statement \"%s\" with %d parameters "
                     "was not prepared", pg->addr, name, nparams);
        return PD_ERROR;
    }

    /* a refusal may leave half a message in libpq's buffer: the link
     * cannot be trusted any more */
    if (!PQsendQueryPrepared(pg->conn, name, nparams, values, lengths,
                             formats, 0))
    {
        pd_pg_broken(pg);
        return PD_DECLINED;
    }

    return pd_pg_queued(pg, cb, data);
}


pd_int_t
pd_pg_query(pd_pg_t *pg, const char *sql, pd_pg_result_pt cb, void *data)
{
    if (pg->state != PD_PG_CONNECTED) {
        return PD_DECLINED;
    }

    /* the commands before it are a segment of their own */
    if (pd_pg_sync(pg) != PD_OK) {
        pd_pg_broken(pg);
        return PD_DECLINED;
    }

    /* PQsendQuery() is refused in pipeline mode (libpq 15) */
    if (!PQsendQueryParams(pg->conn, sql, 0, NULL, NULL, NULL, NULL, 0)) {
        pd_pg_broken(pg);
        return PD_DECLINED;
    }

    if (pd_pg_queued(pg, cb, data) != PD_OK) {
        return PD_ERROR;
    }

    if (pd_pg_sync(pg) != PD_OK) {
        /* queued: its callback comes with the link's failure */
        pd_pg_broken(pg);
    }

    return PD_OK;
}


pd_int_t
pd_pg_connected(pd_pg_t *pg)
{
    return pg->state == PD_PG_CONNECTED;
}


pd_uint_t
pd_pg_pending(pd_pg_t *pg)
{
    return pg->npending;
}


void
pd_pg_destroy(pd_pg_t *pg)
{
    if (pg->destroy) {
        return;
    }

    pg->destroy = 1;

    if (pd_timer_is_set(&pg->timer)) {
        pd_timer_del(&pd_timers, &pg->timer);
    }

    pd_pg_close(pg);
    pd_pg_fail_pending(pg);

    if (pg->busy == 0) {
        pd_pg_free(pg);
    }
}


/* the conninfo parses and names no host that would need a lookup */
static pd_int_t
pd_pg_check(pd_pg_t *pg, const char *conninfo)
{
    PQconninfoOption  *opts, *o;
    const char        *host, *hostaddr, *port, *dbname;
    char              *err;
    pd_int_t           rc;

    err = NULL;
    opts = PQconninfoParse(conninfo, &err);

    if (opts == NULL) {
        pd_log_error(PD_LOG_EMERG, pg->log, 0,
                     "postgres connection string is invalid: %s",
                     err ? err : "no memory");
        if (err) {
            PQfreemem(err);
        }
        return PD_ERROR;
    }

    host = NULL;
    hostaddr = NULL;
    port = NULL;
    dbname = NULL;

    for (o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL) {
            continue;
        }

        if (strcmp(o->keyword, "host") == 0) {
            host = o->val;

        } else if (strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = o->val;

        } else if (strcmp(o->keyword, "port") == 0) {
            port = o->val;

        } else if (strcmp(o->keyword, "dbname") == 0) {
            dbname = o->val;
        }
    }

    /* libpq falls back on these when the string has no value */
    if (host == NULL) {
        host = getenv("PGHOST");
    }

    if (hostaddr == NULL) {
        hostaddr = getenv("PGHOSTADDR");
    }

    /* never the whole string: it may hold a password */
    (void) snprintf(pg->addr, sizeof(pg->addr), "%s:%s/%s",
                    hostaddr && *hostaddr ? hostaddr
                    : (host && *host ? host : "(socket)"),
                    port && *port ? port : "(port)",
                    dbname && *dbname ? dbname : "(db)");

    rc = pd_pg_check_hosts(pg, host, hostaddr);

    PQconninfoFree(opts);

    return rc;
}


/*
 * host and hostaddr are comma-separated lists that pair up; each host
 * without an address must be an IP address or a socket directory.
 */
static pd_int_t
pd_pg_check_hosts(pd_pg_t *pg, const char *hosts, const char *hostaddrs)
{
    const char       *h, *a;
    size_t            hlen, alen;
    char              buf[INET6_ADDRSTRLEN];
    struct in6_addr   a6;

    h = hosts ? hosts : "";
    a = hostaddrs ? hostaddrs : "";

    for ( ;; ) {
        hlen = strcspn(h, ",");
        alen = strcspn(a, ",");

        if (alen == 0 && hlen > 0 && h[0] != '/' && h[0] != '@') {

            if (hlen >= sizeof(buf)) {
                goto name;
            }

            pd_memcpy(buf, h, hlen);
            buf[hlen] = '\0';

            if (inet_pton(AF_INET, buf, &a6) != 1
                && inet_pton(AF_INET6, buf, &a6) != 1)
            {
                goto name;
            }
        }

        if (h[hlen] == '\0' && a[alen] == '\0') {
            return PD_OK;
        }

        h += h[hlen] ? hlen + 1 : hlen;
        a += a[alen] ? alen + 1 : alen;
    }

name:

    pd_log_error(PD_LOG_EMERG, pg->log, 0,
                 "postgres host \"%.*s\" is not an IP address or a socket "
                 "directory", (int) hlen, h);
    return PD_ERROR;
}


/* one attempt: PD_ERROR when it failed at once and a retry is due */
static pd_int_t
pd_pg_open(pd_pg_t *pg)
{
    PGconn  *conn;

    conn = PQconnectStart(pg->conninfo);

    if (conn == NULL) {
        pd_log_error(PD_LOG_ALERT, pg->log, 0,
                     "PQconnectStart(%s) failed: no memory", pg->addr);
        return PD_ERROR;
    }

    pg->conn = conn;

    /* libpq would print notices on stderr */
    (void) PQsetNoticeProcessor(conn, pd_pg_notice, pg);

    if (PQstatus(conn) == CONNECTION_BAD || PQsocket(conn) == -1) {
        pd_pg_log_conn(pg, PD_LOG_ERR, "connect() to");
        PQfinish(conn);
        pg->conn = NULL;
        return PD_ERROR;
    }

    if (pd_pg_register(pg) != PD_OK) {
        PQfinish(conn);
        pg->conn = NULL;
        return PD_ERROR;
    }

    pg->state = PD_PG_CONNECTING;

    /* what PQconnectStart() leaves: "as if polling returned WRITING" */
    pg->poll_write = 1;

    pd_log_debug(pg->log, "postgres %s: connecting, fd %d", pg->addr,
                 pg->connection->fd);

    if (pg->timeout) {
        pd_pg_arm(pg, pg->timeout);
    }

    return PD_OK;
}


/* takes a slot for libpq's current socket and registers it */
static pd_int_t
pd_pg_register(pd_pg_t *pg)
{
    pd_connection_t  *c;
    struct stat       st;
    int               fd;

    fd = PQsocket(pg->conn);

    if (fstat(fd, &st) == -1) {
        pd_log_error(PD_LOG_ALERT, pg->log, errno,
                     "postgres %s: fstat() of the socket failed", pg->addr);
        return PD_ERROR;
    }

    c = pd_get_connection(fd, pg->log);
    if (c == NULL) {
        return PD_ERROR;
    }

    /* not a client: does not count among the worker's clients */
    c->shared = 1;
    c->data = pg;
    c->read->handler = pd_pg_read_handler;
    c->write->handler = pd_pg_write_handler;

    if (pd_add_conn(c) != PD_OK) {
        pd_release_connection(c, 0);
        return PD_ERROR;
    }

    pg->connection = c;
    pg->sock_dev = st.st_dev;
    pg->sock_ino = st.st_ino;

    return PD_OK;
}


/*
 * While connecting, libpq may drop its socket and open another: the next
 * address of a name, the next host of a list, a retry without TLS or GSS.
 */
static pd_int_t
pd_pg_track_socket(pd_pg_t *pg)
{
    int  fd;

    if (pd_pg_same_socket(pg)) {
        return PD_OK;
    }

    fd = PQsocket(pg->conn);

    pd_release_connection(pg->connection, 0);
    pg->connection = NULL;

    if (fd == -1) {
        return PD_ERROR;
    }

    pd_log_debug(pg->log, "postgres %s: libpq moved to fd %d", pg->addr,
                 fd);

    return pd_pg_register(pg);
}


/* 1 when libpq's socket is still the one in our slot */
static pd_int_t
pd_pg_same_socket(pd_pg_t *pg)
{
    struct stat  st;
    int          fd;

    fd = pg->conn ? PQsocket(pg->conn) : -1;

    return fd != -1 && fd == pg->connection->fd && fstat(fd, &st) == 0
           && st.st_dev == pg->sock_dev && st.st_ino == pg->sock_ino;
}


/*
 * Drives PQconnectPoll() as far as the socket lets it go now.  libpq
 * asks for WRITING also when it has not filled the socket (a state
 * change), so no edge would come: a zero-timeout poll() tells, a few
 * times per connect.
 */
static void
pd_pg_connect_poll(pd_pg_t *pg)
{
    PostgresPollingStatusType  st;

    while (pd_pg_ready_now(pg)) {

        st = PQconnectPoll(pg->conn);

        if (st == PGRES_POLLING_FAILED) {
            pd_pg_log_conn(pg, PD_LOG_ERR, "connect() to");
            goto failed;
        }

        if (pd_pg_track_socket(pg) != PD_OK) {
            goto failed;
        }

        if (st == PGRES_POLLING_OK) {
            pd_pg_established(pg);
            return;
        }

        pg->poll_write = (st == PGRES_POLLING_WRITING);
    }

    return;

failed:

    if (pd_timer_is_set(&pg->timer)) {
        pd_timer_del(&pd_timers, &pg->timer);
    }

    pd_pg_close(pg);
    pd_pg_retry(pg);
}


/* 1 when the socket is ready the way libpq waits for (or failed) */
static pd_int_t
pd_pg_ready_now(pd_pg_t *pg)
{
    struct pollfd  pfd;

    pfd.fd = pg->connection->fd;
    pfd.events = pg->poll_write ? POLLOUT : POLLIN;
    pfd.revents = 0;

    if (poll(&pfd, 1, 0) == -1) {
        return errno == EINTR;
    }

    if (pfd.revents) {
        return 1;
    }

    /* TLS: a record openssl has read may already hold the answer */
    return !pg->poll_write && pd_pg_more_input(pg);
}


/* the server took us: pipeline mode, statements, then the user */
static void
pd_pg_established(pd_pg_t *pg)
{
    pd_queue_t    *q;
    pd_pg_stmt_t  *stmt;

    if (pd_timer_is_set(&pg->timer)) {
        pd_timer_del(&pd_timers, &pg->timer);
    }

    if (PQsetnonblocking(pg->conn, 1) != 0
        || PQenterPipelineMode(pg->conn) != 1)
    {
        pd_pg_log_conn(pg, PD_LOG_ALERT, "entering pipeline mode on");
        pd_pg_close(pg);
        pd_pg_retry(pg);
        return;
    }

    pg->state = PD_PG_CONNECTED;

    pd_log_error(PD_LOG_NOTICE, pg->log, 0,
                 "postgres %s: connected, server %d", pg->addr,
                 PQserverVersion(pg->conn));

    for (q = pd_queue_head(&pg->stmts);
         q != pd_queue_sentinel(&pg->stmts);
         q = pd_queue_next(q))
    {
        stmt = pd_queue_data(q, pd_pg_stmt_t, queue);

        if (pd_pg_send_prepare(pg, stmt) != PD_OK) {
            return;
        }
    }

    if (pg->connect_handler) {
        pg->busy++;
        pg->connect_handler(pg, pg->connect_data);
        pg->busy--;
    }

    pd_pg_leave(pg);
}


/* Parse in a segment of its own: a bad statement fails nothing else */
static pd_int_t
pd_pg_send_prepare(pd_pg_t *pg, pd_pg_stmt_t *stmt)
{
    if (pd_pg_sync(pg) != PD_OK
        || !PQsendPrepare(pg->conn, stmt->name, stmt->sql, stmt->nparams,
                          NULL))
    {
        pd_pg_broken(pg);
        return PD_ERROR;
    }

    if (pd_pg_queued(pg, pd_pg_prepared, stmt) != PD_OK
        || pd_pg_sync(pg) != PD_OK)
    {
        pd_pg_broken(pg);
        return PD_ERROR;
    }

    stmt->sent = 1;

    return PD_OK;
}


static void
pd_pg_prepared(pd_pg_t *pg, PGresult *res, void *data)
{
    pd_pg_stmt_t  *stmt = data;
    char           line[PD_PG_MSG_LEN];

    if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
        return;
    }

    /* the next pd_pg_prepare() of this name, or the next link, retries */
    stmt->sent = 0;

    if (res != NULL) {
        pd_log_error(PD_LOG_ERR, pg->log, 0,
                     "postgres %s: preparing \"%s\" failed: %s", pg->addr,
                     stmt->name,
                     pd_pg_one_line(line, PQresultErrorMessage(res)));
    }
}


/* ends the open segment; libpq flushes as much as the socket takes */
static pd_int_t
pd_pg_sync(pd_pg_t *pg)
{
    pd_pg_cmd_t  *cmd;

    if (!pg->open) {
        return PD_OK;
    }

    pg->open = 0;

    if (!PQpipelineSync(pg->conn)) {
        return PD_ERROR;
    }

    cmd = pd_queue_data(pd_queue_last(&pg->pending), pd_pg_cmd_t, queue);
    cmd->sync = 1;

    if (cmd->done) {
        /* its results are in: the Sync's is the next to come */
        pg->unsynced++;
    }

    return PD_OK;
}


/* records the command libpq has just queued */
static pd_int_t
pd_pg_queued(pd_pg_t *pg, pd_pg_result_pt cb, void *data)
{
    pd_pg_cmd_t  *cmd;

    cmd = pd_pg_cmd_alloc(pg);

    if (cmd == NULL) {
        /* libpq sends it anyway: results would no longer match */
        pd_pg_broken(pg);
        return PD_ERROR;
    }

    cmd->handler = cb;
    cmd->data = data;
    cmd->res = NULL;
    cmd->start = pd_current_msec;
    cmd->done = 0;
    cmd->sync = 0;

    pd_queue_insert_tail(&pg->pending, &cmd->queue);
    pg->npending++;
    pg->open = 1;

    if (pg->cur == NULL) {
        pg->cur = cmd;
    }

    /* the Sync and the flush wait for the end of the loop turn */
    pd_post_event(pg->connection->write, &pd_posted_events);

    if (pg->timeout && !pd_timer_is_set(&pg->timer)) {
        pd_pg_arm(pg, pg->timeout);
    }

    return PD_OK;
}


/*
 * The link failed inside a call that must not run callbacks: take no
 * more commands, and fail it from the loop right away.
 */
static void
pd_pg_broken(pd_pg_t *pg)
{
    if (pg->state != PD_PG_CONNECTED) {
        return;
    }

    pd_pg_log_conn(pg, PD_LOG_ERR, "sending to");

    pg->state = PD_PG_CLOSING;
    pd_pg_arm(pg, 0);
}


/* closes the link, if any; pending commands stay for the caller to fail */
static void
pd_pg_close(pd_pg_t *pg)
{
    pd_queue_t    *q;
    pd_pg_stmt_t  *stmt;

    if (pg->connection) {
        /* deregister while the fd is still open: PQfinish() closes it;
         * after a hard error libpq has closed it already */
        pd_release_connection(pg->connection, pd_pg_same_socket(pg));
        pg->connection = NULL;
    }

    if (pg->conn) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }

    pg->state = PD_PG_IDLE;
    pg->open = 0;

    for (q = pd_queue_head(&pg->stmts);
         q != pd_queue_sentinel(&pg->stmts);
         q = pd_queue_next(q))
    {
        stmt = pd_queue_data(q, pd_pg_stmt_t, queue);
        stmt->sent = 0;
    }
}


/*
 * The link is broken: close, fail what is pending, retry later.  The
 * retry is set first, so that a callback's pd_pg_connect() finds the
 * connection already on its way back.
 */
static void
pd_pg_fail(pd_pg_t *pg)
{
    pd_pg_close(pg);
    pd_pg_retry(pg);
    pd_pg_fail_pending(pg);
}


/* every pending callback, once, with NULL; they may queue or destroy */
static void
pd_pg_fail_pending(pd_pg_t *pg)
{
    pd_queue_t       *q;
    pd_pg_cmd_t      *cmd;
    pd_pg_result_pt   handler;
    void             *data;

    pg->generation++;
    pg->cur = NULL;
    pg->unsynced = 0;
    pg->failed = 0;

    pg->busy++;

    while (!pd_queue_empty(&pg->pending)) {
        q = pd_queue_head(&pg->pending);
        cmd = pd_queue_data(q, pd_pg_cmd_t, queue);

        pd_queue_remove(q);
        pg->npending--;

        handler = cmd->handler;
        data = cmd->data;

        if (cmd->res) {
            PQclear(cmd->res);
        }

        pd_pg_cmd_free(pg, cmd);

        handler(pg, NULL, data);
    }

    pg->busy--;
}


/* waits the current backoff, then doubles it for the attempt after */
static void
pd_pg_retry(pd_pg_t *pg)
{
    pg->state = PD_PG_WAITING;

    pd_log_debug(pg->log, "postgres %s: next attempt in %lums", pg->addr,
                 (unsigned long) pg->backoff);

    pd_pg_arm(pg, pg->backoff);
    pg->backoff = pd_min(pg->backoff * 2, PD_PG_BACKOFF_MAX);
}


/* after user callbacks: a destroy asked for meanwhile completes here */
static void
pd_pg_leave(pd_pg_t *pg)
{
    if (pg->busy == 0 && pg->destroy) {
        pd_pg_free(pg);
    }
}


static void
pd_pg_free(pd_pg_t *pg)
{
    pd_queue_t  *q;

    while (!pd_queue_empty(&pg->free)) {
        q = pd_queue_head(&pg->free);
        pd_queue_remove(q);
        pd_free(pd_queue_data(q, pd_pg_cmd_t, queue));
    }

    while (!pd_queue_empty(&pg->stmts)) {
        q = pd_queue_head(&pg->stmts);
        pd_queue_remove(q);
        pd_free(pd_queue_data(q, pd_pg_stmt_t, queue));
    }

    pd_free(pg->conninfo);
    pd_free(pg);
}


static void
pd_pg_arm(pd_pg_t *pg, pd_msec_t msec)
{
    if (pd_timer_add(&pd_timers, &pg->timer, pd_current_msec, msec)
        != PD_OK)
    {
        pd_log_error(PD_LOG_ALERT, pg->log, 0,
                     "postgres %s: pd_timer_add() failed", pg->addr);
    }
}


static void
pd_pg_timer_handler(pd_timer_t *t)
{
    pd_pg_t      *pg = pd_timer_owner(t, pd_pg_t, timer);
    pd_pg_cmd_t  *cmd;
    pd_msec_t     age;

    switch (pg->state) {

    case PD_PG_WAITING:
        if (pd_pg_open(pg) != PD_OK) {
            pd_pg_retry(pg);
        }
        return;

    case PD_PG_CONNECTING:
        pd_log_error(PD_LOG_ERR, pg->log, 0,
                     "connect() to postgres %s timed out", pg->addr);
        pd_pg_close(pg);
        pd_pg_retry(pg);
        return;

    case PD_PG_CONNECTED:
        if (pd_queue_empty(&pg->pending)) {
            return;
        }

        cmd = pd_queue_data(pd_queue_head(&pg->pending), pd_pg_cmd_t,
                            queue);
        age = pd_current_msec - cmd->start;

        if (age < pg->timeout) {
            /* the oldest was answered; wait for the one now oldest */
            pd_pg_arm(pg, pg->timeout - age);
            return;
        }

        pd_log_error(PD_LOG_ERR, pg->log, 0,
                     "postgres %s: no result in %lums, %lu commands "
                     "pending; reconnecting", pg->addr, (unsigned long) age,
                     (unsigned long) pg->npending);
        break;

    case PD_PG_CLOSING:
        break;

    default:
        return;
    }

    pd_pg_fail(pg);
    pd_pg_leave(pg);
}


static void
pd_pg_read_handler(pd_event_t *rev)
{
    pd_connection_t  *c = rev->data;
    pd_pg_t          *pg = c->data;

    if (pg->state == PD_PG_CONNECTING) {
        pd_pg_connect_poll(pg);
        return;
    }

    if (pg->state == PD_PG_CONNECTED) {
        pd_pg_input(pg);
    }
}


static void
pd_pg_write_handler(pd_event_t *wev)
{
    pd_connection_t  *c = wev->data;
    pd_pg_t          *pg = c->data;

    /* an EPOLLOUT edge may arrive while the write is posted */
    pd_delete_posted_event(wev);

    if (pg->state == PD_PG_CONNECTING) {
        pd_pg_connect_poll(pg);
        return;
    }

    if (pg->state != PD_PG_CONNECTED) {
        return;
    }

    if (pd_pg_sync(pg) != PD_OK) {
        pd_pg_log_conn(pg, PD_LOG_ERR, "sending to");
        goto failed;
    }

    /* 1, not all sent: the socket is full, the next EPOLLOUT edge
     * brings us back */
    if (PQflush(pg->conn) == -1) {
        pd_pg_log_conn(pg, PD_LOG_ERR, "sending to");
        goto failed;
    }

    /* a short write makes libpq read: results may wait in its buffer */
    if (pg->npending && !PQisBusy(pg->conn)) {
        pd_pg_input(pg);
    }

    return;

failed:

    pd_pg_fail(pg);
    pd_pg_leave(pg);
}


/* reads what the socket has and hands out every complete result */
static void
pd_pg_input(pd_pg_t *pg)
{
    pd_event_t  *rev;

    pg->busy++;

    rev = pg->connection->read;

    for ( ;; ) {
        if (!PQconsumeInput(pg->conn)) {
            pd_pg_log_conn(pg, PD_LOG_ERR, "reading from");
            pd_pg_fail(pg);
            break;
        }

        if (pd_pg_drain(pg) != PD_OK) {
            pd_pg_fail(pg);
            break;
        }

        if (pg->state != PD_PG_CONNECTED) {
            /* failed, or destroyed, by a callback */
            break;
        }

        /* edge-triggered: what libpq left unread gets no new edge */
        if (pd_pg_more_input(pg)) {
            continue;
        }

        if (!rev->pending_eof) {
            break;
        }

        /* the peer's FIN came with this edge: one more read sees it */
        rev->pending_eof = 0;
    }

    pg->busy--;

    pd_pg_leave(pg);
}


/*
 * Takes every result libpq has parsed.  PD_ERROR: the link is unusable.
 * A lone NULL is the end of one command's results; two in a row mean
 * nothing more is ready.
 */
static pd_int_t
pd_pg_drain(pd_pg_t *pg)
{
    PGresult    *res;
    PGnotify    *n;
    pd_uint_t    generation, nulls;

    generation = pg->generation;
    nulls = 0;

    while (nulls < 2 && !PQisBusy(pg->conn)) {
        res = PQgetResult(pg->conn);

        if (res == NULL) {
            if (pg->unsynced || pg->cur == NULL || pg->cur->res == NULL) {
                nulls++;
                continue;
            }

            nulls = 0;
            pg->cur->done = 1;

            if (pg->cur->sync) {
                pg->unsynced++;
            }

            pg->cur = (pg->cur->queue.next == &pg->pending)
                      ? NULL
                      : pd_queue_data(pg->cur->queue.next, pd_pg_cmd_t,
                                      queue);
            continue;
        }

        nulls = 0;

        if (pd_pg_result(pg, res) != PD_OK) {
            return PD_ERROR;
        }

        if (pg->generation != generation || pg->state != PD_PG_CONNECTED) {
            return PD_OK;
        }
    }

    if (PQstatus(pg->conn) == CONNECTION_BAD) {
        pd_pg_log_conn(pg, PD_LOG_ERR, "reading from");
        return PD_ERROR;
    }

    /* nobody listens: do not let them pile up */
    while ((n = PQnotifies(pg->conn)) != NULL) {
        PQfreemem(n);
    }

    return PD_OK;
}


/* files one result under its command, or delivers a synced segment */
static pd_int_t
pd_pg_result(pd_pg_t *pg, PGresult *res)
{
    ExecStatusType   status;
    pd_pg_cmd_t     *cmd;
    pd_int_t         error;
    char             line[PD_PG_MSG_LEN];

    status = PQresultStatus(res);

    if (status == PGRES_PIPELINE_SYNC) {
        PQclear(res);
        return pd_pg_deliver(pg);
    }

    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT
        || status == PGRES_COPY_BOTH)
    {
        pd_log_error(PD_LOG_ALERT, pg->log, 0,
                     "postgres %s: COPY is not supported", pg->addr);
        PQclear(res);
        return PD_ERROR;
    }

    /* the server answers: the next loss starts the backoff anew */
    pg->backoff = PD_PG_BACKOFF_MIN;

    error = (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE);

    if (error) {
        pg->failed = 1;
    }

    if (pg->unsynced || pg->cur == NULL) {
        /* after the segment's last command: its commit failed */
        if (error) {
            pd_log_error(PD_LOG_ERR, pg->log, 0,
                         "postgres %s: commit failed: %s", pg->addr,
                         pd_pg_one_line(line, PQresultErrorMessage(res)));
        }

        PQclear(res);
        return PD_OK;
    }

    cmd = pg->cur;

    if (cmd->res == NULL) {
        cmd->res = res;

    } else if (error
               && PQresultStatus(cmd->res) != PGRES_FATAL_ERROR
               && PQresultStatus(cmd->res) != PGRES_BAD_RESPONSE)
    {
        /* a command answers once; keep what tells of a failure */
        PQclear(cmd->res);
        cmd->res = res;

    } else {
        PQclear(res);
    }

    return PD_OK;
}


/*
 * The Sync of the head segment is in: its commands are final.  A failure
 * anywhere in it rolled all of it back, so the others are reported as
 * aborted whatever libpq said of them before the failure.
 */
static pd_int_t
pd_pg_deliver(pd_pg_t *pg)
{
    pd_queue_t       *q;
    pd_pg_cmd_t      *cmd;
    PGresult         *res;
    ExecStatusType    status;
    pd_pg_result_pt   handler;
    void             *data;
    pd_uint_t         generation, failed, last;

    if (pg->unsynced == 0) {
        pd_log_error(PD_LOG_ALERT, pg->log, 0,
                     "postgres %s: unexpected Sync", pg->addr);
        return PD_ERROR;
    }

    pg->unsynced--;
    failed = pg->failed;
    pg->failed = 0;
    generation = pg->generation;

    pg->busy++;

    do {
        q = pd_queue_head(&pg->pending);
        cmd = (q == &pg->pending) ? NULL
                                  : pd_queue_data(q, pd_pg_cmd_t, queue);

        if (cmd == NULL || !cmd->done) {
            pg->busy--;
            pd_log_error(PD_LOG_ALERT, pg->log, 0,
                         "postgres %s: Sync before results", pg->addr);
            return PD_ERROR;
        }

        pd_queue_remove(q);
        pg->npending--;

        res = cmd->res;
        handler = cmd->handler;
        data = cmd->data;
        last = cmd->sync;

        pd_pg_cmd_free(pg, cmd);

        status = res ? PQresultStatus(res) : PGRES_PIPELINE_ABORTED;

        if (failed && status != PGRES_FATAL_ERROR
            && status != PGRES_BAD_RESPONSE
            && status != PGRES_PIPELINE_ABORTED)
        {
            PQclear(res);
            res = PQmakeEmptyPGresult(NULL, PGRES_PIPELINE_ABORTED);
        }

        handler(pg, res, data);

        if (res) {
            PQclear(res);
        }

    } while (!last && pg->generation == generation);

    pg->busy--;

    return PD_OK;
}


/*
 * 1 when the socket, or openssl's buffer, still holds input.  libpq keeps
 * 8 KB free, a PostgreSQL record's size; a pooler's 16 KB record would
 * leave the rest in openssl, out of FIONREAD's sight.
 */
static pd_int_t
pd_pg_more_input(pd_pg_t *pg)
{
    SSL  *ssl;
    int   n;

    if (ioctl(pg->connection->fd, FIONREAD, &n) == 0 && n > 0) {
        return 1;
    }

    if (!PQsslInUse(pg->conn)) {
        return 0;
    }

    ssl = PQsslStruct(pg->conn, "OpenSSL");

    return ssl != NULL && SSL_pending(ssl) > 0;
}


/* server notices ("relation already exists, skipping") go to our log */
static void
pd_pg_notice(void *arg, const char *message)
{
    pd_pg_t  *pg = arg;
    char      line[PD_PG_MSG_LEN];

    pd_log_error(PD_LOG_INFO, pg->log, 0, "postgres %s: %s", pg->addr,
                 pd_pg_one_line(line, message));
}


/* logs libpq's last error for what was being done to the server */
static void
pd_pg_log_conn(pd_pg_t *pg, pd_uint_t level, const char *what)
{
    char  line[PD_PG_MSG_LEN];

    pd_log_error(level, pg->log, 0, "%s postgres %s failed: %s", what,
                 pg->addr,
                 pd_pg_one_line(line, pg->conn ? PQerrorMessage(pg->conn)
                                               : ""));
}


/* libpq's messages span lines ("DETAIL:", "\tThis probably means"):
 * one log line each, blanks squeezed */
static char *
pd_pg_one_line(char *line, const char *msg)
{
    char  *p, *end;

    p = line;
    end = line + PD_PG_MSG_LEN - 1;

    for ( ; *msg && p < end; msg++) {
        if (isspace((u_char) *msg)) {
            if (p > line && p[-1] != ' ') {
                *p++ = ' ';
            }
            continue;
        }

        *p++ = *msg;
    }

    if (p > line && p[-1] == ' ') {
        p--;
    }

    *p = '\0';

    return line;
}


static pd_pg_stmt_t *
pd_pg_stmt_find(pd_pg_t *pg, const char *name)
{
    pd_queue_t    *q;
    pd_pg_stmt_t  *stmt;

    /* a handful of statements: no index */
    for (q = pd_queue_head(&pg->stmts);
         q != pd_queue_sentinel(&pg->stmts);
         q = pd_queue_next(q))
    {
        stmt = pd_queue_data(q, pd_pg_stmt_t, queue);

        if (strcmp(stmt->name, name) == 0) {
            return stmt;
        }
    }

    return NULL;
}


static pd_pg_cmd_t *
pd_pg_cmd_alloc(pd_pg_t *pg)
{
    pd_queue_t  *q;

    if (pd_queue_empty(&pg->free)) {
        return pd_alloc(sizeof(pd_pg_cmd_t), pg->log);
    }

    q = pd_queue_head(&pg->free);
    pd_queue_remove(q);
    pg->nfree--;

    return pd_queue_data(q, pd_pg_cmd_t, queue);
}


static void
pd_pg_cmd_free(pd_pg_t *pg, pd_pg_cmd_t *cmd)
{
    if (pg->nfree >= PD_PG_FREE_CMDS) {
        pd_free(cmd);
        return;
    }

    pd_queue_insert_head(&pg->free, &cmd->queue);
    pg->nfree++;
}
