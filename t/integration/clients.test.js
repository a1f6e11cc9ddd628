'use strict';
/*
 * clients.test.js: the project's own clients, which must work where Node
 * has no WebSocket (Debian 12's Node 18): RawWebSocket of ws_client.js,
 * the stand-in the other tests use there, tested here on every Node; and
 * auto/demo_client.mjs, the client of the demo and of README.
 */

const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawn } = require('node:child_process');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 60000 };
const ROOT = path.resolve(__dirname, '..', '..');
const CONF = {
    workers: 2,
    top: { register: { memory: '8m' }, saver: { memory: '16m' } },
    room: { auth_secret: W.SECRET },
};

/* resolves with the first event of type on ws (a timeout rejects) */
function once(ws, type, ms = 5000) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(
            `no ${type} event within ${ms} ms`)), ms);
        ws.addEventListener(type, (ev) => {
            clearTimeout(timer);
            resolve(ev);
        }, { once: true });
    });
}

/*
 * Every message event of ws from now on, parsed and kept: a frame that
 * comes before the test waits for it (a push's msg ahead of the push's
 * 200) is not lost, as it was with a listener added per wait.
 * next(pred) takes the first kept one that pred accepts, dropping the
 * ones before it.
 */
function inbox(ws) {
    const q = [];
    let wake = null;
    ws.addEventListener('message', (ev) => {
        q.push(JSON.parse(ev.data));
        if (wake) {
            wake();
        }
    });
    return {
        async next(pred = () => true, ms = 5000) {
            const end = Date.now() + ms;
            for (;;) {
                const i = q.findIndex(pred);
                if (i >= 0) {
                    const [m] = q.splice(0, i + 1).slice(-1);
                    return m;
                }
                q.length = 0;
                const left = end - Date.now();
                if (left <= 0) {
                    throw new Error(`no message event within ${ms} ms`);
                }
                let timer;
                await new Promise((r) => {
                    wake = r;
                    timer = setTimeout(r, left);
                });
                clearTimeout(timer);
                wake = null;
            }
        },
    };
}

test('RawWebSocket: open, messages, ack, a kick closes it 1008 "kicked"', T,
     async () => {
    await L.withPushd(CONF, async (d) => {
        const url = W.wsUrl(d.roomPort, W.connectPath('rw', 'phone',
                                                      { apps: ['chat'] }));
        const ws = new W.RawWebSocket(url);
        let viaProperty = 0;
        ws.onmessage = () => { viaProperty++; };
        const box = inbox(ws);
        await once(ws, 'open');
        assert.strictEqual(ws.readyState, 1);
        assert.strictEqual((await box.next()).op, 'welcome');

        ws.send('{"op":"ping"}');
        assert.strictEqual((await box.next()).op, 'pong');

        const acked = (await L.metrics(d)).get('pushd_messages_acked_total');
        const r = await L.centerPost(d, '/v1/push', {
            app: 'chat', uids: ['rw'], data: { text: 'hi' } });
        assert.strictEqual(r.status, 200, r.body);
        const m = await box.next((x) => x.op === 'msg');
        assert.deepStrictEqual(m, { op: 'msg', id: r.json.id, app: 'chat',
                                    qos: 1, data: { text: 'hi' } });
        ws.send(JSON.stringify({ op: 'ack', ids: [m.id] }));
        await L.waitFor(async () => (await L.metrics(d))
                        .get('pushd_messages_acked_total') === acked + 1,
                        5000, 'the ack to be counted');
        assert.strictEqual(viaProperty, 3, 'onmessage saw every message');

        const closed = once(ws, 'close');
        const k = await L.centerPost(d, '/v1/users/rw/kick',
                                     { reason: 'logged out' });
        assert.deepStrictEqual(k.json, { uid: 'rw', kicked: 1 });
        assert.deepStrictEqual(await box.next(),
                               { op: 'kick', reason: 'logged out' });
        const c = await closed;
        assert.deepStrictEqual([c.code, c.reason, c.wasClean],
                               [1008, 'kicked', true]);
        assert.strictEqual(ws.readyState, 3);
    });
});

