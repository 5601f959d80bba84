/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A minimal AML (ACPI Machine Language) writer for the DSDT: names,
 * integers, packages, buffers, scopes and devices with correct PkgLength
 * encoding (ACPI 6.5, 20.2.4). Writes into a caller's fixed buffer; any
 * overflow is remembered and reported by aml_finish(). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_METHOD_OP 0x14
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_EXT_OP_PREFIX 0x5b
#define AML_DEVICE_OP 0x82 /* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR 0x5c
#define AML_RETURN_OP 0xa4

struct aml {
        uint8_t *buf;
        size_t len, cap;
        bool overflow;
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* 0 and the length written, or -ENOBUFS if anything did not fit. */
int aml_finish(const struct aml *a, size_t *ret_len);

void aml_byte(struct aml *a, uint8_t v);
void aml_bytes(struct aml *a, const void *p, size_t n);
/* "\\_SB_", "_S5_", "COM1", "_SB_.COM1": segments shorter than 4 are padded with '_'. */
void aml_name_string(struct aml *a, const char *name);
/* The smallest encoding: ZeroOp, OneOp, Byte/Word/DWord/QWordConst. */
void aml_integer(struct aml *a, uint64_t v);

/* Starts a PkgLength-prefixed body; aml_pkg_end() inserts the encoded length. */
size_t aml_pkg_begin(struct aml *a);
void aml_pkg_end(struct aml *a, size_t start);

/* The PkgLength encoding of a body of content_len bytes (the length counts
 * itself): returns its size (1..4), 0 if too long. */
size_t aml_pkg_length_encode(size_t content_len, uint8_t out[4]);

/* EISA id "PNP0501" as the DWord _HID value. */
uint32_t aml_eisa_id(const char *id);
