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

static pd_int_t
pd_channel_send(pd_process_t *p, pd_uint_t command, uint64_t arg,
    const u_char *data, size_t len)
{
    pd_channel_msg_t  msg;

    msg.command = (uint32_t) command;
    msg.pid = pd_pid;
    msg.slot = (int32_t) pd_process_slot;
    msg.fd = -1;
    msg.arg = arg;
    msg.len = (uint32_t) len;

    return pd_write_channel(p->channel[0], &msg, data, pd_log_root);
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

        return pd_channel_send(p, command, arg, data, len);
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
            return pd_channel_send(p, command, arg, data, len);
        }
    }

    return PD_DECLINED;
}
