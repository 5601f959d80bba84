/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The launcher's side of a PCI device's direct data path, against a fake
 * virtio-like device served by a thread over a socketpair and a fake KVM
 * that records its calls: firmware BAR assignment (sizing, placement,
 * decode enable, the address map), the memfd and one eventfd per MSI-X
 * vector handed over once, ioeventfds that follow BAR moves, MSI routes
 * that follow the guest's table, and a device lying about either refused. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "address-map.h"
#include "device-datapath.h"
#include "irq-routes.h"
#include "pci-firmware.h"
#include "pci-host.h"

#include <glib.h>

#define BAR0_SIZE 0x4000u   /* 64-bit memory BAR */
#define BAR2_SIZE 0x20u     /* I/O BAR */
#define NOTIFY_OFFSET 0x3000u
#define N_QUEUES 2
#define N_VECTORS 3

struct fake {
        int sock;
        pthread_t thread;
        pthread_mutex_t lock;
        uint32_t regs[16];
        /* What it was handed. */
        unsigned n_memory, n_irq, n_ioevent;
        uint32_t irq_args[8], ioevent_args[8];
        /* What it says. */
        bool msix_enabled;
        struct proto_msi_route routes[N_VECTORS];
        bool hostile_ioevent;
};

static uint64_t bar0(const struct fake *f) {
        return (uint64_t) f->regs[5] << 32 | (f->regs[4] & ~0xfu);
}

static uint32_t bar2(const struct fake *f) {
        return f->regs[6] & ~0x3u;
}

/* A BAR decodes while its space is enabled and it holds an address (not 0,
 * not the sizing pattern). */
static void fake_ranges(const struct fake *f, struct proto_ranges *rs) {
        memset(rs, 0, sizeof(*rs));
        if ((f->regs[1] & 2) && bar0(f) != 0 && (f->regs[4] & ~0xfu) != (~(BAR0_SIZE - 1) & ~0xfu))
                rs->ranges[rs->count++] = (struct proto_range) { bar0(f), BAR0_SIZE, PROTO_BUS_MMIO };
        if ((f->regs[1] & 1) && bar2(f) != 0 && bar2(f) != (~(BAR2_SIZE - 1) & 0xfffc))
                rs->ranges[rs->count++] = (struct proto_range) { bar2(f), BAR2_SIZE, PROTO_BUS_PIO };
}

static void fake_config_write(struct fake *f, const struct proto_config_write *w, struct proto_config_result *res) {
        struct proto_ranges before, after;
        uint8_t bytes[4];
        uint32_t v;

        fake_ranges(f, &before);
        if (w->reg >= 16)
                return;
        memcpy(bytes, &f->regs[w->reg], 4);
        memcpy(bytes + w->offset, w->data, w->len);
        memcpy(&v, bytes, 4);
        switch (w->reg) {
        case 4:
                v = (v & ~(BAR0_SIZE - 1)) | 0x4;
                break;
        case 6:
                v = ((v & ~(BAR2_SIZE - 1)) & 0xffff) | 0x1;
                break;
        case 0: case 2: case 3: case 7: case 8: case 9: case 10: case 11:
                return; /* read-only here */
        }
        f->regs[w->reg] = v;
        fake_ranges(f, &after);
        for (uint32_t i = 0; i < before.count; i++) {
                bool kept = false;
                for (uint32_t j = 0; j < after.count; j++)
                        kept |= memcmp(&before.ranges[i], &after.ranges[j], sizeof(before.ranges[i])) == 0;
                if (kept)
                        continue;
                if (before.ranges[i].bus == PROTO_BUS_MMIO)
                        res->mmio_remove[res->n_mmio_remove++] = before.ranges[i];
                else
                        res->io_remove[res->n_io_remove++] = before.ranges[i];
        }
        for (uint32_t j = 0; j < after.count; j++) {
                bool had = false;
                for (uint32_t i = 0; i < before.count; i++)
                        had |= memcmp(&before.ranges[i], &after.ranges[j], sizeof(after.ranges[j])) == 0;
                if (had)
                        continue;
                if (after.ranges[j].bus == PROTO_BUS_MMIO)
                        res->mmio_add[res->n_mmio_add++] = after.ranges[j];
                else
                        res->io_add[res->n_io_add++] = after.ranges[j];
        }
}

