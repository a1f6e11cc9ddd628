/*
 * pd_process_cycle.c: the master's supervision loop (spawn, reap,
 * respawn, reload, stop) and the workers' event loop and retirement.
 */

#include "pd_core.h"

sig_atomic_t  pd_reap;
sig_atomic_t  pd_sigio;
sig_atomic_t  pd_sigalrm;
sig_atomic_t  pd_quit;
sig_atomic_t  pd_terminate;
sig_atomic_t  pd_reconfigure;
sig_atomic_t  pd_reopen;
sig_atomic_t  pd_noaccept;
sig_atomic_t  pd_change_binary;     /* USR2: exec the new binary */

/* the new binary's master while it runs (a child of this one), or 0 */
static pid_t  pd_new_binary;
/* WINCH: the workers stopped accepting (the new binary's take over) */
static pd_uint_t  pd_noaccepting;

pd_uint_t     pd_process;
pd_uint_t     pd_exiting;
pd_uint_t     pd_exit_holds;

/* worker_shutdown_timeout passed: the holds are no longer waited for */
static pd_uint_t   pd_shutdown_expired;
static pd_cycle_t  *pd_shutdown_cycle;    /* the retiring worker's */

char          pd_master_title[512];

/* the master's pid, as its workers inherit it */
static pid_t  pd_master_pid;

static void pd_start_worker_processes(pd_cycle_t *cycle);
static void pd_signal_worker_processes(pd_cycle_t *cycle, int signo,
    pd_int_t generation);
static pd_uint_t pd_reap_children(pd_cycle_t *cycle);
static void pd_master_process_exit(pd_cycle_t *cycle);
static void pd_worker_process_cycle(pd_cycle_t *cycle, void *data);
static void pd_worker_process_init(pd_cycle_t *cycle, pd_int_t wslot);
static void pd_worker_process_exit(pd_cycle_t *cycle);
static void pd_channel_handler(pd_event_t *ev);
static void pd_channel_command(pd_cycle_t *cycle, pd_channel_msg_t *msg,
    u_char *data);
static void pd_worker_retire(pd_cycle_t *cycle);
static void pd_shutdown_timer_handler(pd_timer_t *t);

static pd_timer_t  pd_shutdown_timer;
static pd_timer_t  pd_trim_timer;

/*
 * Handshakes take a few KB each for a moment (request buffer, parser
 * state); once a burst of them is over, the heap holds those freed
 * chunks between the small long-lived ones.  Giving free pages back now
 * and then keeps idle connections cheap in resident memory.
 */
static void
pd_trim_handler(pd_timer_t *t)
{
    static pd_uint_t  last;

    if (pd_connection_counter != last) {
        last = pd_connection_counter;
        (void) malloc_trim(0);
    }

    (void) pd_timer_add(&pd_timers, t, pd_current_msec, 1000);
}

