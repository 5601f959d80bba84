/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Layouts follow the PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h)
 * and ACPI 1.0 tables, the parts polyvm-testguest reads the way Linux does. */
#include <errno.h>
#include <string.h>

#include "pvh-boot.h"

#define GDT_CS 0x10
#define GDT_DS 0x18

#define ACPI_RSDP (PVH_ACPI + 0x000)
#define ACPI_RSDT (PVH_ACPI + 0x040)
#define ACPI_FADT (PVH_ACPI + 0x100)
#define ACPI_DSDT (PVH_ACPI + 0x200)
#define ACPI_MADT (PVH_ACPI + 0x300)
#define SDT_HEADER 36
#define FADT_LEN 116 /* ACPI 1.0: up to Flags */

static void put16(uint8_t *p, uint16_t v) {
        memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v) {
        memcpy(p, &v, 4);
}

static uint8_t checksum(const uint8_t *p, size_t len) {
        uint8_t sum = 0;
        for (size_t i = 0; i < len; i++)
                sum = (uint8_t) (sum + p[i]);
        return (uint8_t) -sum;
}

static void sdt_header(uint8_t *t, const char sig[4], uint32_t len, uint8_t revision) {
        memcpy(t, sig, 4);
        put32(t + 4, len);
        t[8] = revision;
        memcpy(t + 10, "POLYVM", 6);
        memcpy(t + 16, "PVHPLUG ", 8);
        put32(t + 24, 1);
        memcpy(t + 28, "PVMP", 4);
        put32(t + 32, 1);
}

static void sdt_finish(uint8_t *t) {
        uint32_t len;

        memcpy(&len, t + 4, 4);
        t[9] = 0;
        t[9] = checksum(t, len);
}

static void write_acpi(uint8_t *mem, unsigned n_cpus) {
        /* Name (_S5, Package () { 5, 5, 0, 0 }) */
        static const uint8_t s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04,
                                      0x0a, PVH_SLP_TYP_S5, 0x0a, PVH_SLP_TYP_S5, 0x00, 0x00 };
        uint8_t *rsdp = mem + ACPI_RSDP, *rsdt = mem + ACPI_RSDT, *fadt = mem + ACPI_FADT;
        uint8_t *dsdt = mem + ACPI_DSDT, *madt = mem + ACPI_MADT, *e;
        uint32_t madt_len;

        memset(mem + PVH_ACPI, 0, 0x1000);

        sdt_header(dsdt, "DSDT", SDT_HEADER + sizeof(s5), 1);
        memcpy(dsdt + SDT_HEADER, s5, sizeof(s5));
        sdt_finish(dsdt);

        sdt_header(fadt, "FACP", FADT_LEN, 1);
        put32(fadt + 40, ACPI_DSDT);
        put16(fadt + 46, PVH_SCI_IRQ);
        /* No SMI_CMD: PM1_CNT reads SCI_EN set, the platform is in ACPI mode. */
        put32(fadt + 56, PVH_PM1A_EVT);
        put32(fadt + 64, PVH_PM1A_CNT);
        fadt[88] = 4; /* PM1_EVT_LEN */
        fadt[89] = 2; /* PM1_CNT_LEN */
        sdt_finish(fadt);

        /* MADT: LAPIC address, PCAT_COMPAT, then the CPUs, the IOAPIC and
         * the SCI's override (level, active high, as polyvm's own MADT). */
        e = madt + SDT_HEADER + 8;
        for (unsigned i = 0; i < n_cpus; i++, e += 8) {
                e[0] = 0;
                e[1] = 8;
                e[2] = (uint8_t) i; /* ACPI processor id */
                e[3] = (uint8_t) i; /* APIC id: KVM's default is the vCPU index */
                put32(e + 4, 1);    /* enabled */
        }
        e[0] = 1, e[1] = 12, e[2] = (uint8_t) n_cpus, e[3] = 0;
        put32(e + 4, PVH_IOAPIC);
        put32(e + 8, 0);
        e += 12;
        e[0] = 2, e[1] = 10, e[2] = 0, e[3] = PVH_SCI_IRQ;
        put32(e + 4, PVH_SCI_IRQ);
        put16(e + 8, 0xd);
        e += 10;
        madt_len = (uint32_t) (e - madt);
        sdt_header(madt, "APIC", madt_len, 1);
        put32(madt + SDT_HEADER, PVH_LAPIC);
        put32(madt + SDT_HEADER + 4, 1);
        sdt_finish(madt);

        sdt_header(rsdt, "RSDT", SDT_HEADER + 8, 1);
        put32(rsdt + SDT_HEADER, ACPI_FADT);
        put32(rsdt + SDT_HEADER + 4, ACPI_MADT);
        sdt_finish(rsdt);

        memcpy(rsdp, "RSD PTR ", 8);
        memcpy(rsdp + 9, "POLYVM", 6);
        rsdp[15] = 0; /* revision 0: RSDT only */
        put32(rsdp + 16, ACPI_RSDT);
        rsdp[8] = checksum(rsdp, 20);
}

