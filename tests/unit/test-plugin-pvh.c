/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PVH example plugin's pure parts: the ELF loader on ELFs built here
 * (good and broken), the boot data and ACPI tables byte by byte, the PVH
 * entry registers, the 16550 and the machine's port dispatch (PM1 power
 * off, typing at the prompt). The plugin against a launcher is
 * tests/integration/test-plugin-pvh.c. */
#include <elf.h>
#include <errno.h>
#include <glib.h>
#include <stddef.h>
#include <string.h>

#include "pvh-boot.h"
#include "pvh-elf.h"
#include "pvh-plugin.h"
#include "pvh-serial.h"

#define MEM_SIZE (4u << 20)
#define LOAD_ADDR 0x100000u
#define ENTRY (LOAD_ADDR + 0x10)

/* An ELF64 with a PT_LOAD of 64 file bytes (0xA5...) and 4096 memory bytes
 * at LOAD_ADDR, and a PT_NOTE with the PVH entry note (note_type). */
struct test_elf {
        Elf64_Ehdr eh;
        Elf64_Phdr ph[2];
        Elf64_Nhdr nh;
        char name[4];
        uint32_t entry;
        uint8_t payload[64];
} __attribute__((packed));

static void test_elf_build(struct test_elf *e, uint32_t note_type) {
        memset(e, 0, sizeof(*e));
        memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
        e->eh.e_ident[EI_CLASS] = ELFCLASS64;
        e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
        e->eh.e_ident[EI_VERSION] = EV_CURRENT;
        e->eh.e_type = ET_EXEC;
        e->eh.e_machine = EM_X86_64;
        e->eh.e_version = EV_CURRENT;
        e->eh.e_phoff = offsetof(struct test_elf, ph);
        e->eh.e_ehsize = sizeof(Elf64_Ehdr);
        e->eh.e_phentsize = sizeof(Elf64_Phdr);
        e->eh.e_phnum = 2;
        e->ph[0] = (Elf64_Phdr) { .p_type = PT_LOAD, .p_offset = offsetof(struct test_elf, payload),
                                  .p_paddr = LOAD_ADDR, .p_vaddr = LOAD_ADDR, .p_filesz = 64, .p_memsz = 4096 };
        e->ph[1] = (Elf64_Phdr) { .p_type = PT_NOTE, .p_offset = offsetof(struct test_elf, nh),
                                  .p_filesz = sizeof(Elf64_Nhdr) + 4 + 4 };
        e->nh = (Elf64_Nhdr) { .n_namesz = 4, .n_descsz = 4, .n_type = note_type };
        memcpy(e->name, "Xen", 4);
        e->entry = ENTRY;
        memset(e->payload, 0xa5, sizeof(e->payload));
}

static uint8_t *mem_new(void) {
        uint8_t *mem = g_malloc(MEM_SIZE);
        memset(mem, 0x5a, MEM_SIZE); /* so that zero-filling shows */
        return mem;
}

static void expect_elf_error(const struct test_elf *e, size_t size, uint64_t mem_size, const char *needle) {
        g_autofree uint8_t *mem = mem_new();
        char err[256] = "";
        uint64_t entry = 0;

        g_assert_cmpint(pvh_elf_load((const uint8_t *) e, size, mem, mem_size, 0x100000, &entry, err, sizeof(err)), ==,
                        -EINVAL);
        if (!strstr(err, needle))
                g_error("error '%s' does not say '%s'", err, needle);
        /* Nothing was loaded. */
        g_assert_cmphex(mem[LOAD_ADDR], ==, 0x5a);
}

static void test_elf_loads_segments_at_their_physical_addresses(void) {
        g_autofree uint8_t *mem = mem_new();
        struct test_elf e;
        char err[256] = "";
        uint64_t entry = 0;

        test_elf_build(&e, PVH_XEN_ELFNOTE_PHYS32_ENTRY);
        g_assert_cmpint(pvh_elf_load((const uint8_t *) &e, sizeof(e), mem, MEM_SIZE, 0x100000, &entry, err,
                                     sizeof(err)), ==, 0);
        g_assert_cmphex(entry, ==, ENTRY);
        for (unsigned i = 0; i < 64; i++)
                g_assert_cmphex(mem[LOAD_ADDR + i], ==, 0xa5);
        /* p_memsz past p_filesz is zeroed; the byte after it is untouched. */
        for (unsigned i = 64; i < 4096; i++)
                g_assert_cmphex(mem[LOAD_ADDR + i], ==, 0);
        g_assert_cmphex(mem[LOAD_ADDR + 4096], ==, 0x5a);
}

