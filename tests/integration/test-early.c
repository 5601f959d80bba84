/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The early launcher (polyvm-launcher --early --root=ROOT) over a private
 * bus: only the executable an allowlist names may create its VM, the config
 * must be early-safe, and started in a mount namespace where /var is an
 * empty read-only tmpfs it still creates VMs and writes nothing but
 * ROOT/run/polyvm/early/<cid>/. Also the CIDs of regular VMs. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "harness.h"

#define EARLY "org.polyvm.EarlyLauncher1"
#define REGULAR "org.polyvm.Launcher1"
#define LAUNCHER_PATH "/org/polyvm/Launcher1"

static struct harness h;
static char *root, *kernel;
static GPid launcher_pid;

static char *vm_path(const char *name) {
        char *path = NULL;
        g_assert_cmpint(sd_bus_path_encode(LAUNCHER_PATH "/vm", name, &path), >=, 0);
        return path;
}

static char *early_config(const char *devices) {
        return g_strdup_printf("{\"kernel\": \"%s\", \"memory_mib\": 64%s%s}", kernel, devices ? ", \"devices\": " : "",
                               devices ?: "");
}

static void install_client(const char *relative) {
        g_autofree char *src = harness_build_path("tests/integration/early-client");
        g_autofree char *dst = g_build_filename(root, relative, NULL);
        g_autofree char *dir = g_path_get_dirname(dst);
        g_autofree char *data = NULL;
        gsize len;

        g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
        g_assert_true(g_file_get_contents(src, &data, &len, NULL));
        g_assert_true(g_file_set_contents(dst, data, (gssize) len, NULL));
        g_assert_cmpint(chmod(dst, 0755), ==, 0);
}

/* Runs ROOT/<client> to create name; returns its line ("ok ..." or "<error>\t<message>"). */
static char *run_client(const char *client, const char *name, const char *config) {
        g_autofree char *exe = g_build_filename(root, client, NULL);
        g_autoptr(GError) error = NULL;
        char *argv[] = { exe, h.address, (char *) name, (char *) config, NULL };
        char *out = NULL;
        int status;

        g_assert_true(g_spawn_sync(NULL, argv, NULL, 0, NULL, NULL, &out, NULL, &status, &error));
        g_assert_no_error(error);
        g_assert_true(g_spawn_check_wait_status(status, NULL));
        g_strchomp(out);
        g_test_message("%s creates %s: %s", client, name, out);
        return out;
}

static void destroy(const char *dest, const char *name) {
        g_autofree char *err = harness_call_error(&h, dest, LAUNCHER_PATH, "org.polyvm.Launcher1", "DestroyVm", NULL,
                                                  "s", name);
        g_assert_null(err);
}

static uint32_t vm_cid(const char *dest, const char *name) {
        g_autofree char *path = vm_path(name);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint32_t cid = 0;

        g_assert_cmpint(sd_bus_get_property_trivial(h.bus, dest, path, "org.polyvm.Vm1", "Cid", &error, 'u', &cid), >=,
                        0);
        sd_bus_error_free(&error);
        return cid;
}

static gboolean exists_under_root(const char *relative) {
        g_autofree char *p = g_build_filename(root, relative, NULL);
        return g_file_test(p, G_FILE_TEST_EXISTS);
}

static void test_only_listed_caller_creates_its_vm(void) {
        g_autofree char *config = early_config("[{\"kind\": \"serial\"}]");
        g_autofree char *by_b = run_client("usr/bin/b", "early_a", config);
        g_autofree char *by_a = NULL, *again = NULL, *state = NULL;

        g_assert_true(g_str_has_prefix(by_b, "org.polyvm.Error.WrongCaller\t"));
        g_assert_nonnull(strstr(by_b, "must be created by \"/usr/bin/a\", not by \"/usr/bin/b\""));
        g_assert_nonnull(strstr(by_b, "usr/lib/polyvm/early-vms.json"));
        g_assert_false(exists_under_root("run/polyvm/early/123"));

        by_a = run_client("usr/bin/a", "early_a", config);
        g_assert_true(g_str_has_prefix(by_a, "ok /org/polyvm/Launcher1/vm/"));
        g_assert_cmpuint(vm_cid(EARLY, "early_a"), ==, 123);
        g_assert_true(exists_under_root("run/polyvm/early/123/vm.json"));

        again = run_client("usr/bin/a", "early_a", config);
        g_assert_true(g_str_has_prefix(again, "org.polyvm.Error.VmExists\t"));

        destroy(EARLY, "early_a");
        g_assert_false(exists_under_root("run/polyvm/early/123"));
}

