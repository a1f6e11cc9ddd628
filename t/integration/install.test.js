'use strict';
/*
 * install.test.js: `make install` into a temporary DESTDIR: the modes of
 * what it writes (the configuration holds secrets: 0640; the key 0600;
 * logs/ not writable by the workers), nothing outside the prefix, an
 * existing configuration kept as it is, and the installed configuration
 * refused by -t until its placeholder secrets are replaced.  The systemd
 * unit: a graceful stop, a reload, checked by systemd-analyze verify;
 * configure's --systemd-unit-dir.
 */

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const L = require('./lib.js');

const T = { timeout: 120000 };
const ROOT = path.resolve(__dirname, '..', '..');
/* the build tree under test: its Makefile installs its binary */
const MAKEFILE = path.join(path.dirname(L.BIN), 'Makefile');
const PREFIX = '/opt/pushd-test';

function install(destdir) {
    const r = spawnSync('make', ['-s', '-f', MAKEFILE, 'install',
                                 `DESTDIR=${destdir}`, `PREFIX=${PREFIX}`],
                        { cwd: ROOT, encoding: 'utf8', timeout: 100000 });
    assert.strictEqual(r.status, 0, `make install: ${r.stdout}${r.stderr}`);
    return r.stdout;
}

/* every file under dir */
function walk(dir) {
    const out = [];
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) {
            out.push(...walk(p));
        } else {
            out.push(p);
        }
    }
    return out;
}

function mode(p) {
    return (fs.statSync(p).mode & 0o7777).toString(8).padStart(4, '0');
}

test('make install: modes, the secrets notice, an existing config kept',
     { ...T, skip: !fs.existsSync(MAKEFILE) && `no ${MAKEFILE}` },
     async () => {
    const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'pushd-install-'));
    try {
        const out = install(dest);
        const top = path.join(dest, PREFIX);
        const conf = path.join(top, 'conf', 'pushd.yaml');

        assert.strictEqual(mode(conf), '0640', 'the config holds secrets');
        assert.strictEqual(mode(path.join(top, 'conf', 'pushd.key')), '0600');
        assert.strictEqual(mode(path.join(top, 'conf', 'pushd.crt')), '0644');
        assert.strictEqual(mode(path.join(top, 'sbin', 'pushd')), '0755');
        assert.strictEqual(mode(path.join(top, 'logs')), '0755');
        assert.strictEqual(mode(path.join(top, 'lib', 'systemd', 'system',
                                          'pushd.service')), '0644');
        /* with a prefix, nothing is written outside it (issue 13) */
        const outside = walk(dest).filter((f) => !f.startsWith(`${top}/`));
        assert.deepStrictEqual(outside, []);
        assert.ok(out.includes('set room.auth_secret and center.api_key'),
                  out);

        /* as installed, the daemon refuses the placeholders */
        const bin = path.join(top, 'sbin', 'pushd');
        let r = spawnSync(bin, ['-p', top, '-t'], { encoding: 'utf8' });
        assert.strictEqual(r.status, 1, r.stderr);
        assert.match(r.stderr, /"auth_secret" is the placeholder shipped/);

        /* once set, it passes; a second install keeps that file as is */
        fs.writeFileSync(conf, fs.readFileSync(conf, 'utf8')
            .replace(/"change-me-[a-z-]*"/g, '"0123456789abcdef0123"'));
        fs.chmodSync(conf, 0o600);
        r = spawnSync(bin, ['-p', top, '-t'], { encoding: 'utf8' });
        assert.strictEqual(r.status, 0, r.stderr);

        const before = fs.readFileSync(conf, 'utf8');
        const again = install(dest);
        assert.strictEqual(fs.readFileSync(conf, 'utf8'), before);
        assert.strictEqual(mode(conf), '0600', 'the operator\'s mode stays');
        assert.ok(!again.includes('set room.auth_secret'), again);
    } finally {
        fs.rmSync(dest, { recursive: true, force: true });
    }
});

/* "10s", "1m", "500ms" -> seconds */
function seconds(v) {
    const m = /^(\d+)(ms|s|m|h)?$/.exec(v);
    assert.ok(m, `a duration: ${v}`);
    return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] || 's'];
}

