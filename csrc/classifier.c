/* classifier.c — tuple-space search over per-mask hash tables, plus the EMC. */
#include "classifier.h"
#include "xdp_offload.h"

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

#define RANK_INTERVAL 4096 /* lookups between two rankings of a reader's subtables */
#define TABLE_MIN_SLOTS 16
#define TABLE_SLOTS_PER_FLOW 4 /* after a rebuild: a quarter full, room to grow */
#define RESTORE_HITS_MAX 256   /* subtables up to which a refresh keeps old hits */

/* What a garbage entry is, so reclaim frees it the right way. */
enum { GARBAGE_FLOW, GARBAGE_ACTIONS, GARBAGE_TABLE, GARBAGE_SUBTABLE, GARBAGE_VEC };

/* A deleted flow's slot: probes go on past it, inserts reuse it. */
static struct vs_flow tombstone;

#define LOAD_PTR(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define STORE_PTR(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)

static struct vs_subtable_vec *vec_new(struct vs_classifier *c, uint32_t n)
{
    struct vs_subtable_vec *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->st = calloc(n ? n : 1, sizeof *v->st);
    if (!v->st) {
        free(v);
        return NULL;
    }
    v->n = n;
    v->version = ++c->next_version;
    return v;
}

static void vec_free(struct vs_subtable_vec *v)
{
    if (v) {
        free(v->st);
        free(v);
    }
}

int vs_cls_init(struct vs_classifier *c)
{
    memset(c, 0, sizeof *c);
    c->vec = vec_new(c, 0);
    return c->vec ? 0 : -1;
}

static void table_free(struct vs_flow_table *t)
{
    if (t) {
        free(t->slots);
        free(t);
    }
}

static struct vs_flow_table *table_new(uint32_t n_slots)
{
    struct vs_flow_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->slots = calloc(n_slots, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NULL;
    }
    t->n_slots = n_slots;
    return t;
}

void vs_cls_flow_free(struct vs_flow *f)
{
    if (f) {
        /* After the grace period: nothing can push to its list any more. */
        vs_xdp_offload_remove(f, NULL, NULL);
        free(f->actions);
        free(f);
    }
}

static void garbage_free(struct vs_cls_garbage *g)
{
    switch (g->kind) {
    case GARBAGE_FLOW:
        vs_cls_flow_free(g->p);
        break;
    case GARBAGE_ACTIONS:
        free(g->p);
        break;
    case GARBAGE_TABLE:
        table_free(g->p);
        break;
    case GARBAGE_SUBTABLE: {
        struct vs_subtable *st = g->p;
        table_free(st->table);
        free(st);
        break;
    }
    case GARBAGE_VEC:
        vec_free(g->p);
        break;
    }
}

/* Queues memory readers may still see.  If the list cannot grow, waits for
 * the readers now and frees everything, this too. */
static void defer_free(struct vs_classifier *c, void *p, int kind)
{
    struct vs_cls_garbage g = {p, kind};
    if (c->n_garbage == c->cap_garbage) {
        uint32_t cap = c->cap_garbage ? c->cap_garbage * 2 : 64;
        struct vs_cls_garbage *n = realloc(c->garbage, cap * sizeof *n);
        if (!n) {
            if (c->synchronize)
                c->synchronize(c->sync_aux);
            for (uint32_t i = 0; i < c->n_garbage; i++)
                garbage_free(&c->garbage[i]);
            c->n_garbage = 0;
            garbage_free(&g);
            return;
        }
        c->garbage = n;
        c->cap_garbage = cap;
    }
    c->garbage[c->n_garbage++] = g;
}

/* The end of every write: one grace period, then the garbage goes. */
static void reclaim(struct vs_classifier *c)
{
    if (!c->n_garbage)
        return;
    if (c->synchronize)
        c->synchronize(c->sync_aux);
    for (uint32_t i = 0; i < c->n_garbage; i++)
        garbage_free(&c->garbage[i]);
    c->n_garbage = 0;
}

