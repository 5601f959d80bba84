/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "layout.h"
#include "loader-x86.h"
#include "macro.h"

/* The map a PC BIOS would report for layout.h: low RAM up to the EBDA, the
 * legacy hole (EBDA, VGA, option ROMs) reserved, the F/E segment with our
 * ACPI tables as ACPI data (the guest must never reuse it: the DSDT stays in
 * use by the interpreter), RAM from 1 MiB to the MMIO hole, the rest above
 * 4 GiB. */
size_t e820_build(uint64_t memory_bytes, struct e820_entry *entries, size_t max) {
        struct e820_entry e[5];
        size_t n = 0;
        uint64_t low_end = MIN(memory_bytes, LAYOUT_MMIO_HOLE_START);

        e[n++] = (struct e820_entry) { 0, MIN(memory_bytes, LAYOUT_EBDA_START), E820_RAM };
        e[n++] = (struct e820_entry) { LAYOUT_EBDA_START, LAYOUT_ACPI_START - LAYOUT_EBDA_START, E820_RESERVED };
        e[n++] = (struct e820_entry) { LAYOUT_ACPI_START, LAYOUT_ACPI_END - LAYOUT_ACPI_START, E820_ACPI };
        if (low_end > LAYOUT_HIGH_RAM)
                e[n++] = (struct e820_entry) { LAYOUT_HIGH_RAM, low_end - LAYOUT_HIGH_RAM, E820_RAM };
        if (memory_bytes > LAYOUT_MMIO_HOLE_START)
                e[n++] = (struct e820_entry) { LAYOUT_MMIO_HOLE_END, memory_bytes - LAYOUT_MMIO_HOLE_START,
                                               E820_RAM };

        n = MIN(n, max);
        for (size_t i = 0; i < n; i++)
                entries[i] = e[i];
        return n;
}

uint64_t e820_usable_bytes(uint64_t memory_bytes) {
        struct e820_entry e[E820_MAX_ENTRIES];
        size_t n = e820_build(memory_bytes, e, E820_MAX_ENTRIES);
        uint64_t sum = 0;

        for (size_t i = 0; i < n; i++)
                if (e[i].type == E820_RAM)
                        sum += e[i].size;
        return sum;
}
