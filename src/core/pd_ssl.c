/* pd_ssl.c: TLS contexts and non-blocking TLS connection I/O (openssl 3). */

#include "pd_core.h"

/* the largest TLS record payload: one SSL_write() never sends more */
#define PD_SSL_BUFSIZE    16384
/* how many chain bufs are gathered into one record */
#define PD_SSL_IOV_MAX    64

#define PD_SSL_PHRASE_LEN 1024

static const char *pd_ssl_phrase(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int pd_ssl_password_cb(char *buf, int size, int rwflag, void *data);
static ssize_t pd_ssl_write_record(pd_connection_t *c, u_char *buf,
    size_t size);
static void pd_ssl_connection_error(pd_connection_t *c, int sslerr,
    pd_err_t err, const char *text);
static u_char *pd_ssl_error_text(u_char *p, u_char *last);


/* loads openssl's error strings; PD_ERROR (logged) on failure */
pd_int_t
pd_ssl_init(pd_log_t *log)
{
    if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS
                         | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL)
        == 0)
    {
        pd_ssl_error(PD_LOG_ALERT, log, 0, "OPENSSL_init_ssl() failed");
        return PD_ERROR;
    }

    return PD_OK;
}


/*
 * Builds ssl->ctx for a TLS server from a PEM certificate chain and key.
 * Called in the master while the cycle is built, before fork: every
 * worker inherits the same context and so the same session-ticket keys,
 * and a client resumes its session on whichever worker SO_REUSEPORT
 * hands its next connection to.  The session-id cache, in contrast, is
 * per process after fork; it only serves clients without ticket support.
 *
 * The context is freed with the pool (pd_ssl_cleanup_ctx()).  Returns
 * NULL, or a phrase with openssl's reason (in a static buffer that the
 * next failing call overwrites) after which ssl->ctx is NULL.
 */
const char *
pd_ssl_create(pd_ssl_t *ssl, pd_str_t *cert, pd_str_t *key,
    time_t ticket_rotation, pd_pool_t *pool)
{
    char               *cert_path, *key_path;
    const char         *phrase;
    SSL_CTX            *ctx;
    pd_pool_cleanup_t  *cln;

    ssl->ctx = NULL;
    ssl->tickets = NULL;
    ssl->tickets_shm.addr = NULL;

    cert_path = (char *) pd_pstrdup(pool, cert);
    key_path = (char *) pd_pstrdup(pool, key);

    /* added before the context exists so that no failure can leak it */
    cln = pd_pool_cleanup_add(pool, 0);

    if (cert_path == NULL || key_path == NULL || cln == NULL) {
        return "cannot allocate memory for the TLS context";
    }

    ERR_clear_error();

    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        return pd_ssl_phrase("SSL_CTX_new() failed");
    }

    ssl->ctx = ctx;
    cln->handler = pd_ssl_cleanup_ctx;
    cln->data = ssl;

    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 0
        || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 0)
    {
        phrase = pd_ssl_phrase("cannot set the TLS versions");
        goto failed;
    }

    /* TLS 1.2 suites; the TLS 1.3 ones keep openssl's defaults */
    if (SSL_CTX_set_cipher_list(ctx, "HIGH:!aNULL:!MD5") == 0) {
        phrase = pd_ssl_phrase("cannot set the ciphers");
        goto failed;
    }

    /*
     * IGNORE_UNEXPECTED_EOF: mobile clients vanish without close_notify
     * all the time; WebSocket frames carry their own lengths, so a cut
     * stream cannot pass for a whole message and is just an eof.
     */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION
                             | SSL_OP_NO_RENEGOTIATION
                             | SSL_OP_CIPHER_SERVER_PREFERENCE
                             | SSL_OP_IGNORE_UNEXPECTED_EOF);

    /*
     * RELEASE_BUFFERS gives back the two ~17 KB record buffers while a
     * connection is idle, which is most of the time for most of them:
     * without it an idle TLS connection would cost 34 KB.  The other two
     * let a write be retried from another address (the chain is gathered
     * into a stack buffer) and return after each record.
     */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS
                          | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                          | SSL_MODE_ENABLE_PARTIAL_WRITE);

    /*
     * Session tickets stay on: their keys are in memory this context
     * shares from before fork, so all workers accept each other's
     * tickets, and they rotate (pd_ssl_tickets.c).  One TLS 1.3 ticket
     * per handshake is enough for a client that holds one connection.
     */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    (void) SSL_CTX_set_num_tickets(ctx, 1);

    phrase = pd_ssl_tickets_init(ssl, ticket_rotation);
    if (phrase != NULL) {
        goto failed;
    }

    if (SSL_CTX_set_session_id_context(ctx, (const u_char *) "pushd",
                                       sizeof("pushd") - 1)
        == 0)
    {
        phrase = pd_ssl_phrase("cannot set the session id context");
        goto failed;
    }

    /* an encrypted key must fail, not prompt on the master's terminal */
    SSL_CTX_set_default_passwd_cb(ctx, pd_ssl_password_cb);

    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) == 0) {
        phrase = pd_ssl_phrase("cannot load certificate \"%s\"", cert_path);
        goto failed;
    }

    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) == 0) {
        phrase = pd_ssl_phrase("cannot load certificate key \"%s\"",
                               key_path);
        goto failed;
    }

    if (SSL_CTX_check_private_key(ctx) == 0) {
        phrase = pd_ssl_phrase("certificate \"%s\" does not match key "
                               "\"%s\"", cert_path, key_path);
        goto failed;
    }

    return NULL;

