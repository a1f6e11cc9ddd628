/* pd_register_zone.c: the register's uid and per-IP tables in shared memory. */

#include "pd_core.h"
#include "pd_register_zone.h"

#include <sys/random.h>


/* "preg", the layout's version, the entry's size: a binary of another
 * layout does not attach (EPROTO, pd_reg_zone_check) */
#define PD_REG_MAGIC_BASE  0x7064726567000000ULL
#define PD_REG_MAGIC                                                         \
    (PD_REG_MAGIC_BASE | (3ULL << 16) | sizeof(pd_reg_entry_t))

/* slots a purge looks at per lock hold: about 0.1 ms on a 1M zone */
#define PD_REG_PURGE_BATCH  4096

#define pd_reg_buckets(z)                                                    \
    ((uint32_t *) ((u_char *) (z) + (z)->buckets))
#define pd_reg_entries(z)                                                    \
    ((pd_reg_entry_t *) ((u_char *) (z) + (z)->entries))
/* the slot holding the rest of e's names */
#define pd_reg_more(z, e)                                                    \
    ((pd_reg_more_t *) &pd_reg_entries(z)[(e)->more])
#define pd_reg_apps(z)                                                       \
    ((pd_reg_app_t *) ((u_char *) (z) + (z)->apps))
#define pd_reg_app_buckets(z)                                                \
    ((uint16_t *) ((u_char *) (z) + (z)->app_buckets))
#define pd_reg_ip_buckets(z)                                                 \
    ((uint32_t *) ((u_char *) (z) + (z)->ip_buckets))
#define pd_reg_ips(z)                                                        \
    ((pd_reg_ip_t *) ((u_char *) (z) + (z)->ips))

/* see pd_shtable.h: a compiler barrier between a commit and its fields */
#define pd_reg_commit()  pd_shtable_fence()

/* app names of one add or set_apps, checked and hashed before locking */
typedef struct {
    const u_char  *name[PD_APPS_MAX];
    uint32_t       hash[PD_APPS_MAX];
    uint8_t        len[PD_APPS_MAX];
    uint16_t       id[PD_APPS_MAX];    /* set under the lock */
    uint32_t       n;
} pd_reg_names_t;


_Static_assert(sizeof(pd_reg_entry_t) == 128,
               "a register entry is a per-connection cost: keep it small");
_Static_assert(sizeof(pd_reg_more_t) == sizeof(pd_reg_entry_t),
               "a slot of the rest of names is a slot of the table");
_Static_assert(offsetof(pd_reg_more_t, next) == offsetof(pd_reg_entry_t, next)
               && offsetof(pd_reg_more_t, state)
                  == offsetof(pd_reg_entry_t, state)
               && offsetof(pd_reg_more_t, kind)
                  == offsetof(pd_reg_entry_t, kind),
               "both kinds of slot begin alike");
_Static_assert(PD_REG_NAMES + PD_REG_MORE_NAMES >= PD_UID_MAX + PD_DEVICE_MAX,
               "two slots hold the longest uid and device");
_Static_assert(PD_APPS_MAX < 16 && PD_MAX_PROCESSES < INT16_MAX,
               "napps and wslot fit their fields");
_Static_assert(sizeof(pd_reg_ip_t) == 32,
               "an address count is a per-connection cost at worst");
_Static_assert(PD_REG_APP_TABLE < PD_REG_APP_NIL,
               "app indices are 16 bits");
_Static_assert((PD_REG_APP_TABLE & (PD_REG_APP_TABLE - 1)) == 0,
               "the app table is its own power-of-two index");


/*
 * A 24-bit field in three bytes, little end first: an entry's sid tag
 * (in its tail padding) and an address count's pid (beside its state)
 */
static void
pd_reg_u24_set(u_char *p, uint32_t v)
{
    p[0] = (u_char) v;
    p[1] = (u_char) (v >> 8);
    p[2] = (u_char) (v >> 16);
}

static uint32_t
pd_reg_u24(const u_char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16;
}


static uint32_t pd_reg_entry_hash(void *slot, void *data);
static int pd_reg_entry_keep(void *slot, void *data);
static uint32_t pd_reg_ip_hash(void *slot, void *data);
static int pd_reg_ip_keep(void *slot, void *data);

/* the entries and the IP nodes are pd_shtable slots */
static const pd_shtable_type_t  pd_reg_entry_type = {
    sizeof(pd_reg_entry_t),
    offsetof(pd_reg_entry_t, next),
    offsetof(pd_reg_entry_t, next),
    offsetof(pd_reg_entry_t, state),
    pd_reg_entry_hash,
    pd_reg_entry_keep
};

static const pd_shtable_type_t  pd_reg_ip_type = {
    sizeof(pd_reg_ip_t),
    offsetof(pd_reg_ip_t, next),
    offsetof(pd_reg_ip_t, next),
    offsetof(pd_reg_ip_t, state),
    pd_reg_ip_hash,
    pd_reg_ip_keep
};


/*
 * Places the arrays after the header; fills the offsets and masks of z
 * when it is not NULL.  Returns the bytes needed, 0 for a bad geometry.
 */
