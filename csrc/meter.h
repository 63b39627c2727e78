/* meter.h — OpenFlow meters in the fast path: a token bucket per band.
 *
 * Design note.  An OpenFlow meter (OF1.3 section 5.7) becomes a datapath
 * meter the slow path configures (vs_meter_set) and megaflows reach with
 * VS_ACTION_METER (datapath.h): every packet of a cached metered flow is
 * measured here, none goes to Python for it.
 *
 * Each band has its own bucket of `burst` (kilobits, or packets for a
 * packets-per-second meter; 0 = one second of rate), refilled at its rate.
 * A packet takes its cost (bits, or one packet) from every band whose bucket
 * holds it; the bands whose buckets cannot are exceeded, and the one of
 * those with the highest rate applies (OF1.3 5.7.1): a drop band drops the
 * packet, a DSCP-remark band raises the IP drop precedence by prec_level
 * (the AF "y" of DSCP = 8x + 2y, saturating at 3) and lets it pass.
 * Packets within every band pass unchanged.  Token units make a refill
 * exact (meter.c), so no rate is rounded down at high packet rates.
 *
 * Locking: each meter has its own mutex, guarding its configuration, its
 * buckets and its counters; poll threads and control calls take it for one
 * packet or one call, and never hold two.  The table itself is a fixed array
 * allocated once for the process (meter ids are process-wide: the slow path
 * allocates them, vswitch/datapath/dp_meters.py), so a meter never moves or
 * goes away under a poll thread; a deleted meter is just unconfigured.
 */
#ifndef VS_METER_H
#define VS_METER_H 1

#include <stdint.h>

#include "netdev.h"

#define VS_MAX_METERS 4096
#define VS_METER_MAX_BANDS 8

enum vs_meter_band_type {
    VS_METER_BAND_DROP = 1,        /* OFPMBT_DROP */
    VS_METER_BAND_DSCP_REMARK = 2, /* OFPMBT_DSCP_REMARK */
};

#define VS_METER_F_PKTPS 1 /* rates in packets/s and bursts in packets, else kbps / kbits */

struct vs_meter_band_config {
    uint32_t type;       /* enum vs_meter_band_type */
    uint32_t rate;       /* kbps or packets/s, > 0 */
    uint32_t burst;      /* kbits or packets; 0 = one second of rate */
    uint32_t prec_level; /* DSCP remark: drop precedence increase */
};

struct vs_meter_stats {
    uint64_t packets, bytes; /* everything that reached the meter */
    uint64_t band_packets[VS_METER_MAX_BANDS], band_bytes[VS_METER_MAX_BANDS];
    uint32_t n_bands;
};

/* Configures meter `id` (< VS_MAX_METERS) afresh: full buckets, counters 0.
 * Returns 0, or -1 for a bad id, band count, type or rate. */
int vs_meter_set(uint32_t id, uint32_t flags, const struct vs_meter_band_config *bands,
                 uint32_t n_bands);
/* Unconfigures meter `id`: packets reaching it pass unmetered. */
void vs_meter_del(uint32_t id);
/* Counters of meter `id`; -1 if it is not configured. */
int vs_meter_get_stats(uint32_t id, struct vs_meter_stats *out);
/* Measures one packet at time `now_ns` (CLOCK_MONOTONIC): 1 to pass (maybe
 * DSCP-remarked), 0 to drop.  An unconfigured meter passes everything. */
int vs_meter_apply(uint32_t id, struct vs_packet *pkt, uint64_t now_ns);

#endif
