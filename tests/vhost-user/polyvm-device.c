/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bus-util.h"
#include "log.h"
#include "macro.h"
#include "polyvm-device.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"
#define TIMEOUT_MS 2000

int pdev_create(struct pdev *d, sd_bus *bus, const char *vm, const char *kind, const char *config) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        uint32_t pid;
        int fd, r;

        memset(d, 0, sizeof(*d));
        d->ep = d->config_irq_fd = -1;
        d->bus = sd_bus_ref(bus);
        r = sd_bus_call_method(bus, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &error, &reply, "sss", vm, kind,
                               config);
        if (r < 0)
                return log_error_errno(r, "CreateDevice(%s, %s, %s) failed: %s: %s", vm, kind, config,
                                       error.name ?: "-", error.message ?: strerror(-r));
        r = sd_bus_message_read(reply, "ohu", &path, &fd, &pid);
        if (r < 0)
                return log_error_errno(r, "Failed to parse the CreateDevice reply: %m");
        d->path = strdup(path);
        if (!d->path)
                return log_error_errno(ENOMEM, "Out of memory");
        d->ep = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* the message owns fd */
        if (d->ep < 0)
                return log_error_errno(errno, "Failed to duplicate the device endpoint: %m");
        d->pid = (pid_t) pid;
        log_info("Created %s device %s (pid %u) through devmgr.", kind, d->path, pid);
        return 0;
}

void pdev_destroy(struct pdev *d) {
        if (d->bus && d->path) {
                _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
                int r = sd_bus_call_method(d->bus, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", &error, NULL, "o",
                                           d->path);
                if (r < 0)
                        log_warning("DestroyDevice(%s) failed: %s", d->path, error.message ?: strerror(-r));
                else
                        log_info("Destroyed device %s.", d->path);
        }
        d->ep = safe_close(d->ep);
        d->config_irq_fd = safe_close(d->config_irq_fd);
        free(d->path);
        d->path = NULL;
        d->bus = sd_bus_unref(d->bus);
}

/* proto_call with the error text in the log. */
static int call(struct pdev *d, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds,
                struct proto_msg *reply) {
        char err[PROTO_ERROR_MAX] = "";
        int r;

        r = proto_call(d->ep, type, body, len, fds, n_fds, reply, TIMEOUT_MS, err, sizeof(err));
        if (r < 0)
                return log_error_errno(r, "Device %s: %s failed: %m%s%s", d->path ?: "-",
                                       proto_type_to_string(type), err[0] ? ": " : "", err);
        return 0;
}

static int config_read(struct pdev *d, uint32_t reg, uint32_t *ret) {
        struct proto_u32 u = { .reg = reg };
        struct proto_msg reply;
        int r;

        r = call(d, PROTO_READ_CONFIG, &u, sizeof(u), NULL, 0, &reply);
        if (r < 0)
                return r;
        *ret = reply.body.u32.value;
        return 0;
}

static int config_byte(struct pdev *d, uint32_t at, uint8_t *ret) {
        uint32_t v;
        int r = config_read(d, at / 4, &v);

        if (r < 0)
                return r;
        *ret = (uint8_t) (v >> (8 * (at % 4)));
        return 0;
}

static int config_write(struct pdev *d, uint32_t at, uint32_t len, uint32_t value, struct proto_config_result *res) {
        struct proto_config_write w = { .reg = at / 4, .offset = at % 4, .len = len };
        struct proto_msg reply;
        int r;

        assert(at % 4 + len <= 4);
        for (uint32_t i = 0; i < len; i++)
                w.data[i] = (uint8_t) (value >> (8 * i));
        r = call(d, PROTO_WRITE_CONFIG, &w, sizeof(w), NULL, 0, &reply);
        if (r < 0)
                return r;
        if (res)
                *res = reply.body.config_result;
        return 0;
}

int pdev_bar_read(struct pdev *d, uint64_t offset, uint32_t len, uint64_t *ret) {
        struct proto_access a = { .address = PDEV_BAR_ADDRESS + offset, .offset = offset, .len = len };
        struct proto_msg reply;
        uint64_t v = 0;
        int r;

        r = call(d, PROTO_READ, &a, sizeof(a), NULL, 0, &reply);
        if (r < 0)
                return r;
        if (reply.body.data.len != len)
                return log_error_errno(EBADMSG, "Device %s: Read of %u bytes at BAR0+0x%llx returned %u bytes",
                                       d->path, len, (unsigned long long) offset, reply.body.data.len);
        for (uint32_t i = 0; i < len; i++)
                v |= (uint64_t) reply.body.data.data[i] << (8 * i);
        *ret = v;
        return 0;
}

