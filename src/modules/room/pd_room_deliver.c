/*
 * pd_room_deliver.c: messages to clients.  A message is framed once
 * (pd_room_msg_frame) and queued by reference on every connection it goes
 * to.  Other workers hand this one batches through the channel: one
 * frame and the ids of the connections it is for.  Broadcasts are paced:
 * each worker walks its connection array at its share of the rate.
 * Stored messages (qos 1) and retained broadcasts are loaded on connect
 * and on bind, before anything live for the same app.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_room_wire.h"
#include "pd_register.h"
#include "pd_saver.h"

#define PD_ROOM_BCAST_TICK   10      /* ms between pacing steps */

typedef struct {
    pd_shbuf_t      *frame;
    uint64_t         seq;
    pd_uint_t        rate;           /* connections per second, this worker */
    pd_uint_t        next;           /* index into the connection array */
    double           budget;
    pd_msec_t        last;
    pd_timer_t       timer;
    uint8_t          app_len;
    u_char           app[PD_APP_MAX + 1];
    unsigned         retained:1;     /* has a ttl: move the users' cursors */
    pd_queue_t       queue;          /* in pd_room_walks */
} pd_room_bcast_t;

static pd_uint_t  pd_room_nbcasts;

/* the walks under way, and the ids of the last broadcasts started here:
 * a connection handed to another worker takes along which of them it
 * was walked past (pd_room_bcast_passed) */
static pd_queue_t  pd_room_walks;
static uint64_t    pd_room_recent[PD_ROOM_SEEN_MAX];
static pd_uint_t   pd_room_nrecent;


/* this node's id of message seq (pd_msg_id), no NUL */
u_char *
pd_room_msg_id(u_char *p, uint64_t seq)
{
    pd_core_conf_t  *ccf;

    ccf = pd_get_conf(pd_cycle, pd_core_module);

    return pd_msg_id(p, &ccf->node_id, seq);
}

pd_shbuf_t *
pd_room_msg_frame(uint64_t seq, pd_str_t *app, pd_uint_t qos,
    const u_char *data, size_t len, pd_msec_t stamp)
{
    pd_str_t  id;
    u_char    buf[PD_MSG_ID_LEN];

    id.data = buf;
    id.len = (size_t) (pd_room_msg_id(buf, seq) - buf);

    return pd_room_msg_frame_id(&id, app, qos, data, len, stamp);
}

/* the same, for an id made elsewhere (another node's message); the id
 * and the app are names (no JSON escapes), data is JSON already */
pd_shbuf_t *
pd_room_msg_frame_id(pd_str_t *id, pd_str_t *app, pd_uint_t qos,
    const u_char *data, size_t len, pd_msec_t stamp)
{
    pd_shbuf_t      *sb;
    u_char           head[200], *h, hdr[PD_WS_MAX_HEADER], *p;
    size_t           hl, n, total;

    /* no printf: this runs once per message */
    h = pd_cpymem(head, "{\"op\":\"msg\",\"id\":\"",
                  sizeof("{\"op\":\"msg\",\"id\":\"") - 1);
    h = pd_cpymem(h, id->data, pd_min(id->len, 80));
    h = pd_cpymem(h, "\",\"app\":\"", sizeof("\",\"app\":\"") - 1);
    h = pd_cpymem(h, app->data, pd_min(app->len, PD_APP_MAX));
    h = pd_cpymem(h, "\",\"qos\":", sizeof("\",\"qos\":") - 1);
    *h++ = qos ? '1' : '0';
    h = pd_cpymem(h, ",\"data\":", sizeof(",\"data\":") - 1);
    hl = (size_t) (h - head);

    total = hl + len + 1;
    n = pd_ws_frame_header(hdr, PD_WS_TEXT, total);

    sb = pd_shbuf_alloc(n + total);
    if (sb == NULL) {
        return NULL;
    }

    p = pd_cpymem(sb->data, hdr, n);
    p = pd_cpymem(p, head, hl);
    p = pd_cpymem(p, data, len);
    *p = '}';

    sb->stamp = stamp;
    return sb;
}

