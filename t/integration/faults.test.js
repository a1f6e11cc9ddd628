'use strict';
/*
 * faults.test.js: faults while load runs.  Clients that reconnect by
 * themselves (with their sid: a resume where it can be) receive a
 * stream of qos 1 pushes and ack them, while the daemon suffers, one
 * after the other: a worker SIGKILLed, two HUP reloads in a row, a
 * worker SIGSTOPped a while.  Every push answered 200 must reach its uid
 * at least once; every request is answered except those a SIGKILLed
 * worker held (a request with no answer outside the kill counts as a
 * failure, not as a refusal).  Then the master is SIGKILLed: its workers
 * notice and leave, and no port stays held by an orphan.  The store
 * full under the same stream (503 "full", then recovery as acks free
 * it), and API clients on kept-alive connections through two reloads
 * (every request answered, none lost to the close of an idle one).
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 240000 };
const UIDS = 12;

function conf() {
    return {
        workers: 2,
        top: {
            register: { memory: '8m' },
            saver: { memory: '32m' },
        },
        room: { auth_secret: W.SECRET, linger: '5s',
                reconnect_window: '200ms' },
    };
}

/*
 * A client of uid that reconnects by itself; got: data it received.
 * With ctl.hold set it keeps the ids of its qos 1 messages in held
 * instead of acking them; c.ackHeld() acks them on its connection.
 */
function client(d, uid, ctl = {}) {
    const c = { uid, got: new Set(), stop: false, sessions: 0, resumed: 0,
                held: new Set() };
    c.ackHeld = () => {
        if (c.ws && !c.ws.tcpClosed && c.held.size) {
            c.ws.sendJson({ op: 'ack', ids: [...c.held] });
            c.held.clear();
        }
    };
    c.done = (async () => {
        let sid = null;
        while (!c.stop) {
            let ws;
            try {
                ws = await W.rawOpen(d.roomPort, uid, 'dev',
                                     sid ? { extra: `sid=${sid}` } : {});
            } catch (e) {
                await new Promise((r) => setTimeout(r, 50));
                continue;
            }
            c.sessions++;
            c.resumed += ws.welcome.resumed ? 1 : 0;
            sid = ws.welcome.sid;
            c.ws = ws;
            for (;;) {
                let f;
                try {
                    f = await ws.next((x) => x.json || x.opcode === W.OP.CLOSE,
                                      1000, 'a frame');
                } catch (e) {
                    if (ws.tcpClosed) {
                        break;
                    }
                    if (c.stop) {
                        break;
                    }
                    continue;
                }
                if (!f.json) {
                    break;              /* a close frame */
                }
                if (f.json.op === 'msg') {
                    c.got.add(f.json.data);
                    if (f.json.qos === 1 && ctl.hold) {
                        c.held.add(f.json.id);
                    } else if (f.json.qos === 1) {
                        ws.sendJson({ op: 'ack', ids: [f.json.id] });
                    }
                }
            }
            ws.destroy();
        }
    })();
    return c;
}

