/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Guest physical address map of an x86-64 polyvm VM. The loader, the ACPI
 * builder, the e820 map and the launcher's port decoder all read it from
 * here, so they cannot disagree. Low memory follows Firecracker/Linux
 * conventions (zero page at 0x7000, command line at 0x20000). */

#define LAYOUT_GDT             0x500ULL
#define LAYOUT_PVH_START_INFO  0x6000ULL   /* struct hvm_start_info + memmap */
#define LAYOUT_ZERO_PAGE       0x7000ULL   /* struct boot_params */
#define LAYOUT_PML4            0x9000ULL   /* identity page tables for the 64-bit entry */
#define LAYOUT_PDPT            0xa000ULL
#define LAYOUT_PD              0xb000ULL   /* 4 pages: identity map of 0..4 GiB in 2 MiB pages */
#define LAYOUT_CMDLINE         0x20000ULL
#define LAYOUT_CMDLINE_MAX     0x10000ULL  /* 64 KiB including the NUL */
#define LAYOUT_EBDA_START      0x9fc00ULL  /* usable RAM below 1 MiB ends here */
#define LAYOUT_ACPI_START      0xe0000ULL  /* RSDP and all tables; reserved in e820 */
#define LAYOUT_ACPI_END        0x100000ULL
#define LAYOUT_KERNEL_BZIMAGE  0x100000ULL /* protected-mode part of a bzImage */
#define LAYOUT_HIGH_RAM        0x100000ULL

#define LAYOUT_MMIO_HOLE_START 0xc0000000ULL /* 3 GiB: 32-bit MMIO hole up to 4 GiB */
#define LAYOUT_MMIO_HOLE_END   0x100000000ULL
#define LAYOUT_IOAPIC          0xfec00000ULL
#define LAYOUT_LAPIC           0xfee00000ULL

/* ACPI fixed hardware, decoded by the launcher (services/launcher/pm.c). */
#define LAYOUT_PM1A_EVT_PORT   0x600 /* 4 bytes: PM1_STS (2), PM1_EN (2) */
#define LAYOUT_PM1A_CNT_PORT   0x604 /* 2 bytes: SLP_TYP bits 10-12, SLP_EN bit 13 */
#define LAYOUT_RESET_PORT      0xcf9 /* FADT RESET_REG, value LAYOUT_RESET_VALUE */
#define LAYOUT_RESET_VALUE     0x06
#define LAYOUT_SLP_TYP_S5      5
#define LAYOUT_SCI_IRQ         9

/* Guest RAM is memory_bytes long, mapped at 0 up to the hole and the rest
 * above 4 GiB. */
#define LAYOUT_MAX_MEMORY      (64ULL << 30)
