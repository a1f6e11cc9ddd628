'use strict';
/*
 * coordinator.test.js: the webhooks against real receivers started
 * here (node:http, and node:https with a self-signed certificate): up
 * frames signed and answered (upack, reply, error on 500 and timeout,
 * nothing sent without a route), state events batched, late but none
 * lost while the receiver is down, and one client's flood limited while
 * another's uplink still works.
 */

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 60000 };
const SECRET = 'coordinator-secret-0123456789';

/*
 * A receiver: every request kept as {path, headers, body, json, signed};
 * answer(req) gives {status, body, delay} (default 200, {}).
 */
async function receiver(opts = {}) {
    const r = { requests: [], answer: opts.answer || (() => ({})) };
    const handler = (req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            const want = 'sha256=' + crypto.createHmac('sha256', SECRET)
                .update(body).digest('hex');
            const got = req.headers['x-pushd-signature'] || '';
            const e = {
                path: req.url, headers: req.headers, body,
                json: JSON.parse(body),
                signed: got.length === want.length
                    && crypto.timingSafeEqual(Buffer.from(got),
                                              Buffer.from(want)),
            };
            r.requests.push(e);
            const a = r.answer(e) || {};
            const send = () => {
                res.writeHead(a.status || 200,
                              { 'Content-Type': 'application/json' });
                res.end(a.body !== undefined ? a.body : '{}');
            };
            if (a.delay) {
                setTimeout(send, a.delay);
            } else {
                send();
            }
        });
    };
    r.server = opts.tls
        ? https.createServer({ cert: fs.readFileSync(opts.tls.cert),
                               key: fs.readFileSync(opts.tls.key) }, handler)
        : http.createServer(handler);
    const port = opts.port || await L.freePort();
    await new Promise((resolve, reject) => {
        r.server.once('error', reject);
        r.server.listen(port, opts.tls ? undefined : '127.0.0.1', resolve);
    });
    r.port = port;
    r.url = (p) => `${opts.tls ? 'https://localhost' : 'http://127.0.0.1'}`
                   + `:${port}${p}`;
    r.close = () => new Promise((resolve) => {
        r.server.closeAllConnections();
        r.server.close(resolve);
    });
    r.on = (p) => r.requests.filter((e) => e.path === p);
    return r;
}

/*
 * lib.js's toYaml writes no list of mappings: each route goes as a flow
 * mapping (JSON is YAML) in a key whose value a comment swallows.
 */
function routes(list) {
    const o = {};
    for (const x of list) {
        o[`- ${JSON.stringify(x)} #`] = 'route';
    }
    return o;
}

function conf(coord, apps) {
    return {
        workers: 1,
        top: {
            register: { memory: '8m' },
            coordinator: Object.assign({ secret: SECRET, timeout: '1s' },
                                       coord, { apps: routes(apps) }),
        },
        room: { auth_secret: W.SECRET },
    };
}

let seq = 0;
const next = () => `c${++seq}`;

async function up(c, app, type, data) {
    const id = next();
    c.send({ op: 'up', id, app, type, data });
    const m = await c.next((x) => x && x.id === id
                           && (x.op === 'upack' || x.op === 'error'),
                           5000, `the answer to up ${id}`);
    return { id, m };
}

