/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The early launcher's allowlist rules and early-safe config check
 * (docs/early-vms.md), on files in a temporary root. */
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "bus-errors.h"
#include "config.h"
#include "early-allowlist.h"
#include "early-config.h"

static char *root;

static const char *usr_list =
        "{\"vms\": ["
        " {\"name\": \"vm_demo\", \"cid\": 123, \"path\": \"/usr/bin/vm_demo\"},"
        " {\"name\": \"dup\", \"cid\": 130, \"path\": \"/usr/bin/dup1\"},"
        " {\"name\": \"dup\", \"cid\": 131, \"path\": \"/usr/bin/dup2\"},"
        " {\"name\": \"neg\", \"cid\": -1, \"path\": \"/usr/bin/neg\"},"
        " {\"name\": \"huge\", \"cid\": 999999, \"path\": \"/usr/bin/huge\"},"
        " {\"name\": \"opt_range\", \"cid\": 250, \"path\": \"/usr/bin/opt_range\"}"
        "]}";

static char *write_list(const char *partition, const char *text) {
        char *file = NULL;
        g_autofree char *dir = NULL;

        g_assert_cmpint(early_allowlist_path(root, partition, &file), ==, 0);
        dir = g_path_get_dirname(file);
        g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
        g_assert_true(g_file_set_contents(file, text, -1, NULL));
        return file;
}

/* Expects name in file to fail with error_name and a message holding needle. */
static void assert_refused(const char *file, const char *partition, const char *name, const char *error_name,
                           const char *needle) {
        struct early_vm vm = {};
        const char *e = NULL;
        char err[512] = "";
        int r;

        r = early_allowlist_find(file, partition, name, &vm, &e, err, sizeof(err));
        g_test_message("%s in %s: %d %s: %s", name, file ?: "?", r, e ?: "(none)", err);
        g_assert_cmpint(r, <, 0);
        g_assert_cmpstr(e, ==, error_name);
        g_assert_nonnull(strstr(err, needle));
        g_assert_null(vm.name);
}

static void test_one_vm_is_found(void) {
        g_autofree char *file = write_list("usr", usr_list);
        struct early_vm vm = {};
        const char *e = "x";
        char err[512] = "";

        g_assert_cmpint(early_allowlist_find(file, "usr", "vm_demo", &vm, &e, err, sizeof(err)), ==, 0);
        g_assert_null(e);
        g_assert_cmpstr(vm.name, ==, "vm_demo");
        g_assert_cmpuint(vm.cid, ==, 123);
        g_assert_cmpstr(vm.path, ==, "/usr/bin/vm_demo");
        early_vm_done(&vm);
}

static void test_duplicate_name_is_refused(void) {
        g_autofree char *file = write_list("usr", usr_list);
        assert_refused(file, "usr", "dup", POLYVM_ERROR_DUPLICATE_VM, "vms[1] and vms[2]");
}

static void test_negative_cid_is_refused(void) {
        g_autofree char *file = write_list("usr", usr_list);
        assert_refused(file, "usr", "neg", POLYVM_ERROR_CID_OUT_OF_RANGE, "cid -1 is out of range 100..199");
}

static void test_huge_cid_is_refused(void) {
        g_autofree char *file = write_list("usr", usr_list);
        assert_refused(file, "usr", "huge", POLYVM_ERROR_CID_OUT_OF_RANGE, "cid 999999 is out of range 100..199");
}

/* 250 is an opt CID: the range is the partition's, not any early range. */
static void test_cid_of_other_partition_is_refused(void) {
        g_autofree char *file = write_list("usr", usr_list);
        assert_refused(file, "usr", "opt_range", POLYVM_ERROR_CID_OUT_OF_RANGE, "vms[5]");
}

static void test_missing_name_is_refused(void) {
        g_autofree char *file = write_list("usr", usr_list);
        assert_refused(file, "usr", "nobody", POLYVM_ERROR_NOT_ALLOWLISTED, "no entry for VM \"nobody\"");
}

static void test_missing_file_is_refused(void) {
        g_autofree char *file = g_build_filename(root, "no-such-dir", "early-vms.json", NULL);
        assert_refused(file, "usr", "vm_demo", POLYVM_ERROR_ALLOWLIST_MISSING, "no-such-dir/early-vms.json");
}

