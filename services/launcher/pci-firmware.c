/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "log.h"
#include "pci-firmware.h"

#define PCI_REG_COMMAND 1 /* dword 1: command (low 16 bits), status */
#define PCI_REG_HEADER 3  /* header type in bits 23:16 */
#define PCI_REG_BAR0 4
#define PCI_BARS 6
#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_BAR_IO 0x1
#define PCI_BAR_MEM_TYPE_MASK 0x6
#define PCI_BAR_MEM_TYPE_64 0x4

struct windows {
        uint64_t mmio_next;
        uint32_t io_next;
};

static uint64_t align_up(uint64_t v, uint64_t a) {
        return (v + a - 1) & ~(a - 1);
}

/* Sizes and places one BAR (and its upper half for a 64-bit one). Returns
 * how many BAR registers it used (1 or 2), or -ENOSPC. */
static int assign_bar(struct pci_host *h, unsigned slot, unsigned bar, struct windows *w, uint16_t *command,
                      char *err, size_t errlen) {
        uint32_t reg = PCI_REG_BAR0 + bar, old, mask, high_mask = 0;
        bool is64;
        uint64_t size, base;

        old = pci_host_config_read(h, slot, reg);
        pci_host_config_write(h, slot, reg, UINT32_MAX);
        mask = pci_host_config_read(h, slot, reg);
        if (mask == 0 || mask == UINT32_MAX) {
                pci_host_config_write(h, slot, reg, old);
                return 1; /* not implemented */
        }

        if (mask & PCI_BAR_IO) {
                size = (uint64_t) (~(mask & ~0x3u) & 0xffff) + 1;
                if (size > 0x10000 || (size & (size - 1)) != 0)
                        goto nonsense;
                base = align_up(w->io_next, size);
                if (base + size > PCI_FIRMWARE_IO_END) {
                        snprintf(err, errlen, "PCI 00:%02x.0 BAR%u: %" PRIu64 " bytes of I/O space do not fit", slot, bar,
                                 size);
                        return -ENOSPC;
                }
                pci_host_config_write(h, slot, reg, (uint32_t) base | PCI_BAR_IO);
                w->io_next = (uint32_t) (base + size);
                *command |= PCI_COMMAND_IO;
                return 1;
        }

        is64 = (mask & PCI_BAR_MEM_TYPE_MASK) == PCI_BAR_MEM_TYPE_64;
        if (is64) {
                if (bar + 1 >= PCI_BARS)
                        goto nonsense;
                pci_host_config_write(h, slot, reg + 1, UINT32_MAX);
                high_mask = pci_host_config_read(h, slot, reg + 1);
        }
        size = ~((uint64_t) high_mask << 32 | (mask & ~0xfu)) + 1;
        if (!is64)
                size &= 0xffffffffULL;
        if (size == 0 || (size & (size - 1)) != 0)
                goto nonsense;
        base = align_up(w->mmio_next, size);
        if (base < w->mmio_next || base + size > PCI_FIRMWARE_MMIO_END) {
                snprintf(err, errlen, "PCI 00:%02x.0 BAR%u: %" PRIu64 " bytes of MMIO space do not fit below 0x%llx",
                         slot, bar, size, PCI_FIRMWARE_MMIO_END);
                return -ENOSPC;
        }
        pci_host_config_write(h, slot, reg, (uint32_t) base | (mask & 0xfu));
        if (is64)
                pci_host_config_write(h, slot, reg + 1, 0);
        w->mmio_next = base + size;
        *command |= PCI_COMMAND_MEMORY;
        return is64 ? 2 : 1;

nonsense:
        log_warning("PCI 00:%02x.0 BAR%u: size mask 0x%08" PRIx32 " makes no sense; left unassigned.", slot, bar, mask);
        pci_host_config_write(h, slot, reg, 0);
        return 1;
}

int pci_firmware_assign(struct pci_host *h, char *err, size_t errlen) {
        struct windows w = { .mmio_next = PCI_FIRMWARE_MMIO_START, .io_next = PCI_FIRMWARE_IO_START };

        for (unsigned slot = 1; slot < h->n_slots; slot++) {
                uint32_t header = pci_host_config_read(h, slot, PCI_REG_HEADER);
                uint16_t command = 0;

                /* Decoding off while BARs move, as firmware and Linux do. */
                pci_host_config_write(h, slot, PCI_REG_COMMAND, 0);
                if (((header >> 16) & 0x7f) != 0) {
                        log_warning("PCI 00:%02x.0: header type 0x%02" PRIx32 " is not a plain device; left alone.", slot,
                                    (header >> 16) & 0x7f);
                        continue;
                }
                for (unsigned bar = 0; bar < PCI_BARS;) {
                        int n = assign_bar(h, slot, bar, &w, &command, err, errlen);
                        if (n < 0)
                                return n;
                        bar += (unsigned) n;
                }
                pci_host_config_write(h, slot, PCI_REG_COMMAND, command);
        }
        return 0;
}
