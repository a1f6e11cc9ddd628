'use strict';
/*
 * room.test.js: the room's client protocol: the token check and the
 * other refusals before the upgrade, the welcome frame and the heartbeat
 * clamp, ping/pong, error frames, the close codes for malformed frames,
 * fragmented messages, the idle timeout, the per-IP, allow/deny and
 * handshake-rate limits, reconnect frames on reload and on QUIT, wss, and
 * the room counters of /v1/stats.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 60000 };
const OP = W.OP;

/* daemon options: room with the test secret, a small memory register */
function conf(room = {}, more = {}) {
    return Object.assign({
        workers: 2,
        top: { register: { memory: '8m' } },
        room: Object.assign({ auth_secret: W.SECRET }, room),
    }, more);
}

async function stats(d) {
    const r = await L.centerGet(d, '/v1/stats');
    assert.strictEqual(r.status, 200, r.body);
    return r.json;
}

/* the sum over the workers of a counter (a dotted path like closes.idle) */
function sum(st, field) {
    let n = 0;
    for (const w of st.workers) {
        let v = w;
        for (const k of field.split('.')) {
            v = v === undefined ? undefined : v[k];
        }
        assert.strictEqual(typeof v, 'number',
                           `worker ${w.slot} has a numeric "${field}": `
                           + JSON.stringify(w));
        n += v;
    }
    return n;
}

/* asserts a refusal before the upgrade: status and a JSON {"error"} */
function assertRefused(r, status, what) {
    assert.strictEqual(r.status, status,
                       `${what}: HTTP ${r.status} ${r.body}`);
    assert.strictEqual(r.ws, null);
    let j;
    assert.doesNotThrow(() => { j = JSON.parse(r.body); },
                        `${what}: a JSON body, got ${JSON.stringify(r.body)}`);
    assert.strictEqual(typeof j.error, 'string', `${what}: ${r.body}`);
    assert.ok(j.error.length > 0, `${what}: a non-empty error`);
}

/* the server's close frame has code, then the TCP connection ends */
async function assertClosedWith(ws, code, what) {
    const f = await ws.closeFrame(5000);
    assert.strictEqual(f.code, code,
                       `${what}: close code ${f.code} "${f.reason}"`);
    assert.ok(await ws.waitEnd(5000), `${what}: the server ends the TCP `
              + 'connection after its close frame');
}

/* ------------------------------------------------------------------ */

test('a good token gets a welcome with sid and the default hb', T,
     async () => {
    await L.withPushd(conf(), async (d) => {
        const c = await W.connect(d.roomPort, 'alice', 'phone-1',
                                  { apps: ['chat', 'news'] });
        assert.strictEqual(c.welcome.op, 'welcome');
        assert.strictEqual(typeof c.welcome.sid, 'string');
        assert.ok(c.welcome.sid.length > 0, 'a non-empty sid');
        assert.strictEqual(c.welcome.hb, 240);

        /* the welcome is the first frame, and sids differ */
        const raw = await W.rawConnect(d.roomPort,
            W.connectPath('alice', 'phone-2', { apps: 'chat' }));
        assert.strictEqual(raw.status, 101);
        const first = await raw.ws.next(() => true, 5000, 'the first frame');
        assert.strictEqual(first.opcode, OP.TEXT);
        assert.strictEqual(first.json && first.json.op, 'welcome',
                           first.text);
        assert.notStrictEqual(first.json.sid, c.welcome.sid);

        /* a uid and device using the whole allowed charset, 64 long */
        const uid = 'Az09._:@-'.repeat(7).slice(0, 64);
        const c2 = await W.connect(d.roomPort, uid, 'dev.1:x@y-Z_');
        assert.strictEqual(c2.welcome.op, 'welcome');

        c.close();
        c2.close();
        raw.ws.destroy();
    });
});

