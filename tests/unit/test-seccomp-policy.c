/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Seccomp policy files (services/devmgr/seccomp-policy.c): parsing with
 * errors that name file and line, the shipped policies, and that a call
 * outside the allowlist never runs and is reported, by number, to the
 * holder of the filter's listener. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <glib.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "device-report.h"
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

/* Every policy shipped in the source tree parses: each *.policy file there,
 * so a kind added later is checked without touching this test. */
static void test_shipped_policies_parse(void) {
        const char *src = POLYVM_DEVMGR_SECCOMP_SRC, *name;
        g_autoptr(GDir) dir = g_dir_open(src, 0, NULL);
        unsigned n = 0;

        g_assert_nonnull(dir);
        while ((name = g_dir_read_name(dir))) {
                g_autofree char *kind = NULL;
                struct seccomp_policy p = {};
                char err[256] = "";
                int r;

                if (!g_str_has_suffix(name, ".policy"))
                        continue;
                kind = g_strndup(name, strlen(name) - strlen(".policy"));
                r = seccomp_policy_load(src, kind, &p, err, sizeof(err));
                if (r < 0)
                        g_error("%s: %s", kind, err);
                g_assert_cmpuint(p.n, >, 5);
                seccomp_policy_done(&p);
                n++;
        }
        /* serial, rtc, echo, jailcheck, memcheck and the virtio kinds at least */
        g_assert_cmpuint(n, >=, 10);
}

static void test_load_missing_file(void) {
        struct seccomp_policy p = {};
        char err[256] = "";
        g_assert_cmpint(seccomp_policy_load("/nonexistent", "serial", &p, err, sizeof(err)), ==, -ENOENT);
        g_assert_nonnull(strstr(err, "/nonexistent/serial.policy"));
}

/* Applies p in a child, hands the listener to the parent, then makes
 * call(). Returns the child's pid and the listener in *listener. */
static pid_t spawn_filtered(const struct seccomp_policy *p, void (*call)(void), int *listener) {
        int sv[2], fd = -1;
        enum device_report_type type;
        pid_t pid;

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                int l;
                if (seccomp_policy_apply(p, &l) < 0 || device_report_send(sv[1], DEVICE_REPORT_LISTENER, l) < 0)
                        syscall(SYS_exit_group, 2);
                call();
                /* Raw exit_group: sanitizer runtimes hook _exit() with more calls. */
                syscall(SYS_exit_group, 0);
        }
        close(sv[1]);
        {
                struct pollfd pfd = { .fd = sv[0], .events = POLLIN };
                g_assert_cmpint(poll(&pfd, 1, 5000), ==, 1);
        }
        g_assert_cmpint(device_report_recv(sv[0], &type, &fd), ==, 0);
        g_assert_cmpint(type, ==, DEVICE_REPORT_LISTENER);
        g_assert_cmpint(fd, >=, 0);
        close(sv[0]);
        *listener = fd;
        return pid;
}

static char victim[64];

static void call_unlink(void) {
        (void) syscall(SYS_unlink, victim); /* not allowed */
}

static void call_exit_7(void) {
        syscall(SYS_exit_group, 7); /* the jail baseline allows it */
}

/* A call outside the allowlist never runs: the thread stops, the listener
 * names the call (from the kernel, not from the child), and the holder's
 * kill ends the process. */
static void test_violation_is_reported_and_never_runs(void) {
        struct seccomp_policy p = {};
        struct seccomp_notif *req = NULL;
        struct seccomp_notif_resp *resp = NULL;
        char err[256] = "";
        int status, listener, fd;
        g_autofree char *name = NULL;
        pid_t pid;

        snprintf(victim, sizeof(victim), "/tmp/polyvm-seccomp-test-%d", (int) getpid());
        fd = open(victim, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        g_assert_cmpint(fd, >=, 0);
        close(fd);

        g_assert_cmpint(seccomp_policy_parse("write\nmmap\n", "t", &p, err, sizeof(err)), ==, 0);
        pid = spawn_filtered(&p, call_unlink, &listener);
        g_assert_cmpint(seccomp_notify_alloc(&req, &resp), ==, 0);
        g_assert_cmpint(seccomp_notify_receive(listener, req), ==, 0);
        g_assert_cmpint(req->pid, ==, pid);
        g_assert_cmpint(req->data.nr, ==, SCMP_SYS(unlink));
        name = seccomp_policy_syscall_name(req->data.arch, req->data.nr);
        g_assert_cmpstr(name, ==, "unlink (system call 87)");
        seccomp_notify_free(req, resp);
        /* Still blocked in the call: the file is there. */
        g_assert_true(g_file_test(victim, G_FILE_TEST_EXISTS));
        g_assert_cmpint(kill(pid, SIGKILL), ==, 0);
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFSIGNALED(status));
        g_assert_cmpint(WTERMSIG(status), ==, SIGKILL);
        g_assert_true(g_file_test(victim, G_FILE_TEST_EXISTS));
        close(listener);
        unlink(victim);

        /* exit_group is not in the file but in the jail baseline. */
        pid = spawn_filtered(&p, call_exit_7, &listener);
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 7);
        close(listener);
        seccomp_policy_done(&p);
}

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

