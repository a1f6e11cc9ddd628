'use strict';
/*
 * lib.js: helpers shared by the pushd integration tests: free ports, a
 * daemon per test in a fresh temporary prefix, pollers, raw HTTP over TCP
 * or TLS, and process inspection through /proc and ps.  Every daemon
 * started here is killed (SIGKILL to its process group and every pid
 * seen) when the test process exits, even after a failed assertion.
 */

const fs = require('node:fs');
const os = require('node:os');
const net = require('node:net');
const tls = require('node:tls');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = process.env.PUSHD_BIN || path.join(ROOT, 'objs', 'pushd');
const API_KEY = 'test-api-key-0123456789';
const AUTH_SECRET = 'test-auth-secret';

/* ------------------------------------------------------------------ */
/* polling */

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/*
 * Polls fn (sync or async) until it returns a truthy value, which is
 * returned; throws after timeoutMs with the last value or error and the
 * optional description, so a failed wait says what it waited for.
 */
async function waitFor(fn, timeoutMs = 5000, what = 'condition',
    intervalMs = 25)
{
    const end = Date.now() + timeoutMs;
    let last, lastErr;
    for (;;) {
        try {
            last = await fn();
            lastErr = undefined;
            if (last) {
                return last;
            }
        } catch (e) {
            lastErr = e;
        }
        if (Date.now() >= end) {
            const detail = lastErr ? `last error: ${lastErr.message}`
                                   : `last value: ${JSON.stringify(last)}`;
            throw new Error(`timed out after ${timeoutMs} ms waiting for `
                            + `${what} (${detail})`);
        }
        await delay(intervalMs);
    }
}

/* ------------------------------------------------------------------ */
/* ports */

const handedOut = new Set();

function canBind(port) {
    return new Promise((resolve) => {
        const s = net.createServer();
        s.once('error', () => resolve(false));
        /* the wildcard address: free there means free on 127.0.0.1 too */
        s.listen({ port, host: '0.0.0.0', exclusive: true }, () => {
            s.close(() => resolve(true));
        });
    });
}

/*
 * A free TCP port on 127.0.0.1 below the ephemeral range (so the many
 * client connections of a test never collide with it), not handed out
 * before in this process.
 */
async function freePort() {
    for (let i = 0; i < 200; i++) {
        const port = 20000 + Math.floor(Math.random() * 12000);
        if (handedOut.has(port)) {
            continue;
        }
        if (await canBind(port)) {
            handedOut.add(port);
            return port;
        }
    }
    throw new Error('no free port found');
}

/* ------------------------------------------------------------------ */
/* processes */