static void test_elf_with_8_byte_entry_note(void) {
        g_autofree uint8_t *mem = mem_new();
        struct test_elf e;
        char err[256] = "";
        uint64_t entry = 0;

        /* An 8-byte descriptor, as Linux's: its high half takes the first 4
         * payload bytes, so the PT_LOAD starts 4 bytes later. */
        test_elf_build(&e, PVH_XEN_ELFNOTE_PHYS32_ENTRY);
        e.nh.n_descsz = 8;
        e.ph[1].p_filesz += 4;
        memset(e.payload, 0, 4);
        e.ph[0].p_offset += 4;
        e.ph[0].p_filesz = 60;
        g_assert_cmpint(pvh_elf_load((const uint8_t *) &e, sizeof(e), mem, MEM_SIZE, 0x100000, &entry, err,
                                     sizeof(err)), ==, 0);
        g_assert_cmphex(entry, ==, ENTRY);
        g_assert_cmphex(mem[LOAD_ADDR], ==, 0xa5);
        g_assert_cmphex(mem[LOAD_ADDR + 60], ==, 0);
}

static void test_elf_bad_inputs_are_refused(void) {
        struct test_elf e;
        char text[sizeof(e)];

        memset(text, 'x', sizeof(text));
        expect_elf_error((const struct test_elf *) text, sizeof(text), MEM_SIZE, "not an ELF file");

        test_elf_build(&e, PVH_XEN_ELFNOTE_PHYS32_ENTRY);
        expect_elf_error(&e, 32, MEM_SIZE, "not an ELF file"); /* shorter than a header */

        test_elf_build(&e, 99);
        expect_elf_error(&e, sizeof(e), MEM_SIZE, "no PVH entry");

        test_elf_build(&e, PVH_XEN_ELFNOTE_PHYS32_ENTRY);
        e.ph[0].p_memsz = MEM_SIZE; /* runs past the end of guest memory */
        expect_elf_error(&e, sizeof(e), MEM_SIZE, "beyond guest memory");

        test_elf_build(&e, PVH_XEN_ELFNOTE_PHYS32_ENTRY);
        e.ph[0].p_paddr = 0x7000; /* over the boot data */
        expect_elf_error(&e, sizeof(e), MEM_SIZE, "beyond guest memory");

        test_elf_build(&e, PVH_XEN_ELFNOTE_PHYS32_ENTRY);
        e.ph[0].p_paddr = UINT64_MAX - 100; /* wraps */
        expect_elf_error(&e, sizeof(e), MEM_SIZE, "beyond guest memory");

        test_elf_build(&e, PVH_XEN_ELFNOTE_PHYS32_ENTRY);
        e.ph[0].p_filesz = 1 << 20; /* past the end of the file */
        expect_elf_error(&e, sizeof(e), MEM_SIZE, "past the end of the file");

        test_elf_build(&e, PVH_XEN_ELFNOTE_PHYS32_ENTRY);
        e.nh.n_descsz = 1000; /* a note longer than its segment */
        expect_elf_error(&e, sizeof(e), MEM_SIZE, "runs past the segment");

        test_elf_build(&e, PVH_XEN_ELFNOTE_PHYS32_ENTRY);
        e.entry = LOAD_ADDR + 0x10000;
        expect_elf_error(&e, sizeof(e), MEM_SIZE, "not inside a PT_LOAD");

        test_elf_build(&e, PVH_XEN_ELFNOTE_PHYS32_ENTRY);
        e.eh.e_ident[EI_CLASS] = ELFCLASS32;
        expect_elf_error(&e, sizeof(e), MEM_SIZE, "ELF64");

        test_elf_build(&e, PVH_XEN_ELFNOTE_PHYS32_ENTRY);
        e.eh.e_type = ET_DYN;
        expect_elf_error(&e, sizeof(e), MEM_SIZE, "ET_EXEC");

        test_elf_build(&e, PVH_XEN_ELFNOTE_PHYS32_ENTRY);
        e.eh.e_phnum = 1000;
        expect_elf_error(&e, sizeof(e), MEM_SIZE, "program headers");
}

