#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boots polyvm-testguest under QEMU (TCG) and checks its memory commands,
the ones memmgr's swap tests and benchmark drive (docs/testguest.md,
"Memory"): memfill, memcheck, memwrite, memtouch.

Checked, in one boot (-m 512 by default):
  - memfill 9 1, then QEMU's own copy of that MiB (monitor `pmemsave`): every
    word is the documented pattern (odd page numbers all zeros) and the
    FNV-1a the guest printed is the one the host computes;
  - memfill 7 200 / memcheck 7 200: ok with the same sum; memcheck with
    another seed fails on every pattern word and on no zero word;
  - memwrite 7 200 5 then 2: memcheck 7 200 7 is ok, memcheck 7 200 (no
    rounds) finds word 0 of every page off, and nothing else;
  - bad arguments (missing, not numbers, 0, more MiB than RAM, an unknown
    order) print an error naming the problem; the guest still answers;
  - one word of a pattern page and one of a zero page overwritten from the
    host (monitor `gpa2hva`, then /proc/PID/mem of QEMU, read back with
    `xp`): memcheck prints BAD at exactly those addresses with what was
    written and what the pattern wants, and FAILED 2;
  - memtouch seq and rand print a TSC rate, pages/s and p50 <= p99 <= max;
  - memfill/memcheck over every MiB the guest offers; then poweroff.

Every wait is bounded; on failure QEMU is killed and the transcript printed.
Exit status 77 (skip) when QEMU is not installed.
"""
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import qemutest as qt  # noqa: E402
from qemutest import M64, MIB, Failure, check, monitor_command  # noqa: E402

PAGE = 4096
FNV_OFFSET = 0xcbf29ce484222325
FNV_PRIME = 0x100000001b3
SEED_MUL = 0xd1b54a32d192ed03
CMD_TIMEOUT = 120


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


def pattern_word(seed, paddr):
    """guest/mem-user.c's mem_pattern_word()."""
    if (paddr >> 12) & 1:
        return 0
    return mix64(((seed * SEED_MUL) & M64) ^ paddr)


def fnv1a_words(words):
    h = FNV_OFFSET
    for w in words:
        h = ((h ^ w) * FNV_PRIME) & M64
    return h


def parse_region(out, cmd):
    m = re.search(rf'^{cmd}: region 0x([0-9a-f]+)-0x([0-9a-f]+), (\d+) pages', out, re.M)
    if not m:
        raise Failure(f'{cmd} printed no region line:\n{out}')
    return int(m.group(1), 16), int(m.group(2), 16), int(m.group(3))


def memfill(g, seed, mib):
    out = g.command(f'memfill {seed} {mib}', CMD_TIMEOUT)
    m = re.search(rf'^memfill: {seed} {mib} sum 0x([0-9a-f]{{16}})$', out, re.M)
    if not m:
        raise Failure(f'memfill {seed} {mib} printed no sum:\n{out}')
    base, end, pages = parse_region(out, 'memfill')
    check(end - base == mib * MIB and pages == mib * MIB // PAGE,
          f'memfill {seed} {mib}: region 0x{base:x}-0x{end:x}, {pages} pages')
    return int(m.group(1), 16), base


def memcheck(g, args):
    """Returns ('ok', sum, []) or ('FAILED', sum, [(paddr, got, want)...], count)."""
    out = g.command(f'memcheck {args}', CMD_TIMEOUT)
    m = re.search(r'^memcheck: ok sum 0x([0-9a-f]{16})$', out, re.M)
    if m:
        return 'ok', int(m.group(1), 16), [], 0
    bad = [(int(a, 16), int(b, 16), int(c, 16)) for a, b, c in
           re.findall(r'^memcheck: BAD at 0x([0-9a-f]+) got 0x([0-9a-f]{16}) want 0x([0-9a-f]{16})$', out, re.M)]
    m = re.search(r'^memcheck: FAILED (\d+) bad word\(s\) of (\d+), sum 0x([0-9a-f]{16})$', out, re.M)
    if not m:
        raise Failure(f'memcheck {args} printed neither ok nor FAILED:\n{out}')
    return 'FAILED', int(m.group(3), 16), bad, int(m.group(1))


def qemu_pid_and_hva(monitor, paddr):
    out = monitor_command(monitor, f'gpa2hva 0x{paddr:x}')
    m = re.search(r'Host virtual address for 0x[0-9a-f]+ \(.*\) is 0x([0-9a-f]+)', out)
    if not m:
        raise Failure(f'gpa2hva 0x{paddr:x} gave no address: {out!r}')
    return int(m.group(1), 16)


def monitor_xp(monitor, paddr):
    out = monitor_command(monitor, f'xp /1gx 0x{paddr:x}')
    m = re.search(r'[0-9a-f]+: 0x([0-9a-f]+)', out)
    if not m:
        raise Failure(f'xp 0x{paddr:x} gave no value: {out!r}')
    return int(m.group(1), 16)