/* state letter from /proc/<pid>/stat, or null when there is no process */
function procState(pid) {
    let stat;
    try {
        stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch (e) {
        return null;
    }
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
}

/* true while pid exists and is not a zombie */
function procAlive(pid) {
    const st = procState(pid);
    return st !== null && st !== 'Z' && st !== 'X';
}

function procField(pid, field) {
    const r = spawnSync('ps', ['-o', `${field}=`, '-p', String(pid)],
                        { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
}

/* the process title as ps shows it, or null */
function procArgs(pid) {
    return procField(pid, 'args');
}

/* [{pid, args}] of the live children of pid */
function childrenOf(pid) {
    const r = spawnSync('ps', ['-o', 'pid=,stat=,args=', '--ppid',
                               String(pid)], { encoding: 'utf8' });
    const out = [];
    for (const line of (r.stdout || '').split('\n')) {
        const m = /^\s*(\d+)\s+(\S+)\s+(.*)$/.exec(line);
        if (m && !m[2].startsWith('Z')) {
            out.push({ pid: Number(m[1]), args: m[3] });
        }
    }
    return out;
}

/* true when pid is a live process of a pushd binary (any title) */
function isPushd(pid) {
    if (!procAlive(pid)) {
        return false;
    }
    try {
        return /pushd/.test(fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1'))
            || fs.readlinkSync(`/proc/${pid}/exe`) === BIN;
    } catch (e) {
        return false;
    }
}

/* pids of the pushd processes in process group pgid */
function pushdInGroup(pgid) {
    const out = [];
    for (const name of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(name)) {
            continue;
        }
        let stat;
        try {
            stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
        } catch (e) {
            continue;
        }
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(f[2]) === pgid && isPushd(Number(name))) {
            out.push(Number(name));
        }
    }
    return out;
}

function kill(pid, sig) {
    try {
        process.kill(pid, sig);
        return true;
    } catch (e) {
        return false;
    }
}

/* ------------------------------------------------------------------ */
/* running the binary */

/* runs pushd synchronously: {status, signal, stdout, stderr, out} */
function runPushd(args, opts = {}) {
    const r = spawnSync(BIN, args, {
        encoding: 'utf8',
        timeout: opts.timeout || 10000,
        input: '',
        cwd: opts.cwd,
    });
    if (r.error && r.error.code === 'ENOENT') {
        throw new Error(`pushd binary not found at ${BIN} (set PUSHD_BIN)`);
    }
    return {
        status: r.status,
        signal: r.signal,
        stdout: r.stdout || '',
        stderr: r.stderr || '',
        out: (r.stdout || '') + (r.stderr || ''),
        error: r.error,
    };
}

/* ------------------------------------------------------------------ */
/* configuration */

function yamlScalar(v) {
    if (typeof v === 'number' || typeof v === 'boolean') {
        return String(v);
    }
    const s = String(v);
    return /^[A-Za-z0-9_./-]+$/.test(s) ? s : JSON.stringify(s);
}

/* a block-style YAML document from a plain object; null/undefined skip */
function toYaml(obj, indent = '') {
    let out = '';
    for (const [k, v] of Object.entries(obj)) {
        if (v === undefined || v === null) {
            continue;
        }
        if (Array.isArray(v)) {
            out += `${indent}${k}:\n`;
            for (const item of v) {
                out += `${indent}  - ${yamlScalar(item)}\n`;
            }
        } else if (typeof v === 'object') {
            out += `${indent}${k}:\n${toYaml(v, indent + '  ')}`;
        } else {
            out += `${indent}${k}: ${yamlScalar(v)}\n`;
        }
    }
    return out;
}

/*
 * A temporary prefix with logs/ and conf/, readable by nobody; writable
 * by us only: a root master refuses a log directory the workers' user
 * could write.
 */
function makePrefix() {
    const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'pushd-it-'));
    fs.mkdirSync(path.join(prefix, 'logs'));
    fs.mkdirSync(path.join(prefix, 'conf'));
    fs.chmodSync(prefix, 0o755);
    fs.chmodSync(path.join(prefix, 'logs'), 0o755);
    return prefix;
}

let certCache = null;

/*
 * The TLS certificate and key: PUSHD_CERT/PUSHD_KEY when set, else a
 * self-signed pair generated once with openssl into a temp directory.
 */
function certPair() {
    if (process.env.PUSHD_CERT && process.env.PUSHD_KEY) {
        return { cert: process.env.PUSHD_CERT, key: process.env.PUSHD_KEY };
    }
    if (certCache) {
        return certCache;
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushd-cert-'));
    const cert = path.join(dir, 'pushd.crt');
    const key = path.join(dir, 'pushd.key');
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048',
        '-nodes', '-keyout', key, '-out', cert, '-days', '30',
        '-subj', '/CN=localhost'], { encoding: 'utf8' });
    if (r.status !== 0) {
        throw new Error(`openssl req failed: ${r.stderr}`);
    }
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(key, 0o644);
    certCache = { cert, key };
    return certCache;
}

/* ------------------------------------------------------------------ */
/* the daemon */

const live = new Set();

function reapAll() {
    for (const d of live) {
        d.killHard();
    }
}

process.on('exit', reapAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
        reapAll();
        process.exit(130);
    });
}

function expectedWorkers(wp) {
    return wp === 'auto' ? os.availableParallelism() : Number(wp);
}

