/*
 * pd_redis.h: hiredis' async API on the worker's own epoll loop: one
 * long pipelined connection per pd_redis_t, per-command timeouts,
 * reconnection with backoff, subscribers that resubscribe by themselves,
 * and the uid -> shard hash every node agrees on.
 */

#ifndef PD_REDIS_H
#define PD_REDIS_H

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#define PD_REDIS_BACKOFF_MIN   100     /* ms, first retry after a loss */
#define PD_REDIS_BACKOFF_MAX   5000    /* ms, doubling stops here */

/*
 * The most elements of one array in a reply: far above what pushd asks
 * for (a uid's hash, a fetch, an MGET of nodes), far below what would
 * hurt.  hiredis allocates an array's pointers when its header arrives,
 * so "*211111111" alone made a worker allocate 1.7 GB (found by the
 * redis_reply fuzz target); the link now fails instead.
 */
#define PD_REDIS_MAX_ELEMENTS  (1024 * 1024)

typedef struct pd_redis_s  pd_redis_t;

/*
 * The answer to one command.  reply is owned by hiredis and valid only
 * during the call; NULL means the command failed without an answer
 * (timeout, lost link, pd_redis_destroy), and the server may or may not
 * have executed it.  A callback may queue commands and may destroy r.
 */
typedef void (*pd_redis_reply_pt)(pd_redis_t *r, redisReply *reply,
    void *data);
/* the link is up (again): a place to re-send state the server lost */
typedef void (*pd_redis_connect_pt)(pd_redis_t *r, void *data);
/*
 * One message published on a subscribed channel.  channel is
 * NUL-terminated; payload is len bytes of anything, NULs included; both
 * are valid only during the call.  The handler may subscribe, unsubscribe
 * (its own channel too), publish elsewhere and destroy r.
 */
typedef void (*pd_redis_message_pt)(pd_redis_t *r, const char *channel,
    const u_char *payload, size_t len, void *data);

/*
 * A connection to host:port, not yet started.  host must be a numeric
 * IPv4 or IPv6 address (resolve names while reading the configuration:
 * getaddrinfo() on a name may block the loop).  timeout bounds the
 * connect and the age of the oldest unanswered command; past it the link
 * is considered broken.  0: no timeout.  Returns NULL (logged) on a bad
 * address or no memory; the caller owns the result and frees it with
 * pd_redis_destroy().  Needs the worker's connection array and timer
 * heap only from pd_redis_connect() on.
 */
pd_redis_t *pd_redis_create(const char *host, int port, pd_msec_t timeout,
    pd_log_t *log);

/*
 * As pd_redis_create(), for a connection that only listens to channels
 * (pd_redis_subscribe()); pd_redis_command() refuses it.  Its link may be
 * silent for hours, so timeout bounds the connect and the silence
 * instead: after timeout ms without a byte from the server it sends a
 * PING, and a link that stays silent timeout ms more is broken and made
 * anew (a dead server is found within 2 x timeout).  0: no PING, the
 * kernel's keepalive only.  After every connect it subscribes again to
 * every channel it holds, before the connect handler runs.
 */
pd_redis_t *pd_redis_create_subscriber(const char *host, int port,
    pd_msec_t timeout, pd_log_t *log);

/* called from the loop (never from inside pd_redis) after every connect */
void pd_redis_set_connect_handler(pd_redis_t *r, pd_redis_connect_pt h,
    void *data);

/*
 * Credentials sent as "AUTH [user] password" first on every link (the
 * strings are copied; user NULL: the default user, requirepass style).
 * Until the server accepts them the link counts as down: commands are
 * declined and subscriptions wait; a refusal is logged and the link
 * made again with the backoff.  Call before pd_redis_connect().
 * PD_ERROR: no memory.
 */
pd_int_t pd_redis_set_auth(pd_redis_t *r, const char *user,
    const char *password);

/*
 * Starts the non-blocking connect on the worker's loop.  From then on the
 * connection keeps itself up: after a failed attempt or a lost link it
 * tries again after PD_REDIS_BACKOFF_MIN ms, doubling up to
 * PD_REDIS_BACKOFF_MAX, until a reply shows the server healthy again.
 * PD_OK: started (or already running); PD_ERROR when called from a
 * callback on a connection that is being destroyed.
 */
pd_int_t pd_redis_connect(pd_redis_t *r);

