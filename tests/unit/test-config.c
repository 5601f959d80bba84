/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <glib.h>
#include <string.h>

#include "config.h"
#include "layout.h"

#define HOST_RAM (8ULL << 30)

static void assert_rejected(const char *json, uint64_t host, const char *expected_message) {
        struct vm_config c = {};
        char err[512] = "";
        int r;

        r = vm_config_parse(json, host, &c, err, sizeof(err));
        if (r != -EINVAL || strstr(err, expected_message) == NULL)
                g_error("config %s: expected -EINVAL with \"%s\", got %d \"%s\"", json, expected_message, r, err);
}

static void test_full_config_is_parsed(void) {
        struct vm_config c = {};
        char err[512] = "";
        const char *json =
                "{\"vcpus\": 2, \"memory_mib\": 512, \"kernel\": \"/boot/vmlinuz\", \"initrd\": \"/boot/initrd\","
                " \"cmdline\": \"console=ttyS0 quiet\", \"on_reboot\": \"restart\","
                " \"devices\": [{\"kind\": \"serial\"}, {\"kind\": \"rtc\", \"extra\": [1, 2]}]}";

        g_assert_cmpint(vm_config_parse(json, HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.vcpus, ==, 2);
        g_assert_cmpuint(c.memory_bytes, ==, 512ULL << 20);
        g_assert_cmpstr(c.kernel, ==, "/boot/vmlinuz");
        g_assert_cmpstr(c.initrd, ==, "/boot/initrd");
        g_assert_cmpstr(c.cmdline, ==, "console=ttyS0 quiet");
        g_assert_cmpint(c.on_reboot, ==, ON_REBOOT_RESTART);
        g_assert_cmpuint(c.n_devices, ==, 2);
        g_assert_cmpstr(c.devices[0].kind, ==, "serial");
        g_assert_cmpstr(c.devices[1].kind, ==, "rtc");
        /* The device keeps its own fields for devmgr; the kind travels apart. */
        g_assert_nonnull(strstr(c.devices[1].config_json, "\"extra\":[1,2]"));
        g_assert_null(strstr(c.devices[1].config_json, "kind"));
        vm_config_done(&c);
        g_assert_null(c.kernel);
}

static void test_defaults_apply_when_fields_are_absent(void) {
        struct vm_config c = {};
        char err[512] = "";

        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\"}", HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.vcpus, ==, 1);
        g_assert_cmpuint(c.memory_bytes, ==, (uint64_t) CONFIG_DEFAULT_MEMORY_MIB << 20);
        g_assert_null(c.initrd);
        g_assert_null(c.cmdline);
        g_assert_cmpuint(c.n_devices, ==, 0);
        g_assert_cmpint(c.on_reboot, ==, ON_REBOOT_STOP);
        vm_config_done(&c);
}

static void test_host_memory_zero_means_no_host_bound(void) {
        struct vm_config c = {};
        char err[512] = "";

        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"memory_mib\": 65536}", 0, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.memory_bytes, ==, LAYOUT_MAX_MEMORY);
        vm_config_done(&c);
}

static void test_malformed_json_is_rejected(void) {
        assert_rejected("{\"kernel\": \"/k\"", HOST_RAM, "config: not valid JSON");
        assert_rejected("", HOST_RAM, "config: not valid JSON");
        assert_rejected("{\"kernel\": \"/k\"} x", HOST_RAM, "config: trailing data");
        assert_rejected("[1, 2]", HOST_RAM, "config: must be a JSON object");
}

static void test_unknown_field_is_rejected(void) {
        assert_rejected("{\"kernel\": \"/k\", \"vcpu\": 2}", HOST_RAM, "config.vcpu: unknown field");
}

static void test_missing_kernel_is_rejected(void) {
        assert_rejected("{\"vcpus\": 2}", HOST_RAM, "config.kernel: missing required field");
}

