/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polyvmctl as a user runs it: help, usage errors with exit code 2, and
 * D-Bus errors in one format with exit code 1, against a private bus; then
 * every command against a stand-in launcher (test-polyvmctl-fake.c) on a
 * second private bus, until the real one can run guests here. */

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json-util.h" /* before glib.h, whose MIN/MAX win */
#include <gio/gio.h>

#include "harness.h"
#include "test-polyvmctl-fake.h"

static struct harness h;

struct result {
        int status; /* exit code */
        char *out, *err;
};

static void result_clear(struct result *r) {
        g_free(r->out);
        g_free(r->err);
}

/* Runs polyvmctl with the given arguments (NULL-terminated), input (may be
 * NULL: empty) on its stdin, and collects its output and exit code. */
static void ctl_v(struct result *res, const char *input, va_list ap) {
        g_autofree char *exe = harness_build_path("tools/polyvmctl");
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        g_autoptr(GSubprocess) p = NULL;
        g_autoptr(GError) error = NULL;
        const char *a;

        g_ptr_array_add(argv, exe);
        while ((a = va_arg(ap, const char *)))
                g_ptr_array_add(argv, (char *) a);
        g_ptr_array_add(argv, NULL);

        p = g_subprocess_newv((const char *const *) argv->pdata,
                              G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                      G_SUBPROCESS_FLAGS_STDERR_PIPE,
                              &error);
        g_assert_no_error(error);
        g_assert_true(g_subprocess_communicate_utf8(p, input ?: "", NULL, &res->out, &res->err, &error));
        g_assert_no_error(error);
        g_assert_true(g_subprocess_get_if_exited(p));
        res->status = g_subprocess_get_exit_status(p);
}

static void ctl(struct result *res, ...) {
        va_list ap;
        va_start(ap, res);
        ctl_v(res, NULL, ap);
        va_end(ap);
}

static void ctl_input(struct result *res, const char *input, ...) {
        va_list ap;
        va_start(ap, input);
        ctl_v(res, input, ap);
        va_end(ap);
}

static void assert_contains(const char *haystack, const char *needle) {
        if (!strstr(haystack, needle))
                g_error("expected \"%s\" in \"%s\"", needle, haystack);
}

static void test_help_lists_every_command(void) {
        static const char *const commands[] = { "list", "create NAME CONFIG", "start NAME", "status NAME",
                                                "console NAME", "stop NAME", "kill NAME", "pause NAME",
                                                "resume NAME", "destroy NAME", "run --kernel PATH", "--bus=",
                                                "--json", "--keep", "--device", "--memory", "--cpus" };
        struct result r = {};

        ctl(&r, "--help", NULL);
        g_assert_cmpint(r.status, ==, 0);
        assert_contains(r.out, "Usage: polyvmctl");
        for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
                assert_contains(r.out, commands[i]);
        g_assert_cmpstr(r.err, ==, "");
        result_clear(&r);
}

static void test_version(void) {
        struct result r = {};

        ctl(&r, "--version", NULL);
        g_assert_cmpint(r.status, ==, 0);
        g_assert_true(g_str_has_prefix(r.out, "polyvmctl "));
        result_clear(&r);
}

static void test_usage_errors_exit_2_and_name_the_argument(void) {
        struct result r = {};

        ctl(&r, "frobnicate", NULL);
        g_assert_cmpint(r.status, ==, 2);
        assert_contains(r.err, "polyvmctl: unknown command 'frobnicate'");
        result_clear(&r);

        ctl(&r, NULL);
        g_assert_cmpint(r.status, ==, 2);
        assert_contains(r.err, "missing command");
        result_clear(&r);

        ctl(&r, "start", NULL);
        g_assert_cmpint(r.status, ==, 2);
        assert_contains(r.err, "start: missing argument NAME");
        result_clear(&r);

        ctl(&r, "run", "--kernel", "/k", "--cpus", "zero", NULL);
        g_assert_cmpint(r.status, ==, 2);
        assert_contains(r.err, "--cpus: 'zero'");
        result_clear(&r);

        ctl(&r, "list", "--json", NULL);
        g_assert_cmpint(r.status, ==, 2);
        assert_contains(r.err, "'--json' is only valid with status");
        g_assert_cmpstr(r.out, ==, "");
        result_clear(&r);
}

