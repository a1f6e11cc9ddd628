'use strict';
/*
 * resume.test.js: flash-reconnect resume (room.linger, &sid=, resumed).
 * A client whose socket drops without a close frame gets its session
 * back with a reconnect carrying its sid: the qos 0 and qos 1 messages
 * of the gap, each once, in order, on whichever worker the reconnect
 * lands (the socket is handed to the session's worker).  Clean closes,
 * kicks, expired lingers and unknown sids are fresh sessions.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 60000 };

function conf(o = {}) {
    return {
        workers: o.workers || 2,
        top: {
            register: { memory: '8m' },
            saver: { memory: '16m' },
        },
        room: Object.assign({ auth_secret: W.SECRET, linger: '10s' },
                            o.room || {}),
    };
}

async function push(d, uid, data, qos = 0, app = 'a') {
    const r = await L.centerPost(d, '/v1/push',
                                 { app, uids: [uid], data, qos });
    assert.strictEqual(r.status, 200, r.body);
    return r.json;
}

/* the msg frames of ws until one carries data `last`; acks qos 1 */
async function until(ws, last, ack = true) {
    const got = [];
    for (;;) {
        const m = (await ws.next((f) => f.json && f.json.op === 'msg', 5000,
                                 `the message ${JSON.stringify(last)}`))
            .json;
        got.push(m);
        if (ack && m.qos === 1) {
            ws.sendJson({ op: 'ack', ids: [m.id] });
        }
        if (JSON.stringify(m.data) === JSON.stringify(last)) {
            return got;
        }
    }
}

async function presence(d, uid) {
    const r = await L.centerGet(d, `/v1/users/${uid}`);
    assert.strictEqual(r.status, 200, r.body);
    return JSON.parse(r.body);
}

async function stat(d, name) {
    return (await L.metrics(d)).get(name);
}

/* the worker pid serving a raw client */
function owner(d, ws) {
    return L.connOwner(d.roomPort, ws.sock.localPort);
}

test('a dropped connection resumes with what it missed, once, in order',
     T, async () => {
    await L.withPushd(conf({ workers: 1 }), async (d) => {
        const ws = await W.rawOpen(d.roomPort, 'r1', 'phone');
        assert.strictEqual(ws.welcome.resumed, false);
        const sid = ws.welcome.sid;

        /* before the drop: one qos 1, acked; one read and not acked (the
         * client may not have handled it: it comes again, first) */
        await push(d, 'r1', { n: 0 }, 1);
        await until(ws, { n: 0 });
        await push(d, 'r1', { n: 0.5 }, 1);
        await until(ws, { n: 0.5 }, false);

        ws.destroy();
        await L.waitFor(async () => await stat(d, 'pushd_sessions_lingering')
                        === 1, 5000, 'the session lingering');
        /* presence tells it lingers: not online, not gone */
        let p = await presence(d, 'r1');
        assert.strictEqual(p.online, false, JSON.stringify(p));
        assert.deepStrictEqual(p.connections.map((x) => x.state),
                               ['lingering']);

        /* while away: qos 0 and qos 1, interleaved */
        for (let i = 1; i <= 6; i++) {
            await push(d, 'r1', { n: i }, i % 2);
        }

        const back = await W.rawOpen(d.roomPort, 'r1', 'phone',
                                     { extra: `sid=${sid}` });
        assert.strictEqual(back.welcome.resumed, true);
        assert.strictEqual(back.welcome.sid, sid, 'the same session');
        /* a sentinel after, so nothing more can come unseen */
        await push(d, 'r1', { n: 'end' }, 1);
        const got = await until(back, { n: 'end' });
        /* the unacked one again, then the gap's, each once, in the order
         * sent across qos 0 and qos 1 */
        assert.deepStrictEqual(got.map((m) => m.data.n),
                               [0.5, 1, 2, 3, 4, 5, 6, 'end']);
        assert.deepStrictEqual(got.map((m) => m.qos), [1, 1, 0, 1, 0, 1, 0, 1]);
        assert.strictEqual(await stat(d, 'pushd_sessions_lingering'), 0);
        assert.strictEqual(await stat(d, 'pushd_sessions_resumed_total'), 1);
        p = await presence(d, 'r1');
        assert.strictEqual(p.online, true);
        assert.deepStrictEqual(p.connections.map((x) => x.state), ['online']);

        /* the resumed session works: ping and bind */
        back.sendJson({ op: 'bind', app: 'b' });
        back.sendJson({ op: 'ping' });
        await back.op('pong');
        await push(d, 'r1', 'on b', 0, 'b');
        const m = await back.next((f) => f.json && f.json.op === 'msg',
                                  5000, 'on b');
        assert.strictEqual(m.json.data, 'on b');
        back.destroy();
    });
});

