/*
 * pd_room_out.c: the output side of room connections.  A frame is built
 * once into a refcounted block; each connection queues a link pointing at
 * it.  Writes are posted so that everything queued on a connection in one
 * loop turn leaves in one writev()/SSL_write().  The queue is bounded by
 * room.output_limit: past it the connection is a slow consumer and is
 * closed (its stored messages stay stored), never buffered without end.
 */

#include "pd_core.h"
#include "pd_room.h"

#define PD_ROOM_LINKS_CHUNK  256

/*
 * Recycled links, a stack of pointers; chunks are owned by the worker
 * for its lifetime, and the stack has room for every link of them.  A
 * list threaded through the free links made each take a dependent load
 * of a link no longer in the cache (a broadcast to 10,000 connections
 * takes 10,000 in a row): a tenth of the fan-out's user CPU.  Popped
 * from the dense array, the link is only written, and the next pop does
 * not wait for it.
 */
_Static_assert(sizeof(pd_room_link_t) == 64, "a link is one cache line");

static pd_room_link_t **pd_room_free_links;
static pd_uint_t        pd_room_nfree;
static pd_uint_t        pd_room_nlinks;     /* allocated, free or not */

/*
 * Connections with frames queued this turn, flushed at its end by one
 * posted event.  A list of their own rather than each connection's
 * posted write event: a broadcast to 10,000 connections would touch
 * 10,000 event structures twice (post, run) besides the connections,
 * and that was the larger part of its user CPU (cache misses).  Grows
 * to the most connections written in one turn, kept for the worker's
 * life.
 */
static pd_room_conn_t **pd_room_dirty;
static pd_uint_t        pd_room_ndirty;
static pd_uint_t        pd_room_dirty_cap;
static pd_event_t       pd_room_flush_ev;

/* called when a connection's queue drains while it has a backlog */
static pd_room_drain_pt  pd_room_drained;

void
pd_room_out_on_drain(pd_room_drain_pt handler)
{
    pd_room_drained = handler;
}

/*
 * Asks for what the flush of a connection further down the dirty list
 * reads, while the ones before it are written: the room connection
 * itself 2 x PD_ROOM_AHEAD places on, then, PD_ROOM_AHEAD on (its
 * fields are in by then), its first link and its socket's connection
 * slot.  With thousands of connections flushed in a turn each of these
 * is a cache miss, and waited for one after another they were most of
 * the flush's user CPU.  A connection cleared meanwhile only wastes a
 * prefetch, which never faults.
 */
static void
pd_room_flush_prefetch(pd_uint_t i)
{
    pd_room_conn_t  *rc;

    if (i + 2 * PD_ROOM_AHEAD < pd_room_ndirty) {
        __builtin_prefetch(pd_room_dirty[i + 2 * PD_ROOM_AHEAD], 1);
    }

    if (i + PD_ROOM_AHEAD < pd_room_ndirty) {
        rc = pd_room_dirty[i + PD_ROOM_AHEAD];
        __builtin_prefetch(rc->out, 1);
        __builtin_prefetch(rc->connection, 0);
    }
}

static void
pd_room_flush_dirty(pd_event_t *ev)
{
    pd_room_conn_t  *rc;
    pd_uint_t        i;

    (void) ev;

    /* a flush may queue more (the next slice of a backlog): the bound
     * is read again each time */
    for (i = 0; i < pd_room_ndirty; i++) {
        pd_room_flush_prefetch(i);

        rc = pd_room_dirty[i];

        /* cleared when it was closed (its slot may be in use again) */
        if (!rc->dirty) {
            continue;
        }

        rc->dirty = 0;
        pd_room_flush(rc);
    }

    pd_room_ndirty = 0;
}

