'use strict';
/*
 * browser.test.js: a real browser.  Debian's chromium, headless, driven
 * over the DevTools protocol directly (no npm package: its WebSocket
 * address is read from its stderr), one browser for every test here.
 *
 * - sdk/js/pushd.js in a page the test serves: clients over ws:// and
 *   wss:// (the self-signed test certificate: --ignore-certificate-
 *   errors), tokens from the page's getToken (a fetch to the test's
 *   server), a push received, the workers holding them SIGKILLed, the
 *   next push received once, the figures reported back to the test.
 * - the center's admin page (GET /admin/#key=...): the node id, the
 *   workers, a connected user found by the lookup form, a push sent from
 *   the send form arriving at a client, and a kick from its button.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { spawn } = require('node:child_process');
const L = require('./lib.js');
const W = require('./ws_client.js');

const T = { timeout: 120000 };
const SDK = path.resolve(__dirname, '..', '..', 'sdk', 'js', 'pushd.js');

/* ------------------------------------------------------------------ */
/* chromium and the DevTools protocol */

let browser = null;      /* {proc, dir, cdp} */

function chromiumPath() {
    for (const p of [process.env.PD_CHROMIUM, '/usr/bin/chromium',
                     '/usr/bin/chromium-browser']) {
        if (p && fs.existsSync(p)) {
            return p;
        }
    }
    throw new Error('chromium is not installed (auto/deps installs Debian\'s '
                    + '"chromium"; PD_CHROMIUM names another)');
}

function launch() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushd-chromium-'));
    const proc = spawn(chromiumPath(), [
        '--headless', '--no-sandbox', '--disable-gpu',
        '--disable-dev-shm-usage', '--no-first-run',
        '--no-default-browser-check', '--disable-extensions',
        '--ignore-certificate-errors', '--remote-debugging-port=0',
        '--remote-debugging-address=127.0.0.1',
        `--user-data-dir=${dir}`, 'about:blank',
    ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    return new Promise((resolve, reject) => {
        let err = '';
        const timer = setTimeout(() => reject(new Error(
            `chromium printed no DevTools address in 30 s:\n${err}`)), 30000);
        proc.stderr.on('data', (c) => {
            err += c;
            const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
            if (m) {
                clearTimeout(timer);
                proc.stderr.removeAllListeners('data');
                proc.stderr.resume();
                resolve({ proc, dir, url: m[1] });
            }
        });
        proc.on('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`chromium exited (${code}):\n${err}`));
        });
    });
}

/* a DevTools connection: send(method, params, sessionId) -> result */
class Cdp {
    constructor(url) {
        this.seq = 0;
        this.pending = new Map();
        this.ws = new W.WebSocketClass(url);
        this.opened = new Promise((resolve, reject) => {
            this.ws.onopen = () => resolve();
            this.ws.onerror = (e) => reject(new Error(
                `DevTools WebSocket failed: ${e.message || ''}`));
        });
        this.ws.onmessage = (ev) => {
            const m = JSON.parse(String(ev.data));
            const p = m.id !== undefined && this.pending.get(m.id);
            if (!p) {
                return;
            }
            this.pending.delete(m.id);
            if (m.error) {
                p.reject(new Error(`${p.method}: ${m.error.message}`));
            } else {
                p.resolve(m.result);
            }
        };
    }

    send(method, params = {}, sessionId) {
        const id = ++this.seq;
        const msg = { id, method, params };
        if (sessionId) {
            msg.sessionId = sessionId;
        }
        return new Promise((resolve, reject) => {
            this.pending.set(id, { resolve, reject, method });
            this.ws.send(JSON.stringify(msg));
        });
    }
}

/* a fresh tab: {eval(expr), goto(url), close()} */
async function newPage() {
    const cdp = browser.cdp;
    const { targetId } = await cdp.send('Target.createTarget',
                                        { url: 'about:blank' });
    const { sessionId } = await cdp.send('Target.attachToTarget',
                                         { targetId, flatten: true });
    const page = {
        async eval(expression) {
            const r = await cdp.send('Runtime.evaluate', {
                expression, returnByValue: true, awaitPromise: true,
            }, sessionId);
            if (r.exceptionDetails) {
                throw new Error(`in the page: ${expression}: `
                    + JSON.stringify(r.exceptionDetails).slice(0, 500));
            }
            return r.result.value;
        },
        async goto(url, readyExpr) {
            await cdp.send('Page.navigate', { url }, sessionId);
            await L.waitFor(() => page.eval(readyExpr).catch(() => false),
                            15000, `${url} to load (${readyExpr})`);
        },
        close: () => cdp.send('Target.closeTarget', { targetId }),
    };
    return page;
}

