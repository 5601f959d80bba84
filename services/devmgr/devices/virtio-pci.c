/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio over PCI, modern (virtio 1.2 4.1): BAR0 (common cfg, ISR, device
 * cfg, notify, MSI-X table and PBA), feature negotiation, the status
 * sequence and reset, interrupts, and the device_kind a model becomes.
 * Config space is virtio-pci-config.c, the data path virtio-pci-worker.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device-memory.h"
#include "log.h"
#include "macro.h"
#include "virtio-pci-internal.h"

/* Common cfg fields (4.1.4.3): offset and size. */
enum {
        CC_DFSELECT = 0x00,
        CC_DF = 0x04,
        CC_GFSELECT = 0x08,
        CC_GF = 0x0c,
        CC_MSIX = 0x10,
        CC_NUMQ = 0x12,
        CC_STATUS = 0x14,
        CC_CFGGEN = 0x15,
        CC_Q_SELECT = 0x16,
        CC_Q_SIZE = 0x18,
        CC_Q_MSIX = 0x1a,
        CC_Q_ENABLE = 0x1c,
        CC_Q_NOFF = 0x1e,
        CC_Q_DESC = 0x20,
        CC_Q_DRIVER = 0x28,
        CC_Q_DEVICE = 0x30,
};

static const struct {
        uint8_t offset, size;
} common_fields[] = {
        { CC_DFSELECT, 4 }, { CC_DF, 4 },       { CC_GFSELECT, 4 }, { CC_GF, 4 },       { CC_MSIX, 2 },
        { CC_NUMQ, 2 },     { CC_STATUS, 1 },   { CC_CFGGEN, 1 },   { CC_Q_SELECT, 2 }, { CC_Q_SIZE, 2 },
        { CC_Q_MSIX, 2 },   { CC_Q_ENABLE, 2 }, { CC_Q_NOFF, 2 },   { CC_Q_DESC, 8 },   { CC_Q_DRIVER, 8 },
        { CC_Q_DEVICE, 8 },
};

void *virtio_pci_model(struct virtio_pci *vp) {
        return vp->model;
}

uint64_t virtio_pci_features(struct virtio_pci *vp) {
        return vp->driver_features;
}

void *virtio_pci_guest_ram(struct virtio_pci *vp, uint64_t *ret_size) {
        if (ret_size)
                *ret_size = vp->mem_size;
        return vp->mem;
}

void virtio_pci_lock(struct virtio_pci *vp) {
        pthread_mutex_lock(&vp->lock);
}

void virtio_pci_unlock(struct virtio_pci *vp) {
        pthread_mutex_unlock(&vp->lock);
}

static struct virtio_pci_queue *selected_queue(struct virtio_pci *vp) {
        return vp->queue_select < vp->info.num_queues ? &vp->queues[vp->queue_select] : NULL;
}

/* An edge: KVM's irqfd without resample injects one interrupt per write. */
static void signal_fd(int fd) {
        uint64_t one = 1;

        if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
                log_warning_errno(errno, "Failed to signal an interrupt: %m");
}

void virtio_pci_raise(struct virtio_pci *vp, uint16_t vector) {
        if (!virtio_pci_msix_enabled(vp)) {
                bool disabled = vp->config[0x05] & (PCI_COMMAND_INTX_DISABLE >> 8);

                if (!disabled && vp->isr)
                        signal_fd(vp->intx_fd);
                return;
        }
        if (vector >= vp->n_vectors)
                return; /* NO_VECTOR: the driver asked for no interrupt */
        if (virtio_pci_msix_function_masked(vp) || virtio_pci_msix_vector_masked(vp, vector)) {
                vp->msix_pba |= UINT64_C(1) << vector;
                return;
        }
        signal_fd(vp->irq_fds[vector]);
}

static void config_interrupt_locked(struct virtio_pci *vp) {
        vp->isr |= 0x2;
        virtio_pci_raise(vp, vp->msix_config);
}

void virtio_pci_config_changed(struct virtio_pci *vp) {
        pthread_mutex_lock(&vp->lock);
        vp->config_generation++;
        config_interrupt_locked(vp);
        pthread_mutex_unlock(&vp->lock);
}

