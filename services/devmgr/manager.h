/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* polyvm-devmgr's bus side: org.polyvm.DeviceManager1 at its root, one
 * org.polyvm.Device1 object per device process, an object manager. */

#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define MANAGER_PATH "/org/polyvm/DeviceManager1"
#define DEVICE_PATH_PREFIX MANAGER_PATH "/device"

struct managed_device;

struct manager {
        sd_bus *bus;
        sd_event *event;
        unsigned next_id;
        struct managed_device *devices;
        char *seccomp_dir;
        bool userns_refused; /* the host refused a user namespace once: do not ask again */
};

int manager_setup(sd_bus *bus, sd_event *event, void *userdata);
/* Kills and reaps every device left. */
void manager_done(struct manager *m);
