/*
 * test_pd_room_apps.c: the app names a worker keeps once: the same name
 * is the same id, ids are counted, a name goes with its last holder and
 * its id is used again, and the table is bounded.
 */

#include "pd_core.h"
#include "pd_room.h"

#include <setjmp.h>
#include <cmocka.h>

#define N(s)  (const u_char *) (s), sizeof(s) - 1

static void
test_same_name_same_id(void **state)
{
    uint16_t       a, b, c;
    const u_char  *name;
    size_t         len;

    (void) state;

    a = pd_room_app_get(N("chat"));
    b = pd_room_app_get(N("news"));
    c = pd_room_app_get(N("chat"));

    assert_int_not_equal(a, 0);
    assert_int_not_equal(b, 0);
    assert_int_not_equal(a, b);
    assert_int_equal(a, c);

    name = pd_room_app_name(b, &len);
    assert_int_equal(len, 4);
    assert_string_equal(name, "news");

    assert_int_equal(pd_room_app_find(N("chat")), a);
    assert_int_equal(pd_room_app_find(N("cha")), 0);
    assert_int_equal(pd_room_app_find(N("nope")), 0);

    /* a bad length is refused, not truncated */
    assert_int_equal(pd_room_app_get(N("")), 0);
    assert_int_equal(pd_room_app_get((const u_char *) "x", PD_APP_MAX
                                                          + 1), 0);

    pd_room_app_put(a);
    pd_room_app_put(b);
    pd_room_app_put(c);
}

static void
test_counted_and_freed(void **state)
{
    uint16_t  a, b, again;

    (void) state;

    a = pd_room_app_get(N("once"));
    b = pd_room_app_get(N("once"));
    assert_int_equal(a, b);

    /* one holder left: still there */
    pd_room_app_put(a);
    assert_int_equal(pd_room_app_find(N("once")), b);

    /* the last one: gone, and its id serves the next new name */
    pd_room_app_put(b);
    assert_int_equal(pd_room_app_find(N("once")), 0);

    again = pd_room_app_get(N("other"));
    assert_int_equal(again, a);
    assert_string_equal(pd_room_app_name(again, NULL), "other");
    pd_room_app_put(again);
}

static void
test_bounded(void **state)
{
    static uint16_t  ids[PD_ROOM_APPS_MAX];
    u_char           name[16];
    size_t           len;
    pd_uint_t        i;
    uint16_t         id;

    (void) state;

    for (i = 0; i < PD_ROOM_APPS_MAX; i++) {
        len = (size_t) snprintf((char *) name, sizeof(name), "app%u",
                                (unsigned) i);
        ids[i] = pd_room_app_get(name, len);
        assert_int_not_equal(ids[i], 0);
    }

    /* full: a new name is refused, a known one still counted */
    assert_int_equal(pd_room_app_get(N("one-too-many")), 0);
    id = pd_room_app_get(N("app7"));
    assert_int_equal(id, ids[7]);
    pd_room_app_put(id);

    /* one freed: room for one more */
    pd_room_app_put(ids[100]);
    id = pd_room_app_get(N("one-too-many"));
    assert_int_equal(id, ids[100]);
    pd_room_app_put(id);

    for (i = 0; i < PD_ROOM_APPS_MAX; i++) {
        if (i != 100) {
            pd_room_app_put(ids[i]);
        }
    }

    assert_int_equal(pd_room_app_find(N("app0")), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_name_same_id),
        cmocka_unit_test(test_counted_and_freed),
        cmocka_unit_test(test_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
