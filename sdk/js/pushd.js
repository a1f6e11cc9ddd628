// pushd.js: the pushd client SDK, one ES module with no dependencies, the
// same file in browsers and in Node (22+, or 20 with --experimental-
// websocket; on Node 18 pass a WebSocket class as the `WebSocket` option).
//
// It keeps one connection to pushd up for as long as the application
// wants one: heartbeat from welcome.hb and dead-link detection,
// reconnects with exponential backoff and full jitter, honours
// {"op":"reconnect","after_ms"}, stays away after a kick, resumes with
// the sid of its last welcome, refreshes an expired token through
// getToken, picks addresses from the dispatcher (cached per network,
// failed ones reported), acks qos 1 messages once the handler returned
// (or when the application calls ack()) and never hands the same qos 1
// id to the application twice.  The protocol is docs/protocol.md.

export const VERSION = '1.0.0';

const STATES = ['connecting', 'connected', 'disconnected', 'kicked'];

/*
 * Exponential backoff with full jitter: attempt n (0-based) waits a
 * uniformly random time in [0, min(max, base * 2^n)).  Full jitter keeps
 * a crowd of clients that lost the same server from coming back in step
 * (one thundering herd per doubling otherwise).
 */
export class Backoff {
    constructor({ base = 500, max = 30000, random = Math.random } = {}) {
        this.base = base;
        this.max = max;
        this.random = random;
        this.attempt = 0;
    }

    /* the cap of the next delay, without drawing it */
    ceiling() {
        // 2^n overflows to Infinity for a large n: min() keeps it at max
        return Math.min(this.max, this.base * Math.pow(2, this.attempt));
    }

    next() {
        const d = Math.floor(this.random() * this.ceiling());
        this.attempt++;
        return d;
    }

    reset() {
        this.attempt = 0;
    }
}

/*
 * The ids of the last `size` qos 1 messages handed to the application,
 * in arrival order: a message delivered again (its ack was lost with the
 * connection, or it came from a worker that died before the ack) is
 * recognised and not handed over twice.  Bounded: the oldest id goes
 * when a new one comes in; pushd's ids grow, so an id older than the
 * window does not come back after many newer ones in practice.
 */
export class DedupWindow {
    constructor(size = 1024) {
        if (!(size >= 1)) {
            throw new RangeError('dedup window size must be at least 1');
        }
        this.size = size;
        this.ids = new Map();    // id -> state, insertion order = age
    }

    has(id) {
        return this.ids.has(id);
    }

    get(id) {
        return this.ids.get(id);
    }

    /* remembers id; true when it is new, false when already seen */
    add(id, state = 'seen') {
        if (this.ids.has(id)) {
            return false;
        }
        this.ids.set(id, state);
        while (this.ids.size > this.size) {
            this.ids.delete(this.ids.keys().next().value);
        }
        return true;
    }

    set(id, state) {
        if (this.ids.has(id)) {
            this.ids.set(id, state);
        }
    }

    delete(id) {
        return this.ids.delete(id);
    }

    get length() {
        return this.ids.size;
    }
}

/*
 * The dispatcher's address lists, kept per network ('wifi', 'cell', or
 * '' when the application names none) until their ttl, so a client that
 * moves between networks does not ask again each time, and one whose
 * network changes gets the list meant for it.
 */
export class AddressCache {
    constructor(now = () => Date.now()) {
        this.now = now;
        this.lists = new Map();  // net -> {addrs, until, next, policy}
    }

    put(net, addrs, ttlSeconds, policy) {
        this.lists.set(net || '', {
            addrs: addrs.slice(),
            until: this.now() + Math.max(0, ttlSeconds || 0) * 1000,
            next: 0,
            policy: policy || null,
        });
    }

    /* the list of net while fresh, else null */
    get(net) {
        const l = this.lists.get(net || '');
        if (!l || l.addrs.length === 0 || this.now() >= l.until) {
            return null;
        }
        return l;
    }

    /* drops an address that failed; the list goes once it is empty */
    fail(net, addr) {
        const l = this.lists.get(net || '');
        if (!l) {
            return;
        }
        l.addrs = l.addrs.filter((a) => a !== addr);
        if (l.addrs.length === 0) {
            this.lists.delete(net || '');
        }
    }

