'use strict';
/*
 * files.test.js: the daemon's own files (error log, pid file), which a
 * root master opens in directories others may reach.  A symbolic link
 * or a hard link planted at either is refused with a clear message and
 * exit status 1 at start, and the file it points to is left untouched; on
 * USR1 the old log stays in use and nothing is chowned; "-s stop" does
 * not signal a pid read through a link or from a file that is not ours.
 * As root (workers as nobody), a log or pid directory that nobody could
 * write, or a directory above it, is refused too.
 */

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const L = require('./lib.js');

const T = { timeout: 60000 };
const ROOT = process.getuid() === 0;
const AS_ROOT = { ...T, skip: !ROOT && 'needs root (workers as nobody)' };

function idOf(flag, name) {
    const r = spawnSync('id', [flag, name], { encoding: 'utf8' });
    return Number(r.stdout.trim());
}

/*
 * A file outside the prefix, on the same file system (so that a hard
 * link to it can be planted), that pushd must never write, truncate or
 * chown.
 */
function victim(content = 'precious\n') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushd-victim-'));
    const file = path.join(dir, 'precious');
    fs.writeFileSync(file, content, { mode: 0o644 });
    const before = fs.statSync(file);
    return {
        file,
        assertUntouched() {
            const now = fs.statSync(file);
            assert.strictEqual(fs.readFileSync(file, 'utf8'), content,
                               'the target\'s content is unchanged');
            assert.strictEqual(now.uid, before.uid, 'its owner is unchanged');
            assert.strictEqual(now.gid, before.gid, 'its group is unchanged');
            assert.strictEqual(now.mode, before.mode, 'its mode is unchanged');
        },
        remove() {
            fs.rmSync(dir, { recursive: true, force: true });
        },
    };
}

function plant(kind, target, at) {
    if (kind === 'symbolic link') {
        fs.symlinkSync(target, at);
    } else {
        fs.linkSync(target, at);
    }
}

const REASON = {
    'symbolic link': 'it is a symbolic link, which is not followed',
    'hard link': 'it has 2 hard links, and another name of it could be '
                 + 'any file',
};

/* starts pushd with prepare(d) run first; waits for it to exit (refused) */
async function refusedStart(prepare, opts = {}) {
    const d = await L.startPushd({ ...opts, prepare, wait: false });
    try {
        await L.waitFor(() => d.childExit !== null, 10000,
                        'pushd to refuse to start and exit');
    } finally {
        d.killHard();
    }
    assert.strictEqual(L.scanLogs(d), null);
    return d;
}

for (const file of ['error log', 'pid file', 'seq file']) {
    for (const kind of ['symbolic link', 'hard link']) {
        test(`a ${kind} at the ${file} is refused at start; its target is `
             + 'untouched', T, async () => {
            const v = victim();
            let at;
            try {
                const d = await refusedStart((h) => {
                    at = { 'error log': h.logPath, 'pid file': h.pidPath,
                           'seq file': h.path('logs/pushd.seq') }[file];
                    plant(kind, v.file, at);
                });
                assert.strictEqual(d.childExit.code, 1, d.stderrText());
                assert.ok(d.stderrText().includes(
                    `pushd: cannot open the ${file} "${at}": ${REASON[kind]}`),
                          d.stderrText());
                v.assertUntouched();
            } finally {
                v.remove();
            }
        });
    }
}

const NOBODY_DIRS = [
    ['world-writable', (dir) => fs.chmodSync(dir, 0o777),
     'world-writable without the sticky bit, mode 0777'],
    ['owned by nobody', (dir) => fs.chownSync(dir, idOf('-u', 'nobody'), 0),
     'owned by it, mode 0755'],
    ['writable by nobody\'s group', (dir) => {
        fs.chownSync(dir, 0, idOf('-g', 'nobody'));
        fs.chmodSync(dir, 0o775);
    }, 'writable by its group, mode 0775'],
];

for (const [name, make, why] of NOBODY_DIRS) {
    test(`as root, a log directory ${name} is refused`, AS_ROOT,
         async () => {
        const d = await refusedStart((h) => make(h.path('logs')));
        assert.strictEqual(d.childExit.code, 1, d.stderrText());
        assert.ok(d.stderrText().includes(
            `pushd: cannot open the error log "${d.logPath}": the directory `
            + `"${d.path('logs')}" is writable by the workers' user "nobody" `
            + `(${why}): it could plant links there`), d.stderrText());
        assert.ok(!fs.existsSync(d.logPath), 'no log file was created');
    });
}

