/*
 * pd_room_route.c: the room's routing interface (pd_room.h): a push to
 * uids, a broadcast to an app, a kick of a uid's connections.  Callers
 * (the center today) hand over a message and get an answer; the store,
 * the register lookups, the batch format and the channel commands stay
 * here.
 *
 * A push is stored first (qos 1), then framed once and handed to the
 * connections of its uids: directly when they are on this worker, else
 * as one batch per worker (of this node or another) through the channel.
 * A broadcast is framed once, retained when it has a ttl, and every
 * worker walks its own connections at its share of the rate.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_room_wire.h"
#include "pd_register.h"
#include "pd_saver.h"

/* connections of one target worker, collected before the batch goes */
typedef struct {
    pid_t                pid;
    u_char               node[PD_NODE_ID_SIZE]; /* empty: this node */
    pd_uint_t            n;
    pd_uint_t            size;          /* of conns, grown up to cap */
    uint64_t            *conns;
} pd_room_target_t;

/*
 * Targets a push keeps in itself; more go to an array of their own.  A
 * push held room for every process (PD_MAX_PROCESSES, 7.6 KB zeroed) and
 * each target a batch's worth of connection ids (16 KB), allocated for
 * every push: with unicasts, the allocator's slow path and the zeroing
 * were some 8% of a worker's CPU, for a target or two of one id.
 */
#define PD_ROOM_PUSH_TARGETS  2
#define PD_ROOM_TARGET_CONNS  8

/* what one lookup answers for; an array of them follows the push */
typedef struct {
    pd_room_push_t      *p;
    pd_str_t             uid;
    /* an early lookup's answer, held until the store's (see below) */
    pd_reg_info_t       *held;
    pd_uint_t            nheld;
    pd_int_t             held_rc;
    unsigned             answered:1;
} pd_room_lookup_t;

/*
 * One push in flight.  The store and the lookups may answer later (a
 * networked backend), so it lives on the heap: a caller that goes away
 * meanwhile releases it, and it is freed by whichever of the two ends
 * last.
 */
struct pd_room_push_s {
    pd_room_msg_t        m;              /* app in app_buf */
    pd_pool_t           *pool;           /* the caller's, for the store */
    pd_room_push_pt      done;           /* NULL once released */
    void                *data;
    pd_str_t            *uids;           /* for the store */
    pd_uint_t            nuids;
    pd_shbuf_t          *frame;
    uint64_t             seq;
    pd_room_target_t    *targets;        /* target0, or allocated */
    pd_uint_t            ntargets;
    pd_uint_t            max_targets;
    pd_room_target_t     target0[PD_ROOM_PUSH_TARGETS];
    pd_uint_t            online;
    pd_uint_t            stored;
    pd_uint_t            pending;        /* store or lookups unanswered */
    pd_uint_t            cap;            /* conns per batch */
    pd_int_t             store_rc;
    unsigned             early:1;        /* lookups asked with the store */
    unsigned             store_done:1;
    u_char               app_buf[PD_APP_MAX + 1];
    u_char               collapse_buf[PD_COLLAPSE_MAX];
};

/* a channel message is built here and sent at once */
static u_char  pd_room_batch_buf[PD_CHANNEL_MAX_DATA];

static void pd_room_push_stored(void *data, pd_int_t rc, pd_uint_t stored,
    pd_uint_t full);
static void pd_room_push_stored_early(pd_room_push_t *p, pd_int_t rc,
    pd_uint_t stored);
static void pd_room_push_ask_early(pd_room_push_t *p);
static void pd_room_route_early(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n);
static void pd_room_route_uid(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n);
static pd_int_t pd_room_push_frame(pd_room_push_t *p);
static void pd_room_push_route(pd_room_push_t *p);
static void pd_room_push_finish(pd_room_push_t *p, pd_int_t rc);

/*
 * Copies the uids (and the app) into one allocation of the push's own:
 * lookups may answer after the caller's memory is gone.  "data" is not
 * copied: it is read only until the push is framed or released.
 */
