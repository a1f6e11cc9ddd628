'use strict';
/*
 * tls.test.js: a room listener with "ssl": TLS 1.2 and 1.3 handshakes
 * with openssl s_client, HTTP over TLS with curl and node:tls, session
 * resumption across connections (and so across workers), garbage on
 * the TLS port, the listen forms "port" and "addr:port ssl", and the
 * center over TLS (its own certificate or the room's).
 */

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');
const L = require('./lib.js');

const T = { timeout: 60000 };

function sClient(port, ...args) {
    const r = spawnSync('openssl', ['s_client', '-connect',
                                    `127.0.0.1:${port}`, '-servername',
                                    'localhost', ...args],
                        { encoding: 'utf8', input: '', timeout: 10000 });
    return { status: r.status, out: (r.stdout || '') + (r.stderr || '') };
}

test('TLS 1.2 and 1.3 handshakes and HTTPS GET /', T, async () => {
    await L.withPushd({ roomSsl: true }, async (d) => {
        const v12 = sClient(d.sslPort, '-tls1_2');
        assert.match(v12.out,
                     /New, TLSv1\.2, Cipher is |Protocol\s*:\s*TLSv1\.2/,
                     v12.out);
        const v13 = sClient(d.sslPort, '-tls1_3');
        assert.match(v13.out,
                     /New, TLSv1\.3, Cipher is |Protocol\s*:\s*TLSv1\.3/,
                     v13.out);

        const c = L.curl(['-k', `https://127.0.0.1:${d.sslPort}/`]);
        assert.strictEqual(c.status, 0, c.stderr);
        assert.strictEqual(c.code, 200);
        const n = L.curl(['-k', `https://127.0.0.1:${d.sslPort}/nope`]);
        assert.strictEqual(n.code, 404);

        const r = await L.request(d.sslPort, 'GET', '/', {}, undefined,
                                  { tls: true });
        assert.strictEqual(r.status, 200);

        /* the plain listener of the same room still speaks plain HTTP */
        const p = await L.request(d.roomPort, 'GET', '/');
        assert.strictEqual(p.status, 200);
    });
});

test('TLS 1.2 session resumption', T, async () => {
    await L.withPushd({ roomSsl: true }, async (d) => {
        const sess = path.join(d.prefix, 'tls12.sess');
        const first = sClient(d.sslPort, '-tls1_2', '-sess_out', sess);
        assert.match(first.out, /New, TLSv1\.2/, first.out);
        assert.ok(fs.existsSync(sess), 'a session was saved');
        /* several tries: new connections spread over both workers */
        for (let i = 0; i < 6; i++) {
            const again = sClient(d.sslPort, '-tls1_2', '-sess_in', sess);
            assert.match(again.out, /Reused, TLSv1\.2/,
                         `attempt ${i}: ${again.out}`);
        }
    });
});

test('garbage on the TLS port closes that connection only', T, async () => {
    await L.withPushd({ roomSsl: true }, async (d) => {
        const workers = d.workerPids();
        const inputs = [
            'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
            /* not a TLS record type at all */
            Buffer.concat([Buffer.from([0x00, 0x00, 0x00]),
                           crypto.randomBytes(4093)]),
            /* a complete handshake record holding random bytes */
            Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00]),
                           crypto.randomBytes(256)]),
        ];
        for (const bytes of inputs) {
            const r = await L.httpRaw(d.sslPort, bytes, { timeout: 10000 });
            assert.ok(r.closed && !r.timedOut,
                      `closed by the server (error=${r.error})`);
            assert.ok(!/^HTTP\/1\.1 200/.test(r.text), 'no plain answer');
        }
        const c = L.curl(['-k', `https://127.0.0.1:${d.sslPort}/`]);
        assert.strictEqual(c.code, 200, c.stderr);
        assert.deepStrictEqual(d.workerPids(), workers, 'no worker died');
    });
});

