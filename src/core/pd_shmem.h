/*
 * pd_shmem.h: shared memory created by the master before fork, so every
 * worker maps it at the same address; zones survive a reload when their
 * name and size stay the same.
 */

#ifndef PD_SHMEM_H
#define PD_SHMEM_H

typedef struct {
    u_char      *addr;
    size_t       size;
    pd_str_t     name;
    pd_log_t    *log;
    int          fd;         /* its memfd, when memfd is set */
    unsigned     exists:1;   /* taken over from the old cycle */
    unsigned     memfd:1;    /* a cycle's zone: backed by a memfd, which
                              * a binary upgrade hands down (pd_upgrade) */
} pd_shm_t;

typedef struct pd_shm_zone_s  pd_shm_zone_t;
typedef pd_int_t (*pd_shm_zone_init_pt)(pd_shm_zone_t *zone, void *data);

struct pd_shm_zone_s {
    void                 *data;   /* the owner's view of the zone */
    pd_shm_t              shm;
    /* data: the old zone's data or NULL.  PD_DECLINED for a zone a
     * binary upgrade handed down that this binary cannot attach to (its
     * layout changed): the cycle maps a new one and calls it again */
    pd_shm_zone_init_pt   init;
    void                 *tag;    /* the owning module */
};

/*
 * The most zones one cycle may declare.  cycle->shared_memory is sized
 * for this many up front and never grows, so the zone pointers modules
 * keep stay valid (a growing pd_array_t would move its elements).
 */
#define PD_SHM_MAX_ZONES  32

pd_int_t pd_shm_alloc(pd_shm_t *shm);
void pd_shm_free(pd_shm_t *shm);
/* a worker maps the zone's pages that exist already (see the .c) */
void pd_shm_map_resident(pd_shm_t *shm);
/* declares a zone in the cycle being built; NULL on a name clash */
pd_shm_zone_t *pd_shared_memory_add(pd_cycle_t *cycle, pd_str_t *name,
    size_t size, void *tag);

#endif /* PD_SHMEM_H */