int pdev_bar_write(struct pdev *d, uint64_t offset, uint32_t len, uint64_t value) {
        struct proto_access a = { .address = PDEV_BAR_ADDRESS + offset, .offset = offset, .len = len };

        for (uint32_t i = 0; i < len; i++)
                a.data[i] = (uint8_t) (value >> (8 * i));
        return call(d, PROTO_WRITE, &a, sizeof(a), NULL, 0, NULL);
}

int pdev_common_read(struct pdev *d, uint32_t field, uint32_t len, uint64_t *ret) {
        return pdev_bar_read(d, d->common + field, len, ret);
}

int pdev_common_write(struct pdev *d, uint32_t field, uint32_t len, uint64_t value) {
        return pdev_bar_write(d, d->common + field, len, value);
}

uint8_t pdev_status(struct pdev *d) {
        uint64_t v;

        if (pdev_common_read(d, PDEV_CC_STATUS, 1, &v) < 0)
                return 0xff;
        return (uint8_t) v;
}

int pdev_attach(struct pdev *d, uint32_t role, uint32_t arg, int fd) {
        struct proto_attach_fd f = { .role = role, .arg = arg };

        log_debug("Device %s: AttachFd role %u arg %u fd %d", d->path, role, arg, fd);
        return call(d, PROTO_ATTACH_FD, &f, sizeof(f), &fd, 1, NULL);
}

/* Sizes BAR0 with decode off, as firmware does, places it and turns on
 * memory decode and bus mastering: exactly one MMIO range appears. */
static int program_bar(struct pdev *d) {
        struct proto_config_result res;
        uint32_t lo, hi;
        uint64_t mask;
        int r;

        r = config_read(d, 4, &lo);
        if (r < 0)
                return r;
        if ((lo & 0x7) != 0x4)
                return log_error_errno(EPROTO, "Device %s: BAR0 reads 0x%08x, not a 64-bit memory BAR", d->path, lo);
        if ((r = config_write(d, 0x10, 4, UINT32_MAX, NULL)) < 0 || (r = config_write(d, 0x14, 4, UINT32_MAX, NULL)) < 0 ||
            (r = config_read(d, 4, &lo)) < 0 || (r = config_read(d, 5, &hi)) < 0)
                return r;
        mask = ((uint64_t) hi << 32) | (lo & ~0xfu);
        d->bar_size = ~mask + 1;
        if (mask == 0 || d->bar_size < 0x1000 || (d->bar_size & (d->bar_size - 1)) != 0)
                return log_error_errno(EPROTO, "Device %s: BAR0 sizes to 0x%llx (mask 0x%llx): not a power of 2 >= 4 KiB",
                                       d->path, (unsigned long long) d->bar_size, (unsigned long long) mask);
        if ((r = config_write(d, 0x10, 4, (uint32_t) PDEV_BAR_ADDRESS, NULL)) < 0 ||
            (r = config_write(d, 0x14, 4, (uint32_t) (PDEV_BAR_ADDRESS >> 32), NULL)) < 0 ||
            (r = config_write(d, 0x04, 2, 0x6, &res)) < 0)
                return r;
        if (res.n_mmio_add != 1 || res.mmio_add[0].base != PDEV_BAR_ADDRESS || res.mmio_add[0].len != d->bar_size)
                return log_error_errno(EPROTO,
                                       "Device %s: enabling memory decode added %u MMIO range(s) (first 0x%llx+0x%llx), "
                                       "expected BAR0 at 0x%llx+0x%llx",
                                       d->path, res.n_mmio_add, (unsigned long long) res.mmio_add[0].base,
                                       (unsigned long long) res.mmio_add[0].len, PDEV_BAR_ADDRESS,
                                       (unsigned long long) d->bar_size);
        log_debug("Device %s: BAR0 at 0x%llx, 0x%llx bytes, decoding.", d->path, PDEV_BAR_ADDRESS,
                  (unsigned long long) d->bar_size);
        return 0;
}

/* Finds common, notify, ISR, device cfg and MSI-X through the capability
 * list, as a driver does, and checks that they lie in BAR0. */
