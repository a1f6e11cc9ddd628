'use strict';
/*
 * cluster.test.js: three pushd nodes on one Redis (register.backend:
 * redis): a client on one node is reached by the API of another, presence
 * and kick work across nodes, a broadcast reaches every node once, a
 * SIGKILLed node's users vanish within node_ttl, and a Redis restart is
 * survived (the nodes reconnect and announce their sessions again);
 * qos 1 through Redis and PostgreSQL, and saver.redis, the store on a
 * Redis of its own.  The test starts its own redis-server and
 * PostgreSQL on free ports; without them it is skipped, which make
 * test counts as a failure (PD_TEST_STRICT).  A request that gets no
 * answer while a server is away is a failure, never taken for a
 * refusal; faults under a stream of qos 1 with reconnecting clients are
 * in cluster_faults.test.js.
 */

const test = require('node:test');
const assert = require('node:assert');
const cp = require('node:child_process');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 120000 };

function haveRedis() {
    return cp.spawnSync('redis-server', ['--version']).status === 0;
}

/* PostgreSQL's binaries: Debian keeps them out of PATH */
function pgBin() {
    const fs = require('node:fs');
    const root = '/usr/lib/postgresql';
    if (!fs.existsSync(root)) {
        return null;
    }
    const v = fs.readdirSync(root).sort().pop();
    return v ? `${root}/${v}/bin` : null;
}

/*
 * A throw-away PostgreSQL on a free port (as the postgres user when we
 * are root: it refuses to run as root); {port, stop(), start()}.
 */
async function startPostgres() {
    const fs = require('node:fs');
    const os = require('node:os');
    const path = require('node:path');
    const bin = pgBin();
    const port = await L.freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushd-pg-'));
    const asPg = process.getuid() === 0;
    const run = (cmd, args) => {
        const full = asPg ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]]
                          : [cmd, args];
        const r = cp.spawnSync(full[0], full[1], { encoding: 'utf8' });
        if (r.status !== 0) {
            throw new Error(`${cmd} failed: ${r.stderr}`);
        }
    };
    if (asPg) {
        cp.spawnSync('chown', ['postgres', dir]);
    }
    run(`${bin}/initdb`, ['-D', `${dir}/data`, '-A', 'trust', '-U',
                          'postgres']);
    const pg = {
        port,
        /* one statement through psql; its output, trimmed */
        sql: (q) => {
            const r = cp.spawnSync(`${bin}/psql`,
                                   ['-h', '127.0.0.1', '-p', String(port),
                                    '-U', 'postgres', '-d', 'postgres',
                                    '-Atc', q], { encoding: 'utf8' });
            if (r.status !== 0) {
                throw new Error(`psql failed: ${r.stderr}`);
            }
            return r.stdout.trim();
        },
        start: async () => {
            run(`${bin}/pg_ctl`, ['-D', `${dir}/data`, '-w', '-l',
                                  `${dir}/log`, '-o',
                                  `-p ${port} -k ${dir} `
                                  + '-c listen_addresses=127.0.0.1',
                                  'start']);
            await L.waitFor(() => L.tcpConnects(port), 10000, 'postgres');
        },
        stop: () => {
            try {
                run(`${bin}/pg_ctl`, ['-D', `${dir}/data`, '-m', 'fast',
                                      '-w', 'stop']);
            } catch (e) {
                /* not running */
            }
        },
        remove: () => {
            pg.stop();
            fs.rmSync(dir, { recursive: true, force: true });
        },
    };
    await pg.start();
    return pg;
}

async function startRedis(port) {
    const child = cp.spawn('redis-server',
                           ['--port', String(port), '--save', '',
                            '--appendonly', 'no', '--bind', '127.0.0.1'],
                           { stdio: 'ignore' });
    await L.waitFor(() => L.tcpConnects(port), 10000, 'redis-server');
    return child;
}

async function stopRedis(child) {
    if (child.exitCode === null) {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
    }
}

function node(name, redisPort, pgPort, saverExtra = {}) {
    const saver = { memory: '8m', ...saverExtra };
    if (pgPort) {
        Object.assign(saver, {
            backend: 'redis', timeout: '1s',
            postgres: `host=127.0.0.1 port=${pgPort} dbname=postgres `
                      + 'user=postgres',
        });
    }
    return {
        workers: 2,
        top: {
            node_id: name,
            register: { backend: 'redis', redis: [`127.0.0.1:${redisPort}`],
                        memory: '8m', node_ttl: '3s', timeout: '500ms' },
            saver,
        },
        room: { auth_secret: W.SECRET },
    };
}

/* a push of app "chat" through d that every uid's store took: its id */
async function pushStored(d, uids, data) {
    const r = await L.centerPost(d, '/v1/push', { app: 'chat', uids, data });
    assert.strictEqual(r.status, 200, r.body);
    assert.strictEqual(r.json.stored, uids.length, r.body);
    return r.json.id;
}

/*
 * The uid's presence through d.  With noAnswer, a request that got no
 * answer (a socket error, a timeout) is put there, for the test to fail
 * on, and a 503 or the like throws: inside L.waitFor both would only be
 * tried again, and a no-answer must not pass for a refusal.
 */
async function presence(d, uid, noAnswer) {
    let r;
    try {
        r = await L.centerGet(d, `/v1/users/${uid}`, { timeout: 5000 });
    } catch (e) {
        if (noAnswer) {
            noAnswer.push(`presence of ${uid}: ${e.message}`);
        }
        throw e;
    }
    assert.strictEqual(r.status, 200, r.body);
    return JSON.parse(r.body);
}

/* three nodes and their own redis (and postgres); fn(nodes, redis, pg) */
async function withCluster(fn, withPg = false, saverExtra = {}) {
    const redisPort = await L.freePort();
    let redis = await startRedis(redisPort);
    const pg = withPg ? await startPostgres() : null;
    const nodes = [];
    try {
        for (const name of ['node-a', 'node-b', 'node-c']) {
            nodes.push(await L.startPushd(node(name, redisPort,
                                               pg && pg.port, saverExtra)));
        }
        try {
            await fn(nodes, {
                port: redisPort,
                restart: async () => {
                    await stopRedis(redis);
                    redis = await startRedis(redisPort);
                },
                stop: () => stopRedis(redis),
                start: async () => {
                    redis = await startRedis(redisPort);
                },
            }, pg);
        } catch (e) {
            for (const d of nodes) {
                await d.stop();
            }
            throw e;
        }
        /* the sanitizer and signal scans of every node */
        await L.stopAllChecked(nodes);
    } finally {
        for (const d of nodes) {
            d.killHard();
        }
        await stopRedis(redis);
        if (pg) {
            pg.remove();
        }
    }
}

test('cluster: push, presence, kick and broadcast across three nodes',
     { ...T, skip: !haveRedis() && 'redis-server is not installed' },
     async () => {
    await withCluster(async ([a, b, c]) => {
        const cb = await W.connect(b.roomPort, 'zoe', 'phone',
                                   { apps: ['chat'] });
        const cc = await W.connect(c.roomPort, 'zoe', 'tablet',
                                   { apps: ['chat'] });

        /* presence from the third node lists both, with their nodes */
        const p = await L.waitFor(async () => {
            const v = await presence(a, 'zoe');
            return v.connections.length === 2 && v;
        }, 10000, 'presence of both sessions on node-a');
        assert.deepStrictEqual(p.connections.map((x) => x.node).sort(),
                               ['node-b', 'node-c']);
        assert.deepStrictEqual(p.connections.map((x) => x.device).sort(),
                               ['phone', 'tablet']);

        /* a push through node-a reaches the sessions on b and c */
        const r = await L.centerPost(a, '/v1/push', {
            app: 'chat', uids: ['zoe'], data: { n: 1 }, qos: 0,
        });
        assert.strictEqual(r.status, 200, r.body);
        assert.strictEqual(r.json.online, 1, r.body);
        for (const cl of [cb, cc]) {
            const m = await cl.op('msg', 5000);
            assert.strictEqual(m.id, r.json.id);
            assert.deepStrictEqual(m.data, { n: 1 });
        }

        /* a broadcast through node-c reaches every node's sessions once */
        const ca = await W.connect(a.roomPort, 'yan', 'phone',
                                   { apps: ['chat'] });
        const br = await L.centerPost(c, '/v1/broadcast', {
            app: 'chat', data: 'all', qos: 0,
        });
        assert.strictEqual(br.status, 200, br.body);
        for (const cl of [ca, cb, cc]) {
            const m = await cl.op('msg', 5000);
            assert.strictEqual(m.id, br.json.id);
        }
        for (const cl of [ca, cb, cc]) {
            await assert.rejects(cl.next((m) => m.op === 'msg', 500),
                                 'a broadcast arrives once');
        }

        /* kick through node-a closes both, wherever they are */
        const k = await L.centerPost(a, '/v1/users/zoe/kick',
                                     { reason: 'bye' });
        assert.strictEqual(k.status, 200, k.body);
        assert.strictEqual(k.json.kicked, 2, k.body);
        for (const cl of [cb, cc]) {
            const m = await cl.op('kick', 5000);
            assert.strictEqual(m.reason, 'bye');
            const cl2 = await cl.waitClose(5000);
            assert.strictEqual(cl2.code, 1008);
        }
        await L.waitFor(async () => !(await presence(b, 'zoe')).online,
                        5000, 'zoe offline everywhere');
        ca.close();
    });
});