test('up: signed POST, upack, reply routed back, no route, 500 and '
     + 'timeout', T, async () => {
    const rx = await receiver({
        answer: (e) => {
            const d = e.json.data || {};
            if (d.status) {
                return { status: d.status };
            }
            if (d.slow) {
                return { delay: 3000 };
            }
            if (d.reply) {
                return { body: JSON.stringify({ reply: { echo: d.text } }) };
            }
            return {};
        },
    });
    try {
        await L.withPushd(conf({}, [
            { app: 'chat', uplink: rx.url('/up'), types: ['text'] },
        ]), async (d) => {
            const c = await W.connect(d.roomPort, 'u1', 'phone1',
                                      { apps: ['chat'] });

            let r = await up(c, 'chat', 'text', { text: 'hi' });
            assert.strictEqual(r.m.op, 'upack', JSON.stringify(r.m));
            const e = rx.on('/up').at(-1);
            assert.ok(e.signed, 'the receiver verified the signature');
            assert.strictEqual(e.headers['content-type'],
                               'application/json');
            assert.deepStrictEqual(
                { id: e.json.id, uid: e.json.uid, device: e.json.device,
                  app: e.json.app, type: e.json.type, data: e.json.data },
                { id: r.id, uid: 'u1', device: 'phone1', app: 'chat',
                  type: 'text', data: { text: 'hi' } });
            assert.ok(typeof e.json.node === 'string'
                      && Number.isInteger(e.json.ts), e.body);

            /* the answer's reply member comes back to this client */
            r = await up(c, 'chat', 'text', { text: 'yo', reply: true });
            assert.strictEqual(r.m.op, 'upack');
            const reply = await c.next((x) => x && x.op === 'reply'
                                       && x.id === r.id, 5000, 'the reply');
            assert.deepStrictEqual(reply.data, { echo: 'yo' });

            /* no route: an error at once, nothing sent */
            const before = rx.requests.length;
            r = await up(c, 'chat', 'other', { text: 'x' });
            assert.strictEqual(r.m.op, 'error');
            r = await up(c, 'news', 'text', { text: 'x' });
            assert.strictEqual(r.m.op, 'error');
            assert.strictEqual(rx.requests.length, before);

            r = await up(c, 'chat', 'text', { status: 500 });
            assert.strictEqual(r.m.op, 'error');
            assert.match(r.m.error, /500/);

            r = await up(c, 'chat', 'text', { slow: true });
            assert.strictEqual(r.m.op, 'error');
            assert.match(r.m.error, /timed out/);

            const m = await L.metrics(d);
            assert.ok(m.get('pushd_coordinator_requests_total') >= 4);
            assert.ok(m.get('pushd_coordinator_errors_total') >= 4);

            /* the same per receiver, with its latency histogram: 4
             * requests, one 500, one timeout (1 s: past the 500 ms
             * bucket, in the 2500 ms one) */
            const lb = `url="${rx.url('/up')}",kind="uplink"`;
            const one = (name, extra = '') => {
                const s = m.samples.filter((x) => x.name === name
                    && x.labels === `{${lb}${extra}}`);
                assert.strictEqual(s.length, 1, `${name}{${lb}${extra}}`
                                   + `\n${m.text}`);
                return s[0].value;
            };
            const sent = rx.on('/up').length;
            assert.strictEqual(
                one('pushd_coordinator_upstream_requests_total'), sent);
            assert.strictEqual(one('pushd_coordinator_upstream_errors_total',
                                   ',reason="status"'), 1);
            assert.strictEqual(one('pushd_coordinator_upstream_errors_total',
                                   ',reason="timeout"'), 1);
            assert.strictEqual(
                one('pushd_coordinator_upstream_latency_ms_count'), sent);
            assert.strictEqual(
                one('pushd_coordinator_upstream_latency_ms_bucket',
                    ',le="+Inf"'), sent);
            assert.strictEqual(
                one('pushd_coordinator_upstream_latency_ms_bucket',
                    ',le="500"'), sent - 1);
            assert.strictEqual(
                one('pushd_coordinator_upstream_latency_ms_bucket',
                    ',le="2500"'), sent);
            assert.ok(one('pushd_coordinator_upstream_latency_ms_sum')
                      >= 1000);
            assert.strictEqual(one('pushd_coordinator_upstream_pending'), 0);
            c.close();
        });
    } finally {
        await rx.close();
    }
});

