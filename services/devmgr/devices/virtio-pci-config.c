/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PCI config space of a virtio device (virtio 1.2 4.1.2-4.1.4): a type 0
 * header, BAR0 as one 64-bit memory BAR, the virtio vendor capabilities
 * (common, notify, ISR, device, PCI cfg access) and MSI-X. Config space is
 * bytes plus a write mask, as on hardware: a write changes only the
 * writable bits, so BAR sizing (all ones, read back the size mask) falls
 * out of the mask. What a write changes in the BAR's decoding is reported
 * as MMIO ranges to remove and add. */
#include <string.h>

#include "log.h"
#include "virtio-pci-internal.h"

#define PCI_VENDOR_ID       0x00
#define PCI_DEVICE_ID       0x02
#define PCI_COMMAND         0x04
#define PCI_STATUS          0x06
#define PCI_REVISION        0x08
#define PCI_CLASS_PROG      0x09
#define PCI_CACHE_LINE      0x0c
#define PCI_LATENCY         0x0d
#define PCI_HEADER_TYPE     0x0e
#define PCI_BAR0            0x10
#define PCI_BAR1            0x14
#define PCI_SUBSYS_VENDOR   0x2c
#define PCI_SUBSYS_ID       0x2e
#define PCI_CAP_PTR         0x34
#define PCI_INTERRUPT_LINE  0x3c
#define PCI_INTERRUPT_PIN   0x3d

#define PCI_STATUS_INTERRUPT 0x08
#define PCI_STATUS_CAP_LIST  0x10
#define PCI_BAR_MEM_64       0x04

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG    3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG    5

/* struct virtio_pci_cap: vndr, next, len, cfg_type, bar, id, pad[2],
 * offset (le32), length (le32). */
static void put_cap(struct virtio_pci *vp, unsigned at, unsigned next, unsigned len, unsigned type,
                    uint32_t offset, uint32_t length) {
        uint8_t *c = vp->config + at;

        c[0] = PCI_CAP_ID_VNDR;
        c[1] = (uint8_t) next;
        c[2] = (uint8_t) len;
        c[3] = (uint8_t) type;
        c[4] = 0; /* BAR0 */
        le_put(c + 8, 4, offset);
        le_put(c + 12, 4, length);
}

