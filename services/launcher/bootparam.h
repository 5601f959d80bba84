/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The structures a booting kernel reads, laid out as documented: Linux's
 * x86 boot protocol (Documentation/arch/x86/boot.rst, zero-page.rst) and
 * Xen's PVH start info (xen/include/public/arch-x86/hvm/start_info.h).
 * Only the fields polyvm touches have names; the rest is padding. */

#include <stddef.h>
#include <stdint.h>

#define BZ_BOOT_FLAG        0xaa55
#define BZ_HEADER_MAGIC     0x53726448 /* "HdrS" */
#define BZ_MIN_PROTOCOL     0x020c     /* 2.12: xloadflags, 64-bit entry */
#define BZ_RSDP_PROTOCOL    0x020e     /* 2.14: acpi_rsdp_addr */
#define BZ_LOADER_UNDEFINED 0xff       /* type_of_loader for a boot loader without an assigned id */
#define BZ_LOADED_HIGH      0x01
#define BZ_CAN_USE_HEAP     0x80
#define BZ_XLF_KERNEL_64    0x01
#define BZ_ENTRY64_OFFSET   0x200 /* the 64-bit entry is 512 bytes into the protected-mode part */

struct setup_header {
        uint8_t setup_sects;         /* 0x1f1 */
        uint16_t root_flags;
        uint32_t syssize;            /* 0x1f4, in 16-byte paragraphs */
        uint16_t ram_size;
        uint16_t vid_mode;
        uint16_t root_dev;
        uint16_t boot_flag;          /* 0x1fe */
        uint16_t jump;               /* 0x200 */
        uint32_t header;             /* 0x202 */
        uint16_t version;            /* 0x206 */
        uint32_t realmode_swtch;
        uint16_t start_sys_seg;
        uint16_t kernel_version;
        uint8_t type_of_loader;      /* 0x210 */
        uint8_t loadflags;           /* 0x211 */
        uint16_t setup_move_size;
        uint32_t code32_start;
        uint32_t ramdisk_image;      /* 0x218 */
        uint32_t ramdisk_size;       /* 0x21c */
        uint32_t bootsect_kludge;
        uint16_t heap_end_ptr;
        uint8_t ext_loader_ver;
        uint8_t ext_loader_type;
        uint32_t cmd_line_ptr;       /* 0x228 */
        uint32_t initrd_addr_max;    /* 0x22c */
        uint32_t kernel_alignment;
        uint8_t relocatable_kernel;
        uint8_t min_alignment;
        uint16_t xloadflags;         /* 0x236 */
        uint32_t cmdline_size;       /* 0x238 */
        uint32_t hardware_subarch;
        uint64_t hardware_subarch_data;
        uint32_t payload_offset;
        uint32_t payload_length;
        uint64_t setup_data;
        uint64_t pref_address;
        uint32_t init_size;          /* 0x260 */
        uint32_t handover_offset;
        uint32_t kernel_info_offset;
} __attribute__((packed));

struct boot_e820_entry {
        uint64_t addr;
        uint64_t size;
        uint32_t type;
} __attribute__((packed));

#define BOOT_PARAMS_E820_MAX 128

struct boot_params {
        uint8_t _pad0[0x070];
        uint64_t acpi_rsdp_addr;     /* 0x070 */
        uint8_t _pad1[0x0c0 - 0x078];
        uint32_t ext_ramdisk_image;  /* 0x0c0 */
        uint32_t ext_ramdisk_size;   /* 0x0c4 */
        uint32_t ext_cmd_line_ptr;   /* 0x0c8 */
        uint8_t _pad2[0x1e8 - 0x0cc];
        uint8_t e820_entries;        /* 0x1e8 */
        uint8_t _pad3[0x1ef - 0x1e9];
        uint8_t sentinel;            /* 0x1ef */
        uint8_t _pad4;
        struct setup_header hdr;     /* 0x1f1 */
        uint8_t _pad5[0x290 - 0x26c];
        uint8_t edd_mbr_sig_buffer[0x2d0 - 0x290];
        struct boot_e820_entry e820_table[BOOT_PARAMS_E820_MAX]; /* 0x2d0 */
        uint8_t _pad6[0x1000 - 0xcd0];
} __attribute__((packed));

