/*
 * pd_room.h: the room, the client-facing gateway: WebSocket connections
 * with token auth, heartbeats, apps, presence and kick.
 */

#ifndef PD_ROOM_H
#define PD_ROOM_H

typedef struct {
    pd_array_t      *listen;
    pd_str_t         ssl_certificate;
    pd_str_t         ssl_certificate_key;
    pd_msec_t        ssl_ticket_key_rotation;
    pd_msec_t        handshake_timeout;

    pd_str_t         auth_secret;
    pd_msec_t        heartbeat;
    pd_msec_t        heartbeat_min;
    pd_msec_t        heartbeat_max;
    size_t           max_frame;
    size_t           max_message;
    pd_int_t         max_apps;
    pd_array_t      *allow;          /* of pd_str_t, then parsed */
    pd_array_t      *deny;
    pd_array_t      *allow_cidr;     /* of pd_cidr_t */
    pd_array_t      *deny_cidr;
    pd_int_t         max_connections_per_ip;
    pd_int_t         handshake_rate;
    size_t           output_limit;
    pd_msec_t        reconnect_window;
    pd_int_t         reload_handover;
    pd_msec_t        linger;         /* 0: no resume */
    size_t           linger_buffer;
    pd_int_t         max_bad_frames;
    pd_int_t         max_auth_failures; /* per address per window */
    pd_array_t      *apps;           /* of pd_str_t, sorted; NULL: any */
    pd_array_t      *advertise;      /* of pd_str_t: the dispatcher's */

    pd_http_srv_t    http;
    pd_ssl_t         tls;
    unsigned         ssl:1;        /* some listener is TLS */
} pd_room_conf_t;

/*
 * How many connections ahead the broadcast walk (pd_room_deliver.c) and
 * the turn's flush (pd_room_out.c) prefetch what they will touch: far
 * enough that a cache miss is in by then, near enough that the lines
 * are still there.
 */
#define PD_ROOM_AHEAD  4

/* one output frame queued on a connection: a reference into a shared
 * framed message, so a broadcast costs one of these per receiver */
typedef struct pd_room_link_s  pd_room_link_t;

struct pd_room_link_s {
    pd_chain_t       cl;
    pd_buf_t         buf;
};

typedef struct pd_room_conn_s  pd_room_conn_t;

/* a uid this long or shorter is kept in the room connection itself */
#define PD_ROOM_UID_INLINE  16

/* where a stored backlog larger than the output bound goes on, per app:
 * the saver's cursor (PD_SAVER_CURSOR_SIZE, NUL-terminated); and, while
 * a resumed session's stored messages are fetched (rc->resuming), where
 * they go: after the welcome, before the frames kept while it lingered */
typedef struct {
    u_char           cursor[PD_APPS_MAX][PD_MSG_ID_SIZE];
    pd_chain_t     **ins;
    pd_uint_t        fetching;      /* the resume's fetches in flight */
    pd_uint_t        serial;        /* which resume: a fetch of an
                                     * earlier one no longer counts */
} pd_room_resume_t;

struct pd_room_conn_s {
    /*
     * The first cache line is what a delivery reads and writes (the
     * broadcast walk, queueing a frame, the flush): one line per
     * connection instead of three, which is most of a delivery's user CPU
     * with thousands of connections.  The struct is a multiple of 64
     * bytes and its chunks are page-aligned, so the line is one.
     */
    pd_connection_t *connection;
    pd_room_conf_t  *conf;
    pd_chain_t      *out;          /* queued frames */
    pd_chain_t     **out_last;
    size_t           out_bytes;
    uint8_t          napps;
    uint8_t          backlog;      /* bit i: app i has more stored */
    uint8_t          uid_len;
    unsigned         ws:1;          /* a live WebSocket of this worker */
    unsigned         registered:1;
    unsigned         ip_counted:1;
    unsigned         close_sent:1;  /* our close frame is queued */
    unsigned         closing:1;     /* close after the queue drains */
    unsigned         close_reason:4;
    unsigned         dirty:1;       /* in the list flushed this turn */
    unsigned         taken:1;       /* the room's since take-over:
                                     * counted, cursors saved at close */
    unsigned         lingering:1;   /* no socket: kept for room.linger */
    unsigned         linger_lost:1; /* frames dropped while it was */
    unsigned         resuming:1;    /* output held until the resume's
                                     * stored messages are in place */
    unsigned         moving:1;      /* its socket was sent to a worker of
                                     * the next generation: no answer yet */
    unsigned         moved:1;       /* it lives there now: what comes for
                                     * it here is forwarded */
    unsigned         adopted:1;     /* came from a retiring worker: the
                                     * broadcasts it got there are known */
    unsigned         sid_kept:1;    /* its client holds the sid of an
                                     * earlier worker (pd_room_sid_keep) */
    uint16_t         apps[PD_APPS_MAX];    /* pd_room_app_get() ids */
    uint16_t         up_count;     /* the coordinator's rate window of
                                    * "up" frames (up_second): in the
                                    * first line's padding */

