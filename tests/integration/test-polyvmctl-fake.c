/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus-util.h" /* before glib.h, whose MIN/MAX win */
#include "json-util.h"
#include "harness.h"
#include "test-polyvmctl-fake.h"

#define PREFIX "/org/polyvm/Launcher1/vm"
#define MAX_VMS 8

struct fake_vcpu {
        uint32_t index;
        char *state;
};

struct fake_vm {
        bool used;
        char *name, *path, *state, *reason, *config;
        uint32_t vcpus;
        uint64_t memory_bytes;
        struct fake_vcpu vcpu[4];
        GString *scrollback;
        int console;              /* our end of the attached client's socket */
        sd_event_source *console_src;
};

static struct fake_vm vms[MAX_VMS];
static sd_bus *bus;

static struct fake_vm *vm_find(const char *name) {
        for (size_t i = 0; i < MAX_VMS; i++)
                if (vms[i].used && strcmp(vms[i].name, name) == 0)
                        return &vms[i];
        return NULL;
}

static void vm_set_state(struct fake_vm *vm, const char *state, const char *reason) {
        g_free(vm->state);
        g_free(vm->reason);
        vm->state = g_strdup(state);
        vm->reason = g_strdup(reason);
        for (uint32_t i = 0; i < vm->vcpus && i < G_N_ELEMENTS(vm->vcpu); i++) {
                g_free(vm->vcpu[i].state);
                vm->vcpu[i].state = g_strdup(state);
        }
        (void) sd_bus_emit_properties_changed(bus, vm->path, "org.polyvm.Vm1", "State", "StopReason", NULL);
}

static void vm_console_write(struct fake_vm *vm, const char *text) {
        g_string_append(vm->scrollback, text);
        if (vm->console >= 0)
                (void) !write(vm->console, text, strlen(text));
}

static void vm_console_close(struct fake_vm *vm) {
        vm->console_src = sd_event_source_disable_unref(vm->console_src);
        if (vm->console >= 0)
                close(vm->console);
        vm->console = -1;
}

static void vm_free(struct fake_vm *vm) {
        vm_console_close(vm);
        g_free(vm->name);
        g_free(vm->path);
        g_free(vm->state);
        g_free(vm->reason);
        g_free(vm->config);
        for (size_t i = 0; i < G_N_ELEMENTS(vm->vcpu); i++)
                g_free(vm->vcpu[i].state);
        g_string_free(vm->scrollback, TRUE);
        memset(vm, 0, sizeof(*vm));
}

/* The guest: echo, and act on the two magic words. */
static int on_console(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct fake_vm *vm = userdata;
        char buf[256];
        ssize_t n = read(fd, buf, sizeof(buf) - 1);

        if (n <= 0) {
                vm_console_close(vm);
                return 0;
        }
        buf[n] = 0;
        vm_console_write(vm, buf);
        if (strstr(buf, "poweroff")) {
                vm_console_write(vm, "reboot: Power down\r\n");
                vm_set_state(vm, "stopped", "poweroff");
        } else if (strstr(buf, "crash"))
                vm_set_state(vm, "failed", FAKE_CRASH_REASON);
        return 0;
}

static int method_create_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(json_object_putp) json_object *obj = NULL;
        json_object *v;
        const char *name, *config;
        char err[256];
        struct fake_vm *vm = NULL;

        if (sd_bus_message_read(m, "ss", &name, &config) < 0)
                return -EINVAL;
        if (vm_find(name))
                return sd_bus_error_setf(error, "org.polyvm.Error.VmExists", "VM \"%s\" already exists", name);
        if (json_parse_object(config, &obj, err, sizeof(err)) < 0)
                return sd_bus_error_set(error, "org.polyvm.Error.InvalidConfig", err);
        for (size_t i = 0; i < MAX_VMS; i++)
                if (!vms[i].used) {
                        vm = &vms[i];
                        break;
                }
        if (!vm)
                return sd_bus_error_set(error, "org.polyvm.Error.Failed", "too many VMs");

        *vm = (struct fake_vm) { .used = true, .console = -1, .vcpus = 1, .memory_bytes = 256ULL << 20 };
        vm->name = g_strdup(name);
        g_assert_cmpint(sd_bus_path_encode(PREFIX, name, &vm->path), >=, 0);
        vm->state = g_strdup("created");
        vm->reason = g_strdup("");
        vm->config = g_strdup(config);
        vm->scrollback = g_string_new(NULL);
        if (json_object_object_get_ex(obj, "vcpus", &v))
                vm->vcpus = (uint32_t) json_object_get_int(v);
        if (json_object_object_get_ex(obj, "memory_mib", &v))
                vm->memory_bytes = (uint64_t) json_object_get_int64(v) << 20;
        for (uint32_t i = 0; i < G_N_ELEMENTS(vm->vcpu); i++)
                vm->vcpu[i] = (struct fake_vcpu) { .index = i, .state = g_strdup("created") };
        (void) sd_bus_emit_object_added(bus, vm->path);
        return sd_bus_reply_method_return(m, "o", vm->path);
}

