'use strict';
/*
 * config.test.js: `pushd -t` on good and broken configuration files,
 * the exact "file:line:column: message" of each error, -v and -p; the
 * error_log level at work.
 */

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const L = require('./lib.js');
const W = require('./ws_client.js');

const prefix = L.makePrefix();

/* writes text to conf/<name>.yml in the shared prefix; its full path */
function conf(name, text) {
    const f = path.join(prefix, 'conf', `${name}.yml`);
    fs.writeFileSync(f, text);
    return f;
}

function check(file) {
    return L.runPushd(['-p', prefix, '-t', '-c', file]);
}

function lines(s) {
    return s.split('\n').filter((l) => l.length > 0);
}

/*
 * Runs -t on text and asserts exit 1, that the first stderr line equals
 * (or, given a RegExp, matches) the expected one with the file path in
 * front, and that the last line says the test failed.
 */
function expectError(name, text, expected) {
    const f = conf(name, text);
    const r = check(f);
    const ls = lines(r.stderr);
    assert.strictEqual(r.status, 1, `exit status; stderr:\n${r.stderr}`);
    if (expected instanceof RegExp) {
        assert.match(ls[0] || '', expected);
    } else {
        assert.strictEqual(ls[0], `pushd: ${f}:${expected}`);
    }
    assert.strictEqual(ls[ls.length - 1],
                       `pushd: configuration file ${f} test failed`);
    return { file: f, first: ls[0], r };
}

