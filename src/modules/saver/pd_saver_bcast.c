/*
 * pd_saver_bcast.c: the message store's retained broadcasts (the last few
 * per app) and per-(uid, app) broadcast cursors.
 */

#include "pd_core.h"
#include "pd_saver_zone.h"


/* --- broadcasts -------------------------------------------------------- */


/* the slots are the facts; the payload references are counted */
void
pd_msg_rebuild_bcasts(pd_msg_zone_t *z)
{
    uint32_t         a, s;
    pd_msg_bcast_t  *slot;

    z->nbcasts = 0;

    for (a = 0; a < PD_MSG_BCAST_APPS; a++) {
        for (s = 0; s < PD_MSG_BCAST_KEEP; s++) {
            slot = &pd_msg_bapps(z)[a].slots[s];

            if (slot->state == PD_MSG_USED && slot->payload < z->bump
                && pd_msg_bapps(z)[a].len > 0
                && pd_msg_bapps(z)[a].len <= PD_APP_MAX)
            {
                pd_msg_block(z, slot->payload)->refs++;
                z->nbcasts++;
                continue;
            }

            slot->state = PD_MSG_FREE;
        }
    }
}


static void
pd_msg_bcast_release(pd_msg_zone_t *z, pd_msg_bcast_t *slot)
{
    slot->state = PD_MSG_FREE;
    pd_msg_commit();

    pd_msg_block_unref(z, slot->payload);
    z->nbcasts--;
}


/* retained broadcasts expired at now, all apps: a fixed, small table */
void
pd_msg_bcast_expire(pd_msg_zone_t *z, uint64_t now)
{
    uint32_t         a, s;
    pd_msg_bcast_t  *slot;

    for (a = 0; a < PD_MSG_BCAST_APPS; a++) {
        for (s = 0; s < PD_MSG_BCAST_KEEP; s++) {
            slot = &pd_msg_bapps(z)[a].slots[s];

            if (slot->state == PD_MSG_USED && slot->expires <= now) {
                pd_msg_bcast_release(z, slot);
                z->bcast_expired++;
            }
        }
    }
}


/* the app's record; an app's record is free while it retains nothing */
static pd_msg_bapp_t *
pd_msg_bapp_find(pd_msg_zone_t *z, uint32_t hash, const u_char *app,
    size_t len)
{
    uint32_t        a;
    pd_msg_bapp_t  *ba;

    for (a = 0; a < PD_MSG_BCAST_APPS; a++) {
        ba = &pd_msg_bapps(z)[a];

        if (ba->hash == hash && ba->len == len
            && memcmp(ba->name, app, len) == 0)
        {
            return ba;
        }
    }

    return NULL;
}


static pd_msg_bapp_t *
pd_msg_bapp_new(pd_msg_zone_t *z, uint32_t hash, const u_char *app,
    size_t len)
{
    uint32_t        a, s;
    pd_msg_bapp_t  *ba;

    for (a = 0; a < PD_MSG_BCAST_APPS; a++) {
        ba = &pd_msg_bapps(z)[a];

        for (s = 0; s < PD_MSG_BCAST_KEEP; s++) {
            if (ba->slots[s].state == PD_MSG_USED) {
                break;
            }
        }

        if (s < PD_MSG_BCAST_KEEP) {
            continue;
        }

        /* a name without a retained broadcast is still a free record */
        ba->hash = hash;
        ba->len = (uint8_t) len;
        pd_memcpy(ba->name, app, len);

        return ba;
    }

    return NULL;
}


/*
 * The slot seq goes to: a free one, else the lowest seq's (*evict set),
 * NULL when seq is below all of them, or retained already (*dup set).
 */
static pd_msg_bcast_t *
pd_msg_bcast_slot(pd_msg_bapp_t *ba, uint64_t seq, int *evict, int *dup)
{
    uint32_t         s;
    pd_msg_bcast_t  *slot, *free, *low;

    free = NULL;
    low = NULL;
    *evict = 0;
    *dup = 0;

    for (s = 0; s < PD_MSG_BCAST_KEEP; s++) {
        slot = &ba->slots[s];

        if (slot->state != PD_MSG_USED) {
            free = (free == NULL) ? slot : free;
            continue;
        }

        if (slot->seq == seq) {
            *dup = 1;
            return NULL;
        }

        if (low == NULL || slot->seq < low->seq) {
            low = slot;
        }
    }

    if (free != NULL) {
        return free;
    }

    if (seq < low->seq) {
        return NULL;
    }

    *evict = 1;

    return low;
}


