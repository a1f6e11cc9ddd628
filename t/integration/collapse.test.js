'use strict';
/*
 * collapse.test.js: POST /v1/push with "collapse": a newer stored message
 * of the same (uid, app, key) replaces the older one not yet acked, with
 * the memory store and with the cluster store (Redis, and the durable
 * log in PostgreSQL, which loses the replaced rows too, so a reload
 * from it never brings one back, and keeps the key, so a version after
 * the reload still replaces the reloaded one).  An offline user gets only the last of
 * three versions; other keys, apps and uids are left alone; a client
 * online at push time gets every version live; bad keys are refused.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');
const W = require('./ws_client.js');
const S = require('./servers.js');

const T = { timeout: 120000 };
const PG = {
    timeout: 180000,
    skip: (!S.haveRedis() && 'redis-server is not installed')
          || (!S.pgBin() && 'PostgreSQL is not installed'),
};

function memoryConf() {
    return {
        workers: 2,
        top: {
            register: { memory: '8m' },
            saver: { memory: '16m' },
        },
        room: { auth_secret: W.SECRET },
    };
}

function clusterConf(redisPort, pg) {
    return {
        workers: 2,
        top: {
            node_id: 'node-c1',
            register: { backend: 'redis', redis: [`127.0.0.1:${redisPort}`],
                        memory: '8m', node_ttl: '3s', timeout: '500ms' },
            saver: { backend: 'redis', memory: '8m', timeout: '1s',
                     postgres: pg.conninfo },
        },
        room: { auth_secret: W.SECRET },
    };
}

/* one statement on pg through psql: its output, trimmed */
function psql(pg) {
    return (q) => {
        const cp = require('node:child_process');
        const r = cp.spawnSync(`${S.pgBin()}/psql`,
                               [pg.conninfo, '-Atc', q], { encoding: 'utf8' });
        if (r.status !== 0) {
            throw new Error(`psql failed: ${r.stderr}`);
        }
        return r.stdout.trim();
    };
}

function push(d, body) {
    return L.centerPost(d, '/v1/push', body);
}

/* every msg frame that arrives within ms, in order */
async function drain(cl, ms = 800) {
    const got = [];
    for (;;) {
        const m = await cl.op('msg', ms).catch(() => null);
        if (!m) {
            return got;
        }
        got.push(m);
    }
}

/*
 * The scenario both stores must pass: three versions of a notice for an
 * offline user, beside messages the collapse must leave alone.
 */
async function threeVersions(d) {
    const ids = {};
    for (const v of [1, 2, 3]) {
        const r = await push(d, { app: 'news', uids: ['ana', 'ben'],
                                  data: { v }, collapse: 'inbox' });
        assert.strictEqual(r.status, 200, r.body);
        assert.strictEqual(r.json.stored, 2, r.body);
        ids[`v${v}`] = r.json.id;
    }

    /* another key, another app, no key: each kept */
    let r = await push(d, { app: 'news', uids: ['ana'], data: 'other-key',
                            collapse: 'likes' });
    assert.strictEqual(r.status, 200, r.body);
    ids.likes = r.json.id;
    r = await push(d, { app: 'chat', uids: ['ana'], data: 'other-app',
                        collapse: 'inbox' });
    assert.strictEqual(r.status, 200, r.body);
    ids.chat = r.json.id;
    r = await push(d, { app: 'news', uids: ['ana'], data: 'plain' });
    assert.strictEqual(r.status, 200, r.body);
    ids.plain = r.json.id;

    /* ana comes online: the third version only, then the others in
     * store order */
    const cl = await W.connect(d.roomPort, 'ana', 'phone',
                               { apps: ['news', 'chat'] });
    const got = await drain(cl);
    const news = got.filter((m) => m.app === 'news');
    assert.deepStrictEqual(news.map((m) => m.data),
                           [{ v: 3 }, 'other-key', 'plain'],
                           JSON.stringify(got));
    assert.strictEqual(news[0].id, ids.v3);
    assert.deepStrictEqual(got.filter((m) => m.app === 'chat')
                              .map((m) => m.id), [ids.chat]);
    assert.ok(!got.some((m) => m.id === ids.v1 || m.id === ids.v2),
              'no replaced version');

    /* acked: nothing is left for ana, on any device */
    cl.send({ op: 'ack', ids: got.map((m) => m.id) });
    await L.waitFor(async () => {
        const x = await W.connect(d.roomPort, 'ana', 'tablet',
                                  { apps: ['news', 'chat'] });
        const left = await drain(x, 300);
        x.close();
        return left.length === 0;
    }, 10000, 'the acks to empty ana\'s mailboxes');

    /* ben, offline all along: the third version alone */
    const cb = await W.connect(d.roomPort, 'ben', 'phone', { apps: ['news'] });
    const gb = await drain(cb);
    assert.deepStrictEqual(gb.map((m) => m.id), [ids.v3]);
    assert.deepStrictEqual(gb[0].data, { v: 3 });

    /* online at push time: every version comes live (each one was the
     * newest when it was sent); ben reconnecting unacked gets the last */
    const live = [];
    for (const v of [4, 5]) {
        r = await push(d, { app: 'news', uids: ['ben'], data: { v },
                            collapse: 'inbox' });
        assert.strictEqual(r.status, 200, r.body);
        assert.strictEqual(r.json.online, 1, r.body);
        live.push(r.json.id);
        const m = await cb.op('msg', 5000);
        assert.strictEqual(m.id, r.json.id);
    }
    cb.close();
    await cb.waitClose();
    const cb2 = await W.connect(d.roomPort, 'ben', 'tablet',
                                { apps: ['news'] });
    assert.deepStrictEqual((await drain(cb2)).map((m) => m.id),
                           [live[1]], 'only the newest after a reconnect');
    cb2.close();
    cl.close();
    return ids;
}

