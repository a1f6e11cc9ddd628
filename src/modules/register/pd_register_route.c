/*
 * pd_register_route.c: commands to connections on other nodes.  Each
 * worker of a cluster node subscribes to its own Redis channels,
 * "pd:w:<node>/<pid>" and "pd:wb:<node>/<pid>", and to "pd:b" for
 * broadcasts; a command for a connection elsewhere is published there,
 * and the receiving worker runs it as if it had come through its
 * inter-worker channel.  Connections of this node still go through the
 * channels, never through Redis.
 *
 * The commands of a loop turn for one worker leave together, as one
 * PUBLISH on its batch channel, "pd:wb:": records of a header and the
 * command's payload.  A PUBLISH a push cost Redis a command and a
 * message to its subscriber, and each end a reply to make and parse;
 * and the turn that reads a PostgreSQL commit routes every push the
 * commit held.  A worker of a version before the batches is not
 * subscribed to "pd:wb:": the PUBLISH reaches nobody (its answer is 0),
 * and the batch's records, each a whole message of the older form, go
 * again one PUBLISH each on "pd:w:".  Every batch for a worker takes that
 * same way, and the answers come in the order sent, so its commands
 * still arrive in order, a round trip late.
 */

#include "pd_core.h"
#include "pd_register.h"

#define PD_ROUTE_BCAST  "pd:b"
#define PD_ROUTE_ONE    "pd:w:"     /* a worker's channel, a command each */
#define PD_ROUTE_BATCH  "pd:wb:"    /* and its batch channel */

/* a turn's batch for one worker; its bytes go with the PUBLISH and stay
 * until it is answered (for the older workers' way), then are freed */
typedef struct {
    char         channel[64];     /* PD_ROUTE_ONE "<node>/<pid>" */
    size_t       len;
    size_t       size;            /* of data, at most PD_ROUTE_BATCH_MAX */
    pd_uint_t    n;
    u_char      *data;
} pd_route_batch_t;

static pd_redis_t        *pd_route_sub;
static pd_redis_t        *pd_route_pub;
static char               pd_route_node[PD_NODE_ID_SIZE];
static u_char             pd_route_buf[sizeof(pd_register_route_hdr_t)
                                       + PD_CHANNEL_MAX_DATA];
static pd_route_batch_t  *pd_route_batches[PD_ROUTE_TARGETS];
static pd_uint_t          pd_route_nbatches;
static pd_event_t         pd_route_flush_ev;

static void pd_route_channel(char *buf, size_t size, const char *kind,
    const char *node, pid_t pid);
static u_char *pd_route_record(u_char *p, pd_uint_t command, uint64_t arg,
    const u_char *data, size_t len);
static pd_route_batch_t *pd_route_batch(const char *channel);
static void pd_route_flush(pd_event_t *ev);
static void pd_route_send(pd_route_batch_t *b);
static void pd_route_answered(pd_redis_t *r, redisReply *reply, void *data);
static void pd_route_message(pd_redis_t *r, const char *channel,
    const u_char *payload, size_t len, void *data);
static void pd_route_batch_message(pd_redis_t *r, const char *channel,
    const u_char *payload, size_t len, void *data);
static void pd_route_run(pd_register_route_hdr_t *hdr,
    const u_char *payload, pd_uint_t bcast);


pd_int_t
pd_register_is_local(const pd_reg_info_t *info)
{
    return info->node[0] == '\0'
           || strcmp((const char *) info->node, pd_route_node) == 0
           || pd_route_pub == NULL;
}

