#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boots polyvm-testguest under QEMU (TCG) with vhost-user devices whose
back-ends are polyvm's own jailed device processes: the test starts a
private bus (dbus-daemon with build/dbus/polyvm-bus.conf, devmgr activated
on it), one polyvm-vhost-user-bridge per device (it creates the device
through devmgr's CreateDevice and hands it QEMU's guest memory, kick and
call fds), then QEMU with -device vhost-user-*-pci on the bridges' sockets.
The guest's drivers talk to QEMU's virtio-pci transport; every ring buffer
they get back was filled by the polyvm device process.

Scenarios (the checks are test-virtio.py's, imported, not copied):
  rng      `pci` lists virtio-rng (1af4:1044); `rng 64` returns bytes with
           interrupts counted in the guest
  rng-blk  virtio-rng and virtio-blk (raw image made here, serial polyvm0):
           test-virtio.py's rng-blk scenario: capacity and serial, write +
           flush + verify, a wrong pattern mismatches, pre-filled sectors
           read back, reads past the end answer IOERR, and afterwards the
           image on the host holds exactly the pattern
Around them: each device is `active` on the bus with the bridge's pid,
runs jailed (seccomp filter, no new privileges, no capabilities, not
root) while QEMU runs, the bridge logged the device starting and its used
index moving; once the guest powers off and QEMU exits, each bridge exits
0 by itself and the device process is gone.
--irq intx starts QEMU's devices with vectors=0 (the guest then counts
INTx interrupts, raised by QEMU from the same call eventfds).

