'use strict';
/*
 * bench/tls_burst.js: an established client's ping round trip on a
 * worker while a burst of new TLS clients handshakes with it.
 *
 *   PUSHD_BIN=objs/pushd node bench/tls_burst.js [--handshakes N]
 *                             [--parallel P] [--out FILE]
 *
 * One daemon of one worker (plain and TLS room listeners, the test
 * certificate: RSA-2048).  A WebSocket client of uid "good" sends a ping
 * op, waits for the pong, waits 2 ms, and again, while a child process
 * makes N (default 3000) TLS handshakes, P (default 64) at a time, each
 * closed once done: a reconnect storm over TLS, or a flood of them.
 * Every handshake costs the worker an RSA signature (about 1.1 ms here,
 * `openssl speed rsa2048`), so what the client waits for is how much of
 * that work a loop turn does before it reads the client's ping
 * (PD_SSL_HANDSHAKE_TURN_NSEC, src/core/pd_event_accept.c).
 *
 * Prints the pings answered, their round trip's p50, p99 and max, the
 * burst's handshakes per second and the worker's
 * pushd_tls_handshakes_deferred_total; writes FILE (default
 * bench/results/tls_burst.json).  Compare builds with PUSHD_BIN, in
 * turns, on a quiet host.
 */

const cp = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const tls = require('node:tls');
const { performance } = require('node:perf_hooks');

const ROOT = path.join(__dirname, '..');
const L = require(path.join(ROOT, 't/integration/lib.js'));
const W = require(path.join(ROOT, 't/integration/ws_client.js'));

function arg(name, def) {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : def;
}

/* the child: N handshakes, P at a time, then exit */
function burst(port, n, par) {
    let started = 0, done = 0;
    const one = () => {
        started++;
        const s = tls.connect({ port, host: '127.0.0.1',
                                rejectUnauthorized: false },
                              () => s.destroy());
        s.on('error', () => {});
        s.on('close', () => {
            done++;
            if (started < n) {
                one();
            } else if (done === n) {
                process.exit(0);
            }
        });
    };
    for (let i = 0; i < Math.min(par, n); i++) {
        one();
    }
}

function pct(sorted, q) {
    return +sorted[Math.min(sorted.length - 1,
                            Math.floor(q * sorted.length))].toFixed(2);
}

async function main() {
    const N = Number(arg('handshakes', 3000));
    const PAR = Number(arg('parallel', 64));
    const OUT = arg('out', path.join(ROOT, 'bench/results/tls_burst.json'));

    const d = await L.startPushd({ workers: 1, roomSsl: true,
                                   room: { auth_secret: W.SECRET } });
    let ws = null;
    const result = {
        commit: cp.execSync('git rev-parse --short HEAD', { cwd: ROOT })
            .toString().trim(),
        binary: process.env.PUSHD_BIN || 'objs/pushd',
        date: new Date().toISOString(), handshakes: N, parallel: PAR,
    };
    try {
        ws = await W.rawOpen(d.roomPort, 'good', 'phone');
        const lat = [];
        let t0 = 0, answered = null;
        ws.onFrame = (f) => {
            if (f.json && f.json.op === 'pong' && answered) {
                lat.push(performance.now() - t0);
                const a = answered;
                answered = null;
                a();
            }
        };
        const start = performance.now();
        const child = cp.spawn(process.execPath,
                               [__filename, '--burst', String(d.sslPort),
                                '--handshakes', String(N),
                                '--parallel', String(PAR)],
                               { stdio: 'inherit' });
        let exited = false;
        child.on('exit', () => {
            exited = true;
        });
        while (!exited) {
            await new Promise((r) => {
                answered = r;
                t0 = performance.now();
                ws.sendJson({ op: 'ping' });
            });
            await L.delay(2);
        }
        const secs = (performance.now() - start) / 1000;
        lat.sort((a, b) => a - b);
        const m = await L.metrics(d);
        Object.assign(result, {
            handshakes_per_s: Math.round(N / secs),
            pings: lat.length, p50_ms: pct(lat, 0.5),
            p99_ms: pct(lat, 0.99), max_ms: pct(lat, 1),
            deferred: m.get('pushd_tls_handshakes_deferred_total') ?? null,
        });
    } finally {
        if (ws) {
            ws.destroy();
        }
        await d.stop();
    }
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    fs.writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
    console.log(`tls burst at ${result.commit} (${result.binary}): `
                + `${N} handshakes, ${PAR} at a time, `
                + `${result.handshakes_per_s}/s; the established client's `
                + `ping: ${result.pings} answered, p50 ${result.p50_ms} ms, `
                + `p99 ${result.p99_ms} ms, max ${result.max_ms} ms; `
                + `handshakes deferred ${result.deferred}`);
}

if (process.argv[2] === '--burst') {
    burst(Number(process.argv[3]), Number(arg('handshakes', 3000)),
          Number(arg('parallel', 64)));
} else {
    main().catch((e) => {
        console.error(e);
        process.exit(1);
    });
}
