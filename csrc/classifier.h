/* classifier.h — megaflow classifier (tuple-space search) and exact-match cache.
 *
 * Design note.  A megaflow is (mask, masked key) → actions.  Megaflows never
 * overlap (the slow path installs each as wide as xlate proved safe, and two
 * megaflows matching one packet would have had to give the same actions), so
 * the first match wins and no priorities are needed.  Flows with the same
 * mask live in one subtable: an open-addressing hash table (linear probing)
 * of flow pointers keyed by the masked key.  Lookup masks the packet's key
 * with each subtable's mask in turn; each poll thread keeps its own ranking
 * of the subtables by its own hits (struct vs_cls_reader), so the busy ones
 * are probed first and a lookup writes nothing another thread reads.
 *
 * In front of it sits the exact-match cache (EMC), one per poll thread: a
 * direct-mapped array indexed by the full key's hash.  An EMC entry is valid
 * only while the classifier's generation number is unchanged; deleting any
 * flow bumps the generation, which empties every EMC in O(1).  An entry
 * records the generation read *before* the classifier lookup that found its
 * flow, so a flow deleted during that lookup never enters an EMC as valid.
 * Hits found in the classifier enter the EMC with probability
 * 1/VS_EMC_INSERT_INV_PROB (as OVS's emc-insert-inv-prob), so thousands of
 * short flows under one megaflow do not thrash it.
 *
 * Concurrency: one writer, many readers, no lock for readers (RCU-style
 * publication).  Writers (put, del, flush, and the dump, which only reads)
 * are serialised by the caller (the datapath's control mutex).  Readers
 * (vs_cls_lookup_ranked, vs_emc_lookup) run in poll threads at any time
 * between two quiescent points (datapath.h: "Locking").  The writer never
 * changes memory a reader may be reading in a way the reader can misread:
 *  - the subtable list is a vector replaced whole (struct vs_subtable_vec,
 *    published with a release store, versioned so readers notice);
 *  - a subtable's table is replaced whole when it grows or sheds
 *    tombstones; within a table a slot goes NULL → flow → tombstone →
 *    flow (a tombstone is reused), each a single release store;
 *  - a flow's actions are replaced whole (modify), as one pointer;
 *  - whatever was unlinked (flows, actions, tables, subtables, vectors) is
 *    freed only after the caller's synchronize() returns, i.e. after every
 *    reader has passed a quiescent point: each write call ends with at most
 *    one such wait.  With no synchronize callback (a standalone classifier,
 *    the tests') memory is freed at once: single-threaded use.
 * Per-flow counters are updated by readers with relaxed atomics; the writer
 * reads them with atomic loads.
 */
#ifndef VS_CLASSIFIER_H
#define VS_CLASSIFIER_H 1

#include <stdint.h>

#include "flow_key.h"

/* A flow's actions, replaced as a whole. */
struct vs_actions {
    uint32_t n; /* in 32-bit words */
    uint32_t words[];
};

struct vs_xdp_entry; /* xdp_offload.h */

struct vs_flow {
    struct vs_key key;  /* already masked */
    struct vs_key mask;
    uint32_t hash;
    struct vs_actions *actions; /* published: atomic load/store */
    /* Updated by poll threads with relaxed atomics. */
    uint64_t packets, bytes;
    uint64_t used_ns;   /* CLOCK_MONOTONIC of last hit, 0 = never */
    uint16_t tcp_flags; /* OR of the flags seen */
    /* CLOCK_MONOTONIC of its install (set by vs_cls_put before it is
     * published; only the control side reads it): a megaflow never hit is
     * idle from then on (vs_dp_flow_dump_active). */
    uint64_t created_ns;
    /* Exact flows of this megaflow that the kernel XDP tier forwards
     * (xdp_offload.h): poll threads push, the control side reads and
     * removes. */
    struct vs_xdp_entry *xdp_entries;
};

/* n_slots pointers; a slot is NULL (end of a probe), a flow, or the
 * tombstone of a deleted one. */
struct vs_flow_table {
    uint32_t n_slots; /* power of two */
    uint32_t n_used;  /* flows + tombstones: kept at most half of n_slots */
    struct vs_flow **slots;
};

struct vs_subtable {
    struct vs_key mask;
    uint32_t n_flows;
    struct vs_flow_table *table; /* published: atomic load/store */
};

struct vs_subtable_vec {
    uint64_t version; /* never reused: readers compare it */
    uint32_t n;
    struct vs_subtable **st;
};

#define VS_EMC_SIZE 8192
#define VS_EMC_INSERT_INV_PROB 32

struct vs_emc_entry {
    uint32_t hash;
    uint32_t gen;
    struct vs_key key;
    struct vs_flow *flow;
};

