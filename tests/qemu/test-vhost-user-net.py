#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boots polyvm-testguest under QEMU (TCG) with QEMU's virtio-net-pci on a
vhost-user netdev whose back-end is polyvm's own jailed virtio-net device
process: polyvm-vhost-user-bridge creates it through devmgr on a private
bus with {"tap": TAP, "mac": MAC}, TAP being a tap in a private network
namespace (10.77.0.1/24 on the host side), and hands it QEMU's guest
memory and the rx/tx kick and call eventfds. Every frame the guest
receives was written into its ring by the polyvm device from the tap, and
every frame the host sees was read from the guest's ring by it.

QEMU's virtio-net front-end keeps the device config (MAC, link status)
itself for a vhost-user netdev, so the guest sees QEMU's `mac=`; the test
gives the polyvm device the same address and checks that the bridge read
it back from the device's own config space.

Interrupts are INTx (`vectors=0`): with MSI-X, QEMU 7.2 under TCG
segfaults when the guest sets DRIVER_OK on a vhost-user netdev
(virtio_pci_set_guest_notifiers -> msix_set_vector_notifiers ->
virtio_pci_vector_unmask falls to kvm_virtio_pci_irqfd_use with no
vector_irqfd array: a read at 0x28, vector 1's virq). vhost-user-rng/-blk
are not affected. --irq msix is kept for a QEMU without that bug.

Needs root and `ip netns`: without them the test FAILS, it never skips.

The checks on the guest are test-virtio-net.py's scenario (imported, not
copied): `net` shows the MAC and link up, the host pings the guest 3/3,
`net ping` the host 3/3, 100 verified UDP datagrams each way, malformed
frames written on the tap are each dropped by the guest and pings still
work, then poweroff. Around them test-vhost-user.py's: the device is
`active` with the bridge's pid and jailed (seccomp 2, no_new_privs, no
capabilities, not root) while QEMU runs; after poweroff the bridge exits 0,
logged DRIVER_OK and a moving used index on both queues, and the device
process is gone.

Exit status 77 (skip) only when QEMU is not installed.
"""
import argparse
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


vhost = load('vhost_user', 'test-vhost-user.py')
net = load('virtio_net', 'test-virtio-net.py')
# Each module loaded its own copy of test-testguest.py: either's Failure.
FAILURES = tuple({vhost.Failure, net.Failure})
check = net.check


def check_device_mac(br):
    """The polyvm device was configured with the MAC QEMU gives the guest,
    as the bridge read it from the device's config space."""
    log = br.text()
    m = re.search(r'^<6>.*Device \S+: virtio-net mac ([0-9a-f:]{17}) status 0x([0-9a-f]+)', log, re.M)
    check(m is not None, 'the bridge logged the polyvm device\'s MAC and status from its config space')
    check(m.group(1) == net.GUEST_MAC, f'the polyvm device has the MAC QEMU shows the guest ({m.group(1)})')
    check(int(m.group(2), 16) & 1, 'the polyvm device reports link up (VIRTIO_NET_S_LINK_UP)')


def check_queues_used(br):
    """Both rings moved: the device received (queue 0) and sent (queue 1)."""
    log = br.text()
    for q, what in ((0, 'rx'), (1, 'tx')):
        used = [int(n) for n in re.findall(rf'^<6>.*Queue {q} (?:stopped \(.*\)|at exit): used idx (\d+)\.$', log,
                                            re.M)]
        check(used and max(used) > net.DATAGRAMS, f'the polyvm device used more than {net.DATAGRAMS} {what} buffers '
              f'(queue {q} used idx {used})')


