'use strict';
/*
 * contrib.test.js: the Grafana dashboard (contrib/grafana/pushd.json) and
 * the Prometheus alerts (contrib/prometheus/alerts.yml) name only metrics
 * that a running pushd prints in /metrics, so a renamed metric cannot
 * leave them silently empty.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const L = require('./lib.js');

const ROOT = path.resolve(__dirname, '..', '..');

/* the metric names in a text, histogram suffixes kept */
function names(text) {
    return new Set(text.match(/\bpushd_[a-z0-9_]+/g) || []);
}

test('the dashboard and the alerts name only metrics /metrics prints',
     { timeout: 60000 }, async () => {
    const dash = fs.readFileSync(
        path.join(ROOT, 'contrib', 'grafana', 'pushd.json'), 'utf8');
    const alerts = fs.readFileSync(
        path.join(ROOT, 'contrib', 'prometheus', 'alerts.yml'), 'utf8');
    const d = JSON.parse(dash);
    assert.ok(d.panels.length > 10);
    for (const p of d.panels.filter((x) => x.type !== 'row')) {
        assert.ok(p.targets && p.targets.length, `panel ${p.title}: targets`);
    }
    /* a receiver named, so the coordinator's families are printed; a
     * route goes as a flow mapping in a key a comment swallows (as in
     * coordinator.test.js: toYaml writes no list of mappings) */
    const route = { app: 'chat', uplink: 'http://127.0.0.1:9/up',
                    state: 'http://127.0.0.1:9/state' };
    await L.withPushd({
        workers: 1,
        top: {
            register: { memory: '8m' },
            saver: { memory: '16m' },
            coordinator: { secret: '0123456789abcdef0',
                           apps: { [`- ${JSON.stringify(route)} #`]: 'r' } },
        },
    }, async (h) => {
        const m = await L.metrics(h);
        const have = names(m.text);
        for (const [what, text] of [['dashboard', dash], ['alerts', alerts]]) {
            const missing = [...names(text)].filter((n) => !have.has(n));
            assert.deepEqual(missing, [], `${what}: metrics /metrics lacks`);
        }
        assert.ok(names(dash).size >= 25, 'the dashboard covers the families');
    });
});
