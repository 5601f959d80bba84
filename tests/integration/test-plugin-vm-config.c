/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Plugin VM configs over a real private bus with the real launcher: what
 * CreateVm accepts and refuses (named errors naming the field), the Vm1
 * properties of a plugin VM (Plugin, PluginExitReason, no RAM of ours, no
 * console) and of other VMs, and that Start without KVM names the missing
 * KVM before any plugin process runs; plugin.files are opened at CreateVm
 * and again at Start (before KVM), each refusal naming files[i]. Running a
 * plugin VM needs KVM: tests/guest/test-plugin-vm.c. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define LAUNCHER "org.polyvm.Launcher1"
#define LAUNCHER_PATH "/org/polyvm/Launcher1"
#define VM_IFACE "org.polyvm.Vm1"

static struct harness h;
static char *plugin_path, *kernel_elf;

static char *create_vm(const char *name, const char *config, char **message) {
        return harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "CreateVm", message, "ss", name, config);
}

static void destroy_vm(const char *name) {
        g_autofree char *err = harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "DestroyVm", NULL, "s", name);
        g_assert_null(err);
}

static char *vm_path(const char *name) {
        char *path = NULL;
        g_assert_cmpint(sd_bus_path_encode(LAUNCHER_PATH "/vm", name, &path), >=, 0);
        return path;
}

static void get_plugin(const char *path, char **ret_path, uint32_t *ret_pid) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *p;

        if (sd_bus_get_property(h.bus, LAUNCHER, path, VM_IFACE, "Plugin", &error, &reply, "(su)") < 0)
                g_error("Plugin of %s: %s", path, error.message);
        g_assert_cmpint(sd_bus_message_read(reply, "(su)", &p, ret_pid), >, 0);
        *ret_path = g_strdup(p);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
}

static void assert_refused(const char *config, const char *want_error, const char *want_message) {
        g_autofree char *message = NULL, *err = create_vm("refused", config, &message);

        if (!err || strcmp(err, want_error) != 0 || !message || !strstr(message, want_message))
                g_error("config %s: expected %s \"%s\", got %s \"%s\"", config, want_error, want_message,
                        err ?: "success", message ?: "");
}

/* polyvmctl status NAME against the real launcher; its stdout. */
static char *ctl_status(const char *name) {
        g_autofree char *exe = harness_build_path("tools/polyvmctl");
        g_autofree char *bus = g_strdup_printf("--bus=%s", h.address);
        char *argv[] = { exe, bus, (char *) "status", (char *) name, NULL };
        g_autofree char *err = NULL;
        char *out = NULL;
        int status = -1;

        g_assert_true(g_spawn_sync(NULL, argv, NULL, 0, NULL, NULL, &out, &err, &status, NULL));
        if (status != 0)
                g_error("polyvmctl status %s: %s", name, err);
        return out;
}

static void test_bad_plugin_configs_get_named_errors(void) {
        g_autofree char *with_kernel = g_strdup_printf("{\"plugin\": {\"path\": \"%s\"}, \"kernel\": \"%s\"}",
                                                       plugin_path, kernel_elf);
        g_autofree char *with_devices = g_strdup_printf("{\"plugin\": {\"path\": \"%s\"}, \"devices\": []}",
                                                        plugin_path);
        g_autofree char *bad_args = g_strdup_printf("{\"plugin\": {\"path\": \"%s\", \"args\": [1]}}", plugin_path);
        g_autofree char *bad_field = g_strdup_printf("{\"plugin\": {\"path\": \"%s\", \"env\": {}}}", plugin_path);

        assert_refused("{\"plugin\": {\"path\": \"polyvm-plugin-minimal\"}}", "org.polyvm.Error.InvalidConfig",
                       "config.plugin.path: \"polyvm-plugin-minimal\" must be an absolute path");
        assert_refused("{\"plugin\": {}}", "org.polyvm.Error.InvalidConfig", "config.plugin.path: missing required field");
        assert_refused("{\"plugin\": []}", "org.polyvm.Error.InvalidConfig", "config.plugin: must be an object");
        assert_refused(with_kernel, "org.polyvm.Error.InvalidConfig", "config.plugin: conflicts with config.kernel");
        assert_refused(with_devices, "org.polyvm.Error.InvalidConfig", "config.plugin: conflicts with config.devices");
        assert_refused(bad_args, "org.polyvm.Error.InvalidConfig", "config.plugin.args[0]: must be a string");
        assert_refused(bad_field, "org.polyvm.Error.InvalidConfig", "config.plugin.env: unknown field");
        assert_refused("{\"vcpus\": 1}", "org.polyvm.Error.InvalidConfig", "config.kernel: missing required field");
        /* Nothing was created by any of them. */
        g_autofree char *path = vm_path("refused");
        g_autofree char *err = harness_call_error(&h, LAUNCHER, path, VM_IFACE, "Start", NULL, NULL);
        g_assert_nonnull(err);
}

