/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ACPI tables: structure, checksums, per-vCPU MADT entries, FADT fields,
 * the AML PkgLength encoding, and ACPICA's own disassembler (iasl -d) as
 * an independent judge of every table. */

#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "acpi-aml.h"
#include "acpi.h"
#include "layout.h"

#define MEM_SIZE (2ULL << 20)

struct table {
        uint64_t addr;
        const uint8_t *p;
        uint32_t len;
};

static uint8_t sum(const uint8_t *p, size_t n) {
        uint8_t s = 0;
        for (size_t i = 0; i < n; i++)
                s += p[i];
        return s;
}

static uint32_t rd32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
}

static uint64_t rd64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
}

static uint16_t rd16(const uint8_t *p) {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
}

static uint8_t *build(unsigned n_vcpus, uint64_t *rsdp) {
        uint8_t *mem = g_malloc0(MEM_SIZE);

        g_assert_cmpint(acpi_build(mem, MEM_SIZE, n_vcpus, rsdp), ==, 0);
        return mem;
}

/* A table by address, checked: inside the ACPI area, its signature, a
 * length that covers the header, a zero checksum. */
static struct table table_at(const uint8_t *mem, uint64_t addr, const char *sig) {
        struct table t = { .addr = addr, .p = mem + addr };

        g_assert_cmphex(addr, >=, LAYOUT_ACPI_START);
        g_assert_cmphex(addr, <, LAYOUT_ACPI_END);
        g_assert_cmpmem(t.p, 4, sig, 4);
        if (strcmp(sig, "FACS") == 0) {
                t.len = rd32(t.p + 4);
                g_assert_cmpuint(t.len, ==, 64);
                g_assert_cmphex(addr % 64, ==, 0);
        } else {
                t.len = rd32(t.p + 4);
                g_assert_cmpuint(t.len, >=, 36);
                g_assert_cmpuint(sum(t.p, t.len), ==, 0);
                g_assert_cmpmem(t.p + 10, 6, "POLYVM", 6);
        }
        g_assert_cmphex(addr + t.len, <=, LAYOUT_ACPI_END);
        return t;
}

struct tables {
        struct table rsdp, xsdt, fadt, facs, dsdt, madt;
};

static void find_tables(const uint8_t *mem, uint64_t rsdp_addr, struct tables *t) {
        const uint8_t *r = mem + rsdp_addr;
        size_t n;

        g_assert_cmphex(rsdp_addr, >=, LAYOUT_ACPI_START);
        g_assert_cmphex(rsdp_addr % 16, ==, 0); /* Linux scans 16-byte boundaries */
        g_assert_cmpmem(r, 8, "RSD PTR ", 8);
        g_assert_cmpuint(sum(r, 20), ==, 0);
        g_assert_cmpuint(r[15], ==, 2);
        g_assert_cmpuint(rd32(r + 20), ==, 36);
        g_assert_cmpuint(sum(r, 36), ==, 0);
        g_assert_cmpmem(r + 9, 6, "POLYVM", 6);
        t->rsdp = (struct table) { rsdp_addr, r, 36 };

        t->xsdt = table_at(mem, rd64(r + 24), "XSDT");
        n = (t->xsdt.len - 36) / 8;
        g_assert_cmpuint((t->xsdt.len - 36) % 8, ==, 0);
        g_assert_cmpuint(n, ==, 2);
        t->fadt = table_at(mem, rd64(t->xsdt.p + 36), "FACP");
        t->madt = table_at(mem, rd64(t->xsdt.p + 44), "APIC");
        t->dsdt = table_at(mem, rd64(t->fadt.p + 140), "DSDT");
        t->facs = table_at(mem, rd64(t->fadt.p + 132), "FACS");
}

static void assert_no_overlap(const struct tables *t) {
        const struct table *all[] = { &t->rsdp, &t->xsdt, &t->fadt, &t->facs, &t->dsdt, &t->madt };

        for (size_t i = 0; i < G_N_ELEMENTS(all); i++)
                for (size_t j = i + 1; j < G_N_ELEMENTS(all); j++)
                        g_assert_true(all[i]->addr + all[i]->len <= all[j]->addr ||
                                      all[j]->addr + all[j]->len <= all[i]->addr);
}

