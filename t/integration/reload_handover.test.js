'use strict';
/*
 * reload_handover.test.js: a reload (HUP) hands the plain WebSocket
 * clients of the retiring workers to the new ones with their sessions:
 * the same TCP connection (same local port, no close, no reconnect
 * frame, no second welcome), every message pushed before, during and
 * after the reload delivered once and in order (qos 0 and qos 1), a
 * message being sent in fragments finished on the new worker, two
 * reloads in a row; TLS clients still get the spread reconnect.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 120000 };

function conf(o = {}) {
    return {
        workers: o.workers || 2,
        roomSsl: o.roomSsl,
        top: Object.assign({
            register: { memory: '8m' },
            saver: { memory: '16m' },
        }, o.top || {}),
        room: Object.assign({ auth_secret: W.SECRET,
                              reconnect_window: '1s' }, o.room || {}),
    };
}

/* every frame of ws from now on goes to ws.log; qos 1 ones are acked */
function track(ws) {
    ws.log = [];
    ws.onFrame = (f) => {
        ws.log.push(f);
        if (f.json && f.json.op === 'msg' && f.json.qos === 1) {
            ws.sendJson({ op: 'ack', ids: [f.json.id] });
        }
    };
    for (const f of ws.frames.items.splice(0)) {
        ws.onFrame(f);
    }
    return ws;
}

/* pushes (their data has n), broadcasts (b) apart: only pushes to one
 * uid are ordered; broadcasts are walked at a pace, each worker its own */
const msgs = (ws) => ws.log.filter((f) => f.json && f.json.op === 'msg'
                                   && f.json.data.n !== undefined)
    .map((f) => f.json.data);
const bcasts = (ws) => ws.log.filter((f) => f.json && f.json.op === 'msg'
                                     && f.json.data.b !== undefined)
    .map((f) => f.json.data.b);

/*
 * Broadcasts to app a, one every few ms at a low rate (so their walks
 * are under way while connections move), until stopped; b counts the
 * accepted ones.
 */
function broadcaster(d) {
    const st = { b: 0, stop: false, unsure: new Set(), sure: [] };
    st.run = (async () => {
        /* a refused connection reads as "no answer": without the exit
         * check a test that failed before check() would post forever
         * to the stopped daemon and its file would never end */
        while (!st.stop && d.childExit === null) {
            const b = st.b++;
            if (await post(d, '/v1/broadcast',
                           { app: 'a', data: { b }, qos: 0, rate: 200 })
                === null)
            {
                st.unsure.add(b);
            } else {
                st.sure.push(b);
            }
            await L.delay(20);
        }
    })();
    /* every client got each broadcast once */
    st.check = async (clients) => {
        st.stop = true;
        await st.run;
        assert.strictEqual(st.unsure.size, 0,
                           `${st.unsure.size} broadcasts got no answer`);
        const got = (c) => bcasts(c).filter((b) => !st.unsure.has(b));
        for (const c of clients) {
            await L.waitFor(() => got(c).length >= st.sure.length, 10000,
                            `${st.sure.length} broadcasts for ${c.uid}, `
                            + `got ${got(c).length}`);
            assert.deepStrictEqual(got(c).sort((x, y) => x - y), st.sure,
                                   `${c.uid}: each broadcast once`);
            assert.strictEqual(new Set(bcasts(c)).size, bcasts(c).length,
                               `${c.uid}: none twice`);
        }
    };
    return st;
}

/* frames a client must never see on a hand-over */
function unexpected(ws) {
    return ws.log.filter((f) => f.opcode === W.OP.CLOSE
        || (f.json && f.json.op !== 'msg' && f.json.op !== 'pong'));
}

async function push(d, uid, data, qos, app = 'a') {
    const r = await L.centerPost(d, '/v1/push',
                                 { app, uids: [uid], data, qos });
    assert.strictEqual(r.status, 200, r.body);
    return r.json;
}

/*
 * A push or broadcast during reloads whose request got no answer at all
 * (the center's side of a reload, not the hand-over's): it may or may
 * not have been taken, so it is checked as "at most once" only.  Any
 * answer but 200 fails.
 */
async function post(d, target, body) {
    let r;
    try {
        r = await L.centerPost(d, target, body);
    } catch (e) {
        if (/no complete response/.test(e.message)) {
            return null;
        }
        throw e;
    }
    assert.strictEqual(r.status, 200, r.body);
    return r.json;
}

