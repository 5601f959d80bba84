/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* polyvm-devmgr's bus side: org.polyvm.DeviceManager1 at its root, one
 * org.polyvm.Device1 object per device process, an object manager. */

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
};

int manager_setup(sd_bus *bus, sd_event *event, void *userdata);
/* Kills and reaps every device left. */
void manager_done(struct manager *m);
