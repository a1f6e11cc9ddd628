/*
 * test_pd_register_zone.c: unit tests for the register zone
 * (pd_register_zone.c).
 */

#include "pd_core.h"
#include "pd_register_zone.h"

#include <setjmp.h>
#include <cmocka.h>


#define pd_test_entries(z)                                                   \
    ((pd_reg_entry_t *) ((u_char *) (z) + (z)->entries))
#define pd_test_ips(z)                                                       \
    ((pd_reg_ip_t *) ((u_char *) (z) + (z)->ips))


/* a zone in process memory: for everything but the cross-process tests */
static pd_reg_zone_t *
pd_test_zone(uint32_t max_conns, uint32_t max_ips, size_t *sizep)
{
    void           *mem;
    size_t          size;
    pd_reg_zone_t  *z;

    size = pd_reg_zone_size(max_conns, max_ips);
    assert_true(size > 0);
    assert_int_equal(posix_memalign(&mem, 64, size), 0);

    /* garbage, as a reused region would hold: format must not trust it */
    memset(mem, 0xa5, size);

    z = pd_reg_zone_init(mem, size, max_conns, max_ips, 1);
    assert_ptr_equal(z, mem);

    if (sizep != NULL) {
        *sizep = size;
    }

    return z;
}


static void
pd_test_zone_free(pd_reg_zone_t *z)
{
    (void) pthread_mutex_destroy(&z->mutex);
    free(z);
}


/* a shared anonymous mapping, as the master makes, for forked tests */
static pd_reg_zone_t *
pd_test_shared_zone(uint32_t max_conns, uint32_t max_ips, size_t extra,
    size_t *sizep)
{
    void           *mem;
    size_t          size;
    pd_reg_zone_t  *z;

    size = pd_reg_zone_size(max_conns, max_ips);
    assert_true(size > 0);

    mem = mmap(NULL, size + extra, PROT_READ | PROT_WRITE,
               MAP_ANONYMOUS | MAP_SHARED, -1, 0);
    assert_true(mem != MAP_FAILED);

    z = pd_reg_zone_init(mem, size, max_conns, max_ips, 1);
    assert_ptr_equal(z, mem);

    *sizep = size;

    return z;
}


/* fills info; apps is NULL or a NULL-terminated list of names */
static void
pd_test_info(pd_reg_info_t *info, const char *uid, const char *device,
    int32_t pid, uint64_t conn, const char **apps)
{
    pd_memzero(info, sizeof(pd_reg_info_t));

    (void) snprintf((char *) info->uid, sizeof(info->uid), "%s", uid);
    (void) snprintf((char *) info->device, sizeof(info->device), "%s",
                    device);

    while (apps != NULL && *apps != NULL) {
        (void) snprintf((char *) info->apps[info->napps],
                        sizeof(info->apps[0]), "%s", *apps);
        info->napps++;
        apps++;
    }

    info->pid = pid;
    info->wslot = pid % 7;
    info->conn = conn;
    /* whole seconds, as the room's are: the entry keeps seconds */
    info->since = 1700000000000ULL + (conn & 0xffff) * 1000;
}


static pd_int_t
pd_test_add(pd_reg_zone_t *z, const char *uid, const char *device,
    int32_t pid, uint64_t conn, const char **apps)
{
    pd_reg_info_t  info;

    pd_test_info(&info, uid, device, pid, conn, apps);

    return pd_reg_add(z, &info);
}


/* tries n adds of short names "fill<i>" for pid: how many fit */
static uint32_t
pd_test_fill(pd_reg_zone_t *z, int32_t pid, uint32_t n)
{
    char      uid[16];
    uint32_t  i, added;

    added = 0;

    for (i = 0; i < n; i++) {
        (void) snprintf(uid, sizeof(uid), "fill%u", i);

        if (pd_test_add(z, uid, "d", pid, i, NULL) == PD_OK) {
            added++;
        }
    }

    return added;
}


static pd_int_t
pd_test_remove(pd_reg_zone_t *z, const char *uid, int32_t pid, uint64_t conn)
{
    return pd_reg_remove(z, (const u_char *) uid, strlen(uid), pid, conn);
}


static pd_uint_t
pd_test_lookup(pd_reg_zone_t *z, const char *uid, pd_reg_info_t *out,
    pd_uint_t max)
{
    return pd_reg_lookup(z, (const u_char *) uid, strlen(uid), out, max);
}


static void
pd_test_sin(pd_sockaddr_t *sa, const char *text)
{
    pd_memzero(sa, sizeof(pd_sockaddr_t));

    if (strchr(text, ':') != NULL) {
        sa->sockaddr_in6.sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text,
                                   &sa->sockaddr_in6.sin6_addr), 1);
    } else {
        sa->sockaddr_in.sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text,
                                   &sa->sockaddr_in.sin_addr), 1);
    }
}


static void
pd_test_geometry(void **state)
{
    void           *mem;
    size_t          size, small, big;
    uint32_t        n;
    pd_reg_zone_t  *z;

    (void) state;

    assert_true(sizeof(pd_reg_entry_t) <= 200);
    assert_int_equal(pd_reg_zone_size(0, 10), 0);
    assert_int_equal(pd_reg_zone_size(10, 0), 0);
    assert_int_equal(pd_reg_zone_size(PD_REG_MAX_SLOTS + 1, 10), 0);

    /* per connection: the entry plus at most two bucket heads */
    small = pd_reg_zone_size(1 << 15, 16);
    big = pd_reg_zone_size(1 << 16, 16);
    assert_true((big - small) / (1 << 15) <= 200);

    size = pd_reg_zone_size(1000, 100);
    n = pd_reg_zone_max_conns(size, 100);
    assert_true(n >= 1000);
    assert_true(pd_reg_zone_size(n, 100) <= size);
    assert_true(pd_reg_zone_size(n + 1, 100) > size);
    assert_int_equal(pd_reg_zone_max_conns(64, 100), 0);

    assert_int_equal(posix_memalign(&mem, 64, size), 0);

    errno = 0;
    assert_null(pd_reg_zone_init(mem, size - 1, 1000, 100, 1));
    assert_int_equal(errno, ENOSPC);

    errno = 0;
    assert_null(pd_reg_zone_init((u_char *) mem + 4, size - 4, 10, 10, 1));
    assert_int_equal(errno, EINVAL);

    z = pd_reg_zone_init(mem, size, 1000, 100, 1);
    assert_ptr_equal(z, mem);
    assert_int_equal(z->mask, 1023);
    assert_int_equal(z->ip_mask, 127);
    assert_int_equal(pd_reg_count(z), 0);

    pd_test_zone_free(z);
}


/*
 * The entry's packed fields: a connection id with both halves used (a
 * slot in the high half, as the room's are), a worker slot, the time in
 * seconds, all eight apps and a UUID for uid and device, in one slot.
 */
static void
pd_test_entry_fields(void **state)
{
    pd_reg_info_t    info, out[2];
    pd_reg_zone_stats_t  st;
    pd_reg_zone_t   *z;
    const char      *apps[] = { "a1", "a2", "a3", "a4", "a5", "a6", "a7",
                                "a8", NULL };
    const char      *uuid = "123e4567-e89b-12d3-a456-426614174000";
    uint64_t         conn = (12345ULL << 32) | 0xfffffffeULL;

    (void) state;

    assert_int_equal(sizeof(pd_reg_entry_t), 128);
    assert_true(PD_REG_NAMES >= 36 + 36);

    z = pd_test_zone(64, 16, NULL);

    pd_test_info(&info, uuid, uuid, 4242, conn, apps);
    info.wslot = PD_MAX_PROCESSES - 1;
    info.since = 4102444799000ULL;            /* 2099-12-31 23:59:59 */
    info.lingering = 1;
    info.sid_tag = 0xabcdef;
    assert_int_equal(pd_reg_add(z, &info), PD_OK);

    pd_memzero(out, sizeof(out));
    assert_int_equal(pd_test_lookup(z, uuid, out, 2), 1);
    assert_true(out[0].conn == conn);
    assert_int_equal(out[0].pid, 4242);
    assert_int_equal(out[0].wslot, PD_MAX_PROCESSES - 1);
    assert_true(out[0].since == 4102444799000ULL);
    assert_int_equal(out[0].napps, 8);
    assert_string_equal((char *) out[0].apps[7], "a8");
    assert_int_equal(out[0].lingering, 1);
    assert_int_equal(out[0].sid_tag, 0xabcdef);
    assert_string_equal((char *) out[0].device, uuid);

    assert_int_equal(pd_reg_zone_stats(z, &st), PD_OK);
    assert_int_equal(st.used, 1);
    assert_int_equal(st.more_used, 0);

    /* found by its whole id: the high half counts */
    assert_int_equal(pd_test_remove(z, uuid, 4242, conn & 0xffffffffULL),
                     PD_DECLINED);
    assert_int_equal(pd_test_remove(z, uuid, 4242, conn), PD_OK);
    assert_int_equal(pd_reg_count(z), 0);

    pd_test_zone_free(z);
}


