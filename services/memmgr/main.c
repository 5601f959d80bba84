/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polyvm-memmgr: guest memory for every VM, as sealed memfds (docs/memmgr.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-util.h"
#include "log.h"
#include "manager.h"

static void help(void) {
        printf("Usage: polyvm-memmgr [--bus=system|user|ADDRESS] [--state-dir=DIR] [--swap-io=direct|buffered]\n\n"
               "Serves %s: guest memory as sealed memfds.\n"
               "Without --bus: $POLYVM_BUS_ADDRESS, else the system bus.\n"
               "Swap files go to --state-dir, else $STATE_DIRECTORY, else %s.\n"
               "--swap-io: swap file I/O, direct (O_DIRECT, the default) or buffered (synced per step).\n", MEMMGR_BUS_NAME,
               MEMMGR_STATE_DIR_DEFAULT);
}

int main(int argc, char **argv) {
        _cleanup_(manager_freep) struct manager *m = NULL;
        int r;

        const char *state_dir = NULL;
        int direct_io = -1;

        log_set_ident("polyvm-memmgr");
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                        help();
                        return EXIT_SUCCESS;
                }
                if (strncmp(argv[i], "--state-dir=", 12) == 0 && argv[i][12]) {
                        state_dir = argv[i] + 12;
                        continue;
                }
                if (strcmp(argv[i], "--swap-io=direct") == 0 || strcmp(argv[i], "--swap-io=buffered") == 0) {
                        direct_io = argv[i][10] == 'd';
                        continue;
                }
                if (strncmp(argv[i], "--bus=", 6) != 0) {
                        fprintf(stderr, "polyvm-memmgr: unknown argument '%s' (see --help)\n", argv[i]);
                        return 2;
                }
        }

        r = manager_new(state_dir, &m);
        if (r < 0)
                return EXIT_FAILURE;
        if (direct_io >= 0)
                m->swap_direct_io = direct_io;
        r = bus_service_main(bus_spec_from_args(argc, argv), MEMMGR_BUS_NAME, manager_setup_bus, m);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