/* a connection's cursor of retained broadcasts: memory only once it
 * has seen one (most connections never do) */
pd_int_t
pd_room_bseq_set(pd_room_conn_t *rc, pd_uint_t i, uint64_t seq)
{
    if (rc->bcast_seq == NULL) {
        if (seq == 0) {
            return PD_OK;
        }

        rc->bcast_seq = pd_calloc(PD_APPS_MAX * sizeof(uint64_t),
                                  rc->connection->log);
        if (rc->bcast_seq == NULL) {
            return PD_ERROR;
        }
    }

    rc->bcast_seq[i] = seq;
    return PD_OK;
}

/* queues a message frame; PD_ERROR when rc was closed (slow consumer) */
pd_int_t
pd_room_deliver(pd_room_conn_t *rc, pd_shbuf_t *frame)
{
    pd_int_t  rv;

    rv = pd_room_send_shared(rc, frame);

    if (rv == PD_OK) {
        pd_room_stat_add(PD_ROOM_STAT_DELIVERED, 1);
    }

    return rv;
}

/* retained broadcasts: the zone's walk hands them out one by one */
typedef struct {
    pd_room_conn_t  *rc;
    pd_str_t        *app;
    uint64_t         last;
} pd_room_bload_t;

/* runs under the store's lock: frame, queue, nothing else */
static pd_int_t
pd_room_bload_one(void *data, uint64_t seq, const u_char *payload,
    size_t len, uint64_t expires)
{
    pd_room_bload_t  *ld = data;
    pd_shbuf_t       *sb;

    (void) expires;

    sb = pd_room_msg_frame(seq, ld->app, 0, payload, len, 0);

    /* never past the output bound from in here (rc is not closed under
     * the lock): the rest comes on the next connection */
    if (sb == NULL || ld->rc->out_bytes + sb->len
                      > ld->rc->conf->output_limit)
    {
        pd_shbuf_unref(sb);
        return PD_DONE;
    }

    (void) pd_room_send_shared(ld->rc, sb);
    pd_shbuf_unref(sb);

    ld->last = seq;
    pd_room_stat_add(PD_ROOM_STAT_BCAST_SENT, 1);

    return PD_OK;
}

/* the retained broadcasts of app i that rc has not seen */
static void
pd_room_load_bcasts(pd_room_conn_t *rc, pd_uint_t i)
{
    pd_room_bload_t  ld;
    pd_str_t         uid, app;
    uint64_t         after;

    uid.data = pd_room_uid(rc);
    uid.len = rc->uid_len;
    app.data = (u_char *) pd_room_app_name(rc->apps[i], &app.len);

    ld.rc = rc;
    ld.app = &app;
    ld.last = 0;
    after = pd_max(pd_saver_cursor_get(&uid, &app), pd_room_bseq(rc, i));

    (void) pd_saver_bcast_pending(&app, after, pd_room_bload_one, &ld);

    if (ld.last > pd_room_bseq(rc, i)) {
        (void) pd_room_bseq_set(rc, i, ld.last);
    }
}

/*
 * A fetch of stored messages in flight.  The saver may answer later (the
 * cluster store), so the connection is found again by its id; the
 * memory store answers before the fetch returns, under its lock.
 */
typedef struct {
    uint64_t         id;
    pd_uint_t        app_index;
    pd_uint_t        taken;
    pd_uint_t        resume;        /* the serial of the resume it is
                                     * of (rc->resuming), or 0 */
    u_char           app[PD_APP_MAX + 1];
} pd_room_fetch_t;

static pd_int_t
pd_room_resume_set(pd_room_conn_t *rc, pd_uint_t i, pd_str_t *cursor)
{
    size_t  n;

    if (rc->resume == NULL) {
        rc->resume = pd_calloc(sizeof(pd_room_resume_t), rc->connection->log);
        if (rc->resume == NULL) {
            return PD_ERROR;
        }
    }

    n = pd_min(cursor->len, sizeof(rc->resume->cursor[i]) - 1);
    pd_memcpy(rc->resume->cursor[i], cursor->data, n);
    rc->resume->cursor[i][n] = '\0';

    rc->backlog |= (uint8_t) (1 << i);
    return PD_OK;
}

