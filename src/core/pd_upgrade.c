/*
 * pd_upgrade.c: the binary upgrade (USR2), as nginx does it.  The master
 * forks and the child execs the binary it was started from (the path,
 * resolved at start: a new file there is the new version) with the same
 * arguments, handing down:
 *
 *   PUSHD_LISTEN  "fd.worker;..."  its listening sockets (one per worker
 *                 slot per address, SO_REUSEPORT), so the new master binds
 *                 nothing: the ports are never closed, nothing is refused;
 *   PUSHD_ZONES   "name:fd:size;..."  the register's and the message
 *                 store's shared memory (memfd), which the new master maps
 *                 and attaches to: presence and stored messages are kept,
 *                 both masters' workers share them.
 *
 *   PUSHD_UPGRADE "fd"  one end of a socketpair between the two masters:
 *                 each tells the other of its workers (their channels,
 *                 SCM_RIGHTS) and of their exits, and tells its own
 *                 workers, so the workers of both can reach each other:
 *                 pushes and broadcasts cross, and a master told to QUIT
 *                 has its workers hand their clients to the other's
 *                 (pd_room_handover.c), which they see as a newer
 *                 generation then.
 *
 * The old master renames its pid file to "<pid>.oldbin" first, keeping
 * its lock on it, so the new master passes the "already running" check
 * and writes the pid file itself; the inherited sockets are its own, so
 * it passes the "port held by another process" check.  If the new binary
 * fails, the old master renames the file back.
 */

#include "pd_core.h"

#define PD_UPGRADE_LISTEN  "PUSHD_LISTEN"
#define PD_UPGRADE_ZONES   "PUSHD_ZONES"
#define PD_UPGRADE_CHANNEL "PUSHD_UPGRADE"

/* the generation the other master's workers are told as once this one
 * quits: above any of ours, so they are where our clients go */
#define PD_UPGRADE_SUCCESSOR  ((pd_uint_t) 1 << 40)
#define PD_UPGRADE_MAX     (2 * PD_MAX_PROCESSES * 16)

typedef struct {
    int          fd;
    pd_int_t     worker;
    unsigned     used:1;
} pd_inherited_ls_t;

typedef struct {
    char         name[32];
    int          fd;
    size_t       size;
    unsigned     used:1;
} pd_inherited_zone_t;

static char                **pd_upgrade_argv;
static char                  pd_upgrade_path[PATH_MAX];
static pd_inherited_ls_t     pd_inherited_ls[PD_UPGRADE_MAX];
static pd_uint_t             pd_ninherited_ls;
static pd_inherited_zone_t   pd_inherited_zones[PD_SHM_MAX_ZONES];
static pd_uint_t             pd_ninherited_zones;
static pd_uint_t             pd_upgrade_inherited;

/* the socket to the other master, -1 when there is none */
static int                   pd_upgrade_fd = -1;
static pd_uint_t             pd_upgrade_succeeded;
/* the other master's workers' generations, as they are there */
static pd_uint_t             pd_upgrade_gen[PD_MAX_PROCESSES];

/* the zones whose contents outlive an upgrade (position independent, no
 * per-process slots) */
static const char  *pd_upgrade_zone_names[] = {
    "pd_register", "pd_saver", NULL
};

/*
 * At start, before the process title overwrites argv: the arguments,
 * the binary's path, and what a previous master handed down.
 */
