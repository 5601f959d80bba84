/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The loader against synthetic bzImages and PVH ELFs (good and hostile),
 * Debian's real kernel, and the e820 map. Guest RAM is an anonymous
 * mapping (MAP_NORESERVE, so a 5 GiB guest costs only what is touched). */

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glob.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootparam.h"
#include "config.h"
#include "layout.h"
#include "loader-x86.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define TEST_RSDP 0xe0000ULL

static char *tmpdir;

/* ---- helpers ---- */

static char *write_file(const char *name, const void *data, size_t len) {
        char *path = g_build_filename(tmpdir, name, NULL);
        GError *error = NULL;

        if (!g_file_set_contents(path, data, (gssize) len, &error))
                g_error("writing %s: %s", path, error->message);
        return path;
}

static uint8_t *guest_mem_new(uint64_t size) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        g_assert_true(p != MAP_FAILED);
        return p;
}

static void guest_mem_free(uint8_t *mem, uint64_t size) {
        munmap(mem, size);
}

static struct vm_config make_config(const char *kernel, const char *initrd, const char *cmdline, uint64_t memory) {
        return (struct vm_config) {
                .vcpus = 1,
                .memory_bytes = memory,
                .kernel = (char *) kernel,
                .initrd = (char *) initrd,
                .cmdline = (char *) cmdline,
        };
}

static void assert_check_fails(const struct vm_config *cfg, const char *expected) {
        char err[512] = "";
        enum kernel_format fmt;
        int r = loader_check(cfg, &fmt, err, sizeof(err));

        if (r >= 0 || !strstr(err, expected))
                g_error("loader_check(%s): expected failure with \"%s\", got %d \"%s\"", cfg->kernel, expected, r, err);
}

static void assert_load_fails(const struct vm_config *cfg, const char *expected) {
        uint8_t *mem = guest_mem_new(cfg->memory_bytes);
        struct boot_entry e;
        char err[512] = "";
        int r = loader_load(cfg, mem, TEST_RSDP, &e, err, sizeof(err));

        if (r >= 0 || !strstr(err, expected))
                g_error("loader_load(%s): expected failure with \"%s\", got %d \"%s\"", cfg->kernel, expected, r, err);
        guest_mem_free(mem, cfg->memory_bytes);
}

static void assert_identity_tables_and_gdt(const uint8_t *mem) {
        const uint64_t *pml4 = (const uint64_t *) (mem + LAYOUT_PML4);
        const uint64_t *pdpt = (const uint64_t *) (mem + LAYOUT_PDPT);
        const uint64_t *pd = (const uint64_t *) (mem + LAYOUT_PD);
        const uint64_t *gdt = (const uint64_t *) (mem + LAYOUT_GDT);

        g_assert_cmphex(pml4[0], ==, LAYOUT_PDPT | 0x3);
        g_assert_cmphex(pml4[1], ==, 0);
        for (int i = 0; i < 4; i++)
                g_assert_cmphex(pdpt[i], ==, (LAYOUT_PD + i * 0x1000) | 0x3);
        g_assert_cmphex(pdpt[4], ==, 0);
        g_assert_cmphex(pd[0], ==, 0x83);
        g_assert_cmphex(pd[1], ==, (2 * MiB) | 0x83);
        g_assert_cmphex(pd[2047], ==, (4 * GiB - 2 * MiB) | 0x83);

        g_assert_cmphex(gdt[0], ==, 0);
        g_assert_cmphex(gdt[BOOT_GDT_CS32 / 8], ==, BOOT_GDT_DESC_CS32);
        g_assert_cmphex(gdt[BOOT_GDT_CS64 / 8], ==, BOOT_GDT_DESC_CS64);
        g_assert_cmphex(gdt[BOOT_GDT_DS / 8], ==, BOOT_GDT_DESC_DS);
        g_assert_cmpint(BOOT_GDT_CS64, ==, 0x10); /* Linux's __BOOT_CS */
        g_assert_cmpint(BOOT_GDT_DS, ==, 0x18);   /* Linux's __BOOT_DS */
}

/* ---- e820 ---- */

static void assert_e820_sane(uint64_t memory) {
        struct e820_entry e[E820_MAX_ENTRIES];
        size_t n = e820_build(memory, e, G_N_ELEMENTS(e));
        uint64_t ram = 0;
        bool acpi = false;

        g_assert_cmpuint(n, >=, 4);
        for (size_t i = 0; i < n; i++) {
                g_assert_cmpuint(e[i].size, >, 0);
                if (i > 0)
                        g_assert_cmphex(e[i].addr, >=, e[i - 1].addr + e[i - 1].size); /* sorted, no overlap */
                if (e[i].type == E820_RAM) {
                        ram += e[i].size;
                        /* No RAM inside the MMIO hole. */
                        g_assert_true(e[i].addr + e[i].size <= LAYOUT_MMIO_HOLE_START || e[i].addr >= LAYOUT_MMIO_HOLE_END);
                }
                if (e[i].type == E820_ACPI && e[i].addr <= LAYOUT_ACPI_START &&
                    e[i].addr + e[i].size >= LAYOUT_ACPI_END)
                        acpi = true;
        }
        g_assert_true(acpi);
        g_assert_cmpuint(ram, ==, memory - (LAYOUT_HIGH_RAM - LAYOUT_EBDA_START));
        g_assert_cmphex(e[0].addr, ==, 0);
        g_assert_cmphex(e[0].size, ==, LAYOUT_EBDA_START);
        g_assert_cmpuint(e[0].type, ==, E820_RAM);
}

static void test_e820_small_memory(void) {
        struct e820_entry e[E820_MAX_ENTRIES];

        assert_e820_sane(16 * MiB);
        g_assert_cmpuint(e820_build(16 * MiB, e, G_N_ELEMENTS(e)), ==, 4);
        g_assert_cmphex(e[3].addr, ==, 1 * MiB);
        g_assert_cmphex(e[3].size, ==, 15 * MiB);
}

static void test_e820_large_memory(void) {
        struct e820_entry e[E820_MAX_ENTRIES];

        assert_e820_sane(2 * GiB);
        assert_e820_sane(3 * GiB);
        g_assert_cmpuint(e820_build(3 * GiB, e, G_N_ELEMENTS(e)), ==, 4); /* exactly up to the hole: nothing above */
}

