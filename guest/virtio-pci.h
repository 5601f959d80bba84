/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The virtio 1.2 PCI transport, modern interface only (4.1), driven the
 * way Linux's virtio_pci_modern does it, with split virtqueues (2.7) in
 * guest memory. Either synchronous (vq_submit_wait: one chain, the caller
 * waits for it in `hlt`) or asynchronous (vq_add + vq_kick, vq_get_used
 * polled from the idle loop: network receive buffers stay posted), which
 * drivers use through a vq_pool of fixed buffers. */

#include <stdbool.h>
#include <stdint.h>

#include "pci.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_ENTROPY 4
#define VIRTIO_ID_VSOCK 19

#define VIRTIO_F_VERSION_1 32

#define VIRTIO_MAX_DEVS 8
#define VIRTIO_MAX_QUEUES 3
#define VQ_MAX_SIZE 128 /* one 4 KiB page holds the three areas */

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2

struct virtq_desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
};

struct virtq_used_elem {
        uint32_t id;
        uint32_t len;
};

enum virtio_irq_mode {
        VIRTIO_IRQ_MSIX,        /* vector 0 config, vector 1+i queue i */
        VIRTIO_IRQ_MSIX_SHARED, /* vector 0 config, vector 1 all queues */
        VIRTIO_IRQ_INTX,        /* the PCI pin through the IOAPIC, ISR read-to-clear */
        VIRTIO_IRQ_POLL,        /* no interrupt: the used ring is polled */
};

struct virtio_dev;

struct virtqueue {
        struct virtio_dev *dev;
        uint16_t index;
        uint16_t size;
        struct virtq_desc *desc;
        volatile uint16_t *avail; /* flags, idx, ring[size] */
        volatile uint16_t *used;  /* flags, idx, then virtq_used_elem[size] */
        uint16_t free_head;
        uint16_t num_free;
        uint16_t avail_idx;
        uint16_t last_used;
        uint64_t notify_addr;
        uint8_t chain_len[VQ_MAX_SIZE]; /* per head in flight; 0 = not in flight */
        uint16_t msix_vector;    /* as the device read it back; 0xffff none */
        volatile uint32_t irqs;  /* interrupts that concerned this queue */
        const char *broken;      /* why the queue is no longer used */
};

struct virtio_dev {
        struct pci_dev *pci;
        const char *name; /* "virtio-blk", for messages */
        uint16_t id;      /* virtio device id */
        uint64_t common, notify, isr, device_cfg;
        uint32_t notify_mult, notify_len, device_cfg_len;
        uint64_t device_features, features;
        enum virtio_irq_mode irq_mode;
        unsigned vector_base; /* first IDT vector for MSI-X */
        uint8_t msix_cap;
        uint16_t msix_table_size;
        uint64_t msix_table;
        uint32_t gsi; /* INTx */
        volatile uint32_t config_irqs;
        struct virtqueue vqs[VIRTIO_MAX_QUEUES];
        unsigned n_vqs;
};

/* One buffer of a chain; `write` means device-writable. */
struct vq_buf {
        void *addr;
        uint32_t len;
        bool write;
};

/* What a device driver offers: the id it handles and its probe. */
struct virtio_driver {
        uint16_t id;
        const char *name;
        void (*probe)(struct pci_dev *pci);
};

/* Finds the virtio functions among pci_devs, names them and hands each to
 * its driver. */
void virtio_probe_all(void);

/* Claims pci as a modern virtio device and brings it up to DRIVER_OK
 * (3.1.1) with n_vqs queues and the features in `wanted` that the device
 * offers (VERSION_1 is required). Refuses loudly (a `NAME: ...` line) and
 * returns false if anything is off. */
bool virtio_pci_setup(struct virtio_dev *v, struct pci_dev *pci, const char *name, uint64_t wanted, unsigned n_vqs);

static inline bool virtio_has(const struct virtio_dev *v, unsigned bit) {
        return v->features >> bit & 1;
}

/* Reads the device config at off through config_generation (read before
 * and after, retried until equal). len is 1, 2, 4 or 8. False if out of
 * the device config structure. */
bool virtio_cfg_read(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len);

/* Puts one chain (the readable buffers first), notifies the device and
 * waits for it to come back: up to timeout_ns, then for its interrupt if
 * the device has one. Returns the used length, or -1 after printing why. */
int64_t vq_submit_wait(struct virtqueue *q, const struct vq_buf *bufs, unsigned n, uint64_t timeout_ns);

/* Puts one chain (the readable buffers first) on the available ring
 * without notifying or waiting. Returns its head, the id the used ring
 * will name, or -1 (no room, or the queue is broken; nothing printed). */
int vq_add(struct virtqueue *q, const struct vq_buf *bufs, unsigned n);
/* Notifies the device of what vq_add() published. */
void vq_kick(struct virtqueue *q);
/* Takes the next used element, if any: its head and used length; the
 * chain's descriptors are free again. An id that is not a head in flight
 * marks the queue broken (printed) and returns false. */
bool vq_get_used(struct virtqueue *q, uint16_t *ret_id, uint32_t *ret_len);

/* n same-sized buffers that one queue carries one at a time, and which
 * head carries which: the bookkeeping every asynchronous driver needs
 * (receive buffers posted again and again, transmit buffers reused once
 * the device gave them back). The used ring names heads, so the head ->
 * buffer map is what finds a returned buffer; busy marks the buffers in
 * flight. */
struct vq_pool {
        struct virtqueue *q;
        uint8_t *bufs; /* n buffers of size bytes, back to back */
        uint32_t size;
        uint16_t n;   /* at most VQ_MAX_SIZE: never more in flight than heads */
        bool write;   /* device-writable (receive) or not (transmit) */
        int16_t slot_of[VQ_MAX_SIZE]; /* head -> buffer; -1 none */
        bool busy[VQ_MAX_SIZE];
};

/* Sets up p over bufs (n buffers of size bytes) for q; nothing posted. */
void vq_pool_init(struct vq_pool *p, struct virtqueue *q, void *bufs, uint16_t n, uint32_t size, bool write);

static inline uint8_t *vq_pool_buf(const struct vq_pool *p, unsigned slot) {
        return p->bufs + (uint64_t) slot * p->size;
}

/* Puts the first len bytes of buffer slot on the available ring, without
 * notifying. False if the ring refused it (full or broken); the buffer
 * then stays free. */
bool vq_pool_put(struct vq_pool *p, unsigned slot, uint32_t len);
/* Puts every buffer, whole (a receive queue's first fill); the caller
 * kicks. */
void vq_pool_put_all(struct vq_pool *p);
/* Takes the next used element: its buffer (-1 if the head carried none
 * of ours) and the used length; that buffer is free again. */
bool vq_pool_get(struct vq_pool *p, int *ret_slot, uint32_t *ret_len);
/* A receive queue's round: hands up to budget used buffers (VQ_POOL_ALL:
 * until none is left) to fn, with the length the device wrote, unchecked;
 * puts each back whole after, and notifies the device if any was taken.
 * Returns how many were. */
#define VQ_POOL_ALL (~0u)
unsigned vq_pool_drain(struct vq_pool *p, unsigned budget, void (*fn)(const uint8_t *buf, uint32_t len));
/* Takes back every used buffer (a transmit queue's completions). */
void vq_pool_reap(struct vq_pool *p);
/* A free buffer after reaping, or -1 if all are in flight. It is not
 * taken until vq_pool_put() puts it. */
int vq_pool_alloc(struct vq_pool *p);

const char *virtio_irq_mode_name(enum virtio_irq_mode m);