void
pd_upgrade_init(int argc, char **argv)
{
    char       *env, *p, *end;
    pd_int_t    i;
    long        fd, w, size;

    pd_upgrade_argv = calloc((size_t) argc + 1, sizeof(char *));
    if (pd_upgrade_argv != NULL) {
        for (i = 0; i < argc; i++) {
            pd_upgrade_argv[i] = strdup(argv[i]);
        }
    }

    if (strchr(argv[0], '/') == NULL
        || realpath(argv[0], pd_upgrade_path) == NULL)
    {
        /* found in $PATH: so is the new one */
        (void) snprintf(pd_upgrade_path, sizeof(pd_upgrade_path), "%s",
                        argv[0]);
    }

    env = getenv(PD_UPGRADE_LISTEN);

    for (p = env; p != NULL && *p && pd_ninherited_ls < PD_UPGRADE_MAX; ) {
        fd = strtol(p, &end, 10);
        if (end == p || *end != '.') {
            break;
        }
        w = strtol(end + 1, &p, 10);

        if (fd > STDERR_FILENO && fcntl((int) fd, F_GETFD) != -1) {
            pd_inherited_ls[pd_ninherited_ls].fd = (int) fd;
            pd_inherited_ls[pd_ninherited_ls].worker = w;
            pd_ninherited_ls++;
        }

        if (*p == ';') {
            p++;
        }
    }

    env = getenv(PD_UPGRADE_ZONES);

    for (p = env; p != NULL && *p
                  && pd_ninherited_zones < PD_SHM_MAX_ZONES; )
    {
        end = strchr(p, ':');
        if (end == NULL || (size_t) (end - p) >= 32) {
            break;
        }

        pd_memcpy(pd_inherited_zones[pd_ninherited_zones].name, p,
                  (size_t) (end - p));
        pd_inherited_zones[pd_ninherited_zones].name[end - p] = '\0';

        fd = strtol(end + 1, &p, 10);
        if (*p != ':') {
            break;
        }
        size = strtol(p + 1, &p, 10);

        if (fd > STDERR_FILENO && size > 0
            && fcntl((int) fd, F_GETFD) != -1)
        {
            pd_inherited_zones[pd_ninherited_zones].fd = (int) fd;
            pd_inherited_zones[pd_ninherited_zones].size = (size_t) size;
            pd_ninherited_zones++;
        }

        if (*p == ';') {
            p++;
        }
    }

    pd_upgrade_inherited = (env != NULL || getenv(PD_UPGRADE_LISTEN) != NULL);

    env = getenv(PD_UPGRADE_CHANNEL);
    if (env != NULL) {
        fd = strtol(env, &end, 10);
        if (*end == '\0' && fd > STDERR_FILENO
            && fcntl((int) fd, F_SETFD, FD_CLOEXEC) != -1)
        {
            pd_upgrade_fd = (int) fd;
        }
    }

    /* not for what this master may exec in turn */
    (void) unsetenv(PD_UPGRADE_LISTEN);
    (void) unsetenv(PD_UPGRADE_ZONES);
    (void) unsetenv(PD_UPGRADE_CHANNEL);
}

pd_uint_t
pd_upgrade_is_inherited(void)
{
    return pd_upgrade_inherited;
}

/* the inherited listening socket for ls (same worker slot and address),
 * or -1 */
int
pd_upgrade_listening(pd_listening_t *ls)
{
    struct sockaddr_storage  sa;
    socklen_t                len;
    pd_uint_t                i;

    for (i = 0; i < pd_ninherited_ls; i++) {
        if (pd_inherited_ls[i].used
            || pd_inherited_ls[i].worker != ls->worker)
        {
            continue;
        }

        len = sizeof(sa);
        if (getsockname(pd_inherited_ls[i].fd, (struct sockaddr *) &sa, &len)
            == -1)
        {
            continue;
        }

        if (pd_cmp_sockaddr((struct sockaddr *) &sa, len,
                            (struct sockaddr *) &ls->sockaddr, ls->socklen)
            == PD_OK)
        {
            pd_inherited_ls[i].used = 1;
            return pd_inherited_ls[i].fd;
        }
    }

    return -1;
}