test('up over https, verified against coordinator.ca', T, async () => {
    const pair = L.certPair();
    const rx = await receiver({ tls: pair });
    try {
        await L.withPushd(conf({ ca: pair.cert }, [
            { app: 'chat', uplink: rx.url('/up') },
        ]), async (d) => {
            const c = await W.connect(d.roomPort, 'u2', 'dev',
                                      { apps: ['chat'] });
            const r = await up(c, 'chat', 'any', [1, 2]);
            assert.strictEqual(r.m.op, 'upack', JSON.stringify(r.m));
            assert.ok(rx.on('/up').at(-1).signed);
            c.close();
        });
    } finally {
        await rx.close();
    }

    /* the same receiver without the CA: refused, not sent in clear */
    const rx2 = await receiver({ tls: pair });
    try {
        await L.withPushd(conf({}, [
            { app: 'chat', uplink: rx2.url('/up') },
        ]), async (d) => {
            const c = await W.connect(d.roomPort, 'u2', 'dev',
                                      { apps: ['chat'] });
            const r = await up(c, 'chat', 'any', 1);
            assert.strictEqual(r.m.op, 'error');
            assert.strictEqual(rx2.requests.length, 0);
            c.close();
        });
    } finally {
        await rx2.close();
    }
});

test('state: online and offline, batched, late but none lost while the '
     + 'receiver is down; uplink errors at once', T, async () => {
    const port = await L.freePort();
    const url = (p) => `http://127.0.0.1:${port}${p}`;
    await L.withPushd(conf({ state_flush: '50ms', state_retry: '100ms',
                             state_retry_max: '400ms' }, [
        { app: 'chat', uplink: url('/up'), state: url('/state') },
    ]), async (d) => {
        /* nobody listens yet */
        const clients = [];
        for (let i = 0; i < 5; i++) {
            clients.push(await W.connect(d.roomPort, `s${i}`, `d${i}`,
                                         { apps: ['chat'] }));
        }
        const t0 = Date.now();
        const r = await up(clients[0], 'chat', 'text', 1);
        assert.strictEqual(r.m.op, 'error');
        assert.ok(Date.now() - t0 < 900, 'the error came before the timeout');

        for (const c of clients.slice(0, 3)) {
            c.close();
            await c.closed;
        }
        await L.waitFor(async () => (await L.metrics(d))
                        .get('pushd_coordinator_retries_total') >= 2,
                        10000, 'state retries while the receiver is down');

        const rx = await receiver({ port });
        try {
            /* 5 online, 3 offline: all of them, each once */
            await L.waitFor(() => rx.on('/state')
                            .flatMap((e) => e.json.events).length >= 8,
                            10000, 'the queued state events');
            const reqs = rx.on('/state');
            assert.ok(reqs.every((e) => e.signed));
            const events = reqs.flatMap((e) => e.json.events);
            assert.strictEqual(events.length, 8, JSON.stringify(events));
            assert.ok(reqs.length < events.length, 'events were batched');
            for (let i = 0; i < 5; i++) {
                const mine = events.filter((e) => e.uid === `s${i}`);
                const want = i < 3 ? ['online', 'offline'] : ['online'];
                assert.deepStrictEqual(mine.map((e) => e.state), want);
                for (const e of mine) {
                    assert.strictEqual(e.device, `d${i}`);
                    assert.strictEqual(e.app, 'chat');
                    assert.strictEqual(e.sid, clients[i].welcome.sid);
                    assert.ok(Number.isInteger(e.seq) && e.node
                              && Number.isInteger(e.ts), JSON.stringify(e));
                }
                if (mine.length === 2) {
                    assert.ok(mine[0].seq < mine[1].seq);
                }
            }
            /* the uplink works again too */
            const r2 = await up(clients[3], 'chat', 'text', 2);
            assert.strictEqual(r2.m.op, 'upack');

            /* bind and unbind are events too */
            clients[3].send({ op: 'unbind', app: 'chat' });
            await L.waitFor(() => rx.on('/state').flatMap((e) => e.json.events)
                            .some((e) => e.uid === 's3'
                                  && e.state === 'offline'),
                            5000, 'the unbind\'s offline event');
            const m = await L.metrics(d);
            assert.strictEqual(m.get('pushd_coordinator_dropped_events_total'),
                               0);
        } finally {
            for (const c of clients) {
                c.close();
            }
            await rx.close();
        }
    });
});