    uint64_t        *bcast_seq;    /* last retained broadcast per app,
                                    * PD_APPS_MAX of them; NULL
                                    * until one is seen (all 0) */
    pd_room_resume_t *resume;      /* per app, while a stored backlog is
                                    * larger than the output bound */
    pd_buf_t        *in;           /* a partial frame, only while one is;
                                    * one malloc with its bytes */
    pd_buf_t        *msg;          /* a fragmented text message being
                                    * joined: its payload so far */
    uint32_t         last_in;      /* pd_current_msec's low 32 bits at
                                    * the last input: pd_room_quiet() */
    uint32_t         up_second;
    uint16_t         hb;           /* seconds told to the client (at most
                                    * an hour): the idle deadline is
                                    * pd_room_idle() */
    uint16_t         bad_frames;
    /*
     * What a WebSocket parser must know across reads: the data message
     * in progress (its opcode, 0 for none) and the UTF-8 check of its
     * text so far.  The parser itself lives on the stack for one read
     * (pd_room_frames): its limits are the configuration's and its
     * message length is msg's, so a connection keeps these 4 bytes
     * instead of the parser's 48.
     */
    uint8_t          ws_message;
    pd_utf8_state_t  utf8;
    /*
     * The uid, uid_len bytes: in place when it fits, as most do (a
     * number, a short name), else a malloc'ed copy this connection owns.
     * Read it with pd_room_uid(), set it with pd_room_uid_set().  In
     * place at full length (PD_UID_MAX), it was a third of the struct.
     */
    union {
        u_char       in[PD_ROOM_UID_INLINE];
        u_char      *out;
    } uid_;
} __attribute__((aligned(64)));

/* the most a heartbeat may be, seconds (room.heartbeat_max's bound) */
#define PD_ROOM_HB_MAX  3600

/* the idle deadline, ms: two heartbeats and a grace of 10 s */
#define pd_room_idle(rc)  ((uint32_t) (rc)->hb * 2000 + 10000)

/* a field more costs 64 bytes per connection: find room in the layout */
_Static_assert(sizeof(pd_room_conn_t) == 128,
               "a room connection is two cache lines");

#define pd_room_uid(rc)                                                      \
    ((rc)->uid_len <= PD_ROOM_UID_INLINE ? (rc)->uid_.in : (rc)->uid_.out)

/* PD_ERROR (logged) when a long uid's copy cannot be allocated */
pd_int_t pd_room_uid_set(pd_room_conn_t *rc, const u_char *uid, size_t len);

/*
 * The connection's id in the register, its session id and its handover
 * state: its slot and the low 32 bits of its number.  Both hold while
 * the room connection lives (a lingering or moved session keeps its
 * slot), so the id is worked out, not kept.
 */
static inline uint64_t
pd_room_conn_id(pd_room_conn_t *rc)
{
    pd_connection_t  *c = rc->connection;

    return ((uint64_t) (c - ((pd_cycle_t *) pd_cycle)->connections) << 32)
           | (uint64_t) (c->number & 0xffffffff);
}

/* ms since the connection's last input; last_in wraps every 49 days,
 * and the idle deadline is at most two hours */
#define pd_room_quiet(rc)                                                    \
    ((pd_msec_t) (uint32_t) ((uint32_t) pd_current_msec - (rc)->last_in))
#define pd_room_touch(rc)  (rc)->last_in = (uint32_t) pd_current_msec

/*
 * An upgraded connection keeps no log of its own (64 bytes of each): its
 * c->log is the cycle's, and its log lines get their context (number,
 * client, server) from pd_conn_log(c).  Nothing set an action on it past
 * the upgrade, so nothing is lost.
 */
