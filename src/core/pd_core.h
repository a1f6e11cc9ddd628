/*
 * pd_core.h: the one header every pushd source includes; basic types,
 * return codes and the forward declarations that tie the core together.
 */

#ifndef PD_CORE_H
#define PD_CORE_H

#include "pd_config.h"

typedef struct pd_pool_s        pd_pool_t;
typedef struct pd_log_s         pd_log_t;
typedef struct pd_buf_s         pd_buf_t;
typedef struct pd_chain_s       pd_chain_t;
typedef struct pd_shbuf_s       pd_shbuf_t;
typedef struct pd_event_s       pd_event_t;
typedef struct pd_timer_s       pd_timer_t;
typedef struct pd_connection_s  pd_connection_t;
typedef struct pd_listening_s   pd_listening_t;
typedef struct pd_cycle_s       pd_cycle_t;
typedef struct pd_module_s      pd_module_t;
typedef struct pd_conf_s        pd_conf_t;
typedef struct pd_command_s     pd_command_t;

typedef void (*pd_event_handler_pt)(pd_event_t *ev);
typedef void (*pd_connection_handler_pt)(pd_connection_t *c);

#define PD_OK          0
#define PD_ERROR      -1
#define PD_AGAIN      -2
#define PD_BUSY       -3
#define PD_DONE       -4
#define PD_DECLINED   -5
#define PD_ABORT      -6

/* returned by directive setters and init_conf on success */
#define PD_CONF_OK     NULL
#define PD_CONF_UNSET       -1
#define PD_CONF_UNSET_UINT  (pd_uint_t) -1
#define PD_CONF_UNSET_SIZE  (size_t) -1
#define PD_CONF_UNSET_MSEC  (pd_msec_t) -1

#define pd_conf_init_value(conf, def)                                        \
    if (conf == PD_CONF_UNSET) { conf = def; }
#define pd_conf_init_uint(conf, def)                                         \
    if (conf == PD_CONF_UNSET_UINT) { conf = def; }
#define pd_conf_init_size(conf, def)                                         \
    if (conf == PD_CONF_UNSET_SIZE) { conf = def; }
#define pd_conf_init_msec(conf, def)                                         \
    if (conf == PD_CONF_UNSET_MSEC) { conf = def; }

#define PD_ALIGNMENT   sizeof(unsigned long)
#define pd_align(d, a)     (((d) + (a - 1)) & ~(a - 1))
#define pd_align_ptr(p, a)                                                   \
    (u_char *) (((uintptr_t) (p) + ((uintptr_t) a - 1)) & ~((uintptr_t) a - 1))

#define pd_min(a, b)   ((a) < (b) ? (a) : (b))
#define pd_max(a, b)   ((a) > (b) ? (a) : (b))
#define pd_nelems(a)   (sizeof(a) / sizeof((a)[0]))

#define PD_LF     (u_char) '\n'
#define PD_CR     (u_char) '\r'
#define PD_CRLF   "\r\n"

#define PD_INVALID_FILE  -1

/* a reload runs two generations of workers side by side for a while */
#define PD_MAX_WORKERS    64
#define PD_MAX_PROCESSES  (2 * PD_MAX_WORKERS + 8)

#include "pd_string.h"
#include "pd_msg.h"
#include "pd_array.h"
#include "pd_queue.h"
#include "pd_palloc.h"
#include "pd_buf.h"
#include "pd_file.h"
#include "pd_log.h"
#include "pd_times.h"
#include "pd_timer.h"
#include "pd_inet.h"
#include "pd_addr_limit.h"
#include "pd_conf_file.h"
#include "pd_shmem.h"
#include "pd_event.h"
#include "pd_connection.h"
#include "pd_ssl.h"
#include "pd_stats.h"
#include "pd_seq.h"
#include "pd_channel.h"
#include "pd_cycle.h"
#include "pd_pidfile.h"
#include "pd_process.h"
#include "pd_process_cycle.h"
#include "pd_http_parse.h"
#include "pd_http.h"
#include "pd_json.h"
#include "pd_cidr.h"
#include "pd_ws.h"
#include "pd_token.h"
#include "pd_hash.h"
#include "pd_shtable.h"
#include "pd_shlock.h"
#include "pd_redis.h"
#include "pd_pg.h"
#include "pd_upgrade.h"

#endif /* PD_CORE_H */
