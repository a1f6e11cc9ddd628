'use strict';
/*
 * zones.test.js: /v1/stats reports each shared zone's size, use and
 * bytes per slot ("zones"), and the use follows the connections made and
 * closed and the messages stored and acked.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');
const WS = require('./ws_client.js');

const T = { timeout: 60000 };

async function zones(d) {
    const r = await L.centerGet(d, '/v1/stats');
    assert.strictEqual(r.status, 200, r.body);
    assert.ok(r.json && r.json.zones, `zones in ${r.body}`);
    return r.json.zones;
}

test('/v1/stats zones: the register counts each connection once and '
     + 'frees it on close, the store each stored message until acked; '
     + 'sizes and slots agree with the zone', T, async () => {
    const MB = 1024 * 1024;

    await L.withPushd({ workers: 2,
                        top: { register: { memory: '8m' },
                               saver: { memory: '8m' } },
                        room: { auth_secret: WS.SECRET } }, async (d) => {
        const z0 = await zones(d);
        const reg = z0.register;
        const st = z0.store;

        /* the geometry: slots that fit in the zone, a chain head each */
        assert.strictEqual(reg.bytes, 8 * MB);
        assert.strictEqual(reg.used, 0);
        assert.ok(reg.entry_bytes >= 64 && reg.entry_bytes <= 512,
                  `entry_bytes ${reg.entry_bytes}`);
        assert.strictEqual(reg.more_used, 0);
        assert.ok(reg.capacity > 1000, `capacity ${reg.capacity}`);
        assert.ok(reg.capacity * reg.entry_bytes
                  + reg.buckets * reg.bucket_bytes
                  + reg.ips_capacity * reg.ip_entry_bytes <= reg.bytes,
                  'the tables fit in the zone');
        assert.ok(reg.buckets >= reg.capacity
                  && (reg.buckets & (reg.buckets - 1)) === 0,
                  `buckets ${reg.buckets}: a power of two >= capacity`);
        assert.strictEqual(reg.ips_used, 0);
        assert.ok(reg.ips_capacity > 0 && reg.ip_entry_bytes > 0);

        assert.strictEqual(st.bytes, 8 * MB);
        assert.strictEqual(st.used, 0);
        assert.ok(st.entry_bytes > 0 && st.capacity > 0
                  && st.capacity * st.entry_bytes < st.bytes,
                  JSON.stringify(st));
        assert.strictEqual(st.mailboxes_used, 0);

        /* 24 connections, two of them the same uid on two devices */
        const cls = [];
        for (let i = 0; i < 23; i++) {
            cls.push(await WS.connect(d.roomPort, `z${i}`, 'd1'));
        }
        cls.push(await WS.connect(d.roomPort, 'z0', 'd2'));

        let z;
        await L.waitFor(async () => {
            z = await zones(d);
            return z.register.used === 24;
        }, 5000, '24 register entries');
        assert.strictEqual(z.register.more_used, 0);

        /* a uid and device longer together than an entry holds take a
         * second slot, freed with the first */
        const long = await WS.connect(d.roomPort, 'L'.repeat(50),
                                      'D'.repeat(30));
        await L.waitFor(async () => {
            z = await zones(d);
            return z.register.used === 25 && z.register.more_used === 1;
        }, 5000, '25 entries, one of them in two slots');
        long.close();
        await L.waitFor(async () => {
            z = await zones(d);
            return z.register.used === 24 && z.register.more_used === 0;
        }, 5000, 'the long-named entry\'s two slots freed');

        /* every client comes from 127.0.0.1: one count per worker
         * holding some of them */
        assert.ok(z.register.ips_used >= 1 && z.register.ips_used <= 2,
                  `ips_used ${z.register.ips_used}`);
        assert.strictEqual(z.register.capacity, reg.capacity);

        /* qos 1 to 5 offline uids: 5 entries in 5 mailboxes */
        const off = ['o1', 'o2', 'o3', 'o4', 'o5'];
        const r = await L.centerPost(d, '/v1/push', { app: 'a', uids: off,
                                                      data: 1, qos: 1 });
        assert.strictEqual(r.status, 200, r.body);
        z = await zones(d);
        assert.strictEqual(z.store.used, 5);
        assert.strictEqual(z.store.mailboxes_used, 5);
        assert.ok(z.store.payload_bytes_used > 0);

        /* one of them connects and acks: 4 left */
        const o1 = await WS.connect(d.roomPort, 'o1', 'd1');
        const m = await o1.op('msg');
        o1.send({ op: 'ack', ids: [m.id] });
        await L.waitFor(async () => {
            z = await zones(d);
            return z.store.used === 4 && z.register.used === 25;
        }, 5000, '4 stored, 25 registered');

        /* closing ten frees ten entries */
        o1.close();
        for (const c of cls.slice(0, 10)) {
            c.close();
        }
        await L.waitFor(async () => {
            z = await zones(d);
            return z.register.used === 14;
        }, 5000, '14 register entries after the closes');

        for (const c of cls.slice(10)) {
            c.close();
        }
        await L.waitFor(async () => {
            z = await zones(d);
            return z.register.used === 0 && z.register.ips_used === 0;
        }, 5000, 'no entry and no address count left');
    });
});