static int method_list_vms(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;

        g_assert_cmpint(sd_bus_message_new_method_return(m, &reply), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(reply, 'a', "(so)"), >=, 0);
        for (size_t i = 0; i < MAX_VMS; i++)
                if (vms[i].used)
                        g_assert_cmpint(sd_bus_message_append(reply, "(so)", vms[i].name, vms[i].path), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(reply), >=, 0);
        return sd_bus_send(NULL, reply, NULL);
}

static int method_destroy_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct fake_vm *vm;
        const char *name;

        if (sd_bus_message_read(m, "s", &name) < 0)
                return -EINVAL;
        vm = vm_find(name);
        if (!vm)
                return sd_bus_error_setf(error, "org.polyvm.Error.NoSuchVm", "No VM named \"%s\"", name);
        (void) sd_bus_emit_object_removed(bus, vm->path);
        vm_free(vm);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct fake_vm *vm = userdata;
        const char *member = sd_bus_message_get_member(m);

        if (strcmp(member, "Start") == 0) {
                if (strcmp(vm->state, "created") != 0 && strcmp(vm->state, "stopped") != 0)
                        return sd_bus_error_setf(error, "org.polyvm.Error.AlreadyActive", "VM %s is %s", vm->name,
                                                 vm->state);
                vm_console_write(vm, "Booting ");
                vm_console_write(vm, vm->name);
                vm_console_write(vm, "\r\n");
                vm_set_state(vm, "running", "");
        } else if (strcmp(member, "Stop") == 0)
                vm_set_state(vm, "stopped", "poweroff");
        else if (strcmp(member, "Kill") == 0)
                vm_set_state(vm, "stopped", "killed");
        else if (strcmp(member, "Pause") == 0) {
                if (strcmp(vm->state, "running") != 0)
                        return sd_bus_error_setf(error, "org.polyvm.Error.NotRunning", "VM %s is %s", vm->name,
                                                 vm->state);
                vm_set_state(vm, "paused", "");
        } else if (strcmp(member, "Resume") == 0)
                vm_set_state(vm, "running", "");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_open_console(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct fake_vm *vm = userdata;
        int pair[2], r;

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), ==, 0);
        vm_console_close(vm);
        vm->console = pair[0];
        (void) !write(vm->console, vm->scrollback->str, vm->scrollback->len);
        g_assert_cmpint(sd_event_add_io(sd_bus_get_event(bus), &vm->console_src, vm->console, EPOLLIN, on_console, vm),
                        >=, 0);
        r = sd_bus_reply_method_return(m, "h", pair[1]);
        close(pair[1]);
        return r;
}

static int vcpu_exit_counts(sd_bus *b, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "a{st}", 2, "io", (uint64_t) 42, "hlt", (uint64_t) 7);
}

static const sd_bus_vtable launcher_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("CreateVm", "ss", "o", method_create_vm, 0),
        SD_BUS_METHOD("ListVms", "", "a(so)", method_list_vms, 0),
        SD_BUS_METHOD("DestroyVm", "s", "", method_destroy_vm, 0),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable vm_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Start", "", "", method_vm, 0),
        SD_BUS_METHOD("Stop", "", "", method_vm, 0),
        SD_BUS_METHOD("Kill", "", "", method_vm, 0),
        SD_BUS_METHOD("Pause", "", "", method_vm, 0),
        SD_BUS_METHOD("Resume", "", "", method_vm, 0),
        SD_BUS_METHOD("OpenConsole", "", "h", method_open_console, 0),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(struct fake_vm, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", NULL, offsetof(struct fake_vm, state), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Vcpus", "u", NULL, offsetof(struct fake_vm, vcpus), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MemoryBytes", "t", NULL, offsetof(struct fake_vm, memory_bytes), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("StopReason", "s", NULL, offsetof(struct fake_vm, reason), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Config", "s", NULL, offsetof(struct fake_vm, config), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable vcpu_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Index", "u", NULL, offsetof(struct fake_vcpu, index), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", NULL, offsetof(struct fake_vcpu, state), 0),
        SD_BUS_PROPERTY("ExitCounts", "a{st}", vcpu_exit_counts, 0, 0),
        SD_BUS_VTABLE_END,
};

