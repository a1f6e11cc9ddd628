'use strict';
/*
 * bench/reload.js: a reload (HUP) and a binary upgrade (USR2, then QUIT
 * to the old master) under load, on loopback.
 *
 *   node bench/reload.js [--clients N] [--workers W] [--rate R]
 *                        [--bcast-ms M] [--out FILE]
 *
 * N plain WebSocket clients (default 10000) connect.  While a stream of
 * qos 1 unicast pushes (R a second in all, default 2000, to the clients
 * in turn, each push carrying its send time) and a paced broadcast (one
 * every M ms, default 250) run, the master gets HUP, then, once the old
 * workers are gone, USR2 and QUIT to the old master.  Reports:
 * connections dropped (TCP closed) and told to reconnect, unicast and
 * broadcast messages lost and doubled (per receiver), the delivery
 * latency (send to receipt) p50 / p99 / max over the whole run and
 * during each hand-over (from the signal until the old workers are
 * gone), and the time each hand-over took.
 */

const cp = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const L = require(path.join(ROOT, 't/integration/lib.js'));
const W = require(path.join(ROOT, 't/integration/ws_client.js'));

function arg(name, def) {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : def;
}

const N = Number(arg('clients', 10000));
const WORKERS = Number(arg('workers', 2));
const RATE = Number(arg('rate', 2000));
const BCAST_MS = Number(arg('bcast-ms', 250));
const OUT = arg('out', path.join(ROOT, 'bench/results/reload.json'));

/* runs fn over 0..n-1, at most par at a time */
async function each(n, par, fn) {
    let next = 0;
    const one = async () => {
        while (next < n) {
            const i = next++;
            await fn(i);
        }
    };
    await Promise.all(Array.from({ length: par }, one));
}

function pct(sorted, p) {
    if (sorted.length === 0) {
        return null;
    }
    return sorted[Math.min(sorted.length - 1,
                           Math.floor(sorted.length * p))];
}

function summary(samples) {
    const s = samples.map((x) => x.ms).sort((a, b) => a - b);
    return { n: s.length, p50_ms: pct(s, 0.5), p99_ms: pct(s, 0.99),
             max_ms: s.length ? s[s.length - 1] : null };
}

function readPid(p) {
    try {
        return Number(fs.readFileSync(p, 'utf8'));
    } catch (e) {
        return null;
    }
}

const workersOf = (pid) => L.childrenOf(pid)
    .filter((p) => /^pushd: worker process/.test(p.args)).map((p) => p.pid);

