/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include "device-datapath.h"
#include "log.h"
#include "macro.h"

static int new_eventfd(void) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        return fd < 0 ? -errno : fd;
}

int device_datapath_new(struct device_proxy *d, int memfd, struct address_map *map, struct irq_routes *routes,
                        struct device_datapath **ret) {
        struct device_datapath *dp;
        struct proto_msi_routes msi;
        int r;

        r = device_proxy_attach_fd(d, PROTO_FD_MEMORY, 0, memfd);
        if (r < 0)
                return r;

        dp = calloc(1, sizeof(*dp));
        if (!dp)
                return -ENOMEM;
        dp->device = d;
        dp->map = map;
        dp->routes = routes;
        pthread_mutex_init(&dp->lock, NULL);

        r = device_proxy_get_msi_routes(d, &msi);
        if (r == -EOPNOTSUPP)
                msi.count = 0;
        else if (r < 0) {
                device_datapath_free(dp);
                return r;
        }
        for (uint32_t i = 0; i < msi.count; i++) {
                struct datapath_vector *v = &dp->vectors[i];

                r = new_eventfd();
                if (r >= 0) {
                        v->fd = r;
                        dp->n_vectors++;
                        r = irq_routes_alloc(routes, &v->gsi);
                }
                if (r >= 0)
                        r = device_proxy_attach_fd(d, PROTO_FD_IRQ, i, v->fd);
                if (r < 0) {
                        log_error_errno(r, "Device %s: failed to set up MSI-X vector %" PRIu32 ": %m", d->object, i);
                        device_datapath_free(dp);
                        return r;
                }
        }
        d->datapath = dp;
        *ret = dp;
        return 0;
}

struct device_datapath *device_datapath_free(struct device_datapath *dp) {
        if (!dp)
                return NULL;
        if (dp->device->datapath == dp)
                dp->device->datapath = NULL;
        for (size_t i = 0; i < dp->n_ioevents; i++)
                safe_close(dp->ioevents[i].fd);
        for (size_t i = 0; i < dp->n_vectors; i++)
                safe_close(dp->vectors[i].fd);
        pthread_mutex_destroy(&dp->lock);
        free(dp);
        return NULL;
}

static void ioevent_unbind(struct device_datapath *dp, struct datapath_ioevent *io) {
        int r;

        if (!io->bound)
                return;
        r = dp->ops->ioeventfd(dp->kvm, io->fd, io->bus, io->address, io->len, false);
        if (r < 0)
                log_warning_errno(r, "Device %s: failed to remove the ioeventfd at 0x%" PRIx64 ": %m", dp->device->object,
                                  io->address);
        io->bound = false;
}

/* The ioevent named arg, made (and handed to the device) if new. */
static struct datapath_ioevent *ioevent_get(struct device_datapath *dp, uint32_t arg) {
        struct datapath_ioevent *io;
        int fd, r;

        for (size_t i = 0; i < dp->n_ioevents; i++)
                if (dp->ioevents[i].arg == arg)
                        return &dp->ioevents[i];
        if (dp->n_ioevents >= PROTO_MAX_IOEVENTS)
                return NULL;
        fd = new_eventfd();
        if (fd < 0)
                return NULL;
        r = device_proxy_attach_fd(dp->device, PROTO_FD_IOEVENT, arg, fd);
        if (r < 0) {
                safe_close(fd);
                return NULL;
        }
        io = &dp->ioevents[dp->n_ioevents++];
        *io = (struct datapath_ioevent) { .arg = arg, .fd = fd };
        return io;
}

/* An ioevent must lie in a range the address map gives this device. */
static bool ioevent_is_the_devices(struct device_datapath *dp, const struct proto_ioevent *e) {
        struct address_map_entry m;

        return address_map_lookup(dp->map, e->bus, e->address, e->len ?: 1, &m) && m.device == dp->device;
}

