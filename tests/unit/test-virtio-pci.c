/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The virtio-pci transport (services/devmgr/devices/virtio-pci*.c) against
 * a fake model, through the device_kind ops the serve loop calls: config
 * space and capabilities, BAR sizing and the WriteConfig results, feature
 * negotiation, the status sequence and reset, queue registers, MSI-X,
 * ISR, the worker's data path, and bad offsets and lengths. */

#include <errno.h>
#include <glib.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "virtio-pci.h"

#define FAKE_QUEUES 2
#define FAKE_QSIZE 64
#define FAKE_CONFIG_LEN 8
#define FAKE_F_A 0 /* offered */
#define FAKE_F_B 5 /* offered; the fake refuses it without A */
#define RAM (1u << 20)
#define BAR 0xd0000000ULL

/* Common cfg offsets. */
#define CC_DFSELECT 0x00
#define CC_DF 0x04
#define CC_GFSELECT 0x08
#define CC_GF 0x0c
#define CC_MSIX 0x10
#define CC_NUMQ 0x12
#define CC_STATUS 0x14
#define CC_CFGGEN 0x15
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE 0x18
#define CC_Q_MSIX 0x1a
#define CC_Q_ENABLE 0x1c
#define CC_Q_NOFF 0x1e
#define CC_Q_DESC 0x20
#define CC_Q_DRIVER 0x28
#define CC_Q_DEVICE 0x30

struct fake {
        uint8_t config[FAKE_CONFIG_LEN];
        atomic_uint notified, completed, resets;
        uint64_t features;
        struct vq_chain chain;
};

static int fake_create(json_object *config, void **ret, struct virtio_pci_info *info, char *err, size_t errlen) {
        struct fake *f = g_new0(struct fake, 1);

        memcpy(f->config, "\x11\x22\x33\x44\x55\x66\x77\x88", FAKE_CONFIG_LEN);
        *info = (struct virtio_pci_info) {
                .device_id = 42,
                .pci_class = 0xff0000,
                .num_queues = FAKE_QUEUES,
                .queue_max_size = FAKE_QSIZE,
                .features = VIRTIO_BIT(FAKE_F_A) | VIRTIO_BIT(FAKE_F_B),
                .config_len = FAKE_CONFIG_LEN,
        };
        *ret = f;
        return 0;
}

static void fake_destroy(void *model) {
        g_free(model);
}

static void fake_config_read(struct virtio_pci *vp, uint32_t offset, uint32_t len, uint8_t *data) {
        struct fake *f = virtio_pci_model(vp);

        g_assert_cmpuint(offset + len, <=, FAKE_CONFIG_LEN);
        memcpy(data, f->config + offset, len);
}

static void fake_config_write(struct virtio_pci *vp, uint32_t offset, uint32_t len, const uint8_t *data) {
        struct fake *f = virtio_pci_model(vp);

        g_assert_cmpuint(offset + len, <=, FAKE_CONFIG_LEN);
        memcpy(f->config + offset, data, len);
}

static int fake_set_features(struct virtio_pci *vp, uint64_t features) {
        struct fake *f = virtio_pci_model(vp);

        if ((features & VIRTIO_BIT(FAKE_F_B)) && !(features & VIRTIO_BIT(FAKE_F_A)))
                return -EINVAL;
        f->features = features;
        return 0;
}

/* Completes every chain with 1 byte "written". */
static void fake_queue_notify(struct virtio_pci *vp, unsigned q) {
        struct fake *f = virtio_pci_model(vp);

        atomic_fetch_add(&f->notified, 1);
        while (virtio_pci_queue_pop(vp, q, &f->chain) > 0) {
                g_assert_cmpint(virtio_pci_queue_push(vp, q, f->chain.head, 1), ==, 0);
                atomic_fetch_add(&f->completed, 1);
        }
        virtio_pci_queue_signal(vp, q);
}

static void fake_reset(struct virtio_pci *vp) {
        struct fake *f = virtio_pci_model(vp);

        atomic_fetch_add(&f->resets, 1);
}

static const struct virtio_model fake_model = {
        .name = "virtio-fake",
        .create = fake_create,
        .destroy = fake_destroy,
        .config_read = fake_config_read,
        .config_write = fake_config_write,
        .set_features = fake_set_features,
        .queue_notify = fake_queue_notify,
        .reset = fake_reset,
};

static int fake_kind_create(json_object *config, void **ret, char *err, size_t errlen) {
        return virtio_pci_kind_create(&fake_model, config, ret, err, errlen);
}

struct t {
        struct device_kind kind;
        void *dev;
        struct fake *fake;
};

static void t_init(struct t *t) {
        char err[200] = "";

        virtio_pci_kind_init(&t->kind, &fake_model, fake_kind_create);
        g_assert_cmpint(t->kind.create(NULL, &t->dev, err, sizeof(err)), ==, 0);
        t->fake = virtio_pci_model(t->dev);
}

static void t_done(struct t *t) {
        t->kind.destroy(t->dev);
}

static uint32_t cfg_read(struct t *t, uint32_t reg) {
        uint32_t v = 0xdeadbeef;

        g_assert_cmpint(t->kind.read_config(t->dev, reg, &v), ==, 0);
        return v;
}

static uint8_t cfg_byte(struct t *t, uint32_t at) {
        return (uint8_t) (cfg_read(t, at / 4) >> (8 * (at % 4)));
}

static struct proto_config_result cfg_write(struct t *t, uint32_t at, uint32_t len, uint32_t value) {
        struct proto_config_result res = {};
        uint8_t data[4];

        for (unsigned i = 0; i < 4; i++)
                data[i] = (uint8_t) (value >> (8 * i));
        g_assert_cmpint(t->kind.write_config(t->dev, at / 4, at % 4, len, data, &res), ==, 0);
        return res;
}

