/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* virtio over PCI (virtio 1.2 section 4.1, modern only), the transport
 * every virtio device kind (virtio-blk, -net, -console, -rng) sits on. A
 * model is one file in devices/ that fills a struct virtio_model and
 * registers it with VIRTIO_PCI_REGISTER(); the transport does the rest of
 * the device kind: PCI config space and capabilities, BAR0 (common cfg,
 * ISR, device cfg, notify, MSI-X table and PBA), feature negotiation, the
 * status sequence, queue setup, guest memory (PROTO_FD_MEMORY), ioeventfds
 * (PROTO_FD_IOEVENT), irqfds (PROTO_FD_IRQ, MSI-X vectors and INTx), and a
 * worker thread that runs the data path.
 *
 * Threads. The device process has two:
 *   - the serve thread (device-loop.c) answers the launcher. It calls the
 *     model's create/destroy/owned_fds (create before the fork, in devmgr),
 *     attach_fd, config_read, config_write, set_features, driver_ok and
 *     reset.
 *   - the worker thread runs from DRIVER_OK until reset, Sleep, Shutdown or
 *     DestroyDevice (it is joined then, so none of those races with it). It
 *     calls queue_notify and handle_event, and nothing else. It holds no
 *     lock while it does, so long I/O never delays a protocol reply.
 * config_read, config_write and set_features run with the transport lock
 * held while the worker may be running: state a model shares between them
 * and its queue work is guarded by virtio_pci_lock()/virtio_pci_unlock()
 * (never held across I/O, and not while calling the virtio_pci_* helpers
 * below, which take it themselves; so those three must not call them).
 * attach_fd, driver_ok and reset run with the worker stopped and the lock
 * not held.
 *
 * The guest is hostile: chains come from virtio_pci_queue_pop() already
 * validated against guest RAM (lib/virtqueue.h), but their contents (request
 * headers, sizes, sector numbers) are the model's to check. A model never
 * crashes or loops on guest input: it completes a bad request with the
 * device type's error status, or calls virtio_pci_needs_reset(). */

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h> /* models write their errors with snprintf */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "virtqueue.h"

/* PCI identity (4.1.2): vendor 0x1af4, device 0x1040 + virtio device id,
 * revision 1, subsystem vendor 0x1af4, subsystem id = virtio device id. */
#define VIRTIO_PCI_VENDOR_ID          0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE     0x1040
#define VIRTIO_PCI_REVISION           1

/* Virtio device ids (5.x). */
#define VIRTIO_ID_NET                 1
#define VIRTIO_ID_BLOCK               2
#define VIRTIO_ID_CONSOLE             3
#define VIRTIO_ID_RNG                 4

/* PCI class codes (class << 16 | subclass << 8 | prog-if), as QEMU gives
 * each type (but virtio-rng, below), so guests see the same devices. */
#define VIRTIO_PCI_CLASS_STORAGE_SCSI 0x010000 /* virtio-blk */
#define VIRTIO_PCI_CLASS_NETWORK      0x020000 /* virtio-net */
#define VIRTIO_PCI_CLASS_COMMUNICATION 0x078000 /* virtio-console */
#define VIRTIO_PCI_CLASS_OTHER        0xff0000 /* virtio-rng: base class 0xff (QEMU says 0x00ff00; Linux takes both) */

/* Limits. Each queue gets one ioevent (PROTO_MAX_IOEVENTS) and one MSI-X
 * vector, plus one vector for config changes (PROTO_MAX_MSI_ROUTES). */
#define VIRTIO_PCI_MAX_QUEUES         16
#define VIRTIO_PCI_MAX_VECTORS        (VIRTIO_PCI_MAX_QUEUES + 1)
#define VIRTIO_PCI_CONFIG_MAX         4096 /* device-specific config bytes */

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE     0x01
#define VIRTIO_STATUS_DRIVER          0x02
#define VIRTIO_STATUS_DRIVER_OK       0x04
#define VIRTIO_STATUS_FEATURES_OK     0x08
#define VIRTIO_STATUS_NEEDS_RESET     0x40
#define VIRTIO_STATUS_FAILED          0x80

/* Transport feature bits (6). The transport always offers VERSION_1 and the
 * ring features lib/virtqueue.c implements (INDIRECT_DESC, EVENT_IDX); a
 * model offers its own device bits (0..23) and may offer more of these. */
