'use strict';
/*
 * delivery.test.js: messages through the center API to the clients:
 * unicast across workers with the data passed byte for byte, qos 1
 * stored for offline uids and delivered in order on connect or bind,
 * acks, redelivery, the no-ack guard, ttl expiry, qos 0, multicast,
 * the metrics that count all that, the API's refusals (400, 401, 413),
 * the rate limit (429) and a full store (503).
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 60000 };
const OP = W.OP;

/* two workers, register and saver on, the room's secret */
function conf(o = {}) {
    return {
        workers: 2,
        top: {
            register: { memory: '8m' },
            saver: Object.assign({ memory: '16m' }, o.saver || {}),
        },
        room: Object.assign({ auth_secret: W.SECRET }, o.room || {}),
        center: o.center || {},
    };
}

/* ------------------------------------------------------------------ */
/* helpers */

function push(d, body, opts) {
    return L.centerPost(d, '/v1/push', body, opts);
}

/*
 * A push body as text, so that data goes out exactly as written:
 * {app, uids, data (raw JSON text), qos, ttl}; undefined ones left out.
 */
function rawBody(o) {
    const parts = [];
    if (o.app !== undefined) {
        parts.push(`"app":${JSON.stringify(o.app)}`);
    }
    if (o.uids !== undefined) {
        parts.push(`"uids":${JSON.stringify(o.uids)}`);
    }
    if (o.data !== undefined) {
        parts.push(`"data":${o.data}`);
    }
    for (const k of ['qos', 'ttl', 'rate']) {
        if (o[k] !== undefined) {
            parts.push(`"${k}":${JSON.stringify(o[k])}`);
        }
    }
    return `{${parts.join(',')}}`;
}

/* a 200 push answer: checks its shape, returns the JSON */
function accepted(r, what) {
    assert.strictEqual(r.status, 200, `${what}: ${r.status} ${r.body}`);
    assert.ok(r.json && typeof r.json.id === 'string'
              && /^\S+-[0-9a-f]+$/.test(r.json.id),
              `${what}: an id "<node>-<hex>" in ${r.body}`);
    assert.strictEqual(typeof r.json.online, 'number', r.body);
    assert.strictEqual(typeof r.json.stored, 'number', r.body);
    return r.json;
}

/* the sequence part of a message id */
function idSeq(id) {
    return BigInt(`0x${id.slice(id.lastIndexOf('-') + 1)}`);
}

function assertIncreasing(ids, what) {
    for (let i = 1; i < ids.length; i++) {
        assert.ok(idSeq(ids[i]) > idSeq(ids[i - 1]),
                  `${what}: id ${ids[i]} after ${ids[i - 1]} is larger `
                  + `(all: ${ids.join(' ')})`);
    }
}

/* a msg frame, not a sentinel (below): tests do not see those */
const isSentinel = (f) => f.json && f.json.op === 'msg' && f.json.data
    && f.json.data.sentinel === true;
const isMsg = (f) => f.json && f.json.op === 'msg' && !isSentinel(f);

async function open(d, uid, device, apps = ['a']) {
    const ws = await W.rawOpen(d.roomPort, uid, device, { apps });
    ws.pd = { d, uid, apps };
    return ws;
}

/* qos 0 pushes the sentinels made, for the tests that count pushes */
const sentinels = { pushes: 0 };

/*
 * A barrier for the connections wss (one app they all bind): a qos 0
 * push of a sentinel to all their uids through each worker's own
 * center connection, and each connection's sentinels received.  Any
 * message a worker routed to them before its sentinel is in by then:
 * the path from a worker to a connection keeps order.
 */
async function sentinel(wss) {
    const { d, apps } = wss[0].pd;
    const uids = [...new Set(wss.map((ws) => ws.pd.uid))];
    const ids = [];
    for (const k of await L.centerPerWorker(d)) {
        /* under center.rate_limit it waits its turn (a 429 routes
         * nothing) */
        const r = await L.waitFor(async () => {
            const x = await k.post('/v1/push', { app: apps[0], uids,
                                                 data: { sentinel: true },
                                                 qos: 0 });
            assert.ok(x.status === 200 || x.status === 429,
                      `sentinel: ${x.status} ${x.body}`);
            return x.status === 200 && x;
        }, 10000, 'the sentinel accepted', 100);
        sentinels.pushes++;
        ids.push(r.json.id);
    }
    for (const ws of wss) {
        for (const id of ids) {
            await ws.next((f) => isSentinel(f) && f.json.id === id, 5000,
                          `sentinel ${id} on ${ws.pd.uid}`);
        }
    }
}

/* the next msg frame (matching pred), as the raw frame */
function nextMsg(ws, pred = () => true, ms = 5000, what = 'a msg frame') {
    return ws.next((f) => isMsg(f) && pred(f.json), ms, what);
}

/* the next n msg frames in arrival order */
async function msgs(ws, n, ms = 5000, what = 'msg frames') {
    const out = [];
    for (let i = 0; i < n; i++) {
        out.push(await nextMsg(ws, () => true, ms,
                               `${what} (${i + 1} of ${n})`));
    }
    return out;
}

/* removes and returns the msg frames queued now */
function takeMsgs(ws) {
    const out = ws.frames.items.filter(isMsg);
    ws.frames.items = ws.frames.items.filter((f) => !isMsg(f));
    return out;
}

/*
 * Everything the server had for ws by now: a ping answered (so all
 * that its worker queued before it, the load on connect included, is
 * in), then the sentinels behind what the other workers may still hand
 * over.  Returns the msg frames taken.
 */
async function settle(ws) {
    ws.sendJson({ op: 'ping' });
    await ws.op('pong');
    if (ws.pd.apps.length) {
        await sentinel([ws]);
    }
    return takeMsgs(ws);
}

/* acks ids and waits until the server has read the ack (a pong after) */
async function ack(ws, ids) {
    ws.sendJson({ op: 'ack', ids });
    ws.sendJson({ op: 'ping' });
    await ws.op('pong');
}

/* a clean close from our side, then the end of the TCP connection */
async function bye(ws) {
    ws.send({ opcode: OP.CLOSE, payload: Buffer.from([0x03, 0xe8]) });
    await ws.waitEnd(3000);
    ws.destroy();
}