test('collapse: bad keys are refused with a clear error',
     T, async () => {
    await L.withPushd(memoryConf(), async (d) => {
        const cases = [
            [{ app: 'a', uids: ['u'], data: 1, collapse: '' }, /"collapse"/],
            [{ app: 'a', uids: ['u'], data: 1, collapse: 'x'.repeat(65) },
             /1 to 64 bytes/],
            [{ app: 'a', uids: ['u'], data: 1, collapse: 'a b' },
             /"collapse" must be a key/],
            [{ app: 'a', uids: ['u'], data: 1, collapse: 7 },
             /"collapse" must be a key/],
            [{ app: 'a', uids: ['u'], data: 1, qos: 0, collapse: 'k' },
             /needs qos 1/],
        ];
        for (const [body, re] of cases) {
            const r = await push(d, body);
            assert.strictEqual(r.status, 400, r.body);
            assert.match(r.json.error, re);
        }
        const b = await L.centerPost(d, '/v1/broadcast',
                                     { app: 'a', data: 1, collapse: 'k' });
        assert.strictEqual(b.status, 400, b.body);
        assert.match(b.json.error, /pushes, not broadcasts/);

        /* 64 bytes is fine, and the daemon serves on */
        const ok = await push(d, { app: 'a', uids: ['u'], data: 1,
                                   collapse: 'k'.repeat(64) });
        assert.strictEqual(ok.status, 200, ok.body);
    });
});

test('collapse: three versions in the memory store, an offline user '
     + 'gets the third only', T, async () => {
    await L.withPushd(memoryConf(), async (d) => {
        await threeVersions(d);
    });
});

test('collapse: a full mailbox holding the key takes the newer version',
     T, async () => {
    const conf = memoryConf();
    conf.top.saver.max_per_mailbox = 2;
    await L.withPushd(conf, async (d) => {
        for (const body of [{ data: 'a' }, { data: 'b', collapse: 'k' }]) {
            const r = await push(d, Object.assign({ app: 'n', uids: ['fu'] },
                                                  body));
            assert.strictEqual(r.json.stored, 1, r.body);
        }
        /* full: a plain one is refused, the key's newer one replaces */
        let r = await push(d, { app: 'n', uids: ['fu'], data: 'c' });
        assert.strictEqual(r.json.stored, 0, r.body);
        r = await push(d, { app: 'n', uids: ['fu'], data: 'b2',
                            collapse: 'k' });
        assert.strictEqual(r.json.stored, 1, r.body);
        const cl = await W.connect(d.roomPort, 'fu', 'p', { apps: ['n'] });
        assert.deepStrictEqual((await drain(cl)).map((m) => m.data),
                               ['a', 'b2']);
        cl.close();
    });
});