static void test_e820_memory_above_hole_goes_above_4g(void) {
        struct e820_entry e[E820_MAX_ENTRIES];

        assert_e820_sane(5 * GiB);
        assert_e820_sane(LAYOUT_MAX_MEMORY);
        g_assert_cmpuint(e820_build(5 * GiB, e, G_N_ELEMENTS(e)), ==, 5);
        g_assert_cmphex(e[3].addr + e[3].size, ==, LAYOUT_MMIO_HOLE_START);
        g_assert_cmphex(e[4].addr, ==, 4 * GiB);
        g_assert_cmphex(e[4].size, ==, 2 * GiB);
        g_assert_cmpuint(e[4].type, ==, E820_RAM);
}

static void test_e820_respects_max(void) {
        struct e820_entry e[2];

        g_assert_cmpuint(e820_build(5 * GiB, e, G_N_ELEMENTS(e)), ==, 2);
}

/* ---- synthetic bzImage ---- */

struct bz_opts {
        uint8_t setup_sects;
        uint16_t version;
        uint16_t xloadflags;
        size_t kernel_size;
        uint32_t init_size;
        uint32_t initrd_addr_max;
        uint32_t cmdline_size;
        uint64_t pref_address;
        bool not_relocatable;
        int syssize_delta;
        size_t truncate; /* bytes cut off the end */
};

static const struct bz_opts bz_default = {
        .setup_sects = 1,
        .version = 0x020f,
        .xloadflags = BZ_XLF_KERNEL_64,
        .kernel_size = 64 * 1024 + 5,
        .init_size = 4 * MiB,
        .initrd_addr_max = 0x7fffffff,
        .cmdline_size = 2047,
        .pref_address = 0x1000000, /* Linux's LOAD_PHYSICAL_ADDR */
};

static uint8_t kernel_byte(size_t i) {
        return (uint8_t) (i * 7 + 3);
}

static char *make_bzimage(const char *name, const struct bz_opts *o, size_t *ret_setup_size) {
        size_t setup_size = ((o->setup_sects ? o->setup_sects : 4) + 1) * 512;
        size_t len = setup_size + o->kernel_size;
        g_autofree uint8_t *buf = g_malloc0(len);
        struct boot_params *bp = (struct boot_params *) buf;
        char *path;

        g_assert_cmpuint(len, >=, sizeof(struct boot_params) / 4);
        buf[0x1ef] = 0xff; /* before the header: must not reach boot_params */
        buf[0x200] = 0xeb;
        buf[0x201] = 0x6a; /* header ends at 0x202 + 0x6a = 0x26c */
        bp->hdr.setup_sects = o->setup_sects;
        bp->hdr.syssize = (uint32_t) ((o->kernel_size + 15) / 16 + o->syssize_delta);
        bp->hdr.boot_flag = BZ_BOOT_FLAG;
        bp->hdr.header = BZ_HEADER_MAGIC;
        bp->hdr.version = o->version;
        bp->hdr.vid_mode = 0xffff;
        bp->hdr.loadflags = BZ_LOADED_HIGH;
        bp->hdr.initrd_addr_max = o->initrd_addr_max;
        bp->hdr.kernel_alignment = 0x200000;
        bp->hdr.relocatable_kernel = !o->not_relocatable;
        bp->hdr.xloadflags = o->xloadflags;
        bp->hdr.cmdline_size = o->cmdline_size;
        bp->hdr.pref_address = o->pref_address;
        bp->hdr.init_size = o->init_size;
        for (size_t i = 0; i < o->kernel_size; i++)
                buf[setup_size + i] = kernel_byte(i);

        path = write_file(name, buf, len - o->truncate);
        if (ret_setup_size)
                *ret_setup_size = setup_size;
        return path;
}

static char *make_initrd(const char *name, size_t size) {
        g_autofree uint8_t *buf = g_malloc(size);

        for (size_t i = 0; i < size; i++)
                buf[i] = (uint8_t) (i ^ 0x5a);
        return write_file(name, buf, size);
}

static void test_bzimage_boot_params_are_set(void) {
        g_autofree char *kernel = make_bzimage("bz-good", &bz_default, NULL);
        g_autofree char *initrd = make_initrd("initrd-small", 3 * 4096 + 17);
        const uint64_t memory = 256 * MiB;
        struct vm_config cfg = make_config(kernel, initrd, "console=ttyS0 root=/dev/vda", memory);
        uint8_t *mem = guest_mem_new(memory);
        const struct boot_params *bp = (const struct boot_params *) (mem + LAYOUT_ZERO_PAGE);
        struct e820_entry e[E820_MAX_ENTRIES];
        size_t n = e820_build(memory, e, G_N_ELEMENTS(e));
        enum kernel_format fmt;
        struct boot_entry entry;
        char err[512] = "";

        g_assert_cmpint(loader_check(&cfg, &fmt, err, sizeof(err)), ==, 0);
        g_assert_cmpint(fmt, ==, KERNEL_BZIMAGE);
        memset(mem + LAYOUT_ZERO_PAGE, 0xcc, 4096); /* the loader must zero it */
        g_assert_cmpint(loader_load(&cfg, mem, TEST_RSDP, &entry, err, sizeof(err)), ==, 0);

        g_assert_cmpint(entry.format, ==, KERNEL_BZIMAGE);
        g_assert_cmphex(entry.rip, ==, LAYOUT_KERNEL_BZIMAGE + 0x200);
        g_assert_cmphex(entry.boot_info, ==, LAYOUT_ZERO_PAGE);

        /* The image's own header, then the loader's fields. */
        g_assert_cmphex(bp->hdr.boot_flag, ==, BZ_BOOT_FLAG);
        g_assert_cmphex(bp->hdr.header, ==, BZ_HEADER_MAGIC);
        g_assert_cmphex(bp->hdr.version, ==, 0x020f);
        g_assert_cmphex(bp->hdr.init_size, ==, 4 * MiB);
        g_assert_cmphex(bp->hdr.type_of_loader, ==, 0xff);
        g_assert_cmphex(bp->hdr.loadflags & BZ_LOADED_HIGH, ==, BZ_LOADED_HIGH);
        g_assert_cmphex(bp->sentinel, ==, 0);
        g_assert_cmphex(bp->_pad0[0], ==, 0);
        g_assert_cmphex(bp->hdr.cmd_line_ptr, ==, LAYOUT_CMDLINE);
        g_assert_cmpstr((const char *) mem + LAYOUT_CMDLINE, ==, "console=ttyS0 root=/dev/vda");
        g_assert_cmphex(bp->acpi_rsdp_addr, ==, TEST_RSDP);

        /* initrd: top of low RAM, page aligned, above the kernel, contents intact. */
        g_assert_cmpuint(bp->hdr.ramdisk_size, ==, 3 * 4096 + 17);
        g_assert_cmphex(bp->hdr.ramdisk_image % 4096, ==, 0);
        g_assert_cmphex(bp->hdr.ramdisk_image + bp->hdr.ramdisk_size, <=, memory);
        g_assert_cmphex(bp->hdr.ramdisk_image, >, memory - 5 * 4096);
        g_assert_cmphex(bp->hdr.ramdisk_image, >=, LAYOUT_KERNEL_BZIMAGE + 4 * MiB);
        g_assert_cmphex(bp->ext_ramdisk_image, ==, 0);
        for (size_t i = 0; i < bp->hdr.ramdisk_size; i++)
                g_assert_cmphex(mem[bp->hdr.ramdisk_image + i], ==, (uint8_t) (i ^ 0x5a));

        /* e820 */
        g_assert_cmpuint(bp->e820_entries, ==, n);
        for (size_t i = 0; i < n; i++) {
                g_assert_cmphex(bp->e820_table[i].addr, ==, e[i].addr);
                g_assert_cmphex(bp->e820_table[i].size, ==, e[i].size);
                g_assert_cmpuint(bp->e820_table[i].type, ==, e[i].type);
        }

        /* The protected-mode part at 1 MiB. */
        for (size_t i = 0; i < bz_default.kernel_size; i++)
                if (mem[LAYOUT_KERNEL_BZIMAGE + i] != kernel_byte(i))
                        g_error("kernel byte %zu differs", i);

        assert_identity_tables_and_gdt(mem);
        guest_mem_free(mem, memory);
}

