'use strict';
/*
 * ws_client.js: WebSocket clients for the room tests: client tokens,
 * connect URLs, a wrapper around Node's built-in WebSocket that queues
 * what the server sends, and a raw RFC 6455 client over node:net or
 * node:tls that can send any frame, malformed ones included, and does
 * the upgrade by hand (so it also sees the refusals' HTTP status).
 *
 * Node has a built-in WebSocket from 22 (20 behind a flag); Debian 12's
 * nodejs is 18.  Where globalThis.WebSocket is missing, Client and the
 * demo client use RawWebSocket instead: the same interface, the part of
 * it they use, on top of the raw client.  No flag, no package.
 */

const net = require('node:net');
const tls = require('node:tls');
const crypto = require('node:crypto');

/* at least 16 characters, as room.auth_secret requires */
const SECRET = 'room-test-secret-0123456789';

/* ------------------------------------------------------------------ */
/* tokens and URLs */

/* lowercase hex HMAC-SHA256(secret, uid "\n" device "\n" expires) */
function makeToken(secret, uid, device, expires) {
    return crypto.createHmac('sha256', secret)
        .update(`${uid}\n${device}\n${expires}`).digest('hex');
}

/* a unix time in seconds, an hour ahead */
function future(s = 3600) {
    return Math.floor(Date.now() / 1000) + s;
}

/*
 * The /connect target for uid and device.  opts: apps (array or
 * string), expires, token (default: a valid one), secret, hb, and
 * omit (a list of parameter names to leave out), extra (appended raw).
 */