/* flushed at the end of the loop turn, with the others */
void
pd_room_flush_later(pd_room_conn_t *rc)
{
    pd_room_conn_t  **d;
    pd_uint_t         n;

    if (rc->dirty) {
        return;
    }

    if (pd_room_ndirty == pd_room_dirty_cap) {
        n = pd_max(pd_room_dirty_cap * 2, 1024);
        d = realloc(pd_room_dirty, n * sizeof(pd_room_conn_t *));

        if (d == NULL) {
            /* the connection's own write event does it, at the same
             * place in the turn as the list would */
            pd_post_event(rc->connection->write, &pd_posted_last_events);
            return;
        }

        pd_room_dirty = d;
        pd_room_dirty_cap = n;
    }

    pd_room_dirty[pd_room_ndirty++] = rc;
    rc->dirty = 1;

    if (pd_room_flush_ev.handler == NULL) {
        pd_room_flush_ev.handler = pd_room_flush_dirty;
    }

    pd_post_event(&pd_room_flush_ev, &pd_posted_last_events);
}

static pd_room_link_t *
pd_room_link_get(void)
{
    pd_room_link_t   *l, **stack;
    pd_uint_t         i;

    if (pd_room_nfree == 0) {
        stack = realloc(pd_room_free_links,
                        (pd_room_nlinks + PD_ROOM_LINKS_CHUNK)
                        * sizeof(pd_room_link_t *));
        if (stack != NULL) {
            pd_room_free_links = stack;
        }

        /* a link on one cache line, not across two */
        if (stack == NULL
            || posix_memalign((void **) &l, 64,
                              sizeof(pd_room_link_t) * PD_ROOM_LINKS_CHUNK)
               != 0)
        {
            pd_log_error(PD_LOG_ALERT, pd_log_root, 0,
                         "no memory for %d more output links",
                         PD_ROOM_LINKS_CHUNK);
            return NULL;
        }

        pd_room_nlinks += PD_ROOM_LINKS_CHUNK;

        /* the first of the chunk is taken first */
        for (i = 0; i < PD_ROOM_LINKS_CHUNK; i++) {
            stack[i] = &l[PD_ROOM_LINKS_CHUNK - 1 - i];
        }

        pd_room_nfree = PD_ROOM_LINKS_CHUNK;
    }

    return pd_room_free_links[--pd_room_nfree];
}

static void
pd_room_link_put(pd_room_link_t *l)
{
    pd_shbuf_unref(l->buf.shared);
    l->buf.shared = NULL;

    /* never past pd_room_nlinks: each link was taken from here */
    pd_room_free_links[pd_room_nfree++] = l;
}

pd_shbuf_t *
pd_room_frame(pd_uint_t opcode, const u_char *payload, size_t len)
{
    pd_shbuf_t  *sb;
    u_char       hdr[PD_WS_MAX_HEADER];
    size_t       n;

    n = pd_ws_frame_header(hdr, opcode, len);

    sb = pd_shbuf_alloc(n + len);
    if (sb == NULL) {
        return NULL;
    }

    pd_memcpy(sb->data, hdr, n);
    if (len) {
        pd_memcpy(sb->data + n, payload, len);
    }

    return sb;
}

/* the link's buffer: all of sb, unsent, with a reference of its own */
static void
pd_room_link_set(pd_room_link_t *l, pd_shbuf_t *sb)
{
    pd_memzero(&l->buf, sizeof(pd_buf_t));
    l->buf.start = sb->data;
    l->buf.pos = sb->data;
    l->buf.last = sb->data + sb->len;
    l->buf.end = l->buf.last;
    l->buf.shared = pd_shbuf_ref(sb);
}

/*
 * Queues a reference to sb at *at (NULL: at the end).  PD_DECLINED when
 * the connection is closing, PD_ERROR when it was closed as a slow
 * consumer (rc is gone then).
 */
