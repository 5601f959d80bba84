#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""virtio-vsock end to end under QEMU TCG: polyvm's jailed virtio-vsock
device (created through devmgr by tests/vhost-user's bridge) behind QEMU's
vhost-user-vsock-pci, driven by the test guest's driver. The host side is
Firecracker's unix-socket protocol, as the device implements it.

  host -> guest  the guest listens on 1234 in echo mode; the test connects
                 to uds_path, writes `CONNECT 1234`, gets `OK <port>`, and
                 64 KiB of random bytes come back intact; when the test
                 closes, the guest's connection ends cleanly (SHUTDOWN, RST)
  guest -> host  the test listens on `<uds_path>_5000`; `vsock connect 2
                 5000`, `vsock send` of 64 chunks of 4 KiB (256 KiB) that
                 the test verifies chunk by chunk and by FNV-1a 64, then
                 100000 random bytes the other way that `vsock recv`
                 counts and hashes as the test did; `vsock close` is EOF
                 on the host
  refused        `vsock connect 2 5999` (nobody listens on `_5999`) is
                 refused with RST; a host CONNECT to a port the guest does
                 not listen on is closed without an OK
  malformed      `vsock selftest` feeds 10 malformed packets (what the
                 device never sends) through the driver's receive path:
                 each counted bad, dropped or answered with RST, no
                 connection made, the device still answers afterwards
Around them (the vhost-user checks, qemutest.py): the device is active on the bus
and jailed while QEMU runs; after `poweroff` the bridge exits 0, and the
device process is gone. No packet counted bad by the guest.

Exit status 77 (skip) when QEMU is not installed.
"""
import os
import random
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import qemutest as qt  # noqa: E402
from qemutest import Failure, check, fnv1a64  # noqa: E402

CID = 42
ECHO_PORT = 1234
HOST_PORT = 5000
DEAD_PORT = 5999
LOCAL_PORT_BASE = 1 << 30  # host ports of host-initiated connections (Firecracker's)
chunk = qt.numbered_chunk  # `vsock send`'s chunk


class Io(threading.Thread):
    """Runs fn in a thread (socket I/O while the guest runs a command)."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn()
        except Exception as e:  # reported by get()
            self.error = e

    def get(self, timeout):
        self.join(timeout)
        if self.is_alive():
            raise Failure(f'host socket I/O still running after {timeout}s')
        if self.error:
            raise Failure(f'host socket I/O failed: {self.error!r}')
        return self.result


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        d = s.recv(min(65536, n - len(buf)))
        if not d:
            break
        buf += d
    return bytes(buf)


def read_line(s, limit=64):
    line = b''
    while not line.endswith(b'\n') and len(line) < limit:
        d = s.recv(1)
        if not d:
            break
        line += d
    return line


def vsock_info(g):
    return g.command('vsock')


def scenario(g, args, uds, host_listener):
    out = g.out
    check(re.search(rf'^pci: \S+ 1af4:1053 class \S+ .* virtio-vsock$', g.command('pci'), re.M) is not None,
          '`pci` lists the socket device 1af4:1053')
    check(re.search(rf'^virtio-vsock: cid {CID}, ', out, re.M) is not None, f'the driver read guest_cid {CID}')
    info = vsock_info(g)
    irq_mode = 'intx' if args.irq == 'intx' else 'msix'
    m = re.search(rf'^vsock: \S+ cid {CID} features 0x([0-9a-f]+) .*irq {irq_mode} ', info, re.M)
    check(m is not None and int(m.group(1), 16) & (1 << 32), f'`vsock` shows cid {CID}, VERSION_1 and irq {irq_mode}')

    # host -> guest, echo
    check(f'vsock listen: port {ECHO_PORT} (echo)' in g.command(f'vsock listen {ECHO_PORT} echo'),
          f'the guest listens on {ECHO_PORT} (echo)')
    data = random.Random(1).randbytes(65536)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(15)
        s.connect(uds)
        s.sendall(f'CONNECT {ECHO_PORT}\n'.encode())
        line = read_line(s)
        m = re.fullmatch(rb'OK (\d+)\n', line)
        check(m is not None and int(m.group(1)) >= LOCAL_PORT_BASE,
              f'CONNECT {ECHO_PORT} is answered OK with a host port >= 2^30 ({line!r})')
        t0 = time.monotonic()
        writer = Io(lambda: s.sendall(data))
        echoed = recv_exact(s, len(data))
        writer.get(15)
        check(echoed == data, f'64 KiB came back intact through the guest\'s echo ({len(echoed)} bytes, '
              f'{time.monotonic() - t0:.2f}s)')
    # Our close is EOF for the device: SHUTDOWN to the guest, the guest's
    # SHUTDOWN back, the device's RST; the guest's connection is closed.
    deadline = time.monotonic() + 10
    while True:
        info = vsock_info(g)
        m = re.search(rf'^vsock: conn (\d+) (\S+)(?:: [^\n]*)? port {ECHO_PORT} peer 2:(\d+) echo rx (\d+) tx (\d+)',
                      info, re.M)
        check(m is not None, f'`vsock` lists the echo connection:\n{info}')
        if m.group(2) == 'closed' or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check(m.group(2) == 'closed', f'the echo connection is closed after the host closed ({m.group(0)})')
    check(int(m.group(4)) == 65536 and int(m.group(5)) == 65536, f'it received and sent 65536 bytes ({m.group(0)})')
    check(int(m.group(3)) >= LOCAL_PORT_BASE, 'its peer port is the host port the device chose')
    check(g.command(f'vsock close {m.group(1)}').startswith(f'vsock close: conn {m.group(1)} was closed'),
          'closing a connection the peer closed frees it')

    # guest -> host
    out = g.command(f'vsock connect 2 {HOST_PORT}')
    m = re.search(rf'^vsock connect: conn (\d+) port (\d+) -> 2:{HOST_PORT} established$', out, re.M)
    check(m is not None, f'`vsock connect 2 {HOST_PORT}` is established ({out.strip()})')
    conn = m.group(1)
    host_listener.settimeout(10)
    hs, _ = host_listener.accept()
    with hs:
        hs.settimeout(20)
        total = 64 * 4096
        reader = Io(lambda: recv_exact(hs, total))
        out = g.command(f'vsock send {conn} 64 4096', timeout=30)
        got = reader.get(20)
        m = re.search(rf'^vsock send: conn {conn} 64 chunks of 4096 bytes \({total} bytes\) sent fnv1a64 0x([0-9a-f]{{16}})$',
                      out, re.M)
        check(m is not None, f'`vsock send` sent 256 KiB ({out.strip()})')
        check(len(got) == total, f'the host received {total} bytes ({len(got)})')
        bad = [i for i in range(64) if got[i * 4096:(i + 1) * 4096] != chunk(i, 4096)]
        check(not bad, f'every chunk has its sequence number, checksum and pattern (bad: {bad[:5]})')
        check(int(m.group(1), 16) == fnv1a64(got), 'the guest\'s FNV-1a 64 is that of what the host got')

        back = random.Random(2).randbytes(100000)
        writer = Io(lambda: hs.sendall(back))
        out = g.command(f'vsock recv {conn} {len(back)} 15000', timeout=30)
        writer.get(15)
        want = f'vsock recv: conn {conn} received {len(back)} bytes fnv1a64 0x{fnv1a64(back):016x}'
        check(want in out, f'the guest received the host\'s 100000 bytes intact ({out.strip()})')

        out = g.command(f'vsock close {conn}')
        check(re.search(rf'^vsock close: conn {conn} closed \(shut down cleanly\)$', out, re.M) is not None,
              f'`vsock close` ends cleanly: SHUTDOWN answered with RST ({out.strip()})')
        check(recv_exact(hs, 1) == b'', 'the host sees EOF after `vsock close`')

    # refused, both ways
    out = g.command(f'vsock connect 2 {DEAD_PORT}')
    check(f'vsock connect: 2:{DEAD_PORT} refused (reset by the peer)' in out,
          f'a connection to host port {DEAD_PORT}, where nobody listens, is refused ({out.strip()})')
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(15)
        s.connect(uds)
        s.sendall(b'CONNECT 4321\n')
        line = read_line(s)
        check(line == b'', f'CONNECT to a port the guest does not listen on is closed without OK ({line!r})')

    info = vsock_info(g)
    m = re.search(r'^vsock: rx (\d+) packets .* bad (\d+) rst-rx (\d+) rst-tx (\d+) credit-rx (\d+) credit-tx (\d+)',
                  info, re.M)
    check(m is not None, f'`vsock` shows the counters:\n{info}')
    check(m.group(2) == '0', f'no packet from the device was bad ({m.group(0)})')
    check(int(m.group(4)) >= 1, 'the guest answered the unknown port with RST')
    check(int(m.group(6)) >= 1, f'the guest sent CREDIT_UPDATEs while consuming ({m.group(0)})')

    # What polyvm's device never sends, through the driver's receive path.
    out = g.command('vsock selftest')
    check('NOT HANDLED' not in out and len(re.findall(r'^vsock selftest: .*: bad, (?:dropped|RST)$', out, re.M)) == 10,
          f'each of 10 malformed packets is counted bad and dropped or answered with RST:\n{out}')
    check(re.search(r'^vsock selftest: 10 packets, bad \+10, rst-tx \+5 \(expected 5\), connections (\d+) -> \1$',
                    out, re.M) is not None, 'and no connection appeared')
    m = re.search(r'^vsock: rx .* bad (\d+) ', vsock_info(g), re.M)
    check(m is not None and m.group(1) == '10', 'the driver still answers, with bad 10')
    # The device still works after them.
    out = g.command(f'vsock connect 2 {DEAD_PORT}')
    check(f'vsock connect: 2:{DEAD_PORT} refused (reset by the peer)' in out, 'the device still answers after them')
    g.poweroff()


def main():
    p = qt.arg_parser(__doc__, boot_timeout=30, bridge=True)
    p.add_argument('--irq', choices=['msix', 'intx'], default='msix')
    args = p.parse_args()
    if qt.qemu_missing(args.qemu):
        return 77

    def body(run):
        uds = run.path('vsock.sock')
        bus = run.start_bus(args.build_root)
        check('virtio-vsock' in bus.kinds(), 'devmgr offers the virtio-vsock kind')
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(f'{uds}_{HOST_PORT}')
            listener.listen(4)
            br = run.bridge(args.bridge, 'virtio-vsock', {'cid': CID, 'uds_path': uds}, 0)
            check(os.path.exists(uds), f'the device listens on uds_path ({uds})')
            # QEMU keeps the event queue itself (vhost-user-vsock hands the
            # back-end rx and tx only); vectors=4: config + three queues.
            props = 'disable-legacy=on,' + ('vectors=0' if args.irq == 'intx' else 'vectors=4')
            argv = qt.qemu_argv(args, qt.VHOST_USER_RAM_MIB, memfd=True) + [
                '-chardev', f'socket,id=vu0,path={br.sock}', '-device', f'vhost-user-vsock-pci,chardev=vu0,{props}']
            g = run.boot(argv, args.boot_timeout)
            g.check_none_refused()
            qt.check_device_jailed(bus, br)
            scenario(g, args, uds, listener)
            qt.check_bridge_after(br)
        return f'vhost-user vsock ({args.machine}, {args.irq})'

    return qt.run('testguest-vsock-', body, show_logs=args.show_logs)


if __name__ == '__main__':
    sys.exit(main())
