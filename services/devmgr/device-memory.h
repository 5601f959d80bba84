/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Guest memory in a device process (docs/devmgr.md, "Guest memory"): the
 * mapping, and the userfaultfd that lets memmgr swap guest memory out while
 * this process maps it. Runs inside the jail, after the seccomp filter is on. */

#include <stdint.h>

/* Maps the guest memory memfd a kind got as PROTO_FD_MEMORY: call it from
 * the kind's attach_fd() when the fd arrives (at any time after Activate).
 *
 * - memfd stays the caller's: it may close it once this returns.
 * - On success *ret_mem is a MAP_SHARED read-write mapping of the whole
 *   memfd (offset 0 at *ret_mem) and *ret_size its size, laid out as
 *   lib/guest-ram.h says (use guest_ram_ptr(*ret_mem, *ret_size, gpa, len)
 *   for every guest address). The mapping lives as long as the process:
 *   never munmap or remap it, memmgr guards it at this address.
 * - Once per process: a second call returns -EALREADY and maps nothing.
 * - -EINVAL if the memfd's size is 0, not a whole number of pages or above
 *   LAYOUT_MAX_MEMORY; -errno from fstat/mmap. Nothing is mapped then.
 * - Right after mapping, it creates the process's userfaultfd from the
 *   /dev/userfaultfd fd devmgr left it (kinds with maps_guest_memory),
 *   registers missing pages over the mapping (so that nothing it touches
 *   can read a swapped-out page as zeros before memmgr holds the uffd),
 *   sends it with the mapping's address and size to devmgr, which hands it
 *   to memmgr, and closes its own copy. If that fails the device still
 *   works, without swap protection, and a warning is logged: the return
 *   value is that of the mapping alone.
 * - The first touch of a page nobody touched before may then wait for
 *   memmgr (a few µs), and while the VM is swapped out any page may. */
int device_memory_map(int memfd, void **ret_mem, uint64_t *ret_size);

/* For the jail (device-spawn.c), before the device serves: the
 * /dev/userfaultfd fd devmgr opened for this process (-1: none; taken) and
 * the report socket (borrowed; device-report.h). */
void device_memory_setup(int userfaultfd_dev, int report);