test('faults under load: worker SIGKILL, HUP twice, SIGSTOP; every 200 '
     + 'arrives', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const clients = Array.from({ length: UIDS },
                                   (_, i) => client(d, `fl${i}`));
        await L.waitFor(() => clients.every((c) => c.sessions > 0), 10000,
                        'every client connected');

        const sent = new Map();         /* data -> uid, answered 200 */
        const unanswered = [];          /* [phase, data] */
        let refused = 0;
        let phase = 'start';
        let seq = 0;
        let publishing = true;
        const publisher = (async () => {
            while (publishing) {
                const uid = `fl${seq % UIDS}`;
                const data = `m${seq++}`;
                const at = phase;
                try {
                    const r = await L.centerPost(d, '/v1/push',
                        { app: 'a', uids: [uid], data, qos: 1 },
                        { timeout: 5000 });
                    if (r.status === 200) {
                        sent.set(data, uid);
                    } else {
                        refused++;
                    }
                } catch (e) {
                    /* a request is the kill's if it was out when it came */
                    unanswered.push([at === 'kill' ? at : phase, data,
                                     e.message]);
                }
            }
        })();
        const more = async (n) => {
            const from = sent.size;
            await L.waitFor(() => sent.size >= from + n, 30000,
                            `${n} more pushes answered`);
        };

        await more(100);

        /* a worker SIGKILLed: the master respawns it */
        phase = 'kill';
        const victim = d.workerPids()[0];
        d.kill(victim, 'SIGKILL');
        await L.waitFor(() => d.workerPids().length === 2
                        && !d.workerPids().includes(victim), 10000,
                        'the killed worker replaced');
        await more(100);

        /* two reloads in a row */
        phase = 'hup';
        for (let i = 0; i < 2; i++) {
            const old = d.workerPids();
            process.kill(d.masterPid, 'SIGHUP');
            await L.waitFor(() => d.workerPids().length === 2
                            && d.workerPids().every((p) => !old.includes(p)),
                            15000, `new workers after HUP ${i + 1}`);
        }
        await more(100);

        /* a worker stopped for a while, then running again */
        phase = 'stop';
        const slow = d.workerPids()[1];
        process.kill(slow, 'SIGSTOP');
        await new Promise((r) => setTimeout(r, 2000));
        process.kill(slow, 'SIGCONT');
        phase = 'end';
        await more(100);

        publishing = false;
        await publisher;

        /* everything answered 200 reaches its uid, at least once */
        const missing = () => [...sent].filter(([data, uid]) =>
            !clients[Number(uid.slice(2))].got.has(data));
        await L.waitFor(() => missing().length === 0, 60000,
                        'every 200 delivered').catch((e) => {
            e.message += `: ${missing().length} of ${sent.size} missing, `
                       + `e.g. ${JSON.stringify(missing().slice(0, 5))}`;
            throw e;
        });

        /* a request without an answer only where a worker was killed
         * (and while one was stopped: it holds what it accepted) */
        const outside = unanswered.filter(([at]) => at !== 'kill'
                                          && at !== 'stop');
        assert.deepStrictEqual(outside, [], 'requests with no answer: '
                               + JSON.stringify(outside));
        t_diag(`${sent.size} pushes answered 200, ${refused} refused, `
               + `${unanswered.length} unanswered (kill/stop), sessions `
               + clients.map((c) => `${c.sessions}/${c.resumed}`).join(' '));

        for (const c of clients) {
            c.stop = true;
            if (c.ws) {
                c.ws.destroy();
            }
        }
        await Promise.all(clients.map((c) => c.done));
    });
});

/*
 * The store full under load: the clients hold their acks, so the qos 1
 * stream fills a 1 MB store (half of it for payloads: about 150 messages
 * of 3 KB).  Then every push is answered 503 "the message store is
 * full", nothing is taken; every client drops its connection and
 * reconnects (what it had comes again); then they ack what they hold
 * and the store takes pushes again.  Every push gets an answer, 200 or
 * that 503, and every 200 reaches its uid.
 */
test('the saver store full under load: 200 or 503 "full" for every push, '
     + 'every 200 arrives, and the store recovers as acks free it', T,
     async () => {
    const c = conf();
    c.top.saver = { memory: '1m' };
    await L.withPushd(c, async (d) => {
        const ctl = { hold: true };
        const clients = Array.from({ length: UIDS },
                                   (_, i) => client(d, `fl${i}`, ctl));
        await L.waitFor(() => clients.every((x) => x.sessions > 0), 10000,
                        'every client connected');

        const pad = 'x'.repeat(3000);
        const sent = new Map();         /* data -> uid, answered 200 */
        const unanswered = [];
        const other = [];
        let full = 0, seq = 0, publishing = true;
        const publisher = (async () => {
            while (publishing) {
                const uid = `fl${seq % UIDS}`;
                const data = `m${seq++}-${pad}`;
                let r;
                try {
                    r = await L.centerPost(d, '/v1/push',
                        { app: 'a', uids: [uid], data, qos: 1 },
                        { timeout: 5000 });
                } catch (e) {
                    unanswered.push([data.slice(0, 12), e.message]);
                    continue;
                }
                if (r.status === 200 && r.json.stored === 1) {
                    sent.set(data, uid);
                } else if (r.status === 503 && r.json
                           && r.json.error === 'the message store is full') {
                    full++;
                    /* no busy loop against a full store */
                    await L.delay(5);
                } else {
                    other.push(`${r.status} ${r.body.slice(0, 100)}`);
                }
            }
        })();

        /* no acks: the store fills */
        await L.waitFor(() => full >= 50, 60000, 'the store full (503s)');
        const before = sent.size;
        assert.ok(before >= 100, `${before} stored before the store was full`);

        /* full: every client leaves and comes back; its messages
         * come again, still held */
        for (const x of clients) {
            if (x.ws) {
                x.ws.destroy();
            }
        }
        const sessions = clients.map((x) => x.sessions);
        await L.waitFor(() => clients.every((x, i) => x.sessions
                                                      > sessions[i]),
                        10000, 'every client back');
        const fullAgain = full;
        await L.waitFor(() => full >= fullAgain + 20, 30000,
                        'pushes still refused while nothing is acked');

        /* the acks free the store: pushes are taken again */
        ctl.hold = false;
        for (const x of clients) {
            x.ackHeld();
        }
        const fullAtAck = full;
        await L.waitFor(() => sent.size >= before + 300, 60000,
                        '300 more pushes stored after the acks');
        publishing = false;
        await publisher;

        const missing = () => [...sent].filter(([data, uid]) =>
            !clients[Number(uid.slice(2))].got.has(data));
        await L.waitFor(() => missing().length === 0, 60000,
                        'every 200 delivered').catch((e) => {
            e.message += `: ${missing().length} of ${sent.size} missing, `
                       + `e.g. ${JSON.stringify(missing().slice(0, 5)
                                    .map(([m, u]) => [m.slice(0, 12), u]))}`;
            throw e;
        });
        assert.deepStrictEqual(unanswered, [], 'requests with no answer');
        assert.deepStrictEqual(other, [], 'answers other than 200 or 503');

        /* every message acked, none dropped for want of an ack: the
         * store is empty again */
        const m = await L.waitFor(async () => {
            const x = await L.metrics(d);
            return x.get('pushd_store_messages') === 0 && x;
        }, 20000, 'the store empty after the acks');
        assert.strictEqual(m.get('pushd_store_dropped_noack_total'), 0);
        assert.strictEqual(m.get('pushd_store_bytes'), 0);
        t_diag(`${sent.size} pushes answered 200 (${before} before the `
               + `store was full), ${full} answered 503 full `
               + `(${full - fullAtAck} after the acks began)`);

        for (const x of clients) {
            x.stop = true;
            if (x.ws) {
                x.ws.destroy();
            }
        }
        await Promise.all(clients.map((x) => x.done));
    });
});

