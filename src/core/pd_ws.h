/*
 * pd_ws.h: the WebSocket (RFC 6455) codec of the room: the handshake's
 * accept key, an incremental parser of client frames, UTF-8 validation
 * and the builders of server frames.  Pure code: no logging, no
 * allocation; errors are a close code and a static phrase.
 */

#ifndef PD_WS_H
#define PD_WS_H

#define PD_WS_CONT      0x0
#define PD_WS_TEXT      0x1
#define PD_WS_BINARY    0x2
#define PD_WS_CLOSE     0x8
#define PD_WS_PING      0x9
#define PD_WS_PONG      0xa

/* close codes (RFC 6455 7.4.1) */
#define PD_WS_CLOSE_NORMAL         1000
#define PD_WS_CLOSE_GOING_AWAY     1001
#define PD_WS_CLOSE_PROTOCOL       1002
#define PD_WS_CLOSE_UNSUPPORTED    1003
#define PD_WS_CLOSE_NO_STATUS      1005   /* never on the wire */
#define PD_WS_CLOSE_ABNORMAL       1006   /* never on the wire */
#define PD_WS_CLOSE_INVALID_DATA   1007   /* e.g. a text message not UTF-8 */
#define PD_WS_CLOSE_POLICY         1008
#define PD_WS_CLOSE_TOO_BIG        1009
#define PD_WS_CLOSE_EXTENSION      1010
#define PD_WS_CLOSE_INTERNAL       1011

#define PD_WS_MAX_HEADER      10    /* a server frame's header, at most */
#define PD_WS_MAX_CONTROL     125   /* payload of a control frame, at most */
#define PD_WS_MAX_REASON      (PD_WS_MAX_CONTROL - 2)
#define PD_WS_ACCEPT_LEN      28    /* Sec-WebSocket-Accept, without NUL */

typedef struct {
    /* limits, set by the caller (pd_ws_parser_init); 0: none */
    size_t         max_frame;       /* payload bytes of one frame */
    size_t         max_message;     /* payload bytes of a data message */

    /*
     * On PD_AGAIN: the size of the whole frame (header and payload) when
     * its header has arrived, else the header bytes known to be needed;
     * a caller that keeps a partial frame sizes its buffer by it.
     */
    size_t         need;

    /* on PD_ERROR: the code to close with and a short static phrase */
    const char    *error;
    unsigned       close_code:16;

    /* private: the data message in progress across fragments */
    unsigned       message_opcode:4;    /* 0: none */
    unsigned       failed:1;
    size_t         message_len;         /* its payload bytes so far */
} pd_ws_parser_t;

typedef struct {
    u_char        *payload;       /* inside the caller's buffer, unmasked */
    size_t         payload_len;
    pd_uint_t      opcode;        /* as sent: PD_WS_CONT for continuations */
    /* data frames: the message's opcode (TEXT or BINARY); control: opcode */
    pd_uint_t      message_opcode;
    /* close frames: the code sent, PD_WS_CLOSE_NO_STATUS for none */
    pd_uint_t      close_code;
    unsigned       fin:1;         /* the last frame of its message */
} pd_ws_frame_t;

/*
 * The state of an incremental UTF-8 check; a zeroed state is the start.
 * Three bytes, so that a connection may keep one cheaply.
 */
typedef struct {
    u_char         need;          /* continuation bytes still due */
    u_char         lo;            /* the range of the next one */
    u_char         hi;
} pd_utf8_state_t;

#define pd_utf8_init(st)  pd_memzero(st, sizeof(pd_utf8_state_t))

/*
 * Writes the Sec-WebSocket-Accept value for a Sec-WebSocket-Key to out
 * (PD_WS_ACCEPT_LEN characters and a NUL).  The key must be the base64
 * of 16 bytes: 22 characters of the base64 alphabet whose unused bits
 * are zero, then "==".  Returns PD_OK, or PD_ERROR for a bad key (or a
 * failure of libcrypto); out is then untouched.
 */
pd_int_t pd_ws_accept_key(const u_char *key, size_t len, u_char out[29]);
/* PD_OK when key is the base64 of 16 bytes, as above */
pd_int_t pd_ws_key_valid(const u_char *key, size_t len);

/* zeroes the parser and sets its limits (0: no limit) */
void pd_ws_parser_init(pd_ws_parser_t *p, size_t max_frame,
    size_t max_message);

/*
 * Parses one client frame at the start of buf[0 .. len).  Never reads
 * buf[len] or beyond, and never writes buf unless it returns PD_OK.
 *
 * PD_OK: f holds the frame, whose payload was unmasked in place in buf;
 * *consumed is the frame's size; the bytes after it are not looked at.
 *
 * PD_AGAIN: the frame is not complete; *consumed is 0 and p->need tells
 * how many bytes are needed.  Call again with the same bytes at the start
 * of buf (the same or another buffer) and more after them.  The header is
 * judged as soon as its bytes arrive, so a bad or too large frame fails
 * before its payload is read.
 *
 * PD_ERROR: p->close_code and p->error say why: 1002 for a protocol
 * error (unmasked frame, RSV bits, unknown opcode, fragmented or long
 * control frame, bad length, bad fragment sequence, bad close code),
 * 1009 for a frame over max_frame or a message over max_message, 1007
 * for a close reason that is not UTF-8.  Every later call fails the same.
 *
 * The parser follows the fragments of a data message: control frames may
 * come between them.  Text payloads are not checked for UTF-8 here; the
 * caller runs pd_utf8_validate() over the message (1007 on failure).
 */
pd_int_t pd_ws_parse(pd_ws_parser_t *p, u_char *buf, size_t len,
    pd_ws_frame_t *f, size_t *consumed);

/*
 * Checks p[0 .. len) as the next bytes of a UTF-8 text, carrying an
 * incomplete character over in st.  Refuses overlong forms, surrogates
 * (U+D800-DFFF) and code points past U+10FFFF as soon as the first byte
 * that makes them so arrives.  Returns PD_OK or PD_ERROR; after an error
 * the state stays failed until pd_utf8_init().
 */
pd_int_t pd_utf8_validate(pd_utf8_state_t *st, const u_char *p, size_t len);

/* PD_OK when the text checked so far ends on a whole character */
pd_int_t pd_utf8_complete(pd_utf8_state_t *st);

/*
 * Writes the header of a server frame (FIN set, unmasked: servers never
 * fragment nor mask) to dst, which holds PD_WS_MAX_HEADER bytes; returns
 * its size: 2, 4 or 10.
 */
size_t pd_ws_frame_header(u_char *dst, pd_uint_t opcode, size_t payload_len);

/*
 * Writes a close frame's payload to dst, which holds PD_WS_MAX_CONTROL
 * bytes: the code in network order, then the reason (NULL: none), cut to
 * PD_WS_MAX_REASON bytes at a character boundary.  Returns its size.
 */
size_t pd_ws_close_payload(u_char *dst, pd_uint_t code, const char *reason);

#endif /* PD_WS_H */
