'use strict';
/*
 * http.test.js: HTTP/1.1 on the room and center ports over plain TCP
 * (node:net and curl): the status page, errors for malformed requests
 * with the connection closed, keep-alive and pipelining, and the
 * center's authentication, JSON errors, stats and body limit.
 */

const test = require('node:test');
const assert = require('node:assert');
const net = require('node:net');
const L = require('./lib.js');

const T = { timeout: 60000 };
const H = 'Host: 127.0.0.1\r\n';

test('room: GET / is a short status page, /nope is 404', T, async () => {
    await L.withPushd({}, async (d) => {
        const r = await L.request(d.roomPort, 'GET', '/');
        assert.strictEqual(r.status, 200);
        assert.ok(r.body.length > 0 && r.body.length < 4096,
                  `status page of ${r.body.length} bytes`);
        assert.match(r.headers['content-type'] || '', /^text\//);
        const n = await L.request(d.roomPort, 'GET', '/nope');
        assert.strictEqual(n.status, 404);
        const c = L.curl([`http://127.0.0.1:${d.roomPort}/`]);
        assert.strictEqual(c.status, 0, c.stderr);
        assert.strictEqual(c.code, 200);
        assert.ok(c.body.length > 0, 'curl got the status page');
        const c404 = L.curl([`http://127.0.0.1:${d.roomPort}/nope`]);
        assert.strictEqual(c404.code, 404);
    });
});

const many = Array.from({ length: 100 }, (_, i) => `X-H-${i}: v\r\n`).join('');
const big = Array.from({ length: 5 },
    (_, i) => `X-Big-${i}: ${'b'.repeat(4096)}\r\n`).join('');

const malformed = [
    ['garbage request line', '@@@ garbage @@@\r\n\r\n', 400],
    ['header line without a colon',
     `GET / HTTP/1.1\r\n${H}NoColonHere\r\n\r\n`, 400],
    ['100 headers', `GET / HTTP/1.1\r\n${H}${many}\r\n`, 431],
    ['20 KB of headers', `GET / HTTP/1.1\r\n${H}${big}\r\n`, 431],
    ['a 10 KB request line',
     `GET /${'a'.repeat(10240)} HTTP/1.1\r\n${H}\r\n`, 414],
    ['HTTP/2.0', `GET / HTTP/2.0\r\n${H}\r\n`, 505],
    ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\n\r\n', 400],
    ['Transfer-Encoding: chunked',
     `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`
     + '5\r\nhello\r\n0\r\n\r\n', 411],
];

test('room: malformed requests get their status and a closed connection',
     T, async (t) => {
    await L.withPushd({}, async (d) => {
        const workers = d.workerPids();
        for (const [name, bytes, status] of malformed) {
            await t.test(`${name} -> ${status}`, async () => {
                const r = await L.httpRaw(d.roomPort, bytes, { timeout: 5000 });
                const head = JSON.stringify(r.text.slice(0, 200));
                assert.ok(r.responses.length >= 1, `a response: ${head}`);
                assert.strictEqual(r.responses[0].status, status);
                assert.strictEqual(r.responses.length, 1, 'one response only');
                assert.ok(r.closed && !r.timedOut,
                          'the server closed the connection');
            });
        }
        const r = await L.request(d.roomPort, 'GET', '/');
        assert.strictEqual(r.status, 200, 'still serving');
        assert.deepStrictEqual(d.workerPids(), workers, 'no worker died');
    });
});

test('room: keep-alive and pipelining', T, async () => {
    await L.withPushd({}, async (d) => {
        const sock = net.connect({ port: d.roomPort, host: '127.0.0.1' });
        let data = '';
        let closed = false;
        sock.on('data', (c) => { data += c.toString('latin1'); });
        sock.on('close', () => { closed = true; });
        sock.on('error', () => {});
        try {
            await new Promise((r) => sock.once('connect', r));
            sock.write(`GET / HTTP/1.1\r\n${H}\r\n`);
            await L.waitFor(() => L.parseResponses(data).length === 1, 5000,
                            'the first keep-alive response');
            assert.ok(!closed, 'kept alive after the first response');
            sock.write(`GET /nope HTTP/1.1\r\n${H}\r\n`);
            await L.waitFor(() => L.parseResponses(data).length === 2, 5000,
                            'the second response on the same connection');
            const rs = L.parseResponses(data);
            assert.deepStrictEqual(rs.map((x) => x.status), [200, 404]);
        } finally {
            sock.destroy();
        }

        /* two requests in one write, answered in order */
        const p = await L.httpRaw(d.roomPort,
            `GET /nope HTTP/1.1\r\n${H}\r\nGET / HTTP/1.1\r\n${H}\r\n`,
            { responses: 2 });
        assert.deepStrictEqual(p.responses.map((x) => x.status), [404, 200]);

        /* Connection: close is honoured */
        const c = await L.httpRaw(d.roomPort,
            `GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
        assert.strictEqual(c.responses[0].status, 200);
        assert.ok(c.closed && !c.timedOut, 'closed after Connection: close');
    });
});

/* the head pd_http_send_response() writes, byte for byte: status line,
 * Server, Content-Type, Content-Length (the body's own), Connection,
 * then the extra headers of the answer, and the blank line */
test('center and room: the response head, byte for byte', T, async () => {
    await L.withPushd({}, async (d) => {
        const head = (text) => {
            const end = text.indexOf('\r\n\r\n');
            assert.ok(end > 0, `a head: ${JSON.stringify(text)}`);
            return { head: text.slice(0, end + 4), body: text.slice(end + 4) };
        };
        const key = `Authorization: Bearer ${d.apiKey}\r\n`;

        /* an answer kept alive */
        const p = await L.httpRaw(d.centerPort,
            `GET /v1/stats HTTP/1.1\r\n${H}${key}\r\n`, { responses: 1 });
        const ph = head(p.text);
        assert.strictEqual(ph.head, 'HTTP/1.1 200 OK\r\nServer: pushd\r\n'
                           + 'Content-Type: application/json\r\n'
                           + `Content-Length: ${Buffer.byteLength(ph.body,
                                                                  'latin1')}`
                           + '\r\nConnection: keep-alive\r\n\r\n');
        assert.ok(Array.isArray(JSON.parse(ph.body).workers));

        /* a refusal with a header of its own, and the close asked for */
        const u = await L.httpRaw(d.centerPort,
            `GET /v1/stats HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
        const uh = head(u.text);
        assert.strictEqual(uh.head, 'HTTP/1.1 401 Unauthorized\r\n'
                           + 'Server: pushd\r\n'
                           + 'Content-Type: application/json\r\n'
                           + `Content-Length: ${Buffer.byteLength(uh.body,
                                                                  'latin1')}\r\n`
                           + 'Connection: close\r\n'
                           + 'WWW-Authenticate: Bearer\r\n\r\n');
        assert.ok(u.closed, 'closed as asked');

        /* the room's status page */
        const r = await L.httpRaw(d.roomPort,
            `GET /nope HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
        const rh = head(r.text);
        assert.match(rh.head, /^HTTP\/1\.1 404 Not Found\r\nServer: pushd\r\n(?:Content-Type: [^\r\n]+\r\n)Content-Length: (\d+)\r\nConnection: close\r\n\r\n$/);
        assert.strictEqual(Number(/Content-Length: (\d+)/.exec(rh.head)[1]),
                           Buffer.byteLength(rh.body, 'latin1'));
    });
});

test('center: authentication, stats, JSON errors, 405 and 413', T,
     async () => {
    await L.withPushd({ workers: 2 }, async (d) => {
        const port = d.centerPort;
        const auth = { Authorization: `Bearer ${d.apiKey}` };

        for (const h of [{}, { Authorization: 'Bearer wrong-key' },
                         { Authorization: d.apiKey }])
        {
            const r = await L.request(port, 'GET', '/v1/stats', h);
            assert.strictEqual(r.status, 401, JSON.stringify(h));
            assert.strictEqual(typeof JSON.parse(r.body).error, 'string');
        }

        const s = await L.request(port, 'GET', '/v1/stats', auth);
        assert.strictEqual(s.status, 200);
        assert.match(s.headers['content-type'] || '', /json/);
        const stats = JSON.parse(s.body);
        assert.ok(Array.isArray(stats.workers));
        assert.strictEqual(stats.workers.length, 2);
        for (const w of stats.workers) {
            assert.strictEqual(typeof w.slot, 'number');
            assert.strictEqual(typeof w.pid, 'number');
            assert.strictEqual(typeof w.connections, 'number');
        }
        assert.deepStrictEqual(stats.workers.map((w) => w.slot).sort(), [0, 1]);
        assert.deepStrictEqual(stats.workers.map((w) => w.pid)
                               .sort((a, b) => a - b), d.workerPids());

        const c = L.curl(['-H', `Authorization: Bearer ${d.apiKey}`,
                          `http://127.0.0.1:${port}/v1/stats`]);
        assert.strictEqual(c.code, 200, c.stderr);
        assert.strictEqual(JSON.parse(c.body).workers.length, 2);

        const n = await L.request(port, 'GET', '/v1/nope', auth);
        assert.strictEqual(n.status, 404);
        assert.strictEqual(typeof JSON.parse(n.body).error, 'string');

        const m = await L.request(port, 'POST', '/v1/stats', auth, '');
        assert.strictEqual(m.status, 405);
        assert.strictEqual(typeof JSON.parse(m.body).error, 'string');

        const size = 2 * 1024 * 1024;
        const head = `POST /v1/push HTTP/1.1\r\n${H}Authorization: Bearer `
                   + `${d.apiKey}\r\nContent-Type: application/json\r\n`
                   + `Content-Length: ${size}\r\n\r\n`;
        const b = await L.httpRaw(port, [head, Buffer.alloc(size, 0x20)],
                                  { timeout: 10000 });
        assert.ok(b.responses.length >= 1,
                  `a response to 2 MB: ${JSON.stringify(b.text.slice(0, 200))}`
                  + ` error=${b.error}`);
        assert.strictEqual(b.responses[0].status, 413);

        const again = await L.request(port, 'GET', '/v1/stats', auth);
        assert.strictEqual(again.status, 200, 'center still serving');
    });
});
