'use strict';
/*
 * dispatcher.test.js: GET /v1/dispatch on the room's ports.  Over 1000
 * uids the first address is stable from call to call and the uids
 * spread over the nodes by weight, the addresses of an answer are on
 * different nodes with their ports mixed; failed= addresses are left out
 * and another idc comes first; net= selects a node group; a TLS request
 * gets the TLS ports; the per-address rate and bad queries get clear
 * errors while the daemon serves on; bad nodes are refused by -t.  In a
 * cluster (a real redis-server) every node's room.advertise is handed
 * out, a SIGKILLed node leaves the answers within node_ttl and a
 * stopped one at once.
 */

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const L = require('./lib.js');
const W = require('./ws_client.js');
const S = require('./servers.js');

const T = { timeout: 120000 };

const NODES = [
    { addr: ['10.1.0.1:80', '10.1.0.1:8080', '10.1.0.1:443 ssl'],
      idc: 'east', weight: 1 },
    { addr: ['10.1.0.2:80', '10.1.0.2:8080', '10.1.0.2:443 ssl'],
      idc: 'east', weight: 1 },
    { addr: ['10.2.0.1:80', '10.2.0.1:8080', '10.2.0.1:443 ssl'],
      idc: 'west', weight: 2, net: ['cell'] },
];

function owner(addr) {
    return addr.replace(/:\d+$/, '');
}

/*
 * The daemon's options; the nodes, a list of maps, go in as a YAML flow
 * sequence (JSON) in place of a placeholder the generator can write.
 */
function conf(dispatcher = {}, more = {}) {
    return Object.assign({
        workers: 2,
        room: { auth_secret: W.SECRET },
        top: {
            dispatcher: Object.assign({ nodes: 'NODES_HERE',
                                        max_requests_per_ip: 0 },
                                      dispatcher),
        },
        prepare: (d) => {
            fs.writeFileSync(d.confPath, d.buildConfig()
                .replace('NODES_HERE', JSON.stringify(NODES)));
        },
    }, more);
}

async function dispatch(d, query, opts = {}) {
    const r = await L.request(opts.tls ? d.sslPort : d.roomPort,
                              opts.method || 'GET', `/v1/dispatch?${query}`,
                              {}, undefined, { tls: !!opts.tls });
    try {
        r.json = JSON.parse(r.body);
    } catch (e) {
        r.json = null;
    }
    return r;
}

test('dispatcher: 1000 uids: the first address stable, spread by '
     + 'weight, ports mixed, the reconnect policy told', T, async () => {
    await L.withPushd(conf({ count: 3, reconnect_base: '2s',
                             reconnect_jitter: 25, heartbeat: '300s' }),
                      async (d) => {
        const first = new Map();
        const perNode = {};
        for (let i = 0; i < 1000; i++) {
            const r = await dispatch(d, `uid=u${i}`);
            assert.strictEqual(r.status, 200, r.body);
            assert.strictEqual(r.headers['content-type'], 'application/json');
            const a = r.json.addrs;
            assert.strictEqual(r.json.uid, `u${i}`);
            assert.strictEqual(a.length, 3, r.body);
            /* three nodes, three ports: one of each, no TLS port */
            assert.strictEqual(new Set(a.map(owner)).size, 3, r.body);
            assert.strictEqual(new Set(a.map((x) => x.split(':')[1])).size,
                               2, r.body);
            assert.ok(!a.some((x) => x.endsWith(':443')), r.body);
            first.set(i, a[0]);
            perNode[owner(a[0])] = (perNode[owner(a[0])] || 0) + 1;
        }
        /* weights 1:1:2 -> 250, 250, 500 */
        assert.ok(perNode['10.1.0.1'] > 200 && perNode['10.1.0.1'] < 300,
                  JSON.stringify(perNode));
        assert.ok(perNode['10.1.0.2'] > 200 && perNode['10.1.0.2'] < 300,
                  JSON.stringify(perNode));
        assert.ok(perNode['10.2.0.1'] > 440 && perNode['10.2.0.1'] < 560,
                  JSON.stringify(perNode));

        /* asked again (on any worker), the same first address */
        for (let i = 0; i < 1000; i++) {
            const r = await dispatch(d, `uid=u${i}`);
            assert.strictEqual(r.json.addrs[0], first.get(i), `u${i}`);
        }

        const r = await dispatch(d, 'uid=u1');
        assert.strictEqual(r.json.ttl, 300);
        assert.strictEqual(r.json.hb, 300);
        assert.deepStrictEqual(r.json.reconnect,
                               { base_ms: 2000, max_ms: 120000,
                                 jitter: 0.25 });
    });
});

