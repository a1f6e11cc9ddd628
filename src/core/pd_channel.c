/*
 * pd_channel.c: SOCK_SEQPACKET channels between the master and workers
 * and between workers; a packet is one message, an fd may ride along.
 */

#include "pd_core.h"

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

    if (msg->len > PD_CHANNEL_MAX_DATA) {
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
    iov[1].iov_len = PD_CHANNEL_MAX_DATA;

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
} pd_channel_queue_t;

static pd_channel_queue_t  pd_channel_queues[PD_MAX_PROCESSES];

static void
pd_channel_flush(pd_channel_queue_t *q, pd_socket_t fd)
{
    pd_channel_out_t  *o;
    pd_int_t           rc;

    while ((o = q->head) != NULL) {
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

    while ((o = q->head) != NULL) {
        q->head = o->next;
        pd_free(o);
    }

    q->tail = &q->head;
    q->bytes = 0;

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
    }

    *q->tail = o;
    q->tail = &o->next;
    q->bytes += sizeof(pd_channel_out_t) + msg->len;

    return PD_OK;
}

static pd_int_t
pd_channel_send(pd_int_t slot, pd_uint_t command, uint64_t arg,
    const u_char *data, size_t len)
{
    pd_channel_msg_t   msg;
    pd_process_t      *p = &pd_processes[slot];
    pd_int_t           rc;

    msg.command = (uint32_t) command;
    msg.pid = pd_pid;
    msg.slot = (int32_t) pd_process_slot;
    msg.fd = -1;
    msg.arg = arg;
    msg.len = (uint32_t) len;

    /* behind what waits already, so the order holds */
    if (pd_channel_queues[slot].head != NULL) {
        return pd_channel_enqueue(slot, &msg, data);
    }

    rc = pd_write_channel(p->channel[0], &msg, data, pd_log_root);

    if (rc == PD_AGAIN) {
        return pd_channel_enqueue(slot, &msg, data);
    }

    return rc;
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

pd_int_t
pd_channel_send_pid(pid_t pid, pd_uint_t command, uint64_t arg,
    const u_char *data, size_t len)
{
    pd_process_t  *p;
    pd_int_t       i;

    for (i = 0; i < pd_last_process; i++) {
        p = &pd_processes[i];

        if (p->pid == pid && i != pd_process_slot && p->channel[0] != -1) {
            return pd_channel_send(i, command, arg, data, len);
        }
    }

    return PD_DECLINED;
}
