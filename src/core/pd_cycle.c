/*
 * pd_cycle.c: building a configuration generation in named phases, and
 * rolling back when any phase fails so the old one keeps serving.
 */

#include "pd_core.h"

volatile pd_cycle_t  *pd_cycle;
pd_uint_t             pd_test_config;
pd_uint_t             pd_ncpu = 1;

static pd_int_t pd_cycle_open_log(pd_cycle_t *cycle, pd_cycle_t *old,
    char *err, size_t len);
static pd_int_t pd_cycle_init_modules(pd_cycle_t *cycle);
static pd_int_t pd_cycle_init_shm(pd_cycle_t *cycle, pd_cycle_t *old);
static void pd_cycle_free_shm(pd_cycle_t *cycle);
static void pd_cycle_error(u_char *errbuf, size_t errlen, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/* errbuf is always NUL-terminated, even when the message is cut */
static void
pd_cycle_error(u_char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    (void) vsnprintf((char *) errbuf, errlen, fmt, args);
    va_end(args);
}

pd_cycle_t *
pd_cycle_bare(pd_str_t *prefix, pd_str_t *conf_file)
{
    pd_cycle_t  *cycle;
    pd_pool_t   *pool;

    pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, pd_log_root);
    if (pool == NULL) {
        return NULL;
    }

    cycle = pd_pcalloc(pool, sizeof(pd_cycle_t));
    if (cycle == NULL) {
        pd_destroy_pool(pool);
        return NULL;
    }

    cycle->pool = pool;
    cycle->log = pd_log_root;
    cycle->prefix = *prefix;
    cycle->conf_file = *conf_file;

    return cycle;
}

