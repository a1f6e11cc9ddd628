'use strict';
/*
 * tls.test.js: a room listener with "ssl": TLS 1.2 and 1.3 handshakes
 * with openssl s_client, HTTP over TLS with curl and node:tls, session
 * resumption across connections (and so across workers), and garbage
 * on the TLS port.
 */

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
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
