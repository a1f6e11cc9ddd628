/*
 * pd_http.c: HTTP/1.1 connections for the room and the center.  Requests
 * on one connection are served one at a time (pipelined ones wait in the
 * buffer), so the request pool can be reset after every response.
 */

#include "pd_core.h"

#define PD_HTTP_POOL_LIMIT     (4 * 1024 * 1024)   /* besides the body */
/* small: most requests are a handshake or a short API call; bigger
 * responses take large allocations, freed with the request */
#define PD_HTTP_POOL_SIZE      1024
#define PD_HTTP_LINGER_MSEC    2000

static void pd_http_read_handler(pd_event_t *ev);
static pd_int_t pd_http_parse_head(pd_http_conn_t *hc);
static void pd_http_write_handler(pd_event_t *ev);
static void pd_http_process(pd_http_conn_t *hc);
static pd_int_t pd_http_early(pd_http_conn_t *hc, pd_http_check_pt check);
static pd_int_t pd_http_read_body(pd_http_conn_t *hc);
static void pd_http_finalize(pd_http_conn_t *hc);
static void pd_http_set_keepalive(pd_http_conn_t *hc);
static void pd_http_lingering_close(pd_http_conn_t *hc);
static void pd_http_lingering_handler(pd_event_t *ev);
static void pd_http_send_simple(pd_http_conn_t *hc, pd_uint_t status);
static pd_int_t pd_http_batch_add(pd_http_conn_t *hc, const u_char *p,
    size_t n);
static pd_int_t pd_http_batch_answer(pd_http_conn_t *hc, pd_buf_t *b);
static pd_uint_t pd_http_batch_empty(pd_http_conn_t *hc);
static size_t pd_http_request_bytes(pd_http_conn_t *hc);
static pd_int_t pd_http_send_link(pd_http_conn_t *hc, pd_chain_t *cl);
static void pd_http_next(pd_http_conn_t *hc, size_t rest);
static void pd_http_detach(pd_http_conn_t *hc);
static pd_int_t pd_http_flush_detached(pd_http_conn_t *hc);
static void pd_http_compact(pd_http_conn_t *hc);
static pd_int_t pd_http_switch_buffer(pd_http_conn_t *hc);
static pd_uint_t pd_http_movable(pd_connection_t *c);
static pd_int_t pd_http_hand_over(pd_connection_t *c, pid_t pid);
static pd_int_t pd_http_hand_over_one(pd_connection_t *c);
static pd_pool_t *pd_http_request_pool(pd_http_srv_t *srv, pd_log_t *log);
static void pd_http_request_init(pd_http_request_t *r, pd_http_srv_t *srv);
static pd_int_t pd_http_send_continue(pd_http_conn_t *hc);
static void pd_http_destroy_pools(pd_http_conn_t *list);

static const char  pd_http_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";

pd_int_t
pd_http_add_listeners(pd_cycle_t *cycle, pd_array_t *listen,
    pd_http_srv_t *srv, pd_ssl_t *ssl)
{
    pd_listen_conf_t  *lc;
    pd_listening_t    *ls;
    pd_uint_t          i, w, n;

    n = pd_worker_count(pd_get_conf(cycle, pd_core_module));
    lc = listen->elts;

    for (i = 0; i < listen->nelts; i++) {
        for (w = 0; w < n; w++) {
            ls = pd_create_listening(cycle, &lc[i], (pd_int_t) w);
            if (ls == NULL) {
                return PD_ERROR;
            }

            ls->handler = pd_http_init_connection;
            ls->servers = srv;
            ls->ssl_ctx = lc[i].ssl ? ssl : NULL;
        }
    }

    return PD_OK;
}

void
pd_http_init_connection(pd_connection_t *c)
{
    pd_http_init_connection_with(c, NULL, 0);
}

/* as a fresh one, with bytes another worker read from it (a resume, a
 * reload's hand-over) */
void
pd_http_init_connection_with(pd_connection_t *c, const u_char *pre,
    size_t n)
{
    pd_http_conn_t  *hc;
    pd_http_srv_t   *srv;

    srv = c->listening->servers;

    hc = pd_pcalloc(c->pool, sizeof(pd_http_conn_t));
    if (hc == NULL) {
        goto failed;
    }

    hc->connection = c;
    hc->srv = srv;

    hc->in = pd_create_temp_buf(c->pool, srv->header_buffer_size);
    if (hc->in == NULL) {
        goto failed;
    }

    hc->pool = pd_http_request_pool(srv, c->log);
    if (hc->pool == NULL) {
        goto failed;
    }

    pd_http_request_init(&hc->req, srv);

    c->data = hc;
    c->log->action = "reading HTTP request";
    c->read->handler = pd_http_read_handler;
    c->write->handler = pd_http_write_handler;

    pd_event_add_timer(c->read, srv->read_timeout);

    if (srv->access != NULL && pd_http_early(hc, srv->access) != PD_OK) {
        return;
    }

    if (n) {
        if (n > (size_t) (hc->in->end - hc->in->last)) {
            pd_http_send_simple(hc, 431);
            return;
        }

        hc->in->last = pd_cpymem(hc->in->last, pre, n);

        if (pd_http_parse_head(hc) != PD_AGAIN) {
            return;
        }
    }

    /* the first bytes usually arrived with the handshake */
    pd_http_read_handler(c->read);
    return;

failed:

    pd_close_connection(c);
    pd_destroy_pool(c->pool);
}

/* a request may hold its body (max_body) plus what answering takes */
static pd_pool_t *
pd_http_request_pool(pd_http_srv_t *srv, pd_log_t *log)
{
    return pd_create_pool(PD_HTTP_POOL_SIZE,
                          srv->max_body + PD_HTTP_POOL_LIMIT, log);
}

static void
pd_http_request_init(pd_http_request_t *r, pd_http_srv_t *srv)
{
    /* below the head's limit, so a long request line is told apart */
    r->max_line = srv->header_buffer_size / 2;
    r->max_headers = srv->max_headers;
    r->max_header = srv->header_buffer_size;
    r->max_body = srv->max_body;
    pd_http_request_reset(r);
}