#define pd_room_log_shared(c)                                                \
    do {                                                                     \
        (c)->log = ((pd_cycle_t *) pd_cycle)->log;                           \
        (c)->log_shared = 1;                                                 \
    } while (0)

/* the app names of a worker, each kept once (pd_room_apps.c) */
#define PD_ROOM_APPS_MAX  4096

uint16_t pd_room_app_get(const u_char *name, size_t len);
/* whether room.apps lets a client bind name (any name without it) */
pd_int_t pd_room_app_allowed(pd_room_conf_t *rcf, const u_char *name,
    size_t len);
/* sorts room.apps and checks its names; a phrase on error */
const char *pd_room_apps_conf(pd_room_conf_t *rcf);
uint16_t pd_room_app_find(const u_char *name, size_t len);
void pd_room_app_put(pd_uint_t id);
const u_char *pd_room_app_name(pd_uint_t id, size_t *len);
#define pd_room_app(rc, i)  pd_room_app_name((rc)->apps[i], NULL)

/* the slots of the room's connection chunks, free ones too (!rc->ws);
 * each chunk is PD_ROOM_CHUNK_SLOTS slots side by side */
#define PD_ROOM_CHUNK_SLOTS  256
pd_uint_t pd_room_slots(void);
pd_room_conn_t *pd_room_slot(pd_uint_t i);

#define pd_room_bseq(rc, i)  ((rc)->bcast_seq ? (rc)->bcast_seq[i] : 0)
pd_int_t pd_room_bseq_set(pd_room_conn_t *rc, pd_uint_t i, uint64_t seq);

/* why connections were closed: the stats' closes_by_reason */
#define PD_ROOM_CLOSE_CLIENT     0
#define PD_ROOM_CLOSE_IDLE       1
#define PD_ROOM_CLOSE_KICK       2
#define PD_ROOM_CLOSE_PROTOCOL   3
#define PD_ROOM_CLOSE_SLOW       4
#define PD_ROOM_CLOSE_SHUTDOWN   5
#define PD_ROOM_CLOSE_ERROR      6
#define PD_ROOM_CLOSE_N          7

/* the room's counters, by index into its table (pd_room_counters in
 * pd_room_module.c, in this order) */
#define PD_ROOM_STAT_HANDSHAKES      0
#define PD_ROOM_STAT_AUTH_FAILURES   1
#define PD_ROOM_STAT_REJECTED        2
#define PD_ROOM_STAT_FRAMES_IN       3
#define PD_ROOM_STAT_FRAMES_OUT      4
#define PD_ROOM_STAT_WS              5   /* live WebSocket connections */
#define PD_ROOM_STAT_CLOSES          6   /* 6 .. 6 + PD_ROOM_CLOSE_N - 1 */
#define PD_ROOM_STAT_QUEUED         13   /* bytes queued to clients, gauge */
#define PD_ROOM_STAT_ACCEPTED       14   /* pushes, broadcasts accepted */
#define PD_ROOM_STAT_DELIVERED      15   /* msg frames queued */
#define PD_ROOM_STAT_ACKED          16
#define PD_ROOM_STAT_REDELIVERED    17   /* stored ones sent on connect */
#define PD_ROOM_STAT_QOS0_DROPPED   18   /* qos 0 that reached no one */
#define PD_ROOM_STAT_BROADCASTS     19
#define PD_ROOM_STAT_STORE_FULL     20   /* pushes refused with 503 */
#define PD_ROOM_STAT_BCAST_SENT     21   /* broadcast frames queued */
#define PD_ROOM_STAT_LINGERING      22   /* sessions without a socket */
#define PD_ROOM_STAT_RESUMED        23
#define PD_ROOM_STAT_HANDED_OVER    24   /* to the next generation */
#define PD_ROOM_STAT_ADOPTED        25   /* from a retiring worker */
#define PD_ROOM_STAT_WALKS          26   /* broadcasts being walked, gauge */
#define PD_ROOM_STAT_WRITES         27   /* flushes of a queue to a socket */
#define PD_ROOM_STAT_N              28

