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

module.exports = { sendSplit, cut, post, get };