pd_int_t
pd_msg_bcast_store(pd_msg_zone_t *z, const u_char *app, size_t applen,
    uint64_t seq, const u_char *data, size_t len, uint64_t expires_ms)
{
    int              evict, dup;
    uint32_t         g, hash;
    pd_msg_bapp_t   *ba;
    pd_msg_bcast_t  *slot;

    if (applen == 0 || applen > PD_APP_MAX || len > z->max_payload) {
        return PD_ERROR;
    }

    hash = (uint32_t) pd_msg_app_hash(z, app, applen);

    if (pd_msg_lock(z) != PD_OK) {
        return PD_ERROR;
    }

    ba = pd_msg_bapp_find(z, hash, app, applen);

    if (ba == NULL) {
        ba = pd_msg_bapp_new(z, hash, app, applen);

        if (ba == NULL) {
            goto busy;
        }
    }

    slot = pd_msg_bcast_slot(ba, seq, &evict, &dup);

    if (slot == NULL) {
        pd_msg_unlock(z);
        return dup ? PD_OK : PD_DECLINED;
    }

    /* the copy first: PD_BUSY keeps the broadcast it would evict */
    g = pd_msg_block_copy(z, data, len);

    if (g == PD_MSG_NIL) {
        goto busy;
    }

    if (evict) {
        pd_msg_bcast_release(z, slot);
        z->bcast_expired++;
    }

    slot->seq = seq;
    slot->expires = expires_ms;
    slot->payload = g;

    pd_msg_commit();
    slot->state = PD_MSG_USED;
    pd_msg_commit();

    pd_msg_block(z, g)->refs++;
    z->nbcasts++;
    z->bcast_stored++;

    pd_msg_unlock(z);

    return PD_OK;

busy:

    z->refused_busy++;
    pd_msg_unlock(z);

    return PD_BUSY;
}


pd_int_t
pd_msg_bcast_pending(pd_msg_zone_t *z, const u_char *app, size_t applen,
    uint64_t after_seq, uint64_t now_ms, pd_msg_handler_pt handler,
    void *data)
{
    uint32_t         s, k, j, n;
    uint32_t         hash;
    pd_int_t         handed;
    pd_msg_bapp_t   *ba;
    pd_msg_bcast_t  *slot, *order[PD_MSG_BCAST_KEEP];
    pd_msg_block_t  *b;

    if (applen == 0 || applen > PD_APP_MAX) {
        return PD_ERROR;
    }

    hash = (uint32_t) pd_msg_app_hash(z, app, applen);

    if (pd_msg_lock(z) != PD_OK) {
        return PD_ERROR;
    }

    handed = 0;
    n = 0;
    ba = pd_msg_bapp_find(z, hash, app, applen);

    for (s = 0; ba != NULL && s < PD_MSG_BCAST_KEEP; s++) {
        slot = &ba->slots[s];

        if (slot->state != PD_MSG_USED) {
            continue;
        }

        if (slot->expires <= now_ms) {
            pd_msg_bcast_release(z, slot);
            z->bcast_expired++;
            continue;
        }

        if (slot->seq <= after_seq) {
            continue;
        }

        /* insertion by seq: the slots are few and unordered */
        for (j = n; j > 0 && order[j - 1]->seq > slot->seq; j--) {
            order[j] = order[j - 1];
        }

        order[j] = slot;
        n++;
    }

    for (k = 0; k < n; k++) {
        b = pd_msg_block(z, order[k]->payload);

        if (handler(data, order[k]->seq, pd_msg_block_data(b), b->len,
                    order[k]->expires)
            != PD_OK)
        {
            break;
        }

        handed++;
    }

    pd_msg_unlock(z);

    return handed;
}


/* --- cursors ----------------------------------------------------------- */


static uint32_t
pd_msg_cursor_hash(void *slot, void *data)
{
    (void) data;

    return ((pd_msg_cursor_t *) slot)->hash;
}


/* a cursor the rebuild may link: its lengths in range */
static int
pd_msg_cursor_keep(void *slot, void *data)
{
    pd_msg_cursor_t  *c = slot;

    (void) data;

    return c->uid_len > 0 && c->uid_len <= PD_UID_MAX
           && c->app_len > 0 && c->app_len <= PD_APP_MAX;
}


/* the cursors are pd_shtable slots */
static const pd_shtable_type_t  pd_msg_cursor_type = {
    sizeof(pd_msg_cursor_t),
    offsetof(pd_msg_cursor_t, next),
    offsetof(pd_msg_cursor_t, next),
    offsetof(pd_msg_cursor_t, state),
    pd_msg_cursor_hash,
    pd_msg_cursor_keep
};