#define VIRTIO_F_VERSION_1            32
#define VIRTIO_F_ACCESS_PLATFORM      33
#define VIRTIO_F_RING_PACKED          34
#define VIRTIO_F_IN_ORDER             35
#define VIRTIO_F_ORDER_PLATFORM       36
#define VIRTIO_F_SR_IOV               37
#define VIRTIO_F_NOTIFICATION_DATA    38
#define VIRTIO_F_RING_RESET           40
#define VIRTIO_BIT(b)                 (UINT64_C(1) << (b))

/* Where things are in BAR0 (drivers find them through the capabilities;
 * listed here for docs and tests). The BAR is 64-bit, non-prefetchable,
 * VIRTIO_PCI_BAR_SIZE bytes. */
#define VIRTIO_PCI_BAR_SIZE           0x8000
#define VIRTIO_PCI_COMMON_OFFSET      0x0000 /* struct virtio_pci_common_cfg, 0x38 bytes */
#define VIRTIO_PCI_COMMON_LEN         0x38
#define VIRTIO_PCI_ISR_OFFSET         0x1000 /* 1 byte */
#define VIRTIO_PCI_DEVICE_OFFSET      0x2000 /* config_len bytes */
#define VIRTIO_PCI_NOTIFY_OFFSET      0x3000 /* queue q at + 4 * q */
#define VIRTIO_PCI_NOTIFY_MULTIPLIER  4
#define VIRTIO_PCI_MSIX_TABLE_OFFSET  0x4000 /* 16 bytes per vector */
#define VIRTIO_PCI_MSIX_PBA_OFFSET    0x5000 /* 8 bytes */

#define VIRTIO_MSI_NO_VECTOR          0xffff

struct virtio_pci; /* the transport's state of one device; opaque */

/* What an instance of a model is, filled by its create(): fixed for the
 * device's life. */
struct virtio_pci_info {
        uint16_t device_id;       /* VIRTIO_ID_* */
        uint32_t pci_class;       /* VIRTIO_PCI_CLASS_* */
        unsigned num_queues;      /* 1..VIRTIO_PCI_MAX_QUEUES */
        uint16_t queue_max_size;  /* a power of 2, 1..32768: what queue_size reads at reset */
        uint64_t features;        /* offered device bits; the transport adds its own (above) */
        uint32_t config_len;      /* device-specific config bytes, 0..VIRTIO_PCI_CONFIG_MAX */
};

struct virtio_model {
        /* Kind name (also its seccomp policy, seccomp/<name>.policy) and jail
         * limits as in struct device_kind; rlimit_as is 0 in practice, as
         * the device maps guest RAM. */
        const char *name;
        uint64_t rlimit_as;
        unsigned rlimit_nofile;

        /* Before the fork, in devmgr: validate config (json_parse_fields,
         * errors name the field) and build the model's state in *ret_model;
         * fill *info. Must not start threads or map anything. */
        int (*create)(json_object *config, void **ret_model, struct virtio_pci_info *info, char *err,
                      size_t errlen);
        /* Frees the model's state (and closes its fds). The worker is
         * already stopped. NULL model is possible after a failed create. */
        void (*destroy)(void *model);
        /* Optional, as device_kind.owned_fds: the fds create() opened (disk
         * image, tap) that the jail must keep. */
        size_t (*owned_fds)(void *model, int *ret[]);

        /* Optional: fds of roles the transport does not take (PROTO_FD_CONSOLE
         * and anything model-specific). Takes fd on success. */
        int (*attach_fd)(struct virtio_pci *vp, uint32_t role, uint32_t arg, int fd, char *err, size_t errlen);

        /* Device-specific config (the device cfg capability): offset + len <=
         * config_len, len 1..8, checked by the transport. Optional: without
         * config_read it reads as zeros; without config_write writes are
         * ignored. The driver reads it around config_generation, so a model
         * that changes it calls virtio_pci_config_changed() afterwards. */
        void (*config_read)(struct virtio_pci *vp, uint32_t offset, uint32_t len, uint8_t *data);
        void (*config_write)(struct virtio_pci *vp, uint32_t offset, uint32_t len, const uint8_t *data);

        /* Optional: the driver set FEATURES_OK with these (already a subset
         * of what was offered, VERSION_1 included). 0 accepts them, -errno
         * refuses (FEATURES_OK then reads back clear, 3.1.1 step 6). */
        int (*set_features)(struct virtio_pci *vp, uint64_t features);
        /* Optional: DRIVER_OK was set; the queues are set up and the worker
         * starts right after. -errno marks the device NEEDS_RESET. */
        int (*driver_ok)(struct virtio_pci *vp);