    clear(net) {
        if (net === undefined) {
            this.lists.clear();
        } else {
            this.lists.delete(net || '');
        }
    }
}

/* a refused upgrade that says 401 (only some WebSocket classes tell) */
function says401(ev) {
    return !!ev && typeof ev.message === 'string' && /\b401\b/.test(ev.message);
}

function isTokenError(text) {
    return /token/i.test(text || '');
}

export class PushdClient {
    /*
     * opts: url (ws:// or wss:// base, with or without /connect) or
     * dispatchUrl (http(s) base of the dispatcher: GET /v1/dispatch),
     * uid, device, apps, token + expires or getToken, and the knobs of
     * the .d.ts file.
     */
    constructor(opts = {}) {
        if (!opts.uid) {
            throw new TypeError('PushdClient: uid is required');
        }
        if (!opts.url && !opts.dispatchUrl) {
            throw new TypeError('PushdClient: url or dispatchUrl is required');
        }
        if (!opts.token && typeof opts.getToken !== 'function') {
            throw new TypeError('PushdClient: token (with expires) or '
                                + 'getToken is required');
        }

        this.opts = opts;
        this.uid = String(opts.uid);
        this.device = String(opts.device || 'web');
        this.apps = new Set(opts.apps || []);
        this.token = opts.token || null;
        this.expires = opts.expires !== undefined ? Number(opts.expires) : null;
        this.net = opts.net || '';

        this.WS = opts.WebSocket || globalThis.WebSocket;
        if (typeof this.WS !== 'function') {
            throw new TypeError('PushdClient: no WebSocket in this runtime; '
                                + 'pass one as the WebSocket option');
        }
        this.fetchFn = opts.fetch || (globalThis.fetch
            ? globalThis.fetch.bind(globalThis) : null);
        if (opts.dispatchUrl && !this.fetchFn) {
            throw new TypeError('PushdClient: dispatchUrl needs fetch');
        }

        this.backoff = new Backoff({
            base: opts.backoffBase !== undefined ? opts.backoffBase : 500,
            max: opts.backoffMax !== undefined ? opts.backoffMax : 30000,
            random: opts.random,
        });
        this.seen = new DedupWindow(opts.dedupWindow || 1024);
        this.addrs = opts.addressCache || new AddressCache();
        this.manualAck = !!opts.manualAck;
        this.connectTimeout = opts.connectTimeout || 10000;
        this.upTimeout = opts.upTimeout || 10000;
        this.replyWait = opts.replyWait !== undefined ? opts.replyWait : 50;
        this.tokenMargin = opts.tokenMargin !== undefined
            ? opts.tokenMargin : 30;

        this.state = 'idle';
        this.sid = null;          // of the last welcome: the resume key
        this.hb = null;           // seconds, from the last welcome
        this.resumed = null;
        this.address = null;      // the room address of the connection
        this.listeners = new Map();
        this.ws = null;
        this.preparing = false;   // an attempt awaits getToken or dispatch
        this.wanted = false;      // connect() called, close() not since
        this.timers = { retry: null, ping: null, dead: null, open: null,
                        ack: null };
        this.acks = [];           // ids waiting for a connection
        this.pendingUp = new Map();
        this.upSeq = 0;
        this.failedAddrs = [];    // reported to the dispatcher, then reset
        this.refreshToken = false;
        this.tokenFetched = false;
        this.nextDelay = null;    // set by a reconnect frame
        this.policy = null;       // the dispatcher's reconnect policy

        this.counters = {
            connects: 0,          // attempts started
            connected: 0,         // welcomes
            disconnects: 0,
            failures: 0,          // attempts that never reached a welcome
            reconnectOrders: 0,   // reconnect frames obeyed
            kicks: 0,
            resumed: 0,           // welcomes with resumed: true
            deadLinks: 0,         // connections the heartbeat gave up on
            pings: 0,
            pongs: 0,
            messages: 0,          // handed to the application
            duplicates: 0,        // qos 1 ids seen before, not handed
            acked: 0,             // ids sent in ack frames
            handlerErrors: 0,
            tokenRefreshes: 0,
            dispatches: 0,        // dispatcher requests
            dispatchErrors: 0,
            upSent: 0,
            upAcked: 0,
            upFailed: 0,
            errors: 0,            // error frames not tied to an up
        };
    }

    /* ---------------------------------------------------------------- */
    /* events */

