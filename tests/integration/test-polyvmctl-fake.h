/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A stand-in for org.polyvm.Launcher1 that lets test-polyvmctl drive every
 * command (list, create, status, console, run, ...) before the real launcher
 * can run guests here. It follows dbus/org.polyvm.Launcher1.xml and Vm1.xml;
 * its guests are a console that echoes input and "powers off" when it reads
 * "poweroff" (StopReason poweroff) or fails when it reads "crash". */

#include <sys/types.h>

#define FAKE_CRASH_REASON "emulation failure at RIP 0xffffffff81000000: 0f 0b"

/* Forks a process serving the fake on the bus at address; returns its pid
 * once it owns the name. */
pid_t fake_launcher_spawn(const char *address);
