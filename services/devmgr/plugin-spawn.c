/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <polyvm/plugin.h>

#include "device-report.h"
#include "log.h"
#include "macro.h"
#include "plugin-check.h"
#include "plugin-spawn.h"

/* The plugin's fds after jail_close_fds(): its socket, then its files in
 * order (PLUGIN_FILES_FD, ...), then the report channel and the
 * executable, which are close-on-exec. */
#define PLUGIN_SOCKET_FD 3
#define PLUGIN_FILES_FD 4

/* "POLYVM_PLUGIN_FILES=4,5,...,18": the name, '=', then PLUGIN_FILES_MAX
 * numbers of at most 2 digits, each with a comma (or the NUL). */
#define PLUGIN_FILES_ENV_MAX (sizeof(POLYVM_PLUGIN_FILES_ENV) + 1 + 3 * PLUGIN_FILES_MAX)

/* The plugin process until its exec. It never returns. */
static _Noreturn void plugin_child(int exe_fd, const char *path, char *const *args, int sock, const int *files,
                                   size_t n_files, int report, const struct seccomp_policy *policy,
                                   const struct jail_config *jail, const char *name) {
        char *argv[PLUGIN_ARGS_MAX + 2];
        char files_env[PLUGIN_FILES_ENV_MAX];
        char *envp[] = { (char *) POLYVM_PLUGIN_FD_ENV "=3", n_files > 0 ? files_env : NULL, NULL };
        int keep[PLUGIN_FILES_MAX + 3], listener = -1, r;
        size_t n = 0, n_keep = 0, len;
        sigset_t all;

        keep[n_keep++] = sock;
        for (size_t i = 0; i < n_files; i++)
                keep[n_keep++] = files[i];
        keep[n_keep++] = report;
        keep[n_keep++] = exe_fd;

        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        log_set_context(name);
        if (jail_watch_parent(report) < 0)
                _exit(EXIT_FAILURE);
        if (jail_close_fds(keep, n_keep) < 0)
                _exit(EXIT_FAILURE);
        sock = keep[0];
        report = keep[n_files + 1];
        exe_fd = keep[n_files + 2];
        /* Its stdout is logged too (devices have none): a plugin's output is
         * what a person reads when it goes wrong. */
        if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
                _exit(EXIT_FAILURE);
        /* The fds that survive the exec; report and exe_fd are
         * close-on-exec: the plugin gets no report channel. */
        if (sock != PLUGIN_SOCKET_FD || fcntl(sock, F_SETFD, 0) < 0)
                _exit(EXIT_FAILURE);
        len = (size_t) snprintf(files_env, sizeof(files_env), "%s=", POLYVM_PLUGIN_FILES_ENV);
        for (size_t i = 0; i < n_files; i++) {
                if (keep[1 + i] != PLUGIN_FILES_FD + (int) i || fcntl(keep[1 + i], F_SETFD, 0) < 0)
                        _exit(EXIT_FAILURE);
                len += (size_t) snprintf(files_env + len, sizeof(files_env) - len, "%s%d", i > 0 ? "," : "",
                                         keep[1 + i]);
        }

        argv[n++] = (char *) path;
        for (size_t i = 0; args && args[i] && n < ELEMENTSOF(argv) - 1; i++)
                argv[n++] = args[i];
        argv[n] = NULL;

        if (device_spawn_wait_go(report) < 0)
                _exit(EXIT_FAILURE);
        if (jail_enter(jail, report) < 0)
                _exit(EXIT_FAILURE);
        if (seccomp_policy_apply(policy, &listener) < 0)
                _exit(EXIT_FAILURE);
        /* devmgr holds the listener before the plugin's first instruction. */
        r = device_report_send(report, DEVICE_REPORT_LISTENER, listener);
        if (r < 0)
                syscall(SYS_exit_group, EXIT_FAILURE);
        (void) close(listener);
        syscall(SYS_execveat, exe_fd, "", argv, envp, AT_EMPTY_PATH);
        /* 127 as a shell says "could not run it"; the reason is in the log. */
        log_error_errno(errno, "Failed to execute %s: %m", path);
        syscall(SYS_exit_group, 127);
        _exit(127); /* not reached */
}

int plugin_spawn(int exe_fd, const char *path, char *const *args, int sock, const int *files, size_t n_files,
                 const struct seccomp_policy *policy, const struct jail_config *jail, const char *name,
                 struct device_process *ret) {
        _cleanup_close_ int theirs = -1, report = -1, their_report = -1, log_read = -1, log_write = -1;
        struct jail_config c = *jail;
        int sv[2], r;
        pid_t pid;

        assert(n_files <= PLUGIN_FILES_MAX); /* plugin_check_files() said so */
        c.system_dirs = true;
        theirs = fcntl(sock, F_DUPFD_CLOEXEC, 3);
        if (theirs < 0)
                return log_error_errno(errno, "Failed to duplicate the plugin socket: %m");
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
                return log_error_errno(errno, "Failed to start a plugin process: %m");
        if (pid == 0) {
                report = safe_close(report);
                log_read = safe_close(log_read);
                if (dup2(log_write, STDERR_FILENO) < 0)
                        _exit(EXIT_FAILURE);
                log_write = safe_close(log_write);
                plugin_child(exe_fd, path, args, TAKE_FD(theirs), files, n_files, TAKE_FD(their_report), policy, &c,
                             name);
        }
        their_report = safe_close(their_report);
        log_write = safe_close(log_write);

        r = c.userns ? jail_map_ids(pid, &c) : 0;
        if (r >= 0)
                r = device_report_send(report, DEVICE_REPORT_GO, -1);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return log_error_errno(r, "Failed to release plugin process %d: %m", (int) pid);
        }

        *ret = (struct device_process) {
                .pid = pid,
                .endpoint = -1,
                .report = TAKE_FD(report),
                .log = TAKE_FD(log_read),
                .userns = c.userns,
        };
        return 0;
}