pd_int_t
pd_register_route(const pd_reg_info_t *info, pd_uint_t command,
    uint64_t arg, const u_char *data, size_t len)
{
    char               channel[64];
    size_t             rec, size;
    u_char            *p;
    pd_route_batch_t  *b;

    if (pd_register_is_local(info)) {
        return pd_channel_send_pid((pid_t) info->pid, command, arg, data,
                                   len);
    }

    if (len > PD_CHANNEL_MAX_DATA || !pd_redis_connected(pd_route_pub)) {
        return PD_DECLINED;
    }

    pd_route_channel(channel, sizeof(channel), PD_ROUTE_ONE,
                     (const char *) info->node, (pid_t) info->pid);

    rec = sizeof(pd_register_route_hdr_t) + len;

    b = pd_route_batch(channel);
    if (b == NULL) {
        return PD_ERROR;
    }

    if (b->len + rec > PD_ROUTE_BATCH_MAX) {
        /* full: it leaves now, and this record starts the next */
        pd_route_send(b);

        b = pd_route_batch(channel);
        if (b == NULL) {
            return PD_ERROR;
        }
    }

    if (b->len + rec > b->size) {
        size = pd_min(pd_max(2 * b->size, b->len + rec), PD_ROUTE_BATCH_MAX);

        p = pd_alloc(size, pd_log_root);
        if (p == NULL) {
            return PD_ERROR;
        }

        pd_memcpy(p, b->data, b->len);
        pd_free(b->data);
        b->data = p;
        b->size = size;
    }

    (void) pd_route_record(b->data + b->len, command, arg, data, len);
    b->len += rec;
    b->n++;

    if (!pd_route_flush_ev.posted) {
        pd_post_event(&pd_route_flush_ev, &pd_posted_events);
    }

    return PD_OK;
}

pd_int_t
pd_register_broadcast(pd_uint_t command, const u_char *data, size_t len)
{
    u_char  *p;

    if (pd_route_pub == NULL || len > PD_CHANNEL_MAX_DATA) {
        return PD_DECLINED;
    }

    p = pd_route_record(pd_route_buf, command, 0, data, len);

    return pd_redis_publish(pd_route_pub, PD_ROUTE_BCAST, pd_route_buf,
                            (size_t) (p - pd_route_buf), NULL, NULL);
}

pd_int_t
pd_register_route_next(const u_char *data, size_t len, size_t *pos,
    pd_register_route_hdr_t *hdr, const u_char **payload)
{
    size_t  rest;

    if (*pos >= len) {
        return PD_DONE;
    }

    rest = len - *pos;

    if (rest < sizeof(pd_register_route_hdr_t)) {
        return PD_ERROR;
    }

    pd_memcpy(hdr, data + *pos, sizeof(pd_register_route_hdr_t));
    hdr->origin[sizeof(hdr->origin) - 1] = '\0';
    rest -= sizeof(pd_register_route_hdr_t);

    if (hdr->len > PD_CHANNEL_MAX_DATA || hdr->len > rest) {
        return PD_ERROR;
    }

    *payload = data + *pos + sizeof(pd_register_route_hdr_t);
    *pos += sizeof(pd_register_route_hdr_t) + hdr->len;

    return PD_OK;
}

/* a worker's channel of a kind: "<kind><node>/<pid in hex>" */
static void
pd_route_channel(char *buf, size_t size, const char *kind, const char *node,
    pid_t pid)
{
    (void) snprintf(buf, size, "%s%s/%x", kind, node, (unsigned) pid);
}

/* a record: the header, then the command's payload; its end */
static u_char *
pd_route_record(u_char *p, pd_uint_t command, uint64_t arg,
    const u_char *data, size_t len)
{
    pd_register_route_hdr_t  hdr;

    pd_memzero(&hdr, sizeof(hdr));
    hdr.command = (uint32_t) command;
    hdr.len = (uint32_t) len;
    hdr.arg = arg;
    pd_memcpy(hdr.origin, pd_route_node, sizeof(hdr.origin));

    p = pd_cpymem(p, &hdr, sizeof(hdr));

    return pd_cpymem(p, data, len);
}

