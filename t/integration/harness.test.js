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
        /* the normal build dies of it; in the sanitizer build ASan takes
         * the signal, reports and exits: caught either way */
        if (/^sanitizer report/.test(e.message)) {
            assert.match(e.message, new RegExp(`==${victim}==ERROR: `
                                               + 'AddressSanitizer: SEGV'));
        } else {
            assert.match(e.message, /died of a signal/);
            assert.match(e.message,
                         new RegExp(`${victim} exited on signal 11`));
        }
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

/* a copy of the repository's scripts in a temporary directory: t/run,
 * t/check, auto/check-style and what they read, without the sources */
function scratchCopy() {
    const fs = require('node:fs');
    const os = require('node:os');
    const path = require('node:path');
    const root = path.resolve(__dirname, '..', '..');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushd-harness-'));
    for (const f of ['t/run', 't/check', 'auto/check-style']) {
        fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
        fs.copyFileSync(path.join(root, f), path.join(dir, f));
        fs.chmodSync(path.join(dir, f), 0o755);
    }
    fs.mkdirSync(path.join(dir, 't', 'integration'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
    return dir;
}

test('t/check: a tree that fails to build is a failure and is not tested',
     T, () => {
    const fs = require('node:fs');
    const path = require('node:path');
    const { spawnSync } = require('node:child_process');
    const dir = scratchCopy();
    try {
        /* configured trees, and a make that fails */
        for (const tree of ['objs', 'objs-san']) {
            fs.mkdirSync(path.join(dir, tree));
            fs.writeFileSync(path.join(dir, tree, 'Makefile'), '');
        }
        fs.mkdirSync(path.join(dir, 'bin'));
        fs.writeFileSync(path.join(dir, 'bin', 'make'),
                         '#!/bin/sh\necho "make: *** [x] Error 1" >&2\n'
                         + 'exit 2\n');
        fs.chmodSync(path.join(dir, 'bin', 'make'), 0o755);
        const r = spawnSync(path.join(dir, 't', 'check'), [], {
            encoding: 'utf8', timeout: 60000,
            env: { ...process.env,
                   PATH: `${path.join(dir, 'bin')}:${process.env.PATH}` },
        });
        assert.notStrictEqual(r.status, 0, r.stdout);
        for (const tree of ['objs-san', 'objs']) {
            assert.ok(r.stdout.includes(`not ok - the ${tree} build failed; `
                                        + 'its tests are not run'), r.stdout);
        }
        assert.ok(!r.stdout.includes('# no unit tests'),
                  'no tree was tested');
        /* the two trees, and the fuzz pass, whose build fails too */
        assert.ok(r.stdout.includes('not ok - fuzz'), r.stdout);
        assert.match(r.stdout.trim().split('\n').pop(),
                     /^\d+ passed, 3 failed$/);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('t/run with PD_TEST_STRICT=1 (make test, CI) counts a skip as a '
     + 'failure', T, () => {
    const fs = require('node:fs');
    const path = require('node:path');
    const { spawnSync } = require('node:child_process');
    const dir = scratchCopy();
    try {
        fs.mkdirSync(path.join(dir, 'objs'));
        fs.writeFileSync(path.join(dir, 't', 'integration',
                                   'skipping.test.js'),
                         "require('node:test')('needs a server', "
                         + "{ skip: 'the server is not installed' }, "
                         + '() => {});\n'
                         + "require('node:test')('runs', () => {});\n");
        /* without NODE_TEST_CONTEXT, or the inner runner would report to
         * this one instead of printing its counts */
        const base = { ...process.env };
        delete base.NODE_TEST_CONTEXT;
        const run = (env) => spawnSync(path.join(dir, 't', 'run'), ['objs'], {
            encoding: 'utf8', timeout: 60000,
            env: { ...base, PD_TEST_FILTER: 'skipping', ...env },
        });
        const lax = run({ PD_TEST_STRICT: '0' });
        assert.strictEqual(lax.stdout.trim().split('\n').pop(),
                           '1 passed, 0 failed, 1 skipped', lax.stdout);
        const strict = run({ PD_TEST_STRICT: '1' });
        assert.notStrictEqual(strict.status, 0);
        assert.strictEqual(strict.stdout.trim().split('\n').pop(),
                           '1 passed, 1 failed, 1 skipped', strict.stdout);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
