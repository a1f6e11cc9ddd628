/*
 * test_pd_msg.c: the message id's format and parse.
 */

#include "pd_core.h"
#include <setjmp.h>
#include <cmocka.h>


static void
pd_test_id_round_trip(void **state)
{
    pd_str_t   node = pd_string("node-a_1"), got;
    u_char     buf[PD_MSG_ID_SIZE], *p;
    uint64_t   seq, seqs[] = { 0, 1, 0xabcdef, UINT64_MAX };
    pd_uint_t  i;

    (void) state;

    for (i = 0; i < pd_nelems(seqs); i++) {
        p = pd_msg_id(buf, &node, seqs[i]);
        assert_true((size_t) (p - buf) <= PD_MSG_ID_LEN);

        assert_int_equal(pd_msg_id_parse(buf, (size_t) (p - buf), &got, &seq),
                         PD_OK);
        assert_int_equal(got.len, node.len);
        assert_memory_equal(got.data, node.data, node.len);
        assert_true(seq == seqs[i]);
    }

    p = pd_msg_id(buf, &node, 0x1f);
    *p = '\0';
    assert_string_equal((char *) buf, "node-a_1-1f");
}

static void
pd_test_id_longest(void **state)
{
    u_char     name[PD_NODE_ID_MAX], buf[PD_MSG_ID_SIZE], *p;
    pd_str_t   node, got;
    uint64_t   seq;

    (void) state;

    memset(name, 'n', sizeof(name));
    node.data = name;
    node.len = sizeof(name);

    p = pd_msg_id(buf, &node, UINT64_MAX);
    assert_int_equal((size_t) (p - buf), PD_MSG_ID_LEN);
    assert_int_equal(pd_msg_id_parse(buf, PD_MSG_ID_LEN, &got, &seq), PD_OK);
    assert_int_equal(got.len, PD_NODE_ID_MAX);
}

static void
pd_test_id_refused(void **state)
{
    static const char  *bad[] = {
        "", "-", "node", "node-", "-1f", "node-1F", "node-x1",
        "node-12345678901234567",              /* 17 digits */
        "node-1f ", "node- 1f",
        "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn-1",  /* a 33-byte node */
    };
    pd_str_t            node;
    uint64_t            seq;
    pd_uint_t           i;

    (void) state;

    for (i = 0; i < pd_nelems(bad); i++) {
        assert_int_equal(pd_msg_id_parse((u_char *) bad[i], strlen(bad[i]),
                                         &node, &seq),
                         PD_ERROR);
    }

    /* a node may hold dashes: the last one splits */
    assert_int_equal(pd_msg_id_parse((u_char *) "a-b-c-ff", 8, &node, &seq),
                     PD_OK);
    assert_int_equal(node.len, 5);
    assert_true(seq == 0xff);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_id_round_trip),
        cmocka_unit_test(pd_test_id_longest),
        cmocka_unit_test(pd_test_id_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
