/*
 * pd_connection.h: connections and listening sockets.  Connections come
 * from a per-worker preallocated array with a free list; the I/O vtable
 * (c->io: recv/send/send_chain) is swapped for TLS after the handshake so
 * no module code branches on TLS.
 */

#ifndef PD_CONNECTION_H
#define PD_CONNECTION_H

typedef ssize_t (*pd_recv_pt)(pd_connection_t *c, u_char *buf, size_t size);
typedef ssize_t (*pd_send_pt)(pd_connection_t *c, u_char *buf, size_t size);
/* sends as much of the chain as the socket takes; returns the first link
 * not fully sent (NULL: all sent) or PD_CHAIN_ERROR */
typedef pd_chain_t *(*pd_send_chain_pt)(pd_connection_t *c, pd_chain_t *in,
    size_t limit);

#define PD_CHAIN_ERROR  (pd_chain_t *) PD_ERROR

/* one table per kind of socket, shared: a connection holds a bit that
 * picks it (pd_conn_io()), not three pointers (pd_unix_io here,
 * pd_ssl_io in pd_ssl.c) */
typedef struct {
    pd_recv_pt                recv;
    pd_send_pt                send;
    pd_send_chain_pt          send_chain;
} pd_conn_io_t;

typedef struct pd_ssl_connection_s  pd_ssl_connection_t;

struct pd_listening_s {
    pd_socket_t               fd;
    struct sockaddr_storage   sockaddr;
    socklen_t                 socklen;
    pd_str_t                  addr_text;
    int                       backlog;
    pd_int_t                  worker;      /* slot this socket belongs to */
    pd_connection_handler_pt  handler;     /* set by the owning module */
    void                     *servers;     /* the owning module's conf */
    pd_module_t              *module;
    void                     *ssl_ctx;     /* pd_ssl_t when ssl */
    pd_msec_t                 handshake_timeout;
    pd_connection_t          *connection;  /* in the worker */
    pd_listening_t           *previous;    /* same socket in the old cycle */
    unsigned                  ssl:1;
    unsigned                  open:1;      /* inherited, not opened anew */
    unsigned                  remain:1;
};

struct pd_connection_s {
    void                *data;
    pd_socket_t          fd;

    /* beside fd, in what would be padding */
    unsigned             close:1;
    unsigned             destroyed:1;
    unsigned             timedout:1;
    unsigned             error:1;
    unsigned             idle:1;      /* may be closed at shutdown */
    unsigned             reusable:1;
    unsigned             shared:1;    /* listener / channel, not from accept */
    unsigned             channel:1;   /* what the master and siblings send
                                       * here: read first in a turn */
    unsigned             log_shared:1; /* c->log is the cycle's, without
                                        * this connection's context: log
                                        * through pd_conn_log(c) */
    unsigned             tls_io:1;    /* I/O through TLS: pd_conn_io(c) */

    pd_listening_t      *listening;
    pd_pool_t           *pool;
    pd_log_t            *log;
    pd_ssl_connection_t *ssl;

    pd_sockaddr_t        sockaddr;    /* the client's: pd_conn_socklen() */
    uint32_t             number;      /* the "*N" in log lines (it wraps
                                       * after 2^32 connections) */

    pd_queue_t           queue;       /* reusable / module lists */

    /*
     * The events are in the slot, not in arrays of their own found by
     * pointers: 16 bytes fewer, and a slot's three parts on adjacent
     * lines.  Arrays of one, so that c->read is the event's address.
     */
    pd_event_t           read[1];
    pd_event_t           write[1];
};

/* three cache lines: every connection slot is written by its first use,
 * so each byte here is a byte of every idle connection's cost */
_Static_assert(sizeof(pd_connection_t) <= 192,
               "a connection slot with its events is three cache lines");

/* the I/O functions of c: plain until its TLS handshake is done.  By
 * c->tls_io: pd_unix_io, pd_ssl_io (the room_op fuzz target puts its
 * own in the first) */
extern const pd_conn_io_t  *pd_conn_ios[2];
#define pd_conn_io(c)  (pd_conn_ios[(c)->tls_io])

