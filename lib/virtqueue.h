/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The device side of a virtio 1.x split virtqueue over guest RAM mapped in
 * this process. Everything the guest wrote (indices, descriptors, lengths)
 * is read once and validated against the queue size and guest RAM before a
 * device sees it: a malformed ring marks the queue broken (the device then
 * sets DEVICE_NEEDS_RESET) and is never followed. Not thread-safe: one
 * queue, one thread. Layout and rules: docs/virtio.md. */

#include <stdbool.h>
#include <stdint.h>

#define VQ_MAX_SIZE            32768U
/* Segments of one chain a device is handed; as QEMU's VIRTQUEUE_MAX_SIZE,
 * also the largest indirect table accepted. */
#define VQ_CHAIN_MAX_SEGS      1024U
/* Sum of a chain's lengths: the used ring's len is 32 bits. */
#define VQ_CHAIN_MAX_BYTES     UINT32_MAX

#define VIRTQ_DESC_F_NEXT      1
#define VIRTQ_DESC_F_WRITE     2
#define VIRTQ_DESC_F_INDIRECT  4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29

struct vq_seg {
        void *ptr;             /* inside guest RAM, len bytes */
        uint32_t len;
        bool writable;         /* device-writable (VIRTQ_DESC_F_WRITE) */
};

struct vq_chain {
        uint16_t head;         /* give back to vq_push() */
        unsigned n_segs;       /* readable ones first, then writable ones */
        unsigned n_readable;
        uint64_t readable_bytes, writable_bytes;
        struct vq_seg segs[VQ_CHAIN_MAX_SEGS];
};

struct virtqueue {
        uint8_t *mem;
        uint64_t mem_size;
        uint32_t size;         /* a power of 2, 1..32768 */
        bool indirect, event_idx;
        /* Host pointers, validated by vq_init(). */
        uint8_t *desc, *avail, *used;

        uint16_t last_avail;   /* next ring entry to take */
        uint16_t avail_shadow; /* the guest's idx as last read */
        uint16_t used_idx;     /* our idx, mirrored into the used ring */
        uint16_t signalled_used;

        bool broken;
        char error[160];
};

/* Validates the ring (size a power of 2 up to 32768; descriptor table
 * 16-aligned, available ring 2-aligned, used ring 4-aligned, each wholly in
 * guest RAM) and sets it up. features: the negotiated feature bits;
 * VIRTIO_F_INDIRECT_DESC and VIRTIO_F_EVENT_IDX are used. -EINVAL with
 * vq_error() saying why. */
int vq_init(struct virtqueue *vq, void *mem, uint64_t mem_size, uint32_t size,
            uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa, uint64_t features);

/* The next available chain into *chain: 1 if one was taken, 0 if the ring
 * is empty (with EVENT_IDX, the device has then asked to be notified of the
 * next one), -EINVAL if the ring is malformed: the queue is broken from
 * then on and vq_error() says why. */
int vq_pop(struct virtqueue *vq, struct vq_chain *chain);

/* Returns the chain headed by head with written bytes written to its
 * writable segments; the entry is visible to the guest before the index. */
int vq_push(struct virtqueue *vq, uint16_t head, uint32_t written);

/* Whether the guest wants an interrupt for what was pushed since the last
 * call (used_event with EVENT_IDX, else VIRTQ_AVAIL_F_NO_INTERRUPT). */
bool vq_needs_notify(struct virtqueue *vq);

static inline bool vq_is_broken(const struct virtqueue *vq) {
        return vq->broken;
}

/* Why vq_init() or vq_pop() failed; "" if it did not. */
static inline const char *vq_error(const struct virtqueue *vq) {
        return vq->error;
}