test('resume on another worker: the socket goes to the session\'s worker',
     T, async () => {
    await L.withPushd(conf({ workers: 2 }), async (d) => {
        let ws = await W.rawOpen(d.roomPort, 'r2', 'phone');
        const sid = ws.welcome.sid;
        const home = owner(d, ws);
        assert.ok(home, 'the serving worker is known');
        const handed = () => (d.logText().match(/resume handed to worker/g)
                              || []).length;

        /* SO_REUSEPORT picks a worker by the client's port: reconnect
         * until two landed on the other one and were handed over */
        for (let i = 0; i < 40 && handed() < 2; i++) {
            ws.destroy();
            await L.waitFor(async () =>
                await stat(d, 'pushd_sessions_lingering') === 1, 5000,
                'lingering');
            await push(d, 'r2', { i }, 0);
            await push(d, 'r2', { i, q: 1 }, 1);
            ws = await W.rawOpen(d.roomPort, 'r2', 'phone',
                                 { extra: `sid=${sid}` });
            assert.strictEqual(ws.welcome.resumed, true, `try ${i}`);
            assert.strictEqual(ws.welcome.sid, sid);
            /* the qos 0 one may still be on its way through a channel
             * when the saver's qos 1 one is sent: the order across the
             * two is not promised; both arrive, once each */
            const want = [{ i }, { i, q: 1 }].map((x) => JSON.stringify(x));
            const got = [];
            while (!want.every((w) => got.includes(w))) {
                const f = await ws.next((x) => x.json && x.json.op === 'msg',
                                        5000, `try ${i}'s messages`);
                got.push(JSON.stringify(f.json.data));
                if (f.json.qos === 1) {
                    ws.sendJson({ op: 'ack', ids: [f.json.id] });
                }
            }
            assert.deepStrictEqual(got.sort(), want.sort());
            /* whoever accepted it, the session's worker serves it */
            await L.waitFor(() => owner(d, ws) === home, 5000,
                            'the socket in the session\'s worker only');
        }
        assert.ok(handed() >= 2, `handed over ${handed()} times`);
        ws.destroy();
    });
});