_Static_assert(sizeof(struct setup_header) == 0x26c - 0x1f1, "setup_header size");
_Static_assert(sizeof(struct boot_e820_entry) == 20, "boot_e820_entry size");
_Static_assert(sizeof(struct boot_params) == 0x1000, "boot_params is one page");
_Static_assert(offsetof(struct boot_params, acpi_rsdp_addr) == 0x070, "acpi_rsdp_addr");
_Static_assert(offsetof(struct boot_params, ext_ramdisk_image) == 0x0c0, "ext_ramdisk_image");
_Static_assert(offsetof(struct boot_params, e820_entries) == 0x1e8, "e820_entries");
_Static_assert(offsetof(struct boot_params, sentinel) == 0x1ef, "sentinel");
_Static_assert(offsetof(struct boot_params, hdr) == 0x1f1, "setup_header");
_Static_assert(offsetof(struct boot_params, hdr.syssize) == 0x1f4, "syssize");
_Static_assert(offsetof(struct boot_params, hdr.boot_flag) == 0x1fe, "boot_flag");
_Static_assert(offsetof(struct boot_params, hdr.header) == 0x202, "header");
_Static_assert(offsetof(struct boot_params, hdr.version) == 0x206, "version");
_Static_assert(offsetof(struct boot_params, hdr.type_of_loader) == 0x210, "type_of_loader");
_Static_assert(offsetof(struct boot_params, hdr.loadflags) == 0x211, "loadflags");
_Static_assert(offsetof(struct boot_params, hdr.ramdisk_image) == 0x218, "ramdisk_image");
_Static_assert(offsetof(struct boot_params, hdr.ramdisk_size) == 0x21c, "ramdisk_size");
_Static_assert(offsetof(struct boot_params, hdr.heap_end_ptr) == 0x224, "heap_end_ptr");
_Static_assert(offsetof(struct boot_params, hdr.cmd_line_ptr) == 0x228, "cmd_line_ptr");
_Static_assert(offsetof(struct boot_params, hdr.initrd_addr_max) == 0x22c, "initrd_addr_max");
_Static_assert(offsetof(struct boot_params, hdr.xloadflags) == 0x236, "xloadflags");
_Static_assert(offsetof(struct boot_params, hdr.cmdline_size) == 0x238, "cmdline_size");
_Static_assert(offsetof(struct boot_params, hdr.pref_address) == 0x258, "pref_address");
_Static_assert(offsetof(struct boot_params, hdr.init_size) == 0x260, "init_size");
_Static_assert(offsetof(struct boot_params, e820_table) == 0x2d0, "e820_table");

/* PVH: the ELF note that carries the 32-bit entry point, and what EBX
 * points at when it is entered. */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC          0x336ec578
#define HVM_START_VERSION        1

struct hvm_start_info {
        uint32_t magic;
        uint32_t version;
        uint32_t flags;
        uint32_t nr_modules;
        uint64_t modlist_paddr;
        uint64_t cmdline_paddr;
        uint64_t rsdp_paddr;
        uint64_t memmap_paddr;       /* version 1 */
        uint32_t memmap_entries;
        uint32_t reserved;
} __attribute__((packed));

struct hvm_modlist_entry {
        uint64_t paddr;
        uint64_t size;
        uint64_t cmdline_paddr;
        uint64_t reserved;
} __attribute__((packed));

struct hvm_memmap_table_entry {
        uint64_t addr;
        uint64_t size;
        uint32_t type;
        uint32_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct hvm_start_info) == 0x38, "hvm_start_info size");
_Static_assert(offsetof(struct hvm_start_info, modlist_paddr) == 0x10, "modlist_paddr");
_Static_assert(offsetof(struct hvm_start_info, cmdline_paddr) == 0x18, "cmdline_paddr");
_Static_assert(offsetof(struct hvm_start_info, rsdp_paddr) == 0x20, "rsdp_paddr");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 0x28, "memmap_paddr");
_Static_assert(offsetof(struct hvm_start_info, memmap_entries) == 0x30, "memmap_entries");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry size");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry size");

/* Where the start info's parts sit inside the LAYOUT_PVH_START_INFO page. */
#define PVH_MODLIST_OFFSET 0x40
#define PVH_MEMMAP_OFFSET  0x80
