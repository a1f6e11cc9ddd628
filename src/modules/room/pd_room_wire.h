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

#endif /* PD_ROOM_WIRE_H */
