/*
 * pd_array.h: a growable array of fixed-size elements allocated in a pool.
 */

#ifndef PD_ARRAY_H
#define PD_ARRAY_H

typedef struct {
    void       *elts;
    pd_uint_t   nelts;
    size_t      size;
    pd_uint_t   nalloc;
    pd_pool_t  *pool;
} pd_array_t;

/* returns NULL on allocation failure; the array is owned by the pool */
pd_array_t *pd_array_create(pd_pool_t *p, pd_uint_t n, size_t size);
pd_int_t pd_array_init(pd_array_t *a, pd_pool_t *p, pd_uint_t n, size_t size);
/* returns a pointer to the new (uninitialised) element or NULL */
void *pd_array_push(pd_array_t *a);

#endif /* PD_ARRAY_H */
