/*
 * pd_saver_redis.c: qos 1 messages for a cluster: hot in Redis, durable
 * in PostgreSQL.  A push is answered 200 only once both have it.
 *
 * Redis (saver.redis, else the register's servers), on the uid's server
 * (pd_redis_shard):
 *   pd:q:{uid}     list of message ids ("node-seq": unique in the
 *                  cluster), in store order (the mailboxes of all the
 *                  uid's apps: one list, filtered by app); "~id" when
 *                  the body is inline in dl
 *   pd:m:{id}      hash {a: app, d: data, n: the lists q holding it},
 *                  written to every server a multicast (or a reload, or
 *                  a collapse store) touches; gone when its last q lets
 *                  go of it, else when it expires
 *   pd:dl:{uid}    hash id -> deliveries, for the no-ack guard: 0 from
 *                  the store until the id leaves q, so it also says
 *                  whether q holds the id (a store made again adds
 *                  nothing) without a scan of q; and b:id ->
 *                  "expires\napp\ndata", the inline body of a live store's
 *                  part for one uid of a server (the common unicast),
 *                  which goes with the id (pd_sr_store_plain)
 *   pd:c:{uid}     hash "app\ncollapse" -> the id holding that key, and
 *                  id -> "app\ncollapse" (so that its ack cleans both),
 *                  expiring with the longest message it names
 *   pd:saver:ok    set once the server holds what PostgreSQL holds; a
 *                  server that lost its data lacks it, and the first
 *                  worker to see that reloads the unacked messages
 * Each operation is one Lua script, so it is atomic on its server,
 * except the common live store, plain commands whose answers decide
 * what to undo (pd_sr_store_plain: a script's calls cost Redis twice
 * the commands).
 *
 * PostgreSQL (pd_saver_pg.c): pd_messages, the durable log: a row per
 * (uid, message), deleted by the ack or, once expired, by a sweep.
 */

#include "pd_core.h"
#include "pd_saver.h"
#include "pd_register.h"
#include "pd_saver_pg.h"

#define PD_SR_CHECK      2000    /* ms between looks for pd:saver:ok */

/*
 * The body of a message, m, counts the lists q that hold its id (field
 * n): a list that lets go of the id (an ack, the no-ack guard) takes one
 * off, and the last deletes m.  Without it every body stayed in Redis
 * for its whole ttl after the ack (a day by default), and the keyspace
 * grew with the traffic.  A body with no n (stored by an older pushd, or
 * gone) reads -1 here: the field is taken back off and the body left to
 * expire.  unref() takes the KEYS index, so that every key a call names
 * is visibly in KEYS.  A body a collapse key replaced keeps its count
 * (its key is not known beforehand) and expires.
 */
#define PD_SR_UNREF_LUA                                                    \
    "local function unref(i) "                                             \
    "  local n = redis.call('HINCRBY', KEYS[i], 'n', -1) "                 \
    "  if n == 0 then redis.call('DEL', KEYS[i]) "                         \
    "  elseif n < 0 then redis.call('HDEL', KEYS[i], 'n') end "            \
    "end "

/* m's fields and expiry, and its count of the lists that took it now: a
 * body no list holds is not written */
#define PD_SR_BODY_LUA                                                     \
    "if s > 0 then "                                                       \
    "  redis.call('HSET', KEYS[1], 'a', ARGV[1], 'd', ARGV[2]) "           \
    "  redis.call('PEXPIREAT', KEYS[1], ARGV[3]) "                         \
    "  if p > 0 then redis.call('HINCRBY', KEYS[1], 'n', p) end "          \
    "end "

/*
 * KEYS: m, then q and dl of each uid; ARGV: app, data, expires, max per
 * mailbox, id.  A store made again (a reload racing a live store, or
 * reading back what a server kept) finds the id there and adds nothing:
 * the id's delivery count in dl, set to 0 by the store and gone with
 * the id from q (an ack, the guard, an expiry), says so in one step.
 * (It was LPOS, a scan of q: 1 ms a store at 25,000 ids, and a reload
 * into long mailboxes outlasted the link's timeout.  An id stored by a
 * version before that count is not seen, and a store of it made again
 * would queue it twice: harmless, the client drops a repeated id.)
 * Each call a script makes costs Redis about as much as the command
 * itself, so RPUSH answers the length LLEN was asked for (a full mailbox
 * takes the id back off).  The body's count is added to, never set: a
 * reload stores a message's uids one call each, and a store of another
 * server's uids writes its own body there.  Answers {stored, full, then
 * the q of each full mailbox}: the durable log, written beside Redis,
 * took a row for every uid, and a full one's must go (a reload would
 * bring it back, and nothing would ever ack it).
 */
static const char  pd_sr_store_lua[] =
    "local max = tonumber(ARGV[4]) local s, f, p, out = 0, 0, 0, {} "
    "for i = 2, #KEYS, 2 do "
    "  if redis.call('HSETNX', KEYS[i + 1], ARGV[5], 0) == 0 then "
    "    s = s + 1 "
    "  elseif redis.call('RPUSH', KEYS[i], ARGV[5]) <= max then "
    "    s = s + 1 p = p + 1 "
    "  else "
    "    redis.call('RPOP', KEYS[i]) redis.call('HDEL', KEYS[i + 1], ARGV[5]) "
    "    f = f + 1 out[#out + 1] = KEYS[i] "
    "  end "
    "end "
    PD_SR_BODY_LUA
    "table.insert(out, 1, f) table.insert(out, 1, s) "
    "return out";

/*
 * A live store's push into a full mailbox, taken back (pd_sr_plain_t).
 * KEYS: q, dl, m; ARGV: what was pushed (the id, or "~id" for an inline
 * body), the id.  It is the list's last copy, unless a fetch and an ack
 * took it meanwhile: then nothing is left to undo.  An inline body goes
 * with its delivery count (both fields: 2); a body in m is let go of.
 */
static const char  pd_sr_unstore_lua[] =
    PD_SR_UNREF_LUA
    "if redis.call('LREM', KEYS[1], -1, ARGV[1]) > 0 then "
    "  if redis.call('HDEL', KEYS[2], ARGV[2], 'b:' .. ARGV[2]) < 2 then "
    "    unref(3) "
    "  end "
    "end "
    "return 1";

/*
 * With a collapse key.  KEYS: m, then q, c, dl of each uid (KEYS[i],
 * [i + 1], [i + 2]: every key a call names is in KEYS); ARGV: app,
 * data, expires, max per mailbox, id, "app\ncollapse", the ttl in ms,
 * "1" for a reload's store.  The id that held the key leaves q (and its
 * delivery count) once the new one is in; a full mailbox holding the
 * key takes the new one.  Answers {stored, full, then the KEYS index of
 * q and the old id of each replacement, or minus the index of q and ""
 * for a full mailbox}, for the durable log to forget the old rows, and
 * the full ones' new.  The replaced id leaves q from the tail (LREM
 * -1: q holds it once, and an often replaced key's last id is a recent
 * one; a count of 0 scanned the whole list).
 *
 * A reload reads the log while pushes go on, and may meet a version
 * whose replacement is already here but whose row's DELETE has not yet
 * reached the log: pushed in store order it would replace the newer
 * one, and forget the newer one's row.  So a reload's store never
 * replaces a newer id (its sequence, the hex after the last '-', is the
 * later: ids of one node only grow, and nodes' clocks set them) and
 * answers its own id as the replaced one: its row goes.
 */
static const char  pd_sr_store_collapse_lua[] =
    "local function seq(id) return string.match(id, '%-(%x+)$') or '' end "
    "local function newer(a, b) "
    "  a, b = seq(a), seq(b) return #a > #b or (#a == #b and a > b) "
    "end "
    "local max = tonumber(ARGV[4]) local ttl = tonumber(ARGV[7]) "
    "local s, f, p, out = 0, 0, 0, {} "
    "for i = 2, #KEYS, 3 do "
    "  if redis.call('HSETNX', KEYS[i + 2], ARGV[5], 0) == 0 then "
    "    s = s + 1 "
    "  else "
    "    local prev = redis.call('HGET', KEYS[i + 1], ARGV[6]) "
    "    local held = prev "
    "                 and redis.call('HEXISTS', KEYS[i + 2], prev) == 1 "
    "    if held and ARGV[8] == '1' and newer(prev, ARGV[5]) then "
    "      redis.call('HDEL', KEYS[i + 2], ARGV[5]) "
    "      out[#out + 1] = i out[#out + 1] = ARGV[5] "
    "    elseif held or redis.call('LLEN', KEYS[i]) < max then "
    "      redis.call('RPUSH', KEYS[i], ARGV[5]) s = s + 1 p = p + 1 "
    "      if held then "
    "        redis.call('LREM', KEYS[i], -1, prev) "
    "        redis.call('HDEL', KEYS[i + 2], prev) "
    "        out[#out + 1] = i out[#out + 1] = prev "
    "      end "
    "      if prev then redis.call('HDEL', KEYS[i + 1], prev) end "
    "      redis.call('HSET', KEYS[i + 1], ARGV[6], ARGV[5], ARGV[5], "
    "                 ARGV[6]) "
    "      if redis.call('PTTL', KEYS[i + 1]) < ttl then "
    "        redis.call('PEXPIRE', KEYS[i + 1], ttl) "
    "      end "
    "    else "
    "      redis.call('HDEL', KEYS[i + 2], ARGV[5]) "
    "      f = f + 1 out[#out + 1] = -i out[#out + 1] = '' "
    "    end "
    "  end "
    "end "
    PD_SR_BODY_LUA
    "table.insert(out, 1, f) table.insert(out, 1, s) "
    "return out";

/*
 * KEYS: q, dl, then the m key of every id in q after `after` that has
 * one; ARGV: app, after (an id or ""), max deliveries, limit, now (unix
 * ms).  Every key a script touches comes in KEYS, as Redis Cluster and
 * ACL key patterns expect; but these ids are known only once q is read,
 * so a call that lacks the m key of one changes nothing and answers
 * {-1, id...} (the ids after `after` with a body in m), and the caller
 * asks again with their keys.  The first call of a fetch passes none: an
 * empty mailbox, or one of inline bodies only, costs one call, others
 * two.  An inline body ("~id" in q, "b:id" in dl: PD_SR_INLINE) carries
 * its expiry, checked here against now, where m expires by itself.
 * An id of m whose delivery count dl lacks is being acked (every store
 * writes the count before the id, and the ack takes the count first:
 * pd_sr_acks_flush): it leaves q here, as the ack would take it, and is
 * not sent again.  An inline id without its body is taken for an expired
 * one, which an ack under way also leaves that way.  An id leaves q by
 * an LREM that stops at its first copy (a list holds an id once): with
 * a count of 0 each scanned the whole list, and a fetch that drops many
 * of a long list scanned it once per id.
 */
static const char  pd_sr_pending_lua[] =
    PD_SR_UNREF_LUA
    "local out = {} local list = redis.call('LRANGE', KEYS[1], 0, -1) "
    "local max = tonumber(ARGV[3]) local lim = tonumber(ARGV[4]) "
    "local now = tonumber(ARGV[5]) "
    "local exp, drop, from = 0, {}, 1 "
    "local function inline(x) return string.byte(x, 1) == 126 end "
    "if ARGV[2] ~= '' then "
    "  for i, x in ipairs(list) do "
    "    if x == ARGV[2] or x == '~' .. ARGV[2] then from = i + 1 break end "
    "  end "
    "end "
    "local key = {} "
    "for i = 3, #KEYS do key[KEYS[i]] = i end "
    "for i = from, #list do "
    "  if not inline(list[i]) and not key['pd:m:' .. list[i]] then "
    "    local ids = {-1} "
    "    for j = from, #list do "
    "      if not inline(list[j]) then ids[#ids + 1] = list[j] end "
    "    end "
    "    return ids "
    "  end "
    "end "
    "for i = from, #list do "
    "  local x = list[i] local a, d, id, gone "
    "  if inline(x) then "
    "    id = string.sub(x, 2) "
    "    local b = redis.call('HGET', KEYS[2], 'b:' .. id) "
    "    if b then "
    "      local e, ap, rest = string.match(b, '^(%d+)\\n([^\\n]*)\\n(.*)$') "
    "      if e and tonumber(e) > now then a, d = ap, rest end "
    "    end "
    "  elseif redis.call('HEXISTS', KEYS[2], x) == 0 then "
    "    id, gone = x, true "
    "  else "
    "    id = x "
    "    local m = redis.call('HMGET', KEYS[key['pd:m:' .. id]], 'a', 'd') "
    "    a, d = m[1], m[2] "
    "  end "
    "  if gone then "
    "    redis.call('LREM', KEYS[1], 1, x) unref(key['pd:m:' .. id]) "
    "  elseif not a then "
    "    redis.call('LREM', KEYS[1], 1, x) "
    "    redis.call('HDEL', KEYS[2], id, 'b:' .. id) exp = exp + 1 "
    "  elseif a == ARGV[1] then "
    "    local n = redis.call('HINCRBY', KEYS[2], id, 1) "
    "    if max > 0 and n > max then "
    "      redis.call('LREM', KEYS[1], 1, x) "
    "      redis.call('HDEL', KEYS[2], id, 'b:' .. id) drop[#drop + 1] = id "
    "      if not inline(x) then unref(key['pd:m:' .. id]) end "
    "    else "
    "      out[#out + 1] = id out[#out + 1] = d "
    "      if #out >= 2 * lim then break end "
    "    end "
    "  end "
    "end "
    "local res = {exp, #drop} "
    "for _, id in ipairs(drop) do res[#res + 1] = id end "
    "for _, v in ipairs(out) do res[#res + 1] = v end "
    "return res";