void
pd_master_process_cycle(pd_cycle_t *cycle)
{
    pd_cycle_t        *new_cycle;
    sigset_t           set;
    struct itimerval   itv;
    pd_uint_t          live;
    pd_msec_t          delay;
    u_char             errbuf[PD_CONF_ERRSTR_SIZE];

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGALRM);
    sigaddset(&set, SIGIO);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGWINCH);

    /* signals are taken only inside sigsuspend(): no flag is missed */
    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1) {
        pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                     "sigprocmask() failed");
    }

    sigemptyset(&set);

    pd_setproctitle(pd_master_title);

    pd_master_pid = getpid();
    pd_init_process_table();
    pd_start_worker_processes(cycle);

    /* a new binary: the old master's workers and ours meet */
    pd_upgrade_start(cycle);

    delay = 0;
    live = 1;

    for ( ;; ) {
        if (delay) {
            if (pd_sigalrm) {
                delay *= 2;
                pd_sigalrm = 0;
            }

            itv.it_interval.tv_sec = 0;
            itv.it_interval.tv_usec = 0;
            itv.it_value.tv_sec = (time_t) (delay / 1000);
            itv.it_value.tv_usec = (suseconds_t) ((delay % 1000) * 1000);

            if (setitimer(ITIMER_REAL, &itv, NULL) == -1) {
                pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                             "setitimer() failed");
            }
        }

        sigsuspend(&set);

        pd_time_update();

        if (pd_reap) {
            pd_reap = 0;
            live = pd_reap_children(cycle);
        }

        if (!live && (pd_terminate || pd_quit)) {
            pd_master_process_exit(cycle);
        }

        if (pd_terminate) {
            if (delay == 0) {
                delay = 50;
            }

            if (delay > 1000) {
                pd_signal_worker_processes(cycle, SIGKILL, -1);
            } else {
                pd_signal_worker_processes(cycle, SIGTERM, -1);
            }

            continue;
        }

        if (pd_sigio) {
            pd_sigio = 0;
            pd_upgrade_read(cycle);
        }

        if (pd_quit) {
            /* the other master's workers, if any, take our clients */
            pd_upgrade_successors(cycle);
            pd_signal_worker_processes(cycle, SIGQUIT, -1);
            pd_close_listening_sockets(cycle);
            continue;
        }

        if (pd_reconfigure) {
            pd_reconfigure = 0;

            pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "reconfiguring");

            new_cycle = pd_init_cycle(cycle, errbuf, sizeof(errbuf));
            if (new_cycle == NULL) {
                pd_log_error(PD_LOG_EMERG, cycle->log, 0,
                             "%s; the old configuration keeps running",
                             errbuf);
                continue;
            }

            cycle = new_cycle;
            pd_cycle = cycle;

            /* after WINCH, a rollback: new workers accept again */
            pd_noaccepting = 0;

            pd_start_worker_processes(cycle);
            pd_signal_worker_processes(cycle, SIGQUIT,
                                       (pd_int_t) cycle->generation);
            live = 1;
        }

        if (pd_reopen) {
            pd_reopen = 0;
            pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "reopening logs");
            pd_reopen_files(cycle);
            pd_signal_worker_processes(cycle, SIGUSR1, -1);
        }

        if (pd_change_binary) {
            pd_change_binary = 0;

            if (pd_new_binary) {
                pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "SIGUSR2 "
                             "ignored: the new binary %d runs already",
                             (int) pd_new_binary);
            } else {
                pd_log_error(PD_LOG_NOTICE, cycle->log, 0,
                             "changing binary");
                pd_new_binary = pd_exec_new_binary(cycle);
                if (pd_new_binary == -1) {
                    pd_new_binary = 0;
                }
            }
        }

        if (pd_noaccept) {
            pd_noaccept = 0;
            pd_noaccepting = 1;
            pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "the workers stop "
                         "accepting; their clients stay");
            pd_signal_worker_processes(cycle, SIGWINCH, -1);
        }
    }
}

static void
pd_start_worker_processes(pd_cycle_t *cycle)
{
    pd_core_conf_t  *ccf;
    pd_uint_t        i, n;

    ccf = pd_get_conf(cycle, pd_core_module);
    n = pd_worker_count(ccf);

    pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "start %lu worker processes",
                 (unsigned long) n);

    for (i = 0; i < n; i++) {
        if (pd_spawn_process(cycle, pd_worker_process_cycle,
                             (void *) (intptr_t) i, "worker process",
                             PD_PROCESS_RESPAWN) == -1)
        {
            continue;
        }

        pd_pass_open_channel(cycle, pd_process_slot);
    }
}

/* tells every other live process about the new one's channel */
void
pd_pass_open_channel(pd_cycle_t *cycle, pd_int_t slot)
{
    pd_channel_msg_t  msg;
    pd_process_t     *np;
    pd_int_t          i;

    np = &pd_processes[slot];

    msg.command = PD_CMD_OPEN_CHANNEL;
    msg.pid = np->pid;
    msg.slot = (int32_t) slot;
    msg.fd = np->channel[0];
    msg.arg = ((uint64_t) np->generation << 16) | (uint64_t) np->wslot;
    msg.len = 0;

    for (i = 0; i < pd_last_process; i++) {
        if (i == slot || pd_processes[i].pid == -1
            || pd_processes[i].channel[0] == -1 || pd_processes[i].foreign)
        {
            continue;
        }

        (void) pd_write_channel(pd_processes[i].channel[0], &msg, NULL,
                                cycle->log);
    }

    if (!np->foreign) {
        /* and the other master, during a binary upgrade */
        pd_upgrade_announce(cycle, slot);
    }
}

