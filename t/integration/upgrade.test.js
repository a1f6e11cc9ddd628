'use strict';
/*
 * upgrade.test.js: the binary upgrade, as nginx does it.  USR2 to the
 * master execs the binary again with the listening sockets and the
 * register's and store's shared memory handed down; the old pid file
 * becomes pushd.pid.oldbin and the new master writes pushd.pid; the
 * ports never close; presence and stored messages survive.  QUIT to the
 * old master then hands its plain clients to the new master's workers
 * and leaves the new one alone; or, to roll back, WINCH
 * stops the old workers accepting, HUP to the old master starts its
 * workers again, and QUIT to the new master leaves the old one alone.
 */

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 120000 };

function conf(room = {}) {
    return {
        workers: 2,
        top: {
            register: { memory: '8m' },
            saver: { memory: '16m' },
        },
        room: Object.assign({ auth_secret: W.SECRET,
                              reconnect_window: '500ms' }, room),
    };
}

function readPid(path) {
    try {
        return Number(fs.readFileSync(path, 'utf8'));
    } catch (e) {
        return null;
    }
}

const workersOf = (pid) => L.childrenOf(pid)
    .filter((p) => /^pushd: worker process/.test(p.args)).map((p) => p.pid);

/* USR2; the new master's pid once it wrote the pid file and runs its
 * workers */
async function upgrade(d) {
    const old = d.masterPid;
    process.kill(old, 'SIGUSR2');
    const fresh = await L.waitFor(() => {
        const p = readPid(d.pidPath);
        return p && p !== old && workersOf(p).length === 2 ? p : null;
    }, 15000, 'the new master and its workers');
    assert.strictEqual(readPid(`${d.pidPath}.oldbin`), old,
                       'the old pid file is pushd.pid.oldbin');
    assert.ok(L.procAlive(old), 'the old master runs on');
    return fresh;
}

async function push(d, uid, data, qos) {
    const r = await L.centerPost(d, '/v1/push',
                                 { app: 'a', uids: [uid], data, qos });
    assert.strictEqual(r.status, 200, r.body);
    return r.json;
}

test('USR2 then QUIT to the old master: the new binary takes over, with '
     + 'presence and stored messages', T, async (t) => {
    await L.withPushd(conf(), async (d) => {
        const old = d.masterPid;
        const oldWorkers = d.workerPids();
        const online = await W.rawOpen(d.roomPort, 'u1', 'phone');
        /* stored for a client that is away */
        await push(d, 'away1', { kept: 1 }, 1);

        const fresh = await upgrade(d);
        t.diagnostic(`old master ${old}, new ${fresh}`);
        assert.ok(!d.logText().includes('bind() failed'), 'nothing bound');

        /* presence crosses: the new master's center sees the old
         * master's client (the register zone is shared) */
        const pres = await L.centerGet(d, '/v1/users/u1');
        assert.strictEqual(pres.status, 200, pres.body);
        assert.strictEqual(pres.json.online, true, pres.body);

        process.kill(old, 'SIGQUIT');
        await L.waitFor(() => !L.procAlive(old)
                        && oldWorkers.every((p) => !L.procAlive(p)), 15000,
                        'the old master and its workers to exit');
        assert.ok(!fs.existsSync(`${d.pidPath}.oldbin`),
                  'pushd.pid.oldbin removed');
        assert.strictEqual(readPid(d.pidPath), fresh);

        /* the old master's client was handed to the new master's
         * workers: the same connection, no reconnect, and it is served */
        await push(d, 'u1', { after: 1 }, 1);
        const got = await online.op('msg', 5000);
        assert.deepStrictEqual(got.data, { after: 1 });
        assert.strictEqual(online.tcpClosed, false);
        assert.strictEqual(online.frames.items.filter((f) => f.json
            && f.json.op === 'reconnect').length, 0, 'no reconnect');
        assert.ok(workersOf(fresh).includes(
            L.connOwner(d.roomPort, online.sock.localPort)),
                  'held by a worker of the new master');

        /* what was stored before the upgrade is still there */
        const ws = await W.rawOpen(d.roomPort, 'away1', 'phone');
        const m = await ws.op('msg', 5000);
        assert.deepStrictEqual(m.data, { kept: 1 });
        assert.ok(workersOf(fresh).includes(
            L.connOwner(d.roomPort, ws.sock.localPort)));
        ws.destroy();

        /* the new master is the daemon now: -s reaches it */
        d.masterPid = fresh;
        const r = d.run('-s', 'reload');
        assert.strictEqual(r.status, 0, r.out);
        await L.waitFor(() => workersOf(fresh).length === 2
                        && d.logText().includes('reconfiguring'), 10000,
                        'the new master to reload');
    });
});

