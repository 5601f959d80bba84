/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-util.h"
#include "ctl-bus.h"

int ctl_report_error(const char *action, const sd_bus_error *error, int r) {
        if (error && sd_bus_error_is_set(error))
                fprintf(stderr, "polyvmctl: %s failed: %s (%s)\n", action,
                        error->message ?: "no message", error->name);
        else
                fprintf(stderr, "polyvmctl: %s failed: %s\n", action, strerror(r < 0 ? -r : EIO));
        return 1;
}

int ctl_vm_path(sd_bus *bus, const char *name, char **ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *n, *p;
        int r;

        r = sd_bus_call_method(bus, LAUNCHER_BUS_NAME, LAUNCHER_OBJECT_PATH, LAUNCHER_INTERFACE, "ListVms", error,
                               &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(so)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(reply, "(so)", &n, &p)) > 0)
                if (strcmp(n, name) == 0) {
                        char *s = strdup(p);
                        if (!s)
                                return -ENOMEM;
                        *ret = s;
                        return 0;
                }
        if (r < 0)
                return r;
        return sd_bus_error_setf(error, POLYVM_ERROR_NO_SUCH_VM, "no VM named \"%s\"", name);
}

int ctl_vm_call(sd_bus *bus, const char *name, const char *method, sd_bus_error *error) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = ctl_vm_path(bus, name, &path, error);
        if (r < 0)
                return r;
        return sd_bus_call_method(bus, LAUNCHER_BUS_NAME, path, VM_INTERFACE, method, error, NULL, NULL);
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct vm_watch *w = userdata;
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *iface;
        int r;

        r = sd_bus_message_read(m, "s", &iface);
        if (r < 0 || strcmp(iface, VM_INTERFACE) != 0)
                return 0;
        /* Whatever changed, read both again: StopReason may not be in the signal. */
        r = vm_watch_refresh(w, &error);
        if (r < 0)
                fprintf(stderr, "polyvmctl: reading the VM's state failed: %s\n",
                        sd_bus_error_is_set(&error) ? error.message : strerror(-r));
        return 0;
}

int vm_watch_refresh(struct vm_watch *w, sd_bus_error *error) {
        char *state = NULL, *reason = NULL;
        int r;

        r = sd_bus_get_property_string(w->bus, LAUNCHER_BUS_NAME, w->path, VM_INTERFACE, "State", error, &state);
        if (r < 0)
                return r;
        r = sd_bus_get_property_string(w->bus, LAUNCHER_BUS_NAME, w->path, VM_INTERFACE, "StopReason", error, &reason);
        if (r < 0) {
                free(state);
                return r;
        }
        free(w->state);
        free(w->stop_reason);
        w->state = state;
        w->stop_reason = reason;
        return 0;
}

int vm_watch_start(sd_bus *bus, const char *path, struct vm_watch *w, sd_bus_error *error) {
        int r;

        *w = (struct vm_watch) { .bus = bus };
        w->path = strdup(path);
        if (!w->path)
                return -ENOMEM;
        /* Match first, then read: no change can fall in between. */
        r = sd_bus_match_signal(bus, &w->slot, LAUNCHER_BUS_NAME, path, "org.freedesktop.DBus.Properties",
                                "PropertiesChanged", on_properties_changed, w);
        if (r < 0)
                return r;
        return vm_watch_refresh(w, error);
}

void vm_watch_done(struct vm_watch *w) {
        w->slot = sd_bus_slot_unref(w->slot);
        free(w->path);
        free(w->state);
        free(w->stop_reason);
        *w = (struct vm_watch) {};
}

bool vm_watch_finished(const struct vm_watch *w) {
        return w->state && (strcmp(w->state, "stopped") == 0 || strcmp(w->state, "failed") == 0);
}
