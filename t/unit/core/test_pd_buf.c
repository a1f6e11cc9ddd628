/* test_pd_buf.c: unit tests for shared blocks, bufs and chains (pd_buf.c). */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>


/* a pool-allocated buf over [p, p + len), already filled */
static pd_buf_t *
pd_test_buf(pd_pool_t *pool, u_char *p, size_t len)
{
    pd_buf_t  *b;

    b = pd_pcalloc(pool, sizeof(pd_buf_t));
    assert_non_null(b);

    b->start = p;
    b->pos = p;
    b->last = p + len;
    b->end = p + len;

    return b;
}


/* links bufs into a chain in the given order */
static pd_chain_t *
pd_test_chain(pd_pool_t *pool, pd_buf_t **bufs, pd_uint_t n)
{
    pd_uint_t    i;
    pd_chain_t  *head, **ll, *cl;

    head = NULL;
    ll = &head;

    for (i = 0; i < n; i++) {
        cl = pd_alloc_chain_link(pool);
        assert_non_null(cl);
        cl->buf = bufs[i];
        *ll = cl;
        ll = &cl->next;
    }

    return head;
}


static void
pd_test_shbuf_refcount(void **state)
{
    pd_shbuf_t  *sb, *r;

    (void) state;

    sb = pd_shbuf_alloc(100);
    assert_non_null(sb);
    assert_int_equal(sb->refcount, 1);
    assert_int_equal(sb->len, 100);
    memset(sb->data, 'x', sb->len);

    r = pd_shbuf_ref(sb);
    assert_ptr_equal(r, sb);
    assert_int_equal(sb->refcount, 2);
    pd_shbuf_ref(sb);
    assert_int_equal(sb->refcount, 3);

    pd_shbuf_unref(sb);
    assert_int_equal(sb->refcount, 2);
    assert_int_equal(sb->data[99], 'x');
    pd_shbuf_unref(sb);
    assert_int_equal(sb->refcount, 1);

    /* the last reference frees it: ASan reports a leak or double free */
    pd_shbuf_unref(sb);

    pd_shbuf_unref(NULL);

    sb = pd_shbuf_alloc(0);
    assert_non_null(sb);
    assert_int_equal(sb->len, 0);
    pd_shbuf_unref(sb);

    assert_null(pd_shbuf_alloc(SIZE_MAX));
    assert_null(pd_shbuf_alloc(SIZE_MAX - sizeof(pd_shbuf_t) + 1));
}


static void
pd_test_unref_cleanup(void *data)
{
    pd_buf_t  *b = data;

    pd_shbuf_unref(b->shared);
    b->shared = NULL;
}


/* one framed message, many connections' pools: the last pool frees it */
static void
pd_test_shbuf_fanout(void **state)
{
    pd_uint_t           i;
    pd_buf_t           *b;
    pd_pool_t          *pools[8];
    pd_shbuf_t         *sb;
    pd_pool_cleanup_t  *cln;

    (void) state;

    sb = pd_shbuf_alloc(64);
    assert_non_null(sb);
    memcpy(sb->data, "framed once", sizeof("framed once") - 1);

    for (i = 0; i < pd_nelems(pools); i++) {
        pools[i] = pd_create_pool(PD_POOL_MIN_SIZE, 0, NULL);
        assert_non_null(pools[i]);

        b = pd_pcalloc(pools[i], sizeof(pd_buf_t));
        assert_non_null(b);
        b->shared = pd_shbuf_ref(sb);
        b->start = sb->data;
        b->pos = sb->data + i;
        b->last = sb->data + 11;
        b->end = sb->data + sb->len;

        cln = pd_pool_cleanup_add(pools[i], 0);
        assert_non_null(cln);
        cln->handler = pd_test_unref_cleanup;
        cln->data = b;
    }

    /* the creator drops its own reference: connections still hold it */
    pd_shbuf_unref(sb);
    assert_int_equal(sb->refcount, pd_nelems(pools));

    for (i = 0; i < pd_nelems(pools) - 1; i++) {
        pd_destroy_pool(pools[i]);
        assert_int_equal(sb->refcount, pd_nelems(pools) - 1 - i);
        assert_memory_equal(sb->data, "framed once", 11);
    }

    pd_destroy_pool(pools[pd_nelems(pools) - 1]);
}


static void
pd_test_temp_buf(void **state)
{
    pd_buf_t   *b;
    pd_pool_t  *pool;

    (void) state;

    pool = pd_create_pool(PD_POOL_MIN_SIZE, 2048, NULL);
    assert_non_null(pool);

    b = pd_create_temp_buf(pool, 100);
    assert_non_null(b);
    assert_ptr_equal(b->pos, b->start);
    assert_ptr_equal(b->last, b->start);
    assert_int_equal(b->end - b->start, 100);
    assert_int_equal(pd_buf_size(b), 0);
    assert_true(b->temporary);
    assert_false(b->flush);
    assert_false(b->last_buf);
    assert_null(b->shared);

    b->last = pd_cpymem(b->last, "hello", 5);
    assert_int_equal(pd_buf_size(b), 5);
    memset(b->last, 'z', b->end - b->last);

    /* a large one, then one the pool limit refuses */
    b = pd_create_temp_buf(pool, 1000);
    assert_non_null(b);
    memset(b->start, 'y', 1000);
    assert_null(pd_create_temp_buf(pool, 1500));

    pd_destroy_pool(pool);
}


