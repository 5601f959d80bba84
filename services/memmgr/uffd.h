/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The real userfaultfd operations memmgr needs, apart from the list logic
 * (uffd-list.h) so that the list can be tested with fake fds. */

#include <stdbool.h>
#include <stdint.h>
#include <linux/userfaultfd.h>
#include <sys/types.h>

#include "uffd-list.h"

/* 0 if fd is a userfaultfd on which UFFDIO_API was done, and makes it
 * non-blocking; -ENOTTY if it is another kind of fd, -EBADFD if it was
 * never initialised with UFFDIO_API, other -errno. */
int uffd_check(int fd);

/* Whether the process (mm) that created the uffd is gone: 1 if it is, 0 if
 * not, -errno if the probe failed. Asks the kernel, not the process: a
 * UFFDIO_COPY from a page that is never readable returns ESRCH for a dead
 * mm and fails without filling anything for a live one. */
int uffd_probe_dead(int fd);

/* uffd_dead_check_t for uffd_list_gc(): ESRCH seen, or the probe says so. */
bool uffd_entry_is_dead(const struct uffd_entry *e, void *userdata);

/* Reads pending messages (up to a bound, so one uffd cannot starve the
 * others) and answers every missing-page fault with UFFDIO_ZEROPAGE, or a
 * wake-up if another process filled the page first; adds the count to
 * *served. Returns -ESRCH when the uffd's process is gone, 0 otherwise
 * (other failures are logged and the faulting thread is woken to retry). */
int uffd_serve(int fd, uint64_t *served);

/* Answers one page-fault message of uffd index on fd; returns 0 when the
 * fault was answered (or the thread woken), -ESRCH when the uffd's process
 * is gone, other -errno after logging. Swap installs one (swap.h). */
typedef int (*uffd_fault_handler_t)(int fd, uint32_t index, const struct uffd_msg *msg, void *userdata);

/* uffd_serve() with handler answering the faults (NULL: zeros as above). */
int uffd_serve_with(int fd, uint32_t index, uint64_t *served, uffd_fault_handler_t handler, void *userdata);

/* The plain answers, for handlers. */
int uffd_zeropage(int fd, uint64_t start, uint64_t len);
int uffd_wake(int fd, uint64_t start, uint64_t len);

/* The pid a pidfd refers to (from /proc/self/fdinfo). -EBADF if fd is not
 * a pidfd, -ESRCH if its process has been reaped. */
int pidfd_get_pid(int pidfd, pid_t *ret);