/*
 * The acks of a loop turn for one server.  KEYS: pd:saver:ok,
 * pd:saver:acked, then q, dl, c, m of each ack; ARGV: id, "uid\nid" of
 * each.  An ack of an id its q no longer holds (a second ack) leaves m
 * alone.  An id that held a collapse key lets go of it, unless a newer
 * one holds it already.  While the server lacks pd:saver:ok a reload
 * may be reading PostgreSQL, where these acks' DELETE has not yet come:
 * they are noted in pd:saver:acked, and the reload plays them again
 * after its stores.  A list holds an id once (the store's count says
 * whether it is there), so LREM stops at the first: acks come oldest
 * first, near the head, where a count of 0 scanned the whole list.
 * Since pd_sr_acks_flush takes both fields first, the script mostly
 * meets acks whose HDEL answers 0: bodies in m, and the acks of a
 * server without pd:saver:ok, whose inline ids the flush takes off q.
 */
static const char  pd_sr_ack_lua[] =
    PD_SR_UNREF_LUA
    "local ok = redis.call('EXISTS', KEYS[1]) == 1 "
    "for i = 1, #ARGV / 2 do "
    "  local q, id = 3 + (i - 1) * 4, ARGV[2 * i - 1] "
    "  if redis.call('HDEL', KEYS[q + 1], id, 'b:' .. id) == 2 then "
    "    redis.call('LREM', KEYS[q], 1, '~' .. id) "
    "  else "
    "    local k = redis.call('HGET', KEYS[q + 2], id) "
    "    if k then "
    "      redis.call('HDEL', KEYS[q + 2], id) "
    "      if redis.call('HGET', KEYS[q + 2], k) == id then "
    "        redis.call('HDEL', KEYS[q + 2], k) "
    "      end "
    "    end "
    "    if redis.call('LREM', KEYS[q], 1, id) > 0 then "
    "      unref(q + 3) "
    "    end "
    "  end "
    "  if not ok then redis.call('SADD', KEYS[2], ARGV[2 * i]) end "
    "end "
    "if not ok then redis.call('PEXPIRE', KEYS[2], 600000) end "
    "return #ARGV / 2";

/*
 * The acks waiting for the end of the loop turn, per server: one script
 * call for all of them instead of one each (a call costs Redis about as
 * much as the work of three acks).  Each entry: uid length, uid, id
 * length, id.
 */
#define PD_SR_ACK_BATCH  128

typedef struct {
    pd_uint_t            n;
    size_t               len;
    u_char               buf[PD_SR_ACK_BATCH * (2 + PD_UID_MAX
                                                + PD_MSG_ID_LEN)];
} pd_sr_acks_t;

static pd_sr_acks_t  *pd_sr_acks;       /* one per server */
static pd_event_t     pd_sr_acks_ev;

static pd_saver_pg_t  *pd_sr_log;
static pd_timer_t       pd_sr_check_timer;
static pd_uint_t     pd_sr_reloading;

static void pd_saver_reload_done(void *data, pd_int_t rc, pd_uint_t stored,
    pd_uint_t full);
static void pd_sr_reload_acked(pd_redis_t *r, redisReply *reply,
    void *data);
static void pd_sr_acks_before(pd_redis_t *shard);

typedef struct {
    pd_saver_done_pt     done;
    void                *data;
    pd_uint_t            waiting;    /* the answers still due */
    pd_uint_t            failed;
    pd_uint_t            stored;
    pd_uint_t            full;
    pd_str_t             id;
    u_char               idbuf[80];
} pd_sr_store_t;

/* one server's part of a store with a collapse key: the uids it holds,
 * for the durable log to forget the rows of the replaced ids */
typedef struct {
    pd_sr_store_t       *st;
    pd_uint_t            n;
    pd_str_t             uids[];     /* then their bytes */
} pd_sr_shard_call_t;

static char  pd_sr_node[PD_NODE_ID_SIZE];

/* the store's Redis links: the register's, shared by name, or the
 * saver's own (saver.redis), then owned here */
static pd_redis_t  **pd_sr_shards;
static pd_uint_t     pd_sr_nshards;
static pd_uint_t     pd_sr_own;

/* "node-seq", as the center made it: unique in the cluster */
static size_t
pd_sr_id(u_char *buf, size_t size, uint64_t seq)
{
    size_t  n;

    /* the node's name and 16 hex digits at most: a size of 80 holds it
     * (PD_NODE_ID_SIZE is smaller), and the fast way runs per message */
    n = strlen(pd_sr_node);

    if (size < n + 1 + 16) {
        return (size_t) (pd_slprintf(buf, buf + size, "%s-%lx", pd_sr_node,
                                     (unsigned long) seq) - buf);
    }

    pd_memcpy(buf, pd_sr_node, n);
    buf[n] = '-';

    return (size_t) (pd_hex64(buf + n + 1, seq) - buf);
}

static pd_redis_t *
pd_sr_shard(const u_char *uid, size_t len)
{
    return pd_sr_shards[pd_redis_shard(uid, len,
                                             (uint32_t) pd_sr_nshards)];
}

/* the head of a script call: EVAL, the script, its number of keys
 * (written into nkeys, PD_SR_NKEYS bytes); the keys go from argv[3] */
#define PD_SR_NKEYS  24

static void
pd_sr_eval(const char **argv, size_t *len, const char *lua, size_t lua_len,
    char *nkeys, pd_uint_t n)
{
    argv[0] = "EVAL";
    len[0] = 4;
    argv[1] = lua;
    len[1] = lua_len;
    argv[2] = nkeys;
    len[2] = (size_t) snprintf(nkeys, PD_SR_NKEYS, "%lu", (unsigned long) n);
}

static void
pd_sr_store_answer(pd_sr_store_t *st)
{
    if (--st->waiting > 0) {
        return;
    }

    st->done(st->data, st->failed ? PD_ERROR : PD_OK, st->stored, st->full);
    pd_free(st);
}

static void pd_sr_forget_full(redisReply *reply, pd_sr_store_t *st);

static void
pd_sr_stored_redis(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_sr_store_t  *st = data;

    (void) r;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER)
    {
        if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
            pd_log_error(PD_LOG_ERR, pd_log_root, 0, "saver: redis: %.*s",
                         (int) reply->len, reply->str);
        }
        st->failed = 1;

    } else {
        st->stored += (pd_uint_t) reply->element[0]->integer;
        st->full += (pd_uint_t) reply->element[1]->integer;
        pd_sr_forget_full(reply, st);
    }

    pd_sr_store_answer(st);
}

/*
 * The rows the durable log took for full mailboxes ("pd:q:<uid>" after
 * the two counts of a store's answer) go with a DELETE that leaves with
 * or after the INSERT holding them: a batch sends its INSERT first (an
 * ack batch filled to its bound too).
 */
static void
pd_sr_forget_full(redisReply *reply, pd_sr_store_t *st)
{
    redisReply  *q;
    pd_str_t     uid;
    size_t       i;

    if (st->id.len == 0) {
        /* a reload's: its rows stay in the log, as they were */
        return;
    }

    for (i = 2; i < reply->elements; i++) {
        q = reply->element[i];

        if (q->type != REDIS_REPLY_STRING || q->len <= sizeof("pd:q:") - 1
            || memcmp(q->str, "pd:q:", sizeof("pd:q:") - 1) != 0)
        {
            continue;
        }

        uid.data = (u_char *) q->str + sizeof("pd:q:") - 1;
        uid.len = q->len - (sizeof("pd:q:") - 1);

        (void) pd_saver_pg_ack(pd_sr_log, &uid, &st->id);
    }
}

/* a store with a collapse key: the replaced ids leave the log too */
static void
pd_sr_stored_collapse(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_sr_shard_call_t  *call = data;
    redisReply          *k, *id;
    pd_str_t             sid;
    pd_uint_t            i, u;

    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY) {
        for (i = 2; i + 1 < reply->elements; i += 2) {
            k = reply->element[i];
            id = reply->element[i + 1];

            /* a KEYS index, so small: no negation overflows below */
            if (k->type != REDIS_REPLY_INTEGER || id->type != REDIS_REPLY_STRING
                || (k->integer > -2 && k->integer < 2)
                || k->integer < -PD_REDIS_MAX_ELEMENTS
                || k->integer > PD_REDIS_MAX_ELEMENTS)
            {
                continue;
            }

            /* KEYS[i] is q of the uid (i - 2) / 3 of this call; -i: its
             * mailbox was full, and the row of this id goes */
            u = (pd_uint_t) ((k->integer < 0 ? -k->integer : k->integer) - 2)
                / 3;
            if (u >= call->n) {
                continue;
            }

            if (k->integer < 0) {
                if (call->st->id.len == 0) {
                    /* a reload's: its rows stay in the log */
                    continue;
                }
                sid = call->st->id;

            } else {
                sid.data = (u_char *) id->str;
                sid.len = id->len;
            }

            /* the old row goes with this loop turn's DELETE, after the
             * INSERT that held it (answered before this push was) */
            (void) pd_saver_pg_ack(pd_sr_log, &call->uids[u], &sid);
        }
    }

    pd_sr_stored_redis(r, reply, call->st);
    pd_free(call);
}

static void
pd_sr_stored_pg(void *data, pd_int_t rc)
{
    pd_sr_store_t  *st = data;

    if (rc != PD_OK) {
        st->failed = 1;
    }

    pd_sr_store_answer(st);
}

/* the bytes of the picked uids' names */
static size_t
pd_sr_pick_bytes(pd_str_t *uids, pd_uint_t *pick, pd_uint_t npick)
{
    size_t     bytes;
    pd_uint_t  i;

    bytes = 0;
    for (i = 0; i < npick; i++) {
        bytes += uids[pick[i]].len;
    }

    return bytes;
}

/* the picked uids into dst, their bytes from p on (pd_sr_pick_bytes) */
static void
pd_sr_pick_copy(pd_str_t *dst, u_char *p, pd_str_t *uids, pd_uint_t *pick,
    pd_uint_t npick)
{
    pd_uint_t  i;

    for (i = 0; i < npick; i++) {
        dst[i].data = p;
        dst[i].len = uids[pick[i]].len;
        p = pd_cpymem(p, uids[pick[i]].data, uids[pick[i]].len);
    }
}

/*
 * The uids of a store with a collapse key, copied for the answer:
 * NULL on no memory.
 */
static pd_sr_shard_call_t *
pd_sr_shard_call(pd_str_t *uids, pd_uint_t *pick, pd_uint_t npick,
    pd_sr_store_t *st)
{
    pd_sr_shard_call_t  *call;

    call = pd_alloc(sizeof(pd_sr_shard_call_t) + npick * sizeof(pd_str_t)
                    + pd_sr_pick_bytes(uids, pick, npick), pd_log_root);
    if (call == NULL) {
        return NULL;
    }

    call->st = st;
    call->n = npick;
    pd_sr_pick_copy(call->uids, (u_char *) &call->uids[npick], uids, pick,
                    npick);

    return call;
}