test('state: beyond state_queue events are dropped and counted', T,
     async () => {
    const port = await L.freePort();
    await L.withPushd(conf({ state_queue: 3, state_retry: '1s' }, [
        { app: 'chat', state: `http://127.0.0.1:${port}/state` },
    ]), async (d) => {
        for (let i = 0; i < 5; i++) {
            const c = await W.connect(d.roomPort, `q${i}`, 'dev',
                                      { apps: ['chat'] });
            c.close();
            await c.closed;
        }
        await L.waitFor(async () => (await L.metrics(d))
                        .get('pushd_coordinator_dropped_events_total') === 7,
                        5000, '7 of 10 events dropped');
        assert.match(d.logText(), /state queue of .* full/);
    });
});

test('a flood of up frames from one client is limited; another client '
     + 'still gets through', T, async () => {
    const rx = await receiver();
    try {
        await L.withPushd(conf({ up_rate: 5 }, [
            { app: 'chat', uplink: rx.url('/up') },
        ]), async (d) => {
            const a = await W.connect(d.roomPort, 'flood', 'dev',
                                      { apps: ['chat'] });
            const b = await W.connect(d.roomPort, 'calm', 'dev',
                                      { apps: ['chat'] });
            const ids = [];
            for (let i = 0; i < 50; i++) {
                const id = next();
                ids.push(id);
                a.send({ op: 'up', id, app: 'chat', type: 't', data: i });
            }
            const answers = [];
            for (let i = 0; i < ids.length; i++) {
                answers.push(await a.next((x) => x && x.id
                                          && ids.includes(x.id)
                                          && x.op !== 'reply',
                                          5000, 'an answer'));
            }
            const limited = answers.filter((x) => x.op === 'error'
                                           && /rate/.test(x.error));
            assert.ok(limited.length >= 40, JSON.stringify(answers));
            assert.ok(rx.on('/up').filter((e) => e.json.uid === 'flood')
                      .length <= 10);
            const r = await up(b, 'chat', 't', 'hello');
            assert.strictEqual(r.m.op, 'upack', JSON.stringify(r.m));
            assert.ok(a.open, 'the flooder is limited, not closed');
            a.close();
            b.close();
        });
    } finally {
        await rx.close();
    }
});

/*
 * A cluster of three nodes on one Redis: each node reports the events of
 * its own connections only, so every event reaches the receiver once
 * (counted against the nodes' own delivered-events counters, not after
 * a quiet period), and a uid's seq grows across the nodes it moves over.
 */