static void
pd_http_read_handler(pd_event_t *ev)
{
    pd_connection_t  *c = ev->data;
    pd_http_conn_t   *hc = c->data;
    pd_buf_t         *b = hc->in;
    ssize_t           n;
    pd_int_t          rc;

    if (ev->timedout && !c->close && hc->ndetached) {
        /* not closed while answers are due on it: those come first */
        ev->timedout = 0;
        pd_event_add_timer(c->read, (hc->req.state != 0
                                     || hc->body.data != NULL)
                                    ? hc->srv->read_timeout
                                    : hc->srv->keepalive_timeout);
        return;
    }

    if (ev->timedout || c->close) {
        if (ev->timedout && hc->req.state != 0) {
            pd_log_error(PD_LOG_INFO, c->log, ETIMEDOUT,
                         "client timed out");
        }
        pd_http_close(hc);
        return;
    }

    if (hc->processing) {
        /* the handler has it; readiness is rechecked when it is done */
        return;
    }

    if (hc->out != NULL || hc->body.data != NULL) {
        /* a response is being written: the next request waits */
        if (hc->body.data != NULL && hc->out == NULL) {
            rc = pd_http_read_body(hc);
            if (rc == PD_OK) {
                pd_http_process(hc);
            }
        }
        return;
    }

    if (hc->pipelined) {
        /* a request is already in the buffer: parse before reading */
        hc->pipelined = 0;

        if (pd_http_parse_head(hc) != PD_AGAIN) {
            return;
        }
    }

    for ( ;; ) {
        if (b->last == b->end && hc->ndetached && b->pos != b->start) {
            /* the buffer holds requests still being answered: on in
             * the other one, if its own are; else when these are
             * (pd_http_flush_detached) */
            if (pd_http_switch_buffer(hc) != PD_OK) {
                return;
            }

            b = hc->in;
            continue;
        }

        if (b->last == b->end && b->pos != b->start) {
            pd_http_compact(hc);
            continue;
        }

        if (b->last == b->end) {
            /* the head does not fit in the buffer: the parser's limit */
            hc->req.status = (hc->req.state < 2) ? 414 : 431;
            pd_http_send_simple(hc, hc->req.status);
            return;
        }

        n = pd_conn_io(c)->recv(c, b->last, (size_t) (b->end - b->last));

        if (n == PD_AGAIN) {
            if (!c->idle && b->last == b->pos) {
                pd_http_set_keepalive(hc);
            }
            return;
        }

        if (n == 0 && hc->ndetached) {
            /* the client has said all (a half close): its answers are
             * still due; the connection closes after them (eof) */
            return;
        }

        if (n == PD_ERROR || n == 0) {
            pd_http_close(hc);
            return;
        }

        if (c->idle) {
            /* a request begins on an idle connection */
            if (c->reusable) {
                pd_queue_remove(&c->queue);
                c->reusable = 0;
            }

            c->idle = 0;
            pd_event_del_timer(c->read);
            pd_event_add_timer(c->read, hc->srv->read_timeout);
        }

        b->last += n;

        if (pd_http_parse_head(hc) != PD_AGAIN) {
            return;
        }
    }
}

/*
 * Parses what the buffer holds; on a whole head goes on with the body and
 * the handler.  PD_AGAIN when more bytes are needed, else PD_DONE (the
 * request went on, or got its error answer).
 */
static pd_int_t
pd_http_parse_head(pd_http_conn_t *hc)
{
    pd_connection_t  *c = hc->connection;
    pd_buf_t         *b = hc->in;
    pd_int_t          rc;

    rc = pd_http_parse_request(&hc->req, b->pos, (size_t) (b->last - b->pos));

    if (rc == PD_AGAIN) {
        return PD_AGAIN;
    }

    if (rc == PD_ERROR) {
        pd_log_error(PD_LOG_INFO, c->log, 0,
                     "client sent invalid request: %s (%lu)",
                     hc->req.error, (unsigned long) hc->req.status);
        pd_http_send_simple(hc, hc->req.status);
        return PD_DONE;
    }

    if (hc->ndetached && hc->req.content_length > 0
        && hc->req.header_len + (size_t) hc->req.content_length
           > (size_t) (b->end - b->pos)
        && hc->req.header_len + (size_t) hc->req.content_length
           <= (size_t) (b->end - b->start)
        && pd_http_switch_buffer(hc) == PD_OK)
    {
        /* its body fits a buffer, not what is left of this one after
         * the detached requests: in the other one it is read in place
         * (and may be detached too); parsed again there */
        b = hc->in;
        pd_http_request_reset(&hc->req);

        if (pd_http_parse_request(&hc->req, b->pos,
                                  (size_t) (b->last - b->pos))
            != PD_OK)
        {
            /* the same bytes: cannot be */
            pd_http_send_simple(hc, 400);
            return PD_DONE;
        }
    }

    pd_stats_inc(PD_STAT_REQUESTS);

    if (hc->srv->head_handler != NULL
        && pd_http_early(hc, hc->srv->head_handler) != PD_OK)
    {
        return PD_DONE;
    }

    if (pd_http_read_body(hc) == PD_OK) {
        pd_http_process(hc);
    }

    return PD_DONE;
}

/*
 * Runs a check that may answer before the request is whole: its answer
 * says "Connection: close" and the connection closes after it.
 */
static pd_int_t
pd_http_early(pd_http_conn_t *hc, pd_http_check_pt check)
{
    hc->keepalive = 0;
    hc->processing = 1;

    if (check(hc) == PD_OK) {
        hc->processing = 0;
        return PD_OK;
    }

    return PD_DONE;
}

/*
 * Collects a Content-Length body: from the head's buffer when it fits,
 * otherwise in a request-pool buffer of exactly that size.
 */
