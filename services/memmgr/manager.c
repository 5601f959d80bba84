/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-util.h"
#include "log.h"
#include "manager.h"

int manager_new(struct manager **ret) {
        _cleanup_free_ struct manager *m = NULL;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        r = memory_host_total(&m->host_memory);
        if (r < 0)
                return log_error_errno(r, "Failed to read MemTotal from /proc/meminfo: %m");
        *ret = TAKE_PTR(m);
        return 0;
}

struct manager *manager_free(struct manager *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_vms; i++)
                vm_memory_free(m->vms[i]);
        free(m->vms);
        free(m);
        return NULL;
}

struct vm_memory *manager_find(struct manager *m, const char *vm) {
        for (size_t i = 0; i < m->n_vms; i++)
                if (strcmp(m->vms[i]->vm, vm) == 0)
                        return m->vms[i];
        return NULL;
}

static int manager_add(struct manager *m, struct vm_memory *vm) {
        struct vm_memory **v;

        v = reallocarray(m->vms, m->n_vms + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        m->vms = v;
        m->vms[m->n_vms++] = vm;
        return 0;
}

/* Removes vm from the bus and the list and frees it. */
static void manager_release(struct manager *m, struct vm_memory *vm) {
        int r;

        /* Must go out while the object can still be found. */
        r = sd_bus_emit_object_removed(m->bus, vm->path);
        if (r < 0)
                log_warning_errno(r, "Failed to emit InterfacesRemoved for %s: %m", vm->path);

        for (size_t i = 0; i < m->n_vms; i++)
                if (m->vms[i] == vm) {
                        memmove(m->vms + i, m->vms + i + 1, (m->n_vms - i - 1) * sizeof(*m->vms));
                        m->n_vms--;
                        break;
                }
        log_info("Freed memory of VM %s (%" PRIu64 " bytes).", vm->vm, vm->size);
        vm_memory_free(vm);
}

/* The last peer holding this VM's memory left the bus. */
static int on_track_empty(sd_bus_track *track, void *userdata) {
        struct manager *m = userdata;

        for (size_t i = 0; i < m->n_vms; i++)
                if (m->vms[i]->track == track) {
                        log_info("Owner of VM %s left the bus.", m->vms[i]->vm);
                        manager_release(m, m->vms[i]);
                        break;
                }
        return 0;
}

static int method_allocate_memory(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_(vm_memory_freep) struct vm_memory *vm = NULL;
        struct vm_memory *added;
        char err[256];
        const char *name;
        uint64_t size;
        int r;

        r = sd_bus_message_read(msg, "st", &name, &size);
        if (r < 0)
                return r;

        if (memory_check_vm_name(name, err, sizeof(err)) < 0 ||
            memory_check_size(size, m->host_memory, err, sizeof(err)) < 0)
                return sd_bus_error_set(error, POLYVM_ERROR_INVALID_ARGS, err);
        if (manager_find(m, name))
                return sd_bus_error_setf(error, POLYVM_ERROR_VM_EXISTS, "vm: memory for VM \"%s\" already exists", name);

        r = vm_memory_new(name, size, MEMMGR_VM_PATH_PREFIX, &vm);
        if (r == -ENOMEM || r == -ENOSPC || r == -EFBIG)
                return sd_bus_error_setf(error, POLYVM_ERROR_NO_MEMORY, "Cannot allocate %" PRIu64 " bytes for VM %s: %s",
                                         size, name, strerror(-r));
        if (r < 0) {
                log_error_errno(r, "Failed to allocate memory for VM %s: %m", name);
                return bus_error_from_errno(error, r, "Failed to allocate guest memory");
        }

        r = sd_bus_track_new(m->bus, &vm->track, on_track_empty, m);
        if (r < 0)
                return r;
        r = sd_bus_track_add_sender(vm->track, msg);
        if (r < 0)
                return r;

        r = manager_add(m, vm);
        if (r < 0)
                return r;
        added = TAKE_PTR(vm); /* owned by the list now */

        r = sd_bus_emit_object_added(m->bus, added->path);
        if (r < 0)
                log_warning_errno(r, "Failed to emit InterfacesAdded for %s: %m", added->path);
        log_info("Allocated %" PRIu64 " bytes for VM %s for %s.", size, name, sd_bus_message_get_sender(msg));
        r = sd_bus_reply_method_return(msg, "oh", added->path, added->memfd);
        if (r < 0) {
                /* E.g. a caller that cannot receive fds: nobody holds it. */
                log_warning_errno(r, "Failed to hand memory of VM %s to %s: %m", name, sd_bus_message_get_sender(msg));
                manager_release(m, added);
        }
        return r;
}

static int method_free_memory(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        struct vm_memory *vm;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        vm = manager_find(m, name);
        if (!vm)
                return sd_bus_error_setf(error, POLYVM_ERROR_NO_SUCH_VM, "vm: no memory is allocated for VM \"%s\"", name);
        manager_release(m, vm);
        return sd_bus_reply_method_return(msg, NULL);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_NAMES("AllocateMemory", "st", SD_BUS_PARAM(vm) SD_BUS_PARAM(size),
                                 "oh", SD_BUS_PARAM(memory) SD_BUS_PARAM(memfd),
                                 method_allocate_memory, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("FreeMemory", "s", SD_BUS_PARAM(vm), "", ,
                                 method_free_memory, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable memory_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Vm", "s", NULL, offsetof(struct vm_memory, vm), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Size", "t", NULL, offsetof(struct vm_memory, size), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_VTABLE_END,
};

static int memory_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                              void **found, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_free_ char *name = NULL;
        struct vm_memory *vm;
        int r;

        r = sd_bus_path_decode(path, MEMMGR_VM_PATH_PREFIX, &name);
        if (r <= 0)
                return r;
        vm = manager_find(m, name);
        if (!vm)
                return 0;
        *found = vm;
        return 1;
}

static int memory_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                                  sd_bus_error *error) {
        struct manager *m = userdata;
        char **l;

        l = calloc(m->n_vms + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_vms; i++) {
                l[i] = strdup(m->vms[i]->path);
                if (!l[i]) {
                        for (size_t j = 0; j < i; j++)
                                free(l[j]);
                        free(l);
                        return -ENOMEM;
                }
        }
        *nodes = l;
        return 1;
}

int manager_setup_bus(sd_bus *bus, sd_event *event, void *userdata) {
        struct manager *m = userdata;
        int r;

        m->bus = bus;
        r = sd_bus_add_object_vtable(bus, NULL, MEMMGR_OBJECT_PATH, MEMMGR_BUS_NAME, manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add %s object: %m", MEMMGR_OBJECT_PATH);
        r = sd_bus_add_fallback_vtable(bus, NULL, MEMMGR_VM_PATH_PREFIX, "org.polyvm.Memory1", memory_vtable,
                                       memory_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add Memory1 objects: %m");
        r = sd_bus_add_node_enumerator(bus, NULL, MEMMGR_VM_PATH_PREFIX, memory_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add Memory1 enumerator: %m");
        r = sd_bus_add_object_manager(bus, NULL, MEMMGR_OBJECT_PATH);
        if (r < 0)
                return log_error_errno(r, "Failed to add object manager: %m");
        return 0;
}
