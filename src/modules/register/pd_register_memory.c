/*
 * pd_register_memory.c: the memory backend, a shared-memory zone that
 * every worker of this host maps (see pd_register_zone.c for its
 * layout and locking).  It survives reloads as long as its size stays
 * the same.
 */

#include "pd_core.h"
#include "pd_register.h"

pd_reg_zone_t  *pd_register_zone;

static int  pd_register_zone_tag;

static pd_int_t
pd_register_zone_init(pd_shm_zone_t *zone, void *data)
{
    pd_register_conf_t  *rcf = zone->data;
    uint32_t             max;

    max = pd_reg_zone_max_conns(zone->shm.size, (uint32_t) rcf->max_ips);

    pd_register_zone = pd_reg_zone_init(zone->shm.addr, zone->shm.size, max,
                                        (uint32_t) rcf->max_ips,
                                        data == NULL);
    if (pd_register_zone == NULL && data != NULL && errno == EPROTO) {
        /* only another binary lays its zone out otherwise: the cycle
         * maps a new zone and calls again (pd_cycle_init_shm) */
        pd_log_error(PD_LOG_WARN, zone->shm.log, 0,
                     "the register zone of the old binary is laid out "
                     "otherwise: this binary's starts empty, so the old "
                     "binary's clients are not found here, and reconnect "
                     "when it hands them over");
        return PD_DECLINED;
    }

    if (pd_register_zone == NULL) {
        pd_log_error(PD_LOG_EMERG, zone->shm.log, errno,
                     "register zone of %lu bytes cannot be %s (a reload "
                     "that changes max_ips must change memory too)",
                     (unsigned long) zone->shm.size,
                     data ? "attached" : "formatted");
        return PD_ERROR;
    }

    pd_log_error(PD_LOG_INFO, zone->shm.log, 0,
                 "register zone: %lu bytes, %u connections, %ld addresses%s",
                 (unsigned long) zone->shm.size, max, (long) rcf->max_ips,
                 data ? ", kept from the previous configuration" : "");

    zone->data = pd_register_zone;
    return PD_OK;
}

pd_int_t
pd_register_memory_init(pd_cycle_t *cycle, pd_register_conf_t *rcf)
{
    pd_shm_zone_t  *zone;
    pd_str_t        name = pd_string("pd_register");

    zone = pd_shared_memory_add(cycle, &name, rcf->memory,
                                &pd_register_zone_tag);
    if (zone == NULL) {
        return PD_ERROR;
    }

    /* init() sees the conf through data until the zone replaces it */
    if (zone->data == NULL) {
        zone->data = rcf;
    }

    zone->init = pd_register_zone_init;
    rcf->zone = zone;

    return PD_OK;
}

static pd_int_t
pd_register_memory_add(const pd_reg_info_t *info)
{
    return pd_reg_add(pd_register_zone, info);
}

static pd_int_t
pd_register_memory_remove(const u_char *uid, size_t len, uint64_t conn)
{
    return pd_reg_remove(pd_register_zone, uid, len, (int32_t) pd_pid,
                         conn);
}

static pd_int_t
pd_register_memory_set_apps(const u_char *uid, size_t len, uint64_t conn,
    u_char apps[][PD_APP_MAX + 1], uint32_t napps)
{
    return pd_reg_set_apps(pd_register_zone, uid, len, (int32_t) pd_pid,
                           conn, apps, napps);
}

static pd_int_t
pd_register_memory_move(const u_char *uid, size_t len, pid_t pid,
    uint64_t old_conn, uint64_t conn, uint32_t sid_tag)
{
    return pd_reg_move(pd_register_zone, uid, len, (int32_t) pid, old_conn,
                       (int32_t) pd_pid, (int32_t) pd_worker, conn, sid_tag);
}

static pd_int_t
pd_register_memory_lookup(const u_char *uid, size_t len,
    pd_register_lookup_pt handler, void *data)
{
    static pd_reg_info_t  info[PD_REGISTER_LOOKUP_MAX];
    pd_uint_t             n;

    n = pd_reg_lookup(pd_register_zone, uid, len, info,
                      PD_REGISTER_LOOKUP_MAX);

    handler(data, PD_OK, info, pd_min(n, PD_REGISTER_LOOKUP_MAX));
    return PD_OK;
}

static pd_int_t
pd_register_memory_ip_acquire(const struct sockaddr *sa, uint32_t limit)
{
    return pd_reg_ip_acquire(pd_register_zone, sa, (int32_t) pd_pid, limit);
}

static void
pd_register_memory_ip_release(const struct sockaddr *sa)
{
    pd_reg_ip_release(pd_register_zone, sa, (int32_t) pd_pid);
}

static pd_uint_t
pd_register_memory_purge(pid_t pid)
{
    return pd_reg_purge_pid(pd_register_zone, (int32_t) pid);
}

static pd_int_t
pd_register_memory_set_lingering(const u_char *uid, size_t len, uint64_t conn,
    pd_uint_t on)
{
    return pd_reg_set_lingering(pd_register_zone, uid, len, (int32_t) pd_pid,
                                conn, on);
}

static pd_uint_t
pd_register_memory_count(void)
{
    return pd_reg_count(pd_register_zone);
}

/* the zone is every worker's view at once: nothing to wait for */
static pd_int_t
pd_register_memory_barrier(const u_char *uid, size_t len,
    pd_register_done_pt done, void *data)
{
    (void) uid;
    (void) len;
    (void) done;
    (void) data;

    return PD_DECLINED;
}


pd_register_backend_t  pd_register_memory_backend = {
    "memory",
    pd_register_memory_add,
    pd_register_memory_remove,
    pd_register_memory_set_apps,
    pd_register_memory_set_lingering,
    pd_register_memory_move,
    pd_register_memory_lookup,
    pd_register_memory_ip_acquire,
    pd_register_memory_ip_release,
    pd_register_memory_purge,
    pd_register_memory_count,
    pd_register_memory_barrier
};