function esc(s) {
    return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const goodText = L.toYaml({
    worker_processes: 2,
    daemon: false,
    pid: 'logs/pushd.pid',
    error_log: 'logs/error.log info',
    room: { listen: ['127.0.0.1:28080'], auth_secret: L.AUTH_SECRET },
    center: { listen: ['127.0.0.1:28081'], api_key: L.API_KEY },
});

test('-t accepts a good file and prints both lines', () => {
    const f = conf('good', goodText);
    const r = check(f);
    assert.strictEqual(r.status, 0, r.stderr);
    const ls = lines(r.stderr);
    assert.ok(ls.includes(`pushd: the configuration file ${f} syntax is ok`),
              r.stderr);
    assert.ok(ls.includes(`pushd: configuration file ${f} test is successful`),
              r.stderr);
    /* a test run starts nothing */
    assert.ok(!fs.existsSync(path.join(prefix, 'logs', 'pushd.pid')),
              '-t must not write the pid file');
});

test('-t accepts every documented directive', () => {
    const c = L.certPair();
    const f = conf('full', L.toYaml({
        worker_processes: 'auto',
        daemon: true,
        pid: 'logs/other.pid',
        error_log: 'logs/error.log debug',
        node_id: 'node-1',
        user: 'nobody',
        worker_connections: 1024,
        worker_rlimit_nofile: 4096,
        worker_cpu_affinity: 'auto',
        worker_shutdown_timeout: '500ms',
        room: {
            listen: ['127.0.0.1:28080', '28443 ssl'],
            ssl_certificate: c.cert,
            ssl_certificate_key: c.key,
            auth_secret: L.AUTH_SECRET,
            heartbeat: '30s',
            heartbeat_min: '10s',
            heartbeat_max: '10m',
            handshake_timeout: '5s',
            header_buffer_size: '8k',
            max_frame: '16k',
            max_message: '32k',
            max_apps: 4,
            allow: ['127.0.0.0/8', '::1'],
            deny: ['10.0.0.0/8'],
            max_connections_per_ip: 10,
            handshake_rate: 100,
            output_limit: '128k',
            reconnect_window: '5s',
            max_bad_frames: 3,
        },
        register: { backend: 'memory', memory: '8m', max_ips: 1024 },
        center: { listen: ['127.0.0.1:28081'], api_key: L.API_KEY,
                  max_body: '2m', keepalive_timeout: '30s' },
    }));
    const r = check(f);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.ok(lines(r.stderr).includes(
        `pushd: configuration file ${f} test is successful`), r.stderr);
});

test('-c relative to -p is resolved against the prefix', () => {
    conf('rel', goodText);
    const r = L.runPushd(['-p', prefix, '-c', 'conf/rel.yml', '-t']);
    const f = path.join(prefix, 'conf', 'rel.yml');
    assert.strictEqual(r.status, 0, r.stderr);
    assert.ok(lines(r.stderr).includes(
        `pushd: configuration file ${f} test is successful`), r.stderr);
});

test('unknown top-level directive', () => {
    expectError('unknown', 'worker_processes: 1\nfoo: 1\n',
                '2:1: unknown directive "foo"');
});

test('unknown directive in a section', () => {
    expectError('unknown_room', 'worker_processes: 1\nroom:\n  listen:\n'
                + '    - "127.0.0.1:28080"\n  bar: 1\n',
                '5:3: unknown directive "bar" in section "room"');
});

test('duplicate directive', () => {
    expectError('dup', 'worker_processes: 1\nworker_processes: 2\n',
                '2:1: "worker_processes" directive is duplicate');
});

test('wrong type points at the value', () => {
    expectError('type', 'worker_processes: 1\nworker_connections: lots\n',
                '2:21: "worker_connections" must be a number');
});

test('out of range, below and above', () => {
    expectError('range0', 'worker_processes: 1\nworker_connections: 0\n',
                '2:21: "worker_connections" must be between 1 and 1048576');
    expectError('range1', 'worker_processes: 1\nworker_connections: 1048577\n',
                '2:21: "worker_connections" must be between 1 and 1048576');
});

test('bad listen addresses point at the bad entry', () => {
    for (const [i, bad] of ['1.2.3.4.5:80', '127.0.0.1:99999',
                            '127.0.0.1:80 tls'].entries())
    {
        const f = path.join(prefix, 'conf', `listen${i}.yml`);
        expectError(`listen${i}`, 'worker_processes: 1\nroom:\n  listen:\n'
                    + '    - "127.0.0.1:28080"\n'
                    + `    - "${bad}"\n`,
                    new RegExp(`^pushd: ${esc(f)}:5:7: .*"listen"`));
    }
});

test('YAML syntax errors report the position', () => {
    let f = path.join(prefix, 'conf', 'syntax1.yml');
    expectError('syntax1', 'worker_processes: 1\n  bad: indent\n',
                new RegExp(`^pushd: ${esc(f)}:2:6: \\S`));
    f = path.join(prefix, 'conf', 'syntax2.yml');
    expectError('syntax2', 'worker_processes: 1\ndaemon: off\n- x\n',
                new RegExp(`^pushd: ${esc(f)}:3:1: \\S`));
});

test('an ssl listener without a certificate names the room section', () => {
    const { r } = expectError('nocert', 'worker_processes: 1\nroom:\n'
                              + '  listen:\n    - "127.0.0.1:28443 ssl"\n',
                              /^pushd: /);
    assert.match(r.stderr, /room/);
    assert.match(r.stderr, /ssl_certificate|certificate/);
});

test('a directive checked against others points at its own line', () => {
    /* not at "room:" (line 2), where the section starts (issue 13) */
    expectError('hb_bounds', 'worker_processes: 1\nroom:\n  listen:\n'
                + '    - "127.0.0.1:28080"\n'
                + `  auth_secret: "${L.AUTH_SECRET}-0123456789"\n`
                + '  heartbeat: 5s\n',
                '6:14: "room" "heartbeat" is outside heartbeat_min .. '
                + 'heartbeat_max');
    expectError('hb_min_max', 'worker_processes: 1\nroom:\n'
                + '  heartbeat_max: 1m\n  heartbeat_min: 2m\n',
                '4:18: "room" "heartbeat_min" is above "heartbeat_max"');
});

test('worker_processes 0 and "many" are rejected', () => {
    for (const v of ['0', 'many']) {
        const f = path.join(prefix, 'conf', `wp_${v}.yml`);
        expectError(`wp_${v}`, `daemon: false\nworker_processes: ${v}\n`,
                    new RegExp(`^pushd: ${esc(f)}:2:19: .*"worker_processes"`));
    }
});

test('a bad duration is rejected at its value', () => {
    const f = path.join(prefix, 'conf', 'dur.yml');
    expectError('dur', 'worker_processes: 1\nworker_shutdown_timeout: soon\n',
                new RegExp(`^pushd: ${esc(f)}:2:26: `
                           + '.*"worker_shutdown_timeout"'));
});

test('the shipped placeholder secrets are refused at their value', () => {
    const tail = ': set your own long random value (openssl rand -hex 32)';
    const room = (secret) => 'worker_processes: 1\nroom:\n  listen:\n'
        + `    - "127.0.0.1:28080"\n  auth_secret: "${secret}"\n`;
    expectError('ph_room', room('change-me-to-a-long-random-secret'),
                '5:16: "auth_secret" is the placeholder shipped in the '
                + `sample configuration${tail}`);
    /* any value that starts so, in any case */
    expectError('ph_case', room('CHANGE-ME-0123456789abcdef'),
                '5:16: "auth_secret" is the placeholder shipped in the '
                + `sample configuration${tail}`);
    expectError('ph_center', 'worker_processes: 1\ncenter:\n  listen:\n'
                + '    - "127.0.0.1:28081"\n'
                + '  api_key: change-me-to-a-long-random-key\n',
                '5:12: "api_key" is the placeholder shipped in the sample '
                + `configuration${tail}`);

    /* elsewhere in a value the words are fine */
    const r = check(conf('ph_inside', room('please-change-me-0123456789')));
    assert.strictEqual(r.status, 0, r.stderr);
});

test('conf/pushd.yaml as shipped is refused until its secrets are set', () => {
    const shipped = path.join(__dirname, '..', '..', 'conf', 'pushd.yaml');
    const text = fs.readFileSync(shipped, 'utf8');
    const at = text.split('\n').findIndex((l) => /^ *auth_secret:/.test(l));
    const col = text.split('\n')[at].indexOf('"') + 1;
    expectError('shipped', text, `${at + 1}:${col}: "auth_secret" is the `
                + 'placeholder shipped in the sample configuration: set your '
                + 'own long random value (openssl rand -hex 32)');
    const fixed = text.replace(/"change-me-[a-z-]*"/g,
                               '"0123456789abcdef0123"');
    const c = L.certPair();
    fs.copyFileSync(c.cert, path.join(prefix, 'conf', 'pushd.crt'));
    fs.copyFileSync(c.key, path.join(prefix, 'conf', 'pushd.key'));
    const r = check(conf('shipped_fixed', fixed));
    assert.strictEqual(r.status, 0, r.stderr);
});

test('a missing file is a clear error', () => {
    const f = path.join(prefix, 'conf', 'does-not-exist.yml');
    const r = check(f);
    assert.strictEqual(r.status, 1, r.stderr);
    assert.ok(r.stderr.includes(f), r.stderr);
    assert.match(r.stderr, /no such file/i);
    assert.ok(lines(r.stderr).includes(
        `pushd: configuration file ${f} test failed`), r.stderr);
});

test('-v prints the version', () => {
    const r = L.runPushd(['-v']);
    assert.strictEqual(r.status, 0);
    assert.ok(lines(r.out).includes('pushd version 0.1.0'), r.out);
});

test.after(() => {
    fs.rmSync(prefix, { recursive: true, force: true });
});

/*
 * docs/directives.md's defaults: {"room.heartbeat": "240s", ...} for the
 * directives whose meaning ends "(default: V)" (V up to a comma outside
 * brackets) or names "`V` (default)".
 */
function documentedDefaults() {
    const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs',
                                          'directives.md'), 'utf8');
    const out = {};
    let section = '';
    for (const line of doc.split('\n')) {
        const h = /^## (?:Top level|`(\w+):`)$/.exec(line);
        if (h) {
            section = h[1] ? `${h[1]}.` : '';
            continue;
        }
        const row = /^\| `(\w+)` \| [^|]+ \| (.*) \|$/.exec(line);
        if (!row) {
            continue;
        }
        let m = /\(default(?: and most)?: (\[[^\]]*\]|"[^"]*"|[^,)]*)/
            .exec(row[2]);
        if (!m) {
            m = /`([^`]+)` \(default\)/.exec(row[2]);
        }
        if (m) {
            out[section + row[1]] = m[1];
        }
    }
    return out;
}

/* a value of either file, as one string: lists of one are that one */
function norm(v) {
    if (Array.isArray(v)) {
        return v.length === 0 ? 'none'
            : v.length === 1 ? v[0] : JSON.stringify(v);
    }
    if (/^\[.*\]$/.test(v)) {
        return norm(JSON.parse(v));
    }
    return /^".*"$/.test(v) ? JSON.parse(v) : v;
}

test('conf/pushd.yaml: a value that is not the default says so', () => {
    const text = fs.readFileSync(path.join(__dirname, '..', '..', 'conf',
                                           'pushd.yaml'), 'utf8');
    const lines = text.split('\n');
    const defaults = documentedDefaults();
    assert.ok(Object.keys(defaults).length > 40, 'defaults parsed');
    let section = '';
    const seen = [];
    for (let i = 0; i < lines.length; i++) {
        const m = /^( {0,2})(\w+):(?: (.*))?$/.exec(lines[i]);
        if (!m) {
            continue;
        }
        if (m[1] === '' && m[3] === undefined) {
            section = `${m[2]}.`;
            continue;
        }
        const name = (m[1] ? section : '') + m[2];
        let value = m[3];
        if (value === undefined) {
            value = [];
            for (let j = i + 1; /^ {4}- /.test(lines[j] || ''); j++) {
                value.push(JSON.parse(lines[j].replace(/^ {4}- /, '')));
            }
        }
        /* the comment above it (shared by the lines of one group) */
        let j = i - 1;
        while (j >= 0 && !/^\s*#/.test(lines[j]) && lines[j].trim()) {
            j--;
        }
        const comment = [];
        for (; j >= 0 && /^\s*#/.test(lines[j]); j--) {
            comment.unshift(lines[j]);
        }
        const said = /Not the default/.test(comment.map((l) =>
            l.replace(/^\s*#\s*/, '')).join(' ').replace(/\s+/g, ' '));
        if (!(name in defaults)) {
            continue;
        }
        seen.push(name);
        const differs = norm(value) !== norm(defaults[name]);
        assert.strictEqual(said, differs, `${name}: ${JSON.stringify(value)}`
                           + ` in conf/pushd.yaml, default `
                           + `${defaults[name]}; its comment `
                           + (said ? 'says' : 'does not say')
                           + ' "Not the default"');
    }
    assert.ok(seen.length > 30, `compared ${seen.join(' ')}`);
});

test('coordinator.ca is read with the configuration: a missing one is an '
     + 'error at start, not a failed callback later', () => {
    const head = 'worker_processes: 1\nroom:\n'
               + '  listen:\n    - "127.0.0.1:28080"\n'
               + `  auth_secret: "${L.AUTH_SECRET}"\n`
               + 'coordinator:\n'
               + '  secret: "coordinator-secret-0123456789"\n'
               + '  apps:\n    - app: chat\n'
               + '      uplink: "https://127.0.0.1:9/up"\n';
    let r = check(conf('ca_missing', `${head}  ca: /nonexistent/ca.pem\n`));
    assert.strictEqual(r.status, 1, r.stderr);
    assert.match(r.stderr, /"ca" cannot be read/);
    assert.match(r.stderr, /nonexistent\/ca\.pem/);
    const empty = path.join(prefix, 'conf', 'empty.pem');
    fs.writeFileSync(empty, '');
    r = check(conf('ca_empty', `${head}  ca: ${empty}\n`));
    assert.strictEqual(r.status, 1, r.stderr);
    assert.match(r.stderr, /"ca" must be a PEM file/);
});

/* a handshake with a bad token: 401, and an [info] "auth failed" line */
async function badToken(d) {
    const r = await W.rawConnect(d.roomPort,
                                 W.connectPath('lv', 'd1', { token: 'x' }));
    assert.strictEqual(r.status, 401);
}

const LEVELS = ['debug', 'info', 'notice', 'warn', 'error', 'crit', 'alert',
                'emerg'];

/* the levels of the lines of an error log */
function levelsIn(text) {
    return lines(text).map((l) => (/^\S+ \S+ \[(\w+)\]/.exec(l) || [])[1]);
}

test('error_log level: lines below it are not written, lines at or above '
     + 'are', { timeout: 60000 }, async () => {
    const room = { auth_secret: W.SECRET };

    /* info: the failed handshake is logged, at info */
    await L.withPushd({ workers: 1, room,
                        top: { error_log: 'logs/error.log info' } },
                      async (d) => {
        await badToken(d);
        assert.match(d.logText(), /\[info\] .*auth failed for uid "lv"/);
    });

    /* notice: not that one, but the start notices */
    await L.withPushd({ workers: 1, room,
                        top: { error_log: 'logs/error.log notice' } },
                      async (d) => {
        await badToken(d);
        const text = d.logText();
        assert.doesNotMatch(text, /auth failed/);
        assert.match(text, /\[notice\] .*start worker process/);
        for (const lv of levelsIn(text)) {
            assert.ok(LEVELS.indexOf(lv) >= LEVELS.indexOf('notice'),
                      `a ${lv} line in a notice log:\n${text}`);
        }
    });

    /* error: no notices either; an alert (a worker killed) is written */
    await L.withPushd({ workers: 1, room,
                        top: { error_log: 'logs/error.log error' } },
                      async (d) => {
        await badToken(d);
        const victim = d.workerPids()[0];
        d.kill(victim, 'SIGKILL');
        await L.waitFor(() => d.logText().includes(
            `${victim} exited on signal 9`), 10000, 'the alert');
        const text = d.logText();
        assert.doesNotMatch(text, /auth failed|start worker process/);
        assert.match(text, /\[alert\] .*exited on signal 9/);
        for (const lv of levelsIn(text)) {
            assert.ok(LEVELS.indexOf(lv) >= LEVELS.indexOf('error'),
                      `a ${lv} line in an error log:\n${text}`);
        }
    });
});

test('lists of mappings: not a list, an empty one, an item that is not a '
     + 'mapping, each at its own place', () => {
    const room = 'worker_processes: 1\nroom:\n'
               + '  listen:\n    - "127.0.0.1:28080"\n'
               + `  auth_secret: "${L.AUTH_SECRET}"\n`;
    const coord = 'coordinator:\n'
                + '  secret: "coordinator-secret-0123456789"\n';
    expectError('apps_scalar', `${room}${coord}  apps: chat\n`,
                '8:9: "apps" must be a list of {app, uplink, types, state}');
    expectError('apps_item', `${room}${coord}  apps:\n    - chat\n`,
                '9:7: "apps" must be a list of {app, uplink, types, state}');
    expectError('nodes_empty', `${room}dispatcher:\n  nodes: []\n`,
                '7:10: "nodes" must be a list of {addr, idc, weight, net}');
});
