/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The memmgr service: the VMs' memory and their D-Bus objects. */

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "memory.h"

#define MEMMGR_BUS_NAME "org.polyvm.MemoryManager1"
#define MEMMGR_OBJECT_PATH "/org/polyvm/MemoryManager1"
#define MEMMGR_VM_PATH_PREFIX "/org/polyvm/MemoryManager1/vm"

#define DEVMGR_BUS_NAME "org.polyvm.DeviceManager1"

struct manager {
        sd_bus *bus;
        sd_event *event;
        uint64_t host_memory; /* MemTotal in bytes: the size limit */
        char *state_dir;      /* where swap files go */
        bool swap_direct_io;  /* --swap-io=direct (the default), or buffered */
        struct vm_memory **vms;
        size_t n_vms;
};

#define MEMMGR_STATE_DIR_DEFAULT "/var/lib/polyvm"

/* state_dir: --state-dir, else $STATE_DIRECTORY (systemd), else the default. */
int manager_new(const char *state_dir, struct manager **ret);
struct manager *manager_free(struct manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct manager *, manager_free);

/* bus_service_setup_t: registers the objects on bus. */
int manager_setup_bus(sd_bus *bus, sd_event *event, void *userdata);

struct vm_memory *manager_find(struct manager *m, const char *vm);
