/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The instructions polyvm completes itself when a software-backed KVM stops
 * with an emulation failure on them (docs/vcpu.md). Pure code: bytes and
 * register values in, what to do out, so it is unit-tested without KVM. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum emulate_insn {
        EMULATE_INT3,  /* CC: RIP += 1, then inject #BP (a trap: it returns after the int3) */
        EMULATE_CLAC,  /* 0F 01 CA: RFLAGS.AC = 0 */
        EMULATE_STAC,  /* 0F 01 CB: RFLAGS.AC = 1 */
        EMULATE_FWAIT, /* 9B: no x87 exception is ever pending for us, so a no-op */
        _EMULATE_INSN_MAX,
};

#define EMULATE_RFLAGS_AC (UINT64_C(1) << 18)
#define EMULATE_INSN_BYTES_MAX 15

/* The part of the vCPU state the completions touch. */
struct emulate_state {
        uint64_t rip;
        uint64_t rflags;
        bool inject_bp; /* set by EMULATE_INT3: queue #BP, no error code */
};

/* Matches the start of bytes (which may hold more than the instruction: KVM
 * reports what it fetched) against the exact sequences above, no prefixes.
 * Returns the instruction and its length, or -EOPNOTSUPP (unknown or
 * truncated). */
int emulate_decode(const uint8_t *bytes, size_t len, enum emulate_insn *ret_insn, size_t *ret_len);

/* Decodes and applies to s. Returns the instruction, or -EOPNOTSUPP with s
 * untouched. */
int emulate_complete(const uint8_t *bytes, size_t len, struct emulate_state *s, enum emulate_insn *ret_insn);

/* "int3", "clac", "stac", "fwait"; NULL out of range. */
const char *emulate_insn_to_string(enum emulate_insn i);

/* "emulation failure at rip 0x...: 0f c7 0e (3 bytes)" into buf (always
 * NUL-terminated, truncated to size). len 0 says "no instruction bytes". */
void emulate_format_failure(char *buf, size_t size, uint64_t rip, const uint8_t *bytes, size_t len);

