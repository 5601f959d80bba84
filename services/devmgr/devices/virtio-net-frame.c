/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Frames between virtqueue chains and the tap, without offloads (5.1.6).
 * The guest's buffers are read and written in place (readv/writev over
 * guest RAM); what the guest controls is checked first, and the header the
 * tap sees on tx is our own, so a guest that rewrites its header after the
 * check cannot ask the tap for checksum or GSO work it never negotiated. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "virtio-net.h"

/* Copies len bytes at offset off of segments [first, first + n) to buf;
 * returns how many there were. */
static uint32_t segs_read(const struct vq_chain *chain, unsigned first, unsigned n, uint64_t off, uint8_t *buf,
                          uint32_t len) {
        uint32_t done = 0;

        for (unsigned i = first; i < first + n && done < len; i++) {
                const struct vq_seg *s = &chain->segs[i];
                uint32_t take;

                if (off >= s->len) {
                        off -= s->len;
                        continue;
                }
                take = (uint32_t) (s->len - off) < len - done ? (uint32_t) (s->len - off) : len - done;
                memcpy(buf + done, (const uint8_t *) s->ptr + off, take);
                done += take;
                off = 0;
        }
        return done;
}

static void segs_write(const struct vq_chain *chain, unsigned first, unsigned n, const uint8_t *buf, uint32_t len) {
        uint32_t done = 0;

        for (unsigned i = first; i < first + n && done < len; i++) {
                const struct vq_seg *s = &chain->segs[i];
                uint32_t take = s->len < len - done ? s->len : len - done;

                memcpy(s->ptr, buf + done, take);
                done += take;
        }
}

/* Whether a tx header asks for work a driver without offloads cannot ask
 * for: any flag (DATA_VALID and RSC_INFO are rx-only), any GSO type. */
static bool tx_header_wants_offload(const uint8_t hdr[VIRTIO_NET_HDR_LEN]) {
        return hdr[0] != 0 || hdr[1] != VIRTIO_NET_HDR_GSO_NONE;
}

/* Whether the tap handed us a frame a driver without offloads cannot take:
 * its checksum still to be done, or a GSO super-frame. DATA_VALID (the
 * checksum was checked) is fine: the frame is complete, the flag dropped. */
