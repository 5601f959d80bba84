/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The config JSON `polyvmctl run` builds, byte formatting, the console escape. */
#include <errno.h>
#include <glib.h>
#include <json-c/json.h>
#include <string.h>

#include "ctl-config.h"
#include "ctl-console.h"
#include "ctl-format.h"

static json_object *build(const struct ctl_run_options *o, const char *cwd) {
        g_autofree char *text = NULL;
        char err[512] = "";
        json_object *obj;

        g_assert_cmpint(ctl_run_config_build(o, cwd, &text, err, sizeof(err)), ==, 0);
        obj = json_tokener_parse(text);
        g_assert_nonnull(obj);
        return obj;
}

static const char *get_string(json_object *o, const char *key) {
        json_object *v;
        g_assert_true(json_object_object_get_ex(o, key, &v));
        g_assert_true(json_object_is_type(v, json_type_string));
        return json_object_get_string(v);
}

static int64_t get_int(json_object *o, const char *key) {
        json_object *v;
        g_assert_true(json_object_object_get_ex(o, key, &v));
        g_assert_true(json_object_is_type(v, json_type_int));
        return json_object_get_int64(v);
}

static void test_minimal_config_has_only_kernel(void) {
        struct ctl_run_options o = { .kernel = "/boot/vmlinuz" };
        json_object *c = build(&o, "/home/u");

        g_assert_cmpstr(get_string(c, "kernel"), ==, "/boot/vmlinuz");
        g_assert_cmpint(json_object_object_length(c), ==, 1);
        json_object_put(c);
}

static void test_full_config_uses_launcher_field_names(void) {
        struct ctl_run_options o = {
                .kernel = "/k", .initrd = "/i", .append = "console=ttyS0 \"quoted\"", .cpus = 2, .memory_mib = 512,
                .devices = { "virtio-rng" }, .n_devices = 1,
        };
        json_object *c = build(&o, "/");
        json_object *devs, *d;

        g_assert_cmpstr(get_string(c, "initrd"), ==, "/i");
        g_assert_cmpstr(get_string(c, "cmdline"), ==, "console=ttyS0 \"quoted\"");
        g_assert_cmpint(get_int(c, "vcpus"), ==, 2);
        g_assert_cmpint(get_int(c, "memory_mib"), ==, 512);
        g_assert_true(json_object_object_get_ex(c, "devices", &devs));
        g_assert_cmpuint(json_object_array_length(devs), ==, 1);
        d = json_object_array_get_idx(devs, 0);
        g_assert_cmpstr(get_string(d, "kind"), ==, "virtio-rng");
        g_assert_cmpint(json_object_object_length(d), ==, 1);
        g_assert_cmpint(json_object_object_length(c), ==, 6);
        json_object_put(c);
}

static void test_relative_paths_become_absolute(void) {
        struct ctl_run_options o = { .kernel = "guest/k.elf", .initrd = "i.img" };
        json_object *c = build(&o, "/work/build");
        g_assert_cmpstr(get_string(c, "kernel"), ==, "/work/build/guest/k.elf");
        g_assert_cmpstr(get_string(c, "initrd"), ==, "/work/build/i.img");
        json_object_put(c);

        c = build(&o, "/");
        g_assert_cmpstr(get_string(c, "kernel"), ==, "/guest/k.elf");
        json_object_put(c);
}

static void test_device_keys_and_typed_values(void) {
        struct ctl_run_options o = {
                .kernel = "/k",
                .devices = { "virtio-blk,path=/d.img,readonly=true,queues=4", "serial,port=0x3f8" },
                .n_devices = 2,
        };
        json_object *c = build(&o, "/"), *devs, *d, *v;

        g_assert_true(json_object_object_get_ex(c, "devices", &devs));
        d = json_object_array_get_idx(devs, 0);
        g_assert_cmpstr(get_string(d, "kind"), ==, "virtio-blk");
        g_assert_cmpstr(get_string(d, "path"), ==, "/d.img");
        g_assert_true(json_object_object_get_ex(d, "readonly", &v));
        g_assert_true(json_object_is_type(v, json_type_boolean));
        g_assert_true(json_object_get_boolean(v));
        g_assert_cmpint(get_int(d, "queues"), ==, 4);
        /* not all digits: stays a string */
        g_assert_cmpstr(get_string(json_object_array_get_idx(devs, 1), "port"), ==, "0x3f8");
        json_object_put(c);
}

static void test_relative_disk_path_becomes_absolute(void) {
        struct ctl_run_options o = { .kernel = "/k", .devices = { "virtio-blk,path=img/d.img" }, .n_devices = 1 };
        json_object *c = build(&o, "/srv/vms"), *devs;

        g_assert_true(json_object_object_get_ex(c, "devices", &devs));
        g_assert_cmpstr(get_string(json_object_array_get_idx(devs, 0), "path"), ==, "/srv/vms/img/d.img");
        json_object_put(c);
}

