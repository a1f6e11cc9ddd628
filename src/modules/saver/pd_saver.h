/*
 * pd_saver.h: the saver keeps qos 1 messages until they are acked,
 * expire or are dropped by the no-ack guard, and retains broadcasts with
 * a ttl for users who connect later.  Callers use the calls below; the
 * backend (memory now: a shared-memory store) does the work.
 */

#ifndef PD_SAVER_H
#define PD_SAVER_H

#include "pd_saver_store.h"

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
    pd_array_t      *redis;           /* of pd_str_t, as written, or NULL:
                                         the register's servers */
    pd_array_t      *redis_shards;    /* of pd_register_addr_t */
    pd_str_t         redis_password;
    pd_str_t         redis_user;
    pd_msec_t        timeout;
    pd_int_t         inline_bodies;   /* redis backend: see the directive */
    pd_shm_zone_t   *zone;
} pd_saver_conf_t;

/* a fetch's position: the backend's own text, opaque to callers */
#define PD_SAVER_CURSOR_SIZE  PD_MSG_ID_SIZE

typedef struct {
    pd_str_t         id;              /* "node-seq", as the client sees it */
    u_char          *payload;
    size_t           len;
} pd_saver_msg_t;

/* a store's outcome: rc PD_OK (kept: stored + full uids) or PD_ERROR */
typedef void (*pd_saver_done_pt)(void *data, pd_int_t rc, pd_uint_t stored,
    pd_uint_t full);
/*
 * One fetched message, valid only during the call (the memory backend
 * calls it under the store's lock: frame and queue it, nothing else).
 * PD_OK takes it and goes on; anything else leaves it, and the rest,
 * for a later fetch after the last one taken.
 */
typedef pd_int_t (*pd_saver_take_pt)(void *data, pd_saver_msg_t *m);
/*
 * A fetch's end: rc PD_OK, more when messages may be left after the last
 * one taken (a take said stop, or the fetch's bound was reached), and
 * the cursor a next fetch goes on from (at most PD_SAVER_CURSOR_SIZE - 1
 * bytes, valid during the call).
 */
typedef void (*pd_saver_fetched_pt)(void *data, pd_int_t rc, pd_uint_t more,
    pd_str_t *cursor);

/* handed one stored message (pd_msg_handler_pt): copy, return PD_OK to
 * go on; anything else stops the walk and that message is not counted */
typedef pd_msg_handler_pt  pd_saver_msg_pt;

/*
 * A backend of the saver: every operation that differs between the
 * memory store and the cluster store (Redis, with PostgreSQL as the
 * durable log).  Operations with an answer take a callback, which the
 * memory backend calls before it returns.  Retained broadcasts and
 * their cursors are the node's own memory zone's in both.
 */
typedef struct {
    const char      *name;
    pd_int_t       (*init_process)(pd_cycle_t *cycle, pd_saver_conf_t *scf);
    void           (*exit_process)(void);
    /* pd_saver_store() below; expires is wall-clock ms */
    pd_int_t       (*store)(pd_str_t *uids, pd_uint_t n, pd_str_t *app,
                            pd_str_t *collapse, uint64_t seq,
                            pd_str_t *payload, uint64_t expires,
                            pd_pool_t *pool, pd_saver_done_pt done,
                            void *data);
    /* pd_saver_fetch() below */
    pd_int_t       (*fetch)(pd_str_t *uid, pd_str_t *app, pd_str_t *after,
                            pd_saver_take_pt take, pd_saver_fetched_pt fetched,
                            void *data);
    /* the client acked id: PD_OK, PD_DECLINED (not a message of ours) */
    pd_int_t       (*ack)(pd_str_t *uid, pd_str_t *id);
    /* a live send: PD_OK, PD_DECLINED (gone), PD_ABORT (no-ack guard) */
    pd_int_t       (*delivered)(pd_str_t *uid, uint64_t seq);
    /* pd_saver_store_orders_lookups() below; NULL: 0 */
    pd_uint_t      (*orders_lookups)(void);
} pd_saver_backend_t;

extern pd_saver_backend_t  pd_saver_memory_backend;
extern pd_saver_backend_t  pd_saver_redis_backend;

extern pd_module_t         pd_saver_module;

/* the saver's counters (pd_saver_counters, pd_saver_module.c) */
#define PD_SAVER_STAT_CLUSTER_DROPPED_NOACK  0
extern pd_saver_conf_t    *pd_saver;      /* NULL: no saver section */
extern pd_saver_backend_t *pd_saver_backend;

