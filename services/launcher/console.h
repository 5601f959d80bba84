/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The guest console: a stream socket pair whose device end goes to the
 * serial device process. What the guest prints is kept in a scrollback
 * ring and copied to every attached client; what clients type goes to the
 * guest. Runs in the launcher's event loop. */

#include <systemd/sd-event.h>

struct console;

/* Returns the device's end of the console in *ret_device_fd (the caller
 * hands it to the device and closes it). */
int console_new(sd_event *event, const char *vm_name, struct console **ret, int *ret_device_fd);
struct console *console_free(struct console *c);

/* A new client: the scrollback first, then live output. The caller gets
 * its end of a fresh socket pair. */
int console_open_client(struct console *c, int *ret_fd);

/* Everything the guest printed that is still in the scrollback, NUL-terminated. */
char *console_scrollback(struct console *c);
