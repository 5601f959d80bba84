/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* sd-bus.h and sd-event.h define the *_unrefp cleanup helpers themselves. */

static inline void sd_bus_error_freep(sd_bus_error *e) {
        sd_bus_error_free(e);
}
#define _cleanup_bus_error_ _cleanup_(sd_bus_error_freep)

/* Which bus to use: "system", "user", or a D-Bus address. NULL means
 * $POLYVM_BUS_ADDRESS if set, else $DBUS_STARTER_ADDRESS (set for services
 * the bus daemon activated), else the system bus. */
int bus_open(const char *spec, sd_bus **ret);

/* The common life of a polyvm service: connect to the bus given by spec,
 * attach to the event loop, exit when the bus goes away, and take name once
 * the caller's setup callback has registered its objects. */
typedef int (*bus_service_setup_t)(sd_bus *bus, sd_event *event, void *userdata);
int bus_service_main(const char *spec, const char *name, bus_service_setup_t setup, void *userdata);

/* Parses "--bus=..." out of argv; returns the spec or NULL. */
const char *bus_spec_from_args(int argc, char **argv);

/* sd_bus_error_setf with an errno fallback for unnamed failures. */
int bus_error_from_errno(sd_bus_error *error, int r, const char *what);
