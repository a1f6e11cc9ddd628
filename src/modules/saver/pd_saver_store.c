/*
 * pd_saver_store.c: the message store's zone (geometry, payload blocks,
 * crash repair) and its QoS 1 mailboxes; pd_saver_bcast.c holds the rest.
 */

#include "pd_core.h"
#include "pd_saver_zone.h"

#include <sys/random.h>


#define PD_MSG_MAGIC                                                         \
    (0x70646d7367000000ULL | (1ULL << 16) | sizeof(pd_msg_entry_t))

#define PD_MSG_MIN_ENTRIES  16
#define PD_MSG_MAX_ENTRIES  (1U << 30)
#define PD_MSG_MAX_GRANULES (1U << 31)    /* a 128 GB payload area */

/* the payload area holds at least this many blocks of max_payload */
#define PD_MSG_MIN_BLOCKS   4

#define PD_MSG_GOLDEN       0x9e3779b97f4a7c15ULL

/* pd_msg_entry_t.mark during a repair */
#define PD_MSG_KEPT         1
#define PD_MSG_DROPPED      2

_Static_assert(sizeof(pd_msg_entry_t) <= 64,
               "an entry is the per-recipient cost of a message");
_Static_assert(sizeof(pd_msg_block_t) == PD_MSG_BLOCK_HDR,
               "the block header is what PD_MSG_PAYLOAD_MAX allows for");
_Static_assert(PD_APP_MAX < 256 && PD_UID_MAX < 256,
               "lengths are kept in a byte");


static uint32_t pd_msg_entry_hash(void *slot, void *data);
static int pd_msg_entry_keep(void *slot, void *data);
static uint32_t pd_msg_mailbox_hash(void *slot, void *data);

/*
 * The entries and the mailboxes are pd_shtable slots.  An entry's next
 * is its mailbox list (a fact) or the free list; its hash chain is hnext.
 */
static const pd_shtable_type_t  pd_msg_entry_type = {
    sizeof(pd_msg_entry_t),
    offsetof(pd_msg_entry_t, hnext),
    offsetof(pd_msg_entry_t, next),
    offsetof(pd_msg_entry_t, state),
    pd_msg_entry_hash,
    pd_msg_entry_keep
};

/* pd_msg_rebuild() frees the invalid and the empty ones before */
static const pd_shtable_type_t  pd_msg_mailbox_type = {
    sizeof(pd_msg_mailbox_t),
    offsetof(pd_msg_mailbox_t, next),
    offsetof(pd_msg_mailbox_t, next),
    offsetof(pd_msg_mailbox_t, state),
    pd_msg_mailbox_hash,
    NULL
};


/* the class of the block holding len payload bytes */
static uint32_t
pd_msg_class(size_t len)
{
    uint32_t  cls;

    for (cls = 0; ((size_t) PD_MSG_GRANULE << cls) < len + PD_MSG_BLOCK_HDR;
         cls++)
    {
        /* void */
    }

    return cls;
}


/*
 * Places the tables for n entries from off; fills the offsets and masks
 * of z when it is not NULL.  Returns where the tables end.
 */
static size_t
pd_msg_tables(uint32_t n, size_t off, pd_msg_zone_t *z)
{
    size_t    buckets, entries, mailboxes, mb_buckets, cursors, cur_buckets;
    uint32_t  m, nb, nmb, ncb;

    m = pd_max(n / 2, 1);
    nb = pd_shtable_pow2(pd_max(n, 1));
    nmb = pd_shtable_pow2(m);
    ncb = pd_shtable_pow2(m);

    buckets = off;
    off = pd_align(off + (size_t) nb * sizeof(uint32_t), 8);

    entries = off;
    off = pd_align(off + (size_t) n * sizeof(pd_msg_entry_t), 8);

    mailboxes = off;
    off = pd_align(off + (size_t) m * sizeof(pd_msg_mailbox_t), 8);

    mb_buckets = off;
    off = pd_align(off + (size_t) nmb * sizeof(uint32_t), 8);

    cursors = off;
    off = pd_align(off + (size_t) m * sizeof(pd_msg_cursor_t), 8);

    cur_buckets = off;
    off = pd_align(off + (size_t) ncb * sizeof(uint32_t), 8);

    if (z != NULL) {
        z->max_entries = n;
        z->max_mailboxes = m;
        z->max_cursors = m;
        z->mask = nb - 1;
        z->mb_mask = nmb - 1;
        z->cur_mask = ncb - 1;
        z->buckets = buckets;
        z->entries = entries;
        z->mailboxes = mailboxes;
        z->mb_buckets = mb_buckets;
        z->cursors = cursors;
        z->cur_buckets = cur_buckets;
    }

    return off;
}


/* where the tables start: after the header and the broadcast table */
static size_t
pd_msg_base(void)
{
    size_t  off;

    off = pd_align(sizeof(pd_msg_zone_t), 64);

    return pd_align(off + PD_MSG_BCAST_APPS * sizeof(pd_msg_bapp_t), 64);
}


/*
 * The geometry of a zone of size bytes (see pd_saver_store.h): the most
 * entries whose tables fit in half of what follows the broadcast table;
 * fills z when it is not NULL.  Returns the offset of the payload area,
 * 0 when size is too small.
 */
