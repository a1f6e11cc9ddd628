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

#endif /* PD_UPGRADE_H */
