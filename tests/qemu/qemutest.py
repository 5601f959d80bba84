# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the QEMU tests (tests/qemu/test-*.py) share: QEMU's command line,
the test guest's console (serial on a pipe: wait for a pattern, type a
command, collect its lines), QEMU's monitor, a private bus with
polyvm-vhost-user-bridge processes, a network namespace with a tap, and
main()'s frame (temp dir, every process stopped on the way out, the
transcript and the bridges' logs printed on a failure, PASS/FAIL/SKIP).

What a test asserts stays in that test; the few checks here are the ones
every test of a kind makes the same way (a bridge's device is jailed, the
bridge exits cleanly, QEMU exits after poweroff). Stdlib only.
"""
import argparse
import ctypes
import importlib.util
import json
import os
import random
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MARKER = 'POLYVM-GUEST-READY'
PROMPT = 'tg> '
MIB = 1 << 20
SECTOR = 512
M64 = (1 << 64) - 1


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)
    print(f'ok: {msg}')


def load_test(file):
    """Another test script as a module, for its checks (imported, not
    copied); loaded once, so every test shares this module's Failure."""
    name = file.removesuffix('.py').replace('-', '_')
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


# --- command line ---------------------------------------------------------

def arg_parser(doc, boot_timeout, bridge=False):
    """--qemu, --kernel, --machine, --smp, --boot-timeout; with bridge also
    --bridge, --build-root and --show-logs."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--qemu', default='qemu-system-x86_64')
    p.add_argument('--kernel', required=True)
    p.add_argument('--machine', default='q35')
    p.add_argument('--smp', type=int, default=1)
    p.add_argument('--boot-timeout', type=float, default=boot_timeout)
    if bridge:
        add_bridge_args(p)
    return p


def add_bridge_args(p):
    p.add_argument('--bridge', required=True, help='polyvm-vhost-user-bridge')
    p.add_argument('--build-root', required=True, help='the build tree (for dbus/polyvm-bus.conf)')
    p.add_argument('--show-logs', action='store_true', help='print the bridges\' logs also on success')


def qemu_missing(qemu):
    """True (and SKIP printed) when QEMU is not installed: the tests' exit 77."""
    if qemu and shutil.which(qemu):
        return False
    print(f'SKIP: {qemu or "qemu-system-x86_64"} not found')
    return True


def qemu_argv(args, mem, append='console=ttyS0', nic_none=True, memfd=False, machine=None):
    """TCG, the test guest (args.kernel) on the serial console, no reboot.
    memfd: guest RAM in a shared memfd, which vhost-user back-ends map."""
    argv = [args.qemu, '-accel', 'tcg', '-M', machine or args.machine, '-smp', str(args.smp), '-m', str(mem)]
    if memfd:
        argv += ['-object', f'memory-backend-memfd,id=mem,size={mem}M,share=on', '-machine', 'memory-backend=mem']
    argv += ['-nographic', '-no-reboot']
    if nic_none:
        argv += ['-nic', 'none']
    return argv + ['-kernel', args.kernel, '-append', append]


def monitor_option(path):
    """QEMU's HMP monitor on a Unix socket, for monitor_command()."""
    return ['-monitor', f'unix:{path},server=on,wait=off']


# --- the guest's console --------------------------------------------------

class Guest:
    """QEMU with the guest's serial console on stdin/stdout; every wait is
    bounded."""

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

    def wait_marker(self, timeout):
        """The test guest's ready marker: its shell is up."""
        self.expect(re.escape(MARKER) + '\n', timeout, 'the ready marker')
        print(f'ok: marker after {time.monotonic() - self.start:.2f}s')

    def command(self, cmd, timeout=20):
        """Types a line; returns the output between its echo and the next prompt."""
        self.type_only(cmd)
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

    def poweroff(self, msg='poweroff makes QEMU exit'):
        """`poweroff`: QEMU must exit by itself within 30 s."""
        self.type_only('poweroff')
        status = self.wait_exit(30, 'poweroff')
        check('poweroff: failed' not in self.out, f'{msg} (status {status})')

    def check_came_up(self, driver):
        """The driver's boot line (`virtio-net: ... features X (offered Y)`)."""
        m = re.search(rf'^{driver}: \S+ features (0x[0-9a-f]+) \(offered (0x[0-9a-f]+)\)', self.out, re.M)
        check(m is not None, f'{driver} came up')
        print(f'info: {driver} features {m.group(1)} of offered {m.group(2)}')

    def check_none_refused(self):
        check(not re.search(r'^virtio-\S+: (refused|.*falling back)', self.out, re.M),
              'no virtio device was refused at boot')

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


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


