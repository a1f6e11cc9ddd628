'use strict';
/*
 * center.test.js: the center's own access policy: center.allow refuses
 * other addresses with 403 before the key is looked at; allowed ones
 * still need the key.  Keep-alive and pipelining on the API.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');
const WS = require('./ws_client.js');

const T = { timeout: 30000 };

test('center.allow: 403 outside the list, the key still needed inside',
     T, async () => {
    await L.withPushd({ workers: 2, center: { allow: ['10.0.0.0/8'] } },
                      async (d) => {
        const r = await L.centerPost(d, '/v1/push', { app: 'a',
                                                      uids: ['u'],
                                                      data: 1, qos: 0 });
        assert.strictEqual(r.status, 403, r.body);
        assert.strictEqual(typeof (r.json && r.json.error), 'string',
                           r.body);
    });

    await L.withPushd({ workers: 2,
                        center: { allow: ['127.0.0.0/8', '::1'] } },
                      async (d) => {
        const bad = await L.centerPost(d, '/v1/push', {}, { key: 'nope' });
        assert.strictEqual(bad.status, 401, bad.body);

        const good = await L.centerPost(d, '/v1/push', {}, {});
        /* allowed and authorised: now the body is judged */
        assert.strictEqual(good.status, 400, good.body);
    });
});

test('center.allow with a bad entry fails -t with its position', T,
     async () => {
    await L.withPushd({ workers: 1 }, async (d) => {
        d.writeConfig({ center: { allow: ['10.0.0.0/99'] } });
        const r = L.runPushd(['-p', d.prefix, '-c', d.confPath, '-t']);
        assert.strictEqual(r.status, 1, r.stderr);
        assert.match(r.stderr, /:\d+:\d+: "center" invalid address "10\.0\.0\.0\/99"/,
                     r.stderr);
    });
});

test('center keep-alive: requests one after another on one connection, '
     + 'a 404 keeps it open and a 400 closes it, idle past '
     + 'keepalive_timeout it is closed, "Connection: close" closes after '
     + 'the answer', T,
     async () => {
    await L.withPushd({ workers: 2,
                        top: { register: { memory: '8m' },
                               saver: { memory: '8m' } },
                        room: { auth_secret: WS.SECRET },
                        center: { keepalive_timeout: '1s' } }, async (d) => {
        const cl = await WS.connect(d.roomPort, 'ka', 'd1',
                                    { apps: ['a'] });
        const k = await L.centerConn(d);
        const ids = [];
        for (let i = 0; i < 5; i++) {
            const r = await k.post('/v1/push', { app: 'a', uids: ['ka'],
                                                 data: i, qos: 0 });
            assert.strictEqual(r.status, 200, r.body);
            ids.push(r.json.id);
        }
        /* a 404 keeps the connection (a 400 closes it: below) */
        const nf = await k.get('/v1/nope');
        assert.strictEqual(nf.status, 404, nf.body);
        assert.strictEqual(nf.headers.connection, 'keep-alive');
        const st = await k.get('/v1/stats');
        assert.strictEqual(st.status, 200, st.body);
        assert.ok(!k.closed, 'the same connection served all seven');
        for (const id of ids) {
            assert.strictEqual((await cl.op('msg')).id, id, 'in order');
        }

        /* a malformed body: 400 with "Connection: close", then closed
         * (the stream may be out of step after it) */
        const k2 = await L.centerConn(d);
        const bad = await k2.post('/v1/push', '{"app":');
        assert.strictEqual(bad.status, 400, bad.body);
        assert.strictEqual(typeof bad.json.error, 'string');
        assert.strictEqual(bad.headers.connection, 'close');
        await L.waitFor(() => k2.closed, 2000, 'closed after the 400');

        /* idle past keepalive_timeout (1 s): the server closes it */
        const t0 = Date.now();
        await L.waitFor(() => k.closed, 5000, 'the idle connection closed');
        assert.ok(Date.now() - t0 >= 500, `closed after ${Date.now() - t0} ms`
                                          + ' of a 1 s keepalive_timeout');

        const c = await L.keepAlive(d.centerPort);
        const r = await c.request('GET', '/v1/stats', {
            Authorization: `Bearer ${d.apiKey}`, Connection: 'close' });
        assert.strictEqual(r.status, 200);
        await L.waitFor(() => c.closed, 2000, 'closed after the answer');
        cl.close();
    });
});