static void *fake_loop(void *userdata) {
        struct fake *f = userdata;
        struct proto_msg m;

        while (proto_recv(f->sock, &m, -1) == 0) {
                pthread_mutex_lock(&f->lock);
                switch (m.hdr.type) {
                case PROTO_READ_CONFIG: {
                        uint32_t reg = m.body.u32.reg;
                        struct proto_u32 v = { .reg = reg, .value = reg < 16 ? f->regs[reg] : 0 };
                        g_assert_cmpint(proto_send(f->sock, PROTO_REPLY_U32, &v, sizeof(v), NULL, 0), ==, 0);
                        break;
                }
                case PROTO_WRITE_CONFIG: {
                        struct proto_config_result res = {};
                        fake_config_write(f, &m.body.config_write, &res);
                        g_assert_cmpint(proto_send(f->sock, PROTO_REPLY_CONFIG_WRITE, &res, sizeof(res), NULL, 0), ==, 0);
                        break;
                }
                case PROTO_GET_RANGES: {
                        struct proto_ranges rs;
                        fake_ranges(f, &rs);
                        g_assert_cmpint(proto_send(f->sock, PROTO_REPLY_RANGES, &rs, sizeof(rs), NULL, 0), ==, 0);
                        break;
                }
                case PROTO_ATTACH_FD: {
                        const struct proto_attach_fd *a = &m.body.attach_fd;
                        if (a->role == PROTO_FD_MEMORY)
                                f->n_memory++;
                        else if (a->role == PROTO_FD_IRQ && f->n_irq < 8)
                                f->irq_args[f->n_irq++] = a->arg;
                        else if (a->role == PROTO_FD_IOEVENT && f->n_ioevent < 8)
                                f->ioevent_args[f->n_ioevent++] = a->arg;
                        g_assert_cmpint(proto_send(f->sock, PROTO_REPLY_OK, NULL, 0, NULL, 0), ==, 0);
                        break;
                }
                case PROTO_GET_IOEVENTS: {
                        struct proto_ioevents e = {};
                        struct proto_ranges rs;

                        fake_ranges(f, &rs);
                        if (rs.count > 0 && rs.ranges[0].bus == PROTO_BUS_MMIO)
                                for (uint32_t q = 0; q < N_QUEUES; q++)
                                        e.ioevents[e.count++] = (struct proto_ioevent) {
                                                .address = bar0(f) + NOTIFY_OFFSET + 4 * q,
                                                .len = 2,
                                                .bus = PROTO_BUS_MMIO,
                                                .arg = q,
                                        };
                        if (f->hostile_ioevent) /* someone else's memory */
                                e.ioevents[e.count++] = (struct proto_ioevent) {
                                        .address = 0xfee00000, .len = 4, .bus = PROTO_BUS_MMIO, .arg = 7 };
                        g_assert_cmpint(proto_send(f->sock, PROTO_REPLY_IOEVENTS, &e, sizeof(e), NULL, 0), ==, 0);
                        break;
                }
                case PROTO_GET_MSI_ROUTES: {
                        struct proto_msi_routes r = { .count = N_VECTORS, .enabled = f->msix_enabled };
                        memcpy(r.routes, f->routes, sizeof(f->routes));
                        g_assert_cmpint(proto_send(f->sock, PROTO_REPLY_MSI_ROUTES, &r, sizeof(r), NULL, 0), ==, 0);
                        break;
                }
                case PROTO_WRITE:
                case PROTO_DESTROY_DEVICE:
                        break;
                default:
                        (void) proto_reply_error(f->sock, EOPNOTSUPP, "not in the fake");
                }
                pthread_mutex_unlock(&f->lock);
                proto_msg_done(&m);
        }
        return NULL;
}

/* KVM in miniature: what was bound where. */
struct fake_kvm {
        struct { int fd; enum proto_bus bus; uint64_t address; uint32_t len; bool assign; } io[32];
        unsigned n_io;
        struct { int fd; uint32_t gsi; } irq[8];
        unsigned n_irq;
        struct irq_route_msi routes[IRQ_ROUTES_MAX_MSI];
        size_t n_routes;
        unsigned commits;
};

