/*
 * pd_room_handover.c: a reload's live hand-over.  A retiring worker does
 * not tell its plain WebSocket clients to reconnect: it sends each
 * socket (SCM_RIGHTS over the inter-worker channel, pd_channel_send_fd)
 * with the session's state to a worker of the next generation, which
 * adopts it into its loop as if it had been its own all along.  The
 * client sees nothing: no close, no reconnect frame, no welcome.
 *
 * The session travels as one PD_CMD_ROOM_ADOPT message: uid, apps,
 * heartbeat and idle deadline, broadcast cursors, the stored backlog's
 * cursors, the WebSocket parser's state with the bytes of a partial
 * frame and of a fragmented message being joined, and the output not
 * yet written (a frame cut in the middle goes on where it was cut).
 * What does not fit in one channel message (PD_CHANNEL_MAX_DATA), a TLS
 * connection (OpenSSL's session state cannot leave this process without
 * kernel TLS), a channel that stays busy, or a refusal of the new
 * worker, falls back to the spread reconnect.
 *
 * Exactly once, for pushes: the register has one entry per connection.
 * Until the new worker has adopted the socket the entry names the old
 * worker, which queues what comes (it no longer writes the socket).  The
 * new worker moves the entry to itself in one step (pd_register->move)
 * and answers PD_CMD_ROOM_MOVED with the connection's new id; from then
 * on the old worker forwards whatever still comes to the old id (routed
 * before the move) as PD_CMD_ROOM_FWD, behind the adoption on the same
 * channel, so nothing is lost and nothing is delivered twice.  A push
 * looked up just before the move and one just after may cross, one via
 * the old worker, one straight: their order is the only thing a
 * hand-over can change.
 *
 * Exactly once, for broadcasts: both generations walk their connections
 * for every broadcast, each at its own pace.  The adoption carries the
 * ids of the recent broadcasts whose walk in the old worker is past this
 * connection (so it had them there), and the adopted connection
 * remembers, for a while, every broadcast it got since, by whichever
 * path: the new worker's walk and a frame forwarded by the old one each
 * skip what the other delivered.
 *
 * Bounded: PD_ROOM_HANDOVER_SLICE connections per loop turn, so neither
 * generation stalls; the old worker keeps the slots of moved connections
 * (for their ids) until PD_ROOM_HANDOVER_GRACE after the last answer,
 * then leaves.  The session keeps its sid: the adoption carries the one
 * its client holds, and the new worker keeps it (pd_room_sid_keep) and
 * puts 24 bits of it in the register entry as it moves it, so a flash
 * reconnect with it finds the session (pd_room_linger.c).
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_room_wire.h"
#include "pd_register.h"

#define PD_ROOM_HANDOVER_SLICE    256     /* connections per loop turn */
#define PD_ROOM_HANDOVER_TICK     1       /* ms between slices */
#define PD_ROOM_HANDOVER_BUSY     2000    /* ticks a busy channel is
                                           * waited for, then fall back */
#define PD_ROOM_HANDOVER_GRACE    3000    /* ms of forwarding after the
                                           * last connection moved */
#define PD_ROOM_HANDOVER_DEDUP    10000   /* ms an adopted connection
                                           * remembers its broadcasts */
#define PD_ROOM_HANDOVER_HOLD     100     /* ms between looks at whether
                                           * a held connection's old
                                           * worker is still there */
#define PD_ROOM_HANDOVER_HOLD_MAX 60000   /* ms an adopted connection waits
                                           * at most for its old worker's
                                           * word, with the worker alive */

/* what a connection in transit keeps, on either side; one per
 * connection slot, only while it is moving, moved or just adopted */
typedef struct {
    uint64_t         id;            /* its id in this worker */
    uint64_t         to_id;         /* moved: its id in the new worker */
    pid_t            to_pid;        /* moving, moved: the new worker */
    uint32_t         packed;        /* moving: output links sent along */
    uint32_t         nseen;
    pd_msec_t        until;         /* adopted: seen matters until then */
    pd_msec_t        held;          /* adopted: when the hold began */
    pid_t            from_pid;      /* adopted: the old worker */
    pd_chain_t     **hold;          /* adopted: where the old worker's
                                     * forwarded frames go, until it says
                                     * it has no more; NULL: not held */
    u_char          *kick;          /* moving: a kick that came meanwhile
                                     * (its reason, kick_len bytes) */
    size_t           kick_len;
    uint64_t         seen[PD_ROOM_SEEN_MAX];
} pd_room_ho_t;

/* the adoption's fixed part; then the uid, each app (a length byte and
 * the name), the broadcast cursors (napps of them, if any), a cursor of
 * PD_MSG_ID_SIZE bytes per backlog bit, nseen broadcast ids, the partial
 * frame, the fragments joined so far, the output not yet written */
typedef struct {
    uint64_t         sid;           /* the one its client holds */
    uint64_t         message_len;   /* the parser's */
    uint32_t         since;         /* 0: the register keeps it.  The
                                     * layout stays for a binary upgrade
                                     * between versions; an older adopter
                                     * never read it past its register
                                     * add, which adoption does not do */
    uint32_t         idle;
    uint32_t         hb;
    uint32_t         quiet;         /* ms since the last input */
    uint32_t         up_second;
    uint32_t         in_len;
    uint32_t         msg_len;
    uint32_t         out_len;
    uint16_t         up_count;
    uint16_t         bad_frames;
    uint8_t          uid_len;
    uint8_t          napps;
    uint8_t          backlog;
    uint8_t          flags;
    uint8_t          message_opcode;
    uint8_t          message_failed;
    uint8_t          nseen;
    pd_utf8_state_t  utf8;
} pd_room_adopt_t;

#define PD_ROOM_ADOPT_REGISTERED  0x01
#define PD_ROOM_ADOPT_IP          0x02
#define PD_ROOM_ADOPT_BSEQ        0x04
#define PD_ROOM_ADOPT_MSG         0x08

/* a refusal: the worker is retiring itself, another may take it */
#define PD_ROOM_MOVED_RETRY       1

/* by connection slot: cycle->connection_n of them, made on first use */
static pd_room_ho_t  **pd_room_ho;

/* the retiring side */
static pd_cycle_t     *pd_room_ho_cycle;
static pd_uint_t       pd_room_ho_next;      /* the next room slot */
static pd_uint_t       pd_room_ho_busy;      /* ticks the channel was busy */
static pd_uint_t       pd_room_ho_moving;    /* sent, not answered */
static pd_uint_t       pd_room_ho_sliced;    /* every slot was seen */
static pd_uint_t       pd_room_ho_handed;
static pd_uint_t       pd_room_ho_told;      /* sent away instead */
static pd_uint_t       pd_room_ho_rr;
static pd_timer_t      pd_room_ho_timer;
static pd_timer_t      pd_room_ho_grace;
static pd_timer_t      pd_room_ho_hold;
static pd_timer_t      pd_room_ho_wait;      /* closed while moving */
static pd_msec_t       pd_room_ho_wait_since;