test('collapse: three versions in the cluster store (Redis and '
     + 'PostgreSQL); the replaced rows leave the log, so a reload after '
     + 'Redis lost its data brings back none of them', PG, async () => {
    const redisPort = await L.freePort();
    let redis = await S.startRedis(redisPort);
    const pg = await S.startPostgres();
    const sql = psql(pg);
    try {
        await L.withPushd(clusterConf(redisPort, pg), async (d) => {
            await L.waitFor(async () => (await push(d, {
                app: 'warm', uids: ['nobody'], data: 1,
            })).status === 200, 15000, 'the cluster store up');
            /* and its first reload (an empty log, unless worker 0 saw
             * PostgreSQL only at its next check) done: one during the
             * pushes below answers 503 on its worker and may bring back
             * a version replaced a moment before */
            await L.waitFor(() => S.redisCli(redisPort, ['GET', 'pd:saver:ok'])
                                  === '1', 15000, 'pd:saver:ok');

            const ids = await threeVersions(d);

            /* the log holds no replaced version of ben's */
            await L.waitFor(() => sql('SELECT count(*) FROM pd_messages '
                                      + `WHERE uid = 'ben' AND id IN `
                                      + `('${ids.v1}','${ids.v2}',`
                                      + `'${ids.v3}')`) === '0',
                            10000, 'the replaced and acked rows deleted');

            /* ben's v5 unacked; v6 replaces it while he is away; then
             * Redis loses everything and the log is reloaded */
            const r6 = await push(d, { app: 'news', uids: ['ben'],
                                       data: { v: 6 }, collapse: 'inbox' });
            assert.strictEqual(r6.status, 200, r6.body);
            await L.waitFor(() => sql('SELECT string_agg(id, \',\') FROM '
                                      + 'pd_messages WHERE uid = \'ben\'')
                                  === r6.json.id,
                            10000, 'only v6 in the log');

            await redis.stop();
            redis = await S.startRedis(redisPort);
            const cl = await L.waitFor(async () => {
                const x = await W.connect(d.roomPort, 'ben', 'phone',
                                          { apps: ['news'] });
                const got = await drain(x, 1500);
                x.close();
                return got.length ? got : null;
            }, 20000, 'ben\'s messages after the reload');
            assert.deepStrictEqual(cl.map((m) => m.id), [r6.json.id]);
            assert.deepStrictEqual(cl[0].data, { v: 6 });

            /* the reloaded message kept its key: v7 replaces it.  The
             * worker that takes the push may not have its link to the
             * new Redis yet, or be reloading: a 503 (nothing kept) until
             * it has, polled; any other answer fails at once */
            let r7;
            for (const end = Date.now() + 10000; ;) {
                r7 = await push(d, { app: 'news', uids: ['ben'],
                                     data: { v: 7 }, collapse: 'inbox' });
                if (r7.status !== 503 || Date.now() > end) {
                    break;
                }
                await L.delay(50);
            }
            assert.strictEqual(r7.status, 200, r7.body);
            const c7 = await W.connect(d.roomPort, 'ben', 'phone',
                                       { apps: ['news'] });
            assert.deepStrictEqual((await drain(c7)).map((m) => m.id),
                                   [r7.json.id]);
            c7.close();
            await L.waitFor(() => sql('SELECT string_agg(id, \',\') FROM '
                                      + 'pd_messages WHERE uid = \'ben\'')
                                  === r7.json.id,
                            10000, 'only v7 in the log');
        });
    } finally {
        await redis.stop();
        pg.remove();
    }
});

test('collapse: a reload that meets a replaced version whose row the log '
     + 'still holds keeps the newer one, and its row', PG, async () => {
    const redisPort = await L.freePort();
    const redis = await S.startRedis(redisPort);
    const pg = await S.startPostgres();
    const sql = psql(pg);
    try {
        await L.withPushd(clusterConf(redisPort, pg), async (d) => {
            await L.waitFor(() => S.redisCli(redisPort, ['GET', 'pd:saver:ok'])
                                  === '1', 15000, 'pd:saver:ok');
            let r;
            await L.waitFor(async () => {
                r = await push(d, { app: 'news', uids: ['cara'],
                                    data: { v: 2 }, collapse: 'inbox' });
                return r.status === 200;
            }, 15000, 'the cluster store up');
            const v2 = r.json.id;
            await L.waitFor(() => sql('SELECT count(*) FROM pd_messages '
                                      + `WHERE id = '${v2}'`) === '1',
                            10000, 'v2 in the log');

            /* the version v2 replaced, its row still in the log (as when
             * its DELETE had not landed when a reload read the log): an
             * older id of the same node, stored a minute before */
            const m = /^(.*-)([0-9a-f]+)$/.exec(v2);
            assert.ok(m, v2);
            const v1 = m[1] + (BigInt('0x' + m[2]) - 1n).toString(16);
            sql('INSERT INTO pd_messages (uid, id, app, data, expires, '
                + 'collapse, stored) SELECT uid, '
                + `'${v1}', app, data, expires, collapse, `
                + 'stored - interval \'1 minute\' FROM pd_messages '
                + `WHERE id = '${v2}'`);

            /* Redis keeps its data but loses the marker: the next check
             * reloads the log into it */
            S.redisCli(redisPort, ['DEL', 'pd:saver:ok']);
            await L.waitFor(() => S.redisCli(redisPort, ['GET', 'pd:saver:ok'])
                                  === '1', 15000, 'the reload done');

            const cl = await W.connect(d.roomPort, 'cara', 'phone',
                                       { apps: ['news'] });
            const got = await drain(cl);
            assert.deepStrictEqual(got.map((x) => x.id), [v2],
                                   'the newer version alone');
            await L.waitFor(() => sql('SELECT string_agg(id, \',\') FROM '
                                      + 'pd_messages WHERE uid = \'cara\'')
                                  === v2, 10000,
                            'the log keeps v2 and loses v1');
            cl.close();
        });
    } finally {
        await redis.stop();
        pg.remove();
    }
});