static int fake_ioeventfd(void *kvm, int fd, enum proto_bus bus, uint64_t address, uint32_t len, bool assign) {
        struct fake_kvm *k = kvm;
        g_assert_cmpuint(k->n_io, <, G_N_ELEMENTS(k->io));
        k->io[k->n_io].fd = fd;
        k->io[k->n_io].bus = bus;
        k->io[k->n_io].address = address;
        k->io[k->n_io].len = len;
        k->io[k->n_io].assign = assign;
        k->n_io++;
        return 0;
}

static int fake_irqfd(void *kvm, int fd, uint32_t gsi) {
        struct fake_kvm *k = kvm;
        g_assert_cmpuint(k->n_irq, <, G_N_ELEMENTS(k->irq));
        k->irq[k->n_irq].fd = fd;
        k->irq[k->n_irq].gsi = gsi;
        k->n_irq++;
        return 0;
}

static int fake_commit(void *userdata, const struct irq_route_msi *routes, size_t n) {
        struct fake_kvm *k = userdata;
        memcpy(k->routes, routes, n * sizeof(*routes));
        k->n_routes = n;
        k->commits++;
        return 0;
}

static const struct datapath_kvm_ops fake_ops = { .ioeventfd = fake_ioeventfd, .irqfd = fake_irqfd };

struct fixture {
        struct address_map map;
        struct pci_host host;
        struct irq_routes routes;
        struct fake fake;
        struct device_proxy *d;
        struct fake_kvm kvm;
        int memfd;
};

static void setup(struct fixture *x) {
        int sv[2];

        memset(x, 0, sizeof(*x));
        address_map_init(&x->map);
        pci_host_init(&x->host, &x->map);
        irq_routes_init(&x->routes);
        pthread_mutex_init(&x->fake.lock, NULL);
        x->fake.regs[0] = 0x10441af4;
        x->fake.regs[2] = 0x00ff0001;
        x->fake.regs[4] = 0x4; /* 64-bit memory BAR */
        x->fake.regs[6] = 0x1; /* I/O BAR */
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
        x->fake.sock = sv[1];
        g_assert_cmpint(pthread_create(&x->fake.thread, NULL, fake_loop, &x->fake), ==, 0);
        g_assert_cmpint(device_proxy_new("fake-virtio", "/fake", 1, sv[0], &x->d), ==, 0);
        g_assert_cmpint(device_proxy_set_timeout(x->d, 1000), ==, 0);
        g_assert_cmpint(pci_host_probe_device(&x->host, x->d), ==, 1);
        x->memfd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* stands in for the guest memfd */
        g_assert_cmpint(x->memfd, >=, 0);
}

static void teardown(struct fixture *x, struct device_datapath *dp) {
        device_datapath_free(dp);
        device_proxy_free(x->d);
        g_assert_cmpint(pthread_join(x->fake.thread, NULL), ==, 0);
        close(x->fake.sock);
        close(x->memfd);
        irq_routes_done(&x->routes);
        address_map_done(&x->map);
}

static void test_firmware_sizes_places_and_enables_bars(void) {
        struct fixture x;
        struct address_map_entry e;
        char err[256] = "";

        setup(&x);
        g_assert_cmpint(pci_firmware_assign(&x.host, err, sizeof(err)), ==, 0);
        g_assert_cmpstr(err, ==, "");
        /* Memory from the bottom of the hole, I/O from 0xC000, both decoding. */
        g_assert_cmphex(bar0(&x.fake), ==, PCI_FIRMWARE_MMIO_START);
        g_assert_cmphex(x.fake.regs[4] & 0xf, ==, 0x4);
        g_assert_cmphex(bar2(&x.fake), ==, PCI_FIRMWARE_IO_START);
        g_assert_cmphex(x.fake.regs[1] & 3, ==, 3);
        g_assert_true(address_map_lookup(&x.map, PROTO_BUS_MMIO, PCI_FIRMWARE_MMIO_START + BAR0_SIZE - 4, 4, &e));
        g_assert_true(e.device == x.d);
        g_assert_false(address_map_lookup(&x.map, PROTO_BUS_MMIO, PCI_FIRMWARE_MMIO_START + BAR0_SIZE, 4, &e));
        g_assert_true(address_map_lookup(&x.map, PROTO_BUS_PIO, PCI_FIRMWARE_IO_START, 1, &e));
        /* A second start assigns the same again, without overlaps. */
        g_assert_cmpint(pci_firmware_assign(&x.host, err, sizeof(err)), ==, 0);
        g_assert_cmphex(bar0(&x.fake), ==, PCI_FIRMWARE_MMIO_START);
        g_assert_true(address_map_lookup(&x.map, PROTO_BUS_MMIO, PCI_FIRMWARE_MMIO_START, 4, &e));
        teardown(&x, NULL);
}

