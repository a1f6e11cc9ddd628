/*
 * test_pd_seq.c: the node's sequence numbers (pd_seq.c): a run starts
 * above the mark its seq file holds, never hands out a number above the
 * mark written, and the processes of a node, or of two masters on one
 * file, never hand out the same number twice.
 */

#include "pd_core.h"
#include <sys/mman.h>
#include <sys/wait.h>

#include <setjmp.h>
#include <cmocka.h>


static char      pd_test_dir[] = "/tmp/pd_test_seq.XXXXXX";
static char      pd_test_path[PATH_MAX];
static pd_log_t  pd_test_log = { PD_LOG_EMERG, 2, pd_null_string, 0, NULL,
                                 NULL, NULL };


static int
pd_test_setup(void **state)
{
    (void) state;

    if (mkdtemp(pd_test_dir) == NULL) {
        return -1;
    }

    (void) snprintf(pd_test_path, sizeof(pd_test_path), "%s/pushd.seq",
                    pd_test_dir);
    return 0;
}


static int
pd_test_teardown(void **state)
{
    (void) state;

    (void) unlink(pd_test_path);
    return rmdir(pd_test_dir);
}


/* a stats zone as the master makes it, shared with children it forks,
 * its counter at seq (the clock's ms << 12 in life) */
static pd_stats_t *
pd_test_zone(uint64_t seq)
{
    pd_stats_t  *st;

    st = mmap(NULL, sizeof(pd_stats_t), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(st != MAP_FAILED);

    st->seq = seq;
    return st;
}


static uint64_t
pd_test_mark(void)
{
    char     buf[64];
    ssize_t  n;
    int      fd;

    fd = open(pd_test_path, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, buf, sizeof(buf) - 1);
    (void) close(fd);

    assert_int_equal(n, 21);
    assert_int_equal(buf[20], '\n');
    buf[n] = '\0';

    return strtoull(buf, NULL, 10);
}


static void
pd_test_write(const char *text)
{
    int  fd;

    fd = open(pd_test_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    (void) close(fd);
}


static void
pd_test_open(void)
{
    char  err[256];

    assert_int_equal(pd_seq_open(pd_test_path, NULL, err, sizeof(err)),
                     PD_OK);
}


/* a new file: the clock counts, the mark is a block ahead and moves
 * before a number beyond it is handed out */
static void
test_fresh_file_marks_ahead(void **state)
{
    uint64_t  s, last;
    pd_uint_t i;

    (void) state;

    (void) unlink(pd_test_path);
    pd_seq_set_block(16);
    pd_stats = pd_test_zone(1000);
    pd_test_open();
    assert_int_equal(pd_seq_start(&pd_test_log), PD_OK);
    assert_int_equal(pd_test_mark(), 1016);

    last = 1000;

    for (i = 0; i < 100; i++) {
        s = pd_seq_next();
        assert_true(s > last);
        assert_true(s <= pd_test_mark());
        last = s;
    }

    assert_int_equal(last, 1100);
    assert_true(pd_test_mark() >= 1100 && pd_test_mark() <= 1100 + 16);
}


/* the clock stepped back: the run starts above the last run's mark */
static void
test_restart_starts_above_mark(void **state)
{
    (void) state;

    pd_seq_set_block(16);
    pd_test_write("00000000000005000000\n");
    pd_stats = pd_test_zone(1000);
    pd_test_open();
    assert_int_equal(pd_seq_start(&pd_test_log), PD_OK);

    assert_int_equal(pd_seq_next(), 5000001);
    assert_int_equal(pd_test_mark(), 5000016);

    /* and a clock ahead of the mark wins */
    pd_test_write("00000000000000000007\n");
    pd_stats = pd_test_zone(9000);
    pd_test_open();
    assert_int_equal(pd_seq_start(&pd_test_log), PD_OK);
    assert_int_equal(pd_seq_next(), 9001);
}


/* a damaged mark is not a reason to refuse pushes: the clock counts
 * and the file gets a good mark */
static void
test_damaged_file_is_rewritten(void **state)
{
    (void) state;

    pd_seq_set_block(16);
    pd_test_write("12ab\n");
    pd_stats = pd_test_zone(3000);
    pd_test_open();
    assert_int_equal(pd_seq_start(&pd_test_log), PD_OK);
    assert_int_equal(pd_seq_next(), 3001);
    assert_int_equal(pd_test_mark(), 3016);

    pd_test_write("99999999999999999999999\n");    /* above 2^64 */
    pd_stats = pd_test_zone(3000);
    pd_test_open();
    assert_int_equal(pd_seq_start(&pd_test_log), PD_OK);
    assert_int_equal(pd_seq_next(), 3001);
}


static int
pd_test_cmp(const void *a, const void *b)
{
    uint64_t  x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return x < y ? -1 : x > y;
}


/*
 * Two masters on one file (a binary upgrade): each with its own zone.
 * The one that crosses its mark finds the other's above it and counts on
 * from there; no number is handed out by both.
 */
static void
test_two_masters_never_meet(void **state)
{
    pd_stats_t  *a, *b;
    uint64_t     ids[400];
    pd_uint_t    i, n;

    (void) state;

    (void) unlink(pd_test_path);
    pd_seq_set_block(16);

    a = pd_test_zone(1000);
    pd_stats = a;
    pd_test_open();
    assert_int_equal(pd_seq_start(&pd_test_log), PD_OK);

    b = pd_test_zone(1005);    /* its clock barely moved: below a's mark */
    pd_stats = b;
    assert_int_equal(pd_seq_start(&pd_test_log), PD_OK);

    /* in turns, each several blocks through */
    n = 0;

    for (i = 0; i < 200; i++) {
        pd_stats = (i / 7) % 2 ? a : b;
        ids[n++] = pd_seq_next();
        pd_stats = (i / 5) % 2 ? b : a;
        ids[n++] = pd_seq_next();
    }

    qsort(ids, n, sizeof(uint64_t), pd_test_cmp);

    for (i = 1; i < n; i++) {
        assert_true(ids[i] != ids[i - 1]);
    }

    assert_true(pd_test_mark() >= ids[n - 1]);
}


/* the workers of one master share the zone: 4 processes, 20,000
 * numbers each, small blocks, no number twice */
static void
test_workers_share_the_counter(void **state)
{
#define PD_TEST_PROCS  4
#define PD_TEST_EACH   20000
    uint64_t   *out;
    pid_t       pid[PD_TEST_PROCS];
    pd_uint_t   p, i, n;
    int         status;

    (void) state;

    (void) unlink(pd_test_path);
    pd_seq_set_block(64);
    pd_stats = pd_test_zone(1000);
    pd_test_open();
    assert_int_equal(pd_seq_start(&pd_test_log), PD_OK);

    out = mmap(NULL, PD_TEST_PROCS * PD_TEST_EACH * sizeof(uint64_t),
               PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(out != MAP_FAILED);

    for (p = 0; p < PD_TEST_PROCS; p++) {
        pid[p] = fork();
        assert_true(pid[p] >= 0);

        if (pid[p] == 0) {
            for (i = 0; i < PD_TEST_EACH; i++) {
                out[p * PD_TEST_EACH + i] = pd_seq_next();

                /* each process sees its own numbers increase */
                if (i && out[p * PD_TEST_EACH + i]
                         <= out[p * PD_TEST_EACH + i - 1])
                {
                    _exit(2);
                }
            }

            _exit(0);
        }
    }

    for (p = 0; p < PD_TEST_PROCS; p++) {
        assert_int_equal(waitpid(pid[p], &status, 0), pid[p]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }

    n = PD_TEST_PROCS * PD_TEST_EACH;
    qsort(out, n, sizeof(uint64_t), pd_test_cmp);

    for (i = 1; i < n; i++) {
        assert_true(out[i] != out[i - 1]);
    }

    assert_true(pd_test_mark() >= out[n - 1]);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_fresh_file_marks_ahead),
        cmocka_unit_test(test_restart_starts_above_mark),
        cmocka_unit_test(test_damaged_file_is_rewritten),
        cmocka_unit_test(test_two_masters_never_meet),
        cmocka_unit_test(test_workers_share_the_counter),
    };

    return cmocka_run_group_tests(tests, pd_test_setup, pd_test_teardown);
}
