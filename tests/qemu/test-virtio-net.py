#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boots polyvm-testguest under QEMU (TCG) with QEMU's virtio-net-pci
(modern only) on a tap device inside a private network namespace, and
checks the guest's driver and its small IPv4 stack from the host side.

Needs root and `ip netns` (iproute2); without them the test FAILS: a
network test that silently skips proves nothing. The namespace is deleted
on every path out.

Steps: `net` shows the MAC given to QEMU and link up; the address is set
(`net addr`, or tg.net.addr= on the kernel command line with
--addr-from-cmdline); the host pings the guest while it sits at the prompt
(raw ICMP socket: 3 of 3 replies with our payload); `net ping HOST 3` gets
3 replies; the guest sends 100 UDP datagrams that a socket here receives
and verifies (sequence numbers 0..99, payload pattern, FNV-1a); the host
sends 100 datagrams that `net udp recv` counts and verifies (no loss is
allowed on a tap: QEMU stops reading the tap while the guest has no
buffers, and the tap queue holds 1000 frames); malformed frames written
on the tap's host side with a packet socket (bad IPv4 header checksum,
truncated IPv4 header, IHL < 5, total length past the frame, bad ICMP
checksum, bad UDP checksum, bad ARP) each count as dropped, and the guest
still answers pings after them.

--irq intx starts the device with vectors=0 (no MSI-X): INTx through the
IOAPIC.

