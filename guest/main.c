/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polyvm-testguest: reads what the VMM gave it the way Linux does, starts
 * the other CPUs, prints what it found and runs a shell on the serial port. */
#include "acpi.h"
#include "apic.h"
#include "bootinfo.h"
#include "console.h"
#include "cpu.h"
#include "io.h"
#include "lib.h"
#include "pci.h"
#include "pm.h"
#include "shell.h"
#include "smp.h"
#include "virtio-pci.h"

#define READY_MARKER "POLYVM-GUEST-READY"

static void print_acpi_summary(void) {
        if (!acpi.rsdp) {
                console_puts("acpi: no RSDP found\n");
                return;
        }
        kprintf("acpi: RSDP 0x%lx rev %u (from %s), tables:", acpi.rsdp, acpi.revision, acpi.rsdp_source);
        for (unsigned i = 0; i < acpi.n_tables; i++)
                kprintf(" %s%s", acpi.tables[i].sig, acpi.tables[i].checksum_ok ? "" : "(bad checksum)");
        console_putc('\n');
        if (acpi.have_madt)
                kprintf("madt: %u cpus enabled, lapic 0x%lx, ioapic 0x%lx gsi base %u\n", acpi.n_cpus,
                        acpi.lapic_addr, acpi.ioapic_addr, acpi.ioapic_gsi_base);
        else
                console_puts("madt: missing\n");
        if (acpi.have_fadt) {
                kprintf("fadt: %spm1a_evt 0x%x pm1a_cnt 0x%x sci %u dsdt 0x%lx", acpi.hw_reduced ? "hw-reduced " : "",
                        acpi.pm1a_evt, acpi.pm1a_cnt, acpi.sci_irq, acpi.dsdt);
                if (acpi.reset_supported)
                        kprintf(" reset space %u addr 0x%lx value 0x%x", acpi.reset_reg.space_id,
                                acpi.reset_reg.address, acpi.reset_value);
                else
                        console_puts(" reset unsupported");
                if (acpi.have_s5)
                        kprintf(" _S5 SLP_TYPa %u\n", acpi.s5_slp_typa);
                else
                        console_puts(" no _S5\n");
        } else
                console_puts("fadt: missing\n");
}

static void serial_irq_setup(void) {
        if (!acpi.have_ioapic) {
                console_puts("serial: no IOAPIC in the MADT, no console input\n");
                return;
        }
        uint16_t flags;
        uint32_t gsi = acpi_isa_irq_gsi(COM1_IRQ, &flags);
        if (!ioapic_route(acpi.ioapic_addr, acpi.ioapic_gsi_base, gsi, VEC_SERIAL, flags, lapic_id())) {
                kprintf("serial: gsi %u is not on the IOAPIC, no console input\n", gsi);
                return;
        }
        console_enable_rx_irq();
        kprintf("serial: 16550A at 0x%x, irq %u -> gsi %u flags 0x%x -> vector 0x%x\n", COM1_PORT, COM1_IRQ, gsi,
                flags, VEC_SERIAL);
}

void kmain(unsigned entry, uint64_t info) {
        /* Copy the boot information first: low memory is ours afterwards. */
        bootinfo_parse(entry, info);
        console_init();
        paging_init();
        cpu_init_bsp();

        console_puts("\npolyvm-testguest 0.1\n");
        kprintf("entry: %s at 0x%lx%s\n", bootinfo_entry_name(entry), info,
                bootinfo.valid ? "" : " (INVALID, ignored)");
        kprintf("cmdline: %s\n", bootinfo.cmdline);
        uint64_t ram = e820_ram_bytes();
        kprintf("e820: %u entries, usable RAM %lu bytes (%lu MiB)\n", bootinfo.n_e820, ram, ram >> 20);

        acpi_init(bootinfo.rsdp);
        print_acpi_summary();

        pic_disable();
        lapic_init(acpi.lapic_addr);
        serial_irq_setup();
        /* Interrupts stay on from here: every wait is a `hlt`. */
        irq_enable();
        pm_init(); /* after irq_enable(): entering ACPI mode may wait */

        smp_boot();
        kprintf("smp: %u of %u cpus up (bsp apic id %u)\n", cpus_up, acpi.n_cpus ? acpi.n_cpus : 1, lapic_id());

        pci_init();
        virtio_probe_all();

        console_puts(READY_MARKER "\n");

        char v[8];
        if (cmdline_get(bootinfo.cmdline, "tg.poweroff", v, sizeof(v)) && strcmp(v, "1") == 0)
                shell_poweroff();
        shell_run();
}
