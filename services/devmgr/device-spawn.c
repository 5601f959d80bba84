/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "device-loop.h"
#include "device-spawn.h"
#include "jail.h"
#include "log.h"

/* The device process: jail first, then serve. It never returns. */
static _Noreturn void device_child(const struct device_kind *kind, void *dev, const struct seccomp_policy *policy,
                                   const char *name, int sock) {
        sigset_t all;
        int r;

        /* devmgr blocks SIGCHLD and friends for its event loop. */
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        log_set_context(name);

        sock = jail_close_fds(sock);
        if (sock < 0)
                _exit(EXIT_FAILURE);
        r = jail_enter();
        if (r < 0)
                _exit(EXIT_FAILURE);
        r = seccomp_policy_apply(policy);
        if (r < 0)
                _exit(EXIT_FAILURE);

        r = device_loop_run(sock, kind, dev);
        kind->destroy(dev);
        /* exit_group directly: nothing is left to flush, and libc's or a
         * sanitizer's exit path may make calls the policy does not allow. */
        syscall(SYS_exit_group, r < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
        _exit(EXIT_FAILURE); /* not reached */
}

int device_spawn(const struct device_kind *kind, void *dev, const struct seccomp_policy *policy, const char *name,
                 int *ret_endpoint, pid_t *ret_pid) {
        _cleanup_close_ int ours = -1, theirs = -1;
        int sv[2];
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return log_error_errno(errno, "Failed to create the endpoint pair: %m");
        ours = sv[0];
        theirs = sv[1];

        /* clone() rather than fork() + unshare(): the device itself is pid 1
         * of its pid namespace and still our direct child, so we reap it and
         * its pid is the one that matters. devmgr is single-threaded, so the
         * child may run libc after a raw clone as after fork(). */
        pid = (pid_t) syscall(SYS_clone, JAIL_CLONE_FLAGS | SIGCHLD, NULL, NULL, NULL, 0);
        if (pid < 0)
                return log_error_errno(errno, "Failed to start a device process: %m");
        if (pid == 0) {
                ours = safe_close(ours);
                device_child(kind, dev, policy, name, TAKE_FD(theirs));
        }

        *ret_endpoint = TAKE_FD(ours);
        *ret_pid = pid;
        return 0;
}