test.before(async () => {
    browser = await launch();
    browser.cdp = new Cdp(browser.url);
    await browser.cdp.opened;
});

function quitBrowser() {
    if (browser) {
        try {
            process.kill(-browser.proc.pid, 'SIGKILL');
        } catch (e) {
            /* gone */
        }
        fs.rmSync(browser.dir, { recursive: true, force: true });
        browser = null;
    }
}

test.after(quitBrowser);
process.on('exit', quitBrowser);

/* ------------------------------------------------------------------ */
/* the SDK's test page */

const PAGE = `<!doctype html>
<meta charset="utf-8"><title>pushd sdk</title>
<script type="module">
import { PushdClient } from '/pushd.js';
const clients = {};
window.startClient = (name, url, uid) => {
    const c = new PushdClient({
        url, uid, device: 'browser', apps: ['a'],
        getToken: async ({ uid, device }) =>
            (await fetch('/token?uid=' + uid + '&device=' + device)).json(),
        backoffBase: 50, backoffMax: 400, connectTimeout: 3000,
    });
    const rec = { state: 'idle', got: [], states: [] };
    c.on('state', (s) => { rec.state = s; rec.states.push(s); });
    c.on('message', (m) => { rec.got.push(m.id); });
    clients[name] = { c, rec };
    c.connect();
    return true;
};
window.report = (name) => {
    const { c, rec } = clients[name];
    return Object.assign({ counters: c.counters, sid: c.sid,
                           ua: navigator.userAgent }, rec);
};
window.ready = true;
</script>`;

function pageServer() {
    const srv = http.createServer((req, res) => {
        const u = new URL(req.url, 'http://x');
        if (u.pathname === '/') {
            res.writeHead(200, { 'Content-Type': 'text/html' });
            res.end(PAGE);
        } else if (u.pathname === '/pushd.js') {
            res.writeHead(200, { 'Content-Type': 'text/javascript' });
            res.end(fs.readFileSync(SDK));
        } else if (u.pathname === '/token') {
            const uid = u.searchParams.get('uid');
            const device = u.searchParams.get('device');
            const expires = W.future();
            res.writeHead(200, { 'Content-Type': 'application/json' });
            res.end(JSON.stringify({ expires, token: W.makeToken(
                L.AUTH_SECRET, uid, device, expires) }));
        } else {
            res.writeHead(404);
            res.end();
        }
    });
    return new Promise((resolve) => {
        srv.listen(0, '127.0.0.1', () => resolve(srv));
    });
}

function conf(workers, extra = {}) {
    return Object.assign({
        workers,
        top: Object.assign({ register: { memory: '8m' },
                             saver: { memory: '16m' } }, extra.top || {}),
    }, extra.opts || {});
}

async function push(d, uids, data, app = 'a') {
    const r = await L.centerPost(d, '/v1/push', { app, uids, data });
    assert.equal(r.status, 200, `push: ${r.status} ${r.body}`);
    return r.json.id;
}

async function workerOf(d, uid) {
    const u = await L.centerGet(d, `/v1/users/${uid}`);
    if (!u.json.online) {
        return null;
    }
    const w = await L.centerGet(d, '/v1/workers');
    const row = w.json.workers.find(
        (x) => x.slot === u.json.connections[0].worker);
    return row ? row.pid : null;
}