/* the connection of a fetch, if it is still there and bound to its app */
static pd_room_conn_t *
pd_room_fetch_conn(pd_room_fetch_t *f)
{
    pd_room_conn_t  *rc;

    rc = pd_room_find(f->id);

    if (rc == NULL || f->app_index >= rc->napps
        || strcmp((char *) pd_room_app(rc, f->app_index), (char *) f->app)
           != 0)
    {
        return NULL;
    }

    return rc;
}

/*
 * Whether a frame queued from cl on is the message sb (the same id, app
 * and qos 1: the head of a message frame is ours, byte for byte).
 */
static pd_uint_t
pd_room_queued(pd_chain_t *cl, pd_shbuf_t *sb)
{
    size_t   hl, n;
    u_char  *p;

    /* the frame's head up to its data: the same in both */
    hl = (sb->data[1] & 0x7f) == 127 ? 10 : (sb->data[1] & 0x7f) == 126
         ? 4 : 2;
    p = memmem(sb->data + hl, pd_min(sb->len - hl, 256), ",\"data\":", 8);
    if (p == NULL) {
        return 0;
    }

    n = (size_t) (p - (sb->data + hl));

    for ( /* void */ ; cl != NULL; cl = cl->next) {
        u_char  *d = cl->buf->start;
        size_t   len = (size_t) (cl->buf->end - d);

        if (len < 2 || cl->buf->pos != d) {
            continue;
        }

        hl = (d[1] & 0x7f) == 127 ? 10 : (d[1] & 0x7f) == 126 ? 4 : 2;

        if (len > hl + n
            && memcmp(d + hl, p - n, n) == 0 && d[hl + n] == ',')
        {
            return 1;
        }
    }

    return 0;
}

/*
 * One stored message: framed and queued while the queue is within the
 * output bound; at the bound the fetch stops there, the message not
 * taken (the rest follows as the queue drains).  For a resume, it goes
 * before the frames kept while the session lingered (those were sent
 * later), unless one of them is this message already.
 */
static pd_int_t
pd_room_take(void *data, pd_saver_msg_t *m)
{
    pd_room_fetch_t  *f = data;
    pd_room_conn_t   *rc;
    pd_shbuf_t       *sb;
    pd_str_t          app;

    rc = pd_room_fetch_conn(f);
    if (rc == NULL) {
        /* gone or unbound: the messages stay stored for the next time */
        return PD_ABORT;
    }

    app.data = f->app;
    app.len = strlen((char *) f->app);

    sb = pd_room_msg_frame_id(&m->id, &app, 1, m->payload, m->len, 0);

    if (sb == NULL || rc->out_bytes + sb->len > rc->conf->output_limit) {
        pd_shbuf_unref(sb);
        return PD_DONE;
    }

    if (f->resume && rc->resuming && f->resume == rc->resume->serial) {
        if (pd_room_queued(*rc->resume->ins, sb)) {
            pd_shbuf_unref(sb);
            return PD_OK;
        }

        (void) pd_room_send_shared_at(rc, sb, &rc->resume->ins);

    } else {
        (void) pd_room_send_shared(rc, sb);
    }

    pd_shbuf_unref(sb);

    f->taken++;
    pd_room_stat_add(PD_ROOM_STAT_REDELIVERED, 1);

    return PD_OK;
}

static void
pd_room_fetched(void *data, pd_int_t rc_, pd_uint_t more, pd_str_t *cursor)
{
    pd_room_fetch_t  *f = data;
    pd_room_conn_t   *rc;
    pd_uint_t         i = f->app_index;

    rc = pd_room_fetch_conn(f);

    if (rc == NULL) {
        pd_free(f);
        return;
    }

    if (f->resume) {
        pd_room_resume_release(rc, f->resume);
    }

    if (rc_ != PD_OK) {
        pd_log_error(PD_LOG_WARN, pd_conn_log(rc->connection), 0,
                     "stored messages of \"%.*s\" not fetched; they come "
                     "on the next connection", (int) rc->uid_len,
                     pd_room_uid(rc));
        more = 0;
    }

    pd_free(f);

    if (more) {
        /* the rest when the queue drains (pd_room_load_more) */
        (void) pd_room_resume_set(rc, i, cursor);
        return;
    }

    /* the stored backlog is out: the retained broadcasts follow it */
    pd_room_load_bcasts(rc, i);
}

