/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* CreatePlugin's argument checks (services/devmgr/plugin-check.h): the
 * executable, the arguments, the socket, the files and the extra system
 * calls, each refused with a message that names the argument. */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin-check.h"

static char err[512];

static void test_executable_must_be_absolute_regular_and_executable(void) {
        g_autofree char *dir = g_dir_make_tmp("plugin-check-XXXXXX", NULL);
        g_autofree char *exe = g_build_filename(dir, "plugin", NULL);
        g_autofree char *text = g_build_filename(dir, "text", NULL);
        g_autofree char *owner_only = g_build_filename(dir, "mine", NULL);
        int fd = -1;

        g_assert_true(g_file_set_contents(exe, "#!/bin/true\n", -1, NULL));
        g_assert_cmpint(chmod(exe, 0755), ==, 0);
        g_assert_true(g_file_set_contents(text, "x", -1, NULL));
        g_assert_cmpint(chmod(text, 0644), ==, 0);
        g_assert_true(g_file_set_contents(owner_only, "x", -1, NULL));
        g_assert_cmpint(chmod(owner_only, 0700), ==, 0);

        g_assert_cmpint(plugin_open_executable(exe, &fd, err, sizeof(err)), ==, 0);
        g_assert_cmpint(fd, >=, 0);
        /* O_PATH: good for execveat, for nothing else. */
        g_assert_cmpint(fcntl(fd, F_GETFL) & O_PATH, ==, O_PATH);
        g_assert_cmpint(fcntl(fd, F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
        close(fd);

        g_assert_cmpint(plugin_open_executable("bin/true", &fd, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "not an absolute path"));
        g_assert_cmpint(plugin_open_executable(dir, &fd, err, sizeof(err)), ==, -EISDIR);
        g_assert_nonnull(strstr(err, "is a directory"));
        g_assert_cmpint(plugin_open_executable(text, &fd, err, sizeof(err)), ==, -EACCES);
        g_assert_nonnull(strstr(err, "not executable"));
        g_assert_cmpint(plugin_open_executable(owner_only, &fd, err, sizeof(err)), ==, -EACCES);
        g_assert_cmpint(plugin_open_executable("/dev/null", &fd, err, sizeof(err)), ==, -EACCES);
        g_assert_nonnull(strstr(err, "not a regular file"));
        g_assert_cmpint(plugin_open_executable("/nonexistent/plugin", &fd, err, sizeof(err)), ==, -ENOENT);
        g_assert_nonnull(strstr(err, "path: cannot open '/nonexistent/plugin'"));

        g_unlink(exe);
        g_unlink(text);
        g_unlink(owner_only);
        g_rmdir(dir);
}

static void test_args_are_bounded(void) {
        char *few[] = { "a", "b", NULL };
        char *many[PLUGIN_ARGS_MAX + 2];
        char *long_one[2] = { NULL, NULL };

        g_assert_cmpint(plugin_check_args(NULL, err, sizeof(err)), ==, 0);
        g_assert_cmpint(plugin_check_args(few, err, sizeof(err)), ==, 0);
        for (size_t i = 0; i < PLUGIN_ARGS_MAX; i++)
                many[i] = "x";
        many[PLUGIN_ARGS_MAX] = NULL;
        g_assert_cmpint(plugin_check_args(many, err, sizeof(err)), ==, 0);
        many[PLUGIN_ARGS_MAX] = "one too many";
        many[PLUGIN_ARGS_MAX + 1] = NULL;
        g_assert_cmpint(plugin_check_args(many, err, sizeof(err)), ==, -E2BIG);
        g_assert_nonnull(strstr(err, "args: more than"));

        long_one[0] = g_malloc(PLUGIN_ARG_LEN_MAX + 2);
        memset(long_one[0], 'a', PLUGIN_ARG_LEN_MAX);
        long_one[0][PLUGIN_ARG_LEN_MAX] = 0;
        g_assert_cmpint(plugin_check_args(long_one, err, sizeof(err)), ==, 0);
        long_one[0][PLUGIN_ARG_LEN_MAX] = 'a';
        long_one[0][PLUGIN_ARG_LEN_MAX + 1] = 0;
        g_assert_cmpint(plugin_check_args(long_one, err, sizeof(err)), ==, -E2BIG);
        g_assert_nonnull(strstr(err, "args[0]: longer than"));
        g_free(long_one[0]);
}

static void test_socket_must_be_unix_seqpacket(void) {
        int sv[2], tcp, dgram[2], null;

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
        g_assert_cmpint(plugin_check_socket(sv[0], err, sizeof(err)), ==, 0);

        tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(tcp, >=, 0);
        g_assert_cmpint(plugin_check_socket(tcp, err, sizeof(err)), ==, -EPROTOTYPE);
        g_assert_nonnull(strstr(err, "AF_UNIX SOCK_SEQPACKET"));
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dgram), ==, 0);
        g_assert_cmpint(plugin_check_socket(dgram[0], err, sizeof(err)), ==, -EPROTOTYPE);
        /* A file: no socket at all. */
        null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        g_assert_cmpint(plugin_check_socket(null, err, sizeof(err)), ==, -ENOTSOCK);
        close(null);
        g_assert_nonnull(strstr(err, "not a socket"));
        close(sv[0]);
        close(sv[1]);
        close(tcp);
        close(dgram[0]);
        close(dgram[1]);
}

