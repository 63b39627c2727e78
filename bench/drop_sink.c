/* drop_sink.c — the benchmark's receiving end for 64-byte UDP: count and
 * drop in the kernel, before the IP stack.
 *
 *   drop_sink IFNAME UDP_PORT
 *
 * Why: a UDP socket draining with recvmmsg() costs the receiving VM's core
 * a full trip through the IP and UDP stacks plus a copy per packet; on the
 * two-CPU bench machine that core also runs the generator, so the old sink
 * capped a bare veth pair near 0.67 Mpps and the 64-byte rows measured the
 * sink, not the switch.  Here a tc ingress program (tcx link, no
 * act_gact/cls_matchall needed: this kernel has neither) counts the
 * blast's frames (IPv4, UDP, destination UDP_PORT) in a per-CPU array and
 * drops them: a few dozen instructions per packet, no socket, no copy.
 * Everything else (ARP, IPv6 ND, pings) goes on to the stack untouched.
 *
 * The program is assembled here by hand (no clang on the bench machine);
 * the link is owned by this process, so the filter is gone when it exits,
 * however it exits.
 *
 * Protocol on stdin/stdout: prints "ready" once attached; for each line
 * read from stdin prints {"packets": N} (the count so far, all CPUs
 * summed); exits on end of input.
 *
 * Built by bench/run.py with cc into a temporary directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Not in this machine's (older) uapi headers; values from the 6.6+ ones. */
#ifndef BPF_TCX_INGRESS
#define BPF_TCX_INGRESS (BPF_LSM_CGROUP + 3) /* after BPF_STRUCT_OPS, BPF_NETFILTER */
#endif
#define TCX_NEXT (-1) /* hand the packet on (to the stack) */
#define TCX_DROP 2

#define ETH_TYPE_OFF 12
#define ETH_TYPE_IPV4 0x0800
#define IP_VHL_OFF 14
#define IP_PROTO_OFF 23
#define UDP_DPORT_OFF 36                 /* 14 Ethernet + 20 IPv4 (no options) + 2 */
#define NEED_BYTES (UDP_DPORT_OFF + 2)
#define IPV4_NO_OPTIONS 0x45
#define PROTO_UDP 17
#define LOG_SIZE 65536

static long bpf(int cmd, union bpf_attr *attr)
{
    return syscall(__NR_bpf, cmd, attr, sizeof *attr);
}

