/* classifier.c — tuple-space search over per-mask hash tables, plus the EMC. */
#include "classifier.h"

#include <stdlib.h>
#include <string.h>

static inline uint64_t word(const struct vs_key *k, int i)
{
    uint64_t w;
    memcpy(&w, (const uint8_t *)k + 8 * i, 8);
    return w;
}

static inline uint32_t mix_words(const uint64_t *w)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < VS_KEY_WORDS; i++) {
        h ^= w[i];
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    return (uint32_t)(h ^ (h >> 29));
}

uint32_t vs_key_hash(const struct vs_key *k)
{
    uint64_t w[VS_KEY_WORDS];
    memcpy(w, k, sizeof w);
    return mix_words(w);
}

void vs_key_and(struct vs_key *dst, const struct vs_key *a, const struct vs_key *m)
{
    uint64_t w[VS_KEY_WORDS];
    for (int i = 0; i < VS_KEY_WORDS; i++)
        w[i] = word(a, i) & word(m, i);
    memcpy(dst, w, sizeof w);
}

/* Hash of `key` under `mask` without materialising the masked key twice. */
static inline uint32_t masked_hash(const struct vs_key *key, const struct vs_key *mask,
                                   struct vs_key *masked)
{
    vs_key_and(masked, key, mask);
    return vs_key_hash(masked);
}

void vs_cls_init(struct vs_classifier *c)
{
    memset(c, 0, sizeof *c);
}

static void free_flow(struct vs_flow *f)
{
    free(f->actions);
    free(f);
}

static void free_subtable(struct vs_subtable *st)
{
    for (uint32_t b = 0; b < st->n_buckets; b++) {
        struct vs_flow *f = st->buckets[b];
        while (f) {
            struct vs_flow *next = f->next;
            free_flow(f);
            f = next;
        }
    }
    free(st->buckets);
    free(st);
}

void vs_cls_flush(struct vs_classifier *c)
{
    for (uint32_t i = 0; i < c->n_subtables; i++)
        free_subtable(c->subtables[i]);
    c->n_subtables = 0;
    c->n_flows = 0;
    c->gen++;
}

void vs_cls_destroy(struct vs_classifier *c)
{
    vs_cls_flush(c);
    free(c->subtables);
    c->subtables = NULL;
}

static struct vs_subtable *find_subtable(struct vs_classifier *c, const struct vs_key *mask,
                                         uint32_t *idx)
{
    for (uint32_t i = 0; i < c->n_subtables; i++) {
        if (!memcmp(&c->subtables[i]->mask, mask, sizeof *mask)) {
            if (idx)
                *idx = i;
            return c->subtables[i];
        }
    }
    return NULL;
}

static struct vs_flow *find_in_subtable(struct vs_subtable *st, const struct vs_key *masked,
                                        uint32_t hash)
{
    for (struct vs_flow *f = st->buckets[hash & (st->n_buckets - 1)]; f; f = f->next)
        if (f->hash == hash && !memcmp(&f->key, masked, sizeof *masked))
            return f;
    return NULL;
}

static int grow_subtable(struct vs_subtable *st)
{
    uint32_t n = st->n_buckets * 2;
    struct vs_flow **b = calloc(n, sizeof *b);
    if (!b)
        return -1;
    for (uint32_t i = 0; i < st->n_buckets; i++) {
        struct vs_flow *f = st->buckets[i];
        while (f) {
            struct vs_flow *next = f->next;
            f->next = b[f->hash & (n - 1)];
            b[f->hash & (n - 1)] = f;
            f = next;
        }
    }
    free(st->buckets);
    st->buckets = b;
    st->n_buckets = n;
    return 0;
}

static struct vs_subtable *add_subtable(struct vs_classifier *c, const struct vs_key *mask)
{
    if (c->n_subtables == c->cap_subtables) {
        uint32_t cap = c->cap_subtables ? c->cap_subtables * 2 : 8;
        struct vs_subtable **s = realloc(c->subtables, cap * sizeof *s);
        if (!s)
            return NULL;
        c->subtables = s;
        c->cap_subtables = cap;
    }
    struct vs_subtable *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->mask = *mask;
    st->n_buckets = 16;
    st->buckets = calloc(st->n_buckets, sizeof *st->buckets);
    if (!st->buckets) {
        free(st);
        return NULL;
    }
    c->subtables[c->n_subtables++] = st;
    return st;
}

int vs_cls_put(struct vs_classifier *c, const struct vs_key *key, const struct vs_key *mask,
               const uint32_t *actions, uint32_t n_actions, int *existed)
{
    struct vs_key masked;
    uint32_t hash = masked_hash(key, mask, &masked);
    uint32_t *acts = malloc((n_actions ? n_actions : 1) * sizeof *acts);
    if (!acts)
        return -1;
    memcpy(acts, actions, n_actions * sizeof *acts);

    struct vs_subtable *st = find_subtable(c, mask, NULL);
    struct vs_flow *f = st ? find_in_subtable(st, &masked, hash) : NULL;
    *existed = f != NULL;
    if (f) {
        free(f->actions);
        f->actions = acts;
        f->n_actions = n_actions;
        return 0;
    }
    if (!st && !(st = add_subtable(c, mask))) {
        free(acts);
        return -1;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        free(acts);
        return -1;
    }
    f->key = masked;
    f->mask = *mask;
    f->hash = hash;
    f->actions = acts;
    f->n_actions = n_actions;
    f->subtable = st;
    uint32_t b = hash & (st->n_buckets - 1);
    f->next = st->buckets[b];
    st->buckets[b] = f;
    st->n_flows++;
    c->n_flows++;
    if (st->n_flows > st->n_buckets)
        grow_subtable(st); /* on failure the chains just get longer */
    return 0;
}