static void
pd_test_add_lookup_remove(void **state)
{
    pd_reg_info_t   out[4];
    pd_reg_zone_t  *z;
    const char     *apps[] = { "chat", "news", NULL };

    (void) state;

    z = pd_test_zone(64, 16, NULL);

    assert_int_equal(pd_test_add(z, "alice", "phone", 101, 7, apps), PD_OK);
    assert_int_equal(pd_reg_count(z), 1);

    pd_memzero(out, sizeof(out));
    assert_int_equal(pd_test_lookup(z, "alice", out, 4), 1);
    assert_string_equal((char *) out[0].uid, "alice");
    assert_string_equal((char *) out[0].device, "phone");
    assert_int_equal(out[0].napps, 2);
    assert_string_equal((char *) out[0].apps[0], "chat");
    assert_string_equal((char *) out[0].apps[1], "news");
    assert_int_equal(out[0].pid, 101);
    assert_int_equal(out[0].wslot, 101 % 7);
    assert_int_equal(out[0].conn, 7);
    assert_true(out[0].since == 1700000007000ULL);

    assert_int_equal(pd_test_lookup(z, "alic", out, 4), 0);
    assert_int_equal(pd_test_lookup(z, "alicex", out, 4), 0);
    assert_int_equal(pd_test_lookup(z, "bob", out, 4), 0);

    /* the same connection twice is refused, another one is not */
    assert_int_equal(pd_test_add(z, "alice", "phone", 101, 7, NULL),
                     PD_DECLINED);
    assert_int_equal(pd_test_add(z, "alice", "phone", 102, 7, NULL), PD_OK);
    assert_int_equal(pd_reg_count(z), 2);

    assert_int_equal(pd_test_remove(z, "alice", 101, 8), PD_DECLINED);
    assert_int_equal(pd_test_remove(z, "bob", 101, 7), PD_DECLINED);
    assert_int_equal(pd_test_remove(z, "alice", 101, 7), PD_OK);
    assert_int_equal(pd_test_remove(z, "alice", 101, 7), PD_DECLINED);

    assert_int_equal(pd_test_lookup(z, "alice", out, 4), 1);
    assert_int_equal(out[0].pid, 102);
    assert_int_equal(out[0].napps, 0);

    assert_int_equal(pd_test_remove(z, "alice", 102, 7), PD_OK);
    assert_int_equal(pd_test_lookup(z, "alice", out, 4), 0);
    assert_int_equal(pd_reg_count(z), 0);

    /* app names go when nobody names them */
    assert_int_equal(z->napps, 0);

    pd_test_zone_free(z);
}


static void
pd_test_bad_arguments(void **state)
{
    char            name[80];
    pd_reg_info_t   info, out[1];
    pd_reg_zone_t  *z;
    const char     *apps[] = { "a", "b", "a", "b", "c", NULL };

    (void) state;

    z = pd_test_zone(64, 16, NULL);

    pd_test_info(&info, "", "d", 1, 1, NULL);
    assert_int_equal(pd_reg_add(z, &info), PD_ERROR);

    /* 64 bytes is the longest uid; 65 leaves no room for the NUL */
    memset(name, 'u', PD_UID_MAX);
    name[PD_UID_MAX] = '\0';
    assert_int_equal(pd_test_add(z, name, "d", 1, 1, NULL), PD_OK);
    assert_int_equal(pd_test_lookup(z, name, out, 1), 1);
    assert_int_equal(strlen((char *) out[0].uid), PD_UID_MAX);

    pd_test_info(&info, "x", "d", 1, 2, NULL);
    memset(info.uid, 'u', sizeof(info.uid));
    assert_int_equal(pd_reg_add(z, &info), PD_ERROR);

    pd_test_info(&info, "x", "d", 1, 2, NULL);
    memset(info.device, 'd', sizeof(info.device));
    assert_int_equal(pd_reg_add(z, &info), PD_ERROR);

    pd_test_info(&info, "x", "", 1, 2, NULL);
    assert_int_equal(pd_reg_add(z, &info), PD_OK);

    pd_test_info(&info, "y", "d", 1, 3, NULL);
    info.napps = PD_APPS_MAX + 1;
    assert_int_equal(pd_reg_add(z, &info), PD_ERROR);

    pd_test_info(&info, "y", "d", 1, 3, NULL);
    info.napps = 1;
    assert_int_equal(pd_reg_add(z, &info), PD_ERROR);

    pd_test_info(&info, "y", "d", 1, 3, NULL);
    info.napps = 1;
    memset(info.apps[0], 'a', sizeof(info.apps[0]));
    assert_int_equal(pd_reg_add(z, &info), PD_ERROR);

    assert_int_equal(pd_reg_count(z), 2);

    /* repeated apps are bound once */
    assert_int_equal(pd_test_add(z, "y", "d", 1, 3, apps), PD_OK);
    assert_int_equal(pd_test_lookup(z, "y", out, 1), 1);
    assert_int_equal(out[0].napps, 3);
    assert_string_equal((char *) out[0].apps[0], "a");
    assert_string_equal((char *) out[0].apps[1], "b");
    assert_string_equal((char *) out[0].apps[2], "c");
    assert_int_equal(z->napps, 3);

    assert_int_equal(pd_reg_remove(z, (u_char *) "", 0, 1, 1), PD_DECLINED);
    assert_int_equal(pd_reg_lookup(z, (u_char *) "", 0, out, 1), 0);

    pd_test_zone_free(z);
}


static void
pd_test_several_devices(void **state)
{
    int             seen;
    pd_uint_t       i;
    pd_reg_info_t   out[4];
    pd_reg_zone_t  *z;
    const char     *chat[] = { "chat", NULL };

    (void) state;

    z = pd_test_zone(64, 16, NULL);

    assert_int_equal(pd_test_add(z, "carol", "phone", 10, 1, chat), PD_OK);
    assert_int_equal(pd_test_add(z, "carol", "tablet", 11, 1, chat), PD_OK);
    assert_int_equal(pd_test_add(z, "carol", "web", 10, 2, NULL), PD_OK);
    assert_int_equal(pd_test_add(z, "dave", "phone", 10, 3, chat), PD_OK);

    pd_memzero(out, sizeof(out));
    assert_int_equal(pd_test_lookup(z, "carol", out, 4), 3);

    seen = 0;

    for (i = 0; i < 3; i++) {
        assert_string_equal((char *) out[i].uid, "carol");

        if (strcmp((char *) out[i].device, "phone") == 0) {
            assert_int_equal(out[i].pid, 10);
            assert_int_equal(out[i].conn, 1);
            seen |= 1;

        } else if (strcmp((char *) out[i].device, "tablet") == 0) {
            assert_int_equal(out[i].pid, 11);
            seen |= 2;

        } else if (strcmp((char *) out[i].device, "web") == 0) {
            assert_int_equal(out[i].conn, 2);
            assert_int_equal(out[i].napps, 0);
            seen |= 4;
        }
    }

    assert_int_equal(seen, 7);

    /* max below the count: the count is still told, out[2] is left */
    memset(out, 0x5a, sizeof(out));
    assert_int_equal(pd_test_lookup(z, "carol", out, 2), 3);
    assert_string_equal((char *) out[0].uid, "carol");
    assert_string_equal((char *) out[1].uid, "carol");
    assert_int_equal(out[2].uid[0], 0x5a);

    assert_int_equal(pd_test_lookup(z, "carol", NULL, 0), 3);

    assert_int_equal(pd_test_remove(z, "carol", 11, 1), PD_OK);
    assert_int_equal(pd_test_lookup(z, "carol", out, 4), 2);
    assert_int_equal(pd_test_lookup(z, "dave", out, 4), 1);

    pd_test_zone_free(z);
}


static void
pd_test_set_apps(void **state)
{
    u_char          apps[PD_APPS_MAX + 1][PD_APP_MAX + 1];
    pd_reg_info_t   out[2];
    pd_reg_zone_t  *z;
    const char     *chat[] = { "chat", "news", NULL };

    (void) state;

    z = pd_test_zone(64, 16, NULL);

    assert_int_equal(pd_test_add(z, "erin", "phone", 5, 9, chat), PD_OK);
    assert_int_equal(pd_test_add(z, "frank", "phone", 5, 10, chat), PD_OK);
    assert_int_equal(z->napps, 2);

    pd_memzero(apps, sizeof(apps));
    (void) strcpy((char *) apps[0], "news");
    (void) strcpy((char *) apps[1], "game");
    (void) strcpy((char *) apps[2], "mail");

    assert_int_equal(pd_reg_set_apps(z, (u_char *) "erin", 4, 5, 9, apps, 3),
                     PD_OK);
    assert_int_equal(pd_test_lookup(z, "erin", out, 2), 1);
    assert_int_equal(out[0].napps, 3);
    assert_string_equal((char *) out[0].apps[0], "news");
    assert_string_equal((char *) out[0].apps[1], "game");
    assert_string_equal((char *) out[0].apps[2], "mail");
    assert_int_equal(z->napps, 4);

    /* not registered, or a bad list: nothing changes */
    assert_int_equal(pd_reg_set_apps(z, (u_char *) "erin", 4, 5, 8, apps, 1),
                     PD_DECLINED);
    assert_int_equal(pd_reg_set_apps(z, (u_char *) "erin", 4, 6, 9, apps, 1),
                     PD_DECLINED);
    assert_int_equal(pd_reg_set_apps(z, (u_char *) "erin", 4, 5, 9, apps,
                                     PD_APPS_MAX + 1),
                     PD_ERROR);
    assert_int_equal(pd_test_lookup(z, "erin", out, 2), 1);
    assert_int_equal(out[0].napps, 3);

    /* "chat" lives on through frank; "game" and "mail" go with erin's */
    assert_int_equal(pd_reg_set_apps(z, (u_char *) "frank", 5, 5, 10, apps,
                                     1),
                     PD_OK);
    assert_int_equal(z->napps, 3);

    assert_int_equal(pd_reg_set_apps(z, (u_char *) "erin", 4, 5, 9, NULL, 0),
                     PD_OK);
    assert_int_equal(pd_test_lookup(z, "erin", out, 2), 1);
    assert_int_equal(out[0].napps, 0);
    assert_int_equal(z->napps, 1);

    assert_int_equal(pd_test_lookup(z, "frank", out, 2), 1);
    assert_int_equal(out[0].napps, 1);
    assert_string_equal((char *) out[0].apps[0], "news");

    pd_test_zone_free(z);
}