/*
 * Broadcasts a worker walks at once: each holds only its frame (at most
 * center.max_message and a header), so the bound is memory, ~50 MB.  A
 * worker at the bound drops a broadcast (logged), so the API refuses one
 * (503) while some worker of the node walks PD_ROOM_BCAST_ROOM fewer (its
 * broadcast_walks gauge): the room is for the broadcasts other workers'
 * centers send at the same moment, before the gauge shows them.
 */
#define PD_ROOM_BCAST_MAX    4096
#define PD_ROOM_BCAST_ROOM   64

#define pd_room_stat(i)         pd_stats_module_add(pd_room_module, i, 1)
#define pd_room_stat_add(i, n)  pd_stats_module_add(pd_room_module, i, n)

extern const char   *pd_room_close_names[PD_ROOM_CLOSE_N];
extern pd_module_t   pd_room_module;

void pd_room_http_handler(pd_http_conn_t *hc);
void pd_room_read_handler(pd_event_t *ev);
void pd_room_take_over(pd_room_conn_t *rc, pd_http_conn_t *hc, u_char *rest,
    size_t len);
void pd_room_drop_http(pd_http_conn_t *hc, pd_room_conn_t *rc);
void pd_room_upgrade(pd_http_conn_t *hc);

/* output */
pd_int_t pd_room_send_shared(pd_room_conn_t *rc, pd_shbuf_t *sb);
/* a pong that replaces one still unsent at the queue's end */
pd_int_t pd_room_send_pong(pd_room_conn_t *rc, const u_char *payload,
    size_t len);
pd_int_t pd_room_send_shared_at(pd_room_conn_t *rc, pd_shbuf_t *sb,
    pd_chain_t ***at);
pd_int_t pd_room_send_text(pd_room_conn_t *rc, const u_char *json,
    size_t len);
pd_shbuf_t *pd_room_frame(pd_uint_t opcode, const u_char *payload,
    size_t len);
void pd_room_flush(pd_room_conn_t *rc);
void pd_room_flush_later(pd_room_conn_t *rc);
void pd_room_write_handler(pd_event_t *ev);
void pd_room_out_free(pd_room_conn_t *rc);
/*
 * What the output queue calls when it drains while the connection has a
 * stored backlog held back (rc->backlog): delivery sets it, so the queue
 * does not call up into delivery.
 */
typedef void (*pd_room_drain_pt)(pd_room_conn_t *rc);
void pd_room_out_on_drain(pd_room_drain_pt handler);

/* delivery */
/* this node's id of seq (pd_msg.h): the frame's and the API's */
u_char *pd_room_msg_id(u_char *p, uint64_t seq);
pd_shbuf_t *pd_room_msg_frame(uint64_t seq, pd_str_t *app, pd_uint_t qos,
    const u_char *data, size_t len, pd_msec_t stamp);
pd_shbuf_t *pd_room_msg_frame_id(pd_str_t *id, pd_str_t *app, pd_uint_t qos,
    const u_char *data, size_t len, pd_msec_t stamp);
pd_int_t pd_room_deliver(pd_room_conn_t *rc, pd_shbuf_t *frame);
pd_int_t pd_room_load(pd_room_conn_t *rc);
pd_int_t pd_room_load_first(pd_room_conn_t *rc);
pd_int_t pd_room_load_app(pd_room_conn_t *rc, pd_uint_t i);
void pd_room_load_more(pd_room_conn_t *rc);
pd_int_t pd_room_resume_start(pd_room_conn_t *rc, pd_chain_t **ins);
void pd_room_resume_release(pd_room_conn_t *rc, pd_uint_t serial);
void pd_room_save_cursors(pd_room_conn_t *rc);
pd_int_t pd_room_ack(pd_room_conn_t *rc, const char **ids, pd_uint_t n);
void pd_room_deliver_init(void);

/*
 * The routing interface (pd_room_route.c): what callers outside the room
 * ask of delivery.  They hand over a message and get an answer; the
 * store, the register lookups, the batch format and the channel commands
 * are the room's.
 */
typedef struct {
    pd_str_t         app;
    pd_str_t         data;          /* raw JSON, sent byte for byte */
    pd_uint_t        qos;
    pd_msec_t        ttl;
    pd_str_t         collapse;      /* len 0: none (qos 1 pushes only) */
} pd_room_msg_t;

typedef struct pd_room_push_s  pd_room_push_t;

