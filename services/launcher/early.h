/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The early launcher (polyvm-launcher --early, docs/early-vms.md): who may
 * create which VM, with which CID, and the VM's state directory under
 * /run/polyvm/early/<cid>/. Nothing here touches /var. */

#include <systemd/sd-bus.h>

#include "vm.h"

/* Raises RLIMIT_MEMLOCK as far as the host lets us (early) or just reads it
 * (regular), logs what we have and stores it in l->memlock_limit. */
void launcher_memlock_setup(struct launcher *l);

/* CreateVm on the early launcher: the caller (from m's credentials) must be
 * the executable the allowlist names for this VM; the config must be
 * early-safe. Sets a named error on refusal. */
int early_create_vm(struct launcher *l, sd_bus_message *m, const char *name, const char *config_text,
                    sd_bus_error *error, struct vm **ret);

/* Removes the state directory of an early VM that is gone. */
void early_vm_removed(struct launcher *l, uint32_t cid);

/* <root>/run/polyvm/early/<cid>, malloc'd. */
int early_vm_dir(const char *root, uint32_t cid, char **ret);
