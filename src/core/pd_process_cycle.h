/*
 * pd_process_cycle.h: the master's supervision loop and the worker's loop.
 */

#ifndef PD_PROCESS_CYCLE_H
#define PD_PROCESS_CYCLE_H

extern sig_atomic_t  pd_reap;
extern sig_atomic_t  pd_sigio;
extern sig_atomic_t  pd_sigalrm;
extern sig_atomic_t  pd_quit;
extern sig_atomic_t  pd_terminate;
extern sig_atomic_t  pd_reconfigure;
extern sig_atomic_t  pd_reopen;
extern sig_atomic_t  pd_noaccept;
extern sig_atomic_t  pd_change_binary;

extern pd_uint_t     pd_process;   /* PD_PROCESS_MASTER / _WORKER / _SINGLE */
extern pd_uint_t     pd_exiting;   /* worker is retiring */
/*
 * Work a retiring worker must finish before it exits although no client
 * is left (state events to send): a module counts each of its holds up
 * and down again.  worker_shutdown_timeout ends the wait all the same.
 */
extern pd_uint_t     pd_exit_holds;

#define PD_PROCESS_SINGLE   0
#define PD_PROCESS_MASTER   1
#define PD_PROCESS_WORKER   2

void pd_master_process_cycle(pd_cycle_t *cycle);

/* tells every live worker of ours about the process in slot */
void pd_pass_open_channel(pd_cycle_t *cycle, pd_int_t slot);

#endif /* PD_PROCESS_CYCLE_H */
