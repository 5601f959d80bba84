/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polyvm-plugin-minimal: the smallest plugin. It gives the VM 64 KiB of
 * memory, loads a real-mode guest that writes a greeting to port 0xE9 and
 * halts, and prints what the guest writes. Run it as a plugin VM:
 *   {"plugin": {"path": "/usr/libexec/polyvm/polyvm-plugin-minimal", "irqchip": false}, "vcpus": 1}
 * (no in-kernel irqchip: with one, KVM keeps a halted vCPU to itself and
 * the plugin never sees the HLT that ends it). The launcher starts it with
 * its main socket in $POLYVM_PLUGIN_FD. */
#include <stdio.h>
#include <string.h>

#include "minimal-plugin.h"

int main(int argc, char *argv[]) {
        struct polyvm_plugin *p;
        const char *msg = argc > 1 ? argv[1] : "Hello from a polyvm plugin guest\n";
        int r;

        r = polyvm_plugin_connect(&p);
        if (r < 0) {
                fprintf(stderr, "Failed to connect to the launcher ($%s): %s\n", POLYVM_PLUGIN_FD_ENV, strerror(-r));
                return 1;
        }
        r = minimal_plugin_run(p, msg, stdout);
        polyvm_plugin_free(p);
        if (r < 0) {
                fprintf(stderr, "Plugin failed: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}