/* generation -1: every worker; otherwise all but that generation */
static void
pd_signal_worker_processes(pd_cycle_t *cycle, int signo,
    pd_int_t generation)
{
    pd_channel_msg_t   msg;
    pd_process_t      *p;
    pd_int_t           i;

    pd_memzero(&msg, sizeof(msg));
    msg.fd = -1;

    switch (signo) {
    case SIGQUIT:
        msg.command = PD_CMD_QUIT;
        break;
    case SIGTERM:
        msg.command = PD_CMD_TERMINATE;
        break;
    case SIGUSR1:
        msg.command = PD_CMD_REOPEN;
        break;
    case SIGWINCH:
        msg.command = PD_CMD_NOACCEPT;
        break;
    default:
        msg.command = 0;
    }

    for (i = 0; i < pd_last_process; i++) {
        p = &pd_processes[i];

        if (p->pid == -1 || p->exited || p->foreign) {
            continue;
        }

        if (generation != -1 && p->generation == (pd_uint_t) generation) {
            continue;
        }

        if (p->exiting && signo == SIGQUIT) {
            continue;
        }

        if (msg.command && p->channel[0] != -1
            && pd_write_channel(p->channel[0], &msg, NULL, cycle->log)
               == PD_OK)
        {
            if (signo == SIGQUIT || signo == SIGTERM) {
                p->exiting = 1;
            }
            continue;
        }

        if (kill(p->pid, signo) == -1) {
            pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                         "kill(%d, %d) failed", (int) p->pid, signo);
            continue;
        }

        if (signo != SIGUSR1 && signo != SIGWINCH) {
            p->exiting = 1;
        }
    }
}

/* returns 1 while any worker is alive */
static pd_uint_t
pd_reap_children(pd_cycle_t *cycle)
{
    pd_channel_msg_t   msg;
    pd_process_t      *p;
    pd_int_t           i, j;
    pd_uint_t          live;
    pid_t              pid;
    int                status;

    for ( ;; ) {
        pid = waitpid(-1, &status, WNOHANG);

        if (pid <= 0) {
            break;
        }

        if (pid == pd_new_binary) {
            /* a failed upgrade, or the rollback's QUIT to the new one */
            pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "the new binary %d "
                         "exited (status %d): this master is the one again",
                         (int) pid, status);
            pd_new_binary = 0;
            pd_pidfile_rename_back(cycle->log);

            if (pd_noaccepting) {
                /* nobody accepts now: workers again, as on HUP */
                pd_reconfigure = 1;
            }
            continue;
        }

        for (i = 0; i < pd_last_process; i++) {
            p = &pd_processes[i];

            if (p->pid != pid) {
                continue;
            }

            p->status = status;
            p->exited = 1;

            if (WIFSIGNALED(status)) {
                pd_log_error(PD_LOG_ALERT, cycle->log, 0,
                             "%s %d exited on signal %d%s", p->name,
                             (int) pid, WTERMSIG(status),
                             WCOREDUMP(status) ? " (core dumped)" : "");

            } else if (WEXITSTATUS(status) != 0) {
                pd_log_error(PD_LOG_ALERT, cycle->log, 0,
                             "%s %d exited with fatal code %d", p->name,
                             (int) pid, WEXITSTATUS(status));

            } else {
                pd_log_error(PD_LOG_NOTICE, cycle->log, 0,
                             "%s %d exited with code 0", p->name, (int) pid);
            }

            pd_stats_release(i);

            for (j = 0; pd_modules[j] != NULL; j++) {
                if (pd_modules[j]->worker_exited && cycle->enabled[j]) {
                    pd_modules[j]->worker_exited(cycle, pid);
                }
            }

            break;
        }
    }

    live = 0;

    for (i = 0; i < pd_last_process; i++) {
        p = &pd_processes[i];

        if (p->pid == -1 || p->foreign) {
            continue;
        }

        if (!p->exited) {
            live = 1;
            continue;
        }

        pd_upgrade_gone(p->pid);

        /* tell the siblings this channel is gone */
        msg.command = PD_CMD_CLOSE_CHANNEL;
        msg.pid = p->pid;
        msg.slot = (int32_t) i;
        msg.fd = -1;
        msg.arg = 0;
        msg.len = 0;

        for (j = 0; j < pd_last_process; j++) {
            if (j != i && pd_processes[j].pid != -1
                && !pd_processes[j].exited && !pd_processes[j].foreign
                && pd_processes[j].channel[0] != -1)
            {
                (void) pd_write_channel(pd_processes[j].channel[0], &msg,
                                        NULL, cycle->log);
            }
        }

        pd_close_channel(p->channel, cycle->log);

        if (p->respawn && !p->exiting && !pd_terminate && !pd_quit
            && p->generation == cycle->generation)
        {
            if (pd_spawn_process(cycle, p->proc, p->data, p->name, i)
                == -1)
            {
                pd_log_error(PD_LOG_ALERT, cycle->log, 0,
                             "could not respawn %s", p->name);
                p->pid = -1;
                continue;
            }

            pd_pass_open_channel(cycle, pd_process_slot);
            live = 1;
            continue;
        }

        p->pid = -1;

        if (i == pd_last_process - 1) {
            pd_last_process--;
        }
    }

    return live;
}