static size_t
pd_reg_layout(uint32_t max_conns, uint32_t max_ips, pd_reg_zone_t *z)
{
    size_t    off, buckets, entries, apps, app_buckets, ip_buckets, ips;
    uint32_t  nbuckets, nip_buckets;

    if (max_conns == 0 || max_conns > PD_REG_MAX_SLOTS
        || max_ips == 0 || max_ips > PD_REG_MAX_SLOTS)
    {
        return 0;
    }

    nbuckets = pd_shtable_pow2(max_conns);
    nip_buckets = pd_shtable_pow2(max_ips);

    off = pd_align(sizeof(pd_reg_zone_t), 64);

    buckets = off;
    off = pd_align(off + (size_t) nbuckets * sizeof(uint32_t), 8);

    entries = off;
    off = pd_align(off + (size_t) max_conns * sizeof(pd_reg_entry_t), 8);

    apps = off;
    off = pd_align(off + PD_REG_APP_TABLE * sizeof(pd_reg_app_t), 8);

    app_buckets = off;
    off = pd_align(off + PD_REG_APP_TABLE * sizeof(uint16_t), 8);

    ip_buckets = off;
    off = pd_align(off + (size_t) nip_buckets * sizeof(uint32_t), 8);

    ips = off;
    off = pd_align(off + (size_t) max_ips * sizeof(pd_reg_ip_t), 8);

    if (z != NULL) {
        z->max_conns = max_conns;
        z->max_ips = max_ips;
        z->mask = nbuckets - 1;
        z->ip_mask = nip_buckets - 1;
        z->buckets = buckets;
        z->entries = entries;
        z->apps = apps;
        z->app_buckets = app_buckets;
        z->ip_buckets = ip_buckets;
        z->ips = ips;
    }

    return off;
}


size_t
pd_reg_zone_size(uint32_t max_conns, uint32_t max_ips)
{
    return pd_reg_layout(max_conns, max_ips, NULL);
}


/* a binary search: the size grows with max_conns, in steps at powers of 2 */
uint32_t
pd_reg_zone_max_conns(size_t size, uint32_t max_ips)
{
    size_t    need;
    uint32_t  lo, hi, mid;

    lo = 0;
    hi = PD_REG_MAX_SLOTS;

    while (lo < hi) {
        mid = lo + (hi - lo + 1) / 2;
        need = pd_reg_layout(mid, max_ips, NULL);

        if (need != 0 && need <= size) {
            lo = mid;

        } else {
            hi = mid - 1;
        }
    }

    return lo;
}


/* the entry table of z, as a pd_shtable */
static void
pd_reg_entry_table(pd_reg_zone_t *z, pd_shtable_t *t)
{
    t->type = &pd_reg_entry_type;
    t->slots = (u_char *) pd_reg_entries(z);
    t->buckets = pd_reg_buckets(z);
    t->free = &z->free;
    t->count = &z->count;
    t->top = &z->top;
    t->nslots = z->max_conns;
    t->mask = z->mask;
    t->data = z;
}


static uint32_t
pd_reg_entry_hash(void *slot, void *data)
{
    pd_reg_entry_t  *e = slot;

    (void) data;

    return e->hash;
}


/*
 * Whether used slot i is a whole connection: every field in range and,
 * when its names go on in another slot, that slot used, of the other
 * kind and naming i back.  Reads only: the rebuild asks it of either
 * slot of a pair, in any order, and gets the same answer.
 */
static int
pd_reg_entry_valid(pd_reg_zone_t *z, uint32_t i)
{
    uint32_t         j, top;
    pd_reg_app_t    *apps;
    pd_reg_more_t   *m;
    pd_reg_entry_t  *e;

    e = &pd_reg_entries(z)[i];

    if (e->state != PD_REG_USED || e->kind != PD_REG_CONN
        || e->uid_len == 0 || e->uid_len > PD_UID_MAX
        || e->device_len > PD_DEVICE_MAX
        || e->napps > PD_APPS_MAX)
    {
        return 0;
    }

    top = pd_min(z->top, z->max_conns);

    if (e->uid_len + e->device_len <= PD_REG_NAMES) {
        if (e->more != PD_REG_NIL) {
            return 0;
        }

    } else {
        if (e->more >= top || e->more == i) {
            return 0;
        }

        m = pd_reg_more(z, e);

        if (m->state != PD_REG_USED || m->kind != PD_REG_MORE
            || m->owner != i)
        {
            return 0;
        }
    }

    apps = pd_reg_apps(z);

    for (j = 0; j < e->napps; j++) {
        if (e->apps[j] >= PD_REG_APP_TABLE || apps[e->apps[j]].len == 0) {
            return 0;
        }
    }

    return 1;
}


/*
 * A slot the rebuild keeps: a whole connection, linked, whose apps it
 * counts; or the rest of a whole connection's names, aside.
 */
static int
pd_reg_entry_keep(void *slot, void *data)
{
    uint32_t         i, j;
    pd_reg_app_t    *apps;
    pd_reg_zone_t   *z = data;
    pd_reg_entry_t  *e = slot;
    pd_reg_more_t   *m = slot;

    i = (uint32_t) (e - pd_reg_entries(z));

    if (e->kind == PD_REG_MORE) {
        if (m->owner >= pd_min(z->top, z->max_conns)
            || !pd_reg_entry_valid(z, m->owner)
            || pd_reg_entries(z)[m->owner].more != i)
        {
            return 0;
        }

        z->more++;
        return PD_SHTABLE_ASIDE;
    }

    if (!pd_reg_entry_valid(z, i)) {
        return 0;
    }

    apps = pd_reg_apps(z);

    for (j = 0; j < e->napps; j++) {
        apps[e->apps[j]].refs++;
    }

    return PD_SHTABLE_CHAIN;
}