    on(type, fn) {
        if (!this.listeners.has(type)) {
            this.listeners.set(type, new Set());
        }
        this.listeners.get(type).add(fn);
        return this;
    }

    off(type, fn) {
        const s = this.listeners.get(type);
        if (s) {
            s.delete(fn);
        }
        return this;
    }

    /* calls the listeners; an error event nobody listens to is dropped */
    emit(type, ...args) {
        const s = this.listeners.get(type);
        if (!s) {
            return [];
        }
        const out = [];
        for (const fn of [...s]) {
            try {
                out.push(fn(...args));
            } catch (e) {
                if (type === 'message') {
                    throw e;
                }
                if (type !== 'error') {
                    this.emit('error', e);
                }
            }
        }
        return out;
    }

    setState(s) {
        if (this.state === s) {
            return;
        }
        this.state = s;
        if (STATES.includes(s)) {
            this.emit('state', s);
        }
    }

    /* ---------------------------------------------------------------- */
    /* public methods */

    connect() {
        this.wanted = true;
        if (this.ws || this.timers.retry !== null || this.preparing) {
            return this;        // already connecting or waiting to
        }
        if (this.state === 'kicked') {
            this.backoff.reset();
        }
        this.attempt();
        return this;
    }

    close() {
        this.wanted = false;
        this.sid = null;        // a clean close ends the session on the server
        this.clearTimer('retry');
        const was = this.state;
        this.drop(1000, 'client closed');
        for (const [id, p] of this.pendingUp) {
            this.settleUp(id, p, new Error('client closed'));
        }
        if (was === 'connected' || was === 'connecting') {
            this.setState('disconnected');
        }
        this.state = 'closed';
        return this;
    }

    bind(app) {
        this.apps.add(app);
        this.sendFrame({ op: 'bind', app });
        return this;
    }

    unbind(app) {
        this.apps.delete(app);
        this.sendFrame({ op: 'unbind', app });
        return this;
    }

    /*
     * An uplink: resolves to {id, data} (data: the business's reply, or
     * undefined) once pushd answered upack (and reply), rejects on an
     * error frame, when not connected, or after opts.timeout ms.
     */
    up(app, type, data, opts = {}) {
        const id = opts.id || `c${++this.upSeq}`;
        return new Promise((resolve, reject) => {
            if (this.state !== 'connected') {
                this.counters.upFailed++;
                reject(new Error('not connected'));
                return;
            }
            const p = { resolve, reject, timer: null, acked: false,
                        ws: this.ws };
            p.timer = setTimeout(() => this.settleUp(id, p,
                new Error(`no answer to up ${id} within `
                          + `${opts.timeout || this.upTimeout} ms`)),
                opts.timeout || this.upTimeout);
            this.pendingUp.set(id, p);
            this.counters.upSent++;
            this.sendFrame({ op: 'up', id, app, type, data });
        });
    }

    /* the network changed ('wifi', 'cell', ...): its own cached list */
    setNet(net) {
        this.net = net || '';
        return this;
    }

    /* acks qos 1 ids the application took (manualAck: true) */
    ack(ids) {
        for (const id of Array.isArray(ids) ? ids : [ids]) {
            if (this.seen.get(id) === 'acked') {
                continue;
            }
            this.seen.set(id, 'acked');
            this.queueAck(id);
        }
    }

    /* ---------------------------------------------------------------- */
    /* connecting */

    clearTimer(name) {
        if (this.timers[name] !== null) {
            clearTimeout(this.timers[name]);
            clearInterval(this.timers[name]);
            this.timers[name] = null;
        }
    }

    tokenStale() {
        return this.expires !== null
            && this.expires - this.tokenMargin <= Date.now() / 1000;
    }

    async ensureToken() {
        const get = this.opts.getToken;
        if (typeof get !== 'function') {
            return;
        }
        if (this.token && !this.refreshToken && !this.tokenStale()) {
            return;
        }
        const t = await get({ uid: this.uid, device: this.device });
        if (!t || !t.token) {
            throw new Error('getToken gave no token');
        }
        this.token = String(t.token);
        this.expires = t.expires !== undefined ? Number(t.expires) : null;
        this.refreshToken = false;
        this.tokenFetched = true;
        this.counters.tokenRefreshes++;
    }