Exit status 77 (skip) only when QEMU is not installed.
"""
import os
import re
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import qemutest as qt  # noqa: E402
from qemutest import GUEST_IP, GUEST_MAC, HOST_IP, PREFIX, TAP, check, host_ping, inet_csum  # noqa: E402

ETH_P_ALL = 0x0003
GUEST_TO_HOST_PORT, HOST_TO_GUEST_PORT = 5001, 5002
DATAGRAMS = 100
udp_payload = qt.numbered_chunk  # guest/virtio-net.c's udp_payload_fill()


def udp_payload_seq(data):
    """The sequence number if the payload is well formed, else None."""
    if len(data) < 8:
        return None
    seq = struct.unpack('>I', data[:4])[0]
    return seq if data == udp_payload(seq, len(data)) else None


def net_counters(g):
    out = g.command('net')
    m = re.search(r'^net: rx (\d+) tx (\d+) dropped (\d+) ignored (\d+) tx-full (\d+)$', out, re.M)
    check(m is not None, 'net prints its counters')
    return out, {k: int(v) for k, v in zip(('rx', 'tx', 'dropped', 'ignored', 'tx_full'), m.groups())}


def malformed_frames(tap_mac):
    """Frames the guest must count as dropped, one count each."""
    dst = bytes.fromhex(GUEST_MAC.replace(':', ''))
    eth = dst + tap_mac
    src, gip = socket.inet_aton(HOST_IP), socket.inet_aton(GUEST_IP)

    def ip_hdr(proto, payload_len, ihl=5, total=None, csum=None):
        h = struct.pack('>BBHHHBBH4s4s', 0x40 | ihl, 0, total if total is not None else 20 + payload_len,
                        0x1234, 0x4000, 64, proto, 0, src, gip)
        c = inet_csum(h) if csum is None else csum
        return h[:10] + struct.pack('>H', c) + h[12:]

    def icmp_echo(bad=False):
        body = struct.pack('>BBHHH', 8, 0, 0, 0x99, 1) + b'x' * 32
        c = inet_csum(body) ^ (0x5555 if bad else 0)
        return body[:2] + struct.pack('>H', c) + body[4:]

    good_icmp = icmp_echo()
    udp_body = b'hello'
    udp = struct.pack('>HHHH', 1234, HOST_TO_GUEST_PORT, 8 + len(udp_body), 0xdead) + udp_body
    frames = {
        'bad IPv4 header checksum': eth + b'\x08\x00' + ip_hdr(1, len(good_icmp), csum=0xbeef) + good_icmp,
        'truncated IPv4 header (10 bytes)': eth + b'\x08\x00' + ip_hdr(1, len(good_icmp))[:10],
        'IHL 4 (< 5)': eth + b'\x08\x00' + ip_hdr(1, len(good_icmp), ihl=4) + good_icmp,
        'total length past the frame': eth + b'\x08\x00' + ip_hdr(1, len(good_icmp), total=1400) + good_icmp,
        'bad ICMP checksum': eth + b'\x08\x00' + ip_hdr(1, len(good_icmp)) + icmp_echo(bad=True),
        'bad UDP checksum': eth + b'\x08\x00' + ip_hdr(17, len(udp)) + udp,
        'ARP with hlen 5': eth + b'\x08\x06' + struct.pack('>HHBBH', 1, 0x0800, 5, 4, 1) + b'\0' * 20,
    }
    return frames


def scenario(g, args, ns):
    out, c0 = net_counters(g)
    check(re.search(rf'^net: mac {GUEST_MAC} link up addr ', out, re.M) is not None,
          f'net shows the MAC given to QEMU ({GUEST_MAC}) and link up (VIRTIO_NET_F_STATUS)')
    check(re.search(rf'^net: features 0x[0-9a-f]+ irq {args.irq} irqs ', out, re.M) is not None,
          f'net uses {args.irq} interrupts')
    if args.addr_from_cmdline:
        out = g.command('net addr')
        check(f'net addr: {GUEST_IP}/{PREFIX}' in out, 'the address came from tg.net.addr= on the command line')
    else:
        check('addr none' in out, 'no address before net addr')
        out = g.command('net ping 10.77.0.1 1')
        check('no address' in out, 'net ping without an address is refused')
        out = g.command('net addr 10.77.0.300/24')
        check('is not A.B.C.D/NN' in out, 'a bad address is refused')
        out = g.command(f'net addr {GUEST_IP}/{PREFIX}')
        check(f'net addr: {GUEST_IP}/{PREFIX}' in out, 'net addr sets the address')

    # The guest sits at the prompt: its idle loop answers ARP and echo.
    n = host_ping(3, 'host ping')
    check(n == 3, f'the host pings the guest at the prompt: {n} of 3 replies (0% loss)')

    out = g.command(f'net ping {HOST_IP} 3', timeout=30)
    replies = re.findall(rf'^net ping: reply from {re.escape(HOST_IP)} seq (\d) time (\d+) us$', out, re.M)
    check([r[0] for r in replies] == ['1', '2', '3'], f'net ping {HOST_IP} 3 gets 3 replies (got {len(replies)})')
    check('net ping: 3 sent, 3 received' in out, 'net ping sums up 3 of 3')
    out = g.command('net ping 10.78.0.1 1')
    check('not another host on the local subnet' in out, 'an off-subnet destination is refused (no routing)')

    # Guest -> host: 100 datagrams, each verified here.
    size = 512
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((HOST_IP, GUEST_TO_HOST_PORT))
        out = g.command(f'net udp send {HOST_IP} {GUEST_TO_HOST_PORT} {DATAGRAMS} {size}', timeout=60)
        check(f'net udp send: {DATAGRAMS} datagrams of {size} bytes to {HOST_IP}:{GUEST_TO_HOST_PORT} sent' in out,
              'net udp send reports every datagram sent')
        seqs, bad = [], 0
        deadline = time.monotonic() + 10
        while len(seqs) + bad < DATAGRAMS and time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], deadline - time.monotonic())
            if not r:
                break
            data, addr = s.recvfrom(4096)
            seq = udp_payload_seq(data) if addr == (GUEST_IP, 40000) and len(data) == size else None
            if seq is None:
                bad += 1
            else:
                seqs.append(seq)
    check(bad == 0, f'every datagram from the guest has the right source, size and payload ({bad} bad)')
    check(sorted(seqs) == list(range(DATAGRAMS)), f'the host received sequence numbers 0..{DATAGRAMS - 1} '
          f'exactly once ({len(seqs)} received)')

    # Host -> guest: 100 datagrams counted and verified by the guest.
    size = 700
    g.type_only(f'net udp recv {HOST_TO_GUEST_PORT} {DATAGRAMS} 15000')
    g.expect(rf'net udp recv: listening on port {HOST_TO_GUEST_PORT}[^\n]*\n', 20, 'net udp recv listening')
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for seq in range(DATAGRAMS):
            s.sendto(udp_payload(seq, size), (GUEST_IP, HOST_TO_GUEST_PORT))
    m = g.expect(r'net udp recv: port (\d+) received (\d+) bytes (\d+) bad (\d+)(.*)\n', 30, 'the udp recv summary')
    g.expect(re.escape(qt.PROMPT), 10, 'the prompt after net udp recv')
    check(int(m.group(2)) == DATAGRAMS and m.group(5) == '',
          f'the guest received all {DATAGRAMS} datagrams (got {m.group(2)}{m.group(5)})')
    check(int(m.group(3)) == DATAGRAMS * size, f'the guest counted {DATAGRAMS * size} payload bytes')
    check(int(m.group(4)) == 0, 'the guest found no bad payload')

    # Malformed frames straight onto the tap: counted as dropped, one each.
    _, c1 = net_counters(g)
    frames = malformed_frames(ns.tap_mac)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as s:
        s.bind((TAP, 0))
        for name, f in frames.items():
            s.send(f)
            print(f'sent: {name} ({len(f)} bytes)')
    time.sleep(1)
    _, c2 = net_counters(g)
    check(c2['dropped'] - c1['dropped'] == len(frames),
          f'each of the {len(frames)} malformed frames is counted as dropped (+{c2["dropped"] - c1["dropped"]})')
    check(c0['dropped'] == 0 and c1['dropped'] == 0, 'nothing the host kernel sent by itself was counted as dropped')
    n = host_ping(3, 'host ping after the malformed frames')
    check(n == 3, f'the guest still answers pings after malformed frames ({n} of 3)')

    out, c3 = net_counters(g)
    m = re.search(rf'^net: features 0x[0-9a-f]+ irq {args.irq} irqs rx (\d+) tx (\d+) config \d+$', out, re.M)
    check(m and int(m.group(1)) > 0 and int(m.group(2)) > 0, 'receive and transmit interrupts were counted')
    check(c3['rx'] >= DATAGRAMS + 9 and c3['tx'] >= DATAGRAMS + 9, f'counters rx {c3["rx"]} tx {c3["tx"]} add up')
    g.poweroff()


def main():
    p = qt.arg_parser(__doc__, boot_timeout=60)
    p.add_argument('--irq', choices=['msix', 'intx'], default='msix', help='intx: vectors=0, no MSI-X')
    p.add_argument('--addr-from-cmdline', action='store_true', help='tg.net.addr= instead of `net addr`')
    args = p.parse_args()
    if qt.qemu_missing(args.qemu):
        return 77

    def body(run):
        cmdline = 'console=ttyS0' + (f' tg.net.addr={GUEST_IP}/{PREFIX}' if args.addr_from_cmdline else '')
        argv = qt.qemu_argv(args, 128, append=cmdline, nic_none=False) + [
            '-netdev', f'tap,id=n0,ifname={TAP},script=no,downscript=no',
            '-device', f'virtio-net-pci,netdev=n0,disable-legacy=on,mac={GUEST_MAC}'
            + (',vectors=0' if args.irq == 'intx' else '')]
        ns = run.netns()
        g = run.boot(argv, args.boot_timeout)
        g.check_came_up('virtio-net')
        scenario(g, args, ns)
        return f'virtio-net on {args.machine} ({args.irq})'

    return qt.run('testguest-net-', body)


if __name__ == '__main__':
    sys.exit(main())
