/* test_pd_array.c: unit tests for the pool arrays of pd_array.c. */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>


typedef struct {
    pd_uint_t   id;
    u_char      name[12];
} pd_test_elt_t;


static void
pd_test_create_push(void **state)
{
    void           *elts;
    pd_uint_t       i;
    pd_pool_t      *pool;
    pd_array_t     *a;
    pd_test_elt_t  *e;

    (void) state;

    pool = pd_create_pool(1024, 0, NULL);
    assert_non_null(pool);

    a = pd_array_create(pool, 4, sizeof(pd_test_elt_t));
    assert_non_null(a);
    assert_int_equal(a->nelts, 0);
    assert_int_equal(a->nalloc, 4);
    assert_int_equal(a->size, sizeof(pd_test_elt_t));
    assert_ptr_equal(a->pool, pool);
    assert_int_equal((uintptr_t) a->elts % PD_ALIGNMENT, 0);

    elts = a->elts;

    /* within the first allocation the elements do not move */
    for (i = 0; i < 4; i++) {
        e = pd_array_push(a);
        assert_non_null(e);
        assert_ptr_equal(e, (pd_test_elt_t *) elts + i);
        e->id = i;
        pd_slprintf(e->name, e->name + sizeof(e->name), "n%lu",
                    (unsigned long) i);
    }
    assert_ptr_equal(a->elts, elts);
    assert_int_equal(a->nelts, 4);

    /* one more doubles the room and keeps what was there */
    e = pd_array_push(a);
    assert_non_null(e);
    e->id = 4;
    assert_ptr_not_equal(a->elts, elts);
    assert_int_equal(a->nalloc, 8);
    assert_int_equal(a->nelts, 5);

    for (i = 0; i < 200; i++) {
        e = pd_array_push(a);
        assert_non_null(e);
        e->id = 5 + i;
    }
    assert_int_equal(a->nelts, 205);
    assert_int_equal(a->nalloc, 256);

    e = a->elts;
    for (i = 0; i < a->nelts; i++) {
        assert_int_equal(e[i].id, i);
    }
    assert_string_equal((char *) e[3].name, "n3");

    pd_destroy_pool(pool);
}


static void
pd_test_init_empty(void **state)
{
    pd_uint_t   i, *v;
    pd_pool_t  *pool;
    pd_array_t  a;

    (void) state;

    pool = pd_create_pool(PD_POOL_MIN_SIZE, 0, NULL);
    assert_non_null(pool);

    /* an embedded array may start with no room at all */
    assert_int_equal(pd_array_init(&a, pool, 0, sizeof(pd_uint_t)), PD_OK);
    assert_int_equal(a.nelts, 0);
    assert_int_equal(a.nalloc, 0);

    for (i = 0; i < 1000; i++) {
        v = pd_array_push(&a);
        assert_non_null(v);
        *v = i * 3;
    }

    assert_int_equal(a.nelts, 1000);
    assert_int_equal(a.nalloc, 1024);

    v = a.elts;
    for (i = 0; i < 1000; i++) {
        assert_int_equal(v[i], i * 3);
    }

    pd_destroy_pool(pool);
}


static void
pd_test_large_growth_frees(void **state)
{
    pd_uint_t   i, *v;
    pd_pool_t  *pool;
    pd_array_t  a;

    (void) state;

    pool = pd_create_pool(PD_POOL_MIN_SIZE, 64 * 1024, NULL);
    assert_non_null(pool);

    assert_int_equal(pd_array_init(&a, pool, 16, sizeof(pd_uint_t)), PD_OK);

    /*
     * 4096 elements take 32 KB: every doubling past max_small is a large
     * allocation, and keeping the old ones would pass the 64 KB limit.
     */
    for (i = 0; i < 4096; i++) {
        v = pd_array_push(&a);
        assert_non_null(v);
        *v = i;
    }

    assert_true(pool->used <= 64 * 1024);

    v = a.elts;
    for (i = 0; i < 4096; i++) {
        assert_int_equal(v[i], i);
    }

    pd_destroy_pool(pool);
}


static void
pd_test_push_at_limit(void **state)
{
    void        *elts;
    pd_uint_t    i, n, *v;
    pd_pool_t   *pool;
    pd_array_t  *a;

    (void) state;

    pool = pd_create_pool(1024, 1024 + 2048, NULL);
    assert_non_null(pool);

    a = pd_array_create(pool, 8, sizeof(pd_uint_t));
    assert_non_null(a);

    for (n = 0; n < 10000; n++) {
        v = pd_array_push(a);
        if (v == NULL) {
            break;
        }
        *v = n;
    }

    /* growth stopped at the limit, the array is intact and usable */
    assert_true(n < 10000);
    assert_int_equal(a->nelts, n);
    assert_int_equal(a->nalloc, n);
    assert_true(pool->used <= pool->limit);

    elts = a->elts;
    assert_null(pd_array_push(a));
    assert_ptr_equal(a->elts, elts);
    assert_int_equal(a->nelts, n);

    v = a->elts;
    for (i = 0; i < n; i++) {
        assert_int_equal(v[i], i);
    }

    /* a pool with no room left cannot create one either */
    assert_null(pd_array_create(pool, 1000, sizeof(pd_uint_t)));

    pd_destroy_pool(pool);
}


static void
pd_test_overflow(void **state)
{
    pd_pool_t   *pool;
    pd_array_t   a;

    (void) state;

    pool = pd_create_pool(1024, 0, NULL);
    assert_non_null(pool);

    /* n * size does not fit size_t: refused, never a tiny allocation */
    assert_null(pd_array_create(pool, SIZE_MAX / 2, 4));
    assert_int_equal(pd_array_init(&a, pool, SIZE_MAX / 8 + 1, 8),
                     PD_ERROR);

    pd_destroy_pool(pool);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_create_push),
        cmocka_unit_test(pd_test_init_empty),
        cmocka_unit_test(pd_test_large_growth_frees),
        cmocka_unit_test(pd_test_push_at_limit),
        cmocka_unit_test(pd_test_overflow),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