test('a burst of handshakes on one worker waits its turns: every one '
     + 'completes and is served, a client in the middle too', T, async () => {
    await L.withPushd({ workers: 1, roomSsl: true }, async (d) => {
        /* 300 HTTPS requests, 64 at a time: with an RSA-2048 key one
         * handshake's signature is about 1 ms, past a turn's budget
         * (PD_SSL_HANDSHAKE_TURN_NSEC), so the worker leaves the other
         * ClientHellos of each turn waiting for the next ones */
        let next = 0;
        const codes = [];
        const one = async () => {
            while (next < 300) {
                next++;
                const r = await L.request(d.sslPort, 'GET', '/', {},
                                          undefined, { tls: true });
                codes.push(r.status);
            }
        };
        const middle = (async () => {
            await L.waitFor(() => codes.length >= 100, 30000,
                            'a third of the burst');
            return L.request(d.sslPort, 'GET', '/nope', {}, undefined,
                             { tls: true });
        })();
        await Promise.all(Array.from({ length: 64 }, one));
        assert.strictEqual(codes.length, 300);
        assert.deepStrictEqual([...new Set(codes)], [200]);
        assert.strictEqual((await middle).status, 404);

        const m = await L.metrics(d);
        const deferred = m.get('pushd_tls_handshakes_deferred_total');
        assert.ok(deferred > 0, `handshakes left for a later turn: `
                                + `${deferred}`);
        const k = await L.centerConn(d);
        const st = await k.get('/v1/stats');
        k.close();
        assert.strictEqual(st.status, 200, st.body);
        assert.strictEqual(st.json.workers[0].tls_handshakes_deferred,
                           deferred, st.body);
    });
});

test('a client silent in its TLS handshake does not hold a retiring '
     + 'worker past worker_shutdown_timeout', T, async () => {
    await L.withPushd({ workers: 1, roomSsl: true,
                        top: { worker_shutdown_timeout: '1s' } },
                      async (d) => {
        const [old] = d.workerPids();
        /* connected to the TLS port, no ClientHello: the handshake
         * timeout of a listener is 10 s */
        const sock = net.connect(d.sslPort, '127.0.0.1');
        await new Promise((r, j) => sock.once('connect', r)
                                        .once('error', j));
        const closed = new Promise((r) => sock.once('close', r));
        sock.on('error', () => {});
        await L.waitFor(async () => (await L.metrics(d))
                        .get('pushd_connections') >= 1, 5000,
                        'the connection accepted');
        const t0 = Date.now();
        process.kill(d.masterPid, 'SIGHUP');
        await L.waitFor(() => !L.procAlive(old), 7000,
                        'the old worker gone before the handshake timeout');
        await closed;
        assert.ok(Date.now() - t0 < 7000);
        assert.match(d.logText(), /worker_shutdown_timeout: closing/);
    });
});

test('room.listen forms "port" (every address) and "addr:port ssl"', T,
     async () => {
    const c = L.certPair();
    await L.withPushd({
        roomSsl: true,
        roomListen: (room, ssl) => [`${room}`, `127.0.0.1:${ssl} ssl`],
        room: { ssl_certificate: c.cert, ssl_certificate_key: c.key },
    }, async (d) => {
        /* the bare port listens on every address: 127.0.0.2 too */
        const plain = await L.request(d.roomPort, 'GET', '/');
        assert.strictEqual(plain.status, 200);
        assert.ok(await L.tcpConnects(d.roomPort, '127.0.0.2'),
                  'the bare port listens on 127.0.0.2');
        /* "127.0.0.1:port ssl": TLS there, and only there */
        const r = await L.request(d.sslPort, 'GET', '/', {}, undefined,
                                  { tls: true });
        assert.strictEqual(r.status, 200);
        assert.ok(!(await L.tcpConnects(d.sslPort, '127.0.0.2')),
                  'the addressed ssl listener is on 127.0.0.1 only');
        const clear = await L.httpRaw(d.sslPort,
                                      'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
                                      { timeout: 10000 });
        assert.ok(!/^HTTP\/1\.1 200/.test(clear.text),
                  'no plain HTTP on the ssl port');
    });
});