Exit status 77 (skip) when QEMU is not installed.
"""
import os
import re
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import qemutest as qt  # noqa: E402
from qemutest import check  # noqa: E402

virtio = qt.load_test('test-virtio.py')


def scenario_rng(g, args, images):
    virtio.check_pci(g, 0)
    virtio.check_rng(g, args.irq)
    g.poweroff()


def scenario_big_ram(g, args, images):
    """4 GiB: QEMU's q35 puts RAM above 4 GiB at memfd offset 2 GiB, polyvm's
    layout at 3 GiB; the bridge must refuse the memory table, loudly."""
    br = args.bridges[0]
    status = br.wait(args.boot_timeout)
    log = br.text()
    check(status == 1, f'the bridge exits 1 on a memory table it cannot map (status {status})')
    check(re.search(r'memory region \d+ \(guest 0x100000000 size 0x80000000\) is at file offset 0x80000000, but '
                    r"polyvm's layout \(lib/guest-ram.h\) has no room for it in a 4294967296-byte file; "
                    r'give the guest at most 2 GiB of RAM', log) is not None,
          'the bridge names the region, both offsets and the fix')
    check(qt.wait_gone(br.pid), 'the bridge destroyed the device on its way out')
    g.kill()


SCENARIOS = {
    'rng': (scenario_rng, []),
    'rng-blk': (virtio.scenario_rng_blk, [8192]),
    'big-ram': (scenario_big_ram, []),
}

HEADER = struct.Struct('=III')  # request, flags, size: host byte order
VERSION, REPLY = 0x1, 0x4


def message(request, payload=b'', flags=VERSION, size=None):
    return HEADER.pack(request, flags, len(payload) if size is None else size) + payload


# [what, the bytes a broken front-end sends, what the bridge must log]
MALFORMED = [
    ('a header of version 2', message(1, flags=2), r'GET_FEATURES \(1\): version 2, expected 1'),
    ('a reply instead of a request', message(1, flags=VERSION | REPLY), r'a reply where a request belongs'),
    ('an unknown request', message(99), r'request unknown \(99\) is not supported by the bridge'),
    ('a request the bridge did not offer', message(36), r'request GET_MAX_MEM_SLOTS \(36\) is not supported'),
    ('SET_FEATURES with 4 payload bytes', message(2, bytes(4)), r'SET_FEATURES with a 4-byte payload, expected 8'),
    ('a payload larger than any request', message(5, size=5000), r'payload of 5000 bytes, at most \d+ allowed'),
    ('a payload cut short', message(8, bytes(4), size=8), r'SET_VRING_NUM: truncated payload: Connection timed out'),
    ('features the device did not offer', message(2, struct.pack('=Q', 1 << 63)),
     r'has bits 0x8000000000000000 the device did not offer'),
    ('a vring the device does not have', message(8, struct.pack('=II', 7, 16)), r'for vring 7; the device has 1 queue'),
    ('a non-zero ring base', message(10, struct.pack('=II', 0, 5)), r'resuming a ring is not supported'),
    ('SET_VRING_ADDR before SET_MEM_TABLE', message(9, bytes(40)), r'SET_VRING_ADDR before SET_MEM_TABLE'),
    ('a kick without an fd or the no-fd flag', message(12, struct.pack('=Q', 0)),
     r'SET_VRING_KICK with 0 fd\(s\) and the no-fd flag clear'),
]


def run_malformed(args):
    """No QEMU: the test is the front-end. Each broken message makes the
    bridge stop with status 1 and a line that says what was wrong, and
    destroy its device; a well-formed session that ends exits 0."""
    def body(run):
        run.start_bus(args.build_root)
        for i, (what, data, pattern) in enumerate(MALFORMED + [('a clean session', None, None)]):
            br = run.bridge(args.bridge, 'virtio-rng', {}, i)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(br.sock)
                if data is None:
                    s.sendall(message(1))
                    reply = s.recv(64)
                    request, flags, size = HEADER.unpack(reply[:12])
                    features = struct.unpack('=Q', reply[12:20])[0]
                    check((request, flags, size) == (1, VERSION | REPLY, 8), 'GET_FEATURES gets a u64 reply')
                    check(features & (1 << 32) and features & (1 << 30),
                          f'the features (0x{features:x}) are the device\'s (VERSION_1) plus PROTOCOL_FEATURES')
                    s.close()  # the front-end goes away
                else:
                    s.sendall(data)
                status = br.wait(10)
            log = br.text()
            if data is None:
                check(status == 0, f'{what}: the bridge exits 0 when the front-end hangs up (status {status})')
            else:
                check(status == 1, f'{what}: the bridge exits 1 (status {status})')
                check(re.search(r'^<3>.*' + pattern, log, re.M) is not None, f'{what}: the error says so')
            check('Destroyed device' in log, f'{what}: the bridge destroyed its device')
        return f'the bridge refused {len(MALFORMED)} malformed messages'

    return qt.run('vhost-user-malformed-', body)


def main():
    p = qt.arg_parser(__doc__, boot_timeout=60, bridge=True)
    p.add_argument('--scenario', choices=list(SCENARIOS) + ['malformed'], default='rng')
    p.add_argument('--irq', choices=['msix', 'intx'], default='msix')
    args = p.parse_args()
    if args.scenario == 'malformed':
        return run_malformed(args)
    if qt.qemu_missing(args.qemu):
        return 77

    def body(run):
        scenario, sizes = SCENARIOS[args.scenario]
        bus = run.start_bus(args.build_root)
        # vhost-user-rng-pci is modern only and has no disable-legacy property.
        devices = [('virtio-rng', {}, 'vhost-user-rng-pci', 'vectors=2')]
        images = []
        for i, sectors in enumerate(sizes):
            path = run.path(f'disk{i}.img')
            images.append((path, qt.make_image(path, sectors, seed=i + 1)))
            # QEMU's vhost-user-blk asks for one queue per vCPU: the polyvm
            # device offers as many (GET_QUEUE_NUM) and QEMU sets up them all.
            devices.append(('virtio-blk', {'path': path, 'serial': f'polyvm{i}', 'queues': args.smp},
                            'vhost-user-blk-pci',
                            f'disable-legacy=on,num-queues={args.smp},vectors={args.smp + 1}'))
        if sizes:
            check('virtio-blk' in bus.kinds(), 'devmgr offers the virtio-blk kind')

        ram = 4096 if args.scenario == 'big-ram' else qt.VHOST_USER_RAM_MIB
        argv = qt.qemu_argv(args, ram, memfd=True)
        for i, (kind, config, qdev, props) in enumerate(devices):
            br = run.bridge(args.bridge, kind, config, i)
            if args.irq == 'intx':
                props = re.sub(r'vectors=\d+', 'vectors=0', props)
            argv += ['-chardev', f'socket,id=vu{i},path={br.sock}', '-device', f'{qdev},chardev=vu{i},{props}']
        args.bridges = run.bridges

        g = run.boot(argv, args.boot_timeout)
        g.check_none_refused()
        if args.scenario == 'big-ram':
            scenario(g, args, images)  # the bridge is gone before any check of a running device
        else:
            for br in run.bridges:
                qt.check_device_jailed(bus, br)
            scenario(g, args, images)
            for br in run.bridges:
                qt.check_bridge_after(br)
        return f'vhost-user {args.scenario} ({args.irq})'

    return qt.run('testguest-vhost-user-', body, show_logs=args.show_logs)


if __name__ == '__main__':
    sys.exit(main())