static void test_bzimage_setup_sects_zero_means_four(void) {
        struct bz_opts o = bz_default;
        g_autofree char *kernel = NULL;
        size_t setup_size;
        const uint64_t memory = 64 * MiB;
        uint8_t *mem = guest_mem_new(memory);
        struct vm_config cfg;
        struct boot_entry entry;
        char err[512] = "";

        o.setup_sects = 0;
        kernel = make_bzimage("bz-sects0", &o, &setup_size);
        g_assert_cmpuint(setup_size, ==, 5 * 512);
        cfg = make_config(kernel, NULL, NULL, memory);
        g_assert_cmpint(loader_load(&cfg, mem, TEST_RSDP, &entry, err, sizeof(err)), ==, 0);
        g_assert_cmphex(mem[LAYOUT_KERNEL_BZIMAGE], ==, kernel_byte(0));
        g_assert_cmphex(mem[LAYOUT_KERNEL_BZIMAGE + 100], ==, kernel_byte(100));
        /* No initrd, no command line: empty string and zero ramdisk. */
        g_assert_cmpuint(((struct boot_params *) (mem + LAYOUT_ZERO_PAGE))->hdr.ramdisk_size, ==, 0);
        g_assert_cmpuint(((struct boot_params *) (mem + LAYOUT_ZERO_PAGE))->hdr.ramdisk_image, ==, 0);
        g_assert_cmpstr((const char *) mem + LAYOUT_CMDLINE, ==, "");
        guest_mem_free(mem, memory);
}

static void test_bzimage_old_protocol_gets_no_rsdp_field(void) {
        struct bz_opts o = bz_default;
        g_autofree char *kernel = NULL;
        const uint64_t memory = 64 * MiB;
        uint8_t *mem = guest_mem_new(memory);
        struct vm_config cfg;
        struct boot_entry entry;
        char err[512] = "";

        o.version = 0x020c;
        kernel = make_bzimage("bz-212", &o, NULL);
        cfg = make_config(kernel, NULL, "x", memory);
        g_assert_cmpint(loader_load(&cfg, mem, TEST_RSDP, &entry, err, sizeof(err)), ==, 0);
        g_assert_cmphex(((struct boot_params *) (mem + LAYOUT_ZERO_PAGE))->acpi_rsdp_addr, ==, 0);
        guest_mem_free(mem, memory);
}

static void test_bzimage_bad_headers_are_rejected(void) {
        struct bz_opts o;
        struct vm_config cfg;
        g_autofree char *k1 = NULL, *k2 = NULL, *k3 = NULL, *k4 = NULL, *k5 = NULL;

        o = bz_default;
        o.version = 0x020b;
        k1 = make_bzimage("bz-211", &o, NULL);
        cfg = make_config(k1, NULL, NULL, 64 * MiB);
        assert_check_fails(&cfg, "boot protocol 2.11 is older than the required 2.12");
        assert_load_fails(&cfg, "older than the required 2.12");

        o = bz_default;
        o.xloadflags = 0;
        k2 = make_bzimage("bz-32", &o, NULL);
        cfg = make_config(k2, NULL, NULL, 64 * MiB);
        assert_check_fails(&cfg, "no 64-bit entry point");

        o = bz_default;
        o.truncate = 4096;
        k3 = make_bzimage("bz-truncated", &o, NULL);
        cfg = make_config(k3, NULL, NULL, 64 * MiB);
        assert_check_fails(&cfg, "bzImage is truncated");
        assert_load_fails(&cfg, "bzImage is truncated");

        o = bz_default;
        o.syssize_delta = 1000000; /* a header claiming far more than the file holds */
        k4 = make_bzimage("bz-syssize", &o, NULL);
        cfg = make_config(k4, NULL, NULL, 64 * MiB);
        assert_check_fails(&cfg, "bzImage is truncated");

        o = bz_default;
        o.init_size = 0xffffffff; /* needs 4 GiB to decompress */
        k5 = make_bzimage("bz-initsize", &o, NULL);
        cfg = make_config(k5, NULL, NULL, 64 * MiB);
        assert_check_fails(&cfg, "the kernel needs 4111 MiB at 1 MiB (it runs at 0x1000000)");
        assert_load_fails(&cfg, "the kernel needs");
}

