'use strict';
/*
 * bench/coordinator.js: the coordinator under load, on loopback.
 *
 *   node bench/coordinator.js [--clients N] [--duration S] [--storm N]
 *                             [--workers W] [--out FILE]
 *
 * 1. Uplink: N clients (default 500) each send an "up" frame, wait for
 *    its upack and send the next, for S seconds; pushd POSTs each one,
 *    signed, to a local receiver (a Node http server in its own
 *    process) that answers {}.  Reports uplinks per second, the round
 *    trip from the client's send to its upack (p50, p99, p99.9, max),
 *    and pushd's CPU (user + system of the master and its workers, from
 *    /proc) per uplink.  The clients and the receiver run on the same
 *    cores: the rate is the three together's; CPU per uplink is pushd's
 *    own.
 * 2. State storm: M clients (default 10000) connect at once, all close,
 *    and all connect again: 3 x M online/offline events, batched to the
 *    receiver, which checks each (sid, state) arrives exactly once.
 *    Reports the events per second from the storm's start to the last
 *    event received, lost and duplicate events, and pushd's CPU per
 *    event.
 *
 * Prints a small table and writes JSON to --out (default
 * bench/results/coordinator.json), with the commit it ran on.
 */

const cp = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');

/* ------------------------------------------------------------------ */
/* the receiver, in its own process */

if (process.argv[2] === '--receiver') {
    let ups = 0;
    const seen = new Set();
    let events = 0;
    let dups = 0;
    let last = 0;
    const server = http.createServer({ keepAliveTimeout: 60000 },
                                     (req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            if (req.url === '/up') {
                ups++;
            } else if (req.url === '/state') {
                const j = JSON.parse(Buffer.concat(chunks).toString());
                for (const e of j.events) {
                    const k = `${e.sid}/${e.state}`;
                    if (seen.has(k)) {
                        dups++;
                    } else {
                        seen.add(k);
                    }
                    events++;
                }
                last = Date.now();
            } else if (req.url === '/count') {
                res.end(JSON.stringify({ ups, events, unique: seen.size,
                                         dups, last }));
                return;
            }
            res.writeHead(200, { 'Content-Type': 'application/json' });
            res.end('{}');
        });
    });
    server.listen(0, '127.0.0.1', () => {
        process.send({ port: server.address().port });
    });
    process.on('disconnect', () => process.exit(0));
    return;
}

const L = require(path.join(ROOT, 't/integration/lib.js'));
const W = require(path.join(ROOT, 't/integration/ws_client.js'));

function arg(name, def) {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : def;
}

const CLIENTS = Number(arg('clients', 500));
const DURATION = Number(arg('duration', 5));
const STORM = Number(arg('storm', 10000));
const WORKERS = Number(arg('workers', 2));
const OUT = arg('out', path.join(ROOT, 'bench/results/coordinator.json'));

/* user + system ticks of pid and its children's processes (the workers) */
function cpuTicks(pids) {
    let t = 0;
    for (const pid of pids) {
        try {
            const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
                .split(') ')[1].split(' ');
            t += Number(f[11]) + Number(f[12]);
        } catch (e) {
            /* gone */
        }
    }
    return t;
}
const HZ = 100;

function pct(sorted, p) {
    if (sorted.length === 0) {
        return NaN;
    }
    return sorted[Math.min(sorted.length - 1,
                           Math.floor(sorted.length * p))];
}

async function count(port) {
    const r = await L.request(port, 'GET', '/count');
    return JSON.parse(r.body);
}

/* connects n clients, at most `par` at a time */
async function connectMany(d, n, prefix, par = 200) {
    const out = new Array(n);
    let next = 0;
    const one = async () => {
        while (next < n) {
            const i = next++;
            out[i] = await W.connect(d.roomPort, `${prefix}${i}`, 'dev',
                                     { apps: ['chat'], timeout: 30000 });
        }
    };
    await Promise.all(Array.from({ length: par }, one));
    return out;
}

