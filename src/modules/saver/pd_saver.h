/*
 * pd_saver.h: the saver keeps qos 1 messages until they are acked,
 * expire or are dropped by the no-ack guard, and retains broadcasts with
 * a ttl for users who connect later.  Callers use the calls below; the
 * backend (memory now: a shared-memory store) does the work.
 */

#ifndef PD_SAVER_H
#define PD_SAVER_H

#define PD_SAVER_MEMORY  0
#define PD_SAVER_REDIS   1

/* messages one fetch hands out at the most (the redis backend) */
#define PD_SAVER_FETCH_MAX  64

typedef struct {
    pd_uint_t        backend;
    size_t           memory;
    pd_msec_t        ttl;             /* default of a message */
    pd_msec_t        max_ttl;
    pd_int_t         max_redeliveries;
    pd_int_t         max_per_mailbox;
    pd_msec_t        sweep;           /* expiry sweep period */
    pd_str_t         postgres;        /* conninfo, redis backend */
    pd_msec_t        timeout;
    pd_shm_zone_t   *zone;
} pd_saver_conf_t;

typedef struct {
    pd_str_t         id;              /* "node-seq", as the client sees it */
    u_char          *payload;
    size_t           len;
} pd_saver_msg_t;

/* a store's outcome: rc PD_OK (kept: stored + full uids) or PD_ERROR */
typedef void (*pd_saver_done_pt)(void *data, pd_int_t rc, pd_uint_t stored,
    pd_uint_t full);
/* a fetch's outcome: the messages, valid only during the call */
typedef void (*pd_saver_fetch_pt)(void *data, pd_int_t rc,
    pd_saver_msg_t *msgs, pd_uint_t n);

/* handed one stored message (pd_msg_handler_pt): copy, return PD_OK to
 * go on; anything else stops the walk and that message is not counted */
typedef pd_msg_handler_pt  pd_saver_msg_pt;

extern pd_module_t       pd_saver_module;
extern pd_saver_conf_t  *pd_saver;      /* NULL: no saver section */

/*
 * Stores one message for n uids of an app (the payload once, shared) and
 * calls done exactly once, maybe before returning: PD_OK with the uids
 * kept and those whose mailbox is full, or PD_ERROR (nothing kept: the
 * store is full or unreachable).  Returns PD_OK when done is called,
 * else PD_BUSY / PD_DECLINED (unreachable) / PD_ERROR and done is not.
 * Arguments are built in pool.
 */
pd_int_t pd_saver_store(pd_str_t *uids, pd_uint_t n, pd_str_t *app,
    uint64_t seq, pd_str_t *payload, pd_msec_t ttl, pd_pool_t *pool,
    pd_saver_done_pt done, void *data);
/* 1 when pending messages come through pd_saver_fetch() (redis) */
pd_int_t pd_saver_async(void);
/*
 * The next (up to PD_SAVER_FETCH_MAX) unacked messages of (uid, app),
 * after the message with id after ("" from the start; an id no longer
 * there also means from the start: at least once), counted as
 * delivered; handler gets them later.
 */
pd_int_t pd_saver_fetch(pd_str_t *uid, pd_str_t *app, const char *after,
    pd_saver_fetch_pt handler, void *data);
/* the cluster store's ack, by the id the client got */
pd_int_t pd_saver_ack_id(pd_str_t *uid, const char *id);

/* the redis backend (pd_saver_redis.c) */
pd_int_t pd_saver_redis_init_process(pd_cycle_t *cycle,
    pd_saver_conf_t *scf);
void pd_saver_redis_exit_process(void);
pd_int_t pd_saver_redis_store(pd_str_t *uids, pd_uint_t n, pd_str_t *app,
    uint64_t seq, pd_str_t *payload, uint64_t expires, pd_pool_t *pool,
    pd_saver_done_pt done, void *data);
pd_int_t pd_saver_redis_fetch(pd_str_t *uid, pd_str_t *app,
    const char *after, pd_saver_fetch_pt handler, void *data);
pd_int_t pd_saver_redis_ack(pd_str_t *uid, const char *id);
void pd_saver_redis_delivered(pd_str_t *uid, uint64_t seq);
void pd_saver_redis_connected(pd_redis_t *r);
/* a live send: PD_OK, PD_DECLINED (gone), PD_ABORT (no-ack guard hit) */
pd_int_t pd_saver_delivered(pd_str_t *uid, uint64_t seq);
/* the uid's unacked messages of app, in order, after *resume (0: from
 * the start), which moves past what is handed out; returns how many */
pd_int_t pd_saver_pending(pd_str_t *uid, pd_str_t *app, uint64_t *resume,
    pd_saver_msg_pt handler, void *data);
pd_int_t pd_saver_ack(pd_str_t *uid, uint64_t seq);

pd_int_t pd_saver_bcast_store(pd_str_t *app, uint64_t seq,
    pd_str_t *payload, pd_msec_t ttl);
pd_int_t pd_saver_bcast_pending(pd_str_t *app, uint64_t after,
    pd_saver_msg_pt handler, void *data);
uint64_t pd_saver_cursor_get(pd_str_t *uid, pd_str_t *app);
void pd_saver_cursor_set(pd_str_t *uid, pd_str_t *app, uint64_t seq);

/* figures for /v1/stats and /metrics */
pd_int_t pd_saver_stats(pd_msg_stats_t *st);

#endif /* PD_SAVER_H */
