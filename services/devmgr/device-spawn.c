/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "device-loop.h"
#include "device-report.h"
#include "device-spawn.h"
#include "log.h"
#include "macro.h"

/* In the device process: tells devmgr about the first Activate (advisory:
 * it only drives Device1.State). */
static void report_active(void *userdata) {
        int *report = userdata;

        (void) device_report_send(*report, DEVICE_REPORT_ACTIVE, -1);
        *report = safe_close(*report);
}

/* Blocks until devmgr has written the id maps; fails if it is gone. */
static int child_wait_go(int report) {
        enum device_report_type type;
        int fd, r;

        for (;;) {
                struct pollfd p = { .fd = report, .events = POLLIN };

                if (poll(&p, 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                r = device_report_recv(report, &type, &fd);
                if (r == -EAGAIN || r == -EINTR)
                        continue;
                if (r < 0)
                        return r;
                safe_close(fd);
                return type == DEVICE_REPORT_GO ? 0 : -EBADMSG;
        }
}

/* The device process: jail first, then serve. It never returns. */
static _Noreturn void device_child(const struct device_kind *kind, void *dev, const struct seccomp_policy *policy,
                                   const struct jail_config *jail, const char *name, int sock, int report) {
        int *owned[DEVICE_OWNED_FDS_MAX];
        int keep[2 + DEVICE_OWNED_FDS_MAX] = { sock, report }, listener = -1;
        size_t n_owned = kind->owned_fds ? kind->owned_fds(dev, owned) : 0;
        sigset_t all;
        int r;

        /* devmgr blocks SIGCHLD and friends for its event loop. */
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        log_set_context(name);

        /* Armed before anything else; jail_enter() arms it again once the
         * ids have changed. */
        if (jail_watch_parent(report) < 0)
                _exit(EXIT_FAILURE);
        assert(n_owned <= DEVICE_OWNED_FDS_MAX);
        for (size_t i = 0; i < n_owned; i++)
                keep[2 + i] = *owned[i];
        if (jail_close_fds(keep, 2 + n_owned) < 0)
                _exit(EXIT_FAILURE);
        sock = keep[0];
        report = keep[1];
        for (size_t i = 0; i < n_owned; i++)
                *owned[i] = keep[2 + i];
        if (child_wait_go(report) < 0)
                _exit(EXIT_FAILURE);
        if (jail_enter(jail, report) < 0)
                _exit(EXIT_FAILURE);
        if (seccomp_policy_apply(policy, &listener) < 0)
                _exit(EXIT_FAILURE);
        /* From here on, only the allowlist and the jail baseline. The
         * listener goes to devmgr before any request is read, so it is
         * never something a compromised device chose. */
        r = device_report_send(report, DEVICE_REPORT_LISTENER, listener);
        safe_close(listener);
        if (r < 0)
                syscall(SYS_exit_group, EXIT_FAILURE);

        r = device_loop_run(sock, kind, dev, report_active, &report);
        kind->destroy(dev);
        /* exit_group directly: nothing is left to flush, and libc's or a
         * sanitizer's exit path may make calls the policy does not allow. */
        syscall(SYS_exit_group, r < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
        _exit(EXIT_FAILURE); /* not reached */
}

static bool userns_refused(int error) {
        /* EPERM: a sysctl or LSM forbids it; ENOSPC/EUSERS: the count limit;
         * EINVAL: a kernel without user namespaces. */
        return error == EPERM || error == ENOSPC || error == EUSERS || error == EINVAL;
}

int device_spawn(const struct device_kind *kind, void *dev, const struct seccomp_policy *policy,
                 const struct jail_config *jail, const char *name, struct device_process *ret) {
        _cleanup_close_ int ours = -1, theirs = -1, report = -1, their_report = -1;
        struct jail_config c = *jail;
        int sv[2], r;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return log_error_errno(errno, "Failed to create the endpoint pair: %m");
        ours = sv[0];
        theirs = sv[1];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return log_error_errno(errno, "Failed to create the report pair: %m");
        report = sv[0];
        their_report = sv[1];

        /* clone() rather than fork() + unshare(): the device itself is pid 1
         * of its pid namespace and still our direct child, so we reap it and
         * its pid is the one that matters. devmgr is single-threaded, so the
         * child may run libc after a raw clone as after fork(). */
        for (;;) {
                pid = (pid_t) syscall(SYS_clone, jail_clone_flags(c.userns) | SIGCHLD, NULL, NULL, NULL, 0);
                if (pid >= 0 || !c.userns || !userns_refused(errno))
                        break;
                log_warning_errno(errno, "The host refuses a user namespace (%m); jailing %s without one.", name);
                c.userns = false;
        }
        if (pid < 0)
                return log_error_errno(errno, "Failed to start a device process: %m");
        if (pid == 0) {
                ours = safe_close(ours);
                report = safe_close(report);
                device_child(kind, dev, policy, &c, name, TAKE_FD(theirs), TAKE_FD(their_report));
        }
        their_report = safe_close(their_report);

        r = c.userns ? jail_map_ids(pid, &c) : 0;
        if (r >= 0)
                r = device_report_send(report, DEVICE_REPORT_GO, -1);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return log_error_errno(r, "Failed to release device process %d: %m", (int) pid);
        }

        *ret = (struct device_process) {
                .pid = pid,
                .endpoint = TAKE_FD(ours),
                .report = TAKE_FD(report),
                .userns = c.userns,
        };
        return 0;
}