static pd_int_t
pd_http_read_body(pd_http_conn_t *hc)
{
    pd_connection_t  *c = hc->connection;
    pd_buf_t         *b = hc->in;
    size_t            have, need;
    ssize_t           n;

    if (hc->req.content_length <= 0) {
        return PD_OK;
    }

    need = (size_t) hc->req.content_length;

    if (hc->body.data == NULL) {
        have = (size_t) (b->last - b->pos) - hc->req.header_len;

        if (hc->req.header_len + need <= (size_t) (b->end - b->pos)) {
            hc->body.data = b->pos + hc->req.header_len;
            hc->body.len = pd_min(have, need);
            hc->body_in_head = 1;

        } else {
            hc->body.data = pd_pnalloc(hc->pool, need);
            if (hc->body.data == NULL) {
                pd_http_send_simple(hc, 413);
                return PD_ERROR;
            }

            /*
             * The body is longer than the buffer's room after the head,
             * so the buffer holds nothing past the body's first part:
             * those bytes are the body's now.  The buffer keeps only
             * the head, so that finalizing does not parse them again
             * as the next request (request smuggling); the rest of the
             * body is read straight into its own buffer, and nothing
             * past it is read before the answer is out.
             */
            hc->body.len = pd_min(have, need);
            pd_memcpy(hc->body.data, b->pos + hc->req.header_len,
                      hc->body.len);
            b->last = b->pos + hc->req.header_len;
        }

        if (hc->req.expect_continue && hc->body.len < need) {
            if (hc->ndetached) {
                /* after the detached requests' answers: a 100 before
                 * them would read as the first one's
                 * (pd_http_flush_detached) */
                hc->continue_held = 1;

            } else {
                /* no room after the answers kept for this turn's write:
                 * none, and the client sends the body after its wait */
                (void) pd_http_send_continue(hc);
            }
        }
    }

    while (hc->body.len < need) {
        if (hc->body_in_head) {
            n = pd_conn_io(c)->recv(c, b->last, (size_t) (b->end - b->last));
        } else {
            n = pd_conn_io(c)->recv(c, hc->body.data + hc->body.len,
                            need - hc->body.len);
        }

        if (n == PD_AGAIN) {
            return PD_AGAIN;
        }

        if (n == PD_ERROR || n == 0) {
            pd_http_close(hc);
            return PD_ERROR;
        }

        if (hc->body_in_head) {
            b->last += n;
            hc->body.len = pd_min((size_t) (b->last - hc->body.data), need);
        } else {
            hc->body.len += (size_t) n;
        }
    }

    return PD_OK;
}

static void
pd_http_process(pd_http_conn_t *hc)
{
    pd_connection_t  *c = hc->connection;
    pd_uint_t         number = c->number;

    pd_event_del_timer(c->read);
    c->log->action = "processing HTTP request";

    hc->keepalive = hc->req.keepalive
                    && hc->requests + 1 < hc->srv->keepalive_requests
                    && !pd_exiting;
    hc->requests++;
    hc->processing = 1;

    hc->srv->handler(hc);

    /* the handler's answer may have closed the connection: its slot
     * says so, hc may be gone */
    if (c->fd != -1 && c->number == number && c->data == hc
        && hc->processing && hc->detachable)
    {
        pd_http_detach(hc);
    }
}

static void
pd_http_send_simple(pd_http_conn_t *hc, pd_uint_t status)
{
    hc->keepalive = 0;
    (void) pd_http_send_error(hc, status, pd_http_status_text(status));
}

pd_int_t
pd_http_send_error(pd_http_conn_t *hc, pd_uint_t status, const char *message)
{
    u_char   buf[512], *p, *q;

    /* the message is JSON-escaped: phrases quote names ("device") */
    p = pd_cpymem(buf, "{\"error\":", sizeof("{\"error\":") - 1);
    q = pd_json_escape(p, buf + sizeof(buf) - 2, (u_char *) message,
                       strlen(message));

    if (q == NULL) {
        /* our phrases are short; this is a bug's safety net */
        q = pd_cpymem(p, "\"error\"", sizeof("\"error\"") - 1);
    }

    p = pd_cpymem(q, "}\n", 2);

    return pd_http_send_response(hc, status, "application/json", NULL, buf,
                                 (size_t) (p - buf));
}

/* a C string's bytes, without its NUL; the end */
static u_char *
pd_http_cpystr(u_char *p, const char *s)
{
    return pd_cpymem(p, s, strlen(s));
}

