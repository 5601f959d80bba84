/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The launcher's PCI host bridge (configuration mechanism #1) driven
 * through its port handler, as a guest would, with fake PCI devices served
 * by a thread on the other end of a socketpair: the bridge's own ids, absent
 * slots, byte/word/dword CONFIG_DATA accesses, the CONFIG_ADDRESS latch, a
 * BAR move reaching the address map, a failed device, and the 0xCF9 reset
 * register split with pm.c. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "address-map.h"
#include "layout.h"
#include "pci-host.h"
#include "pm.h"

#include <glib.h>

#define FAKE_REGS 16
#define FAKE_BAR_REG 4
#define FAKE_BAR_SIZE 0x10

/* A device process in miniature: config registers, and an I/O BAR in
 * register 4 that, once written non-zero, is its one range. */
struct fake {
        int sock;
        pthread_t thread;
        uint32_t regs[FAKE_REGS];
        uint32_t bar; /* current I/O base, 0 for none */
        bool silent;  /* never answers */
};

static void fake_ranges(struct fake *f, struct proto_ranges *rs) {
        memset(rs, 0, sizeof(*rs));
        if (f->bar) {
                rs->count = 1;
                rs->ranges[0] = (struct proto_range) { .base = f->bar, .len = FAKE_BAR_SIZE, .bus = PROTO_BUS_PIO };
        }
}

static void *fake_loop(void *userdata) {
        struct fake *f = userdata;
        struct proto_msg m;

        while (proto_recv(f->sock, &m, -1) == 0) {
                if (f->silent) {
                        proto_msg_done(&m);
                        continue;
                }
                switch (m.hdr.type) {
                case PROTO_READ_CONFIG: {
                        uint32_t reg = m.body.u32.reg;
                        struct proto_u32 v = { .reg = reg, .value = reg < FAKE_REGS ? f->regs[reg] : UINT32_MAX };
                        g_assert_cmpint(proto_send(f->sock, PROTO_REPLY_U32, &v, sizeof(v), NULL, 0), ==, 0);
                        break;
                }
                case PROTO_WRITE_CONFIG: {
                        const struct proto_config_write *w = &m.body.config_write;
                        struct proto_config_result res = {};
                        uint8_t bytes[4];

                        if (w->reg < FAKE_REGS) {
                                memcpy(bytes, &f->regs[w->reg], 4);
                                memcpy(bytes + w->offset, w->data, w->len);
                                memcpy(&f->regs[w->reg], bytes, 4);
                        }
                        if (w->reg == FAKE_BAR_REG && f->regs[w->reg] != f->bar && f->regs[w->reg] != 0) {
                                if (f->bar) {
                                        res.n_io_remove = 1;
                                        res.io_remove[0] = (struct proto_range) { f->bar, FAKE_BAR_SIZE, PROTO_BUS_PIO };
                                }
                                f->bar = f->regs[w->reg];
                                res.n_io_add = 1;
                                res.io_add[0] = (struct proto_range) { f->bar, FAKE_BAR_SIZE, PROTO_BUS_PIO };
                        }
                        g_assert_cmpint(proto_send(f->sock, PROTO_REPLY_CONFIG_WRITE, &res, sizeof(res), NULL, 0), ==, 0);
                        break;
                }
                case PROTO_GET_RANGES: {
                        struct proto_ranges rs;
                        fake_ranges(f, &rs);
                        g_assert_cmpint(proto_send(f->sock, PROTO_REPLY_RANGES, &rs, sizeof(rs), NULL, 0), ==, 0);
                        break;
                }
                case PROTO_DESTROY_DEVICE:
                        break;
                default:
                        (void) proto_reply_error(f->sock, EOPNOTSUPP, "not in the fake");
                }
                proto_msg_done(&m);
        }
        return NULL;
}

struct fixture {
        struct address_map map;
        struct pci_host host;
        struct fake fake;
        struct device_proxy *d;
};

