/* test_pd_palloc.c: unit tests for the region pools of pd_palloc.c. */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>


/*
 * Captures what the pool logs so exhaustion can be asserted.  It stands in
 * for pd_log.c's definition: nothing else of pd_log.o is needed here, so
 * the archive member is never pulled into this binary.
 */
static pd_uint_t  pd_test_logged;
static char       pd_test_last_log[512];

void
pd_log_error_core(pd_uint_t level, pd_log_t *log, pd_err_t err,
    const char *fmt, ...)
{
    va_list  args;

    (void) level;
    (void) log;
    (void) err;

    va_start(args, fmt);
    vsnprintf(pd_test_last_log, sizeof(pd_test_last_log), fmt, args);
    va_end(args);

    pd_test_logged++;
}


static pd_log_t  pd_test_log = { .log_level = PD_LOG_DEBUG, .fd = 2 };


static int
pd_test_in_block(pd_pool_block_t *b, void *p, size_t size)
{
    return (u_char *) p >= (u_char *) b && (u_char *) p + size <= b->end;
}


static pd_uint_t
pd_test_nblocks(pd_pool_t *pool)
{
    pd_uint_t         n;
    pd_pool_block_t  *b;

    n = 0;
    for (b = &pool->first; b != NULL; b = b->next) {
        n++;
    }

    return n;
}


static void
pd_test_create_bounds(void **state)
{
    pd_pool_t  *pool;

    (void) state;

    pd_test_logged = 0;
    assert_null(pd_create_pool(PD_POOL_MIN_SIZE - 1, 0, &pd_test_log));
    assert_int_equal(pd_test_logged, 1);

    /* a first block the limit cannot hold is refused */
    assert_null(pd_create_pool(4096, 1024, &pd_test_log));
    assert_null(pd_create_pool(4096, 1024, NULL));

    pool = pd_create_pool(PD_POOL_MIN_SIZE, 0, NULL);
    assert_non_null(pool);
    assert_int_equal(pool->block_size, PD_POOL_MIN_SIZE);
    assert_int_equal(pool->max_small, PD_POOL_MIN_SIZE - sizeof(pd_pool_t));
    assert_int_equal(pool->used, PD_POOL_MIN_SIZE);
    assert_ptr_equal(pool->current, &pool->first);
    assert_ptr_equal(pool->first.last, (u_char *) pool + sizeof(pd_pool_t));
    assert_ptr_equal(pool->first.end, (u_char *) pool + PD_POOL_MIN_SIZE);
    pd_destroy_pool(pool);

    pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, PD_POOL_DEFAULT_SIZE, NULL);
    assert_non_null(pool);
    assert_int_equal(pool->max_small, 4096);
    assert_int_equal(pool->limit, PD_POOL_DEFAULT_SIZE);
    pd_destroy_pool(pool);
}


static void
pd_test_min_pool(void **state)
{
    u_char     *p, *q;
    pd_pool_t  *pool;

    (void) state;

    pool = pd_create_pool(PD_POOL_MIN_SIZE, 0, NULL);
    assert_non_null(pool);

    /* the largest small request fits the first block exactly */
    p = pd_palloc(pool, pool->max_small);
    assert_non_null(p);
    assert_true(pd_test_in_block(&pool->first, p, pool->max_small));
    assert_ptr_equal(pool->first.last, pool->first.end);
    memset(p, 0xab, pool->max_small);
    assert_int_equal(pd_pfree(pool, p), PD_DECLINED);

    /* the next small one needs a second block of the same size */
    q = pd_palloc(pool, 8);
    assert_non_null(q);
    assert_int_equal(pd_test_nblocks(pool), 2);
    assert_true(pd_test_in_block(pool->first.next, q, 8));
    assert_int_equal(pool->used, 2 * PD_POOL_MIN_SIZE);

    /* one byte over max_small is a large allocation */
    p = pd_palloc(pool, pool->max_small + 1);
    assert_non_null(p);
    memset(p, 0xcd, pool->max_small + 1);
    assert_int_equal(pool->used,
                     2 * PD_POOL_MIN_SIZE + pool->max_small + 1);
    assert_int_equal(pd_pfree(pool, p), PD_OK);
    assert_int_equal(pool->used, 2 * PD_POOL_MIN_SIZE);

    pd_destroy_pool(pool);
}