static void test_datapath_hands_over_memory_and_vectors_once(void) {
        struct fixture x;
        struct device_datapath *dp = NULL;
        char err[256];

        setup(&x);
        g_assert_cmpint(device_datapath_new(x.d, x.memfd, &x.map, &x.routes, &dp), ==, 0);
        g_assert_true(x.d->datapath == dp);
        g_assert_cmpuint(x.fake.n_memory, ==, 1);
        g_assert_cmpuint(x.fake.n_irq, ==, N_VECTORS);
        for (unsigned i = 0; i < N_VECTORS; i++) {
                g_assert_cmpuint(x.fake.irq_args[i], ==, i);
                g_assert_cmpuint(dp->vectors[i].gsi, ==, IRQ_ROUTES_IOAPIC_PINS + i);
        }

        /* Start: irqfds per vector, ioeventfds at the notify registers. */
        g_assert_cmpint(irq_routes_bind(&x.routes, fake_commit, &x.kvm), ==, 0);
        g_assert_cmpint(pci_firmware_assign(&x.host, err, sizeof(err)), ==, 0);
        g_assert_cmpint(device_datapath_bind(dp, &fake_ops, &x.kvm), ==, 0);
        g_assert_cmpuint(x.kvm.n_irq, ==, N_VECTORS);
        g_assert_cmpuint(x.kvm.irq[2].gsi, ==, IRQ_ROUTES_IOAPIC_PINS + 2);
        g_assert_cmpuint(x.fake.n_ioevent, ==, N_QUEUES);
        g_assert_cmpuint(x.kvm.n_io, ==, N_QUEUES);
        for (unsigned q = 0; q < N_QUEUES; q++) {
                g_assert_true(x.kvm.io[q].assign);
                g_assert_cmphex(x.kvm.io[q].address, ==, PCI_FIRMWARE_MMIO_START + NOTIFY_OFFSET + 4 * q);
                g_assert_cmpuint(x.kvm.io[q].len, ==, 2);
                g_assert_cmpint(x.kvm.io[q].fd, ==, dp->ioevents[q].fd);
        }

        /* A restart binds the same fds again and hands the device nothing new. */
        device_datapath_unbind(dp);
        irq_routes_unbind(&x.routes);
        memset(&x.kvm, 0, sizeof(x.kvm));
        g_assert_cmpint(irq_routes_bind(&x.routes, fake_commit, &x.kvm), ==, 0);
        g_assert_cmpint(pci_firmware_assign(&x.host, err, sizeof(err)), ==, 0);
        g_assert_cmpint(device_datapath_bind(dp, &fake_ops, &x.kvm), ==, 0);
        g_assert_cmpuint(x.kvm.n_irq, ==, N_VECTORS);
        g_assert_cmpuint(x.fake.n_ioevent, ==, N_QUEUES);
        g_assert_cmpuint(x.fake.n_memory, ==, 1);
        g_assert_cmpuint(x.fake.n_irq, ==, N_VECTORS);
        teardown(&x, dp);
}