/* the turn's batch for channel, a new one if none; NULL: no memory */
static pd_route_batch_t *
pd_route_batch(const char *channel)
{
    pd_route_batch_t  *b;
    pd_uint_t          i;

    for (i = 0; i < pd_route_nbatches; i++) {
        if (strcmp(pd_route_batches[i]->channel, channel) == 0) {
            return pd_route_batches[i];
        }
    }

    if (pd_route_nbatches == PD_ROUTE_TARGETS) {
        /* more workers in one turn than the table holds: those so far
         * leave now, in the order they came */
        pd_route_flush(&pd_route_flush_ev);
    }

    b = pd_alloc(sizeof(pd_route_batch_t), pd_log_root);
    if (b == NULL) {
        return NULL;
    }

    b->size = PD_ROUTE_BATCH_FIRST;
    b->data = pd_alloc(b->size, pd_log_root);
    if (b->data == NULL) {
        pd_free(b);
        return NULL;
    }

    (void) snprintf(b->channel, sizeof(b->channel), "%s", channel);
    b->len = 0;
    b->n = 0;

    pd_route_batches[pd_route_nbatches++] = b;

    return b;
}

/* the end of the turn (or a full table): every batch leaves */
static void
pd_route_flush(pd_event_t *ev)
{
    if (ev->posted) {
        pd_delete_posted_event(ev);
    }

    while (pd_route_nbatches) {
        pd_route_send(pd_route_batches[0]);
    }
}

/* one PUBLISH on the worker's batch channel; b goes with it */
static void
pd_route_send(pd_route_batch_t *b)
{
    char       channel[sizeof(b->channel) + 1];
    pd_uint_t  i;

    for (i = 0; i < pd_route_nbatches; i++) {
        if (pd_route_batches[i] == b) {
            memmove(&pd_route_batches[i], &pd_route_batches[i + 1],
                    (pd_route_nbatches - i - 1) * sizeof(b));
            pd_route_nbatches--;
            break;
        }
    }

    /* PD_ROUTE_ONE "<node>/<pid>" -> PD_ROUTE_BATCH "<node>/<pid>" */
    (void) snprintf(channel, sizeof(channel), PD_ROUTE_BATCH "%s",
                    b->channel + sizeof(PD_ROUTE_ONE) - 1);

    if (pd_redis_publish(pd_route_pub, channel, b->data, b->len,
                         pd_route_answered, b)
        != PD_OK)
    {
        /* the link went down in this turn: counted as a channel that
         * refused a batch; stored messages come again on reconnect */
        pd_stats_add(PD_STAT_CHANNEL_FULL, b->n);
        pd_free(b->data);
        pd_free(b);
    }
}

/* a batch's answer, the subscribers it reached: none, the older way */
static void
pd_route_answered(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_route_batch_t         *b = data;
    pd_register_route_hdr_t   hdr;
    const u_char             *payload;
    size_t                    pos, start;

    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER
        && reply->integer == 0 && pd_redis_connected(r))
    {
        pos = 0;
        start = 0;

        while (pd_register_route_next(b->data, b->len, &pos, &hdr, &payload)
               == PD_OK)
        {
            (void) pd_redis_publish(r, b->channel, b->data + start,
                                    pos - start, NULL, NULL);
            start = pos;
        }
    }

    pd_free(b->data);
    pd_free(b);
}

/* one command on "pd:w:" (a node of an older version) or "pd:b" */
static void
pd_route_message(pd_redis_t *r, const char *channel, const u_char *payload,
    size_t len, void *data)
{
    pd_register_route_hdr_t   hdr;
    const u_char             *p;
    size_t                    pos;

    (void) r;
    (void) channel;

    pos = 0;

    if (pd_register_route_next(payload, len, &pos, &hdr, &p) != PD_OK
        || pos != len)
    {
        pd_log_error(PD_LOG_WARN, pd_log_root, 0,
                     "route: malformed message of %lu bytes",
                     (unsigned long) len);
        return;
    }

    pd_route_run(&hdr, p, data != NULL);
}