int pvh_boot_write(uint8_t *mem, uint64_t mem_size, const char *cmdline, unsigned n_cpus) {
        /* cli; hlt; jmp back to the hlt (real mode) */
        static const uint8_t park[] = { 0xfa, 0xf4, 0xeb, 0xfd };
        const uint64_t gdt[4] = {
                [GDT_CS / 8] = 0x00cf9b000000ffffull, /* 32-bit code, base 0, 4 GiB */
                [GDT_DS / 8] = 0x00cf93000000ffffull, /* data, base 0, 4 GiB */
        };
        const struct pvh_memmap_entry map[PVH_MEMMAP_ENTRIES] = {
                { .addr = 0, .size = PVH_EBDA, .type = 1 },
                { .addr = PVH_EBDA, .size = 0xa0000 - PVH_EBDA, .type = 2 },
                { .addr = PVH_ACPI, .size = PVH_HIGH_RAM - PVH_ACPI, .type = 2 },
                { .addr = PVH_HIGH_RAM, .size = mem_size - PVH_HIGH_RAM, .type = 1 },
        };
        struct pvh_start_info si = {
                .magic = PVH_START_MAGIC,
                .version = 1,
                .cmdline_paddr = PVH_CMDLINE,
                .rsdp_paddr = ACPI_RSDP,
                .memmap_paddr = PVH_MEMMAP,
                .memmap_entries = PVH_MEMMAP_ENTRIES,
        };
        size_t len = cmdline ? strlen(cmdline) : 0;

        if (mem_size < PVH_MEMORY_MIN || mem_size > PVH_MEMORY_MAX || mem_size % 4096 != 0)
                return -EINVAL;
        if (n_cpus < 1 || n_cpus > PVH_MAX_CPUS || len >= PVH_CMDLINE_MAX)
                return -EINVAL;

        memcpy(mem + PVH_GDT, gdt, sizeof(gdt));
        memcpy(mem + PVH_PARK, park, sizeof(park));
        memset(mem + PVH_START_INFO, 0, 0x1000);
        memcpy(mem + PVH_START_INFO, &si, sizeof(si));
        memcpy(mem + PVH_MEMMAP, map, sizeof(map));
        memset(mem + PVH_CMDLINE, 0, PVH_CMDLINE_MAX);
        if (len > 0)
                memcpy(mem + PVH_CMDLINE, cmdline, len);
        write_acpi(mem, n_cpus);
        return 0;
}

static struct kvm_segment flat(uint16_t selector, uint8_t type) {
        return (struct kvm_segment) {
                .base = 0,
                .limit = 0xffffffff,
                .selector = selector,
                .type = type,
                .present = 1,
                .db = 1,
                .s = 1,
                .g = 1,
        };
}

void pvh_boot_bsp_state(uint64_t entry, struct kvm_regs *regs, struct kvm_sregs *sregs) {
        *regs = (struct kvm_regs) {
                .rip = entry,
                .rbx = PVH_START_INFO,
                .rflags = 0x2, /* bit 1 is always set; interrupts off */
        };
        sregs->cs = flat(GDT_CS, 0xb);
        sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = flat(GDT_DS, 0x3);
        sregs->gdt.base = PVH_GDT;
        sregs->gdt.limit = 4 * 8 - 1;
        sregs->cr0 = (sregs->cr0 | 0x1 /* PE */ | 0x10 /* ET */) & ~(0x80000000ull /* PG */ | 0x60000000ull /* CD, NW */);
        sregs->cr4 = 0;
        sregs->efer = 0;
}

void pvh_boot_ap_state(struct kvm_regs *regs, struct kvm_sregs *sregs) {
        *regs = (struct kvm_regs) { .rip = PVH_PARK, .rflags = 0x2 };
        sregs->cs.base = 0;
        sregs->cs.selector = 0;
}
