/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "device-loop.h"
#include "device-memory.h"
#include "device-report.h"
#include "device-spawn.h"
#include "log.h"
#include "macro.h"

/* In the device process: tells devmgr about the first Activate (advisory:
 * it only drives Device1.State). The channel stays open: the uffd of guest
 * memory (device-memory.h) may come later. */
static void report_active(void *userdata) {
        int *report = userdata;

        (void) device_report_send(*report, DEVICE_REPORT_ACTIVE, -1);
}

int device_spawn_wait_go(int report) {
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

/* RLIMIT_FSIZE for the device: the size of the largest regular file among
 * the fds devmgr opened for it (a disk image), so it can write anywhere in
 * it but never grow it; 0 without one. Writes to block devices, taps and
 * sockets are not subject to it. */
static uint64_t owned_files_size(int *const owned[], size_t n) {
        uint64_t max = 0;

        for (size_t i = 0; i < n; i++) {
                struct stat st;

                if (fstat(*owned[i], &st) == 0 && S_ISREG(st.st_mode) && (uint64_t) st.st_size > max)
                        max = (uint64_t) st.st_size;
        }
        return max;
}

/* The device process: jail first, then serve. It never returns. */
static _Noreturn void device_child(const struct device_kind *kind, void *dev, const struct seccomp_policy *policy,
                                   const struct jail_config *jail, const char *name, int sock, int report,
                                   int userfaultfd_dev) {
        int *owned[DEVICE_OWNED_FDS_MAX];
        int keep[3 + DEVICE_OWNED_FDS_MAX] = { sock, report }, listener = -1;
        size_t n_owned = kind->owned_fds ? kind->owned_fds(dev, owned) : 0, n_keep;
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
        n_keep = 2 + n_owned;
        if (userfaultfd_dev >= 0)
                keep[n_keep++] = userfaultfd_dev;
        if (jail_close_fds(keep, n_keep) < 0)
                _exit(EXIT_FAILURE);
        sock = keep[0];
        report = keep[1];
        for (size_t i = 0; i < n_owned; i++)
                *owned[i] = keep[2 + i];
        device_memory_setup(userfaultfd_dev >= 0 ? keep[n_keep - 1] : -1, report);
        device_report_set_own(report);
        if (device_spawn_wait_go(report) < 0)
                _exit(EXIT_FAILURE);
        {
                struct jail_config c = *jail;

                c.rlimit_fsize = owned_files_size(owned, n_owned);
                if (jail_enter(&c, report) < 0)
                        _exit(EXIT_FAILURE);
        }
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

pid_t device_spawn_clone(struct jail_config *c, const char *name) {
        pid_t pid;

        /* clone() rather than fork() + unshare(): the process is pid 1 of
         * its pid namespace and still our direct child, so we reap it and
         * its pid is the one that matters. devmgr is single-threaded, so the
         * child may run libc after a raw clone as after fork(). */
        for (;;) {
                pid = (pid_t) syscall(SYS_clone, jail_clone_flags(c->userns) | SIGCHLD, NULL, NULL, NULL, 0);
                if (pid >= 0 || !c->userns || !userns_refused(errno))
                        return pid;
                log_warning_errno(errno, "The host refuses a user namespace (%m); jailing %s without one.", name);
                c->userns = false;
        }
}

int device_spawn(const struct device_kind *kind, void *dev, const struct seccomp_policy *policy,
                 const struct jail_config *jail, const char *name, struct device_process *ret) {
        _cleanup_close_ int ours = -1, theirs = -1, report = -1, their_report = -1, userfaultfd_dev = -1;
        _cleanup_close_ int log_read = -1, log_write = -1;
        struct jail_config c = *jail;
        int sv[2], r;
        pid_t pid;

        /* A jailed process cannot call userfaultfd(2) (no capabilities in
         * its own user namespace): it makes its uffd from this fd, opened
         * with our rights. Without it the device runs unguarded. */
        if (kind->maps_guest_memory) {
                userfaultfd_dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
                if (userfaultfd_dev < 0)
                        log_warning_errno(errno, "Failed to open /dev/userfaultfd for %s, its guest memory will not "
                                          "be guarded for swap: %m", name);
        }

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return log_error_errno(errno, "Failed to create the endpoint pair: %m");
        ours = sv[0];
        theirs = sv[1];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return log_error_errno(errno, "Failed to create the report pair: %m");
        report = sv[0];
        their_report = sv[1];
        if (pipe2(sv, O_CLOEXEC) < 0)
                return log_error_errno(errno, "Failed to create the log pipe: %m");
        log_read = sv[0];
        log_write = sv[1];

        pid = device_spawn_clone(&c, name);
        if (pid < 0)
                return log_error_errno(errno, "Failed to start a device process: %m");
        if (pid == 0) {
                ours = safe_close(ours);
                report = safe_close(report);
                log_read = safe_close(log_read);
                /* Its log goes to devmgr through a pipe (device-log.h). */
                if (dup2(log_write, STDERR_FILENO) < 0)
                        _exit(EXIT_FAILURE);
                log_write = safe_close(log_write);
                device_child(kind, dev, policy, &c, name, TAKE_FD(theirs), TAKE_FD(their_report),
                             TAKE_FD(userfaultfd_dev));
        }
        their_report = safe_close(their_report);
        userfaultfd_dev = safe_close(userfaultfd_dev);
        log_write = safe_close(log_write);

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
                .log = TAKE_FD(log_read),
                .userns = c.userns,
        };
        return 0;
}
