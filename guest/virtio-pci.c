/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio over PCI, modern interface (virtio 1.2, 4.1), as Linux's
 * virtio_pci_modern drives it: capabilities, the 3.1.1 init sequence,
 * MSI-X with a fallback to INTx, and synchronous split-ring requests. */
#include "acpi.h"
#include "apic.h"
#include "console.h"
#include "cpu.h"
#include "io.h"
#include "lib.h"
#include "virtio-pci.h"
#include "virtio.h"

/* Vendor capability cfg_type (4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5
#define VIRTIO_PCI_CAP_LEN 16
#define VIRTIO_PCI_NOTIFY_CAP_LEN 20

/* struct virtio_pci_common_cfg (4.1.4.3) */
#define CC_DEVICE_FEATURE_SELECT 0x00
#define CC_DEVICE_FEATURE 0x04
#define CC_DRIVER_FEATURE_SELECT 0x08
#define CC_DRIVER_FEATURE 0x0c
#define CC_CONFIG_MSIX_VECTOR 0x10
#define CC_NUM_QUEUES 0x12
#define CC_DEVICE_STATUS 0x14
#define CC_CONFIG_GENERATION 0x15
#define CC_QUEUE_SELECT 0x16
#define CC_QUEUE_SIZE 0x18
#define CC_QUEUE_MSIX_VECTOR 0x1a
#define CC_QUEUE_ENABLE 0x1c
#define CC_QUEUE_NOTIFY_OFF 0x1e
#define CC_QUEUE_DESC 0x20
#define CC_QUEUE_DRIVER 0x28
#define CC_QUEUE_DEVICE 0x30
#define CC_MIN_LEN 0x38 /* up to queue_device, what Linux requires */

/* Device status (2.1) */
#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define STATUS_NEEDS_RESET 0x40
#define STATUS_FAILED 0x80

#define ISR_QUEUE 0x1
#define ISR_CONFIG 0x2
#define VIRTIO_MSI_NO_VECTOR 0xffff

#define MSIX_CTRL 2
#define MSIX_TABLE 4
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_CTRL_SIZE_MASK 0x7ff
#define MSIX_ENTRY_SIZE 16
#define MSIX_ENTRY_CTRL_MASKED 1
#define MSI_ADDRESS_BASE 0xfee00000u /* architectural, whatever the LAPIC base */

/* INTx: level triggered, active high, the way QEMU's and KVM's PIC
 * routers present a PCI pin on an ISA IRQ line. */
#define INTX_FLAGS_DEFAULT 0xd
#define RESET_WAIT_NS 1000000000ULL
#define IRQ_AFTER_USED_NS 100000000ULL /* the interrupt may trail the used idx a little */
#define POLL_STEP_NS 50000ULL
#define CFG_GENERATION_TRIES 100

enum setup_result { SETUP_OK, SETUP_FAILED, SETUP_VECTOR_REFUSED };

static const struct virtio_driver *const drivers[] = {
        &virtio_rng_driver,
        &virtio_blk_driver,
        &virtio_net_driver,
        &virtio_console_driver,
        &virtio_vsock_driver,
};

static struct virtio_dev *intx_devs[VIRTIO_MAX_DEVS];
static unsigned n_intx_devs;
static unsigned intx_vector;
static uint8_t vq_pages[VIRTIO_MAX_DEVS * VIRTIO_MAX_QUEUES][4096] __attribute__((aligned(4096)));
static unsigned vq_pages_used;

const char *virtio_irq_mode_name(enum virtio_irq_mode m) {
        switch (m) {
        case VIRTIO_IRQ_MSIX:
                return "msix";
        case VIRTIO_IRQ_MSIX_SHARED:
                return "msix-shared";
        case VIRTIO_IRQ_INTX:
                return "intx";
        default:
                return "poll";
        }
}

static void barrier(void) {
        __asm__ volatile("" ::: "memory");
}