test('refusals before the upgrade: 400, 401, 426', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const p = d.roomPort;
        const before = await stats(d);
        const past = Math.floor(Date.now() / 1000) - 10;

        assertRefused(await W.rawConnect(p, W.connectPath('bob', 'd1',
            { token: W.makeToken('another-secret-0123456', 'bob', 'd1',
                                 W.future()) })), 401, 'wrong secret');
        /* a token for another device */
        const e = W.future();
        assertRefused(await W.rawConnect(p, W.connectPath('bob', 'd1',
            { expires: e, token: W.makeToken(W.SECRET, 'bob', 'd2', e) })),
            401, 'token of another device');
        assertRefused(await W.rawConnect(p, W.connectPath('bob', 'd1',
            { token: 'zz' })), 401, 'garbage token');
        /* right HMAC, but expired */
        assertRefused(await W.rawConnect(p, W.connectPath('bob', 'd1',
            { expires: past })), 401, 'expired token');

        assertRefused(await W.rawConnect(p, W.connectPath('bob', 'd1',
            { omit: ['token'] })), 400, 'missing token');
        assertRefused(await W.rawConnect(p, W.connectPath('bob', 'd1',
            { omit: ['uid'] })), 400, 'missing uid');
        assertRefused(await W.rawConnect(p, W.connectPath('bob', 'd1',
            { omit: ['expires'] })), 400, 'missing expires');
        assertRefused(await W.rawConnect(p, W.connectPath('bob', 'd1',
            { expires: 'soon' })), 400, 'expires not a number');
        for (const uid of ['bo b', 'bob/1', 'bób', 'bob#', '']) {
            assertRefused(await W.rawConnect(p, W.connectPath(uid, 'd1')),
                          400, `malformed uid ${JSON.stringify(uid)}`);
        }
        assertRefused(await W.rawConnect(p, W.connectPath('x'.repeat(65),
            'd1')), 400, 'uid of 65 characters');
        assertRefused(await W.rawConnect(p, W.connectPath('bob', 'd 1')),
                      400, 'malformed device');
        assertRefused(await W.rawConnect(p, W.connectPath('bob', 'd1',
            { apps: ['a'.repeat(33)] })), 400, 'app name of 33 characters');
        assertRefused(await W.rawConnect(p, W.connectPath('bob', 'd1',
            { apps: ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8',
                     'a9'] })), 400, 'nine apps with max_apps 8');

        /* a valid query without the upgrade headers */
        const r = await W.rawConnect(p, W.connectPath('bob', 'd1'),
                                     { upgrade: false });
        assert.strictEqual(r.status, 426, `no upgrade: ${r.status} ${r.body}`);

        /* the limits themselves pass: 8 apps of 32, a uid of 64 */
        const ok = await W.rawOpen(p, 'b'.repeat(64), 'd1',
            { apps: ['1', '2', '3', '4', '5', '6', '7', 'a'.repeat(32)] });
        assert.strictEqual(ok.welcome.op, 'welcome');
        ok.destroy();

        /* auth failures are counted */
        const after = await stats(d);
        assert.ok(sum(after, 'auth_failures') >= sum(before, 'auth_failures')
                  + 4, `auth_failures ${sum(before, 'auth_failures')} -> `
                  + `${sum(after, 'auth_failures')}`);
    });
});

test('hb: ?hb= is clamped to heartbeat_min .. heartbeat_max', T,
     async () => {
    await L.withPushd(conf(), async (d) => {
        const cases = [[5, 30], [30, 30], [100, 100], [600, 600],
                       [100000, 600]];
        for (const [ask, want] of cases) {
            const c = await W.rawOpen(d.roomPort, 'hb', `d${ask}`,
                                      { hb: ask });
            assert.strictEqual(c.welcome.hb, want, `?hb=${ask}`);
            c.destroy();
        }
    });
    await L.withPushd(conf({ heartbeat: '45s', heartbeat_min: '40s',
                             heartbeat_max: '50s' }), async (d) => {
        const plain = await W.rawOpen(d.roomPort, 'hb', 'plain');
        assert.strictEqual(plain.welcome.hb, 45, 'the configured heartbeat');
        const lo = await W.rawOpen(d.roomPort, 'hb', 'lo', { hb: 1 });
        assert.strictEqual(lo.welcome.hb, 40);
        const hi = await W.rawOpen(d.roomPort, 'hb', 'hi', { hb: 3600 });
        assert.strictEqual(hi.welcome.hb, 50);
        for (const c of [plain, lo, hi]) {
            c.destroy();
        }
    });
});

test('ping: {"op":"ping"} gets {"op":"pong"}, ping frames get pong frames',
     T, async () => {
    await L.withPushd(conf(), async (d) => {
        const c = await W.connect(d.roomPort, 'pinger', 'd1');
        for (let i = 0; i < 3; i++) {
            c.send({ op: 'ping' });
            assert.deepStrictEqual(await c.op('pong'), { op: 'pong' });
        }

        const r = await W.rawOpen(d.roomPort, 'pinger', 'd2');
        for (const payload of ['', 'hello', Buffer.from([0, 1, 2, 255])]) {
            r.send({ opcode: OP.PING, payload });
            const f = await r.next((x) => x.opcode === OP.PONG, 5000,
                                   'a pong frame');
            assert.ok(f.fin, 'the pong is one whole frame');
            assert.ok(!f.masked, 'server frames are not masked');
            assert.deepStrictEqual(f.payload, Buffer.from(payload),
                                   'the pong echoes the ping payload');
        }
        /* a pong from the client is allowed and answered by nothing */
        r.send({ opcode: OP.PONG, payload: 'unsolicited' });
        r.sendJson({ op: 'ping' });
        const f = await r.next(() => true, 5000, 'the next frame');
        assert.strictEqual(f.json && f.json.op, 'pong', f.text);
        c.close();
        r.destroy();
    });
});

