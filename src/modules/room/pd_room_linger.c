/*
 * pd_room_linger.c: flash-reconnect resume (room.linger).  On a mobile
 * network a connection drops without a close frame many times a day; a
 * fresh session each time costs a register write, an offline and an
 * online event to the business, and the qos 0 messages of the gap.  So
 * a session whose socket dropped abruptly (a read error or EOF with no
 * close frame, an idle timeout, a write error) lingers: its room
 * connection stays with its apps, register entry, broadcast cursors and
 * connection slot (so its id, and the sid told to the client, stay
 * valid), without a socket, for room.linger.  Meanwhile:
 *
 *   - the frames for it (qos 0 and qos 1 messages, broadcasts) are kept,
 *     in order, up to room.linger_buffer bytes (beyond, dropped: the
 *     resume says resumed:false); so are those queued and not yet
 *     written when the socket dropped;
 *   - presence still lists it; no offline event is sent.
 *
 * A reconnect with &sid=<its sid> and a valid token for the same uid and
 * device gets it back: the new socket moves into the session's slot
 * (pd_room_take_back), the welcome says resumed:true, then the saver's
 * qos 1 messages not acked that are not among the kept frames (those
 * the dropped socket had written, which the client may not have read:
 * they were sent before the kept ones), then the kept frames in the
 * order sent, then retained broadcasts past the cursors, as on a
 * connect.  The output waits for the saver's answer (one round trip to
 * the cluster's store; none for the memory store), so the order holds
 * across qos 0 and qos 1.  SO_REUSEPORT may hand the reconnect to
 * any worker: the sid names the session's worker (a keyed hash of its
 * pid and connection id, the key the same in every worker), the worker
 * that got it finds the entry in the node's register zone, and a plain
 * connection's descriptor is sent to the owner with the request's bytes
 * (SCM_RIGHTS on the channel), which answers it as its own.  A TLS
 * connection cannot move (its OpenSSL state lives in this process), so
 * it is a fresh session there and the lingering one ends at once.
 *
 * A clean close (close frame) or a kick ends a session at once; an
 * unknown or expired sid is a fresh session (resumed:false), never an
 * error.
 *
 * A session keeps its sid for its life, across reloads too.  A
 * connection handed to a new worker (pd_room_handover.c) has a new pid
 * and id there, so its sid no longer follows from them: the adoption
 * carries the sid, the new worker keeps it in a side record made only
 * for adopted connections (pd_room_sids, by connection slot), and the
 * register entry keeps 24 bits of it (sid_tag, in the entry's tail
 * padding).  A resume whose sid names no entry directly goes to the
 * worker of the uid and device's entry with that tag, which compares
 * the whole sid with its record; a mismatch is a fresh session there.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_room_wire.h"
#include "pd_register.h"
#include "pd_saver.h"

/* a resumed connection handed over by a sibling is being answered: it
 * must not be handed on again */
static pd_uint_t  pd_room_handed;

/*
 * The session id's opaque part: a keyed hash of the worker's pid and the
 * connection id.  The key is random per node run and shared by its
 * workers, so any worker can tell whose a sid is; a client learns
 * nothing about workers or slots from it.
 */
uint64_t
pd_room_sid_of(uint32_t pid, uint64_t id)
{
    u_char  in[12];

    pd_memcpy(in, &pid, 4);
    pd_memcpy(in + 4, &id, 8);

    return pd_siphash24(pd_stats->sid_key, in, sizeof(in));
}

/*
 * The sids the clients of adopted connections hold, by connection slot
 * (0: none; rc->sid_kept says a slot's is set).  Made at the first
 * adoption with calloc: a large block is fresh zero pages, written only
 * as slots are used, so the cost is 8 bytes per slot in use in a worker
 * that adopted, none in the others.
 */
static uint64_t  *pd_room_sids;

pd_int_t
pd_room_sid_keep(pd_room_conn_t *rc, uint64_t sid)
{
    uint64_t  i = pd_room_conn_id(rc) >> 32;

    if (i >= pd_cycle->connection_n) {
        return PD_ERROR;
    }

    if (pd_room_sids == NULL) {
        pd_room_sids = calloc(pd_cycle->connection_n, sizeof(uint64_t));
        if (pd_room_sids == NULL) {
            pd_log_error(PD_LOG_ALERT, pd_log_root, errno,
                         "calloc() of the adopted sessions' ids failed");
            return PD_ERROR;
        }
    }

    pd_room_sids[i] = sid;
    rc->sid_kept = 1;

    return PD_OK;
}

void
pd_room_sid_forget(pd_room_conn_t *rc)
{
    if (rc->sid_kept) {
        pd_room_sids[pd_room_conn_id(rc) >> 32] = 0;
        rc->sid_kept = 0;
    }
}