void vs_cls_flush(struct vs_classifier *c)
{
    struct vs_subtable_vec *empty = vec_new(c, 0);
    struct vs_subtable_vec *old = c->vec;
    uint32_t n = old->n;
    if (!empty) { /* no memory for an empty vector: empty this one in place */
        __atomic_store_n(&old->n, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&old->version, ++c->next_version, __ATOMIC_RELEASE);
    }
    for (uint32_t i = 0; i < n; i++) {
        struct vs_subtable *st = old->st[i];
        for (uint32_t s = 0; s < st->table->n_slots; s++)
            if (st->table->slots[s] && st->table->slots[s] != &tombstone)
                defer_free(c, st->table->slots[s], GARBAGE_FLOW);
        defer_free(c, st, GARBAGE_SUBTABLE);
    }
    if (empty) {
        STORE_PTR(c->vec, empty);
        defer_free(c, old, GARBAGE_VEC);
    }
    c->n_flows = 0;
    __atomic_add_fetch(&c->gen, 1, __ATOMIC_RELEASE);
    reclaim(c);
}

void vs_cls_destroy(struct vs_classifier *c)
{
    vs_cls_flush(c);
    vec_free(c->vec);
    c->vec = NULL;
    free(c->garbage);
    c->garbage = NULL;
}

void vs_cls_reader_destroy(struct vs_cls_reader *r)
{
    free(r->order);
    free(r->hits);
    memset(r, 0, sizeof *r);
}

uint32_t vs_cls_n_subtables(const struct vs_classifier *c)
{
    return c->vec ? c->vec->n : 0;
}

static struct vs_subtable *find_subtable(struct vs_classifier *c, const struct vs_key *mask,
                                         uint32_t *idx)
{
    struct vs_subtable_vec *v = c->vec;
    for (uint32_t i = 0; i < v->n; i++) {
        if (!memcmp(&v->st[i]->mask, mask, sizeof *mask)) {
            if (idx)
                *idx = i;
            return v->st[i];
        }
    }
    return NULL;
}

/* Probes for the flow; *slot (if not NULL) gets its index.  Safe for
 * readers: every slot is read once, with acquire. */
static struct vs_flow *table_find(const struct vs_flow_table *t, const struct vs_key *masked,
                                  uint32_t hash, uint32_t *slot)
{
    uint32_t m = t->n_slots - 1;
    for (uint32_t i = hash & m, k = 0; k <= m; i = (i + 1) & m, k++) {
        struct vs_flow *f = LOAD_PTR(t->slots[i]);
        if (!f)
            return NULL;
        if (f != &tombstone && f->hash == hash && !memcmp(&f->key, masked, sizeof *masked)) {
            if (slot)
                *slot = i;
            return f;
        }
    }
    return NULL;
}

/* Writer: a slot for a flow known not to be there (the first tombstone or
 * empty slot on its probe). */
static uint32_t table_free_slot(const struct vs_flow_table *t, uint32_t hash)
{
    uint32_t m = t->n_slots - 1, i = hash & m;
    while (t->slots[i] && t->slots[i] != &tombstone)
        i = (i + 1) & m;
    return i;
}

/* Writer: a new table holding the live flows of st with room for one more,
 * published; the old one goes after the grace period. */
static int table_rebuild(struct vs_classifier *c, struct vs_subtable *st)
{
    uint32_t n = TABLE_MIN_SLOTS;
    while (n < (st->n_flows + 1) * TABLE_SLOTS_PER_FLOW)
        n *= 2;
    struct vs_flow_table *t = table_new(n), *old = st->table;
    if (!t)
        return -1;
    for (uint32_t i = 0; i < old->n_slots; i++) {
        struct vs_flow *f = old->slots[i];
        if (f && f != &tombstone) {
            t->slots[table_free_slot(t, f->hash)] = f;
            t->n_used++;
        }
    }
    STORE_PTR(st->table, t);
    defer_free(c, old, GARBAGE_TABLE);
    return 0;
}

