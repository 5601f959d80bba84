/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The launcher as a client of memmgr and devmgr. Errors from them are
 * passed on unchanged in error, so the caller of CreateVm sees the real
 * reason (e.g. org.polyvm.Error.InvalidConfig naming a device field). */

#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

int memmgr_allocate(sd_bus *bus, const char *vm, uint64_t size, char **ret_object, int *ret_fd, sd_bus_error *error);
int memmgr_free(sd_bus *bus, const char *vm);
/* The devices made at CreateVm are the VM's static ones: their uffds are
 * never collected; later (hot-plugged) ones are. */
int memmgr_set_static_devices(sd_bus *bus, const char *vm, uint32_t n);

int devmgr_create_device(sd_bus *bus, const char *vm, const char *kind, const char *config_json, char **ret_object,
                         int *ret_fd, pid_t *ret_pid, sd_bus_error *error);
int devmgr_destroy_device(sd_bus *bus, const char *object);
