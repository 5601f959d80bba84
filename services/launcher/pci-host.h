/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The PCI host bridge: configuration mechanism #1 on bus 0. CONFIG_ADDRESS
 * is a dword at 0xCF8 (bit 31 enable, bus 23:16, device 15:11, function
 * 10:8, register 7:2); CONFIG_DATA is 0xCFC-0xCFF, byte/word/dword at any
 * offset inside the dword. Device 0 is the bridge itself, the other slots
 * are device processes that serve their config space over ReadConfig/
 * WriteConfig; a WriteConfig result that moves BARs is applied to the
 * address map. A byte access at 0xCF9 is not ours: it is the FADT reset
 * register (pm.c), as on PC chipsets. Docs: docs/architecture.md. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "address-map.h"
#include "device-proxy.h"

#define PCI_HOST_CONFIG_ADDRESS 0xcf8
#define PCI_HOST_CONFIG_DATA 0xcfc
#define PCI_HOST_PORTS 8 /* 0xCF8-0xCFF */
#define PCI_HOST_SLOTS 32
#define PCI_HOST_ENABLE (1u << 31)

/* The bridge's ids: those of QEMU's q35 host bridge (Intel 82G33/P35 MCH),
 * which Linux handles as a plain host bridge. */
#define PCI_HOST_VENDOR_ID 0x8086
#define PCI_HOST_DEVICE_ID 0x29c0
#define PCI_HOST_CLASS 0x060000 /* bridge, host bridge */

struct pci_host {
        _Atomic uint32_t config_address; /* the latch; guests serialize cf8/cfc pairs themselves */
        struct address_map *map;
        /* slots[0] is the bridge (NULL). Filled before vCPUs run, then read-only. */
        struct device_proxy *slots[PCI_HOST_SLOTS];
        unsigned n_slots;
};

void pci_host_init(struct pci_host *h, struct address_map *map);

/* Puts d in the next free slot (1..31): its slot number, or -ENOSPC. */
int pci_host_add_device(struct pci_host *h, struct device_proxy *d);

/* Whether d is a PCI device, decided from what it says and not from its
 * kind: it has no ranges of its own at activation (its BARs appear through
 * config writes) and ReadConfig(0) answers with a valid vendor id (neither
 * 0x0000 nor 0xFFFF). Adds it if so. Returns the slot, 0 for "not PCI", or
 * -ENOSPC. */
int pci_host_probe_device(struct pci_host *h, struct device_proxy *d);

/* Whether [port, port+len) touches 0xCF8-0xCFF (device ranges must not). */
bool pci_host_port_is_ours(uint64_t port, uint64_t len);
/* Whether a guest access of size bytes at port goes to pci_host_io(): all
 * of 0xCF8-0xCFF except a byte at 0xCF9 (pm_access_is_ours() takes that). */
bool pci_host_access_is_ours(uint16_t port, uint32_t size);

/* A dword of slot's config space (reg 0..63), as a guest access reaches it:
 * writes apply what moved and refresh the device's data path. For the
 * firmware role (pci-firmware.c). Reads of nothing are all ones. */
uint32_t pci_host_config_read(struct pci_host *h, unsigned slot, uint32_t reg);
void pci_host_config_write(struct pci_host *h, unsigned slot, uint32_t reg, uint32_t value);

/* A guest access (size 1, 2 or 4) to our ports; reads of nothing are all ones. */
void pci_host_io(struct pci_host *h, uint16_t port, uint8_t *data, uint32_t size, bool is_write);
