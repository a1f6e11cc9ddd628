/*
 * pd_config.h: system headers and the feature switches configure chose.
 * The only place where #if on features is allowed.
 */

#ifndef PD_CONFIG_H
#define PD_CONFIG_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "pd_auto_config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <sys/prctl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <limits.h>
#include <time.h>
#include <pwd.h>
#include <grp.h>
#include <sched.h>
#include <ctype.h>
#include <malloc.h>

typedef intptr_t        pd_int_t;
typedef uintptr_t       pd_uint_t;
typedef int             pd_fd_t;
typedef int             pd_socket_t;
typedef int             pd_err_t;
typedef uint64_t        pd_msec_t;
typedef unsigned char   u_char;

#define PD_INT_T_LEN    (sizeof("-9223372036854775808") - 1)
#define PD_MAX_INT_T_VALUE  INTPTR_MAX

#if (PD_DEBUG)
#define pd_debug_enabled 1
#else
#define pd_debug_enabled 0
#endif

#endif /* PD_CONFIG_H */
