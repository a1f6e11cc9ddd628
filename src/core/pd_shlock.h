/*
 * pd_shlock.h: the robust process-shared mutex that guards a zone of
 * shared memory, with a repair hook for when a holder dies holding it.
 */

#ifndef PD_SHLOCK_H
#define PD_SHLOCK_H

#include <pthread.h>

/* rebuilds a zone left half-updated; runs with the mutex held */
typedef void (*pd_shlock_repair_pt)(void *data);

/*
 * Initialises m, which lives in shared memory, as a robust mutex shared
 * between processes.  PD_OK, or PD_ERROR with errno set to what
 * pthread_mutexattr_*() or pthread_mutex_init() failed with.
 */
pd_int_t pd_shlock_init(pthread_mutex_t *m);

/*
 * Locks m.  When its last holder died holding it, repair(data) runs
 * first, then m is marked consistent again; if the repairer dies too,
 * the next locker repairs again, so repair must be idempotent.  PD_OK
 * with m held; PD_ERROR when m is unusable (only a bug can do that: an
 * unlock of an inconsistent mutex, or a relock by its holder).
 */
pd_int_t pd_shlock_lock(pthread_mutex_t *m, pd_shlock_repair_pt repair,
    void *data);

void pd_shlock_unlock(pthread_mutex_t *m);

#endif /* PD_SHLOCK_H */