static void test_unreachable_bus_is_reported(void) {
        struct result r = {};

        ctl(&r, "--bus=unix:path=/nonexistent/polyvm-bus", "list", NULL);
        g_assert_cmpint(r.status, ==, 1);
        assert_contains(r.err, "polyvmctl: connecting to bus unix:path=/nonexistent/polyvm-bus failed:");
        result_clear(&r);
}

/* The real launcher, activated on the private bus: an empty table. */
static void test_list_on_private_bus(void) {
        g_autofree char *bus = g_strdup_printf("--bus=%s", h.address);
        struct result r = {};

        ctl(&r, bus, "list", NULL);
        g_assert_cmpint(r.status, ==, 0);
        assert_contains(r.out, "NAME");
        assert_contains(r.out, "STATE");
        assert_contains(r.out, "VCPUS");
        assert_contains(r.out, "MEMORY");
        result_clear(&r);
}

/* The real launcher, devmgr and memmgr behind create/list/status/destroy. */
static void test_real_create_list_status_destroy(void) {
        g_autofree char *bus = g_strdup_printf("--bus=%s", h.address);
        g_autofree char *kernel = harness_build_path("guest/polyvm-testguest.elf");
        g_autofree char *config = g_strdup_printf("{\"kernel\": \"%s\", \"vcpus\": 3, \"memory_mib\": 48}", kernel);
        _cleanup_(json_object_putp) json_object *st = NULL;
        json_object *props, *v;
        char err[256];
        struct result r = {};

        ctl_input(&r, config, bus, "create", "realvm", "-", NULL);
        g_assert_cmpint(r.status, ==, 0);
        result_clear(&r);

        ctl(&r, bus, "list", NULL);
        g_assert_cmpint(r.status, ==, 0);
        assert_contains(r.out, "realvm");
        assert_contains(r.out, "created");
        result_clear(&r);

        ctl(&r, bus, "status", "--json", "realvm", NULL);
        g_assert_cmpint(r.status, ==, 0);
        g_assert_cmpint(json_parse_object(r.out, &st, err, sizeof(err)), ==, 0);
        g_assert_true(json_object_object_get_ex(st, "properties", &props));
        g_assert_true(json_object_object_get_ex(props, "Vcpus", &v));
        g_assert_cmpint(json_object_get_int(v), ==, 3);
        g_assert_true(json_object_object_get_ex(props, "MemoryBytes", &v));
        g_assert_cmpint(json_object_get_int64(v), ==, 48LL << 20);
        g_assert_true(json_object_object_get_ex(props, "State", &v));
        g_assert_cmpstr(json_object_get_string(v), ==, "created");
        result_clear(&r);

        /* A second create of the same name: the launcher's named error. */
        ctl_input(&r, config, bus, "create", "realvm", "-", NULL);
        g_assert_cmpint(r.status, ==, 1);
        assert_contains(r.err, "(org.polyvm.Error.VmExists)");
        result_clear(&r);

        ctl(&r, bus, "destroy", "realvm", NULL);
        g_assert_cmpint(r.status, ==, 0);
        result_clear(&r);
        ctl(&r, bus, "list", NULL);
        g_assert_null(strstr(r.out, "realvm"));
        result_clear(&r);
}

