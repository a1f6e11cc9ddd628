/* pd_palloc.c: region pools with a byte limit (see pd_palloc.h). */

#include "pd_core.h"

/*
 * After this many misses a block stops being tried first: a block that
 * keeps failing is nearly full and only slows every allocation down.
 */
#define PD_POOL_MAX_FAILED   4

/* how many large headers are searched for one to reuse */
#define PD_POOL_LARGE_REUSE  4

static void *pd_palloc_small(pd_pool_t *pool, size_t size, int align);
static void *pd_palloc_block(pd_pool_t *pool, size_t size);
static void *pd_palloc_large(pd_pool_t *pool, size_t size);
static pd_int_t pd_pool_reserve(pd_pool_t *pool, size_t size);
static void pd_pool_run_cleanups(pd_pool_t *pool);
static void pd_pool_free_large(pd_pool_t *pool);


/*
 * Returns a pool whose header sits in the first block of `size` bytes, or
 * NULL (logged) when size is below PD_POOL_MIN_SIZE, above the limit, or
 * malloc fails.  The caller owns the pool and must pd_destroy_pool() it.
 */
pd_pool_t *
pd_create_pool(size_t size, size_t limit, pd_log_t *log)
{
    pd_pool_t  *pool;

    if (size < PD_POOL_MIN_SIZE || (limit != 0 && size > limit)) {
        if (log != NULL) {
            pd_log_error(PD_LOG_ALERT, log, 0,
                         "pool of %zu bytes with limit %zu is invalid",
                         size, limit);
        }
        return NULL;
    }

    pool = pd_alloc(size, log);
    if (pool == NULL) {
        return NULL;
    }

    pool->first.last = (u_char *) pool + sizeof(pd_pool_t);
    pool->first.end = (u_char *) pool + size;
    pool->first.next = NULL;
    pool->first.failed = 0;

    pool->current = &pool->first;
    pool->block_size = size;
    pool->max_small = pd_min(size - sizeof(pd_pool_t), 4096);
    pool->limit = limit;
    pool->used = size;
    pool->large = NULL;
    pool->cleanup = NULL;
    pool->log = log;

    return pool;
}


/* runs the cleanups (last added first), then frees every byte of the pool */
void
pd_destroy_pool(pd_pool_t *pool)
{
    pd_pool_block_t  *b, *next;

    pd_pool_run_cleanups(pool);
    pd_pool_free_large(pool);

    for (b = pool->first.next; b != NULL; b = next) {
        next = b->next;
        pd_free(b);
    }

    pd_free(pool);
}


/*
 * Makes the pool as good as new while keeping its blocks, so a pool reused
 * per request does not go back to malloc: cleanups run (last added first),
 * large allocations are freed, every block is rewound.
 */
void
pd_reset_pool(pd_pool_t *pool)
{
    pd_pool_block_t  *b;

    pd_pool_run_cleanups(pool);
    pd_pool_free_large(pool);

    pool->first.last = (u_char *) pool + sizeof(pd_pool_t);
    pool->first.failed = 0;

    for (b = pool->first.next; b != NULL; b = b->next) {
        b->last = (u_char *) b + sizeof(pd_pool_block_t);
        b->failed = 0;
    }

    pool->current = &pool->first;
}


/* PD_ALIGNMENT-aligned memory owned by the pool, NULL on failure */
void *
pd_palloc(pd_pool_t *pool, size_t size)
{
    if (size <= pool->max_small) {
        return pd_palloc_small(pool, size, 1);
    }

    return pd_palloc_large(pool, size);
}


/* like pd_palloc() without alignment, for strings and byte buffers */
void *
pd_pnalloc(pd_pool_t *pool, size_t size)
{
    if (size <= pool->max_small) {
        return pd_palloc_small(pool, size, 0);
    }

    return pd_palloc_large(pool, size);
}


/* like pd_palloc(), zero-filled */
void *
pd_pcalloc(pd_pool_t *pool, size_t size)
{
    void  *p;

    p = pd_palloc(pool, size);
    if (p != NULL) {
        pd_memzero(p, size);
    }

    return p;
}


/*
 * Frees a large allocation before the pool goes and gives its bytes back
 * to the limit; PD_DECLINED when p is not a live large allocation.
 */
pd_int_t
pd_pfree(pd_pool_t *pool, void *p)
{
    pd_pool_large_t  *l;

    if (p == NULL) {
        return PD_DECLINED;
    }

    for (l = pool->large; l != NULL; l = l->next) {
        if (l->alloc == p) {
            pd_free(l->alloc);
            l->alloc = NULL;
            pool->used -= l->size;
            l->size = 0;
            return PD_OK;
        }
    }

    return PD_DECLINED;
}


/*
 * Registers a cleanup to run when the pool is destroyed or reset; `size`
 * bytes of data (if any) come from the pool.  The handler starts NULL
 * (skipped) so a caller may fill it once its resource exists.
 */
