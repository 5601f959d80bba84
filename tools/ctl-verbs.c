/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bus-util.h"
#include "ctl-bus.h"
#include "ctl-config.h"
#include "ctl-console.h"
#include "ctl-format.h"
#include "ctl-json.h"
#include "ctl-verbs.h"
#include "json-util.h"

/* Properties.GetAll(iface) on path as a JSON object. */
static int get_all_properties(sd_bus *bus, const char *path, const char *iface, json_object **ret,
                              sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, LAUNCHER_BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", error,
                               &reply, "s", iface);
        if (r < 0)
                return r;
        return ctl_json_read_value(reply, ret);
}

static const char *prop_string(json_object *props, const char *name, const char *dflt) {
        json_object *v;
        return props && json_object_object_get_ex(props, name, &v) ? json_object_get_string(v) : dflt;
}

static uint64_t prop_uint(json_object *props, const char *name) {
        json_object *v;
        return props && json_object_object_get_ex(props, name, &v) ? json_object_get_uint64(v) : 0;
}

struct list_row {
        char name[80], state[32], vcpus[16], memory[32];
};

int verb_list(sd_bus *bus, const struct ctl_args *a) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ struct list_row *rows = NULL;
        size_t n = 0, w_name = 4, w_state = 5;
        const char *name, *path;
        int r;

        r = sd_bus_call_method(bus, LAUNCHER_BUS_NAME, LAUNCHER_OBJECT_PATH, LAUNCHER_INTERFACE, "ListVms", &error,
                               &reply, NULL);
        if (r < 0)
                return ctl_report_error("list", &error, r);
        r = sd_bus_message_enter_container(reply, 'a', "(so)");
        if (r < 0)
                return ctl_report_error("list", NULL, r);
        while ((r = sd_bus_message_read(reply, "(so)", &name, &path)) > 0) {
                _cleanup_(json_object_putp) json_object *props = NULL;
                _cleanup_bus_error_ sd_bus_error e = SD_BUS_ERROR_NULL;
                struct list_row *row, *nrows;

                nrows = reallocarray(rows, n + 1, sizeof(*rows));
                if (!nrows)
                        return ctl_report_error("list", NULL, -ENOMEM);
                rows = nrows;
                row = &rows[n++];
                /* A VM destroyed meanwhile still gets its line, with dashes. */
                (void) get_all_properties(bus, path, VM_INTERFACE, &props, &e);
                snprintf(row->name, sizeof(row->name), "%s", name);
                snprintf(row->state, sizeof(row->state), "%s", prop_string(props, "State", "-"));
                if (props) {
                        snprintf(row->vcpus, sizeof(row->vcpus), "%" PRIu64, prop_uint(props, "Vcpus"));
                        ctl_format_bytes(prop_uint(props, "MemoryBytes"), row->memory, sizeof(row->memory));
                } else {
                        strcpy(row->vcpus, "-");
                        strcpy(row->memory, "-");
                }
                w_name = MAX(w_name, strlen(row->name));
                w_state = MAX(w_state, strlen(row->state));
        }
        if (r < 0)
                return ctl_report_error("list", NULL, r);

        printf("%-*s %-*s %5s %s\n", (int) w_name, "NAME", (int) w_state, "STATE", "VCPUS", "MEMORY");
        for (size_t i = 0; i < n; i++)
                printf("%-*s %-*s %5s %s\n", (int) w_name, rows[i].name, (int) w_state, rows[i].state, rows[i].vcpus,
                       rows[i].memory);
        return 0;
}

/* The whole of fd as a string. */
static int read_all(int fd, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, size = 0;

        for (;;) {
                ssize_t k;

                if (size - n < 4096) {
                        char *b = realloc(buf, size + 65536);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        size += 65536;
                }
                k = read(fd, buf + n, size - n - 1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > 16 * 1024 * 1024)
                        return -EFBIG;
        }
        buf[n] = 0;
        if (strlen(buf) != n)
                return -EBADMSG; /* a NUL byte: not JSON text */
        *ret = TAKE_PTR(buf);
        return 0;
}

int verb_create(sd_bus *bus, const struct ctl_args *a) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *config = NULL;
        _cleanup_close_ int fd = -1;
        const char *file = a->args[1];
        int r;

        if (strcmp(file, "-") == 0)
                r = read_all(STDIN_FILENO, &config);
        else {
                fd = open(file, O_RDONLY | O_CLOEXEC);
                r = fd < 0 ? -errno : read_all(fd, &config);
        }
        if (r < 0) {
                fprintf(stderr, "polyvmctl: create failed: cannot read CONFIG '%s': %s\n", file, strerror(-r));
                return 1;
        }
        r = sd_bus_call_method(bus, LAUNCHER_BUS_NAME, LAUNCHER_OBJECT_PATH, LAUNCHER_INTERFACE, "CreateVm", &error,
                               &reply, "ss", a->args[0], config);
        if (r < 0)
                return ctl_report_error("create", &error, r);
        return 0;
}