async function open(d, uid, opts = {}) {
    const ws = track(await W.rawOpen(opts.tls ? d.sslPort : d.roomPort,
                                     uid, 'phone', opts));
    ws.uid = uid;
    ws.port = ws.sock.localPort;
    if (!opts.tls) {
        ws.owner = await L.waitFor(() => L.connOwner(d.roomPort, ws.port),
                                   5000, `the worker holding ${uid}`);
    }
    return ws;
}

/*
 * Pushes to each client in turn, qos 0 and 1 alternating, recording
 * what each was sent (only what the center accepted).
 */
function pusher(d, clients) {
    const st = { n: 0, sent: new Map(clients.map((c) => [c, []])),
                 unsure: new Set() };
    st.round = async (phase) => {
        for (const c of clients) {
            const qos = st.n % 2;
            const data = { n: st.n++, phase };
            if (await post(d, '/v1/push', { app: 'a', uids: [c.uid], data,
                                            qos }) === null)
            {
                st.unsure.add(data.n);
                continue;
            }
            st.sent.get(c).push(data);
        }
    };
    /* rounds of 'during' pushes for as long as work() runs; its value */
    st.during = async (work) => {
        let stop = false;
        const rounds = (async () => {
            while (!stop) {
                await st.round('during');
            }
        })();
        try {
            return await work();
        } finally {
            stop = true;
            await rounds;
        }
    };
    /* what c got of the pushes whose answer came */
    const sure = (c) => msgs(c).filter((m) => !st.unsure.has(m.n));
    /* each client got exactly what it was sent, in order */
    st.check = async () => {
        for (const c of clients) {
            const want = st.sent.get(c);
            await L.waitFor(() => sure(c).length >= want.length, 10000,
                            `${want.length} messages for ${c.uid}, got `
                            + `${sure(c).length}`);
        }
        /* one more each, so a late duplicate would have shown by then */
        await st.round('end');
        for (const c of clients) {
            const want = st.sent.get(c);
            await L.waitFor(() => sure(c).length >= want.length, 10000,
                            `the last message for ${c.uid}`);
            assert.deepStrictEqual(sure(c), want,
                                   `${c.uid}: once each, in order`);
            const ns = msgs(c).map((m) => m.n);
            assert.strictEqual(new Set(ns).size, ns.length,
                               `${c.uid}: none twice`);
        }
        /* the center answers every request through a reload: the
         * plain HTTP connections move too (reload_http.test.js) */
        assert.strictEqual(st.unsure.size, 0,
                           `${st.unsure.size} pushes got no answer`);
        return st.unsure.size;
    };
    return st;
}

/* HUP; resolves once the workers are all new and the old ones gone */
async function reload(d, old) {
    const n = old.length;
    process.kill(d.masterPid, 'SIGHUP');
    await L.waitFor(() => {
        const now = d.workerPids();
        return now.length === n && now.every((p) => !old.includes(p));
    }, 15000, 'the new workers');
    await L.waitFor(() => old.every((p) => !L.procAlive(p)), 15000,
                    `the old workers ${old.join(',')} to exit`);
    return d.workerPids();
}

function assertKept(d, clients, fresh) {
    for (const c of clients) {
        assert.strictEqual(c.tcpClosed, false, `${c.uid} kept its socket`);
        assert.deepStrictEqual(unexpected(c), [],
                               `${c.uid}: no close, no reconnect`);
        const now = L.connOwner(d.roomPort, c.port);
        assert.ok(fresh.includes(now),
                  `${c.uid}'s connection (port ${c.port}) is held by a `
                  + `new worker (${now}, new: ${fresh.join(',')})`);
    }
}