static void test_bzimage_cmdline_over_kernel_limit_is_rejected(void) {
        g_autofree char *kernel = make_bzimage("bz-cmdline", &bz_default, NULL);
        g_autofree char *line = g_strnfill(2048, 'x');
        struct vm_config cfg = make_config(kernel, NULL, line, 64 * MiB);
        char err[512] = "";

        assert_check_fails(&cfg, "config.cmdline: 2048 bytes is longer than the kernel's limit of 2047 bytes");
        line[2047] = '\0';
        g_assert_cmpint(loader_check(&cfg, NULL, err, sizeof(err)), ==, 0);
}

static void test_initrd_too_large_is_rejected(void) {
        g_autofree char *kernel = make_bzimage("bz-for-initrd", &bz_default, NULL);
        g_autofree char *initrd = make_initrd("initrd-12m", 12 * MiB);
        struct vm_config cfg = make_config(kernel, initrd, NULL, 28 * MiB);
        char err[512] = "";

        /* 28 MiB guest: the kernel decompresses at 16 MiB into 4 MiB, 8 MiB remain. */
        assert_check_fails(&cfg, "config.initrd: ");
        assert_check_fails(&cfg, "too large for memory");
        assert_load_fails(&cfg, "too large for memory");
        cfg.memory_bytes = 32 * MiB;
        g_assert_cmpint(loader_check(&cfg, NULL, err, sizeof(err)), ==, 0);
}

/* boot.rst, init_size: the buffer starts at the runtime address, which for
 * a relocatable kernel is the load address raised to pref_address and
 * aligned to kernel_alignment, and for any other kernel pref_address. */
static void test_init_size_counts_from_the_runtime_address(void) {
        struct bz_opts o = bz_default;
        g_autofree char *reloc = make_bzimage("bz-runtime-reloc", &bz_default, NULL);
        g_autofree char *fixed = NULL, *odd = NULL;
        g_autofree char *initrd = make_initrd("initrd-3m", 3 * MiB);
        const uint64_t memory = 24 * MiB;
        uint8_t *mem = guest_mem_new(memory);
        const struct boot_params *bp = (const struct boot_params *) (mem + LAYOUT_ZERO_PAGE);
        struct vm_config cfg;
        struct boot_entry entry;
        char err[512] = "";

        /* Relocatable, pref_address 16 MiB: the initrd stays above 16 + 4 MiB. */
        cfg = make_config(reloc, initrd, NULL, memory);
        g_assert_cmpint(loader_load(&cfg, mem, TEST_RSDP, &entry, err, sizeof(err)), ==, 0);
        g_assert_cmphex(bp->hdr.ramdisk_image, >=, 16 * MiB + 4 * MiB);
        g_assert_cmphex(bp->hdr.ramdisk_image + bp->hdr.ramdisk_size, <=, memory);
        cfg.memory_bytes = 22 * MiB; /* 2 MiB left above the buffer */
        assert_check_fails(&cfg, "config.initrd: ");
        cfg = make_config(reloc, NULL, NULL, 19 * MiB);
        assert_check_fails(&cfg, "the kernel needs 19 MiB at 1 MiB (it runs at 0x1000000)");

        /* A pref_address off the alignment is rounded up: 17 MiB -> 18 MiB. */
        o.pref_address = 17 * MiB;
        odd = make_bzimage("bz-runtime-odd", &o, NULL);
        cfg = make_config(odd, NULL, NULL, 21 * MiB);
        assert_check_fails(&cfg, "(it runs at 0x1200000)");
        cfg.memory_bytes = 22 * MiB;
        g_assert_cmpint(loader_check(&cfg, NULL, err, sizeof(err)), ==, 0);

        /* Not relocatable, pref_address 1 MiB (polyvm-testguest): runs where it is loaded. */
        o = bz_default;
        o.not_relocatable = true;
        o.pref_address = LAYOUT_KERNEL_BZIMAGE;
        fixed = make_bzimage("bz-runtime-fixed", &o, NULL);
        cfg = make_config(fixed, initrd, NULL, 16 * MiB);
        memset(mem, 0, memory);
        g_assert_cmpint(loader_load(&cfg, mem, TEST_RSDP, &entry, err, sizeof(err)), ==, 0);
        g_assert_cmphex(bp->hdr.ramdisk_image, >=, LAYOUT_KERNEL_BZIMAGE + 4 * MiB);
        g_assert_cmphex(bp->hdr.ramdisk_image + bp->hdr.ramdisk_size, <=, 16 * MiB);
        guest_mem_free(mem, memory);
}

static void test_bzimage_cmdline_limit_is_capped_by_the_cmdline_area(void) {
        struct bz_opts o = bz_default;
        g_autofree char *kernel = NULL;
        g_autofree char *line = g_strnfill(LAYOUT_CMDLINE_MAX, 'x');
        struct vm_config cfg;

        o.cmdline_size = 0xffffffff; /* a header claiming any length is fine */
        kernel = make_bzimage("bz-cmdline-huge", &o, NULL);
        cfg = make_config(kernel, NULL, line, 64 * MiB);
        assert_check_fails(&cfg, "is longer than the kernel's limit of 65535 bytes");
}

static void test_initrd_respects_initrd_addr_max(void) {
        struct bz_opts o = bz_default;
        g_autofree char *kernel = NULL;
        g_autofree char *initrd = make_initrd("initrd-max", 8192);
        const uint64_t memory = 256 * MiB;
        uint8_t *mem = guest_mem_new(memory);
        const struct boot_params *bp = (const struct boot_params *) (mem + LAYOUT_ZERO_PAGE);
        struct vm_config cfg;
        struct boot_entry entry;
        char err[512] = "";

        o.initrd_addr_max = 64 * MiB - 1;
        kernel = make_bzimage("bz-addrmax", &o, NULL);
        cfg = make_config(kernel, initrd, NULL, memory);
        g_assert_cmpint(loader_load(&cfg, mem, TEST_RSDP, &entry, err, sizeof(err)), ==, 0);
        g_assert_cmphex(bp->hdr.ramdisk_image, ==, 64 * MiB - 8192);
        guest_mem_free(mem, memory);
}