test('rollback: USR2, WINCH and HUP to the old master, QUIT to the new one',
     T, async () => {
    await L.withPushd(conf(), async (d) => {
        const old = d.masterPid;
        /* a client of the old master's workers */
        const kept = await W.rawOpen(d.roomPort, 'k1', 'phone');
        const fresh = await upgrade(d);

        /* WINCH: the old workers stop accepting, their clients stay */
        const oldWorkers = workersOf(old);
        process.kill(old, 'SIGWINCH');
        await L.waitFor(() => (d.logText().match(/no longer accepting/g)
                               || []).length === 2, 10000,
                        'both old workers to stop accepting');
        for (let i = 0; i < 4; i++) {
            const ws = await W.rawOpen(d.roomPort, `n${i}`, 'phone');
            const owner = L.connOwner(d.roomPort, ws.sock.localPort);
            assert.ok(workersOf(fresh).includes(owner),
                      `a new connection goes to the new binary (${owner})`);
            ws.destroy();
        }
        assert.ok(oldWorkers.every((p) => L.procAlive(p)));
        kept.sendJson({ op: 'ping' });
        await kept.op('pong');

        /* HUP to the old master: its workers again, then QUIT the new */
        process.kill(old, 'SIGHUP');
        await L.waitFor(() => {
            const w = workersOf(old);
            return w.length === 2 && w.every((p) => !oldWorkers.includes(p));
        }, 15000, 'the old master\'s new workers');
        process.kill(fresh, 'SIGQUIT');
        await L.waitFor(() => !L.procAlive(fresh), 15000,
                        'the new master to exit');
        await L.waitFor(() => readPid(d.pidPath) === old, 5000,
                        'pushd.pid naming the old master again');
        assert.ok(!fs.existsSync(`${d.pidPath}.oldbin`));

        /* its client moved to its new workers, unnoticed */
        kept.sendJson({ op: 'ping' });
        await kept.op('pong');
        assert.strictEqual(kept.frames.items.filter((f) => f.json
            && f.json.op === 'reconnect').length, 0, 'no reconnect');
        assert.ok(workersOf(old).includes(
            L.connOwner(d.roomPort, kept.sock.localPort)));

        const ws = await W.rawOpen(d.roomPort, 'after', 'phone');
        assert.ok(workersOf(old).includes(
            L.connOwner(d.roomPort, ws.sock.localPort)));
        ws.destroy();
    });
});

/*
 * A flash reconnect after USR2 and QUIT: the session was handed to a
 * worker of the new master, whose sid key is not the old master's, and
 * the client still holds the old master's worker's sid: it resumes
 * with the gap (qos 0 and qos 1) once and in order.
 */
