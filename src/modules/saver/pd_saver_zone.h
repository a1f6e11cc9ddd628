/*
 * pd_saver_zone.h: the message store's internals, shared by
 * pd_saver_store.c (zone, payload blocks, repair, mailboxes) and
 * pd_saver_bcast.c (retained broadcasts, cursors); nothing else includes it.
 */

#ifndef PD_SAVER_ZONE_H
#define PD_SAVER_ZONE_H

#include "pd_saver_store.h"

#define pd_msg_buckets(z)                                                    \
    ((uint32_t *) ((u_char *) (z) + (z)->buckets))
#define pd_msg_entries(z)                                                    \
    ((pd_msg_entry_t *) ((u_char *) (z) + (z)->entries))
#define pd_msg_mailboxes(z)                                                  \
    ((pd_msg_mailbox_t *) ((u_char *) (z) + (z)->mailboxes))
#define pd_msg_mb_buckets(z)                                                 \
    ((uint32_t *) ((u_char *) (z) + (z)->mb_buckets))
#define pd_msg_cursors(z)                                                    \
    ((pd_msg_cursor_t *) ((u_char *) (z) + (z)->cursors))
#define pd_msg_cur_buckets(z)                                                \
    ((uint32_t *) ((u_char *) (z) + (z)->cur_buckets))
#define pd_msg_bapps(z)                                                      \
    ((pd_msg_bapp_t *) ((u_char *) (z) + (z)->bapps))
#define pd_msg_block(z, g)                                                   \
    ((pd_msg_block_t *) ((u_char *) (z) + (z)->area                          \
                         + (size_t) (g) * PD_MSG_GRANULE))
#define pd_msg_block_data(b)  ((u_char *) (b) + PD_MSG_BLOCK_HDR)

/* see pd_shtable.h: a compiler barrier between a commit and its fields */
#define pd_msg_commit()  pd_shtable_fence()

/* a (uid, app) checked and hashed before locking */
typedef struct {
    const u_char  *uid;
    const u_char  *app;
    size_t         uid_len;
    size_t         app_len;
    uint32_t       hash;      /* of (uid, app): mailboxes, cursors */
    uint32_t       uhash;     /* of uid: the (uid, seq) index */
} pd_msg_key_t;


/* with the mutex held, the zone repaired if its holder died; PD_ERROR */
pd_int_t pd_msg_lock(pd_msg_zone_t *z);
void pd_msg_unlock(pd_msg_zone_t *z);

/* the keyed hash of an app name */
uint64_t pd_msg_app_hash(pd_msg_zone_t *z, const u_char *app, size_t len);

/* checks and hashes (uid, app) into key; PD_ERROR on a bad length */
pd_int_t pd_msg_key_app(pd_msg_zone_t *z, pd_msg_key_t *key,
    const u_char *uid, size_t uidlen, const u_char *app, size_t applen);

/*
 * Under the lock: a block holding a copy of data, with no reference
 * yet (the caller takes the first, or frees it); PD_MSG_NIL when the
 * payload area is full.
 */
uint32_t pd_msg_block_copy(pd_msg_zone_t *z, const u_char *data,
    size_t len);

/* drops a reference to block g, freeing it with the last */
void pd_msg_block_unref(pd_msg_zone_t *z, uint32_t g);

/* the repair's parts for the broadcast and cursor tables (idempotent) */
void pd_msg_rebuild_bcasts(pd_msg_zone_t *z);
void pd_msg_rebuild_cursors(pd_msg_zone_t *z);

/* removes the retained broadcasts expired at now, counting them */
void pd_msg_bcast_expire(pd_msg_zone_t *z, uint64_t now);

#endif /* PD_SAVER_ZONE_H */