pd_int_t
pd_http_send_response(pd_http_conn_t *hc, pd_uint_t status,
    const char *content_type, const char *extra_headers,
    const u_char *body, size_t len)
{
    pd_connection_t  *c = hc->connection;
    pd_buf_t         *b;
    pd_chain_t       *cl;
    size_t            size;

    if (status >= 400 && status != 404 && status != 401 && status != 429
        && !hc->detached)
    {
        /* after a malformed request the stream may be out of sync (a
         * detached one was read whole, and later ones are served) */
        hc->keepalive = 0;
    }

    if (pd_exiting && !hc->detached) {
        /* the worker retired while this request was served: the client
         * learns it must go elsewhere from the answer itself */
        hc->keepalive = 0;
    }

    if (hc->req.method == PD_HTTP_HEAD) {
        body = NULL;
    }

    size = sizeof("HTTP/1.1 000 \r\nServer: pushd\r\nContent-Type: \r\n"
                  "Content-Length: \r\nConnection: keep-alive\r\n\r\n")
           + 64 + PD_INT_T_LEN
           + (content_type ? strlen(content_type) : 0)
           + (extra_headers ? strlen(extra_headers) : 0)
           + (body ? len : 0);

    b = pd_create_temp_buf(hc->pool, size);
    cl = pd_alloc_chain_link(hc->pool);

    if (b == NULL || cl == NULL) {
        pd_http_close(hc);
        return PD_ERROR;
    }

    /* piece by piece, not printf: this is once per request, and size
     * above holds every piece (a status of three digits, a length of
     * PD_INT_T_LEN, the strings measured) */
    b->last = pd_cpymem(b->last, "HTTP/1.1 ", sizeof("HTTP/1.1 ") - 1);
    b->last = pd_dec64(b->last, status % 1000);
    *b->last++ = ' ';
    b->last = pd_http_cpystr(b->last, pd_http_status_text(status));
    b->last = pd_cpymem(b->last, "\r\nServer: pushd\r\nContent-Type: ",
                        sizeof("\r\nServer: pushd\r\nContent-Type: ") - 1);
    b->last = pd_http_cpystr(b->last,
                             content_type ? content_type : "text/plain");
    b->last = pd_cpymem(b->last, "\r\nContent-Length: ",
                        sizeof("\r\nContent-Length: ") - 1);
    b->last = pd_dec64(b->last, len);
    b->last = pd_cpymem(b->last, "\r\nConnection: ",
                        sizeof("\r\nConnection: ") - 1);
    b->last = hc->keepalive
              ? pd_cpymem(b->last, "keep-alive\r\n",
                          sizeof("keep-alive\r\n") - 1)
              : pd_cpymem(b->last, "close\r\n", sizeof("close\r\n") - 1);

    if (extra_headers != NULL) {
        b->last = pd_http_cpystr(b->last, extra_headers);
    }

    *b->last++ = '\r';
    *b->last++ = '\n';

    if (body != NULL && len) {
        b->last = pd_cpymem(b->last, body, len);
    }

    hc->status = status;
    cl->buf = b;
    cl->next = NULL;

    if (hc->detached) {
        hc->answer = b;
        pd_http_flush_detached(c->data);
        return PD_OK;
    }

    if (hc->ndetached) {
        /* after the answers of the requests before it */
        hc->held = cl;
        return PD_OK;
    }

    return pd_http_send_link(hc, cl);
}

/* an answer, made, leaves: kept in the batch or written */
static pd_int_t
pd_http_send_link(pd_http_conn_t *hc, pd_chain_t *cl)
{
    pd_connection_t  *c = hc->connection;
    pd_chain_t       *ln;

    if (pd_http_batch_answer(hc, cl->buf) == PD_OK) {
        /* kept for one write with the next ones: on to the next */
        pd_http_finalize(hc);
        return PD_OK;
    }

    if (hc->out != NULL) {
        /* the kept answers are being written: this one follows */
        for (ln = hc->out; ln->next != NULL; ln = ln->next) { /* void */ }
        ln->next = cl;
        hc->flushing = 0;

    } else if (!pd_http_batch_empty(hc)) {
        hc->batch_link->next = cl;
        hc->out = hc->batch_link;

    } else {
        hc->out = cl;
    }

    c->log->action = "sending HTTP response";
    pd_event_add_timer(c->write, hc->srv->read_timeout);

    pd_http_write_handler(c->write);
    return PD_OK;
}

/*
 * Pipelined answers, one write.  A client that writes many requests at
 * once (the business's push pipeline) got each answer in a writev() of
 * its own: a system call per request on both sides.  An answer made
 * while more of the next request is already in the buffer is kept
 * instead, in the connection's batch, and the next request is served;
 * the last answer of the run goes out with the kept ones in one write.
 * Whatever else stops the run (the next request incomplete, handled
 * later, or past this turn's share) leaves the batch to the flush at
 * the end of the loop turn (the write event, posted last), so an answer
 * waits for the turn's end at most.  Only a kept-alive, fully read
 * request's answer is kept, and only on servers that ask for it (the
 * center: the room's port may hand a connection over to a WebSocket).
 */
static pd_int_t
pd_http_batch_answer(pd_http_conn_t *hc, pd_buf_t *b)
{
    pd_connection_t  *c = hc->connection;
    pd_buf_t         *in = hc->in;
    size_t            used;

    if (!hc->srv->batch_answers || !hc->keepalive || pd_exiting
        || hc->out != NULL)
    {
        return PD_DECLINED;
    }

    if (hc->req.content_length > 0
        && (!hc->body_in_head
            || hc->body.len < (size_t) hc->req.content_length))
    {
        return PD_DECLINED;
    }

    used = pd_http_request_bytes(hc);

    if ((size_t) (in->last - in->pos) <= used) {
        /* nothing of a next request yet: this answer goes now */
        return PD_DECLINED;
    }

    if (pd_http_batch_add(hc, b->pos, (size_t) (b->last - b->pos))
        != PD_OK)
    {
        return PD_DECLINED;
    }

    pd_post_event(c->write, &pd_posted_last_events);
    return PD_OK;
}

/* appends to the batch, made at first use; PD_DECLINED when it is full */
static pd_int_t
pd_http_batch_add(pd_http_conn_t *hc, const u_char *p, size_t n)
{
    pd_connection_t  *c = hc->connection;
    pd_buf_t         *b;

    if (hc->batch == NULL) {
        hc->batch = pd_create_temp_buf(c->pool, PD_HTTP_BATCH_SIZE);
        hc->batch_link = pd_alloc_chain_link(c->pool);

        if (hc->batch == NULL || hc->batch_link == NULL) {
            hc->batch = NULL;
            return PD_DECLINED;
        }

        hc->batch_link->buf = hc->batch;
        hc->batch_link->next = NULL;
    }

    b = hc->batch;

    if (n > (size_t) (b->end - b->last)) {
        return PD_DECLINED;
    }

    b->last = pd_cpymem(b->last, p, n);
    return PD_OK;
}

static pd_uint_t
pd_http_batch_empty(pd_http_conn_t *hc)
{
    return hc->batch == NULL || hc->batch->pos == hc->batch->last;
}

/* the bytes of the request being served in `in`: its head, and its body
 * when the body was read there */
static size_t
pd_http_request_bytes(pd_http_conn_t *hc)
{
    size_t  used = hc->req.header_len;

    if (hc->req.content_length > 0 && hc->body_in_head) {
        used += (size_t) hc->req.content_length;
    }

    return used;
}

