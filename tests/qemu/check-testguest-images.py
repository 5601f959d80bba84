#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checks the two testguest images the way a boot loader reads them:
the bzImage's setup header (what polyvm's 64-bit loader relies on; QEMU
only uses the real-mode entry) and the ELF's PVH note, and that both carry
the same kernel bytes.

usage: check-testguest-images.py BZIMAGE ELF
"""
import struct
import sys

LOAD_ADDR = 0x100000
failures = 0


def check(cond, msg):
    global failures
    print(('ok: ' if cond else 'FAIL: ') + msg)
    if not cond:
        failures += 1


def elf_info(data):
    """(PT_LOAD file bytes placed at their addresses, memory end, PVH entry)."""
    assert data[:4] == b'\x7fELF' and data[4] == 2, 'not ELF64'
    e_machine, = struct.unpack_from('<H', data, 0x12)
    phoff, = struct.unpack_from('<Q', data, 0x20)
    phentsize, phnum = struct.unpack_from('<HH', data, 0x36)
    image = bytearray()
    mem_end = 0
    pvh_entry = None
    for i in range(phnum):
        p_type, _, p_offset, _, p_paddr, p_filesz, p_memsz, p_align = struct.unpack_from(
            '<IIQQQQQQ', data, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD
            start = p_paddr - LOAD_ADDR
            if len(image) < start + p_filesz:
                image.extend(bytes(start + p_filesz - len(image)))
            image[start:start + p_filesz] = data[p_offset:p_offset + p_filesz]
            mem_end = max(mem_end, p_paddr + p_memsz)
        elif p_type == 4:  # PT_NOTE
            off, end = p_offset, p_offset + p_filesz
            while off + 12 <= end:
                namesz, descsz, ntype = struct.unpack_from('<III', data, off)
                name = data[off + 12:off + 12 + namesz]
                desc_off = off + 12 + ((namesz + 3) & ~3)
                if name == b'Xen\0' and ntype == 18 and descsz in (4, 8):
                    pvh_entry = int.from_bytes(data[desc_off:desc_off + descsz], 'little')
                off = desc_off + ((descsz + 3) & ~3)
            check(p_align <= 4, f'PT_NOTE alignment {p_align} (QEMU pads the note name to it)')
    return e_machine, bytes(image), mem_end, pvh_entry


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    bz = open(sys.argv[1], 'rb').read()
    elf = open(sys.argv[2], 'rb').read()

    u8 = lambda off: bz[off]
    u16 = lambda off: struct.unpack_from('<H', bz, off)[0]
    u32 = lambda off: struct.unpack_from('<I', bz, off)[0]
    u64 = lambda off: struct.unpack_from('<Q', bz, off)[0]

    check(u16(0x1fe) == 0xaa55, 'boot_flag 0xAA55')
    check(bz[0x202:0x206] == b'HdrS', 'header magic HdrS')
    check(u16(0x206) == 0x020f, f'protocol version 2.15 (0x{u16(0x206):x})')
    setup_sects = u8(0x1f1)
    check(1 <= setup_sects <= 64, f'setup_sects {setup_sects}')
    setup_len = (setup_sects + 1) * 512
    payload = bz[setup_len:]
    check(u32(0x1f4) * 16 >= len(payload) > (u32(0x1f4) - 1) * 16, f'syssize {u32(0x1f4)} covers the payload')
    check(u8(0x211) & 0x01, 'loadflags has LOADED_HIGH')
    check(u16(0x236) & 0x01, 'xloadflags has XLF_KERNEL_64')
    check(u32(0x214) == LOAD_ADDR, 'code32_start is 1 MiB')
    check(u64(0x258) == LOAD_ADDR, 'pref_address is 1 MiB')
    align = u32(0x230)
    check(align and align & (align - 1) == 0 and LOAD_ADDR % align == 0,
          f'kernel_alignment 0x{align:x} is a power of two dividing the load address')
    check(u8(0x234) == 0, 'not relocatable (linked at 1 MiB)')
    check(u32(0x238) >= 255, f'cmdline_size {u32(0x238)}')
    check(bz[0x200] == 0xeb, 'real-mode entry at setup + 0x200 is a short jump')
    ki = u32(0x268)
    check(payload[ki:ki + 4] == b'LToP', f'kernel_info at payload + 0x{ki:x}')

    machine, image, mem_end, pvh_entry = elf_info(elf)
    check(machine == 62, 'ELF machine is x86-64')
    check(payload == image, 'bzImage payload equals the ELF load image')
    check(u32(0x260) >= mem_end - LOAD_ADDR, f'init_size 0x{u32(0x260):x} covers .bss and stacks')
    check(pvh_entry is not None, 'ELF has a XEN_ELFNOTE_PHYS32_ENTRY note')
    if pvh_entry is not None:
        check(LOAD_ADDR <= pvh_entry < LOAD_ADDR + len(image), f'PVH entry 0x{pvh_entry:x} is inside the image')
    # 64-bit entry: cli; cld at payload + 0x200 (startup_64 in head.S)
    check(payload[0x200:0x202] == b'\xfa\xfc', '64-bit entry code at payload + 0x200')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
