/*
 * pd_msg.h: what every module agrees on about names and message ids, in
 * one place: the length limits of a uid, a device, an app and a node id,
 * how many apps a connection binds, and the message id, its format, its
 * parse and the buffer that holds it.
 *
 * A message id is "<node_id>-<hex seq>": the node that accepted the
 * message and its sequence there, unique in the cluster.  Clients treat
 * it as opaque; the memory store keys messages by seq, the cluster store
 * by the whole id.
 */

#ifndef PD_MSG_H
#define PD_MSG_H

#define PD_UID_MAX       64
#define PD_DEVICE_MAX    64
#define PD_APP_MAX       32
#define PD_APPS_MAX       8       /* apps bound to one connection */
#define PD_COLLAPSE_MAX  64       /* a push's collapse key */
#define PD_NODE_ID_MAX   32       /* node_id, checked at configuration */

/* an id's longest text, and a buffer that holds it with a NUL */
#define PD_MSG_ID_LEN    (PD_NODE_ID_MAX + 1 + 16)
#define PD_MSG_ID_SIZE   (PD_MSG_ID_LEN + 1)

/* a buffer for a node id with its NUL */
#define PD_NODE_ID_SIZE  (PD_NODE_ID_MAX + 1)

/* writes "<node>-<hex seq>" at p (no NUL); returns the end */
u_char *pd_msg_id(u_char *p, const pd_str_t *node, uint64_t seq);

/*
 * Splits an id into its node and its seq.  PD_OK; PD_ERROR when id is
 * not one (no dash, an empty or over-long node, a seq that is not 1 to
 * 16 lowercase hex digits).
 */
pd_int_t pd_msg_id_parse(const u_char *id, size_t len, pd_str_t *node,
    uint64_t *seq);

#endif /* PD_MSG_H */
