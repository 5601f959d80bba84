/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The transport's own state, shared by virtio-pci.c (common cfg, status,
 * BAR0, interrupts, the device_kind glue), virtio-pci-config.c (PCI config
 * space, capabilities, MSI-X) and virtio-pci-worker.c (the data path).
 * Models never see it (virtio-pci.h). */

#include <pthread.h>
#include <stdatomic.h>

#include "virtio-pci.h"

#define PCI_CONFIG_SIZE 256

/* Capabilities, at fixed places in config space (virtio-pci-config.c). */
#define VIRTIO_CAP_COMMON   0x40
#define VIRTIO_CAP_NOTIFY   0x50 /* 20 bytes */
#define VIRTIO_CAP_ISR      0x64
#define VIRTIO_CAP_DEVICE   0x74
#define VIRTIO_CAP_PCI_CFG  0x84 /* 20 bytes: the window's data at +16 */
#define VIRTIO_CAP_MSIX     0x98 /* 12 bytes */

#define PCI_COMMAND_IO            0x1
#define PCI_COMMAND_MEMORY        0x2
#define PCI_COMMAND_MASTER        0x4
#define PCI_COMMAND_INTX_DISABLE  0x400
#define PCI_MSIX_ENABLE           0x8000 /* message control */
#define PCI_MSIX_MASKALL          0x4000
#define PCI_MSIX_ENTRY_MASKED     0x1

struct virtio_pci_queue {
        /* Registers (common cfg), as the driver wrote them. */
        uint16_t size;
        uint16_t msix_vector;
        bool enabled;
        uint64_t desc, driver, device;

        /* From DRIVER_OK on: the ring, used by the worker only. */
        struct virtqueue vq;
        bool ready;
        int ioevent_fd;
};

struct virtio_pci {
        const struct virtio_model *ops;
        void *model;
        struct virtio_pci_info info;
        unsigned n_vectors; /* num_queues + 1 */
        uint64_t offered;   /* the model's bits and the transport's */

        /* Everything below but the worker's own fields is guarded by lock. */
        pthread_mutex_t lock;

        /* PCI config space: bytes and which bits the driver may write. */
        uint8_t config[PCI_CONFIG_SIZE];
        uint8_t wmask[PCI_CONFIG_SIZE];
        bool bar_mapped;   /* what the launcher was last told */
        uint64_t bar_base;

        /* Common cfg. */
        uint32_t device_feature_select, driver_feature_select;
        uint64_t driver_features;
        uint16_t msix_config;
        uint8_t status;
        uint8_t config_generation;
        uint16_t queue_select;
        struct virtio_pci_queue queues[VIRTIO_PCI_MAX_QUEUES];
        uint8_t isr;
        atomic_bool needs_reset;

        /* MSI-X table (16 bytes per vector, little endian as the guest
         * sees it) and pending bits. */
        uint8_t msix_table[VIRTIO_PCI_MAX_VECTORS * 16];
        uint64_t msix_pba;
        int irq_fds[VIRTIO_PCI_MAX_VECTORS];
        int intx_fd;

        /* Guest RAM. */
        void *mem;
        uint64_t mem_size;

        /* The worker (virtio-pci-worker.c). Started and stopped by the serve
         * thread only, with lock not held. */
        pthread_t worker;
        bool worker_running;
        bool asleep;
        int wake_fd;
        atomic_bool worker_stop;
        atomic_uint kicks; /* trapped notify writes, one bit per queue */
};

/* virtio-pci-config.c */
void virtio_pci_config_init(struct virtio_pci *vp);
uint32_t virtio_pci_config_read(struct virtio_pci *vp, uint32_t reg);
void virtio_pci_config_write(struct virtio_pci *vp, uint32_t reg, uint32_t offset, uint32_t len,
                             const uint8_t *data, struct proto_config_result *ret);
bool virtio_pci_msix_enabled(const struct virtio_pci *vp);
bool virtio_pci_msix_function_masked(const struct virtio_pci *vp);
bool virtio_pci_msix_vector_masked(const struct virtio_pci *vp, unsigned v);
/* Delivers pending vectors that are now unmasked. Lock held. */
void virtio_pci_msix_deliver_pending(struct virtio_pci *vp);
/* The BAR's guest address when it decodes (memory enable and an address). */
bool virtio_pci_bar_decodes(const struct virtio_pci *vp, uint64_t *ret_base);

/* virtio-pci.c: BAR0 accesses (offset + len <= VIRTIO_PCI_BAR_SIZE, len
 * 1..8), lock held. */
void virtio_pci_bar_read(struct virtio_pci *vp, uint64_t offset, uint32_t len, uint8_t *data);
void virtio_pci_bar_write(struct virtio_pci *vp, uint64_t offset, uint32_t len, const uint8_t *data);
/* Raises vector (a queue's or the config one): MSI-X if enabled (pending
 * while masked), else an INTx edge. Lock held. */
void virtio_pci_raise(struct virtio_pci *vp, uint16_t vector);

/* virtio-pci-worker.c; lock not held. */
int virtio_pci_worker_start(struct virtio_pci *vp);
void virtio_pci_worker_stop(struct virtio_pci *vp);
/* A trapped notify write for queue q. Lock held. */
void virtio_pci_worker_kick(struct virtio_pci *vp, unsigned q);

static inline uint64_t le_get(const uint8_t *p, unsigned len) {
        uint64_t v = 0;
        for (unsigned i = 0; i < len; i++)
                v |= (uint64_t) p[i] << (8 * i);
        return v;
}

static inline void le_put(uint8_t *p, unsigned len, uint64_t v) {
        for (unsigned i = 0; i < len; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
