/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* PCI bus 0 through configuration mechanism #1 (0xCF8/0xCFC). BARs are
 * used where the firmware (SeaBIOS, polyvm's launcher) put them; their
 * sizes are found the usual way, with decoding off meanwhile. */

#include <stdbool.h>
#include <stdint.h>

#define PCI_MAX_DEVS 64
#define PCI_MAPPED_LIMIT (1ULL << 32) /* the guest identity-maps the low 4 GiB */
#define PCI_NUM_BARS 6

#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_CLASS_REVISION 0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_CAP_PTR 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS_CAP_LIST 0x10

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

struct pci_bar {
        uint64_t addr; /* as programmed; 0 = unassigned */
        uint64_t size; /* 0 = not implemented */
        bool io;
        bool is64; /* takes this slot and the next */
        bool prefetch;
};

struct pci_dev {
        uint8_t bus, slot, fn;
        uint16_t vendor, device, subsys_device;
        uint32_t class; /* class, subclass, prog-if */
        uint8_t header_type;
        uint8_t irq_line, irq_pin;
        struct pci_bar bars[PCI_NUM_BARS];
        const char *kind; /* set by the driver that claimed it, e.g. "virtio-rng" */
};

extern struct pci_dev pci_devs[PCI_MAX_DEVS];
extern unsigned pci_n_devs;

uint8_t pci_read8(const struct pci_dev *d, uint8_t off);
uint16_t pci_read16(const struct pci_dev *d, uint8_t off);
uint32_t pci_read32(const struct pci_dev *d, uint8_t off);
void pci_write16(const struct pci_dev *d, uint8_t off, uint16_t v);
void pci_write32(const struct pci_dev *d, uint8_t off, uint32_t v);

/* Scans bus 0 (every slot, every function of multi-function devices),
 * sizing the BARs of type 0 headers. Prints one summary line. */
void pci_init(void);

/* Sets the command register's memory space and bus master bits, plus
 * INTx disable if asked (MSI-X in use). */
void pci_enable(const struct pci_dev *d, bool intx_disable);

/* The next capability with id after position `after` (0: from the start);
 * 0 if none. The list is bounded, so a looping list ends. */
uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t after);

/* Whether [off, off+len) lies inside the assigned memory BAR bar, and the
 * BAR below PCI_MAPPED_LIMIT. */
bool pci_bar_range_ok(const struct pci_dev *d, unsigned bar, uint64_t off, uint64_t len);

/* The `pci` command: one line per function. */
void pci_dump(void);
