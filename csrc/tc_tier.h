/* tc_tier.h — the kernel tc tier: established exact flows forwarded by a
 * tcx ingress program on an afpacket port's netdev (csrc/bpf/tc_tier.bpf.c),
 * without crossing into user space.
 *
 * Design note.
 *  - Why beside the XDP tier (xdp_tier.h): on a veth an XDP program makes
 *    the kernel linearise and copy every GSO or shared skb, which costs TCP
 *    more than the tier saves.  At tc ingress the program has the skb
 *    itself: bpf_redirect() / bpf_redirect_peer() move it with its GSO
 *    super-frame and partial checksum intact.
 *  - Behind an option: afpacket ports with options:tc-offload=true
 *    (netdev_afpacket.c).  Such a port attaches, with vs_tc_tier_open(), a
 *    socket filter to its AF_PACKET socket and the tc program to its netdev;
 *    the socket filter keeps the frames the tier forwards out of the socket
 *    (a packet socket's tap runs before tc ingress: see tc_tier_abi.h).
 *  - Maps: the exact flows are the XDP tier's map (xdp_tier_abi.h), so the
 *    datapath's offload code (xdp_offload.h) puts, harvests and removes
 *    entries for both tiers alike; `tc_ports` (output ifindex → redirect
 *    mode) is this module's, process-wide, created with the first tc-tier
 *    port and closed with the last.
 *  - Redirect mode per output port: into the peer (bpf_redirect_peer) when
 *    the netdev is a veth — the frame enters the peer's namespace at once,
 *    without a second trip through the backlog queue — else out of the
 *    netdev (bpf_redirect).  A tc redirect needs nothing of the target
 *    (unlike XDP's, which needs GRO or XDP on a veth's peer).
 *  - Which tier ports may be joined: tc to tc, and XDP to XDP (datapath.c).
 *    XDP → tc would need the tc port in the XDP devmap and its veth peer to
 *    take XDP frames; tc → XDP would need afxdp ports in `tc_ports`; neither
 *    is done, so mixed pairs stay in user space.
 *  - vxlan ports with tc-offload (vxlan_kdev.h) join the tier as tc ports:
 *    flows from them are looked up by the kernel vxlan device's program,
 *    flows to them are sent with their tunnel (`vx_tx`) into that device.
 *    A frame (or a GSO frame's segment) larger than the port's inner MTU
 *    is left to user space, which segments it to that size or drops and
 *    counts it: the device sends with DF and would drop it unseen.
 *  - Thread safety: the shared map fd and its reference count are guarded
 *    by a mutex of this module (a leaf lock, held only around open/close);
 *    the flow calls are xdp_tier.c's.
 */
#ifndef VS_TC_TIER_H
#define VS_TC_TIER_H 1

#include <stddef.h>
#include <stdint.h>

/* One port's attachment. */
struct vs_tc_tier {
    int ifindex;
    int link_fd; /* the tcx ingress link: closing it detaches the program */
    int sock_prog_fd;
    int maps_held; /* holds a reference on the shared maps */
};

/* 1 when the extension was built with the tier's programs. */
int vs_tc_tier_available(void);

/* Attaches the tier to netdev ifname (ifindex) and its packet socket
 * sock_fd.  0, or -errno with the failing step in step (steplen bytes).
 * Call vs_tc_tier_close() before closing sock_fd. */
int vs_tc_tier_open(struct vs_tc_tier *, const char *ifname, int ifindex, int sock_fd,
                    char *step, size_t steplen);
void vs_tc_tier_close(struct vs_tc_tier *);

/* "peer" or "egress": how the tier sends to this port. */
const char *vs_tc_tier_redirect_name(const struct vs_tc_tier *);

/* For the kernel vxlan device's program (vxlan_kdev.h), which shares the
 * maps (built with the tier only).  A reference on them, 0 or -errno; the
 * shared maps into obj before it loads; a vxlan port (tier_index,
 * tc_tier_abi.h) as an output of the tier, 0 or -errno, and no more. */
struct bpf_object;
struct vs_tc_vxlan_tx;
int vs_tc_tier_maps_acquire(void);
void vs_tc_tier_maps_release(void);
int vs_tc_tier_maps_reuse(struct bpf_object *obj);
int vs_tc_tier_vxlan_expose(uint32_t tier_index, const struct vs_tc_vxlan_tx *tx);
void vs_tc_tier_vxlan_unexpose(uint32_t tier_index);
/* Attaches program prog_fd at tcx ingress of ifindex: the link's fd (closing
 * it detaches), or -errno.  The tier's ports and the kernel vxlan device
 * attach through this one call. */
int vs_tc_tier_attach_ingress(int prog_fd, int ifindex);

#endif