static void
pd_test_app_table_full(void **state)
{
    char            uid[32];
    uint32_t        i, j;
    pd_reg_info_t   info;
    pd_reg_zone_t  *z;
    const char     *fresh[] = { "one-too-many", NULL };
    const char     *known[] = { "app0", NULL };

    (void) state;

    z = pd_test_zone(PD_REG_APP_TABLE / PD_APPS_MAX + 8, 16, NULL);

    for (i = 0; i < PD_REG_APP_TABLE / PD_APPS_MAX; i++) {
        (void) snprintf(uid, sizeof(uid), "u%u", i);
        pd_test_info(&info, uid, "d", 1, i, NULL);

        for (j = 0; j < PD_APPS_MAX; j++) {
            (void) snprintf((char *) info.apps[j], sizeof(info.apps[j]),
                            "app%u", i * PD_APPS_MAX + j);
        }

        info.napps = PD_APPS_MAX;
        assert_int_equal(pd_reg_add(z, &info), PD_OK);
    }

    assert_int_equal(z->napps, PD_REG_APP_TABLE);

    assert_int_equal(pd_test_add(z, "v", "d", 1, 9999, fresh), PD_BUSY);
    assert_int_equal(pd_test_add(z, "v", "d", 1, 9999, known), PD_OK);
    assert_int_equal(pd_reg_count(z), PD_REG_APP_TABLE / PD_APPS_MAX + 1);

    /* a new app after known ones: the known ones are given back */
    pd_test_info(&info, "w", "d", 1, 10000, NULL);
    (void) strcpy((char *) info.apps[0], "app1");
    (void) strcpy((char *) info.apps[1], "one-too-many");
    info.napps = 2;
    assert_int_equal(pd_reg_add(z, &info), PD_BUSY);
    assert_int_equal(z->napps, PD_REG_APP_TABLE);

    assert_int_equal(pd_test_remove(z, "u0", 1, 0), PD_OK);
    assert_int_equal(z->napps, PD_REG_APP_TABLE - PD_APPS_MAX + 1);
    assert_int_equal(pd_reg_add(z, &info), PD_OK);

    pd_test_zone_free(z);
}


static void
pd_test_full_zone(void **state)
{
    char            uid[16];
    uint32_t        i;
    pd_reg_info_t   out[1];
    pd_reg_zone_t  *z;

    (void) state;

    z = pd_test_zone(16, 4, NULL);

    for (i = 0; i < 16; i++) {
        (void) snprintf(uid, sizeof(uid), "user%u", i);
        assert_int_equal(pd_test_add(z, uid, "d", 1, i, NULL), PD_OK);
    }

    assert_int_equal(pd_test_add(z, "late", "d", 1, 100, NULL), PD_BUSY);
    assert_int_equal(pd_test_lookup(z, "late", out, 1), 0);
    assert_int_equal(pd_reg_count(z), 16);

    assert_int_equal(pd_test_remove(z, "user3", 1, 3), PD_OK);
    assert_int_equal(pd_test_add(z, "late", "d", 1, 100, NULL), PD_OK);
    assert_int_equal(pd_test_add(z, "later", "d", 1, 101, NULL), PD_BUSY);

    for (i = 0; i < 16; i++) {
        (void) snprintf(uid, sizeof(uid), "user%u", i);
        assert_int_equal(pd_test_lookup(z, uid, out, 1), i == 3 ? 0 : 1);
    }

    assert_int_equal(pd_test_lookup(z, "late", out, 1), 1);

    /* the smallest zone: one connection, one bucket */
    pd_test_zone_free(z);
    z = pd_test_zone(1, 1, NULL);
    assert_int_equal(pd_test_add(z, "a", "d", 1, 1, NULL), PD_OK);
    assert_int_equal(pd_test_add(z, "b", "d", 1, 2, NULL), PD_BUSY);
    assert_int_equal(pd_test_remove(z, "a", 1, 1), PD_OK);
    assert_int_equal(pd_test_add(z, "b", "d", 1, 2, NULL), PD_OK);

    pd_test_zone_free(z);
}


/* one bucket for all: chains are walked, not assumed short */
static void
pd_test_collisions(void **state)
{
    char            uid[16];
    uint32_t        i;
    pd_reg_info_t   out[4];
    pd_reg_zone_t  *z;

    (void) state;

    z = pd_test_zone(512, 4, NULL);
    z->mask = 0;

    for (i = 0; i < 200; i++) {
        (void) snprintf(uid, sizeof(uid), "c%u", i);
        assert_int_equal(pd_test_add(z, uid, "d", 1, i, NULL), PD_OK);

        if (i % 3 == 0) {
            assert_int_equal(pd_test_add(z, uid, "e", 2, i, NULL), PD_OK);
        }
    }

    for (i = 0; i < 200; i += 2) {
        (void) snprintf(uid, sizeof(uid), "c%u", i);
        assert_int_equal(pd_test_remove(z, uid, 1, i), PD_OK);
    }

    for (i = 0; i < 200; i++) {
        (void) snprintf(uid, sizeof(uid), "c%u", i);
        assert_int_equal(pd_test_lookup(z, uid, out, 4),
                         (i % 2 != 0) + (i % 3 == 0));
    }

    /* the head, the middle and the tail of one chain */
    assert_int_equal(pd_test_remove(z, "c199", 1, 199), PD_OK);
    assert_int_equal(pd_test_remove(z, "c1", 1, 1), PD_OK);
    assert_int_equal(pd_test_remove(z, "c99", 1, 99), PD_OK);
    assert_int_equal(pd_test_remove(z, "c99", 2, 99), PD_OK);
    assert_int_equal(pd_test_lookup(z, "c99", out, 4), 0);
    assert_int_equal(pd_test_lookup(z, "c97", out, 4), 1);

    assert_int_equal(pd_reg_count(z), 100 + 67 - 4);
    assert_int_equal(pd_reg_purge_pid(z, 2), 67 - 1);
    assert_int_equal(pd_reg_count(z), 100 - 3);

    pd_test_zone_free(z);
}


static void
pd_test_purge_pid(void **state)
{
    char            uid[16];
    uint32_t        i, pid;
    pd_uint_t       n, j;
    pd_sockaddr_t   a, b;
    pd_reg_info_t   out[8];
    pd_reg_zone_t  *z;

    (void) state;

    /* more slots than one purge batch */
    z = pd_test_zone(10000, 64, NULL);

    for (i = 0; i < 9000; i++) {
        (void) snprintf(uid, sizeof(uid), "p%u", i % 1000);
        pid = 100 + 100 * (i % 3);
        assert_int_equal(pd_test_add(z, uid, "d", (int32_t) pid, i, NULL),
                         PD_OK);
    }

    pd_test_sin(&a, "10.0.0.1");
    pd_test_sin(&b, "10.0.0.2");
    assert_int_equal(pd_reg_ip_acquire(z, &a.sockaddr, 200, 0), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &a.sockaddr, 200, 0), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &a.sockaddr, 300, 0), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &b.sockaddr, 200, 0), PD_OK);

    assert_int_equal(pd_reg_purge_pid(z, 200), 3000);
    assert_int_equal(pd_reg_count(z), 6000);
    assert_int_equal(pd_reg_purge_pid(z, 200), 0);
    assert_int_equal(pd_reg_purge_pid(z, 12345), 0);

    for (i = 0; i < 1000; i++) {
        (void) snprintf(uid, sizeof(uid), "p%u", i);
        n = pd_test_lookup(z, uid, out, 8);
        assert_int_equal(n, 6);

        for (j = 0; j < n; j++) {
            assert_true(out[j].pid == 100 || out[j].pid == 300);
        }
    }

    assert_int_equal(pd_reg_ip_count(z, &a.sockaddr), 1);
    assert_int_equal(pd_reg_ip_count(z, &b.sockaddr), 0);
    assert_int_equal(z->ip_count, 1);

    /* the node keeps a pid in three bytes: Linux's largest (2^22) and
     * one that differs from it only in the high byte stay apart */
    assert_int_equal(pd_reg_ip_acquire(z, &b.sockaddr, 4194304, 0), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &b.sockaddr, 4194304, 0), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &b.sockaddr, 0x10000, 0), PD_OK);
    assert_int_equal(pd_reg_ip_count(z, &b.sockaddr), 3);
    assert_int_equal(pd_reg_purge_pid(z, 0x10000), 0);
    assert_int_equal(pd_reg_ip_count(z, &b.sockaddr), 2);
    assert_int_equal(pd_reg_purge_pid(z, 4194304), 0);
    assert_int_equal(pd_reg_ip_count(z, &b.sockaddr), 0);
    assert_int_equal(z->ip_count, 1);

    /* the freed slots are usable again */
    for (i = 0; i < 4000; i++) {
        (void) snprintf(uid, sizeof(uid), "q%u", i);
        assert_int_equal(pd_test_add(z, uid, "d", 400, i, NULL), PD_OK);
    }

    assert_int_equal(pd_test_add(z, "full", "d", 400, 99999, NULL), PD_BUSY);

    pd_test_zone_free(z);
}


