/*
 * pd_lg.h: the load generator's shared types: options, the shared-memory
 * board the processes count on, latency histograms and the connections.
 */

#ifndef PD_LG_H
#define PD_LG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef unsigned char  u_char;

#define PD_LG_MAX_PROCS      128
#define PD_LG_MAX_PIDS       160
#define PD_LG_MAX_PUBS       1024
#define PD_LG_MAX_PIPELINE   256
#define PD_LG_MAX_UIDS       1000
#define PD_LG_PER_PROC       18000   /* sockets a process holds, at most */
#define PD_LG_SEQ_MAX        (1 << 22)
#define PD_LG_MAX_SECS       600     /* seconds of receipts counted */

/* log-linear: 64 exact microseconds, then 32 steps per power of two */
#define PD_LG_HIST_LINEAR    64
#define PD_LG_HIST_SUB       32
#define PD_LG_HIST_N         (PD_LG_HIST_LINEAR + 40 * PD_LG_HIST_SUB)

/* the servers the same code drives */
enum {
    PD_LG_PUSHD = 0,
    PD_LG_NCHAN,
    PD_LG_BARE
};

enum {
    PD_LG_IDLE = 0,
    PD_LG_FANOUT,
    PD_LG_UNICAST,
    PD_LG_STORM
};

/* phases the parent sets on the board; the children follow */
enum {
    PD_LG_PH_INIT = 0,
    PD_LG_PH_CONNECT,
    PD_LG_PH_CLOSE,
    PD_LG_PH_RECONNECT,
    PD_LG_PH_EXIT
};

typedef struct {
    int            target;
    int            scenario;
    const char    *host;             /* the servers' address */
    int            port;             /* client (subscriber) port */
    int            api_port;         /* center / nchan publisher / trigger */
    int            conns;
    int            procs;
    int            concurrency;      /* handshakes in flight per process */
    const char    *secret;
    const char    *api_key;
    const char    *app;
    double         duration;         /* seconds of publishing */
    int            msg_size;         /* bytes of the message data */
    int            window;           /* fan-out: messages in flight */
    int            pipeline;         /* requests in flight per connection */
    int            pubconns;
    double         rate;             /* requests per second, 0: closed loop */
    int            uids;             /* uids per push request */
    int            qos;
    double         drain;            /* seconds to wait for stragglers */
    double         settle;           /* idle: seconds before measuring */
    pid_t          pids[PD_LG_MAX_PIDS];
    int            npids;
    const char    *label;
    unsigned       run;              /* tells this run's messages */
    int            tls;              /* subscribers over TLS */
} pd_lg_opts_t;

typedef struct {
    uint64_t       n;
    uint64_t       max;
    uint64_t       b[PD_LG_HIST_N];
} pd_lg_hist_t;

/*
 * One shared anonymous mapping made before fork: counters are updated
 * with atomic builtins, each process has its own histograms.
 */
typedef struct {
    volatile int   phase;
    volatile int   cap_permille;     /* share of its conns a child opens */
    uint64_t       connected;        /* sessions up (welcome for pushd) */
    uint64_t       ready;            /* children done with this phase */
    uint64_t       failed;           /* connect/handshake failures */
    uint64_t       retried;
    uint64_t       refused[8];       /* by status class: 0 other, 4, 5 */
    uint64_t       server_closed;    /* closed by the server when open */
    uint64_t       closed;           /* closed by us (storm) */
    uint64_t       received;         /* message frames */
    uint64_t       dups;
    uint64_t       bad;              /* messages we could not parse */
    uint64_t       stale;            /* messages of an earlier run */
    uint64_t       acks;
    uint64_t       wrong_uid;        /* a message to another uid */
    uint64_t       first_conn_ns;
    uint64_t       last_conn_ns;
    uint64_t       last_rx_ns;
    uint64_t       run_start_ns;     /* 0 until publishing starts */
    uint64_t       rx_sec[PD_LG_MAX_SECS];  /* receipts per second of it */
    pd_lg_hist_t   lat[PD_LG_MAX_PROCS];   /* delivery latency, per child */
    pd_lg_hist_t   conn_lat[PD_LG_MAX_PROCS];  /* connect to session */
    uint16_t       counts[PD_LG_SEQ_MAX];  /* receipts per message */
} pd_lg_board_t;