static int walk_caps(struct pdev *d) {
        unsigned seen = 0, steps = 0;
        uint8_t at, id, type, bar;
        uint32_t v, offset, length;
        int r;

        if ((r = config_byte(d, 0x34, &at)) < 0)
                return r;
        for (at &= (uint8_t) ~3u; at != 0; at &= (uint8_t) ~3u) {
                if (at < 0x40 || ++steps > 48)
                        return log_error_errno(EPROTO, "Device %s: bad capability list at 0x%x", d->path, at);
                if ((r = config_byte(d, at, &id)) < 0)
                        return r;
                if (id == 0x11) { /* MSI-X */
                        if ((r = config_read(d, at / 4, &v)) < 0)
                                return r;
                        d->msix_cap = at;
                        d->n_vectors = ((v >> 16) & 0x7ff) + 1;
                        if ((r = config_read(d, at / 4 + 1, &v)) < 0)
                                return r;
                        if ((v & 7) != 0)
                                return log_error_errno(EPROTO, "Device %s: MSI-X table in BAR%u, not BAR0", d->path,
                                                       v & 7);
                        d->msix_table = v & ~7u;
                        seen |= 1u << 6;
                } else if (id == 0x09) { /* virtio vendor capability */
                        if ((r = config_byte(d, at + 3, &type)) < 0 || (r = config_byte(d, at + 4, &bar)) < 0 ||
                            (r = config_read(d, at / 4 + 2, &offset)) < 0 ||
                            (r = config_read(d, at / 4 + 3, &length)) < 0)
                                return r;
                        if (type >= 1 && type <= 4) {
                                if (bar != 0 || (uint64_t) offset + length > d->bar_size)
                                        return log_error_errno(EPROTO,
                                                               "Device %s: capability type %u at BAR%u+0x%x len 0x%x "
                                                               "is outside BAR0",
                                                               d->path, type, bar, offset, length);
                                seen |= 1u << type;
                        }
                        switch (type) {
                        case 1:
                                d->common = offset;
                                break;
                        case 2:
                                d->notify = offset;
                                if ((r = config_read(d, at / 4 + 4, &d->notify_mult)) < 0)
                                        return r;
                                break;
                        case 3:
                                d->isr = offset;
                                break;
                        case 4:
                                d->device = offset;
                                d->device_len = length;
                                break;
                        }
                }
                if ((r = config_byte(d, at + 1, &at)) < 0)
                        return r;
        }
        /* Device cfg is optional (virtio-rng has none). */
        if ((seen & 0x4e) != 0x4e)
                return log_error_errno(EPROTO, "Device %s: capabilities missing (found mask 0x%x, need common, notify, "
                                       "ISR and MSI-X)", d->path, seen);
        return 0;
}

static int setup_msix(struct pdev *d) {
        uint32_t control;
        int r;

        if (d->n_vectors < 1u + d->num_queues)
                return log_error_errno(EPROTO, "Device %s: %u MSI-X vectors for %u queues; need one per queue + config",
                                       d->path, d->n_vectors, d->num_queues);
        /* Vector v: any valid LAPIC message (nothing routes it: the
         * eventfds go to QEMU, which injects its own guest's message). */
        for (unsigned v = 0; v < d->n_vectors; v++) {
                uint64_t e = d->msix_table + 16ULL * v;

                if ((r = pdev_bar_write(d, e, 4, PDEV_MSI_ADDRESS)) < 0 || (r = pdev_bar_write(d, e + 4, 4, 0)) < 0 ||
                    (r = pdev_bar_write(d, e + 8, 4, 0x40 + v)) < 0 || (r = pdev_bar_write(d, e + 12, 4, 0)) < 0)
                        return r;
        }
        if ((r = config_read(d, d->msix_cap / 4, &control)) < 0)
                return r;
        control >>= 16;
        if ((r = config_write(d, d->msix_cap + 2, 2, (control | 0x8000) & ~0x4000u, NULL)) < 0)
                return r;

        struct proto_msg reply;
        if ((r = call(d, PROTO_GET_MSI_ROUTES, NULL, 0, NULL, 0, &reply)) < 0)
                return r;
        if (!reply.body.msi_routes.enabled)
                return log_error_errno(EPROTO, "Device %s: MSI-X not enabled after setting Enable in its control "
                                       "(control was 0x%04x)", d->path, control);
        for (unsigned v = 0; v < d->n_vectors && v < reply.body.msi_routes.count; v++)
                if (reply.body.msi_routes.routes[v].masked)
                        return log_error_errno(EPROTO, "Device %s: MSI-X vector %u still masked after unmasking",
                                               d->path, v);

        d->config_irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (d->config_irq_fd < 0)
                return log_error_errno(errno, "Failed to create an eventfd: %m");
        return pdev_attach(d, PROTO_FD_IRQ, 0, d->config_irq_fd);
}

