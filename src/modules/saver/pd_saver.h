/*
 * pd_saver.h: the saver keeps qos 1 messages until they are acked,
 * expire or are dropped by the no-ack guard, and retains broadcasts with
 * a ttl for users who connect later.  Callers use the calls below; the
 * backend (memory now: a shared-memory store) does the work.
 */

#ifndef PD_SAVER_H
#define PD_SAVER_H

#define PD_SAVER_MEMORY  0

typedef struct {
    pd_uint_t        backend;
    size_t           memory;
    pd_msec_t        ttl;             /* default of a message */
    pd_msec_t        max_ttl;
    pd_int_t         max_redeliveries;
    pd_int_t         max_per_mailbox;
    pd_msec_t        sweep;           /* expiry sweep period */
    pd_shm_zone_t   *zone;
} pd_saver_conf_t;

/* handed one stored message (pd_msg_handler_pt): copy, return PD_OK to
 * go on; anything else stops the walk and that message is not counted */
typedef pd_msg_handler_pt  pd_saver_msg_pt;

extern pd_module_t       pd_saver_module;
extern pd_saver_conf_t  *pd_saver;      /* NULL: no saver section */

/*
 * Stores one message for n uids of an app (the payload once, shared).
 * PD_OK with *stored uids kept and *full uids whose mailbox is full;
 * PD_BUSY when the store has no room (nothing kept).  The address list
 * is built in pool.
 */
pd_int_t pd_saver_store(pd_str_t *uids, pd_uint_t n, pd_str_t *app,
    uint64_t seq, pd_str_t *payload, pd_msec_t ttl, pd_uint_t *stored,
    pd_uint_t *full, pd_pool_t *pool);
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