test('cluster: a killed node\'s users vanish within node_ttl; a Redis '
     + 'restart is survived', { ...T, skip: !haveRedis()
                                && 'redis-server is not installed' },
     async () => {
    await withCluster(async ([a, b, c], redis) => {
        const noAnswer = [];
        const cb = await W.connect(b.roomPort, 'kim', 'phone',
                                   { apps: ['chat'] });
        const cc = await W.connect(c.roomPort, 'kim', 'tablet',
                                   { apps: ['chat'] });
        await L.waitFor(async () => (await presence(a, 'kim', noAnswer))
                        .connections.length === 2, 10000, 'both sessions');

        /* node-b dies without a word: within node_ttl (3 s) its session
         * is gone from presence, node-c's stays */
        const t0 = Date.now();
        b.killHard();
        await L.waitFor(async () => {
            const v = await presence(a, 'kim', noAnswer);
            return v.connections.length === 1
                && v.connections[0].node === 'node-c';
        }, 8000, 'node-b\'s session to vanish');
        assert.ok(Date.now() - t0 < 8000, 'within node_ttl and slack');

        /* Redis loses everything; the nodes reconnect by themselves and
         * announce their sessions again */
        await redis.restart();
        await L.waitFor(async () => {
            const v = await presence(a, 'kim', noAnswer);
            return v.connections.length === 1
                && v.connections[0].node === 'node-c';
        }, 15000, 'node-c\'s session back in the register');

        const r = await L.centerPost(a, '/v1/push', {
            app: 'chat', uids: ['kim'], data: 'after', qos: 0,
        });
        assert.strictEqual(r.status, 200, r.body);
        const m = await cc.op('msg', 5000);
        assert.strictEqual(m.data, 'after');
        assert.deepStrictEqual(noAnswer, [], 'requests with no answer');
        cc.close();
        cb.close();
    });
});

const PG = { ...T, skip: (!haveRedis() || !pgBin())
                         && 'redis-server or postgresql is not installed' };

/* collects msg frames, acking each; resolves when n distinct ids came */
async function collect(cl, n, ms) {
    const ids = new Set();
    while (ids.size < n) {
        const m = await cl.op('msg', ms);
        cl.send({ op: 'ack', ids: [m.id] });
        ids.add(m.id);
    }
    return ids;
}

test('cluster qos 1: stored through one node, delivered on another, '
     + 'acked once; Redis loses its data and PostgreSQL brings it back',
     PG, async () => {
    await withCluster(async ([a, b, c], redis, pg) => {
        /* node-a stores for an offline uid: Redis and PostgreSQL, the
         * row committed before the 200 */
        const ids = [];
        const rows = (uid) => Number(pg.sql(
            `SELECT count(*) FROM pd_messages WHERE uid = '${uid}'`));
        for (let i = 0; i < 5; i++) {
            const r = await L.centerPost(a, '/v1/push', {
                app: 'chat', uids: ['lea'], data: { i },
            });
            assert.strictEqual(r.status, 200, r.body);
            assert.strictEqual(r.json.stored, 1, r.body);
            ids.push(r.json.id);
            assert.strictEqual(rows('lea'), i + 1, 'in PostgreSQL at the 200');
        }
        assert.strictEqual(pg.sql('SELECT data FROM pd_messages WHERE '
                                  + `id = '${ids[2]}'`), '{"i":2}');

        /* the uid connects to node-b: all five, in order, unacked */
        let cl = await W.connect(b.roomPort, 'lea', 'phone',
                                 { apps: ['chat'] });
        const got = [];
        for (let i = 0; i < 5; i++) {
            got.push((await cl.op('msg', 5000)).id);
        }
        assert.deepStrictEqual(got, ids, 'in order');
        cl.close();
        await cl.waitClose();

        /* Redis restarts empty: the unacked ones come back from
         * PostgreSQL, and a client on node-c gets them and acks */
        await redis.restart();
        cl = await L.waitFor(async () => {
            const x = await W.connect(c.roomPort, 'lea', 'tablet',
                                      { apps: ['chat'] });
            const m = await x.op('msg', 1500).catch(() => null);
            if (!m) {
                x.close();
                return null;
            }
            x.first = m;
            return x;
        }, 20000, 'the stored messages after the Redis restart');
        const seen = new Set([cl.first.id]);
        cl.send({ op: 'ack', ids: [cl.first.id] });
        for (const id of await collect(cl, 4, 5000)) {
            seen.add(id);
        }
        assert.deepStrictEqual([...seen].sort(), [...ids].sort());
        cl.close();
        await cl.waitClose();

        /* an ack deletes the row */
        await L.waitFor(() => rows('lea') === 0, 10000,
                        'the acked rows deleted from PostgreSQL');

        /* acked: never again */
        cl = await W.connect(a.roomPort, 'lea', 'phone', { apps: ['chat'] });
        await assert.rejects(cl.op('msg', 1000), 'nothing after the acks');
        cl.close();
    }, true);
});

/*
 * The lookup of a push goes right behind its store on the same Redis
 * link, without waiting for the store's answer (PostgreSQL's commit):
 * a client that registers between the two must be found by the lookup
 * or find the message in its connect's fetch.  That holds because one
 * server runs one link's commands in order, which MONITOR shows (the
 * check fails with the lookup asked before the store).  Then a client
 * that keeps reconnecting while pushes stream in must get, within each
 * session, every message answered before it leaves: one missed by both
 * would wait for the next connect.  (The churn alone seldom meets that
 * window: it checks the delivery around it, not the order.)
 */
test('cluster qos 1: a client reconnecting while pushes stream in gets '
     + 'every answered push in the session that saw it answered', PG,
     async () => {
    await withCluster(async ([a, b], redis) => {
        /* the order the design rests on, as Redis ran it: the uid's
         * RPUSH, then its HGETALL, from one client (MONITOR lists each
         * command with the client that sent it) */
        const mon = cp.spawn('redis-cli', ['-p', String(redis.port),
                                           'monitor']);
        let seen = '';
        mon.stdout.on('data', (chunk) => { seen += chunk; });
        await L.waitFor(() => seen.startsWith('OK'), 5000, 'MONITOR on');
        const r0 = await L.centerPost(a, '/v1/push', {
            app: 'chat', uids: ['rio'], data: 'first',
        });
        assert.strictEqual(r0.status, 200, r0.body);
        const line = (cmd, key) => seen.split('\n').findIndex(
            (l) => l.includes(`"${cmd}" "${key}"`));
        await L.waitFor(() => line('HGETALL', 'pd:u:rio') >= 0, 5000,
                        'the lookup in MONITOR');
        mon.kill();
        const lines = seen.split('\n');
        const push = line('RPUSH', 'pd:q:rio');
        const look = line('HGETALL', 'pd:u:rio');
        assert.ok(push >= 0 && push < look,
                  `the store's RPUSH (line ${push}) before the lookup `
                  + `(line ${look})`);
        const client = (l) => /\[\d+ ([^\]]+)\]/.exec(l)[1];
        assert.strictEqual(client(lines[push]), client(lines[look]),
                           'one link');

        const answered = [r0.json.id];
        let pushing = true;
        let failed = null;
        /* a pusher that stops (an error, or a request with no answer
         * within its 5 s) stops the rounds too: they would otherwise go
         * on to the cap waiting for the count, which is how one run of
         * this test once used up the whole file's time */
        const pusher = async () => {
            for (let i = 0; pushing && failed === null; i++) {
                let r;
                try {
                    r = await L.centerPost(a, '/v1/push', {
                        app: 'chat', uids: ['rio'], data: { i },
                    });
                } catch (e) {
                    failed = `push ${i}: ${e.message}`;
                    return;
                }
                if (r.status !== 200) {
                    failed = r.body;
                    return;
                }
                answered.push(r.json.id);
            }
        };
        const pushers = [pusher(), pusher(), pusher(), pusher()];
        const got = new Set();
        try {
            /* at least 20 sessions, and on until more than 100 pushes
             * were answered: a slow tree (ASan, a busy CI host) answers
             * fewer per session, and the count is what the check needs,
             * not the time (the cap only stops a stalled pusher) */
            for (let round = 0;
                 (round < 20 || answered.length <= 100) && round < 400
                 && failed === null;
                 round++) {
                const cl = await W.connect(b.roomPort, 'rio', 'phone',
                                           { apps: ['chat'] });
                /* the pushes answered so far: this session must see
                 * each, live or from its fetch (or had it before) */
                const want = answered.slice();
                const t0 = Date.now();
                while (want.some((id) => !got.has(id))) {
                    const m = await cl.op('msg', 3000).catch(() => null);
                    assert.ok(m, `round ${round}: ${want.filter(
                        (id) => !got.has(id)).length} answered pushes `
                        + `not delivered within ${Date.now() - t0} ms`);
                    got.add(m.id);
                    cl.send({ op: 'ack', ids: [m.id] });
                }
                cl.close();
                await cl.waitClose();
            }
        } finally {
            pushing = false;
            await Promise.all(pushers);
        }
        assert.strictEqual(failed, null, `a push failed: ${failed}`);
        assert.ok(answered.length > 100, `${answered.length} pushes`);
    }, true);
});