test('HUP hands plain clients over: same connection, every message once, '
     + 'in order', T, async (t) => {
    await L.withPushd(conf(), async (d) => {
        const old = d.workerPids();
        const clients = [];
        for (let i = 0; i < 8; i++) {
            /* odd ones longer than a room connection keeps in place
             * (PD_ROOM_UID_INLINE): their copy travels too */
            clients.push(await open(d, i % 2 ? `h${i}${'x'.repeat(60)}`
                                             : `h${i}`));
        }
        t.diagnostic('owners before: '
                     + clients.map((c) => c.owner).join(','));

        const p = pusher(d, clients);
        await p.round('before');
        await p.round('before');
        const b = broadcaster(d);

        /* pushes and broadcasts go on while the workers change */
        const fresh = await p.during(() => reload(d, old));

        await p.round('after');
        await p.check();
        await b.check(clients);
        assertKept(d, clients, fresh);
        t.diagnostic(`${b.b} broadcasts`);

        const log = d.logText();
        const m = [...log.matchAll(/hand-over: (\d+) connections handed to the new workers, (\d+) told to reconnect/g)];
        assert.strictEqual(m.length, old.length, 'each old worker handed');
        const handed = m.reduce((s, x) => s + Number(x[1]), 0);
        const told = m.reduce((s, x) => s + Number(x[2]), 0);
        assert.strictEqual(handed, clients.length, 'all clients handed');
        assert.strictEqual(told, 0, 'none told to reconnect');
        t.diagnostic(`${p.n} messages, ${handed} connections handed over`);

        /* presence names the new worker's connection, once */
        const r = await L.centerGet(d, '/v1/users/h0');
        assert.strictEqual(r.status, 200, r.body);
        assert.strictEqual(JSON.stringify(r.json).match(/phone/g).length, 1,
                           r.body);

        /* the adopted sessions work on: ops, acks, a kick */
        clients[1].sendJson({ op: 'ping' });
        await L.waitFor(() => clients[1].log.some((f) => f.json
                        && f.json.op === 'pong'), 5000, 'a pong');
        const k = await L.centerPost(d, '/v1/users/h2/kick',
                                     { reason: 'bye' });
        assert.strictEqual(k.status, 200, k.body);
        await L.waitFor(() => clients[2].log.some((f) => f.json
                        && f.json.op === 'kick'), 5000, 'the kick');
        const k3 = await L.centerPost(d, `/v1/users/${clients[3].uid}/kick`,
                                      { reason: 'bye' });
        assert.strictEqual(k3.status, 200, k3.body);
        await L.waitFor(() => clients[3].log.some((f) => f.json
                        && f.json.op === 'kick'), 5000, 'the long uid\'s kick');
    });
});

test('a message half sent in fragments is finished on the new worker', T,
     async () => {
    await L.withPushd(conf({ workers: 1 }), async (d) => {
        const old = d.workerPids();
        const ws = await open(d, 'f1');

        /*
         * A bind in two fragments, a UTF-8 character cut between them,
         * with a ping between: the first fragment, the ping and half of
         * the second fragment's frame go in one write, so the pong says
         * the server read them all (the half frame stays partial).
         */
        const f1 = W.encodeFrame({ opcode: W.OP.TEXT, fin: false,
            payload: Buffer.from('{"op":"bind","note":"caf\u00e9 \u00e9', 'utf8')
                .subarray(0, -1) });
        const ping = W.encodeFrame({ opcode: W.OP.PING, payload: 'p1' });
        const f2 = W.encodeFrame({ opcode: W.OP.CONT, fin: true,
            payload: Buffer.concat([Buffer.from([0xa9]),
                                    Buffer.from('","app":"z2"}')]) });
        const cut = f2.length - 6;
        ws.sock.write(Buffer.concat([f1, ping, f2.subarray(0, cut)]));
        await L.waitFor(() => ws.log.some((f) => f.opcode === W.OP.PONG),
                        5000, 'the pong');

        const fresh = await reload(d, old);
        assert.notStrictEqual(L.connOwner(d.roomPort, ws.port), old[0]);

        ws.sock.write(f2.subarray(cut));
        /* the bind took effect: a push to z2 reaches it */
        await L.waitFor(async () => {
            const r = await L.centerPost(d, '/v1/push',
                { app: 'z2', uids: ['f1'], data: { z: 1 }, qos: 0 });
            return r.status === 200 && r.json.online === 1;
        }, 5000, 'the bind of z2 to take effect');
        await L.waitFor(() => ws.log.some((f) => f.json
                        && f.json.op === 'msg' && f.json.data.z === 1), 5000,
                        'the message of z2: '
                        + JSON.stringify(ws.log.map((f) => f.json || f.opcode)));
        assertKept(d, [ws], fresh);
    });
});

