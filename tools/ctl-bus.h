/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* polyvmctl's side of the launcher's interfaces (dbus/org.polyvm.Launcher1.xml,
 * org.polyvm.Vm1.xml): name lookup, calls with one error format, and a
 * watch on a VM's State. */

#include <stdbool.h>
#include <systemd/sd-bus.h>

#define LAUNCHER_BUS_NAME "org.polyvm.Launcher1"
#define LAUNCHER_OBJECT_PATH "/org/polyvm/Launcher1"
#define LAUNCHER_INTERFACE "org.polyvm.Launcher1"
#define VM_INTERFACE "org.polyvm.Vm1"
#define VCPU_INTERFACE "org.polyvm.Vcpu1"

/* Prints "polyvmctl: <action> failed: <message> (<name>)" and returns 1,
 * the exit code for a failed call. Without a named error, r says why. */
int ctl_report_error(const char *action, const sd_bus_error *error, int r);

/* The object path of VM name, from ListVms; NoSuchVm in error if none. */
int ctl_vm_path(sd_bus *bus, const char *name, char **ret, sd_bus_error *error);

/* Calls a method without arguments or results on VM name's Vm1 object. */
int ctl_vm_call(sd_bus *bus, const char *name, const char *method, sd_bus_error *error);

/* Follows a VM's State and StopReason through PropertiesChanged. */
struct vm_watch {
        sd_bus *bus;
        char *path;
        char *state;
        char *stop_reason;
        sd_bus_slot *slot;
};

int vm_watch_start(sd_bus *bus, const char *path, struct vm_watch *w, sd_bus_error *error);
void vm_watch_done(struct vm_watch *w);
/* Re-reads State and StopReason. */
int vm_watch_refresh(struct vm_watch *w, sd_bus_error *error);
/* State is stopped or failed. */
bool vm_watch_finished(const struct vm_watch *w);