static pd_int_t
pd_room_queue(pd_room_conn_t *rc, pd_shbuf_t *sb, pd_chain_t ***at)
{
    pd_connection_t  *c = rc->connection;
    pd_room_link_t   *l;

    if (rc->close_sent) {
        return PD_DECLINED;
    }

    if (rc->lingering) {
        if (pd_room_linger_skip(rc, sb)) {
            return PD_DECLINED;
        }

    } else if (rc->out_bytes + sb->len > rc->conf->output_limit) {
        pd_log_error(PD_LOG_INFO, pd_conn_log(c), 0,
                     "slow consumer: %lu bytes queued, closing",
                     (unsigned long) rc->out_bytes);
        pd_room_close(rc, PD_ROOM_CLOSE_SLOW);
        return PD_ERROR;
    }

    l = pd_room_link_get();
    if (l == NULL) {
        pd_room_close(rc, PD_ROOM_CLOSE_ERROR);
        return PD_ERROR;
    }

    pd_room_link_set(l, sb);
    l->cl.buf = &l->buf;

    if (at == NULL || *at == rc->out_last) {
        l->cl.next = NULL;
        *rc->out_last = &l->cl;
        rc->out_last = &l->cl.next;

    } else {
        l->cl.next = **at;
        **at = &l->cl;
    }

    if (at != NULL) {
        *at = &l->cl.next;
    }

    rc->out_bytes += sb->len;
    pd_room_stat_add(PD_ROOM_STAT_QUEUED, sb->len);

    pd_room_stat(PD_ROOM_STAT_FRAMES_OUT);

    /* flushed at the end of the loop turn, with whatever else is queued;
     * a lingering session's wait for its resume */
    if (!rc->lingering) {
        pd_room_flush_later(rc);
    }

    return PD_OK;
}

pd_int_t
pd_room_send_shared(pd_room_conn_t *rc, pd_shbuf_t *sb)
{
    return pd_room_queue(rc, sb, NULL);
}

/* queues sb at *at, which then points past it: a resume's stored
 * messages go in before the frames kept while the session lingered */
pd_int_t
pd_room_send_shared_at(pd_room_conn_t *rc, pd_shbuf_t *sb, pd_chain_t ***at)
{
    return pd_room_queue(rc, sb, at);
}

pd_int_t
pd_room_send_text(pd_room_conn_t *rc, const u_char *json, size_t len)
{
    pd_shbuf_t  *sb;
    pd_int_t     rv;

    sb = pd_room_frame(PD_WS_TEXT, json, len);
    if (sb == NULL) {
        pd_room_close(rc, PD_ROOM_CLOSE_ERROR);
        return PD_ERROR;
    }

    rv = pd_room_send_shared(rc, sb);
    pd_shbuf_unref(sb);

    return rv;
}

/*
 * The link at the end of rc's queue when it is one whole pong and
 * nothing else (an adopted connection's pending output is one buffer of
 * several frames, which may begin with a pong), not begun (a partly sent
 * head stays as it is); else NULL.
 */
static pd_room_link_t *
pd_room_unsent_pong(pd_room_conn_t *rc)
{
    pd_room_link_t  *l;
    size_t           n;

    if (rc->out == NULL || rc->close_sent || rc->lingering) {
        return NULL;
    }

    l = (pd_room_link_t *) ((u_char *) rc->out_last
                            - offsetof(pd_chain_t, next));
    n = (size_t) (l->buf.end - l->buf.start);

    if (l->buf.pos != l->buf.start
        || n < 2
        || l->buf.start[0] != (0x80 | PD_WS_PONG)
        || n != 2 + (size_t) l->buf.start[1])
    {
        return NULL;
    }

    return l;
}

/*
 * The answer to a ping.  A pong still unsent at the end of the queue
 * answers an earlier ping, and RFC 6455 5.5.3 lets an endpoint answer
 * only the latest: the new pong takes its place.  A flood of pings then
 * costs a frame a loop turn, not a frame (and an iovec of a writev) each.
 */