test('USR2+QUIT: a flash reconnect resumes with the sid of the old binary',
     T, async () => {
    await L.withPushd(conf({ linger: '20s' }), async (d) => {
        const old = d.masterPid;
        const oldWorkers = d.workerPids();
        const metric = async (name) => (await L.metrics(d)).get(name) || 0;
        const ws = await W.rawOpen(d.roomPort, 'fl1', 'phone');
        const sid = ws.welcome.sid;
        await push(d, 'fl1', { n: 0 }, 0);
        assert.deepStrictEqual((await ws.op('msg', 5000)).data, { n: 0 });

        const fresh = await upgrade(d);
        process.kill(old, 'SIGQUIT');
        await L.waitFor(() => !L.procAlive(old)
                        && oldWorkers.every((p) => !L.procAlive(p)), 15000,
                        'the old master and its workers to exit');
        d.masterPid = fresh;
        assert.ok(workersOf(fresh).includes(
            L.connOwner(d.roomPort, ws.sock.localPort)),
                  'held by a worker of the new master');
        assert.strictEqual(await metric('pushd_adopted_total'), 1);

        ws.destroy();
        await L.waitFor(async () => await metric('pushd_sessions_lingering')
                        === 1, 5000, 'the session lingering');
        /* one API connection: order is per sender */
        const api = await L.centerConn(d);
        const send = async (data, qos) => {
            const r = await api.post('/v1/push', { app: 'a', uids: ['fl1'],
                                                   data, qos });
            assert.strictEqual(r.status, 200, r.body);
        };
        for (let n = 1; n <= 4; n++) {
            await send({ n }, n % 2);
        }

        const back = await W.rawOpen(d.roomPort, 'fl1', 'phone',
                                     { extra: `sid=${sid}` });
        assert.strictEqual(back.welcome.resumed, true, 'resumed');
        assert.strictEqual(back.welcome.sid, sid, 'the same sid');
        await send({ n: 'end' }, 1);
        const got = [];
        for (;;) {
            const m = await back.op('msg', 5000);
            got.push(m.data.n);
            if (m.qos === 1) {
                back.sendJson({ op: 'ack', ids: [m.id] });
            }
            if (m.data.n === 'end') {
                break;
            }
        }
        assert.deepStrictEqual(got, [1, 2, 3, 4, 'end']);
        back.destroy();
        api.close();
    });
});

test('a register zone handed down by a binary of another layout is left '
     + 'to it: this binary starts its own, and serves', T, async () => {
    /*
     * What a binary upgrade across a change of the register's entry
     * (184 bytes before 2026-12-07, 136 after, 128 since 2026-12-08) hands the new master: a
     * memfd whose header says "register zone, layout 1, entries of 184
     * bytes".  A regular file stands in for it, as fd 3 with the
     * PUSHD_ZONES the old master sets.  The new binary must not attach
     * to it (its workers would read the old workers' entries wrongly),
     * nor format it (the old workers still use it): the file stays as
     * it was, and the daemon registers in a zone of its own.
     */
    const size = 8 * 1024 * 1024;
    const file = require('node:path').join(require('node:os').tmpdir(),
                                          `pushd-oldzone-${process.pid}`);
    const old = Buffer.alloc(size, 0xa5);
    /* pd_reg_zone_t: a 40-byte pthread_mutex_t, then the magic */
    old.writeBigUInt64LE(0x7064726567000000n | (1n << 16n) | 184n, 40);
    fs.writeFileSync(file, old);
    const fd = fs.openSync(file, 'r+');
    try {
        await L.withPushd(Object.assign(conf(), {
            fds: [fd],
            env: { PUSHD_ZONES: `pd_register:3:${size}` },
        }), async (d) => {
            assert.match(d.logText(), /register zone of the old binary is laid out otherwise/);

            const ws = await W.rawOpen(d.roomPort, 'lay', 'phone');
            const r = await push(d, 'lay', { n: 1 }, 1);
            assert.strictEqual(r.online, 1, JSON.stringify(r));
            const m = await ws.op('msg', 5000);
            assert.deepStrictEqual(m.data, { n: 1 });
            const pres = await L.centerGet(d, '/v1/users/lay');
            assert.strictEqual(pres.json.online, true, pres.body);
            ws.destroy();
        });
        assert.ok(fs.readFileSync(file).equals(old),
                  'the old binary\'s zone is left as it was');
    } finally {
        fs.closeSync(fd);
        fs.unlinkSync(file);
    }
});
