'use strict';
/*
 * sdk_unit.test.js: unit tests of sdk/js/pushd.js with no daemon: the
 * backoff (full jitter, cap, reset), the dedup window, the address cache
 * and the client's state machine driven through a fake WebSocket class
 * (what it sends, when it reconnects, what the application sees).
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const SDK = path.resolve(__dirname, '..', '..', 'sdk', 'js', 'pushd.js');
let sdk;

test.before(async () => {
    sdk = await import(SDK);
});

const tick = () => new Promise((r) => setTimeout(r, 0));

async function until(fn, what, ms = 2000) {
    const end = Date.now() + ms;
    while (!fn()) {
        if (Date.now() > end) {
            throw new Error(`timed out waiting for ${what}`);
        }
        await new Promise((r) => setTimeout(r, 5));
    }
}

/*
 * A WebSocket class the test drives: every instance is recorded in
 * FakeWS.all; open(), recv(obj), serverClose(code) play the server.
 */
class FakeWS {
    constructor(url) {
        this.url = url;
        this.sent = [];
        this.readyState = 0;
        this.closedBy = null;
        this.onopen = this.onmessage = this.onerror = this.onclose = null;
        FakeWS.all.push(this);
    }

    open() {
        this.readyState = 1;
        if (this.onopen) {
            this.onopen({});
        }
    }

    recv(obj) {
        this.onmessage({ data: JSON.stringify(obj) });
    }

    welcome(extra = {}) {
        this.open();
        this.recv(Object.assign({ op: 'welcome', sid: 'n1-s1', hb: 240 },
                                extra));
    }

    serverClose(code = 1006, reason = '') {
        this.readyState = 3;
        if (this.onclose) {
            this.onclose({ code, reason });
        }
    }

    refuse(message) {
        this.readyState = 3;
        if (this.onerror) {
            this.onerror({ message });
        }
        if (this.onclose) {
            this.onclose({ code: 1006, reason: '' });
        }
    }

    send(text) {
        this.sent.push(JSON.parse(text));
    }

    close(code, reason) {
        this.closedBy = { code, reason };
        this.readyState = 3;
    }

    frames(op) {
        return this.sent.filter((f) => f.op === op);
    }
}
FakeWS.all = [];

function client(opts = {}) {
    FakeWS.all = [];
    return new sdk.PushdClient(Object.assign({
        url: 'ws://pushd.test:8080', uid: 'alice', device: 'phone',
        apps: ['chat'], token: 'tok', expires: Math.floor(Date.now() / 1000)
        + 3600, WebSocket: FakeWS, backoffBase: 1, backoffMax: 5,
    }, opts));
}

const last = () => FakeWS.all[FakeWS.all.length - 1];

test('backoff: full jitter below a doubling cap, reset', () => {
    let r = 0.999999;
    const b = new sdk.Backoff({ base: 100, max: 1000, random: () => r });
    const got = [];
    for (let i = 0; i < 6; i++) {
        got.push(b.next());
    }
    assert.deepEqual(got, [99, 199, 399, 799, 999, 999]);
    r = 0;
    assert.equal(b.next(), 0, 'full jitter reaches 0');
    b.reset();
    r = 0.5;
    assert.equal(b.next(), 50);
    /* a huge attempt count stays at the cap, never NaN or Infinity */
    b.attempt = 5000;
    assert.equal(b.ceiling(), 1000);
    /* the real random source stays within [0, cap) */
    const c = new sdk.Backoff({ base: 10, max: 80 });
    for (let i = 0; i < 200; i++) {
        const cap = c.ceiling();
        const d = c.next();
        assert.ok(d >= 0 && d < cap, `${d} within [0, ${cap})`);
    }
});

test('dedup window: bounded, oldest out first', () => {
    const w = new sdk.DedupWindow(3);
    assert.equal(w.add('a'), true);
    assert.equal(w.add('b'), true);
    assert.equal(w.add('a'), false, 'a repeat is refused');
    assert.equal(w.add('c'), true);
    assert.equal(w.add('d'), true);
    assert.equal(w.length, 3);
    assert.equal(w.has('a'), false, 'the oldest went');
    assert.equal(w.has('d'), true);
    w.set('b', 'acked');
    assert.equal(w.get('b'), 'acked');
    assert.throws(() => new sdk.DedupWindow(0), RangeError);
});