async function presence(d, uid) {
    const r = await L.centerGet(d, `/v1/users/${encodeURIComponent(uid)}`);
    assert.strictEqual(r.status, 200, r.body);
    return r.json;
}

/* no live connection: gone, or lingering for a resume (room.linger) */
function offline(d, uid) {
    return L.waitFor(async () => (await presence(d, uid)).connections
                     .every((c) => c.state === 'lingering'), 5000,
                     `${uid} offline in presence`);
}

/* the worker slot of uid/device from presence */
async function slotOf(d, uid, device) {
    const p = await presence(d, uid);
    const c = p.connections.find((x) => x.device === device);
    assert.ok(c, `${uid}/${device} in presence: ${JSON.stringify(p)}`);
    return c.worker;
}

/* checks one msg frame against what was pushed */
function checkFrame(f, id, app, qos, raw, what) {
    assert.strictEqual(f.json.op, 'msg');
    assert.strictEqual(f.json.id, id, `${what}: id`);
    assert.strictEqual(f.json.app, app, `${what}: app`);
    assert.strictEqual(f.json.qos, qos, `${what}: qos`);
    assert.ok(f.text.includes(raw),
              `${what}: the frame holds the data bytes as sent: `
              + `${JSON.stringify(raw)} not in ${JSON.stringify(f.text)}`);
    assert.deepStrictEqual(f.json.data, JSON.parse(raw), `${what}: data`);
}

/* data with spacing, number forms and escapes a re-encoder would change */
function oddData(k) {
    return String.raw`{"a" : [1, 2.50, -0.0, 1e3], "k" : ` + k
        + String.raw` , "s":"\u00e9 \"q\"/\/" }`;
}

/* ------------------------------------------------------------------ */

test('unicast: online connections on both workers each get their '
     + 'message, data byte for byte, ids increasing', T, async () => {
    await L.withPushd(conf(), async (d) => {
        /* one uid per connection, until both workers hold two */
        const conns = [];
        const perSlot = [0, 0];
        for (let i = 0; i < 40 && (perSlot[0] < 2 || perSlot[1] < 2); i++) {
            const ws = await open(d, `uc${i}`, 'd');
            const slot = await slotOf(d, `uc${i}`, 'd');
            perSlot[slot]++;
            conns.push({ uid: `uc${i}`, ws, slot });
        }
        assert.ok(perSlot[0] >= 2 && perSlot[1] >= 2,
                  `connections on both workers: ${perSlot}`);

        /* a few pushes each: the API answers from either worker */
        const ids = [];
        let k = 0;
        for (let round = 0; round < 3; round++) {
            for (const c of conns) {
                const raw = oddData(k++);
                const r = accepted(await push(d, rawBody({
                    app: 'a', uids: [c.uid], data: raw, qos: 1,
                })), `push to ${c.uid}`);
                assert.strictEqual(r.online, 1, `${c.uid} is online`);
                assert.strictEqual(r.stored, 1, 'qos 1 is stored');
                ids.push(r.id);
                const f = await nextMsg(c.ws, (m) => m.id === r.id, 5000,
                                        `${r.id} on ${c.uid} (worker `
                                        + `${c.slot})`);
                checkFrame(f, r.id, 'a', 1, raw, `${c.uid} round ${round}`);
                await ack(c.ws, [r.id]);
            }
        }
        assert.strictEqual(new Set(ids).size, ids.length, 'ids are unique');
        assertIncreasing(ids, 'successive pushes');

        /* nobody got anything twice or anything not for it */
        for (const c of conns) {
            const extra = await settle(c.ws);
            assert.deepStrictEqual(extra.map((f) => f.text), [],
                                   `${c.uid} got nothing more`);
            c.ws.destroy();
        }
    });
});

/*
 * A push answered 200 is on its way: the next one, sent after that
 * answer through whichever worker takes it, comes after it.  A worker
 * used to write the answer before the turn's corked channel messages
 * left (pd_channel_uncork at the turn's end), so a push routed to a
 * sibling could be overtaken by the next one, taken by the sibling
 * itself and delivered at once.  Each push here is a new connection
 * (SO_REUSEPORT spreads them), two clients on different workers, both
 * named in every push; the sanitizer build saw it most.
 */
test('unicast: pushes answered in turn arrive in turn, whichever worker '
     + 'takes each request', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const conns = [null, null];
        for (let i = 0; i < 40 && (!conns[0] || !conns[1]); i++) {
            const ws = await open(d, `or${i}`, 'd');
            const slot = await slotOf(d, `or${i}`, 'd');
            if (conns[slot] === null) {
                conns[slot] = { uid: `or${i}`, ws, got: [] };
            } else {
                ws.destroy();
            }
        }
        assert.ok(conns[0] && conns[1], 'a client on each worker');
        for (const c of conns) {
            c.ws.onFrame = (f) => {
                if (f.json && f.json.op === 'msg') {
                    c.got.push(f.json.data.n);
                }
            };
        }
        const N = 1500;
        const uids = conns.map((c) => c.uid);
        for (let n = 0; n < N; n++) {
            const r = await L.centerPost(d, '/v1/push',
                                         { app: 'a', uids, qos: 0,
                                           data: { n } });
            assert.strictEqual(r.status, 200, r.body);
        }
        const want = [...Array(N).keys()];
        for (const c of conns) {
            await L.waitFor(() => c.got.length >= N, 10000,
                            `${N} pushes for ${c.uid}, got ${c.got.length}`);
            assert.deepStrictEqual(c.got, want, `${c.uid}: in order`);
            c.ws.destroy();
        }
    });
});