static int userfaultfd_dev = -1;

/* What device_memory_map() does under the filter; exits 9 if it worked. */
static void call_make_uffd(void) {
        struct uffdio_api api = { .api = UFFD_API };
        int uffd = ioctl(userfaultfd_dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);

        syscall(SYS_exit_group, uffd >= 0 && ioctl(uffd, UFFDIO_API, &api) == 0 ? 9 : 3);
}

static void call_other_ioctl(void) {
        int n;
        (void) ioctl(userfaultfd_dev, FIONREAD, &n);
        syscall(SYS_exit_group, 0);
}

/* The child must stop in ioctl (reported) rather than run it. */
static void expect_ioctl_violation(const struct seccomp_policy *p, void (*call)(void)) {
        struct seccomp_notif *req = NULL;
        struct seccomp_notif_resp *resp = NULL;
        int status, listener;
        pid_t pid;

        pid = spawn_filtered(p, call, &listener);
        g_assert_cmpint(seccomp_notify_alloc(&req, &resp), ==, 0);
        g_assert_cmpint(seccomp_notify_receive(listener, req), ==, 0);
        g_assert_cmpint(req->data.nr, ==, SCMP_SYS(ioctl));
        seccomp_notify_free(req, resp);
        g_assert_cmpint(kill(pid, SIGKILL), ==, 0);
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFSIGNALED(status));
        close(listener);
}

/* Kinds that map guest memory may make their uffd under the filter, with
 * exactly the userfaultfd requests; no other ioctl, and no kind without
 * uffd_ioctls. */
static void test_uffd_ioctls_only_when_asked_and_only_those(void) {
        struct seccomp_policy p = {};
        char err[256] = "";
        int status, listener;
        pid_t pid;

        userfaultfd_dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (userfaultfd_dev < 0) {
                /* Not something to pass silently: say why. */
                g_test_fail_printf("cannot open /dev/userfaultfd: %s", strerror(errno));
                return;
        }
        g_assert_cmpint(seccomp_policy_parse("write\nmmap\n", "t", &p, err, sizeof(err)), ==, 0);
        expect_ioctl_violation(&p, call_make_uffd);

        p.uffd_ioctls = true;
        pid = spawn_filtered(&p, call_make_uffd, &listener);
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 9);
        close(listener);
        expect_ioctl_violation(&p, call_other_ioctl);

        seccomp_policy_done(&p);
        close(userfaultfd_dev);
}

static void test_syscall_names(void) {
        g_autofree char *a = seccomp_policy_syscall_name(SCMP_ARCH_X86_64, 101);
        g_autofree char *b = seccomp_policy_syscall_name(SCMP_ARCH_X86_64, 99999);
        g_assert_cmpstr(a, ==, "ptrace (system call 101)");
        g_assert_nonnull(strstr(b, "system call 99999"));
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/seccomp-policy/parse-names-and-comments", test_parse_names_and_comments);
        g_test_add_func("/seccomp-policy/parse-errors-name-file-and-line", test_parse_errors_name_file_and_line);
        g_test_add_func("/seccomp-policy/shipped-policies-parse", test_shipped_policies_parse);
        g_test_add_func("/seccomp-policy/load-missing-file", test_load_missing_file);
        g_test_add_func("/seccomp-policy/violation-is-reported-and-never-runs", test_violation_is_reported_and_never_runs);
        g_test_add_func("/seccomp-policy/syscall-names", test_syscall_names);
        g_test_add_func("/seccomp-policy/uffd-ioctls-only-when-asked-and-only-those",
                        test_uffd_ioctls_only_when_asked_and_only_those);
        return g_test_run();
}
