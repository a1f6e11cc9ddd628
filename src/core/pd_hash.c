/* pd_hash.c: SipHash-2-4, the keyed hash of the shared-memory tables. */

#include "pd_core.h"


/* SipHash-2-4 (Aumasson and Bernstein), the reference algorithm */

#define pd_hash_rotl(x, b)  (((x) << (b)) | ((x) >> (64 - (b))))

#define pd_hash_sipround(v0, v1, v2, v3)                                     \
    do {                                                                     \
        v0 += v1; v1 = pd_hash_rotl(v1, 13); v1 ^= v0;                       \
        v0 = pd_hash_rotl(v0, 32);                                           \
        v2 += v3; v3 = pd_hash_rotl(v3, 16); v3 ^= v2;                       \
        v0 += v3; v3 = pd_hash_rotl(v3, 21); v3 ^= v0;                       \
        v2 += v1; v1 = pd_hash_rotl(v1, 17); v1 ^= v2;                       \
        v2 = pd_hash_rotl(v2, 32);                                           \
    } while (0)


/*
 * Clients choose uids, app names and addresses; a keyed hash with a
 * per-zone random key keeps them from aiming at one bucket.
 */
uint64_t
pd_siphash24(const uint64_t k[2], const u_char *p, size_t len)
{
    size_t    i, blocks;
    uint64_t  v0, v1, v2, v3, m;

    v0 = k[0] ^ 0x736f6d6570736575ULL;
    v1 = k[1] ^ 0x646f72616e646f6dULL;
    v2 = k[0] ^ 0x6c7967656e657261ULL;
    v3 = k[1] ^ 0x7465646279746573ULL;

    for (blocks = len / 8; blocks > 0; blocks--, p += 8) {
        m = 0;

        for (i = 0; i < 8; i++) {
            m |= (uint64_t) p[i] << (8 * i);
        }

        v3 ^= m;
        pd_hash_sipround(v0, v1, v2, v3);
        pd_hash_sipround(v0, v1, v2, v3);
        v0 ^= m;
    }

    /* the last block: the tail bytes, and the length in the top byte */
    m = (uint64_t) len << 56;

    for (i = 0; i < (len & 7); i++) {
        m |= (uint64_t) p[i] << (8 * i);
    }

    v3 ^= m;
    pd_hash_sipround(v0, v1, v2, v3);
    pd_hash_sipround(v0, v1, v2, v3);
    v0 ^= m;

    v2 ^= 0xff;
    pd_hash_sipround(v0, v1, v2, v3);
    pd_hash_sipround(v0, v1, v2, v3);
    pd_hash_sipround(v0, v1, v2, v3);
    pd_hash_sipround(v0, v1, v2, v3);

    return v0 ^ v1 ^ v2 ^ v3;
}