int verb_vm_method(sd_bus *bus, const struct ctl_args *a) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        static const struct {
                enum ctl_verb verb;
                const char *method;
        } map[] = {
                { CTL_VERB_START, "Start" },   { CTL_VERB_STOP, "Stop" },     { CTL_VERB_KILL, "Kill" },
                { CTL_VERB_PAUSE, "Pause" },   { CTL_VERB_RESUME, "Resume" },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (map[i].verb == a->verb) {
                        r = ctl_vm_call(bus, a->args[0], map[i].method, &error);
                        if (r < 0)
                                return ctl_report_error(a->verb_name, &error, r);
                        return 0;
                }
        return ctl_report_error(a->verb_name, NULL, -EINVAL);
}

int verb_destroy(sd_bus *bus, const struct ctl_args *a) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, LAUNCHER_BUS_NAME, LAUNCHER_OBJECT_PATH, LAUNCHER_INTERFACE, "DestroyVm", &error,
                               NULL, "s", a->args[0]);
        if (r < 0)
                return ctl_report_error("destroy", &error, r);
        return 0;
}

/* {"object": path, "properties": {...Vm1...}, "vcpus": [{"object", "properties"}...]} */
static int status_collect(sd_bus *bus, const char *path, json_object **ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_object_putp) json_object *objects = NULL, *out = NULL, *vcpus = NULL;
        json_object *vm_ifaces, *props;
        size_t plen = strlen(path);
        int r;

        r = sd_bus_call_method(bus, LAUNCHER_BUS_NAME, LAUNCHER_OBJECT_PATH, "org.freedesktop.DBus.ObjectManager",
                               "GetManagedObjects", error, &reply, NULL);
        if (r < 0)
                return r;
        r = ctl_json_read_value(reply, &objects);
        if (r < 0)
                return r;
        if (!json_object_object_get_ex(objects, path, &vm_ifaces) ||
            !json_object_object_get_ex(vm_ifaces, VM_INTERFACE, &props))
                return sd_bus_error_setf(error, "org.polyvm.Error.NoSuchVm", "VM object %s is gone", path);

        out = json_object_new_object();
        vcpus = json_object_new_array();
        if (!out || !vcpus)
                return -ENOMEM;
        json_object_object_add(out, "object", json_object_new_string(path));
        json_object_object_add(out, "properties", json_object_get(props));

        json_object_object_foreach(objects, p, ifaces) {
                json_object *vp, *entry;

                if (strncmp(p, path, plen) != 0 || strncmp(p + plen, "/vcpu/", 6) != 0 ||
                    !json_object_object_get_ex(ifaces, VCPU_INTERFACE, &vp))
                        continue;
                entry = json_object_new_object();
                if (!entry)
                        return -ENOMEM;
                json_object_object_add(entry, "object", json_object_new_string(p));
                json_object_object_add(entry, "properties", json_object_get(vp));
                json_object_array_add(vcpus, entry);
        }
        json_object_object_add(out, "vcpus", TAKE_PTR(vcpus));
        *ret = TAKE_PTR(out);
        return 0;
}

static int vcpu_cmp(const void *a, const void *b) {
        json_object *const *x = a, *const *y = b, *px, *py, *ix, *iy;
        uint64_t i = 0, j = 0;

        if (json_object_object_get_ex(*x, "properties", &px) && json_object_object_get_ex(px, "Index", &ix))
                i = json_object_get_uint64(ix);
        if (json_object_object_get_ex(*y, "properties", &py) && json_object_object_get_ex(py, "Index", &iy))
                j = json_object_get_uint64(iy);
        return i < j ? -1 : i > j;
}

static void print_counts(const char *label, json_object *counts) {
        bool first = true;

        if (!counts || json_object_object_length(counts) == 0)
                return;
        printf("            %s:", label);
        json_object_object_foreach(counts, k, v) {
                printf("%s %s %s", first ? "" : ",", k, json_object_get_string(v));
                first = false;
        }
        printf("\n");
}

