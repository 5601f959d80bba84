/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polyvmctl's command line: verbs, arguments, options and usage errors. */
#include <errno.h>
#include <glib.h>
#include <string.h>

#include "ctl-args.h"

/* Parses a NULL-terminated list; argv[0] is added. */
#define PARSE(a, err, ...) parse(a, err, (const char *[]) { "polyvmctl", __VA_ARGS__, NULL })

static int parse(struct ctl_args *a, char *err, const char **argv) {
        int argc = 0;
        while (argv[argc])
                argc++;
        err[0] = 0;
        return ctl_parse_args(argc, (char **) argv, a, err, 512);
}

static void assert_usage_error(const char *want, const char **argv) {
        struct ctl_args a;
        char err[512];
        g_assert_cmpint(parse(&a, err, argv), ==, -EINVAL);
        if (!strstr(err, want))
                g_error("expected \"%s\" in \"%s\"", want, err);
}
#define ASSERT_USAGE(want, ...) assert_usage_error(want, (const char *[]) { "polyvmctl", __VA_ARGS__, NULL })

static void test_list_takes_no_arguments(void) {
        struct ctl_args a;
        char err[512];
        g_assert_cmpint(PARSE(&a, err, "list"), ==, 0);
        g_assert_cmpint(a.verb, ==, CTL_VERB_LIST);
        g_assert_cmpuint(a.n_args, ==, 0);
        g_assert_null(a.bus);
        ASSERT_USAGE("unexpected argument 'extra'", "list", "extra");
}

static void test_vm_verbs_take_a_name(void) {
        static const struct { const char *name; enum ctl_verb verb; } v[] = {
                { "start", CTL_VERB_START }, { "status", CTL_VERB_STATUS }, { "console", CTL_VERB_CONSOLE },
                { "stop", CTL_VERB_STOP }, { "kill", CTL_VERB_KILL }, { "pause", CTL_VERB_PAUSE },
                { "resume", CTL_VERB_RESUME }, { "destroy", CTL_VERB_DESTROY },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(v); i++) {
                struct ctl_args a;
                char err[512];
                g_assert_cmpint(PARSE(&a, err, v[i].name, "demo"), ==, 0);
                g_assert_cmpint(a.verb, ==, v[i].verb);
                g_assert_cmpstr(a.verb_name, ==, v[i].name);
                g_assert_cmpuint(a.n_args, ==, 1);
                g_assert_cmpstr(a.args[0], ==, "demo");
                g_assert_cmpstr(ctl_verb_to_string(v[i].verb), ==, v[i].name);
        }
        ASSERT_USAGE("start: missing argument NAME", "start");
        ASSERT_USAGE("kill: unexpected argument 'two'", "kill", "one", "two");
}

static void test_create_takes_name_and_config_or_stdin(void) {
        struct ctl_args a;
        char err[512];
        g_assert_cmpint(PARSE(&a, err, "create", "demo", "/tmp/vm.json"), ==, 0);
        g_assert_cmpint(a.verb, ==, CTL_VERB_CREATE);
        g_assert_cmpstr(a.args[1], ==, "/tmp/vm.json");
        g_assert_cmpint(PARSE(&a, err, "create", "demo", "-"), ==, 0);
        g_assert_cmpstr(a.args[1], ==, "-");
        ASSERT_USAGE("create: missing argument CONFIG", "create", "demo");
        ASSERT_USAGE("create: missing argument NAME", "create");
}

static void test_bus_option_in_both_forms_and_any_position(void) {
        struct ctl_args a;
        char err[512];
        g_assert_cmpint(PARSE(&a, err, "--bus=user", "list"), ==, 0);
        g_assert_cmpstr(a.bus, ==, "user");
        g_assert_cmpint(PARSE(&a, err, "list", "--bus", "unix:path=/run/x"), ==, 0);
        g_assert_cmpstr(a.bus, ==, "unix:path=/run/x");
        g_assert_cmpint(PARSE(&a, err, "--bus=unix:path=/a,guid=1", "status", "vm"), ==, 0);
        g_assert_cmpstr(a.bus, ==, "unix:path=/a,guid=1");
        ASSERT_USAGE("option '--bus' needs a value", "list", "--bus");
        ASSERT_USAGE("--bus: needs", "--bus=", "list");
}