pd_room_push_t *
pd_room_push_create(pd_room_msg_t *msg, pd_str_t *uids, pd_uint_t n,
    pd_pool_t *pool, pd_room_push_pt done, void *data)
{
    pd_room_push_t    *p;
    pd_room_lookup_t  *lk;
    u_char            *b;
    size_t             bytes;
    pd_uint_t          i;

    bytes = 0;
    for (i = 0; i < n; i++) {
        bytes += uids[i].len + 1;
    }

    p = pd_alloc(sizeof(pd_room_push_t)
                 + n * (sizeof(pd_room_lookup_t) + sizeof(pd_str_t))
                 + bytes, pd_log_root);
    if (p == NULL) {
        return NULL;
    }

    pd_memzero(p, sizeof(pd_room_push_t));
    p->targets = p->target0;
    p->max_targets = PD_ROOM_PUSH_TARGETS;
    p->m = *msg;
    p->m.app.data = p->app_buf;
    pd_memcpy(p->app_buf, msg->app.data, pd_min(msg->app.len, PD_APP_MAX));
    p->m.app.len = pd_min(msg->app.len, PD_APP_MAX);
    p->m.collapse.data = p->collapse_buf;
    p->m.collapse.len = pd_min(msg->collapse.len, PD_COLLAPSE_MAX);
    if (p->m.collapse.len) {
        pd_memcpy(p->collapse_buf, msg->collapse.data, p->m.collapse.len);
    }
    p->pool = pool;
    p->done = done;
    p->data = data;
    p->nuids = n;

    lk = (pd_room_lookup_t *) (p + 1);
    p->uids = (pd_str_t *) (lk + n);
    b = (u_char *) (p->uids + n);

    for (i = 0; i < n; i++) {
        lk[i].p = p;
        lk[i].held = NULL;
        lk[i].nheld = 0;
        lk[i].answered = 0;
        lk[i].uid.data = b;
        lk[i].uid.len = uids[i].len;
        b = pd_cpymem(b, uids[i].data, uids[i].len);
        *b++ = '\0';
        p->uids[i] = lk[i].uid;
    }

    return p;
}

static void
pd_room_push_free(pd_room_push_t *p)
{
    pd_room_lookup_t  *lk;
    pd_uint_t          i;

    for (i = 0; i < p->ntargets; i++) {
        pd_free(p->targets[i].conns);
    }

    lk = (pd_room_lookup_t *) (p + 1);
    for (i = 0; i < p->nuids; i++) {
        pd_free(lk[i].held);
    }

    if (p->targets != p->target0) {
        pd_free(p->targets);
    }

    pd_shbuf_unref(p->frame);
    pd_free(p);
}

void
pd_room_push_release(pd_room_push_t *p)
{
    if (p->pending == 0) {
        pd_room_push_free(p);
        return;
    }

    /* answers still due: the last one frees it */
    p->done = NULL;
}

