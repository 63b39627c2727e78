/* xsk_umem.c — shared UMEMs and their chunk pool (xsk_umem.h). */
#define _GNU_SOURCE
#include "xsk_umem.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct xsk_umem_group {
    pthread_mutex_t mutex; /* guards everything below but owner[] of owned chunks */
    uint8_t *umem;
    uint64_t free[XSK_UMEM_GROUP_CHUNKS]; /* chunk addresses, a stack */
    uint32_t n_free;
    int share_fd[XSK_UMEM_GROUP_QUEUES]; /* members' bound sockets, -1 = none */
    uint8_t used[XSK_UMEM_GROUP_QUEUES]; /* member slots taken */
    uint32_t n_members;
    uint16_t owner[XSK_UMEM_GROUP_CHUNKS]; /* relaxed atomics: xsk_umem.h, "Locking" */
    struct xsk_umem_group *next;
};

/* The groups (joined and left in control calls only). */
static pthread_mutex_t groups_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct xsk_umem_group *groups;

static inline uint32_t chunk_index(uint64_t chunk) { return (uint32_t)(chunk / XSK_UMEM_FRAME_SIZE); }

static struct xsk_umem_group *group_new(void)
{
    struct xsk_umem_group *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->umem = mmap(NULL, XSK_UMEM_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->umem == MAP_FAILED) {
        free(g);
        return NULL;
    }
    pthread_mutex_init(&g->mutex, NULL);
    /* Pushed high to low: the first chunks taken are the lowest. */
    for (uint32_t i = 0; i < XSK_UMEM_GROUP_CHUNKS; i++) {
        g->free[i] = (uint64_t)(XSK_UMEM_GROUP_CHUNKS - 1 - i) * XSK_UMEM_FRAME_SIZE;
        g->owner[i] = XSK_UMEM_OWNER_FREE;
    }
    g->n_free = XSK_UMEM_GROUP_CHUNKS;
    for (uint32_t i = 0; i < XSK_UMEM_GROUP_QUEUES; i++)
        g->share_fd[i] = -1;
    return g;
}

int xsk_umem_join(struct xsk_umem_member *m, int fresh, int *share_fd)
{
    pthread_mutex_lock(&groups_mutex);
    struct xsk_umem_group *g = NULL;
    int fd = -1;
    for (struct xsk_umem_group *it = groups; it && !fresh; it = it->next) {
        pthread_mutex_lock(&it->mutex);
        int bound = -1;
        for (uint32_t i = 0; i < XSK_UMEM_GROUP_QUEUES; i++)
            if (it->share_fd[i] >= 0)
                bound = it->share_fd[i];
        if (it->n_members < XSK_UMEM_GROUP_QUEUES && bound >= 0) {
            g = it;
            fd = bound;
            break; /* still locked */
        }
        pthread_mutex_unlock(&it->mutex);
    }
    if (!g) {
        g = group_new();
        if (!g) {
            pthread_mutex_unlock(&groups_mutex);
            return -ENOMEM;
        }
        g->next = groups;
        groups = g;
        pthread_mutex_lock(&g->mutex);
    }
    uint32_t slot = 0;
    while (g->used[slot])
        slot++;
    g->used[slot] = 1;
    g->n_members++;
    pthread_mutex_unlock(&g->mutex);
    pthread_mutex_unlock(&groups_mutex);
    m->group = g;
    m->umem = g->umem;
    m->rx_owner = (uint16_t)(2 * slot);
    m->tx_owner = (uint16_t)(2 * slot + 1);
    *share_fd = fd;
    return 0;
}

void xsk_umem_bound(struct xsk_umem_member *m, int fd)
{
    struct xsk_umem_group *g = m->group;
    pthread_mutex_lock(&g->mutex);
    g->share_fd[m->rx_owner / 2] = fd;
    pthread_mutex_unlock(&g->mutex);
}

void xsk_umem_leave(struct xsk_umem_member *m)
{
    struct xsk_umem_group *g = m->group;
    if (!g)
        return;
    pthread_mutex_lock(&groups_mutex);
    pthread_mutex_lock(&g->mutex);
    for (uint32_t i = 0; i < XSK_UMEM_GROUP_CHUNKS; i++) {
        uint16_t o = __atomic_load_n(&g->owner[i], __ATOMIC_RELAXED);
        if (o == m->rx_owner || o == m->tx_owner) {
            __atomic_store_n(&g->owner[i], XSK_UMEM_OWNER_FREE, __ATOMIC_RELAXED);
            g->free[g->n_free++] = (uint64_t)i * XSK_UMEM_FRAME_SIZE;
        }
    }
    uint32_t slot = m->rx_owner / 2u;
    g->used[slot] = 0;
    g->share_fd[slot] = -1;
    int last = --g->n_members == 0;
    pthread_mutex_unlock(&g->mutex);
    if (last) {
        for (struct xsk_umem_group **pp = &groups; *pp; pp = &(*pp)->next)
            if (*pp == g) {
                *pp = g->next;
                break;
            }
        /* The kernel keeps its own reference on the pinned pages until the
         * last socket's UMEM is released. */
        munmap(g->umem, XSK_UMEM_BYTES);
        pthread_mutex_destroy(&g->mutex);
        free(g);
    }
    pthread_mutex_unlock(&groups_mutex);
    m->group = NULL;
    m->umem = NULL;
}

uint32_t xsk_umem_take(struct xsk_umem_member *m, uint16_t owner, uint64_t *out, uint32_t n)
{
    struct xsk_umem_group *g = m->group;
    pthread_mutex_lock(&g->mutex);
    if (n > g->n_free)
        n = g->n_free;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t c = g->free[--g->n_free];
        __atomic_store_n(&g->owner[chunk_index(c)], owner, __ATOMIC_RELAXED);
        out[i] = c;
    }
    pthread_mutex_unlock(&g->mutex);
    return n;
}

void xsk_umem_give(struct xsk_umem_member *m, const uint64_t *chunks, uint32_t n)
{
    struct xsk_umem_group *g = m->group;
    pthread_mutex_lock(&g->mutex);
    for (uint32_t i = 0; i < n && g->n_free < XSK_UMEM_GROUP_CHUNKS; i++) {
        __atomic_store_n(&g->owner[chunk_index(chunks[i])], XSK_UMEM_OWNER_FREE, __ATOMIC_RELAXED);
        g->free[g->n_free++] = chunks[i];
    }
    pthread_mutex_unlock(&g->mutex);
}

uint16_t xsk_umem_owner(const struct xsk_umem_member *m, uint64_t chunk)
{
    return __atomic_load_n(&m->group->owner[chunk_index(chunk)], __ATOMIC_RELAXED);
}

void xsk_umem_set_owner(struct xsk_umem_member *m, uint64_t chunk, uint16_t owner)
{
    __atomic_store_n(&m->group->owner[chunk_index(chunk)], owner, __ATOMIC_RELAXED);
}

void xsk_umem_counts(struct xsk_umem_member *m, struct xsk_umem_counts *out)
{
    struct xsk_umem_group *g = m->group;
    pthread_mutex_lock(&g->mutex);
    out->free = g->n_free;
    out->owned = 0;
    for (uint32_t i = 0; i < XSK_UMEM_GROUP_CHUNKS; i++) {
        uint16_t o = __atomic_load_n(&g->owner[i], __ATOMIC_RELAXED);
        if (o != XSK_UMEM_OWNER_FREE && g->used[o / 2u])
            out->owned++;
    }
    out->lost = XSK_UMEM_GROUP_CHUNKS - out->free - out->owned;
    pthread_mutex_unlock(&g->mutex);
}
