/*
 * pd_seq.c: the node's sequence numbers, kept unique across its runs by
 * a mark in a file (seq_file).
 *
 * A run starts its counter at the wall clock's ms << 12, so that a
 * restart counts on above the last run, unless the clock stepped back
 * between the runs (a VM restored, NTP correcting a bad RTC at boot).
 * Then a restarted node handed out ids it had given before: a client
 * that drops ids it has seen (the SDK's DedupWindow) dropped new
 * messages, and the cluster's durable log kept the old row of an id
 * stored again (its retry is ON CONFLICT DO NOTHING).
 *
 * So the numbers a run may hand out are reserved in advance, a block
 * at a time: the file holds a mark above every number handed out, and
 * a run starts above the mark.  The block is large (2^32: at 100,000
 * messages a second, half a day), so the file is written at start and
 * then rarely, synchronously, by the process that crosses the mark,
 * before it uses its number; the hot path is an atomic add and two
 * compares.  A run that crashed skips the rest of its block.
 *
 * Within the node the processes share the counter in the stats zone and
 * take the zone's lock to move the mark.  The file's own lock (flock)
 * keeps apart the two masters of a binary upgrade, each with its own
 * zone and its own open file: the one that crosses its mark and finds a
 * higher one in the file (the other master's) jumps above it, and
 * numbers taken under the old mark and not yet used are taken again.
 */

#include "pd_core.h"
#include <sys/file.h>

/* the mark: 20 digits and a newline, written in place */
#define PD_SEQ_MARK_LEN  21

static pd_fd_t    pd_seq_fd = PD_INVALID_FILE;
static uint64_t   pd_seq_block = PD_SEQ_BLOCK;

static uint64_t pd_seq_extend(uint64_t s);
static pd_uint_t pd_seq_flock(void);
static pd_int_t pd_seq_read(uint64_t *mark);
static pd_int_t pd_seq_write(uint64_t mark);
static void pd_seq_repair(void *data);


pd_int_t
pd_seq_open(const char *path, const pd_file_guard_t *guard, char *err,
    size_t len)
{
    char  why[PD_MAX_ERROR_STR / 2];

    if (pd_seq_fd != PD_INVALID_FILE) {
        (void) close(pd_seq_fd);
    }

    pd_seq_fd = pd_file_open_own(path, O_RDWR | O_CREAT, 0, guard, NULL,
                                 why, sizeof(why));
    if (pd_seq_fd == PD_INVALID_FILE) {
        (void) snprintf(err, len, "cannot open the seq file \"%s\": %s",
                        path, why);
        return PD_ERROR;
    }

    return PD_OK;
}


pd_int_t
pd_seq_start(pd_log_t *log)
{
    pd_stats_t  *st = pd_stats;
    uint64_t     mark, limit;
    pd_int_t     rc;
    pd_uint_t    locked;

    if (pd_shlock_init(&st->seq_lock) != PD_OK) {
        pd_log_error(PD_LOG_EMERG, log, errno, "the seq lock cannot be made");
        return PD_ERROR;
    }

    if (pd_seq_fd == PD_INVALID_FILE) {
        st->seq_limit = UINT64_MAX;
        return PD_OK;
    }

    locked = pd_seq_flock();

    if (pd_seq_read(&mark) != PD_OK) {
        pd_log_error(PD_LOG_ALERT, log, 0, "the seq file holds no mark: "
                     "ids start from the clock alone");
        mark = 0;
    }

    if (mark > st->seq) {
        st->seq = mark;
    }

    st->seq_floor = st->seq;
    limit = st->seq + pd_seq_block;
    rc = pd_seq_write(limit);

    if (locked) {
        (void) flock(pd_seq_fd, LOCK_UN);
    }

    if (rc != PD_OK) {
        pd_log_error(PD_LOG_EMERG, log, errno,
                     "the seq file cannot be written");
        return PD_ERROR;
    }

    st->seq_limit = limit;
    return PD_OK;
}


uint64_t
pd_seq_next(void)
{
    pd_stats_t  *st = pd_stats;
    uint64_t     s;

    s = __atomic_add_fetch(&st->seq, 1, __ATOMIC_RELAXED);

    /* the floor is read after the limit: a mark moved by a jump above
     * another master's shows both (pd_seq_extend stores them in the
     * other order) */
    if (s <= __atomic_load_n(&st->seq_limit, __ATOMIC_ACQUIRE)
        && s > __atomic_load_n(&st->seq_floor, __ATOMIC_RELAXED))
    {
        return s;
    }

    return pd_seq_extend(s);
}