/*
 * A live store without a collapse key, the common one, goes as plain
 * commands, not as the store script: each call a script makes costs
 * Redis about twice the command's own work, and the script itself as
 * much as a few commands (Redis 7.0, the bench's 256-byte unicast: 29 us
 * a store as the script, 12 us as the four commands of a body in m, 3 us
 * as the two of an inline body).  They go in one pipeline on the uid's
 * link, so Redis runs them in this order, though other links' commands
 * may come between them.
 *
 * The part of a store for one uid of a server (a unicast, the common
 * case of all) keeps its body inline, in the uid's own hash, with no
 * count of the lists holding it: HSET dl id 0 b:id "expires\napp\ndata",
 * then RPUSH q "~id" (the mark says where the body is, so that a fetch
 * and an ack need no look to find out).  An ack is then two calls, an
 * HDEL of both fields and the LREM, where m took five.  The part for
 * several uids writes one body, in m, for all of them: HSET m a, d, n,
 * PEXPIREAT m, then HSETNX dl id 0 and RPUSH q id for each uid.  Either
 * way the body is written first, so that a fetch never meets an id whose
 * body is not there yet (it would take it for an expired one).
 *
 * What the script decided before a push is decided after it, from the
 * answers.  An id dl held already (a reload's store of the same row came
 * first: the only store made again while a live one runs) leaves q's
 * last copy, ours, and counts as stored; m's count, set to the uids here,
 * is then right, every uid holding the id once.  A push that made q
 * longer than the bound is taken back (pd_sr_unstore_lua) and counts as
 * full; meanwhile a fetch may have sent that id, so its client may get a
 * message whose publisher was told it was refused, never the reverse.
 * The store is answered once the undoing is.
 */
/* what q holds for an inline body: the id after this mark; the field of
 * the body in dl: the id after "b:" */
#define PD_SR_INLINE  "~"
#define PD_SR_BODY    "b:"

typedef struct pd_sr_plain_s  pd_sr_plain_t;

typedef struct {
    pd_sr_plain_t       *call;
    long long            value;
} pd_sr_plain_reply_t;

struct pd_sr_plain_s {
    pd_sr_store_t       *st;
    pd_redis_t          *shard;
    pd_uint_t            n;          /* uids */
    pd_uint_t            due;        /* answers still to come */
    unsigned             failed:1;
    unsigned             undoing:1;  /* the second round */
    unsigned             inline_body:1;
    pd_str_t            *uids;       /* after the replies, then their bytes */
    pd_sr_plain_reply_t  reply[];    /* HSET m, PEXPIREAT m (none for an
                                      * inline body), then HSETNX or HSET
                                      * dl, and RPUSH, of each uid */
};

#define pd_sr_plain_nx(call, i)    (call)->reply[2 + 2 * (i)].value
#define pd_sr_plain_len(call, i)   (call)->reply[3 + 2 * (i)].value

static void pd_sr_plain_answered(pd_redis_t *r, redisReply *reply,
    void *data);
static void pd_sr_plain_undo(pd_sr_plain_t *call);

/* what q holds for the store: the id, marked when its body is inline */
static size_t
pd_sr_plain_item(pd_sr_plain_t *call, char *buf, size_t size)
{
    return pd_key_cat(buf, size, call->inline_body ? PD_SR_INLINE : "",
                      call->st->id.data, call->st->id.len);
}

static pd_int_t
pd_sr_plain_send(pd_sr_plain_t *call, pd_uint_t slot, int argc,
    const char **argv, size_t *len)
{
    call->reply[slot].call = call;

    if (pd_redis_command(call->shard, pd_sr_plain_answered,
                         &call->reply[slot], argc, argv, len)
        != PD_OK)
    {
        call->failed = 1;
        return PD_ERROR;
    }

    call->due++;
    return PD_OK;
}

/* HSET m a app d data n uids, PEXPIREAT m: the body of several uids */
static pd_int_t
pd_sr_plain_body(pd_sr_plain_t *call, pd_str_t *app, pd_str_t *payload,
    uint64_t expires)
{
    const char  *argv[8];
    size_t       len[8];
    char         m[8 + PD_MSG_ID_LEN];
    u_char       num[24];

    argv[0] = "HSET";
    len[0] = 4;
    argv[1] = m;
    len[1] = pd_key_cat(m, sizeof(m), "pd:m:", call->st->id.data,
                        call->st->id.len);
    argv[2] = "a";
    len[2] = 1;
    argv[3] = (const char *) app->data;
    len[3] = app->len;
    argv[4] = "d";
    len[4] = 1;
    argv[5] = (const char *) payload->data;
    len[5] = payload->len;
    argv[6] = "n";
    len[6] = 1;
    argv[7] = (const char *) num;
    len[7] = (size_t) (pd_dec64(num, call->n) - num);

    if (pd_sr_plain_send(call, 0, 8, argv, len) != PD_OK) {
        return PD_ERROR;
    }

    argv[0] = "PEXPIREAT";
    len[0] = 9;
    len[2] = (size_t) (pd_dec64(num, expires) - num);
    argv[2] = (const char *) num;

    return pd_sr_plain_send(call, 1, 3, argv, len);
}

/* HSET dl id 0 b:id "expires\napp\ndata": the body of one uid */
static pd_int_t
pd_sr_plain_inline(pd_sr_plain_t *call, pd_str_t *app, pd_str_t *payload,
    uint64_t expires, pd_pool_t *pool)
{
    const char  *argv[6];
    size_t       len[6];
    char         dl[8 + PD_UID_MAX], field[sizeof(PD_SR_BODY) + PD_MSG_ID_LEN];
    u_char      *body, *p;
    pd_str_t    *id = &call->st->id;

    body = pd_pnalloc(pool, 20 + 1 + app->len + 1 + payload->len);

    if (body == NULL) {
        call->failed = 1;
        return PD_ERROR;
    }

    argv[0] = "HSET";
    len[0] = 4;
    argv[1] = dl;
    len[1] = pd_key_cat(dl, sizeof(dl), "pd:dl:", call->uids[0].data,
                        call->uids[0].len);
    argv[2] = (const char *) id->data;
    len[2] = id->len;
    argv[3] = "0";
    len[3] = 1;
    argv[4] = field;
    len[4] = pd_key_cat(field, sizeof(field), PD_SR_BODY, id->data, id->len);

    p = pd_dec64(body, expires);
    *p++ = '\n';
    p = pd_cpymem(p, app->data, app->len);
    *p++ = '\n';
    p = pd_cpymem(p, payload->data, payload->len);

    argv[5] = (const char *) body;
    len[5] = (size_t) (p - body);

    return pd_sr_plain_send(call, 2, 6, argv, len);
}

static pd_int_t
pd_sr_store_plain(pd_redis_t *shard, pd_str_t *uids, pd_uint_t *pick,
    pd_uint_t npick, pd_str_t *app, pd_str_t *payload, uint64_t expires,
    pd_sr_store_t *st, pd_pool_t *pool)
{
    pd_sr_plain_t  *call;
    const char     *argv[4];
    size_t          len[4], ilen;
    char            key[8 + PD_UID_MAX];
    char            item[sizeof(PD_SR_INLINE) + PD_MSG_ID_LEN];
    pd_uint_t       i, nreply;

    nreply = 2 + 2 * npick;

    call = pd_alloc(sizeof(pd_sr_plain_t)
                    + nreply * sizeof(pd_sr_plain_reply_t)
                    + npick * sizeof(pd_str_t)
                    + pd_sr_pick_bytes(uids, pick, npick), pd_log_root);
    if (call == NULL) {
        return PD_ERROR;
    }

    call->st = st;
    call->shard = shard;
    call->n = npick;
    call->due = 0;
    call->failed = 0;
    call->undoing = 0;
    call->inline_body = (npick == 1 && st->id.len <= PD_MSG_ID_LEN
                         && pd_saver->inline_bodies);
    call->uids = (pd_str_t *) &call->reply[nreply];
    pd_sr_pick_copy(call->uids, (u_char *) &call->uids[npick], uids, pick,
                    npick);

    ilen = pd_sr_plain_item(call, item, sizeof(item));

    if (call->inline_body) {
        if (pd_sr_plain_inline(call, app, payload, expires, pool) != PD_OK) {
            goto sent;
        }

    } else if (pd_sr_plain_body(call, app, payload, expires) != PD_OK) {
        goto sent;
    }

    argv[1] = key;

    for (i = 0; i < npick; i++) {
        if (!call->inline_body) {
            argv[0] = "HSETNX";
            len[0] = 6;
            len[1] = pd_key_cat(key, sizeof(key), "pd:dl:",
                                call->uids[i].data, call->uids[i].len);
            argv[2] = (const char *) st->id.data;
            len[2] = st->id.len;
            argv[3] = "0";
            len[3] = 1;

            if (pd_sr_plain_send(call, 2 + 2 * i, 4, argv, len) != PD_OK) {
                goto sent;
            }
        }

        argv[0] = "RPUSH";
        len[0] = 5;
        len[1] = pd_key_cat(key, sizeof(key), "pd:q:",
                            call->uids[i].data, call->uids[i].len);
        argv[2] = item;
        len[2] = ilen;

        if (pd_sr_plain_send(call, 3 + 2 * i, 3, argv, len) != PD_OK) {
            goto sent;
        }
    }

sent:

    /* a command that could not be sent fails the store once those sent
     * are answered; none sent: it fails now */
    if (call->due == 0) {
        pd_free(call);
        return PD_ERROR;
    }

    return PD_OK;
}

static void
pd_sr_plain_answered(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_sr_plain_reply_t  *rp = data;
    pd_sr_plain_t        *call = rp->call;

    (void) r;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
            pd_log_error(PD_LOG_ERR, pd_log_root, 0, "saver: redis: %.*s",
                         (int) reply->len, reply->str);
        }

        /* an undo that failed leaves a copy or a push over the bound:
         * what the store was answered stands */
        if (!call->undoing) {
            call->failed = 1;
        }

    } else {
        rp->value = reply->integer;
    }

    if (--call->due > 0) {
        return;
    }

    if (!call->undoing) {
        call->undoing = 1;
        pd_sr_plain_undo(call);

        if (call->due > 0) {
            return;
        }
    }

    pd_sr_store_answer(call->st);
    pd_free(call);
}

/*
 * Every answer in: the copies made again and the pushes into full
 * mailboxes are undone, and the store is answered once they are, so that
 * its publisher, told "full", finds no trace of the message in Redis.
 */
static void
pd_sr_plain_undo(pd_sr_plain_t *call)
{
    pd_sr_store_t  *st = call->st;
    const char     *argv[8];
    size_t          len[8], qlen, dllen;
    char            q[8 + PD_UID_MAX], dl[8 + PD_UID_MAX];
    char            m[8 + PD_MSG_ID_LEN], nkeys[PD_SR_NKEYS];
    char            item[sizeof(PD_SR_INLINE) + PD_MSG_ID_LEN];
    char            field[sizeof(PD_SR_BODY) + PD_MSG_ID_LEN];
    size_t          ilen;
    pd_uint_t       i;

    if (call->failed) {
        st->failed = 1;
        return;
    }

    ilen = pd_sr_plain_item(call, item, sizeof(item));

    for (i = 0; i < call->n; i++) {
        qlen = pd_key_cat(q, sizeof(q), "pd:q:", call->uids[i].data,
                          call->uids[i].len);
        dllen = pd_key_cat(dl, sizeof(dl), "pd:dl:", call->uids[i].data,
                           call->uids[i].len);

        /* dl held the id already (HSET of an inline body adds fewer
         * than its two fields): a reload's store came first, and ours
         * is the last copy; an inline body we wrote beside its m goes */
        if (call->inline_body ? pd_sr_plain_nx(call, i) < 2
                              : pd_sr_plain_nx(call, i) == 0)
        {
            argv[0] = "LREM";
            len[0] = 4;
            argv[1] = q;
            len[1] = qlen;
            argv[2] = "-1";
            len[2] = 2;
            argv[3] = item;
            len[3] = ilen;

            (void) pd_sr_plain_send(call, 3 + 2 * i, 4, argv, len);

            if (call->inline_body) {
                argv[0] = "HDEL";
                len[0] = 4;
                argv[1] = dl;
                len[1] = dllen;
                argv[2] = field;
                len[2] = pd_key_cat(field, sizeof(field), PD_SR_BODY,
                                    st->id.data, st->id.len);

                (void) pd_sr_plain_send(call, 2 + 2 * i, 3, argv, len);
            }

            st->stored++;
            continue;
        }

        if (pd_sr_plain_len(call, i) <= (long long) pd_saver->max_per_mailbox)
        {
            st->stored++;
            continue;
        }

        /* full: the push taken back, and the row the log took with it */
        pd_sr_eval(argv, len, pd_sr_unstore_lua,
                   sizeof(pd_sr_unstore_lua) - 1, nkeys, 3);
        argv[3] = q;
        len[3] = qlen;
        argv[4] = dl;
        len[4] = dllen;
        argv[5] = m;
        len[5] = pd_key_cat(m, sizeof(m), "pd:m:", st->id.data, st->id.len);
        argv[6] = item;
        len[6] = ilen;
        argv[7] = (const char *) st->id.data;
        len[7] = st->id.len;

        (void) pd_sr_plain_send(call, 3 + 2 * i, 8, argv, len);

        st->full++;
        (void) pd_saver_pg_ack(pd_sr_log, &call->uids[i], &st->id);
    }
}

