/*
 * pd_register.h: the register, uid -> live connections, seen by every
 * worker.  Callers use the backend-neutral calls below; the backend
 * (memory now, redis later) is a vtable of operations.  Lookups answer
 * through a callback so a networked backend can answer later; the memory
 * backend answers before pd_register_lookup() returns.
 */

#ifndef PD_REGISTER_H
#define PD_REGISTER_H

#include "pd_register_zone.h"

#define PD_REGISTER_MEMORY  0
#define PD_REGISTER_REDIS   1

typedef struct {
    char         host[64];      /* numeric: a name lookup would block */
    int          port;
} pd_register_addr_t;

typedef void (*pd_register_lookup_pt)(void *data, pd_int_t rc,
    pd_reg_info_t *info, pd_uint_t n);
typedef void (*pd_register_done_pt)(void *data);

typedef struct {
    const char  *name;
    pd_int_t   (*add)(const pd_reg_info_t *info);
    pd_int_t   (*remove)(const u_char *uid, size_t len, uint64_t conn);
    pd_int_t   (*set_apps)(const u_char *uid, size_t len, uint64_t conn,
                           u_char apps[][PD_APP_MAX + 1],
                           uint32_t napps);
    pd_int_t   (*set_lingering)(const u_char *uid, size_t len,
                                uint64_t conn, pd_uint_t on);
    /* a connection of worker pid, handed to this worker, is conn here;
     * the node's zone keeps sid_tag with it (pd_reg_info_t.sid_tag) */
    pd_int_t   (*move)(const u_char *uid, size_t len, pid_t pid,
                       uint64_t old_conn, uint64_t conn, uint32_t sid_tag);
    pd_int_t   (*lookup)(const u_char *uid, size_t len,
                         pd_register_lookup_pt handler, void *data);
    pd_int_t   (*ip_acquire)(const struct sockaddr *sa, uint32_t limit);
    void       (*ip_release)(const struct sockaddr *sa);
    pd_uint_t  (*purge)(pid_t pid);
    pd_uint_t  (*count)(void);
    /*
     * done(data) once every change of uid sent so far is what any node's
     * lookup sees (PD_OK), never from inside the call; PD_DECLINED when
     * they are seen already (the memory backend) or cannot be waited
     * for.  A connect fetches its stored messages after it: a push
     * stored later then finds the connection.
     */
    pd_int_t   (*barrier)(const u_char *uid, size_t len,
                          pd_register_done_pt done, void *data);
} pd_register_backend_t;

typedef struct {
    pd_uint_t              backend;
    size_t                 memory;
    pd_int_t               max_ips;
    pd_array_t            *redis;      /* of pd_str_t, as written */
    pd_array_t            *shards;     /* of pd_register_addr_t */
    pd_str_t               redis_user;      /* ACL user, or unset */
    pd_str_t               redis_password;  /* AUTH, or unset: none */
    pd_msec_t              node_ttl;
    pd_msec_t              timeout;
    pd_shm_zone_t         *zone;
} pd_register_conf_t;

extern pd_module_t               pd_register_module;
extern pd_register_backend_t     pd_register_memory_backend;
extern pd_register_backend_t     pd_register_redis_backend;
/* NULL when the register section is absent: no presence, no kick */
extern pd_register_backend_t    *pd_register;
extern pd_reg_zone_t            *pd_register_zone;

/* the most entries pd_register_lookup() hands to its callback */
#define PD_REGISTER_LOOKUP_MAX  64

pd_int_t pd_register_memory_init(pd_cycle_t *cycle, pd_register_conf_t *rcf);
pd_int_t pd_register_redis_init_process(pd_cycle_t *cycle,
    pd_register_conf_t *rcf);
void pd_register_redis_exit_process(pd_cycle_t *cycle);
/* gives r the configured Redis credentials, if any */
pd_int_t pd_register_redis_auth(pd_redis_t *r, pd_register_conf_t *rcf);
/*
 * A list of "ip:port" (NULL: 127.0.0.1:6379) into an array of
 * pd_register_addr_t; NULL or what is wrong.  The saver's own Redis
 * servers (saver.redis) are read with it too.
 */