/* entries: chains, free list, count and the app reference counts */
static void
pd_reg_rebuild_entries(pd_reg_zone_t *z)
{
    uint32_t      i;
    pd_shtable_t  t;

    for (i = 0; i < PD_REG_APP_TABLE; i++) {
        pd_reg_apps(z)[i].refs = 0;
    }

    z->more = 0;

    pd_reg_entry_table(z, &t);
    pd_shtable_rebuild(&t);
}


/* apps: an app nobody names is free, the others are indexed again */
static void
pd_reg_rebuild_apps(pd_reg_zone_t *z)
{
    uint16_t      *buckets;
    uint32_t       i, b;
    pd_reg_app_t  *app;

    buckets = pd_reg_app_buckets(z);

    for (i = 0; i < PD_REG_APP_TABLE; i++) {
        buckets[i] = PD_REG_APP_NIL;
    }

    z->app_free = PD_REG_APP_NIL;
    z->napps = 0;

    for (i = PD_REG_APP_TABLE; i-- > 0; /* void */) {
        app = &pd_reg_apps(z)[i];

        if (app->refs > 0) {
            b = app->hash & (PD_REG_APP_TABLE - 1);
            app->next = buckets[b];
            buckets[b] = (uint16_t) i;
            z->napps++;
            continue;
        }

        app->len = 0;
        app->next = z->app_free;
        z->app_free = (uint16_t) i;
    }
}


/* the IP node table of z, as a pd_shtable */
static void
pd_reg_ip_table(pd_reg_zone_t *z, pd_shtable_t *t)
{
    t->type = &pd_reg_ip_type;
    t->slots = (u_char *) pd_reg_ips(z);
    t->buckets = pd_reg_ip_buckets(z);
    t->free = &z->ip_free;
    t->count = &z->ip_count;
    t->top = &z->ip_top;
    t->nslots = z->max_ips;
    t->mask = z->ip_mask;
    t->data = z;
}


static uint32_t
pd_reg_ip_hash(void *slot, void *data)
{
    pd_reg_ip_t  *node = slot;

    (void) data;

    return node->hash;
}


/* IP nodes: a node is live when it is used and counts something */
static int
pd_reg_ip_keep(void *slot, void *data)
{
    pd_reg_ip_t  *node = slot;

    (void) data;

    return node->count > 0;
}


static void
pd_reg_rebuild_ips(pd_reg_zone_t *z)
{
    pd_shtable_t  t;

    pd_reg_ip_table(z, &t);
    pd_shtable_rebuild(&t);
}


/*
 * Derives everything but the slots' own facts from the slots: formatting
 * is zeroing the slots and a rebuild; repairing after a holder died in
 * the middle of an update is a rebuild.  Any prefix of an update leaves
 * slots that are either committed (state set after every field it
 * covers) or not, so the rebuild yields the zone as if the update had
 * wholly happened or never begun.  It is idempotent: if the repairer
 * dies too, the next locker simply repairs again.  It is O(zone), paid
 * once per crash, and makes no system call.
 */
static void
pd_reg_rebuild(pd_reg_zone_t *z)
{
    pd_reg_rebuild_entries(z);
    pd_reg_rebuild_apps(z);
    pd_reg_rebuild_ips(z);
}


static pd_int_t
pd_reg_zone_format(pd_reg_zone_t *z, size_t size, uint32_t max_conns,
    uint32_t max_ips)
{
    ssize_t               n;

    pd_memzero(z, sizeof(pd_reg_zone_t));

    /* blocks only until the kernel's pool is seeded, early in boot */
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

    (void) pd_reg_layout(max_conns, max_ips, z);
    z->size = size;

    /* the entries and IP nodes are written as they are first used
     * (their tops are 0): a large zone costs nothing until then */
    pd_memzero(pd_reg_apps(z), PD_REG_APP_TABLE * sizeof(pd_reg_app_t));

    pd_reg_rebuild(z);

    /* last: a zone without the magic is not one */
    z->magic = PD_REG_MAGIC;

    return PD_OK;
}


/* an attached zone must be laid out exactly as this binary would */
static pd_int_t
pd_reg_zone_check(pd_reg_zone_t *z, size_t size, uint32_t max_conns,
    uint32_t max_ips)
{
    pd_reg_zone_t  want;

    if ((z->magic & ~0xffffffULL) == PD_REG_MAGIC_BASE
        && z->magic != PD_REG_MAGIC)
    {
        /* a register zone, of a binary with another layout */
        errno = EPROTO;
        return PD_ERROR;
    }

    pd_memzero(&want, sizeof(pd_reg_zone_t));
    (void) pd_reg_layout(max_conns, max_ips, &want);

    if (z->magic != PD_REG_MAGIC || z->size != size
        || z->max_conns != want.max_conns || z->max_ips != want.max_ips
        || z->mask != want.mask || z->ip_mask != want.ip_mask
        || z->buckets != want.buckets || z->entries != want.entries
        || z->apps != want.apps || z->app_buckets != want.app_buckets
        || z->ip_buckets != want.ip_buckets || z->ips != want.ips)
    {
        errno = EINVAL;
        return PD_ERROR;
    }

    return PD_OK;
}


