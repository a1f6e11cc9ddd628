'use strict';
/*
 * tls_tickets.test.js: session tickets with rotating keys, seen from
 * openssl s_client.  Within a period a ticket resumes, on every worker
 * (the key ring is shared), with TLS 1.2 and 1.3; with
 * room.ssl_ticket_key_rotation at 1s a ticket stops resuming within two
 * periods (and one period of session lifetime).
 */

const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const L = require('./lib.js');

const T = { timeout: 60000 };

/*
 * One s_client connection; HTTP/1.0 GET / is sent so that it reads to
 * the server's close, after the TLS 1.3 ticket.  "New" or "Reused".
 */
function sClient(port, version, ...args) {
    const r = spawnSync('openssl', ['s_client', '-connect',
                                    `127.0.0.1:${port}`, '-servername',
                                    'localhost', '-ign_eof', `-${version}`,
                                    ...args],
                        { encoding: 'utf8',
                          input: 'GET / HTTP/1.0\r\n\r\n',
                          timeout: 10000 });
    const out = (r.stdout || '') + (r.stderr || '');
    const m = /^(New|Reused), TLSv1\.[23]/m.exec(out);
    assert.ok(m, out);
    return m[1];
}

async function accepted(d) {
    const r = await L.centerGet(d, '/v1/stats');
    assert.strictEqual(r.status, 200, r.body);
    return new Map(JSON.parse(r.body).workers.map((w) => [w.pid,
                                                          w.accepted]));
}

for (const version of ['tls1_2', 'tls1_3']) {
    test(`${version}: a ticket resumes on every worker within a period`, T,
         async () => {
        await L.withPushd({ roomSsl: true, workers: 2 }, async (d) => {
            const sess = path.join(d.prefix, `${version}.sess`);
            assert.strictEqual(sClient(d.sslPort, version, '-sess_out',
                                       sess), 'New');

            const before = await accepted(d);
            for (let i = 0; i < 12; i++) {
                assert.strictEqual(sClient(d.sslPort, version, '-sess_in',
                                           sess), 'Reused', `attempt ${i}`);
            }
            const after = await accepted(d);

            /* SO_REUSEPORT spread them: each worker resumed some */
            assert.strictEqual(after.size, 2);
            for (const [pid, n] of after) {
                assert.ok(n > before.get(pid), `worker ${pid} took none of `
                          + 'the 12');
            }
        });
    });
}

test('with a 1s rotation a ticket stops resuming within two periods', T,
     async () => {
    await L.withPushd({ roomSsl: true,
                        room: { ssl_ticket_key_rotation: '1s' } },
                      async (d) => {
        const sess = path.join(d.prefix, 'rot.sess');
        assert.strictEqual(sClient(d.sslPort, 'tls1_3', '-sess_out', sess),
                           'New');
        const t0 = Date.now();
        assert.strictEqual(sClient(d.sslPort, 'tls1_3', '-sess_in', sess),
                           'Reused');

        /* the same old ticket offered again and again until refused */
        await L.waitFor(() => sClient(d.sslPort, 'tls1_3', '-sess_in',
                                      sess) === 'New', 5000,
                        'the ticket to stop resuming');
        assert.ok(Date.now() - t0 <= 3000, `${Date.now() - t0} ms`);
    });
});