static void
pd_test_alignment(void **state)
{
    size_t      i, sizes[] = { 1, 3, 7, 8, 13, 64, 100, 5000, 9 };
    u_char     *p;
    pd_pool_t  *pool;

    (void) state;

    pool = pd_create_pool(512, 0, NULL);
    assert_non_null(pool);

    for (i = 0; i < 400; i++) {
        /* an unaligned allocation in between leaves last unaligned */
        p = pd_pnalloc(pool, 1 + i % 5);
        assert_non_null(p);
        *p = 1;

        p = pd_palloc(pool, sizes[i % pd_nelems(sizes)]);
        assert_non_null(p);
        assert_int_equal((uintptr_t) p % PD_ALIGNMENT, 0);
        memset(p, 0x5a, sizes[i % pd_nelems(sizes)]);

        p = pd_pcalloc(pool, 1 + i % 11);
        assert_non_null(p);
        assert_int_equal((uintptr_t) p % PD_ALIGNMENT, 0);
    }

    assert_true(pd_test_nblocks(pool) > 10);

    pd_destroy_pool(pool);
}


static void
pd_test_unaligned_end(void **state)
{
    u_char     *p;
    pd_pool_t  *pool;

    (void) state;

    /* a block whose end is not aligned must not hand out memory past it */
    pool = pd_create_pool(PD_POOL_MIN_SIZE + 3, 0, NULL);
    assert_non_null(pool);

    p = pd_pnalloc(pool, pool->max_small - 1);
    assert_non_null(p);
    assert_true(pd_test_in_block(&pool->first, p, pool->max_small - 1));

    p = pd_palloc(pool, 1);
    assert_non_null(p);
    assert_int_equal((uintptr_t) p % PD_ALIGNMENT, 0);
    assert_false(pd_test_in_block(&pool->first, p, 1));
    assert_true(pd_test_in_block(pool->first.next, p, 1));

    pd_destroy_pool(pool);
}


static void
pd_test_no_overlap(void **state)
{
    size_t      i, j, len[300];
    u_char     *p[300];
    pd_pool_t  *pool;

    (void) state;

    pool = pd_create_pool(1024, 0, NULL);
    assert_non_null(pool);

    for (i = 0; i < pd_nelems(p); i++) {
        len[i] = 1 + (i * 37) % 1200;
        p[i] = (i % 2) ? pd_pnalloc(pool, len[i]) : pd_palloc(pool, len[i]);
        assert_non_null(p[i]);
        memset(p[i], (int) (i & 0xff), len[i]);
    }

    for (i = 0; i < pd_nelems(p); i++) {
        for (j = 0; j < len[i]; j++) {
            assert_int_equal(p[i][j], i & 0xff);
        }
    }

    pd_destroy_pool(pool);
}


static void
pd_test_limit_small(void **state)
{
    void       *p;
    pd_uint_t   n, fit;
    pd_pool_t  *pool;

    (void) state;

    pool = pd_create_pool(PD_POOL_MIN_SIZE, 4 * PD_POOL_MIN_SIZE,
                          &pd_test_log);
    assert_non_null(pool);

    pd_test_logged = 0;

    for (n = 0; n < 1000; n++) {
        p = pd_palloc(pool, 64);
        if (p == NULL) {
            break;
        }
        memset(p, 0x11, 64);
    }

    /* what the first block holds, then three more blocks' worth */
    fit = pool->max_small / 64
          + 3 * ((PD_POOL_MIN_SIZE - sizeof(pd_pool_block_t)) / 64);
    assert_int_equal(n, fit);
    assert_int_equal(pd_test_nblocks(pool), 4);
    assert_int_equal(pool->used, 4 * PD_POOL_MIN_SIZE);
    assert_int_equal(pd_test_logged, 1);
    assert_non_null(strstr(pd_test_last_log, "limit"));

    /* still exhausted, still not crashing; leftovers are still handed out */
    assert_null(pd_palloc(pool, 64));
    assert_null(pd_pcalloc(pool, 100));
    assert_non_null(pd_palloc(pool, 8));
    assert_int_equal(pool->used, 4 * PD_POOL_MIN_SIZE);

    /* a large request cannot sneak past the limit either */
    assert_null(pd_palloc(pool, pool->max_small + 1));
    assert_int_equal(pool->used, 4 * PD_POOL_MIN_SIZE);

    /* a reset gives the blocks back for reuse without new mallocs */
    pd_reset_pool(pool);
    for (n = 0; n < fit; n++) {
        assert_non_null(pd_palloc(pool, 64));
    }
    assert_null(pd_palloc(pool, 64));
    assert_int_equal(pool->used, 4 * PD_POOL_MIN_SIZE);

    pd_destroy_pool(pool);
}