static void test_ioeventfds_follow_a_bar_move(void) {
        struct fixture x;
        struct device_datapath *dp = NULL;
        const uint64_t moved = 0xd0000000;
        char err[256];
        unsigned n;

        setup(&x);
        g_assert_cmpint(device_datapath_new(x.d, x.memfd, &x.map, &x.routes, &dp), ==, 0);
        g_assert_cmpint(pci_firmware_assign(&x.host, err, sizeof(err)), ==, 0);
        g_assert_cmpint(device_datapath_bind(dp, &fake_ops, &x.kvm), ==, 0);
        n = x.kvm.n_io;

        /* The guest moves BAR0 as Linux may: low dword through CONFIG_DATA. */
        pci_host_config_write(&x.host, 1, 4, (uint32_t) moved | 0x4);
        g_assert_cmpuint(x.kvm.n_io, ==, n + 2 * N_QUEUES);
        for (unsigned q = 0; q < N_QUEUES; q++) {
                g_assert_false(x.kvm.io[n + 2 * q].assign);
                g_assert_cmphex(x.kvm.io[n + 2 * q].address, ==, PCI_FIRMWARE_MMIO_START + NOTIFY_OFFSET + 4 * q);
                g_assert_true(x.kvm.io[n + 2 * q + 1].assign);
                g_assert_cmphex(x.kvm.io[n + 2 * q + 1].address, ==, moved + NOTIFY_OFFSET + 4 * q);
        }
        /* Decoding off: the BAR is gone, and so are its ioeventfds. */
        n = x.kvm.n_io;
        pci_host_config_write(&x.host, 1, 1, 0);
        g_assert_cmpuint(x.kvm.n_io, ==, n + N_QUEUES);
        for (unsigned q = 0; q < N_QUEUES; q++)
                g_assert_false(x.kvm.io[n + q].assign);
        g_assert_cmpuint(x.fake.n_ioevent, ==, N_QUEUES); /* the same eventfds throughout */
        teardown(&x, dp);
}

static void test_ioevent_outside_the_devices_ranges_is_refused(void) {
        struct fixture x;
        struct device_datapath *dp = NULL;
        char err[256];

        setup(&x);
        x.fake.hostile_ioevent = true;
        g_assert_cmpint(device_datapath_new(x.d, x.memfd, &x.map, &x.routes, &dp), ==, 0);
        g_assert_cmpint(pci_firmware_assign(&x.host, err, sizeof(err)), ==, 0);
        g_assert_cmpint(device_datapath_bind(dp, &fake_ops, &x.kvm), ==, 0);
        g_assert_cmpuint(x.kvm.n_io, ==, N_QUEUES);
        for (unsigned i = 0; i < x.kvm.n_io; i++)
                g_assert_cmphex(x.kvm.io[i].address, !=, 0xfee00000);
        g_assert_cmpuint(x.fake.n_ioevent, ==, N_QUEUES); /* no fd handed out for it either */
        teardown(&x, dp);
}

static void test_msi_routes_follow_the_guests_table(void) {
        struct fixture x;
        struct device_datapath *dp = NULL;
        char err[256];

        setup(&x);
        g_assert_cmpint(device_datapath_new(x.d, x.memfd, &x.map, &x.routes, &dp), ==, 0);
        g_assert_cmpint(irq_routes_bind(&x.routes, fake_commit, &x.kvm), ==, 0);
        g_assert_cmpint(pci_firmware_assign(&x.host, err, sizeof(err)), ==, 0);
        g_assert_cmpint(device_datapath_bind(dp, &fake_ops, &x.kvm), ==, 0);
        g_assert_cmpuint(x.kvm.n_routes, ==, 0); /* MSI-X off: nothing routed */

        /* The guest programs vectors 0 and 2, then enables MSI-X. */
        pthread_mutex_lock(&x.fake.lock);
        x.fake.routes[0] = (struct proto_msi_route) { .address = 0xfee00000, .data = 0x4041 };
        x.fake.routes[2] = (struct proto_msi_route) { .address = 0xfee01000, .data = 0x4043 };
        x.fake.msix_enabled = true;
        pthread_mutex_unlock(&x.fake.lock);
        device_datapath_refresh(dp, false);
        g_assert_cmpuint(x.kvm.n_routes, ==, 2);
        g_assert_cmpuint(x.kvm.routes[0].gsi, ==, IRQ_ROUTES_IOAPIC_PINS);
        g_assert_cmphex(x.kvm.routes[0].data, ==, 0x4041);
        g_assert_cmpuint(x.kvm.routes[1].gsi, ==, IRQ_ROUTES_IOAPIC_PINS + 2);
        g_assert_cmphex(x.kvm.routes[1].address, ==, 0xfee01000);

        /* Nothing changed: no commit. */
        {
                unsigned commits = x.kvm.commits;
                device_datapath_refresh(dp, false);
                g_assert_cmpuint(x.kvm.commits, ==, commits);
        }

        /* A message outside the LAPIC window would be a DMA write: refused. */
        pthread_mutex_lock(&x.fake.lock);
        x.fake.routes[0].address = 0x1000;
        pthread_mutex_unlock(&x.fake.lock);
        device_datapath_refresh(dp, false);
        g_assert_cmpuint(x.kvm.n_routes, ==, 1);
        g_assert_cmpuint(x.kvm.routes[0].gsi, ==, IRQ_ROUTES_IOAPIC_PINS + 2);

        /* MSI-X off again: no routes. */
        pthread_mutex_lock(&x.fake.lock);
        x.fake.msix_enabled = false;
        pthread_mutex_unlock(&x.fake.lock);
        device_datapath_refresh(dp, false);
        g_assert_cmpuint(x.kvm.n_routes, ==, 0);
        teardown(&x, dp);
}

