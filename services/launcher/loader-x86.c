/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The loader's common part: opening and checking the files, placing the
 * initrd and command line, the identity page tables and GDT. The formats
 * themselves are in bzimage.c and elf-pvh.c. */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "layout.h"
#include "loader-internal.h"
#include "macro.h"

#define PAGE_SIZE 4096ULL
#define PTE_PRESENT 0x1ULL
#define PTE_WRITE 0x2ULL
#define PTE_LARGE 0x80ULL

int read_full_at(int fd, void *buf, size_t len, uint64_t off) {
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = pread(fd, p, len, (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EIO; /* the file shrank since it was checked */
                p += n;
                off += (uint64_t) n;
                len -= (size_t) n;
        }
        return 0;
}

/* Opens path for reading and checks it is a non-empty regular file. O_NONBLOCK
 * so that a FIFO cannot hang us before fstat says what it is. */
static int open_regular(const char *field, const char *path, int *ret_fd, uint64_t *ret_size, char *err,
                        size_t errlen) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                int r = negative_errno();
                snprintf(err, errlen, "config.%s: %s: %s", field, path, strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0) {
                int r = negative_errno();
                snprintf(err, errlen, "config.%s: %s: %s", field, path, strerror(-r));
                return r;
        }
        if (S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "config.%s: %s is a directory, not a regular file", field, path);
                return -EISDIR;
        }
        if (!S_ISREG(st.st_mode)) {
                snprintf(err, errlen, "config.%s: %s is not a regular file", field, path);
                return -EINVAL;
        }
        if (st.st_size == 0) {
                snprintf(err, errlen, "config.%s: %s is empty", field, path);
                return -EINVAL;
        }
        *ret_size = (uint64_t) st.st_size;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

struct boot_files {
        int kernel_fd, initrd_fd;
        struct kernel_image image;
        uint64_t initrd_addr, initrd_size;
};

static void boot_files_done(struct boot_files *f) {
        safe_close(f->kernel_fd);
        safe_close(f->initrd_fd);
}

/* Everything loader_check promises, on open fds that loader_load then
 * reads, so that what was checked is what gets loaded. */
static int boot_files_open(const struct vm_config *cfg, struct boot_files *f, char *err, size_t errlen) {
        struct kernel_image *k = &f->image;
        uint64_t low_end = MIN(cfg->memory_bytes, LAYOUT_MMIO_HOLE_START);
        size_t cmdline_len = cfg->cmdline ? strlen(cfg->cmdline) : 0;
        int r;

        if (!cfg->kernel) {
                snprintf(err, errlen, "config.kernel: missing required field");
                return -EINVAL;
        }
        r = open_regular("kernel", cfg->kernel, &f->kernel_fd, &k->file_size, err, errlen);
        if (r < 0)
                return r;

        memset(k->probe, 0, sizeof(k->probe));
        r = read_full_at(f->kernel_fd, k->probe, MIN(k->file_size, (uint64_t) sizeof(k->probe)), 0);
        if (r < 0) {
                snprintf(err, errlen, "config.kernel: %s: failed to read: %s", cfg->kernel, strerror(-r));
                return r;
        }
        if (bzimage_probe(k))
                r = bzimage_inspect(f->kernel_fd, cfg->kernel, low_end, k, err, errlen);
        else if (elf_probe(k))
                r = elf_pvh_inspect(f->kernel_fd, cfg->kernel, low_end, k, err, errlen);
        else {
                snprintf(err, errlen, "config.kernel: %s is neither a bzImage nor a PVH ELF", cfg->kernel);
                r = -EINVAL;
        }
        if (r < 0)
                return r;

        if (cmdline_len > k->cmdline_max) {
                snprintf(err, errlen, "config.cmdline: %zu bytes is longer than the kernel's limit of %" PRIu64 " bytes",
                         cmdline_len, k->cmdline_max);
                return -EINVAL;
        }

        if (cfg->initrd) {
                uint64_t bottom = ALIGN_UP(k->kernel_end, PAGE_SIZE);
                uint64_t top = MIN(low_end, k->initrd_addr_max + 1);

                r = open_regular("initrd", cfg->initrd, &f->initrd_fd, &f->initrd_size, err, errlen);
                if (r < 0)
                        return r;
                /* As high as possible below the limit, page aligned, above the kernel. */
                if (top < bottom || f->initrd_size > top - bottom ||
                    ((top - f->initrd_size) & ~(PAGE_SIZE - 1)) < bottom) {
                        snprintf(err, errlen,
                                 "config.initrd: %s (%" PRIu64 " bytes) too large for memory: %" PRIu64
                                 " bytes free between the kernel's end 0x%" PRIx64 " and 0x%" PRIx64,
                                 cfg->initrd, f->initrd_size, top > bottom ? top - bottom : 0, bottom, top);
                        return -EINVAL;
                }
                f->initrd_addr = (top - f->initrd_size) & ~(PAGE_SIZE - 1);
        }
        return 0;
}

