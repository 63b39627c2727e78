/* udp_blast.c — the benchmark's 64-byte UDP generator.
 *
 *   udp_blast IFNAME DST_MAC SRC_IP DST_IP DPORT NFLOWS SECONDS [PPS [PAYLOAD]]
 *
 * An AF_PACKET socket on IFNAME with PACKET_QDISC_BYPASS and sendmmsg() in
 * batches of 64 whole Ethernet frames: the sender's IP stack and qdisc are
 * skipped, so the cost per packet is the AF_PACKET send and the veth
 * transmit, nothing else.  All NFLOWS frames are built before the clock
 * starts (one per UDP source port, FIRST_SPORT.. FIRST_SPORT+NFLOWS-1, so
 * NFLOWS distinct 5-tuples reach the switch); the loop only points each
 * batch's iovecs at the next frames.  The default payload of 18 bytes makes
 * a 60-byte frame (64 bytes on a wire with the FCS).  The UDP checksum is 0
 * (legal in IPv4), the IPv4 header checksum is filled in.
 *
 * Not PACKET_TX_RING: on this kernel and veth it offered 1.3-1.5 Mpps
 * where sendmmsg() offers 1.8-2.0 (the ring's frames reach the veth as page
 * fragments, and its status handshake costs more than the copy it saves).
 *
 * PPS > 0 paces the sender: each batch waits (clock_nanosleep, absolute)
 * until its place in a PPS schedule, so a run can offer a known, low rate;
 * 0 (the default) sends as fast as the core allows.
 *
 * Prints one JSON line: {"sent": N, "send_errors": E, "seconds": T,
 * "flows": F, "target_pps": P}: N frames the kernel took (sendmmsg's count),
 * E batches refused (ENOBUFS/EAGAIN: the device was busy), T the sending
 * time.  What arrives is counted at the receiver (bench/drop_sink.c).
 *
 * Built by bench/run.py with cc into a temporary directory.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define FIRST_SPORT 10000
#define MAX_FLOWS 50000
#define DEFAULT_PAYLOAD 18      /* 14 + 20 + 8 + 18 = 60 bytes, 64 with FCS */
#define MAX_PAYLOAD 1400
#define FRAME_STRIDE 64         /* bytes between prebuilt frames (one cache line) */
#define IP_TTL_DEFAULT 64
#define SNDBUF_BYTES (4 << 20)
#define NSEC_PER_SEC 1000000000LL

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t)
{
    struct timespec ts = {.tv_sec = t / NSEC_PER_SEC, .tv_nsec = t % NSEC_PER_SEC};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop)
        ;
}

static uint16_t ip_checksum(const void *data, size_t len)
{
    const uint16_t *p = data;
    uint32_t sum = 0;
    for (; len > 1; len -= 2)
        sum += *p++;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static int parse_mac(const char *s, unsigned char mac[ETH_ALEN])
{
    unsigned int b[ETH_ALEN];
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != ETH_ALEN)
        return -1;
    for (int i = 0; i < ETH_ALEN; i++)
        mac[i] = (unsigned char)b[i];
    return 0;
}

