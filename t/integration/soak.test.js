'use strict';
/*
 * soak.test.js: no loss under churn.  Thousands of qos 1 pushes (most
 * to one uid, some multicast) go out while the clients of those uids
 * connect and disconnect at random, cleanly or abruptly, acking most of
 * what they get.  Then every uid connects one last time.  Every message
 * accepted with 200 must have reached each of its uids at least once
 * (with a high max_redeliveries and a long ttl nothing may be dropped or
 * expired), no uid may get a message that was not for it, and once all
 * is acked the store is empty.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');
const W = require('./ws_client.js');

const OP = W.OP;
const NUIDS = 30;
const NPUSH = 3000;
const RATE = 250;           /* pushes per second: about 12 s of churn */
const INFLIGHT = 6;

const isMsg = (f) => f.json && f.json.op === 'msg';
const rand = (a, b) => a + Math.floor(Math.random() * (b - a + 1));

/*
 * A uid's side: every connection hands its msg frames to take(), which
 * records them and acks (most of) them at once.
 */
function makeUser(uid) {
    return {
        uid,
        got: new Map(),        /* id -> data, first seen */
        frames: 0,             /* msg frames, duplicates included */
        sessions: 0,
        errors: [],
        ws: null,
    };
}

function take(u, ws, f, ackRatio) {
    u.frames++;
    if (!u.got.has(f.json.id)) {
        u.got.set(f.json.id, f.json.data);
    }
    if (Math.random() < ackRatio) {
        try {
            ws.sendJson({ op: 'ack', ids: [f.json.id] });
        } catch (e) {
            /* the socket is going away: it comes again later */
        }
    }
}

/* opens a connection for u whose msg frames go to take() as they come */
async function attach(d, u, device, ackRatio) {
    const ws = await W.rawOpen(d.roomPort, u.uid, device, { apps: ['a'] });
    u.sessions++;
    for (const f of ws.frames.items.filter(isMsg)) {
        take(u, ws, f, ackRatio);
    }
    ws.frames.items = ws.frames.items.filter((f) => !isMsg(f));
    const push = ws.frames.push.bind(ws.frames);
    ws.frames.push = (f) => (isMsg(f) ? take(u, ws, f, ackRatio) : push(f));
    return ws;
}

/* connect, stay a while, leave (cleanly or not), stay away a while */
async function churn(d, u, stop) {
    for (let n = 0; !stop.now; n++) {
        let ws;
        try {
            ws = await attach(d, u, `c${n}`, 0.9);
        } catch (e) {
            u.errors.push(e.message);
            await L.delay(50);
            continue;
        }
        await L.delay(rand(50, 700));
        if (Math.random() < 0.5) {
            ws.send({ opcode: OP.CLOSE, payload: Buffer.from([0x03, 0xe8]) });
            await ws.waitEnd(2000);
        }
        ws.destroy();
        await L.delay(rand(20, 400));
    }
}

