/*
 * pd_register_zone.h: the register's shared-memory zone: uid -> the live
 * connections of that uid in every worker, and per client IP connection
 * counts, shared by the master and both generations of workers.
 */

#ifndef PD_REGISTER_ZONE_H
#define PD_REGISTER_ZONE_H

#include <pthread.h>

/* name limits: PD_UID_MAX, PD_DEVICE_MAX, PD_APP_MAX, PD_APPS_MAX */
#define PD_REG_APP_TABLE  1024    /* distinct app names live at once */

/* the largest max_conns / max_ips a zone may be formatted for */
#define PD_REG_MAX_SLOTS  (1U << 30)

/* "no slot": ends hash chains and free lists */
#define PD_REG_NIL        PD_SHTABLE_NIL
#define PD_REG_APP_NIL    0xffffU

typedef struct {
    u_char       uid[PD_UID_MAX + 1];   /* NUL-terminated copies */
    u_char       device[PD_DEVICE_MAX + 1];
    u_char       apps[PD_APPS_MAX][PD_APP_MAX + 1];
    uint32_t     napps;
    uint32_t     lingering; /* its socket dropped: kept for a resume */
    int32_t      pid;       /* the worker holding the connection */
    int32_t      wslot;     /* its worker slot */
    uint64_t     conn;      /* connection id, unique within the pid */
    uint64_t     since;     /* unix ms */
    /* a connection handed over by a reload: 24 bits of the session id
     * its client holds (pd_room_sid_tag), which no longer follows from
     * pid and conn; 0 for every other (pd_reg_move sets it) */
    uint32_t     sid_tag;
    /* its node, for a cluster register; empty: this node (the zone
     * leaves it so) */
    u_char       node[PD_NODE_ID_SIZE];
} pd_reg_info_t;            /* what add takes and lookups hand out */


/*
 * The layout below is public for the unit tests and for gdb; everything
 * else goes through the functions.  Slots are found by index, never by
 * pointer, and the arrays by offset from the zone, so the zone means the
 * same wherever it is mapped.
 *
 * Crash consistency: the state byte of an entry or IP node (and the count
 * of a node) is the only fact; it is stored after the fields it commits.
 * Hash chains, free lists, totals, app reference counts and the app index
 * are derived and rebuilt from the slots when a lock holder died.  The
 * entries and the IP nodes are pd_shtable slots (see pd_shtable.h).
 */

#define PD_REG_FREE  PD_SHTABLE_FREE
#define PD_REG_USED  PD_SHTABLE_USED

/* what a used slot of the entry table is */
#define PD_REG_CONN  1      /* a connection: pd_reg_entry_t */
#define PD_REG_MORE  2      /* the rest of one's names: pd_reg_more_t */

/* the bytes of uid and device an entry holds itself: a UUID for each
 * (36 + 36) fits; longer pairs go on in a second slot of the table,
 * taken only for them */
#define PD_REG_NAMES       74
#define PD_REG_MORE_NAMES  116

/*
 * A slot is 128 bytes where uid and device at their maxima inline took
 * 184, and every connection pays for its slot: a connection whose names
 * are longer than PD_REG_NAMES takes two, 256 (the zone's capacity is
 * counted in slots).  The first 8 bytes are the same in both kinds of
 * slot.  The connection id is in halves and the time in seconds so that
 * nothing aligns the entry to 8: two cache lines.
 */
typedef struct {
    uint32_t     next;      /* hash chain, or the free list */
    uint8_t      state;     /* PD_REG_FREE, PD_REG_USED */
    uint8_t      kind;      /* PD_REG_CONN */
    uint8_t      uid_len;
    uint8_t      device_len;
    uint32_t     hash;      /* of the uid: its bucket, a cheap compare */
    uint32_t     more;      /* the slot of the names past PD_REG_NAMES,
                             * PD_REG_NIL when they all fit here */
    int32_t      pid;
    uint32_t     conn_lo;   /* pd_reg_info_t.conn: pd_reg_conn() */
    uint32_t     conn_hi;
    uint32_t     since;     /* unix seconds (the room's are whole ones) */
    int16_t      wslot;     /* below PD_MAX_PROCESSES */
    uint16_t     apps[PD_APPS_MAX];   /* indices into the app table */
    uint8_t      napps:4;             /* at most PD_APPS_MAX */
    uint8_t      lingering:1;
    u_char       sid_tag[3];          /* pd_reg_info_t.sid_tag, little
                                       * end first */
    u_char       names[PD_REG_NAMES]; /* uid then device, not
                                       * NUL-terminated: the first
                                       * PD_REG_NAMES bytes */
} pd_reg_entry_t;