/*
 * Starts pushd in a fresh prefix on free ports and waits until the
 * master is up (pid file), the expected number of workers run and every
 * plain listener accepts.  opts:
 *   workers      worker_processes (default 2; 'auto' allowed)
 *   daemon       daemon directive (default false: the spawned child is
 *                the master)
 *   top          extra top-level directives (null removes a default)
 *   room, center extra section directives (null removes a default)
 *   roomSsl      also listen with TLS on a second room port (given as
 *                "<port> ssl", so on every address)
 *   roomListen   (roomPort, sslPort) => the room's listen list instead
 *   centerSsl    the center listens with TLS ("127.0.0.1:<port> ssl")
 *   config       a raw YAML string used instead of the generated one
 *   prepare      called with the handle once the prefix and the config
 *                are written, before the daemon starts
 *   wait         false: return right after spawning
 * Returns a handle: {prefix, confPath, masterPid, roomPort, centerPort,
 * sslPort, apiKey, workers(), logText(), stop(signal), ...}.
 */
async function startPushd(opts = {}) {
    const prefix = makePrefix();
    const roomPort = await freePort();
    const centerPort = await freePort();
    const sslPort = opts.roomSsl ? await freePort() : null;
    const wp = opts.workers === undefined ? 2 : opts.workers;
    const daemon = opts.daemon === undefined ? false : opts.daemon;
    const confPath = path.join(prefix, 'conf', 'pushd.yml');

    const d = {
        prefix, confPath, roomPort, centerPort, sslPort,
        apiKey: API_KEY,
        expected: expectedWorkers(wp),
        pidPath: path.join(prefix, 'logs', 'pushd.pid'),
        logPath: path.join(prefix, 'logs', 'error.log'),
        child: null,
        childExit: null,
        masterPid: null,
        seen: new Set(),
        /* {pid, signal} of the deaths a test caused on purpose */
        expectedDeaths: [],
    };

    /*
     * Sends sig to pid, a process of this daemon, as a test that means
     * it: its death by that signal is then no failure of the scan.
     */
    d.kill = function (pid, sig) {
        d.expectedDeaths.push({ pid, signal: os.constants.signals[sig] });
        return kill(pid, sig);
    };

    d.buildConfig = function (over = {}) {
        const o = Object.assign({}, opts, over);
        const w = o.workers === undefined ? 2 : o.workers;
        const listen = [`127.0.0.1:${roomPort}`];
        const room = { listen, auth_secret: AUTH_SECRET };
        if (sslPort) {
            const c = certPair();
            /* the bare "port ssl" form: all addresses */
            listen.push(`${sslPort} ssl`);
            room.ssl_certificate = c.cert;
            room.ssl_certificate_key = c.key;
        }
        if (o.roomListen) {
            room.listen = o.roomListen(roomPort, sslPort);
        }
        const center = {
            listen: [`127.0.0.1:${centerPort}${o.centerSsl ? ' ssl' : ''}`],
            api_key: API_KEY,
        };
        return toYaml(Object.assign({
            worker_processes: w,
            daemon,
            pid: 'logs/pushd.pid',
            error_log: 'logs/error.log info',
            worker_shutdown_timeout: '1s',
        }, o.top || {}, {
            room: Object.assign(room, o.room || {}),
            center: Object.assign(center, o.center || {}),
        }));
    };

    /* rewrites the config: a raw string, or overrides of the options */
    d.writeConfig = function (conf) {
        const text = typeof conf === 'string' ? conf : d.buildConfig(conf);
        fs.writeFileSync(confPath, text);
        return text;
    };

    d.args = (...more) => ['-p', prefix, '-c', confPath, ...more];
    d.run = (...more) => runPushd(d.args(...more));
    d.path = (rel) => path.join(prefix, rel);

    d.readPid = function () {
        try {
            const n = parseInt(fs.readFileSync(d.pidPath, 'utf8'), 10);
            return Number.isFinite(n) ? n : null;
        } catch (e) {
            return null;
        }
    };

    /* [{pid, args}] of the master's live worker processes */
    d.workers = function () {
        const w = childrenOf(d.masterPid)
            .filter((p) => /^pushd: worker process/.test(p.args));
        for (const p of w) {
            d.seen.add(p.pid);
        }
        return w;
    };
    d.workerPids = () => d.workers().map((p) => p.pid).sort((a, b) => a - b);

    d.logText = function (rel) {
        try {
            return fs.readFileSync(rel ? d.path(rel) : d.logPath, 'utf8');
        } catch (e) {
            return '';
        }
    };
    d.stderrText = () => {
        try {
            return fs.readFileSync(d.path('stderr.txt'), 'utf8');
        } catch (e) {
            return '';
        }
    };

    /* every pid of this daemon we know of, live or not */
    d.allPids = function () {
        if (d.masterPid && procAlive(d.masterPid)) {
            d.workers();
        }
        const s = new Set(d.seen);
        if (d.masterPid) {
            s.add(d.masterPid);
        }
        if (d.child && d.child.pid && d.childExit === null) {
            s.add(d.child.pid);
        }
        return [...s];
    };

    /*
     * SIGKILLs what is left: every pid seen and the pushd processes of
     * the spawned child's and the master's process groups, each only
     * while it still is a pushd process (pids get reused).
     */
    d.killHard = function () {
        const pids = new Set(d.allPids());
        for (const g of [d.child && d.child.pid, d.masterPid]) {
            if (g) {
                pushdInGroup(g).forEach((p) => pids.add(p));
            }
        }
        for (const pid of pids) {
            if (isPushd(pid)) {
                /* on purpose: the master may log a worker's death by it
                 * before its own */
                d.expectedDeaths.push({ pid, signal: 9 });
                kill(pid, 'SIGKILL');
            }
        }
        live.delete(d);
    };

    /*
     * Sends signal (default TERM) to the master and waits until the
     * master and every worker are gone; SIGKILLs whatever is left after
     * timeoutMs.  Returns true when it ended by itself.
     */
    d.stop = async function (signal = 'SIGTERM', timeoutMs = 10000) {
        const pids = d.allPids();
        /* not a pid the master's death freed for someone else */
        if (d.masterPid && isPushd(d.masterPid)) {
            kill(d.masterPid, signal);
        }
        let clean = true;
        try {
            await waitFor(() => pids.every((p) => !procAlive(p)), timeoutMs,
                          'all pushd processes to exit');
        } catch (e) {
            clean = false;
        }
        d.killHard();
        return clean;
    };

    d.ready = (timeoutMs) => ready(d, timeoutMs);
    d.writeConfig(opts.config !== undefined ? opts.config : {});
    if (opts.prepare) {
        opts.prepare(d);
    }
    live.add(d);

    const out = fs.openSync(d.path('stdout.txt'), 'w');
    const err = fs.openSync(d.path('stderr.txt'), 'w');
    try {
        /* opts.fds: descriptors the daemon gets as 3, 4, ...; opts.env:
         * variables added to ours (what a binary upgrade hands down) */
        d.child = spawn(BIN, d.args(), {
            stdio: ['ignore', out, err, ...(opts.fds || [])],
            env: Object.assign({}, process.env, opts.env || {}),
            detached: true,
        });
    } finally {
        fs.closeSync(out);
        fs.closeSync(err);
    }
    d.child.on('error', (e) => { d.childExit = { error: e }; });
    d.child.on('exit', (code, signal) => { d.childExit = { code, signal }; });
    d.child.unref();

    if (opts.wait === false) {
        return d;
    }

    try {
        await d.ready();
    } catch (e) {
        d.killHard();
        e.message += `\n--- stderr ---\n${d.stderrText()}`
                   + `\n--- error log ---\n${d.logText()}`;
        throw e;
    }
    return d;
}

