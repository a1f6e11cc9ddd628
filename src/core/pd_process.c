/*
 * pd_process.c: the process table, fork with channels, signal handlers
 * (which only set flags), daemonizing and the process title.
 */

#include "pd_core.h"

pd_process_t  pd_processes[PD_MAX_PROCESSES];
pd_int_t      pd_process_slot;
pd_int_t      pd_last_process;
pd_socket_t   pd_channel = -1;

static void pd_signal_handler(int signo);

typedef struct {
    int          signo;
    const char  *name;
} pd_signal_t;

static pd_signal_t  pd_signals[] = {
    { SIGHUP,  "SIGHUP" },
    { SIGQUIT, "SIGQUIT" },
    { SIGTERM, "SIGTERM" },
    { SIGINT,  "SIGINT" },
    { SIGUSR1, "SIGUSR1" },
    { SIGCHLD, "SIGCHLD" },
    { SIGALRM, "SIGALRM" },
    { SIGIO,   "SIGIO" },
    /* nginx's binary upgrade and "stop accepting" (pd_upgrade.c) */
    { SIGUSR2, "SIGUSR2" },
    { SIGWINCH, "SIGWINCH" },
    { 0, NULL }
};

/* an empty table: no pid, no channel (a zeroed one would name fd 0) */
void
pd_init_process_table(void)
{
    pd_int_t  i;

    for (i = 0; i < PD_MAX_PROCESSES; i++) {
        pd_processes[i].pid = -1;
        pd_processes[i].channel[0] = -1;
        pd_processes[i].channel[1] = -1;
        pd_processes[i].wslot = -1;
    }
}

pid_t
pd_process_successor(pd_uint_t *rr)
{
    pd_process_t  *p;
    pd_uint_t      gen, n;
    pd_int_t       i, same;

    gen = pd_cycle->generation;
    n = 0;
    same = -1;

    for (i = 0; i < pd_last_process; i++) {
        p = &pd_processes[i];

        if (p->pid == -1 || i == pd_process_slot || p->channel[0] == -1
            || p->generation < gen)
        {
            continue;
        }

        if (p->generation > gen) {
            gen = p->generation;
            n = 0;
            same = -1;
        }

        if (p->generation == pd_cycle->generation) {
            continue;
        }

        n++;

        if (p->wslot == pd_worker) {
            same = i;
        }
    }

    if (n == 0) {
        return -1;
    }

    if (same != -1) {
        return pd_processes[same].pid;
    }

    n = (*rr)++ % n;

    for (i = 0; i < pd_last_process; i++) {
        p = &pd_processes[i];

        if (p->pid != -1 && i != pd_process_slot && p->channel[0] != -1
            && p->generation == gen && n-- == 0)
        {
            return p->pid;
        }
    }

    return -1;
}

pid_t
pd_spawn_process(pd_cycle_t *cycle, pd_spawn_proc_pt proc, void *data,
    const char *name, pd_int_t respawn)
{
    pd_process_t  *p;
    pid_t          pid;
    pd_int_t       s;
    int            bufsize = 1024 * 1024;

    if (respawn >= 0) {
        s = respawn;

    } else {
        for (s = 0; s < pd_last_process; s++) {
            if (pd_processes[s].pid == -1) {
                break;
            }
        }

        if (s == PD_MAX_PROCESSES) {
            pd_log_error(PD_LOG_ALERT, cycle->log, 0,
                         "no more than %d processes can be spawned",
                         PD_MAX_PROCESSES);
            return -1;
        }
    }

    p = &pd_processes[s];

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p->channel)
        == -1)
    {
        pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                     "socketpair() failed while spawning \"%s\"", name);
        return -1;
    }

    if (pd_nonblocking(p->channel[0]) != PD_OK
        || pd_nonblocking(p->channel[1]) != PD_OK)
    {
        pd_close_channel(p->channel, cycle->log);
        return -1;
    }

    /* every sibling writes delivery batches into [0], and the master its
     * control messages (FORCE passes net.core.wmem_max when we are root).
     * The room is for those: a worker counts a sibling as backed up at
     * PD_CHANNEL_INFLIGHT unread bytes, not when this is full, because a
     * deep queue only hides a backlog (deliveries once waited seconds in
     * 4 MB while the center kept accepting pushes) */
    if (setsockopt(p->channel[0], SOL_SOCKET, SO_SNDBUFFORCE, &bufsize,
                   sizeof(int)) == -1)
    {
        (void) setsockopt(p->channel[0], SOL_SOCKET, SO_SNDBUF, &bufsize,
                          sizeof(int));
    }

    pd_process_slot = s;

    pid = fork();

    switch (pid) {

    case -1:
        pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                     "fork() failed while spawning \"%s\"", name);
        pd_close_channel(p->channel, cycle->log);
        return -1;

    case 0:
        pd_pid = getpid();
        pd_channel = p->channel[1];
        proc(cycle, data);
        break;

    default:
        break;
    }

    pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "start %s %d", name,
                 (int) pid);

    p->pid = pid;
    p->status = 0;
    p->proc = proc;
    p->data = data;
    p->name = name;
    p->generation = cycle->generation;
    p->wslot = (pd_int_t) (intptr_t) data;
    p->exited = 0;
    p->exiting = 0;
    p->respawn = (respawn != PD_PROCESS_NORESPAWN);
    p->just_spawn = 1;

    /* the master keeps only the writing end */
    close(p->channel[1]);
    p->channel[1] = -1;

    if (s == pd_last_process) {
        pd_last_process++;
    }

    return pid;
}

