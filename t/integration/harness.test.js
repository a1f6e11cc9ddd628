'use strict';
/*
 * harness.test.js: the harness's own checks can fail.  The scan that
 * every daemon a test started goes through (lib.js stopChecked, used by
 * withPushd) finds a worker dead of a signal the test did not send, on
 * a synthetic log and on a real crash; a death the test caused on
 * purpose (d.kill) is no failure.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');

const T = { timeout: 60000 };

test('signalDeaths finds a death by a signal, minus the expected ones',
     () => {
    const log = [
        '2026/12/05 20:40:29 [notice] 100#m: start worker process 101',
        '2026/12/05 20:40:30 [alert] 100#m: worker process 101 exited on '
        + 'signal 11 (core dumped)',
        '2026/12/05 20:40:31 [alert] 100#m: worker process 102 exited on '
        + 'signal 9',
        '2026/12/05 20:40:31 [notice] 100#m: worker process 103 exited '
        + 'with code 0',
    ].join('\n');
    const all = L.signalDeaths(log);
    assert.strictEqual(all.length, 2, all.join('\n'));
    assert.match(all[0], /101 exited on signal 11 \(core dumped\)$/);
    assert.match(all[1], /102 exited on signal 9$/);
    assert.strictEqual(L.signalDeaths(log, [{ pid: 102, signal: 9 }])
                       .length, 1, 'the expected SIGKILL is left out');
    assert.strictEqual(L.signalDeaths(log, [{ pid: 101, signal: 9 }])
                       .length, 2, 'another signal than expected counts');
    assert.deepStrictEqual(L.signalDeaths('worker process 5 exited with '
                                          + 'code 2'), []);
});

test('a worker SIGSEGVed behind the test\'s back fails withPushd', T,
     async () => {
    let victim;
    await assert.rejects(L.withPushd({ workers: 2 }, async (d) => {
        victim = d.workerPids()[0];
        process.kill(victim, 'SIGSEGV');
        await L.waitFor(() => d.workerPids().length === 2
                        && !d.workerPids().includes(victim), 10000,
                        'a respawned worker');
    }), (e) => {
        assert.match(e.message, /died of a signal/);
        assert.match(e.message, new RegExp(`${victim} exited on signal 11`));
        return true;
    });
});

test('a worker killed on purpose through d.kill passes the scan', T,
     async () => {
    await L.withPushd({ workers: 2 }, async (d) => {
        const victim = d.workerPids()[0];
        d.kill(victim, 'SIGKILL');
        await L.waitFor(() => d.logText().includes(
            `${victim} exited on signal 9`), 10000, 'the death logged');
    });
});
