/* of_front.c — see of_front.h.  Offsets are those of OF1.3's ofp_flow_mod
 * (section 7.3.4.1) and ofp_header. */
#include "of_front.h"
#include "datapath.h" /* vs_now_ns */

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define OFP13_VERSION 4
#define OFPT13_FLOW_MOD 14
#define OFPT13_BARRIER_REQUEST 20
#define OFPT13_BARRIER_REPLY 21
#define OFP_HEADER_LEN 8
#define OFPFC_ADD 0
#define OFPFF_CHECK_OVERLAP (1 << 1)
#define OFP_NO_BUFFER 0xffffffffu
#define OFPMT_OXM 1
#define MATCH_HEADER_LEN 4        /* ofp_match's type and length */
#define N_TABLES 256

/* ofp_flow_mod field offsets */
#define FM_COOKIE 8
#define FM_TABLE_ID 24
#define FM_COMMAND 25
#define FM_IDLE 26
#define FM_HARD 28
#define FM_PRIORITY 30
#define FM_BUFFER_ID 32
#define FM_FLAGS 44
#define FM_MATCH 48
#define FM_OXM (FM_MATCH + MATCH_HEADER_LEN)

struct pattern {
    uint16_t oxm_len;
    uint16_t section_len;
    uint16_t n_fields;
    uint16_t value_off[VS_OF_FRONT_MAX_FIELDS];
    uint8_t value_size[VS_OF_FRONT_MAX_FIELDS];
    uint8_t oxm[VS_OF_FRONT_MAX_OXM];
    uint8_t fixed[VS_OF_FRONT_MAX_OXM];
    uint8_t section[VS_OF_FRONT_MAX_SECTION];
    size_t msg_len;               /* the whole flow-mod's length */
};

struct vs_of_front {
    struct pattern patterns[VS_OF_FRONT_MAX_PATTERNS];
    int n_patterns;
    int next_slot;                /* replaced next once all slots are used */
    int last;                     /* the pattern taken last: tried first */
    uint8_t enabled[N_TABLES];
    int n_enabled;
};

static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static inline uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t get_be(const uint8_t *p, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v = v << 8 | p[i];
    return v;
}

static size_t pad8(size_t n) { return (n + 7) / 8 * 8; }

struct vs_of_front *vs_of_front_new(void)
{
    return calloc(1, sizeof(struct vs_of_front));
}

void vs_of_front_free(struct vs_of_front *front)
{
    free(front);
}

int vs_of_front_add_pattern(struct vs_of_front *front, const uint8_t *oxm, const uint8_t *fixed,
                            uint16_t oxm_len, uint16_t n_fields, const uint16_t *value_off,
                            const uint8_t *value_size, const uint8_t *section, uint16_t section_len)
{
    if (oxm_len > VS_OF_FRONT_MAX_OXM || section_len > VS_OF_FRONT_MAX_SECTION ||
        n_fields > VS_OF_FRONT_MAX_FIELDS)
        return -1;
    for (unsigned i = 0; i < n_fields; i++)
        if ((size_t)value_off[i] + value_size[i] > oxm_len || value_size[i] > sizeof(uint64_t))
            return -1;
    int id;
    if (front->n_patterns < VS_OF_FRONT_MAX_PATTERNS) {
        id = front->n_patterns++;
    } else {
        id = front->next_slot;
        front->next_slot = (front->next_slot + 1) % VS_OF_FRONT_MAX_PATTERNS;
    }
    struct pattern *p = &front->patterns[id];
    memset(p, 0, sizeof *p);
    p->oxm_len = oxm_len;
    p->section_len = section_len;
    p->n_fields = n_fields;
    memcpy(p->value_off, value_off, n_fields * sizeof *value_off);
    memcpy(p->value_size, value_size, n_fields);
    memcpy(p->oxm, oxm, oxm_len);
    memcpy(p->fixed, fixed, oxm_len);
    for (unsigned i = 0; i < oxm_len; i++)
        p->oxm[i] &= p->fixed[i];
    memcpy(p->section, section, section_len);
    p->msg_len = FM_MATCH + pad8(MATCH_HEADER_LEN + (size_t)oxm_len) + section_len;
    return id;
}

void vs_of_front_enable(struct vs_of_front *front, uint8_t table_id, int on)
{
    on = !!on;
    if (front->enabled[table_id] != on) {
        front->enabled[table_id] = (uint8_t)on;
        front->n_enabled += on ? 1 : -1;
    }
}

void vs_of_front_disable_all(struct vs_of_front *front)
{
    memset(front->enabled, 0, sizeof front->enabled);
    front->n_enabled = 0;
}

int vs_of_front_active(const struct vs_of_front *front)
{
    return front->n_enabled > 0;
}

/* Does flow-mod `msg` (msg_len bytes, fixed part already checked) take
 * pattern p? */
static int takes(const struct pattern *p, const uint8_t *msg, size_t msg_len)
{
    if (msg_len != p->msg_len || get16(msg + FM_MATCH + 2) != MATCH_HEADER_LEN + p->oxm_len)
        return 0;
    const uint8_t *oxm = msg + FM_OXM;
    for (unsigned i = 0; i < p->oxm_len; i++)
        if ((oxm[i] & p->fixed[i]) != p->oxm[i])
            return 0;
    return memcmp(msg + msg_len - p->section_len, p->section, p->section_len) == 0;
}