/*
 * Stores one message for n uids of an app (the payload once, shared) and
 * calls done exactly once, maybe before returning: PD_OK with the uids
 * kept and those whose mailbox is full, or PD_ERROR (nothing kept: the
 * store is full or unreachable).  Returns PD_OK when done is called,
 * else PD_BUSY / PD_DECLINED (unreachable) / PD_ERROR and done is not.
 * Arguments are built in pool.  A collapse key (len 0: none) replaces,
 * for each uid, the older unacked message of the same app and key: once
 * this one is kept, that one is gone from the store (and, in a cluster,
 * from the durable log), so a client that comes later gets only the
 * newest.
 */
pd_int_t pd_saver_store(pd_str_t *uids, pd_uint_t n, pd_str_t *app,
    pd_str_t *collapse, uint64_t seq, pd_str_t *payload, pd_msec_t ttl,
    pd_pool_t *pool, pd_saver_done_pt done, void *data);
/*
 * The unacked messages of (uid, app) after the cursor after (empty: from
 * the start; one no longer valid also means from the start: at least
 * once), in order, each counted as delivered when taken: take is called
 * for each (at most PD_SAVER_FETCH_MAX in one fetch for the cluster
 * store), then fetched once, both maybe before this returns.  PD_OK, or
 * PD_DECLINED / PD_ERROR and neither is called.
 */
pd_int_t pd_saver_fetch(pd_str_t *uid, pd_str_t *app, pd_str_t *after,
    pd_saver_take_pt take, pd_saver_fetched_pt fetched, void *data);
pd_int_t pd_saver_ack(pd_str_t *uid, pd_str_t *id);
/*
 * 1 when a register lookup asked right after pd_saver_store() returned
 * PD_OK runs after the store is visible to fetches, though the store is
 * not answered yet: the cluster store on the register's own Redis links,
 * where the uid's lookup follows the uid's store on one link, and one
 * server runs them in order.  A client that registers between the two
 * is then either found by the lookup or finds the message in its fetch,
 * so the lookup need not wait for the store's answer (PostgreSQL's
 * commit), only the delivery does (pd_room_route.c).
 */
pd_uint_t pd_saver_store_orders_lookups(void);
pd_int_t pd_saver_delivered(pd_str_t *uid, uint64_t seq);

/* the redis backend's hooks (pd_saver_redis.c) */
void pd_saver_redis_connected(pd_redis_t *r);

/*
 * What the cluster saver reads of its servers' answers, apart from the
 * I/O, so that untrusted replies can be tested alone
 * (pd_saver_redis.c):
 *
 * pd_sr_fetch_retry: 1 when the pending script asks to be called again
 * with the ids that follow its first element (a -1).
 *
 * pd_sr_fetch_dropped: how many ids the pending script's no-ack guard
 * dropped (its second element; the ids follow it).  PD_ERROR for a
 * reply that is not the script's.
 *
 * pd_sr_fetch_walk: the pending script's messages (id, payload pairs
 * after two elements of its own and the dropped ids) handed to take in
 * order until it says
 * stop or PD_SAVER_FETCH_MAX were taken; *cursor becomes the last id
 * taken (left as it was when none), *more 1 when some may be left.
 * PD_ERROR for a reply that is not the script's.
 *
 * pd_sr_reload_row: a row of the reload query (uid, id, app, payload,
 * expires) out of PostgreSQL; the spans point into res.  PD_ERROR for a
 * row short of a column, with a NULL, a bad name or id, or an expires
 * that is not a number.
 */
pd_uint_t pd_sr_fetch_retry(const redisReply *reply);
pd_int_t pd_sr_fetch_dropped(const redisReply *reply, pd_uint_t *n);
pd_int_t pd_sr_fetch_walk(const redisReply *reply, pd_saver_take_pt take,
    void *data, pd_str_t *cursor, pd_uint_t *more);
pd_int_t pd_sr_reload_row(const PGresult *res, int row, pd_str_t *uid,
    pd_str_t *id, pd_str_t *app, pd_str_t *payload, uint64_t *expires);

pd_int_t pd_saver_bcast_store(pd_str_t *app, uint64_t seq,
    pd_str_t *payload, pd_msec_t ttl);
pd_int_t pd_saver_bcast_pending(pd_str_t *app, uint64_t after,
    pd_saver_msg_pt handler, void *data);
uint64_t pd_saver_cursor_get(pd_str_t *uid, pd_str_t *app);
void pd_saver_cursor_set(pd_str_t *uid, pd_str_t *app, uint64_t seq);

/* figures for /v1/stats and /metrics */
pd_int_t pd_saver_stats(pd_msg_stats_t *st);

#endif /* PD_SAVER_H */