static void test_bzimage_in_memory_above_4g(void) {
        g_autofree char *kernel = make_bzimage("bz-5g", &bz_default, NULL);
        g_autofree char *initrd = make_initrd("initrd-5g", 10000);
        const uint64_t memory = 5 * GiB;
        uint8_t *mem = guest_mem_new(memory);
        const struct boot_params *bp = (const struct boot_params *) (mem + LAYOUT_ZERO_PAGE);
        struct vm_config cfg = make_config(kernel, initrd, "quiet", memory);
        struct boot_entry entry;
        char err[512] = "";

        g_assert_cmpint(loader_load(&cfg, mem, TEST_RSDP, &entry, err, sizeof(err)), ==, 0);
        /* Below the hole and below initrd_addr_max (2 GiB - 1). */
        g_assert_cmphex(bp->hdr.ramdisk_image + bp->hdr.ramdisk_size - 1, <=, 0x7fffffff);
        g_assert_cmphex(bp->hdr.ramdisk_image, >=, 0x7fffffff - 3 * 4096);
        g_assert_cmpuint(bp->e820_entries, ==, 5);
        g_assert_cmphex(bp->e820_table[4].addr, ==, 4 * GiB);
        g_assert_cmphex(bp->e820_table[4].size, ==, 2 * GiB);
        guest_mem_free(mem, memory);
}

/* ---- files that are not kernels ---- */

static void test_missing_or_odd_files_are_rejected(void) {
        g_autofree char *missing = g_build_filename(tmpdir, "does-not-exist", NULL);
        g_autofree char *fifo = g_build_filename(tmpdir, "fifo", NULL);
        g_autofree char *empty = write_file("empty", "", 0);
        g_autofree char *garbage = NULL, *kernel = make_bzimage("bz-ok", &bz_default, NULL);
        g_autofree uint8_t *junk = g_malloc0(8192);
        struct vm_config cfg;

        memcpy(junk, "MZ", 2);
        garbage = write_file("garbage", junk, 8192);

        cfg = make_config(missing, NULL, NULL, 64 * MiB);
        assert_check_fails(&cfg, "config.kernel: ");
        assert_check_fails(&cfg, "No such file or directory");

        cfg = make_config(tmpdir, NULL, NULL, 64 * MiB);
        assert_check_fails(&cfg, "is a directory, not a regular file");

        g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
        cfg = make_config(fifo, NULL, NULL, 64 * MiB);
        assert_check_fails(&cfg, "is not a regular file");

        cfg = make_config(empty, NULL, NULL, 64 * MiB);
        assert_check_fails(&cfg, "is empty");

        cfg = make_config(garbage, NULL, NULL, 64 * MiB);
        assert_check_fails(&cfg, "is neither a bzImage nor a PVH ELF");
        assert_load_fails(&cfg, "is neither a bzImage nor a PVH ELF");

        cfg = make_config(kernel, missing, NULL, 64 * MiB);
        assert_check_fails(&cfg, "config.initrd: ");
        cfg = make_config(kernel, tmpdir, NULL, 64 * MiB);
        assert_check_fails(&cfg, "config.initrd: ");
        assert_check_fails(&cfg, "is a directory");
}

/* ---- Debian's kernel ---- */

static void test_debian_kernel_is_accepted_and_loaded(void) {
        glob_t g = {};
        const char *kernel;
        g_autofree char *initrd = NULL;
        const uint64_t memory = 512 * MiB;
        uint8_t *mem;
        const struct boot_params *bp;
        struct vm_config cfg;
        struct boot_entry entry;
        enum kernel_format fmt;
        char err[512] = "";
        g_autofree gchar *file = NULL;
        gsize file_len;
        size_t setup_size;

        if (glob("/boot/vmlinuz-*", 0, NULL, &g) != 0 || g.gl_pathc == 0)
                g_error("no /boot/vmlinuz-* on this machine: install linux-image-cloud-amd64 (this test must not skip)");
        kernel = g.gl_pathv[g.gl_pathc - 1];
        initrd = g_strdup_printf("/boot/initrd.img-%s", kernel + strlen("/boot/vmlinuz-"));
        if (access(initrd, R_OK) < 0)
                g_clear_pointer(&initrd, g_free);

        cfg = make_config(kernel, initrd, "console=ttyS0 earlyprintk=serial", memory);
        g_assert_cmpint(loader_check(&cfg, &fmt, err, sizeof(err)), ==, 0);
        g_assert_cmpint(fmt, ==, KERNEL_BZIMAGE);

        mem = guest_mem_new(memory);
        bp = (const struct boot_params *) (mem + LAYOUT_ZERO_PAGE);
        if (loader_load(&cfg, mem, TEST_RSDP, &entry, err, sizeof(err)) < 0)
                g_error("loading %s: %s", kernel, err);
        g_assert_cmphex(entry.rip, ==, 0x100200);
        g_assert_cmphex(bp->hdr.version, >=, 0x020f);
        g_assert_cmphex(bp->acpi_rsdp_addr, ==, TEST_RSDP);
        g_assert_cmphex(bp->hdr.type_of_loader, ==, 0xff);
        g_assert_cmpuint(bp->hdr.cmdline_size, >=, 2047);
        g_assert_cmphex(bp->hdr.xloadflags & BZ_XLF_KERNEL_64, !=, 0);
        if (initrd) {
                g_assert_cmpuint(bp->hdr.ramdisk_size, >, 0);
                /* Above the decompression buffer at pref_address (16 MiB). */
                g_assert_cmphex(bp->hdr.ramdisk_image, >=, bp->hdr.pref_address + bp->hdr.init_size);
                g_assert_cmphex(bp->hdr.ramdisk_image + bp->hdr.ramdisk_size, <=, memory);
        }

        /* What sits at 1 MiB is the file after its setup sectors. */
        g_assert_true(g_file_get_contents(kernel, &file, &file_len, NULL));
        setup_size = ((file[0x1f1] ? (uint8_t) file[0x1f1] : 4) + 1) * 512;
        g_assert_cmpmem(mem + LAYOUT_KERNEL_BZIMAGE, file_len - setup_size, file + setup_size, file_len - setup_size);

        guest_mem_free(mem, memory);
        globfree(&g);
}