static void test_plugin_vm_is_created_and_shows_its_plugin(void) {
        g_autofree char *config = g_strdup_printf(
                "{\"plugin\": {\"path\": \"%s\", \"args\": [\"hi\\n\"], \"irqchip\": false}, \"vcpus\": 2}", plugin_path);
        g_autofree char *path = vm_path("plug");
        g_autofree char *err = NULL, *message = NULL, *state = NULL, *exit_reason = NULL, *shown = NULL;
        g_autofree char *kernel_cfg = g_strdup_printf("{\"kernel\": \"%s\", \"memory_mib\": 64}", kernel_elf);
        g_autofree char *kpath = vm_path("kvm-vm");
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t memory = 1;
        uint32_t pid = 1;

        err = create_vm("plug", config, &message);
        if (err)
                g_error("CreateVm: %s: %s", err, message);
        harness_compare_interface(&h, LAUNCHER, path, VM_IFACE);
        state = harness_get_string(&h, LAUNCHER, path, VM_IFACE, "State");
        g_assert_cmpstr(state, ==, "created");
        get_plugin(path, &shown, &pid);
        g_assert_cmpstr(shown, ==, plugin_path);
        g_assert_cmpuint(pid, ==, 0); /* not started */
        exit_reason = harness_get_string(&h, LAUNCHER, path, VM_IFACE, "PluginExitReason");
        g_assert_cmpstr(exit_reason, ==, "");
        {
                g_autofree char *out = ctl_status("plug");
                g_autofree char *want = g_strdup_printf("Plugin: %s (not running)", plugin_path);
                if (!strstr(out, want))
                        g_error("polyvmctl status shows no plugin line \"%s\":\n%s", want, out);
                g_assert_null(strstr(out, "Plugin exit:"));
        }
        /* No memory_mib: the plugin brings all guest memory. */
        g_assert_cmpint(sd_bus_get_property_trivial(h.bus, LAUNCHER, path, VM_IFACE, "MemoryBytes", &error, 't', &memory),
                        >=, 0);
        g_assert_cmpuint(memory, ==, 0);
        /* Its output is the plugin's: no console of ours. */
        g_clear_pointer(&err, g_free);
        g_clear_pointer(&message, g_free);
        err = harness_call_error(&h, LAUNCHER, path, VM_IFACE, "OpenConsole", &message, NULL);
        g_assert_cmpstr(err, ==, "org.polyvm.Error.BadState");
        g_assert_nonnull(strstr(message, "plugin VM"));

        /* Without KVM, Start says so, and no plugin was spawned. */
        g_clear_pointer(&err, g_free);
        g_clear_pointer(&message, g_free);
        err = harness_call_error(&h, LAUNCHER, path, VM_IFACE, "Start", &message, NULL);
        if (access("/dev/kvm", R_OK | W_OK) < 0) {
                g_assert_cmpstr(err, ==, "org.polyvm.Error.KvmUnavailable");
                g_free(shown);
                get_plugin(path, &shown, &pid);
                g_assert_cmpuint(pid, ==, 0);
                g_free(state);
                state = harness_get_string(&h, LAUNCHER, path, VM_IFACE, "State");
                g_assert_cmpstr(state, ==, "created");
        } else
                g_assert_null(err); /* the guest suite goes further */

        /* Other VMs show ("", 0). */
        g_clear_pointer(&err, g_free);
        err = create_vm("kvm-vm", kernel_cfg, NULL);
        g_assert_null(err);
        g_free(shown);
        get_plugin(kpath, &shown, &pid);
        g_assert_cmpstr(shown, ==, "");
        g_assert_cmpuint(pid, ==, 0);
        {
                g_autofree char *out = ctl_status("kvm-vm");
                g_assert_null(strstr(out, "Plugin:"));
        }
        destroy_vm("kvm-vm");
        destroy_vm("plug");
        sd_bus_error_free(&error);
}

