#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boots polyvm-testguest under QEMU (TCG) with QEMU's own virtio-pci
devices (modern only: disable-legacy=on) and checks the guest's drivers.

The disks are raw images this test creates with known content, so every
answer is checked against what the host sees: checksums of pre-filled
sectors, the written pattern in the image file after QEMU has exited.

Scenarios:
  rng-blk    `pci` lists virtio-rng (1af4:1044) and virtio-blk (1af4:1042);
             `rng 64` returns bytes with interrupts counted; `blk` shows the
             capacity and serial; write (several requests) + flush + verify;
             a wrong pattern is a mismatch; a pre-filled range reads back
             with the checksum computed here; reads past the capacity answer
             IOERR and the queue keeps working; afterwards the image holds
             exactly the pattern at those sectors and nothing else changed
  readonly   readonly=on: `blk` says ro 1, the driver refuses a write, the
             device answers IOERR to a forced one, reads work, the image is
             unchanged
  two-disks  two virtio-blk devices: both listed with their own capacity and
             serial; a write to disk 1 is verified there, absent on disk 0,
             and only in disk 1's image
  transitional  a transitional virtio-rng (1af4:1005, id from the subsystem
             id) works through its modern capabilities; a legacy-only
             virtio-blk (disable-modern=on) is refused loudly at boot
--irq intx starts the devices with vectors=0 (no MSI-X): the guest must
fall back to INTx through the IOAPIC and still count interrupts.

Exit status 77 (skip) when QEMU is not installed.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import qemutest as qt  # noqa: E402
from qemutest import M64, SECTOR, check, fnv1a64, make_image  # noqa: E402

PREFILL_SECTOR, PREFILL_COUNT = 100, 4


