/* classifier.h — megaflow classifier (tuple-space search) and exact-match cache.
 *
 * Design note.  A megaflow is (mask, masked key) → actions.  Megaflows never
 * overlap (the slow path installs each as wide as xlate proved safe, and two
 * megaflows matching one packet would have had to give the same actions), so
 * the first match wins and no priorities are needed.  Flows with the same
 * mask live in one subtable: a chained hash table keyed by the masked key.
 * Lookup masks the packet's key with each subtable's mask in turn; subtables
 * are kept ranked by hits so the busy ones are probed first.
 *
 * In front of it sits the exact-match cache (EMC): a direct-mapped array
 * indexed by the full key's hash.  An EMC entry is valid only while the
 * classifier's generation number is unchanged; deleting any flow bumps the
 * generation, which empties the EMC in O(1) and means an entry never points
 * at a freed flow.  Hits found in the classifier enter the EMC with
 * probability 1/VS_EMC_INSERT_INV_PROB (as OVS's emc-insert-inv-prob), so
 * thousands of short flows under one megaflow do not thrash it.
 *
 * Concurrency: the datapath serialises all classifier access under its mutex
 * (taken once per batch by the poll thread, and inside each control call), so
 * this module itself is single-threaded.
 */
#ifndef VS_CLASSIFIER_H
#define VS_CLASSIFIER_H 1

#include <stdint.h>

#include "flow_key.h"

struct vs_flow {
    struct vs_key key;  /* already masked */
    struct vs_key mask;
    uint32_t hash;
    uint32_t n_actions; /* in 32-bit words */
    uint32_t *actions;
    uint64_t packets, bytes;
    uint64_t used_ns;   /* CLOCK_MONOTONIC of last hit, 0 = never */
    uint16_t tcp_flags; /* OR of the flags seen */
    struct vs_flow *next;
    struct vs_subtable *subtable;
};

struct vs_subtable {
    struct vs_key mask;
    uint64_t hits;
    uint32_t n_flows;
    uint32_t n_buckets; /* power of two */
    struct vs_flow **buckets;
};

#define VS_EMC_SIZE 8192
#define VS_EMC_INSERT_INV_PROB 32

struct vs_emc_entry {
    uint32_t hash;
    uint32_t gen;
    struct vs_key key;
    struct vs_flow *flow;
};

struct vs_classifier {
    struct vs_subtable **subtables;
    uint32_t n_subtables, cap_subtables;
    uint64_t n_flows;
    uint32_t gen; /* bumped on every flow deletion */
    uint64_t lookups_since_rank;
};

void vs_cls_init(struct vs_classifier *);
void vs_cls_destroy(struct vs_classifier *);

uint32_t vs_key_hash(const struct vs_key *);
void vs_key_and(struct vs_key *dst, const struct vs_key *a, const struct vs_key *mask);

/* Inserts a flow; returns 0, or -1 (EEXIST) when the same mask and masked key
 * is already present, in which case the actions are replaced (modify). */
int vs_cls_put(struct vs_classifier *, const struct vs_key *key,
               const struct vs_key *mask, const uint32_t *actions,
               uint32_t n_actions, int *existed);
/* The flow with exactly this mask and masked key, or NULL. */
struct vs_flow *vs_cls_find(struct vs_classifier *, const struct vs_key *key,
                            const struct vs_key *mask);
/* Deletes the flow with exactly this mask and masked key; returns 0 or -1. */
int vs_cls_del(struct vs_classifier *, const struct vs_key *key,
               const struct vs_key *mask);
void vs_cls_flush(struct vs_classifier *);

/* Full lookup (no EMC). */
struct vs_flow *vs_cls_lookup(struct vs_classifier *, const struct vs_key *key);

/* EMC in front of the classifier.  *tier = 1 for EMC hit, 2 megaflow, 0 miss. */
struct vs_flow *vs_emc_lookup(struct vs_classifier *, struct vs_emc_entry *emc,
                              const struct vs_key *key, int *tier);

/* Iteration for dumps: calls fn for every flow. */
void vs_cls_foreach(struct vs_classifier *, void (*fn)(struct vs_flow *, void *),
                    void *aux);

#endif
