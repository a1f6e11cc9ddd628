'use strict';
/*
 * process.test.js: the master/worker shape: worker count and titles,
 * SO_REUSEPORT listeners per worker, foreground and daemon modes,
 * respawn of a killed worker, the stop signals and log reopening.
 */

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const { spawnSync } = require('node:child_process');
const L = require('./lib.js');

const T = { timeout: 60000 };

function ssLines(args) {
    const r = spawnSync('ss', args, { encoding: 'utf8' });
    return (r.stdout || '').split('\n').filter((l) => l.trim().length > 0);
}

test('worker_processes 2: two workers with the right titles', T, async () => {
    await L.withPushd({ workers: 2 }, async (d) => {
        assert.match(L.procArgs(d.masterPid), /^pushd: master process /);
        const w = d.workers();
        assert.strictEqual(w.length, 2);
        for (const p of w) {
            assert.strictEqual(p.args, 'pushd: worker process');
        }
        if (process.getuid() === 0) {
            assert.strictEqual(L.procField(d.masterPid, 'user'), 'root');
            for (const p of w) {
                assert.strictEqual(L.procField(p.pid, 'user'), 'nobody',
                                   `worker ${p.pid} runs as nobody`);
            }
        }
    });
});

test('worker_processes auto: one worker per available CPU', T, async () => {
    await L.withPushd({ workers: 'auto' }, async (d) => {
        assert.strictEqual(d.workers().length, os.availableParallelism());
    });
});

test('each worker has its own listening socket (SO_REUSEPORT)', T,
     async () => {
    await L.withPushd({ workers: 2 }, async (d) => {
        const pids = d.workerPids();
        for (const port of [d.roomPort, d.centerPort]) {
            const plain = ssLines(['-ltnH', `sport = :${port}`]);
            assert.strictEqual(plain.length, 2, `LISTEN sockets on ${port}:\n`
                               + plain.join('\n'));
            const withPids = ssLines(['-ltnpH', `sport = :${port}`]);
            const all = withPids.join('\n');
            for (const pid of pids) {
                assert.ok(all.includes(`pid=${pid},`),
                          `worker ${pid} holds a listener on ${port}:\n${all}`);
            }
            for (const line of withPids) {
                assert.ok(pids.some((pid) => line.includes(`pid=${pid},`)),
                          `listener owned by a worker: ${line}`);
            }
        }
    });
});

test('daemon: false keeps the master in the foreground', T, async () => {
    await L.withPushd({ daemon: false }, async (d) => {
        assert.strictEqual(d.masterPid, d.child.pid);
        assert.strictEqual(d.readPid(), d.child.pid);
        assert.strictEqual(d.childExit, null, 'the spawned master still runs');
        assert.ok(L.procAlive(d.child.pid));
    });
});

test('daemon: true detaches the master', T, async () => {
    await L.withPushd({ daemon: true }, async (d) => {
        await L.waitFor(() => d.childExit !== null, 5000,
                        'the foreground process to exit');
        assert.strictEqual(d.childExit.code, 0);
        assert.notStrictEqual(d.masterPid, d.child.pid);
        assert.ok(L.procAlive(d.masterPid));
        assert.match(L.procArgs(d.masterPid), /^pushd: master process /);
        assert.notStrictEqual(Number(L.procField(d.masterPid, 'ppid')),
                              process.pid);
        assert.strictEqual(d.workers().length, 2);
    });
});

test('a killed worker is respawned and its death is logged', T,
     async () => {
    await L.withPushd({ workers: 2 }, async (d) => {
        const before = d.workerPids();
        const victim = before[0];
        d.kill(victim, 'SIGKILL');
        const after = await L.waitFor(() => {
            const now = d.workerPids();
            return now.length === 2 && !now.includes(victim) ? now : null;
        }, 5000, 'a respawned worker');
        assert.ok(after.includes(before[1]), 'the other worker is untouched');
        assert.ok(L.procAlive(d.masterPid));
        const re = new RegExp(`^.*\\b${victim}\\b.*signal 9.*$`, 'm');
        await L.waitFor(() => re.test(d.logText()), 5000,
                        `a log line with pid ${victim} and "signal 9"`);
        /* the new worker serves */
        const r = await L.request(d.roomPort, 'GET', '/');
        assert.strictEqual(r.status, 200);
    });
});

const stops = [
    ['SIGQUIT', false, (d) => process.kill(d.masterPid, 'SIGQUIT')],
    ['SIGTERM', false, (d) => process.kill(d.masterPid, 'SIGTERM')],
    ['-s quit', true, (d) => d.run('-s', 'quit')],
    ['-s stop', true, (d) => d.run('-s', 'stop')],
];

