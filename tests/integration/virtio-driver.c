/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "virtio-driver.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"
#define TIMEOUT_MS 2000

/* Common cfg offsets (virtio 1.2 4.1.4.3). */
#define CC_DFSELECT 0x00
#define CC_DF 0x04
#define CC_GFSELECT 0x08
#define CC_GF 0x0c
#define CC_STATUS 0x14
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE 0x18
#define CC_Q_MSIX 0x1a
#define CC_Q_ENABLE 0x1c
#define CC_Q_NOFF 0x1e
#define CC_Q_DESC 0x20
#define CC_Q_DRIVER 0x28
#define CC_Q_DEVICE 0x30

int vdrv_create_device(struct harness *h, const char *kind, const char *config, char **path, pid_t *pid) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *p;
        uint32_t upid;
        int efd, fd, r;

        r = sd_bus_call_method(h->bus, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &error, &reply, "sss", "vm1",
                               kind, config);
        if (r < 0)
                g_error("CreateDevice(%s, %s) failed: %s: %s", kind, config, error.name, error.message);
        g_assert_cmpint(sd_bus_message_read(reply, "ohu", &p, &efd, &upid), >=, 0);
        *path = g_strdup(p);
        fd = fcntl(efd, F_DUPFD_CLOEXEC, 3); /* the message owns efd */
        g_assert_cmpint(fd, >=, 0);
        *pid = (pid_t) upid;
        sd_bus_message_unref(reply);
        return fd;
}

uint32_t vdrv_config_read(struct vdrv *d, uint32_t reg) {
        struct proto_u32 u = { .reg = reg };
        struct proto_msg reply;

        g_assert_cmpint(proto_call(d->ep, PROTO_READ_CONFIG, &u, sizeof(u), NULL, 0, &reply, TIMEOUT_MS, NULL, 0), ==,
                        0);
        return reply.body.u32.value;
}

static uint8_t config_byte(struct vdrv *d, uint32_t at) {
        return (uint8_t) (vdrv_config_read(d, at / 4) >> (8 * (at % 4)));
}

void vdrv_config_write(struct vdrv *d, uint32_t at, uint32_t len, uint32_t value, struct proto_config_result *res) {
        struct proto_config_write w = { .reg = at / 4, .offset = at % 4, .len = len };
        struct proto_msg reply;

        g_assert_cmpuint(at % 4 + len, <=, 4);
        for (uint32_t i = 0; i < len; i++)
                w.data[i] = (uint8_t) (value >> (8 * i));
        g_assert_cmpint(proto_call(d->ep, PROTO_WRITE_CONFIG, &w, sizeof(w), NULL, 0, &reply, TIMEOUT_MS, NULL, 0), ==,
                        0);
        if (res)
                *res = reply.body.config_result;
}

uint64_t vdrv_bar_read(struct vdrv *d, uint64_t offset, uint32_t len) {
        struct proto_access a = { .address = d->bar + offset, .offset = offset, .len = len };
        struct proto_msg reply;
        uint64_t v = 0;

        g_assert_cmpint(proto_call(d->ep, PROTO_READ, &a, sizeof(a), NULL, 0, &reply, TIMEOUT_MS, NULL, 0), ==, 0);
        g_assert_cmpuint(reply.body.data.len, ==, len);
        for (uint32_t i = 0; i < len; i++)
                v |= (uint64_t) reply.body.data.data[i] << (8 * i);
        return v;
}

void vdrv_bar_write(struct vdrv *d, uint64_t offset, uint32_t len, uint64_t value) {
        struct proto_access a = { .address = d->bar + offset, .offset = offset, .len = len };

        for (uint32_t i = 0; i < len; i++)
                a.data[i] = (uint8_t) (value >> (8 * i));
        g_assert_cmpint(proto_send(d->ep, PROTO_WRITE, &a, sizeof(a), NULL, 0), ==, 0);
}

uint64_t vdrv_common_read(struct vdrv *d, uint32_t offset, uint32_t len) {
        return vdrv_bar_read(d, d->common + offset, len);
}

void vdrv_common_write(struct vdrv *d, uint32_t offset, uint32_t len, uint64_t value) {
        vdrv_bar_write(d, d->common + offset, len, value);
}

static void attach(struct vdrv *d, uint32_t role, uint32_t arg, int fd) {
        struct proto_attach_fd f = { .role = role, .arg = arg };
        char err[PROTO_ERROR_MAX] = "";
        int r = proto_call(d->ep, PROTO_ATTACH_FD, &f, sizeof(f), &fd, 1, NULL, TIMEOUT_MS, err, sizeof(err));

        if (r < 0)
                g_error("AttachFd(role %u, arg %u) failed: %s: %s", role, arg, strerror(-r), err);
}

