'use strict';
/*
 * operator.test.js: what an operator sees on the terminal (issue 13):
 * a second start refused (the pid file's lock, a port another process
 * listens on) while reload keeps working, "pushd -s" with a broken
 * configuration or no running master, -h and -v on stdout.  Every
 * message is checked word for word.
 */

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const net = require('node:net');
const { spawn, spawnSync } = require('node:child_process');
const L = require('./lib.js');

const T = { timeout: 60000 };

/*
 * Runs pushd with args in its own process group and waits for it to
 * exit: {code, stdout, stderr}.  One that keeps running (a start that
 * should have been refused) is killed, group and all, after 10 s and
 * fails the test.
 */
function runToExit(args) {
    return new Promise((resolve, reject) => {
        const child = spawn(L.BIN, args, { stdio: ['ignore', 'pipe', 'pipe'],
                                           detached: true });
        let stdout = '', stderr = '';
        child.stdout.on('data', (c) => { stdout += c; });
        child.stderr.on('data', (c) => { stderr += c; });
        const timer = setTimeout(() => {
            L.kill(-child.pid, 'SIGKILL');
            reject(new Error(`pushd ${args.join(' ')} still runs after 10 s; `
                             + `stderr: ${stderr}`));
        }, 10000);
        child.on('close', (code) => {
            clearTimeout(timer);
            resolve({ code, stdout, stderr });
        });
    });
}

/* the master of a daemonized pushd of prefix, and its workers, killed */
function killDaemon(prefix) {
    let pid;
    try {
        pid = parseInt(fs.readFileSync(`${prefix}/logs/pushd.pid`, 'utf8'),
                       10);
    } catch (e) {
        return;
    }
    if (pid && L.procAlive(pid) && /pushd/.test(L.procArgs(pid) || '')) {
        for (const w of L.childrenOf(pid)) {
            L.kill(w.pid, 'SIGKILL');
        }
        L.kill(pid, 'SIGKILL');
    }
}

test('a second start on the same prefix is refused; the first runs on', T,
     async () => {
    for (const daemon of [false, true]) {
        await L.withPushd({ workers: 2, daemon }, async (d) => {
            const r = await runToExit(d.args());
            assert.strictEqual(r.code, 1, r.stderr);
            assert.strictEqual(r.stderr, 'pushd: already running: master '
                               + `process ${d.masterPid} holds the pid file `
                               + `"${d.pidPath}"\n`);
            assert.strictEqual(d.readPid(), d.masterPid);
            const res = await L.request(d.roomPort, 'GET', '/');
            assert.strictEqual(res.status, 200);

            /* and -s still reaches the first */
            const s = d.run('-s', 'quit');
            assert.strictEqual(s.status, 0, s.out);
            await L.waitFor(() => !L.procAlive(d.masterPid), 10000,
                            'the first master to leave on -s quit');
        });
    }
});

test('a start on ports another pushd holds is refused with the address, '
     + 'the errno text and the log path', T, async () => {
    await L.withPushd({ workers: 2 }, async (d) => {
        const other = L.makePrefix();
        try {
            fs.writeFileSync(`${other}/conf/pushd.yml`,
                             d.buildConfig({ daemon: true }));
            const r = await runToExit(['-p', other, '-c',
                                       `${other}/conf/pushd.yml`]);
            assert.strictEqual(r.code, 1, r.stderr);
            assert.strictEqual(r.stderr, 'pushd: cannot listen on '
                + `127.0.0.1:${d.roomPort}: bind() failed: Address already `
                + 'in use (another process listens on this port); the error '
                + `log is "${other}/logs/error.log"\n`);
            assert.ok(!fs.existsSync(`${other}/logs/pushd.pid`),
                      'a refused start leaves no pid file');
            /* every client still reaches the first one */
            assert.strictEqual(L.childrenOf(d.masterPid).length, 2);
        } finally {
            killDaemon(other);
            fs.rmSync(other, { recursive: true, force: true });
        }
    });
});

test('a port held by another program is refused as well', T, async () => {
    const port = await L.freePort();
    const holder = net.createServer();
    await new Promise((r) => holder.listen(port, '127.0.0.1', r));
    try {
        const d = await L.startPushd({ wait: false, room: {
            listen: [`127.0.0.1:${port}`] } });
        try {
            await L.waitFor(() => d.childExit !== null, 10000,
                            'pushd to refuse to start');
            assert.strictEqual(d.childExit.code, 1, d.stderrText());
            assert.strictEqual(d.stderrText(), 'pushd: cannot listen on '
                + `127.0.0.1:${port}: bind() failed: Address already in use `
                + '(another process listens on this port); the error log is '
                + `"${d.logPath}"\n`);
        } finally {
            d.killHard();
        }
        assert.strictEqual(L.scanLogs(d), null);
    } finally {
        holder.close();
    }
});

