'use strict';
/*
 * bench/abuse.js: a normal client's delivery latency while the abuse of
 * t/integration/abuse.test.js runs, beside the same client's latency
 * without it, in one run.
 *
 *   node bench/abuse.js [--workers W] [--duration S] [--rate R]
 *                       [--slow-room N] [--slow-center N] [--pin | --pin-server]
 *                       [--sched-idle]
 *                       [--out FILE]
 *
 * One daemon (W workers, default 2; plain and TLS room listeners, the
 * handshake and request timeouts at their defaults).  A client of uid
 * "good" holds a connection and acks; a kept-alive API connection
 * pushes it one qos 1 message every 1/R s (R default 50), and the
 * latency of each is the time from just before its request is written
 * to the arrival of the msg frame (one process, one clock).  Three
 * phases of S seconds (default 10): without abuse, under abuse, without
 * again.  The abuse runs in a child process (so that its work does not
 * delay the measuring loop) and keeps up, for the whole phase:
 * slowloris connections on the room (N, default 2000) and the center
 * (default 500), each replaced when the server cuts it; connections of
 * random bytes on every port, 16 at a time (about 1000 in 10 s here);
 * a head of 20,000 headers, a 100 KB request line and a 1 GB
 * Content-Length in turn; a bad-frame flood, oversize frames, a ping
 * op in 1-byte fragments and a ping flood, each again when the server
 * closes it or answers; bad tokens; API calls with a wrong key.  The
 * abuse comes from 127.0.0.2-127.0.0.250 where the client allows a
 * source address, so the per-address bound on wrong keys does not
 * refuse the normal pushes from 127.0.0.1.
 *
 * --pin: the abuser runs on the host's last CPU alone, the server (its
 * master and workers) and the measuring client on the others (taskset):
 * on this 2-core host the abuse otherwise takes the CPU the server and
 * the client wait for, which no server design can give back (see
 * results/abuse-ab.txt), while in life it comes from other hosts.  The
 * server still does all the work the abuse asks of it (accepts, parses,
 * cuts), on its own cores.
 * --pin-server: the server alone on its CPUs, the measuring client on the
 * last one beside the abuser (at nice 19), as if both came from other
 * hosts; the baseline is weaker there (each message crosses CPUs).
 * --sched-idle: the abuser under SCHED_IDLE (chrt --idle 0) instead of
 * nice 19: any waking server or client process takes its CPU at once.
 *
 * Reports p50 and p99 per phase, the ratio of the abuse phase to the
 * two phases without (pooled), against the goal of 2x, the pushes lost
 * (answered 200, never delivered) and what the abuse did.  Writes FILE
 * (default bench/results/abuse.json).
 */

const cp = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
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

const GOAL = 2;

/* ------------------------------------------------------------------ */
/* the abuser: a child process, until SIGTERM */

/* a source address other than the measuring client's */
let srcNext = 0;
function src() {
    return `127.0.0.${2 + (srcNext++ % 249)}`;
}

function sock(port, useTls) {
    const o = { port, host: '127.0.0.1', localAddress: src() };
    return useTls ? tls.connect(Object.assign({ rejectUnauthorized: false },
                                              o))
                  : net.connect(o);
}

/* one connection that writes bytes and waits until the server answers
 * and closes, or until timeout ms */
function poke(port, bytes, useTls, timeout = 10000) {
    return new Promise((resolve) => {
        const s = sock(port, useTls);
        let n = 0;
        const done = () => {
            clearTimeout(timer);
            s.destroy();
            resolve(n);
        };
        const timer = setTimeout(done, timeout);
        s.on('data', (c) => { n += c.length; });
        s.on('end', done);
        s.on('close', done);
        s.on('error', done);
        s.once(useTls ? 'secureConnect' : 'connect', () => s.write(bytes));
    });
}

/* keeps n slowloris connections on port: a byte of head a second; one
 * the server cuts is replaced */