/*
 * What one subscriber received in a run, in a shared mapping indexed by
 * its global number (uid u<idx>): the fan-out's per-subscriber check
 * (each accepted message once, in order) and the unicast's (the uid a
 * message was pushed to is the one that got it).
 */
typedef struct {
    uint32_t       up;               /* a session came up this run */
    uint32_t       rx;               /* messages of this run */
    uint64_t       seq_sum;          /* of their sequence numbers */
    uint32_t       last;             /* the last sequence number + 1 */
    uint32_t       disorder;         /* receipts not after the last one */
} pd_lg_sub_t;

extern pd_lg_opts_t    pd_lg_opts;
extern pd_lg_board_t  *pd_lg_board;
extern pd_lg_sub_t    *pd_lg_subs;       /* opts.conns of them */
extern uint32_t       *pd_lg_first;      /* per seq: its first uid */

/* pd_lg_util.c */
uint64_t pd_lg_now(void);
void pd_lg_hist_add(pd_lg_hist_t *h, uint64_t us);
void pd_lg_hist_merge(pd_lg_hist_t *to, const pd_lg_hist_t *from);
double pd_lg_hist_pct(const pd_lg_hist_t *h, double q);
uint64_t pd_lg_rand(void);
void pd_lg_srand(uint64_t seed);
size_t pd_lg_ws_frame(u_char *out, int opcode, const u_char *payload,
    size_t len);
size_t pd_lg_data(u_char *out, uint64_t seq, uint64_t stamp);
int pd_lg_data_parse(const u_char *p, size_t len, uint64_t *seq,
    uint64_t *stamp);
const u_char *pd_lg_memmem(const u_char *h, size_t hl, const char *n);
int pd_lg_nonblock_socket(int idx, int port);
int64_t pd_lg_pss_kb(const pid_t *pids, int n, int64_t *shmem);
int pd_lg_cpu_ticks(const pid_t *pids, int n, uint64_t *user,
    uint64_t *sys);
int64_t pd_lg_meminfo_kb(const char *key);
void pd_lg_token(char *hex, const char *uid, const char *device,
    long expires);
ssize_t pd_lg_http_get(const char *path, char *out, size_t size);
double pd_lg_json_num(const char *json, const char *obj, const char *key);

/* pd_lg_sub.c: the children */
void pd_lg_child(int slot, int lo, int hi);

/* pd_lg_pub.c: the parent's API connections */
typedef struct pd_lg_pub_s  pd_lg_pub_t;

typedef struct {
    uint64_t       sent;             /* requests written */
    uint64_t       accepted;         /* 2xx answers */
    uint64_t       errors;           /* other answers */
    uint64_t       status[6];        /* answers by class 1xx..5xx */
    uint64_t       reconnects;
    uint64_t       lost_in_flight;   /* requests of a connection that died */
    uint64_t       expected;         /* deliveries the accepted ones owe */
    pd_lg_hist_t   api;              /* request to answer, microseconds */
} pd_lg_pubstat_t;

typedef int (*pd_lg_next_pt)(u_char *buf, size_t size, uint64_t *seq,
    int *ndeliveries);

int pd_lg_pub_init(int n);
int pd_lg_pub_outstanding(void);
int pd_lg_pub_can_send(void);
int pd_lg_pub_send(pd_lg_next_pt next);
int pd_lg_pub_poll(int timeout_ms);
void pd_lg_pub_close(void);
extern pd_lg_pubstat_t  pd_lg_pubstat;
extern uint8_t         *pd_lg_accepted;  /* per seq: 1 once answered 2xx */

#endif /* PD_LG_H */
