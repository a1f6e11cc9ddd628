/*
 * pd_cycle.h: a configuration generation.  The cycle owns its pool, the
 * module confs, the listening sockets, the shared-memory zones and the
 * open log.  A reload builds a new cycle from the old one; on any failure
 * the new one is destroyed and the old one keeps serving.
 */

#ifndef PD_CYCLE_H
#define PD_CYCLE_H

struct pd_module_s {
    const char        *name;       /* also the name of its YAML section */
    pd_uint_t          index;      /* set at start-up */
    pd_command_t      *commands;
    void            *(*create_conf)(pd_cycle_t *cycle);
    /* applies defaults and checks the whole section; NULL or a phrase */
    const char      *(*init_conf)(pd_cycle_t *cycle, void *conf);
    pd_int_t         (*init_module)(pd_cycle_t *cycle);   /* master */
    pd_int_t         (*init_process)(pd_cycle_t *cycle);  /* each worker */
    void             (*exit_process)(pd_cycle_t *cycle);
    void             (*exit_master)(pd_cycle_t *cycle);
    unsigned           toplevel:1; /* directives sit at the top level */
    /* a worker starts retiring (reload, QUIT): send clients away */
    void             (*retire_process)(pd_cycle_t *cycle);
    /* master: a worker died; clean what it left in shared memory */
    void             (*worker_exited)(pd_cycle_t *cycle, pid_t pid);
    /* its counters (pd_stats.h), NULL-ended, and their first place */
    pd_stats_counter_t *counters;
    pd_uint_t          stats_base;  /* set at start-up */
    /* more /metrics families of its own, appended to p; NULL: none */
    u_char          *(*metrics)(u_char *p, u_char *last);
};

extern pd_module_t  *pd_modules[];   /* NULL-terminated, objs/pd_modules.c */
extern const char   *pd_module_names[];

typedef struct {
    pd_int_t           daemon;
    pd_int_t           worker_processes;   /* -1 in the file means auto */
    pd_str_t           pid;
    pd_str_t           seq_file;
    pd_str_t           error_log;          /* "path level" */
    pd_str_t           error_log_path;
    pd_uint_t          error_log_level;
    pd_str_t           node_id;
    pd_str_t           user;
    char              *user_name;          /* NUL-terminated, for initgroups */
    uid_t              uid;
    gid_t              gid;
    pd_uint_t          worker_connections;
    pd_int_t           worker_rlimit_nofile;
    pd_int_t           worker_cpu_affinity; /* 1: auto */
    pd_msec_t          worker_shutdown_timeout;
    pd_str_t           working_directory;
} pd_core_conf_t;

struct pd_cycle_s {
    void             **conf_ctx;       /* one per module, by index */
    u_char            *enabled;        /* 1 when the module's section is in */
    pd_pool_t         *pool;
    pd_log_t          *log;
    pd_log_t           new_log;

    pd_array_t         listening;      /* pd_listening_t */
    pd_array_t         shared_memory;  /* pd_shm_zone_t */

    pd_connection_t   *connections;    /* reserved array, written as used */
    pd_connection_t   *free_connections;
    pd_uint_t          connection_n;
    pd_uint_t          connection_top; /* slots ever handed out: [0, top) */
    pd_uint_t          free_connection_n;
    pd_queue_t         reusable_connections;

    pd_cycle_t        *old_cycle;
    pd_str_t           conf_file;
    pd_str_t           prefix;
    pd_uint_t          generation;
    const char        *conf_errstr;    /* set by a failing init_module */
};

#define pd_get_conf(cycle, module)  (cycle)->conf_ctx[(module).index]
#define pd_module_enabled(cycle, module)  ((cycle)->enabled[(module).index])

extern pd_module_t          pd_core_module;
extern volatile pd_cycle_t *pd_cycle;
extern pd_uint_t            pd_test_config;
extern pd_uint_t            pd_ncpu;

/*
 * Builds a cycle: parses the file, opens the log, creates shared memory,
 * opens (or takes over from old_cycle) the listening sockets.  Returns
 * NULL after logging the reason; old_cycle is untouched then.
 */
pd_cycle_t *pd_init_cycle(pd_cycle_t *old_cycle, u_char *errbuf,
    size_t errlen);
/* the first, bare cycle used before any config is read */
pd_cycle_t *pd_cycle_bare(pd_str_t *prefix, pd_str_t *conf_file);
void pd_destroy_cycle(pd_cycle_t *cycle);
/*
 * The workers' user the daemon's files must be safe from, filled into
 * guard; NULL when the master is not root or the workers stay root.
 */
const pd_file_guard_t *pd_cycle_guard(pd_cycle_t *cycle,
    pd_file_guard_t *guard);
void pd_reopen_files(pd_cycle_t *cycle);
/* effective worker count ("auto" resolved) */
pd_uint_t pd_worker_count(pd_core_conf_t *ccf);

#endif /* PD_CYCLE_H */