/*
 * A push's answer: rc PD_OK (seq is its id, online the uids that had a
 * connection bound to the app, stored those that keep it), PD_BUSY (the
 * store is full, nothing kept) or PD_ERROR (the store is unreachable, or
 * no memory).  The callee may release the push from here.
 */
typedef void (*pd_room_push_pt)(void *data, pd_int_t rc, uint64_t seq,
    pd_uint_t online, pd_uint_t stored);

/*
 * A push of msg to n distinct uids, in two steps so that the caller can
 * hold the handle before any answer: create copies the uids and the app
 * (NULL: no memory); start stores (qos 1) and routes it, and calls done
 * exactly once, maybe before it returns, unless the push is released
 * first; it returns NULL, or a phrase when the push cannot be made here
 * (no register, qos 1 without a saver: done is not called).  msg->data
 * is read until done or the release.  pool lends memory to the store's
 * arguments for the call only.  Every push is released once, after
 * done or instead of it.
 */
pd_room_push_t *pd_room_push_create(pd_room_msg_t *msg, pd_str_t *uids,
    pd_uint_t n, pd_pool_t *pool, pd_room_push_pt done, void *data);
const char *pd_room_push_start(pd_room_push_t *p);
void pd_room_push_release(pd_room_push_t *p);

/* a broadcast's answer: its id and the workers it was handed to */
typedef struct {
    uint64_t         seq;
    pd_uint_t        workers;
} pd_room_bcast_answer_t;

/*
 * Frames msg once, retains it when it has a ttl, and starts every worker
 * (and every node) walking its connections bound to the app at its share
 * of rate per second.  PD_OK, PD_BUSY (the store is full), PD_AGAIN (a
 * worker walks nearly PD_ROOM_BCAST_MAX broadcasts), PD_ERROR.
 */
pd_int_t pd_room_broadcast(pd_room_msg_t *msg, pd_uint_t rate,
    pd_room_bcast_answer_t *out);

/* a kick reason is at most this many bytes */
#define PD_ROOM_KICK_MAX  256

typedef struct pd_room_kick_s  pd_room_kick_t;

/* rc PD_OK with the connections told, or PD_ERROR (register down) */
typedef void (*pd_room_kick_pt)(void *data, pd_int_t rc, pd_uint_t kicked);

/*
 * Kicks the uid's connections, of one device (device->len 0: all), with
 * a reason, on whatever worker or node holds them; the same two steps
 * and release as a push.  create: NULL on no memory or over-long
 * arguments; start: PD_DECLINED without a register (done not called).
 */
pd_room_kick_t *pd_room_kick_uid(pd_str_t *uid, pd_str_t *device,
    pd_str_t *reason, pd_room_kick_pt done, void *data);
pd_int_t pd_room_kick_start(pd_room_kick_t *k);
void pd_room_kick_release(pd_room_kick_t *k);

/*
 * The coordinator's hooks, set in its workers (NULL without it).  up: an
 * "up" frame's members as raw JSON values (type PD_JSON_ABSENT when
 * missing); it returns as an op handler (PD_DONE when rc was closed).
 * state: a connection's apps come online or go offline (app: the index
 * of one app in rc->apps, -1 for all; device NULL when the room has it
 * no longer: the register knows it).
 */
typedef struct {
    pd_json_val_t    id;
    pd_json_val_t    app;
    pd_json_val_t    type;
    pd_json_val_t    data;
} pd_room_up_t;

typedef pd_int_t (*pd_room_up_pt)(pd_room_conn_t *rc, pd_room_up_t *up);
typedef void (*pd_room_state_pt)(pd_room_conn_t *rc, const pd_str_t *device,
    pd_int_t app, pd_uint_t online);

extern pd_room_up_pt     pd_room_up_handler;
extern pd_room_state_pt  pd_room_state_handler;

/* the dispatcher's answer to GET /v1/dispatch on the room's listeners,
 * set in its workers (NULL without it: 404) */
typedef void (*pd_room_dispatch_pt)(pd_http_conn_t *hc);
extern pd_room_dispatch_pt  pd_room_dispatch_handler;

/* the session id the welcome frame told, into buf; returns its length */
size_t pd_room_session_id(pd_room_conn_t *rc, u_char *buf, size_t size);
uint64_t pd_room_sid_of(uint32_t pid, uint64_t id);
/*
 * A session's sid for its life: hash is the one its client holds (of an
 * earlier worker after a hand-over); keep records that one for an
 * adopted rc (PD_ERROR without memory), forget drops it (rc freed);
 * tag is the 24 bits of it the register entry keeps.
 */
