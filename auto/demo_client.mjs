// auto/demo_client.mjs: a pushd client for the demo, on Node's built-in
// WebSocket: makes its token, connects, prints every frame it receives.
// usage: node --experimental-websocket auto/demo_client.mjs URL SECRET UID
import crypto from 'node:crypto';

const [url, secret, uid] = process.argv.slice(2);
const device = 'demo-phone';
const expires = Math.floor(Date.now() / 1000) + 3600;
const token = crypto.createHmac('sha256', secret)
    .update(`${uid}\n${device}\n${expires}`).digest('hex');

const ws = new WebSocket(`${url}/connect?uid=${uid}&device=${device}` +
                         `&apps=chat&expires=${expires}&token=${token}`);

ws.onopen = () => console.log(`client: connected as ${uid}/${device}`);
ws.onmessage = (e) => {
    console.log(`client: <- ${e.data}`);
    if (JSON.parse(e.data).op === 'welcome') {
        ws.send('{"op":"ping"}');
        console.log('client: -> {"op":"ping"}');
    }
};
ws.onclose = (e) => {
    console.log(`client: closed ${e.code} ${e.reason}`);
    process.exit(0);
};
setTimeout(() => process.exit(1), 10000);
