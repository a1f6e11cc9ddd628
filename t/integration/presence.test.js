'use strict';
/*
 * presence.test.js: the register as the center sees it: presence of a
 * uid's connections on every worker, bind/unbind, kick of one device
 * or of all across workers, a killed worker's entries purged by the
 * master (and its per-IP counts released), and the center's refusals.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 60000 };
const OP = W.OP;

function conf(room = {}, more = {}) {
    return Object.assign({
        workers: 2,
        top: { register: { memory: '8m' } },
        room: Object.assign({ auth_secret: W.SECRET }, room),
    }, more);
}

async function presence(d, uid) {
    const r = await L.centerGet(d, `/v1/users/${encodeURIComponent(uid)}`);
    assert.strictEqual(r.status, 200, r.body);
    return r.json;
}

/* {device: connection} of a presence answer */
function byDevice(p) {
    const m = {};
    for (const c of p.connections) {
        m[c.device] = c;
    }
    return m;
}

/* POST /v1/users/{uid}/kick; body an object, a raw string or none */
async function kick(d, uid, body, auth = true) {
    const h = {};
    if (auth) {
        h.Authorization = `Bearer ${d.apiKey}`;
    }
    let text;
    if (body !== undefined) {
        h['Content-Type'] = 'application/json';
        text = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const r = await L.request(d.centerPort, 'POST',
                              `/v1/users/${encodeURIComponent(uid)}/kick`,
                              h, text);
    try {
        r.json = JSON.parse(r.body);
    } catch (e) {
        r.json = null;
    }
    return r;
}

/* slot -> pid from /v1/stats */
async function slotPids(d) {
    const r = await L.centerGet(d, '/v1/stats');
    const m = {};
    for (const w of r.json.workers) {
        m[w.slot] = w.pid;
    }
    return m;
}

/* opens n raw clients uid/<prefix><i>, returns them */
async function openMany(d, uid, n, prefix = 'd', opts = {}) {
    const out = [];
    for (let i = 0; i < n; i++) {
        out.push(await W.rawOpen(d.roomPort, uid, `${prefix}${i}`, opts));
    }
    return out;
}

/* the client answers a ping: still connected and served */
async function alive(ws, what) {
    ws.sendJson({ op: 'ping' });
    const f = await ws.next((x) => x.json && x.json.op === 'pong'
                                  || x.opcode === OP.CLOSE, 5000,
                            `a pong from ${what}`);
    assert.strictEqual(f.json && f.json.op, 'pong',
                       `${what} is served, got close ${f.code}`);
}

/* ------------------------------------------------------------------ */

test('presence: an offline uid, one connection with its fields, '
     + 'lingering after an abrupt close', T, async () => {
    await L.withPushd(conf(), async (d) => {
        assert.deepStrictEqual(await presence(d, 'nobody'),
                               { uid: 'nobody', online: false,
                                 connections: [] });

        const before = Date.now();
        const c = await W.rawOpen(d.roomPort, 'pu', 'p1',
                                  { apps: ['chat', 'news'] });
        const p = await presence(d, 'pu');
        assert.strictEqual(p.uid, 'pu');
        assert.strictEqual(p.online, true);
        assert.strictEqual(p.connections.length, 1, JSON.stringify(p));
        const e = p.connections[0];
        assert.strictEqual(e.device, 'p1');
        assert.deepStrictEqual([...e.apps].sort(), ['chat', 'news']);
        const st = (await L.centerGet(d, '/v1/stats')).json;
        assert.strictEqual(typeof e.node, 'string');
        assert.strictEqual(e.node, st.node, 'the node of this host');
        assert.strictEqual(typeof e.since, 'number');
        /* seconds or milliseconds, but now-ish */
        const sinceMs = e.since < 1e11 ? e.since * 1000 : e.since;
        assert.ok(sinceMs >= before - 2000 && sinceMs <= Date.now() + 2000,
                  `since ${e.since} is the connect time (now ${Date.now()})`);
        assert.ok(e.worker === 0 || e.worker === 1, `worker ${e.worker}`);

        /* the worker slot is the process holding the socket */
        const owner = L.connOwner(d.roomPort, c.sock.localPort);
        const pids = await slotPids(d);
        assert.strictEqual(owner, pids[e.worker],
                           `slot ${e.worker} is pid ${pids[e.worker]}, the `
                           + `socket is held by ${owner}`);

        /* another uid is not mixed in */
        assert.strictEqual((await presence(d, 'pu2')).online, false);

        /* gone without a close frame: the session lingers for a resume,
         * listed as such, not online */
        c.destroy();
        await L.waitFor(async () => {
            const q = await presence(d, 'pu');
            return q.online === false && q.connections.length === 1
                && q.connections[0].state === 'lingering';
        }, 5000, 'pu lingering after its client went away');
    });
});

test('bind and unbind change the apps presence lists', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const c = await W.connect(d.roomPort, 'bu', 'b1', { apps: ['a'] });
        const apps = async () => [...byDevice(await presence(d, 'bu')).b1
            .apps].sort();
        assert.deepStrictEqual(await apps(), ['a']);

        c.send({ op: 'bind', app: 'x' });
        await L.waitFor(async () => (await apps()).join() === 'a,x', 5000,
                        'apps a,x after bind x');
        c.send({ op: 'bind', app: 'y' });
        c.send({ op: 'unbind', app: 'a' });
        await L.waitFor(async () => (await apps()).join() === 'x,y', 5000,
                        'apps x,y after bind y, unbind a');
        c.send({ op: 'unbind', app: 'x' });
        c.send({ op: 'unbind', app: 'y' });
        await L.waitFor(async () => (await apps()).length === 0, 5000,
                        'no apps after unbinding all');
        /* no error frame for any of these, and still served */
        c.send({ op: 'ping' });
        await c.op('pong');
        assert.ok(!c.msgs.items.some((m) => m.op === 'error'),
                  JSON.stringify(c.msgs.items));
        c.close();
    });
});

