/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The launcher over a real private bus with the real devmgr and memmgr:
 * what CreateVm accepts and refuses, ListVms/DestroyVm, the objects it
 * publishes and their properties, and that nothing is left behind. Guest
 * execution is tests/guest/'s job. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define LAUNCHER "org.polyvm.Launcher1"
#define LAUNCHER_PATH "/org/polyvm/Launcher1"

static struct harness h;
static char *kernel_elf, *kernel_bz, *tmpdir;

static char *config_for(const char *extra) {
        return g_strdup_printf("{\"kernel\": \"%s\", \"vcpus\": 2, \"memory_mib\": 64%s%s}", kernel_elf,
                               extra ? ", " : "", extra ?: "");
}

static char *create_vm(const char *name, const char *config, char **message) {
        return harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "CreateVm", message, "ss", name, config);
}

static void destroy_vm(const char *name) {
        g_autofree char *err = harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "DestroyVm", NULL, "s",
                                                  name);
        g_assert_null(err);
}

static char *vm_path(const char *name) {
        char *path = NULL;
        g_assert_cmpint(sd_bus_path_encode(LAUNCHER_PATH "/vm", name, &path), >=, 0);
        return path;
}

static char *write_file(const char *name, const void *data, size_t len) {
        char *path = g_build_filename(tmpdir, name, NULL);
        g_assert_true(g_file_set_contents(path, data, (gssize) len, NULL));
        return path;
}

/* Every bad input gets its named error, with a message naming the field,
 * and the launcher is still there afterwards. */
static void test_create_vm_refuses_bad_input(void) {
        g_autofree char *truncated = NULL, *garbage = NULL, *long_name = NULL;
        g_autofree char *c_truncated = NULL, *c_garbage = NULL, *c_dir = NULL, *c_missing = NULL;
        g_autofree char *c_initrd = NULL, *c_big_initrd_file = NULL;
        g_autofree char *c_vcpus0 = config_for(NULL), *c_ok = config_for(NULL);
        char *contents = NULL;
        gsize len;
        pid_t launcher_pid;

        /* A bzImage cut short after its header. */
        g_assert_true(g_file_get_contents(kernel_bz, &contents, &len, NULL));
        truncated = write_file("truncated-bzimage", contents, MIN(len, 4096));
        g_free(contents);
        garbage = write_file("garbage", "not a kernel at all, just text\n", 31);
        c_big_initrd_file = g_build_filename(tmpdir, "big-initrd", NULL);
        {
                int fd = open(c_big_initrd_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                g_assert_cmpint(fd, >=, 0);
                g_assert_cmpint(ftruncate(fd, 128 << 20), ==, 0); /* sparse, larger than 64 MiB of RAM */
                close(fd);
        }

        c_truncated = g_strdup_printf("{\"kernel\": \"%s\"}", truncated);
        c_garbage = g_strdup_printf("{\"kernel\": \"%s\"}", garbage);
        c_dir = g_strdup_printf("{\"kernel\": \"%s\"}", tmpdir);
        c_missing = g_strdup_printf("{\"kernel\": \"%s/does-not-exist\"}", tmpdir);
        c_initrd = g_strdup_printf("{\"kernel\": \"%s\", \"memory_mib\": 64, \"initrd\": \"%s\"}", kernel_elf,
                                   c_big_initrd_file);
        long_name = g_strnfill(300, 'a');

        struct {
                const char *name, *config, *error, *needle;
        } cases[] = {
                { "bad", "{", "org.polyvm.Error.InvalidConfig", "not valid JSON" },
                { "bad", "[1, 2]", "org.polyvm.Error.InvalidConfig", "object" },
                { "bad", "{\"kernel\": \"/x\", \"colour\": 1}", "org.polyvm.Error.InvalidConfig", "colour" },
                { "bad", "{\"vcpus\": 2}", "org.polyvm.Error.InvalidConfig", "kernel" },
                { "bad", "{\"kernel\": 7}", "org.polyvm.Error.InvalidConfig", "kernel" },
                { "bad", "{\"kernel\": \"/x\", \"vcpus\": \"two\"}", "org.polyvm.Error.InvalidConfig", "vcpus" },
                { "bad", "{\"kernel\": \"/x\", \"vcpus\": 0}", "org.polyvm.Error.InvalidConfig", "vcpus" },
                { "bad", "{\"kernel\": \"/x\", \"vcpus\": 1000}", "org.polyvm.Error.InvalidConfig", "vcpus" },
                { "bad", "{\"kernel\": \"/x\", \"memory_mib\": 0}", "org.polyvm.Error.InvalidConfig", "memory_mib" },
                { "bad", "{\"kernel\": \"/x\", \"memory_mib\": 99999999}", "org.polyvm.Error.InvalidConfig",
                  "memory_mib" },
                { "bad", "{\"kernel\": \"/x\", \"on_reboot\": \"explode\"}", "org.polyvm.Error.InvalidConfig",
                  "on_reboot" },
                { "bad", "{\"kernel\": \"/x\", \"devices\": [3]}", "org.polyvm.Error.InvalidConfig", "devices" },
                { "bad", c_missing, "org.polyvm.Error.InvalidConfig", "kernel" },
                { "bad", c_dir, "org.polyvm.Error.InvalidConfig", "kernel" },
                { "bad", c_garbage, "org.polyvm.Error.InvalidConfig", "kernel" },
                { "bad", c_truncated, "org.polyvm.Error.InvalidConfig", "kernel" },
                { "bad", c_initrd, "org.polyvm.Error.InvalidConfig", "initrd" },
                { "", c_ok, "org.polyvm.Error.InvalidArguments", "name" },
                { "a/b", c_ok, "org.polyvm.Error.InvalidArguments", "name" },
                { long_name, c_ok, "org.polyvm.Error.InvalidArguments", "name" },
        };

        (void) c_vcpus0;
        launcher_pid = harness_name_pid(&h, LAUNCHER);
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *message = NULL;
                g_autofree char *err = create_vm(cases[i].name, cases[i].config, &message);

                g_test_message("case %zu: %s -> %s: %s", i, cases[i].config, err ?: "(ok)", message ?: "");
                g_assert_cmpstr(err, ==, cases[i].error);
                g_assert_nonnull(strstr(message, cases[i].needle));
                if (launcher_pid == 0)
                        launcher_pid = harness_name_pid(&h, LAUNCHER);
        }
        /* Same process throughout: nothing crashed. */
        g_assert_cmpint(launcher_pid, >, 0);
        g_assert_cmpint(harness_name_pid(&h, LAUNCHER), ==, launcher_pid);
}

