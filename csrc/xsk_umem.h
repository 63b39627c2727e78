/* xsk_umem.h — UMEMs shared by the afxdp ports' AF_XDP sockets, and the
 * pool of their chunks (used by afxdp.c only; not part of the Python API).
 *
 * Design note.
 *  - Why shared: an afxdp port that forwards a frame received on another
 *    afxdp port can hand the kernel the very chunk the frame arrived in
 *    (its address on the output socket's tx ring) instead of copying it
 *    into a chunk of its own, when both sockets use the same UMEM
 *    (XDP_SHARED_UMEM; across devices each socket keeps its own fill and
 *    completion rings).  Copy mode's own copy into the skb stays: that is
 *    the one copy veth forces.
 *  - A group is one UMEM of XSK_UMEM_GROUP_QUEUES * XSK_UMEM_QUEUE_CHUNKS
 *    chunks of XSK_UMEM_FRAME_SIZE bytes, registered by its first socket;
 *    later sockets join with XDP_SHARED_UMEM while it has a free member
 *    slot, else a new group is made (the memory is pinned at registration,
 *    so groups are sized for the common pair of ports, one queue each).
 *    Frames between ports of different groups are copied, as before.
 *  - Each member (one socket: a port's rx queue, and queue 0 also
 *    transmits) has two owner ids, its receive side and its transmit side.
 *    Every chunk is either in the group's free stack or owned by exactly
 *    one side of one member: owner[chunk].  Receive side: lent through the
 *    fill ring, in the kernel, on the rx ring, or handed out in place for
 *    one batch.  Transmit side: on the tx ring, in the kernel, on the
 *    completion ring, or in the member's free cache.  A zero-copy transmit
 *    moves a chunk from the receiving member's receive side to the
 *    sending member's transmit side (one store); its completion comes back
 *    on the sender's completion ring.  So chunks migrate: a receive side
 *    finds the chunks it handed out gone (owner changed) and refills from
 *    the free stack; a transmit cache above its high mark spills into it.
 *  - When a member closes (after its socket is closed: the kernel holds
 *    none of its chunks any more), every chunk either of its sides owns
 *    goes back to the free stack: nothing is lost with a port removal.
 *  - Locking.  The group mutex (a leaf: taken with nothing but a port's
 *    transmit lock or the control mutex held) guards the free stack, the
 *    member slots and the owner entries of free chunks; it is taken once
 *    per XSK_UMEM_BATCH chunks moved, never per packet.  owner[] entries of
 *    chunks a side owns are written only by the thread running that side
 *    (the receive side: the queue's poll thread; the transmit side: send,
 *    under the port's transmit lock), with relaxed atomics: a zero-copy
 *    transmit runs in the poll thread that received the frame, within the
 *    batch, before that thread looks at the receive side's chunks again.
 *    The list of groups has its own mutex, taken in open and close only
 *    (control calls), before a group's.
 */
#ifndef VS_XSK_UMEM_H
#define VS_XSK_UMEM_H 1

#include <stdint.h>

#define XSK_UMEM_FRAME_SIZE 4096u
#define XSK_UMEM_QUEUE_CHUNKS 6144u /* each member's share of its group's UMEM */
#define XSK_UMEM_GROUP_QUEUES 2u    /* members per group (sockets sharing a UMEM) */
#define XSK_UMEM_GROUP_CHUNKS (XSK_UMEM_QUEUE_CHUNKS * XSK_UMEM_GROUP_QUEUES)
#define XSK_UMEM_BYTES ((uint64_t)XSK_UMEM_GROUP_CHUNKS * XSK_UMEM_FRAME_SIZE)
#define XSK_UMEM_BATCH 64u          /* chunks moved to or from the free stack at a time */
#define XSK_UMEM_OWNER_FREE 0xffffu

struct xsk_umem_group;

/* A member: one socket's place in a group. */
struct xsk_umem_member {
    struct xsk_umem_group *group;
    uint8_t *umem;    /* the group's memory */
    uint16_t rx_owner, tx_owner;
};

/* Joins a group with a free slot (or a new one); *share_fd is then a bound
 * socket of the group to bind with XDP_SHARED_UMEM, or -1 when the caller
 * must register the UMEM itself (XSK_UMEM_BYTES at m->umem).  fresh: always a new
 * group (a shared bind the kernel refused).  Returns 0 or -errno. */
int xsk_umem_join(struct xsk_umem_member *m, int fresh, int *share_fd);
/* The socket is bound: later members may share through it. */
void xsk_umem_bound(struct xsk_umem_member *m, int fd);
/* Leaves the group after the member's socket is closed: its chunks go back
 * to the free stack; the last member unmaps the memory. */
void xsk_umem_leave(struct xsk_umem_member *m);

/* Takes up to n free chunks for side `owner` (addresses into out);
 * returns how many. */
uint32_t xsk_umem_take(struct xsk_umem_member *m, uint16_t owner, uint64_t *out, uint32_t n);
/* Gives n chunks back to the free stack. */
void xsk_umem_give(struct xsk_umem_member *m, const uint64_t *chunks, uint32_t n);

/* owner[] of a chunk (an address in the member's UMEM). */
uint16_t xsk_umem_owner(const struct xsk_umem_member *m, uint64_t chunk);
void xsk_umem_set_owner(struct xsk_umem_member *m, uint64_t chunk, uint16_t owner);
/* 1 if p lies in the member's UMEM. */
static inline int xsk_umem_contains(const struct xsk_umem_member *m, const uint8_t *p)
{
    return p >= m->umem && p < m->umem + XSK_UMEM_BYTES;
}

/* Accounting, under the group mutex: free chunks, chunks owned by a live
 * member, and the rest (lost: always 0 unless a bug). */
struct xsk_umem_counts {
    uint64_t free, owned, lost;
};
void xsk_umem_counts(struct xsk_umem_member *m, struct xsk_umem_counts *out);

#endif