/* path is PREFIX/<name> (Vm1) or PREFIX/<name>/vcpu/<n> (Vcpu1, started VMs only). */
static int find(const char *path, bool want_vcpu, void **found) {
        const char *rest, *slash;
        g_autofree char *name = NULL;
        struct fake_vm *vm;

        if (!g_str_has_prefix(path, PREFIX "/"))
                return 0;
        rest = path + strlen(PREFIX "/");
        slash = strchr(rest, '/');
        name = g_strndup(rest, slash ? (size_t) (slash - rest) : strlen(rest));
        vm = vm_find(name);
        if (!vm)
                return 0;
        if (!want_vcpu) {
                if (slash)
                        return 0;
                *found = vm;
                return 1;
        }
        if (!slash || !g_str_has_prefix(slash, "/vcpu/") || strcmp(vm->state, "created") == 0)
                return 0;
        for (uint32_t i = 0; i < vm->vcpus && i < G_N_ELEMENTS(vm->vcpu); i++) {
                char n[16];
                g_snprintf(n, sizeof(n), "%u", i);
                if (strcmp(slash + 6, n) == 0) {
                        *found = &vm->vcpu[i];
                        return 1;
                }
        }
        return 0;
}

static int find_vm(sd_bus *b, const char *path, const char *iface, void *userdata, void **found, sd_bus_error *e) {
        return find(path, false, found);
}

static int find_vcpu(sd_bus *b, const char *path, const char *iface, void *userdata, void **found, sd_bus_error *e) {
        return find(path, true, found);
}

static int enumerate(sd_bus *b, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        g_autoptr(GPtrArray) l = g_ptr_array_new();

        for (size_t i = 0; i < MAX_VMS; i++) {
                if (!vms[i].used)
                        continue;
                g_ptr_array_add(l, strdup(vms[i].path));
                if (strcmp(vms[i].state, "created") != 0)
                        for (uint32_t j = 0; j < vms[i].vcpus && j < G_N_ELEMENTS(vms[i].vcpu); j++) {
                                g_autofree char *p = g_strdup_printf("%s/vcpu/%u", vms[i].path, j);
                                g_ptr_array_add(l, strdup(p));
                        }
        }
        g_ptr_array_add(l, NULL);
        *nodes = (char **) g_ptr_array_steal(l, NULL);
        return 1;
}

static void fake_main(const char *address) {
        sd_event *event = NULL;

        g_assert_cmpint(sd_event_default(&event), >=, 0);
        g_assert_cmpint(bus_open(address, &bus), >=, 0);
        g_assert_cmpint(sd_bus_attach_event(bus, event, 0), >=, 0);
        g_assert_cmpint(sd_bus_set_exit_on_disconnect(bus, true), >=, 0);
        g_assert_cmpint(sd_bus_add_object_vtable(bus, NULL, "/org/polyvm/Launcher1", "org.polyvm.Launcher1",
                                                 launcher_vtable, NULL), >=, 0);
        g_assert_cmpint(sd_bus_add_fallback_vtable(bus, NULL, PREFIX, "org.polyvm.Vm1", vm_vtable, find_vm, NULL),
                        >=, 0);
        g_assert_cmpint(sd_bus_add_fallback_vtable(bus, NULL, PREFIX, "org.polyvm.Vcpu1", vcpu_vtable, find_vcpu,
                                                   NULL), >=, 0);
        g_assert_cmpint(sd_bus_add_node_enumerator(bus, NULL, PREFIX, enumerate, NULL), >=, 0);
        g_assert_cmpint(sd_bus_add_object_manager(bus, NULL, "/org/polyvm/Launcher1"), >=, 0);
        g_assert_cmpint(sd_bus_request_name(bus, "org.polyvm.Launcher1", 0), >=, 0);
        (void) sd_event_loop(event);
        _exit(0);
}

pid_t fake_launcher_spawn(const char *address) {
        struct harness probe = {};
        pid_t pid = fork();

        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                signal(SIGTERM, SIG_DFL);
                fake_main(address);
        }

        g_assert_cmpint(bus_open(address, &probe.bus), >=, 0);
        for (int i = 0; i < 250 && harness_name_pid(&probe, "org.polyvm.Launcher1") != pid; i++)
                g_usleep(20 * 1000);
        g_assert_cmpint(harness_name_pid(&probe, "org.polyvm.Launcher1"), ==, pid);
        sd_bus_flush_close_unref(probe.bus);
        return pid;
}
