'use strict';
/*
 * ids.test.js: message ids never repeat across a node's runs, whatever
 * the wall clock did between them (seq_file, src/core/pd_seq.c).  A run
 * starts its ids at the clock's ms << 12 or above the mark the last run
 * left in seq_file, whichever is higher, and keeps the mark above every
 * id it hands out.  A mark a day ahead of the clock stands for a clock
 * that stepped back a day since the last run.
 */

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const L = require('./lib.js');

const T = { timeout: 60000 };

/* the store, for qos 1 pushes to offline uids */
const STORE = { register: { memory: '16m' }, saver: { memory: '16m' } };

function idSeq(id) {
    return BigInt(`0x${id.slice(id.lastIndexOf('-') + 1)}`);
}

function readMark(file) {
    const text = fs.readFileSync(file, 'utf8');
    assert.match(text, /^\d{20}\n$/,
                 `the mark in ${file}: ${JSON.stringify(text)}`);
    return BigInt(text.trim());
}

/* n qos 1 pushes to an offline uid (stored, answered with their ids) */
async function pushIds(d, n) {
    const ids = [];
    for (let i = 0; i < n; i++) {
        const r = await L.centerPost(d, '/v1/push',
                                     { app: 'a', uids: [`u${i % 7}`],
                                       data: `m${i}`, qos: 1 });
        assert.strictEqual(r.status, 200, r.body);
        ids.push(idSeq(r.json.id));
    }
    return ids;
}

test('ids start above the mark of seq_file, a day ahead of the clock', T,
     async () => {
    const ahead = BigInt(Date.now() + 86400000) << 12n;
    await L.withPushd({
        top: STORE,
        prepare: (d) => fs.writeFileSync(
            d.path('logs/pushd.seq'), `${String(ahead).padStart(20, '0')}\n`),
    }, async (d) => {
        const ids = await pushIds(d, 40);
        for (const s of ids) {
            assert.ok(s > ahead, `id ${s} above the mark ${ahead}`);
        }
        for (let i = 1; i < ids.length; i++) {
            assert.notStrictEqual(ids[i], ids[i - 1]);
        }
        /* the mark moved on: it covers every id handed out */
        const mark = readMark(d.path('logs/pushd.seq'));
        const max = ids.reduce((a, b) => (a > b ? a : b));
        assert.ok(mark >= max, `mark ${mark} >= last id ${max}`);
    });
});

test('a restart on the same seq file hands out no id of the run before', T,
     async () => {
    let first, mark;
    await L.withPushd({ top: { ...STORE, seq_file: 'logs/ids.mark' } }, async (d) => {
        first = await pushIds(d, 20);
        mark = readMark(d.path('logs/ids.mark'));
        /* the default name is not used when seq_file names another */
        assert.ok(!fs.existsSync(d.path('logs/pushd.seq')));
    });
    assert.ok(mark >= first.reduce((a, b) => (a > b ? a : b)));

    /* the next run, its clock stepped back to before the first run's
     * (which the mark stands for: the clock itself is the host's) */
    await L.withPushd({
        top: { ...STORE, seq_file: 'logs/ids.mark' },
        prepare: (d) => fs.writeFileSync(
            d.path('logs/ids.mark'),
            `${String(mark + (1n << 40n)).padStart(20, '0')}\n`),
    }, async (d) => {
        const next = await pushIds(d, 20);
        for (const s of next) {
            assert.ok(s > mark + (1n << 40n), `id ${s} above the mark`);
            assert.ok(!first.includes(s));
        }
    });
});

test('a damaged seq file is said in the log and rewritten; pushes go on', T,
     async () => {
    await L.withPushd({
        top: STORE,
        prepare: (d) => fs.writeFileSync(d.path('logs/pushd.seq'),
                                         'not a number\n'),
    }, async (d) => {
        const ids = await pushIds(d, 5);
        assert.match(d.logText(),
                     /the seq file holds no mark: ids start from the clock/);
        const mark = readMark(d.path('logs/pushd.seq'));
        for (const s of ids) {
            assert.ok(mark >= s);
        }
    });
});
