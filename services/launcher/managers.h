/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The launcher as a client of memmgr and devmgr. Errors from them are
 * passed on unchanged in error, so the caller of CreateVm sees the real
 * reason (e.g. org.polyvm.Error.InvalidConfig naming a device field). */

#include <stddef.h>
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

/* CreatePlugin (docs/devmgr.md): the plugin runs jailed with socket as its
 * POLYVM_PLUGIN_FD and the n_files fds of files (read-only regular files)
 * as its fds 4, 5, ...; the caller keeps its own. args and extra_syscalls
 * are NULL-terminated (NULL: none). */
int devmgr_create_plugin(sd_bus *bus, const char *vm, const char *path, char **args, int socket,
                         char **extra_syscalls, const int *files, size_t n_files, char **ret_object, pid_t *ret_pid,
                         sd_bus_error *error);
/* StopPlugin: SIGTERM, grace_usec, SIGKILL; answers once it is gone with
 * its ExitReason (*ret_exit_reason, malloc'd). */
int devmgr_stop_plugin(sd_bus *bus, const char *object, uint64_t grace_usec, char **ret_exit_reason);
