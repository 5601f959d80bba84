/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bootinfo.h"
#include "io.h"
#include "lib.h"

/* struct boot_params offsets (Documentation/arch/x86/zero-page.rst). */
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR_VERSION 0x206
#define BP_CMD_LINE_PTR 0x228
#define BP_CMDLINE_SIZE 0x238
#define BP_E820_TABLE 0x2d0
#define BP_E820_TABLE_MAX 128

/* struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h). */
#define PVH_MAGIC 0x336ec578
#define PVH_MAGIC_OFF 0
#define PVH_VERSION 4
#define PVH_CMDLINE_PADDR 24
#define PVH_RSDP_PADDR 32
#define PVH_MEMMAP_PADDR 40
#define PVH_MEMMAP_ENTRIES 48
#define PVH_MEMMAP_ENTRY_SIZE 24

#define LOW_4G (1ULL << 32)

struct bootinfo bootinfo;

static void copy_cmdline(uint64_t addr, size_t max) {
        if (addr == 0 || addr >= LOW_4G)
                return;
        const char *s = (const char *) (uintptr_t) addr;
        if (max > CMDLINE_MAX)
                max = CMDLINE_MAX;
        size_t n = 0;
        while (n + 1 < max && addr + n < LOW_4G && s[n])
                n++;
        memcpy(bootinfo.cmdline, s, n);
        bootinfo.cmdline[n] = 0;
}

static void add_e820(uint64_t addr, uint64_t size, uint32_t type) {
        if (bootinfo.n_e820 >= E820_MAX || size == 0)
                return;
        bootinfo.e820[bootinfo.n_e820++] = (struct e820_entry) { addr, size, type };
}

static void parse_boot_params(const uint8_t *bp) {
        uint16_t version = get16(bp + BP_HDR_VERSION);
        uint64_t cmd = get32(bp + BP_CMD_LINE_PTR) | (uint64_t) get32(bp + BP_EXT_CMD_LINE_PTR) << 32;
        /* cmdline_size exists from protocol 2.06; before that 255. */
        size_t max = version >= 0x206 ? get32(bp + BP_CMDLINE_SIZE) + 1 : 256;
        copy_cmdline(cmd, max);

        unsigned n = bp[BP_E820_ENTRIES];
        if (n > BP_E820_TABLE_MAX)
                n = BP_E820_TABLE_MAX;
        for (unsigned i = 0; i < n; i++) {
                const uint8_t *e = bp + BP_E820_TABLE + 20 * i;
                add_e820(get64(e), get64(e + 8), get32(e + 16));
        }
        bootinfo.rsdp = get64(bp + BP_ACPI_RSDP_ADDR);
        bootinfo.valid = true;
}

static void parse_start_info(const uint8_t *si) {
        if (get32(si + PVH_MAGIC_OFF) != PVH_MAGIC)
                return;
        bootinfo.valid = true;
        copy_cmdline(get64(si + PVH_CMDLINE_PADDR), CMDLINE_MAX);
        bootinfo.rsdp = get64(si + PVH_RSDP_PADDR);
        /* The memory map exists from version 1 of the structure. */
        if (get32(si + PVH_VERSION) < 1)
                return;
        uint64_t map = get64(si + PVH_MEMMAP_PADDR);
        unsigned n = get32(si + PVH_MEMMAP_ENTRIES);
        if (map == 0 || map >= LOW_4G)
                return;
        for (unsigned i = 0; i < n && i < E820_MAX; i++) {
                const uint8_t *e = (const uint8_t *) (uintptr_t) map + PVH_MEMMAP_ENTRY_SIZE * i;
                add_e820(get64(e), get64(e + 8), get32(e + 16));
        }
}

void bootinfo_parse(unsigned entry, uint64_t info) {
        bootinfo.entry = entry;
        bootinfo.info_addr = info;
        if (info == 0 || info >= LOW_4G)
                return;
        if (entry == BOOT_PVH)
                parse_start_info((const uint8_t *) (uintptr_t) info);
        else
                parse_boot_params((const uint8_t *) (uintptr_t) info);
}

const char *bootinfo_entry_name(unsigned entry) {
        switch (entry) {
        case BOOT_BZIMAGE64:
                return "bzImage 64-bit boot protocol (boot_params)";
        case BOOT_BZIMAGE32:
                return "bzImage 32-bit boot protocol (boot_params)";
        case BOOT_PVH:
                return "PVH (hvm_start_info)";
        default:
                return "unknown";
        }
}

const char *e820_type_name(uint32_t type) {
        switch (type) {
        case 1:
                return "usable";
        case 2:
                return "reserved";
        case 3:
                return "ACPI data";
        case 4:
                return "ACPI NVS";
        case 5:
                return "unusable";
        case 7:
                return "persistent";
        default:
                return "unknown";
        }
}

uint64_t e820_ram_bytes(void) {
        uint64_t sum = 0;
        for (unsigned i = 0; i < bootinfo.n_e820; i++)
                if (bootinfo.e820[i].type == E820_RAM)
                        sum += bootinfo.e820[i].size;
        return sum;
}