static void refresh_ioevents(struct device_datapath *dp) {
        struct proto_ioevents list = {};
        bool wanted[PROTO_MAX_IOEVENTS] = {};
        int r;

        r = device_proxy_get_ioevents(dp->device, &list);
        if (r < 0 && r != -EOPNOTSUPP)
                log_warning_errno(r, "Device %s: GetIoevents failed, its notifications take the slow path: %m",
                                  dp->device->object);

        for (uint32_t i = 0; r >= 0 && i < list.count; i++) {
                const struct proto_ioevent *e = &list.ioevents[i];
                struct datapath_ioevent *io;

                if (!ioevent_is_the_devices(dp, e)) {
                        log_warning("Device %s: refusing an ioevent at 0x%" PRIx64 " outside its own ranges.",
                                    dp->device->object, e->address);
                        continue;
                }
                io = ioevent_get(dp, e->arg);
                if (!io) {
                        log_warning("Device %s: no ioeventfd for arg %" PRIu32 ".", dp->device->object, e->arg);
                        continue;
                }
                wanted[io - dp->ioevents] = true;
                if (io->bound && io->address == e->address && io->len == e->len && io->bus == e->bus)
                        continue;
                ioevent_unbind(dp, io);
                io->address = e->address;
                io->len = e->len;
                io->bus = e->bus;
                if (!dp->kvm)
                        continue;
                r = dp->ops->ioeventfd(dp->kvm, io->fd, io->bus, io->address, io->len, true);
                if (r < 0) {
                        log_warning_errno(r, "Device %s: failed to register the ioeventfd at 0x%" PRIx64 ": %m",
                                          dp->device->object, io->address);
                        r = 0;
                        continue;
                }
                io->bound = true;
        }
        for (size_t i = 0; i < dp->n_ioevents; i++)
                if (!wanted[i])
                        ioevent_unbind(dp, &dp->ioevents[i]);
}

static void refresh_routes(struct device_datapath *dp) {
        struct proto_msi_routes m = {};
        int r;

        if (dp->n_vectors == 0)
                return;
        r = device_proxy_get_msi_routes(dp->device, &m);
        if (r < 0)
                return; /* a failed device raises nothing; a refusal changes nothing */

        for (size_t i = 0; i < dp->n_vectors; i++) {
                const struct proto_msi_route *route = &m.routes[i];
                bool valid = m.enabled && i < m.count && route->address != 0;

                if (valid && !irq_routes_msi_valid(route->address)) {
                        log_warning("Device %s: MSI-X vector %zu has address 0x%" PRIx64
                                    ", not a local APIC's; not routed.",
                                    dp->device->object, i, route->address);
                        valid = false;
                }
                r = irq_routes_set(dp->routes, dp->vectors[i].gsi, valid, route->address, route->data);
                if (r < 0)
                        log_warning_errno(r, "Device %s: failed to route MSI-X vector %zu: %m", dp->device->object, i);
        }
}

int device_datapath_bind(struct device_datapath *dp, const struct datapath_kvm_ops *ops, void *kvm) {
        int r = 0;

        pthread_mutex_lock(&dp->lock);
        dp->ops = ops;
        dp->kvm = kvm;
        for (size_t i = 0; i < dp->n_vectors; i++) {
                r = ops->irqfd(kvm, dp->vectors[i].fd, dp->vectors[i].gsi);
                if (r < 0) {
                        log_error_errno(r, "Device %s: KVM_IRQFD for MSI-X vector %zu failed: %m", dp->device->object, i);
                        break;
                }
        }
        if (r >= 0) {
                refresh_ioevents(dp);
                refresh_routes(dp);
        }
        pthread_mutex_unlock(&dp->lock);
        return r;
}

void device_datapath_unbind(struct device_datapath *dp) {
        pthread_mutex_lock(&dp->lock);
        /* Closing the VM fd drops KVM's side; only our record goes. */
        for (size_t i = 0; i < dp->n_ioevents; i++)
                dp->ioevents[i].bound = false;
        dp->kvm = NULL;
        pthread_mutex_unlock(&dp->lock);
}

void device_datapath_refresh(struct device_datapath *dp, bool ranges_moved) {
        pthread_mutex_lock(&dp->lock);
        if (ranges_moved)
                refresh_ioevents(dp);
        refresh_routes(dp);
        pthread_mutex_unlock(&dp->lock);
}