pd_int_t
pd_room_send_pong(pd_room_conn_t *rc, const u_char *payload, size_t len)
{
    pd_room_link_t  *l;
    pd_shbuf_t      *sb;
    pd_int_t         rv;
    size_t           old;

    sb = pd_room_frame(PD_WS_PONG, payload, len);
    if (sb == NULL) {
        pd_room_close(rc, PD_ROOM_CLOSE_ERROR);
        return PD_ERROR;
    }

    l = pd_room_unsent_pong(rc);
    old = l ? (size_t) (l->buf.end - l->buf.start) : 0;

    /* no longer than the one it replaces: the output bound holds */
    if (l != NULL && sb->len <= old) {
        pd_shbuf_unref(l->buf.shared);
        pd_room_link_set(l, sb);

        rc->out_bytes -= old - sb->len;
        pd_room_stat_add(PD_ROOM_STAT_QUEUED, -(old - sb->len));
        rv = PD_OK;

    } else {
        rv = pd_room_queue(rc, sb, NULL);
    }

    pd_shbuf_unref(sb);

    return rv;
}

void
pd_room_write_handler(pd_event_t *ev)
{
    pd_connection_t  *c = ev->data;

    if (ev->timedout) {
        /* the close handshake did not complete in time */
        ev->timedout = 0;
        pd_room_close(c->data, PD_ROOM_CLOSE_ERROR);
        return;
    }

    pd_room_flush(c->data);
}

void
pd_room_flush(pd_room_conn_t *rc)
{
    pd_connection_t  *c = rc->connection;
    pd_chain_t       *cl, *next;
    size_t            n;

    if (rc->out == NULL || rc->lingering || rc->resuming || rc->moving) {
        return;
    }

    if (rc->moved) {
        /* what came here for it goes to the worker that has it */
        pd_room_handover_forward(rc);
        return;
    }

    if (rc->adopted && pd_room_handover_held(rc)) {
        /* what its old worker forwards goes first */
        return;
    }

    pd_room_stat(PD_ROOM_STAT_WRITES);

    cl = pd_conn_io(c)->send_chain(c, rc->out, 0);

    if (cl == PD_CHAIN_ERROR) {
        pd_room_close(rc, PD_ROOM_CLOSE_ERROR);
        return;
    }

    while (rc->out != cl) {
        next = rc->out->next;
        n = (size_t) (rc->out->buf->end - rc->out->buf->start);
        rc->out_bytes -= n;
        pd_room_stat_add(PD_ROOM_STAT_QUEUED, -n);

        if (rc->out->buf->shared->stamp) {
            pd_stats_latency(pd_current_msec - rc->out->buf->shared->stamp);
        }

        pd_room_link_put((pd_room_link_t *) rc->out);
        rc->out = next;
    }

    if (rc->out != NULL) {
        /* the head may be partly sent: it stays, as TLS requires */
        return;
    }

    rc->out_last = &rc->out;

    if (rc->backlog && !rc->closing && pd_room_drained != NULL) {
        pd_room_drained(rc);
        return;
    }

    if (rc->closing) {
        /* our close frame is out: let the peer answer, briefly */
        if (c->ssl == NULL) {
            (void) shutdown(c->fd, SHUT_WR);
        }
        pd_event_add_timer(c->write, 2000);
    }
}

void
pd_room_out_free(pd_room_conn_t *rc)
{
    pd_chain_t  *cl, *next;

    pd_room_stat_add(PD_ROOM_STAT_QUEUED, -rc->out_bytes);

    for (cl = rc->out; cl != NULL; cl = next) {
        next = cl->next;
        pd_room_link_put((pd_room_link_t *) cl);
    }

    rc->out = NULL;
    rc->out_last = &rc->out;
    rc->out_bytes = 0;
}

/* drops the queued frames drop() picks, keeps the others in order */
void
pd_room_out_drop(pd_room_conn_t *rc, pd_uint_t (*drop)(pd_buf_t *b))
{
    pd_chain_t  **pp, *cl;
    size_t        n;

    pp = &rc->out;

    while ((cl = *pp) != NULL) {
        if (drop(cl->buf)) {
            n = (size_t) (cl->buf->end - cl->buf->start);
            rc->out_bytes -= n;
            pd_room_stat_add(PD_ROOM_STAT_QUEUED, -(int64_t) n);
            *pp = cl->next;
            pd_room_link_put((pd_room_link_t *) cl);
            continue;
        }

        pp = &cl->next;
    }

    rc->out_last = pp;
}
