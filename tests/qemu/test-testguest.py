#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boots polyvm-testguest under QEMU (TCG) and checks what it reports.

The guest reads e820, ACPI and the CPU count from QEMU's firmware, so its
answers are checked against the QEMU command line: `cpus` must equal -smp,
`mem` must be within 1 MiB below -m and equal the usable lines of `e820`,
`acpi` must list FACP, APIC and DSDT, `poweroff` (ACPI S5) and `reboot`
(with -no-reboot) must make QEMU exit by itself. On microvm (hardware-reduced
ACPI) S5 goes through the FADT's SLEEP_CONTROL_REG instead of PM1a_CNT.

Scenarios:
  shell             marker, help, cpus, mem, e820, acpi, unknown command,
                    user (CPL 3), then poweroff
  reboot            marker, then reboot
  cmdline-poweroff  tg.poweroff=1: QEMU exits right after the marker
  powerbutton       `pm` shows PWRBTN_EN set, then `system_powerdown` on the
                    QEMU monitor (PWRBTN_STS + SCI): the guest must say
                    `power button pressed` and QEMU must exit by itself

Every wait is bounded; on failure QEMU is killed and the transcript printed.
Exit status 77 (skip) when QEMU is not installed.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import qemutest as qt  # noqa: E402
from qemutest import MIB, check  # noqa: E402

PM1_PWRBTN = 1 << 8


def scenario_shell(g, args):
    out = g.command('help')
    check('poweroff' in out and 'cpus' in out, 'help lists the commands')

    out = g.command('cpus')
    m = re.search(r'^cpus: (\d+)$', out, re.M)
    check(m and int(m.group(1)) == args.smp, f'cpus reports {args.smp} (got {m and m.group(1)})')

    out = g.command('mem')
    m = re.search(r'^mem: (\d+)$', out, re.M)
    check(m is not None, 'mem answers')
    mem = int(m.group(1))
    limit = args.mem * MIB
    check(limit - MIB <= mem <= limit, f'mem {mem} is within 1 MiB below -m {args.mem}M')

    out = g.command('e820')
    usable = 0
    lines = re.findall(r'^e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] (.*)$', out, re.M)
    for start, end, kind in lines:
        if kind == 'usable':
            usable += int(end, 16) - int(start, 16) + 1
    check(len(lines) >= 2, f'e820 prints the map ({len(lines)} entries)')
    check(usable == mem, f'e820 usable entries add up to mem ({usable})')

    out = g.command('acpi')
    for sig in ('FACP', 'APIC', 'DSDT'):
        check(re.search(rf'^acpi: {sig} 0x[0-9a-f]+ len \d+$', out, re.M) is not None, f'acpi lists {sig}')
    check('BAD CHECKSUM' not in out, 'every ACPI checksum is good')

    out = g.command('frobnicate now')
    check('unknown command: frobnicate' in out, 'an unknown command is reported')

    out = g.command('user', timeout=60)
    check(re.search(r'^user: cpl=3 loop=\d+ sum=0x[0-9a-f]+ ucalls=1$', out, re.M) is not None,
          'user runs a loop at CPL 3 and returns through ud2')

    g.poweroff('poweroff makes QEMU exit by itself')


def scenario_reboot(g, args):
    g.command('help')
    g.type_only('reboot')
    status = g.wait_exit(30, 'reboot')
    check('reboot: failed' not in g.out, f'reboot makes QEMU with -no-reboot exit (status {status})')


def scenario_powerbutton(g, args):
    out = g.command('pm')
    m = re.search(r'^pm: PM1a_STS 0x([0-9a-f]+) PM1a_EN 0x([0-9a-f]+) PM1a_CNT 0x([0-9a-f]+)$', out, re.M)
    check(m is not None, 'pm prints PM1a_STS, PM1a_EN and PM1a_CNT')
    sts, en = int(m.group(1), 16), int(m.group(2), 16)
    check(en & PM1_PWRBTN, f'PWRBTN_EN is set (PM1a_EN 0x{en:04x})')
    check(not sts & PM1_PWRBTN, f'PWRBTN_STS is clear (PM1a_STS 0x{sts:04x})')

    qt.monitor_command(args.monitor, 'system_powerdown')
    g.expect(r'power button pressed\n', 30, '"power button pressed" after system_powerdown')
    print('ok: the guest saw the power button')
    status = g.wait_exit(30, 'the power button')
    check('poweroff: failed' not in g.out, f'the power button makes QEMU exit by itself (status {status})')


def scenario_cmdline_poweroff(g, args):
    status = g.wait_exit(30, 'the marker with tg.poweroff=1')
    check(re.search(r'^poweroff: ', g.out[g.pos:], re.M) is not None and 'poweroff: failed' not in g.out,
          f'tg.poweroff=1 powers off right after the marker (status {status})')


SCENARIOS = {
    'shell': scenario_shell,
    'reboot': scenario_reboot,
    'cmdline-poweroff': scenario_cmdline_poweroff,
    'powerbutton': scenario_powerbutton,
}


def main():
    p = qt.arg_parser(__doc__, boot_timeout=120)
    p.add_argument('--mem', type=int, default=256, help='MiB')
    p.add_argument('--scenario', choices=SCENARIOS, default='shell')
    args = p.parse_args()
    if qt.qemu_missing(args.qemu):
        return 77

    def body(run):
        cmdline = 'tg.poweroff=1' if args.scenario == 'cmdline-poweroff' else 'console=ttyS0'
        argv = qt.qemu_argv(args, args.mem, append=cmdline)
        args.monitor = run.path('monitor.sock')
        if args.scenario == 'powerbutton':
            argv += qt.monitor_option(args.monitor)
        g = run.boot(argv, args.boot_timeout)
        m = re.search(r'^cmdline: (.*)$', g.out, re.M)
        check(m and m.group(1) == cmdline, f'the guest sees the command line {cmdline!r}')
        SCENARIOS[args.scenario](g, args)
        return args.scenario

    return qt.run('testguest-', body)


if __name__ == '__main__':
    sys.exit(main())
