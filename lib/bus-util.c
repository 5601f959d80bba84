/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-util.h"
#include "log.h"

int bus_open(const char *spec, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (!spec)
                spec = getenv("POLYVM_BUS_ADDRESS");
        /* A service activated by a bus daemon is told that bus this way. */
        if (!spec)
                spec = getenv("DBUS_STARTER_ADDRESS");
        if (!spec || strcmp(spec, "system") == 0)
                return sd_bus_open_system(ret);
        if (strcmp(spec, "user") == 0)
                return sd_bus_open_user(ret);

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, spec);
        if (r < 0)
                return r;
        r = sd_bus_set_bus_client(bus, true);
        if (r < 0)
                return r;
        /* We pass unix fds (guest memory, device endpoints) on every bus. */
        r = sd_bus_negotiate_fds(bus, true);
        if (r < 0)
                return r;
        r = sd_bus_negotiate_creds(bus, true, SD_BUS_CREDS_PID | SD_BUS_CREDS_EUID);
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

const char *bus_spec_from_args(int argc, char **argv) {
        for (int i = 1; i < argc; i++)
                if (strncmp(argv[i], "--bus=", 6) == 0)
                        return argv[i] + 6;
        return NULL;
}

int bus_service_main(const char *spec, const char *name, bus_service_setup_t setup, void *userdata) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        int r;

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate event loop: %m");
        r = bus_open(spec, &bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to bus %s: %m", spec ?: "(default)");
        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach bus to event loop: %m");
        /* PID 1 may not be systemd: leave when the bus goes, or we linger. */
        r = sd_bus_set_exit_on_disconnect(bus, true);
        if (r < 0)
                return log_error_errno(r, "Failed to set exit on disconnect: %m");

        r = setup(bus, event, userdata);
        if (r < 0)
                return r;

        r = sd_bus_request_name(bus, name, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire bus name %s: %m", name);

        log_info("Serving %s.", name);
        r = sd_event_loop(event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int bus_error_from_errno(sd_bus_error *error, int r, const char *what) {
        return sd_bus_error_setf(error, POLYVM_ERROR_FAILED, "%s: %s", what, strerror(r < 0 ? -r : r));
}