static void
pd_test_ip_limit(void **state)
{
    pd_sockaddr_t   v4, v4b, v6, mapped, unix_sa;
    pd_reg_zone_t  *z;

    (void) state;

    z = pd_test_zone(16, 64, NULL);

    pd_test_sin(&v4, "192.0.2.7");
    pd_test_sin(&v4b, "192.0.2.8");
    pd_test_sin(&v6, "2001:db8::7");
    pd_test_sin(&mapped, "::ffff:192.0.2.7");

    /* the limit is over all workers together */
    assert_int_equal(pd_reg_ip_acquire(z, &v4.sockaddr, 1, 3), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &v4.sockaddr, 2, 3), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &v4.sockaddr, 1, 3), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &v4.sockaddr, 3, 3), PD_BUSY);
    assert_int_equal(pd_reg_ip_acquire(z, &v4.sockaddr, 1, 3), PD_BUSY);
    assert_int_equal(pd_reg_ip_count(z, &v4.sockaddr), 3);

    /* IPv4-mapped IPv6 is the same client */
    assert_int_equal(pd_reg_ip_acquire(z, &mapped.sockaddr, 4, 3), PD_BUSY);
    assert_int_equal(pd_reg_ip_count(z, &mapped.sockaddr), 3);

    assert_int_equal(pd_reg_ip_acquire(z, &v4b.sockaddr, 1, 3), PD_OK);
    assert_int_equal(pd_reg_ip_count(z, &v4b.sockaddr), 1);

    pd_reg_ip_release(z, &v4.sockaddr, 2);
    assert_int_equal(pd_reg_ip_count(z, &v4.sockaddr), 2);
    assert_int_equal(pd_reg_ip_acquire(z, &mapped.sockaddr, 4, 3), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &v4.sockaddr, 4, 3), PD_BUSY);

    /* releasing what pid 2 does not hold changes nothing */
    pd_reg_ip_release(z, &v4.sockaddr, 2);
    assert_int_equal(pd_reg_ip_count(z, &v4.sockaddr), 3);

    assert_int_equal(pd_reg_ip_acquire(z, &v6.sockaddr, 1, 2), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &v6.sockaddr, 1, 2), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &v6.sockaddr, 1, 2), PD_BUSY);
    assert_int_equal(pd_reg_ip_count(z, &v6.sockaddr), 2);
    pd_reg_ip_release(z, &v6.sockaddr, 1);
    pd_reg_ip_release(z, &v6.sockaddr, 1);
    assert_int_equal(pd_reg_ip_count(z, &v6.sockaddr), 0);

    /* 0: no limit */
    assert_int_equal(pd_reg_ip_acquire(z, &v4.sockaddr, 1, 0), PD_OK);
    assert_int_equal(pd_reg_ip_count(z, &v4.sockaddr), 4);

    pd_memzero(&unix_sa, sizeof(unix_sa));
    unix_sa.sockaddr.sa_family = AF_UNIX;
    assert_int_equal(pd_reg_ip_acquire(z, &unix_sa.sockaddr, 1, 1),
                     PD_DECLINED);
    pd_reg_ip_release(z, &unix_sa.sockaddr, 1);
    assert_int_equal(pd_reg_ip_count(z, &unix_sa.sockaddr), 0);

    /* nodes: v4 of pids 1 and 4 (the mapped one), v4b of pid 1 */
    assert_int_equal(z->ip_count, 3);

    pd_test_zone_free(z);
}


static void
pd_test_ip_table_full(void **state)
{
    char            text[32];
    uint32_t        i;
    pd_sockaddr_t   sa[5];
    pd_reg_zone_t  *z;

    (void) state;

    z = pd_test_zone(16, 4, NULL);

    for (i = 0; i < 5; i++) {
        (void) snprintf(text, sizeof(text), "2001:db8:%u::1", i + 1);
        pd_test_sin(&sa[i], text);
    }

    for (i = 0; i < 4; i++) {
        assert_int_equal(pd_reg_ip_acquire(z, &sa[i].sockaddr, 1, 10), PD_OK);
    }

    /* a known (address, worker) pair needs no node, anything else does */
    assert_int_equal(pd_reg_ip_acquire(z, &sa[0].sockaddr, 1, 10), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &sa[4].sockaddr, 1, 10), PD_BUSY);
    assert_int_equal(pd_reg_ip_acquire(z, &sa[0].sockaddr, 2, 10), PD_BUSY);
    assert_int_equal(pd_reg_ip_count(z, &sa[4].sockaddr), 0);

    pd_reg_ip_release(z, &sa[0].sockaddr, 1);
    assert_int_equal(pd_reg_ip_acquire(z, &sa[4].sockaddr, 1, 10), PD_BUSY);
    pd_reg_ip_release(z, &sa[0].sockaddr, 1);
    assert_int_equal(pd_reg_ip_count(z, &sa[0].sockaddr), 0);
    assert_int_equal(pd_reg_ip_acquire(z, &sa[4].sockaddr, 1, 10), PD_OK);
    assert_int_equal(pd_reg_ip_acquire(z, &sa[0].sockaddr, 1, 10), PD_BUSY);

    pd_test_zone_free(z);
}


/* a reload: the new cycle attaches to the zone and sees its data */
static void
pd_test_attach(void **state)
{
    void           *mem;
    size_t          size;
    pd_sockaddr_t   sa;
    pd_reg_info_t   out[2];
    pd_reg_zone_t  *z, *again;
    const char     *apps[] = { "chat", NULL };

    (void) state;

    z = pd_test_zone(128, 16, &size);

    assert_int_equal(pd_test_add(z, "gina", "phone", 3, 1, apps), PD_OK);
    pd_test_sin(&sa, "198.51.100.1");
    assert_int_equal(pd_reg_ip_acquire(z, &sa.sockaddr, 3, 5), PD_OK);

    again = pd_reg_zone_init(z, size, 128, 16, 0);
    assert_ptr_equal(again, z);
    assert_int_equal(pd_test_lookup(again, "gina", out, 2), 1);
    assert_string_equal((char *) out[0].apps[0], "chat");
    assert_int_equal(pd_reg_ip_count(again, &sa.sockaddr), 1);

    /* the new generation adds beside the old one */
    assert_int_equal(pd_test_add(again, "gina", "tablet", 4, 1, apps),
                     PD_OK);
    assert_int_equal(pd_test_lookup(z, "gina", out, 2), 2);

    errno = 0;
    assert_null(pd_reg_zone_init(z, size, 127, 16, 0));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(pd_reg_zone_init(z, size, 128, 15, 0));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(pd_reg_zone_init(z, size, 128, 17, 0));
    assert_int_equal(errno, ENOSPC);
    errno = 0;
    assert_null(pd_reg_zone_init(z, size + 8, 128, 16, 0));
    assert_int_equal(errno, EINVAL);

    assert_int_equal(pd_reg_count(z), 2);

    /* memory never formatted is not a zone */
    assert_int_equal(posix_memalign(&mem, 64, size), 0);
    pd_memzero(mem, size);
    errno = 0;
    assert_null(pd_reg_zone_init(mem, size, 128, 16, 0));
    assert_int_equal(errno, EINVAL);
    free(mem);

    /* one formatted by a binary of another layout (the 184-byte entries
     * of layout 1): EPROTO, left untouched; the cycle starts a new one */
    {
        uint64_t  magic = z->magic;

        z->magic = 0x7064726567000000ULL | (1ULL << 16) | 184;
        errno = 0;
        assert_null(pd_reg_zone_init(z, size, 128, 16, 0));
        assert_int_equal(errno, EPROTO);
        assert_int_equal(z->magic, 0x70647265670100b8ULL);
        z->magic = magic;
        assert_ptr_equal(pd_reg_zone_init(z, size, 128, 16, 0), z);
    }

    pd_test_zone_free(z);
}