/*
 * Stored messages, then retained broadcasts, of one app of rc.  A backlog
 * larger than room.output_limit is sent up to the bound, and the rest in
 * slices each time the queue drains.
 */
pd_int_t
pd_room_load_app(pd_room_conn_t *rc, pd_uint_t i)
{
    pd_room_fetch_t  *f;
    pd_str_t          uid, app, after;

    if (pd_saver == NULL) {
        return PD_OK;
    }

    f = pd_calloc(sizeof(pd_room_fetch_t), rc->connection->log);
    if (f == NULL) {
        return PD_ERROR;
    }

    f->id = pd_room_conn_id(rc);
    f->app_index = i;
    pd_memcpy(f->app, pd_room_app(rc, i), PD_APP_MAX + 1);

    uid.data = pd_room_uid(rc);
    uid.len = rc->uid_len;
    app.data = (u_char *) pd_room_app_name(rc->apps[i], &app.len);

    after.data = (u_char *) "";
    after.len = 0;

    if (rc->backlog & (1 << i)) {
        after.data = rc->resume->cursor[i];
        after.len = strlen((char *) after.data);
    }

    /* in flight: a drained queue must not ask again meanwhile */
    rc->backlog &= (uint8_t) ~(1 << i);

    if (rc->resuming) {
        f->resume = rc->resume->serial;
        rc->resume->fetching++;
    }

    if (pd_saver_fetch(&uid, &app, &after, pd_room_take, pd_room_fetched, f)
        != PD_OK)
    {
        if (f->resume) {
            pd_room_resume_release(rc, f->resume);
        }

        pd_free(f);

        /* the store is out of reach: what it keeps comes next time */
        pd_room_load_bcasts(rc, i);
    }

    return PD_OK;
}

/* the output queue drained: the next slice of a stored backlog */
void
pd_room_load_more(pd_room_conn_t *rc)
{
    pd_uint_t  i;

    for (i = 0; i < rc->napps && rc->out == NULL; i++) {
        if (rc->backlog & (1 << i)) {
            (void) pd_room_load_app(rc, i);
        }
    }

    if (rc->backlog == 0 && rc->resume != NULL) {
        pd_free(rc->resume);
        rc->resume = NULL;
    }
}

/*
 * A resumed session's output waits while its fetches are in flight, so
 * that what the dropped socket had not delivered (the saver's) goes
 * before what was kept while it lingered, in the order sent.  The count
 * is held across pd_room_load: the memory store answers inside the
 * fetch, and the first app's answer must not end the wait of the next.
 */
pd_int_t
pd_room_resume_start(pd_room_conn_t *rc, pd_chain_t **ins)
{
    static pd_uint_t  serial;

    pd_free(rc->resume);
    rc->backlog = 0;

    rc->resume = pd_calloc(sizeof(pd_room_resume_t), rc->connection->log);
    if (rc->resume == NULL) {
        return PD_ERROR;
    }

    rc->resume->ins = ins;
    rc->resume->fetching = 1;
    rc->resume->serial = ++serial;
    rc->resuming = 1;

    return PD_OK;
}

void
pd_room_resume_release(pd_room_conn_t *rc, pd_uint_t serial)
{
    if (!rc->resuming || rc->resume->serial != serial
        || --rc->resume->fetching)
    {
        return;
    }

    rc->resuming = 0;
    rc->resume->ins = NULL;

    if (rc->backlog == 0) {
        pd_free(rc->resume);
        rc->resume = NULL;
    }

    /* not now: this may run inside the store's answer */
    pd_room_flush_later(rc);
}

