/* meter.c — per-band token buckets for OpenFlow meters (see meter.h). */
#include "meter.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "packet_edit.h"

/* Token units chosen so that a refill is elapsed ns x rate, exactly: a
 * nanopacket for packets/s, a microbit for kbps.  (A coarser unit loses the
 * fraction of a token every close pair of packets: 14 % of a packets/s rate
 * at a million packets per second.) */
#define NS_PER_SEC 1000000000ull
#define TOKENS_PER_PACKET NS_PER_SEC
#define TOKENS_PER_BIT 1000000ull
#define TOKENS_PER_KBIT (TOKENS_PER_BIT * 1000u)
#define BITS_PER_BYTE 8u
#define DSCP_SHIFT 2          /* DSCP is the TOS byte's top six bits */
#define AF_DROP_SHIFT 1       /* DSCP = 8x + 2y: y, the AF drop precedence */
#define AF_DROP_MASK 3u
#define ECN_MASK 3u

struct meter_band {
    struct vs_meter_band_config cfg;
    uint64_t capacity;     /* tokens */
    uint64_t tokens;
    uint64_t packets, bytes;
};

struct vs_meter {
    pthread_mutex_t mutex;
    int configured;
    uint32_t flags, n_bands;
    uint64_t last_ns;
    uint64_t packets, bytes;
    struct meter_band bands[VS_METER_MAX_BANDS];
};

static struct vs_meter *meters;
static pthread_once_t meters_once = PTHREAD_ONCE_INIT;

static void meters_init(void)
{
    meters = calloc(VS_MAX_METERS, sizeof *meters);
    for (uint32_t i = 0; meters && i < VS_MAX_METERS; i++)
        pthread_mutex_init(&meters[i].mutex, NULL);
}

static struct vs_meter *meter_get(uint32_t id)
{
    pthread_once(&meters_once, meters_init);
    return meters && id < VS_MAX_METERS ? &meters[id] : NULL;
}

int vs_meter_set(uint32_t id, uint32_t flags, const struct vs_meter_band_config *bands,
                 uint32_t n_bands)
{
    struct vs_meter *m = meter_get(id);
    if (!m || !n_bands || n_bands > VS_METER_MAX_BANDS)
        return -1;
    for (uint32_t i = 0; i < n_bands; i++) {
        if (!bands[i].rate ||
            (bands[i].type != VS_METER_BAND_DROP && bands[i].type != VS_METER_BAND_DSCP_REMARK))
            return -1;
    }
    uint64_t unit = flags & VS_METER_F_PKTPS ? TOKENS_PER_PACKET : TOKENS_PER_KBIT;
    pthread_mutex_lock(&m->mutex);
    memset(m->bands, 0, sizeof m->bands);
    for (uint32_t i = 0; i < n_bands; i++) {
        struct meter_band *b = &m->bands[i];
        b->cfg = bands[i];
        b->capacity = (uint64_t)(bands[i].burst ? bands[i].burst : bands[i].rate) * unit;
        b->tokens = b->capacity;
    }
    m->flags = flags;
    m->n_bands = n_bands;
    m->last_ns = 0;
    m->packets = m->bytes = 0;
    m->configured = 1;
    pthread_mutex_unlock(&m->mutex);
    return 0;
}

void vs_meter_del(uint32_t id)
{
    struct vs_meter *m = meter_get(id);
    if (!m)
        return;
    pthread_mutex_lock(&m->mutex);
    m->configured = 0;
    pthread_mutex_unlock(&m->mutex);
}

int vs_meter_get_stats(uint32_t id, struct vs_meter_stats *out)
{
    struct vs_meter *m = meter_get(id);
    if (!m)
        return -1;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&m->mutex);
    int ok = m->configured;
    if (ok) {
        out->packets = m->packets;
        out->bytes = m->bytes;
        out->n_bands = m->n_bands;
        for (uint32_t i = 0; i < m->n_bands; i++) {
            out->band_packets[i] = m->bands[i].packets;
            out->band_bytes[i] = m->bands[i].bytes;
        }
    }
    pthread_mutex_unlock(&m->mutex);
    return ok ? 0 : -1;
}

/* Raises the AF drop precedence of an IPv4/IPv6 packet by `level`. */
static void remark_dscp(struct vs_packet *pkt, uint32_t level)
{
    uint32_t off = vs_ethertype_offset(pkt);
    if (pkt->len < off + 2 + 2)
        return;
    uint16_t type = (uint16_t)(pkt->data[off] << 8 | pkt->data[off + 1]);
    const uint8_t *ip = pkt->data + off + 2;
    uint8_t tos;
    if (type == 0x0800)
        tos = ip[1];
    else if (type == 0x86dd)
        tos = (uint8_t)((ip[0] & 0x0f) << 4 | ip[1] >> 4);
    else
        return;
    uint32_t dscp = tos >> DSCP_SHIFT;
    uint32_t drop = ((dscp >> AF_DROP_SHIFT) & AF_DROP_MASK) + level;
    if (drop > AF_DROP_MASK)
        drop = AF_DROP_MASK;
    dscp = (dscp & ~(AF_DROP_MASK << AF_DROP_SHIFT)) | drop << AF_DROP_SHIFT;
    uint8_t value = (uint8_t)(dscp << DSCP_SHIFT | (tos & ECN_MASK));
    vs_packet_edit(pkt, type == 0x0800 ? VS_EDIT_IPV4_TOS : VS_EDIT_IPV6_TC, &value);
}

int vs_meter_apply(uint32_t id, struct vs_packet *pkt, uint64_t now_ns)
{
    struct vs_meter *m = meter_get(id);
    if (!m)
        return 1;
    pthread_mutex_lock(&m->mutex);
    if (!m->configured) {
        pthread_mutex_unlock(&m->mutex);
        return 1;
    }
    uint64_t elapsed = m->last_ns && now_ns > m->last_ns ? now_ns - m->last_ns : 0;
    m->last_ns = now_ns;
    uint64_t cost = m->flags & VS_METER_F_PKTPS ? TOKENS_PER_PACKET
                    : (uint64_t)pkt->len * BITS_PER_BYTE * TOKENS_PER_BIT;
    m->packets++;
    m->bytes += pkt->len;
    struct meter_band *hit = NULL;
    for (uint32_t i = 0; i < m->n_bands; i++) {
        struct meter_band *b = &m->bands[i];
        /* elapsed x rate overflows only after years of idle (rate < 2^32):
         * then the bucket is simply full. */
        uint64_t room = b->capacity - b->tokens;
        uint64_t refill = elapsed > UINT64_MAX / b->cfg.rate ? room : elapsed * b->cfg.rate;
        b->tokens += refill < room ? refill : room;
        if (b->tokens >= cost)
            b->tokens -= cost;
        else if (!hit || b->cfg.rate > hit->cfg.rate)
            hit = b;
    }
    int pass = 1;
    if (hit) {
        hit->packets++;
        hit->bytes += pkt->len;
        if (hit->cfg.type == VS_METER_BAND_DROP)
            pass = 0;
        else
            remark_dscp(pkt, hit->cfg.prec_level);
    }
    pthread_mutex_unlock(&m->mutex);
    return pass;
}
