/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the loader's files (loader-x86.c, bzimage.c, elf-pvh.c): what
 * inspecting a kernel file found, every number already checked against the
 * file size and guest RAM. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bootparam.h"
#include "loader-x86.h"

#define ELF_MAX_PHNUM 64
/* How much of the file the format probe reads: the whole setup header. */
#define KERNEL_PROBE_SIZE 0x290

struct elf_load_segment {
        uint64_t offset, filesz, paddr, memsz;
};

struct kernel_image {
        enum kernel_format format;
        uint64_t file_size;
        /* Guest range the kernel occupies once loaded (and, for a bzImage,
         * while it decompresses): the initrd goes above kernel_end. */
        uint64_t kernel_start, kernel_end;
        uint64_t initrd_addr_max;  /* last byte an initrd may use */
        uint64_t cmdline_max;      /* longest command line, without the NUL */
        uint64_t entry;

        /* bzImage */
        uint8_t probe[KERNEL_PROBE_SIZE]; /* first bytes of the file, incl. the setup header */
        uint64_t setup_size;       /* (setup_sects + 1) * 512 */
        uint64_t load_size;        /* protected-mode part: file_size - setup_size */
        uint16_t protocol;

        /* PVH ELF */
        struct elf_load_segment segs[ELF_MAX_PHNUM];
        size_t n_segs;
};

/* Reads exactly len bytes at off; a short read (the file shrank) is -EIO. */
int read_full_at(int fd, void *buf, size_t len, uint64_t off);

/* Both take the probe bytes already read into k->probe (k->file_size set)
 * and low_end (the end of RAM below the MMIO hole). They fill k or fail
 * with -EINVAL and a message "config.kernel: <path>: ...". */
bool bzimage_probe(const struct kernel_image *k);
int bzimage_inspect(int fd, const char *path, uint64_t low_end, struct kernel_image *k, char *err, size_t errlen);
bool elf_probe(const struct kernel_image *k);
int elf_pvh_inspect(int fd, const char *path, uint64_t low_end, struct kernel_image *k, char *err, size_t errlen);

/* What the loader placed, for boot_params / start_info. */
struct boot_layout {
        uint64_t initrd_addr, initrd_size; /* size 0: no initrd */
        uint64_t rsdp_addr;
        const struct e820_entry *e820;
        size_t n_e820;
};

/* Copy the kernel itself into guest memory (low RAM at mem), then write
 * the structure its entry reads (boot_params or hvm_start_info). */
int bzimage_load_kernel(int fd, const struct kernel_image *k, uint8_t *mem);
void bzimage_write_boot_params(const struct kernel_image *k, uint8_t *mem, const struct boot_layout *b);
int elf_pvh_load_kernel(int fd, const struct kernel_image *k, uint8_t *mem);
void elf_pvh_write_start_info(uint8_t *mem, const struct boot_layout *b);
