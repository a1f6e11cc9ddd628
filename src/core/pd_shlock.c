/* pd_shlock.c: robust process-shared mutexes for shared-memory zones. */

#include "pd_core.h"


pd_int_t
pd_shlock_init(pthread_mutex_t *m)
{
    int                  err;
    pthread_mutexattr_t  attr;

    err = pthread_mutexattr_init(&attr);
    if (err != 0) {
        errno = err;
        return PD_ERROR;
    }

    err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);

    if (err == 0) {
        err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    }

    if (err == 0) {
        err = pthread_mutex_init(m, &attr);
    }

    (void) pthread_mutexattr_destroy(&attr);

    if (err != 0) {
        errno = err;
        return PD_ERROR;
    }

    return PD_OK;
}


/*
 * A spinlock left held by a SIGKILLed worker would stall every other
 * process for good; a robust mutex hands the next locker EOWNERDEAD
 * instead, and that locker repairs the zone before going on.
 */
pd_int_t
pd_shlock_lock(pthread_mutex_t *m, pd_shlock_repair_pt repair, void *data)
{
    int  err;

    err = pthread_mutex_lock(m);

    if (err == 0) {
        return PD_OK;
    }

    if (err != EOWNERDEAD) {
        return PD_ERROR;
    }

    repair(data);

    if (pthread_mutex_consistent(m) != 0) {
        (void) pthread_mutex_unlock(m);
        return PD_ERROR;
    }

    return PD_OK;
}


void
pd_shlock_unlock(pthread_mutex_t *m)
{
    (void) pthread_mutex_unlock(m);
}