void virtio_pci_needs_reset(struct virtio_pci *vp, const char *fmt, ...) {
        char reason[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);

        pthread_mutex_lock(&vp->lock);
        if (!atomic_exchange(&vp->needs_reset, true)) {
                log_warning("%s: device needs a reset: %s", vp->ops->name, reason);
                config_interrupt_locked(vp);
        }
        pthread_mutex_unlock(&vp->lock);
}

/* The vector-to-queue assignments and everything else the driver set up;
 * not the MSI-X table, which belongs to PCI (4.1.4.3.1: a reset leaves
 * config space alone). Worker stopped. */
static void reset_locked(struct virtio_pci *vp) {
        vp->device_feature_select = vp->driver_feature_select = 0;
        vp->driver_features = 0;
        vp->msix_config = VIRTIO_MSI_NO_VECTOR;
        vp->status = 0;
        vp->queue_select = 0;
        vp->isr = 0;
        atomic_store(&vp->needs_reset, false);
        for (unsigned q = 0; q < VIRTIO_PCI_MAX_QUEUES; q++) {
                struct virtio_pci_queue *vq = &vp->queues[q];

                vq->size = vp->info.queue_max_size;
                vq->msix_vector = VIRTIO_MSI_NO_VECTOR;
                vq->enabled = vq->ready = false;
                vq->desc = vq->driver = vq->device = 0;
                memset(&vq->vq, 0, sizeof(vq->vq));
        }
        atomic_store(&vp->kicks, 0);
}

static void device_reset(struct virtio_pci *vp) {
        virtio_pci_worker_stop(vp);
        pthread_mutex_lock(&vp->lock);
        reset_locked(vp);
        pthread_mutex_unlock(&vp->lock);
        if (vp->ops->reset)
                vp->ops->reset(vp);
}

/* FEATURES_OK (3.1.1 step 5-6): kept only for a subset of what we offered
 * with VERSION_1 that the model takes. */