/* the sid the client of rc holds */
uint64_t
pd_room_sid_hash(pd_room_conn_t *rc)
{
    if (rc->sid_kept) {
        return pd_room_sids[pd_room_conn_id(rc) >> 32];
    }

    return pd_room_sid_of((uint32_t) pd_pid, pd_room_conn_id(rc));
}

/* the 24 bits of a sid the register entry keeps (never 0: no tag) */
uint32_t
pd_room_sid_tag(uint64_t sid)
{
    uint32_t  tag = (uint32_t) (sid >> 40);

    return tag ? tag : 1;
}

size_t
pd_room_session_id(pd_room_conn_t *rc, u_char *buf, size_t size)
{
    pd_core_conf_t  *ccf;

    ccf = pd_get_conf(pd_cycle, pd_core_module);

    /* "node-hash" */
    return (size_t) (pd_slprintf(buf, buf + size, "%.*s-%016lx",
                                 (int) ccf->node_id.len, ccf->node_id.data,
                                 (unsigned long) pd_room_sid_hash(rc))
                     - buf);
}

/* a client's "node-hash" of this node into *out: PD_OK, else PD_ERROR
 * (another node's, or not a sid at all) */
static pd_int_t
pd_room_sid_parse(pd_str_t *sid, uint64_t *out)
{
    pd_core_conf_t  *ccf;
    const u_char    *p;
    uint64_t         v;
    pd_uint_t        i, d;

    ccf = pd_get_conf(pd_cycle, pd_core_module);

    if (sid->len != ccf->node_id.len + 17
        || memcmp(sid->data, ccf->node_id.data, ccf->node_id.len) != 0
        || sid->data[ccf->node_id.len] != '-')
    {
        return PD_ERROR;
    }

    p = sid->data + ccf->node_id.len + 1;
    v = 0;

    for (i = 0; i < 16; i++) {
        if (p[i] >= '0' && p[i] <= '9') {
            d = p[i] - '0';
        } else if (p[i] >= 'a' && p[i] <= 'f') {
            d = p[i] - 'a' + 10;
        } else {
            return PD_ERROR;
        }

        v = v << 4 | d;
    }

    *out = v;

    return PD_OK;
}

/* a frame for a lingering session: 1 when it is not kept */
pd_uint_t
pd_room_linger_skip(pd_room_conn_t *rc, pd_shbuf_t *sb)
{
    if (rc->out_bytes + sb->len > rc->conf->linger_buffer) {
        if (!rc->linger_lost) {
            pd_log_error(PD_LOG_INFO, pd_conn_log(rc->connection), 0,
                         "lingering session over linger_buffer: frames "
                         "dropped, its resume will say so");
        }

        rc->linger_lost = 1;
        return 1;
    }

    return 0;
}

/*
 * What stays queued when the socket drops: a frame partly written is cut
 * (its rest means nothing to a new connection; a qos 1 one comes again
 * from the saver), the others stay for the resume.
 */
static pd_uint_t
pd_room_linger_drop(pd_buf_t *b)
{
    return b->pos != b->start;
}

pd_int_t
pd_room_linger_start(pd_room_conn_t *rc, pd_uint_t reason)
{
    pd_connection_t  *c = rc->connection;

    if (rc->conf->linger == 0 || !rc->taken || rc->lingering
        || rc->closing || rc->close_sent || c->close || pd_exiting
        || (reason != PD_ROOM_CLOSE_CLIENT && reason != PD_ROOM_CLOSE_IDLE
            && reason != PD_ROOM_CLOSE_ERROR))
    {
        return PD_DECLINED;
    }

    if (rc->adopted) {
        /* the queue changes under its insertion point */
        pd_room_handover_unhold(rc);
    }

    pd_room_out_drop(rc, pd_room_linger_drop);

    /* a resume cut short: its fetches' answers go to the end, kept */
    rc->resuming = 0;

    pd_free(rc->in);
    rc->in = NULL;
    pd_free(rc->msg);
    rc->msg = NULL;
    rc->ws_message = 0;
    pd_utf8_init(&rc->utf8);
    rc->bad_frames = 0;

    if (c->ssl != NULL) {
        c->ssl->no_wait_shutdown = 1;
        pd_ssl_shutdown(c);
        c->ssl = NULL;
        c->tls_io = 0;
    }

    if (c->pool != NULL) {
        pd_destroy_pool(c->pool);
        c->pool = NULL;
    }

    if (rc->ip_counted) {
        pd_register->ip_release(&c->sockaddr.sockaddr);
        rc->ip_counted = 0;
    }

    pd_detach_connection(c);

    if (rc->registered) {
        /* presence tells it apart: "lingering", not online */
        (void) pd_register->set_lingering(pd_room_uid(rc), rc->uid_len,
                                          pd_room_conn_id(rc), 1);
    }

    rc->lingering = 1;
    rc->linger_lost = 0;
    pd_room_stat(PD_ROOM_STAT_CLOSES + reason);
    pd_room_stat_add(PD_ROOM_STAT_WS, -1);
    pd_room_stat(PD_ROOM_STAT_LINGERING);

    /* its end: the read handler sees the timeout with rc->lingering */
    pd_event_add_timer(c->read, rc->conf->linger);

    pd_log_error(PD_LOG_INFO, pd_conn_log(c), 0, "connection lost (%s): the "
                 "session lingers for %lu ms",
                 pd_room_close_names[reason],
                 (unsigned long) rc->conf->linger);

    return PD_OK;
}

