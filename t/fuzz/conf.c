/*
 * conf: the YAML configuration loader (pd_conf_file.c) with every module
 * compiled in, as "pushd -t" runs it: the document, the directive tables
 * and setters, then every module's init_conf.  Each run is a fresh cycle
 * in a pool of its own, freed after; an error must come as a message.
 *
 * Input: the file's bytes.
 */

#include "pd_fuzz.h"

#include <sys/mman.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int     fd = -1;
    static char    path[64];
    pd_cycle_t    *cycle;
    pd_pool_t     *pool;
    pd_str_t       file;
    u_char         err[PD_CONF_ERRSTR_SIZE];
    pd_uint_t      n;
    pd_int_t       rc;

    pd_fuzz_init();

    /* the file, in memory: a path the loader can fopen() */
    if (fd == -1) {
        fd = memfd_create("pushd.yaml", MFD_CLOEXEC);
        if (fd == -1) {
            abort();
        }
        (void) snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }

    if (ftruncate(fd, 0) != 0
        || (size && pwrite(fd, data, size, 0) != (ssize_t) size))
    {
        abort();
    }

    pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, pd_log_root);
    if (pool == NULL) {
        abort();
    }

    cycle = pd_pcalloc(pool, sizeof(pd_cycle_t));
    if (cycle == NULL) {
        abort();
    }

    cycle->pool = pool;
    cycle->log = pd_log_root;
    cycle->generation = 1;
    pd_str_set(&cycle->prefix, "/nonexistent/pushd/");
    file.data = (u_char *) path;
    file.len = strlen(path);
    cycle->conf_file = file;

    for (n = 0; pd_modules[n] != NULL; n++) {
        pd_modules[n]->index = n;
    }

    if (pd_array_init(&cycle->listening, pool, 8, sizeof(pd_listening_t))
        != PD_OK
        || pd_array_init(&cycle->shared_memory, pool, 4,
                         sizeof(pd_shm_zone_t)) != PD_OK)
    {
        abort();
    }

    err[0] = '\1';
    rc = pd_conf_parse(cycle, &file, err, sizeof(err));

    if (rc != PD_OK && (err[0] == '\0' || err[0] == '\1'
                        || memchr(err, '\0', sizeof(err)) == NULL))
    {
        abort();
    }

    pd_destroy_pool(pool);
    return 0;
}
