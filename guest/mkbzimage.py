#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Glues the setup sectors and the flat kernel into a bzImage, filling the
header fields only the build knows (like Linux's arch/x86/boot/tools/build.c):
setup_sects, syssize, init_size.

usage: mkbzimage.py SETUP.bin PAYLOAD.bin KERNEL.elf OUTPUT
"""
import struct
import sys

LOAD_ADDR = 0x100000
PT_LOAD = 1


def elf_mem_end(path):
    """Highest physical address a PT_LOAD segment of the ELF occupies."""
    with open(path, 'rb') as f:
        data = f.read()
    if data[:4] != b'\x7fELF' or data[4] != 2:
        sys.exit(f'{path}: not an ELF64 file')
    phoff, = struct.unpack_from('<Q', data, 0x20)
    phentsize, phnum = struct.unpack_from('<HH', data, 0x36)
    end = 0
    for i in range(phnum):
        p_type, _, _, _, p_paddr, _, p_memsz, _ = struct.unpack_from('<IIQQQQQQ', data, phoff + i * phentsize)
        if p_type == PT_LOAD:
            end = max(end, p_paddr + p_memsz)
    return end


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    setup = bytearray(open(sys.argv[1], 'rb').read())
    payload = open(sys.argv[2], 'rb').read()

    if len(setup) < 0x270 or len(setup) % 512 or setup[0x202:0x206] != b'HdrS':
        sys.exit(f'{sys.argv[1]}: not a setup image (size {len(setup)})')
    setup_sects = len(setup) // 512 - 1
    if not 1 <= setup_sects <= 64:
        sys.exit(f'setup is {setup_sects} sectors, must be 1..64')
    if len(payload) <= 0x200 or payload[0x1e0:0x1e4] != b'LToP':
        sys.exit(f'{sys.argv[2]}: no 64-bit entry / kernel_info at the expected offsets')

    init_size = elf_mem_end(sys.argv[3]) - LOAD_ADDR
    init_size = (max(init_size, len(payload)) + 4095) & ~4095

    setup[0x1f1] = setup_sects
    struct.pack_into('<I', setup, 0x1f4, (len(payload) + 15) // 16)  # syssize
    struct.pack_into('<I', setup, 0x260, init_size)

    with open(sys.argv[4], 'wb') as f:
        f.write(setup)
        f.write(payload)


if __name__ == '__main__':
    main()