static void test_irq_routes_alloc_set_and_bind(void) {
        struct irq_routes r;
        struct fake_kvm k = {};
        uint32_t gsi;

        irq_routes_init(&r);
        g_assert_cmpint(irq_routes_set(&r, IRQ_ROUTES_IOAPIC_PINS, true, 0xfee00000, 1), ==, -EINVAL); /* not handed out */
        g_assert_cmpint(irq_routes_alloc(&r, &gsi), ==, 0);
        g_assert_cmpuint(gsi, ==, IRQ_ROUTES_IOAPIC_PINS);
        g_assert_cmpint(irq_routes_set(&r, 5, true, 0xfee00000, 1), ==, -EINVAL); /* an IOAPIC pin */
        g_assert_cmpint(irq_routes_set(&r, gsi, true, 0xfec00000, 1), ==, -EINVAL); /* the IOAPIC */
        g_assert_cmpint(irq_routes_set(&r, gsi, true, 0x1fee00000ULL, 1), ==, -EINVAL);
        /* Unbound: kept, committed at bind. */
        g_assert_cmpint(irq_routes_set(&r, gsi, true, 0xfee00000, 0x41), ==, 0);
        g_assert_cmpuint(k.commits, ==, 0);
        g_assert_cmpint(irq_routes_bind(&r, fake_commit, &k), ==, 0);
        g_assert_cmpuint(k.commits, ==, 1);
        g_assert_cmpuint(k.n_routes, ==, 1);
        g_assert_cmphex(k.routes[0].data, ==, 0x41);
        irq_routes_unbind(&r);
        g_assert_cmpint(irq_routes_set(&r, gsi, false, 0, 0), ==, 0);
        g_assert_cmpuint(k.commits, ==, 1);
        for (unsigned i = 1; i < IRQ_ROUTES_MAX_MSI; i++)
                g_assert_cmpint(irq_routes_alloc(&r, &gsi), ==, 0);
        g_assert_cmpint(irq_routes_alloc(&r, &gsi), ==, -ENOSPC);
        irq_routes_done(&r);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/pci-datapath/firmware-sizes-places-and-enables-bars",
                        test_firmware_sizes_places_and_enables_bars);
        g_test_add_func("/pci-datapath/hands-over-memory-and-vectors-once",
                        test_datapath_hands_over_memory_and_vectors_once);
        g_test_add_func("/pci-datapath/ioeventfds-follow-a-bar-move", test_ioeventfds_follow_a_bar_move);
        g_test_add_func("/pci-datapath/ioevent-outside-the-devices-ranges-is-refused",
                        test_ioevent_outside_the_devices_ranges_is_refused);
        g_test_add_func("/pci-datapath/msi-routes-follow-the-guests-table", test_msi_routes_follow_the_guests_table);
        g_test_add_func("/pci-datapath/irq-routes-alloc-set-and-bind", test_irq_routes_alloc_set_and_bind);
        return g_test_run();
}
