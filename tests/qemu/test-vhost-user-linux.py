#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Linux's own virtio drivers against polyvm's jailed device processes.

Debian's kernel boots under QEMU (TCG) with vhost-user-blk-pci,
vhost-user-rng-pci, a vhost-user netdev (virtio-net-pci, INTx: see
test-vhost-user-net.py about QEMU 7.2's MSI-X crash) and
vhost-user-vsock-pci, each backed by
polyvm-vhost-user-bridge and so by a polyvm device process created
through the real devmgr on a private bus (qemutest.py's Bus, Bridge
and Netns, shared by the vhost-user tests). The bus, and so
devmgr and the devices, run in a private network namespace with a tap
(10.77.0.1/24) that the virtio-net device opens by name.

The initramfs is built here: busybox-static, the virtio modules of the
kernel's own version (the set below plus what modules.dep says they need,
in dependency order), linux-vsock-client and an /init that loads them and prints `PVM:`
markers: each PCI function's vendor:device, class and driver from /sys;
the disk's size and serial, the md5 of its pre-filled first 64 KiB, a
pattern written with dd conv=fsync and read back (page cache dropped)
with its md5; /dev/hwrng bytes and rng_current; eth0's MAC, an address,
3/3 pings to the host; linux-vsock-client (static, ours: busybox has no
AF_VSOCK tool) connects to CID 2 port 5000, which polyvm's vsock device
turns into a connection to <uds_path>_5000 where the test echoes, and
checks 256 KiB come back intact. Kernel messages go to the console only
until /init lowers the level; the module lines are printed from dmesg.
Twice it stops and waits for the host: once the
drivers are up (the host checks every device is `active` on the bus and
jailed: Seccomp 2, NoNewPrivs 1, CapEff 0, not root) and once eth0 has
its address (the host pings it 3/3). Then poweroff -f.