const char *
pd_room_push_start(pd_room_push_t *p)
{
    pd_int_t   rv;
    pd_uint_t  early;

    if (p->m.qos && pd_saver == NULL) {
        return "qos 1 needs the saver section";
    }

    if (pd_register == NULL) {
        return "the register is not enabled";
    }

    p->seq = pd_seq_next();

    if (!p->m.qos) {
        pd_room_push_route(p);
        return NULL;
    }

    /* stored before it is sent: an answer of PD_OK means it is kept */
    p->pending = 1;

    /* the lookups need not wait for the store's answer where they follow
     * it on the same link (pd_saver_store_orders_lookups): the answer
     * waits on PostgreSQL's commit, and a lookup after it was one more
     * round trip through Redis before the push's answer.  This call
     * holds the push meanwhile: the store may answer inside it.
     * Without that hold, the store's answer may have freed the push
     * (the caller's answer releases it) by the time pd_saver_store()
     * returns: only the local says which way it went */
    early = pd_saver_store_orders_lookups();

    if (early) {
        if (pd_room_push_frame(p) != PD_OK) {
            /* nothing is pending: the caller's release frees it */
            p->pending = 0;
            pd_room_push_finish(p, PD_ERROR);
            return NULL;
        }

        p->early = 1;
        p->pending++;
    }

    rv = pd_saver_store(p->uids, p->nuids, &p->m.app, &p->m.collapse,
                        p->seq, &p->m.data, p->m.ttl, p->pool,
                        pd_room_push_stored, p);
    if (rv != PD_OK) {
        p->pending = 0;
        pd_room_stat_add(PD_ROOM_STAT_STORE_FULL, 1);
        pd_room_push_finish(p, rv == PD_BUSY ? PD_BUSY : PD_ERROR);
        return NULL;
    }

    if (early) {
        if (!p->store_done || p->store_rc == PD_OK) {
            pd_room_push_ask_early(p);
        }

        if (--p->pending == 0) {
            pd_room_push_finish(p, p->store_rc == PD_OK ? PD_OK : PD_ERROR);
        }
    }

    return NULL;
}

static void
pd_room_push_stored(void *data, pd_int_t rc, pd_uint_t stored,
    pd_uint_t full)
{
    pd_room_push_t  *p = data;

    (void) full;

    if (p->early) {
        pd_room_push_stored_early(p, rc, stored);
        return;
    }

    p->pending = 0;

    if (rc != PD_OK) {
        pd_room_stat_add(PD_ROOM_STAT_STORE_FULL, 1);
        pd_room_push_finish(p, PD_ERROR);
        return;
    }

    p->stored = stored;

    if (p->done == NULL) {
        /* the caller left: it is kept, and comes on the next connect */
        pd_room_push_free(p);
        return;
    }

    pd_room_push_route(p);
}

/*
 * The early lookups: asked right behind the store, their answers held
 * (copied) until the store answers; then routed as usual, or, when the
 * store failed or the caller left, dropped.  The delivery still waits for
 * the store: nothing is sent that is not kept.
 */
static void
pd_room_push_ask_early(pd_room_push_t *p)
{
    pd_room_lookup_t  *lk;
    pd_uint_t          i;

    lk = (pd_room_lookup_t *) (p + 1);
    p->pending += p->nuids;

    for (i = 0; i < p->nuids; i++) {
        if (pd_register->lookup(lk[i].uid.data, lk[i].uid.len,
                                pd_room_route_early, &lk[i])
            != PD_OK)
        {
            pd_room_route_early(&lk[i], PD_ERROR, NULL, 0);
        }
    }
}

static void
pd_room_route_early(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n)
{
    pd_room_lookup_t  *lk = data;
    pd_room_push_t    *p = lk->p;

    if (!p->store_done) {
        lk->answered = 1;
        lk->held_rc = rc;
        lk->nheld = 0;

        if (rc == PD_OK && n > 0) {
            lk->held = pd_alloc(n * sizeof(pd_reg_info_t), pd_log_root);
            if (lk->held == NULL) {
                lk->held_rc = PD_ERROR;

            } else {
                pd_memcpy(lk->held, info, n * sizeof(pd_reg_info_t));
                lk->nheld = n;
            }
        }

        return;
    }

    if (p->store_rc != PD_OK || p->done == NULL) {
        if (--p->pending == 0) {
            pd_room_push_finish(p, p->store_rc == PD_OK ? PD_OK : PD_ERROR);
        }
        return;
    }

    pd_room_route_uid(lk, rc, info, n);
}