/*
 * A connect's stored messages.  With a register other nodes read (Redis)
 * the connection's announcement may still be on its way: a push stored
 * after the fetch whose lookup ran before the announcement would reach
 * neither.  So the fetch waits for the register's barrier, and the
 * output waits for the fetch (the welcome and what came live meanwhile
 * held; the stored messages go before what came live, those that came
 * both ways once).
 */
typedef struct {
    uint64_t         id;
    pd_uint_t        serial;        /* of the hold, 0: none */
} pd_room_barrier_t;

static void
pd_room_load_barrier(void *data)
{
    pd_room_barrier_t  *b = data;
    pd_room_conn_t     *rc;
    pd_uint_t           serial = b->serial;

    rc = pd_room_find(b->id);
    pd_free(b);

    if (rc == NULL) {
        return;
    }

    if (serial == 0) {
        (void) pd_room_load(rc);
        return;
    }

    if (!rc->resuming || rc->resume->serial != serial) {
        /* it dropped meanwhile; its resume, if any, loads on its own */
        return;
    }

    (void) pd_room_load(rc);

    if (rc->resuming) {
        pd_room_resume_release(rc, serial);
    }
}

pd_int_t
pd_room_load_first(pd_room_conn_t *rc)
{
    pd_room_barrier_t  *b;

    if (pd_saver == NULL || rc->napps == 0) {
        return pd_room_load(rc);
    }

    b = pd_alloc(sizeof(pd_room_barrier_t), rc->connection->log);
    if (b == NULL) {
        return pd_room_load(rc);
    }

    b->id = pd_room_conn_id(rc);
    b->serial = 0;

    if (pd_register->barrier(pd_room_uid(rc), rc->uid_len,
                             pd_room_load_barrier, b)
        != PD_OK)
    {
        /* seen at once (the memory backend): no wait */
        pd_free(b);
        return pd_room_load(rc);
    }

    /* the welcome is queued: what the fetch finds goes right after it */
    if (pd_room_resume_start(rc, rc->out_last) == PD_OK) {
        b->serial = rc->resume->serial;
    }

    return PD_OK;
}

pd_int_t
pd_room_load(pd_room_conn_t *rc)
{
    pd_uint_t  i;

    for (i = 0; i < rc->napps; i++) {
        if (pd_room_load_app(rc, i) != PD_OK) {
            return PD_ERROR;
        }
    }

    return PD_OK;
}

/* the connection goes: remember the last broadcast each app saw */
void
pd_room_save_cursors(pd_room_conn_t *rc)
{
    pd_str_t   uid, app;
    pd_uint_t  i;

    if (pd_saver == NULL) {
        return;
    }

    uid.data = pd_room_uid(rc);
    uid.len = rc->uid_len;

    for (i = 0; i < rc->napps; i++) {
        if (pd_room_bseq(rc, i) == 0) {
            continue;
        }

        app.data = (u_char *) pd_room_app_name(rc->apps[i], &app.len);
        pd_saver_cursor_set(&uid, &app, rc->bcast_seq[i]);
    }
}

/* {"op":"ack","ids":["node-seq", ...]} */
pd_int_t
pd_room_ack(pd_room_conn_t *rc, const char **ids, pd_uint_t n)
{
    pd_str_t   uid, id;
    pd_uint_t  i, acked;

    if (pd_saver == NULL) {
        return PD_OK;
    }

    uid.data = pd_room_uid(rc);
    uid.len = rc->uid_len;
    acked = 0;

    for (i = 0; i < n; i++) {
        id.data = (u_char *) ids[i];
        id.len = strlen(ids[i]);

        if (pd_saver_ack(&uid, &id) == PD_OK) {
            acked++;
        }
    }

    pd_room_stat_add(PD_ROOM_STAT_ACKED, acked);
    return PD_OK;
}

/*
 * PD_CMD_ROOM_SEND: a batch from another worker: the header, the ids of
 * the connections, then the frame.
 */