static void setup(struct fixture *x, uint32_t id, bool silent) {
        int sv[2];

        address_map_init(&x->map);
        pci_host_init(&x->host, &x->map);
        memset(&x->fake, 0, sizeof(x->fake));
        x->fake.regs[0] = id;
        x->fake.regs[2] = 0x01000000; /* a storage class */
        x->fake.silent = silent;
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
        x->fake.sock = sv[1];
        g_assert_cmpint(pthread_create(&x->fake.thread, NULL, fake_loop, &x->fake), ==, 0);
        g_assert_cmpint(device_proxy_new("fake-pci", "/fake", 1, sv[0], &x->d), ==, 0);
        g_assert_cmpint(device_proxy_set_timeout(x->d, 100), ==, 0);
}

static void teardown(struct fixture *x) {
        device_proxy_free(x->d); /* closes our end: the fake's loop ends */
        g_assert_cmpint(pthread_join(x->fake.thread, NULL), ==, 0);
        close(x->fake.sock);
        address_map_done(&x->map);
}

static void out32(struct pci_host *h, uint16_t port, uint32_t v) {
        uint8_t data[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };
        pci_host_io(h, port, data, 4, true);
}

static uint32_t in(struct pci_host *h, uint16_t port, uint32_t size) {
        uint8_t data[4] = { 0x5a, 0x5a, 0x5a, 0x5a };
        uint32_t v = 0;

        pci_host_io(h, port, data, size, false);
        for (uint32_t i = 0; i < size; i++)
                v |= (uint32_t) data[i] << (8 * i);
        return v;
}

static uint32_t cfg_addr(unsigned bus, unsigned slot, unsigned function, unsigned offset) {
        return PCI_HOST_ENABLE | bus << 16 | slot << 11 | function << 8 | (offset & 0xfc);
}

static uint32_t cfg_read32(struct pci_host *h, unsigned slot, unsigned offset) {
        out32(h, PCI_HOST_CONFIG_ADDRESS, cfg_addr(0, slot, 0, offset));
        return in(h, PCI_HOST_CONFIG_DATA, 4);
}

static void test_host_bridge_ids_and_class(void) {
        struct address_map map;
        struct pci_host h;

        address_map_init(&map);
        pci_host_init(&h, &map);
        g_assert_cmphex(cfg_read32(&h, 0, 0x00), ==, 0x29c08086);
        g_assert_cmphex(cfg_read32(&h, 0, 0x08) >> 8, ==, 0x060000);
        /* Header type 0, single function; no BARs. */
        g_assert_cmphex((cfg_read32(&h, 0, 0x0c) >> 16) & 0xff, ==, 0);
        g_assert_cmphex(cfg_read32(&h, 0, 0x10), ==, 0);
        /* Its registers are read-only. */
        out32(&h, PCI_HOST_CONFIG_ADDRESS, cfg_addr(0, 0, 0, 0));
        out32(&h, PCI_HOST_CONFIG_DATA, 0x12345678);
        g_assert_cmphex(cfg_read32(&h, 0, 0x00), ==, 0x29c08086);
        address_map_done(&map);
}

static void test_absent_functions_read_all_ones(void) {
        struct fixture x;

        setup(&x, 0x10421af4, false);
        g_assert_cmpint(pci_host_add_device(&x.host, x.d), ==, 1);
        g_assert_cmphex(cfg_read32(&x.host, 2, 0x00), ==, 0xffffffff); /* empty slot */
        g_assert_cmphex(cfg_read32(&x.host, 31, 0x00), ==, 0xffffffff);
        out32(&x.host, PCI_HOST_CONFIG_ADDRESS, cfg_addr(0, 1, 1, 0)); /* function 1 */
        g_assert_cmphex(in(&x.host, PCI_HOST_CONFIG_DATA, 4), ==, 0xffffffff);
        out32(&x.host, PCI_HOST_CONFIG_ADDRESS, cfg_addr(1, 0, 0, 0)); /* bus 1 */
        g_assert_cmphex(in(&x.host, PCI_HOST_CONFIG_DATA, 4), ==, 0xffffffff);
        /* Slot 1 is there. */
        g_assert_cmphex(cfg_read32(&x.host, 1, 0x00), ==, 0x10421af4);
        teardown(&x);
}

