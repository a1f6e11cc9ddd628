/*
 * test_pd_saver_store.c: unit tests for the message store
 * (pd_saver_store.c).
 */

#include "pd_core.h"
#include "pd_saver_store.h"

#include <setjmp.h>
#include <cmocka.h>


#define pd_test_entries(z)                                                   \
    ((pd_msg_entry_t *) ((u_char *) (z) + (z)->entries))
#define pd_test_mailboxes(z)                                                 \
    ((pd_msg_mailbox_t *) ((u_char *) (z) + (z)->mailboxes))
#define pd_test_buckets(z)                                                   \
    ((uint32_t *) ((u_char *) (z) + (z)->buckets))
#define pd_test_mb_buckets(z)                                                \
    ((uint32_t *) ((u_char *) (z) + (z)->mb_buckets))
#define pd_test_cursors(z)                                                   \
    ((pd_msg_cursor_t *) ((u_char *) (z) + (z)->cursors))
#define pd_test_cur_buckets(z)                                               \
    ((uint32_t *) ((u_char *) (z) + (z)->cur_buckets))
#define pd_test_bapps(z)                                                     \
    ((pd_msg_bapp_t *) ((u_char *) (z) + (z)->bapps))
#define pd_test_block(z, g)                                                  \
    ((pd_msg_block_t *) ((u_char *) (z) + (z)->area                          \
                         + (size_t) (g) * PD_MSG_GRANULE))

#define pd_test_u(s)  (const u_char *) (s), strlen(s)

#define PD_TEST_NOW      1700000000000ULL
#define PD_TEST_LATER    (PD_TEST_NOW + 3600000)
#define PD_TEST_HANDED   512


/* what a handler saw; the payload of seq s is pd_test_fill(s, len) */
typedef struct {
    uint64_t     seq[PD_TEST_HANDED];
    size_t       len[PD_TEST_HANDED];
    uint64_t     expires[PD_TEST_HANDED];
    pd_uint_t    n;
    pd_uint_t    stop_after;    /* 0: never stop */
    pd_uint_t    bad;           /* payloads that were not byte for byte */
} pd_test_seen_t;


static u_char
pd_test_byte(uint64_t seq, size_t i)
{
    return (u_char) ((seq * 131 + i * 7 + (i >> 8)) & 0xff);
}


static void
pd_test_fill(u_char *buf, uint64_t seq, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        buf[i] = pd_test_byte(seq, i);
    }
}


static pd_int_t
pd_test_handler(void *data, uint64_t seq, const u_char *payload, size_t len,
    uint64_t expires_ms)
{
    size_t           i;
    pd_test_seen_t  *seen;

    seen = data;

    if (seen->stop_after != 0 && seen->n == seen->stop_after) {
        return PD_AGAIN;
    }

    for (i = 0; i < len; i++) {
        if (payload[i] != pd_test_byte(seq, i)) {
            seen->bad++;
            break;
        }
    }

    if (seen->n < PD_TEST_HANDED) {
        seen->seq[seen->n] = seq;
        seen->len[seen->n] = len;
        seen->expires[seen->n] = expires_ms;
    }

    seen->n++;

    return PD_OK;
}


/* a zone in process memory: for everything but the cross-process tests */
static pd_msg_zone_t *
pd_test_zone(uint32_t entries, size_t max_payload, uint32_t per_mailbox)
{
    void           *mem;
    size_t          size;
    pd_msg_zone_t  *z;

    size = pd_msg_store_size(entries, max_payload);
    assert_true(size > 0);
    mem = NULL;
    assert_int_equal(posix_memalign(&mem, 64, size), 0);

    /* garbage, as a reused region would hold: format must not trust it */
    memset(mem, 0xa5, size);

    z = pd_msg_store_init(mem, size, max_payload, per_mailbox, 1);
    assert_ptr_equal(z, mem);
    assert_true(z->max_entries >= entries);

    return z;
}


static void
pd_test_zone_free(pd_msg_zone_t *z)
{
    (void) pthread_mutex_destroy(&z->mutex);
    free(z);
}


/* a shared anonymous mapping, as the master makes, for forked tests */
static pd_msg_zone_t *
pd_test_shared_zone(uint32_t entries, size_t max_payload,
    uint32_t per_mailbox, size_t extra, size_t *sizep)
{
    void           *mem;
    size_t          size;
    pd_msg_zone_t  *z;

    size = pd_msg_store_size(entries, max_payload);
    assert_true(size > 0);

    mem = mmap(NULL, size + extra, PROT_READ | PROT_WRITE,
               MAP_ANONYMOUS | MAP_SHARED, -1, 0);
    assert_true(mem != MAP_FAILED);

    z = pd_msg_store_init(mem, size, max_payload, per_mailbox, 1);
    assert_ptr_equal(z, mem);

    *sizep = size;

    return z;
}


/* stores seq (payload pd_test_fill(seq, len)) to a NULL-ended uid list */
static pd_int_t
pd_test_store(pd_msg_zone_t *z, const char **uids, const char *app,
    uint64_t seq, size_t len, uint64_t expires, pd_uint_t *stored,
    pd_uint_t *full)
{
    u_char         *buf;
    pd_int_t        rc;
    pd_uint_t       n, s, f;
    pd_msg_addr_t   to[64];

    for (n = 0; uids[n] != NULL; n++) {
        assert_true(n < pd_nelems(to));
        to[n].uid = (const u_char *) uids[n];
        to[n].len = strlen(uids[n]);
    }

    buf = malloc(len + 1);
    assert_non_null(buf);
    pd_test_fill(buf, seq, len);

    rc = pd_msg_store(z, to, n, pd_test_u(app), seq, buf, len, expires,
                      &s, &f);
    free(buf);

    if (stored != NULL) {
        *stored = s;
    }

    if (full != NULL) {
        *full = f;
    }

    return rc;
}


static pd_int_t
pd_test_store1(pd_msg_zone_t *z, const char *uid, const char *app,
    uint64_t seq, size_t len, uint64_t expires)
{
    pd_int_t     rc;
    pd_uint_t    stored, full;
    const char  *uids[2];

    uids[0] = uid;
    uids[1] = NULL;

    rc = pd_test_store(z, uids, app, seq, len, expires, &stored, &full);

    if (rc == PD_OK) {
        assert_int_equal(stored + full, 1);
    }

    return rc;
}


static pd_int_t
pd_test_pending(pd_msg_zone_t *z, const char *uid, const char *app,
    uint64_t now, uint32_t max, pd_test_seen_t *seen)
{
    pd_memzero(seen, sizeof(pd_test_seen_t));

    return pd_msg_pending(z, pd_test_u(uid), pd_test_u(app), now, max,
                          pd_test_handler, seen);
}


static pd_int_t
pd_test_ack(pd_msg_zone_t *z, const char *uid, uint64_t seq)
{
    return pd_msg_ack(z, pd_test_u(uid), seq);
}


static pd_msg_stats_t
pd_test_stats(pd_msg_zone_t *z)
{
    pd_msg_stats_t  st;

    assert_int_equal(pd_msg_stats(z, &st), PD_OK);

    return st;
}


/* the length of a chain or free list, each element checked by state */
static uint32_t
pd_test_chain(uint32_t head, uint32_t max, const void *base, size_t elt,
    size_t next_off, size_t state_off, uint8_t state)
{
    uint32_t        i, n;
    const u_char   *p;

    n = 0;

    for (i = head; i != PD_MSG_NIL; n++) {
        assert_true(i < max);
        assert_true(n <= max);
        p = (const u_char *) base + (size_t) i * elt;
        assert_int_equal(p[state_off], state);
        memcpy(&i, p + next_off, sizeof(uint32_t));
    }

    return n;
}


/* mailbox lists: links both ways, counts, every used entry on one list */
static void
pd_test_check_lists(pd_msg_zone_t *z)
{
    uint8_t           *seen;
    uint32_t           i, j, prev, n, total;
    pd_msg_entry_t    *e;
    pd_msg_mailbox_t  *m;

    seen = calloc(z->max_entries, 1);
    assert_non_null(seen);
    total = 0;

    for (i = 0; i < z->max_mailboxes; i++) {
        m = &pd_test_mailboxes(z)[i];

        if (m->state != PD_MSG_USED) {
            continue;
        }

        prev = PD_MSG_NIL;
        n = 0;

        for (j = m->head; j != PD_MSG_NIL; j = e->next) {
            assert_true(j < z->max_entries);
            e = &pd_test_entries(z)[j];
            assert_int_equal(e->state, PD_MSG_USED);
            assert_int_equal(e->mailbox, i);
            assert_int_equal(e->prev, prev);
            assert_int_equal(e->mark, 0);
            assert_int_equal(seen[j], 0);
            seen[j] = 1;
            prev = j;
            n++;
        }

        assert_int_equal(m->tail, prev);
        assert_int_equal(m->count, n);
        assert_true(n > 0);
        total += n;
    }

    for (j = 0; j < z->max_entries; j++) {
        assert_int_equal(seen[j], pd_test_entries(z)[j].state == PD_MSG_USED);
    }

    assert_int_equal(total, z->nentries);
    free(seen);
}


/* every block: its reference count is what entries and broadcasts hold */
static void
pd_test_check_area(pd_msg_zone_t *z)
{
    uint32_t        *refs, g, i, a, s, cls, nfree, listed;
    uint64_t         payloads, bytes;
    pd_msg_block_t  *b;
    pd_msg_bcast_t  *slot;

    refs = calloc(z->granules + 1, sizeof(uint32_t));
    assert_non_null(refs);

    for (i = 0; i < z->max_entries; i++) {
        if (pd_test_entries(z)[i].state == PD_MSG_USED) {
            assert_true(pd_test_entries(z)[i].payload < z->bump);
            refs[pd_test_entries(z)[i].payload]++;
        }
    }

    for (a = 0; a < PD_MSG_BCAST_APPS; a++) {
        for (s = 0; s < PD_MSG_BCAST_KEEP; s++) {
            slot = &pd_test_bapps(z)[a].slots[s];

            if (slot->state == PD_MSG_USED) {
                assert_true(slot->payload < z->bump);
                refs[slot->payload]++;
            }
        }
    }

    payloads = 0;
    bytes = 0;
    nfree = 0;

    for (g = 0; g < z->bump; g += 1U << cls) {
        b = pd_test_block(z, g);
        cls = b->cls;
        assert_true(cls < PD_MSG_CLASSES);
        assert_true(g + (1U << cls) <= z->bump);
        assert_int_equal(b->refs, refs[g]);

        /* no reference points into the middle of a block */
        for (i = 1; i < (1U << cls); i++) {
            assert_int_equal(refs[g + i], 0);
        }

        if (b->refs > 0) {
            payloads++;
            bytes += (uint64_t) PD_MSG_GRANULE << cls;

        } else {
            nfree++;
        }
    }

    assert_int_equal(g, z->bump);
    assert_int_equal(payloads, z->payloads);
    assert_int_equal(bytes, z->bytes_used);

    listed = 0;

    for (cls = 0; cls < PD_MSG_CLASSES; cls++) {
        for (g = z->free_lists[cls]; g != PD_MSG_NIL; g = b->next) {
            assert_true(g < z->bump);
            b = pd_test_block(z, g);
            assert_int_equal(b->cls, cls);
            assert_int_equal(b->refs, 0);
            listed++;
            assert_true(listed <= nfree);
        }
    }

    assert_int_equal(listed, nfree);
    free(refs);
}