static void
pd_room_channel_send(pd_cycle_t *cycle, pd_channel_msg_t *msg, u_char *data)
{
    pd_room_batch_t   hdr;
    pd_room_conn_t   *rc;
    pd_shbuf_t       *sb;
    uint64_t          id;
    pd_uint_t         i;
    size_t            need;

    (void) cycle;

    if (msg->len < sizeof(hdr)) {
        return;
    }

    pd_memcpy(&hdr, data, sizeof(hdr));
    need = sizeof(hdr) + hdr.nconns * sizeof(uint64_t) + hdr.frame_len;

    if (need != msg->len) {
        pd_log_error(PD_LOG_ALERT, pd_log_root, 0,
                     "malformed delivery batch of %u bytes",
                     (unsigned) msg->len);
        return;
    }

    sb = pd_shbuf_alloc(hdr.frame_len);
    if (sb == NULL) {
        return;
    }

    pd_memcpy(sb->data, data + need - hdr.frame_len, hdr.frame_len);
    sb->stamp = hdr.stamp;

    for (i = 0; i < hdr.nconns; i++) {
        pd_memcpy(&id, data + sizeof(hdr) + i * sizeof(uint64_t),
                  sizeof(uint64_t));

        rc = pd_room_find(id);
        if (rc != NULL) {
            (void) pd_room_deliver(rc, sb);
        }
    }

    pd_shbuf_unref(sb);
}

/*
 * The ids of the recent broadcasts this worker's walks are done with for
 * the connection in slot (passed it, or finished), at most max, into out.
 */
pd_uint_t
pd_room_bcast_passed(pd_uint_t slot, uint64_t *out, pd_uint_t max)
{
    pd_room_bcast_t  *b;
    pd_queue_t       *q;
    pd_uint_t         i, n;
    uint64_t          seq;

    n = 0;

    for (i = 0; i < pd_min(pd_room_nrecent, PD_ROOM_SEEN_MAX) && n < max;
         i++)
    {
        seq = pd_room_recent[i];

        for (q = pd_queue_head(&pd_room_walks);
             q != pd_queue_sentinel(&pd_room_walks);
             q = pd_queue_next(q))
        {
            b = pd_queue_data(q, pd_room_bcast_t, queue);

            if (b->seq == seq && b->next <= slot) {
                break;
            }
        }

        if (q == pd_queue_sentinel(&pd_room_walks)) {
            out[n++] = seq;
        }
    }

    return n;
}

static void
pd_room_bcast_free(pd_room_bcast_t *b)
{
    pd_room_nbcasts--;
    pd_room_stat_add(PD_ROOM_STAT_WALKS, -1);
    pd_queue_remove(&b->queue);

    if (pd_timer_is_set(&b->timer)) {
        pd_timer_del(&pd_timers, &b->timer);
    }

    pd_shbuf_unref(b->frame);
    pd_free(b);
}

static void
pd_room_bcast_step(pd_timer_t *t)
{
    pd_room_bcast_t  *b = pd_timer_owner(t, pd_room_bcast_t, timer);
    pd_room_conn_t   *rc;
    pd_int_t          a;
    pd_uint_t         sent, slots;
    uint16_t          id;

    b->budget += (double) b->rate * (double) (pd_current_msec - b->last)
                 / 1000.0;
    b->last = pd_current_msec;

    /* a burst of at most one second's worth after a stall */
    if (b->budget > (double) b->rate) {
        b->budget = (double) b->rate;
    }

    sent = 0;

    slots = pd_room_slots();

    /* compared by id: no connection here has the app, none will get it
     * on this walk (a later bind loads a retained one itself) */
    id = pd_room_app_find(b->app, b->app_len);
    if (id == 0) {
        b->next = slots;
    }

    while (b->next < slots && b->budget >= 1.0) {
        /*
         * Queueing a frame writes where the connection's queue ends (its
         * last link, or its own head): asked for a few connections ahead,
         * as the flush does (pd_room_out.c), so that the walk does not
         * wait for each in turn.  A slot that is not a connection only
         * wastes the prefetch, which never faults.
         */
        if (b->next + PD_ROOM_AHEAD < slots) {
            __builtin_prefetch(pd_room_slot(b->next + PD_ROOM_AHEAD)
                               ->out_last, 1);
        }

        rc = pd_room_slot(b->next++);

        if (!rc->ws || rc->close_sent) {
            continue;
        }

        for (a = 0; a < (pd_int_t) rc->napps && rc->apps[a] != id; a++) {
            /* void */
        }

        if (a == (pd_int_t) rc->napps
            || (b->retained && pd_room_bseq(rc, a) >= b->seq))
        {
            continue;
        }

        /* it was handed over by a worker that sent it this one */
        if (rc->adopted && pd_room_handover_seen(rc, b->seq)) {
            continue;
        }

        if (b->retained) {
            /* without memory for its cursor it may get this one again */
            (void) pd_room_bseq_set(rc, a, b->seq);
        }

        if (pd_room_send_shared(rc, b->frame) == PD_OK) {
            sent++;
        }

        b->budget -= 1.0;
    }

    pd_room_stat_add(PD_ROOM_STAT_BCAST_SENT, sent);

    if (b->next >= slots) {
        pd_room_bcast_free(b);
        return;
    }

    (void) pd_timer_add(&pd_timers, &b->timer, pd_current_msec,
                        PD_ROOM_BCAST_TICK);
}