static uint64_t bar_read(struct t *t, uint64_t offset, uint32_t len) {
        uint8_t data[8];
        uint64_t v = 0;

        memset(data, 0xaa, sizeof(data));
        g_assert_cmpint(t->kind.read(t->dev, 0, offset, len, data), ==, 0);
        for (uint32_t i = 0; i < len; i++)
                v |= (uint64_t) data[i] << (8 * i);
        return v;
}

static void bar_write(struct t *t, uint64_t offset, uint32_t len, uint64_t value) {
        uint8_t data[8];

        for (unsigned i = 0; i < 8; i++)
                data[i] = (uint8_t) (value >> (8 * i));
        g_assert_cmpint(t->kind.write(t->dev, 0, offset, len, data), ==, 0);
}

static uint64_t cc_read(struct t *t, uint32_t off, uint32_t len) {
        return bar_read(t, VIRTIO_PCI_COMMON_OFFSET + off, len);
}

static void cc_write(struct t *t, uint32_t off, uint32_t len, uint64_t v) {
        bar_write(t, VIRTIO_PCI_COMMON_OFFSET + off, len, v);
}

static void map_bar(struct t *t) {
        cfg_write(t, 0x10, 4, (uint32_t) BAR);
        cfg_write(t, 0x14, 4, (uint32_t) (BAR >> 32));
        g_assert_cmpuint(cfg_write(t, 0x04, 2, 0x6).n_mmio_add, ==, 1);
}

static void set_features(struct t *t, uint64_t f) {
        cc_write(t, CC_GFSELECT, 4, 0);
        cc_write(t, CC_GF, 4, (uint32_t) f);
        cc_write(t, CC_GFSELECT, 4, 1);
        cc_write(t, CC_GF, 4, (uint32_t) (f >> 32));
}

static uint8_t negotiate(struct t *t, uint64_t f) {
        cc_write(t, CC_STATUS, 1, 0);
        cc_write(t, CC_STATUS, 1, 1);
        cc_write(t, CC_STATUS, 1, 3);
        set_features(t, f);
        cc_write(t, CC_STATUS, 1, 0xb);
        return (uint8_t) cc_read(t, CC_STATUS, 1);
}

static void test_config_space_identity_and_capabilities(void) {
        struct t t;
        unsigned types = 0, steps = 0;

        t_init(&t);
        g_assert_cmphex(cfg_read(&t, 0), ==, (0x1040u + 42) << 16 | 0x1af4);
        g_assert_cmphex(cfg_read(&t, 2), ==, 0xff000001); /* class, revision 1 */
        g_assert_cmphex(cfg_read(&t, 3) >> 16 & 0xff, ==, 0); /* header type 0 */
        g_assert_cmphex(cfg_read(&t, 11), ==, 42u << 16 | 0x1af4);
        g_assert_cmphex(cfg_read(&t, 1), ==, 0x00100000); /* cap list, command 0 */
        g_assert_cmphex(cfg_byte(&t, 0x3d), ==, 1); /* INTA */
        g_assert_cmphex(cfg_read(&t, 4), ==, 0x4); /* 64-bit memory BAR */
        for (uint32_t reg = 6; reg < 10; reg++)
                g_assert_cmphex(cfg_read(&t, reg), ==, 0); /* BARs 2-5 */
        g_assert_cmphex(cfg_read(&t, 64), ==, 0); /* past config space */
        g_assert_cmphex(cfg_read(&t, UINT32_MAX), ==, 0);

        for (uint32_t at = cfg_byte(&t, 0x34); at; at = cfg_byte(&t, at + 1)) {
                g_assert_cmpuint(at, >=, 0x40);
                g_assert_cmpuint(at % 4, ==, 0);
                g_assert_cmpuint(++steps, <=, 6);
                if (cfg_byte(&t, at) == 0x11) {
                        g_assert_cmphex(cfg_read(&t, at / 4) >> 16, ==, FAKE_QUEUES); /* table size - 1 */
                        g_assert_cmphex(cfg_read(&t, at / 4 + 1), ==, VIRTIO_PCI_MSIX_TABLE_OFFSET);
                        g_assert_cmphex(cfg_read(&t, at / 4 + 2), ==, VIRTIO_PCI_MSIX_PBA_OFFSET);
                        types |= 1u << 6;
                        continue;
                }
                g_assert_cmphex(cfg_byte(&t, at), ==, 0x09);
                uint8_t type = cfg_byte(&t, at + 3);
                uint32_t off = cfg_read(&t, at / 4 + 2), len = cfg_read(&t, at / 4 + 3);
                types |= 1u << type;
                g_assert_cmpuint(cfg_byte(&t, at + 4), ==, 0); /* BAR0 */
                g_assert_cmpuint(off + len, <=, VIRTIO_PCI_BAR_SIZE);
                switch (type) {
                case 1:
                        g_assert_cmpuint(len, ==, 0x38);
                        break;
                case 2:
                        g_assert_cmpuint(cfg_byte(&t, at + 2), ==, 20);
                        g_assert_cmpuint(cfg_read(&t, at / 4 + 4), ==, 4); /* notify_off_multiplier */
                        g_assert_cmpuint(len, ==, 4 * FAKE_QUEUES);
                        break;
                case 3:
                        g_assert_cmpuint(len, ==, 1);
                        break;
                case 4:
                        g_assert_cmpuint(len, ==, FAKE_CONFIG_LEN);
                        break;
                case 5:
                        g_assert_cmpuint(cfg_byte(&t, at + 2), ==, 20);
                        break;
                default:
                        g_assert_not_reached();
                }
        }
        g_assert_cmphex(types, ==, 0x7e);
        /* Read-only registers stay so. */
        cfg_write(&t, 0, 4, 0);
        cfg_write(&t, 0x2c, 4, 0);
        g_assert_cmphex(cfg_read(&t, 0), ==, (0x1040u + 42) << 16 | 0x1af4);
        g_assert_cmphex(cfg_read(&t, 11), ==, 42u << 16 | 0x1af4);
        t_done(&t);
}