/* the whole zone is consistent: what a repair must leave too */
static void
pd_test_check(pd_msg_zone_t *z)
{
    uint32_t  i, n, a, s, nb;

    assert_int_equal(z->open_stamp, 0);

    /* the tables grow with use: the slots past a top were never used */
    assert_true(z->top <= z->max_entries);
    assert_true(z->mb_top <= z->max_mailboxes);
    assert_true(z->cur_top <= z->max_cursors);

    pd_test_check_lists(z);

    n = 0;

    for (i = 0; i <= z->mask; i++) {
        n += pd_test_chain(pd_test_buckets(z)[i], z->max_entries,
                           pd_test_entries(z), sizeof(pd_msg_entry_t),
                           offsetof(pd_msg_entry_t, hnext),
                           offsetof(pd_msg_entry_t, state), PD_MSG_USED);
    }

    assert_int_equal(n, z->nentries);
    assert_int_equal(pd_test_chain(z->free, z->max_entries,
                                   pd_test_entries(z),
                                   sizeof(pd_msg_entry_t),
                                   offsetof(pd_msg_entry_t, next),
                                   offsetof(pd_msg_entry_t, state),
                                   PD_MSG_FREE),
                     z->top - z->nentries);

    n = 0;

    for (i = 0; i <= z->mb_mask; i++) {
        n += pd_test_chain(pd_test_mb_buckets(z)[i], z->max_mailboxes,
                           pd_test_mailboxes(z), sizeof(pd_msg_mailbox_t),
                           offsetof(pd_msg_mailbox_t, next),
                           offsetof(pd_msg_mailbox_t, state), PD_MSG_USED);
    }

    assert_int_equal(n, z->nmailboxes);
    assert_int_equal(pd_test_chain(z->mb_free, z->max_mailboxes,
                                   pd_test_mailboxes(z),
                                   sizeof(pd_msg_mailbox_t),
                                   offsetof(pd_msg_mailbox_t, next),
                                   offsetof(pd_msg_mailbox_t, state),
                                   PD_MSG_FREE),
                     z->mb_top - z->nmailboxes);

    n = 0;

    for (i = 0; i <= z->cur_mask; i++) {
        n += pd_test_chain(pd_test_cur_buckets(z)[i], z->max_cursors,
                           pd_test_cursors(z), sizeof(pd_msg_cursor_t),
                           offsetof(pd_msg_cursor_t, next),
                           offsetof(pd_msg_cursor_t, state), PD_MSG_USED);
    }

    assert_int_equal(n, z->ncursors);
    assert_int_equal(pd_test_chain(z->cur_free, z->max_cursors,
                                   pd_test_cursors(z),
                                   sizeof(pd_msg_cursor_t),
                                   offsetof(pd_msg_cursor_t, next),
                                   offsetof(pd_msg_cursor_t, state),
                                   PD_MSG_FREE),
                     z->cur_top - z->ncursors);

    nb = 0;

    for (a = 0; a < PD_MSG_BCAST_APPS; a++) {
        for (s = 0; s < PD_MSG_BCAST_KEEP; s++) {
            nb += pd_test_bapps(z)[a].slots[s].state == PD_MSG_USED;
        }
    }

    assert_int_equal(nb, z->nbcasts);

    pd_test_check_area(z);
}


/* --- geometry ---------------------------------------------------------- */


static void
pd_test_geometry(void **state)
{
    void           *mem;
    size_t          size;
    pd_msg_zone_t  *z;

    (void) state;

    assert_int_equal(pd_msg_store_size(0, 1024), 0);
    assert_int_equal(pd_msg_store_size(16, 0), 0);
    assert_int_equal(pd_msg_store_size(16, PD_MSG_PAYLOAD_MAX + 1), 0);
    assert_true(pd_msg_store_size(16, PD_MSG_PAYLOAD_MAX) > 0);

    /* more entries, more bytes; a bigger payload needs a bigger area */
    assert_true(pd_msg_store_size(100000, 1024)
                > pd_msg_store_size(1000, 1024));
    assert_true(pd_msg_store_size(16, 1 << 20)
                > pd_msg_store_size(16, 1024));

    size = pd_msg_store_size(1000, 16384);
    mem = NULL;
    assert_int_equal(posix_memalign(&mem, 64, size + 64), 0);

    /* the ratio: the tables take at most half, the area the rest */
    z = pd_msg_store_init(mem, size, 16384, 1000, 1);
    assert_ptr_equal(z, mem);
    assert_true(z->max_entries >= 1000);
    assert_int_equal(z->max_mailboxes, z->max_entries / 2);
    assert_int_equal(z->max_cursors, z->max_entries / 2);
    assert_true((uint64_t) z->granules * PD_MSG_GRANULE
                >= (size - z->buckets) / 2 - 64);
    assert_true(z->area + (uint64_t) z->granules * PD_MSG_GRANULE <= size);
    assert_true((uint64_t) z->granules * PD_MSG_GRANULE >= 4 * 32768);
    assert_int_equal(z->bump, 0);
    pd_test_check(z);
    (void) pthread_mutex_destroy(&z->mutex);

    /* too small for its largest payload, misaligned, bad limits */
    errno = 0;
    assert_null(pd_msg_store_init(mem, size, PD_MSG_PAYLOAD_MAX, 1000, 1));
    assert_int_equal(errno, ENOSPC);
    errno = 0;
    assert_null(pd_msg_store_init(mem, 4096, 1024, 1000, 1));
    assert_int_equal(errno, ENOSPC);
    errno = 0;
    assert_null(pd_msg_store_init((u_char *) mem + 8, size, 1024, 1000, 1));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(pd_msg_store_init(mem, size, 0, 1000, 1));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(pd_msg_store_init(mem, size, 1024, 0, 1));
    assert_int_equal(errno, EINVAL);

    free(mem);
}


/* --- messages ---------------------------------------------------------- */


/* a walk stopped by a full output queue resumes where it stopped: in
 * store order (not seq order), nothing handed out twice or skipped */
static void
pd_test_pending_resume(void **state)
{
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;
    uint64_t         resume, order[] = { 20, 5, 30, 7, 40 };
    pd_uint_t        i;

    (void) state;

    z = pd_test_zone(256, 4096, 1000);

    for (i = 0; i < pd_nelems(order); i++) {
        assert_int_equal(pd_test_store1(z, "rita", "chat", order[i], 16,
                                        PD_TEST_LATER), PD_OK);
    }

    resume = 0;
    pd_memzero(&seen, sizeof(seen));
    seen.stop_after = 2;

    assert_int_equal(pd_msg_pending_from(z, pd_test_u("rita"),
                                         pd_test_u("chat"), PD_TEST_NOW, 0,
                                         &resume, pd_test_handler, &seen),
                     2);
    assert_true(seen.seq[0] == 20 && seen.seq[1] == 5);
    assert_true(resume != 0);

    pd_memzero(&seen, sizeof(seen));
    assert_int_equal(pd_msg_pending_from(z, pd_test_u("rita"),
                                         pd_test_u("chat"), PD_TEST_NOW, 0,
                                         &resume, pd_test_handler, &seen),
                     3);
    assert_true(seen.seq[0] == 30 && seen.seq[1] == 7 && seen.seq[2] == 40);

    /* nothing further, and a fresh walk (a new connection) sees all five,
     * each now delivered twice */
    pd_memzero(&seen, sizeof(seen));
    assert_int_equal(pd_msg_pending_from(z, pd_test_u("rita"),
                                         pd_test_u("chat"), PD_TEST_NOW, 0,
                                         &resume, pd_test_handler, &seen),
                     0);
    assert_int_equal(pd_test_pending(z, "rita", "chat", PD_TEST_NOW, 0,
                                     &seen), 5);
    assert_int_equal(pd_test_pending(z, "rita", "chat", PD_TEST_NOW, 2,
                                     &seen), 0);
    assert_int_equal(pd_test_stats(z).dropped_noack, 5);

    pd_test_zone_free(z);
}