void virtio_pci_config_init(struct virtio_pci *vp) {
        uint8_t *c = vp->config, *w = vp->wmask;
        bool has_device = vp->info.config_len > 0;
        unsigned after_isr = has_device ? VIRTIO_CAP_DEVICE : VIRTIO_CAP_PCI_CFG;

        memset(c, 0, PCI_CONFIG_SIZE);
        memset(w, 0, PCI_CONFIG_SIZE);

        le_put(c + PCI_VENDOR_ID, 2, VIRTIO_PCI_VENDOR_ID);
        le_put(c + PCI_DEVICE_ID, 2, VIRTIO_PCI_DEVICE_ID_BASE + vp->info.device_id);
        le_put(c + PCI_STATUS, 2, PCI_STATUS_CAP_LIST);
        c[PCI_REVISION] = VIRTIO_PCI_REVISION;
        le_put(c + PCI_CLASS_PROG, 3, vp->info.pci_class);
        c[PCI_HEADER_TYPE] = 0;
        le_put(c + PCI_BAR0, 4, PCI_BAR_MEM_64);
        le_put(c + PCI_SUBSYS_VENDOR, 2, VIRTIO_PCI_VENDOR_ID);
        le_put(c + PCI_SUBSYS_ID, 2, vp->info.device_id);
        c[PCI_CAP_PTR] = VIRTIO_CAP_COMMON;
        c[PCI_INTERRUPT_PIN] = 1; /* INTA# */

        /* Memory space, bus master, INTx disable; no I/O BAR. */
        le_put(w + PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
        w[PCI_CACHE_LINE] = 0xff;
        w[PCI_LATENCY] = 0xff;
        le_put(w + PCI_BAR0, 4, ~(uint32_t) (VIRTIO_PCI_BAR_SIZE - 1));
        le_put(w + PCI_BAR1, 4, UINT32_MAX);
        w[PCI_INTERRUPT_LINE] = 0xff;

        put_cap(vp, VIRTIO_CAP_COMMON, VIRTIO_CAP_NOTIFY, 16, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFFSET,
                VIRTIO_PCI_COMMON_LEN);
        put_cap(vp, VIRTIO_CAP_NOTIFY, VIRTIO_CAP_ISR, 20, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFFSET,
                VIRTIO_PCI_NOTIFY_MULTIPLIER * vp->info.num_queues);
        le_put(c + VIRTIO_CAP_NOTIFY + 16, 4, VIRTIO_PCI_NOTIFY_MULTIPLIER);
        put_cap(vp, VIRTIO_CAP_ISR, after_isr, 16, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFFSET, 1);
        if (has_device)
                put_cap(vp, VIRTIO_CAP_DEVICE, VIRTIO_CAP_PCI_CFG, 16, VIRTIO_PCI_CAP_DEVICE_CFG,
                        VIRTIO_PCI_DEVICE_OFFSET, vp->info.config_len);
        /* The PCI cfg access window: bar, offset and length are the
         * driver's to write, then pci_cfg_data is the access. */
        put_cap(vp, VIRTIO_CAP_PCI_CFG, VIRTIO_CAP_MSIX, 20, VIRTIO_PCI_CAP_PCI_CFG, 0, 0);
        memset(w + VIRTIO_CAP_PCI_CFG + 4, 0xff, 1);
        memset(w + VIRTIO_CAP_PCI_CFG + 8, 0xff, 12);

        /* MSI-X: id, next, message control (table size - 1; enable and
         * function mask writable), table and PBA offset/BIR in BAR0. */
        c[VIRTIO_CAP_MSIX] = PCI_CAP_ID_MSIX;
        c[VIRTIO_CAP_MSIX + 1] = 0;
        le_put(c + VIRTIO_CAP_MSIX + 2, 2, vp->n_vectors - 1);
        le_put(w + VIRTIO_CAP_MSIX + 2, 2, PCI_MSIX_ENABLE | PCI_MSIX_MASKALL);
        le_put(c + VIRTIO_CAP_MSIX + 4, 4, VIRTIO_PCI_MSIX_TABLE_OFFSET);
        le_put(c + VIRTIO_CAP_MSIX + 8, 4, VIRTIO_PCI_MSIX_PBA_OFFSET);
}

static uint16_t msix_control(const struct virtio_pci *vp) {
        return (uint16_t) le_get(vp->config + VIRTIO_CAP_MSIX + 2, 2);
}

bool virtio_pci_msix_enabled(const struct virtio_pci *vp) {
        return msix_control(vp) & PCI_MSIX_ENABLE;
}

bool virtio_pci_msix_function_masked(const struct virtio_pci *vp) {
        return msix_control(vp) & PCI_MSIX_MASKALL;
}

bool virtio_pci_msix_vector_masked(const struct virtio_pci *vp, unsigned v) {
        return v >= vp->n_vectors || (le_get(vp->msix_table + 16 * v + 12, 4) & PCI_MSIX_ENTRY_MASKED);
}

void virtio_pci_msix_deliver_pending(struct virtio_pci *vp) {
        if (!virtio_pci_msix_enabled(vp) || virtio_pci_msix_function_masked(vp))
                return;
        for (unsigned v = 0; v < vp->n_vectors; v++) {
                if (!(vp->msix_pba & (UINT64_C(1) << v)) || virtio_pci_msix_vector_masked(vp, v))
                        continue;
                vp->msix_pba &= ~(UINT64_C(1) << v);
                virtio_pci_raise(vp, (uint16_t) v);
        }
}

bool virtio_pci_bar_decodes(const struct virtio_pci *vp, uint64_t *ret_base) {
        uint64_t base = (le_get(vp->config + PCI_BAR0, 4) & ~UINT64_C(0xf)) |
                        le_get(vp->config + PCI_BAR1, 4) << 32;

        if (!(le_get(vp->config + PCI_COMMAND, 2) & PCI_COMMAND_MEMORY))
                return false;
        /* 0 is "not assigned"; a base whose range would wrap is no range. */
        if (base == 0 || base + VIRTIO_PCI_BAR_SIZE < base)
                return false;
        *ret_base = base;
        return true;
}

/* The PCI cfg access window (4.1.4.9): an access of cap.length (1, 2 or 4)
 * at cap.offset (aligned to it) of BAR0; anything else does nothing. */
static bool window_access(const struct virtio_pci *vp, uint32_t *ret_offset, uint32_t *ret_len) {
        const uint8_t *c = vp->config + VIRTIO_CAP_PCI_CFG;
        uint32_t offset = (uint32_t) le_get(c + 8, 4), len = (uint32_t) le_get(c + 12, 4);

        if (c[4] != 0 || (len != 1 && len != 2 && len != 4) || offset % len != 0 ||
            offset > VIRTIO_PCI_BAR_SIZE - len)
                return false;
        *ret_offset = offset;
        *ret_len = len;
        return true;
}

uint32_t virtio_pci_config_read(struct virtio_pci *vp, uint32_t reg) {
        uint32_t at, value, offset, len;

        /* Only the 256 bytes of conventional config space exist. */
        if (reg >= PCI_CONFIG_SIZE / 4)
                return 0;
        at = reg * 4;
        if (at == VIRTIO_CAP_PCI_CFG + 16 && window_access(vp, &offset, &len)) {
                uint8_t data[4] = {};

                virtio_pci_bar_read(vp, offset, len, data);
                memcpy(vp->config + at, data, 4);
        }
        value = (uint32_t) le_get(vp->config + at, 4);
        if (at == PCI_COMMAND && vp->isr && !virtio_pci_msix_enabled(vp))
                value |= (uint32_t) PCI_STATUS_INTERRUPT << 16;
        return value;
}

void virtio_pci_config_write(struct virtio_pci *vp, uint32_t reg, uint32_t offset, uint32_t len,
                             const uint8_t *data, struct proto_config_result *ret) {
        uint16_t old_msix = msix_control(vp);
        uint64_t base = 0;
        uint32_t at, woff, wlen;
        bool decodes;

        if (reg >= PCI_CONFIG_SIZE / 4 || offset > 3 || len > 4 - offset)
                return; /* nothing there: the write vanishes */
        at = reg * 4 + offset;
        for (uint32_t i = 0; i < len; i++)
                vp->config[at + i] = (uint8_t) ((vp->config[at + i] & ~vp->wmask[at + i]) |
                                                (data[i] & vp->wmask[at + i]));

        if (reg * 4 == VIRTIO_CAP_PCI_CFG + 16 && window_access(vp, &woff, &wlen))
                virtio_pci_bar_write(vp, woff, wlen, vp->config + VIRTIO_CAP_PCI_CFG + 16);

        if (msix_control(vp) != old_msix)
                virtio_pci_msix_deliver_pending(vp);

        /* The BAR's range exists while it decodes; say exactly when that
         * changes. */
        decodes = virtio_pci_bar_decodes(vp, &base);
        if (decodes == vp->bar_mapped && (!decodes || base == vp->bar_base))
                return;
        if (vp->bar_mapped)
                ret->mmio_remove[ret->n_mmio_remove++] = (struct proto_range) {
                        .base = vp->bar_base, .len = VIRTIO_PCI_BAR_SIZE, .bus = PROTO_BUS_MMIO };
        if (decodes)
                ret->mmio_add[ret->n_mmio_add++] = (struct proto_range) {
                        .base = base, .len = VIRTIO_PCI_BAR_SIZE, .bus = PROTO_BUS_MMIO };
        log_debug("BAR0 %s at 0x%llx.", decodes ? "decodes" : "no longer decodes",
                  (unsigned long long) (decodes ? base : vp->bar_base));
        vp->bar_mapped = decodes;
        vp->bar_base = decodes ? base : 0;
}