static void test_relative_kernel_is_rejected(void) {
        assert_rejected("{\"kernel\": \"vmlinuz\"}", HOST_RAM, "config.kernel: \"vmlinuz\" must be an absolute path");
        assert_rejected("{\"kernel\": \"\"}", HOST_RAM, "config.kernel: \"\" must be an absolute path");
        assert_rejected("{\"kernel\": \"/k\", \"initrd\": \"initrd.img\"}", HOST_RAM,
                        "config.initrd: \"initrd.img\" must be an absolute path");
        assert_rejected("{\"kernel\": \"/k\\u0000x\"}", HOST_RAM, "config.kernel: must not contain a NUL");
}

static void test_wrong_types_are_rejected(void) {
        assert_rejected("{\"kernel\": 5}", HOST_RAM, "config.kernel: must be a string, not int");
        assert_rejected("{\"kernel\": \"/k\", \"vcpus\": \"2\"}", HOST_RAM, "config.vcpus: must be an integer, not string");
        assert_rejected("{\"kernel\": \"/k\", \"vcpus\": 1.5}", HOST_RAM, "config.vcpus: must be an integer, not double");
        assert_rejected("{\"kernel\": \"/k\", \"memory_mib\": true}", HOST_RAM, "config.memory_mib: must be an integer");
        assert_rejected("{\"kernel\": \"/k\", \"devices\": {}}", HOST_RAM, "config.devices: must be an array, not object");
        assert_rejected("{\"kernel\": \"/k\", \"cmdline\": []}", HOST_RAM, "config.cmdline: must be a string, not array");
        assert_rejected("{\"kernel\": \"/k\", \"on_reboot\": 1}", HOST_RAM, "config.on_reboot: must be a string");
}

static void test_vcpus_out_of_range_are_rejected(void) {
        assert_rejected("{\"kernel\": \"/k\", \"vcpus\": 0}", HOST_RAM, "config.vcpus: 0 is out of range 1..16");
        assert_rejected("{\"kernel\": \"/k\", \"vcpus\": 1000}", HOST_RAM, "config.vcpus: 1000 is out of range 1..16");
        assert_rejected("{\"kernel\": \"/k\", \"vcpus\": -1}", HOST_RAM, "config.vcpus: -1 is out of range 1..16");
        assert_rejected("{\"kernel\": \"/k\", \"vcpus\": 99999999999999999999}", HOST_RAM, "config.vcpus:");
}

static void test_vcpus_limits_are_accepted(void) {
        struct vm_config c = {};
        char err[512] = "";

        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"vcpus\": 16}", HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.vcpus, ==, 16);
        vm_config_done(&c);
        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"vcpus\": 1}", HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.vcpus, ==, 1);
        vm_config_done(&c);
}

static void test_memory_out_of_range_is_rejected(void) {
        assert_rejected("{\"kernel\": \"/k\", \"memory_mib\": 0}", HOST_RAM, "config.memory_mib: 0 is out of range 16..65536");
        assert_rejected("{\"kernel\": \"/k\", \"memory_mib\": 15}", HOST_RAM, "config.memory_mib: 15 is out of range 16..65536");
        assert_rejected("{\"kernel\": \"/k\", \"memory_mib\": 65537}", 0, "config.memory_mib: 65537 is out of range 16..65536");
        assert_rejected("{\"kernel\": \"/k\", \"memory_mib\": 8193}", HOST_RAM,
                        "config.memory_mib: 8193 is more than the host's RAM (8192 MiB)");
}

static void test_odd_memory_sizes_are_accepted(void) {
        struct vm_config c = {};
        char err[512] = "";

        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"memory_mib\": 17}", HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.memory_bytes, ==, 17ULL << 20);
        vm_config_done(&c);
}