/* Instruction builders (the kernel's filter.h macros are not uapi). */
#define INSN(c, d, s, o, i) \
    ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define MOV64_REG(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV64_IMM(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ADD64_IMM(d, i) INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
#define LDX(sz, d, s, o) INSN(BPF_LDX | BPF_MEM | (sz), d, s, o, 0)
#define STX(sz, d, s, o) INSN(BPF_STX | BPF_MEM | (sz), d, s, o, 0)
#define ST_IMM(sz, d, o, i) INSN(BPF_ST | BPF_MEM | (sz), d, 0, o, i)
#define JGT_REG(d, s, o) INSN(BPF_JMP | BPF_JGT | BPF_X, d, s, o, 0)
#define JLE_REG(d, s, o) INSN(BPF_JMP | BPF_JLE | BPF_X, d, s, o, 0)
#define JNE_IMM(d, i, o) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, o, i)
#define JEQ_IMM(d, i, o) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, o, i)
#define CALL(f) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* Network-order 16-bit value as a little- or big-endian host loads it. */
static int32_t wire16(uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    uint16_t h;
    memcpy(&h, b, 2);
    return h;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: drop_sink IFNAME UDP_PORT\n");
        return 2;
    }
    unsigned ifindex = if_nametoindex(argv[1]);
    int port = atoi(argv[2]);
    if (!ifindex || port <= 0 || port > 65535) {
        fprintf(stderr, "drop_sink: bad interface %s or port %s\n", argv[1], argv[2]);
        return 2;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);

    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_PERCPU_ARRAY;
    attr.key_size = 4;
    attr.value_size = 8;
    attr.max_entries = 1;
    int map_fd = (int)bpf(BPF_MAP_CREATE, &attr);
    if (map_fd < 0) {
        perror("drop_sink: BPF_MAP_CREATE");
        return 1;
    }

    /* r6 = skb; r2 = data; r3 = data_end.  If the headers are not all in
     * the linear part (a sender that hands the kernel page fragments),
     * bpf_skb_pull_data() first.  Pass unless the frame is IPv4 (no
     * options) / UDP / dport; then count and drop.  A jump's offset is the
     * number of instructions it skips (the 64-bit map load takes two
     * slots); "pass" is the last two instructions. */
    struct bpf_insn prog[] = {
        MOV64_REG(BPF_REG_6, BPF_REG_1),
        LDX(BPF_W, BPF_REG_2, BPF_REG_6, offsetof(struct __sk_buff, data)),
        LDX(BPF_W, BPF_REG_3, BPF_REG_6, offsetof(struct __sk_buff, data_end)),
        MOV64_REG(BPF_REG_4, BPF_REG_2),
        ADD64_IMM(BPF_REG_4, NEED_BYTES),
        JLE_REG(BPF_REG_4, BPF_REG_3, 9),                       /* -> headers */
        MOV64_REG(BPF_REG_1, BPF_REG_6),
        MOV64_IMM(BPF_REG_2, NEED_BYTES),
        CALL(BPF_FUNC_skb_pull_data),
        JNE_IMM(BPF_REG_0, 0, 25),                              /* -> pass */
        LDX(BPF_W, BPF_REG_2, BPF_REG_6, offsetof(struct __sk_buff, data)),
        LDX(BPF_W, BPF_REG_3, BPF_REG_6, offsetof(struct __sk_buff, data_end)),
        MOV64_REG(BPF_REG_4, BPF_REG_2),
        ADD64_IMM(BPF_REG_4, NEED_BYTES),
        JGT_REG(BPF_REG_4, BPF_REG_3, 20),                      /* -> pass */
        LDX(BPF_H, BPF_REG_4, BPF_REG_2, ETH_TYPE_OFF),         /* headers: */
        JNE_IMM(BPF_REG_4, wire16(ETH_TYPE_IPV4), 18),
        LDX(BPF_B, BPF_REG_4, BPF_REG_2, IP_VHL_OFF),
        JNE_IMM(BPF_REG_4, IPV4_NO_OPTIONS, 16),
        LDX(BPF_B, BPF_REG_4, BPF_REG_2, IP_PROTO_OFF),
        JNE_IMM(BPF_REG_4, PROTO_UDP, 14),
        LDX(BPF_H, BPF_REG_4, BPF_REG_2, UDP_DPORT_OFF),
        JNE_IMM(BPF_REG_4, wire16((uint16_t)port), 12),
        ST_IMM(BPF_W, BPF_REG_10, -4, 0),                       /* key 0 */
        INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        INSN(0, 0, 0, 0, 0),
        MOV64_REG(BPF_REG_2, BPF_REG_10),
        ADD64_IMM(BPF_REG_2, -4),
        CALL(BPF_FUNC_map_lookup_elem),
        JEQ_IMM(BPF_REG_0, 0, 3),                               /* -> drop */
        LDX(BPF_DW, BPF_REG_1, BPF_REG_0, 0),
        ADD64_IMM(BPF_REG_1, 1),
        STX(BPF_DW, BPF_REG_0, BPF_REG_1, 0),
        MOV64_IMM(BPF_REG_0, TCX_DROP),                         /* drop: */
        EXIT(),
        MOV64_IMM(BPF_REG_0, TCX_NEXT),                         /* pass: */
        EXIT(),
    };
    static char log[LOG_SIZE];
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SCHED_CLS;
    attr.insns = (uintptr_t)prog;
    attr.insn_cnt = sizeof prog / sizeof prog[0];
    attr.license = (uintptr_t)"GPL";
    attr.log_buf = (uintptr_t)log;
    attr.log_size = sizeof log;
    attr.log_level = 1;
    int prog_fd = (int)bpf(BPF_PROG_LOAD, &attr);
    if (prog_fd < 0) {
        fprintf(stderr, "drop_sink: BPF_PROG_LOAD: %s\n%s\n", strerror(errno), log);
        return 1;
    }

    memset(&attr, 0, sizeof attr);
    attr.link_create.prog_fd = (uint32_t)prog_fd;
    attr.link_create.target_ifindex = ifindex;
    attr.link_create.attach_type = BPF_TCX_INGRESS;
    int link_fd = (int)bpf(BPF_LINK_CREATE, &attr);
    if (link_fd < 0) {
        perror("drop_sink: BPF_LINK_CREATE (tcx ingress)");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);

    uint64_t *values = calloc((size_t)ncpu, sizeof *values);
    char line[64];
    while (values && fgets(line, sizeof line, stdin)) {
        uint32_t key = 0;
        memset(&attr, 0, sizeof attr);
        attr.map_fd = (uint32_t)map_fd;
        attr.key = (uintptr_t)&key;
        attr.value = (uintptr_t)values;
        if (bpf(BPF_MAP_LOOKUP_ELEM, &attr) < 0) {
            perror("drop_sink: BPF_MAP_LOOKUP_ELEM");
            return 1;
        }
        uint64_t total = 0;
        for (long i = 0; i < ncpu; i++)
            total += values[i];
        printf("{\"packets\": %llu}\n", (unsigned long long)total);
        fflush(stdout);
    }
    return 0; /* closing link_fd (at exit) detaches the program */
}