/* ---- synthetic PVH ELF ---- */

#define PVH_PADDR (16 * MiB)
#define PVH_FILESZ 0x3000
#define PVH_MEMSZ 0x5000
#define PVH_ENTRY (PVH_PADDR + 0x40)
#define PVH_DATA_OFF 0x1000
#define PVH_NOTE_OFF (sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr))

struct pvh_image {
        uint8_t buf[PVH_DATA_OFF + PVH_FILESZ];
        Elf64_Ehdr *eh;
        Elf64_Phdr *note, *load;
        Elf64_Nhdr *xen_note;
        size_t len;
};

/* ELF header, PT_NOTE (a GNU note, then the Xen PHYS32_ENTRY note), PT_LOAD. */
static void pvh_image_init(struct pvh_image *p) {
        uint8_t *n;
        uint64_t entry = PVH_ENTRY;

        memset(p, 0, sizeof(*p));
        p->len = sizeof(p->buf);
        p->eh = (Elf64_Ehdr *) p->buf;
        memcpy(p->eh->e_ident, ELFMAG, SELFMAG);
        p->eh->e_ident[EI_CLASS] = ELFCLASS64;
        p->eh->e_ident[EI_DATA] = ELFDATA2LSB;
        p->eh->e_ident[EI_VERSION] = EV_CURRENT;
        p->eh->e_type = ET_EXEC;
        p->eh->e_machine = EM_X86_64;
        p->eh->e_version = EV_CURRENT;
        p->eh->e_entry = 0xffffffff81000000ULL;
        p->eh->e_phoff = sizeof(Elf64_Ehdr);
        p->eh->e_ehsize = sizeof(Elf64_Ehdr);
        p->eh->e_phentsize = sizeof(Elf64_Phdr);
        p->eh->e_phnum = 2;

        n = p->buf + PVH_NOTE_OFF;
        *(Elf64_Nhdr *) n = (Elf64_Nhdr) { .n_namesz = 4, .n_descsz = 4, .n_type = 3 };
        memcpy(n + 12, "GNU", 4);
        n += 20;
        p->xen_note = (Elf64_Nhdr *) n;
        *p->xen_note = (Elf64_Nhdr) { .n_namesz = 4, .n_descsz = 8, .n_type = XEN_ELFNOTE_PHYS32_ENTRY };
        memcpy(n + 12, "Xen", 4);
        memcpy(n + 16, &entry, 8);

        p->note = (Elf64_Phdr *) (p->buf + sizeof(Elf64_Ehdr));
        *p->note = (Elf64_Phdr) { .p_type = PT_NOTE, .p_offset = PVH_NOTE_OFF, .p_filesz = 20 + 24, .p_align = 4 };
        p->load = p->note + 1;
        *p->load = (Elf64_Phdr) {
                .p_type = PT_LOAD,
                .p_flags = PF_R | PF_X,
                .p_offset = PVH_DATA_OFF,
                .p_vaddr = 0xffffffff81000000ULL,
                .p_paddr = PVH_PADDR,
                .p_filesz = PVH_FILESZ,
                .p_memsz = PVH_MEMSZ,
                .p_align = 0x200000,
        };
        for (size_t i = 0; i < PVH_FILESZ; i++)
                p->buf[PVH_DATA_OFF + i] = kernel_byte(i);
}

static void test_pvh_elf_is_loaded_with_start_info(void) {
        struct pvh_image p;
        g_autofree char *kernel = NULL;
        g_autofree char *initrd = make_initrd("initrd-pvh", 5000);
        const uint64_t memory = 128 * MiB;
        uint8_t *mem = guest_mem_new(memory);
        const struct hvm_start_info *si = (const struct hvm_start_info *) (mem + LAYOUT_PVH_START_INFO);
        const struct hvm_memmap_table_entry *mm;
        const struct hvm_modlist_entry *mod;
        struct e820_entry e[E820_MAX_ENTRIES];
        size_t n = e820_build(memory, e, G_N_ELEMENTS(e));
        struct vm_config cfg;
        struct boot_entry entry;
        enum kernel_format fmt;
        char err[512] = "";

        pvh_image_init(&p);
        kernel = write_file("pvh-good", p.buf, p.len);
        cfg = make_config(kernel, initrd, "console=hvc0", memory);
        g_assert_cmpint(loader_check(&cfg, &fmt, err, sizeof(err)), ==, 0);
        g_assert_cmpint(fmt, ==, KERNEL_PVH_ELF);

        memset(mem + PVH_PADDR, 0xaa, PVH_MEMSZ + 0x1000); /* bss must be zeroed, nothing past it touched */
        g_assert_cmpint(loader_load(&cfg, mem, TEST_RSDP, &entry, err, sizeof(err)), ==, 0);
        g_assert_cmpint(entry.format, ==, KERNEL_PVH_ELF);
        g_assert_cmphex(entry.rip, ==, PVH_ENTRY);
        g_assert_cmphex(entry.boot_info, ==, LAYOUT_PVH_START_INFO);

        for (size_t i = 0; i < PVH_FILESZ; i++)
                g_assert_cmphex(mem[PVH_PADDR + i], ==, kernel_byte(i));
        for (size_t i = PVH_FILESZ; i < PVH_MEMSZ; i++)
                g_assert_cmphex(mem[PVH_PADDR + i], ==, 0);
        g_assert_cmphex(mem[PVH_PADDR + PVH_MEMSZ], ==, 0xaa);

        g_assert_cmphex(si->magic, ==, 0x336ec578);
        g_assert_cmpuint(si->version, ==, 1);
        g_assert_cmphex(si->cmdline_paddr, ==, LAYOUT_CMDLINE);
        g_assert_cmpstr((const char *) mem + si->cmdline_paddr, ==, "console=hvc0");
        g_assert_cmphex(si->rsdp_paddr, ==, TEST_RSDP);
        g_assert_cmpuint(si->memmap_entries, ==, n);
        g_assert_cmphex(si->memmap_paddr, >, LAYOUT_PVH_START_INFO);
        g_assert_cmphex(si->memmap_paddr + n * sizeof(*mm), <=, LAYOUT_ZERO_PAGE);
        mm = (const struct hvm_memmap_table_entry *) (mem + si->memmap_paddr);
        for (size_t i = 0; i < n; i++) {
                g_assert_cmphex(mm[i].addr, ==, e[i].addr);
                g_assert_cmphex(mm[i].size, ==, e[i].size);
                g_assert_cmpuint(mm[i].type, ==, e[i].type);
        }
        g_assert_cmpuint(si->nr_modules, ==, 1);
        mod = (const struct hvm_modlist_entry *) (mem + si->modlist_paddr);
        g_assert_cmpuint(mod->size, ==, 5000);
        g_assert_cmphex(mod->paddr % 4096, ==, 0);
        g_assert_cmphex(mod->paddr, >=, PVH_PADDR + PVH_MEMSZ);
        g_assert_cmphex(mod->paddr + mod->size, <=, memory);
        g_assert_cmphex(mem[mod->paddr + 1], ==, 1 ^ 0x5a);

        assert_identity_tables_and_gdt(mem);
        guest_mem_free(mem, memory);
}

