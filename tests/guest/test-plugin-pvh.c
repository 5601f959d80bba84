/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PVH example plugin end to end through the real launcher, devmgr and
 * KVM: a plugin VM ({"plugin": {"path": polyvm-plugin-pvh, "args": [ELF,
 * MiB, --type=...]}}) boots the test guest's PVH ELF with two vCPUs; the
 * guest reaches its shell over the plugin's 16550, the plugin types `cpus`
 * and `poweroff` at the prompts, the guest's answers appear in the
 * plugin's stdout (devmgr's log, which this test reads: it starts devmgr
 * itself), and the guest's ACPI power-off ends the plugin with status 0,
 * which stops the VM. The jail sees only /usr, /lib, /lib64: the ELF is
 * put into /usr through an overlay in this test's own mount namespace
 * (needs root), as tests/integration/test-plugin-pvh.c does. Needs
 * /dev/kvm: without it this fails (never a skip). */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define LAUNCHER "org.polyvm.Launcher1"
#define LAUNCHER_PATH "/org/polyvm/Launcher1"
#define VM_IFACE "org.polyvm.Vm1"
#define DEVMGR "org.polyvm.DeviceManager1"
#define GUEST_ELF "/usr/polyvm-pvh-test/guest.elf"

static struct harness h;
static GPid devmgr_pid;
static int devmgr_log = -1;
static GString *log_text;
static size_t log_pos;
static char *overlay_dir;

static void devmgr_start(void) {
        g_autofree char *exe = harness_build_path("services/devmgr/polyvm-devmgr");
        g_autofree char *bus = g_strdup_printf("--bus=%s", h.address);
        char *argv[] = { exe, bus, NULL };
        g_autoptr(GError) error = NULL;

        g_assert_true(g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &devmgr_pid,
                                               NULL, NULL, &devmgr_log, &error));
        g_assert_no_error(error);
        log_text = g_string_new(NULL);
        g_assert_true(harness_expect(devmgr_log, log_text, &log_pos, "Reading seccomp policies", 10000));
        for (int i = 0; i < 500 && harness_name_pid(&h, DEVMGR) != devmgr_pid; i++)
                g_usleep(10 * 1000);
        g_assert_cmpint(harness_name_pid(&h, DEVMGR), ==, devmgr_pid);
}

static void devmgr_stop(void) {
        int status;

        kill(devmgr_pid, SIGTERM);
        g_assert_cmpint(waitpid(devmgr_pid, &status, 0), ==, devmgr_pid);
        close(devmgr_log);
        g_string_free(log_text, TRUE);
}

/* /usr in this mount namespace gains polyvm-pvh-test/guest.elf. */
static void overlay_setup(void) {
        g_autofree char *elf = harness_build_path("guest/polyvm-testguest.elf");
        g_autofree char *sub = NULL, *dst = NULL, *opts = NULL;
        g_autoptr(GError) error = NULL;
        g_autofree char *data = NULL;
        gsize len;

        g_assert_true(g_file_get_contents(elf, &data, &len, &error));
        g_assert_no_error(error);
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                g_error("a private mount namespace for the overlay on /usr: %s (run as root)", g_strerror(errno));
        overlay_dir = g_dir_make_tmp("polyvm-pvh-XXXXXX", &error);
        g_assert_no_error(error);
        g_assert_cmpint(chmod(overlay_dir, 0755), ==, 0);
        sub = g_build_filename(overlay_dir, "polyvm-pvh-test", NULL);
        g_assert_cmpint(mkdir(sub, 0755), ==, 0);
        dst = g_build_filename(sub, "guest.elf", NULL);
        g_assert_true(g_file_set_contents(dst, data, (gssize) len, &error));
        g_assert_no_error(error);
        opts = g_strdup_printf("lowerdir=%s:/usr", overlay_dir);
        if (mount("polyvm-pvh-test", "/usr", "overlay", MS_RDONLY, opts) < 0)
                g_error("overlay on /usr (%s): %s", opts, g_strerror(errno));
}

static void overlay_teardown(void) {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", overlay_dir);

        (void) umount2("/usr", MNT_DETACH);
        g_assert_cmpint(system(cmd), ==, 0);
        g_free(overlay_dir);
}

static char *vm_path(const char *name) {
        char *path = NULL;
        g_assert_cmpint(sd_bus_path_encode(LAUNCHER_PATH "/vm", name, &path), >=, 0);
        return path;
}

static void expect_log(const char *needle, int timeout_ms) {
        if (!harness_expect(devmgr_log, log_text, &log_pos, needle, timeout_ms))
                g_error("'%s' not in devmgr's log within %d ms:\n%s", needle, timeout_ms, log_text->str);
}

static void test_boots_the_test_guest_and_runs_a_shell_command(void) {
        g_autofree char *plugin = harness_build_path("plugins/polyvm-plugin-pvh");
        g_autofree char *path = vm_path("pvh");
        g_autofree char *config = g_strdup_printf(
                "{\"plugin\": {\"path\": \"%s\", \"args\": [\"" GUEST_ELF "\", \"64\", \"--type=cpus\", "
                "\"--type=poweroff\"]}, \"vcpus\": 2}",
                plugin);
        g_autofree char *err = NULL, *message = NULL, *reason = NULL, *exit_reason = NULL;

        err = harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "CreateVm", &message, "ss", "pvh", config);
        if (err)
                g_error("CreateVm %s: %s: %s", config, err, message);
        g_clear_pointer(&message, g_free);
        err = harness_call_error(&h, LAUNCHER, path, VM_IFACE, "Start", &message, NULL);
        if (err)
                g_error("Start: %s: %s", err, message);

        /* The guest found what the plugin wrote, in the order it prints it. */
        expect_log("entry: PVH (hvm_start_info) at 0x6000", 30000);
        expect_log("cmdline: console=ttyS0", 5000);
        expect_log("madt: 2 cpus enabled", 5000);
        expect_log("serial: 16550A at 0x3f8, irq 4", 5000);
        expect_log("smp: 2 of 2 cpus up", 30000);
        expect_log("POLYVM-GUEST-READY", 30000);
        /* What the plugin typed at the prompt, and the guest's answer. */
        expect_log("cpus: 2", 30000);
        expect_log("poweroff: PM1a_CNT 0x604", 30000);

        if (!harness_wait_property(&h, LAUNCHER, path, VM_IFACE, "State", "stopped", 30000))
                g_error("the VM did not stop after the guest's poweroff");
        reason = harness_get_string(&h, LAUNCHER, path, VM_IFACE, "StopReason");
        exit_reason = harness_get_string(&h, LAUNCHER, path, VM_IFACE, "PluginExitReason");
        g_assert_cmpstr(reason, ==, "plugin exited");
        g_assert_cmpstr(exit_reason, ==, "exited with status 0");
        g_assert_null(harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "DestroyVm", NULL, "s", "pvh"));
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        if (access("/dev/kvm", R_OK | W_OK) < 0) {
                fprintf(stderr, "\n*** FAIL: the PVH plugin guest test needs /dev/kvm, which this host does not have (%m).\n"
                                "*** No plugin VM was run; this is a failure, not a skip.\n\n");
                printf("Bail out! /dev/kvm missing\n");
                return 1;
        }
        g_test_add_func("/plugin-pvh/boots-the-test-guest-and-runs-a-shell-command",
                        test_boots_the_test_guest_and_runs_a_shell_command);
        overlay_setup();
        harness_start(&h);
        devmgr_start();
        r = g_test_run();
        devmgr_stop();
        harness_stop(&h);
        overlay_teardown();
        return r;
}
