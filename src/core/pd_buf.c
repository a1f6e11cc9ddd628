/* pd_buf.c: refcounted shared blocks, pool buffers and chain helpers. */

#include "pd_core.h"


/*
 * Returns a malloc()ed block of `len` data bytes holding one reference
 * (the caller's), or NULL.  Freed by the pd_shbuf_unref() that drops the
 * last reference.
 */
pd_shbuf_t *
pd_shbuf_alloc(size_t len)
{
    pd_shbuf_t  *sb;

    if (len > SIZE_MAX - sizeof(pd_shbuf_t)) {
        return NULL;
    }

    sb = malloc(sizeof(pd_shbuf_t) + len);
    if (sb == NULL) {
        return NULL;
    }

    sb->refcount = 1;
    sb->len = len;
    sb->stamp = 0;
    sb->seq = 0;

    return sb;
}


/* drops one reference and frees the block with the last; NULL is a no-op */
void
pd_shbuf_unref(pd_shbuf_t *sb)
{
    if (sb == NULL) {
        return;
    }

    if (--sb->refcount == 0) {
        pd_free(sb);
    }
}


/* a writable, empty buffer of `size` bytes, all owned by the pool */
pd_buf_t *
pd_create_temp_buf(pd_pool_t *pool, size_t size)
{
    pd_buf_t  *b;

    b = pd_pcalloc(pool, sizeof(pd_buf_t));
    if (b == NULL) {
        return NULL;
    }

    b->start = pd_pnalloc(pool, size);
    if (b->start == NULL) {
        return NULL;
    }

    b->pos = b->start;
    b->last = b->start;
    b->end = b->start + size;
    b->temporary = 1;

    return b;
}


/* an empty chain link (buf and next NULL) owned by the pool */
pd_chain_t *
pd_alloc_chain_link(pd_pool_t *pool)
{
    pd_chain_t  *cl;

    cl = pd_palloc(pool, sizeof(pd_chain_t));
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = NULL;
    cl->next = NULL;

    return cl;
}


/*
 * Fills at most `niov` entries with the unsent bytes of the chain, up to
 * `limit` bytes in all (0: no limit).  Bufs that follow each other in
 * memory share one entry.  Returns the number of entries; *size gets the
 * bytes they cover.
 */
pd_uint_t
pd_chain_to_iovec(pd_chain_t *in, struct iovec *iov, pd_uint_t niov,
    size_t limit, size_t *size)
{
    size_t     total, n;
    u_char    *prev;
    pd_uint_t  i;

    if (limit == 0) {
        limit = SIZE_MAX;
    }

    total = 0;
    prev = NULL;
    i = 0;

    for ( /* void */ ; in != NULL && total < limit; in = in->next) {
        n = pd_buf_size(in->buf);

        if (n == 0) {
            continue;
        }

        n = pd_min(n, limit - total);

        if (prev == in->buf->pos) {
            iov[i - 1].iov_len += n;

        } else {
            if (i == niov) {
                break;
            }

            iov[i].iov_base = (void *) in->buf->pos;
            iov[i].iov_len = n;
            i++;
        }

        prev = in->buf->pos + n;
        total += n;
    }

    *size = total;

    return i;
}


/*
 * Moves pos past the `sent` bytes that writev() took and returns the
 * first link that still has data, NULL when the whole chain went out.
 */
pd_chain_t *
pd_chain_update_sent(pd_chain_t *in, size_t sent)
{
    size_t  n;

    for ( /* void */ ; in != NULL; in = in->next) {
        n = pd_buf_size(in->buf);

        if (n == 0) {
            continue;
        }

        if (sent < n) {
            in->buf->pos += sent;
            return in;
        }

        in->buf->pos = in->buf->last;
        sent -= n;
    }

    return NULL;
}