pd_int_t
pd_init_signals(pd_log_t *log)
{
    pd_signal_t       *sig;
    struct sigaction   sa;

    for (sig = pd_signals; sig->signo != 0; sig++) {
        pd_memzero(&sa, sizeof(struct sigaction));
        sa.sa_handler = pd_signal_handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);

        if (sigaction(sig->signo, &sa, NULL) == -1) {
            pd_log_error(PD_LOG_EMERG, log, errno,
                         "sigaction(%s) failed", sig->name);
            return PD_ERROR;
        }
    }

    pd_memzero(&sa, sizeof(struct sigaction));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    (void) sigaction(SIGPIPE, &sa, NULL);

    return PD_OK;
}

/* only sets flags: everything else happens in the loops */
static void
pd_signal_handler(int signo)
{
    int  err = errno;

    switch (signo) {

    case SIGQUIT:
        pd_quit = 1;
        break;

    case SIGTERM:
    case SIGINT:
        pd_terminate = 1;
        break;

    case SIGHUP:
        if (pd_process == PD_PROCESS_MASTER) {
            pd_reconfigure = 1;
        }
        break;

    case SIGUSR1:
        pd_reopen = 1;
        break;

    case SIGCHLD:
        pd_reap = 1;
        break;

    case SIGALRM:
        pd_sigalrm = 1;
        break;

    case SIGIO:
        pd_sigio = 1;
        break;

    case SIGUSR2:
        if (pd_process == PD_PROCESS_MASTER) {
            pd_change_binary = 1;
        }
        break;

    case SIGWINCH:
        if (pd_process == PD_PROCESS_MASTER) {
            pd_noaccept = 1;
        }
        break;
    }

    errno = err;
}

pd_int_t
pd_daemon(pd_log_t *log)
{
    int  fd;

    switch (fork()) {
    case -1:
        pd_log_error(PD_LOG_EMERG, log, errno, "fork() failed");
        return PD_ERROR;

    case 0:
        break;

    default:
        _exit(0);
    }

    pd_pid = getpid();

    if (setsid() == -1) {
        pd_log_error(PD_LOG_EMERG, log, errno, "setsid() failed");
        return PD_ERROR;
    }

    umask(0);

    fd = open("/dev/null", O_RDWR);
    if (fd == -1) {
        pd_log_error(PD_LOG_EMERG, log, errno, "open(\"/dev/null\") failed");
        return PD_ERROR;
    }

    if (dup2(fd, STDIN_FILENO) == -1 || dup2(fd, STDOUT_FILENO) == -1) {
        pd_log_error(PD_LOG_EMERG, log, errno, "dup2() failed");
        return PD_ERROR;
    }

    if (fd > STDERR_FILENO) {
        close(fd);
    }

    return PD_OK;
}

/*
 * The process title: argv[] and environ are contiguous, so the title may
 * use both once environ has been copied elsewhere.  The copies are kept
 * for the life of the process (they are what environ points at).
 */
static char   *pd_title_start;
static size_t  pd_title_len;

void
pd_init_setproctitle(int argc, char **argv)
{
    extern char  **environ;
    char          *last, **env;
    size_t         n;
    int            i;

    if (argc == 0 || argv[0] == NULL) {
        return;
    }

    last = argv[0];

    for (i = 0; i < argc; i++) {
        if (argv[i] == last) {
            last = argv[i] + strlen(argv[i]) + 1;
        }
    }

    for (n = 0; environ[n] != NULL; n++) { /* count */ }

    env = malloc((n + 1) * sizeof(char *));
    if (env == NULL) {
        return;
    }

    for (i = 0; environ[i] != NULL; i++) {
        if (environ[i] == last) {
            last = environ[i] + strlen(environ[i]) + 1;
        }

        env[i] = strdup(environ[i]);
        if (env[i] == NULL) {
            return;
        }
    }

    env[i] = NULL;
    environ = env;

    pd_title_start = argv[0];
    pd_title_len = (size_t) (last - argv[0]);
    argv[1] = NULL;
}

void
pd_setproctitle(const char *title)
{
    size_t  len;

    if (pd_title_start == NULL || pd_title_len < 2) {
        return;
    }

    len = pd_min(strlen(title), pd_title_len - 1);
    pd_memcpy(pd_title_start, title, len);
    memset(pd_title_start + len, '\0', pd_title_len - len);
}
