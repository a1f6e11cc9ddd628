/*
 * test_pd_channel.c: channel messages between processes, as the spawn
 * path sets them up: one worker writes into a sibling's channel and the
 * sibling reads the message, its payload and a passed descriptor.
 */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>

static pd_log_t  pd_test_log = { PD_LOG_EMERG, 2, pd_null_string, 0, NULL,
                                 NULL, NULL };

static void
test_roundtrip_with_payload(void **state)
{
    pd_socket_t       ch[2];
    pd_channel_msg_t  msg, in;
    u_char            data[PD_CHANNEL_BATCH_MAX];
    u_char            payload[1000];
    size_t            i;

    (void) state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, ch), 0);
    assert_int_equal(pd_nonblocking(ch[0]), PD_OK);
    assert_int_equal(pd_nonblocking(ch[1]), PD_OK);

    for (i = 0; i < sizeof(payload); i++) {
        payload[i] = (u_char) (i * 7);
    }

    pd_memzero(&msg, sizeof(msg));
    msg.command = PD_CMD_MODULE_BASE + 1;
    msg.pid = 42;
    msg.slot = 3;
    msg.fd = -1;
    msg.arg = 0x1122334455667788ULL;
    msg.len = sizeof(payload);

    assert_int_equal(pd_write_channel(ch[0], &msg, payload, &pd_test_log),
                     PD_OK);

    /* two messages in a row keep their boundaries */
    msg.len = 0;
    msg.arg = 7;
    assert_int_equal(pd_write_channel(ch[0], &msg, NULL, &pd_test_log),
                     PD_OK);

    assert_int_equal(pd_read_channel(ch[1], &in, data, &pd_test_log), PD_OK);
    assert_int_equal(in.command, PD_CMD_MODULE_BASE + 1);
    assert_int_equal(in.len, sizeof(payload));
    assert_true(in.arg == 0x1122334455667788ULL);
    assert_int_equal(in.fd, -1);
    assert_memory_equal(data, payload, sizeof(payload));

    assert_int_equal(pd_read_channel(ch[1], &in, data, &pd_test_log), PD_OK);
    assert_int_equal(in.len, 0);
    assert_true(in.arg == 7);

    assert_int_equal(pd_read_channel(ch[1], &in, data, &pd_test_log),
                     PD_AGAIN);

    close(ch[0]);
    assert_int_equal(pd_read_channel(ch[1], &in, data, &pd_test_log),
                     PD_ERROR);
    close(ch[1]);
}

static void
test_too_large_refused(void **state)
{
    pd_socket_t       ch[2];
    pd_channel_msg_t  msg;
    static u_char     big[PD_CHANNEL_MAX_DATA + 1];

    (void) state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, ch), 0);

    pd_memzero(&msg, sizeof(msg));
    msg.fd = -1;
    msg.len = sizeof(big);

    assert_int_equal(pd_write_channel(ch[0], &msg, big, &pd_test_log),
                     PD_ERROR);

    close(ch[0]);
    close(ch[1]);
}

/*
 * Worker A (a child) writes to worker B's channel end and passes a pipe's
 * write end along; worker B (another child) reads it and answers through
 * that very descriptor, which the parent reads.
 */
static void
test_worker_to_worker(void **state)
{
    pd_socket_t       chb[2];
    int               pipefd[2], status;
    pid_t             a, b;
    char              reply[64];
    ssize_t           n;

    (void) state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, chb), 0);
    assert_int_equal(pipe(pipefd), 0);

    b = fork();
    assert_true(b >= 0);

    if (b == 0) {
        pd_channel_msg_t  in;
        u_char            data[PD_CHANNEL_BATCH_MAX];
        int               tries;
        pd_int_t          rc;

        close(chb[0]);
        close(pipefd[0]);
        close(pipefd[1]);
        pd_nonblocking(chb[1]);

        for (tries = 0; tries < 5000; tries++) {
            rc = pd_read_channel(chb[1], &in, data, &pd_test_log);
            if (rc != PD_AGAIN) {
                break;
            }
            usleep(1000);
        }

        if (rc != PD_OK || in.fd == -1 || in.len != 5
            || memcmp(data, "hello", 5) != 0)
        {
            _exit(1);
        }

        n = write(in.fd, "pong from b", 11);
        _exit(n == 11 ? 0 : 2);
    }

    a = fork();
    assert_true(a >= 0);

    if (a == 0) {
        pd_channel_msg_t  msg;

        close(chb[1]);
        close(pipefd[0]);

        pd_memzero(&msg, sizeof(msg));
        msg.command = PD_CMD_PING;
        msg.fd = pipefd[1];
        msg.len = 5;

        _exit(pd_write_channel(chb[0], &msg, (u_char *) "hello",
                               &pd_test_log) == PD_OK ? 0 : 1);
    }

    close(chb[0]);
    close(chb[1]);
    close(pipefd[1]);

    assert_int_equal(waitpid(a, &status, 0), a);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(waitpid(b, &status, 0), b);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    n = read(pipefd[0], reply, sizeof(reply));
    assert_int_equal(n, 11);
    assert_memory_equal(reply, "pong from b", 11);
    close(pipefd[0]);
}

/*
 * A worker corks what it sends a sibling in one loop turn: nothing leaves
 * before pd_channel_uncork(), then batches of at most
 * PD_CHANNEL_BATCH_MAX bytes carry every message, in order; a lone
 * message goes as it is.
 */
