/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The "memcheck" device kind, for tests: a jailed process that maps guest
 * memory as a DMA-capable device does (PROTO_FD_MEMORY through
 * device_memory_map(), so its userfaultfd goes to memmgr) and reads and
 * writes it on command. Its window of MEMCHECK_SIZE I/O ports at "port"
 * (default MEMCHECK_DEFAULT_PORT), little endian:
 *   MEMCHECK_GPA    8 bytes  guest physical address of the next access
 *   MEMCHECK_DATA   8 bytes  reads/writes guest memory at that address
 *                            (len bytes of the access; lib/guest-ram.h)
 *   MEMCHECK_STATUS 4 bytes  MEMCHECK_STATUS_MAPPED once memory is mapped
 * A data access before memory is mapped, or outside guest RAM, is an error
 * reply (ENODEV, EFAULT). */

#define MEMCHECK_DEFAULT_PORT 0x5200
#define MEMCHECK_SIZE 32
#define MEMCHECK_GPA 0
#define MEMCHECK_DATA 8
#define MEMCHECK_STATUS 16
#define MEMCHECK_STATUS_MAPPED 1u
