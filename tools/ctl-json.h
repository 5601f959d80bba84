/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* D-Bus values as JSON, for `status --json`: any signature, read in place. */

#include <json-c/json.h>
#include <systemd/sd-bus.h>

/* Reads one complete value at m's read position: basic types become JSON
 * scalars (64-bit unsigned stays exact), a{..} with basic keys an object
 * (keys as strings), other arrays and structs arrays, variants their
 * content. */
int ctl_json_read_value(sd_bus_message *m, json_object **ret);