static void
pd_master_process_exit(pd_cycle_t *cycle)
{
    pd_uint_t  i;

    pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "exit");

    for (i = 0; pd_modules[i] != NULL; i++) {
        if (pd_modules[i]->exit_master && cycle->enabled[i]) {
            pd_modules[i]->exit_master(cycle);
        }
    }

    /* the ports go before the lock: a new master may start once it is free */
    pd_close_listening_sockets(cycle);
    pd_pidfile_delete(cycle->log);
    pd_destroy_cycle(cycle);

    exit(0);
}

static void
pd_worker_process_cycle(pd_cycle_t *cycle, void *data)
{
    pd_int_t  wslot = (pd_int_t) (intptr_t) data;
    char      title[64];

    pd_process = PD_PROCESS_WORKER;
    pd_worker = wslot;

    pd_worker_process_init(cycle, wslot);

    snprintf(title, sizeof(title), "pushd: worker process");
    pd_setproctitle(title);

    for ( ;; ) {

        if (pd_exiting && pd_active_connections == 0
            && (pd_exit_holds == 0 || pd_shutdown_expired))
        {
            pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "exiting");
            pd_worker_process_exit(cycle);
        }

        pd_process_events_and_timers(cycle);

        /* what this turn handed to siblings leaves in one packet each,
         * then the answers that must follow it (their writes may cork
         * nothing more: a next request waits for the next turn) */
        pd_channel_uncork();
        pd_event_process_posted(cycle, &pd_posted_answers);
        pd_channel_uncork();

        if (pd_terminate) {
            pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "exiting");
            pd_worker_process_exit(cycle);
        }

        if (pd_quit) {
            pd_quit = 0;

            if (!pd_exiting) {
                pd_worker_retire(cycle);
            }
        }

        if (pd_reopen) {
            pd_reopen = 0;
            pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "reopening logs");
            pd_reopen_files(cycle);
        }
    }
}