    /* where to connect: the url, or an address from the dispatcher */
    async pickAddress() {
        if (!this.opts.dispatchUrl) {
            return { base: this.opts.url, addr: null };
        }
        let list = this.addrs.get(this.net);
        if (!list) {
            const u = new URL('/v1/dispatch', this.opts.dispatchUrl);
            u.searchParams.set('uid', this.uid);
            if (this.net) {
                u.searchParams.set('net', this.net);
            }
            if (this.failedAddrs.length) {
                u.searchParams.set('failed', this.failedAddrs.join(','));
            }
            this.counters.dispatches++;
            let body;
            try {
                const r = await this.fetchFn(u.toString());
                if (!r.ok) {
                    throw new Error(`dispatcher answered ${r.status}`);
                }
                body = await r.json();
            } catch (e) {
                this.counters.dispatchErrors++;
                throw e;
            }
            if (!body || !Array.isArray(body.addrs) || !body.addrs.length) {
                this.counters.dispatchErrors++;
                throw new Error('dispatcher gave no address');
            }
            this.failedAddrs = [];
            this.addrs.put(this.net, body.addrs, body.ttl, body.reconnect);
            this.applyPolicy(body.reconnect);
            list = this.addrs.get(this.net);
        }
        const scheme = this.opts.secure !== undefined
            ? (this.opts.secure ? 'wss' : 'ws')
            : (/^https:/.test(this.opts.dispatchUrl) ? 'wss' : 'ws');
        const addr = list.addrs[list.next % list.addrs.length];
        return { base: `${scheme}://${addr}`, addr };
    }

    /*
     * The dispatcher's reconnect policy, when it sends one:
     * {base_ms, max_ms} replace the backoff's numbers.
     */
    applyPolicy(p) {
        if (!p || typeof p !== 'object') {
            return;
        }
        this.policy = p;
        if (p.base_ms > 0) {
            this.backoff.base = p.base_ms;
        }
        if (p.max_ms > 0) {
            this.backoff.max = p.max_ms;
        }
    }

    connectUrl(base) {
        let b = String(base).replace(/\/+$/, '');
        if (!/\/connect$/.test(b)) {
            b += '/connect';
        }
        const q = new URLSearchParams();
        q.set('uid', this.uid);
        q.set('device', this.device);
        q.set('apps', [...this.apps].join(','));
        q.set('expires', String(this.expires));
        q.set('token', this.token);
        if (this.opts.hb) {
            q.set('hb', String(this.opts.hb));
        }
        if (this.sid) {
            q.set('sid', this.sid);
        }
        return `${b}?${q.toString()}`;
    }

    async attempt() {
        this.timers.retry = null;
        if (!this.wanted) {
            return;
        }
        this.setState('connecting');
        this.counters.connects++;
        let target;
        // getToken and the dispatcher are awaited: a connect() meanwhile
        // must not start a second attempt
        this.preparing = true;
        try {
            await this.ensureToken();
            target = await this.pickAddress();
        } catch (e) {
            this.preparing = false;
            this.emit('error', e);
            if (this.wanted) {
                this.failed(null, false);
            }
            return;
        }
        this.preparing = false;
        if (!this.wanted || this.ws) {
            return;
        }
        let ws;
        try {
            ws = new this.WS(this.connectUrl(target.base));
        } catch (e) {
            this.emit('error', e);
            this.failed(target.addr, false);
            return;
        }
        this.ws = ws;
        this.address = target.addr || target.base;
        const conn = { ws, addr: target.addr, welcomed: false, gone: false };
        this.conn = conn;

        // a server that takes the TCP connection but never answers (a
        // stopped worker's accept queue) must not hold the client forever
        this.timers.open = setTimeout(() => {
            this.timers.open = null;
            // A resume is served by the session's own worker, whichever
            // took the connection: when that worker hangs (the dead link
            // we are coming back from may be its), every attempt with the
            // sid would hang too.  The next one starts a fresh session;
            // qos 1 comes from the store all the same.  (A network that
            // is down fails fast and keeps the sid.)
            this.sid = null;
            this.lost(conn, null, 'no welcome in time');
        }, this.connectTimeout);

        ws.onmessage = (ev) => this.frame(conn, ev.data);
        // Node's WebSocket (undici) ends a refused upgrade with an error
        // event and no close event; browsers send both: either ends it
        ws.onerror = (ev) => {
            if (!conn.welcomed && says401(ev)) {
                this.refreshToken = true;
            }
            this.lost(conn, { code: 1006, reason: '' }, null);
        };
        ws.onclose = (ev) => this.lost(conn, ev, null);
    }

