/*
 * test_pd_ssl.c: unit tests for TLS (pd_ssl.c): contexts from generated
 * certificates, and real handshakes over socketpairs between an openssl
 * client and the server side driven through pd_ssl_*.
 */

#include "pd_core.h"

#include <poll.h>
#include <setjmp.h>
#include <cmocka.h>


typedef struct {
    pd_connection_t   c;
    int               fd;        /* the client's end */
    SSL              *client;
} pd_test_conn_t;


static char        pd_test_dir[] = "/tmp/pd_test_ssl.XXXXXX";
static char        pd_test_err[256];
static char        pd_test_cert[256];
static char        pd_test_key[256];
static char        pd_test_other_key[256];
static char        pd_test_enc_key[256];
static char        pd_test_rsa_key[256];
static char        pd_test_garbage[256];
static char        pd_test_log_path[256];

static pd_log_t    pd_test_log;
static pd_pool_t  *pd_test_pool;
static pd_ssl_t    pd_test_ssl;


static void
pd_test_path(char *buf, size_t len, const char *name)
{
    (void) snprintf(buf, len, "%s/%s", pd_test_dir, name);
}


static int
pd_test_run(const char *fmt, const char *a, const char *b)
{
    char  cmd[1024];

    (void) snprintf(cmd, sizeof(cmd), fmt, a, b);

    return system(cmd);
}


static int
pd_test_setup(void **state)
{
    int       fd;
    pd_str_t  cert, key;

    (void) state;

    /* a peer that vanished must cost an EPIPE, not the process */
    (void) signal(SIGPIPE, SIG_IGN);

    if (mkdtemp(pd_test_dir) == NULL) {
        return -1;
    }

    pd_test_path(pd_test_cert, sizeof(pd_test_cert), "server.crt");
    pd_test_path(pd_test_key, sizeof(pd_test_key), "server.key");
    pd_test_path(pd_test_other_key, sizeof(pd_test_other_key), "other.key");
    pd_test_path(pd_test_enc_key, sizeof(pd_test_enc_key), "enc.key");
    pd_test_path(pd_test_rsa_key, sizeof(pd_test_rsa_key), "rsa.key");
    pd_test_path(pd_test_garbage, sizeof(pd_test_garbage), "garbage.crt");
    pd_test_path(pd_test_log_path, sizeof(pd_test_log_path), "error.log");

    if (pd_test_run("openssl req -x509 -newkey ec -pkeyopt "
                    "ec_paramgen_curve:prime256v1 -nodes -days 2 "
                    "-subj /CN=pushd.test -keyout '%s' -out '%s' "
                    ">/dev/null 2>&1", pd_test_key, pd_test_cert) != 0
        || pd_test_run("openssl genpkey -algorithm EC -pkeyopt "
                       "ec_paramgen_curve:prime256v1 -out '%s'%s "
                       ">/dev/null 2>&1", pd_test_other_key, "") != 0
        || pd_test_run("openssl genpkey -algorithm EC -pkeyopt "
                       "ec_paramgen_curve:prime256v1 -aes128 "
                       "-pass pass:secret -out '%s'%s >/dev/null 2>&1",
                       pd_test_enc_key, "") != 0
        || pd_test_run("openssl genpkey -algorithm RSA -pkeyopt "
                       "rsa_keygen_bits:2048 -out '%s'%s >/dev/null 2>&1",
                       pd_test_rsa_key, "") != 0)
    {
        return -1;
    }

    fd = open(pd_test_garbage, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd == -1 || write(fd, "not a certificate\n", 18) != 18) {
        return -1;
    }
    (void) close(fd);

    pd_test_log.log_level = PD_LOG_INFO;
    pd_test_log.path.data = (u_char *) pd_test_log_path;
    pd_test_log.path.len = strlen(pd_test_log_path);

    if (pd_log_open(&pd_test_log, NULL, pd_test_err, sizeof(pd_test_err))
        != PD_OK)
    {
        return -1;
    }

    if (pd_ssl_init(&pd_test_log) != PD_OK) {
        return -1;
    }

    pd_test_pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, &pd_test_log);
    if (pd_test_pool == NULL) {
        return -1;
    }

    cert.data = (u_char *) pd_test_cert;
    cert.len = strlen(pd_test_cert);
    key.data = (u_char *) pd_test_key;
    key.len = strlen(pd_test_key);

    if (pd_ssl_create(&pd_test_ssl, &cert, &key, 3600, pd_test_pool)
        != NULL)
    {
        return -1;
    }

    return 0;
}


static int
pd_test_teardown(void **state)
{
    char  cmd[128];

    (void) state;

    /* the pool's cleanup frees the context */
    pd_destroy_pool(pd_test_pool);
    (void) close(pd_test_log.fd);

    (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pd_test_dir);

    return system(cmd) == 0 ? 0 : -1;
}


/* empties the log file so a test sees only its own lines */
static int
pd_test_log_reset(void **state)
{
    (void) state;

    return ftruncate(pd_test_log.fd, 0);
}


static int
pd_test_log_has(const char *needle)
{
    int      fd;
    char     buf[16384];
    ssize_t  n;

    fd = open(pd_test_log_path, O_RDONLY);
    assert_true(fd != -1);
    n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    (void) close(fd);

    return strstr(buf, needle) != NULL;
}