failed:

    pd_ssl_cleanup_ctx(ssl);

    return phrase;
}


/* pool cleanup: frees the context of the pd_ssl_t in data */
void
pd_ssl_cleanup_ctx(void *data)
{
    pd_ssl_t  *ssl = data;

    if (ssl->ctx != NULL) {
        SSL_CTX_free(ssl->ctx);
        ssl->ctx = NULL;
    }

    pd_ssl_tickets_free(ssl);
}


/*
 * Attaches a server-side SSL object for c->fd to c (c->ssl).  Both are
 * freed by pd_ssl_shutdown().  c->ssl is its own allocation, not c->pool's:
 * a WebSocket connection gives its pool up once upgraded, and a pool kept
 * for these 40 bytes cost a TLS connection its first block, 1 KB, for
 * its whole life.  PD_ERROR (logged) on failure.
 */
pd_int_t
pd_ssl_create_connection(pd_ssl_t *ssl, pd_connection_t *c)
{
    pd_ssl_connection_t  *sc;

    sc = pd_calloc(sizeof(pd_ssl_connection_t), c->log);
    if (sc == NULL) {
        return PD_ERROR;
    }

    ERR_clear_error();

    sc->connection = SSL_new(ssl->ctx);
    if (sc->connection == NULL) {
        pd_ssl_error(PD_LOG_ALERT, pd_conn_log(c), 0, "SSL_new() failed");
        pd_free(sc);
        return PD_ERROR;
    }

    if (SSL_set_fd(sc->connection, c->fd) == 0) {
        pd_ssl_error(PD_LOG_ALERT, pd_conn_log(c), 0, "SSL_set_fd() failed");
        SSL_free(sc->connection);
        pd_free(sc);
        return PD_ERROR;
    }

    SSL_set_accept_state(sc->connection);

    c->ssl = sc;

    return PD_OK;
}


/*
 * Advances the handshake as far as the socket allows.  PD_OK when it is
 * done: c->tls_io, the TLS functions (pd_ssl_io) from now on
 * (sc->handler is for the caller to run).  PD_AGAIN when it waits for the
 * socket: the side it waits for is marked not ready, and as the fd is
 * registered edge-triggered for both directions, the next event on it is
 * the cue to call again.  PD_ERROR when the client failed or left; that
 * is logged at info, as it is the client's business, not the server's.
 */
