/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The little libc the guest needs: string helpers and a printf that writes
 * to the serial console. */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
size_t strlcpy(char *dst, const char *src, size_t size);

/* %s %c %d %u %x %p, with l/ll, a width and the 0 and - flags. */
void kvprintf(const char *fmt, va_list ap);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A decimal or 0x-prefixed hexadecimal number; false on junk or overflow. */
bool parse_u64(const char *s, uint64_t *ret);

/* Finds "key=value" in a space-separated command line; copies the value. */
bool cmdline_get(const char *cmdline, const char *key, char *value, size_t size);