static void
pd_test_store_order(void **state)
{
    pd_uint_t        stored, full;
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;
    pd_msg_stats_t   st;
    const char      *ab[] = { "alice", "bob", NULL };
    const char      *ca[] = { "carol", "alice", NULL };

    (void) state;

    z = pd_test_zone(256, 4096, 1000);

    /* interleaved apps and uids; seqs not in store order on purpose */
    assert_int_equal(pd_test_store1(z, "alice", "chat", 10, 5, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_store1(z, "alice", "news", 11, 300,
                                    PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_store(z, ab, "chat", 12, 0, PD_TEST_LATER + 1,
                                   &stored, &full),
                     PD_OK);
    assert_int_equal(stored, 2);
    assert_int_equal(full, 0);
    assert_int_equal(pd_test_store1(z, "bob", "chat", 13, 64, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_store(z, ca, "chat", 9, 4000, PD_TEST_LATER + 2,
                                   &stored, &full),
                     PD_OK);
    assert_int_equal(stored, 2);
    assert_int_equal(pd_test_store1(z, "alice", "news", 8, 1, PD_TEST_LATER),
                     PD_OK);

    assert_int_equal(pd_test_pending(z, "alice", "chat", PD_TEST_NOW, 0,
                                     &seen),
                     3);
    assert_int_equal(seen.seq[0], 10);
    assert_int_equal(seen.len[0], 5);
    assert_int_equal(seen.seq[1], 12);
    assert_int_equal(seen.len[1], 0);
    assert_int_equal(seen.expires[1], PD_TEST_LATER + 1);
    assert_int_equal(seen.seq[2], 9);
    assert_int_equal(seen.len[2], 4000);
    assert_int_equal(seen.expires[2], PD_TEST_LATER + 2);
    assert_int_equal(seen.bad, 0);

    assert_int_equal(pd_test_pending(z, "alice", "news", PD_TEST_NOW, 0,
                                     &seen),
                     2);
    assert_int_equal(seen.seq[0], 11);
    assert_int_equal(seen.len[0], 300);
    assert_int_equal(seen.seq[1], 8);

    assert_int_equal(pd_test_pending(z, "bob", "chat", PD_TEST_NOW, 0,
                                     &seen),
                     2);
    assert_int_equal(seen.seq[0], 12);
    assert_int_equal(seen.seq[1], 13);

    assert_int_equal(pd_test_pending(z, "carol", "chat", PD_TEST_NOW, 0,
                                     &seen),
                     1);
    assert_int_equal(seen.seq[0], 9);
    assert_int_equal(seen.bad, 0);

    /* nothing for an unknown mailbox; a pending walk removes nothing */
    assert_int_equal(pd_test_pending(z, "carol", "news", PD_TEST_NOW, 0,
                                     &seen),
                     0);
    assert_int_equal(pd_test_pending(z, "dave", "chat", PD_TEST_NOW, 0,
                                     &seen),
                     0);

    st = pd_test_stats(z);
    assert_int_equal(st.entries, 8);
    assert_int_equal(st.payloads, 6);
    assert_int_equal(st.mailboxes, 4);
    assert_int_equal(st.stored, 8);

    /* acked in any order, the rest keeps its order */
    assert_int_equal(pd_test_ack(z, "alice", 12), PD_OK);
    assert_int_equal(pd_test_pending(z, "alice", "chat", PD_TEST_NOW, 0,
                                     &seen),
                     2);
    assert_int_equal(seen.seq[0], 10);
    assert_int_equal(seen.seq[1], 9);

    /* a handler that stops: the rest is not counted as handed out */
    pd_memzero(&seen, sizeof(seen));
    seen.stop_after = 1;
    assert_int_equal(pd_msg_pending(z, pd_test_u("alice"), pd_test_u("chat"),
                                    PD_TEST_NOW, 0, pd_test_handler, &seen),
                     1);
    assert_int_equal(pd_test_entries(z)[0].deliveries, 3);

    pd_test_check(z);
    pd_test_zone_free(z);
}


static void
pd_test_bad_arguments(void **state)
{
    char             big[PD_UID_MAX + 2];
    u_char           data[1024];
    pd_uint_t        stored, full;
    pd_msg_addr_t    to[2];
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;

    (void) state;

    z = pd_test_zone(64, 1024, 1000);
    memset(big, 'u', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pd_memzero(data, sizeof(data));

    to[0].uid = (const u_char *) "ok";
    to[0].len = 2;
    to[1].uid = (const u_char *) big;
    to[1].len = PD_UID_MAX + 1;

    /* one bad uid fails the call before anything is stored */
    assert_int_equal(pd_msg_store(z, to, 2, pd_test_u("app"), 1, data, 8,
                                  PD_TEST_LATER, &stored, &full),
                     PD_ERROR);
    to[1].len = 0;
    assert_int_equal(pd_msg_store(z, to, 2, pd_test_u("app"), 1, data, 8,
                                  PD_TEST_LATER, &stored, &full),
                     PD_ERROR);
    assert_int_equal(pd_msg_store(z, to, 1, (const u_char *) "", 0, 1, data,
                                  8, PD_TEST_LATER, &stored, &full),
                     PD_ERROR);
    assert_int_equal(pd_msg_store(z, to, 1, pd_test_u(big), 1, data, 8,
                                  PD_TEST_LATER, &stored, &full),
                     PD_ERROR);
    assert_int_equal(pd_msg_store(z, to, 1, pd_test_u("app"), 1, data, 1025,
                                  PD_TEST_LATER, &stored, &full),
                     PD_ERROR);
    assert_int_equal(pd_test_stats(z).entries, 0);

    /* the longest uid and app are fine; n == 0 stores nothing */
    to[1].len = PD_UID_MAX;
    assert_int_equal(pd_msg_store(z, to, 2, (const u_char *) big,
                                  PD_APP_MAX, 1, data, 1024,
                                  PD_TEST_LATER, &stored, &full),
                     PD_OK);
    assert_int_equal(stored, 2);
    assert_int_equal(pd_msg_store(z, to, 0, pd_test_u("app"), 2, data, 8,
                                  PD_TEST_LATER, &stored, &full),
                     PD_OK);
    assert_int_equal(stored, 0);
    pd_memzero(&seen, sizeof(seen));
    assert_int_equal(pd_msg_pending(z, (const u_char *) big, PD_UID_MAX,
                                    (const u_char *) big, PD_APP_MAX,
                                    PD_TEST_NOW, 0, pd_test_handler, &seen),
                     1);

    assert_int_equal(pd_msg_pending(z, (const u_char *) big,
                                    PD_UID_MAX + 1, pd_test_u("app"),
                                    PD_TEST_NOW, 0, pd_test_handler, &seen),
                     PD_ERROR);
    assert_int_equal(pd_msg_pending(z, pd_test_u("ok"), NULL, 0,
                                    PD_TEST_NOW, 0, pd_test_handler, &seen),
                     PD_ERROR);
    assert_int_equal(pd_msg_ack(z, (const u_char *) "", 0, 1), PD_DECLINED);
    assert_int_equal(pd_msg_delivered(z, (const u_char *) "", 0, 1, 0),
                     PD_DECLINED);
    assert_int_equal(pd_msg_cursor_set(z, pd_test_u("ok"),
                                       (const u_char *) "", 0, 5),
                     PD_ERROR);
    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("ok"), NULL, 0), 0);
    assert_int_equal(pd_msg_bcast_store(z, (const u_char *) "", 0, 1, data,
                                        8, PD_TEST_LATER),
                     PD_ERROR);
    assert_int_equal(pd_msg_bcast_store(z, pd_test_u("app"), 1, data, 2000,
                                        PD_TEST_LATER),
                     PD_ERROR);

    pd_test_check(z);
    pd_test_zone_free(z);
}


static void
pd_test_multicast_shared(void **state)
{
    uint64_t         used;
    pd_uint_t        i, stored, full;
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;
    pd_msg_stats_t   st;
    const char      *uids[] = { "u1", "u2", "u3", "u4", "u5", NULL };

    (void) state;

    z = pd_test_zone(64, 4096, 1000);

    assert_int_equal(pd_test_store(z, uids, "app", 77, 1000, PD_TEST_LATER,
                                   &stored, &full),
                     PD_OK);
    assert_int_equal(stored, 5);
    assert_int_equal(full, 0);

    st = pd_test_stats(z);
    assert_int_equal(st.entries, 5);
    assert_int_equal(st.payloads, 1);
    assert_int_equal(st.mailboxes, 5);
    assert_int_equal(st.bytes_used, 1024);    /* 1000 + 16: one 1 KB block */
    used = st.bytes_used;

    for (i = 0; i < 5; i++) {
        assert_int_equal(pd_test_pending(z, uids[i], "app", PD_TEST_NOW, 0,
                                         &seen),
                         1);
        assert_int_equal(seen.seq[0], 77);
        assert_int_equal(seen.len[0], 1000);
        assert_int_equal(seen.bad, 0);
    }

    /* the payload stays until its last entry goes */
    for (i = 0; i < 4; i++) {
        assert_int_equal(pd_test_ack(z, uids[i], 77), PD_OK);
        st = pd_test_stats(z);
        assert_int_equal(st.entries, 4 - i);
        assert_int_equal(st.payloads, 1);
        assert_int_equal(st.bytes_used, used);
        pd_test_check(z);
    }

    assert_int_equal(pd_test_pending(z, "u5", "app", PD_TEST_NOW, 0, &seen),
                     1);
    assert_int_equal(seen.bad, 0);

    assert_int_equal(pd_test_ack(z, "u5", 77), PD_OK);
    st = pd_test_stats(z);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.payloads, 0);
    assert_int_equal(st.bytes_used, 0);
    assert_int_equal(st.mailboxes, 0);
    assert_int_equal(st.acked, 5);
    pd_test_check(z);

    /* a retry of the same seq stores each uid once */
    assert_int_equal(pd_test_store(z, uids, "app", 78, 10, PD_TEST_LATER,
                                   &stored, &full),
                     PD_OK);
    assert_int_equal(pd_test_store(z, uids, "app", 78, 10, PD_TEST_LATER,
                                   &stored, &full),
                     PD_OK);
    assert_int_equal(stored, 5);
    st = pd_test_stats(z);
    assert_int_equal(st.entries, 5);
    assert_int_equal(st.payloads, 1);
    assert_int_equal(st.stored, 10);
    pd_test_check(z);

    pd_test_zone_free(z);
}


static void
pd_test_ack_own(void **state)
{
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;

    (void) state;

    z = pd_test_zone(64, 1024, 1000);

    assert_int_equal(pd_test_store1(z, "alice", "chat", 5, 10, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_store1(z, "alice", "news", 6, 10, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_store1(z, "bob", "chat", 7, 10, PD_TEST_LATER),
                     PD_OK);

    /* a client acks only its own messages */
    assert_int_equal(pd_test_ack(z, "mallory", 5), PD_DECLINED);
    assert_int_equal(pd_test_ack(z, "bob", 5), PD_DECLINED);
    assert_int_equal(pd_test_ack(z, "alic", 5), PD_DECLINED);
    assert_int_equal(pd_test_ack(z, "alice", 99), PD_DECLINED);
    assert_int_equal(pd_test_stats(z).entries, 3);
    assert_int_equal(pd_test_stats(z).acked, 0);

    /* whatever the app */
    assert_int_equal(pd_test_ack(z, "alice", 6), PD_OK);
    assert_int_equal(pd_test_ack(z, "alice", 6), PD_DECLINED);
    assert_int_equal(pd_test_pending(z, "alice", "news", PD_TEST_NOW, 0,
                                     &seen),
                     0);
    assert_int_equal(pd_test_pending(z, "alice", "chat", PD_TEST_NOW, 0,
                                     &seen),
                     1);
    assert_int_equal(seen.seq[0], 5);

    assert_int_equal(pd_test_ack(z, "alice", 5), PD_OK);
    assert_int_equal(pd_test_ack(z, "bob", 7), PD_OK);
    assert_int_equal(pd_test_stats(z).entries, 0);
    assert_int_equal(pd_test_stats(z).payloads, 0);
    assert_int_equal(pd_test_stats(z).acked, 3);

    pd_test_check(z);
    pd_test_zone_free(z);
}


/* stores seq to the NULL-ended uids with a collapse key (NULL: none) */
static pd_int_t
pd_test_store_key(pd_msg_zone_t *z, const char **uids, const char *app,
    const char *key, uint64_t seq, pd_uint_t *stored, pd_uint_t *full)
{
    u_char          buf[16];
    pd_uint_t       n;
    pd_msg_addr_t   to[8];

    for (n = 0; uids[n] != NULL; n++) {
        to[n].uid = (const u_char *) uids[n];
        to[n].len = strlen(uids[n]);
    }

    pd_test_fill(buf, seq, sizeof(buf));

    return pd_msg_store_collapse(z, to, n, pd_test_u(app),
                                 (const u_char *) key, key ? strlen(key) : 0,
                                 seq, buf, sizeof(buf), PD_TEST_LATER, stored,
                                 full);
}


static void
pd_test_collapse(void **state)
{
    static const char  *both[] = { "ann", "bo", NULL };
    static const char  *ann[] = { "ann", NULL };
    pd_test_seen_t      seen;
    pd_msg_zone_t      *z;
    pd_uint_t           stored, full;

    (void) state;

    z = pd_test_zone(64, 1024, 3);

    /* three versions to two uids: each keeps the third only */
    assert_int_equal(pd_test_store_key(z, both, "news", "inbox", 1, &stored,
                                       &full), PD_OK);
    assert_int_equal(pd_test_store_key(z, both, "news", "inbox", 2, &stored,
                                       &full), PD_OK);
    assert_int_equal(pd_test_store_key(z, both, "news", "inbox", 3, &stored,
                                       &full), PD_OK);
    assert_int_equal(stored, 2);
    assert_int_equal(full, 0);

    /* another key, another app, no key: left alone */
    assert_int_equal(pd_test_store_key(z, ann, "news", "likes", 4, &stored,
                                       &full), PD_OK);
    assert_int_equal(pd_test_store_key(z, ann, "chat", "inbox", 5, &stored,
                                       &full), PD_OK);
    assert_int_equal(pd_test_store_key(z, ann, "news", NULL, 6, &stored,
                                       &full), PD_OK);
    assert_int_equal(stored, 1);

    assert_int_equal(pd_test_pending(z, "ann", "news", PD_TEST_NOW, 0,
                                     &seen), 3);
    assert_int_equal(seen.seq[0], 3);
    assert_int_equal(seen.seq[1], 4);
    assert_int_equal(seen.seq[2], 6);
    assert_int_equal(seen.bad, 0);
    assert_int_equal(pd_test_pending(z, "bo", "news", PD_TEST_NOW, 0,
                                     &seen), 1);
    assert_int_equal(seen.seq[0], 3);
    assert_int_equal(pd_test_stats(z).collapsed, 4);
    /* the replaced versions' payloads went with their last entries */
    assert_int_equal(pd_test_stats(z).payloads, 4);

    /* ann's news mailbox is full (3): a plain message is refused, a
     * version of a key it holds replaces the older one */
    assert_int_equal(pd_test_store_key(z, ann, "news", NULL, 7, &stored,
                                       &full), PD_OK);
    assert_int_equal(full, 1);
    assert_int_equal(pd_test_store_key(z, ann, "news", "likes", 8, &stored,
                                       &full), PD_OK);
    assert_int_equal(stored, 1);
    assert_int_equal(pd_test_pending(z, "ann", "news", PD_TEST_NOW, 0,
                                     &seen), 3);
    assert_int_equal(seen.seq[0], 3);
    assert_int_equal(seen.seq[1], 6);
    assert_int_equal(seen.seq[2], 8);

    /* a retry of the newest changes nothing; an acked key is just gone */
    assert_int_equal(pd_test_store_key(z, both, "news", "inbox", 3, &stored,
                                       &full), PD_OK);
    assert_int_equal(stored, 2);
    assert_int_equal(pd_test_ack(z, "bo", 3), PD_OK);
    assert_int_equal(pd_test_store_key(z, both, "news", "inbox", 9, &stored,
                                       &full), PD_OK);
    assert_int_equal(pd_test_pending(z, "bo", "news", PD_TEST_NOW, 0,
                                     &seen), 1);
    assert_int_equal(seen.seq[0], 9);

    /* a key longer than PD_COLLAPSE_MAX is a bad argument */
    assert_int_equal(pd_test_store_key(z, ann, "news",
                                       "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
                                       "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
                                       10, &stored, &full),
                     PD_ERROR);

    pd_test_check(z);
    pd_test_zone_free(z);
}


static void
pd_test_max_deliveries(void **state)
{
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;
    pd_msg_stats_t   st;

    (void) state;

    z = pd_test_zone(64, 1024, 1000);

    assert_int_equal(pd_test_store1(z, "u", "a", 1, 10, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_store1(z, "u", "a", 2, 10, PD_TEST_LATER),
                     PD_OK);

    /* three reloads hand both out; the fourth drops them, never acked */
    assert_int_equal(pd_test_pending(z, "u", "a", PD_TEST_NOW, 3, &seen), 2);
    assert_int_equal(pd_test_pending(z, "u", "a", PD_TEST_NOW, 3, &seen), 2);
    assert_int_equal(pd_test_ack(z, "u", 2), PD_OK);
    assert_int_equal(pd_test_store1(z, "u", "a", 3, 10, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_pending(z, "u", "a", PD_TEST_NOW, 3, &seen), 2);
    assert_int_equal(pd_test_pending(z, "u", "a", PD_TEST_NOW, 3, &seen), 1);
    assert_int_equal(seen.seq[0], 3);

    st = pd_test_stats(z);
    assert_int_equal(st.dropped_noack, 1);
    assert_int_equal(st.entries, 1);
    assert_int_equal(pd_test_ack(z, "u", 1), PD_DECLINED);

    /* 0: no limit */
    assert_int_equal(pd_test_pending(z, "u", "a", PD_TEST_NOW, 0, &seen), 1);
    assert_int_equal(pd_test_pending(z, "u", "a", PD_TEST_NOW, 0, &seen), 1);
    assert_int_equal(pd_test_pending(z, "u", "a", PD_TEST_NOW, 4, &seen), 0);
    st = pd_test_stats(z);
    assert_int_equal(st.dropped_noack, 2);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.mailboxes, 0);
    assert_int_equal(st.payloads, 0);

    pd_test_check(z);
    pd_test_zone_free(z);
}


static void
pd_test_delivered(void **state)
{
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;

    (void) state;

    z = pd_test_zone(64, 1024, 1000);

    assert_int_equal(pd_test_store1(z, "u", "a", 1, 10, PD_TEST_LATER),
                     PD_OK);

    assert_int_equal(pd_msg_delivered(z, pd_test_u("u"), 1, 2), PD_OK);
    assert_int_equal(pd_msg_delivered(z, pd_test_u("v"), 1, 2), PD_DECLINED);
    assert_int_equal(pd_msg_delivered(z, pd_test_u("u"), 9, 2), PD_DECLINED);

    /* a live send and a reload make two: the third is not sent */
    assert_int_equal(pd_test_pending(z, "u", "a", PD_TEST_NOW, 2, &seen), 1);
    assert_int_equal(pd_msg_delivered(z, pd_test_u("u"), 1, 2), PD_ABORT);
    assert_int_equal(pd_test_stats(z).dropped_noack, 1);
    assert_int_equal(pd_test_stats(z).entries, 0);
    assert_int_equal(pd_msg_delivered(z, pd_test_u("u"), 1, 2), PD_DECLINED);

    /* and the other way round: delivered counts against pending's limit */
    assert_int_equal(pd_test_store1(z, "u", "a", 2, 10, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_msg_delivered(z, pd_test_u("u"), 2, 0), PD_OK);
    assert_int_equal(pd_msg_delivered(z, pd_test_u("u"), 2, 0), PD_OK);
    assert_int_equal(pd_test_pending(z, "u", "a", PD_TEST_NOW, 2, &seen), 0);
    assert_int_equal(pd_test_stats(z).dropped_noack, 2);
    assert_int_equal(pd_msg_delivered(z, pd_test_u("u"), 2, 0), PD_DECLINED);

    pd_test_check(z);
    pd_test_zone_free(z);
}


static void
pd_test_expiry(void **state)
{
    uint32_t         i;
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;
    pd_msg_stats_t   st;

    (void) state;

    z = pd_test_zone(64, 1024, 1000);

    assert_int_equal(pd_test_store1(z, "u", "a", 1, 10, 1000), PD_OK);
    assert_int_equal(pd_test_store1(z, "u", "a", 2, 10, 2000), PD_OK);
    assert_int_equal(pd_test_store1(z, "u", "a", 3, 10, 3000), PD_OK);
    assert_int_equal(pd_test_store1(z, "v", "a", 4, 10, 1500), PD_OK);

    /* in pending: what expired goes, counted */
    assert_int_equal(pd_test_pending(z, "u", "a", 1000, 0, &seen), 2);
    assert_int_equal(seen.seq[0], 2);
    assert_int_equal(seen.seq[1], 3);
    st = pd_test_stats(z);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.entries, 3);

    /* in the sweep */
    assert_int_equal(pd_msg_expire(z, 1999, z->max_entries), 1);
    assert_int_equal(pd_test_pending(z, "v", "a", 1000, 0, &seen), 0);
    assert_int_equal(pd_msg_expire(z, 2500, z->max_entries), 1);
    st = pd_test_stats(z);
    assert_int_equal(st.expired, 3);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.mailboxes, 1);
    assert_int_equal(pd_test_ack(z, "u", 2), PD_DECLINED);
    assert_int_equal(pd_test_ack(z, "u", 3), PD_OK);
    pd_test_check(z);

    /* bounded: a clock hand, max_scan slots a call */
    for (i = 0; i < 20; i++) {
        assert_int_equal(pd_test_store1(z, "w", "a", 100 + i, 10, 5000),
                         PD_OK);
    }

    assert_int_equal(pd_msg_expire(z, 5000, 0), 0);
    z->hand = 0;
    assert_int_equal(pd_msg_expire(z, 5000, 7), 7);
    assert_int_equal(z->hand, 7);
    assert_int_equal(pd_msg_expire(z, 5000, 7), 7);
    assert_int_equal(pd_msg_expire(z, 4999, 7), 0);
    assert_int_equal(pd_msg_expire(z, 5000, z->max_entries), 6);
    assert_int_equal(pd_test_stats(z).entries, 0);
    assert_int_equal(pd_test_stats(z).expired, 23);

    /* the hand wraps at the top: the slots past it were never used */
    assert_true(z->top >= 20 && z->top < z->max_entries);
    z->hand = z->top - 1;
    assert_int_equal(pd_msg_expire(z, 5000, 3), 0);
    assert_int_equal(z->hand, 2);
    z->hand = z->max_entries - 1;
    assert_int_equal(pd_msg_expire(z, 5000, 3), 0);
    assert_int_equal(z->hand, 3);

    pd_test_check(z);
    pd_test_zone_free(z);
}


static void
pd_test_entries_full(void **state)
{
    uint32_t         i, max;
    pd_uint_t        stored, full;
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;
    pd_msg_stats_t   before, after;
    const char      *three[] = { "u0", "u1", "new", NULL };
    const char      *two[] = { "u0", "u1", NULL };

    (void) state;

    z = pd_test_zone(64, 1024, 100000);
    max = z->max_entries;

    /* two mailboxes take all but two entries */
    for (i = 0; i < max - 2; i++) {
        assert_int_equal(pd_test_store1(z, (i & 1) ? "u1" : "u0", "a",
                                        1 + i, 16, PD_TEST_LATER),
                         PD_OK);
    }

    before = pd_test_stats(z);
    assert_int_equal(before.entries, max - 2);

    /* three entries needed, two free: all or nothing */
    assert_int_equal(pd_test_store(z, three, "a", 5000, 16, PD_TEST_LATER,
                                   &stored, &full),
                     PD_BUSY);
    assert_int_equal(stored, 0);
    after = pd_test_stats(z);
    assert_int_equal(after.entries, before.entries);
    assert_int_equal(after.payloads, before.payloads);
    assert_int_equal(after.mailboxes, before.mailboxes);
    assert_int_equal(after.bytes_used, before.bytes_used);
    assert_int_equal(after.stored, before.stored);
    assert_int_equal(after.refused_busy, 1);
    assert_int_equal(pd_test_pending(z, "new", "a", PD_TEST_NOW, 0, &seen),
                     0);
    assert_int_equal(pd_test_ack(z, "u0", 5000), PD_DECLINED);
    assert_int_equal(pd_test_ack(z, "u1", 5000), PD_DECLINED);
    pd_test_check(z);

    /* exactly enough */
    assert_int_equal(pd_test_store(z, two, "a", 5001, 16, PD_TEST_LATER,
                                   &stored, &full),
                     PD_OK);
    assert_int_equal(stored, 2);
    assert_int_equal(pd_test_store1(z, "u0", "a", 5002, 16, PD_TEST_LATER),
                     PD_BUSY);

    /* an ack makes room */
    assert_int_equal(pd_test_ack(z, "u0", 1), PD_OK);
    assert_int_equal(pd_test_store1(z, "u0", "a", 5002, 16, PD_TEST_LATER),
                     PD_OK);
    /* u0 had the even ones, then 5001; lost 1, gained 5002 */
    assert_int_equal(pd_test_pending(z, "u0", "a", PD_TEST_NOW, 0, &seen),
                     (max - 1) / 2 + 1);
    assert_int_equal(seen.seq[0], 3);
    assert_int_equal(seen.seq[(max - 1) / 2], 5002);

    pd_test_check(z);
    pd_test_zone_free(z);
}


static void
pd_test_mailboxes_full(void **state)
{
    char             uid[16];
    uint32_t         i;
    pd_uint_t        stored, full;
    pd_msg_zone_t   *z;
    pd_msg_stats_t   st;
    const char      *mixed[] = { "m0", "other", NULL };

    (void) state;

    z = pd_test_zone(64, 1024, 1000);

    for (i = 0; i < z->max_mailboxes; i++) {
        (void) snprintf(uid, sizeof(uid), "m%u", i);
        assert_int_equal(pd_test_store1(z, uid, "a", 1 + i, 16,
                                        PD_TEST_LATER),
                         PD_OK);
    }

    assert_int_equal(pd_test_store1(z, "other", "a", 100, 16, PD_TEST_LATER),
                     PD_BUSY);

    /* one uid needs a mailbox: the call stores nothing, not even m0's */
    assert_int_equal(pd_test_store(z, mixed, "a", 101, 16, PD_TEST_LATER,
                                   &stored, &full),
                     PD_BUSY);
    assert_int_equal(pd_test_ack(z, "m0", 101), PD_DECLINED);

    /* an existing mailbox takes more */
    assert_int_equal(pd_test_store1(z, "m0", "a", 102, 16, PD_TEST_LATER),
                     PD_OK);
    st = pd_test_stats(z);
    assert_int_equal(st.mailboxes, z->max_mailboxes);
    assert_int_equal(st.entries, z->max_mailboxes + 1);
    assert_int_equal(st.refused_busy, 2);

    pd_test_check(z);
    pd_test_zone_free(z);
}


static void
pd_test_payload_full(void **state)
{
    char             uid[16];
    uint32_t         i, big, small;
    pd_msg_zone_t   *z;
    pd_msg_stats_t   before, after;

    (void) state;

    z = pd_test_zone(1024, 16384, 1000);

    /* 16 KB + the header: 32 KB blocks, at least four of them */
    for (big = 0; big < 1000; big++) {
        (void) snprintf(uid, sizeof(uid), "big%u", big);

        if (pd_test_store1(z, uid, "a", 1 + big, 16384, PD_TEST_LATER)
            != PD_OK)
        {
            break;
        }
    }

    assert_true(big >= 4);
    assert_true(big < z->max_mailboxes);

    before = pd_test_stats(z);
    assert_int_equal(before.bytes_used, (uint64_t) big * 32768);
    assert_true(before.bytes_capacity - before.bytes_used < 32768);
    assert_int_equal(before.refused_busy, 1);
    assert_int_equal(pd_test_store1(z, "late", "a", 5000, 16384,
                                     PD_TEST_LATER),
                     PD_BUSY);
    after = pd_test_stats(z);
    assert_int_equal(after.entries, before.entries);
    assert_int_equal(after.payloads, before.payloads);
    assert_int_equal(after.mailboxes, before.mailboxes);
    assert_int_equal(after.refused_busy, 2);
    pd_test_check(z);

    /* a freed block is reused for the same class */
    assert_int_equal(pd_test_ack(z, "big0", 1), PD_OK);
    assert_int_equal(pd_test_store1(z, "late", "a", 5000, 16384,
                                    PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_stats(z).bytes_used, (uint64_t) big * 32768);

    /* and split for small ones once the bump has no room */
    assert_int_equal(pd_test_ack(z, "big1", 2), PD_OK);

    for (small = 0; small < 1000; small++) {
        (void) snprintf(uid, sizeof(uid), "s%u", small % 8);

        if (pd_test_store1(z, uid, "b", 10000 + small, 100, PD_TEST_LATER)
            != PD_OK)
        {
            break;
        }
    }

    /* 32 KB of 128-byte blocks, and what was left at the bump */
    assert_true(small >= 256);
    pd_test_check(z);

    for (i = 0; i < small; i++) {
        (void) snprintf(uid, sizeof(uid), "s%u", i % 8);
        assert_int_equal(pd_test_ack(z, uid, 10000 + i), PD_OK);
    }

    assert_int_equal(pd_test_stats(z).bytes_used,
                     (uint64_t) (big - 1) * 32768);
    pd_test_check(z);
    pd_test_zone_free(z);
}


static void
pd_test_mailbox_full(void **state)
{
    uint32_t         i;
    pd_uint_t        stored, full;
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;
    pd_msg_stats_t   st;
    const char      *ab[] = { "alice", "bob", NULL };
    const char      *alice[] = { "alice", NULL };

    (void) state;

    z = pd_test_zone(64, 1024, 3);

    for (i = 0; i < 3; i++) {
        assert_int_equal(pd_test_store1(z, "alice", "x", 1 + i, 8,
                                        PD_TEST_LATER),
                         PD_OK);
    }

    /* a retry to a full mailbox that holds seq: stored, not full */
    assert_int_equal(pd_test_store(z, alice, "x", 3, 8, PD_TEST_LATER - 1,
                                   &stored, &full),
                     PD_OK);
    assert_int_equal(stored, 1);
    assert_int_equal(full, 0);
    assert_int_equal(pd_test_stats(z).refused_full, 0);
    assert_int_equal(pd_test_stats(z).stored, 3);

    assert_int_equal(pd_test_store(z, ab, "x", 4, 8, PD_TEST_LATER, &stored,
                                   &full),
                     PD_OK);
    assert_int_equal(stored, 1);
    assert_int_equal(full, 1);

    assert_int_equal(pd_test_store(z, ab, "x", 5, 8, PD_TEST_LATER,
                                   &stored, &full),
                     PD_OK);
    assert_int_equal(stored, 1);
    assert_int_equal(full, 1);

    /* full alone: nothing stored, no payload taken */
    ab[1] = NULL;
    assert_int_equal(pd_test_store(z, ab, "x", 6, 8, PD_TEST_LATER, &stored,
                                   &full),
                     PD_OK);
    assert_int_equal(stored, 0);
    assert_int_equal(full, 1);

    /* the bound is per (uid, app) */
    assert_int_equal(pd_test_store1(z, "alice", "y", 7, 8, PD_TEST_LATER),
                     PD_OK);

    st = pd_test_stats(z);
    assert_int_equal(st.refused_full, 3);
    assert_int_equal(st.entries, 3 + 2 + 1);
    assert_int_equal(st.payloads, 3 + 2 + 1);

    assert_int_equal(pd_test_pending(z, "alice", "x", PD_TEST_NOW, 0, &seen),
                     3);
    assert_int_equal(seen.seq[0], 1);
    assert_int_equal(seen.seq[2], 3);
    assert_int_equal(pd_test_pending(z, "bob", "x", PD_TEST_NOW, 0, &seen),
                     2);
    assert_int_equal(seen.seq[0], 4);
    assert_int_equal(seen.seq[1], 5);

    /* an ack makes room again */
    assert_int_equal(pd_test_ack(z, "alice", 2), PD_OK);
    assert_int_equal(pd_test_store1(z, "alice", "x", 8, 8, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_stats(z).refused_full, 3);

    pd_test_check(z);
    pd_test_zone_free(z);
}


/* --- ids --------------------------------------------------------------- */


#define PD_TEST_SEQS  20000

static int
pd_test_cmp_u64(const void *a, const void *b)
{
    uint64_t  x, y;

    x = *(const uint64_t *) a;
    y = *(const uint64_t *) b;

    return (x > y) - (x < y);
}


static void
pd_test_seq(void **state)
{
    int              status;
    pid_t            pids[2];
    size_t           size;
    uint64_t        *out, last, s, now;
    uint32_t         i, c;
    struct timespec  ts;
    pd_msg_zone_t   *z;

    (void) state;

    assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
    now = (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

    z = pd_test_shared_zone(64, 1024, 1000,
                            2 * PD_TEST_SEQS * sizeof(uint64_t), &size);
    out = (uint64_t *) ((u_char *) z + size);

    /* from the wall clock: above what a zone formatted earlier handed */
    last = pd_msg_next_seq(z);
    assert_true(last > (now - 1000) << 12);
    assert_true(last < (now + 60000) << 12);

    for (i = 0; i < 1000; i++) {
        s = pd_msg_next_seq(z);
        assert_true(s > last);
        last = s;
    }

    /* two processes: each sees its ids increase, and none is shared */
    for (c = 0; c < 2; c++) {
        pids[c] = fork();
        assert_true(pids[c] != -1);

        if (pids[c] == 0) {
            for (i = 0; i < PD_TEST_SEQS; i++) {
                out[c * PD_TEST_SEQS + i] = pd_msg_next_seq(z);

                if (i > 0 && out[c * PD_TEST_SEQS + i]
                             <= out[c * PD_TEST_SEQS + i - 1])
                {
                    _exit(1);
                }
            }

            _exit(0);
        }
    }

    for (c = 0; c < 2; c++) {
        assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }

    qsort(out, 2 * PD_TEST_SEQS, sizeof(uint64_t), pd_test_cmp_u64);
    assert_true(out[0] > last);

    for (i = 1; i < 2 * PD_TEST_SEQS; i++) {
        assert_true(out[i] > out[i - 1]);
    }

    /* no id skipped either: one counter */
    assert_int_equal(out[2 * PD_TEST_SEQS - 1] - out[0],
                     2 * PD_TEST_SEQS - 1);
    assert_true(pd_msg_next_seq(z) > out[2 * PD_TEST_SEQS - 1]);

    assert_int_equal(munmap(z, size + 2 * PD_TEST_SEQS * sizeof(uint64_t)),
                     0);
}


/* --- broadcasts and cursors -------------------------------------------- */


static pd_int_t
pd_test_bcast(pd_msg_zone_t *z, const char *app, uint64_t seq, size_t len,
    uint64_t expires)
{
    u_char    buf[1024];
    pd_int_t  rc;

    assert_true(len <= sizeof(buf));
    pd_test_fill(buf, seq, len);
    rc = pd_msg_bcast_store(z, pd_test_u(app), seq, buf, len, expires);

    return rc;
}


static pd_int_t
pd_test_bcast_pending(pd_msg_zone_t *z, const char *app, uint64_t after,
    uint64_t now, pd_test_seen_t *seen)
{
    pd_memzero(seen, sizeof(pd_test_seen_t));

    return pd_msg_bcast_pending(z, pd_test_u(app), after, now,
                                pd_test_handler, seen);
}


static void
pd_test_bcast_retention(void **state)
{
    char             app[16];
    uint32_t         i;
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;
    pd_msg_stats_t   st;

    (void) state;

    z = pd_test_zone(64, 1024, 1000);

    assert_int_equal(pd_test_bcast_pending(z, "news", 0, 0, &seen), 0);

    /* handed out by seq, whatever the store order */
    assert_int_equal(pd_test_bcast(z, "news", 10, 100, 5000), PD_OK);
    assert_int_equal(pd_test_bcast(z, "news", 30, 300, 9000), PD_OK);
    assert_int_equal(pd_test_bcast(z, "news", 20, 200, 3000), PD_OK);
    assert_int_equal(pd_test_bcast(z, "sport", 15, 10, 9000), PD_OK);
    assert_int_equal(pd_test_bcast(z, "news", 20, 200, 3000), PD_OK);
    assert_int_equal(pd_test_stats(z).broadcasts, 4);

    assert_int_equal(pd_test_bcast_pending(z, "news", 0, 1000, &seen), 3);
    assert_int_equal(seen.seq[0], 10);
    assert_int_equal(seen.len[0], 100);
    assert_int_equal(seen.seq[1], 20);
    assert_int_equal(seen.expires[1], 3000);
    assert_int_equal(seen.seq[2], 30);
    assert_int_equal(seen.len[2], 300);
    assert_int_equal(seen.bad, 0);

    assert_int_equal(pd_test_bcast_pending(z, "news", 15, 1000, &seen), 2);
    assert_int_equal(seen.seq[0], 20);
    assert_int_equal(pd_test_bcast_pending(z, "news", 30, 1000, &seen), 0);
    assert_int_equal(pd_test_bcast_pending(z, "sport", 0, 1000, &seen), 1);
    assert_int_equal(seen.seq[0], 15);

    /* a stopping handler */
    pd_memzero(&seen, sizeof(seen));
    seen.stop_after = 2;
    assert_int_equal(pd_msg_bcast_pending(z, pd_test_u("news"), 0, 1000,
                                          pd_test_handler, &seen),
                     2);

    /* expired ones are not handed out, and go */
    assert_int_equal(pd_test_bcast_pending(z, "news", 0, 3000, &seen), 2);
    assert_int_equal(seen.seq[0], 10);
    assert_int_equal(seen.seq[1], 30);
    st = pd_test_stats(z);
    assert_int_equal(st.broadcasts, 3);
    assert_int_equal(st.bcast_expired, 1);
    assert_int_equal(pd_msg_expire(z, 5000, 16), 0);
    assert_int_equal(pd_test_stats(z).broadcasts, 2);
    pd_test_check(z);

    /* the last PD_MSG_BCAST_KEEP by seq */
    for (i = 0; i < PD_MSG_BCAST_KEEP + 3; i++) {
        assert_int_equal(pd_test_bcast(z, "ring", 100 + i, 8, 9000), PD_OK);
    }

    assert_int_equal(pd_test_bcast(z, "ring", 50, 8, 9000), PD_DECLINED);
    assert_int_equal(pd_test_bcast_pending(z, "ring", 0, 1000, &seen),
                     PD_MSG_BCAST_KEEP);
    assert_int_equal(seen.seq[0], 103);
    assert_int_equal(seen.seq[PD_MSG_BCAST_KEEP - 1],
                     100 + PD_MSG_BCAST_KEEP + 2);
    pd_test_check(z);

    /* a bounded number of apps, freed as their broadcasts go */
    for (i = 0; i < PD_MSG_BCAST_APPS; i++) {
        (void) snprintf(app, sizeof(app), "app%u", i);

        if (pd_test_bcast(z, app, 1, 8, 20000) != PD_OK) {
            break;
        }
    }

    /* news, sport and ring hold the others */
    assert_int_equal(i, PD_MSG_BCAST_APPS - 3);
    assert_int_equal(pd_test_bcast(z, "late", 1, 8, 20000), PD_BUSY);
    assert_int_equal(pd_msg_expire(z, 9000, 16), 0);
    assert_int_equal(pd_test_bcast(z, "late", 1, 8, 20000), PD_OK);
    assert_int_equal(pd_test_bcast(z, "later", 1, 8, 20000), PD_OK);
    assert_int_equal(pd_test_bcast(z, "latest", 1, 8, 20000), PD_OK);
    assert_int_equal(pd_test_bcast(z, "last", 1, 8, 20000), PD_BUSY);

    st = pd_test_stats(z);
    assert_int_equal(st.broadcasts, PD_MSG_BCAST_APPS);
    assert_int_equal(st.payloads, PD_MSG_BCAST_APPS);

    pd_test_check(z);
    pd_test_zone_free(z);
}


static void
pd_test_cursor_table(void **state)
{
    char             uid[16];
    uint32_t         i, max;
    pd_msg_zone_t   *z;
    pd_msg_stats_t   st;

    (void) state;

    z = pd_test_zone(64, 1024, 1000);

    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("u"), pd_test_u("a")),
                     0);
    assert_int_equal(pd_msg_cursor_set(z, pd_test_u("u"), pd_test_u("a"), 5),
                     PD_OK);
    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("u"), pd_test_u("a")),
                     5);

    /* monotonic */
    assert_int_equal(pd_msg_cursor_set(z, pd_test_u("u"), pd_test_u("a"), 3),
                     PD_OK);
    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("u"), pd_test_u("a")),
                     5);
    assert_int_equal(pd_msg_cursor_set(z, pd_test_u("u"), pd_test_u("a"), 9),
                     PD_OK);
    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("u"), pd_test_u("a")),
                     9);

    /* one per (uid, app) */
    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("u"), pd_test_u("b")),
                     0);
    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("v"), pd_test_u("a")),
                     0);
    assert_int_equal(pd_msg_cursor_set(z, pd_test_u("u"), pd_test_u("b"), 2),
                     PD_OK);
    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("u"), pd_test_u("b")),
                     2);
    assert_int_equal(pd_test_stats(z).cursors, 2);

    /* full: the oldest slots go first; the table never grows */
    max = z->max_cursors;

    for (i = 0; i < max + 3; i++) {
        (void) snprintf(uid, sizeof(uid), "c%u", i);
        assert_int_equal(pd_msg_cursor_set(z, pd_test_u(uid),
                                           pd_test_u("a"), 100 + i),
                         PD_OK);
    }

    st = pd_test_stats(z);
    assert_int_equal(st.cursors, max);
    assert_int_equal(st.cursors_evicted, 5);
    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("u"), pd_test_u("a")),
                     0);
    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("u"), pd_test_u("b")),
                     0);
    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("c0"), pd_test_u("a")),
                     0);
    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("c2"), pd_test_u("a")),
                     0);

    for (i = 3; i < max + 3; i++) {
        (void) snprintf(uid, sizeof(uid), "c%u", i);
        assert_int_equal(pd_msg_cursor_get(z, pd_test_u(uid),
                                           pd_test_u("a")),
                         100 + i);
    }

    pd_test_check(z);
    pd_test_zone_free(z);
}