static const char *
pd_test_create(pd_ssl_t *ssl, pd_pool_t *pool, const char *cert,
    const char *key)
{
    pd_str_t  c, k;

    c.data = (u_char *) cert;
    c.len = strlen(cert);
    k.data = (u_char *) key;
    k.len = strlen(key);

    return pd_ssl_create(ssl, &c, &k, 3600, pool);
}


static SSL_CTX *
pd_test_client_ctx(int version)
{
    SSL_CTX  *ctx;

    ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);

    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, version), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(ctx, version), 1);

    return ctx;
}


/*
 * A connected pair: t->c is the server side as the room would hold it
 * (non-blocking, plain vtable, both events ready), t->client an openssl
 * client on the other end, non-blocking too so one thread drives both.
 */
static void
pd_test_pair_on(pd_test_conn_t *t, SSL_CTX *client_ctx, pd_ssl_t *ssl)
{
    int  sv[2];

    pd_memzero(t, sizeof(pd_test_conn_t));

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(pd_nonblocking(sv[0]), PD_OK);
    assert_int_equal(pd_nonblocking(sv[1]), PD_OK);

    t->c.fd = sv[0];
    t->c.log = &pd_test_log;
    t->c.number = 1;
    pd_timer_node_init(&t->c.read->timer);
    pd_timer_node_init(&t->c.write->timer);
    t->c.read->data = &t->c;
    t->c.write->data = &t->c;
    t->c.write->write = 1;
    t->c.read->ready = 1;
    t->c.write->ready = 1;

    t->c.pool = pd_create_pool(PD_POOL_MIN_SIZE * 4, 0, &pd_test_log);
    assert_non_null(t->c.pool);

    assert_int_equal(pd_ssl_create_connection(ssl, &t->c), PD_OK);
    assert_non_null(t->c.ssl);
    assert_non_null(t->c.ssl->connection);
    assert_false(t->c.ssl->handshaked);

    t->fd = sv[1];
    t->client = SSL_new(client_ctx);
    assert_non_null(t->client);
    assert_int_equal(SSL_set_fd(t->client, t->fd), 1);
    SSL_set_connect_state(t->client);
}


static void
pd_test_pair(pd_test_conn_t *t, SSL_CTX *client_ctx)
{
    pd_test_pair_on(t, client_ctx, &pd_test_ssl);
}


static void
pd_test_pair_close(pd_test_conn_t *t)
{
    pd_ssl_shutdown(&t->c);
    assert_null(t->c.ssl);

    /* the server side left no error behind for the next connection */
    assert_int_equal(ERR_peek_error(), 0);

    /*
     * Freed without a shutdown, openssl takes a session for broken and
     * marks it not resumable: the client leaves quietly instead.
     */
    SSL_set_quiet_shutdown(t->client, 1);
    (void) SSL_shutdown(t->client);
    SSL_free(t->client);
    (void) close(t->c.fd);
    (void) close(t->fd);
    pd_destroy_pool(t->c.pool);

    /* the client's own complaints (shutdown in init) do not count */
    ERR_clear_error();
}


/* drives both handshakes in turn until both are done */
static void
pd_test_handshake(pd_test_conn_t *t)
{
    int       n, client_done, server_done, turns;
    pd_int_t  rc;

    client_done = 0;
    server_done = 0;

    for (turns = 0; turns < 100 && !(client_done && server_done); turns++) {
        if (!client_done) {
            n = SSL_do_handshake(t->client);

            if (n == 1) {
                client_done = 1;

            } else {
                n = SSL_get_error(t->client, n);
                assert_true(n == SSL_ERROR_WANT_READ
                            || n == SSL_ERROR_WANT_WRITE);
            }
        }

        if (!server_done) {
            rc = pd_ssl_handshake(&t->c);

            if (rc == PD_OK) {
                server_done = 1;

            } else {
                assert_int_equal(rc, PD_AGAIN);
                /* it says which side it waits for */
                assert_false(t->c.read->ready && t->c.write->ready);
                t->c.read->ready = 1;
                t->c.write->ready = 1;
            }
        }
    }

    assert_true(client_done);
    assert_true(server_done);

    assert_true(t->c.ssl->handshaked);
    assert_ptr_equal(pd_conn_io(&t->c), &pd_ssl_io);
    assert_ptr_equal(pd_conn_io(&t->c)->recv, pd_ssl_recv);
    assert_ptr_equal(pd_conn_io(&t->c)->send, pd_ssl_write);
    assert_ptr_equal(pd_conn_io(&t->c)->send_chain, pd_ssl_send_chain);
}


/* client reads whatever is there into buf; returns the byte count */
static size_t
pd_test_client_read(pd_test_conn_t *t, u_char *buf, size_t len)
{
    int     n;
    size_t  total;

    total = 0;

    while (total < len) {
        n = SSL_read(t->client, buf + total, (int) (len - total));

        if (n <= 0) {
            assert_int_equal(SSL_get_error(t->client, n),
                             SSL_ERROR_WANT_READ);
            break;
        }

        total += n;
    }

    return total;
}


