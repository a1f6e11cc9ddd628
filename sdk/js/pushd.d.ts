// pushd.d.ts: the types of pushd.js, the pushd client SDK.

export declare const VERSION: string;

/** What the 'state' event reports. */
export type PushdState = 'connecting' | 'connected' | 'disconnected' | 'kicked';

/** `client.state` also has 'idle' (before connect()) and 'closed' (after close()). */
export type PushdClientState = PushdState | 'idle' | 'closed';

/** A message handed to the application: the server's msg frame. */
export interface PushdMessage<T = unknown> {
    /** opaque, unique in the cluster; the same id is never handed twice (qos 1) */
    id: string;
    app: string;
    qos: 0 | 1;
    /** the business's JSON, as it sent it */
    data: T;
}

export interface PushdToken {
    token: string;
    /** unix time in seconds the token is good until */
    expires: number;
}

export interface PushdWelcome {
    sid: string | null;
    /** heartbeat interval in seconds */
    hb: number;
    /** true: the session came back (bound apps, messages sent while away);
     *  false: a fresh session; null: the server does not say (older pushd) */
    resumed: boolean | null;
}

/** The dispatcher's reconnect policy, when its answer has one. */
export interface PushdReconnectPolicy {
    base_ms?: number;
    max_ms?: number;
    [k: string]: unknown;
}

export interface PushdClientOptions {
    /** ws:// or wss:// address of a room listener ("/connect" is added) */
    url?: string;
    /** http(s):// base of a dispatcher; GET /v1/dispatch?uid=..[&net=][&failed=] */
    dispatchUrl?: string;
    uid: string;
    /** default 'web' */
    device?: string;
    apps?: string[];
    token?: string;
    expires?: number;
    /** asked for a token when there is none, when it is about to expire
     *  (tokenMargin), or when the server refused the connection */
    getToken?: (who: { uid: string; device: string }) => Promise<PushdToken> | PushdToken;
    /** seconds before `expires` at which the token counts as stale (30) */
    tokenMargin?: number;
    /** the network the client is on ('wifi', 'cell'); one cached list each */
    net?: string;
    /** ws/wss for dispatcher addresses (default: wss when dispatchUrl is https) */
    secure?: boolean;
    /** heartbeat to ask the server for (?hb=), in seconds */
    hb?: number;
    /** ping interval in ms (default: welcome.hb seconds) */
    pingInterval?: number;
    /** ms without any frame after a ping before the link counts as dead
     *  (default: the ping interval, at least 1 s and at most 10 s) */
    pongTimeout?: number;
    /** ms a connection may take to its welcome (10000) */
    connectTimeout?: number;
    /** backoff: attempt n waits random(0, min(backoffMax, backoffBase * 2^n)) ms */
    backoffBase?: number;
    backoffMax?: number;
    /** qos 1 ids remembered against duplicates (1024) */
    dedupWindow?: number;
    /** true: qos 1 is acked only when the application calls ack(id) */
    manualAck?: boolean;
    /** ms an up() waits for its answer (10000) */
    upTimeout?: number;
    /** ms an up() waits after upack for a reply frame (50) */
    replyWait?: number;
    /** a WebSocket class (Node 18: one of your own; default globalThis.WebSocket) */
    WebSocket?: new (url: string) => WebSocket;
    /** default globalThis.fetch */
    fetch?: typeof fetch;
    /** a random source in [0, 1) for the jitter (tests) */
    random?: () => number;
    addressCache?: AddressCache;
}

export interface PushdCounters {
    connects: number;
    connected: number;
    disconnects: number;
    failures: number;
    reconnectOrders: number;
    kicks: number;
    resumed: number;
    deadLinks: number;
    pings: number;
    pongs: number;
    messages: number;
    duplicates: number;
    acked: number;
    handlerErrors: number;
    tokenRefreshes: number;
    dispatches: number;
    dispatchErrors: number;
    upSent: number;
    upAcked: number;
    upFailed: number;
    errors: number;
}

export interface PushdUpResult<T = unknown> {
    id: string;
    /** the business's reply, when it gave one */
    data: T | undefined;
}

export interface PushdEvents {
    /** return a promise to have the ack wait for it; a throw or rejection
     *  leaves the message unacked, to be handed again on redelivery */
    message: (m: PushdMessage) => void | Promise<unknown>;
    state: (s: PushdState) => void;
    welcome: (w: PushdWelcome) => void;
    kick: (reason: string) => void;
    /** ms until the next attempt */
    retry: (delayMs: number) => void;
    close: (info: { code: number; reason: string | null }) => void;
    /** a reply frame that came after its up() had resolved */
    reply: (r: { id: string; data: unknown }) => void;
    error: (e: Error) => void;
}

export declare class PushdClient {
    constructor(opts: PushdClientOptions);
    readonly state: PushdClientState;
    /** sid of the last welcome: sent as &sid= on reconnects */
    readonly sid: string | null;
    readonly hb: number | null;
    readonly resumed: boolean | null;
    readonly counters: Readonly<PushdCounters>;
    readonly apps: ReadonlySet<string>;
    on<K extends keyof PushdEvents>(type: K, fn: PushdEvents[K]): this;
    off<K extends keyof PushdEvents>(type: K, fn: PushdEvents[K]): this;
    connect(): this;
    close(): this;
    bind(app: string): this;
    unbind(app: string): this;
    up<T = unknown>(app: string, type: string, data: unknown,
                    opts?: { id?: string; timeout?: number }): Promise<PushdUpResult<T>>;
    ack(ids: string | string[]): void;
    setNet(net: string): this;
}

export declare class Backoff {
    constructor(opts?: { base?: number; max?: number; random?: () => number });
    base: number;
    max: number;
    attempt: number;
    ceiling(): number;
    next(): number;
    reset(): void;
}

export declare class DedupWindow {
    constructor(size?: number);
    readonly size: number;
    readonly length: number;
    has(id: string): boolean;
    add(id: string, state?: string): boolean;
    delete(id: string): boolean;
}

export declare class AddressCache {
    constructor(now?: () => number);
    put(net: string, addrs: string[], ttlSeconds: number, policy?: PushdReconnectPolicy): void;
    get(net: string): { addrs: string[]; until: number; policy: PushdReconnectPolicy | null } | null;
    fail(net: string, addr: string): void;
    clear(net?: string): void;
}

export default PushdClient;