test('dispatcher: failed addresses left out and another idc first; '
     + 'net= selects a group; TLS requests get TLS ports', T, async () => {
    await L.withPushd(conf({ count: 3 }, { roomSsl: true }), async (d) => {
        let moved = 0;
        for (let i = 0; i < 200; i++) {
            const r0 = await dispatch(d, `uid=f${i}`);
            const a0 = r0.json.addrs;
            const failedIdc = a0[0].startsWith('10.1.') ? 'east' : 'west';
            /* the client could not reach its first two addresses */
            const failed = a0.slice(0, 2);
            const r = await dispatch(d, `uid=f${i}&failed=`
                                        + encodeURIComponent(failed.join(',')));
            assert.strictEqual(r.status, 200, r.body);
            for (const f of failed) {
                assert.ok(!r.json.addrs.includes(f), r.body);
            }
            /* the failed ones span both idcs when the first two are on
             * nodes of both: then nothing is preferred */
            const idcs = new Set(failed.map((x) =>
                x.startsWith('10.1.') ? 'east' : 'west'));
            if (idcs.size === 1) {
                const got = r.json.addrs[0].startsWith('10.1.') ? 'east'
                                                                : 'west';
                assert.notStrictEqual(got, failedIdc, r.body);
                moved++;
            }
        }
        assert.ok(moved > 20, `idc preference seen ${moved} times`);

        /* cell clients: the node serving cell, and those serving every
         * net; a net no node names gets every node */
        const cell = await dispatch(d, 'uid=c1&net=cell');
        assert.strictEqual(cell.status, 200, cell.body);
        assert.strictEqual(cell.json.addrs.length, 3);

        /* TLS: the ssl ports only */
        const t = await dispatch(d, 'uid=t1', { tls: true });
        assert.strictEqual(t.status, 200, t.body);
        assert.strictEqual(t.json.addrs.length, 3, t.body);
        assert.ok(t.json.addrs.every((x) => x.endsWith(':443')), t.body);
    });
});

test('dispatcher: bad queries get 400 with a clear error, other methods '
     + '405, and the daemon serves on', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const bad = [
            ['', /"uid" is missing/],
            ['uid=', /"uid" is missing/],
            ['uid=a%20b', /"uid" must be/],
            ['uid=%zz', /"uid" must be/],
            [`uid=${'x'.repeat(65)}`, /"uid" must be/],
            ['uid=u&net=wi%20fi', /"net" must be/],
            ['uid=u&failed=nohost', /"failed" must be a list of host:port/],
            ['uid=u&failed=1.2.3.4:0', /"failed" must be/],
            ['uid=u&failed=' + Array.from({ length: 17 },
                (_, i) => `h${i}:1`).join(','), /more than 16/],
        ];
        for (const [q, re] of bad) {
            const r = await dispatch(d, q);
            assert.strictEqual(r.status, 400, `${q}: ${r.body}`);
            assert.match(r.json.error, re, q);
        }
        const p = await dispatch(d, 'uid=u', { method: 'POST' });
        assert.strictEqual(p.status, 405, p.body);

        const ok = await dispatch(d, 'uid=u');
        assert.strictEqual(ok.status, 200, ok.body);
        const m = await L.metrics(d);
        const count = (result) => m.samples
            .filter((x) => x.name === 'pushd_dispatch_total'
                           && x.labels.includes(`result="${result}"`))
            .reduce((n, x) => n + x.value, 0);
        assert.strictEqual(count('bad'), bad.length, m.text);
        assert.strictEqual(count('answered'), 1, m.text);
    });
});

test('dispatcher: rate-limited per client address', T, async () => {
    await L.withPushd(conf({ max_requests_per_ip: 5 }, { workers: 1 }),
                      async (d) => {
        for (let i = 0; i < 5; i++) {
            const r = await dispatch(d, `uid=r${i}`);
            assert.strictEqual(r.status, 200, r.body);
        }
        const r = await dispatch(d, 'uid=r9');
        assert.strictEqual(r.status, 429, r.body);
        assert.strictEqual(r.headers['retry-after'], '1');
        assert.match(r.json.error, /too many dispatch requests/);

        /* the limit is the dispatcher's: the room still upgrades */
        const cl = await W.connect(d.roomPort, 'r1', 'phone');
        assert.strictEqual(cl.welcome.op, 'welcome');
        cl.close();
    });
});