/* the uids of one server into one script call */
static pd_int_t
pd_sr_store_shard(pd_redis_t *shard, pd_str_t *uids, pd_uint_t *pick,
    pd_uint_t npick, pd_str_t *app, pd_str_t *collapse, pd_str_t *id,
    pd_str_t *payload, uint64_t expires, pd_sr_store_t *st, pd_pool_t *pool)
{
    const char          **argv;
    size_t               *len;
    char                 *keys, nkeys[PD_SR_NKEYS], sexp[24], smax[24];
    char                  sttl[24];
    u_char               *field;
    pd_uint_t             i, argc, per, j;
    pd_int_t              rc;
    uint64_t              now;
    pd_sr_shard_call_t   *call;
    const char          **kinds;
    static const char    *plain[2] = { "pd:q:", "pd:dl:" };
    static const char    *keyed[3] = { "pd:q:", "pd:c:", "pd:dl:" };

    if (collapse->len == 0 && st->id.len != 0) {
        return pd_sr_store_plain(shard, uids, pick, npick, app, payload,
                                 expires, st, pool);
    }

    /* each uid brings q and dl, and c with a collapse key */
    per = collapse->len ? 3 : 2;
    kinds = collapse->len ? keyed : plain;

    argc = 3 + 1 + per * npick + 8;
    argv = pd_palloc(pool, argc * sizeof(char *));
    len = pd_palloc(pool, argc * sizeof(size_t));
    keys = pd_pnalloc(pool, (per * npick + 1) * (8 + PD_UID_MAX));
    field = pd_pnalloc(pool, PD_APP_MAX + 1 + PD_COLLAPSE_MAX);

    if (argv == NULL || len == NULL || keys == NULL || field == NULL) {
        return PD_ERROR;
    }

    if (collapse->len) {
        pd_sr_eval(argv, len, pd_sr_store_collapse_lua,
                   sizeof(pd_sr_store_collapse_lua) - 1, nkeys,
                   per * npick + 1);
    } else {
        pd_sr_eval(argv, len, pd_sr_store_lua, sizeof(pd_sr_store_lua) - 1,
                   nkeys, per * npick + 1);
    }

    argv[3] = keys;
    len[3] = pd_key_cat(keys, 8 + PD_UID_MAX, "pd:m:",
                        id->data, id->len);

    for (i = 0; i < npick; i++) {
        for (j = 0; j < per; j++) {
            char  *k = keys + (per * i + j + 1) * (8 + PD_UID_MAX);

            argv[4 + per * i + j] = k;
            len[4 + per * i + j] = (size_t) snprintf(k, 8 + PD_UID_MAX,
                                                "%s%.*s", kinds[j],
                                                (int) uids[pick[i]].len,
                                                uids[pick[i]].data);
        }
    }

    i = 4 + per * npick;
    argv[i] = (const char *) app->data;
    len[i++] = app->len;
    argv[i] = (const char *) payload->data;
    len[i++] = payload->len;
    argv[i] = sexp;
    len[i++] = (size_t) snprintf(sexp, sizeof(sexp), "%lu",
                                 (unsigned long) expires);
    argv[i] = smax;
    len[i++] = (size_t) snprintf(smax, sizeof(smax), "%ld",
                                 (long) pd_saver->max_per_mailbox);
    argv[i] = (const char *) id->data;
    len[i++] = id->len;

    if (collapse->len == 0) {
        return pd_redis_command(shard, pd_sr_stored_redis, st, (int) i,
                                argv, len);
    }

    argv[i] = (const char *) field;
    len[i++] = (size_t) (pd_slprintf(field,
                                     field + PD_APP_MAX + 1 + PD_COLLAPSE_MAX,
                                     "%.*s\n%.*s", (int) app->len,
                                     app->data, (int) collapse->len,
                                     collapse->data)
                         - field);

    now = pd_time_msec;
    argv[i] = sttl;
    len[i++] = (size_t) snprintf(sttl, sizeof(sttl), "%lu",
                                 (unsigned long) (expires > now
                                                  ? expires - now : 1));
    argv[i] = st->id.len == 0 ? "1" : "0";   /* a reload's store */
    len[i++] = 1;

    call = pd_sr_shard_call(uids, pick, npick, st);
    if (call == NULL) {
        return PD_ERROR;
    }

    rc = pd_redis_command(shard, pd_sr_stored_collapse, call, (int) i, argv,
                          len);
    if (rc != PD_OK) {
        pd_free(call);
    }

    return rc;
}

static pd_int_t
pd_sr_store(pd_str_t *uids, pd_uint_t n, pd_str_t *app, pd_str_t *collapse,
    uint64_t seq, pd_str_t *payload, uint64_t expires, pd_pool_t *pool,
    pd_saver_done_pt done, void *data)
{
    pd_sr_store_t  *st;
    pd_uint_t      *pick, npick, s, i;

    if (!pd_saver_pg_connected(pd_sr_log)) {
        return PD_DECLINED;
    }

    for (s = 0; s < pd_sr_nshards; s++) {
        if (!pd_redis_connected(pd_sr_shards[s])) {
            return PD_DECLINED;
        }
    }

    st = pd_calloc(sizeof(pd_sr_store_t), pd_log_root);
    pick = pd_palloc(pool, n * sizeof(pd_uint_t));

    if (st == NULL || pick == NULL) {
        pd_free(st);
        return PD_ERROR;
    }

    st->done = done;
    st->data = data;
    st->waiting = 1;    /* released at the end of this call */

    /* kept for the answer: a full mailbox's row is forgotten by it */
    st->id.data = st->idbuf;
    st->id.len = pd_sr_id(st->idbuf, sizeof(st->idbuf), seq);

    /* one script per server holding some of the uids */
    for (s = 0; s < pd_sr_nshards; s++) {
        npick = 0;
        for (i = 0; i < n; i++) {
            if (pd_sr_shard(uids[i].data, uids[i].len)
                == pd_sr_shards[s])
            {
                pick[npick++] = i;
            }
        }

        if (npick == 0) {
            continue;
        }

        st->waiting++;

        if (pd_sr_store_shard(pd_sr_shards[s], uids, pick, npick, app,
                              collapse, &st->id, payload, expires, st,
                              pool)
            != PD_OK)
        {
            st->waiting--;
            st->failed = 1;
        }
    }

    /* the rows join this loop turn's INSERT; the answer waits for it */
    st->waiting++;

    if (pd_saver_pg_store(pd_sr_log, uids, n, &st->id, app, collapse,
                          payload, expires, pd_sr_stored_pg, st) != PD_OK)
    {
        st->waiting--;
        st->failed = 1;
    }

    pd_sr_store_answer(st);
    return PD_OK;
}

/* calls of the pending script one fetch may make while q keeps changing */
#define PD_SR_FETCH_TRIES  4

typedef struct {
    pd_saver_take_pt     take;
    pd_saver_fetched_pt  fetched;
    void                *data;
    pd_redis_t          *shard;
    pd_uint_t            tries;
    pd_str_t             uid;       /* copies, in the same allocation */
    pd_str_t             app;
    pd_str_t             after;
} pd_sr_fetch_t;

static pd_int_t pd_sr_fetch_send(pd_sr_fetch_t *f, redisReply **ids,
    pd_uint_t nids);

pd_uint_t
pd_sr_fetch_retry(const redisReply *reply)
{
    return reply != NULL && reply->type == REDIS_REPLY_ARRAY
           && reply->elements >= 1
           && reply->element[0]->type == REDIS_REPLY_INTEGER
           && reply->element[0]->integer == -1;
}

pd_int_t
pd_sr_fetch_dropped(const redisReply *reply, pd_uint_t *n)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 2
        || reply->element[1]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->integer < 0
        || (size_t) reply->element[1]->integer > reply->elements - 2)
    {
        return PD_ERROR;
    }

    *n = (pd_uint_t) reply->element[1]->integer;
    return PD_OK;
}

pd_int_t
pd_sr_fetch_walk(const redisReply *reply, pd_saver_take_pt take, void *data,
    pd_str_t *cursor, pd_uint_t *more)
{
    pd_saver_msg_t  m;
    pd_uint_t       i, n, dropped;

    if (pd_sr_fetch_dropped(reply, &dropped) != PD_OK) {
        return PD_ERROR;
    }

    n = 0;
    *more = 0;

    for (i = 2 + dropped;
         i + 1 < reply->elements && n < PD_SAVER_FETCH_MAX;
         i += 2)
    {
        if (reply->element[i]->type != REDIS_REPLY_STRING
            || reply->element[i + 1]->type != REDIS_REPLY_STRING
            || reply->element[i]->len >= PD_SAVER_CURSOR_SIZE)
        {
            continue;
        }

        m.id.data = (u_char *) reply->element[i]->str;
        m.id.len = reply->element[i]->len;
        m.payload = (u_char *) reply->element[i + 1]->str;
        m.len = reply->element[i + 1]->len;
        n++;

        if (take(data, &m) != PD_OK) {
            *more = 1;
            break;
        }

        *cursor = m.id;
    }

    if (n == PD_SAVER_FETCH_MAX) {
        *more = 1;
    }

    return PD_OK;
}

/*
 * The ids the no-ack guard took out of the mailbox in this call (after
 * max_redeliveries deliveries without an ack) leave the durable log too,
 * with the turn's acks: a row left there would come back with a reload
 * of the server, its count started again.
 */
