'use strict';
/*
 * sdk.test.js: sdk/js/pushd.js against a live pushd: a worker SIGKILLed
 * under qos 1 pushes (nothing lost, nothing handed twice, checked per
 * message id), a HUP reload, a kick, an expired token replaced through
 * getToken, a dead link the heartbeat finds (a SIGSTOPped worker), and a
 * reconnect that names its sid.
 *
 * The SDK gets the WebSocket class of ws_client.js: Node's built-in one
 * where it has it (20 with --experimental-websocket, 22), else the raw
 * one over node:net, so the same tests run on Debian 12's Node 18.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 120000 };
const SDK = path.resolve(__dirname, '..', '..', 'sdk', 'js', 'pushd.js');
let PushdClient;

test.before(async () => {
    ({ PushdClient } = await import(SDK));
});

/* register and saver on (qos 1 needs them), the given workers and room */
function conf(workers, room = {}) {
    return {
        workers,
        top: { register: { memory: '8m' }, saver: { memory: '16m' } },
        room,
    };
}

const clients = new Set();

test.afterEach(() => {
    for (const c of clients) {
        c.close();
    }
    clients.clear();
});

/*
 * An SDK client of d for uid, recording what the application is handed:
 * got (ids in order), seen (id -> times handed), states.
 */
function sdkClient(d, uid, opts = {}) {
    const expires = W.future();
    const c = new PushdClient(Object.assign({
        url: `ws://127.0.0.1:${d.roomPort}`,
        uid, device: 'd1', apps: ['a'],
        token: W.makeToken(L.AUTH_SECRET, uid, 'd1', expires), expires,
        WebSocket: W.WebSocketClass,
        backoffBase: 50, backoffMax: 400, connectTimeout: 2000,
    }, opts));
    c.got = [];
    c.times = new Map();
    c.states = [];
    c.errors = [];
    c.on('message', (m) => {
        c.got.push(m.id);
        c.times.set(m.id, (c.times.get(m.id) || 0) + 1);
    });
    c.on('state', (s) => c.states.push(s));
    c.on('error', (e) => c.errors.push(e.message));
    clients.add(c);
    return c;
}

async function connected(c, what = 'the client to connect', ms = 10000) {
    await L.waitFor(() => c.state === 'connected', ms,
                    `${what} (${c.uid}: ${c.state})`);
}

async function push(d, uids, data, qos = 1) {
    const r = await L.centerPost(d, '/v1/push', { app: 'a', uids, data, qos });
    assert.equal(r.status, 200, `push: ${r.status} ${r.body}`);
    return r.json.id;
}

/* slot -> pid of the live workers, and the slot holding uid */
async function workerOf(d, uid) {
    const u = await L.centerGet(d, `/v1/users/${uid}`);
    if (!u.json.online || !u.json.connections.length) {
        return null;
    }
    const w = await L.centerGet(d, '/v1/workers');
    const slot = u.json.connections[0].worker;
    const row = w.json.workers.find((x) => x.slot === slot);
    return row ? row.pid : null;
}

/* every client got every id once: the per-id check of the issue */
function checkAll(cs, ids) {
    for (const c of cs) {
        const missing = ids.filter((id) => !c.times.has(id));
        const twice = [...c.times].filter(([, n]) => n > 1);
        assert.deepEqual(missing, [], `${c.uid}: nothing lost`);
        assert.deepEqual(twice, [], `${c.uid}: nothing handed twice`);
        assert.equal(c.got.length, ids.length, `${c.uid}: no stray message`);
    }
}

test('a worker SIGKILLed twice under qos 1 pushes: every client '
     + 'reconnects, nothing lost, nothing twice', T, async () => {
    await L.withPushd(conf(2), async (d) => {
        const cs = [];
        for (let i = 0; i < 12; i++) {
            cs.push(sdkClient(d, `k${i}`).connect());
        }
        for (const c of cs) {
            await connected(c);
        }
        const uids = cs.map((c) => c.uid);
        const ids = [];
        const killed = [];
        for (let n = 0; n < 60; n++) {
            ids.push(await push(d, uids, { n }));
            if (n === 20 || n === 40) {
                /* the worker holding the first client: most hold some */
                const pid = await workerOf(d, uids[n === 20 ? 0 : 1])
                    || d.workerPids()[0];
                d.kill(pid, 'SIGKILL');
                killed.push(pid);
                await L.waitFor(() => !L.procAlive(pid), 5000,
                                `worker ${pid} to die`);
            }
        }
        await L.waitFor(() => cs.every((c) => c.got.length >= ids.length),
                        30000, 'every message at every client');
        /* each id acked by the client once its handler returned */
        await L.waitFor(() => cs.every((c) => c.counters.acked
                                       >= ids.length), 10000,
                        'every message acked');
        checkAll(cs, ids);
        const reconnects = cs.reduce((n, c) => n + c.counters.disconnects, 0);
        assert.ok(reconnects >= 2, `clients lost their worker (${reconnects})`);
        for (const c of cs) {
            assert.equal(c.state, 'connected');
        }
        assert.equal(d.workers().length, 2, 'the master respawned them');
        assert.ok(killed.every((p) => !d.workerPids().includes(p)));
    });
});