pd_pool_cleanup_t *
pd_pool_cleanup_add(pd_pool_t *p, size_t size)
{
    pd_pool_cleanup_t  *c;

    c = pd_palloc(p, sizeof(pd_pool_cleanup_t));
    if (c == NULL) {
        return NULL;
    }

    if (size != 0) {
        c->data = pd_palloc(p, size);
        if (c->data == NULL) {
            return NULL;
        }

    } else {
        c->data = NULL;
    }

    c->handler = NULL;
    c->next = p->cleanup;
    p->cleanup = c;

    return c;
}


/* malloc() that logs its failure when a log is given */
void *
pd_alloc(size_t size, pd_log_t *log)
{
    void  *p;

    p = malloc(size);
    if (p == NULL && log != NULL) {
        pd_log_error(PD_LOG_EMERG, log, errno, "malloc(%zu) failed", size);
    }

    return p;
}


/* pd_alloc(), zero-filled */
void *
pd_calloc(size_t size, pd_log_t *log)
{
    void  *p;

    p = pd_alloc(size, log);
    if (p != NULL) {
        pd_memzero(p, size);
    }

    return p;
}


static void *
pd_palloc_small(pd_pool_t *pool, size_t size, int align)
{
    u_char           *m;
    pd_pool_block_t  *b;

    for (b = pool->current; b != NULL; b = b->next) {
        m = b->last;

        if (align) {
            m = pd_align_ptr(m, PD_ALIGNMENT);
        }

        /* the aligned pointer may pass an unaligned end */
        if (m <= b->end && (size_t) (b->end - m) >= size) {
            b->last = m + size;
            return m;
        }
    }

    return pd_palloc_block(pool, size);
}


/* adds a block of block_size bytes and carves `size` from its start */
static void *
pd_palloc_block(pd_pool_t *pool, size_t size)
{
    u_char           *m;
    pd_pool_block_t  *b, *nb;

    if (pd_pool_reserve(pool, pool->block_size) != PD_OK) {
        return NULL;
    }

    nb = pd_alloc(pool->block_size, pool->log);
    if (nb == NULL) {
        pool->used -= pool->block_size;
        return NULL;
    }

    m = pd_align_ptr((u_char *) nb + sizeof(pd_pool_block_t), PD_ALIGNMENT);

    nb->last = m + size;
    nb->end = (u_char *) nb + pool->block_size;
    nb->next = NULL;
    nb->failed = 0;

    /* every block the request walked past missed once more */
    for (b = pool->current; b->next != NULL; b = b->next) {
        if (b->failed++ > PD_POOL_MAX_FAILED) {
            pool->current = b->next;
        }
    }

    b->next = nb;

    return m;
}


/* large allocations are malloc()ed and tracked for pd_pfree() */
static void *
pd_palloc_large(pd_pool_t *pool, size_t size)
{
    void             *p;
    pd_uint_t         n;
    pd_pool_large_t  *l;

    if (pd_pool_reserve(pool, size) != PD_OK) {
        return NULL;
    }

    p = pd_alloc(size, pool->log);
    if (p == NULL) {
        pool->used -= size;
        return NULL;
    }

    /* headers freed by pd_pfree() near the head are reused */
    n = 0;
    for (l = pool->large; l != NULL && n < PD_POOL_LARGE_REUSE; l = l->next) {
        if (l->alloc == NULL) {
            l->alloc = p;
            l->size = size;
            return p;
        }
        n++;
    }

    l = pd_palloc_small(pool, sizeof(pd_pool_large_t), 1);
    if (l == NULL) {
        pd_free(p);
        pool->used -= size;
        return NULL;
    }

    l->alloc = p;
    l->size = size;
    l->next = pool->large;
    pool->large = l;

    return p;
}


/* counts `size` more bytes against the limit, PD_ERROR (logged) past it */
static pd_int_t
pd_pool_reserve(pd_pool_t *pool, size_t size)
{
    if (pool->limit != 0
        && (pool->used > pool->limit || size > pool->limit - pool->used))
    {
        if (pool->log != NULL) {
            pd_log_error(PD_LOG_ERR, pool->log, 0,
                         "pool limit of %zu bytes reached "
                         "(%zu used, %zu more requested)",
                         pool->limit, pool->used, size);
        }
        return PD_ERROR;
    }

    pool->used += size;

    return PD_OK;
}


static void
pd_pool_run_cleanups(pd_pool_t *pool)
{
    pd_pool_cleanup_t  *c;

    /* a handler may add cleanups of its own: take each off before running */
    while (pool->cleanup != NULL) {
        c = pool->cleanup;
        pool->cleanup = c->next;

        if (c->handler != NULL) {
            c->handler(c->data);
        }
    }
}


static void
pd_pool_free_large(pd_pool_t *pool)
{
    pd_pool_large_t  *l;

    for (l = pool->large; l != NULL; l = l->next) {
        if (l->alloc != NULL) {
            pd_free(l->alloc);
            pool->used -= l->size;
        }
    }

    pool->large = NULL;
}
