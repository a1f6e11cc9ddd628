/*
 * pd_ssl_tickets.c: the session-ticket keys of a TLS context, rotated.
 *
 * openssl's own ticket keys are made once per context and kept for its
 * life: one key, shared by every worker, that would decrypt every ticket
 * ever issued (and with it the session keys of recorded traffic) for as
 * long as the daemon runs without a reload.  Here a context holds a ring
 * of two keys in shared memory: the current one, which encrypts new
 * tickets, and the previous one, which still decrypts (and renews) the
 * tickets of the last period.  A key is random, made by the first worker
 * that needs one in a new period (periods are wall-clock, so all the
 * workers agree on them) and wiped two periods later; a ticket therefore
 * resumes a session on any worker for at least one period and at most
 * two, and the session timeout (the ticket lifetime told to clients)
 * is one period.
 */

#include "pd_core.h"

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>

#define PD_SSL_TICKET_NAME  16

typedef struct {
    u_char             name[PD_SSL_TICKET_NAME];
    u_char             aes[32];      /* AES-256-CBC */
    u_char             hmac[32];     /* HMAC-SHA256 */
    int64_t            period;       /* the period it encrypts in; 0: none */
} pd_ssl_ticket_key_t;

struct pd_ssl_tickets_s {
    pthread_mutex_t       mutex;
    int64_t               rotation;  /* seconds per period */
    pd_ssl_ticket_key_t   key[2];    /* current, previous */
};

static int pd_ssl_ticket_cb(SSL *s, u_char *name, u_char *iv,
    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc);
static pd_int_t pd_ssl_ticket_keys(pd_ssl_tickets_t *t,
    pd_ssl_ticket_key_t *cur, pd_ssl_ticket_key_t *prev);
static void pd_ssl_tickets_repair(void *data);


/*
 * Gives ssl->ctx the rotating ticket keys, rotation seconds apart (the
 * ring lives in memory shared from here on, so call it in the master
 * before fork).  NULL, or a phrase on failure.
 */
const char *
pd_ssl_tickets_init(pd_ssl_t *ssl, time_t rotation)
{
    pd_ssl_tickets_t  *t;

    ssl->tickets_shm.size = sizeof(pd_ssl_tickets_t);
    ssl->tickets_shm.log = NULL;

    if (pd_shm_alloc(&ssl->tickets_shm) != PD_OK) {
        return "cannot map the session ticket keys";
    }

    t = (pd_ssl_tickets_t *) ssl->tickets_shm.addr;
    t->rotation = rotation > 0 ? rotation : 1;

    if (pd_shlock_init(&t->mutex) != PD_OK) {
        pd_ssl_tickets_free(ssl);
        return "cannot create the lock of the session ticket keys";
    }

    ssl->tickets = t;

    /* the callback finds the ring through the context it was called for */
    if (SSL_CTX_set_app_data(ssl->ctx, ssl) == 0
        || SSL_CTX_set_tlsext_ticket_key_evp_cb(ssl->ctx, pd_ssl_ticket_cb)
           == 0)
    {
        pd_ssl_tickets_free(ssl);
        return "cannot set the session ticket callback";
    }

    /* the lifetime hint clients get, and the age a ticket may have */
    (void) SSL_CTX_set_timeout(ssl->ctx, (long) t->rotation);

    return NULL;
}


/* wipes the keys and unmaps the ring (this process's mapping only) */
void
pd_ssl_tickets_free(pd_ssl_t *ssl)
{
    if (ssl->tickets_shm.addr == NULL) {
        return;
    }

    OPENSSL_cleanse(ssl->tickets_shm.addr, ssl->tickets_shm.size);
    pd_shm_free(&ssl->tickets_shm);

    ssl->tickets_shm.addr = NULL;
    ssl->tickets = NULL;
}


/*
 * openssl's ticket key callback: enc 1 encrypts a new ticket with the
 * current key; enc 0 finds the key a ticket names: 1 with the current
 * one, 2 with the previous one (decrypted, and a new ticket is issued),
 * 0 when it names neither (expired or not ours: a full handshake).
 */
static int
pd_ssl_ticket_cb(SSL *s, u_char *name, u_char *iv, EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc)
{
    pd_ssl_t             *ssl;
    pd_ssl_ticket_key_t   keys[2], *k;
    OSSL_PARAM            params[3];
    int                   rc;

    ssl = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));

    if (ssl == NULL || ssl->tickets == NULL
        || pd_ssl_ticket_keys(ssl->tickets, &keys[0], &keys[1]) != PD_OK)
    {
        return -1;
    }

    rc = -1;
    k = NULL;

    if (enc) {
        k = &keys[0];

        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc()))
            != 1)
        {
            goto done;
        }

        pd_memcpy(name, k->name, PD_SSL_TICKET_NAME);
        rc = 1;

    } else if (memcmp(name, keys[0].name, PD_SSL_TICKET_NAME) == 0) {
        k = &keys[0];
        rc = 1;

    } else if (keys[1].period != 0
               && memcmp(name, keys[1].name, PD_SSL_TICKET_NAME) == 0)
    {
        k = &keys[1];
        rc = 2;

    } else {
        rc = 0;
        goto done;
    }

    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                                  k->hmac, sizeof(k->hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();

    if (EVP_MAC_CTX_set_params(hctx, params) != 1
        || (enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes,
                                     iv)
                : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes,
                                     iv))
           != 1)
    {
        rc = -1;
    }

done:

    OPENSSL_cleanse(keys, sizeof(keys));
    return rc;
}


/*
 * Copies out the keys of this period: cur, and prev when it is the last
 * period's (else prev->period is 0).  The first caller in a new period
 * makes its key; the current key moves to previous if it was the last
 * period's, and whatever is older is wiped.  PD_ERROR when the lock or
 * the random generator fails.
 */
static pd_int_t
pd_ssl_ticket_keys(pd_ssl_tickets_t *t, pd_ssl_ticket_key_t *cur,
    pd_ssl_ticket_key_t *prev)
{
    pd_ssl_ticket_key_t  *k;
    int64_t               period;
    pd_int_t              rc;

    period = (int64_t) time(NULL) / t->rotation + 1;

    if (pd_shlock_lock(&t->mutex, pd_ssl_tickets_repair, t) != PD_OK) {
        return PD_ERROR;
    }

    rc = PD_OK;

    if (t->key[0].period != period) {
        if (t->key[0].period == period - 1) {
            t->key[1] = t->key[0];

        } else {
            OPENSSL_cleanse(&t->key[1], sizeof(pd_ssl_ticket_key_t));
        }

        k = &t->key[0];

        if (RAND_bytes(k->name, sizeof(k->name)) == 1
            && RAND_bytes(k->aes, sizeof(k->aes)) == 1
            && RAND_bytes(k->hmac, sizeof(k->hmac)) == 1)
        {
            k->period = period;

        } else {
            OPENSSL_cleanse(k, sizeof(pd_ssl_ticket_key_t));
            rc = PD_ERROR;
        }
    }

    *cur = t->key[0];
    *prev = t->key[1];

    pd_shlock_unlock(&t->mutex);

    /* a previous key is good for the period after its own only */
    if (prev->period != period - 1) {
        OPENSSL_cleanse(prev, sizeof(pd_ssl_ticket_key_t));
    }

    return rc;
}


/* a worker died rotating: start afresh (old tickets: full handshakes) */
static void
pd_ssl_tickets_repair(void *data)
{
    pd_ssl_tickets_t  *t = data;

    OPENSSL_cleanse(t->key, sizeof(t->key));
}
