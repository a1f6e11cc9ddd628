/*
 * pd_room_wire.h: the room's own wire formats, private to
 * src/modules/room: the channel commands that carry deliveries, kicks
 * and broadcasts between workers (and, through the register's Redis
 * channels, between nodes), and their layouts.  Callers outside the room
 * use the routing interface in pd_room.h instead.
 */

#ifndef PD_ROOM_WIRE_H
#define PD_ROOM_WIRE_H

/* channel commands of the room */
#define PD_CMD_ROOM_KICK   (PD_CMD_MODULE_BASE + 0)
#define PD_CMD_ROOM_SEND   (PD_CMD_MODULE_BASE + 1)
#define PD_CMD_ROOM_BCAST  (PD_CMD_MODULE_BASE + 2)
/* a resumed session's new connection, its fd and request (pd_room_linger.c) */
#define PD_CMD_ROOM_RESUME (PD_CMD_MODULE_BASE + 3)
/* a lingering session ends: its client has a fresh one elsewhere */
#define PD_CMD_ROOM_END    (PD_CMD_MODULE_BASE + 4)
/* a reload's live hand-over (pd_room_handover.c): a retiring worker's
 * connection, its fd and session; the answer (the id it has now, or
 * none: refused); a frame that came for it to the old worker after */
#define PD_CMD_ROOM_ADOPT  (PD_CMD_MODULE_BASE + 5)
#define PD_CMD_ROOM_MOVED  (PD_CMD_MODULE_BASE + 6)
#define PD_CMD_ROOM_FWD    (PD_CMD_MODULE_BASE + 7)

/* a delivery batch: this, nconns uint64 connection ids, the frame */
typedef struct {
    pd_msec_t        stamp;
    uint32_t         nconns;
    uint32_t         frame_len;
} pd_room_batch_t;

/* a broadcast: this, the app name, the frame */
typedef struct {
    pd_msec_t        stamp;
    uint64_t         seq;
    uint32_t         rate;          /* this worker's share, per second */
    uint32_t         frame_len;
    uint16_t         app_len;
    uint16_t         retained;
} pd_room_bcast_hdr_t;

void pd_room_bcast_start(pd_room_bcast_hdr_t *hdr, const u_char *app,
    const u_char *frame);

/* a forwarded frame: this, then the frame */
typedef struct {
    pd_msec_t        stamp;
    uint64_t         seq;           /* a broadcast's, else 0 */
} pd_room_fwd_t;

/* the room listener of this worker a plain socket came in on (its local
 * port), for a socket a sibling sends; NULL if none */
pd_listening_t *pd_room_listener_for(pd_cycle_t *cycle, pd_socket_t fd);

#endif /* PD_ROOM_WIRE_H */