test('a flood of pings in one write: the pongs still unsent answer only '
     + 'the latest ping (RFC 6455 5.5.3), in order; a pong is not moved '
     + 'past a message', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const r = await W.rawOpen(d.roomPort, 'flood', 'd1');
        const N = 3000;
        r.send(Buffer.concat(Array.from({ length: N }, (_, i) =>
            W.encodeFrame({ opcode: OP.PING, payload: `p${i}` }))));
        r.sendJson({ op: 'ping' });
        await r.op('pong', 10000);
        const pongs = r.frames.items.filter((f) => f.opcode === OP.PONG)
            .map((f) => Number(f.payload.toString().slice(1)));
        assert.ok(pongs.length >= 1 && pongs.length < N / 10,
                  `${pongs.length} pongs for ${N} pings`);
        assert.strictEqual(pongs[pongs.length - 1], N - 1,
                           'the last pong answers the last ping');
        for (let i = 1; i < pongs.length; i++) {
            assert.ok(pongs[i] > pongs[i - 1], `in order: ${pongs}`);
        }

        /* ping, a message's answer, ping: two pongs around it */
        r.frames.items.length = 0;
        r.send(Buffer.concat([
            W.encodeFrame({ opcode: OP.PING, payload: 'a' }),
            W.encodeFrame({ opcode: OP.TEXT, payload: '{"op":"ping"}' }),
            W.encodeFrame({ opcode: OP.PING, payload: 'b' }),
        ]));
        const seen = [];
        for (let i = 0; i < 3; i++) {
            const f = await r.next(() => true, 5000, 'a frame');
            seen.push(f.opcode === OP.PONG ? f.payload.toString()
                                           : f.json.op);
        }
        assert.deepStrictEqual(seen, ['a', 'pong', 'b']);
        r.destroy();
    });
});

test('unknown op, bad JSON and binary frames get error frames; the '
     + 'connection stays', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const c = await W.connect(d.roomPort, 'err', 'd1');
        c.send({ op: 'dance' });
        const e1 = await c.op('error');
        assert.strictEqual(e1.error, 'unknown op "dance"');

        for (const bad of ['{bad json', '[1,2]', '"just a string"', '42',
                           '{"no":"op"}']) {
            c.send(bad);
            const e = await c.op('error');
            assert.strictEqual(typeof e.error, 'string', JSON.stringify(e));
            assert.ok(e.error.length > 0);
        }
        c.send({ op: 'ping' });
        await c.op('pong');
        assert.ok(c.open, 'still open after 6 bad frames');

        const r = await W.rawOpen(d.roomPort, 'err', 'd2');
        r.send({ opcode: OP.BINARY, payload: Buffer.from('{"op":"ping"}') });
        const f = await r.next(() => true, 5000, 'a reply to binary');
        assert.strictEqual(f.opcode, OP.TEXT);
        assert.strictEqual(f.json && f.json.op, 'error', f.text);
        r.sendJson({ op: 'ping' });
        assert.deepStrictEqual(await r.op('pong'), { op: 'pong' });
        assert.ok(!r.tcpClosed);
        c.close();
        r.destroy();
    });
});

test('more than max_bad_frames bad frames close with 1008', T, async () => {
    await L.withPushd(conf({ max_bad_frames: 5 }), async (d) => {
        const r = await W.rawOpen(d.roomPort, 'flood', 'd1');
        for (let i = 0; i < 5; i++) {
            r.sendText(i % 2 ? '{oops' : '{"op":"nope"}');
            const e = await r.op('error');
            assert.strictEqual(typeof e.error, 'string');
        }
        r.sendJson({ op: 'ping' });
        await r.op('pong');
        assert.ok(!r.tcpClosed, 'open after exactly max_bad_frames');
        r.send({ opcode: OP.BINARY, payload: 'x' });
        await assertClosedWith(r, 1008, 'the bad frame past the limit');
    });
    await L.withPushd(conf(), async (d) => {
        /* the default, 10 */
        const c = await W.connect(d.roomPort, 'flood', 'd2');
        for (let i = 0; i < 30; i++) {
            c.send('not json');
        }
        const info = await c.waitClose(5000);
        assert.strictEqual(info.code, 1008, JSON.stringify(info));
        const errors = c.msgs.items.filter((m) => m.op === 'error').length;
        assert.ok(errors >= 10 && errors <= 11,
                  `error frames before the close: ${errors}`);
    });
});

test('a frame over max_frame or a message over max_message closes with '
     + '1009', T, async () => {
    await L.withPushd(conf({ max_frame: 1024, max_message: 2048 }),
                      async (d) => {
        /* exactly max_frame passes */
        const ok = await W.rawOpen(d.roomPort, 'big', 'd0');
        const pad = 'x'.repeat(1024 - '{"op":"ping","p":""}'.length);
        ok.sendText(`{"op":"ping","p":"${pad}"}`);
        await ok.op('pong');
        ok.destroy();

        const a = await W.rawOpen(d.roomPort, 'big', 'd1');
        a.sendText(`{"op":"ping","p":"${'y'.repeat(1100)}"}`);
        await assertClosedWith(a, 1009, 'a 1118-byte frame');

        /* a length field alone over the limit, payload never sent */
        const b = await W.rawOpen(d.roomPort, 'big', 'd2');
        b.send({ opcode: OP.TEXT, payload: 'x', len: 1 << 20 });
        await assertClosedWith(b, 1009, 'a 1 MB length field');

        /* 3 fragments of 900: each frame fits, the message does not */
        const m = await W.rawOpen(d.roomPort, 'big', 'd3');
        const part = 'z'.repeat(900);
        m.sendText(`{"op":"ping","p":"${part}`, { fin: false });
        m.send({ opcode: OP.CONT, payload: part, fin: false });
        m.send({ opcode: OP.CONT, payload: `${part}"}`, fin: true });
        await assertClosedWith(m, 1009, 'a 2.7 KB message in fragments');

        /* a big control frame (over 125) is a protocol error */
        const p = await W.rawOpen(d.roomPort, 'big', 'd4');
        p.send({ opcode: OP.PING, payload: 'p'.repeat(126) });
        await assertClosedWith(p, 1002, 'a ping of 126 bytes');
    });
});