static uint8_t cc_read8(struct virtio_dev *v, uint32_t off) { return mmio_read8(v->common + off); }
static uint16_t cc_read16(struct virtio_dev *v, uint32_t off) { return mmio_read16(v->common + off); }
static uint32_t cc_read32(struct virtio_dev *v, uint32_t off) { return mmio_read32(v->common + off); }
static void cc_write8(struct virtio_dev *v, uint32_t off, uint8_t x) { mmio_write8(v->common + off, x); }
static void cc_write16(struct virtio_dev *v, uint32_t off, uint16_t x) { mmio_write16(v->common + off, x); }
static void cc_write32(struct virtio_dev *v, uint32_t off, uint32_t x) { mmio_write32(v->common + off, x); }
/* 64-bit fields as two 32-bit writes, low half first, as Linux does. */
static void cc_write64(struct virtio_dev *v, uint32_t off, uint64_t x) {
        cc_write32(v, off, (uint32_t) x);
        cc_write32(v, off + 4, (uint32_t) (x >> 32));
}

static void add_status(struct virtio_dev *v, uint8_t s) {
        cc_write8(v, CC_DEVICE_STATUS, cc_read8(v, CC_DEVICE_STATUS) | s);
}

static bool device_reset(struct virtio_dev *v) {
        cc_write8(v, CC_DEVICE_STATUS, 0);
        /* 4.1.4.3.2: the device may take a while; the status reads 0 once done. */
        for (uint64_t waited = 0; cc_read8(v, CC_DEVICE_STATUS) != 0; waited += 1000000) {
                if (waited >= RESET_WAIT_NS) {
                        kprintf("%s: reset did not complete (status 0x%x)\n", v->name,
                                cc_read8(v, CC_DEVICE_STATUS));
                        return false;
                }
                sleep_ns(1000000);
        }
        return true;
}

/* Maps one vendor capability to an address after checking it lies in its
 * BAR. Returns false (loudly) if it does not. */
static bool map_cap(struct virtio_dev *v, uint8_t pos, const char *what, uint32_t min_len, uint64_t *ret_addr,
                    uint32_t *ret_len) {
        const struct pci_dev *d = v->pci;
        uint8_t bar = pci_read8(d, pos + 4);
        uint32_t off = pci_read32(d, pos + 8), len = pci_read32(d, pos + 12);
        if (len < min_len) {
                kprintf("%s: refused: %s capability at 0x%x: length %u < %u\n", v->name, what, pos, len, min_len);
                return false;
        }
        const struct pci_bar *b = &d->bars[bar];
        if (b->size && b->addr == 0) {
                kprintf("%s: refused: %s capability: bar%u is unassigned (address 0)\n", v->name, what, bar);
                return false;
        }
        if (b->io) {
                kprintf("%s: refused: %s capability: bar%u is an I/O BAR (only memory BARs are supported)\n",
                        v->name, what, bar);
                return false;
        }
        if (b->addr + b->size > PCI_MAPPED_LIMIT) {
                kprintf("%s: refused: %s capability: bar%u at 0x%lx is above the 4 GiB the guest maps\n", v->name,
                        what, bar, b->addr);
                return false;
        }
        if (!pci_bar_range_ok(d, bar, off, len)) {
                kprintf("%s: refused: %s capability at 0x%x: bar%u offset 0x%x length 0x%x is outside the BAR "
                        "(0x%lx size 0x%lx)\n",
                        v->name, what, pos, bar, off, len, b->addr, b->size);
                return false;
        }
        *ret_addr = b->addr + off;
        *ret_len = len;
        return true;
}

/* 4.1.4: the first capability of each type with a valid BAR number; one
 * that points outside its BAR refuses the device. */