static void
pd_test_chain_link(void **state)
{
    pd_chain_t  *cl;
    pd_pool_t   *pool;

    (void) state;

    pool = pd_create_pool(PD_POOL_MIN_SIZE, PD_POOL_MIN_SIZE, NULL);
    assert_non_null(pool);

    cl = pd_alloc_chain_link(pool);
    assert_non_null(cl);
    assert_null(cl->buf);
    assert_null(cl->next);
    assert_int_equal((uintptr_t) cl % PD_ALIGNMENT, 0);

    /* the pool cannot grow past its first block: links run out */
    while (cl != NULL) {
        cl = pd_alloc_chain_link(pool);
    }
    assert_int_equal(pool->used, PD_POOL_MIN_SIZE);

    pd_destroy_pool(pool);
}


static void
pd_test_iovec_basic(void **state)
{
    u_char         mem[64], *a, *b, *c;
    size_t         size;
    pd_buf_t      *bufs[5];
    pd_pool_t     *pool;
    pd_uint_t      n;
    pd_chain_t    *in;
    struct iovec   iov[8];

    (void) state;

    pool = pd_create_pool(1024, 0, NULL);
    assert_non_null(pool);

    /* gaps between the slices keep the entries apart */
    a = mem;
    b = mem + 16;
    c = mem + 40;

    bufs[0] = pd_test_buf(pool, a, 10);
    bufs[1] = pd_test_buf(pool, b, 0);            /* empty: skipped */
    bufs[2] = pd_test_buf(pool, b, 20);
    bufs[3] = pd_test_buf(pool, c, 5);
    bufs[4] = pd_test_buf(pool, c + 5, 0);        /* empty at the end */
    in = pd_test_chain(pool, bufs, 5);

    n = pd_chain_to_iovec(in, iov, 8, 0, &size);
    assert_int_equal(n, 3);
    assert_int_equal(size, 35);
    assert_ptr_equal(iov[0].iov_base, a);
    assert_int_equal(iov[0].iov_len, 10);
    assert_ptr_equal(iov[1].iov_base, b);
    assert_int_equal(iov[1].iov_len, 20);
    assert_ptr_equal(iov[2].iov_base, c);
    assert_int_equal(iov[2].iov_len, 5);

    /* the entry count bounds it */
    n = pd_chain_to_iovec(in, iov, 2, 0, &size);
    assert_int_equal(n, 2);
    assert_int_equal(size, 30);

    /* the byte limit cuts inside a buf */
    n = pd_chain_to_iovec(in, iov, 8, 17, &size);
    assert_int_equal(n, 2);
    assert_int_equal(size, 17);
    assert_int_equal(iov[1].iov_len, 7);

    /* a limit at a buf boundary stops there */
    n = pd_chain_to_iovec(in, iov, 8, 10, &size);
    assert_int_equal(n, 1);
    assert_int_equal(size, 10);

    /* a partly sent buf starts at pos */
    bufs[0]->pos = a + 4;
    n = pd_chain_to_iovec(in, iov, 8, 0, &size);
    assert_int_equal(n, 3);
    assert_int_equal(size, 31);
    assert_ptr_equal(iov[0].iov_base, a + 4);
    assert_int_equal(iov[0].iov_len, 6);

    n = pd_chain_to_iovec(NULL, iov, 8, 0, &size);
    assert_int_equal(n, 0);
    assert_int_equal(size, 0);

    n = pd_chain_to_iovec(in, iov, 0, 0, &size);
    assert_int_equal(n, 0);
    assert_int_equal(size, 0);

    pd_destroy_pool(pool);
}


static void
pd_test_iovec_contiguous(void **state)
{
    size_t         size;
    pd_buf_t      *bufs[3];
    pd_pool_t     *pool;
    pd_uint_t      n;
    pd_shbuf_t    *sb;
    pd_chain_t    *in;
    struct iovec   iov[4];

    (void) state;

    pool = pd_create_pool(1024, 0, NULL);
    assert_non_null(pool);

    sb = pd_shbuf_alloc(30);
    assert_non_null(sb);

    /* a header and a payload laid out back to back share one entry */
    bufs[0] = pd_test_buf(pool, sb->data, 10);
    bufs[1] = pd_test_buf(pool, sb->data + 10, 10);
    bufs[2] = pd_test_buf(pool, sb->data + 25, 5);
    in = pd_test_chain(pool, bufs, 3);

    n = pd_chain_to_iovec(in, iov, 4, 0, &size);
    assert_int_equal(n, 2);
    assert_int_equal(size, 25);
    assert_ptr_equal(iov[0].iov_base, sb->data);
    assert_int_equal(iov[0].iov_len, 20);
    assert_ptr_equal(iov[1].iov_base, sb->data + 25);
    assert_int_equal(iov[1].iov_len, 5);

    /* merging does not need a free entry */
    n = pd_chain_to_iovec(in, iov, 1, 0, &size);
    assert_int_equal(n, 1);
    assert_int_equal(size, 20);

    pd_shbuf_unref(sb);
    pd_destroy_pool(pool);
}


