'use strict';
/*
 * reload_http.test.js: plain HTTP connections through a reload.  A
 * retiring worker hands each one with no request being answered (a new
 * one whose first request has not come, an idle keep-alive one; one
 * with part of a head: reload.test.js) to a worker of the next
 * generation with its socket, instead of keeping it until
 * worker_shutdown_timeout and closing it then: a request written after
 * that (a slow client, one the kernel had connected before the reload)
 * is answered by the new worker, never reset.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 60000 };

function conf() {
    return {
        workers: 2,
        top: {
            register: { memory: '8m' },
            saver: { memory: '16m' },
        },
        room: { auth_secret: W.SECRET },
    };
}

/* HUP; resolves once the workers are all new and the old ones gone
 * (after their worker_shutdown_timeout, 1 s here, at the latest) */
async function reload(d, old) {
    process.kill(d.masterPid, 'SIGHUP');
    await L.waitFor(() => {
        const now = d.workerPids();
        return now.length === old.length && now.every((p) => !old.includes(p));
    }, 15000, 'the new workers');
    await L.waitFor(() => old.every((p) => !L.procAlive(p)), 15000,
                    `the old workers ${old.join(',')} to exit`);
    return d.workerPids();
}

async function owner(d, port, k) {
    return L.waitFor(() => L.connOwner(port, k.sock.localPort), 5000,
                     `the worker holding port ${k.sock.localPort}`);
}

test('a connection whose first request comes after the reload is answered '
     + 'by a new worker', T, async () => {
    await L.withPushd(conf(), async (d) => {
        /* connected, nothing sent yet: to the center and to the room */
        const api = await L.centerConn(d);
        const room = await L.keepAlive(d.roomPort);
        const old = d.workerPids();
        assert.ok(old.includes(await owner(d, d.centerPort, api)));
        assert.ok(old.includes(await owner(d, d.roomPort, room)));

        const fresh = await reload(d, old);
        assert.strictEqual(api.closed, false, 'the API connection is open');
        assert.strictEqual(room.closed, false, 'the room connection is open');

        const r = await api.post('/v1/push', { app: 'a', uids: ['nobody'],
                                               data: 1, qos: 0 });
        assert.strictEqual(r.status, 200, r.body);
        assert.ok(fresh.includes(L.connOwner(d.centerPort,
                                             api.sock.localPort)));
        const g = await room.request('GET', '/nothing');
        assert.strictEqual(g.status, 404, g.raw);
        assert.ok(fresh.includes(L.connOwner(d.roomPort,
                                             room.sock.localPort)));

        const m = [...d.logText().matchAll(
            /(\d+) HTTP connections handed to worker/g)];
        assert.strictEqual(m.reduce((s, x) => s + Number(x[1]), 0), 2,
                           'both handed over');
        api.close();
        room.close();
    });
});

test('an idle keep-alive connection goes on with a new worker', T,
     async () => {
    await L.withPushd(conf(), async (d) => {
        const api = await L.centerConn(d);
        let r = await api.post('/v1/push', { app: 'a', uids: ['nobody'],
                                             data: 1, qos: 0 });
        assert.strictEqual(r.status, 200, r.body);
        const old = d.workerPids();
        const fresh = await reload(d, old);

        assert.strictEqual(api.closed, false, 'kept open');
        r = await api.post('/v1/push', { app: 'a', uids: ['nobody'],
                                         data: 2, qos: 0 });
        assert.strictEqual(r.status, 200, r.body);
        assert.match(r.raw, /Connection: keep-alive/i,
                     'a new worker keeps it alive');
        assert.ok(fresh.includes(L.connOwner(d.centerPort,
                                             api.sock.localPort)));
        api.close();
    });
});
