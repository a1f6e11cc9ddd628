/*
 * pd_test_loop.h: the worker's event loop in a unit test, bounded: the
 * tests of the clients of real servers (pd_redis, pd_pg, the saver's
 * PostgreSQL log) run loop turns until a condition holds or a deadline
 * passes, never a sleep.  Each test binary includes it once (its
 * functions are static); cmocka's header comes first.  The binary sets
 * pd_test_cycle up (connections, events) and initialises pd_test_tick
 * with pd_test_tick_handler.
 */

#ifndef PD_TEST_LOOP_H
#define PD_TEST_LOOP_H


typedef int (*pd_test_cond_pt)(void *data);


static pd_log_t     pd_test_log = { PD_LOG_STDERR, 2, pd_null_string, 0,
                                    NULL, NULL, NULL };
static pd_cycle_t   pd_test_cycle;
static pd_timer_t   pd_test_tick;


static void
pd_test_tick_handler(pd_timer_t *t)
{
    /* only wakes epoll_wait() so that the condition is polled */
    (void) t;
}


/* runs loop turns until cond(data) holds (1) or ms pass (0) */
static int
pd_test_run(pd_test_cond_pt cond, void *data, pd_msec_t ms)
{
    pd_msec_t  deadline;
    int        ok;

    pd_time_update();
    deadline = pd_current_msec + ms;

    for ( ;; ) {
        ok = cond(data);

        if (ok || pd_current_msec >= deadline) {
            break;
        }

        if (!pd_timer_is_set(&pd_test_tick)) {
            (void) pd_timer_add(&pd_timers, &pd_test_tick, pd_current_msec,
                                10);
        }

        pd_process_events_and_timers(&pd_test_cycle);
    }

    if (pd_timer_is_set(&pd_test_tick)) {
        pd_timer_del(&pd_timers, &pd_test_tick);
    }

    return ok;
}


/* a condition that never holds: pd_test_run(pd_test_never, NULL, ms)
 * runs the loop for ms */
static int
pd_test_never(void *data)
{
    (void) data;
    return 0;
}


#endif /* PD_TEST_LOOP_H */