/* PD_CMD_ROOM_BCAST: header, app, frame; also called for the own worker */
void
pd_room_bcast_start(pd_room_bcast_hdr_t *hdr, const u_char *app,
    const u_char *frame)
{
    pd_room_bcast_t  *b;

    if (pd_room_nbcasts == PD_ROOM_BCAST_MAX
        || hdr->app_len > PD_APP_MAX)
    {
        pd_log_error(PD_LOG_ERR, pd_log_root, 0,
                     "broadcast %lx dropped: %d broadcasts running",
                     (unsigned long) hdr->seq, PD_ROOM_BCAST_MAX);
        return;
    }

    b = pd_calloc(sizeof(pd_room_bcast_t), pd_log_root);
    if (b == NULL) {
        return;
    }

    b->frame = pd_shbuf_alloc(hdr->frame_len);
    if (b->frame == NULL) {
        pd_free(b);
        return;
    }

    pd_memcpy(b->frame->data, frame, hdr->frame_len);
    b->frame->stamp = hdr->stamp;
    b->frame->seq = hdr->seq;
    b->seq = hdr->seq;
    b->rate = hdr->rate ? hdr->rate : 1;
    b->retained = hdr->retained;
    b->app_len = (uint8_t) hdr->app_len;
    pd_memcpy(b->app, app, hdr->app_len);
    b->last = pd_current_msec;

    /* the first step sends a tick's worth at once, not one receiver */
    b->budget = pd_max((double) b->rate * PD_ROOM_BCAST_TICK / 1000.0, 1.0);

    pd_timer_init(&b->timer, pd_room_bcast_step);
    pd_room_nbcasts++;
    pd_room_stat_add(PD_ROOM_STAT_WALKS, 1);

    pd_queue_insert_tail(&pd_room_walks, &b->queue);
    pd_room_recent[pd_room_nrecent++ % PD_ROOM_SEEN_MAX] = b->seq;

    pd_room_bcast_step(&b->timer);
}

static void
pd_room_channel_bcast(pd_cycle_t *cycle, pd_channel_msg_t *msg, u_char *data)
{
    pd_room_bcast_hdr_t  hdr;

    (void) cycle;

    if (msg->len < sizeof(hdr)) {
        return;
    }

    pd_memcpy(&hdr, data, sizeof(hdr));

    if (sizeof(hdr) + hdr.app_len + hdr.frame_len != msg->len) {
        pd_log_error(PD_LOG_ALERT, pd_log_root, 0,
                     "malformed broadcast of %u bytes", (unsigned) msg->len);
        return;
    }

    pd_room_bcast_start(&hdr, data + sizeof(hdr),
                        data + sizeof(hdr) + hdr.app_len);
}

void
pd_room_deliver_init(void)
{
    pd_channel_set_handler(PD_CMD_ROOM_SEND, pd_room_channel_send);
    pd_channel_set_handler(PD_CMD_ROOM_BCAST, pd_room_channel_bcast);
    pd_room_out_on_drain(pd_room_load_more);
    pd_queue_init(&pd_room_walks);
}