static size_t
pd_msg_layout(size_t size, pd_msg_zone_t *z)
{
    size_t    base, budget, area, granules;
    uint32_t  lo, hi, mid;

    base = pd_msg_base();

    if (size <= base) {
        return 0;
    }

    budget = (size - base) / 2;
    lo = 0;
    hi = PD_MSG_MAX_ENTRIES;

    while (lo < hi) {
        mid = lo + (hi - lo + 1) / 2;

        if (pd_msg_tables(mid, base, NULL) - base <= budget) {
            lo = mid;

        } else {
            hi = mid - 1;
        }
    }

    if (lo < PD_MSG_MIN_ENTRIES) {
        return 0;
    }

    area = pd_align(pd_msg_tables(lo, base, z), 64);
    granules = pd_min((size - area) / PD_MSG_GRANULE, PD_MSG_MAX_GRANULES);

    if (z != NULL) {
        z->bapps = pd_align(sizeof(pd_msg_zone_t), 64);
        z->area = area;
        z->granules = (uint32_t) granules;
    }

    return area;
}


size_t
pd_msg_store_size(uint32_t max_messages, size_t max_payload)
{
    size_t    base, tables, area;
    uint32_t  n;

    if (max_messages == 0 || max_messages > PD_MSG_MAX_ENTRIES
        || max_payload == 0 || max_payload > PD_MSG_PAYLOAD_MAX)
    {
        return 0;
    }

    n = pd_max(max_messages, PD_MSG_MIN_ENTRIES);
    base = pd_msg_base();
    tables = pd_msg_tables(n, base, NULL) - base;
    area = PD_MSG_MIN_BLOCKS
           * ((size_t) PD_MSG_GRANULE << pd_msg_class(max_payload));

    /* the slack covers the alignment of the area */
    return base + 2 * (pd_max(tables, area) + 128);
}


/* --- payload blocks ---------------------------------------------------- */


static void
pd_msg_block_push(pd_msg_zone_t *z, uint32_t g, uint32_t cls)
{
    pd_msg_block_t  *b;

    b = pd_msg_block(z, g);
    b->refs = 0;
    b->next = z->free_lists[cls];
    z->free_lists[cls] = g;
}


/*
 * A block of class cls with no reference: from its free list, else
 * carved at the bump pointer, else split from a larger free block.
 * Blocks tile [0, bump) at every instant, each header naming its class,
 * so the repair can walk them: a block's header is written before the
 * bump moves past it, and a split writes the upper half's header before
 * the lower half shrinks.  Returns its first granule, PD_MSG_NIL when
 * the area has no room (freed blocks are not merged).
 */
static uint32_t
pd_msg_block_alloc(pd_msg_zone_t *z, uint32_t cls)
{
    uint32_t         g, j, half;
    pd_msg_block_t  *b;

    g = z->free_lists[cls];

    if (g != PD_MSG_NIL) {
        z->free_lists[cls] = pd_msg_block(z, g)->next;
        goto done;
    }

    if ((1U << cls) <= z->granules - z->bump) {
        g = z->bump;
        b = pd_msg_block(z, g);
        b->cls = (uint8_t) cls;
        b->refs = 0;
        pd_msg_commit();
        z->bump += 1U << cls;
        goto done;
    }

    for (j = cls + 1; j < PD_MSG_CLASSES; j++) {
        if (z->free_lists[j] != PD_MSG_NIL) {
            break;
        }
    }

    if (j == PD_MSG_CLASSES) {
        return PD_MSG_NIL;
    }

    g = z->free_lists[j];
    b = pd_msg_block(z, g);
    z->free_lists[j] = b->next;

    while (j > cls) {
        j--;
        half = g + (1U << j);
        pd_msg_block(z, half)->cls = (uint8_t) j;
        pd_msg_commit();
        b->cls = (uint8_t) j;
        pd_msg_commit();
        pd_msg_block_push(z, half, j);
    }

done:

    b = pd_msg_block(z, g);
    b->refs = 0;
    z->payloads++;
    z->bytes_used += (size_t) PD_MSG_GRANULE << cls;

    return g;
}


static void
pd_msg_block_free(pd_msg_zone_t *z, uint32_t g)
{
    pd_msg_block_t  *b;

    b = pd_msg_block(z, g);

    z->payloads--;
    z->bytes_used -= (size_t) PD_MSG_GRANULE << b->cls;
    pd_msg_block_push(z, g, b->cls);
}


void
pd_msg_block_unref(pd_msg_zone_t *z, uint32_t g)
{
    if (--pd_msg_block(z, g)->refs == 0) {
        pd_msg_block_free(z, g);
    }
}


/* a block holding a copy of data, no reference yet; PD_MSG_NIL: full */
uint32_t
pd_msg_block_copy(pd_msg_zone_t *z, const u_char *data, size_t len)
{
    uint32_t         g;
    pd_msg_block_t  *b;

    g = pd_msg_block_alloc(z, pd_msg_class(len));

    if (g == PD_MSG_NIL) {
        return PD_MSG_NIL;
    }

    b = pd_msg_block(z, g);
    b->len = (uint32_t) len;

    if (len > 0) {
        pd_memcpy(pd_msg_block_data(b), data, len);
    }

    return g;
}


/* --- repair ------------------------------------------------------------ */


/*
 * Walks the blocks of the area, dropping their reference counts, which
 * the entries and broadcasts then count again.  A header naming no
 * class ends the area there (only a corrupt zone has one).
 */
static void
pd_msg_rebuild_area(pd_msg_zone_t *z)
{
    uint32_t         g, cls;
    pd_msg_block_t  *b;

    for (g = 0; g < z->bump; g += 1U << cls) {
        b = pd_msg_block(z, g);
        cls = b->cls;

        if (cls >= PD_MSG_CLASSES || (1U << cls) > z->bump - g) {
            z->bump = g;
            break;
        }

        b->refs = 0;
    }
}


