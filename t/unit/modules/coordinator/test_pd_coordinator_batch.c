/*
 * test_pd_coordinator_batch.c: the state event queue (bounded, taken
 * in batches of at most state_batch, kept until a batch was answered
 * 2xx, dropped and counted beyond the bound), the backoff (doubling,
 * capped, jittered within half), and the callback signature.
 */

#include "pd_core.h"
#include "pd_room.h"
#include "pd_coordinator.h"

#include <setjmp.h>
#include <cmocka.h>

#define E(s)  (const u_char *) (s), sizeof(s) - 1

static void
test_batches_in_order(void **state)
{
    pd_coord_batch_t   b;
    u_char            *body;
    size_t             len;

    (void) state;

    pd_coord_batch_init(&b, 10, 2);

    assert_null(pd_coord_batch_take(&b, &len));

    assert_int_equal(pd_coord_batch_push(&b, E("{\"n\":1}")), PD_OK);
    assert_int_equal(pd_coord_batch_push(&b, E("{\"n\":2}")), PD_OK);
    assert_int_equal(pd_coord_batch_push(&b, E("{\"n\":3}")), PD_OK);

    body = pd_coord_batch_take(&b, &len);
    assert_non_null(body);
    assert_int_equal(len, sizeof("{\"events\":[{\"n\":1},{\"n\":2}]}") - 1);
    assert_memory_equal(body, "{\"events\":[{\"n\":1},{\"n\":2}]}", len);
    assert_int_equal(b.sending, 2);
    pd_free(body);

    /* a failed batch stays, whole and first */
    pd_coord_batch_done(&b, 0);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.failures, 1);

    body = pd_coord_batch_take(&b, &len);
    assert_memory_equal(body, "{\"events\":[{\"n\":1},{\"n\":2}]}", len);
    pd_free(body);

    /* answered: its events leave, the rest is next */
    pd_coord_batch_done(&b, 1);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.failures, 0);

    assert_int_equal(pd_coord_batch_push(&b, E("{\"n\":4}")), PD_OK);

    body = pd_coord_batch_take(&b, &len);
    assert_memory_equal(body, "{\"events\":[{\"n\":3},{\"n\":4}]}", len);
    pd_free(body);
    pd_coord_batch_done(&b, 1);

    assert_int_equal(b.n, 0);
    assert_null(pd_coord_batch_take(&b, &len));

    /* the tail was reset with the last event: pushing works again */
    assert_int_equal(pd_coord_batch_push(&b, E("{\"n\":5}")), PD_OK);
    body = pd_coord_batch_take(&b, &len);
    assert_memory_equal(body, "{\"events\":[{\"n\":5}]}", len);
    pd_free(body);

    pd_coord_batch_free(&b);
}

static void
test_bound_drops_and_counts(void **state)
{
    pd_coord_batch_t  b;
    pd_uint_t         i;

    (void) state;

    pd_coord_batch_init(&b, 3, 100);

    for (i = 0; i < 3; i++) {
        assert_int_equal(pd_coord_batch_push(&b, E("{}")), PD_OK);
    }

    assert_int_equal(pd_coord_batch_push(&b, E("{}")), PD_BUSY);
    assert_int_equal(pd_coord_batch_push(&b, E("{}")), PD_BUSY);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.dropped, 2);

    pd_coord_batch_free(&b);
    assert_int_equal(b.n, 0);
}

static void
test_backoff(void **state)
{
    pd_coord_batch_t  b;

    (void) state;

    pd_coord_batch_init(&b, 1, 1);

    b.failures = 1;
    assert_int_equal(pd_coord_batch_backoff(&b, 200, 10000, 0), 100);
    assert_int_equal(pd_coord_batch_backoff(&b, 200, 10000, 100), 200);
    assert_int_equal(pd_coord_batch_backoff(&b, 200, 10000, 101), 100);

    b.failures = 3;
    assert_int_equal(pd_coord_batch_backoff(&b, 200, 10000, 0), 400);
    assert_int_equal(pd_coord_batch_backoff(&b, 200, 10000, 400), 800);

    /* capped, even after many */
    b.failures = 60;
    assert_int_equal(pd_coord_batch_backoff(&b, 200, 10000, 0), 5000);
    assert_int_equal(pd_coord_batch_backoff(&b, 200, 10000, 5000), 10000);
}

static void
test_signature(void **state)
{
    /* RFC 4231, test case 2 */
    pd_str_t  key = pd_string("Jefe");
    u_char    sig[PD_COORD_SIG_LEN + 1];

    (void) state;

    assert_int_equal(pd_coord_sign(&key,
                                   E("what do ya want for nothing?"), sig),
                     PD_OK);
    assert_string_equal(sig, "sha256=5bdcc146bf60754e6a042426089575c7"
                             "5a003f089d2739839dec58b964ec3843");
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_batches_in_order),
        cmocka_unit_test(test_bound_drops_and_counts),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_signature),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
