/*
 * pd_room_ws.c: a live WebSocket connection: reading frames, the ops of
 * the client protocol, heartbeats, the close handshake, kick and
 * retirement.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_room_wire.h"

/* the fields a client frame may carry, read in one pass */
enum {
    PD_ROOM_F_OP = 0,
    PD_ROOM_F_IDS,
    PD_ROOM_F_APP,
    PD_ROOM_F_ID,          /* "up" */
    PD_ROOM_F_TYPE,
    PD_ROOM_F_DATA,
    PD_ROOM_F_N
};

typedef struct {
    pd_str_t     name;
    pd_int_t   (*handler)(pd_room_conn_t *rc, pd_json_field_t *f);
} pd_room_op_t;
#include "pd_register.h"
#include "pd_saver.h"


/* frames are read here first; a connection keeps bytes of its own only
 * while a frame is incomplete, so an idle connection holds no buffer */
#define PD_ROOM_RBUF  (64 * 1024)
/* bytes a connection may read in one loop turn (pd_room_read_handler) */
#define PD_ROOM_READ_TURN  4096

static u_char  pd_room_rbuf[PD_ROOM_RBUF];

pd_room_up_pt     pd_room_up_handler;
pd_room_state_pt  pd_room_state_handler;

const char  *pd_room_close_names[PD_ROOM_CLOSE_N] = {
    "client", "idle", "kick", "protocol", "slow", "shutdown", "error"
};

static pd_int_t pd_room_frames(pd_room_conn_t *rc, u_char *p, size_t len,
    size_t *used);
static pd_int_t pd_room_frame_in(pd_room_conn_t *rc, pd_ws_frame_t *f);
static pd_int_t pd_room_message(pd_room_conn_t *rc, u_char *p, size_t len);
static pd_int_t pd_room_bad_frame(pd_room_conn_t *rc, const char *error);
static pd_int_t pd_room_reply(pd_room_conn_t *rc, const char *op,
    const char *key, const u_char *value, size_t len);

/*
 * Room connections live in chunks of their own, out of the heap where
 * handshakes come and go: a burst of handshakes then leaves whole free
 * pages behind, not holes between long-lived connections.  Chunks are
 * kept for the worker's life, bounded by its peak of connections.
 */
#define PD_ROOM_CHUNK  PD_ROOM_CHUNK_SLOTS

static pd_room_conn_t  *pd_room_free_conns;

/* every chunk, in the order they were made: a broadcast walks them, so
 * it reads room connections side by side, not the worker's whole
 * connection table */
static pd_room_conn_t **pd_room_chunks;
static pd_uint_t        pd_room_nchunks;
static pd_uint_t        pd_room_chunks_cap;

pd_uint_t
pd_room_slots(void)
{
    return pd_room_nchunks * PD_ROOM_CHUNK;
}

pd_room_conn_t *
pd_room_slot(pd_uint_t i)
{
    return &pd_room_chunks[i / PD_ROOM_CHUNK][i % PD_ROOM_CHUNK];
}

