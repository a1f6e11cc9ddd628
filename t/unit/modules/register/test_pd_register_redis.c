/*
 * test_pd_register_redis.c: the cluster register's entries as they go to
 * Redis and come back (untrusted): fields, values, and the shard hash
 * every node must compute alike; and the records of a route batch as a
 * worker reads them off its batch channel (untrusted too).
 */

#include "pd_core.h"
#include "pd_register.h"

#include <setjmp.h>
#include <cmocka.h>

static pd_int_t
pd_test_field(const char *f, pd_reg_info_t *info, const char **boot,
    size_t *boot_len, pid_t *pid)
{
    char      *copy;
    pd_int_t   rc;
    size_t     len = strlen(f);

    /* exact-size copies: ASan sees a read past the end */
    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, f, len);

    rc = pd_rr_parse_field(copy, len, info, boot, boot_len, pid);

    if (rc == PD_OK) {
        /* boot points into the field: check it before the copy goes */
        assert_true(*boot >= copy && *boot + *boot_len <= copy + len);
        *boot = f + (*boot - copy);
    }

    free(copy);
    return rc;
}

static void
test_fields(void **state)
{
    pd_reg_info_t   info;
    const char     *boot;
    size_t          blen;
    pid_t           pid;

    (void) state;

    pd_memzero(&info, sizeof(info));
    assert_int_equal(pd_test_field("node-a/1f2e3d/4d2/30000002a", &info,
                                   &boot, &blen, &pid), PD_OK);
    assert_string_equal((char *) info.node, "node-a");
    assert_int_equal(blen, 6);
    assert_memory_equal(boot, "1f2e3d", 6);
    assert_int_equal(pid, 0x4d2);
    assert_int_equal(info.pid, 0x4d2);
    assert_true(info.conn == 0x30000002aULL);

    /* malformed: parts missing, empty, too long, not hex */
    assert_int_equal(pd_test_field("node-a/1f/4d2", &info, &boot, &blen,
                                   &pid), PD_ERROR);
    assert_int_equal(pd_test_field("/1f/4d2/2a", &info, &boot, &blen, &pid),
                     PD_ERROR);
    assert_int_equal(pd_test_field("n/1f//2a", &info, &boot, &blen, &pid),
                     PD_ERROR);
    assert_int_equal(pd_test_field("n/1f/4d2/", &info, &boot, &blen, &pid),
                     PD_ERROR);
    assert_int_equal(pd_test_field("n/1f/xyz/2a", &info, &boot, &blen,
                                   &pid), PD_ERROR);
    assert_int_equal(pd_test_field("n/1f/0/2a", &info, &boot, &blen, &pid),
                     PD_ERROR);
    assert_int_equal(pd_test_field("n/1f/4d2/2a-", &info, &boot, &blen,
                                   &pid), PD_ERROR);
    assert_int_equal(pd_test_field("a-node-name-longer-than-32-chars-x/1/2/3",
                                   &info, &boot, &blen, &pid), PD_ERROR);
    assert_int_equal(pd_test_field("", &info, &boot, &blen, &pid), PD_ERROR);
}

static void
test_value_roundtrip(void **state)
{
    pd_reg_info_t   in, out;
    char            buf[1024];
    size_t          n;

    (void) state;

    pd_memzero(&in, sizeof(in));
    pd_memcpy(in.device, "phone-1", 8);
    pd_memcpy(in.apps[0], "chat", 5);
    pd_memcpy(in.apps[1], "news.v2", 8);
    in.napps = 2;
    in.wslot = 3;
    in.since = 1795646982000ULL;

    n = pd_rr_value(buf, sizeof(buf), &in);
    assert_string_equal(buf, "3\t1795646982000\tphone-1\tchat,news.v2");

    pd_memzero(&out, sizeof(out));
    assert_int_equal(pd_rr_parse_value(buf, n, &out), PD_OK);
    assert_int_equal(out.wslot, 3);
    assert_true(out.since == 1795646982000ULL);
    assert_string_equal((char *) out.device, "phone-1");
    assert_int_equal(out.napps, 2);
    assert_string_equal((char *) out.apps[1], "news.v2");

    /* no apps at all */
    assert_int_equal(pd_rr_parse_value("0\t1\td\t", 6, &out), PD_OK);
    assert_int_equal(out.napps, 0);

    /* malformed or hostile */
    assert_int_equal(pd_rr_parse_value("0\t1", 3, &out), PD_ERROR);
    assert_int_equal(pd_rr_parse_value("", 0, &out), PD_ERROR);
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(pd_rr_parse_value(buf, sizeof(buf), &out), PD_ERROR);

    /* a device over the limit is refused, apps over the count are cut */
    n = (size_t) snprintf(buf, sizeof(buf), "0\t1\t%0100d\ta", 0);
    assert_int_equal(pd_rr_parse_value(buf, n, &out), PD_ERROR);
    n = (size_t) snprintf(buf, sizeof(buf), "0\t1\td\ta,b,c,d,e,f,g,h,i,j");
    assert_int_equal(pd_rr_parse_value(buf, n, &out), PD_OK);
    assert_int_equal(out.napps, PD_APPS_MAX);
}

/* every node must put a uid on the same server */
static void
test_shard_agrees(void **state)
{
    uint32_t  a, b;

    (void) state;

    a = pd_redis_shard((u_char *) "alice", 5, 3);
    b = pd_redis_shard((u_char *) "alice", 5, 3);
    assert_int_equal(a, b);
    assert_true(a < 3);
    assert_int_equal(pd_redis_shard((u_char *) "alice", 5, 1), 0);
}

