'use strict';
/*
 * install.test.js: `make install` into a temporary DESTDIR: the modes of
 * what it writes (the configuration holds secrets: 0640; the key 0600;
 * logs/ not writable by the workers), an existing configuration kept as
 * it is, and the installed configuration refused by -t until its
 * placeholder secrets are replaced.
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
        assert.strictEqual(mode(path.join(dest, 'lib', 'systemd', 'system',
                                          'pushd.service')), '0644');
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