static uint8_t sum(const uint8_t *p, size_t len) {
        uint8_t s = 0;
        for (size_t i = 0; i < len; i++)
                s = (uint8_t) (s + p[i]);
        return s;
}

static uint32_t get32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
}

static void test_boot_data_start_info_memmap_cmdline(void) {
        g_autofree uint8_t *mem = g_malloc0(MEM_SIZE);
        struct pvh_start_info si;
        struct pvh_memmap_entry mm[PVH_MEMMAP_ENTRIES];

        g_assert_cmpint(pvh_boot_write(mem, MEM_SIZE, "console=ttyS0 tg.x=1", 2), ==, 0);
        memcpy(&si, mem + PVH_START_INFO, sizeof(si));
        g_assert_cmphex(si.magic, ==, PVH_START_MAGIC);
        g_assert_cmpuint(si.version, ==, 1);
        g_assert_cmphex(si.cmdline_paddr, ==, PVH_CMDLINE);
        g_assert_cmpstr((const char *) mem + si.cmdline_paddr, ==, "console=ttyS0 tg.x=1");
        g_assert_cmpuint(si.memmap_entries, ==, PVH_MEMMAP_ENTRIES);
        memcpy(mm, mem + si.memmap_paddr, sizeof(mm));
        /* Low RAM, the EBDA, the ACPI area, then RAM from 1 MiB to the end. */
        g_assert_cmphex(mm[0].addr, ==, 0);
        g_assert_cmphex(mm[0].size, ==, PVH_EBDA);
        g_assert_cmpuint(mm[0].type, ==, 1);
        g_assert_cmpuint(mm[1].type, ==, 2);
        g_assert_cmphex(mm[2].addr, ==, PVH_ACPI);
        g_assert_cmpuint(mm[2].type, ==, 2);
        g_assert_cmphex(mm[3].addr, ==, PVH_HIGH_RAM);
        g_assert_cmphex(mm[3].addr + mm[3].size, ==, MEM_SIZE);
        g_assert_cmpuint(mm[3].type, ==, 1);
        /* The APs' parking loop: cli; hlt; jmp. */
        g_assert_cmphex(mem[PVH_PARK], ==, 0xfa);
        g_assert_cmphex(mem[PVH_PARK + 1], ==, 0xf4);
}

static const uint8_t *rsdt_entry(const uint8_t *mem, const char *sig) {
        const uint8_t *rsdt = mem + get32(mem + get32(mem + PVH_START_INFO + offsetof(struct pvh_start_info, rsdp_paddr)) + 16);
        for (uint32_t off = 36; off + 4 <= get32(rsdt + 4); off += 4) {
                const uint8_t *t = mem + get32(rsdt + off);
                if (memcmp(t, sig, 4) == 0)
                        return t;
        }
        return NULL;
}

static void test_boot_data_acpi_tables_checksum_and_describe_the_machine(void) {
        g_autofree uint8_t *mem = g_malloc0(MEM_SIZE);
        const uint8_t *rsdp, *rsdt, *fadt, *madt, *dsdt, *e;
        unsigned lapics = 0, ioapics = 0;

        g_assert_cmpint(pvh_boot_write(mem, MEM_SIZE, NULL, 3), ==, 0);
        rsdp = mem + get32(mem + PVH_START_INFO + offsetof(struct pvh_start_info, rsdp_paddr)); /* rsdp_paddr */
        g_assert_cmpmem(rsdp, 8, "RSD PTR ", 8);
        g_assert_cmpuint(sum(rsdp, 20), ==, 0);
        rsdt = mem + get32(rsdp + 16);
        g_assert_cmpmem(rsdt, 4, "RSDT", 4);
        g_assert_cmpuint(sum(rsdt, get32(rsdt + 4)), ==, 0);
        fadt = rsdt_entry(mem, "FACP");
        madt = rsdt_entry(mem, "APIC");
        g_assert_nonnull(fadt);
        g_assert_nonnull(madt);
        g_assert_cmpuint(sum(fadt, get32(fadt + 4)), ==, 0);
        g_assert_cmpuint(sum(madt, get32(madt + 4)), ==, 0);
        g_assert_cmphex(get32(fadt + 56), ==, PVH_PM1A_EVT);
        g_assert_cmphex(get32(fadt + 64), ==, PVH_PM1A_CNT);
        g_assert_cmpuint(fadt[88], ==, 4);
        g_assert_cmpuint(fadt[46], ==, PVH_SCI_IRQ);
        dsdt = mem + get32(fadt + 40);
        g_assert_cmpmem(dsdt, 4, "DSDT", 4);
        g_assert_cmpuint(sum(dsdt, get32(dsdt + 4)), ==, 0);
        /* Name (_S5, Package () { 5, ... }) */
        g_assert_nonnull(memmem(dsdt, get32(dsdt + 4), "\x08_S5_\x12\x08\x04\x0a\x05", 10));
        g_assert_cmphex(get32(madt + 36), ==, PVH_LAPIC);
        for (e = madt + 44; e < madt + get32(madt + 4); e += e[1]) {
                g_assert_cmpuint(e[1], >=, 2);
                if (e[0] == 0) {
                        g_assert_cmpuint(e[3], ==, lapics); /* APIC id = vCPU index */
                        g_assert_cmpuint(get32(e + 4) & 1, ==, 1);
                        lapics++;
                } else if (e[0] == 1) {
                        g_assert_cmphex(get32(e + 4), ==, PVH_IOAPIC);
                        ioapics++;
                }
        }
        g_assert_cmpuint(lapics, ==, 3);
        g_assert_cmpuint(ioapics, ==, 1);
}