struct vs_flow *vs_cls_find(struct vs_classifier *c, const struct vs_key *key,
                            const struct vs_key *mask)
{
    uint32_t idx;
    struct vs_subtable *st = find_subtable(c, mask, &idx);
    if (!st)
        return NULL;
    struct vs_key masked;
    uint32_t hash = masked_hash(key, mask, &masked);
    for (struct vs_flow *f = st->buckets[hash & (st->n_buckets - 1)]; f; f = f->next)
        if (f->hash == hash && !memcmp(&f->key, &masked, sizeof masked))
            return f;
    return NULL;
}

int vs_cls_del(struct vs_classifier *c, const struct vs_key *key, const struct vs_key *mask)
{
    uint32_t idx;
    struct vs_subtable *st = find_subtable(c, mask, &idx);
    if (!st)
        return -1;
    struct vs_key masked;
    uint32_t hash = masked_hash(key, mask, &masked);
    struct vs_flow **pp = &st->buckets[hash & (st->n_buckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        struct vs_flow *f = *pp;
        if (f->hash == hash && !memcmp(&f->key, &masked, sizeof masked)) {
            *pp = f->next;
            free_flow(f);
            st->n_flows--;
            c->n_flows--;
            c->gen++;
            if (!st->n_flows) {
                free_subtable(st);
                c->subtables[idx] = c->subtables[--c->n_subtables];
            }
            return 0;
        }
    }
    return -1;
}

/* Keeps subtables ordered by hits, with insertion sort (few, nearly sorted). */
static void rank_subtables(struct vs_classifier *c)
{
    for (uint32_t i = 1; i < c->n_subtables; i++) {
        struct vs_subtable *st = c->subtables[i];
        uint32_t j = i;
        while (j > 0 && c->subtables[j - 1]->hits < st->hits) {
            c->subtables[j] = c->subtables[j - 1];
            j--;
        }
        c->subtables[j] = st;
    }
    for (uint32_t i = 0; i < c->n_subtables; i++)
        c->subtables[i]->hits /= 2; /* decay so the ranking follows the traffic */
}

struct vs_flow *vs_cls_lookup(struct vs_classifier *c, const struct vs_key *key)
{
    if (++c->lookups_since_rank >= 4096) {
        c->lookups_since_rank = 0;
        rank_subtables(c);
    }
    struct vs_key masked;
    for (uint32_t i = 0; i < c->n_subtables; i++) {
        struct vs_subtable *st = c->subtables[i];
        uint32_t hash = masked_hash(key, &st->mask, &masked);
        struct vs_flow *f = find_in_subtable(st, &masked, hash);
        if (f) {
            st->hits++;
            return f;
        }
    }
    return NULL;
}

/* Per-thread xorshift: cheap, and poll threads never share it. */
static inline uint32_t next_random(void)
{
    static __thread uint32_t x = 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

struct vs_flow *vs_emc_lookup(struct vs_classifier *c, struct vs_emc_entry *emc,
                              const struct vs_key *key, int *tier)
{
    uint32_t hash = vs_key_hash(key);
    struct vs_emc_entry *e = &emc[hash & (VS_EMC_SIZE - 1)];
    if (e->flow && e->gen == c->gen && e->hash == hash &&
        !memcmp(&e->key, key, sizeof *key)) {
        *tier = 1;
        return e->flow;
    }
    struct vs_flow *f = vs_cls_lookup(c, key);
    if (f) {
        /* Insert only about one miss in VS_EMC_INSERT_INV_PROB (OVS's
         * emc-insert-inv-prob): a long-lived flow gets in after a few dozen
         * packets, while thousands of short flows sharing a megaflow do not
         * evict each other on every packet.  An empty slot is always taken. */
        if (!e->flow || e->gen != c->gen || next_random() % VS_EMC_INSERT_INV_PROB == 0) {
            e->hash = hash;
            e->gen = c->gen;
            e->key = *key;
            e->flow = f;
        }
        *tier = 2;
    } else {
        *tier = 0;
    }
    return f;
}

void vs_cls_foreach(struct vs_classifier *c, void (*fn)(struct vs_flow *, void *), void *aux)
{
    for (uint32_t i = 0; i < c->n_subtables; i++) {
        struct vs_subtable *st = c->subtables[i];
        for (uint32_t b = 0; b < st->n_buckets; b++)
            for (struct vs_flow *f = st->buckets[b]; f; f = f->next)
                fn(f, aux);
    }
}
