/* xdp_prog.h — our own XDP program and its loader, through the bpf() syscall.
 *
 * Design note.  An afxdp port needs an XDP program on its netdev that hands
 * every frame to the AF_XDP socket of the queue it arrived on.  That program
 * is six instructions, so it is written here as bytecode instead of compiled
 * from C: nothing (libbpf, clang, an ELF object) is needed at install time.
 *
 *     r2 = ctx->rx_queue_index
 *     r1 = &xsks_map              (ld_imm64, BPF_PSEUDO_MAP_FD relocation)
 *     r3 = XDP_PASS               (bpf_redirect_map's action when no entry)
 *     r0 = bpf_redirect_map(r1, r2, r3)
 *     exit
 *
 * A queue with no socket in the map falls back to XDP_PASS, so the kernel
 * stack still sees its frames rather than losing them.
 * The program is attached with a BPF link (BPF_LINK_CREATE, BPF_XDP): the
 * link belongs to its file descriptor, so closing it — or the daemon dying
 * for any reason, SIGKILL included — detaches the program.  A netlink
 * (IFLA_XDP) attachment would outlive the process and leave the netdev
 * redirecting into a socket that no longer exists.
 */
#ifndef VS_XDP_PROG_H
#define VS_XDP_PROG_H 1

#include <stdint.h>

enum vs_xdp_attach { VS_XDP_ATTACH_NATIVE = 1, VS_XDP_ATTACH_GENERIC = 2 };

struct vs_xdp_prog {
    int map_fd;  /* XSKMAP: rx queue index -> AF_XDP socket */
    int prog_fd;
    int link_fd; /* -1 until attached */
};

/* Creates the XSKMAP (n_queues entries) and loads the program.  Returns 0 or
 * -errno; on failure nothing is left open. */
int vs_xdp_prog_load(struct vs_xdp_prog *, uint32_t n_queues);
/* Attaches to ifindex in the given mode (VS_XDP_ATTACH_*).  0 or -errno. */
int vs_xdp_prog_attach(struct vs_xdp_prog *, int ifindex, int mode);
/* Puts an AF_XDP socket in the map at queue index. 0 or -errno. */
int vs_xdp_prog_set_socket(struct vs_xdp_prog *, uint32_t queue, int xsk_fd);
/* Takes it out again: the map holds a reference on the socket, which would
 * otherwise keep the socket (and its claim on the queue) alive until the map
 * itself is freed, some time after close. */
void vs_xdp_prog_del_socket(struct vs_xdp_prog *, uint32_t queue);
/* Detaches (closes the link) and frees the map and program. */
void vs_xdp_prog_close(struct vs_xdp_prog *);

#endif
