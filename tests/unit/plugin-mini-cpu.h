/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A stand-in for KVM running the minimal example plugin's guest: a vCPU
 * thread that reports INIT to the plugin server, then interprets exactly
 * the real-mode instructions of that guest (minimal_guest_build()) in the
 * memory the plugin created (the fake's mapping), turning each port write
 * into an IO event and the final hlt into HLT. Shared by the client
 * library's unit test and the jailed-plugin integration test. */

#include <stdbool.h>

#include "plugin-fake.h"
#include "plugin-server.h"

struct mini_cpu {
        struct plugin_server *s;
        struct fake_vm *fake;
        unsigned steps;
        bool failed; /* an instruction it does not know, or too many steps */
};

/* pthread entry; arg is a struct mini_cpu. Fails the test on protocol errors. */
void *mini_cpu_run(void *arg);