function connectPath(uid, device, opts = {}) {
    const expires = opts.expires !== undefined ? opts.expires : future();
    const token = opts.token !== undefined ? opts.token
        : makeToken(opts.secret || SECRET, uid, device, expires);
    const apps = opts.apps === undefined ? ['a']
        : Array.isArray(opts.apps) ? opts.apps : [opts.apps];
    const params = [
        ['uid', uid], ['device', device], ['apps', apps.join(',')],
        ['expires', expires], ['token', token],
    ];
    if (opts.hb !== undefined) {
        params.push(['hb', opts.hb]);
    }
    const omit = new Set(opts.omit || []);
    let q = params.filter(([k]) => !omit.has(k))
        .map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`).join('&');
    if (opts.extra) {
        q += (q ? '&' : '') + opts.extra;
    }
    return `/connect?${q}`;
}

/* ------------------------------------------------------------------ */
/* a message queue with awaitable matches */

class Queue {
    constructor() {
        this.items = [];
        this.waiters = [];
        this.ended = null;
    }

    push(item) {
        this.items.push(item);
        this.wake();
    }

    end(why) {
        this.ended = why;
        this.wake();
    }

    wake() {
        for (const w of [...this.waiters]) {
            w();
        }
    }

    /*
     * The first queued item matching pred (removed from the queue),
     * waiting up to timeoutMs for it; throws on timeout, or when the
     * source ended without one (the error says what was seen).
     */
    next(pred = () => true, timeoutMs = 5000, what = 'a message') {
        return new Promise((resolve, reject) => {
            let timer = null;
            const check = () => {
                const i = this.items.findIndex(pred);
                if (i >= 0) {
                    const [item] = this.items.splice(i, 1);
                    done();
                    resolve(item);
                    return true;
                }
                if (this.ended !== null) {
                    done();
                    reject(new Error(`connection ended (${this.ended}) `
                        + `before ${what}; queued: `
                        + JSON.stringify(this.items).slice(0, 500)));
                    return true;
                }
                return false;
            };
            const done = () => {
                clearTimeout(timer);
                this.waiters = this.waiters.filter((w) => w !== check);
            };
            if (check()) {
                return;
            }
            this.waiters.push(check);
            timer = setTimeout(() => {
                done();
                reject(new Error(`timed out after ${timeoutMs} ms waiting `
                    + `for ${what}; queued: `
                    + JSON.stringify(this.items).slice(0, 500)));
            }, timeoutMs);
        });
    }
}

/* ------------------------------------------------------------------ */
/* the built-in WebSocket */

/*
 * A connected client: ws (the WebSocket), msgs (a Queue of parsed JSON
 * text frames; a frame that is not JSON is queued as {raw: text}),
 * closed (a promise of {code, reason, wasClean}), close info once
 * closed in .closeInfo, and send(obj).
 */
class Client {
    constructor(url) {
        this.url = url;
        this.msgs = new Queue();
        this.closeInfo = null;
        this.ws = new WebSocketClass(url);
        this.ws.binaryType = 'arraybuffer';
        this.closed = new Promise((resolve) => {
            this.ws.addEventListener('close', (ev) => {
                this.closeInfo = { code: ev.code, reason: ev.reason,
                                   wasClean: ev.wasClean };
                this.msgs.end(`close ${ev.code}`);
                resolve(this.closeInfo);
            });
        });
        this.ws.addEventListener('message', (ev) => {
            if (typeof ev.data !== 'string') {
                this.msgs.push({ binary: Buffer.from(ev.data) });
                return;
            }
            let m;
            try {
                m = JSON.parse(ev.data);
            } catch (e) {
                m = { raw: ev.data };
            }
            this.msgs.push(m);
        });
        this.opened = new Promise((resolve, reject) => {
            this.ws.addEventListener('open', () => resolve(this));
            this.ws.addEventListener('error', () => {
                reject(new Error(`WebSocket to ${url} failed to open`));
            });
            this.closed.then((c) => reject(new Error(
                `WebSocket to ${url} closed (${c.code}) before open`)));
        });
        /* a rejection nobody awaits must not kill the test process */
        this.opened.catch(() => {});
    }

    get open() {
        return this.ws.readyState === 1;    /* OPEN */
    }

    send(obj) {
        this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
    }

    next(pred, timeoutMs, what) {
        return this.msgs.next(pred, timeoutMs, what);
    }

    /* the next message whose op is op */
    op(op, timeoutMs = 5000) {
        return this.msgs.next((m) => m && m.op === op, timeoutMs,
                              `{"op":"${op}"}`);
    }

    /* the close event, within timeoutMs */
    waitClose(timeoutMs = 5000) {
        let timer;
        return Promise.race([
            this.closed,
            new Promise((resolve, reject) => {
                timer = setTimeout(() => reject(new Error(
                    `no close within ${timeoutMs} ms`)), timeoutMs);
            }),
        ]).finally(() => clearTimeout(timer));
    }

    close(code, reason) {
        try {
            this.ws.close(code, reason);
        } catch (e) {
            /* already closing */
        }
    }
}

function wsUrl(port, target, scheme = 'ws') {
    return `${scheme}://127.0.0.1:${port}${target}`;
}

/*
 * Opens a client for uid/device on port and waits for the welcome
 * frame; returns the client with .welcome set.
 */
async function connect(port, uid, device, opts = {}) {
    const c = new Client(wsUrl(port, connectPath(uid, device, opts)));
    await c.opened;
    c.welcome = await c.op('welcome', opts.timeout || 5000);
    return c;
}

/* ------------------------------------------------------------------ */
/* the raw client */

const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

/*
 * One frame.  f: {fin (default true), rsv (0..7), opcode, payload
 * (string or Buffer), mask (default true), len (a lying length field,
 * optional)}.
 */