test('address cache: per network, ttl, failed addresses dropped', () => {
    let now = 1000;
    const c = new sdk.AddressCache(() => now);
    c.put('wifi', ['a:1', 'b:2'], 10);
    c.put('cell', ['c:3'], 10);
    assert.deepEqual(c.get('wifi').addrs, ['a:1', 'b:2']);
    assert.deepEqual(c.get('cell').addrs, ['c:3']);
    assert.equal(c.get(''), null);
    c.fail('wifi', 'a:1');
    assert.deepEqual(c.get('wifi').addrs, ['b:2']);
    c.fail('wifi', 'b:2');
    assert.equal(c.get('wifi'), null, 'an emptied list is gone');
    now += 10000;
    assert.equal(c.get('cell'), null, 'expired after its ttl');
});

test('client: connect URL, welcome, states, heartbeat values', async () => {
    const c = client({ hb: 30 });
    const states = [];
    c.on('state', (s) => states.push(s));
    c.connect();
    await until(() => FakeWS.all.length === 1, 'a socket');
    const u = new URL(last().url);
    assert.equal(u.origin + u.pathname, 'ws://pushd.test:8080/connect');
    assert.equal(u.searchParams.get('uid'), 'alice');
    assert.equal(u.searchParams.get('device'), 'phone');
    assert.equal(u.searchParams.get('apps'), 'chat');
    assert.equal(u.searchParams.get('token'), 'tok');
    assert.equal(u.searchParams.get('hb'), '30');
    assert.equal(u.searchParams.get('sid'), null, 'no sid the first time');
    last().welcome({ hb: 30 });
    assert.equal(c.state, 'connected');
    assert.equal(c.sid, 'n1-s1');
    assert.equal(c.hb, 30);
    assert.deepEqual(states, ['connecting', 'connected']);
    c.close();
    assert.deepEqual(states, ['connecting', 'connected', 'disconnected']);
    assert.equal(last().closedBy.code, 1000);
});

test('client: qos 1 acked after the handler, once; duplicates re-acked',
     async () => {
    const c = client();
    const got = [];
    c.on('message', (m) => got.push(m));
    c.connect();
    await until(() => FakeWS.all.length === 1, 'a socket');
    const ws = last();
    ws.welcome();
    ws.recv({ op: 'msg', id: 'n-1', app: 'chat', qos: 1, data: { a: 1 } });
    ws.recv({ op: 'msg', id: 'n-2', app: 'chat', qos: 1, data: 2 });
    ws.recv({ op: 'msg', id: 'n-1', app: 'chat', qos: 1, data: { a: 1 } });
    ws.recv({ op: 'msg', id: 'n-3', app: 'chat', qos: 0, data: 3 });
    ws.recv({ op: 'msg', id: 'n-3', app: 'chat', qos: 0, data: 3 });
    assert.deepEqual(got.map((m) => m.id), ['n-1', 'n-2', 'n-3', 'n-3'],
                     'qos 1 once, qos 0 as it comes');
    assert.deepEqual(got[0], { id: 'n-1', app: 'chat', qos: 1,
                               data: { a: 1 } });
    await until(() => ws.frames('ack').length > 0, 'an ack frame');
    await tick();
    const acked = ws.frames('ack').flatMap((f) => f.ids);
    assert.deepEqual(acked.sort(), ['n-1', 'n-1', 'n-2'],
                     'n-1 acked again when it came again, qos 0 never');
    assert.equal(c.counters.duplicates, 1);
    assert.equal(c.counters.messages, 4);
    c.close();
});