/* one message each way through the swapped vtable */
static void
pd_test_exchange(pd_test_conn_t *t)
{
    u_char   buf[64];
    ssize_t  n;

    assert_int_equal(SSL_write(t->client, "hello", 5), 5);

    n = pd_conn_io(&t->c)->recv(&t->c, buf, sizeof(buf));
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "hello", 5);

    /* drained: edge-triggered readers stop here */
    assert_true(t->c.read->ready);
    assert_int_equal(pd_conn_io(&t->c)->recv(&t->c, buf, sizeof(buf)),
                     PD_AGAIN);
    assert_false(t->c.read->ready);
    t->c.read->ready = 1;

    assert_int_equal(pd_conn_io(&t->c)->send(&t->c, (u_char *) "world!", 6), 6);

    assert_int_equal(pd_test_client_read(t, buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "world!", 6);
}


static void
pd_test_create_ok(void **state)
{
    SSL_CTX    *ctx;
    pd_ssl_t    ssl;
    pd_pool_t  *pool;
    uint64_t    options;
    long        mode;

    (void) state;

    pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, &pd_test_log);
    assert_non_null(pool);

    assert_null(pd_test_create(&ssl, pool, pd_test_cert, pd_test_key));
    ctx = ssl.ctx;
    assert_non_null(ctx);

    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);

    options = SSL_CTX_get_options(ctx);
    assert_true(options & SSL_OP_NO_COMPRESSION);
    assert_true(options & SSL_OP_NO_RENEGOTIATION);
    assert_true(options & SSL_OP_CIPHER_SERVER_PREFERENCE);
    assert_false(options & SSL_OP_NO_TICKET);

    mode = SSL_CTX_get_mode(ctx);
    assert_true(mode & SSL_MODE_RELEASE_BUFFERS);
    assert_true(mode & SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    assert_true(mode & SSL_MODE_ENABLE_PARTIAL_WRITE);

    assert_int_equal(SSL_CTX_get_session_cache_mode(ctx),
                     SSL_SESS_CACHE_SERVER);

    /* destroying the pool frees the context through its cleanup */
    pd_destroy_pool(pool);
    assert_null(ssl.ctx);
}


static void
pd_test_create_errors(void **state)
{
    char         missing[300], expect[600];
    pd_ssl_t     ssl;
    pd_pool_t   *pool;
    const char  *phrase;

    (void) state;

    pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, &pd_test_log);
    assert_non_null(pool);

    pd_test_path(missing, sizeof(missing), "missing.crt");

    phrase = pd_test_create(&ssl, pool, missing, pd_test_key);
    (void) snprintf(expect, sizeof(expect),
                    "cannot load certificate \"%s\": "
                    "No such file or directory", missing);
    assert_string_equal(phrase, expect);
    assert_null(ssl.ctx);
    assert_int_equal(ERR_peek_error(), 0);

    phrase = pd_test_create(&ssl, pool, pd_test_cert, missing);
    (void) snprintf(expect, sizeof(expect),
                    "cannot load certificate key \"%s\": "
                    "No such file or directory", missing);
    assert_string_equal(phrase, expect);
    assert_null(ssl.ctx);
    assert_int_equal(ERR_peek_error(), 0);

    phrase = pd_test_create(&ssl, pool, pd_test_garbage, pd_test_key);
    (void) snprintf(expect, sizeof(expect),
                    "cannot load certificate \"%s\": no start line",
                    pd_test_garbage);
    assert_string_equal(phrase, expect);
    assert_null(ssl.ctx);
    assert_int_equal(ERR_peek_error(), 0);

    /* a key of the certificate's type but another pair */
    phrase = pd_test_create(&ssl, pool, pd_test_cert, pd_test_other_key);
    (void) snprintf(expect, sizeof(expect),
                    "cannot load certificate key \"%s\": "
                    "key values mismatch", pd_test_other_key);
    assert_string_equal(phrase, expect);
    assert_null(ssl.ctx);
    assert_int_equal(ERR_peek_error(), 0);

    /* a key of another type: only the final check sees it */
    phrase = pd_test_create(&ssl, pool, pd_test_cert, pd_test_rsa_key);
    (void) snprintf(expect, sizeof(expect),
                    "certificate \"%s\" does not match key \"%s\": ",
                    pd_test_cert, pd_test_rsa_key);
    assert_memory_equal(phrase, expect, strlen(expect));
    assert_null(ssl.ctx);
    assert_int_equal(ERR_peek_error(), 0);

    /*
     * An encrypted key fails at once instead of prompting.  Decrypted
     * with the empty password, its padding is usually wrong ("bad
     * decrypt"), but by chance (about one run in twenty here) it looks
     * right and the garbage then fails to decode ("unsupported"): both
     * are the refusal this checks.
     */
    phrase = pd_test_create(&ssl, pool, pd_test_cert, pd_test_enc_key);
    (void) snprintf(expect, sizeof(expect),
                    "cannot load certificate key \"%s\": ",
                    pd_test_enc_key);
    assert_memory_equal(phrase, expect, strlen(expect));
    assert_true(strcmp(phrase + strlen(expect), "bad decrypt") == 0
                || strcmp(phrase + strlen(expect), "unsupported") == 0);
    assert_null(ssl.ctx);
    assert_int_equal(ERR_peek_error(), 0);

    /* a failure leaves nothing for the pool's cleanup to trip on */
    pd_destroy_pool(pool);
}


