/* test_pd_shmem.c: unit tests for shared memory and zones (pd_shmem.c). */

#include "pd_core.h"

#include <setjmp.h>
#include <cmocka.h>


static char  pd_test_dir[] = "/tmp/pd_test_shmem.XXXXXX";
static char  pd_test_err[256];
static char  pd_test_log_path[256];


static int
pd_test_setup(void **state)
{
    (void) state;

    if (mkdtemp(pd_test_dir) == NULL) {
        return -1;
    }

    (void) snprintf(pd_test_log_path, sizeof(pd_test_log_path),
                    "%s/error.log", pd_test_dir);

    return 0;
}


static int
pd_test_teardown(void **state)
{
    char  cmd[128];

    (void) state;

    (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pd_test_dir);

    return system(cmd) == 0 ? 0 : -1;
}


/* a bare cycle: a pool and a log on a file, no shared_memory array yet */
static void
pd_test_cycle(pd_cycle_t *cycle, pd_log_t *log)
{
    pd_memzero(log, sizeof(pd_log_t));
    log->log_level = PD_LOG_DEBUG;
    log->path.data = (u_char *) pd_test_log_path;
    log->path.len = strlen(pd_test_log_path);
    assert_int_equal(pd_log_open(log, NULL, pd_test_err,
                                 sizeof(pd_test_err)), PD_OK);

    pd_memzero(cycle, sizeof(pd_cycle_t));
    cycle->log = log;
    cycle->pool = pd_create_pool(PD_POOL_DEFAULT_SIZE, 0, log);
    assert_non_null(cycle->pool);
}


static void
pd_test_cycle_done(pd_cycle_t *cycle)
{
    pd_destroy_pool(cycle->pool);
    (void) close(cycle->log->fd);
}


static size_t
pd_test_log_grep(const char *needle)
{
    int      fd;
    char     buf[8192];
    ssize_t  n;

    fd = open(pd_test_log_path, O_RDONLY);
    assert_true(fd != -1);
    n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    (void) close(fd);

    return strstr(buf, needle) != NULL;
}


/* what a child writes after fork is seen by the parent */
static void
pd_test_shared_across_fork(void **state)
{
    pid_t      pid;
    size_t     i;
    pd_shm_t   shm;
    int        status;
    pd_log_t   log;

    (void) state;

    pd_memzero(&log, sizeof(log));
    log.fd = STDERR_FILENO;
    log.log_level = PD_LOG_ERR;

    pd_memzero(&shm, sizeof(shm));
    shm.size = 1024 * 1024;
    shm.log = &log;
    pd_str_set(&shm.name, "test");

    assert_int_equal(pd_shm_alloc(&shm), PD_OK);
    assert_non_null(shm.addr);

    /* anonymous mappings start zeroed */
    for (i = 0; i < shm.size; i += 4096) {
        assert_int_equal(shm.addr[i], 0);
    }

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        for (i = 0; i < shm.size; i++) {
            shm.addr[i] = (u_char) (i * 7 + 3);
        }

        _exit(0);
    }

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    for (i = 0; i < shm.size; i++) {
        if (shm.addr[i] != (u_char) (i * 7 + 3)) {
            fail_msg("byte %zu is %u", i, shm.addr[i]);
        }
    }

    pd_shm_free(&shm);
    assert_null(shm.addr);

    /* freeing twice is harmless */
    pd_shm_free(&shm);
}


static void
pd_test_alloc_failure(void **state)
{
    pd_shm_t  shm;
    pd_log_t  log;

    (void) state;

    pd_memzero(&log, sizeof(log));
    log.log_level = PD_LOG_DEBUG;
    log.path.data = (u_char *) pd_test_log_path;
    log.path.len = strlen(pd_test_log_path);
    assert_int_equal(pd_log_open(&log, NULL, pd_test_err,
                                 sizeof(pd_test_err)), PD_OK);

    pd_memzero(&shm, sizeof(shm));
    shm.size = 0;
    shm.log = &log;
    pd_str_set(&shm.name, "empty");

    assert_int_equal(pd_shm_alloc(&shm), PD_ERROR);
    assert_null(shm.addr);
    assert_true(pd_test_log_grep("for zone \"empty\""));

    (void) close(log.fd);
}