def pattern_word(seed, sector, word):
    """guest/virtio-blk.c's pattern_word(): splitmix64 of (seed, sector, word)."""
    z = (seed + sector * 0x9e3779b97f4a7c15 + word * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


def pattern_bytes(seed, sector, count):
    return b''.join(pattern_word(seed, s, w).to_bytes(8, 'little')
                    for s in range(sector, sector + count) for w in range(SECTOR // 8))


def sectors_of(data, sector, count):
    return data[sector * SECTOR:(sector + count) * SECTOR]


def interrupts_added(out, what):
    m = re.search(r'^blk \w+: \d+ request\(s\), interrupts \+(\d+)$', out, re.M)
    check(m is not None, f'{what} reports its requests and interrupts')
    return int(m.group(1))


def check_pci(g, disks):
    out = g.command('pci')
    check(re.search(r'^pci: 00:[0-9a-f]{2}\.0 1af4:1044 class 00ff00 .*bar\d mem\S* 0x[0-9a-f]+ size 0x[0-9a-f]+.* '
                    r'virtio-rng$', out, re.M) is not None, 'pci lists virtio-rng as 1af4:1044 with its BARs')
    n = len(re.findall(r'^pci: 00:[0-9a-f]{2}\.0 1af4:1042 class 010000 .* virtio-blk$', out, re.M))
    check(n == disks, f'pci lists {disks} virtio-blk as 1af4:1042 (found {n})')


def check_info(g, idx, sectors, serial, ro, irq):
    out = g.command(f'blk {idx}')
    m = re.search(rf'^blk{idx}: \S+ capacity (\d+) sectors \((\d+) bytes\) blk_size 512 ro (\d) flush 1 '
                  rf"serial '(.*)'$", out, re.M)
    check(m is not None, f'blk {idx} answers')
    check(int(m.group(1)) == sectors, f'disk {idx} capacity is {sectors} sectors (got {m.group(1)})')
    check(m.group(4) == serial, f'disk {idx} serial is {serial!r} through GET_ID (got {m.group(4)!r})')
    check(int(m.group(3)) == ro, f'disk {idx} ro is {ro}')
    check(re.search(rf'^blk{idx}: features 0x[0-9a-f]+ irq {irq} ', out, re.M) is not None,
          f'disk {idx} uses {irq} interrupts')


def check_rng(g, irq):
    out = g.command('rng 64')
    m = re.search(r'^rng: 64 bytes in \d+ request\(s\):((?: [0-9a-f]{2}){32}) \.\.\.$', out, re.M)
    check(m is not None, 'rng 64 returns bytes (first 32 dumped)')
    check(re.search(r'^rng: check ok \(\d+ distinct byte values\)$', out, re.M) is not None,
          'rng bytes are not all equal')
    m = re.search(r'^rng: interrupts (\d+) \(\+(\d+)\) irq (\S+)$', out, re.M)
    check(m and int(m.group(2)) > 0 and m.group(3) == irq, f'rng counted {m and m.group(2)} {irq} interrupt(s)')
    out = g.command('rng 4096')
    check('rng: check ok' in out and 'rng: 4096 bytes' in out, 'rng 4096 returns the largest size')
    out = g.command('rng 4097')
    check('usage: rng N' in out, 'rng refuses more than 4096 bytes')


def check_prefilled(g, disk, image, what):
    want = fnv1a64(sectors_of(image, PREFILL_SECTOR, PREFILL_COUNT))
    out = g.command(f'blk {disk} read {PREFILL_SECTOR} {PREFILL_COUNT}')
    m = re.search(rf'^blk read: sector {PREFILL_SECTOR} count {PREFILL_COUNT} fnv1a64 0x([0-9a-f]{{16}})$', out, re.M)
    check(m and int(m.group(1), 16) == want, f'{what}: pre-filled sectors read back with FNV-1a 0x{want:016x}')


def write_flush_verify(g, disk, sector, count, seed, irq_expected=True):
    out = g.command(f'blk {disk} write {sector} {count} 0x{seed:x}')
    check(f'blk write: sector {sector} count {count} pattern 0x{seed:x} ok' in out, f'disk {disk}: write {count} sectors')
    n = interrupts_added(out, 'write')
    check(not irq_expected or n > 0, f'the write counted {n} interrupt(s)')
    out = g.command(f'blk {disk} flush')
    check('blk flush: ok' in out, f'disk {disk}: flush')
    out = g.command(f'blk {disk} verify {sector} {count} 0x{seed:x}')
    check('verify ok' in out, f'disk {disk}: verify reads the pattern back')


def scenario_rng_blk(g, args, images):
    path, image = images[0]
    sectors = len(image) // SECTOR
    check_pci(g, 1)
    check_rng(g, args.irq)
    check_info(g, 0, sectors, 'polyvm0', 0, args.irq)
    check_prefilled(g, 0, image, 'disk 0')

    # 300 sectors: three requests (64 KiB each at most), across a boundary.
    sector, count, seed = 1000, 300, 0xfeed
    write_flush_verify(g, 0, sector, count, seed)
    out = g.command(f'blk verify {sector} {count} 0x{seed + 1:x}')
    check(re.search(r'^blk verify: mismatch at byte offset 0 \(sector 1000\)', out, re.M) is not None,
          'verify with another pattern reports the first mismatching offset')

    out = g.command(f'blk read {sectors} 1', timeout=20)
    check(re.search(rf'^blk read: sector {sectors}: IOERR \(status 1\)$', out, re.M) is not None,
          'a read past the capacity answers IOERR')
    out = g.command(f'blk read {sectors - 2} 4', timeout=20)
    check('IOERR' in out, 'a read that runs past the capacity answers IOERR')
    check_prefilled(g, 0, image, 'after the errors')
    g.poweroff()

    with open(path, 'rb') as f:
        after = f.read()
    check(sectors_of(after, sector, count) == pattern_bytes(seed, sector, count),
          f'the image holds the pattern at sectors {sector}..{sector + count - 1}')
    expected = bytearray(image)
    expected[sector * SECTOR:(sector + count) * SECTOR] = pattern_bytes(seed, sector, count)
    check(after == bytes(expected), 'nothing else in the image changed')


def scenario_readonly(g, args, images):
    path, image = images[0]
    check_info(g, 0, len(image) // SECTOR, 'polyvm0', 1, args.irq)
    out = g.command('blk write 0 1 5')
    check('refused: the device is read-only' in out, 'the driver refuses a write to a VIRTIO_BLK_F_RO disk')
    out = g.command('blk write 0 1 5 force')
    check(re.search(r'^blk write: sector 0: IOERR \(status 1\)$', out, re.M) is not None,
          'the device answers IOERR to a forced write')
    check_prefilled(g, 0, image, 'readonly disk')
    g.poweroff()
    with open(path, 'rb') as f:
        check(f.read() == image, 'the read-only image is unchanged')


def scenario_two_disks(g, args, images):
    check_pci(g, 2)
    for i, (_, image) in enumerate(images):
        check_info(g, i, len(image) // SECTOR, f'polyvm{i}', 0, args.irq)
        check_prefilled(g, i, image, f'disk {i}')
    out = g.command('blk 2 read 0 1')
    check('blk: no disk 2' in out, 'a third disk does not exist')
    sector, count, seed = 10, 16, 0xabc
    write_flush_verify(g, 1, sector, count, seed)
    out = g.command(f'blk 0 verify {sector} {count} 0x{seed:x}')
    check('mismatch at byte offset 0' in out, 'disk 0 does not have what was written to disk 1')
    g.poweroff()
    with open(images[0][0], 'rb') as f:
        check(f.read() == images[0][1], 'disk 0 image unchanged')
    with open(images[1][0], 'rb') as f:
        after = f.read()
    expected = bytearray(images[1][1])
    expected[sector * SECTOR:(sector + count) * SECTOR] = pattern_bytes(seed, sector, count)
    check(after == bytes(expected), 'disk 1 image holds the pattern and nothing else changed')


def scenario_transitional(g, args, images):
    check(re.search(r'^virtio-blk0: refused: no usable common cfg capability$', g.out, re.M) is not None,
          'a legacy-only virtio-blk (no modern capabilities) is refused loudly at boot')
    out = g.command('pci')
    check(re.search(r'^pci: \S+ 1af4:1005 class 00ff00 bar0 io .* virtio-rng$', out, re.M) is not None,
          'pci lists the transitional virtio-rng (1af4:1005, legacy I/O BAR0)')
    check(re.search(r'^pci: \S+ 1af4:1001 class 010000 .* virtio-blk$', out, re.M) is not None,
          'pci lists the legacy-only virtio-blk (1af4:1001)')
    out = g.command('rng 16')
    check(re.search(r'^rng: 16 bytes in \d+ request\(s\):( [0-9a-f]{2}){16}$', out, re.M) is not None,
          'the transitional virtio-rng works through its modern interface (subsystem id 4)')
    out = g.command('blk')
    check('blk: no virtio-blk device' in out, 'the refused disk is not offered to the shell')
    g.poweroff()


SCENARIOS = {
    'rng-blk': (scenario_rng_blk, [8192]),
    'readonly': (scenario_readonly, [2048]),
    'two-disks': (scenario_two_disks, [8192, 4096]),
    'transitional': (scenario_transitional, [2048]),
}


def main():
    p = qt.arg_parser(__doc__, boot_timeout=60)
    p.add_argument('--scenario', choices=SCENARIOS, default='rng-blk')
    p.add_argument('--irq', choices=['msix', 'intx'], default='msix')
    args = p.parse_args()
    if qt.qemu_missing(args.qemu):
        return 77

    def body(run):
        scenario, sizes = SCENARIOS[args.scenario]
        vectors = ',vectors=0' if args.irq == 'intx' else ''
        argv = qt.qemu_argv(args, 128)
        # transitional: rng with both interfaces (device id 0x1005), blk legacy only.
        modern = 'disable-legacy=off' if args.scenario == 'transitional' else 'disable-legacy=on'
        if args.scenario != 'readonly':
            argv += ['-device', f'virtio-rng-pci,{modern}{vectors}']
        blk_modern = 'disable-modern=on,disable-legacy=off' if args.scenario == 'transitional' else 'disable-legacy=on'
        images = []
        for i, sectors in enumerate(sizes):
            path = run.path(f'disk{i}.img')
            images.append((path, make_image(path, sectors, seed=i + 1)))
            ro = ',readonly=on' if args.scenario == 'readonly' else ''
            argv += ['-drive', f'if=none,id=d{i},file={path},format=raw{ro}',
                     '-device', f'virtio-blk-pci,drive=d{i},{blk_modern},serial=polyvm{i}{vectors}']
        g = run.boot(argv, args.boot_timeout)
        if args.scenario != 'transitional':
            g.check_none_refused()
        scenario(g, args, images)
        return f'{args.scenario} ({args.irq})'

    return qt.run('testguest-virtio-', body)


if __name__ == '__main__':
    sys.exit(main())