async function main() {
    const rxProc = cp.fork(__filename, ['--receiver'],
                           { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const rxPort = await new Promise((r) => rxProc.once('message',
                                                       (m) => r(m.port)));
    const url = (p) => `http://127.0.0.1:${rxPort}${p}`;
    const route = { app: 'chat', uplink: url('/up'), state: url('/state') };
    const conf = {
        workers: WORKERS,
        top: {
            register: { memory: '64m' },
            coordinator: {
                secret: 'bench-coordinator-secret-0123456789',
                timeout: '5s', up_rate: 65535, max_pending: 100000,
                connections: 16, state_batch: 500, state_flush: '20ms',
                /* lib.js's toYaml writes no list of mappings: the route
                 * goes as a flow mapping in a key a comment swallows */
                apps: { [`- ${JSON.stringify(route)} #`]: 'route' },
            },
        },
        /* every client comes from 127.0.0.1, all at once */
        room: { auth_secret: W.SECRET, max_connections_per_ip: 0,
                handshake_rate: 100000 },
    };

    const d = await L.startPushd(conf);
    const result = {
        commit: cp.execSync('git rev-parse --short HEAD', { cwd: ROOT })
            .toString().trim(),
        date: new Date().toISOString(),
        workers: WORKERS,
    };
    try {
        /* 1. uplink */
        const clients = await connectMany(d, CLIENTS, 'up');
        const rtts = [];
        let stop = false;
        let id = 0;
        const loop = async (c) => {
            while (!stop) {
                const my = `u${++id}`;
                const t0 = process.hrtime.bigint();
                c.send({ op: 'up', id: my, app: 'chat', type: 't',
                         data: { n: id } });
                const m = await c.next((x) => x && x.id === my
                                       && x.op !== 'reply', 10000,
                                       'an upack');
                if (m.op !== 'upack') {
                    throw new Error(`up answered ${JSON.stringify(m)}`);
                }
                rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
            }
        };
        const pids = () => [d.masterPid, ...d.workerPids()];
        const cpu0 = cpuTicks(pids());
        const t0 = Date.now();
        const loops = clients.map(loop);
        await new Promise((r) => setTimeout(r, DURATION * 1000));
        stop = true;
        await Promise.all(loops);
        const secs = (Date.now() - t0) / 1000;
        const cpu = (cpuTicks(pids()) - cpu0) / HZ;
        rtts.sort((a, b) => a - b);
        result.uplink = {
            clients: CLIENTS, seconds: +secs.toFixed(2), uplinks: rtts.length,
            per_second: Math.round(rtts.length / secs),
            p50_ms: +pct(rtts, 0.5).toFixed(2),
            p99_ms: +pct(rtts, 0.99).toFixed(2),
            p999_ms: +pct(rtts, 0.999).toFixed(2),
            max_ms: +rtts[rtts.length - 1].toFixed(2),
            pushd_cpu_us_per_uplink: +(cpu * 1e6 / rtts.length).toFixed(1),
            received: (await count(rxPort)).ups,
        };
        for (const c of clients) {
            c.close();
        }
        await Promise.all(clients.map((c) => c.closed));
        await L.waitFor(async () => (await count(rxPort)).events
                        >= 2 * CLIENTS, 30000, 'the uplink clients\' events');
        const base = await count(rxPort);

        /* 2. the state storm: connect all, close all, connect all */
        const s0 = Date.now();
        const scpu0 = cpuTicks(pids());
        let storm = await connectMany(d, STORM, 'st');
        for (const c of storm) {
            c.close();
        }
        await Promise.all(storm.map((c) => c.closed));
        storm = await connectMany(d, STORM, 'st');
        const want = base.events + 3 * STORM;
        await L.waitFor(async () => (await count(rxPort)).events >= want,
                        120000, `${3 * STORM} state events`);
        const got = await count(rxPort);
        const ssecs = (got.last - s0) / 1000;
        const scpu = (cpuTicks(pids()) - scpu0) / HZ;
        const m = await L.metrics(d);
        result.storm = {
            clients: STORM, events: got.events - base.events,
            expected: 3 * STORM, duplicates: got.dups - base.dups,
            lost: want - got.unique,
            dropped: m.get('pushd_coordinator_dropped_events_total'),
            seconds: +ssecs.toFixed(2),
            events_per_second: Math.round((got.events - base.events) / ssecs),
            pushd_cpu_us_per_event: +(scpu * 1e6 / (3 * STORM)).toFixed(1),
            note: 'CPU includes the handshakes of the 2 x clients sessions',
        };
        for (const c of storm) {
            c.close();
        }
        await Promise.all(storm.map((c) => c.closed));
    } finally {
        await d.stop();
        rxProc.kill();
    }

    fs.writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
    const u = result.uplink;
    const s = result.storm;
    console.log(`coordinator bench at ${result.commit}, ${WORKERS} workers`);
    console.log(`uplink: ${u.clients} clients, ${u.per_second} uplinks/s, `
                + `p50 ${u.p50_ms} ms, p99 ${u.p99_ms} ms, `
                + `p99.9 ${u.p999_ms} ms, max ${u.max_ms} ms, `
                + `pushd ${u.pushd_cpu_us_per_uplink} us CPU per uplink`);
    console.log(`state storm: ${s.clients} clients x 3 events: `
                + `${s.events} received (${s.lost} lost, ${s.duplicates} `
                + `twice, ${s.dropped} dropped), ${s.events_per_second} `
                + `events/s, pushd ${s.pushd_cpu_us_per_event} us CPU `
                + 'per event (handshakes included)');
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
