/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>
#include <stdlib.h>

#include "bus-util.h"
#include "log.h"
#include "manager.h"

int main(int argc, char **argv) {
        struct manager m = {};
        sigset_t mask;
        int r;

        log_set_ident("polyvm-devmgr");

        /* sd-event takes these as events: SIGCHLD to reap device processes
         * (PID 1 may not), SIGTERM/SIGINT to leave cleanly. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                log_error_errno(errno, "Failed to block signals: %m");
                return EXIT_FAILURE;
        }

        r = bus_service_main(bus_spec_from_args(argc, argv), "org.polyvm.DeviceManager1", manager_setup, &m);
        manager_done(&m);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