test('a HUP reload: clients stay or come back, nothing lost or twice', T,
     async () => {
    await L.withPushd(conf(2, { reconnect_window: '500ms' }),
                      async (d) => {
        const cs = [];
        for (let i = 0; i < 6; i++) {
            cs.push(sdkClient(d, `h${i}`).connect());
        }
        for (const c of cs) {
            await connected(c);
        }
        const uids = cs.map((c) => c.uid);
        const ids = [];
        const before = d.workerPids();
        for (let n = 0; n < 30; n++) {
            ids.push(await push(d, uids, { n }));
            if (n === 10) {
                L.kill(d.masterPid, 'SIGHUP');
            }
        }
        await L.waitFor(() => before.every((p) => !L.procAlive(p)), 15000,
                        'the old workers to leave');
        ids.push(await push(d, uids, { n: 'after' }));
        await L.waitFor(() => cs.every((c) => c.got.length >= ids.length),
                        20000, 'every message at every client');
        checkAll(cs, ids);
        for (const c of cs) {
            assert.equal(c.state, 'connected');
            assert.equal(c.counters.failures, 0,
                         `${c.uid}: no refused attempt`);
        }
    });
});

test('a kick: state kicked, the client stays away until connect()', T,
     async () => {
    await L.withPushd(conf(1), async (d) => {
        const c = sdkClient(d, 'kicked1').connect();
        await connected(c);
        let reason = null;
        c.on('kick', (r) => { reason = r; });
        const r = await L.centerPost(d, '/v1/users/kicked1/kick',
                                     { reason: 'go away' });
        assert.equal(r.status, 200);
        await L.waitFor(() => c.state === 'kicked', 5000, 'kicked');
        assert.equal(reason, 'go away');
        const attempts = c.counters.connects;
        /* eight times the backoff's cap: a reconnect would have come */
        await L.delay(8 * 400);
        assert.equal(c.counters.connects, attempts, 'no attempt after a kick');
        const u = await L.centerGet(d, '/v1/users/kicked1');
        assert.equal(u.json.online, false);
        c.connect();
        await connected(c, 'connect() after the kick');
        assert.deepEqual(c.states, ['connecting', 'connected', 'kicked',
                                    'connecting', 'connected']);
    });
});

test('an expired token: the server refuses it, getToken gives a new one',
     T, async () => {
    await L.withPushd(conf(1), async (d) => {
        const given = [];
        const getToken = async ({ uid, device }) => {
            const expires = W.future();
            given.push(expires);
            return { token: W.makeToken(L.AUTH_SECRET, uid, device, expires),
                     expires };
        };
        /* a token that expired a minute ago, and a client that does not
         * trust its own clock (tokenMargin: it would ask before trying) */
        const old = Math.floor(Date.now() / 1000) - 60;
        const c = sdkClient(d, 'tok1', {
            token: W.makeToken(L.AUTH_SECRET, 'tok1', 'd1', old),
            expires: old, tokenMargin: -86400, getToken,
        }).connect();
        await connected(c, 'a connection with the new token');
        assert.equal(given.length, 1, 'getToken asked once');
        assert.ok(c.counters.failures >= 1, 'the old token was refused');
        const m = await L.metrics(d);
        assert.ok(m.get('pushd_auth_failures_total') >= 1,
                  'pushd counted the refusal');

        /* a token that expires while connected: the next connect asks
         * before it tries (local clock, the default margin) */
        const soon = Math.floor(Date.now() / 1000) + 2;
        const c2 = sdkClient(d, 'tok2', {
            token: W.makeToken(L.AUTH_SECRET, 'tok2', 'd1', soon),
            expires: soon, tokenMargin: 0, getToken,
        }).connect();
        await connected(c2);
        await L.waitFor(() => Date.now() / 1000 > soon + 0.5, 5000,
                        'the token to expire');
        c2.tokenMargin = 30;
        const pid = await workerOf(d, 'tok2');
        d.kill(pid, 'SIGKILL');
        await L.waitFor(() => c2.counters.disconnects === 1, 5000,
                        'the connection to drop');
        await connected(c2, 'back with a fresh token', 15000);
        assert.equal(given.length, 2);
        assert.equal(c2.counters.failures, c2.counters.connects - 2,
                     'no attempt with the stale token was refused');
        assert.equal(c2.counters.tokenRefreshes, 1);
    });
});