/* after the references are counted: free lists and usage */
static void
pd_msg_rebuild_free_lists(pd_msg_zone_t *z)
{
    uint32_t         g, cls;
    pd_msg_block_t  *b;

    for (cls = 0; cls < PD_MSG_CLASSES; cls++) {
        z->free_lists[cls] = PD_MSG_NIL;
    }

    z->payloads = 0;
    z->bytes_used = 0;

    for (g = 0; g < z->bump; g += 1U << cls) {
        b = pd_msg_block(z, g);
        cls = b->cls;

        if (b->refs == 0) {
            pd_msg_block_push(z, g, cls);
            continue;
        }

        z->payloads++;
        z->bytes_used += (size_t) PD_MSG_GRANULE << cls;
    }
}


static int
pd_msg_mailbox_valid(pd_msg_mailbox_t *m)
{
    return m->uid_len > 0 && m->uid_len <= PD_UID_MAX
           && m->app_len > 0 && m->app_len <= PD_APP_MAX;
}


/*
 * The forward links of a mailbox are the fact of its order: an append
 * commits the entry before linking it, a removal unlinks before it
 * frees, so a walk from the head meets only used entries of this
 * mailbox.  Entries of the store call cut short are dropped from the
 * list (the call never returned: all or nothing); the back links, tail
 * and count are rebuilt.  A mailbox left empty is freed.
 */
static void
pd_msg_rebuild_list(pd_msg_zone_t *z, uint32_t mi)
{
    uint32_t           i, next, prev, count;
    pd_msg_entry_t    *entries, *e;
    pd_msg_mailbox_t  *m;

    entries = pd_msg_entries(z);
    m = &pd_msg_mailboxes(z)[mi];
    prev = PD_MSG_NIL;
    count = 0;

    for (i = m->head; i < z->top; i = next) {
        e = &entries[i];

        if (e->state != PD_MSG_USED || e->mailbox != mi || e->mark != 0) {
            break;
        }

        next = e->next;

        if ((z->open_stamp != 0 && e->stamp == z->open_stamp)
            || e->payload >= z->bump)
        {
            e->mark = PD_MSG_DROPPED;
            continue;
        }

        e->mark = PD_MSG_KEPT;
        e->prev = prev;

        if (prev == PD_MSG_NIL) {
            m->head = i;

        } else {
            entries[prev].next = i;
        }

        prev = i;
        count++;
    }

    if (prev == PD_MSG_NIL) {
        m->head = PD_MSG_NIL;

    } else {
        entries[prev].next = PD_MSG_NIL;
    }

    m->tail = prev;
    m->count = count;

    if (count == 0) {
        m->state = PD_MSG_FREE;
    }
}


/* the (uid, seq) hash: a multicast's entries share seq, not uid */
static uint32_t
pd_msg_seq_hash(uint32_t uhash, uint64_t seq)
{
    return (uint32_t) (((seq ^ uhash) * PD_MSG_GOLDEN) >> 32);
}


/* the entry table of z, as a pd_shtable: the (uid, seq) index */
static void
pd_msg_entry_table(pd_msg_zone_t *z, pd_shtable_t *t)
{
    t->type = &pd_msg_entry_type;
    t->slots = (u_char *) pd_msg_entries(z);
    t->buckets = pd_msg_buckets(z);
    t->free = &z->free;
    t->count = &z->nentries;
    t->top = &z->top;
    t->nslots = z->max_entries;
    t->mask = z->mask;
    t->data = z;
}


static uint32_t
pd_msg_entry_hash(void *slot, void *data)
{
    pd_msg_zone_t   *z = data;
    pd_msg_entry_t  *e = slot;

    return pd_msg_seq_hash(pd_msg_mailboxes(z)[e->mailbox].uhash, e->seq);
}


/*
 * An entry stays when the walk of its mailbox kept it; its payload is
 * counted.  The mark is cleared either way, for the next repair.
 */
static int
pd_msg_entry_keep(void *slot, void *data)
{
    int              kept;
    pd_msg_zone_t   *z = data;
    pd_msg_entry_t  *e = slot;

    kept = (e->mark == PD_MSG_KEPT);
    e->mark = 0;

    if (kept) {
        pd_msg_block(z, e->payload)->refs++;
    }

    return kept;
}


/* seq index, free list, count; the entries' payloads are counted */
static void
pd_msg_rebuild_entries(pd_msg_zone_t *z)
{
    pd_shtable_t  t;

    pd_msg_entry_table(z, &t);
    pd_shtable_rebuild(&t);
}


/* the mailbox table of z, as a pd_shtable */
static void
pd_msg_mailbox_table(pd_msg_zone_t *z, pd_shtable_t *t)
{
    t->type = &pd_msg_mailbox_type;
    t->slots = (u_char *) pd_msg_mailboxes(z);
    t->buckets = pd_msg_mb_buckets(z);
    t->free = &z->mb_free;
    t->count = &z->nmailboxes;
    t->top = &z->mb_top;
    t->nslots = z->max_mailboxes;
    t->mask = z->mb_mask;
    t->data = z;
}


static uint32_t
pd_msg_mailbox_hash(void *slot, void *data)
{
    (void) data;

    return ((pd_msg_mailbox_t *) slot)->hash;
}


static void
pd_msg_rebuild_mailboxes(pd_msg_zone_t *z)
{
    pd_shtable_t  t;

    pd_msg_mailbox_table(z, &t);
    pd_shtable_rebuild(&t);
}


