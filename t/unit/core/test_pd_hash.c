/* test_pd_hash.c: unit tests for the keyed hash (pd_hash.c). */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>


static void
pd_test_siphash24_vectors(void **state)
{
    u_char          msg[64];
    size_t          i;
    uint64_t        key[2];
    static struct { size_t len; uint64_t hash; }  vectors[] = {
        {  0, 0x726fdb47dd0e0e31ULL },
        {  1, 0x74f839c593dc67fdULL },
        {  7, 0xab0200f58b01d137ULL },
        {  8, 0x93f5f5799a932462ULL },
        { 15, 0xa129ca6149be45e5ULL },
        { 16, 0x3f2acc7f57c29bdbULL },
        { 63, 0x958a324ceb064572ULL },
    };

    (void) state;

    /* the reference key 00 01 .. 0f, little-endian words */
    key[0] = 0x0706050403020100ULL;
    key[1] = 0x0f0e0d0c0b0a0908ULL;

    for (i = 0; i < sizeof(msg); i++) {
        msg[i] = (u_char) i;
    }

    for (i = 0; i < pd_nelems(vectors); i++) {
        assert_true(pd_siphash24(key, msg, vectors[i].len)
                    == vectors[i].hash);
    }
}


static void
pd_test_siphash24_key(void **state)
{
    u_char    msg[] = "uid-42";
    uint64_t  k1[2] = { 1, 2 }, k2[2] = { 1, 3 };

    (void) state;

    /* the key is what keeps clients from choosing the buckets */
    assert_true(pd_siphash24(k1, msg, 6) != pd_siphash24(k2, msg, 6));
    assert_true(pd_siphash24(k1, msg, 6) == pd_siphash24(k1, msg, 6));
    assert_true(pd_siphash24(k1, msg, 6) != pd_siphash24(k1, msg, 5));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_siphash24_vectors),
        cmocka_unit_test(pd_test_siphash24_key),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