/* handshake, data both ways, then a resumed session, at one version */
static void
pd_test_version_and_resume(int version)
{
    SSL_CTX         *ctx;
    SSL_SESSION     *sess;
    pd_test_conn_t   t;

    ctx = pd_test_client_ctx(version);

    pd_test_pair(&t, ctx);
    pd_test_handshake(&t);

    assert_int_equal(SSL_version(t.c.ssl->connection), version);
    assert_false(SSL_session_reused(t.c.ssl->connection));

    /* TLS 1.3 tickets arrive after the handshake: the exchange reads it */
    pd_test_exchange(&t);

    sess = SSL_get1_session(t.client);
    assert_non_null(sess);
    assert_true(SSL_SESSION_is_resumable(sess));

    pd_test_pair_close(&t);

    pd_test_pair(&t, ctx);
    assert_int_equal(SSL_set_session(t.client, sess), 1);
    pd_test_handshake(&t);

    assert_int_equal(SSL_version(t.c.ssl->connection), version);
    assert_true(SSL_session_reused(t.c.ssl->connection));
    assert_true(SSL_session_reused(t.client));

    pd_test_exchange(&t);
    pd_test_pair_close(&t);

    SSL_SESSION_free(sess);
    SSL_CTX_free(ctx);
}


static void
pd_test_tls12(void **state)
{
    (void) state;

    pd_test_version_and_resume(TLS1_2_VERSION);
}


static void
pd_test_tls13(void **state)
{
    (void) state;

    pd_test_version_and_resume(TLS1_3_VERSION);
}


/*
 * The server side of a handshake in a forked child, as a worker would
 * run it with the context inherited from the master.  Exit status: 0
 * resumed, 1 full handshake, 2 failed, 3 timed out.
 */
static void
pd_test_child_server(pd_test_conn_t *t)
{
    pd_int_t       rc;
    struct pollfd  pfd;

    for ( ;; ) {
        rc = pd_ssl_handshake(&t->c);

        if (rc == PD_OK) {
            _exit(SSL_session_reused(t->c.ssl->connection) ? 0 : 1);
        }

        if (rc != PD_AGAIN) {
            _exit(2);
        }

        pfd.fd = t->c.fd;
        pfd.events = (t->c.read->ready ? 0 : POLLIN)
                     | (t->c.write->ready ? 0 : POLLOUT);

        if (poll(&pfd, 1, 10000) != 1) {
            _exit(3);
        }

        t->c.read->ready = 1;
        t->c.write->ready = 1;
    }
}


/*
 * One handshake with the server side in a forked child ("a worker"),
 * the client here; sess (or NULL) is offered for resumption.  Returns
 * the child's exit status (see pd_test_child_server()); *out gets the
 * client's session afterwards.
 */
static int
pd_test_forked_handshake(SSL_CTX *ctx, SSL_SESSION *sess, SSL_SESSION **out)
{
    int              n, status;
    u_char           buf[16];
    pid_t            pid;
    struct pollfd    pfd;
    pd_test_conn_t   t;

    pd_test_pair(&t, ctx);

    if (sess != NULL) {
        assert_int_equal(SSL_set_session(t.client, sess), 1);
    }

    fflush(NULL);

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        pd_test_child_server(&t);
    }

    for ( ;; ) {
        n = SSL_do_handshake(t.client);
        if (n == 1) {
            break;
        }

        n = SSL_get_error(t.client, n);
        assert_true(n == SSL_ERROR_WANT_READ || n == SSL_ERROR_WANT_WRITE);

        pfd.fd = t.fd;
        pfd.events = (n == SSL_ERROR_WANT_READ) ? POLLIN : POLLOUT;
        assert_int_equal(poll(&pfd, 1, 10000), 1);
    }

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));

    /* the child is done: its ticket is in the socket, read it */
    assert_int_equal(pd_test_client_read(&t, buf, sizeof(buf)), 0);

    *out = SSL_get1_session(t.client);
    assert_non_null(*out);

    assert_int_equal(SSL_session_reused(t.client),
                     WEXITSTATUS(status) == 0);

    /* this process never completed the server side: a quiet shutdown */
    pd_test_pair_close(&t);

    return WEXITSTATUS(status);
}


/*
 * A session made by one worker resumes on another: the ticket keys came
 * with the context from the master, while the first worker's session
 * cache (made after fork) is out of the second one's reach.
 */
static void
pd_test_resume_in_other_process(void **state)
{
    SSL_CTX      *ctx;
    SSL_SESSION  *first, *second;

    (void) state;

    ctx = pd_test_client_ctx(TLS1_3_VERSION);

    assert_int_equal(pd_test_forked_handshake(ctx, NULL, &first), 1);
    assert_int_equal(pd_test_forked_handshake(ctx, first, &second), 0);

    SSL_SESSION_free(first);
    SSL_SESSION_free(second);
    SSL_CTX_free(ctx);
}


