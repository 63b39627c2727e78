/* netdev_provider.h — the port-type interface: one table of operations per
 * type, registered by name (design note and locking rules: netdev.h).
 * Included by datapath.c, netdev.c and the types; not part of the Python
 * API (not in the cffi cdef). */
#ifndef VS_NETDEV_PROVIDER_H
#define VS_NETDEV_PROVIDER_H 1

#include <stddef.h>
#include <stdint.h>

#include "netdev.h"

struct vs_dp;

/* An open port as the datapath holds it.  A type's own state embeds it
 * first and gets back to itself with a cast; the datapath sets both fields
 * after open() returns. */
struct vs_netdev {
    const struct vs_netdev_class *class;
    uint32_t port_no;
};

struct vs_netdev_class {
    const char *type; /* the name ports are added with, e.g. "afpacket" */

    /* Opens `name` as port `port_no` with its options (unknown keys are
     * refused: vs_netdev_check_options).  Returns 0 and *out, or -errno with
     * the failing step written to err (errlen bytes, e.g. "attach native
     * XDP"). */
    int (*open)(const char *name, uint32_t port_no, const struct vs_port_option *opts,
                int n_opts, struct vs_netdev **out, char *err, size_t errlen);
    void (*close)(struct vs_netdev *);

    /* The descriptors the poll thread waits on (POLLIN) to receive: writes up
     * to max into fds[], returns the count.  Index i is receive queue i. */
    int (*rx_fds)(struct vs_netdev *, int *fds, int max);
    /* Receives up to n packets from receive queue rxq into pkts[] (each with
     * its buffer set, in_port preset, tnl.flags 0).  Returns the count (0 if
     * none) or -errno; *truncated counts frames dropped as oversize or cut.
     * A type may point a packet's buf and data at its own memory (afxdp: the
     * UMEM chunk, with at least VS_HEADROOM in front of data): the datapath
     * is done with a batch (processed, sent or copied) before it calls recv
     * on the same queue again, and gives every call its own buffers back. */
    int (*recv)(struct vs_netdev *, int rxq, struct vs_packet *pkts, int n,
                uint64_t *truncated);
    /* Sends n packets; returns how many were sent: pkts[0..sent) went out,
     * the rest count as drops. */
    int (*send)(struct vs_netdev *, struct vs_packet *const *pkts, int n);

    /* poll() reported revents without POLLIN on receive queue rxq (fd).
     * Returns 0 if the condition was cleared, 1 if it cannot be: the port
     * is then dead, never polled again until it is replaced.  NULL:
     * vs_netdev_poll_error(). */
    int (*poll_error)(struct vs_netdev *, int rxq, int fd, short revents);

    /* Optional: the type's status (Interface status column, beside the
     * switch's own driver_name/error) and counters beyond the datapath's
     * per-port ones (Interface statistics, as TYPE_NAME).  Return the count
     * written, at most max. */
    int (*get_status)(struct vs_netdev *, struct vs_port_kv *out, int max);
    int (*get_stats)(struct vs_netdev *, struct vs_port_counter *out, int max);

    /* Optional: the netdev's ifindex when it runs a kernel tier (xdp_tier.h,
     * tc_tier.h), i.e. both forwards exact flows in the kernel and accepts
     * the tier's redirects; 0 (or NULL) when it does not. */
    int (*tier_ifindex)(struct vs_netdev *);
    /* Which tier that is (enum vs_tier_kind; the zero default is XDP's).
     * The datapath offloads a flow only between two ports of one kind. */
    int tier_kind;
};

enum vs_tier_kind {
    VS_TIER_XDP, /* XDP program + devmap (afxdp ports) */
    VS_TIER_TC,  /* tcx ingress program + tc_ports (afpacket ports) */
};

/* Registers a class (called from constructors at load time). */
void vs_netdev_register(const struct vs_netdev_class *);
const struct vs_netdev_class *vs_netdev_lookup(const char *type);

#define VS_NETDEV_REGISTER(cls)                                              \
    static void __attribute__((constructor)) vs_netdev_register_##cls(void) \
    {                                                                        \
        vs_netdev_register(&cls);                                            \
    }

/* ---- helpers for types ---- */

/* Brings an interface up (SIOCSIFFLAGS); returns 0 or -errno. */
int vs_netdev_set_up(const char *ifname);
/* The default poll_error: a socket's pending error is read, which clears
 * it (0); POLLHUP/POLLNVAL, or a descriptor that is not a socket, is dead (1). */
int vs_netdev_poll_error(int fd, short revents);
/* 0 if every option's key is in allowed (NULL-terminated), else -EINVAL
 * with "option KEY" in err. */
int vs_netdev_check_options(const struct vs_port_option *opts, int n_opts,
                            const char *const *allowed, char *err, size_t errlen);
/* The value of option key, or dflt. */
const char *vs_netdev_option(const struct vs_port_option *opts, int n_opts, const char *key,
                             const char *dflt);
/* The kernel strips a received frame's 802.1Q tag into skb metadata before a
 * packet socket sees it; with PACKET_AUXDATA on, the message's control data
 * hands it back and this re-inserts it (and shifts p->vnet's offsets), so
 * the rest of the fast path sees the frame as it was on the wire.
 * (netdev_afpacket.c) */
struct msghdr;
void vs_netdev_restore_vlan_tag(struct vs_packet *p, const struct msghdr *mh);
/* Reads up to n (at most VS_BATCH) frames from a packet socket with
 * PACKET_VNET_HDR and PACKET_AUXDATA on, without blocking: each frame's vnet
 * header into pkts[i].vnet, its first prefix_len bytes (0: none) into
 * prefix + i * prefix_len, the rest into pkts[i].data (pkts[i].len), VLAN
 * tag restored.  Truncated frames are dropped and counted in *truncated.
 * Returns the count kept, packed to the front, or -errno.
 * (netdev_afpacket.c) */
int vs_netdev_packet_recv(int fd, struct vs_packet *pkts, int n, uint8_t *prefix,
                          size_t prefix_len, uint64_t *truncated);
/* Writes the failing step to err and returns error (a negative errno). */
int vs_netdev_fail(char *err, size_t errlen, const char *step, int error);
/* Appends to a status or statistics array of max entries if there is room;
 * both return the new count. */
int vs_netdev_kv(struct vs_port_kv *out, int n, int max, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int vs_netdev_counter(struct vs_port_counter *out, int n, int max, const char *name,
                      uint64_t value);

/* For a type's own control entry points (netdev_dummy.h): runs fn(netdev,
 * arg) under the control mutex and the port's transmit lock (not
 * concurrently with send on it, but with its recv: netdev.h), if port_no is
 * open with class cls.  Returns fn's result, or -ENOENT.  (datapath.c) */
int vs_dp_port_call(struct vs_dp *, uint32_t port_no, const struct vs_netdev_class *cls,
                    int (*fn)(struct vs_netdev *, void *), void *arg);

#endif
