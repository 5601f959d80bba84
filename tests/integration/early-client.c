/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A tiny CreateVm client for test-early: the test copies it to several
 * paths under a root, so the early launcher sees different executables.
 * Usage: early-client ADDRESS NAME CONFIG_JSON. Prints "ok <path>" or
 * "<error name>\t<message>"; exits 0 either way, 1 if it cannot call. */
#include <stdio.h>

#include "bus-util.h"

int main(int argc, char **argv) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus *bus = NULL;
        const char *path;
        int r;

        if (argc != 4)
                return 2;
        r = bus_open(argv[1], &bus);
        if (r < 0)
                return 1;
        r = sd_bus_call_method(bus, "org.polyvm.EarlyLauncher1", "/org/polyvm/Launcher1", "org.polyvm.Launcher1",
                               "CreateVm", &error, &reply, "ss", argv[2], argv[3]);
        if (r < 0)
                printf("%s\t%s\n", error.name ?: "(none)", error.message ?: "");
        else if (sd_bus_message_read(reply, "o", &path) >= 0)
                printf("ok %s\n", path);
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return 0;
}