pd_int_t
pd_ssl_handshake(pd_connection_t *c)
{
    int                   n, sslerr;
    pd_err_t              err;
    pd_ssl_connection_t  *sc;

    sc = c->ssl;

    ERR_clear_error();

    n = SSL_do_handshake(sc->connection);
    err = errno;

    if (n == 1) {
        sc->handshaked = 1;

        c->tls_io = 1;

        pd_log_debug(pd_conn_log(c),
                     "SSL handshake: %s, cipher \"%s\", reused: %d",
                     SSL_get_version(sc->connection),
                     SSL_get_cipher_name(sc->connection),
                     SSL_session_reused(sc->connection));

        return PD_OK;
    }

    sslerr = SSL_get_error(sc->connection, n);

    switch (sslerr) {

    case SSL_ERROR_WANT_READ:
        c->read->ready = 0;
        return PD_AGAIN;

    case SSL_ERROR_WANT_WRITE:
        c->write->ready = 0;
        return PD_AGAIN;

    case SSL_ERROR_ZERO_RETURN:
        goto eof;

    case SSL_ERROR_SYSCALL:
        if (err == 0 && ERR_peek_error() == 0) {
            goto eof;
        }

        break;

    case SSL_ERROR_SSL:
        /* scanners and health checks connect and leave: not an error */
        if (ERR_GET_LIB(ERR_peek_error()) == ERR_LIB_SSL
            && ERR_GET_REASON(ERR_peek_error())
               == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        {
            goto eof;
        }

        err = 0;
        break;

    default:
        err = 0;
        break;
    }

    c->read->error = 1;
    pd_ssl_connection_error(c, sslerr, err, "SSL_do_handshake() failed");

    return PD_ERROR;

eof:

    c->read->eof = 1;
    ERR_clear_error();
    pd_log_error(PD_LOG_INFO, pd_conn_log(c), 0,
                 "client closed connection in SSL handshake");

    return PD_ERROR;
}


/* whether c's handshake has not begun: its ClientHello not yet read */
pd_int_t
pd_ssl_handshake_fresh(pd_connection_t *c)
{
    return SSL_get_state(c->ssl->connection) == TLS_ST_BEFORE;
}


/*
 * Reads decrypted bytes.  Returns how many (> 0), 0 at the end of the
 * stream (close_notify or a plain eof), PD_AGAIN when nothing can be read
 * now (c->read->ready cleared), or PD_ERROR (c->read->error set, logged).
 * Keep calling until PD_AGAIN: openssl may hold data that no further
 * edge-triggered event would announce, and it releases its read buffer
 * (RELEASE_BUFFERS) only when drained.
 */
ssize_t
pd_ssl_recv(pd_connection_t *c, u_char *buf, size_t size)
{
    int                   n, sslerr;
    pd_err_t              err;
    pd_ssl_connection_t  *sc;

    sc = c->ssl;

    ERR_clear_error();

    n = SSL_read(sc->connection, buf, (int) pd_min(size, (size_t) INT_MAX));
    err = errno;

    if (n > 0) {
        pd_stats_add(PD_STAT_BYTES_IN, n);
        return n;
    }

    sslerr = SSL_get_error(sc->connection, n);

    switch (sslerr) {

    case SSL_ERROR_WANT_READ:
        c->read->ready = 0;
        return PD_AGAIN;

    case SSL_ERROR_WANT_WRITE:
        /*
         * openssl must answer something (a TLS 1.3 key update) and the
         * socket is full; the next read or write retries it.
         */
        c->read->ready = 0;
        c->write->ready = 0;
        return PD_AGAIN;

    case SSL_ERROR_ZERO_RETURN:
        c->read->eof = 1;
        return 0;

    case SSL_ERROR_SYSCALL:
        if (err == 0 && ERR_peek_error() == 0) {
            c->read->eof = 1;
            return 0;
        }

        break;

    default:
        err = 0;
        break;
    }

    c->read->error = 1;
    pd_ssl_connection_error(c, sslerr, err, "SSL_read() failed");

    return PD_ERROR;
}


/*
 * Encrypts and sends up to size bytes, record by record, until all are
 * sent or the socket is full.  Returns the bytes sent (maybe fewer than
 * size), PD_AGAIN when none could be (c->write->ready cleared), or
 * PD_ERROR (c->write->error set, logged).  The bytes not reported sent
 * must be offered again, at least as many (see pd_ssl_send_chain()).
 */
ssize_t
pd_ssl_write(pd_connection_t *c, u_char *buf, size_t size)
{
    size_t   sent;
    ssize_t  n;

    sent = 0;

    while (sent < size) {
        /* a record at a time keeps a pending retry within one record */
        n = pd_ssl_write_record(c, buf + sent,
                                pd_min(size - sent, PD_SSL_BUFSIZE));

        if (n == PD_AGAIN) {
            return sent ? (ssize_t) sent : PD_AGAIN;
        }

        if (n == PD_ERROR) {
            return PD_ERROR;
        }

        sent += n;
    }

    return sent;
}


/*
 * Sends the chain through TLS, at most limit bytes (0: no limit).  Small
 * bufs are gathered into one 16 KB stack buffer so that a queue of short
 * frames goes out as full records rather than as a record each (22 bytes
 * of overhead or more per record); a single buf is encrypted in place.
 * Returns the first link with data left (NULL: all sent) or
 * PD_CHAIN_ERROR.
 *
 * openssl's rule: a write that returned WANT_WRITE is retried with at
 * least as many bytes (the moving-buffer mode allows another address).
 * sc->write_pending remembers that length; a chain left untouched
 * between the calls always yields it again, as its head is gathered the
 * same way and bufs only join at the tail.
 */
pd_chain_t *
pd_ssl_send_chain(pd_connection_t *c, pd_chain_t *in, size_t limit)
{
    u_char               *p;
    size_t                size, sent, room;
    ssize_t               n;
    pd_uint_t             niov, i;
    pd_ssl_connection_t  *sc;
    struct iovec          iov[PD_SSL_IOV_MAX];
    u_char                buf[PD_SSL_BUFSIZE];

    sc = c->ssl;

    if (limit != 0 && limit < sc->write_pending) {
        /* a smaller budget this turn must not break the retry */
        limit = sc->write_pending;
    }

    sent = 0;

    for ( ;; ) {
        room = PD_SSL_BUFSIZE;

        if (limit != 0) {
            if (sent >= limit) {
                return in;
            }

            room = pd_min(room, limit - sent);
        }

        niov = pd_chain_to_iovec(in, iov, PD_SSL_IOV_MAX, room, &size);

        if (niov == 0) {
            return NULL;
        }

        if (niov == 1) {
            p = iov[0].iov_base;

        } else {
            p = buf;

            for (i = 0; i < niov; i++) {
                p = pd_cpymem(p, iov[i].iov_base, iov[i].iov_len);
            }

            p = buf;
        }

        if (size < sc->write_pending) {
            pd_log_error(PD_LOG_ALERT, pd_conn_log(c), 0,
                         "SSL write retried with %zu bytes after %zu "
                         "were pending", size, sc->write_pending);
            c->write->error = 1;
            return PD_CHAIN_ERROR;
        }

        n = pd_ssl_write_record(c, p, size);

        if (n == PD_AGAIN) {
            return in;
        }

        if (n == PD_ERROR) {
            return PD_CHAIN_ERROR;
        }

        sent += n;
        in = pd_chain_update_sent(in, n);

        if (in == NULL) {
            return NULL;
        }
    }
}


/*
 * Ends the TLS session and frees the SSL object; c->ssl is NULL after.
 * close_notify is sent once, without waiting for the peer's; it is not
 * sent at all when the peer is gone, the connection failed, or the
 * caller set no_wait_shutdown, as it would only earn an EPIPE.
 */
void
pd_ssl_shutdown(pd_connection_t *c)
{
    int                   n;
    pd_ssl_connection_t  *sc;

    sc = c->ssl;

    if (sc == NULL) {
        return;
    }

    if (!sc->handshaked || sc->no_wait_shutdown || sc->write_pending
        || c->error || c->timedout
        || c->read->eof || c->read->error || c->write->error)
    {
        /*
         * No close_notify; SSL_shutdown() still records a clean end, so
         * SSL_free() does not take the session for broken and it stays
         * resumable.
         */
        SSL_set_quiet_shutdown(sc->connection, 1);
    }

    ERR_clear_error();

    n = SSL_shutdown(sc->connection);

    if (n < 0) {
        pd_log_debug(pd_conn_log(c), "SSL_shutdown() failed: %d",
                     SSL_get_error(sc->connection, n));
    }

    ERR_clear_error();

    SSL_free(sc->connection);
    pd_free(sc);
    c->ssl = NULL;
}


/*
 * Logs like pd_log_error() and appends the openssl error queue as
 * " (SSL: error:...)".  The queue is drained even when the level is
 * filtered out: a stale error would make a later SSL_get_error() on
 * another connection report a failure that did not happen.
 */
void
pd_ssl_error(pd_uint_t level, pd_log_t *log, pd_err_t err,
    const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;
    u_char    errstr[PD_MAX_ERROR_STR];

    if (log->log_level < level) {
        ERR_clear_error();
        return;
    }

    last = errstr + sizeof(errstr);

    va_start(args, fmt);
    p = pd_vslprintf(errstr, last, fmt, args);
    va_end(args);

    p = pd_ssl_error_text(p, last);

    pd_log_error_core(level, log, err, "%.*s", (int) (p - errstr), errstr);
}


/*
 * One SSL_write() of at most one record.  Returns the bytes written,
 * PD_AGAIN (the length is remembered for the retry) or PD_ERROR.
 */
static ssize_t
pd_ssl_write_record(pd_connection_t *c, u_char *buf, size_t size)
{
    int                   n, sslerr;
    pd_err_t              err;
    pd_ssl_connection_t  *sc;

    sc = c->ssl;

    ERR_clear_error();

    n = SSL_write(sc->connection, buf, (int) size);
    err = errno;

    if (n > 0) {
        sc->write_pending = 0;
        pd_stats_add(PD_STAT_BYTES_OUT, n);
        return n;
    }

    sslerr = SSL_get_error(sc->connection, n);

    if (sslerr == SSL_ERROR_WANT_WRITE) {
        sc->write_pending = size;
        c->write->ready = 0;
        return PD_AGAIN;
    }

    if (sslerr != SSL_ERROR_SYSCALL) {
        err = 0;
    }

    c->write->error = 1;
    pd_ssl_connection_error(c, sslerr, err, "SSL_write() failed");

    return PD_ERROR;
}


/*
 * Logs a failed connection.  What a client can cause (resets, protocol
 * errors, bad records) goes at info so a hostile or broken client cannot
 * fill the log; openssl's own fatal errors (memory, internal) at crit.
 */
static void
pd_ssl_connection_error(pd_connection_t *c, int sslerr, pd_err_t err,
    const char *text)
{
    pd_uint_t      level;
    unsigned long  e;

    level = PD_LOG_INFO;

    if (sslerr == SSL_ERROR_SYSCALL) {
        switch (err) {
        case 0:
        case ECONNRESET:
        case EPIPE:
        case ENOTCONN:
        case ETIMEDOUT:
        case ECONNREFUSED:
        case ENETDOWN:
        case ENETUNREACH:
        case EHOSTDOWN:
        case EHOSTUNREACH:
            break;
        default:
            level = PD_LOG_ERR;
        }

    } else if (sslerr == SSL_ERROR_SSL) {
        e = ERR_peek_error();

        if (e != 0 && ERR_FATAL_ERROR(e)) {
            level = PD_LOG_CRIT;
        }
    }

    pd_ssl_error(level, pd_conn_log(c), err, "%s", text);
}


/* appends and drains the error queue; nothing when it is empty */
static u_char *
pd_ssl_error_text(u_char *p, u_char *last)
{
    int            flags;
    char           text[256];
    const char    *data;
    unsigned long  e;
    pd_uint_t      n;

    for (n = 0; ; n++) {
        e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);

        if (e == 0) {
            break;
        }

        ERR_error_string_n(e, text, sizeof(text));

        p = pd_slprintf(p, last, "%s%s", n ? " " : " (SSL: ", text);

        if ((flags & ERR_TXT_STRING) && data != NULL && *data != '\0') {
            p = pd_slprintf(p, last, ":%s", data);
        }
    }

    if (n) {
        p = pd_slprintf(p, last, ")");
    }

    return p;
}