static void test_config_data_byte_word_dword_accesses(void) {
        struct fixture x;

        setup(&x, 0x10421af4, false);
        g_assert_cmpint(pci_host_add_device(&x.host, x.d), ==, 1);
        out32(&x.host, PCI_HOST_CONFIG_ADDRESS, cfg_addr(0, 1, 0, 0));
        g_assert_cmphex(in(&x.host, 0xcfc, 1), ==, 0xf4);
        g_assert_cmphex(in(&x.host, 0xcfd, 1), ==, 0x1a);
        g_assert_cmphex(in(&x.host, 0xcfe, 1), ==, 0x42);
        g_assert_cmphex(in(&x.host, 0xcff, 1), ==, 0x10);
        g_assert_cmphex(in(&x.host, 0xcfc, 2), ==, 0x1af4);
        g_assert_cmphex(in(&x.host, 0xcfe, 2), ==, 0x1042);
        g_assert_cmphex(in(&x.host, 0xcfd, 2), ==, 0x421a);
        /* The class register: its top byte is the base class. */
        out32(&x.host, PCI_HOST_CONFIG_ADDRESS, cfg_addr(0, 1, 0, 0x0b));
        g_assert_cmphex(in(&x.host, 0xcff, 1), ==, 0x01);

        /* Writes land at their byte offset and the rest stays. */
        out32(&x.host, PCI_HOST_CONFIG_ADDRESS, cfg_addr(0, 1, 0, 0x14));
        out32(&x.host, PCI_HOST_CONFIG_DATA, 0x11223344);
        pci_host_io(&x.host, 0xcfe, (uint8_t[]) { 0xaa }, 1, true);
        pci_host_io(&x.host, 0xcfc, (uint8_t[]) { 0xbb, 0xcc }, 2, true);
        g_assert_cmphex(in(&x.host, PCI_HOST_CONFIG_DATA, 4), ==, 0x11aaccbb);
        g_assert_cmphex(x.fake.regs[5], ==, 0x11aaccbb);
        teardown(&x);
}

static void test_config_address_reads_back(void) {
        struct address_map map;
        struct pci_host h;

        address_map_init(&map);
        pci_host_init(&h, &map);
        out32(&h, PCI_HOST_CONFIG_ADDRESS, 0x8000f8a7);
        g_assert_cmphex(in(&h, PCI_HOST_CONFIG_ADDRESS, 4), ==, 0x8000f8a4); /* bits 1:0 read as zero */
        /* Only a dword at 0xCF8 is CONFIG_ADDRESS: Linux's type-1 probe
         * writes a byte at 0xCFB and expects the latch unchanged. */
        pci_host_io(&h, 0xcfb, (uint8_t[]) { 0x01 }, 1, true);
        pci_host_io(&h, 0xcf8, (uint8_t[]) { 0x00, 0x00 }, 2, true);
        g_assert_cmphex(in(&h, PCI_HOST_CONFIG_ADDRESS, 4), ==, 0x8000f8a4);
        g_assert_cmphex(in(&h, 0xcf8, 2), ==, 0xffff);
        g_assert_cmphex(in(&h, 0xcfa, 1), ==, 0xff);
        address_map_done(&map);
}

static void test_enable_bit_off_reads_all_ones(void) {
        struct fixture x;

        setup(&x, 0x10421af4, false);
        g_assert_cmpint(pci_host_add_device(&x.host, x.d), ==, 1);
        out32(&x.host, PCI_HOST_CONFIG_ADDRESS, cfg_addr(0, 0, 0, 0) & ~PCI_HOST_ENABLE);
        g_assert_cmphex(in(&x.host, PCI_HOST_CONFIG_DATA, 4), ==, 0xffffffff);
        out32(&x.host, PCI_HOST_CONFIG_ADDRESS, cfg_addr(0, 1, 0, 0x14) & ~PCI_HOST_ENABLE);
        g_assert_cmphex(in(&x.host, PCI_HOST_CONFIG_DATA, 2), ==, 0xffff);
        /* ...and writes reach nothing. */
        out32(&x.host, PCI_HOST_CONFIG_DATA, 0xdeadbeef);
        g_assert_cmphex(x.fake.regs[5], ==, 0);
        teardown(&x);
}

