/* of_front.h — the OpenFlow connection's front end for streamed flow-mod adds.
 *
 * Design note.  `ovs-ofctl add-flows` (and controllers that pace themselves
 * with barriers) send, per rule, one OF1.3 flow-mod ADD and one barrier,
 * and wait for the barrier reply.  In Python, framing, decoding and
 * answering that pair cost more than OVS spends on the whole rule.  This
 * front end does it for the messages it can prove are fine: one call per
 * received buffer frames every message in it, answers barriers (the reply
 * is the request's header with the reply type), and turns every flow-mod
 * of a known shape into a compact record; it stops at the first message it
 * does not fully handle, which the Python path then handles as before.
 *
 * A known shape (a "pattern") is taught by the Python side after its own
 * decoder and checks accepted a message of that shape
 * (vswitch/ofproto/conn/front.py): the OXM bytes of the match with the
 * bytes that must be equal (the OXM headers, and the values of the fields
 * other fields need as prerequisites: eth_type, ip_proto) and the
 * instruction section, byte for byte (a section whose every check passes
 * in any table, whatever the groups and meters).  A message takes a pattern
 * only if everything the Python path checks is then known to pass: OF1.3,
 * type FLOW_MOD, command ADD, no buffer, no CHECK_OVERLAP, a table the
 * Python side enabled (vs_of_front_enable: it exists, holds rules, and no
 * megaflow depends on it, so the add may wait: ofswitch.py), the length the
 * pattern implies.  Values of the other fields are taken as they are (the
 * pattern holds only exact full-width fields, so any value is valid).
 *
 * Records are appended to a caller's buffer in `struct vs_of_front_rec`
 * layout; the Python side applies them in bulk (FlowTables) before anything
 * reads the tables.
 *
 * Threads: one front end belongs to one bridge and is used from the event
 * loop thread only; no locks.
 */
#ifndef VS_OF_FRONT_H
#define VS_OF_FRONT_H 1

#include <stddef.h>
#include <stdint.h>

#define VS_OF_FRONT_MAX_FIELDS 8     /* match fields a pattern carries */
#define VS_OF_FRONT_MAX_PATTERNS 64  /* patterns kept (then the oldest is replaced) */
#define VS_OF_FRONT_MAX_OXM 128      /* bytes of OXM TLVs a pattern holds */
#define VS_OF_FRONT_MAX_SECTION 256  /* bytes of an instruction section a pattern holds */

/* One accepted flow-mod ADD.  values[i]: field i of the pattern, as a
 * host-order integer (fields of 1, 2, 4 or 8 bytes). */
struct vs_of_front_rec {
    uint64_t cookie;
    uint64_t values[VS_OF_FRONT_MAX_FIELDS];
    uint16_t priority;
    uint16_t idle_timeout;
    uint16_t hard_timeout;
    uint16_t flags;
    uint8_t table_id;
    uint8_t pattern;
    uint8_t pad[6];
};

/* What one scan did. */
struct vs_of_front_result {
    size_t consumed;   /* bytes of whole messages handled */
    size_t out_len;    /* reply bytes written */
    size_t n_records;  /* records written */
};

struct vs_of_front;

struct vs_of_front *vs_of_front_new(void);
void vs_of_front_free(struct vs_of_front *front);

/* A pattern: `oxm`/`fixed` are the match's OXM bytes (oxm_len = match_len
 * - 4) and a byte mask of those that must be equal; n_fields values at
 * value_off[i] (from the start of the OXM bytes) of value_size[i] bytes;
 * `section`: the instruction section.  -> its id, or -1 if too big. */
int vs_of_front_add_pattern(struct vs_of_front *front, const uint8_t *oxm, const uint8_t *fixed,
                            uint16_t oxm_len, uint16_t n_fields, const uint16_t *value_off,
                            const uint8_t *value_size, const uint8_t *section, uint16_t section_len);

/* Flow-mods into `table_id` may (on != 0) or may not be taken. */
void vs_of_front_enable(struct vs_of_front *front, uint8_t table_id, int on);
/* No table may: until the Python side enables one again. */
void vs_of_front_disable_all(struct vs_of_front *front);
/* Is any table enabled? */
int vs_of_front_active(const struct vs_of_front *front);

/* Handle the whole messages of buf[0..len) up to the first one this front
 * end does not take (or whose reply or record does not fit).  Barrier
 * replies go to out (at most out_cap bytes), records to recs (at most
 * rec_cap).  Fills *res; returns the number of messages handled. */
size_t vs_of_front_scan(struct vs_of_front *front, const uint8_t *buf, size_t len, uint8_t *out,
                        size_t out_cap, struct vs_of_front_rec *recs, size_t rec_cap,
                        struct vs_of_front_result *res);

/* Why vs_of_front_pump returned. */
#define VS_OF_FRONT_PUMP_IDLE 0    /* nothing arrived within the window after our last reply */
#define VS_OF_FRONT_PUMP_REST 1    /* rbuf[rest_off..+rest_len) is for the Python path */
#define VS_OF_FRONT_PUMP_BUDGET 2  /* the time budget is spent */
#define VS_OF_FRONT_PUMP_CLOSED 3  /* EOF or a socket error (err): the transport's own read sees EOF */

struct vs_of_front_pump_result {
    int reason;             /* VS_OF_FRONT_PUMP_* */
    size_t rest_off;        /* REST: bytes read that the scan did not take */
    size_t rest_len;
    size_t unsent_off;      /* out[unsent_off..+unsent_len): replies the socket did not take */
    size_t unsent_len;
    size_t n_records;
    size_t n_reads;         /* reads that brought bytes */
    int64_t max_gap_ns;     /* slowest reply -> next request gap seen */
    int err;                /* CLOSED by a socket error: its errno (the read took it
                             * from the socket, so only the caller can report it) */
};

/* The streaming loop in C (conn/busy_poll.py's polling, for a connection
 * whose front end is on): read the socket `fd` without blocking into rbuf,
 * scan what came (vs_of_front_scan), send the replies, and again, until
 * nothing arrives within window_ns of the last reply, budget_ns is spent, a
 * read holds bytes the scan does not take (incomplete or for Python), a
 * send does not take all, or the records are full (then the read's rest is
 * for Python too).  Never blocks; leaves the socket to the caller on EOF or
 * error.  Returns the reason, also in res->reason. */
int vs_of_front_pump(struct vs_of_front *front, int fd, uint8_t *rbuf, size_t rcap, uint8_t *out,
                     size_t out_cap, struct vs_of_front_rec *recs, size_t rec_cap, int64_t window_ns,
                     int64_t budget_ns, struct vs_of_front_pump_result *res);

#endif /* VS_OF_FRONT_H */
