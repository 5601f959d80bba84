/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A small user-space virtio-pci driver for integration tests: it plays KVM
 * and the guest against a real device process. Config space through
 * ReadConfig/WriteConfig (as the launcher's conf1 bridge would), BAR0
 * accesses through Read/Write (trapped MMIO), guest RAM a memfd it maps
 * too, ioeventfds it signals itself (what KVM does on a guest notify
 * write), irqfds it waits on (what KVM would inject). Everything fails the
 * test (g_assert) on a protocol error, so tests read as the driver steps.
 * For virtio-rng now, and virtio-blk/net/console tests later. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "proto.h"

#define VDRV_MAX_QUEUES 16
#define VDRV_MAX_VECTORS 17
/* Where the driver puts BAR0 and the MSI address it programs. */
#define VDRV_BAR_ADDRESS 0xd0000000ULL
#define VDRV_MSI_ADDRESS 0xfee00000ULL

struct vdrv_queue {
        unsigned index;
        uint16_t size;
        uint64_t desc, avail, used; /* guest addresses */
        uint16_t avail_idx, last_used;
        uint16_t next_desc;         /* descriptors are handed out round robin */
};

struct vdrv {
        int ep;          /* the device's endpoint (activated) */
        int memfd;       /* guest RAM */
        uint8_t *ram;
        uint64_t ram_size;
        uint64_t alloc_next;

        uint64_t bar; /* BAR0's address, 0 while not programmed */
        uint64_t bar_size;

        /* From the capabilities walk (offsets in BAR0 / config space). */
        uint32_t common, isr, device, notify, notify_mult, device_len, notify_len;
        uint32_t msix_cap, msix_table, msix_pba, pci_cfg_cap;
        unsigned n_vectors;
        uint16_t num_queues;
        uint16_t notify_off[VDRV_MAX_QUEUES];

        int ioevent_fds[VDRV_MAX_QUEUES];
        int irq_fds[VDRV_MAX_VECTORS];
        int intx_fd;
        struct vdrv_queue queues[VDRV_MAX_QUEUES];
};

/* CreateDevice on devmgr through h's bus; returns the endpoint (not yet
 * activated), *path and *pid. */
int vdrv_create_device(struct harness *h, const char *kind, const char *config, char **path, pid_t *pid);

/* Activates ep, checks the PCI identity (vendor 0x1af4, device 0x1040 +
 * virtio_id, revision 1, subsystem ids), sizes and programs BAR0 at
 * VDRV_BAR_ADDRESS, enables memory decode and bus mastering (checking the
 * WriteConfig results), walks the capabilities, creates ram_size bytes of
 * guest RAM and attaches it. */
void vdrv_init(struct vdrv *d, int ep, uint16_t virtio_id, uint64_t ram_size);
/* The same with guest RAM the caller made and mapped (e.g. memmgr's, its
 * mapping registered with a uffd first): d owns memfd and the mapping. */
void vdrv_init_with_ram(struct vdrv *d, int ep, uint16_t virtio_id, int memfd, void *ram, uint64_t ram_size);
void vdrv_done(struct vdrv *d);

uint32_t vdrv_config_read(struct vdrv *d, uint32_t reg);
/* A WriteConfig of len bytes at byte offset at (within one register);
 * res may be NULL. */
void vdrv_config_write(struct vdrv *d, uint32_t at, uint32_t len, uint32_t value, struct proto_config_result *res);

/* BAR0 accesses at offset (trapped MMIO: Read and Write). */
uint64_t vdrv_bar_read(struct vdrv *d, uint64_t offset, uint32_t len);
void vdrv_bar_write(struct vdrv *d, uint64_t offset, uint32_t len, uint64_t value);
/* Common cfg and device cfg by their offsets in the structure. */
uint64_t vdrv_common_read(struct vdrv *d, uint32_t offset, uint32_t len);
void vdrv_common_write(struct vdrv *d, uint32_t offset, uint32_t len, uint64_t value);

/* GetIoevents: one eventfd per queue notify address, attached as
 * PROTO_FD_IOEVENT. Checks the addresses (BAR + notify + q * mult). */
void vdrv_setup_ioevents(struct vdrv *d);
/* Programs every MSI-X vector (address VDRV_MSI_ADDRESS | v << 12, data
 * 0x40 + v, unmasked), enables MSI-X, checks GetMsiRoutes against that
 * and attaches an eventfd per vector as PROTO_FD_IRQ. */
void vdrv_setup_msix(struct vdrv *d);
/* An eventfd for INTx (PROTO_FD_IRQ, PROTO_IRQ_INTX). */
void vdrv_setup_intx(struct vdrv *d);

/* Guest RAM: a bump allocator (align a power of 2) and the host pointer. */
uint64_t vdrv_alloc(struct vdrv *d, uint64_t size, uint64_t align);
void *vdrv_ptr(struct vdrv *d, uint64_t gpa);

/* 3.1.1: reset, ACKNOWLEDGE, DRIVER, read the device features, write
 * features, FEATURES_OK and re-read it. Returns the status read back. */
uint8_t vdrv_negotiate(struct vdrv *d, uint64_t features);
uint64_t vdrv_device_features(struct vdrv *d);
/* Resets (status 0) and waits until the status reads 0. */
void vdrv_reset(struct vdrv *d);
/* Sets up queue q (size, rings in guest RAM, MSI-X vector) and enables
 * it. */
struct vdrv_queue *vdrv_queue_setup(struct vdrv *d, unsigned q, uint16_t size, uint16_t vector);
void vdrv_driver_ok(struct vdrv *d);
uint8_t vdrv_status(struct vdrv *d);

/* Adds a chain of n buffers (guest address, length, device-writable) to
 * the available ring; returns the head. */
struct vdrv_buf {
        uint64_t addr;
        uint32_t len;
        bool writable;
};
uint16_t vdrv_queue_add(struct vdrv *d, struct vdrv_queue *q, const struct vdrv_buf *bufs, unsigned n);
/* Kicks queue q as KVM would (its ioeventfd) or through a trapped write
 * to the notify address. */
void vdrv_kick(struct vdrv *d, unsigned q);
void vdrv_kick_trapped(struct vdrv *d, unsigned q);
/* Waits for the eventfd of vector v (or INTx) to fire; consumes it. */
bool vdrv_wait_irq(struct vdrv *d, unsigned v, int timeout_ms);
bool vdrv_wait_intx(struct vdrv *d, int timeout_ms);
/* The next used element, if any. */
bool vdrv_queue_used(struct vdrv *d, struct vdrv_queue *q, uint32_t *id, uint32_t *len);