function t_diag(s) {
    process.stdout.write(`# ${s}\n`);
}

test('the master SIGKILLed: its workers leave and free the ports', T,
     async () => {
    await L.withPushd(conf(), async (d) => {
        const workers = d.workerPids();
        assert.strictEqual(workers.length, 2);
        const ws = await W.rawOpen(d.roomPort, 'orphan', 'dev');
        d.kill(d.masterPid, 'SIGKILL');
        await L.waitFor(() => workers.every((p) => !L.procAlive(p)), 15000,
                        'the workers gone after their master');
        await L.waitFor(async () => !(await L.tcpConnects(d.roomPort))
                        && !(await L.tcpConnects(d.centerPort)), 5000,
                        'no process holding the ports');
        assert.ok(await ws.waitEnd(5000), 'the client saw its end');
    });
});

/*
 * API clients on kept-alive connections send one request after another,
 * each with a short pause, through two reloads.  The retiring worker's
 * idle connections are the race: a request written just as the worker
 * closes its connection must still be answered.  Every request gets a
 * response; a connection ends only after one that says "Connection:
 * close" (or while the client is between requests and sees it first).
 */
test('the center during two reloads: every request on kept-alive '
     + 'connections is answered', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const N = 40;
        const lost = [];
        const other = [];
        let answered = 0, closes = 0, conns = 0, running = true;
        const one = async (i) => {
            let k = null;
            let n = 0;
            while (running) {
                if (k === null || k.closed) {
                    if (k !== null) {
                        k.close();
                    }
                    k = await L.centerConn(d);
                    conns++;
                }
                const data = `k${i}-${n++}`;
                let r;
                try {
                    r = await k.post('/v1/push', { app: 'a', uids: ['nobody'],
                                                   data, qos: 0 });
                } catch (e) {
                    lost.push(`${data}: ${e.message}`);
                    k.close();
                    k = null;
                    continue;
                }
                answered++;
                if (r.status !== 200) {
                    other.push(`${data}: ${r.status} ${r.body}`);
                }
                if (r.headers.connection === 'close') {
                    closes++;
                    k.close();
                    k = null;
                }
                /* a pause: the connection is idle now and then */
                await L.delay(Math.floor(Math.random() * 4));
            }
            if (k !== null) {
                k.close();
            }
        };
        const all = Array.from({ length: N }, (_, i) => one(i));
        const more = async (n) => {
            const from = answered;
            await L.waitFor(() => answered >= from + n, 30000,
                            `${n} more requests answered`);
        };
        await more(500);
        for (let i = 0; i < 2; i++) {
            const old = d.workerPids();
            process.kill(d.masterPid, 'SIGHUP');
            await L.waitFor(() => d.workerPids().length === 2
                            && d.workerPids().every((p) => !old.includes(p)),
                            15000, `new workers after HUP ${i + 1}`);
            await L.waitFor(() => old.every((p) => !L.procAlive(p)), 15000,
                            `the old workers gone after HUP ${i + 1}`);
            await more(500);
        }
        running = false;
        await Promise.all(all);
        t_diag(`${answered} requests answered on ${conns} connections, `
               + `${closes} with Connection: close, ${lost.length} lost`);
        assert.deepStrictEqual(lost, [], 'requests with no answer');
        assert.deepStrictEqual(other, [], 'answers other than 200');
    });
});