static void test_boot_data_bad_sizes_are_refused(void) {
        g_autofree uint8_t *mem = g_malloc0(MEM_SIZE);
        g_autofree char *long_cmdline = g_strnfill(PVH_CMDLINE_MAX, 'a');

        g_assert_cmpint(pvh_boot_write(mem, 1u << 20, NULL, 1), ==, -EINVAL);
        g_assert_cmpint(pvh_boot_write(mem, MEM_SIZE + 1, NULL, 1), ==, -EINVAL);
        g_assert_cmpint(pvh_boot_write(mem, MEM_SIZE, NULL, 0), ==, -EINVAL);
        g_assert_cmpint(pvh_boot_write(mem, MEM_SIZE, NULL, PVH_MAX_CPUS + 1), ==, -EINVAL);
        g_assert_cmpint(pvh_boot_write(mem, MEM_SIZE, long_cmdline, 1), ==, -EINVAL);
}

static void test_bsp_enters_32_bit_protected_mode_without_paging(void) {
        struct kvm_regs regs;
        struct kvm_sregs sregs = {};

        sregs.cr0 = 0x60000010; /* the reset value: CD, NW, ET */
        pvh_boot_bsp_state(ENTRY, &regs, &sregs);
        g_assert_cmphex(regs.rip, ==, ENTRY);
        g_assert_cmphex(regs.rbx, ==, PVH_START_INFO);
        g_assert_cmphex(regs.rflags, ==, 0x2);
        g_assert_cmphex(sregs.cr0 & 1, ==, 1);
        g_assert_cmphex(sregs.cr0 & 0x80000000u, ==, 0);
        g_assert_cmphex(sregs.cr0 & 0x60000000u, ==, 0);
        g_assert_cmphex(sregs.efer, ==, 0);
        g_assert_cmphex(sregs.cs.base, ==, 0);
        g_assert_cmphex(sregs.cs.limit, ==, 0xffffffff);
        g_assert_cmpuint(sregs.cs.db, ==, 1);
        g_assert_cmpuint(sregs.cs.l, ==, 0);
        g_assert_cmpuint(sregs.cs.type, ==, 0xb);
        g_assert_cmpuint(sregs.ds.type, ==, 0x3);
        g_assert_cmphex(sregs.gdt.base, ==, PVH_GDT);
}

static void test_ap_is_parked_in_real_mode(void) {
        struct kvm_regs regs;
        struct kvm_sregs sregs = { .cs = { .base = 0xffff0000, .selector = 0xf000 } };

        pvh_boot_ap_state(&regs, &sregs);
        g_assert_cmphex(regs.rip, ==, PVH_PARK);
        g_assert_cmphex(sregs.cs.base, ==, 0);
        g_assert_cmphex(regs.rflags & 0x200, ==, 0); /* interrupts off */
}