test('cluster: three nodes send each state event once; seq grows per uid '
     + 'across nodes', { timeout: 120000 }, async () => {
    const S = require('./servers.js');
    const redisPort = await L.freePort();
    const redis = await S.startRedis(redisPort);
    const rx = await receiver();
    const nodeConf = (name) => {
        const c = conf({ state_flush: '20ms' },
                       [{ app: 'chat', state: rx.url('/state') }]);
        c.workers = 2;
        c.top.node_id = name;
        c.top.register = { backend: 'redis',
                           redis: [`127.0.0.1:${redisPort}`],
                           memory: '8m', node_ttl: '3s', timeout: '500ms' };
        return c;
    };
    const events = () => rx.on('/state').flatMap((e) => e.json.events);
    const arrived = (pred, what) => L.waitFor(() => events().some(pred),
                                              10000, what);
    try {
        await L.withPushd(nodeConf('node-a'), (a) =>
        L.withPushd(nodeConf('node-b'), (b) =>
        L.withPushd(nodeConf('node-c'), async (c) => {
            const nodes = [a, b, c];
            /* one uid roaming a -> b -> c -> a, each step seen by the
             * receiver before the next, so the real order is known */
            const order = [];
            for (const [i, d] of [a, b, c, a].entries()) {
                const cl = await W.connect(d.roomPort, 'roam', `dev${i}`,
                                           { apps: ['chat'] });
                const sid = cl.welcome.sid;
                await arrived((e) => e.sid === sid && e.state === 'online',
                              `roam's online on step ${i}`);
                order.push([sid, 'online']);
                cl.close();
                await cl.closed;
                await arrived((e) => e.sid === sid && e.state === 'offline',
                              `roam's offline on step ${i}`);
                order.push([sid, 'offline']);
            }
            /* two devices at once on two nodes */
            const x = await W.connect(b.roomPort, 'roam', 'tablet',
                                      { apps: ['chat'] });
            await arrived((e) => e.sid === x.welcome.sid, 'tablet online');
            order.push([x.welcome.sid, 'online']);
            const y = await W.connect(c.roomPort, 'roam', 'phone',
                                      { apps: ['chat'] });
            await arrived((e) => e.sid === y.welcome.sid, 'phone online');
            order.push([y.welcome.sid, 'online']);
            x.close();
            await arrived((e) => e.sid === x.welcome.sid
                          && e.state === 'offline', 'tablet offline');
            order.push([x.welcome.sid, 'offline']);

            /* and 30 others spread over the nodes at once */
            const many = [];
            for (let i = 0; i < 30; i++) {
                many.push(await W.connect(nodes[i % 3].roomPort, `m${i}`,
                                          'dev', { apps: ['chat'] }));
            }
            for (const m of many) {
                m.close();
            }
            const want = order.length + 1 /* phone's offline */ + 60;
            y.close();
            await y.closed;

            /* the nodes' counters of delivered events add up to what the
             * receiver holds: a node sending another's event twice would
             * make them more than the events */
            const delivered = async () => {
                let n = 0;
                for (const d of nodes) {
                    n += (await L.metrics(d))
                        .get('pushd_coordinator_events_total');
                }
                return n;
            };
            await L.waitFor(async () => events().length >= want
                            && await delivered() === events().length,
                            15000, `${want} events delivered`);
            const all = events();
            assert.strictEqual(all.length, want);
            const keys = all.map((e) => `${e.sid}/${e.state}`);
            assert.strictEqual(new Set(keys).size, keys.length,
                               'no event twice');
            for (let i = 0; i < 30; i++) {
                const mine = all.filter((e) => e.uid === `m${i}`);
                assert.deepStrictEqual(mine.map((e) => e.state).sort(),
                                       ['offline', 'online']);
                assert.strictEqual(mine[0].node, `node-${'abc'[i % 3]}`);
            }

            /* roam's seq follows the real order, over all three nodes */
            const roam = order.map(([sid, st]) => all.find(
                (e) => e.sid === sid && e.state === st));
            assert.deepStrictEqual(new Set(roam.map((e) => e.node)),
                                   new Set(['node-a', 'node-b', 'node-c']));
            for (let i = 1; i < roam.length; i++) {
                assert.ok(roam[i].seq > roam[i - 1].seq,
                          `seq grows: ${JSON.stringify(roam.slice(i - 1,
                                                                  i + 1))}`);
                assert.ok(Number.isSafeInteger(roam[i].seq));
            }
            /* the counter is the uid's, in Redis */
            const stored = Number(S.redisCli(redisPort, ['GET', 'pd:s:roam']));
            assert.ok(stored >= roam[roam.length - 1].seq, String(stored));
        })));
    } finally {
        await rx.close();
        await redis.stop();
    }
});