for (const [name, daemon, send] of stops) {
    test(`${name} ends every process and removes the pid file`, T,
         async () => {
        await L.withPushd({ workers: 2, daemon }, async (d) => {
            const pids = [d.masterPid, ...d.workerPids()];
            assert.ok(fs.existsSync(d.pidPath));
            const r = send(d);
            if (r && r.status !== undefined) {
                assert.strictEqual(r.status, 0, `pushd ${name}: ${r.out}`);
            }
            await L.waitFor(() => pids.every((p) => !L.procAlive(p)), 15000,
                            `pids ${pids.join(',')} to exit`);
            assert.ok(!fs.existsSync(d.pidPath), 'the pid file is removed');
            if (!daemon) {
                await L.waitFor(() => d.childExit !== null, 5000,
                                'the master\'s exit status');
                assert.strictEqual(d.childExit.code, 0,
                                   JSON.stringify(d.childExit));
            }
        });
    });
}

const reopens = [
    ['SIGUSR1', (d) => process.kill(d.masterPid, 'SIGUSR1')],
    ['-s reopen', (d) => d.run('-s', 'reopen')],
];

for (const [name, send] of reopens) {
    test(`${name} reopens the error log`, T, async () => {
        await L.withPushd({ workers: 2 }, async (d) => {
            await L.waitFor(() => fs.existsSync(d.logPath), 5000,
                            'the error log');
            const old = d.path('logs/error.log.1');
            fs.renameSync(d.logPath, old);
            const r = send(d);
            if (r && r.status !== undefined) {
                assert.strictEqual(r.status, 0, `pushd ${name}: ${r.out}`);
            }
            await L.waitFor(() => fs.existsSync(d.logPath), 5000,
                            'logs/error.log to be recreated');
            /* a logged event after the reopen lands in the new file */
            const victim = d.workerPids()[0];
            d.kill(victim, 'SIGKILL');
            const re = new RegExp(`\\b${victim}\\b.*signal 9`);
            await L.waitFor(() => re.test(d.logText()), 5000,
                            `the exit of ${victim} in the new error.log`);
            assert.ok(!re.test(fs.readFileSync(old, 'utf8')),
                      'the renamed log gets no new lines');
        });
    });
}

test('workers leave when their master is SIGKILLed', T, async () => {
    await L.withPushd({ workers: 2 }, async (d) => {
        const w = d.workerPids();
        assert.strictEqual(w.length, 2);
        L.kill(d.masterPid, 'SIGKILL');
        await L.waitFor(() => w.every((p) => !L.procAlive(p)), 10000,
                        'the workers to exit after their master died');
        /* nobody holds the ports any more */
        assert.ok(await L.waitFor(() => L.tcpConnects(d.roomPort)
                                        .then((ok) => !ok), 5000,
                                  'the room port to be closed'));
    });
});

test('USR2 and WINCH to a worker are not fatal; to the master they '
     + 'start an upgrade and stop the accepting', T, async () => {
    await L.withPushd({ workers: 2 }, async (d) => {
        const w = d.workerPids();
        /* a worker ignores them: they are the master's */
        for (const p of w) {
            L.kill(p, 'SIGUSR2');
            L.kill(p, 'SIGWINCH');
        }
        let r = await L.request(d.roomPort, 'GET', '/');
        assert.strictEqual(r.status, 200);
        assert.deepStrictEqual(d.workerPids(), w, 'the same workers');

        /* USR2: a new binary (upgrade.test.js has the rest); a second
         * one while it runs is refused, logged */
        const old = d.masterPid;
        L.kill(old, 'SIGUSR2');
        await L.waitFor(() => d.readPid() && d.readPid() !== old, 10000,
                        'the new master\'s pid file');
        L.kill(old, 'SIGUSR2');
        await L.waitFor(() => d.logText().includes('SIGUSR2 ignored: the '
                        + 'new binary'), 5000, 'the second USR2 refused');
        L.kill(old, 'SIGWINCH');
        await L.waitFor(() => d.logText().includes('the workers stop '
                        + 'accepting'), 5000, 'the WINCH notice');
        r = await L.request(d.roomPort, 'GET', '/');
        assert.strictEqual(r.status, 200, 'the new binary answers');
        assert.ok(L.procAlive(old), 'the old master lives');
        assert.deepStrictEqual(d.workerPids(), w, 'with its workers');

        /* QUIT to the new one: the old master is the one again */
        const fresh = d.readPid();
        L.kill(fresh, 'SIGQUIT');
        await L.waitFor(() => !L.procAlive(fresh) && d.readPid() === old,
                        10000, 'the pid file back to the old master');
        /* which starts workers again: its own stopped accepting */
        await L.waitFor(() => {
            const now = d.workerPids();
            return now.length === 2 && now.every((p) => !w.includes(p));
        }, 10000, 'the old master\'s new workers');
        r = await L.request(d.roomPort, 'GET', '/');
        assert.strictEqual(r.status, 200);
    });
});