static void test_create_list_destroy(void) {
        g_autofree char *config = config_for(NULL);
        g_autofree char *path = vm_path("alpha");
        g_autofree char *err = NULL, *state = NULL, *message = NULL;
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *name, *p;
        uint32_t vcpus = 0;
        uint64_t memory = 0;
        int found = 0;

        err = create_vm("alpha", config, &message);
        g_assert_null(err);

        state = harness_get_string(&h, LAUNCHER, path, "org.polyvm.Vm1", "State");
        g_assert_cmpstr(state, ==, "created");
        g_assert_cmpint(sd_bus_get_property_trivial(h.bus, LAUNCHER, path, "org.polyvm.Vm1", "Vcpus", &error, 'u',
                                                    &vcpus), >=, 0);
        g_assert_cmpuint(vcpus, ==, 2);
        g_assert_cmpint(sd_bus_get_property_trivial(h.bus, LAUNCHER, path, "org.polyvm.Vm1", "MemoryBytes", &error,
                                                    't', &memory), >=, 0);
        g_assert_cmpuint(memory, ==, 64ULL << 20);

        /* The same name twice is refused. */
        g_clear_pointer(&err, g_free);
        g_clear_pointer(&message, g_free);
        err = create_vm("alpha", config, &message);
        g_assert_cmpstr(err, ==, "org.polyvm.Error.VmExists");

        g_assert_cmpint(sd_bus_call_method(h.bus, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "ListVms", &error, &reply, ""),
                        >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(so)"), >=, 0);
        while (sd_bus_message_read(reply, "(so)", &name, &p) > 0)
                if (strcmp(name, "alpha") == 0 && strcmp(p, path) == 0)
                        found++;
        g_assert_cmpint(found, ==, 1);
        sd_bus_message_unref(reply);

        destroy_vm("alpha");
        g_clear_pointer(&err, g_free);
        g_clear_pointer(&message, g_free);
        err = harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "DestroyVm", &message, "s", "alpha");
        g_assert_cmpstr(err, ==, "org.polyvm.Error.NoSuchVm");
        /* The object went with it. */
        g_clear_pointer(&err, g_free);
        g_clear_pointer(&message, g_free);
        err = harness_call_error(&h, LAUNCHER, path, "org.polyvm.Vm1", "Start", &message, NULL);
        g_assert_nonnull(err);
        g_assert_cmpstr(err, !=, "org.polyvm.Error.AlreadyActive");
        sd_bus_error_free(&error);
}