static bool find_caps(struct virtio_dev *v) {
        const struct pci_dev *d = v->pci;
        uint8_t seen = 0;
        uint32_t dummy;
        for (uint8_t pos = pci_find_cap(d, PCI_CAP_ID_VNDR, 0); pos; pos = pci_find_cap(d, PCI_CAP_ID_VNDR, pos)) {
                uint8_t cap_len = pci_read8(d, pos + 2), type = pci_read8(d, pos + 3), bar = pci_read8(d, pos + 4);
                if (type < VIRTIO_PCI_CAP_COMMON_CFG || type > VIRTIO_PCI_CAP_DEVICE_CFG || (seen & 1u << type))
                        continue; /* PCI cfg access, shared memory, vendor data, or a later duplicate */
                if (bar >= PCI_NUM_BARS) {
                        /* 4.1.4.1: reserved BAR values are ignored, not fatal. */
                        kprintf("%s: capability at 0x%x (type %u) names bar %u, ignored\n", v->name, pos, type, bar);
                        continue;
                }
                if (cap_len < VIRTIO_PCI_CAP_LEN) {
                        kprintf("%s: refused: capability at 0x%x has cap_len %u < 16\n", v->name, pos, cap_len);
                        return false;
                }
                bool ok = true;
                switch (type) {
                case VIRTIO_PCI_CAP_COMMON_CFG:
                        ok = map_cap(v, pos, "common cfg", CC_MIN_LEN, &v->common, &dummy);
                        break;
                case VIRTIO_PCI_CAP_NOTIFY_CFG:
                        if (cap_len < VIRTIO_PCI_NOTIFY_CAP_LEN) {
                                kprintf("%s: refused: notify capability cap_len %u < 20\n", v->name, cap_len);
                                return false;
                        }
                        v->notify_mult = pci_read32(d, pos + 16);
                        ok = map_cap(v, pos, "notify", 2, &v->notify, &v->notify_len);
                        break;
                case VIRTIO_PCI_CAP_ISR_CFG:
                        ok = map_cap(v, pos, "isr", 1, &v->isr, &dummy);
                        break;
                case VIRTIO_PCI_CAP_DEVICE_CFG:
                        ok = map_cap(v, pos, "device cfg", 1, &v->device_cfg, &v->device_cfg_len);
                        break;
                }
                if (!ok)
                        return false;
                seen |= 1u << type;
        }
        static const char *const names[] = { "", "common cfg", "notify", "isr" };
        for (unsigned t = VIRTIO_PCI_CAP_COMMON_CFG; t <= VIRTIO_PCI_CAP_ISR_CFG; t++)
                if (!(seen & 1u << t)) {
                        kprintf("%s: refused: no usable %s capability\n", v->name, names[t]);
                        return false;
                }
        return true;
}

static void msix_irq(void *arg, unsigned vector) {
        struct virtio_dev *v = arg;
        unsigned entry = vector - v->vector_base;
        if (entry == 0) {
                v->config_irqs++;
                return;
        }
        for (unsigned i = 0; i < v->n_vqs; i++)
                if (v->irq_mode == VIRTIO_IRQ_MSIX_SHARED || entry == 1 + i)
                        v->vqs[i].irqs++;
}

/* A shared line: every INTx device is asked; reading ISR clears it and
 * drops the device's level before the EOI. */
static void intx_irq(void *arg, unsigned vector) {
        for (unsigned i = 0; i < n_intx_devs; i++) {
                struct virtio_dev *v = intx_devs[i];
                uint8_t isr = mmio_read8(v->isr);
                if (isr & ISR_QUEUE)
                        for (unsigned q = 0; q < v->n_vqs; q++)
                                v->vqs[q].irqs++;
                if (isr & ISR_CONFIG)
                        v->config_irqs++;
        }
}

static bool msix_find(struct virtio_dev *v) {
        const struct pci_dev *d = v->pci;
        v->msix_cap = pci_find_cap(d, PCI_CAP_ID_MSIX, 0);
        if (!v->msix_cap)
                return false;
        v->msix_table_size = (pci_read16(d, v->msix_cap + MSIX_CTRL) & MSIX_CTRL_SIZE_MASK) + 1;
        uint32_t t = pci_read32(d, v->msix_cap + MSIX_TABLE);
        unsigned bir = t & 7;
        uint32_t off = t & ~7u;
        if (!pci_bar_range_ok(d, bir, off, (uint64_t) v->msix_table_size * MSIX_ENTRY_SIZE)) {
                kprintf("%s: MSI-X table (bar%u offset 0x%x, %u entries) is not in an assigned BAR, not used\n",
                        v->name, bir, off, v->msix_table_size);
                v->msix_cap = 0;
                return false;
        }
        v->msix_table = d->bars[bir].addr + off;
        return true;
}