test('text that is not UTF-8 closes with 1007', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const bad = [
            Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]),    /* {"\xff"} */
            Buffer.from('{"op":"ping","x":"\xc3"}', 'latin1'),
            Buffer.from([0x7b, 0xed, 0xa0, 0x80, 0x7d]),    /* surrogate */
            Buffer.from([0x7b, 0xc0, 0xaf, 0x7d]),          /* overlong */
        ];
        for (const [i, payload] of bad.entries()) {
            const r = await W.rawOpen(d.roomPort, 'utf', `d${i}`);
            r.send({ opcode: OP.TEXT, payload });
            await assertClosedWith(r, 1007, `bad UTF-8 #${i}`);
        }
        /* valid multi-byte UTF-8 is fine */
        const r = await W.rawOpen(d.roomPort, 'utf', 'ok');
        r.sendText('{"op":"ping","x":"é€😀"}');
        await r.op('pong');
        r.destroy();
    });
});

test('protocol errors close with 1002: unmasked, RSV, bad opcode, '
     + 'fragmented control, stray continuation', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const cases = [
            ['an unmasked frame',
             { opcode: OP.TEXT, payload: '{"op":"ping"}', mask: false }],
            ['RSV1 set', { opcode: OP.TEXT, payload: '{"op":"ping"}',
                           rsv: 4 }],
            ['RSV3 set', { opcode: OP.TEXT, payload: '{"op":"ping"}',
                           rsv: 1 }],
            ['opcode 3', { opcode: 3, payload: 'x' }],
            ['opcode 11', { opcode: 11, payload: 'x' }],
            ['a fragmented ping', { opcode: OP.PING, payload: 'x',
                                    fin: false }],
            ['a continuation with no message',
             { opcode: OP.CONT, payload: 'x' }],
        ];
        for (const [i, [what, frame]] of cases.entries()) {
            const r = await W.rawOpen(d.roomPort, 'proto', `d${i}`);
            r.send(frame);
            await assertClosedWith(r, 1002, what);
        }

        /* a new text frame in the middle of a fragmented message */
        const r = await W.rawOpen(d.roomPort, 'proto', 'mid');
        r.sendText('{"op":', { fin: false });
        r.sendText('{"op":"ping"}');
        await assertClosedWith(r, 1002, 'text inside a fragmented message');

        /* a close is counted once the server has finished it, which may
         * be a moment after the client saw the close frame: poll */
        let n = 0;
        await L.waitFor(async () => {
            n = sum(await stats(d), 'closes.protocol');
            return n >= cases.length + 1;
        }, 5000, `closes.protocol to reach ${cases.length + 1} (last ${n})`);
        assert.ok(n >= cases.length + 1, `closes.protocol: ${n}`);

        /* an upgraded connection keeps no log of its own (pd_conn_log):
         * each line still names its connection, client and server */
        const line = new RegExp('\\[info\\] (\\d+#\\d+: \\*\\d+) bad frame: '
                                + '([^\\n]*), client: 127\\.0\\.0\\.1, '
                                + `server: [^\\n]*:${d.roomPort}\\n`, 'g');
        const lines = await L.waitFor(() => {
            const all = [...d.logText().matchAll(line)];
            return all.length >= cases.length + 1 && all;
        }, 5000, 'a bad frame line, with its context, for each connection');
        assert.strictEqual(lines.length, cases.length + 1);
        assert.strictEqual(new Set(lines.map((m) => m[1])).size,
                           lines.length, 'each connection its own number');
    });
});