/* Memory unlinked by the writer, freed after the next grace period. */
struct vs_cls_garbage {
    void *p;
    int kind;
};

struct vs_classifier {
    struct vs_subtable_vec *vec; /* published: atomic load/store */
    uint64_t n_flows;            /* writer's; read atomically by stats */
    uint32_t gen;                /* bumped on every flow deletion; atomic */
    uint64_t next_version;
    /* Waits until every reader has passed a quiescent point; NULL when
     * there are no concurrent readers. */
    void (*synchronize)(void *aux);
    void *sync_aux;
    struct vs_cls_garbage *garbage;
    uint32_t n_garbage, cap_garbage;
};

/* One reader's (poll thread's) private view: the subtables in its own order
 * of hits, refreshed when the published vector's version changes. */
struct vs_cls_reader {
    uint64_t version;
    uint32_t n, cap;
    struct vs_subtable **order;
    uint64_t *hits;
    uint64_t lookups_since_rank;
};

/* Returns 0, or -1 when out of memory (the classifier is then unchanged,
 * except that a standalone one needs no vector to work). */
int vs_cls_init(struct vs_classifier *);
void vs_cls_destroy(struct vs_classifier *);
void vs_cls_reader_destroy(struct vs_cls_reader *);

uint32_t vs_key_hash(const struct vs_key *);
void vs_key_and(struct vs_key *dst, const struct vs_key *a, const struct vs_key *mask);

/* Inserts a flow; returns 0, or -1 on allocation failure.  When the same
 * mask and masked key is already present its actions are replaced (modify)
 * and *existed is set. */
int vs_cls_put(struct vs_classifier *, const struct vs_key *key,
               const struct vs_key *mask, const uint32_t *actions,
               uint32_t n_actions, int *existed);
/* The flow with exactly this mask and masked key, or NULL (writer side). */
struct vs_flow *vs_cls_find(struct vs_classifier *, const struct vs_key *key,
                            const struct vs_key *mask);
/* Deletes the flow with exactly this mask and masked key; returns 0 or -1.
 * Returns only after every reader has passed a quiescent point, so no
 * packet can hit the flow any more.  With detached non-NULL the flow is
 * handed to the caller (its counters final) instead of freed: release it
 * with vs_cls_flow_free. */
int vs_cls_del(struct vs_classifier *, const struct vs_key *key,
               const struct vs_key *mask, struct vs_flow **detached);
void vs_cls_flow_free(struct vs_flow *);
void vs_cls_flush(struct vs_classifier *);
uint32_t vs_cls_n_subtables(const struct vs_classifier *);

/* Full lookup (no EMC) in published order: for single-threaded use. */
struct vs_flow *vs_cls_lookup(struct vs_classifier *, const struct vs_key *key);
/* Full lookup (no EMC) in the reader's own order of hits. */
struct vs_flow *vs_cls_lookup_ranked(struct vs_classifier *, struct vs_cls_reader *,
                                     const struct vs_key *key);

/* EMC in front of the classifier.  *tier = 1 for EMC hit, 2 megaflow, 0 miss. */
struct vs_flow *vs_emc_lookup(struct vs_classifier *, struct vs_cls_reader *,
                              struct vs_emc_entry *emc, const struct vs_key *key,
                              int *tier);
/* The same with the key's hash (vs_key_hash) computed beforehand, so that a
 * batch can hash every key first and prefetch their EMC slots
 * (vs_emc_prefetch) before looking any up. */
struct vs_flow *vs_emc_lookup_hashed(struct vs_classifier *, struct vs_cls_reader *,
                                     struct vs_emc_entry *emc, const struct vs_key *key,
                                     uint32_t hash, int *tier);
void vs_emc_prefetch(const struct vs_emc_entry *emc, uint32_t hash);

/* Iteration for dumps (writer side): calls fn for every flow. */
void vs_cls_foreach(struct vs_classifier *, void (*fn)(struct vs_flow *, void *),
                    void *aux);

/* Chunked iteration (writer side): calls fn for the flows from position
 * `cursor` (0: the first) until fn returns nonzero ("full": that flow was not
 * taken); returns the position of the flow not taken, for the next call, or
 * VS_CLS_CURSOR_END after the last flow.  A position is (subtable index,
 * slot); between two calls the writer may add or delete flows, resize a
 * table or drop a subtable, so a chunked walk may miss flows changed
 * meanwhile or see one twice (as OVS's flow dumps), never a freed one. */
#define VS_CLS_CURSOR_END UINT64_MAX
uint64_t vs_cls_foreach_from(struct vs_classifier *, uint64_t cursor,
                             int (*fn)(struct vs_flow *, void *), void *aux);

#endif