static void
pd_http_write_handler(pd_event_t *ev)
{
    pd_connection_t  *c = ev->data;
    pd_http_conn_t   *hc = c->data;
    pd_chain_t       *cl;

    if (ev->timedout || c->close) {
        pd_log_error(PD_LOG_INFO, c->log, ETIMEDOUT,
                     "client timed out while sending response");
        pd_http_close(hc);
        return;
    }

    if (hc->out == NULL) {
        if (pd_http_batch_empty(hc)) {
            return;
        }

        /* the end of the turn: the answers kept in it leave */
        hc->batch_link->next = NULL;
        hc->out = hc->batch_link;
        hc->flushing = 1;
        pd_event_add_timer(c->write, hc->srv->read_timeout);
    }

    if (pd_channel_corked_now()) {
        /* a push this turn routed to a sibling leaves first: the client
         * may act on the answer (send the next push, through another
         * worker) at once; here from the answer and from EPOLLOUT */
        pd_post_event(ev, &pd_posted_answers);
        return;
    }

    pd_stats_inc(PD_STAT_HTTP_WRITES);

    cl = pd_conn_io(c)->send_chain(c, hc->out, 0);

    if (cl == PD_CHAIN_ERROR) {
        pd_http_close(hc);
        return;
    }

    hc->out = cl;

    if (cl != NULL) {
        return;
    }

    pd_event_del_timer(c->write);

    if (hc->batch != NULL) {
        hc->batch->pos = hc->batch->start;
        hc->batch->last = hc->batch->start;
    }

    if (hc->flushing) {
        /* only the kept answers: the request being served, if any,
         * answers later; one that waited for the write goes on */
        hc->flushing = 0;

        if (((hc->dq_head != NULL && hc->dq_head->answer != NULL)
             || hc->continue_held)
            && pd_http_flush_detached(hc) != PD_OK)
        {
            /* answers that found the batch full went on */
            return;
        }

        if (!pd_http_batch_empty(hc)) {
            /* more went into the batch meanwhile: its write is posted */
            return;
        }

        if (c->read->eof && !hc->processing && hc->ndetached == 0) {
            /* the client ended its side: these were the last answers */
            pd_http_close(hc);
            return;
        }

        if (pd_exiting && pd_http_movable(c)
            && pd_http_hand_over_one(c) == PD_OK)
        {
            /* its answers said keep-alive (made before the reload, or
             * detached ones): the next generation serves what follows */
            return;
        }

        if (!hc->processing
            && (c->read->ready || hc->in->last > hc->in->pos))
        {
            pd_post_event(c->read, &pd_posted_events);

        } else if (!hc->processing && hc->ndetached == 0
                   && hc->body.data == NULL)
        {
            /* the detached ones' last answers are out: idle now, not
             * before (an idle one may be closed for its slot) */
            pd_http_set_keepalive(hc);
        }

        return;
    }

    pd_http_finalize(hc);
}

/* the response is out: next request, keep-alive or close */
static void
pd_http_finalize(pd_http_conn_t *hc)
{
    pd_buf_t         *b = hc->in;
    size_t            used, rest;

    hc->processing = 0;

    if (hc->req.content_length > 0
        && hc->body.len < (size_t) hc->req.content_length)
    {
        /* answered before its body was read: the rest of the body
         * would read as a request */
        hc->keepalive = 0;
    }

    if (!hc->keepalive) {
        pd_http_lingering_close(hc);
        return;
    }

    used = pd_http_request_bytes(hc);
    rest = (size_t) (b->last - b->pos);
    rest = (rest > used) ? rest - used : 0;

    if (rest) {
        memmove(b->start, b->pos + used, rest);
    }

    b->pos = b->start;
    b->last = b->start + rest;

    hc->body.data = NULL;
    hc->body.len = 0;
    hc->body_in_head = 0;
    hc->detachable = 0;
    hc->continue_held = 0;
    hc->out = NULL;
    pd_http_request_reset(&hc->req);
    pd_reset_pool(hc->pool);

    pd_http_next(hc, rest);
}

/* between requests: the next one's bytes, rest, are at in->pos */
static void
pd_http_next(pd_http_conn_t *hc, size_t rest)
{
    pd_connection_t  *c = hc->connection;

    c->log->action = "reading HTTP request";

    pd_event_add_timer(c->read, rest ? hc->srv->read_timeout
                                     : hc->srv->keepalive_timeout);

    if (c->read->ready || rest) {
        /*
         * The next request (pipelined, or unread bytes) is served from
         * the posted events, not from here: answering 32 pipelined
         * requests must not nest 32 handlers deep in the stack.
         */
        hc->pipelined = (rest != 0);

        if (hc->turn != pd_event_turn) {
            hc->turn = pd_event_turn;
            hc->turn_requests = 0;
        }

        /* a few in this turn, then the other sockets get theirs */
        pd_post_event(c->read, ++hc->turn_requests < PD_HTTP_TURN_REQUESTS
                               ? &pd_posted_events : &pd_posted_next_events);

    } else {
        pd_http_set_keepalive(hc);
    }
}

/*
 * Pipelined requests served at once.  A business back-end writes many
 * pushes on one connection; served one at a time, each waited for the
 * one before it, and a push through a cluster waits for PostgreSQL's
 * commit: a connection carried one row per commit.  A handler that is
 * about to wait says so (pd_http_detachable); when it returns
 * unanswered, its request is detached: its struct, pool and bytes stay
 * as they are (the handler holds them), and the connection goes on in
 * a spare struct with the next request.  The detached ones wait in
 * dq in the order of their requests; an answer leaves when all before
 * it have, copied into the batch (one write for the answers of a
 * turn).  An answer of the connection's own request made while some
 * are detached is held until they are out.
 *
 * The detached requests' bytes stay in `in` (their head and body are
 * pointed at), so the buffer is not compacted while any is out: when
 * it is full the connection reads on in a second one
 * (pd_http_switch_buffer), or waits for one to free.  Only a kept-alive
 * request read whole is detached, at most srv->max_detached of them;
 * a detached request's error answer keeps the connection (the stream
 * is in step: the request was read whole).
 */