/* maps the inherited zone of shm's name and size: PD_OK, or PD_DECLINED */
pd_int_t
pd_upgrade_zone(pd_shm_t *shm)
{
    pd_inherited_zone_t  *z;
    void                 *addr;
    pd_uint_t             i;

    for (i = 0; i < pd_ninherited_zones; i++) {
        z = &pd_inherited_zones[i];

        if (z->used || strlen(z->name) != shm->name.len
            || memcmp(z->name, shm->name.data, shm->name.len) != 0)
        {
            continue;
        }

        if (z->size != shm->size) {
            pd_log_error(PD_LOG_WARN, shm->log, 0, "zone \"%s\" of the old "
                         "binary is %lu bytes, this configuration wants %lu: "
                         "it starts empty", z->name, (unsigned long) z->size,
                         (unsigned long) shm->size);
            return PD_DECLINED;
        }

        addr = mmap(NULL, shm->size, PROT_READ | PROT_WRITE, MAP_SHARED,
                    z->fd, 0);
        if (addr == MAP_FAILED) {
            pd_log_error(PD_LOG_ALERT, shm->log, errno, "mmap() of the "
                         "inherited zone \"%s\" failed", z->name);
            return PD_DECLINED;
        }

        (void) fcntl(z->fd, F_SETFD, FD_CLOEXEC);
        z->used = 1;
        shm->addr = addr;
        shm->fd = z->fd;
        shm->memfd = 1;

        pd_log_error(PD_LOG_NOTICE, shm->log, 0, "zone \"%s\" taken over from "
                     "the old binary", z->name);
        return PD_OK;
    }

    return PD_DECLINED;
}

/* after the first cycle: what was handed down and not taken goes */
void
pd_upgrade_close_unused(void)
{
    pd_uint_t  i;

    for (i = 0; i < pd_ninherited_ls; i++) {
        if (!pd_inherited_ls[i].used) {
            (void) close(pd_inherited_ls[i].fd);
        }
    }

    for (i = 0; i < pd_ninherited_zones; i++) {
        if (!pd_inherited_zones[i].used) {
            (void) close(pd_inherited_zones[i].fd);
        }
    }

    pd_ninherited_ls = 0;
    pd_ninherited_zones = 0;
}

static pd_uint_t
pd_upgrade_zone_kept(pd_str_t *name)
{
    pd_uint_t  i;

    for (i = 0; pd_upgrade_zone_names[i] != NULL; i++) {
        if (strlen(pd_upgrade_zone_names[i]) == name->len
            && memcmp(pd_upgrade_zone_names[i], name->data, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}

/*
 * USR2: the new binary, a child of this master.  Its pid, or -1 (the pid
 * file is back then).
 */
pid_t
pd_exec_new_binary(pd_cycle_t *cycle)
{
    pd_listening_t  *ls;
    pd_shm_zone_t   *zone;
    static char      listen[PD_UPGRADE_MAX * 24], zones[1024];
    size_t           n;
    pd_uint_t        i;
    pid_t            pid;
    int              up[2];
    char             chan[16];

    if (pd_upgrade_argv == NULL) {
        return -1;
    }

    n = 0;
    ls = cycle->listening.elts;

    for (i = 0; i < cycle->listening.nelts && n < sizeof(listen) - 32; i++) {
        if (ls[i].fd != -1) {
            n += (size_t) snprintf(listen + n, sizeof(listen) - n, "%d.%ld;",
                                   ls[i].fd, (long) ls[i].worker);
        }
    }

    n = 0;
    zone = cycle->shared_memory.elts;

    for (i = 0; i < cycle->shared_memory.nelts && n < sizeof(zones) - 96; i++)
    {
        if (zone[i].shm.memfd && pd_upgrade_zone_kept(&zone[i].shm.name)) {
            n += (size_t) snprintf(zones + n, sizeof(zones) - n,
                                   "%.*s:%d:%lu;", (int) zone[i].shm.name.len,
                                   zone[i].shm.name.data, zone[i].shm.fd,
                                   (unsigned long) zone[i].shm.size);
        }
    }

    if (pd_upgrade_fd != -1) {
        /* the socket to a previous binary (the new binary of the last
         * upgrade went, or this master is one): one at a time */
        (void) close(pd_upgrade_fd);
        pd_upgrade_fd = -1;
    }

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, up) == -1) {
        pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                     "socketpair() for the new binary failed");
        return -1;
    }

    if (pd_pidfile_rename_oldbin(cycle->log) != PD_OK) {
        (void) close(up[0]);
        (void) close(up[1]);
        return -1;
    }

    pid = fork();

    switch (pid) {

    case -1:
        pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                     "fork() of the new binary failed");
        pd_pidfile_rename_back(cycle->log);
        (void) close(up[0]);
        (void) close(up[1]);
        return -1;

    case 0:
        (void) fcntl(up[1], F_SETFD, 0);
        (void) snprintf(chan, sizeof(chan), "%d", up[1]);
        (void) setenv(PD_UPGRADE_CHANNEL, chan, 1);

        /* the shared zones cross exec; the sockets do already */
        for (i = 0; i < cycle->shared_memory.nelts; i++) {
            if (zone[i].shm.memfd) {
                (void) fcntl(zone[i].shm.fd, F_SETFD, 0);
            }
        }

        (void) setenv(PD_UPGRADE_LISTEN, listen, 1);
        (void) setenv(PD_UPGRADE_ZONES, zones, 1);

        execv(pd_upgrade_path, pd_upgrade_argv);

        pd_log_error(PD_LOG_ALERT, cycle->log, errno, "execv(\"%s\") failed",
                     pd_upgrade_path);
        _exit(1);
    }

    pd_log_error(PD_LOG_NOTICE, cycle->log, 0, "start new binary process %d "
                 "(%s)", (int) pid, pd_upgrade_path);

    (void) close(up[1]);
    pd_upgrade_fd = up[0];
    pd_upgrade_succeeded = 0;
    pd_upgrade_start(cycle);

    return pid;
}

