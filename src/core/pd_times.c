/* pd_times.c: the clock read once per loop turn and shared by everyone. */

#include "pd_core.h"

volatile pd_msec_t   pd_current_msec;
volatile time_t      pd_time_sec;
volatile uint64_t    pd_time_msec;
u_char               pd_log_time[sizeof("1970/09/28 12:00:00")];

/* the second pd_log_time shows; -1 forces the first formatting */
static time_t        pd_log_time_sec = -1;

static u_char *pd_time_put2(u_char *p, int n);


/* CLOCK_MONOTONIC in milliseconds: immune to wall-clock steps */
pd_msec_t
pd_monotonic_msec(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (pd_msec_t) ts.tv_sec * 1000 + (pd_msec_t) ts.tv_nsec / 1000000;
}


/* CLOCK_MONOTONIC in nanoseconds: to time a piece of work within a turn */
uint64_t
pd_monotonic_nsec(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}

/*
 * Refreshes pd_current_msec, pd_time_sec, pd_time_msec and pd_log_time.
 * Called by the loop once per turn (and by the log before the first
 * turn); not from signal handlers: localtime_r() is not
 * async-signal-safe.  The log time is reformatted only when the second
 * changed, which under load is once for thousands of turns.
 */
void
pd_time_update(void)
{
    u_char           *p;
    time_t            sec;
    struct tm         tm;
    struct timespec   ts;

    pd_current_msec = pd_monotonic_msec();

    (void) clock_gettime(CLOCK_REALTIME, &ts);
    sec = ts.tv_sec;
    pd_time_sec = sec;
    pd_time_msec = (uint64_t) sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;

    if (sec == pd_log_time_sec) {
        return;
    }

    pd_log_time_sec = sec;

    (void) localtime_r(&sec, &tm);

    /* by hand: snprintf() would cost more than the rest of the turn */
    p = pd_log_time;
    p = pd_time_put2(p, (tm.tm_year + 1900) / 100);
    p = pd_time_put2(p, (tm.tm_year + 1900) % 100);
    *p++ = '/';
    p = pd_time_put2(p, tm.tm_mon + 1);
    *p++ = '/';
    p = pd_time_put2(p, tm.tm_mday);
    *p++ = ' ';
    p = pd_time_put2(p, tm.tm_hour);
    *p++ = ':';
    p = pd_time_put2(p, tm.tm_min);
    *p++ = ':';
    p = pd_time_put2(p, tm.tm_sec);
    *p = '\0';
}


/* two decimal digits of n (0..99) */
static u_char *
pd_time_put2(u_char *p, int n)
{
    *p++ = (u_char) ('0' + n / 10 % 10);
    *p++ = (u_char) ('0' + n % 10);

    return p;
}
