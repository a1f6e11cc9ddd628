'use strict';
/*
 * security.test.js: regression tests for what a red-team review of the
 * center and the room reproduced (issue 10): request smuggling through a
 * body larger than the head buffer, the key and the address checked
 * before a body is read, handshakes that fail their token not using up
 * the handshake rate, and the small ones (duplicate uids, frames cut
 * inside a UTF-8 character, long kick reasons).
 */

const test = require('node:test');
const assert = require('node:assert');
const net = require('node:net');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 120000 };

/*
 * Writes the chunks one by one on one connection (no Nagle, a turn of
 * the loop between them, so the server may read them apart) and
 * collects every byte until the server closes.  Returns the parsed
 * responses and whatever did not parse.
 */
function sendSplit(port, chunks, timeout = 10000) {
    return new Promise((resolve) => {
        const got = [];
        let closed = false;
        const sock = net.connect({ port, host: '127.0.0.1' });
        const timer = setTimeout(() => finish(), timeout);
        const finish = () => {
            clearTimeout(timer);
            sock.destroy();
            const text = Buffer.concat(got).toString('latin1');
            resolve({ text, closed, responses: L.parseResponses(text) });
        };
        sock.setNoDelay(true);
        sock.on('data', (c) => got.push(c));
        sock.on('end', () => { closed = true; finish(); });
        sock.on('error', () => { closed = true; finish(); });
        sock.once('connect', async () => {
            for (const c of chunks) {
                if (sock.destroyed) {
                    return;
                }
                sock.write(c);
                await new Promise((r) => setImmediate(r));
            }
        });
    });
}

/* bytes cut at the given offsets */
function cut(bytes, at) {
    const out = [];
    let prev = 0;
    for (const p of at.filter((x) => x > 0 && x < bytes.length)
                      .sort((a, b) => a - b)) {
        out.push(bytes.subarray(prev, p));
        prev = p;
    }
    out.push(bytes.subarray(prev));
    return out;
}

function post(d, target, body, extra = '', key = d.apiKey) {
    const b = Buffer.from(body);
    return Buffer.concat([Buffer.from(
        `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n`
        + (key ? `Authorization: Bearer ${key}\r\n` : '')
        + 'Content-Type: application/json\r\n'
        + `Content-Length: ${b.length}\r\n${extra}\r\n`), b]);
}

