/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "device-datapath.h"
#include "layout.h"
#include "log.h"
#include "pci-host.h"

#define PCI_REG_ID 0x00
#define PCI_REG_CLASS 0x08 /* class << 8 | revision */

void pci_host_init(struct pci_host *h, struct address_map *map) {
        memset(h, 0, sizeof(*h));
        atomic_init(&h->config_address, 0);
        h->map = map;
        h->n_slots = 1; /* slot 0: the bridge */
}

int pci_host_add_device(struct pci_host *h, struct device_proxy *d) {
        if (h->n_slots >= PCI_HOST_SLOTS)
                return -ENOSPC;
        h->slots[h->n_slots] = d;
        return (int) h->n_slots++;
}

int pci_host_probe_device(struct pci_host *h, struct device_proxy *d) {
        uint32_t id;

        if (d->ranges.count != 0)
                return 0;
        if (device_proxy_read_config(d, PCI_REG_ID / 4, &id) < 0)
                return 0;
        if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0)
                return 0;
        return pci_host_add_device(h, d);
}

bool pci_host_port_is_ours(uint64_t port, uint64_t len) {
        return port < PCI_HOST_CONFIG_ADDRESS + PCI_HOST_PORTS && PCI_HOST_CONFIG_ADDRESS < port + len;
}

bool pci_host_access_is_ours(uint16_t port, uint32_t size) {
        _Static_assert(LAYOUT_RESET_PORT == PCI_HOST_CONFIG_ADDRESS + 1, "reset register inside CONFIG_ADDRESS");
        if (port < PCI_HOST_CONFIG_ADDRESS || (uint32_t) port + size > PCI_HOST_CONFIG_ADDRESS + PCI_HOST_PORTS)
                return false;
        return !(port == LAYOUT_RESET_PORT && size == 1);
}

/* The bridge's own config space: ids and class, everything else zero and
 * read-only (no BARs, no capabilities, header type 0, single function). */
static uint32_t bridge_read(uint32_t reg) {
        switch (reg * 4) {
        case PCI_REG_ID:
                return PCI_HOST_DEVICE_ID << 16 | PCI_HOST_VENDOR_ID;
        case PCI_REG_CLASS:
                return PCI_HOST_CLASS << 8;
        default:
                return 0;
        }
}

static void config_write(struct pci_host *h, struct device_proxy *d, unsigned slot, uint32_t reg, uint32_t offset,
                         const uint8_t *data, uint32_t size) {
        struct proto_config_result res;
        struct proto_ranges ranges;
        bool moved;
        char err[512];
        int r;

        if (device_proxy_write_config(d, reg, offset, size, data, &res, &ranges) < 0)
                return;
        moved = res.n_io_remove || res.n_io_add || res.n_mmio_remove || res.n_mmio_add;
        if (moved) {
                r = address_map_apply(h->map, d, &res, &ranges, err, sizeof(err));
                if (r < 0)
                        log_warning("PCI 00:%02x.0: config write 0x%x: %s", slot, reg * 4 + offset, err);
        }
        /* The MSI-X enable bit lives in config space; notify registers move with their BAR. */
        if (d->datapath)
                device_datapath_refresh(d->datapath, moved);
}

uint32_t pci_host_config_read(struct pci_host *h, unsigned slot, uint32_t reg) {
        uint32_t value = UINT32_MAX;

        if (slot == 0 || slot >= h->n_slots || reg >= 64)
                return value;
        (void) device_proxy_read_config(h->slots[slot], reg, &value);
        return value;
}

void pci_host_config_write(struct pci_host *h, unsigned slot, uint32_t reg, uint32_t value) {
        uint8_t data[4] = { (uint8_t) value, (uint8_t) (value >> 8), (uint8_t) (value >> 16), (uint8_t) (value >> 24) };

        if (slot == 0 || slot >= h->n_slots || reg >= 64)
                return;
        config_write(h, h->slots[slot], slot, reg, 0, data, 4);
}

static void config_data(struct pci_host *h, unsigned offset, uint8_t *data, uint32_t size, bool is_write) {
        uint32_t addr = atomic_load(&h->config_address), value = UINT32_MAX;
        unsigned bus = (addr >> 16) & 0xff, slot = (addr >> 11) & 0x1f, function = (addr >> 8) & 7;
        uint32_t reg = (addr >> 2) & 0x3f;
        struct device_proxy *d = NULL;
        uint8_t bytes[4];

        if (!is_write)
                memset(data, 0xff, size);
        /* Disabled, another bus, another function: nothing answers. */
        if (!(addr & PCI_HOST_ENABLE) || bus != 0 || function != 0)
                return;
        if (slot != 0) {
                d = h->slots[slot];
                if (!d)
                        return;
        }
        if (is_write) {
                if (d)
                        config_write(h, d, slot, reg, offset, data, size);
                return; /* the bridge's registers are read-only */
        }
        if (d)
                (void) device_proxy_read_config(d, reg, &value); /* all ones if it does not answer */
        else
                value = bridge_read(reg);
        for (unsigned i = 0; i < 4; i++)
                bytes[i] = (uint8_t) (value >> (8 * i));
        memcpy(data, bytes + offset, size);
}

void pci_host_io(struct pci_host *h, uint16_t port, uint8_t *data, uint32_t size, bool is_write) {
        if (!pci_host_access_is_ours(port, size)) {
                if (!is_write)
                        memset(data, 0xff, size);
                return;
        }
        if (port >= PCI_HOST_CONFIG_DATA) {
                config_data(h, port - PCI_HOST_CONFIG_DATA, data, size, is_write);
                return;
        }
        /* CONFIG_ADDRESS is only a dword at 0xCF8; other accesses to
         * 0xCF8-0xCFB reach nothing. Bits 1:0 read back as zero. */
        if (port != PCI_HOST_CONFIG_ADDRESS || size != 4) {
                if (!is_write)
                        memset(data, 0xff, size);
                return;
        }
        if (is_write) {
                uint32_t v = (uint32_t) data[0] | (uint32_t) data[1] << 8 | (uint32_t) data[2] << 16 |
                             (uint32_t) data[3] << 24;
                atomic_store(&h->config_address, v & ~3u);
        } else {
                uint32_t v = atomic_load(&h->config_address);
                for (unsigned i = 0; i < 4; i++)
                        data[i] = (uint8_t) (v >> (8 * i));
        }
}