static uint64_t
pd_seq_extend(uint64_t s)
{
    pd_stats_t  *st = pd_stats;
    uint64_t     mark, limit, cur;
    pd_uint_t    locked;

    for ( ;; ) {
        if (pd_shlock_lock(&st->seq_lock, pd_seq_repair, NULL) != PD_OK) {
            /* only a bug: the number is still this node's next */
            return s;
        }

        limit = st->seq_limit;

        if (s <= limit && s > st->seq_floor) {
            pd_shlock_unlock(&st->seq_lock);
            return s;
        }

        if (s <= limit) {
            /* taken under a mark another master had already passed */
            pd_shlock_unlock(&st->seq_lock);
            s = __atomic_add_fetch(&st->seq, 1, __ATOMIC_RELAXED);
            continue;
        }

        if (pd_seq_fd == PD_INVALID_FILE) {
            /* no file (a test's process): the clock alone counts */
            __atomic_store_n(&st->seq_limit, UINT64_MAX, __ATOMIC_RELEASE);
            pd_shlock_unlock(&st->seq_lock);
            return s;
        }

        locked = pd_seq_flock();

        if (pd_seq_read(&mark) == PD_OK && mark > limit) {

            /* another master reserved up to mark: count on above it */
            cur = __atomic_load_n(&st->seq, __ATOMIC_RELAXED);
            while (cur < mark
                   && !__atomic_compare_exchange_n(&st->seq, &cur, mark, 0,
                                                   __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED))
            {
                /* cur reloaded */
            }

            __atomic_store_n(&st->seq_floor, mark, __ATOMIC_RELEASE);
            s = __atomic_add_fetch(&st->seq, 1, __ATOMIC_RELAXED);
            limit = mark;
        }

        limit = pd_max(limit, s) + pd_seq_block;

        if (pd_seq_write(limit) != PD_OK) {
            /* the ids go on: a stop here would lose every push, a
             * repeat needs this failure, a crash and the clock stepped
             * back past a block */
            pd_log_error(PD_LOG_ALERT, pd_log_root, errno,
                         "the seq file cannot be written: its mark is "
                         "behind the ids handed out");
        }

        if (locked) {
            (void) flock(pd_seq_fd, LOCK_UN);
        }

        __atomic_store_n(&st->seq_limit, limit, __ATOMIC_RELEASE);
        pd_shlock_unlock(&st->seq_lock);

        return s;
    }
}


/* the mark in the file; PD_OK with 0 for an empty file */
static pd_int_t
pd_seq_read(uint64_t *mark)
{
    u_char    buf[PD_SEQ_MARK_LEN + 1], *p;
    ssize_t   n;
    uint64_t  v;

    n = pread(pd_seq_fd, buf, sizeof(buf) - 1, 0);
    if (n < 0) {
        return PD_ERROR;
    }

    if (n == 0) {
        *mark = 0;
        return PD_OK;
    }

    v = 0;

    for (p = buf; p < buf + n && *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10) {
            return PD_ERROR;
        }

        v = v * 10 + (uint64_t) (*p - '0');
    }

    if (p == buf || p == buf + n || *p != '\n') {
        return PD_ERROR;
    }

    *mark = v;
    return PD_OK;
}


static pd_int_t
pd_seq_write(uint64_t mark)
{
    char  buf[PD_SEQ_MARK_LEN + 1];

    (void) snprintf(buf, sizeof(buf), "%020llu\n", (unsigned long long) mark);

    if (pwrite(pd_seq_fd, buf, PD_SEQ_MARK_LEN, 0) != PD_SEQ_MARK_LEN
        || fdatasync(pd_seq_fd) == -1)
    {
        return PD_ERROR;
    }

    return PD_OK;
}


/*
 * The file's lock, waited for at most about two seconds.  Its owner is
 * the open file, which a master's processes share: it keeps apart only
 * the two masters of an upgrade, and a process of one that died holding
 * it leaves it held (until pd_seq_repair): then the mark is moved
 * without it, logged, rather than the other master hanging.
 */
static pd_uint_t
pd_seq_flock(void)
{
    pd_uint_t  i;

    for (i = 0; i < 200; i++) {
        if (flock(pd_seq_fd, LOCK_EX | LOCK_NB) == 0) {
            return 1;
        }

        if (errno != EWOULDBLOCK && errno != EINTR) {
            break;
        }

        (void) usleep(10000);
    }

    pd_log_error(PD_LOG_ALERT, pd_log_root, errno,
                 "the seq file's lock is not free: its mark moves without it");
    return 0;
}


/* a holder that died left the limit and the floor as they were, or with
 * the limit moved after the file; it may have held the file's lock,
 * which is this master's open file's, so any of its processes lets go */
static void
pd_seq_repair(void *data)
{
    (void) data;

    if (pd_seq_fd != PD_INVALID_FILE) {
        (void) flock(pd_seq_fd, LOCK_UN);
    }
}


void
pd_seq_set_block(uint64_t block)
{
    pd_seq_block = block;
}
