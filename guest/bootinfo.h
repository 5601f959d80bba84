/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the VMM handed us, copied out of boot_params (bzImage) or
 * hvm_start_info (PVH) before anything can overwrite low memory. */

/* Entry paths; head.S passes one of these to kmain(). */
#define BOOT_BZIMAGE64 1 /* 64-bit boot protocol, RSI = boot_params */
#define BOOT_BZIMAGE32 2 /* 32-bit boot protocol, ESI = boot_params */
#define BOOT_PVH 3       /* PVH, EBX = hvm_start_info */

#ifndef __ASSEMBLER__
#include <stdbool.h>
#include <stdint.h>

#define E820_MAX 128
#define E820_RAM 1
#define CMDLINE_MAX 4096

struct e820_entry {
        uint64_t addr;
        uint64_t size;
        uint32_t type;
};

struct bootinfo {
        unsigned entry;
        uint64_t info_addr; /* boot_params or start_info */
        bool valid;         /* PVH magic matched */
        char cmdline[CMDLINE_MAX];
        struct e820_entry e820[E820_MAX];
        unsigned n_e820;
        uint64_t rsdp; /* 0 if the VMM did not say */
};

extern struct bootinfo bootinfo;

void bootinfo_parse(unsigned entry, uint64_t info);
const char *bootinfo_entry_name(unsigned entry);
const char *e820_type_name(uint32_t type);
uint64_t e820_ram_bytes(void);
#endif
