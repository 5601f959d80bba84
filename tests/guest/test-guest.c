/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Boots polyvm-testguest through the real launcher, devmgr and memmgr on a
 * private bus and talks to its shell over OpenConsole. Needs /dev/kvm: on a
 * host without it this fails loudly, it never passes by skipping. */

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "loader-x86.h"

#define LAUNCHER "org.polyvm.Launcher1"
#define LAUNCHER_PATH "/org/polyvm/Launcher1"
#define VM1 "org.polyvm.Vm1"
#define BOOT_TIMEOUT_MS (120 * 1000)
#define COMMAND_TIMEOUT_MS (30 * 1000)

static struct harness h;

struct guest {
        char *name;
        char *path;
        int console;
        GString *log;
        size_t pos;
};

/* devices: a JSON array for the config's "devices", or NULL for the default set. */
static void guest_boot_with(struct guest *g, const char *name, const char *image, unsigned vcpus, unsigned mib,
                            const char *cmdline, const char *devices) {
        g_autofree char *kernel = harness_build_path(image);
        g_autofree char *config = NULL, *err = NULL, *message = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int fd;

        memset(g, 0, sizeof(*g));
        g->name = g_strdup(name);
        g->log = g_string_new(NULL);
        g_assert_cmpint(sd_bus_path_encode(LAUNCHER_PATH "/vm", name, &g->path), >=, 0);

        config = g_strdup_printf("{\"kernel\": \"%s\", \"vcpus\": %u, \"memory_mib\": %u, \"cmdline\": \"%s\"%s%s}",
                                 kernel, vcpus, mib, cmdline ?: "console=ttyS0", devices ? ", \"devices\": " : "",
                                 devices ?: "");
        err = harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "CreateVm", &message, "ss", name, config);
        if (err)
                g_error("CreateVm %s: %s: %s", name, err, message);

        g_assert_cmpint(sd_bus_call_method(h.bus, LAUNCHER, g->path, VM1, "OpenConsole", &error, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "h", &fd), >=, 0);
        g->console = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        g_assert_cmpint(g->console, >=, 0);
        sd_bus_message_unref(reply);

        g_clear_pointer(&err, g_free);
        g_clear_pointer(&message, g_free);
        err = harness_call_error(&h, LAUNCHER, g->path, VM1, "Start", &message, NULL);
        if (err)
                g_error("Start %s: %s: %s", name, err, message);
        sd_bus_error_free(&error);
}

static void guest_boot(struct guest *g, const char *name, const char *image, unsigned vcpus, unsigned mib,
                       const char *cmdline) {
        guest_boot_with(g, name, image, vcpus, mib, cmdline, NULL);
}

static void guest_expect(struct guest *g, const char *needle, int timeout_ms) {
        if (!harness_expect(g->console, g->log, &g->pos, needle, timeout_ms)) {
                g_autofree char *reason = harness_get_string(&h, LAUNCHER, g->path, VM1, "StopReason");
                g_autofree char *state = harness_get_string(&h, LAUNCHER, g->path, VM1, "State");
                g_error("VM %s: \"%s\" did not appear within %d ms (state %s, reason \"%s\"); console:\n%s", g->name,
                        needle, timeout_ms, state, reason, g->log->str);
        }
}

static void guest_command(struct guest *g, const char *command) {
        g_autofree char *line = g_strdup_printf("%s\n", command);

        guest_expect(g, "tg> ", COMMAND_TIMEOUT_MS);
        g_assert_cmpint(send(g->console, line, strlen(line), MSG_NOSIGNAL), ==, (ssize_t) strlen(line));
}

static void guest_destroy(struct guest *g) {
        g_autofree char *err = harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "DestroyVm", NULL, "s",
                                                  g->name);
        g_assert_null(err);
        close(g->console);
        g_string_free(g->log, TRUE);
        free(g->path);
        g_free(g->name);
}

static void assert_stopped(struct guest *g, const char *state, const char *reason) {
        g_autofree char *got = NULL;

        if (!harness_wait_property(&h, LAUNCHER, g->path, VM1, "State", state, COMMAND_TIMEOUT_MS)) {
                g_autofree char *s = harness_get_string(&h, LAUNCHER, g->path, VM1, "State");
                g_error("VM %s: state %s, expected %s; console:\n%s", g->name, s, state, g->log->str);
        }
        got = harness_get_string(&h, LAUNCHER, g->path, VM1, "StopReason");
        g_assert_cmpstr(got, ==, reason);
}

struct boot_case {
        const char *image;
        unsigned vcpus;
};