static void
pd_room_push_stored_early(pd_room_push_t *p, pd_int_t rc, pd_uint_t stored)
{
    pd_room_lookup_t  *lk;
    pd_uint_t          i;

    p->store_done = 1;
    p->store_rc = rc;

    if (rc != PD_OK) {
        pd_room_stat_add(PD_ROOM_STAT_STORE_FULL, 1);

    } else {
        p->stored = stored;
        pd_room_stat_add(PD_ROOM_STAT_ACCEPTED, 1);
    }

    /* the answers that came first; this answer's own hold keeps the
     * push until the loop is done */
    lk = (pd_room_lookup_t *) (p + 1);

    for (i = 0; i < p->nuids; i++) {
        if (!lk[i].answered) {
            continue;
        }

        lk[i].answered = 0;

        if (rc == PD_OK && p->done != NULL) {
            pd_room_route_uid(&lk[i], lk[i].held_rc, lk[i].held,
                              lk[i].nheld);

        } else {
            p->pending--;
        }

        pd_free(lk[i].held);
        lk[i].held = NULL;
    }

    if (--p->pending == 0) {
        pd_room_push_finish(p, rc == PD_OK ? PD_OK : PD_ERROR);
    }
}

/* framed once, for every connection; the batches' room for ids */
static pd_int_t
pd_room_push_frame(pd_room_push_t *p)
{
    p->frame = pd_room_msg_frame(p->seq, &p->m.app, p->m.qos,
                                 p->m.data.data, p->m.data.len,
                                 pd_current_msec);
    if (p->frame == NULL) {
        return PD_ERROR;
    }

    p->cap = (PD_CHANNEL_MAX_DATA - sizeof(pd_room_batch_t)
              - p->frame->len) / sizeof(uint64_t);

    return PD_OK;
}

static pd_room_target_t *
pd_room_target(pd_room_push_t *p, pd_reg_info_t *info)
{
    pd_room_target_t  *t;
    pd_uint_t          i;
    const u_char      *node;

    node = pd_register_is_local(info) ? (u_char *) "" : info->node;

    for (i = 0; i < p->ntargets; i++) {
        if (p->targets[i].pid == (pid_t) info->pid
            && strcmp((char *) p->targets[i].node, (char *) node) == 0)
        {
            return &p->targets[i];
        }
    }

    if (p->ntargets == p->max_targets) {
        if (p->max_targets == PD_MAX_PROCESSES) {
            return NULL;
        }

        t = pd_alloc(pd_min(2 * p->max_targets, PD_MAX_PROCESSES)
                     * sizeof(pd_room_target_t), pd_log_root);
        if (t == NULL) {
            return NULL;
        }

        pd_memcpy(t, p->targets, p->ntargets * sizeof(pd_room_target_t));

        if (p->targets != p->target0) {
            pd_free(p->targets);
        }

        p->targets = t;
        p->max_targets = pd_min(2 * p->max_targets, PD_MAX_PROCESSES);
    }

    t = &p->targets[p->ntargets];
    t->size = pd_min(p->cap, PD_ROOM_TARGET_CONNS);
    t->conns = pd_alloc(t->size * sizeof(uint64_t), pd_log_root);
    if (t->conns == NULL) {
        return NULL;
    }

    p->ntargets++;
    t->pid = (pid_t) info->pid;
    (void) snprintf((char *) t->node, sizeof(t->node), "%s", node);
    t->n = 0;

    return t;
}

/* room for more connection ids, up to a batch's (p->cap) */
static pd_int_t
pd_room_target_grow(pd_room_push_t *p, pd_room_target_t *t)
{
    uint64_t   *conns;
    pd_uint_t   size;

    size = pd_min(2 * t->size, p->cap);
    if (size <= t->size) {
        return PD_ERROR;
    }

    conns = pd_alloc(size * sizeof(uint64_t), pd_log_root);
    if (conns == NULL) {
        return PD_ERROR;
    }

    pd_memcpy(conns, t->conns, t->n * sizeof(uint64_t));
    pd_free(t->conns);
    t->conns = conns;
    t->size = size;

    return PD_OK;
}

