/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: bytes -> a guest RAM image and ring parameters, then
 * pop (touching the first and last byte of every segment, so ASan sees a
 * segment reaching outside RAM) and push until the ring is empty or broken. Header:
 *   byte 0: log2 of the queue size (mod 9, so up to 256)
 *   byte 1: bit 0 INDIRECT_DESC, bit 1 EVENT_IDX, bit 2 keep the ring
 *           addresses unaligned as given
 *   bytes 2-7: descriptor table, available ring, used ring gpa (le16 each)
 * The rest is copied to guest RAM from address 0 (RAM_SIZE bytes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtqueue.h"

#define RAM_SIZE (64U * 1024)
#define HDR 8

static volatile uint64_t sink;

static uint16_t le16_at(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct vq_chain chain;
        struct virtqueue vq;
        uint64_t desc, avail, used, features = 0;
        uint8_t *ram;
        int r;

        if (size < HDR)
                return 0;

        desc = le16_at(data + 2);
        avail = le16_at(data + 4);
        used = le16_at(data + 6);
        if (!(data[1] & 4)) {
                desc &= ~15ULL;
                avail &= ~1ULL;
                used &= ~3ULL;
        }
        if (data[1] & 1)
                features |= 1ULL << VIRTIO_F_INDIRECT_DESC;
        if (data[1] & 2)
                features |= 1ULL << VIRTIO_F_EVENT_IDX;

        /* Exactly RAM_SIZE bytes so ASan flags the first byte past RAM. */
        ram = calloc(1, RAM_SIZE);
        if (!ram)
                return 0;
        memcpy(ram, data + HDR, size - HDR < RAM_SIZE ? size - HDR : RAM_SIZE);

        if (vq_init(&vq, ram, RAM_SIZE, 1U << (data[0] % 9), desc, avail, used, features) == 0) {
                /* Writable segments may overlap the ring and keep making
                 * buffers available, as a guest could; bound the harness. */
                for (unsigned n = 0; n < 4 * vq.size + 4; n++) {
                        uint64_t sum = 0;

                        r = vq_pop(&vq, &chain);
                        if (r <= 0)
                                break;
                        for (unsigned i = 0; i < chain.n_segs; i++) {
                                volatile uint8_t *p = chain.segs[i].ptr;
                                uint32_t last = chain.segs[i].len - 1;

                                if (chain.segs[i].len == 0)
                                        abort(); /* skipped by vq_pop */
                                if (chain.segs[i].writable) {
                                        p[0] = 0xa5;
                                        p[last] = 0x5a;
                                } else
                                        sum += p[0] + p[last];
                        }
                        sink = sum;
                        if (vq_push(&vq, chain.head, (uint32_t) chain.writable_bytes) < 0)
                                abort();
                        sink += vq_needs_notify(&vq);
                }
                if (!vq_is_broken(&vq) && vq_error(&vq)[0])
                        abort();
        }
        free(ram);
        return 0;
}
