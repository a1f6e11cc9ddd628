/* pd_shmem.c: anonymous shared mappings and the cycle's zone list. */

#include "pd_core.h"


/*
 * Maps shm->size bytes shared and zero-filled.  Called in the master
 * before fork, so every worker inherits the mapping at the same address
 * and pointers stored inside a zone are valid in all of them.  PD_ERROR
 * (logged to shm->log when set) on failure.
 */
pd_int_t
pd_shm_alloc(pd_shm_t *shm)
{
    void  *addr;
    int    fd;

    if (shm->memfd) {
        /* the same pages, but with a name a new binary can be given */
        fd = memfd_create((char *) shm->name.data, MFD_CLOEXEC);

        if (fd != -1 && ftruncate(fd, (off_t) shm->size) == 0) {
            addr = mmap(NULL, shm->size, PROT_READ | PROT_WRITE, MAP_SHARED,
                        fd, 0);
            if (addr != MAP_FAILED) {
                shm->addr = addr;
                shm->fd = fd;
                return PD_OK;
            }
        }

        if (fd != -1) {
            (void) close(fd);
        }

        /* an anonymous mapping then: it cannot cross an upgrade */
        shm->memfd = 0;
    }

    addr = mmap(NULL, shm->size, PROT_READ | PROT_WRITE,
                MAP_ANONYMOUS | MAP_SHARED, -1, 0);

    if (addr == MAP_FAILED) {
        if (shm->log != NULL) {
            pd_log_error(PD_LOG_ALERT, shm->log, errno,
                         "mmap(MAP_ANONYMOUS|MAP_SHARED, %zu) failed "
                         "for zone \"%.*s\"", shm->size,
                         (int) shm->name.len, (char *) shm->name.data);
        }

        return PD_ERROR;
    }

    shm->addr = addr;

    return PD_OK;
}


#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ  22      /* Linux 5.14 */
#endif

/*
 * Maps into this process the pages of the zone that exist already (the
 * tables the master formatted), and only those: a fresh worker inherits
 * the mapping, not its page table.  Without this, the first lookups fault
 * those pages in one by one (a page fault each in the middle of a burst
 * of connections), and per-process memory accounting (PSS) shows memory
 * that existed from the start as if each new connection had allocated
 * it.  Pages never written stay unallocated: mincore() tells them apart.
 */
void
pd_shm_map_resident(pd_shm_t *shm)
{
    u_char   *vec;
    size_t    page, n, i, run;
    long      ps;

    ps = sysconf(_SC_PAGESIZE);
    page = (ps > 0) ? (size_t) ps : 4096;
    n = (shm->size + page - 1) / page;

    vec = malloc(n);
    if (vec == NULL) {
        return;
    }

    if (mincore(shm->addr, shm->size, vec) == -1) {
        free(vec);
        return;
    }

    for (i = 0; i < n; i += run) {
        for (run = 0; i + run < n && (vec[i + run] & 1); run++) {
            /* void */
        }

        if (run == 0) {
            run = 1;
            continue;
        }

        if (madvise(shm->addr + i * page, run * page, MADV_POPULATE_READ)
            == -1)
        {
            /* an older kernel: a read per page does the same */
            for (size_t j = 0; j < run; j++) {
                (void) *(volatile u_char *) (shm->addr + (i + j) * page);
            }
        }
    }

    free(vec);
}


/* unmaps the zone; a NULL address is a no-op */
void
pd_shm_free(pd_shm_t *shm)
{
    if (shm->addr == NULL) {
        return;
    }

    if (munmap(shm->addr, shm->size) == -1 && shm->log != NULL) {
        pd_log_error(PD_LOG_ALERT, shm->log, errno,
                     "munmap(%p, %zu) failed", (void *) shm->addr,
                     shm->size);
    }

    shm->addr = NULL;

    if (shm->memfd) {
        (void) close(shm->fd);
        shm->memfd = 0;
    }
}


/*
 * Declares a zone in the cycle being built (during configuration; the
 * cycle maps it later).  Declaring a name again with the same size and
 * tag returns the zone already declared; with another size or tag it is
 * a clash and NULL is returned (logged to cycle->log), as it is for an
 * empty name, an exhausted pool, or past PD_SHM_MAX_ZONES zones.  The
 * name is copied into the cycle pool; the zone itself lives in
 * cycle->shared_memory, whose elements never move.
 */
pd_shm_zone_t *
pd_shared_memory_add(pd_cycle_t *cycle, pd_str_t *name, size_t size,
    void *tag)
{
    u_char         *data;
    pd_uint_t       i;
    pd_shm_zone_t  *zone;

    if (name->len == 0) {
        /* zones are matched across reloads by name: one is required */
        return NULL;
    }

    /*
     * The array gets its full size before the first zone: later growth
     * would move zones that modules already point to.  An empty array
     * the cycle set up smaller is replaced; no pointer into it exists.
     */
    if (cycle->shared_memory.elts == NULL
        || (cycle->shared_memory.nelts == 0
            && cycle->shared_memory.nalloc < PD_SHM_MAX_ZONES))
    {
        if (pd_array_init(&cycle->shared_memory, cycle->pool,
                          PD_SHM_MAX_ZONES, sizeof(pd_shm_zone_t))
            != PD_OK)
        {
            return NULL;
        }
    }

    zone = cycle->shared_memory.elts;

    for (i = 0; i < cycle->shared_memory.nelts; i++) {
        if (zone[i].shm.name.len != name->len
            || memcmp(zone[i].shm.name.data, name->data, name->len) != 0)
        {
            continue;
        }

        if (zone[i].shm.size != size || zone[i].tag != tag) {
            if (cycle->log != NULL) {
                pd_log_error(PD_LOG_EMERG, cycle->log, 0,
                             "shared memory zone \"%.*s\" is already "
                             "declared with size %zu by another owner "
                             "or with another size",
                             (int) name->len, (char *) name->data,
                             zone[i].shm.size);
            }

            return NULL;
        }

        return &zone[i];
    }

    if (cycle->shared_memory.nelts >= cycle->shared_memory.nalloc) {
        /* growing would move the zones modules already point to */
        if (cycle->log != NULL) {
            pd_log_error(PD_LOG_EMERG, cycle->log, 0,
                         "too many shared memory zones (%lu)",
                         (unsigned long) cycle->shared_memory.nalloc);
        }

        return NULL;
    }

    data = pd_pnalloc(cycle->pool, name->len + 1);
    if (data == NULL) {
        return NULL;
    }

    pd_memcpy(data, name->data, name->len);
    data[name->len] = '\0';

    zone = pd_array_push(&cycle->shared_memory);
    if (zone == NULL) {
        return NULL;
    }

    pd_memzero(zone, sizeof(pd_shm_zone_t));

    zone->shm.size = size;
    zone->shm.name.len = name->len;
    zone->shm.name.data = data;
    zone->shm.log = cycle->log;
    zone->shm.fd = -1;
    zone->shm.memfd = 1;
    zone->tag = tag;

    return zone;
}
