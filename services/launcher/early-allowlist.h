/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The early launcher's allowlists (docs/early-vms.md): one JSON file per
 * partition naming the VMs its executables may create, each with a fixed
 * vsock CID and the one executable allowed to create it. Pure: files and
 * strings in, a verdict with a D-Bus error name and a message out. */

#include <stddef.h>
#include <stdint.h>

struct early_vm {
        char *name;
        uint32_t cid;
        char *path;
};

void early_vm_done(struct early_vm *vm);

/* The CID range [*min, *max] of a partition ("usr" 100..199, "opt"
 * 200..299); -ENOENT for any other partition. */
int early_partition_cid_range(const char *partition, uint32_t *min, uint32_t *max);

/* The allowlist file of a partition under root (NULL or "" for "/"):
 * <root>/usr/lib/polyvm/early-vms.json or <root>/opt/polyvm/early-vms.json.
 * -ENOENT for any other partition. */
int early_allowlist_path(const char *root, const char *partition, char **ret);

/* Splits the caller's executable exe (an absolute path as the kernel reports
 * it) into its path relative to root (the root prefix stripped, so it reads
 * as the system would see it: "/usr/bin/a") and the partition (its first
 * component: "usr"). Fails with -EINVAL if exe is not absolute, not under
 * root, or has no directory component. */
int early_exe_split(const char *root, const char *exe, char **ret_relative, char **ret_partition);

/* Finds name in the allowlist file for partition: it must appear exactly
 * once, with a CID in the partition's range. On failure returns < 0, sets
 * *ret_error to one of the POLYVM_ERROR_* names of lib/bus-errors.h, and
 * writes a message naming the file, the entry and the rule to err. */
int early_allowlist_find(const char *file, const char *partition, const char *name, struct early_vm *ret,
                         const char **ret_error, char *err, size_t errlen);

/* The whole check of one CreateVm: the caller's exe (kernel path), its
 * partition, the entry for name in that partition's file under root, and
 * the entry's path against the caller's path (relative to root). */
int early_allowlist_check(const char *root, const char *exe, const char *name, struct early_vm *ret,
                          const char **ret_error, char *err, size_t errlen);
