'use strict';
/*
 * abuse.test.js: the internet at its worst, all at once, against one
 * daemon: slowloris connections on the room and the center, header and
 * frame floods, 1-byte fragments, ping floods, oversize frames and
 * bodies, connections of random bytes on every port, bad tokens (wrong
 * case, wrong length, expired), a uid reaching for another's messages,
 * and API calls without or with a wrong key (bounded per address).
 * Meanwhile a normal client still connects and gets its messages, and
 * no worker dies (the harness fails a test whose log shows a worker
 * exiting on a signal or a sanitizer report).
 */

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const net = require('node:net');
const tls = require('node:tls');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 180000 };

function conf() {
    return {
        workers: 2,
        roomSsl: true,
        top: {
            register: { memory: '8m' },
            saver: { memory: '16m' },
        },
        room: { auth_secret: W.SECRET, max_connections_per_ip: 0,
                handshake_timeout: '5s' },
        center: { keepalive_timeout: '5s', request_timeout: '5s' },
    };
}

/* n sockets to port that send a few bytes of a request, one per second,
 * and never finish; they are kept until closed */
function slowloris(port, n, head) {
    const socks = [];
    for (let i = 0; i < n; i++) {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.on('error', () => {});
        s.on('data', () => {});
        s.on('close', () => { s.closedHere = true; });
        s.once('connect', () => s.write(head.slice(0, 5)));
        socks.push(s);
    }
    let off = 5;
    const timer = setInterval(() => {
        for (const s of socks) {
            if (!s.closedHere && off < head.length) {
                s.write(head.slice(off, off + 1));
            }
        }
        off++;
    }, 1000);
    return {
        socks,
        closedByServer: () => socks.filter((s) => s.closedHere).length,
        stop: () => {
            clearInterval(timer);
            for (const s of socks) {
                s.destroy();
            }
        },
    };
}

/* one connection that writes bytes and waits for the server to answer
 * or close; resolves to what came back */
function poke(port, bytes, opts = {}) {
    return new Promise((resolve) => {
        const got = [];
        const s = opts.tls
            ? tls.connect({ port, host: '127.0.0.1',
                            rejectUnauthorized: false })
            : net.connect({ port, host: '127.0.0.1' });
        const done = () => {
            clearTimeout(timer);
            s.destroy();
            resolve(Buffer.concat(got));
        };
        const timer = setTimeout(done, opts.timeout || 10000);
        s.on('data', (c) => got.push(c));
        s.on('end', done);
        s.on('close', done);
        s.on('error', done);
        s.once(opts.tls ? 'secureConnect' : 'connect', () => s.write(bytes));
    });
}