test('state_debounce: a flapping client\'s offlines are held and dropped; '
     + 'a real offline still arrives', T, async () => {
    const rx = await receiver();
    try {
        const c0 = conf({ state_flush: '10ms', state_debounce: '400ms' },
                        [{ app: 'chat', state: rx.url('/state') }]);
        c0.workers = 2;
        await L.withPushd(c0, async (d) => {
            const events = () => rx.on('/state').flatMap((e) => e.json.events);
            /* 10 reconnects of one device, each within the debounce */
            const sids = [];
            let cl;
            for (let i = 0; i < 10; i++) {
                cl = await W.connect(d.roomPort, 'flap', 'phone',
                                     { apps: ['chat'] });
                sids.push(cl.welcome.sid);
                if (i < 9) {
                    cl.close();
                    await cl.closed;
                }
            }
            /* another device of the same uid goes away for good */
            const tab = await W.connect(d.roomPort, 'flap', 'tablet',
                                        { apps: ['chat'] });
            tab.close();
            await tab.closed;
            await L.waitFor(() => events().some((e) => e.device === 'tablet'
                                                && e.state === 'offline'),
                            5000, 'the tablet\'s offline, after the hold');
            await L.waitFor(async () => (await L.metrics(d))
                            .get('pushd_coordinator_debounced_events_total')
                            === 9, 5000, '9 offlines debounced');
            const phone = events().filter((e) => e.device === 'phone');
            assert.deepStrictEqual(phone.map((e) => e.state),
                                   Array(10).fill('online'));
            assert.deepStrictEqual(phone.map((e) => e.sid).sort(),
                                   [...sids].sort());

            /* the last one leaves: its offline comes, once held */
            const t0 = Date.now();
            cl.close();
            await cl.closed;
            await L.waitFor(() => events().some((e) => e.device === 'phone'
                                                && e.state === 'offline'),
                            5000, 'the phone\'s real offline');
            assert.ok(Date.now() - t0 >= 350, 'held for state_debounce');
            const off = events().filter((e) => e.state === 'offline'
                                        && e.device === 'phone');
            assert.strictEqual(off.length, 1);
            assert.strictEqual(off[0].sid, sids[9]);
            const m = await L.metrics(d);
            assert.strictEqual(
                m.get('pushd_coordinator_debounced_events_total'), 9);
        });
    } finally {
        await rx.close();
    }
});

test('a retiring worker sends its queued and held state events before it '
     + 'exits: a HUP hand-over gives no offline, QUIT the client\'s own',
     T, async () => {
    const rx = await receiver();
    try {
        /* nothing would leave before a minute without the retirement */
        await L.withPushd(conf({ state_flush: '60s', state_debounce: '60s',
                                 state_batch: 1000 }, [
            { app: 'chat', uplink: rx.url('/up'), state: rx.url('/state') },
        ]), async (d) => {
            const a = await W.connect(d.roomPort, 'r1', 'pa',
                                      { apps: ['chat'] });
            const b = await W.connect(d.roomPort, 'r2', 'pb',
                                      { apps: ['chat'] });
            b.close();
            await b.closed;
            /* two online queued, r2's offline held by the debounce */
            await L.waitFor(async () => (await L.metrics(d))
                            .get('pushd_coordinator_queued_events') === 2,
                            5000, 'two events queued');
            assert.strictEqual(rx.on('/state').length, 0,
                               'nothing sent yet');

            const old = d.workerPids();
            process.kill(d.masterPid, 'SIGHUP');
            await L.waitFor(() => old.every((p) => !L.procAlive(p)),
                            15000, 'the old worker to exit');
            const events = () => rx.on('/state')
                .flatMap((e) => e.json.events)
                .map((e) => `${e.uid} ${e.state}`);
            await L.waitFor(() => events().length >= 3, 5000,
                            'the old worker\'s events');
            assert.deepStrictEqual(events().sort(),
                                   ['r1 online', 'r2 offline', 'r2 online']);
            assert.ok(rx.on('/state').every((e) => e.signed));

            /* r1 lives on in the new worker: no offline, no new online */
            const ping = { op: 'ping' };
            a.send(ping);
            await a.next((x) => x && x.op === 'pong', 5000, 'a pong');

            /* QUIT: r1 is told to reconnect and goes, as a client does;
             * its offline leaves before the worker does */
            const stopped = d.stop('SIGQUIT', 20000);
            await a.next((x) => x && x.op === 'reconnect', 10000,
                         'the reconnect order');
            a.close();
            await stopped;
            assert.deepStrictEqual(events().sort(),
                                   ['r1 offline', 'r1 online', 'r2 offline',
                                    'r2 online']);
        });
    } finally {
        await rx.close();
    }
});