static u_char          pd_room_ho_buf[PD_CHANNEL_MAX_DATA];

/* moved connections whose "no more" waits for a loop turn to end after
 * the one that moved them (pd_room_handover_nomore) */
typedef struct {
    uint64_t         id;
    pd_uint_t        turn;
} pd_room_ho_due_t;

static pd_room_ho_due_t  *pd_room_ho_due;
static pd_uint_t          pd_room_ho_ndue;
static pd_uint_t          pd_room_ho_due_alloc;
static pd_event_t         pd_room_ho_due_ev;

static pd_room_ho_t *
pd_room_ho_of(pd_room_conn_t *rc)
{
    pd_room_ho_t  *ho;
    uint64_t       id = pd_room_conn_id(rc), i = id >> 32;

    if (pd_room_ho == NULL || i >= pd_cycle->connection_n) {
        return NULL;
    }

    ho = pd_room_ho[i];

    return (ho != NULL && ho->id == id) ? ho : NULL;
}

static pd_room_ho_t *
pd_room_ho_new(pd_room_conn_t *rc)
{
    pd_room_ho_t  *ho;
    uint64_t       i = pd_room_conn_id(rc) >> 32;

    if (pd_room_ho == NULL) {
        pd_room_ho = pd_calloc(pd_cycle->connection_n
                               * sizeof(pd_room_ho_t *), pd_log_root);
        if (pd_room_ho == NULL) {
            return NULL;
        }
    }

    if (i >= pd_cycle->connection_n) {
        return NULL;
    }

    ho = pd_room_ho[i];

    if (ho == NULL) {
        ho = pd_alloc(sizeof(pd_room_ho_t), pd_log_root);
        if (ho == NULL) {
            return NULL;
        }
        pd_room_ho[i] = ho;

    } else {
        pd_free(ho->kick);
    }

    pd_memzero(ho, sizeof(pd_room_ho_t));
    ho->id = pd_room_conn_id(rc);

    return ho;
}

void
pd_room_handover_forget(pd_room_conn_t *rc)
{
    uint64_t  i = pd_room_conn_id(rc) >> 32;

    if (pd_room_ho_of(rc) != NULL) {
        pd_free(pd_room_ho[i]->kick);
        pd_free(pd_room_ho[i]);
        pd_room_ho[i] = NULL;
    }

    rc->adopted = 0;
}

pd_uint_t
pd_room_handover_held(pd_room_conn_t *rc)
{
    pd_room_ho_t  *ho = pd_room_ho_of(rc);

    return ho != NULL && ho->hold != NULL;
}

void
pd_room_handover_unhold(pd_room_conn_t *rc)
{
    pd_room_ho_t  *ho = pd_room_ho_of(rc);

    if (ho != NULL && ho->hold != NULL) {
        ho->hold = NULL;

        if (rc->out != NULL && !rc->lingering) {
            pd_room_flush(rc);
        }
    }
}

/*
 * What a held connection waits for comes from its old worker, on the
 * channel, behind the adoption's answer.  A busy old worker (a slice of
 * hand-overs, a sanitizer build beside a busy core) may take seconds to
 * read that answer: the hold lasts until its word comes or it is gone
 * (the master closed our channel to it), since releasing earlier lets a
 * frame it forwards later land behind newer ones.  PD_ROOM_HANDOVER_HOLD_MAX
 * bounds a live old worker that never answers (it should not happen).
 */
static void
pd_room_handover_hold_handler(pd_timer_t *t)
{
    pd_room_conn_t  *rc;
    pd_room_ho_t    *ho;
    pd_uint_t        i, n, held;

    n = 0;
    held = 0;

    for (i = 0; i < pd_room_slots(); i++) {
        rc = pd_room_slot(i);

        if (!rc->adopted || !pd_room_handover_held(rc)) {
            continue;
        }

        ho = pd_room_ho_of(rc);

        if (!pd_channel_has_pid(ho->from_pid)) {
            pd_room_handover_unhold(rc);
            continue;
        }

        if (pd_current_msec - ho->held >= PD_ROOM_HANDOVER_HOLD_MAX) {
            n++;
            pd_room_handover_unhold(rc);
            continue;
        }

        held++;
    }

    if (held) {
        (void) pd_timer_add(&pd_timers, t, pd_current_msec,
                            PD_ROOM_HANDOVER_HOLD);
    }

    if (n) {
        pd_log_error(PD_LOG_WARN, pd_log_root, 0, "hand-over: %lu adopted "
                     "connections did not hear the end of their old "
                     "worker's frames in %d ms", (unsigned long) n,
                     PD_ROOM_HANDOVER_HOLD_MAX);
    }
}

pd_uint_t
pd_room_handover_seen(pd_room_conn_t *rc, uint64_t seq)
{
    pd_room_ho_t  *ho;
    pd_uint_t      i;

    ho = pd_room_ho_of(rc);

    if (ho == NULL || pd_current_msec > ho->until) {
        /* the old worker is long gone: nothing can come twice now */
        pd_room_handover_forget(rc);
        return 0;
    }

    for (i = 0; i < pd_min(ho->nseen, PD_ROOM_SEEN_MAX); i++) {
        if (ho->seen[i] == seq) {
            return 1;
        }
    }

    ho->seen[ho->nseen++ % PD_ROOM_SEEN_MAX] = seq;
    return 0;
}

/* the next generation's worker that takes our connections (core) */
static pid_t
pd_room_handover_target(void)
{
    return pd_process_successor(&pd_room_ho_rr);
}

/* the session of rc, walked past by the broadcasts of seen, into buf;
 * its length, 0 when it does not fit */
