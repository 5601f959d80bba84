/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Plugin VMs end to end through the real launcher, devmgr and KVM: the
 * minimal example plugin runs its real-mode guest, which prints through
 * the plugin's port I/O (found in devmgr's log, which this test reads: it
 * starts devmgr itself), then halts, and the plugin's clean exit stops the
 * VM. plugin-misbehave ends the other ways: an error exit and a signal
 * fail the VM with the reason; Stop and Kill with a plugin that ignores
 * SIGTERM end in the 1 s grace period's timeout. After each, /proc holds no
 * process of the plugin. Needs /dev/kvm: without it this fails (never a
 * skip). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define LAUNCHER "org.polyvm.Launcher1"
#define LAUNCHER_PATH "/org/polyvm/Launcher1"
#define DEVMGR "org.polyvm.DeviceManager1"
#define VM_IFACE "org.polyvm.Vm1"

static struct harness h;
static char *minimal_path, *misbehave_path;
static struct harness_devmgr dm;

static char *vm_path(const char *name) {
        char *path = NULL;
        g_assert_cmpint(sd_bus_path_encode(LAUNCHER_PATH "/vm", name, &path), >=, 0);
        return path;
}

/* Processes whose executable or argv[0] is the plugin's. */
static unsigned count_processes_of(const char *exe_path) {
        const char *base = strrchr(exe_path, '/') + 1;
        unsigned n = 0;
        DIR *d = opendir("/proc");
        struct dirent *de;

        g_assert_nonnull(d);
        while ((de = readdir(d))) {
                g_autofree char *exe_link = NULL, *cmdline_path = NULL, *cmdline = NULL;
                char target[4096];
                ssize_t k;

                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                exe_link = g_strdup_printf("/proc/%s/exe", de->d_name);
                k = readlink(exe_link, target, sizeof(target) - 1);
                if (k > 0) {
                        target[k] = '\0';
                        if (strstr(target, base)) {
                                n++;
                                continue;
                        }
                }
                cmdline_path = g_strdup_printf("/proc/%s/cmdline", de->d_name);
                if (g_file_get_contents(cmdline_path, &cmdline, NULL, NULL) && cmdline[0] &&
                    g_str_has_suffix(cmdline, base))
                        n++;
        }
        closedir(d);
        return n;
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

/* Creates and starts a plugin VM of plugin with args (a JSON array). */
static char *start_plugin_vm(const char *name, const char *plugin, const char *args_json) {
        g_autofree char *config = g_strdup_printf(
                "{\"plugin\": {\"path\": \"%s\", \"args\": %s, \"irqchip\": false}, \"vcpus\": 1}", plugin, args_json);
        g_autofree char *err = NULL, *message = NULL;
        char *path = vm_path(name);

        err = harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "CreateVm", &message, "ss", name, config);
        if (err)
                g_error("CreateVm %s: %s: %s", config, err, message);
        g_clear_pointer(&message, g_free);
        err = harness_call_error(&h, LAUNCHER, path, VM_IFACE, "Start", &message, NULL);
        if (err)
                g_error("Start %s: %s: %s", name, err, message);
        return path;
}

static void destroy_vm(const char *name) {
        g_autofree char *err = harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "DestroyVm", NULL, "s", name);
        g_assert_null(err);
}

/* The VM ended in state with a StopReason containing reason, its plugin's
 * ExitReason contains exit_reason, and nothing of the plugin is left. */
static void assert_ended(const char *path, const char *plugin, const char *state, const char *reason,
                         const char *exit_reason) {
        g_autofree char *got_reason = NULL, *got_exit = NULL, *shown = NULL;
        uint32_t pid = 1;

        if (!harness_wait_property(&h, LAUNCHER, path, VM_IFACE, "State", state, 15000)) {
                g_autofree char *s = harness_get_string(&h, LAUNCHER, path, VM_IFACE, "State");
                g_autofree char *r = harness_get_string(&h, LAUNCHER, path, VM_IFACE, "StopReason");
                g_error("VM %s: state %s (%s), expected %s", path, s, r, state);
        }
        got_reason = harness_get_string(&h, LAUNCHER, path, VM_IFACE, "StopReason");
        if (!strstr(got_reason, reason))
                g_error("VM %s: StopReason \"%s\", expected \"%s\"", path, got_reason, reason);
        got_exit = harness_get_string(&h, LAUNCHER, path, VM_IFACE, "PluginExitReason");
        if (!strstr(got_exit, exit_reason))
                g_error("VM %s: PluginExitReason \"%s\", expected \"%s\"", path, got_exit, exit_reason);
        get_plugin(path, &shown, &pid);
        g_assert_cmpstr(shown, ==, plugin);
        g_assert_cmpuint(pid, ==, 0);
        g_assert_cmpuint(count_processes_of(plugin), ==, 0);
}

static void test_minimal_example_prints_and_its_exit_stops_the_vm(void) {
        g_autofree char *path = start_plugin_vm("minimal", minimal_path, "[\"Hello from a plugin VM\\n\"]");

        /* The guest's out instructions, served by the plugin, in its stdout. */
        g_assert_true(harness_expect(dm.log_fd, dm.log, &dm.pos, "Hello from a plugin VM", 15000));
        assert_ended(path, minimal_path, "stopped", "plugin exited", "exited with status 0");
        destroy_vm("minimal");
}