static void test_serial_transmits_at_once_and_receives_through_the_fifo(void) {
        struct pvh_serial s;

        pvh_serial_init(&s);
        g_assert_cmphex(pvh_serial_read(&s, 5), ==, UART_LSR_THRE | UART_LSR_TEMT);
        g_assert_cmpint(pvh_serial_write(&s, 0, 'A'), ==, 'A');
        g_assert_cmphex(pvh_serial_read(&s, 5) & UART_LSR_THRE, ==, UART_LSR_THRE);
        g_assert_false(pvh_serial_irq(&s)); /* IER is 0 */

        g_assert_cmpuint(pvh_serial_receive(&s, "hi", 2), ==, 2);
        g_assert_cmphex(pvh_serial_read(&s, 5) & UART_LSR_DR, ==, UART_LSR_DR);
        g_assert_false(pvh_serial_irq(&s));
        pvh_serial_write(&s, 1, UART_IER_RDI);
        g_assert_true(pvh_serial_irq(&s));
        g_assert_cmphex(pvh_serial_read(&s, 2) & 0x0f, ==, UART_IIR_RDI);
        g_assert_cmphex(pvh_serial_read(&s, 0), ==, 'h');
        g_assert_cmphex(pvh_serial_read(&s, 0), ==, 'i');
        g_assert_cmphex(pvh_serial_read(&s, 5) & UART_LSR_DR, ==, 0);
        g_assert_false(pvh_serial_irq(&s));
        g_assert_cmphex(pvh_serial_read(&s, 2) & 0x0f, ==, UART_IIR_NONE);
}

static void test_serial_thr_interrupt_and_divisor_latch(void) {
        struct pvh_serial s;

        pvh_serial_init(&s);
        pvh_serial_write(&s, 1, UART_IER_THRI);
        g_assert_true(pvh_serial_irq(&s));
        g_assert_cmphex(pvh_serial_read(&s, 2) & 0x0f, ==, UART_IIR_THRI);
        g_assert_false(pvh_serial_irq(&s)); /* acknowledged by the IIR read */

        /* With DLAB, offsets 0 and 1 are the divisor, not THR and IER. */
        pvh_serial_write(&s, 3, 0x83);
        g_assert_cmpint(pvh_serial_write(&s, 0, 1), ==, -1);
        pvh_serial_write(&s, 1, 0);
        g_assert_cmphex(pvh_serial_read(&s, 0), ==, 1);
        pvh_serial_write(&s, 3, 0x03);
        g_assert_cmphex(pvh_serial_read(&s, 1), ==, UART_IER_THRI);
        pvh_serial_write(&s, 7, 0x42);
        g_assert_cmphex(pvh_serial_read(&s, 7), ==, 0x42);
        /* FCR with "clear RX" drops what was received. */
        pvh_serial_receive(&s, "x", 1);
        pvh_serial_write(&s, 2, 0x03);
        g_assert_cmphex(pvh_serial_read(&s, 5) & UART_LSR_DR, ==, 0);
        g_assert_cmphex(pvh_serial_read(&s, 2) & 0xc0, ==, 0xc0);
}

static void test_machine_powers_off_on_s5_only(void) {
        struct pvh_machine m;
        uint8_t data[8] = {};

        pvh_machine_init(&m, NULL, stdout);
        /* PM1a_CNT reads SCI_EN: the guest need not enter ACPI mode. */
        g_assert_cmpint(pvh_machine_io(&m, false, PVH_PM1A_CNT, 2, data), ==, 0);
        g_assert_cmphex(data[0] & 1, ==, 1);
        /* SLP_EN with S3's type is not a power off. */
        data[0] = 0, data[1] = (uint8_t) ((3 << 10 | 1 << 13) >> 8);
        g_assert_cmpint(pvh_machine_io(&m, true, PVH_PM1A_CNT, 2, data), ==, 0);
        g_assert_false(m.poweroff);
        /* S5's type without SLP_EN neither; then with it. */
        data[1] = (uint8_t) ((PVH_SLP_TYP_S5 << 10) >> 8);
        g_assert_cmpint(pvh_machine_io(&m, true, PVH_PM1A_CNT, 2, data), ==, 0);
        g_assert_false(m.poweroff);
        data[1] = (uint8_t) ((PVH_SLP_TYP_S5 << 10 | 1 << 13) >> 8);
        g_assert_cmpint(pvh_machine_io(&m, true, PVH_PM1A_CNT, 2, data), ==, 0);
        g_assert_true(m.poweroff);
}