static void
pd_test_zone_add(void **state)
{
    int             tag1, tag2;
    char            name[16];
    pd_str_t        s;
    pd_log_t        log;
    pd_cycle_t      cycle;
    pd_shm_zone_t  *z1, *z2, *z;

    (void) state;

    pd_test_cycle(&cycle, &log);

    strcpy(name, "register");
    s.data = (u_char *) name;
    s.len = strlen(name);

    z1 = pd_shared_memory_add(&cycle, &s, 65536, &tag1);
    assert_non_null(z1);
    assert_int_equal(cycle.shared_memory.nelts, 1);
    assert_int_equal(z1->shm.size, 65536);
    assert_ptr_equal(z1->tag, &tag1);
    assert_ptr_equal(z1->shm.log, &log);
    assert_null(z1->shm.addr);
    assert_null(z1->data);
    assert_null(z1->init);
    assert_false(z1->shm.exists);

    /* the name is copied: the caller's buffer may go */
    strcpy(name, "xxxxxxxx");
    assert_int_equal(z1->shm.name.len, 8);
    assert_memory_equal(z1->shm.name.data, "register", 8);

    strcpy(name, "register");

    /* the same declaration again is the same zone */
    z = pd_shared_memory_add(&cycle, &s, 65536, &tag1);
    assert_ptr_equal(z, z1);
    assert_int_equal(cycle.shared_memory.nelts, 1);

    /* the same name with another size or owner is a clash */
    assert_null(pd_shared_memory_add(&cycle, &s, 131072, &tag1));
    assert_true(pd_test_log_grep("shared memory zone \"register\" is "
                                 "already declared"));
    assert_null(pd_shared_memory_add(&cycle, &s, 65536, &tag2));
    assert_int_equal(cycle.shared_memory.nelts, 1);

    pd_str_set(&s, "saver");
    z2 = pd_shared_memory_add(&cycle, &s, 65536, &tag2);
    assert_non_null(z2);
    assert_true(z2 != z1);
    assert_int_equal(cycle.shared_memory.nelts, 2);

    s.len = 0;
    assert_null(pd_shared_memory_add(&cycle, &s, 4096, &tag1));

    pd_test_cycle_done(&cycle);
}


/* zones never move, so a module may keep the pointer it was given */
static void
pd_test_zone_pointers_stable(void **state)
{
    int             tag;
    char            name[16];
    pd_str_t        s;
    pd_log_t        log;
    pd_uint_t       i;
    pd_cycle_t      cycle;
    pd_shm_zone_t  *first, *z;

    (void) state;

    pd_test_cycle(&cycle, &log);

    /* the cycle may have set the array up smaller: it is resized once */
    assert_int_equal(pd_array_init(&cycle.shared_memory, cycle.pool, 4,
                                   sizeof(pd_shm_zone_t)), PD_OK);

    pd_str_set(&s, "zone0");
    first = pd_shared_memory_add(&cycle, &s, 4096, &tag);
    assert_non_null(first);
    first->data = &tag;

    for (i = 1; i < PD_SHM_MAX_ZONES; i++) {
        (void) snprintf(name, sizeof(name), "zone%lu", (unsigned long) i);
        s.data = (u_char *) name;
        s.len = strlen(name);

        z = pd_shared_memory_add(&cycle, &s, 4096, &tag);
        assert_non_null(z);
        assert_ptr_equal(z, first + i);
    }

    assert_ptr_equal(cycle.shared_memory.elts, first);

    pd_str_set(&s, "one-too-many");
    assert_null(pd_shared_memory_add(&cycle, &s, 4096, &tag));
    assert_true(pd_test_log_grep("too many shared memory zones"));

    assert_ptr_equal(cycle.shared_memory.elts, first);
    assert_ptr_equal(first->data, &tag);
    assert_memory_equal(first->shm.name.data, "zone0", 5);

    pd_test_cycle_done(&cycle);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(pd_test_shared_across_fork),
        cmocka_unit_test(pd_test_alloc_failure),
        cmocka_unit_test(pd_test_zone_add),
        cmocka_unit_test(pd_test_zone_pointers_stable),
    };

    return cmocka_run_group_tests(tests, pd_test_setup, pd_test_teardown);
}