static void assert_device_error(const char *spec, const char *want) {
        struct ctl_run_options o = { .kernel = "/k", .devices = { spec }, .n_devices = 1 };
        char *text = NULL, err[512] = "";

        g_assert_cmpint(ctl_run_config_build(&o, "/", &text, err, sizeof(err)), ==, -EINVAL);
        g_assert_null(text);
        if (!strstr(err, want))
                g_error("expected \"%s\" in \"%s\"", want, err);
}

static void test_bad_device_specs_are_named(void) {
        assert_device_error("path=/x", "does not start with a device kind");
        assert_device_error("virtio-blk,readonly", "'readonly' in 'virtio-blk,readonly' is not KEY=VALUE");
        assert_device_error("virtio-blk,=x", "is not KEY=VALUE");
        assert_device_error("virtio-blk,kind=serial", "key 'kind' given twice");
        assert_device_error("virtio-blk,path=a,path=b", "key 'path' given twice");
}

static void test_missing_kernel_is_an_error(void) {
        struct ctl_run_options o = {};
        char *text = NULL, err[512] = "";
        g_assert_cmpint(ctl_run_config_build(&o, "/", &text, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "--kernel"));
}

static void test_default_name_is_valid_vm_name(void) {
        char buf[32];
        ctl_run_default_name(4242, buf, sizeof(buf));
        g_assert_cmpstr(buf, ==, "run-4242");
}

static void test_format_bytes(void) {
        static const struct { uint64_t v; const char *s; } t[] = {
                { 0, "0B" }, { 1023, "1023B" }, { 1024, "1K" }, { 1536, "1.5K" },
                { 256ULL << 20, "256M" }, { 1ULL << 30, "1G" }, { 3ULL << 29, "1.5G" },
                { (1ULL << 30) - 1, "1023.9M" }, { 1ULL << 40, "1T" }, { UINT64_MAX, "15.9E" },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
                char buf[32];
                ctl_format_bytes(t[i].v, buf, sizeof(buf));
                g_assert_cmpstr(buf, ==, t[i].s);
        }
}

static void test_console_escape_is_ctrl_close_bracket(void) {
        g_assert_cmpint(console_find_escape("abc", 3), ==, -1);
        g_assert_cmpint(console_find_escape("ab\x1d" "c", 4), ==, 2);
        g_assert_cmpint(console_find_escape("\x1d", 1), ==, 0);
        /* only the given length counts */
        g_assert_cmpint(console_find_escape("ab\x1d", 2), ==, -1);
        g_assert_cmpint(console_find_escape("", 0), ==, -1);
}

static void test_format_progress(void) {
        char buf[64];

        ctl_format_progress(0, 10, buf, sizeof(buf));
        g_assert_cmpstr(buf, ==, "[..........]   0%");
        ctl_format_progress(0.35, 10, buf, sizeof(buf));
        g_assert_cmpstr(buf, ==, "[###.......]  35%");
        ctl_format_progress(1, 10, buf, sizeof(buf));
        g_assert_cmpstr(buf, ==, "[##########] 100%");
        /* Out of range and NaN are clamped, a short buffer is cut, not overrun. */
        ctl_format_progress(7, 4, buf, sizeof(buf));
        g_assert_cmpstr(buf, ==, "[####] 100%");
        ctl_format_progress(-1, 4, buf, sizeof(buf));
        g_assert_cmpstr(buf, ==, "[....]   0%");
        ctl_format_progress(0.0 / 0.0, 4, buf, sizeof(buf));
        g_assert_cmpstr(buf, ==, "[....]   0%");
        ctl_format_progress(0.5, 10, buf, 6);
        g_assert_cmpstr(buf, ==, "[####");
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/polyvmctl/config/minimal-config-has-only-kernel", test_minimal_config_has_only_kernel);
        g_test_add_func("/polyvmctl/config/full-config-uses-launcher-field-names", test_full_config_uses_launcher_field_names);
        g_test_add_func("/polyvmctl/config/relative-paths-become-absolute", test_relative_paths_become_absolute);
        g_test_add_func("/polyvmctl/config/device-keys-and-typed-values", test_device_keys_and_typed_values);
        g_test_add_func("/polyvmctl/config/relative-disk-path-becomes-absolute", test_relative_disk_path_becomes_absolute);
        g_test_add_func("/polyvmctl/config/bad-device-specs-are-named", test_bad_device_specs_are_named);
        g_test_add_func("/polyvmctl/config/missing-kernel-is-an-error", test_missing_kernel_is_an_error);
        g_test_add_func("/polyvmctl/config/default-name-is-valid-vm-name", test_default_name_is_valid_vm_name);
        g_test_add_func("/polyvmctl/format/bytes", test_format_bytes);
        g_test_add_func("/polyvmctl/format/progress-bar", test_format_progress);
        g_test_add_func("/polyvmctl/console/escape-is-ctrl-close-bracket", test_console_escape_is_ctrl_close_bracket);
        return g_test_run();
}