test('as root, a world-writable directory above the log is refused', AS_ROOT,
     async () => {
    const d = await refusedStart((h) => fs.chmodSync(h.prefix, 0o777));
    assert.strictEqual(d.childExit.code, 1, d.stderrText());
    assert.ok(d.stderrText().includes(`the directory "${d.prefix}" is `
                                      + 'writable by the workers\' user '
                                      + '"nobody" (world-writable'),
              d.stderrText());
});

test('as root, a pid directory nobody can write is refused', AS_ROOT,
     async () => {
    const d = await refusedStart((h) => {
        fs.mkdirSync(h.path('run'), { mode: 0o755 });
        fs.chmodSync(h.path('run'), 0o777);
    }, { top: { pid: 'run/pushd.pid' } });
    assert.strictEqual(d.childExit.code, 1, d.stderrText());
    assert.ok(d.stderrText().includes(
        `pushd: cannot open the pid file "${d.path('run/pushd.pid')}": the `
        + `directory "${d.path('run')}" is writable by the workers' user `
        + '"nobody"'), d.stderrText());
    assert.ok(!fs.existsSync(d.path('run/pushd.pid')));
});

test('as root, a sticky world-writable log directory (as /tmp) is fine',
     AS_ROOT, async () => {
    await L.withPushd({ prepare: (h) => fs.chmodSync(h.path('logs'),
                                                       0o1777) },
                      async (d) => {
        const r = await L.request(d.roomPort, 'GET', '/');
        assert.strictEqual(r.status, 200);
    });
});

for (const kind of ['symbolic link', 'hard link']) {
    test(`as root, USR1 with a ${kind} at the error log keeps the old file `
         + 'and chowns nothing', AS_ROOT, async () => {
        const v = victim();
        try {
            await L.withPushd({ workers: 1 }, async (d) => {
                await L.waitFor(() => fs.existsSync(d.logPath), 5000,
                                'the error log');
                const old = d.path('logs/error.log.1');
                fs.renameSync(d.logPath, old);
                plant(kind, v.file, d.logPath);

                process.kill(d.masterPid, 'SIGUSR1');
                const line = `reopening "${d.logPath}" refused: `
                             + `${REASON[kind]}; the old file stays in use`;
                await L.waitFor(() => fs.readFileSync(old, 'utf8')
                                .includes(line), 5000, `"${line}" in the `
                                + 'old log');
                v.assertUntouched();
                assert.ok(L.procAlive(d.masterPid));

                /* the link gone, the next USR1 makes a file for nobody */
                fs.unlinkSync(d.logPath);
                process.kill(d.masterPid, 'SIGUSR1');
                await L.waitFor(() => fs.existsSync(d.logPath), 5000,
                                'a new error.log');
                assert.strictEqual(fs.statSync(d.logPath).uid,
                                   idOf('-u', 'nobody'),
                                   'the new log is handed to the workers');
                v.assertUntouched();
            });
        } finally {
            v.remove();
        }
    });
}

/* a process pushd must not signal, and a file naming it */
function bystander() {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    return child;
}

const STOPS = [
    ['a symbolic link', false, (d, file) => {
        fs.unlinkSync(d.pidPath);
        fs.symlinkSync(file, d.pidPath);
    }, 'it is a symbolic link, which is not followed'],
    ['a file of another user', true, (d, file) => {
        fs.unlinkSync(d.pidPath);
        fs.copyFileSync(file, d.pidPath);
        fs.chownSync(d.pidPath, idOf('-u', 'nobody'), idOf('-g', 'nobody'));
    }, `it belongs to uid ${idOf('-u', 'nobody')}, not to us`],
];

for (const [name, needRoot, swap, reason] of STOPS) {
    test(`-s stop does not signal a pid read from ${name}`,
         needRoot ? AS_ROOT : T, async () => {
        const sleeper = bystander();
        const v = victim(`${sleeper.pid}\n`);
        try {
            await L.withPushd({ workers: 1 }, async (d) => {
                swap(d, v.file);
                const r = d.run('-s', 'stop');
                assert.strictEqual(r.status, 1, r.out);
                assert.ok(r.stderr.includes(`pushd: cannot read the pid file `
                                            + `"${d.pidPath}": ${reason}`),
                          r.stderr);
                assert.strictEqual(sleeper.exitCode, null);
                assert.ok(L.procAlive(sleeper.pid), 'the bystander lives');
                assert.ok(L.procAlive(d.masterPid), 'pushd runs on');
            });
        } finally {
            sleeper.kill('SIGKILL');
            v.remove();
        }
    });
}