    /* an attempt that never reached a welcome */
    failed(addr, refused) {
        this.counters.failures++;
        if (addr) {
            this.addrs.fail(this.net, addr);
            if (!this.failedAddrs.includes(addr)) {
                this.failedAddrs.push(addr);
            }
        }
        // A browser does not tell a 401 from a server that is down: after
        // a refusal, ask getToken once per run of failures, so a token the
        // server calls expired (a clock off by more than the margin, a
        // revoked secret) is replaced without hammering the token source.
        if (refused && !this.tokenFetched) {
            this.refreshToken = true;
        }
        this.schedule();
    }

    schedule() {
        if (!this.wanted || this.state === 'kicked') {
            return;
        }
        this.setState('disconnected');
        let d;
        if (this.nextDelay !== null) {
            d = this.nextDelay;
            this.nextDelay = null;
        } else {
            d = this.backoff.next();
        }
        this.emit('retry', d);
        this.clearTimer('retry');
        this.timers.retry = setTimeout(() => this.attempt(), d);
    }

    /* closes the socket and forgets it; its events are ignored after */
    drop(code, reason) {
        const c = this.conn;
        this.clearTimer('ping');
        this.clearTimer('dead');
        this.clearTimer('open');
        this.clearTimer('ack');
        if (c) {
            c.gone = true;
            try {
                c.ws.close(code, reason);
            } catch (e) {
                // already closing
            }
        }
        this.conn = null;
        this.ws = null;
    }

    /* the connection ended (close event, dead link, open timeout) */
    lost(conn, ev, why) {
        if (conn.gone) {
            return;
        }
        const welcomed = conn.welcomed;
        this.drop(1000, why || 'closed');
        for (const [id, p] of this.pendingUp) {
            if (p.ws === conn.ws) {
                this.settleUp(id, p, new Error('connection lost'));
            }
        }
        this.emit('close', { code: ev ? ev.code : 1006,
                             reason: ev ? ev.reason : why });
        if (this.state === 'kicked') {
            return;
        }
        if (welcomed) {
            this.counters.disconnects++;
            this.schedule();
        } else {
            this.failed(conn.addr, !why);
        }
    }

    /* ---------------------------------------------------------------- */
    /* frames */

    sendFrame(obj) {
        if (!this.ws || !this.conn || !this.conn.welcomed) {
            return false;
        }
        try {
            this.ws.send(JSON.stringify(obj));
            return true;
        } catch (e) {
            return false;
        }
    }

    frame(conn, data) {
        if (conn.gone) {
            return;
        }
        let m;
        try {
            m = JSON.parse(typeof data === 'string' ? data : '');
        } catch (e) {
            return;
        }
        if (!m || typeof m !== 'object') {
            return;
        }
        // anything from the server shows the link is alive
        this.clearTimer('dead');

        switch (m.op) {
        case 'welcome':
            this.welcome(conn, m);
            break;
        case 'msg':
            this.message(m);
            break;
        case 'pong':
            this.counters.pongs++;
            break;
        case 'kick':
            this.counters.kicks++;
            this.sid = null;     // kicked: no session to resume
            this.setState('kicked');
            this.emit('kick', m.reason);
            break;
        case 'reconnect':
            this.counters.reconnectOrders++;
            this.nextDelay = Math.max(0, Number(m.after_ms) || 0);
            break;
        case 'upack':
        case 'reply':
            this.upAnswer(m);
            break;
        case 'error':
            if (m.id !== undefined && this.pendingUp.has(m.id)) {
                this.settleUp(m.id, this.pendingUp.get(m.id),
                              new Error(m.error || 'error'));
            } else {
                this.counters.errors++;
                this.emit('error', new Error(m.error || 'error'));
            }
            break;
        default:
            break;
        }
    }