static void
pd_test_update_sent(void **state)
{
    u_char       a[10], b[20], c[5];
    pd_buf_t    *bufs[4];
    pd_pool_t   *pool;
    pd_chain_t  *in, *cl;

    (void) state;

    pool = pd_create_pool(1024, 0, NULL);
    assert_non_null(pool);

    bufs[0] = pd_test_buf(pool, a, sizeof(a));
    bufs[1] = pd_test_buf(pool, b, sizeof(b));
    bufs[2] = pd_test_buf(pool, c, 0);
    bufs[3] = pd_test_buf(pool, c, sizeof(c));
    in = pd_test_chain(pool, bufs, 4);

    /* nothing sent: the head, untouched */
    cl = pd_chain_update_sent(in, 0);
    assert_ptr_equal(cl, in);
    assert_ptr_equal(bufs[0]->pos, a);

    /* inside the first buf */
    cl = pd_chain_update_sent(in, 3);
    assert_ptr_equal(cl, in);
    assert_ptr_equal(bufs[0]->pos, a + 3);

    /* the rest of the first and part of the second */
    cl = pd_chain_update_sent(cl, 7 + 15);
    assert_ptr_equal(cl, in->next);
    assert_ptr_equal(bufs[0]->pos, bufs[0]->last);
    assert_ptr_equal(bufs[1]->pos, b + 15);

    /* exactly the end of the second: the empty link is passed over */
    cl = pd_chain_update_sent(cl, 5);
    assert_ptr_equal(cl, in->next->next->next);
    assert_ptr_equal(bufs[1]->pos, bufs[1]->last);
    assert_ptr_equal(bufs[3]->pos, c);

    /* all of it */
    cl = pd_chain_update_sent(cl, 5);
    assert_null(cl);
    assert_ptr_equal(bufs[3]->pos, bufs[3]->last);

    assert_null(pd_chain_update_sent(NULL, 0));

    pd_destroy_pool(pool);
}


/*
 * Drives iovec building and sent accounting the way a writev() loop does,
 * with a socket that takes `step` bytes a call, and checks the bytes that
 * "went out" are the chain's, in order, once each.
 */
static void
pd_test_partial_writes(void **state)
{
    u_char         src[320], out[320], *p;
    size_t         i, size, step, left, k, off, lens[] = { 1, 0, 37, 64,
                                                          0, 3, 95, 100 };
    pd_buf_t      *bufs[8];
    pd_pool_t     *pool;
    pd_uint_t      n, j;
    pd_chain_t    *in;
    struct iovec   iov[3];

    (void) state;

    for (i = 0; i < sizeof(src); i++) {
        src[i] = (u_char) (i * 7 + 1);
    }

    pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, NULL);
    assert_non_null(pool);

    for (step = 1; step <= 310; step += (step < 20) ? 1 : 29) {
        /* bufs hold separate slices with a gap so entries never merge */
        off = 0;
        for (i = 0; i < pd_nelems(lens); i++) {
            bufs[i] = pd_test_buf(pool, src + off, lens[i]);
            off += lens[i] + 1;
        }
        in = pd_test_chain(pool, bufs, pd_nelems(bufs));

        p = out;

        while (in != NULL) {
            n = pd_chain_to_iovec(in, iov, pd_nelems(iov), 128, &size);
            assert_true(n > 0 && n <= pd_nelems(iov));
            assert_true(size > 0 && size <= 128);

            /* the "socket" takes step bytes of what was offered */
            left = pd_min(step, size);
            k = left;
            for (j = 0; j < n && left > 0; j++) {
                i = pd_min(left, iov[j].iov_len);
                p = pd_cpymem(p, iov[j].iov_base, i);
                left -= i;
            }

            in = pd_chain_update_sent(in, k);
        }

        assert_int_equal(p - out, off - pd_nelems(lens));

        off = 0;
        p = out;
        for (i = 0; i < pd_nelems(lens); i++) {
            if (lens[i] != 0) {
                assert_memory_equal(p, src + off, lens[i]);
            }
            p += lens[i];
            off += lens[i] + 1;
        }

        for (i = 0; i < pd_nelems(bufs); i++) {
            assert_ptr_equal(bufs[i]->pos, bufs[i]->last);
        }

        pd_reset_pool(pool);
    }

    pd_destroy_pool(pool);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_shbuf_refcount),
        cmocka_unit_test(pd_test_shbuf_fanout),
        cmocka_unit_test(pd_test_temp_buf),
        cmocka_unit_test(pd_test_chain_link),
        cmocka_unit_test(pd_test_iovec_basic),
        cmocka_unit_test(pd_test_iovec_contiguous),
        cmocka_unit_test(pd_test_update_sent),
        cmocka_unit_test(pd_test_partial_writes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