test('dispatcher: -t refuses bad nodes and a dispatcher with nowhere to '
     + 'send', T, async () => {
    const prefix = L.makePrefix();
    const file = path.join(prefix, 'conf', 'd.yml');
    const base = 'room:\n  listen: ["8080"]\n  auth_secret: "0123456789abcdef0"\n';
    const cases = [
        [base + 'dispatcher:\n  nodes:\n    - { addr: "10.0.0.1" }\n',
         /:6:15: "nodes" has a bad addr "10\.0\.0\.1": it must be "host:port"$/],
        [base + 'dispatcher:\n  nodes:\n    - { addr: "h:1", weight: 0 }\n',
         /"nodes" has a weight that is not 1 to 1000$/],
        [base + 'dispatcher:\n  nodes:\n    - { addr: "h:1", colour: 1 }\n',
         /"nodes" has an unknown key \(addr, idc, weight, net\)$/],
        [base + 'dispatcher:\n  count: 3\n',
         /"dispatcher" needs "nodes", or register.backend redis/],
        [base + '  advertise: ["h:80"]\n',
         /"dispatcher" section is needed for room.advertise/],
    ];
    try {
        for (const [text, re] of cases) {
            fs.writeFileSync(file, text);
            const r = L.runPushd(['-p', prefix, '-t', '-c', file]);
            assert.strictEqual(r.status, 1, r.out);
            assert.match(r.stderr.split('\n')[0], re, r.stderr);
        }
    } finally {
        fs.rmSync(prefix, { recursive: true, force: true });
    }
});

test('dispatcher in a cluster: every node\'s room.advertise, a killed '
     + 'node gone within node_ttl, a stopped one at once',
     { timeout: 120000,
       skip: !S.haveRedis() && 'redis-server is not installed' },
     async () => {
    const redis = await S.startRedis(await L.freePort());
    const nodes = [];
    const node = (name, i) => ({
        workers: 2,
        top: {
            node_id: name,
            register: { backend: 'redis', redis: [`127.0.0.1:${redis.port}`],
                        memory: '8m', node_ttl: '3s', timeout: '500ms' },
            dispatcher: { idc: i < 2 ? 'east' : 'west', count: 3,
                          max_requests_per_ip: 0 },
        },
        room: { auth_secret: W.SECRET,
                advertise: [`${name}.example.net:80`,
                            `${name}.example.net:8080`] },
    });
    const hosts = async (d, uid = 'zed') => {
        const r = await dispatch(d, `uid=${uid}`);
        return r.status === 200 ? new Set(r.json.addrs.map(owner)) : null;
    };
    try {
        for (const [i, n] of ['na', 'nb', 'nc'].entries()) {
            nodes.push(await L.startPushd(node(n, i)));
        }
        const [a, b, c] = nodes;

        /* every node answers with the three nodes */
        for (const d of nodes) {
            await L.waitFor(async () => {
                const h = await hosts(d);
                return h && h.size === 3;
            }, 10000, 'the three nodes in the answer');
        }

        /* a node's own first address is the same on every node */
        for (let i = 0; i < 20; i++) {
            const ra = await dispatch(a, `uid=s${i}`);
            const rc = await dispatch(c, `uid=s${i}`);
            assert.strictEqual(ra.json.addrs[0], rc.json.addrs[0]);
        }

        /* SIGKILL: its keys expire within node_ttl (3 s) */
        const killedAt = Date.now();
        c.killHard();
        await L.waitFor(async () => {
            const h = await hosts(a);
            return h && !h.has('nc.example.net') && h.size === 2;
        }, 10000, 'the killed node out of the answers');
        const gone = Date.now() - killedAt;
        assert.ok(gone < 3000 + 4000, `gone after ${gone} ms: within `
                  + 'node_ttl and a read (and some slack for a loaded host)');

        /* a stop (QUIT: every worker retires) takes it out at once: on
         * every worker of a, each of which reads the live nodes once a
         * second, so the answers of eight new connections in a row */
        const stopping = b.stop('SIGQUIT');
        await L.waitFor(async () => {
            for (let i = 0; i < 8; i++) {
                const h = await hosts(a);
                if (!h || h.has('nb.example.net')) {
                    return false;
                }
            }
            return true;
        }, 2500, 'the stopped node out before its node_ttl');
        await stopping;

        for (let i = 0; i < 8; i++) {
            const r = await dispatch(a, 'uid=zed');
            assert.deepStrictEqual(r.json.addrs.map(owner),
                                   ['na.example.net', 'na.example.net'],
                                   r.body);
        }
    } finally {
        for (const d of nodes) {
            await d.stop();
        }
        await redis.stop();
    }
});