/* Sizes BAR0 with decode off (as firmware does), programs it, then turns
 * on memory decode and bus mastering: exactly one range appears. */
static void program_bar(struct vdrv *d) {
        struct proto_config_result res;
        uint64_t mask;
        uint32_t lo;

        lo = vdrv_config_read(d, 4);
        g_assert_cmphex(lo & 0x7, ==, 0x4); /* memory, 64-bit */
        vdrv_config_write(d, 0x10, 4, UINT32_MAX, &res);
        g_assert_cmpuint(res.n_mmio_add + res.n_mmio_remove, ==, 0);
        vdrv_config_write(d, 0x14, 4, UINT32_MAX, NULL);
        mask = ((uint64_t) vdrv_config_read(d, 5) << 32) | (vdrv_config_read(d, 4) & ~0xfu);
        d->bar_size = ~mask + 1;
        g_assert_cmpuint(d->bar_size, >=, 0x1000);
        g_assert_cmpuint(d->bar_size & (d->bar_size - 1), ==, 0);

        vdrv_config_write(d, 0x10, 4, (uint32_t) VDRV_BAR_ADDRESS, NULL);
        vdrv_config_write(d, 0x14, 4, (uint32_t) (VDRV_BAR_ADDRESS >> 32), &res);
        g_assert_cmpuint(res.n_mmio_add + res.n_mmio_remove, ==, 0);

        vdrv_config_write(d, 0x04, 2, 0x6, &res); /* memory space, bus master */
        g_assert_cmpuint(res.n_mmio_remove, ==, 0);
        g_assert_cmpuint(res.n_mmio_add, ==, 1);
        g_assert_cmphex(res.mmio_add[0].base, ==, VDRV_BAR_ADDRESS);
        g_assert_cmpuint(res.mmio_add[0].len, ==, d->bar_size);
        g_assert_cmpuint(res.mmio_add[0].bus, ==, PROTO_BUS_MMIO);
        d->bar = VDRV_BAR_ADDRESS;
}

static void walk_caps(struct vdrv *d) {
        unsigned seen = 0, steps = 0;

        g_assert_true((vdrv_config_read(d, 1) >> 16) & 0x10); /* capabilities list */
        for (uint32_t at = config_byte(d, 0x34) & ~3u; at != 0; at = config_byte(d, at + 1) & ~3u) {
                uint8_t id = config_byte(d, at);

                g_assert_cmpuint(at, >=, 0x40);
                g_assert_cmpuint(++steps, <, 48);
                if (id == 0x11) {
                        uint32_t table = vdrv_config_read(d, at / 4 + 1), pba = vdrv_config_read(d, at / 4 + 2);

                        d->msix_cap = at;
                        d->n_vectors = (vdrv_config_read(d, at / 4) >> 16 & 0x7ff) + 1;
                        g_assert_cmpuint(table & 7, ==, 0); /* BIR 0 */
                        g_assert_cmpuint(pba & 7, ==, 0);
                        d->msix_table = table & ~7u;
                        d->msix_pba = pba & ~7u;
                        seen |= 1u << 6;
                        continue;
                }
                if (id != 0x09)
                        continue;
                uint8_t type = config_byte(d, at + 3), bar = config_byte(d, at + 4);
                uint32_t offset = vdrv_config_read(d, at / 4 + 2), length = vdrv_config_read(d, at / 4 + 3);

                g_assert_cmpuint(config_byte(d, at + 2), >=, 16);
                if (type == 5) { /* PCI cfg access: its fields are the driver's */
                        d->pci_cfg_cap = at;
                        seen |= 1u << 5;
                        continue;
                }
                g_assert_cmpuint(bar, ==, 0);
                g_assert_cmpuint((uint64_t) offset + length, <=, d->bar_size);
                switch (type) {
                case 1:
                        g_assert_cmpuint(length, >=, 0x38);
                        d->common = offset;
                        break;
                case 2:
                        d->notify = offset;
                        d->notify_len = length;
                        d->notify_mult = vdrv_config_read(d, at / 4 + 4);
                        break;
                case 3:
                        d->isr = offset;
                        break;
                case 4:
                        d->device = offset;
                        d->device_len = length;
                        break;
                default:
                        continue;
                }
                seen |= 1u << type;
        }
        /* Common, notify, ISR, PCI cfg and MSI-X are mandatory here. */
        g_assert_cmphex(seen & 0x6e, ==, 0x6e);
}