test('soak: every qos 1 message accepted with 200 reaches each of its '
     + 'uids under connect/disconnect churn', { timeout: 120000 },
     async (t) => {
    await L.withPushd({
        workers: 2,
        top: {
            register: { memory: '8m' },
            saver: { memory: '64m', max_redeliveries: 1000, ttl: '1d',
                     max_per_mailbox: 10000 },
        },
        room: { auth_secret: W.SECRET, max_connections_per_ip: 0 },
    }, async (d) => {
        const users = [];
        for (let i = 0; i < NUIDS; i++) {
            users.push(makeUser(`soak${i}`));
        }
        const stop = { now: false };
        const churners = users.map((u) => churn(d, u, stop));

        /* the pushes, paced, a few in flight */
        const sent = [];                  /* {k, uids, status, id, body} */
        const t0 = Date.now();
        let next = 0;
        const pusher = async () => {
            while (next < NPUSH) {
                const k = next++;
                const wait = t0 + k * (1000 / RATE) - Date.now();
                if (wait > 0) {
                    await L.delay(wait);
                }
                const n = Math.random() < 0.2 ? rand(2, 4) : 1;
                const uids = new Set();
                while (uids.size < n) {
                    uids.add(users[rand(0, NUIDS - 1)].uid);
                }
                const list = [...uids];
                const body = `{"app":"a","uids":${JSON.stringify(list)},`
                           + `"qos":1,"data":{"k" : ${k} , "u":`
                           + `${JSON.stringify(list)}}}`;
                const rec = { k, uids: list };
                sent[k] = rec;
                try {
                    const r = await L.centerPost(d, '/v1/push', body);
                    rec.status = r.status;
                    rec.body = r.body;
                    if (r.status === 200) {
                        rec.id = r.json.id;
                        rec.stored = r.json.stored;
                    }
                } catch (e) {
                    rec.status = 0;
                    rec.body = e.message;
                }
            }
        };
        await Promise.all(Array.from({ length: INFLIGHT }, pusher));
        const pushMs = Date.now() - t0;

        const liveGot = users.reduce((n, u) => n + u.got.size, 0);
        stop.now = true;
        await Promise.all(churners);
        for (const u of users) {
            /* gone, or lingering for a resume (room.linger) */
            await L.waitFor(async () => (await L.centerGet(d,
                `/v1/users/${u.uid}`)).json.connections.every(
                (c) => c.state === 'lingering'), 5000,
                `${u.uid} offline after the churn`);
        }

        /* the refusals, if any, with what the daemon said */
        const bad = sent.filter((s) => s.status !== 200);
        assert.deepStrictEqual(bad.slice(0, 5).map((s) =>
            `${s.status} ${s.body}`), [], `${bad.length} of ${NPUSH} `
            + 'pushes were not accepted (no limit is configured)');
        for (const s of sent) {
            assert.strictEqual(s.stored, s.uids.length,
                               `push ${s.k} stored for every uid: ${s.body}`);
        }

        /* what each uid must get: id -> k */
        const want = new Map(users.map((u) => [u.uid, new Map()]));
        const kOf = new Map();
        for (const s of sent) {
            kOf.set(s.id, s.k);
            for (const uid of s.uids) {
                want.get(uid).set(s.id, s.k);
            }
        }
        assert.strictEqual(kOf.size, NPUSH, 'every accepted id is unique');

        /* one last connection each, acking everything, until complete */
        const last = [];
        for (const u of users) {
            last.push(await attach(d, u, 'final', 1));
        }
        const missing = () => {
            const out = [];
            for (const u of users) {
                for (const id of want.get(u.uid).keys()) {
                    if (!u.got.has(id)) {
                        out.push(`${u.uid}:${id}`);
                    }
                }
            }
            return out;
        };
        try {
            await L.waitFor(() => missing().length === 0, 30000,
                            'every accepted message at its uids');
        } catch (e) {
            const m = missing();
            const met = await L.metrics(d);
            e.message += `\n${m.length} (uid, message) pairs never arrived, `
                       + `e.g. ${m.slice(0, 10).join(' ')}; dropped_noack `
                       + `${met.get('pushd_store_dropped_noack_total')}, `
                       + `expired ${met.get('pushd_store_expired_total')}, `
                       + `store ${met.get('pushd_store_messages')}`;
            throw e;
        }

        /* nothing for the wrong uid, and the data that was sent */
        for (const u of users) {
            for (const [id, data] of u.got) {
                assert.ok(want.get(u.uid).has(id),
                          `${u.uid} got ${id}, not addressed to it `
                          + `(${JSON.stringify(data)})`);
                assert.deepStrictEqual(data, {
                    k: kOf.get(id),
                    u: sent[kOf.get(id)].uids,
                }, `the data of ${id} at ${u.uid}`);
            }
        }

        /* all acked: the store drains; nothing dropped or expired */
        await L.waitFor(async () => (await L.metrics(d))
                        .get('pushd_store_messages') === 0, 15000,
                        'the store to be empty once all is acked');
        const m = await L.metrics(d);
        assert.strictEqual(m.get('pushd_store_dropped_noack_total'), 0);
        assert.strictEqual(m.get('pushd_store_expired_total'), 0);

        const pairs = sent.reduce((n, s) => n + s.uids.length, 0);
        const sessions = users.reduce((n, u) => n + u.sessions, 0);
        const frames = users.reduce((n, u) => n + u.frames, 0);
        const errors = users.flatMap((u) => u.errors);
        t.diagnostic(`${NPUSH} pushes (${pairs} uid deliveries) in `
                     + `${pushMs} ms; ${sessions} sessions; ${liveGot} `
                     + `arrived during the churn; ${frames} msg frames in `
                     + `all; redelivered `
                     + `${m.get('pushd_messages_redelivered_total')}; `
                     + `${errors.length} failed connects`);
        /* the churn did churn, and delivered along the way */
        assert.ok(sessions >= NUIDS * 5, `${sessions} sessions`);
        assert.ok(liveGot > 0, 'messages arrived during the churn');
        assert.ok(errors.length <= sessions / 10,
                  `connects mostly worked: ${errors.slice(0, 3)}`);
        for (const ws of last) {
            ws.destroy();
        }
    });
});
