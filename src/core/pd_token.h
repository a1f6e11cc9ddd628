/*
 * pd_token.h: the connect token of the room (DESIGN.md section 4) and the
 * names it signs.  Pure code: no logging, no allocation.
 *
 *     token = lowercase hex(HMAC-SHA256(auth_secret,
 *                                       uid "\n" device "\n" expires))
 *
 * expires is the unix time in seconds, in decimal, as sent.
 *
 * Names (uid, device, app) are 1 to max bytes of the charset
 * [A-Za-z0-9._:@-]: safe in URLs, JSON, log lines, Redis keys and the
 * token's newline-separated text without any escaping.
 */

#ifndef PD_TOKEN_H
#define PD_TOKEN_H

/* PD_UID_MAX, PD_DEVICE_MAX, PD_APP_MAX: pd_msg.h */

#define PD_TOKEN_LEN     64       /* hex characters, without NUL */

/*
 * Checks a token against the secret and the signed fields at time now.
 * Returns PD_OK; PD_ERROR with *err "bad expires" when expires is not
 * 1-19 decimal digits within int64; PD_DECLINED with *err "token
 * expired" when expires < now, or "bad token" when the token is not 64
 * lowercase hex digits, is not the one for these fields, or uid or device
 * is longer than PD_UID_MAX or PD_DEVICE_MAX (no token signs those).
 * Also PD_ERROR, "hmac failed", should libcrypto fail.  The digests are
 * compared in constant time.  *err is a static string; untouched on
 * PD_OK.
 */
pd_int_t pd_token_check(pd_str_t *secret, pd_str_t *uid, pd_str_t *device,
    pd_str_t *expires, pd_str_t *token, time_t now, const char **err);

/*
 * Writes the token for these fields to out (64 lowercase hex digits and
 * a NUL); for tests, the demo and benchmarks.  Writes an empty string if
 * uid or device is too long (see above) or libcrypto fails.
 */
void pd_token_make(pd_str_t *secret, pd_str_t *uid, pd_str_t *device,
    time_t expires, u_char out[65]);

/*
 * PD_OK when s is 1 to max bytes of [A-Za-z0-9._:@-]; else PD_ERROR.
 * max is PD_UID_MAX, PD_DEVICE_MAX or PD_APP_MAX.
 */
pd_int_t pd_token_valid_name(pd_str_t *s, size_t max);

#endif /* PD_TOKEN_H */