pd_reg_zone_t *
pd_reg_zone_init(void *addr, size_t size, uint32_t max_conns,
    uint32_t max_ips, int fresh)
{
    size_t          need;
    pd_reg_zone_t  *z;

    need = pd_reg_layout(max_conns, max_ips, NULL);

    if (need == 0 || ((uintptr_t) addr & 7) != 0) {
        errno = EINVAL;
        return NULL;
    }

    if (size < need) {
        errno = ENOSPC;
        return NULL;
    }

    z = addr;

    if (fresh) {
        if (pd_reg_zone_format(z, size, max_conns, max_ips) != PD_OK) {
            return NULL;
        }

        return z;
    }

    if (pd_reg_zone_check(z, size, max_conns, max_ips) != PD_OK) {
        return NULL;
    }

    return z;
}


/* the repair after a holder died holding the lock (see pd_shlock.h) */
static void
pd_reg_repair(void *data)
{
    pd_reg_zone_t  *z = data;

    pd_reg_rebuild(z);
    z->repairs++;
}


/*
 * PD_OK with the mutex held, repairing the zone first when its last
 * holder died holding it; PD_ERROR when the mutex is unusable, which
 * only a bug (an unlock without pthread_mutex_consistent) can cause.
 */
static pd_int_t
pd_reg_lock(pd_reg_zone_t *z)
{
    return pd_shlock_lock(&z->mutex, pd_reg_repair, z);
}


static void
pd_reg_unlock(pd_reg_zone_t *z)
{
    pd_shlock_unlock(&z->mutex);
}


/*
 * The start of every call on one uid: PD_DECLINED for a uid no entry
 * can have (nothing locked), PD_ERROR as pd_reg_lock(), PD_OK with its
 * chain's hash in *hash and the zone locked.
 */
static pd_int_t
pd_reg_lock_uid(pd_reg_zone_t *z, const u_char *uid, size_t len,
    uint32_t *hash)
{
    if (len == 0 || len > PD_UID_MAX) {
        return PD_DECLINED;
    }

    *hash = (uint32_t) pd_siphash24(z->seed, uid, len);

    return pd_reg_lock(z);
}


/*
 * Checks and hashes napps NUL-terminated names laid out every
 * PD_APP_MAX + 1 bytes from first, dropping repeats (the client
 * wrote "apps=a,a").  PD_ERROR on a bad count or length.
 */
static pd_int_t
pd_reg_names_prepare(pd_reg_zone_t *z, pd_reg_names_t *names,
    const u_char *first, uint32_t napps)
{
    size_t         len;
    uint32_t       i, j, hash;
    const u_char  *name;

    if (napps > PD_APPS_MAX) {
        return PD_ERROR;
    }

    names->n = 0;

    for (i = 0; i < napps; i++) {
        name = first + (size_t) i * (PD_APP_MAX + 1);
        len = strnlen((const char *) name, PD_APP_MAX + 1);

        if (len == 0 || len > PD_APP_MAX) {
            return PD_ERROR;
        }

        hash = (uint32_t) pd_siphash24(z->seed, name, len);

        for (j = 0; j < names->n; j++) {
            if (names->hash[j] == hash && names->len[j] == len
                && memcmp(names->name[j], name, len) == 0)
            {
                break;
            }
        }

        if (j < names->n) {
            continue;
        }

        names->name[names->n] = name;
        names->hash[names->n] = hash;
        names->len[names->n] = (uint8_t) len;
        names->n++;
    }

    return PD_OK;
}


/* drops one reference; an app nobody names any more is freed */
static void
pd_reg_app_release(pd_reg_zone_t *z, uint16_t id)
{
    uint16_t      *link;
    pd_reg_app_t  *apps, *app;

    apps = pd_reg_apps(z);
    app = &apps[id];

    if (--app->refs > 0) {
        return;
    }

    link = &pd_reg_app_buckets(z)[app->hash & (PD_REG_APP_TABLE - 1)];

    while (*link != id) {
        link = &apps[*link].next;
    }

    *link = app->next;

    app->len = 0;
    app->next = z->app_free;
    z->app_free = id;
    z->napps--;
}


/*
 * Takes a reference on each name, adding the new ones to the table, and
 * stores their indices in names->id.  PD_BUSY (nothing taken) when the
 * table is full.  Names are refcounted rather than kept forever because
 * clients choose them: kept forever, a few clients binding made-up apps
 * would fill the table for good; refcounted, garbage lasts only as long
 * as the connections naming it.
 */