/* waits for the master, its workers and the plain listeners */
async function ready(d, timeoutMs = 10000) {
    d.masterPid = await waitFor(() => {
        if (d.childExit && d.childExit.error) {
            throw new Error(`spawn failed: ${d.childExit.error.message}`);
        }
        const pid = d.readPid();
        return pid && procAlive(pid) ? pid : null;
    }, timeoutMs, `the pid file ${d.pidPath} with a live pid`);
    await waitFor(() => d.workers().length === d.expected, timeoutMs,
                  `${d.expected} worker processes`);
    for (const port of [d.roomPort, d.centerPort]) {
        await waitFor(() => tcpConnects(port), timeoutMs,
                      `port ${port} to accept`);
    }
}

const SANITIZER = /AddressSanitizer|LeakSanitizer|runtime error:/;
const SIGNALLED = /\b(\d+) exited on signal (\d+)/;

function tail(text, n = 20) {
    return text.split('\n').slice(-n).join('\n');
}

/*
 * The lines of an error log where the master saw a process of its die
 * of a signal ("worker process 123 exited on signal 11"), except the
 * deaths in expected ([{pid, signal}], the ones a test caused).
 */
function signalDeaths(text, expected = []) {
    const out = [];
    for (const line of text.split('\n')) {
        const m = SIGNALLED.exec(line);
        if (m && !expected.some((e) => e.pid === Number(m[1])
                                       && e.signal === Number(m[2]))) {
            out.push(line);
        }
    }
    return out;
}