/* --- reload ------------------------------------------------------------ */


static void
pd_test_attach(void **state)
{
    size_t           size;
    uint64_t         seq;
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z, *z2;
    pd_msg_stats_t   st;

    (void) state;

    z = pd_test_shared_zone(128, 1024, 1000, 0, &size);

    seq = pd_msg_next_seq(z);
    assert_int_equal(pd_test_store1(z, "u", "a", seq, 100, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_store1(z, "u", "a", seq + 1, 200,
                                    PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_bcast(z, "a", seq, 50, PD_TEST_LATER), PD_OK);
    assert_int_equal(pd_msg_cursor_set(z, pd_test_u("u"), pd_test_u("a"),
                                       seq),
                     PD_OK);

    /* another size, or no store at all, is refused */
    errno = 0;
    assert_null(pd_msg_store_init(z, size - 64, 1024, 1000, 0));
    assert_int_equal(errno, EINVAL);

    /* the new cycle attaches: the data and the counter stay */
    z2 = pd_msg_store_init(z, size, 1024, 1, 0);
    assert_ptr_equal(z2, z);
    assert_true(pd_msg_next_seq(z2) > seq);

    assert_int_equal(pd_test_pending(z2, "u", "a", PD_TEST_NOW, 0, &seen), 2);
    assert_int_equal(seen.seq[0], seq);
    assert_int_equal(seen.len[1], 200);
    assert_int_equal(seen.bad, 0);
    assert_int_equal(pd_test_bcast_pending(z2, "a", 0, PD_TEST_NOW, &seen),
                     1);
    assert_int_equal(pd_msg_cursor_get(z2, pd_test_u("u"), pd_test_u("a")),
                     seq);

    /* with its new limits */
    assert_int_equal(pd_test_store1(z2, "u", "a", seq + 2, 8, PD_TEST_LATER),
                     PD_OK);
    st = pd_test_stats(z2);
    assert_int_equal(st.refused_full, 1);
    assert_int_equal(st.entries, 2);
    pd_test_check(z2);

    memset(z, 0, 64 + sizeof(pd_msg_zone_t));
    errno = 0;
    assert_null(pd_msg_store_init(z, size, 1024, 1000, 0));
    assert_int_equal(errno, EINVAL);

    assert_int_equal(munmap(z, size), 0);
}


/* --- churn against a model --------------------------------------------- */


#define PD_TEST_OPS      100000
#define PD_TEST_UIDS     12
#define PD_TEST_APPS     3
#define PD_TEST_PER_MB   6
#define PD_TEST_MODEL    4096

typedef struct {
    uint32_t     uid;
    uint32_t     app;
    uint64_t     seq;
    uint64_t     expires;
    uint32_t     deliveries;
    uint32_t     len;
} pd_test_msg_t;

typedef struct {
    uint64_t     seq[PD_MSG_BCAST_KEEP];
    uint64_t     expires[PD_MSG_BCAST_KEEP];
    uint32_t     len[PD_MSG_BCAST_KEEP];
    uint32_t     n;
} pd_test_ring_t;

typedef struct {
    pd_test_msg_t    msgs[PD_TEST_MODEL];    /* in store order */
    uint32_t         n;
    pd_test_ring_t   rings[PD_TEST_APPS];
    uint64_t         now;
    uint64_t         seq;
    uint64_t         rnd;
    uint64_t         expired;
    uint64_t         acked;
    uint64_t         dropped;
    uint64_t         full;
    uint64_t         ok_stores;
    uint64_t         busy_stores;
    uint64_t         handed;
} pd_test_model_t;

static const char  *pd_test_apps[PD_TEST_APPS] = { "chat", "news", "x" };


static uint32_t
pd_test_rand(pd_test_model_t *md, uint32_t n)
{
    /* xorshift64*: reproducible */
    md->rnd ^= md->rnd >> 12;
    md->rnd ^= md->rnd << 25;
    md->rnd ^= md->rnd >> 27;

    return (uint32_t) ((md->rnd * 2685821657736338717ULL) >> 33) % n;
}


static void
pd_test_uid(char *buf, uint32_t uid)
{
    (void) snprintf(buf, 16, "user%u", uid);
}


static void
pd_test_model_remove(pd_test_model_t *md, uint32_t k)
{
    memmove(&md->msgs[k], &md->msgs[k + 1],
            (md->n - k - 1) * sizeof(pd_test_msg_t));
    md->n--;
}


static int
pd_test_model_find(pd_test_model_t *md, uint32_t uid, uint64_t seq)
{
    uint32_t  k;

    for (k = 0; k < md->n; k++) {
        if (md->msgs[k].uid == uid && md->msgs[k].seq == seq) {
            return (int) k;
        }
    }

    return -1;
}


static void
pd_test_churn_store(pd_msg_zone_t *z, pd_test_model_t *md)
{
    char            uids[5][16];
    u_char         *buf;
    uint32_t        u[5], k, j, app, len, count, before;
    uint64_t        expires;
    pd_int_t        rc;
    pd_uint_t       n, stored, full, want_stored, want_full;
    pd_msg_addr_t   to[5];
    pd_test_msg_t  *m;

    n = 1 + pd_test_rand(md, 5);
    app = pd_test_rand(md, PD_TEST_APPS);
    len = pd_test_rand(md, 4) == 0 ? pd_test_rand(md, 2049)
                                   : pd_test_rand(md, 200);
    expires = md->now + 1 + pd_test_rand(md, 5000);
    md->seq += 1 + pd_test_rand(md, 3);

    for (k = 0; k < n; k++) {
        /* a repeated uid now and then */
        u[k] = (k > 0 && pd_test_rand(md, 10) == 0)
               ? u[k - 1] : pd_test_rand(md, PD_TEST_UIDS);
        pd_test_uid(uids[k], u[k]);
        to[k].uid = (const u_char *) uids[k];
        to[k].len = strlen(uids[k]);
    }

    buf = malloc(len + 1);
    assert_non_null(buf);
    pd_test_fill(buf, md->seq, len);

    before = pd_test_stats(z).entries;
    rc = pd_msg_store(z, to, n, pd_test_u(pd_test_apps[app]), md->seq, buf,
                      len, expires, &stored, &full);
    free(buf);

    if (rc == PD_BUSY) {
        assert_int_equal(pd_test_stats(z).entries, before);
        md->busy_stores++;
        return;
    }

    assert_int_equal(rc, PD_OK);
    md->ok_stores++;
    want_stored = 0;
    want_full = 0;

    for (k = 0; k < n; k++) {
        if (pd_test_model_find(md, u[k], md->seq) >= 0) {
            want_stored++;
            continue;
        }

        count = 0;

        for (j = 0; j < md->n; j++) {
            count += md->msgs[j].uid == u[k] && md->msgs[j].app == app;
        }

        if (count >= PD_TEST_PER_MB) {
            want_full++;
            continue;
        }

        assert_true(md->n < PD_TEST_MODEL);
        m = &md->msgs[md->n++];
        m->uid = u[k];
        m->app = app;
        m->seq = md->seq;
        m->expires = expires;
        m->deliveries = 0;
        m->len = len;
        want_stored++;
    }

    assert_int_equal(stored, want_stored);
    assert_int_equal(full, want_full);
    md->full += want_full;
}


static void
pd_test_churn_pending(pd_msg_zone_t *z, pd_test_model_t *md)
{
    char             uid[16];
    uint32_t         u, app, max, k, handed;
    pd_int_t         rc;
    pd_test_msg_t   *m;
    pd_test_seen_t  *seen;

    u = pd_test_rand(md, PD_TEST_UIDS);
    app = pd_test_rand(md, PD_TEST_APPS);
    max = pd_test_rand(md, 5);
    pd_test_uid(uid, u);

    seen = malloc(sizeof(pd_test_seen_t));
    assert_non_null(seen);

    rc = pd_test_pending(z, uid, pd_test_apps[app], md->now, max, seen);
    assert_true(rc >= 0);
    assert_int_equal(seen->bad, 0);

    handed = 0;

    for (k = 0; k < md->n; /* void */) {
        m = &md->msgs[k];

        if (m->uid != u || m->app != app) {
            k++;
            continue;
        }

        if (m->expires <= md->now) {
            pd_test_model_remove(md, k);
            md->expired++;
            continue;
        }

        if (max != 0 && m->deliveries >= max) {
            pd_test_model_remove(md, k);
            md->dropped++;
            continue;
        }

        m->deliveries++;
        assert_true(handed < (uint32_t) rc);
        assert_int_equal(seen->seq[handed], m->seq);
        assert_int_equal(seen->len[handed], m->len);
        assert_int_equal(seen->expires[handed], m->expires);
        handed++;
        k++;
    }

    assert_int_equal(rc, handed);
    md->handed += handed;
    free(seen);
}


static void
pd_test_churn_ack(pd_msg_zone_t *z, pd_test_model_t *md, int live)
{
    int             k;
    char            uid[16];
    uint32_t        u, max;
    uint64_t        seq;
    pd_int_t        rc;
    pd_test_msg_t  *m;

    /* mostly a message the model holds, sometimes anything */
    if (md->n > 0 && pd_test_rand(md, 4) != 0) {
        m = &md->msgs[pd_test_rand(md, md->n)];
        u = (pd_test_rand(md, 8) == 0) ? pd_test_rand(md, PD_TEST_UIDS)
                                       : m->uid;
        seq = m->seq;

    } else {
        u = pd_test_rand(md, PD_TEST_UIDS);
        seq = md->seq - pd_test_rand(md, 50);
    }

    pd_test_uid(uid, u);
    k = pd_test_model_find(md, u, seq);

    if (!live) {
        rc = pd_test_ack(z, uid, seq);

        if (k < 0) {
            assert_int_equal(rc, PD_DECLINED);
            return;
        }

        assert_int_equal(rc, PD_OK);
        pd_test_model_remove(md, (uint32_t) k);
        md->acked++;
        return;
    }

    max = pd_test_rand(md, 5);
    rc = pd_msg_delivered(z, pd_test_u(uid), seq, max);

    if (k < 0) {
        assert_int_equal(rc, PD_DECLINED);
        return;
    }

    m = &md->msgs[k];

    if (max != 0 && m->deliveries >= max) {
        assert_int_equal(rc, PD_ABORT);
        pd_test_model_remove(md, (uint32_t) k);
        md->dropped++;
        return;
    }

    assert_int_equal(rc, PD_OK);
    m->deliveries++;
}


/* whether uid still holds an entry for seq, read from the entry table */
static int
pd_test_present(pd_msg_zone_t *z, uint32_t uid, uint64_t seq)
{
    char               name[16];
    size_t             len;
    uint32_t           i;
    pd_msg_entry_t    *e;
    pd_msg_mailbox_t  *m;

    pd_test_uid(name, uid);
    len = strlen(name);

    for (i = 0; i < z->max_entries; i++) {
        e = &pd_test_entries(z)[i];

        if (e->state != PD_MSG_USED || e->seq != seq) {
            continue;
        }

        m = &pd_test_mailboxes(z)[e->mailbox];

        if (m->uid_len == len && memcmp(m->uid, name, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* expired broadcasts go from the model's ring of app */
static void
pd_test_ring_expire(pd_test_model_t *md, uint32_t app)
{
    uint32_t         k;
    pd_test_ring_t  *r;

    r = &md->rings[app];

    for (k = 0; k < r->n; /* void */) {
        if (r->expires[k] <= md->now) {
            r->n--;
            r->seq[k] = r->seq[r->n];
            r->expires[k] = r->expires[r->n];
            r->len[k] = r->len[r->n];
            continue;
        }

        k++;
    }
}


/* a full sweep, or a partial one reconciled against the entry table */
static void
pd_test_churn_expire(pd_msg_zone_t *z, pd_test_model_t *md)
{
    int             found;
    uint32_t        k, scan, gone;
    pd_uint_t       n;
    pd_test_msg_t  *m;

    scan = pd_test_rand(md, 2) ? z->max_entries
                               : 1 + pd_test_rand(md, 64);
    n = pd_msg_expire(z, md->now, scan);
    gone = 0;

    for (k = 0; k < md->n; /* void */) {
        m = &md->msgs[k];

        if (m->expires > md->now) {
            k++;
            continue;
        }

        found = pd_test_present(z, m->uid, m->seq);

        /* a full sweep leaves no expired entry */
        assert_true(!(found && scan == z->max_entries));

        if (found) {
            k++;
            continue;
        }

        pd_test_model_remove(md, k);
        md->expired++;
        gone++;
    }

    assert_int_equal(n, gone);

    /* and every app's expired broadcasts */
    for (k = 0; k < PD_TEST_APPS; k++) {
        pd_test_ring_expire(md, k);
    }
}


static void
pd_test_churn_bcast(pd_msg_zone_t *z, pd_test_model_t *md)
{
    u_char           buf[300];
    uint32_t         app, len, k, low, j;
    uint64_t         seq, expires;
    pd_int_t         rc;
    pd_test_ring_t  *r;
    pd_test_seen_t  *seen;

    app = pd_test_rand(md, PD_TEST_APPS);
    r = &md->rings[app];

    /* an expired broadcast holds its slot until a pending or a sweep */
    if (pd_test_rand(md, 2) == 0) {
        md->seq++;
        seq = md->seq - pd_test_rand(md, 40);
        len = pd_test_rand(md, sizeof(buf));
        expires = md->now + 1 + pd_test_rand(md, 3000);
        pd_test_fill(buf, seq, len);

        rc = pd_msg_bcast_store(z, pd_test_u(pd_test_apps[app]), seq, buf,
                                len, expires);

        if (rc == PD_BUSY) {
            return;
        }

        for (k = 0; k < r->n && r->seq[k] != seq; k++) { /* void */ }

        if (k < r->n) {
            assert_int_equal(rc, PD_OK);
            return;
        }

        if (r->n < PD_MSG_BCAST_KEEP) {
            k = r->n++;

        } else {
            low = 0;

            for (j = 1; j < r->n; j++) {
                low = (r->seq[j] < r->seq[low]) ? j : low;
            }

            if (seq < r->seq[low]) {
                assert_int_equal(rc, PD_DECLINED);
                return;
            }

            k = low;
        }

        assert_int_equal(rc, PD_OK);
        r->seq[k] = seq;
        r->expires[k] = expires;
        r->len[k] = len;
        return;
    }

    seen = malloc(sizeof(pd_test_seen_t));
    assert_non_null(seen);
    seq = md->seq - pd_test_rand(md, 60);
    pd_test_ring_expire(md, app);
    rc = pd_test_bcast_pending(z, pd_test_apps[app], seq, md->now, seen);
    assert_int_equal(seen->bad, 0);

    /* the model's ring, in seq order, after seq */
    j = 0;

    for (k = 0; k < r->n; k++) {
        j += r->seq[k] > seq;
    }

    assert_int_equal(rc, j);

    for (k = 1; k < (uint32_t) rc; k++) {
        assert_true(seen->seq[k] > seen->seq[k - 1]);
    }

    for (k = 0; k < (uint32_t) rc; k++) {
        for (j = 0; j < r->n && r->seq[j] != seen->seq[k]; j++) { /* void */ }
        assert_true(j < r->n);
        assert_int_equal(seen->len[k], r->len[j]);
        assert_int_equal(seen->expires[k], r->expires[j]);
    }

    free(seen);
}


static void
pd_test_churn_compare(pd_msg_zone_t *z, pd_test_model_t *md)
{
    uint32_t        k, j, distinct, mailboxes, nb;
    pd_msg_stats_t  st;

    st = pd_test_stats(z);
    assert_int_equal(st.entries, md->n);
    assert_int_equal(st.acked, md->acked);
    assert_int_equal(st.expired, md->expired);
    assert_int_equal(st.dropped_noack, md->dropped);
    assert_int_equal(st.refused_full, md->full);

    /* a payload per seq held by an entry or a broadcast */
    distinct = 0;
    mailboxes = 0;

    for (k = 0; k < md->n; k++) {
        for (j = 0; j < k && md->msgs[j].seq != md->msgs[k].seq; j++) {
            /* void */
        }

        distinct += j == k;

        for (j = 0; j < k && (md->msgs[j].uid != md->msgs[k].uid
                              || md->msgs[j].app != md->msgs[k].app);
             j++)
        {
            /* void */
        }

        mailboxes += j == k;
    }

    nb = 0;

    for (k = 0; k < PD_TEST_APPS; k++) {
        nb += md->rings[k].n;
    }

    assert_int_equal(st.mailboxes, mailboxes);
    assert_int_equal(st.payloads, distinct + nb);
    assert_int_equal(st.broadcasts, nb);

    pd_test_check(z);
}


static void
pd_test_churn(void **state)
{
    uint32_t          op, r;
    pd_msg_zone_t    *z;
    pd_test_model_t  *md;

    (void) state;

    z = pd_test_zone(256, 2048, PD_TEST_PER_MB);
    md = calloc(1, sizeof(pd_test_model_t));
    assert_non_null(md);
    md->rnd = 0x9e3779b97f4a7c15ULL;
    md->now = 1000000;
    md->seq = 1000;

    for (op = 0; op < PD_TEST_OPS; op++) {
        md->now += pd_test_rand(md, 40);
        r = pd_test_rand(md, 100);

        if (r < 35) {
            pd_test_churn_store(z, md);

        } else if (r < 55) {
            pd_test_churn_pending(z, md);

        } else if (r < 75) {
            pd_test_churn_ack(z, md, 0);

        } else if (r < 85) {
            pd_test_churn_ack(z, md, 1);

        } else if (r < 88) {
            pd_test_churn_expire(z, md);

        } else {
            pd_test_churn_bcast(z, md);
        }

        if (op % 1000 == 999) {
            pd_test_churn_compare(z, md);
        }
    }

    /* every path ran, and often */
    assert_true(md->ok_stores > PD_TEST_OPS / 5);
    assert_true(md->busy_stores > 0);
    assert_true(md->full > 100);
    assert_true(md->acked > 1000);
    assert_true(md->expired > 1000);
    assert_true(md->dropped > 100);
    assert_true(md->handed > 1000);
    assert_int_equal(z->repairs, 0);

    free(md);
    pd_test_zone_free(z);
}


/* --- processes --------------------------------------------------------- */


#define PD_TEST_CHILDREN  4
#define PD_TEST_ROUNDS    2000

/* a worker: its own uid and a shared one, store, reload, ack */
static int
pd_test_child_work(pd_msg_zone_t *z, uint32_t *acked_shared, uint32_t n)
{
    char             me[16];
    uint32_t         i;
    uint64_t         seq;
    pd_uint_t        stored, full;
    pd_test_seen_t  *seen;
    const char      *uids[3];

    seen = malloc(sizeof(pd_test_seen_t));

    if (seen == NULL) {
        return 1;
    }

    (void) snprintf(me, sizeof(me), "worker%u", n);
    uids[0] = me;
    uids[1] = "shared";
    uids[2] = NULL;

    for (i = 0; i < PD_TEST_ROUNDS; i++) {
        seq = pd_msg_next_seq(z);

        if (pd_test_store(z, uids, "app", seq, 50 + i % 300, PD_TEST_LATER,
                          &stored, &full)
            != PD_OK || stored != 2)
        {
            return 2;
        }

        if (pd_test_pending(z, me, "app", PD_TEST_NOW, 0, seen) != 1
            || seen->seq[0] != seq || seen->bad != 0)
        {
            return 3;
        }

        if (pd_test_ack(z, me, seq) != PD_OK) {
            return 4;
        }

        if (i % 2 == 0) {
            if (pd_test_ack(z, "shared", seq) != PD_OK) {
                return 5;
            }

            acked_shared[n]++;
        }
    }

    free(seen);

    return 0;
}


static void
pd_test_fork_concurrent(void **state)
{
    int              status;
    pid_t            pids[PD_TEST_CHILDREN];
    size_t           size;
    uint32_t         i, *acked, total;
    pd_msg_zone_t   *z;
    pd_msg_stats_t   st;

    (void) state;

    z = pd_test_shared_zone(PD_TEST_CHILDREN * PD_TEST_ROUNDS + 64, 1024,
                            100000, PD_TEST_CHILDREN * sizeof(uint32_t),
                            &size);
    acked = (uint32_t *) ((u_char *) z + size);

    for (i = 0; i < PD_TEST_CHILDREN; i++) {
        pids[i] = fork();
        assert_true(pids[i] != -1);

        if (pids[i] == 0) {
            _exit(pd_test_child_work(z, acked, i));
        }
    }

    total = 0;

    for (i = 0; i < PD_TEST_CHILDREN; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        total += acked[i];
    }

    st = pd_test_stats(z);
    assert_int_equal(total, PD_TEST_CHILDREN * PD_TEST_ROUNDS / 2);
    assert_int_equal(st.entries, PD_TEST_CHILDREN * PD_TEST_ROUNDS - total);
    assert_int_equal(st.payloads, st.entries);
    assert_int_equal(st.mailboxes, 1);
    assert_int_equal(st.stored, 2 * PD_TEST_CHILDREN * PD_TEST_ROUNDS);
    assert_int_equal(st.acked, PD_TEST_CHILDREN * PD_TEST_ROUNDS + total);
    assert_int_equal(st.repairs, 0);
    pd_test_check(z);

    assert_int_equal(munmap(z, size + PD_TEST_CHILDREN * sizeof(uint32_t)),
                     0);
}


typedef void (*pd_test_torn_pt)(pd_msg_zone_t *z);

/*
 * A child takes the zone's lock, lets torn() scribble as an update cut
 * short would, says so on a pipe and is SIGKILLed holding the lock.
 */
static void
pd_test_die_holding_lock(pd_msg_zone_t *z, pd_test_torn_pt torn)
{
    int    fds[2], status;
    char   c;
    pid_t  pid;

    assert_int_equal(pipe(fds), 0);

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        (void) close(fds[0]);

        if (pthread_mutex_lock(&z->mutex) != 0) {
            _exit(1);
        }

        if (torn != NULL) {
            torn(z);
        }

        if (write(fds[1], "L", 1) != 1) {
            _exit(2);
        }

        for ( ;; ) {
            (void) pause();
        }
    }

    (void) close(fds[1]);
    assert_int_equal(read(fds[0], &c, 1), 1);
    (void) close(fds[0]);

    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}


static void
pd_test_owner_dead(void **state)
{
    size_t           size;
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;

    (void) state;

    z = pd_test_shared_zone(64, 1024, 1000, 0, &size);
    assert_int_equal(pd_test_store1(z, "u", "a", 1, 10, PD_TEST_LATER),
                     PD_OK);

    pd_test_die_holding_lock(z, NULL);

    /* the next operation repairs and goes on, once */
    assert_int_equal(pd_test_store1(z, "u", "a", 2, 10, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(z->repairs, 1);
    assert_int_equal(pd_test_pending(z, "u", "a", PD_TEST_NOW, 0, &seen), 2);
    assert_int_equal(seen.seq[0], 1);
    assert_int_equal(seen.seq[1], 2);
    assert_int_equal(pd_test_stats(z).repairs, 1);
    pd_test_check(z);

    assert_int_equal(munmap(z, size), 0);
}


/* a handler that reports it runs, under the lock, and waits to die */
static pd_int_t
pd_test_handler_hang(void *data, uint64_t seq, const u_char *payload,
    size_t len, uint64_t expires_ms)
{
    int  *fd;

    (void) seq;
    (void) payload;
    (void) len;
    (void) expires_ms;

    fd = data;

    if (write(*fd, "H", 1) != 1) {
        _exit(2);
    }

    for ( ;; ) {
        (void) pause();
    }

    return PD_OK;
}


/* killed inside a real operation: the delivery it counted stays */
static void
pd_test_killed_in_pending(void **state)
{
    int              fds[2], status;
    char             c;
    pid_t            pid;
    size_t           size;
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;

    (void) state;

    z = pd_test_shared_zone(64, 1024, 1000, 0, &size);
    assert_int_equal(pd_test_store1(z, "u", "a", 1, 10, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_store1(z, "u", "a", 2, 10, PD_TEST_LATER),
                     PD_OK);

    assert_int_equal(pipe(fds), 0);

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        (void) close(fds[0]);
        (void) pd_msg_pending(z, pd_test_u("u"), pd_test_u("a"), PD_TEST_NOW,
                              1, pd_test_handler_hang, &fds[1]);
        _exit(3);
    }

    (void) close(fds[1]);
    assert_int_equal(read(fds[0], &c, 1), 1);
    (void) close(fds[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    /* seq 1 was handed out once already: with a limit of 1 it drops */
    assert_int_equal(pd_test_pending(z, "u", "a", PD_TEST_NOW, 1, &seen), 1);
    assert_int_equal(seen.seq[0], 2);
    assert_int_equal(z->repairs, 1);
    assert_int_equal(pd_test_stats(z).dropped_noack, 1);
    pd_test_check(z);

    assert_int_equal(munmap(z, size), 0);
}


/*
 * Torn in several places: the last store (a multicast) cut before it
 * cleared open_stamp, so it must be rolled back whole; an ack of "u"'s
 * first message cut right after its unlink, before the entry was freed;
 * and every derived field scrambled, which the repair must not believe.
 */
static void
pd_test_tear(pd_msg_zone_t *z)
{
    uint32_t           i, cls;
    pd_msg_entry_t    *e;
    pd_msg_mailbox_t  *m;

    z->open_stamp = z->stamp;

    for (i = 0; i < z->max_mailboxes; i++) {
        m = &pd_test_mailboxes(z)[i];

        if (m->state == PD_MSG_USED && m->uid_len == 1 && m->uid[0] == 'u') {
            e = &pd_test_entries(z)[m->head];
            m->head = e->next;
        }

        m->count = 999;
        m->tail = 3;
    }

    for (i = 0; i < z->max_entries; i++) {
        pd_test_entries(z)[i].prev = 7;
        pd_test_entries(z)[i].hnext = 5;
    }

    for (i = 0; i <= z->mask; i++) {
        pd_test_buckets(z)[i] = 1;
    }

    for (cls = 0; cls < PD_MSG_CLASSES; cls++) {
        z->free_lists[cls] = PD_MSG_NIL;
    }

    pd_test_block(z, 0)->refs = 77;
    z->free = PD_MSG_NIL;
    z->mb_free = PD_MSG_NIL;
    z->cur_free = PD_MSG_NIL;
    z->nentries = 12345;
    z->nmailboxes = 0;
    z->payloads = 0;
    z->bytes_used = 1;
    z->nbcasts = 99;
}


static void
pd_test_torn_update(void **state)
{
    char             uid[16];
    size_t           size;
    uint32_t         i, added;
    pd_uint_t        stored, full;
    pd_test_seen_t   seen;
    pd_msg_zone_t   *z;
    pd_msg_stats_t   st;
    const char      *uids[] = { "u", "v", "w", NULL };

    (void) state;

    z = pd_test_shared_zone(64, 1024, 1000, 0, &size);

    assert_int_equal(pd_test_store1(z, "u", "a", 1, 10, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_store1(z, "u", "a", 2, 20, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_store1(z, "v", "a", 3, 30, PD_TEST_LATER),
                     PD_OK);
    assert_int_equal(pd_test_bcast(z, "a", 4, 40, PD_TEST_LATER), PD_OK);
    assert_int_equal(pd_msg_cursor_set(z, pd_test_u("u"), pd_test_u("a"), 4),
                     PD_OK);
    assert_int_equal(pd_test_store(z, uids, "a", 5, 50, PD_TEST_LATER,
                                   &stored, &full),
                     PD_OK);
    assert_int_equal(stored, 3);

    pd_test_die_holding_lock(z, pd_test_tear);

    st = pd_test_stats(z);
    assert_int_equal(st.repairs, 1);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.mailboxes, 2);
    assert_int_equal(st.payloads, 3);
    assert_int_equal(st.broadcasts, 1);
    assert_int_equal(st.cursors, 1);
    pd_test_check(z);

    /* "u" keeps 2 (1 was being acked), "v" keeps 3, 5 is gone for all */
    assert_int_equal(pd_test_pending(z, "u", "a", PD_TEST_NOW, 0, &seen), 1);
    assert_int_equal(seen.seq[0], 2);
    assert_int_equal(seen.len[0], 20);
    assert_int_equal(seen.bad, 0);
    assert_int_equal(pd_test_pending(z, "v", "a", PD_TEST_NOW, 0, &seen), 1);
    assert_int_equal(seen.seq[0], 3);
    assert_int_equal(pd_test_pending(z, "w", "a", PD_TEST_NOW, 0, &seen), 0);
    assert_int_equal(pd_test_ack(z, "u", 5), PD_DECLINED);
    assert_int_equal(pd_test_ack(z, "u", 1), PD_DECLINED);
    assert_int_equal(pd_test_bcast_pending(z, "a", 0, PD_TEST_NOW, &seen), 1);
    assert_int_equal(seen.bad, 0);
    assert_int_equal(pd_msg_cursor_get(z, pd_test_u("u"), pd_test_u("a")),
                     4);

    /* every entry is accounted for: exactly the rest can be stored */
    added = 0;

    for (i = 0; i < 2 * z->max_entries; i++) {
        (void) snprintf(uid, sizeof(uid), "f%u", i % 8);

        if (pd_test_store1(z, uid, "a", 100 + i, 10, PD_TEST_LATER) == PD_OK)
        {
            added++;
        }
    }

    assert_int_equal(added, z->max_entries - 2);
    assert_int_equal(z->repairs, 1);
    pd_test_check(z);

    assert_int_equal(munmap(z, size), 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_geometry),
        cmocka_unit_test(pd_test_store_order),
        cmocka_unit_test(pd_test_pending_resume),
        cmocka_unit_test(pd_test_bad_arguments),
        cmocka_unit_test(pd_test_multicast_shared),
        cmocka_unit_test(pd_test_ack_own),
        cmocka_unit_test(pd_test_collapse),
        cmocka_unit_test(pd_test_max_deliveries),
        cmocka_unit_test(pd_test_delivered),
        cmocka_unit_test(pd_test_expiry),
        cmocka_unit_test(pd_test_entries_full),
        cmocka_unit_test(pd_test_mailboxes_full),
        cmocka_unit_test(pd_test_payload_full),
        cmocka_unit_test(pd_test_mailbox_full),
        cmocka_unit_test(pd_test_seq),
        cmocka_unit_test(pd_test_bcast_retention),
        cmocka_unit_test(pd_test_cursor_table),
        cmocka_unit_test(pd_test_attach),
        cmocka_unit_test(pd_test_churn),
        cmocka_unit_test(pd_test_fork_concurrent),
        cmocka_unit_test(pd_test_owner_dead),
        cmocka_unit_test(pd_test_killed_in_pending),
        cmocka_unit_test(pd_test_torn_update),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