def poke(g, monitor, paddr, value):
    """Overwrites one guest word from outside the guest, as a broken swap would."""
    hva = qemu_pid_and_hva(monitor, paddr)
    with open(f'/proc/{g.proc.pid}/mem', 'r+b', buffering=0) as f:
        f.seek(hva)
        f.write(struct.pack('<Q', value))
    got = monitor_xp(monitor, paddr)
    check(got == value, f'the host wrote 0x{value:016x} at guest 0x{paddr:x} (xp reads 0x{got:016x})')


def scenario(g, args):
    tmp = args.tmpdir

    # The pattern and the sum as documented, from QEMU's copy of guest RAM.
    s1, base = memfill(g, 9, 1)
    dump = os.path.join(tmp, 'mem.bin')
    monitor_command(args.monitor, f'pmemsave 0x{base:x} {MIB} "{dump}"')
    with open(dump, 'rb') as f:
        data = f.read()
    check(len(data) == MIB, f'pmemsave saved 1 MiB from 0x{base:x}')
    words = struct.unpack(f'<{MIB // 8}Q', data)
    wrong = [i for i, w in enumerate(words) if w != pattern_word(9, base + 8 * i)]
    check(not wrong, f'every word of the MiB is the documented pattern ({len(wrong)} differ)')
    check(all(w == 0 for i, w in enumerate(words) if ((base + 8 * i) >> 12) & 1) and
          any(words[:PAGE // 8]), 'odd page numbers hold zeros only, even ones the pattern')
    check(fnv1a_words(words) == s1, f'memfill sum 0x{s1:016x} is FNV-1a 64 over the words as the host computes it')

    s7, base = memfill(g, 7, 200)
    st, s, bad, n = memcheck(g, '7 200')
    check(st == 'ok' and s == s7, f'memcheck 7 200: ok with memfill\'s sum 0x{s7:016x} (got {st} 0x{s:016x})')
    pattern_words = 200 * MIB // 8 // 2
    st, s, bad, n = memcheck(g, '8 200')
    check(st == 'FAILED' and pattern_words - 16 <= n <= pattern_words and len(bad) == 8 and
          all(((a >> 12) & 1) == 0 for a, _, _ in bad),
          f'memcheck with another seed: {n} bad words, all on pattern pages (of {pattern_words})')
    check(bad[0] == (base, pattern_word(7, base), pattern_word(8, base)),
          'the first BAD line names the first word, what it holds and what seed 8 wants')

    out = g.command('memwrite 7 200 5', CMD_TIMEOUT)
    check(re.search(r'^memwrite: running 5 rounds over 51200 pages$', out, re.M) is not None and
          re.search(r'^memwrite: done 5 rounds over 51200 pages, \d+ ms$', out, re.M) is not None,
          'memwrite 7 200 5 says when it starts and when it is done')
    out = g.command('memwrite 7 200 2', CMD_TIMEOUT)
    check('memwrite: done 2 rounds' in out, 'memwrite 7 200 2')
    st, s, bad, n = memcheck(g, '7 200 7')
    check(st == 'ok', f'memcheck 7 200 7 after 5 + 2 rounds: {st}')
    st, s2, bad, n = memcheck(g, '7 200')
    check(st == 'FAILED' and n == 51200 and all(a % PAGE == 0 and got == (want + 7) & M64 for a, got, want in bad),
          f'memcheck without the rounds: word 0 of each of the 51200 pages is 7 ahead ({n} bad)')
    check(bad[1] == (base + PAGE, 7, 0), 'a zero page\'s word 0 counted 7 too')
    st, s3, bad, n = memcheck(g, '7 200 6')
    check(st == 'FAILED' and n == 51200, 'memcheck with one round too few fails on every page')

    # Bad arguments: a clear error, never a crash.
    for cmd, want in [
        ('memfill', 'memfill: usage: memfill SEED MIB'),
        ('memfill 7', 'memfill: usage: memfill SEED MIB'),
        ('memfill 7 200 1', 'memfill: usage: memfill SEED MIB'),
        ('memfill x7 200', "memfill: bad SEED 'x7': not a number"),
        ('memfill 7 20O', "memfill: bad MIB '20O': not a number"),
        ('memfill 18446744073709551616 1', "memfill: bad SEED '18446744073709551616': not a number"),
        ('memfill 7 0', 'memfill: MIB 0 out of range: 1..'),
        ('memfill 7 100000', 'memfill: MIB 100000 out of range: 1..'),
        ('memfill 7 0xffffffffffffffff', 'memfill: MIB 18446744073709551615 out of range: 1..'),
        ('memcheck 7', 'memcheck: usage: memcheck SEED MIB [ROUNDS]'),
        ('memcheck 7 200 -1', "memcheck: bad ROUNDS '-1': not a number"),
        ('memcheck 7 513', 'memcheck: MIB 513 out of range'),
        ('memwrite 7 200', 'memwrite: usage: memwrite SEED MIB ROUNDS'),
        ('memwrite 7 200 0', 'memwrite: ROUNDS must be at least 1'),
        ('memwrite 7 4096 1', 'memwrite: MIB 4096 out of range'),
        ('memtouch seq 200', 'memtouch: usage: memtouch seq|rand MIB COUNT'),
        ('memtouch sideways 200 10', "memtouch: the order must be seq or rand, not 'sideways'"),
        ('memtouch rand 200 0', 'memtouch: COUNT 0 out of range: 1..4294967296'),
        ('memtouch rand 200 4294967297', 'memtouch: COUNT 4294967297 out of range'),
        ('memtouch seq 600 10', 'memtouch: MIB 600 out of range'),
        ('memtouch seq 1 ten', "memtouch: bad COUNT 'ten': not a number"),
    ]:
        out = g.command(cmd)
        check(want in out, f'{cmd!r} -> {want!r}')
    m = re.search(r'out of range: 1\.\.(\d+) MiB fit in RAM above the guest image \(0x([0-9a-f]+)-0x([0-9a-f]+)\)',
                  g.command('memfill 7 100000'))
    check(m is not None, 'the error says how many MiB fit and where')
    max_mib, win_base = int(m.group(1)), int(m.group(2), 16)
    check(win_base == base and args.mem - 8 <= max_mib < args.mem,
          f'{max_mib} MiB fit from 0x{win_base:x} with -m {args.mem}')
    out = g.command('cpus')
    check(re.search(r'^cpus: \d+$', out, re.M) is not None, 'the guest still answers after the bad arguments')
    st, s, bad, n = memcheck(g, '7 200 7')
    check(st == 'ok', 'and the memory is as memwrite left it')

    # One word of a pattern page and one of a zero page, changed from outside.
    a1, a2 = base + 0x122458, base + 0x4577f8
    check(not (a1 >> 12) & 1 and (a2 >> 12) & 1, 'one address on a pattern page, one on a zero page')
    poke(g, args.monitor, a1, 0x0123456789abcdef)
    poke(g, args.monitor, a2, 0xdeadbeef)
    st, s, bad, n = memcheck(g, '7 200 7')
    check(st == 'FAILED' and n == 2 and bad == [(a1, 0x0123456789abcdef, pattern_word(7, a1)), (a2, 0xdeadbeef, 0)],
          f'memcheck: BAD at 0x{a1:x} and 0x{a2:x} with the values written and wanted, FAILED 2 ({bad}, {n})')

    # memtouch: the guest-driven fault benchmark (no faults here: all resident).
    for order, count in (('seq', 51200), ('rand', 51200), ('rand', 100000)):
        out = g.command(f'memtouch {order} 200 {count}', CMD_TIMEOUT)
        m1 = re.search(rf'^memtouch: {order} 200 MiB from 0x([0-9a-f]+), tsc (\d+) kHz, max (\d+)\.(\d{{3}}) us$',
                       out, re.M)
        m2 = re.search(r'^memtouch: (\d+) pages, (\d+) pages/s, p50 (\d+)\.(\d{3}) us, p99 (\d+)\.(\d{3}) us$',
                       out, re.M)
        check(m1 is not None and m2 is not None, f'memtouch {order} 200 {count} prints its two lines')
        khz, mx = int(m1.group(2)), int(m1.group(3)) * 1000 + int(m1.group(4))
        n, rate = int(m2.group(1)), int(m2.group(2))
        p50, p99 = int(m2.group(3)) * 1000 + int(m2.group(4)), int(m2.group(5)) * 1000 + int(m2.group(6))
        check(int(m1.group(1), 16) == base and 100_000 <= khz <= 10_000_000, f'tsc {khz} kHz, region at 0x{base:x}')
        check(n == count and rate > 1000 and 0 < p50 <= p99 <= mx,
              f'memtouch {order}: {n} pages, {rate} pages/s, p50 {p50} ns <= p99 {p99} ns <= max {mx} ns')
        print(f'figure: memtouch {order} 200 {count} under TCG: {rate} pages/s, p50 {p50 / 1000:.3f} us, '
              f'p99 {p99 / 1000:.3f} us, max {mx / 1000:.3f} us')

    # All the RAM the guest offers, up to its last page.
    s, _ = memfill(g, 11, max_mib)
    st, s2, bad, n = memcheck(g, f'11 {max_mib}')
    check(st == 'ok' and s2 == s, f'memfill/memcheck 11 {max_mib} (all of it): ok, same sum')

    g.poweroff('poweroff makes QEMU exit by itself')


def main():
    p = qt.arg_parser(__doc__, boot_timeout=120)
    p.add_argument('--mem', type=int, default=512, help='MiB (at least 256)')
    args = p.parse_args()
    if qt.qemu_missing(args.qemu):
        return 77

    def body(run):
        args.tmpdir = run.dir
        args.monitor = run.path('monitor.sock')
        g = run.boot(qt.qemu_argv(args, args.mem) + qt.monitor_option(args.monitor), args.boot_timeout)
        scenario(g, args)
        return 'memory commands'

    return qt.run('testguest-mem-', body, errors=(Failure, OSError))


if __name__ == '__main__':
    sys.exit(main())