static void
pd_test_recv_eof(void **state)
{
    char             expect[256];
    u_char           buf[16];
    SSL_CTX         *ctx;
    pd_test_conn_t   t;

    (void) state;

    ctx = pd_test_client_ctx(TLS1_3_VERSION);

    /* a clean close_notify */
    pd_test_pair(&t, ctx);
    pd_test_handshake(&t);
    (void) SSL_shutdown(t.client);
    assert_int_equal(pd_conn_io(&t.c)->recv(&t.c, buf, sizeof(buf)), 0);
    assert_true(t.c.read->eof);
    assert_false(t.c.read->error);
    pd_test_pair_close(&t);

    /* a client that just vanishes is an eof too, not an error */
    pd_test_pair(&t, ctx);
    pd_test_handshake(&t);
    /* (it read the session ticket: nothing unread makes a reset) */
    assert_int_equal(pd_test_client_read(&t, buf, sizeof(buf)), 0);
    assert_int_equal(SSL_write(t.client, "bye", 3), 3);
    (void) close(t.fd);
    t.fd = -1;
    assert_int_equal(pd_conn_io(&t.c)->recv(&t.c, buf, sizeof(buf)), 3);
    assert_int_equal(pd_conn_io(&t.c)->recv(&t.c, buf, sizeof(buf)), 0);
    assert_true(t.c.read->eof);
    assert_false(t.c.read->error);
    pd_test_pair_close(&t);

    assert_false(pd_test_log_has("SSL_read() failed"));

    /* one that leaves unread data behind resets the connection */
    pd_test_pair(&t, ctx);
    pd_test_handshake(&t);
    assert_int_equal(SSL_write(t.client, "bye", 3), 3);
    (void) close(t.fd);
    t.fd = -1;
    assert_int_equal(pd_conn_io(&t.c)->recv(&t.c, buf, sizeof(buf)), 3);
    assert_int_equal(pd_conn_io(&t.c)->recv(&t.c, buf, sizeof(buf)), PD_ERROR);
    assert_true(t.c.read->error);
    pd_test_pair_close(&t);

    /* the client's doing: logged at info, with the errno */
    (void) snprintf(expect, sizeof(expect),
                    "[info] %d#m: SSL_read() failed (%d: %s)\n",
                    (int) getpid(), ECONNRESET, strerror(ECONNRESET));
    assert_true(pd_test_log_has(expect));

    SSL_CTX_free(ctx);
}


/* a pattern that shows both loss and reordering */
static u_char
pd_test_byte(size_t i)
{
    return (u_char) ((i * 131 + i / 251) & 0xff);
}


/*
 * Builds a chain of n_small bufs of small bytes, one big buf of big
 * bytes, then n_small more, over the pattern; returns its length.
 */
static size_t
pd_test_chain(pd_pool_t *pool, u_char *data, pd_chain_t **out,
    pd_uint_t n_small, size_t small, size_t big)
{
    size_t       off, len;
    pd_uint_t    i;
    pd_buf_t    *b;
    pd_chain_t  *cl, **ll;

    ll = out;
    off = 0;

    for (i = 0; i < 2 * n_small + 1; i++) {
        len = (i == n_small) ? big : small;

        b = pd_pcalloc(pool, sizeof(pd_buf_t));
        assert_non_null(b);
        b->start = data + off;
        b->pos = b->start;
        b->last = b->start + len;
        b->end = b->last;

        cl = pd_alloc_chain_link(pool);
        assert_non_null(cl);
        cl->buf = b;
        *ll = cl;
        ll = &cl->next;

        off += len;

        if (i % 2 == 0) {
            /* an empty buf between data is skipped */
            b = pd_pcalloc(pool, sizeof(pd_buf_t));
            assert_non_null(b);
            cl = pd_alloc_chain_link(pool);
            assert_non_null(cl);
            cl->buf = b;
            *ll = cl;
            ll = &cl->next;
        }
    }

    *ll = NULL;

    return off;
}


/* sends a large chain into a small socket buffer, draining as it goes */
static void
pd_test_send_chain_large(void **state)
{
    int              sndbuf;
    u_char          *data, *got;
    size_t           i, total, received;
    SSL_CTX         *ctx;
    pd_uint_t        again, turns;
    pd_chain_t      *in;
    pd_test_conn_t   t;

    (void) state;

    data = malloc(512 * 1024);
    got = malloc(512 * 1024);
    assert_non_null(data);
    assert_non_null(got);

    for (i = 0; i < 512 * 1024; i++) {
        data[i] = pd_test_byte(i);
    }

    ctx = pd_test_client_ctx(TLS1_3_VERSION);
    pd_test_pair(&t, ctx);
    pd_test_handshake(&t);

    sndbuf = 4096;
    assert_int_equal(setsockopt(t.c.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
                                sizeof(sndbuf)), 0);

    total = pd_test_chain(t.c.pool, data, &in, 300, 97, 200 * 1024);

    received = 0;
    again = 0;

    for (turns = 0; turns < 10000 && in != NULL; turns++) {
        in = pd_conn_io(&t.c)->send_chain(&t.c, in, 0);
        assert_true(in != PD_CHAIN_ERROR);

        if (in != NULL) {
            /* stopped by a full socket, not by anything else */
            assert_false(t.c.write->ready);
            assert_true(t.c.ssl->write_pending > 0);
            again++;
        }

        received += pd_test_client_read(&t, got + received,
                                        512 * 1024 - received);
        t.c.write->ready = 1;
    }

    assert_null(in);
    assert_true(again > 0);
    assert_int_equal(t.c.ssl->write_pending, 0);

    for (turns = 0; turns < 100 && received < total; turns++) {
        received += pd_test_client_read(&t, got + received,
                                        512 * 1024 - received);
    }

    assert_int_equal(received, total);
    assert_memory_equal(got, data, total);

    pd_test_pair_close(&t);
    SSL_CTX_free(ctx);
    free(data);
    free(got);
}


