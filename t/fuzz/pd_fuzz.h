/*
 * pd_fuzz.h: what every libFuzzer target (t/fuzz/<target>.c) shares: a
 * log that formats every line, as the daemon would, into /dev/null
 * (stderr with PD_FUZZ_LOG set), and a reader that takes the fuzzer's
 * bytes a piece at a time.
 */

#ifndef PD_FUZZ_H
#define PD_FUZZ_H

#include "pd_core.h"

#include <fcntl.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pd_log_t  pd_fuzz_log;

/* once per process: the log, the clock */
static inline void
pd_fuzz_init(void)
{
    static int  done;

    if (done) {
        return;
    }

    done = 1;
    pd_fuzz_log.log_level = PD_LOG_DEBUG;
    /* PD_FUZZ_LOG=1: to stderr, to see what a run of one input did */
    pd_fuzz_log.fd = getenv("PD_FUZZ_LOG") ? STDERR_FILENO
                     : open("/dev/null", O_WRONLY | O_CLOEXEC);
    pd_log_root = &pd_fuzz_log;
    pd_time_update();
}

/* the input, consumed from the front */
typedef struct {
    const uint8_t  *p;
    size_t          len;
} pd_fuzz_in_t;

static inline uint8_t
pd_fuzz_byte(pd_fuzz_in_t *in)
{
    uint8_t  b;

    if (in->len == 0) {
        return 0;
    }

    b = *in->p++;
    in->len--;
    return b;
}

/*
 * A copy of the next n bytes (at most what is left) in memory of its own
 * and of exactly that size, so that ASan sees a read one past the end.
 */
static inline u_char *
pd_fuzz_copy(pd_fuzz_in_t *in, size_t n, size_t *len)
{
    u_char  *p;

    n = pd_min(n, in->len);
    p = malloc(n ? n : 1);

    if (p == NULL) {
        abort();
    }

    memcpy(p, in->p, n);
    in->p += n;
    in->len -= n;
    *len = n;

    return p;
}

#endif /* PD_FUZZ_H */