async function main() {
    const d = await L.startPushd({
        workers: WORKERS,
        top: {
            register: { memory: '64m' },
            saver: { memory: '256m' },
            worker_connections: Math.max(2 * N + 1000, 4096),
            worker_shutdown_timeout: '30s',
        },
        room: { auth_secret: W.SECRET, max_connections_per_ip: 0,
                handshake_rate: 100000, output_limit: '4m' },
    });
    const result = {
        commit: cp.execSync('git rev-parse --short HEAD', { cwd: ROOT })
            .toString().trim(),
        date: new Date().toISOString(), clients: N, workers: WORKERS,
        unicast_rate: RATE, broadcast_every_ms: BCAST_MS,
    };
    const clients = new Array(N);
    const samples = [];     /* {t: receipt, ms: latency} */
    const st = { dropped: 0, reconnect: 0 };
    const sent = new Map();  /* uid index -> [seq] accepted */
    let bsent = 0;

    const track = (i, ws) => {
        ws.got = new Map();
        ws.bgot = new Map();
        ws.onFrame = (f) => {
            const m = f.json;
            if (!m) {
                return;
            }
            if (m.op === 'reconnect') {
                st.reconnect++;
            }
            if (m.op !== 'msg') {
                return;
            }
            const now = Date.now();
            if (m.data.u !== undefined) {
                ws.got.set(m.data.u, (ws.got.get(m.data.u) || 0) + 1);
            } else if (m.data.b !== undefined) {
                ws.bgot.set(m.data.b, (ws.bgot.get(m.data.b) || 0) + 1);
            }
            samples.push({ t: now, ms: now - m.data.s });
            if (m.qos === 1) {
                ws.sendJson({ op: 'ack', ids: [m.id] });
            }
        };
        ws.sock.on('close', () => { st.dropped++; });
    };

    let running = true;
    const publishers = [];

    try {
        await each(N, 200, async (i) => {
            clients[i] = await W.rawOpen(d.roomPort, `rl${i}`, 'dev',
                                         { apps: ['a'], timeout: 30000 });
            track(i, clients[i]);
            sent.set(i, []);
        });

        /* the unicast stream: 8 loops, each paced to its share */
        let seq = 0, next = 0;
        for (let k = 0; k < 8; k++) {
            publishers.push((async () => {
                const gap = 8000 / RATE;
                let due = Date.now();
                while (running) {
                    const i = next++ % N, u = seq++;
                    const r = await L.centerPost(d, '/v1/push', {
                        app: 'a', uids: [`rl${i}`], qos: 1,
                        data: { u, s: Date.now() },
                    }).catch((e) => ({ status: 0, body: e.message }));
                    if (r.status === 200) {
                        sent.get(i).push(u);
                    }
                    due += gap;
                    const wait = due - Date.now();
                    if (wait > 0) {
                        await L.delay(wait);
                    }
                }
            })());
        }

        /* the paced broadcast */
        publishers.push((async () => {
            while (running) {
                const b = bsent;
                const r = await L.centerPost(d, '/v1/broadcast', {
                    app: 'a', qos: 0, rate: Math.max(N * 4, 1000),
                    data: { b, s: Date.now() },
                }).catch((e) => ({ status: 0, body: e.message }));
                if (r.status === 200) {
                    bsent++;
                }
                await L.delay(BCAST_MS);
            }
        })());

        await L.delay(2000);

        /* HUP */
        const old = d.workerPids();
        const h0 = Date.now();
        process.kill(d.masterPid, 'SIGHUP');
        await L.waitFor(() => old.every((p) => !L.procAlive(p)), 120000,
                        'the old workers to leave', 50);
        const h1 = Date.now();
        await L.delay(2000);

        /* USR2, QUIT to the old master */
        const oldMaster = d.masterPid;
        const u0 = Date.now();
        process.kill(oldMaster, 'SIGUSR2');
        const fresh = await L.waitFor(() => {
            const p = readPid(d.pidPath);
            return p && p !== oldMaster
                && workersOf(p).length === WORKERS ? p : null;
        }, 60000, 'the new binary', 50);
        const u1 = Date.now();
        process.kill(oldMaster, 'SIGQUIT');
        await L.waitFor(() => !L.procAlive(oldMaster), 120000,
                        'the old master to leave', 50);
        const u2 = Date.now();
        d.masterPid = fresh;
        await L.delay(2000);

        running = false;
        await Promise.all(publishers);

        /* what was accepted arrives, or is counted lost */
        const due = () => {
            let n = 0;
            for (let i = 0; i < N; i++) {
                for (const u of sent.get(i)) {
                    if (!clients[i].got.has(u)) {
                        n++;
                    }
                }
                n += bsent - clients[i].bgot.size;
            }
            return n;
        };
        await L.waitFor(() => due() === 0, 15000, 'the last messages', 200)
            .catch(() => {});

        let lost = 0, twice = 0, blost = 0, btwice = 0, total = 0;
        for (let i = 0; i < N; i++) {
            for (const u of sent.get(i)) {
                const k = clients[i].got.get(u) || 0;
                total++;
                lost += k === 0 ? 1 : 0;
                twice += k > 1 ? 1 : 0;
            }
            for (let b = 0; b < bsent; b++) {
                const k = clients[i].bgot.get(b) || 0;
                blost += k === 0 ? 1 : 0;
                btwice += k > 1 ? 1 : 0;
            }
        }

        const during = (a, b) => summary(samples.filter((x) => x.t >= a
                                                         && x.t <= b));
        Object.assign(result, {
            connections_dropped: st.dropped,
            told_to_reconnect: st.reconnect,
            unicast: { accepted: total, lost, twice },
            broadcast: { sent: bsent, receipts_expected: bsent * N,
                         lost: blost, twice: btwice },
            latency_all: summary(samples),
            hup: { handover_ms: h1 - h0, latency: during(h0, h1) },
            upgrade: { new_binary_ms: u1 - u0, handover_ms: u2 - u1,
                       latency: during(u0, u2) },
        });
    } finally {
        running = false;
        for (const c of clients) {
            if (c) {
                c.destroy();
            }
        }
        await d.stop();
    }

    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    fs.writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
    const r = result;
    console.log(`reload bench at ${r.commit}: ${N} clients, ${WORKERS} `
                + `workers, ${RATE} qos 1 pushes/s, a broadcast every `
                + `${BCAST_MS} ms`);
    console.log(`dropped ${r.connections_dropped}, told to reconnect `
                + `${r.told_to_reconnect}; unicast ${r.unicast.accepted} `
                + `accepted, ${r.unicast.lost} lost, ${r.unicast.twice} `
                + `twice; broadcast receipts ${r.broadcast.receipts_expected}`
                + `, ${r.broadcast.lost} lost, ${r.broadcast.twice} twice`);
    for (const [k, v] of [['all', r.latency_all], ['HUP', r.hup.latency],
                          ['USR2+QUIT', r.upgrade.latency]]) {
        console.log(`latency ${k}: n ${v.n}, p50 ${v.p50_ms} ms, p99 `
                    + `${v.p99_ms} ms, max ${v.max_ms} ms`);
    }
    console.log(`HUP hand-over ${r.hup.handover_ms} ms; new binary up in `
                + `${r.upgrade.new_binary_ms} ms, QUIT hand-over `
                + `${r.upgrade.handover_ms} ms`);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