/* Marker, CPU count and usable RAM as the config says, then ACPI S5. */
static void test_boot_and_poweroff(gconstpointer data) {
        const struct boot_case *c = data;
        g_autofree char *name = g_strdup_printf("boot-%u-%s", c->vcpus, strchr(c->image, '.') ? "pvh" : "bzimage");
        g_autofree char *cpus = g_strdup_printf("cpus: %u\n", c->vcpus);
        g_autofree char *mem = g_strdup_printf("mem: %" PRIu64 "\n", e820_usable_bytes(128ULL << 20));
        struct guest g;

        guest_boot(&g, name, c->image, c->vcpus, 128, "console=ttyS0");
        guest_expect(&g, "POLYVM-GUEST-READY", BOOT_TIMEOUT_MS);
        /* One Vcpu1 object per vCPU, as dbus/ says; Start twice is refused. */
        for (unsigned i = 0; i < c->vcpus; i++) {
                g_autofree char *vcpu = g_strdup_printf("%s/vcpu/%u", g.path, i);
                harness_compare_interface(&h, LAUNCHER, vcpu, "org.polyvm.Vcpu1");
        }
        {
                g_autofree char *message = NULL;
                g_autofree char *err = harness_call_error(&h, LAUNCHER, g.path, VM1, "Start", &message, NULL);
                g_assert_cmpstr(err, ==, "org.polyvm.Error.AlreadyActive");
        }
        guest_command(&g, "cpus");
        guest_expect(&g, cpus, COMMAND_TIMEOUT_MS);
        guest_command(&g, "mem");
        guest_expect(&g, mem, COMMAND_TIMEOUT_MS);
        guest_command(&g, "acpi");
        guest_expect(&g, "APIC", COMMAND_TIMEOUT_MS);
        guest_command(&g, "poweroff");
        assert_stopped(&g, "stopped", "poweroff");
        guest_destroy(&g);
}

static void test_reboot_stops_with_reason_reboot(void) {
        struct guest g;

        guest_boot(&g, "reboot", "guest/polyvm-testguest.elf", 1, 64, "console=ttyS0");
        guest_expect(&g, "POLYVM-GUEST-READY", BOOT_TIMEOUT_MS);
        guest_command(&g, "reboot");
        assert_stopped(&g, "stopped", "reboot");
        guest_destroy(&g);
}

/* Stop() presses the ACPI power button; the guest powers off by itself. */
static void test_stop_presses_the_power_button(void) {
        g_autofree char *err = NULL;
        struct guest g;

        guest_boot(&g, "stopme", "guest/polyvm-testguest.elf", 2, 64, "console=ttyS0");
        guest_expect(&g, "POLYVM-GUEST-READY", BOOT_TIMEOUT_MS);
        guest_command(&g, "pm");
        guest_expect(&g, "PM1a_EN 0x0100", COMMAND_TIMEOUT_MS);
        err = harness_call_error(&h, LAUNCHER, g.path, VM1, "Stop", NULL, NULL);
        g_assert_null(err);
        guest_expect(&g, "power button pressed", COMMAND_TIMEOUT_MS);
        assert_stopped(&g, "stopped", "poweroff");
        guest_destroy(&g);
}

static void test_cmdline_poweroff(void) {
        struct guest g;

        guest_boot(&g, "autopoweroff", "guest/polyvm-testguest", 2, 64, "console=ttyS0 tg.poweroff=1");
        guest_expect(&g, "POLYVM-GUEST-READY", BOOT_TIMEOUT_MS);
        assert_stopped(&g, "stopped", "poweroff");
        guest_destroy(&g);
}

/* Pause, Resume, Kill, then DestroyVm: no vCPU thread, device or memory left. */
static void test_kill_and_destroy_leave_nothing(void) {
        g_autofree char *err = NULL;
        g_autofree char *task_dir = NULL;
        pid_t launcher = harness_name_pid(&h, LAUNCHER);
        guint threads_before, threads_after;
        struct guest g;
        GDir *dir;

        task_dir = g_strdup_printf("/proc/%d/task", (int) launcher);
        dir = g_dir_open(task_dir, 0, NULL);
        g_assert_nonnull(dir);
        for (threads_before = 0; g_dir_read_name(dir); threads_before++)
                ;
        g_dir_close(dir);

        guest_boot(&g, "killme", "guest/polyvm-testguest.elf", 4, 64, "console=ttyS0");
        guest_expect(&g, "POLYVM-GUEST-READY", BOOT_TIMEOUT_MS);
        err = harness_call_error(&h, LAUNCHER, g.path, VM1, "Pause", NULL, NULL);
        g_assert_null(err);
        g_assert_true(harness_wait_property(&h, LAUNCHER, g.path, VM1, "State", "paused", 5000));
        err = harness_call_error(&h, LAUNCHER, g.path, VM1, "Resume", NULL, NULL);
        g_assert_null(err);
        guest_command(&g, "cpus");
        guest_expect(&g, "cpus: 4", COMMAND_TIMEOUT_MS);
        err = harness_call_error(&h, LAUNCHER, g.path, VM1, "Kill", NULL, NULL);
        g_assert_null(err);
        assert_stopped(&g, "stopped", "killed");
        guest_destroy(&g);

        dir = g_dir_open(task_dir, 0, NULL);
        for (threads_after = 0; g_dir_read_name(dir); threads_after++)
                ;
        g_dir_close(dir);
        g_assert_cmpuint(threads_after, ==, threads_before);
}