Also asserted: Linux's own PCI enumeration lines (`pci 0000:00:0N.0:
[1af4:10xx] type 00 class ...`) before `Run /init`, no virtio probe
error in the kernel log, the image on the host holds exactly the pattern
at its offset and the seed data elsewhere, each bridge exits 0 after QEMU
exits with DRIVER_OK and used buffers logged, the device processes gone.

Needs root and `ip netns`; a missing kernel, module, busybox or tool is a
FAILURE, never a skip. Exit status 77 only when QEMU is not installed.
"""
import argparse
import glob
import hashlib
import os
import re
import shutil
import socket
import stat
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import qemutest as qt  # noqa: E402
from qemutest import GUEST_IP, GUEST_MAC, HOST_IP, PREFIX, TAP, Failure, check  # noqa: E402

vnet = qt.load_test('test-vhost-user-net.py')

RAM_MIB = 512
DISK_SECTORS = 16384  # 8 MiB
SERIAL = 'polyvm0'
PATTERN_OFFSET = 64 * 1024  # bytes; the pattern's 64 KiB follow the first 64 KiB
PATTERN_LEN = 64 * 1024
PATTERN = (b'polyvm-linux-vhost-user\n' * (PATTERN_LEN // 24 + 1))[:PATTERN_LEN]

# Modules the drivers live in; modules.dep adds what they need.
WANTED = [
    'kernel/drivers/virtio/virtio_pci.ko',
    'kernel/drivers/block/virtio_blk.ko',
    'kernel/drivers/char/hw_random/virtio-rng.ko',
    'kernel/drivers/net/virtio_net.ko',
    'kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko',
]

# what: (slot, vendor:device, class) of QEMU's modern-only front-ends
PCI = {
    'blk': ('04', '1af4:1042', '0x010000'),
    'rng': ('05', '1af4:1044', '0x00ff00'),
    'net': ('06', '1af4:1041', '0x020000'),
    'vsock': ('07', '1af4:1053', '0x078000'),
}
VSOCK_CID, VSOCK_PORT, VSOCK_BYTES = 42, 5000, 256 * 1024

INIT = r'''#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Kernel messages would land in the middle of our lines: they are printed
# from dmesg below instead.
dmesg -n 1
echo "PVM: init started"
for m in $(cat /modules.order); do
    if insmod /modules/$m; then echo "PVM: insmod $m ok"; else echo "PVM: insmod $m FAILED"; fi
done
sleep 1
dmesg | grep -iE 'virtio|vda|vsock|eth0|hwrng|rng' | while read line; do echo "PVM: kmsg $line"; done
for d in /sys/bus/pci/devices/*; do
    drv=none
    [ -e $d/driver ] && drv=$(basename $(readlink $d/driver))
    echo "PVM: pci ${d##*/} $(cat $d/vendor | sed s/0x//):$(cat $d/device | sed s/0x//) class $(cat $d/class) driver $drv"
done
wait_host() {
    echo "PVM-WAIT $1"
    read answer
    echo "PVM: host said $answer"
}
wait_host drivers
echo "PVM: blk size $(cat /sys/block/vda/size)"
echo "PVM: blk serial $(cat /sys/block/vda/serial)"
echo "PVM: blk head md5 $(dd if=/dev/vda bs=4096 count=16 2>/dev/null | md5sum | cut -d' ' -f1)"
yes polyvm-linux-vhost-user | head -c PATTERN_LEN > /tmp/pattern
dd if=/tmp/pattern of=/dev/vda bs=4096 seek=PATTERN_BLOCK conv=fsync 2>/dev/null && echo "PVM: blk write ok"
sync
echo 3 > /proc/sys/vm/drop_caches
echo "PVM: blk readback md5 $(dd if=/dev/vda bs=4096 skip=PATTERN_BLOCK count=PATTERN_BLOCKS 2>/dev/null | md5sum | cut -d' ' -f1)"
echo "PVM: rng current $(cat /sys/class/misc/hw_random/rng_current)"
echo "PVM: rng bytes $(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -v -tx1 | tr -d ' \n')"
echo "PVM: net mac $(cat /sys/class/net/eth0/address)"
ip link set eth0 up
ip addr add GUEST_IP/PREFIX dev eth0
sleep 1
echo "PVM: net carrier $(cat /sys/class/net/eth0/carrier)"
ping -c 3 -W 3 HOST_IP > /tmp/ping 2>&1
echo "PVM: ping $(grep 'packets transmitted' /tmp/ping)"
wait_host net
echo "PVM: $(vsock-client 2 VSOCK_PORT VSOCK_BYTES)"
grep -i virtio /proc/interrupts | while read line; do echo "PVM: irq $line"; done
echo "PVM: done"
poweroff -f
'''


def fail(msg):
    raise Failure(msg)


def kernel_version(vmlinuz):
    m = re.fullmatch(r'vmlinuz-(.+)', os.path.basename(vmlinuz))
    if not m:
        fail(f'cannot tell the kernel version from {vmlinuz} (expected /boot/vmlinuz-VERSION)')
    return m.group(1)


def resolve_modules(moddir):
    """The .ko paths to load, dependencies first, from modules.dep."""
    dep_file = os.path.join(moddir, 'modules.dep')
    if not os.path.exists(dep_file):
        fail(f'{dep_file} missing: install the modules of the kernel being booted')
    deps = {}
    with open(dep_file) as f:
        for line in f:
            mod, _, rest = line.partition(':')
            deps[mod.strip()] = rest.split()
    order = []

    def visit(mod):
        if mod in order:
            return
        if mod not in deps:
            fail(f'{mod} is not in {dep_file}: the kernel must have it as a module')
        for d in deps[mod]:
            visit(d)
        order.append(mod)

    for mod in WANTED:
        visit(mod)
    return order


def cpio_newc(root, out_path):
    """A newc archive of the tree under root (what the kernel unpacks)."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames) + sorted(filenames):
            entries.append(os.path.join(dirpath, name))
    with open(out_path, 'wb') as out:
        def put(name, st, data, rdev=(0, 0)):
            name_b = name.encode() + b'\0'
            hdr = '070701' + ''.join(f'{v:08x}' for v in (
                st[0], st[1], 0, 0, st[2], 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0))
            out.write(hdr.encode() + name_b)
            out.write(b'\0' * (-(110 + len(name_b)) % 4))
            out.write(data)
            out.write(b'\0' * (-len(data) % 4))

        for ino, path in enumerate(entries, 1):
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISDIR(st.st_mode):
                put(rel, (ino, st.st_mode, 2), b'')
            elif stat.S_ISLNK(st.st_mode):
                put(rel, (ino, st.st_mode, 1), os.readlink(path).encode())
            else:
                with open(path, 'rb') as f:
                    put(rel, (ino, st.st_mode, 1), f.read())
        # The kernel opens /dev/console for /init before devtmpfs is mounted.
        put('dev', (len(entries) + 1, stat.S_IFDIR | 0o755, 2), b'')
        put('dev/console', (len(entries) + 2, stat.S_IFCHR | 0o600, 1), b'', (5, 1))
        put('TRAILER!!!', (0, 0, 1), b'')


def build_initramfs(tmp, version, vsock_client):
    if not os.access('/bin/busybox', os.X_OK):
        fail('/bin/busybox missing: install busybox-static')
    if not os.access(vsock_client, os.X_OK):
        fail(f'{vsock_client} missing: build linux-vsock-client')
    moddir = f'/lib/modules/{version}'
    order = resolve_modules(moddir)
    root = os.path.join(tmp, 'root')
    os.makedirs(os.path.join(root, 'bin'))
    os.makedirs(os.path.join(root, 'modules'))
    shutil.copy2('/bin/busybox', os.path.join(root, 'bin', 'busybox'))
    shutil.copy2(vsock_client, os.path.join(root, 'bin', 'vsock-client'))
    names = []
    for mod in order:
        src = os.path.join(moddir, mod)
        if not os.path.exists(src):
            fail(f'{src} missing (modules.dep lists it); compressed modules are not handled')
        shutil.copy2(src, os.path.join(root, 'modules', os.path.basename(mod)))
        names.append(os.path.basename(mod))
    with open(os.path.join(root, 'modules.order'), 'w') as f:
        f.write('\n'.join(names) + '\n')
    script = INIT
    for k, v in {'PATTERN_LEN': PATTERN_LEN, 'PATTERN_BLOCKS': PATTERN_LEN // 4096,
                 'PATTERN_BLOCK': PATTERN_OFFSET // 4096, 'GUEST_IP': GUEST_IP, 'HOST_IP': HOST_IP,
                 'PREFIX': PREFIX, 'VSOCK_PORT': VSOCK_PORT, 'VSOCK_BYTES': VSOCK_BYTES}.items():
        script = script.replace(k, str(v))
    init = os.path.join(root, 'init')
    with open(init, 'w') as f:
        f.write(script)
    os.chmod(init, 0o755)
    out = os.path.join(tmp, 'initramfs.cpio')
    cpio_newc(root, out)
    print(f'ok: initramfs with busybox and {len(names)} modules of {version}: {" ".join(names)}')
    return out, names


class EchoServer:
    """Listens on <uds_path>_<port>, where polyvm's vsock device connects
    for the guest (Firecracker's protocol), and echoes one connection."""

    def __init__(self, path):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.listener.settimeout(60)
        self.received, self.error = 0, None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(20)
                while data := conn.recv(65536):
                    self.received += len(data)
                    conn.sendall(data)
        except OSError as e:
            self.error = e

    def join(self, timeout):
        self.thread.join(timeout)
        self.listener.close()


def marker(g, pattern, timeout, what):
    return g.expect(r'PVM: ' + pattern + r'\n', timeout, what)


def resume(g, name, timeout):
    g.expect(rf'PVM-WAIT {name}\n', timeout, f'the guest to wait for the host ({name})')


def go(g):
    g.type_only('go')


def check_enumeration(g):
    """Linux's own PCI scan, before /init ran, lists each device."""
    log = g.out
    run_init = log.find('Run /init as init process')
    check(run_init >= 0, 'the kernel ran /init from the initramfs')
    for what, (slot, ids, cls) in PCI.items():
        m = re.search(rf'^(?:\[ *[\d.]+\] )?pci 0000:00:{slot}\.0: \[{ids}\] type 00 class {cls}\b.*$', log, re.M)
        check(m is not None and m.start() < run_init,
              f'Linux enumerated the {what} device before /init: {m.group(0).strip() if m else "(missing)"}')
        # 6.1 says `reg 0x20: [mem ...]`, newer kernels `BAR 4 [mem ...]`.
        bars = re.findall(rf'^(?:\[ *[\d.]+\] )?pci 0000:00:{slot}\.0: ((?:reg 0x[0-9a-f]+:|BAR \d) .*)$', log, re.M)
        check(any('64bit pref' in b for b in bars),
              f'Linux sized the {what} device\'s BARs, the 64-bit one included ({"; ".join(bars)})')


def check_sysfs(g, names):
    for name in names:
        check(re.search(rf'^PVM: insmod {re.escape(name)} ok$', g.out, re.M) is not None, f'insmod {name}')
    for what, (slot, ids, cls) in PCI.items():
        m = re.search(rf'^PVM: pci 0000:00:{slot}\.0 {ids} class {cls} driver (\S+)$', g.out, re.M)
        check(m is not None and m.group(1) == 'virtio-pci',
              f'/sys shows the {what} device {ids} class {cls} bound to virtio-pci ({m and m.group(1)})')
    check(re.search(r'virtio\S* .*(error|failed|probe.* -\d+)', g.out, re.I) is None,
          'no virtio driver logged an error or a failed probe')


def test(args, run):
    if not args.kernel:
        found = sorted(glob.glob('/boot/vmlinuz-*-cloud-amd64'))
        if not found:
            fail('no /boot/vmlinuz-*-cloud-amd64: install linux-image-cloud-amd64')
        args.kernel = found[-1]
    version = kernel_version(args.kernel)
    initrd, names = build_initramfs(run.dir, version, args.vsock_client)
    image = run.path('disk0.img')
    seed = qt.make_image(image, DISK_SECTORS, seed=7)
    run.netns()
    bus = run.start_bus(args.build_root)
    kinds = bus.kinds()
    uds = run.path('vsock.sock')
    echo = EchoServer(f'{uds}_{VSOCK_PORT}')
    for k in ('virtio-blk', 'virtio-rng', 'virtio-net', 'virtio-vsock'):
        check(k in kinds, f'devmgr offers the {k} kind')
    specs = [
        ('virtio-blk', {'path': image, 'serial': SERIAL, 'queues': 1}, 'blk'),
        ('virtio-rng', {}, 'rng'),
        ('virtio-net', {'tap': TAP, 'mac': GUEST_MAC}, 'net'),
        ('virtio-vsock', {'cid': VSOCK_CID, 'uds_path': uds}, 'vsock'),
    ]
    socks = {what: run.bridge(args.bridge, kind, config, f'-{what}').sock for kind, config, what in specs}
    bridges = run.bridges
    vnet.check_device_mac(bridges[2])

    argv = qt.qemu_argv(args, RAM_MIB, append='console=ttyS0 loglevel=7 panic=-1', memfd=True, machine='q35') + [
        '-vga', 'none', '-initrd', initrd,
        '-chardev', f'socket,id=vublk,path={socks["blk"]}',
        '-device', f'vhost-user-blk-pci,chardev=vublk,addr=0x{PCI["blk"][0]},disable-legacy=on,'
                   'num-queues=1,vectors=2',
        '-chardev', f'socket,id=vurng,path={socks["rng"]}',
        '-device', f'vhost-user-rng-pci,chardev=vurng,addr=0x{PCI["rng"][0]},vectors=2',
        '-chardev', f'socket,id=vunet,path={socks["net"]}',
        '-netdev', 'vhost-user,id=n0,chardev=vunet',
        '-device', f'virtio-net-pci,netdev=n0,addr=0x{PCI["net"][0]},disable-legacy=on,'
                   f'mac={GUEST_MAC},vectors=0',
        # QEMU keeps the event queue: config + three vectors.
        '-chardev', f'socket,id=vuvsock,path={socks["vsock"]}',
        '-device', f'vhost-user-vsock-pci,chardev=vuvsock,addr=0x{PCI["vsock"][0]},disable-legacy=on,'
                   'vectors=4']
    g = run.qemu(argv)
    resume(g, 'drivers', args.boot_timeout)
    print(f'ok: drivers loaded after {time.monotonic() - g.start:.2f}s')
    check_enumeration(g)
    check_sysfs(g, names)
    for line in re.findall(r'^\[ *[\d.]+\] (?:pci 0000:00:0[4-7]\.0: \[|Run /init).*$', g.out, re.M):
        print(f'info: kernel: {line}')
    for line in re.findall(r'^PVM: kmsg (.*)$', g.out, re.M):
        print(f'info: kernel: {line}')
    for br in bridges:
        qt.check_device_jailed(bus, br)
    go(g)

    m = marker(g, r'blk size (\d+)', 30, 'the disk size')
    check(int(m.group(1)) == DISK_SECTORS, f'/sys/block/vda/size is {DISK_SECTORS} ({m.group(1)})')
    m = marker(g, r'blk serial (\S*)', 10, 'the disk serial')
    check(m.group(1) == SERIAL, f'/sys/block/vda/serial is {SERIAL} ({m.group(1)})')
    m = marker(g, r'blk head md5 ([0-9a-f]+)', 20, 'the md5 of the disk head')
    want = hashlib.md5(seed[:64 * 1024]).hexdigest()
    check(m.group(1) == want, f'Linux read the pre-filled first 64 KiB from the polyvm device (md5 {want})')
    marker(g, 'blk write ok', 20, 'the pattern write')
    m = marker(g, r'blk readback md5 ([0-9a-f]+)', 20, 'the md5 of the read back pattern')
    want = hashlib.md5(PATTERN).hexdigest()
    check(m.group(1) == want, f'the pattern reads back from the device after drop_caches (md5 {want})')

    m = marker(g, r'rng current (\S*)', 10, 'rng_current')
    check(m.group(1).startswith('virtio_rng'), f'rng_current is virtio_rng ({m.group(1)})')
    m = marker(g, r'rng bytes ([0-9a-f]*)', 10, 'the hwrng bytes')
    data = bytes.fromhex(m.group(1))
    check(len(data) == 64 and len(set(data)) > 16, f'/dev/hwrng gave 64 varied bytes ({m.group(1)[:32]}...)')

    m = marker(g, r'net mac (\S+)', 10, 'the MAC')
    check(m.group(1) == GUEST_MAC, f'eth0 has the MAC {GUEST_MAC}')
    m = marker(g, r'net carrier (\d)', 10, 'the carrier')
    check(m.group(1) == '1', 'eth0 has carrier')
    m = marker(g, r'ping (.*)', 30, 'the ping summary')
    check(re.search(r'3 packets transmitted, 3 packets received', m.group(1)) is not None,
          f'Linux pinged the host 3/3 through the polyvm device ({m.group(1)})')
    resume(g, 'net', 10)
    got = qt.host_ping(3, 'Linux')
    check(got == 3, f'the host pinged Linux 3/3 ({got})')
    go(g)
    m = marker(g, r'vsock: (.*)', 30, 'the vsock client')
    check(m.group(1) == f'sent {VSOCK_BYTES} echoed {VSOCK_BYTES} mismatched 0',
          f'Linux connected to host port {VSOCK_PORT} over vsock and got its {VSOCK_BYTES} bytes echoed '
          f'({m.group(1)})')
    echo.join(10)
    check(echo.received == VSOCK_BYTES and echo.error is None,
          f'the host side got {VSOCK_BYTES} bytes through polyvm\'s vsock device ({echo.received}, '
          f'{echo.error})')

    marker(g, 'done', 20, 'the end of the script')
    status = g.wait_exit(20, 'poweroff -f')
    check(status == 0, f'QEMU exited 0 after poweroff -f (status {status})')
    irqs = re.findall(r'^PVM: irq (.*)$', g.out, re.M)
    print('info: ' + '\ninfo: '.join(irqs))

    for br in bridges:
        qt.check_bridge_after(br)
    with open(image, 'rb') as f:
        disk = f.read()
    check(disk[PATTERN_OFFSET:PATTERN_OFFSET + PATTERN_LEN] == PATTERN,
          'the image on the host holds the pattern Linux wrote')
    check(disk[:PATTERN_OFFSET] == seed[:PATTERN_OFFSET]
          and disk[PATTERN_OFFSET + PATTERN_LEN:] == seed[PATTERN_OFFSET + PATTERN_LEN:],
          'every other byte of the image is the seed data')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--qemu', default='qemu-system-x86_64')
    p.add_argument('--kernel', help='Debian\'s vmlinuz (default: the newest /boot/vmlinuz-*-cloud-amd64)')
    p.add_argument('--vsock-client', required=True, help='linux-vsock-client (static), put into the initramfs')
    p.add_argument('--smp', type=int, default=1)
    p.add_argument('--boot-timeout', type=float, default=45)
    qt.add_bridge_args(p)
    args = p.parse_args()
    if qt.qemu_missing(args.qemu):
        return 77

    def body(run):
        test(args, run)
        return f'Linux {os.path.basename(args.kernel)} drove polyvm\'s virtio-blk, -rng, -net and -vsock'

    return qt.run('vhost-user-linux-', body, show_logs=args.show_logs)


if __name__ == '__main__':
    sys.exit(main())