static void
pd_test_limit_large(void **state)
{
    void       *a, *b, *c, *s;
    pd_pool_t  *pool;

    (void) state;

    pool = pd_create_pool(1024, 1024 + 3 * 1000, &pd_test_log);
    assert_non_null(pool);
    assert_true(pool->max_small < 1000);

    a = pd_palloc(pool, 1000);
    assert_non_null(a);
    memset(a, 1, 1000);
    b = pd_pnalloc(pool, 1000);
    assert_non_null(b);
    c = pd_pcalloc(pool, 1000);
    assert_non_null(c);
    assert_int_equal(((u_char *) c)[999], 0);

    /* exactly at the limit: the next large request fails, logged */
    assert_int_equal(pool->used, pool->limit);
    pd_test_logged = 0;
    assert_null(pd_palloc(pool, pool->max_small + 1));
    assert_int_equal(pd_test_logged, 1);
    assert_non_null(strstr(pd_test_last_log, "limit"));
    assert_int_equal(pool->used, pool->limit);

    /* sizes that would overflow the accounting are refused as well */
    assert_null(pd_palloc(pool, SIZE_MAX));
    assert_null(pd_pnalloc(pool, SIZE_MAX - 500));

    /* the first block still serves small requests: no new malloc */
    s = pd_palloc(pool, 64);
    assert_non_null(s);
    assert_true(pd_test_in_block(&pool->first, s, 64));

    /* pd_pfree gives bytes back to the limit */
    assert_int_equal(pd_pfree(pool, a), PD_OK);
    assert_int_equal(pool->used, pool->limit - 1000);
    a = pd_palloc(pool, 1000);
    assert_non_null(a);
    memset(a, 2, 1000);
    assert_int_equal(pool->used, pool->limit);

    pd_destroy_pool(pool);
}


static void
pd_test_pfree(void **state)
{
    int         local;
    void       *small, *large, *again;
    u_char     *last;
    pd_pool_t  *pool;

    (void) state;

    pool = pd_create_pool(1024, 0, NULL);
    assert_non_null(pool);

    small = pd_palloc(pool, 16);
    assert_non_null(small);
    assert_int_equal(pd_pfree(pool, small), PD_DECLINED);
    assert_int_equal(pd_pfree(pool, NULL), PD_DECLINED);
    assert_int_equal(pd_pfree(pool, &local), PD_DECLINED);

    large = pd_palloc(pool, 10000);
    assert_non_null(large);
    memset(large, 3, 10000);
    assert_int_equal(pool->used, 1024 + 10000);

    assert_int_equal(pd_pfree(pool, large), PD_OK);
    assert_int_equal(pool->used, 1024);
    /* a second free of the same pointer is not a double free */
    assert_int_equal(pd_pfree(pool, large), PD_DECLINED);

    /* the freed header is reused: no small memory is spent on it */
    last = pool->current->last;
    again = pd_palloc(pool, 20000);
    assert_non_null(again);
    assert_ptr_equal(pool->current->last, last);
    assert_int_equal(pool->used, 1024 + 20000);

    pd_destroy_pool(pool);
}


static pd_uint_t  pd_test_order[16];
static pd_uint_t  pd_test_norder;


static void
pd_test_record(void *data)
{
    pd_test_order[pd_test_norder++] = *(pd_uint_t *) data;
}


static void
pd_test_add_record(pd_pool_t *pool, pd_uint_t v)
{
    pd_pool_cleanup_t  *cln;

    cln = pd_pool_cleanup_add(pool, sizeof(pd_uint_t));
    assert_non_null(cln);
    assert_non_null(cln->data);
    assert_null(cln->handler);

    *(pd_uint_t *) cln->data = v;
    cln->handler = pd_test_record;
}


static void
pd_test_cleanup_order(void **state)
{
    pd_pool_t          *pool;
    pd_pool_cleanup_t  *cln;

    (void) state;

    pool = pd_create_pool(PD_POOL_MIN_SIZE, 0, NULL);
    assert_non_null(pool);

    pd_test_add_record(pool, 1);
    pd_test_add_record(pool, 2);

    /* a cleanup whose handler was never set is skipped */
    cln = pd_pool_cleanup_add(pool, 0);
    assert_non_null(cln);
    assert_null(cln->data);

    pd_test_add_record(pool, 3);

    pd_test_norder = 0;
    pd_destroy_pool(pool);

    assert_int_equal(pd_test_norder, 3);
    assert_int_equal(pd_test_order[0], 3);
    assert_int_equal(pd_test_order[1], 2);
    assert_int_equal(pd_test_order[2], 1);
}


static pd_pool_t  *pd_test_cleanup_pool;


static void
pd_test_add_late(void *data)
{
    (void) data;

    pd_test_order[pd_test_norder++] = 10;
    pd_test_add_record(pd_test_cleanup_pool, 11);
}


