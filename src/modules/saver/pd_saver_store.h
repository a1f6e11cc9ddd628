/*
 * pd_saver_store.h: the saver's shared-memory message store: QoS 1
 * messages per (uid, app) mailbox until acked, retained broadcasts per
 * app and per-uid broadcast cursors, shared by all workers.
 */

#ifndef PD_SAVER_STORE_H
#define PD_SAVER_STORE_H

/*
 * Payloads live in blocks of 64 bytes << class, a 16-byte header
 * included: the largest payload fills the largest class.
 */
#define PD_MSG_CLASSES      16
#define PD_MSG_GRANULE      64
#define PD_MSG_BLOCK_HDR    16
#define PD_MSG_PAYLOAD_MAX                                                   \
    ((PD_MSG_GRANULE << (PD_MSG_CLASSES - 1)) - PD_MSG_BLOCK_HDR)

/* retained broadcasts: the last PD_MSG_BCAST_KEEP of PD_MSG_BCAST_APPS */
#define PD_MSG_BCAST_APPS   64
#define PD_MSG_BCAST_KEEP   16

/* "no slot": ends lists and chains */
#define PD_MSG_NIL          PD_SHTABLE_NIL

typedef struct {
    const u_char  *uid;      /* 1 to PD_UID_MAX bytes */
    size_t         len;
} pd_msg_addr_t;

/*
 * Hands one message to the caller, under the zone's lock: it must copy
 * (or frame) the payload and return, never call into the store (the
 * lock is not recursive) nor block.  PD_OK: handed out; anything else
 * stops the walk, and that message counts as not handed out.
 */
typedef pd_int_t (*pd_msg_handler_pt)(void *data, uint64_t seq,
    const u_char *payload, size_t len, uint64_t expires_ms);

typedef struct {
    uint64_t     entries;          /* (uid, message) entries stored now */
    uint64_t     max_entries;      /* the size of the entry table */
    uint64_t     payloads;         /* distinct payloads now, broadcasts too */
    uint64_t     bytes_used;       /* of the payload area, in whole blocks */
    uint64_t     bytes_capacity;   /* of the payload area */
    uint64_t     mailboxes;        /* non-empty (uid, app) mailboxes */
    uint64_t     broadcasts;       /* retained now */
    uint64_t     cursors;
    uint64_t     stored;           /* totals since format: entries stored */
    uint64_t     acked;
    uint64_t     expired;
    uint64_t     dropped_noack;    /* delivered max_deliveries times */
    uint64_t     refused_full;     /* uids skipped: mailbox full */
    uint64_t     refused_busy;     /* store calls refused: no memory */
    uint64_t     bcast_stored;
    uint64_t     bcast_expired;    /* and evicted from a full ring */
    uint64_t     cursors_evicted;
    uint64_t     repairs;          /* times a dead holder's mess was fixed */
    uint64_t     collapsed;        /* entries replaced by a newer one */
    uint64_t     bytes;            /* the zone, as formatted */
    uint32_t     entry_bytes;      /* one (uid, message) entry */
    uint32_t     buckets;          /* (uid, seq) hash chains, 4 bytes each */
    uint32_t     mailbox_bytes;    /* one (uid, app) mailbox */
    uint32_t     max_mailboxes;
    uint32_t     cursor_bytes;     /* one (uid, app) broadcast cursor */
    uint32_t     max_cursors;
} pd_msg_stats_t;


/*
 * The layout below is public for the unit tests and for gdb; everything
 * else goes through the functions.  Slots are found by index and arrays
 * by offset from the zone, so the zone means the same wherever mapped.
 *
 * Crash consistency: the facts are the state of each entry, mailbox,
 * cursor and broadcast slot (stored after the fields it commits), the
 * forward links of each mailbox (store order), the class of each
 * payload block and the bump pointer.  Everything else (back links,
 * hash chains, free lists, counts, payload reference counts) is derived
 * and rebuilt when a lock holder died; a store call cut short is rolled
 * back whole through open_stamp.  The entries, mailboxes and cursors are
 * pd_shtable slots (see pd_shtable.h).
 */

#define PD_MSG_FREE  PD_SHTABLE_FREE
#define PD_MSG_USED  PD_SHTABLE_USED

