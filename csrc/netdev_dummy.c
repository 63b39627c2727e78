/* netdev_dummy.c — the dummy port type (netdev_dummy.h). */
#define _GNU_SOURCE
#include "netdev_dummy.h"

#include "netdev_provider.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct dummy_slot {
    uint8_t *data;
    uint32_t cap, len;
    uint32_t port_no; /* the port it was injected on (rx) */
    struct vs_vnet_hdr vnet;
};

/* A ring of VS_DUMMY_QUEUE_LEN slots whose buffers are kept and grown. */
struct dummy_queue {
    struct dummy_slot slots[VS_DUMMY_QUEUE_LEN];
    uint32_t head, count;
    uint64_t frames, drops;
};

/* A receive queue: a port's own, or one shared by the ports of an rx-group
 * (the shape of a tunnel's shared socket).  The list of groups and the
 * reference counts are under groups_mutex, since open() and close() run
 * while recv() of another port of the group may run.  The queue itself is
 * under its own leaf mutex: recv (a poll thread) and inject (Python, a
 * control call) run concurrently (netdev.h). */
struct dummy_rxq {
    char group[32]; /* "" for a port's own */
    int refs;
    int efd; /* readable while the queue is not empty */
    pthread_mutex_t mutex; /* q and next_replay */
    struct dummy_queue q;
    /* rx-replay: recv hands out the queued frames round and round without
     * consuming them, from this slot on (a packet generator in C). */
    int replay;
    uint32_t next_replay;
    struct dummy_rxq *next;
};

static pthread_mutex_t groups_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct dummy_rxq *groups;

/* The transmit queue and counters are guarded by the datapath's per-port
 * transmit lock: send and the control calls (vs_dp_port_call, status,
 * statistics) all run under it. */
struct netdev_dummy {
    struct vs_netdev up;
    struct dummy_rxq *rx;
    struct dummy_queue tx;
    int tx_discard; /* tx-discard: count sent frames, keep none */
};

static int queue_push(struct dummy_queue *q, const uint8_t *data, uint32_t len,
                      const struct vs_vnet_hdr *vnet, uint32_t port_no)
{
    if (q->count == VS_DUMMY_QUEUE_LEN || len > VS_MAX_FRAME) {
        q->drops++;
        return 0;
    }
    struct dummy_slot *s = &q->slots[(q->head + q->count) % VS_DUMMY_QUEUE_LEN];
    if (s->cap < len) {
        uint8_t *d = realloc(s->data, len);
        if (!d) {
            q->drops++;
            return 0;
        }
        s->data = d;
        s->cap = len;
    }
    memcpy(s->data, data, len);
    s->len = len;
    s->port_no = port_no;
    if (vnet)
        s->vnet = *vnet;
    else
        memset(&s->vnet, 0, sizeof s->vnet);
    q->count++;
    q->frames++;
    return 1;
}

static void queue_free(struct dummy_queue *q)
{
    for (int i = 0; i < VS_DUMMY_QUEUE_LEN; i++)
        free(q->slots[i].data);
}

