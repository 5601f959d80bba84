/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Human-readable output for polyvmctl. */

#include <stddef.h>
#include <stdint.h>

/* "512M", "1G", "1.5G", "4K", "100B": the largest binary unit that keeps
 * the number >= 1, one decimal unless it is whole. */
void ctl_format_bytes(uint64_t bytes, char *buf, size_t size);

/* "[#######.............]  35%": width cells of bar; fraction is clamped
 * to 0..1 (NaN counts as 0). */
void ctl_format_progress(double fraction, unsigned width, char *buf, size_t size);