static void
pd_sr_forget_dropped(pd_sr_fetch_t *f, redisReply *reply)
{
    redisReply  *e;
    pd_uint_t    i, n;
    pd_str_t     id;

    if (pd_sr_fetch_dropped(reply, &n) != PD_OK || n == 0) {
        return;
    }

    for (i = 0; i < n; i++) {
        e = reply->element[2 + i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        id.data = (u_char *) e->str;
        id.len = e->len;

        /* the server is shared: only an id pushd could have made */
        if (pd_token_valid_name(&id, PD_MSG_ID_LEN) != PD_OK) {
            continue;
        }

        (void) pd_saver_pg_ack(pd_sr_log, &f->uid, &id);
    }

    pd_stats_module_add(pd_saver_module, PD_SAVER_STAT_CLUSTER_DROPPED_NOACK,
                        n);

    pd_log_error(PD_LOG_INFO, pd_log_root, 0,
                 "saver: %lu messages of \"%.*s\" dropped after %ld "
                 "deliveries without an ack", (unsigned long) n,
                 (int) f->uid.len, f->uid.data,
                 (long) pd_saver->max_redeliveries);
}

static void
pd_sr_fetched(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_sr_fetch_t  *f = data;
    pd_str_t        cursor;
    pd_uint_t       more;

    (void) r;

    if (pd_sr_fetch_retry(reply)) {
        /* the ids whose m keys must be passed: ask again with them */
        if (++f->tries < PD_SR_FETCH_TRIES
            && pd_sr_fetch_send(f, reply->element + 1, reply->elements - 1)
               == PD_OK)
        {
            return;
        }

        pd_log_error(PD_LOG_WARN, pd_log_root, 0, "saver: the mailbox of "
                     "\"%.*s\" kept changing under %lu fetches",
                     (int) f->uid.len, f->uid.data, (unsigned long) f->tries);
        reply = NULL;
    }

    /* the cursor is the last id taken: the script goes on after it */
    cursor = f->after;

    pd_sr_forget_dropped(f, reply);

    if (pd_sr_fetch_walk(reply, f->take, f->data, &cursor, &more) != PD_OK) {
        f->fetched(f->data, PD_ERROR, 0, &f->after);
        pd_free(f);
        return;
    }

    f->fetched(f->data, PD_OK, more, &cursor);
    pd_free(f);
}

static pd_int_t
pd_sr_fetch(pd_str_t *uid, pd_str_t *app, pd_str_t *after,
    pd_saver_take_pt take, pd_saver_fetched_pt fetched, void *data)
{
    pd_sr_fetch_t  *f;
    u_char         *p;
    size_t          alen;

    alen = pd_min(after->len, PD_SAVER_CURSOR_SIZE - 1);

    f = pd_calloc(sizeof(pd_sr_fetch_t) + uid->len + app->len + alen,
                  pd_log_root);
    if (f == NULL) {
        return PD_ERROR;
    }

    f->take = take;
    f->fetched = fetched;
    f->data = data;
    f->shard = pd_sr_shard(uid->data, uid->len);

    p = (u_char *) (f + 1);
    f->uid.data = p;
    f->uid.len = uid->len;
    p = pd_cpymem(p, uid->data, uid->len);
    f->app.data = p;
    f->app.len = app->len;
    p = pd_cpymem(p, app->data, app->len);
    f->after.data = p;
    f->after.len = alen;
    pd_memcpy(p, after->data, alen);

    if (pd_sr_fetch_send(f, NULL, 0) != PD_OK) {
        pd_free(f);
        return PD_DECLINED;
    }

    return PD_OK;
}

/* one call of the pending script, with the m keys of ids (NULL: none) */
static pd_int_t
pd_sr_fetch_send(pd_sr_fetch_t *f, redisReply **ids, pd_uint_t nids)
{
    const char  **argv;
    size_t       *len, size;
    u_char       *keys, *k;
    char          q[8 + PD_UID_MAX], dl[8 + PD_UID_MAX];
    char          nkeys[PD_SR_NKEYS], smax[24], slim[24];
    u_char        snow[24];
    pd_uint_t     i, argc;
    pd_int_t      rc;

    size = 1;
    for (i = 0; i < nids; i++) {
        if (ids[i]->type != REDIS_REPLY_STRING) {
            return PD_ERROR;
        }
        size += sizeof("pd:m:") - 1 + ids[i]->len;
    }

    /* an ack its client sent earlier in this turn goes first */
    pd_sr_acks_before(f->shard);

    argc = 3 + 2 + nids + 5;
    argv = pd_alloc(argc * sizeof(char *), pd_log_root);
    len = pd_alloc(argc * sizeof(size_t), pd_log_root);
    keys = pd_alloc(size, pd_log_root);

    if (argv == NULL || len == NULL || keys == NULL) {
        rc = PD_ERROR;
        goto done;
    }

    pd_sr_eval(argv, len, pd_sr_pending_lua, sizeof(pd_sr_pending_lua) - 1,
               nkeys, 2 + nids);
    argv[3] = q;
    len[3] = pd_key_cat(q, sizeof(q), "pd:q:",
                        f->uid.data, f->uid.len);
    argv[4] = dl;
    len[4] = pd_key_cat(dl, sizeof(dl), "pd:dl:",
                        f->uid.data, f->uid.len);

    k = keys;
    for (i = 0; i < nids; i++) {
        argv[5 + i] = (const char *) k;
        len[5 + i] = sizeof("pd:m:") - 1 + ids[i]->len;
        k = pd_cpymem(k, "pd:m:", sizeof("pd:m:") - 1);
        k = pd_cpymem(k, ids[i]->str, ids[i]->len);
    }

    i = 5 + nids;
    argv[i] = (const char *) f->app.data;
    len[i++] = f->app.len;
    argv[i] = (const char *) f->after.data;
    len[i++] = f->after.len;
    argv[i] = smax;
    len[i++] = (size_t) snprintf(smax, sizeof(smax), "%ld",
                                 (long) pd_saver->max_redeliveries);
    argv[i] = slim;
    len[i++] = (size_t) snprintf(slim, sizeof(slim), "%d",
                                 PD_SAVER_FETCH_MAX);

    /* an inline body's expiry is checked here, on the clock the store
     * counted it from: the turn's, to the millisecond */
    argv[i] = (const char *) snow;
    len[i++] = (size_t) (pd_dec64(snow, pd_time_msec) - snow);

    /* the arguments are copied: the buffers go right after */
    rc = pd_redis_command(f->shard, pd_sr_fetched, f, (int) i, argv, len);

done:

    pd_free(argv);
    pd_free(len);
    pd_free(keys);

    return rc;
}

/* one entry of a batch of acks (pd_sr_acks_t): the uid and the id, each
 * after its length byte; the next entry's start */
static u_char *
pd_sr_ack_entry(u_char *p, u_char **uid, size_t *ulen, u_char **id,
    size_t *ilen)
{
    *ulen = *p++;
    *uid = p;
    p += *ulen;
    *ilen = *p++;
    *id = p;

    return p + *ilen;
}

/*
 * Acks in one call of the ack script, to server r: buf holds n entries
 * as pd_sr_acks_t does.  The arguments are copied: buf is free again at
 * once.
 */
static void
pd_sr_acks_script(pd_redis_t *r, u_char *buf, pd_uint_t n)
{
    static const char  *argv[3 + 2 + 6 * PD_SR_ACK_BATCH];
    static size_t       len[3 + 2 + 6 * PD_SR_ACK_BATCH];
    static char         keys[4 * PD_SR_ACK_BATCH][8 + PD_UID_MAX];
    static u_char       both[PD_SR_ACK_BATCH][PD_UID_MAX + 1
                                             + PD_MSG_ID_LEN];
    static const char  *kinds[3] = { "pd:q:", "pd:dl:", "pd:c:" };
    char               *m;
    char                nkeys[PD_SR_NKEYS];
    pd_uint_t           k, j, argc;
    u_char             *p, *uid, *id;
    size_t              ulen, ilen;

    pd_sr_eval(argv, len, pd_sr_ack_lua, sizeof(pd_sr_ack_lua) - 1, nkeys,
               2 + 4 * n);
    argv[3] = "pd:saver:ok";
    len[3] = sizeof("pd:saver:ok") - 1;
    argv[4] = "pd:saver:acked";
    len[4] = sizeof("pd:saver:acked") - 1;

    p = buf;

    for (k = 0; k < n; k++) {
        p = pd_sr_ack_entry(p, &uid, &ulen, &id, &ilen);

        for (j = 0; j < 3; j++) {
            argv[5 + 4 * k + j] = keys[4 * k + j];
            len[5 + 4 * k + j] = pd_key_cat(keys[4 * k + j], 8 + PD_UID_MAX,
                                            kinds[j], uid, ulen);
        }

        /* the message's body, on the uid's server like its q */
        m = keys[4 * k + 3];
        argv[5 + 4 * k + 3] = m;
        len[5 + 4 * k + 3] = pd_key_cat(m, 8 + PD_UID_MAX, "pd:m:",
                                        id, ilen);

        argc = 5 + 4 * n + 2 * k;
        argv[argc] = (const char *) id;
        len[argc] = ilen;
        argv[argc + 1] = (const char *) both[k];
        len[argc + 1] = (size_t) (pd_slprintf(both[k],
                                              both[k] + sizeof(both[k]),
                                              "%.*s\n%.*s", (int) ulen, uid,
                                              (int) ilen, id)
                                  - both[k]);
    }

    (void) pd_redis_command(r, NULL, NULL, (int) (5 + 6 * n), argv, len);
}

/*
 * The acks of a batch on their way, between their two rounds
 * (pd_sr_acks_flush): the answers of the first, and the acks, copied.
 */
typedef struct pd_sr_ack_call_s  pd_sr_ack_call_t;

typedef struct {
    pd_sr_ack_call_t    *call;
    long long            value;      /* the answer; -1: none */
} pd_sr_ack_reply_t;

struct pd_sr_ack_call_s {
    pd_redis_t          *shard;
    pd_uint_t            n;
    pd_uint_t            due;        /* answers still to come */
    unsigned             lost:1;     /* one came as no answer */
    u_char              *buf;        /* n entries as in pd_sr_acks_t */
    pd_sr_ack_reply_t    reply[];    /* HDEL of each ack, then EXISTS */
};

static void pd_sr_acks_answered(pd_redis_t *r, redisReply *reply,
    void *data);
static void pd_sr_acks_settle(pd_sr_ack_call_t *call);

/* a command of the first round, whose answer goes to reply[slot] */
static void
pd_sr_acks_ask(pd_sr_ack_call_t *call, pd_uint_t slot, int argc,
    const char **argv, size_t *len)
{
    call->reply[slot].call = call;
    call->reply[slot].value = -1;

    if (pd_redis_command(call->shard, pd_sr_acks_answered,
                         &call->reply[slot], argc, argv, len)
        == PD_OK)
    {
        call->due++;
    }
}

/*
 * The acks kept for server i.  A script call costs Redis about twice
 * the commands it makes (pd_sr_store_plain), and an ack of an inline
 * body, the common one, needs no decision a script would make: so the
 * first round is plain, EXISTS pd:saver:ok and HDEL dl id b:id for each
 * ack (both fields at once: the count and the inline body).  An answer
 * of 2 was an inline body, and the second round takes "~id" off q with
 * an LREM.  Any other (a body in m, with its count and a collapse key to
 * let go of; an id already acked or expired) goes to the ack script,
 * as does every ack while the server lacks pd:saver:ok (a reload is
 * under way, and the script notes them for it in pd:saver:acked).  On
 * the bench's unicast (Redis 7.0, 128 acks a batch) Redis spent 3.3 us
 * an ack so against 5.8 us in the script.
 *
 * Between the rounds q still holds the id, and a fetch must not send it
 * again: an inline id without its body is taken for an expired one, and
 * an id of m without its count for one being acked (pd_sr_pending_lua);
 * either leaves q then.  A round that gets no answer (a lost link) sends
 * nothing more: what the first did, if it ran, is finished by the next
 * fetch in the same way (a collapse key's entry is left to expire); if
 * it did not run, the id comes again: at least once.
 */
static void
pd_sr_acks_flush(pd_uint_t i)
{
    const char         *argv[4];
    size_t              len[4];
    char                dl[8 + PD_UID_MAX];
    u_char              field[sizeof(PD_SR_BODY) + PD_MSG_ID_LEN];
    pd_sr_acks_t       *a = &pd_sr_acks[i];
    pd_sr_ack_call_t   *call;
    pd_redis_t         *r = pd_sr_shards[i];
    pd_uint_t           k, n;
    u_char             *p, *uid, *id;
    size_t              ulen, ilen;

    n = a->n;

    if (n == 0) {
        return;
    }

    call = pd_alloc(sizeof(pd_sr_ack_call_t)
                    + (n + 1) * sizeof(pd_sr_ack_reply_t) + a->len,
                    pd_log_root);

    if (call == NULL) {
        /* one call does it all, as the script alone */
        pd_sr_acks_script(r, a->buf, n);
        goto done;
    }

    call->shard = r;
    call->n = n;
    call->due = 0;
    call->lost = 0;
    call->buf = (u_char *) &call->reply[n + 1];
    pd_memcpy(call->buf, a->buf, a->len);

    argv[0] = "HDEL";
    len[0] = 4;
    argv[1] = dl;
    argv[2] = NULL;
    argv[3] = (const char *) field;

    p = call->buf;

    for (k = 0; k < n; k++) {
        p = pd_sr_ack_entry(p, &uid, &ulen, &id, &ilen);

        len[1] = pd_key_cat(dl, sizeof(dl), "pd:dl:", uid, ulen);
        argv[2] = (const char *) id;
        len[2] = ilen;
        len[3] = pd_key_cat((char *) field, sizeof(field), PD_SR_BODY,
                            id, ilen);

        pd_sr_acks_ask(call, k, 4, argv, len);
    }

    argv[0] = "EXISTS";
    len[0] = 6;
    argv[1] = "pd:saver:ok";
    len[1] = sizeof("pd:saver:ok") - 1;

    pd_sr_acks_ask(call, n, 2, argv, len);

    if (call->due == 0) {
        /* the link is down: the acks' rows still go from PostgreSQL */
        pd_free(call);
    }

done:

    a->n = 0;
    a->len = 0;
}

static void
pd_sr_acks_answered(pd_redis_t *r, redisReply *reply, void *data)
{
    pd_sr_ack_reply_t  *slot = data;
    pd_sr_ack_call_t   *call = slot->call;

    (void) r;

    if (reply == NULL) {
        call->lost = 1;

    } else if (reply->type == REDIS_REPLY_INTEGER) {
        slot->value = reply->integer;
    }

    if (--call->due == 0) {
        pd_sr_acks_settle(call);
    }
}

/* the second round: "~id" off q for each inline body, the script for
 * the others (and for all while the server lacks pd:saver:ok) */
static void
pd_sr_acks_settle(pd_sr_ack_call_t *call)
{
    const char   *argv[4];
    size_t        len[4];
    char          q[8 + PD_UID_MAX];
    u_char        item[sizeof(PD_SR_INLINE) + PD_MSG_ID_LEN];
    pd_uint_t     k, rest, ok;
    u_char       *p, *w, *e, *uid, *id;
    size_t        ulen, ilen;

    if (call->lost) {
        pd_free(call);
        return;
    }

    ok = call->reply[call->n].value == 1;

    argv[0] = "LREM";
    len[0] = 4;
    argv[1] = q;
    argv[2] = "1";
    len[2] = 1;
    argv[3] = (const char *) item;

    /* the acks for the script are moved to the front of buf: an entry
     * is never written past where it is read */
    p = call->buf;
    w = call->buf;
    rest = 0;

    for (k = 0; k < call->n; k++) {
        e = p;
        p = pd_sr_ack_entry(p, &uid, &ulen, &id, &ilen);

        if (call->reply[k].value == 2) {
            len[1] = pd_key_cat(q, sizeof(q), "pd:q:", uid, ulen);
            len[3] = pd_key_cat((char *) item, sizeof(item), PD_SR_INLINE,
                                id, ilen);
            (void) pd_redis_command(call->shard, NULL, NULL, 4, argv, len);

            if (ok) {
                continue;
            }
        }

        if (call->reply[k].value < 0) {
            continue;
        }

        memmove(w, e, (size_t) (p - e));
        w += p - e;
        rest++;
    }

    if (rest) {
        pd_sr_acks_script(call->shard, call->buf, rest);
    }

    pd_free(call);
}

static void
pd_sr_acks_handler(pd_event_t *ev)
{
    pd_uint_t  i;

    (void) ev;

    for (i = 0; i < pd_sr_nshards; i++) {
        pd_sr_acks_flush(i);
    }
}

/* the index of a server in pd_sr_shards, pd_sr_nshards if none */
static pd_uint_t
pd_sr_shard_index(pd_redis_t *shard)
{
    pd_uint_t  i;

    for (i = 0; i < pd_sr_nshards && pd_sr_shards[i] != shard; i++) {
        /* void */
    }

    return i;
}

/* what is sent to a server after the acks kept for it: a fetch must not
 * find an id its client acked earlier in this turn */
static void
pd_sr_acks_before(pd_redis_t *shard)
{
    pd_uint_t  i = pd_sr_shard_index(shard);

    if (i < pd_sr_nshards) {
        pd_sr_acks_flush(i);
    }
}

/* the Redis part of an ack, kept for the end of the loop turn; uid and
 * id are valid names */
static void
pd_sr_ack_redis(pd_redis_t *shard, pd_str_t *uid, pd_str_t *id)
{
    pd_sr_acks_t  *a;
    pd_uint_t      i;
    u_char        *p;

    i = pd_sr_shard_index(shard);

    if (i == pd_sr_nshards || pd_sr_acks == NULL) {
        return;
    }

    a = &pd_sr_acks[i];

    if (a->n == PD_SR_ACK_BATCH) {
        pd_sr_acks_flush(i);
    }

    p = a->buf + a->len;
    *p++ = (u_char) uid->len;
    p = pd_cpymem(p, uid->data, uid->len);
    *p++ = (u_char) id->len;
    p = pd_cpymem(p, id->data, id->len);
    a->len = (size_t) (p - a->buf);
    a->n++;

    if (!pd_sr_acks_ev.posted) {
        pd_post_event(&pd_sr_acks_ev, &pd_posted_events);
    }
}

static pd_int_t
pd_sr_ack(pd_str_t *uid, pd_str_t *id)
{
    pd_str_t  sid;

    /* the client's word: it goes into statements other acks share */
    sid = *id;

    if (pd_token_valid_name(&sid, PD_MSG_ID_LEN) != PD_OK) {
        return PD_DECLINED;
    }

    pd_sr_ack_redis(pd_sr_shard(uid->data, uid->len), uid, &sid);

    /* the row goes with this loop turn's DELETE */
    (void) pd_saver_pg_ack(pd_sr_log, uid, &sid);

    return PD_OK;
}

/*
 * The rows the log's sweep deleted, expired: their ids leave Redis as an
 * ack would take them (the list, the delivery count, a collapse key, the
 * body's count).  A fetch drops expired ids, but a uid that never comes
 * back fetches nothing, and its list and counts stayed for ever: Redis
 * grew with every user who left.
 */
static void
pd_sr_swept(const PGresult *res)
{
    pd_str_t   uid, id;
    int        i, n;

    n = PQntuples(res);

    if (PQnfields(res) < 2) {
        return;
    }

    for (i = 0; i < n; i++) {
        if (PQgetisnull(res, i, 0) || PQgetisnull(res, i, 1)) {
            continue;
        }

        uid.data = (u_char *) PQgetvalue(res, i, 0);
        uid.len = (size_t) PQgetlength(res, i, 0);
        id.data = (u_char *) PQgetvalue(res, i, 1);
        id.len = (size_t) PQgetlength(res, i, 1);

        if (pd_token_valid_name(&uid, PD_UID_MAX) != PD_OK
            || pd_token_valid_name(&id, PD_MSG_ID_LEN) != PD_OK)
        {
            continue;
        }

        pd_sr_ack_redis(pd_sr_shard(uid.data, uid.len), &uid, &id);
    }
}

/* a live send counts as a delivery; the guard acts on the next fetch */
static pd_int_t
pd_sr_delivered(pd_str_t *uid, uint64_t seq)
{
    const char  *argv[4];
    size_t       len[4];
    char         dl[8 + PD_UID_MAX];
    u_char       id[80];

    argv[0] = "HINCRBY";
    len[0] = 7;
    argv[1] = dl;
    len[1] = pd_key_cat(dl, sizeof(dl), "pd:dl:",
                        uid->data, uid->len);
    argv[2] = (const char *) id;
    len[2] = pd_sr_id(id, sizeof(id), seq);
    argv[3] = "1";
    len[3] = 1;

    (void) pd_redis_command(pd_sr_shard(uid->data, uid->len), NULL, NULL, 4,
                            argv, len);

    /* the cluster's guard counts here and acts on the next fetch */
    return PD_OK;
}

/* ---- reload: a server without pd:saver:ok gets the unacked rows ---- */

/*
 * The log is read a page at a time, and the next page only once Redis
 * answered every store of the last: what a reload holds (the rows of a
 * page, the script calls in flight) stays bounded whatever the log's
 * size.  Read at once, 200,000 rows became 200,000 calls queued on one
 * link: Redis took more than the link's timeout to answer them, the
 * link was reset, every store failed, and the reload began again a
 * minute later, for ever.  A page's stores go PD_SR_RELOAD_WINDOW at a
 * time, the next as one is answered, so that what waits on the link
 * stays short whatever a store costs (a store into a long mailbox once
 * scanned it, 1 ms at 25,000 ids, and a page sent at once outlasted the
 * link's timeout).
 */
#define PD_SR_RELOAD_PAGE    1000
#define PD_SR_RELOAD_WINDOW  64

/* a row of the page, copied out of libpq's result into the page's pool */
typedef struct {
    pd_str_t             uid;
    pd_str_t             id;
    pd_str_t             app;
    pd_str_t             payload;
    pd_str_t             collapse;
    uint64_t             expires;
} pd_sr_reload_row_t;

typedef struct {
    pd_redis_t          *shard;
    pd_pool_t           *pool;       /* the page's rows */
    pd_sr_reload_row_t  *page;
    pd_pool_t           *scratch;    /* one store's arguments at a time */
    pd_uint_t            n;          /* rows of the page kept */
    pd_uint_t            next;       /* the next to store */
    pd_uint_t            inflight;   /* stores not yet answered */
    pd_uint_t            failed;
    pd_uint_t            last;       /* the page was short: the log's end */
    pd_uint_t            rows;       /* of the pages all stored */
    pd_uint_t            page_rows;
    pd_uint_t            bad;
    pd_uint_t            again;      /* acks played again */
    pd_msec_t            start;
    /* the last row of the pages stored: where the next page starts */
    char                 uid[PD_UID_MAX + 1];
    char                 stored[64];
    char                 id[PD_MSG_ID_LEN + 1];
    /* the last row of the page being stored */
    char                 next_uid[PD_UID_MAX + 1];
    char                 next_stored[64];
    char                 next_id[PD_MSG_ID_LEN + 1];
    /* pd:saver:reloading's value while this worker holds it; kept by a
     * stopped reload, which goes on from its cursor if the server still
     * holds it at the next check (the server kept its data) */
    char                 token[PD_NODE_ID_SIZE + 48];
    char                 next_token[PD_NODE_ID_SIZE + 48];
    pd_uint_t            resumable;
    pd_uint_t            serial;     /* which reload: a late answer of an
                                      * earlier one no longer counts */
} pd_sr_reload_t;

/*
 * The lock is taken, or taken back, by one script: free, it is this
 * worker's (1); holding the token of this worker's stopped reload, it is
 * this worker's again and the reload goes on (2); else another node's
 * (0).  KEYS: pd:saver:reloading; ARGV: the new token, its life in ms,
 * the stopped reload's token or "".  Its life is short and each page
 * renews it: a reloader that dies lets another node begin soon.
 */
static const char  pd_sr_lock_lua[] =
    "local v = redis.call('GET', KEYS[1]) "
    "local r = 0 "
    "if not v then r = 1 elseif ARGV[3] ~= '' and v == ARGV[3] then r = 2 end "
    "if r > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end "
    "return r";

/*
 * Each page renews the lock, if it is still this reload's: a worker
 * stalled past its life (stopped, starved) may find that another node
 * took the server over meanwhile, and must not go on beside it (both
 * stores are harmless, but the first to finish sets the marker and
 * forgets the noted acks while the other still stores rows read before
 * those acks reached PostgreSQL: acked messages would come back).  A
 * lock that expired and nobody took is taken again.  KEYS:
 * pd:saver:reloading; ARGV: the token, its life in ms.  Answers 1, or 0
 * when another holds it.
 */
static const char  pd_sr_renew_lua[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v and v ~= ARGV[1] then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "return 1";

#define PD_SR_LOCK_LIFE  "10000"    /* ms */

/* a call of a lock script: the lock, a token, the lock's life (argv[3]
 * to [5]; the taking script adds a stopped reload's token as [6]) */
static void
pd_sr_lock_args(const char **argv, size_t *len, char *nkeys,
    const char *lua, size_t lua_len, const char *token)
{
    pd_sr_eval(argv, len, lua, lua_len, nkeys, 1);
    argv[3] = "pd:saver:reloading";
    len[3] = sizeof("pd:saver:reloading") - 1;
    argv[4] = token;
    len[4] = strlen(token);
    argv[5] = PD_SR_LOCK_LIFE;
    len[5] = sizeof(PD_SR_LOCK_LIFE) - 1;
}

static pd_sr_reload_t  pd_sr_reload;    /* in use while pd_sr_reloading */

static void pd_sr_reload_page(void);
static void pd_sr_renewed(pd_redis_t *r, redisReply *reply, void *data);
static void pd_sr_reload_end(pd_uint_t level, const char *why,
    pd_uint_t resumable, const char *then);
static void pd_sr_reload_send(void);
static void pd_sr_reload_acks(void);
static void pd_sr_reload_acks_lost(void);

static void
pd_sr_reload_free_page(void)
{
    if (pd_sr_reload.pool != NULL) {
        pd_destroy_pool(pd_sr_reload.pool);
        pd_sr_reload.pool = NULL;
    }

    if (pd_sr_reload.scratch != NULL) {
        pd_destroy_pool(pd_sr_reload.scratch);
        pd_sr_reload.scratch = NULL;
    }

    pd_sr_reload.page = NULL;
    pd_sr_reload.n = 0;
    pd_sr_reload.next = 0;
}

/*
 * The lock stays: this worker's next check (PD_SR_CHECK) takes it back
 * and goes on from the last page whose stores were all answered, if the
 * server still holds it (it kept its data: the stores are there); if
 * the server lost it, or this worker never comes back, it expires and
 * whoever checks next reloads from the start.
 */
static void
pd_sr_reload_stop(const char *why)
{
    pd_sr_reload_end(PD_LOG_ERR, why, 1, "it goes on at the next check");
}

/* the reload ends here: resumable by this worker's next check, or not */
static void
pd_sr_reload_end(pd_uint_t level, const char *why, pd_uint_t resumable,
    const char *then)
{
    pd_sr_reload_free_page();

    pd_log_error(level, pd_log_root, 0,
                 "saver: reload from postgres stopped after %lu rows: %s; "
                 "%s", (unsigned long) pd_sr_reload.rows, why, then);

    pd_sr_reload.resumable = resumable;
    pd_sr_reloading = 0;
}

static void
pd_sr_reload_finish(void)
{
    const char  *argv[3];
    size_t       len[3];

    pd_sr_reload_free_page();

    if (pd_sr_reload.bad) {
        pd_log_error(PD_LOG_ERR, pd_log_root, 0,
                     "saver: %lu malformed rows not reloaded",
                     (unsigned long) pd_sr_reload.bad);
    }

    pd_log_error(PD_LOG_NOTICE, pd_log_root, 0,
                 "saver: reloaded unacked messages from postgres "
                 "(%lu rows in %lu ms)", (unsigned long) pd_sr_reload.rows,
                 (unsigned long) (pd_current_msec - pd_sr_reload.start));

    /* every store is answered: from here acks apply as they come, and
     * the ones noted meanwhile follow (a fetch in between may send a
     * noted one again, as it could before they were played) */
    argv[0] = "SET";
    len[0] = 3;
    argv[1] = "pd:saver:ok";
    len[1] = sizeof("pd:saver:ok") - 1;
    argv[2] = "1";
    len[2] = 1;

    (void) pd_redis_command(pd_sr_reload.shard, NULL, NULL, 3, argv, len);

    pd_sr_reload.again = 0;
    pd_sr_reload_acks();
}

/*
 * The acks this server saw while the rows were read come after the
 * stores (on one link Redis runs them in the order sent), a bounded
 * handful at a time: each SPOP's answer comes once the acks sent before
 * it ran, and brings the next.  Taken all at once, a long reload's set
 * (every ack of the cluster while it ran) became as many calls queued on
 * one link as the rows once did.  A replayed ack is not noted again:
 * the marker is back.  Lost on the way (the link reset), what is left
 * expires with the set, and those messages may be sent once more.
 */
#define PD_SR_RELOAD_ACKS  "1000"

static void
pd_sr_reload_acks(void)
{
    const char  *argv[3];
    size_t       len[3];

    argv[0] = "SPOP";
    len[0] = 4;
    argv[1] = "pd:saver:acked";
    len[1] = sizeof("pd:saver:acked") - 1;
    argv[2] = PD_SR_RELOAD_ACKS;
    len[2] = sizeof(PD_SR_RELOAD_ACKS) - 1;

    if (pd_redis_command(pd_sr_reload.shard, pd_sr_reload_acked, NULL, 3,
                         argv, len)
        != PD_OK)
    {
        pd_sr_reload_acks_lost();
    }
}

static void
pd_sr_reload_acks_lost(void)
{
    pd_log_error(PD_LOG_ERR, pd_log_root, 0,
                 "saver: the acks made during the reload were not all "
                 "played again (%lu were): the rest may be sent once more",
                 (unsigned long) pd_sr_reload.again);

    pd_sr_reloading = 0;
}

/* a page's stores all answered: the next page, or the end */
static void
pd_sr_reload_next(void)
{
    const char  *argv[6];
    size_t       len[6];
    char         nkeys[PD_SR_NKEYS];

    if (pd_sr_reload.failed) {
        pd_sr_reload_stop("a store failed");
        return;
    }

    /* the page is stored: the next begins after it, even after a stop */
    pd_memcpy(pd_sr_reload.uid, pd_sr_reload.next_uid,
              sizeof(pd_sr_reload.uid));
    pd_memcpy(pd_sr_reload.stored, pd_sr_reload.next_stored,
              sizeof(pd_sr_reload.stored));
    pd_memcpy(pd_sr_reload.id, pd_sr_reload.next_id, sizeof(pd_sr_reload.id));
    pd_sr_reload.rows += pd_sr_reload.page_rows;
    pd_sr_reload.page_rows = 0;

    if (pd_sr_reload.last) {
        pd_sr_reload_finish();
        return;
    }

    /* still at it: no other node takes the server over */
    pd_sr_lock_args(argv, len, nkeys, pd_sr_renew_lua,
                    sizeof(pd_sr_renew_lua) - 1, pd_sr_reload.token);

    (void) pd_redis_command(pd_sr_reload.shard, pd_sr_renewed,
                            (void *) (uintptr_t) pd_sr_reload.serial, 6,
                            argv, len);

    pd_sr_reload_page();
}

/* another node holds the lock: this reload ends here, for good */
static void
pd_sr_renewed(pd_redis_t *r, redisReply *reply, void *data)
{
    (void) r;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer != 0 || !pd_sr_reloading
        || (uintptr_t) data != pd_sr_reload.serial)
    {
        return;
    }

    pd_sr_reload_end(PD_LOG_WARN, "another node holds pd:saver:reloading "
                     "(this worker was held up past the lock's "
                     PD_SR_LOCK_LIFE " ms)", 0,
                     "the server is that node's to reload");
}

static void
pd_saver_reload_done(void *data, pd_int_t rc, pd_uint_t stored,
    pd_uint_t full)
{
    (void) data;
    (void) stored;
    (void) full;

    if (!pd_sr_reloading) {
        /* the worker is exiting: the links are going */
        return;
    }

    if (rc != PD_OK) {
        pd_sr_reload.failed++;
    }

    pd_sr_reload.inflight--;
    pd_sr_reload_send();
}

/* the page's next stores, up to the window; the next page when all are
 * answered */
static void
pd_sr_reload_send(void)
{
    pd_sr_reload_row_t  *row;
    pd_sr_store_t       *st;
    pd_pool_t           *pool;
    pd_uint_t            pick;

    pool = pd_sr_reload.scratch;

    while (!pd_sr_reload.failed && pd_sr_reload.next < pd_sr_reload.n
           && pd_sr_reload.inflight < PD_SR_RELOAD_WINDOW)
    {
        row = &pd_sr_reload.page[pd_sr_reload.next++];

        st = pd_calloc(sizeof(pd_sr_store_t), pd_log_root);
        if (st == NULL) {
            pd_sr_reload.failed++;
            break;
        }

        st->done = pd_saver_reload_done;
        st->waiting = 1;
        pick = 0;
        pd_sr_reload.inflight++;

        if (pd_sr_store_shard(pd_sr_reload.shard, &row->uid, &pick, 1,
                              &row->app, &row->collapse, &row->id,
                              &row->payload, row->expires, st, pool)
            != PD_OK)
        {
            pd_free(st);
            pd_sr_reload.inflight--;
            pd_sr_reload.failed++;
        }

        pd_reset_pool(pool);
    }

    if (pd_sr_reload.inflight == 0
        && (pd_sr_reload.failed || pd_sr_reload.next == pd_sr_reload.n))
    {
        pd_sr_reload_free_page();
        pd_sr_reload_next();
    }
}

pd_int_t
pd_sr_reload_row(const PGresult *res, int row, pd_str_t *uid, pd_str_t *id,
    pd_str_t *app, pd_str_t *payload, uint64_t *expires)
{
    pd_str_t   *col[4] = { uid, id, app, payload };
    pd_str_t    node;
    uint64_t    seq;
    u_char     *p;
    char       *end;
    int         i;

    if (PQnfields(res) < 5 || row < 0 || row >= PQntuples(res)) {
        return PD_ERROR;
    }

    for (i = 0; i < 5; i++) {
        if (PQgetisnull(res, row, i)) {
            return PD_ERROR;
        }
    }

    for (i = 0; i < 4; i++) {
        col[i]->data = (u_char *) PQgetvalue(res, row, i);
        col[i]->len = (size_t) PQgetlength(res, row, i);
    }

    /* the names go into keys and frames as they are: checked again */
    if (pd_token_valid_name(uid, PD_UID_MAX) != PD_OK
        || pd_token_valid_name(app, PD_APP_MAX) != PD_OK
        || pd_msg_id_parse(id->data, id->len, &node, &seq) != PD_OK)
    {
        return PD_ERROR;
    }

    p = (u_char *) PQgetvalue(res, row, 4);

    if (!isdigit(*p)) {
        return PD_ERROR;
    }

    errno = 0;
    *expires = strtoull((char *) p, &end, 10);

    if (*end != '\0' || errno != 0) {
        return PD_ERROR;
    }

    return PD_OK;
}

/* the last row of a page, where the next one starts once it is stored */
static pd_int_t
pd_sr_reload_cursor(const PGresult *res, int row)
{
    static const struct {
        int     col;
        size_t  off;
        size_t  size;
    } f[3] = {
        { 0, offsetof(pd_sr_reload_t, next_uid), PD_UID_MAX + 1 },
        { 6, offsetof(pd_sr_reload_t, next_stored), 64 },
        { 1, offsetof(pd_sr_reload_t, next_id), PD_MSG_ID_LEN + 1 },
    };
    pd_uint_t  i;
    size_t     n;

    if (PQnfields(res) < 7) {
        return PD_ERROR;
    }

    for (i = 0; i < 3; i++) {
        n = (size_t) PQgetlength(res, row, f[i].col);

        if (PQgetisnull(res, row, f[i].col) || n >= f[i].size) {
            return PD_ERROR;
        }

        pd_memcpy((u_char *) &pd_sr_reload + f[i].off,
                  PQgetvalue(res, row, f[i].col), n + 1);
    }

    return PD_OK;
}

static pd_int_t
pd_sr_reload_copy(pd_str_t *dst, pd_str_t *src)
{
    dst->len = src->len;
    dst->data = pd_pstrdup(pd_sr_reload.pool, src);

    return dst->data ? PD_OK : PD_ERROR;
}

static void
pd_sr_reload_rows(pd_pg_t *pg, PGresult *res, void *data)
{
    pd_redis_t          *shard = data;
    pd_str_t             uid, app, payload, id, collapse;
    pd_uint_t            i, n;
    uint64_t             expires;
    pd_sr_reload_row_t  *row;

    (void) pg;

    if (!pd_sr_reloading) {
        return;
    }

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        pd_sr_reload_stop(res ? PQresultErrorMessage(res)
                              : "postgres gave no answer");
        return;
    }

    n = (pd_uint_t) PQntuples(res);

    if (n && pd_sr_reload_cursor(res, (int) n - 1) != PD_OK) {
        pd_sr_reload_stop("a row too long to page after");
        return;
    }

    pd_sr_reload.last = n < PD_SR_RELOAD_PAGE;
    pd_sr_reload.page_rows = n;

    pd_sr_reload.pool = pd_create_pool(16384, 0, pd_log_root);
    pd_sr_reload.scratch = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0,
                                          pd_log_root);
    pd_sr_reload.page = pd_sr_reload.pool && pd_sr_reload.scratch
                        ? pd_palloc(pd_sr_reload.pool,
                                    (n ? n : 1) * sizeof(pd_sr_reload_row_t))
                        : NULL;

    if (pd_sr_reload.page == NULL) {
        pd_sr_reload_stop("no memory");
        return;
    }

    for (i = 0; i < n; i++) {
        if (pd_sr_reload_row(res, (int) i, &uid, &id, &app, &payload,
                             &expires) != PD_OK)
        {
            pd_sr_reload.bad++;
            continue;
        }

        if (pd_sr_shard(uid.data, uid.len) != shard) {
            continue;
        }

        /* the key, when the log has its column (it is added on connect) */
        collapse.len = 0;
        collapse.data = NULL;

        if (!PQgetisnull(res, (int) i, 5)) {
            collapse.data = (u_char *) PQgetvalue(res, (int) i, 5);
            collapse.len = (size_t) PQgetlength(res, (int) i, 5);
        }

        /* in store order: a newer version replaces an older one here
         * as it did when it was pushed, and the key holds again */
        if (collapse.len > PD_COLLAPSE_MAX) {
            collapse.len = 0;
        }

        row = &pd_sr_reload.page[pd_sr_reload.n];
        row->expires = expires;

        if (pd_sr_reload_copy(&row->uid, &uid) != PD_OK
            || pd_sr_reload_copy(&row->id, &id) != PD_OK
            || pd_sr_reload_copy(&row->app, &app) != PD_OK
            || pd_sr_reload_copy(&row->payload, &payload) != PD_OK
            || pd_sr_reload_copy(&row->collapse, &collapse) != PD_OK)
        {
            pd_sr_reload_stop("no memory");
            return;
        }

        pd_sr_reload.n++;
    }

    pd_sr_reload_send();
}

