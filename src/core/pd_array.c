/* pd_array.c: growable arrays in a pool (see pd_array.h). */

#include "pd_core.h"


/* an array of room for n elements, struct and elements owned by the pool */
pd_array_t *
pd_array_create(pd_pool_t *p, pd_uint_t n, size_t size)
{
    pd_array_t  *a;

    a = pd_palloc(p, sizeof(pd_array_t));
    if (a == NULL) {
        return NULL;
    }

    if (pd_array_init(a, p, n, size) != PD_OK) {
        return NULL;
    }

    return a;
}


/* sets up an array embedded in the caller's struct; PD_ERROR on failure */
pd_int_t
pd_array_init(pd_array_t *a, pd_pool_t *p, pd_uint_t n, size_t size)
{
    a->nelts = 0;
    a->size = size;
    a->nalloc = n;
    a->pool = p;

    if (size != 0 && n > SIZE_MAX / size) {
        a->elts = NULL;
        return PD_ERROR;
    }

    a->elts = pd_palloc(p, n * size);
    if (a->elts == NULL) {
        return PD_ERROR;
    }

    return PD_OK;
}


/*
 * Returns room for one more element at the end, or NULL when the pool
 * cannot give the doubled array.  Growth copies: pointers to elements are
 * stale after a push that grew the array.
 */
void *
pd_array_push(pd_array_t *a)
{
    void       *elt, *new;
    size_t      old_size;
    pd_uint_t   nalloc;

    if (a->nelts == a->nalloc) {
        nalloc = (a->nalloc == 0) ? 1 : 2 * a->nalloc;

        if (nalloc < a->nalloc
            || (a->size != 0 && nalloc > SIZE_MAX / a->size))
        {
            return NULL;
        }

        new = pd_palloc(a->pool, nalloc * a->size);
        if (new == NULL) {
            return NULL;
        }

        old_size = a->nalloc * a->size;
        if (old_size != 0) {
            pd_memcpy(new, a->elts, old_size);
        }

        /* an old large allocation goes back now, not with the pool */
        (void) pd_pfree(a->pool, a->elts);

        a->elts = new;
        a->nalloc = nalloc;
    }

    elt = (u_char *) a->elts + a->size * a->nelts;
    a->nelts++;

    return elt;
}