/* the length of the client's address (only AF_INET and AF_INET6 come in) */
#define pd_conn_socklen(c)                                                   \
    ((socklen_t) ((c)->sockaddr.sockaddr.sa_family == AF_INET6               \
                  ? sizeof(struct sockaddr_in6)                              \
                  : (c)->sockaddr.sockaddr.sa_family == AF_INET              \
                  ? sizeof(struct sockaddr_in) : 0))

/*
 * The log to write about c with: its own, or, for a connection that keeps
 * none (a room connection once upgraded: 64 bytes of each), one filled
 * with its context (number, client, server) in a per-worker scratch log.
 * That one is good until the next pd_conn_log() only: log with it, never
 * keep it (an allocation's log, say; c->log serves those).
 */
#define pd_conn_log(c)                                                       \
    ((c)->log_shared ? pd_conn_log_fill(c) : (c)->log)

pd_log_t *pd_conn_log_fill(pd_connection_t *c);
/* ", client: 1.2.3.4, server: 0.0.0.0:80": a connection log's context */
u_char *pd_conn_log_handler(pd_log_t *log, u_char *buf, size_t len);

extern pd_uint_t   pd_connection_counter;
extern pd_uint_t   pd_active_connections;

/* formats the client address of c into buf; returns the end */
u_char *pd_connection_addr_text(pd_connection_t *c, u_char *buf, size_t len);
/* a free connection for fd, or NULL (logged) when the array is exhausted */
pd_connection_t *pd_get_connection(pd_socket_t fd, pd_log_t *log);
/* free slots in the array, after idle keep-alive connections gave theirs
 * up when no more than reserve, or a sixteenth, were left (the accept
 * loop asks before each accept) */
pd_uint_t pd_connection_free_slots(pd_uint_t reserve);
void pd_free_connection(pd_connection_t *c);
/* deletes events and timers, closes the fd, frees the slot; not the pool */
void pd_close_connection(pd_connection_t *c);
/*
 * A session that outlives its socket (room.linger): closes the fd, takes
 * its events and timers out and uncounts it, but keeps the slot, so the
 * connection's number still finds it (c->fd is -1 until attached).
 */
void pd_detach_connection(pd_connection_t *c);
/*
 * The socket of a newer connection `from` moves into detached c (its
 * fd, address, I/O functions and TLS state); from's slot is freed.  The
 * caller adds c to the loop.  The count does not change: from was
 * counted at its accept, c was uncounted when it was detached.
 */
void pd_attach_connection(pd_connection_t *c, pd_connection_t *from);
/*
 * Frees the slot of a connection whose fd a library owns (hiredis,
 * libpq): out of epoll (unless fd_open is 0: the library closed it
 * already), timers and posted events gone, the fd left as it is.
 */
void pd_release_connection(pd_connection_t *c, pd_uint_t fd_open);
pd_int_t pd_connection_init_array(pd_cycle_t *cycle, pd_uint_t n);

/* plain socket I/O, the default vtable */
ssize_t pd_unix_recv(pd_connection_t *c, u_char *buf, size_t size);
ssize_t pd_unix_send(pd_connection_t *c, u_char *buf, size_t size);
pd_chain_t *pd_writev_chain(pd_connection_t *c, pd_chain_t *in, size_t limit);
extern const pd_conn_io_t  pd_unix_io;

/* listeners */
pd_listening_t *pd_create_listening(pd_cycle_t *cycle,
    pd_listen_conf_t *lc, pd_int_t worker);
/*
 * Takes over the old cycle's socket for each address and worker slot and
 * opens the rest, refusing a port that another process listens on.
 * PD_ERROR with "cannot listen on ADDR: why" in err (also logged); the
 * sockets opened here are closed then.
 */
pd_int_t pd_open_listening_sockets(pd_cycle_t *cycle, char *err,
    size_t len);
void pd_close_unused_listening(pd_cycle_t *cycle, pd_cycle_t *old);
void pd_close_other_workers_listening(pd_cycle_t *cycle, pd_int_t worker);

#endif /* PD_CONNECTION_H */