static void
pd_test_send_chain_limit(void **state)
{
    u_char           data[5000], got[5000];
    size_t           i, total;
    SSL_CTX         *ctx;
    pd_chain_t      *in, *rest;
    pd_test_conn_t   t;

    (void) state;

    for (i = 0; i < sizeof(data); i++) {
        data[i] = pd_test_byte(i);
    }

    ctx = pd_test_client_ctx(TLS1_2_VERSION);
    pd_test_pair(&t, ctx);
    pd_test_handshake(&t);

    total = pd_test_chain(t.c.pool, data, &in, 10, 100, 3000);
    assert_int_equal(total, 5000);

    rest = pd_conn_io(&t.c)->send_chain(&t.c, in, 1234);
    assert_non_null(rest);
    assert_true(rest != PD_CHAIN_ERROR);
    /* stopped by the budget: the socket is still writable */
    assert_true(t.c.write->ready);

    assert_int_equal(pd_test_client_read(&t, got, sizeof(got)), 1234);
    assert_memory_equal(got, data, 1234);

    rest = pd_conn_io(&t.c)->send_chain(&t.c, rest, 0);
    assert_null(rest);

    assert_int_equal(pd_test_client_read(&t, got + 1234, sizeof(got)), 3766);
    assert_memory_equal(got, data, 5000);

    /* nothing to send is all sent */
    assert_null(pd_conn_io(&t.c)->send_chain(&t.c, in, 0));
    assert_null(pd_conn_io(&t.c)->send_chain(&t.c, NULL, 0));

    pd_test_pair_close(&t);
    SSL_CTX_free(ctx);
}


/* a retry with fewer bytes than openssl holds is refused, not garbled */
static void
pd_test_send_chain_shrunk_retry(void **state)
{
    int              sndbuf;
    u_char          *data;
    size_t           i;
    SSL_CTX         *ctx;
    pd_uint_t        turns;
    pd_chain_t      *in, *small;
    pd_test_conn_t   t;

    (void) state;

    data = malloc(256 * 1024);
    assert_non_null(data);

    for (i = 0; i < 256 * 1024; i++) {
        data[i] = pd_test_byte(i);
    }

    ctx = pd_test_client_ctx(TLS1_3_VERSION);
    pd_test_pair(&t, ctx);
    pd_test_handshake(&t);

    sndbuf = 4096;
    assert_int_equal(setsockopt(t.c.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
                                sizeof(sndbuf)), 0);

    (void) pd_test_chain(t.c.pool, data, &in, 0, 0, 256 * 1024);

    for (turns = 0; turns < 1000 && t.c.write->ready; turns++) {
        in = pd_conn_io(&t.c)->send_chain(&t.c, in, 0);
        assert_true(in != NULL && in != PD_CHAIN_ERROR);
    }

    assert_false(t.c.write->ready);
    assert_true(t.c.ssl->write_pending > 10);

    (void) pd_test_chain(t.c.pool, data, &small, 0, 0, 10);
    t.c.write->ready = 1;

    assert_ptr_equal(pd_conn_io(&t.c)->send_chain(&t.c, small, 0),
                     PD_CHAIN_ERROR);
    assert_true(t.c.write->error);
    assert_true(pd_test_log_has("[alert]"));
    assert_true(pd_test_log_has("SSL write retried with 10 bytes"));

    pd_test_pair_close(&t);
    SSL_CTX_free(ctx);
    free(data);
}


/* pd_ssl_write() returns what went out and stops at a full socket */
static void
pd_test_write_partial(void **state)
{
    int              sndbuf;
    u_char          *data, *got;
    size_t           i, sent, received;
    ssize_t          n;
    SSL_CTX         *ctx;
    pd_uint_t        turns, again;
    pd_test_conn_t   t;

    (void) state;

    data = malloc(128 * 1024);
    got = malloc(128 * 1024);
    assert_non_null(data);
    assert_non_null(got);

    for (i = 0; i < 128 * 1024; i++) {
        data[i] = pd_test_byte(i);
    }

    ctx = pd_test_client_ctx(TLS1_2_VERSION);
    pd_test_pair(&t, ctx);
    pd_test_handshake(&t);

    sndbuf = 4096;
    assert_int_equal(setsockopt(t.c.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
                                sizeof(sndbuf)), 0);

    sent = 0;
    received = 0;
    again = 0;

    for (turns = 0; turns < 10000 && received < 128 * 1024; turns++) {
        if (sent < 128 * 1024) {
            n = pd_conn_io(&t.c)->send(&t.c, data + sent, 128 * 1024 - sent);

            if (n == PD_AGAIN) {
                assert_false(t.c.write->ready);
                again++;

            } else {
                assert_true(n > 0);
                sent += n;

                if (sent < 128 * 1024) {
                    assert_false(t.c.write->ready);
                    again++;
                }
            }
        }

        received += pd_test_client_read(&t, got + received,
                                        128 * 1024 - received);
        t.c.write->ready = 1;
    }

    assert_true(again > 0);
    assert_int_equal(sent, 128 * 1024);
    assert_int_equal(received, 128 * 1024);
    assert_memory_equal(got, data, 128 * 1024);

    pd_test_pair_close(&t);
    SSL_CTX_free(ctx);
    free(data);
    free(got);
}