test('unicast: every device of a uid on both workers gets one copy; a '
     + 'connection without the app gets it on bind', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const devs = [];
        const slots = new Set();
        for (let i = 0; i < 16 && (devs.length < 4 || slots.size < 2); i++) {
            devs.push(await open(d, 'md', `d${i}`));
            slots.add(await slotOf(d, 'md', `d${i}`));
        }
        assert.strictEqual(slots.size, 2, 'devices on both workers');
        const other = await open(d, 'md', 'other-app', ['b']);

        const raw = '[ {"x":1} ,2,"three" ,null,true ]';
        for (let n = 0; n < 4; n++) {
            const r = accepted(await push(d, rawBody({
                app: 'a', uids: ['md'], data: raw,
            })), 'push to md');
            assert.strictEqual(r.online, 1, 'one uid online');
            assert.strictEqual(r.stored, 1);
            for (const [i, ws] of devs.entries()) {
                const f = await nextMsg(ws, (m) => m.id === r.id, 5000,
                                        `${r.id} on md/d${i}`);
                checkFrame(f, r.id, 'a', 1, raw, `md/d${i}`);
            }
        }
        for (const [i, ws] of devs.entries()) {
            assert.deepStrictEqual((await settle(ws)).map((f) => f.text),
                                   [], `md/d${i} got each message once`);
        }

        /* the connection bound to "b" only got none of them ... */
        assert.deepStrictEqual((await settle(other)).map((f) => f.text), [],
                               'md/other-app is not bound to "a"');

        /* ... and a uid bound to nothing of "a" is not online for it */
        const wa = await open(d, 'wa', 'd1', ['b']);
        const raw2 = '{"bind" :  "me"}';
        const r2 = accepted(await push(d, rawBody({
            app: 'a', uids: ['wa'], data: raw2, qos: 1,
        })), 'push to wa');
        assert.strictEqual(r2.online, 0, 'wa has no connection bound to a');
        assert.strictEqual(r2.stored, 1);
        assert.deepStrictEqual((await settle(wa)).map((f) => f.text), [],
                               'nothing for wa before it binds a');
        wa.sendJson({ op: 'bind', app: 'a' });
        const f2 = await nextMsg(wa, (m) => m.id === r2.id, 5000,
                                 'the stored message after bind');
        checkFrame(f2, r2.id, 'a', 1, raw2, 'wa after bind');
        for (const ws of [...devs, other, wa]) {
            ws.destroy();
        }
    });
});

test('qos 1 to an offline uid: stored, delivered on connect in order',
     T, async () => {
    await L.withPushd(conf(), async (d) => {
        const pushed = [];
        for (let i = 0; i < 5; i++) {
            const raw = `{"i" : ${i}, "f" : 0.10}`;
            const r = accepted(await push(d, rawBody({
                app: 'a', uids: ['off1'], data: raw, qos: 1,
            })), `push ${i}`);
            assert.strictEqual(r.online, 0, 'off1 is offline');
            assert.strictEqual(r.stored, 1, 'stored for off1');
            pushed.push({ id: r.id, raw });
        }
        assertIncreasing(pushed.map((p) => p.id), 'ids of the 5 pushes');
        /* another app of the same uid is a different mailbox */
        const rb = accepted(await push(d, rawBody({
            app: 'b', uids: ['off1'], data: '"for b"',
        })), 'push to app b');
        assert.strictEqual(rb.stored, 1);

        const ws = await open(d, 'off1', 'd1');
        const got = await msgs(ws, 5, 5000, 'the stored messages');
        assert.deepStrictEqual(got.map((f) => f.json.id),
                               pushed.map((p) => p.id),
                               'all 5, in push order');
        got.forEach((f, i) => checkFrame(f, pushed[i].id, 'a', 1,
                                         pushed[i].raw, `stored ${i}`));
        assert.deepStrictEqual((await settle(ws)).map((f) => f.text), [],
                               'nothing else: not app b, no duplicates');
        await ack(ws, pushed.map((p) => p.id));
        await bye(ws);

        /* app b's one comes when a connection binds b */
        const wb = await open(d, 'off1', 'd2', ['b']);
        const fb = await nextMsg(wb, () => true, 5000, 'the app b message');
        checkFrame(fb, rb.id, 'b', 1, '"for b"', 'app b');
        await ack(wb, [rb.id]);
        assert.deepStrictEqual((await settle(wb)).map((f) => f.text), [],
                               'the acked app a messages are not sent to b');
        wb.destroy();
    });
});

test('acks: an unacked message comes again, in order, on the next '
     + 'connection; an acked one never again', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const m0 = await L.metrics(d);
        const s0 = sentinels.pushes;
        const ids = [];
        for (let i = 0; i < 3; i++) {
            ids.push(accepted(await push(d, {
                app: 'a', uids: ['rd'], data: { n: i },
            }), `push ${i}`).id);
        }

        let ws = await open(d, 'rd', 'd1');
        let got = await msgs(ws, 3);
        assert.deepStrictEqual(got.map((f) => f.json.id), ids);
        await ack(ws, [ids[1]]);
        await bye(ws);
        await offline(d, 'rd');

        /* 0 and 2 again, in order; 1 not */
        ws = await open(d, 'rd', 'd1');
        got = await msgs(ws, 2);
        assert.deepStrictEqual(got.map((f) => f.json.id), [ids[0], ids[2]],
                               'the unacked ones again, in order');
        assert.deepStrictEqual(got.map((f) => f.json.data),
                               [{ n: 0 }, { n: 2 }]);
        assert.deepStrictEqual((await settle(ws)).map((f) => f.json.id), [],
                               'the acked one is not sent again');

        /* an online push in between, acked with the rest in one frame */
        const live = accepted(await push(d, {
            app: 'a', uids: ['rd'], data: 'live',
        }), 'live push');
        assert.strictEqual(live.online, 1);
        await nextMsg(ws, (m) => m.id === live.id);
        await ack(ws, [ids[0], ids[2], live.id]);
        /* abrupt end this time, no close frame */
        ws.destroy();
        await offline(d, 'rd');

        ws = await open(d, 'rd', 'd2');
        assert.deepStrictEqual((await settle(ws)).map((f) => f.json.id), [],
                               'everything was acked: nothing comes again');
        ws.destroy();

        const m1 = await L.metrics(d);
        const delta = (n) => (m1.get(n) || 0) - (m0.get(n) || 0);
        assert.ok(delta('pushd_messages_acked_total') >= 4,
                  'acked_total up by 4: '
                  + `${delta('pushd_messages_acked_total')}`);
        assert.ok(delta('pushd_messages_redelivered_total') >= 2,
                  'redelivered_total up by at least 2: '
                  + `${delta('pushd_messages_redelivered_total')}`);
        assert.strictEqual(delta('pushd_messages_accepted_total'),
                           4 + sentinels.pushes - s0, 'four and the sentinels');
    });
});