static void
pd_sr_reload_page(void)
{
    if (pd_saver_pg_reload(pd_sr_log, pd_time_msec,
                           pd_sr_reload.uid, pd_sr_reload.stored,
                           pd_sr_reload.id, PD_SR_RELOAD_PAGE,
                           pd_sr_reload_rows, pd_sr_reload.shard)
        != PD_OK)
    {
        pd_sr_reload_stop("postgres is not connected");
    }
}

/* a handful of the acks noted while the server lacked pd:saver:ok,
 * played again after the reload's stores; the set empty, the server
 * holds what the log holds */
static void
pd_sr_reload_acked(pd_redis_t *r, redisReply *reply, void *data)
{
    redisReply  *m;
    pd_str_t     uid, id;
    pd_uint_t    i;
    const char  *argv[3];
    size_t       len[3];
    u_char      *nl;

    (void) data;

    if (!pd_sr_reloading) {
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        pd_sr_reload_acks_lost();
        return;
    }

    for (i = 0; i < reply->elements; i++) {
        m = reply->element[i];

        if (m->type != REDIS_REPLY_STRING) {
            continue;
        }

        nl = memchr(m->str, '\n', m->len);
        if (nl == NULL) {
            continue;
        }

        uid.data = (u_char *) m->str;
        uid.len = (size_t) (nl - uid.data);
        id.data = nl + 1;
        id.len = m->len - uid.len - 1;

        /* the set is pushd's own, but it sits in a shared server */
        if (pd_token_valid_name(&uid, PD_UID_MAX) != PD_OK
            || pd_token_valid_name(&id, PD_MSG_ID_LEN) != PD_OK
            || pd_sr_shard(uid.data, uid.len) != r)
        {
            continue;
        }

        pd_sr_ack_redis(r, &uid, &id);
        pd_sr_reload.again++;
    }

    /* the acks played again go before what follows */
    pd_sr_acks_before(r);

    if (reply->elements > 0) {
        pd_sr_reload_acks();
        return;
    }

    argv[0] = "DEL";
    len[0] = 3;
    argv[1] = "pd:saver:reloading";
    len[1] = sizeof("pd:saver:reloading") - 1;

    (void) pd_redis_command(r, NULL, NULL, 2, argv, len);

    pd_sr_reloading = 0;

    if (pd_sr_reload.again) {
        pd_log_error(PD_LOG_NOTICE, pd_log_root, 0,
                     "saver: %lu acks made during the reload played again",
                     (unsigned long) pd_sr_reload.again);
    }
}