static size_t
pd_room_handover_pack(pd_room_conn_t *rc, uint64_t *seen, pd_uint_t nseen,
    u_char *buf, size_t size)
{
    pd_room_adopt_t   a;
    pd_room_ho_t     *ho;
    pd_chain_t       *cl;
    const u_char     *name;
    size_t            len, need;
    u_char           *p, *end;
    pd_uint_t         i, j;

    pd_memzero(&a, sizeof(a));

    a.sid = pd_room_sid_hash(rc);
    a.idle = pd_room_idle(rc);
    a.hb = rc->hb;
    a.quiet = (uint32_t) pd_min(pd_room_quiet(rc),
                                (pd_msec_t) pd_room_idle(rc));
    a.up_second = rc->up_second;
    a.up_count = rc->up_count;
    a.bad_frames = rc->bad_frames;
    a.uid_len = rc->uid_len;
    a.napps = rc->napps;
    a.backlog = rc->resume != NULL ? rc->backlog : 0;
    a.flags = (rc->registered ? PD_ROOM_ADOPT_REGISTERED : 0)
              | (rc->ip_counted ? PD_ROOM_ADOPT_IP : 0)
              | (rc->bcast_seq ? PD_ROOM_ADOPT_BSEQ : 0)
              | (rc->msg ? PD_ROOM_ADOPT_MSG : 0);
    /* the parser's state as it was when it lived in rc, for a worker
     * of either binary: its failed bit is never set here (a failed
     * parser closes the connection in the same read) */
    a.message_opcode = rc->ws_message;
    a.message_failed = 0;
    a.message_len = rc->msg ? (uint64_t) (rc->msg->last - rc->msg->pos) : 0;
    a.utf8 = rc->utf8;
    a.in_len = rc->in ? (uint32_t) (rc->in->last - rc->in->pos) : 0;
    a.msg_len = rc->msg ? (uint32_t) (rc->msg->last - rc->msg->pos) : 0;

    for (cl = rc->out; cl != NULL; cl = cl->next) {
        a.out_len += (uint32_t) (cl->buf->last - cl->buf->pos);
    }

    /* a connection handed over twice (two reloads): what it had */
    ho = rc->adopted ? pd_room_ho_of(rc) : NULL;
    if (ho != NULL) {
        for (i = 0; i < pd_min(ho->nseen, PD_ROOM_SEEN_MAX)
                    && nseen < PD_ROOM_SEEN_MAX; i++)
        {
            seen[nseen++] = ho->seen[i];
        }
    }

    a.nseen = (uint8_t) nseen;

    need = sizeof(a) + rc->uid_len + rc->napps * (1 + PD_APP_MAX)
           + (rc->bcast_seq ? rc->napps * sizeof(uint64_t) : 0)
           + PD_APPS_MAX * PD_MSG_ID_SIZE + nseen * sizeof(uint64_t)
           + a.in_len + a.msg_len + a.out_len;

    if (need > size) {
        return 0;
    }

    p = buf;
    end = buf + size;

    p = pd_cpymem(p, &a, sizeof(a));
    p = pd_cpymem(p, pd_room_uid(rc), rc->uid_len);

    for (i = 0; i < rc->napps; i++) {
        name = pd_room_app_name(rc->apps[i], &len);
        *p++ = (u_char) len;
        p = pd_cpymem(p, name, len);
    }

    if (rc->bcast_seq) {
        p = pd_cpymem(p, rc->bcast_seq, rc->napps * sizeof(uint64_t));
    }

    for (i = 0; i < PD_APPS_MAX; i++) {
        if (a.backlog & (1 << i)) {
            p = pd_cpymem(p, rc->resume->cursor[i], PD_MSG_ID_SIZE);
        }
    }

    p = pd_cpymem(p, seen, nseen * sizeof(uint64_t));

    if (a.in_len) {
        p = pd_cpymem(p, rc->in->pos, a.in_len);
    }

    if (a.msg_len) {
        p = pd_cpymem(p, rc->msg->pos, a.msg_len);
    }

    for (cl = rc->out; cl != NULL; cl = cl->next) {
        j = (pd_uint_t) (cl->buf->last - cl->buf->pos);
        p = pd_cpymem(p, cl->buf->pos, j);
    }

    return p <= end ? (size_t) (p - buf) : 0;
}

/* PD_OK: sent, PD_AGAIN: the channel is busy, PD_DECLINED: not here */
static pd_int_t
pd_room_hand(pd_room_conn_t *rc, pd_uint_t slot)
{
    pd_connection_t  *c = rc->connection;
    pd_room_ho_t     *ho;
    pd_chain_t       *cl;
    uint64_t          seen[PD_ROOM_SEEN_MAX];
    pd_uint_t         nseen;
    size_t            len;
    pid_t             pid;
    pd_int_t          rv;

    /* resuming: its stored messages are being fetched into the queue */
    if (c->ssl != NULL || rc->closing || rc->resuming) {
        return PD_DECLINED;
    }

    pid = pd_room_handover_target();
    if (pid == -1) {
        return PD_DECLINED;
    }

    nseen = pd_room_bcast_passed(slot, seen, PD_ROOM_SEEN_MAX);

    len = pd_room_handover_pack(rc, seen, nseen, pd_room_ho_buf,
                                sizeof(pd_room_ho_buf));
    if (len == 0) {
        pd_log_error(PD_LOG_INFO, pd_conn_log(c), 0, "session too large to "
                     "hand over (input or output pending): sent away");
        return PD_DECLINED;
    }

    /* an adopted one's record is packed already: it serves the move now */
    ho = pd_room_ho_of(rc);
    if (ho == NULL) {
        ho = pd_room_ho_new(rc);
        if (ho == NULL) {
            return PD_DECLINED;
        }
    }

    rv = pd_channel_send_fd(pid, PD_CMD_ROOM_ADOPT, pd_room_conn_id(rc), c->fd,
                            pd_room_ho_buf, len);
    if (rv != PD_OK) {
        if (!rc->adopted) {
            pd_room_handover_forget(rc);
        }
        return rv == PD_AGAIN ? PD_AGAIN : PD_DECLINED;
    }

    ho->to_pid = pid;
    ho->nseen = 0;
    ho->packed = 0;

    for (cl = rc->out; cl != NULL; cl = cl->next) {
        ho->packed++;
    }

    rc->adopted = 0;

    if (!rc->moving) {
        rc->moving = 1;
        pd_room_ho_moving++;
    }

    /*
     * The socket is the new worker's to read and write now.  Ours stays
     * open, out of epoll (a closed copy would stay in our epoll set while
     * the other lives), until it answers: a refusal gives it back with
     * the session as it was.
     */
    pd_event_del_timer(c->read);
    pd_event_del_timer(c->write);
    pd_delete_posted_event(c->read);
    pd_delete_posted_event(c->write);

    if (c->read->active || c->write->active) {
        (void) pd_del_conn(c);
    }

    c->read->ready = 0;
    c->write->ready = 0;

    pd_log_debug(pd_conn_log(c), "handed over to worker %d", (int) pid);

    return PD_OK;
}

/* the slot of rc among the room's connections */
static pd_uint_t
pd_room_slot_of(pd_room_conn_t *rc)
{
    pd_room_conn_t  *chunk;
    pd_uint_t        i;

    for (i = 0; i < pd_room_slots(); i += PD_ROOM_CHUNK_SLOTS) {
        chunk = pd_room_slot(i);

        if (rc >= chunk && rc < chunk + PD_ROOM_CHUNK_SLOTS) {
            return i + (pd_uint_t) (rc - chunk);
        }
    }

    return 0;
}

static pd_uint_t  pd_room_ho_drop_n;

/* the first pd_room_ho_drop_n links: sent along with the session */
static pd_uint_t
pd_room_ho_drop_packed(pd_buf_t *b)
{
    (void) b;

    if (pd_room_ho_drop_n) {
        pd_room_ho_drop_n--;
        return 1;
    }

    return 0;
}

