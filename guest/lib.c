/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "console.h"
#include "lib.h"

void *memset(void *s, int c, size_t n) {
        unsigned char *p = s;
        while (n--)
                *p++ = (unsigned char) c;
        return s;
}

void *memcpy(void *dst, const void *src, size_t n) {
        unsigned char *d = dst;
        const unsigned char *s = src;
        while (n--)
                *d++ = *s++;
        return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
        unsigned char *d = dst;
        const unsigned char *s = src;
        if (d < s)
                return memcpy(dst, src, n);
        while (n--)
                d[n] = s[n];
        return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
        const unsigned char *x = a, *y = b;
        for (; n; n--, x++, y++)
                if (*x != *y)
                        return *x - *y;
        return 0;
}

size_t strlen(const char *s) {
        size_t n = 0;
        while (s[n])
                n++;
        return n;
}

int strncmp(const char *a, const char *b, size_t n) {
        for (; n; n--, a++, b++) {
                if (*a != *b)
                        return (unsigned char) *a - (unsigned char) *b;
                if (!*a)
                        return 0;
        }
        return 0;
}

int strcmp(const char *a, const char *b) {
        return strncmp(a, b, SIZE_MAX);
}

size_t strlcpy(char *dst, const char *src, size_t size) {
        size_t n = strlen(src);
        if (size > 0) {
                size_t k = n < size - 1 ? n : size - 1;
                memcpy(dst, src, k);
                dst[k] = 0;
        }
        return n;
}

bool parse_u64(const char *s, uint64_t *ret) {
        unsigned base = 10;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                base = 16;
                s += 2;
        }
        if (!*s)
                return false;
        uint64_t v = 0;
        for (; *s; s++) {
                unsigned d;
                if (*s >= '0' && *s <= '9')
                        d = *s - '0';
                else if (base == 16 && *s >= 'a' && *s <= 'f')
                        d = *s - 'a' + 10;
                else if (base == 16 && *s >= 'A' && *s <= 'F')
                        d = *s - 'A' + 10;
                else
                        return false;
                if (v > (UINT64_MAX - d) / base)
                        return false;
                v = v * base + d;
        }
        *ret = v;
        return true;
}

bool cmdline_get(const char *cmdline, const char *key, char *value, size_t size) {
        size_t klen = strlen(key);
        const char *p = cmdline;

        while (*p) {
                while (*p == ' ')
                        p++;
                const char *word = p;
                while (*p && *p != ' ')
                        p++;
                if ((size_t) (p - word) > klen && strncmp(word, key, klen) == 0 && word[klen] == '=') {
                        size_t n = p - word - klen - 1;
                        if (n >= size)
                                n = size - 1;
                        memcpy(value, word + klen + 1, n);
                        value[n] = 0;
                        return true;
                }
        }
        return false;
}

static void put_padded(const char *s, size_t len, int width, bool left, char pad) {
        int fill = width > (int) len ? width - (int) len : 0;
        if (!left)
                while (fill-- > 0)
                        console_putc(pad);
        for (size_t i = 0; i < len; i++)
                console_putc(s[i]);
        if (left)
                while (fill-- > 0)
                        console_putc(' ');
}

static size_t format_u64(char *buf, uint64_t v, unsigned base) {
        char tmp[24];
        size_t n = 0;
        do {
                tmp[n++] = "0123456789abcdef"[v % base];
                v /= base;
        } while (v);
        for (size_t i = 0; i < n; i++)
                buf[i] = tmp[n - 1 - i];
        return n;
}

void kvprintf(const char *fmt, va_list ap) {
        for (; *fmt; fmt++) {
                if (*fmt != '%') {
                        console_putc(*fmt);
                        continue;
                }
                fmt++;
                bool left = false;
                char pad = ' ';
                for (;; fmt++) {
                        if (*fmt == '-')
                                left = true;
                        else if (*fmt == '0')
                                pad = '0';
                        else
                                break;
                }
                int width = 0;
                while (*fmt >= '0' && *fmt <= '9')
                        width = width * 10 + (*fmt++ - '0');
                int lng = 0;
                while (*fmt == 'l') {
                        lng++;
                        fmt++;
                }

                char buf[24];
                size_t n;
                switch (*fmt) {
                case 's': {
                        const char *s = va_arg(ap, const char *);
                        if (!s)
                                s = "(null)";
                        put_padded(s, strlen(s), width, left, ' ');
                        break;
                }
                case 'c':
                        buf[0] = (char) va_arg(ap, int);
                        put_padded(buf, 1, width, left, ' ');
                        break;
                case 'd': {
                        int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
                        bool neg = v < 0;
                        buf[0] = '-';
                        n = format_u64(buf + neg, neg ? -(uint64_t) v : (uint64_t) v, 10) + neg;
                        put_padded(buf, n, width, left, pad);
                        break;
                }
                case 'u':
                case 'x': {
                        uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
                        n = format_u64(buf, v, *fmt == 'x' ? 16 : 10);
                        put_padded(buf, n, width, left, pad);
                        break;
                }
                case 'p':
                        console_putc('0');
                        console_putc('x');
                        n = format_u64(buf, (uintptr_t) va_arg(ap, void *), 16);
                        put_padded(buf, n, width, left, pad);
                        break;
                case '%':
                        console_putc('%');
                        break;
                default:
                        return;
                }
        }
}

void kprintf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        kvprintf(fmt, ap);
        va_end(ap);
}
