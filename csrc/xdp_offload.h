/* xdp_offload.h — which exact flows the kernel tiers (the XDP tier,
 * xdp_tier.h, and the tc tier, tc_tier.h, which share one exact-flow map)
 * forward, per megaflow, and how their traffic gets back into the
 * datapath's counters.  (Named after the first tier; nothing here depends
 * on which program reads the map.)
 *
 * Design note.
 *  - A poll thread that hits a megaflow in the classifier (an EMC miss)
 *    whose actions are exactly one OUTPUT, received on a tier port and
 *    sending to one of the same tier, calls vs_xdp_offload_add(): the exact
 *    key (in_port = the ifindex) goes into the map, and an entry is pushed onto the
 *    megaflow's list.  The push is lock-free (compare-and-swap on the list
 *    head): poll threads only ever push.  A key already in the map (another
 *    thread, or packets still queued behind the first) is not pushed twice.
 *  - The control side owns everything else, under the datapath's control
 *    mutex: vs_xdp_offload_harvest() reads each entry's counters from the
 *    map and adds what is new since its last read to the megaflow's
 *    counters (packets, bytes, TCP flags, last use) and, through `count`,
 *    to the ports' — so dumps, NetFlow, OpenFlow rule statistics and port
 *    counters all include the packets the kernel forwarded, up to that
 *    read.  vs_xdp_offload_remove() harvests one last time and deletes the
 *    entries from the map (lookup-and-delete: nothing counted is lost); the
 *    datapath calls it when the megaflow is deleted, after the grace period
 *    (no poll thread can push to it any more), and when its actions are
 *    replaced, after a grace period too (a thread that read the old actions
 *    may still push; datapath.c waits for it).
 *  - Counters (vs_xdp_offload_counts): entries live, added, refused (map
 *    full or another error).
 */
#ifndef VS_XDP_OFFLOAD_H
#define VS_XDP_OFFLOAD_H 1

#include <stdint.h>

#include "classifier.h"
#include "datapath.h"
#include "flow_key.h"

struct vs_xdp_entry {
    struct vs_xdp_entry *next;
    struct vs_key key; /* in_port = the receiving ifindex */
    uint32_t in_port, out_port; /* datapath port numbers, for the port counters */
    uint64_t seen_packets, seen_bytes; /* what the last harvest took */
};

/* Adds the traffic the kernel forwarded to the ports' counters. */
typedef void vs_xdp_count_fn(void *aux, uint32_t in_port, uint32_t out_port, uint64_t packets,
                             uint64_t bytes);

/* Poll thread: offloads `key` (the datapath key, in_port = port number) of
 * megaflow f from port in_port (ifindex in_ifindex) to out_port
 * (out_ifindex).  Returns 1 if a new entry was made. */
int vs_xdp_offload_add(struct vs_flow *f, const struct vs_key *key, int in_ifindex,
                       uint32_t out_port, int out_ifindex);
/* Control side: folds the entries' new traffic into f and the ports. */
void vs_xdp_offload_harvest(struct vs_flow *f, vs_xdp_count_fn *count, void *aux);
/* Control side, when no poll thread can push to f's list any more: a last
 * harvest, then the entries leave the map.  count may be NULL. */
void vs_xdp_offload_remove(struct vs_flow *f, vs_xdp_count_fn *count, void *aux);

/* struct vs_xdp_offload_counts is datapath.h's (the Python API). */
void vs_xdp_offload_counts(struct vs_xdp_offload_counts *out);

#endif
