'use strict';
/*
 * center.test.js: the center's own access policy: center.allow refuses
 * other addresses with 403 before the key is looked at; allowed ones
 * still need the key.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');

const T = { timeout: 30000 };

test('center.allow: 403 outside the list, the key still needed inside',
     T, async () => {
    await L.withPushd({ workers: 2, center: { allow: ['10.0.0.0/8'] } },
                      async (d) => {
        const r = await L.centerPost(d, '/v1/push', { app: 'a',
                                                      uids: ['u'],
                                                      data: 1, qos: 0 });
        assert.strictEqual(r.status, 403, r.body);
        assert.strictEqual(typeof (r.json && r.json.error), 'string',
                           r.body);
    });

    await L.withPushd({ workers: 2,
                        center: { allow: ['127.0.0.0/8', '::1'] } },
                      async (d) => {
        const bad = await L.centerPost(d, '/v1/push', {}, { key: 'nope' });
        assert.strictEqual(bad.status, 401, bad.body);

        const good = await L.centerPost(d, '/v1/push', {}, {});
        /* allowed and authorised: now the body is judged */
        assert.strictEqual(good.status, 400, good.body);
    });
});

test('center.allow with a bad entry fails -t with its position', T,
     async () => {
    await L.withPushd({ workers: 1 }, async (d) => {
        d.writeConfig({ center: { allow: ['10.0.0.0/99'] } });
        const r = L.runPushd(['-p', d.prefix, '-c', d.confPath, '-t']);
        assert.strictEqual(r.status, 1, r.stderr);
        assert.match(r.stderr, /:\d+:\d+: "center" invalid address "10\.0\.0\.0\/99"/,
                     r.stderr);
    });
});
