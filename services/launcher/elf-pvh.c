/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An ELF64 kernel entered through its PVH note (Linux's vmlinux): the
 * PT_LOADs go to their physical addresses and EBX points at a
 * struct hvm_start_info. Every number in the file is checked before use. */

#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "layout.h"
#include "loader-internal.h"
#include "macro.h"

/* Linux's notes are a few hundred bytes; a bigger PT_NOTE is not a kernel. */
#define ELF_MAX_NOTE_SIZE (64 * 1024)

bool elf_probe(const struct kernel_image *k) {
        return k->file_size >= SELFMAG && memcmp(k->probe, ELFMAG, SELFMAG) == 0;
}

/* Looks for the Xen PHYS32_ENTRY note in buf; 1 if found (*entry set), 0 if
 * not, -EINVAL if a note's sizes run past the segment. */
static int find_pvh_note(const uint8_t *buf, uint64_t size, uint64_t *entry) {
        uint64_t off = 0;

        while (size - off >= sizeof(Elf64_Nhdr)) {
                Elf64_Nhdr nh;
                uint64_t name_len, desc_len;
                const uint8_t *name, *desc;

                memcpy(&nh, buf + off, sizeof(nh));
                off += sizeof(nh);
                name_len = ALIGN_UP((uint64_t) nh.n_namesz, 4);
                desc_len = ALIGN_UP((uint64_t) nh.n_descsz, 4);
                if (name_len > size - off || desc_len > size - off - name_len)
                        return -EINVAL;
                name = buf + off;
                desc = buf + off + name_len;
                off += name_len + desc_len;

                if (nh.n_type != XEN_ELFNOTE_PHYS32_ENTRY || nh.n_namesz != 4 || memcmp(name, "Xen", 4) != 0)
                        continue;
                if (nh.n_descsz == 4) {
                        uint32_t v;
                        memcpy(&v, desc, 4);
                        *entry = v;
                } else if (nh.n_descsz == 8) {
                        uint64_t v;
                        memcpy(&v, desc, 8);
                        *entry = v;
                } else
                        return -EINVAL;
                return 1;
        }
        return 0;
}

int elf_pvh_inspect(int fd, const char *path, uint64_t low_end, struct kernel_image *k, char *err, size_t errlen) {
        Elf64_Ehdr eh;
        _cleanup_free_ Elf64_Phdr *ph = NULL;
        bool have_entry = false, entry_loaded = false;
        uint64_t entry = 0, end = 0, start = UINT64_MAX;
        int r;

#define FAIL(...)                                                                       \
        do {                                                                            \
                int _n = snprintf(err, errlen, "config.kernel: %s: not a PVH ELF kernel: ", path); \
                if (_n >= 0 && (size_t) _n < errlen)                                    \
                        snprintf(err + _n, errlen - _n, __VA_ARGS__);                   \
                return -EINVAL;                                                         \
        } while (0)

        if (k->file_size < sizeof(eh))
                FAIL("file of %" PRIu64 " bytes is shorter than an ELF64 header", k->file_size);
        memcpy(&eh, k->probe, sizeof(eh));
        if (eh.e_ident[EI_CLASS] != ELFCLASS64)
                FAIL("ELF class %u is not ELFCLASS64 (a 32-bit ELF?)", eh.e_ident[EI_CLASS]);
        if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
                FAIL("not little-endian");
        if (eh.e_machine != EM_X86_64)
                FAIL("machine %u is not x86-64 (%u)", eh.e_machine, EM_X86_64);
        if (eh.e_type != ET_EXEC)
                FAIL("type %u is not ET_EXEC", eh.e_type);
        if (eh.e_phentsize != sizeof(Elf64_Phdr))
                FAIL("e_phentsize %u is not %zu", eh.e_phentsize, sizeof(Elf64_Phdr));
        if (eh.e_phnum == 0 || eh.e_phnum > ELF_MAX_PHNUM)
                FAIL("e_phnum %u is out of range 1..%d", eh.e_phnum, ELF_MAX_PHNUM);
        if (eh.e_phoff > k->file_size || (uint64_t) eh.e_phnum * sizeof(Elf64_Phdr) > k->file_size - eh.e_phoff)
                FAIL("program headers at 0x%" PRIx64 " run past the end of the file (%" PRIu64 " bytes)",
                     (uint64_t) eh.e_phoff, k->file_size);

        ph = calloc(eh.e_phnum, sizeof(Elf64_Phdr));
        if (!ph)
                return -ENOMEM;
        r = read_full_at(fd, ph, eh.e_phnum * sizeof(Elf64_Phdr), eh.e_phoff);
        if (r < 0) {
                snprintf(err, errlen, "config.kernel: %s: failed to read program headers: %s", path, strerror(-r));
                return r;
        }

        k->n_segs = 0;
        for (size_t i = 0; i < eh.e_phnum; i++) {
                const Elf64_Phdr *p = &ph[i];

                if (p->p_type != PT_LOAD && p->p_type != PT_NOTE)
                        continue;
                if (p->p_offset > k->file_size || p->p_filesz > k->file_size - p->p_offset)
                        FAIL("segment %zu (offset 0x%" PRIx64 ", %" PRIu64 " bytes) runs past the end of the file (%" PRIu64 " bytes)",
                             i, (uint64_t) p->p_offset, (uint64_t) p->p_filesz, k->file_size);

                if (p->p_type == PT_NOTE) {
                        _cleanup_free_ uint8_t *notes = NULL;

                        if (have_entry || p->p_filesz == 0)
                                continue;
                        if (p->p_filesz > ELF_MAX_NOTE_SIZE)
                                FAIL("PT_NOTE %zu is %" PRIu64 " bytes, more than %d", i, (uint64_t) p->p_filesz,
                                     ELF_MAX_NOTE_SIZE);
                        notes = malloc(p->p_filesz);
                        if (!notes)
                                return -ENOMEM;
                        r = read_full_at(fd, notes, p->p_filesz, p->p_offset);
                        if (r < 0) {
                                snprintf(err, errlen, "config.kernel: %s: failed to read notes: %s", path,
                                         strerror(-r));
                                return r;
                        }
                        r = find_pvh_note(notes, p->p_filesz, &entry);
                        if (r < 0)
                                FAIL("a note in PT_NOTE %zu has sizes that run past the segment", i);
                        have_entry = r > 0;
                        continue;
                }

                if (p->p_filesz > p->p_memsz)
                        FAIL("PT_LOAD %zu has p_filesz %" PRIu64 " > p_memsz %" PRIu64, i, (uint64_t) p->p_filesz,
                             (uint64_t) p->p_memsz);
                if (p->p_paddr < LAYOUT_HIGH_RAM || p->p_paddr > low_end || p->p_memsz > low_end - p->p_paddr)
                        FAIL("PT_LOAD %zu at 0x%" PRIx64 "..0x%" PRIx64 " is outside guest RAM 0x%llx..0x%" PRIx64,
                             i, (uint64_t) p->p_paddr, (uint64_t) p->p_paddr + p->p_memsz, LAYOUT_HIGH_RAM, low_end);
                k->segs[k->n_segs++] = (struct elf_load_segment) {
                        .offset = p->p_offset,
                        .filesz = p->p_filesz,
                        .paddr = p->p_paddr,
                        .memsz = p->p_memsz,
                };
                start = MIN(start, (uint64_t) p->p_paddr);
                end = MAX(end, (uint64_t) (p->p_paddr + p->p_memsz));
        }

        if (!have_entry)
                FAIL("no Xen PHYS32_ENTRY note");
        if (k->n_segs == 0)
                FAIL("no PT_LOAD segment");
        for (size_t i = 0; i < k->n_segs; i++)
                if (entry >= k->segs[i].paddr && entry - k->segs[i].paddr < k->segs[i].memsz)
                        entry_loaded = true;
        if (!entry_loaded)
                FAIL("PVH entry 0x%" PRIx64 " is not inside any PT_LOAD", entry);
#undef FAIL

        k->format = KERNEL_PVH_ELF;
        k->entry = entry;
        k->kernel_start = start;
        k->kernel_end = end;
        k->initrd_addr_max = LAYOUT_MMIO_HOLE_START - 1;
        k->cmdline_max = LAYOUT_CMDLINE_MAX - 1;
        return 0;
}

int elf_pvh_load_kernel(int fd, const struct kernel_image *k, uint8_t *mem) {
        int r;

        for (size_t i = 0; i < k->n_segs; i++) {
                const struct elf_load_segment *s = &k->segs[i];

                r = read_full_at(fd, mem + s->paddr, s->filesz, s->offset);
                if (r < 0)
                        return r;
                memset(mem + s->paddr + s->filesz, 0, s->memsz - s->filesz);
        }
        return 0;
}

void elf_pvh_write_start_info(uint8_t *mem, const struct boot_layout *b) {
        uint8_t *page = mem + LAYOUT_PVH_START_INFO;
        struct hvm_start_info *si = (struct hvm_start_info *) page;
        struct hvm_modlist_entry *mod = (struct hvm_modlist_entry *) (page + PVH_MODLIST_OFFSET);
        struct hvm_memmap_table_entry *mm = (struct hvm_memmap_table_entry *) (page + PVH_MEMMAP_OFFSET);

        _Static_assert(PVH_MEMMAP_OFFSET + E820_MAX_ENTRIES * sizeof(struct hvm_memmap_table_entry) <= 0x1000,
                       "start info fits its page");
        memset(page, 0, 0x1000);
        *si = (struct hvm_start_info) {
                .magic = HVM_START_MAGIC,
                .version = HVM_START_VERSION,
                .cmdline_paddr = LAYOUT_CMDLINE,
                .rsdp_paddr = b->rsdp_addr,
                .memmap_paddr = LAYOUT_PVH_START_INFO + PVH_MEMMAP_OFFSET,
                .memmap_entries = (uint32_t) MIN(b->n_e820, (size_t) E820_MAX_ENTRIES),
        };
        for (size_t i = 0; i < si->memmap_entries; i++)
                mm[i] = (struct hvm_memmap_table_entry) {
                        .addr = b->e820[i].addr,
                        .size = b->e820[i].size,
                        .type = b->e820[i].type,
                };
        if (b->initrd_size > 0) {
                si->nr_modules = 1;
                si->modlist_paddr = LAYOUT_PVH_START_INFO + PVH_MODLIST_OFFSET;
                *mod = (struct hvm_modlist_entry) { .paddr = b->initrd_addr, .size = b->initrd_size };
        }
}