static void test_bar_sizing_and_moves_report_ranges(void) {
        struct proto_config_result res;
        struct proto_ranges ranges;
        struct t t;

        t_init(&t);
        /* Sizing: all ones reads back the size mask. */
        res = cfg_write(&t, 0x10, 4, UINT32_MAX);
        g_assert_cmpuint(res.n_mmio_add + res.n_mmio_remove, ==, 0);
        cfg_write(&t, 0x14, 4, UINT32_MAX);
        g_assert_cmphex(cfg_read(&t, 4), ==, (uint32_t) ~(VIRTIO_PCI_BAR_SIZE - 1) | 0x4);
        g_assert_cmphex(cfg_read(&t, 5), ==, UINT32_MAX);

        /* An address without memory decode: no range. */
        cfg_write(&t, 0x10, 4, (uint32_t) BAR | 0xfff); /* low bits are not writable */
        res = cfg_write(&t, 0x14, 4, 0);
        g_assert_cmpuint(res.n_mmio_add + res.n_mmio_remove, ==, 0);
        g_assert_cmphex(cfg_read(&t, 4), ==, (uint32_t) BAR | 0x4);
        g_assert_cmpint(t.kind.get_ranges(t.dev, &ranges), ==, 0);
        g_assert_cmpuint(ranges.count, ==, 0);

        /* Decode on: the range appears, once. */
        res = cfg_write(&t, 0x04, 1, 0x2);
        g_assert_cmpuint(res.n_mmio_remove, ==, 0);
        g_assert_cmpuint(res.n_mmio_add, ==, 1);
        g_assert_cmphex(res.mmio_add[0].base, ==, BAR);
        g_assert_cmphex(res.mmio_add[0].len, ==, VIRTIO_PCI_BAR_SIZE);
        g_assert_cmpuint(res.mmio_add[0].bus, ==, PROTO_BUS_MMIO);
        res = cfg_write(&t, 0x04, 2, 0x6);
        g_assert_cmpuint(res.n_mmio_add + res.n_mmio_remove, ==, 0);
        g_assert_cmpint(t.kind.get_ranges(t.dev, &ranges), ==, 0);
        g_assert_cmpuint(ranges.count, ==, 1);
        g_assert_cmphex(ranges.ranges[0].base, ==, BAR);

        /* A move while decoding: remove the old, add the new. */
        res = cfg_write(&t, 0x14, 4, 0x1);
        g_assert_cmpuint(res.n_mmio_remove, ==, 1);
        g_assert_cmphex(res.mmio_remove[0].base, ==, BAR);
        g_assert_cmpuint(res.n_mmio_add, ==, 1);
        g_assert_cmphex(res.mmio_add[0].base, ==, 0x1d0000000ULL);
        /* A byte write into the BAR moves it too. */
        res = cfg_write(&t, 0x13, 1, 0xe0);
        g_assert_cmphex(res.mmio_add[0].base, ==, 0x1e0000000ULL);

        /* Address 0 is unassigned; a wrapping one is no range either. */
        cfg_write(&t, 0x14, 4, 0);
        res = cfg_write(&t, 0x10, 4, 0);
        g_assert_cmpuint(res.n_mmio_remove, ==, 1);
        g_assert_cmpuint(res.n_mmio_add, ==, 0);
        res = cfg_write(&t, 0x10, 4, UINT32_MAX);
        g_assert_cmpuint(res.n_mmio_add, ==, 1);
        g_assert_cmphex(res.mmio_add[0].base, ==, 0xffff8000);
        res = cfg_write(&t, 0x14, 4, UINT32_MAX); /* would end at 2^64 */
        g_assert_cmpuint(res.n_mmio_remove, ==, 1);
        g_assert_cmpuint(res.n_mmio_add, ==, 0);

        /* Decode off removes it. */
        cfg_write(&t, 0x10, 4, (uint32_t) BAR);
        res = cfg_write(&t, 0x14, 4, 0);
        g_assert_cmpuint(res.n_mmio_add, ==, 1);
        res = cfg_write(&t, 0x04, 2, 0x4);
        g_assert_cmpuint(res.n_mmio_remove, ==, 1);
        g_assert_cmphex(res.mmio_remove[0].base, ==, BAR);
        g_assert_cmpint(t.kind.get_ranges(t.dev, &ranges), ==, 0);
        g_assert_cmpuint(ranges.count, ==, 0);
        g_assert_cmphex(cfg_read(&t, 1) & 0xffff, ==, 0x4);
        t_done(&t);
}