pd_cycle_t *
pd_init_cycle(pd_cycle_t *old_cycle, u_char *errbuf, size_t errlen)
{
    pd_cycle_t      *cycle;
    pd_pool_t       *pool;
    pd_uint_t        n;
    pd_core_conf_t  *ccf;
    pd_file_guard_t  guard;
    char             reason[PD_CONF_ERRSTR_SIZE];

    errbuf[0] = '\0';

    pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, old_cycle->log);
    if (pool == NULL) {
        pd_cycle_error(errbuf, errlen, "out of memory");
        return NULL;
    }

    cycle = pd_pcalloc(pool, sizeof(pd_cycle_t));
    if (cycle == NULL) {
        pd_destroy_pool(pool);
        pd_cycle_error(errbuf, errlen, "out of memory");
        return NULL;
    }

    cycle->pool = pool;
    cycle->log = old_cycle->log;
    cycle->old_cycle = old_cycle;
    cycle->generation = old_cycle->generation + 1;

    cycle->prefix.data = pd_pstrdup(pool, &old_cycle->prefix);
    cycle->prefix.len = old_cycle->prefix.len;
    cycle->conf_file.data = pd_pstrdup(pool, &old_cycle->conf_file);
    cycle->conf_file.len = old_cycle->conf_file.len;

    if (cycle->prefix.data == NULL || cycle->conf_file.data == NULL) {
        goto failed;
    }

    for (n = 0; pd_modules[n] != NULL; n++) {
        pd_modules[n]->index = n;
    }

    if (pd_array_init(&cycle->listening, pool, 8, sizeof(pd_listening_t))
        != PD_OK
        || pd_array_init(&cycle->shared_memory, pool, 4,
                         sizeof(pd_shm_zone_t)) != PD_OK)
    {
        goto failed;
    }

    /* phase 1: the file */
    if (pd_conf_parse(cycle, &cycle->conf_file, errbuf, errlen) != PD_OK) {
        goto failed_quiet;
    }

    /* phase 2: the log, so later phases report where the operator looks */
    if (!pd_test_config
        && pd_cycle_open_log(cycle, old_cycle, reason, sizeof(reason))
           != PD_OK)
    {
        pd_cycle_error(errbuf, errlen,
                    "cannot open the error log \"%s\": %s",
                    ((pd_core_conf_t *) pd_get_conf(cycle, pd_core_module))
                        ->error_log_path.data, reason);
        goto failed_quiet;
    }

    /*
     * phase 2b, at start only: the pid file, locked before anything is
     * bound, so a second start on this prefix stops here and says who
     * runs; a reload keeps the file the master locked at start
     */
    if (!pd_test_config && old_cycle->generation == 0
        && pd_pidfile_open(cycle, reason, sizeof(reason)) != PD_OK)
    {
        pd_log_error(PD_LOG_EMERG, cycle->log, 0, "%s", reason);
        pd_cycle_error(errbuf, errlen, "%s", reason);
        goto failed_quiet;
    }

    /*
     * phase 2c, at start only: the seq file, kept open for the master's
     * life (the workers write it through the same descriptor); the ids'
     * mark is read once the stats zone is made (pd_seq_start)
     */
    ccf = pd_get_conf(cycle, pd_core_module);

    if (!pd_test_config && old_cycle->generation == 0
        && pd_seq_open((char *) ccf->seq_file.data,
                       pd_cycle_guard(cycle, &guard), reason, sizeof(reason))
           != PD_OK)
    {
        pd_log_error(PD_LOG_EMERG, cycle->log, 0, "%s", reason);
        pd_cycle_error(errbuf, errlen, "%s", reason);
        goto failed_quiet;
    }

    /* phase 3: modules declare listeners, zones, TLS contexts */
    if (pd_stats_add_zone(cycle) != PD_OK
        || pd_cycle_init_modules(cycle) != PD_OK)
    {
        pd_cycle_error(errbuf, errlen, "%s",
                    cycle->conf_errstr ? cycle->conf_errstr
                                       : "module initialisation failed");
        goto failed;
    }

    if (pd_test_config) {
        return cycle;
    }

    /* phase 4: shared memory, taken over from the old cycle by name */
    if (pd_cycle_init_shm(cycle, old_cycle) != PD_OK) {
        pd_cycle_error(errbuf, errlen,
                    "cannot create shared memory");
        goto failed;
    }

    /* the ids of this run start above the last run's mark */
    if (old_cycle->generation == 0 && pd_seq_start(cycle->log) != PD_OK) {
        pd_cycle_error(errbuf, errlen, "cannot write the seq file \"%s\"",
                       ccf->seq_file.data);
        pd_cycle_free_shm(cycle);
        goto failed;
    }

    /* phase 5: sockets, taken over from the old cycle or opened */
    if (pd_open_listening_sockets(cycle, reason, sizeof(reason)) != PD_OK) {
        if (cycle->log->path.len) {
            pd_cycle_error(errbuf, errlen, "%s; the error log is \"%s\"",
                           reason, cycle->log->path.data);
        } else {
            pd_cycle_error(errbuf, errlen, "%s", reason);
        }
        pd_cycle_free_shm(cycle);
        goto failed;
    }

    /* committed: the old cycle's leftovers go */
    if (old_cycle->listening.nelts) {
        pd_close_unused_listening(cycle, old_cycle);
    }

    pd_cycle_free_shm(old_cycle);

    if (old_cycle->pool != NULL) {
        pd_destroy_cycle(old_cycle);
    }

    cycle->old_cycle = NULL;
    pd_log_root = cycle->log;

    return cycle;

failed:

    if (errbuf[0] == '\0') {
        pd_cycle_error(errbuf, errlen,
                    "configuration failed, see the error log");
    }

failed_quiet:

    if (!pd_test_config && old_cycle->generation == 0) {
        pd_pidfile_abandon();
    }

    if (cycle->log != old_cycle->log && cycle->log->fd > STDERR_FILENO) {
        close(cycle->log->fd);
    }

    pd_destroy_pool(pool);
    return NULL;
}