static void
test_cork_batches(void **state)
{
    static u_char     data[PD_CHANNEL_BATCH_MAX];
    pd_socket_t       ch[2];
    pd_channel_msg_t  in, rec;
    u_char            payload[300], *rdata;
    pd_uint_t         i, next, packets;
    size_t            pos;
    pd_int_t          rc;

    (void) state;

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, ch), 0);
    assert_int_equal(pd_nonblocking(ch[0]), PD_OK);
    assert_int_equal(pd_nonblocking(ch[1]), PD_OK);

    /* this process is slot 0, the sibling slot 1 */
    pd_process_slot = 0;
    pd_last_process = 2;
    pd_processes[0].pid = getpid();
    pd_processes[1].pid = 4242;
    pd_processes[1].channel[0] = ch[0];

    pd_channel_cork();

    for (i = 0; i < 200; i++) {
        memset(payload, (int) i, sizeof(payload));
        assert_int_equal(pd_channel_send_pid(4242, PD_CMD_MODULE_BASE + 2,
                                             i, payload,
                                             sizeof(payload) - (i % 7)),
                         PD_OK);
    }

    /* corked: nothing left yet, apart from the batches that filled up
     * (200 records of about 330 bytes: 2 of 32 KB) */
    packets = 0;
    next = 0;
    while (pd_read_channel(ch[1], &in, data, &pd_test_log) == PD_OK) {
        packets++;
        assert_int_equal(in.command, PD_CMD_BATCH);
        assert_true(in.len > PD_CHANNEL_BATCH_MAX - sizeof(in)
                             - sizeof(payload));
        pos = 0;
        while (pd_channel_batch_next(data, in.len, &pos, &rec, &rdata)
               == PD_OK)
        {
            assert_true(rec.arg == next);
            next++;
        }
    }
    assert_int_equal(packets, 2);

    pd_channel_uncork();

    /* the rest: all 200 came, each once, in order */
    while (pd_read_channel(ch[1], &in, data, &pd_test_log) == PD_OK) {
        assert_int_equal(in.command, PD_CMD_BATCH);
        assert_true(in.len <= PD_CHANNEL_BATCH_MAX);
        pos = 0;
        while ((rc = pd_channel_batch_next(data, in.len, &pos, &rec, &rdata))
               == PD_OK)
        {
            assert_true(rec.arg == next);
            next++;
            assert_int_equal(rec.command, PD_CMD_MODULE_BASE + 2);
            assert_int_equal(rec.len, sizeof(payload) - (rec.arg % 7));
            assert_int_equal(rdata[0], (u_char) rec.arg);
            assert_int_equal(rdata[rec.len - 1], (u_char) rec.arg);
        }
        assert_int_equal(rc, PD_DONE);
    }
    assert_int_equal(next, 200);

    /* one message in a turn goes unwrapped */
    assert_int_equal(pd_channel_send_pid(4242, PD_CMD_MODULE_BASE + 3, 9,
                                         (u_char *) "one", 3), PD_OK);
    assert_int_equal(pd_read_channel(ch[1], &in, data, &pd_test_log),
                     PD_AGAIN);
    pd_channel_uncork();
    assert_int_equal(pd_read_channel(ch[1], &in, data, &pd_test_log), PD_OK);
    assert_int_equal(in.command, PD_CMD_MODULE_BASE + 3);
    assert_int_equal(in.len, 3);
    assert_memory_equal(data, "one", 3);

    pd_processes[1].channel[0] = -1;
    pd_processes[1].pid = -1;
    pd_last_process = 0;
    close(ch[0]);
    close(ch[1]);
}

/* a batch from a confused sender is refused where it goes wrong */
static void
test_batch_malformed(void **state)
{
    u_char            buf[256], *rdata;
    pd_channel_msg_t  m, rec;
    size_t            pos;

    (void) state;

    pd_memzero(&m, sizeof(m));
    m.command = PD_CMD_MODULE_BASE;
    m.fd = -1;
    m.len = 8;
    memcpy(buf, &m, sizeof(m));
    memcpy(buf + sizeof(m), "12345678", 8);

    /* whole: one record, then the end */
    pos = 0;
    assert_int_equal(pd_channel_batch_next(buf, sizeof(m) + 8, &pos, &rec,
                                           &rdata), PD_OK);
    assert_memory_equal(rdata, "12345678", 8);
    assert_int_equal(pd_channel_batch_next(buf, sizeof(m) + 8, &pos, &rec,
                                           &rdata), PD_DONE);

    /* cut in the payload, cut in the header */
    pos = 0;
    assert_int_equal(pd_channel_batch_next(buf, sizeof(m) + 7, &pos, &rec,
                                           &rdata), PD_ERROR);
    pos = 0;
    assert_int_equal(pd_channel_batch_next(buf, sizeof(m) - 1, &pos, &rec,
                                           &rdata), PD_ERROR);

    /* a descriptor cannot ride in a batch, nor a batch in a batch */
    m.fd = 3;
    memcpy(buf, &m, sizeof(m));
    pos = 0;
    assert_int_equal(pd_channel_batch_next(buf, sizeof(m) + 8, &pos, &rec,
                                           &rdata), PD_ERROR);
    m.fd = -1;
    m.command = PD_CMD_BATCH;
    memcpy(buf, &m, sizeof(m));
    pos = 0;
    assert_int_equal(pd_channel_batch_next(buf, sizeof(m) + 8, &pos, &rec,
                                           &rdata), PD_ERROR);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cork_batches),
        cmocka_unit_test(test_batch_malformed),
        cmocka_unit_test(test_roundtrip_with_payload),
        cmocka_unit_test(test_too_large_refused),
        cmocka_unit_test(test_worker_to_worker),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
