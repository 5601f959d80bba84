/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PVH example plugin end to end through the real launcher, devmgr and
 * KVM: a plugin VM ({"plugin": {"path": polyvm-plugin-pvh, "files": [ELF],
 * "args": ["fd:4", MiB, --type=...]}}) boots the test guest's PVH ELF with two vCPUs; the
 * guest reaches its shell over the plugin's 16550, the plugin types `cpus`
 * and `poweroff` at the prompts, the guest's answers appear in the
 * plugin's stdout (devmgr's log, which this test reads: it starts devmgr
 * itself), and the guest's ACPI power-off ends the plugin with status 0,
 * which stops the VM. The jail sees only /usr, /lib, /lib64: the ELF in
 * the build tree reaches it as plugin.files[0], which the launcher opens
 * and the plugin inherits as fd 4. Needs /dev/kvm: without it this fails
 * (never a skip). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define LAUNCHER "org.polyvm.Launcher1"
#define LAUNCHER_PATH "/org/polyvm/Launcher1"
#define VM_IFACE "org.polyvm.Vm1"
#define DEVMGR "org.polyvm.DeviceManager1"

static struct harness h;
static struct harness_devmgr dm;

static char *vm_path(const char *name) {
        char *path = NULL;
        g_assert_cmpint(sd_bus_path_encode(LAUNCHER_PATH "/vm", name, &path), >=, 0);
        return path;
}

static void expect_log(const char *needle, int timeout_ms) {
        if (!harness_expect(dm.log_fd, dm.log, &dm.pos, needle, timeout_ms))
                g_error("'%s' not in devmgr's log within %d ms:\n%s", needle, timeout_ms, dm.log->str);
}

static void test_boots_the_test_guest_and_runs_a_shell_command(void) {
        g_autofree char *plugin = harness_build_path("plugins/polyvm-plugin-pvh");
        g_autofree char *elf = harness_build_path("guest/polyvm-testguest.elf");
        g_autofree char *path = vm_path("pvh");
        g_autofree char *config = g_strdup_printf(
                "{\"plugin\": {\"path\": \"%s\", \"files\": [\"%s\"], \"args\": [\"fd:4\", \"64\", "
                "\"--type=cpus\", \"--type=poweroff\"]}, \"vcpus\": 2}",
                plugin, elf);
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
        harness_start(&h);
        harness_devmgr_start(&h, &dm);
        r = g_test_run();
        harness_devmgr_stop(&dm);
        harness_stop(&h);
        return r;
}