static bool features_acceptable(struct virtio_pci *vp) {
        uint64_t f = vp->driver_features;
        int r;

        if (f & ~vp->offered) {
                log_warning("%s: driver accepted features 0x%llx that were not offered; refusing FEATURES_OK.",
                            vp->ops->name, (unsigned long long) (f & ~vp->offered));
                return false;
        }
        if (!(f & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
                log_warning("%s: driver did not accept VERSION_1 (a legacy driver); refusing FEATURES_OK.",
                            vp->ops->name);
                return false;
        }
        if (vp->ops->set_features) {
                r = vp->ops->set_features(vp, f);
                if (r < 0) {
                        log_warning_errno(r, "%s: the device refuses features 0x%llx: %m", vp->ops->name,
                                          (unsigned long long) f);
                        return false;
                }
        }
        return true;
}

/* DRIVER_OK: the rings become live. Lock held. Returns whether the worker
 * should start. */
static bool setup_queues_locked(struct virtio_pci *vp) {
        for (unsigned q = 0; q < vp->info.num_queues; q++) {
                struct virtio_pci_queue *vq = &vp->queues[q];
                int r;

                if (!vq->enabled)
                        continue;
                if (!vp->mem) {
                        pthread_mutex_unlock(&vp->lock);
                        virtio_pci_needs_reset(vp, "queue %u enabled but no guest memory attached", q);
                        pthread_mutex_lock(&vp->lock);
                        return false;
                }
                r = vq_init(&vq->vq, vp->mem, vp->mem_size, vq->size, vq->desc, vq->driver, vq->device,
                            vp->driver_features);
                if (r < 0) {
                        char reason[200];

                        snprintf(reason, sizeof(reason), "%s", vq_error(&vq->vq));
                        pthread_mutex_unlock(&vp->lock);
                        virtio_pci_needs_reset(vp, "queue %u: %s", q, reason);
                        pthread_mutex_lock(&vp->lock);
                        return false;
                }
                vq->ready = true;
        }
        return true;
}

static void status_write(struct virtio_pci *vp, uint8_t value) {
        uint8_t old = vp->status, new;
        bool start = false;

        if (value == 0) {
                pthread_mutex_unlock(&vp->lock);
                device_reset(vp);
                pthread_mutex_lock(&vp->lock);
                return;
        }
        /* Bits are only ever added; a reset is the only way back. */
        new = (uint8_t) ((old | value) & ~VIRTIO_STATUS_NEEDS_RESET);
        if ((new & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
            !features_acceptable(vp))
                new &= (uint8_t) ~VIRTIO_STATUS_FEATURES_OK;
        if ((new & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
                if (!(new & VIRTIO_STATUS_FEATURES_OK)) {
                        log_warning("%s: DRIVER_OK without FEATURES_OK ignored.", vp->ops->name);
                        new &= (uint8_t) ~VIRTIO_STATUS_DRIVER_OK;
                } else
                        start = true;
        }
        vp->status = new;
        if (!start)
                return;

        if (!setup_queues_locked(vp))
                return;
        if (vp->ops->driver_ok) {
                int r;

                pthread_mutex_unlock(&vp->lock);
                r = vp->ops->driver_ok(vp);
                if (r < 0)
                        virtio_pci_needs_reset(vp, "device failed to start: %s", strerror(-r));
                pthread_mutex_lock(&vp->lock);
                if (r < 0)
                        return;
        }
        if (!vp->asleep) {
                int r;

                pthread_mutex_unlock(&vp->lock);
                r = virtio_pci_worker_start(vp);
                if (r < 0)
                        virtio_pci_needs_reset(vp, "cannot start the worker thread: %s", strerror(-r));
                pthread_mutex_lock(&vp->lock);
        }
}

static uint64_t common_read(struct virtio_pci *vp, unsigned field) {
        struct virtio_pci_queue *q = selected_queue(vp);

        switch (field) {
        case CC_DFSELECT:
                return vp->device_feature_select;
        case CC_DF:
                return vp->device_feature_select < 2 ? (uint32_t) (vp->offered >> (32 * vp->device_feature_select))
                                                     : 0;
        case CC_GFSELECT:
                return vp->driver_feature_select;
        case CC_GF:
                return vp->driver_feature_select < 2
                               ? (uint32_t) (vp->driver_features >> (32 * vp->driver_feature_select))
                               : 0;
        case CC_MSIX:
                return vp->msix_config;
        case CC_NUMQ:
                return vp->info.num_queues;
        case CC_STATUS:
                return vp->status | (atomic_load(&vp->needs_reset) ? VIRTIO_STATUS_NEEDS_RESET : 0);
        case CC_CFGGEN:
                return vp->config_generation;
        case CC_Q_SELECT:
                return vp->queue_select;
        case CC_Q_SIZE: /* 0 for a queue that does not exist (4.1.4.3.1) */
                return q ? q->size : 0;
        case CC_Q_MSIX:
                return q ? q->msix_vector : VIRTIO_MSI_NO_VECTOR;
        case CC_Q_ENABLE:
                return q ? q->enabled : 0;
        case CC_Q_NOFF:
                return q ? vp->queue_select : 0;
        case CC_Q_DESC:
                return q ? q->desc : 0;
        case CC_Q_DRIVER:
                return q ? q->driver : 0;
        case CC_Q_DEVICE:
                return q ? q->device : 0;
        default:
                return 0;
        }
}

/* A vector the driver may assign: one of ours, or NO_VECTOR for anything
 * else (4.1.4.3.2: the device answers an invalid one with NO_VECTOR). */
static uint16_t vector_or_none(struct virtio_pci *vp, uint64_t v) {
        return v < vp->n_vectors ? (uint16_t) v : VIRTIO_MSI_NO_VECTOR;
}

/* A write of a whole field, or of one 32-bit half of a 64-bit one
 * (shift 0 or 32, mask the half). */
static void common_write(struct virtio_pci *vp, unsigned field, uint64_t value, unsigned shift, uint64_t mask) {
        struct virtio_pci_queue *q = selected_queue(vp);
        bool live = vp->status & VIRTIO_STATUS_FEATURES_OK;
        uint64_t *addr = NULL;

        switch (field) {
        case CC_DFSELECT:
                vp->device_feature_select = (uint32_t) value;
                return;
        case CC_GFSELECT:
                vp->driver_feature_select = (uint32_t) value;
                return;
        case CC_GF:
                /* Only while negotiating (before FEATURES_OK). */
                if (live || vp->driver_feature_select >= 2)
                        return;
                shift = 32 * vp->driver_feature_select;
                vp->driver_features = (vp->driver_features & ~(UINT64_C(0xffffffff) << shift)) |
                                      ((value & 0xffffffff) << shift);
                return;
        case CC_MSIX:
                vp->msix_config = vector_or_none(vp, value);
                return;
        case CC_STATUS:
                status_write(vp, (uint8_t) value);
                return;
        case CC_Q_SELECT:
                vp->queue_select = (uint16_t) value;
                return;
        case CC_Q_MSIX:
                if (q)
                        q->msix_vector = vector_or_none(vp, value);
                return;
        default:
                break;
        }

        /* The rest set a queue up: only before it is enabled and before
         * DRIVER_OK (no RING_RESET), so a live ring never changes under
         * the worker. */
        if (!q || q->enabled || (vp->status & VIRTIO_STATUS_DRIVER_OK))
                return;
        switch (field) {
        case CC_Q_SIZE:
                /* A power of 2 up to the maximum; anything else is ignored. */
                if (value != 0 && value <= vp->info.queue_max_size && (value & (value - 1)) == 0)
                        q->size = (uint16_t) value;
                return;
        case CC_Q_ENABLE:
                if (value == 1)
                        q->enabled = true; /* 0 must not be written (4.1.4.3.2) */
                return;
        case CC_Q_DESC:
                addr = &q->desc;
                break;
        case CC_Q_DRIVER:
                addr = &q->driver;
                break;
        case CC_Q_DEVICE:
                addr = &q->device;
                break;
        default:
                return; /* read-only */
        }
        *addr = (*addr & ~(mask << shift)) | ((value & mask) << shift);
}

static int find_field(uint64_t offset) {
        for (size_t i = 0; i < ELEMENTSOF(common_fields); i++)
                if (offset >= common_fields[i].offset && offset < common_fields[i].offset + common_fields[i].size)
                        return (int) i;
        return -1;
}

/* Reads compose byte by byte from the fields they touch, so any offset and
 * length reads something sensible; nothing in common cfg has read side
 * effects. */
static void common_bar_read(struct virtio_pci *vp, uint64_t offset, uint32_t len, uint8_t *data) {
        for (uint32_t i = 0; i < len; i++) {
                int f = find_field(offset + i);
                uint64_t v;

                if (f < 0) {
                        data[i] = 0;
                        continue;
                }
                v = common_read(vp, common_fields[f].offset);
                data[i] = (uint8_t) (v >> (8 * (offset + i - common_fields[f].offset)));
        }
}

/* Writes count only when they cover a field exactly (or a 32-bit half of
 * a 64-bit field, as drivers write queue addresses); others are ignored. */
static void common_bar_write(struct virtio_pci *vp, uint64_t offset, uint32_t len, const uint8_t *data) {
        int f = find_field(offset);
        uint64_t v = le_get(data, len);
        unsigned start, size;

        if (f < 0)
                return;
        start = common_fields[f].offset;
        size = common_fields[f].size;
        if (offset == start && len == size)
                common_write(vp, start, v, 0, size == 8 ? UINT64_MAX : UINT64_MAX >> (64 - 8 * size));
        else if (size == 8 && len == 4 && (offset == start || offset == start + 4))
                common_write(vp, start, v, (unsigned) (offset - start) * 8, UINT32_MAX);
        else
                log_debug("%s: ignored a %u-byte write at common cfg offset 0x%llx.", vp->ops->name, len,
                          (unsigned long long) offset);
}

static void device_cfg_read(struct virtio_pci *vp, uint64_t offset, uint32_t len, uint8_t *data) {
        memset(data, 0, len);
        if (offset >= vp->info.config_len || len > vp->info.config_len - offset || !vp->ops->config_read)
                return;
        vp->ops->config_read(vp, (uint32_t) offset, len, data);
}

static void device_cfg_write(struct virtio_pci *vp, uint64_t offset, uint32_t len, const uint8_t *data) {
        if (offset >= vp->info.config_len || len > vp->info.config_len - offset || !vp->ops->config_write)
                return;
        vp->ops->config_write(vp, (uint32_t) offset, len, data);
}

static void msix_table_write(struct virtio_pci *vp, uint64_t offset, uint32_t len, const uint8_t *data) {
        uint64_t size = 16 * (uint64_t) vp->n_vectors;

        if (offset >= size || len > size - offset)
                return;
        for (uint32_t i = 0; i < len; i++) {
                uint64_t at = offset + i;

                /* Vector control: only the mask bit exists. */
                if (at % 16 == 12)
                        vp->msix_table[at] = data[i] & PCI_MSIX_ENTRY_MASKED;
                else if (at % 16 < 12)
                        vp->msix_table[at] = data[i];
        }
        virtio_pci_msix_deliver_pending(vp);
}

void virtio_pci_bar_read(struct virtio_pci *vp, uint64_t offset, uint32_t len, uint8_t *data) {
        if (len == 0 || len > 8)
                return;
        memset(data, 0, len);
        if (offset >= VIRTIO_PCI_BAR_SIZE || len > VIRTIO_PCI_BAR_SIZE - offset)
                return;
        if (offset < VIRTIO_PCI_COMMON_OFFSET + VIRTIO_PCI_COMMON_LEN)
                common_bar_read(vp, offset, len, data);
        else if (offset == VIRTIO_PCI_ISR_OFFSET) {
                /* Read to clear (4.1.4.5). */
                data[0] = vp->isr;
                vp->isr = 0;
        } else if (offset >= VIRTIO_PCI_DEVICE_OFFSET && offset < VIRTIO_PCI_NOTIFY_OFFSET)
                device_cfg_read(vp, offset - VIRTIO_PCI_DEVICE_OFFSET, len, data);
        else if (offset >= VIRTIO_PCI_MSIX_TABLE_OFFSET && offset < VIRTIO_PCI_MSIX_PBA_OFFSET) {
                uint64_t o = offset - VIRTIO_PCI_MSIX_TABLE_OFFSET, size = 16 * (uint64_t) vp->n_vectors;

                if (o < size)
                        memcpy(data, vp->msix_table + o, MIN((uint64_t) len, size - o));
        } else if (offset >= VIRTIO_PCI_MSIX_PBA_OFFSET && offset < VIRTIO_PCI_MSIX_PBA_OFFSET + 8) {
                uint8_t pba[8];
                uint64_t o = offset - VIRTIO_PCI_MSIX_PBA_OFFSET;

                le_put(pba, 8, vp->msix_pba);
                memcpy(data, pba + o, MIN((uint64_t) len, 8 - o));
        }
}

void virtio_pci_bar_write(struct virtio_pci *vp, uint64_t offset, uint32_t len, const uint8_t *data) {
        if (len == 0 || len > 8 || offset >= VIRTIO_PCI_BAR_SIZE || len > VIRTIO_PCI_BAR_SIZE - offset)
                return;
        if (offset < VIRTIO_PCI_COMMON_OFFSET + VIRTIO_PCI_COMMON_LEN)
                common_bar_write(vp, offset, len, data);
        else if (offset >= VIRTIO_PCI_DEVICE_OFFSET && offset < VIRTIO_PCI_NOTIFY_OFFSET)
                device_cfg_write(vp, offset - VIRTIO_PCI_DEVICE_OFFSET, len, data);
        else if (offset >= VIRTIO_PCI_NOTIFY_OFFSET && offset < VIRTIO_PCI_MSIX_TABLE_OFFSET) {
                /* The trapped notify path: any write at queue q's address. */
                uint64_t o = offset - VIRTIO_PCI_NOTIFY_OFFSET;

                if (o % VIRTIO_PCI_NOTIFY_MULTIPLIER == 0 && o / VIRTIO_PCI_NOTIFY_MULTIPLIER < vp->info.num_queues)
                        virtio_pci_worker_kick(vp, (unsigned) (o / VIRTIO_PCI_NOTIFY_MULTIPLIER));
        } else if (offset >= VIRTIO_PCI_MSIX_TABLE_OFFSET && offset < VIRTIO_PCI_MSIX_PBA_OFFSET)
                msix_table_write(vp, offset - VIRTIO_PCI_MSIX_TABLE_OFFSET, len, data);
        /* ISR and PBA are read-only, the rest is nothing. */
}

/* device_kind ops. */

static void vp_free(struct virtio_pci *vp) {
        if (!vp)
                return;
        virtio_pci_worker_stop(vp);
        if (vp->ops->destroy)
                vp->ops->destroy(vp->model);
        for (unsigned q = 0; q < VIRTIO_PCI_MAX_QUEUES; q++)
                safe_close(vp->queues[q].ioevent_fd);
        for (unsigned v = 0; v < VIRTIO_PCI_MAX_VECTORS; v++)
                safe_close(vp->irq_fds[v]);
        safe_close(vp->intx_fd);
        safe_close(vp->wake_fd);
        /* Guest memory stays mapped: it lives as long as the process. */
        pthread_mutex_destroy(&vp->lock);
        free(vp);
}

static void vp_destroy(void *dev) {
        vp_free(dev);
}

int virtio_pci_kind_create(const struct virtio_model *m, json_object *config, void **ret, char *err,
                           size_t errlen) {
        struct virtio_pci_info info = {};
        struct virtio_pci *vp;
        void *model = NULL;
        int r;

        r = m->create(config, &model, &info, err, errlen);
        if (r < 0)
                return r;
        /* The model's own numbers: a bug there is ours, not the user's, but
         * it must not become an out-of-bounds access either. */
        if (info.num_queues < 1 || info.num_queues > VIRTIO_PCI_MAX_QUEUES || info.queue_max_size == 0 ||
            (info.queue_max_size & (info.queue_max_size - 1)) != 0 || info.config_len > VIRTIO_PCI_CONFIG_MAX) {
                snprintf(err, errlen, "%s: invalid device description (queues %u, queue size %u, config %u)",
                         m->name, info.num_queues, info.queue_max_size, info.config_len);
                if (m->destroy)
                        m->destroy(model);
                return -EINVAL;
        }
        vp = calloc(1, sizeof(*vp));
        if (!vp) {
                if (m->destroy)
                        m->destroy(model);
                return -ENOMEM;
        }
        vp->ops = m;
        vp->model = model;
        vp->info = info;
        vp->n_vectors = info.num_queues + 1;
        vp->offered = info.features | VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
                      VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
        pthread_mutex_init(&vp->lock, NULL);
        for (unsigned q = 0; q < VIRTIO_PCI_MAX_QUEUES; q++)
                vp->queues[q].ioevent_fd = -1;
        for (unsigned v = 0; v < VIRTIO_PCI_MAX_VECTORS; v++) {
                vp->irq_fds[v] = -1;
                /* Vectors come out of reset masked (PCI 6.8.2.9). */
                vp->msix_table[16 * v + 12] = PCI_MSIX_ENTRY_MASKED;
        }
        vp->intx_fd = vp->wake_fd = -1;
        reset_locked(vp);
        virtio_pci_config_init(vp);
        *ret = vp;
        return 0;
}

size_t virtio_pci_kind_owned_fds(void *dev, int *ret[]) {
        struct virtio_pci *vp = dev;

        return vp->ops->owned_fds ? vp->ops->owned_fds(vp->model, ret) : 0;
}

static int vp_get_ranges(void *dev, struct proto_ranges *ret) {
        struct virtio_pci *vp = dev;

        pthread_mutex_lock(&vp->lock);
        ret->count = 0;
        ret->irq = 0;
        if (vp->bar_mapped)
                ret->ranges[ret->count++] = (struct proto_range) {
                        .base = vp->bar_base, .len = VIRTIO_PCI_BAR_SIZE, .bus = PROTO_BUS_MMIO };
        pthread_mutex_unlock(&vp->lock);
        return 0;
}

static int vp_read(void *dev, uint32_t range, uint64_t offset, uint32_t len, uint8_t *data) {
        struct virtio_pci *vp = dev;

        if (range != 0)
                return -EINVAL;
        pthread_mutex_lock(&vp->lock);
        virtio_pci_bar_read(vp, offset, len, data);
        pthread_mutex_unlock(&vp->lock);
        return 0;
}

static int vp_write(void *dev, uint32_t range, uint64_t offset, uint32_t len, const uint8_t *data) {
        struct virtio_pci *vp = dev;

        if (range != 0)
                return -EINVAL;
        pthread_mutex_lock(&vp->lock);
        virtio_pci_bar_write(vp, offset, len, data);
        pthread_mutex_unlock(&vp->lock);
        return 0;
}

static int vp_read_config(void *dev, uint32_t reg, uint32_t *ret) {
        struct virtio_pci *vp = dev;

        pthread_mutex_lock(&vp->lock);
        *ret = virtio_pci_config_read(vp, reg);
        pthread_mutex_unlock(&vp->lock);
        return 0;
}

static int vp_write_config(void *dev, uint32_t reg, uint32_t offset, uint32_t len, const uint8_t *data,
                           struct proto_config_result *ret) {
        struct virtio_pci *vp = dev;

        pthread_mutex_lock(&vp->lock);
        virtio_pci_config_write(vp, reg, offset, len, data, ret);
        pthread_mutex_unlock(&vp->lock);
        return 0;
}

/* One mapping per process, for its whole life, guarded by its uffd
 * (device-memory.h): a second memfd is refused. */
static int attach_memory(struct virtio_pci *vp, int fd, char *err, size_t errlen) {
        int r;

        if (vp->mem) {
                snprintf(err, errlen, "guest memory is attached already");
                return -EALREADY;
        }
        r = device_memory_map(fd, &vp->mem, &vp->mem_size);
        if (r < 0) {
                snprintf(err, errlen, "cannot map guest memory: %s", strerror(-r));
                return r;
        }
        /* The mapping keeps the memory: the fd is not needed any more. */
        safe_close(fd);
        return 0;
}

static int vp_attach_fd(void *dev, uint32_t role, uint32_t arg, int fd, char *err, size_t errlen) {
        struct virtio_pci *vp = dev;
        bool restart;
        int r = 0;

        switch (role) {
        case PROTO_FD_MEMORY:
                pthread_mutex_lock(&vp->lock);
                r = attach_memory(vp, fd, err, errlen);
                pthread_mutex_unlock(&vp->lock);
                return r;
        case PROTO_FD_IRQ:
                pthread_mutex_lock(&vp->lock);
                if (arg == PROTO_IRQ_INTX) {
                        safe_close(vp->intx_fd);
                        vp->intx_fd = fd;
                } else if (arg < vp->n_vectors) {
                        safe_close(vp->irq_fds[arg]);
                        vp->irq_fds[arg] = fd;
                } else {
                        snprintf(err, errlen, "%s has MSI-X vectors 0..%u and INTx (0x%x), not %u", vp->ops->name,
                                 vp->n_vectors - 1, PROTO_IRQ_INTX, arg);
                        r = -EINVAL;
                }
                pthread_mutex_unlock(&vp->lock);
                return r;
        case PROTO_FD_IOEVENT:
                if (arg >= vp->info.num_queues) {
                        snprintf(err, errlen, "%s has queues 0..%u, not %u", vp->ops->name, vp->info.num_queues - 1,
                                 arg);
                        return -EINVAL;
                }
                break;
        default:
                if (!vp->ops->attach_fd) {
                        snprintf(err, errlen, "%s takes no fd of role %u", vp->ops->name, role);
                        return -EINVAL;
                }
                break;
        }

        /* The worker polls these: swap them with it stopped. */
        restart = vp->worker_running;
        virtio_pci_worker_stop(vp);
        if (role == PROTO_FD_IOEVENT) {
                safe_close(vp->queues[arg].ioevent_fd);
                vp->queues[arg].ioevent_fd = fd;
        } else
                r = vp->ops->attach_fd(vp, role, arg, fd, err, errlen);
        if (restart && virtio_pci_worker_start(vp) < 0)
                virtio_pci_needs_reset(vp, "cannot restart the worker thread");
        return r;
}

static int vp_get_ioevents(void *dev, struct proto_ioevents *ret) {
        struct virtio_pci *vp = dev;

        pthread_mutex_lock(&vp->lock);
        ret->count = 0;
        if (vp->bar_mapped)
                for (unsigned q = 0; q < vp->info.num_queues; q++)
                        ret->ioevents[ret->count++] = (struct proto_ioevent) {
                                .address = vp->bar_base + VIRTIO_PCI_NOTIFY_OFFSET + VIRTIO_PCI_NOTIFY_MULTIPLIER * q,
                                .len = 0, /* any size: drivers write 16 bits, some 32 */
                                .bus = PROTO_BUS_MMIO,
                                .arg = q,
                        };
        pthread_mutex_unlock(&vp->lock);
        return 0;
}

static int vp_get_msi_routes(void *dev, struct proto_msi_routes *ret) {
        struct virtio_pci *vp = dev;

        pthread_mutex_lock(&vp->lock);
        ret->count = vp->n_vectors;
        ret->enabled = virtio_pci_msix_enabled(vp) && !virtio_pci_msix_function_masked(vp);
        for (unsigned v = 0; v < vp->n_vectors; v++) {
                const uint8_t *e = vp->msix_table + 16 * v;

                ret->routes[v] = (struct proto_msi_route) {
                        .address = le_get(e, 8),
                        .data = (uint32_t) le_get(e + 8, 4),
                        .masked = virtio_pci_msix_vector_masked(vp, v),
                };
        }
        pthread_mutex_unlock(&vp->lock);
        return 0;
}

static void vp_destroy_device(void *dev) {
        struct virtio_pci *vp = dev;

        virtio_pci_worker_stop(vp);
        pthread_mutex_lock(&vp->lock);
        for (unsigned q = 0; q < VIRTIO_PCI_MAX_QUEUES; q++) {
                vp->queues[q].ioevent_fd = safe_close(vp->queues[q].ioevent_fd);
                vp->queues[q].ready = false;
        }
        for (unsigned v = 0; v < VIRTIO_PCI_MAX_VECTORS; v++)
                vp->irq_fds[v] = safe_close(vp->irq_fds[v]);
        vp->intx_fd = safe_close(vp->intx_fd);
        pthread_mutex_unlock(&vp->lock);
}

static int vp_sleep(void *dev, char *err, size_t errlen) {
        struct virtio_pci *vp = dev;

        virtio_pci_worker_stop(vp);
        vp->asleep = true;
        return 0;
}

static int vp_wake(void *dev, char *err, size_t errlen) {
        struct virtio_pci *vp = dev;
        bool run;
        int r;

        vp->asleep = false;
        pthread_mutex_lock(&vp->lock);
        run = (vp->status & VIRTIO_STATUS_DRIVER_OK) && !atomic_load(&vp->needs_reset);
        pthread_mutex_unlock(&vp->lock);
        if (!run)
                return 0;
        r = virtio_pci_worker_start(vp);
        if (r < 0) {
                snprintf(err, errlen, "cannot restart the worker thread: %s", strerror(-r));
                return r;
        }
        return 0;
}

void virtio_pci_kind_init(struct device_kind *k, const struct virtio_model *m,
                          int (*create)(json_object *, void **, char *, size_t)) {
        *k = (struct device_kind) {
                .name = m->name,
                .seccomp_policy = m->name,
                .rlimit_as = m->rlimit_as,
                .rlimit_nofile = m->rlimit_nofile,
                /* Itself and the worker, plus room for a joined worker
                 * the kernel has not released yet when a new one starts. */
                .rlimit_nproc = 4,
                .maps_guest_memory = true,
                .create = create,
                .destroy = vp_destroy,
                .owned_fds = m->owned_fds ? virtio_pci_kind_owned_fds : NULL,
                .get_ranges = vp_get_ranges,
                .read = vp_read,
                .write = vp_write,
                .attach_fd = vp_attach_fd,
                .read_config = vp_read_config,
                .write_config = vp_write_config,
                .get_ioevents = vp_get_ioevents,
                .get_msi_routes = vp_get_msi_routes,
                .destroy_device = vp_destroy_device,
                .sleep = vp_sleep,
                .wake = vp_wake,
        };
}
