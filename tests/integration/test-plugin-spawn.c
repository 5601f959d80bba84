/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Plugin processes through the real devmgr (CreatePlugin, StopPlugin):
 * the built polyvm-plugin-minimal runs jailed on one end of a socketpair
 * whose other end this test serves with the launcher's plugin server and
 * the fake ops (tests/unit/plugin-fake.h), playing its vCPU with the
 * mini interpreter (tests/unit/plugin-mini-cpu.h); its jail is checked
 * from /proc, its output found in devmgr's log. plugin-misbehave ends each
 * other way (status, signal, seccomp violation, ignored SIGTERM), reads the
 * files it was given as fds (and only those), and bad arguments (files
 * among them) get named errors. After each, no process of the plugin is
 * left. devmgr is started by the test (not activated) so that its stderr,
 * the log, is the test's to read. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "bus-util.h"
#include "harness.h"
#include "plugin-fake.h"
#include "plugin-mini-cpu.h"
#include "plugin-server.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"
#define DEVICE_IFACE "org.polyvm.Device1"

static struct harness h;
static struct harness_devmgr dm;

static char *create_plugin(const char *path, const char *const *args, int sock, const char *const *extra,
                           const int *files, size_t n_files, pid_t *ret_pid, char **ret_error) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        const char *p;
        char *result = NULL;
        uint32_t pid;
        int r;

        g_assert_cmpint(sd_bus_message_new_method_call(h.bus, &m, DEVMGR, DEVMGR_PATH, DEVMGR, "CreatePlugin"), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "ss", "vm1", path), >=, 0);
        g_assert_cmpint(sd_bus_message_append_strv(m, (char **) args), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "h", sock), >=, 0);
        g_assert_cmpint(sd_bus_message_append_strv(m, (char **) extra), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(m, 'a', "h"), >=, 0);
        for (size_t i = 0; i < n_files; i++)
                g_assert_cmpint(sd_bus_message_append_basic(m, 'h', &files[i]), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        r = sd_bus_call(h.bus, m, 10 * 1000 * 1000, &error, &reply);
        if (r < 0) {
                g_assert_nonnull(ret_error);
                *ret_error = g_strdup_printf("%s: %s", error.name, error.message);
        } else {
                g_assert_cmpint(sd_bus_message_read(reply, "ou", &p, &pid), >, 0);
                result = g_strdup(p);
                *ret_pid = (pid_t) pid;
        }
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        return result;
}

static char *stop_plugin(const char *path, uint64_t grace_usec) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *reason;
        char *s;

        if (sd_bus_call_method(h.bus, DEVMGR, DEVMGR_PATH, DEVMGR, "StopPlugin", &error, &reply, "ot", path, grace_usec) < 0)
                g_error("StopPlugin: %s: %s", error.name, error.message);
        g_assert_cmpint(sd_bus_message_read(reply, "s", &reason), >, 0);
        s = g_strdup(reason);
        sd_bus_message_unref(reply);
        return s;
}