test('fragmented text messages are reassembled, control frames may '
     + 'interleave', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const r = await W.rawOpen(d.roomPort, 'frag', 'd1');
        r.sendText('{"op"', { fin: false });
        r.send({ opcode: OP.CONT, payload: ':"pi', fin: false });
        r.send({ opcode: OP.CONT, payload: 'ng"}', fin: true });
        assert.deepStrictEqual(await r.op('pong'), { op: 'pong' });

        /* a ping frame between the fragments is answered at once */
        r.sendText('{"op":"', { fin: false });
        r.send({ opcode: OP.PING, payload: 'mid' });
        const pf = await r.next((f) => f.opcode === OP.PONG, 5000,
                                'a pong frame');
        assert.strictEqual(pf.payload.toString(), 'mid');
        r.send({ opcode: OP.CONT, payload: 'ping"}', fin: true });
        await r.op('pong');

        /* a multi-byte character split across two fragments */
        const e = Buffer.from('{"op":"ping","x":"€"}');
        const cut = e.indexOf(0xe2) + 1;
        r.send({ opcode: OP.TEXT, payload: e.subarray(0, cut), fin: false });
        r.send({ opcode: OP.CONT, payload: e.subarray(cut), fin: true });
        await r.op('pong');

        /* a fragmented unknown op is one bad frame, with the whole name */
        r.sendText('{"op":"da', { fin: false });
        r.send({ opcode: OP.CONT, payload: 'nce"}', fin: true });
        const err = await r.op('error');
        assert.strictEqual(err.error, 'unknown op "dance"');

        /* many tiny fragments */
        const msg = '{"op":"ping"}';
        for (let i = 0; i < msg.length; i++) {
            r.send({ opcode: i === 0 ? OP.TEXT : OP.CONT, payload: msg[i],
                     fin: i === msg.length - 1 });
        }
        await r.op('pong');
        assert.ok(!r.tcpClosed);
        r.destroy();
    });
});

test('a fragmented message\'s state holds across reads: its length, its '
     + 'opcode, its UTF-8', T, async () => {
    /*
     * A connection keeps no parser between reads (pd_room_frames): only
     * the opcode of the message in progress, its UTF-8 state, and its
     * bytes so far.  A ping answered between two fragments proves that
     * the server read the first before the second was sent.
     */
    await L.withPushd(conf({ max_frame: 1024, max_message: 2048 }),
                      async (d) => {
        let n = 0;
        async function between(r) {
            const mark = `m${n++}`;
            r.send({ opcode: OP.PING, payload: mark });
            const pf = await r.next((f) => f.opcode === OP.PONG
                                           && f.payload.toString() === mark,
                                    5000, `the pong ${mark}`);
            assert.ok(pf);
        }

        /* three fragments of 900, each in its own read: too big */
        const m = await W.rawOpen(d.roomPort, 'reads', 'd1');
        const part = 'z'.repeat(900);
        m.sendText(`{"op":"ping","p":"${part}`, { fin: false });
        await between(m);
        m.send({ opcode: OP.CONT, payload: part, fin: false });
        await between(m);
        assert.ok(!m.tcpClosed, 'open at 1,818 bytes of 2,048');
        m.send({ opcode: OP.CONT, payload: `${part}"}`, fin: true });
        await assertClosedWith(m, 1009, '2.7 KB over three reads');

        /* two under the bound, over two reads: one message */
        const ok = await W.rawOpen(d.roomPort, 'reads', 'd2');
        ok.sendText(`{"op":"ping","p":"${part}`, { fin: false });
        await between(ok);
        ok.send({ opcode: OP.CONT, payload: `${part}"}`, fin: true });
        await ok.op('pong');

        /* a text frame after a read that left a message open */
        ok.sendText('{"op":', { fin: false });
        await between(ok);
        ok.sendText('{"op":"ping"}');
        await assertClosedWith(ok, 1002, 'a new message inside one');

        /* a character cut between two reads: valid, then invalid */
        const u = await W.rawOpen(d.roomPort, 'reads', 'd3');
        const e = Buffer.from('{"op":"ping","x":"€"}');
        const cut = e.indexOf(0xe2) + 1;
        u.send({ opcode: OP.TEXT, payload: e.subarray(0, cut), fin: false });
        await between(u);
        u.send({ opcode: OP.CONT, payload: e.subarray(cut), fin: true });
        await u.op('pong');
        u.send({ opcode: OP.TEXT, payload: e.subarray(0, cut), fin: false });
        await between(u);
        u.send({ opcode: OP.CONT, payload: Buffer.from('A"}'), fin: true });
        await assertClosedWith(u, 1007, 'a broken character over two reads');

        /* a binary message over two reads: two bad frames, not a stray
         * continuation (which would close with 1002) */
        const b = await W.rawOpen(d.roomPort, 'reads', 'd4');
        b.send({ opcode: OP.BINARY, payload: 'x', fin: false });
        const e1 = await b.op('error');
        assert.strictEqual(e1.error, 'binary frames are not supported');
        await between(b);
        b.send({ opcode: OP.CONT, payload: 'y', fin: true });
        const e2 = await b.op('error');
        assert.strictEqual(e2.error, 'binary frames are not supported');
        b.sendText('{"op":"ping"}');
        await b.op('pong');
        assert.ok(!b.tcpClosed);
        b.destroy();
    });
});

