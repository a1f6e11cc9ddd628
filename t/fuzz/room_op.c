/*
 * room_op: a client's bytes through a live room connection, as a worker
 * runs it: pd_room_read_handler, the frame parser, fragments, the UTF-8
 * check, the op dispatch (ack, ping, bind, unbind, up) and the close
 * handshake, against the real memory register and saver and the
 * coordinator's uplink (whose requests are queued, never answered).
 *
 * A connection starts as the room takes it over after the upgrade, or,
 * in the other mode, as the listener accepts it: then the request, its
 * query (uid, device, apps, token, expires, heartbeat) and the token
 * check come first.
 *
 * The process is set up once like a worker (pd_init_cycle on a
 * configuration of its own, the modules' init_process).  Each input is
 * one connection whose socket is fake: its recv() hands out the input in
 * pieces, its send_chain() takes or refuses what the room writes.  What
 * is written must be well-formed server frames: unmasked, text that is
 * UTF-8 and one JSON object, close frames with a valid code; and once
 * the peer closes, the register must hold nothing of the connection.
 *
 * Input: one byte of modes (bit 0: the peer never reads; bit 1: from the
 * accept, an HTTP upgrade first; bits 4-7: piece size), then the
 * client's bytes (the upgrade request, masked frames).
 */

#include "pd_fuzz.h"
#include "pd_room.h"
#include "pd_register.h"
#include "pd_saver.h"

#include <jansson.h>

#define PD_FUZZ_OUT_MAX  (1024 * 1024)

static pd_cycle_t  *pd_fuzz_cycle;
static char         pd_fuzz_dir[64];

/* the fake socket's two directions */
static pd_fuzz_in_t    pd_fuzz_rx;
static size_t          pd_fuzz_piece;
static pd_uint_t       pd_fuzz_eof;
static pd_uint_t       pd_fuzz_stuck;
static u_char         *pd_fuzz_out;
static size_t          pd_fuzz_out_len;


static ssize_t
pd_fuzz_recv(pd_connection_t *c, u_char *buf, size_t size)
{
    size_t  n;

    if (pd_fuzz_rx.len == 0) {
        c->read->ready = 0;
        return pd_fuzz_eof ? 0 : PD_AGAIN;
    }

    n = pd_min(pd_min(size, pd_fuzz_piece), pd_fuzz_rx.len);
    memcpy(buf, pd_fuzz_rx.p, n);
    pd_fuzz_rx.p += n;
    pd_fuzz_rx.len -= n;

    /* a short read drains the socket, as pd_unix_recv says */
    if (n < size) {
        c->read->ready = 0;
    }

    return (ssize_t) n;
}

/* "100 Continue" goes by send(): kept the same way */
static ssize_t
pd_fuzz_send(pd_connection_t *c, u_char *buf, size_t size)
{
    if (pd_fuzz_stuck) {
        c->write->ready = 0;
        return PD_AGAIN;
    }

    if (pd_fuzz_out_len + size > PD_FUZZ_OUT_MAX) {
        abort();
    }

    memcpy(pd_fuzz_out + pd_fuzz_out_len, buf, size);
    pd_fuzz_out_len += size;

    return (ssize_t) size;
}

/* everything sent is kept for the check; a stuck peer takes nothing */
static pd_chain_t *
pd_fuzz_send_chain(pd_connection_t *c, pd_chain_t *in, size_t limit)
{
    size_t  n;

    (void) limit;

    /* EAGAIN, as pd_writev_chain says it: not ready until epoll tells */
    if (pd_fuzz_stuck) {
        c->write->ready = 0;
        return in;
    }

    for ( /* void */ ; in != NULL; in = in->next) {
        n = (size_t) (in->buf->last - in->buf->pos);

        if (pd_fuzz_out_len + n > PD_FUZZ_OUT_MAX) {
            abort();
        }

        memcpy(pd_fuzz_out + pd_fuzz_out_len, in->buf->pos, n);
        pd_fuzz_out_len += n;
        in->buf->pos = in->buf->last;
    }

    return NULL;
}

static const pd_conn_io_t  pd_fuzz_io = {
    pd_fuzz_recv,
    pd_fuzz_send,
    pd_fuzz_send_chain
};


/* the pid and seq files and the directory the worker's configuration
 * made */
static void
pd_fuzz_cleanup(void)
{
    char  path[96];

    (void) snprintf(path, sizeof(path), "%spushd.pid", pd_fuzz_dir);
    (void) unlink(path);
    (void) snprintf(path, sizeof(path), "%spushd.seq", pd_fuzz_dir);
    (void) unlink(path);
    (void) snprintf(path, sizeof(path), "%spushd.yaml", pd_fuzz_dir);
    (void) unlink(path);
    (void) rmdir(pd_fuzz_dir);
}

