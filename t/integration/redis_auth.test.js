'use strict';
/*
 * redis_auth.test.js: the scale-out backends on a Redis that wants
 * credentials.  Two nodes log in as an ACL user that may touch only
 * keys and channels "pd:*" and no @dangerous command (the default user
 * is off), and presence, routing, broadcast and qos 1 with its scripts
 * all work, with nothing refused in Redis' ACL LOG.  A wrong password is
 * refused, logged, and qos 1 pushes get 503.  And every key a Lua script
 * touches comes in through KEYS.
 */

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const L = require('./lib.js');
const W = require('./ws_client.js');
const S = require('./servers.js');

const T = { timeout: 120000 };
const REDIS = { ...T, skip: !S.haveRedis() && 'redis-server is not installed' };
const PG = { ...T, skip: (!S.haveRedis() || !S.pgBin())
                         && 'redis-server or postgresql is not installed' };

const USER = 'pushd';
const PASS = 'redis-pass-0123456789';
const ADMIN = ['--user', 'admin', '--pass', 'admin-pass', '--no-auth-warning'];

/* the default user off; pushd's user held to pd:* and no @dangerous */
const ACL_ARGS = [
    '--user', 'default', 'off',
    '--user', USER, 'on', `>${PASS}`, '~pd:*', '&pd:*', '+@all',
    '-@dangerous',
    '--user', 'admin', 'on', '>admin-pass', '~*', '&*', '+@all',
];

function node(name, redisPort, register = {}, pg = null) {
    const saver = { memory: '8m' };
    if (pg) {
        Object.assign(saver, { backend: 'redis', timeout: '1s',
                               postgres: pg.conninfo });
    }
    return {
        workers: 2,
        top: {
            node_id: name,
            register: Object.assign({
                backend: 'redis', redis: [`127.0.0.1:${redisPort}`],
                memory: '8m', node_ttl: '3s', timeout: '500ms',
                redis_user: USER, redis_password: PASS,
            }, register),
            saver,
        },
        room: { auth_secret: W.SECRET },
    };
}

async function presence(d, uid) {
    const r = await L.centerGet(d, `/v1/users/${uid}`);
    assert.strictEqual(r.status, 200, r.body);
    return JSON.parse(r.body);
}

test('every key a Lua script touches is passed in KEYS', () => {
    const dir = path.join(__dirname, '..', '..', 'src', 'modules');
    let scripts = 0, calls = 0;
    for (const mod of fs.readdirSync(dir)) {
        for (const f of fs.readdirSync(path.join(dir, mod))) {
            if (!f.endsWith('.c')) {
                continue;
            }
            const src = fs.readFileSync(path.join(dir, mod, f), 'utf8');
            /* the pieces a script may share: `#define PD_..._LUA` string
             * macros, expanded where a script names them */
            const macros = {};
            for (const d of src.matchAll(
                /#define\s+(PD_\w+_LUA)\s*\\\n((?:.*\\\n)*.*)/g)) {
                macros[d[1]] = [...d[2].matchAll(/"((?:[^"\\]|\\.)*)"/g)]
                    .map((x) => x[1]).join('');
            }
            /* the C string literals (and macros) of each `static const
             * char x_lua[]` */
            const piece = /"((?:[^"\\]|\\.)*)"|(PD_\w+_LUA)/g;
            const re = new RegExp('_lua\\[\\]\\s*=\\s*((?:\\s*(?:'
                                  + piece.source + '))+)\\s*;', 'g');
            for (const m of src.matchAll(re)) {
                const lua = [...m[1].matchAll(piece)].map((x) => {
                    if (x[2] === undefined) {
                        return x[1];
                    }
                    assert.ok(x[2] in macros, `${f}: ${x[2]} not defined`);
                    return macros[x[2]];
                }).join('');
                scripts++;
                for (const c of lua.matchAll(/redis\.call\('(\w+)',\s*/g)) {
                    calls++;
                    const arg = lua.slice(c.index + c[0].length);
                    assert.match(arg, /^KEYS\[/, `${f}: ${c[1]} names its key `
                                 + `outside KEYS: ...${lua.slice(c.index,
                                     c.index + 60)}`);
                }
            }
        }
    }
    assert.ok(scripts >= 3 && calls >= 10, `${scripts} scripts, ${calls} calls`);
});