test('abuse on every port while a normal client is served', T,
     async () => {
    await L.withPushd(conf(), async (d) => {
        const roomHead = Buffer.from('GET /connect?uid=x&device=y HTTP/1.1'
                                     + '\r\nHost: x\r\nX-A: '
                                     + 'a'.repeat(200) + '\r\n\r\n');
        const centerHead = Buffer.from('POST /v1/push HTTP/1.1\r\nHost: x'
                                       + '\r\nContent-Length: 10\r\n\r\n');
        const slowRoom = slowloris(d.roomPort, 1000, roomHead);
        const slowCenter = slowloris(d.centerPort, 250, centerHead);

        /* the normal client, from the start */
        const good = await W.rawOpen(d.roomPort, 'good', 'phone');

        /* 300 connections of random bytes on each port */
        const junk = [];
        for (const [port, o] of [[d.roomPort, {}], [d.centerPort, {}],
                                 [d.sslPort, {}], [d.sslPort, { tls: true }]]) {
            for (let i = 0; i < 150; i++) {
                junk.push(poke(port, crypto.randomBytes(64 + i * 7),
                               Object.assign({ timeout: 8000 }, o)));
            }
        }

        /* a header flood: 20000 headers, and a 100 KB line */
        const flood = await poke(d.roomPort, Buffer.from(
            'GET /connect HTTP/1.1\r\n'
            + 'X-Flood: 1\r\n'.repeat(20000) + '\r\n'));
        assert.match(flood.toString('latin1'), /^HTTP\/1\.1 (431|400)/);
        const longLine = await poke(d.centerPort, Buffer.from(
            `GET /${'a'.repeat(100000)} HTTP/1.1\r\n\r\n`));
        assert.match(longLine.toString('latin1'), /^HTTP\/1\.1 (414|431)/);

        /* an oversize body is refused before it is read */
        const big = await poke(d.centerPort, Buffer.from(
            'POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer '
            + `${d.apiKey}\r\nContent-Length: 1000000000\r\n\r\n`));
        assert.match(big.toString('latin1'), /^HTTP\/1\.1 413/);

        /* frames: a flood of bad ones, an oversize one, 1-byte
         * fragments, a ping flood */
        const bad = await W.rawOpen(d.roomPort, 'bad', 'phone');
        for (let i = 0; i < 2000; i++) {
            bad.sendText('not json');
        }
        const bc = await bad.closeFrame(10000);
        assert.ok(bc, 'the bad-frame flooder is closed');

        const huge = await W.rawOpen(d.roomPort, 'huge', 'phone');
        huge.send({ opcode: W.OP.TEXT, payload: 'x', len: 2 ** 40 });
        assert.ok(await huge.waitEnd(10000), 'an oversize frame closes it');

        const frag = await W.rawOpen(d.roomPort, 'frag', 'phone');
        const ping = JSON.stringify({ op: 'ping' });
        for (let i = 0; i < ping.length; i++) {
            frag.send({ opcode: i === 0 ? W.OP.TEXT : W.OP.CONT,
                        fin: i === ping.length - 1, payload: ping[i] });
        }
        assert.strictEqual((await frag.op('pong', 10000)).op, 'pong');

        const pinger = await W.rawOpen(d.roomPort, 'pinger', 'phone');
        for (let i = 0; i < 5000; i++) {
            pinger.send({ opcode: W.OP.PING, payload: 'p' });
        }

        /* tokens: wrong case, wrong length, expired, another uid's */
        const exp = W.future();
        const tok = W.makeToken(W.SECRET, 'vic', 'phone', exp);
        const tries = [
            W.connectPath('vic', 'phone', { expires: exp,
                                            token: tok.toUpperCase() }),
            W.connectPath('vic', 'phone', { expires: exp,
                                            token: tok.slice(0, 63) }),
            W.connectPath('vic', 'phone', { expires: exp,
                                            token: `${tok}0` }),
            W.connectPath('vic', 'phone', { expires: W.future(-10) }),
            W.connectPath('mallory', 'phone', { expires: exp, token: tok }),
        ];
        for (const target of tries) {
            const r = await W.rawConnect(d.roomPort, target);
            assert.ok(r.status === 401 || r.status === 400
                      || r.status === 429, `${target}: ${r.status}`);
        }

        /* one uid reaching for another's message: an ack of its id does
         * nothing to the other's copy */
        const vic = await W.rawOpen(d.roomPort, 'vic', 'phone');
        const mal = await W.rawOpen(d.roomPort, 'mallory', 'phone');
        const p = await L.centerPost(d, '/v1/push', { app: 'a',
            uids: ['vic'], data: 'for vic only', qos: 1 });
        assert.strictEqual(p.status, 200, p.body);
        const vm = await vic.next((f) => f.json && f.json.op === 'msg', 5000,
                                  'vic\'s message');
        mal.sendJson({ op: 'ack', ids: [vm.json.id] });
        mal.sendJson({ op: 'bind', app: 'a' });
        mal.sendJson({ op: 'ping' });
        await mal.op('pong');
        vic.destroy();
        const vic2 = await W.rawOpen(d.roomPort, 'vic', 'phone2');
        const again = await vic2.next((f) => f.json && f.json.op === 'msg',
                                      5000, 'vic\'s unacked message again');
        assert.strictEqual(again.json.data, 'for vic only');
        assert.strictEqual(mal.frames.items.filter((f) => f.json
            && f.json.op === 'msg').length, 0, 'mallory got nothing');

        /* the API without a key, or a wrong one: 401, then 429 per
         * address once center.max_auth_failures (20 per 10 s) is used */
        /* within one 10 s window of the bound (they start on the clock) */
        await L.waitFor(() => Date.now() % 10000 < 2000, 11000,
                        'the start of a failure window');
        const statuses = [];
        for (let i = 0; i < 80; i++) {
            const r = await L.centerPost(d, '/v1/push', { app: 'a',
                uids: ['x'], data: 1 }, i % 2 ? { key: 'wrong-key-0123456789' }
                                              : { auth: false });
            statuses.push(r.status);
        }
        assert.ok(statuses.slice(0, 20).every((s) => s === 401),
                  statuses.join(','));
        assert.ok(statuses.slice(-10).every((s) => s === 429),
                  statuses.join(','));

        /* through all of it, the normal client gets its pushes */
        for (let i = 0; i < 20; i++) {
            const r = await L.centerPost(d, '/v1/push', { app: 'a',
                uids: ['good'], data: { i }, qos: 1 }, { key: d.apiKey });
            /* the wrong-key bound is per address: the good key from the
             * same address still passes once the window turns */
            if (r.status === 429) {
                await L.waitFor(async () => (await L.centerGet(d,
                    '/v1/stats')).status === 200, 15000, 'the window');
                i--;
                continue;
            }
            assert.strictEqual(r.status, 200, r.body);
            const m = await good.next((f) => f.json && f.json.op === 'msg',
                                      5000, `good's message ${i}`);
            assert.deepStrictEqual(m.json.data, { i });
            good.sendJson({ op: 'ack', ids: [m.json.id] });
        }
        const fresh = await W.rawOpen(d.roomPort, 'fresh', 'phone');
        assert.strictEqual(fresh.welcome.op, 'welcome');

        await Promise.all(junk);
        /* the slow ones are cut by the handshake and read timeouts */
        await L.waitFor(() => slowRoom.closedByServer() === 1000
                        && slowCenter.closedByServer() === 250, 30000,
                        'the slowloris connections closed by the server')
            .catch((e) => {
                e.message += ` (room ${slowRoom.closedByServer()} of 1000, `
                           + `center ${slowCenter.closedByServer()} of 250)`;
                throw e;
            });
        slowRoom.stop();
        slowCenter.stop();
        for (const c of [good, pinger, frag, mal, vic2, fresh]) {
            c.destroy();
        }
        assert.doesNotMatch(d.logText(), /exited on signal/);
    });
});