static void test_tables_have_right_checksums_and_lengths(void) {
        unsigned counts[] = { 1, 2, 4, 16 };

        for (size_t i = 0; i < G_N_ELEMENTS(counts); i++) {
                uint64_t rsdp;
                g_autofree uint8_t *mem = build(counts[i], &rsdp);
                struct tables t;

                find_tables(mem, rsdp, &t);
                assert_no_overlap(&t);
                g_assert_cmpuint(t.fadt.len, ==, 276);
                g_assert_cmpuint(t.fadt.p[8], ==, 6);
                g_assert_cmpuint(t.xsdt.len, ==, 36 + 16);
                /* Nothing written outside the ACPI area. */
                for (size_t a = 0; a < LAYOUT_ACPI_START; a++)
                        if (mem[a])
                                g_error("byte at 0x%zx written", a);
                for (size_t a = LAYOUT_ACPI_END; a < MEM_SIZE; a++)
                        if (mem[a])
                                g_error("byte at 0x%zx written", a);
        }
}

static void test_madt_has_one_lapic_per_vcpu(void) {
        unsigned counts[] = { 1, 2, 3, 16 };

        for (size_t c = 0; c < G_N_ELEMENTS(counts); c++) {
                unsigned n = counts[c], lapics = 0, ioapics = 0, isos = 0, nmis = 0;
                uint64_t rsdp;
                g_autofree uint8_t *mem = build(n, &rsdp);
                struct tables t;
                size_t off;

                find_tables(mem, rsdp, &t);
                g_assert_cmphex(rd32(t.madt.p + 36), ==, LAYOUT_LAPIC);
                g_assert_cmphex(rd32(t.madt.p + 40) & 1, ==, 1); /* PCAT_COMPAT */
                for (off = 44; off < t.madt.len;) {
                        const uint8_t *e = t.madt.p + off;

                        g_assert_cmpuint(e[1], >=, 2);
                        g_assert_cmpuint(off + e[1], <=, t.madt.len);
                        switch (e[0]) {
                        case 0:
                                g_assert_cmpuint(e[1], ==, 8);
                                g_assert_cmpuint(e[2], ==, lapics); /* processor uid */
                                g_assert_cmpuint(e[3], ==, lapics); /* APIC id */
                                g_assert_cmphex(rd32(e + 4), ==, 1); /* enabled */
                                lapics++;
                                break;
                        case 1:
                                g_assert_cmpuint(e[1], ==, 12);
                                g_assert_cmpuint(e[2], ==, n);
                                g_assert_cmphex(rd32(e + 4), ==, LAYOUT_IOAPIC);
                                g_assert_cmpuint(rd32(e + 8), ==, 0);
                                ioapics++;
                                break;
                        case 2:
                                g_assert_cmpuint(e[1], ==, 10);
                                g_assert_cmpuint(e[2], ==, 0);  /* ISA */
                                g_assert_cmpuint(e[3], ==, LAYOUT_SCI_IRQ);
                                g_assert_cmpuint(rd32(e + 4), ==, LAYOUT_SCI_IRQ);
                                g_assert_cmphex(rd16(e + 8), ==, 0xd); /* level, active high */
                                isos++;
                                break;
                        case 4:
                                g_assert_cmpuint(e[1], ==, 6);
                                g_assert_cmpuint(e[2], ==, 0xff);
                                g_assert_cmpuint(e[5], ==, 1); /* LINT1 */
                                nmis++;
                                break;
                        default:
                                g_error("unexpected MADT entry type %u", e[0]);
                        }
                        off += e[1];
                }
                g_assert_cmpuint(off, ==, t.madt.len);
                g_assert_cmpuint(lapics, ==, n);
                g_assert_cmpuint(ioapics, ==, 1);
                g_assert_cmpuint(isos, ==, 1); /* the SCI only: IRQ0 is identity-mapped to pin 0 */
                g_assert_cmpuint(nmis, ==, 1);
        }
}