test('no resume: clean close, kick, expired linger, bogus sid; qos 1 comes '
     + 'back from the saver, qos 0 of the gap is gone', T, async () => {
    await L.withPushd(conf({ workers: 1, room: { linger: '300ms' } }),
                      async (d) => {
        /* a clean close ends the session at once */
        let ws = await W.rawOpen(d.roomPort, 'r3', 'phone');
        let sid = ws.welcome.sid;
        ws.send({ opcode: W.OP.CLOSE, payload: Buffer.from([3, 232]) });
        await ws.waitEnd();
        await L.waitFor(async () => (await presence(d, 'r3'))
                        .connections.length === 0, 5000,
                        'gone at once after a clean close');
        ws = await W.rawOpen(d.roomPort, 'r3', 'phone',
                             { extra: `sid=${sid}` });
        assert.strictEqual(ws.welcome.resumed, false);

        /* expired: qos 1 reloaded, qos 0 lost by design */
        sid = ws.welcome.sid;
        ws.destroy();
        await L.waitFor(async () => (await presence(d, 'r3'))
                        .connections.length === 0, 5000,
                        'the linger expired');
        await push(d, 'r3', 'q0', 0);
        await push(d, 'r3', 'q1', 1);
        ws = await W.rawOpen(d.roomPort, 'r3', 'phone',
                             { extra: `sid=${sid}` });
        assert.strictEqual(ws.welcome.resumed, false);
        await push(d, 'r3', 'end', 1);
        const got = await until(ws, 'end');
        assert.deepStrictEqual(got.map((m) => m.data), ['q1', 'end']);

        /* a bogus sid, and another device's sid: fresh sessions */
        const other = await W.rawOpen(d.roomPort, 'r3', 'tablet');
        for (const bad of ['nonsense', `${ws.welcome.sid}0`,
                           other.welcome.sid]) {
            const x = await W.rawOpen(d.roomPort, 'r3', 'phone2',
                                      { extra: `sid=${encodeURIComponent(bad)}` });
            assert.strictEqual(x.welcome.resumed, false, bad);
            x.destroy();
        }
        assert.strictEqual(await stat(d, 'pushd_sessions_resumed_total'), 0);
        /* each refusal says why, for the operator's resumed:false */
        const why = /resume: no session of uid "r3" has this sid: a fresh/g;
        assert.ok((d.logText().match(why) || []).length >= 3,
                  'the refused resumes are logged');

        /* a kicked session does not linger */
        const k = await L.centerPost(d, '/v1/users/r3/kick',
                                     { device: 'phone' });
        assert.strictEqual(k.status, 200, k.body);
        await ws.waitEnd();
        const y = await W.rawOpen(d.roomPort, 'r3', 'phone',
                                  { extra: `sid=${ws.welcome.sid}` });
        assert.strictEqual(y.welcome.resumed, false);
        y.destroy();
        other.destroy();
    });
});

test('uids of 16, 17 and 64 bytes (in place, copied out): own messages, '
     + 'resume on either worker, presence, kick', T, async () => {
    await L.withPushd(conf({ workers: 2 }), async (d) => {
        /* PD_ROOM_UID_INLINE is 16: one kept in the room connection, two
         * in a copy of their own; same prefix, so a mix-up shows */
        const uids = ['L'.repeat(16), 'L'.repeat(17), 'L'.repeat(64)];
        const ws = [];
        for (const u of uids) {
            ws.push(await W.rawOpen(d.roomPort, u, 'phone'));
        }
        for (const [i, u] of uids.entries()) {
            await push(d, u, { to: u, n: 0 }, 1);
            assert.deepStrictEqual((await until(ws[i], { to: u, n: 0 }))
                                   .map((m) => m.data.to), [u],
                                   `${u.length} bytes: its own message`);
        }

        /* dropped, pushed to, resumed: a reconnect may land on the other
         * worker, which hands the socket to the session's */
        const sids = ws.map((w) => w.welcome.sid);
        for (const w of ws) {
            w.destroy();
        }
        await L.waitFor(async () => await stat(d, 'pushd_sessions_lingering')
                        === uids.length, 5000, 'the sessions lingering');
        for (const u of uids) {
            await push(d, u, { to: u, n: 1 }, 1);
            await push(d, u, { to: u, n: 2 }, 0);
        }
        for (const [i, u] of uids.entries()) {
            for (let k = 0; k < 2; k++) {
                const back = await W.rawOpen(d.roomPort, u, 'phone',
                                             { extra: `sid=${sids[i]}` });
                assert.strictEqual(back.welcome.resumed, true,
                                   `${u.length} bytes: resumed`);
                sids[i] = back.welcome.sid;
                if (k === 0) {
                    const got = await until(back, { to: u, n: 2 });
                    assert.deepStrictEqual(got.map((m) => m.data),
                        [{ to: u, n: 1 }, { to: u, n: 2 }],
                        `${u.length} bytes: the gap, once, in order`);
                    back.destroy();
                    await L.waitFor(async () =>
                        (await presence(d, u)).connections.length === 1
                        && (await presence(d, u)).online === false, 5000,
                        `${u.length} bytes lingering again`);
                } else {
                    ws[i] = back;
                }
            }
        }
        assert.strictEqual(await stat(d, 'pushd_sessions_resumed_total'),
                           2 * uids.length);

        for (const [i, u] of uids.entries()) {
            const p = await presence(d, u);
            assert.strictEqual(p.online, true, `${u.length} bytes online`);
            assert.strictEqual(p.connections.length, 1, JSON.stringify(p));
            await push(d, u, { to: u, n: 3 }, 1);
            assert.deepStrictEqual((await until(ws[i], { to: u, n: 3 }))
                                   .map((m) => m.data.to), [u]);
        }

        /* a kick finds each by its whole name, and only it */
        const k = await L.centerPost(d, `/v1/users/${uids[2]}/kick`,
                                     { reason: 'long' });
        assert.strictEqual(k.status, 200, k.body);
        assert.strictEqual((await ws[2].op('kick')).reason, 'long');
        await ws[2].waitEnd();
        for (const i of [0, 1]) {
            ws[i].sendJson({ op: 'ping' });
            await ws[i].op('pong');
        }
        for (const w of ws) {
            w.destroy();
        }
    });
});

