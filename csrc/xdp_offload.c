/* xdp_offload.c — exact flows handed to the kernel XDP tier, per megaflow
 * (xdp_offload.h). */
#include "xdp_offload.h"

#include <stdlib.h>

#include "xdp_tier.h"

#define COUNT(field, v) __atomic_fetch_add(&counts.field, (v), __ATOMIC_RELAXED)

static struct vs_xdp_offload_counts counts; /* relaxed atomics */

int vs_xdp_offload_add(struct vs_flow *f, const struct vs_key *key, int in_ifindex,
                       uint32_t out_port, int out_ifindex)
{
    struct vs_xdp_entry *e = malloc(sizeof *e);
    if (!e) {
        COUNT(refused, 1);
        return 0;
    }
    e->key = *key;
    e->key.in_port = (uint32_t)in_ifindex;
    e->in_port = key->in_port;
    e->out_port = out_port;
    e->seen_packets = e->seen_bytes = 0;
    int r = vs_xdp_tier_flow_put(&e->key, (uint32_t)out_ifindex);
    if (r) {
        free(e);
        if (r < 0)
            COUNT(refused, 1);
        return 0; /* r > 0: already there, and already on a list */
    }
    e->next = __atomic_load_n(&f->xdp_entries, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(&f->xdp_entries, &e->next, e, 1, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
        ;
    COUNT(added, 1);
    COUNT(live, 1);
    return 1;
}

/* Adds what the map counted since the last look; val is the map's value. */
static void fold(struct vs_flow *f, struct vs_xdp_entry *e, const struct vs_xdp_flow_val *val,
                 vs_xdp_count_fn *count, void *aux)
{
    uint64_t packets = val->packets - e->seen_packets, bytes = val->bytes - e->seen_bytes;
    if (!packets)
        return;
    e->seen_packets = val->packets;
    e->seen_bytes = val->bytes;
    __atomic_fetch_add(&f->packets, packets, __ATOMIC_RELAXED);
    __atomic_fetch_add(&f->bytes, bytes, __ATOMIC_RELAXED);
    __atomic_fetch_or(&f->tcp_flags, (uint16_t)val->tcp_flags, __ATOMIC_RELAXED);
    /* Both are CLOCK_MONOTONIC (bpf_ktime_get_coarse_ns, vs_now_ns). */
    uint64_t used = __atomic_load_n(&f->used_ns, __ATOMIC_RELAXED);
    if (val->used_ns > used)
        __atomic_store_n(&f->used_ns, val->used_ns, __ATOMIC_RELAXED);
    if (count)
        count(aux, e->in_port, e->out_port, packets, bytes);
}

void vs_xdp_offload_harvest(struct vs_flow *f, vs_xdp_count_fn *count, void *aux)
{
    /* Entries pushed while we walk are new and have little to tell: the
     * next harvest reads them. */
    for (struct vs_xdp_entry *e = __atomic_load_n(&f->xdp_entries, __ATOMIC_ACQUIRE); e;
         e = e->next) {
        struct vs_xdp_flow_val val;
        if (!vs_xdp_tier_flow_read(&e->key, &val))
            fold(f, e, &val, count, aux);
    }
}

void vs_xdp_offload_remove(struct vs_flow *f, vs_xdp_count_fn *count, void *aux)
{
    struct vs_xdp_entry *e = __atomic_exchange_n(&f->xdp_entries, NULL, __ATOMIC_ACQUIRE);
    while (e) {
        struct vs_xdp_entry *next = e->next;
        struct vs_xdp_flow_val val;
        if (!vs_xdp_tier_flow_del(&e->key, &val))
            fold(f, e, &val, count, aux);
        COUNT(live, (uint64_t)-1);
        free(e);
        e = next;
    }
}

void vs_xdp_offload_counts(struct vs_xdp_offload_counts *out)
{
    out->live = __atomic_load_n(&counts.live, __ATOMIC_RELAXED);
    out->added = __atomic_load_n(&counts.added, __ATOMIC_RELAXED);
    out->refused = __atomic_load_n(&counts.refused, __ATOMIC_RELAXED);
}
