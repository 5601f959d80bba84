/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Seccomp policy files (services/devmgr/seccomp-policy.c): parsing with
 * errors that name file and line, the shipped policies, and that a call
 * outside the allowlist kills the whole process with SIGSYS. */
#include <errno.h>
#include <glib.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomp-policy.h"

static void test_parse_names_and_comments(void) {
        struct seccomp_policy p = {};
        char err[256] = "";

        g_assert_cmpint(seccomp_policy_parse("# comment\n\n  read  \nwrite # trailing\n\tclose\r\n", "t.policy", &p,
                                             err, sizeof(err)), ==, 0);
        g_assert_cmpuint(p.n, ==, 3);
        g_assert_cmpint(p.syscalls[0], ==, SCMP_SYS(read));
        g_assert_cmpint(p.syscalls[1], ==, SCMP_SYS(write));
        g_assert_cmpint(p.syscalls[2], ==, SCMP_SYS(close));
        seccomp_policy_done(&p);
        g_assert_null(p.syscalls);
        /* No final newline. */
        g_assert_cmpint(seccomp_policy_parse("exit_group", "t.policy", &p, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(p.n, ==, 1);
        seccomp_policy_done(&p);
}

static void test_parse_errors_name_file_and_line(void) {
        struct seccomp_policy p = {};
        char err[256] = "";

        g_assert_cmpint(seccomp_policy_parse("read\n# x\nfrobnicate\n", "x.policy", &p, err, sizeof(err)), ==, -EINVAL);
        g_assert_cmpstr(err, ==, "x.policy:3: unknown system call 'frobnicate'");
        g_assert_cmpint(seccomp_policy_parse("read write\n", "x.policy", &p, err, sizeof(err)), ==, -EINVAL);
        g_assert_cmpstr(err, ==, "x.policy:1: expected one system call name");
        g_assert_cmpint(seccomp_policy_parse("# nothing\n\n", "x.policy", &p, err, sizeof(err)), ==, -EINVAL);
        g_assert_cmpstr(err, ==, "x.policy: allows no system call at all");
        {
                g_autofree char *longname = g_strnfill(200, 'a');
                g_assert_cmpint(seccomp_policy_parse(longname, "x.policy", &p, err, sizeof(err)), ==, -EINVAL);
        }
        g_assert_null(p.syscalls);
}

/* The policies shipped for every kind parse (from the source tree). */
static void test_shipped_policies_parse(void) {
        static const char *const kinds[] = { "serial", "rtc" };
        const char *src = POLYVM_DEVMGR_SECCOMP_SRC;

        for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
                struct seccomp_policy p = {};
                char err[256] = "";
                int r = seccomp_policy_load(src, kinds[i], &p, err, sizeof(err));
                if (r < 0)
                        g_error("%s: %s", kinds[i], err);
                g_assert_cmpuint(p.n, >, 5);
                seccomp_policy_done(&p);
        }
}

static void test_load_missing_file(void) {
        struct seccomp_policy p = {};
        char err[256] = "";
        g_assert_cmpint(seccomp_policy_load("/nonexistent", "serial", &p, err, sizeof(err)), ==, -ENOENT);
        g_assert_nonnull(strstr(err, "/nonexistent/serial.policy"));
}

/* A child that calls something outside its allowlist dies of SIGSYS, and an
 * allowed call works. */
static void test_violation_kills_with_sigsys(void) {
        struct seccomp_policy p = {};
        char err[256] = "";
        int status;
        pid_t pid;

        g_assert_cmpint(seccomp_policy_parse("write\nexit_group\nexit\nbrk\nmmap\nmunmap\n", "t", &p, err,
                                             sizeof(err)), ==, 0);
        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                if (seccomp_policy_apply(&p) < 0)
                        _exit(2);
                (void) syscall(SYS_getppid); /* not allowed */
                /* Raw exit_group: sanitizer runtimes hook _exit() with more calls. */
                syscall(SYS_exit_group, 0);
        }
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFSIGNALED(status));
        g_assert_cmpint(WTERMSIG(status), ==, SIGSYS);

        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                if (seccomp_policy_apply(&p) < 0)
                        _exit(2);
                syscall(SYS_exit_group, 7); /* allowed */
        }
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 7);
        seccomp_policy_done(&p);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/seccomp-policy/parse-names-and-comments", test_parse_names_and_comments);
        g_test_add_func("/seccomp-policy/parse-errors-name-file-and-line", test_parse_errors_name_file_and_line);
        g_test_add_func("/seccomp-policy/shipped-policies-parse", test_shipped_policies_parse);
        g_test_add_func("/seccomp-policy/load-missing-file", test_load_missing_file);
        g_test_add_func("/seccomp-policy/violation-kills-with-sigsys", test_violation_kills_with_sigsys);
        return g_test_run();
}