function slowloris(port, n, head, count) {
    const live = new Set();
    let stopped = false;
    const open = () => {
        const s = sock(port, false);
        /* not s.off: that would hide the socket's own off(), which
         * net.Socket calls while it connects */
        s.headSent = 5;
        s.on('error', () => {});
        s.on('data', () => {});
        s.on('close', () => {
            live.delete(s);
            if (!stopped) {
                count.cut++;
                open();
            }
        });
        s.once('connect', () => {
            s.write(head.subarray(0, 5));
            count.connected++;
        });
        live.add(s);
    };
    for (let i = 0; i < n; i++) {
        open();
    }
    const timer = setInterval(() => {
        for (const s of live) {
            if (s.headSent < head.length) {
                s.write(head.subarray(s.headSent, s.headSent + 1));
                s.headSent++;
            }
        }
    }, 1000);
    return () => {
        stopped = true;
        clearInterval(timer);
        for (const s of live) {
            s.destroy();
        }
    };
}

/* runs fn again and again, par at a time, until stop() is true */
function loop(par, fn, stop) {
    const one = async () => {
        while (!stop()) {
            try {
                await fn();
            } catch (e) {
                /* the server cutting an abuser is the point; a refused
                 * one tries again a little later, not in a busy loop */
                await new Promise((r) => setTimeout(r, 20));
            }
        }
    };
    return Promise.all(Array.from({ length: par }, one));
}