typedef struct {
    uint32_t     next;        /* mailbox list in store order, free list */
    uint32_t     prev;        /* mailbox list, derived */
    uint32_t     hnext;       /* (uid, seq) hash chain */
    uint32_t     mailbox;     /* index of its mailbox */
    uint64_t     seq;
    uint64_t     expires;     /* unix ms */
    uint64_t     stamp;       /* the store call that added it */
    uint32_t     payload;     /* first granule of its block in the area */
    uint32_t     deliveries;
    uint64_t     collapse;    /* keyed hash of its collapse key, 0: none */
    uint8_t      state;       /* PD_MSG_FREE, PD_MSG_USED */
    uint8_t      mark;        /* the repair walk was here */
    uint8_t      pad[6];
} pd_msg_entry_t;             /* one per (uid, message): 64 bytes */

typedef struct {
    uint32_t     next;        /* hash chain, or the free list */
    uint32_t     hash;        /* of (uid, app): the bucket */
    uint32_t     uhash;       /* of uid alone: its entries' (uid, seq) */
    uint32_t     head;        /* oldest entry */
    uint32_t     tail;        /* newest entry, derived */
    uint32_t     count;       /* derived */
    uint8_t      state;
    uint8_t      uid_len;
    uint8_t      app_len;
    uint8_t      pad;
    u_char       uid[PD_UID_MAX];     /* not NUL-terminated */
    u_char       app[PD_APP_MAX];
} pd_msg_mailbox_t;

typedef struct {
    uint64_t     seq;         /* the last broadcast seen */
    uint32_t     next;        /* hash chain, or the free list */
    uint32_t     hash;        /* of (uid, app) */
    uint8_t      state;
    uint8_t      uid_len;
    uint8_t      app_len;
    uint8_t      pad;
    u_char       uid[PD_UID_MAX];
    u_char       app[PD_APP_MAX];
} pd_msg_cursor_t;

typedef struct {
    uint64_t     seq;
    uint64_t     expires;
    uint32_t     payload;
    uint8_t      state;
    uint8_t      pad[3];
} pd_msg_bcast_t;

/* an app's retained broadcasts; it is free while none is retained */
typedef struct {
    uint32_t     hash;
    uint8_t      len;
    uint8_t      pad[3];
    u_char       name[PD_APP_MAX];
    pd_msg_bcast_t  slots[PD_MSG_BCAST_KEEP];   /* unordered */
} pd_msg_bapp_t;

/* at the start of each payload block */
typedef struct {
    uint32_t     refs;        /* entries and broadcasts; 0: free */
    uint32_t     len;         /* payload bytes that follow */
    uint32_t     next;        /* class free list, derived */
    uint8_t      cls;         /* the block is PD_MSG_GRANULE << cls */
    uint8_t      pad[3];
} pd_msg_block_t;

typedef struct {
    /* see pd_shlock.h; every critical section is bounded, no syscall */
    pthread_mutex_t  mutex;

    uint64_t     magic;
    uint64_t     size;        /* of the zone, as formatted */
    uint64_t     seed[2];     /* SipHash key, from getrandom() */
    uint64_t     seq;         /* pd_msg_next_seq(), atomic, no lock */
    uint64_t     stamp;       /* store calls */
    uint64_t     open_stamp;  /* the store call under way, 0: none */

    uint64_t     max_payload;
    uint32_t     max_per_mailbox;

    uint32_t     max_entries;
    uint32_t     max_mailboxes;
    uint32_t     max_cursors;
    uint32_t     mask;        /* (uid, seq) buckets - 1 */
    uint32_t     mb_mask;
    uint32_t     cur_mask;

    uint32_t     free;        /* entry free list */
    uint32_t     nentries;
    uint32_t     mb_free;
    uint32_t     nmailboxes;
    uint32_t     cur_free;
    uint32_t     ncursors;
    uint32_t     nbcasts;
    uint32_t     hand;        /* the expiry sweep's next entry */
    uint32_t     cur_hand;    /* the next cursor evicted */
    uint32_t     top;         /* entries, mailboxes and cursors ever */
    uint32_t     mb_top;      /* handed out: the tables grow with use */
    uint32_t     cur_top;     /* (pd_shtable.h) */

    uint32_t     granules;    /* in the payload area */
    uint32_t     bump;        /* granules carved so far */
    uint32_t     free_lists[PD_MSG_CLASSES];
    uint64_t     payloads;
    uint64_t     bytes_used;

    uint64_t     stored;      /* totals, as in pd_msg_stats_t */
    uint64_t     acked;
    uint64_t     expired;
    uint64_t     dropped_noack;
    uint64_t     refused_full;
    uint64_t     refused_busy;
    uint64_t     bcast_stored;
    uint64_t     bcast_expired;
    uint64_t     cursors_evicted;
    uint64_t     repairs;
    uint64_t     collapsed;

    uint64_t     buckets;     /* offsets from the zone of its arrays */
    uint64_t     entries;
    uint64_t     mailboxes;
    uint64_t     mb_buckets;
    uint64_t     cursors;
    uint64_t     cur_buckets;
    uint64_t     bapps;
    uint64_t     area;
} pd_msg_zone_t;


