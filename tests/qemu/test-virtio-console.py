#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boots polyvm-testguest under QEMU (TCG) with QEMU's virtio-serial-pci
(modern only) and one virtconsole port on a Unix socket, and checks the
guest's virtio-console driver from the host end of that socket.

QEMU offers MULTIPORT (max_ports 31 by default); the guest does not
negotiate it, and QEMU then opens port 0, where a virtconsole sits, at
DRIVER_OK. Steps: `vcon` shows the device; bytes the host writes arrive in
`vcon read` (first a line, which also proves QEMU accepted our
connection; then 1500 bytes spanning several 512-byte receive buffers,
with every non-printable byte escaped); `vcon write TEXT` appears on the
socket as TEXT and a newline; `vcon read` with nothing sent times out
with 0 bytes.

Exit status 77 (skip) when QEMU is not installed.
"""
import argparse
import importlib.util
import os
import re
import select
import socket
import sys
import tempfile
import time

_spec = importlib.util.spec_from_file_location(
    'testguest', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'test-testguest.py'))
testguest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(testguest)
Guest, Failure, check = testguest.Guest, testguest.Failure, testguest.check


def escaped(data):
    """guest/virtio-console.c's rendering of received bytes."""
    return ''.join(chr(b) if 0x20 <= b < 0x7f and b != 0x5c else f'\\x{b:02x}' for b in data)


def recv_exactly(s, n, timeout, what):
    data = b''
    deadline = time.monotonic() + timeout
    while len(data) < n:
        left = deadline - time.monotonic()
        r, _, _ = select.select([s], [], [], max(left, 0))
        if not r:
            raise Failure(f'timed out waiting for {what} ({len(data)} of {n} bytes: {data!r})')
        chunk = s.recv(4096)
        if not chunk:
            raise Failure(f'the socket closed while waiting for {what}')
        data += chunk
    return data


def scenario(g, args, sock_path):
    out = g.command('vcon')
    m = re.search(r'^vcon: \S+ features (0x[0-9a-f]+) \(offered (0x[0-9a-f]+)\) irq (\S+) ', out, re.M)
    check(m is not None, 'vcon shows the device')
    check(not int(m.group(1), 16) & 2, 'MULTIPORT is not negotiated')
    check(m.group(3) == args.irq or (args.irq == 'msix' and m.group(3) == 'msix-shared'),
          f'vcon uses {args.irq} interrupts ({m.group(3)})')

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(sock_path)
        line = b'host says hi\n'
        s.sendall(line)
        out = g.command(f'vcon read {len(line)} 5000')
        check(f'vcon read: {len(line)} bytes: {escaped(line)}\n' in out,
              f'the host\'s {len(line)} bytes arrive in vcon read')

        # Several receive buffers' worth, every byte value.
        blob = bytes(range(256)) * 5 + b'end of blob'
        s.sendall(blob)
        out = g.command(f'vcon read {len(blob)} 10000', timeout=30)
        check(f'vcon read: {len(blob)} bytes: {escaped(blob)}\n' in out,
              f'{len(blob)} bytes (all 256 values, across 512-byte buffers) arrive intact and in order')

        text = 'hello from the guest over virtio-console'
        out = g.command(f'vcon write {text}')
        check(f'vcon write: {len(text) + 1} bytes' in out, 'vcon write reports the bytes sent')
        got = recv_exactly(s, len(text) + 1, 10, 'the guest\'s text on the socket')
        check(got == (text + '\n').encode(), f'the guest\'s text appears on the host socket ({got!r})')

        out = g.command('vcon read 1 300')
        check('vcon read: 0 bytes (timeout): \n' in out, 'vcon read with nothing sent times out with 0 bytes')

        out = g.command('vcon')
        m = re.search(r'^vcon: received (\d+) bytes \(0 waiting\) sent (\d+) bytes$', out, re.M)
        check(m and int(m.group(1)) == len(line) + len(blob) and int(m.group(2)) == len(text) + 1,
              'vcon counts what went each way')
        m = re.search(r'irqs rx (\d+) tx (\d+)', out)
        check(m and int(m.group(1)) > 0 and int(m.group(2)) > 0, 'interrupts were counted on both queues')

    g.type_only('poweroff')
    status = g.wait_exit(30, 'poweroff')
    check('poweroff: failed' not in g.out, f'poweroff makes QEMU exit (status {status})')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--qemu', default='qemu-system-x86_64')
    p.add_argument('--kernel', required=True)
    p.add_argument('--machine', default='q35')
    p.add_argument('--smp', type=int, default=1)
    p.add_argument('--irq', choices=['msix', 'intx'], default='msix', help='intx: vectors=0, no MSI-X')
    p.add_argument('--boot-timeout', type=float, default=60)
    args = p.parse_args()

    if not args.qemu or not os.access(args.qemu, os.X_OK) and not any(
            os.access(os.path.join(d, args.qemu), os.X_OK) for d in os.environ.get('PATH', '').split(':')):
        print(f'SKIP: {args.qemu or "qemu-system-x86_64"} not found')
        return 77

    tmpdir = tempfile.TemporaryDirectory(prefix='testguest-vcon-')
    sock_path = os.path.join(tmpdir.name, 'console.sock')
    vectors = ',vectors=0' if args.irq == 'intx' else ''
    argv = [args.qemu, '-accel', 'tcg', '-M', args.machine, '-smp', str(args.smp), '-m', '128',
            '-nographic', '-no-reboot', '-nic', 'none', '-kernel', args.kernel, '-append', 'console=ttyS0',
            '-device', f'virtio-serial-pci,disable-legacy=on{vectors}',
            '-chardev', f'socket,id=c0,path={sock_path},server=on,wait=off',
            '-device', 'virtconsole,chardev=c0']
    print('running:', ' '.join(argv))
    g = Guest(argv)
    try:
        g.expect(re.escape(testguest.MARKER) + '\n', args.boot_timeout, 'the ready marker')
        print(f'ok: marker after {time.monotonic() - g.start:.2f}s')
        m = re.search(r'^virtio-console: \S+ features (0x[0-9a-f]+) \(offered (0x[0-9a-f]+)\)', g.out, re.M)
        check(m is not None, 'virtio-console came up')
        print(f'info: virtio-console features {m.group(1)} of offered {m.group(2)}')
        scenario(g, args, sock_path)
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
    print(f'PASS: virtio-console on {args.machine} ({args.irq}) in {time.monotonic() - g.start:.2f}s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