static void test_malformed_json_is_refused(void) {
        static const struct {
                const char *text, *needle;
        } cases[] = {
                { "{\"vms\": [", "not valid JSON" },
                { "", "not valid JSON" },
                { "[]", "\"vms\"" },
                { "{\"vms\": {}}", "\"vms\"" },
                { "{\"vms\": [], \"extra\": 1}", "one key" },
                { "{\"vms\": [7]}", "vms[0]: must be an object" },
                { "{\"vms\": [{\"name\": \"a\", \"cid\": 101}]}", "vms[0].path: missing" },
                { "{\"vms\": [{\"name\": \"a\", \"path\": \"/usr/bin/a\"}]}", "vms[0].cid: missing" },
                { "{\"vms\": [{\"name\": \"a\", \"cid\": \"101\", \"path\": \"/usr/bin/a\"}]}", "vms[0].cid: must be an integer" },
                { "{\"vms\": [{\"name\": \"a\", \"cid\": 1.5, \"path\": \"/usr/bin/a\"}]}", "vms[0].cid: must be an integer" },
                { "{\"vms\": [{\"name\": \"a\", \"cid\": 101, \"path\": \"usr/bin/a\"}]}", "absolute" },
                { "{\"vms\": [{\"name\": \"a\", \"cid\": 101, \"path\": \"/usr/bin/a\", \"x\": 1}]}", "vms[0].x: unknown" },
                /* A broken entry spoils the file even if it is not the one asked for. */
                { "{\"vms\": [{\"name\": \"vm_demo\", \"cid\": 101, \"path\": \"/usr/bin/a\"}, {\"name\": 3}]}", "vms[1].name" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *file = write_list("usr", cases[i].text);
                assert_refused(file, "usr", "vm_demo", POLYVM_ERROR_ALLOWLIST_INVALID, cases[i].needle);
        }
}

static void test_wrong_partition_is_refused(void) {
        g_autofree char *file = write_list("usr", usr_list);
        g_autofree char *exe = g_build_filename(root, "system", "bin", "vm_demo", NULL);
        struct early_vm vm = {};
        const char *e = NULL;
        char err[512] = "";

        assert_refused(file, "system", "vm_demo", POLYVM_ERROR_UNSUPPORTED_PARTITION, "partition \"system\"");
        g_assert_cmpint(early_allowlist_check(root, exe, "vm_demo", &vm, &e, err, sizeof(err)), <, 0);
        g_assert_cmpstr(e, ==, POLYVM_ERROR_UNSUPPORTED_PARTITION);
        g_assert_nonnull(strstr(err, "partition \"system\""));
        /* An executable straight in / has no partition. */
        g_clear_pointer(&exe, g_free);
        exe = g_build_filename(root, "vm_demo", NULL);
        g_assert_cmpint(early_allowlist_check(root, exe, "vm_demo", &vm, &e, err, sizeof(err)), <, 0);
        g_assert_cmpstr(e, ==, POLYVM_ERROR_UNSUPPORTED_PARTITION);
}

static void test_caller_path_must_match(void) {
        g_autofree char *file = write_list("usr", usr_list);
        g_autofree char *good = g_build_filename(root, "usr", "bin", "vm_demo", NULL);
        g_autofree char *bad = g_build_filename(root, "usr", "bin", "other", NULL);
        struct early_vm vm = {};
        const char *e = NULL;
        char err[512] = "";

        g_assert_cmpint(early_allowlist_check(root, good, "vm_demo", &vm, &e, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(vm.cid, ==, 123);
        early_vm_done(&vm);
        g_assert_cmpint(early_allowlist_check(root, bad, "vm_demo", &vm, &e, err, sizeof(err)), ==, -EPERM);
        g_assert_cmpstr(e, ==, POLYVM_ERROR_WRONG_CALLER);
        g_assert_nonnull(strstr(err, "must be created by \"/usr/bin/vm_demo\", not by \"/usr/bin/other\""));
        /* Outside the root is not the system's /usr at all. */
        g_assert_cmpint(early_allowlist_check(root, "/usr/bin/vm_demo", "vm_demo", &vm, &e, err, sizeof(err)), <, 0);
        g_assert_cmpstr(e, ==, POLYVM_ERROR_UNSUPPORTED_PARTITION);
}

static void test_opt_partition_has_its_own_file_and_range(void) {
        g_autofree char *file = write_list("opt", "{\"vms\": [{\"name\": \"o\", \"cid\": 299, \"path\": \"/opt/x/bin/o\"},"
                                                  " {\"name\": \"low\", \"cid\": 199, \"path\": \"/opt/x/bin/low\"}]}");
        g_autofree char *exe = g_build_filename(root, "opt", "x", "bin", "o", NULL);
        struct early_vm vm = {};
        const char *e = NULL;
        char err[512] = "";

        g_assert_true(g_str_has_suffix(file, "/opt/polyvm/early-vms.json"));
        g_assert_cmpint(early_allowlist_check(root, exe, "o", &vm, &e, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(vm.cid, ==, 299);
        early_vm_done(&vm);
        assert_refused(file, "opt", "low", POLYVM_ERROR_CID_OUT_OF_RANGE, "200..299");
}

static void test_exe_split(void) {
        char *rel = NULL, *part = NULL;

        g_assert_cmpint(early_exe_split("/r/", "/r/usr/bin/a", &rel, &part), ==, 0);
        g_assert_cmpstr(rel, ==, "/usr/bin/a");
        g_assert_cmpstr(part, ==, "usr");
        g_free(rel);
        g_free(part);
        g_assert_cmpint(early_exe_split(NULL, "/usr/bin/a", &rel, &part), ==, 0);
        g_assert_cmpstr(rel, ==, "/usr/bin/a");
        g_free(rel);
        g_free(part);
        g_assert_cmpint(early_exe_split("/r", "/rx/usr/bin/a", &rel, &part), ==, -EINVAL);
        g_assert_cmpint(early_exe_split("/r", "relative/a", &rel, &part), ==, -EINVAL);
        g_assert_cmpint(early_exe_split(NULL, "/a", &rel, &part), ==, -EINVAL);
}

static void assert_config(const char *json, const char *needle) {
        struct vm_config c = {};
        char err[512] = "";
        int r;

        g_assert_cmpint(vm_config_parse(json, 0, &c, err, sizeof(err)), ==, 0);
        r = early_config_check(json, &c, err, sizeof(err));
        g_test_message("%s -> %d %s", json, r, err);
        if (needle) {
                g_assert_cmpint(r, ==, -EINVAL);
                g_assert_nonnull(strstr(err, needle));
        } else
                g_assert_cmpint(r, ==, 0);
        vm_config_done(&c);
}

static void test_early_safe_config(void) {
        assert_config("{\"kernel\": \"/boot/k\", \"devices\": [{\"kind\": \"serial\"}]}", NULL);
        assert_config("{\"kernel\": \"/boot/k\", \"devices\": []}", NULL);
        assert_config("{\"kernel\": \"/boot/k\"}", "config.devices: an early VM must list");
        assert_config("{\"kernel\": \"/boot/k\", \"devices\": [{\"kind\": \"serial\"}, {\"kind\": \"rtc\"}]}",
                      "config.devices[1].kind: \"rtc\" is not allowed");
        assert_config("{\"kernel\": \"/boot/k\", \"devices\": [{\"kind\": \"block\", \"image\": \"/disk.img\"}]}",
                      "\"block\" is not allowed");
        assert_config("{\"kernel\": \"/var/lib/k\", \"devices\": []}", "config.kernel: \"/var/lib/k\" is under /var");
        assert_config("{\"kernel\": \"/boot/k\", \"initrd\": \"/var/i\", \"devices\": []}", "config.initrd");
        assert_config("{\"kernel\": \"/boot/k\", \"devices\": [{\"kind\": \"serial\", \"log\": [\"/var/log/x\"]}]}",
                      "config.devices[0]: \"/var/log/x\" is under /var");
        assert_config("{\"kernel\": \"/boot/k\", \"cid\": 300, \"devices\": []}", "config.cid");
        assert_config("{\"plugin\": {\"path\": \"/usr/libexec/p\"}, \"vcpus\": 1}",
                      "config.plugin: an early VM cannot be a plugin VM");
}

/* The regular config's cid: 300 up, below VMADDR_CID_ANY. */
static void test_config_cid_range(void) {
        struct vm_config c = {};
        char err[512] = "";

        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"cid\": 300}", 0, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.cid, ==, 300);
        vm_config_done(&c);
        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\"}", 0, &c, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(c.cid, ==, 0);
        vm_config_done(&c);
        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"cid\": 150}", 0, &c, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "cid"));
        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"cid\": 4294967295}", 0, &c, err, sizeof(err)), ==, -EINVAL);
        g_assert_cmpint(vm_config_parse("{\"kernel\": \"/k\", \"cid\": -1}", 0, &c, err, sizeof(err)), ==, -EINVAL);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        root = g_dir_make_tmp("polyvm-early-XXXXXX", NULL);
        g_assert_nonnull(root);
        g_test_add_func("/early-allowlist/one-vm-is-found", test_one_vm_is_found);
        g_test_add_func("/early-allowlist/duplicate-name-is-refused", test_duplicate_name_is_refused);
        g_test_add_func("/early-allowlist/negative-cid-is-refused", test_negative_cid_is_refused);
        g_test_add_func("/early-allowlist/huge-cid-is-refused", test_huge_cid_is_refused);
        g_test_add_func("/early-allowlist/cid-of-other-partition-is-refused", test_cid_of_other_partition_is_refused);
        g_test_add_func("/early-allowlist/missing-name-is-refused", test_missing_name_is_refused);
        g_test_add_func("/early-allowlist/missing-file-is-refused", test_missing_file_is_refused);
        g_test_add_func("/early-allowlist/malformed-json-is-refused", test_malformed_json_is_refused);
        g_test_add_func("/early-allowlist/wrong-partition-is-refused", test_wrong_partition_is_refused);
        g_test_add_func("/early-allowlist/caller-path-must-match", test_caller_path_must_match);
        g_test_add_func("/early-allowlist/opt-partition-has-its-own-file-and-range",
                        test_opt_partition_has_its_own_file_and_range);
        g_test_add_func("/early-allowlist/exe-split", test_exe_split);
        g_test_add_func("/early-config/early-safe-config", test_early_safe_config);
        g_test_add_func("/early-config/config-cid-range", test_config_cid_range);
        r = g_test_run();
        g_autofree char *rm = g_strdup_printf("rm -rf '%s'", root);
        (void) system(rm);
        return r;
}