static void
pd_sr_locked(pd_redis_t *r, redisReply *reply, void *data)
{
    (void) data;

    /* another node reloads this server, or no answer */
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || (reply->integer != 1 && reply->integer != 2)
        || pd_sr_reloading)
    {
        return;
    }

    pd_sr_reloading = 1;
    pd_sr_reload.serial++;

    if (reply->integer == 2 && pd_sr_reload.resumable
        && pd_sr_reload.shard == r)
    {
        pd_log_error(PD_LOG_NOTICE, pd_log_root, 0,
                     "saver: reload from postgres goes on after %lu rows",
                     (unsigned long) pd_sr_reload.rows);

        pd_memcpy(pd_sr_reload.token, pd_sr_reload.next_token,
                  sizeof(pd_sr_reload.token));
        pd_sr_reload.resumable = 0;
        pd_sr_reload.failed = 0;
        pd_sr_reload.last = 0;
        pd_sr_reload.page_rows = 0;
        pd_sr_reload_page();
        return;
    }

    pd_memzero(&pd_sr_reload, offsetof(pd_sr_reload_t, token));
    pd_memcpy(pd_sr_reload.token, pd_sr_reload.next_token,
              sizeof(pd_sr_reload.token));
    pd_sr_reload.resumable = 0;
    pd_sr_reload.shard = r;
    pd_sr_reload.start = pd_current_msec;
    pd_memcpy(pd_sr_reload.stored, "-infinity", sizeof("-infinity"));

    pd_sr_reload_page();
}