/* A plugin VM's plugin: Plugin is (path, pid), ["", 0] for other VMs. */
static void print_plugin(json_object *props) {
        json_object *plugin;
        const char *path, *exit_reason;
        uint64_t pid;

        if (!json_object_object_get_ex(props, "Plugin", &plugin) || !json_object_is_type(plugin, json_type_array) ||
            json_object_array_length(plugin) != 2)
                return;
        path = json_object_get_string(json_object_array_get_idx(plugin, 0));
        pid = (uint64_t) json_object_get_int64(json_object_array_get_idx(plugin, 1));
        if (!path || !path[0])
                return;
        if (pid > 0)
                printf("     Plugin: %s (pid %" PRIu64 ")\n", path, pid);
        else
                printf("     Plugin: %s (not running)\n", path);
        exit_reason = prop_string(props, "PluginExitReason", "");
        if (exit_reason[0])
                printf("Plugin exit: %s\n", exit_reason);
}

int verb_status(sd_bus *bus, const struct ctl_args *a) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *st = NULL;
        _cleanup_free_ char *path = NULL;
        json_object *props, *vcpus;
        const char *config;
        char mem[32];
        size_t n;
        int r;

        r = ctl_vm_path(bus, a->args[0], &path, &error);
        if (r >= 0)
                r = status_collect(bus, path, &st, &error);
        if (r < 0)
                return ctl_report_error("status", &error, r);
        /* GetManagedObjects has no order: list vCPUs by Index. */
        json_object_object_get_ex(st, "vcpus", &vcpus);
        json_object_array_sort(vcpus, vcpu_cmp);

        if (a->json) {
                printf("%s\n", json_object_to_json_string_ext(st, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                      JSON_C_TO_STRING_NOSLASHESCAPE));
                return 0;
        }

        json_object_object_get_ex(st, "properties", &props);
        ctl_format_bytes(prop_uint(props, "MemoryBytes"), mem, sizeof(mem));
        printf("%s\n", prop_string(props, "Name", a->args[0]));
        printf("      State: %s\n", prop_string(props, "State", "-"));
        if (prop_string(props, "StopReason", "")[0])
                printf("     Reason: %s\n", prop_string(props, "StopReason", ""));
        print_plugin(props);
        printf("      vCPUs: %" PRIu64 "\n", prop_uint(props, "Vcpus"));
        printf("     Memory: %s (%" PRIu64 " bytes)\n", mem, prop_uint(props, "MemoryBytes"));
        printf("     Object: %s\n", path);
        for (size_t i = 0; i < json_object_array_length(vcpus); i++) {
                json_object *vp = NULL, *counts = NULL;

                json_object_object_get_ex(json_object_array_get_idx(vcpus, i), "properties", &vp);
                printf("     vCPU %" PRIu64 ": %s\n", prop_uint(vp, "Index"), prop_string(vp, "State", "-"));
                if (json_object_object_get_ex(vp, "ExitCounts", &counts))
                        print_counts("exits", counts);
                if (json_object_object_get_ex(vp, "EmulatedInstructions", &counts))
                        print_counts("emulated", counts);
        }
        config = prop_string(props, "Config", "");
        n = strlen(config);
        while (n > 0 && strchr(" \t\r\n", config[n - 1]))
                n--;
        if (n > 0)
                printf("     Config: %.*s\n", (int) n, config);
        return 0;
}

static bool watch_finished(void *userdata) {
        return vm_watch_finished(userdata);
}

/* Attaches to the console of the VM at path until it stops, the user
 * leaves or a signal comes. Returns an enum console_end, or the exit code
 * (1) after reporting a failure as action. */
static int attach(sd_bus *bus, const char *name, const char *path, struct vm_watch *w, bool half_close,
                  const char *action, int *ret_end) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_close_ int fd = -1;
        int r, cfd;

        r = sd_bus_call_method(bus, LAUNCHER_BUS_NAME, path, VM_INTERFACE, "OpenConsole", &error, &reply, NULL);
        if (r >= 0)
                r = sd_bus_message_read(reply, "h", &cfd);
        if (r < 0)
                return ctl_report_error(action, &error, r);
        fd = fcntl(cfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return ctl_report_error(action, NULL, -errno);

        fprintf(stderr, "Connected to %s's console. Press Ctrl-] to leave.\n", name);
        r = console_attach(&(struct console_session) {
                .console_fd = fd,
                .in_fd = STDIN_FILENO,
                .out_fd = STDOUT_FILENO,
                .half_close = half_close,
                .bus = bus,
                .finished = watch_finished,
                .userdata = w,
        });
        if (r < 0)
                return ctl_report_error(action, NULL, r);
        *ret_end = r;
        return 0;
}