test('a session too large for the channel is sent away, the others are '
     + 'handed over', T, async () => {
    await L.withPushd(conf({ workers: 1, room: { max_message: '64k' } }),
                      async (d) => {
        const old = d.workerPids();
        const small = await open(d, 'sm1');
        const big = await open(d, 'bg1');
        /* 20 KB of a message being joined: more than one channel
         * message holds; a ping after it says the server has it */
        big.sock.write(Buffer.concat([
            W.encodeFrame({ opcode: W.OP.TEXT, fin: false,
                            payload: '{"op":"ping","x":"'
                                     + 'y'.repeat(20000) }),
            W.encodeFrame({ opcode: W.OP.PING, payload: 'p' })]));
        await L.waitFor(() => big.log.some((f) => f.opcode === W.OP.PONG),
                        5000, 'the pong');
        const fresh = await reload(d, old);
        assert.ok(big.log.some((f) => f.json && f.json.op === 'reconnect'),
                  'the big session was told to reconnect');
        assertKept(d, [small], fresh);
        assert.match(d.logText(), /session too large to hand over/);
    });
});

test('TLS clients get the spread reconnect, plain ones are handed over', T,
     async () => {
    await L.withPushd(conf({ roomSsl: true }), async (d) => {
        const old = d.workerPids();
        const plain = await open(d, 'p1');
        const secure = await open(d, 's1', { tls: true });
        const fresh = await reload(d, old);

        const rc = secure.log.find((f) => f.json
                                   && f.json.op === 'reconnect');
        assert.ok(rc, 'the TLS client was told to reconnect: '
                  + JSON.stringify(secure.log.map((f) => f.json || f.opcode)));
        assert.ok(rc.json.after_ms >= 0 && rc.json.after_ms < 1000,
                  `after_ms ${rc.json.after_ms} within the window`);
        await secure.waitEnd(5000);

        assertKept(d, [plain], fresh);
        const p = pusher(d, [plain]);
        await p.round('after');
        await p.check();
    });
});

test('two reloads in a row: the clients stay, messages come once', T,
     async (t) => {
    await L.withPushd(conf(), async (d) => {
        const first = d.workerPids();
        const clients = [];
        for (let i = 0; i < 6; i++) {
            clients.push(await open(d, `t${i}`));
        }
        const p = pusher(d, clients);
        await p.round('before');
        const b = broadcaster(d);

        const fresh = await p.during(async () => {
            process.kill(d.masterPid, 'SIGHUP');
            const second = await L.waitFor(() => {
                const now = d.workerPids().filter((x) => !first.includes(x));
                return now.length === 2 ? now : null;
            }, 15000, 'the second generation');
            /* at once, while the first hands its clients to the second */
            process.kill(d.masterPid, 'SIGHUP');
            const all = [...first, ...second];
            return L.waitFor(() => {
                const now = d.workerPids();
                return now.length === 2 && now.every((x) => !all.includes(x))
                    && all.every((x) => !L.procAlive(x)) ? now : null;
            }, 20000, 'the third generation alone');
        });
        await p.round('after');
        await p.check();
        await b.check(clients);
        assertKept(d, clients, fresh);
    });
});

/*
 * An old worker slow to hear that its connections were adopted: it is
 * stopped again and again for longer than a second while it hands 400
 * clients over, running a fraction of a millisecond between the stops
 * (so it is stopped in the middle of a slice, its adoptions sent and
 * their answers unread), and pushes to all of them go on meanwhile.  A push routed
 * to it just before a client's register entry moved waits in its channel
 * and is forwarded when it runs again; the new worker holds the adopted
 * client's output until then (or until the old worker is gone), so the
 * pushes that came straight to it since do not overtake it.  (Released
 * after a fixed second, they could: seen once in a CI dry run, two
 * reloads in a row in the sanitizer build, as 1621 before 1615.  This
 * test did not catch that old code in 4 runs: the stop rarely falls
 * between an adoption sent and its answer read; it stands as the fault
 * "an old worker stopped while it hands over": nothing lost, doubled or
 * reordered.)
 */