function encodeFrame(f) {
    const payload = Buffer.isBuffer(f.payload) ? f.payload
        : Buffer.from(f.payload === undefined ? '' : f.payload);
    const fin = f.fin === undefined ? true : f.fin;
    const mask = f.mask === undefined ? true : f.mask;
    const len = f.len === undefined ? payload.length : f.len;
    let head;
    if (len < 126) {
        head = Buffer.alloc(2);
        head[1] = len;
    } else if (len < 65536) {
        head = Buffer.alloc(4);
        head[1] = 126;
        head.writeUInt16BE(len, 2);
    } else {
        head = Buffer.alloc(10);
        head[1] = 127;
        head.writeBigUInt64BE(BigInt(len), 2);
    }
    head[0] = (fin ? 0x80 : 0) | (((f.rsv || 0) & 7) << 4)
            | (f.opcode & 0x0f);
    if (!mask) {
        return Buffer.concat([head, payload]);
    }
    head[1] |= 0x80;
    const key = crypto.randomBytes(4);
    const body = Buffer.alloc(payload.length);
    for (let i = 0; i < payload.length; i++) {
        body[i] = payload[i] ^ key[i & 3];
    }
    return Buffer.concat([head, key, body]);
}

/*
 * A WebSocket client on a raw socket.  frames: a Queue of the server's
 * frames {fin, rsv, opcode, masked, payload (Buffer), text, json
 * (text frames that parse), code and reason (close frames)}.  ended:
 * a promise resolved when the TCP connection ends.
 */
class RawWs {
    constructor(sock, rest, onFrame) {
        this.sock = sock;
        this.onFrame = onFrame || null;   /* instead of the queue */
        this.frames = new Queue();
        this.buf = Buffer.alloc(0);
        this.tcpClosed = false;
        this.protocolError = null;
        this.ended = new Promise((resolve) => {
            sock.on('close', () => {
                this.tcpClosed = true;
                this.frames.end('tcp closed');
                resolve();
            });
        });
        sock.on('error', () => {});
        sock.on('data', (c) => this.feed(c));
        if (rest && rest.length) {
            this.feed(rest);
        }
    }

    feed(chunk) {
        this.buf = Buffer.concat([this.buf, chunk]);
        for (;;) {
            const b = this.buf;
            if (b.length < 2) {
                return;
            }
            let len = b[1] & 0x7f, off = 2;
            if (len === 126) {
                if (b.length < 4) {
                    return;
                }
                len = b.readUInt16BE(2);
                off = 4;
            } else if (len === 127) {
                if (b.length < 10) {
                    return;
                }
                len = Number(b.readBigUInt64BE(2));
                off = 10;
            }
            const masked = (b[1] & 0x80) !== 0;
            let key = null;
            if (masked) {
                if (b.length < off + 4) {
                    return;
                }
                key = b.subarray(off, off + 4);
                off += 4;
            }
            if (b.length < off + len) {
                return;
            }
            let payload = Buffer.from(b.subarray(off, off + len));
            if (key) {
                for (let i = 0; i < payload.length; i++) {
                    payload[i] ^= key[i & 3];
                }
            }
            this.buf = b.subarray(off + len);
            const f = {
                fin: (b[0] & 0x80) !== 0, rsv: (b[0] >> 4) & 7,
                opcode: b[0] & 0x0f, masked, payload,
            };
            if (f.opcode === OP.TEXT) {
                f.text = payload.toString('utf8');
                try {
                    f.json = JSON.parse(f.text);
                } catch (e) {
                    /* left undefined */
                }
            } else if (f.opcode === OP.CLOSE) {
                f.code = payload.length >= 2 ? payload.readUInt16BE(0) : null;
                f.reason = payload.subarray(2).toString('utf8');
            }
            if (this.onFrame) {
                this.onFrame(f);
            } else {
                this.frames.push(f);
            }
        }
    }

    /* writes one frame (see encodeFrame) or raw bytes */
    send(f) {
        this.sock.write(Buffer.isBuffer(f) ? f : encodeFrame(f));
    }

    sendText(text, more = {}) {
        this.send(Object.assign({ opcode: OP.TEXT, payload: text }, more));
    }

    sendJson(obj) {
        this.sendText(JSON.stringify(obj));
    }

    next(pred, timeoutMs = 5000, what = 'a frame') {
        return this.frames.next(pred, timeoutMs, what);
    }

