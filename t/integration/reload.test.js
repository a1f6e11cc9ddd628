'use strict';
/*
 * reload.test.js: HUP and `-s reload` replace the workers under the same
 * master without refusing a connection; a broken config is logged and
 * the old workers keep serving; a retiring worker that still holds a
 * client connection exits within worker_shutdown_timeout.
 */

const test = require('node:test');
const assert = require('node:assert');
const net = require('node:net');
const L = require('./lib.js');

const T = { timeout: 90000 };

/*
 * Runs `loops` parallel request loops (GET /, Connection: close) on
 * port until state.stop; counts 200s, refusals and anything else.
 */
function hammer(port, loops = 4) {
    const state = { stop: false, ok: 0, refused: 0, other: [], runs: [] };
    const req = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n'
              + 'Connection: close\r\n\r\n';
    for (let i = 0; i < loops; i++) {
        state.runs.push((async () => {
            while (!state.stop) {
                const r = await L.httpRaw(port, req,
                                          { responses: 1, timeout: 5000 });
                if (r.error === 'ECONNREFUSED') {
                    state.refused++;
                } else if (r.responses[0] && r.responses[0].status === 200) {
                    state.ok++;
                } else {
                    state.other.push(r.error || (r.timedOut ? 'timeout'
                        : r.text === '' ? 'closed without a response'
                        : JSON.stringify(r.text.slice(0, 60))));
                }
            }
        })());
    }
    state.end = async () => {
        state.stop = true;
        await Promise.all(state.runs);
    };
    return state;
}

async function reloadTo(d, workers, send, t) {
    const master = d.masterPid;
    const old = d.workerPids();
    d.writeConfig({ workers });
    const load = hammer(d.roomPort);
    try {
        await L.waitFor(() => load.ok >= 20, 10000, 'requests before reload');
        const r = send(d);
        if (r && r.status !== undefined) {
            assert.strictEqual(r.status, 0, r.out);
        }
        const fresh = await L.waitFor(() => {
            const now = d.workerPids();
            return now.length === workers
                && now.every((p) => !old.includes(p)) ? now : null;
        }, 15000, `${workers} new workers`);
        await L.waitFor(() => old.every((p) => !L.procAlive(p)), 15000,
                        `old workers ${old.join(',')} to exit`);
        const okAtSwap = load.ok;
        await L.waitFor(() => load.ok >= okAtSwap + 20, 10000,
                        'requests after reload');
        await load.end();
        t.diagnostic(`requests: ${load.ok} ok, ${load.refused} refused, `
                     + `${load.other.length} other`);
        assert.strictEqual(d.masterPid, master);
        assert.ok(L.procAlive(master), 'the master survives');
        assert.strictEqual(d.readPid(), master, 'pid file unchanged');
        assert.strictEqual(load.refused, 0, 'no refused connection');
        return { fresh, load };
    } finally {
        await load.end();
    }
}

test('HUP with worker_processes 2 -> 3 replaces the workers', T,
     async (t) => {
    await L.withPushd({ workers: 2 }, async (d) => {
        await reloadTo(d, 3, (x) => process.kill(x.masterPid, 'SIGHUP'), t);
        const r = await L.centerGet(d, '/v1/stats');
        assert.strictEqual(r.json.workers.length, 3);
    });
});

test('-s reload replaces the workers', T, async (t) => {
    await L.withPushd({ workers: 2, daemon: true }, async (d) => {
        await reloadTo(d, 2, (x) => x.run('-s', 'reload'), t);
    });
});

/*
 * Stricter than "never refused": a connection accepted by a worker that
 * then retires must still get its answer, so no request made during
 * three reloads in a row sees an empty reply or a reset.
 */
test('no request is dropped during reloads', T, async (t) => {
    await L.withPushd({ workers: 2 }, async (d) => {
        const other = [];
        for (const n of [3, 2, 3]) {
            const { load } = await reloadTo(d, n,
                (x) => process.kill(x.masterPid, 'SIGHUP'), t);
            other.push(...load.other);
        }
        assert.deepStrictEqual(other, [],
                               'every request during reload answered 200');
    });
});

test('reload with a broken config keeps the old workers', T, async () => {
    await L.withPushd({ workers: 2 }, async (d) => {
        const old = d.workerPids();
        const good = d.writeConfig({});
        d.writeConfig(good.replace(/^worker_processes: .*\n/,
                                   'worker_processes: 3\nfoo: 1\n'));
        process.kill(d.masterPid, 'SIGHUP');
        const msg = `${d.confPath}:2:1: unknown directive "foo"`;
        await L.waitFor(() => d.logText().includes(msg), 10000,
                        `the error log to contain ${msg}`);
        assert.deepStrictEqual(d.workerPids(), old, 'same workers');
        assert.ok(L.procAlive(d.masterPid));
        const r = await L.request(d.roomPort, 'GET', '/');
        assert.strictEqual(r.status, 200);
        const s = await L.centerGet(d, '/v1/stats');
        assert.strictEqual(s.status, 200);
        assert.strictEqual(s.json.workers.length, 2);
        /* once fixed, a reload works again */
        d.writeConfig({ workers: 3 });
        process.kill(d.masterPid, 'SIGHUP');
        await L.waitFor(() => {
            const now = d.workerPids();
            return now.length === 3 && now.every((p) => !old.includes(p));
        }, 15000, 'three new workers after the fixed reload');
    });
});