async function abuser() {
    const room = Number(arg('room'));
    const center = Number(arg('center'));
    const ssl = Number(arg('ssl'));
    const key = arg('key');
    const slowRoomN = Number(arg('slow-room', 2000));
    const slowCenterN = Number(arg('slow-center', 500));
    const junkPar = 16;
    const count = { connected: 0, cut: 0, junk: 0, floods: 0, frames: 0,
                    tokens: 0, wrong_keys: 0 };
    let stopping = false;
    const stop = () => stopping;

    const roomHead = Buffer.from('GET /connect?uid=x&device=y HTTP/1.1\r\n'
                                 + `Host: x\r\nX-A: ${'a'.repeat(200)}`
                                 + '\r\n\r\n');
    const centerHead = Buffer.from('POST /v1/push HTTP/1.1\r\nHost: x\r\n'
                                   + 'Content-Length: 10\r\n\r\n');
    const stopSlow = [slowloris(room, slowRoomN, roomHead, count),
                      slowloris(center, slowCenterN, centerHead, count)];

    const ports = [[room, false], [center, false], [ssl, false],
                   [ssl, true]];
    const floods = [
        [room, Buffer.from('GET /connect HTTP/1.1\r\n'
                           + 'X-Flood: 1\r\n'.repeat(20000) + '\r\n')],
        [center, Buffer.from(`GET /${'a'.repeat(100000)} HTTP/1.1\r\n\r\n`)],
        [center, Buffer.from('POST /v1/push HTTP/1.1\r\nHost: x\r\n'
                             + `Authorization: Bearer ${key}\r\n`
                             + 'Content-Length: 1000000000\r\n\r\n')],
    ];
    const exp = W.future();
    const tok = W.makeToken(W.SECRET, 'vic', 'phone', exp);
    const tokens = [
        W.connectPath('vic', 'phone', { expires: exp,
                                        token: tok.toUpperCase() }),
        W.connectPath('vic', 'phone', { expires: exp,
                                        token: tok.slice(0, 63) }),
        W.connectPath('vic', 'phone', { expires: exp, token: `${tok}0` }),
        W.connectPath('vic', 'phone', { expires: W.future(-10) }),
        W.connectPath('mallory', 'phone', { expires: exp, token: tok }),
    ];
    const ping = JSON.stringify({ op: 'ping' });
    let i = 0;

    const loops = [
        loop(junkPar, async () => {
            const [port, t] = ports[i++ % ports.length];
            await poke(port, crypto.randomBytes(64 + (i % 150) * 7), t, 8000);
            count.junk++;
        }, stop),
        loop(1, async () => {
            const [port, bytes] = floods[count.floods % floods.length];
            await poke(port, bytes, false);
            count.floods++;
        }, stop),
        /* 2000 bad frames: closed at room.max_bad_frames */
        loop(1, async () => {
            const ws = await W.rawOpen(room, 'bad', 'phone',
                                       { localAddress: src() });
            for (let k = 0; k < 2000; k++) {
                ws.sendText('not json');
            }
            await ws.waitEnd(10000);
            ws.destroy();
            count.frames += 2000;
        }, stop),
        /* a frame that claims 2^40 bytes */
        loop(1, async () => {
            const ws = await W.rawOpen(room, 'huge', 'phone',
                                       { localAddress: src() });
            ws.send({ opcode: W.OP.TEXT, payload: 'x', len: 2 ** 40 });
            await ws.waitEnd(10000);
            ws.destroy();
            count.frames++;
        }, stop),
        /* a ping op in 1-byte fragments, and 5000 pings, answered */
        loop(1, async () => {
            const ws = await W.rawOpen(room, 'frag', 'phone',
                                       { localAddress: src() });
            while (!stopping) {
                for (let k = 0; k < ping.length; k++) {
                    ws.send({ opcode: k === 0 ? W.OP.TEXT : W.OP.CONT,
                              fin: k === ping.length - 1, payload: ping[k] });
                }
                await ws.op('pong', 10000);
                for (let k = 0; k < 5000; k++) {
                    ws.send({ opcode: W.OP.PING, payload: 'p' });
                }
                ws.sendJson({ op: 'ping' });
                await ws.op('pong', 10000);
                /* the queue keeps what the test does not read */
                ws.frames.items.length = 0;
                count.frames += ping.length + 5001;
            }
            ws.destroy();
        }, stop),
        loop(2, async () => {
            const r = await W.rawConnect(room,
                                         tokens[count.tokens % tokens.length],
                                         { localAddress: src() });
            if (r.ws) {
                r.ws.destroy();
            }
            count.tokens++;
        }, stop),
        loop(2, async () => {
            await poke(center, Buffer.from(
                'POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer '
                + 'wrong-key-0123456789\r\nContent-Length: 2\r\n\r\n{}'),
                       false, 5000);
            count.wrong_keys++;
        }, stop),
    ];

    const report = () => process.stdout.write(JSON.stringify(count) + '\n');
    const timer = setInterval(report, 500);
    process.on('SIGTERM', async () => {
        stopping = true;
        for (const s of stopSlow) {
            s();
        }
        clearInterval(timer);
        report();
        process.exit(0);
    });
    await Promise.all(loops);
}

/* ------------------------------------------------------------------ */
/* the measure */

function pct(a, q) {
    if (a.length === 0) {
        return null;
    }
    const s = [...a].sort((x, y) => x - y);
    return +s[Math.min(s.length - 1, Math.floor(q * s.length))].toFixed(2);
}

function summary(lat, extra) {
    return Object.assign({ deliveries: lat.length, latencies: lat,
                           p50_ms: pct(lat, 0.5),
                           p99_ms: pct(lat, 0.99),
                           max_ms: pct(lat, 1) }, extra);
}