/* one channel message: a batch of connections of one worker */
static void
pd_room_flush_target(pd_room_push_t *p, pd_room_target_t *t)
{
    pd_room_batch_t   hdr;
    pd_reg_info_t     to;
    u_char           *b;

    if (t->n == 0) {
        return;
    }

    hdr.stamp = p->frame->stamp;
    hdr.nconns = (uint32_t) t->n;
    hdr.frame_len = (uint32_t) p->frame->len;

    b = pd_cpymem(pd_room_batch_buf, &hdr, sizeof(hdr));
    b = pd_cpymem(b, t->conns, t->n * sizeof(uint64_t));
    b = pd_cpymem(b, p->frame->data, p->frame->len);

    pd_memzero(&to, sizeof(to));
    to.pid = (int32_t) t->pid;
    pd_memcpy(to.node, t->node, sizeof(to.node));

    /* this node: the channel; another node: its worker's Redis channel */
    if (pd_register_route(&to, PD_CMD_ROOM_SEND, 0, pd_room_batch_buf,
                          (size_t) (b - pd_room_batch_buf))
        != PD_OK)
    {
        /* stored messages come again on reconnect; count it */
        pd_stats_add(PD_STAT_CHANNEL_FULL, 1);
        if (p->m.qos == 0) {
            pd_room_stat_add(PD_ROOM_STAT_QOS0_DROPPED, t->n);
        }
    }

    t->n = 0;
}

/* the register's answer for one uid: route its connections of the app */
static void
pd_room_route_uid(void *data, pd_int_t rc, pd_reg_info_t *info, pd_uint_t n)
{
    pd_room_lookup_t  *lk = data;
    pd_room_push_t    *p = lk->p;
    pd_room_target_t  *t;
    pd_room_conn_t    *rc_local;
    pd_uint_t          i, j, found;

    found = 0;

    for (i = 0; rc == PD_OK && i < n; i++) {
        for (j = 0; j < info[i].napps; j++) {
            if (strlen((char *) info[i].apps[j]) == p->m.app.len
                && memcmp(info[i].apps[j], p->m.app.data, p->m.app.len)
                   == 0)
            {
                break;
            }
        }

        if (j == info[i].napps) {
            continue;
        }

        if (!found) {
            found = 1;

            /* qos 1: the no-ack guard decides before anything is sent */
            if (p->m.qos
                && pd_saver_delivered(&lk->uid, p->seq) == PD_ABORT)
            {
                break;
            }
        }

        if (info[i].pid == pd_pid && pd_register_is_local(&info[i])) {
            rc_local = pd_room_find(info[i].conn);
            if (rc_local != NULL) {
                (void) pd_room_deliver(rc_local, p->frame);
            }
            continue;
        }

        t = pd_room_target(p, &info[i]);
        if (t == NULL) {
            continue;
        }

        if (t->n == t->size && pd_room_target_grow(p, t) != PD_OK) {
            pd_room_flush_target(p, t);
        }

        t->conns[t->n++] = info[i].conn;

        if (t->n == p->cap) {
            pd_room_flush_target(p, t);
        }
    }

    p->online += found;

    if (--p->pending == 0) {
        pd_room_push_finish(p, PD_OK);
    }
}

/* frames once, then asks the register where each uid is */
static void
pd_room_push_route(pd_room_push_t *p)
{
    pd_room_lookup_t  *lk;
    pd_uint_t          i;

    lk = (pd_room_lookup_t *) (p + 1);

    if (pd_room_push_frame(p) != PD_OK) {
        pd_room_push_finish(p, PD_ERROR);
        return;
    }

    pd_room_stat_add(PD_ROOM_STAT_ACCEPTED, 1);

    /* one more than the lookups: answers that come at once do not
     * finish the push before every lookup has been asked */
    p->pending = p->nuids + 1;

    for (i = 0; i < p->nuids; i++) {
        if (pd_register->lookup(lk[i].uid.data, lk[i].uid.len,
                                pd_room_route_uid, &lk[i])
            != PD_OK)
        {
            pd_room_route_uid(&lk[i], PD_ERROR, NULL, 0);
        }
    }

    if (--p->pending == 0) {
        pd_room_push_finish(p, PD_OK);
    }
}