static void assert_gas_io(const uint8_t *g, uint16_t port, uint8_t bits) {
        g_assert_cmpuint(g[0], ==, 1); /* system I/O */
        g_assert_cmpuint(g[1], ==, bits);
        g_assert_cmpuint(g[2], ==, 0);
        g_assert_cmphex(rd64(g + 4), ==, port);
}

static void test_fadt_fields(void) {
        uint64_t rsdp;
        g_autofree uint8_t *mem = build(2, &rsdp);
        struct tables t;
        const uint8_t *f;
        uint32_t flags;

        find_tables(mem, rsdp, &t);
        f = t.fadt.p;
        g_assert_cmpuint(rd16(f + 46), ==, 9);                   /* SCI_INT */
        g_assert_cmpuint(rd32(f + 48), ==, 0);                   /* SMI_CMD: always in ACPI mode */
        g_assert_cmphex(rd32(f + 56), ==, LAYOUT_PM1A_EVT_PORT); /* PM1a_EVT_BLK */
        g_assert_cmphex(rd32(f + 64), ==, LAYOUT_PM1A_CNT_PORT); /* PM1a_CNT_BLK */
        g_assert_cmpuint(f[88], ==, 4);                          /* PM1_EVT_LEN */
        g_assert_cmpuint(f[89], ==, 2);                          /* PM1_CNT_LEN */
        g_assert_cmpuint(rd16(f + 109) & 0x2, ==, 0);            /* no 8042 */
        flags = rd32(f + 112);
        g_assert_cmphex(flags & (1u << 10), !=, 0);              /* RESET_REG_SUP */
        g_assert_cmphex(flags & (1u << 20), ==, 0);              /* not HW_REDUCED_ACPI */
        g_assert_cmphex(flags & (1u << 4), ==, 0);               /* PWR_BUTTON clear: fixed-feature button (Stop()) */
        g_assert_cmphex(flags & (1u << 5), !=, 0);               /* SLP_BUTTON set: no sleep button */
        assert_gas_io(f + 116, LAYOUT_RESET_PORT, 8);            /* RESET_REG */
        g_assert_cmphex(f[128], ==, LAYOUT_RESET_VALUE);         /* RESET_VALUE */
        g_assert_cmphex(rd32(f + 40), ==, t.dsdt.addr);          /* DSDT */
        g_assert_cmphex(rd64(f + 140), ==, t.dsdt.addr);         /* X_DSDT */
        g_assert_cmphex(rd32(f + 36), ==, t.facs.addr);          /* FIRMWARE_CTRL */
        assert_gas_io(f + 148, LAYOUT_PM1A_EVT_PORT, 32);        /* X_PM1a_EVT_BLK */
        assert_gas_io(f + 172, LAYOUT_PM1A_CNT_PORT, 16);        /* X_PM1a_CNT_BLK */
}

static void test_dsdt_has_s5_and_com1(void) {
        /* Name (_S5_, Package (4) { 5, 5, 0, 0 }) with a one-byte PkgLength of 8. */
        static const uint8_t s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00 };
        static const uint8_t hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01 };
        static const uint8_t io[] = { 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00, 0x79 };
        uint64_t rsdp;
        g_autofree uint8_t *mem = build(1, &rsdp);
        struct tables t;

        find_tables(mem, rsdp, &t);
        g_assert_cmpuint(t.dsdt.p[8], ==, 2); /* revision 2: 64-bit integers */
        g_assert_nonnull(memmem(t.dsdt.p + 36, t.dsdt.len - 36, s5, sizeof(s5)));
        g_assert_nonnull(memmem(t.dsdt.p + 36, t.dsdt.len - 36, hid, sizeof(hid)));
        g_assert_nonnull(memmem(t.dsdt.p + 36, t.dsdt.len - 36, io, sizeof(io)));
}