test('idle: a silent connection is closed after 2 x hb + 10s, a pinging '
     + 'one stays', { timeout: 90000 }, async () => {
    await L.withPushd(conf({ heartbeat: '1s', heartbeat_min: '1s' }),
                      async (d) => {
        const silent = await W.connect(d.roomPort, 'idle', 'silent');
        const t0 = Date.now();
        assert.strictEqual(silent.welcome.hb, 1);
        const busy = await W.connect(d.roomPort, 'idle', 'busy');
        let pongs = 0;
        const timer = setInterval(() => {
            if (busy.open) {
                busy.send({ op: 'ping' });
            }
        }, 500);
        try {
            const info = await silent.waitClose(20000);
            const took = Date.now() - t0;
            assert.ok(took >= 11000, `closed after ${took} ms, not before `
                      + '2 x 1s + 10s');
            assert.ok(took <= 20000, `closed after ${took} ms`);
            /* the busy client lives on well past the silent one's end */
            await L.delay(3000);
            assert.ok(busy.open, 'the pinging client is still connected');
            pongs = busy.msgs.items.filter((m) => m.op === 'pong').length;
            assert.ok(pongs >= 20, `pongs received: ${pongs}`);
        } finally {
            clearInterval(timer);
        }
        const st = await stats(d);
        assert.ok(sum(st, 'closes.idle') >= 1,
                  `closes.idle: ${sum(st, 'closes.idle')}`);
        busy.close();
    });
});

test('max_connections_per_ip 3: the 4th gets 429, a closed one frees a '
     + 'slot', T, async () => {
    await L.withPushd(conf({ max_connections_per_ip: 3 }), async (d) => {
        const open = [];
        for (let i = 0; i < 3; i++) {
            open.push(await W.rawOpen(d.roomPort, 'ip', `d${i}`));
        }
        const r = await W.rawConnect(d.roomPort, W.connectPath('ip', 'd3'));
        assert.strictEqual(r.status, 429, `the 4th: ${r.status} ${r.body}`);
        assert.strictEqual(r.headers['retry-after'], '1');

        /* still refused while the three stay */
        const again = await W.rawConnect(d.roomPort,
                                         W.connectPath('ip', 'd3'));
        assert.strictEqual(again.status, 429);

        open[0].sendText('x');      /* make sure the server saw it */
        open[0].destroy();
        const fresh = await L.waitFor(async () => {
            const x = await W.rawConnect(d.roomPort,
                                         W.connectPath('ip', 'd4'));
            return x.status === 101 ? x.ws : null;
        }, 5000, 'a connection after one of the three closed');
        const w = await fresh.op('welcome');
        assert.strictEqual(w.op, 'welcome');

        /* full again */
        const full = await W.rawConnect(d.roomPort,
                                        W.connectPath('ip', 'd5'));
        assert.strictEqual(full.status, 429);

        /* a close handshake by the client frees the slot too */
        open[1].send({ opcode: OP.CLOSE, payload: Buffer.from([3, 232]) });
        const cf = await open[1].closeFrame();
        assert.strictEqual(cf.code, 1000, 'the close is echoed');
        const fresh2 = await L.waitFor(async () => {
            const x = await W.rawConnect(d.roomPort,
                                         W.connectPath('ip', 'd6'));
            return x.status === 101 ? x.ws : null;
        }, 5000, 'a connection after a close handshake');
        for (const c of [open[2], fresh, fresh2]) {
            c.destroy();
        }
    });
});

test('deny and allow lists refuse with 403', T, async () => {
    await L.withPushd(conf({ deny: ['127.0.0.1'] }), async (d) => {
        assertRefused(await W.rawConnect(d.roomPort,
            W.connectPath('acl', 'd1')), 403, 'deny 127.0.0.1');
    });
    await L.withPushd(conf({ allow: ['10.0.0.0/8'] }), async (d) => {
        assertRefused(await W.rawConnect(d.roomPort,
            W.connectPath('acl', 'd1')), 403, 'allow 10.0.0.0/8 only');
    });
    await L.withPushd(conf({ allow: ['10.0.0.0/8', '127.0.0.0/8'],
                             deny: ['127.0.0.2'] }), async (d) => {
        const ok = await W.rawOpen(d.roomPort, 'acl', 'd1');
        assert.strictEqual(ok.welcome.op, 'welcome', 'allowed by 127/8');
        ok.destroy();
    });
    await L.withPushd(conf({ allow: ['all'], deny: ['127.0.0.0/8'] }),
                      async (d) => {
        assertRefused(await W.rawConnect(d.roomPort,
            W.connectPath('acl', 'd1')), 403, 'deny before allow all');
    });
});

test('handshake_rate: past the rate a handshake gets 503 with '
     + 'Retry-After', T, async () => {
    await L.withPushd(conf({ handshake_rate: 2 }), async (d) => {
        const tries = [];
        for (let i = 0; i < 24; i++) {
            tries.push(W.rawConnect(d.roomPort,
                                    W.connectPath('rate', `d${i}`)));
        }
        const res = await Promise.all(tries);
        const ok = res.filter((r) => r.status === 101);
        const busy = res.filter((r) => r.status === 503);
        assert.strictEqual(ok.length + busy.length, res.length,
                           'only 101 and 503: '
                           + res.map((r) => r.status).join(','));
        assert.ok(busy.length >= 1, `some 503 (${ok.length} passed)`);
        assert.ok(ok.length >= 1 && ok.length <= 8,
                  `2 per second per worker: ${ok.length} passed`);
        for (const r of busy) {
            assert.match(r.headers['retry-after'] || '', /^\d+$/,
                         'Retry-After on 503');
        }
        for (const r of ok) {
            r.ws.destroy();
        }
    });
});