/* xorshift64*: repeatable, so a failure can be replayed */
/* resident pages of [p, p + len) of a shared mapping */
static size_t
pd_test_resident(void *p, size_t len)
{
    unsigned char  *vec;
    uintptr_t       start, end;
    size_t          page, i, n, resident;

    page = (size_t) sysconf(_SC_PAGESIZE);
    start = (uintptr_t) p & ~(page - 1);
    end = ((uintptr_t) p + len + page - 1) & ~(page - 1);
    n = (end - start) / page;

    vec = malloc(n);
    assert_non_null(vec);
    assert_int_equal(mincore((void *) start, end - start, vec), 0);

    resident = 0;
    for (i = 0; i < n; i++) {
        resident += vec[i] & 1;
    }

    free(vec);

    return resident;
}


/*
 * The zone grows with use: formatting a zone for 100,000 connections
 * writes none of its entries, 1,000 connections write about their own
 * pages, a slot freed is used again before the top moves, and the
 * stats tell the geometry and the use.
 */
static void
pd_test_grows_with_use(void **state)
{
    char                 uid[16];
    size_t               size, page, ents;
    uint32_t             i;
    pd_reg_zone_t       *z;
    pd_reg_zone_stats_t  st;

    (void) state;

    page = (size_t) sysconf(_SC_PAGESIZE);
    z = pd_test_shared_zone(100000, 64, 0, &size);
    ents = (size_t) z->max_conns * sizeof(pd_reg_entry_t);

    assert_int_equal(z->top, 0);
    assert_int_equal(z->ip_top, 0);
    /* at most the pages the entries share with the buckets and apps */
    assert_true(pd_test_resident(pd_test_entries(z), ents) <= 2);

    assert_int_equal(pd_reg_zone_stats(z, &st), PD_OK);
    assert_int_equal(st.bytes, size);
    assert_int_equal(st.entry_bytes, sizeof(pd_reg_entry_t));
    assert_int_equal(st.bucket_bytes, 4);
    assert_int_equal(st.capacity, 100000);
    assert_int_equal(st.buckets, 131072);
    assert_int_equal(st.used, 0);
    assert_int_equal(st.ips_capacity, 64);
    assert_int_equal(st.ip_entry_bytes, sizeof(pd_reg_ip_t));

    for (i = 0; i < 1000; i++) {
        (void) snprintf(uid, sizeof(uid), "g%u", i);
        assert_int_equal(pd_test_add(z, uid, "d", 1, i, NULL), PD_OK);
    }

    assert_int_equal(z->top, 1000);
    assert_true(pd_test_resident(pd_test_entries(z), ents)
                <= 1000 * sizeof(pd_reg_entry_t) / page + 3);

    /* freed slots first */
    for (i = 0; i < 10; i++) {
        (void) snprintf(uid, sizeof(uid), "g%u", i);
        assert_int_equal(pd_test_remove(z, uid, 1, i), PD_OK);
    }

    for (i = 0; i < 10; i++) {
        (void) snprintf(uid, sizeof(uid), "h%u", i);
        assert_int_equal(pd_test_add(z, uid, "d", 1, i, NULL), PD_OK);
    }

    assert_int_equal(z->top, 1000);
    assert_int_equal(pd_reg_zone_stats(z, &st), PD_OK);
    assert_int_equal(st.used, 1000);

    /* a purge walks the slots ever used, and frees them all */
    assert_int_equal(pd_reg_purge_pid(z, 1), 1000);
    assert_int_equal(pd_reg_count(z), 0);
    assert_true(pd_test_resident(pd_test_entries(z), ents)
                <= 1000 * sizeof(pd_reg_entry_t) / page + 3);

    assert_int_equal(munmap(z, size), 0);
}


static uint64_t  pd_test_rand_state = 0x9e3779b97f4a7c15ULL;

static uint32_t
pd_test_rand(uint32_t n)
{
    uint64_t  x;

    x = pd_test_rand_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    pd_test_rand_state = x;

    return (uint32_t) ((x * 0x2545f4914f6cdd1dULL) >> 32) % n;
}


#define PD_TEST_CHURN_CONNS   300
#define PD_TEST_CHURN_UIDS     64
#define PD_TEST_CHURN_PIDS      4
#define PD_TEST_CHURN_APPS     12
#define PD_TEST_CHURN_IPS      24
#define PD_TEST_CHURN_NODES    40
#define PD_TEST_CHURN_LIMIT     5

typedef struct {
    int        used;
    uint32_t   uid;
    int32_t    pid;
    uint64_t   conn;
    uint32_t   apps;       /* a bit per app name */
} pd_test_conn_t;

typedef struct {
    pd_test_conn_t  conns[PD_TEST_CHURN_CONNS * 2];
    uint32_t        nconns;
    uint32_t        live;
    uint32_t        ip[PD_TEST_CHURN_IPS][PD_TEST_CHURN_PIDS + 1];
    uint64_t        next_conn;
} pd_test_model_t;


static uint32_t
pd_test_apps_of(pd_reg_info_t *info)
{
    uint32_t  i, bits;
    unsigned  a;

    bits = 0;

    for (i = 0; i < info->napps; i++) {
        assert_int_equal(sscanf((char *) info->apps[i], "app%u", &a), 1);
        bits |= 1U << a;
    }

    return bits;
}


static void
pd_test_fill_apps(pd_reg_info_t *info, uint32_t bits)
{
    uint32_t  a;

    info->napps = 0;

    for (a = 0; a < PD_TEST_CHURN_APPS; a++) {
        if ((bits & (1U << a)) && info->napps < PD_APPS_MAX) {
            (void) snprintf((char *) info->apps[info->napps],
                            sizeof(info->apps[0]), "app%u", a);
            info->napps++;
        }
    }
}


/* a random app set of at most PD_APPS_MAX names */
static uint32_t
pd_test_rand_apps(void)
{
    uint32_t  bits, n;

    bits = 0;

    for (n = pd_test_rand(PD_APPS_MAX + 1); n > 0; n--) {
        bits |= 1U << pd_test_rand(PD_TEST_CHURN_APPS);
    }

    return bits;
}


static pd_test_conn_t *
pd_test_model_pick(pd_test_model_t *m)
{
    uint32_t  i, k;

    if (m->live == 0) {
        return NULL;
    }

    k = pd_test_rand(m->live);

    for (i = 0; i < m->nconns; i++) {
        if (m->conns[i].used && k-- == 0) {
            return &m->conns[i];
        }
    }

    return NULL;
}


static void
pd_test_churn_add(pd_reg_zone_t *z, pd_test_model_t *m)
{
    char             uid[16];
    uint32_t         i;
    pd_int_t         rc;
    pd_reg_info_t    info;
    pd_test_conn_t  *c, *old;

    old = pd_test_model_pick(m);

    if (old != NULL && pd_test_rand(20) == 0) {
        /* the same connection again */
        (void) snprintf(uid, sizeof(uid), "uid%u", old->uid);
        pd_test_info(&info, uid, "dev", old->pid, old->conn, NULL);
        assert_int_equal(pd_reg_add(z, &info), PD_DECLINED);
        return;
    }

    for (i = 0; i < m->nconns; i++) {
        if (!m->conns[i].used) {
            break;
        }
    }

    c = &m->conns[i];
    c->uid = pd_test_rand(PD_TEST_CHURN_UIDS);
    c->pid = 1 + pd_test_rand(PD_TEST_CHURN_PIDS);
    c->conn = m->next_conn++;

    /* set bits beyond PD_APPS_MAX are not sent: keep the model exact */
    pd_test_info(&info, "x", "dev", c->pid, c->conn, NULL);
    pd_test_fill_apps(&info, pd_test_rand_apps());
    c->apps = pd_test_apps_of(&info);

    (void) snprintf((char *) info.uid, sizeof(info.uid), "uid%u", c->uid);
    (void) snprintf((char *) info.device, sizeof(info.device), "dev%lu",
                    (unsigned long) c->conn);

    rc = pd_reg_add(z, &info);

    if (m->live == PD_TEST_CHURN_CONNS) {
        assert_int_equal(rc, PD_BUSY);
        return;
    }

    assert_int_equal(rc, PD_OK);

    c->used = 1;
    m->live++;

    if (i == m->nconns) {
        m->nconns++;
    }
}


static void
pd_test_churn_remove(pd_reg_zone_t *z, pd_test_model_t *m)
{
    char             uid[16];
    pd_test_conn_t  *c;

    c = pd_test_model_pick(m);

    if (c == NULL || pd_test_rand(10) == 0) {
        (void) snprintf(uid, sizeof(uid), "uid%u",
                        pd_test_rand(PD_TEST_CHURN_UIDS));
        assert_int_equal(pd_test_remove(z, uid, 1, m->next_conn + 1),
                         PD_DECLINED);
        return;
    }

    (void) snprintf(uid, sizeof(uid), "uid%u", c->uid);
    assert_int_equal(pd_test_remove(z, uid, c->pid, c->conn), PD_OK);

    c->used = 0;
    m->live--;
}


