#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the seed corpus of fuzz-virtqueue: well-formed split rings (and a
few classic malformed ones) in the target's input format: byte 0 log2 of the
queue size, byte 1 features (bit 0 INDIRECT_DESC, bit 1 EVENT_IDX), three
le16 ring addresses, then guest RAM from address 0. Layouts follow
lib/virtqueue.h: tests/fuzz/make-corpus-virtqueue.py tests/fuzz/corpus"""
import os
import struct
import sys

NEXT, WRITE, INDIRECT = 1, 2, 4
DESC, AVAIL, USED, TABLE, BUF = 0x100, 0x800, 0xA00, 0xC00, 0x1000


class Ring:
    def __init__(self, log2, features=0):
        self.log2, self.size, self.features = log2, 1 << log2, features
        self.ram = bytearray(0x2000)
        self.avail_idx = 0

    def desc(self, i, addr, length, flags=0, nxt=0, table=DESC):
        struct.pack_into("<QIHH", self.ram, table + 16 * i, addr, length, flags, nxt)

    def avail(self, head):
        struct.pack_into("<H", self.ram, AVAIL + 4 + 2 * (self.avail_idx % self.size), head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        struct.pack_into("<H", self.ram, AVAIL + 2, self.avail_idx)

    def bytes(self):
        return struct.pack("<BBHHH", self.log2, self.features, DESC, AVAIL, USED) + bytes(self.ram)


def seeds():
    r = Ring(3)
    r.desc(0, BUF, 64)
    r.avail(0)
    yield "single", r

    r = Ring(3, 2)
    r.desc(0, BUF, 16, NEXT, 1)
    r.desc(1, BUF + 0x10, 512, NEXT, 2)
    r.desc(2, BUF + 0x400, 1, WRITE)
    r.desc(3, BUF + 0x500, 8, WRITE)
    r.avail(0)
    r.avail(3)
    yield "read-write-event-idx", r

    r = Ring(4, 1)
    r.desc(0, BUF, 16, NEXT, 5)
    r.desc(5, TABLE, 3 * 16, INDIRECT)
    r.desc(0, BUF + 0x10, 8, NEXT, 2, table=TABLE)
    r.desc(2, BUF + 0x20, 32, WRITE | NEXT, 1, table=TABLE)
    r.desc(1, BUF + 0x40, 64, WRITE, table=TABLE)
    r.avail(0)
    yield "indirect", r

    r = Ring(2)
    for i in range(4):
        r.desc(i, BUF, 4, NEXT, (i + 1) % 4)
    r.avail(0)
    yield "loop", r

    r = Ring(3, 1)
    r.desc(0, TABLE, 16, INDIRECT)
    r.desc(0, TABLE + 0x100, 16, INDIRECT, table=TABLE)
    r.avail(0)
    yield "nested-indirect", r

    r = Ring(3, 3)
    for i in range(8):
        r.desc(i, BUF + 0x100 * i, 0x100, WRITE if i % 2 else 0)
        r.avail(i)
    yield "full-ring", r


def main():
    out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus", "fuzz-virtqueue")
    os.makedirs(out, exist_ok=True)
    for name, ring in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(ring.bytes())


if __name__ == "__main__":
    main()