test('client: an async handler is awaited before the ack; a failing one '
     + 'is not acked and its redelivery is handed again', async () => {
    const c = client();
    let release;
    let fail = true;
    const errors = [];
    c.on('error', (e) => errors.push(e.message));
    c.on('message', (m) => {
        if (m.id === 'slow') {
            return new Promise((r) => { release = r; });
        }
        if (m.id === 'bad' && fail) {
            fail = false;
            throw new Error('handler broke');
        }
        return undefined;
    });
    c.connect();
    await until(() => FakeWS.all.length === 1, 'a socket');
    const ws = last();
    ws.welcome();
    ws.recv({ op: 'msg', id: 'slow', app: 'chat', qos: 1, data: 0 });
    ws.recv({ op: 'msg', id: 'bad', app: 'chat', qos: 1, data: 0 });
    await tick();
    await tick();
    assert.equal(ws.frames('ack').length, 0, 'nothing acked yet');
    assert.deepEqual(errors, ['handler broke']);
    release();
    await until(() => ws.frames('ack').length === 1, 'the slow ack');
    assert.deepEqual(ws.frames('ack')[0].ids, ['slow']);
    ws.recv({ op: 'msg', id: 'bad', app: 'chat', qos: 1, data: 0 });
    await until(() => ws.frames('ack').length === 2, 'the second ack');
    assert.deepEqual(ws.frames('ack')[1].ids, ['bad']);
    assert.equal(c.counters.handlerErrors, 1);
    c.close();
});

test('client: manual acks, kept while offline, sent on the next welcome',
     async () => {
    const c = client({ manualAck: true });
    const got = [];
    c.on('message', (m) => got.push(m.id));
    c.connect();
    await until(() => FakeWS.all.length === 1, 'a socket');
    let ws = last();
    ws.welcome();
    ws.recv({ op: 'msg', id: 'm1', app: 'chat', qos: 1, data: 0 });
    await tick();
    assert.equal(ws.frames('ack').length, 0, 'no ack until ack()');
    ws.serverClose(1006);
    assert.equal(c.state, 'disconnected');
    c.ack('m1');
    await until(() => FakeWS.all.length === 2, 'a reconnect');
    ws = last();
    assert.equal(new URL(ws.url).searchParams.get('sid'), 'n1-s1',
                 'a reconnect names the last sid');
    ws.welcome({ sid: 'n1-s2', resumed: false });
    /* the server sends m1 again (it never got the ack) before reading ours */
    ws.recv({ op: 'msg', id: 'm1', app: 'chat', qos: 1, data: 0 });
    await until(() => ws.frames('ack').length >= 1, 'the held ack');
    await tick();
    assert.deepEqual(got, ['m1'], 'handed once');
    assert.ok(ws.frames('ack').flatMap((f) => f.ids).includes('m1'));
    assert.equal(c.resumed, false);
    c.close();
});

test('client: reconnect frame delay, kick stays away, connect() after',
     async () => {
    const c = client({ backoffBase: 5000, backoffMax: 5000 });
    const states = [];
    const delays = [];
    c.on('state', (s) => states.push(s));
    c.on('retry', (d) => delays.push(d));
    c.connect();
    await until(() => FakeWS.all.length === 1, 'a socket');
    last().welcome();
    last().recv({ op: 'reconnect', after_ms: 7 });
    last().serverClose(1001);
    assert.deepEqual(delays, [7], 'after_ms, not the 5 s backoff');
    await until(() => FakeWS.all.length === 2, 'the reconnect');
    last().welcome({ resumed: true });
    assert.equal(c.counters.resumed, 1);
    last().recv({ op: 'kick', reason: 'bye' });
    last().serverClose(1008, 'kicked');
    assert.equal(c.state, 'kicked');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(FakeWS.all.length, 2, 'no reconnect after a kick');
    c.connect();
    await until(() => FakeWS.all.length === 3, 'connect() again');
    assert.equal(new URL(last().url).searchParams.get('sid'), null,
                 'a kicked session is not resumed');
    assert.deepEqual(states, ['connecting', 'connected', 'disconnected',
        'connecting', 'connected', 'kicked', 'connecting']);
    c.close();
});

test('client: a link with no answer to a ping is given up', async () => {
    const c = client({ pingInterval: 20, pongTimeout: 30 });
    c.connect();
    await until(() => FakeWS.all.length === 1, 'a socket');
    const ws = last();
    ws.welcome();
    await until(() => ws.frames('ping').length >= 1, 'a ping');
    ws.recv({ op: 'pong' });
    await until(() => FakeWS.all.length === 2, 'a reconnect', 3000);
    assert.ok(ws.closedBy, 'the dead socket was closed by the client');
    assert.equal(c.counters.deadLinks, 1);
    assert.ok(c.counters.pongs >= 1);
    c.close();
});