static void
pd_test_churn_set_apps(pd_reg_zone_t *z, pd_test_model_t *m)
{
    char             uid[16];
    pd_reg_info_t    info;
    pd_test_conn_t  *c;

    c = pd_test_model_pick(m);

    if (c == NULL) {
        return;
    }

    pd_test_info(&info, "x", "d", 0, 0, NULL);
    pd_test_fill_apps(&info, pd_test_rand_apps());

    (void) snprintf(uid, sizeof(uid), "uid%u", c->uid);
    assert_int_equal(pd_reg_set_apps(z, (u_char *) uid, strlen(uid), c->pid,
                                     c->conn, info.apps, info.napps),
                     PD_OK);

    c->apps = pd_test_apps_of(&info);
}


static void
pd_test_churn_lookup(pd_reg_zone_t *z, pd_test_model_t *m)
{
    char             uid[16];
    uint32_t         u, i, expect;
    pd_uint_t        n, j;
    pd_test_conn_t  *c;
    static pd_reg_info_t  out[PD_TEST_CHURN_CONNS];

    u = pd_test_rand(PD_TEST_CHURN_UIDS);
    (void) snprintf(uid, sizeof(uid), "uid%u", u);

    n = pd_test_lookup(z, uid, out, PD_TEST_CHURN_CONNS);
    expect = 0;

    for (i = 0; i < m->nconns; i++) {
        c = &m->conns[i];

        if (!c->used || c->uid != u) {
            continue;
        }

        expect++;

        for (j = 0; j < n; j++) {
            if (out[j].conn == c->conn) {
                break;
            }
        }

        assert_true(j < n);
        assert_int_equal(out[j].pid, c->pid);
        assert_int_equal(pd_test_apps_of(&out[j]), c->apps);
        assert_int_equal(strtoul((char *) out[j].device + 3, NULL, 10),
                         c->conn);
    }

    assert_int_equal(n, expect);
}


static void
pd_test_churn_purge(pd_reg_zone_t *z, pd_test_model_t *m)
{
    int32_t    pid;
    uint32_t   i, ip, expect;

    pid = 1 + pd_test_rand(PD_TEST_CHURN_PIDS);
    expect = 0;

    for (i = 0; i < m->nconns; i++) {
        if (m->conns[i].used && m->conns[i].pid == pid) {
            m->conns[i].used = 0;
            m->live--;
            expect++;
        }
    }

    for (ip = 0; ip < PD_TEST_CHURN_IPS; ip++) {
        m->ip[ip][pid] = 0;
    }

    assert_int_equal(pd_reg_purge_pid(z, pid), expect);
}


static void
pd_test_churn_ip(pd_reg_zone_t *z, pd_test_model_t *m)
{
    char            text[32];
    int32_t         pid;
    uint32_t        ip, p, total, nodes, i;
    pd_int_t        rc;
    pd_sockaddr_t   sa;

    ip = pd_test_rand(PD_TEST_CHURN_IPS);
    pid = 1 + pd_test_rand(PD_TEST_CHURN_PIDS);

    if (ip % 2) {
        (void) snprintf(text, sizeof(text), "203.0.113.%u", ip);
    } else {
        (void) snprintf(text, sizeof(text), "2001:db8:%x::1", ip);
    }

    pd_test_sin(&sa, text);

    total = 0;
    nodes = 0;

    for (i = 0; i < PD_TEST_CHURN_IPS; i++) {
        for (p = 1; p <= PD_TEST_CHURN_PIDS; p++) {
            nodes += (m->ip[i][p] > 0);
        }
    }

    for (p = 1; p <= PD_TEST_CHURN_PIDS; p++) {
        total += m->ip[ip][p];
    }

    assert_int_equal(pd_reg_ip_count(z, &sa.sockaddr), total);
    assert_int_equal(z->ip_count, nodes);

    if (m->ip[ip][pid] > 0 && pd_test_rand(2) == 0) {
        pd_reg_ip_release(z, &sa.sockaddr, pid);
        m->ip[ip][pid]--;
        return;
    }

    rc = pd_reg_ip_acquire(z, &sa.sockaddr, pid, PD_TEST_CHURN_LIMIT);

    if (total >= PD_TEST_CHURN_LIMIT
        || (m->ip[ip][pid] == 0 && nodes == PD_TEST_CHURN_NODES))
    {
        assert_int_equal(rc, PD_BUSY);
        return;
    }

    assert_int_equal(rc, PD_OK);
    m->ip[ip][pid]++;
}


/* the model's live app names, counted by the zone */
static uint32_t
pd_test_model_napps(pd_test_model_t *m)
{
    uint32_t  i, bits, n;

    bits = 0;

    for (i = 0; i < m->nconns; i++) {
        if (m->conns[i].used) {
            bits |= m->conns[i].apps;
        }
    }

    for (n = 0; bits != 0; bits &= bits - 1) {
        n++;
    }

    return n;
}


static void
pd_test_churn(void **state)
{
    uint32_t          op, r;
    pd_reg_zone_t    *z;
    pd_test_model_t  *m;

    (void) state;

    z = pd_test_zone(PD_TEST_CHURN_CONNS, PD_TEST_CHURN_NODES, NULL);
    m = calloc(1, sizeof(pd_test_model_t));
    assert_non_null(m);

    for (op = 0; op < 100000; op++) {
        r = pd_test_rand(1000);

        if (r < 350) {
            pd_test_churn_add(z, m);

        } else if (r < 600) {
            pd_test_churn_remove(z, m);

        } else if (r < 700) {
            pd_test_churn_set_apps(z, m);

        } else if (r < 850) {
            pd_test_churn_lookup(z, m);

        } else if (r < 853) {
            pd_test_churn_purge(z, m);

        } else {
            pd_test_churn_ip(z, m);
        }

        if (op % 97 == 0) {
            assert_int_equal(pd_reg_count(z), m->live);
            assert_int_equal(z->napps, pd_test_model_napps(m));
        }
    }

    /* the zone filled up and drained along the way */
    assert_true(m->next_conn > 10000);

    free(m);
    pd_test_zone_free(z);
}


#define PD_TEST_CHILDREN   4
#define PD_TEST_ROUNDS  3000
#define PD_TEST_KEPT     250
#define PD_TEST_TRIES    100
#define PD_TEST_LIMIT     50

/* a child's work: its exit status says what went wrong, 0 if nothing */
static int
pd_test_child_work(pd_reg_zone_t *z, uint32_t *won, uint32_t n)
{
    char            uid[16];
    int32_t         pid;
    uint32_t        i;
    pd_sockaddr_t   sa;
    pd_reg_info_t   out[PD_TEST_CHILDREN * 2];

    pid = (int32_t) getpid();
    pd_test_sin(&sa, "198.51.100.200");

    for (i = 0; i < PD_TEST_ROUNDS; i++) {
        (void) snprintf(uid, sizeof(uid), "shared%u", i % 100);

        if (pd_test_add(z, uid, "d", pid, i, NULL) != PD_OK) {
            return 1;
        }

        if (pd_test_lookup(z, uid, out, pd_nelems(out)) == 0) {
            return 2;
        }

        /* keep every PD_TEST_ROUNDS / PD_TEST_KEPT -th */
        if (i % (PD_TEST_ROUNDS / PD_TEST_KEPT) != 0
            && pd_test_remove(z, uid, pid, i) != PD_OK)
        {
            return 3;
        }

        if (i < PD_TEST_TRIES
            && pd_reg_ip_acquire(z, &sa.sockaddr, pid, PD_TEST_LIMIT)
               == PD_OK)
        {
            won[n]++;
        }
    }

    return 0;
}


static void
pd_test_fork_concurrent(void **state)
{
    int             status;
    pid_t           pids[PD_TEST_CHILDREN];
    size_t          size;
    uint32_t        i, *won, total;
    pd_sockaddr_t   sa;
    pd_reg_zone_t  *z;

    (void) state;

    z = pd_test_shared_zone(PD_TEST_CHILDREN * PD_TEST_ROUNDS, 64,
                            PD_TEST_CHILDREN * sizeof(uint32_t), &size);
    won = (uint32_t *) ((u_char *) z + size);

    for (i = 0; i < PD_TEST_CHILDREN; i++) {
        pids[i] = fork();
        assert_true(pids[i] != -1);

        if (pids[i] == 0) {
            _exit(pd_test_child_work(z, won, i));
        }
    }

    total = 0;

    for (i = 0; i < PD_TEST_CHILDREN; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        total += won[i];
    }

    /* the limit held across processes: exactly PD_TEST_LIMIT got in */
    assert_int_equal(total, PD_TEST_LIMIT);
    pd_test_sin(&sa, "198.51.100.200");
    assert_int_equal(pd_reg_ip_count(z, &sa.sockaddr), PD_TEST_LIMIT);

    assert_int_equal(pd_reg_count(z), PD_TEST_CHILDREN * PD_TEST_KEPT);
    assert_int_equal(z->repairs, 0);

    for (i = 0; i < PD_TEST_CHILDREN; i++) {
        assert_int_equal(pd_reg_purge_pid(z, pids[i]), PD_TEST_KEPT);
    }

    assert_int_equal(pd_reg_count(z), 0);
    assert_int_equal(pd_reg_ip_count(z, &sa.sockaddr), 0);
    assert_int_equal(z->ip_count, 0);

    assert_int_equal(munmap(z, size + PD_TEST_CHILDREN * sizeof(uint32_t)),
                     0);
}