test('reload to more workers on the same ports is not taken for a second '
     + 'start', T, async () => {
    await L.withPushd({ workers: 1 }, async (d) => {
        const first = d.workerPids();
        d.writeConfig({ workers: 3 });
        const r = d.run('-s', 'reload');
        assert.strictEqual(r.status, 0, r.out);
        await L.waitFor(() => {
            const now = d.workerPids();
            return now.length === 3 && !now.includes(first[0]);
        }, 15000, 'three new workers');
        assert.ok(!/cannot listen/.test(d.logText()), d.logText());
        const res = await L.request(d.roomPort, 'GET', '/');
        assert.strictEqual(res.status, 200);
    });
});

test('a stale pid file does not stop a start; -s says "not running" and '
     + 'signals nobody', T, async () => {
    /* a live process that is no pushd master, named by a stale file */
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    const gone = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim();
    try {
        const d = await L.startPushd({ prepare: (h) =>
            fs.writeFileSync(h.pidPath, `${gone}\n`) });
        try {
            assert.strictEqual(d.masterPid, d.child.pid);
        } finally {
            await L.stopChecked(d);
        }
        fs.writeFileSync(d.pidPath, `${sleeper.pid}\n`);
        const r = d.run('-s', 'stop');
        assert.strictEqual(r.status, 1, r.out);
        assert.strictEqual(r.stderr, 'pushd: not running: the pid file '
                           + `"${d.pidPath}" is stale (it names process `
                           + `${sleeper.pid}, but no master holds it)\n`);
        assert.ok(L.procAlive(sleeper.pid), 'the named process lives');
        fs.unlinkSync(d.pidPath);
        const again = d.run('-s', 'quit');
        assert.strictEqual(again.status, 1, again.out);
        assert.strictEqual(again.stderr, 'pushd: not running: there is no '
                           + `pid file "${d.pidPath}"\n`);
        fs.rmSync(d.prefix, { recursive: true, force: true });
    } finally {
        sleeper.kill('SIGKILL');
    }
});

test('-s with a broken configuration: reload is not sent, quit is', T,
     async () => {
    /* no "pid" directive: the default is the one */
    await L.withPushd({ workers: 1, top: { pid: null } }, async (d) => {
        const good = fs.readFileSync(d.confPath, 'utf8');
        const lines = good.split('\n').length;
        fs.writeFileSync(d.confPath, `${good}worker_processes: 2\n`);

        const r = d.run('-s', 'reload');
        assert.strictEqual(r.status, 1, r.out);
        assert.strictEqual(r.stderr,
            `pushd: ${d.confPath}:${lines}:1: "worker_processes" directive `
            + 'is duplicate\n'
            + 'pushd: reload not sent: the master would refuse this '
            + 'configuration and keep running the old one\n');
        assert.ok(!d.logText().includes('reconfiguring'), d.logText());

        const re = d.run('-s', 'reopen');
        assert.strictEqual(re.status, 0, re.out);
        assert.strictEqual(re.stderr,
            `pushd: ${d.confPath}:${lines}:1: "worker_processes" directive `
            + 'is duplicate\n'
            + 'pushd: the configuration has errors; its pid file '
            + `"${d.pidPath}" (the default) is used all the same\n`);
        await L.waitFor(() => d.logText().includes('reopening logs'), 5000,
                        'the reopen to reach the master');

        /* not even YAML: the default pid file, said so */
        fs.writeFileSync(d.confPath, 'room: [\n');
        const q = d.run('-s', 'quit');
        assert.strictEqual(q.status, 0, q.out);
        assert.strictEqual(q.stderr,
            `pushd: ${d.confPath}:2:1: did not find expected node content `
            + '(while parsing a flow node)\n'
            + 'pushd: the configuration cannot be read; the default pid '
            + `file "${d.pidPath}" is used\n`);
        await L.waitFor(() => !L.procAlive(d.masterPid), 10000,
                        'the master to leave on quit');
    });
});

test('-s finds a pid file set in a configuration that has errors', T,
     async () => {
    const pid = 'logs/other.pid';
    await L.withPushd({ workers: 1, top: { pid },
                        prepare: (h) => { h.pidPath = h.path(pid); } },
                      async (d) => {
        assert.strictEqual(d.readPid(), d.masterPid);
        fs.appendFileSync(d.confPath, 'bogus: 1\n');
        const r = d.run('-s', 'quit');
        assert.strictEqual(r.status, 0, r.out);
        assert.match(r.stderr, /: unknown directive "bogus"\n/);
        assert.ok(r.stderr.endsWith('pushd: the configuration has errors; '
                                    + `its pid file "${d.pidPath}" is used `
                                    + 'all the same\n'), r.stderr);
        await L.waitFor(() => !L.procAlive(d.masterPid), 10000,
                        'the master to leave on quit');
    });
});

test('-h and -v print to stdout', () => {
    const v = spawnSync(L.BIN, ['-v'], { encoding: 'utf8' });
    assert.strictEqual(v.status, 0);
    assert.match(v.stdout, /^pushd version \d+\.\d+\.\d+\n$/);
    assert.strictEqual(v.stderr, '');
    const h = spawnSync(L.BIN, ['-h'], { encoding: 'utf8' });
    assert.strictEqual(h.status, 0);
    assert.match(h.stdout, /^Usage: pushd /);
    assert.match(h.stdout, /-s signal +: send signal to the master process/);
    assert.strictEqual(h.stderr, '');
});
