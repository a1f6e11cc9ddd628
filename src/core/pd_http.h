/*
 * pd_http.h: the HTTP/1.1 connection shared by the room and the center:
 * reads a request head (and a Content-Length body) into the connection's
 * buffer, hands it to the owning module's handler, writes the response
 * and keeps the connection alive.  Bad requests get 400/413/414/431 and a
 * closed connection.
 */

#ifndef PD_HTTP_H
#define PD_HTTP_H

typedef struct pd_http_conn_s  pd_http_conn_t;
typedef struct pd_http_srv_s   pd_http_srv_t;

/* handles a complete request; must end with pd_http_send_response() or
 * take the connection over (a WebSocket upgrade) */
typedef void (*pd_http_handler_pt)(pd_http_conn_t *hc);

/*
 * A check that may answer early: PD_OK goes on, PD_DONE means it sent
 * the answer itself.  An early answer leaves the body unread, so the
 * connection is closed after it (its bytes cannot be told from the
 * next request's).
 */
typedef pd_int_t (*pd_http_check_pt)(pd_http_conn_t *hc);

struct pd_http_srv_s {
    size_t               header_buffer_size;  /* whole head */
    size_t               max_body;
    pd_uint_t            max_headers;
    pd_msec_t            read_timeout;
    pd_msec_t            keepalive_timeout;
    pd_uint_t            keepalive_requests;
    pd_http_handler_pt   handler;
    pd_http_check_pt     access;       /* at accept, before any byte */
    pd_http_check_pt     head_handler; /* after the head, before the body */
    void                *ctx;                 /* the module's conf */
    const char          *server_name;         /* "Server:" header */
    pd_uint_t            max_detached;        /* pipelined requests of a
                                               * connection served at once
                                               * (pd_http_detachable); 0:
                                               * one at a time */
    unsigned             batch_answers:1;     /* pipelined answers of a
                                               * turn in one write */
};

/* requests one connection gets answered in one loop turn, at most */
#define PD_HTTP_TURN_REQUESTS  8

/* room for the answers of pipelined requests kept for one write; an
 * answer that does not fit goes out at once, after those kept */
#define PD_HTTP_BATCH_SIZE     4096

struct pd_http_conn_s {
    pd_connection_t     *connection;
    pd_http_srv_t       *srv;
    pd_http_request_t    req;
    pd_str_t             body;
    pd_buf_t            *in;          /* head + body, one buffer */
    pd_buf_t            *in_other;    /* the one before it, while the
                                       * detached requests in it wait */
    pd_chain_t          *out;
    pd_pool_t           *pool;        /* per request, reset between */
    pd_buf_t            *batch;       /* answers kept for one write (the
                                       * connection's pool, at first use) */
    pd_chain_t          *batch_link;  /* its link in `out` */
    pd_uint_t            requests;
    pd_uint_t            turn;        /* the loop turn of turn_requests */
    pd_uint_t            turn_requests;
    pd_uint_t            status;      /* of the response being sent */
    unsigned             keepalive:1;
    unsigned             body_in_head:1;  /* body.data points into in */
    unsigned             processing:1;    /* handler owns the request */
    unsigned             pipelined:1;     /* the next head is in `in` */
    unsigned             flushing:1;      /* `out` is only the batch */
    unsigned             detachable:1;    /* its handler may answer later
                                           * while the next ones are served */
    unsigned             detached:1;      /* a request waiting for its
                                           * answer, not the connection's */
    unsigned             continue_held:1; /* its 100 waits for the
                                           * detached ones' answers */

    /*
     * Requests served at once (srv->max_detached).  The connection's
     * struct (c->data) keeps these; a detached request's struct has
     * only its own request, pool and answer.
     */
    pd_http_conn_t      *next;        /* in dq or in spare */
    pd_http_conn_t      *dq_head;     /* detached, oldest first */
    pd_http_conn_t      *dq_tail;
    pd_http_conn_t      *spare;       /* done with, each with its pool */
    pd_uint_t            ndetached;
    pd_buf_t            *answer;      /* detached: made, not yet sent */
    pd_chain_t          *held;        /* this request's answer, waiting
                                       * for the detached ones' */
};

/*
 * Adds one listener per worker for every address in `listen`, serving
 * HTTP through srv; TLS ones use ssl.  For the modules' init_module.
 */
pd_int_t pd_http_add_listeners(pd_cycle_t *cycle, pd_array_t *listen,
    pd_http_srv_t *srv, pd_ssl_t *ssl);

/* the listening handler for plain and TLS HTTP listeners */
void pd_http_init_connection(pd_connection_t *c);
void pd_http_init_connection_with(pd_connection_t *c, const u_char *pre,
    size_t n);

/*
 * Queues the response and starts writing it; extra_headers is a block of
 * "Name: value\r\n" lines or NULL.  The body is copied into the request
 * pool.  After it is sent the connection is kept alive or closed.
 */
pd_int_t pd_http_send_response(pd_http_conn_t *hc, pd_uint_t status,
    const char *content_type, const char *extra_headers,
    const u_char *body, size_t len);
/* a {"error":"..."} JSON body with the status */
pd_int_t pd_http_send_error(pd_http_conn_t *hc, pd_uint_t status,
    const char *message);

/*
 * Said by a handler about to wait for something else (the store's
 * commit): if it returns unanswered, the connection may serve the
 * requests pipelined after this one meanwhile.  The answers still go
 * out in the order of the requests.  hc stays this request's handle;
 * the connection goes on with another struct.
 */
#define pd_http_detachable(hc)  ((hc)->detachable = 1)
void pd_http_close(pd_http_conn_t *hc);

/*
 * A retiring worker's plain HTTP connections with no request being
 * answered go to the next generation (pd_process_successor) with their
 * sockets and the bytes of a head read so far; init sets the channel
 * handler that adopts them.
 */
void pd_http_retire(pd_cycle_t *cycle);
void pd_http_init_process(void);

#endif /* PD_HTTP_H */
