'use strict';
/*
 * bench/resume.js: a reconnect storm with and without resume, on
 * loopback.
 *
 *   node bench/resume.js [--clients N] [--workers W] [--out FILE]
 *
 * Twice, each on a fresh server, N clients (default 10000) connect, then:
 *   without resume: every socket drops (no close frame), each uid gets
 *     one qos 1 and one qos 0 message, and all reconnect without sid;
 *   with resume: the same, reconnecting with the sid of their welcome.
 * Reports per phase: sessions per second (reconnects done / time to the
 * last welcome), the time until every client got every message it can
 * get (qos 1 always; qos 0 only with a resume, by design), messages
 * missing or doubled per client, pushd's CPU (user + system, master and
 * workers) per session, and the workers' PSS (/proc smaps_rollup) with
 * the N sessions lingering against before the first client, per session
 * (the register zone is preallocated: its entry, 136 bytes, is not in it).
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
const OUT = arg('out', path.join(ROOT, 'bench/results/resume.json'));
const HZ = 100;

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

function pss(pids) {
    let kb = 0;
    for (const pid of pids) {
        try {
            const m = /Pss:\s+(\d+)/.exec(fs.readFileSync(
                `/proc/${pid}/smaps_rollup`, 'utf8'));
            kb += m ? Number(m[1]) : 0;
        } catch (e) {
            /* gone */
        }
    }
    return kb * 1024;
}

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

async function pushAll(d, qos, data) {
    const uids = Array.from({ length: N }, (_, i) => `rs${i}`);
    for (let i = 0; i < N; i += 1000) {
        const r = await L.centerPost(d, '/v1/push', {
            app: 'a', uids: uids.slice(i, i + 1000), data, qos,
        });
        if (r.status !== 200) {
            throw new Error(`push: ${r.status} ${r.body}`);
        }
    }
}

/*
 * One mode on a fresh server: N clients connect, drop, get pushed to,
 * reconnect.  A server per mode, because sessions left lingering by the
 * first mode (a reconnect without sid leaves its old session to expire)
 * would still hold memory in the second, and their expiry would be
 * what the second waited for.
 */
async function runMode(mode, result) {
    const d = await L.startPushd({
        workers: WORKERS,
        top: {
            register: { memory: '64m' },
            saver: { memory: '256m' },
            worker_connections: 20000,
        },
        room: { auth_secret: W.SECRET, linger: '60s',
                max_connections_per_ip: 0, handshake_rate: 100000 },
    });
    const pids = () => [d.masterPid, ...d.workerPids()];
    const clients = new Array(N);
    const pss0 = pss(d.workerPids());
    try {
        await each(N, 200, async (i) => {
            clients[i] = await W.rawOpen(d.roomPort, `rs${i}`, 'dev',
                                         { apps: ['a'], timeout: 30000 });
        });

        const sids = clients.map((c) => c.welcome.sid);
        for (const c of clients) {
            c.destroy();
        }
        await L.waitFor(async () => (await L.metrics(d))
                        .get('pushd_sessions_lingering') === N, 30000,
                        'every session lingering');
        const pssLinger = pss(d.workerPids());
        await pushAll(d, 1, `q1-${mode}`);
        await pushAll(d, 0, `q0-${mode}`);

        const cpu0 = cpuTicks(pids());
        const t0 = Date.now();
        let lastWelcome = 0, resumed = 0, missing = 0, twice = 0;
        const owed = mode === 'with' ? [`q0-${mode}`, `q1-${mode}`]
                                     : [`q1-${mode}`];
        let notResumed = 0;
        await each(N, 200, async (i) => {
            const opts = { apps: ['a'], timeout: 30000 };
            if (mode === 'with') {
                opts.extra = `sid=${sids[i]}`;
            }
            const c = await W.rawOpen(d.roomPort, `rs${i}`, 'dev', opts);
            lastWelcome = Date.now();
            resumed += c.welcome.resumed ? 1 : 0;
            /* a resume refused (resumed:false) is a fresh session, which
             * is owed the stored qos 1 only; counted, and the server's
             * log says why */
            const want = mode === 'with' && !c.welcome.resumed
                ? owed.filter((x) => x.startsWith('q1')) : owed;
            notResumed += mode === 'with' && !c.welcome.resumed ? 1 : 0;
            clients[i] = c;
            const seen = [];
            /* a sentinel-free wait: the messages it must get */
            while (seen.filter((x) => want.includes(x)).length
                   < want.length) {
                let f;
                try {
                    f = await c.next((x) => x.json && x.json.op === 'msg',
                                     30000, `rs${i}'s messages`);
                } catch (e) {
                    /* what the server holds for it, for the report */
                    const p = await L.centerGet(d, `/v1/users/rs${i}`);
                    e.message += ` (${mode} resume; resumed `
                        + `${c.welcome.resumed}; seen `
                        + `${JSON.stringify(seen)}; presence ${p.body}; `
                        + `log kept in ${d.prefix})`;
                    throw e;
                }
                seen.push(f.json.data);
                if (f.json.qos === 1) {
                    c.sendJson({ op: 'ack', ids: [f.json.id] });
                }
            }
            for (const w of want) {
                const k = seen.filter((x) => x === w).length;
                missing += k === 0 ? 1 : 0;
                twice += k > 1 ? 1 : 0;
            }
        });
        const tAll = Date.now();
        const cpu = (cpuTicks(pids()) - cpu0) / HZ;
        result[`${mode}_resume`] = {
            sessions_per_second: Math.round(N / ((lastWelcome - t0)
                                                 / 1000)),
            seconds_to_last_welcome: +((lastWelcome - t0) / 1000)
                .toFixed(2),
            seconds_to_all_delivered: +((tAll - t0) / 1000).toFixed(2),
            resumed, not_resumed: notResumed,
            messages_expected: owed.length * N
                - (owed.length - 1) * notResumed,
            missing, twice,
            pushd_cpu_us_per_session: +(cpu * 1e6 / N).toFixed(1),
            pss_bytes_per_lingering_session:
                Math.round((pssLinger - pss0) / N),
        };
    } finally {
        for (const c of clients) {
            if (c) {
                c.destroy();
            }
        }
        await d.stop();
    }
}

async function main() {
    const result = {
        commit: cp.execSync('git rev-parse --short HEAD', { cwd: ROOT })
            .toString().trim(),
        date: new Date().toISOString(), clients: N, workers: WORKERS,
    };

    for (const mode of ['without', 'with']) {
        await runMode(mode, result);
    }

    fs.writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
    console.log(`resume bench at ${result.commit}: ${N} clients, `
                + `${WORKERS} workers`);
    for (const m of ['without', 'with']) {
        const r = result[`${m}_resume`];
        console.log(`${m} resume: ${r.sessions_per_second} sessions/s, `
                    + `all delivered in ${r.seconds_to_all_delivered} s, `
                    + `${r.resumed} resumed, `
                    + (m === 'with' ? `${r.not_resumed} refused (fresh `
                       + 'sessions), ' : '')
                    + `${r.missing} missing, `
                    + `${r.twice} twice, pushd ${r.pushd_cpu_us_per_session}`
                    + ` us CPU/session, ${r.pss_bytes_per_lingering_session}`
                    + ' B PSS per lingering session');
    }
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
