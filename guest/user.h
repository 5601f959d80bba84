/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* CPL 3: where heavy loops belong on a host that emulates CPL 0. User code
 * calls the kernel with `hlt` (a #GP whose handler advances RIP) and leaves
 * with `ud2`; `syscall` and `int n` do not work on that host. */

#include <stdbool.h>
#include "cpu.h"

/* The exception handler's hook for faults from CPL 3; true if handled. */
bool user_trap(struct trap_frame *f);

/* The `user` self-check: a loop at CPL 3, one call, and back. */
void user_selftest(void);