uint64_t pd_room_sid_hash(pd_room_conn_t *rc);
pd_int_t pd_room_sid_keep(pd_room_conn_t *rc, uint64_t sid);
void pd_room_sid_forget(pd_room_conn_t *rc);
uint32_t pd_room_sid_tag(uint64_t sid);

/*
 * Resume (pd_room_linger.c).  linger_start: PD_OK when rc now lingers
 * (socket gone, session kept), PD_DECLINED when it must close.
 * linger_skip: 1 when a frame for a lingering rc is not kept.  resume:
 * PD_OK when the request with &sid= was answered (resumed here, handed
 * to the session's worker, or refused), PD_DECLINED: a fresh session.
 * take_back (pd_room_ws.c): hc's socket into lingering rc, the welcome
 * with resumed, then what it missed; PD_BUSY over the per-address bound,
 * PD_ERROR without memory for the welcome (rc lingers on either way).
 */
pd_int_t pd_room_linger_start(pd_room_conn_t *rc, pd_uint_t reason);
pd_uint_t pd_room_linger_skip(pd_room_conn_t *rc, pd_shbuf_t *sb);
pd_int_t pd_room_resume(pd_http_conn_t *hc, pd_str_t *uid, pd_str_t *device,
    pd_str_t *sid, uint32_t hb);
pd_int_t pd_room_take_back(pd_room_conn_t *rc, pd_http_conn_t *hc,
    uint32_t hb);
pd_int_t pd_room_send_welcome(pd_room_conn_t *rc, pd_str_t *key,
    pd_str_t *sid, pd_uint_t resumed);
void pd_room_linger_init(void);
/* drops the queued frames drop() picks (pd_room_out.c) */
void pd_room_out_drop(pd_room_conn_t *rc, pd_uint_t (*drop)(pd_buf_t *b));

/*
 * A reload's live hand-over (pd_room_handover.c).  begin: a retiring
 * worker hands its plain WebSocket connections to the next generation
 * in slices (PD_DECLINED: there is none, send them away as before).
 * seen: whether an adopted connection got broadcast seq already (and
 * from now on it has).  forward: a moved connection's queued frames go
 * to its new worker.  drop: a moving or moved connection ends here
 * quietly (it lives on there).  send_away: the spread reconnect.
 */
#define PD_ROOM_SEEN_MAX  32
pd_int_t pd_room_handover_begin(pd_cycle_t *cycle);
pd_uint_t pd_room_handover_seen(pd_room_conn_t *rc, uint64_t seq);
void pd_room_handover_forward(pd_room_conn_t *rc);
void pd_room_handover_drop(pd_room_conn_t *rc);
void pd_room_handover_forget(pd_room_conn_t *rc);
/* held: an adopted connection waits for its old worker's last frames */
pd_uint_t pd_room_handover_held(pd_room_conn_t *rc);
void pd_room_handover_unhold(pd_room_conn_t *rc);
pd_int_t pd_room_handover_kick(pd_room_conn_t *rc, const u_char *reason,
    size_t len);
void pd_room_handover_init(void);
void pd_room_send_away(pd_room_conn_t *rc, pd_msec_t window);
/* the recent broadcasts this worker is done with for slot (deliver.c) */
pd_uint_t pd_room_bcast_passed(pd_uint_t slot, uint64_t *out, pd_uint_t max);

/* lifecycle */
pd_room_conn_t *pd_room_conn_alloc(void);
void pd_room_conn_free(pd_room_conn_t *rc);
void pd_room_close(pd_room_conn_t *rc, pd_uint_t reason);
void pd_room_close_with(pd_room_conn_t *rc, pd_uint_t code,
    const char *why, pd_uint_t reason);
void pd_room_kick(pd_room_conn_t *rc, const u_char *reason, size_t len);
pd_room_conn_t *pd_room_find(uint64_t id);
void pd_room_retire(pd_cycle_t *cycle);
void pd_room_resync(pd_redis_t *r);
pd_int_t pd_room_init_channel(pd_cycle_t *cycle);

#endif /* PD_ROOM_H */