/* The pattern guest/virtio-blk.c writes (splitmix64 of seed, sector, word). */
static uint64_t blk_pattern_word(uint64_t seed, uint64_t sector, uint64_t word) {
        uint64_t z = seed + sector * 0x9e3779b97f4a7c15ULL + word * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

/* virtio-rng and virtio-blk in jailed device processes, reached through
 * the launcher's PCI host and data path (firmware BARs, ioeventfds, MSI-X
 * irqfds): the guest's drivers work, and what it wrote and flushed is in
 * the image on the host. */
static void test_virtio_rng_and_blk(void) {
        g_autofree char *dir = g_dir_make_tmp("polyvm-guest-XXXXXX", NULL);
        g_autofree char *image = g_build_filename(dir, "disk.img", NULL);
        g_autofree char *devices = NULL, *kill_err = NULL;
        uint64_t words[64];
        struct guest g;
        int fd;

        g_assert_nonnull(dir);
        fd = open(image, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(ftruncate(fd, 4 << 20), ==, 0);
        devices = g_strdup_printf("[{\"kind\": \"serial\"}, {\"kind\": \"rtc\"}, {\"kind\": \"virtio-rng\"},"
                                  " {\"kind\": \"virtio-blk\", \"path\": \"%s\", \"serial\": \"polyvm0\"}]",
                                  image);
        guest_boot_with(&g, "virtio", "guest/polyvm-testguest.elf", 2, 128, NULL, devices);
        guest_expect(&g, "tg> ", BOOT_TIMEOUT_MS);
        guest_command(&g, "pci");
        guest_expect(&g, "1af4:1044", COMMAND_TIMEOUT_MS);
        guest_expect(&g, "1af4:1042", COMMAND_TIMEOUT_MS);
        guest_command(&g, "rng 64");
        guest_expect(&g, "rng: check ok", COMMAND_TIMEOUT_MS);
        guest_expect(&g, "irq msix", COMMAND_TIMEOUT_MS);
        guest_command(&g, "blk");
        guest_expect(&g, "capacity 8192 sectors", COMMAND_TIMEOUT_MS);
        guest_expect(&g, "serial 'polyvm0'", COMMAND_TIMEOUT_MS);
        guest_command(&g, "blk write 100 4 0x5eed");
        guest_expect(&g, "blk write: sector 100 count 4 pattern 0x5eed ok", COMMAND_TIMEOUT_MS);
        guest_command(&g, "blk flush");
        guest_expect(&g, "blk flush: ok", COMMAND_TIMEOUT_MS);
        guest_command(&g, "blk verify 100 4 0x5eed");
        guest_expect(&g, "verify ok", COMMAND_TIMEOUT_MS);
        guest_command(&g, "blk read 8192 1");
        guest_expect(&g, "IOERR", COMMAND_TIMEOUT_MS);

        /* Flushed data is on the host, whatever happens to the VM next. */
        kill_err = harness_call_error(&h, LAUNCHER, g.path, VM1, "Kill", NULL, NULL);
        g_assert_null(kill_err);
        g_assert_cmpint(pread(fd, words, sizeof(words), 100 * 512), ==, (ssize_t) sizeof(words));
        for (unsigned w = 0; w < G_N_ELEMENTS(words); w++)
                g_assert_cmphex(words[w], ==, blk_pattern_word(0x5eed, 100, w));
        guest_destroy(&g);
        close(fd);
        g_assert_cmpint(unlink(image), ==, 0);
        g_assert_cmpint(rmdir(dir), ==, 0);
}

/* virtio-console next to the serial console. The VM's console socket goes
 * to one device only, and the test guest's shell lives on the serial port,
 * so the two halves check what each routing can show:
 *  - default routing (serial has the console, the shell works): the guest
 *    finds the device (1af4:1043, one port, no MULTIPORT), and with no
 *    console attached to it, `vcon write` still completes (the device
 *    discards and counts) and `vcon read` times out empty: a console-less
 *    virtio console never stalls the guest or invents input;
 *  - "console": "virtio-console": the same VM runs, and the serial
 *    console's banner no longer reaches OpenConsole (it went to the
 *    virtio-console, which the test guest does not print to).
 * The byte path through the virtio console itself is covered against the
 * jailed device by tests/integration/test-virtio-console.c. */
static void test_virtio_console_beside_serial(void) {
        static const char devices[] = "[{\"kind\": \"serial\"}, {\"kind\": \"rtc\"}, {\"kind\": \"virtio-console\"}]";
        g_autofree char *devices_console = g_strdup_printf("%s, \"console\": \"virtio-console\"", devices);
        struct guest g;

        guest_boot_with(&g, "vcon", "guest/polyvm-testguest.elf", 1, 128, NULL, devices);
        guest_expect(&g, "virtio-console: port 0 (MULTIPORT not offered, not used; max_nr_ports 1)", BOOT_TIMEOUT_MS);
        guest_expect(&g, "tg> ", BOOT_TIMEOUT_MS);
        guest_command(&g, "pci");
        guest_expect(&g, "1af4:1043", COMMAND_TIMEOUT_MS);
        guest_command(&g, "vcon write hello polyvm");
        guest_expect(&g, "vcon write: 13 bytes", COMMAND_TIMEOUT_MS);
        guest_command(&g, "vcon read 1 300");
        guest_expect(&g, "vcon read: 0 bytes (timeout)", COMMAND_TIMEOUT_MS);
        guest_command(&g, "vcon");
        guest_expect(&g, "received 0 bytes (0 waiting) sent 13 bytes", COMMAND_TIMEOUT_MS);
        guest_destroy(&g);

        /* devices_console is the devices array plus the console field:
         * guest_boot_with() pastes it after "devices": as it is. */
        guest_boot_with(&g, "vcon2", "guest/polyvm-testguest.elf", 1, 128, NULL, devices_console);
        g_assert_true(harness_wait_property(&h, LAUNCHER, g.path, VM1, "State", "running", COMMAND_TIMEOUT_MS));
        g_assert_false(harness_expect(g.console, g.log, &g.pos, "polyvm-testguest", 10 * 1000));
        {
                g_autofree char *state = harness_get_string(&h, LAUNCHER, g.path, VM1, "State");
                g_assert_cmpstr(state, ==, "running");
        }
        guest_destroy(&g);
}

int main(int argc, char **argv) {
        static const struct boot_case cases[] = {
                { "guest/polyvm-testguest.elf", 1 }, { "guest/polyvm-testguest.elf", 2 },
                { "guest/polyvm-testguest.elf", 4 }, { "guest/polyvm-testguest", 1 },
                { "guest/polyvm-testguest", 2 },     { "guest/polyvm-testguest", 4 },
        };
        int r;

        g_test_init(&argc, &argv, NULL);
        if (access("/dev/kvm", R_OK | W_OK) < 0) {
                fprintf(stderr, "\n*** FAIL: the guest tests need /dev/kvm, which this host does not have (%m).\n"
                                "*** No guest was booted; this is a failure, not a skip.\n\n");
                printf("Bail out! /dev/kvm missing\n");
                return 1;
        }
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *path = g_strdup_printf("/guest/boot-and-poweroff/%s/%u-vcpus",
                                                        strchr(cases[i].image, '.') ? "pvh" : "bzimage",
                                                        cases[i].vcpus);
                g_test_add_data_func(path, &cases[i], test_boot_and_poweroff);
        }
        g_test_add_func("/guest/reboot-stops-with-reason-reboot", test_reboot_stops_with_reason_reboot);
        g_test_add_func("/guest/cmdline-poweroff", test_cmdline_poweroff);
        g_test_add_func("/guest/stop-presses-the-power-button", test_stop_presses_the_power_button);
        g_test_add_func("/guest/kill-and-destroy-leave-nothing", test_kill_and_destroy_leave_nothing);
        g_test_add_func("/guest/virtio-rng-and-blk", test_virtio_rng_and_blk);
        g_test_add_func("/guest/virtio-console-beside-serial", test_virtio_console_beside_serial);

        harness_start(&h);
        r = g_test_run();
        harness_stop(&h);
        return r;
}