test('no-ack guard: after max_redeliveries deliveries without an ack '
     + 'the message is dropped and counted', T, async () => {
    await L.withPushd(conf({ saver: { max_redeliveries: 2 } }), async (d) => {
        const m0 = await L.metrics(d);
        assert.strictEqual(m0.get('pushd_store_dropped_noack_total'), 0,
                           'pushd_store_dropped_noack_total is exported');
        const r = accepted(await push(d, {
            app: 'a', uids: ['ng'], data: { never: 'acked' },
        }), 'push');
        const seen = [];
        for (let i = 0; i < 4; i++) {
            const ws = await open(d, 'ng', `d${i}`);
            const got = await settle(ws);
            seen.push(got.filter((f) => f.json.id === r.id).length);
            await bye(ws);
            await offline(d, 'ng');
        }
        assert.deepStrictEqual(seen, [1, 1, 0, 0],
                               'delivered on the first 2 connections only '
                               + '(max_redeliveries: 2)');
        await L.waitFor(async () => (await L.metrics(d))
                        .get('pushd_store_dropped_noack_total') === 1,
                        5000, 'pushd_store_dropped_noack_total to be 1');
        const m1 = await L.metrics(d);
        assert.strictEqual(m1.get('pushd_store_messages'), 0,
                           'the store holds nothing any more');
        assert.strictEqual(m1.get('pushd_messages_acked_total'),
                           m0.get('pushd_messages_acked_total'),
                           'nothing was acked');
    });
});

test('no-ack guard: live deliveries to an online uid count too',
     T, async () => {
    await L.withPushd(conf({ saver: { max_redeliveries: 2 } }), async (d) => {
        const ws = await open(d, 'ngl', 'd1');
        const r = accepted(await push(d, {
            app: 'a', uids: ['ngl'], data: 1,
        }), 'push');
        assert.strictEqual(r.online, 1);
        await nextMsg(ws, (m) => m.id === r.id);
        await bye(ws);
        await offline(d, 'ngl');
        /* delivery 2 on reconnect, then never again */
        const seen = [];
        for (let i = 0; i < 3; i++) {
            const c = await open(d, 'ngl', `r${i}`);
            seen.push((await settle(c)).filter((f) => f.json.id === r.id)
                .length);
            await bye(c);
            await offline(d, 'ngl');
        }
        assert.deepStrictEqual(seen, [1, 0, 0],
                               'a live delivery and one redelivery, no more');
        await L.waitFor(async () => (await L.metrics(d))
                        .get('pushd_store_dropped_noack_total') === 1,
                        5000, 'pushd_store_dropped_noack_total to be 1');
    });
});

test('ttl: an expired message is not delivered and is counted', T,
     async () => {
    await L.withPushd(conf(), async (d) => {
        const m0 = await L.metrics(d);
        assert.strictEqual(typeof m0.get('pushd_store_expired_total'),
                           'number', 'pushd_store_expired_total exported');
        const short = accepted(await push(d, {
            app: 'a', uids: ['tt'], data: 'short', ttl: 1,
        }), 'ttl 1 push');
        assert.strictEqual(short.stored, 1);
        const long = accepted(await push(d, {
            app: 'a', uids: ['tt'], data: 'long', ttl: 600,
        }), 'ttl 600 push');
        await L.delay(2500);

        const ws = await open(d, 'tt', 'd1');
        const got = await settle(ws);
        assert.deepStrictEqual(got.map((f) => f.json.id), [long.id],
                               'only the ttl 600 message comes');
        await ack(ws, [long.id]);
        ws.destroy();
        await L.waitFor(async () => (await L.metrics(d))
                        .get('pushd_store_expired_total')
                        >= m0.get('pushd_store_expired_total') + 1, 5000,
                        'pushd_store_expired_total up by 1');
        await L.waitFor(async () => (await L.metrics(d))
                        .get('pushd_store_messages') === 0, 5000,
                        'the store empty');
    });
});

test('ttl: counts from the push\'s millisecond, not from the start of '
     + 'its second', T, async () => {
    await L.withPushd(conf(), async (d) => {
        /* pushed late in a second with ttl 2: it lives until 2 s after
         * the push.  When the saver's clock was the second, it ended at
         * the next second but one, 1.05-1.15 s after the push, and the
         * client below, which comes 1.3 s after it, got nothing */
        await L.waitFor(() => Date.now() % 1000 >= 850
                        && Date.now() % 1000 < 950, 3000,
                        'the late part of a second');
        const t0 = Date.now();
        const r = accepted(await push(d, {
            app: 'a', uids: ['ttms'], data: 'two seconds', ttl: 2,
        }), 'ttl 2 push');
        assert.strictEqual(r.stored, 1);
        const late = t0 + 1300;
        assert.ok(Date.now() < late, 'the push was answered in time');
        await L.waitFor(() => Date.now() >= late, 3000, '1.3 s after it');

        const ws = await open(d, 'ttms', 'd1');
        const f = await nextMsg(ws, (m) => m.id === r.id, 5000,
                                'the ttl 2 message, 1.3 s after its push');
        assert.strictEqual(f.json.data, 'two seconds');
        assert.ok(Date.now() < t0 + 2000,
                  'the client came before the ttl ended (else the test '
                  + 'says nothing)');
        await ack(ws, [r.id]);
        ws.destroy();
    });
});

test('qos 0: online connections only, never stored, not redelivered',
     T, async () => {
    await L.withPushd(conf(), async (d) => {
        const r = accepted(await push(d, {
            app: 'a', uids: ['q0'], data: { q: 0 }, qos: 0,
        }), 'qos 0 to offline');
        assert.strictEqual(r.online, 0);
        assert.strictEqual(r.stored, 0, 'qos 0 is never stored');
        assert.strictEqual((await L.metrics(d)).get('pushd_store_messages'),
                           0, 'the store is empty');

        const ws = await open(d, 'q0', 'd1');
        assert.deepStrictEqual((await settle(ws)).map((f) => f.text), [],
                               'the qos 0 message is not delivered later');

        /* online: delivered with qos 0; no ack needed, no second time */
        const raw = '{ "zero" : 0.0 }';
        const r2 = accepted(await push(d, rawBody({
            app: 'a', uids: ['q0'], data: raw, qos: 0,
        })), 'qos 0 to online');
        assert.strictEqual(r2.online, 1);
        assert.strictEqual(r2.stored, 0);
        const f = await nextMsg(ws, (m) => m.id === r2.id);
        checkFrame(f, r2.id, 'a', 0, raw, 'qos 0 frame');
        await bye(ws);
        await offline(d, 'q0');
        const again = await open(d, 'q0', 'd1');
        assert.deepStrictEqual((await settle(again)).map((f) => f.text), [],
                               'a qos 0 message comes once only');
        again.destroy();
    });
});

