/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polyvmctl: control polyvm VMs over D-Bus (docs/polyvmctl.md). */
#include <stdio.h>
#include <stdlib.h>

#include "bus-util.h"
#include "ctl-args.h"
#include "ctl-bus.h"
#include "ctl-verbs.h"

#ifndef POLYVM_VERSION
#define POLYVM_VERSION "unknown"
#endif

static void help(void) {
        printf("Usage: polyvmctl [OPTIONS...] COMMAND ...\n"
               "\n"
               "Control polyvm virtual machines (org.polyvm.Launcher1).\n"
               "\n"
               "Commands:\n"
               "  list                      List VMs: NAME STATE VCPUS MEMORY\n"
               "  create NAME CONFIG        Create a VM from a JSON config file (- for stdin)\n"
               "  start NAME                Start a created or stopped VM\n"
               "  status NAME               Show a VM and its vCPUs (--json: as JSON)\n"
               "  console NAME              Attach to the VM's console (leave with Ctrl-])\n"
               "  stop NAME                 Ask the guest to power off\n"
               "  kill NAME                 Stop every vCPU at once\n"
               "  pause NAME                Pause the vCPUs\n"
               "  resume NAME               Resume the vCPUs\n"
               "  destroy NAME              Kill the VM if it runs and release it\n"
               "  run --kernel PATH [...]   Create, start and attach; destroy when it stops\n"
               "  swap out|in|trim NAME     Swap the VM's memory to disk and back, with progress\n"
               "  swap status NAME          Show the VM's swap state and counters\n"
               "\n"
               "Options:\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "     --bus=system|user|ADDRESS\n"
               "                            Bus to use (default: $POLYVM_BUS_ADDRESS, else system)\n"
               "     --json                 status: print JSON\n"
               "\n"
               "Options for run:\n"
               "     --name NAME            VM name (default: run-PID)\n"
               "     --kernel PATH          bzImage or PVH ELF kernel (required)\n"
               "     --initrd PATH          Initial ramdisk\n"
               "     --append CMDLINE       Kernel command line\n"
               "     --cpus N               Number of vCPUs (1..%d)\n"
               "     --memory MIB           Guest memory in MiB\n"
               "     --device KIND[,KEY=VALUE...]\n"
               "                            Add a device (repeatable)\n"
               "     --keep                 Do not destroy the VM at the end\n"
               "\n"
               "Exit status: 0 on success, 1 when a call fails, 2 on a usage error;\n"
               "run: 0 when the guest powered off, 1 otherwise.\n",
               CTL_MAX_CPUS);
}

int main(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        struct ctl_args a;
        char err[512];
        int r;

        r = ctl_parse_args(argc, argv, &a, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "polyvmctl: %s\n", err);
                return 2;
        }
        if (a.help) {
                help();
                return 0;
        }
        if (a.version) {
                printf("polyvmctl %s\n", POLYVM_VERSION);
                return 0;
        }

        r = bus_open(a.bus, &bus);
        if (r < 0) {
                fprintf(stderr, "polyvmctl: connecting to bus %s failed: %s\n",
                        a.bus ?: getenv("POLYVM_BUS_ADDRESS") ?: "system", strerror(-r));
                return 1;
        }

        switch (a.verb) {
        case CTL_VERB_LIST: return verb_list(bus, &a);
        case CTL_VERB_CREATE: return verb_create(bus, &a);
        case CTL_VERB_STATUS: return verb_status(bus, &a);
        case CTL_VERB_CONSOLE: return verb_console(bus, &a);
        case CTL_VERB_START:
        case CTL_VERB_STOP:
        case CTL_VERB_KILL:
        case CTL_VERB_PAUSE:
        case CTL_VERB_RESUME: return verb_vm_method(bus, &a);
        case CTL_VERB_DESTROY: return verb_destroy(bus, &a);
        case CTL_VERB_RUN: return verb_run(bus, &a);
        case CTL_VERB_SWAP: return verb_swap(bus, &a);
        case CTL_VERB_NONE: break;
        }
        return 2;
}