test('reload without hand-over: old connections get reconnect frames then '
     + '1001; new ones work', { timeout: 90000 }, async () => {
    await L.withPushd(conf({ reconnect_window: '5s', reload_handover: false }),
                      async (d) => {
        const clients = [];
        for (let i = 0; i < 8; i++) {
            clients.push(await W.connect(d.roomPort, 'rl', `d${i}`));
        }
        const p = await L.centerGet(d, '/v1/users/rl');
        const slot = {};
        for (const c of p.json.connections) {
            slot[c.device] = c.worker;
        }
        const old = d.workerPids();
        process.kill(d.masterPid, 'SIGHUP');
        /* every client's fate, then one assertion naming the bad ones */
        const fates = await Promise.all(clients.map(async (c, i) => {
            const f = { device: `d${i}`, worker: slot[`d${i}`] };
            try {
                f.msg = await c.op('reconnect', 10000);
            } catch (e) {
                f.msg = null;
            }
            try {
                f.close = (await c.waitClose(10000)).code;
            } catch (e) {
                f.close = 'none';
            }
            return f;
        }));
        const bad = fates.filter((f) => !f.msg
            || !Number.isInteger(f.msg.after_ms)
            || f.msg.after_ms < 0 || f.msg.after_ms >= 5000
            || f.close !== 1001);
        assert.deepStrictEqual(bad, [], 'each client gets {"op":"reconnect",'
                               + '"after_ms":0..4999} then close 1001: '
                               + JSON.stringify(fates));
        await L.waitFor(() => {
            const now = d.workerPids();
            return now.length === 2 && now.every((p) => !old.includes(p));
        }, 15000, 'two new workers');
        const c = await W.connect(d.roomPort, 'rl', 'new');
        c.send({ op: 'ping' });
        await c.op('pong');
        c.close();
    });
});

test('QUIT: every client gets a reconnect frame within the window, then '
     + '1001, and the daemon exits by itself', { timeout: 90000 },
     async () => {
    await L.withPushd(conf({ reconnect_window: '3s' }), async (d) => {
        const clients = [];
        for (let i = 0; i < 6; i++) {
            clients.push(await W.connect(d.roomPort, 'qt', `d${i}`));
        }
        const pids = [d.masterPid, ...d.workerPids()];
        process.kill(d.masterPid, 'SIGQUIT');
        const fates = await Promise.all(clients.map(async (c, i) => {
            const f = { device: `d${i}` };
            try {
                f.msg = await c.op('reconnect', 10000);
            } catch (e) {
                f.msg = null;
            }
            try {
                f.close = (await c.waitClose(10000)).code;
            } catch (e) {
                f.close = 'none';
            }
            return f;
        }));
        const bad = fates.filter((f) => !f.msg
            || !Number.isInteger(f.msg.after_ms)
            || f.msg.after_ms < 0 || f.msg.after_ms >= 3000
            || f.close !== 1001);
        assert.deepStrictEqual(bad, [], 'each client gets {"op":"reconnect",'
                               + '"after_ms":0..2999} then close 1001: '
                               + JSON.stringify(fates));
        /* the after_ms are spread, not all the same */
        assert.ok(new Set(fates.map((f) => f.msg.after_ms)).size > 1,
                  JSON.stringify(fates.map((f) => f.msg.after_ms)));
        await L.waitFor(() => pids.every((p) => !L.procAlive(p)), 15000,
                        'the master and the workers to exit after QUIT');
        assert.ok(!(await L.tcpConnects(d.roomPort)), 'the port is closed');
    });
});

test('wss: a WebSocket over the TLS listener', T, async () => {
    await L.withPushd(conf({}, { roomSsl: true }), async (d) => {
        const r = await W.rawConnect(d.sslPort,
            W.connectPath('tls', 'd1', { apps: ['a', 'b'] }), { tls: true });
        assert.strictEqual(r.status, 101, r.body);
        const ws = r.ws;
        const w = await ws.op('welcome');
        assert.strictEqual(w.hb, 240);
        ws.sendJson({ op: 'ping' });
        await ws.op('pong');
        ws.send({ opcode: OP.PING, payload: 'tls' });
        const f = await ws.next((x) => x.opcode === OP.PONG);
        assert.strictEqual(f.payload.toString(), 'tls');
        /* a large fragmented message through TLS records */
        const big = `{"op":"ping","p":"${'q'.repeat(30000)}"}`;
        ws.sendText(big.slice(0, 20000), { fin: false });
        ws.send({ opcode: OP.CONT, payload: big.slice(20000), fin: true });
        await ws.op('pong');
        const p = await L.centerGet(d, '/v1/users/tls');
        assert.strictEqual(p.json.online, true, p.body);

        assertRefused(await W.rawConnect(d.sslPort,
            W.connectPath('tls', 'd2', { token: 'bad' }), { tls: true }),
            401, 'bad token over TLS');

        /* the client closes: the server answers the close */
        ws.send({ opcode: OP.CLOSE, payload: Buffer.from([3, 232]) });
        const cf = await ws.closeFrame();
        assert.strictEqual(cf.code, 1000);
        assert.ok(await ws.waitEnd(5000));
    });
});