function get(d, target, extra = '') {
    return Buffer.from(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n`
                       + `Authorization: Bearer ${d.apiKey}\r\n${extra}\r\n`);
}

test('center: a body larger than the head buffer, split anywhere, then '
     + 'a pipelined request: one answer each, its own', T, async () => {
    await L.withPushd({ workers: 1, top: { register: { memory: '8m' } } },
                      async (d) => {
        const uids = Array.from({ length: 1000 }, (_, i) => `user-00000000-${i}`);
        const push = post(d, '/v1/push', JSON.stringify({
            app: 'a', uids, data: { n: 1 }, qos: 0 }));
        assert.ok(push.length > 12000, `push of ${push.length} bytes`);
        const stats = get(d, '/v1/stats', 'Connection: close\r\n');
        const all = Buffer.concat([push, stats]);
        const head = push.indexOf('\r\n\r\n') + 4;
        const splits = [
            [], [head], [head - 1], [head + 1], [100], [4096], [8191],
            [8192], [8193], [head, 8192], [push.length - 1],
            [push.length], [push.length + 1], [head + 10, push.length + 5],
            Array.from({ length: 40 }, (_, i) => (i + 1) * 331),
        ];
        for (const at of splits) {
            const r = await sendSplit(d.centerPort, cut(all, at));
            const what = `split at ${JSON.stringify(at)}: `
                       + JSON.stringify(r.text.slice(0, 400));
            assert.strictEqual(r.responses.length, 2, what);
            assert.strictEqual(r.responses[0].status, 200, what);
            assert.strictEqual(typeof JSON.parse(r.responses[0].body).id,
                               'string', what);
            assert.strictEqual(r.responses[1].status, 200, what);
            assert.ok('workers' in JSON.parse(r.responses[1].body), what);
            assert.ok(r.closed, what);
            /* nothing after the two answers */
            const rest = r.text.length
                - r.responses.reduce((n, x) => n + x.raw.length, 0);
            assert.strictEqual(rest, 0, what);
        }
    });
});

test('center: a request hidden in an unrouted body is not served', T,
     async () => {
    await L.withPushd({ workers: 1 }, async (d) => {
        const inner = get(d, '/v1/stats').toString();
        const body = inner + 'x'.repeat(9000 - inner.length);
        const all = Buffer.concat([post(d, '/nothing', body),
                                   get(d, '/v1/workers',
                                       'Connection: close\r\n')]);
        for (const at of [[], [200], [8192], [9100]]) {
            const r = await sendSplit(d.centerPort, cut(all, at));
            const what = JSON.stringify(r.text.slice(0, 400));
            assert.strictEqual(r.responses.length, 2, what);
            assert.strictEqual(r.responses[0].status, 404, what);
            assert.strictEqual(r.responses[1].status, 200, what);
            assert.ok(r.closed, what);
        }
    });
});

test('center: without the key, a smuggled kick is never run; the 401 '
     + 'comes after the head and closes', T, async () => {
    await L.withPushd({ workers: 1, room: { auth_secret: W.SECRET },
                        top: { register: { memory: '8m' } } }, async (d) => {
        const bob = await W.connect(d.roomPort, 'bob', 'phone');
        const smuggled = 'POST /v1/users/bob/kick HTTP/1.1\r\nX-Pad: ';
        const body = smuggled + 'p'.repeat(12000);
        const proxied = post(d, '/v1/push', JSON.stringify({
            app: 'a', uids: ['nobody'], data: 1, qos: 0 }));
        const all = Buffer.concat([post(d, '/v1/push', body, '', null),
                                   proxied]);
        for (const at of [[], [300], [8192], [12100]]) {
            const r = await sendSplit(d.centerPort, cut(all, at));
            const what = JSON.stringify(r.text.slice(0, 400));
            assert.strictEqual(r.responses.length, 1, what);
            assert.strictEqual(r.responses[0].status, 401, what);
            assert.match(r.responses[0].headers.connection, /close/, what);
            assert.ok(r.closed, what);
        }
        const u = await L.centerGet(d, '/v1/users/bob');
        assert.strictEqual(u.json.online, true, u.body);
        assert.strictEqual(bob.msgs.items.filter((m) => m.op === 'kick')
                           .length, 0);
        bob.close();
    });
});

/* a room and a register on one worker, with the room's extra options */
function roomConf(room = {}, top = {}) {
    return { workers: 1,
             room: Object.assign({ auth_secret: W.SECRET }, room),
             top: Object.assign({ register: { memory: '8m' } }, top) };
}

test('center: outside center.allow, or without the key, a 1 MB body is '
     + 'never waited for', T, async () => {
    const head = (key) => 'POST /v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\n'
        + (key ? `Authorization: Bearer ${key}\r\n` : '')
        + 'Content-Length: 1000000\r\n\r\n';
    await L.withPushd({ workers: 1, center: { allow: ['10.0.0.0/8'] } },
                      async (d) => {
        /* not a byte sent: the 403 comes at accept */
        const quiet = await L.httpRaw(d.centerPort, [], { timeout: 5000 });
        assert.strictEqual(quiet.responses.length, 1, quiet.text);
        assert.strictEqual(quiet.responses[0].status, 403);
        assert.ok(quiet.closed, 'closed after the 403');
        const r = await L.httpRaw(d.centerPort, head(d.apiKey),
                                  { timeout: 5000 });
        assert.strictEqual(r.timedOut, false, 'answered without the body');
        assert.strictEqual(r.responses[0].status, 403, r.text);
    });
    await L.withPushd({ workers: 1 }, async (d) => {
        const r = await L.httpRaw(d.centerPort, head(null),
                                  { timeout: 5000 });
        assert.strictEqual(r.timedOut, false, 'answered without the body');
        assert.strictEqual(r.responses.length, 1, r.text);
        assert.strictEqual(r.responses[0].status, 401, r.text);
        assert.ok(r.closed, 'closed after the 401');
        /* with the key the body is waited for: no answer yet */
        const w = await L.httpRaw(d.centerPort, head(d.apiKey),
                                  { timeout: 500 });
        assert.strictEqual(w.responses.length, 0, w.text);
    });
});

test('room: bad tokens do not use up handshake_rate; a 401 closes', T,
     async () => {
    await L.withPushd(roomConf({ handshake_rate: 2 }), async (d) => {
        const bad = W.connectPath('mallory', 'pc', { token: 'f'.repeat(64) });
        const up = `GET ${bad} HTTP/1.1\r\nHost: 127.0.0.1\r\n`
            + 'Upgrade: websocket\r\nConnection: Upgrade\r\n'
            + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
            + 'Sec-WebSocket-Version: 13\r\n\r\n';
        const r = await L.httpRaw(d.roomPort, up + up + up, { timeout: 5000 });
        assert.strictEqual(r.responses.length, 1, r.text);
        assert.strictEqual(r.responses[0].status, 401, r.text);
        assert.ok(r.closed, 'closed after the 401');
        for (let i = 0; i < 3; i++) {
            const x = await L.httpRaw(d.roomPort, up, { timeout: 5000 });
            assert.strictEqual(x.responses[0].status, 401, x.text);
        }
        /* six failures in this second; the rate is 2 and still unused */
        const c = await W.connect(d.roomPort, 'alice', 'phone');
        assert.strictEqual(c.welcome.op, 'welcome');
        c.close();
    });
});

test('room: max_auth_failures per address, then 429 before the token', T,
     async () => {
    await L.withPushd(roomConf({ max_auth_failures: 3 }), async (d) => {
        const bad = W.connectPath('mallory', 'pc', { token: 'e'.repeat(64) });
        /* within one 10 s window of the bound (they start on the clock,
         * as in abuse.test.js): across a boundary the count starts over */
        await L.waitFor(() => Date.now() % 10000 < 5000, 11000,
                        'the first half of a failure window');
        for (let i = 0; i < 3; i++) {
            const r = await W.rawConnect(d.roomPort, bad);
            assert.strictEqual(r.status, 401, r.body);
        }
        const r = await W.rawConnect(d.roomPort, bad);
        assert.strictEqual(r.status, 429, r.body);
        /* the address as a whole waits out the window, a good token too */
        const g = await W.rawConnect(d.roomPort,
                                     W.connectPath('alice', 'phone'));
        assert.strictEqual(g.status, 429, g.body);
        assert.match(d.logText(), /too many failed handshakes/);
    });
});

test('room.apps: unknown apps refused on connect and bind; a bind the '
     + 'register cannot hold gets an error frame', T, async () => {
    await L.withPushd(roomConf({ apps: ['news', 'chat'] }), async (d) => {
        const r = await W.rawConnect(d.roomPort,
            W.connectPath('u1', 'p', { apps: ['news', 'evil'] }));
        assert.strictEqual(r.status, 400, r.body);
        assert.match(r.body, /unknown app/);
        const c = await W.connect(d.roomPort, 'u1', 'p', { apps: ['news'] });
        c.send({ op: 'bind', app: 'evil' });
        const e = await c.op('error');
        assert.match(e.error, /unknown app/);
        c.send({ op: 'bind', app: 'chat' });
        c.send({ op: 'ping' });
        await c.op('pong');
        assert.strictEqual(c.msgs.items.filter((m) => m.op === 'error')
                           .length, 0, JSON.stringify(c.msgs.items));
        const p = await L.centerPost(d, '/v1/push', { app: 'chat',
            uids: ['u1'], data: 'hi', qos: 0 });
        assert.strictEqual(p.json.online, 1, p.body);
        const m = await c.op('msg');
        assert.strictEqual(m.data, 'hi');
        c.close();
    });
    /* -t refuses a bad name with its position */
    await L.withPushd({ workers: 1 }, async (d) => {
        d.writeConfig({ room: { auth_secret: W.SECRET, apps: ['ok', 'b d'] } });
        const t = d.run('-t');
        assert.strictEqual(t.status, 1, t.stderr);
        assert.match(t.stderr, /:\d+:\d+: .*"apps" holds an invalid app name/,
                     t.stderr);
    });
    /* without room.apps, made-up names fill the register's table: a bind
     * that cannot be registered says so instead of failing silently */
    await L.withPushd(roomConf(), async (d) => {
        const cs = [];
        let n = 0;
        for (let i = 0; i < 128; i++) {
            const apps = Array.from({ length: 8 }, () => `x${n++}`);
            cs.push(await W.connect(d.roomPort, `f${i}`, 'p', { apps }));
        }
        const c = await W.connect(d.roomPort, 'victim', 'p', { apps: [] });
        c.send({ op: 'bind', app: 'real' });
        const e = await c.op('error');
        assert.match(e.error, /app not bound/);
        assert.ok(c.open, 'still connected');
        for (const x of cs) {
            x.close();
        }
        /* once the names are gone the same bind works */
        await L.waitFor(async () => {
            const s = await L.centerGet(d, '/v1/stats');
            return s.json.workers.reduce((n, w) => n + w.websockets, 0)
                   === 1;
        }, 10000, 'the 128 clients to be gone');
        c.send({ op: 'bind', app: 'real' });
        const p = await L.waitFor(async () => {
            const x = await L.centerPost(d, '/v1/push', { app: 'real',
                uids: ['victim'], data: 1, qos: 0 });
            return x.json.online === 1 && x;
        }, 5000, 'the bind to be registered');
        assert.strictEqual(p.status, 200);
        c.close();
    });
});

test('small ones: duplicate uids, an unknown op cut inside a character, a '
     + 'kick reason of 256 quotes, a bad Sec-WebSocket-Key, max_bad_frames',
     T, async () => {
    await L.withPushd(roomConf({}, { saver: { memory: '8m' } }),
                      async (d) => {
        const c = await W.connect(d.roomPort, 'dup', 'p');
        const p = await L.centerPost(d, '/v1/push', { app: 'a',
            uids: ['dup', 'dup', 'x', 'dup', 'x'], data: 1, qos: 1 });
        assert.strictEqual(p.status, 200, p.body);
        assert.strictEqual(p.json.online, 1, p.body);
        assert.strictEqual(p.json.stored, 2, p.body);
        const p2 = await L.centerPost(d, '/v1/push', { app: 'a',
            uids: ['dup'], data: 2, qos: 0 });
        assert.strictEqual(p2.status, 200, p2.body);
        await c.next((m) => m.op === 'msg' && m.data === 2);
        /* next() took only its match: every copy of the first is queued */
        const ones = c.msgs.items.filter((m) => m.op === 'msg'
                                         && m.data === 1);
        assert.strictEqual(ones.length, 1, JSON.stringify(c.msgs.items));
        c.close();

        const u = await W.connect(d.roomPort, 'utf', 'p');
        const op = 'x' + '\u00e9'.repeat(20);  /* byte 32 is inside one */
        u.send({ op });
        const e = await u.op('error');
        assert.match(e.error, /^unknown op "x\u00e9{15}"$/, e.error);
        u.send({ op: 'ping' });
        await u.op('pong');
        assert.ok(u.open, 'a valid text frame: still open');

        const reason = '"'.repeat(256);
        const k = await L.centerPost(d, '/v1/users/utf/kick', { reason });
        assert.strictEqual(k.status, 200, k.body);
        const kick = await u.op('kick');
        assert.strictEqual(kick.reason, reason);

        const bad = await W.rawConnect(d.roomPort,
            W.connectPath('z', 'p', { token: 'a'.repeat(64) }),
            { upgrade: false, headers: {
                Upgrade: 'websocket', Connection: 'Upgrade',
                'Sec-WebSocket-Key': 'not-a-key',
                'Sec-WebSocket-Version': '13' } });
        assert.strictEqual(bad.status, 400, bad.body);
        assert.match(bad.body, /invalid Sec-WebSocket-Key/);
    });
    await L.withPushd({ workers: 1 }, async (d) => {
        d.writeConfig({ room: { auth_secret: W.SECRET,
                                max_bad_frames: 1000000000 } });
        const t = d.run('-t');
        assert.strictEqual(t.status, 1, t.stderr);
        assert.match(t.stderr, /max_bad_frames/, t.stderr);
        d.writeConfig({ room: { auth_secret: W.SECRET,
                                max_bad_frames: 65535 } });
        assert.strictEqual(d.run('-t').status, 0);
    });
});

test('idle keep-alive connections give their slots to new clients', T,
     async () => {
    await L.withPushd(roomConf({}, { worker_connections: 64 }),
                      async (d) => {
        /* keep-alive clients that asked once and stay idle */
        const idle = [];
        for (let i = 0; i < 70; i++) {
            const s = net.connect({ port: d.roomPort, host: '127.0.0.1' });
            await new Promise((r, j) => { s.once('connect', r);
                                          s.once('error', j); });
            s.on('error', () => {});
            s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
            await new Promise((r) => s.once('data', r));
            idle.push(s);
        }
        const c = await W.connect(d.roomPort, 'late', 'p');
        assert.strictEqual(c.welcome.op, 'welcome');
        assert.match(d.logText(), /closing idle keep-alive connections/);
        c.close();
        idle.forEach((s) => s.destroy());
    });
});

test('the sid tells nothing of the worker', T, async () => {
    await L.withPushd(roomConf(), async (d) => {
        const a = await W.connect(d.roomPort, 's1', 'p');
        const b = await W.connect(d.roomPort, 's2', 'p');
        const pid = d.workerPids()[0].toString(16);
        for (const s of [a.welcome.sid, b.welcome.sid]) {
            assert.match(s, /^[A-Za-z0-9._-]+-[0-9a-f]{16}$/, s);
            assert.ok(!s.endsWith(`-${pid}-0`) && !s.includes(`-${pid}-`), s);
        }
        assert.notStrictEqual(a.welcome.sid, b.welcome.sid);
        a.close();
        b.close();
    });
});

module.exports = { sendSplit, cut, post, get };