test('cluster qos 1: a message to two uids read back from PostgreSQL '
     + 'counts both: one uid\'s ack leaves the other\'s copy', PG,
     async () => {
    const S = require('./servers.js');
    await withCluster(async ([a, b, c], redis) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 10000,
                        'the store marked whole');
        const r = await L.centerPost(a, '/v1/push', {
            app: 'chat', uids: ['ivy', 'jon'], data: { two: 1 },
        });
        assert.strictEqual(r.status, 200, r.body);
        assert.strictEqual(r.json.stored, 2, r.body);
        const id = r.json.id;

        /* Redis restarts empty; the reload stores the rows one by one */
        await redis.restart();
        await L.waitFor(() => cli('LPOS', 'pd:q:ivy', id) === '0'
                              && cli('LPOS', 'pd:q:jon', id) === '0',
                        20000, 'both rows read back into Redis');
        assert.strictEqual(cli('HGET', `pd:m:${id}`, 'n'), '2');

        const ci = await W.connect(b.roomPort, 'ivy', 'phone',
                                   { apps: ['chat'] });
        assert.strictEqual((await ci.op('msg', 5000)).id, id);
        ci.send({ op: 'ack', ids: [id] });
        await L.waitFor(() => cli('LLEN', 'pd:q:ivy') === '0', 10000,
                        'ivy\'s ack in Redis');
        ci.close();
        await ci.waitClose();
        assert.strictEqual(cli('HGET', `pd:m:${id}`, 'n'), '1');

        const cj = await W.connect(c.roomPort, 'jon', 'phone',
                                   { apps: ['chat'] });
        const m = await cj.op('msg', 5000);
        assert.strictEqual(m.id, id);
        assert.deepStrictEqual(m.data, { two: 1 });
        cj.close();
        await cj.waitClose();
    }, true);
});

test('cluster qos 1: an ack made while PostgreSQL is read back into '
     + 'Redis is played again after the reload, not undone by it',
     PG, async () => {
    const S = require('./servers.js');
    await withCluster(async ([a, b, c], redis, pg) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 10000,
                        'the store marked whole');

        /* the server "loses" its data: the test holds the reload back */
        assert.strictEqual(cli('SET', 'pd:saver:reloading', 'test', 'PX',
                               '60000'), 'OK');
        cli('DEL', 'pd:saver:ok');

        const r = await L.centerPost(a, '/v1/push', {
            app: 'chat', uids: ['kai'], data: 'once',
        });
        assert.strictEqual(r.status, 200, r.body);
        assert.strictEqual(r.json.stored, 1, r.body);

        /* a session holds the row: the ack's DELETE waits behind it */
        const held = cp.spawn(`${pgBin()}/psql`,
                              ['-h', '127.0.0.1', '-p', String(pg.port),
                               '-U', 'postgres', '-d', 'postgres', '-At'],
                              { stdio: ['pipe', 'pipe', 'inherit'] });
        let out = '';
        held.stdout.on('data', (d) => { out += d; });
        const stopped = [b, c].flatMap((d) => [d.masterPid,
                                               ...d.workerPids()]);
        let cl = null;
        try {
            held.stdin.write('BEGIN; SELECT id FROM pd_messages '
                             + "WHERE uid = 'kai' FOR UPDATE;\n");
            await L.waitFor(() => out.includes(r.json.id), 10000,
                            'the row held');

            cl = await W.connect(b.roomPort, 'kai', 'phone',
                                 { apps: ['chat'] });
            const m = await cl.op('msg', 5000);
            assert.strictEqual(m.id, r.json.id);
            cl.send({ op: 'ack', ids: [m.id] });
            await L.waitFor(() => cli('LLEN', 'pd:q:kai') === '0', 10000,
                            'the ack in Redis');
            await L.waitFor(() => pg.sql('SELECT count(*) FROM '
                                         + 'pg_stat_activity WHERE '
                                         + "wait_event_type = 'Lock'")
                                  === '1', 10000, 'the DELETE waiting');

            /* only node-a may reload: it reads the row the DELETE
             * waits for */
            for (const pid of stopped) {
                process.kill(pid, 'SIGSTOP');
            }
            cli('DEL', 'pd:saver:reloading');
            await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 10000,
                            'the reload done');
            assert.match(a.logText(),
                         /reloaded unacked messages from postgres \(1 rows in \d+ ms\)/);
            /* the noted acks follow the marker */
            await L.waitFor(() => /1 acks made during the reload played again/
                                  .test(a.logText()), 10000,
                            'the noted ack played again');
            assert.strictEqual(cli('LLEN', 'pd:q:kai'), '0',
                               'the acked id not brought back');
            assert.strictEqual(cli('EXISTS', 'pd:saver:acked'), '0');
        } finally {
            held.stdin.end('COMMIT;\n');
            for (const pid of stopped) {
                process.kill(pid, 'SIGCONT');
            }
        }
        await L.waitFor(() => pg.sql('SELECT count(*) FROM pd_messages')
                              === '0', 10000, 'the row deleted');

        /* acked: a new connection gets nothing */
        cl.close();
        await cl.waitClose();
        const again = await W.connect(a.roomPort, 'kai', 'tablet',
                                      { apps: ['chat'] });
        await assert.rejects(again.op('msg', 1000), 'nothing after the ack');
        again.close();
    }, true);
});

/* a log of offline users' unacked messages, 500 bytes of data each, in
 * the order of g; the last big all for one uid ("big"), the others
 * spread over u0..u1999; ids old-<hex> */
function oldRows(pg, n, big) {
    pg.sql('INSERT INTO pd_messages (uid, id, app, data, expires, '
           + 'stored) SELECT CASE WHEN g > ' + (n - big)
           + " THEN 'big' ELSE 'u' || (g % 2000) END, "
           + "'old-' || to_hex(4096 + g), 'chat', "
           + `'"' || repeat('x', 500) || '"', `
           + `${Date.now() + 3600000}, `
           + `now() - ((${n} - g) || ' ms')::interval `
           + `FROM generate_series(1, ${n}) AS g`);
}

/*
 * A reloading worker held up past the lock's life (stopped, starved)
 * finds at its next page that another node took the server over: it
 * stops there, and the other node's reload is the one that ends.  The
 * other node is played here by hand: its token set while the reload
 * runs, for a short life, after which a node takes the lock afresh.
 */
test('cluster qos 1: a reload whose lock another node took stops at its '
     + 'next page; the server is reloaded whole after', PG, async () => {
    const S = require('./servers.js');
    const N = 150000;
    await withCluster(async (nodes, redis, pg) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 10000,
                        'the store marked whole');
        oldRows(pg, N, 0);
        const mine = cli('DBSIZE');
        cli('DEL', 'pd:saver:ok');
        await L.waitFor(() => cli('GET', 'pd:saver:reloading') !== '',
                        10000, 'a reload under way');
        const token = cli('GET', 'pd:saver:reloading');
        assert.notStrictEqual(cli('GET', 'pd:saver:ok'), '1',
                              'the reload still runs when taken over');
        cli('SET', 'pd:saver:reloading', 'another-node', 'PX', '1500');

        const stopped = /reload from postgres stopped after \d+ rows: another node holds pd:saver:reloading/;
        await L.waitFor(() => nodes.some((d) => stopped.test(d.logText())),
                        10000, 'the reload stopped at its next page');
        /* then a node takes the lock afresh, and reloads all of it */
        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 60000,
                        'the server reloaded whole');
        assert.notStrictEqual(cli('GET', 'pd:saver:reloading'), token);
        assert.ok(Number(cli('DBSIZE')) > Number(mine));
        /* u7's rows, each once in its list */
        const want = Number(pg.sql("SELECT count(*) FROM pd_messages "
                                   + "WHERE uid = 'u7'"));
        assert.ok(want > 50, `${want} rows of u7`);
        assert.strictEqual(cli('LLEN', 'pd:q:u7'), String(want));
        const ids = cli('LRANGE', 'pd:q:u7', '0', '-1').split('\n');
        assert.strictEqual(new Set(ids).size, want, 'no id twice');
    }, true);
});

