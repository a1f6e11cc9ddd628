/*
 * pd_register_route.c: commands to connections on other nodes.  Each
 * worker of a cluster node subscribes to its own Redis channel,
 * "pd:w:<node>/<pid>", and to "pd:b" for broadcasts; a command for a
 * connection elsewhere is published there, and the receiving worker runs
 * it as if it had come through its inter-worker channel.  Connections of
 * this node still go through the channels, never through Redis.
 */

#include "pd_core.h"
#include "pd_register.h"

#define PD_ROUTE_BCAST  "pd:b"

/* what travels: this header, then the command's payload */
typedef struct {
    uint32_t     command;
    uint32_t     len;
    uint64_t     arg;
    char         origin[PD_NODE_ID_SIZE]; /* the publishing node */
} pd_route_hdr_t;

static pd_redis_t  *pd_route_sub;
static pd_redis_t  *pd_route_pub;
static char         pd_route_node[PD_NODE_ID_SIZE];
static u_char       pd_route_buf[sizeof(pd_route_hdr_t) + PD_CHANNEL_MAX_DATA];

pd_int_t
pd_register_is_local(const pd_reg_info_t *info)
{
    return info->node[0] == '\0'
           || strcmp((const char *) info->node, pd_route_node) == 0
           || pd_route_pub == NULL;
}

static pd_int_t
pd_route_publish(const char *channel, pd_uint_t command, uint64_t arg,
    const u_char *data, size_t len)
{
    pd_route_hdr_t  hdr;

    if (pd_route_pub == NULL || len > PD_CHANNEL_MAX_DATA) {
        return PD_DECLINED;
    }

    pd_memzero(&hdr, sizeof(hdr));
    hdr.command = (uint32_t) command;
    hdr.len = (uint32_t) len;
    hdr.arg = arg;
    pd_memcpy(hdr.origin, pd_route_node, sizeof(hdr.origin));

    pd_memcpy(pd_route_buf, &hdr, sizeof(hdr));
    pd_memcpy(pd_route_buf + sizeof(hdr), data, len);

    return pd_redis_publish(pd_route_pub, channel, pd_route_buf,
                            sizeof(hdr) + len, NULL, NULL);
}

pd_int_t
pd_register_route(const pd_reg_info_t *info, pd_uint_t command,
    uint64_t arg, const u_char *data, size_t len)
{
    char  channel[64];

    if (pd_register_is_local(info)) {
        return pd_channel_send_pid((pid_t) info->pid, command, arg, data,
                                   len);
    }

    (void) snprintf(channel, sizeof(channel), "pd:w:%s/%x",
                    (const char *) info->node, (unsigned) info->pid);

    return pd_route_publish(channel, command, arg, data, len);
}

pd_int_t
pd_register_broadcast(pd_uint_t command, const u_char *data, size_t len)
{
    return pd_route_publish(PD_ROUTE_BCAST, command, 0, data, len);
}

static void
pd_route_message(pd_redis_t *r, const char *channel, const u_char *payload,
    size_t len, void *data)
{
    pd_route_hdr_t     hdr;
    pd_channel_msg_t   msg;
    pd_uint_t          bcast = (data != NULL);

    (void) r;
    (void) channel;

    if (len < sizeof(hdr)) {
        return;
    }

    pd_memcpy(&hdr, payload, sizeof(hdr));
    hdr.origin[sizeof(hdr.origin) - 1] = '\0';

    if (hdr.len != len - sizeof(hdr) || hdr.len > PD_CHANNEL_MAX_DATA) {
        pd_log_error(PD_LOG_WARN, pd_log_root, 0,
                     "route: malformed message of %lu bytes from \"%s\"",
                     (unsigned long) len, hdr.origin);
        return;
    }

    /* a broadcast of this node reached its workers through the channels */
    if (bcast && strcmp(hdr.origin, pd_route_node) == 0) {
        return;
    }

    pd_memzero(&msg, sizeof(msg));
    msg.command = hdr.command;
    msg.pid = -1;
    msg.slot = -1;
    msg.fd = -1;
    msg.arg = hdr.arg;
    msg.len = hdr.len;

    /* the handlers may keep nothing of data: copy into the channel's
     * own buffer shape */
    pd_memcpy(pd_route_buf, payload + sizeof(hdr), hdr.len);

    if (pd_channel_dispatch((pd_cycle_t *) pd_cycle, &msg, pd_route_buf)
        != PD_OK)
    {
        pd_log_error(PD_LOG_WARN, pd_log_root, 0,
                     "route: unknown command %u from \"%s\"",
                     (unsigned) hdr.command, hdr.origin);
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
    pd_route_sub = pd_redis_create_subscriber(a[0].host, a[0].port,
                                              rcf->node_ttl / 3, cycle->log);
    if (pd_route_sub == NULL
        || pd_register_redis_auth(pd_route_sub, rcf) != PD_OK)
    {
        return PD_ERROR;
    }

    (void) snprintf(channel, sizeof(channel), "pd:w:%s/%x", pd_route_node,
                    (unsigned) pd_pid);

    if (pd_redis_subscribe(pd_route_sub, channel, pd_route_message, NULL)
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
    if (pd_route_sub != NULL) {
        pd_redis_destroy(pd_route_sub);
        pd_route_sub = NULL;
    }

    pd_route_pub = NULL;
}
