'use strict';
/*
 * cluster_faults.test.js: faults under load in a two-node cluster
 * (register and store in Redis, the durable log in PostgreSQL, real
 * servers from servers.js).  Clients that reconnect by themselves, to
 * either node, receive a stream of qos 1 pushes sent through both nodes
 * and ack them, while one after the other: a node is SIGKILLed (and
 * started again), Redis restarts empty, PostgreSQL restarts.  Every
 * push answered 200 reaches its uid at least once; every request gets
 * an answer (200, or 503 while a server is away), except those sent to
 * the node while it was dead: a socket error or a timeout anywhere else
 * is a failure, not a refusal.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');
const W = require('./ws_client.js');
const S = require('./servers.js');

const T = { timeout: 300000,
            skip: (!S.haveRedis() || !S.pgBin())
                  && 'redis-server or postgresql is not installed' };
const UIDS = 10;

function node(name, redisPort, pg) {
    return {
        workers: 2,
        top: {
            node_id: name,
            register: { backend: 'redis', redis: [`127.0.0.1:${redisPort}`],
                        memory: '8m', node_ttl: '3s', timeout: '500ms' },
            saver: { memory: '8m', backend: 'redis', timeout: '1s',
                     postgres: pg.conninfo },
        },
        room: { auth_secret: W.SECRET },
    };
}

/*
 * A client of uid that reconnects by itself, to the room port of the
 * next live node each time (ports() lists them), and acks what it gets.
 */
function client(uid, ports, first) {
    const c = { uid, got: new Set(), stop: false, sessions: 0,
                tries: first };
    c.done = (async () => {
        while (!c.stop) {
            const list = ports();
            const port = list[c.tries++ % list.length];
            let ws;
            try {
                ws = await W.rawOpen(port, uid, 'dev');
            } catch (e) {
                await L.delay(50);
                continue;
            }
            c.sessions++;
            c.ws = ws;
            for (;;) {
                let f;
                try {
                    f = await ws.next((x) => x.json || x.opcode === W.OP.CLOSE,
                                      1000, 'a frame');
                } catch (e) {
                    if (ws.tcpClosed || c.stop) {
                        break;
                    }
                    continue;
                }
                if (!f.json) {
                    break;              /* a close frame */
                }
                if (f.json.op === 'msg') {
                    c.got.add(f.json.data);
                    if (f.json.qos === 1) {
                        ws.sendJson({ op: 'ack', ids: [f.json.id] });
                    }
                }
            }
            ws.destroy();
        }
    })();
    return c;
}

function diag(s) {
    process.stdout.write(`# ${s}\n`);
}