/*
 * Every answer is in: the batches go, then the caller's answer.  The
 * caller may release the push from its callback: nothing touches p
 * after it.
 */
static void
pd_room_push_finish(pd_room_push_t *p, pd_int_t rc)
{
    pd_uint_t  i;

    if (rc == PD_OK) {
        for (i = 0; i < p->ntargets; i++) {
            pd_room_flush_target(p, &p->targets[i]);
        }

        if (p->m.qos == 0) {
            pd_room_stat_add(PD_ROOM_STAT_QOS0_DROPPED, p->nuids - p->online);
        }
    }

    if (p->done == NULL) {
        pd_room_push_free(p);
        return;
    }

    p->done(p->data, rc, p->seq, p->online, p->stored);
}


/* some worker of this node walks nearly as many broadcasts as it may */
static pd_uint_t
pd_room_bcast_busy(void)
{
    pd_uint_t  i, at;

    if (pd_stats == NULL) {
        return 0;
    }

    at = pd_room_module.stats_base + PD_ROOM_STAT_WALKS;

    for (i = 0; i < PD_MAX_PROCESSES; i++) {
        if (pd_stats->slots[i].pid != 0
            && pd_stats->slots[i].counters[at]
               >= PD_ROOM_BCAST_MAX - PD_ROOM_BCAST_ROOM)
        {
            return 1;
        }
    }

    return 0;
}

pd_int_t
pd_room_broadcast(pd_room_msg_t *msg, pd_uint_t rate,
    pd_room_bcast_answer_t *out)
{
    pd_room_bcast_hdr_t   hdr;
    pd_shbuf_t           *frame;
    pd_process_t         *pr;
    u_char               *b;
    pd_uint_t             nw;
    pd_int_t              i;
    uint64_t              seq;

    out->seq = 0;
    out->workers = 0;

    if (pd_room_bcast_busy()) {
        return PD_AGAIN;
    }

    seq = pd_seq_next();
    out->seq = seq;

    if (msg->ttl && pd_saver != NULL
        && pd_saver_bcast_store(&msg->app, seq, &msg->data, msg->ttl)
           != PD_OK)
    {
        pd_room_stat_add(PD_ROOM_STAT_STORE_FULL, 1);
        return PD_BUSY;
    }

    frame = pd_room_msg_frame(seq, &msg->app, msg->qos, msg->data.data,
                              msg->data.len, pd_current_msec);

    if (frame == NULL
        || sizeof(hdr) + msg->app.len + frame->len > PD_CHANNEL_MAX_DATA)
    {
        pd_shbuf_unref(frame);
        return PD_ERROR;
    }

    nw = pd_worker_count(pd_get_conf(pd_cycle, pd_core_module));

    hdr.stamp = pd_current_msec;
    hdr.seq = seq;
    hdr.rate = (uint32_t) pd_max(rate / nw, 1);
    hdr.frame_len = (uint32_t) frame->len;
    hdr.app_len = (uint16_t) msg->app.len;
    hdr.retained = (msg->ttl && pd_saver != NULL);

    b = pd_cpymem(pd_room_batch_buf, &hdr, sizeof(hdr));
    b = pd_cpymem(b, msg->app.data, msg->app.len);
    b = pd_cpymem(b, frame->data, frame->len);

    /* every live worker of every generation: retiring ones still hold
     * connections until they have sent them away */
    out->workers = 1;
    pd_room_bcast_start(&hdr, msg->app.data, frame->data);

    for (i = 0; i < pd_last_process; i++) {
        pr = &pd_processes[i];

        if (pr->pid == -1 || i == pd_process_slot || pr->channel[0] == -1) {
            continue;
        }

        if (pd_channel_send_pid(pr->pid, PD_CMD_ROOM_BCAST, seq,
                                pd_room_batch_buf,
                                (size_t) (b - pd_room_batch_buf))
            == PD_OK)
        {
            out->workers++;
        } else {
            pd_stats_add(PD_STAT_CHANNEL_FULL, 1);
        }
    }

    /*
     * To the siblings now, not at the end of this turn: they start their
     * walks in their next turn instead of one of this worker's turns
     * later, so every worker walks the same broadcasts in a turn, and a
     * connection gets the frames of consecutive broadcasts in one
     * writev().  Earlier never breaks an order (what was corked before
     * goes first).
     */
    pd_channel_uncork();

    /* other nodes, when the register is a cluster one */
    (void) pd_register_broadcast(PD_CMD_ROOM_BCAST, pd_room_batch_buf,
                                 (size_t) (b - pd_room_batch_buf));

    pd_shbuf_unref(frame);
    pd_room_stat_add(PD_ROOM_STAT_BROADCASTS, 1);
    pd_room_stat_add(PD_ROOM_STAT_ACCEPTED, 1);

    return PD_OK;
}


