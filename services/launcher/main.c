/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>

#include "bus-util.h"
#include "early.h"
#include "launcher-bus.h"
#include "log.h"
#include "vm-swap.h"

static int launcher_setup(sd_bus *bus, sd_event *event, void *userdata) {
        struct launcher *l = userdata;
        struct sysinfo si;
        int r;

        l->bus = bus;
        l->event = event;
        if (sysinfo(&si) == 0)
                l->host_memory_bytes = (uint64_t) si.totalram * si.mem_unit;
        launcher_memlock_setup(l);
        r = vm_swap_watch(l);
        if (r < 0)
                return r;
        return launcher_bus_register(l);
}

int main(int argc, char **argv) {
        struct launcher launcher = {};

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--help") == 0) {
                        printf("Usage: %s [--bus=system|user|ADDRESS] [--early [--root=DIR]]\n"
                               "Serves org.polyvm.Launcher1: creates and runs KVM VMs.\n"
                               "  --early     serve org.polyvm.EarlyLauncher1: early-boot VMs from the\n"
                               "              allowlists, state under /run/polyvm/early (docs/early-vms.md)\n"
                               "  --root=DIR  with --early: prefix of the allowlists, /run and the\n"
                               "              callers' executables (for tests)\n", argv[0]);
                        return 0;
                }
                if (strcmp(argv[i], "--early") == 0) {
                        launcher.early = true;
                        continue;
                }
                if (strncmp(argv[i], "--root=", 7) == 0 && argv[i][7] == '/') {
                        launcher.root = argv[i] + 7;
                        continue;
                }
                if (strncmp(argv[i], "--bus=", 6) != 0) {
                        fprintf(stderr, "%s: unknown argument \"%s\" (try --help)\n", argv[0], argv[i]);
                        return 2;
                }
        }
        if (launcher.root && !launcher.early) {
                fprintf(stderr, "%s: --root is only for --early\n", argv[0]);
                return 2;
        }
        log_set_ident(launcher.early ? "polyvm-early-launcher" : "polyvm-launcher");
        /* A guest console client that goes away must not kill us. */
        signal(SIGPIPE, SIG_IGN);

        /* VMs left when the bus goes are torn down by process exit: KVM fds
         * close, devmgr and memmgr see us leave and free what was ours. */
        return bus_service_main(bus_spec_from_args(argc, argv),
                                launcher.early ? "org.polyvm.EarlyLauncher1" : "org.polyvm.Launcher1", launcher_setup,
                                &launcher) < 0;
}