    welcome(conn, m) {
        conn.welcomed = true;
        this.clearTimer('open');
        this.resumed = m.resumed === undefined ? null : !!m.resumed;
        if (this.resumed) {
            this.counters.resumed++;
        }
        this.sid = m.sid || null;
        this.hb = Number(m.hb) > 0 ? Number(m.hb) : 240;
        this.counters.connected++;
        this.backoff.reset();
        this.tokenFetched = false;
        this.failedAddrs = [];
        this.startHeartbeat();
        this.setState('connected');
        this.emit('welcome', { sid: this.sid, hb: this.hb,
                               resumed: this.resumed });
        if (this.acks.length) {
            this.flushAcks();
        }
    }

    /*
     * A ping every hb seconds (pushd closes a connection silent for
     * 2 x hb + 10 s); no frame within pongTimeout of a ping means the
     * link is dead, even when TCP still says it is up (a stopped server,
     * a NAT that forgot the flow): the socket is abandoned, not closed
     * politely, and the client reconnects.
     */
    startHeartbeat() {
        const every = (this.opts.pingInterval || this.hb * 1000);
        const wait = this.opts.pongTimeout
            || Math.min(Math.max(every, 1000), 10000);
        this.clearTimer('ping');
        const conn = this.conn;
        this.timers.ping = setInterval(() => {
            if (!this.sendFrame({ op: 'ping' })) {
                return;
            }
            this.counters.pings++;
            if (this.timers.dead === null) {
                this.timers.dead = setTimeout(() => {
                    this.timers.dead = null;
                    this.counters.deadLinks++;
                    this.lost(conn, null, 'heartbeat timeout');
                }, wait);
            }
        }, every);
    }

    message(m) {
        const qos = m.qos === 1 ? 1 : 0;
        const msg = { id: m.id, app: m.app, qos, data: m.data };
        if (qos === 1) {
            if (!this.seen.add(m.id, 'handling')) {
                // seen before: the server did not get our ack, or the
                // application has not acked yet (manual)
                this.counters.duplicates++;
                if (this.seen.get(m.id) === 'acked') {
                    this.queueAck(m.id);
                }
                return;
            }
        }
        this.counters.messages++;
        let results;
        try {
            results = this.emit('message', msg);
        } catch (e) {
            this.handlerFailed(msg, e);
            return;
        }
        if (qos !== 1 || this.manualAck) {
            return;
        }
        const thenables = results.filter((r) => r && typeof r.then === 'function');
        if (thenables.length === 0) {
            this.ack(m.id);
            return;
        }
        Promise.all(thenables).then(() => this.ack(m.id),
                                    (e) => this.handlerFailed(msg, e));
    }

    /* not acked, and forgotten so that its redelivery is handed again */
    handlerFailed(msg, e) {
        this.counters.handlerErrors++;
        if (msg.qos === 1) {
            this.seen.delete(msg.id);
        }
        this.emit('error', e);
    }

    queueAck(id) {
        this.acks.push(id);
        if (this.timers.ack === null && this.conn && this.conn.welcomed) {
            // one frame for the acks of one turn
            this.timers.ack = setTimeout(() => {
                this.timers.ack = null;
                this.flushAcks();
            }, 0);
        }
    }

    flushAcks() {
        if (!this.acks.length) {
            return;
        }
        const ids = this.acks.splice(0, 256);
        if (this.sendFrame({ op: 'ack', ids })) {
            this.counters.acked += ids.length;
            if (this.acks.length) {
                this.flushAcks();
            }
        } else {
            // sent on the next welcome; an ack is good on any connection
            this.acks.unshift(...ids);
        }
    }

    upAnswer(m) {
        const p = this.pendingUp.get(m.id);
        if (!p) {
            if (m.op === 'reply') {
                this.emit('reply', { id: m.id, data: m.data });
            }
            return;
        }
        if (m.op === 'reply') {
            this.settleUp(m.id, p, null, m.data);
            return;
        }
        // upack: a reply, when the business gave one, comes right after
        // it in the same write; wait that long for it
        p.acked = true;
        clearTimeout(p.timer);
        p.timer = setTimeout(() => this.settleUp(m.id, p, null, undefined),
                             this.replyWait);
    }

    settleUp(id, p, err, data) {
        if (this.pendingUp.get(id) !== p) {
            return;
        }
        this.pendingUp.delete(id);
        clearTimeout(p.timer);
        if (err) {
            this.counters.upFailed++;
            p.reject(err);
        } else {
            this.counters.upAcked++;
            p.resolve({ id, data });
        }
    }
}

export default PushdClient;
