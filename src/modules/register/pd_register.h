/*
 * pd_register.h: the register, uid -> live connections, seen by every
 * worker.  Callers use the backend-neutral calls below; the backend
 * (memory now, redis later) is a vtable of operations.  Lookups answer
 * through a callback so a networked backend can answer later; the memory
 * backend answers before pd_register_lookup() returns.
 */

#ifndef PD_REGISTER_H
#define PD_REGISTER_H

#define PD_REGISTER_MEMORY  0

typedef void (*pd_register_lookup_pt)(void *data, pd_int_t rc,
    pd_reg_info_t *info, pd_uint_t n);

typedef struct {
    const char  *name;
    pd_int_t   (*add)(const pd_reg_info_t *info);
    pd_int_t   (*remove)(const u_char *uid, size_t len, uint64_t conn);
    pd_int_t   (*set_apps)(const u_char *uid, size_t len, uint64_t conn,
                           u_char apps[][PD_REG_APP_MAX + 1],
                           uint32_t napps);
    pd_int_t   (*lookup)(const u_char *uid, size_t len,
                         pd_register_lookup_pt handler, void *data);
    pd_int_t   (*ip_acquire)(const struct sockaddr *sa, uint32_t limit);
    void       (*ip_release)(const struct sockaddr *sa);
    pd_uint_t  (*purge)(pid_t pid);
    pd_uint_t  (*count)(void);
} pd_register_backend_t;

typedef struct {
    pd_uint_t              backend;
    size_t                 memory;
    pd_int_t               max_ips;
    pd_shm_zone_t         *zone;
} pd_register_conf_t;

extern pd_module_t               pd_register_module;
extern pd_register_backend_t     pd_register_memory_backend;
/* NULL when the register section is absent: no presence, no kick */
extern pd_register_backend_t    *pd_register;
extern pd_reg_zone_t            *pd_register_zone;

/* the most entries pd_register_lookup() hands to its callback */
#define PD_REGISTER_LOOKUP_MAX  64

pd_int_t pd_register_memory_init(pd_cycle_t *cycle, pd_register_conf_t *rcf);

#endif /* PD_REGISTER_H */
