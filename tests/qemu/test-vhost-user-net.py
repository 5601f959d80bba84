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
work, then poweroff. Around them the vhost-user checks (qemutest.py): the device is
`active` with the bridge's pid and jailed (seccomp 2, no_new_privs, no
capabilities, not root) while QEMU runs; after poweroff the bridge exits 0,
logged DRIVER_OK and a moving used index on both queues, and the device
process is gone.

Exit status 77 (skip) only when QEMU is not installed.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import qemutest as qt  # noqa: E402
from qemutest import GUEST_MAC, TAP, check  # noqa: E402

net = qt.load_test('test-virtio-net.py')


def check_device_mac(br):
    """The polyvm device was configured with the MAC QEMU gives the guest,
    as the bridge read it from the device's config space."""
    log = br.text()
    m = re.search(r'^<6>.*Device \S+: virtio-net mac ([0-9a-f:]{17}) status 0x([0-9a-f]+)', log, re.M)
    check(m is not None, 'the bridge logged the polyvm device\'s MAC and status from its config space')
    check(m.group(1) == GUEST_MAC, f'the polyvm device has the MAC QEMU shows the guest ({m.group(1)})')
    check(int(m.group(2), 16) & 1, 'the polyvm device reports link up (VIRTIO_NET_S_LINK_UP)')


def check_queues_used(br):
    """Both rings moved: the device received (queue 0) and sent (queue 1)."""
    log = br.text()
    for q, what in ((0, 'rx'), (1, 'tx')):
        used = [int(n) for n in re.findall(rf'^<6>.*Queue {q} (?:stopped \(.*\)|at exit): used idx (\d+)\.$', log,
                                            re.M)]
        check(used and max(used) > net.DATAGRAMS, f'the polyvm device used more than {net.DATAGRAMS} {what} buffers '
              f'(queue {q} used idx {used})')


def main():
    p = qt.arg_parser(__doc__, boot_timeout=60, bridge=True)
    p.add_argument('--irq', choices=['msix', 'intx'], default='intx',
                   help='intx: vectors=0, no MSI-X (msix crashes QEMU 7.2 under TCG, see above)')
    args = p.parse_args()
    args.addr_from_cmdline = False  # net.scenario() sets the address with `net addr`
    if qt.qemu_missing(args.qemu):
        return 77

    def body(run):
        # The bus, and so devmgr (activated by it), start inside the
        # namespace: devmgr opens the tap there, by name.
        ns = run.netns()
        bus = run.start_bus(args.build_root)
        check('virtio-net' in bus.kinds(), 'devmgr offers the virtio-net kind')
        br = run.bridge(args.bridge, 'virtio-net', {'tap': TAP, 'mac': GUEST_MAC}, 0)
        check_device_mac(br)

        argv = qt.qemu_argv(args, qt.VHOST_USER_RAM_MIB, memfd=True, nic_none=False) + [
            '-chardev', f'socket,id=vu0,path={br.sock}', '-netdev', 'vhost-user,id=n0,chardev=vu0',
            '-device', f'virtio-net-pci,netdev=n0,disable-legacy=on,mac={GUEST_MAC}'
            + (',vectors=0' if args.irq == 'intx' else '')]
        g = run.boot(argv, args.boot_timeout)
        g.check_came_up('virtio-net')

        qt.check_device_jailed(bus, br)
        net.scenario(g, args, ns)  # ends with poweroff
        qt.check_bridge_after(br)
        check_queues_used(br)
        return f'vhost-user virtio-net on {args.machine} ({args.irq})'

    return qt.run('testguest-vhost-user-net-', body, show_logs=args.show_logs)


if __name__ == '__main__':
    sys.exit(main())