static void msix_set_enabled(struct virtio_dev *v, bool on) {
        uint16_t ctrl = pci_read16(v->pci, v->msix_cap + MSIX_CTRL);
        if (!on) {
                pci_write16(v->pci, v->msix_cap + MSIX_CTRL, ctrl & ~(MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL));
                return;
        }
        /* Enabled with the function masked while the entries are written,
         * as Linux does, then unmasked. */
        pci_write16(v->pci, v->msix_cap + MSIX_CTRL, ctrl | MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
        unsigned n = v->irq_mode == VIRTIO_IRQ_MSIX ? 1 + v->n_vqs : 2;
        for (unsigned i = 0; i < n; i++) {
                uint64_t e = v->msix_table + i * MSIX_ENTRY_SIZE;
                mmio_write32(e + 0, MSI_ADDRESS_BASE | lapic_id() << 12);
                mmio_write32(e + 4, 0);
                mmio_write32(e + 8, v->vector_base + i); /* fixed, edge */
                mmio_write32(e + 12, 0);                 /* unmasked */
        }
        pci_write16(v->pci, v->msix_cap + MSIX_CTRL, (ctrl | MSIX_CTRL_ENABLE) & ~MSIX_CTRL_MASKALL);
}

static bool intx_setup(struct virtio_dev *v) {
        const struct pci_dev *d = v->pci;
        if (!d->irq_pin || d->irq_line == 0 || d->irq_line == 0xff || !acpi.have_ioapic) {
                kprintf("%s: no INTx (pin %u line %u%s): polling the used ring\n", v->name, d->irq_pin, d->irq_line,
                        acpi.have_ioapic ? "" : ", no IOAPIC");
                return false;
        }
        if (!intx_vector && !(intx_vector = irq_alloc_vectors(1, intx_irq, NULL))) {
                kprintf("%s: no free vector for INTx: polling the used ring\n", v->name);
                return false;
        }
        uint16_t flags;
        v->gsi = acpi_isa_irq_gsi(d->irq_line, &flags);
        /* Conforming trigger/polarity: a PCI line is level triggered. */
        if ((flags & 0xc) == 0)
                flags = INTX_FLAGS_DEFAULT;
        if (n_intx_devs >= VIRTIO_MAX_DEVS ||
            !ioapic_route(acpi.ioapic_addr, acpi.ioapic_gsi_base, v->gsi, intx_vector, flags, lapic_id())) {
                kprintf("%s: gsi %u cannot be routed: polling the used ring\n", v->name, v->gsi);
                return false;
        }
        intx_devs[n_intx_devs++] = v;
        return true;
}

static enum setup_result queue_setup(struct virtio_dev *v, unsigned i, const uint16_t *vector) {
        struct virtqueue *q = &v->vqs[i];
        cc_write16(v, CC_QUEUE_SELECT, i);
        uint16_t max = cc_read16(v, CC_QUEUE_SIZE);
        if (max == 0) {
                kprintf("%s: refused: queue %u is not available (queue_size 0)\n", v->name, i);
                return SETUP_FAILED;
        }
        if (cc_read16(v, CC_QUEUE_ENABLE)) {
                kprintf("%s: refused: queue %u is already enabled after reset\n", v->name, i);
                return SETUP_FAILED;
        }
        /* Split rings are a power of 2 (2.7); a smaller size may be written. */
        uint16_t size = 1;
        while (size * 2 <= max && size * 2 <= VQ_MAX_SIZE)
                size *= 2;
        uint16_t notify_off = cc_read16(v, CC_QUEUE_NOTIFY_OFF);
        uint64_t noff = (uint64_t) notify_off * v->notify_mult;
        if (noff + 2 > v->notify_len) {
                kprintf("%s: refused: queue %u notify offset 0x%lx is outside the notify region (0x%x bytes)\n",
                        v->name, i, noff, v->notify_len);
                return SETUP_FAILED;
        }
        if (!q->desc) {
                if (vq_pages_used >= ARRAY_SIZE(vq_pages)) {
                        kprintf("%s: refused: out of ring memory\n", v->name);
                        return SETUP_FAILED;
                }
                uint8_t *page = vq_pages[vq_pages_used++];
                q->desc = (struct virtq_desc *) page;                               /* 16 * 128 */
                q->avail = (volatile uint16_t *) (page + 16 * VQ_MAX_SIZE);        /* 6 + 2 * 128 */
                q->used = (volatile uint16_t *) (page + 16 * VQ_MAX_SIZE + 512);  /* 6 + 8 * 128 */
        }
        memset(q->desc, 0, 4096);
        q->dev = v;
        q->index = i;
        q->size = size;
        for (uint16_t k = 0; k < size; k++)
                q->desc[k].next = k + 1;
        memset(q->chain_len, 0, sizeof(q->chain_len));
        q->free_head = 0;
        q->num_free = size;
        q->avail_idx = q->last_used = 0;
        q->notify_addr = v->notify + noff;
        q->broken = NULL;

        cc_write16(v, CC_QUEUE_SIZE, size);
        cc_write64(v, CC_QUEUE_DESC, (uintptr_t) q->desc);
        cc_write64(v, CC_QUEUE_DRIVER, (uintptr_t) q->avail);
        cc_write64(v, CC_QUEUE_DEVICE, (uintptr_t) q->used);
        q->msix_vector = VIRTIO_MSI_NO_VECTOR;
        if (vector) {
                cc_write16(v, CC_QUEUE_MSIX_VECTOR, *vector);
                q->msix_vector = cc_read16(v, CC_QUEUE_MSIX_VECTOR);
                if (q->msix_vector == VIRTIO_MSI_NO_VECTOR) {
                        kprintf("%s: queue %u: the device refused MSI-X vector %u\n", v->name, i, *vector);
                        return SETUP_VECTOR_REFUSED;
                }
        }
        cc_write16(v, CC_QUEUE_ENABLE, 1);
        return SETUP_OK;
}

/* 3.1.1 from reset to DRIVER_OK, with one interrupt mode. */
static enum setup_result setup_once(struct virtio_dev *v, uint64_t wanted) {
        if (!device_reset(v))
                return SETUP_FAILED;
        add_status(v, STATUS_ACKNOWLEDGE);
        add_status(v, STATUS_DRIVER);

        cc_write32(v, CC_DEVICE_FEATURE_SELECT, 0);
        uint64_t lo = cc_read32(v, CC_DEVICE_FEATURE);
        cc_write32(v, CC_DEVICE_FEATURE_SELECT, 1);
        uint64_t hi = cc_read32(v, CC_DEVICE_FEATURE);
        v->device_features = hi << 32 | lo;
        if (!(v->device_features >> VIRTIO_F_VERSION_1 & 1)) {
                kprintf("%s: refused: the device does not offer VIRTIO_F_VERSION_1 (features 0x%lx)\n", v->name,
                        v->device_features);
                add_status(v, STATUS_FAILED);
                return SETUP_FAILED;
        }
        v->features = v->device_features & (wanted | 1ULL << VIRTIO_F_VERSION_1);
        cc_write32(v, CC_DRIVER_FEATURE_SELECT, 0);
        cc_write32(v, CC_DRIVER_FEATURE, (uint32_t) v->features);
        cc_write32(v, CC_DRIVER_FEATURE_SELECT, 1);
        cc_write32(v, CC_DRIVER_FEATURE, (uint32_t) (v->features >> 32));
        add_status(v, STATUS_FEATURES_OK);
        if (!(cc_read8(v, CC_DEVICE_STATUS) & STATUS_FEATURES_OK)) {
                kprintf("%s: refused: the device did not accept features 0x%lx (FEATURES_OK clear)\n", v->name,
                        v->features);
                add_status(v, STATUS_FAILED);
                return SETUP_FAILED;
        }

        uint16_t num_queues = cc_read16(v, CC_NUM_QUEUES);
        if (num_queues < v->n_vqs) {
                kprintf("%s: refused: %u queues needed, the device has %u\n", v->name, v->n_vqs, num_queues);
                add_status(v, STATUS_FAILED);
                return SETUP_FAILED;
        }

        bool msix = v->irq_mode == VIRTIO_IRQ_MSIX || v->irq_mode == VIRTIO_IRQ_MSIX_SHARED;
        pci_enable(v->pci, msix);
        if (msix) {
                msix_set_enabled(v, true);
                cc_write16(v, CC_CONFIG_MSIX_VECTOR, 0);
                if (cc_read16(v, CC_CONFIG_MSIX_VECTOR) == VIRTIO_MSI_NO_VECTOR) {
                        kprintf("%s: the device refused MSI-X vector 0 for config changes\n", v->name);
                        return SETUP_VECTOR_REFUSED;
                }
        }
        for (unsigned i = 0; i < v->n_vqs; i++) {
                uint16_t vec = v->irq_mode == VIRTIO_IRQ_MSIX ? 1 + i : 1;
                enum setup_result r = queue_setup(v, i, msix ? &vec : NULL);
                if (r == SETUP_FAILED)
                        add_status(v, STATUS_FAILED);
                if (r != SETUP_OK)
                        return r;
        }
        add_status(v, STATUS_DRIVER_OK);
        uint8_t st = cc_read8(v, CC_DEVICE_STATUS);
        if (st & (STATUS_NEEDS_RESET | STATUS_FAILED) || !(st & STATUS_DRIVER_OK)) {
                kprintf("%s: refused: status 0x%x after DRIVER_OK\n", v->name, st);
                return SETUP_FAILED;
        }
        return SETUP_OK;
}

bool virtio_pci_setup(struct virtio_dev *v, struct pci_dev *pci, const char *name, uint64_t wanted, unsigned n_vqs) {
        *v = (struct virtio_dev) { .pci = pci, .name = name, .n_vqs = n_vqs };
        if (n_vqs > VIRTIO_MAX_QUEUES)
                return false;
        if (!find_caps(v))
                return false;

        bool have_msix = msix_find(v);
        if (have_msix && v->msix_table_size >= 1 + n_vqs)
                v->irq_mode = VIRTIO_IRQ_MSIX;
        else if (have_msix && v->msix_table_size >= 2)
                v->irq_mode = VIRTIO_IRQ_MSIX_SHARED;
        else
                v->irq_mode = VIRTIO_IRQ_INTX;
        if (v->irq_mode != VIRTIO_IRQ_INTX && !(v->vector_base = irq_alloc_vectors(1 + n_vqs, msix_irq, v))) {
                kprintf("%s: no free interrupt vectors for MSI-X\n", v->name);
                v->irq_mode = VIRTIO_IRQ_INTX;
        }

        enum setup_result r = v->irq_mode == VIRTIO_IRQ_INTX ? SETUP_OK : setup_once(v, wanted);
        if (r == SETUP_VECTOR_REFUSED || v->irq_mode == VIRTIO_IRQ_INTX) {
                /* Linux's last resort: MSI-X off, the pin. */
                if (v->irq_mode != VIRTIO_IRQ_INTX) {
                        kprintf("%s: falling back to INTx\n", v->name);
                        (void) device_reset(v);
                        msix_set_enabled(v, false);
                }
                v->irq_mode = intx_setup(v) ? VIRTIO_IRQ_INTX : VIRTIO_IRQ_POLL;
                r = setup_once(v, wanted);
        }
        if (r != SETUP_OK)
                return false;

        kprintf("%s: %02x:%02x.%u features 0x%lx (offered 0x%lx), %u queue(s) of %u, irq %s", v->name, pci->bus,
                pci->slot, pci->fn, v->features, v->device_features, v->n_vqs, v->vqs[0].size,
                virtio_irq_mode_name(v->irq_mode));
        if (v->irq_mode == VIRTIO_IRQ_MSIX || v->irq_mode == VIRTIO_IRQ_MSIX_SHARED)
                kprintf(" vectors 0x%x-0x%x of %u entries\n", v->vector_base,
                        v->vector_base + (v->irq_mode == VIRTIO_IRQ_MSIX ? n_vqs : 1), v->msix_table_size);
        else if (v->irq_mode == VIRTIO_IRQ_INTX)
                kprintf(" line %u -> gsi %u -> vector 0x%x\n", pci->irq_line, v->gsi, intx_vector);
        else
                console_putc('\n');
        return true;
}

bool virtio_cfg_read(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len) {
        if (!v->device_cfg || off > v->device_cfg_len || len > v->device_cfg_len - off)
                return false;
        uint64_t a = v->device_cfg + off;
        for (unsigned tries = 0; tries < CFG_GENERATION_TRIES; tries++) {
                uint8_t gen = cc_read8(v, CC_CONFIG_GENERATION);
                switch (len) {
                case 1:
                        *(uint8_t *) buf = mmio_read8(a);
                        break;
                case 2:
                        *(uint16_t *) buf = mmio_read16(a);
                        break;
                case 4:
                        *(uint32_t *) buf = mmio_read32(a);
                        break;
                case 8: /* two 32-bit reads, as Linux does */
                        ((uint32_t *) buf)[0] = mmio_read32(a);
                        ((uint32_t *) buf)[1] = mmio_read32(a + 4);
                        break;
                default:
                        return false;
                }
                if (cc_read8(v, CC_CONFIG_GENERATION) == gen)
                        return true;
        }
        kprintf("%s: config_generation kept changing\n", v->name);
        return false;
}

static struct virtqueue *waiting_q;
static uint32_t waiting_irqs;

static uint16_t used_idx(const struct virtqueue *q) {
        return q->used[1];
}

static bool used_moved(void) {
        return used_idx(waiting_q) != waiting_q->last_used;
}

static bool irq_moved(void) {
        return waiting_q->irqs != waiting_irqs;
}

static bool wait_poll(bool (*done)(void), uint64_t ns) {
        for (uint64_t t = 0; t < ns; t += POLL_STEP_NS) {
                if (done())
                        return true;
                sleep_ns(POLL_STEP_NS);
        }
        return done();
}

int vq_add(struct virtqueue *q, const struct vq_buf *bufs, unsigned n) {
        if (q->broken || n == 0 || n > q->num_free)
                return -1;
        uint16_t head = q->free_head, idx = head;
        for (unsigned i = 0; i < n; i++) {
                struct virtq_desc *d = &q->desc[idx];
                d->addr = (uintptr_t) bufs[i].addr;
                d->len = bufs[i].len;
                d->flags = (bufs[i].write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
                if (i + 1 < n)
                        idx = d->next;
        }
        q->free_head = q->desc[idx].next;
        q->num_free -= n;
        q->chain_len[head] = n;

        q->avail[2 + q->avail_idx % q->size] = head;
        barrier(); /* x86 keeps stores in order; the compiler must too */
        q->avail[1] = ++q->avail_idx;
        return head;
}

void vq_kick(struct virtqueue *q) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        mmio_write16(q->notify_addr, q->index);
}

bool vq_get_used(struct virtqueue *q, uint16_t *ret_id, uint32_t *ret_len) {
        if (q->broken || used_idx(q) == q->last_used)
                return false;
        barrier();
        const volatile struct virtq_used_elem *ring = (const volatile struct virtq_used_elem *) (q->used + 2);
        struct virtq_used_elem e = { ring[q->last_used % q->size].id, ring[q->last_used % q->size].len };
        q->last_used++;
        if (e.id >= q->size || q->chain_len[e.id] == 0) {
                kprintf("%s: queue %u: the device returned id %u, which is not in flight\n", q->dev->name, q->index,
                        e.id);
                q->broken = "the device returned a wrong id";
                return false;
        }
        /* The chain is walked by its recorded length, not by the device-visible flags. */
        uint16_t last = e.id;
        for (unsigned k = 1; k < q->chain_len[e.id]; k++)
                last = q->desc[last].next;
        q->desc[last].next = q->free_head;
        q->free_head = e.id;
        q->num_free += q->chain_len[e.id];
        q->chain_len[e.id] = 0;
        *ret_id = e.id;
        *ret_len = e.len;
        return true;
}

void vq_pool_init(struct vq_pool *p, struct virtqueue *q, void *bufs, uint16_t n, uint32_t size, bool write) {
        *p = (struct vq_pool) { .q = q, .bufs = bufs, .size = size, .write = write };
        p->n = n < VQ_MAX_SIZE ? n : VQ_MAX_SIZE;
        memset(p->slot_of, -1, sizeof(p->slot_of));
}

bool vq_pool_put(struct vq_pool *p, unsigned slot, uint32_t len) {
        struct vq_buf b = { vq_pool_buf(p, slot), len, p->write };
        int head = vq_add(p->q, &b, 1);
        if (head < 0)
                return false;
        p->busy[slot] = true;
        p->slot_of[head] = (int16_t) slot;
        return true;
}

void vq_pool_put_all(struct vq_pool *p) {
        for (unsigned i = 0; i < p->n; i++)
                (void) vq_pool_put(p, i, p->size);
}

bool vq_pool_get(struct vq_pool *p, int *ret_slot, uint32_t *ret_len) {
        uint16_t id;
        if (!vq_get_used(p->q, &id, ret_len))
                return false;
        /* vq_get_used() only names heads in flight, so id < size. */
        int slot = p->slot_of[id];
        p->slot_of[id] = -1;
        if (slot >= 0)
                p->busy[slot] = false;
        *ret_slot = slot;
        return true;
}

unsigned vq_pool_drain(struct vq_pool *p, unsigned budget, void (*fn)(const uint8_t *buf, uint32_t len)) {
        int slot;
        uint32_t len;
        unsigned n = 0;
        while (n < budget && vq_pool_get(p, &slot, &len)) {
                n++;
                if (slot < 0)
                        continue;
                fn(vq_pool_buf(p, (unsigned) slot), len);
                (void) vq_pool_put(p, (unsigned) slot, p->size);
        }
        if (n)
                vq_kick(p->q);
        return n;
}

void vq_pool_reap(struct vq_pool *p) {
        int slot;
        uint32_t len;
        while (vq_pool_get(p, &slot, &len))
                ;
}

int vq_pool_alloc(struct vq_pool *p) {
        vq_pool_reap(p);
        for (unsigned i = 0; i < p->n; i++)
                if (!p->busy[i])
                        return (int) i;
        return -1;
}

int64_t vq_submit_wait(struct virtqueue *q, const struct vq_buf *bufs, unsigned n, uint64_t timeout_ns) {
        struct virtio_dev *v = q->dev;
        if (q->broken) {
                kprintf("%s: queue %u is not usable: %s\n", v->name, q->index, q->broken);
                return -1;
        }
        if (n == 0 || n > q->num_free) {
                kprintf("%s: queue %u: %u descriptors needed, %u free\n", v->name, q->index, n, q->num_free);
                return -1;
        }
        waiting_q = q;
        waiting_irqs = q->irqs;
        int head = vq_add(q, bufs, n);
        vq_kick(q);

        bool done = v->irq_mode == VIRTIO_IRQ_POLL ? wait_poll(used_moved, timeout_ns)
                                                   : wait_until(used_moved, timeout_ns);
        if (!done) {
                kprintf("%s: queue %u: no completion after %lu ms (used idx %u, avail idx %u, status 0x%x)\n", v->name,
                        q->index, timeout_ns / 1000000, used_idx(q), q->avail_idx, cc_read8(v, CC_DEVICE_STATUS));
                q->broken = "a request timed out";
                return -1;
        }
        uint16_t id;
        uint32_t len;
        if (!vq_get_used(q, &id, &len))
                return -1;
        if (id != head) {
                kprintf("%s: queue %u: the device returned id %u, %d was in flight\n", v->name, q->index, id, head);
                q->broken = "the device returned a wrong id";
                return -1;
        }

        if (v->irq_mode != VIRTIO_IRQ_POLL && !irq_moved() && !wait_until(irq_moved, IRQ_AFTER_USED_NS)) {
                kprintf("%s: queue %u: completion without an interrupt (%s)\n", v->name, q->index,
                        virtio_irq_mode_name(v->irq_mode));
                return -1;
        }
        return len;
}

static const char *virtio_kind(uint16_t id) {
        switch (id) {
        case VIRTIO_ID_NET:
                return "virtio-net";
        case VIRTIO_ID_BLOCK:
                return "virtio-blk";
        case VIRTIO_ID_CONSOLE:
                return "virtio-console";
        case VIRTIO_ID_ENTROPY:
                return "virtio-rng";
        case VIRTIO_ID_VSOCK:
                return "virtio-vsock";
        default:
                return "virtio";
        }
}

void virtio_probe_all(void) {
        for (unsigned i = 0; i < pci_n_devs; i++) {
                struct pci_dev *d = &pci_devs[i];
                /* 4.1.2: 0x1040 + id for modern devices; transitional ones
                 * (0x1000-0x103f) carry the id in the subsystem device id. */
                if (d->vendor != VIRTIO_PCI_VENDOR || d->device < 0x1000 || d->device > 0x107f ||
                    d->header_type != 0)
                        continue;
                uint16_t id = d->device >= 0x1040 ? d->device - 0x1040 : d->subsys_device;
                d->kind = virtio_kind(id);
                const struct virtio_driver *drv = NULL;
                for (unsigned k = 0; k < ARRAY_SIZE(drivers); k++)
                        if (drivers[k]->id == id)
                                drv = drivers[k];
                if (!drv) {
                        kprintf("%s: %02x:%02x.%u device id %u: no driver\n", d->kind, d->bus, d->slot, d->fn, id);
                        continue;
                }
                drv->probe(d);
        }
}