/* 1 when the room has this directive */
static pd_uint_t
pd_fuzz_room_has(const char *name)
{
    pd_command_t  *cmd;

    for (cmd = pd_room_module.commands; cmd->name != NULL; cmd++) {
        if (strcmp(cmd->name, name) == 0) {
            return 1;
        }
    }

    return 0;
}

/* the worker: a cycle on a configuration of the target's own */
static void
pd_fuzz_worker(void)
{
    struct sockaddr_in  sin;
    socklen_t           len;
    pd_cycle_t         *bare;
    pd_str_t            prefix, conf;
    u_char              errbuf[PD_CONF_ERRSTR_SIZE];
    static char         path[96];
    FILE               *fp;
    pd_uint_t           i;
    int                 s;

    /* a free port for the room's listener, which nothing connects to */
    s = socket(AF_INET, SOCK_STREAM, 0);
    pd_memzero(&sin, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(sin);

    if (s == -1 || bind(s, (struct sockaddr *) &sin, sizeof(sin)) != 0
        || getsockname(s, (struct sockaddr *) &sin, &len) != 0)
    {
        abort();
    }

    (void) close(s);

    (void) snprintf(pd_fuzz_dir, sizeof(pd_fuzz_dir), "/tmp/pd-fuzz-room-%d/",
                    (int) getpid());
    (void) snprintf(path, sizeof(path), "%spushd.yaml", pd_fuzz_dir);

    if (mkdir(pd_fuzz_dir, 0700) != 0 && errno != EEXIST) {
        abort();
    }

    (void) atexit(pd_fuzz_cleanup);

    fp = fopen(path, "w");
    if (fp == NULL) {
        abort();
    }

    (void) fprintf(fp,
        "daemon: off\n"
        "node_id: fz\n"
        "pid: pushd.pid\n"
        "seq_file: pushd.seq\n"
        "error_log: \"/dev/null info\"\n"
        "worker_processes: 1\n"
        "room:\n"
        "  listen: \"127.0.0.1:%d\"\n"
        "  auth_secret: \"fuzz-secret-0123456789abcdef\"\n"
        "  max_frame: 2k\n"
        "  max_message: 4k\n"
        "  output_limit: 16k\n"
        "  max_apps: 3\n"
        "  max_bad_frames: 20\n"
        "%s"
        "register:\n"
        "  backend: memory\n"
        "  memory: 4m\n"
        "saver:\n"
        "  backend: memory\n"
        "  memory: 8m\n"
        "coordinator:\n"
        "  secret: \"fuzz-coordinator-secret-0123\"\n"
        "  max_pending: 4\n"
        "  up_rate: 65535\n"
        "  apps:\n"
        "    - app: chat\n"
        "      uplink: \"http://127.0.0.1:9/up\"\n"
        "      types: [msg, typing]\n",
        (int) ntohs(sin.sin_port),
        /* a session that lingers after a drop would keep its register
         * entry past the input's end: where the room has them, none */
        pd_fuzz_room_has("linger") ? "  linger: 0\n" : "");
    (void) fclose(fp);

    prefix.data = (u_char *) pd_fuzz_dir;
    prefix.len = strlen(pd_fuzz_dir);
    conf.data = (u_char *) path;
    conf.len = strlen(path);

    pd_ncpu = 1;
    bare = pd_cycle_bare(&prefix, &conf);
    if (bare == NULL) {
        abort();
    }

    pd_fuzz_cycle = pd_init_cycle(bare, errbuf, sizeof(errbuf));
    if (pd_fuzz_cycle == NULL) {
        fprintf(stderr, "room_op: %s\n", errbuf);
        abort();
    }

    (void) unlink(path);
    pd_cycle = pd_fuzz_cycle;
    pd_log_root = &pd_fuzz_log;
    pd_fuzz_cycle->log = &pd_fuzz_log;

    /* what a worker does before its loop: its stats slot, connections,
     * events, the modules' process hooks */
    pd_worker = 0;
    pd_pid = getpid();
    pd_stats_claim(0, 0, pd_fuzz_cycle->generation);

    if (pd_connection_init_array(pd_fuzz_cycle, 64) != PD_OK
        || pd_event_init(pd_fuzz_cycle) != PD_OK)
    {
        abort();
    }

    for (i = 0; pd_modules[i] != NULL; i++) {
        if (pd_modules[i]->init_process && pd_fuzz_cycle->enabled[i]
            && pd_modules[i]->init_process(pd_fuzz_cycle) != PD_OK)
        {
            abort();
        }
    }

    if (pd_register == NULL || pd_saver == NULL) {
        abort();
    }

    pd_fuzz_out = malloc(PD_FUZZ_OUT_MAX);
    if (pd_fuzz_out == NULL) {
        abort();
    }
}


/* one connection, as pd_room_accept() leaves it */
static pd_room_conn_t *
pd_fuzz_connect(pd_connection_t **cp)
{
    static pd_log_t     log;
    pd_connection_t    *c;
    pd_room_conn_t     *rc;
    pd_room_conf_t     *rcf;
    pd_reg_info_t       info;
    struct sockaddr_in *sin;
    static const char   uid[] = "fuzz-user-longer-than-sixteen";
    int                 fd;

    rcf = pd_get_conf(pd_fuzz_cycle, pd_room_module);

    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    log = pd_fuzz_log;
    c = (fd == -1) ? NULL : pd_get_connection(fd, &log);
    if (c == NULL) {
        abort();
    }

    c->number = ++pd_connection_counter;
    sin = (struct sockaddr_in *) &c->sockaddr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pd_active_connections++;

    rc = pd_room_conn_alloc();
    if (rc == NULL) {
        abort();
    }

    rc->connection = c;
    rc->conf = rcf;
    rc->out_last = &rc->out;
    rc->hb = 30;
    if (pd_room_uid_set(rc, (u_char *) uid, sizeof(uid) - 1) != PD_OK) {
        abort();
    }

    rc->apps[0] = pd_room_app_get((u_char *) "chat", 4);
    rc->napps = 1;

    pd_memzero(&info, sizeof(info));
    pd_memcpy(info.uid, uid, sizeof(uid));
    pd_memcpy(info.device, "dev", 4);
    pd_memcpy(info.apps[0], "chat", 5);
    info.napps = 1;
    info.pid = (int32_t) pd_pid;
    info.conn = pd_room_conn_id(rc);

    if (pd_register->add(&info) != PD_OK) {
        abort();
    }

    rc->registered = 1;

    c->data = rc;
    c->read->handler = pd_room_read_handler;
    c->write->handler = pd_room_write_handler;
    rc->ws = 1;
    pd_room_log_shared(c);
    rc->taken = 1;
    pd_room_touch(rc);
    pd_event_add_timer(c->read, pd_room_idle(rc));

    *cp = c;
    return rc;
}


/* the end of a loop turn (pd_process_events_and_timers without epoll
 * and timers): what waited for this turn, then the posted writes */
static void
pd_fuzz_turn(void)
{
    pd_queue_t  now;

    pd_event_turn++;

    if (!pd_queue_empty(&pd_posted_next_events)) {
        now.next = pd_posted_next_events.next;
        now.prev = pd_posted_next_events.prev;
        now.next->prev = &now;
        now.prev->next = &now;
        pd_queue_init(&pd_posted_next_events);

        pd_event_process_posted(pd_fuzz_cycle, &now);
    }

    pd_event_process_posted(pd_fuzz_cycle, &pd_posted_events);
}

/*
 * A connection as the listener accepts it: the room's HTTP first, the
 * upgrade (query arguments, token, limits, the register) from the input,
 * then the frames after it.
 */
static void
pd_fuzz_accept(pd_connection_t **cp)
{
    static pd_log_t     log;
    pd_connection_t    *c;
    pd_listening_t     *ls;
    struct sockaddr_in *sin;
    int                 fd;

    ls = pd_fuzz_cycle->listening.elts;

    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    log = pd_fuzz_log;
    c = (fd == -1) ? NULL : pd_get_connection(fd, &log);
    if (c == NULL) {
        abort();
    }

    pd_active_connections++;

    c->pool = pd_create_pool(1024, 1024 * 1024, &log);
    c->log = c->pool ? pd_palloc(c->pool, sizeof(pd_log_t)) : NULL;
    if (c->log == NULL) {
        abort();
    }

    *c->log = pd_fuzz_log;
    c->pool->log = c->log;
    c->number = ++pd_connection_counter;
    c->listening = ls;
    sin = (struct sockaddr_in *) &c->sockaddr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    *cp = c;
    ls->handler(c);
}


/* what the room wrote: whole server frames, each as it must be */
static void
pd_fuzz_check_out(pd_uint_t http)
{
    pd_utf8_state_t   st;
    json_error_t      jerr;
    json_t           *j;
    u_char           *p, *last;
    uint64_t          n;
    pd_uint_t         op, code;
    static const char  ok[] = "HTTP/1.1 101 ";

    p = pd_fuzz_out;
    last = p + pd_fuzz_out_len;

    /* after a handshake: an HTTP answer first; frames only after a 101 */
    if (http && p < last) {
        if (last - p < 9 || memcmp(p, "HTTP/1.1 ", 9) != 0) {
            abort();
        }

        if ((size_t) (last - p) < sizeof(ok) - 1
            || memcmp(p, ok, sizeof(ok) - 1) != 0)
        {
            return;
        }

        p = memmem(p, (size_t) (last - p), "\r\n\r\n", 4);
        if (p == NULL) {
            abort();
        }

        p += 4;
    }

    while (p < last) {
        if (last - p < 2 || !(p[0] & 0x80) || (p[0] & 0x70) || (p[1] & 0x80))
        {
            abort();            /* servers never fragment nor mask */
        }

        op = p[0] & 0x0f;
        n = p[1] & 0x7f;
        p += 2;

        if (n == 126) {
            if (last - p < 2) {
                abort();
            }
            n = ((uint64_t) p[0] << 8) | p[1];
            p += 2;

        } else if (n == 127) {
            abort();            /* nothing the room sends is that large */
        }

        if ((uint64_t) (last - p) < n) {
            abort();
        }

        switch (op) {

        case PD_WS_TEXT:
            pd_utf8_init(&st);
            if (pd_utf8_validate(&st, p, n) != PD_OK
                || pd_utf8_complete(&st) != PD_OK)
            {
                abort();
            }

            j = json_loadb((const char *) p, n, 0, &jerr);
            if (j == NULL || !json_is_object(j)
                || !json_is_string(json_object_get(j, "op")))
            {
                abort();
            }
            json_decref(j);
            break;

        case PD_WS_CLOSE:
            if (n == 1 || n > PD_WS_MAX_CONTROL) {
                abort();
            }

            if (n >= 2) {
                code = ((pd_uint_t) p[0] << 8) | p[1];
                pd_utf8_init(&st);

                if (code < 1000 || code == PD_WS_CLOSE_NO_STATUS
                    || code == PD_WS_CLOSE_ABNORMAL || code >= 5000
                    || pd_utf8_validate(&st, p + 2, n - 2) != PD_OK
                    || pd_utf8_complete(&st) != PD_OK)
                {
                    abort();
                }
            }
            break;

        case PD_WS_PONG:
            if (n > PD_WS_MAX_CONTROL) {
                abort();
            }
            break;

        default:
            abort();
        }

        p += n;
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_connection_t  *c;
    pd_event_t       *ev;
    pd_uint_t         i;
    size_t            left;
    uint8_t           b;

    pd_fuzz_init();

    if (pd_fuzz_cycle == NULL) {
        pd_fuzz_worker();
        /* every plain connection's I/O is the input's */
        pd_conn_ios[0] = &pd_fuzz_io;
    }

    pd_fuzz_rx.p = data;
    pd_fuzz_rx.len = size;
    b = pd_fuzz_byte(&pd_fuzz_rx);
    pd_fuzz_stuck = b & 1;
    pd_fuzz_piece = (b >> 4) ? (size_t) (b >> 4) * 37 : 65536;
    pd_fuzz_eof = 0;
    pd_fuzz_out_len = 0;

    if (b & 2) {
        pd_fuzz_accept(&c);
        pd_fuzz_turn();

    } else {
        (void) pd_fuzz_connect(&c);
    }

    /* turns of the loop: the reads, then what was posted (the flush);
     * until the input is read, or the connection reads no more (it
     * waits to send, or for its close) */
    for (i = 0; c->fd != -1 && (pd_fuzz_rx.len || i == 0); i++) {
        left = pd_fuzz_rx.len;
        c->read->ready = 1;
        c->read->handler(c->read);
        pd_fuzz_turn();

        if (i > 0 && pd_fuzz_rx.len == left) {
            break;
        }
    }

    /* the peer closes; the room cleans up (register, queues, buffers) */
    if (c->fd != -1) {
        pd_fuzz_eof = 1;
        c->read->ready = 1;
        c->read->handler(c->read);
        pd_fuzz_turn();
    }

    /* a peer that reads nothing is left to the connection's timers (a
     * send timeout, the close handshake's backstop): they run out */
    for (i = 0; c->fd != -1 && i < 4; i++) {
        ev = (i % 2) ? c->read : c->write;

        if (pd_timer_node_is_set(&ev->timer)) {
            pd_event_del_timer(ev);
            ev->timedout = 1;
            ev->handler(ev);
            pd_fuzz_turn();
        }
    }

    /* closed, and the register forgot it */
    if (c->fd != -1 || pd_register->count() != 0) {
        fprintf(stderr, "room_op: fd %d, %lu register entries left\n",
                (int) c->fd, (unsigned long) pd_register->count());
        abort();
    }

    pd_fuzz_check_out(b & 2);

    return 0;
}
