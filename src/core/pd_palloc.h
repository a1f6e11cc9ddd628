/*
 * pd_palloc.h: region pools.  Small allocations are carved from a chain of
 * blocks and released all at once when the pool is destroyed; large ones
 * are malloc()ed and tracked so they can be freed early.  Every pool has a
 * byte limit: past it allocations fail (NULL) instead of growing memory.
 */

#ifndef PD_PALLOC_H
#define PD_PALLOC_H

#define PD_POOL_DEFAULT_SIZE  (16 * 1024)
#define PD_POOL_MIN_SIZE      256

typedef void (*pd_pool_cleanup_pt)(void *data);

typedef struct pd_pool_cleanup_s  pd_pool_cleanup_t;

struct pd_pool_cleanup_s {
    pd_pool_cleanup_pt   handler;
    void                *data;
    pd_pool_cleanup_t   *next;
};

typedef struct pd_pool_large_s  pd_pool_large_t;

struct pd_pool_large_s {
    pd_pool_large_t     *next;
    void                *alloc;
    size_t               size;
};

typedef struct pd_pool_block_s  pd_pool_block_t;

struct pd_pool_block_s {
    u_char              *last;
    u_char              *end;
    pd_pool_block_t     *next;
    pd_uint_t            failed;
};

struct pd_pool_s {
    pd_pool_block_t      first;      /* must stay first: the pool is block 0 */
    pd_pool_block_t     *current;
    size_t               block_size; /* size of every further block */
    size_t               max_small;  /* larger requests go to the large list */
    size_t               limit;      /* 0: no limit */
    size_t               used;       /* bytes obtained from malloc */
    pd_pool_large_t     *large;
    pd_pool_cleanup_t   *cleanup;
    pd_log_t            *log;
};

/*
 * size: bytes of the first block (it also holds the pool header);
 * limit: the most bytes the pool may take from malloc in all, 0 = none.
 * Returns NULL when malloc fails or size is below PD_POOL_MIN_SIZE.
 */
pd_pool_t *pd_create_pool(size_t size, size_t limit, pd_log_t *log);
/* runs cleanup handlers (last added first), frees every block */
void pd_destroy_pool(pd_pool_t *pool);
/* frees large allocations and rewinds the blocks; cleanups are run */
void pd_reset_pool(pd_pool_t *pool);

void *pd_palloc(pd_pool_t *pool, size_t size);   /* aligned */
void *pd_pnalloc(pd_pool_t *pool, size_t size);  /* unaligned */
void *pd_pcalloc(pd_pool_t *pool, size_t size);  /* aligned, zeroed */
/* frees a large allocation early; PD_DECLINED if p is not a large one */
pd_int_t pd_pfree(pd_pool_t *pool, void *p);

/* adds a cleanup with `size` bytes of data allocated from the pool */
pd_pool_cleanup_t *pd_pool_cleanup_add(pd_pool_t *p, size_t size);

/* plain heap helpers that log on failure */
void *pd_alloc(size_t size, pd_log_t *log);
void *pd_calloc(size_t size, pd_log_t *log);
#define pd_free  free

#endif /* PD_PALLOC_H */