static struct vs_subtable *add_subtable(struct vs_classifier *c, const struct vs_key *mask)
{
    struct vs_subtable *st = calloc(1, sizeof *st);
    struct vs_subtable_vec *v = vec_new(c, c->vec->n + 1);
    if (st)
        st->table = table_new(TABLE_MIN_SLOTS);
    if (!st || !st->table || !v) {
        if (st)
            table_free(st->table);
        free(st);
        vec_free(v);
        return NULL;
    }
    st->mask = *mask;
    memcpy(v->st, c->vec->st, c->vec->n * sizeof *v->st);
    v->st[c->vec->n] = st;
    defer_free(c, c->vec, GARBAGE_VEC);
    STORE_PTR(c->vec, v);
    return st;
}

/* Writer: st is empty; a vector without it is published. */
static void del_subtable(struct vs_classifier *c, uint32_t idx)
{
    struct vs_subtable_vec *old = c->vec, *v = vec_new(c, old->n - 1);
    if (!v)
        return; /* keep the empty subtable: lookups just probe it */
    for (uint32_t i = 0, k = 0; i < old->n; i++)
        if (i != idx)
            v->st[k++] = old->st[i];
    STORE_PTR(c->vec, v);
    defer_free(c, old->st[idx], GARBAGE_SUBTABLE);
    defer_free(c, old, GARBAGE_VEC);
}

static struct vs_actions *actions_new(const uint32_t *words, uint32_t n)
{
    struct vs_actions *a = malloc(sizeof *a + (n ? n : 1) * sizeof *words);
    if (a) {
        a->n = n;
        memcpy(a->words, words, n * sizeof *words);
    }
    return a;
}

int vs_cls_put(struct vs_classifier *c, const struct vs_key *key, const struct vs_key *mask,
               const uint32_t *actions, uint32_t n_actions, int *existed)
{
    struct vs_key masked;
    uint32_t hash = masked_hash(key, mask, &masked);
    struct vs_actions *acts = actions_new(actions, n_actions);
    if (!acts)
        return -1;
    struct vs_subtable *st = find_subtable(c, mask, NULL);
    struct vs_flow *f = st ? table_find(st->table, &masked, hash, NULL) : NULL;
    *existed = f != NULL;
    int r = 0;
    if (f) {
        defer_free(c, f->actions, GARBAGE_ACTIONS);
        STORE_PTR(f->actions, acts);
    } else if ((!st && !(st = add_subtable(c, mask))) || !(f = calloc(1, sizeof *f))) {
        free(acts);
        r = -1;
    } else if ((st->table->n_used + 1) * 2 > st->table->n_slots && table_rebuild(c, st) &&
               st->table->n_used + 1 >= st->table->n_slots) {
        /* No memory for a bigger table and no free slot left to probe to. */
        free(acts);
        free(f);
        r = -1;
    } else {
        f->key = masked;
        f->mask = *mask;
        f->hash = hash;
        f->actions = acts;
        f->created_ns = vs_now_ns(); /* its idle time starts now */
        struct vs_flow_table *t = st->table;
        uint32_t slot = table_free_slot(t, hash);
        if (!t->slots[slot])
            t->n_used++;
        STORE_PTR(t->slots[slot], f); /* f's fields are visible before f */
        st->n_flows++;
        c->n_flows++;
    }
    reclaim(c);
    return r;
}

struct vs_flow *vs_cls_find(struct vs_classifier *c, const struct vs_key *key,
                            const struct vs_key *mask)
{
    struct vs_subtable *st = find_subtable(c, mask, NULL);
    if (!st)
        return NULL;
    struct vs_key masked;
    uint32_t hash = masked_hash(key, mask, &masked);
    return table_find(st->table, &masked, hash, NULL);
}