static void
pd_worker_process_init(pd_cycle_t *cycle, pd_int_t wslot)
{
    pd_shm_zone_t   *zone;
    pd_core_conf_t  *ccf;
    sigset_t         set;
    struct rlimit    rlmt;
    cpu_set_t        cpus;
    pd_int_t         n;
    pd_uint_t        i;

    ccf = pd_get_conf(cycle, pd_core_module);

    /* a worker left draining by a dead master must not hold the lock */
    pd_pidfile_close();
    pd_upgrade_worker_init();

    pd_stats_claim(pd_process_slot, wslot, cycle->generation);

    zone = cycle->shared_memory.elts;
    for (i = 0; i < cycle->shared_memory.nelts; i++) {
        pd_shm_map_resident(&zone[i].shm);
    }

    if (ccf->worker_rlimit_nofile != PD_CONF_UNSET) {
        rlmt.rlim_cur = (rlim_t) ccf->worker_rlimit_nofile;
        rlmt.rlim_max = (rlim_t) ccf->worker_rlimit_nofile;

        if (setrlimit(RLIMIT_NOFILE, &rlmt) == -1) {
            pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                         "setrlimit(RLIMIT_NOFILE, %ld) failed",
                         (long) ccf->worker_rlimit_nofile);
        }
    }

    if (geteuid() == 0 && ccf->uid != (uid_t) -1) {
        if (setgid(ccf->gid) == -1) {
            pd_log_error(PD_LOG_EMERG, cycle->log, errno,
                         "setgid(%d) failed", (int) ccf->gid);
            exit(2);
        }

        if (initgroups(ccf->user_name, ccf->gid) == -1)
        {
            pd_log_error(PD_LOG_EMERG, cycle->log, errno,
                         "setgroups() failed");
            exit(2);
        }

        if (setuid(ccf->uid) == -1) {
            pd_log_error(PD_LOG_EMERG, cycle->log, errno,
                         "setuid(%d) failed", (int) ccf->uid);
            exit(2);
        }
    }

    /*
     * A worker must not outlive its master: nobody would supervise or
     * stop it, and it would keep the ports.  The channel gives no EOF
     * (the siblings hold its other end too), so the kernel tells us with
     * SIGQUIT, a graceful stop.  Set after setuid(), which clears it; a
     * master that died before is seen here.
     */
    if (prctl(PR_SET_PDEATHSIG, SIGQUIT) == -1) {
        pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                     "prctl(PR_SET_PDEATHSIG) failed");
    }

    if (getppid() != pd_master_pid) {
        pd_log_error(PD_LOG_ALERT, cycle->log, 0,
                     "the master is gone, exiting");
        exit(2);
    }

    if (ccf->worker_cpu_affinity == 1 && pd_ncpu > 1) {
        CPU_ZERO(&cpus);
        CPU_SET((int) ((pd_uint_t) wslot % pd_ncpu), &cpus);

        if (sched_setaffinity(0, sizeof(cpu_set_t), &cpus) == -1) {
            pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                         "sched_setaffinity() failed");
        }
    }

    sigemptyset(&set);
    if (sigprocmask(SIG_SETMASK, &set, NULL) == -1) {
        pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                     "sigprocmask() failed");
    }

    srandom((unsigned) (pd_pid ^ (pid_t) pd_current_msec));

    if (pd_connection_init_array(cycle, ccf->worker_connections) != PD_OK
        || pd_event_init(cycle) != PD_OK)
    {
        exit(2);
    }

    pd_close_other_workers_listening(cycle, wslot);

    if (pd_enable_accept_events(cycle) != PD_OK) {
        exit(2);
    }

    /* keep the siblings' writing ends; the readers are theirs */
    for (n = 0; n < pd_last_process; n++) {
        if (pd_processes[n].pid == -1 || n == pd_process_slot) {
            continue;
        }

        if (pd_processes[n].channel[1] != -1) {
            close(pd_processes[n].channel[1]);
            pd_processes[n].channel[1] = -1;
        }
    }

    if (close(pd_processes[pd_process_slot].channel[0]) == -1) {
        pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                     "close() channel failed");
    }
    pd_processes[pd_process_slot].channel[0] = -1;
    pd_processes[pd_process_slot].pid = pd_pid;
    pd_processes[pd_process_slot].wslot = wslot;
    pd_processes[pd_process_slot].generation = cycle->generation;

    if (pd_add_channel_event(cycle, pd_channel, pd_channel_handler)
        != PD_OK)
    {
        exit(2);
    }

    pd_http_init_process();

    pd_channel_cork();

    for (i = 0; pd_modules[i] != NULL; i++) {
        if (pd_modules[i]->init_process && cycle->enabled[i]
            && pd_modules[i]->init_process(cycle) != PD_OK)
        {
            exit(2);
        }
    }

    pd_timer_init(&pd_trim_timer, pd_trim_handler);
    (void) pd_timer_add(&pd_timers, &pd_trim_timer, pd_current_msec, 1000);
}