test('the SDK in Chromium over ws:// and wss://: pushes arrive, a worker '
     + 'kill is survived, nothing twice', T, async () => {
    const srv = await pageServer();
    const page = await newPage();
    try {
        await L.withPushd(conf(2, { opts: { roomSsl: true } }), async (d) => {
            await page.goto(`http://127.0.0.1:${srv.address().port}/`,
                            'window.ready === true');
            await page.eval(`startClient('plain', `
                + `'ws://127.0.0.1:${d.roomPort}', 'b-plain')`);
            await page.eval(`startClient('tls', `
                + `'wss://127.0.0.1:${d.sslPort}', 'b-tls')`);
            const report = (n) => page.eval(`report('${n}')`);
            for (const n of ['plain', 'tls']) {
                await L.waitFor(async () => (await report(n)).state
                                === 'connected', 15000, `${n} to connect`);
            }
            const r0 = await report('plain');
            assert.match(r0.ua, /HeadlessChrome/, 'a real Chromium');
            assert.ok(r0.sid, 'welcome sid');
            const uids = ['b-plain', 'b-tls'];
            const first = await push(d, uids, { n: 1 });
            for (const n of ['plain', 'tls']) {
                await L.waitFor(async () => (await report(n)).got
                                .includes(first), 5000, `${n}: the push`);
            }
            /* the workers holding them die */
            const pids = new Set([await workerOf(d, 'b-plain'),
                                  await workerOf(d, 'b-tls')]);
            for (const pid of pids) {
                assert.ok(pid, 'the worker of a browser client');
                d.kill(pid, 'SIGKILL');
            }
            const second = await push(d, uids, { n: 2 });
            for (const n of ['plain', 'tls']) {
                await L.waitFor(async () => {
                    const r = await report(n);
                    return r.state === 'connected' && r.got.includes(second);
                }, 20000, `${n}: back, and the push sent meanwhile`);
                const r = await report(n);
                assert.deepEqual(r.got, [first, second],
                                 `${n}: each once, in order`);
                assert.ok(r.counters.disconnects >= 1, `${n}: it was cut`);
                assert.ok(r.counters.tokenRefreshes >= 1,
                          `${n}: its token from getToken`);
            }
        });
    } finally {
        await page.close();
        srv.close();
    }
});

test('the admin page: node id, workers, a connected user, a push from the '
     + 'form arrives, a kick from its button', T, async () => {
    const page = await newPage();
    try {
        await L.withPushd(conf(2, { top: { node_id: 'admin-node-1' } }),
                          async (d) => {
            const client = await W.connect(d.roomPort, 'adm1', 'phone', {
                secret: L.AUTH_SECRET, apps: ['chat'] });
            await page.goto(`http://127.0.0.1:${d.centerPort}/admin/`
                            + `#key=${d.apiKey}`,
                            `document.getElementById('node') !== null`);
            const text = (id) => page.eval(
                `document.getElementById('${id}').textContent`);
            await L.waitFor(async () => await text('node') === 'admin-node-1',
                            10000, 'the node id on the page');
            assert.equal(await page.eval('location.href.includes("key")'),
                         false, 'the key left the address bar');
            await L.waitFor(async () => await page.eval(
                `document.querySelectorAll('#workers tbody tr').length`) === 2,
                5000, 'two workers listed');
            await L.waitFor(async () => await text('websockets') === '1',
                            5000, 'one WebSocket client counted');
            assert.ok(await page.eval(`document.querySelectorAll(
                '#latency div').length`) > 5, 'the latency histogram');
            assert.match(await text('stores'), /stored messages/);

            /* the lookup form */
            await page.eval(`document.getElementById('uid').value = 'adm1';
                document.getElementById('lookup').requestSubmit(); true`);
            await L.waitFor(async () => /adm1: online/.test(await text('user'))
                            && /phone/.test(await text('user')), 5000,
                            'the user found online on its device');

            /* the send form */
            await page.eval(`
                document.getElementById('uids').value = 'adm1';
                document.getElementById('app').value = 'chat';
                document.getElementById('data').value = '{"from":"admin"}';
                document.getElementById('send').requestSubmit(); true`);
            const m = await client.next((f) => f.op === 'msg', 5000,
                                        'the push from the form');
            assert.deepEqual(m.data, { from: 'admin' });
            assert.equal(m.app, 'chat');
            await L.waitFor(async () => (await text('sent')).includes(m.id),
                            5000, 'the answer with its id on the page');
            /* the page's refresh shows the message counted */
            await L.waitFor(async () => Number(await text('t_accepted')) >= 1,
                            5000, 'accepted counted');

            /* the kick button of the listed connection */
            await page.eval(`document.querySelector('#connectionsOf button')
                .click(); true`);
            const k = await client.op('kick', 5000);
            assert.equal(k.reason, 'kicked from the admin page');
            /* the kick is answered before the close is registered: look
             * again until the register has forgotten it */
            await L.waitFor(async () => /adm1: offline/.test(await page.eval(
                `pushdAdmin.lookup('adm1').then(() =>
                    document.getElementById('user').textContent)`)), 5000,
                'the lookup to show it offline');

            /* a wrong key is refused and the form comes back */
            await page.goto(`http://127.0.0.1:${d.centerPort}/admin/#key=bad`,
                            `document.getElementById('loginError') !== null`);
            await L.waitFor(async () => /refused/.test(await text(
                'loginError')), 5000, 'the refusal shown');
            client.close();
        });
    } finally {
        await page.close();
    }
});
