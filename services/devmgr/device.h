/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One device kind = one file in devices/ that fills a struct device_kind and
 * registers it with DEVICE_KIND_REGISTER (as kvmtool's device init calls do):
 * devmgr and the serve loop only ever talk to this interface, never to a
 * concrete device. */

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct device_kind {
        const char *name;
        /* Base name of the seccomp policy file, seccomp/<name>.policy. */
        const char *seccomp_policy;

        /* Validates config (a JSON object) and builds the device state. Runs
         * in devmgr before the fork, so bad config is a D-Bus error; on
         * failure writes a message naming the field to err. */
        int (*create)(json_object *config, void **ret, char *err, size_t errlen);
        void (*destroy)(void *dev);

        int (*get_ranges)(void *dev, struct proto_ranges *ret);
        /* Accesses already checked against the ranges: range index valid,
         * offset + len within it. read fills data[0..len). */
        int (*read)(void *dev, uint32_t range, uint64_t offset, uint32_t len, uint8_t *data);
        int (*write)(void *dev, uint32_t range, uint64_t offset, uint32_t len, const uint8_t *data);
        /* Takes fd on success (returns 0); on failure the caller closes it. */
        int (*attach_fd)(void *dev, uint32_t role, uint32_t arg, int fd, char *err, size_t errlen);

        /* The device's own event source (console input): an fd to poll for
         * POLLIN now, or -1; asked again on every loop turn. */
        int (*event_fd)(void *dev);
        int (*handle_event)(void *dev);
};

void device_kind_register(const struct device_kind *kind);
const struct device_kind *device_kind_find(const char *name);
/* Registered kinds in name order; *n is set to their count. */
const struct device_kind *const *device_kind_list(size_t *n);

#define DEVICE_KIND_REGISTER(k)                                         \
        static void __attribute__((constructor)) register_##k(void) {   \
                device_kind_register(&(k));                             \
        }