test('a flapping client: 100 drops and resumes leak nothing', T,
     async () => {
    await L.withPushd(conf({ workers: 2 }), async (d) => {
        /* at rest only the request asking is counted; the start's
         * readiness probes may still be open a moment (a sibling worker
         * may answer before the probe's worker has seen its end) */
        const base = 1;
        await L.waitFor(async () => await stat(d, 'pushd_connections')
                        === base, 15000, 'the readiness probes gone');
        let ws = await W.rawOpen(d.roomPort, 'flap', 'phone');
        const sid = ws.welcome.sid;
        for (let i = 0; i < 100; i++) {
            ws.destroy();
            await L.waitFor(async () =>
                await stat(d, 'pushd_sessions_lingering') === 1, 5000,
                `lingering ${i}`);
            ws = await W.rawOpen(d.roomPort, 'flap', 'phone',
                                 { extra: `sid=${sid}` });
            assert.strictEqual(ws.welcome.resumed, true, `resume ${i}`);
        }
        await push(d, 'flap', 'still here', 1);
        await until(ws, 'still here');
        assert.strictEqual(await stat(d, 'pushd_sessions_resumed_total'),
                           100);
        const p = await presence(d, 'flap');
        assert.strictEqual(p.connections.length, 1, JSON.stringify(p));
        ws.send({ opcode: W.OP.CLOSE, payload: Buffer.from([3, 232]) });
        await ws.waitEnd();
        await L.waitFor(async () => await stat(d, 'pushd_connections')
                        === base, 15000, 'the connections back to where '
                        + 'they were');
        /* nothing held for it: no socket, no session, no queued bytes,
         * no register entry (a leak of heap memory the sanitizer tree's
         * LeakSanitizer reports when the workers exit) */
        const m = await L.metrics(d);
        for (const name of ['pushd_websockets', 'pushd_sessions_lingering',
                            'pushd_output_queued_bytes']) {
            assert.strictEqual(m.get(name), 0, name);
        }
        assert.strictEqual((await presence(d, 'flap')).connections.length,
                           0);
    });
});

test('TLS: resumed on the same worker; on another a fresh session, and the '
     + 'lingering one ends at once', T, async () => {
    const c = conf({ workers: 2 });
    c.roomSsl = true;
    await L.withPushd(c, async (d) => {
        const tls = { tls: true };
        let ws = await W.rawOpen(d.sslPort, 't1', 'phone', tls);
        let sid = ws.welcome.sid;
        let same = 0, fresh = 0;
        for (let i = 0; i < 40 && (same < 1 || fresh < 1); i++) {
            ws.destroy();
            await L.waitFor(async () => (await presence(d, 't1'))
                            .connections.every((x) => x.state
                                               === 'lingering'), 5000,
                            'lingering');
            await push(d, 't1', { i }, 0);
            ws = await W.rawOpen(d.sslPort, 't1', 'phone',
                                 Object.assign({ extra: `sid=${sid}` }, tls));
            if (ws.welcome.resumed) {
                same++;
                const m = await ws.next((f) => f.json && f.json.op === 'msg',
                                        5000, 'the gap\'s message');
                assert.deepStrictEqual(m.json.data, { i });
            } else {
                fresh++;
                /* the old session ended: only the new one is listed */
                await L.waitFor(async () => {
                    const p = await presence(d, 't1');
                    return p.connections.length === 1
                        && p.connections[0].state === 'online';
                }, 5000, 'the lingering session gone');
                sid = ws.welcome.sid;
            }
        }
        assert.ok(same >= 1 && fresh >= 1, `same ${same}, fresh ${fresh}`);
        ws.destroy();
    });
});