/*
 * Geometry, fixed by the size of the region: after the header and the
 * broadcast table (PD_MSG_BCAST_APPS apps, 27 KB), half the rest holds
 * the tables and the other half (at least) is the payload area.  The
 * tables hold N entries with N/2 mailboxes and N/2 cursors, plus hash
 * buckets: about 200 bytes per entry, so a 256 MB zone holds some
 * 670k entries (one per uid a message is for) and 128 MB of payloads.
 *
 * pd_msg_store_size() is the smallest region with room for max_messages
 * entries whose payload area holds at least 4 blocks of max_payload;
 * 0 when either is 0 or too large.
 */
size_t pd_msg_store_size(uint32_t max_messages, size_t max_payload);

/*
 * fresh: formats size bytes at addr (aligned to 64) with a new random
 * hash seed and the seq counter at unix_ms << 12.  Else attaches to the
 * store formatted there before (by another cycle), whose data it keeps;
 * the limits (max_payload, max_per_mailbox) take the new values.
 * Returns the zone (it is addr) or NULL with errno: ENOSPC when size is
 * too small for max_payload, EINVAL for a bad argument or an attached
 * zone formatted for another size, or what getrandom() or the mutex
 * initialisation failed with.  The zone lives in the caller's memory.
 */
pd_msg_zone_t *pd_msg_store_init(void *addr, size_t size, size_t max_payload,
    uint32_t max_per_mailbox, int fresh);

/*
 * A new message id: unique across all processes sharing the zone, and
 * increasing (each caller sees its ids increase; ids taken later are
 * larger).  Starting from the wall clock at format, ids keep increasing
 * across restarts unless more than 4096 were taken per ms on average.
 */
uint64_t pd_msg_next_seq(pd_msg_zone_t *z);

/*
 * Stores one message for app (1 to PD_APP_MAX bytes) to the n uids
 * of to: one copy of data (len <= max_payload, kept byte for byte) and
 * one small entry per uid, expiring at expires_ms (unix ms).  A uid
 * whose mailbox holds max_per_mailbox entries is skipped and counted in
 * *full; a uid that holds seq already counts as stored (a retry).
 * PD_OK with *stored + *full == n; PD_BUSY when the entry table, the
 * mailbox table or the payload area lacks room: nothing is stored;
 * PD_ERROR on a bad argument (nothing stored) or an unusable lock.
 * The lock is held for the whole call, two table lookups per uid: split
 * lists of more than a few thousand uids.  Nothing of to or data is
 * kept.
 */
pd_int_t pd_msg_store(pd_msg_zone_t *z, const pd_msg_addr_t *to,
    pd_uint_t n, const u_char *app, size_t applen, uint64_t seq,
    const u_char *data, size_t len, uint64_t expires_ms, pd_uint_t *stored,
    pd_uint_t *full);

/*
 * pd_msg_store() with a collapse key (1 to PD_COLLAPSE_MAX bytes; NULL:
 * none): once the message is stored, each uid's older entries of the
 * same app and key leave (counted collapsed), so a mailbox holds one
 * message per key, the newest.  A full mailbox holding the key takes
 * the newer one too.  The store is all or nothing as before; a crash
 * between it and the removals leaves the older ones too (at least
 * once), never the older alone.
 */
pd_int_t pd_msg_store_collapse(pd_msg_zone_t *z, const pd_msg_addr_t *to,
    pd_uint_t n, const u_char *app, size_t applen, const u_char *ckey,
    size_t cklen, uint64_t seq, const u_char *data, size_t len,
    uint64_t expires_ms, pd_uint_t *stored, pd_uint_t *full);

/*
 * Hands out the messages of the (uid, app) mailbox in store order.  An
 * entry expired at now_ms is removed (counted expired); one delivered
 * max_deliveries times already is removed (counted dropped_noack: the
 * client never acks it); the others count one more delivery and go to
 * handler(data, ...) (see pd_msg_handler_pt).  max_deliveries 0: no
 * limit.  Returns the number handed out, or PD_ERROR on a bad argument
 * or an unusable lock.
 */
