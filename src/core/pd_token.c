/* pd_token.c: the HMAC-SHA256 connect token and the names it signs. */

#include "pd_core.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define PD_TOKEN_DIGEST_LEN  32
#define PD_TOKEN_EXPIRES_MAX  (sizeof("-9223372036854775808") - 1)

/* the signed text never exceeds this: names are bounded, so no allocation */
#define PD_TOKEN_TEXT_MAX                                                    \
    (PD_UID_MAX + 1 + PD_DEVICE_MAX + 1 + PD_TOKEN_EXPIRES_MAX)

static pd_int_t pd_token_hmac(pd_str_t *secret, pd_str_t *uid,
    pd_str_t *device, const u_char *expires, size_t expires_len, u_char *md);
static pd_int_t pd_token_parse_expires(pd_str_t *expires, int64_t *value);
static pd_int_t pd_token_unhex(pd_str_t *token, u_char *md);


pd_int_t
pd_token_check(pd_str_t *secret, pd_str_t *uid, pd_str_t *device,
    pd_str_t *expires, pd_str_t *token, time_t now, const char **err)
{
    int64_t  value;
    u_char   given[PD_TOKEN_DIGEST_LEN], md[PD_TOKEN_DIGEST_LEN];

    if (pd_token_parse_expires(expires, &value) != PD_OK) {
        *err = "bad expires";
        return PD_ERROR;
    }

    /* checked before the digest: an expired token costs no HMAC */
    if (value < (int64_t) now) {
        *err = "token expired";
        return PD_DECLINED;
    }

    if (uid->len > PD_UID_MAX || device->len > PD_DEVICE_MAX
        || pd_token_unhex(token, given) != PD_OK)
    {
        *err = "bad token";
        return PD_DECLINED;
    }

    if (pd_token_hmac(secret, uid, device, expires->data, expires->len, md)
        != PD_OK)
    {
        *err = "hmac failed";
        return PD_ERROR;
    }

    /* constant time: a timing leak would reveal the digest byte by byte */
    if (CRYPTO_memcmp(md, given, PD_TOKEN_DIGEST_LEN) != 0) {
        *err = "bad token";
        return PD_DECLINED;
    }

    return PD_OK;
}


void
pd_token_make(pd_str_t *secret, pd_str_t *uid, pd_str_t *device,
    time_t expires, u_char out[65])
{
    int     n;
    size_t  i;
    u_char  md[PD_TOKEN_DIGEST_LEN];
    char    text[PD_TOKEN_EXPIRES_MAX + 1];

    static const char  hex[] = "0123456789abcdef";

    out[0] = '\0';

    n = snprintf(text, sizeof(text), "%lld", (long long) expires);

    if (n < 0 || (size_t) n >= sizeof(text)
        || uid->len > PD_UID_MAX || device->len > PD_DEVICE_MAX)
    {
        return;
    }

    if (pd_token_hmac(secret, uid, device, (u_char *) text, (size_t) n, md)
        != PD_OK)
    {
        return;
    }

    for (i = 0; i < PD_TOKEN_DIGEST_LEN; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }

    out[PD_TOKEN_LEN] = '\0';
}


pd_int_t
pd_token_valid_name(pd_str_t *s, size_t max)
{
    size_t  i;
    u_char  c;

    if (s->len == 0 || s->len > max) {
        return PD_ERROR;
    }

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || c == '.' || c == '_' || c == ':' || c == '@' || c == '-')
        {
            continue;
        }

        return PD_ERROR;
    }

    return PD_OK;
}


/* md receives PD_TOKEN_DIGEST_LEN bytes; uid and device are bounded */
static pd_int_t
pd_token_hmac(pd_str_t *secret, pd_str_t *uid, pd_str_t *device,
    const u_char *expires, size_t expires_len, u_char *md)
{
    u_char        text[PD_TOKEN_TEXT_MAX], *p;
    unsigned int  mdlen;

    p = text;

    if (uid->len) {
        p = pd_cpymem(p, uid->data, uid->len);
    }

    *p++ = '\n';

    if (device->len) {
        p = pd_cpymem(p, device->data, device->len);
    }

    *p++ = '\n';
    p = pd_cpymem(p, expires, expires_len);

    /* HMAC() wants a non-NULL key even when it is empty */
    if (HMAC(EVP_sha256(), secret->len ? secret->data : (u_char *) "",
             (int) secret->len, text, p - text, md, &mdlen)
        == NULL
        || mdlen != PD_TOKEN_DIGEST_LEN)
    {
        return PD_ERROR;
    }

    return PD_OK;
}


/* 1-19 decimal digits within int64: no sign, no spaces, no overflow */
static pd_int_t
pd_token_parse_expires(pd_str_t *expires, int64_t *value)
{
    size_t    i;
    int64_t   v, d;

    if (expires->len == 0 || expires->len > PD_TOKEN_EXPIRES_MAX - 1) {
        return PD_ERROR;
    }

    v = 0;

    for (i = 0; i < expires->len; i++) {
        if (expires->data[i] < '0' || expires->data[i] > '9') {
            return PD_ERROR;
        }

        d = expires->data[i] - '0';

        if (v > (INT64_MAX - d) / 10) {
            return PD_ERROR;
        }

        v = v * 10 + d;
    }

    *value = v;

    return PD_OK;
}


/* only lowercase: the contract says so, and one spelling per token */
static pd_int_t
pd_token_unhex(pd_str_t *token, u_char *md)
{
    size_t  i;
    u_char  c, v;

    if (token->len != PD_TOKEN_LEN) {
        return PD_ERROR;
    }

    for (i = 0; i < PD_TOKEN_LEN; i++) {
        c = token->data[i];

        if (c >= '0' && c <= '9') {
            v = c - '0';

        } else if (c >= 'a' && c <= 'f') {
            v = c - 'a' + 10;

        } else {
            return PD_ERROR;
        }

        if (i & 1) {
            md[i / 2] |= v;

        } else {
            md[i / 2] = (u_char) (v << 4);
        }
    }

    return PD_OK;
}
