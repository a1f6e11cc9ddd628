/*
 * test_pd_dispatcher.c: the dispatcher's pure parts: room addresses,
 * the query of GET /v1/dispatch, the text a cluster node publishes, the
 * weighted rendezvous ranking (stable, spread by weight, moving only a
 * leaving node's uids) and the pick (ports mixed, failed= left out,
 * another idc preferred, net groups, TLS ports for TLS requests).
 */

#include "pd_core.h"
#include "pd_dispatcher.h"

#include <setjmp.h>
#include <cmocka.h>

#define S(s)  (const u_char *) (s), sizeof(s) - 1

static pd_str_t
pd_test_str(const char *s)
{
    pd_str_t  v;

    v.data = (u_char *) s;
    v.len = strlen(s);
    return v;
}

static void
test_addr(void **state)
{
    pd_dispatch_addr_t  a;

    (void) state;

    assert_null(pd_dispatch_parse_addr(S("Push-1.Example.COM:8080"), 0, &a));
    assert_string_equal(a.text, "push-1.example.com:8080");
    assert_int_equal(a.len, strlen("push-1.example.com:8080"));
    assert_int_equal(a.port, 8080);
    assert_int_equal(a.ssl, 0);

    assert_null(pd_dispatch_parse_addr(S("[2001:DB8::1]:443 ssl"), 1, &a));
    assert_string_equal(a.text, "[2001:db8::1]:443");
    assert_int_equal(a.port, 443);
    assert_int_equal(a.ssl, 1);

    assert_null(pd_dispatch_parse_addr(S("10.0.0.1:1"), 1, &a));
    assert_null(pd_dispatch_parse_addr(S("10.0.0.1:65535"), 1, &a));

    /* " ssl" only where allowed: a failed= address is host:port */
    assert_non_null(pd_dispatch_parse_addr(S("10.0.0.1:443 ssl"), 0, &a));
    assert_non_null(pd_dispatch_parse_addr(S(""), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(S("10.0.0.1"), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(S("10.0.0.1:"), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(S(":80"), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(S("10.0.0.1:0"), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(S("10.0.0.1:65536"), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(S("10.0.0.1:8o"), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(S("10.0.0.1:123456"), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(S("2001:db8::1:80"), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(S("[2001:db8::1]80"), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(S("[zz::1]:80"), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(S("a b:80"), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(S("a\"b:80"), 1, &a));
    assert_non_null(pd_dispatch_parse_addr(
        S("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          ":80"), 1, &a));
}

static void
test_query(void **state)
{
    pd_dispatch_query_t  q;
    pd_str_t             args;

    (void) state;

    args = pd_test_str("uid=alice&net=wifi&failed=10.0.0.1%3A80%2C"
                       "%5B::1%5D:443,,10.0.0.1:80");
    assert_null(pd_dispatch_parse_query(&args, &q));
    assert_int_equal(q.uid_len, 5);
    assert_memory_equal(q.uid, "alice", 5);
    assert_int_equal(q.net.len, 4);
    assert_memory_equal(q.net.name, "wifi", 4);
    /* the repeated one counts once; the empty item is skipped */
    assert_int_equal(q.nfailed, 2);
    assert_string_equal(q.failed[0].text, "10.0.0.1:80");
    assert_string_equal(q.failed[1].text, "[::1]:443");

    args = pd_test_str("uid=u%40x.y");
    assert_null(pd_dispatch_parse_query(&args, &q));
    assert_int_equal(q.net.len, 0);
    assert_int_equal(q.nfailed, 0);

    args = pd_test_str("net=wifi");
    assert_string_equal(pd_dispatch_parse_query(&args, &q),
                        "\"uid\" is missing");

    args = pd_test_str("uid=");
    assert_string_equal(pd_dispatch_parse_query(&args, &q),
                        "\"uid\" is missing");

    args = pd_test_str("uid=a%20b");
    assert_non_null(strstr(pd_dispatch_parse_query(&args, &q), "\"uid\""));

    args = pd_test_str("uid=%zz");
    assert_non_null(strstr(pd_dispatch_parse_query(&args, &q), "\"uid\""));

    args = pd_test_str("uid=u&net=wi%20fi");
    assert_non_null(strstr(pd_dispatch_parse_query(&args, &q), "\"net\""));

    args = pd_test_str("uid=u&failed=nohost");
    assert_non_null(strstr(pd_dispatch_parse_query(&args, &q),
                           "\"failed\""));

    args = pd_test_str("uid=u&failed=a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1,"
                       "j:1,k:1,l:1,m:1,n:1,o:1,p:1,q:1");
    assert_string_equal(pd_dispatch_parse_query(&args, &q),
                        "\"failed\" names more than 16 addresses");
}

static void
test_node_text(void **state)
{
    pd_dispatch_node_t  n, m;
    u_char              buf[1024];
    size_t              len;

    (void) state;

    pd_memzero(&n, sizeof(n));
    n.weight = 3;
    assert_null(pd_dispatch_parse_name(S("east"), &n.idc));
    assert_null(pd_dispatch_parse_name(S("cell"), &n.nets[0]));
    n.nnets = 1;
    assert_null(pd_dispatch_parse_addr(S("h1:80"), 1, &n.addrs[0]));
    assert_null(pd_dispatch_parse_addr(S("h1:443 ssl"), 1, &n.addrs[1]));
    n.naddrs = 2;

    len = pd_dispatch_node_text(&n, buf, sizeof(buf));
    assert_int_equal(len, strlen("east\t3\tcell\th1:80,h1:443 ssl"));
    assert_memory_equal(buf, "east\t3\tcell\th1:80,h1:443 ssl", len);

    assert_null(pd_dispatch_node_parse(buf, len, &m));
    assert_int_equal(m.weight, 3);
    assert_int_equal(m.idc.len, 4);
    assert_int_equal(m.nnets, 1);
    assert_int_equal(m.naddrs, 2);
    assert_int_equal(m.addrs[1].ssl, 1);
    assert_int_equal(m.addrs[1].port, 443);

    /* no idc, no nets */
    assert_null(pd_dispatch_node_parse(S("\t1\t\th:1"), &m));
    assert_int_equal(m.idc.len, 0);
    assert_int_equal(m.nnets, 0);

    /* what another node published is not trusted */
    assert_non_null(pd_dispatch_node_parse(S(""), &m));
    assert_non_null(pd_dispatch_node_parse(S("e\t1\t\t"), &m));
    assert_non_null(pd_dispatch_node_parse(S("e\t0\t\th:1"), &m));
    assert_non_null(pd_dispatch_node_parse(S("e\t1001\t\th:1"), &m));
    assert_non_null(pd_dispatch_node_parse(S("e\t1\t\th:1\tmore"), &m));
    assert_non_null(pd_dispatch_node_parse(S("e f\t1\t\th:1"), &m));
    assert_non_null(pd_dispatch_node_parse(S("e\t1\ta,,b\th:1"), &m));
    assert_non_null(pd_dispatch_node_parse(
        S("e\t1\t\th:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8,h:9"), &m));
}

/* a node with one address per port given, all plain */
static void
pd_test_node(pd_dispatch_node_t *n, const char *host, const char *idc,
    uint32_t weight, const int *ports, pd_uint_t nports)
{
    char       text[80];
    pd_uint_t  i;

    pd_memzero(n, sizeof(pd_dispatch_node_t));
    n->weight = weight;

    if (idc != NULL) {
        assert_null(pd_dispatch_parse_name((const u_char *) idc,
                                           strlen(idc), &n->idc));
    }

    for (i = 0; i < nports; i++) {
        snprintf(text, sizeof(text), "%s:%d", host, ports[i]);
        assert_null(pd_dispatch_parse_addr((const u_char *) text,
                                           strlen(text), 0, &n->addrs[i]));
    }

    n->naddrs = (uint8_t) nports;
    n->id = pd_dispatch_node_id(n->addrs[0].text, n->addrs[0].len);
}

static void
pd_test_uid(pd_dispatch_query_t *q, pd_uint_t i)
{
    pd_memzero(q, sizeof(*q));
    q->uid_len = (size_t) snprintf((char *) q->uid, sizeof(q->uid),
                                   "user-%lu", (unsigned long) i);
}

/* the node an address belongs to */
static pd_uint_t
pd_test_owner(pd_dispatch_node_t *nodes, pd_uint_t n,
    const pd_dispatch_addr_t *a)
{
    pd_uint_t  i;

    for (i = 0; i < n; i++) {
        if (a >= nodes[i].addrs && a < nodes[i].addrs + nodes[i].naddrs) {
            return i;
        }
    }

    fail();
    return 0;
}

static void
test_spread_by_weight(void **state)
{
    static const int     ports[] = { 80 };
    pd_dispatch_node_t   nodes[4];
    pd_dispatch_set_t    set;
    pd_dispatch_query_t  q;
    const pd_dispatch_addr_t  *out[PD_DISPATCH_COUNT_MAX], *again[1];
    pd_uint_t            hits[4] = { 0 }, i, n, moved;

    (void) state;

    pd_test_node(&nodes[0], "n0", NULL, 1, ports, 1);
    pd_test_node(&nodes[1], "n1", NULL, 1, ports, 1);
    pd_test_node(&nodes[2], "n2", NULL, 2, ports, 1);
    pd_test_node(&nodes[3], "n3", NULL, 4, ports, 1);

    set.nodes = nodes;
    set.nnodes = 4;
    set.count = 1;
    set.ssl = 0;

    for (i = 0; i < 16000; i++) {
        pd_test_uid(&q, i);
        n = pd_dispatch_pick(&set, &q, out);
        assert_int_equal(n, 1);
        hits[pd_test_owner(nodes, 4, out[0])]++;

        /* the same uid, the same first address */
        assert_int_equal(pd_dispatch_pick(&set, &q, again), 1);
        assert_ptr_equal(again[0], out[0]);
    }

    /* weights 1:1:2:4 of 16000: 2000, 2000, 4000, 8000, within 5% */
    assert_in_range(hits[0], 1900, 2100);
    assert_in_range(hits[1], 1900, 2100);
    assert_in_range(hits[2], 3800, 4200);
    assert_in_range(hits[3], 7600, 8400);

    /* a node leaves: only its own uids move, and every other node takes
     * its part of them */
    moved = 0;
    for (i = 0; i < 4000; i++) {
        pd_test_uid(&q, i);
        set.nnodes = 4;
        assert_int_equal(pd_dispatch_pick(&set, &q, out), 1);
        set.nnodes = 3;
        assert_int_equal(pd_dispatch_pick(&set, &q, again), 1);

        if (pd_test_owner(nodes, 4, out[0]) != 3) {
            assert_ptr_equal(again[0], out[0]);

        } else {
            moved++;
        }
    }

    assert_in_range(moved, 1800, 2200);
}

static void
test_ports_mixed(void **state)
{
    static const int     ports[] = { 80, 8080, 443 };
    pd_dispatch_node_t   nodes[3];
    pd_dispatch_set_t    set;
    pd_dispatch_query_t  q;
    const pd_dispatch_addr_t  *out[PD_DISPATCH_COUNT_MAX];
    pd_uint_t            i, j, k, n, owners, port_kinds;

    (void) state;

    pd_test_node(&nodes[0], "a", NULL, 1, ports, 3);
    pd_test_node(&nodes[1], "b", NULL, 1, ports, 3);
    pd_test_node(&nodes[2], "c", NULL, 1, ports, 3);

    set.nodes = nodes;
    set.nnodes = 3;
    set.count = 3;
    set.ssl = 0;

    for (i = 0; i < 500; i++) {
        pd_test_uid(&q, i);
        n = pd_dispatch_pick(&set, &q, out);
        assert_int_equal(n, 3);

        /* three nodes and three ports: one of each */
        owners = 0;
        port_kinds = 0;
        for (j = 0; j < n; j++) {
            owners |= 1U << pd_test_owner(nodes, 3, out[j]);
            for (k = 0; k < 3; k++) {
                if (out[j]->port == ports[k]) {
                    port_kinds |= 1U << k;
                }
            }
        }

        assert_int_equal(owners, 7);
        assert_int_equal(port_kinds, 7);
    }

    /* more wanted than nodes: every address at most once, all nine */
    set.count = 16;
    pd_test_uid(&q, 1);
    n = pd_dispatch_pick(&set, &q, out);
    assert_int_equal(n, 9);

    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            assert_ptr_not_equal(out[i], out[j]);
        }
    }
}

static void
test_failed_and_idc(void **state)
{
    static const int     ports[] = { 80, 8080 };
    pd_dispatch_node_t   nodes[4];
    pd_dispatch_set_t    set;
    pd_dispatch_query_t  q;
    const pd_dispatch_addr_t  *out[PD_DISPATCH_COUNT_MAX];
    pd_uint_t            i, j, n, first;

    (void) state;

    pd_test_node(&nodes[0], "e1", "east", 1, ports, 2);
    pd_test_node(&nodes[1], "e2", "east", 1, ports, 2);
    pd_test_node(&nodes[2], "w1", "west", 1, ports, 2);
    pd_test_node(&nodes[3], "w2", "west", 1, ports, 2);

    set.nodes = nodes;
    set.nnodes = 4;
    set.count = 4;
    set.ssl = 0;

    for (i = 0; i < 300; i++) {
        pd_test_uid(&q, i);
        assert_int_equal(pd_dispatch_pick(&set, &q, out), 4);
        first = pd_test_owner(nodes, 4, out[0]);

        /* the client says its first address failed: that one is gone,
         * and the nodes of the other idc come first */
        q.failed[0] = *out[0];
        q.nfailed = 1;

        n = pd_dispatch_pick(&set, &q, out);
        assert_true(n >= 4);

        for (j = 0; j < n; j++) {
            assert_false(out[j]->len == q.failed[0].len
                         && memcmp(out[j]->text, q.failed[0].text,
                                   out[j]->len) == 0);
        }

        assert_int_not_equal(nodes[pd_test_owner(nodes, 4, out[0])].idc
                                 .name[0],
                             nodes[first].idc.name[0]);
        assert_int_not_equal(nodes[pd_test_owner(nodes, 4, out[1])].idc
                                 .name[0],
                             nodes[first].idc.name[0]);
    }

    /* everything failed: nothing to give */
    pd_test_uid(&q, 7);
    for (i = 0; i < 4; i++) {
        q.failed[2 * i] = nodes[i].addrs[0];
        q.failed[2 * i + 1] = nodes[i].addrs[1];
    }
    q.nfailed = 8;
    assert_int_equal(pd_dispatch_pick(&set, &q, out), 0);
}

static void
test_net_and_ssl(void **state)
{
    static const int     ports[] = { 80 };
    pd_dispatch_node_t   nodes[3];
    pd_dispatch_set_t    set;
    pd_dispatch_query_t  q;
    const pd_dispatch_addr_t  *out[PD_DISPATCH_COUNT_MAX];
    pd_uint_t            i, n;

    (void) state;

    pd_test_node(&nodes[0], "wifi1", NULL, 1, ports, 1);
    pd_test_node(&nodes[1], "cell1", NULL, 1, ports, 1);
    pd_test_node(&nodes[2], "cell2", NULL, 1, ports, 1);
    assert_null(pd_dispatch_parse_name(S("wifi"), &nodes[0].nets[0]));
    nodes[0].nnets = 1;
    assert_null(pd_dispatch_parse_name(S("cell"), &nodes[1].nets[0]));
    nodes[1].nnets = 1;
    assert_null(pd_dispatch_parse_name(S("cell"), &nodes[2].nets[0]));
    nodes[2].nnets = 1;

    /* a TLS port on the first node only */
    assert_null(pd_dispatch_parse_addr(S("wifi1:443 ssl"), 1,
                                       &nodes[0].addrs[1]));
    nodes[0].naddrs = 2;

    set.nodes = nodes;
    set.nnodes = 3;
    set.count = 3;
    set.ssl = 0;

    for (i = 0; i < 100; i++) {
        pd_test_uid(&q, i);
        assert_null(pd_dispatch_parse_name(S("cell"), &q.net));
        n = pd_dispatch_pick(&set, &q, out);
        assert_int_equal(n, 2);
        assert_int_not_equal(pd_test_owner(nodes, 3, out[0]), 0);
        assert_int_not_equal(pd_test_owner(nodes, 3, out[1]), 0);

        /* a net no node names: every node */
        assert_null(pd_dispatch_parse_name(S("sat"), &q.net));
        assert_int_equal(pd_dispatch_pick(&set, &q, out), 3);
    }

    /* a TLS request gets TLS ports only */
    set.ssl = 1;
    pd_test_uid(&q, 3);
    n = pd_dispatch_pick(&set, &q, out);
    assert_int_equal(n, 1);
    assert_string_equal(out[0]->text, "wifi1:443");
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_node_text),
        cmocka_unit_test(test_spread_by_weight),
        cmocka_unit_test(test_ports_mixed),
        cmocka_unit_test(test_failed_and_idc),
        cmocka_unit_test(test_net_and_ssl),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
