/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The PVH example's boot state: what polyvm's launcher would write for a
 * PVH ELF (services/launcher/loader-x86.c, acpi.c), re-done by the plugin
 * because a plugin VM has no polyvm loader. Guest RAM is one region from
 * address 0, below the 32-bit MMIO hole. Pure: it writes into a buffer and
 * fills KVM register structs, so that unit tests check every byte. */

#include <linux/kvm.h>
#include <stdint.h>

/* Guest physical layout (the same places polyvm's own loader uses). */
#define PVH_GDT           0x500u
#define PVH_PARK          0x1000u  /* the APs' `cli; hlt; jmp` until the guest sends INIT/SIPI */
#define PVH_START_INFO    0x6000u  /* struct pvh_start_info, then the memory map */
#define PVH_MEMMAP        (PVH_START_INFO + 0x100u)
#define PVH_CMDLINE       0x20000u
#define PVH_CMDLINE_MAX   0x1000u  /* including the NUL */
#define PVH_EBDA          0x9fc00u /* usable low RAM ends here */
#define PVH_ACPI          0xe0000u /* RSDP and tables, reserved in the map */
#define PVH_HIGH_RAM      0x100000u
#define PVH_MEMORY_MIN    (2u << 20)
#define PVH_MEMORY_MAX    (3ull << 30) /* up to the 32-bit MMIO hole */
#define PVH_MAX_CPUS      64

/* The fixed hardware the FADT describes, served by the plugin. */
#define PVH_PM1A_EVT      0x600u /* PM1_STS (2), PM1_EN (2) */
#define PVH_PM1A_CNT      0x604u /* SLP_TYP bits 10-12, SLP_EN bit 13 */
#define PVH_PM_PORTS      6u
#define PVH_SLP_TYP_S5    5u
#define PVH_SCI_IRQ       9u
#define PVH_IOAPIC        0xfec00000u
#define PVH_LAPIC         0xfee00000u

#define PVH_START_MAGIC   0x336ec578u

/* The PVH boot ABI's struct hvm_start_info (version 1) and memory map entry. */
struct pvh_start_info {
        uint32_t magic;
        uint32_t version;
        uint32_t flags;
        uint32_t nr_modules;
        uint64_t modlist_paddr;
        uint64_t cmdline_paddr;
        uint64_t rsdp_paddr;
        uint64_t memmap_paddr;
        uint32_t memmap_entries;
        uint32_t reserved;
} __attribute__((packed));

struct pvh_memmap_entry {
        uint64_t addr;
        uint64_t size;
        uint32_t type; /* 1 RAM, 2 reserved */
        uint32_t reserved;
} __attribute__((packed));

#define PVH_MEMMAP_ENTRIES 4

/* Writes the start info, memory map, command line, GDT, APs' parking code
 * and ACPI tables (RSDP, RSDT, FADT, MADT with n_cpus LAPICs and one
 * IOAPIC, DSDT with _S5) into mem. -EINVAL if mem_size is out of
 * [PVH_MEMORY_MIN, PVH_MEMORY_MAX], n_cpus out of 1..PVH_MAX_CPUS or the
 * command line too long. */
int pvh_boot_write(uint8_t *mem, uint64_t mem_size, const char *cmdline, unsigned n_cpus);

/* The PVH entry state on top of the vCPU's current (reset) sregs: 32-bit
 * protected mode with flat segments from the GDT, paging off, EBX = start
 * info, RIP = entry. */
void pvh_boot_bsp_state(uint64_t entry, struct kvm_regs *regs, struct kvm_sregs *sregs);
/* An AP: real mode at PVH_PARK, halted with interrupts off until INIT/SIPI. */
void pvh_boot_ap_state(struct kvm_regs *regs, struct kvm_sregs *sregs);
