/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The jail of a device process, applied by the child itself right after the
 * fork, before it serves anything (docs/devmgr.md says what it builds):
 * the namespaces come from the clone flags (JAIL_CLONE_FLAGS), jail_enter()
 * does the rest but seccomp, which comes last (seccomp-policy.h). */

#include <sched.h>

#define JAIL_UID 65534 /* nobody */
#define JAIL_GID 65534 /* nogroup */
#define JAIL_NOFILE 16

/* The child is pid 1 of a new pid namespace and has its own mount, net, ipc,
 * uts and cgroup namespaces. No user namespace: the host's root creates the
 * others without one, and setresuid below leaves it unprivileged anyway. */
#define JAIL_CLONE_FLAGS \
        (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP)

/* Keeps only keep_fd (moved to fd 3) and stderr; stdin and stdout become
 * /dev/null. Returns the new number of keep_fd or -errno. */
int jail_close_fds(int keep_fd);

/* Empty read-only root, rlimits, unprivileged ids, no capabilities at all,
 * no new privileges, killed when devmgr dies. Returns 0 or -errno. */
int jail_enter(void);