/* an HGETALL reply from the server's bytes: the well-formed pairs only */
static void
test_entries(void **state)
{
    redisReader    *rd;
    void           *reply = NULL;
    pd_reg_info_t   info[4];
    char            field[4][PD_RR_FIELD_MAX];
    static const char  resp[] =
        "*12\r\n"
        "$22\r\nnode-a/1f2e3d/4d2/2a00\r\n"
        "$25\r\n3\t1700000000000\tdev1\tchat\r\n"
        ":5\r\n$5\r\nx\ty\tz\r\n"                /* not a string */
        "$1\r\nf\r\n$-1\r\n"                      /* a nil value */
        "$20\r\nnode-b/abc/10/ffffff\r\n"
        "$20\r\n0\t17\tphone\tchat,news\r\n"
        "$1\r\ng\r\n$3\r\n1\t2\r\n"             /* no device */
        "$2\r\nh1\r\n$7\r\n1\t2\tdev\r\n";

    (void) state;

    rd = redisReaderCreate();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, resp, sizeof(resp) - 1), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);

    pd_memzero(info, sizeof(info));
    assert_int_equal(pd_rr_parse_entries(reply, info, field, 4), 3);
    assert_string_equal(field[0], "node-a/1f2e3d/4d2/2a00");
    assert_string_equal((char *) info[0].device, "dev1");
    assert_int_equal(info[0].wslot, 3);
    assert_string_equal(field[1], "node-b/abc/10/ffffff");
    assert_int_equal(info[1].napps, 2);
    assert_string_equal((char *) info[1].apps[1], "news");
    assert_string_equal(field[2], "h1");

    /* the bound holds */
    assert_int_equal(pd_rr_parse_entries(reply, info, field, 1), 1);

    freeReplyObject(reply);
    redisReaderFree(rd);

    assert_int_equal(pd_rr_parse_entries(NULL, info, field, 4), 0);
}

/* a record as pd_register_route.c writes it: header, then payload */
static size_t
pd_test_record(u_char *p, uint32_t command, uint64_t arg, const char *origin,
    const char *payload, size_t len)
{
    pd_register_route_hdr_t  hdr;

    memset(&hdr, 0, sizeof(hdr));
    hdr.command = command;
    hdr.len = (uint32_t) len;
    hdr.arg = arg;
    snprintf(hdr.origin, sizeof(hdr.origin), "%s", origin);

    memcpy(p, &hdr, sizeof(hdr));
    memcpy(p + sizeof(hdr), payload, len);

    return sizeof(hdr) + len;
}

static void
test_route_batch(void **state)
{
    pd_register_route_hdr_t   hdr;
    const u_char             *payload;
    u_char                   *b, *copy;
    size_t                    len, pos, one;

    (void) state;

    b = calloc(1, 3 * sizeof(hdr) + 64);
    assert_non_null(b);

    /* three records, the middle one empty, walked in order */
    len = pd_test_record(b, 7, 42, "node-a", "hello", 5);
    one = len;
    len += pd_test_record(b + len, 8, 0, "node-a", "", 0);
    len += pd_test_record(b + len, 9, 1, "node-a", "world!", 6);

    /* exact-size copy: ASan sees a read past the end */
    copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, b, len);

    pos = 0;
    assert_int_equal(pd_register_route_next(copy, len, &pos, &hdr, &payload),
                     PD_OK);
    assert_int_equal(hdr.command, 7);
    assert_int_equal(hdr.arg, 42);
    assert_int_equal(hdr.len, 5);
    assert_string_equal(hdr.origin, "node-a");
    assert_memory_equal(payload, "hello", 5);
    assert_int_equal(pos, one);

    assert_int_equal(pd_register_route_next(copy, len, &pos, &hdr, &payload),
                     PD_OK);
    assert_int_equal(hdr.command, 8);
    assert_int_equal(hdr.len, 0);

    assert_int_equal(pd_register_route_next(copy, len, &pos, &hdr, &payload),
                     PD_OK);
    assert_int_equal(hdr.command, 9);
    assert_memory_equal(payload, "world!", 6);
    assert_int_equal(pos, len);

    assert_int_equal(pd_register_route_next(copy, len, &pos, &hdr, &payload),
                     PD_DONE);

    /* a record cut short, in its header or its payload: an error, and
     * the position stays at the record */
    pos = one;
    assert_int_equal(pd_register_route_next(copy, one + 10, &pos, &hdr,
                                            &payload), PD_ERROR);
    assert_int_equal(pos, one);
    pos = 0;
    assert_int_equal(pd_register_route_next(copy, one - 1, &pos, &hdr,
                                            &payload), PD_ERROR);
    assert_int_equal(pos, 0);

    /* a length past the bound, whatever the bytes after it */
    ((pd_register_route_hdr_t *) b)->len = PD_CHANNEL_MAX_DATA + 1;
    pos = 0;
    assert_int_equal(pd_register_route_next(b, len, &pos, &hdr, &payload),
                     PD_ERROR);

    /* an origin without its NUL comes back terminated */
    memset(((pd_register_route_hdr_t *) b)->origin, 'x',
           sizeof(hdr.origin));
    ((pd_register_route_hdr_t *) b)->len = 5;
    pos = 0;
    assert_int_equal(pd_register_route_next(b, len, &pos, &hdr, &payload),
                     PD_OK);
    assert_int_equal(strlen(hdr.origin), sizeof(hdr.origin) - 1);

    free(copy);
    free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_value_roundtrip),
        cmocka_unit_test(test_shard_agrees),
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_route_batch),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