static pd_int_t
pd_cycle_open_log(pd_cycle_t *cycle, pd_cycle_t *old, char *err,
    size_t len)
{
    pd_core_conf_t   *ccf;
    pd_file_guard_t   guard;

    (void) old;

    ccf = pd_get_conf(cycle, pd_core_module);

    cycle->new_log = *pd_log_root;
    cycle->new_log.path = ccf->error_log_path;
    cycle->new_log.log_level = ccf->error_log_level;
    cycle->new_log.connection = 0;
    cycle->new_log.handler = NULL;
    cycle->new_log.action = NULL;

    if (cycle->new_log.path.len == 0) {
        cycle->new_log.fd = STDERR_FILENO;

    } else if (pd_log_open(&cycle->new_log, pd_cycle_guard(cycle, &guard),
                           err, len)
               != PD_OK)
    {
        return PD_ERROR;
    }

    cycle->log = &cycle->new_log;
    cycle->pool->log = cycle->log;

    return PD_OK;
}

/*
 * The user the daemon's own files must be safe from: the workers' user
 * when a root master hands the workers to another user; NULL when there
 * is no such boundary (not root, or the workers stay root).
 */
const pd_file_guard_t *
pd_cycle_guard(pd_cycle_t *cycle, pd_file_guard_t *guard)
{
    pd_core_conf_t  *ccf;

    ccf = pd_get_conf(cycle, pd_core_module);

    if (geteuid() != 0 || ccf->uid == (uid_t) -1 || ccf->uid == 0
        || ccf->user_name == NULL)
    {
        return NULL;
    }

    guard->uid = ccf->uid;
    guard->gid = ccf->gid;
    guard->name = ccf->user_name;

    return guard;
}

static pd_int_t
pd_cycle_init_modules(pd_cycle_t *cycle)
{
    pd_uint_t  i;

    for (i = 0; pd_modules[i] != NULL; i++) {
        if (pd_modules[i]->init_module && cycle->enabled[i]
            && pd_modules[i]->init_module(cycle) != PD_OK)
        {
            return PD_ERROR;
        }
    }

    return PD_OK;
}

static pd_int_t
pd_cycle_init_shm(pd_cycle_t *cycle, pd_cycle_t *old)
{
    pd_shm_zone_t  *zone, *oz;
    pd_uint_t       i, j, inherited;
    pd_int_t        rc;
    void           *odata;

    zone = cycle->shared_memory.elts;

    for (i = 0; i < cycle->shared_memory.nelts; i++) {
        odata = NULL;
        oz = old->shared_memory.elts;

        for (j = 0; old->shared_memory.elts && j < old->shared_memory.nelts;
             j++)
        {
            if (oz[j].shm.addr != NULL && oz[j].tag == zone[i].tag
                && oz[j].shm.size == zone[i].shm.size
                && oz[j].shm.name.len == zone[i].shm.name.len
                && memcmp(oz[j].shm.name.data, zone[i].shm.name.data,
                          zone[i].shm.name.len) == 0)
            {
                /* same zone: the workers of both generations share it */
                zone[i].shm.addr = oz[j].shm.addr;
                zone[i].shm.fd = oz[j].shm.fd;
                zone[i].shm.memfd = oz[j].shm.memfd;
                oz[j].shm.memfd = 0;
                zone[i].shm.exists = 1;
                odata = oz[j].data;
                oz[j].shm.addr = NULL;
                break;
            }
        }

        inherited = 0;

        if (zone[i].shm.addr == NULL) {
            zone[i].shm.log = cycle->log;

            if (pd_upgrade_zone(&zone[i].shm) == PD_OK) {
                /* the old binary's: attached to, not formatted */
                odata = zone[i].data;
                inherited = 1;

            } else if (pd_shm_alloc(&zone[i].shm) != PD_OK) {
                goto failed;
            }
        }

        rc = zone[i].init ? zone[i].init(&zone[i], odata) : PD_OK;

        if (rc == PD_DECLINED && inherited) {
            /*
             * The old binary's zone is laid out otherwise (its owner
             * logged it): that binary's workers go on with it, this one
             * starts its own, as when the size changed
             */
            pd_shm_free(&zone[i].shm);
            zone[i].shm.memfd = 1;

            if (pd_shm_alloc(&zone[i].shm) != PD_OK) {
                goto failed;
            }

            rc = zone[i].init(&zone[i], NULL);
        }

        if (rc != PD_OK) {
            goto failed;
        }
    }

    return PD_OK;

failed:

    /* give back what was taken over; free what was new */
    for (j = 0; j <= i && j < cycle->shared_memory.nelts; j++) {
        if (zone[j].shm.addr == NULL || zone[j].shm.exists) {
            continue;
        }
        pd_shm_free(&zone[j].shm);
        zone[j].shm.addr = NULL;
    }

    return PD_ERROR;
}