pd_int_t pd_msg_pending(pd_msg_zone_t *z, const u_char *uid, size_t uidlen,
    const u_char *app, size_t applen, uint64_t now_ms,
    uint32_t max_deliveries, pd_msg_handler_pt handler, void *data);

/*
 * The same walk, resumable: entries up to *resume (a position in store
 * order; 0 at the start) are passed over uncounted, and *resume is moved
 * past each entry handed out.  A caller whose handler stopped the walk
 * (its output queue is full) continues later from there without handing
 * anything out twice.
 */
pd_int_t pd_msg_pending_from(pd_msg_zone_t *z, const u_char *uid,
    size_t uidlen, const u_char *app, size_t applen, uint64_t now_ms,
    uint32_t max_deliveries, uint64_t *resume, pd_msg_handler_pt handler,
    void *data);

/*
 * Counts a live delivery of seq to uid (sent to an online connection
 * right after the store).  PD_OK: send it; PD_DECLINED: the entry is
 * gone (acked, expired, dropped), do not send; PD_ABORT: it was
 * delivered max_deliveries times already, so it is removed (counted
 * dropped_noack), do not send; PD_ERROR.  max_deliveries 0: no limit.
 */
pd_int_t pd_msg_delivered(pd_msg_zone_t *z, const u_char *uid,
    size_t uidlen, uint64_t seq, uint32_t max_deliveries);

/*
 * The client uid acks seq, whatever the app: its entry is removed, and
 * the payload freed with its last entry.  PD_OK; PD_DECLINED when uid
 * holds no such entry (unknown, gone, or another uid's: a client may
 * only ack its own messages); PD_ERROR on an unusable lock.
 */
pd_int_t pd_msg_ack(pd_msg_zone_t *z, const u_char *uid, size_t uidlen,
    uint64_t seq);

/*
 * The sweep, from a timer: looks at max_scan entry slots past the last
 * one looked at (a clock hand) and removes those expired at now_ms,
 * then at every retained broadcast.  Returns the entries removed.
 */
pd_uint_t pd_msg_expire(pd_msg_zone_t *z, uint64_t now_ms,
    pd_uint_t max_scan);

/*
 * Retains one broadcast of app until expires_ms, among the app's last
 * PD_MSG_BCAST_KEEP (by seq; the lowest goes when the app has as many).
 * PD_OK; PD_DECLINED when seq is lower than all of a full ring's (not
 * kept); PD_BUSY when the payload area is full, or PD_MSG_BCAST_APPS
 * other apps have broadcasts retained; PD_ERROR on a bad argument.
 */
pd_int_t pd_msg_bcast_store(pd_msg_zone_t *z, const u_char *app,
    size_t applen, uint64_t seq, const u_char *data, size_t len,
    uint64_t expires_ms);

/*
 * Hands out app's retained broadcasts with seq > after_seq unexpired at
 * now_ms, by increasing seq (see pd_msg_handler_pt).  Returns the
 * number handed out, or PD_ERROR.
 */
pd_int_t pd_msg_bcast_pending(pd_msg_zone_t *z, const u_char *app,
    size_t applen, uint64_t after_seq, uint64_t now_ms,
    pd_msg_handler_pt handler, void *data);

/*
 * The last broadcast seq of app the uid has seen: 0 when unknown (never
 * set, or evicted) or on a bad argument.
 */
uint64_t pd_msg_cursor_get(pd_msg_zone_t *z, const u_char *uid,
    size_t uidlen, const u_char *app, size_t applen);

/*
 * Raises the cursor of (uid, app) to seq; never lowers it.  A full
 * cursor table evicts another cursor (a clock hand): that uid may get
 * a retained broadcast twice, which at-least-once allows.  PD_OK or
 * PD_ERROR on a bad argument or an unusable lock.
 */
pd_int_t pd_msg_cursor_set(pd_msg_zone_t *z, const u_char *uid,
    size_t uidlen, const u_char *app, size_t applen, uint64_t seq);

/* copies the counters into st; PD_OK or PD_ERROR (lock) */
pd_int_t pd_msg_stats(pd_msg_zone_t *z, pd_msg_stats_t *st);

#endif /* PD_SAVER_STORE_H */