static void test_bad_arguments_are_refused(void) {
        g_autofree uint8_t *mem = g_malloc0(MEM_SIZE);
        uint64_t rsdp;

        g_assert_cmpint(acpi_build(mem, MEM_SIZE, 0, &rsdp), ==, -EINVAL);
        g_assert_cmpint(acpi_build(mem, MEM_SIZE, 17, &rsdp), ==, -EINVAL);
        g_assert_cmpint(acpi_build(mem, 512 * 1024, 1, &rsdp), ==, -EINVAL);
}

/* Decodes a PkgLength the way ACPICA does. */
static size_t pkg_length_decode(const uint8_t *p, size_t *ret_bytes) {
        size_t n = (p[0] >> 6) + 1, v;

        if (n == 1) {
                *ret_bytes = 1;
                return p[0] & 0x3f;
        }
        v = p[0] & 0x0f;
        for (size_t i = 1; i < n; i++)
                v |= (size_t) p[i] << (4 + 8 * (i - 1));
        *ret_bytes = n;
        return v;
}

static void test_aml_pkg_length_encoding(void) {
        size_t lens[] = { 0, 1, 7, 61, 62, 63, 64, 100, 0xffc, 0xffd, 0xffe, 0x1000, 0xffffc, 0xffffd, 0x100000, 0xffffffb };
        uint8_t enc[4];

        for (size_t i = 0; i < G_N_ELEMENTS(lens); i++) {
                size_t n = aml_pkg_length_encode(lens[i], enc), bytes;
                size_t total = pkg_length_decode(enc, &bytes);

                g_assert_cmpuint(n, >=, 1);
                g_assert_cmpuint(bytes, ==, n);
                g_assert_cmpuint(total, ==, lens[i] + n); /* the length counts its own bytes */
                if (n > 1)
                        g_assert_cmphex(enc[0] & 0x30, ==, 0); /* bits 4-5 reserved */
        }
        g_assert_cmpuint(aml_pkg_length_encode(62, enc), ==, 1);
        g_assert_cmphex(enc[0], ==, 63);
        g_assert_cmpuint(aml_pkg_length_encode(63, enc), ==, 2);
        g_assert_cmpuint(aml_pkg_length_encode(0xffffffc, enc), ==, 0); /* too long for 28 bits */
}

static void test_aml_package_body_grows_its_length(void) {
        uint8_t buf[600];
        struct aml a;
        size_t start, len, bytes;

        aml_init(&a, buf, sizeof(buf));
        aml_byte(&a, AML_PACKAGE_OP);
        start = aml_pkg_begin(&a);
        for (int i = 0; i < 100; i++)
                aml_integer(&a, 0x1234); /* 3 bytes each */
        aml_pkg_end(&a, start);
        g_assert_cmpint(aml_finish(&a, &len), ==, 0);
        g_assert_cmpuint(len, ==, 1 + 2 + 300);
        g_assert_cmpuint(pkg_length_decode(buf + 1, &bytes), ==, 302);
        g_assert_cmphex(buf[3], ==, AML_WORD_PREFIX);

        aml_init(&a, buf, 10);
        for (int i = 0; i < 5; i++)
                aml_integer(&a, 0x12345678);
        g_assert_cmpint(aml_finish(&a, &len), ==, -ENOBUFS);
}

static void test_aml_integers_and_names(void) {
        uint8_t buf[64];
        struct aml a;
        size_t len;
        static const uint8_t want[] = {
                0x00, 0x01, 0x0a, 0x05, 0x0b, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x01, 0x00,
                0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                0x5c, '_', 'S', 'B', '_', 0x2e, '_', 'S', 'B', '_', 'C', 'O', 'M', '1', 'A', '_', '_', '_',
        };

        aml_init(&a, buf, sizeof(buf));
        aml_integer(&a, 0);
        aml_integer(&a, 1);
        aml_integer(&a, 5);
        aml_integer(&a, 0x100);
        aml_integer(&a, 0x10000);
        aml_integer(&a, 0x100000000ULL);
        aml_name_string(&a, "\\_SB_");
        aml_name_string(&a, "_SB.COM1");
        aml_name_string(&a, "A");
        g_assert_cmpint(aml_finish(&a, &len), ==, 0);
        g_assert_cmpmem(buf, len, want, sizeof(want));
        g_assert_cmphex(aml_eisa_id("PNP0501"), ==, 0x0105d041);
        g_assert_cmphex(aml_eisa_id("PNP0A03"), ==, 0x030ad041);
}