    /* the next text frame holding JSON with this op */
    op(op, timeoutMs = 5000) {
        return this.frames.next((f) => f.json && f.json.op === op, timeoutMs,
                                `{"op":"${op}"}`).then((f) => f.json);
    }

    /* the server's close frame */
    closeFrame(timeoutMs = 5000) {
        return this.frames.next((f) => f.opcode === OP.CLOSE, timeoutMs,
                                'a close frame');
    }

    /* waits for the TCP connection to end; true if it did in time */
    async waitEnd(timeoutMs = 5000) {
        let timer;
        const t = new Promise((r) => { timer = setTimeout(() => r(false),
                                                          timeoutMs); });
        const r = await Promise.race([this.ended.then(() => true), t]);
        clearTimeout(timer);
        return r;
    }

    destroy() {
        this.sock.destroy();
    }
}

/*
 * Connects to port (TLS when opts.tls), sends the upgrade for target
 * and reads the response head.  Resolves to {status, headers, body,
 * ws}: ws is a RawWs when the status is 101 (checked: Upgrade,
 * Connection and a correct Sec-WebSocket-Accept), else null (the
 * socket is then closed after the body, or when the server closes).
 */
function rawConnect(port, target, opts = {}) {
    const timeout = opts.timeout || 5000;
    return new Promise((resolve, reject) => {
        const key = crypto.randomBytes(16).toString('base64');
        const host = opts.host || '127.0.0.1';
        /* opts.localAddress: a source address of its own (127.0.0.x) */
        const la = opts.localAddress;
        const sock = opts.tls
            ? tls.connect({ port, host, rejectUnauthorized: false,
                            servername: 'localhost', localAddress: la })
            : net.connect({ port, host, localAddress: la });
        let buf = Buffer.alloc(0), done = false;
        const timer = setTimeout(() => fail(new Error(
            `no upgrade response within ${timeout} ms: `
            + JSON.stringify(buf.toString('latin1').slice(0, 300)))), timeout);
        const fail = (e) => {
            if (!done) {
                done = true;
                clearTimeout(timer);
                sock.destroy();
                reject(e);
            }
        };
        const onData = (c) => {
            buf = Buffer.concat([buf, c]);
            const he = buf.indexOf('\r\n\r\n');
            if (he < 0 || done) {
                return;
            }
            const lines = buf.subarray(0, he).toString('latin1')
                .split('\r\n');
            const m = /^HTTP\/1\.1 (\d{3})/.exec(lines[0]);
            if (!m) {
                fail(new Error(`bad status line: ${lines[0]}`));
                return;
            }
            const headers = {};
            for (const l of lines.slice(1)) {
                const i = l.indexOf(':');
                headers[l.slice(0, i).trim().toLowerCase()] =
                    l.slice(i + 1).trim();
            }
            const status = Number(m[1]);
            const rest = buf.subarray(he + 4);
            if (status === 101) {
                done = true;
                clearTimeout(timer);
                sock.removeListener('data', onData);
                const accept = crypto.createHash('sha1')
                    .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
                    .digest('base64');
                const bad = [];
                if (!/^websocket$/i.test(headers.upgrade || '')) {
                    bad.push(`Upgrade: ${headers.upgrade}`);
                }
                if (!/\bupgrade\b/i.test(headers.connection || '')) {
                    bad.push(`Connection: ${headers.connection}`);
                }
                if (headers['sec-websocket-accept'] !== accept) {
                    bad.push(`Sec-WebSocket-Accept: `
                             + `${headers['sec-websocket-accept']}`);
                }
                if (bad.length) {
                    sock.destroy();
                    reject(new Error(`bad 101 response: ${bad.join(', ')}`));
                    return;
                }
                resolve({ status, headers, body: '',
                          ws: new RawWs(sock, rest, opts.onFrame) });
                return;
            }
            const len = Number(headers['content-length'] || 0);
            if (rest.length >= len) {
                done = true;
                clearTimeout(timer);
                sock.destroy();
                resolve({ status, headers,
                          body: rest.subarray(0, len).toString(), ws: null });
            }
        };
        sock.on('data', onData);
        sock.on('error', (e) => fail(e));
        sock.on('close', () => fail(new Error(
            'connection closed before a complete upgrade response: '
            + JSON.stringify(buf.toString('latin1').slice(0, 300)))));
        sock.once(opts.tls ? 'secureConnect' : 'connect', () => {
            let req = `GET ${target} HTTP/1.1\r\n`
                    + `Host: ${host}:${port}\r\n`;
            if (opts.upgrade !== false) {
                req += 'Upgrade: websocket\r\nConnection: Upgrade\r\n'
                     + `Sec-WebSocket-Key: ${key}\r\n`
                     + 'Sec-WebSocket-Version: 13\r\n';
            }
            for (const [k, v] of Object.entries(opts.headers || {})) {
                req += `${k}: ${v}\r\n`;
            }
            sock.write(req + '\r\n');
        });
    });
}

