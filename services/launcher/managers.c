/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "bus-util.h"
#include "log.h"
#include "managers.h"

#define MEMMGR_NAME "org.polyvm.MemoryManager1"
#define MEMMGR_PATH "/org/polyvm/MemoryManager1"
#define DEVMGR_NAME "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"

/* The fd in a reply belongs to the message: keep a copy of our own. */
static int reply_take_fd_and_object(sd_bus_message *reply, const char *sig, char **ret_object, int *ret_fd,
                                    pid_t *ret_pid) {
        const char *object;
        uint32_t pid = 0;
        int fd, copy, r;

        if (ret_pid)
                r = sd_bus_message_read(reply, sig, &object, &fd, &pid);
        else
                r = sd_bus_message_read(reply, sig, &object, &fd);
        if (r < 0)
                return r;
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return -errno;
        *ret_object = strdup(object);
        if (!*ret_object) {
                safe_close(copy);
                return -ENOMEM;
        }
        *ret_fd = copy;
        if (ret_pid)
                *ret_pid = (pid_t) pid;
        return 0;
}

int memmgr_allocate(sd_bus *bus, const char *vm, uint64_t size, char **ret_object, int *ret_fd, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, MEMMGR_NAME, MEMMGR_PATH, MEMMGR_NAME, "AllocateMemory", error, &reply, "st",
                               vm, size);
        if (r < 0)
                return r;
        r = reply_take_fd_and_object(reply, "oh", ret_object, ret_fd, NULL);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Bad reply from memmgr: %s", strerror(-r));
        return 0;
}

int memmgr_free(sd_bus *bus, const char *vm) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, MEMMGR_NAME, MEMMGR_PATH, MEMMGR_NAME, "FreeMemory", &error, NULL, "s", vm);
        if (r < 0)
                log_warning_errno(r, "Failed to free memory of VM %s: %s", vm, error.message ?: strerror(-r));
        return r;
}

int memmgr_set_static_devices(sd_bus *bus, const char *vm, uint32_t n) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, MEMMGR_NAME, MEMMGR_PATH, MEMMGR_NAME, "SetNumStaticDevices", &error, NULL, "su",
                               vm, n);
        if (r < 0)
                log_warning_errno(r, "VM %s: memmgr did not take the static device count: %s", vm,
                                  error.message ?: strerror(-r));
        return r;
}

int devmgr_create_device(sd_bus *bus, const char *vm, const char *kind, const char *config_json, char **ret_object,
                         int *ret_fd, pid_t *ret_pid, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, DEVMGR_NAME, DEVMGR_PATH, DEVMGR_NAME, "CreateDevice", error, &reply, "sss", vm,
                               kind, config_json);
        if (r < 0)
                return r;
        r = reply_take_fd_and_object(reply, "ohu", ret_object, ret_fd, ret_pid);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Bad reply from devmgr: %s", strerror(-r));
        return 0;
}

int devmgr_destroy_device(sd_bus *bus, const char *object) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, DEVMGR_NAME, DEVMGR_PATH, DEVMGR_NAME, "DestroyDevice", &error, NULL, "o", object);
        if (r < 0)
                log_warning_errno(r, "Failed to destroy device %s: %s", object, error.message ?: strerror(-r));
        return r;
}

int devmgr_create_plugin(sd_bus *bus, const char *vm, const char *path, char **args, int socket,
                         char **extra_syscalls, const int *files, size_t n_files, char **ret_object, pid_t *ret_pid,
                         sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *object;
        uint32_t pid;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, DEVMGR_NAME, DEVMGR_PATH, DEVMGR_NAME, "CreatePlugin");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", vm, path);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, args);
        if (r >= 0)
                r = sd_bus_message_append(m, "h", socket);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, extra_syscalls);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "h");
        for (size_t i = 0; r >= 0 && i < n_files; i++)
                r = sd_bus_message_append_basic(m, 'h', &files[i]); /* sd-bus sends a copy */
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to build CreatePlugin: %s", strerror(-r));
        r = sd_bus_call(bus, m, 0, error, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "ou", &object, &pid);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Bad reply from devmgr: %s", strerror(-r));
        *ret_object = strdup(object);
        if (!*ret_object)
                return sd_bus_error_set_errno(error, -ENOMEM);
        *ret_pid = (pid_t) pid;
        return 0;
}

int devmgr_stop_plugin(sd_bus *bus, const char *object, uint64_t grace_usec, char **ret_exit_reason) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *reason;
        int r;

        r = sd_bus_call_method(bus, DEVMGR_NAME, DEVMGR_PATH, DEVMGR_NAME, "StopPlugin", &error, &reply, "ot", object,
                               grace_usec);
        if (r < 0)
                return log_warning_errno(r, "Failed to stop plugin %s: %s", object, error.message ?: strerror(-r));
        r = sd_bus_message_read(reply, "s", &reason);
        if (r < 0)
                return r;
        *ret_exit_reason = strdup(reason);
        return *ret_exit_reason ? 0 : -ENOMEM;
}