static pd_int_t
pd_reg_app_intern(pd_reg_zone_t *z, pd_reg_names_t *names)
{
    uint16_t      *buckets, id;
    uint32_t       i, b;
    pd_reg_app_t  *apps, *app;

    apps = pd_reg_apps(z);
    buckets = pd_reg_app_buckets(z);

    for (i = 0; i < names->n; i++) {
        b = names->hash[i] & (PD_REG_APP_TABLE - 1);

        for (id = buckets[b]; id != PD_REG_APP_NIL; id = apps[id].next) {
            if (apps[id].hash == names->hash[i]
                && apps[id].len == names->len[i]
                && memcmp(apps[id].name, names->name[i], names->len[i]) == 0)
            {
                break;
            }
        }

        if (id == PD_REG_APP_NIL) {
            id = z->app_free;

            if (id == PD_REG_APP_NIL) {
                while (i-- > 0) {
                    pd_reg_app_release(z, names->id[i]);
                }

                return PD_BUSY;
            }

            app = &apps[id];
            z->app_free = app->next;

            app->refs = 0;
            app->hash = names->hash[i];
            app->len = names->len[i];
            pd_memcpy(app->name, names->name[i], names->len[i]);

            app->next = buckets[b];
            buckets[b] = id;
            z->napps++;
        }

        apps[id].refs++;
        names->id[i] = id;
    }

    return PD_OK;
}


/* whether e is uid's: its uid's first bytes are in the entry, the rest
 * (of a long one) in its second slot */
static int
pd_reg_uid_is(pd_reg_zone_t *z, pd_reg_entry_t *e, const u_char *uid,
    size_t len)
{
    size_t  n;

    if (e->uid_len != len) {
        return 0;
    }

    n = pd_min(len, PD_REG_NAMES);

    if (memcmp(e->names, uid, n) != 0) {
        return 0;
    }

    return n == len
           || memcmp(pd_reg_more(z, e)->names, uid + n, len - n) == 0;
}


/* copies bytes [off, off + n) of e's names (uid then device) to dst */
static void
pd_reg_names_get(pd_reg_zone_t *z, pd_reg_entry_t *e, size_t off, size_t n,
    u_char *dst)
{
    size_t  k;

    if (off < PD_REG_NAMES) {
        k = pd_min(n, PD_REG_NAMES - off);
        dst = pd_cpymem(dst, e->names + off, k);
        off += k;
        n -= k;
    }

    if (n) {
        pd_memcpy(dst, pd_reg_more(z, e)->names + (off - PD_REG_NAMES), n);
    }
}


/* the entry of (uid, pid, conn) or PD_REG_NIL */
static uint32_t
pd_reg_find(pd_reg_zone_t *z, uint32_t hash, const u_char *uid, size_t len,
    int32_t pid, uint64_t conn)
{
    uint32_t         i;
    pd_reg_entry_t  *entries, *e;

    entries = pd_reg_entries(z);

    for (i = pd_reg_buckets(z)[hash & z->mask]; i != PD_REG_NIL; i = e->next)
    {
        e = &entries[i];

        if (e->pid == pid && pd_reg_conn(e) == conn && e->hash == hash
            && pd_reg_uid_is(z, e, uid, len))
        {
            return i;
        }
    }

    return PD_REG_NIL;
}


/*
 * Uncommits entry i, then unlinks and frees it and releases its apps;
 * then the slot of the rest of its names, which a crash between the two
 * leaves naming a free entry: the rebuild frees it then
 */
static void
pd_reg_entry_free(pd_reg_zone_t *z, uint32_t i)
{
    uint32_t         j;
    pd_shtable_t     t;
    pd_reg_entry_t  *e;

    e = &pd_reg_entries(z)[i];

    pd_reg_entry_table(z, &t);
    pd_shtable_remove(&t, i, e->hash);

    if (e->more != PD_REG_NIL) {
        pd_shtable_uncommit(&t, e->more);
        pd_shtable_free(&t, e->more);
        z->more--;
    }

    for (j = 0; j < e->napps; j++) {
        pd_reg_app_release(z, e->apps[j]);
    }
}


/* the NUL-terminated copy a lookup hands out */
static void
pd_reg_entry_copy(pd_reg_zone_t *z, pd_reg_entry_t *e, pd_reg_info_t *out)
{
    uint32_t       i;
    pd_reg_app_t  *app;

    pd_reg_names_get(z, e, 0, e->uid_len, out->uid);
    out->uid[e->uid_len] = '\0';
    pd_reg_names_get(z, e, e->uid_len, e->device_len, out->device);
    out->device[e->device_len] = '\0';

    for (i = 0; i < e->napps; i++) {
        app = &pd_reg_apps(z)[e->apps[i]];
        pd_memcpy(out->apps[i], app->name, app->len);
        out->apps[i][app->len] = '\0';
    }

    out->napps = e->napps;
    out->lingering = e->lingering;
    out->pid = e->pid;
    out->wslot = e->wslot;
    out->conn = pd_reg_conn(e);
    out->since = (uint64_t) e->since * 1000;
    out->sid_tag = pd_reg_u24(e->sid_tag);
}