static void test_feature_negotiation(void) {
        struct t t;

        t_init(&t);
        map_bar(&t);
        cc_write(&t, CC_DFSELECT, 4, 0);
        g_assert_cmphex(cc_read(&t, CC_DF, 4), ==,
                        VIRTIO_BIT(FAKE_F_A) | VIRTIO_BIT(FAKE_F_B) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
                                VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
        cc_write(&t, CC_DFSELECT, 4, 1);
        g_assert_cmphex(cc_read(&t, CC_DF, 4), ==, 1); /* VERSION_1 */
        cc_write(&t, CC_DFSELECT, 4, 2);
        g_assert_cmphex(cc_read(&t, CC_DF, 4), ==, 0);

        /* No VERSION_1, a bit not offered, a combination the model refuses:
         * FEATURES_OK reads back clear. */
        g_assert_cmphex(negotiate(&t, VIRTIO_BIT(FAKE_F_A)), ==, 0x3);
        g_assert_cmphex(negotiate(&t, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(3)), ==, 0x3);
        g_assert_cmphex(negotiate(&t, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(40)), ==, 0x3);
        g_assert_cmphex(negotiate(&t, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(FAKE_F_B)), ==, 0x3);
        /* The driver may retry: a valid set later is taken. */
        set_features(&t, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(FAKE_F_A) | VIRTIO_BIT(FAKE_F_B));
        cc_write(&t, CC_STATUS, 1, 0xb);
        g_assert_cmphex(cc_read(&t, CC_STATUS, 1), ==, 0xb);
        g_assert_cmphex(t.fake->features, ==,
                        VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(FAKE_F_A) | VIRTIO_BIT(FAKE_F_B));
        g_assert_cmphex(virtio_pci_features(t.dev), ==, t.fake->features);
        /* After FEATURES_OK the driver's features are fixed. */
        set_features(&t, VIRTIO_BIT(VIRTIO_F_VERSION_1));
        cc_write(&t, CC_GFSELECT, 4, 0);
        g_assert_cmphex(cc_read(&t, CC_GF, 4), ==, VIRTIO_BIT(FAKE_F_A) | VIRTIO_BIT(FAKE_F_B));
        cc_write(&t, CC_GFSELECT, 4, 1);
        g_assert_cmphex(cc_read(&t, CC_GF, 4), ==, 1);
        t_done(&t);
}

static void test_status_sequence_and_reset(void) {
        struct t t;

        t_init(&t);
        map_bar(&t);
        /* DRIVER_OK without FEATURES_OK does not stick. */
        cc_write(&t, CC_STATUS, 1, 0x7);
        g_assert_cmphex(cc_read(&t, CC_STATUS, 1), ==, 0x3);
        /* Bits are never cleared but by a reset; NEEDS_RESET is not the
         * driver's to set. */
        cc_write(&t, CC_STATUS, 1, 0x1);
        g_assert_cmphex(cc_read(&t, CC_STATUS, 1), ==, 0x3);
        cc_write(&t, CC_STATUS, 1, 0x40);
        g_assert_cmphex(cc_read(&t, CC_STATUS, 1), ==, 0x3);

        g_assert_cmphex(negotiate(&t, VIRTIO_BIT(VIRTIO_F_VERSION_1)), ==, 0xb);
        cc_write(&t, CC_MSIX, 2, 1);
        cc_write(&t, CC_Q_SELECT, 2, 1);
        cc_write(&t, CC_Q_SIZE, 2, 16);
        cc_write(&t, CC_Q_MSIX, 2, 2);
        cc_write(&t, CC_Q_DESC, 8, 0x1000);
        cc_write(&t, CC_Q_ENABLE, 2, 1);
        /* DRIVER_OK without memory: the enabled queue cannot work. */
        cc_write(&t, CC_STATUS, 1, 0xf);
        g_assert_cmphex(cc_read(&t, CC_STATUS, 1), ==, 0x4f);

        /* Writing 0 resets everything the driver set. */
        unsigned resets = atomic_load(&t.fake->resets);
        cc_write(&t, CC_STATUS, 1, 0);
        g_assert_cmphex(cc_read(&t, CC_STATUS, 1), ==, 0);
        g_assert_cmpuint(atomic_load(&t.fake->resets), ==, resets + 1);
        g_assert_cmphex(cc_read(&t, CC_MSIX, 2), ==, VIRTIO_MSI_NO_VECTOR);
        g_assert_cmphex(cc_read(&t, CC_Q_SELECT, 2), ==, 0);
        cc_write(&t, CC_Q_SELECT, 2, 1);
        g_assert_cmpuint(cc_read(&t, CC_Q_SIZE, 2), ==, FAKE_QSIZE);
        g_assert_cmphex(cc_read(&t, CC_Q_MSIX, 2), ==, VIRTIO_MSI_NO_VECTOR);
        g_assert_cmpuint(cc_read(&t, CC_Q_ENABLE, 2), ==, 0);
        g_assert_cmphex(cc_read(&t, CC_Q_DESC, 8), ==, 0);
        cc_write(&t, CC_GFSELECT, 4, 1);
        g_assert_cmphex(cc_read(&t, CC_GF, 4), ==, 0);
        t_done(&t);
}

static void test_queue_registers(void) {
        struct t t;

        t_init(&t);
        map_bar(&t);
        g_assert_cmpuint(cc_read(&t, CC_NUMQ, 2), ==, FAKE_QUEUES);
        cc_write(&t, CC_NUMQ, 2, 7); /* read-only */
        g_assert_cmpuint(cc_read(&t, CC_NUMQ, 2), ==, FAKE_QUEUES);
        for (unsigned q = 0; q < FAKE_QUEUES; q++) {
                cc_write(&t, CC_Q_SELECT, 2, q);
                g_assert_cmpuint(cc_read(&t, CC_Q_SELECT, 2), ==, q);
                g_assert_cmpuint(cc_read(&t, CC_Q_SIZE, 2), ==, FAKE_QSIZE);
                g_assert_cmpuint(cc_read(&t, CC_Q_NOFF, 2), ==, q);
                g_assert_cmphex(cc_read(&t, CC_Q_MSIX, 2), ==, VIRTIO_MSI_NO_VECTOR);
        }
        /* A queue that does not exist: size 0, writes go nowhere. */
        cc_write(&t, CC_Q_SELECT, 2, FAKE_QUEUES);
        g_assert_cmpuint(cc_read(&t, CC_Q_SIZE, 2), ==, 0);
        cc_write(&t, CC_Q_ENABLE, 2, 1);
        g_assert_cmpuint(cc_read(&t, CC_Q_ENABLE, 2), ==, 0);
        g_assert_cmphex(cc_read(&t, CC_Q_MSIX, 2), ==, VIRTIO_MSI_NO_VECTOR);

        cc_write(&t, CC_Q_SELECT, 2, 0);
        /* Size: a power of 2 up to the maximum. */
        cc_write(&t, CC_Q_SIZE, 2, 100);
        g_assert_cmpuint(cc_read(&t, CC_Q_SIZE, 2), ==, FAKE_QSIZE);
        cc_write(&t, CC_Q_SIZE, 2, 128);
        g_assert_cmpuint(cc_read(&t, CC_Q_SIZE, 2), ==, FAKE_QSIZE);
        cc_write(&t, CC_Q_SIZE, 2, 0);
        g_assert_cmpuint(cc_read(&t, CC_Q_SIZE, 2), ==, FAKE_QSIZE);
        cc_write(&t, CC_Q_SIZE, 2, 8);
        g_assert_cmpuint(cc_read(&t, CC_Q_SIZE, 2), ==, 8);
        /* Vectors: ours or NO_VECTOR. */
        cc_write(&t, CC_Q_MSIX, 2, FAKE_QUEUES);
        g_assert_cmpuint(cc_read(&t, CC_Q_MSIX, 2), ==, FAKE_QUEUES);
        cc_write(&t, CC_Q_MSIX, 2, FAKE_QUEUES + 1);
        g_assert_cmphex(cc_read(&t, CC_Q_MSIX, 2), ==, VIRTIO_MSI_NO_VECTOR);
        cc_write(&t, CC_MSIX, 2, 0x1234);
        g_assert_cmphex(cc_read(&t, CC_MSIX, 2), ==, VIRTIO_MSI_NO_VECTOR);
        cc_write(&t, CC_MSIX, 2, 0);
        g_assert_cmphex(cc_read(&t, CC_MSIX, 2), ==, 0);
        /* 64-bit addresses whole or as two halves; other sizes ignored. */
        cc_write(&t, CC_Q_DESC, 8, 0x1122334455667788ULL);
        g_assert_cmphex(cc_read(&t, CC_Q_DESC, 8), ==, 0x1122334455667788ULL);
        cc_write(&t, CC_Q_DRIVER, 4, 0x2000);
        cc_write(&t, CC_Q_DRIVER + 4, 4, 0x1);
        g_assert_cmphex(cc_read(&t, CC_Q_DRIVER, 8), ==, 0x100002000ULL);
        g_assert_cmphex(cc_read(&t, CC_Q_DRIVER + 4, 4), ==, 0x1);
        cc_write(&t, CC_Q_DEVICE, 2, 0xffff);
        cc_write(&t, CC_Q_DEVICE + 2, 4, 0xffff);
        g_assert_cmphex(cc_read(&t, CC_Q_DEVICE, 8), ==, 0);
        /* Enabled: 0 may not be written, the setup is fixed. */
        cc_write(&t, CC_Q_ENABLE, 2, 1);
        cc_write(&t, CC_Q_ENABLE, 2, 0);
        g_assert_cmpuint(cc_read(&t, CC_Q_ENABLE, 2), ==, 1);
        cc_write(&t, CC_Q_SIZE, 2, 16);
        cc_write(&t, CC_Q_DESC, 8, 0);
        g_assert_cmpuint(cc_read(&t, CC_Q_SIZE, 2), ==, 8);
        g_assert_cmphex(cc_read(&t, CC_Q_DESC, 8), ==, 0x1122334455667788ULL);
        /* The vector can still change. */
        cc_write(&t, CC_Q_MSIX, 2, 1);
        g_assert_cmpuint(cc_read(&t, CC_Q_MSIX, 2), ==, 1);
        t_done(&t);
}

static bool fired(int fd) {
        uint64_t v;
        return read(fd, &v, sizeof(v)) == sizeof(v);
}

static int attach(struct t *t, uint32_t role, uint32_t arg, int fd) {
        char err[200] = "";
        int r = t->kind.attach_fd(t->dev, role, arg, fd, err, sizeof(err));
        if (r < 0)
                g_assert_cmpstr(err, !=, "");
        return r;
}

static void test_msix_table_mask_and_pending(void) {
        struct proto_msi_routes routes = {};
        int irq[FAKE_QUEUES + 1];
        uint32_t ctrl_at = 0;
        struct t t;

        t_init(&t);
        map_bar(&t);
        for (unsigned v = 0; v <= FAKE_QUEUES; v++) {
                irq[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                g_assert_cmpint(attach(&t, PROTO_FD_IRQ, v, irq[v]), ==, 0);
        }
        for (uint32_t at = cfg_byte(&t, 0x34); at; at = cfg_byte(&t, at + 1))
                if (cfg_byte(&t, at) == 0x11)
                        ctrl_at = at + 2;
        g_assert_cmpuint(ctrl_at, !=, 0);

        /* Vectors come up masked; address, data and mask read back. */
        for (unsigned v = 0; v <= FAKE_QUEUES; v++)
                g_assert_cmphex(bar_read(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * v + 12, 4), ==, 1);
        bar_write(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16, 8, 0xfee01000);
        bar_write(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 24, 4, 0x41);
        bar_write(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 28, 4, 0xfffffffe); /* only bit 0 exists */
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16, 8), ==, 0xfee01000);
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 24, 4), ==, 0x41);
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 28, 4), ==, 0);
        /* Past the table: nothing. */
        bar_write(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * (FAKE_QUEUES + 1), 4, 0x1234);
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * (FAKE_QUEUES + 1), 4), ==, 0);

        g_assert_cmpint(t.kind.get_msi_routes(t.dev, &routes), ==, 0);
        g_assert_cmpuint(routes.count, ==, FAKE_QUEUES + 1);
        g_assert_cmpuint(routes.enabled, ==, 0);
        g_assert_cmphex(routes.routes[1].address, ==, 0xfee01000);
        g_assert_cmphex(routes.routes[1].data, ==, 0x41);
        g_assert_cmpuint(routes.routes[1].masked, ==, 0);
        g_assert_cmpuint(routes.routes[0].masked, ==, 1);

        /* Enabled with the function masked: a config change is pending. */
        cfg_write(&t, ctrl_at, 2, 0xc000);
        g_assert_cmpint(t.kind.get_msi_routes(t.dev, &routes), ==, 0);
        g_assert_cmpuint(routes.enabled, ==, 0);
        cc_write(&t, CC_MSIX, 2, 1);
        virtio_pci_config_changed(t.dev);
        g_assert_false(fired(irq[1]));
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_MSIX_PBA_OFFSET, 8), ==, 0x2);
        /* Function unmasked: it fires, the pending bit clears. */
        cfg_write(&t, ctrl_at, 2, 0x8000);
        g_assert_true(fired(irq[1]));
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_MSIX_PBA_OFFSET, 8), ==, 0);
        g_assert_cmpint(t.kind.get_msi_routes(t.dev, &routes), ==, 0);
        g_assert_cmpuint(routes.enabled, ==, 1);

        /* A masked vector: pending until its own unmask. */
        bar_write(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 28, 4, 1);
        virtio_pci_config_changed(t.dev);
        g_assert_false(fired(irq[1]));
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_MSIX_PBA_OFFSET, 1), ==, 0x2);
        bar_write(&t, VIRTIO_PCI_MSIX_PBA_OFFSET, 8, 0); /* read-only */
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_MSIX_PBA_OFFSET, 8), ==, 0x2);
        bar_write(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 28, 4, 0);
        g_assert_true(fired(irq[1]));
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_MSIX_PBA_OFFSET, 8), ==, 0);
        /* NO_VECTOR: nothing at all. */
        cc_write(&t, CC_MSIX, 2, VIRTIO_MSI_NO_VECTOR);
        virtio_pci_config_changed(t.dev);
        for (unsigned v = 0; v <= FAKE_QUEUES; v++)
                g_assert_false(fired(irq[v]));
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_MSIX_PBA_OFFSET, 8), ==, 0);

        /* Bad vectors and roles are refused. */
        int e = eventfd(0, EFD_CLOEXEC);
        g_assert_cmpint(attach(&t, PROTO_FD_IRQ, FAKE_QUEUES + 1, e), ==, -EINVAL);
        g_assert_cmpint(attach(&t, PROTO_FD_IOEVENT, FAKE_QUEUES, e), ==, -EINVAL);
        g_assert_cmpint(attach(&t, PROTO_FD_CONSOLE, 0, e), ==, -EINVAL);
        g_assert_cmpint(attach(&t, 99, 0, e), ==, -EINVAL);
        g_assert_cmpint(attach(&t, PROTO_FD_MEMORY, 0, e), ==, -EINVAL); /* size 0 */
        close(e);
        for (unsigned v = 0; v <= FAKE_QUEUES; v++)
                close(irq[v]);
        t_done(&t);
}