test('the systemd unit stops gracefully and reloads', () => {
    const unit = fs.readFileSync(path.join(ROOT, 'conf', 'pushd.service'),
                                 'utf8');
    const keys = {};
    for (const l of unit.split('\n')) {
        const m = /^([A-Za-z]+)=(.*)$/.exec(l);
        if (m) {
            keys[m[1]] = m[2];
        }
    }
    /* QUIT to the master alone; it retires its workers */
    assert.strictEqual(keys.KillSignal, 'SIGQUIT');
    assert.strictEqual(keys.KillMode, 'mixed');
    /* "-s quit" returns at once: systemd would follow it with SIGTERM */
    assert.strictEqual(keys.ExecStop, undefined);
    assert.strictEqual(keys.ExecReload,
                       '@PREFIX@/sbin/pushd -p @PREFIX@ -s reload');
    /* the graceful stop gets its backstop's time, and more */
    const conf = fs.readFileSync(path.join(ROOT, 'conf', 'pushd.yaml'),
                                 'utf8');
    const wst = /^worker_shutdown_timeout: (\S+)$/m.exec(conf);
    assert.ok(wst, 'worker_shutdown_timeout in conf/pushd.yaml');
    assert.ok(seconds(keys.TimeoutStopSec) > seconds(wst[1]) + 5,
              `TimeoutStopSec ${keys.TimeoutStopSec} above `
              + `worker_shutdown_timeout ${wst[1]}`);
});

const ANALYZE = spawnSync('sh', ['-c', 'command -v systemd-analyze'],
                          { encoding: 'utf8' }).stdout.trim();

test('systemd-analyze verify accepts the installed unit',
     { ...T, skip: (!ANALYZE && 'systemd-analyze is not installed')
                   || (!fs.existsSync(MAKEFILE) && `no ${MAKEFILE}`) },
     () => {
    /* a real prefix, no DESTDIR: verify checks that ExecStart= exists */
    const top = fs.mkdtempSync(path.join(os.tmpdir(), 'pushd-unit-'));
    try {
        const r = spawnSync('make', ['-s', '-f', MAKEFILE, 'install',
                                     `PREFIX=${top}`],
                            { cwd: ROOT, encoding: 'utf8', timeout: 100000 });
        assert.strictEqual(r.status, 0, `make install: ${r.stdout}${r.stderr}`);
        const unit = path.join(top, 'lib', 'systemd', 'system',
                               'pushd.service');
        assert.ok(r.stdout.includes('enable it by its path: systemctl '
                                    + `enable ${unit}`), r.stdout);
        const v = spawnSync(ANALYZE, ['verify', '--man=no', unit],
                            { encoding: 'utf8' });
        /* it warns about what it ignores and exits 0: both must be clean */
        assert.strictEqual(v.stderr, '', v.stderr);
        assert.strictEqual(v.status, 0, v.stdout);

        /* and here it does see a mistake */
        const bad = path.join(top, 'bad.service');
        fs.writeFileSync(bad, fs.readFileSync(unit, 'utf8')
            .replace('KillSignal=SIGQUIT', 'KillSignal=SIGQUITE'));
        const b = spawnSync(ANALYZE, ['verify', '--man=no', bad],
                            { encoding: 'utf8' });
        assert.match(b.stderr, /SIGQUITE/);
    } finally {
        fs.rmSync(top, { recursive: true, force: true });
    }
});

test('configure --systemd-unit-dir: in the summary and the Makefile',
     { ...T, skip: !fs.existsSync(path.join(ROOT, 'configure'))
                   && 'no configure' }, () => {
    const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'pushd-conf-'));
    try {
        let r = spawnSync('./configure', [`--builddir=${tree}/a`],
                          { cwd: ROOT, encoding: 'utf8', timeout: 100000 });
        assert.strictEqual(r.status, 0, r.stderr);
        assert.match(r.stdout, new RegExp('^ {2}systemd unit: +/usr/local/'
                                          + 'pushd/lib/systemd/system/'
                                          + 'pushd\\.service$', 'm'));
        r = spawnSync('./configure', [`--builddir=${tree}/b`,
                                      '--systemd-unit-dir=/etc/systemd/'
                                      + 'system/'],
                      { cwd: ROOT, encoding: 'utf8', timeout: 100000 });
        assert.strictEqual(r.status, 0, r.stderr);
        assert.match(r.stdout, new RegExp('^ {2}systemd unit: +/etc/'
                                          + 'systemd/system/pushd\\.service$',
                                          'm'));
        assert.match(fs.readFileSync(`${tree}/b/Makefile`, 'utf8'),
                     /^SYSTEMD_UNIT_DIR = \/etc\/systemd\/system$/m);
        r = spawnSync('./configure', [`--builddir=${tree}/c`,
                                      '--systemd-unit-dir=relative'],
                      { cwd: ROOT, encoding: 'utf8', timeout: 100000 });
        assert.strictEqual(r.status, 1);
        assert.strictEqual(r.stderr, './configure: error: --systemd-unit-dir '
                           + 'must be an absolute path\n');
    } finally {
        fs.rmSync(tree, { recursive: true, force: true });
    }
});
