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
import argparse
import importlib.util
import json
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

_spec = importlib.util.spec_from_file_location(
    'virtio', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'test-virtio.py'))
virtio = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(virtio)
testguest = virtio.testguest
Guest, Failure, check = virtio.Guest, virtio.Failure, virtio.check

DEVMGR = 'org.polyvm.DeviceManager1'
DEVICE_IFACE = 'org.polyvm.Device1'
RAM_MIB = 128  # polyvm's layout maps guest address == memfd offset below 3 GiB


def wait_line(f, timeout, what):
    """One line from the pipe f within timeout seconds."""
    deadline = time.monotonic() + timeout
    buf = b''
    fd = f.fileno()
    while not buf.endswith(b'\n'):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise Failure(f'timed out after {timeout}s waiting for {what}')
        data = os.read(fd, 1)
        if not data:
            raise Failure(f'EOF while waiting for {what}')
        buf += data
    return buf.decode().rstrip('\n')


class Bus:
    """A private bus from the build tree's polyvm-bus.conf; devmgr is
    activated on it by CreateDevice."""

    def __init__(self, build_root):
        conf = os.path.join(build_root, 'dbus', 'polyvm-bus.conf')
        check(os.path.exists(conf), f'{conf} exists')
        self.proc = subprocess.Popen(['dbus-daemon', '--nofork', '--print-address', '--config-file', conf],
                                     stdout=subprocess.PIPE)
        self.address = wait_line(self.proc.stdout, 10, 'the bus address')

    def get(self, path, prop):
        out = subprocess.run(['busctl', f'--address={self.address}', '--json=short', 'get-property', DEVMGR, path,
                              DEVICE_IFACE, prop], capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            raise Failure(f'busctl get-property {path} {prop} failed: {out.stderr.strip()}')
        return json.loads(out.stdout)['data']

    def kinds(self):
        out = subprocess.run(['busctl', f'--address={self.address}', '--json=short', 'get-property', DEVMGR,
                              '/org/polyvm/DeviceManager1', DEVMGR, 'Kinds'], capture_output=True, text=True,
                             timeout=10)
        return json.loads(out.stdout)['data'] if out.returncode == 0 else []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


class Bridge:
    def __init__(self, exe, bus, sock, kind, config, log_path):
        self.kind, self.sock, self.log_path = kind, sock, log_path
        self.log = open(log_path, 'w+')
        argv = [exe, f'--bus={bus.address}', '--socket', sock, '--kind', kind, '--config', json.dumps(config),
                '--vm', 'vhost-user-test', '--debug']
        print('running:', ' '.join(argv))
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log)
        line = wait_line(self.proc.stdout, 15, f'the {kind} bridge to listen')
        m = re.fullmatch(r'READY (/org/polyvm/DeviceManager1/device/\d+) (\d+)', line)
        check(m is not None, f'the {kind} bridge created its device and listens ({line})')
        self.path, self.pid = m.group(1), int(m.group(2))

    def text(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def pid_alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def check_device_jailed(bus, br):
    """The device serving QEMU is the polyvm one: active, jailed, alive."""
    check(bus.get(br.path, 'State') == 'active', f'{br.kind} device {br.path} is active on the bus')
    check(bus.get(br.path, 'Kind') == br.kind, f'{br.path} is of kind {br.kind}')
    check(bus.get(br.path, 'Pid') == br.pid, f'{br.path} has the pid the bridge reported ({br.pid})')
    with open(f'/proc/{br.pid}/status') as f:
        status = dict(line.split(':', 1) for line in f.read().splitlines() if ':' in line)
    fields = {k: v.split() for k, v in status.items()}
    check(fields['Seccomp'][0] == '2', f'{br.kind} device runs under a seccomp filter')
    check(fields['NoNewPrivs'][0] == '1', f'{br.kind} device has no_new_privs')
    check(int(fields['CapEff'][0], 16) == 0, f'{br.kind} device has no effective capabilities')
    check(fields['Uid'][0] != '0', f'{br.kind} device does not run as root (uid {fields["Uid"][0]})')
    check(pid_alive(br.pid), f'{br.kind} device process {br.pid} is alive while QEMU runs')


def check_bridge_after(br):
    """After QEMU exited: the bridge exited 0, destroyed its device, and its
    log shows the device started and its used ring moved."""
    status = br.wait(10)
    log = br.text()
    check(status == 0, f'the {br.kind} bridge exits 0 after QEMU went away (status {status})')
    check('QEMU closed the vhost-user connection.' in log, f'the {br.kind} bridge saw QEMU close the connection')
    check(re.search(r'^<3>', log, re.M) is None, f'the {br.kind} bridge logged no error')
    check(re.search(r'started \(DRIVER_OK', log) is not None, f'the {br.kind} bridge started the device (DRIVER_OK)')
    check(re.search(r'SET_VRING_KICK .* fds 1', log) is not None, f'the {br.kind} bridge passed on a kick eventfd')
    used = [int(n) for n in re.findall(r'^<6>.*Queue 0 (?:stopped \(.*\)|at exit): used idx (\d+)\.$', log, re.M)]
    check(used and max(used) > 0, f'the {br.kind} device published used buffers on queue 0 (used idx {used})')
    deadline = time.monotonic() + 5
    while pid_alive(br.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    check(not pid_alive(br.pid), f'the {br.kind} device process {br.pid} is gone')


def scenario_rng(g, args, images):
    virtio.check_pci(g, 0)
    virtio.check_rng(g, args.irq)
    virtio.finish(g)


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
    deadline = time.monotonic() + 5
    while pid_alive(br.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    check(not pid_alive(br.pid), 'the bridge destroyed the device on its way out')
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


def run_malformed(args, tmpdir):
    """No QEMU: the test is the front-end. Each broken message makes the
    bridge stop with status 1 and a line that says what was wrong, and
    destroy its device; a well-formed session that ends exits 0."""
    bus, bridges = Bus(args.build_root), []
    try:
        for i, (what, data, pattern) in enumerate(MALFORMED + [('a clean session', None, None)]):
            sock_path = os.path.join(tmpdir, f'vu{i}.sock')
            br = Bridge(args.bridge, bus, sock_path, 'virtio-rng', {}, os.path.join(tmpdir, f'bridge{i}.log'))
            bridges.append(br)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(sock_path)
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
    except Failure as e:
        for br in bridges:
            print(f'--- {br.kind} bridge log ---\n{br.text()}--- end ---')
        print(f'FAIL: {e}')
        return 1
    finally:
        for br in bridges:
            br.kill()
        bus.stop()
    print(f'PASS: the bridge refused {len(MALFORMED)} malformed messages')
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--qemu', default='qemu-system-x86_64')
    p.add_argument('--kernel', required=True)
    p.add_argument('--bridge', required=True, help='polyvm-vhost-user-bridge')
    p.add_argument('--build-root', required=True, help='the build tree (for dbus/polyvm-bus.conf)')
    p.add_argument('--machine', default='q35')
    p.add_argument('--smp', type=int, default=1)
    p.add_argument('--scenario', choices=list(SCENARIOS) + ['malformed'], default='rng')
    p.add_argument('--irq', choices=['msix', 'intx'], default='msix')
    p.add_argument('--boot-timeout', type=float, default=60)
    p.add_argument('--show-logs', action='store_true', help='print the bridges\' logs also on success')
    args = p.parse_args()

    if args.scenario == 'malformed':
        with tempfile.TemporaryDirectory(prefix='vhost-user-malformed-') as tmpdir:
            return run_malformed(args, tmpdir)
    if not args.qemu or not shutil.which(args.qemu):
        print(f'SKIP: {args.qemu or "qemu-system-x86_64"} not found')
        return 77

    tmpdir = tempfile.TemporaryDirectory(prefix='testguest-vhost-user-')
    scenario, sizes = SCENARIOS[args.scenario]
    bus, bridges, g = None, [], None
    try:
        bus = Bus(args.build_root)
        # vhost-user-rng-pci is modern only and has no disable-legacy property.
        devices = [('virtio-rng', {}, 'vhost-user-rng-pci', 'vectors=2')]
        images = []
        for i, sectors in enumerate(sizes):
            path = os.path.join(tmpdir.name, f'disk{i}.img')
            images.append((path, virtio.make_image(path, sectors, seed=i + 1)))
            # QEMU's vhost-user-blk asks for one queue per vCPU: the polyvm
            # device offers as many (GET_QUEUE_NUM) and QEMU sets up them all.
            devices.append(('virtio-blk', {'path': path, 'serial': f'polyvm{i}', 'queues': args.smp},
                            'vhost-user-blk-pci',
                            f'disable-legacy=on,num-queues={args.smp},vectors={args.smp + 1}'))
        if sizes:
            check('virtio-blk' in bus.kinds(), 'devmgr offers the virtio-blk kind')

        ram = 4096 if args.scenario == 'big-ram' else RAM_MIB
        argv = [args.qemu, '-accel', 'tcg', '-M', args.machine, '-smp', str(args.smp), '-m', str(ram),
                '-object', f'memory-backend-memfd,id=mem,size={ram}M,share=on', '-machine', 'memory-backend=mem',
                '-nographic', '-no-reboot', '-nic', 'none', '-kernel', args.kernel, '-append', 'console=ttyS0']
        for i, (kind, config, qdev, props) in enumerate(devices):
            sock = os.path.join(tmpdir.name, f'vu{i}.sock')
            bridges.append(Bridge(args.bridge, bus, sock, kind, config, os.path.join(tmpdir.name, f'bridge{i}.log')))
            if args.irq == 'intx':
                props = re.sub(r'vectors=\d+', 'vectors=0', props)
            argv += ['-chardev', f'socket,id=vu{i},path={sock}', '-device', f'{qdev},chardev=vu{i},{props}']
        print('running:', ' '.join(argv))
        args.bridges = bridges

        g = Guest(argv)
        g.expect(re.escape(testguest.MARKER) + '\n', args.boot_timeout, 'the ready marker')
        print(f'ok: marker after {time.monotonic() - g.start:.2f}s')
        check(not re.search(r'^virtio-\S+: (refused|.*falling back)', g.out, re.M),
              'no virtio device was refused at boot')
        if args.scenario == 'big-ram':
            scenario(g, args, images)  # the bridge is gone before any check of a running device
        else:
            for br in bridges:
                check_device_jailed(bus, br)
            scenario(g, args, images)
            for br in bridges:
                check_bridge_after(br)
        if args.show_logs:
            for br in bridges:
                print(f'--- {br.kind} bridge log ---\n{br.text()}--- end ---')
    except Failure as e:
        if g:
            g.kill()
            print('--- guest output ---')
            print(g.out)
            print('--- end ---')
        for br in bridges:
            br.kill()
            print(f'--- {br.kind} bridge log ---')
            print(br.text())
            print('--- end ---')
        print(f'FAIL: {e}')
        return 1
    finally:
        if g:
            g.kill()
        for br in bridges:
            br.kill()
        if bus:
            bus.stop()
        tmpdir.cleanup()
    print(f'PASS: vhost-user {args.scenario} ({args.irq}) in {time.monotonic() - g.start:.2f}s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
