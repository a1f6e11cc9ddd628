/*
 * pd_pidfile.h: the master's pid file, locked for the master's life.
 */

#ifndef PD_PIDFILE_H
#define PD_PIDFILE_H

/*
 * At start, before anything is bound: opens the pid file of cycle (one of
 * the daemon's own files, see pd_file_open_own(), and ours) and takes its
 * lock.  PD_OK, or PD_ERROR with the whole message in err, "already
 * running: ..." when another master holds the lock.  The descriptor is
 * kept, close-on-exec, by this process and whatever it forks (daemon()).
 */
pd_int_t pd_pidfile_open(pd_cycle_t *cycle, char *err, size_t len);

/* writes pd_pid into the locked file; the file stays open and locked */
pd_int_t pd_pidfile_write(pd_log_t *log);

/*
 * A start that failed after pd_pidfile_open(): the file is removed (no
 * master wrote it, or the one that did is gone: we held its lock) and
 * unlocked.  Nothing when it was not opened.
 */
void pd_pidfile_abandon(void);

/* in a worker: the lock is the master's alone, so it dies with it */
void pd_pidfile_close(void);

/* the master's exit: unlinks the file, then lets go of the lock */
void pd_pidfile_delete(pd_log_t *log);
/* a binary upgrade: renamed to "<path>.oldbin", and back if it fails */
pd_int_t pd_pidfile_rename_oldbin(pd_log_t *log);
void pd_pidfile_rename_back(pd_log_t *log);

/*
 * pushd -s: sends sig ("stop", "quit", "reload", "reopen") to the master
 * holding the pid file at path (NUL-terminated).  A missing file, or one
 * no master holds locked (a stale pid: maybe another process's now), is
 * "not running", and nothing is signalled.  PD_OK when sent, else
 * PD_ERROR after saying why on stderr.
 */
pd_int_t pd_pidfile_signal(const char *path, const char *sig);

#endif /* PD_PIDFILE_H */