int pdev_setup(struct pdev *d) {
        uint32_t id, class, sub;
        uint64_t v;
        int r;

        if ((r = call(d, PROTO_ACTIVATE, NULL, 0, NULL, 0, NULL)) < 0)
                return r;
        if ((r = config_read(d, 0, &id)) < 0 || (r = config_read(d, 2, &class)) < 0 ||
            (r = config_read(d, 11, &sub)) < 0)
                return r;
        if ((id & 0xffff) != 0x1af4 || (id >> 16) < 0x1041 || (id >> 16) > 0x107f || (class & 0xff) < 1)
                return log_error_errno(EPROTO, "Device %s: PCI id %04x:%04x revision %u is no modern virtio device",
                                       d->path, id & 0xffff, id >> 16, class & 0xff);
        d->virtio_id = (uint16_t) ((id >> 16) - 0x1040);
        if ((sub >> 16) != d->virtio_id)
                log_warning("Device %s: subsystem id %u differs from the virtio id %u", d->path, sub >> 16,
                            d->virtio_id);

        if ((r = program_bar(d)) < 0 || (r = walk_caps(d)) < 0)
                return r;
        if ((r = pdev_common_read(d, PDEV_CC_NUMQ, 2, &v)) < 0)
                return r;
        d->num_queues = (uint16_t) v;
        if (d->num_queues < 1 || d->num_queues > PDEV_MAX_QUEUES)
                return log_error_errno(EPROTO, "Device %s: num_queues %u is outside 1..%u", d->path, d->num_queues,
                                       PDEV_MAX_QUEUES);
        for (unsigned q = 0; q < d->num_queues; q++) {
                if ((r = pdev_common_write(d, PDEV_CC_Q_SELECT, 2, q)) < 0 ||
                    (r = pdev_common_read(d, PDEV_CC_Q_SIZE, 2, &v)) < 0)
                        return r;
                d->queue_max[q] = (uint16_t) v;
        }
        if ((r = pdev_common_write(d, PDEV_CC_DFSELECT, 4, 0)) < 0 || (r = pdev_common_read(d, PDEV_CC_DF, 4, &v)) < 0)
                return r;
        d->features = v;
        if ((r = pdev_common_write(d, PDEV_CC_DFSELECT, 4, 1)) < 0 || (r = pdev_common_read(d, PDEV_CC_DF, 4, &v)) < 0)
                return r;
        d->features |= v << 32;
        if ((r = setup_msix(d)) < 0)
                return r;
        log_info("Device %s: virtio id %u, %u queue(s) of %u, features 0x%llx, %u bytes of device config, %u MSI-X "
                 "vectors.",
                 d->path, d->virtio_id, d->num_queues, d->queue_max[0], (unsigned long long) d->features,
                 d->device_len, d->n_vectors);
        return 0;
}

/* The largest naturally aligned access (4, 2 or 1 bytes) at offset that
 * fits in len. */
static uint32_t access_size(uint32_t offset, uint32_t len) {
        if (offset % 4 == 0 && len >= 4)
                return 4;
        if (offset % 2 == 0 && len >= 2)
                return 2;
        return 1;
}

int pdev_device_config_read(struct pdev *d, uint32_t offset, uint32_t len, uint8_t *buf) {
        memset(buf, 0, len);
        for (uint32_t i = 0; i < len;) {
                uint32_t at = offset + i, n;
                uint64_t v;
                int r;

                if (at >= d->device_len)
                        break;
                n = access_size(at, MIN(len - i, d->device_len - at));
                r = pdev_bar_read(d, d->device + at, n, &v);
                if (r < 0)
                        return r;
                for (uint32_t k = 0; k < n; k++)
                        buf[i + k] = (uint8_t) (v >> (8 * k));
                i += n;
        }
        return 0;
}

int pdev_device_config_write(struct pdev *d, uint32_t offset, uint32_t len, const uint8_t *buf) {
        if (offset > d->device_len || len > d->device_len - offset)
                return log_error_errno(ERANGE, "Device %s: config write of %u bytes at %u is beyond its %u bytes",
                                       d->path, len, offset, d->device_len);
        for (uint32_t i = 0; i < len;) {
                uint32_t n = access_size(offset + i, len - i);
                uint64_t v = 0;
                int r;

                for (uint32_t k = 0; k < n; k++)
                        v |= (uint64_t) buf[i + k] << (8 * k);
                r = pdev_bar_write(d, d->device + offset + i, n, v);
                if (r < 0)
                        return r;
                i += n;
        }
        return 0;
}
