/* xdp_prog.c — XSKMAP + redirect program as bytecode, loaded with bpf(). */
#define _GNU_SOURCE
#include "xdp_prog.h"

#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef BPF_FUNC_redirect_map
#define BPF_FUNC_redirect_map 51
#endif

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    long r = syscall(__NR_bpf, cmd, attr, sizeof *attr);
    return r < 0 ? -errno : (int)r;
}

#define INSN(c, d, s, o, i) \
    ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

int vs_xdp_prog_load(struct vs_xdp_prog *x, uint32_t n_queues)
{
    x->map_fd = x->prog_fd = x->link_fd = -1;
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_XSKMAP;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = n_queues ? n_queues : 1;
    strncpy(attr.map_name, "vs_xsks", sizeof attr.map_name - 1);
    int map_fd = sys_bpf(BPF_MAP_CREATE, &attr);
    if (map_fd < 0)
        return map_fd;

    struct bpf_insn prog[] = {
        /* r2 = ((struct xdp_md *)r1)->rx_queue_index */
        INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, 16, 0),
        /* r1 = map (two-slot ld_imm64; the kernel swaps the fd for the map) */
        INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        INSN(0, 0, 0, 0, 0),
        /* r3 = XDP_PASS: the low bits of flags are the action on a miss */
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, XDP_PASS),
        INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    char log_buf[4096];
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_XDP;
    attr.insns = (uint64_t)(uintptr_t)prog;
    attr.insn_cnt = sizeof prog / sizeof prog[0];
    attr.license = (uint64_t)(uintptr_t) "Dual BSD/GPL";
    strncpy(attr.prog_name, "vs_xsk_redir", sizeof attr.prog_name - 1);
    int prog_fd = sys_bpf(BPF_PROG_LOAD, &attr);
    if (prog_fd < 0) {
        /* Retry with the verifier log, so a failure can be read in gdb/strace;
         * the errno of the first attempt is what we report. */
        attr.log_buf = (uint64_t)(uintptr_t)log_buf;
        attr.log_size = sizeof log_buf;
        attr.log_level = 1;
        int r = sys_bpf(BPF_PROG_LOAD, &attr);
        if (r >= 0)
            close(r);
        close(map_fd);
        return prog_fd;
    }
    x->map_fd = map_fd;
    x->prog_fd = prog_fd;
    return 0;
}

int vs_xdp_prog_attach(struct vs_xdp_prog *x, int ifindex, int mode)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.link_create.prog_fd = (uint32_t)x->prog_fd;
    attr.link_create.target_ifindex = (uint32_t)ifindex;
    attr.link_create.attach_type = BPF_XDP;
    attr.link_create.flags = mode == VS_XDP_ATTACH_NATIVE ? XDP_FLAGS_DRV_MODE
                                                          : XDP_FLAGS_SKB_MODE;
    int fd = sys_bpf(BPF_LINK_CREATE, &attr);
    if (fd < 0)
        return fd;
    x->link_fd = fd;
    return 0;
}

int vs_xdp_prog_set_socket(struct vs_xdp_prog *x, uint32_t queue, int xsk_fd)
{
    union bpf_attr attr;
    uint32_t value = (uint32_t)xsk_fd;
    memset(&attr, 0, sizeof attr);
    attr.map_fd = (uint32_t)x->map_fd;
    attr.key = (uint64_t)(uintptr_t)&queue;
    attr.value = (uint64_t)(uintptr_t)&value;
    attr.flags = BPF_ANY;
    int r = sys_bpf(BPF_MAP_UPDATE_ELEM, &attr);
    return r < 0 ? r : 0;
}

void vs_xdp_prog_del_socket(struct vs_xdp_prog *x, uint32_t queue)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_fd = (uint32_t)x->map_fd;
    attr.key = (uint64_t)(uintptr_t)&queue;
    sys_bpf(BPF_MAP_DELETE_ELEM, &attr);
}

void vs_xdp_prog_close(struct vs_xdp_prog *x)
{
    /* The link first: from then on no frame is redirected to our sockets. */
    if (x->link_fd >= 0)
        close(x->link_fd);
    if (x->prog_fd >= 0)
        close(x->prog_fd);
    if (x->map_fd >= 0)
        close(x->map_fd);
    x->link_fd = x->prog_fd = x->map_fd = -1;
}