/* a moved connection's slot goes: nothing more can come for it */
static void pd_room_handover_settle(void);

static void
pd_room_handover_release(pd_room_conn_t *rc)
{
    pd_connection_t  *c = rc->connection;
    pd_uint_t         moving = rc->moving;

    if (moving) {
        pd_room_ho_moving--;
    }

    if (c->fd != -1) {
        (void) close(c->fd);
        c->fd = -1;
    }

    if (rc->ip_counted) {
        pd_register->ip_release(&c->sockaddr.sockaddr);
        rc->ip_counted = 0;
    }

    if (!rc->moved) {
        /* it moved before it could say so: the gauge still counts it */
        pd_room_stat_add(PD_ROOM_STAT_WS, -1);
    }

    pd_room_out_free(rc);
    pd_room_handover_forget(rc);

    rc->moving = 0;
    rc->moved = 0;
    rc->taken = 0;
    rc->registered = 0;

    pd_active_connections--;
    pd_stats_dec(PD_STAT_CONNECTIONS);

    if (c->pool != NULL) {
        pd_destroy_pool(c->pool);
        c->pool = NULL;
    }

    pd_release_connection(c, 0);

    pd_free(rc->in);
    rc->in = NULL;
    pd_free(rc->msg);
    rc->msg = NULL;
    pd_free(rc->resume);
    rc->resume = NULL;
    pd_room_conn_free(rc);

    if (moving) {
        /* it never heard back (the new worker died, the backstop fired):
         * the last one in flight may be this one */
        pd_room_handover_settle();
    }
}

static void pd_room_handover_back(pd_room_conn_t *rc, pd_room_ho_t *ho);

/*
 * A close of a connection in transit, above all the sweep of
 * worker_shutdown_timeout, which can run before the new worker's answers
 * are read (this worker was stopped, or slow, and the timer and the
 * answers are due in the same turn).  Released then, the frames queued
 * for it here were lost, and the new worker, never told "no more", held
 * the client's output until this worker had gone: a test that stops the
 * old worker during a hand-over saw clients get none of their pushes.
 * So a moving connection stays while its new worker lives: the answer
 * moves it (its frames are forwarded, "no more" follows) or gives it
 * back; and a moved one (its socket is closed, the sweep does not see
 * it) goes at the end of the grace.  Both are bounded: the grace, and
 * a new worker gone without answering gives the connection back
 * (pd_room_handover_wait, every PD_ROOM_HANDOVER_HOLD ms).
 */
void
pd_room_handover_drop(pd_room_conn_t *rc)
{
    pd_room_ho_t  *ho = pd_room_ho_of(rc);

    if (ho != NULL && rc->moving && pd_channel_has_pid(ho->to_pid)
        && (!pd_timer_is_set(&pd_room_ho_wait)
            || pd_current_msec - pd_room_ho_wait_since
               < PD_ROOM_HANDOVER_HOLD_MAX))
    {
        if (!pd_timer_is_set(&pd_room_ho_wait)) {
            pd_log_error(PD_LOG_NOTICE, pd_log_root, 0, "hand-over: "
                         "connections in transit wait for the answers of "
                         "the new workers");
            pd_room_ho_wait_since = pd_current_msec;
            (void) pd_timer_add(&pd_timers, &pd_room_ho_wait,
                                pd_current_msec, PD_ROOM_HANDOVER_HOLD);
        }
        return;
    }

    if (ho != NULL && rc->moved) {
        return;
    }

    pd_room_handover_release(rc);
}

/*
 * Connections kept in transit at their close: the new worker of one may
 * have gone without answering; it is given back to be sent away then.
 * A new worker that lives and never answers (stopped) is waited for as
 * long as an adopter waits for its old worker's word, then the old
 * behaviour: dropped, with a warning.
 */
static void
pd_room_handover_wait(pd_timer_t *t)
{
    pd_room_conn_t  *rc;
    pd_room_ho_t    *ho;
    pd_uint_t        i, waiting, expired;

    waiting = 0;
    expired = (pd_current_msec - pd_room_ho_wait_since
               >= PD_ROOM_HANDOVER_HOLD_MAX);

    for (i = 0; i < pd_room_slots(); i++) {
        rc = pd_room_slot(i);
        ho = rc->moving ? pd_room_ho_of(rc) : NULL;

        if (ho == NULL) {
            continue;
        }

        if (pd_channel_has_pid(ho->to_pid)) {
            if (expired) {
                pd_log_error(PD_LOG_WARN, pd_conn_log(rc->connection), 0,
                             "hand-over: no answer from worker %d in %d ms: "
                             "the connection is dropped here",
                             (int) ho->to_pid, PD_ROOM_HANDOVER_HOLD_MAX);
                pd_room_handover_release(rc);
                continue;
            }

            waiting++;
            continue;
        }

        pd_log_error(PD_LOG_NOTICE, pd_conn_log(rc->connection), 0,
                     "hand-over: worker %d is gone without an answer: the "
                     "connection is sent away", (int) ho->to_pid);

        rc->moving = 0;
        pd_room_ho_moving--;
        pd_room_handover_back(rc, ho);
    }

    if (waiting) {
        (void) pd_timer_add(&pd_timers, t, pd_current_msec,
                            PD_ROOM_HANDOVER_HOLD);
    }
}

/* the grace is over: the moved connections' slots go, the worker leaves */
static void
pd_room_handover_grace_handler(pd_timer_t *t)
{
    pd_room_conn_t  *rc;
    pd_uint_t        i;

    (void) t;

    for (i = 0; i < pd_room_slots(); i++) {
        rc = pd_room_slot(i);

        if (rc->moved) {
            pd_room_handover_release(rc);
        }
    }
}

static void
pd_room_handover_settle(void)
{
    if (!pd_room_ho_sliced || pd_room_ho_moving) {
        return;
    }

    if (pd_room_ho_grace.handler == NULL) {
        pd_timer_init(&pd_room_ho_grace, pd_room_handover_grace_handler);
    }

    /* what was routed here before the last move still comes for a while */
    (void) pd_timer_add(&pd_timers, &pd_room_ho_grace, pd_current_msec,
                        PD_ROOM_HANDOVER_GRACE);
}