async function main() {
    const WORKERS = Number(arg('workers', 2));
    const DURATION = Number(arg('duration', 10));
    const RATE = Number(arg('rate', 50));
    /* --same-priority: the abuser competes for the CPU as an equal */
    const NICE = !process.argv.includes('--same-priority');
    /* --sched-idle: the abuser runs under SCHED_IDLE (chrt --idle 0) */
    const IDLE = process.argv.includes('--sched-idle');
    const OUT = arg('out', path.join(ROOT, 'bench/results/abuse.json'));
    const slowRoom = Number(arg('slow-room', 2000));
    const slowCenter = Number(arg('slow-center', 500));
    const ncpu = os.cpus().length;
    /* --pin-server: the server alone on its CPUs, the measuring client
     * beside the (nice) abuser on the last one */
    const PIN_SERVER = process.argv.includes('--pin-server') && ncpu >= 2;
    const PIN = (process.argv.includes('--pin') || PIN_SERVER) && ncpu >= 2;
    const serverCpus = ncpu > 2 ? `0-${ncpu - 2}` : '0';
    const abuserCpu = String(ncpu - 1);
    const pin = (pid, cpus) => cp.execFileSync('taskset',
                                               ['-a', '-p', '-c', cpus,
                                                String(pid)],
                                               { stdio: 'ignore' });

    const d = await L.startPushd({
        workers: WORKERS,
        roomSsl: true,
        top: {
            register: { memory: '16m' },
            saver: { memory: '64m' },
            worker_connections: 10240,
            worker_rlimit_nofile: 12000,
        },
        room: { auth_secret: W.SECRET, max_connections_per_ip: 0 },
    });
    const result = {
        commit: cp.execSync('git rev-parse --short HEAD', { cwd: ROOT })
            .toString().trim(),
        date: new Date().toISOString(), workers: WORKERS,
        duration_s: DURATION, rate: RATE, goal_ratio: GOAL,
        pinned: PIN ? { server_cpus: serverCpus,
                        client_cpu: PIN_SERVER ? abuserCpu : serverCpus,
                        abuser_cpu: abuserCpu } : null,
    };
    if (PIN) {
        for (const pid of [d.masterPid, ...d.workerPids()]) {
            pin(pid, serverCpus);
        }
        pin(process.pid, PIN_SERVER ? abuserCpu : serverCpus);
    }

    let child = null;
    const sent = new Map();             /* data -> time written */
    let lat = [];
    let good = null, api = null;
    try {
        good = await W.rawOpen(d.roomPort, 'good', 'phone');
        good.onFrame = (f) => {
            const now = performance.now();
            if (!f.json || f.json.op !== 'msg') {
                return;
            }
            const t = sent.get(f.json.data);
            if (t !== undefined) {
                lat.push(now - t);
                sent.delete(f.json.data);
            }
            good.sendJson({ op: 'ack', ids: [f.json.id] });
        };
        api = await L.centerConn(d);
        let seq = 0;

        /* one phase of pushes at RATE; its latencies and losses */
        const phase = async () => {
            lat = [];
            sent.clear();
            let refused = 0;
            const end = performance.now() + DURATION * 1000;
            let next = performance.now();
            while (performance.now() < end) {
                const data = `g${seq++}`;
                sent.set(data, performance.now());
                const r = await api.post('/v1/push', { app: 'a',
                    uids: ['good'], data, qos: 1 });
                if (r.status !== 200) {
                    sent.delete(data);
                    refused++;
                }
                next += 1000 / RATE;
                await L.delay(Math.max(0, next - performance.now()));
            }
            /* the last ones in flight */
            await L.waitFor(() => sent.size === 0, 10000, 'the last pushes')
                .catch(() => {});
            return summary(lat, { lost: sent.size, refused });
        };

        process.stderr.write(`abuse bench: ${WORKERS} workers, `
                             + `${DURATION} s per phase, ${RATE} pushes/s\n`);
        result.without = await phase();
        /* open connections without the abuse (a metrics request's own
         * among them) */
        const conns0 = (await L.metrics(d)).get('pushd_connections');

        const abuserCmd = [process.execPath, ...process.execArgv, __filename,
                           '--abuser'];
        if (PIN) {
            abuserCmd.unshift('taskset', '-c', abuserCpu);
        }
        if (IDLE) {
            abuserCmd.unshift('chrt', '--idle', '0');
        }
        child = cp.spawn(abuserCmd[0],
                         [...abuserCmd.slice(1),
                          '--room', String(d.roomPort),
                          '--center', String(d.centerPort),
                          '--ssl', String(d.sslPort), '--key', d.apiKey,
                          '--slow-room', String(slowRoom),
                          '--slow-center', String(slowCenter)],
                         { stdio: ['ignore', 'pipe', 'inherit'] });
        /* the abuse comes from other hosts in life: on this one its own
         * CPU must not be taken from the server and the measuring client
         * (it still gets every cycle they leave; what it did is counted
         * and reported) */
        if (NICE && !IDLE) {
            try {
                os.setPriority(child.pid, 19);
            } catch (e) {
                /* not allowed: as it is */
            }
        }
        let last = {};
        child.stdout.on('data', (c) => {
            const lines = c.toString().trim().split('\n');
            try {
                last = JSON.parse(lines[lines.length - 1]);
            } catch (e) {
                /* a line cut in two: the next one */
            }
        });
        /* the slowloris connections all in before the measure */
        await L.waitFor(() => last.connected >= slowRoom + slowCenter,
                        60000, 'the slowloris connections open');
        const at = Object.assign({}, last);
        result.under_abuse = await phase();
        const after = Object.assign({}, last);
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
        child = null;
        result.abuse = {
            slowloris_room: slowRoom, slowloris_center: slowCenter,
            slowloris_cut_and_replaced: after.cut - at.cut,
            random_byte_connections: after.junk - at.junk,
            head_and_body_floods: after.floods - at.floods,
            frames: after.frames - at.frames,
            bad_tokens: after.tokens - at.tokens,
            wrong_keys: after.wrong_keys - at.wrong_keys,
        };

        /* the abuse's connections gone before the last phase */
        await L.waitFor(async () => (await L.metrics(d))
                        .get('pushd_connections') <= conns0, 60000,
                        'the abuse\'s connections closed');
        result.without_after = await phase();

        /* the two phases without abuse, pooled: the host's drift
         * between them weighs on the baseline, not on the ratio */
        const base = result.without.latencies
            .concat(result.without_after.latencies);
        result.without_pooled = summary(base, {});
        result.ratio_p50 = +(result.under_abuse.p50_ms
                             / result.without_pooled.p50_ms).toFixed(2);
        result.ratio_p99 = +(result.under_abuse.p99_ms
                             / result.without_pooled.p99_ms).toFixed(2);
        for (const k of ['without', 'under_abuse', 'without_after',
                         'without_pooled']) {
            delete result[k].latencies;
        }
        result.within_goal = result.ratio_p50 <= GOAL
                             && result.ratio_p99 <= GOAL;
        result.workers_died = L.signalDeaths(d.logText(), []).length;
    } finally {
        if (child) {
            child.kill('SIGKILL');
        }
        if (good) {
            good.destroy();
        }
        if (api) {
            api.close();
        }
        await d.stop();
    }

    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    fs.writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
    const line = (k) => `${k}: p50 ${result[k].p50_ms} ms, p99 `
        + `${result[k].p99_ms} ms (${result[k].deliveries} deliveries, `
        + `${result[k].lost} lost)`;
    console.log(`abuse bench at ${result.commit}`
                + `${PIN ? ` (server on CPU ${serverCpus}, client on CPU `
                         + `${PIN_SERVER ? abuserCpu : serverCpus}, abuser `
                         + `on CPU ${abuserCpu})` : ''}: `
                + `${line('without')}; `
                + `${line('under_abuse')}; ${line('without_after')}; `
                + `ratio p50 ${result.ratio_p50} p99 ${result.ratio_p99} `
                + `(goal <= ${GOAL}: ${result.within_goal ? 'met'
                                                            : 'NOT met'})`);
    console.log(`abuse in the phase: ${JSON.stringify(result.abuse)}`);
}

if (process.argv.includes('--abuser')) {
    abuser().catch((e) => {
        console.error(e);
        process.exit(1);
    });
} else {
    main().catch((e) => {
        console.error(e);
        process.exit(1);
    });
}