static void test_help_and_version_win_over_errors(void) {
        struct ctl_args a;
        char err[512];
        g_assert_cmpint(PARSE(&a, err, "--help"), ==, 0);
        g_assert_true(a.help);
        g_assert_cmpint(PARSE(&a, err, "start", "-h"), ==, 0);
        g_assert_true(a.help);
        g_assert_cmpint(PARSE(&a, err, "--version"), ==, 0);
        g_assert_true(a.version);
        g_assert_cmpint(PARSE(&a, err, "kill", "--help"), ==, 0);
        g_assert_true(a.help);
}

static void test_unknown_command_and_option_are_named(void) {
        ASSERT_USAGE("unknown command 'frobnicate'", "frobnicate");
        ASSERT_USAGE("unknown option '--frob'", "list", "--frob");
        ASSERT_USAGE("unknown option '-x'", "-x", "list");
        ASSERT_USAGE("option '--help' takes no value", "--help=yes");
}

static void test_missing_command(void) {
        struct ctl_args a;
        char err[512];
        g_assert_cmpint(parse(&a, err, (const char *[]) { "polyvmctl", NULL }), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "missing command"));
        ASSERT_USAGE("missing command", "--bus=user");
}

static void test_json_only_with_status(void) {
        struct ctl_args a;
        char err[512];
        g_assert_cmpint(PARSE(&a, err, "status", "--json", "demo"), ==, 0);
        g_assert_true(a.json);
        g_assert_cmpstr(a.args[0], ==, "demo");
        ASSERT_USAGE("list: option '--json' is only valid with status", "list", "--json");
}

static void test_run_options(void) {
        struct ctl_args a;
        char err[512];
        g_assert_cmpint(PARSE(&a, err, "run", "--name", "t1", "--kernel=/boot/vmlinuz", "--initrd", "i.img",
                              "--append", "console=ttyS0 quiet", "--cpus", "4", "--memory=512", "--device",
                              "virtio-rng", "--device", "virtio-blk,path=/d.img", "--keep"), ==, 0);
        g_assert_cmpint(a.verb, ==, CTL_VERB_RUN);
        g_assert_cmpstr(a.run.name, ==, "t1");
        g_assert_cmpstr(a.run.kernel, ==, "/boot/vmlinuz");
        g_assert_cmpstr(a.run.initrd, ==, "i.img");
        g_assert_cmpstr(a.run.append, ==, "console=ttyS0 quiet");
        g_assert_cmpuint(a.run.cpus, ==, 4);
        g_assert_cmpuint(a.run.memory_mib, ==, 512);
        g_assert_cmpuint(a.run.n_devices, ==, 2);
        g_assert_cmpstr(a.run.devices[1], ==, "virtio-blk,path=/d.img");
        g_assert_true(a.run.keep);
}

static void test_run_defaults(void) {
        struct ctl_args a;
        char err[512];
        g_assert_cmpint(PARSE(&a, err, "run", "--kernel", "k"), ==, 0);
        g_assert_null(a.run.name);
        g_assert_cmpuint(a.run.cpus, ==, 0);
        g_assert_cmpuint(a.run.memory_mib, ==, 0);
        g_assert_cmpuint(a.run.n_devices, ==, 0);
        g_assert_false(a.run.keep);
}

static void test_run_rejects_bad_values(void) {
        ASSERT_USAGE("run: missing option --kernel", "run");
        ASSERT_USAGE("--cpus: 'many' is not a number in 1..16", "run", "--kernel", "k", "--cpus", "many");
        ASSERT_USAGE("--cpus: '0'", "run", "--kernel", "k", "--cpus", "0");
        ASSERT_USAGE("--cpus: '17'", "run", "--kernel", "k", "--cpus=17");
        ASSERT_USAGE("--cpus: '-1'", "run", "--kernel", "k", "--cpus=-1");
        ASSERT_USAGE("--memory: '12x'", "run", "--kernel", "k", "--memory", "12x");
        ASSERT_USAGE("--memory: ''", "run", "--kernel", "k", "--memory=");
        ASSERT_USAGE("--memory: '99999999999999999999999'", "run", "--kernel", "k", "--memory",
                     "99999999999999999999999");
        ASSERT_USAGE("--device: ',path=x' does not start with a device kind", "run", "--kernel", "k", "--device",
                     ",path=x");
        ASSERT_USAGE("option '--kernel' needs a value", "run", "--kernel");
        ASSERT_USAGE("run: unexpected argument 'extra'", "run", "--kernel", "k", "extra");
}