static void
pd_room_handover_slice(pd_timer_t *t)
{
    pd_room_conf_t  *rcf;
    pd_room_conn_t  *rc;
    pd_uint_t        n;
    pd_int_t         rv;

    rcf = pd_get_conf(pd_room_ho_cycle, pd_room_module);
    n = 0;

    while (pd_room_ho_next < pd_room_slots()
           && n < PD_ROOM_HANDOVER_SLICE)
    {
        rc = pd_room_slot(pd_room_ho_next);

        if (!rc->taken || rc->moving || rc->moved || rc->close_sent) {
            pd_room_ho_next++;
            continue;
        }

        n++;

        if (rc->lingering) {
            /* no socket to hand: this worker leaves, its sessions too */
            pd_room_close(rc, PD_ROOM_CLOSE_SHUTDOWN);
            pd_room_ho_next++;
            continue;
        }

        if (rc->adopted && pd_room_handover_held(rc)) {
            /* adopted a moment ago, its old worker's frames still due:
             * they would come after it left */
            break;
        }

        rv = pd_room_hand(rc, pd_room_ho_next);

        if (rv == PD_AGAIN && ++pd_room_ho_busy < PD_ROOM_HANDOVER_BUSY) {
            /* the new worker reads its channel: the next tick */
            break;
        }

        if (rv == PD_OK) {
            pd_room_ho_busy = 0;
            pd_room_ho_handed++;
            pd_room_stat(PD_ROOM_STAT_HANDED_OVER);

        } else {
            pd_room_ho_told++;
            pd_room_send_away(rc, rcf->reconnect_window);
        }

        pd_room_ho_next++;
    }

    if (pd_room_ho_next < pd_room_slots()) {
        (void) pd_timer_add(&pd_timers, t, pd_current_msec,
                            PD_ROOM_HANDOVER_TICK);
        return;
    }

    pd_log_error(PD_LOG_NOTICE, pd_log_root, 0, "hand-over: %lu connections "
                 "handed to the new workers, %lu told to reconnect",
                 (unsigned long) pd_room_ho_handed,
                 (unsigned long) pd_room_ho_told);

    pd_room_ho_sliced = 1;
    pd_room_handover_settle();
}

pd_int_t
pd_room_handover_begin(pd_cycle_t *cycle)
{
    pd_room_conf_t  *rcf = pd_get_conf(cycle, pd_room_module);

    if (!rcf->reload_handover || pd_room_handover_target() == -1) {
        return PD_DECLINED;
    }

    pd_room_ho_cycle = cycle;
    pd_room_ho_next = 0;

    pd_timer_init(&pd_room_ho_timer, pd_room_handover_slice);
    if (pd_room_ho_wait.handler == NULL) {
        pd_timer_init(&pd_room_ho_wait, pd_room_handover_wait);
    }
    pd_room_handover_slice(&pd_room_ho_timer);

    return PD_OK;
}

/* a moved connection's frames, queued here since, go to its worker */
void
pd_room_handover_forward(pd_room_conn_t *rc)
{
    pd_room_fwd_t   hdr;
    pd_room_ho_t   *ho;
    pd_chain_t     *cl;
    pd_buf_t       *b;
    size_t          len;

    ho = pd_room_ho_of(rc);

    for (cl = rc->out; ho != NULL && cl != NULL; cl = cl->next) {
        b = cl->buf;
        len = (size_t) (b->last - b->pos);

        hdr.stamp = b->shared->stamp;
        hdr.seq = b->shared->seq;

        if (sizeof(hdr) + len > sizeof(pd_room_ho_buf)) {
            pd_log_error(PD_LOG_WARN, pd_conn_log(rc->connection), 0,
                         "a frame of %lu bytes for a moved connection "
                         "cannot be forwarded", (unsigned long) len);
            continue;
        }

        pd_memcpy(pd_room_ho_buf, &hdr, sizeof(hdr));
        pd_memcpy(pd_room_ho_buf + sizeof(hdr), b->pos, len);

        if (pd_channel_send_pid(ho->to_pid, PD_CMD_ROOM_FWD, ho->to_id,
                                pd_room_ho_buf, sizeof(hdr) + len)
            != PD_OK)
        {
            pd_log_error(PD_LOG_WARN, pd_conn_log(rc->connection), 0,
                         "a frame for a moved connection is lost: the "
                         "channel to worker %d is full", (int) ho->to_pid);
        }
    }

    pd_room_out_free(rc);
}

pd_int_t
pd_room_handover_kick(pd_room_conn_t *rc, const u_char *reason, size_t len)
{
    pd_room_ho_t  *ho;

    ho = pd_room_ho_of(rc);

    if (ho == NULL) {
        return PD_DECLINED;
    }

    if (rc->moved) {
        return pd_channel_send_pid(ho->to_pid, PD_CMD_ROOM_KICK, ho->to_id,
                                   reason, len);
    }

    /* in flight: it follows the connection once its new id is known (or
     * is done here if the new worker refuses it); the last kick wins */
    len = pd_min(len, PD_ROOM_KICK_MAX);

    pd_free(ho->kick);
    ho->kick = pd_alloc(len + 1, rc->connection->log);
    if (ho->kick == NULL) {
        ho->kick_len = 0;
        return PD_ERROR;
    }

    pd_memcpy(ho->kick, reason, len);
    ho->kick_len = len;

    return PD_OK;
}

/*
 * "No more" tells the new worker that every frame this worker had for a
 * moved connection was forwarded, so it may write what came to it
 * directly since.  A push routed here before the move may still sit
 * unread in another sibling's channel (its sender looked the register
 * up just before the new worker moved the entry): said at once, the
 * word would overtake it, and the push would come after newer ones.
 * So it waits for the end of the next loop turn, whose epoll_wait()
 * reads every channel readable by then; what is read meanwhile is
 * forwarded first.  A kick that came while the connection moved follows
 * the word.
 */
static void
pd_room_handover_say_nomore(pd_room_ho_t *ho)
{
    pd_room_fwd_t  fwd;

    pd_memzero(&fwd, sizeof(fwd));
    (void) pd_channel_send_pid(ho->to_pid, PD_CMD_ROOM_FWD, ho->to_id,
                               (u_char *) &fwd, sizeof(fwd));

    if (ho->kick != NULL) {
        (void) pd_channel_send_pid(ho->to_pid, PD_CMD_ROOM_KICK, ho->to_id,
                                   ho->kick, ho->kick_len);
        pd_free(ho->kick);
        ho->kick = NULL;
    }
}

static void
pd_room_handover_nomore(pd_event_t *ev)
{
    pd_room_conn_t  *rc;
    pd_room_ho_t    *ho;
    pd_uint_t        i, kept;

    kept = 0;

    for (i = 0; i < pd_room_ho_ndue; i++) {
        if (pd_room_ho_due[i].turn == pd_event_turn) {
            /* moved in this turn: the next one's reads first */
            pd_room_ho_due[kept++] = pd_room_ho_due[i];
            continue;
        }

        rc = pd_room_find(pd_room_ho_due[i].id);
        ho = (rc != NULL && rc->moved) ? pd_room_ho_of(rc) : NULL;

        if (ho != NULL) {
            /* what this turn queued for it (its flush runs after us) */
            pd_room_handover_forward(rc);
            pd_room_handover_say_nomore(ho);
        }
    }

    pd_room_ho_ndue = kept;

    if (kept) {
        pd_post_event(ev, &pd_posted_next_events);
    }
}