/*
 * A cluster of two nodes on one Redis and one PostgreSQL: a session
 * resumes on its own node; on the other node the reconnect is a fresh
 * session that gets the qos 1 messages from the cluster's saver.
 */
test('cluster: resumed on its node; on another node a fresh session, '
     + 'nothing stored is lost', { timeout: 120000 }, async () => {
    const S = require('./servers.js');
    const redis = await S.startRedis(await L.freePort());
    const pg = await S.startPostgres();
    const node = (name) => ({
        workers: 2,
        top: {
            node_id: name,
            register: { backend: 'redis', redis: [`127.0.0.1:${redis.port}`],
                        memory: '8m', node_ttl: '3s', timeout: '500ms' },
            saver: { memory: '8m', backend: 'redis', timeout: '1s',
                     postgres: pg.conninfo },
        },
        room: { auth_secret: W.SECRET, linger: '10s' },
    });
    try {
        await L.withPushd(node('node-a'), (a) =>
        L.withPushd(node('node-b'), async (b) => {
            /* each node's store is ready once a qos 1 push is taken
             * (it answers 503 while it reloads from PostgreSQL) */
            for (const n of [a, b]) {
                await L.waitFor(async () => (await L.centerPost(n,
                    '/v1/push', { app: 'a', uids: ['warmup'], data: 1,
                                  qos: 1 })).status === 200, 10000,
                                'the store ready');
            }
            let ws = await W.rawOpen(a.roomPort, 'cr', 'phone');
            const sid = ws.welcome.sid;
            /* one read and not acked before the drop */
            await push(a, 'cr', 'read, not acked', 1);
            await until(ws, 'read, not acked', false);
            ws.destroy();
            await L.waitFor(async () => (await presence(a, 'cr'))
                            .connections.some((x) => x.state
                                              === 'lingering'), 5000,
                            'lingering, seen in the cluster');
            const out = async () => (await L.metrics(a))
                .get('pushd_frames_out_total');
            const before = await out();
            await push(b, 'cr', 'q0 via b', 0);
            await push(b, 'cr', 'q1 via b', 1);
            /* both came through Redis and wait in the session */
            await L.waitFor(async () => await out() >= before + 2, 5000,
                            'the gap\'s messages kept on node-a');

            /* on its node: resumed; the unacked one first (from the
             * saver, whose answer the output waits for), then the gap's
             * in the order sent, the qos 1 one not twice */
            ws = await W.rawOpen(a.roomPort, 'cr', 'phone',
                                 { extra: `sid=${sid}` });
            assert.strictEqual(ws.welcome.resumed, true);
            await push(a, 'cr', 'end', 0);
            let got = await until(ws, 'end', false);
            assert.deepStrictEqual(got.map((m) => m.data),
                                   ['read, not acked', 'q0 via b',
                                    'q1 via b', 'end']);
            ws.sendJson({ op: 'ack', ids: [got[0].id] });
            const q1 = got[2];

            /* dropped again, back on the other node: fresh, and the qos 1
             * not acked comes from the saver */
            ws.destroy();
            await L.waitFor(async () => (await presence(b, 'cr'))
                            .connections.some((x) => x.state
                                              === 'lingering'), 5000,
                            'lingering again');
            await push(a, 'cr', 'q1 via a', 1);
            const wb = await W.rawOpen(b.roomPort, 'cr', 'phone',
                                       { extra: `sid=${sid}` });
            assert.strictEqual(wb.welcome.resumed, false);
            got = await until(wb, 'q1 via a');
            assert.deepStrictEqual(got.map((m) => m.data),
                                   ['q1 via b', 'q1 via a']);
            assert.strictEqual(got[0].id, q1.id);
            wb.destroy();
        }));
    } finally {
        await redis.stop();
        pg.remove();
    }
});