static void test_long_cmdline_is_rejected(void) {
        g_autofree char *json = NULL, *line = g_strnfill(LAYOUT_CMDLINE_MAX, 'a');
        struct vm_config c = {};
        char err[512] = "";

        json = g_strdup_printf("{\"kernel\": \"/k\", \"cmdline\": \"%s\"}", line);
        assert_rejected(json, HOST_RAM, "config.cmdline: 65536 bytes is longer than the limit of 65535 bytes");

        line[LAYOUT_CMDLINE_MAX - 1] = '\0';
        g_free(json);
        json = g_strdup_printf("{\"kernel\": \"/k\", \"cmdline\": \"%s\"}", line);
        g_assert_cmpint(vm_config_parse(json, HOST_RAM, &c, err, sizeof(err)), ==, 0);
        vm_config_done(&c);
}

static void test_bad_devices_are_rejected(void) {
        assert_rejected("{\"kernel\": \"/k\", \"devices\": [\"serial\"]}", HOST_RAM,
                        "config.devices[0]: must be an object, not string");
        assert_rejected("{\"kernel\": \"/k\", \"devices\": [{\"kind\": \"serial\"}, {\"kind\": \"rtc\"}, {\"path\": \"/x\"}]}",
                        HOST_RAM, "config.devices[2].kind: missing required field");
        assert_rejected("{\"kernel\": \"/k\", \"devices\": [{\"kind\": 3}]}", HOST_RAM,
                        "config.devices[0].kind: must be a string, not int");
        assert_rejected("{\"kernel\": \"/k\", \"devices\": [{\"kind\": \"\"}]}", HOST_RAM,
                        "config.devices[0].kind: \"\" must be a non-empty name");
        assert_rejected("{\"kernel\": \"/k\", \"devices\": [null]}", HOST_RAM, "config.devices[0]: must be an object, not null");
}

static void test_too_many_devices_are_rejected(void) {
        g_autoptr(GString) json = g_string_new("{\"kernel\": \"/k\", \"devices\": [");
        struct vm_config c = {};
        char err[512] = "";

        for (int i = 0; i < CONFIG_MAX_DEVICES; i++)
                g_string_append_printf(json, "%s{\"kind\": \"serial\"}", i ? ", " : "");
        g_string_append(json, "]}");
        g_assert_cmpint(vm_config_parse(json->str, HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.n_devices, ==, CONFIG_MAX_DEVICES);
        vm_config_done(&c);

        g_string_truncate(json, json->len - 2);
        g_string_append(json, ", {\"kind\": \"rtc\"}]}");
        assert_rejected(json->str, HOST_RAM, "config.devices: 17 devices is more than the limit of 16");
}

static void test_bad_on_reboot_is_rejected(void) {
        struct vm_config c = {};
        char err[512] = "";

        assert_rejected("{\"kernel\": \"/k\", \"on_reboot\": \"halt\"}", HOST_RAM,
                        "config.on_reboot: \"halt\" is not one of \"stop\", \"restart\"");
        assert_rejected("{\"kernel\": \"/k\", \"on_reboot\": \"\"}", HOST_RAM, "config.on_reboot: \"\" is not one of");
        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"on_reboot\": \"stop\"}", HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpint(c.on_reboot, ==, ON_REBOOT_STOP);
        vm_config_done(&c);
}

static void test_device_timeout(void) {
        struct vm_config c = {};
        char err[512] = "";

        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\"}", HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.device_timeout_ms, ==, 1000);
        vm_config_done(&c);
        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"device_timeout_ms\": 10}", HOST_RAM, &c, err,
                                        sizeof(err)), ==, 0);
        g_assert_cmpuint(c.device_timeout_ms, ==, 10);
        vm_config_done(&c);
        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"device_timeout_ms\": 60000}", HOST_RAM, &c, err,
                                        sizeof(err)), ==, 0);
        g_assert_cmpuint(c.device_timeout_ms, ==, 60000);
        vm_config_done(&c);
        assert_rejected("{\"kernel\": \"/k\", \"device_timeout_ms\": 9}", HOST_RAM,
                        "config.device_timeout_ms: 9 is out of range 10..60000");
        assert_rejected("{\"kernel\": \"/k\", \"device_timeout_ms\": 60001}", HOST_RAM,
                        "config.device_timeout_ms: 60001 is out of range 10..60000");
        assert_rejected("{\"kernel\": \"/k\", \"device_timeout_ms\": -1}", HOST_RAM, "config.device_timeout_ms");
        assert_rejected("{\"kernel\": \"/k\", \"device_timeout_ms\": \"1s\"}", HOST_RAM, "config.device_timeout_ms");
}