        /* Worker thread: queue q was notified (an ioeventfd, a trapped
         * notify write, or once per enabled queue when the worker starts).
         * Take chains with virtio_pci_queue_pop() until it returns 0, give
         * them back with virtio_pci_queue_push() and interrupt with
         * virtio_pci_queue_signal() (or both in virtio_pci_queue_complete()).
         * A model may also leave chains popped and complete them later from
         * handle_event (net rx waits for the tap). */
        void (*queue_notify)(struct virtio_pci *vp, unsigned q);

        /* Optional, worker thread: the model's own event source (tap,
         * console input). event_fd is asked on each worker turn (return -1
         * for none now, e.g. no rx buffers); handle_event runs when it is
         * readable (POLLIN). */
        int (*event_fd)(struct virtio_pci *vp);
        void (*handle_event)(struct virtio_pci *vp);

        /* Optional: the device was reset (status 0 written, 2.4) or is
         * going away; the worker is stopped and the queues forgotten. Drop
         * chains still held and return to the state after create. */
        void (*reset)(struct virtio_pci *vp);
};

/* The model's state, as create() returned it. */
void *virtio_pci_model(struct virtio_pci *vp);
/* The features the driver accepted (valid from FEATURES_OK on). */
uint64_t virtio_pci_features(struct virtio_pci *vp);
/* Guest RAM as mapped from PROTO_FD_MEMORY (NULL before it is attached);
 * addresses per lib/guest-ram.h. Chains already point into it. */
void *virtio_pci_guest_ram(struct virtio_pci *vp, uint64_t *ret_size);

/* Worker thread only. The next chain of queue q: 1 and *chain filled, 0 if
 * the queue is empty (or not enabled, or the device needs a reset), -EINVAL
 * if the ring is malformed: the device is then NEEDS_RESET, the reason
 * logged and a config interrupt sent; stop using the device. */
int virtio_pci_queue_pop(struct virtio_pci *vp, unsigned q, struct vq_chain *chain);
/* Worker thread only. Returns a chain (head from the chain, written =
 * bytes written to its writable segments). 0 or -EINVAL. */
int virtio_pci_queue_push(struct virtio_pci *vp, unsigned q, uint16_t head, uint32_t written);
/* Worker thread only. Interrupts the guest for queue q if it wants one for
 * what was pushed since the last call (vq_needs_notify): ISR bit 0, then
 * the queue's MSI-X vector (pending if masked) or an INTx edge. */
void virtio_pci_queue_signal(struct virtio_pci *vp, unsigned q);
/* push + signal, for a model that completes one chain at a time. */
int virtio_pci_queue_complete(struct virtio_pci *vp, unsigned q, uint16_t head, uint32_t written);

/* Any thread, lock not held. The device config changed: config_generation
 * is bumped, ISR bit 1 set and the config vector (or INTx) raised. */
void virtio_pci_config_changed(struct virtio_pci *vp);
/* Any thread, lock not held. Something went wrong that only a reset
 * clears: sets DEVICE_NEEDS_RESET, logs the reason (with the device name),
 * raises a config interrupt; no queue is processed until the driver
 * resets the device. */
void virtio_pci_needs_reset(struct virtio_pci *vp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Guards model state shared between the serve thread's callbacks and the
 * worker (see above). Not recursive. */
void virtio_pci_lock(struct virtio_pci *vp);
void virtio_pci_unlock(struct virtio_pci *vp);

/* The device_kind glue, used by VIRTIO_PCI_REGISTER(); not called by
 * models directly. */
int virtio_pci_kind_create(const struct virtio_model *m, json_object *config, void **ret, char *err,
                           size_t errlen);
size_t virtio_pci_kind_owned_fds(void *dev, int *ret[]);
/* Fills every op of k but create (its name, policy, limits and the
 * transport's ops). */
void virtio_pci_kind_init(struct device_kind *k, const struct virtio_model *m,
                          int (*create)(json_object *, void **, char *, size_t));

/* Makes the model m (a static const struct virtio_model) a device kind
 * named m.name and registers it. */
#define VIRTIO_PCI_REGISTER(m)                                                                        \
        static struct device_kind m##_kind;                                                           \
        static int m##_kind_create(json_object *config, void **ret, char *err, size_t errlen) {       \
                return virtio_pci_kind_create(&(m), config, ret, err, errlen);                        \
        }                                                                                             \
        static void __attribute__((constructor)) register_##m(void) {                                 \
                virtio_pci_kind_init(&m##_kind, &(m), m##_kind_create);                               \
                device_kind_register(&m##_kind);                                                      \
        }