static void
pd_room_handover_nomore_due(pd_room_conn_t *rc, pd_room_ho_t *ho)
{
    pd_room_ho_due_t  *due;
    pd_uint_t          n;

    if (pd_room_ho_ndue == pd_room_ho_due_alloc) {
        /* bounded by the connections moved in two turns */
        n = pd_max(pd_room_ho_due_alloc * 2, PD_ROOM_HANDOVER_SLICE);
        due = pd_alloc(n * sizeof(pd_room_ho_due_t), pd_log_root);

        if (due == NULL) {
            /* said at once: a late push may come after newer ones */
            pd_room_handover_say_nomore(ho);
            return;
        }

        if (pd_room_ho_ndue) {
            pd_memcpy(due, pd_room_ho_due,
                      pd_room_ho_ndue * sizeof(pd_room_ho_due_t));
        }

        pd_free(pd_room_ho_due);
        pd_room_ho_due = due;
        pd_room_ho_due_alloc = n;
    }

    pd_room_ho_due[pd_room_ho_ndue].id = pd_room_conn_id(rc);
    pd_room_ho_due[pd_room_ho_ndue].turn = pd_event_turn;
    pd_room_ho_ndue++;

    if (pd_room_ho_due_ev.handler == NULL) {
        pd_room_ho_due_ev.handler = pd_room_handover_nomore;
    }

    if (!pd_room_ho_due_ev.posted) {
        pd_post_event(&pd_room_ho_due_ev, &pd_posted_next_events);
    }
}

/* the new worker's answer to the old one: the connection's id here
 * (len 8), a refusal (0), or a refusal for another to take it (1) */
static void
pd_room_moved_answer(pid_t pid, uint64_t old_id, uint64_t id, size_t len)
{
    u_char  retry = 0;

    (void) pd_channel_send_pid(pid, PD_CMD_ROOM_MOVED, old_id,
                               len == sizeof(id) ? (u_char *) &id : &retry,
                               len);
}

/*
 * Refused, or its new worker gone without a word: the socket (our copy
 * stayed open) and the session are ours again, and the client goes,
 * with what was queued for it (a kick that came meanwhile first).
 */
static void
pd_room_handover_back(pd_room_conn_t *rc, pd_room_ho_t *ho)
{
    pd_room_conf_t   *rcf = pd_get_conf(pd_cycle, pd_room_module);
    pd_connection_t  *c = rc->connection;
    u_char           *kick;
    size_t            kick_len;

    kick = NULL;
    kick_len = 0;

    if (ho != NULL && ho->kick != NULL) {
        kick = ho->kick;
        kick_len = ho->kick_len;
        ho->kick = NULL;
    }

    pd_room_handover_forget(rc);
    pd_room_ho_told++;
    pd_room_ho_handed--;
    pd_room_stat_add(PD_ROOM_STAT_HANDED_OVER, -1);

    if (pd_add_conn(c) != PD_OK) {
        pd_room_close(rc, PD_ROOM_CLOSE_ERROR);

    } else {
        pd_room_touch(rc);
        pd_event_add_timer(c->read, pd_room_idle(rc));

        if (kick != NULL) {
            pd_room_kick(rc, kick, kick_len);
        } else {
            pd_room_send_away(rc, rcf->reconnect_window);
        }
    }

    pd_free(kick);
    pd_room_handover_settle();
}

/* PD_CMD_ROOM_MOVED, in the old worker */
static void
pd_room_channel_moved(pd_cycle_t *cycle, pd_channel_msg_t *msg,
    u_char *data)
{
    pd_room_conn_t   *rc;
    pd_room_ho_t     *ho;
    pd_connection_t  *c;

    (void) cycle;

    rc = pd_room_find(msg->arg);
    if (rc == NULL || !rc->moving) {
        return;
    }

    c = rc->connection;
    ho = pd_room_ho_of(rc);

    if (msg->len == PD_ROOM_MOVED_RETRY && ho != NULL
        && pd_room_handover_target() != -1
        && pd_room_handover_target() != msg->pid
        && pd_room_hand(rc, pd_room_slot_of(rc)) == PD_OK)
    {
        /* a newer generation came meanwhile: it goes there */
        return;
    }

    rc->moving = 0;
    pd_room_ho_moving--;

    if (msg->len != sizeof(uint64_t) || ho == NULL) {
        pd_room_handover_back(rc, ho);
        return;
    }

    pd_memcpy(&ho->to_id, data, sizeof(uint64_t));
    rc->moved = 1;

    /* what went along with the session is no longer ours */
    pd_room_ho_drop_n = ho->packed;
    pd_room_out_drop(rc, pd_room_ho_drop_packed);
    pd_free(rc->in);
    rc->in = NULL;
    pd_free(rc->msg);
    rc->msg = NULL;
    pd_free(rc->resume);
    rc->resume = NULL;
    rc->backlog = 0;

    /* the register entry is the new worker's now, and so the client's
     * address count; our copy of the socket goes, the slot stays counted
     * (so the worker stays) while stragglers may come for its id */
    rc->registered = 0;

    if (rc->ip_counted) {
        pd_register->ip_release(&c->sockaddr.sockaddr);
        rc->ip_counted = 0;
    }

    (void) close(c->fd);
    c->fd = -1;

    pd_room_stat_add(PD_ROOM_STAT_WS, -1);

    /* what came meanwhile; word that nothing more is due follows once
     * the sockets had another turn (pd_room_handover_nomore) */
    pd_room_handover_forward(rc);
    pd_room_handover_nomore_due(rc, ho);

    pd_room_handover_settle();
}

/* the adoption's variable part, checked before anything is made of it */
typedef struct {
    pd_room_adopt_t  a;
    const u_char    *uid;
    const u_char    *apps[PD_APPS_MAX];
    size_t           app_len[PD_APPS_MAX];
    const u_char    *bseq;
    const u_char    *cursors;
    const u_char    *seen;
    const u_char    *in;
    const u_char    *msg;
    const u_char    *out;
} pd_room_adoption_t;

