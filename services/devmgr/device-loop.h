/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "device.h"

/* Called once, when the first Activate has been accepted. */
typedef void (*device_loop_activated_t)(void *userdata);

/* Serves the device protocol on sock for one device until hang-up, Shutdown
 * or DestroyDevice: Activate first and exactly once, then the requests.
 * Nothing a peer sends ends it but those; returns 0, or -errno if the
 * socket itself fails. activated may be NULL. */
int device_loop_run(int sock, const struct device_kind *kind, void *dev, device_loop_activated_t activated,
                    void *userdata);

/* One request at a time, for device_loop_run() and the fuzz target. */
struct device_loop {
        int sock;
        const struct device_kind *kind;
        void *dev;
        bool active;
        bool asleep;
        device_loop_activated_t activated;
        void *activated_userdata;
        struct proto_ranges ranges; /* from Activate; refreshed when a config write moves them */
};

void device_loop_init(struct device_loop *l, int sock, const struct device_kind *kind, void *dev);
/* Answers one parsed message (the loop keeps m; proto_msg_done is the
 * caller's). Returns 1 when the loop should end, 0 to go on, -errno when the
 * reply could not be sent. */
int device_loop_handle(struct device_loop *l, struct proto_msg *m);