test('connections on both workers; kick one device, then all, across '
     + 'workers', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const cs = await openMany(d, 'kk', 20);
        const other = await W.rawOpen(d.roomPort, 'kk-other', 'o1');
        const p = await presence(d, 'kk');
        assert.strictEqual(p.connections.length, 20, JSON.stringify(p));
        const slots = byDevice(p);
        const used = new Set(p.connections.map((c) => c.worker));
        assert.deepStrictEqual([...used].sort(), [0, 1],
                               'the 20 connections are on both workers');

        /* one device on each worker, with a reason */
        const k0 = cs.findIndex((c, i) => slots[`d${i}`].worker === 0);
        const k1 = cs.findIndex((c, i) => slots[`d${i}`].worker === 1);
        for (const k of [k0, k1]) {
            const r = await kick(d, 'kk', { device: `d${k}`,
                                            reason: `bye d${k}` });
            assert.strictEqual(r.status, 200, r.body);
            assert.deepStrictEqual(r.json, { uid: 'kk', kicked: 1 });
            const m = await cs[k].op('kick');
            assert.deepStrictEqual(m, { op: 'kick', reason: `bye d${k}` });
            const cf = await cs[k].closeFrame();
            assert.strictEqual(cf.code, 1008);
            assert.strictEqual(cf.reason, 'kicked');
            assert.ok(await cs[k].waitEnd(5000), 'TCP ends after the kick');
        }
        /* nobody else heard of it */
        for (const [i, c] of cs.entries()) {
            if (i !== k0 && i !== k1) {
                assert.ok(!c.frames.items.some((f) => f.opcode === OP.CLOSE
                                                || (f.json
                                                    && f.json.op === 'kick')),
                          `d${i} untouched`);
                await alive(c, `d${i}`);
            }
        }
        await L.waitFor(async () => (await presence(d, 'kk'))
                        .connections.length === 18, 5000,
                        '18 connections left in presence');

        /* a device with no connection kicks nothing */
        const none = await kick(d, 'kk', { device: 'no-such' });
        assert.strictEqual(none.status, 200, none.body);
        assert.deepStrictEqual(none.json, { uid: 'kk', kicked: 0 });

        /* all of the uid, no body at all */
        const all = await kick(d, 'kk');
        assert.strictEqual(all.status, 200, all.body);
        assert.deepStrictEqual(all.json, { uid: 'kk', kicked: 18 });
        for (const [i, c] of cs.entries()) {
            if (i === k0 || i === k1) {
                continue;
            }
            const m = await c.op('kick');
            assert.strictEqual(typeof m.reason, 'string', JSON.stringify(m));
            const cf = await c.closeFrame();
            assert.strictEqual(cf.code, 1008, `d${i} (worker `
                               + `${slots[`d${i}`].worker})`);
            assert.strictEqual(cf.reason, 'kicked');
        }
        await L.waitFor(async () => {
            const q = await presence(d, 'kk');
            return !q.online && q.connections.length === 0;
        }, 5000, 'kk offline after the kick');

        /* the other uid stays */
        await alive(other, 'kk-other');
        assert.strictEqual((await presence(d, 'kk-other')).online, true);
        other.destroy();
    });
});