/* ------------------------------------------------------------------ */
/* the built-in WebSocket's interface on the raw client */

/*
 * What Client and auto/demo_client.mjs use of the WHATWG WebSocket:
 * new RawWebSocket(url) (ws: or wss:, any certificate accepted, as the
 * tests' self-signed one must be), readyState, binaryType (binary
 * messages come as ArrayBuffer), send(text or bytes), close([code,
 * reason]), and the open, message, error and close events, through
 * addEventListener or the on* properties.  Pings are answered; a close
 * frame is echoed; fragments are joined.  A failed upgrade is an error
 * event, then close 1006, as the built-in one does; the error event's
 * message says why (the HTTP status of a refused upgrade, say).
 */
class RawWebSocket extends EventTarget {
    constructor(url) {
        super();
        const u = new URL(url);
        this.url = url;
        this.readyState = RawWebSocket.CONNECTING;
        this.binaryType = 'arraybuffer';
        this.onopen = this.onmessage = this.onerror = this.onclose = null;
        this.raw = null;
        this.closeFrame = null;       /* the server's, {code, reason} */
        this.sentClose = false;
        this.fragments = null;        /* {opcode, parts} while continued */
        this.early = null;            /* frames that came with the 101 */
        const port = Number(u.port) || (u.protocol === 'wss:' ? 443 : 80);
        rawConnect(port, u.pathname + u.search, {
            tls: u.protocol === 'wss:',
            host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
            onFrame: (f) => this.frame(f),
        }).then((r) => {
            if (this.readyState !== RawWebSocket.CONNECTING) {
                /* close() came first: leave without a word */
                if (r.ws) {
                    r.ws.destroy();
                }
                return;
            }
            if (r.status !== 101) {
                this.fail(`the upgrade was refused: ${r.status} `
                          + r.body.trim());
                return;
            }
            this.raw = r.ws;
            this.raw.ended.then(() => this.ended());
            this.readyState = RawWebSocket.OPEN;
            this.emit('open');
            /* frames that came with the 101 were held for this moment */
            for (const f of this.early || []) {
                this.frame(f);
            }
            this.early = null;
        }, (e) => {
            if (this.readyState === RawWebSocket.CONNECTING) {
                this.fail(e.message);
            }
        });
    }

    emit(type, props = {}) {
        const ev = Object.assign(new Event(type), props);
        this.dispatchEvent(ev);
        const handler = this[`on${type}`];
        if (typeof handler === 'function') {
            handler.call(this, ev);
        }
    }

    /* the error event's message says why (the built-in's says less) */
    fail(why) {
        this.readyState = RawWebSocket.CLOSED;
        this.emit('error', { message: why });
        this.emit('close', { code: 1006, reason: '', wasClean: false });
    }