static void test_files_must_be_read_only_regular_files(void) {
        g_autofree char *dir = g_dir_make_tmp("plugin-check-XXXXXX", NULL);
        g_autofree char *file = g_build_filename(dir, "image", NULL);
        int fds[PLUGIN_FILES_MAX + 1], ro, rw, wo, path_fd, dirfd, sv[2], pipefd[2];

        g_assert_true(g_file_set_contents(file, "data", -1, NULL));
        ro = open(file, O_RDONLY | O_CLOEXEC);
        rw = open(file, O_RDWR | O_CLOEXEC);
        wo = open(file, O_WRONLY | O_CLOEXEC);
        path_fd = open(file, O_PATH | O_CLOEXEC);
        dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        g_assert_cmpint(ro, >=, 0);
        g_assert_cmpint(rw, >=, 0);
        g_assert_cmpint(wo, >=, 0);
        g_assert_cmpint(path_fd, >=, 0);
        g_assert_cmpint(dirfd, >=, 0);
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
        g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);

        /* None, one, and the limit of the same file. */
        g_assert_cmpint(plugin_check_files(NULL, 0, err, sizeof(err)), ==, 0);
        for (size_t i = 0; i <= PLUGIN_FILES_MAX; i++)
                fds[i] = ro;
        g_assert_cmpint(plugin_check_files(fds, 1, err, sizeof(err)), ==, 0);
        g_assert_cmpint(plugin_check_files(fds, PLUGIN_FILES_MAX, err, sizeof(err)), ==, 0);
        g_assert_cmpint(plugin_check_files(fds, PLUGIN_FILES_MAX + 1, err, sizeof(err)), ==, -E2BIG);
        g_assert_nonnull(strstr(err, "files: 16 fds is more than the limit of 15"));

        /* Each bad one named by its index. */
        fds[1] = rw;
        g_assert_cmpint(plugin_check_files(fds, 2, err, sizeof(err)), ==, -EACCES);
        g_assert_nonnull(strstr(err, "files[1]: must be opened read-only"));
        fds[1] = wo;
        g_assert_cmpint(plugin_check_files(fds, 2, err, sizeof(err)), ==, -EACCES);
        g_assert_nonnull(strstr(err, "files[1]: must be opened read-only"));
        fds[1] = path_fd; /* reads as O_RDONLY, but cannot be read */
        g_assert_cmpint(plugin_check_files(fds, 2, err, sizeof(err)), ==, -EACCES);
        g_assert_nonnull(strstr(err, "files[1]: must be opened read-only"));
        fds[1] = ro;
        fds[2] = dirfd;
        g_assert_cmpint(plugin_check_files(fds, 3, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "files[2]: must be a regular file, not a directory"));
        fds[2] = sv[0];
        g_assert_cmpint(plugin_check_files(fds, 3, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "files[2]: must be a regular file, not a socket"));
        fds[2] = pipefd[0];
        g_assert_cmpint(plugin_check_files(fds, 3, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "files[2]: must be a regular file, not a pipe"));
        fds[0] = 9999; /* not open */
        g_assert_cmpint(plugin_check_files(fds, 1, err, sizeof(err)), ==, -EBADF);
        g_assert_nonnull(strstr(err, "files[0]: cannot inspect the fd"));

        close(ro);
        close(rw);
        close(wo);
        close(path_fd);
        close(dirfd);
        close(sv[0]);
        close(sv[1]);
        close(pipefd[0]);
        close(pipefd[1]);
        g_unlink(file);
        g_rmdir(dir);
}

