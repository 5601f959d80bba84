/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Vm1.SwapOut/SwapIn/Trim: thin forwards to the VM's Memory1 object in
 * memmgr, which does the work (docs/memmgr.md, "Swap"). */

#include <systemd/sd-bus.h>

struct vm;

/* Calls member ("SwapOut", "SwapIn", "Trim") on the VM's Memory1 object;
 * memmgr's error, name and message, is passed through. */
int vm_swap_forward(struct vm *vm, const char *member, sd_bus_error *error);