static void test_isr_read_to_clear_and_config_generation(void) {
        uint8_t gen;
        struct t t;
        int intx = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

        t_init(&t);
        map_bar(&t);
        g_assert_cmpint(attach(&t, PROTO_FD_IRQ, PROTO_IRQ_INTX, intx), ==, 0);
        gen = (uint8_t) cc_read(&t, CC_CFGGEN, 1);
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_ISR_OFFSET, 1), ==, 0);
        virtio_pci_config_changed(t.dev);
        g_assert_cmpuint(cc_read(&t, CC_CFGGEN, 1), ==, (uint8_t) (gen + 1));
        g_assert_true(fired(intx)); /* no MSI-X: INTx */
        g_assert_cmphex(cfg_read(&t, 1) >> 16 & 0x8, ==, 0x8);
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_ISR_OFFSET, 1), ==, 0x2);
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_ISR_OFFSET, 1), ==, 0);
        g_assert_cmphex(cfg_read(&t, 1) >> 16 & 0x8, ==, 0);
        /* INTx disable in the command register: no edge. */
        cfg_write(&t, 0x05, 1, 0x04);
        virtio_pci_config_changed(t.dev);
        g_assert_false(fired(intx));
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_ISR_OFFSET, 1), ==, 0x2);
        /* Device config through the BAR; outside it reads 0, writes vanish. */
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_DEVICE_OFFSET, 8), ==, 0x8877665544332211ULL);
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_DEVICE_OFFSET + 6, 2), ==, 0x8877);
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_DEVICE_OFFSET + 6, 4), ==, 0);
        bar_write(&t, VIRTIO_PCI_DEVICE_OFFSET + 1, 2, 0xbeef);
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_DEVICE_OFFSET, 4), ==, 0x44beef11);
        bar_write(&t, VIRTIO_PCI_DEVICE_OFFSET + 7, 2, 0xffff);
        g_assert_cmphex(t.fake->config[7], ==, 0x88);
        close(intx);
        t_done(&t);
}