static void rxq_unref(struct dummy_rxq *rxq)
{
    pthread_mutex_lock(&groups_mutex);
    int last = --rxq->refs == 0;
    if (last && rxq->group[0]) {
        for (struct dummy_rxq **p = &groups; *p; p = &(*p)->next) {
            if (*p == rxq) {
                *p = rxq->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&groups_mutex);
    if (last) {
        pthread_mutex_destroy(&rxq->mutex);
        close(rxq->efd);
        queue_free(&rxq->q);
        free(rxq);
    }
}

/* The port's receive queue: its own, or its rx-group's (found or created). */
static int rxq_get(const char *group, int replay, struct dummy_rxq **out)
{
    int err = 0;
    pthread_mutex_lock(&groups_mutex);
    struct dummy_rxq *rxq = NULL;
    for (struct dummy_rxq *g = groups; group[0] && g; g = g->next)
        if (!strcmp(g->group, group))
            rxq = g;
    if (rxq) {
        rxq->refs++;
    } else if (!(rxq = calloc(1, sizeof *rxq))) {
        err = -ENOMEM;
    } else if ((rxq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        err = -errno;
        free(rxq);
    } else {
        snprintf(rxq->group, sizeof rxq->group, "%s", group);
        pthread_mutex_init(&rxq->mutex, NULL);
        rxq->replay = replay;
        rxq->refs = 1;
        if (group[0]) {
            rxq->next = groups;
            groups = rxq;
        }
    }
    pthread_mutex_unlock(&groups_mutex);
    *out = err ? NULL : rxq;
    return err;
}

static int dummy_open(const char *name, uint32_t port_no, const struct vs_port_option *opts,
                      int n_opts, struct vs_netdev **out, char *err, size_t errlen)
{
    (void)name;
    (void)port_no;
    static const char *const allowed[] = {"rx-group", "rx-replay", "tx-discard", NULL};
    int r = vs_netdev_check_options(opts, n_opts, allowed, err, errlen);
    if (r)
        return r;
    const char *group = vs_netdev_option(opts, n_opts, "rx-group", "");
    if (strlen(group) >= sizeof ((struct dummy_rxq *)0)->group)
        return vs_netdev_fail(err, errlen, "rx-group", -EINVAL);
    const char *replay = vs_netdev_option(opts, n_opts, "rx-replay", "false");
    const char *discard = vs_netdev_option(opts, n_opts, "tx-discard", "false");
    if (strcmp(replay, "true") && strcmp(replay, "false"))
        return vs_netdev_fail(err, errlen, "rx-replay", -EINVAL);
    if (strcmp(discard, "true") && strcmp(discard, "false"))
        return vs_netdev_fail(err, errlen, "tx-discard", -EINVAL);
    if (group[0] && !strcmp(replay, "true"))
        return vs_netdev_fail(err, errlen, "rx-replay with rx-group", -EINVAL);
    struct netdev_dummy *nd = calloc(1, sizeof *nd);
    if (!nd)
        return vs_netdev_fail(err, errlen, "allocate", -ENOMEM);
    nd->tx_discard = !strcmp(discard, "true");
    r = rxq_get(group, !strcmp(replay, "true"), &nd->rx);
    if (r) {
        free(nd);
        return vs_netdev_fail(err, errlen, "receive queue", r);
    }
    *out = &nd->up;
    return 0;
}

static void dummy_close(struct vs_netdev *netdev)
{
    struct netdev_dummy *nd = (struct netdev_dummy *)netdev;
    rxq_unref(nd->rx);
    queue_free(&nd->tx);
    free(nd);
}

static int dummy_rx_fds(struct vs_netdev *netdev, int *fds, int max)
{
    if (max < 1)
        return 0;
    fds[0] = ((struct netdev_dummy *)netdev)->rx->efd;
    return 1;
}

static int dummy_recv(struct vs_netdev *netdev, int rxq, struct vs_packet *pkts, int n,
                      uint64_t *truncated)
{
    (void)rxq;
    (void)truncated;
    struct dummy_rxq *rx = ((struct netdev_dummy *)netdev)->rx;
    struct dummy_queue *q = &rx->q;
    int got = 0;
    pthread_mutex_lock(&rx->mutex);
    while (rx->replay && got < n && q->count) {
        struct dummy_slot *s = &q->slots[(q->head + rx->next_replay) % VS_DUMMY_QUEUE_LEN];
        struct vs_packet *p = &pkts[got++];
        p->data = p->buf + VS_HEADROOM;
        memcpy(p->data, s->data, s->len);
        p->len = s->len;
        p->vnet = s->vnet;
        p->in_port = s->port_no;
        rx->next_replay = (rx->next_replay + 1) % q->count;
    }
    while (!rx->replay && got < n && q->count) {
        struct dummy_slot *s = &q->slots[q->head];
        struct vs_packet *p = &pkts[got++];
        p->data = p->buf + VS_HEADROOM;
        memcpy(p->data, s->data, s->len);
        p->len = s->len;
        p->vnet = s->vnet;
        p->in_port = s->port_no; /* an rx-group's queue holds its ports' frames */
        q->head = (q->head + 1) % VS_DUMMY_QUEUE_LEN;
        q->count--;
    }
    if (!q->count) { /* empty: no longer readable */
        uint64_t v;
        ssize_t r = read(rx->efd, &v, sizeof v);
        (void)r;
    }
    pthread_mutex_unlock(&rx->mutex);
    return got;
}

static int dummy_send(struct vs_netdev *netdev, struct vs_packet *const *pkts, int n)
{
    struct netdev_dummy *nd = (struct netdev_dummy *)netdev;
    int sent = 0;
    if (nd->tx_discard) {
        nd->tx.frames += (uint64_t)n;
        return n;
    }
    for (int i = 0; i < n; i++) {
        if (!queue_push(&nd->tx, pkts[i]->data, pkts[i]->len, &pkts[i]->vnet, 0)) {
            nd->tx.drops += (uint64_t)(n - i - 1); /* the rest are drops too */
            break;
        }
        sent++;
    }
    return sent;
}

static int dummy_status(struct vs_netdev *netdev, struct vs_port_kv *out, int max)
{
    struct netdev_dummy *nd = (struct netdev_dummy *)netdev;
    pthread_mutex_lock(&nd->rx->mutex);
    int n = vs_netdev_kv(out, 0, max, "rx_queue", "%u", nd->rx->q.count);
    pthread_mutex_unlock(&nd->rx->mutex);
    if (nd->rx->group[0])
        n = vs_netdev_kv(out, n, max, "rx_group", "%s", nd->rx->group);
    return vs_netdev_kv(out, n, max, "tx_queue", "%u", nd->tx.count);
}

static int dummy_stats(struct vs_netdev *netdev, struct vs_port_counter *out, int max)
{
    struct netdev_dummy *nd = (struct netdev_dummy *)netdev;
    int n = 0;
    pthread_mutex_lock(&nd->rx->mutex);
    n = vs_netdev_counter(out, n, max, "rx_injected", nd->rx->q.frames);
    n = vs_netdev_counter(out, n, max, "rx_queue_drops", nd->rx->q.drops);
    pthread_mutex_unlock(&nd->rx->mutex);
    n = vs_netdev_counter(out, n, max, "tx_captured", nd->tx.frames);
    n = vs_netdev_counter(out, n, max, "tx_queue_drops", nd->tx.drops);
    return n;
}

static const struct vs_netdev_class dummy_class = {
    .type = "dummy",
    .open = dummy_open,
    .close = dummy_close,
    .rx_fds = dummy_rx_fds,
    .recv = dummy_recv,
    .send = dummy_send,
    .get_status = dummy_status,
    .get_stats = dummy_stats,
};

VS_NETDEV_REGISTER(dummy_class)

/* ---- Python's entry points ---- */

struct inject_args {
    const uint8_t *buf;
    const uint32_t *lens;
    int n;
    const struct vs_vnet_hdr *vnets;
};

static int do_inject(struct vs_netdev *netdev, void *arg)
{
    struct dummy_rxq *rx = ((struct netdev_dummy *)netdev)->rx;
    struct inject_args *a = arg;
    int queued = 0;
    const uint8_t *p = a->buf;
    pthread_mutex_lock(&rx->mutex);
    for (int i = 0; i < a->n; i++) {
        queued += queue_push(&rx->q, p, a->lens[i], a->vnets ? &a->vnets[i] : NULL,
                             netdev->port_no);
        p += a->lens[i];
    }
    if (rx->q.count) {
        uint64_t one = 1;
        ssize_t r = write(rx->efd, &one, sizeof one);
        (void)r;
    }
    pthread_mutex_unlock(&rx->mutex);
    return queued;
}

int vs_dummy_inject(struct vs_dp *dp, uint32_t port_no, const uint8_t *buf, const uint32_t *lens,
                    int n, const struct vs_vnet_hdr *vnets)
{
    struct inject_args a = {buf, lens, n, vnets};
    return vs_dp_port_call(dp, port_no, &dummy_class, do_inject, &a);
}

struct sent_args {
    struct vs_dummy_frame *out;
    int max;
    uint8_t *buf;
    uint32_t buflen;
};

static int do_sent(struct vs_netdev *netdev, void *arg)
{
    struct netdev_dummy *nd = (struct netdev_dummy *)netdev;
    struct sent_args *a = arg;
    struct dummy_queue *q = &nd->tx;
    uint32_t used = 0;
    int n = 0;
    while (n < a->max && q->count) {
        struct dummy_slot *s = &q->slots[q->head];
        if (used + s->len > a->buflen)
            break;
        a->out[n].len = s->len;
        a->out[n].offset = used;
        a->out[n].vnet = s->vnet;
        memcpy(a->buf + used, s->data, s->len);
        used += s->len;
        n++;
        q->head = (q->head + 1) % VS_DUMMY_QUEUE_LEN;
        q->count--;
    }
    return n;
}

int vs_dummy_sent(struct vs_dp *dp, uint32_t port_no, struct vs_dummy_frame *out, int max,
                  uint8_t *buf, uint32_t buflen)
{
    struct sent_args a = {out, max, buf, buflen};
    return vs_dp_port_call(dp, port_no, &dummy_class, do_sent, &a);
}