/* the register's entry of the uid on this node whose session id is sid */
typedef struct {
    uint64_t         sid;
    pd_str_t        *device;
    pd_reg_info_t    found;
    pd_uint_t        n;
} pd_room_sid_find_t;

static void
pd_room_sid_found(void *data, pd_int_t rc, pd_reg_info_t *info,
    pd_uint_t n)
{
    pd_room_sid_find_t  *f = data;
    pd_room_conn_t      *r;
    uint32_t             tag;
    pd_uint_t            i;

    if (rc != PD_OK) {
        return;
    }

    tag = pd_room_sid_tag(f->sid);

    for (i = 0; i < n; i++) {
        if (strlen((char *) info[i].device) != f->device->len
            || memcmp(info[i].device, f->device->data, f->device->len) != 0)
        {
            continue;
        }

        if (pd_room_sid_of((uint32_t) info[i].pid, info[i].conn) == f->sid) {
            f->found = info[i];
            f->n = 1;
            return;
        }

        /* an adopted connection's: the whole sid is its worker's to
         * compare; ours now, another's when it gets the request */
        if (info[i].sid_tag != tag) {
            continue;
        }

        if (info[i].pid == (int32_t) pd_pid) {
            r = pd_room_find(info[i].conn);

            if (r != NULL && r->sid_kept && pd_room_sid_hash(r) == f->sid) {
                f->found = info[i];
                f->n = 1;
                return;
            }

            continue;
        }

        if (f->n == 0) {
            f->found = info[i];
            f->n = 1;
        }
    }
}

/* hands the connection's socket and request to the session's worker */
static pd_int_t
pd_room_hand_over(pd_http_conn_t *hc, pd_reg_info_t *owner)
{
    pd_connection_t  *c = hc->connection;
    size_t            len;
    pd_int_t          rv;

    len = (size_t) (hc->in->last - hc->in->pos);

    if (c->ssl != NULL || pd_room_handed || len > PD_CHANNEL_MAX_DATA) {
        return PD_DECLINED;
    }

    rv = pd_channel_send_fd(owner->pid, PD_CMD_ROOM_RESUME, owner->conn,
                            c->fd, hc->in->pos, len);
    if (rv != PD_OK) {
        /* its channel holds frames not yet written (a busy or stopped
         * sibling), and a descriptor cannot wait in that queue */
        pd_log_error(PD_LOG_INFO, c->log, 0, "resume not handed to worker "
                     "%d (%s): a fresh session", (int) owner->pid,
                     rv == PD_AGAIN ? "its channel is busy"
                                    : "its channel failed");
        return PD_DECLINED;
    }

    /* the sibling has its own copy of the socket now: ours goes quietly,
     * neither answered nor counted as a close */
    pd_log_error(PD_LOG_INFO, pd_conn_log(c), 0, "resume handed to worker %d",
                 (int) owner->pid);

    pd_destroy_pool(hc->pool);
    hc->pool = NULL;

    pd_active_connections--;
    pd_stats_dec(PD_STAT_CONNECTIONS);

    {
        pd_pool_t    *pool = c->pool;
        pd_socket_t   fd = c->fd;

        pd_release_connection(c, 1);
        (void) close(fd);
        pd_destroy_pool(pool);
    }

    return PD_OK;
}