/*
 * A phrase for pd_ssl_create(): the formatted text, then ": reason" of
 * the first error in the queue, which is the root cause ("No such file
 * or directory"), openssl's later entries only saying which call gave
 * up.  The queue is drained.
 */
static const char *
pd_ssl_phrase(const char *fmt, ...)
{
    u_char         *p, *last;
    va_list         args;
    const char     *reason;
    unsigned long   e;
    char            text[256];
    static u_char   phrase[PD_SSL_PHRASE_LEN];

    last = phrase + sizeof(phrase) - 1;

    va_start(args, fmt);
    p = pd_vslprintf(phrase, last, fmt, args);
    va_end(args);

    e = ERR_peek_error();

    if (e != 0) {
        if (ERR_SYSTEM_ERROR(e)) {
            /* openssl 3 keeps errno in the reason of system errors */
            reason = strerror_r(ERR_GET_REASON(e), text, sizeof(text));

        } else {
            reason = ERR_reason_error_string(e);
        }

        if (reason == NULL) {
            ERR_error_string_n(e, text, sizeof(text));
            reason = text;
        }

        p = pd_slprintf(p, last, ": %s", reason);
    }

    *p = '\0';

    ERR_clear_error();

    return (const char *) phrase;
}


static int
pd_ssl_password_cb(char *buf, int size, int rwflag, void *data)
{
    (void) buf;
    (void) size;
    (void) rwflag;
    (void) data;

    return 0;
}

const pd_conn_io_t  pd_ssl_io = {
    pd_ssl_recv,
    pd_ssl_write,
    pd_ssl_send_chain
};