int vs_cls_del(struct vs_classifier *c, const struct vs_key *key, const struct vs_key *mask,
               struct vs_flow **detached)
{
    uint32_t idx, slot;
    struct vs_subtable *st = find_subtable(c, mask, &idx);
    if (!st)
        return -1;
    struct vs_key masked;
    uint32_t hash = masked_hash(key, mask, &masked);
    struct vs_flow *f = table_find(st->table, &masked, hash, &slot);
    if (!f)
        return -1;
    STORE_PTR(st->table->slots[slot], &tombstone);
    st->n_flows--;
    c->n_flows--;
    __atomic_add_fetch(&c->gen, 1, __ATOMIC_RELEASE);
    if (!st->n_flows)
        del_subtable(c, idx);
    if (detached) {
        *detached = f;
        if (c->synchronize && !c->n_garbage) /* the caller reads it next */
            c->synchronize(c->sync_aux);
    } else {
        defer_free(c, f, GARBAGE_FLOW);
    }
    reclaim(c);
    return 0;
}

/* A reader's order follows the published vector: a new version copies its
 * subtables, keeping the hits of those it knew (few subtables: quadratic). */
static void reader_refresh(struct vs_cls_reader *r, const struct vs_subtable_vec *v,
                           uint64_t version)
{
    uint32_t n = __atomic_load_n(&v->n, __ATOMIC_ACQUIRE);
    if (n > r->cap) {
        uint32_t cap = n * 2;
        struct vs_subtable **order = malloc(cap * sizeof *order);
        uint64_t *hits = calloc(cap, sizeof *hits);
        if (!order || !hits) {
            free(order);
            free(hits);
            r->n = 0; /* lookups fall back to the published order */
            r->version = 0;
            return;
        }
        if (r->n) {
            memcpy(order, r->order, r->n * sizeof *order);
            memcpy(hits, r->hits, r->n * sizeof *hits);
        }
        free(r->order);
        free(r->hits);
        r->order = order;
        r->hits = hits;
        r->cap = cap;
    }
    uint64_t old_hits[RESTORE_HITS_MAX];
    struct vs_subtable *old_order[RESTORE_HITS_MAX];
    uint32_t n_old = r->n <= RESTORE_HITS_MAX ? r->n : 0;
    memcpy(old_order, r->order, n_old * sizeof *old_order);
    memcpy(old_hits, r->hits, n_old * sizeof *old_hits);
    for (uint32_t i = 0; i < n; i++) {
        r->order[i] = v->st[i];
        r->hits[i] = 0;
        for (uint32_t j = 0; n <= RESTORE_HITS_MAX && j < n_old; j++)
            if (old_order[j] == v->st[i])
                r->hits[i] = old_hits[j];
    }
    r->n = n;
    r->version = version;
}

/* Keeps the reader's subtables ordered by its hits, with insertion sort
 * (few, nearly sorted). */
static void rank_subtables(struct vs_cls_reader *r)
{
    for (uint32_t i = 1; i < r->n; i++) {
        struct vs_subtable *st = r->order[i];
        uint64_t h = r->hits[i];
        uint32_t j = i;
        while (j > 0 && r->hits[j - 1] < h) {
            r->order[j] = r->order[j - 1];
            r->hits[j] = r->hits[j - 1];
            j--;
        }
        r->order[j] = st;
        r->hits[j] = h;
    }
    for (uint32_t i = 0; i < r->n; i++)
        r->hits[i] /= 2; /* decay so the ranking follows the traffic */
}

static struct vs_flow *subtable_lookup(const struct vs_subtable *st, const struct vs_key *key)
{
    struct vs_key masked;
    uint32_t hash = masked_hash(key, &st->mask, &masked);
    return table_find(LOAD_PTR(st->table), &masked, hash, NULL);
}