/* GET /v1/stats twice on one TLS connection to the center */
async function centerOverTls(d) {
    const req = 'GET /v1/stats HTTP/1.1\r\nHost: x\r\n'
                + `Authorization: Bearer ${d.apiKey}\r\n\r\n`;
    return L.httpRaw(d.centerPort, [req, req],
                     { tls: true, responses: 2, timeout: 10000 });
}

test('center.listen with ssl: its own certificate; keep-alive over TLS; '
     + 'no plain HTTP there', T, async () => {
    const c = L.certPair();
    await L.withPushd({ centerSsl: true, center: {
        ssl_certificate: c.cert, ssl_certificate_key: c.key,
    } }, async (d) => {
        const r = await centerOverTls(d);
        assert.strictEqual(r.responses.length, 2, r.text.slice(0, 300));
        for (const res of r.responses) {
            assert.strictEqual(res.status, 200, res.body);
            assert.strictEqual(typeof JSON.parse(res.body).workers,
                               'object');
        }
        const s = sClient(d.centerPort, '-tls1_3');
        assert.match(s.out, /New, TLSv1\.3, Cipher is |Protocol\s*:\s*TLSv1\.3/,
                     s.out);
        const cu = L.curl(['-k', '-H', `Authorization: Bearer ${d.apiKey}`,
                           `https://127.0.0.1:${d.centerPort}/v1/stats`]);
        assert.strictEqual(cu.code, 200, cu.body + cu.stderr);
        const plain = await L.httpRaw(d.centerPort,
            `GET /v1/stats HTTP/1.1\r\nHost: x\r\n`
            + `Authorization: Bearer ${d.apiKey}\r\n\r\n`,
            { timeout: 10000 });
        assert.ok(!/^HTTP\/1\.1 200/.test(plain.text),
                  'no plain HTTP on the ssl port');
    });
});

test('center.listen with ssl takes the room\'s certificate by default; '
     + 'without any, the configuration is refused', T, async () => {
    const c = L.certPair();
    await L.withPushd({ centerSsl: true, room: {
        ssl_certificate: c.cert, ssl_certificate_key: c.key,
    } }, async (d) => {
        const r = await centerOverTls(d);
        assert.strictEqual(r.responses.length, 2, r.text.slice(0, 300));
        assert.strictEqual(r.responses[1].status, 200);
    });

    const prefix = L.makePrefix();
    try {
        const f = path.join(prefix, 'conf', 'c.yml');
        fs.writeFileSync(f, L.toYaml({
            room: { listen: ['127.0.0.1:28081'],
                    auth_secret: L.AUTH_SECRET },
            center: { listen: ['127.0.0.1:28091 ssl'], api_key: L.API_KEY },
        }));
        const r = L.runPushd(['-p', prefix, '-t', '-c', f]);
        assert.strictEqual(r.status, 1, r.out);
        assert.match(r.stderr, new RegExp('"center" has an ssl listener but '
            + 'no "ssl_certificate" and "ssl_certificate_key", its own or '
            + 'the room\'s'));

        fs.writeFileSync(f, L.toYaml({
            room: { listen: ['127.0.0.1:28081'],
                    auth_secret: L.AUTH_SECRET },
            center: { listen: ['127.0.0.1:28091 ssl'], api_key: L.API_KEY,
                      ssl_certificate: c.cert },
        }));
        const half = L.runPushd(['-p', prefix, '-t', '-c', f]);
        assert.strictEqual(half.status, 1, half.out);
        assert.match(half.stderr,
                     /needs both "ssl_certificate" and "ssl_certificate_key"/);
    } finally {
        fs.rmSync(prefix, { recursive: true, force: true });
    }
});