static void test_refusals_are_named(void) {
        g_autofree char *ok = early_config("[{\"kind\": \"serial\"}]");
        g_autofree char *no_devices = early_config(NULL), *rtc = early_config("[{\"kind\": \"rtc\"}]");
        struct {
                const char *client, *name, *config, *error, *needle;
        } cases[] = {
                { "usr/bin/a", "not_listed", ok, "org.polyvm.Error.NotAllowlisted", "no entry for VM \"not_listed\"" },
                { "usr/bin/a", "dup", ok, "org.polyvm.Error.DuplicateVm", "more than once" },
                { "usr/bin/a", "far", ok, "org.polyvm.Error.CidOutOfRange", "999999" },
                { "srv/bin/c", "early_a", ok, "org.polyvm.Error.UnsupportedPartition", "partition \"srv\"" },
                { "opt/bin/d", "early_a", ok, "org.polyvm.Error.AllowlistMissing", "opt/polyvm/early-vms.json" },
                { "usr/bin/a", "early_a", no_devices, "org.polyvm.Error.NotEarlySafe", "config.devices" },
                { "usr/bin/a", "early_a", rtc, "org.polyvm.Error.NotEarlySafe", "\"rtc\" is not allowed" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *out = run_client(cases[i].client, cases[i].name, cases[i].config);
                g_autofree char *prefix = g_strconcat(cases[i].error, "\t", NULL);
                g_assert_true(g_str_has_prefix(out, prefix));
                g_assert_nonnull(strstr(out, cases[i].needle));
        }
        g_assert_false(exists_under_root("run/polyvm/early/123"));
        g_assert_cmpint(harness_name_pid(&h, EARLY), ==, launcher_pid);
}

/* Lists what is under dir (relative to root) into files. */
static void list_tree(const char *dir, GPtrArray *files) {
        g_autofree char *full = g_build_filename(root, dir, NULL);
        g_autoptr(GDir) d = g_dir_open(full, 0, NULL);
        const char *e;

        g_assert_nonnull(d);
        while ((e = g_dir_read_name(d))) {
                g_autofree char *rel = *dir ? g_build_filename(dir, e, NULL) : g_strdup(e);
                g_autofree char *p = g_build_filename(root, rel, NULL);
                if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
                        list_tree(rel, files);
                else
                        g_ptr_array_add(files, g_steal_pointer(&rel));
        }
}

/* The launcher runs with /var an empty read-only tmpfs, creates its VM
 * anyway, and the only file it writes is under run/polyvm/early/<cid>/. */
static void test_works_without_var(void) {
        g_autofree char *mountinfo = NULL, *path = g_strdup_printf("/proc/%d/mountinfo", (int) launcher_pid);
        g_autofree char *config = early_config("[{\"kind\": \"serial\"}]");
        g_autofree char *out = NULL;
        g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
        g_auto(GStrv) lines = NULL;
        gboolean var_ro_tmpfs = FALSE;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t memlock = 0;

        g_assert_true(g_file_get_contents(path, &mountinfo, NULL, NULL));
        lines = g_strsplit(mountinfo, "\n", -1);
        for (char **l = lines; *l; l++) {
                g_auto(GStrv) f = g_strsplit(*l, " ", -1);
                if (g_strv_length(f) > 8 && strcmp(f[4], "/var") == 0) {
                        /* mount options in f[5]; after " - ": fstype. */
                        var_ro_tmpfs = g_str_has_prefix(f[5], "ro") && strstr(*l, " - tmpfs ") != NULL;
                }
        }
        g_assert_true(var_ro_tmpfs);

        out = run_client("usr/bin/a", "early_a", config);
        g_assert_true(g_str_has_prefix(out, "ok "));

        list_tree("", files);
        for (size_t i = 0; i < files->len; i++) {
                const char *f = files->pdata[i];
                g_test_message("under root: %s", f);
                g_assert_true(g_str_has_prefix(f, "usr/") || g_str_has_prefix(f, "srv/") || g_str_has_prefix(f, "opt/") ||
                              strcmp(f, "run/polyvm/early/123/vm.json") == 0);
        }
        g_assert_true(exists_under_root("run/polyvm/early/123/vm.json"));

        /* What RLIMIT_MEMLOCK it got: at least what it started with (> 0). */
        g_assert_cmpint(sd_bus_get_property_trivial(h.bus, EARLY, LAUNCHER_PATH, "org.polyvm.Launcher1",
                                                    "MemlockLimit", &error, 't', &memlock), >=, 0);
        g_assert_cmpuint(memlock, >, 0);
        sd_bus_error_free(&error);

        harness_compare_interface(&h, EARLY, LAUNCHER_PATH, "org.polyvm.Launcher1");
        {
                g_autofree char *p = vm_path("early_a");
                harness_compare_interface(&h, EARLY, p, "org.polyvm.Vm1");
        }
        destroy(EARLY, "early_a");
}

/* Regular VMs get a CID too: config.cid, or the lowest free from 300. */
static void test_regular_vms_get_cids(void) {
        g_autofree char *plain = g_strdup_printf("{\"kernel\": \"%s\", \"memory_mib\": 64}", kernel);
        g_autofree char *fixed = g_strdup_printf("{\"kernel\": \"%s\", \"memory_mib\": 64, \"cid\": 5000}", kernel);
        g_autofree char *clash = g_strdup_printf("{\"kernel\": \"%s\", \"memory_mib\": 64, \"cid\": 300}", kernel);
        g_autofree char *low = g_strdup_printf("{\"kernel\": \"%s\", \"memory_mib\": 64, \"cid\": 150}", kernel);
        g_autofree char *err = NULL, *message = NULL;

        g_assert_null(harness_call_error(&h, REGULAR, LAUNCHER_PATH, REGULAR, "CreateVm", NULL, "ss", "r1", plain));
        g_assert_null(harness_call_error(&h, REGULAR, LAUNCHER_PATH, REGULAR, "CreateVm", NULL, "ss", "r2", plain));
        g_assert_null(harness_call_error(&h, REGULAR, LAUNCHER_PATH, REGULAR, "CreateVm", NULL, "ss", "r3", fixed));
        g_assert_cmpuint(vm_cid(REGULAR, "r1"), ==, 300);
        g_assert_cmpuint(vm_cid(REGULAR, "r2"), ==, 301);
        g_assert_cmpuint(vm_cid(REGULAR, "r3"), ==, 5000);

        err = harness_call_error(&h, REGULAR, LAUNCHER_PATH, REGULAR, "CreateVm", &message, "ss", "r4", clash);
        g_assert_cmpstr(err, ==, "org.polyvm.Error.CidInUse");
        g_assert_nonnull(strstr(message, "r1"));
        g_clear_pointer(&err, g_free);
        g_clear_pointer(&message, g_free);
        err = harness_call_error(&h, REGULAR, LAUNCHER_PATH, REGULAR, "CreateVm", &message, "ss", "r4", low);
        g_assert_cmpstr(err, ==, "org.polyvm.Error.InvalidConfig");
        g_assert_nonnull(strstr(message, "config.cid"));

        /* A freed CID is reused. */
        destroy(REGULAR, "r1");
        g_assert_null(harness_call_error(&h, REGULAR, LAUNCHER_PATH, REGULAR, "CreateVm", NULL, "ss", "r5", plain));
        g_assert_cmpuint(vm_cid(REGULAR, "r5"), ==, 300);
        destroy(REGULAR, "r2");
        destroy(REGULAR, "r3");
        destroy(REGULAR, "r5");
}

static void write_allowlist(void) {
        g_autofree char *dir = g_build_filename(root, "usr", "lib", "polyvm", NULL);
        g_autofree char *file = g_build_filename(dir, "early-vms.json", NULL);
        const char *text = "{\"vms\": ["
                           " {\"name\": \"early_a\", \"cid\": 123, \"path\": \"/usr/bin/a\"},"
                           " {\"name\": \"dup\", \"cid\": 124, \"path\": \"/usr/bin/a\"},"
                           " {\"name\": \"dup\", \"cid\": 125, \"path\": \"/usr/bin/a\"},"
                           " {\"name\": \"far\", \"cid\": 999999, \"path\": \"/usr/bin/a\"}"
                           "]}\n";

        g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
        g_assert_true(g_file_set_contents(file, text, -1, NULL));
}

/* The launcher in its own mount namespace with an empty read-only /var. */
static void start_early_launcher(void) {
        g_autofree char *exe = harness_build_path("services/launcher/polyvm-launcher");
        g_autofree char *root_arg = g_strdup_printf("--root=%s", root);
        g_autofree char *bus_arg = g_strdup_printf("--bus=%s", h.address);
        g_autoptr(GError) error = NULL;
        char *argv[] = { "unshare", "--mount", "--propagation", "private", "sh", "-c",
                         "mount -t tmpfs -o ro,size=1m tmpfs /var && exec \"$0\" \"$@\"", exe, "--early", root_arg,
                         bus_arg, NULL };

        g_assert_true(g_spawn_async(NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                    &launcher_pid, &error));
        g_assert_no_error(error);
        for (int i = 0; i < 250 && harness_name_pid(&h, EARLY) != launcher_pid; i++)
                g_usleep(20 * 1000);
        g_assert_cmpint(harness_name_pid(&h, EARLY), ==, launcher_pid);
}

int main(int argc, char **argv) {
        int r, status;

        g_test_init(&argc, &argv, NULL);
        kernel = harness_build_path("guest/polyvm-testguest.elf");
        root = g_dir_make_tmp("polyvm-early-root-XXXXXX", NULL);
        g_assert_nonnull(root);
        if (geteuid() != 0) {
                /* Mount namespaces with a tmpfs need root here; failing is
                 * better than a skip counted as a pass. */
                g_printerr("test-early needs root (unshare -m, mount tmpfs)\n");
                return 1;
        }

        install_client("usr/bin/a");
        install_client("usr/bin/b");
        install_client("srv/bin/c");
        install_client("opt/bin/d");
        write_allowlist();

        g_test_add_func("/early/only-listed-caller-creates-its-vm", test_only_listed_caller_creates_its_vm);
        g_test_add_func("/early/refusals-are-named", test_refusals_are_named);
        g_test_add_func("/early/works-without-var", test_works_without_var);
        g_test_add_func("/early/regular-vms-get-cids", test_regular_vms_get_cids);

        harness_start(&h);
        start_early_launcher();
        r = g_test_run();
        kill(launcher_pid, SIGTERM);
        (void) waitpid(launcher_pid, &status, 0);
        harness_stop(&h);
        g_autofree char *rm = g_strdup_printf("rm -rf '%s'", root);
        (void) system(rm);
        return r;
}
