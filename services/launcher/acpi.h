/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* ACPI tables for the guest: RSDP, XSDT, FADT (PM1a, reset register, SCI),
 * DSDT (with _S5), MADT (one LAPIC per vCPU, the IOAPIC, SCI override).
 * All of them are written between LAYOUT_ACPI_START and LAYOUT_ACPI_END.
 * IRQ0 has no Interrupt Source Override: KVM's default GSI routing sends the
 * PIT to IOAPIC pin 0, the identity mapping ACPI implies. The FADT declares
 * no i8042 (none is emulated) and no VGA. */

#include <stdint.h>

/* Writes the tables into guest memory (mem = guest address 0). Returns 0 and
 * the RSDP's guest address, or -errno. */
int acpi_build(void *mem, uint64_t memory_bytes, unsigned n_vcpus, uint64_t *ret_rsdp);
