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
import os
import re
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import qemutest as qt  # noqa: E402
from qemutest import Failure, check  # noqa: E402


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

    g.poweroff()


def main():
    p = qt.arg_parser(__doc__, boot_timeout=60)
    p.add_argument('--irq', choices=['msix', 'intx'], default='msix', help='intx: vectors=0, no MSI-X')
    args = p.parse_args()
    if qt.qemu_missing(args.qemu):
        return 77

    def body(run):
        sock_path = run.path('console.sock')
        vectors = ',vectors=0' if args.irq == 'intx' else ''
        argv = qt.qemu_argv(args, 128) + [
            '-device', f'virtio-serial-pci,disable-legacy=on{vectors}',
            '-chardev', f'socket,id=c0,path={sock_path},server=on,wait=off',
            '-device', 'virtconsole,chardev=c0']
        g = run.boot(argv, args.boot_timeout)
        g.check_came_up('virtio-console')
        scenario(g, args, sock_path)
        return f'virtio-console on {args.machine} ({args.irq})'

    return qt.run('testguest-vcon-', body)


if __name__ == '__main__':
    sys.exit(main())
