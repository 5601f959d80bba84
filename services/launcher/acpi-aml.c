/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "acpi-aml.h"

void aml_init(struct aml *a, uint8_t *buf, size_t cap) {
        *a = (struct aml) { .buf = buf, .cap = cap };
}

int aml_finish(const struct aml *a, size_t *ret_len) {
        if (a->overflow)
                return -ENOBUFS;
        *ret_len = a->len;
        return 0;
}

void aml_bytes(struct aml *a, const void *p, size_t n) {
        if (a->overflow || n > a->cap - a->len) {
                a->overflow = true;
                return;
        }
        memcpy(a->buf + a->len, p, n);
        a->len += n;
}

void aml_byte(struct aml *a, uint8_t v) {
        aml_bytes(a, &v, 1);
}

static void name_seg(struct aml *a, const char *s, size_t n) {
        char seg[4] = { '_', '_', '_', '_' };

        memcpy(seg, s, n > 4 ? 4 : n);
        aml_bytes(a, seg, 4);
}

void aml_name_string(struct aml *a, const char *name) {
        const char *dot;

        if (name[0] == '\\') {
                aml_byte(a, AML_ROOT_CHAR);
                name++;
        }
        dot = strchr(name, '.');
        if (dot) {
                aml_byte(a, AML_DUAL_NAME_PREFIX);
                name_seg(a, name, (size_t) (dot - name));
                name_seg(a, dot + 1, strlen(dot + 1));
        } else
                name_seg(a, name, strlen(name));
}

void aml_integer(struct aml *a, uint64_t v) {
        uint8_t le[8];

        for (size_t i = 0; i < 8; i++)
                le[i] = (uint8_t) (v >> (8 * i));
        if (v == 0)
                aml_byte(a, AML_ZERO_OP);
        else if (v == 1)
                aml_byte(a, AML_ONE_OP);
        else if (v <= 0xff) {
                aml_byte(a, AML_BYTE_PREFIX);
                aml_bytes(a, le, 1);
        } else if (v <= 0xffff) {
                aml_byte(a, AML_WORD_PREFIX);
                aml_bytes(a, le, 2);
        } else if (v <= 0xffffffff) {
                aml_byte(a, AML_DWORD_PREFIX);
                aml_bytes(a, le, 4);
        } else {
                aml_byte(a, AML_QWORD_PREFIX);
                aml_bytes(a, le, 8);
        }
}

/* One byte holds up to 63 in bits 0-5; longer lengths put the count of
 * following bytes in bits 6-7, the low nibble in bits 0-3 and the rest in
 * the following bytes. */
size_t aml_pkg_length_encode(size_t content_len, uint8_t out[4]) {
        size_t total;

        if (content_len + 1 <= 0x3f) {
                out[0] = (uint8_t) (content_len + 1);
                return 1;
        }
        for (size_t n = 2; n <= 4; n++) {
                total = content_len + n;
                if (total < (1ULL << (4 + 8 * (n - 1)))) {
                        out[0] = (uint8_t) (((n - 1) << 6) | (total & 0xf));
                        for (size_t i = 1; i < n; i++)
                                out[i] = (uint8_t) (total >> (4 + 8 * (i - 1)));
                        return n;
                }
        }
        return 0;
}

size_t aml_pkg_begin(struct aml *a) {
        return a->len;
}

void aml_pkg_end(struct aml *a, size_t start) {
        uint8_t enc[4];
        size_t n;

        if (a->overflow)
                return;
        n = aml_pkg_length_encode(a->len - start, enc);
        if (n == 0 || n > a->cap - a->len) {
                a->overflow = true;
                return;
        }
        memmove(a->buf + start + n, a->buf + start, a->len - start);
        memcpy(a->buf + start, enc, n);
        a->len += n;
}

uint32_t aml_eisa_id(const char *id) {
        uint32_t v = 0;
        uint16_t vendor = (uint16_t) (((id[0] - 0x40) & 0x1f) << 10 | ((id[1] - 0x40) & 0x1f) << 5 |
                                      ((id[2] - 0x40) & 0x1f));

        for (size_t i = 3; i < 7; i++) {
                char c = id[i];
                v = v << 4 | (uint32_t) (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        /* Big-endian on the wire: vendor high byte, vendor low byte, product high, product low. */
        return (uint32_t) (vendor >> 8) | (uint32_t) (vendor & 0xff) << 8 | ((v >> 8) & 0xff) << 16 | (v & 0xff) << 24;
}