typedef void (*pd_test_torn_pt)(pd_reg_zone_t *z);

/*
 * A child takes the zone's lock, lets torn() scribble as an update cut
 * short would, says so on a pipe and is SIGKILLed holding the lock.
 */
static void
pd_test_die_holding_lock(pd_reg_zone_t *z, pd_test_torn_pt torn)
{
    int    fds[2], status;
    char   c;
    pid_t  pid;

    assert_int_equal(pipe(fds), 0);

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        (void) close(fds[0]);

        if (pthread_mutex_lock(&z->mutex) != 0) {
            _exit(1);
        }

        if (torn != NULL) {
            torn(z);
        }

        if (write(fds[1], "L", 1) != 1) {
            _exit(2);
        }

        for ( ;; ) {
            (void) pause();
        }
    }

    (void) close(fds[1]);
    assert_int_equal(read(fds[0], &c, 1), 1);
    (void) close(fds[0]);

    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}


static void
pd_test_owner_dead(void **state)
{
    size_t          size;
    pd_reg_info_t   out[2];
    pd_reg_zone_t  *z;

    (void) state;

    z = pd_test_shared_zone(64, 8, 0, &size);
    assert_int_equal(pd_test_add(z, "hank", "d", 1, 1, NULL), PD_OK);

    pd_test_die_holding_lock(z, NULL);

    /* the next operation repairs and goes on, once */
    assert_int_equal(pd_test_add(z, "hank", "e", 1, 2, NULL), PD_OK);
    assert_int_equal(z->repairs, 1);
    assert_int_equal(pd_test_lookup(z, "hank", out, 2), 2);
    assert_int_equal(pd_reg_count(z), 2);
    assert_int_equal(z->repairs, 1);

    assert_int_equal(munmap(z, size), 0);
}


/*
 * Torn in three places: an add cut after its commit but before the
 * entry was linked ("ivan", conn 5), a remove cut after its commit but
 * before the unlink ("hank", conn 1), and an IP release cut after the
 * count reached 0 but before the node was freed.  Besides, the free
 * list head has already moved past the added slot.
 */
static void
pd_test_tear(pd_reg_zone_t *z)
{
    uint32_t         i, j;
    pd_reg_entry_t  *e;

    /* the next slot as pd_shtable_alloc() takes it: off the free list,
     * else past the top (a zone that grows with use) */
    i = z->free;
    if (i != PD_REG_NIL) {
        z->free = pd_test_entries(z)[i].next;
    } else {
        i = z->top++;
    }
    e = &pd_test_entries(z)[i];

    e->hash = (uint32_t) pd_siphash24(z->seed, (u_char *) "ivan", 4);
    e->pid = 1;
    e->wslot = 0;
    pd_reg_conn_set(e, 5);
    e->since = 0;
    e->napps = 0;
    e->uid_len = 4;
    e->device_len = 1;
    e->kind = PD_REG_CONN;
    e->more = PD_REG_NIL;
    pd_memcpy(e->names, "ivand", 5);
    e->state = PD_REG_USED;

    for (j = 0; j < z->max_conns; j++) {
        e = &pd_test_entries(z)[j];

        if (e->state == PD_REG_USED && pd_reg_conn(e) == 1) {
            e->state = PD_REG_FREE;
        }
    }

    for (j = 0; j < z->max_ips; j++) {
        if (pd_test_ips(z)[j].state == PD_REG_USED) {
            pd_test_ips(z)[j].count = 0;
        }
    }

    /* and a counter gone wrong, which the rebuild must not believe */
    z->count = 12345;
}


static void
pd_test_torn_update(void **state)
{
    size_t          size;
    uint32_t        added;
    pd_sockaddr_t   sa;
    pd_reg_info_t   out[2];
    pd_reg_zone_t  *z;
    const char     *apps[] = { "chat", NULL };

    (void) state;

    z = pd_test_shared_zone(32, 4, 0, &size);

    assert_int_equal(pd_test_add(z, "hank", "d", 1, 1, apps), PD_OK);
    assert_int_equal(pd_test_add(z, "hank", "e", 1, 2, NULL), PD_OK);
    pd_test_sin(&sa, "192.0.2.99");
    assert_int_equal(pd_reg_ip_acquire(z, &sa.sockaddr, 1, 1), PD_OK);

    pd_test_die_holding_lock(z, pd_test_tear);

    assert_int_equal(pd_reg_count(z), 2);
    assert_int_equal(z->repairs, 1);

    assert_int_equal(pd_test_lookup(z, "ivan", out, 2), 1);
    assert_int_equal(out[0].conn, 5);
    assert_int_equal(pd_test_lookup(z, "hank", out, 2), 1);
    assert_int_equal(out[0].conn, 2);

    /* "chat" was named by the removed connection only */
    assert_int_equal(z->napps, 0);

    assert_int_equal(pd_reg_ip_count(z, &sa.sockaddr), 0);
    assert_int_equal(z->ip_count, 0);
    assert_int_equal(pd_reg_ip_acquire(z, &sa.sockaddr, 1, 1), PD_OK);
    assert_int_equal(z->ip_count, 1);

    /* every slot is accounted for: exactly the rest can be added */
    added = pd_test_fill(z, 2, 64);

    assert_int_equal(added, 32 - 2);
    assert_int_equal(pd_test_remove(z, "ivan", 1, 5), PD_OK);
    assert_int_equal(pd_reg_purge_pid(z, 2), 30);
    assert_int_equal(pd_reg_count(z), 1);
    assert_int_equal(z->repairs, 1);

    assert_int_equal(munmap(z, size), 0);
}


/* the register's own count of slots holding long names' rest */
static uint32_t
pd_test_more_used(pd_reg_zone_t *z)
{
    pd_reg_zone_stats_t  st;

    assert_int_equal(pd_reg_zone_stats(z, &st), PD_OK);

    return st.more_used;
}


/*
 * Names longer than an entry holds (uid and device together past
 * PD_REG_NAMES) take a second slot, and come back whole; uids that
 * differ only past the entry's bytes are two uids; a zone's slots hold
 * half as many long-named connections; removing one frees both slots.
 */
static void
pd_test_long_names(void **state)
{
    char            a[PD_UID_MAX + 1], b[PD_UID_MAX + 1];
    char            dev[PD_DEVICE_MAX + 1], uid[32];
    uint32_t        i, k;
    pd_reg_info_t   out[2];
    pd_reg_zone_t  *z;

    (void) state;

    z = pd_test_zone(8, 4, NULL);

    /* a uid of 20 bytes beside a device of k: exactly the entry's */
    k = PD_REG_NAMES - 20;

    memset(a, 'a', PD_UID_MAX);
    a[PD_UID_MAX] = '\0';
    memcpy(b, a, sizeof(a));
    b[PD_UID_MAX - 1] = 'b';

    for (i = 0; i < PD_DEVICE_MAX; i++) {
        dev[i] = (char) ('0' + i % 10);
    }
    dev[PD_DEVICE_MAX] = '\0';

    /* exactly PD_REG_NAMES bytes fit in the entry; one more does not */
    memset(uid, 'x', 20);
    uid[20] = '\0';
    dev[k] = '\0';
    assert_int_equal(pd_test_add(z, uid, dev, 1, 1, NULL), PD_OK);
    assert_int_equal(pd_test_more_used(z), 0);
    dev[k] = (char) ('0' + k % 10);
    dev[k + 1] = '\0';
    assert_int_equal(pd_test_add(z, uid, dev, 1, 2, NULL), PD_OK);
    assert_int_equal(pd_test_more_used(z), 1);

    assert_int_equal(pd_test_lookup(z, uid, out, 2), 2);
    assert_int_equal(strlen((char *) out[0].device)
                     + strlen((char *) out[1].device), 2 * k + 1);
    assert_int_equal(pd_test_remove(z, uid, 1, 2), PD_OK);
    assert_int_equal(pd_test_more_used(z), 0);
    assert_int_equal(pd_test_remove(z, uid, 1, 1), PD_OK);

    /* the longest: both at their maxima, two uids alike but their end */
    dev[k + 1] = (char) ('0' + (k + 1) % 10);
    assert_int_equal(strlen(dev), PD_DEVICE_MAX);
    assert_int_equal(pd_test_add(z, a, dev, 1, 1, NULL), PD_OK);
    assert_int_equal(pd_test_add(z, b, "d-0123456789", 1, 2, NULL), PD_OK);
    assert_int_equal(pd_test_more_used(z), 2);

    assert_int_equal(pd_test_lookup(z, a, out, 2), 1);
    assert_string_equal((char *) out[0].uid, a);
    assert_string_equal((char *) out[0].device, dev);
    assert_int_equal(out[0].conn, 1);
    assert_int_equal(pd_test_lookup(z, b, out, 2), 1);
    assert_string_equal((char *) out[0].uid, b);
    assert_string_equal((char *) out[0].device, "d-0123456789");
    assert_int_equal(pd_test_remove(z, b, 1, 1), PD_DECLINED);
    assert_int_equal(pd_reg_move(z, (u_char *) b, PD_UID_MAX, 1, 2, 3, 0, 9,
                                 0), PD_OK);
    assert_int_equal(pd_test_lookup(z, b, out, 2), 1);
    assert_int_equal(out[0].pid, 3);

    /* 8 slots: two long-named take 4, so two more long-named fill it */
    assert_int_equal(pd_test_add(z, a, dev, 2, 1, NULL), PD_OK);
    assert_int_equal(pd_test_add(z, a, dev, 2, 2, NULL), PD_OK);
    assert_int_equal(pd_reg_count(z), 4);
    assert_int_equal(pd_test_add(z, "short", "d", 2, 3, NULL), PD_BUSY);

    /* one slot free: a long-named add is refused whole, a short fits */
    assert_int_equal(pd_test_remove(z, a, 2, 2), PD_OK);
    assert_int_equal(pd_test_add(z, "short", "d", 2, 3, NULL), PD_OK);
    assert_int_equal(pd_test_add(z, a, dev, 2, 4, NULL), PD_BUSY);
    assert_int_equal(pd_test_more_used(z), 3);
    assert_int_equal(pd_test_add(z, "short", "e", 2, 5, NULL), PD_OK);
    assert_int_equal(pd_reg_count(z), 5);

    /* a purge frees both slots of each of its pid's */
    assert_int_equal(pd_reg_purge_pid(z, 2), 3);
    assert_int_equal(pd_test_more_used(z), 2);
    assert_int_equal(pd_reg_count(z), 2);
    assert_int_equal(pd_test_lookup(z, a, out, 2), 1);
    assert_string_equal((char *) out[0].device, dev);

    pd_test_zone_free(z);
}