static void destroy(const char *path) {
        g_autofree char *err = harness_call_error(&h, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", NULL, "o", path);
        g_assert_null(err);
}

/* /proc/<pid>/status field, trimmed. */
static char *status_field(pid_t pid, const char *field) {
        g_autofree char *path = g_strdup_printf("/proc/%d/status", (int) pid);
        g_autofree char *text = NULL;
        g_autofree char *key = g_strdup_printf("\n%s:", field);
        const char *p, *e;

        g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
        p = strstr(text, key);
        g_assert_nonnull(p);
        p += strlen(key);
        e = strchr(p, '\n');
        return g_strstrip(g_strndup(p, e ? (size_t) (e - p) : strlen(p)));
}

static void wait_ended(const char *path, const char *state, const char *reason_prefix, pid_t pid) {
        g_autofree char *reason = NULL;

        g_assert_true(harness_wait_property(&h, DEVMGR, path, DEVICE_IFACE, "State", state, 10000));
        reason = harness_get_string(&h, DEVMGR, path, DEVICE_IFACE, "ExitReason");
        if (!g_str_has_prefix(reason, reason_prefix))
                g_error("ExitReason of %s is '%s', expected '%s...'", path, reason, reason_prefix);
        g_assert_true(harness_wait_pid_gone(pid, 5000));
}

static void test_minimal_example_runs_jailed(void) {
        g_autofree char *exe = harness_build_path("plugins/polyvm-plugin-minimal");
        const char *args[] = { "Hello from a jailed plugin\n", NULL }, *none[] = { NULL };
        g_autofree char *path = NULL, *seccomp = NULL, *nnp = NULL, *capeff = NULL, *uid = NULL, *kind = NULL;
        struct mini_cpu c = {};
        struct fake_server sv = {};
        pthread_t vcpu;
        pid_t pid = 0;
        int fd;

        fd = fake_server_new(&sv);
        g_assert_cmpint(fd, >=, 0);
        path = create_plugin(exe, args, fd, none, NULL, 0, &pid, NULL);
        close(fd); /* devmgr and the plugin have theirs */
        g_assert_nonnull(path);
        kind = harness_get_string(&h, DEVMGR, path, DEVICE_IFACE, "Kind");
        g_assert_cmpstr(kind, ==, "plugin");
        /* CreatePlugin and StopPlugin as dbus/ says; a plugin is a Device1. */
        harness_compare_interface(&h, DEVMGR, DEVMGR_PATH, DEVMGR);
        harness_compare_interface(&h, DEVMGR, path, DEVICE_IFACE);
        g_assert_cmpint(fake_server_start(&sv), ==, 0);

        /* Connected, memory created, port reserved: it runs the program now. */
        for (int i = 0; i < 500 && !fake_vm_called(&sv.fake, "reserve_range"); i++)
                g_usleep(10 * 1000);
        if (!fake_vm_called(&sv.fake, "reserve_range")) {
                (void) harness_expect(dm.log_fd, dm.log, &dm.pos, "\x01never", 500);
                g_printerr("devmgr log:\n%s\n", dm.log->str); /* why it did not get there */
        }
        g_assert_true(fake_vm_called(&sv.fake, "add_memory id=1 offset=0x0 guest=0x0 size=0x10000"));
        g_assert_true(fake_vm_called(&sv.fake, "reserve_range space=0 start=0xe9 length=0x1"));
        seccomp = status_field(pid, "Seccomp");
        nnp = status_field(pid, "NoNewPrivs");
        capeff = status_field(pid, "CapEff");
        uid = status_field(pid, "Uid");
        g_assert_cmpstr(seccomp, ==, "2");
        g_assert_cmpstr(nnp, ==, "1");
        g_assert_cmpstr(capeff, ==, "0000000000000000");
        /* Its own host uid from devmgr's range, in all four fields. */
        g_assert_true(g_str_has_prefix(uid, "18"));
        g_assert_cmpuint(g_ascii_strtoull(uid, NULL, 10), >=, 0x70000000u);

        c.s = sv.s;
        c.fake = &sv.fake;
        g_assert_cmpint(pthread_create(&vcpu, NULL, mini_cpu_run, &c), ==, 0);
        g_assert_cmpint(pthread_join(vcpu, NULL), ==, 0);
        g_assert_false(c.failed);

        /* What its guest printed went to stdout, which devmgr logs. */
        g_assert_true(harness_expect(dm.log_fd, dm.log, &dm.pos, "Hello from a jailed plugin", 5000));
        wait_ended(path, "exited", "exited with status 0", pid);
        g_assert_cmpint(fake_server_finish(&sv), ==, -ECONNRESET); /* its main socket hung up */
        destroy(path);
}

/* Runs plugin-misbehave with args and files; returns its object. */
static char *misbehave_with(const char *const *args, const char *const *extra, const int *files, size_t n_files,
                            int *ret_sock, pid_t *ret_pid) {
        g_autofree char *exe = harness_build_path("tests/integration/plugin-misbehave");
        const char *none[] = { NULL };
        g_autofree char *error = NULL;
        char *path;
        int sv[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
        path = create_plugin(exe, args, sv[1], extra ?: none, files, n_files, ret_pid, &error);
        if (!path)
                g_error("CreatePlugin(%s): %s", args[0], error);
        close(sv[1]);
        if (ret_sock)
                *ret_sock = sv[0];
        else
                close(sv[0]);
        return path;
}

static char *misbehave(const char *const *args, const char *const *extra, int *ret_sock, pid_t *ret_pid) {
        return misbehave_with(args, extra, NULL, 0, ret_sock, ret_pid);
}

static void wait_ready(int sock) {
        struct pollfd p = { .fd = sock, .events = POLLIN };
        char buf[8] = {};

        g_assert_cmpint(poll(&p, 1, 10000), ==, 1);
        g_assert_cmpint(recv(sock, buf, sizeof(buf), 0), ==, 5);
        g_assert_cmpstr(buf, ==, "ready");
}

static void test_error_exit_is_reported(void) {
        const char *args[] = { "exit", "3", NULL };
        g_autofree char *path = NULL;
        pid_t pid;

        path = misbehave(args, NULL, NULL, &pid);
        wait_ended(path, "failed", "exited with status 3", pid);
        /* Its stderr reached devmgr's log, under its object's name. */
        g_assert_true(harness_expect(dm.log_fd, dm.log, &dm.pos, "plugin-misbehave: exiting with 3", 5000));
        destroy(path);
}

static void test_signal_death_is_reported(void) {
        const char *args[] = { "segv", NULL };
        g_autofree char *path = NULL;
        pid_t pid;

        path = misbehave(args, NULL, NULL, &pid);
        wait_ended(path, "failed", "killed by signal 11 (SIGSEGV)", pid);
        destroy(path);
}

static void test_forbidden_syscall_is_named(void) {
        const char *args[] = { "ptrace", NULL };
        g_autofree char *path = NULL;
        pid_t pid;

        path = misbehave(args, NULL, NULL, &pid);
        wait_ended(path, "failed", "seccomp violation: ptrace", pid);
        destroy(path);
}

static void test_extra_syscall_widens_the_policy(void) {
        const char *args[] = { "uname", NULL }, *extra[] = { "uname", NULL };
        g_autofree char *without = NULL, *with = NULL;
        pid_t pid;

        without = misbehave(args, NULL, NULL, &pid);
        wait_ended(without, "failed", "seccomp violation: uname", pid);
        with = misbehave(args, extra, NULL, &pid);
        wait_ended(with, "exited", "exited with status 0", pid);
        destroy(without);
        destroy(with);
}

static void test_stop_kills_after_grace_with_timeout(void) {
        const char *args[] = { "hang", NULL };
        g_autofree char *path = NULL, *reason = NULL;
        gint64 start;
        pid_t pid;
        int sock;

        path = misbehave(args, NULL, &sock, &pid);
        wait_ready(sock);
        start = g_get_monotonic_time();
        reason = stop_plugin(path, 300 * 1000);
        /* Answered once it is gone, after the grace period and no later than a while after. */
        g_assert_cmpint(g_get_monotonic_time() - start, >=, 300 * 1000);
        g_assert_cmpint(g_get_monotonic_time() - start, <, 3000 * 1000);
        g_assert_true(g_str_has_prefix(reason, "timeout: still running 300 ms after SIGTERM, killed by signal 9"));
        g_assert_false(harness_pid_alive(pid));
        wait_ended(path, "failed", "timeout: still running 300 ms after SIGTERM", pid);
        close(sock);
        destroy(path);
}

static void test_stop_of_a_plugin_that_leaves_on_sigterm(void) {
        const char *args[] = { "term", NULL };
        g_autofree char *path = NULL, *reason = NULL, *again = NULL;
        pid_t pid;
        int sock;

        path = misbehave(args, NULL, &sock, &pid);
        wait_ready(sock);
        /* 0: the default grace period (1 s), which it does not need. */
        reason = stop_plugin(path, 0);
        g_assert_cmpstr(reason, ==, "exited with status 0");
        g_assert_true(harness_wait_pid_gone(pid, 1000));
        again = stop_plugin(path, 0); /* already gone: just the reason */
        g_assert_cmpstr(again, ==, "exited with status 0");
        close(sock);
        destroy(path);
}

static void expect_error_with_files(const char *exe, const char *const *args, int sock, const char *const *extra,
                                    const int *files, size_t n_files, const char *name, const char *needle) {
        g_autofree char *error = NULL, *path = NULL;
        const char *none[] = { NULL };
        pid_t pid = 0;

        path = create_plugin(exe, args ?: none, sock, extra ?: none, files, n_files, &pid, &error);
        if (path)
                g_error("CreatePlugin(%s) succeeded, expected %s", exe, name);
        if (!g_str_has_prefix(error, name) || !strstr(error, needle))
                g_error("CreatePlugin(%s): '%s', expected %s with '%s'", exe, error, name, needle);
}

static void expect_error(const char *exe, const char *const *args, int sock, const char *const *extra,
                         const char *name, const char *needle) {
        expect_error_with_files(exe, args, sock, extra, NULL, 0, name, needle);
}

static gboolean devmgr_has_children(void) {
        g_autofree char *path = g_strdup_printf("/proc/%d/task/%d/children", (int) dm.pid, (int) dm.pid);
        g_autofree char *text = NULL;

        g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
        return g_strstrip(text)[0] != 0;
}

static void test_bad_arguments_are_named_errors(void) {
        g_autofree char *exe = harness_build_path("tests/integration/plugin-misbehave");
        g_autofree char *source = harness_build_path("build.ninja");
        g_autofree char *dir = harness_build_path("tests");
        const char *ptrace[] = { "ptrace", NULL }, *bogus[] = { "no_such_call", NULL };
        const char *args[] = { "exit", "0", NULL };
        int sv[2], tcp;

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
        tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(tcp, >=, 0);

        expect_error("tests/integration/plugin-misbehave", args, sv[1], NULL, "org.polyvm.Error.InvalidArguments",
                     "not an absolute path");
        expect_error(source, args, sv[1], NULL, "org.polyvm.Error.InvalidArguments", "not executable");
        expect_error(dir, args, sv[1], NULL, "org.polyvm.Error.InvalidArguments", "is a directory");
        expect_error("/nonexistent/plugin", args, sv[1], NULL, "org.polyvm.Error.InvalidArguments", "cannot open");
        expect_error(exe, args, tcp, NULL, "org.polyvm.Error.InvalidArguments", "AF_UNIX SOCK_SEQPACKET");
        expect_error(exe, args, sv[1], bogus, "org.polyvm.Error.InvalidArguments",
                     "unknown system call 'no_such_call'");
        expect_error(exe, args, sv[1], ptrace, "org.polyvm.Error.NotPermitted", "'ptrace' is on the deny list");
        /* None of them started anything: devmgr has no child left (every
         * earlier plugin was reaped and destroyed too). */
        g_assert_false(devmgr_has_children());
        close(sv[0]);
        close(sv[1]);
        close(tcp);
}

static void expect_log(const char *needle) {
        if (!harness_expect(dm.log_fd, dm.log, &dm.pos, needle, 5000))
                g_error("devmgr's log does not say '%s':\n%s", needle, dm.log->str);
}

/* Files under /tmp, which the jail does not show: the plugin reads them
 * through fds 4 and 5, in order, and cannot write them or open them by
 * path; fd 6 is not open. */
static void test_files_reach_the_jailed_plugin_as_fds(void) {
        g_autofree char *dir = g_dir_make_tmp("plugin-files-XXXXXX", NULL);
        g_autofree char *first = g_build_filename(dir, "first", NULL);
        g_autofree char *second = g_build_filename(dir, "second", NULL);
        g_autofree char *path = NULL, *line = NULL;
        const char *args[] = { "files", first, NULL };
        int files[2];
        pid_t pid;

        g_assert_true(g_file_set_contents(first, "the first file", -1, NULL));
        g_assert_true(g_file_set_contents(second, "the second file", -1, NULL));
        g_assert_cmpint(chmod(dir, 0700), ==, 0); /* nobody else may open them by path */
        files[0] = open(first, O_RDONLY | O_CLOEXEC);
        files[1] = open(second, O_RDONLY | O_CLOEXEC);
        g_assert_cmpint(files[0], >=, 0);
        g_assert_cmpint(files[1], >=, 0);

        path = misbehave_with(args, NULL, files, 2, NULL, &pid);
        close(files[0]);
        close(files[1]);
        wait_ended(path, "exited", "exited with status 0", pid);
        expect_log("plugin-misbehave: POLYVM_PLUGIN_FILES=4,5");
        expect_log("plugin-misbehave: fd 4 reads 'the first file'");
        expect_log("plugin-misbehave: fd 4 write: Bad file descriptor");
        expect_log("plugin-misbehave: fd 5 reads 'the second file'");
        expect_log("plugin-misbehave: fd 5 write: Bad file descriptor");
        expect_log("plugin-misbehave: fd 6: closed");
        line = g_strdup_printf("plugin-misbehave: open %s: No such file or directory", first);
        expect_log(line);
        destroy(path);

        /* The most one call can carry: 15, at fds 4..18. */
        {
                int many[15];
                GString *list = g_string_new("plugin-misbehave: POLYVM_PLUGIN_FILES=4");

                for (int i = 0; i < 15; i++) {
                        many[i] = open(second, O_RDONLY | O_CLOEXEC);
                        g_assert_cmpint(many[i], >=, 0);
                        if (i > 0)
                                g_string_append_printf(list, ",%d", 4 + i);
                }
                g_free(path);
                path = misbehave_with(args, NULL, many, 15, NULL, &pid);
                for (int i = 0; i < 15; i++)
                        close(many[i]);
                wait_ended(path, "exited", "exited with status 0", pid);
                g_string_append_c(list, '\n');
                expect_log(list->str);
                expect_log("plugin-misbehave: fd 18 reads 'the second file'");
                expect_log("plugin-misbehave: fd 19: closed");
                g_string_free(list, TRUE);
                destroy(path);
        }

        /* Without files: no variable, and fd 4 is closed. */
        g_free(path);
        path = misbehave_with(args, NULL, NULL, 0, NULL, &pid);
        wait_ended(path, "exited", "exited with status 0", pid);
        expect_log("plugin-misbehave: POLYVM_PLUGIN_FILES=(unset)");
        expect_log("plugin-misbehave: fd 4: closed");
        destroy(path);

        g_unlink(first);
        g_unlink(second);
        g_rmdir(dir);
}

static void test_bad_files_are_refused_before_any_fork(void) {
        g_autofree char *exe = harness_build_path("tests/integration/plugin-misbehave");
        g_autofree char *dir = g_dir_make_tmp("plugin-files-XXXXXX", NULL);
        g_autofree char *file = g_build_filename(dir, "image", NULL);
        const char *args[] = { "exit", "0", NULL };
        int sv[2], files[16], ro, rw, dirfd;

        g_assert_true(g_file_set_contents(file, "data", -1, NULL));
        ro = open(file, O_RDONLY | O_CLOEXEC);
        rw = open(file, O_RDWR | O_CLOEXEC);
        dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        g_assert_cmpint(ro, >=, 0);
        g_assert_cmpint(rw, >=, 0);
        g_assert_cmpint(dirfd, >=, 0);
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);

        files[0] = ro;
        files[1] = rw;
        expect_error_with_files(exe, args, sv[1], NULL, files, 2, "org.polyvm.Error.InvalidArguments",
                                "files[1]: must be opened read-only");
        files[1] = dirfd;
        expect_error_with_files(exe, args, sv[1], NULL, files, 2, "org.polyvm.Error.InvalidArguments",
                                "files[1]: must be a regular file, not a directory");
        files[1] = sv[0];
        expect_error_with_files(exe, args, sv[1], NULL, files, 2, "org.polyvm.Error.InvalidArguments",
                                "files[1]: must be a regular file, not a socket");
        /* 16 files and the socket: more fds than dbus-daemon lets one
         * message carry (16). The bus drops the sender (here a connection
         * of its own) before devmgr sees the call; devmgr's own limit is
         * tested in test-plugin-check. */
        for (size_t i = 0; i < G_N_ELEMENTS(files); i++)
                files[i] = ro;
        {
                sd_bus *main_bus = h.bus;
                g_autofree char *error = NULL, *path = NULL;
                const char *none[] = { NULL };
                pid_t pid = 0;

                g_assert_cmpint(bus_open(h.address, &h.bus), >=, 0);
                path = create_plugin(exe, args, sv[1], none, files, 16, &pid, &error);
                g_assert_null(path);
                g_assert_nonnull(error);
                h.bus = sd_bus_flush_close_unref(h.bus);
                h.bus = main_bus;
        }
        g_assert_false(devmgr_has_children());

        close(ro);
        close(rw);
        close(dirfd);
        close(sv[0]);
        close(sv[1]);
        g_unlink(file);
        g_rmdir(dir);
}

int main(int argc, char *argv[]) {
        int r;

        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/plugin-spawn/minimal-example-runs-jailed", test_minimal_example_runs_jailed);
        g_test_add_func("/plugin-spawn/error-exit-is-reported", test_error_exit_is_reported);
        g_test_add_func("/plugin-spawn/signal-death-is-reported", test_signal_death_is_reported);
        g_test_add_func("/plugin-spawn/forbidden-syscall-is-named", test_forbidden_syscall_is_named);
        g_test_add_func("/plugin-spawn/extra-syscall-widens-the-policy", test_extra_syscall_widens_the_policy);
        g_test_add_func("/plugin-spawn/stop-kills-after-grace-with-timeout", test_stop_kills_after_grace_with_timeout);
        g_test_add_func("/plugin-spawn/stop-of-a-plugin-that-leaves-on-sigterm",
                        test_stop_of_a_plugin_that_leaves_on_sigterm);
        g_test_add_func("/plugin-spawn/bad-arguments-are-named-errors", test_bad_arguments_are_named_errors);
        g_test_add_func("/plugin-spawn/files-reach-the-jailed-plugin-as-fds", test_files_reach_the_jailed_plugin_as_fds);
        g_test_add_func("/plugin-spawn/bad-files-are-refused-before-any-fork", test_bad_files_are_refused_before_any_fork);
        harness_start(&h);
        harness_devmgr_start(&h, &dm);
        r = g_test_run();
        harness_devmgr_stop(&dm);
        harness_stop(&h);
        return r;
}