static void test_vm_commands_name_the_error(void) {
        g_autofree char *bus = g_strdup_printf("--bus=%s", h.address);
        struct result r = {};

        ctl(&r, bus, "status", "no-such-vm", NULL);
        g_assert_cmpint(r.status, ==, 1);
        g_assert_true(g_str_has_prefix(r.err, "polyvmctl: status failed: "));
        assert_contains(r.err, "(org.polyvm.Error.NoSuchVm)");
        result_clear(&r);

        ctl(&r, bus, "destroy", "no-such-vm", NULL);
        g_assert_cmpint(r.status, ==, 1);
        g_assert_true(g_str_has_prefix(r.err, "polyvmctl: destroy failed: "));
        result_clear(&r);
}

static void test_create_with_missing_config_file(void) {
        g_autofree char *bus = g_strdup_printf("--bus=%s", h.address);
        struct result r = {};

        ctl(&r, bus, "create", "vm1", "/nonexistent/vm.json", NULL);
        g_assert_cmpint(r.status, ==, 1);
        assert_contains(r.err, "polyvmctl: create failed: cannot read CONFIG '/nonexistent/vm.json'");
        result_clear(&r);
}

static struct harness fh; /* the fake launcher's bus */
static pid_t fake_pid;
static char *fbus;

static void test_fake_create_list_status_destroy(void) {
        struct result r = {};
        _cleanup_(json_object_putp) json_object *st = NULL;
        json_object *props, *vcpus, *v;
        char err[256];

        ctl_input(&r, "{\"kernel\": \"/k\", \"vcpus\": 2, \"memory_mib\": 64}", fbus, "create", "one", "-", NULL);
        g_assert_cmpint(r.status, ==, 0);
        result_clear(&r);

        ctl(&r, fbus, "create", "one", "/dev/null", NULL);
        g_assert_cmpint(r.status, ==, 1);
        assert_contains(r.err, "polyvmctl: create failed: VM \"one\" already exists (org.polyvm.Error.VmExists)");
        result_clear(&r);

        ctl(&r, fbus, "list", NULL);
        g_assert_cmpint(r.status, ==, 0);
        assert_contains(r.out, "NAME STATE   VCPUS MEMORY\n");
        assert_contains(r.out, "one  created     2 64M\n");
        result_clear(&r);

        ctl(&r, fbus, "start", "one", NULL);
        g_assert_cmpint(r.status, ==, 0);
        result_clear(&r);
        ctl(&r, fbus, "pause", "one", NULL);
        g_assert_cmpint(r.status, ==, 0);
        result_clear(&r);

        ctl(&r, fbus, "status", "one", NULL);
        g_assert_cmpint(r.status, ==, 0);
        assert_contains(r.out, "State: paused");
        assert_contains(r.out, "vCPUs: 2");
        assert_contains(r.out, "Memory: 64M (67108864 bytes)");
        assert_contains(r.out, "vCPU 1: paused");
        assert_contains(r.out, "exits: io 42, hlt 7");
        result_clear(&r);

        ctl(&r, fbus, "status", "--json", "one", NULL);
        g_assert_cmpint(r.status, ==, 0);
        g_assert_cmpint(json_parse_object(r.out, &st, err, sizeof(err)), ==, 0);
        g_assert_true(json_object_object_get_ex(st, "properties", &props));
        g_assert_true(json_object_object_get_ex(props, "State", &v));
        g_assert_cmpstr(json_object_get_string(v), ==, "paused");
        g_assert_true(json_object_object_get_ex(props, "MemoryBytes", &v));
        g_assert_cmpuint(json_object_get_uint64(v), ==, 64ULL << 20);
        g_assert_true(json_object_object_get_ex(props, "Config", &v));
        assert_contains(json_object_get_string(v), "\"memory_mib\": 64");
        g_assert_true(json_object_object_get_ex(st, "vcpus", &vcpus));
        g_assert_cmpuint(json_object_array_length(vcpus), ==, 2);
        for (size_t i = 0; i < 2; i++) {
                json_object *vp, *counts, *io;
                g_assert_true(json_object_object_get_ex(json_object_array_get_idx(vcpus, i), "properties", &vp));
                g_assert_true(json_object_object_get_ex(vp, "Index", &v));
                g_assert_cmpint(json_object_get_int(v), ==, (int) i);
                g_assert_true(json_object_object_get_ex(vp, "ExitCounts", &counts));
                g_assert_true(json_object_object_get_ex(counts, "io", &io));
                g_assert_cmpint(json_object_get_int(io), ==, 42);
        }
        result_clear(&r);

        ctl(&r, fbus, "pause", "one", NULL);
        g_assert_cmpint(r.status, ==, 1);
        assert_contains(r.err, "polyvmctl: pause failed: VM one is paused (org.polyvm.Error.NotRunning)");
        result_clear(&r);

        ctl(&r, fbus, "resume", "one", NULL);
        g_assert_cmpint(r.status, ==, 0);
        result_clear(&r);
        ctl(&r, fbus, "kill", "one", NULL);
        g_assert_cmpint(r.status, ==, 0);
        result_clear(&r);
        ctl(&r, fbus, "status", "one", NULL);
        assert_contains(r.out, "Reason: killed");
        result_clear(&r);

        ctl(&r, fbus, "destroy", "one", NULL);
        g_assert_cmpint(r.status, ==, 0);
        result_clear(&r);
        ctl(&r, fbus, "list", NULL);
        g_assert_cmpstr(r.out, ==, "NAME STATE VCPUS MEMORY\n");
        result_clear(&r);

        ctl(&r, fbus, "stop", "one", NULL);
        g_assert_cmpint(r.status, ==, 1);
        assert_contains(r.err, "polyvmctl: stop failed: no VM named \"one\" (org.polyvm.Error.NoSuchVm)");
        result_clear(&r);
}