test('a flood is read in slices across loop turns: the pings answered in '
     + 'order, the latest of each turn, a 60 KB frame whole, another client '
     + 'served',
     T, async () => {
    await L.withPushd(Object.assign(conf(), { workers: 1 }), async (d) => {
        const flood = await W.rawOpen(d.roomPort, 'flooder', 'phone');
        const other = await W.rawOpen(d.roomPort, 'other', 'phone');

        /* 3000 pings in one write (about 36 KB, nine 4 KB slices), a
         * 60 KB text frame in the middle, 3000 more */
        const parts = [];
        for (let i = 0; i < 6000; i++) {
            if (i === 3000) {
                parts.push(W.encodeFrame({
                    opcode: W.OP.TEXT,
                    payload: JSON.stringify({ op: 'ping',
                                              pad: 'x'.repeat(60000) }) }));
            }
            parts.push(W.encodeFrame({ opcode: W.OP.PING,
                                       payload: String(i) }));
        }
        flood.send(Buffer.concat(parts));

        /* meanwhile a push to the other client on the same worker */
        const r = await L.centerPost(d, '/v1/push', { app: 'a',
            uids: ['other'], data: 'served' });
        assert.strictEqual(r.status, 200, r.body);
        const m = await other.op('msg', 10000);
        assert.strictEqual(m.data, 'served');

        /* a pong still unsent answers only the latest ping (RFC 6455
         * 5.5.3): the pongs come in order, the one before the text
         * frame's answer answers the ping before it, the last the last */
        const got = [];
        while (got[got.length - 1] !== '5999') {
            const f = await flood.next(() => true, 20000, `frame ${got.length}`);
            got.push(f.opcode === W.OP.PONG ? f.payload.toString()
                     : f.json && f.json.op);
        }
        const at = got.indexOf('pong');
        assert.ok(at > 0, `the text frame answered: ${got.slice(0, 20)}`);
        assert.strictEqual(got[at - 1], '2999', 'the ping before it answered');
        const before = got.slice(0, at).map(Number);
        const after = got.slice(at + 1).map(Number);
        for (const [part, lo, hi] of [[before, 0, 2999], [after, 3000, 5999]]) {
            for (let i = 0; i < part.length; i++) {
                assert.ok(part[i] >= lo && part[i] <= hi
                          && (i === 0 || part[i] > part[i - 1]),
                          `pongs in order: ${part.slice(0, 50)}`);
            }
        }
        assert.strictEqual(flood.tcpClosed, false);
    });
});