#define pd_reg_conn(e)  ((uint64_t) (e)->conn_hi << 32 | (e)->conn_lo)
#define pd_reg_conn_set(e, c)                                                \
    do {                                                                     \
        (e)->conn_lo = (uint32_t) (c);                                       \
        (e)->conn_hi = (uint32_t) ((uint64_t) (c) >> 32);                    \
    } while (0)

/* a slot of the entry table holding the rest of a connection's names;
 * in no hash chain (pd_shtable's "aside"), found from its entry */
typedef struct {
    uint32_t     next;      /* the free list */
    uint8_t      state;
    uint8_t      kind;      /* PD_REG_MORE */
    uint8_t      pad[2];
    uint32_t     owner;     /* the entry whose names go on here */
    u_char       names[PD_REG_MORE_NAMES];
} pd_reg_more_t;

typedef struct {
    uint32_t     refs;      /* entries naming it; 0: free */
    uint32_t     hash;
    uint16_t     next;      /* app chain, or the app free list */
    uint8_t      len;
    u_char       name[PD_APP_MAX];
} pd_reg_app_t;

/* one per (client address, worker): a dead worker's counts can be purged.
 * 32 bytes: the pid in three (Linux's pid_max is at most 2^22), beside
 * the state byte, which is written after it */
typedef struct {
    uint32_t     next;
    uint32_t     hash;      /* of the address alone */
    uint32_t     count;     /* connections; 0 counts as free */
    u_char       pid[3];    /* little end first */
    uint8_t      state;
    u_char       addr[16];  /* IPv6, or IPv4 mapped into IPv6 */
} pd_reg_ip_t;

typedef struct {
    /*
     * One robust process-shared mutex guards the whole zone.  A spinlock
     * left held by a SIGKILLed worker would stall every other process for
     * good; a robust mutex hands the next locker EOWNERDEAD instead, and
     * it repairs the zone (see pd_reg_repair in the .c file).  There are
     * no robust rwlocks, and readers hold the lock only to copy out a
     * few hundred bytes, so readers lock too.  Uncontended, the futex
     * costs one atomic exchange each way; contended, waiters sleep
     * instead of burning the CPU the holder needs.  Every critical
     * section is bounded and makes no system call: hashing is done
     * before locking, and a purge relocks every PD_REG_PURGE_BATCH slots.
     */
    pthread_mutex_t  mutex;

    uint64_t     magic;
    uint64_t     size;      /* of the zone, as formatted */
    uint64_t     seed[2];   /* SipHash key, from getrandom() */
    uint64_t     repairs;   /* times a dead holder's mess was rebuilt */

    uint32_t     max_conns;
    uint32_t     max_ips;
    uint32_t     mask;      /* buckets - 1, a power of two minus one */
    uint32_t     ip_mask;

    uint32_t     free;      /* entry free list */
    uint32_t     count;     /* live entries */
    uint32_t     ip_free;
    uint32_t     ip_count;  /* live IP nodes */
    uint16_t     app_free;
    uint16_t     napps;     /* live app names */
    uint32_t     top;       /* entries ever handed out (pd_shtable.h) */
    uint32_t     ip_top;    /* IP nodes ever handed out */
    uint32_t     more;      /* slots holding the rest of long names */

    uint64_t     buckets;   /* offsets from the zone of its arrays */
    uint64_t     entries;
    uint64_t     apps;
    uint64_t     app_buckets;
    uint64_t     ip_buckets;
    uint64_t     ips;
} pd_reg_zone_t;


/*
 * The bytes a zone for max_conns connections and max_ips (address,
 * worker) pairs needs; 0 when either is 0 or above PD_REG_MAX_SLOTS.
 * About 132 bytes a connection (one more slot, 128, for one whose uid
 * and device together pass PD_REG_NAMES) and 40 a pair, plus 47 KB of
 * app table.
 */
size_t pd_reg_zone_size(uint32_t max_conns, uint32_t max_ips);

/* the most connections a zone of size bytes holds beside max_ips pairs */
uint32_t pd_reg_zone_max_conns(size_t size, uint32_t max_ips);

/*
 * fresh: formats size bytes at addr (aligned to 8) for max_conns and
 * max_ips, with a new random hash seed.  Else attaches to the zone
 * formatted there before (by another cycle), whose data it keeps.
 * Returns the zone (it is addr) or NULL with errno: ENOSPC when size is
 * too small, EINVAL when an attached zone was formatted with another
 * size or geometry, EPROTO when by a binary whose entries are laid out
 * otherwise (a binary upgrade across a layout change), or what
 * getrandom() / pthread_mutexattr_*() failed with.  The zone lives in
 * and is owned by the caller's memory.
 */