static bool rx_header_needs_offload(const uint8_t hdr[VIRTIO_NET_HDR_LEN]) {
        return (hdr[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) || hdr[1] != VIRTIO_NET_HDR_GSO_NONE;
}

enum net_tx_verdict net_tx_check(const struct vq_chain *chain, uint32_t max_frame) {
        uint8_t hdr[VIRTIO_NET_HDR_LEN];
        uint64_t frame, off = 0;
        unsigned segs = 0;

        /* 5.1.6.2: tx buffers are all device-readable. */
        if (chain->n_segs != chain->n_readable)
                return NET_TX_WRITABLE;
        if (chain->readable_bytes < VIRTIO_NET_HDR_LEN)
                return NET_TX_NO_HEADER;
        frame = chain->readable_bytes - VIRTIO_NET_HDR_LEN;
        if (frame < NET_ETH_HLEN)
                return NET_TX_SHORT;
        if (frame > max_frame)
                return NET_TX_TOO_LONG;
        (void) segs_read(chain, 0, chain->n_readable, 0, hdr, sizeof(hdr));
        if (tx_header_wants_offload(hdr))
                return NET_TX_BAD_HEADER;
        /* Segments holding frame bytes, plus our header. */
        for (unsigned i = 0; i < chain->n_readable; i++) {
                if (off + chain->segs[i].len > VIRTIO_NET_HDR_LEN && chain->segs[i].len > 0)
                        segs++;
                off += chain->segs[i].len;
        }
        if (segs + 1 > NET_IOV_MAX)
                return NET_TX_TOO_MANY_SEGS;
        return NET_TX_OK;
}

const char *net_tx_verdict_string(enum net_tx_verdict v) {
        switch (v) {
        case NET_TX_OK: return "ok";
        case NET_TX_NO_HEADER: return "shorter than the virtio-net header";
        case NET_TX_SHORT: return "frame shorter than an Ethernet header";
        case NET_TX_TOO_LONG: return "frame longer than the MTU allows";
        case NET_TX_BAD_HEADER: return "header asks for checksum or GSO offload, not negotiated";
        case NET_TX_WRITABLE: return "device-writable buffers in a tx chain";
        case NET_TX_TOO_MANY_SEGS: return "too many segments";
        }
        return "unknown";
}

enum net_tx_verdict net_tx_send(int fd, const struct vq_chain *chain, uint32_t max_frame, struct iovec *iov,
                                struct net_stats *st, int *ret_errno) {
        static const uint8_t hdr[VIRTIO_NET_HDR_LEN] = {};
        enum net_tx_verdict v = net_tx_check(chain, max_frame);
        uint64_t skip = VIRTIO_NET_HDR_LEN, frame;
        unsigned n = 0;
        ssize_t w;

        *ret_errno = 0;
        if (v != NET_TX_OK) {
                st->tx_dropped++;
                return v;
        }
        frame = chain->readable_bytes - VIRTIO_NET_HDR_LEN;
        iov[n++] = (struct iovec) { .iov_base = (void *) hdr, .iov_len = sizeof(hdr) };
        for (unsigned i = 0; i < chain->n_readable; i++) {
                const struct vq_seg *s = &chain->segs[i];

                if (skip >= s->len) {
                        skip -= s->len;
                        continue;
                }
                iov[n++] = (struct iovec) { .iov_base = (uint8_t *) s->ptr + skip, .iov_len = s->len - skip };
                skip = 0;
        }
        do
                w = writev(fd, iov, (int) n);
        while (w < 0 && errno == EINTR);
        if (w < 0) {
                /* EAGAIN (the tap's queue is full), EIO (link down), ...:
                 * Ethernet may lose frames; count it and go on. */
                *ret_errno = errno;
                st->tx_errors++;
                return NET_TX_OK;
        }
        st->tx_packets++;
        st->tx_bytes += frame;
        return NET_TX_OK;
}

bool net_rx_chain_usable(const struct vq_chain *chain) {
        return chain->writable_bytes >= VIRTIO_NET_HDR_LEN + NET_ETH_HLEN;
}

int net_rx_receive(int fd, const struct vq_chain *chain, uint32_t max_frame, struct iovec *iov,
                   struct net_stats *st, uint32_t *ret_written) {
        uint8_t hdr[VIRTIO_NET_HDR_LEN], spill;
        unsigned n = 0, first = chain->n_readable, n_writable = chain->n_segs - chain->n_readable;
        uint64_t capacity = 0;
        ssize_t got;

        /* Readable buffers in an rx chain are not ours to write: skipped. */
        if (n_writable > NET_IOV_MAX - 1)
                n_writable = NET_IOV_MAX - 1;
        for (unsigned i = first; i < first + n_writable; i++) {
                iov[n++] = (struct iovec) { .iov_base = chain->segs[i].ptr, .iov_len = chain->segs[i].len };
                capacity += chain->segs[i].len;
        }
        /* A frame that reaches the spill byte did not fit (a tap returns
         * the whole frame's length anyway, a socket the truncated one). */
        iov[n++] = (struct iovec) { .iov_base = &spill, .iov_len = 1 };

        do
                got = readv(fd, iov, (int) n);
        while (got < 0 && errno == EINTR);
        if (got < 0)
                return errno == EAGAIN ? 0 : -errno;
        /* 5.1.4.1: with MTU negotiated, nothing longer than it. */
        if ((uint64_t) got > capacity || got < VIRTIO_NET_HDR_LEN + NET_ETH_HLEN ||
            (max_frame && (uint64_t) got - VIRTIO_NET_HDR_LEN > max_frame)) {
                st->rx_dropped++;
                return -EMSGSIZE;
        }
        (void) segs_read(chain, first, n_writable, 0, hdr, sizeof(hdr));
        if (rx_header_needs_offload(hdr)) {
                st->rx_dropped++;
                return -EMSGSIZE;
        }
        /* 5.1.6.4: no GUEST_CSUM, so flags 0; no MRG_RXBUF, so num_buffers
         * 1 (the tap does not write those two bytes). */
        memset(hdr, 0, sizeof(hdr));
        hdr[10] = 1;
        segs_write(chain, first, n_writable, hdr, sizeof(hdr));
        st->rx_packets++;
        st->rx_bytes += (uint64_t) got - VIRTIO_NET_HDR_LEN;
        *ret_written = (uint32_t) got;
        return 1;
}
