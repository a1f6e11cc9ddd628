/*
 * pd_channel.c: SOCK_SEQPACKET channels between the master and workers
 * and between workers; a packet is one message, an fd may ride along.
 */

#include "pd_core.h"

#include <sys/ioctl.h>
#include <linux/sockios.h>

static pd_channel_handler_pt  pd_channel_handlers[PD_CMD_MAX];

void
pd_channel_set_handler(pd_uint_t command, pd_channel_handler_pt h)
{
    if (command < PD_CMD_MAX) {
        pd_channel_handlers[command] = h;
    }
}

pd_int_t
pd_write_channel(pd_socket_t s, pd_channel_msg_t *msg, const u_char *data,
    pd_log_t *log)
{
    struct msghdr    mh;
    struct iovec     iov[2];
    struct cmsghdr  *cmsg;
    ssize_t          n;
    pd_err_t         err;
    union {
        struct cmsghdr  cm;
        char            space[CMSG_SPACE(sizeof(int))];
    } cmsgbuf;

    if (msg->len > (msg->command == PD_CMD_BATCH ? PD_CHANNEL_BATCH_MAX
                                                 : PD_CHANNEL_MAX_DATA))
    {
        pd_log_error(PD_LOG_ALERT, log, 0, "channel message too large: %u",
                     (unsigned) msg->len);
        return PD_ERROR;
    }

    pd_memzero(&mh, sizeof(mh));

    iov[0].iov_base = msg;
    iov[0].iov_len = sizeof(pd_channel_msg_t);
    iov[1].iov_base = (void *) data;
    iov[1].iov_len = msg->len;

    mh.msg_iov = iov;
    mh.msg_iovlen = msg->len ? 2 : 1;

    if (msg->fd != -1) {
        pd_memzero(&cmsgbuf, sizeof(cmsgbuf));
        mh.msg_control = &cmsgbuf;
        mh.msg_controllen = sizeof(cmsgbuf);

        cmsg = CMSG_FIRSTHDR(&mh);
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        pd_memcpy(CMSG_DATA(cmsg), &msg->fd, sizeof(int));
    }

    do {
        n = sendmsg(s, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n == -1 && errno == EINTR);

    if (n == -1) {
        err = errno;
        if (err == EAGAIN) {
            return PD_AGAIN;
        }

        pd_log_error(PD_LOG_ALERT, log, err, "sendmsg() on channel failed");
        return PD_ERROR;
    }

    return PD_OK;
}

pd_int_t
pd_read_channel(pd_socket_t s, pd_channel_msg_t *msg, u_char *data,
    pd_log_t *log)
{
    struct msghdr    mh;
    struct iovec     iov[2];
    struct cmsghdr  *cmsg;
    ssize_t          n;
    pd_err_t         err;
    union {
        struct cmsghdr  cm;
        char            space[CMSG_SPACE(sizeof(int))];
    } cmsgbuf;

    pd_memzero(&mh, sizeof(mh));

    iov[0].iov_base = msg;
    iov[0].iov_len = sizeof(pd_channel_msg_t);
    iov[1].iov_base = data;
    iov[1].iov_len = PD_CHANNEL_BATCH_MAX;

    mh.msg_iov = iov;
    mh.msg_iovlen = 2;
    mh.msg_control = &cmsgbuf;
    mh.msg_controllen = sizeof(cmsgbuf);

    do {
        n = recvmsg(s, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n == -1 && errno == EINTR);

    if (n == -1) {
        err = errno;
        if (err == EAGAIN) {
            return PD_AGAIN;
        }

        pd_log_error(PD_LOG_ALERT, log, err, "recvmsg() on channel failed");
        return PD_ERROR;
    }

    if (n == 0) {
        return PD_ERROR;
    }

    if ((size_t) n < sizeof(pd_channel_msg_t)
        || (size_t) n != sizeof(pd_channel_msg_t) + msg->len
        || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
    {
        pd_log_error(PD_LOG_ALERT, log, 0,
                     "recvmsg() returned a malformed message of %zd bytes",
                     n);
        return PD_ERROR;
    }

    msg->fd = -1;

    cmsg = CMSG_FIRSTHDR(&mh);
    if (cmsg != NULL && cmsg->cmsg_level == SOL_SOCKET
        && cmsg->cmsg_type == SCM_RIGHTS
        && cmsg->cmsg_len == CMSG_LEN(sizeof(int)))
    {
        pd_memcpy(&msg->fd, CMSG_DATA(cmsg), sizeof(int));
    }

    return PD_OK;
}

void
pd_close_channel(pd_socket_t *fd, pd_log_t *log)
{
    if (fd[0] != -1 && close(fd[0]) == -1) {
        pd_log_error(PD_LOG_ALERT, log, errno, "close() channel failed");
    }

    if (fd[1] != -1 && close(fd[1]) == -1) {
        pd_log_error(PD_LOG_ALERT, log, errno, "close() channel failed");
    }

    fd[0] = -1;
    fd[1] = -1;
}

pd_int_t
pd_add_channel_event(pd_cycle_t *cycle, pd_socket_t fd,
    pd_event_handler_pt handler)
{
    pd_connection_t  *c;

    c = pd_get_connection(fd, cycle->log);
    if (c == NULL) {
        return PD_ERROR;
    }

    c->shared = 1;
    c->channel = 1;
    c->log = cycle->log;
    c->read->handler = handler;

    if (pd_add_read_event(c->read) != PD_OK) {
        pd_free_connection(c);
        return PD_ERROR;
    }

    return PD_OK;
}

/* the worker's dispatcher for module commands */
pd_int_t
pd_channel_dispatch(pd_cycle_t *cycle, pd_channel_msg_t *msg, u_char *data)
{
    if (msg->command < PD_CMD_MAX
        && pd_channel_handlers[msg->command] != NULL)
    {
        pd_channel_handlers[msg->command](cycle, msg, data);
        return PD_OK;
    }

    return PD_DECLINED;
}

/*
 * A sibling's channel may be full for a moment (a burst of deliveries):
 * messages then wait here, in order, and leave when its socket takes
 * them again, instead of being dropped.  Bounded per sibling.
 */
#define PD_CHANNEL_QUEUE_MAX  (64 * 1024 * 1024)

/*
 * What a worker lets wait in a sibling's socket before it counts the
 * channel as backed up (SIOCOUTQ: bytes sent, not yet read).  The socket
 * itself has far more room (pd_process.c), so that the master's few
 * control messages (a new sibling's descriptor, a quit) always fit, and
 * a backed-up channel is drained by a short timer instead of EPOLLOUT.
 */
#define PD_CHANNEL_INFLIGHT   (4 * PD_CHANNEL_BATCH_MAX)
#define PD_CHANNEL_RETRY      1        /* ms */

typedef struct pd_channel_out_s  pd_channel_out_t;

struct pd_channel_out_s {
    pd_channel_out_t   *next;
    pd_channel_msg_t    msg;
    u_char              data[];
};

typedef struct {
    pd_channel_out_t   *head;
    pd_channel_out_t  **tail;
    size_t              bytes;
    pd_connection_t    *c;          /* the socket, watched for room */
    u_char             *cork;       /* PD_CHANNEL_BATCH_MAX, kept */
    size_t              cork_len;
    pd_uint_t           cork_n;     /* records in it */
} pd_channel_queue_t;

static pd_channel_queue_t  pd_channel_queues[PD_MAX_PROCESSES];

/* slots with corked records, in the order they were first written */
static pd_int_t            pd_channel_corked[PD_MAX_PROCESSES];
static pd_uint_t           pd_channel_ncorked;
static pd_uint_t           pd_channel_corking;

/* siblings whose out-queue is not empty, and who to tell when none is */
static pd_uint_t           pd_channel_backed_up;
static pd_event_t         *pd_channel_drain_ev;
static pd_timer_t          pd_channel_retry;

static pd_int_t pd_channel_write_or_queue(pd_int_t slot,
    pd_channel_msg_t *msg, const u_char *data);

pd_uint_t
pd_channel_congested(void)
{
    return pd_channel_backed_up != 0;
}

void
pd_channel_on_drain(pd_event_t *ev)
{
    pd_channel_drain_ev = ev;
}

static void
pd_channel_queue_emptied(void)
{
    if (--pd_channel_backed_up == 0 && pd_channel_drain_ev != NULL) {
        pd_post_event(pd_channel_drain_ev, &pd_posted_events);
    }
}

static size_t
pd_channel_outq(pd_socket_t fd)
{
    int  n;

    return (ioctl(fd, SIOCOUTQ, &n) == -1 || n < 0) ? 0 : (size_t) n;
}

static void
pd_channel_flush(pd_channel_queue_t *q, pd_socket_t fd)
{
    pd_channel_out_t  *o;
    pd_int_t           rc;

    if (q->head == NULL) {
        return;
    }

    while ((o = q->head) != NULL) {
        if (pd_channel_outq(fd) > PD_CHANNEL_INFLIGHT) {
            return;
        }

        rc = pd_write_channel(fd, &o->msg, o->data, pd_log_root);

        if (rc == PD_AGAIN) {
            return;
        }

        /* sent, or the sibling is gone (CLOSE_CHANNEL follows) */
        q->head = o->next;
        q->bytes -= sizeof(pd_channel_out_t) + o->msg.len;
        pd_free(o);
    }

    q->tail = &q->head;
    pd_channel_queue_emptied();
}

/* while a sibling is backed up: its queue goes on as it reads */
static void
pd_channel_retry_handler(pd_timer_t *t)
{
    pd_int_t  i;

    for (i = 0; i < pd_last_process; i++) {
        if (pd_channel_queues[i].head != NULL
            && pd_processes[i].channel[0] != -1)
        {
            pd_channel_flush(&pd_channel_queues[i],
                             pd_processes[i].channel[0]);
        }
    }

    if (pd_channel_backed_up) {
        (void) pd_timer_add(&pd_timers, t, pd_current_msec,
                            PD_CHANNEL_RETRY);
    }
}

static void
pd_channel_writable(pd_event_t *ev)
{
    pd_connection_t  *c = ev->data;

    if (!ev->write) {
        return;
    }

    pd_channel_flush(c->data, c->fd);
}

/* the sibling in slot is gone: its queue and its socket go */
void
pd_channel_forget(pd_int_t slot)
{
    pd_channel_queue_t  *q = &pd_channel_queues[slot];
    pd_channel_out_t    *o;

    if (q->head != NULL) {
        pd_channel_queue_emptied();
    }

    while ((o = q->head) != NULL) {
        q->head = o->next;
        pd_free(o);
    }

    q->tail = &q->head;
    q->bytes = 0;
    q->cork_len = 0;
    q->cork_n = 0;

    if (q->c != NULL) {
        /* closes the fd too: the caller must not close it again */
        pd_close_connection(q->c);
        q->c = NULL;
        pd_processes[slot].channel[0] = -1;
    }
}

static pd_int_t
pd_channel_enqueue(pd_int_t slot, pd_channel_msg_t *msg, const u_char *data)
{
    pd_channel_queue_t  *q = &pd_channel_queues[slot];
    pd_channel_out_t    *o;
    pd_connection_t     *c;

    if (q->bytes + sizeof(pd_channel_out_t) + msg->len
        > PD_CHANNEL_QUEUE_MAX)
    {
        return PD_AGAIN;
    }

    if (q->c == NULL) {
        /* first overflow: watch the socket for room, edge-triggered */
        c = pd_get_connection(pd_processes[slot].channel[0], pd_log_root);
        if (c == NULL) {
            return PD_AGAIN;
        }

        c->shared = 1;
        c->data = q;
        c->read->handler = pd_channel_writable;
        c->write->handler = pd_channel_writable;

        if (pd_add_conn(c) != PD_OK) {
            pd_free_connection(c);
            return PD_AGAIN;
        }

        q->c = c;
    }

    o = pd_alloc(sizeof(pd_channel_out_t) + msg->len, pd_log_root);
    if (o == NULL) {
        return PD_AGAIN;
    }

    o->next = NULL;
    o->msg = *msg;
    if (msg->len) {
        pd_memcpy(o->data, data, msg->len);
    }

    if (q->head == NULL) {
        q->tail = &q->head;
        pd_channel_backed_up++;

        if (pd_channel_retry.handler == NULL) {
            pd_timer_init(&pd_channel_retry, pd_channel_retry_handler);
        }

        if (!pd_timer_is_set(&pd_channel_retry)) {
            (void) pd_timer_add(&pd_timers, &pd_channel_retry,
                                pd_current_msec, PD_CHANNEL_RETRY);
        }
    }

    *q->tail = o;
    q->tail = &o->next;
    q->bytes += sizeof(pd_channel_out_t) + msg->len;

    return PD_OK;
}

/* what is corked for slot leaves: one message as it is, more as a batch */
static void
pd_channel_flush_cork(pd_int_t slot)
{
    pd_channel_queue_t  *q = &pd_channel_queues[slot];
    pd_channel_msg_t     msg;
    pd_int_t             rc;

    if (q->cork_len == 0) {
        return;
    }

    if (q->cork_n == 1) {
        pd_memcpy(&msg, q->cork, sizeof(msg));
        rc = pd_channel_write_or_queue(slot, &msg,
                                       q->cork + sizeof(msg));
    } else {
        msg.command = PD_CMD_BATCH;
        msg.pid = pd_pid;
        msg.slot = (int32_t) pd_process_slot;
        msg.fd = -1;
        msg.arg = q->cork_n;
        msg.len = (uint32_t) q->cork_len;
        rc = pd_channel_write_or_queue(slot, &msg, q->cork);
    }

    if (rc != PD_OK && pd_processes[slot].channel[0] != -1) {
        /* a sibling 64 MB behind: stored messages come on reconnect */
        pd_log_error(PD_LOG_ERR, pd_log_root, 0,
                     "channel to worker %d full: %u messages dropped",
                     (int) pd_processes[slot].pid, (unsigned) q->cork_n);
        pd_stats_add(PD_STAT_CHANNEL_FULL, q->cork_n);
    }

    q->cork_len = 0;
    q->cork_n = 0;
}

void
pd_channel_cork(void)
{
    pd_channel_corking = 1;
}

void
pd_channel_uncork(void)
{
    pd_uint_t  i;

    for (i = 0; i < pd_channel_ncorked; i++) {
        pd_channel_flush_cork(pd_channel_corked[i]);
    }

    pd_channel_ncorked = 0;
}

static pd_int_t
pd_channel_write_or_queue(pd_int_t slot, pd_channel_msg_t *msg,
    const u_char *data)
{
    pd_int_t  rc;

    if (pd_processes[slot].channel[0] == -1) {
        return PD_ERROR;
    }

    /* behind what waits already, so the order holds; or the sibling is
     * behind already */
    if (pd_channel_queues[slot].head != NULL
        || pd_channel_outq(pd_processes[slot].channel[0])
           > PD_CHANNEL_INFLIGHT)
    {
        return pd_channel_enqueue(slot, msg, data);
    }

    rc = pd_write_channel(pd_processes[slot].channel[0], msg, data,
                          pd_log_root);

    if (rc == PD_AGAIN) {
        return pd_channel_enqueue(slot, msg, data);
    }

    return rc;
}

static pd_int_t
pd_channel_send(pd_int_t slot, pd_uint_t command, uint64_t arg,
    const u_char *data, size_t len)
{
    pd_channel_queue_t  *q = &pd_channel_queues[slot];
    pd_channel_msg_t     msg;
    size_t               rec;

    msg.command = (uint32_t) command;
    msg.pid = pd_pid;
    msg.slot = (int32_t) pd_process_slot;
    msg.fd = -1;
    msg.arg = arg;
    msg.len = (uint32_t) len;

    if (len > PD_CHANNEL_MAX_DATA) {
        return PD_ERROR;
    }

    rec = sizeof(msg) + len;

    if (!pd_channel_corking) {
        return pd_channel_write_or_queue(slot, &msg, data);
    }

    if (q->cork == NULL) {
        q->cork = pd_alloc(PD_CHANNEL_BATCH_MAX, pd_log_root);
        if (q->cork == NULL) {
            return pd_channel_write_or_queue(slot, &msg, data);
        }
    }

    if (q->cork_len + rec > PD_CHANNEL_BATCH_MAX) {
        pd_channel_flush_cork(slot);
    }

    if (q->cork_n == 0) {
        if (pd_channel_ncorked == PD_MAX_PROCESSES) {
            /* a slot forgotten and corked again in one turn, many times */
            pd_channel_uncork();
        }
        pd_channel_corked[pd_channel_ncorked++] = slot;
    }

    pd_memcpy(q->cork + q->cork_len, &msg, sizeof(msg));
    if (len) {
        pd_memcpy(q->cork + q->cork_len + sizeof(msg), data, len);
    }

    q->cork_len += rec;
    q->cork_n++;

    return PD_OK;
}

pd_int_t
pd_channel_batch_next(const u_char *data, size_t len, size_t *pos,
    pd_channel_msg_t *msg, u_char **rdata)
{
    if (*pos == len) {
        return PD_DONE;
    }

    if (len - *pos < sizeof(pd_channel_msg_t)) {
        return PD_ERROR;
    }

    pd_memcpy(msg, data + *pos, sizeof(pd_channel_msg_t));

    if (msg->len > PD_CHANNEL_MAX_DATA || msg->fd != -1
        || msg->command == PD_CMD_BATCH
        || len - *pos - sizeof(pd_channel_msg_t) < msg->len)
    {
        return PD_ERROR;
    }

    *rdata = (u_char *) data + *pos + sizeof(pd_channel_msg_t);
    *pos += sizeof(pd_channel_msg_t) + msg->len;

    return PD_OK;
}

pd_int_t
pd_channel_send_worker(pd_int_t wslot, pd_uint_t command, uint64_t arg,
    const u_char *data, size_t len)
{
    pd_process_t  *p;
    pd_int_t       i;

    for (i = 0; i < pd_last_process; i++) {
        p = &pd_processes[i];

        if (p->pid == -1 || p->wslot != wslot || i == pd_process_slot
            || p->generation != pd_cycle->generation
            || p->channel[0] == -1)
        {
            continue;
        }

        return pd_channel_send(i, command, arg, data, len);
    }

    return PD_DECLINED;
}

/* the slot of the sibling with this pid that we still have a channel
 * to (the master closes it, PD_CMD_CLOSE_CHANNEL, once the process has
 * exited), -1 when there is none */
static pd_int_t
pd_channel_slot_of(pid_t pid)
{
    pd_int_t  i;

    for (i = 0; i < pd_last_process; i++) {
        if (pd_processes[i].pid == pid && i != pd_process_slot
            && pd_processes[i].channel[0] != -1)
        {
            return i;
        }
    }

    return -1;
}

pd_int_t
pd_channel_send_pid(pid_t pid, pd_uint_t command, uint64_t arg,
    const u_char *data, size_t len)
{
    pd_int_t  i = pd_channel_slot_of(pid);

    return i == -1 ? PD_DECLINED : pd_channel_send(i, command, arg, data, len);
}

pd_uint_t
pd_channel_corked_now(void)
{
    return pd_channel_ncorked;
}

pd_uint_t
pd_channel_has_pid(pid_t pid)
{
    return pd_channel_slot_of(pid) != -1;
}

/*
 * A descriptor travels with a message, to the worker pid: written at
 * once, after what this turn corked for it (so it does not overtake
 * them), never queued (a queued copy could not keep the descriptor).
 * PD_AGAIN when the sibling's channel is busy, PD_DECLINED when there
 * is no such sibling: the caller keeps the fd and decides.
 */
pd_int_t
pd_channel_send_fd(pid_t pid, pd_uint_t command, uint64_t arg, pd_socket_t fd,
    const u_char *data, size_t len)
{
    pd_channel_msg_t  msg;
    pd_int_t          i;

    if (len > PD_CHANNEL_MAX_DATA) {
        return PD_ERROR;
    }

    i = pd_channel_slot_of(pid);
    if (i == -1) {
        return PD_DECLINED;
    }

    pd_channel_flush_cork(i);

    if (pd_channel_queues[i].head != NULL) {
        return PD_AGAIN;
    }

    msg.command = (uint32_t) command;
    msg.pid = pd_pid;
    msg.slot = (int32_t) pd_process_slot;
    msg.fd = fd;
    msg.arg = arg;
    msg.len = (uint32_t) len;

    return pd_write_channel(pd_processes[i].channel[0], &msg, data,
                            pd_log_root);
}