static void test_run_options_only_with_run(void) {
        ASSERT_USAGE("start: option '--kernel=/k' is only valid with run", "start", "vm", "--kernel=/k");
        ASSERT_USAGE("list: option '--keep' is only valid with run", "list", "--keep");
}

static void test_too_many_devices(void) {
        const char *argv[3 + 2 * (CTL_MAX_DEVICES + 1) + 1];
        struct ctl_args a;
        char err[512];
        int n = 0;

        argv[n++] = "polyvmctl";
        argv[n++] = "run";
        argv[n++] = "--kernel=/k";
        for (int i = 0; i <= CTL_MAX_DEVICES; i++) {
                argv[n++] = "--device";
                argv[n++] = "virtio-rng";
        }
        argv[n] = NULL;
        g_assert_cmpint(parse(&a, err, argv), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "more than 16 devices"));
}

static void test_double_dash_ends_options(void) {
        struct ctl_args a;
        char err[512];
        g_assert_cmpint(PARSE(&a, err, "status", "--", "-weird"), ==, 0);
        g_assert_cmpstr(a.args[0], ==, "-weird");
}

static void test_swap_takes_action_and_name(void) {
        static const struct { const char *action; enum ctl_swap_action want; } v[] = {
                { "out", CTL_SWAP_OUT }, { "in", CTL_SWAP_IN }, { "trim", CTL_SWAP_TRIM }, { "status", CTL_SWAP_STATUS },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(v); i++) {
                struct ctl_args a;
                char err[512];
                g_assert_cmpint(PARSE(&a, err, "swap", v[i].action, "demo"), ==, 0);
                g_assert_cmpint(a.verb, ==, CTL_VERB_SWAP);
                g_assert_cmpint(a.swap, ==, v[i].want);
                g_assert_cmpstr(a.args[1], ==, "demo");
        }
        ASSERT_USAGE("swap: missing argument ACTION", "swap");
        ASSERT_USAGE("swap: missing argument NAME", "swap", "out");
        ASSERT_USAGE("swap: unknown action 'sideways' (out, in, trim or status)", "swap", "sideways", "demo");
        ASSERT_USAGE("swap: unexpected argument 'x'", "swap", "in", "demo", "x");
        ASSERT_USAGE("swap: option '--json' is only valid with status", "swap", "status", "demo", "--json");
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/polyvmctl/args/list-takes-no-arguments", test_list_takes_no_arguments);
        g_test_add_func("/polyvmctl/args/vm-verbs-take-a-name", test_vm_verbs_take_a_name);
        g_test_add_func("/polyvmctl/args/create-takes-name-and-config-or-stdin", test_create_takes_name_and_config_or_stdin);
        g_test_add_func("/polyvmctl/args/bus-option-in-both-forms-and-any-position",
                        test_bus_option_in_both_forms_and_any_position);
        g_test_add_func("/polyvmctl/args/help-and-version-win-over-errors", test_help_and_version_win_over_errors);
        g_test_add_func("/polyvmctl/args/unknown-command-and-option-are-named", test_unknown_command_and_option_are_named);
        g_test_add_func("/polyvmctl/args/missing-command", test_missing_command);
        g_test_add_func("/polyvmctl/args/json-only-with-status", test_json_only_with_status);
        g_test_add_func("/polyvmctl/args/run-options", test_run_options);
        g_test_add_func("/polyvmctl/args/run-defaults", test_run_defaults);
        g_test_add_func("/polyvmctl/args/run-rejects-bad-values", test_run_rejects_bad_values);
        g_test_add_func("/polyvmctl/args/run-options-only-with-run", test_run_options_only_with_run);
        g_test_add_func("/polyvmctl/args/too-many-devices", test_too_many_devices);
        g_test_add_func("/polyvmctl/args/double-dash-ends-options", test_double_dash_ends_options);
        g_test_add_func("/polyvmctl/args/swap-takes-action-and-name", test_swap_takes_action_and_name);
        return g_test_run();
}