/*
 * The cause of dropped requests, without load: connections a worker has
 * accepted but that have not sent their request yet when it starts to
 * retire must still be answered.  Six of them, so both workers hold some.
 */
test('connections accepted before a reload are still answered', T,
     async () => {
    await L.withPushd({ workers: 2, top: { worker_shutdown_timeout: '3s' } },
                      async (d) => {
        const conns = [];
        try {
            for (let i = 0; i < 6; i++) {
                conns.push(await heldConnection(d.roomPort, '', false));
            }
            const owners = [...new Set(conns.map((c) => c.owner))];
            process.kill(d.masterPid, 'SIGHUP');
            await L.waitFor(() => owners.every((p) => !L.procAlive(p)
                || /shutting down/.test(L.procArgs(p) || '')), 5000,
                'the old workers to start retiring');
            for (const c of conns) {
                if (!c.closed) {
                    c.sock.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
                }
            }
            await L.waitFor(() => conns.every((c) => c.closed
                || L.parseResponses(c.data).length === 1), 5000,
                'an answer or a close on every connection');
            const got = conns.map((c) => {
                const r = L.parseResponses(c.data);
                return r.length ? r[0].status : 'closed without a response';
            });
            assert.deepStrictEqual(got, conns.map(() => 200),
                                   JSON.stringify(got));
        } finally {
            for (const c of conns) {
                c.sock.destroy();
            }
        }
    });
});

/* opens a connection to port, sends what, waits until a worker owns it */
async function heldConnection(port, what, expectResponse) {
    const sock = net.connect({ port, host: '127.0.0.1' });
    const st = { sock, data: '', closed: false };
    sock.on('data', (c) => { st.data += c.toString('latin1'); });
    sock.on('close', () => { st.closed = true; });
    sock.on('error', () => {});
    await new Promise((r, j) => {
        sock.once('connect', r);
        sock.once('error', j);
    });
    if (what) {
        sock.write(what);
    }
    if (expectResponse) {
        await L.waitFor(() => L.parseResponses(st.data).length === 1, 5000,
                        'the keep-alive response');
    }
    st.owner = await L.waitFor(() => L.connOwner(port, sock.localPort), 5000,
                               'the worker owning the connection');
    return st;
}

const holds = [
    ['a partial request', 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: 1\r\n',
     false],
    ['an idle keep-alive connection',
     'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', true],
];

/*
 * Neither holds the old worker: the connection goes to a new worker with
 * its socket and the bytes of a head read so far (pd_http_retire), and
 * serves the rest of the request there.
 */
for (const [name, what, resp] of holds) {
    test(`an old worker holding ${name} exits after the reload`, T,
         async (t) => {
        const opts = { workers: 2, top: { worker_shutdown_timeout: '1s' } };
        await L.withPushd(opts, async (d) => {
            const old = d.workerPids();
            const st = await heldConnection(d.roomPort, what, resp);
            assert.ok(old.includes(st.owner), `owner ${st.owner} is a worker`);
            const t0 = Date.now();
            process.kill(d.masterPid, 'SIGHUP');
            try {
                /* worker_shutdown_timeout 1s, and slack for a slow host */
                const gone = await L.waitFor(() => !L.procAlive(st.owner)
                    && Date.now(), 5000, `old worker ${st.owner} to exit`);
                t.diagnostic(`old worker exited ${gone - t0} ms after HUP`);
                await L.waitFor(() => d.workers().length === 2
                                && d.workerPids().every((p) =>
                                    !old.includes(p)), 5000,
                                'the new workers');
                assert.strictEqual(st.closed, false, 'the connection stays');
                assert.ok(d.workerPids().includes(
                    L.connOwner(d.roomPort, st.sock.localPort)),
                          'held by a new worker');
                /* the rest of the request, or the next one */
                const n = resp ? 2 : 1;
                st.sock.write(resp ? 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
                              : '\r\n');
                await L.waitFor(() => L.parseResponses(st.data).length === n,
                                5000, 'the answer from the new worker');
                assert.strictEqual(L.parseResponses(st.data)[n - 1].status,
                                   200);
            } finally {
                st.sock.destroy();
            }
            const r = await L.request(d.roomPort, 'GET', '/');
            assert.strictEqual(r.status, 200);
        });
    });
}