/* Each VM gets its memfd from memmgr and its device processes from devmgr;
 * DestroyVm leaves no device process and no memory object behind. */
static void test_destroy_releases_devices_and_memory(void) {
        g_autofree char *config = config_for(NULL);
        g_autofree char *err = NULL, *message = NULL, *mem_path = NULL, *size_owner = NULL;
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *object, *kind, *vm;
        uint32_t pid;
        pid_t pids[8];
        size_t n = 0;
        uint64_t size = 0;

        err = create_vm("beta", config, &message);
        g_assert_null(err);

        g_assert_cmpint(sd_bus_call_method(h.bus, "org.polyvm.DeviceManager1", "/org/polyvm/DeviceManager1",
                                           "org.polyvm.DeviceManager1", "ListDevices", &error, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(ossu)"), >=, 0);
        while (sd_bus_message_read(reply, "(ossu)", &object, &kind, &vm, &pid) > 0)
                if (strcmp(vm, "beta") == 0 && n < G_N_ELEMENTS(pids)) {
                        g_assert_true(harness_pid_alive((pid_t) pid));
                        pids[n++] = (pid_t) pid;
                }
        sd_bus_message_unref(reply);
        /* The default devices: serial and rtc. */
        g_assert_cmpuint(n, ==, 2);

        g_assert_cmpint(sd_bus_path_encode("/org/polyvm/MemoryManager1/vm", "beta", &mem_path), >=, 0);
        g_assert_cmpint(sd_bus_get_property_trivial(h.bus, "org.polyvm.MemoryManager1", mem_path,
                                                    "org.polyvm.Memory1", "Size", &error, 't', &size), >=, 0);
        g_assert_cmpuint(size, ==, 64ULL << 20);

        destroy_vm("beta");
        for (size_t i = 0; i < n; i++)
                g_assert_true(harness_wait_pid_gone(pids[i], 5000));
        g_assert_cmpint(sd_bus_get_property_trivial(h.bus, "org.polyvm.MemoryManager1", mem_path,
                                                    "org.polyvm.Memory1", "Size", &error, 't', &size), <, 0);
        sd_bus_error_free(&error);
}

/* Vm1.SwapState follows memmgr's Memory1.SwapState; when memmgr dies
 * while pages are out, the VM's memory is gone and the state says so. A
 * created VM is not failed for it (it has nothing to lose until it runs);
 * a running one fails, which tests/guest covers on a KVM host. */
static void test_swap_state_follows_memmgr_and_its_death(void) {
        g_autofree char *config = config_for(NULL), *path = vm_path("swapper");
        g_autofree char *err = NULL, *message = NULL, *state = NULL;
        pid_t memmgr;

        err = create_vm("swapper", config, &message);
        g_assert_null(err);
        state = harness_get_string(&h, LAUNCHER, path, "org.polyvm.Vm1", "SwapState");
        g_assert_cmpstr(state, ==, "ready");

        err = harness_call_error(&h, LAUNCHER, path, "org.polyvm.Vm1", "SwapOut", &message, NULL);
        g_assert_null(err);
        g_assert_true(harness_wait_property(&h, LAUNCHER, path, "org.polyvm.Vm1", "SwapState", "active", 20000));

        memmgr = harness_name_pid(&h, "org.polyvm.MemoryManager1");
        g_assert_cmpint(memmgr, >, 0);
        g_assert_cmpint(kill(memmgr, SIGKILL), ==, 0);
        g_assert_true(harness_wait_pid_gone(memmgr, 5000));
        g_assert_true(harness_wait_property(&h, LAUNCHER, path, "org.polyvm.Vm1", "SwapState", "lost", 5000));
        g_free(state);
        state = harness_get_string(&h, LAUNCHER, path, "org.polyvm.Vm1", "State");
        g_assert_cmpstr(state, ==, "created");

        /* The launcher goes on; a memmgr started again does not know the VM,
         * and destroying it still works. */
        destroy_vm("swapper");
}

/* Without /dev/kvm, Start says so by name; with it, tests/guest boots. */
static void test_start_names_missing_kvm(void) {
        g_autofree char *config = config_for(NULL);
        g_autofree char *path = vm_path("gamma");
        g_autofree char *err = NULL, *message = NULL, *state = NULL;

        if (access("/dev/kvm", F_OK) == 0) {
                g_test_message("/dev/kvm exists: Start is exercised by the guest suite instead");
                g_assert_null(create_vm("gamma", config, &message));
                destroy_vm("gamma");
                return;
        }
        err = create_vm("gamma", config, &message);
        g_assert_null(err);
        err = harness_call_error(&h, LAUNCHER, path, "org.polyvm.Vm1", "Start", &message, NULL);
        g_assert_cmpstr(err, ==, "org.polyvm.Error.KvmUnavailable");
        g_assert_nonnull(strstr(message, "/dev/kvm"));
        state = harness_get_string(&h, LAUNCHER, path, "org.polyvm.Vm1", "State");
        g_assert_cmpstr(state, ==, "created");

        /* Verbs that need a running VM are refused by name. */
        const char *verbs[] = { "Stop", "Kill", "Pause", "Resume" };
        for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++) {
                g_autofree char *e = NULL, *m = NULL;
                e = harness_call_error(&h, LAUNCHER, path, "org.polyvm.Vm1", verbs[i], &m, NULL);
                g_assert_nonnull(e);
                g_assert_true(g_str_has_prefix(e, "org.polyvm.Error."));
        }
        destroy_vm("gamma");
}

static int on_device_failed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        char **seen = userdata;
        const char *object, *reason;

        if (sd_bus_message_read(m, "os", &object, &reason) >= 0 && !*seen)
                *seen = g_strdup_printf("%s|%s", object, reason);
        return 0;
}