pd_reg_zone_t *pd_reg_zone_init(void *addr, size_t size, uint32_t max_conns,
    uint32_t max_ips, int fresh);

/*
 * Registers a connection: info->uid (1 to PD_UID_MAX bytes), device
 * (at most PD_DEVICE_MAX) and napps app names (each 1 to
 * PD_APP_MAX bytes, duplicates dropped) are NUL-terminated.
 * PD_OK; PD_BUSY when the zone or the app table is full; PD_DECLINED
 * when (uid, pid, conn) is registered already; PD_ERROR on a bad
 * argument or an unrecoverable lock.  Nothing of info is kept.
 */
pd_int_t pd_reg_add(pd_reg_zone_t *z, const pd_reg_info_t *info);

/* PD_OK, PD_DECLINED when (uid, pid, conn) is not registered, PD_ERROR */
pd_int_t pd_reg_remove(pd_reg_zone_t *z, const u_char *uid, size_t len,
    int32_t pid, uint64_t conn);

/* marks one connection lingering (room.linger) or live again:
 * PD_OK, PD_DECLINED when not registered, PD_ERROR */
pd_int_t pd_reg_set_lingering(pd_reg_zone_t *z, const u_char *uid,
    size_t len, int32_t pid, uint64_t conn, pd_uint_t on);

/* the entry of (uid, pid, conn) now names (to_pid, to_wslot, to_conn)
 * and carries sid_tag (24 bits), atomically: PD_OK, PD_DECLINED when it
 * is not registered, PD_ERROR */
pd_int_t pd_reg_move(pd_reg_zone_t *z, const u_char *uid, size_t len,
    int32_t pid, uint64_t conn, int32_t to_pid, int32_t to_wslot,
    uint64_t to_conn, uint32_t sid_tag);

/*
 * Replaces the apps bound to one connection (bind / unbind), as for
 * pd_reg_add: PD_OK, PD_DECLINED when not registered, PD_BUSY when the
 * app table is full (the old apps stay), PD_ERROR.
 */
pd_int_t pd_reg_set_apps(pd_reg_zone_t *z, const u_char *uid, size_t len,
    int32_t pid, uint64_t conn, u_char apps[][PD_APP_MAX + 1],
    uint32_t napps);

/*
 * Copies up to max connections of uid into out (caller's memory) and
 * returns how many uid has, which may exceed max; 0 on a lock failure.
 */
pd_uint_t pd_reg_lookup(pd_reg_zone_t *z, const u_char *uid, size_t len,
    pd_reg_info_t *out, pd_uint_t max);

/*
 * The master, after reaping a worker: removes its entries and releases
 * its IP counts.  Returns the number of entries removed.
 */
pd_uint_t pd_reg_purge_pid(pd_reg_zone_t *z, int32_t pid);

/* live entries */
pd_uint_t pd_reg_count(pd_reg_zone_t *z);

/* what the zone holds and what one slot of each table costs, for stats */
typedef struct {
    uint64_t     bytes;          /* the zone, as formatted */
    uint32_t     entry_bytes;    /* one connection's entry */
    uint32_t     bucket_bytes;   /* one hash-chain head */
    uint32_t     used;           /* live entries */
    uint32_t     more_used;      /* slots holding long names' rest */
    uint32_t     capacity;       /* slots: entries the zone holds, less
                                  * one per long-named entry */
    uint32_t     buckets;        /* entry hash chains */
    uint32_t     ip_entry_bytes; /* one (address, worker) count */
    uint32_t     ips_used;
    uint32_t     ips_capacity;
    uint32_t     ip_buckets;
} pd_reg_zone_stats_t;

/* PD_OK, or PD_ERROR on an unrecoverable lock */
pd_int_t pd_reg_zone_stats(pd_reg_zone_t *z, pd_reg_zone_stats_t *st);

/*
 * Counts one more connection from sa's address (AF_INET or AF_INET6;
 * IPv4-mapped IPv6 counts as IPv4) held by pid, against a limit summed
 * over all workers (0: no limit).  PD_OK; PD_BUSY at the limit or when
 * the table is full; PD_DECLINED for another family (nothing counted,
 * nothing to release); PD_ERROR on an unrecoverable lock.
 */
pd_int_t pd_reg_ip_acquire(pd_reg_zone_t *z, const struct sockaddr *sa,
    int32_t pid, uint32_t limit);

/* undoes one PD_OK pd_reg_ip_acquire() of the same address and pid */
void pd_reg_ip_release(pd_reg_zone_t *z, const struct sockaddr *sa,
    int32_t pid);

/* connections from sa's address, all workers together */
pd_uint_t pd_reg_ip_count(pd_reg_zone_t *z, const struct sockaddr *sa);

#endif /* PD_REGISTER_ZONE_H */