test('stats: room counters increase', T, async () => {
    await L.withPushd(conf(), async (d) => {
        /* the gauge counts every open connection: the stats request's
         * own, and right after the start a readiness probe whose close
         * a worker may not have read yet; the base is the request alone */
        const s0 = await L.waitFor(async () => {
            const s = await stats(d);
            return sum(s, 'connections') === 1 && s;
        }, 5000, 'the stats request the only connection');
        const c = await W.connect(d.roomPort, 'st', 'd1');
        c.send({ op: 'ping' });
        await c.op('pong');
        c.send({ op: 'ping' });
        await c.op('pong');
        const bad = await W.rawConnect(d.roomPort,
            W.connectPath('st', 'd2', { token: 'nope' }));
        assert.strictEqual(bad.status, 401);

        /* the refused one may take a moment to be counted out */
        await L.waitFor(async () => sum(await stats(d), 'connections')
                        - sum(s0, 'connections') === 1, 5000,
                        'one more connection in the stats');
        const s1 = await stats(d);
        assert.ok(sum(s1, 'handshakes') >= sum(s0, 'handshakes') + 1,
                  'handshakes');
        assert.ok(sum(s1, 'auth_failures') >= sum(s0, 'auth_failures') + 1,
                  'auth_failures');
        assert.ok(sum(s1, 'frames_in') >= sum(s0, 'frames_in') + 2,
                  'frames_in');
        assert.ok(sum(s1, 'frames_out') >= sum(s0, 'frames_out') + 3,
                  'frames_out (welcome + 2 pongs)');

        c.close(1000);
        await c.waitClose();
        await L.waitFor(async () => sum(await stats(d), 'closes.client')
                        >= sum(s0, 'closes.client') + 1, 5000,
                        'closes.client to count the close');
        await L.waitFor(async () => sum(await stats(d), 'connections')
                        === sum(s0, 'connections'), 5000,
                        'the connection count back down');
    });
});

test('frames in the upgrade request\'s own packet that close it at once: '
     + 'answered, closed, nothing of the freed connection read after', T,
     async () => {
    /* debug level: the "connected" line names the uid, and a long one
     * (out of the room connection, PD_ROOM_UID_INLINE) is freed with it
     * when these frames close the connection during the take-over; the
     * sanitizer tree's scan fails a read after that */
    await L.withPushd(conf({}, { workers: 1, top: {
        register: { memory: '8m' },
        error_log: 'logs/error.log debug' } }), async (d) => {
        const net = require('node:net');
        const crypto = require('node:crypto');
        const uid = 'u'.repeat(40);
        const close = W.encodeFrame({ opcode: OP.CLOSE,
                                      payload: Buffer.from([3, 232]) });
        for (let i = 0; i < 3; i++) {
            const sock = net.connect(d.roomPort, '127.0.0.1');
            await new Promise((ok) => sock.once('connect', ok));
            let got = Buffer.alloc(0);
            sock.on('data', (c) => { got = Buffer.concat([got, c]); });
            const ended = new Promise((ok) => sock.once('close', ok));
            sock.write(Buffer.concat([
                Buffer.from(`GET ${W.connectPath(uid, `d${i}`)} HTTP/1.1\r\n`
                            + 'Host: x\r\nUpgrade: websocket\r\n'
                            + 'Connection: Upgrade\r\n'
                            + 'Sec-WebSocket-Version: 13\r\n'
                            + 'Sec-WebSocket-Key: '
                            + crypto.randomBytes(16).toString('base64')
                            + '\r\n\r\n'),
                close, close]));
            await ended;
            const text = got.toString('latin1');
            assert.match(text, /^HTTP\/1\.1 101 /, text.slice(0, 80));
            /* the welcome, then our close answered (0x88) */
            const frames = got.subarray(got.indexOf('\r\n\r\n') + 4);
            assert.ok(frames.includes(Buffer.from([0x88])),
                      'a close frame came back');
        }
        /* a --with-debug build logs at debug level: each connection's
         * "connected" line, with the whole uid */
        const log = d.logText();
        if (/\[debug\]/.test(log)) {
            assert.strictEqual(log.split(`uid "${uid}" device "d`).length - 1,
                               3, 'a "connected" line each');
        }
        /* and the room serves on */
        const ws = await W.rawOpen(d.roomPort, uid, 'after');
        ws.sendJson({ op: 'ping' });
        await ws.op('pong');
        ws.destroy();
    });
});