static void test_on_device_failure(void) {
        struct vm_config c = {};
        char err[512] = "";

        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\"}", HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpint(c.on_device_failure, ==, ON_DEVICE_FAILURE_CONTINUE);
        vm_config_done(&c);
        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"on_device_failure\": \"stop\"}", HOST_RAM, &c, err,
                                        sizeof(err)), ==, 0);
        g_assert_cmpint(c.on_device_failure, ==, ON_DEVICE_FAILURE_STOP);
        vm_config_done(&c);
        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"on_device_failure\": \"continue\"}", HOST_RAM, &c,
                                        err, sizeof(err)), ==, 0);
        g_assert_cmpint(c.on_device_failure, ==, ON_DEVICE_FAILURE_CONTINUE);
        vm_config_done(&c);
        assert_rejected("{\"kernel\": \"/k\", \"on_device_failure\": \"restart\"}", HOST_RAM,
                        "config.on_device_failure: \"restart\" is not one of \"continue\", \"stop\"");
        assert_rejected("{\"kernel\": \"/k\", \"on_device_failure\": \"\"}", HOST_RAM,
                        "config.on_device_failure: \"\" is not one of");
        assert_rejected("{\"kernel\": \"/k\", \"on_device_failure\": true}", HOST_RAM,
                        "config.on_device_failure: must be a string");
        assert_rejected("{\"kernel\": \"/k\", \"on_device_failure\": \"st\\u0000op\"}", HOST_RAM,
                        "config.on_device_failure: must not contain a NUL character");
}

static void test_error_leaves_result_untouched(void) {
        struct vm_config c = { .vcpus = 77 };
        char err[512] = "";

        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"vcpus\": 2, \"bogus\": 1}", HOST_RAM, &c, err, sizeof(err)),
                        ==, -EINVAL);
        g_assert_cmpuint(c.vcpus, ==, 77);
        g_assert_null(c.kernel);
}

/* "console" names a device kind the VM has (in devices, or the default
 * set without devices); absent, the first device that takes one gets it. */
static void test_console_kind_accepted_and_checked(void) {
        struct vm_config c = {};
        char err[512] = "";

        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"devices\": [{\"kind\": \"serial\"},"
                                        " {\"kind\": \"virtio-console\"}], \"console\": \"virtio-console\"}",
                                        HOST_RAM, &c, err, sizeof(err)),
                        ==, 0);
        g_assert_cmpstr(c.console, ==, "virtio-console");
        vm_config_done(&c);
        g_assert_null(c.console);

        /* The default set (serial, rtc) counts when devices is absent. */
        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"console\": \"serial\"}", HOST_RAM, &c, err,
                                        sizeof(err)),
                        ==, 0);
        g_assert_cmpstr(c.console, ==, "serial");
        vm_config_done(&c);

        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\"}", HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_null(c.console);
        vm_config_done(&c);

        assert_rejected("{\"kernel\": \"/k\", \"devices\": [{\"kind\": \"serial\"}], \"console\": \"virtio-console\"}",
                        HOST_RAM, "config.console: \"virtio-console\" is not the kind of any entry in \"devices\"");
        assert_rejected("{\"kernel\": \"/k\", \"console\": \"virtio-console\"}", HOST_RAM,
                        "config.console: \"virtio-console\" is not the kind of any device: without \"devices\" the VM "
                        "has serial, rtc");
        assert_rejected("{\"kernel\": \"/k\", \"devices\": [], \"console\": \"serial\"}", HOST_RAM,
                        "config.console: \"serial\" is not the kind of any device: \"devices\" is empty");
        assert_rejected("{\"kernel\": \"/k\", \"console\": \"\"}", HOST_RAM,
                        "config.console: must be a device kind, not \"\"");
        assert_rejected("{\"kernel\": \"/k\", \"console\": 1}", HOST_RAM, "config.console");
        assert_rejected("{\"kernel\": \"/k\", \"console\": null}", HOST_RAM, "config.console");
        assert_rejected("{\"kernel\": \"/k\", \"console\": \"ser\\u0000ial\"}", HOST_RAM,
                        "config.console: must not contain a NUL character");
}

