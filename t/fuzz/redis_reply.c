/*
 * redis_reply: what pushd reads of Redis' answers, from the server's own
 * bytes: the input is RESP as a server would send it, turned into reply
 * trees by hiredis' reader (with pushd's bound on arrays,
 * pd_redis_reader_limit), exactly the trees the handlers get.  Each tree
 * goes through the subscriber's reading (pd_redis.c), the cluster
 * register's entries (HGETALL of a uid: fields and values,
 * pd_register_redis.c) and the cluster saver's fetch (the pending
 * script's id and payload pairs, pd_saver_redis.c).
 *
 * Input: the server's bytes.
 */

#include "pd_fuzz.h"
#include "pd_register.h"
#include "pd_saver.h"

typedef struct {
    pd_uint_t   taken;
    pd_uint_t   stop;       /* say stop at this one */
    u_char      sum;
} pd_fuzz_take_t;

static volatile u_char  pd_fuzz_sink;

static pd_int_t
pd_fuzz_take(void *data, pd_saver_msg_t *m)
{
    pd_fuzz_take_t  *t = data;
    size_t           i;

    if (m->id.len >= PD_SAVER_CURSOR_SIZE) {
        abort();
    }

    /* the handler frames the payload: every byte is read */
    for (i = 0; i < m->len; i++) {
        t->sum ^= m->payload[i];
    }

    for (i = 0; i < m->id.len; i++) {
        t->sum ^= m->id.data[i];
    }

    return (++t->taken == t->stop) ? PD_DECLINED : PD_OK;
}

static void
pd_fuzz_register(const redisReply *reply)
{
    pd_reg_info_t  *info, tmp;
    char          (*field)[PD_RR_FIELD_MAX];
    const char     *boot;
    size_t          boot_len, len;
    pid_t           pid;
    pd_uint_t       i, n, k;

    info = calloc(PD_REGISTER_LOOKUP_MAX, sizeof(pd_reg_info_t));
    field = calloc(PD_REGISTER_LOOKUP_MAX, PD_RR_FIELD_MAX);
    if (info == NULL || field == NULL) {
        abort();
    }

    n = pd_rr_parse_entries(reply, info, field, PD_REGISTER_LOOKUP_MAX);

    if (n > PD_REGISTER_LOOKUP_MAX) {
        abort();
    }

    for (i = 0; i < n; i++) {
        len = strnlen(field[i], PD_RR_FIELD_MAX);

        if (len == PD_RR_FIELD_MAX
            || strnlen((char *) info[i].device, PD_DEVICE_MAX + 1)
               > PD_DEVICE_MAX
            || info[i].napps > PD_APPS_MAX)
        {
            abort();
        }

        for (k = 0; k < info[i].napps; k++) {
            if (strnlen((char *) info[i].apps[k], PD_APP_MAX + 1)
                > PD_APP_MAX)
            {
                abort();
            }
        }

        if (pd_rr_parse_field(field[i], len, &tmp, &boot, &boot_len, &pid)
            == PD_OK
            && (boot < field[i] || boot + boot_len > field[i] + len
                || pid <= 0
                || strnlen((char *) tmp.node, PD_NODE_ID_SIZE)
                   == PD_NODE_ID_SIZE))
        {
            abort();
        }
    }

    free(info);
    free(field);
}

static void
pd_fuzz_saver(const redisReply *reply, pd_uint_t stop)
{
    pd_fuzz_take_t   t;
    pd_str_t         cursor;
    pd_uint_t        more;
    static u_char    after[] = "node-1";

    (void) pd_sr_fetch_retry(reply);

    /* the dropped ids it counts are all in the reply */
    if (pd_sr_fetch_dropped(reply, &more) == PD_OK
        && (size_t) more + 2 > reply->elements)
    {
        abort();
    }

    t.taken = 0;
    t.stop = stop;
    t.sum = 0;
    cursor.data = after;
    cursor.len = sizeof(after) - 1;

    if (pd_sr_fetch_walk(reply, pd_fuzz_take, &t, &cursor, &more) == PD_OK) {
        if (t.taken > PD_SAVER_FETCH_MAX
            || (cursor.data != after
                && cursor.len >= PD_SAVER_CURSOR_SIZE))
        {
            abort();
        }
    }

    pd_fuzz_sink = t.sum;
}

static void
pd_fuzz_sub(const redisReply *reply)
{
    const redisReply  *channel, *payload;

    channel = NULL;
    payload = NULL;

    switch (pd_redis_sub_parse(reply, &channel, &payload)) {

    case PD_REDIS_SUB_MESSAGE:
        if (channel == NULL || payload == NULL
            || payload->str[payload->len] != '\0')
        {
            abort();
        }
        break;

    case PD_REDIS_SUB_CONFIRMED:
        if (channel == NULL) {
            abort();
        }
        break;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader  *rd;
    void         *reply;
    pd_uint_t     n;

    pd_fuzz_init();

    /* bounded as every link's reader is */
    rd = redisReaderCreate();
    if (rd == NULL) {
        abort();
    }

    pd_redis_reader_limit(rd);

    if (redisReaderFeed(rd, (const char *) data, size) != REDIS_OK) {
        abort();
    }

    for (n = 0; n < 64; n++) {
        reply = NULL;

        if (redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL) {
            break;
        }

        pd_fuzz_sub(reply);
        pd_fuzz_register(reply);
        pd_fuzz_saver(reply, n % 5);

        freeReplyObject(reply);
    }

    redisReaderFree(rd);
    return 0;
}