static void
pd_test_handshake_garbage(void **state)
{
    pd_int_t         rc;
    SSL_CTX         *ctx;
    pd_test_conn_t   t;

    (void) state;

    ctx = pd_test_client_ctx(TLS1_3_VERSION);
    pd_test_pair(&t, ctx);

    /* plain HTTP on the TLS port */
    assert_int_equal(write(t.fd, "GET / HTTP/1.1\r\n\r\n", 18), 18);

    rc = pd_ssl_handshake(&t.c);
    assert_int_equal(rc, PD_ERROR);
    assert_true(t.c.read->error);
    assert_false(t.c.tls_io);
    assert_int_equal(ERR_peek_error(), 0);

    assert_true(pd_test_log_has("[info]"));
    assert_true(pd_test_log_has(" SSL_do_handshake() failed (SSL: "));

    pd_test_pair_close(&t);
    SSL_CTX_free(ctx);
}


static void
pd_test_handshake_eof(void **state)
{
    u_char           buf[512];
    size_t           total;
    ssize_t          n;
    pd_int_t         rc;
    SSL_CTX         *ctx;
    pd_test_conn_t   t;

    (void) state;

    ctx = pd_test_client_ctx(TLS1_3_VERSION);

    /* the client leaves before saying anything */
    pd_test_pair(&t, ctx);
    (void) close(t.fd);
    t.fd = -1;

    rc = pd_ssl_handshake(&t.c);
    assert_int_equal(rc, PD_ERROR);
    assert_true(t.c.read->eof);
    assert_false(t.c.read->error);
    assert_true(pd_test_log_has("client closed connection in SSL "
                                "handshake"));
    pd_test_pair_close(&t);

    /* the client leaves in the middle of the handshake */
    pd_test_pair(&t, ctx);
    assert_int_equal(SSL_do_handshake(t.client), -1);
    assert_int_equal(pd_ssl_handshake(&t.c), PD_AGAIN);

    /*
     * The server's flight is there: take it all (unread data would make
     * the close a reset) and leave.
     */
    total = 0;

    while ((n = read(t.fd, buf, sizeof(buf))) > 0) {
        total += n;
    }

    assert_int_equal(errno, EAGAIN);
    assert_true(total > 0);
    (void) close(t.fd);
    t.fd = -1;

    rc = pd_ssl_handshake(&t.c);
    assert_int_equal(rc, PD_ERROR);
    assert_true(t.c.read->eof);
    assert_false(t.c.read->error);
    assert_int_equal(ERR_peek_error(), 0);
    assert_false(pd_test_log_has("SSL_do_handshake() failed"));
    pd_test_pair_close(&t);

    SSL_CTX_free(ctx);
}


/* TLS 1.1 clients are turned away */
static void
pd_test_old_protocol(void **state)
{
    int              n, turns;
    pd_int_t         rc;
    SSL_CTX         *ctx;
    pd_test_conn_t   t;

    (void) state;

    ctx = pd_test_client_ctx(TLS1_1_VERSION);
    /* openssl 3 refuses TLS 1.1 itself unless the level allows SHA-1 */
    assert_int_equal(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"),
                     1);

    pd_test_pair(&t, ctx);

    rc = PD_AGAIN;

    for (turns = 0; turns < 10 && rc == PD_AGAIN; turns++) {
        n = SSL_do_handshake(t.client);
        assert_true(n != 1);
        rc = pd_ssl_handshake(&t.c);
        t.c.read->ready = 1;
        t.c.write->ready = 1;
    }

    assert_int_equal(rc, PD_ERROR);
    assert_true(t.c.read->error);
    assert_true(pd_test_log_has("unsupported protocol"));
    ERR_clear_error();

    pd_test_pair_close(&t);
    SSL_CTX_free(ctx);
}


static void
pd_test_shutdown(void **state)
{
    int              n;
    u_char           buf[16];
    SSL_CTX         *ctx;
    pd_test_conn_t   t;

    (void) state;

    ctx = pd_test_client_ctx(TLS1_3_VERSION);

    /* a healthy connection says close_notify */
    pd_test_pair(&t, ctx);
    pd_test_handshake(&t);
    pd_test_exchange(&t);
    pd_ssl_shutdown(&t.c);
    assert_null(t.c.ssl);

    n = SSL_read(t.client, buf, sizeof(buf));
    assert_int_equal(n, 0);
    assert_int_equal(SSL_get_error(t.client, n), SSL_ERROR_ZERO_RETURN);
    pd_test_pair_close(&t);

    /* after the peer's eof nothing is sent */
    pd_test_pair(&t, ctx);
    pd_test_handshake(&t);
    pd_test_exchange(&t);
    t.c.read->eof = 1;
    pd_ssl_shutdown(&t.c);
    assert_null(t.c.ssl);

    n = SSL_read(t.client, buf, sizeof(buf));
    assert_int_equal(n, -1);
    assert_int_equal(SSL_get_error(t.client, n), SSL_ERROR_WANT_READ);
    pd_test_pair_close(&t);

    ERR_clear_error();
    SSL_CTX_free(ctx);
}