pd_int_t
pd_reg_add(pd_reg_zone_t *z, const pd_reg_info_t *info)
{
    u_char           all[PD_UID_MAX + PD_DEVICE_MAX];
    size_t           uid_len, device_len, len, n;
    uint32_t         i, j, m, hash;
    pd_shtable_t     t;
    pd_reg_names_t   names;
    pd_reg_more_t   *more;
    pd_reg_entry_t  *e;

    uid_len = strnlen((const char *) info->uid, PD_UID_MAX + 1);
    device_len = strnlen((const char *) info->device, PD_DEVICE_MAX + 1);

    if (uid_len == 0 || uid_len > PD_UID_MAX
        || device_len > PD_DEVICE_MAX
        || pd_reg_names_prepare(z, &names, (const u_char *) info->apps,
                                info->napps)
           != PD_OK)
    {
        return PD_ERROR;
    }

    hash = (uint32_t) pd_siphash24(z->seed, info->uid, uid_len);

    if (pd_reg_lock(z) != PD_OK) {
        return PD_ERROR;
    }

    if (pd_reg_find(z, hash, info->uid, uid_len, info->pid, info->conn)
        != PD_REG_NIL)
    {
        pd_reg_unlock(z);
        return PD_DECLINED;
    }

    pd_reg_entry_table(z, &t);

    len = uid_len + device_len;
    i = pd_shtable_alloc(&t);
    m = PD_REG_NIL;

    if (i != PD_REG_NIL && len > PD_REG_NAMES) {
        m = pd_shtable_alloc(&t);

        if (m == PD_REG_NIL) {
            pd_shtable_free(&t, i);
            i = PD_REG_NIL;
        }
    }

    if (i == PD_REG_NIL || pd_reg_app_intern(z, &names) != PD_OK) {
        if (m != PD_REG_NIL) {
            pd_shtable_free(&t, m);
        }

        if (i != PD_REG_NIL) {
            pd_shtable_free(&t, i);
        }

        pd_reg_unlock(z);
        return PD_BUSY;
    }

    pd_memcpy(all, info->uid, uid_len);
    pd_memcpy(all + uid_len, info->device, device_len);
    n = pd_min(len, PD_REG_NAMES);

    if (m != PD_REG_NIL) {
        /* committed first, aside: until the entry names it, a crash
         * leaves it to the rebuild, which frees it */
        more = (pd_reg_more_t *) &pd_reg_entries(z)[m];
        more->kind = PD_REG_MORE;
        more->owner = i;
        pd_memcpy(more->names, all + n, len - n);
        pd_shtable_commit(&t, m);
        z->more++;
    }

    e = &pd_reg_entries(z)[i];
    e->kind = PD_REG_CONN;
    e->more = m;

    e->hash = hash;
    e->pid = info->pid;
    e->wslot = (int16_t) info->wslot;
    pd_reg_conn_set(e, info->conn);
    e->since = (uint32_t) (info->since / 1000);

    for (j = 0; j < names.n; j++) {
        e->apps[j] = names.id[j];
    }

    e->napps = (uint8_t) names.n;
    e->uid_len = (uint8_t) uid_len;
    e->device_len = (uint8_t) device_len;
    e->lingering = info->lingering ? 1 : 0;
    /* a reused slot may hold an old connection's tag */
    pd_reg_u24_set(e->sid_tag, info->sid_tag);
    pd_memcpy(e->names, all, n);

    pd_shtable_insert(&t, i, hash);

    pd_reg_unlock(z);

    return PD_OK;
}


pd_int_t
pd_reg_remove(pd_reg_zone_t *z, const u_char *uid, size_t len, int32_t pid,
    uint64_t conn)
{
    uint32_t  i, hash;
    pd_int_t  rv;

    rv = pd_reg_lock_uid(z, uid, len, &hash);
    if (rv != PD_OK) {
        return rv;
    }

    i = pd_reg_find(z, hash, uid, len, pid, conn);

    if (i == PD_REG_NIL) {
        pd_reg_unlock(z);
        return PD_DECLINED;
    }

    pd_reg_entry_free(z, i);

    pd_reg_unlock(z);

    return PD_OK;
}


pd_int_t
pd_reg_set_apps(pd_reg_zone_t *z, const u_char *uid, size_t len,
    int32_t pid, uint64_t conn, u_char apps[][PD_APP_MAX + 1],
    uint32_t napps)
{
    uint16_t         old[PD_APPS_MAX];
    uint32_t         i, j, nold, hash;
    pd_int_t         rv;
    pd_reg_names_t   names;
    pd_reg_entry_t  *e;

    if (pd_reg_names_prepare(z, &names, (const u_char *) apps, napps)
        != PD_OK)
    {
        return PD_ERROR;
    }

    rv = pd_reg_lock_uid(z, uid, len, &hash);
    if (rv != PD_OK) {
        return rv;
    }

    i = pd_reg_find(z, hash, uid, len, pid, conn);

    if (i == PD_REG_NIL) {
        pd_reg_unlock(z);
        return PD_DECLINED;
    }

    /* the new references first, so an app kept across is never freed */
    if (pd_reg_app_intern(z, &names) != PD_OK) {
        pd_reg_unlock(z);
        return PD_BUSY;
    }

    e = &pd_reg_entries(z)[i];
    nold = e->napps;

    for (j = 0; j < nold; j++) {
        old[j] = e->apps[j];
    }

    /* ids before the count: a torn update leaves only valid ids counted */
    for (j = 0; j < names.n; j++) {
        e->apps[j] = names.id[j];
    }

    pd_reg_commit();
    e->napps = (uint8_t) names.n;
    pd_reg_commit();

    for (j = 0; j < nold; j++) {
        pd_reg_app_release(z, old[j]);
    }

    pd_reg_unlock(z);

    return PD_OK;
}