# --- data the guest's commands produce ------------------------------------

def fnv1a32(data):
    h = 0x811c9dc5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xffffffff
    return h


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & M64
    return h


def numbered_chunk(seq, size):
    """The guest's numbered payloads (`net udp send`, `vsock send`): seq
    (BE), FNV-1a 32 of the rest (BE), then (seq * 7 + k) & 0xff."""
    body = bytes((seq * 7 + k) & 0xff for k in range(8, size))
    return struct.pack('>II', seq, fnv1a32(body)) + body


def make_image(path, sectors, seed):
    """A raw disk of random (but reproducible) content, so any stray write shows."""
    data = random.Random(seed).randbytes(sectors * SECTOR)
    with open(path, 'wb') as f:
        f.write(data)
    return data


# --- processes ------------------------------------------------------------

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


def pid_alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def wait_gone(pid, timeout=5):
    """True once pid has exited (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not pid_alive(pid)


# --- vhost-user: a private bus, devmgr on it, one bridge per device -------

DEVMGR = 'org.polyvm.DeviceManager1'
DEVICE_IFACE = 'org.polyvm.Device1'
VHOST_USER_RAM_MIB = 128  # polyvm's layout maps guest address == memfd offset below 3 GiB


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
    """polyvm-vhost-user-bridge: creates a `kind` device through devmgr and
    serves it on the vhost-user socket sock; its log goes to log_path."""

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
    check(wait_gone(br.pid), f'the {br.kind} device process {br.pid} is gone')


# --- network: a private namespace with a tap ------------------------------

GUEST_MAC = '52:54:00:12:34:56'
HOST_IP, GUEST_IP, PREFIX = '10.77.0.1', '10.77.0.2', 24
TAP = 'tgtap0'
CLONE_NEWNET = 0x40000000


def run_cmd(*argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise Failure(f'{" ".join(argv)} failed ({r.returncode}): {r.stdout.strip()}')
    return r.stdout


class Netns:
    """A network namespace with the tap TAP (HOST_IP/PREFIX); this process
    moves into it so QEMU, the bus, devmgr (children) and every socket here
    live there. Needs root and `ip`: a network test that silently skips
    proves nothing, so without them this is a Failure."""

    def __init__(self):
        self.name = f'polyvm-tg-{os.getpid()}'
        self.created = False

    def setup(self):
        if os.geteuid() != 0:
            raise Failure('this test needs root (a network namespace and a tap device); it does not skip')
        if not shutil.which('ip'):
            raise Failure('this test needs `ip` (iproute2) for a network namespace; it does not skip')
        run_cmd('ip', 'netns', 'add', self.name)
        self.created = True
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f'/run/netns/{self.name}', os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise Failure(f'setns into {self.name}: {os.strerror(ctypes.get_errno())}')
        finally:
            os.close(fd)
        run_cmd('ip', 'link', 'set', 'lo', 'up')
        run_cmd('ip', 'tuntap', 'add', 'dev', TAP, 'mode', 'tap')
        run_cmd('ip', 'addr', 'add', f'{HOST_IP}/{PREFIX}', 'dev', TAP)
        run_cmd('ip', 'link', 'set', TAP, 'up')
        # /sys still shows the namespace we came from: ask ip.
        m = re.search(r'link/ether ([0-9a-f:]{17})', run_cmd('ip', 'link', 'show', TAP))
        if not m:
            raise Failure(f'no MAC address for {TAP}')
        self.tap_mac = bytes.fromhex(m.group(1).replace(':', ''))
        print(f'ok: netns {self.name} with {TAP} {HOST_IP}/{PREFIX}')

    def delete(self):
        if self.created:
            subprocess.run(['ip', 'netns', 'del', self.name], check=False)
            self.created = False


def inet_csum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack(f'>{len(data) // 2}H', data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def host_ping(count, what, ident=0x4242):
    """ICMP echo from a raw socket (no ping binary needed): the number of
    replies from the guest that carry our identifier, sequence and payload."""
    got = 0
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        for seq in range(1, count + 1):
            payload = bytes(random.randrange(256) for _ in range(48))
            hdr = struct.pack('>BBHHH', 8, 0, 0, ident, seq)
            pkt = struct.pack('>BBHHH', 8, 0, inet_csum(hdr + payload), ident, seq) + payload
            s.sendto(pkt, (GUEST_IP, 0))
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                r, _, _ = select.select([s], [], [], deadline - time.monotonic())
                if not r:
                    break
                data, addr = s.recvfrom(2048)
                ihl = (data[0] & 0xf) * 4
                icmp = data[ihl:]
                if addr[0] != GUEST_IP or len(icmp) < 8:
                    continue
                typ, code, _, rid, rseq = struct.unpack('>BBHHH', icmp[:8])
                if typ == 0 and rid == ident and rseq == seq:
                    check(icmp[8:] == payload and inet_csum(icmp) == 0,
                          f'{what}: echo reply {seq} carries our payload with a good checksum')
                    got += 1
                    break
    return got


# --- main()'s frame -------------------------------------------------------

class Run:
    """One test's temp dir and what it started. stop() ends them newest
    first: QEMU, the bridges, the bus (devmgr with it), then the network
    namespace they live in."""

    def __init__(self, prefix, show_logs=False):
        self.tmpdir = tempfile.TemporaryDirectory(prefix=prefix)
        self.dir = self.tmpdir.name
        self.show_logs = show_logs
        self.start = time.monotonic()
        self.guest, self.bridges, self.bus, self.ns = None, [], None, None

    def path(self, name):
        return os.path.join(self.dir, name)

    def netns(self):
        self.ns = Netns()
        self.ns.setup()
        return self.ns

    def start_bus(self, build_root):
        self.bus = Bus(build_root)
        return self.bus

    def bridge(self, exe, kind, config, tag):
        """A bridge on vu<tag>.sock, its log in bridge<tag>.log."""
        br = Bridge(exe, self.bus, self.path(f'vu{tag}.sock'), kind, config, self.path(f'bridge{tag}.log'))
        self.bridges.append(br)
        return br

    def qemu(self, argv):
        print('running:', ' '.join(argv))
        self.guest = Guest(argv)
        return self.guest

    def boot(self, argv, timeout):
        """QEMU started and the guest's shell up."""
        g = self.qemu(argv)
        g.wait_marker(timeout)
        return g

    def print_logs(self):
        for br in self.bridges:
            print(f'--- {br.kind} bridge log ---\n{br.text()}--- end ---')

    def stop(self):
        if self.guest:
            self.guest.kill()
        for br in self.bridges:
            br.kill()
        if self.bus:
            self.bus.stop()
        if self.ns:
            self.ns.delete()


def run(prefix, body, show_logs=False, errors=(Failure,)):
    """main()'s frame: body(run) returns what passed; a Failure (or one of
    errors) prints the guest's output, the bridges' logs and FAIL. Returns
    the exit status; every process is stopped and the temp dir removed."""
    r = Run(prefix, show_logs)
    try:
        passed = body(r)
        if r.show_logs:
            r.print_logs()
    except errors as e:
        r.stop()
        if r.guest:
            print(f'--- guest output ---\n{r.guest.out}\n--- end ---')
        r.print_logs()
        print(f'FAIL: {e}')
        return 1
    finally:
        r.stop()
        r.tmpdir.cleanup()
    print(f'PASS: {passed} in {time.monotonic() - r.start:.2f}s')
    return 0
