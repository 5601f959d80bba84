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
import argparse
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import time

MARKER = 'POLYVM-GUEST-READY'
PROMPT = 'tg> '
MIB = 1 << 20
PM1_PWRBTN = 1 << 8


class Failure(Exception):
    pass


class Guest:
    def __init__(self, argv):
        self.argv = argv
        self.out = ''
        self.pos = 0
        self.start = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        os.set_blocking(self.proc.stdout.fileno(), False)

    def _read(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], max(timeout, 0))
        if not r:
            return True
        data = self.proc.stdout.read()
        if not data:
            return False  # EOF: QEMU is gone
        self.out += data.decode('latin-1').replace('\r', '')
        return True

    def expect(self, pattern, timeout, what):
        """Waits for a regex after the last match; returns the match."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.out, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f'timed out after {timeout}s waiting for {what}')
            if not self._read(left) and not rx.search(self.out, self.pos):
                raise Failure(f'QEMU exited (status {self.proc.wait()}) while waiting for {what}')

    def command(self, cmd, timeout=20):
        """Types a line; returns the output between its echo and the next prompt."""
        self.proc.stdin.write((cmd + '\r').encode())
        self.proc.stdin.flush()
        self.expect(re.escape(cmd) + '\n', timeout, f'the echo of {cmd!r}')
        begin = self.pos
        self.expect(re.escape(PROMPT), timeout, f'the prompt after {cmd!r}')
        return self.out[begin:self.pos - len(PROMPT)]

    def type_only(self, cmd):
        self.proc.stdin.write((cmd + '\r').encode())
        self.proc.stdin.flush()

    def wait_exit(self, timeout, what):
        """QEMU must exit by itself; drains its output meanwhile."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f'QEMU still running {timeout}s after {what}')
            if not self._read(min(left, 0.5)):
                break
        try:
            status = self.proc.wait(max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            raise Failure(f'QEMU did not exit after {what}')
        while self._read(0):
            pass
        return status

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def check(cond, msg):
    if not cond:
        raise Failure(msg)
    print(f'ok: {msg}')


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

    g.type_only('poweroff')
    status = g.wait_exit(30, 'poweroff')
    check('poweroff: failed' not in g.out, f'poweroff makes QEMU exit by itself (status {status})')


def scenario_reboot(g, args):
    g.command('help')
    g.type_only('reboot')
    status = g.wait_exit(30, 'reboot')
    check('reboot: failed' not in g.out, f'reboot makes QEMU with -no-reboot exit (status {status})')


def monitor_command(path, cmd, timeout=10):
    """Sends one HMP command on QEMU's monitor socket; returns what came back."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall((cmd + '\n').encode())
        reply = b''
        deadline = time.monotonic() + timeout
        # The banner, the echo, then the next prompt: the command ran.
        while reply.count(b'(qemu)') < 2 and time.monotonic() < deadline:
            try:
                data = s.recv(4096)
            except (socket.timeout, ConnectionError):
                break
            if not data:
                break  # QEMU may already be gone, which is fine here
            reply += data
        return reply.decode('latin-1')


def scenario_powerbutton(g, args):
    out = g.command('pm')
    m = re.search(r'^pm: PM1a_STS 0x([0-9a-f]+) PM1a_EN 0x([0-9a-f]+) PM1a_CNT 0x([0-9a-f]+)$', out, re.M)
    check(m is not None, 'pm prints PM1a_STS, PM1a_EN and PM1a_CNT')
    sts, en = int(m.group(1), 16), int(m.group(2), 16)
    check(en & PM1_PWRBTN, f'PWRBTN_EN is set (PM1a_EN 0x{en:04x})')
    check(not sts & PM1_PWRBTN, f'PWRBTN_STS is clear (PM1a_STS 0x{sts:04x})')

    monitor_command(args.monitor, 'system_powerdown')
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
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--qemu', default='qemu-system-x86_64')
    p.add_argument('--kernel', required=True)
    p.add_argument('--machine', default='q35')
    p.add_argument('--smp', type=int, default=1)
    p.add_argument('--mem', type=int, default=256, help='MiB')
    p.add_argument('--scenario', choices=SCENARIOS, default='shell')
    p.add_argument('--boot-timeout', type=float, default=120)
    args = p.parse_args()

    if not args.qemu or not os.access(args.qemu, os.X_OK) and not any(
            os.access(os.path.join(d, args.qemu), os.X_OK) for d in os.environ.get('PATH', '').split(':')):
        print(f'SKIP: {args.qemu or "qemu-system-x86_64"} not found')
        return 77

    cmdline = 'tg.poweroff=1' if args.scenario == 'cmdline-poweroff' else 'console=ttyS0'
    argv = [args.qemu, '-accel', 'tcg', '-M', args.machine, '-smp', str(args.smp), '-m', str(args.mem),
            '-nographic', '-no-reboot', '-nic', 'none', '-kernel', args.kernel, '-append', cmdline]
    tmpdir = tempfile.TemporaryDirectory(prefix='testguest-')
    args.monitor = os.path.join(tmpdir.name, 'monitor.sock')
    if args.scenario == 'powerbutton':
        argv += ['-monitor', f'unix:{args.monitor},server=on,wait=off']
    print('running:', ' '.join(argv))

    g = Guest(argv)
    try:
        g.expect(re.escape(MARKER) + '\n', args.boot_timeout, 'the ready marker')
        print(f'ok: marker after {time.monotonic() - g.start:.2f}s')
        m = re.search(r'^cmdline: (.*)$', g.out, re.M)
        check(m and m.group(1) == cmdline, f'the guest sees the command line {cmdline!r}')
        SCENARIOS[args.scenario](g, args)
    except Failure as e:
        g.kill()
        print('--- guest output ---')
        print(g.out)
        print('--- end ---')
        print(f'FAIL: {e}')
        return 1
    finally:
        g.kill()
        tmpdir.cleanup()
    print(f'PASS: {args.scenario} in {time.monotonic() - g.start:.2f}s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
