/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The ACPI tables, read the way Linux reads them: RSDP (from the VMM or by
 * scanning the BIOS area) -> XSDT/RSDT -> MADT, FADT -> DSDT's _S5. */

#include <stdbool.h>
#include <stdint.h>

#define ACPI_MAX_TABLES 32
#define ACPI_MAX_CPUS 64
#define ACPI_MAX_ISOS 16

struct acpi_table {
        char sig[5];
        uint64_t addr;
        uint32_t len;
        bool checksum_ok;
};

/* Generic address structure (FADT RESET_REG, SLEEP_CONTROL/STATUS_REG). */
struct acpi_gas {
        uint8_t space_id; /* 0 memory, 1 I/O, 2 PCI config */
        uint8_t bit_width;
        uint8_t bit_offset;
        uint8_t access_size;
        uint64_t address;
};

struct acpi_iso {
        uint8_t source; /* ISA IRQ */
        uint32_t gsi;
        uint16_t flags; /* MPS INTI flags: polarity bits 0-1, trigger bits 2-3 */
};

struct acpi_info {
        uint64_t rsdp;
        const char *rsdp_source;
        uint8_t revision;
        struct acpi_table tables[ACPI_MAX_TABLES];
        unsigned n_tables;

        /* MADT */
        bool have_madt;
        uint64_t lapic_addr;
        uint32_t cpu_apic_ids[ACPI_MAX_CPUS];
        unsigned n_cpus; /* enabled LAPIC / x2APIC entries */
        uint64_t ioapic_addr;
        uint32_t ioapic_gsi_base;
        bool have_ioapic;
        struct acpi_iso isos[ACPI_MAX_ISOS];
        unsigned n_isos;

        /* FADT */
        bool have_fadt;
        uint16_t sci_irq;
        uint32_t smi_cmd;    /* 0: no SMM, always in ACPI mode */
        uint8_t acpi_enable; /* the value for SMI_CMD that enters ACPI mode */
        uint32_t pm1a_evt;
        uint8_t pm1_evt_len; /* PM1a_STS is the first half, PM1a_EN the second */
        uint32_t pm1a_cnt;
        uint32_t fadt_flags;
        bool hw_reduced;     /* no PM1 blocks: sleep through the GAS registers */
        struct acpi_gas sleep_control;
        struct acpi_gas sleep_status;
        bool reset_supported;
        struct acpi_gas reset_reg;
        uint8_t reset_value;
        uint64_t dsdt;

        /* DSDT \_S5 */
        bool have_s5;
        uint8_t s5_slp_typa;
};

extern struct acpi_info acpi;

/* Finds and checks the tables; fills `acpi`. Returns false if no RSDP. */
bool acpi_init(uint64_t rsdp_hint);

/* The GSI and INTI flags an ISA IRQ is wired to (MADT overrides applied). */
uint32_t acpi_isa_irq_gsi(uint8_t irq, uint16_t *ret_flags);

/* The GSI and INTI flags of the SCI: the override for SCI_INT if any, else
 * identity; trigger and polarity that "conform to the bus" mean level,
 * active low for the SCI, as in Linux's acpi_sci_ioapic_setup(). */
uint32_t acpi_sci_gsi(uint16_t *ret_flags);

/* S5 through PM1a_CNT, or SLEEP_CONTROL_REG on hardware-reduced ACPI;
 * returns only if the VMM ignored it or the tables lack what it needs. */
void acpi_poweroff(void);
/* FADT RESET_REG; returns only if unsupported or ignored. */
void acpi_reset(void);