static void test_pvh_with_4_byte_entry_note_and_no_initrd(void) {
        struct pvh_image p;
        g_autofree char *kernel = NULL;
        const uint64_t memory = 64 * MiB;
        uint8_t *mem = guest_mem_new(memory);
        struct vm_config cfg;
        struct boot_entry entry;
        char err[512] = "";
        uint32_t entry32 = PVH_ENTRY + 4;

        pvh_image_init(&p);
        p.xen_note->n_descsz = 4;
        memcpy((uint8_t *) p.xen_note + 16, &entry32, 4);
        p.note->p_filesz = 20 + 20;
        kernel = write_file("pvh-desc4", p.buf, p.len);
        cfg = make_config(kernel, NULL, NULL, memory);
        g_assert_cmpint(loader_load(&cfg, mem, TEST_RSDP, &entry, err, sizeof(err)), ==, 0);
        g_assert_cmphex(entry.rip, ==, PVH_ENTRY + 4);
        g_assert_cmpuint(((struct hvm_start_info *) (mem + LAYOUT_PVH_START_INFO))->nr_modules, ==, 0);
        guest_mem_free(mem, memory);
}

static void assert_hostile_pvh(const char *name, const struct pvh_image *p, uint64_t memory, const char *expected) {
        g_autofree char *kernel = write_file(name, p->buf, p->len);
        struct vm_config cfg = make_config(kernel, NULL, NULL, memory);

        assert_check_fails(&cfg, expected);
        assert_load_fails(&cfg, expected);
}

static void test_hostile_pvh_elfs_are_rejected(void) {
        struct pvh_image p;

        pvh_image_init(&p);
        p.len = 100; /* cut inside the program headers */
        assert_hostile_pvh("pvh-trunc-ph", &p, 64 * MiB, "program headers at 0x40 run past the end of the file");

        pvh_image_init(&p);
        p.len = 40; /* shorter than the ELF header */
        assert_hostile_pvh("pvh-trunc-eh", &p, 64 * MiB, "shorter than an ELF64 header");

        pvh_image_init(&p);
        p.len = PVH_DATA_OFF + 16; /* the PT_LOAD's data is cut off */
        assert_hostile_pvh("pvh-trunc-load", &p, 64 * MiB, "segment 1 (offset 0x1000, 12288 bytes) runs past the end of the file");

        pvh_image_init(&p);
        p.load->p_offset = UINT64_MAX - 10; /* offset + size overflows */
        assert_hostile_pvh("pvh-load-offset", &p, 64 * MiB, "runs past the end of the file");

        pvh_image_init(&p);
        p.load->p_paddr = 64 * MiB - 0x1000; /* memsz runs past the end of a 64 MiB guest */
        assert_hostile_pvh("pvh-paddr-end", &p, 64 * MiB, "PT_LOAD 1 at 0x3fff000..0x4004000 is outside guest RAM");

        pvh_image_init(&p);
        p.load->p_paddr = 8 * GiB;
        assert_hostile_pvh("pvh-paddr-beyond", &p, 64 * MiB, "is outside guest RAM");

        pvh_image_init(&p);
        p.load->p_paddr = UINT64_MAX - 0x1000; /* paddr + memsz wraps */
        assert_hostile_pvh("pvh-paddr-wrap", &p, 64 * MiB, "is outside guest RAM");

        pvh_image_init(&p);
        p.load->p_paddr = 0x7000; /* would overwrite the zero page and page tables */
        assert_hostile_pvh("pvh-paddr-low", &p, 64 * MiB, "is outside guest RAM 0x100000..");

        pvh_image_init(&p);
        p.load->p_paddr = 3 * GiB - 0x1000; /* runs into the MMIO hole of a 5 GiB guest */
        assert_hostile_pvh("pvh-paddr-hole", &p, 5 * GiB, "is outside guest RAM");

        pvh_image_init(&p);
        p.load->p_memsz = PVH_FILESZ - 1;
        assert_hostile_pvh("pvh-filesz", &p, 64 * MiB, "p_filesz 12288 > p_memsz 12287");

        pvh_image_init(&p);
        p.xen_note->n_descsz = 0x7fffffff; /* the note's sizes lie */
        assert_hostile_pvh("pvh-note-descsz", &p, 64 * MiB, "a note in PT_NOTE 0 has sizes that run past the segment");

        pvh_image_init(&p);
        p.xen_note->n_namesz = 0xffffffff;
        assert_hostile_pvh("pvh-note-namesz", &p, 64 * MiB, "has sizes that run past the segment");

        pvh_image_init(&p);
        p.xen_note->n_descsz = 2;
        assert_hostile_pvh("pvh-note-desc2", &p, 64 * MiB, "has sizes that run past the segment");

        pvh_image_init(&p);
        p.note->p_filesz = 0x7fffffffffffffffULL; /* PT_NOTE larger than the file */
        assert_hostile_pvh("pvh-note-filesz", &p, 64 * MiB, "segment 0 ");

        pvh_image_init(&p);
        p.eh->e_phnum = 0xffff;
        assert_hostile_pvh("pvh-phnum", &p, 64 * MiB, "e_phnum 65535 is out of range 1..64");

        pvh_image_init(&p);
        p.eh->e_phnum = 0;
        assert_hostile_pvh("pvh-phnum0", &p, 64 * MiB, "e_phnum 0 is out of range");

        pvh_image_init(&p);
        p.eh->e_phoff = UINT64_MAX - 8;
        assert_hostile_pvh("pvh-phoff", &p, 64 * MiB, "program headers at 0xfffffffffffffff7 run past the end");

        pvh_image_init(&p);
        p.eh->e_phentsize = 32;
        assert_hostile_pvh("pvh-phentsize", &p, 64 * MiB, "e_phentsize 32 is not 56");

        pvh_image_init(&p);
        p.eh->e_ident[EI_CLASS] = ELFCLASS32;
        assert_hostile_pvh("pvh-elf32", &p, 64 * MiB, "not ELFCLASS64");

        pvh_image_init(&p);
        p.eh->e_machine = EM_AARCH64;
        assert_hostile_pvh("pvh-aarch64", &p, 64 * MiB, "machine 183 is not x86-64");

        pvh_image_init(&p);
        p.eh->e_machine = EM_386;
        assert_hostile_pvh("pvh-i386", &p, 64 * MiB, "machine 3 is not x86-64");

        pvh_image_init(&p);
        p.eh->e_ident[EI_DATA] = ELFDATA2MSB;
        assert_hostile_pvh("pvh-be", &p, 64 * MiB, "not little-endian");

        pvh_image_init(&p);
        p.eh->e_type = ET_DYN;
        assert_hostile_pvh("pvh-dyn", &p, 64 * MiB, "type 3 is not ET_EXEC");

        pvh_image_init(&p);
        p.xen_note->n_type = 17; /* some other Xen note: no entry */
        assert_hostile_pvh("pvh-nonote", &p, 64 * MiB, "no Xen PHYS32_ENTRY note");

        pvh_image_init(&p);
        memcpy((uint8_t *) p.xen_note + 12, "Xyz", 4);
        assert_hostile_pvh("pvh-notename", &p, 64 * MiB, "no Xen PHYS32_ENTRY note");

        pvh_image_init(&p);
        {
                uint64_t bad = PVH_PADDR + PVH_MEMSZ + 0x100;
                memcpy((uint8_t *) p.xen_note + 16, &bad, 8);
        }
        assert_hostile_pvh("pvh-entry-out", &p, 64 * MiB, "PVH entry 0x1005100 is not inside any PT_LOAD");

        pvh_image_init(&p);
        p.load->p_type = PT_NULL;
        assert_hostile_pvh("pvh-noload", &p, 64 * MiB, "no PT_LOAD segment");
}