/* the peak resident memory of a process so far, kB */
function hwm(pid) {
    const fs = require('node:fs');
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`,
                                                      'utf8'));
    return Number(m[1]);
}

/* AddressSanitizer keeps freed memory in quarantine: no peak is tight */
function sanitized(pid) {
    const fs = require('node:fs');
    return fs.readFileSync(`/proc/${pid}/maps`, 'utf8').includes('libasan');
}

test('cluster qos 1: a reload larger than a page goes a page at a time, '
     + 'every row back in Redis in store order, the workers\' memory '
     + 'bounded', PG, async () => {
    const S = require('./servers.js');
    const N = 60000;
    /* one uid's rows, over fifteen pages: a store into its mailbox scans
     * it, so a whole page of them sent at once outlasted the link's
     * timeout (500 ms here) */
    const BIG = 15000;
    await withCluster(async (nodes, redis, pg) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 10000,
                        'the store marked whole');

        oldRows(pg, N, BIG);
        const scans = () => Number(pg.sql('SELECT idx_scan FROM '
                                          + 'pg_stat_user_tables WHERE '
                                          + "relname = 'pd_messages'"));
        const scansBefore = scans();
        const workers = nodes.flatMap((d) => d.workerPids());
        const before = new Map(workers.map((p) => [p, hwm(p)]));

        /* Redis loses everything: one node reads the log back */
        cli('FLUSHALL');
        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 60000,
                        'the reload done');
        const logs = nodes.map((d) => d.logText()).join('');
        assert.match(logs, new RegExp('reloaded unacked messages from '
                                      + `postgres \\(${N} rows in`));

        /* every row, each uid's in store order */
        assert.strictEqual(cli('LLEN', 'pd:q:big'), String(BIG));
        const big = cli('LRANGE', 'pd:q:big', '0', '-1').split('\n');
        const want = [];
        for (let g = N - BIG + 1; g <= N; g++) {
            want.push(`old-${(4096 + g).toString(16)}`);
        }
        assert.deepStrictEqual(big, want);
        /* N bodies and 2001 lists */
        assert.strictEqual(cli('EVAL', "return #redis.call('KEYS', 'pd:m:*')"
                                       + " + #redis.call('KEYS', 'pd:q:*')",
                               '0'), String(N + 2001));
        assert.strictEqual(cli('LLEN', 'pd:q:u7'),
                           String(Math.floor((N - BIG - 7) / 2000) + 1));

        /* a page is one index scan: about N / 1000 of them (stats reach
         * the view a moment after) */
        await L.waitFor(() => scans() - scansBefore >= N / 1000, 10000,
                        'the reload read in pages');

        /* what a reload holds is a page, not the log: the rows came to
         * 60000 x 500 B, 30 MB, which the reloading worker held at once
         * before (and as many script calls on one Redis link) */
        for (const p of workers) {
            if (sanitized(p)) {
                continue;
            }
            const grew = hwm(p) - before.get(p);
            assert.ok(grew < 8192, `worker ${p}: peak grew ${grew} kB`);
        }

        /* a second reload over what Redis holds already (the marker
         * lost, the data kept) stores every row again: nothing twice */
        cli('DEL', 'pd:saver:ok');
        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 60000,
                        'the second reload done');
        assert.strictEqual(cli('LLEN', 'pd:q:big'), String(BIG));
        assert.strictEqual(cli('LLEN', 'pd:q:u7'),
                           String(Math.floor((N - BIG - 7) / 2000) + 1));
        assert.strictEqual(cli('HGET', `pd:m:${want[0]}`, 'n'), '1');

        /* and a client gets its messages */
        const cl = await W.connect(nodes[1].roomPort, 'u7', 'phone',
                                   { apps: ['chat'] });
        const m = await cl.op('msg', 5000);
        assert.match(m.id, /^old-/);
        cl.close();
        await cl.waitClose();
    }, true, { max_per_mailbox: 20000 });
});

test('cluster qos 1: a reload cut off midway (its Redis links killed) '
     + 'goes on from its last stored page, not from the start', PG,
     async () => {
    const S = require('./servers.js');
    const N = 60000;
    await withCluster(async (nodes, redis, pg) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        const bodies = () => Number(cli('EVAL', "return #redis.call('KEYS', "
                                               + "'pd:m:*')", '0'));
        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 10000,
                        'the store marked whole');
        oldRows(pg, N, 0);

        cli('FLUSHALL');
        await L.waitFor(() => bodies() >= 5000, 30000, 'the reload begun');
        cli('CLIENT', 'KILL', 'TYPE', 'normal');
        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 60000,
                        'the reload done');

        const logs = nodes.map((d) => d.logText()).join('');
        assert.match(logs, /reload from postgres stopped after \d+ rows/);
        const on = /reload from postgres goes on after (\d+) rows/.exec(logs);
        assert.ok(on, 'the reload went on');
        assert.ok(Number(on[1]) >= 1000, on[0]);
        /* the rows are counted once: those before the cut, then the rest */
        assert.match(logs, new RegExp('reloaded unacked messages from '
                                      + `postgres \\(${N} rows in`));
        assert.strictEqual(bodies(), N);
        assert.strictEqual(cli('LLEN', 'pd:q:u7'),
                           String(Math.floor((N - 7) / 2000) + 1));
    }, true);
});

test('cluster qos 1: the acks noted during a reload are played again a '
     + 'thousand at a time, however many', PG, async () => {
    const S = require('./servers.js');
    const M = 200000;
    await withCluster(async (nodes, redis) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 10000,
                        'the store marked whole');

        /* the server "loses" its data while the reload is held back;
         * the acks of a long reload pile up in the set (made up here:
         * ids no list holds, as many as a busy cluster acks in a
         * minute), and a real one among them */
        cli('SET', 'pd:saver:reloading', 'test', 'PX', '60000');
        cli('DEL', 'pd:saver:ok');
        /* in slices: one script the size of the whole set would hold
         * Redis past the nodes' link timeout (500 ms here) */
        for (let from = 1; from <= M; from += 10000) {
            cli('EVAL', 'for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do '
                        + "redis.call('SADD', KEYS[1], 'u' .. (i % 5000) "
                        + "  .. '\\n' .. 'gone-' .. i) end",
                '1', 'pd:saver:acked', String(from), String(from + 9999));
        }
        assert.strictEqual(cli('SCARD', 'pd:saver:acked'), String(M));
        cli('DEL', 'pd:saver:reloading');

        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 30000,
                        'the reload done');
        await L.waitFor(() => nodes.some((d) => new RegExp(`${M} acks made `
                                                           + 'during the '
                                                           + 'reload played '
                                                           + 'again')
                                                   .test(d.logText())),
                        60000, 'every noted ack played again');
        assert.strictEqual(cli('EXISTS', 'pd:saver:acked'), '0');
        assert.strictEqual(cli('EXISTS', 'pd:saver:reloading'), '0');
        const logs = nodes.map((d) => d.logText()).join('');
        assert.doesNotMatch(logs, /no reply in|not all played again/);
    }, true);
});

test('cluster qos 1: an expired message leaves Redis with its row: a uid '
     + 'that never comes back keeps nothing there', PG, async () => {
    const S = require('./servers.js');
    await withCluster(async ([a], redis, pg) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 10000,
                        'the store marked whole');
        const ids = [];
        for (const extra of [{}, { collapse: 'inbox' }]) {
            const r = await L.centerPost(a, '/v1/push', {
                app: 'chat', uids: ['gone'], data: 'bye', ttl: 1, ...extra,
            });
            assert.strictEqual(r.status, 200, r.body);
            assert.strictEqual(r.json.stored, 1, r.body);
            ids.push(r.json.id);
        }
        /* the unicast's body inline beside its count, the keyed one's
         * in m (unmarked in the list: m itself expires with the 1 s ttl,
         * so it is not looked at here) */
        assert.strictEqual(cli('LRANGE', 'pd:q:gone', '0', '-1'),
                           `~${ids[0]}\n${ids[1]}`);
        assert.strictEqual(cli('HLEN', 'pd:dl:gone'), '3');
        assert.strictEqual(cli('EXISTS', 'pd:c:gone'), '1');

        /* nobody fetches: the log's sweep takes the rows once expired,
         * and Redis lets go of the ids, counts, key and bodies */
        await L.waitFor(() => pg.sql('SELECT count(*) FROM pd_messages '
                                     + "WHERE uid = 'gone'") === '0',
                        15000, 'the expired rows swept');
        const keys = ['pd:q:gone', 'pd:dl:gone', 'pd:c:gone',
                      ...ids.map((id) => `pd:m:${id}`)];
        await L.waitFor(() => cli('EXISTS', ...keys) === '0', 10000,
                        'the uid\'s keys gone from Redis');
    }, true);
});

test('cluster qos 1: a message past its ttl is not sent: its inline body '
     + 'carries the expiry the fetch checks', PG, async () => {
    const S = require('./servers.js');
    await withCluster(async ([a, b], redis, pg) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        await L.waitFor(() => cli('GET', 'pd:saver:ok') === '1', 10000,
                        'the store marked whole');
        const push = async (ttl, data) => {
            const r = await L.centerPost(a, '/v1/push', {
                app: 'chat', uids: ['late'], data, ttl,
            });
            assert.strictEqual(r.status, 200, r.body);
            assert.strictEqual(r.json.stored, 1, r.body);
            return r.json.id;
        };
        /* the expiry is the push's time plus its ttl, to the
         * millisecond (the saver's clock is the loop turn's,
         * pd_time_msec): between the request's sending and its answer,
         * whatever the store took.  Before, it was the push's second
         * plus the ttl, so a 1 s ttl could end at once */
        const t0 = Date.now();
        const stale = await push(1, 'stale');
        const t1 = Date.now();
        const expires = Number(cli('HGET', 'pd:dl:late', `b:${stale}`)
            .split('\n')[0]);
        assert.ok(expires >= t0 + 1000 && expires <= t1 + 1000,
                  `expires ${expires - t0} ms after the request was sent, `
                  + `which was answered after ${t1 - t0} ms`);
        /* Redis keeps the field (no per-field expiry in Redis 7.0): the
         * log's sweep would take it, once a second, so its row goes
         * first, and only the fetch can tell that it is stale */
        pg.sql(`DELETE FROM pd_messages WHERE id = '${stale}'`);
        await L.waitFor(() => Date.now() > expires + 50, 5000, 'the ttl');
        assert.strictEqual(cli('HEXISTS', 'pd:dl:late', `b:${stale}`), '1');
        const fresh = await push(60, 'fresh');

        const cl = await W.connect(b.roomPort, 'late', 'phone',
                                   { apps: ['chat'] });
        const m = await cl.op('msg', 5000);
        assert.strictEqual(m.id, fresh, 'the stale one was not sent first');
        assert.strictEqual(m.data, 'fresh');
        /* and the fetch let go of it */
        assert.strictEqual(cli('LRANGE', 'pd:q:late', '0', '-1'),
                           `~${fresh}`);
        assert.strictEqual(cli('HEXISTS', 'pd:dl:late', `b:${stale}`), '0');
        cl.close();
        await cl.waitClose();
    }, true);
});

test('cluster qos 1: one list may hold both kinds of body, and '
     + 'inline_bodies false keeps every body in m, as versions before did',
     PG, async () => {
    const S = require('./servers.js');
    const take = async (node, uid, n) => {
        const cl = await W.connect(node.roomPort, uid, 'phone',
                                   { apps: ['chat'] });
        const got = [];
        for (let i = 0; i < n; i++) {
            const m = await cl.op('msg', 5000);
            got.push(m.id);
            cl.send({ op: 'ack', ids: [m.id] });
        }
        return { cl, got };
    };
    const push = pushStored;

    /* the default: a multicast's body in m, a unicast's inline, one
     * list, read and acked in store order */
    await withCluster(async ([a, b], redis) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        const many = await push(a, ['mix', 'other'], 1);
        const one = await push(a, ['mix'], 2);
        assert.strictEqual(cli('LRANGE', 'pd:q:mix', '0', '-1'),
                           `${many}\n~${one}`);
        const { cl, got } = await take(b, 'mix', 2);
        assert.deepStrictEqual(got, [many, one]);
        await L.waitFor(() => cli('EXISTS', 'pd:q:mix', 'pd:dl:mix') === '0',
                        10000, 'both acked');
        assert.strictEqual(cli('HGET', `pd:m:${many}`, 'n'), '1',
                           'the other uid still holds the multicast');
        cl.close();
        await cl.waitClose();
    }, true);

    /* inline_bodies false: what an earlier version wrote */
    await withCluster(async ([a, b], redis) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        const id = await push(a, ['plain'], 3);
        assert.strictEqual(cli('LRANGE', 'pd:q:plain', '0', '-1'), id);
        assert.strictEqual(cli('HGET', `pd:m:${id}`, 'n'), '1');
        assert.strictEqual(cli('HKEYS', 'pd:dl:plain'), id);
        const { cl, got } = await take(b, 'plain', 1);
        assert.deepStrictEqual(got, [id]);
        await L.waitFor(() => cli('EXISTS', 'pd:q:plain', 'pd:dl:plain',
                                  `pd:m:${id}`) === '0', 10000, 'acked');
        cl.close();
        await cl.waitClose();
    }, true, { inline_bodies: false });
});

test('cluster qos 1: the acks of a loop turn go to Redis in one round of '
     + 'plain commands, the script only for a body in m', PG, async () => {
    const S = require('./servers.js');
    await withCluster(async ([a, b], redis) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        const calls = () => {
            const n = { script: 0, hdel: 0, lrem: 0 };
            for (const line of cli('INFO', 'commandstats').split('\n')) {
                const m = /^cmdstat_(\w+):calls=(\d+)/.exec(line);
                if (m && (m[1] === 'eval' || m[1] === 'evalsha')) {
                    n.script += Number(m[2]);
                } else if (m && m[1] in n) {
                    n[m[1]] = Number(m[2]);
                }
            }
            return n;
        };
        const push = async (uids, i) => {
            const r = await L.centerPost(a, '/v1/push', {
                app: 'chat', uids, data: { i },
            });
            assert.strictEqual(r.status, 200, r.body);
            return r.json.id;
        };
        const ids = [];
        for (let i = 0; i < 20; i++) {
            ids.push(await push(['ivy'], i));
        }
        /* and one body in m, which another uid holds too */
        const many = await push(['ivy', 'jon'], 20);
        ids.push(many);
        const cl = await W.connect(b.roomPort, 'ivy', 'phone',
                                   { apps: ['chat'] });
        const got = [];
        for (let i = 0; i < ids.length; i++) {
            got.push((await cl.op('msg', 5000)).id);
        }
        assert.deepStrictEqual(got, ids);

        /* 21 acks in one frame: an HDEL each, an LREM for each inline
         * body, and one script call for the body in m (each ack was a
         * call of its own once, then one script call for all; the nodes'
         * own periodic scripts may add a few) */
        const before = calls();
        cl.send({ op: 'ack', ids });
        await L.waitFor(() => cli('EXISTS', 'pd:q:ivy', 'pd:dl:ivy') === '0',
                        10000, 'the acks in Redis');
        await L.waitFor(() => cli('HGET', `pd:m:${many}`, 'n') === '1',
                        10000, 'the body in m let go of once');
        const after = calls();
        assert.ok(after.hdel - before.hdel >= 21,
                  `${after.hdel - before.hdel} HDEL for 21 acks`);
        assert.ok(after.lrem - before.lrem >= 20,
                  `${after.lrem - before.lrem} LREM for 21 acks`);
        const scripts = after.script - before.script;
        assert.ok(scripts >= 1 && scripts < 6,
                  `${scripts} script calls for 21 acks`);
        assert.strictEqual(cli('LRANGE', 'pd:q:jon', '0', '-1'), many,
                           'the other uid keeps its copy');
        cl.close();
        await cl.waitClose();
    }, true);
});

/*
 * Between an ack's two rounds (pd_sr_acks_flush) q still holds the id,
 * its count gone from dl: a fetch then must not send it again, and takes
 * it off q as the ack would.  The state is made by hand here: the
 * window is one round trip.
 */
test('cluster qos 1: an id of m whose count an ack took is not fetched '
     + 'again, and leaves its list', PG, async () => {
    const S = require('./servers.js');
    await withCluster(async ([a, b], redis) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        const push = (uids, data) => pushStored(a, uids, data);
        const many = await push(['win', 'lose'], 1);
        const next = await push(['win'], 2);
        assert.strictEqual(cli('HGET', `pd:m:${many}`, 'n'), '2');
        /* what the first round of win's ack of many leaves */
        assert.strictEqual(cli('HDEL', 'pd:dl:win', many), '1');
        const cl = await W.connect(b.roomPort, 'win', 'phone',
                                   { apps: ['chat'] });
        const m = await cl.op('msg', 5000);
        assert.strictEqual(m.id, next, 'the id being acked is not sent');
        assert.strictEqual(cli('LRANGE', 'pd:q:win', '0', '-1'), `~${next}`);
        assert.strictEqual(cli('HGET', `pd:m:${many}`, 'n'), '1',
                           'the body let go of by win, kept for lose');
        cl.send({ op: 'ack', ids: [next] });
        await L.waitFor(() => cli('EXISTS', 'pd:q:win', 'pd:dl:win') === '0',
                        10000, 'the ack in Redis');
        cl.close();
        await cl.waitClose();
    }, true);
});

test('cluster qos 1: a message\'s body leaves Redis with the last list '
     + 'that holds it (acks, a second ack, the no-ack guard, an older '
     + 'body)', PG, async () => {
    const S = require('./servers.js');
    await withCluster(async ([a, b], redis, pg) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        const push = (uids, data) => pushStored(a, uids, data);
        const take = async (uid, id, acks) => {
            const cl = await W.connect(b.roomPort, uid, 'phone',
                                       { apps: ['chat'] });
            const m = await cl.op('msg', 5000);
            assert.strictEqual(m.id, id);
            for (let i = 0; i < acks; i++) {
                cl.send({ op: 'ack', ids: [id] });
            }
            await L.waitFor(() => cli('LLEN', `pd:q:${uid}`) === '0',
                            10000, `the ack of ${uid} in Redis`);
            cl.close();
            await cl.waitClose();
        };

        /* the first look at the empty server reloads it from
         * PostgreSQL (a row the guard drops below would come back) */
        await L.waitFor(() => cli('EXISTS', 'pd:saver:ok') === '1', 10000,
                        'pd:saver:ok');

        /* two uids hold one body: the first's acks (two of them, the
         * second finds nothing to let go) leave it to the other */
        const id = await push(['ana', 'bo'], { n: 1 });
        assert.strictEqual(cli('HGET', `pd:m:${id}`, 'n'), '2');
        await take('ana', id, 2);
        assert.strictEqual(cli('HGET', `pd:m:${id}`, 'n'), '1');
        assert.strictEqual(cli('HGET', `pd:m:${id}`, 'a'), 'chat');
        await take('bo', id, 1);
        assert.strictEqual(cli('EXISTS', `pd:m:${id}`), '0',
                           'the body gone with the last ack');

        /* one uid's body is inline, in its own hash, beside the count:
         * the ack (two of them again) takes both fields and the id */
        const one = await push(['eve'], { n: 4 });
        assert.strictEqual(cli('LRANGE', 'pd:q:eve', '0', '-1'), `~${one}`);
        assert.strictEqual(cli('HGET', 'pd:dl:eve', one), '0');
        assert.match(cli('HGET', 'pd:dl:eve', `b:${one}`),
                     /^\d{13}\nchat\n\{"n":4\}$/);
        assert.strictEqual(cli('EXISTS', `pd:m:${one}`), '0');
        await take('eve', one, 2);
        assert.strictEqual(cli('EXISTS', 'pd:dl:eve'), '0',
                           'the inline body gone with the ack');

        /* a body an older pushd wrote (no count) is left to expire */
        const old = await push(['cy', 'cz'], { n: 2 });
        cli('HDEL', `pd:m:${old}`, 'n');
        await take('cy', old, 1);
        assert.strictEqual(cli('HGET', `pd:m:${old}`, 'a'), 'chat');
        assert.strictEqual(cli('HEXISTS', `pd:m:${old}`, 'n'), '0');
        assert.ok(Number(cli('PTTL', `pd:m:${old}`)) > 0, 'still expires');

        /* never acked: the no-ack guard (max_redeliveries 5) drops it
         * from the list, and the body goes with it */
        const lost = await push(['dag'], { n: 3 });
        assert.strictEqual(cli('HEXISTS', 'pd:dl:dag', `b:${lost}`), '1');
        let seen = 0;
        for (;;) {
            const cl = await W.connect(b.roomPort, 'dag', 'phone',
                                       { apps: ['chat'] });
            const m = await cl.op('msg', 1500).catch(() => null);
            cl.close();
            await cl.waitClose();
            if (!m) {
                break;
            }
            assert.strictEqual(m.id, lost);
            assert.ok(++seen <= 6, `delivered ${seen} times`);
        }
        assert.ok(seen >= 5, `delivered ${seen} times before the drop`);
        assert.strictEqual(cli('LLEN', 'pd:q:dag'), '0');
        assert.strictEqual(cli('EXISTS', 'pd:dl:dag'), '0',
                           'the dropped message\'s body and count gone');
        /* and its row in the durable log, which a reload would bring
         * back with its count started again */
        await L.waitFor(() => Number(pg.sql('SELECT count(*) FROM '
                                            + "pd_messages WHERE uid = 'dag'"))
                              === 0, 10000, 'the dropped row deleted');
        /* counted where the fetch dropped it */
        const st = await L.centerGet(b, '/v1/stats');
        assert.strictEqual(st.status, 200, st.body);
        assert.strictEqual(st.json.workers.reduce(
            (n, w) => n + w.cluster_dropped_noack, 0), 1, st.body);
        const mt = await L.request(b.centerPort, 'GET', '/metrics',
                                   { Authorization: `Bearer ${b.apiKey}` });
        assert.match(mt.body, /^pushd_cluster_dropped_noack_total/m);

        /* nothing else left behind */
        assert.deepStrictEqual(cli('KEYS', 'pd:m:*').split('\n')
                                   .filter((k) => k !== ''), [`pd:m:${old}`]);
    }, true);
});

test('cluster qos 1: a full mailbox stores no more and keeps what it '
     + 'held; room again once acked', PG, async () => {
    const S = require('./servers.js');
    await withCluster(async ([a, b], redis, pg) => {
        const cli = (...args) => S.redisCli(redis.port, args);
        const rows = () => pg.sql("SELECT id FROM pd_messages WHERE uid = 'fu' "
                                  + 'ORDER BY id').split('\n')
            .filter((x) => x !== '');
        const push = async (data, extra = {}) => {
            const r = await L.centerPost(a, '/v1/push', {
                app: 'chat', uids: ['fu'], data, ...extra,
            });
            assert.strictEqual(r.status, 200, r.body);
            return r.json;
        };
        await L.waitFor(() => cli('EXISTS', 'pd:saver:ok') === '1', 10000,
                        'pd:saver:ok');

        const one = await push(1);
        const two = await push(2);
        const three = await push(3);
        /* a collapse key the mailbox does not hold: full too */
        const keyed = await push(5, { collapse: 'k' });
        assert.deepStrictEqual([one.stored, two.stored, three.stored,
                                keyed.stored], [1, 1, 0, 0]);
        /* the refused id left no trace in the mailbox, and no body */
        assert.strictEqual(cli('LRANGE', 'pd:q:fu', '0', '-1'),
                           `~${one.id}\n~${two.id}`);
        assert.strictEqual(cli('HEXISTS', 'pd:dl:fu', three.id), '0');
        assert.strictEqual(cli('HEXISTS', 'pd:dl:fu', `b:${three.id}`), '0');
        assert.strictEqual(cli('EXISTS', `pd:m:${keyed.id}`), '0');
        assert.strictEqual(cli('HLEN', 'pd:dl:fu'), '4');
        /* and the durable log, written beside Redis, lets go of its row:
         * a reload would bring it back, and nothing would ack it */
        await L.waitFor(() => rows().length === 2, 10000,
                        'the full mailbox\'s row deleted');
        assert.deepStrictEqual(rows(), [one.id, two.id].sort());

        const cl = await W.connect(b.roomPort, 'fu', 'phone',
                                   { apps: ['chat'] });
        const got = [await cl.op('msg', 5000), await cl.op('msg', 5000)];
        assert.deepStrictEqual(got.map((m) => m.data), [1, 2]);
        cl.send({ op: 'ack', ids: got.map((m) => m.id) });
        await L.waitFor(() => cli('LLEN', 'pd:q:fu') === '0', 10000,
                        'the acks in Redis');
        assert.strictEqual(cli('EXISTS', 'pd:dl:fu'), '0');
        cl.close();
        await cl.waitClose();

        const four = await push(4);
        assert.strictEqual(four.stored, 1);
        await L.waitFor(() => rows().length === 1, 10000, 'the acked rows');
        assert.deepStrictEqual(rows(), [four.id]);
    }, true, { max_per_mailbox: 2 });
});

/*
 * A push that must be answered.  Inside L.waitFor a thrown request would
 * only be tried again, as if it had been refused: a socket error or a
 * timeout goes to noAnswer instead, which the test asserts empty.
 */
/*
 * A push through a cluster waits for PostgreSQL's commit.  The pushes a
 * business writes at once on one connection wait for theirs together
 * (the center detaches each and serves the next), their answers in the
 * order of the requests; a request that is not a push keeps its place
 * among them.  The detached count says the pushes were served at once:
 * one at a time, none is.
 */
test('cluster qos 1: pushes pipelined on one connection wait for their '
     + 'commits together and are answered in order; other requests keep '
     + 'their place; a client that leaves with pushes in flight harms '
     + 'nothing', PG, async () => {
    await withCluster(async ([a, b], redis, pg) => {
        const auth = { Authorization: `Bearer ${a.apiKey}`,
                       'Content-Type': 'application/json' };
        const stats = await L.centerConn(a);
        const detached = async () => {
            const r = await stats.get('/v1/stats');
            assert.strictEqual(r.status, 200, r.body);
            return r.json.workers.reduce((n, w) => n + w.http_detached, 0);
        };
        const rows = (uid) => Number(pg.sql(
            `SELECT count(*) FROM pd_messages WHERE uid = '${uid}'`));
        const seqOf = (r) => BigInt(`0x${r.json.id.split('-').pop()}`);
        const inOrder = (res) => {
            for (let i = 1; i < res.length; i++) {
                assert.ok(seqOf(res[i]) > seqOf(res[i - 1]),
                          `answered in order: ${res.map((r) => r.json.id)}`);
            }
        };

        const k = await L.keepAlive(a.centerPort);
        const push = (kk, uid, i) => kk.format('POST', '/v1/push', auth,
            JSON.stringify({ app: 'chat', uids: [uid], data: { i } }));
        const before = await detached();
        const reqs = [];
        for (let i = 0; i < 32; i++) {
            reqs.push(push(k, 'pip', i));
        }
        const res = await k.sendRaw(reqs.join(''), 32, 20000);
        assert.deepStrictEqual(res.map((r) => r.status), Array(32).fill(200),
                               res.map((r) => r.body).join('\n'));
        assert.deepStrictEqual(res.map((r) => r.json.stored),
                               Array(32).fill(1));
        inOrder(res);
        assert.strictEqual(rows('pip'), 32, 'in PostgreSQL at the 200s');
        const n = (await detached()) - before;
        assert.ok(n >= 16, `${n} of 32 pipelined pushes detached`);

        /* a body announced with Expect: 100-continue behind a push
         * that waits for its commit: the 100 comes after the push's
         * answer (before it, it would read as that answer) */
        const body = JSON.stringify({ app: 'chat', uids: ['pip'],
                                      data: { i: 33 } });
        const expect = 'POST /v1/push HTTP/1.1\r\nHost: x\r\n'
            + `Authorization: Bearer ${a.apiKey}\r\n`
            + 'Content-Type: application/json\r\n'
            + `Content-Length: ${body.length}\r\n`
            + 'Expect: 100-continue\r\n\r\n';
        const two = await k.sendRaw(push(k, 'pip', 32) + expect, 2, 20000);
        assert.deepStrictEqual(two.map((r) => r.status), [200, 100]);
        const fin = await k.sendRaw(body, 1, 20000);
        assert.strictEqual(fin[0].status, 200, fin[0].body);
        inOrder([res[31], two[0], fin[0]]);

        /* a presence (a Redis round trip) and a 404 among pushes: each
         * answered in its place; a bad body last is answered after all
         * of them, then the connection ends */
        const mixed = [
            push(k, 'pip', 34),
            k.format('GET', '/v1/users/pip', auth),
            push(k, 'pip', 35),
            k.format('GET', '/v1/nope', auth),
            push(k, 'pip', 36),
            k.format('POST', '/v1/push', auth, '{"app": 1}'),
        ];
        const res2 = await k.sendRaw(mixed.join(''), mixed.length, 20000);
        assert.deepStrictEqual(res2.map((r) => r.status),
                               [200, 200, 200, 404, 200, 400],
                               res2.map((r) => r.body).join('\n'));
        assert.deepStrictEqual(res2[1].json.connections, []);
        assert.deepStrictEqual(res2.map((r) => r.headers.connection),
                               [...Array(5).fill('keep-alive'), 'close']);
        inOrder([fin[0], res2[0], res2[2], res2[4]]);
        await L.waitFor(() => k.closed, 5000, 'closed after the 400');

        /* a client that writes its pushes and ends its side (a half
         * close) gets every answer, then the close: more answers than
         * the 4 KB batch holds, so they leave in more than one write */
        const k3 = await L.keepAlive(a.centerPort);
        const ended = [];
        for (let i = 0; i < 48; i++) {
            ended.push(push(k3, 'ended', i));
        }
        const res3 = k3.sendRaw(ended.join(''), 48, 20000);
        k3.sock.end();
        assert.deepStrictEqual((await res3).map((r) => r.status),
                               Array(48).fill(200));
        assert.ok((await res3).reduce((n, r) => n + r.raw.length, 0)
                  > 4096, 'more than a batch of answers');
        inOrder(await res3);
        await L.waitFor(() => k3.closed, 5000, 'closed after the answers');

        /* one that leaves at once: its pushes are let go wherever they
         * are; the node serves on */
        const k4 = await L.keepAlive(a.centerPort);
        const gone = [];
        for (let i = 0; i < 16; i++) {
            gone.push(push(k4, 'gone', i));
        }
        k4.sock.write(gone.join(''));
        k4.sock.destroy();

        /* the uid's 37 messages reach it on node-b, in order */
        const cl = await W.connect(b.roomPort, 'pip', 'phone',
                                   { apps: ['chat'] });
        const got = [];
        for (let i = 0; i < 37; i++) {
            got.push((await cl.op('msg', 5000)).data.i);
        }
        assert.deepStrictEqual(got, [...Array(37).keys()]);
        cl.close();
        await cl.waitClose();

        const r = await L.centerPost(a, '/v1/push', {
            app: 'chat', uids: ['pip'], data: 'after',
        });
        assert.strictEqual(r.status, 200, r.body);
        stats.close();
    }, true);
});

/*
 * A subscriber of one Redis channel, in raw RESP: {messages (payloads,
 * Buffers, in order), close()}.  redis-cli would print the binary
 * payloads mangled.
 */
async function subscribeRaw(port, channel) {
    const net = require('node:net');
    const sock = net.connect({ port, host: '127.0.0.1' });
    await new Promise((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
    });
    const sub = { messages: [], subscribed: false };
    let buf = Buffer.alloc(0);
    /* one bulk string at off: [value, next offset], or null if partial */
    const bulk = (off) => {
        const nl = buf.indexOf('\r\n', off);
        if (nl < 0) {
            return null;
        }
        const n = Number(buf.subarray(off + 1, nl).toString());
        if (buf.length < nl + 2 + n + 2) {
            return null;
        }
        return [buf.subarray(nl + 2, nl + 2 + n), nl + 2 + n + 2];
    };
    sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
            const nl = buf.indexOf('\r\n');
            if (nl < 0 || buf[0] !== 0x2a) {
                return;
            }
            let off = nl + 2;
            const parts = [];
            for (let i = 0; i < 3; i++) {
                if (buf[off] === 0x3a) {           /* :n (the count) */
                    const e = buf.indexOf('\r\n', off);
                    if (e < 0) {
                        return;
                    }
                    parts.push(buf.subarray(off + 1, e));
                    off = e + 2;
                    continue;
                }
                const b = bulk(off);
                if (b === null) {
                    return;
                }
                parts.push(b[0]);
                off = b[1];
            }
            buf = buf.subarray(off);
            if (parts[0].toString() === 'message') {
                sub.messages.push(Buffer.from(parts[2]));
            } else if (parts[0].toString() === 'subscribe') {
                sub.subscribed = true;
            }
        }
    });
    sock.write(`SUBSCRIBE ${channel}\r\n`);
    await L.waitFor(() => sub.subscribed, 5000, `subscribed to ${channel}`);
    sub.close = () => sock.destroy();
    return sub;
}

/*
 * Pushes routed in one loop turn to another node's worker leave in one
 * PUBLISH on its batch channel; a worker of a version before the
 * batches (here a subscriber of its "pd:w:" channel alone, under a
 * register entry and a liveness key made by hand) gets each command
 * again in a PUBLISH of its own, in order.
 */
test('cluster: a turn\'s pushes for another node\'s worker go in one '
     + 'PUBLISH; a worker without the batch channel gets them one by one, '
     + 'in order', PG, async () => {
    await withCluster(async ([a, b], redis) => {
        const S = require('./servers.js');
        const cli = (...args) => S.redisCli(redis.port, args);
        const publishes = () => {
            const m = /cmdstat_publish:calls=(\d+)/.exec(
                cli('INFO', 'commandstats'));
            return m ? Number(m[1]) : 0;
        };
        const auth = { Authorization: `Bearer ${a.apiKey}`,
                       'Content-Type': 'application/json' };

        const cl = await W.connect(b.roomPort, 'bat', 'phone',
                                   { apps: ['chat'] });
        await L.waitFor(async () => (await presence(a, 'bat')).online,
                        10000, 'bat seen from node-a');

        /* 32 pipelined pushes through node-a: their commits come
         * together, and so do their routes to node-b's worker */
        const k = await L.keepAlive(a.centerPort);
        const push = (i) => k.format('POST', '/v1/push', auth,
            JSON.stringify({ app: 'chat', uids: ['bat'], data: { i } }));
        /* pushes from..to-1 pipelined, all answered 200; then the
         * client's messages of them, acked, in order */
        const pushAll = async (from, to) => {
            const reqs = [];
            for (let i = from; i < to; i++) {
                reqs.push(push(i));
            }
            const res = await k.sendRaw(reqs.join(''), to - from, 20000);
            assert.deepStrictEqual(res.map((r) => r.status),
                                   Array(to - from).fill(200),
                                   res.map((r) => r.body).join('\n'));
            const got = [];
            for (let i = from; i < to; i++) {
                const m = await cl.op('msg', 5000);
                got.push(m.data.i);
                cl.send({ op: 'ack', ids: [m.id] });
            }
            assert.deepStrictEqual(got, Array.from({ length: to - from },
                                                   (_, j) => from + j));
        };
        const before = publishes();
        await pushAll(0, 32);
        const n = publishes() - before;
        assert.ok(n <= 16, `${n} PUBLISHes for 32 pushes to one worker`);

        /* a second session of the uid on a worker of an older version */
        const entry = cli('HGETALL', 'pd:u:bat').split('\n');
        assert.strictEqual(entry.length, 2, entry.join('|'));
        const value = entry[1];
        cli('SET', 'pd:n:old/7fff1234', 'b00t');
        cli('HSET', 'pd:u:bat', 'old/b00t/7fff1234/1', value);
        const old = await subscribeRaw(redis.port, 'pd:w:old/7fff1234');

        await pushAll(32, 40);
        /* one message a push, each a whole command with its frame */
        await L.waitFor(() => old.messages.length >= 8, 10000,
                        `8 commands on pd:w:old (${old.messages.length})`);
        const seen = old.messages.map((p) => {
            const j = /\{"i":(\d+)\}/.exec(p.toString('latin1'));
            return j ? Number(j[1]) : -1;
        });
        assert.deepStrictEqual(seen, [32, 33, 34, 35, 36, 37, 38, 39]);

        old.close();
        k.close();
        cl.close();
        await cl.waitClose();
    }, true);
});

/*
 * A reload while pipelined pushes wait for their commits (the table
 * held by a lock): the old worker answers them all, in order, and the
 * connection, whose answers said keep-alive, goes on with a new worker
 * once they are written, not closed at the end of the grace.
 */
test('cluster qos 1: pipelined pushes waiting for their commits at a '
     + 'reload are answered, and their connection goes on with a new '
     + 'worker', PG, async () => {
    await withCluster(async ([a], redis, pg) => {
        const auth = { Authorization: `Bearer ${a.apiKey}`,
                       'Content-Type': 'application/json' };
        const stats = await L.centerConn(a);
        const detached = async () => {
            const r = await stats.get('/v1/stats');
            return r.json.workers.reduce((n, w) => n + w.http_detached, 0);
        };
        const k = await L.keepAlive(a.centerPort);
        const pad = 'x'.repeat(300);
        const push = (i) => k.format('POST', '/v1/push', auth,
            JSON.stringify({ app: 'chat', uids: ['rel'],
                             data: { i, pad } }));
        const before = await detached();

        const locker = cp.spawn(`${pgBin()}/psql`,
            ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres',
             '-d', 'postgres', '-c', 'BEGIN; LOCK TABLE pd_messages; '
             + 'SELECT pg_sleep(30)'], { stdio: 'ignore' });
        try {
            await L.waitFor(() => pg.sql(
                'SELECT count(*) FROM pg_locks l JOIN pg_class c ON '
                + 'c.oid = l.relation WHERE c.relname = \'pd_messages\' '
                + 'AND l.mode = \'AccessExclusiveLock\' AND l.granted')
                === '1', 10000, 'the table locked');

            /* half again the 8 KB head buffer: the pushes past it go
             * on in a second buffer, all waiting at once */
            const reqs = [];
            for (let i = 0; i < 24; i++) {
                reqs.push(push(i));
            }
            const bytes = reqs.join('').length;
            assert.ok(bytes > 8192 * 1.4 && bytes < 8192 * 2, `${bytes}`);
            const answers = k.sendRaw(reqs.join(''), 24, 20000);
            await L.waitFor(async () => (await detached()) - before === 24,
                            5000, 'all 24 pushes detached');

            const old = a.workerPids();
            const owner = L.connOwner(a.centerPort, k.sock.localPort);
            assert.ok(old.includes(owner));
            process.kill(a.masterPid, 'SIGHUP');
            await L.waitFor(() => {
                const now = a.workerPids().filter((p) => !old.includes(p));
                return now.length === old.length;
            }, 15000, 'the new workers');

            /* the lock goes: the commits, then the answers */
            pg.sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                   + 'WHERE query LIKE \'%pg_sleep(30)%\' '
                   + 'AND pid <> pg_backend_pid()');
            const res = await answers;
            assert.deepStrictEqual(res.map((r) => r.status),
                                   Array(24).fill(200),
                                   res.map((r) => r.body).join('\n'));
            assert.deepStrictEqual(res.map((r) => r.headers.connection),
                                   Array(24).fill('keep-alive'));
            for (let i = 1; i < res.length; i++) {
                assert.ok(BigInt(`0x${res[i].json.id.split('-').pop()}`)
                          > BigInt(`0x${res[i - 1].json.id.split('-')
                                                      .pop()}`),
                          'answered in order');
            }

            await L.waitFor(() => !L.procAlive(owner), 15000,
                            'the old worker gone');
            assert.strictEqual(k.closed, false, 'the connection lives on');
            const r = await k.request('POST', '/v1/push', auth,
                JSON.stringify({ app: 'chat', uids: ['rel'], data: 'new' }));
            assert.strictEqual(r.status, 200, r.body);
            assert.strictEqual(r.headers.connection, 'keep-alive');
            const now = L.connOwner(a.centerPort, k.sock.localPort);
            assert.ok(!old.includes(now), `served by ${now}, a new worker`);
            assert.match(a.logText(),
                         /1 HTTP connections handed to worker/);
        } finally {
            locker.kill();
        }
        k.close();
        stats.close();
    }, true, { timeout: '10s' });
});

async function answered(d, body, noAnswer) {
    try {
        return await L.centerPost(d, '/v1/push', body, { timeout: 5000 });
    } catch (e) {
        noAnswer.push(e.message);
        return { status: 0 };
    }
}

test('cluster qos 1: Redis or PostgreSQL down -> 503 and recovery; qos 0 '
     + 'still reaches the node\'s own users', PG, async () => {
    await withCluster(async ([a], redis, pg) => {
        const cl = await W.connect(a.roomPort, 'max', 'phone',
                                   { apps: ['chat'] });
        const noAnswer = [];
        const push = (data) => answered(a, { app: 'chat', uids: ['max'],
                                             data }, noAnswer);

        pg.stop();
        await L.waitFor(async () => (await push(1)).status === 503, 10000,
                        '503 with postgres down');

        await pg.start();
        const ok = await L.waitFor(async () => {
            const r = await push(2);
            return r.status === 200 && r;
        }, 20000, '200 again once postgres is back');
        assert.strictEqual((await cl.next((m) => m.op === 'msg'
                                          && m.id === ok.json.id, 5000)).data,
                           2);

        await redis.stop();
        const r = await L.waitFor(async () => {
            const x = await push(3);
            return x.status === 503 && x;
        }, 10000, '503 with redis down');
        assert.strictEqual(typeof r.json.error, 'string');

        /* qos 0 needs no store: the node's own view knows the user */
        const q0 = await L.centerPost(a, '/v1/push', {
            app: 'chat', uids: ['max'], data: 4, qos: 0,
        });
        assert.strictEqual(q0.status, 200, q0.body);
        assert.strictEqual((await cl.next((m) => m.op === 'msg'
                                          && m.id === q0.json.id, 5000)).data,
                           4);
        assert.ok(cl.open, 'the client stayed connected');

        await redis.start();
        await L.waitFor(async () => (await push(5)).status === 200, 20000,
                        '200 again once redis is back');
        assert.deepStrictEqual(noAnswer, [], 'pushes with no answer');
        cl.close();
    }, true);
});

test('cluster qos 1: Redis restarted during a stream of pushes: every 200 '
     + 'is delivered after recovery, every other push got a 503', PG,
     async (t) => {
    await withCluster(async ([a, b, c], redis) => {
        const uids = ['s0', 's1', 's2', 's3', 's4'];
        const ok = new Map();           /* id -> uid */
        const unanswered = [];          /* no answer: a failure */
        let errors = 0, other = 0, restarted = false;
        const nodes = [a, b, c];

        /* pushes through all three nodes, Redis restarted mid-way */
        for (let i = 0; i < 240; i++) {
            if (i === 80) {
                redis.restart().then(() => { restarted = true; });
            }
            const uid = uids[i % uids.length];
            const d = nodes[i % nodes.length];
            let r;
            try {
                r = await L.centerPost(d, '/v1/push', {
                    app: 'chat', uids: [uid], data: { i },
                }, { timeout: 5000 });
            } catch (e) {
                unanswered.push(`${i}: ${e.message}`);
                continue;
            }
            if (r.status === 200) {
                ok.set(r.json.id, uid);
            } else if (r.status === 503) {
                errors++;
            } else {
                other++;
            }
            await L.delay(10);
        }
        await L.waitFor(() => restarted, 20000, 'redis to be back');
        t.diagnostic(`${ok.size} accepted, ${errors} refused (503) while `
                     + 'Redis restarted');
        assert.deepStrictEqual(unanswered, [], 'pushes with no answer');
        assert.strictEqual(other, 0, 'only 200 or 503');
        assert.ok(ok.size > 0, 'some were accepted');

        /* after recovery, each uid gets every id it was answered 200 for */
        for (const uid of uids) {
            const want = new Set([...ok].filter(([, u]) => u === uid)
                                        .map(([id]) => id));
            const got = await L.waitFor(async () => {
                const cl = await W.connect(b.roomPort, uid, 'phone',
                                           { apps: ['chat'] });
                const seen = new Set();
                for (;;) {
                    const m = await cl.op('msg', 1500).catch(() => null);
                    if (!m) {
                        break;
                    }
                    seen.add(m.id);
                }
                cl.close();
                await cl.waitClose();
                return [...want].every((id) => seen.has(id)) && seen;
            }, 20000, `every accepted message of ${uid}`);
            assert.ok(got.size >= want.size);
        }
    }, true);
});

test('saver.redis: the store on its own Redis, apart from the register\'s; '
     + 'it loses its data and PostgreSQL brings it back', PG, async () => {
    const S = require('./servers.js');
    const reg = await S.startRedis(await L.freePort());
    let store = await S.startRedis(await L.freePort());
    const pg = await startPostgres();
    const nodes = [];
    const conf = (name) => {
        const c = node(name, reg.port, pg.port);
        c.top.saver.redis = [`127.0.0.1:${store.port}`];
        return c;
    };
    const keys = (port, pattern) => S.redisCli(port, ['--scan', '--pattern',
                                                      pattern])
        .split('\n').filter((k) => k).sort();
    try {
        for (const name of ['node-a', 'node-b']) {
            nodes.push(await L.startPushd(conf(name)));
        }
        const [a, b] = nodes;

        const ids = [];
        for (let i = 0; i < 3; i++) {
            const r = await L.waitFor(async () => {
                const x = await L.centerPost(a, '/v1/push', {
                    app: 'chat', uids: ['ola'], data: { i },
                });
                return x.status === 200 && x;
            }, 10000, 'a stored push');
            assert.strictEqual(r.json.stored, 1, r.body);
            ids.push(r.json.id);
        }

        /* the messages are in the store's Redis, none in the register's */
        assert.deepStrictEqual(keys(store.port, 'pd:q:*'), ['pd:q:ola']);
        assert.deepStrictEqual(keys(store.port, 'pd:dl:*'), ['pd:dl:ola']);
        assert.strictEqual(S.redisCli(store.port, ['HLEN', 'pd:dl:ola']), '6',
                           'three ids, each with its body inline');
        assert.deepStrictEqual(keys(reg.port, 'pd:q:*'), []);
        assert.deepStrictEqual(keys(reg.port, 'pd:m:*'), []);
        assert.deepStrictEqual(keys(reg.port, 'pd:saver:*'), []);

        /* the store's Redis restarts empty: the saver reloads it from
         * PostgreSQL, and a client on node-b gets all three in order */
        const port = store.port;
        await store.stop();
        store = await S.startRedis(port);
        await L.waitFor(() => keys(store.port, 'pd:m:*').length === 3,
                        20000, 'the messages reloaded into the store');
        const cl = await W.connect(b.roomPort, 'ola', 'phone',
                                   { apps: ['chat'] });
        const got = [];
        for (let i = 0; i < 3; i++) {
            const m = await cl.op('msg', 5000);
            got.push(m.id);
            cl.send({ op: 'ack', ids: [m.id] });
        }
        assert.deepStrictEqual(got, ids, 'all three, in order');
        await L.waitFor(() => Number(pg.sql('SELECT count(*) FROM '
                                            + 'pd_messages')) === 0,
                        10000, 'the acked rows deleted');
        await L.waitFor(() => keys(store.port, 'pd:q:*').length === 0,
                        10000, 'the acked ids gone from the store');
        assert.deepStrictEqual(keys(store.port, 'pd:m:*'), [],
                               'the acked bodies gone from the store');
        assert.deepStrictEqual(keys(store.port, 'pd:dl:*'), [],
                               'and their counts');

        /* the register's Redis is the register's alone: presence */
        const p = await presence(a, 'ola');
        assert.strictEqual(p.connections[0].node, 'node-b');
        assert.deepStrictEqual(keys(reg.port, 'pd:u:*'), ['pd:u:ola']);
        cl.close();
        await L.stopAllChecked(nodes);
    } finally {
        for (const d of nodes) {
            await d.stop();
        }
        await reg.stop();
        await store.stop();
        pg.remove();
    }
});

test('-t: saver.redis needs the redis backend and ip:port addresses', () => {
    const fs = require('node:fs');
    const path = require('node:path');
    const prefix = L.makePrefix();
    try {
        const f = path.join(prefix, 'conf', 's.yml');
        const check = (saver) => {
            fs.writeFileSync(f, L.toYaml({
                room: { listen: ['127.0.0.1:28082'],
                        auth_secret: L.AUTH_SECRET },
                saver,
            }));
            return L.runPushd(['-p', prefix, '-t', '-c', f]);
        };
        let r = check({ redis: ['127.0.0.1:6390'] });
        assert.strictEqual(r.status, 1, r.out);
        assert.match(r.stderr, /"saver" has "redis" but backend memory/);

        r = check({ backend: 'redis', postgres: 'host=127.0.0.1',
                    redis: ['localhost:6390'] });
        assert.strictEqual(r.status, 1, r.out);
        assert.match(r.stderr, new RegExp('"redis" has a bad address '
                                          + '"localhost:6390": use ip:port'));

        r = check({ backend: 'redis', postgres: 'host=127.0.0.1',
                    redis_password: 'store-password-0123' });
        assert.strictEqual(r.status, 1, r.out);
        assert.match(r.stderr,
                     /has "redis_password" or "redis_user" but no "redis"/);

        r = check({ backend: 'redis', postgres: 'host=127.0.0.1',
                    redis: ['127.0.0.1:6390', '127.0.0.1:6391'] });
        assert.strictEqual(r.status, 0, r.out);
    } finally {
        fs.rmSync(prefix, { recursive: true, force: true });
    }
});