static void
pd_http_detach(pd_http_conn_t *hc)
{
    pd_connection_t  *c = hc->connection;
    pd_buf_t         *b = hc->in;
    pd_http_conn_t   *nc;
    size_t            used, rest;

    /* out: answered already, the write waits (for the channel's
     * cork, or for the socket) */
    if (hc->ndetached >= hc->srv->max_detached || !hc->keepalive
        || pd_exiting || hc->held != NULL || hc->out != NULL
        || (hc->req.content_length > 0
            && (!hc->body_in_head
                || hc->body.len < (size_t) hc->req.content_length)))
    {
        return;
    }

    used = pd_http_request_bytes(hc);
    rest = (size_t) (b->last - b->pos) - used;

    if (rest == 0 && !c->read->ready && hc->ndetached == 0) {
        /* a request at a time: nothing to serve meanwhile (a detach
         * would cost this common case for nothing); once some are
         * detached, the last one of a burst is too, so that the next
         * burst is read as it comes */
        return;
    }

    nc = hc->spare;

    if (nc != NULL) {
        hc->spare = nc->next;

    } else {
        nc = pd_pcalloc(c->pool, sizeof(pd_http_conn_t));
        if (nc == NULL) {
            return;
        }

        nc->pool = pd_http_request_pool(hc->srv, c->log);
        if (nc->pool == NULL) {
            return;
        }
    }

    /* the connection's part moves over */
    nc->connection = c;
    nc->srv = hc->srv;
    nc->in = b;
    nc->in_other = hc->in_other;
    nc->out = hc->out;
    nc->batch = hc->batch;
    nc->batch_link = hc->batch_link;
    nc->requests = hc->requests;
    nc->turn = hc->turn;
    nc->turn_requests = hc->turn_requests;
    nc->flushing = hc->flushing;
    nc->spare = hc->spare;
    nc->dq_head = hc->dq_head;
    nc->dq_tail = hc->dq_tail;
    nc->ndetached = hc->ndetached + 1;

    pd_http_request_init(&nc->req, hc->srv);
    nc->body.data = NULL;
    nc->body.len = 0;
    nc->status = 0;
    nc->keepalive = 0;
    nc->body_in_head = 0;
    nc->processing = 0;
    nc->pipelined = 0;
    nc->detachable = 0;
    nc->continue_held = 0;
    nc->detached = 0;
    nc->next = NULL;
    nc->answer = NULL;
    nc->held = NULL;

    hc->detached = 1;
    hc->next = NULL;
    hc->answer = NULL;

    if (nc->dq_tail != NULL) {
        nc->dq_tail->next = hc;
    } else {
        nc->dq_head = hc;
    }

    nc->dq_tail = hc;

    pd_stats_inc(PD_STAT_HTTP_DETACHED);

    c->data = nc;
    b->pos += used;

    pd_http_next(nc, rest);
}

/*
 * The detached answers at the head of dq leave, into the batch (written
 * at the turn's end).  When dq is empty the connection's own request
 * goes on.  PD_OK, or PD_DONE when the connection may be gone.
 */
static pd_int_t
pd_http_flush_detached(pd_http_conn_t *hc)
{
    pd_connection_t  *c = hc->connection;
    pd_http_conn_t   *d;
    pd_chain_t       *cl;
    pd_uint_t         added = 0;
    size_t            rest;

    while ((d = hc->dq_head) != NULL && d->answer != NULL) {

        if (pd_http_batch_add(hc, d->answer->pos,
                              (size_t) (d->answer->last - d->answer->pos))
            != PD_OK)
        {
            if (!pd_http_batch_empty(hc)) {
                /* full: the rest after this write (the write handler) */
                break;
            }

            /* no batch (out of memory), or an answer larger than it:
             * none of ours is */
            pd_log_error(PD_LOG_ALERT, c->log, 0,
                         "a detached answer of %lu bytes has no room",
                         (unsigned long) (d->answer->last - d->answer->pos));
            pd_http_close(hc);
            return PD_DONE;
        }

        hc->dq_head = d->next;
        if (hc->dq_head == NULL) {
            hc->dq_tail = NULL;
        }

        hc->ndetached--;
        added = 1;

        /* its cleanups run here: what it held is let go */
        pd_reset_pool(d->pool);
        d->answer = NULL;
        d->detached = 0;
        d->next = hc->spare;
        hc->spare = d;
    }

    if (added) {
        pd_post_event(c->write, &pd_posted_last_events);
    }

    if (hc->ndetached) {
        if (hc->in->last == hc->in->end && hc->in_other != NULL
            && hc->dq_head->in != hc->in_other
            && !hc->processing && hc->body.data == NULL)
        {
            /* it waits for a buffer, and the other one is free now */
            pd_post_event(c->read, &pd_posted_events);
        }

        return PD_OK;
    }

    if (hc->held != NULL) {
        cl = hc->held;
        hc->held = NULL;
        (void) pd_http_send_link(hc, cl);
        return PD_DONE;
    }

    if (hc->continue_held && pd_http_send_continue(hc) == PD_OK) {
        /* else the batch is full: after its write (the write handler) */
        hc->continue_held = 0;
    }

    if (hc->processing || hc->body.data != NULL) {
        /* its answer comes later; finalizing compacts the buffer */
        return PD_OK;
    }

    if (c->read->eof) {
        /* nothing more comes: after the answers (the write handler),
         * the close */
        if (hc->out == NULL && pd_http_batch_empty(hc)) {
            pd_http_close(hc);
            return PD_DONE;
        }

        return PD_OK;
    }

    pd_http_compact(hc);

    rest = (size_t) (hc->in->last - hc->in->pos);

    if (rest || c->read->ready) {
        hc->pipelined = (rest != 0);
        pd_post_event(c->read, &pd_posted_events);

    } else if (hc->out == NULL && pd_http_batch_empty(hc)) {
        pd_http_set_keepalive(hc);
    }

    /* else idle once the answers are written (the write handler) */

    return PD_OK;
}