pd_int_t
pd_room_resume(pd_http_conn_t *hc, pd_str_t *uid, pd_str_t *device,
    pd_str_t *sid, uint32_t hb)
{
    pd_room_sid_find_t   f;
    pd_room_conn_t      *rc;
    pd_int_t             rv;

    if (pd_register == NULL || pd_stats == NULL) {
        return PD_DECLINED;
    }

    if (pd_room_sid_parse(sid, &f.sid) != PD_OK) {
        return PD_DECLINED;
    }

    f.device = device;
    f.n = 0;

    /* the node's own zone, in either backend: it answers at once */
    (void) pd_register_memory_backend.lookup(uid->data, uid->len,
                                             pd_room_sid_found, &f);
    if (f.n == 0) {
        /* expired, ended, or never ours: a client's normal case after a
         * long absence, so only at info (a resume:false is explained) */
        pd_log_error(PD_LOG_INFO, hc->connection->log, 0,
                     "resume: no session of uid \"%.*s\" has this sid: a "
                     "fresh session", (int) uid->len, uid->data);
        return PD_DECLINED;
    }

    if (f.found.pid != (int32_t) pd_pid) {
        if (pd_room_hand_over(hc, &f.found) == PD_OK) {
            return PD_OK;
        }

        /* a fresh session here: the lingering one ends now, or it would
         * take this client's messages until it expired (if the sid is
         * its: the worker checks) */
        (void) pd_channel_send_pid(f.found.pid, PD_CMD_ROOM_END,
                                   f.found.conn, (u_char *) &f.sid,
                                   sizeof(f.sid));
        return PD_DECLINED;
    }

    rc = pd_room_find(f.found.conn);
    if (rc == NULL) {
        pd_log_error(PD_LOG_INFO, hc->connection->log, 0,
                     "resume: the session of uid \"%.*s\" is no longer "
                     "here: a fresh session", (int) uid->len, uid->data);
        return PD_DECLINED;
    }

    if (!rc->lingering) {
        /* the old socket is still open here (the client saw it die
         * first): it is the dead one */
        if (pd_room_linger_start(rc, PD_ROOM_CLOSE_CLIENT) != PD_OK) {
            pd_log_error(PD_LOG_INFO, hc->connection->log, 0,
                         "resume: the session of uid \"%.*s\" is closing: "
                         "a fresh session", (int) uid->len, uid->data);
            return PD_DECLINED;
        }
    }

    rv = pd_room_take_back(rc, hc, hb);

    if (rv != PD_OK) {
        /* the session lingers on; this connection is refused */
        hc->keepalive = 0;
        (void) pd_http_send_error(hc, rv == PD_BUSY ? 429 : 503,
                                  rv == PD_BUSY
                                  ? "too many connections from this address"
                                  : "out of memory");
    }

    return PD_OK;
}

static in_port_t
pd_room_port(struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6) {
        return ((struct sockaddr_in6 *) sa)->sin6_port;
    }

    return ((struct sockaddr_in *) sa)->sin_port;
}

pd_listening_t *
pd_room_listener_for(pd_cycle_t *cycle, pd_socket_t fd)
{
    pd_room_conf_t          *rcf = pd_get_conf(cycle, pd_room_module);
    pd_listening_t          *l;
    struct sockaddr_storage  local;
    socklen_t                llen = sizeof(local);
    pd_uint_t                i;

    if (getsockname(fd, (struct sockaddr *) &local, &llen) == -1) {
        return NULL;
    }

    /* the room listener it came in on: the same port, plain */
    l = cycle->listening.elts;

    for (i = 0; i < cycle->listening.nelts; i++) {
        if (l[i].servers == &rcf->http && !l[i].ssl
            && l[i].connection != NULL
            && pd_room_port((struct sockaddr *) &l[i].sockaddr)
               == pd_room_port((struct sockaddr *) &local))
        {
            return &l[i];
        }
    }

    return NULL;
}

/* a sibling's resumed connection: answered here, as if accepted here */
static void
pd_room_channel_resume(pd_cycle_t *cycle, pd_channel_msg_t *msg,
    u_char *data)
{
    pd_listening_t          *ls;
    pd_connection_t         *c;
    pd_socket_t              fd = msg->fd;

    if (fd == -1) {
        return;
    }

    msg->fd = -1;       /* ours from here */

    ls = pd_room_listener_for(cycle, fd);

    if (ls == NULL) {
        pd_log_error(PD_LOG_WARN, cycle->log, 0, "a resumed connection "
                     "came for no room listener of this worker");
        (void) close(fd);
        return;
    }

    c = pd_event_adopt(ls, fd);
    if (c == NULL) {
        return;
    }

    pd_room_handed = 1;
    pd_http_init_connection_with(c, data, msg->len);
    pd_room_handed = 0;
}

/* a sibling started a fresh session for a lingering one of ours (the
 * sid the client gave: a tag's match may be another session's) */
static void
pd_room_channel_end(pd_cycle_t *cycle, pd_channel_msg_t *msg, u_char *data)
{
    pd_room_conn_t  *rc;
    uint64_t         sid;

    (void) cycle;

    if (msg->len != sizeof(sid)) {
        return;
    }

    pd_memcpy(&sid, data, sizeof(sid));

    rc = pd_room_find(msg->arg);
    if (rc != NULL && rc->lingering && pd_room_sid_hash(rc) == sid) {
        pd_room_close(rc, PD_ROOM_CLOSE_CLIENT);
    }
}

void
pd_room_linger_init(void)
{
    pd_channel_set_handler(PD_CMD_ROOM_RESUME, pd_room_channel_resume);
    pd_channel_set_handler(PD_CMD_ROOM_END, pd_room_channel_end);
}
