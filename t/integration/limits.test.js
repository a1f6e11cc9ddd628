'use strict';
/*
 * limits.test.js: a worker with every worker_connections slot taken
 * stops accepting (its listeners leave the epoll set) instead of
 * spinning on a full backlog: the clients beyond the limit wait in the
 * kernel's backlog and are served as others leave, the worker's CPU time
 * stays flat meanwhile, and "worker_connections are not enough" is
 * logged once per interval, not per attempt.
 */

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const { spawnSync } = require('node:child_process');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 120000 };

/* user + system CPU seconds of pid so far, from /proc/<pid>/stat */
function cpuSeconds(pid) {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    /* utime and stime are fields 14 and 15 (1-based), in clock ticks;
     * Linux reports them in USER_HZ, 100 a second on every architecture */
    return (Number(f[11]) + Number(f[12])) / 100;
}

/* connections to port that pid has accepted (those still in the backlog
 * belong to no process yet) */
function acceptedBy(port, pid) {
    const r = spawnSync('ss', ['-tnpH', 'state', 'established',
                               `( sport = :${port} )`], { encoding: 'utf8' });
    return (r.stdout || '').split('\n')
        .filter((l) => l.includes(`pid=${pid},`)).length;
}

const NOT_ENOUGH = /worker_connections are not enough, not accepting/;
const count = (text) => text.split('\n').filter((l) => NOT_ENOUGH.test(l))
    .length;

test('a worker out of slots stops accepting, idles, and serves the '
     + 'waiting clients as others leave', T, async (t) => {
    const SLOTS = 24;
    const CLIENTS = 40;

    const clients = [];
    const conf = { workers: 1, top: { worker_connections: SLOTS },
                   room: { auth_secret: W.SECRET } };

    await L.withPushd(conf, async (d) => {
        const [worker] = d.workerPids();
        let opened = 0;

        for (let i = 0; i < CLIENTS; i++) {
            const c = new W.Client(W.wsUrl(d.roomPort,
                                           W.connectPath(`u${i}`, 'phone')));
            c.welcomed = c.op('welcome', 60000).then(() => {
                c.isOpen = true;
                opened++;
            }, () => {});
            clients.push(c);
        }

        /* the worker fills its slots and says so */
        await L.waitFor(() => NOT_ENOUGH.test(d.logText()), 10000,
                        'the "not enough" line');
        /* every accepted client has its welcome */
        await L.waitFor(() => opened > 0
                        && opened === acceptedBy(d.roomPort, worker), 10000,
                        'a welcome for each accepted client');
        const full = opened;
        assert.ok(full > 0 && full < SLOTS,
                  `${full} sessions fit in ${SLOTS} slots`);

        /* meanwhile the worker sleeps: CPU time over a 3 s window, with
         * the clients beyond the limit queued; spinning on accept would
         * cost most of a core */
        const cpu0 = cpuSeconds(worker);
        await L.delay(3000);
        const cpu = cpuSeconds(worker) - cpu0;
        t.diagnostic(`${full} sessions in ${SLOTS} slots, ${CLIENTS - full} `
                     + `queued; worker CPU ${cpu.toFixed(2)} s in 3 s`);
        assert.ok(cpu < 0.15, `worker used ${cpu.toFixed(2)} s of CPU in `
                             + '3 s while out of slots');
        assert.strictEqual(opened, full, 'nobody else was let in');
        const waiting = clients.filter((c) => !c.isOpen);
        assert.strictEqual(waiting.length, CLIENTS - full);
        for (const c of waiting) {
            assert.strictEqual(c.closeInfo, null,
                               'a waiting client was not refused');
        }

        /* five leave: five of the waiting take their slots, and the
         * worker is full again, without a second log line */
        const leavers = clients.filter((c) => c.isOpen).slice(0, 5);
        for (const c of leavers) {
            c.close();
        }
        await L.waitFor(() => opened === full + 5, 10000,
                        'five waiting clients served');
        assert.strictEqual(count(d.logText()), 1,
                           'logged once in the interval');

        /* everyone else leaves: all the rest are served */
        for (const c of clients.filter((x) => x.isOpen)) {
            if (!leavers.includes(c)) {
                c.close();
            }
        }
        await L.waitFor(() => opened === CLIENTS, 20000,
                        'every waiting client served');
        for (const c of clients) {
            c.close();
        }
        await Promise.all(clients.map((c) => c.waitClose(10000)));

        /* and the worker accepts as usual again */
        const late = await W.connect(d.roomPort, 'late', 'phone');
        assert.strictEqual(late.welcome.op, 'welcome');
        late.close();
        assert.deepStrictEqual(d.workerPids(), [worker],
                               'the same worker throughout');
    }).finally(() => clients.forEach((c) => c.close()));
});
