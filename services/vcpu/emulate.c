/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "emulate.h"
#include "layout.h"
#include "macro.h"

/* Exact byte sequences only: real kernels emit them without prefixes, and a
 * prefixed form is something else we should not guess at. */
static const struct {
        uint8_t bytes[3];
        size_t len;
} insn_table[_EMULATE_INSN_MAX] = {
        [EMULATE_INT3] = { { 0xcc }, 1 },
        [EMULATE_CLAC] = { { 0x0f, 0x01, 0xca }, 3 },
        [EMULATE_STAC] = { { 0x0f, 0x01, 0xcb }, 3 },
        [EMULATE_FWAIT] = { { 0x9b }, 1 },
};

static const char *const insn_names[_EMULATE_INSN_MAX] = {
        [EMULATE_INT3] = "int3",
        [EMULATE_CLAC] = "clac",
        [EMULATE_STAC] = "stac",
        [EMULATE_FWAIT] = "fwait",
};

const char *emulate_insn_to_string(enum emulate_insn i) {
        if ((unsigned) i >= _EMULATE_INSN_MAX)
                return NULL;
        return insn_names[i];
}

int emulate_decode(const uint8_t *bytes, size_t len, enum emulate_insn *ret_insn, size_t *ret_len) {
        if (!bytes || len == 0)
                return -EOPNOTSUPP;

        for (size_t i = 0; i < _EMULATE_INSN_MAX; i++) {
                if (len < insn_table[i].len || memcmp(bytes, insn_table[i].bytes, insn_table[i].len) != 0)
                        continue;
                if (ret_insn)
                        *ret_insn = (enum emulate_insn) i;
                if (ret_len)
                        *ret_len = insn_table[i].len;
                return (int) i;
        }
        return -EOPNOTSUPP;
}

int emulate_complete(const uint8_t *bytes, size_t len, struct emulate_state *s, enum emulate_insn *ret_insn) {
        enum emulate_insn insn;
        size_t n;
        int r;

        r = emulate_decode(bytes, len, &insn, &n);
        if (r < 0)
                return r;

        s->rip += n;
        s->inject_bp = false;
        switch (insn) {
        case EMULATE_INT3:
                s->inject_bp = true;
                break;
        case EMULATE_CLAC:
                s->rflags &= ~EMULATE_RFLAGS_AC;
                break;
        case EMULATE_STAC:
                s->rflags |= EMULATE_RFLAGS_AC;
                break;
        case EMULATE_FWAIT:
        case _EMULATE_INSN_MAX:
                break;
        }
        if (ret_insn)
                *ret_insn = insn;
        return (int) insn;
}

void emulate_format_failure(char *buf, size_t size, uint64_t rip, const uint8_t *bytes, size_t len) {
        size_t off;
        int k;

        if (!buf || size == 0)
                return;

        k = snprintf(buf, size, "emulation failure at rip 0x%" PRIx64 ":", rip);
        if (k < 0 || (size_t) k >= size)
                return;
        off = (size_t) k;

        if (!bytes || len == 0) {
                snprintf(buf + off, size - off, " no instruction bytes");
                return;
        }

        len = MIN(len, (size_t) EMULATE_INSN_BYTES_MAX);
        for (size_t i = 0; i < len; i++) {
                k = snprintf(buf + off, size - off, " %02x", bytes[i]);
                if (k < 0 || (size_t) k >= size - off)
                        return;
                off += (size_t) k;
        }
        snprintf(buf + off, size - off, " (%zu byte%s)", len, len == 1 ? "" : "s");
}