class Cleanup:
    """Stops QEMU, the bridge and the bus (devmgr with it) before the
    namespace they live in is deleted."""

    def __init__(self, *getters):
        self.getters = getters

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        g, br, bus = (get() for get in reversed(self.getters))
        if g:
            g.kill()
        if br:
            br.kill()
        if bus:
            bus.stop()
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--qemu', default='qemu-system-x86_64')
    p.add_argument('--kernel', required=True)
    p.add_argument('--bridge', required=True, help='polyvm-vhost-user-bridge')
    p.add_argument('--build-root', required=True, help='the build tree (for dbus/polyvm-bus.conf)')
    p.add_argument('--machine', default='q35')
    p.add_argument('--smp', type=int, default=1)
    p.add_argument('--irq', choices=['msix', 'intx'], default='intx',
                   help='intx: vectors=0, no MSI-X (msix crashes QEMU 7.2 under TCG, see above)')
    p.add_argument('--boot-timeout', type=float, default=60)
    p.add_argument('--show-logs', action='store_true', help='print the bridge\'s log also on success')
    args = p.parse_args()
    args.addr_from_cmdline = False  # net.scenario() sets the address with `net addr`

    if not args.qemu or not shutil.which(args.qemu):
        print(f'SKIP: {args.qemu or "qemu-system-x86_64"} not found')
        return 77

    tmpdir = tempfile.TemporaryDirectory(prefix='testguest-vhost-user-net-')
    bus, br, g = None, None, None
    start = time.monotonic()
    try:
        if not shutil.which('ip'):
            raise net.Failure('this test needs `ip` (iproute2) for a network namespace; it does not skip')
        # The bus, and so devmgr (activated by it), start inside the
        # namespace: devmgr opens the tap there, by name.
        with net.Netns() as ns, Cleanup(lambda: bus, lambda: br, lambda: g):
            bus = vhost.Bus(args.build_root)
            check('virtio-net' in bus.kinds(), 'devmgr offers the virtio-net kind')
            sock = os.path.join(tmpdir.name, 'vu0.sock')
            br = vhost.Bridge(args.bridge, bus, sock, 'virtio-net', {'tap': net.TAP, 'mac': net.GUEST_MAC},
                              os.path.join(tmpdir.name, 'bridge0.log'))
            check_device_mac(br)

            ram = vhost.RAM_MIB
            argv = [args.qemu, '-accel', 'tcg', '-M', args.machine, '-smp', str(args.smp), '-m', str(ram),
                    '-object', f'memory-backend-memfd,id=mem,size={ram}M,share=on', '-machine', 'memory-backend=mem',
                    '-nographic', '-no-reboot', '-kernel', args.kernel, '-append', 'console=ttyS0',
                    '-chardev', f'socket,id=vu0,path={sock}', '-netdev', 'vhost-user,id=n0,chardev=vu0',
                    '-device', f'virtio-net-pci,netdev=n0,disable-legacy=on,mac={net.GUEST_MAC}'
                    + (',vectors=0' if args.irq == 'intx' else '')]
            print('running:', ' '.join(argv))
            g = vhost.Guest(argv)
            g.expect(re.escape(vhost.testguest.MARKER) + '\n', args.boot_timeout, 'the ready marker')
            print(f'ok: marker after {time.monotonic() - g.start:.2f}s')
            m = re.search(r'^virtio-net: \S+ features (0x[0-9a-f]+) \(offered (0x[0-9a-f]+)\)', g.out, re.M)
            check(m is not None, 'virtio-net came up')
            print(f'info: virtio-net features {m.group(1)} of offered {m.group(2)}')

            vhost.check_device_jailed(bus, br)
            net.scenario(g, args, ns)  # ends with poweroff
            vhost.check_bridge_after(br)
            check_queues_used(br)
            if args.show_logs:
                print(f'--- bridge log ---\n{br.text()}--- end ---')
    except FAILURES as e:
        if g:
            g.kill()
            print('--- guest output ---')
            print(g.out)
            print('--- end ---')
        if br:
            br.kill()
            print(f'--- bridge log ---\n{br.text()}--- end ---')
        print(f'FAIL: {e}')
        return 1
    finally:
        if g:
            g.kill()
        if br:
            br.kill()
        if bus:
            bus.stop()
        tmpdir.cleanup()
    print(f'PASS: vhost-user virtio-net on {args.machine} ({args.irq}) in {time.monotonic() - start:.2f}s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
