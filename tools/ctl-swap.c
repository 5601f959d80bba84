/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polyvmctl swap: the verbs go through the launcher's Vm1 (which forwards
 * to memmgr); progress and counters are read from memmgr's Memory1 object
 * of the VM (docs/memmgr.md, "Swap"). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus-util.h"
#include "ctl-bus.h"
#include "ctl-format.h"
#include "ctl-verbs.h"
#include "macro.h"

#define MEMMGR_BUS_NAME "org.polyvm.MemoryManager1"
#define MEMORY_PATH_PREFIX "/org/polyvm/MemoryManager1/vm"
#define MEMORY_INTERFACE "org.polyvm.Memory1"
#define POLL_USEC (100 * 1000)

static int get_string(sd_bus *bus, const char *path, const char *property, char **ret, sd_bus_error *error) {
        return sd_bus_get_property_string(bus, MEMMGR_BUS_NAME, path, MEMORY_INTERFACE, property, error, ret);
}

static int get_u64(sd_bus *bus, const char *path, const char *property, uint64_t *ret, sd_bus_error *error) {
        return sd_bus_get_property_trivial(bus, MEMMGR_BUS_NAME, path, MEMORY_INTERFACE, property, error, 't', ret);
}

/* Follows SwapState until it is done (want) or failed, with a bar on a tty. */
static int follow(sd_bus *bus, const char *path, const char *action, const char *want) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        bool tty = isatty(STDERR_FILENO);
        int r;

        for (;;) {
                _cleanup_free_ char *state = NULL;
                double progress = 0;
                char bar[64];

                r = get_string(bus, path, "SwapState", &state, &error);
                if (r >= 0)
                        r = sd_bus_get_property_trivial(bus, MEMMGR_BUS_NAME, path, MEMORY_INTERFACE, "Progress",
                                                        &error, 'd', &progress);
                if (r < 0)
                        return ctl_report_error(action, &error, r);
                if (strcmp(state, want) == 0 || strcmp(state, "failed") == 0) {
                        if (tty)
                                fprintf(stderr, "\r\033[K");
                        if (strcmp(state, "failed") == 0) {
                                _cleanup_free_ char *last = NULL;
                                (void) get_string(bus, path, "LastError", &last, &error);
                                fprintf(stderr, "polyvmctl: %s failed: %s\n", action, last ?: "(unknown)");
                                return 1;
                        }
                        return 0;
                }
                if (tty) {
                        ctl_format_progress(progress, 30, bar, sizeof(bar));
                        fprintf(stderr, "\r%-12s %s", state, bar);
                }
                (void) usleep(POLL_USEC);
        }
}

static int status(sd_bus *bus, const char *path) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *state = NULL, *last = NULL;
        uint64_t resident, swapped, zero, faults, p50, p99;
        char b1[32], b2[32];
        int r;

        r = get_string(bus, path, "SwapState", &state, &error);
        if (r >= 0)
                r = get_string(bus, path, "LastError", &last, &error);
        if (r >= 0)
                r = get_u64(bus, path, "ResidentBytes", &resident, &error);
        if (r >= 0)
                r = get_u64(bus, path, "SwappedBytes", &swapped, &error);
        if (r >= 0)
                r = get_u64(bus, path, "ZeroPagesSkipped", &zero, &error);
        if (r >= 0)
                r = get_u64(bus, path, "FaultsServed", &faults, &error);
        if (r >= 0)
                r = sd_bus_get_property(bus, MEMMGR_BUS_NAME, path, MEMORY_INTERFACE, "FaultLatencyUs", &error, &reply,
                                        "(tt)");
        if (r >= 0)
                r = sd_bus_message_read(reply, "(tt)", &p50, &p99);
        if (r < 0)
                return ctl_report_error("swap status", &error, r);
        ctl_format_bytes(resident, b1, sizeof(b1));
        ctl_format_bytes(swapped, b2, sizeof(b2));
        printf("State:              %s\n"
               "Resident:           %s\n"
               "Swapped:            %s\n"
               "Zero pages skipped: %" PRIu64 "\n"
               "Faults served:      %" PRIu64 "\n"
               "Fault latency:      p50 < %" PRIu64 " us, p99 < %" PRIu64 " us\n",
               state, b1, b2, zero, faults, p50, p99);
        if (last && last[0])
                printf("Last error:         %s\n", last);
        return 0;
}

int verb_swap(sd_bus *bus, const struct ctl_args *a) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *vm_path = NULL, *path = NULL;
        const char *name = a->args[1];
        int r;

        /* A VM the launcher does not know gets its NoSuchVm. */
        r = ctl_vm_path(bus, name, &vm_path, &error);
        if (r < 0)
                return ctl_report_error("swap", &error, r);
        r = sd_bus_path_encode(MEMORY_PATH_PREFIX, name, &path);
        if (r < 0)
                return ctl_report_error("swap", NULL, r);

        switch (a->swap) {
        case CTL_SWAP_OUT:
                r = ctl_vm_call(bus, name, "SwapOut", &error);
                if (r < 0)
                        return ctl_report_error("swap out", &error, r);
                return follow(bus, path, "swap out", "active");
        case CTL_SWAP_IN:
                r = ctl_vm_call(bus, name, "SwapIn", &error);
                if (r < 0)
                        return ctl_report_error("swap in", &error, r);
                return follow(bus, path, "swap in", "ready");
        case CTL_SWAP_TRIM:
                r = ctl_vm_call(bus, name, "Trim", &error);
                if (r < 0)
                        return ctl_report_error("swap trim", &error, r);
                return 0;
        case CTL_SWAP_STATUS:
                return status(bus, path);
        }
        return 2;
}