/* the commands of a batch, in order */
static void
pd_route_batch_message(pd_redis_t *r, const char *channel,
    const u_char *payload, size_t len, void *data)
{
    pd_register_route_hdr_t   hdr;
    const u_char             *p;
    size_t                    pos;
    pd_int_t                  rc;

    (void) r;
    (void) channel;
    (void) data;

    pos = 0;

    while ((rc = pd_register_route_next(payload, len, &pos, &hdr, &p))
           == PD_OK)
    {
        pd_route_run(&hdr, p, 0);
    }

    if (rc == PD_ERROR) {
        pd_log_error(PD_LOG_WARN, pd_log_root, 0,
                     "route: malformed batch of %lu bytes, at byte %lu",
                     (unsigned long) len, (unsigned long) pos);
    }
}

static void
pd_route_run(pd_register_route_hdr_t *hdr, const u_char *payload,
    pd_uint_t bcast)
{
    pd_channel_msg_t  msg;

    /* a broadcast of this node reached its workers through the channels */
    if (bcast && strcmp(hdr->origin, pd_route_node) == 0) {
        return;
    }

    pd_memzero(&msg, sizeof(msg));
    msg.command = hdr->command;
    msg.pid = -1;
    msg.slot = -1;
    msg.fd = -1;
    msg.arg = hdr->arg;
    msg.len = hdr->len;

    /* the handlers may keep nothing of data: copy into the channel's
     * own buffer shape */
    pd_memcpy(pd_route_buf, payload, hdr->len);

    if (pd_channel_dispatch((pd_cycle_t *) pd_cycle, &msg, pd_route_buf)
        != PD_OK)
    {
        pd_log_error(PD_LOG_WARN, pd_log_root, 0,
                     "route: unknown command %u from \"%s\"",
                     (unsigned) hdr->command, hdr->origin);
    }
}

pd_int_t
pd_register_route_init(pd_cycle_t *cycle, pd_register_conf_t *rcf,
    pd_redis_t *pub)
{
    pd_core_conf_t      *ccf;
    pd_register_addr_t  *a;
    char                 channel[64];

    ccf = pd_get_conf(cycle, pd_core_module);
    (void) snprintf(pd_route_node, sizeof(pd_route_node), "%.*s",
                    (int) ccf->node_id.len, ccf->node_id.data);

    a = rcf->shards->elts;

    pd_route_pub = pub;
    pd_route_flush_ev.handler = pd_route_flush;
    pd_route_sub = pd_redis_create_subscriber(a[0].host, a[0].port,
                                              rcf->node_ttl / 3, cycle->log);
    if (pd_route_sub == NULL
        || pd_register_redis_auth(pd_route_sub, rcf) != PD_OK)
    {
        return PD_ERROR;
    }

    pd_route_channel(channel, sizeof(channel), PD_ROUTE_ONE, pd_route_node,
                     pd_pid);

    if (pd_redis_subscribe(pd_route_sub, channel, pd_route_message, NULL)
        != PD_OK)
    {
        return PD_ERROR;
    }

    pd_route_channel(channel, sizeof(channel), PD_ROUTE_BATCH,
                     pd_route_node, pd_pid);

    if (pd_redis_subscribe(pd_route_sub, channel, pd_route_batch_message,
                           NULL)
        != PD_OK
        || pd_redis_subscribe(pd_route_sub, PD_ROUTE_BCAST, pd_route_message,
                              pd_route_sub) != PD_OK)
    {
        return PD_ERROR;
    }

    return pd_redis_connect(pd_route_sub);
}

void
pd_register_route_exit(void)
{
    pd_uint_t  i;

    if (pd_route_flush_ev.posted) {
        pd_delete_posted_event(&pd_route_flush_ev);
    }

    /* not sent: the worker is leaving, and so is its link */
    for (i = 0; i < pd_route_nbatches; i++) {
        pd_free(pd_route_batches[i]->data);
        pd_free(pd_route_batches[i]);
    }

    pd_route_nbatches = 0;

    if (pd_route_sub != NULL) {
        pd_redis_destroy(pd_route_sub);
        pd_route_sub = NULL;
    }

    pd_route_pub = NULL;
}