test('kick with the built-in client: kick frame, then close 1008 '
     + '"kicked"', T, async () => {
    await L.withPushd(conf(), async (d) => {
        const cs = [];
        for (let i = 0; i < 6; i++) {
            cs.push(await W.connect(d.roomPort, 'kb', `d${i}`));
        }
        const r = await kick(d, 'kb', { reason: 'maintenance' });
        assert.deepStrictEqual(r.json, { uid: 'kb', kicked: 6 });
        for (const c of cs) {
            assert.deepStrictEqual(await c.op('kick'),
                                   { op: 'kick', reason: 'maintenance' });
            const info = await c.waitClose(5000);
            assert.strictEqual(info.code, 1008);
            assert.strictEqual(info.reason, 'kicked');
        }
        /* a kicked device may come back */
        const back = await W.connect(d.roomPort, 'kb', 'd0');
        assert.strictEqual(back.welcome.op, 'welcome');
        back.close();
    });
});

test('center: presence and kick need the key; bad kick bodies get 400',
     T, async () => {
    await L.withPushd(conf(), async (d) => {
        const c = await W.rawOpen(d.roomPort, 'sec', 'd1');
        const noKey = await L.request(d.centerPort, 'GET', '/v1/users/sec');
        assert.strictEqual(noKey.status, 401);
        const badKey = await L.request(d.centerPort, 'GET', '/v1/users/sec',
            { Authorization: 'Bearer wrong-key-0123456789' });
        assert.strictEqual(badKey.status, 401);
        const k = await kick(d, 'sec', { reason: 'x' }, false);
        assert.strictEqual(k.status, 401);
        for (const body of ['{bad', '[1]', '{"device":5}',
                            '{"reason":["x"]}']) {
            const r = await kick(d, 'sec', body);
            assert.strictEqual(r.status, 400, `${body}: ${r.status} ${r.body}`);
            assert.strictEqual(typeof (r.json && r.json.error), 'string',
                               r.body);
        }
        /* nothing was kicked by all that */
        await alive(c, 'sec/d1');
        assert.strictEqual((await presence(d, 'sec')).connections.length, 1);
        c.destroy();
    });
});

