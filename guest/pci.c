/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "console.h"
#include "io.h"
#include "lib.h"
#include "pci.h"

#define PCI_CONFIG_ADDRESS 0xcf8
#define PCI_CONFIG_DATA 0xcfc
#define PCI_SLOTS 32
#define PCI_FUNCS 8
#define PCI_HEADER_MULTIFN 0x80
#define PCI_HEADER_TYPE_MASK 0x7f
#define PCI_BAR_IO 0x1
#define PCI_BAR_MEM_TYPE_MASK 0x6
#define PCI_BAR_MEM_64 0x4
#define PCI_BAR_PREFETCH 0x8
#define PCI_CAP_MAX 48 /* 192 bytes of capabilities hold at most 48 of them */

struct pci_dev pci_devs[PCI_MAX_DEVS];
unsigned pci_n_devs;

static uint32_t conf1_address(uint8_t bus, uint8_t slot, uint8_t fn, uint8_t off) {
        return 1u << 31 | (uint32_t) bus << 16 | (uint32_t) slot << 11 | (uint32_t) fn << 8 | (off & 0xfc);
}

static uint32_t conf1_read32(uint8_t bus, uint8_t slot, uint8_t fn, uint8_t off) {
        outl(PCI_CONFIG_ADDRESS, conf1_address(bus, slot, fn, off));
        return inl(PCI_CONFIG_DATA);
}

uint32_t pci_read32(const struct pci_dev *d, uint8_t off) {
        return conf1_read32(d->bus, d->slot, d->fn, off);
}

uint16_t pci_read16(const struct pci_dev *d, uint8_t off) {
        outl(PCI_CONFIG_ADDRESS, conf1_address(d->bus, d->slot, d->fn, off));
        return inw(PCI_CONFIG_DATA + (off & 2));
}

uint8_t pci_read8(const struct pci_dev *d, uint8_t off) {
        outl(PCI_CONFIG_ADDRESS, conf1_address(d->bus, d->slot, d->fn, off));
        return inb(PCI_CONFIG_DATA + (off & 3));
}

void pci_write32(const struct pci_dev *d, uint8_t off, uint32_t v) {
        outl(PCI_CONFIG_ADDRESS, conf1_address(d->bus, d->slot, d->fn, off));
        outl(PCI_CONFIG_DATA, v);
}

void pci_write16(const struct pci_dev *d, uint8_t off, uint16_t v) {
        outl(PCI_CONFIG_ADDRESS, conf1_address(d->bus, d->slot, d->fn, off));
        outw(PCI_CONFIG_DATA + (off & 2), v);
}

/* Writes all ones and reads back which address bits stick, with decoding
 * off so the BAR never briefly claims the top of the address space. */
static void size_bars(struct pci_dev *d) {
        uint16_t cmd = pci_read16(d, PCI_COMMAND);
        pci_write16(d, PCI_COMMAND, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
        for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
                uint8_t off = PCI_BAR0 + 4 * i;
                uint32_t lo = pci_read32(d, off);
                pci_write32(d, off, 0xffffffff);
                uint32_t mask = pci_read32(d, off);
                pci_write32(d, off, lo);
                struct pci_bar *b = &d->bars[i];
                if (mask == 0 || mask == 0xffffffff)
                        continue; /* not implemented (or no device answering) */
                if (lo & PCI_BAR_IO) {
                        b->io = true;
                        b->addr = lo & ~3u;
                        b->size = (uint16_t) ~(mask & ~3u) + 1;
                        continue;
                }
                b->prefetch = lo & PCI_BAR_PREFETCH;
                uint64_t addr = lo & ~0xfu, m = mask & ~0xfu;
                if ((lo & PCI_BAR_MEM_TYPE_MASK) == PCI_BAR_MEM_64 && i + 1 < PCI_NUM_BARS) {
                        uint8_t hoff = off + 4;
                        uint32_t hi = pci_read32(d, hoff);
                        pci_write32(d, hoff, 0xffffffff);
                        uint32_t hmask = pci_read32(d, hoff);
                        pci_write32(d, hoff, hi);
                        addr |= (uint64_t) hi << 32;
                        m |= (uint64_t) hmask << 32;
                        b->is64 = true;
                } else
                        m |= 0xffffffff00000000ULL;
                b->addr = addr;
                b->size = ~m + 1;
                if (b->is64)
                        i++; /* the upper half is not a BAR of its own */
        }
        pci_write16(d, PCI_COMMAND, cmd);
}

