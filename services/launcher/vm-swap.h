/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Vm1.SwapOut/SwapIn/Trim: thin forwards to the VM's Memory1 object in
 * memmgr, which does the work (docs/memmgr.md, "Swap"). */

#include <systemd/sd-bus.h>

struct launcher;
struct vm;

#define VM_SWAP_STATE_MAX 16
#define VM_SWAP_STATE_LOST "lost"

/* Calls member ("SwapOut", "SwapIn", "Trim") on the VM's Memory1 object;
 * memmgr's error, name and message, is passed through. */
int vm_swap_forward(struct vm *vm, const char *member, sd_bus_error *error);

/* Follows memmgr for every VM: each Memory1.SwapState change (mirrored as
 * Vm1.SwapState), and memmgr leaving the bus. Pages that are out live only
 * in memmgr's swap file and behind its uffds: if memmgr goes while a VM's
 * SwapState is not "ready", that memory is gone. The VM's SwapState becomes
 * "lost" and a running or paused VM fails (a stopped one loses nothing: a
 * start loads a fresh image). */
int vm_swap_watch(struct launcher *l);

/* Vm1.SwapState: memmgr's state of the VM's memory, "ready" until it says
 * otherwise, or "lost". */
const char *vm_swap_state(const struct vm *vm);