static void
pd_cycle_free_shm(pd_cycle_t *cycle)
{
    pd_shm_zone_t  *zone;
    pd_uint_t       i;

    zone = cycle->shared_memory.elts;

    for (i = 0; zone && i < cycle->shared_memory.nelts; i++) {
        if (zone[i].shm.addr != NULL && !zone[i].shm.exists) {
            pd_shm_free(&zone[i].shm);
        }
        zone[i].shm.addr = NULL;
    }
}

void
pd_destroy_cycle(pd_cycle_t *cycle)
{
    if (cycle->log == &cycle->new_log && cycle->new_log.fd > STDERR_FILENO)
    {
        close(cycle->new_log.fd);
        cycle->new_log.fd = -1;
    }

    pd_destroy_pool(cycle->pool);
}

void
pd_reopen_files(pd_cycle_t *cycle)
{
    pd_core_conf_t         *ccf;
    const pd_file_guard_t  *guard;
    pd_file_guard_t         g;
    struct stat             st;
    char                    err[PD_MAX_ERROR_STR / 2];

    if (cycle->log->path.len == 0) {
        return;
    }

    ccf = pd_get_conf(cycle, pd_core_module);

    /* a worker runs as the guarded user: nothing to guard against */
    guard = pd_process == PD_PROCESS_MASTER ? pd_cycle_guard(cycle, &g)
                                            : NULL;

    if (pd_log_reopen(cycle->log, guard, err, sizeof(err)) != PD_OK) {
        pd_log_error(PD_LOG_ALERT, cycle->log, 0,
                     "reopening \"%s\" refused: %s; the old file stays in "
                     "use", cycle->log->path.data, err);
        return;
    }

    if (guard == NULL) {
        return;
    }

    /*
     * The master reopens first: the workers, running as `user`, must be
     * able to open the file it just created.  Only a file of root's
     * (created just now, or rotated in by root) is handed over; the
     * reopen checked it is a regular file of one link, and fstat() on
     * the descriptor names exactly what will be chowned.
     */
    if (fstat(cycle->log->fd, &st) == -1) {
        pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                     "fstat(\"%s\") failed", cycle->log->path.data);
        return;
    }

    if (!S_ISREG(st.st_mode) || st.st_uid == ccf->uid) {
        return;
    }

    if (st.st_uid != 0 || st.st_nlink != 1) {
        pd_log_error(PD_LOG_WARN, cycle->log, 0,
                     "\"%s\" belongs to uid %d: not handed to the workers' "
                     "user \"%s\", which may not be able to reopen it",
                     cycle->log->path.data, (int) st.st_uid, guard->name);
        return;
    }

    if (fchown(cycle->log->fd, ccf->uid, (gid_t) -1) == -1) {
        pd_log_error(PD_LOG_ALERT, cycle->log, errno,
                     "fchown(\"%s\", %d) failed", cycle->log->path.data,
                     (int) ccf->uid);
    }
}