test('multicast: one push to 100 online uids (and 10 offline): each '
     + 'gets it exactly once', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const uids = [];
        const conns = [];
        for (let i = 0; i < 100; i++) {
            uids.push(`mc${i}`);
        }
        for (let i = 0; i < 100; i += 20) {
            conns.push(...await Promise.all(uids.slice(i, i + 20)
                .map((u) => open(d, u, 'd'))));
        }
        const offl = [];
        for (let i = 0; i < 10; i++) {
            offl.push(`mcoff${i}`);
        }
        const raw = '{"multi" : [ 1.50 , "x" ]}';
        const r = accepted(await push(d, rawBody({
            app: 'a', uids: [...uids, ...offl], data: raw, qos: 1,
        })), 'multicast');
        assert.strictEqual(r.online, 100, r.body);
        assert.strictEqual(r.stored, 110);

        for (const [i, ws] of conns.entries()) {
            const f = await nextMsg(ws, (m) => m.id === r.id, 5000,
                                    `the multicast on ${uids[i]}`);
            checkFrame(f, r.id, 'a', 1, raw, uids[i]);
        }
        /* once: nothing more before the sentinels */
        await sentinel(conns);
        for (const [i, ws] of conns.entries()) {
            assert.deepStrictEqual(takeMsgs(ws).map((f) => f.text), [],
                                   `${uids[i]} got it once`);
            ws.sendJson({ op: 'ack', ids: [r.id] });
        }
        /* the offline ones on connect */
        for (const u of offl.slice(0, 3)) {
            const ws = await open(d, u, 'd');
            const f = await nextMsg(ws, () => true, 5000, `stored on ${u}`);
            checkFrame(f, r.id, 'a', 1, raw, u);
            ws.destroy();
        }
        for (const ws of conns) {
            ws.destroy();
        }
    });
});

test('metrics: counters, the latency histogram and per-worker '
     + 'connections', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const ws = await open(d, 'mt', 'd1');
        const m0 = await L.metrics(d);
        for (const name of ['pushd_messages_accepted_total',
                            'pushd_messages_delivered_total',
                            'pushd_messages_acked_total',
                            'pushd_messages_redelivered_total']) {
            for (const w of ['0', '1']) {
                assert.ok(m0.samples.some((s) => s.name === name
                                          && s.labels.includes(
                                              `worker="${w}"`)),
                          `${name}{worker="${w}"} in\n${m0.text}`);
            }
        }
        for (const name of ['pushd_delivery_latency_ms_sum',
                            'pushd_delivery_latency_ms_count',
                            'pushd_store_messages',
                            'pushd_store_expired_total',
                            'pushd_store_dropped_noack_total']) {
            assert.strictEqual(typeof m0.get(name), 'number',
                               `${name} in /metrics`);
        }
        assert.ok(m0.samples.some((s) => s.name
                                  === 'pushd_delivery_latency_ms_bucket'
                                  && /le="/.test(s.labels)),
                  'latency buckets with le');
        const conn = m0.samples.filter((s) => s.name === 'pushd_connections')
            .map((s) => (/worker="(\d+)"/.exec(s.labels) || [])[1]);
        assert.deepStrictEqual([...new Set(conn)].sort(), ['0', '1'],
                               'pushd_connections per worker');

        const ids = [];
        for (let i = 0; i < 5; i++) {
            const r = accepted(await push(d, {
                app: 'a', uids: ['mt'], data: i,
            }), `push ${i}`);
            ids.push(r.id);
            await nextMsg(ws, (m) => m.id === r.id);
        }
        await ack(ws, ids);
        const m1 = await L.metrics(d);
        const delta = (n) => m1.get(n) - m0.get(n);
        assert.strictEqual(delta('pushd_messages_accepted_total'), 5);
        assert.ok(delta('pushd_messages_delivered_total') >= 5,
                  `delivered +${delta('pushd_messages_delivered_total')}`);
        assert.strictEqual(delta('pushd_messages_acked_total'), 5);
        assert.ok(delta('pushd_delivery_latency_ms_count') >= 5,
                  `latency count +${delta('pushd_delivery_latency_ms_count')}`);
        const inf = m1.samples.find((s) => s.name
                                    === 'pushd_delivery_latency_ms_bucket'
                                    && s.labels.includes('le="+Inf"'));
        assert.ok(inf, 'a +Inf bucket');
        assert.strictEqual(inf.value, m1.get('pushd_delivery_latency_ms_count'),
                           'the +Inf bucket equals _count');
        assert.strictEqual(m1.get('pushd_store_messages'), 0,
                           'all acked: nothing stored');
        ws.destroy();
    });
});

