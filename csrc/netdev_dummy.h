/* netdev_dummy.h — the dummy port type: a port with no device behind it, so
 * that datapath and bridge tests run anywhere, without root (OVS has the
 * same type, netdev-dummy.c).
 *
 * Design note.  A dummy port has two bounded queues of VS_DUMMY_QUEUE_LEN
 * frames.  Python injects frames into its receive queue (vs_dummy_inject);
 * an eventfd, readable while that queue is not empty, is the port's receive
 * descriptor, so the poll thread receives them as from any other port, in
 * batches.  What the datapath sends to the port is kept in its transmit
 * queue, in order, until Python reads it (vs_dummy_sent).  A full queue
 * drops the frame and counts it: on receive in the port type's
 * rx_queue_drops, on transmit in tx_queue_drops (and the datapath's
 * tx_dropped).  The receive queue has its own leaf mutex (inject runs in a
 * control call while a poll thread receives); the transmit queue is
 * guarded by the datapath's per-port transmit lock, which send and
 * vs_dp_port_call (hence vs_dummy_sent) both hold.
 *
 * Options for benchmarks (bench/pmd_scaling.py): rx-replay=true makes the
 * receive queue a packet generator in C: recv hands out the injected
 * frames round and round without consuming them, so a poll thread is never
 * short of input and never waits for Python; tx-discard=true counts what
 * is sent (tx_captured) and keeps nothing.
 *
 * Option rx-group=NAME: dummy ports of the same group share one receive
 * queue and its eventfd, the shape of a tunnel's shared socket (netdev.h):
 * the datapath polls the descriptor once, and recv hands each frame to the
 * port it was injected on (vs_packet.in_port).  The groups are created and
 * released by open()/close() under the type's own leaf mutex, as a
 * shared-socket type must.  Not offered in the Interface options (the
 * schema): it is for the datapath's tests.
 */
#ifndef VS_NETDEV_DUMMY_H
#define VS_NETDEV_DUMMY_H 1

#include <stdint.h>

#include "netdev.h"

#define VS_DUMMY_QUEUE_LEN 1024

struct vs_dp;

/* One frame read back by vs_dummy_sent. */
struct vs_dummy_frame {
    uint32_t len;
    uint32_t offset; /* where it starts in the caller's buffer */
    struct vs_vnet_hdr vnet;
};

/* Queues n frames (back to back in buf, lens[i] bytes each; vnets NULL or
 * one header per frame) for port_no to receive.  Frames that find the queue
 * full, or are larger than VS_MAX_FRAME, are dropped and counted.  Returns
 * how many were queued, or -ENOENT if port_no is not a dummy port. */
int vs_dummy_inject(struct vs_dp *, uint32_t port_no, const uint8_t *buf, const uint32_t *lens,
                    int n, const struct vs_vnet_hdr *vnets);
/* Drains up to max frames sent to port_no, packed into buf (a frame that
 * does not fit waits for the next call).  Returns the count, or -ENOENT if
 * port_no is not a dummy port. */
int vs_dummy_sent(struct vs_dp *, uint32_t port_no, struct vs_dummy_frame *out, int max,
                  uint8_t *buf, uint32_t buflen);

#endif
