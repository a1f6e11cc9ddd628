'use strict';
/*
 * cluster.test.js: three pushd nodes on one Redis (register.backend:
 * redis): a client on one node is reached by the API of another, presence
 * and kick work across nodes, a broadcast reaches every node once, a
 * SIGKILLed node's users vanish within node_ttl, and a Redis restart is
 * survived (the nodes reconnect and announce their sessions again).  The
 * test starts its own redis-server on a free port.
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

function node(name, redisPort) {
    return {
        workers: 2,
        top: {
            node_id: name,
            register: { backend: 'redis', redis: [`127.0.0.1:${redisPort}`],
                        memory: '8m', node_ttl: '3s', timeout: '500ms' },
            saver: { memory: '8m' },
        },
        room: { auth_secret: W.SECRET },
    };
}

async function presence(d, uid) {
    const r = await L.centerGet(d, `/v1/users/${uid}`);
    assert.strictEqual(r.status, 200, r.body);
    return JSON.parse(r.body);
}

/* three nodes and their own redis; fn(nodes, redis) */
async function withCluster(fn) {
    const redisPort = await L.freePort();
    let redis = await startRedis(redisPort);
    const nodes = [];
    try {
        for (const name of ['node-a', 'node-b', 'node-c']) {
            nodes.push(await L.startPushd(node(name, redisPort)));
        }
        await fn(nodes, {
            port: redisPort,
            restart: async () => {
                await stopRedis(redis);
                redis = await startRedis(redisPort);
            },
        });
    } finally {
        for (const d of nodes) {
            await d.stop();
        }
        await stopRedis(redis);
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
        const cb = await W.connect(b.roomPort, 'kim', 'phone',
                                   { apps: ['chat'] });
        const cc = await W.connect(c.roomPort, 'kim', 'tablet',
                                   { apps: ['chat'] });
        await L.waitFor(async () => (await presence(a, 'kim'))
                        .connections.length === 2, 10000, 'both sessions');

        /* node-b dies without a word: within node_ttl (3 s) its session
         * is gone from presence, node-c's stays */
        const t0 = Date.now();
        b.killHard();
        await L.waitFor(async () => {
            const v = await presence(a, 'kim');
            return v.connections.length === 1
                && v.connections[0].node === 'node-c';
        }, 8000, 'node-b\'s session to vanish');
        assert.ok(Date.now() - t0 < 8000, 'within node_ttl and slack');

        /* Redis loses everything; the nodes reconnect by themselves and
         * announce their sessions again */
        await redis.restart();
        await L.waitFor(async () => {
            const v = await presence(a, 'kim');
            return v.connections.length === 1
                && v.connections[0].node === 'node-c';
        }, 15000, 'node-c\'s session back in the register');

        const r = await L.centerPost(a, '/v1/push', {
            app: 'chat', uids: ['kim'], data: 'after', qos: 0,
        });
        assert.strictEqual(r.status, 200, r.body);
        const m = await cc.op('msg', 5000);
        assert.strictEqual(m.data, 'after');
        cc.close();
        cb.close();
    });
});
