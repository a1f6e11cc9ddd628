/*
 * pd_tls_mem.c: what OpenSSL keeps for one idle server connection after
 * a TLS handshake, by allocation site.  The handshake runs in memory
 * (a client and a server SSL over memory BIOs, the pushd settings that
 * matter: RELEASE_BUFFERS, one ticket), OpenSSL's allocations are
 * counted through CRYPTO_set_mem_functions(), and what the server
 * object still holds once the client is freed is printed.  The memory
 * BIOs' own buffers are left out: pushd's socket BIO has none.
 *
 *   objs/bench/tls_mem CERT KEY
 */

#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PD_TM_MAX  4096

typedef struct {
    void        *p;
    size_t       n;
    const char  *file;
    int          line;
} pd_tm_alloc_t;

static pd_tm_alloc_t  pd_tm[PD_TM_MAX];
static int            pd_tm_n;
static int            pd_tm_on;

static void
pd_tm_add(void *p, size_t n, const char *file, int line)
{
    if (pd_tm_on && p != NULL && pd_tm_n < PD_TM_MAX) {
        pd_tm[pd_tm_n].p = p;
        pd_tm[pd_tm_n].n = n;
        pd_tm[pd_tm_n].file = file;
        pd_tm[pd_tm_n].line = line;
        pd_tm_n++;
    }
}

static void
pd_tm_del(void *p)
{
    int  i;

    for (i = pd_tm_n - 1; i >= 0; i--) {
        if (pd_tm[i].p == p) {
            pd_tm[i] = pd_tm[--pd_tm_n];
            return;
        }
    }
}

static void *
pd_tm_malloc(size_t n, const char *file, int line)
{
    void  *p = malloc(n);

    pd_tm_add(p, n, file, line);
    return p;
}

static void *
pd_tm_realloc(void *p, size_t n, const char *file, int line)
{
    if (p != NULL) {
        pd_tm_del(p);
    }

    p = realloc(p, n);
    pd_tm_add(p, n, file, line);
    return p;
}

static void
pd_tm_free(void *p, const char *file, int line)
{
    (void) file;
    (void) line;

    if (p != NULL) {
        pd_tm_del(p);
    }

    free(p);
}

static void
pd_tm_pump(BIO *from, BIO *to)
{
    char  buf[16384];
    int   n;

    while ((n = BIO_read(from, buf, sizeof(buf))) > 0) {
        (void) BIO_write(to, buf, n);
    }
}

int
main(int argc, char **argv)
{
    SSL_CTX  *sctx, *cctx;
    SSL      *s, *c;
    BIO      *si, *so, *ci, *co;
    char      b[1];
    size_t    total;
    int       i, k, allocs;

    if (argc != 3) {
        fprintf(stderr, "usage: tls_mem CERT KEY\n");
        return 2;
    }

    CRYPTO_set_mem_functions(pd_tm_malloc, pd_tm_realloc, pd_tm_free);

    sctx = SSL_CTX_new(TLS_server_method());
    cctx = SSL_CTX_new(TLS_client_method());

    if (sctx == NULL || cctx == NULL
        || SSL_CTX_use_certificate_chain_file(sctx, argv[1]) != 1
        || SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM) != 1)
    {
        fprintf(stderr, "tls_mem: cannot set up the contexts\n");
        return 1;
    }

    SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);
    (void) SSL_CTX_set_num_tickets(sctx, 1);

    /* the first connection warms the contexts' caches; the second counts */
    for (i = 0; i < 2; i++) {
        pd_tm_on = (i == 1);

        s = SSL_new(sctx);
        c = SSL_new(cctx);
        si = BIO_new(BIO_s_mem());
        so = BIO_new(BIO_s_mem());
        ci = BIO_new(BIO_s_mem());
        co = BIO_new(BIO_s_mem());
        SSL_set_bio(s, si, so);
        SSL_set_bio(c, ci, co);
        SSL_set_accept_state(s);
        SSL_set_connect_state(c);

        for (k = 0; k < 10; k++) {
            (void) SSL_do_handshake(c);
            pd_tm_pump(co, si);
            (void) SSL_do_handshake(s);
            pd_tm_pump(so, ci);
        }

        /* one byte each way: the connection is in use, then idle */
        (void) SSL_write(c, "x", 1);
        pd_tm_pump(co, si);
        (void) SSL_read(s, b, 1);

        pd_tm_on = 0;
        SSL_free(c);

        if (i == 1) {
            /* the memory BIOs' buffers are not a socket BIO's */
            (void) BIO_reset(si);
            (void) BIO_reset(so);
        }
    }

    total = 0;
    allocs = 0;

    for (i = 0; i < pd_tm_n; i++) {
        if (strstr(pd_tm[i].file, "buffer.c") != NULL) {
            continue;           /* the memory BIOs' BUF_MEM */
        }

        total += pd_tm[i].n;
        allocs++;

        if (pd_tm[i].n >= 256) {
            printf("  %6zu B  %s:%d\n", pd_tm[i].n, pd_tm[i].file,
                   pd_tm[i].line);
        }
    }

    printf("%s, %s: an idle server connection holds %zu B in %d "
           "allocations (those of 256 B and more above)\n",
           OpenSSL_version(OPENSSL_VERSION), SSL_get_version(s), total,
           allocs);

    SSL_free(s);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);

    return 0;
}
