/* inet_csum.h — the Internet checksum (RFC 1071), fast enough for payloads.
 *
 * Design note.  The one's-complement sum is the fast path's per-byte cost
 * wherever a checksum is completed, verified or made for a segment (GSO in
 * software, VXLAN's coalescing on receive): a 16-bit-word loop ran at about
 * a byte per cycle.  Here the sum is taken 64 bits at a time in memory
 * order (RFC 1071 §2(B): the sum is independent of byte order, so the
 * folded result is simply in network order), with end-around carries; on
 * x86-64 an add-with-carry chain over 64-byte blocks, as Linux's
 * csum_partial does.  Callers that keep sums as host-order numbers convert
 * the folded 16 bits with ntohs (vs_csum_be).
 * A sum over a buffer of odd length is only correct as the last piece of
 * a checksum (the odd byte is the high byte of a zero-padded word), as in
 * RFC 1071.  C-only (not part of the cffi API). */
#ifndef VS_INET_CSUM_H
#define VS_INET_CSUM_H 1

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#define VS_CSUM_BLOCK 64 /* bytes per add-with-carry chain */

/* sum + the 64-bit one's-complement sum of p[0..n), in memory order. */
static inline uint64_t vs_csum_partial(uint64_t sum, const void *buf, uint32_t n)
{
    const uint8_t *p = buf;
#if defined(__x86_64__)
    for (; n >= VS_CSUM_BLOCK; n -= VS_CSUM_BLOCK, p += VS_CSUM_BLOCK)
        __asm__("addq 0(%[p]), %[s]\n\t"
                "adcq 8(%[p]), %[s]\n\t"
                "adcq 16(%[p]), %[s]\n\t"
                "adcq 24(%[p]), %[s]\n\t"
                "adcq 32(%[p]), %[s]\n\t"
                "adcq 40(%[p]), %[s]\n\t"
                "adcq 48(%[p]), %[s]\n\t"
                "adcq 56(%[p]), %[s]\n\t"
                "adcq $0, %[s]"
                : [s] "+r"(sum)
                : [p] "r"(p), "m"(*(const uint8_t(*)[VS_CSUM_BLOCK])p)
                : "cc");
#endif
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        sum += w;
        sum += sum < w; /* end-around carry */
    }
    if (n) {
        /* The tail in the low bytes of a zero-padded word: each byte keeps
         * the parity of its offset, so the sum is unchanged. */
        uint64_t w = 0;
        memcpy(&w, p, n);
        sum += w;
        sum += sum < w;
    }
    return sum;
}

/* The 64-bit sum folded to 16 bits (not inverted), in memory order. */
static inline uint16_t vs_csum_fold16(uint64_t sum)
{
    sum = (sum & 0xffffffffu) + (sum >> 32);
    sum = (sum & 0xffffffffu) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

/* The sum of p[0..n) as a host-order 16-bit value, for callers whose sums
 * are host-order numbers (big-endian reading of the words). */
static inline uint16_t vs_csum_be(const void *p, uint32_t n)
{
    return ntohs(vs_csum_fold16(vs_csum_partial(0, p, n)));
}

#endif