/*
 * "100 Continue": at once when nothing is waiting to be written, else
 * after what is, in the batch; PD_DECLINED when the batch is full.
 */
static pd_int_t
pd_http_send_continue(pd_http_conn_t *hc)
{
    pd_connection_t  *c = hc->connection;

    if (hc->out == NULL && pd_http_batch_empty(hc)) {
        (void) pd_conn_io(c)->send(c, (u_char *) pd_http_continue,
                           sizeof(pd_http_continue) - 1);
        return PD_OK;
    }

    if (pd_http_batch_add(hc, (u_char *) pd_http_continue,
                          sizeof(pd_http_continue) - 1)
        != PD_OK)
    {
        return PD_DECLINED;
    }

    pd_post_event(c->write, &pd_posted_last_events);
    return PD_OK;
}

/*
 * A full buffer whose first requests are detached: the bytes not yet
 * served go on in a second buffer (the connection's pool, made at first
 * need), so that a connection keeps a buffer's worth of pushes or more
 * waiting, not none while the first ones are answered.  The two take
 * turns: dq is in request order, so the other buffer is free once the
 * oldest detached request is not in it.  PD_AGAIN: it is not yet.
 */
static pd_int_t
pd_http_switch_buffer(pd_http_conn_t *hc)
{
    pd_connection_t  *c = hc->connection;
    pd_buf_t         *b = hc->in, *o = hc->in_other;
    size_t            n;

    if (o == NULL) {
        o = pd_create_temp_buf(c->pool, (size_t) (b->end - b->start));
        if (o == NULL) {
            return PD_AGAIN;
        }

    } else if (hc->dq_head->in == o) {
        return PD_AGAIN;
    }

    n = (size_t) (b->last - b->pos);
    o->pos = o->start;
    o->last = pd_cpymem(o->start, b->pos, n);

    /* b's bytes past the detached ones are o's now */
    b->last = b->pos;
    hc->in = o;
    hc->in_other = b;

    if (hc->req.state != 0) {
        pd_http_request_reset(&hc->req);
    }

    return PD_OK;
}

/*
 * The bytes not yet served go to the buffer's start; a head parsed in
 * part is parsed again from there (the parser's state is offsets).
 */
static void
pd_http_compact(pd_http_conn_t *hc)
{
    pd_buf_t  *b = hc->in;
    size_t     n;

    if (b->pos == b->start) {
        return;
    }

    n = (size_t) (b->last - b->pos);

    if (n) {
        memmove(b->start, b->pos, n);
    }

    b->pos = b->start;
    b->last = b->start + n;

    if (hc->req.state != 0) {
        pd_http_request_reset(&hc->req);
        hc->pipelined = 1;
    }
}

/*
 * An idle connection between requests.  Closing it races with a request
 * the client may be writing, so only three things do: keepalive_timeout,
 * slot pressure (the reusable queue, longest idle first) and the end of
 * a retiring worker's grace.  A retiring worker keeps it, off that
 * queue, and answers a request on it with "Connection: close".
 */
static void
pd_http_set_keepalive(pd_http_conn_t *hc)
{
    pd_connection_t  *c = hc->connection;
    pd_cycle_t       *cycle = (pd_cycle_t *) pd_cycle;

    if (hc->requests == 0 || c->idle) {
        /* a request is still due on a new connection: it is served,
         * even by a retiring worker */
        return;
    }

    if (hc->ndetached) {
        /* answers are due on it: idle when they are out */
        return;
    }

    c->idle = 1;
    pd_event_del_timer(c->read);
    pd_event_add_timer(c->read, hc->srv->keepalive_timeout);

    if (pd_exiting) {
        return;
    }

    c->reusable = 1;
    pd_queue_insert_tail(&cycle->reusable_connections, &c->queue);
}

/*
 * After an error response, the client may still be sending: closing now
 * would answer its bytes with a RST that can destroy our response in
 * flight.  Shut down our side and drain for a while first.
 */
static void
pd_http_lingering_close(pd_http_conn_t *hc)
{
    pd_connection_t  *c = hc->connection;

    if (c->ssl != NULL || shutdown(c->fd, SHUT_WR) == -1) {
        pd_http_close(hc);
        return;
    }

    c->read->handler = pd_http_lingering_handler;
    c->write->handler = pd_http_lingering_handler;
    pd_event_del_timer(c->read);
    pd_event_add_timer(c->read, PD_HTTP_LINGER_MSEC);

    pd_http_lingering_handler(c->read);
}

static void
pd_http_lingering_handler(pd_event_t *ev)
{
    pd_connection_t  *c = ev->data;
    pd_http_conn_t   *hc = c->data;
    u_char            buf[4096];
    ssize_t           n;

    if (ev->write) {
        return;
    }

    if (ev->timedout || c->close) {
        pd_http_close(hc);
        return;
    }

    do {
        n = pd_conn_io(c)->recv(c, buf, sizeof(buf));

        if (n == PD_ERROR || n == 0) {
            pd_http_close(hc);
            return;
        }
    } while (n != PD_AGAIN);
}

/* the pools of a list of structs (dq or spare); the structs are the
 * connection pool's */
static void
pd_http_destroy_pools(pd_http_conn_t *list)
{
    for ( /* void */ ; list != NULL; list = list->next) {
        pd_destroy_pool(list->pool);
    }
}

void
pd_http_close(pd_http_conn_t *hc)
{
    pd_connection_t  *c = hc->connection;
    pd_pool_t        *pool = c->pool;

    if (hc->detached) {
        hc = c->data;
    }

    if (c->ssl != NULL) {
        pd_ssl_shutdown(c);
    }

    /* the detached requests' cleanups let go of what they wait for */
    pd_http_destroy_pools(hc->dq_head);
    pd_http_destroy_pools(hc->spare);

    pd_destroy_pool(hc->pool);
    pd_close_connection(c);
    pd_destroy_pool(pool);
}