/* Every access size at every offset of BAR0 and config space: nothing
 * crashes (ASan/UBSan builds check the bounds), unknown places read 0. */
static void test_bad_offsets_and_lengths(void) {
        static const uint32_t sizes[] = { 1, 2, 4, 8 };
        uint8_t data[8];
        struct t t;

        t_init(&t);
        map_bar(&t);
        for (uint64_t off = 0; off < VIRTIO_PCI_BAR_SIZE; off++)
                for (size_t s = 0; s < 4; s++) {
                        if (off + sizes[s] > VIRTIO_PCI_BAR_SIZE)
                                continue;
                        g_assert_cmpint(t.kind.read(t.dev, 0, off, sizes[s], data), ==, 0);
                }
        g_assert_cmphex(bar_read(&t, 0x38, 8), ==, 0);
        g_assert_cmphex(bar_read(&t, 0x1001, 4), ==, 0);
        g_assert_cmphex(bar_read(&t, 0x6000, 8), ==, 0);
        g_assert_cmphex(bar_read(&t, VIRTIO_PCI_BAR_SIZE - 8, 8), ==, 0);
        /* Junk writes everywhere but common cfg (whose writes have meaning)
         * and the MSI-X control words. */
        for (uint64_t off = 0x38; off + 8 <= VIRTIO_PCI_BAR_SIZE; off += 3)
                bar_write(&t, off, 8 - off % 4, 0x0123456789abcdefULL);
        g_assert_cmphex(bar_read(&t, 0x6000, 8), ==, 0);
        /* Another range, or a length the loop never passes: refused. */
        g_assert_cmpint(t.kind.read(t.dev, 1, 0, 4, data), ==, -EINVAL);
        g_assert_cmpint(t.kind.write(t.dev, 1, 0, 4, data), ==, -EINVAL);
        memset(data, 0, sizeof(data));
        g_assert_cmpint(t.kind.read(t.dev, 0, VIRTIO_PCI_BAR_SIZE, 4, data), ==, 0);
        g_assert_cmpint(t.kind.read(t.dev, 0, UINT64_MAX - 2, 8, data), ==, 0);
        g_assert_cmpint(t.kind.write(t.dev, 0, UINT64_MAX - 2, 8, data), ==, 0);
        g_assert_cmpint(t.kind.read(t.dev, 0, 0, 9, data), ==, 0);

        /* Config space: every register, offset and length, and past it. */
        for (uint32_t reg = 0; reg < 80; reg++)
                for (uint32_t o = 0; o < 4; o++)
                        for (uint32_t l = 1; o + l <= 4; l++) {
                                struct proto_config_result res = {};
                                uint8_t junk[4] = { 0x5a, 0xa5, 0x3c, 0xc3 };

                                if (reg == 1 || reg == 4 || reg == 5)
                                        continue; /* command and BAR: tested above */
                                g_assert_cmpint(t.kind.write_config(t.dev, reg, o, l, junk, &res), ==, 0);
                                g_assert_cmpuint(res.n_mmio_add + res.n_mmio_remove, ==, 0);
                        }
        g_assert_cmpint(t.kind.write_config(t.dev, UINT32_MAX, 3, 4, data, &(struct proto_config_result) {}), ==, 0);
        g_assert_cmphex(cfg_read(&t, 0), ==, (0x1040u + 42) << 16 | 0x1af4);
        t_done(&t);
}