void vdrv_init(struct vdrv *d, int ep, uint16_t virtio_id, uint64_t ram_size) {
        int memfd = memfd_create("guest-ram", MFD_CLOEXEC);
        void *ram;

        g_assert_cmpint(memfd, >=, 0);
        g_assert_cmpint(ftruncate(memfd, (off_t) ram_size), ==, 0);
        ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        g_assert_true(ram != MAP_FAILED);
        vdrv_init_with_ram(d, ep, virtio_id, memfd, ram, ram_size);
}

void vdrv_init_with_ram(struct vdrv *d, int ep, uint16_t virtio_id, int memfd, void *ram, uint64_t ram_size) {
        uint32_t id, class, sub;

        memset(d, 0, sizeof(*d));
        d->ep = ep;
        d->intx_fd = -1;
        for (unsigned i = 0; i < VDRV_MAX_QUEUES; i++)
                d->ioevent_fds[i] = -1;
        for (unsigned i = 0; i < VDRV_MAX_VECTORS; i++)
                d->irq_fds[i] = -1;
        g_assert_cmpint(proto_call(ep, PROTO_ACTIVATE, NULL, 0, NULL, 0, NULL, TIMEOUT_MS, NULL, 0), ==, 0);

        id = vdrv_config_read(d, 0);
        g_assert_cmphex(id & 0xffff, ==, 0x1af4);
        g_assert_cmphex(id >> 16, ==, 0x1040 + virtio_id);
        class = vdrv_config_read(d, 2);
        g_assert_cmphex(class & 0xff, ==, 1); /* revision 1: modern */
        sub = vdrv_config_read(d, 11);
        g_assert_cmphex(sub & 0xffff, ==, 0x1af4);
        g_assert_cmphex(sub >> 16, ==, virtio_id);
        g_assert_cmphex((vdrv_config_read(d, 3) >> 16) & 0x7f, ==, 0); /* header type 0 */

        program_bar(d);
        walk_caps(d);
        d->num_queues = (uint16_t) vdrv_common_read(d, 0x12, 2);
        g_assert_cmpuint(d->num_queues, >=, 1);
        g_assert_cmpuint(d->num_queues, <=, VDRV_MAX_QUEUES);
        g_assert_cmpuint(d->n_vectors, ==, d->num_queues + 1u);
        for (unsigned q = 0; q < d->num_queues; q++) {
                vdrv_common_write(d, CC_Q_SELECT, 2, q);
                d->notify_off[q] = (uint16_t) vdrv_common_read(d, CC_Q_NOFF, 2);
                g_assert_cmpuint((uint64_t) d->notify_off[q] * d->notify_mult + 2, <=, d->notify_len);
        }

        d->ram_size = ram_size;
        d->memfd = memfd;
        d->ram = ram;
        d->alloc_next = 0x100000; /* leave low memory alone, as a guest would */
        attach(d, PROTO_FD_MEMORY, 0, d->memfd);
}

void vdrv_done(struct vdrv *d) {
        for (unsigned i = 0; i < VDRV_MAX_QUEUES; i++)
                if (d->ioevent_fds[i] >= 0)
                        close(d->ioevent_fds[i]);
        for (unsigned i = 0; i < VDRV_MAX_VECTORS; i++)
                if (d->irq_fds[i] >= 0)
                        close(d->irq_fds[i]);
        if (d->intx_fd >= 0)
                close(d->intx_fd);
        if (d->ram)
                munmap(d->ram, d->ram_size);
        if (d->memfd >= 0)
                close(d->memfd);
        memset(d, 0, sizeof(*d));
}