/* run: builds the config, starts, attaches, and ends with the guest. */
static void test_fake_run_until_poweroff(void) {
        struct result r = {};

        ctl_input(&r, "echo hi\npoweroff\n", fbus, "run", "--name", "r1", "--kernel", "/boot/k", "--cpus", "2",
                  "--memory", "128", NULL);
        g_assert_cmpint(r.status, ==, 0);
        assert_contains(r.err, "Connected to r1's console. Press Ctrl-] to leave.");
        assert_contains(r.err, "VM r1 stopped: poweroff");
        assert_contains(r.out, "Booting r1");
        assert_contains(r.out, "echo hi");
        assert_contains(r.out, "reboot: Power down");
        result_clear(&r);

        /* destroyed at the end */
        ctl(&r, fbus, "list", NULL);
        g_assert_null(strstr(r.out, "r1"));
        result_clear(&r);
}

static void test_fake_run_failed_exits_nonzero_and_keep_keeps(void) {
        struct result r = {};
        _cleanup_(json_object_putp) json_object *st = NULL, *config = NULL;
        json_object *props, *v;
        char err[256];

        ctl_input(&r, "crash\n", fbus, "run", "--keep", "--name=r2", "--kernel=rel/k", "--append", "console=ttyS0",
                  "--device", "virtio-rng", NULL);
        g_assert_cmpint(r.status, ==, 1);
        assert_contains(r.err, "VM r2 stopped: " FAKE_CRASH_REASON);
        result_clear(&r);

        ctl(&r, fbus, "status", "--json", "r2", NULL);
        g_assert_cmpint(r.status, ==, 0);
        g_assert_cmpint(json_parse_object(r.out, &st, err, sizeof(err)), ==, 0);
        g_assert_true(json_object_object_get_ex(st, "properties", &props));
        g_assert_true(json_object_object_get_ex(props, "State", &v));
        g_assert_cmpstr(json_object_get_string(v), ==, "failed");
        g_assert_true(json_object_object_get_ex(props, "Config", &v));
        g_assert_cmpint(json_parse_object(json_object_get_string(v), &config, err, sizeof(err)), ==, 0);
        g_assert_true(json_object_object_get_ex(config, "kernel", &v));
        g_assert_true(g_str_has_prefix(json_object_get_string(v), "/"));
        g_assert_true(g_str_has_suffix(json_object_get_string(v), "/rel/k"));
        g_assert_true(json_object_object_get_ex(config, "cmdline", &v));
        g_assert_cmpstr(json_object_get_string(v), ==, "console=ttyS0");
        g_assert_true(json_object_object_get_ex(config, "devices", &v));
        g_assert_cmpstr(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), ==, "[{\"kind\":\"virtio-rng\"}]");
        result_clear(&r);

        ctl(&r, fbus, "destroy", "r2", NULL);
        g_assert_cmpint(r.status, ==, 0);
        result_clear(&r);
}

