/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the early launcher accepts of a VM config beyond vm_config_parse():
 * nothing that needs more than the early boot host has (docs/early-vms.md).
 * Pure, unit-tested. */

#include <stddef.h>

#include "config.h"

/* Device kinds an early VM may have: the console. (virtio-vsock joins when
 * it exists.) */
extern const char *const early_device_kinds[];

/* c is text parsed by vm_config_parse(). Refuses with -EINVAL and a message
 * naming the field and the rule: a "cid" (the allowlist assigns it), no
 * explicit "devices" (the defaults include rtc), a device kind other than
 * the console, and any path under /var (kernel, initrd, or any string in a
 * device's fields). */
int early_config_check(const char *text, const struct vm_config *c, char *err, size_t errlen);
