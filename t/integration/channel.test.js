'use strict';
/*
 * channel.test.js: the inter-worker channel seen through the center's
 * GET /v1/workers: the answering worker pings every other slot, so each
 * slot reported ok was reached over the channel; a respawned worker is
 * reachable again under its new pid.
 */

const test = require('node:test');
const assert = require('node:assert');
const L = require('./lib.js');

const T = { timeout: 60000 };

/* asserts the /v1/workers answer matches pids, every slot ok */
function checkWorkers(res, pids) {
    assert.strictEqual(res.status, 200);
    assert.ok(Array.isArray(res.json.workers), res.body);
    const ws = res.json.workers.slice().sort((a, b) => a.slot - b.slot);
    assert.deepStrictEqual(ws.map((w) => w.slot),
                           pids.map((_, i) => i), res.body);
    assert.deepStrictEqual(ws.map((w) => w.pid).sort((a, b) => a - b), pids,
                           res.body);
    for (const w of ws) {
        assert.strictEqual(w.ok, true, `slot ${w.slot}: ${JSON.stringify(w)}`);
    }
    /* "worker" is the answering slot; the others went over the channel */
    assert.strictEqual(typeof res.json.worker, 'number', res.body);
    for (const w of ws) {
        assert.strictEqual(w.via, w.slot === res.json.worker ? 'self'
                                                             : 'channel',
                           `slot ${w.slot}: ${JSON.stringify(w)}`);
    }
    return res.json.worker;
}

test('every worker reaches every other over the channel', T, async () => {
    await L.withPushd({ workers: 3 }, async (d) => {
        const pids = d.workerPids();
        /* fresh connections land on different workers */
        const answered = new Set();
        for (let i = 0; i < 12; i++) {
            answered.add(checkWorkers(await L.centerGet(d, '/v1/workers'),
                                      pids));
        }
        assert.ok(answered.size >= 2,
                  `answers came from slots ${[...answered].join(',')}`);
        const noKey = await L.request(d.centerPort, 'GET', '/v1/workers');
        assert.strictEqual(noKey.status, 401);
    });
});

test('a respawned worker is reachable under its new pid', T, async () => {
    await L.withPushd({ workers: 3 }, async (d) => {
        const before = d.workerPids();
        const victim = before[1];
        d.kill(victim, 'SIGKILL');
        const after = await L.waitFor(() => {
            const now = d.workerPids();
            return now.length === 3 && !now.includes(victim) ? now : null;
        }, 5000, 'the respawned worker');
        /* the new worker's channel reaches its siblings shortly after */
        await L.waitFor(async () => {
            const r = await L.centerGet(d, '/v1/workers');
            return r.status === 200 && r.json.workers.every((w) => w.ok)
                && r.json.workers.every((w) => after.includes(w.pid));
        }, 5000, 'every slot ok with the new pid');
        for (let i = 0; i < 12; i++) {
            checkWorkers(await L.centerGet(d, '/v1/workers'), after);
        }
    });
});