pd_int_t
pd_reg_set_lingering(pd_reg_zone_t *z, const u_char *uid, size_t len,
    int32_t pid, uint64_t conn, pd_uint_t on)
{
    uint32_t  i, hash;
    pd_int_t  rv;

    rv = pd_reg_lock_uid(z, uid, len, &hash);
    if (rv != PD_OK) {
        return rv;
    }

    i = pd_reg_find(z, hash, uid, len, pid, conn);

    if (i != PD_REG_NIL) {
        pd_reg_entries(z)[i].lingering = on ? 1 : 0;
    }

    pd_reg_unlock(z);

    return i == PD_REG_NIL ? PD_DECLINED : PD_OK;
}

/*
 * A connection changes worker (a reload's live hand-over): its entry
 * names the new pid, worker slot and connection id from now on, in one
 * step under the lock, so a lookup finds it once, never twice or not at
 * all.  The entry's place in its chain does not change (same uid).
 */
pd_int_t
pd_reg_move(pd_reg_zone_t *z, const u_char *uid, size_t len, int32_t pid,
    uint64_t conn, int32_t to_pid, int32_t to_wslot, uint64_t to_conn,
    uint32_t sid_tag)
{
    pd_reg_entry_t  *e;
    uint32_t         i, hash;
    pd_int_t         rv;

    rv = pd_reg_lock_uid(z, uid, len, &hash);
    if (rv != PD_OK) {
        return rv;
    }

    i = pd_reg_find(z, hash, uid, len, to_pid, to_conn);

    if (i == PD_REG_NIL) {
        i = pd_reg_find(z, hash, uid, len, pid, conn);
    } else {
        /* moved already */
        i = PD_REG_NIL;
    }

    if (i != PD_REG_NIL) {
        e = &pd_reg_entries(z)[i];
        e->pid = to_pid;
        e->wslot = (int16_t) to_wslot;
        pd_reg_conn_set(e, to_conn);
        pd_reg_u24_set(e->sid_tag, sid_tag);
    }

    pd_reg_unlock(z);

    return i == PD_REG_NIL ? PD_DECLINED : PD_OK;
}

pd_uint_t
pd_reg_lookup(pd_reg_zone_t *z, const u_char *uid, size_t len,
    pd_reg_info_t *out, pd_uint_t max)
{
    uint32_t         i, hash;
    pd_uint_t        n;
    pd_reg_entry_t  *entries, *e;

    if (pd_reg_lock_uid(z, uid, len, &hash) != PD_OK) {
        return 0;
    }

    entries = pd_reg_entries(z);
    n = 0;

    for (i = pd_reg_buckets(z)[hash & z->mask]; i != PD_REG_NIL; i = e->next)
    {
        e = &entries[i];

        if (e->hash != hash || !pd_reg_uid_is(z, e, uid, len)) {
            continue;
        }

        if (n < max) {
            pd_reg_entry_copy(z, e, &out[n]);
        }

        n++;
    }

    pd_reg_unlock(z);

    return n;
}


pd_uint_t
pd_reg_count(pd_reg_zone_t *z)
{
    pd_uint_t  n;

    if (pd_reg_lock(z) != PD_OK) {
        return 0;
    }

    n = z->count;

    pd_reg_unlock(z);

    return n;
}


pd_int_t
pd_reg_zone_stats(pd_reg_zone_t *z, pd_reg_zone_stats_t *st)
{
    if (pd_reg_lock(z) != PD_OK) {
        return PD_ERROR;
    }

    st->bytes = z->size;
    st->entry_bytes = sizeof(pd_reg_entry_t);
    st->bucket_bytes = sizeof(uint32_t);
    st->used = z->count;
    st->more_used = z->more;
    st->capacity = z->max_conns;
    st->buckets = z->mask + 1;
    st->ip_entry_bytes = sizeof(pd_reg_ip_t);
    st->ips_used = z->ip_count;
    st->ips_capacity = z->max_ips;
    st->ip_buckets = z->ip_mask + 1;

    pd_reg_unlock(z);

    return PD_OK;
}


/* removes pid's entries among slots [from, to); the lock is held */
static pd_uint_t
pd_reg_purge_entries(pd_reg_zone_t *z, int32_t pid, uint32_t from,
    uint32_t to)
{
    uint32_t         i;
    pd_uint_t        n;
    pd_reg_entry_t  *entries, *e;

    entries = pd_reg_entries(z);
    n = 0;

    for (i = from; i < to; i++) {
        e = &entries[i];

        if (e->state != PD_REG_USED || e->kind != PD_REG_CONN
            || e->pid != pid)
        {
            continue;
        }

        pd_reg_entry_free(z, i);
        n++;
    }

    return n;
}


/* frees IP node i, whose count reached 0 */
static void
pd_reg_ip_free(pd_reg_zone_t *z, uint32_t i)
{
    pd_shtable_t  t;

    pd_reg_ip_table(z, &t);
    pd_shtable_remove(&t, i, pd_reg_ips(z)[i].hash);
}


/* releases pid's IP counts among nodes [from, to); the lock is held */
static void
pd_reg_purge_ips(pd_reg_zone_t *z, int32_t pid, uint32_t from, uint32_t to)
{
    uint32_t      i;
    pd_reg_ip_t  *ips, *node;

    ips = pd_reg_ips(z);

    for (i = from; i < to; i++) {
        node = &ips[i];

        if (node->state != PD_REG_USED
            || (int32_t) pd_reg_u24(node->pid) != pid)
        {
            continue;
        }

        node->count = 0;
        pd_reg_ip_free(z, i);
    }
}


