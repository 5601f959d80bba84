#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the seed corpus of the protocol fuzz targets: a few valid packets
of every type, laid out as the targets read them (one byte: fd count in its
low bits, bit 4 = activate the device first, bit 5 = and put it to sleep;
then the packet). Layouts follow lib/proto.h; run it again after a change
there: tests/fuzz/make-corpus.py tests/fuzz/corpus"""
import json
import os
import struct
import sys

MAGIC, VERSION = 0x504F4C59, 1
(ACTIVATE, READ, WRITE, READ_CONFIG, WRITE_CONFIG, INIT_PCI_CONFIG_MAPPING, READ_VIRTUAL_CONFIG,
 WRITE_VIRTUAL_CONFIG, DESTROY_DEVICE, SHUTDOWN, GET_RANGES, SNAPSHOT, RESTORE, SLEEP, WAKE,
 ATTACH_FD) = range(1, 17)
(R_OK, R_ERROR, R_DATA, R_U32, R_RANGES, R_CONFIG_WRITE, R_BOOL, R_SNAPSHOT) = range(0x100, 0x108)
PIO, MMIO = 0, 1
ACTIVE, ASLEEP = 0x10, 0x20


def packet(type_, body=b""):
    return struct.pack("<IHHII", MAGIC, VERSION, type_, len(body), 0) + body


def access(address, offset, length, data=b"", range_=0):
    return struct.pack("<QQII", address, offset, length, range_) + data.ljust(8, b"\0")


def u32(value, reg):
    return struct.pack("<II", value, reg)


def rng(base, length, bus):
    return struct.pack("<QQII", base, length, bus, 0)


def ranges(items, irq=0):
    body = struct.pack("<II", len(items), irq)
    for r in items:
        body += rng(*r)
    return body + rng(0, 0, 0) * (16 - len(items))


def config_result(io_remove=(), io_add=(), mmio_remove=(), mmio_add=(), pci=()):
    body = struct.pack("<6I", len(mmio_remove), len(mmio_add), len(io_remove), len(io_add), len(pci), 0)
    for lst in (mmio_remove, mmio_add, io_remove, io_add):
        for r in lst:
            body += rng(*r)
        body += rng(0, 0, 0) * (4 - len(lst))
    return body + struct.pack("<4I", *(list(pci) + [0] * (4 - len(pci))))


def error(errno_, message):
    return struct.pack("<i", errno_) + message.encode().ljust(200, b"\0")


SNAP = json.dumps({"config": [0, 0, 0, 0, 0x500] + [0] * 11, "virtual_config": [0] * 16,
                   "port": 0x500, "size": 8, "data": "0102030405060708"}, separators=(",", ":")).encode()

DEVICE = {
    "activate": (0, packet(ACTIVATE)),
    "activate-again": (ACTIVE, packet(ACTIVATE)),
    "read-before-activate": (0, packet(READ, access(0x500, 0, 1))),
    "read-1": (ACTIVE, packet(READ, access(0x500, 0, 1))),
    "read-8": (ACTIVE, packet(READ, access(0x500, 0, 8))),
    "read-asleep": (ACTIVE | ASLEEP, packet(READ, access(0x502, 2, 2))),
    "write-4": (ACTIVE, packet(WRITE, access(0x504, 4, 4, b"\x01\x02\x03\x04"))),
    "read-config": (ACTIVE, packet(READ_CONFIG, u32(0, 4))),
    "write-config": (ACTIVE, packet(WRITE_CONFIG, struct.pack("<III", 1, 1, 2) + b"\xaa\xbb\0\0")),
    "write-config-bar": (ACTIVE, packet(WRITE_CONFIG, struct.pack("<III", 4, 0, 2) + b"\x00\x07\0\0")),
    "init-pci-config-mapping": (ACTIVE | 1, packet(INIT_PCI_CONFIG_MAPPING, struct.pack("<QQ", 0, 4096))),
    "read-virtual-config": (ACTIVE, packet(READ_VIRTUAL_CONFIG, u32(0, 3))),
    "write-virtual-config": (ACTIVE, packet(WRITE_VIRTUAL_CONFIG, u32(0x1234, 3))),
    "destroy-device": (ACTIVE, packet(DESTROY_DEVICE)),
    "shutdown": (ACTIVE, packet(SHUTDOWN)),
    "get-ranges": (ACTIVE, packet(GET_RANGES)),
    "snapshot": (ACTIVE, packet(SNAPSHOT)),
    "restore": (ACTIVE, packet(RESTORE, SNAP)),
    "restore-bad": (ACTIVE, packet(RESTORE, b'{"port":1280,"size":8,"data":"zz"}')),
    "sleep": (ACTIVE, packet(SLEEP)),
    "wake": (ACTIVE | ASLEEP, packet(WAKE)),
    "attach-fd": (ACTIVE | 1, packet(ATTACH_FD, struct.pack("<II", 1, 0))),
    "reply-as-request": (ACTIVE, packet(R_OK)),
}

LAUNCHER = {
    "ok": (0, packet(R_OK)),
    "error": (0, packet(R_ERROR, error(11, "Read failed: device is asleep"))),
    "data": (0, packet(R_DATA, struct.pack("<II", 4, 0) + b"\x01\x02\x03\x04\0\0\0\0")),
    "u32": (0, packet(R_U32, u32(0xdeadbeef, 4))),
    "ranges": (0, packet(R_RANGES, ranges([(0x3f8, 8, PIO), (0xd0000000, 0x1000, MMIO)], irq=4))),
    "config-write": (0, packet(R_CONFIG_WRITE, config_result(io_remove=[(0x500, 8, PIO)],
                                                             io_add=[(0x700, 8, PIO)], pci=[8]))),
    "bool": (0, packet(R_BOOL, struct.pack("<II", 1, 0))),
    "snapshot": (0, packet(R_SNAPSHOT, SNAP)),
    "request-as-reply": (0, packet(ACTIVATE)),
}


def write(root, name, cases):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    for case, (flags, pkt) in cases.items():
        with open(os.path.join(d, case), "wb") as f:
            f.write(bytes([flags]) + pkt)


root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
write(root, "fuzz-proto-device", DEVICE)
write(root, "fuzz-proto-launcher", LAUNCHER)