test('an ACL user held to pd:* and no @dangerous command runs a cluster: '
     + 'presence, routing, broadcast, qos 1 scripts', PG, async () => {
    const redis = await S.startRedis(await L.freePort(), ACL_ARGS);
    const pg = await S.startPostgres();
    const nodes = [];
    try {
        /* nothing gets in without credentials */
        assert.match(S.redisCli(redis.port, ['PING']), /NOAUTH/);

        for (const name of ['node-a', 'node-b']) {
            nodes.push(await L.startPushd(node(name, redis.port, {}, pg)));
        }
        const [a, b] = nodes;

        /* qos 1 for an offline uid through node-a, fetched on node-b */
        const ids = [];
        for (let i = 0; i < 3; i++) {
            const r = await L.waitFor(async () => {
                const x = await L.centerPost(a, '/v1/push', {
                    app: 'chat', uids: ['ann'], data: { i },
                });
                return x.status === 200 && x;
            }, 10000, 'a stored push');
            assert.strictEqual(r.json.stored, 1, r.body);
            ids.push(r.json.id);
        }

        const cl = await W.connect(b.roomPort, 'ann', 'phone',
                                   { apps: ['chat'] });
        const got = [];
        for (let i = 0; i < 3; i++) {
            const m = await cl.op('msg', 5000);
            got.push(m.id);
            cl.send({ op: 'ack', ids: [m.id] });
        }
        assert.deepStrictEqual(got, ids, 'all three, in order');

        /* presence and routing across the nodes */
        await L.waitFor(async () => (await presence(a, 'ann')).online,
                        10000, 'ann online as seen from node-a');
        const q0 = await L.centerPost(a, '/v1/push', {
            app: 'chat', uids: ['ann'], data: 'live', qos: 0,
        });
        assert.strictEqual(q0.status, 200, q0.body);
        assert.strictEqual((await cl.op('msg', 5000)).data, 'live');

        const br = await L.centerPost(a, '/v1/broadcast', {
            app: 'chat', data: 'all', qos: 0,
        });
        assert.strictEqual(br.status, 200, br.body);
        assert.strictEqual((await cl.op('msg', 5000)).data, 'all');

        /* acked: a new connection gets nothing more */
        cl.close();
        await cl.waitClose();
        const again = await W.connect(a.roomPort, 'ann', 'tablet',
                                      { apps: ['chat'] });
        await assert.rejects(again.op('msg', 1000), 'nothing after the acks');
        again.close();

        /* Redis refused nothing pushd asked */
        assert.strictEqual(S.redisCli(redis.port, [...ADMIN, 'ACL', 'LOG']),
                           '', 'ACL LOG');
        for (const d of nodes) {
            assert.ok(!/AUTH.*refused|NOPERM|NOAUTH/.test(d.logText()),
                      d.logText());
            assert.match(d.logText(), /connected, authenticated as pushd/);
        }
        await L.stopAllChecked(nodes);
    } finally {
        for (const d of nodes) {
            await d.stop();
        }
        await redis.stop();
        pg.remove();
    }
});

test('a wrong Redis password is refused and logged; qos 1 gets 503', PG,
     async () => {
    const redis = await S.startRedis(await L.freePort(), ACL_ARGS);
    const pg = await S.startPostgres();
    try {
        await L.withPushd(node('node-x', redis.port,
                               { redis_password: 'not-the-password' }, pg),
                          async (d) => {
            const re = /redis 127\.0\.0\.1:\d+: AUTH as pushd refused: WRONGPASS/;
            await L.waitFor(() => re.test(d.logText()), 10000,
                            'the refusal logged');
            const r = await L.centerPost(d, '/v1/push', {
                app: 'chat', uids: ['bob'], data: 1,
            });
            assert.strictEqual(r.status, 503, r.body);
            assert.ok(!/authenticated/.test(d.logText()), d.logText());
        });
    } finally {
        await redis.stop();
        pg.remove();
    }
});

test('-t: redis_user needs redis_password; the placeholder is refused', () => {
    const prefix = L.makePrefix();
    try {
        const f = path.join(prefix, 'conf', 'r.yml');
        const room = 'room:\n  listen: ["127.0.0.1:28080"]\n'
                     + '  auth_secret: "0123456789abcdef0"\n';
        fs.writeFileSync(f, `${room}register:\n  backend: redis\n`
                         + '  redis_user: pushd\n');
        let r = L.runPushd(['-p', prefix, '-t', '-c', f]);
        assert.strictEqual(r.status, 1, r.stderr);
        /* at the directive, not at "register:" (issue 13) */
        assert.strictEqual(r.stderr.split('\n')[0], `pushd: ${f}:6:15: `
                           + '"register" has "redis_user" but no '
                           + '"redis_password"');

        fs.writeFileSync(f, `${room}register:\n  backend: redis\n`
                         + '  redis_password: change-me-too\n');
        r = L.runPushd(['-p', prefix, '-t', '-c', f]);
        assert.strictEqual(r.status, 1, r.stderr);
        assert.match(r.stderr.split('\n')[0], new RegExp(
            `^pushd: ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:6:19: `
            + '"redis_password" is the placeholder'));
    } finally {
        fs.rmSync(prefix, { recursive: true, force: true });
    }
});

test('saver.redis with its own credentials: the store\'s server takes '
     + 'saver.redis_user/redis_password, the register\'s its own', PG,
     async () => {
    const reg = await S.startRedis(await L.freePort());
    const store = await S.startRedis(await L.freePort(), ACL_ARGS);
    const pg = await S.startPostgres();
    try {
        const conf = node('node-s', reg.port, { redis_user: null,
                                                redis_password: null }, pg);
        Object.assign(conf.top.saver, {
            redis: [`127.0.0.1:${store.port}`],
            redis_user: USER, redis_password: PASS,
        });
        await L.withPushd(conf, async (d) => {
            const re = new RegExp(`redis 127\\.0\\.0\\.1:${store.port}: `
                                  + 'connected, authenticated as pushd');
            await L.waitFor(() => re.test(d.logText()), 10000,
                            'the store\'s server authenticated');
            const r = await L.waitFor(async () => {
                const x = await L.centerPost(d, '/v1/push', {
                    app: 'chat', uids: ['sam'], data: 's',
                });
                return x.status === 200 && x;
            }, 10000, 'a stored push');
            assert.strictEqual(r.json.stored, 1, r.body);
            assert.strictEqual(S.redisCli(store.port, [...ADMIN, 'EXISTS',
                                                       'pd:q:sam']), '1');
            assert.strictEqual(S.redisCli(store.port, [...ADMIN, 'ACL',
                                                       'LOG']), '',
                               'the store refused nothing');
            const cl = await W.connect(d.roomPort, 'sam', 'phone',
                                       { apps: ['chat'] });
            assert.strictEqual((await cl.op('msg', 5000)).id, r.json.id);
            cl.close();
        });
    } finally {
        await reg.stop();
        await store.stop();
        pg.remove();
    }
});
