/* udp_blast.c — the benchmark's 64-byte UDP generator and sink.
 *
 *   udp_blast send IFNAME DST_MAC SRC_IP DST_IP DPORT NFLOWS SECONDS [PAYLOAD]
 *   udp_blast sink PORT SECONDS [IDLE_MS]
 *
 * send: an AF_PACKET socket on IFNAME with PACKET_QDISC_BYPASS and
 * sendmmsg() in batches of 64 whole Ethernet frames (the sender's IP stack is
 * skipped: no route lookup per packet, so one core offers ~2x what a UDP or
 * raw IP socket does).  Each frame's UDP source port cycles through NFLOWS
 * values starting at 10000, so NFLOWS distinct 5-tuples reach the switch.
 * The default payload of 18 bytes makes a 60-byte frame (64 bytes on a wire
 * with the FCS).  The UDP checksum is 0 (legal in IPv4).  Prints one JSON
 * line: {"sent": N, "send_errors": E, "seconds": T}.
 *
 * sink: a UDP socket with a large receive buffer, recvmmsg() in batches of
 * 64; stops SECONDS after start, or IDLE_MS after the last packet once one
 * has arrived.  Prints {"received": N, "seconds": T} where T runs from the
 * first packet to the last.
 *
 * Built by bench/run.py with gcc into a temporary directory.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define FIRST_SPORT 10000

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
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

static int parse_mac(const char *s, unsigned char mac[6])
{
    unsigned int b[6];
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
        return -1;
    for (int i = 0; i < 6; i++)
        mac[i] = (unsigned char)b[i];
    return 0;
}

static int do_send(int argc, char **argv)
{
    if (argc < 9) {
        fprintf(stderr, "usage: send IFNAME DST_MAC SRC_IP DST_IP DPORT NFLOWS SECONDS [PAYLOAD]\n");
        return 2;
    }
    const char *ifname = argv[2];
    unsigned char dmac[6], smac[6];
    struct in_addr src, dst;
    if (parse_mac(argv[3], dmac) || !inet_aton(argv[4], &src) || !inet_aton(argv[5], &dst)) {
        fprintf(stderr, "bad MAC or address\n");
        return 2;
    }
    int dport = atoi(argv[6]);
    long nflows = atol(argv[7]);
    double seconds = atof(argv[8]);
    int payload = argc > 9 ? atoi(argv[9]) : 18;
    if (nflows < 1 || nflows > 50000 || payload < 0 || payload > 1400) {
        fprintf(stderr, "bad flows or payload\n");
        return 2;
    }

    int fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: send only, never receive */
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
        perror("SIOCGIFINDEX");
        return 1;
    }
    int ifindex = ifr.ifr_ifindex;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
        perror("SIOCGIFHWADDR");
        return 1;
    }
    memcpy(smac, ifr.ifr_hwaddr.sa_data, 6);
    int one = 1, sndbuf = 4 << 20;
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);

    size_t l3len = sizeof(struct iphdr) + sizeof(struct udphdr) + (size_t)payload;
    size_t len = ETH_HLEN + l3len;
    static unsigned char bufs[BATCH][1600];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = ifindex,
                             .sll_halen = 6, .sll_protocol = htons(ETH_P_IP)};
    memcpy(to.sll_addr, dmac, 6);
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        struct ethhdr *eth = (struct ethhdr *)bufs[i];
        struct iphdr *ip = (struct iphdr *)(eth + 1);
        struct udphdr *udp = (struct udphdr *)(ip + 1);
        memset(bufs[i], 0, len);
        memcpy(eth->h_dest, dmac, 6);
        memcpy(eth->h_source, smac, 6);
        eth->h_proto = htons(ETH_P_IP);
        ip->version = 4;
        ip->ihl = 5;
        ip->ttl = 64;
        ip->protocol = IPPROTO_UDP;
        ip->saddr = src.s_addr;
        ip->daddr = dst.s_addr;
        ip->tot_len = htons((uint16_t)l3len);
        ip->check = ip_checksum(ip, sizeof *ip);
        udp->dest = htons((uint16_t)dport);
        udp->len = htons((uint16_t)(sizeof(struct udphdr) + payload));
        udp->check = 0;
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = len;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &to;
        msgs[i].msg_hdr.msg_namelen = sizeof to;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    uint64_t sent = 0, errors = 0, flow = 0;
    double start = now(), end = start + seconds, t = start;
    while (!stop && t < end) {
        for (int i = 0; i < BATCH; i++) {
            struct udphdr *udp = (struct udphdr *)(bufs[i] + ETH_HLEN + sizeof(struct iphdr));
            udp->source = htons((uint16_t)(FIRST_SPORT + flow));
            if (++flow == (uint64_t)nflows)
                flow = 0;
        }
        int n = sendmmsg(fd, msgs, BATCH, 0);
        if (n < 0) {
            if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
                perror("sendmmsg");
                return 1;
            }
            errors++;
        } else {
            sent += (uint64_t)n; /* flows of packets not taken are skipped */
        }
        t = now(); /* vDSO, ~20 ns per batch of 64 */
    }
    double elapsed = now() - start;
    printf("{\"sent\": %llu, \"send_errors\": %llu, \"seconds\": %.6f}\n",
           (unsigned long long)sent, (unsigned long long)errors, elapsed);
    return 0;
}

static int do_sink(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: sink PORT SECONDS [IDLE_MS]\n");
        return 2;
    }
    int port = atoi(argv[2]);
    double seconds = atof(argv[3]);
    double idle = (argc > 4 ? atof(argv[4]) : 500) / 1000.0;

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    int rcvbuf = 32 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("bind");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);

    static unsigned char bufs[BATCH][2048];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = sizeof bufs[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    uint64_t received = 0;
    double start = now(), first = 0, last = 0;
    for (;;) {
        double t = now();
        if (stop || t - start > seconds || (received && t - last > idle))
            break;
        int n = recvmmsg(fd, msgs, BATCH, 0, NULL);
        if (n > 0) {
            if (!received)
                first = now();
            received += (uint64_t)n;
            last = now();
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            perror("recvmmsg");
            return 1;
        }
    }
    printf("{\"received\": %llu, \"seconds\": %.6f}\n", (unsigned long long)received,
           received ? last - first : 0.0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "send"))
        return do_send(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "sink"))
        return do_sink(argc, argv);
    fprintf(stderr, "usage: udp_blast send|sink ...\n");
    return 2;
}