static void test_error_exit_fails_the_vm(void) {
        g_autofree char *path = start_plugin_vm("exit3", misbehave_path, "[\"exit\", \"3\"]");

        assert_ended(path, misbehave_path, "failed", "plugin exited with error 3", "exited with status 3");
        destroy_vm("exit3");
}

static void test_signal_fails_the_vm(void) {
        g_autofree char *path = start_plugin_vm("segv", misbehave_path, "[\"segv\"]");

        assert_ended(path, misbehave_path, "failed", "plugin killed by signal 11", "killed by signal 11");
        destroy_vm("segv");
}

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Until the plugin's process handles or ignores SIGTERM (/proc status). */
static bool wait_sigterm_set_up(const char *path) {
        for (int i = 0; i < 500; i++) {
                g_autofree char *shown = NULL, *status_path = NULL, *status = NULL;
                unsigned long long ign = 0, cgt = 0;
                const char *p;
                uint32_t pid = 0;

                get_plugin(path, &shown, &pid);
                status_path = g_strdup_printf("/proc/%u/status", pid);
                if (pid > 0 && g_file_get_contents(status_path, &status, NULL, NULL)) {
                        if ((p = strstr(status, "SigIgn:")))
                                ign = strtoull(p + 7, NULL, 16);
                        if ((p = strstr(status, "SigCgt:")))
                                cgt = strtoull(p + 7, NULL, 16);
                        if ((ign | cgt) & (1ULL << (SIGTERM - 1)))
                                return true;
                }
                g_usleep(10 * 1000);
        }
        return false;
}

static void stop_with(const char *name, const char *verb, const char *mode, const char *reason, const char *exit_reason,
                      bool slow) {
        g_autofree char *args = g_strdup_printf("[\"%s\"]", mode);
        g_autofree char *path = start_plugin_vm(name, misbehave_path, args);
        g_autofree char *err = NULL, *message = NULL;
        double t0;

        /* Set up (its SIGTERM handler or its ignoring SIGTERM) before the stop. */
        g_assert_true(wait_sigterm_set_up(path));
        t0 = now();
        err = harness_call_error(&h, LAUNCHER, path, VM_IFACE, verb, &message, NULL);
        if (err)
                g_error("%s %s: %s: %s", verb, name, err, message);
        assert_ended(path, misbehave_path, "stopped", reason, exit_reason);
        if (slow)
                g_assert_cmpfloat(now() - t0, >=, 0.9); /* the grace period ran out */
        else
                g_assert_cmpfloat(now() - t0, <, 0.9);
        destroy_vm(name);
}

static void test_stop_ends_a_plugin_that_leaves_on_sigterm(void) {
        stop_with("term", "Stop", "term", "stopped", "exited with status 0", false);
}

static void test_stop_kills_a_plugin_that_ignores_sigterm_after_the_grace(void) {
        stop_with("hang", "Stop", "hang", "stopped; plugin timeout: still running", "timeout:", true);
}

static void test_kill_kills_a_plugin_that_ignores_sigterm_after_the_grace(void) {
        stop_with("hang-kill", "Kill", "hang", "killed; plugin timeout: still running", "timeout:", true);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        if (access("/dev/kvm", R_OK | W_OK) < 0) {
                fprintf(stderr, "\n*** FAIL: the plugin VM guest tests need /dev/kvm, which this host does not have (%m).\n"
                                "*** No plugin VM was run; this is a failure, not a skip.\n\n");
                printf("Bail out! /dev/kvm missing\n");
                return 1;
        }
        minimal_path = harness_build_path("plugins/polyvm-plugin-minimal");
        misbehave_path = harness_build_path("tests/integration/plugin-misbehave");
        g_test_add_func("/plugin-vm/minimal-example-prints-and-its-exit-stops-the-vm",
                        test_minimal_example_prints_and_its_exit_stops_the_vm);
        g_test_add_func("/plugin-vm/error-exit-fails-the-vm", test_error_exit_fails_the_vm);
        g_test_add_func("/plugin-vm/signal-fails-the-vm", test_signal_fails_the_vm);
        g_test_add_func("/plugin-vm/stop-ends-a-plugin-that-leaves-on-sigterm", test_stop_ends_a_plugin_that_leaves_on_sigterm);
        g_test_add_func("/plugin-vm/stop-kills-a-plugin-that-ignores-sigterm-after-the-grace",
                        test_stop_kills_a_plugin_that_ignores_sigterm_after_the_grace);
        g_test_add_func("/plugin-vm/kill-kills-a-plugin-that-ignores-sigterm-after-the-grace",
                        test_kill_kills_a_plugin_that_ignores_sigterm_after_the_grace);

        harness_start(&h);
        harness_devmgr_start(&h, &dm);
        r = g_test_run();
        harness_devmgr_stop(&dm);
        harness_stop(&h);
        return r;
}