/* The data path: guest RAM from a memfd, rings in it, kicks on the
 * ioeventfd and the trapped notify address, MSI-X irqfds, the PCI cfg
 * window, and a broken ring that sets NEEDS_RESET. */
struct ring {
        uint64_t desc, avail, used;
        uint16_t idx;
};

static void add_buffer(uint8_t *ram, struct ring *r, uint16_t size, uint64_t addr, uint32_t len) {
        uint16_t d = r->idx % size, flags = 2;

        memcpy(ram + r->desc + 16 * d, &addr, 8);
        memcpy(ram + r->desc + 16 * d + 8, &len, 4);
        memcpy(ram + r->desc + 16 * d + 12, &flags, 2);
        memcpy(ram + r->avail + 4 + 2 * (r->idx % size), &d, 2);
        r->idx++;
        __atomic_store_n((uint16_t *) (ram + r->avail + 2), r->idx, __ATOMIC_RELEASE);
}

static uint16_t used_idx(uint8_t *ram, struct ring *r) {
        return __atomic_load_n((uint16_t *) (ram + r->used + 2), __ATOMIC_ACQUIRE);
}

static bool wait_fd(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, 2000) == 1 && fired(fd);
}

static void test_worker_data_path(void) {
        int memfd = memfd_create("ram", MFD_CLOEXEC), kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int irq0 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), irq1 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct ring r = { .desc = 0x1000, .avail = 0x2000, .used = 0x3000 };
        struct proto_ioevents ev = {};
        uint32_t window = 0, ctrl_at = 0;
        uint8_t *ram;
        struct t t;

        g_assert_cmpint(ftruncate(memfd, RAM), ==, 0);
        ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        g_assert_true(ram != MAP_FAILED);
        t_init(&t);
        /* No ioevents while the BAR does not decode. */
        g_assert_cmpint(t.kind.get_ioevents(t.dev, &ev), ==, 0);
        g_assert_cmpuint(ev.count, ==, 0);
        map_bar(&t);
        g_assert_cmpint(t.kind.get_ioevents(t.dev, &ev), ==, 0);
        g_assert_cmpuint(ev.count, ==, FAKE_QUEUES);
        for (unsigned q = 0; q < FAKE_QUEUES; q++) {
                g_assert_cmphex(ev.ioevents[q].address, ==, BAR + VIRTIO_PCI_NOTIFY_OFFSET + 4 * q);
                g_assert_cmpuint(ev.ioevents[q].arg, ==, q);
                g_assert_cmpuint(ev.ioevents[q].bus, ==, PROTO_BUS_MMIO);
        }
        g_assert_cmpint(attach(&t, PROTO_FD_MEMORY, 0, memfd), ==, 0);
        g_assert_cmpint(attach(&t, PROTO_FD_IOEVENT, 0, kick), ==, 0);
        g_assert_cmpint(attach(&t, PROTO_FD_IRQ, 0, irq0), ==, 0);
        g_assert_cmpint(attach(&t, PROTO_FD_IRQ, 1, irq1), ==, 0);
        for (uint32_t at = cfg_byte(&t, 0x34); at; at = cfg_byte(&t, at + 1)) {
                if (cfg_byte(&t, at) == 0x11)
                        ctrl_at = at + 2;
                else if (cfg_byte(&t, at + 3) == 5)
                        window = at;
        }
        for (unsigned v = 0; v < 2; v++) {
                bar_write(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * v, 8, 0xfee00000);
                bar_write(&t, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * v + 12, 4, 0);
        }
        cfg_write(&t, ctrl_at, 2, 0x8000);

        g_assert_cmphex(negotiate(&t, VIRTIO_BIT(VIRTIO_F_VERSION_1)), ==, 0xb);
        cc_write(&t, CC_MSIX, 2, 0);
        cc_write(&t, CC_Q_SELECT, 2, 0);
        cc_write(&t, CC_Q_SIZE, 2, 8);
        cc_write(&t, CC_Q_MSIX, 2, 1);
        cc_write(&t, CC_Q_DESC, 8, r.desc);
        cc_write(&t, CC_Q_DRIVER, 8, r.avail);
        cc_write(&t, CC_Q_DEVICE, 8, r.used);
        cc_write(&t, CC_Q_ENABLE, 2, 1);
        /* Memory is mapped once, for good. */
        add_buffer(ram, &r, 8, 0x10000, 16); /* before DRIVER_OK: taken at start */
        cc_write(&t, CC_STATUS, 1, 0xf);
        g_assert_cmphex(cc_read(&t, CC_STATUS, 1), ==, 0xf);
        g_assert_true(wait_fd(irq1));
        g_assert_cmpuint(used_idx(ram, &r), ==, 1);
        {
                int m2 = memfd_create("ram2", MFD_CLOEXEC);
                g_assert_cmpint(ftruncate(m2, RAM), ==, 0);
                g_assert_cmpint(attach(&t, PROTO_FD_MEMORY, 0, m2), ==, -EALREADY);
                close(m2);
        }

        /* KVM's path: the ioeventfd. */
        add_buffer(ram, &r, 8, 0x10000, 16);
        g_assert_cmpint(write(kick, &(uint64_t) { 1 }, 8), ==, 8);
        g_assert_true(wait_fd(irq1));
        g_assert_cmpuint(used_idx(ram, &r), ==, 2);
        /* The trapped path: a write at the notify address. */
        add_buffer(ram, &r, 8, 0x10000, 16);
        bar_write(&t, VIRTIO_PCI_NOTIFY_OFFSET, 2, 0);
        g_assert_true(wait_fd(irq1));
        g_assert_cmpuint(used_idx(ram, &r), ==, 3);
        /* A notify of a queue that is not set up does nothing. */
        bar_write(&t, VIRTIO_PCI_NOTIFY_OFFSET + 4, 2, 1);
        bar_write(&t, VIRTIO_PCI_NOTIFY_OFFSET + 2, 2, 0);

        /* The PCI cfg window: num_queues through config space, and a
         * notify write through it too. */
        cfg_write(&t, window + 4, 1, 0);
        cfg_write(&t, window + 8, 4, VIRTIO_PCI_COMMON_OFFSET + CC_NUMQ);
        cfg_write(&t, window + 12, 4, 2);
        g_assert_cmphex(cfg_read(&t, window / 4 + 4) & 0xffff, ==, FAKE_QUEUES);
        cfg_write(&t, window + 8, 4, 3); /* misaligned: nothing happens */
        g_assert_cmphex(cfg_read(&t, window / 4 + 4) & 0xffff, ==, FAKE_QUEUES);
        add_buffer(ram, &r, 8, 0x10000, 16);
        cfg_write(&t, window + 8, 4, VIRTIO_PCI_NOTIFY_OFFSET);
        cfg_write(&t, window + 16, 2, 0);
        g_assert_true(wait_fd(irq1));
        g_assert_cmpuint(used_idx(ram, &r), ==, 4);

        /* A buffer outside RAM: NEEDS_RESET and a config interrupt. */
        add_buffer(ram, &r, 8, RAM - 8, 16);
        g_assert_cmpint(write(kick, &(uint64_t) { 1 }, 8), ==, 8);
        g_assert_true(wait_fd(irq0));
        g_assert_cmphex(cc_read(&t, CC_STATUS, 1), ==, 0x4f);
        g_assert_cmpuint(used_idx(ram, &r), ==, 4);
        /* Later kicks are ignored, the device keeps answering. */
        g_assert_cmpint(write(kick, &(uint64_t) { 1 }, 8), ==, 8);
        bar_write(&t, VIRTIO_PCI_NOTIFY_OFFSET, 2, 0);
        g_assert_cmpuint(cc_read(&t, CC_NUMQ, 2), ==, FAKE_QUEUES);

        /* Sleep and Wake stop and restart the worker; reset stops it. */
        g_assert_cmpint(t.kind.sleep(t.dev, NULL, 0), ==, 0);
        g_assert_cmpint(t.kind.wake(t.dev, NULL, 0), ==, 0);
        cc_write(&t, CC_STATUS, 1, 0);
        g_assert_cmphex(cc_read(&t, CC_STATUS, 1), ==, 0);
        t.kind.destroy_device(t.dev);
        t_done(&t);
        munmap(ram, RAM);
        close(memfd);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/virtio-pci/config-space-identity-and-capabilities", test_config_space_identity_and_capabilities);
        g_test_add_func("/virtio-pci/bar-sizing-and-moves-report-ranges", test_bar_sizing_and_moves_report_ranges);
        g_test_add_func("/virtio-pci/feature-negotiation", test_feature_negotiation);
        g_test_add_func("/virtio-pci/status-sequence-and-reset", test_status_sequence_and_reset);
        g_test_add_func("/virtio-pci/queue-registers", test_queue_registers);
        g_test_add_func("/virtio-pci/msix-table-mask-and-pending", test_msix_table_mask_and_pending);
        g_test_add_func("/virtio-pci/isr-read-to-clear-and-config-generation",
                        test_isr_read_to_clear_and_config_generation);
        g_test_add_func("/virtio-pci/bad-offsets-and-lengths", test_bad_offsets_and_lengths);
        g_test_add_func("/virtio-pci/worker-data-path", test_worker_data_path);
        return g_test_run();
}