/*
 * What the daemon's logs say went wrong, or null: a sanitizer report
 * in its stderr or error log, a process dead of a signal no test sent.
 */
function scanLogs(d) {
    const report = d.stderrText() + d.logText();
    if (SANITIZER.test(report)) {
        const at = Math.max(0, report.search(SANITIZER) - 200);
        return `sanitizer report (prefix kept: ${d.prefix}):\n`
               + report.slice(at, at + 3000);
    }
    const deaths = signalDeaths(d.logText(), d.expectedDeaths);
    if (deaths.length) {
        return `a pushd process died of a signal (prefix kept: `
               + `${d.prefix}):\n${deaths.join('\n')}`;
    }
    return null;
}

/*
 * Stops d (SIGTERM, then SIGKILL for what is left after 10 s) and
 * throws when its logs hold a sanitizer report or an unexpected death
 * by a signal, or when it did not stop by itself.  Every daemon a test
 * starts ends here, through withPushd or directly.
 */
async function stopChecked(d) {
    const clean = await d.stop();
    const bad = scanLogs(d);
    if (bad) {
        throw new Error(bad);
    }
    if (!clean) {
        throw new Error(`pushd did not exit on SIGTERM within 10 s; `
                        + `killed (prefix kept: ${d.prefix})`);
    }
}

/*
 * stopChecked for several daemons: all are stopped, then the first
 * failure, with the others', is thrown.
 */
async function stopAllChecked(list) {
    const bad = [];
    for (const d of list) {
        try {
            await stopChecked(d);
        } catch (e) {
            bad.push(e.message);
        }
    }
    if (bad.length) {
        throw new Error(bad.join('\n'));
    }
}

/*
 * Runs fn(d) with a started daemon and always stops it afterwards.  A
 * sanitizer report in the daemon's stderr or error log, or a process of
 * it dead of a signal the test did not send (d.kill), fails the test
 * too.  The prefix is removed after a pass and kept after a failure,
 * whose message then ends with the prefix and the tails of both logs.
 */
async function withPushd(opts, fn) {
    const d = await startPushd(opts);
    let result;
    try {
        result = await fn(d);
    } catch (e) {
        await d.stop();
        const bad = scanLogs(d);
        if (e instanceof Error) {
            e.message += `\n(prefix kept: ${d.prefix})`
                       + (bad ? `\n--- also ---\n${bad}` : '')
                       + `\n--- stderr ---\n${tail(d.stderrText())}`
                       + `\n--- error log ---\n${tail(d.logText())}`;
        }
        throw e;
    }
    await stopChecked(d);
    fs.rmSync(d.prefix, { recursive: true, force: true });
    return result;
}