/*
 * Queues one command (argvlen NULL: the arguments are C strings; the
 * arguments are copied).  Commands queued in one loop turn leave in one
 * write; many may be in flight.  On PD_OK cb is called exactly once,
 * later, never from inside this call (cb NULL: the answer is not
 * wanted).  PD_DECLINED: the link is not up (the caller answers 503 or
 * keeps the work); PD_ERROR: not a request/reply command
 * ((P)(UN)SUBSCRIBE, MONITOR), r is a subscriber, or no memory.  cb is
 * not called on either.
 */
pd_int_t pd_redis_command(pd_redis_t *r, pd_redis_reply_pt cb, void *data,
    int argc, const char **argv, const size_t *argvlen);

/*
 * PUBLISH channel payload as a command of r (not a subscriber): payload
 * is len bytes of anything.  The reply is the number of subscribers that
 * got it, on this server; a message finds only those connected at that
 * moment.  Returns as pd_redis_command().
 */
pd_int_t pd_redis_publish(pd_redis_t *r, const char *channel,
    const u_char *payload, size_t len, pd_redis_reply_pt cb, void *data);

/*
 * Adds channel (a C string, copied) to subscriber r, or gives a channel
 * it holds a new handler and data.  The SUBSCRIBE leaves in this loop
 * turn if the link is up, and again after every reconnect; handler(data)
 * then gets every message until pd_redis_unsubscribe() or
 * pd_redis_destroy(), never from inside this call.  Messages published
 * while the link is down are lost.  PD_OK; PD_ERROR: r is not a
 * subscriber, handler is NULL, or no memory.
 */
pd_int_t pd_redis_subscribe(pd_redis_t *r, const char *channel,
    pd_redis_message_pt handler, void *data);

/*
 * Drops channel from subscriber r: its handler is not called again, even
 * for messages already on their way.  PD_OK; PD_DECLINED: not held.
 */
pd_int_t pd_redis_unsubscribe(pd_redis_t *r, const char *channel);

#define PD_REDIS_SUB_OTHER      0   /* a pong, an unsubscribe: nothing */
#define PD_REDIS_SUB_MESSAGE    1   /* *channel and *payload set */
#define PD_REDIS_SUB_CONFIRMED  2   /* a subscribe; *channel set */
#define PD_REDIS_SUB_ERROR      3

/*
 * What a reply on a subscriber's link is, read from the server's bytes
 * alone (untrusted): the strings are elements of reply.
 */
pd_uint_t pd_redis_sub_parse(const redisReply *reply,
    const redisReply **channel, const redisReply **payload);

/*
 * Bounds a hiredis reader (every link's is): an array of more than
 * PD_REDIS_MAX_ELEMENTS is a reader error, as hiredis' out-of-memory is,
 * and hiredis drops the link.
 */
void pd_redis_reader_limit(redisReader *rd);

/*
 * The channels of subscriber r that the server confirmed on the current
 * link: equal to the number held once subscriptions are in force, 0
 * while the link is down.
 */
pd_uint_t pd_redis_subscribed(pd_redis_t *r);

/*
 * Writes the commands queued on r now rather than at the end of the loop
 * turn: for a worker about to exit, whose last commands would otherwise
 * never leave.  Their answers come as usual if the loop runs on.
 */
void pd_redis_flush(pd_redis_t *r);

/* 1 when the link is up (commands accepted, subscriptions sent), else 0 */
pd_int_t pd_redis_connected(pd_redis_t *r);
/* commands sent or queued and not yet answered */
pd_uint_t pd_redis_pending(pd_redis_t *r);

/*
 * Fails every pending command (cb with NULL), closes the link and frees
 * r.  Safe from inside a reply callback: r is then freed once control
 * leaves hiredis.
 */
void pd_redis_destroy(pd_redis_t *r);

/*
 * The shard of uid among nshards: a jump consistent hash of the uid's
 * CRC-32 (IEEE, as zlib), so every node, build and version agrees, and
 * growing from n to n + 1 shards moves only the keys that land on the
 * new one.  nshards 0 is taken as 1.
 */
uint32_t pd_redis_shard(const u_char *uid, size_t len, uint32_t nshards);

/*
 * Named groups of links that modules of a worker share: the module that
 * makes the links owns them and publishes them under a name (n 0 takes
 * the name back); others use them by that name, not by the owner's
 * globals.  PD_ERROR when PD_REDIS_GROUPS names are taken.
 */
#define PD_REDIS_GROUPS  4
pd_int_t pd_redis_group_set(const char *name, pd_redis_t **links,
    pd_uint_t n);
/* the links published as name, *n of them; NULL (and 0) when none */
pd_redis_t **pd_redis_group(const char *name, pd_uint_t *n);

#endif /* PD_REDIS_H */
