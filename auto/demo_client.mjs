// auto/demo_client.mjs: a pushd client for the demo and for trying pushd
// by hand: makes its token, connects, prints every frame it receives,
// acks qos 1 messages, keeps the heartbeat, and says why it exits.
//
// usage: node auto/demo_client.mjs URL SECRET UID [DEVICE] [APPS]
//        (DEVICE: phone, APPS: chat,news; Node 18 or later, no package)
//
// Exits 0 when kicked or told to reconnect (a reload or stop of pushd),
// 1 when it cannot connect or the connection ends otherwise.
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

const [url, secret, uid, device = 'phone', apps = 'chat,news'] =
    process.argv.slice(2);

if (!url || !secret || !uid) {
    console.error('usage: node auto/demo_client.mjs URL SECRET UID '
                  + '[DEVICE] [APPS]');
    process.exit(2);
}

// Node 22 has a WebSocket; before it, the project's own, over node:net
const WebSocketClass = globalThis.WebSocket
    || createRequire(import.meta.url)('../t/integration/ws_client.js')
        .RawWebSocket;

const expires = Math.floor(Date.now() / 1000) + 3600;
const token = crypto.createHmac('sha256', secret)
    .update(`${uid}\n${device}\n${expires}`).digest('hex');
const target = `${url}/connect?uid=${encodeURIComponent(uid)}`
    + `&device=${encodeURIComponent(device)}&apps=${apps}`
    + `&expires=${expires}&token=${token}`;

const say = (text) => console.log(`client: ${text}`);
let heartbeat = null;
let why = null;         // set once the reason to leave is known
let code = 1;
let opened = false;

function send(obj) {
    const text = JSON.stringify(obj);
    ws.send(text);
    say(`-> ${text}`);
}

const ws = new WebSocketClass(target);

ws.onopen = () => {
    opened = true;
    say(`connected to ${url} as ${uid}/${device}, apps ${apps}`);
};

ws.onmessage = (e) => {
    let m;

    say(`<- ${e.data}`);

    try {
        m = JSON.parse(e.data);
    } catch (err) {
        return;
    }

    switch (m.op) {
    case 'welcome':
        heartbeat = setInterval(() => send({ op: 'ping' }), m.hb * 1000);
        break;
    case 'msg':
        // at least once: the server keeps a qos 1 message until acked
        if (m.qos === 1) {
            send({ op: 'ack', ids: [m.id] });
        }
        break;
    case 'kick':
        why = `kicked ("${m.reason}")`;
        code = 0;
        break;
    case 'reconnect':
        why = `told to reconnect after ${m.after_ms} ms (pushd reloads or `
            + 'stops); a real client would';
        code = 0;
        break;
    default:
        break;
    }
};

// Node's own WebSocket sends no close event after a failed upgrade
ws.onerror = (e) => {
    if (!opened) {
        say(`cannot connect to ${url}: ${e.message || 'refused'} (a wrong `
            + 'secret gets 401; is pushd running?); exiting');
        process.exit(1);
    }
};

ws.onclose = (e) => {
    clearInterval(heartbeat);
    if (why === null) {
        why = `the connection closed (${e.code}${e.reason ? ` ${e.reason}`
              : ''})`;
    }
    say(`${why}; exiting`);
    process.exit(code);
};

process.on('SIGINT', () => {
    why = 'interrupted';
    code = 0;
    ws.close(1000);
    setTimeout(() => process.exit(0), 1000).unref();
});