/* A device process that dies (here: SIGKILL from outside) fails its device:
 * Vm1 says so with DeviceFailed naming it, the launcher goes on. */
static void test_dead_device_is_reported(void) {
        g_autofree char *config = config_for(NULL);
        g_autofree char *path = vm_path("epsilon");
        g_autofree char *err = NULL, *message = NULL, *seen = NULL, *serial = NULL;
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_slot *slot = NULL;
        const char *object, *kind, *vm;
        uint32_t pid, serial_pid = 0;
        gint64 deadline;
        pid_t launcher;

        err = create_vm("epsilon", config, &message);
        g_assert_null(err);
        launcher = harness_name_pid(&h, LAUNCHER);
        g_assert_cmpint(sd_bus_match_signal(h.bus, &slot, LAUNCHER, path, "org.polyvm.Vm1", "DeviceFailed",
                                            on_device_failed, &seen), >=, 0);

        g_assert_cmpint(sd_bus_call_method(h.bus, "org.polyvm.DeviceManager1", "/org/polyvm/DeviceManager1",
                                           "org.polyvm.DeviceManager1", "ListDevices", &error, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(ossu)"), >=, 0);
        while (sd_bus_message_read(reply, "(ossu)", &object, &kind, &vm, &pid) > 0)
                if (strcmp(vm, "epsilon") == 0 && strcmp(kind, "serial") == 0) {
                        serial = g_strdup(object);
                        serial_pid = pid;
                }
        sd_bus_message_unref(reply);
        g_assert_cmpuint(serial_pid, >, 0);
        g_assert_cmpint(kill((pid_t) serial_pid, SIGKILL), ==, 0);

        deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        while (!seen && g_get_monotonic_time() < deadline)
                if (sd_bus_process(h.bus, NULL) == 0)
                        (void) sd_bus_wait(h.bus, 100 * 1000);
        g_assert_nonnull(seen);
        g_test_message("DeviceFailed: %s", seen);
        g_assert_true(g_str_has_prefix(seen, serial));
        g_assert_nonnull(strstr(seen, "hung up"));
        g_assert_cmpint(harness_name_pid(&h, LAUNCHER), ==, launcher);

        sd_bus_slot_unref(slot);
        destroy_vm("epsilon");
        sd_bus_error_free(&error);
}

/* What each running service introspects matches the XML in dbus/. */
static void test_introspection_matches_dbus_xml(void) {
        g_autofree char *config = config_for(NULL);
        g_autofree char *path = vm_path("delta");
        g_autofree char *mem_path = NULL, *message = NULL, *err = NULL;
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *object, *kind, *vm;
        char *device = NULL;
        uint32_t pid;

        err = create_vm("delta", config, &message);
        g_assert_null(err);

        harness_compare_interface(&h, LAUNCHER, LAUNCHER_PATH, "org.polyvm.Launcher1");
        harness_compare_interface(&h, LAUNCHER, path, "org.polyvm.Vm1");
        harness_compare_interface(&h, "org.polyvm.DeviceManager1", "/org/polyvm/DeviceManager1", "org.polyvm.DeviceManager1");
        harness_compare_interface(&h, "org.polyvm.MemoryManager1", "/org/polyvm/MemoryManager1", "org.polyvm.MemoryManager1");
        g_assert_cmpint(sd_bus_path_encode("/org/polyvm/MemoryManager1/vm", "delta", &mem_path), >=, 0);
        harness_compare_interface(&h, "org.polyvm.MemoryManager1", mem_path, "org.polyvm.Memory1");

        g_assert_cmpint(sd_bus_call_method(h.bus, "org.polyvm.DeviceManager1", "/org/polyvm/DeviceManager1",
                                           "org.polyvm.DeviceManager1", "ListDevices", &error, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(ossu)"), >=, 0);
        while (sd_bus_message_read(reply, "(ossu)", &object, &kind, &vm, &pid) > 0)
                if (!device && strcmp(vm, "delta") == 0)
                        device = g_strdup(object);
        sd_bus_message_unref(reply);
        g_assert_nonnull(device);
        harness_compare_interface(&h, "org.polyvm.DeviceManager1", device, "org.polyvm.Device1");
        g_free(device);

        destroy_vm("delta");
        sd_bus_error_free(&error);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        kernel_elf = harness_build_path("guest/polyvm-testguest.elf");
        kernel_bz = harness_build_path("guest/polyvm-testguest");
        tmpdir = g_dir_make_tmp("polyvm-launcher-XXXXXX", NULL);
        g_assert_nonnull(tmpdir);

        g_test_add_func("/launcher/create-vm-refuses-bad-input", test_create_vm_refuses_bad_input);
        g_test_add_func("/launcher/create-list-destroy", test_create_list_destroy);
        g_test_add_func("/launcher/destroy-releases-devices-and-memory", test_destroy_releases_devices_and_memory);
        g_test_add_func("/launcher/start-names-missing-kvm", test_start_names_missing_kvm);
        g_test_add_func("/launcher/introspection-matches-dbus-xml", test_introspection_matches_dbus_xml);
        g_test_add_func("/launcher/dead-device-is-reported", test_dead_device_is_reported);
        /* Last: it kills memmgr (D-Bus activation starts another). */
        g_test_add_func("/launcher/swap-state-follows-memmgr-and-its-death", test_swap_state_follows_memmgr_and_its_death);

        harness_start(&h);
        r = g_test_run();
        harness_stop(&h);
        g_autofree char *rm = g_strdup_printf("rm -rf '%s'", tmpdir);
        (void) system(rm);
        return r;
}