/* One frame per flow, FRAME_STRIDE (or more, for big payloads) apart. */
static unsigned char *build_frames(long nflows, size_t stride, const unsigned char dmac[ETH_ALEN],
                                   const unsigned char smac[ETH_ALEN], struct in_addr src,
                                   struct in_addr dst, int dport, int payload)
{
    size_t l3len = sizeof(struct iphdr) + sizeof(struct udphdr) + (size_t)payload;
    unsigned char *frames = aligned_alloc(FRAME_STRIDE, stride * (size_t)nflows);
    if (!frames)
        return NULL;
    memset(frames, 0, stride * (size_t)nflows);
    for (long f = 0; f < nflows; f++) {
        struct ethhdr *eth = (struct ethhdr *)(frames + stride * (size_t)f);
        struct iphdr *ip = (struct iphdr *)(eth + 1);
        struct udphdr *udp = (struct udphdr *)(ip + 1);
        memcpy(eth->h_dest, dmac, ETH_ALEN);
        memcpy(eth->h_source, smac, ETH_ALEN);
        eth->h_proto = htons(ETH_P_IP);
        ip->version = 4;
        ip->ihl = sizeof(struct iphdr) / 4;
        ip->ttl = IP_TTL_DEFAULT;
        ip->protocol = IPPROTO_UDP;
        ip->saddr = src.s_addr;
        ip->daddr = dst.s_addr;
        ip->tot_len = htons((uint16_t)l3len);
        ip->check = ip_checksum(ip, sizeof *ip);
        udp->source = htons((uint16_t)(FIRST_SPORT + f));
        udp->dest = htons((uint16_t)dport);
        udp->len = htons((uint16_t)(sizeof(struct udphdr) + (size_t)payload));
    }
    return frames;
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: udp_blast IFNAME DST_MAC SRC_IP DST_IP DPORT NFLOWS SECONDS "
                        "[PPS [PAYLOAD]]\n");
        return 2;
    }
    const char *ifname = argv[1];
    unsigned char dmac[ETH_ALEN], smac[ETH_ALEN];
    struct in_addr src, dst;
    if (parse_mac(argv[2], dmac) || !inet_aton(argv[3], &src) || !inet_aton(argv[4], &dst)) {
        fprintf(stderr, "udp_blast: bad MAC or address\n");
        return 2;
    }
    int dport = atoi(argv[5]);
    long nflows = atol(argv[6]);
    double seconds = atof(argv[7]);
    double pps = argc > 8 ? atof(argv[8]) : 0;
    int payload = argc > 9 ? atoi(argv[9]) : DEFAULT_PAYLOAD;
    if (nflows < 1 || nflows > MAX_FLOWS || payload < 0 || payload > MAX_PAYLOAD || pps < 0 ||
        seconds <= 0 || dport <= 0 || dport > 65535) {
        fprintf(stderr, "udp_blast: bad flows, seconds, rate, port or payload\n");
        return 2;
    }

    int fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: send only, never receive */
    if (fd < 0) {
        perror("udp_blast: socket");
        return 1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
        perror("udp_blast: SIOCGIFINDEX");
        return 1;
    }
    int ifindex = ifr.ifr_ifindex;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
        perror("udp_blast: SIOCGIFHWADDR");
        return 1;
    }
    memcpy(smac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
    int one = 1, sndbuf = SNDBUF_BYTES;
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);

    size_t len = ETH_HLEN + sizeof(struct iphdr) + sizeof(struct udphdr) + (size_t)payload;
    size_t stride = (len + FRAME_STRIDE - 1) / FRAME_STRIDE * FRAME_STRIDE;
    unsigned char *frames = build_frames(nflows, stride, dmac, smac, src, dst, dport, payload);
    if (!frames) {
        fprintf(stderr, "udp_blast: out of memory\n");
        return 1;
    }
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = ifindex,
                             .sll_halen = ETH_ALEN, .sll_protocol = htons(ETH_P_IP)};
    memcpy(to.sll_addr, dmac, ETH_ALEN);
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_len = len;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &to;
        msgs[i].msg_hdr.msg_namelen = sizeof to;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    uint64_t sent = 0, errors = 0;
    long flow = 0;
    int64_t start = now_ns(), end = start + (int64_t)(seconds * NSEC_PER_SEC), t = start;
    while (!stop && t < end) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = frames + stride * (size_t)flow;
            if (++flow == nflows)
                flow = 0;
        }
        int n = sendmmsg(fd, msgs, BATCH, 0);
        if (n < 0) {
            if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
                perror("udp_blast: sendmmsg");
                return 1;
            }
            errors++;
        } else {
            sent += (uint64_t)n; /* flows of frames not taken are skipped */
        }
        t = now_ns(); /* vDSO, ~20 ns per batch of 64 */
        if (pps > 0) {
            int64_t due = start + (int64_t)((double)sent / pps * NSEC_PER_SEC);
            if (due > t) {
                sleep_until_ns(due < end ? due : end);
                t = now_ns();
            }
        }
    }
    double elapsed = (double)(now_ns() - start) / NSEC_PER_SEC;
    printf("{\"sent\": %llu, \"send_errors\": %llu, \"seconds\": %.6f, \"flows\": %ld, "
           "\"target_pps\": %.0f}\n",
           (unsigned long long)sent, (unsigned long long)errors, elapsed, nflows, pps);
    return 0;
}