static void
pd_worker_process_exit(pd_cycle_t *cycle)
{
    pd_connection_t  *c;
    pd_uint_t         i;

    for (i = 0; pd_modules[i] != NULL; i++) {
        if (pd_modules[i]->exit_process && cycle->enabled[i]) {
            pd_modules[i]->exit_process(cycle);
        }
    }

    if (pd_exiting) {
        c = cycle->connections;
        for (i = 0; i < cycle->connection_top; i++) {
            if (c[i].fd != -1 && !c[i].shared) {
                pd_log_error(PD_LOG_ALERT, cycle->log, 0,
                             "*%lu open socket left in connection %lu",
                             (unsigned long) c[i].number, (unsigned long) i);
            }
        }
    }

    exit(0);
}

/*
 * Retirement: stop accepting (the sockets live on in the master and the
 * next generation), hand the HTTP connections with no request being
 * answered to the next generation, let modules send their clients away
 * (or hand them over), and arm the shutdown timer as the backstop.
 */
static void
pd_worker_retire(pd_cycle_t *cycle)
{
    pd_core_conf_t   *ccf;
    pd_connection_t  *c;
    pd_queue_t       *q;
    pd_uint_t         i;

    ccf = pd_get_conf(cycle, pd_core_module);

    pd_exiting = 1;
    pd_setproctitle("pushd: worker process is shutting down");
    pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "gracefully shutting down");

    pd_close_listening_sockets(cycle);

    /*
     * On a reload or an upgrade's QUIT, the plain HTTP connections with
     * no request being answered go to the next generation, so none is
     * closed under a late request (pd_http.c).  First: they are few and
     * small, and the room's hand-over may fill the channel next.
     */
    pd_http_retire(cycle);

    for (i = 0; pd_modules[i] != NULL; i++) {
        if (pd_modules[i]->retire_process && cycle->enabled[i]) {
            pd_modules[i]->retire_process(cycle);
        }
    }

    /*
     * Idle keep-alive connections left here (TLS ones, or no next
     * generation) are not closed now: a client may have written its
     * next request at this very moment, and closing would lose it (with
     * a RST that may not even say so).  They stay open through the
     * grace; a request on one is answered with "Connection: close"
     * (pd_http_process sees pd_exiting), and the shutdown timer closes
     * those still idle at its end.  They leave the reusable queue,
     * which only slot pressure walks.
     */
    while (!pd_queue_empty(&cycle->reusable_connections)) {
        q = pd_queue_head(&cycle->reusable_connections);
        c = pd_queue_data(q, pd_connection_t, queue);

        pd_queue_remove(q);
        c->reusable = 0;
    }

    pd_shutdown_cycle = cycle;
    pd_timer_init(&pd_shutdown_timer, pd_shutdown_timer_handler);
    (void) pd_timer_add(&pd_timers, &pd_shutdown_timer, pd_current_msec,
                        ccf->worker_shutdown_timeout);
}

static void
pd_shutdown_timer_handler(pd_timer_t *t)
{
    pd_cycle_t       *cycle = pd_shutdown_cycle;
    pd_connection_t  *c;
    pd_uint_t         i;

    (void) t;

    pd_log_error(PD_LOG_NOTICE, cycle->log, 0,
                 "worker_shutdown_timeout: closing %lu connections",
                 (unsigned long) pd_active_connections);

    pd_shutdown_expired = 1;

    c = cycle->connections;

    for (i = 0; i < cycle->connection_top; i++) {
        if (c[i].fd != -1 && !c[i].shared && c[i].read->handler) {
            c[i].close = 1;
            c[i].read->handler(c[i].read);
        }
    }
}