test('client: getToken when the token is stale or refused', async () => {
    let calls = 0;
    const c = client({
        token: 'given', expires: Math.floor(Date.now() / 1000) + 3600,
        getToken: async () => {
            calls++;
            return { token: `t${calls}`,
                     expires: Math.floor(Date.now() / 1000) + 3600 };
        },
    });
    c.connect();
    await until(() => FakeWS.all.length === 1, 'a socket');
    assert.equal(new URL(last().url).searchParams.get('token'), 'given');
    /* refused: the built-in WebSocket does not say why */
    last().refuse('');
    await until(() => FakeWS.all.length === 2, 'a second try');
    assert.equal(new URL(last().url).searchParams.get('token'), 't1',
                 'a fresh token after a refusal');
    last().refuse('');
    await until(() => FakeWS.all.length === 3, 'a third try');
    assert.equal(new URL(last().url).searchParams.get('token'), 't1',
                 'not asked again within the same run of failures');
    last().refuse('the upgrade was refused: 401 {"error":"token expired"}');
    await until(() => FakeWS.all.length === 4, 'a fourth try');
    assert.equal(new URL(last().url).searchParams.get('token'), 't2',
                 'a 401 the WebSocket class reports is always a refresh');
    last().welcome();
    /* the token goes stale while connected: a reconnect asks first */
    c.expires = Math.floor(Date.now() / 1000) + 5;
    last().serverClose(1006);
    await until(() => FakeWS.all.length === 5, 'a reconnect');
    assert.equal(new URL(last().url).searchParams.get('token'), 't3');
    assert.equal(calls, 3);
    assert.equal(c.counters.tokenRefreshes, 3);
    c.close();
});

test('client: up resolves on upack and reply, rejects on error', async () => {
    const c = client({ replyWait: 300 });
    c.connect();
    await until(() => FakeWS.all.length === 1, 'a socket');
    const ws = last();
    ws.welcome();
    const a = c.up('chat', 'text', { t: 1 });
    const b = c.up('chat', 'text', { t: 2 });
    const e = c.up('chat', 'bad', {});
    const [fa, fb, fe] = ws.frames('up');
    assert.deepEqual(Object.keys(fa).sort(), ['app', 'data', 'id', 'op',
                                              'type']);
    ws.recv({ op: 'upack', id: fa.id });
    ws.recv({ op: 'reply', id: fa.id, data: { ok: true } });
    ws.recv({ op: 'upack', id: fb.id });
    ws.recv({ op: 'error', id: fe.id, error: 'no route' });
    assert.deepEqual(await a, { id: fa.id, data: { ok: true } });
    await assert.rejects(e, /no route/);
    assert.deepEqual(await b, { id: fb.id, data: undefined });
    const t = c.up('chat', 'text', 1, { timeout: 20 });
    await assert.rejects(t, /within 20 ms/);
    ws.serverClose(1006);
    await assert.rejects(c.up('chat', 'text', 1), /not connected/);
    assert.equal(c.counters.upAcked, 2);
    assert.equal(c.counters.upFailed, 3);
    c.close();
});

test('client: bind and unbind frames, apps of the next connect', async () => {
    const c = client();
    c.connect();
    await until(() => FakeWS.all.length === 1, 'a socket');
    last().welcome();
    c.bind('news');
    c.unbind('chat');
    assert.deepEqual(last().sent, [{ op: 'bind', app: 'news' },
                                   { op: 'unbind', app: 'chat' }]);
    last().serverClose(1006);
    await until(() => FakeWS.all.length === 2, 'a reconnect');
    assert.equal(new URL(last().url).searchParams.get('apps'), 'news');
    c.close();
});