pd_room_conn_t *
pd_room_conn_alloc(void)
{
    pd_room_conn_t  *rc, **chunks;
    pd_uint_t        i;

    if (pd_room_free_conns == NULL) {
        if (pd_room_nchunks == pd_room_chunks_cap) {
            i = pd_max(pd_room_chunks_cap * 2, 16);
            chunks = realloc(pd_room_chunks, i * sizeof(pd_room_conn_t *));
            if (chunks == NULL) {
                pd_log_error(PD_LOG_ALERT, pd_log_root, errno,
                             "realloc() of room chunks failed");
                return NULL;
            }
            pd_room_chunks = chunks;
            pd_room_chunks_cap = i;
        }

        rc = mmap(NULL, sizeof(pd_room_conn_t) * PD_ROOM_CHUNK,
                  PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (rc == MAP_FAILED) {
            pd_log_error(PD_LOG_ALERT, pd_log_root, errno,
                         "mmap() of room connections failed");
            return NULL;
        }

        pd_room_chunks[pd_room_nchunks++] = rc;

        for (i = 0; i < PD_ROOM_CHUNK; i++) {
            rc[i].connection = (pd_connection_t *) pd_room_free_conns;
            pd_room_free_conns = &rc[i];
        }
    }

    rc = pd_room_free_conns;
    pd_room_free_conns = (pd_room_conn_t *) rc->connection;

    pd_memzero(rc, sizeof(pd_room_conn_t));
    return rc;
}

/* uid must not be pd_room_uid(rc) itself: a long one is freed first */
pd_int_t
pd_room_uid_set(pd_room_conn_t *rc, const u_char *uid, size_t len)
{
    u_char  *p;

    if (rc->uid_len > PD_ROOM_UID_INLINE) {
        pd_free(rc->uid_.out);
        rc->uid_len = 0;
    }

    if (len <= PD_ROOM_UID_INLINE) {
        p = rc->uid_.in;

    } else {
        p = pd_alloc(len, pd_log_root);
        if (p == NULL) {
            return PD_ERROR;
        }

        rc->uid_.out = p;
    }

    pd_memcpy(p, uid, len);
    rc->uid_len = (uint8_t) len;

    return PD_OK;
}

void
pd_room_conn_free(pd_room_conn_t *rc)
{
    pd_uint_t  i;

    for (i = 0; i < rc->napps; i++) {
        pd_room_app_put(rc->apps[i]);
    }

    pd_free(rc->bcast_seq);

    if (rc->uid_len > PD_ROOM_UID_INLINE) {
        pd_free(rc->uid_.out);
        rc->uid_len = 0;
    }

    if (rc->moving || rc->moved || rc->adopted) {
        pd_room_handover_forget(rc);
    }

    pd_room_sid_forget(rc);

    rc->ws = 0;
    rc->taken = 0;
    rc->dirty = 0;
    rc->connection = (pd_connection_t *) pd_room_free_conns;
    pd_room_free_conns = rc;
}

/* the HTTP connection's memory goes; the room keeps what it needs */
void
pd_room_take_over(pd_room_conn_t *rc, pd_http_conn_t *hc, u_char *rest,
    size_t len)
{
    pd_connection_t  *c = rc->connection;
    size_t            used;

    if (len) {
        /* rare: frames pipelined behind the request; keep them now,
         * before the buffer holding them goes */
        len = pd_min(len, sizeof(pd_room_rbuf));
        pd_memcpy(pd_room_rbuf, rest, len);
    }

    /* the connection then needs no pool at all (a TLS one's state is its
     * own allocation, pd_ssl_create_connection), and no log of its own */
    pd_room_log_shared(c);

    pd_destroy_pool(hc->pool);
    pd_destroy_pool(c->pool);
    c->pool = NULL;

    rc->taken = 1;
    pd_room_stat(PD_ROOM_STAT_WS);

    pd_room_touch(rc);
    pd_event_add_timer(c->read, pd_room_idle(rc));

    /* what was kept for this uid goes first, before anything live */
    if (pd_room_load_first(rc) != PD_OK) {
        return;
    }

    if (len && pd_room_frames(rc, pd_room_rbuf, len, &used) != PD_OK) {
        return;
    }

    pd_room_flush(rc);
}

/*
 * A resumed session's new connection: its socket moves into the
 * session's connection slot (so the id, the register entry and the sid
 * stay), the welcome says resumed, the frames kept while it lingered
 * follow, then what the saver holds for it (the qos 1 messages not
 * acked, those the dropped socket never delivered included) and the
 * retained broadcasts past its cursors, as on a connect.
 */
pd_int_t
pd_room_take_back(pd_room_conn_t *rc, pd_http_conn_t *hc, uint32_t hb)
{
    pd_connection_t  *c = rc->connection, *nc = hc->connection;
    pd_room_conf_t   *rcf = rc->conf;
    pd_pool_t        *pool;
    pd_chain_t       *kept, **kept_last, **ins;
    pd_str_t         *key, sid;
    u_char            sidbuf[64];
    size_t            kept_bytes, rest, used;
    pd_uint_t         resumed;
    pd_int_t          rv;

    if (rcf->max_connections_per_ip && pd_register != NULL) {
        rv = pd_register->ip_acquire(&nc->sockaddr.sockaddr,
                                     (uint32_t) rcf->max_connections_per_ip);
        if (rv == PD_BUSY || rv == PD_ERROR) {
            return PD_BUSY;
        }

        rc->ip_counted = (rv == PD_OK);
    }

    resumed = !rc->linger_lost;

    /* the welcome goes before the kept frames: they step aside */
    kept = rc->out;
    kept_last = rc->out_last;
    kept_bytes = rc->out_bytes;
    rc->out = NULL;
    rc->out_last = &rc->out;
    rc->out_bytes = 0;

    key = pd_http_header_find(&hc->req, "Sec-WebSocket-Key");
    sid.data = sidbuf;
    sid.len = pd_room_session_id(rc, sidbuf, sizeof(sidbuf));
    rc->hb = (uint16_t) hb;

    rv = pd_room_send_welcome(rc, key, &sid, resumed);

    /* where the saver's messages go: before the kept frames */
    ins = rc->out_last;

    if (kept != NULL) {
        *rc->out_last = kept;
        rc->out_last = kept_last;
        rc->out_bytes += kept_bytes;
    }

    if (rv != PD_OK) {
        if (rc->ip_counted) {
            pd_register->ip_release(&nc->sockaddr.sockaddr);
            rc->ip_counted = 0;
        }

        return PD_ERROR;
    }

    /* bytes the client sent right after its request are frames */
    rest = (size_t) (hc->in->last - hc->in->pos) - hc->req.header_len;

    if (rest) {
        rest = pd_min(rest, sizeof(pd_room_rbuf));
        pd_memcpy(pd_room_rbuf, hc->in->pos + hc->req.header_len, rest);
    }

    pd_destroy_pool(hc->pool);
    hc->pool = NULL;

    /* its SSL state, if any, is not the pool's: it comes along below.
     * The pool holds nc's log, which the attach may still log with (a
     * failed epoll_ctl), so it goes once nc is gone */
    pool = nc->pool;
    nc->pool = NULL;

    pd_event_del_timer(c->read);
    pd_attach_connection(c, nc);
    pd_destroy_pool(pool);

    rc->lingering = 0;
    rc->linger_lost = 0;
    rc->close_sent = 0;

    if (rc->registered) {
        (void) pd_register->set_lingering(pd_room_uid(rc), rc->uid_len,
                                          pd_room_conn_id(rc), 0);
    }
    pd_room_stat_add(PD_ROOM_STAT_LINGERING, -1);
    pd_room_stat(PD_ROOM_STAT_WS);

    if (resumed) {
        pd_room_stat(PD_ROOM_STAT_RESUMED);
    }

    if (pd_add_conn(c) != PD_OK) {
        pd_room_close(rc, PD_ROOM_CLOSE_ERROR);
        return PD_OK;
    }

    pd_room_touch(rc);
    pd_event_add_timer(c->read, pd_room_idle(rc));

    pd_log_debug(pd_conn_log(c), "uid \"%.*s\" resumed its session",
                 (int) rc->uid_len, pd_room_uid(rc));

    /* a stored backlog being sent when it dropped starts over */
    rc->backlog = 0;
    pd_free(rc->resume);
    rc->resume = NULL;

    /*
     * The saver's messages not acked are those the dropped socket may not
     * have delivered, all sent before the kept frames: they go first, the
     * output held until every app's answer is in (one held count for the
     * loop below).  Without memory for that, they follow the kept frames,
     * as on a connect.
     */
    if (kept != NULL && pd_saver != NULL) {
        (void) pd_room_resume_start(rc, ins);
    }

    rv = pd_room_load(rc);

    if (rc->resuming) {
        pd_room_resume_release(rc, rc->resume->serial);
    }

    if (rv != PD_OK) {
        return PD_OK;
    }

    if (rest && pd_room_frames(rc, pd_room_rbuf, rest, &used) != PD_OK) {
        return PD_OK;
    }

    pd_room_flush(rc);

    /* frames the client sent meanwhile wait in the socket: edge-triggered
     * epoll tells of them only once more bytes come */
    pd_room_read_handler(c->read);

    return PD_OK;
}

/* a refused upgrade after the room took the connection: close quietly */
void
pd_room_drop_http(pd_http_conn_t *hc, pd_room_conn_t *rc)
{
    pd_destroy_pool(hc->pool);
    hc->pool = NULL;

    pd_room_close(rc, PD_ROOM_CLOSE_ERROR);
}

void
pd_room_read_handler(pd_event_t *ev)
{
    pd_connection_t  *c = ev->data;
    pd_room_conn_t   *rc = c->data;
    pd_buf_t         *in;
    ssize_t           n;
    pd_msec_t         quiet;
    size_t            used, size, left;
    u_char           *p;

    if (rc->lingering) {
        /* its linger ran out, or the worker leaves */
        ev->timedout = 0;
        pd_room_close(rc, c->close ? PD_ROOM_CLOSE_SHUTDOWN
                                   : PD_ROOM_CLOSE_IDLE);
        return;
    }

    if (c->close) {
        pd_room_close(rc, PD_ROOM_CLOSE_SHUTDOWN);
        return;
    }

    if (ev->timedout) {
        ev->timedout = 0;

        quiet = pd_room_quiet(rc);

        if (quiet < pd_room_idle(rc)) {
            /* activity since the timer was set: no heap work per frame,
             * only this re-arm once per idle period */
            pd_event_add_timer(c->read, pd_room_idle(rc) - quiet);
            return;
        }

        pd_log_error(PD_LOG_INFO, pd_conn_log(c), 0, "idle for %lu ms, closing",
                     (unsigned long) pd_room_idle(rc));
        pd_room_close(rc, PD_ROOM_CLOSE_IDLE);
        return;
    }

    /*
     * A connection reads at most PD_ROOM_READ_TURN bytes a turn and then
     * waits for the next one (pd_posted_next_events), so a client that
     * floods (5000 pings in one write: 5000 pongs) costs the worker's
     * other clients a slice, not the whole flood.
     */
    left = PD_ROOM_READ_TURN;

    for ( ;; ) {
        in = rc->in;

        if (in != NULL) {
            p = in->last;
            size = (size_t) (in->end - in->last);
        } else {
            p = pd_room_rbuf;
            size = sizeof(pd_room_rbuf);
        }

        size = pd_min(size, left);

        n = pd_conn_io(c)->recv(c, p, size);

        if (n == PD_AGAIN) {
            return;
        }

        if (n == PD_ERROR || n == 0) {
            pd_room_close(rc, rc->closing ? rc->close_reason
                                          : PD_ROOM_CLOSE_CLIENT);
            return;
        }

        pd_room_touch(rc);

        if (in != NULL) {
            in->last += n;
            p = in->pos;
            size = (size_t) (in->last - in->pos);
        } else {
            size = (size_t) n;
        }

        if (pd_room_frames(rc, p, size, &used) != PD_OK) {
            return;
        }

        if (!c->read->ready) {
            /* a short read drained the socket (pd_unix_recv) */
            return;
        }

        left -= (size_t) n;

        if (left == 0) {
            pd_post_event(c->read, &pd_posted_next_events);
            return;
        }
    }
}

/*
 * Runs every whole frame in p[0 .. len) and keeps the incomplete rest in
 * the connection's own buffer.  PD_OK, or PD_DONE when rc is gone.
 *
 * The parser lives here, for this read: between reads a connection keeps
 * only the opcode of the data message in progress (rc->ws_message); the
 * limits are the configuration's and the message's length so far is what
 * msg holds.  That length leaves out what msg never holds: a refused
 * binary message's fragments (each is a bad frame, and max_bad_frames
 * closes the connection) and data after our close frame.
 */
static pd_int_t
pd_room_frames(pd_room_conn_t *rc, u_char *p, size_t len, size_t *used)
{
    pd_connection_t  *c = rc->connection;
    pd_ws_parser_t    parser;
    pd_ws_frame_t     f;
    pd_buf_t         *in;
    size_t            consumed, cap, off;
    pd_int_t          rv;

    pd_ws_parser_init(&parser, rc->conf->max_frame, rc->conf->max_message);
    parser.message_opcode = rc->ws_message;
    parser.message_len = rc->msg ? (size_t) (rc->msg->last - rc->msg->pos)
                                 : 0;

    off = 0;

    while (off < len) {
        rv = pd_ws_parse(&parser, p + off, len - off, &f, &consumed);

        if (rv == PD_AGAIN) {
            break;
        }

        if (rv == PD_ERROR) {
            pd_log_error(PD_LOG_INFO, pd_conn_log(c), 0, "bad frame: %s",
                         parser.error);
            pd_room_close_with(rc, parser.close_code, parser.error,
                               PD_ROOM_CLOSE_PROTOCOL);
            return PD_DONE;
        }

        off += consumed;
        pd_room_stat(PD_ROOM_STAT_FRAMES_IN);

        /* before the frame runs: what it runs may hand rc over (its
         * state is sent then) or reset it (linger) */
        rc->ws_message = (uint8_t) parser.message_opcode;

        if (pd_room_frame_in(rc, &f) != PD_OK) {
            return PD_DONE;
        }
    }

    *used = off;
    in = rc->in;

    if (off == len) {
        if (in != NULL) {
            /* drained: an idle connection holds no buffer */
            pd_free(in);
            rc->in = NULL;
        }
        return PD_OK;
    }

    if (in == NULL) {
        /* the frame is bounded by max_frame, its header by 14 bytes */
        cap = rc->conf->max_frame + 14;

        in = pd_alloc(sizeof(pd_buf_t) + cap, c->log);
        if (in == NULL) {
            pd_room_close(rc, PD_ROOM_CLOSE_ERROR);
            return PD_DONE;
        }

        pd_memzero(in, sizeof(pd_buf_t));
        in->start = (u_char *) (in + 1);
        in->end = in->start + cap;
        in->pos = in->start;
        in->last = pd_cpymem(in->start, p + off, len - off);
        rc->in = in;
        return PD_OK;
    }

    /* keep the partial frame at the start of the connection's buffer */
    memmove(in->start, p + off, len - off);
    in->pos = in->start;
    in->last = in->start + (len - off);

    return PD_OK;
}

static pd_int_t
pd_room_frame_in(pd_room_conn_t *rc, pd_ws_frame_t *f)
{
    pd_connection_t  *c = rc->connection;
    pd_buf_t         *m;
    pd_int_t          rv;

    switch (f->opcode) {

    case PD_WS_PING:
        rv = pd_room_send_pong(rc, f->payload, f->payload_len);
        return rv == PD_ERROR ? PD_DONE : PD_OK;

    case PD_WS_PONG:
        return PD_OK;

    case PD_WS_CLOSE:
        if (rc->close_sent) {
            /* the answer to ours: done */
            pd_room_close(rc, rc->close_reason);
            return PD_DONE;
        }

        pd_room_close_with(rc, f->close_code == PD_WS_CLOSE_NO_STATUS
                               ? PD_WS_CLOSE_NORMAL : f->close_code,
                           NULL, PD_ROOM_CLOSE_CLIENT);
        return PD_DONE;
    }

    if (rc->close_sent) {
        /* data after our close frame is read and dropped */
        return PD_OK;
    }

    if (f->message_opcode == PD_WS_BINARY) {
        return pd_room_bad_frame(rc, "binary frames are not supported");
    }

    if (pd_utf8_validate(&rc->utf8, f->payload, f->payload_len) != PD_OK
        || (f->fin && pd_utf8_complete(&rc->utf8) != PD_OK))
    {
        pd_room_close_with(rc, PD_WS_CLOSE_INVALID_DATA,
                           "text is not UTF-8", PD_ROOM_CLOSE_PROTOCOL);
        return PD_DONE;
    }

    if (f->fin && rc->msg == NULL) {
        pd_utf8_init(&rc->utf8);
        return pd_room_message(rc, f->payload, f->payload_len);
    }

    /* a fragment: join it; max_message bounds the buffer */
    m = rc->msg;

    if (m == NULL) {
        m = pd_alloc(sizeof(pd_buf_t) + rc->conf->max_message, c->log);
        if (m == NULL) {
            pd_room_close(rc, PD_ROOM_CLOSE_ERROR);
            return PD_DONE;
        }

        pd_memzero(m, sizeof(pd_buf_t));
        m->start = (u_char *) (m + 1);
        m->pos = m->start;
        m->last = m->start;
        m->end = m->start + rc->conf->max_message;
        rc->msg = m;
    }

    if ((size_t) (m->end - m->last) < f->payload_len) {
        pd_room_close_with(rc, PD_WS_CLOSE_TOO_BIG, "message too big",
                           PD_ROOM_CLOSE_PROTOCOL);
        return PD_DONE;
    }

    m->last = pd_cpymem(m->last, f->payload, f->payload_len);

    if (!f->fin) {
        return PD_OK;
    }

    pd_utf8_init(&rc->utf8);
    rv = pd_room_message(rc, m->pos, (size_t) (m->last - m->pos));

    if (rv == PD_OK) {
        pd_free(m);
        rc->msg = NULL;
    }

    return rv;
}

static pd_int_t
pd_room_bad_frame(pd_room_conn_t *rc, const char *error)
{
    if (++rc->bad_frames > rc->conf->max_bad_frames) {
        pd_room_close_with(rc, PD_WS_CLOSE_POLICY, "too many bad frames",
                           PD_ROOM_CLOSE_PROTOCOL);
        return PD_DONE;
    }

    return pd_room_reply(rc, "error", "error", (u_char *) error,
                         strlen(error));
}

/* {"op":op,key:value} with value escaped as a JSON string */
static pd_int_t
pd_room_reply(pd_room_conn_t *rc, const char *op, const char *key,
    const u_char *value, size_t len)
{
    /* room for a 256-byte kick reason with every byte escaped \u00XX */
    u_char   buf[64 + 6 * 256 + 2], *p, *last = buf + sizeof(buf);

    p = pd_slprintf(buf, last, "{\"op\":\"%s\",\"%s\":", op, key);
    p = pd_json_escape(p, last - 1, value, len);

    if (p == NULL) {
        pd_room_close(rc, PD_ROOM_CLOSE_ERROR);
        return PD_DONE;
    }

    *p++ = '}';

    return pd_room_send_text(rc, buf, (size_t) (p - buf)) == PD_ERROR
           ? PD_DONE : PD_OK;
}

static pd_int_t
pd_room_sync_apps(pd_room_conn_t *rc)
{
    if (pd_register == NULL || !rc->registered) {
        return PD_OK;
    }

    u_char     apps[PD_APPS_MAX][PD_APP_MAX + 1];
    pd_uint_t  i;

    for (i = 0; i < rc->napps; i++) {
        pd_memcpy(apps[i], pd_room_app(rc, i), PD_APP_MAX + 1);
    }

    return pd_register->set_apps(pd_room_uid(rc), rc->uid_len,
                                 pd_room_conn_id(rc), apps, rc->napps);
}

static pd_int_t
pd_room_bind(pd_room_conn_t *rc, pd_json_val_t *v, pd_uint_t bind)
{
    u_char     buf[PD_APP_MAX + 1];
    char      *app = (char *) buf;
    pd_str_t   name;
    pd_uint_t  i;

    if (v->type != PD_JSON_STRING) {
        return pd_room_bad_frame(rc, "\"app\" must be a string");
    }

    name.data = buf;

    if (pd_json_string(v, buf, sizeof(buf), &name.len) != PD_OK
        || pd_token_valid_name(&name, PD_APP_MAX) != PD_OK)
    {
        return pd_room_bad_frame(rc, "invalid app name");
    }

    for (i = 0; i < rc->napps; i++) {
        if (strcmp((char *) pd_room_app(rc, i), app) == 0) {
            break;
        }
    }

    if (bind) {
        if (i < rc->napps) {
            return PD_OK;
        }

        if (!pd_room_app_allowed(rc->conf, name.data, name.len)) {
            return pd_room_bad_frame(rc, "unknown app");
        }

        if (rc->napps >= (pd_uint_t) rc->conf->max_apps) {
            return pd_room_bad_frame(rc, "too many apps");
        }

        rc->apps[rc->napps] = pd_room_app_get(name.data, name.len);
        if (rc->apps[rc->napps] == 0) {
            return pd_room_bad_frame(rc, "too many distinct apps on this "
                                     "worker");
        }
        (void) pd_room_bseq_set(rc, rc->napps, 0);
        rc->napps++;

    } else {
        if (i == rc->napps) {
            return PD_OK;
        }

        pd_room_save_cursors(rc);

        if (pd_room_state_handler) {
            pd_room_state_handler(rc, NULL, (pd_int_t) i, 0);
        }

        /* the last app takes the freed place, its backlog state too */
        pd_room_app_put(rc->apps[i]);
        rc->napps--;
        rc->backlog &= (uint8_t) ~(1 << i);

        if (i != rc->napps) {
            rc->apps[i] = rc->apps[rc->napps];
            (void) pd_room_bseq_set(rc, i, pd_room_bseq(rc, rc->napps));

            if (rc->backlog & (1 << rc->napps)) {
                rc->backlog &= (uint8_t) ~(1 << rc->napps);
                rc->backlog |= (uint8_t) (1 << i);
                pd_memcpy(rc->resume->cursor[i],
                          rc->resume->cursor[rc->napps],
                          sizeof(rc->resume->cursor[i]));
            }
        }
    }

    if (pd_room_sync_apps(rc) != PD_OK) {
        pd_log_error(PD_LOG_WARN, pd_conn_log(rc->connection), 0,
                     "register: apps of uid \"%.*s\" not updated",
                     (int) rc->uid_len, pd_room_uid(rc));

        if (bind) {
            /* not bound where pushes look: undone, and the client told */
            rc->napps--;
            pd_room_app_put(rc->apps[rc->napps]);

            return pd_room_reply(rc, "error", "error",
                                 (u_char *) "app not bound: the register's "
                                 "app table is full",
                                 sizeof("app not bound: the register's "
                                        "app table is full") - 1);
        }
    }

    if (bind && pd_room_state_handler) {
        pd_room_state_handler(rc, NULL, (pd_int_t) rc->napps - 1, 1);
    }

    if (bind && pd_room_load_app(rc, rc->napps - 1) != PD_OK) {
        return PD_DONE;
    }

    return PD_OK;
}


static pd_int_t
pd_room_ack_op(pd_room_conn_t *rc, pd_json_val_t *ids)
{
    u_char          buf[64][PD_MSG_ID_SIZE];
    const char     *list[64];
    pd_json_val_t   e;
    const u_char   *pos = NULL;
    pd_uint_t       n, total;
    size_t          len;

    n = 0;
    total = 0;

    while (pd_json_array_next(ids, &pos, &e) == PD_OK) {
        if (++total > pd_nelems(list)) {
            break;
        }

        if (e.type != PD_JSON_STRING) {
            return pd_room_bad_frame(rc, "\"ids\" must hold strings");
        }

        if (pd_json_string(&e, buf[n], PD_MSG_ID_SIZE, &len) == PD_OK) {
            list[n] = (char *) buf[n];
            n++;
        }
    }

    if (total == 0 || total > pd_nelems(list)) {
        return pd_room_bad_frame(rc, "\"ids\" must be an array of 1 to 64 "
                                 "message ids");
    }

    return pd_room_ack(rc, list, n);
}

static pd_int_t
pd_room_op_ack(pd_room_conn_t *rc, pd_json_field_t *f)
{
    return pd_room_ack_op(rc, &f[PD_ROOM_F_IDS].val);
}

static pd_int_t
pd_room_op_ping(pd_room_conn_t *rc, pd_json_field_t *f)
{
    (void) f;

    return pd_room_send_text(rc, (u_char *) "{\"op\":\"pong\"}",
                             sizeof("{\"op\":\"pong\"}") - 1)
           == PD_ERROR ? PD_DONE : PD_OK;
}

static pd_int_t
pd_room_op_bind(pd_room_conn_t *rc, pd_json_field_t *f)
{
    return pd_room_bind(rc, &f[PD_ROOM_F_APP].val, 1);
}

static pd_int_t
pd_room_op_unbind(pd_room_conn_t *rc, pd_json_field_t *f)
{
    return pd_room_bind(rc, &f[PD_ROOM_F_APP].val, 0);
}

static pd_int_t
pd_room_op_up(pd_room_conn_t *rc, pd_json_field_t *f)
{
    pd_room_up_t  up;

    /* uplink belongs to the coordinator */
    if (pd_room_up_handler == NULL) {
        return pd_room_bad_frame(rc, "op \"up\" is not enabled");
    }

    up.id = f[PD_ROOM_F_ID].val;
    up.app = f[PD_ROOM_F_APP].val;
    up.type = f[PD_ROOM_F_TYPE].val;
    up.data = f[PD_ROOM_F_DATA].val;

    return pd_room_up_handler(rc, &up);
}

/* the client's ops: a new op is one row and its handler */
static pd_room_op_t  pd_room_ops[] = {
    { pd_string("ack"), pd_room_op_ack },
    { pd_string("ping"), pd_room_op_ping },
    { pd_string("bind"), pd_room_op_bind },
    { pd_string("unbind"), pd_room_op_unbind },
    { pd_string("up"), pd_room_op_up },
    { pd_null_string, NULL }
};

/* one text message: a JSON object with an "op" */
static pd_int_t
pd_room_message(pd_room_conn_t *rc, u_char *p, size_t len)
{
    pd_json_field_t   f[PD_ROOM_F_N] = { { "op", { 0 } }, { "ids", { 0 } },
                                         { "app", { 0 } }, { "id", { 0 } },
                                         { "type", { 0 } },
                                         { "data", { 0 } } };
    pd_json_err_t     jerr;
    pd_room_op_t     *o;
    const u_char     *op;
    size_t            n;
    char              err[96];

    if (pd_json_object(p, len, f, PD_ROOM_F_N, &jerr) != PD_OK) {
        return pd_room_bad_frame(rc, "a frame must hold one JSON object");
    }

    if (f[PD_ROOM_F_OP].val.type != PD_JSON_STRING) {
        return pd_room_bad_frame(rc, "\"op\" must be a string");
    }

    /* ops are plain words: compared as written, escapes never match */
    op = f[PD_ROOM_F_OP].val.start + 1;
    n = (size_t) (f[PD_ROOM_F_OP].val.end - f[PD_ROOM_F_OP].val.start) - 2;

    for (o = pd_room_ops; o->handler != NULL; o++) {
        if (o->name.len == n && memcmp(o->name.data, op, n) == 0) {
            return o->handler(rc, f);
        }
    }

    /* at most 32 bytes of it, cut before a character, not inside one */
    if (n > 32) {
        n = 32;
        while (n > 0 && (op[n] & 0xc0) == 0x80) {
            n--;
        }
    }

    (void) snprintf(err, sizeof(err), "unknown op \"%.*s\"", (int) n, op);
    return pd_room_bad_frame(rc, err);
}

/* queues our close frame; the connection goes once it is out */
void
pd_room_close_with(pd_room_conn_t *rc, pd_uint_t code, const char *why,
    pd_uint_t reason)
{
    pd_shbuf_t  *sb;
    u_char       payload[PD_WS_MAX_CONTROL];
    size_t       n;
    pd_int_t     rv;

    if (rc->lingering) {
        /* no socket to say it on: the session ends now */
        pd_room_close(rc, reason);
        return;
    }

    if (rc->close_sent) {
        return;
    }

    n = pd_ws_close_payload(payload, code, why);

    sb = pd_room_frame(PD_WS_CLOSE, payload, n);
    if (sb == NULL) {
        pd_room_close(rc, reason);
        return;
    }

    rv = pd_room_send_shared(rc, sb);
    pd_shbuf_unref(sb);

    if (rv == PD_ERROR) {
        /* closed already: the queue was over its bound */
        return;
    }

    rc->close_sent = 1;
    rc->closing = 1;
    rc->close_reason = reason;

    /* the backstop if the peer never reads or answers */
    pd_event_add_timer(rc->connection->write, 5000);
}

void
pd_room_close(pd_room_conn_t *rc, pd_uint_t reason)
{
    pd_connection_t  *c = rc->connection;
    pd_pool_t        *pool;
    pd_uint_t         lingered = rc->lingering;

    if (rc->moving || rc->moved) {
        /* its session lives on in the worker it was handed to */
        pd_room_handover_drop(rc);
        return;
    }

    if (lingered) {
        /* the end of a lingering session: its socket is gone already */
        rc->lingering = 0;
        pd_room_stat_add(PD_ROOM_STAT_LINGERING, -1);

    } else if (pd_room_linger_start(rc, reason) == PD_OK) {
        return;
    }

    pool = c->pool;

    /* before the register forgets the connection's device */
    if (rc->taken && pd_room_state_handler) {
        pd_room_state_handler(rc, NULL, -1, 0);
    }

    if (rc->registered) {
        (void) pd_register->remove(pd_room_uid(rc), rc->uid_len,
                                   pd_room_conn_id(rc));
        rc->registered = 0;
    }

    if (rc->taken) {
        pd_room_save_cursors(rc);
    }

    if (rc->ip_counted) {
        pd_register->ip_release(&c->sockaddr.sockaddr);
        rc->ip_counted = 0;
    }

    if (rc->taken) {
        rc->taken = 0;

        if (!lingered) {
            pd_room_stat_add(PD_ROOM_STAT_WS, -1);
        }
    }

    /* a lingering session's socket was counted when it went */
    if (reason < PD_ROOM_CLOSE_N && !lingered) {
        pd_room_stat(PD_ROOM_STAT_CLOSES + reason);
    }

    pd_log_debug(pd_conn_log(c), "closed: %s", pd_room_close_names[reason]);

    pd_room_out_free(rc);

    if (c->ssl != NULL) {
        pd_ssl_shutdown(c);
    }

    if (lingered) {
        pd_release_connection(c, 0);

    } else {
        pd_close_connection(c);
    }

    if (pool != NULL) {
        pd_destroy_pool(pool);
    }

    pd_free(rc->in);
    pd_free(rc->msg);
    pd_free(rc->resume);
    pd_room_conn_free(rc);
}

void
pd_room_kick(pd_room_conn_t *rc, const u_char *reason, size_t len)
{
    if (pd_room_reply(rc, "kick", "reason", reason ? reason
                      : (const u_char *) "", reason ? len : 0)
        == PD_OK)
    {
        pd_room_close_with(rc, PD_WS_CLOSE_POLICY, "kicked",
                           PD_ROOM_CLOSE_KICK);
    }
}

/* a register conn id back to the connection, if it still lives here */
pd_room_conn_t *
pd_room_find(uint64_t id)
{
    pd_cycle_t       *cycle = (pd_cycle_t *) pd_cycle;
    pd_connection_t  *c;
    uint64_t          index;

    index = id >> 32;

    /* a slot past the top was never used: it has no events yet */
    if (index >= cycle->connection_top) {
        return NULL;
    }

    c = &cycle->connections[index];

    /* a lingering session's slot has no fd, but is not free */
    if (c->destroyed || (c->number & 0xffffffff) != (id & 0xffffffff)
        || c->read->handler != pd_room_read_handler)
    {
        return NULL;
    }

    return c->data;
}

/* the reconnect of a retiring worker's client, at a random moment of
 * the window so that its clients do not all come back at once */
void
pd_room_send_away(pd_room_conn_t *rc, pd_msec_t window)
{
    u_char  json[64], *p;

    p = pd_slprintf(json, json + sizeof(json),
                    "{\"op\":\"reconnect\",\"after_ms\":%lu}",
                    (unsigned long) ((pd_msec_t) random() % pd_max(window, 1)));

    if (pd_room_send_text(rc, json, (size_t) (p - json)) == PD_OK) {
        pd_room_close_with(rc, PD_WS_CLOSE_GOING_AWAY, "server restart",
                           PD_ROOM_CLOSE_SHUTDOWN);
    }
}

/*
 * A retiring worker: its plain clients go to the next generation with
 * their sessions when there is one (a reload); otherwise (a stop, TLS)
 * they are sent away, spread over the window.
 */
void
pd_room_retire(pd_cycle_t *cycle)
{
    pd_room_conf_t  *rcf;
    pd_room_conn_t  *rc;
    pd_uint_t        i;

    if (pd_room_handover_begin(cycle) == PD_OK) {
        return;
    }

    rcf = pd_get_conf(cycle, pd_room_module);

    for (i = 0; i < pd_room_slots(); i++) {
        rc = pd_room_slot(i);

        if (!rc->taken) {
            continue;
        }

        if (rc->lingering) {
            /* this worker leaves: its sessions with it */
            pd_room_close(rc, PD_ROOM_CLOSE_SHUTDOWN);
            continue;
        }

        pd_room_send_away(rc, rcf->reconnect_window);
    }
}

/* Redis lost its data: this node's connections are announced again, as
 * the node's own memory zone (which decides) has them */
static void
pd_room_resync_found(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n)
{
    uint64_t   id = *(uint64_t *) data;
    pd_uint_t  i;

    if (rc != PD_OK) {
        return;
    }

    for (i = 0; i < n; i++) {
        if (info[i].conn == id && info[i].pid == (int32_t) pd_pid) {
            pd_register_redis_announce(&info[i]);
        }
    }
}

/* a cluster register server (re)connected: our entries again */
void
pd_room_resync(pd_redis_t *r)
{
    pd_room_conn_t  *rc;
    pd_uint_t        i;
    uint64_t         id;

    (void) r;

    for (i = 0; i < pd_room_slots(); i++) {
        rc = pd_room_slot(i);

        if (rc->taken && rc->registered) {
            /* the memory backend answers before it returns */
            id = pd_room_conn_id(rc);
            (void) pd_register_memory_backend.lookup(pd_room_uid(rc),
                                                     rc->uid_len,
                                                     pd_room_resync_found,
                                                     &id);
        }
    }
}

static void
pd_room_channel_kick(pd_cycle_t *cycle, pd_channel_msg_t *msg, u_char *data)
{
    pd_room_conn_t  *rc;

    (void) cycle;

    rc = pd_room_find(msg->arg);
    if (rc == NULL) {
        return;
    }

    if (rc->moving || rc->moved) {
        /* it lives in another worker now */
        (void) pd_room_handover_kick(rc, data, msg->len);
        return;
    }

    pd_room_kick(rc, data, msg->len);
}

pd_int_t
pd_room_init_channel(pd_cycle_t *cycle)
{
    (void) cycle;

    pd_channel_set_handler(PD_CMD_ROOM_KICK, pd_room_channel_kick);
    pd_room_linger_init();
    pd_room_handover_init();

    return pd_register_on_connect(pd_room_resync);
}