static pd_int_t
pd_room_adoption_parse(pd_room_conf_t *rcf, const u_char *data, size_t len,
    pd_room_adoption_t *ad)
{
    const u_char  *p, *end;
    pd_uint_t      i, ncursors;

    if (len < sizeof(pd_room_adopt_t)) {
        return PD_ERROR;
    }

    pd_memcpy(&ad->a, data, sizeof(pd_room_adopt_t));
    p = data + sizeof(pd_room_adopt_t);
    end = data + len;

    if (ad->a.uid_len == 0 || ad->a.uid_len > PD_UID_MAX
        || ad->a.napps > PD_APPS_MAX || ad->a.nseen > PD_ROOM_SEEN_MAX
        || ad->a.in_len > rcf->max_frame + 14
        || ad->a.msg_len > rcf->max_message
        || ad->a.hb == 0 || ad->a.hb > PD_ROOM_HB_MAX
        || ad->a.message_failed
        || (size_t) (end - p) < ad->a.uid_len)
    {
        return PD_ERROR;
    }

    ad->uid = p;
    p += ad->a.uid_len;

    for (i = 0; i < ad->a.napps; i++) {
        if (p == end || *p == 0 || *p > PD_APP_MAX
            || (size_t) (end - p) < 1 + (size_t) *p)
        {
            return PD_ERROR;
        }

        ad->app_len[i] = *p;
        ad->apps[i] = p + 1;
        p += 1 + *p;
    }

    ncursors = 0;
    for (i = 0; i < PD_APPS_MAX; i++) {
        if (ad->a.backlog & (1 << i)) {
            if (i >= ad->a.napps) {
                return PD_ERROR;
            }
            ncursors++;
        }
    }

    if ((size_t) (end - p)
        != ((ad->a.flags & PD_ROOM_ADOPT_BSEQ)
            ? ad->a.napps * sizeof(uint64_t) : 0)
           + ncursors * PD_MSG_ID_SIZE + ad->a.nseen * sizeof(uint64_t)
           + ad->a.in_len + ad->a.msg_len + (size_t) ad->a.out_len)
    {
        return PD_ERROR;
    }

    ad->bseq = p;
    p += (ad->a.flags & PD_ROOM_ADOPT_BSEQ)
         ? ad->a.napps * sizeof(uint64_t) : 0;
    ad->cursors = p;
    p += ncursors * PD_MSG_ID_SIZE;
    ad->seen = p;
    p += ad->a.nseen * sizeof(uint64_t);
    ad->in = p;
    p += ad->a.in_len;
    ad->msg = p;
    p += ad->a.msg_len;
    ad->out = p;

    return PD_OK;
}

/* a partial frame or the fragments joined so far, as the reader keeps
 * them (one malloc with its bytes) */
static pd_buf_t *
pd_room_adopt_buf(const u_char *data, size_t len, size_t cap, pd_log_t *log)
{
    pd_buf_t  *b;

    b = pd_alloc(sizeof(pd_buf_t) + cap, log);
    if (b == NULL) {
        return NULL;
    }

    pd_memzero(b, sizeof(pd_buf_t));
    b->start = (u_char *) (b + 1);
    b->end = b->start + cap;
    b->pos = b->start;
    b->last = pd_cpymem(b->start, data, len);

    return b;
}

/* the session into rc; PD_ERROR without memory */
static pd_int_t
pd_room_adopt_session(pd_room_conn_t *rc, pd_room_adoption_t *ad)
{
    pd_room_conf_t   *rcf = rc->conf;
    pd_room_ho_t     *ho;
    uint64_t          seq;
    pd_uint_t         i, k;

    if (pd_room_uid_set(rc, ad->uid, ad->a.uid_len) != PD_OK) {
        return PD_ERROR;
    }

    for (i = 0; i < ad->a.napps; i++) {
        rc->apps[i] = pd_room_app_get(ad->apps[i], ad->app_len[i]);
        if (rc->apps[i] == 0) {
            return PD_ERROR;
        }
        rc->napps++;
    }

    if (ad->a.flags & PD_ROOM_ADOPT_BSEQ) {
        for (i = 0; i < ad->a.napps; i++) {
            pd_memcpy(&seq, ad->bseq + i * sizeof(uint64_t), sizeof(seq));
            if (pd_room_bseq_set(rc, i, seq) != PD_OK) {
                return PD_ERROR;
            }
        }
    }

    if (ad->a.backlog) {
        rc->resume = pd_calloc(sizeof(pd_room_resume_t), rc->connection->log);
        if (rc->resume == NULL) {
            return PD_ERROR;
        }

        for (i = 0, k = 0; i < PD_APPS_MAX; i++) {
            if (ad->a.backlog & (1 << i)) {
                pd_memcpy(rc->resume->cursor[i],
                          ad->cursors + k++ * PD_MSG_ID_SIZE, PD_MSG_ID_SIZE);
                rc->resume->cursor[i][PD_MSG_ID_SIZE - 1] = '\0';
            }
        }

        rc->backlog = ad->a.backlog;
    }

    /* its message length is msg's (pd_room_frames) */
    rc->ws_message = ad->a.message_opcode & 0xf;
    rc->utf8 = ad->a.utf8;
    rc->bad_frames = ad->a.bad_frames;
    rc->up_second = ad->a.up_second;
    rc->up_count = ad->a.up_count;
    rc->hb = (uint16_t) ad->a.hb;

    if (ad->a.in_len) {
        rc->in = pd_room_adopt_buf(ad->in, ad->a.in_len, rcf->max_frame + 14,
                                   rc->connection->log);
        if (rc->in == NULL) {
            return PD_ERROR;
        }
    }

    if (ad->a.flags & PD_ROOM_ADOPT_MSG) {
        rc->msg = pd_room_adopt_buf(ad->msg, ad->a.msg_len, rcf->max_message,
                                    rc->connection->log);
        if (rc->msg == NULL) {
            return PD_ERROR;
        }
    }

    /* the client's sid stays its session's */
    if (pd_room_sid_keep(rc, ad->a.sid) != PD_OK) {
        return PD_ERROR;
    }

    ho = pd_room_ho_new(rc);
    if (ho == NULL) {
        return PD_ERROR;
    }

    pd_memcpy(ho->seen, ad->seen, ad->a.nseen * sizeof(uint64_t));
    ho->nseen = ad->a.nseen;
    ho->until = pd_current_msec + PD_ROOM_HANDOVER_DEDUP;
    rc->adopted = 1;

    return PD_OK;
}

