/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

#include "bus-errors.h"
#include "macro.h"
#include "vm-swap.h"
#include "vm.h"

int vm_swap_forward(struct vm *vm, const char *member, sd_bus_error *error) {
        int r;

        if (!vm->memory_object)
                return sd_bus_error_setf(error, POLYVM_ERROR_BAD_STATE, "VM %s has no guest memory", vm->name);
        /* memmgr answers at once: the work runs in its loop. */
        r = sd_bus_call_method(vm->launcher->bus, "org.polyvm.MemoryManager1", vm->memory_object,
                               "org.polyvm.Memory1", member, error, NULL, "");
        return r < 0 ? r : 0;
}

#define MEMMGR_BUS_NAME "org.polyvm.MemoryManager1"
#define MEMMGR_PATH "/org/polyvm/MemoryManager1"

const char *vm_swap_state(const struct vm *vm) {
        return vm->swap_state[0] ? vm->swap_state : "ready";
}

static void vm_swap_state_set(struct vm *vm, const char *state) {
        if (strcmp(vm_swap_state(vm), state) == 0)
                return;
        snprintf(vm->swap_state, sizeof(vm->swap_state), "%s", state);
        (void) sd_bus_emit_properties_changed(vm->launcher->bus, vm->path, "org.polyvm.Vm1", "SwapState", NULL);
}

static struct vm *vm_by_memory_object(struct launcher *l, const char *path) {
        for (struct vm *vm = l->vms; vm; vm = vm->next)
                if (vm->memory_object && strcmp(vm->memory_object, path) == 0)
                        return vm;
        return NULL;
}

/* PropertiesChanged(s interface, a{sv} changed, as invalidated) of a Memory1. */
static int on_memory_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct launcher *l = userdata;
        const char *interface, *name, *state;
        struct vm *vm = vm_by_memory_object(l, sd_bus_message_get_path(m) ?: "");
        int r;

        if (!vm)
                return 0;
        r = sd_bus_message_read(m, "s", &interface);
        if (r < 0 || strcmp(interface, "org.polyvm.Memory1") != 0)
                return 0;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return 0;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return 0;
                if (strcmp(name, "SwapState") == 0 && sd_bus_message_read(m, "v", "s", &state) >= 0 &&
                    strcmp(vm_swap_state(vm), VM_SWAP_STATE_LOST) != 0)
                        vm_swap_state_set(vm, state);
                else if (sd_bus_message_skip(m, "v") < 0)
                        return 0;
                if (sd_bus_message_exit_container(m) < 0)
                        return 0;
        }
        return 0;
}

static int on_memmgr_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct launcher *l = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || strcmp(name, MEMMGR_BUS_NAME) != 0 ||
            new_owner[0])
                return 0;

        for (struct vm *vm = l->vms; vm; vm = vm->next) {
                const char *state = vm_swap_state(vm);

                if (strcmp(state, "ready") == 0 || strcmp(state, VM_SWAP_STATE_LOST) == 0)
                        continue;
                log_error("VM %s: the memory manager left the bus while its memory was %s: guest pages that were "
                          "out are lost.", vm->name, state);
                vm_swap_state_set(vm, VM_SWAP_STATE_LOST);
                vm_fail(vm, "guest memory lost: the memory manager exited while pages were swapped out");
        }
        return 0;
}

int vm_swap_watch(struct launcher *l) {
        int r;

        r = sd_bus_match_signal(l->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                "NameOwnerChanged", on_memmgr_owner_changed, l);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the memory manager's bus name: %m");
        r = sd_bus_add_match(l->bus, NULL,
                             "type='signal',sender='" MEMMGR_BUS_NAME "',interface='org.freedesktop.DBus.Properties',"
                             "member='PropertiesChanged',path_namespace='" MEMMGR_PATH "'",
                             on_memory_properties_changed, l);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the memory manager's swap states: %m");
        return 0;
}