/* the cursor table of z, as a pd_shtable */
static void
pd_msg_cursor_table(pd_msg_zone_t *z, pd_shtable_t *t)
{
    t->type = &pd_msg_cursor_type;
    t->slots = (u_char *) pd_msg_cursors(z);
    t->buckets = pd_msg_cur_buckets(z);
    t->free = &z->cur_free;
    t->count = &z->ncursors;
    t->top = &z->cur_top;
    t->nslots = z->max_cursors;
    t->mask = z->cur_mask;
    t->data = z;
}


void
pd_msg_rebuild_cursors(pd_msg_zone_t *z)
{
    pd_shtable_t  t;

    pd_msg_cursor_table(z, &t);
    pd_shtable_rebuild(&t);
}


static uint32_t
pd_msg_cursor_find(pd_msg_zone_t *z, pd_msg_key_t *key)
{
    uint32_t          i;
    pd_msg_cursor_t  *cursors, *c;

    cursors = pd_msg_cursors(z);

    for (i = pd_msg_cur_buckets(z)[key->hash & z->cur_mask];
         i != PD_MSG_NIL;
         i = c->next)
    {
        c = &cursors[i];

        if (c->hash == key->hash && c->uid_len == key->uid_len
            && c->app_len == key->app_len
            && memcmp(c->uid, key->uid, key->uid_len) == 0
            && memcmp(c->app, key->app, key->app_len) == 0)
        {
            return i;
        }
    }

    return PD_MSG_NIL;
}


/*
 * The table is full: the clock hand's cursor goes (any cursor would
 * do; the hand spreads evictions over the table).  Returns its slot,
 * unlinked and uncommitted, for the caller to reuse.
 */
static uint32_t
pd_msg_cursor_evict(pd_msg_zone_t *z)
{
    uint32_t      i;
    pd_shtable_t  t;

    i = z->cur_hand;
    z->cur_hand = (i + 1 == z->max_cursors) ? 0 : i + 1;

    pd_msg_cursor_table(z, &t);
    pd_shtable_uncommit(&t, i);
    pd_shtable_unlink(&t, i, pd_msg_cursors(z)[i].hash);

    z->cursors_evicted++;

    return i;
}


uint64_t
pd_msg_cursor_get(pd_msg_zone_t *z, const u_char *uid, size_t uidlen,
    const u_char *app, size_t applen)
{
    uint32_t      i;
    uint64_t      seq;
    pd_msg_key_t  key;

    if (pd_msg_key_app(z, &key, uid, uidlen, app, applen) != PD_OK) {
        return 0;
    }

    if (pd_msg_lock(z) != PD_OK) {
        return 0;
    }

    i = pd_msg_cursor_find(z, &key);
    seq = (i == PD_MSG_NIL) ? 0 : pd_msg_cursors(z)[i].seq;

    pd_msg_unlock(z);

    return seq;
}


pd_int_t
pd_msg_cursor_set(pd_msg_zone_t *z, const u_char *uid, size_t uidlen,
    const u_char *app, size_t applen, uint64_t seq)
{
    uint32_t          i;
    pd_msg_key_t      key;
    pd_shtable_t      t;
    pd_msg_cursor_t  *c;

    if (pd_msg_key_app(z, &key, uid, uidlen, app, applen) != PD_OK) {
        return PD_ERROR;
    }

    /* 0 is what an unknown cursor reads as already */
    if (seq == 0) {
        return PD_OK;
    }

    if (pd_msg_lock(z) != PD_OK) {
        return PD_ERROR;
    }

    i = pd_msg_cursor_find(z, &key);

    if (i != PD_MSG_NIL) {
        c = &pd_msg_cursors(z)[i];

        if (seq > c->seq) {
            c->seq = seq;
        }

        pd_msg_unlock(z);
        return PD_OK;
    }

    pd_msg_cursor_table(z, &t);
    i = pd_shtable_alloc(&t);

    if (i == PD_MSG_NIL) {
        i = pd_msg_cursor_evict(z);
    }

    c = &pd_msg_cursors(z)[i];
    c->seq = seq;
    c->hash = key.hash;
    c->uid_len = (uint8_t) key.uid_len;
    c->app_len = (uint8_t) key.app_len;
    pd_memcpy(c->uid, key.uid, key.uid_len);
    pd_memcpy(c->app, key.app, key.app_len);

    pd_shtable_insert(&t, i, key.hash);

    pd_msg_unlock(z);

    return PD_OK;
}