/* a message to the other master; its fd, if any, goes along */
static void
pd_upgrade_send(pd_cycle_t *cycle, pd_uint_t command, pid_t pid,
    uint64_t arg, int fd)
{
    pd_channel_msg_t  msg;

    if (pd_upgrade_fd == -1) {
        return;
    }

    pd_memzero(&msg, sizeof(msg));
    msg.command = (uint32_t) command;
    msg.pid = pid;
    msg.slot = -1;
    msg.fd = fd;
    msg.arg = arg;

    if (pd_write_channel(pd_upgrade_fd, &msg, NULL, cycle->log) != PD_OK) {
        pd_log_error(PD_LOG_ALERT, cycle->log, 0, "the other master did not "
                     "take word of worker %d", (int) pid);
    }
}

/* our worker in slot, to the other master */
void
pd_upgrade_announce(pd_cycle_t *cycle, pd_int_t slot)
{
    pd_process_t  *p = &pd_processes[slot];

    if (pd_upgrade_fd != -1 && p->channel[0] != -1) {
        pd_upgrade_send(cycle, PD_CMD_OPEN_CHANNEL, p->pid,
                        ((uint64_t) p->generation << 16)
                        | (uint64_t) p->wslot, p->channel[0]);
    }
}

/* our worker pid exited */
void
pd_upgrade_gone(pid_t pid)
{
    pd_upgrade_send((pd_cycle_t *) pd_cycle, PD_CMD_CLOSE_CHANNEL, pid, 0,
                    -1);
}

/* the socket to the other master is watched (SIGIO), and told of ours */
void
pd_upgrade_start(pd_cycle_t *cycle)
{
    pd_int_t  i;

    if (pd_upgrade_fd == -1) {
        return;
    }

    if (fcntl(pd_upgrade_fd, F_SETOWN, getpid()) == -1
        || fcntl(pd_upgrade_fd, F_SETFL, O_NONBLOCK | O_ASYNC) == -1)
    {
        pd_log_error(PD_LOG_ALERT, cycle->log, errno, "fcntl() of the "
                     "socket to the other master failed");
        (void) close(pd_upgrade_fd);
        pd_upgrade_fd = -1;
        return;
    }

    for (i = 0; i < pd_last_process; i++) {
        if (pd_processes[i].pid != -1 && !pd_processes[i].foreign
            && !pd_processes[i].exited)
        {
            pd_upgrade_announce(cycle, i);
        }
    }

    /* what came before SIGIO was asked for */
    pd_upgrade_read(cycle);
}