test('RawWebSocket: a refused upgrade is an error that says why, then '
     + 'close 1006; close() is echoed', T, async () => {
    await L.withPushd(CONF, async (d) => {
        const bad = new W.RawWebSocket(W.wsUrl(d.roomPort, W.connectPath(
            'rw', 'phone', { secret: 'another-secret-0123456789' })));
        const closed = once(bad, 'close');
        const e = await once(bad, 'error');
        assert.strictEqual(e.message, 'the upgrade was refused: 401 '
                           + '{"error":"bad token"}');
        assert.strictEqual((await closed).code, 1006);

        const ws = new W.RawWebSocket(W.wsUrl(d.roomPort,
                                              W.connectPath('rw', 'phone')));
        await once(ws, 'open');
        const bye = once(ws, 'close');
        ws.close(1000, 'bye');
        assert.strictEqual(ws.readyState, 2);
        const c = await bye;
        assert.deepStrictEqual([c.code, c.wasClean], [1000, true]);
    });
});

/*
 * Runs auto/demo_client.mjs with node and no flag (the built-in WebSocket
 * from Node 22, RawWebSocket before): {child, out(), exited}.
 */
function demoClient(d, secret, uid) {
    const child = spawn(process.execPath, [
        path.join(ROOT, 'auto', 'demo_client.mjs'),
        `ws://127.0.0.1:${d.roomPort}`, secret, uid,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (c) => { text += c; });
    child.stderr.on('data', (c) => { text += c; });
    const exited = new Promise((resolve) => child.on('close', resolve));
    return { child, out: () => text, exited };
}

test('auto/demo_client.mjs acks a push and leaves on a kick, saying why', T,
     async () => {
    await L.withPushd(CONF, async (d) => {
        const c = demoClient(d, W.SECRET, 'alice');
        try {
            await L.waitFor(() => c.out().includes('"op":"welcome"'), 5000,
                            'the welcome');
            assert.ok(c.out().startsWith(`client: connected to `
                + `ws://127.0.0.1:${d.roomPort} as alice/phone, apps `
                + 'chat,news\n'), c.out());
            const r = await L.centerPost(d, '/v1/push', {
                app: 'chat', uids: ['alice'], data: { text: 'hi' } });
            assert.strictEqual(r.status, 200, r.body);
            await L.waitFor(() => c.out().includes(
                `client: -> {"op":"ack","ids":["${r.json.id}"]}\n`), 5000,
                'the ack');
            await L.centerPost(d, '/v1/users/alice/kick',
                               { device: 'phone', reason: 'logged out' });
            assert.strictEqual(await c.exited, 0, c.out());
            assert.ok(c.out().endsWith('client: <- {"op":"kick","reason":'
                + '"logged out"}\nclient: kicked ("logged out"); exiting\n'),
                      c.out());
        } finally {
            c.child.kill('SIGKILL');
        }
    });
});

test('auto/demo_client.mjs with a wrong secret says it cannot connect and '
     + 'exits 1', T, async () => {
    await L.withPushd(CONF, async (d) => {
        const c = demoClient(d, 'not-the-secret-0123456789', 'alice');
        assert.strictEqual(await c.exited, 1, c.out());
        const head = `client: cannot connect to ws://127.0.0.1:${d.roomPort}: `;
        /* Node 22's own WebSocket says less than RawWebSocket */
        if (Number(process.versions.node.split('.')[0]) < 22) {
            assert.strictEqual(c.out(), `${head}the upgrade was refused: 401 `
                + '{"error":"bad token"} (a wrong secret gets 401; is pushd '
                + 'running?); exiting\n');
        } else {
            assert.ok(c.out().startsWith(head) && c.out().endsWith(
                '(a wrong secret gets 401; is pushd running?); exiting\n'),
                      c.out());
        }
    });
});