/* ------------------------------------------------------------------ */
/* network */

function tcpConnects(port, host = '127.0.0.1') {
    return new Promise((resolve) => {
        const s = net.connect({ port, host });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
    });
}

/*
 * Parses the complete HTTP responses at the start of text (bodies by
 * Content-Length; none is taken as empty).  Returns [{status, reason,
 * headers, body, raw}] and stops at the first incomplete one.
 */
function parseResponses(text) {
    const res = [];
    let rest = text;
    for (;;) {
        const he = rest.indexOf('\r\n\r\n');
        if (he < 0) {
            break;
        }
        const head = rest.slice(0, he).split('\r\n');
        const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(head[0]);
        if (!m) {
            break;
        }
        const headers = {};
        for (const l of head.slice(1)) {
            const i = l.indexOf(':');
            if (i > 0) {
                headers[l.slice(0, i).trim().toLowerCase()] =
                    l.slice(i + 1).trim();
            }
        }
        const len = Number(headers['content-length'] || 0);
        const bodyStart = he + 4;
        if (Buffer.byteLength(rest.slice(bodyStart)) < len) {
            break;
        }
        const body = Buffer.from(rest.slice(bodyStart))
            .subarray(0, len).toString();
        res.push({
            version: m[1], status: Number(m[2]), reason: m[3] || '',
            headers, body, raw: rest.slice(0, bodyStart) + body,
        });
        rest = rest.slice(bodyStart + body.length);
    }
    return res;
}

/*
 * Sends bytes (a string, a Buffer or an array of them, written in
 * order) to port and collects what comes back.  Resolves when the
 * server closes, when opts.responses complete responses have arrived
 * (then the socket is closed by us), or after opts.timeout ms.
 * Returns {text, closed, error, responses, timedOut}: closed is true
 * when the server ended or reset the connection.
 */
function httpRaw(port, bytes, opts = {}) {
    const timeout = opts.timeout || 5000;
    return new Promise((resolve) => {
        const chunks = [];
        let closed = false, error = null, done = false, timer;
        const sock = opts.tls
            ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false,
                            servername: 'localhost' })
            : net.connect({ port, host: '127.0.0.1' });
        const finish = (timedOut) => {
            if (done) {
                return;
            }
            done = true;
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('latin1');
            sock.destroy();
            resolve({ text, closed, error, timedOut: !!timedOut,
                      responses: parseResponses(text) });
        };
        timer = setTimeout(() => finish(true), timeout);
        sock.on('data', (c) => {
            chunks.push(c);
            if (opts.responses) {
                const text = Buffer.concat(chunks).toString('latin1');
                if (parseResponses(text).length >= opts.responses) {
                    finish(false);
                }
            }
        });
        sock.on('end', () => { closed = true; finish(false); });
        sock.on('error', (e) => {
            error = e.code || e.message;
            closed = true;
            finish(false);
        });
        sock.once(opts.tls ? 'secureConnect' : 'connect', () => {
            const list = Array.isArray(bytes) ? bytes : [bytes];
            for (const b of list) {
                sock.write(b);
            }
        });
    });
}

/*
 * One request on a fresh connection; resolves to the parsed response
 * plus {closed, error}.  headers is an object; a string body gets a
 * Content-Length.
 */