static void
pd_test_error_drains_queue(void **state)
{
    SSL_CTX  *ctx;

    (void) state;

    ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);

    assert_int_equal(SSL_CTX_use_certificate_file(ctx, "/nonexistent/x",
                                                  SSL_FILETYPE_PEM), 0);
    assert_true(ERR_peek_error() != 0);

    pd_ssl_error(PD_LOG_ERR, &pd_test_log, 0, "load \"%s\" failed", "x");
    assert_int_equal(ERR_peek_error(), 0);
    assert_true(pd_test_log_has("[error]"));
    assert_true(pd_test_log_has("load \"x\" failed (SSL: error:"));
    assert_true(pd_test_log_has("No such file or directory"));

    /* filtered out by the level: nothing logged, still drained */
    assert_int_equal(SSL_CTX_use_certificate_file(ctx, "/nonexistent/y",
                                                  SSL_FILETYPE_PEM), 0);
    assert_true(ERR_peek_error() != 0);

    pd_ssl_error(PD_LOG_DEBUG, &pd_test_log, 0, "quiet failure");
    assert_int_equal(ERR_peek_error(), 0);
    assert_false(pd_test_log_has("quiet failure"));

    SSL_CTX_free(ctx);
}


/* waits (polling the clock) for the first moment of the next second */
static void
pd_test_next_second(void)
{
    time_t           now;
    struct timespec  ts = { 0, 5 * 1000 * 1000 };

    now = time(NULL);

    while (time(NULL) == now) {
        (void) nanosleep(&ts, NULL);
    }
}


/* one handshake with ssl offering sess; 1 when it was resumed */
static int
pd_test_resumes(pd_ssl_t *ssl, SSL_CTX *ctx, SSL_SESSION *sess)
{
    pd_test_conn_t  t;
    int             reused;

    pd_test_pair_on(&t, ctx, ssl);
    assert_int_equal(SSL_set_session(t.client, sess), 1);
    pd_test_handshake(&t);
    pd_test_exchange(&t);

    reused = SSL_session_reused(t.c.ssl->connection);
    assert_int_equal(SSL_session_reused(t.client), reused);

    pd_test_pair_close(&t);

    return reused;
}


/*
 * Ticket keys rotate every second here: a ticket resumes in the period
 * it was made in and the next one, and not after, although the session
 * timeout would still allow it: its key is gone.
 */
static void
pd_test_ticket_rotation(void **state)
{
    SSL_CTX         *ctx;
    SSL_SESSION     *sess;
    pd_ssl_t         rotating;
    pd_str_t         c, k;
    pd_pool_t       *pool;
    pd_test_conn_t   t;

    (void) state;

    /* its own pool: the context is freed with it, before rotating goes */
    pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, &pd_test_log);
    assert_non_null(pool);

    c.data = (u_char *) pd_test_cert;
    c.len = strlen(pd_test_cert);
    k.data = (u_char *) pd_test_key;
    k.len = strlen(pd_test_key);

    assert_null(pd_ssl_create(&rotating, &c, &k, 1, pool));
    (void) SSL_CTX_set_timeout(rotating.ctx, 3600);

    ctx = pd_test_client_ctx(TLS1_3_VERSION);

    /* early in a period, so the steps below stay within it */
    pd_test_next_second();

    pd_test_pair_on(&t, ctx, &rotating);
    pd_test_handshake(&t);
    pd_test_exchange(&t);
    sess = SSL_get1_session(t.client);
    assert_non_null(sess);
    pd_test_pair_close(&t);

    assert_true(pd_test_resumes(&rotating, ctx, sess));

    /* the next period: the previous key still decrypts it */
    pd_test_next_second();
    assert_true(pd_test_resumes(&rotating, ctx, sess));

    /* two periods on: that key is wiped, a full handshake */
    pd_test_next_second();
    assert_false(pd_test_resumes(&rotating, ctx, sess));

    SSL_SESSION_free(sess);
    SSL_CTX_free(ctx);

    pd_destroy_pool(pool);
}


#define pd_test(f)  cmocka_unit_test_setup(f, pd_test_log_reset)

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        pd_test(pd_test_create_ok),
        pd_test(pd_test_create_errors),
        pd_test(pd_test_tls12),
        pd_test(pd_test_tls13),
        pd_test(pd_test_resume_in_other_process),
        pd_test(pd_test_ticket_rotation),
        pd_test(pd_test_recv_eof),
        pd_test(pd_test_send_chain_large),
        pd_test(pd_test_send_chain_limit),
        pd_test(pd_test_send_chain_shrunk_retry),
        pd_test(pd_test_write_partial),
        pd_test(pd_test_handshake_garbage),
        pd_test(pd_test_handshake_eof),
        pd_test(pd_test_old_protocol),
        pd_test(pd_test_shutdown),
        pd_test(pd_test_error_drains_queue),
    };

    return cmocka_run_group_tests(tests, pd_test_setup, pd_test_teardown);
}