/* The pattern flow-mod `msg` takes, or -1. */
static int find_pattern(struct vs_of_front *front, const uint8_t *msg, size_t msg_len)
{
    if (front->n_patterns && takes(&front->patterns[front->last], msg, msg_len))
        return front->last;
    for (int i = 0; i < front->n_patterns; i++) {
        if (i != front->last && takes(&front->patterns[i], msg, msg_len)) {
            front->last = i;
            return i;
        }
    }
    return -1;
}

static void fill_record(const struct pattern *p, int id, const uint8_t *msg, struct vs_of_front_rec *r)
{
    memset(r, 0, sizeof *r);
    r->cookie = get_be(msg + FM_COOKIE, 8);
    r->table_id = msg[FM_TABLE_ID];
    r->idle_timeout = get16(msg + FM_IDLE);
    r->hard_timeout = get16(msg + FM_HARD);
    r->priority = get16(msg + FM_PRIORITY);
    r->flags = get16(msg + FM_FLAGS);
    r->pattern = (uint8_t)id;
    for (unsigned i = 0; i < p->n_fields; i++)
        r->values[i] = get_be(msg + FM_OXM + p->value_off[i], p->value_size[i]);
}

size_t vs_of_front_scan(struct vs_of_front *front, const uint8_t *buf, size_t len, uint8_t *out,
                        size_t out_cap, struct vs_of_front_rec *recs, size_t rec_cap,
                        struct vs_of_front_result *res)
{
    size_t pos = 0, out_len = 0, n_recs = 0, n_msgs = 0;
    while (len - pos >= OFP_HEADER_LEN) {
        const uint8_t *msg = buf + pos;
        size_t msg_len = get16(msg + 2);
        if (msg_len < OFP_HEADER_LEN || len - pos < msg_len || msg[0] != OFP13_VERSION)
            break;
        if (msg[1] == OFPT13_BARRIER_REQUEST && msg_len == OFP_HEADER_LEN) {
            if (out_cap - out_len < OFP_HEADER_LEN)
                break;
            memcpy(out + out_len, msg, OFP_HEADER_LEN);
            out[out_len + 1] = OFPT13_BARRIER_REPLY;
            out_len += OFP_HEADER_LEN;
        } else if (msg[1] == OFPT13_FLOW_MOD && msg_len >= FM_OXM && msg[FM_COMMAND] == OFPFC_ADD &&
                   front->enabled[msg[FM_TABLE_ID]] && get32(msg + FM_BUFFER_ID) == OFP_NO_BUFFER &&
                   !(get16(msg + FM_FLAGS) & OFPFF_CHECK_OVERLAP) &&
                   get16(msg + FM_MATCH) == OFPMT_OXM && n_recs < rec_cap) {
            int id = find_pattern(front, msg, msg_len);
            if (id < 0)
                break;
            fill_record(&front->patterns[id], id, msg, &recs[n_recs++]);
        } else {
            break;
        }
        pos += msg_len;
        n_msgs++;
    }
    res->consumed = pos;
    res->out_len = out_len;
    res->n_records = n_recs;
    return n_msgs;
}

int vs_of_front_pump(struct vs_of_front *front, int fd, uint8_t *rbuf, size_t rcap, uint8_t *out,
                     size_t out_cap, struct vs_of_front_rec *recs, size_t rec_cap, int64_t window_ns,
                     int64_t budget_ns, struct vs_of_front_pump_result *res)
{
    memset(res, 0, sizeof *res);
    int64_t start = (int64_t)vs_now_ns(), replied = start;
    int just_replied = 0;
    for (;;) {
        /* Right after a reply the peer has not had a chance to answer it:
         * on a shared CPU a recv now is a sure EAGAIN (one wasted syscall
         * per rule), so let the peer run first.  With a CPU to itself the
         * peer is unaffected and the yield returns at once. */
        if (just_replied) {
            sched_yield();
            just_replied = 0;
        }
        ssize_t n = recv(fd, rbuf, rcap, MSG_DONTWAIT);
        int64_t t = (int64_t)vs_now_ns();
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (t - replied >= window_ns) {
                res->reason = VS_OF_FRONT_PUMP_IDLE;
                return res->reason;
            }
            if (t - start >= budget_ns) {
                res->reason = VS_OF_FRONT_PUMP_BUDGET;
                return res->reason;
            }
            /* A peer that shares our CPU cannot send while we spin: let it
             * run (with nothing else runnable this returns at once). */
            sched_yield();
            continue;
        }
        if (n <= 0) {
            res->err = n < 0 ? errno : 0;
            res->reason = VS_OF_FRONT_PUMP_CLOSED;
            return res->reason;
        }
        res->n_reads++;
        if (t - replied > res->max_gap_ns)
            res->max_gap_ns = t - replied;
        struct vs_of_front_result scan;
        vs_of_front_scan(front, rbuf, (size_t)n, out, out_cap, recs + res->n_records,
                         rec_cap - res->n_records, &scan);
        res->n_records += scan.n_records;
        if (scan.out_len) {
            ssize_t sent = send(fd, out, scan.out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
            size_t done = sent > 0 ? (size_t)sent : 0;
            if (done < scan.out_len) {
                res->unsent_off = done;
                res->unsent_len = scan.out_len - done;
            }
        }
        replied = (int64_t)vs_now_ns();
        just_replied = scan.out_len != 0;
        if (scan.consumed < (size_t)n || res->unsent_len) {
            res->rest_off = scan.consumed;
            res->rest_len = (size_t)n - scan.consumed;
            res->reason = VS_OF_FRONT_PUMP_REST;
            return res->reason;
        }
        if (replied - start >= budget_ns) {
            res->reason = VS_OF_FRONT_PUMP_BUDGET;
            return res->reason;
        }
    }
}