/*
 * Two long-named updates cut short by a holder's death (the states as
 * pd_reg_add and pd_reg_entry_free store them): an add whose rest of
 * names was committed before its entry was ("olga"), and a remove whose
 * entry was uncommitted before its rest was ("pete", conn 1).  And a
 * rest that names an entry which does not name it back.
 */
static void
pd_test_tear_long(pd_reg_zone_t *z)
{
    uint32_t         i, m;
    pd_reg_more_t   *more;
    pd_reg_entry_t  *e;

    m = z->top++;
    i = z->top++;
    more = (pd_reg_more_t *) &pd_test_entries(z)[m];
    more->kind = PD_REG_MORE;
    more->owner = i;
    more->state = PD_REG_USED;
    pd_test_entries(z)[i].state = PD_REG_FREE;

    for (i = 0; i < m; i++) {
        e = &pd_test_entries(z)[i];

        if (e->state == PD_REG_USED && e->kind == PD_REG_CONN
            && pd_reg_conn(e) == 1)
        {
            e->state = PD_REG_FREE;
        }
    }

    /* a stray: the entry of "pete" conn 2 names another slot */
    m = z->top++;
    more = (pd_reg_more_t *) &pd_test_entries(z)[m];
    more->kind = PD_REG_MORE;
    more->state = PD_REG_USED;

    for (i = 0; i < m; i++) {
        e = &pd_test_entries(z)[i];

        if (e->state == PD_REG_USED && e->kind == PD_REG_CONN
            && pd_reg_conn(e) == 2)
        {
            more->owner = i;
        }
    }

    z->more = 999;
}


static void
pd_test_torn_long(void **state)
{
    char            pete[PD_UID_MAX + 1];
    size_t          size;
    uint32_t        added;
    pd_reg_info_t   out[2];
    pd_reg_zone_t  *z;

    (void) state;

    z = pd_test_shared_zone(16, 4, 0, &size);

    memset(pete, 'p', PD_UID_MAX);
    pete[PD_UID_MAX] = '\0';
    assert_int_equal(pd_test_add(z, pete, "phone-0123456789", 1, 1, NULL),
                     PD_OK);
    assert_int_equal(pd_test_add(z, pete, "tablet-0123456789", 1, 2, NULL),
                     PD_OK);
    assert_int_equal(pd_test_more_used(z), 2);

    pd_test_die_holding_lock(z, pd_test_tear_long);

    /* the next operation repairs: pete's conn 2 stays whole */
    assert_int_equal(pd_test_lookup(z, pete, out, 2), 1);
    assert_int_equal(z->repairs, 1);
    assert_int_equal(out[0].conn, 2);
    assert_string_equal((char *) out[0].uid, pete);
    assert_string_equal((char *) out[0].device, "tablet-0123456789");
    assert_int_equal(pd_reg_count(z), 1);
    assert_int_equal(pd_test_more_used(z), 1);

    /* every other slot is free again: 14 short-named fit beside it */
    added = pd_test_fill(z, 2, 32);

    assert_int_equal(added, 16 - 2);
    assert_int_equal(pd_test_remove(z, pete, 1, 2), PD_OK);
    assert_int_equal(pd_test_more_used(z), 0);
    assert_int_equal(z->repairs, 1);

    assert_int_equal(munmap(z, size), 0);
}


/*
 * A connection handed to another worker (a reload): its one entry names
 * the new pid, slot and id at once, keeps its device, apps and since,
 * and takes the session id's tag (a reused slot's add clears it);
 * the old (pid, conn) is gone, a second move of the same is refused,
 * and so is one of an entry that does not exist.
 */
static void
pd_test_move(void **state)
{
    pd_reg_zone_t  *z;
    pd_reg_info_t   out[4];
    const char     *apps[] = { "news", "chat", NULL };

    (void) state;

    z = pd_test_zone(64, 16, NULL);

    assert_int_equal(pd_test_add(z, "mv", "phone", 100, 7, apps), PD_OK);
    assert_int_equal(pd_test_add(z, "mv", "tab", 101, 8, NULL), PD_OK);

    assert_int_equal(pd_reg_move(z, (const u_char *) "mv", 2, 100, 7,
                                 200, 3, 42, 0x123456), PD_OK);

    assert_int_equal(pd_test_lookup(z, "mv", out, 4), 2);

    {
        pd_reg_info_t  *m = out[0].pid == 200 ? &out[0] : &out[1];
        pd_reg_info_t  *o = out[0].pid == 200 ? &out[1] : &out[0];

        assert_int_equal(m->pid, 200);
        assert_int_equal(m->wslot, 3);
        assert_int_equal(m->conn, 42);
        assert_string_equal((char *) m->device, "phone");
        assert_int_equal(m->napps, 2);
        assert_int_equal(m->since, 1700000000000ULL + 7000);
        assert_int_equal(m->sid_tag, 0x123456);
        assert_int_equal(o->pid, 101);
        assert_int_equal(o->sid_tag, 0);
    }

    /* the old (pid, conn) is no longer there */
    assert_int_equal(pd_test_remove(z, "mv", 100, 7), PD_DECLINED);
    assert_int_equal(pd_reg_move(z, (const u_char *) "mv", 2, 100, 7,
                                 200, 3, 42, 0x123456), PD_DECLINED);
    assert_int_equal(pd_reg_move(z, (const u_char *) "none", 4, 100, 7,
                                 200, 3, 43, 0x123456), PD_DECLINED);
    assert_int_equal(pd_reg_move(z, (const u_char *) "", 0, 100, 7,
                                 200, 3, 43, 0x123456), PD_DECLINED);

    /* the moved entry is the new worker's to remove */
    assert_int_equal(pd_test_remove(z, "mv", 200, 42), PD_OK);
    assert_int_equal(pd_test_lookup(z, "mv", out, 4), 1);
    assert_int_equal(pd_reg_count(z), 1);

    /* its slot, reused by a plain add, carries no tag of it */
    assert_int_equal(pd_test_add(z, "mv", "phone", 102, 9, NULL), PD_OK);
    assert_int_equal(pd_test_lookup(z, "mv", out, 4), 2);
    assert_int_equal(out[0].sid_tag, 0);
    assert_int_equal(out[1].sid_tag, 0);
    assert_int_equal(pd_test_remove(z, "mv", 102, 9), PD_OK);

    pd_test_zone_free(z);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_geometry),
        cmocka_unit_test(pd_test_add_lookup_remove),
        cmocka_unit_test(pd_test_entry_fields),
        cmocka_unit_test(pd_test_bad_arguments),
        cmocka_unit_test(pd_test_several_devices),
        cmocka_unit_test(pd_test_set_apps),
        cmocka_unit_test(pd_test_move),
        cmocka_unit_test(pd_test_long_names),
        cmocka_unit_test(pd_test_app_table_full),
        cmocka_unit_test(pd_test_full_zone),
        cmocka_unit_test(pd_test_collisions),
        cmocka_unit_test(pd_test_purge_pid),
        cmocka_unit_test(pd_test_ip_limit),
        cmocka_unit_test(pd_test_ip_table_full),
        cmocka_unit_test(pd_test_attach),
        cmocka_unit_test(pd_test_grows_with_use),
        cmocka_unit_test(pd_test_churn),
        cmocka_unit_test(pd_test_fork_concurrent),
        cmocka_unit_test(pd_test_owner_dead),
        cmocka_unit_test(pd_test_torn_update),
        cmocka_unit_test(pd_test_torn_long),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