const char *pd_register_redis_addrs(pd_cycle_t *cycle, pd_array_t *list,
    pd_array_t **shards);

/* the cluster register's servers, for the saver's keys on the same hash */
extern pd_redis_t               **pd_register_shards;
extern pd_uint_t                  pd_register_nshards;
/* the name its shards are shared by (pd_redis_group): the cluster's keys */
#define PD_REGISTER_REDIS_GROUP  "cluster"

/*
 * Subscribes handler to "a cluster register server (re)connected and may
 * have lost its data": the room writes its live connections again, the
 * saver its keys.  Every subscriber is called, in the order they came;
 * PD_ERROR past PD_REGISTER_SUBSCRIBERS.
 */
#define PD_REGISTER_SUBSCRIBERS  8
typedef void (*pd_register_connected_pt)(pd_redis_t *r);
pd_int_t pd_register_on_connect(pd_register_connected_pt handler);

/* writes one entry to the cluster register only (the resync's step) */
void pd_register_redis_announce(const pd_reg_info_t *info);

/*
 * The cluster register's entries (pd_register_redis.c): a field
 * "node/boot/pid/conn" and a value "wslot\tsince\tdevice\tapp,app".
 * The parsers take what Redis returns, untrusted: PD_ERROR on anything
 * malformed or too long.  pd_rr_field() names this node and boot.
 */
size_t pd_rr_field(char *buf, size_t size, pid_t pid, uint64_t conn);
size_t pd_rr_value(char *buf, size_t size, const pd_reg_info_t *info);
pd_int_t pd_rr_parse_field(const char *f, size_t len, pd_reg_info_t *info,
    const char **boot, size_t *boot_len, pid_t *pid);
pd_int_t pd_rr_parse_value(const char *v, size_t len, pd_reg_info_t *info);

#define PD_RR_FIELD_MAX   128

/*
 * An HGETALL reply of a uid's hash (field, value, field, value...): the
 * well-formed entries, at most max, into info[] and their fields, as
 * NUL-terminated text, into field[]; how many.  Anything that is not a
 * pair of strings of the right form is skipped.
 */
pd_uint_t pd_rr_parse_entries(const redisReply *reply, pd_reg_info_t *info,
    char (*field)[PD_RR_FIELD_MAX], pd_uint_t max);

/* routing (pd_register_route.c) */

/* what travels through Redis: this header, then the command's payload;
 * a batch is records of both, back to back */
typedef struct {
    uint32_t     command;
    uint32_t     len;
    uint64_t     arg;
    char         origin[PD_NODE_ID_SIZE]; /* the publishing node */
} pd_register_route_hdr_t;

/* the bytes of a turn's batch for one worker: first, and at most */
#define PD_ROUTE_BATCH_FIRST  4096
#define PD_ROUTE_BATCH_MAX    (64 * 1024)
/* the workers a turn keeps a batch for; more send those so far */
#define PD_ROUTE_TARGETS      16

/*
 * The next record of a batch from *pos (untrusted bytes): its header,
 * NUL-terminated origin, and payload (pointing into data).  PD_OK and
 * *pos past it; PD_DONE at the end; PD_ERROR when what is left is not a
 * whole record (*pos stays).
 */
pd_int_t pd_register_route_next(const u_char *data, size_t len,
    size_t *pos, pd_register_route_hdr_t *hdr, const u_char **payload);

/* 1 when the entry's connection is on this node */
pd_int_t pd_register_is_local(const pd_reg_info_t *info);
/*
 * Runs a channel command for the worker holding info's connection: the
 * inter-worker channel on this node, a Redis channel on another.  Returns
 * as pd_channel_send_pid(); PD_DECLINED when there is no way there.
 */
pd_int_t pd_register_route(const pd_reg_info_t *info, pd_uint_t command,
    uint64_t arg, const u_char *data, size_t len);
/* publishes a command to every worker of every other node */
pd_int_t pd_register_broadcast(pd_uint_t command, const u_char *data,
    size_t len);
pd_int_t pd_register_route_init(pd_cycle_t *cycle, pd_register_conf_t *rcf,
    pd_redis_t *pub);
void pd_register_route_exit(void);

#endif /* PD_REGISTER_H */
