/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A VM's virtio-vsock device gets the VM's CID (docs/config.md): the
 * launcher fills the device's "cid" from the VM's, and for an early VM its
 * "uds_path" from the VM's state directory (docs/early-vms.md). */

#include <stddef.h>
#include <stdint.h>

#define VSOCK_DEVICE_KIND "virtio-vsock"
/* The early VM's socket, in /run/polyvm/early/<cid>/. */
#define VSOCK_EARLY_SOCKET "vsock.sock"

/* config_json: the device's object without "kind", as the VM config gave
 * it. Sets "cid" to cid; a "cid" already there must be cid. With
 * fixed_uds_path (early VMs) sets "uds_path" to it; one already there must
 * be that path. *ret: the new JSON text (malloc'd). -EINVAL with err
 * naming the field (prefixed by where, e.g. "config.devices[2]"). */
int vsock_device_config(const char *config_json, uint32_t cid, const char *fixed_uds_path, const char *where,
                        char **ret, char *err, size_t errlen);