/* a kick in flight: the lookup may answer after the caller left */
struct pd_room_kick_s {
    pd_room_kick_pt      done;           /* NULL once released */
    void                *data;
    pd_uint_t            pending;
    pd_str_t             uid;
    pd_str_t             device;         /* len 0: every device */
    pd_str_t             reason;
    u_char               buf[PD_UID_MAX + PD_DEVICE_MAX + PD_ROOM_KICK_MAX];
};

static void
pd_room_kick_found(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n)
{
    pd_room_kick_t  *k = data;
    pd_room_conn_t  *rc_local;
    pd_uint_t        i, kicked;

    k->pending = 0;
    kicked = 0;

    for (i = 0; rc == PD_OK && i < n; i++) {
        if (k->device.len
            && (strlen((char *) info[i].device) != k->device.len
                || memcmp(info[i].device, k->device.data, k->device.len)))
        {
            continue;
        }

        if (info[i].pid == pd_pid && pd_register_is_local(&info[i])) {
            rc_local = pd_room_find(info[i].conn);
            if (rc_local != NULL) {
                pd_room_kick(rc_local, k->reason.data, k->reason.len);
                kicked++;
            }
            continue;
        }

        if (pd_register_route(&info[i], PD_CMD_ROOM_KICK, info[i].conn,
                              k->reason.data, k->reason.len)
            == PD_OK)
        {
            kicked++;
        }
    }

    if (k->done == NULL) {
        pd_free(k);
        return;
    }

    k->done(k->data, rc == PD_OK ? PD_OK : PD_ERROR, kicked);
}

pd_room_kick_t *
pd_room_kick_uid(pd_str_t *uid, pd_str_t *device, pd_str_t *reason,
    pd_room_kick_pt done, void *data)
{
    pd_room_kick_t  *k;
    u_char          *b;

    if (uid->len > PD_UID_MAX || device->len > PD_DEVICE_MAX
        || reason->len > PD_ROOM_KICK_MAX)
    {
        return NULL;
    }

    k = pd_alloc(sizeof(pd_room_kick_t), pd_log_root);
    if (k == NULL) {
        return NULL;
    }

    k->done = done;
    k->data = data;
    k->pending = 0;

    b = k->buf;
    k->uid.data = b;
    k->uid.len = uid->len;
    b = pd_cpymem(b, uid->data, uid->len);
    k->device.data = b;
    k->device.len = device->len;
    b = pd_cpymem(b, device->data, device->len);
    k->reason.data = b;
    k->reason.len = reason->len;
    (void) pd_cpymem(b, reason->data, reason->len);

    return k;
}

pd_int_t
pd_room_kick_start(pd_room_kick_t *k)
{
    if (pd_register == NULL) {
        return PD_DECLINED;
    }

    k->pending = 1;

    if (pd_register->lookup(k->uid.data, k->uid.len, pd_room_kick_found, k)
        != PD_OK)
    {
        pd_room_kick_found(k, PD_ERROR, NULL, 0);
    }

    return PD_OK;
}

void
pd_room_kick_release(pd_room_kick_t *k)
{
    if (k->pending == 0) {
        pd_free(k);
        return;
    }

    k->done = NULL;
}