/* console without a tty: scrollback, echo, and exit when the input ends. */
static void test_fake_console_copies_both_ways(void) {
        struct result r = {};

        ctl_input(&r, "{\"kernel\": \"/k\"}", fbus, "create", "c1", "-", NULL);
        g_assert_cmpint(r.status, ==, 0);
        result_clear(&r);
        ctl(&r, fbus, "start", "c1", NULL);
        g_assert_cmpint(r.status, ==, 0);
        result_clear(&r);

        ctl_input(&r, "ping\n", fbus, "console", "c1", NULL);
        g_assert_cmpint(r.status, ==, 0);
        assert_contains(r.err, "Connected to c1's console. Press Ctrl-] to leave.");
        g_assert_true(g_str_has_prefix(r.out, "Booting c1\r\n"));
        assert_contains(r.out, "ping\n");
        result_clear(&r);

        /* A VM that stops ends the session too, with its reason. */
        ctl_input(&r, "poweroff\n", fbus, "console", "c1", NULL);
        g_assert_cmpint(r.status, ==, 0);
        assert_contains(r.err, "VM c1 stopped: poweroff");
        result_clear(&r);

        ctl(&r, fbus, "destroy", "c1", NULL);
        g_assert_cmpint(r.status, ==, 0);
        result_clear(&r);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        harness_start(&h);
        g_test_add_func("/polyvmctl/help-lists-every-command", test_help_lists_every_command);
        g_test_add_func("/polyvmctl/version", test_version);
        g_test_add_func("/polyvmctl/usage-errors-exit-2-and-name-the-argument",
                        test_usage_errors_exit_2_and_name_the_argument);
        g_test_add_func("/polyvmctl/unreachable-bus-is-reported", test_unreachable_bus_is_reported);
        g_test_add_func("/polyvmctl/list-on-private-bus", test_list_on_private_bus);
        g_test_add_func("/polyvmctl/vm-commands-name-the-error", test_vm_commands_name_the_error);
        g_test_add_func("/polyvmctl/real/create-list-status-destroy", test_real_create_list_status_destroy);
        g_test_add_func("/polyvmctl/create-with-missing-config-file", test_create_with_missing_config_file);
        g_test_add_func("/polyvmctl/fake/create-list-status-destroy", test_fake_create_list_status_destroy);
        g_test_add_func("/polyvmctl/fake/run-until-poweroff", test_fake_run_until_poweroff);
        g_test_add_func("/polyvmctl/fake/run-failed-exits-nonzero-and-keep-keeps",
                        test_fake_run_failed_exits_nonzero_and_keep_keeps);
        g_test_add_func("/polyvmctl/fake/console-copies-both-ways", test_fake_console_copies_both_ways);

        /* A second bus, so that a real launcher activated on the first
         * cannot collide with the fake. */
        harness_start(&fh);
        fbus = g_strdup_printf("--bus=%s", fh.address);
        fake_pid = fake_launcher_spawn(fh.address);

        r = g_test_run();

        kill(fake_pid, SIGTERM);
        (void) waitpid(fake_pid, NULL, 0);
        harness_stop(&fh);
        harness_stop(&h);
        g_free(fbus);
        return r;
}
