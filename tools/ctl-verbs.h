/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One function per polyvmctl command; each returns the exit code. */

#include <systemd/sd-bus.h>

#include "ctl-args.h"

int verb_list(sd_bus *bus, const struct ctl_args *a);
int verb_create(sd_bus *bus, const struct ctl_args *a);
int verb_status(sd_bus *bus, const struct ctl_args *a);
int verb_console(sd_bus *bus, const struct ctl_args *a);
/* start, stop, kill, pause, resume: a Vm1 method without arguments */
int verb_vm_method(sd_bus *bus, const struct ctl_args *a);
int verb_destroy(sd_bus *bus, const struct ctl_args *a);
int verb_run(sd_bus *bus, const struct ctl_args *a);
/* swap out|in|trim|status NAME (ctl-swap.c) */
int verb_swap(sd_bus *bus, const struct ctl_args *a);