static void test_bar_move_updates_the_address_map(void) {
        struct fixture x;
        struct address_map_entry e;

        setup(&x, 0x10421af4, false);
        g_assert_cmpint(pci_host_probe_device(&x.host, x.d), ==, 1);

        /* The BAR appears... */
        out32(&x.host, PCI_HOST_CONFIG_ADDRESS, cfg_addr(0, 1, 0, FAKE_BAR_REG * 4));
        out32(&x.host, PCI_HOST_CONFIG_DATA, 0x1000);
        g_assert_true(address_map_lookup(&x.map, PROTO_BUS_PIO, 0x1008, 4, &e));
        g_assert_true(e.device == x.d);
        g_assert_cmpuint(e.range, ==, 0);
        g_assert_cmpuint(x.d->ranges.count, ==, 1);

        /* ...and moves: the old range is gone, the new one found. */
        out32(&x.host, PCI_HOST_CONFIG_DATA, 0x2000);
        g_assert_false(address_map_lookup(&x.map, PROTO_BUS_PIO, 0x1000, 1, &e));
        g_assert_true(address_map_lookup(&x.map, PROTO_BUS_PIO, 0x200f, 1, &e));
        g_assert_true(e.device == x.d);
        g_assert_cmphex(e.base, ==, 0x2000);
        g_assert_cmphex(x.d->ranges.ranges[e.range].base, ==, 0x2000);
        g_assert_cmpuint(x.map.n, ==, 1);

        /* A move onto the config ports is refused by the map; the old entry is gone
         * (the device did move) and nothing decodes 0xCF8 but the host. */
        out32(&x.host, PCI_HOST_CONFIG_ADDRESS, cfg_addr(0, 1, 0, FAKE_BAR_REG * 4));
        out32(&x.host, PCI_HOST_CONFIG_DATA, 0xcf0);
        g_assert_false(address_map_lookup(&x.map, PROTO_BUS_PIO, 0xcf8, 1, &e));
        g_assert_false(address_map_lookup(&x.map, PROTO_BUS_PIO, 0x2000, 1, &e));
        teardown(&x);
}

static void test_probe_decides_from_what_a_device_says(void) {
        struct fixture x;

        /* Vendor 0 is no PCI device. */
        setup(&x, 0x00000000, false);
        g_assert_cmpint(pci_host_probe_device(&x.host, x.d), ==, 0);
        teardown(&x);

        /* A device with ranges of its own is not probed. */
        setup(&x, 0x10421af4, false);
        x.d->ranges.count = 1;
        x.d->ranges.ranges[0] = (struct proto_range) { 0x3f8, 8, PROTO_BUS_PIO };
        g_assert_cmpint(pci_host_probe_device(&x.host, x.d), ==, 0);
        x.d->ranges.count = 0;
        g_assert_cmpint(pci_host_probe_device(&x.host, x.d), ==, 1);
        g_assert_cmpint(pci_host_probe_device(&x.host, x.d), ==, 2);
        for (int i = 3; i < PCI_HOST_SLOTS; i++)
                g_assert_cmpint(pci_host_add_device(&x.host, x.d), ==, i);
        g_assert_cmpint(pci_host_add_device(&x.host, x.d), ==, -ENOSPC);
        teardown(&x);
}

