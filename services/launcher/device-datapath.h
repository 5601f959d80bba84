/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The direct data path of one PCI device process (virtio over PCI), so that
 * a queue notification or an interrupt costs no launcher round trip: the
 * guest memfd, an ioeventfd wherever the device asks for one (GetIoevents:
 * its queue notify registers) and an irqfd per MSI-X vector, routed by
 * what the guest wrote to the device's MSI-X table (GetMsiRoutes). The
 * eventfds are made and handed to the device once; the KVM bindings are
 * made for each KVM VM (each start) and follow BAR moves and table writes.
 * Nothing the device says is trusted: an ioevent outside the device's own
 * ranges and a message outside the LAPIC window are refused and logged. */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "address-map.h"
#include "device-proxy.h"
#include "irq-routes.h"

/* What the data path needs from KVM (kvm-vm.c; a fake in unit tests). */
struct datapath_kvm_ops {
        int (*ioeventfd)(void *kvm, int fd, enum proto_bus bus, uint64_t address, uint32_t len, bool assign);
        int (*irqfd)(void *kvm, int fd, uint32_t gsi);
};

struct datapath_ioevent {
        uint32_t arg; /* the device's name for it (a queue index) */
        int fd;
        bool bound;   /* registered with KVM as below */
        uint64_t address;
        uint32_t len;
        enum proto_bus bus;
};

struct datapath_vector {
        int fd;
        uint32_t gsi;
};

struct device_datapath {
        struct device_proxy *device;
        struct address_map *map;
        struct irq_routes *routes;
        pthread_mutex_t lock; /* vCPU threads refresh after guest writes */
        const struct datapath_kvm_ops *ops;
        void *kvm; /* NULL while no KVM VM is bound */
        struct datapath_ioevent ioevents[PROTO_MAX_IOEVENTS];
        size_t n_ioevents;
        struct datapath_vector vectors[PROTO_MAX_MSI_ROUTES];
        size_t n_vectors;
};

/* At VM creation, for an activated PCI device: hands it guest memory and,
 * if it has MSI-X, an eventfd per vector (with a GSI from routes). Sets
 * d->datapath. -errno from the device if it takes no memory: it has no
 * data path then, which is no error for devices without one. */
int device_datapath_new(struct device_proxy *d, int memfd, struct address_map *map, struct irq_routes *routes,
                        struct device_datapath **ret);
struct device_datapath *device_datapath_free(struct device_datapath *dp);

/* At start, with the new KVM VM (vCPUs not running yet): irqfds for the
 * vectors, ioeventfds where the device asks, the routes it has. */
int device_datapath_bind(struct device_datapath *dp, const struct datapath_kvm_ops *ops, void *kvm);
/* The KVM VM is going away, and every binding with it. */
void device_datapath_unbind(struct device_datapath *dp);

/* After the guest wrote to the device (a trapped access, or config space;
 * ranges_moved if a BAR moved): the ioevents follow the BAR, the routes the
 * MSI-X table. vCPU threads. */
void device_datapath_refresh(struct device_datapath *dp, bool ranges_moved);