static void add_function(uint8_t slot, uint8_t fn, uint32_t id) {
        if (pci_n_devs >= PCI_MAX_DEVS)
                return;
        struct pci_dev *d = &pci_devs[pci_n_devs++];
        *d = (struct pci_dev) { .bus = 0, .slot = slot, .fn = fn, .vendor = id & 0xffff, .device = id >> 16 };
        d->class = pci_read32(d, PCI_CLASS_REVISION) >> 8;
        d->header_type = pci_read8(d, PCI_HEADER_TYPE) & PCI_HEADER_TYPE_MASK;
        if (d->header_type != 0)
                return; /* bridges: their BARs and windows are not ours to use */
        d->subsys_device = pci_read16(d, PCI_SUBSYSTEM_ID);
        d->irq_line = pci_read8(d, PCI_INTERRUPT_LINE);
        d->irq_pin = pci_read8(d, PCI_INTERRUPT_PIN);
        size_bars(d);
}

void pci_init(void) {
        unsigned functions = 0;
        for (uint8_t slot = 0; slot < PCI_SLOTS; slot++) {
                uint32_t id = conf1_read32(0, slot, 0, PCI_VENDOR_ID);
                if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0)
                        continue;
                uint8_t ht = (conf1_read32(0, slot, 0, PCI_HEADER_TYPE & 0xfc) >> 16) & 0xff;
                unsigned nfn = ht & PCI_HEADER_MULTIFN ? PCI_FUNCS : 1;
                for (uint8_t fn = 0; fn < nfn; fn++) {
                        if (fn > 0) {
                                id = conf1_read32(0, slot, fn, PCI_VENDOR_ID);
                                if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0)
                                        continue;
                        }
                        add_function(slot, fn, id);
                        functions++;
                }
        }
        kprintf("pci: bus 0: %u functions%s\n", functions, functions > pci_n_devs ? " (table full)" : "");
}

void pci_enable(const struct pci_dev *d, bool intx_disable) {
        uint16_t cmd = pci_read16(d, PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        if (intx_disable)
                cmd |= PCI_COMMAND_INTX_DISABLE;
        else
                cmd &= ~PCI_COMMAND_INTX_DISABLE;
        pci_write16(d, PCI_COMMAND, cmd);
}

uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t after) {
        if (!(pci_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST))
                return 0;
        uint8_t pos = after ? pci_read8(d, after + 1) : pci_read8(d, PCI_CAP_PTR);
        for (unsigned n = 0; n < PCI_CAP_MAX; n++) {
                pos &= 0xfc;
                if (pos < 0x40)
                        return 0; /* the list ends at 0; below 0x40 is the header */
                if (pci_read8(d, pos) == id)
                        return pos;
                pos = pci_read8(d, pos + 1);
        }
        return 0;
}

bool pci_bar_range_ok(const struct pci_dev *d, unsigned bar, uint64_t off, uint64_t len) {
        if (bar >= PCI_NUM_BARS)
                return false;
        const struct pci_bar *b = &d->bars[bar];
        return !b->io && b->addr != 0 && b->size != 0 && off <= b->size && len <= b->size - off &&
               b->addr + b->size <= PCI_MAPPED_LIMIT && b->addr + b->size > b->addr;
}

static const char *bar_type(const struct pci_bar *b) {
        if (b->io)
                return "io";
        if (b->is64)
                return b->prefetch ? "mem64-pf" : "mem64";
        return b->prefetch ? "mem32-pf" : "mem32";
}

void pci_dump(void) {
        for (unsigned i = 0; i < pci_n_devs; i++) {
                const struct pci_dev *d = &pci_devs[i];
                kprintf("pci: %02x:%02x.%u %04x:%04x class %06x", d->bus, d->slot, d->fn, d->vendor, d->device,
                        d->class);
                if (d->header_type != 0)
                        kprintf(" header %u", d->header_type);
                for (unsigned b = 0; b < PCI_NUM_BARS; b++)
                        if (d->bars[b].size)
                                kprintf(" bar%u %s 0x%lx size 0x%lx", b, bar_type(&d->bars[b]), d->bars[b].addr,
                                        d->bars[b].size);
                if (d->irq_pin)
                        kprintf(" irq %u pin %c", d->irq_line, 'A' + d->irq_pin - 1);
                if (d->kind)
                        kprintf(" %s", d->kind);
                console_putc('\n');
        }
}