/*
 * Slots never move, so the scan may let go of the lock between batches:
 * nothing of the dead pid can appear behind it, and the other processes
 * wait for one batch at most.
 */
pd_uint_t
pd_reg_purge_pid(pd_reg_zone_t *z, int32_t pid)
{
    uint32_t   from, to, top;
    pd_uint_t  n;

    n = 0;

    /* the tops only grow, and the dead pid adds nothing past them */
    top = __atomic_load_n(&z->top, __ATOMIC_ACQUIRE);

    for (from = 0; from < top; from = to) {
        to = from + pd_min(top - from, PD_REG_PURGE_BATCH);

        if (pd_reg_lock(z) != PD_OK) {
            return n;
        }

        n += pd_reg_purge_entries(z, pid, from, to);

        pd_reg_unlock(z);
    }

    top = __atomic_load_n(&z->ip_top, __ATOMIC_ACQUIRE);

    for (from = 0; from < top; from = to) {
        to = from + pd_min(top - from, PD_REG_PURGE_BATCH);

        if (pd_reg_lock(z) != PD_OK) {
            return n;
        }

        pd_reg_purge_ips(z, pid, from, to);

        pd_reg_unlock(z);
    }

    return n;
}


/*
 * Walks the chain of key: returns the connections counted for it by all
 * workers, and in *mine the node of pid (PD_REG_NIL if none).
 */
static uint32_t
pd_reg_ip_find(pd_reg_zone_t *z, uint32_t hash, const u_char key[16],
    int32_t pid, uint32_t *mine)
{
    uint32_t      i, total;
    pd_reg_ip_t  *ips, *node;

    ips = pd_reg_ips(z);
    total = 0;
    *mine = PD_REG_NIL;

    for (i = pd_reg_ip_buckets(z)[hash & z->ip_mask];
         i != PD_REG_NIL;
         i = node->next)
    {
        node = &ips[i];

        if (node->hash != hash || memcmp(node->addr, key, 16) != 0) {
            continue;
        }

        total += node->count;

        if ((int32_t) pd_reg_u24(node->pid) == pid) {
            *mine = i;
        }
    }

    return total;
}


pd_int_t
pd_reg_ip_acquire(pd_reg_zone_t *z, const struct sockaddr *sa, int32_t pid,
    uint32_t limit)
{
    u_char        key[16];
    uint32_t      i, hash, total;
    pd_shtable_t  t;
    pd_reg_ip_t  *node;

    if (pd_inet_client_key(sa, key) != PD_OK) {
        return PD_DECLINED;
    }

    hash = (uint32_t) pd_siphash24(z->seed, key, sizeof(key));

    if (pd_reg_lock(z) != PD_OK) {
        return PD_ERROR;
    }

    total = pd_reg_ip_find(z, hash, key, pid, &i);

    if (limit != 0 && total >= limit) {
        pd_reg_unlock(z);
        return PD_BUSY;
    }

    if (i != PD_REG_NIL) {
        pd_reg_ips(z)[i].count++;
        pd_reg_unlock(z);
        return PD_OK;
    }

    pd_reg_ip_table(z, &t);
    i = pd_shtable_alloc(&t);

    if (i == PD_REG_NIL) {
        pd_reg_unlock(z);
        return PD_BUSY;
    }

    node = &pd_reg_ips(z)[i];

    node->hash = hash;
    pd_reg_u24_set(node->pid, (uint32_t) pid);
    node->count = 1;
    pd_memcpy(node->addr, key, sizeof(key));

    pd_shtable_insert(&t, i, hash);

    pd_reg_unlock(z);

    return PD_OK;
}


void
pd_reg_ip_release(pd_reg_zone_t *z, const struct sockaddr *sa, int32_t pid)
{
    u_char        key[16];
    uint32_t      i, hash;
    pd_reg_ip_t  *node;

    if (pd_inet_client_key(sa, key) != PD_OK) {
        return;
    }

    hash = (uint32_t) pd_siphash24(z->seed, key, sizeof(key));

    if (pd_reg_lock(z) != PD_OK) {
        return;
    }

    (void) pd_reg_ip_find(z, hash, key, pid, &i);

    if (i != PD_REG_NIL) {
        node = &pd_reg_ips(z)[i];

        /* the count is a fact too: at 0 the rebuild frees the node */
        if (--node->count == 0) {
            pd_reg_ip_free(z, i);
        }
    }

    pd_reg_unlock(z);
}


pd_uint_t
pd_reg_ip_count(pd_reg_zone_t *z, const struct sockaddr *sa)
{
    u_char    key[16];
    uint32_t  i, hash, total;

    if (pd_inet_client_key(sa, key) != PD_OK) {
        return 0;
    }

    hash = (uint32_t) pd_siphash24(z->seed, key, sizeof(key));

    if (pd_reg_lock(z) != PD_OK) {
        return 0;
    }

    total = pd_reg_ip_find(z, hash, key, 0, &i);

    pd_reg_unlock(z);

    return total;
}