struct vs_flow *vs_cls_lookup(struct vs_classifier *c, const struct vs_key *key)
{
    struct vs_subtable_vec *v = LOAD_PTR(c->vec);
    uint32_t n = __atomic_load_n(&v->n, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++) {
        struct vs_flow *f = subtable_lookup(v->st[i], key);
        if (f)
            return f;
    }
    return NULL;
}

struct vs_flow *vs_cls_lookup_ranked(struct vs_classifier *c, struct vs_cls_reader *r,
                                     const struct vs_key *key)
{
    struct vs_subtable_vec *v = LOAD_PTR(c->vec);
    uint64_t version = __atomic_load_n(&v->version, __ATOMIC_ACQUIRE);
    if (version != r->version)
        reader_refresh(r, v, version);
    if (version != r->version)
        return vs_cls_lookup(c, key);
    if (++r->lookups_since_rank >= RANK_INTERVAL) {
        r->lookups_since_rank = 0;
        rank_subtables(r);
    }
    for (uint32_t i = 0; i < r->n; i++) {
        struct vs_flow *f = subtable_lookup(r->order[i], key);
        if (f) {
            r->hits[i]++;
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

struct vs_flow *vs_emc_lookup(struct vs_classifier *c, struct vs_cls_reader *r,
                              struct vs_emc_entry *emc, const struct vs_key *key, int *tier)
{
    return vs_emc_lookup_hashed(c, r, emc, key, vs_key_hash(key), tier);
}

void vs_emc_prefetch(const struct vs_emc_entry *emc, uint32_t hash)
{
    const struct vs_emc_entry *e = &emc[hash & (VS_EMC_SIZE - 1)];
    __builtin_prefetch(e);
    __builtin_prefetch(&e->flow); /* the entry spans two cache lines */
}

struct vs_flow *vs_emc_lookup_hashed(struct vs_classifier *c, struct vs_cls_reader *r,
                                     struct vs_emc_entry *emc, const struct vs_key *key,
                                     uint32_t hash, int *tier)
{
    uint32_t gen = __atomic_load_n(&c->gen, __ATOMIC_ACQUIRE);
    struct vs_emc_entry *e = &emc[hash & (VS_EMC_SIZE - 1)];
    if (e->flow && e->gen == gen && e->hash == hash && !memcmp(&e->key, key, sizeof *key)) {
        *tier = 1;
        return e->flow;
    }
    struct vs_flow *f = vs_cls_lookup_ranked(c, r, key);
    if (f) {
        /* Insert only about one miss in VS_EMC_INSERT_INV_PROB (OVS's
         * emc-insert-inv-prob): a long-lived flow gets in after a few dozen
         * packets, while thousands of short flows sharing a megaflow do not
         * evict each other on every packet.  An empty slot is always taken.
         * The generation is the one read before the lookup (classifier.h). */
        if (!e->flow || e->gen != gen || next_random() % VS_EMC_INSERT_INV_PROB == 0) {
            e->hash = hash;
            e->gen = gen;
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
    struct vs_subtable_vec *v = c->vec;
    for (uint32_t i = 0; i < v->n; i++) {
        struct vs_flow_table *t = v->st[i]->table;
        for (uint32_t s = 0; s < t->n_slots; s++)
            if (t->slots[s] && t->slots[s] != &tombstone)
                fn(t->slots[s], aux);
    }
}

uint64_t vs_cls_foreach_from(struct vs_classifier *c, uint64_t cursor,
                             int (*fn)(struct vs_flow *, void *), void *aux)
{
    struct vs_subtable_vec *v = c->vec;
    uint32_t s = (uint32_t)cursor;
    for (uint32_t i = (uint32_t)(cursor >> 32); i < v->n; i++, s = 0) {
        struct vs_flow_table *t = v->st[i]->table;
        for (; s < t->n_slots; s++)
            if (t->slots[s] && t->slots[s] != &tombstone && fn(t->slots[s], aux))
                return (uint64_t)i << 32 | s;
    }
    return VS_CLS_CURSOR_END;
}
