/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "device.h"
#include "jail.h"
#include "seccomp-policy.h"

struct device_process {
        pid_t pid;    /* direct child of the caller (to be reaped), pid 1 of its namespace */
        int endpoint; /* the launcher's end of the device protocol */
        int report;   /* devmgr's end of the report channel (device-report.h) */
        int log;      /* the read end of its stderr (device-log.h) */
        bool userns;  /* whether it got a user namespace (the host may refuse one) */
};

/* Starts a jailed process serving dev (already created from its config) on
 * a new SOCK_SEQPACKET pair. jail->userns asks for a user namespace; if the
 * host refuses one, the device is jailed without and ret->userns says so. */
int device_spawn(const struct device_kind *kind, void *dev, const struct seccomp_policy *policy,
                 const struct jail_config *jail, const char *name, struct device_process *ret);

/* Shared with plugin-spawn.c. In the child: blocks until devmgr has
 * written the id maps (DEVICE_REPORT_GO); fails if devmgr is gone. */
int device_spawn_wait_go(int report);
/* clone() into the jail's namespaces, as a direct child with SIGCHLD: the
 * pid, 0 in the child, -1 with errno. Without a user namespace if the host
 * refuses one (c->userns is then cleared, with a warning). */
pid_t device_spawn_clone(struct jail_config *c, const char *name);