test('cluster faults under load: node SIGKILL, Redis restart, PostgreSQL '
     + 'restart; every 200 arrives, every request is answered', T,
     async () => {
    const redisPort = await L.freePort();
    let redis = await S.startRedis(redisPort);
    const pg = await S.startPostgres();
    const nodes = [];
    const dead = [];
    try {
        nodes.push(await L.startPushd(node('node-a', redisPort, pg)));
        nodes.push(await L.startPushd(node('node-b', redisPort, pg)));
        const ports = () => nodes.map((d) => d.roomPort);

        /* the store takes pushes once both nodes have their links */
        for (const d of nodes) {
            await L.waitFor(async () => (await L.centerPost(d, '/v1/push', {
                app: 'a', uids: ['warmup'], data: 'w',
            })).status === 200, 20000, 'a stored push');
        }

        const clients = Array.from({ length: UIDS },
                                   (_, i) => client(`cf${i}`, ports, i));
        await L.waitFor(() => clients.every((c) => c.sessions > 0), 20000,
                        'every client connected');

        const sent = new Map();         /* data -> uid, answered 200 */
        const phaseOf = new Map();      /* data -> phase it was sent in */
        const unanswered = [];          /* a request with no answer */
        const excused = [];             /* ... to the node while dead */
        const other = [];
        const refusedBy = {};           /* phase -> 503s */
        let phase = 'start', seq = 0, publishing = true;
        const publisher = (async () => {
            while (publishing) {
                const d = nodes[seq % nodes.length];
                const uid = `cf${seq % UIDS}`;
                const data = `m${seq++}`;
                const at = phase;
                let r;
                try {
                    r = await L.centerPost(d, '/v1/push',
                        { app: 'a', uids: [uid], data, qos: 1 },
                        { timeout: 5000 });
                } catch (e) {
                    (dead.includes(d) ? excused : unanswered)
                        .push([at, data, e.message]);
                    continue;
                }
                if (r.status === 200) {
                    sent.set(data, uid);
                    phaseOf.set(data, at);
                } else if (r.status === 503) {
                    refusedBy[at] = (refusedBy[at] || 0) + 1;
                    await L.delay(10);
                } else {
                    other.push([at, data, r.status, r.body]);
                }
            }
        })();
        const more = async (n, what) => {
            const from = sent.size;
            await L.waitFor(() => sent.size >= from + n, 60000,
                            `${n} more pushes answered 200 (${what})`);
        };

        await more(100, 'start');

        /* node-b SIGKILLed, its clients move to node-a; a new node-b */
        phase = 'kill';
        const b = nodes[1];
        dead.push(b);
        b.killHard();
        await more(50, 'node-b dead');
        nodes[1] = await L.startPushd(node('node-b', redisPort, pg));
        await more(100, 'node-b back');

        /* Redis restarts empty: the nodes reconnect, the store reloads
         * what PostgreSQL holds */
        phase = 'redis';
        await redis.stop();
        redis = await S.startRedis(redisPort);
        await more(100, 'Redis back');

        /* PostgreSQL restarts: 503 meanwhile, then 200 again */
        phase = 'pg';
        pg.stop();
        await pg.start();
        await more(100, 'PostgreSQL back');

        phase = 'end';
        publishing = false;
        await publisher;

        /* every 200 reaches its uid: those a live client missed (routed
         * to a node that was dying, or while Redis was away) come from
         * the store on its next connection, so every client reconnects
         * once after a first wait */
        const missing = () => [...sent].filter(([data, uid]) =>
            !clients[Number(uid.slice(2))].got.has(data));
        const late = await L.waitFor(() => missing().length === 0, 10000,
                                     'every 200 delivered')
            .then(() => [], () => missing().map(([data]) => phaseOf.get(data)));
        if (late.length) {
            for (const c of clients) {
                if (c.ws) {
                    c.ws.destroy();
                }
            }
            await L.waitFor(() => missing().length === 0, 60000,
                            'every 200 delivered after a reconnect')
                .catch((e) => {
                    e.message += `: ${missing().length} of ${sent.size} `
                               + 'missing, e.g. '
                               + JSON.stringify(missing().slice(0, 5));
                    throw e;
                });
        }

        /* only a node's death or Redis's loss of the register may leave
         * a live client out: a connect waits for its announcement before
         * it fetches (pd_room_load_first), so a push stored after the
         * fetch finds the connection */
        assert.deepStrictEqual(late.filter((p) => p !== 'kill'
                                           && p !== 'redis'), [],
                               'missed live outside the faults');
        assert.deepStrictEqual(unanswered, [], 'requests with no answer');
        assert.deepStrictEqual(other, [], 'answers other than 200 or 503');
        diag(`${sent.size} pushes answered 200; 503 by phase `
             + `${JSON.stringify(refusedBy)}; ${excused.length} unanswered `
             + `by the dead node; ${late.length} delivered only after a `
             + `reconnect (sent in phases ${[...new Set(late)]}); `
             + `sessions ${clients.map((c) => c.sessions).join(' ')}`);

        for (const c of clients) {
            c.stop = true;
            if (c.ws) {
                c.ws.destroy();
            }
        }
        await Promise.all(clients.map((c) => c.done));
        await L.stopAllChecked(nodes);
        /* the killed node's logs too: a sanitizer report or a death by a
         * signal the test did not send */
        const bad = L.scanLogs(b);
        assert.strictEqual(bad, null, bad);
    } finally {
        for (const d of nodes.concat(dead)) {
            d.killHard();
        }
        await redis.stop();
        pg.remove();
    }
});