/*
 * Derives everything but the facts from the facts: formatting is
 * zeroing the slots and a rebuild; repairing after a holder died in
 * the middle of an update is a rebuild.  It is idempotent (the marks
 * are cleared first), O(zone) once per crash, and makes no system call.
 */
static void
pd_msg_rebuild(pd_msg_zone_t *z)
{
    uint32_t           i;
    pd_msg_mailbox_t  *m;

    /* only the slots ever handed out were written (pd_shtable.h) */
    z->top = pd_min(z->top, z->max_entries);
    z->mb_top = pd_min(z->mb_top, z->max_mailboxes);

    for (i = 0; i < z->top; i++) {
        pd_msg_entries(z)[i].mark = 0;
    }

    pd_msg_rebuild_area(z);

    for (i = 0; i < z->mb_top; i++) {
        m = &pd_msg_mailboxes(z)[i];

        if (m->state != PD_MSG_USED) {
            continue;
        }

        if (!pd_msg_mailbox_valid(m)) {
            m->state = PD_MSG_FREE;
            continue;
        }

        pd_msg_rebuild_list(z, i);
    }

    pd_msg_rebuild_entries(z);
    pd_msg_rebuild_mailboxes(z);
    pd_msg_rebuild_bcasts(z);
    pd_msg_rebuild_free_lists(z);
    pd_msg_rebuild_cursors(z);

    z->hand %= z->max_entries;
    z->cur_hand %= z->max_cursors;

    pd_msg_commit();
    z->open_stamp = 0;
}


static void
pd_msg_repair(void *data)
{
    pd_msg_zone_t  *z;

    z = data;

    pd_msg_rebuild(z);
    z->repairs++;
}


pd_int_t
pd_msg_lock(pd_msg_zone_t *z)
{
    return pd_shlock_lock(&z->mutex, pd_msg_repair, z);
}


void
pd_msg_unlock(pd_msg_zone_t *z)
{
    pd_shlock_unlock(&z->mutex);
}


/* --- formatting -------------------------------------------------------- */


