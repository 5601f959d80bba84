/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Every number in the file is checked before it is used: the ELF is input,
 * not code we trust. */
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "pvh-elf.h"

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static uint64_t align4(uint64_t v) {
        return (v + 3) & ~UINT64_C(3);
}

/* 1 and *entry if the notes in buf hold the PVH entry, 0 if not, -EINVAL if
 * a note runs past the segment. */
static int find_pvh_note(const uint8_t *buf, uint64_t size, uint64_t *entry) {
        uint64_t off = 0;

        while (size - off >= sizeof(Elf64_Nhdr)) {
                Elf64_Nhdr nh;
                uint64_t name_len, desc_len;
                const uint8_t *name, *desc;

                memcpy(&nh, buf + off, sizeof(nh));
                off += sizeof(nh);
                name_len = align4(nh.n_namesz);
                desc_len = align4(nh.n_descsz);
                if (name_len > size - off || desc_len > size - off - name_len)
                        return -EINVAL;
                name = buf + off;
                desc = name + name_len;
                off += name_len + desc_len;
                if (nh.n_type != PVH_XEN_ELFNOTE_PHYS32_ENTRY || nh.n_namesz != 4 || memcmp(name, "Xen", 4) != 0)
                        continue;
                if (nh.n_descsz == 4) {
                        uint32_t v;
                        memcpy(&v, desc, 4);
                        *entry = v;
                } else if (nh.n_descsz == 8)
                        memcpy(entry, desc, 8);
                else
                        return -EINVAL;
                return 1;
        }
        return 0;
}

int pvh_elf_load(const uint8_t *file, size_t size, uint8_t *mem, uint64_t mem_size, uint64_t low_limit,
                 uint64_t *ret_entry, char *err, size_t errlen) {
        Elf64_Ehdr eh;
        Elf64_Phdr ph[PVH_ELF_MAX_PHNUM];
        bool have_entry = false, entry_loaded = false;
        unsigned n_loads = 0;
        uint64_t entry = 0;

        if (size < sizeof(eh) || memcmp(file, ELFMAG, SELFMAG) != 0)
                return fail(err, errlen, "not an ELF file");
        memcpy(&eh, file, sizeof(eh));
        if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
                return fail(err, errlen, "not a little-endian ELF64 for x86-64");
        if (eh.e_type != ET_EXEC)
                return fail(err, errlen, "ELF type %u is not ET_EXEC", eh.e_type);
        if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > PVH_ELF_MAX_PHNUM)
                return fail(err, errlen, "%u program headers of %u bytes (1..%d of %zu expected)", eh.e_phnum,
                            eh.e_phentsize, PVH_ELF_MAX_PHNUM, sizeof(Elf64_Phdr));
        if (eh.e_phoff > size || (uint64_t) eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff)
                return fail(err, errlen, "program headers run past the end of the file");
        memcpy(ph, file + eh.e_phoff, eh.e_phnum * sizeof(Elf64_Phdr));

        for (unsigned i = 0; i < eh.e_phnum; i++) {
                const Elf64_Phdr *p = &ph[i];

                if (p->p_type != PT_LOAD && p->p_type != PT_NOTE)
                        continue;
                if (p->p_offset > size || p->p_filesz > size - p->p_offset)
                        return fail(err, errlen, "segment %u runs past the end of the file", i);
                if (p->p_type == PT_NOTE) {
                        int r;

                        if (have_entry)
                                continue;
                        r = find_pvh_note(file + p->p_offset, p->p_filesz, &entry);
                        if (r < 0)
                                return fail(err, errlen, "a note in segment %u runs past the segment", i);
                        have_entry = r > 0;
                        continue;
                }
                if (p->p_filesz > p->p_memsz)
                        return fail(err, errlen, "PT_LOAD %u has p_filesz > p_memsz", i);
                if (p->p_paddr < low_limit || p->p_paddr > mem_size || p->p_memsz > mem_size - p->p_paddr)
                        return fail(err, errlen,
                                    "PT_LOAD %u at 0x%" PRIx64 "..0x%" PRIx64 " is beyond guest memory 0x%" PRIx64
                                    "..0x%" PRIx64,
                                    i, (uint64_t) p->p_paddr, (uint64_t) p->p_paddr + p->p_memsz, low_limit, mem_size);
                n_loads++;
        }
        if (!have_entry)
                return fail(err, errlen, "no PVH entry (Xen PHYS32_ENTRY note)");
        if (n_loads == 0)
                return fail(err, errlen, "no PT_LOAD segment");
        /* Notes may come after the loads: the entry is checked once all are known. */
        for (unsigned i = 0; i < eh.e_phnum; i++)
                if (ph[i].p_type == PT_LOAD && entry >= ph[i].p_paddr && entry - ph[i].p_paddr < ph[i].p_memsz)
                        entry_loaded = true;
        if (!entry_loaded)
                return fail(err, errlen, "PVH entry 0x%" PRIx64 " is not inside a PT_LOAD", entry);

        for (unsigned i = 0; i < eh.e_phnum; i++) {
                const Elf64_Phdr *p = &ph[i];

                if (p->p_type != PT_LOAD)
                        continue;
                memcpy(mem + p->p_paddr, file + p->p_offset, p->p_filesz);
                memset(mem + p->p_paddr + p->p_filesz, 0, p->p_memsz - p->p_filesz);
        }
        *ret_entry = entry;
        return 0;
}
