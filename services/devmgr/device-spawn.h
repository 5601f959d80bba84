/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

#include "device.h"
#include "seccomp-policy.h"

/* Starts a jailed process serving dev (already created from its config) on
 * a new SOCK_SEQPACKET pair; returns the other end and the pid, which is a
 * direct child of the caller (to be reaped) and pid 1 of its namespace. */
int device_spawn(const struct device_kind *kind, void *dev, const struct seccomp_policy *policy, const char *name,
                 int *ret_endpoint, pid_t *ret_pid);
