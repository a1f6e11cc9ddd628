/*
 * pd_ssl.h: TLS through openssl, non-blocking.  The SSL_CTX is built in
 * the master before fork, so every worker shares its session-ticket keys
 * and a client resumes its session whichever worker it lands on.
 */

#ifndef PD_SSL_H
#define PD_SSL_H

#include <openssl/ssl.h>
#include <openssl/err.h>

typedef struct pd_ssl_tickets_s  pd_ssl_tickets_t;

typedef struct {
    SSL_CTX            *ctx;
    pd_ssl_tickets_t   *tickets;       /* the ticket key ring, shared */
    pd_shm_t            tickets_shm;
} pd_ssl_t;

struct pd_ssl_connection_s {
    SSL                      *connection;
    pd_connection_handler_pt  handler;   /* called after the handshake */
    /* the length of an SSL_write() that openssl wants retried, or 0 */
    size_t                    write_pending;
    unsigned                  handshaked:1;
    unsigned                  no_wait_shutdown:1;
};

pd_int_t pd_ssl_init(pd_log_t *log);
/*
 * Loads cert and key; session-ticket keys rotate every ticket_rotation
 * seconds (pd_ssl_tickets.c).  NULL or a phrase (with openssl's reason).
 */
const char *pd_ssl_create(pd_ssl_t *ssl, pd_str_t *cert, pd_str_t *key,
    time_t ticket_rotation, pd_pool_t *pool);
/* the rotating ticket keys of pd_ssl_tickets.c */
const char *pd_ssl_tickets_init(pd_ssl_t *ssl, time_t rotation);
void pd_ssl_tickets_free(pd_ssl_t *ssl);
void pd_ssl_cleanup_ctx(void *data);
pd_int_t pd_ssl_create_connection(pd_ssl_t *ssl, pd_connection_t *c);
/* PD_OK (vtable swapped), PD_AGAIN (events re-armed), PD_ERROR */
pd_int_t pd_ssl_handshake(pd_connection_t *c);
pd_int_t pd_ssl_handshake_fresh(pd_connection_t *c);
ssize_t pd_ssl_recv(pd_connection_t *c, u_char *buf, size_t size);
ssize_t pd_ssl_write(pd_connection_t *c, u_char *buf, size_t size);
/*
 * Like pd_writev_chain().  After it returned a link, openssl may hold
 * encrypted bytes of that link that it has not reported as sent: the
 * caller must offer the same bytes again (more may follow) and not drop
 * or shorten them, or the retry fails (PD_CHAIN_ERROR).
 */
pd_chain_t *pd_ssl_send_chain(pd_connection_t *c, pd_chain_t *in,
    size_t limit);
/* the three above, as a connection's c->io after the handshake */
extern const pd_conn_io_t  pd_ssl_io;
void pd_ssl_shutdown(pd_connection_t *c);
void pd_ssl_error(pd_uint_t level, pd_log_t *log, pd_err_t err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif /* PD_SSL_H */
