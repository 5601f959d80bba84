/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The PVH example's ELF loader: an ELF64 x86-64 executable whose PT_LOAD
 * segments go to their physical addresses in guest RAM and whose Xen
 * PHYS32_ENTRY note names the 32-bit entry point (the PVH boot ABI, as
 * Linux's vmlinux and polyvm-testguest.elf have it). Pure: it works on a
 * buffer holding the whole file, so that tests feed it any bytes. */

#include <stddef.h>
#include <stdint.h>

#define PVH_ELF_MAX_PHNUM 64
#define PVH_XEN_ELFNOTE_PHYS32_ENTRY 18

/* Checks the file and copies its PT_LOADs into mem (mem_size bytes of guest
 * RAM from address 0; the bytes past p_filesz are zeroed). Segments must lie
 * in [low_limit, mem_size) so that they cannot overwrite the boot data the
 * plugin puts below it. On success *ret_entry is the PVH entry; on failure
 * -EINVAL (or -ENOMEM) and err says why, for a person. Nothing is written
 * to mem unless the whole file checks out. */
int pvh_elf_load(const uint8_t *file, size_t size, uint8_t *mem, uint64_t mem_size, uint64_t low_limit,
                 uint64_t *ret_entry, char *err, size_t errlen);
