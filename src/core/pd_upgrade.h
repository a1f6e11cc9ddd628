/*
 * pd_upgrade.h: the binary upgrade (USR2): what a master hands down to
 * the new binary it execs, and what the new one takes over.
 */

#ifndef PD_UPGRADE_H
#define PD_UPGRADE_H

/* at start: the arguments and path to exec, and what was handed down */
void pd_upgrade_init(int argc, char **argv);
/* 1 when this master was exec'd by an old one (it does not daemonize) */
pd_uint_t pd_upgrade_is_inherited(void);
/* the inherited socket for ls, or -1 */
int pd_upgrade_listening(pd_listening_t *ls);
/* maps the inherited zone of shm's name: PD_OK, or PD_DECLINED */
pd_int_t pd_upgrade_zone(pd_shm_t *shm);
/* closes what was handed down and not taken */
void pd_upgrade_close_unused(void);
/* USR2: forks and execs the new binary; its pid or -1 */
pid_t pd_exec_new_binary(pd_cycle_t *cycle);

/* between the two masters of an upgrade: our worker in slot is told to
 * the other (announce), and its exit (gone); SIGIO: what the other said
 * (read); start: at the new master's start and after the exec; on QUIT,
 * the other's workers take our clients (successors) */
void pd_upgrade_announce(pd_cycle_t *cycle, pd_int_t slot);
void pd_upgrade_gone(pid_t pid);
void pd_upgrade_read(pd_cycle_t *cycle);
void pd_upgrade_start(pd_cycle_t *cycle);
void pd_upgrade_successors(pd_cycle_t *cycle);
void pd_upgrade_worker_init(void);

#endif /* PD_UPGRADE_H */
