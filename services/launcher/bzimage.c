/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A Linux bzImage by the x86 boot protocol, entered at its 64-bit entry:
 * the real-mode setup code never runs, so only the setup header matters. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "layout.h"
#include "loader-internal.h"
#include "macro.h"

static const struct setup_header *probe_header(const struct kernel_image *k) {
        return (const struct setup_header *) (k->probe + offsetof(struct boot_params, hdr));
}

bool bzimage_probe(const struct kernel_image *k) {
        const struct setup_header *h = probe_header(k);

        return k->file_size >= KERNEL_PROBE_SIZE && h->boot_flag == BZ_BOOT_FLAG && h->header == BZ_HEADER_MAGIC;
}

int bzimage_inspect(int fd, const char *path, uint64_t low_end, struct kernel_image *k, char *err, size_t errlen) {
        const struct setup_header *h = probe_header(k);
        uint64_t setup_sects, sys_bytes, need, runtime;

        if (h->version < BZ_MIN_PROTOCOL) {
                snprintf(err, errlen,
                         "config.kernel: %s: bzImage boot protocol %u.%02u is older than the required 2.12",
                         path, h->version >> 8, h->version & 0xff);
                return -EINVAL;
        }
        if (!(h->xloadflags & BZ_XLF_KERNEL_64)) {
                snprintf(err, errlen, "config.kernel: %s: bzImage has no 64-bit entry point (XLF_KERNEL_64 unset)",
                         path);
                return -EINVAL;
        }

        setup_sects = h->setup_sects == 0 ? 4 : h->setup_sects;
        k->setup_size = (setup_sects + 1) * 512;
        sys_bytes = (uint64_t) h->syssize * 16;
        /* syssize counts 16-byte paragraphs, rounded up: allow the last one to be partial. */
        if (k->file_size < k->setup_size || k->file_size - k->setup_size + 15 < sys_bytes || sys_bytes == 0) {
                snprintf(err, errlen,
                         "config.kernel: %s: bzImage is truncated: %" PRIu64 " bytes, but its header says %" PRIu64
                         " of setup and %" PRIu64 " of kernel",
                         path, k->file_size, k->setup_size, sys_bytes);
                return -EINVAL;
        }
        k->load_size = k->file_size - k->setup_size;
        k->protocol = h->version;

        /* init_size counts from the kernel's runtime start, not from where
         * it is loaded (boot.rst, "init_size"): a relocatable kernel runs at
         * the load address raised to pref_address and aligned up to
         * kernel_alignment, any other at pref_address. Debian's loaded at
         * 1 MiB decompresses at 16 MiB. */
        runtime = MAX(LAYOUT_KERNEL_BZIMAGE, MIN((uint64_t) h->pref_address, low_end));
        if (h->relocatable_kernel && h->kernel_alignment > 1 && (h->kernel_alignment & (h->kernel_alignment - 1)) == 0)
                runtime = ALIGN_UP(runtime, (uint64_t) h->kernel_alignment);
        need = MAX(k->load_size, runtime - LAYOUT_KERNEL_BZIMAGE + h->init_size);
        if (low_end < LAYOUT_KERNEL_BZIMAGE || need > low_end - LAYOUT_KERNEL_BZIMAGE) {
                snprintf(err, errlen,
                         "config.kernel: %s: the kernel needs %" PRIu64 " MiB at 1 MiB (it runs at 0x%" PRIx64
                         "), more than guest RAM below 0x%" PRIx64,
                         path, (need + (1 << 20) - 1) >> 20, runtime, low_end);
                return -EINVAL;
        }

        k->format = KERNEL_BZIMAGE;
        k->kernel_start = LAYOUT_KERNEL_BZIMAGE;
        k->kernel_end = LAYOUT_KERNEL_BZIMAGE + need;
        k->entry = LAYOUT_KERNEL_BZIMAGE + BZ_ENTRY64_OFFSET;
        k->initrd_addr_max = h->initrd_addr_max ? h->initrd_addr_max : 0x37ffffff; /* boot.rst: default for old kernels */
        /* The kernel's limit, but never past our command line area. */
        k->cmdline_max = MIN(h->cmdline_size ? h->cmdline_size : 255, (uint32_t) LAYOUT_CMDLINE_MAX - 1);
        return 0;
}

int bzimage_load_kernel(int fd, const struct kernel_image *k, uint8_t *mem) {
        return read_full_at(fd, mem + LAYOUT_KERNEL_BZIMAGE, k->load_size, k->setup_size);
}

/* boot_params as Linux's 64-bit boot protocol wants it: zeroed, the image's
 * own setup header copied in, and the loader's fields set. CAN_USE_HEAP and
 * heap_end_ptr are left clear: they describe the real-mode setup heap, and
 * the 64-bit entry never runs that code. */
void bzimage_write_boot_params(const struct kernel_image *k, uint8_t *mem, const struct boot_layout *b) {
        struct boot_params *bp = (struct boot_params *) (mem + LAYOUT_ZERO_PAGE);
        size_t hdr_start = offsetof(struct boot_params, hdr), hdr_end;

        memset(bp, 0, sizeof(*bp));
        /* The header ends at 0x202 + the byte at 0x201 (the jump's offset). */
        hdr_end = MIN((size_t) 0x202 + k->probe[0x201], offsetof(struct boot_params, hdr) + sizeof(bp->hdr));
        memcpy((uint8_t *) bp + hdr_start, k->probe + hdr_start, hdr_end - hdr_start);

        bp->hdr.type_of_loader = BZ_LOADER_UNDEFINED;
        bp->hdr.loadflags |= BZ_LOADED_HIGH;
        bp->hdr.cmd_line_ptr = (uint32_t) LAYOUT_CMDLINE;
        bp->ext_cmd_line_ptr = 0;
        if (b->initrd_size > 0) {
                bp->hdr.ramdisk_image = (uint32_t) b->initrd_addr;
                bp->hdr.ramdisk_size = (uint32_t) b->initrd_size;
                bp->ext_ramdisk_image = (uint32_t) (b->initrd_addr >> 32);
                bp->ext_ramdisk_size = (uint32_t) (b->initrd_size >> 32);
        }
        for (size_t i = 0; i < b->n_e820 && i < BOOT_PARAMS_E820_MAX; i++)
                bp->e820_table[i] = (struct boot_e820_entry) {
                        .addr = b->e820[i].addr,
                        .size = b->e820[i].size,
                        .type = b->e820[i].type,
                };
        bp->e820_entries = (uint8_t) MIN(b->n_e820, (size_t) BOOT_PARAMS_E820_MAX);
        if (k->protocol >= BZ_RSDP_PROTOCOL)
                bp->acpi_rsdp_addr = b->rsdp_addr;
}