test('a stopped old worker: its last frames still come first', T,
     async (t) => {
    await L.withPushd(conf({ workers: 1 }), async (d) => {
        const [old] = d.workerPids();
        const clients = [];
        for (let i = 0; i < 400; i += 50) {
            const batch = [];
            for (let j = i; j < i + 50; j++) {
                batch.push(W.rawOpen(d.roomPort, `s${j}`, 'phone')
                    .then((ws) => { ws.uid = `s${j}`; return track(ws); }));
            }
            clients.push(...await Promise.all(batch));
        }
        const uids = clients.map((c) => c.uid);

        /* 16 lanes of pushes, each to its clients in turn, each push
         * after the last one's 200: one uid each, so a stopped worker's
         * channel fills only with what is routed to its own clients.
         * A push the old worker holds (or waits on, for a client not yet
         * handed over) is answered only when it runs, and its 0.3 ms
         * windows may go to the new worker: up to all 8 stops, 9.6 s,
         * so the answer is waited for 30 s, not the default 5 (a CI run
         * failed on a push held 5 s).  Never answered still fails.  A
         * push parked 5 s behind the stopped worker's full channel is
         * answered 503, nothing taken (README, "Back-pressure between
         * workers"): an answer, not a loss, so it is counted apart. */
        let stop = false;
        let n = 0;
        let slowest = 0;
        let refused = 0;
        const sent = new Map(clients.map((c) => [c, []]));
        const lanes = [];
        for (let l = 0; l < 16; l++) {
            lanes.push((async () => {
                for (let i = l; !stop; i = (i + 16) % clients.length) {
                    const c = clients[i];
                    const data = { n: n++ };
                    const t0 = Date.now();
                    const r = await L.centerPost(d, '/v1/push',
                                                 { app: 'a', uids: [c.uid],
                                                   qos: 0, data },
                                                 { timeout: 30000 });
                    slowest = Math.max(slowest, Date.now() - t0);
                    if (r.status === 503 && r.json
                        && /nothing was taken/.test(r.json.error)) {
                        refused++;
                        continue;
                    }
                    assert.strictEqual(r.status, 200, r.body);
                    sent.get(c).push(data.n);
                }
            })());
        }
        const pushes = Promise.all(lanes);

        process.kill(d.masterPid, 'SIGHUP');
        await L.waitFor(() => d.workerPids().some((p) => p !== old), 15000,
                        'the new worker');
        /* stopped 1.2 s, run 0.3 ms (a spin: a timer is too coarse),
         * 8 times at most, then left to finish */
        let stops = 0;
        while (L.procAlive(old) && stops < 8) {
            try {
                process.kill(old, 'SIGSTOP');
                stops++;
                await L.delay(1200);
                process.kill(old, 'SIGCONT');
            } catch (e) {
                break;
            }
            const until = process.hrtime.bigint() + 300000n;
            while (process.hrtime.bigint() < until) {
                /* spin */
            }
        }
        await L.waitFor(() => !L.procAlive(old), 15000, 'the old worker');
        stop = true;
        await pushes;
        t.diagnostic(`${stops} stops, ${n} pushes (${refused} answered `
                     + `503), slowest answer ${slowest} ms; the shutdown `
                     + `timeout came while connections were in transit: `
                     + `${/in transit wait/.test(d.logText())}`);

        for (const c of clients) {
            const want = sent.get(c);
            await L.waitFor(() => msgs(c).length >= want.length, 10000,
                            `${want.length} messages for ${c.uid}, got `
                            + `${msgs(c).length}`);
            assert.deepStrictEqual(msgs(c).map((m) => m.n), want,
                                   `${c.uid}: once each, in order`);
            assert.deepStrictEqual(unexpected(c), [],
                                   `${c.uid}: no close, no reconnect`);
        }
    });
});

/*
 * A flash reconnect after a hand-over: the session moved to a new
 * worker (a new pid and connection id there), and the sid the client
 * holds is the one its first worker's welcome told.  Each client gets a
 * qos 0 and a qos 1 (acked), then hups reloads; its socket is cut
 * without a close frame; qos 0 and qos 1 pushes go out while it
 * lingers; the reconnect with its sid (on whichever worker
 * SO_REUSEPORT picks) resumes the session with the gap, once and in
 * order.  A sid with another device, and one a digit off, never resume.
 */