/* one command from the master or a sibling */
static void
pd_channel_command(pd_cycle_t *cycle, pd_channel_msg_t *msg, u_char *data)
{
    pd_process_t  *p;

    switch (msg->command) {

    case PD_CMD_QUIT:
        pd_quit = 1;
        break;

    case PD_CMD_TERMINATE:
        pd_terminate = 1;
        break;

    case PD_CMD_REOPEN:
        pd_reopen = 1;
        break;

    case PD_CMD_NOACCEPT:
        /* the master's copies stay open: the new binary's workers take
         * what comes on them */
        pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "no longer accepting");
        pd_close_listening_sockets(cycle);
        break;

    case PD_CMD_OPEN_CHANNEL:
        if (msg->slot < 0 || msg->slot >= PD_MAX_PROCESSES) {
            break;
        }

        p = &pd_processes[msg->slot];
        pd_channel_forget(msg->slot);

        if (p->channel[0] != -1 && p->channel[0] != msg->fd) {
            close(p->channel[0]);
        }

        p->pid = msg->pid;
        p->channel[0] = msg->fd;
        p->channel[1] = -1;
        p->wslot = (pd_int_t) (msg->arg & 0xffff);
        p->generation = (pd_uint_t) (msg->arg >> 16);
        p->exited = 0;

        if (msg->slot >= pd_last_process) {
            pd_last_process = msg->slot + 1;
        }
        break;

    case PD_CMD_PING:
        /* answered by the core so any module can probe a sibling */
        if (msg->slot >= 0 && msg->slot < PD_MAX_PROCESSES
            && pd_processes[msg->slot].channel[0] != -1)
        {
            p = &pd_processes[msg->slot];
            msg->command = PD_CMD_PONG;
            msg->pid = pd_pid;
            msg->slot = (int32_t) pd_process_slot;
            msg->fd = -1;
            msg->len = 0;
            (void) pd_write_channel(p->channel[0], msg, NULL,
                                    cycle->log);
        }
        break;

    case PD_CMD_CLOSE_CHANNEL:
        if (msg->slot < 0 || msg->slot >= PD_MAX_PROCESSES) {
            break;
        }

        p = &pd_processes[msg->slot];
        if (p->pid == msg->pid && p->channel[0] != -1) {
            pd_channel_forget(msg->slot);

            if (p->channel[0] != -1) {
                close(p->channel[0]);
                p->channel[0] = -1;
            }

            p->pid = -1;
        }
        break;

    default:
        if (pd_channel_dispatch(cycle, msg, data) != PD_OK) {
            pd_log_error(PD_LOG_ALERT, cycle->log, 0,
                         "unknown channel command %u",
                         (unsigned) msg->command);
        }

        /* a handler that keeps the fd it came with sets msg->fd to -1 */
        if (msg->fd != -1) {
            close(msg->fd);
        }
    }
}

static void
pd_channel_handler(pd_event_t *ev)
{
    static u_char      data[PD_CHANNEL_BATCH_MAX];
    pd_connection_t   *c = ev->data;
    pd_channel_msg_t   msg, rec;
    pd_cycle_t        *cycle = (pd_cycle_t *) pd_cycle;
    pd_int_t           rc;
    size_t             pos;
    u_char            *rdata;

    for ( ;; ) {
        rc = pd_read_channel(c->fd, &msg, data, cycle->log);

        if (rc == PD_AGAIN) {
            return;
        }

        if (rc == PD_ERROR) {
            /* the master is gone: nobody will respawn or signal us */
            pd_log_error(PD_LOG_ALERT, cycle->log, 0,
                         "channel to the master closed, exiting");
            pd_close_connection(c);
            pd_terminate = 1;
            return;
        }

        if (msg.command != PD_CMD_BATCH) {
            pd_channel_command(cycle, &msg, data);
            continue;
        }

        pos = 0;

        while ((rc = pd_channel_batch_next(data, msg.len, &pos, &rec, &rdata))
               == PD_OK)
        {
            pd_channel_command(cycle, &rec, rdata);
        }

        if (rc == PD_ERROR) {
            pd_log_error(PD_LOG_ALERT, cycle->log, 0,
                         "malformed channel batch of %u bytes from %d",
                         (unsigned) msg.len, (int) msg.pid);
        }
    }
}