test('a dead link (SIGSTOPped worker): the heartbeat finds it, the client '
     + 'moves to a live worker, a push arrives', T, async () => {
    await L.withPushd(conf(2, { heartbeat: '1s', heartbeat_min: '1s' }),
                      async (d) => {
        const c = sdkClient(d, 'dead1', { connectTimeout: 1500 }).connect();
        await connected(c);
        assert.equal(c.hb, 1, 'hb from the welcome');
        const pid = await workerOf(d, 'dead1');
        assert.ok(pid, 'the worker holding the client');
        L.kill(pid, 'SIGSTOP');
        try {
            await L.waitFor(() => c.counters.deadLinks >= 1, 10000,
                            'the heartbeat to give up on the link');
            /* a welcome can only come from the live worker */
            await L.waitFor(() => c.state === 'connected'
                            && c.counters.connected >= 2, 20000,
                            'a connection on the live worker');
            /* the center's port is shared by both workers too: a request
             * the stopped one accepted gets no answer, so try again
             * (each accepted push is stored; any of them will do) */
            const ids = [];
            await L.waitFor(async () => {
                const r = await L.centerPost(d, '/v1/push', { app: 'a',
                    uids: ['dead1'], data: { after: 'stop' } },
                    { timeout: 1000 });
                if (r.status === 200) {
                    ids.push(r.json.id);
                }
                return r.status === 200;
            }, 20000, 'a push through the live worker');
            await L.waitFor(() => ids.some((id) => c.times.has(id)), 5000,
                            'the push');
        } finally {
            L.kill(pid, 'SIGCONT');
        }
    });
});

test('a flash reconnect names the last sid and resumes: nothing lost or '
     + 'twice', T, async (t) => {
    await L.withPushd(conf(1), async (d) => {
        const urls = [];
        /* the raw class, whose socket can be cut without a close frame,
         * as a network loss does (a close frame ends the session) */
        class Spy extends W.RawWebSocket {
            constructor(url) {
                super(url);
                urls.push(url);
            }
        }
        const c = sdkClient(d, 'res1', { WebSocket: Spy }).connect();
        await connected(c);
        const sid = c.sid;
        assert.ok(sid, 'a sid from the welcome');
        const before = await push(d, ['res1'], { before: true });
        await L.waitFor(() => c.times.has(before), 5000, 'the first push');
        const welcomes = [];
        c.on('welcome', (w) => welcomes.push(w));
        c.ws.raw.sock.destroy();
        await L.waitFor(() => c.counters.disconnects === 1, 5000, 'the drop');
        const id = await push(d, ['res1'], { away: true });
        await L.waitFor(() => welcomes.length === 1, 10000, 'a new welcome');
        assert.equal(new URL(urls[1]).searchParams.get('sid'), sid,
                     'the reconnect named the sid of the last welcome');
        await L.waitFor(() => c.times.has(id), 5000, 'the push sent away');
        assert.equal(c.times.get(id), 1);
        assert.equal(c.times.get(before), 1);
        if (welcomes[0].resumed === null) {
            t.diagnostic('this pushd sends no "resumed" in welcome yet');
        } else {
            assert.equal(welcomes[0].resumed, true, 'resumed within linger');
            assert.equal(c.counters.resumed, 1);
            assert.equal(c.sid, sid, 'the same session');
        }
        /* close() ends the session: the next connect names no sid */
        c.close();
        c.connect();
        await connected(c);
        assert.equal(new URL(urls[2]).searchParams.get('sid'), null);
    });
});

