/*
 * pd_buf.h: buffers, chains and refcounted shared blocks.
 *
 * A message going to many connections is framed once into a pd_shbuf_t;
 * every connection's output chain holds a pd_buf_t whose pos/last point
 * into it and which holds one reference.  The block is freed when the last
 * reference goes, so no payload is ever copied per receiver.
 */

#ifndef PD_BUF_H
#define PD_BUF_H

struct pd_shbuf_s {
    pd_uint_t    refcount;
    size_t       len;
    pd_msec_t    stamp;       /* when the API accepted it (monotonic ms),
                               * for the latency histogram; 0: none */
    uint64_t     seq;         /* a broadcast's id, so a connection handed
                               * to another worker gets it once; 0: none */
    u_char       data[];
};

struct pd_buf_s {
    u_char      *pos;
    u_char      *last;
    u_char      *start;
    u_char      *end;
    pd_shbuf_t  *shared;      /* holds one reference when not NULL */
    unsigned     temporary:1; /* memory may be written to */
    unsigned     flush:1;
    unsigned     last_buf:1;  /* close after this one is sent */
};

struct pd_chain_s {
    pd_buf_t    *buf;
    pd_chain_t  *next;
};

#define pd_buf_size(b)  (size_t) ((b)->last - (b)->pos)

/* malloc()ed block with refcount 1, NULL on failure */
pd_shbuf_t *pd_shbuf_alloc(size_t len);
/*
 * takes one more reference and returns sb; a function rather than a comma
 * macro so a call used as a statement does not trip -Wunused-value
 */
static inline pd_shbuf_t *
pd_shbuf_ref(pd_shbuf_t *sb)
{
    sb->refcount++;
    return sb;
}

/* drops one reference, frees at zero */
void pd_shbuf_unref(pd_shbuf_t *sb);

/* pool-allocated buffer of `size` writable bytes, NULL on failure */
pd_buf_t *pd_create_temp_buf(pd_pool_t *pool, size_t size);
pd_chain_t *pd_alloc_chain_link(pd_pool_t *pool);

/*
 * Builds an iovec array from a chain, starting at `in`, up to `niov`
 * entries and `limit` bytes; returns the number of entries and stores the
 * byte total in *size.  Empty bufs are skipped.
 */
pd_uint_t pd_chain_to_iovec(pd_chain_t *in, struct iovec *iov,
    pd_uint_t niov, size_t limit, size_t *size);
/*
 * Advances the chain past `sent` bytes; returns the first link with data
 * left (NULL when all is sent).  Links fully sent are not freed: the
 * caller owns them.
 */
pd_chain_t *pd_chain_update_sent(pd_chain_t *in, size_t sent);

#endif /* PD_BUF_H */