static void test_machine_types_script_lines_at_the_prompt(void) {
        g_autofree char *text = NULL;
        size_t text_len = 0;
        FILE *out = open_memstream(&text, &text_len);
        struct pvh_machine m;
        uint8_t data[8] = {};
        char got[16] = "";

        pvh_machine_init(&m, "cpus\npoweroff\n", out);
        pvh_machine_io(&m, true, PVH_SERIAL_PORT + 1, 1, (uint8_t[8]) { UART_IER_RDI });
        for (const char *c = "boot\ntg"; *c; c++)
                pvh_machine_io(&m, true, PVH_SERIAL_PORT, 1, (uint8_t[8]) { (uint8_t) *c });
        g_assert_false(pvh_serial_irq(&m.serial)); /* no prompt yet */
        for (const char *c = "> "; *c; c++)
                pvh_machine_io(&m, true, PVH_SERIAL_PORT, 1, (uint8_t[8]) { (uint8_t) *c });
        g_assert_true(pvh_serial_irq(&m.serial));
        for (size_t i = 0; i < sizeof(got) - 1; i++) {
                pvh_machine_io(&m, false, PVH_SERIAL_PORT + 5, 1, data);
                if (!(data[0] & UART_LSR_DR))
                        break;
                pvh_machine_io(&m, false, PVH_SERIAL_PORT, 1, data);
                got[i] = (char) data[0];
        }
        g_assert_cmpstr(got, ==, "cpus\r"); /* one line per prompt */
        g_assert_cmpstr(m.input, ==, "poweroff\n");
        fclose(out);
        g_assert_cmpstr(text, ==, "boot\ntg> ");
}

static void test_machine_ports_of_others_read_all_ones(void) {
        struct pvh_machine m;
        uint8_t data[8] = {};

        pvh_machine_init(&m, NULL, stdout);
        g_assert_cmpint(pvh_machine_io(&m, false, 0x3f7, 1, data), ==, -ENOENT);
        g_assert_cmphex(data[0], ==, 0xff);
        /* A 2-byte read of LSR and MSR. */
        g_assert_cmpint(pvh_machine_io(&m, false, PVH_SERIAL_PORT + 5, 2, data), ==, 0);
        g_assert_cmphex(data[0], ==, UART_LSR_THRE | UART_LSR_TEMT);
        g_assert_cmphex(data[1], ==, 0xb0);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/plugin-pvh/elf-loads-segments-at-their-physical-addresses",
                        test_elf_loads_segments_at_their_physical_addresses);
        g_test_add_func("/plugin-pvh/elf-with-8-byte-entry-note", test_elf_with_8_byte_entry_note);
        g_test_add_func("/plugin-pvh/elf-bad-inputs-are-refused", test_elf_bad_inputs_are_refused);
        g_test_add_func("/plugin-pvh/boot-data-start-info-memmap-cmdline", test_boot_data_start_info_memmap_cmdline);
        g_test_add_func("/plugin-pvh/boot-data-acpi-tables-checksum-and-describe-the-machine",
                        test_boot_data_acpi_tables_checksum_and_describe_the_machine);
        g_test_add_func("/plugin-pvh/boot-data-bad-sizes-are-refused", test_boot_data_bad_sizes_are_refused);
        g_test_add_func("/plugin-pvh/bsp-enters-32-bit-protected-mode-without-paging",
                        test_bsp_enters_32_bit_protected_mode_without_paging);
        g_test_add_func("/plugin-pvh/ap-is-parked-in-real-mode", test_ap_is_parked_in_real_mode);
        g_test_add_func("/plugin-pvh/serial-transmits-at-once-and-receives-through-the-fifo",
                        test_serial_transmits_at_once_and_receives_through_the_fifo);
        g_test_add_func("/plugin-pvh/serial-thr-interrupt-and-divisor-latch",
                        test_serial_thr_interrupt_and_divisor_latch);
        g_test_add_func("/plugin-pvh/machine-powers-off-on-s5-only", test_machine_powers_off_on_s5_only);
        g_test_add_func("/plugin-pvh/machine-types-script-lines-at-the-prompt",
                        test_machine_types_script_lines_at_the_prompt);
        g_test_add_func("/plugin-pvh/machine-ports-of-others-read-all-ones", test_machine_ports_of_others_read_all_ones);
        return g_test_run();
}
