/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Guest physical address -> offset in the host mapping of guest RAM, for
 * every process that maps the guest memfd (device processes, the vCPU
 * engine). The mapping is memory_bytes long: address 0 at offset 0 up to the
 * MMIO hole, RAM above the hole (guest address 4 GiB) at offset
 * LAYOUT_MMIO_HOLE_START, as lib/layout.h lays it out. */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/layout.h"

/* 0 and the offset if gpa..gpa+len-1 is RAM of one region; -EFAULT if not,
 * for len 0 and if gpa+len overflows. */
static inline int guest_ram_offset(uint64_t gpa, uint64_t len, uint64_t mem_size, uint64_t *ret_offset) {
        uint64_t low = mem_size < LAYOUT_MMIO_HOLE_START ? mem_size : LAYOUT_MMIO_HOLE_START;

        if (len == 0 || gpa + len < gpa)
                return -EFAULT;
        if (gpa < low && len <= low - gpa) {
                *ret_offset = gpa;
                return 0;
        }
        if (gpa >= LAYOUT_MMIO_HOLE_END && mem_size > LAYOUT_MMIO_HOLE_START) {
                uint64_t rel = gpa - LAYOUT_MMIO_HOLE_END, high = mem_size - LAYOUT_MMIO_HOLE_START;

                if (rel < high && len <= high - rel) {
                        *ret_offset = LAYOUT_MMIO_HOLE_START + rel;
                        return 0;
                }
        }
        return -EFAULT;
}

/* The host pointer for gpa..gpa+len-1 in the mapping mem, or NULL. */
static inline void *guest_ram_ptr(void *mem, uint64_t mem_size, uint64_t gpa, uint64_t len) {
        uint64_t off;

        if (guest_ram_offset(gpa, len, mem_size, &off) < 0)
                return NULL;
        return (uint8_t *) mem + off;
}