static void
pd_test_cleanup_adds_cleanup(void **state)
{
    pd_pool_t          *pool;
    pd_pool_cleanup_t  *cln;

    (void) state;

    pool = pd_create_pool(PD_POOL_MIN_SIZE, 0, NULL);
    assert_non_null(pool);
    pd_test_cleanup_pool = pool;

    pd_test_add_record(pool, 1);
    cln = pd_pool_cleanup_add(pool, 0);
    assert_non_null(cln);
    cln->handler = pd_test_add_late;

    /* one added while cleanups run still runs before the memory goes */
    pd_test_norder = 0;
    pd_destroy_pool(pool);

    assert_int_equal(pd_test_norder, 3);
    assert_int_equal(pd_test_order[0], 10);
    assert_int_equal(pd_test_order[1], 11);
    assert_int_equal(pd_test_order[2], 1);
}


static void
pd_test_reset_reuse(void **state)
{
    size_t      i;
    u_char     *first[20], *p, *large;
    size_t      used;
    pd_uint_t   nblocks;
    pd_pool_t  *pool;

    (void) state;

    pool = pd_create_pool(PD_POOL_MIN_SIZE, 0, NULL);
    assert_non_null(pool);

    pd_test_add_record(pool, 1);
    pd_test_add_record(pool, 2);

    for (i = 0; i < pd_nelems(first); i++) {
        first[i] = pd_palloc(pool, 40);
        assert_non_null(first[i]);
        memset(first[i], 0xee, 40);
    }

    large = pd_palloc(pool, 3000);
    assert_non_null(large);

    nblocks = pd_test_nblocks(pool);
    used = pool->used;

    pd_test_norder = 0;
    pd_reset_pool(pool);

    /* cleanups ran last first, the large block went back to malloc */
    assert_int_equal(pd_test_norder, 2);
    assert_int_equal(pd_test_order[0], 2);
    assert_int_equal(pd_test_order[1], 1);
    assert_null(pool->cleanup);
    assert_null(pool->large);
    assert_int_equal(pool->used, used - 3000);
    assert_int_equal(pd_test_nblocks(pool), nblocks);
    assert_ptr_equal(pool->current, &pool->first);

    /* the same requests get the same memory back, zeroed on request */
    pd_test_add_record(pool, 3);
    pd_test_add_record(pool, 4);

    for (i = 0; i < pd_nelems(first); i++) {
        p = (i % 2) ? pd_palloc(pool, 40) : pd_pcalloc(pool, 40);
        assert_ptr_equal(p, first[i]);
        if (i % 2 == 0) {
            assert_int_equal(p[0], 0);
            assert_int_equal(p[39], 0);
        }
    }
    assert_int_equal(pd_test_nblocks(pool), nblocks);
    assert_int_equal(pool->used, used - 3000);

    /* only the cleanups added since the last reset run */
    pd_test_norder = 0;
    pd_reset_pool(pool);
    assert_int_equal(pd_test_norder, 2);
    assert_int_equal(pd_test_order[0], 4);
    assert_int_equal(pd_test_order[1], 3);

    pd_test_norder = 0;
    pd_reset_pool(pool);
    assert_int_equal(pd_test_norder, 0);

    pd_destroy_pool(pool);
}


static void
pd_test_current_moves(void **state)
{
    pd_uint_t   i;
    u_char     *p;
    pd_pool_t  *pool;

    (void) state;

    pool = pd_create_pool(PD_POOL_MIN_SIZE, 0, NULL);
    assert_non_null(pool);

    /* 100-byte requests leave holes nobody fits: blocks keep failing */
    for (i = 0; i < 100; i++) {
        p = pd_palloc(pool, 100);
        assert_non_null(p);
        memset(p, 7, 100);
    }

    assert_ptr_not_equal(pool->current, &pool->first);

    /* small requests still fill the holes of the blocks still tried */
    p = pd_palloc(pool, 8);
    assert_non_null(p);

    pd_destroy_pool(pool);
}


static void
pd_test_heap_helpers(void **state)
{
    u_char  *p;

    (void) state;

    p = pd_calloc(100, &pd_test_log);
    assert_non_null(p);
    assert_int_equal(p[0], 0);
    assert_int_equal(p[99], 0);
    pd_free(p);

    p = pd_alloc(10, NULL);
    assert_non_null(p);
    memset(p, 1, 10);
    pd_free(p);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_create_bounds),
        cmocka_unit_test(pd_test_min_pool),
        cmocka_unit_test(pd_test_alignment),
        cmocka_unit_test(pd_test_unaligned_end),
        cmocka_unit_test(pd_test_no_overlap),
        cmocka_unit_test(pd_test_limit_small),
        cmocka_unit_test(pd_test_limit_large),
        cmocka_unit_test(pd_test_pfree),
        cmocka_unit_test(pd_test_cleanup_order),
        cmocka_unit_test(pd_test_cleanup_adds_cleanup),
        cmocka_unit_test(pd_test_reset_reuse),
        cmocka_unit_test(pd_test_current_moves),
        cmocka_unit_test(pd_test_heap_helpers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
