/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>

#include "ctl-format.h"

void ctl_format_bytes(uint64_t bytes, char *buf, size_t size) {
        static const char units[] = "KMGTPE";
        uint64_t unit = 1;
        int u = -1;

        while (u + 1 < (int) sizeof(units) - 1 && bytes / unit >= 1024) {
                unit *= 1024;
                u++;
        }
        if (u < 0)
                snprintf(buf, size, "%" PRIu64 "B", bytes);
        else if (bytes % unit == 0)
                snprintf(buf, size, "%" PRIu64 "%c", bytes / unit, units[u]);
        else
                /* one decimal, truncated so that 1023.99M never prints as 1024.0M */
                snprintf(buf, size, "%" PRIu64 ".%" PRIu64 "%c", bytes / unit, (bytes % unit) * 10 / unit, units[u]);
}

void ctl_format_progress(double fraction, unsigned width, char *buf, size_t size) {
        unsigned filled, pos = 0;

        if (!(fraction >= 0)) /* also NaN */
                fraction = 0;
        if (fraction > 1)
                fraction = 1;
        filled = (unsigned) (fraction * width);
        if (size == 0)
                return;
        if (pos + 1 < size)
                buf[pos++] = '[';
        for (unsigned i = 0; i < width && pos + 1 < size; i++)
                buf[pos++] = i < filled ? '#' : '.';
        buf[pos] = 0;
        snprintf(buf + pos, size - pos, "] %3u%%", (unsigned) (fraction * 100));
}
