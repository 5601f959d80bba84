/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-util.h"
#include "early.h"
#include "launcher-bus.h"
#include "log.h"
#include "macro.h"
#include "vm.h"
#include "vm-swap.h"

#define LAUNCHER_PATH "/org/polyvm/Launcher1"
#define VM_PATH_PREFIX LAUNCHER_PATH "/vm"

/* ---- org.polyvm.Launcher1 ---- */

static int method_create_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct launcher *l = userdata;
        const char *name, *config;
        struct vm *vm;
        int r;

        r = sd_bus_message_read(m, "ss", &name, &config);
        if (r < 0)
                return r;
        /* The early launcher checks the caller against its allowlist first. */
        if (l->early)
                r = early_create_vm(l, m, name, config, error, &vm);
        else
                r = vm_create(l, name, config, 0, error, &vm);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "o", vm->path);
}

static int method_list_vms(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct launcher *l = userdata;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(so)");
        if (r < 0)
                return r;
        for (struct vm *vm = l->vms; vm; vm = vm->next) {
                r = sd_bus_message_append(reply, "(so)", vm->name, vm->path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_destroy_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct launcher *l = userdata;
        const char *name;
        struct vm *vm;
        uint32_t cid;
        int r;

        r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        vm = vm_find(l, name);
        if (!vm)
                return sd_bus_error_setf(error, POLYVM_ERROR_NO_SUCH_VM, "No VM named \"%.64s\"", name);
        cid = vm->cid;
        vm_destroy(vm);
        if (l->early)
                early_vm_removed(l, cid);
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable launcher_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("CreateVm", SD_BUS_ARGS("s", name, "s", config_json), SD_BUS_RESULT("o", vm),
                                method_create_vm, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListVms", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(so)", vms), method_list_vms,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DestroyVm", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_destroy_vm,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("MemlockLimit", "t", NULL, offsetof(struct launcher, memlock_limit),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_VTABLE_END,
};

/* ---- org.polyvm.Vm1 ---- */

typedef int (*vm_verb_t)(struct vm *vm, sd_bus_error *error);

static int vm_method(sd_bus_message *m, struct vm *vm, sd_bus_error *error, vm_verb_t verb) {
        int r;

        r = verb(vm, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_start(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, error, vm_start);
}

static int method_stop(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, error, vm_stop);
}

static int method_kill(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, error, vm_kill);
}

static int method_pause(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, error, vm_pause);
}

static int method_resume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, error, vm_resume);
}

/* Swap verbs: forwarded to memmgr (vm-swap.c). */
static int vm_swap_method(sd_bus_message *m, struct vm *vm, const char *member, sd_bus_error *error) {
        int r = vm_swap_forward(vm, member, error);
        return r < 0 ? r : sd_bus_reply_method_return(m, NULL);
}

static int method_swap_out(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_swap_method(m, userdata, "SwapOut", error);
}

static int method_swap_in(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_swap_method(m, userdata, "SwapIn", error);
}

static int method_trim(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_swap_method(m, userdata, "Trim", error);
}

static int method_open_console(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_close_ int fd = -1;
        int r;

        r = vm_open_console(userdata, &fd, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "h", fd);
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;
        return sd_bus_message_append(reply, "s", vm_state_to_string(vm->state));
}

static int property_get_swap_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", vm_swap_state(userdata));
}

static int property_get_vcpus(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;
        return sd_bus_message_append(reply, "u", vm->config.vcpus);
}

static int property_get_memory(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;
        return sd_bus_message_append(reply, "t", vm->config.memory_bytes);
}

/* (path, pid) of a plugin VM's plugin: the path from the config, the pid
 * while it runs; ("", 0) for other VMs. */
static int property_get_plugin(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm *vm = userdata;
        return sd_bus_message_append(reply, "(su)", vm->config.plugin.path ?: "", vm->plugin_pid);
}

static const sd_bus_vtable vm_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Start", NULL, NULL, method_start, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Stop", NULL, NULL, method_stop, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Kill", NULL, NULL, method_kill, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Pause", NULL, NULL, method_pause, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Resume", NULL, NULL, method_resume, SD_BUS_VTABLE_UNPRIVILEGED),
        /* Privileged (same uid or CAP_SYS_ADMIN), as in memmgr. */
        SD_BUS_METHOD("SwapOut", NULL, NULL, method_swap_out, 0),
        SD_BUS_METHOD("SwapIn", NULL, NULL, method_swap_in, 0),
        SD_BUS_METHOD("Trim", NULL, NULL, method_trim, 0),
        SD_BUS_METHOD_WITH_ARGS("OpenConsole", SD_BUS_NO_ARGS, SD_BUS_RESULT("h", console), method_open_console,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(struct vm, name),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Vcpus", "u", property_get_vcpus, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MemoryBytes", "t", property_get_memory, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("StopReason", "s", NULL, offsetof(struct vm, stop_reason),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Config", "s", NULL, offsetof(struct vm, config_text),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Cid", "u", NULL, offsetof(struct vm, cid), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SwapState", "s", property_get_swap_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Plugin", "(su)", property_get_plugin, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PluginExitReason", "s", NULL, offsetof(struct vm, plugin_exit_reason),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceFailed", SD_BUS_ARGS("o", device, "s", reason), 0),
        SD_BUS_VTABLE_END,
};

/* Finds the VM of /org/polyvm/Launcher1/vm/<name>, but not of deeper paths
 * (those are the vCPUs, served by their own vtables). */
static int vm_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                          sd_bus_error *error) {
        struct launcher *l = userdata;
        _cleanup_free_ char *name = NULL;
        struct vm *vm;
        int r;

        r = sd_bus_path_decode(path, VM_PATH_PREFIX, &name);
        if (r <= 0 || strchr(name, '/'))
                return 0;
        vm = vm_find(l, name);
        if (!vm)
                return 0;
        *found = vm;
        return 1;
}

static int vm_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        struct launcher *l = userdata;
        size_t n = 0, i = 0;
        char **list;

        for (struct vm *vm = l->vms; vm; vm = vm->next)
                n++;
        list = calloc(n + 1, sizeof(char *));
        if (!list)
                return -ENOMEM;
        for (struct vm *vm = l->vms; vm; vm = vm->next) {
                list[i] = strdup(vm->path);
                if (!list[i]) {
                        for (size_t j = 0; j < i; j++)
                                free(list[j]);
                        free(list);
                        return -ENOMEM;
                }
                i++;
        }
        *nodes = list;
        return 1;
}

int launcher_bus_register(struct launcher *l) {
        int r;

        r = sd_bus_add_object_vtable(l->bus, NULL, LAUNCHER_PATH, "org.polyvm.Launcher1", launcher_vtable, l);
        if (r < 0)
                return log_error_errno(r, "Failed to add Launcher1 object: %m");
        r = sd_bus_add_fallback_vtable(l->bus, NULL, VM_PATH_PREFIX, "org.polyvm.Vm1", vm_vtable, vm_object_find, l);
        if (r < 0)
                return log_error_errno(r, "Failed to add Vm1 objects: %m");
        r = sd_bus_add_node_enumerator(l->bus, NULL, VM_PATH_PREFIX, vm_node_enumerator, l);
        if (r < 0)
                return log_error_errno(r, "Failed to add VM enumerator: %m");
        r = sd_bus_add_object_manager(l->bus, NULL, LAUNCHER_PATH);
        if (r < 0)
                return log_error_errno(r, "Failed to add object manager: %m");
        return 0;
}