/* PD_CMD_ROOM_ADOPT, in a worker of the new generation */
static void
pd_room_channel_adopt(pd_cycle_t *cycle, pd_channel_msg_t *msg,
    u_char *data)
{
    pd_room_conf_t      *rcf = pd_get_conf(cycle, pd_room_module);
    pd_room_adoption_t   ad;
    pd_listening_t      *ls;
    pd_connection_t     *c;
    pd_room_conn_t      *rc;
    pd_room_ho_t        *ho;
    pd_shbuf_t          *sb;
    pd_pool_t           *pool;
    pd_socket_t          fd = msg->fd;
    uint32_t             quiet;

    if (fd == -1) {
        return;
    }

    msg->fd = -1;       /* ours from here */

    ls = pd_room_listener_for(cycle, fd);

    if (ls == NULL || pd_exiting
        || pd_room_adoption_parse(rcf, data, msg->len, &ad) != PD_OK)
    {
        pd_log_error(PD_LOG_WARN, cycle->log, 0, "a connection handed over "
                     "by worker %d is refused (%s)", (int) msg->pid,
                     ls == NULL ? "no room listener on its port"
                     : pd_exiting ? "this worker is retiring"
                     : "malformed session");
        (void) close(fd);
        pd_room_moved_answer(msg->pid, msg->arg, 0,
                             pd_exiting ? PD_ROOM_MOVED_RETRY : 0);
        return;
    }

    c = pd_event_adopt(ls, fd);
    if (c == NULL) {
        pd_room_moved_answer(msg->pid, msg->arg, 0, 0);
        return;
    }

    rc = pd_room_conn_alloc();
    if (rc == NULL) {
        goto refuse;
    }

    rc->connection = c;
    rc->conf = rcf;
    rc->out_last = &rc->out;

    if (pd_room_adopt_session(rc, &ad) != PD_OK) {
        goto refuse;
    }

    /* the one step after which pushes come here, not there */
    if (ad.a.flags & PD_ROOM_ADOPT_REGISTERED) {
        if (pd_register == NULL
            || pd_register->move(pd_room_uid(rc), rc->uid_len, msg->pid,
                                 msg->arg, pd_room_conn_id(rc),
                                 pd_room_sid_tag(ad.a.sid))
               != PD_OK)
        {
            pd_log_error(PD_LOG_WARN, pd_conn_log(c), 0, "a connection "
                         "handed over by worker %d is refused: its register "
                         "entry is gone", (int) msg->pid);
            goto refuse;
        }

        rc->registered = 1;
    }

    if ((ad.a.flags & PD_ROOM_ADOPT_IP) && pd_register != NULL) {
        /* counted again here (no limit: it is there already), released
         * by the old worker when it hears of the move */
        rc->ip_counted = (pd_register->ip_acquire(&c->sockaddr.sockaddr, 0)
                          == PD_OK);
    }

    pd_room_moved_answer(msg->pid, msg->arg, pd_room_conn_id(rc),
                         sizeof(uint64_t));

    /* a plain connection needs no pool, nor a log of its own */
    pd_room_log_shared(c);
    pd_destroy_pool(c->pool);
    c->pool = NULL;

    c->data = rc;
    c->read->handler = pd_room_read_handler;
    c->write->handler = pd_room_write_handler;
    rc->ws = 1;
    rc->taken = 1;
    pd_room_stat(PD_ROOM_STAT_WS);
    pd_room_stat(PD_ROOM_STAT_ADOPTED);

    /* the idle deadline goes on from the last input there */
    quiet = pd_min(ad.a.quiet, pd_room_idle(rc) - 1);
    rc->last_in = (uint32_t) (pd_current_msec - quiet);
    pd_event_add_timer(c->read, pd_room_idle(rc) - quiet);

    pd_log_debug(pd_conn_log(c), "uid \"%.*s\" adopted from worker %d",
                 (int) rc->uid_len, pd_room_uid(rc), (int) msg->pid);

    if (ad.a.out_len) {
        /* what the old worker had not written yet, as it was cut */
        sb = pd_shbuf_alloc(ad.a.out_len);
        if (sb == NULL) {
            pd_room_close(rc, PD_ROOM_CLOSE_ERROR);
            return;
        }

        pd_memcpy(sb->data, ad.out, ad.a.out_len);

        if (pd_room_send_shared(rc, sb) != PD_OK) {
            pd_shbuf_unref(sb);
            return;
        }

        pd_shbuf_unref(sb);
    }

    /* frames the old worker forwards go here, before any that come
     * straight here from now on (a push routed there just before the
     * register moved must not be overtaken by one routed here after) */
    ho = pd_room_ho_of(rc);
    if (ho != NULL) {
        ho->hold = rc->out_last;
        ho->held = pd_current_msec;
        ho->from_pid = msg->pid;

        if (pd_room_ho_hold.handler == NULL) {
            pd_timer_init(&pd_room_ho_hold, pd_room_handover_hold_handler);
        }

        if (!pd_timer_is_set(&pd_room_ho_hold)) {
            (void) pd_timer_add(&pd_timers, &pd_room_ho_hold,
                                pd_current_msec, PD_ROOM_HANDOVER_HOLD);
        }
    }

    /* bytes that came meanwhile wait in the socket */
    pd_room_read_handler(c->read);
    return;

refuse:

    if (rc != NULL) {
        pd_room_handover_forget(rc);
        pd_free(rc->in);
        pd_free(rc->msg);
        pd_free(rc->resume);
        pd_room_conn_free(rc);
    }

    /* the old worker has the socket still: out of our epoll set first */
    (void) pd_del_conn(c);
    pool = c->pool;
    pd_close_connection(c);
    pd_destroy_pool(pool);

    pd_room_moved_answer(msg->pid, msg->arg, 0, 0);
}

/* PD_CMD_ROOM_FWD: a frame the old worker got for an adopted connection,
 * or (no frame) its word that no more of those queued there are due */
static void
pd_room_channel_fwd(pd_cycle_t *cycle, pd_channel_msg_t *msg, u_char *data)
{
    pd_room_fwd_t    hdr;
    pd_room_conn_t  *rc;
    pd_room_ho_t    *ho;
    pd_shbuf_t      *sb;
    pd_int_t         rv;

    (void) cycle;

    if (msg->len < sizeof(hdr)) {
        return;
    }

    rc = pd_room_find(msg->arg);
    if (rc == NULL) {
        /* closed here since */
        return;
    }

    ho = rc->adopted ? pd_room_ho_of(rc) : NULL;

    if (msg->len == sizeof(hdr)) {
        if (ho != NULL) {
            pd_room_handover_unhold(rc);
        }
        return;
    }

    pd_memcpy(&hdr, data, sizeof(hdr));

    if (hdr.seq && rc->adopted && pd_room_handover_seen(rc, hdr.seq)) {
        /* this worker's walk of that broadcast got here first */
        return;
    }

    sb = pd_shbuf_alloc(msg->len - sizeof(hdr));
    if (sb == NULL) {
        return;
    }

    pd_memcpy(sb->data, data + sizeof(hdr), msg->len - sizeof(hdr));
    sb->stamp = hdr.stamp;
    sb->seq = hdr.seq;

    /* ho may be gone: seen() forgets an expired record */
    ho = rc->adopted ? pd_room_ho_of(rc) : NULL;

    if (ho != NULL && ho->hold != NULL && !rc->lingering) {
        rv = pd_room_send_shared_at(rc, sb, &ho->hold);
    } else {
        rv = pd_room_send_shared(rc, sb);
    }

    if (rv == PD_OK) {
        pd_room_stat_add(PD_ROOM_STAT_DELIVERED, 1);
    }

    pd_shbuf_unref(sb);
}

void
pd_room_handover_init(void)
{
    pd_channel_set_handler(PD_CMD_ROOM_ADOPT, pd_room_channel_adopt);
    pd_channel_set_handler(PD_CMD_ROOM_MOVED, pd_room_channel_moved);
    pd_channel_set_handler(PD_CMD_ROOM_FWD, pd_room_channel_fwd);
}