/*
 * A reload or an upgrade's QUIT.  A retiring worker would keep a
 * connection with no request being answered (a new one whose first
 * request has not come or has come in part, an idle keep-alive one)
 * until worker_shutdown_timeout and close it then; a request the client
 * writes after that, or in the instant of the close, finds a closed
 * socket and is reset, unanswered (a client the kernel connected just
 * before the reload may be slow to write).  Such a connection's whole
 * state is its socket and the bytes of a head read so far, so both go
 * to a worker of the next generation (SCM_RIGHTS and the channel
 * message), which serves it as its own, the bytes first: whatever the
 * client writes, before or after, is read there.  TLS ones cannot move
 * (their OpenSSL state lives here): they keep the grace.  A busy
 * channel stops the walk; the rest stay here as before.
 */
static pd_uint_t
pd_http_movable(pd_connection_t *c)
{
    pd_http_conn_t  *hc = c->data;

    return c->ssl == NULL && c->listening != NULL && !c->listening->ssl
           && hc != NULL && !hc->processing && hc->out == NULL
           && hc->ndetached == 0 && pd_http_batch_empty(hc)
           && hc->body.data == NULL
           && (size_t) (hc->in->last - hc->in->pos) <= PD_CHANNEL_MAX_DATA;
}

/* our copy goes quietly: not answered, not closed for the client */
static void
pd_http_release_moved(pd_http_conn_t *hc)
{
    pd_connection_t  *c = hc->connection;
    pd_pool_t        *pool = c->pool;
    pd_socket_t       fd = c->fd;

    pd_destroy_pool(hc->pool);
    pd_http_destroy_pools(hc->spare);

    if (c->reusable) {
        pd_queue_remove(&c->queue);
        c->reusable = 0;
    }

    pd_active_connections--;
    pd_stats_dec(PD_STAT_CONNECTIONS);

    /* out of our epoll set first: the socket lives on there */
    pd_release_connection(c, 1);
    (void) close(fd);
    pd_destroy_pool(pool);
}

/* the socket and the bytes read of its next head go to worker pid */
static pd_int_t
pd_http_hand_over(pd_connection_t *c, pid_t pid)
{
    pd_http_conn_t  *hc = c->data;

    if (pd_channel_send_fd(pid, PD_CMD_HTTP_ADOPT, 0, c->fd, hc->in->pos,
                           (size_t) (hc->in->last - hc->in->pos))
        != PD_OK)
    {
        return PD_ERROR;
    }

    pd_http_release_moved(hc);
    return PD_OK;
}

/*
 * One that became movable after the walk of pd_http_retire (its last
 * answers written); kept here when the channel is busy, as there.
 */
static pd_int_t
pd_http_hand_over_one(pd_connection_t *c)
{
    pd_log_t   *log = pd_cycle->log;
    pd_uint_t   rr = 0;
    pid_t       pid;

    pid = pd_process_successor(&rr);

    if (pid == -1 || pd_http_hand_over(c, pid) != PD_OK) {
        return PD_ERROR;
    }

    pd_log_error(PD_LOG_NOTICE, log, 0, "1 HTTP connections handed to "
                 "worker %d", (int) pid);
    return PD_OK;
}

void
pd_http_retire(pd_cycle_t *cycle)
{
    pd_connection_t  *c;
    pd_uint_t         i, n, rr;
    pd_int_t          rv;
    pid_t             pid;

    rr = 0;
    pid = pd_process_successor(&rr);

    if (pid == -1) {
        return;
    }

    c = cycle->connections;
    n = 0;
    rv = PD_OK;

    for (i = 0; i < cycle->connection_top; i++) {
        if (c[i].fd == -1 || c[i].shared
            || c[i].read->handler != pd_http_read_handler
            || !pd_http_movable(&c[i]))
        {
            continue;
        }

        rv = pd_http_hand_over(&c[i], pid);
        if (rv != PD_OK) {
            break;
        }

        n++;
    }

    if (n || rv != PD_OK) {
        pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "%lu HTTP connections "
                     "handed to worker %d%s", (unsigned long) n, (int) pid,
                     rv != PD_OK ? ", the others kept: its channel is busy"
                     : "");
    }
}

/* PD_CMD_HTTP_ADOPT: served here as if accepted here, after the bytes
 * the old worker had read of its head */
static void
pd_http_channel_adopt(pd_cycle_t *cycle, pd_channel_msg_t *msg,
    u_char *data)
{
    pd_listening_t   *ls;
    pd_connection_t  *c;
    pd_socket_t       fd = msg->fd;
    pd_uint_t         rr;
    pid_t             pid;

    if (fd == -1) {
        return;
    }

    msg->fd = -1;       /* ours from here */

    if (pd_exiting) {
        /* retiring too (reloads in a row): on to the newest */
        rr = 0;
        pid = pd_process_successor(&rr);

        if (pid != -1
            && pd_channel_send_fd(pid, PD_CMD_HTTP_ADOPT, 0, fd, data,
                                  msg->len)
               == PD_OK)
        {
            (void) close(fd);
            return;
        }
    }

    ls = pd_event_listener_of(cycle, fd);

    if (ls == NULL || ls->ssl || ls->handler != pd_http_init_connection) {
        pd_log_error(PD_LOG_WARN, cycle->log, 0, "an HTTP connection handed "
                     "over by worker %d is closed: %s", (int) msg->pid,
                     pd_exiting ? "this worker is retiring too"
                     : "no plain HTTP listener on its address here");
        (void) close(fd);
        return;
    }

    c = pd_event_adopt(ls, fd);
    if (c == NULL) {
        return;
    }

    pd_http_init_connection_with(c, data, msg->len);
}

void
pd_http_init_process(void)
{
    pd_channel_set_handler(PD_CMD_HTTP_ADOPT, pd_http_channel_adopt);
}