static void test_extra_syscalls_known_and_not_denied(void) {
        struct seccomp_policy p = {};
        char *ok[] = { "uname", "clone3", NULL };
        char *unknown[] = { "uname", "no_such_call", NULL };
        char *denied[] = { "uname", "ptrace", NULL };
        char *exec[] = { "execve", NULL };
        char *many[PLUGIN_EXTRA_SYSCALLS_MAX + 2];
        size_t n;

        g_assert_cmpint(seccomp_policy_parse("read\nwrite\n", "test", &p, err, sizeof(err)), ==, 0);
        n = p.n;
        g_assert_cmpint(plugin_policy_add_extra(&p, unknown, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "extra_syscalls[1]: unknown system call 'no_such_call'"));
        g_assert_cmpuint(p.n, ==, n); /* unchanged on failure */
        g_assert_cmpint(plugin_policy_add_extra(&p, denied, err, sizeof(err)), ==, -EPERM);
        g_assert_nonnull(strstr(err, "extra_syscalls[1]: 'ptrace' is on the deny list"));
        g_assert_cmpint(plugin_policy_add_extra(&p, exec, err, sizeof(err)), ==, -EPERM);
        g_assert_cmpuint(p.n, ==, n);

        g_assert_cmpint(plugin_policy_add_extra(&p, ok, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(p.n, ==, n + 2);
        g_assert_cmpint(p.syscalls[n], ==, seccomp_syscall_resolve_name("uname"));
        g_assert_cmpint(plugin_policy_add_extra(&p, NULL, err, sizeof(err)), ==, 0);

        for (size_t i = 0; i <= PLUGIN_EXTRA_SYSCALLS_MAX; i++)
                many[i] = "uname";
        many[PLUGIN_EXTRA_SYSCALLS_MAX + 1] = NULL;
        g_assert_cmpint(plugin_policy_add_extra(&p, many, err, sizeof(err)), ==, -E2BIG);
        seccomp_policy_done(&p);
}

static void test_deny_list_covers_the_walls(void) {
        static const char *const walls[] = { "ptrace", "mount", "umount2", "pivot_root", "kexec_load", "bpf",
                                             "init_module", "finit_module", "setns", "unshare", "io_uring_setup",
                                             "process_vm_writev", "perf_event_open", "execveat" };

        for (size_t i = 0; i < G_N_ELEMENTS(walls); i++)
                g_assert_true(plugin_syscall_denied(walls[i]));
        g_assert_false(plugin_syscall_denied("uname"));
        g_assert_false(plugin_syscall_denied("clone3"));
}

/* The shipped policy parses and allows no denied call but the jail's exec. */
static void test_shipped_policy_denies_nothing_of_the_list(void) {
        g_autofree char *path = g_build_filename(POLYVM_DEVMGR_SECCOMP_SRC, "plugin.policy", NULL);
        struct seccomp_policy p = {};

        g_assert_cmpint(seccomp_policy_load(POLYVM_DEVMGR_SECCOMP_SRC, "plugin", &p, err, sizeof(err)), ==, 0);
        for (size_t i = 0; i < p.n; i++) {
                g_autofree char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, p.syscalls[i]);

                g_assert_nonnull(name);
                if (strcmp(name, "execveat") != 0 && plugin_syscall_denied(name))
                        g_error("%s allows %s, which is on the deny list", path, name);
        }
        seccomp_policy_done(&p);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/plugin-check/executable-must-be-absolute-regular-and-executable",
                        test_executable_must_be_absolute_regular_and_executable);
        g_test_add_func("/plugin-check/args-are-bounded", test_args_are_bounded);
        g_test_add_func("/plugin-check/socket-must-be-unix-seqpacket", test_socket_must_be_unix_seqpacket);
        g_test_add_func("/plugin-check/files-must-be-read-only-regular-files",
                        test_files_must_be_read_only_regular_files);
        g_test_add_func("/plugin-check/extra-syscalls-known-and-not-denied", test_extra_syscalls_known_and_not_denied);
        g_test_add_func("/plugin-check/deny-list-covers-the-walls", test_deny_list_covers_the_walls);
        g_test_add_func("/plugin-check/shipped-policy-denies-nothing-of-the-list",
                        test_shipped_policy_denies_nothing_of_the_list);
        return g_test_run();
}