void vdrv_setup_ioevents(struct vdrv *d) {
        struct proto_msg reply;
        const struct proto_ioevents *e = &reply.body.ioevents;

        g_assert_cmpint(proto_call(d->ep, PROTO_GET_IOEVENTS, NULL, 0, NULL, 0, &reply, TIMEOUT_MS, NULL, 0), ==, 0);
        g_assert_cmpuint(e->count, ==, d->num_queues);
        for (unsigned i = 0; i < e->count; i++) {
                unsigned q = e->ioevents[i].arg;

                g_assert_cmpuint(q, <, d->num_queues);
                g_assert_cmpuint(e->ioevents[i].bus, ==, PROTO_BUS_MMIO);
                g_assert_cmphex(e->ioevents[i].address, ==,
                                d->bar + d->notify + (uint64_t) d->notify_off[q] * d->notify_mult);
                if (d->ioevent_fds[q] >= 0)
                        close(d->ioevent_fds[q]);
                d->ioevent_fds[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                g_assert_cmpint(d->ioevent_fds[q], >=, 0);
                attach(d, PROTO_FD_IOEVENT, q, d->ioevent_fds[q]);
        }
}

void vdrv_setup_msix(struct vdrv *d) {
        struct proto_msg reply;
        const struct proto_msi_routes *r = &reply.body.msi_routes;
        uint32_t control;

        for (unsigned v = 0; v < d->n_vectors; v++) {
                uint64_t e = d->msix_table + 16 * v;

                vdrv_bar_write(d, e, 4, (uint32_t) (VDRV_MSI_ADDRESS | v << 12));
                vdrv_bar_write(d, e + 4, 4, 0);
                vdrv_bar_write(d, e + 8, 4, 0x40 + v);
                vdrv_bar_write(d, e + 12, 4, 0); /* unmask */
        }
        control = vdrv_config_read(d, d->msix_cap / 4) >> 16;
        vdrv_config_write(d, d->msix_cap + 2, 2, (control | 0x8000) & ~0x4000u, NULL);

        g_assert_cmpint(proto_call(d->ep, PROTO_GET_MSI_ROUTES, NULL, 0, NULL, 0, &reply, TIMEOUT_MS, NULL, 0), ==,
                        0);
        g_assert_cmpuint(r->count, ==, d->n_vectors);
        g_assert_cmpuint(r->enabled, ==, 1);
        for (unsigned v = 0; v < d->n_vectors; v++) {
                g_assert_cmphex(r->routes[v].address, ==, VDRV_MSI_ADDRESS | v << 12);
                g_assert_cmphex(r->routes[v].data, ==, 0x40 + v);
                g_assert_cmpuint(r->routes[v].masked, ==, 0);
                if (d->irq_fds[v] < 0) {
                        d->irq_fds[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                        g_assert_cmpint(d->irq_fds[v], >=, 0);
                }
                attach(d, PROTO_FD_IRQ, v, d->irq_fds[v]);
        }
}

void vdrv_setup_intx(struct vdrv *d) {
        if (d->intx_fd < 0) {
                d->intx_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                g_assert_cmpint(d->intx_fd, >=, 0);
        }
        attach(d, PROTO_FD_IRQ, PROTO_IRQ_INTX, d->intx_fd);
}

uint64_t vdrv_alloc(struct vdrv *d, uint64_t size, uint64_t align) {
        uint64_t a = (d->alloc_next + align - 1) & ~(align - 1);

        g_assert_cmpuint(a + size, <=, d->ram_size);
        d->alloc_next = a + size;
        memset(d->ram + a, 0, size);
        return a;
}

void *vdrv_ptr(struct vdrv *d, uint64_t gpa) {
        g_assert_cmpuint(gpa, <, d->ram_size);
        return d->ram + gpa;
}

uint8_t vdrv_status(struct vdrv *d) {
        return (uint8_t) vdrv_common_read(d, CC_STATUS, 1);
}

void vdrv_reset(struct vdrv *d) {
        vdrv_common_write(d, CC_STATUS, 1, 0);
        g_assert_cmpuint(vdrv_status(d), ==, 0);
        memset(d->queues, 0, sizeof(d->queues));
}

uint64_t vdrv_device_features(struct vdrv *d) {
        uint64_t f;

        vdrv_common_write(d, CC_DFSELECT, 4, 0);
        f = vdrv_common_read(d, CC_DF, 4);
        vdrv_common_write(d, CC_DFSELECT, 4, 1);
        return f | vdrv_common_read(d, CC_DF, 4) << 32;
}

uint8_t vdrv_negotiate(struct vdrv *d, uint64_t features) {
        vdrv_reset(d);
        vdrv_common_write(d, CC_STATUS, 1, 0x01);
        vdrv_common_write(d, CC_STATUS, 1, 0x03);
        (void) vdrv_device_features(d);
        vdrv_common_write(d, CC_GFSELECT, 4, 0);
        vdrv_common_write(d, CC_GF, 4, (uint32_t) features);
        vdrv_common_write(d, CC_GFSELECT, 4, 1);
        vdrv_common_write(d, CC_GF, 4, (uint32_t) (features >> 32));
        vdrv_common_write(d, CC_STATUS, 1, 0x0b);
        return vdrv_status(d);
}

struct vdrv_queue *vdrv_queue_setup(struct vdrv *d, unsigned q, uint16_t size, uint16_t vector) {
        struct vdrv_queue *vq = &d->queues[q];

        g_assert_cmpuint(q, <, d->num_queues);
        vdrv_common_write(d, CC_Q_SELECT, 2, q);
        g_assert_cmpuint(vdrv_common_read(d, CC_Q_SIZE, 2), >=, size);
        *vq = (struct vdrv_queue) { .index = q, .size = size };
        vq->desc = vdrv_alloc(d, 16u * size, 4096);
        vq->avail = vdrv_alloc(d, 6 + 2u * size, 4096);
        vq->used = vdrv_alloc(d, 6 + 8u * size, 4096);
        vdrv_common_write(d, CC_Q_SIZE, 2, size);
        vdrv_common_write(d, CC_Q_MSIX, 2, vector);
        g_assert_cmpuint(vdrv_common_read(d, CC_Q_MSIX, 2), ==, vector);
        /* 64-bit addresses as two 32-bit halves, as Linux writes them. */
        vdrv_common_write(d, CC_Q_DESC, 4, (uint32_t) vq->desc);
        vdrv_common_write(d, CC_Q_DESC + 4, 4, vq->desc >> 32);
        vdrv_common_write(d, CC_Q_DRIVER, 8, vq->avail);
        vdrv_common_write(d, CC_Q_DEVICE, 8, vq->used);
        vdrv_common_write(d, CC_Q_ENABLE, 2, 1);
        g_assert_cmpuint(vdrv_common_read(d, CC_Q_ENABLE, 2), ==, 1);
        g_assert_cmphex(vdrv_common_read(d, CC_Q_DESC, 8), ==, vq->desc);
        return vq;
}

void vdrv_driver_ok(struct vdrv *d) {
        vdrv_common_write(d, CC_STATUS, 1, vdrv_status(d) | 0x04);
}

uint16_t vdrv_queue_add(struct vdrv *d, struct vdrv_queue *q, const struct vdrv_buf *bufs, unsigned n) {
        uint8_t *desc = vdrv_ptr(d, q->desc), *avail = vdrv_ptr(d, q->avail);
        uint16_t head = q->next_desc, idx;

        g_assert_cmpuint(n, >=, 1);
        g_assert_cmpuint(n, <=, q->size);
        for (unsigned i = 0; i < n; i++) {
                uint16_t this = (uint16_t) ((head + i) % q->size), next = (uint16_t) ((head + i + 1) % q->size);
                uint16_t flags = (uint16_t) ((i + 1 < n ? 1 : 0) | (bufs[i].writable ? 2 : 0));
                uint8_t *e = desc + 16u * this;

                memcpy(e, &bufs[i].addr, 8);
                memcpy(e + 8, &bufs[i].len, 4);
                memcpy(e + 12, &flags, 2);
                memcpy(e + 14, &next, 2);
        }
        q->next_desc = (uint16_t) ((head + n) % q->size);
        memcpy(avail + 4 + 2u * (q->avail_idx % q->size), &head, 2);
        idx = ++q->avail_idx;
        __atomic_store_n((uint16_t *) (avail + 2), idx, __ATOMIC_RELEASE);
        return head;
}

void vdrv_kick(struct vdrv *d, unsigned q) {
        uint64_t one = 1;

        g_assert_cmpint(d->ioevent_fds[q], >=, 0);
        g_assert_cmpint(write(d->ioevent_fds[q], &one, sizeof(one)), ==, sizeof(one));
}

void vdrv_kick_trapped(struct vdrv *d, unsigned q) {
        vdrv_bar_write(d, d->notify + (uint64_t) d->notify_off[q] * d->notify_mult, 2, q);
}

static bool wait_fd(int fd, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        uint64_t v;

        if (poll(&p, 1, timeout_ms) != 1)
                return false;
        return read(fd, &v, sizeof(v)) == sizeof(v);
}

bool vdrv_wait_irq(struct vdrv *d, unsigned v, int timeout_ms) {
        g_assert_cmpuint(v, <, VDRV_MAX_VECTORS);
        g_assert_cmpint(d->irq_fds[v], >=, 0);
        return wait_fd(d->irq_fds[v], timeout_ms);
}

bool vdrv_wait_intx(struct vdrv *d, int timeout_ms) {
        g_assert_cmpint(d->intx_fd, >=, 0);
        return wait_fd(d->intx_fd, timeout_ms);
}

bool vdrv_queue_used(struct vdrv *d, struct vdrv_queue *q, uint32_t *id, uint32_t *len) {
        uint8_t *used = vdrv_ptr(d, q->used);
        uint16_t idx = __atomic_load_n((uint16_t *) (used + 2), __ATOMIC_ACQUIRE);
        uint8_t *e;

        if (idx == q->last_used)
                return false;
        e = used + 4 + 8u * (q->last_used % q->size);
        memcpy(id, e, 4);
        memcpy(len, e + 4, 4);
        q->last_used++;
        return true;
}