test('center pipelining: the answers of requests written at once leave '
     + 'in one write; a request cut short does not hold back the answers '
     + 'before it', T, async () => {
    await L.withPushd({ workers: 1,
                        top: { register: { memory: '8m' },
                               saver: { memory: '8m' } },
                        room: { auth_secret: WS.SECRET } }, async (d) => {
        const k = await L.keepAlive(d.centerPort);
        const stats = await L.centerConn(d);
        const auth = { Authorization: `Bearer ${d.apiKey}`,
                       'Content-Type': 'application/json' };
        const push = (i) => k.format('POST', '/v1/push', auth,
                                     JSON.stringify({ app: 'a',
                                                      uids: [`u${i}`],
                                                      data: { i },
                                                      qos: 1 }));
        const writes = async () => {
            const r = await stats.request('GET', '/v1/stats', auth);
            assert.strictEqual(r.status, 200, r.body);
            return r.json.workers.reduce((n, w) => n + w.http_writes, 0);
        };

        /* eight pushes in one segment: eight answers, in order, from
         * one write (two if the segment was read in two parts); each
         * in its own write before.  The stats answer of `before` is
         * the one more write counted. */
        const before = await writes();
        const reqs = [];
        for (let i = 0; i < 8; i++) {
            reqs.push(push(i));
        }
        const res = await k.sendRaw(reqs.join(''), 8);
        const after = await writes();
        assert.deepStrictEqual(res.map((r) => r.status), Array(8).fill(200),
                               res.map((r) => r.body).join('\n'));
        const seqs = res.map((r) => BigInt(`0x${r.json.id.split('-')
                                                 .pop()}`));
        for (let i = 1; i < seqs.length; i++) {
            assert.ok(seqs[i] > seqs[i - 1], 'answered in order');
        }
        assert.ok(after - before - 1 <= 2,
                  `${after - before - 1} writes for 8 pipelined answers`);

        /* three whole requests and the first half of a fourth: the
         * three answers come without the fourth; its rest, later, is
         * answered too */
        const fourth = push(8);
        const cut = Math.floor(fourth.length / 2);
        const three = await k.sendRaw(reqs.slice(0, 3).join('')
                                      + fourth.slice(0, cut), 3, 5000);
        assert.deepStrictEqual(three.map((r) => r.status), [200, 200, 200]);
        const last = await k.sendRaw(fourth.slice(cut), 1, 5000);
        assert.strictEqual(last[0].status, 200, last[0].body);
        assert.strictEqual(last[0].json.stored, 1, last[0].body);

        /* a body announced with Expect: 100-continue behind a whole
         * request: the 100 comes after the first answer, not before */
        const body = JSON.stringify({ app: 'a', uids: ['u9'], data: 9 });
        const expect = `POST /v1/push HTTP/1.1\r\nHost: x\r\n`
            + `Authorization: Bearer ${d.apiKey}\r\n`
            + 'Content-Type: application/json\r\n'
            + `Content-Length: ${body.length}\r\n`
            + 'Expect: 100-continue\r\n\r\n';
        const two = await k.sendRaw(push(10) + expect, 2, 5000);
        assert.deepStrictEqual(two.map((r) => r.status), [200, 100]);
        const fin = await k.sendRaw(body, 1, 5000);
        assert.strictEqual(fin[0].status, 200, fin[0].body);
        k.close();
        stats.close();
    });
});

test('center pipelining: requests written at once are answered in order, '
     + 'each its own, a 404 among them; a bad one last closes', T,
     async () => {
    await L.withPushd({ workers: 2,
                        top: { register: { memory: '8m' },
                               saver: { memory: '8m' } },
                        room: { auth_secret: WS.SECRET } }, async (d) => {
        const cl = await WS.connect(d.roomPort, 'pl', 'd1',
                                    { apps: ['a'] });
        const k = await L.keepAlive(d.centerPort);
        const auth = { Authorization: `Bearer ${d.apiKey}`,
                       'Content-Type': 'application/json' };
        const body = (i) => JSON.stringify({ app: 'a', uids: ['pl'],
                                             data: { i }, qos: 0 });
        const reqs = [
            k.format('POST', '/v1/push', auth, body(0)),
            k.format('GET', '/v1/users/pl', auth),
            k.format('POST', '/v1/push', auth, body(1)),
            k.format('GET', '/v1/nope', auth),
            k.format('POST', '/v1/push', auth, body(2)),
            k.format('GET', '/v1/stats', auth),
            /* the last: a bad body, answered, then the connection ends */
            k.format('POST', '/v1/push', auth, '{"app": 1}'),
        ];
        const res = await k.sendRaw(reqs.join(''), reqs.length);
        assert.deepStrictEqual(res.map((r) => r.status),
                               [200, 200, 200, 404, 200, 200, 400],
                               res.map((r) => r.body).join('\n'));
        assert.strictEqual(res[1].json.connections.length, 1);
        assert.strictEqual(typeof res[5].json.workers, 'object');
        assert.deepStrictEqual(res.map((r) => r.headers.connection),
                               [...Array(6).fill('keep-alive'), 'close']);
        await L.waitFor(() => k.closed, 2000, 'closed after the 400');
        const ids = [res[0], res[2], res[4]].map((r) => r.json.id);
        for (let i = 1; i < ids.length; i++) {
            assert.ok(BigInt(`0x${ids[i].split('-').pop()}`)
                      > BigInt(`0x${ids[i - 1].split('-').pop()}`),
                      `ids in order: ${ids}`);
        }
        /* the three accepted pushes arrive, in order, and nothing else
         * before a sentinel pushed after them */
        const k2 = await L.centerConn(d);
        const sn = await k2.post('/v1/push', { app: 'a', uids: ['pl'],
                                               data: 'end', qos: 0 });
        await cl.next((m) => m.op === 'msg' && m.id === sn.json.id, 5000,
                      'the sentinel');
        k2.close();
        assert.deepStrictEqual(cl.msgs.items.filter((m) => m.op === 'msg')
                               .map((m) => m.data), [{ i: 0 }, { i: 1 },
                                                     { i: 2 }]);
        k.close();
        cl.close();
    });
});
