/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Puts a kernel in guest memory the way Linux expects it: a bzImage by the
 * x86 boot protocol (64-bit entry) or an ELF by its PVH note; writes the
 * command line, the initrd, the e820 map and boot_params/start_info. */

#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum kernel_format {
        KERNEL_BZIMAGE,
        KERNEL_PVH_ELF,
};

/* What the vCPU engine needs to enter the kernel on the boot CPU. */
struct boot_entry {
        enum kernel_format format;
        uint64_t rip;
        /* bzImage: 64-bit long mode, paging with the identity tables at
         * LAYOUT_PML4, RSI = LAYOUT_ZERO_PAGE.
         * PVH: 32-bit protected mode, paging off, flat segments,
         * EBX = LAYOUT_PVH_START_INFO. */
        uint64_t boot_info;
};

/* The GDT the loader writes at LAYOUT_GDT (BOOT_GDT_ENTRIES descriptors, all
 * flat 4 GiB, accessed bit preset so the CPU never writes the table). The
 * bzImage 64-bit entry uses Linux's __BOOT_CS (0x10, 64-bit code) and
 * __BOOT_DS (0x18); the PVH entry uses BOOT_GDT_CS32 (0x08) and BOOT_GDT_DS.
 * The vCPU engine loads the same selectors and descriptor values. */
#define BOOT_GDT_CS32 0x08
#define BOOT_GDT_CS64 0x10
#define BOOT_GDT_DS 0x18
#define BOOT_GDT_ENTRIES 4
#define BOOT_GDT_DESC_CS32 0x00cf9b000000ffffULL /* base 0, limit 4G, 32-bit, execute/read */
#define BOOT_GDT_DESC_CS64 0x00af9b000000ffffULL /* L=1: 64-bit code */
#define BOOT_GDT_DESC_DS 0x00cf93000000ffffULL   /* base 0, limit 4G, read/write */

struct e820_entry {
        uint64_t addr;
        uint64_t size;
        uint32_t type; /* 1 RAM, 2 reserved, 3 ACPI */
};

#define E820_RAM 1
#define E820_RESERVED 2
#define E820_ACPI 3
#define E820_MAX_ENTRIES 8

/* The e820 map for memory_bytes of RAM: returns the number of entries.
 * 0xE0000..1 MiB (the ACPI tables) is E820_ACPI, EBDA..0xE0000 reserved. */
size_t e820_build(uint64_t memory_bytes, struct e820_entry *entries, size_t max);

/* What a guest sees as usable RAM (type 1) in that map. */
uint64_t e820_usable_bytes(uint64_t memory_bytes);

/* Checks cfg's kernel and initrd files without loading: exists, regular,
 * readable, a bzImage (protocol >= 2.12, 64-bit entry) or an ELF64 with a
 * PVH note, not truncated, initrd fits in memory. Message names the field. */
int loader_check(const struct vm_config *cfg, enum kernel_format *ret_format, char *err, size_t errlen);

/* Loads into guest memory mem (memory_bytes long, guest address 0 at mem;
 * the part above the hole is at mem + LAYOUT_MMIO_HOLE_START, i.e. the
 * mapping is contiguous in host memory), sets up boot_params or start_info
 * with rsdp_addr, writes the identity page tables and GDT for the 64-bit
 * entry. */
int loader_load(const struct vm_config *cfg, void *mem, uint64_t rsdp_addr, struct boot_entry *ret,
                char *err, size_t errlen);