static void test_pvh_initrd_too_large_is_rejected(void) {
        struct pvh_image p;
        g_autofree char *kernel = NULL, *initrd = make_initrd("initrd-pvh-big", 48 * MiB + 1);
        struct vm_config cfg;

        pvh_image_init(&p);
        kernel = write_file("pvh-for-initrd", p.buf, p.len);
        /* 64 MiB guest, kernel ends at 16 MiB + 20 KiB: 48 MiB - 20 KiB free. */
        cfg = make_config(kernel, initrd, NULL, 64 * MiB);
        assert_check_fails(&cfg, "too large for memory");
}

static void remove_tmpdir(void) {
        GDir *d = g_dir_open(tmpdir, 0, NULL);
        const char *name;

        while (d && (name = g_dir_read_name(d))) {
                g_autofree char *p = g_build_filename(tmpdir, name, NULL);
                unlink(p);
        }
        if (d)
                g_dir_close(d);
        rmdir(tmpdir);
}

int main(int argc, char *argv[]) {
        int r;

        g_test_init(&argc, &argv, NULL);
        tmpdir = g_dir_make_tmp("polyvm-test-loader-XXXXXX", NULL);
        g_assert_nonnull(tmpdir);

        g_test_add_func("/e820/small-memory", test_e820_small_memory);
        g_test_add_func("/e820/large-memory", test_e820_large_memory);
        g_test_add_func("/e820/memory-above-hole-goes-above-4g", test_e820_memory_above_hole_goes_above_4g);
        g_test_add_func("/e820/respects-max", test_e820_respects_max);
        g_test_add_func("/bzimage/boot-params-are-set", test_bzimage_boot_params_are_set);
        g_test_add_func("/bzimage/setup-sects-zero-means-four", test_bzimage_setup_sects_zero_means_four);
        g_test_add_func("/bzimage/old-protocol-gets-no-rsdp-field", test_bzimage_old_protocol_gets_no_rsdp_field);
        g_test_add_func("/bzimage/bad-headers-are-rejected", test_bzimage_bad_headers_are_rejected);
        g_test_add_func("/bzimage/cmdline-over-kernel-limit-is-rejected", test_bzimage_cmdline_over_kernel_limit_is_rejected);
        g_test_add_func("/bzimage/initrd-too-large-is-rejected", test_initrd_too_large_is_rejected);
        g_test_add_func("/bzimage/initrd-respects-initrd-addr-max", test_initrd_respects_initrd_addr_max);
        g_test_add_func("/bzimage/init-size-counts-from-the-runtime-address", test_init_size_counts_from_the_runtime_address);
        g_test_add_func("/bzimage/cmdline-limit-is-capped-by-the-cmdline-area", test_bzimage_cmdline_limit_is_capped_by_the_cmdline_area);
        g_test_add_func("/bzimage/memory-above-4g", test_bzimage_in_memory_above_4g);
        g_test_add_func("/loader/missing-or-odd-files-are-rejected", test_missing_or_odd_files_are_rejected);
        g_test_add_func("/loader/debian-kernel-is-accepted-and-loaded", test_debian_kernel_is_accepted_and_loaded);
        g_test_add_func("/pvh/elf-is-loaded-with-start-info", test_pvh_elf_is_loaded_with_start_info);
        g_test_add_func("/pvh/4-byte-entry-note-and-no-initrd", test_pvh_with_4_byte_entry_note_and_no_initrd);
        g_test_add_func("/pvh/hostile-elfs-are-rejected", test_hostile_pvh_elfs_are_rejected);
        g_test_add_func("/pvh/initrd-too-large-is-rejected", test_pvh_initrd_too_large_is_rejected);

        r = g_test_run();
        remove_tmpdir();
        g_free(tmpdir);
        return r;
}