static char *run_iasl(const char *dir, const char *file) {
        g_autofree char *iasl = g_find_program_in_path("iasl");
        g_autofree char *out = NULL, *errout = NULL, *dsl_name = NULL, *dsl = NULL;
        const char *argv[] = { iasl, "-d", file, NULL };
        GError *error = NULL;
        char *text = NULL;
        int status;

        if (!iasl)
                g_error("iasl not found in PATH: install acpica-tools (this test must not skip)");
        if (!g_spawn_sync(dir, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &errout, &status, &error))
                g_error("running iasl: %s", error->message);
        if (!g_spawn_check_wait_status(status, NULL))
                g_error("iasl -d %s failed:\n%s\n%s", file, out, errout);
        dsl_name = g_strndup(file, strlen(file) - 4);
        dsl = g_strconcat(dir, "/", dsl_name, ".dsl", NULL);
        if (!g_file_get_contents(dsl, &text, NULL, &error))
                g_error("iasl wrote no %s: %s\n%s", dsl, error->message, out);
        return text;
}

/* iasl cannot disassemble a bare RSDP (it has no standard header), so let
 * it compile one from our field values: its checksums must equal ours. */
static void test_iasl_compiles_the_same_rsdp(void) {
        uint64_t rsdp;
        g_autofree uint8_t *mem = build(1, &rsdp);
        g_autofree char *dir = g_dir_make_tmp("polyvm-test-acpi-XXXXXX", NULL);
        g_autofree char *iasl = g_find_program_in_path("iasl");
        g_autofree char *asl = NULL, *asl_path = NULL, *aml_path = NULL, *out = NULL, *errout = NULL;
        g_autofree gchar *aml = NULL;
        const uint8_t *r = mem + rsdp;
        const char *argv[] = { iasl, "rsdp.asl", NULL };
        GError *error = NULL;
        gsize aml_len;
        int status;

        if (!iasl)
                g_error("iasl not found in PATH: install acpica-tools (this test must not skip)");
        asl = g_strdup_printf("[0008] Signature : \"RSD PTR \"\n"
                              "[0001] Checksum : 00\n"
                              "[0006] Oem ID : \"%.6s\"\n"
                              "[0001] Revision : %02X\n"
                              "[0004] RSDT Address : %08X\n"
                              "[0004] Length : %08X\n"
                              "[0008] XSDT Address : %016" G_GINT64_MODIFIER "X\n"
                              "[0001] Extended Checksum : 00\n"
                              "[0003] Reserved : 000000\n",
                              (const char *) r + 9, r[15], rd32(r + 16), rd32(r + 20), (guint64) rd64(r + 24));
        asl_path = g_build_filename(dir, "rsdp.asl", NULL);
        aml_path = g_build_filename(dir, "rsdp.aml", NULL);
        g_assert_true(g_file_set_contents(asl_path, asl, -1, NULL));
        if (!g_spawn_sync(dir, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &errout, &status, &error))
                g_error("running iasl: %s", error->message);
        if (!g_spawn_check_wait_status(status, NULL))
                g_error("iasl rsdp.asl failed:\n%s\n%s", out, errout);
        g_assert_true(g_file_get_contents(aml_path, &aml, &aml_len, NULL));
        g_assert_cmpmem(aml, aml_len, r, 36);
        unlink(asl_path);
        unlink(aml_path);
        g_assert_cmpint(g_rmdir(dir), ==, 0);
}