static void test_plugin_config_is_parsed(void) {
        struct vm_config c = {};
        char err[512] = "";
        const char *json = "{\"plugin\": {\"path\": \"/usr/libexec/p\", \"args\": [\"a\", \"b c\"],"
                           " \"extra_syscalls\": [\"clone3\", \"futex\"], \"irqchip\": false}, \"vcpus\": 2}";

        g_assert_cmpint(vm_config_parse(json, HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_true(vm_config_is_plugin(&c));
        g_assert_cmpstr(c.plugin.path, ==, "/usr/libexec/p");
        g_assert_cmpuint(c.plugin.n_args, ==, 2);
        g_assert_cmpstr(c.plugin.args[0], ==, "a");
        g_assert_cmpstr(c.plugin.args[1], ==, "b c");
        g_assert_null(c.plugin.args[2]);
        g_assert_cmpuint(c.plugin.n_extra_syscalls, ==, 2);
        g_assert_cmpstr(c.plugin.extra_syscalls[1], ==, "futex");
        g_assert_null(c.plugin.extra_syscalls[2]);
        g_assert_false(c.plugin.irqchip);
        g_assert_cmpuint(c.vcpus, ==, 2);
        g_assert_null(c.kernel);
        /* No memory_mib: the plugin brings all guest memory. */
        g_assert_cmpuint(c.memory_bytes, ==, 0);
        g_assert_cmpuint(c.n_devices, ==, 0);
        vm_config_done(&c);
        g_assert_null(c.plugin.path);
}

static void test_plugin_config_defaults_and_memory(void) {
        struct vm_config c = {};
        char err[512] = "";

        g_assert_cmpint(vm_config_parse("{\"plugin\": {\"path\": \"/p\"}, \"memory_mib\": 64}", HOST_RAM, &c, err,
                                        sizeof(err)), ==, 0);
        g_assert_true(c.plugin.irqchip);
        g_assert_cmpuint(c.plugin.n_args, ==, 0);
        g_assert_nonnull(c.plugin.args);
        g_assert_null(c.plugin.args[0]);
        g_assert_cmpuint(c.plugin.n_extra_syscalls, ==, 0);
        g_assert_cmpuint(c.memory_bytes, ==, 64ULL << 20);
        g_assert_cmpuint(c.vcpus, ==, 1);
        vm_config_done(&c);

        /* A kernel VM is no plugin VM. */
        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\"}", HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_false(vm_config_is_plugin(&c));
        vm_config_done(&c);
}

static void test_bad_plugin_configs_are_rejected(void) {
        g_autofree char *many_args = NULL, *long_arg = NULL, *many_syscalls = NULL;
        GString *b;

        assert_rejected("{\"vcpus\": 1}", HOST_RAM, "config.kernel: missing required field (or \"plugin\"");
        assert_rejected("{\"plugin\": \"/p\"}", HOST_RAM, "config.plugin: must be an object, not string");
        assert_rejected("{\"plugin\": {}}", HOST_RAM, "config.plugin.path: missing required field");
        assert_rejected("{\"plugin\": {\"path\": 1}}", HOST_RAM, "config.plugin.path: must be a string, not int");
        assert_rejected("{\"plugin\": {\"path\": \"p\"}}", HOST_RAM,
                        "config.plugin.path: \"p\" must be an absolute path");
        assert_rejected("{\"plugin\": {\"path\": \"\"}}", HOST_RAM, "config.plugin.path: \"\" must be an absolute path");
        assert_rejected("{\"plugin\": {\"path\": \"/p\\u0000x\"}}", HOST_RAM,
                        "config.plugin.path: must not contain a NUL");
        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"arg\": []}}", HOST_RAM, "config.plugin.arg: unknown field");
        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"args\": \"-v\"}}", HOST_RAM,
                        "config.plugin.args: must be an array, not string");
        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"args\": [\"a\", 2]}}", HOST_RAM,
                        "config.plugin.args[1]: must be a string, not int");
        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"args\": [\"a\\u0000b\"]}}", HOST_RAM,
                        "config.plugin.args[0]: must not contain a NUL");
        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"extra_syscalls\": [null]}}", HOST_RAM,
                        "config.plugin.extra_syscalls[0]: must be a string, not null");
        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"extra_syscalls\": [\"futex\", \"\"]}}", HOST_RAM,
                        "config.plugin.extra_syscalls[1]: must be a system call name");
        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"irqchip\": 1}}", HOST_RAM,
                        "config.plugin.irqchip: must be a boolean");

        b = g_string_new("{\"plugin\": {\"path\": \"/p\", \"args\": [");
        for (int i = 0; i <= CONFIG_PLUGIN_MAX_ARGS; i++)
                g_string_append_printf(b, "%s\"a\"", i ? ", " : "");
        g_string_append(b, "]}}");
        many_args = g_string_free(b, false);
        assert_rejected(many_args, HOST_RAM, "config.plugin.args: 65 entries is more than the limit of 64");

        b = g_string_new("{\"plugin\": {\"path\": \"/p\", \"args\": [\"");
        for (int i = 0; i <= CONFIG_PLUGIN_MAX_ARG_BYTES; i++)
                g_string_append_c(b, 'x');
        g_string_append(b, "\"]}}");
        long_arg = g_string_free(b, false);
        assert_rejected(long_arg, HOST_RAM, "config.plugin.args[0]: 4097 bytes is longer than the limit of 4096 bytes");

        b = g_string_new("{\"plugin\": {\"path\": \"/p\", \"extra_syscalls\": [");
        for (int i = 0; i <= CONFIG_PLUGIN_MAX_EXTRA_SYSCALLS; i++)
                g_string_append_printf(b, "%s\"futex\"", i ? ", " : "");
        g_string_append(b, "]}}");
        many_syscalls = g_string_free(b, false);
        assert_rejected(many_syscalls, HOST_RAM, "config.plugin.extra_syscalls: 65 entries is more than the limit of 64");

        /* Still the common fields' rules. */
        assert_rejected("{\"plugin\": {\"path\": \"/p\"}, \"vcpus\": 17}", HOST_RAM, "config.vcpus: 17 is out of range");
        assert_rejected("{\"plugin\": {\"path\": \"/p\"}, \"memory_mib\": 1}", HOST_RAM,
                        "config.memory_mib: 1 is out of range");
}

