/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: bytes -> a VM config (CreateVm's text, from any
 * caller), through vm_config_parse() and, for what it accepts, the early
 * launcher's early_config_check(). Either says why it refuses (a message
 * naming the field), and what is accepted keeps the bounds config.h
 * promises; nothing crashes, leaks or reads out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "early-config.h"

#define HOST_MEMORY (UINT64_C(4) << 30)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct vm_config c = {};
        char err[512], *text;
        int r;

        if (size > 64 * 1024)
                return 0;
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        err[0] = 0;
        r = vm_config_parse(text, HOST_MEMORY, &c, err, sizeof(err));
        if (r < 0) {
                if (!err[0])
                        abort(); /* a refusal must say why */
        } else {
                if (c.vcpus < 1 || c.vcpus > CONFIG_MAX_VCPUS || c.memory_bytes > HOST_MEMORY ||
                    c.n_devices > CONFIG_MAX_DEVICES || c.plugin.n_files > CONFIG_PLUGIN_MAX_FILES ||
                    c.plugin.n_args > CONFIG_PLUGIN_MAX_ARGS || (!vm_config_is_plugin(&c) && !c.kernel) ||
                    (vm_config_is_plugin(&c) && (c.kernel || c.n_devices || c.console)))
                        abort();
                err[0] = 0;
                if (early_config_check(text, &c, err, sizeof(err)) < 0 && !err[0])
                        abort();
        }
        vm_config_done(&c);
        free(text);
        return 0;
}