static pd_int_t
pd_msg_format(pd_msg_zone_t *z, size_t size)
{
    ssize_t          n;
    struct timespec  ts;

    pd_memzero(z, sizeof(pd_msg_zone_t));

    do {
        n = getrandom(z->seed, sizeof(z->seed), 0);
    } while (n == -1 && errno == EINTR);

    if (n != (ssize_t) sizeof(z->seed)) {
        if (n >= 0) {
            errno = EIO;
        }

        return PD_ERROR;
    }

    if (pd_shlock_init(&z->mutex) != PD_OK) {
        return PD_ERROR;
    }

    (void) pd_msg_layout(size, z);
    z->size = size;

    /* ids stay above those of earlier runs: see pd_msg_next_seq() */
    (void) clock_gettime(CLOCK_REALTIME, &ts);
    z->seq = ((uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000) << 12;

    /* entries, mailboxes and cursors are written as they are first
     * used (their tops are 0): a large store costs nothing until then */
    pd_memzero(pd_msg_bapps(z), PD_MSG_BCAST_APPS * sizeof(pd_msg_bapp_t));

    pd_msg_rebuild(z);

    /* last: a zone without the magic is not one */
    z->magic = PD_MSG_MAGIC;

    return PD_OK;
}


/* an attached zone must be laid out exactly as this binary would */
static pd_int_t
pd_msg_check(pd_msg_zone_t *z, size_t size)
{
    pd_msg_zone_t  want;

    pd_memzero(&want, sizeof(pd_msg_zone_t));
    (void) pd_msg_layout(size, &want);

    if (z->magic != PD_MSG_MAGIC || z->size != size
        || z->max_entries != want.max_entries
        || z->max_mailboxes != want.max_mailboxes
        || z->max_cursors != want.max_cursors
        || z->mask != want.mask || z->mb_mask != want.mb_mask
        || z->cur_mask != want.cur_mask
        || z->buckets != want.buckets || z->entries != want.entries
        || z->mailboxes != want.mailboxes
        || z->mb_buckets != want.mb_buckets
        || z->cursors != want.cursors || z->cur_buckets != want.cur_buckets
        || z->bapps != want.bapps || z->area != want.area
        || z->granules != want.granules)
    {
        errno = EINVAL;
        return PD_ERROR;
    }

    return PD_OK;
}


pd_msg_zone_t *
pd_msg_store_init(void *addr, size_t size, size_t max_payload,
    uint32_t max_per_mailbox, int fresh)
{
    size_t          area;
    pd_msg_zone_t  *z;

    if (((uintptr_t) addr & 63) != 0 || max_payload == 0
        || max_payload > PD_MSG_PAYLOAD_MAX || max_per_mailbox == 0)
    {
        errno = EINVAL;
        return NULL;
    }

    area = pd_msg_layout(size, NULL);

    if (area == 0
        || (size - area) / PD_MSG_GRANULE
           < ((size_t) PD_MSG_MIN_BLOCKS << pd_msg_class(max_payload)))
    {
        errno = ENOSPC;
        return NULL;
    }

    z = addr;

    if (fresh) {
        if (pd_msg_format(z, size) != PD_OK) {
            return NULL;
        }

    } else if (pd_msg_check(z, size) != PD_OK) {
        return NULL;
    }

    /* limits, not geometry: a reload may change them */
    z->max_payload = max_payload;
    z->max_per_mailbox = max_per_mailbox;

    return z;
}


uint64_t
pd_msg_next_seq(pd_msg_zone_t *z)
{
    /* one counter: its modification order is the order of the ids */
    return __atomic_add_fetch(&z->seq, 1, __ATOMIC_RELAXED);
}


/* --- keys, lookups, entries -------------------------------------------- */


uint64_t
pd_msg_app_hash(pd_msg_zone_t *z, const u_char *app, size_t len)
{
    return pd_siphash24(z->seed, app, len);
}


/*
 * Checks the lengths and hashes (uid, app) with ahash, the app's hash;
 * app may be NULL when only the uid counts.  PD_ERROR on a bad length.
 */
static pd_int_t
pd_msg_key(pd_msg_zone_t *z, pd_msg_key_t *key, const u_char *uid,
    size_t uidlen, const u_char *app, size_t applen, uint64_t ahash)
{
    uint64_t  h;

    if (uidlen == 0 || uidlen > PD_UID_MAX
        || (app != NULL && (applen == 0 || applen > PD_APP_MAX)))
    {
        return PD_ERROR;
    }

    h = pd_siphash24(z->seed, uid, uidlen);

    key->uid = uid;
    key->uid_len = uidlen;
    key->app = app;
    key->app_len = applen;
    key->uhash = (uint32_t) (h >> 32);
    key->hash = (uint32_t) (h + ahash * PD_MSG_GOLDEN);

    return PD_OK;
}


/* pd_msg_key() for a (uid, app) not hashed yet; app must not be NULL */
pd_int_t
pd_msg_key_app(pd_msg_zone_t *z, pd_msg_key_t *key, const u_char *uid,
    size_t uidlen, const u_char *app, size_t applen)
{
    if (app == NULL || applen == 0 || applen > PD_APP_MAX) {
        return PD_ERROR;
    }

    return pd_msg_key(z, key, uid, uidlen, app, applen,
                      pd_msg_app_hash(z, app, applen));
}


static uint32_t
pd_msg_mailbox_find(pd_msg_zone_t *z, pd_msg_key_t *key)
{
    uint32_t           i;
    pd_msg_mailbox_t  *mailboxes, *m;

    mailboxes = pd_msg_mailboxes(z);

    for (i = pd_msg_mb_buckets(z)[key->hash & z->mb_mask];
         i != PD_MSG_NIL;
         i = m->next)
    {
        m = &mailboxes[i];

        if (m->hash == key->hash && m->uid_len == key->uid_len
            && m->app_len == key->app_len
            && memcmp(m->uid, key->uid, key->uid_len) == 0
            && memcmp(m->app, key->app, key->app_len) == 0)
        {
            return i;
        }
    }

    return PD_MSG_NIL;
}


/* a new empty mailbox for key; the caller made sure one is free */
static uint32_t
pd_msg_mailbox_new(pd_msg_zone_t *z, pd_msg_key_t *key)
{
    uint32_t           i;
    pd_shtable_t       t;
    pd_msg_mailbox_t  *m;

    pd_msg_mailbox_table(z, &t);
    i = pd_shtable_alloc(&t);
    m = &pd_msg_mailboxes(z)[i];

    m->hash = key->hash;
    m->uhash = key->uhash;
    m->head = PD_MSG_NIL;
    m->tail = PD_MSG_NIL;
    m->count = 0;
    m->uid_len = (uint8_t) key->uid_len;
    m->app_len = (uint8_t) key->app_len;
    pd_memcpy(m->uid, key->uid, key->uid_len);
    pd_memcpy(m->app, key->app, key->app_len);

    pd_shtable_insert(&t, i, key->hash);

    return i;
}


/* frees mailbox mi, which holds no entry any more */
static void
pd_msg_mailbox_free(pd_msg_zone_t *z, uint32_t mi)
{
    pd_shtable_t  t;

    pd_msg_mailbox_table(z, &t);
    pd_shtable_remove(&t, mi, pd_msg_mailboxes(z)[mi].hash);
}


/* uid's entry for seq, or PD_MSG_NIL */
static uint32_t
pd_msg_entry_find(pd_msg_zone_t *z, pd_msg_key_t *key, uint64_t seq)
{
    uint32_t           i;
    pd_msg_entry_t    *entries, *e;
    pd_msg_mailbox_t  *m;

    entries = pd_msg_entries(z);

    for (i = pd_msg_buckets(z)[pd_msg_seq_hash(key->uhash, seq) & z->mask];
         i != PD_MSG_NIL;
         i = e->hnext)
    {
        e = &entries[i];

        if (e->seq != seq) {
            continue;
        }

        m = &pd_msg_mailboxes(z)[e->mailbox];

        if (m->uhash == key->uhash && m->uid_len == key->uid_len
            && memcmp(m->uid, key->uid, key->uid_len) == 0)
        {
            return i;
        }
    }

    return PD_MSG_NIL;
}


/*
 * Appends an entry for block g to mailbox mi; the caller made sure an
 * entry is free.  Committed before it is linked: a crash in between
 * leaves an entry no walk reaches, which the repair frees.
 */
static void
pd_msg_entry_append(pd_msg_zone_t *z, uint32_t mi, uint64_t seq,
    uint64_t expires, uint64_t collapse, uint32_t g)
{
    uint32_t           i;
    pd_shtable_t       t;
    pd_msg_entry_t    *entries, *e;
    pd_msg_mailbox_t  *m;

    entries = pd_msg_entries(z);
    m = &pd_msg_mailboxes(z)[mi];

    pd_msg_entry_table(z, &t);
    i = pd_shtable_alloc(&t);
    e = &entries[i];

    e->next = PD_MSG_NIL;
    e->prev = m->tail;
    e->mailbox = mi;
    e->seq = seq;
    e->expires = expires;
    e->stamp = z->open_stamp;
    e->payload = g;
    e->deliveries = 0;
    e->collapse = collapse;
    e->mark = 0;

    pd_shtable_commit(&t, i);

    if (m->tail == PD_MSG_NIL) {
        m->head = i;

    } else {
        entries[m->tail].next = i;
    }

    pd_msg_commit();
    m->tail = i;
    m->count++;

    pd_shtable_link(&t, i, pd_msg_seq_hash(m->uhash, seq));

    pd_msg_block(z, g)->refs++;
}


/*
 * Removes entry i: unlinked from its mailbox first (the commit), then
 * from the seq index, freed, and its payload and mailbox released when
 * it was their last entry.
 */
static void
pd_msg_entry_remove(pd_msg_zone_t *z, uint32_t i)
{
    uint32_t           mi;
    pd_shtable_t       t;
    pd_msg_entry_t    *entries, *e;
    pd_msg_mailbox_t  *m;

    entries = pd_msg_entries(z);
    e = &entries[i];
    mi = e->mailbox;
    m = &pd_msg_mailboxes(z)[mi];

    if (e->prev == PD_MSG_NIL) {
        m->head = e->next;

    } else {
        entries[e->prev].next = e->next;
    }

    pd_msg_commit();

    if (e->next == PD_MSG_NIL) {
        m->tail = e->prev;

    } else {
        entries[e->next].prev = e->prev;
    }

    m->count--;

    pd_msg_entry_table(z, &t);
    pd_shtable_unlink(&t, i, pd_msg_seq_hash(m->uhash, e->seq));
    pd_shtable_uncommit(&t, i);
    pd_shtable_free(&t, i);

    pd_msg_block_unref(z, e->payload);

    if (m->count == 0) {
        pd_msg_mailbox_free(z, mi);
    }
}


/* --- messages ---------------------------------------------------------- */


/* one store call, checked and its app hashed before locking */
typedef struct {
    const pd_msg_addr_t  *to;
    pd_uint_t             n;
    const u_char         *app;
    size_t                app_len;
    uint64_t              ahash;
    uint64_t              seq;
    uint64_t              expires;
    uint64_t              collapse;   /* the key's hash, 0: none */
    pd_uint_t             added;      /* entries appended */
} pd_msg_call_t;


/* whether mailbox mi holds an older entry of the call's collapse key */
static pd_uint_t
pd_msg_holds_key(pd_msg_zone_t *z, uint32_t mi, pd_msg_call_t *call)
{
    uint32_t         i;
    pd_msg_entry_t  *e;

    if (call->collapse == 0) {
        return 0;
    }

    for (i = pd_msg_mailboxes(z)[mi].head; i != PD_MSG_NIL; i = e->next) {
        e = &pd_msg_entries(z)[i];

        if (e->collapse == call->collapse && e->seq != call->seq) {
            return 1;
        }
    }

    return 0;
}


/*
 * The first pass of a store, which changes nothing: the uids whose
 * mailbox is full (*full, or *held when they hold seq already), and the
 * entries and mailboxes the others may need (an upper bound: a repeated
 * uid is counted twice).
 */
static void
pd_msg_store_plan(pd_msg_zone_t *z, pd_msg_call_t *call, pd_uint_t *entries,
    pd_uint_t *mailboxes, pd_uint_t *full, pd_uint_t *held)
{
    uint32_t      mi;
    pd_uint_t     k;
    pd_msg_key_t  key;

    *entries = 0;
    *mailboxes = 0;
    *full = 0;
    *held = 0;

    for (k = 0; k < call->n; k++) {
        (void) pd_msg_key(z, &key, call->to[k].uid, call->to[k].len,
                          call->app, call->app_len, call->ahash);

        mi = pd_msg_mailbox_find(z, &key);

        if (mi == PD_MSG_NIL) {
            (*mailboxes)++;

        } else if (pd_msg_mailboxes(z)[mi].count >= z->max_per_mailbox
                   && !pd_msg_holds_key(z, mi, call))
        {
            if (pd_msg_entry_find(z, &key, call->seq) != PD_MSG_NIL) {
                (*held)++;

            } else {
                (*full)++;
            }

            continue;
        }

        (*entries)++;
    }
}


/*
 * The second pass, under open_stamp, with block g: returns the uids
 * that hold the message now; the others are those the plan found full.
 */
static pd_uint_t
pd_msg_store_apply(pd_msg_zone_t *z, pd_msg_call_t *call, uint32_t g)
{
    uint32_t      mi;
    pd_uint_t     k, stored;
    pd_msg_key_t  key;

    stored = 0;

    for (k = 0; k < call->n; k++) {
        (void) pd_msg_key(z, &key, call->to[k].uid, call->to[k].len,
                          call->app, call->app_len, call->ahash);

        mi = pd_msg_mailbox_find(z, &key);

        if (mi != PD_MSG_NIL) {
            if (pd_msg_entry_find(z, &key, call->seq) != PD_MSG_NIL) {
                stored++;
                continue;
            }

            if (pd_msg_mailboxes(z)[mi].count >= z->max_per_mailbox
                && !pd_msg_holds_key(z, mi, call))
            {
                continue;
            }

        } else {
            mi = pd_msg_mailbox_new(z, &key);
        }

        pd_msg_entry_append(z, mi, call->seq, call->expires, call->collapse,
                            g);
        call->added++;
        stored++;
    }

    return stored;
}


/*
 * After the store committed: each uid's older entries of the key leave.
 * A crash in here leaves some of them: a client gets an old notice too,
 * never none.
 */
static void
pd_msg_store_collapse_old(pd_msg_zone_t *z, pd_msg_call_t *call)
{
    uint32_t         mi, i, next;
    pd_uint_t        k;
    pd_msg_key_t     key;
    pd_msg_entry_t  *e;

    for (k = 0; k < call->n; k++) {
        (void) pd_msg_key(z, &key, call->to[k].uid, call->to[k].len,
                          call->app, call->app_len, call->ahash);

        mi = pd_msg_mailbox_find(z, &key);

        /* the mailbox keeps the new entry: it is never freed here */
        for (i = (mi == PD_MSG_NIL) ? PD_MSG_NIL
                                    : pd_msg_mailboxes(z)[mi].head;
             i != PD_MSG_NIL;
             i = next)
        {
            e = &pd_msg_entries(z)[i];
            next = e->next;

            if (e->collapse == call->collapse && e->seq != call->seq) {
                pd_msg_entry_remove(z, i);
                z->collapsed++;
            }
        }
    }
}


pd_int_t
pd_msg_store(pd_msg_zone_t *z, const pd_msg_addr_t *to, pd_uint_t n,
    const u_char *app, size_t applen, uint64_t seq, const u_char *data,
    size_t len, uint64_t expires_ms, pd_uint_t *stored, pd_uint_t *full)
{
    return pd_msg_store_collapse(z, to, n, app, applen, NULL, 0, seq, data,
                                 len, expires_ms, stored, full);
}


pd_int_t
pd_msg_store_collapse(pd_msg_zone_t *z, const pd_msg_addr_t *to,
    pd_uint_t n, const u_char *app, size_t applen, const u_char *ckey,
    size_t cklen, uint64_t seq, const u_char *data, size_t len,
    uint64_t expires_ms, pd_uint_t *stored, pd_uint_t *full)
{
    uint32_t       g;
    pd_uint_t      k, need, need_mb, nfull, nheld;
    pd_msg_call_t  call;

    *stored = 0;
    *full = 0;

    if (applen == 0 || applen > PD_APP_MAX || len > z->max_payload
        || (ckey != NULL && (cklen == 0 || cklen > PD_COLLAPSE_MAX)))
    {
        return PD_ERROR;
    }

    for (k = 0; k < n; k++) {
        if (to[k].len == 0 || to[k].len > PD_UID_MAX) {
            return PD_ERROR;
        }
    }

    if (n == 0) {
        return PD_OK;
    }

    call.to = to;
    call.n = n;
    call.app = app;
    call.app_len = applen;
    call.ahash = pd_msg_app_hash(z, app, applen);
    call.seq = seq;
    call.expires = expires_ms;
    call.added = 0;

    /* keyed by the zone's seed like the rest; 0 is "none" */
    call.collapse = 0;
    if (ckey != NULL) {
        call.collapse = pd_siphash24(z->seed, ckey, cklen) | 1;
    }

    if (pd_msg_lock(z) != PD_OK) {
        return PD_ERROR;
    }

    pd_msg_store_plan(z, &call, &need, &need_mb, &nfull, &nheld);

    if (need == 0) {
        z->refused_full += nfull;
        pd_msg_unlock(z);
        *stored = nheld;
        *full = nfull;
        return PD_OK;
    }

    if (need > z->max_entries - z->nentries
        || need_mb > z->max_mailboxes - z->nmailboxes)
    {
        goto busy;
    }

    g = pd_msg_block_copy(z, data, len);

    if (g == PD_MSG_NIL) {
        goto busy;
    }

    /* from here a crash rolls the whole call back */
    z->open_stamp = ++z->stamp;
    pd_msg_commit();

    *stored = pd_msg_store_apply(z, &call, g);

    pd_msg_commit();
    z->open_stamp = 0;
    pd_msg_commit();

    /* every uid held seq already */
    if (pd_msg_block(z, g)->refs == 0) {
        pd_msg_block_free(z, g);
    }

    *full = n - *stored;
    z->stored += call.added;
    z->refused_full += *full;

    if (call.collapse != 0) {
        pd_msg_store_collapse_old(z, &call);
    }

    pd_msg_unlock(z);

    return PD_OK;

busy:

    z->refused_busy++;
    pd_msg_unlock(z);

    return PD_BUSY;
}


pd_int_t
pd_msg_pending(pd_msg_zone_t *z, const u_char *uid, size_t uidlen,
    const u_char *app, size_t applen, uint64_t now_ms,
    uint32_t max_deliveries, pd_msg_handler_pt handler, void *data)
{
    return pd_msg_pending_from(z, uid, uidlen, app, applen, now_ms,
                               max_deliveries, NULL, handler, data);
}


pd_int_t
pd_msg_pending_from(pd_msg_zone_t *z, const u_char *uid, size_t uidlen,
    const u_char *app, size_t applen, uint64_t now_ms,
    uint32_t max_deliveries, uint64_t *resume, pd_msg_handler_pt handler,
    void *data)
{
    uint32_t         i, mi, next;
    pd_int_t         n;
    pd_msg_key_t     key;
    pd_msg_entry_t  *e;
    pd_msg_block_t  *b;

    if (pd_msg_key_app(z, &key, uid, uidlen, app, applen) != PD_OK) {
        return PD_ERROR;
    }

    if (pd_msg_lock(z) != PD_OK) {
        return PD_ERROR;
    }

    n = 0;
    mi = pd_msg_mailbox_find(z, &key);
    i = (mi == PD_MSG_NIL) ? PD_MSG_NIL : pd_msg_mailboxes(z)[mi].head;

    /* the mailbox may be freed with its last entry: next is read first */
    for ( /* void */ ; i != PD_MSG_NIL; i = next) {
        e = &pd_msg_entries(z)[i];
        next = e->next;

        if (e->expires <= now_ms) {
            pd_msg_entry_remove(z, i);
            z->expired++;
            continue;
        }

        /* handed out by an earlier, interrupted walk: store order is
         * stamp order, so the resume point is a stamp, not a seq */
        if (resume != NULL && e->stamp <= *resume) {
            continue;
        }

        if (max_deliveries != 0 && e->deliveries >= max_deliveries) {
            pd_msg_entry_remove(z, i);
            z->dropped_noack++;
            continue;
        }

        e->deliveries++;
        b = pd_msg_block(z, e->payload);

        if (handler(data, e->seq, pd_msg_block_data(b), b->len, e->expires)
            != PD_OK)
        {
            e->deliveries--;
            break;
        }

        if (resume != NULL) {
            *resume = e->stamp;
        }

        n++;
    }

    pd_msg_unlock(z);

    return n;
}


pd_int_t
pd_msg_delivered(pd_msg_zone_t *z, const u_char *uid, size_t uidlen,
    uint64_t seq, uint32_t max_deliveries)
{
    uint32_t         i;
    pd_int_t         rc;
    pd_msg_key_t     key;
    pd_msg_entry_t  *e;

    if (pd_msg_key(z, &key, uid, uidlen, NULL, 0, 0) != PD_OK) {
        return PD_DECLINED;
    }

    if (pd_msg_lock(z) != PD_OK) {
        return PD_ERROR;
    }

    i = pd_msg_entry_find(z, &key, seq);

    if (i == PD_MSG_NIL) {
        rc = PD_DECLINED;

    } else {
        e = &pd_msg_entries(z)[i];

        if (max_deliveries != 0 && e->deliveries >= max_deliveries) {
            pd_msg_entry_remove(z, i);
            z->dropped_noack++;
            rc = PD_ABORT;

        } else {
            e->deliveries++;
            rc = PD_OK;
        }
    }

    pd_msg_unlock(z);

    return rc;
}


pd_int_t
pd_msg_ack(pd_msg_zone_t *z, const u_char *uid, size_t uidlen, uint64_t seq)
{
    uint32_t      i;
    pd_msg_key_t  key;

    if (pd_msg_key(z, &key, uid, uidlen, NULL, 0, 0) != PD_OK) {
        return PD_DECLINED;
    }

    if (pd_msg_lock(z) != PD_OK) {
        return PD_ERROR;
    }

    i = pd_msg_entry_find(z, &key, seq);

    if (i == PD_MSG_NIL) {
        pd_msg_unlock(z);
        return PD_DECLINED;
    }

    pd_msg_entry_remove(z, i);
    z->acked++;

    pd_msg_unlock(z);

    return PD_OK;
}


pd_uint_t
pd_msg_expire(pd_msg_zone_t *z, uint64_t now_ms, pd_uint_t max_scan)
{
    uint32_t         i;
    pd_uint_t        k, n;
    pd_msg_entry_t  *e;

    if (pd_msg_lock(z) != PD_OK) {
        return 0;
    }

    n = 0;

    /* the slots ever handed out: those past the top hold nothing */
    for (k = 0; k < max_scan && k < z->top; k++) {
        i = z->hand < z->top ? z->hand : 0;
        z->hand = (i + 1 >= z->top) ? 0 : i + 1;
        e = &pd_msg_entries(z)[i];

        if (e->state == PD_MSG_USED && e->expires <= now_ms) {
            pd_msg_entry_remove(z, i);
            z->expired++;
            n++;
        }
    }

    pd_msg_bcast_expire(z, now_ms);

    pd_msg_unlock(z);

    return n;
}


pd_int_t
pd_msg_stats(pd_msg_zone_t *z, pd_msg_stats_t *st)
{
    if (pd_msg_lock(z) != PD_OK) {
        return PD_ERROR;
    }

    st->entries = z->nentries;
    st->max_entries = z->max_entries;
    st->payloads = z->payloads;
    st->bytes_used = z->bytes_used;
    st->bytes_capacity = (uint64_t) z->granules * PD_MSG_GRANULE;
    st->mailboxes = z->nmailboxes;
    st->broadcasts = z->nbcasts;
    st->cursors = z->ncursors;
    st->stored = z->stored;
    st->acked = z->acked;
    st->expired = z->expired;
    st->dropped_noack = z->dropped_noack;
    st->refused_full = z->refused_full;
    st->refused_busy = z->refused_busy;
    st->bcast_stored = z->bcast_stored;
    st->bcast_expired = z->bcast_expired;
    st->cursors_evicted = z->cursors_evicted;
    st->repairs = z->repairs;
    st->collapsed = z->collapsed;
    st->bytes = z->size;
    st->entry_bytes = sizeof(pd_msg_entry_t);
    st->buckets = z->mask + 1;
    st->mailbox_bytes = sizeof(pd_msg_mailbox_t);
    st->max_mailboxes = z->max_mailboxes;
    st->cursor_bytes = sizeof(pd_msg_cursor_t);
    st->max_cursors = z->max_cursors;

    pd_msg_unlock(z);

    return PD_OK;
}