static void test_plugin_files_are_parsed_in_order(void) {
        g_autofree char *limit = NULL;
        struct vm_config c = {};
        char err[512] = "";
        GString *b;

        g_assert_cmpint(vm_config_parse("{\"plugin\": {\"path\": \"/p\", \"files\": [\"/var/lib/g.elf\", \"/tmp/disk\"],"
                                        " \"args\": [\"fd:4\"]}}", HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.plugin.n_files, ==, 2);
        g_assert_cmpstr(c.plugin.files[0], ==, "/var/lib/g.elf");
        g_assert_cmpstr(c.plugin.files[1], ==, "/tmp/disk");
        g_assert_null(c.plugin.files[2]);
        vm_config_done(&c);

        /* Absent: none, as an empty list. */
        g_assert_cmpint(vm_config_parse("{\"plugin\": {\"path\": \"/p\"}}", HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.plugin.n_files, ==, 0);
        g_assert_nonnull(c.plugin.files);
        g_assert_null(c.plugin.files[0]);
        vm_config_done(&c);

        /* Exactly the limit. */
        b = g_string_new("{\"plugin\": {\"path\": \"/p\", \"files\": [");
        for (int i = 0; i < CONFIG_PLUGIN_MAX_FILES; i++)
                g_string_append_printf(b, "%s\"/f%d\"", i ? ", " : "", i);
        g_string_append(b, "]}}");
        limit = g_string_free(b, false);
        g_assert_cmpint(vm_config_parse(limit, HOST_RAM, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.plugin.n_files, ==, CONFIG_PLUGIN_MAX_FILES);
        g_assert_cmpstr(c.plugin.files[CONFIG_PLUGIN_MAX_FILES - 1], ==, "/f14");
        vm_config_done(&c);
}

static void test_bad_plugin_files_are_rejected(void) {
        g_autofree char *many = NULL, *long_path = NULL;
        GString *b;

        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"files\": \"/f\"}}", HOST_RAM,
                        "config.plugin.files: must be an array, not string");
        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"files\": [\"/f\", 3]}}", HOST_RAM,
                        "config.plugin.files[1]: must be a string, not int");
        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"files\": [\"f\"]}}", HOST_RAM,
                        "config.plugin.files[0]: \"f\" must be an absolute path");
        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"files\": [\"/a\", \"\"]}}", HOST_RAM,
                        "config.plugin.files[1]: \"\" must be an absolute path");
        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"files\": [\"/a\\u0000b\"]}}", HOST_RAM,
                        "config.plugin.files[0]: must not contain a NUL character");
        assert_rejected("{\"plugin\": {\"path\": \"/p\", \"files\": [\"/a\", \"/b\", \"/a\"]}}", HOST_RAM,
                        "config.plugin.files[2]: \"/a\" is already files[0]");

        b = g_string_new("{\"plugin\": {\"path\": \"/p\", \"files\": [");
        for (int i = 0; i <= CONFIG_PLUGIN_MAX_FILES; i++)
                g_string_append_printf(b, "%s\"/f%d\"", i ? ", " : "", i);
        g_string_append(b, "]}}");
        many = g_string_free(b, false);
        assert_rejected(many, HOST_RAM, "config.plugin.files: 16 entries is more than the limit of 15");

        b = g_string_new("{\"plugin\": {\"path\": \"/p\", \"files\": [\"/");
        for (int i = 0; i < CONFIG_PLUGIN_MAX_FILE_BYTES; i++)
                g_string_append_c(b, 'x');
        g_string_append(b, "\"]}}");
        long_path = g_string_free(b, false);
        assert_rejected(long_path, HOST_RAM, "config.plugin.files[0]: 4096 bytes is longer than the limit of 4095 bytes");

        /* A kernel VM has no plugin to give files to. */
        assert_rejected("{\"kernel\": \"/k\", \"files\": [\"/f\"]}", HOST_RAM, "config.files: unknown field");
}