/*
 * A fake dispatcher, which answers GET /v1/dispatch as DESIGN.md 4b
 * says but as the test wants: first with a dead address only, then,
 * when the client reports it failed, with the live one (the daemon's own
 * dispatcher is in the next test).
 */
test('dispatcher addresses (a fake dispatcher): a dead address is '
     + 'skipped, failed= is reported, the list is cached per network', T,
     async () => {
    const http = require('node:http');
    await L.withPushd(conf(1), async (d) => {
        const dead = await L.freePort();     /* nothing listens there */
        const asked = [];
        const srv = http.createServer((req, res) => {
            const u = new URL(req.url, 'http://x');
            asked.push(Object.fromEntries(u.searchParams));
            const failed = (u.searchParams.get('failed') || '').split(',');
            const addrs = u.pathname !== '/v1/dispatch' ? []
                : u.searchParams.get('net') === 'cell'
                    ? [`127.0.0.1:${d.roomPort}`]
                    : failed.includes(`127.0.0.1:${dead}`)
                        ? [`127.0.0.1:${d.roomPort}`]
                        : [`127.0.0.1:${dead}`];
            res.writeHead(200, { 'Content-Type': 'application/json' });
            res.end(JSON.stringify({ uid: u.searchParams.get('uid'), addrs,
                ttl: 60, reconnect: { base_ms: 20, max_ms: 200 } }));
        });
        await new Promise((r) => srv.listen(0, '127.0.0.1', r));
        try {
            const c = sdkClient(d, 'disp1', {
                url: undefined,
                dispatchUrl: `http://127.0.0.1:${srv.address().port}`,
            }).connect();
            await connected(c, 'a connection through the dispatcher');
            assert.equal(asked.length, 2, 'asked again after the failure');
            assert.equal(asked[0].uid, 'disp1');
            assert.equal(asked[0].failed, undefined);
            assert.equal(asked[1].failed, `127.0.0.1:${dead}`);
            assert.equal(c.address, `127.0.0.1:${d.roomPort}`);
            assert.equal(c.backoff.max, 200, 'the policy of the answer');
            /* a drop: the cached list serves the reconnect */
            c.ws.close();
            await L.waitFor(() => c.counters.connected === 2, 10000,
                            'the reconnect');
            assert.equal(asked.length, 2, 'from the cache');
            /* another network has its own list */
            c.setNet('cell');
            c.ws.close();
            await L.waitFor(() => c.counters.connected === 3, 10000,
                            'the reconnect on cell');
            assert.equal(asked.length, 3);
            assert.equal(asked[2].net, 'cell');
            const id = await push(d, ['disp1'], { via: 'dispatcher' });
            await L.waitFor(() => c.times.has(id), 5000, 'the push');
        } finally {
            srv.close();
        }
    });
});

/*
 * The real dispatcher of the daemon: two listed nodes, one dead; the
 * client asks /v1/dispatch on the room port, skips a dead address
 * (reporting it with failed= if it needs to ask again), connects to the
 * live one and gets its pushes.
 */
test('dispatcher addresses (the daemon\'s own /v1/dispatch): the client '
     + 'gets to the live node', T, async () => {
    const fs = require('node:fs');
    const dead = await L.freePort();
    const c0 = conf(1);
    c0.top.dispatcher = { nodes: 'NODES_HERE', max_requests_per_ip: 0,
                          reconnect_base: '100ms', reconnect_max: '1s' };
    c0.prepare = (d) => {
        fs.writeFileSync(d.confPath, d.buildConfig().replace('NODES_HERE',
            JSON.stringify([
                { addr: [`127.0.0.1:${dead}`], weight: 10 },
                { addr: [`127.0.0.1:${d.roomPort}`], weight: 1 },
            ])));
    };
    await L.withPushd(c0, async (d) => {
        const c = sdkClient(d, 'disp2', {
            url: undefined,
            dispatchUrl: `http://127.0.0.1:${d.roomPort}`,
        }).connect();
        await connected(c, 'a connection through the real dispatcher');
        assert.equal(c.address, `127.0.0.1:${d.roomPort}`);
        const m = await L.metrics(d);
        assert.ok(m.samples.some((s) => s.name.startsWith('pushd_dispatch')
                                 && s.value > 0), 'the dispatcher answered');
        const id = await push(d, ['disp2'], { via: 'the real dispatcher' });
        await L.waitFor(() => c.times.has(id), 5000, 'the push');
    });
});