test('a killed worker: its entries leave presence, the others stay, the '
     + 'new worker serves', { timeout: 90000 }, async () => {
    await L.withPushd(conf(), async (d) => {
        const cs = await openMany(d, 'kw', 20);
        const p = await presence(d, 'kw');
        assert.strictEqual(p.connections.length, 20);
        const slot = {};
        for (const c of p.connections) {
            slot[c.device] = c.worker;
        }
        const on0 = cs.filter((c, i) => slot[`d${i}`] === 0).length;
        const victimSlot = on0 > 0 ? 0 : 1;
        const pids = await slotPids(d);
        const victim = pids[victimSlot];
        const dead = [], kept = [];
        cs.forEach((c, i) => (slot[`d${i}`] === victimSlot ? dead : kept)
                   .push(`d${i}`));
        assert.ok(dead.length > 0 && kept.length > 0,
                  `both workers hold some: ${JSON.stringify(slot)}`);

        process.kill(victim, 'SIGKILL');
        for (const dev of dead) {
            assert.ok(await cs[Number(dev.slice(1))].waitEnd(5000),
                      `${dev}'s TCP connection ends with its worker`);
        }
        await L.waitFor(async () => {
            const q = await presence(d, 'kw');
            return q.connections.map((c) => c.device).sort().join()
                === [...kept].sort().join();
        }, 10000, `presence to list only ${kept.join(',')}`);
        for (const dev of kept) {
            await alive(cs[Number(dev.slice(1))], dev);
        }

        /* a respawned worker takes the slot and serves new clients */
        const fresh = await L.waitFor(() => {
            const now = d.workerPids();
            return now.length === 2 && !now.includes(victim) ? now : null;
        }, 5000, 'a respawned worker');
        const newPid = fresh.find((x) => x !== pids[1 - victimSlot]);
        await L.waitFor(async () => (await slotPids(d))[victimSlot]
                        === newPid, 5000,
                        `slot ${victimSlot} to be pid ${newPid} in stats`);
        const more = [];
        const onNew = await L.waitFor(async () => {
            const c = await W.rawOpen(d.roomPort, 'kw', `n${more.length}`);
            more.push(c);
            const q = byDevice(await presence(d, 'kw'));
            const e = q[`n${more.length - 1}`];
            assert.ok(e, 'the new connection is in presence');
            return e.worker === victimSlot ? c : null;
        }, 10000, `a new connection on slot ${victimSlot}`);
        assert.strictEqual(L.connOwner(d.roomPort, onNew.sock.localPort),
                           newPid);
        await alive(onNew, 'a client of the respawned worker');
        for (const c of [...cs, ...more]) {
            c.destroy();
        }
    });
});

test('a killed worker\'s connections no longer count against '
     + 'max_connections_per_ip', { timeout: 90000 }, async () => {
    await L.withPushd(conf({ max_connections_per_ip: 8 }), async (d) => {
        const cs = await openMany(d, 'kip', 8);
        const full = await W.rawConnect(d.roomPort,
                                        W.connectPath('kip', 'x'));
        assert.strictEqual(full.status, 429, 'the limit holds before');
        const p = await presence(d, 'kip');
        const pids = await slotPids(d);
        const count = [0, 0];
        for (const c of p.connections) {
            count[c.worker]++;
        }
        const victimSlot = count[0] > 0 ? 0 : 1;
        process.kill(pids[victimSlot], 'SIGKILL');
        await L.waitFor(async () => (await presence(d, 'kip'))
                        .connections.length === 8 - count[victimSlot],
                        10000, 'the dead worker\'s entries purged');
        /* exactly as many new connections as died fit again */
        const more = [];
        for (let i = 0; i < count[victimSlot]; i++) {
            more.push(await L.waitFor(async () => {
                const r = await W.rawConnect(d.roomPort,
                                             W.connectPath('kip', `m${i}`));
                return r.status === 101 ? r.ws : null;
            }, 10000, `new connection ${i + 1} of ${count[victimSlot]} `
               + 'after the kill'));
        }
        const again = await W.rawConnect(d.roomPort,
                                         W.connectPath('kip', 'y'));
        assert.strictEqual(again.status, 429, 'full again');
        for (const c of [...cs, ...more]) {
            c.destroy();
        }
    });
});

test('stats: per-worker connections follow the WebSockets', T, async () => {
    await L.withPushd(conf(), async (d) => {
        /* WebSockets, exactly: "connections" also counts the center's
         * own, and one closed by the previous probe may not be gone yet */
        const conns = async () => (await L.centerGet(d, '/v1/stats')).json
            .workers.reduce((n, w) => n + w.websockets, 0);
        const base = await conns();
        const cs = await openMany(d, 'sc', 10);
        await L.waitFor(async () => await conns() === base + 10, 5000,
                        `connections ${base} + 10`);
        const st = (await L.centerGet(d, '/v1/stats')).json;
        const q = await presence(d, 'sc');
        for (const w of st.workers) {
            const here = q.connections.filter((c) => c.worker === w.slot)
                .length;
            assert.ok(w.connections >= here, `worker ${w.slot} counts `
                      + `${w.connections}, presence has ${here} there`);
        }
        for (const c of cs) {
            c.destroy();
        }
        await L.waitFor(async () => await conns() === base, 5000,
                        `connections back to ${base}`);
    });
});
