/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "plugin-check.h"

/* What no VM config can give a plugin: calls that reach other processes
 * (ptrace, process_vm_*, kcmp, pidfd_getfd), the kernel's own state
 * (modules, kexec, reboot, bpf, perf, keys, clocks, swap, accounting,
 * syslog), mounts and namespaces (the jail's walls), port I/O, file
 * handles that step around the mount namespace, io_uring (its operations
 * bypass seccomp), a second exec (the plugin is exec'd once, by the jail),
 * and userfaultfd (guest memory is the launcher's and memmgr's). The list
 * is documented in docs/plugins.md; keep them in step. */
static const char *const denied[] = {
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise",
        "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
        "bpf", "perf_event_open", "add_key", "request_key", "keyctl", "syslog", "acct", "quotactl",
        "quotactl_fd", "swapon", "swapoff", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
        "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
        "fspick", "mount_setattr", "setns", "unshare", "sethostname", "setdomainname", "iopl", "ioperm",
        "name_to_handle_at", "open_by_handle_at", "io_uring_setup", "io_uring_enter", "io_uring_register",
        "execve", "execveat", "userfaultfd", "seccomp", "personality", "uselib", "vm86", "vm86old",
        "lookup_dcookie", "fanotify_init", "nfsservctl", "vhangup",
};

int plugin_open_executable(const char *path, int *ret_fd, char *err, size_t errlen) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (path[0] != '/') {
                snprintf(err, errlen, "path: '%s' is not an absolute path", path);
                return -EINVAL;
        }
        if (strlen(path) >= PATH_MAX) {
                snprintf(err, errlen, "path: longer than %d bytes", PATH_MAX - 1);
                return -ENAMETOOLONG;
        }
        fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0) {
                int r = -errno;
                snprintf(err, errlen, "path: cannot open '%s': %s", path, strerror(errno));
                return r;
        }
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                snprintf(err, errlen, "path: cannot stat '%s': %s", path, strerror(errno));
                return r;
        }
        if (S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "path: '%s' is a directory, not an executable", path);
                return -EISDIR;
        }
        if (!S_ISREG(st.st_mode)) {
                snprintf(err, errlen, "path: '%s' is not a regular file", path);
                return -EACCES;
        }
        /* The jailed plugin is nobody on the host: only "others" bits count. */
        if (!(st.st_mode & S_IXOTH)) {
                snprintf(err, errlen, "path: '%s' is not executable by others (mode %04o; the plugin runs under a "
                         "uid of its own)", path, (unsigned) (st.st_mode & 07777));
                return -EACCES;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int plugin_check_args(char *const *args, char *err, size_t errlen) {
        size_t n = 0;

        for (; args && args[n]; n++) {
                if (n >= PLUGIN_ARGS_MAX) {
                        snprintf(err, errlen, "args: more than %d arguments", PLUGIN_ARGS_MAX);
                        return -E2BIG;
                }
                if (strlen(args[n]) > PLUGIN_ARG_LEN_MAX) {
                        snprintf(err, errlen, "args[%zu]: longer than %d bytes", n, PLUGIN_ARG_LEN_MAX);
                        return -E2BIG;
                }
        }
        return 0;
}

int plugin_check_socket(int fd, char *err, size_t errlen) {
        int domain = 0, type = 0;
        socklen_t l = sizeof(int);

        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) < 0) {
                int r = -errno;
                snprintf(err, errlen, "socket: fd is not a socket: %s", strerror(errno));
                return r == -EBADF ? -EBADF : -ENOTSOCK;
        }
        l = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0) {
                int r = -errno;
                snprintf(err, errlen, "socket: cannot read its type: %s", strerror(errno));
                return r;
        }
        if (domain != AF_UNIX || type != SOCK_SEQPACKET) {
                snprintf(err, errlen, "socket: must be an AF_UNIX SOCK_SEQPACKET socket (got domain %d, type %d)",
                         domain, type);
                return -EPROTOTYPE;
        }
        return 0;
}

int plugin_check_files(const int *fds, size_t n, char *err, size_t errlen) {
        if (n > PLUGIN_FILES_MAX) {
                snprintf(err, errlen, "files: %zu fds is more than the limit of %d", n, PLUGIN_FILES_MAX);
                return -E2BIG;
        }
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                int flags;

                flags = fcntl(fds[i], F_GETFL);
                if (flags < 0 || fstat(fds[i], &st) < 0) {
                        int r = -errno;
                        snprintf(err, errlen, "files[%zu]: cannot inspect the fd: %s", i, strerror(errno));
                        return r;
                }
                if (!S_ISREG(st.st_mode)) {
                        snprintf(err, errlen, "files[%zu]: must be a regular file, not %s", i,
                                 S_ISDIR(st.st_mode) ? "a directory" :
                                 S_ISSOCK(st.st_mode) ? "a socket" :
                                 S_ISFIFO(st.st_mode) ? "a pipe" :
                                 S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a special file");
                        return -EINVAL;
                }
                /* O_PATH reads as O_RDONLY but cannot be read: refuse it
                 * here rather than have the plugin fail on it later. */
                if ((flags & O_PATH) || (flags & O_ACCMODE) != O_RDONLY) {
                        snprintf(err, errlen, "files[%zu]: must be opened read-only (its flags are 0%o): a plugin "
                                 "gets no file it could write", i, (unsigned) flags);
                        return -EACCES;
                }
        }
        return 0;
}

bool plugin_syscall_denied(const char *name) {
        int nr = seccomp_syscall_resolve_name(name);

        /* By number too: no other spelling of a denied call gets through. */
        for (size_t i = 0; i < ELEMENTSOF(denied); i++)
                if (strcmp(name, denied[i]) == 0 ||
                    (nr != __NR_SCMP_ERROR && nr == seccomp_syscall_resolve_name(denied[i])))
                        return true;
        return false;
}

int plugin_policy_add_extra(struct seccomp_policy *p, char *const *names, char *err, size_t errlen) {
        size_t n = 0;
        int *l;

        for (; names && names[n]; n++) {
                if (n >= PLUGIN_EXTRA_SYSCALLS_MAX) {
                        snprintf(err, errlen, "extra_syscalls: more than %d names", PLUGIN_EXTRA_SYSCALLS_MAX);
                        return -E2BIG;
                }
                if (plugin_syscall_denied(names[n])) {
                        snprintf(err, errlen, "extra_syscalls[%zu]: '%s' is on the deny list, no config can allow it "
                                 "(docs/plugins.md)", n, names[n]);
                        return -EPERM;
                }
                if (seccomp_syscall_resolve_name(names[n]) == __NR_SCMP_ERROR) {
                        snprintf(err, errlen, "extra_syscalls[%zu]: unknown system call '%.64s'", n, names[n]);
                        return -EINVAL;
                }
        }
        if (n == 0)
                return 0;
        l = realloc(p->syscalls, (p->n + n) * sizeof(int));
        if (!l)
                return -ENOMEM;
        p->syscalls = l;
        for (size_t i = 0; i < n; i++) {
                int nr = seccomp_syscall_resolve_name(names[i]);
                if (nr >= 0) /* a pseudo-syscall is not on this architecture: nothing to allow */
                        p->syscalls[p->n++] = nr;
        }
        return 0;
}