static void test_failed_device_reads_all_ones(void) {
        struct fixture x;
        int64_t t0;

        setup(&x, 0x10421af4, true);
        g_assert_cmpint(pci_host_add_device(&x.host, x.d), ==, 1);
        g_assert_cmphex(cfg_read32(&x.host, 1, 0x00), ==, 0xffffffff);
        g_assert_true(device_proxy_is_failed(x.d));
        /* From now on nothing waits. */
        t0 = g_get_monotonic_time();
        g_assert_cmphex(cfg_read32(&x.host, 1, 0x08), ==, 0xffffffff);
        out32(&x.host, PCI_HOST_CONFIG_DATA, 0x1000);
        g_assert_cmpint(g_get_monotonic_time() - t0, <, 20000);
        /* The bridge still answers. */
        g_assert_cmphex(cfg_read32(&x.host, 0, 0x00), ==, 0x29c08086);
        teardown(&x);
}

/* 0xCF8-0xCFF is the host's except a byte at 0xCF9, which is pm's reset
 * register; no access goes to both, every access in the block to one. */
static void test_reset_register_split_with_pm(void) {
        static const uint32_t sizes[] = { 1, 2, 4 };
        struct address_map map;
        struct pci_host h;
        struct pm pm;
        struct proto_range bad = { 0xcfc, 4, PROTO_BUS_PIO };
        struct device_proxy *d = NULL;
        char err[256] = "";

        for (uint16_t port = 0xcf0; port < 0xd08; port++)
                for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
                        uint32_t size = sizes[i];
                        bool pm_ours = pm_access_is_ours(port, size), pci_ours = pci_host_access_is_ours(port, size);
                        bool inside = port >= 0xcf8 && port + size <= 0xd00;

                        g_assert_false(pm_ours && pci_ours);
                        g_assert_true(pm_ours == (port == 0xcf9 && size == 1));
                        g_assert_true(pci_ours == (inside && !pm_ours));
                }

        /* The byte at 0xCF9 resets; the dword at 0xCF8 does not. */
        pm_init(&pm, NULL, NULL);
        g_assert_cmpint(pm_io(&pm, LAYOUT_RESET_PORT, (uint8_t[]) { LAYOUT_RESET_VALUE }, 1, true), ==, PM_REBOOT);
        pm_done(&pm);
        address_map_init(&map);
        pci_host_init(&h, &map);
        out32(&h, PCI_HOST_CONFIG_ADDRESS, 0x80000600);
        g_assert_cmphex(in(&h, PCI_HOST_CONFIG_ADDRESS, 4), ==, 0x80000600);

        /* Devices cannot claim any of the block, CONFIG_DATA included. */
        g_assert_true(pci_host_port_is_ours(0xcfc, 4));
        g_assert_false(pci_host_port_is_ours(0xd00, 4));
        g_assert_false(pci_host_port_is_ours(0xcf0, 8));
        g_assert_cmpint(device_proxy_new("fake", "/bad", 1, -1, &d), ==, 0);
        d->ranges.count = 1;
        d->ranges.ranges[0] = bad;
        g_assert_cmpint(address_map_add_device(&map, d, err, sizeof(err)), ==, -EEXIST);
        g_assert_nonnull(strstr(err, "PCI configuration ports"));
        g_assert_cmpuint(map.n, ==, 0);
        device_proxy_free(d);
        address_map_done(&map);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/pci-host/host-bridge-ids-and-class", test_host_bridge_ids_and_class);
        g_test_add_func("/pci-host/absent-functions-read-all-ones", test_absent_functions_read_all_ones);
        g_test_add_func("/pci-host/config-data-byte-word-dword-accesses", test_config_data_byte_word_dword_accesses);
        g_test_add_func("/pci-host/config-address-reads-back", test_config_address_reads_back);
        g_test_add_func("/pci-host/enable-bit-off-reads-all-ones", test_enable_bit_off_reads_all_ones);
        g_test_add_func("/pci-host/bar-move-updates-the-address-map", test_bar_move_updates_the_address_map);
        g_test_add_func("/pci-host/probe-decides-from-what-a-device-says", test_probe_decides_from_what_a_device_says);
        g_test_add_func("/pci-host/failed-device-reads-all-ones", test_failed_device_reads_all_ones);
        g_test_add_func("/pci-host/reset-register-split-with-pm", test_reset_register_split_with_pm);
        return g_test_run();
}