static void test_iasl_disassembles_every_table(void) {
        uint64_t rsdp;
        g_autofree uint8_t *mem = build(4, &rsdp);
        g_autofree char *dir = g_dir_make_tmp("polyvm-test-acpi-XXXXXX", NULL);
        struct tables t;
        struct {
                const char *file;
                const struct table *table;
                const char *expect;
        } files[] = {
                { "xsdt.dat", &t.xsdt, "XSDT" },
                { "facp.dat", &t.fadt, "FACP" },
                { "facs.dat", &t.facs, "FACS" },
                { "apic.dat", &t.madt, "APIC" },
                { "dsdt.dat", &t.dsdt, "_S5_" },
        };

        g_assert_nonnull(dir);
        find_tables(mem, rsdp, &t);
        for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
                g_autofree char *path = g_build_filename(dir, files[i].file, NULL);
                g_autofree char *dsl = NULL, *stem = NULL, *dsl_path = NULL;

                g_assert_true(g_file_set_contents(path, (const char *) files[i].table->p, files[i].table->len, NULL));
                dsl = run_iasl(dir, files[i].file);
                if (!strstr(dsl, files[i].expect))
                        g_error("%s: disassembly lacks \"%s\":\n%s", files[i].file, files[i].expect, dsl);
                /* iasl notes bad checksums and lengths in the output. */
                if (strstr(dsl, "Incorrect") || strstr(dsl, "Invalid") || strstr(dsl, "**** "))
                        g_error("%s: iasl complains:\n%s", files[i].file, dsl);
                if (strcmp(files[i].file, "dsdt.dat") == 0) {
                        g_assert_nonnull(strstr(dsl, "Name (_S5, Package (0x04)"));
                        g_assert_nonnull(strstr(dsl, "Device (COM1)"));
                        g_assert_nonnull(strstr(dsl, "EisaId (\"PNP0501\")"));
                        g_assert_nonnull(strstr(dsl, "IRQNoFlags ()"));
                        g_assert_nonnull(strstr(dsl, "0x03F8"));
                        /* The PCI root bridge and its windows (pci-host.c). */
                        g_assert_nonnull(strstr(dsl, "Device (PCI0)"));
                        g_assert_nonnull(strstr(dsl, "EisaId (\"PNP0A03\")"));
                        g_assert_nonnull(strstr(dsl, "Name (_BBN, Zero)"));
                        g_assert_nonnull(strstr(dsl, "Name (_SEG, Zero)"));
                        g_assert_nonnull(strstr(dsl, "WordBusNumber (ResourceProducer"));
                        g_assert_nonnull(strstr(dsl, "0x0CF7"));
                        g_assert_nonnull(strstr(dsl, "0x0D00"));
                        g_assert_nonnull(strstr(dsl, "DWordMemory (ResourceProducer"));
                        g_assert_nonnull(strstr(dsl, "0xFEBFFFFF"));
                }
                if (strcmp(files[i].file, "apic.dat") == 0)
                        g_assert_nonnull(strstr(dsl, "Local Apic ID : 03"));
                unlink(path);
                stem = g_strndup(path, strlen(path) - 4);
                dsl_path = g_strconcat(stem, ".dsl", NULL);
                unlink(dsl_path);
        }
        g_assert_cmpint(g_rmdir(dir), ==, 0);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/acpi/tables-have-right-checksums-and-lengths", test_tables_have_right_checksums_and_lengths);
        g_test_add_func("/acpi/madt-has-one-lapic-per-vcpu", test_madt_has_one_lapic_per_vcpu);
        g_test_add_func("/acpi/fadt-fields", test_fadt_fields);
        g_test_add_func("/acpi/dsdt-has-s5-and-com1", test_dsdt_has_s5_and_com1);
        g_test_add_func("/acpi/bad-arguments-are-refused", test_bad_arguments_are_refused);
        g_test_add_func("/acpi/iasl-disassembles-every-table", test_iasl_disassembles_every_table);
        g_test_add_func("/acpi/iasl-compiles-the-same-rsdp", test_iasl_compiles_the_same_rsdp);
        g_test_add_func("/aml/pkg-length-encoding", test_aml_pkg_length_encoding);
        g_test_add_func("/aml/package-body-grows-its-length", test_aml_package_body_grows_its_length);
        g_test_add_func("/aml/integers-and-names", test_aml_integers_and_names);
        return g_test_run();
}