static void
pd_sr_marker(pd_redis_t *r, redisReply *reply, void *data)
{
    const char  *argv[7];
    size_t       len[7];
    char         nkeys[PD_SR_NKEYS];
    static pd_uint_t  tries;

    (void) data;

    /* present, or no answer (the next check asks again) */
    if (reply == NULL || reply->type != REDIS_REPLY_NIL
        || !pd_saver_pg_connected(pd_sr_log) || pd_sr_reloading)
    {
        return;
    }

    /* one reloader per server, whichever node asks first; this worker's
     * stopped reload goes on if the server still holds its token */
    (void) snprintf(pd_sr_reload.next_token, sizeof(pd_sr_reload.next_token),
                    "%s/%ld/%lu/%lu", pd_sr_node, (long) pd_pid,
                    (unsigned long) pd_current_msec, (unsigned long) ++tries);

    pd_sr_lock_args(argv, len, nkeys, pd_sr_lock_lua,
                    sizeof(pd_sr_lock_lua) - 1, pd_sr_reload.next_token);

    if (pd_sr_reload.resumable && pd_sr_reload.shard == r) {
        argv[6] = pd_sr_reload.token;
        len[6] = strlen(pd_sr_reload.token);

    } else {
        argv[6] = "";
        len[6] = 0;
    }

    (void) pd_redis_command(r, pd_sr_locked, NULL, 7, argv, len);
}

/* a Redis server (re)connected: did it keep its data? */
void
pd_saver_redis_connected(pd_redis_t *r)
{
    const char  *argv[2];
    size_t       len[2];

    if (pd_sr_log == NULL || pd_worker != 0) {
        return;
    }

    argv[0] = "GET";
    len[0] = 3;
    argv[1] = "pd:saver:ok";
    len[1] = sizeof("pd:saver:ok") - 1;

    (void) pd_redis_command(r, pd_sr_marker, NULL, 2, argv, len);
}

/* a server may lose its data without the link dropping (FLUSHALL, a
 * failover): look for the marker now and then too */
static void
pd_sr_check(pd_timer_t *t)
{
    pd_uint_t  i;

    for (i = 0; i < pd_sr_nshards; i++) {
        if (pd_redis_connected(pd_sr_shards[i])) {
            pd_saver_redis_connected(pd_sr_shards[i]);
        }
    }

    (void) pd_timer_add(&pd_timers, t, pd_current_msec, PD_SR_CHECK);
}

static void
pd_sr_own_connected(pd_redis_t *r, void *data)
{
    (void) data;

    pd_saver_redis_connected(r);
}

/* links to saver.redis, made and owned by the saver */
static pd_int_t
pd_sr_connect_own(pd_cycle_t *cycle, pd_saver_conf_t *scf)
{
    pd_register_addr_t  *a;
    pd_redis_t          *r;
    pd_uint_t            i, n;

    a = scf->redis_shards->elts;
    n = scf->redis_shards->nelts;

    pd_sr_shards = pd_calloc(sizeof(pd_redis_t *) * n, cycle->log);
    if (pd_sr_shards == NULL) {
        return PD_ERROR;
    }

    pd_sr_own = 1;

    for (i = 0; i < n; i++) {
        r = pd_redis_create(a[i].host, a[i].port, scf->timeout, cycle->log);
        if (r == NULL) {
            return PD_ERROR;
        }

        pd_sr_shards[pd_sr_nshards++] = r;

        if (scf->redis_password.data != NULL
            && pd_redis_set_auth(r, (char *) scf->redis_user.data,
                                 (char *) scf->redis_password.data)
               != PD_OK)
        {
            return PD_ERROR;
        }

        /* each (re)connect asks whether the server kept its data */
        pd_redis_set_connect_handler(r, pd_sr_own_connected, NULL);

        /* not connected yet is fine: qos 1 pushes get 503 meanwhile */
        (void) pd_redis_connect(r);
    }

    return PD_OK;
}

static pd_int_t
pd_sr_init_process(pd_cycle_t *cycle, pd_saver_conf_t *scf)
{
    pd_core_conf_t  *ccf;

    if (scf->redis_shards != NULL) {
        if (pd_sr_connect_own(cycle, scf) != PD_OK) {
            return PD_ERROR;
        }

    } else {
        if (pd_register_on_connect(pd_saver_redis_connected) != PD_OK) {
            return PD_ERROR;
        }

        pd_sr_shards = pd_redis_group(PD_REGISTER_REDIS_GROUP,
                                      &pd_sr_nshards);

        if (pd_sr_nshards == 0) {
            pd_log_error(PD_LOG_EMERG, cycle->log, 0,
                         "saver.backend redis needs saver.redis or "
                         "register.backend redis");
            return PD_ERROR;
        }
    }

    ccf = pd_get_conf(cycle, pd_core_module);
    (void) snprintf(pd_sr_node, sizeof(pd_sr_node), "%.*s",
                    (int) ccf->node_id.len, ccf->node_id.data);

    /* one worker per node sweeps expired rows (nodes share the work:
     * each slice skips the rows another holds) */
    pd_sr_log = pd_saver_pg_create((char *) scf->postgres.data,
                                   scf->timeout, pd_worker == 0, cycle->log);
    if (pd_sr_log == NULL) {
        return PD_ERROR;
    }

    pd_saver_pg_set_swept(pd_sr_log, pd_sr_swept);

    pd_sr_acks = pd_calloc(sizeof(pd_sr_acks_t) * pd_sr_nshards,
                           cycle->log);
    if (pd_sr_acks == NULL) {
        return PD_ERROR;
    }

    pd_sr_acks_ev.handler = pd_sr_acks_handler;

    if (pd_worker == 0) {
        pd_timer_init(&pd_sr_check_timer, pd_sr_check);
        (void) pd_timer_add(&pd_timers, &pd_sr_check_timer, pd_current_msec,
                            PD_SR_CHECK);
    }

    return pd_saver_pg_connect(pd_sr_log);
}

static void
pd_sr_exit_process(void)
{
    pd_uint_t  i;

    if (pd_sr_acks != NULL) {
        /* none are kept here between turns (the posted event sends them
         * in the turn they came), and the register's links, which these
         * may be, are gone already: nothing is sent from here */
        pd_delete_posted_event(&pd_sr_acks_ev);
        pd_free(pd_sr_acks);
        pd_sr_acks = NULL;
    }

    /* a reload in progress is dropped: the failed statements and stores
     * below must not reach for the links (the next worker, or node,
     * reloads again: the server still lacks its marker) */
    pd_sr_reloading = 0;

    if (pd_sr_log != NULL) {
        pd_saver_pg_destroy(pd_sr_log);
        pd_sr_log = NULL;
    }

    if (pd_sr_own) {
        for (i = 0; i < pd_sr_nshards; i++) {
            pd_redis_destroy(pd_sr_shards[i]);
        }

        pd_free(pd_sr_shards);
        pd_sr_own = 0;
    }

    pd_sr_shards = NULL;
    pd_sr_nshards = 0;
}

/* the store on the register's links (no saver.redis): a uid's lookup
 * goes on the link its store went on, behind it */
static pd_uint_t
pd_sr_orders_lookups(void)
{
    return !pd_sr_own && pd_sr_shards != NULL;
}

pd_saver_backend_t  pd_saver_redis_backend = {
    "redis",
    pd_sr_init_process,
    pd_sr_exit_process,
    pd_sr_store,
    pd_sr_fetch,
    pd_sr_ack,
    pd_sr_delivered,
    pd_sr_orders_lookups
};
