/*
 * pd_process.h: the process table, fork and signals.
 */

#ifndef PD_PROCESS_H
#define PD_PROCESS_H

typedef void (*pd_spawn_proc_pt)(pd_cycle_t *cycle, void *data);

typedef struct {
    pid_t              pid;
    int                status;
    pd_socket_t        channel[2];
    pd_spawn_proc_pt   proc;
    void              *data;
    const char        *name;
    pd_uint_t          generation;  /* cycle generation it runs */
    pd_int_t           wslot;       /* worker slot 0..n-1 */
    unsigned           respawn:1;
    unsigned           just_spawn:1;
    unsigned           exiting:1;
    unsigned           exited:1;
    unsigned           foreign:1;   /* the other master's worker during a
                                     * binary upgrade (pd_upgrade.c):
                                     * not ours to signal or reap */
} pd_process_t;

#define PD_PROCESS_NORESPAWN  -1
#define PD_PROCESS_RESPAWN    -2

extern pd_process_t  pd_processes[PD_MAX_PROCESSES];
extern pd_int_t      pd_process_slot;   /* own slot in the table */
extern pd_int_t      pd_last_process;
extern pd_socket_t   pd_channel;        /* own channel, worker side */

void pd_init_process_table(void);
/*
 * A worker of the newest generation, newer than ours, that takes over
 * our connections on a reload or an upgrade's QUIT: the one in our
 * worker slot if there is one, else in turn (*rr turns).  -1: there is
 * none (a stop, not a reload).
 */
pid_t pd_process_successor(pd_uint_t *rr);
pid_t pd_spawn_process(pd_cycle_t *cycle, pd_spawn_proc_pt proc, void *data,
    const char *name, pd_int_t respawn);
pd_int_t pd_init_signals(pd_log_t *log);
pd_int_t pd_daemon(pd_log_t *log);
void pd_process_get_status(void);
/* sets the process title shown by ps ("pushd: worker process") */
void pd_setproctitle(const char *title);
void pd_init_setproctitle(int argc, char **argv);

#endif /* PD_PROCESS_H */
