#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Drives `polyvmctl run` for ./demo: shows the guest's output as it comes,
types shell commands at the test guest's prompt, and checks the VM's end."""
import os
import select
import subprocess
import sys
import time

mode, build, work = sys.argv[1], sys.argv[2], sys.argv[3]
ctl = os.path.join(build, "tools", "polyvmctl")


class Console:
    def __init__(self, argv):
        print("demo: $ " + " ".join(argv), file=sys.stderr, flush=True)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.seen = b""

    def expect(self, needle, timeout):
        deadline = time.monotonic() + timeout
        start = len(self.seen)
        while needle.encode() not in self.seen[start:]:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([self.proc.stdout], [], [], 0)[0]:
                return False
            if select.select([self.proc.stdout], [], [], left)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    return needle.encode() in self.seen[start:]
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                self.seen += chunk
        return True

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self, timeout):
        try:
            self.expect("\0", timeout)  # drain until polyvmctl exits
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -1


def guest():
    c = Console([ctl, "run", "--name", "demo", "--kernel", os.path.join(build, "guest", "polyvm-testguest.elf"),
                 "--cpus", "2", "--memory", "256", "--append", "console=ttyS0"])
    if not c.expect("POLYVM-GUEST-READY", 120):
        print("\ndemo: the guest did not come up", file=sys.stderr)
        return 1
    for command in ["cpus", "mem", "e820", "acpi", "poweroff"]:
        if not c.expect("tg> ", 30):
            print("\ndemo: no prompt from the guest", file=sys.stderr)
            return 1
        c.send(command)
    rc = c.finish(60)
    print(f"\ndemo: polyvmctl exited with {rc}", file=sys.stderr)
    return rc


def linux():
    vmlinuz = sorted(p for p in os.listdir("/boot") if p.startswith("vmlinuz-") and p.endswith("-cloud-amd64"))
    if not vmlinuz:
        print("demo: no /boot/vmlinuz-*-cloud-amd64 (tools/install-deps installs it)", file=sys.stderr)
        return 1
    src, vmlinux = os.path.join("/boot", vmlinuz[-1]), os.path.join(work, "vmlinux")
    data = open(src, "rb").read()
    off = data.find(b"\x02\x21\x4c\x18")  # LZ4 legacy frame of the payload (PLATFORM.md)
    subprocess.run(["lz4", "-dc"], input=data[off:], stdout=open(vmlinux, "wb"), stderr=subprocess.DEVNULL)
    cmdline = ("console=ttyS0 earlyprintk=serial,ttyS0 noxsave "
               "clearcpuid=cx16,popcnt,fsgsbase,ssse3,sse4_1,sse4_2,aes,pclmulqdq,sha_ni "
               "cryptomgr.notests lpj=5000000 tsc=reliable")
    c = Console([ctl, "run", "--name", "demo-linux", "--kernel", vmlinux, "--cpus", "2", "--memory", "512",
                 "--append", cmdline])
    reached = c.expect("Memory: ", 180)
    if reached:
        c.expect("\n", 10)
    subprocess.run([ctl, "kill", "demo-linux"], stderr=subprocess.DEVNULL)
    c.finish(30)
    print("\ndemo: Linux printed its memory map, ACPI tables and CPU count" if reached else
          "\ndemo: Linux did not get as far as `Memory:`", file=sys.stderr)
    return 0 if reached else 1


sys.exit(guest() if mode == "guest" else linux())
