/*
 * pd_channel.h: master <-> worker and worker <-> worker channels.
 * Each worker slot has a SOCK_SEQPACKET socketpair created in the spawn
 * path: the master writes to [0], the worker reads [1]; siblings get a
 * copy of each other's [0] (passed with SCM_RIGHTS) so any worker can
 * write to any other.  One message is one packet: a fixed header and up
 * to PD_CHANNEL_MAX_DATA bytes of payload, so records never split.
 *
 * Between workers, the messages of one event loop turn to one sibling
 * are corked into a PD_CMD_BATCH packet of up to PD_CHANNEL_BATCH_MAX
 * bytes (records: header, payload, header, payload...): one sendmsg()
 * and one recvmsg() for a turn's deliveries instead of one per push, and
 * a kernel queue of 10 packets (net.unix.max_dgram_qlen) holds far more.
 */

#ifndef PD_CHANNEL_H
#define PD_CHANNEL_H

#define PD_CMD_OPEN_CHANNEL   1   /* fd: a sibling's [0] for slot */
#define PD_CMD_CLOSE_CHANNEL  2
#define PD_CMD_QUIT           3   /* graceful: retire */
#define PD_CMD_TERMINATE      4
#define PD_CMD_REOPEN         5
#define PD_CMD_PING           6   /* worker -> worker, answered by PONG */
#define PD_CMD_PONG           7
#define PD_CMD_BATCH          8   /* corked records of one loop turn */
#define PD_CMD_NOACCEPT       9   /* stop accepting, keep the clients */
#define PD_CMD_HTTP_ADOPT    10   /* fd: a retiring worker's HTTP
                                   * connection with no request under way */
#define PD_CMD_MODULE_BASE   16   /* modules register commands from here */
#define PD_CMD_MAX           64

#define PD_CHANNEL_MAX_DATA   (16 * 1024)
#define PD_CHANNEL_BATCH_MAX  (32 * 1024)

typedef struct {
    uint32_t     command;
    int32_t      pid;
    int32_t      slot;        /* sender's slot, or the slot fd is for */
    int32_t      fd;          /* -1 unless an fd travels along */
    uint64_t     arg;         /* a request id, a connection number... */
    uint32_t     len;         /* payload bytes that follow */
} pd_channel_msg_t;

typedef void (*pd_channel_handler_pt)(pd_cycle_t *cycle,
    pd_channel_msg_t *msg, u_char *data);

/* registers the handler a worker runs for a module command */
void pd_channel_set_handler(pd_uint_t command, pd_channel_handler_pt h);

/*
 * Writes one message; PD_AGAIN when the peer's queue is full (the caller
 * decides whether to retry or count a drop), PD_ERROR on other errors.
 */
pd_int_t pd_write_channel(pd_socket_t s, pd_channel_msg_t *msg,
    const u_char *data, pd_log_t *log);
/* reads one message into msg and data (PD_CHANNEL_BATCH_MAX bytes);
 * PD_AGAIN when none is pending, PD_ERROR when the peer is gone */
pd_int_t pd_read_channel(pd_socket_t s, pd_channel_msg_t *msg, u_char *data,
    pd_log_t *log);
void pd_close_channel(pd_socket_t *fd, pd_log_t *log);

/* worker side: watch the own channel and dispatch commands */
pd_int_t pd_add_channel_event(pd_cycle_t *cycle, pd_socket_t fd,
    pd_event_handler_pt handler);
/* runs the handler registered for msg->command; PD_DECLINED if none */
pd_int_t pd_channel_dispatch(pd_cycle_t *cycle, pd_channel_msg_t *msg,
    u_char *data);
/* sends to another worker slot; PD_DECLINED when it has no live worker */
pd_int_t pd_channel_send_worker(pd_int_t slot, pd_uint_t command,
    uint64_t arg, const u_char *data, size_t len);

/*
 * A batch's records, one at a time: *pos starts at 0.  PD_OK with msg
 * and *rdata set, PD_DONE at the end, PD_ERROR when the batch is
 * malformed (the rest of it is dropped).
 */
pd_int_t pd_channel_batch_next(const u_char *data, size_t len, size_t *pos,
    pd_channel_msg_t *msg, u_char **rdata);

/* workers cork what they send to siblings (pd_channel_send_*) until
 * pd_channel_uncork(), which the worker loop runs after each turn */
void pd_channel_cork(void);
void pd_channel_uncork(void);
/* how many siblings have messages corked this turn */
pd_uint_t pd_channel_corked_now(void);

/*
 * Whether a sibling's channel is backed up (messages wait in its
 * out-queue, the kernel's buffer being full).  Producers that can wait,
 * the center's pushes, wait then, instead of piling up deliveries that
 * would reach clients seconds late: ev is posted once none is backed up.
 */
pd_uint_t pd_channel_congested(void);
void pd_channel_on_drain(pd_event_t *ev);

/* a sibling's channel closed: drops what waited for it, closes its fd */
void pd_channel_forget(pd_int_t slot);

/* whether pid is a sibling we still have a channel to: the master
 * closes it once the process has exited */
pd_uint_t pd_channel_has_pid(pid_t pid);
/* sends to the worker with this pid, whatever its generation (a reload
 * leaves connections on retiring workers); PD_DECLINED if unknown */
pd_int_t pd_channel_send_pid(pid_t pid, pd_uint_t command, uint64_t arg,
    const u_char *data, size_t len);
/* the same with a descriptor (the sibling gets its own copy); see .c */
pd_int_t pd_channel_send_fd(pid_t pid, pd_uint_t command, uint64_t arg,
    pd_socket_t fd, const u_char *data, size_t len);

#endif /* PD_CHANNEL_H */