async function request(port, method, target, headers = {}, body, opts = {}) {
    let head = `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
    const h = Object.assign({}, headers);
    if (body !== undefined && h['Content-Length'] === undefined) {
        h['Content-Length'] = Buffer.byteLength(body);
    }
    for (const [k, v] of Object.entries(h)) {
        head += `${k}: ${v}\r\n`;
    }
    head += '\r\n';
    const r = await httpRaw(port, body === undefined ? head : [head, body],
                            Object.assign({ responses: 1 }, opts));
    const res = r.responses[0];
    if (!res) {
        throw new Error(`no complete response from port ${port}: `
                        + `${JSON.stringify(r.text.slice(0, 300))} `
                        + `(closed=${r.closed}, error=${r.error})`);
    }
    return Object.assign({ closed: r.closed, error: r.error }, res);
}

/*
 * One kept-alive HTTP connection (TLS with opts.tls): requests go one
 * after another on the same socket, so the same worker serves them in
 * order.  {request(method, target, headers, body) -> response (as
 * parseResponses, json parsed when it can be), sent(n) -> the raw text
 * of n requests written at once (pipelined) -> their n responses,
 * closed, close()}.
 */
async function keepAlive(port, opts = {}) {
    const sock = opts.tls
        ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false,
                        servername: 'localhost' })
        : net.connect({ port, host: '127.0.0.1' });
    await new Promise((resolve, reject) => {
        sock.once(opts.tls ? 'secureConnect' : 'connect', resolve);
        sock.once('error', reject);
    });
    let buf = Buffer.alloc(0);
    let waiter = null;
    const k = { closed: false, sock };
    const check = () => {
        if (!waiter) {
            return;
        }
        const res = parseResponses(buf.toString('latin1'));
        if (res.length >= waiter.n) {
            const used = res.slice(0, waiter.n)
                .reduce((n, r) => n + Buffer.byteLength(r.raw, 'latin1'), 0);
            buf = buf.subarray(used);
            const w = waiter;
            waiter = null;
            clearTimeout(w.timer);
            for (const r of res) {
                try {
                    r.json = JSON.parse(r.body);
                } catch (e) {
                    r.json = null;
                }
            }
            w.resolve(res.slice(0, w.n));
        } else if (k.closed) {
            const w = waiter;
            waiter = null;
            clearTimeout(w.timer);
            w.reject(new Error(`connection closed after ${res.length} of `
                               + `${w.n} responses`));
        }
    };
    sock.on('data', (c) => { buf = Buffer.concat([buf, c]); check(); });
    sock.on('close', () => { k.closed = true; check(); });
    sock.on('error', () => {});
    k.sendRaw = (text, n, timeoutMs = 10000) => new Promise((resolve,
                                                             reject) => {
        waiter = { n, resolve, reject, timer: setTimeout(() => {
            waiter = null;
            reject(new Error(`no ${n} responses within ${timeoutMs} ms`));
        }, timeoutMs) };
        sock.write(text);
        check();
    });
    k.format = (method, target, headers = {}, body) => {
        const h = Object.assign({ Host: '127.0.0.1' }, headers);
        if (body !== undefined) {
            h['Content-Length'] = Buffer.byteLength(body);
        }
        let head = `${method} ${target} HTTP/1.1\r\n`;
        for (const [name, v] of Object.entries(h)) {
            head += `${name}: ${v}\r\n`;
        }
        return head + '\r\n' + (body === undefined ? '' : body);
    };
    k.request = async (method, target, headers, body) =>
        (await k.sendRaw(k.format(method, target, headers, body), 1))[0];
    k.close = () => sock.destroy();
    return k;
}

/* a kept-alive connection to the center that sends the API key */
async function centerConn(d, opts = {}) {
    const k = await keepAlive(d.centerPort, opts);
    const auth = { Authorization: `Bearer ${d.apiKey}` };
    k.get = (target) => k.request('GET', target, auth);
    k.post = (target, body) => k.request('POST', target,
        Object.assign({ 'Content-Type': 'application/json' }, auth),
        typeof body === 'string' ? body : JSON.stringify(body));
    return k;
}

/*
 * One kept-alive center connection (centerConn) held by each worker of
 * d, found by who accepted it (ss); cached on d while they stay open.
 * What one worker sends down a channel or a connection arrives in
 * order, so a request through each of these is a barrier behind
 * everything the workers were asked to do before it.
 */
async function centerPerWorker(d) {
    if (d.perWorker && d.perWorker.every((k) => !k.closed)) {
        return d.perWorker;
    }
    for (const k of d.perWorker || []) {
        k.close();
    }
    const pids = d.workerPids();
    const byPid = new Map();
    for (let i = 0; i < 200 && byPid.size < pids.length; i++) {
        const k = await centerConn(d);
        const owner = await waitFor(() => connOwner(d.centerPort,
                                                    k.sock.localPort),
                                    5000, 'the worker that accepted');
        if (pids.includes(owner) && !byPid.has(owner)) {
            byPid.set(owner, k);
        } else {
            k.close();
        }
    }
    if (byPid.size !== pids.length) {
        throw new Error(`no center connection to each of ${pids.length} `
                        + 'workers after 200 tries');
    }
    d.perWorker = [...byPid.values()];
    return d.perWorker;
}

/* a GET to the center with the API key; body parsed as JSON */
async function centerGet(d, target, opts = {}) {
    const res = await request(d.centerPort, 'GET', target,
        { Authorization: `Bearer ${d.apiKey}` }, undefined, opts);
    res.json = JSON.parse(res.body);
    return res;
}

/*
 * A POST to the center with the API key (auth false: without it); body
 * an object (sent as JSON) or a raw string.  r.json is the parsed body
 * or null.
 */
async function centerPost(d, target, body, opts = {}) {
    const h = { 'Content-Type': 'application/json' };
    if (opts.auth !== false) {
        h.Authorization = `Bearer ${opts.key || d.apiKey}`;
    }
    /* a string or a Buffer goes as is (bytes that are not UTF-8 too) */
    const text = typeof body === 'string' || Buffer.isBuffer(body) ? body
        : JSON.stringify(body);
    const res = await request(d.centerPort, 'POST', target, h, text, opts);
    try {
        res.json = JSON.parse(res.body);
    } catch (e) {
        res.json = null;
    }
    return res;
}

/*
 * GET /metrics parsed: {text, get(name)}; get sums the samples of name
 * over all label sets (undefined when there is none).
 */
async function metrics(d, opts = {}) {
    const r = await request(d.centerPort, 'GET', '/metrics',
                            { Authorization: `Bearer ${d.apiKey}` },
                            undefined, opts);
    if (r.status !== 200) {
        throw new Error(`GET /metrics: ${r.status} ${r.body.slice(0, 200)}`);
    }
    const samples = [];
    for (const line of r.body.split('\n')) {
        const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)/
            .exec(line);
        if (m) {
            samples.push({ name: m[1], labels: m[2] || '',
                           value: Number(m[3]) });
        }
    }
    return {
        text: r.body,
        samples,
        get(name) {
            const s = samples.filter((x) => x.name === name);
            return s.length ? s.reduce((n, x) => n + x.value, 0) : undefined;
        },
    };
}

/* the pid of the process holding the established server side of the
 * connection from clientPort to serverPort (ss), or null */
function connOwner(serverPort, clientPort) {
    const r = spawnSync('ss', ['-tnpH', 'state', 'established',
        `( sport = :${serverPort} and dport = :${clientPort} )`],
        { encoding: 'utf8' });
    const m = /pid=(\d+)/.exec(r.stdout || '');
    return m ? Number(m[1]) : null;
}

/* curl, synchronously: {status, code (HTTP), body, stderr} */
function curl(args) {
    const r = spawnSync('curl', ['-sS', '-o', '-', '-w', '\n%{http_code}',
                                 '--max-time', '10', ...args],
                        { encoding: 'utf8', timeout: 15000 });
    const out = r.stdout || '';
    const i = out.lastIndexOf('\n');
    return { status: r.status, code: Number(out.slice(i + 1)),
             body: out.slice(0, i), stderr: r.stderr || '' };
}

module.exports = {
    BIN, API_KEY, AUTH_SECRET,
    delay, waitFor, freePort, procAlive, procState, procArgs, procField,
    childrenOf, kill, runPushd, toYaml, makePrefix, certPair, startPushd,
    ready, withPushd, stopChecked, stopAllChecked, scanLogs, signalDeaths,
    tcpConnects,
    parseResponses, httpRaw, request, centerGet, keepAlive, centerConn,
    centerPerWorker,
    connOwner, curl, centerPost, metrics,
};