int verb_console(sd_bus *bus, const struct ctl_args *a) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        struct vm_watch w = {};
        int r, end = 0;

        r = ctl_vm_path(bus, a->args[0], &path, &error);
        if (r >= 0)
                r = vm_watch_start(bus, path, &w, &error);
        if (r < 0) {
                vm_watch_done(&w);
                return ctl_report_error("console", &error, r);
        }
        r = attach(bus, a->args[0], path, &w, true, "console", &end);
        /* The launcher may close the console as the VM stops, before its
         * PropertiesChanged reaches us: ask. */
        if (r == 0 && end == CONSOLE_END_EOF && vm_watch_refresh(&w, &error) >= 0 && vm_watch_finished(&w))
                end = CONSOLE_END_STOPPED;
        if (r == 0) {
                if (end == CONSOLE_END_STOPPED)
                        fprintf(stderr, "\nVM %s stopped: %s\n", a->args[0], w.stop_reason ?: "");
                else if (end == CONSOLE_END_DETACHED)
                        fprintf(stderr, "\nLeft %s's console.\n", a->args[0]);
                else if (end == CONSOLE_END_SIGNAL)
                        r = 130;
        }
        vm_watch_done(&w);
        return r;
}

static int destroy_vm(sd_bus *bus, const char *name) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, LAUNCHER_BUS_NAME, LAUNCHER_OBJECT_PATH, LAUNCHER_INTERFACE, "DestroyVm", &error,
                               NULL, "s", name);
        return r < 0 ? ctl_report_error("destroy", &error, r) : 0;
}

/* Exit code for a VM that ended: 0 only for a clean power-off (or a reboot
 * the config turned into a stop). */
static int run_exit_code(const struct vm_watch *w) {
        if (w->state && strcmp(w->state, "stopped") == 0 && w->stop_reason &&
            (strcmp(w->stop_reason, "poweroff") == 0 || strcmp(w->stop_reason, "reboot") == 0))
                return 0;
        return 1;
}

/* After CreateVm: start, attach, wait. Returns the exit code. */
static int run_vm(sd_bus *bus, const struct ctl_args *a, const char *name, const char *path, struct vm_watch *w) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        int r, end = 0;

        /* Watch before Start: the VM may stop before we look. */
        r = vm_watch_start(bus, path, w, &error);
        if (r >= 0)
                r = sd_bus_call_method(bus, LAUNCHER_BUS_NAME, path, VM_INTERFACE, "Start", &error, NULL, NULL);
        if (r < 0)
                return ctl_report_error("start", &error, r);

        r = attach(bus, name, path, w, false, "console", &end);
        if (r != 0)
                return r;

        /* The console went away before the VM: wait for the VM. */
        while (end == CONSOLE_END_EOF && !vm_watch_finished(w)) {
                r = sd_bus_process(bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(bus, UINT64_MAX);
                if (r < 0)
                        return ctl_report_error("run", NULL, r);
        }

        if (vm_watch_finished(w)) {
                fprintf(stderr, "\nVM %s stopped: %s\n", name, w->stop_reason ?: "");
                return run_exit_code(w);
        }
        fprintf(stderr, "\nLeft %s's console; %s.\n", name,
                a->run.keep ? "the VM keeps running" : "destroying the VM");
        return end == CONSOLE_END_SIGNAL ? 130 : 0;
}

int verb_run(sd_bus *bus, const struct ctl_args *a) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *config = NULL, *cwd = NULL;
        struct vm_watch w = {};
        char defname[32], err[512];
        const char *name = a->run.name, *path;
        int r, rc;

        if (!name) {
                ctl_run_default_name((unsigned long) getpid(), defname, sizeof(defname));
                name = defname;
        }
        cwd = getcwd(NULL, 0);
        r = ctl_run_config_build(&a->run, cwd, &config, err, sizeof(err));
        if (r == -EINVAL) {
                fprintf(stderr, "polyvmctl: %s\n", err);
                return 2;
        }
        if (r < 0)
                return ctl_report_error("run", NULL, r);

        r = sd_bus_call_method(bus, LAUNCHER_BUS_NAME, LAUNCHER_OBJECT_PATH, LAUNCHER_INTERFACE, "CreateVm", &error,
                               &reply, "ss", name, config);
        if (r >= 0)
                r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return ctl_report_error("create", &error, r);

        rc = run_vm(bus, a, name, path, &w);
        vm_watch_done(&w);
        if (!a->run.keep && destroy_vm(bus, name) != 0 && rc == 0)
                rc = 1;
        return rc;
}