    ended() {
        if (this.readyState === RawWebSocket.CLOSED) {
            return;
        }
        this.readyState = RawWebSocket.CLOSED;
        const c = this.closeFrame;
        this.emit('close', { code: c ? (c.code || 1005) : 1006,
                             reason: c ? c.reason : '',
                             wasClean: !!c && this.sentClose });
    }

    frame(f) {
        if (this.readyState === RawWebSocket.CONNECTING) {
            (this.early = this.early || []).push(f);
            return;
        }
        switch (f.opcode) {
        case OP.PING:
            this.raw.send({ opcode: OP.PONG, payload: f.payload });
            return;
        case OP.CLOSE:
            this.closeFrame = { code: f.code, reason: f.reason };
            if (!this.sentClose) {
                this.sentClose = true;
                this.raw.send({ opcode: OP.CLOSE,
                                payload: f.payload.subarray(0, 2) });
            }
            this.readyState = RawWebSocket.CLOSING;
            this.raw.sock.end();
            return;
        case OP.TEXT:
        case OP.BINARY:
            this.fragments = { opcode: f.opcode, parts: [f.payload] };
            break;
        case OP.CONT:
            if (!this.fragments) {
                return;
            }
            this.fragments.parts.push(f.payload);
            break;
        default:
            return;
        }
        if (!f.fin || this.readyState !== RawWebSocket.OPEN) {
            return;
        }
        const data = Buffer.concat(this.fragments.parts);
        const text = this.fragments.opcode === OP.TEXT;
        this.fragments = null;
        this.emit('message', { data: text ? data.toString('utf8')
            : data.buffer.slice(data.byteOffset,
                                data.byteOffset + data.length) });
    }

    send(data) {
        if (this.readyState === RawWebSocket.CONNECTING) {
            throw new Error('WebSocket is not open yet');
        }
        if (this.readyState !== RawWebSocket.OPEN) {
            return;    /* as the built-in one: dropped once closing */
        }
        if (typeof data === 'string') {
            this.raw.sendText(data);
        } else {
            this.raw.send({ opcode: OP.BINARY,
                            payload: Buffer.from(data.buffer || data,
                                                 data.byteOffset || 0,
                                                 data.byteLength) });
        }
    }

    close(code, reason = '') {
        if (this.readyState === RawWebSocket.CONNECTING) {
            this.fail('closed before it opened');
            return;
        }
        if (this.readyState !== RawWebSocket.OPEN) {
            return;
        }
        let payload = Buffer.alloc(0);
        if (code !== undefined) {
            payload = Buffer.alloc(2 + Buffer.byteLength(reason));
            payload.writeUInt16BE(code, 0);
            payload.write(reason, 2);
        }
        this.sentClose = true;
        this.readyState = RawWebSocket.CLOSING;
        this.raw.send({ opcode: OP.CLOSE, payload });
    }
}

RawWebSocket.CONNECTING = 0;
RawWebSocket.OPEN = 1;
RawWebSocket.CLOSING = 2;
RawWebSocket.CLOSED = 3;

/* the built-in one where Node has it; PD_RAW_WEBSOCKET=1 forces ours */
const WebSocketClass = (typeof globalThis.WebSocket === 'function'
                        && !process.env.PD_RAW_WEBSOCKET)
    ? globalThis.WebSocket : RawWebSocket;

/* a raw client for uid/device past its welcome frame; .welcome set */
async function rawOpen(port, uid, device, opts = {}) {
    const r = await rawConnect(port, connectPath(uid, device, opts), opts);
    if (r.status !== 101) {
        throw new Error(`upgrade refused: ${r.status} ${r.body}`);
    }
    r.ws.welcome = await r.ws.op('welcome');
    return r.ws;
}

module.exports = {
    SECRET, OP, makeToken, future, connectPath, Queue, Client, wsUrl,
    connect, encodeFrame, RawWs, rawConnect, rawOpen, RawWebSocket,
    WebSocketClass,
};