int loader_check(const struct vm_config *cfg, enum kernel_format *ret_format, char *err, size_t errlen) {
        _cleanup_(boot_files_done) struct boot_files f = { .kernel_fd = -1, .initrd_fd = -1 };
        int r;

        assert(cfg);
        r = boot_files_open(cfg, &f, err, errlen);
        if (r < 0)
                return r;
        if (ret_format)
                *ret_format = f.image.format;
        return 0;
}

/* Identity map of 0..4 GiB with 2 MiB pages: enough for the 64-bit entry,
 * which only needs the kernel, boot_params and the command line mapped. */
static void write_page_tables(uint8_t *mem) {
        uint64_t *pml4 = (uint64_t *) (mem + LAYOUT_PML4);
        uint64_t *pdpt = (uint64_t *) (mem + LAYOUT_PDPT);
        uint64_t *pd = (uint64_t *) (mem + LAYOUT_PD);

        memset(pml4, 0, PAGE_SIZE);
        memset(pdpt, 0, PAGE_SIZE);
        pml4[0] = LAYOUT_PDPT | PTE_PRESENT | PTE_WRITE;
        for (uint64_t i = 0; i < 4; i++)
                pdpt[i] = (LAYOUT_PD + i * PAGE_SIZE) | PTE_PRESENT | PTE_WRITE;
        for (uint64_t i = 0; i < 4 * 512; i++)
                pd[i] = (i << 21) | PTE_PRESENT | PTE_WRITE | PTE_LARGE;
}

static void write_gdt(uint8_t *mem) {
        const uint64_t gdt[BOOT_GDT_ENTRIES] = {
                [0] = 0,
                [BOOT_GDT_CS32 / 8] = BOOT_GDT_DESC_CS32,
                [BOOT_GDT_CS64 / 8] = BOOT_GDT_DESC_CS64,
                [BOOT_GDT_DS / 8] = BOOT_GDT_DESC_DS,
        };

        memcpy(mem + LAYOUT_GDT, gdt, sizeof(gdt));
}

int loader_load(const struct vm_config *cfg, void *mem, uint64_t rsdp_addr, struct boot_entry *ret, char *err,
                size_t errlen) {
        _cleanup_(boot_files_done) struct boot_files f = { .kernel_fd = -1, .initrd_fd = -1 };
        struct e820_entry e820[E820_MAX_ENTRIES];
        struct boot_layout b = {};
        const char *cmdline = cfg->cmdline ?: "";
        uint8_t *m = mem;
        int r;

        assert(cfg);
        assert(mem);
        assert(ret);

        r = boot_files_open(cfg, &f, err, errlen);
        if (r < 0)
                return r;

        if (f.image.format == KERNEL_BZIMAGE)
                r = bzimage_load_kernel(f.kernel_fd, &f.image, m);
        else
                r = elf_pvh_load_kernel(f.kernel_fd, &f.image, m);
        if (r < 0) {
                snprintf(err, errlen, "config.kernel: %s: failed to read: %s", cfg->kernel, strerror(-r));
                return r;
        }
        if (cfg->initrd) {
                r = read_full_at(f.initrd_fd, m + f.initrd_addr, f.initrd_size, 0);
                if (r < 0) {
                        snprintf(err, errlen, "config.initrd: %s: failed to read: %s", cfg->initrd, strerror(-r));
                        return r;
                }
        }
        memcpy(m + LAYOUT_CMDLINE, cmdline, strlen(cmdline) + 1);

        b = (struct boot_layout) {
                .initrd_addr = f.initrd_addr,
                .initrd_size = f.initrd_size,
                .rsdp_addr = rsdp_addr,
                .e820 = e820,
                .n_e820 = e820_build(cfg->memory_bytes, e820, ELEMENTSOF(e820)),
        };
        if (f.image.format == KERNEL_BZIMAGE)
                bzimage_write_boot_params(&f.image, m, &b);
        else
                elf_pvh_write_start_info(m, &b);
        write_page_tables(m);
        write_gdt(m);

        *ret = (struct boot_entry) {
                .format = f.image.format,
                .rip = f.image.entry,
                .boot_info = f.image.format == KERNEL_BZIMAGE ? LAYOUT_ZERO_PAGE : LAYOUT_PVH_START_INFO,
        };
        return 0;
}