static void test_plugin_files_are_checked_at_create_and_start(void) {
        g_autofree char *dir = g_dir_make_tmp("plugin-files-XXXXXX", NULL);
        g_autofree char *file = g_build_filename(dir, "image", NULL);
        g_autofree char *link = g_build_filename(dir, "link", NULL);
        g_autofree char *fifo = g_build_filename(dir, "fifo", NULL);
        g_autofree char *missing = g_build_filename(dir, "missing", NULL);
        g_autofree char *path = vm_path("files");
        g_autofree char *err = NULL, *message = NULL, *want = NULL, *cfg = NULL;
#define FILES_CONFIG(list) g_strdup_printf("{\"plugin\": {\"path\": \"%s\", \"files\": [%s], \"args\": [\"fd:4\"]}}", \
                                           plugin_path, list)
        g_autofree char *good = g_strdup_printf("\"%s\"", file);
        g_autofree char *with_missing = g_strdup_printf("\"%s\", \"%s\"", file, missing);
        g_autofree char *with_dir = g_strdup_printf("\"%s\", \"%s\"", file, dir);
        g_autofree char *with_link = g_strdup_printf("\"%s\"", link);
        g_autofree char *with_fifo = g_strdup_printf("\"%s\"", fifo);

        g_assert_true(g_file_set_contents(file, "guest image", -1, NULL));
        g_assert_cmpint(symlink(file, link), ==, 0);
        g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);

        cfg = FILES_CONFIG(with_missing);
        want = g_strdup_printf("config.plugin.files[1]: %s: No such file or directory", missing);
        assert_refused(cfg, "org.polyvm.Error.InvalidConfig", want);
        g_free(cfg);
        g_free(want);
        cfg = FILES_CONFIG(with_dir);
        want = g_strdup_printf("config.plugin.files[1]: %s is a directory, not a regular file", dir);
        assert_refused(cfg, "org.polyvm.Error.InvalidConfig", want);
        g_free(cfg);
        g_free(want);
        cfg = FILES_CONFIG(with_link);
        want = g_strdup_printf("config.plugin.files[0]: %s: Too many levels of symbolic links (a symbolic link", link);
        assert_refused(cfg, "org.polyvm.Error.InvalidConfig", want);
        g_free(cfg);
        g_free(want);
        /* A FIFO does not hang the launcher. */
        cfg = FILES_CONFIG(with_fifo);
        want = g_strdup_printf("config.plugin.files[0]: %s is a special file, not a regular file", fifo);
        assert_refused(cfg, "org.polyvm.Error.InvalidConfig", want);
        g_free(cfg);
        g_free(want);
        cfg = FILES_CONFIG("\"image\"");
        assert_refused(cfg, "org.polyvm.Error.InvalidConfig", "config.plugin.files[0]: \"image\" must be an absolute path");
        g_free(cfg);

        /* A good one is accepted; gone by Start, it is named again, before KVM. */
        cfg = FILES_CONFIG(good);
        err = create_vm("files", cfg, &message);
        if (err)
                g_error("CreateVm %s: %s: %s", cfg, err, message);
        g_clear_pointer(&message, g_free);
        if (access("/dev/kvm", R_OK | W_OK) < 0) {
                err = harness_call_error(&h, LAUNCHER, path, VM_IFACE, "Start", &message, NULL);
                g_assert_cmpstr(err, ==, "org.polyvm.Error.KvmUnavailable"); /* the files were fine */
                g_clear_pointer(&err, g_free);
                g_clear_pointer(&message, g_free);
        }
        g_assert_cmpint(unlink(file), ==, 0);
        err = harness_call_error(&h, LAUNCHER, path, VM_IFACE, "Start", &message, NULL);
        g_assert_cmpstr(err, ==, "org.polyvm.Error.InvalidConfig");
        want = g_strdup_printf("config.plugin.files[0]: %s: No such file or directory", file);
        g_assert_nonnull(strstr(message, want));
        {
                g_autofree char *state = harness_get_string(&h, LAUNCHER, path, VM_IFACE, "State");
                g_assert_cmpstr(state, ==, "created");
        }
        destroy_vm("files");
#undef FILES_CONFIG
        g_assert_cmpint(unlink(link), ==, 0);
        g_assert_cmpint(unlink(fifo), ==, 0);
        g_assert_cmpint(rmdir(dir), ==, 0);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        plugin_path = harness_build_path("plugins/polyvm-plugin-minimal");
        kernel_elf = harness_build_path("guest/polyvm-testguest.elf");
        g_test_add_func("/plugin-vm-config/bad-plugin-configs-get-named-errors", test_bad_plugin_configs_get_named_errors);
        g_test_add_func("/plugin-vm-config/plugin-vm-is-created-and-shows-its-plugin",
                        test_plugin_vm_is_created_and_shows_its_plugin);
        g_test_add_func("/plugin-vm-config/plugin-files-are-checked-at-create-and-start",
                        test_plugin_files_are_checked_at_create_and_start);
        harness_start(&h);
        r = g_test_run();
        harness_stop(&h);
        return r;
}