test('client: dispatcher list cached per network, failed= on retry',
     async () => {
    const asked = [];
    const answers = {
        '': ['h1:1', 'h2:2'],
        cell: ['c1:3'],
    };
    const fetchFn = async (url) => {
        const u = new URL(url);
        asked.push(u.search);
        const net = u.searchParams.get('net') || '';
        const failed = (u.searchParams.get('failed') || '').split(',');
        return {
            ok: true, status: 200,
            json: async () => ({
                uid: 'alice', ttl: 60,
                addrs: answers[net].filter((a) => !failed.includes(a))
                    .concat(failed[0] ? ['h3:3'] : []),
                reconnect: { base_ms: 1, max_ms: 3 },
            }),
        };
    };
    FakeWS.all = [];
    const c = new sdk.PushdClient({
        dispatchUrl: 'http://disp.test:8080', uid: 'alice', device: 'p',
        apps: ['chat'], token: 't', expires: 2e9, WebSocket: FakeWS,
        fetch: fetchFn,
    });
    c.connect();
    await until(() => FakeWS.all.length === 1, 'a socket');
    assert.equal(new URL(last().url).host, 'h1:1');
    assert.equal(c.backoff.max, 3, 'the dispatcher\'s policy');
    last().refuse('');
    await until(() => FakeWS.all.length === 2, 'the next address');
    assert.equal(new URL(last().url).host, 'h2:2', 'from the cache');
    assert.equal(asked.length, 1);
    last().refuse('');
    await until(() => FakeWS.all.length === 3, 'a new list');
    assert.equal(asked.length, 2);
    assert.match(asked[1], /failed=h1%3A1%2Ch2%3A2/);
    assert.equal(new URL(last().url).host, 'h3:3');
    last().welcome();
    c.setNet('cell');
    last().serverClose(1006);
    await until(() => FakeWS.all.length === 4, 'a reconnect on cell');
    assert.equal(new URL(last().url).host, 'c1:3');
    assert.match(asked[2], /net=cell/);
    assert.doesNotMatch(asked[2], /failed=/, 'reset after a welcome');
    c.setNet('');
    last().serverClose(1006);
    await until(() => FakeWS.all.length === 5, 'back on the default net');
    assert.equal(asked.length, 3, 'the default list is still cached');
    c.close();
});

test('client: connect() while getToken runs starts no second attempt; '
     + 'close() meanwhile starts none', async () => {
    let release;
    const c = client({ token: undefined, expires: undefined,
        getToken: () => new Promise((r) => { release = r; }) });
    c.connect();
    c.connect();
    await until(() => release, 'getToken called');
    release({ token: 't', expires: Math.floor(Date.now() / 1000) + 3600 });
    await until(() => FakeWS.all.length === 1, 'one socket');
    c.connect();
    await tick();
    assert.equal(FakeWS.all.length, 1, 'still one socket');
    c.close();
    release = null;
    c.expires = Math.floor(Date.now() / 1000);     /* stale: ask again */
    c.connect();
    await until(() => release, 'getToken again');
    c.close();
    release({ token: 't2', expires: Math.floor(Date.now() / 1000) + 3600 });
    await tick();
    await tick();
    assert.equal(FakeWS.all.length, 1, 'closed before the token came');
    assert.equal(c.state, 'closed');
});

test('client: a resume that gets no welcome in time is not tried again; '
     + 'a fast failure keeps the sid', async () => {
    const c = client({ connectTimeout: 40 });
    c.connect();
    await until(() => FakeWS.all.length === 1, 'a socket');
    last().welcome({ sid: 'n1-keep' });
    last().serverClose(1006);
    await until(() => FakeWS.all.length === 2, 'a reconnect');
    assert.equal(new URL(last().url).searchParams.get('sid'), 'n1-keep');
    last().refuse('');                 /* no network: fails at once */
    await until(() => FakeWS.all.length === 3, 'another try');
    assert.equal(new URL(last().url).searchParams.get('sid'), 'n1-keep',
                 'kept after a fast failure');
    /* this one hangs (its session's worker is stuck) */
    await until(() => FakeWS.all.length === 4, 'a try after the timeout');
    assert.equal(FakeWS.all[2].closedBy.code, 1000, 'the hung one closed');
    assert.equal(new URL(last().url).searchParams.get('sid'), null,
                 'a fresh session next');
    last().welcome({ sid: 'n1-new', resumed: false });
    assert.equal(c.sid, 'n1-new');
    c.close();
});
