/*
 * pd_hash.h: the keyed hash of the shared-memory tables.  Clients choose
 * the keys (uids, app names, addresses), so a table seeds the hash with
 * a random key of its own.
 */

#ifndef PD_HASH_H
#define PD_HASH_H

/*
 * SipHash-2-4 of len bytes at p under the 128-bit key k (k[0]: key
 * bytes 0-7, little-endian), as the reference implementation computes it.
 */
uint64_t pd_siphash24(const uint64_t k[2], const u_char *p, size_t len);

#endif /* PD_HASH_H */