static void test_plugin_conflicts_name_the_field(void) {
        assert_rejected("{\"plugin\": {\"path\": \"/p\"}, \"kernel\": \"/k\"}", HOST_RAM,
                        "config.plugin: conflicts with config.kernel");
        assert_rejected("{\"plugin\": {\"path\": \"/p\"}, \"initrd\": \"/i\"}", HOST_RAM,
                        "config.plugin: conflicts with config.initrd");
        assert_rejected("{\"plugin\": {\"path\": \"/p\"}, \"cmdline\": \"x\"}", HOST_RAM,
                        "config.plugin: conflicts with config.cmdline");
        assert_rejected("{\"plugin\": {\"path\": \"/p\"}, \"devices\": []}", HOST_RAM,
                        "config.plugin: conflicts with config.devices");
        assert_rejected("{\"plugin\": {\"path\": \"/p\"}, \"console\": \"serial\"}", HOST_RAM,
                        "config.plugin: conflicts with config.console");
}

static void test_vm_names(void) {
        char long_name[301];

        g_assert_true(vm_name_is_valid("demo"));
        g_assert_true(vm_name_is_valid("vm-1_test.2"));
        g_assert_false(vm_name_is_valid(""));
        g_assert_false(vm_name_is_valid(NULL));
        g_assert_false(vm_name_is_valid("a/b"));
        g_assert_false(vm_name_is_valid("/"));
        g_assert_false(vm_name_is_valid(".hidden"));
        g_assert_false(vm_name_is_valid(".."));
        g_assert_false(vm_name_is_valid("with space"));
        g_assert_false(vm_name_is_valid("caf\xc3\xa9"));

        memset(long_name, 'a', 300);
        long_name[300] = '\0';
        g_assert_false(vm_name_is_valid(long_name));
        long_name[CONFIG_NAME_MAX] = '\0';
        g_assert_true(vm_name_is_valid(long_name));
        long_name[CONFIG_NAME_MAX] = 'a';
        long_name[CONFIG_NAME_MAX + 1] = '\0';
        g_assert_false(vm_name_is_valid(long_name));
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/config/full-config-is-parsed", test_full_config_is_parsed);
        g_test_add_func("/config/defaults-apply-when-fields-are-absent", test_defaults_apply_when_fields_are_absent);
        g_test_add_func("/config/host-memory-zero-means-no-host-bound", test_host_memory_zero_means_no_host_bound);
        g_test_add_func("/config/malformed-json-is-rejected", test_malformed_json_is_rejected);
        g_test_add_func("/config/unknown-field-is-rejected", test_unknown_field_is_rejected);
        g_test_add_func("/config/missing-kernel-is-rejected", test_missing_kernel_is_rejected);
        g_test_add_func("/config/relative-paths-are-rejected", test_relative_kernel_is_rejected);
        g_test_add_func("/config/wrong-types-are-rejected", test_wrong_types_are_rejected);
        g_test_add_func("/config/vcpus-out-of-range-are-rejected", test_vcpus_out_of_range_are_rejected);
        g_test_add_func("/config/vcpus-limits-are-accepted", test_vcpus_limits_are_accepted);
        g_test_add_func("/config/memory-out-of-range-is-rejected", test_memory_out_of_range_is_rejected);
        g_test_add_func("/config/odd-memory-sizes-are-accepted", test_odd_memory_sizes_are_accepted);
        g_test_add_func("/config/long-cmdline-is-rejected", test_long_cmdline_is_rejected);
        g_test_add_func("/config/bad-devices-are-rejected", test_bad_devices_are_rejected);
        g_test_add_func("/config/too-many-devices-are-rejected", test_too_many_devices_are_rejected);
        g_test_add_func("/config/bad-on-reboot-is-rejected", test_bad_on_reboot_is_rejected);
        g_test_add_func("/config/device-timeout-default-range-and-errors", test_device_timeout);
        g_test_add_func("/config/on-device-failure-continue-stop-and-errors", test_on_device_failure);
        g_test_add_func("/config/error-leaves-result-untouched", test_error_leaves_result_untouched);
        g_test_add_func("/config/console-kind-accepted-and-checked", test_console_kind_accepted_and_checked);
        g_test_add_func("/config/plugin-config-is-parsed", test_plugin_config_is_parsed);
        g_test_add_func("/config/plugin-config-defaults-and-memory", test_plugin_config_defaults_and_memory);
        g_test_add_func("/config/bad-plugin-configs-are-rejected", test_bad_plugin_configs_are_rejected);
        g_test_add_func("/config/plugin-files-are-parsed-in-order", test_plugin_files_are_parsed_in_order);
        g_test_add_func("/config/bad-plugin-files-are-rejected", test_bad_plugin_files_are_rejected);
        g_test_add_func("/config/plugin-conflicts-name-the-field", test_plugin_conflicts_name_the_field);
        g_test_add_func("/vm-name/validity", test_vm_names);
        return g_test_run();
}