test('API errors: bad JSON and fields get 400, oversized 413, no key '
     + '401, each with a JSON error; nothing is sent', T, async () => {
    await L.withPushd(conf({ center: { max_uids: 10 } }), async (d) => {
        const ws = await open(d, 'ae', 'd1');
        const ok = { app: 'a', uids: ['ae'], data: 1 };
        const bad = [
            '{bad', '[1]', '"x"', '12', 'null', '',
            '{"app":"a","uids":["ae"],"data":1', /* cut short */
            JSON.stringify({ uids: ['ae'], data: 1 }),
            JSON.stringify({ app: 5, uids: ['ae'], data: 1 }),
            JSON.stringify({ app: '', uids: ['ae'], data: 1 }),
            JSON.stringify({ app: 'bad app', uids: ['ae'], data: 1 }),
            JSON.stringify({ app: 'a', data: 1 }),
            JSON.stringify({ app: 'a', uids: 'ae', data: 1 }),
            JSON.stringify({ app: 'a', uids: [5], data: 1 }),
            JSON.stringify({ app: 'a', uids: ['ae', 'bad uid'], data: 1 }),
            JSON.stringify({ app: 'a', uids: ['ae', ''], data: 1 }),
            JSON.stringify({ app: 'a', uids: ['x'.repeat(65)], data: 1 }),
            JSON.stringify({ app: 'a', uids: ['ae'] }),
            JSON.stringify(Object.assign({ qos: 2 }, ok)),
            JSON.stringify(Object.assign({ qos: -1 }, ok)),
            JSON.stringify(Object.assign({ qos: '1' }, ok)),
            JSON.stringify(Object.assign({ qos: 0.5 }, ok)),
            JSON.stringify(Object.assign({ ttl: -1 }, ok)),
            JSON.stringify(Object.assign({ ttl: '10' }, ok)),
            JSON.stringify(Object.assign({ ttl: 8 * 86400 }, ok)),
            /* 11 uids, max_uids: 10 */
            JSON.stringify({ app: 'a', data: 1, uids: Array.from(
                { length: 11 }, (x, i) => `u${i}`) }),
            /* what the reader refuses that a lax one would pass on */
            '{"app":"a","uids":["ae"],"data":1} x',
            '{"app":"a","app":"b","uids":["ae"],"data":1}',
            '{"app":"a","uids":["ae"],"data":"\\ud800"}',
            '{"app":"a","uids":["ae"],"data":"tab\there"}',
            '{"app":"a","uids":["ae"],"data":[1,]}',
            '{"app":"a","uids":["ae"],"data":01}',
            `{"app":"a","uids":["ae"],"data":${'['.repeat(70)}`
                + `${']'.repeat(70)}}`,
            Buffer.concat([Buffer.from('{"app":"a","uids":["ae"],"data":"'),
                           Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
            Buffer.concat([Buffer.from('{"app":"a","uids":["ae"],"data":"'),
                           Buffer.from([0xed, 0xa0, 0x80]),
                           Buffer.from('"}')]),
        ];
        for (const body of bad) {
            const r = await push(d, body);
            assert.strictEqual(r.status, 400, `${JSON.stringify(body)}: `
                               + `${r.status} ${r.body}`);
            assert.strictEqual(typeof (r.json && r.json.error), 'string',
                               `a JSON error for ${body}: ${r.body}`);
        }

        /* a syntax error says what and where */
        const se = await push(d, '{"app":"a","uids":["ae"] "data":1}');
        assert.strictEqual(se.status, 400, se.body);
        assert.match(se.json.error, /missing ',' .* at byte 25$/, se.body);
        const ue = await push(d, Buffer.concat([
            Buffer.from('{"app":"a","uids":["ae"],"data":"ab'),
            Buffer.from([0xff]), Buffer.from('"}')]));
        assert.match(ue.json.error, /invalid UTF-8 .* at byte 35$/, ue.body);
        /* a cut body is called a cut, at its length (issue 13) */
        const te = await push(d, '{"app":"a","uids":["ae"],"data":{"t');
        assert.strictEqual(te.status, 400, te.body);
        assert.strictEqual(te.json.error, 'the body must be a JSON object: '
                           + 'unexpected end of input at byte 35');

        /* broadcast fields */
        for (const body of [
            '{bad', '[]',
            JSON.stringify({ data: 1 }),
            JSON.stringify({ app: 7, data: 1 }),
            JSON.stringify({ app: 'a' }),
            JSON.stringify({ app: 'a', data: 1, rate: 0 }),
            JSON.stringify({ app: 'a', data: 1, rate: -5 }),
            JSON.stringify({ app: 'a', data: 1, rate: 'fast' }),
            JSON.stringify({ app: 'a', data: 1, qos: 3 }),
            JSON.stringify({ app: 'a', data: 1, ttl: -1 }),
        ]) {
            const r = await L.centerPost(d, '/v1/broadcast', body);
            assert.strictEqual(r.status, 400,
                               `broadcast ${body}: ${r.status} ${r.body}`);
            assert.strictEqual(typeof (r.json && r.json.error), 'string',
                               r.body);
        }

        /* data above center.max_message (4k): 413; just below: 200 */
        const big = JSON.stringify('x'.repeat(5000));
        for (const target of ['/v1/push', '/v1/broadcast']) {
            const r = await L.centerPost(d, target, rawBody({
                app: 'a', uids: target === '/v1/push' ? ['ae'] : undefined,
                data: big,
            }));
            assert.strictEqual(r.status, 413, `${target}: ${r.body}`);
            assert.strictEqual(typeof (r.json && r.json.error), 'string',
                               r.body);
        }
        const fits = JSON.stringify('y'.repeat(4000));
        const rf = accepted(await push(d, rawBody({
            app: 'a', uids: ['ae'], data: fits,
        })), 'a 4000-byte data');
        const ff = await nextMsg(ws, (m) => m.id === rf.id);
        checkFrame(ff, rf.id, 'a', 1, fits, 'the 4000-byte data');
        await ack(ws, [rf.id]);

        /* a body above center.max_body (1m): 413 */
        const huge = rawBody({ app: 'a', uids: ['ae'],
                               data: JSON.stringify('z'.repeat(1100000)) });
        const rh = await push(d, huge, { timeout: 10000 });
        assert.strictEqual(rh.status, 413, rh.body);
        assert.strictEqual(typeof (rh.json && rh.json.error), 'string',
                           rh.body);

        /* the key */
        const nk = await push(d, ok, { auth: false });
        assert.strictEqual(nk.status, 401, nk.body);
        const wk = await push(d, ok, { key: 'wrong-key-0123456789abc' });
        assert.strictEqual(wk.status, 401, wk.body);

        /* none of it reached the client; a good push still does */
        assert.deepStrictEqual((await settle(ws)).map((f) => f.text), [],
                               'nothing was delivered by refused requests');
        const m = await L.metrics(d);
        assert.strictEqual(m.get('pushd_store_messages'), 0,
                           'nothing was stored by refused requests');
        const r = accepted(await push(d, ok), 'a good push');
        assert.strictEqual(r.online, 1);
        await nextMsg(ws, (x) => x.id === r.id);
        ws.destroy();
    });
});

test('rate limit: a burst above center.rate_limit gets 429 with '
     + 'Retry-After, then pushes pass again', T, async () => {
    await L.withPushd(conf({ center: { rate_limit: 5 } }), async (d) => {
        const ws = await open(d, 'rl', 'd1');
        const t0 = Date.now();
        const rs = await Promise.all(Array.from({ length: 40 }, (x, i) =>
            push(d, { app: 'a', uids: ['rl'], data: i })));
        const elapsed = (Date.now() - t0) / 1000;
        const okR = rs.filter((r) => r.status === 200);
        const limited = rs.filter((r) => r.status === 429);
        assert.strictEqual(okR.length + limited.length, 40,
                           `only 200 and 429: ${rs.map((r) => r.status)}`);
        assert.ok(okR.length >= 1, 'some pass');
        assert.ok(limited.length >= 1, 'some are limited');
        assert.ok(okR.length <= 5 * (Math.ceil(elapsed) + 1),
                  `${okR.length} accepted in ${elapsed} s at 5/s`);
        for (const r of limited) {
            assert.ok(/^\d+$/.test(r.headers['retry-after'] || ''),
                      `Retry-After: ${r.headers['retry-after']}`);
            assert.strictEqual(typeof (r.json && r.json.error), 'string',
                               r.body);
        }
        /* the accepted ones were delivered, the refused ones not */
        const ids = okR.map((r) => r.json.id);
        for (const id of ids) {
            await nextMsg(ws, (m) => m.id === id, 5000, `accepted ${id}`);
        }
        await ack(ws, ids);
        assert.deepStrictEqual((await settle(ws)).map((f) => f.text), [],
                               'no message for a 429');

        /* a second later it passes again */
        const again = await L.waitFor(async () => {
            const r = await push(d, { app: 'a', uids: ['rl'], data: 'x' });
            return r.status === 200 ? r : null;
        }, 5000, 'a 200 after the burst');
        await nextMsg(ws, (m) => m.id === again.json.id);
        ws.destroy();
    });
});

test('a multicast to uids on four workers reaches each once, whatever '
     + 'worker takes the push', T, async () => {
    const c = conf();
    c.workers = 4;
    await L.withPushd(c, async (d) => {
        /* enough connections for a push to meet three siblings, each
         * with more ids than a target first holds (pd_room_route.c) */
        const uids = Array.from({ length: 60 }, (x, i) => `mw${i}`);
        const cls = [];
        for (const uid of uids) {
            cls.push(await W.connect(d.roomPort, uid, 'phone',
                                     { apps: ['a'] }));
        }
        const slots = new Set();
        for (const uid of uids) {
            slots.add((await presence(d, uid)).connections[0].worker);
        }
        assert.ok(slots.size >= 3, `the uids on ${slots.size} workers`);

        /* qos 0, qos 1, then a last one: each connection gets the
         * three in order, so none came twice */
        const ids = [];
        for (const qos of [0, 1, 0]) {
            const r = await push(d, { app: 'a', uids, data: { qos }, qos });
            assert.strictEqual(r.status, 200, r.body);
            assert.strictEqual(r.json.online, uids.length, r.body);
            ids.push(r.json.id);
        }
        for (const cl of cls) {
            const got = [];
            for (let i = 0; i < ids.length; i++) {
                got.push((await cl.op('msg', 5000)).id);
            }
            assert.deepStrictEqual(got, ids);
            cl.close();
            await cl.waitClose();
        }
    });
});

test('store full: 503 with a JSON error; the messages accepted before '
     + 'are still delivered', T, async () => {
    await L.withPushd(conf({ saver: { memory: '1m' },
                             center: { max_message: '12k' } }), async (d) => {
        const uids = Array.from({ length: 1000 }, (x, i) => `sf${i}`);
        const accepted200 = [];
        let full = null;
        for (let i = 0; i < 100 && !full; i++) {
            const raw = JSON.stringify(`${i}:`.padEnd(12000, 'p'));
            const r = await push(d, rawBody({
                app: 'a', uids, data: raw, qos: 1,
            }));
            if (r.status === 200) {
                assert.strictEqual(r.json.stored, 1000, r.body);
                accepted200.push({ id: r.json.id, raw });
            } else {
                full = r;
            }
        }
        assert.ok(full, 'a push was refused within 100 pushes');
        assert.strictEqual(full.status, 503, `${full.status} ${full.body}`);
        assert.strictEqual(typeof (full.json && full.json.error), 'string',
                           full.body);
        assert.ok(accepted200.length >= 1,
                  'at least one push was accepted before the store filled');
        const m = await L.metrics(d);
        assert.strictEqual(m.get('pushd_store_messages'),
                           accepted200.length * 1000,
                           'the refused push stored nothing');

        /* the same again is refused too; qos 0 still passes */
        const again = await push(d, rawBody({
            app: 'a', uids, data: JSON.stringify('again'.padEnd(12000, 'a')),
        }));
        assert.strictEqual(again.status, 503, again.body);
        const q0 = await push(d, { app: 'a', uids: ['sf0'], data: 'x',
                                   qos: 0 });
        assert.strictEqual(q0.status, 200, `qos 0 needs no store: ${q0.body}`);

        for (const u of ['sf0', 'sf499', 'sf999']) {
            const ws = await open(d, u, 'd');
            const got = await msgs(ws, accepted200.length, 5000,
                                   `the accepted messages on ${u}`);
            assert.deepStrictEqual(got.map((f) => f.json.id),
                                   accepted200.map((a) => a.id),
                                   `${u}: every accepted one, in order`);
            got.forEach((f, i) => checkFrame(f, accepted200[i].id, 'a', 1,
                                             accepted200[i].raw, u));
            assert.deepStrictEqual((await settle(ws)).map((f) => f.json.id),
                                   [], `${u}: nothing of the refused ones`);
            ws.destroy();
        }
    });
});

test('a backed-up worker channel holds the API back: with a worker '
     + 'stopped, pushes for its clients wait unanswered instead of piling '
     + 'up; once it runs again every push is answered and delivered', T,
     async () => {
    /* the client takes up to 400 x 3 KB at once: a queue bound above
     * that */
    await L.withPushd(conf({ room: { output_limit: '2m' } }), async (d) => {
        /* clients until one is on each worker */
        const ws = [];
        const slotOf = {};
        for (let i = 0; i < 40 && new Set(Object.values(slotOf)).size < 2;
             i++) {
            const uid = `bp${i}`;
            ws.push(await open(d, uid, 'd1'));
            slotOf[uid] = (await presence(d, uid)).connections[0].worker;
        }
        const st = (await L.centerGet(d, '/v1/stats')).json;
        assert.strictEqual(st.workers.length, 2, JSON.stringify(st));
        const uid = Object.keys(slotOf)[0];
        const stopped = st.workers.find((w) => w.slot === slotOf[uid]);
        const client = ws[0];

        /* pushes of 3000 bytes for a client of the stopped worker, 40 at
         * a time until the other worker holds one back: those it takes
         * fill the channel (128 KB), then wait.  Rounds, because
         * SO_REUSEPORT decides how many land on the running worker */
        const data = JSON.stringify('s'.repeat(3000));
        process.kill(stopped.pid, 'SIGSTOP');
        const pending = [];
        let waited = 0;
        try {
            while (waited === 0) {
                assert.ok(pending.length < 400, 'pushd_api_waited_total '
                          + `still 0 after ${pending.length} pushes`);
                for (let i = 0; i < 40; i++) {
                    const n = pending.length;
                    pending.push(push(d, rawBody({
                        app: 'a', uids: [uid], qos: 1, data,
                    }), { timeout: 60000 }).then((r) => accepted(r,
                                                               `push ${n}`)));
                }

                /* the other worker counts what it holds back (a request
                 * that lands on the stopped one gets no answer:
                 * retried) */
                await L.waitFor(async () => {
                    try {
                        const m = await L.metrics(d, { timeout: 300 });
                        waited = m.get('pushd_api_waited_total') || 0;
                    } catch (e) {
                        return false;
                    }
                    return waited > 0;
                }, 3000, 'pushd_api_waited_total above 0').catch(() => {});
            }
        } finally {
            process.kill(stopped.pid, 'SIGCONT');
        }

        const ids = (await Promise.all(pending)).map((r) => r.id);
        assert.strictEqual(new Set(ids).size, ids.length, 'ids are unique');

        /* every one arrives, once; then the acks empty the store */
        const seen = new Set();
        while (seen.size < ids.length) {
            const f = await nextMsg(client, () => true, 10000,
                                    `msg ${seen.size + 1} of ${ids.length}`);
            assert.ok(!seen.has(f.json.id), `${f.json.id} came twice`);
            assert.ok(ids.includes(f.json.id), `${f.json.id} was pushed`);
            assert.ok(f.text.includes(data), 'the data as sent');
            seen.add(f.json.id);
        }
        for (let i = 0; i < ids.length; i += 60) {
            await ack(client, ids.slice(i, i + 60));
        }
        const q = await L.metrics(d);
        assert.strictEqual(q.get('pushd_channel_full_total'), 0,
                           'no batch was dropped');
        assert.ok(q.get('pushd_api_waited_total') >= waited, q.text);
        for (const w of ws) {
            w.destroy();
        }
    });
});

test('a worker stopped for longer than 5 s: the pushes waiting for its '
     + 'channel are answered 503 and never delivered; the others arrive '
     + 'once it runs again', T, async () => {
    await L.withPushd(conf({ room: { output_limit: '1m' } }), async (d) => {
        const ws = [];
        const slotOf = {};
        for (let i = 0; i < 40 && new Set(Object.values(slotOf)).size < 2;
             i++) {
            const uid = `bq${i}`;
            ws.push(await open(d, uid, 'd1'));
            slotOf[uid] = (await presence(d, uid)).connections[0].worker;
        }
        const st = (await L.centerGet(d, '/v1/stats')).json;
        const uid = Object.keys(slotOf)[0];
        const stopped = st.workers.find((w) => w.slot === slotOf[uid]);
        const client = ws[0];
        const data = JSON.stringify('q'.repeat(3000));

        process.kill(stopped.pid, 'SIGSTOP');
        let pending;
        const answers = [];
        try {
            /*
             * Only the pushes whose connection the running worker took
             * reach the channel, and about 50 of 3 KB back it up: 240
             * make about 120 land there, where 120 fell short of 50 in
             * one run of five (the kernel spreads connections at random)
             */
            pending = Array.from({ length: 240 }, () => push(d, rawBody({
                app: 'a', uids: [uid], qos: 1, data,
            }), { timeout: 30000 }).then((r) => {
                answers.push(r.status);
                return r;
            }));

            /* parked ones are let go with a 503 after 5 s */
            await L.waitFor(async () => answers.includes(503), 15000,
                            'a 503 for a push that waited too long');
        } finally {
            process.kill(stopped.pid, 'SIGCONT');
        }

        const rs = await Promise.all(pending);
        for (const r of rs) {
            assert.ok(r.status === 200 || r.status === 503,
                      `${r.status} ${r.body}`);
            if (r.status === 503) {
                assert.match(r.json.error, /backed up/, r.body);
            }
        }
        const ids = rs.filter((r) => r.status === 200)
            .map((r) => accepted(r, 'a push that was taken').id);
        assert.ok(ids.length > 0, 'those on the stopped worker were taken');

        /* every taken one arrives once; a refused one never does */
        const seen = new Set();
        while (seen.size < ids.length) {
            const f = await nextMsg(client, () => true, 10000,
                                    `msg ${seen.size + 1} of ${ids.length}`);
            assert.ok(ids.includes(f.json.id), `${f.json.id} was taken`);
            assert.ok(!seen.has(f.json.id), `${f.json.id} came twice`);
            seen.add(f.json.id);
        }
        for (let i = 0; i < ids.length; i += 60) {
            await ack(client, ids.slice(i, i + 60));
        }
        client.sendJson({ op: 'ping' });
        const extra = await client.next((f) => isMsg(f) || (f.json
            && f.json.op === 'pong'), 5000, 'a pong after the last msg');
        assert.ok(!isMsg(extra), `no more messages: ${extra.text}`);
        for (const w of ws) {
            w.destroy();
        }
    });
});