static void
pd_upgrade_forget(pd_cycle_t *cycle, pd_int_t s)
{
    pd_channel_msg_t  msg;
    pd_process_t     *p = &pd_processes[s];
    pd_int_t          j;

    pd_memzero(&msg, sizeof(msg));
    msg.command = PD_CMD_CLOSE_CHANNEL;
    msg.pid = p->pid;
    msg.slot = (int32_t) s;
    msg.fd = -1;

    for (j = 0; j < pd_last_process; j++) {
        if (j != s && pd_processes[j].pid != -1 && !pd_processes[j].foreign
            && !pd_processes[j].exited && pd_processes[j].channel[0] != -1)
        {
            (void) pd_write_channel(pd_processes[j].channel[0], &msg, NULL,
                                    cycle->log);
        }
    }

    if (p->channel[0] != -1) {
        (void) close(p->channel[0]);
    }

    p->channel[0] = -1;
    p->pid = -1;
    p->foreign = 0;

    if (s == pd_last_process - 1) {
        pd_last_process--;
    }
}

/* SIGIO: what the other master said */
void
pd_upgrade_read(pd_cycle_t *cycle)
{
    static u_char      data[PD_CHANNEL_BATCH_MAX];
    pd_channel_msg_t   msg;
    pd_process_t      *p;
    pd_int_t           rc, s;

    while (pd_upgrade_fd != -1) {
        rc = pd_read_channel(pd_upgrade_fd, &msg, data, cycle->log);

        if (rc == PD_AGAIN) {
            return;
        }

        if (rc == PD_ERROR) {
            /* it is gone; the exits of its workers came before */
            (void) close(pd_upgrade_fd);
            pd_upgrade_fd = -1;

            for (s = 0; s < pd_last_process; s++) {
                if (pd_processes[s].foreign) {
                    pd_upgrade_forget(cycle, s);
                }
            }
            return;
        }

        if (msg.command == PD_CMD_CLOSE_CHANNEL) {
            for (s = 0; s < pd_last_process; s++) {
                if (pd_processes[s].foreign && pd_processes[s].pid == msg.pid)
                {
                    pd_upgrade_forget(cycle, s);
                }
            }
            continue;
        }

        if (msg.command != PD_CMD_OPEN_CHANNEL || msg.fd == -1) {
            if (msg.fd != -1) {
                (void) close(msg.fd);
            }
            continue;
        }

        for (s = 0; s < PD_MAX_PROCESSES; s++) {
            if (pd_processes[s].pid == -1) {
                break;
            }
        }

        if (s == PD_MAX_PROCESSES) {
            (void) close(msg.fd);
            continue;
        }

        p = &pd_processes[s];
        pd_memzero(p, sizeof(pd_process_t));
        p->pid = msg.pid;
        p->channel[0] = msg.fd;
        p->channel[1] = -1;
        p->wslot = (pd_int_t) (msg.arg & 0xffff);
        p->name = "worker process of the other master";
        p->foreign = 1;
        pd_upgrade_gen[s] = (pd_uint_t) (msg.arg >> 16);

        /* a generation ours never hand clients to, until we quit */
        p->generation = pd_upgrade_succeeded
                        ? PD_UPGRADE_SUCCESSOR + pd_upgrade_gen[s] : 0;

        if (s >= pd_last_process) {
            pd_last_process = s + 1;
        }

        pd_pass_open_channel(cycle, s);
    }
}

/* this master quits: the other's workers become our workers' successors */
void
pd_upgrade_successors(pd_cycle_t *cycle)
{
    pd_int_t  s;

    if (pd_upgrade_succeeded || pd_upgrade_fd == -1) {
        return;
    }

    pd_upgrade_succeeded = 1;

    for (s = 0; s < pd_last_process; s++) {
        if (pd_processes[s].foreign) {
            pd_processes[s].generation = PD_UPGRADE_SUCCESSOR
                                         + pd_upgrade_gen[s];
            pd_pass_open_channel(cycle, s);
        }
    }
}

/* a worker: the socket between the masters is theirs */
void
pd_upgrade_worker_init(void)
{
    if (pd_upgrade_fd != -1) {
        (void) close(pd_upgrade_fd);
        pd_upgrade_fd = -1;
    }
}