async function resumeAfter(t, hups) {
    await L.withPushd(conf({ room: { linger: '20s' } }), async (d) => {
        const metric = async (name) => (await L.metrics(d)).get(name) || 0;
        const clients = [];
        for (let i = 0; i < 4; i++) {
            const ws = await open(d, `rs${hups}-${i}`);
            ws.sid = ws.welcome.sid;
            clients.push(ws);
        }
        for (const c of clients) {
            await push(d, c.uid, { n: 0 }, 0);
            await push(d, c.uid, { n: 1 }, 1);
            await L.waitFor(() => msgs(c).length === 2, 5000,
                            `the first two messages for ${c.uid}`);
            /* the ack (sent on receipt) is read before the pong */
            c.sendJson({ op: 'ping' });
            await L.waitFor(() => c.log.some((f) => f.json
                            && f.json.op === 'pong'), 5000, 'a pong');
        }

        let workers = d.workerPids();
        for (let h = 1; h <= hups; h++) {
            workers = await reload(d, workers);
            /* the counters are the live workers': the new generation's */
            await L.waitFor(async () => await metric('pushd_adopted_total')
                            >= clients.length, 10000,
                            `${clients.length} adopted (reload ${h})`);
        }
        assertKept(d, clients, workers);

        for (const c of clients) {
            c.destroy();
        }
        await L.waitFor(async () => await metric('pushd_sessions_lingering')
                        === clients.length, 5000, 'the sessions lingering');

        /* while away: qos 0 and qos 1, interleaved, through one API
         * connection (order is per sender: pushes on connections that
         * different workers serve have none between them) */
        const api = await L.centerConn(d);
        const send = async (uid, data, qos) => {
            const r = await api.post('/v1/push', { app: 'a', uids: [uid],
                                                   data, qos });
            assert.strictEqual(r.status, 200, r.body);
        };
        for (let n = 2; n <= 7; n++) {
            for (const c of clients) {
                await send(c.uid, { n }, n % 2);
            }
        }

        /* not this session's: another device with its sid, and its sid
         * a digit off, are fresh sessions (closed at once) */
        const other = await W.rawOpen(d.roomPort, clients[0].uid, 'tablet',
                                      { extra: `sid=${clients[0].sid}` });
        assert.strictEqual(other.welcome.resumed, false, 'another device');
        other.destroy();

        const last = clients[0].sid.slice(-1) === '0' ? '1' : '0';
        const off = clients[0].sid.slice(0, -1) + last;
        const wrong = await W.rawOpen(d.roomPort, clients[1].uid + 'x',
                                      'phone', { extra: `sid=${off}` });
        assert.strictEqual(wrong.welcome.resumed, false, 'a wrong sid');
        wrong.destroy();

        const resumedBefore = await metric('pushd_sessions_resumed_total');
        const handed = () => (d.logText().match(/resume handed to worker/g)
                              || []).length;
        const handedBefore = handed();
        for (const c of clients) {
            const back = track(await W.rawOpen(d.roomPort, c.uid, 'phone',
                                               { extra: `sid=${c.sid}` }));
            assert.strictEqual(back.welcome.resumed, true,
                               `${c.uid} resumed after ${hups} reloads`);
            assert.strictEqual(back.welcome.sid, c.sid, 'the same sid');
            await send(c.uid, { n: 'end' }, 1);
            await L.waitFor(() => msgs(back).some((m) => m.n === 'end'),
                            5000, `the last message for ${c.uid}`);
            /* the gap, each once, in the order sent across qos 0 and 1 */
            assert.deepStrictEqual(msgs(back).map((m) => m.n),
                                   [2, 3, 4, 5, 6, 7, 'end'], c.uid);
            c.back = back;
        }
        assert.strictEqual(await metric('pushd_sessions_resumed_total')
                           - resumedBefore, clients.length);
        t.diagnostic(`${handed() - handedBefore} of ${clients.length} `
                     + 'resumes handed to another worker');

        /* both ways must have been taken: the worker that got the
         * reconnect holds the session, or hands the socket to the one
         * that does (it checks the whole sid); more flaps until so */
        const c = clients[0];
        const ways = async () => {
            const h = handed() - handedBefore;
            return [h, await metric('pushd_sessions_resumed_total')
                       - resumedBefore - h];
        };
        for (let i = 0; i < 40; i++) {
            const [away, here] = await ways();
            if (away > 0 && here > 0) {
                break;
            }
            /* the fresh sessions above linger too */
            const was = await metric('pushd_sessions_lingering');
            c.back.destroy();
            await L.waitFor(async () => await metric(
                'pushd_sessions_lingering') === was + 1, 5000, 'lingering');
            c.back = await W.rawOpen(d.roomPort, c.uid, 'phone',
                                     { extra: `sid=${c.sid}` });
            assert.strictEqual(c.back.welcome.resumed, true, 'a flap');
            assert.strictEqual(c.back.welcome.sid, c.sid, 'its sid still');
        }
        const [away, here] = await ways();
        assert.ok(away > 0 && here > 0, `resumes handed ${away}, here ${here}`);
        for (const x of clients) {
            x.back.destroy();
        }
        api.close();
    });
}

test('a flash reconnect after a hand-over resumes with the sid it holds',
     T, (t) => resumeAfter(t, 1));

test('a flash reconnect after two reloads resumes with the sid it holds',
     T, (t) => resumeAfter(t, 2));
