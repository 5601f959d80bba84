/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The VM configuration (docs/config.md) that `polyvmctl run` builds from
 * its options. Pure: no file system access beyond what the caller passes. */

#include <stddef.h>

#include "ctl-args.h"

/* Builds the config JSON text into *ret (malloc'd). Relative paths are made
 * absolute against cwd. A device "KIND,KEY=VALUE,..." becomes
 * {"kind": KIND, KEY: VALUE, ...}; VALUE is a number if it is all digits,
 * a boolean if true/false, else a string; a relative "path" (a disk image)
 * is made absolute like the kernel's. Returns -EINVAL with a message in
 * err for a malformed --device, -ENOMEM on allocation failure. */
int ctl_run_config_build(const struct ctl_run_options *o, const char *cwd, char **ret, char *err, size_t errlen);

/* The VM name `run` uses without --name: "run-<pid>". */
void ctl_run_default_name(unsigned long pid, char *buf, size_t size);
