/*
 * pd_times.h: the time cached once per event loop turn.
 */

#ifndef PD_TIMES_H
#define PD_TIMES_H

extern volatile pd_msec_t   pd_current_msec;  /* monotonic, ms */
extern volatile time_t      pd_time_sec;      /* wall clock, s */
/* wall clock, ms, of the same reading: what a ttl counts from (with the
 * second alone, an expiry came up to a second early) */
extern volatile uint64_t    pd_time_msec;
extern u_char               pd_log_time[sizeof("1970/09/28 12:00:00")];

void pd_time_update(void);
pd_msec_t pd_monotonic_msec(void);
uint64_t pd_monotonic_nsec(void);

#endif /* PD_TIMES_H */
