#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the seed corpus of fuzz-plugin-proto: valid packets of every
plugin protocol type (and a few classic malformed ones), laid out as the
target reads them: one byte (fd count in bits 0-1, bit 4 = send on vCPU 0's
socket, bit 5 = vCPU 0 stopped at INIT first), then the packet. Layouts
follow lib/plugin-proto.h: tests/fuzz/make-corpus-plugin.py tests/fuzz/corpus"""
import os
import struct
import sys

MAGIC, VERSION = 0x47554C50, 1
(CREATE_IO_EVENT, CREATE_MEMORY, CREATE_IRQ_EVENT, DESTROY, GET_DIRTY_LOG, SET_IRQ_LINE, GET_CLOCK, SET_CLOCK,
 PAUSE_VCPUS, RESUME_VCPUS, GET_FEATURES, RESERVE_RANGE, UNRESERVE_RANGE, OPEN_CONNECTION,
 GET_VCPU_SOCKET) = range(1, 16)
(WAIT, RESUME, GET_REGS, SET_REGS, GET_SREGS, SET_SREGS, GET_FPU, SET_FPU, GET_MSRS, SET_MSRS, GET_CPUID, SET_CPUID,
 GET_LAPIC, SET_LAPIC, REQUEST_EXIT, PAUSE) = range(0x40, 0x50)
(R_OK, R_ERROR, R_ID, R_FD, R_DIRTY_LOG, R_CLOCK, R_FEATURES, R_EVENT, R_REGS, R_SREGS, R_FPU, R_MSRS, R_CPUID,
 R_LAPIC) = range(0x100, 0x10E)
VCPU, STOPPED = 0x10, 0x20
# sizeof the KVM structs (x86-64)
REGS, SREGS, FPU, LAPIC, CPUID_ENTRY = 144, 312, 416, 1024, 40


def packet(type_, body=b""):
    return struct.pack("<IHHII", MAGIC, VERSION, type_, len(body), 0) + body


def msrs(items):
    return struct.pack("<II", len(items), 0) + b"".join(struct.pack("<IIQ", i, 0, v) for i, v in items)


def event(kind, is_write=0, address=0, size=0, data=b"", user=0):
    return struct.pack("<IIQII", kind, is_write, address, size, 0) + data.ljust(8, b"\0") + struct.pack("<Q", user)


CORPUS = {
    "create-io-event": (0, packet(CREATE_IO_EVENT, struct.pack("<IIQIIQ", 0, 1, 0x3F8, 0, 0, 0))),
    "create-io-event-datamatch": (0, packet(CREATE_IO_EVENT, struct.pack("<IIQIIQ", 1, 4, 0xD0000000, 1, 0, 0x1234))),
    "create-memory": (1, packet(CREATE_MEMORY, struct.pack("<QQQII", 0, 0, 0x10000, 0, 0))),
    "create-memory-dirty": (1, packet(CREATE_MEMORY, struct.pack("<QQQII", 0, 0x100000, 0x10000, 2, 0))),
    "create-irq-event": (0, packet(CREATE_IRQ_EVENT, struct.pack("<II", 5, 1))),
    "destroy": (0, packet(DESTROY, struct.pack("<II", 1, 0))),
    "get-dirty-log": (0, packet(GET_DIRTY_LOG, struct.pack("<II", 1, 0))),
    "set-irq-line": (0, packet(SET_IRQ_LINE, struct.pack("<II", 4, 1))),
    "get-clock": (0, packet(GET_CLOCK)),
    "set-clock": (0, packet(SET_CLOCK, struct.pack("<QII", 1000, 0, 0))),
    "pause-vcpus": (0, packet(PAUSE_VCPUS, struct.pack("<Q", 3))),
    "resume-vcpus": (0, packet(RESUME_VCPUS, struct.pack("<Q", 1))),
    "get-features": (0, packet(GET_FEATURES)),
    "reserve-range": (0, packet(RESERVE_RANGE, struct.pack("<IIQQ", 0, 0, 0xE9, 1))),
    "unreserve-range": (0, packet(UNRESERVE_RANGE, struct.pack("<IIQQ", 1, 0, 0xD0000000, 0x1000))),
    "open-connection": (0, packet(OPEN_CONNECTION)),
    "get-vcpu-socket": (0, packet(GET_VCPU_SOCKET, struct.pack("<II", 1, 0))),
    "vcpu-wait": (VCPU, packet(WAIT)),
    "vcpu-wait-stopped": (VCPU | STOPPED, packet(WAIT)),
    "vcpu-resume": (VCPU | STOPPED, packet(RESUME, struct.pack("<II", 0, 0) + b"\0" * 8)),
    "vcpu-get-regs": (VCPU | STOPPED, packet(GET_REGS)),
    "vcpu-set-regs": (VCPU | STOPPED, packet(SET_REGS, b"\0" * REGS)),
    "vcpu-get-sregs": (VCPU | STOPPED, packet(GET_SREGS)),
    "vcpu-set-sregs": (VCPU | STOPPED, packet(SET_SREGS, b"\0" * SREGS)),
    "vcpu-set-fpu": (VCPU | STOPPED, packet(SET_FPU, b"\0" * FPU)),
    "vcpu-get-msrs": (VCPU | STOPPED, packet(GET_MSRS, msrs([(0x10, 0), (0xC0000080, 0)]))),
    "vcpu-set-msrs": (VCPU | STOPPED, packet(SET_MSRS, msrs([(0x174, 8)]))),
    "vcpu-get-cpuid": (VCPU | STOPPED, packet(GET_CPUID)),
    "vcpu-set-cpuid": (VCPU | STOPPED, packet(SET_CPUID, struct.pack("<II", 2, 0) + b"\1" * (2 * CPUID_ENTRY))),
    "vcpu-set-lapic": (VCPU | STOPPED, packet(SET_LAPIC, b"\0" * LAPIC)),
    "vcpu-request-exit": (VCPU, packet(REQUEST_EXIT)),
    "vcpu-pause": (VCPU, packet(PAUSE, struct.pack("<Q", 77))),
    # launcher -> plugin: parsed directly; the server answers them with EBADMSG
    "reply-id": (2, packet(R_ID, struct.pack("<II", 1, 0))),
    "reply-error": (0, packet(R_ERROR, struct.pack("<iI", 2, 0))),
    "reply-dirty-log": (0, packet(R_DIRTY_LOG, struct.pack("<II", 1, 16) + b"\xff" * 16)),
    "reply-event-io": (0, packet(R_EVENT, event(2, 1, 0xE9, 1, b"A"))),
    "reply-event-paused": (0, packet(R_EVENT, event(6, user=5))),
    "reply-msrs": (0, packet(R_MSRS, msrs([(0x10, 99)]))),
    "reply-cpuid": (0, packet(R_CPUID, struct.pack("<II", 0, 0))),
    "reply-fd": (1, packet(R_FD)),
    # malformed
    "bad-magic": (0, struct.pack("<IHHII", 0x504F4C59, 1, GET_FEATURES, 0, 0)),
    "bad-length": (0, struct.pack("<IHHII", MAGIC, VERSION, SET_IRQ_LINE, 12, 0) + b"\0" * 8),
    "msrs-count-lies": (VCPU | STOPPED, packet(SET_MSRS, struct.pack("<II", 3, 0) + b"\0" * 16)),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus"
    d = os.path.join(out, "fuzz-plugin-proto")
    os.makedirs(d, exist_ok=True)
    for name, (flags, data) in CORPUS.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(bytes([flags]) + data)


if __name__ == "__main__":
    main()
