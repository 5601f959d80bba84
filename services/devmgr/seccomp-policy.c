/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "seccomp-policy.h"

#define POLICY_MAX_SIZE (64 * 1024)

void seccomp_policy_done(struct seccomp_policy *p) {
        free(p->syscalls);
        p->syscalls = NULL;
        p->n = 0;
}

int seccomp_policy_parse(const char *text, const char *where, struct seccomp_policy *ret, char *err, size_t errlen) {
        struct seccomp_policy p = {};
        unsigned line = 0;

        for (const char *s = text; *s;) {
                const char *eol = strchrnul(s, '\n'), *b = s, *e;
                char name[64];
                int nr;

                line++;
                e = memchr(s, '#', (size_t) (eol - s)) ?: eol;
                while (b < e && strchr(" \t\r", *b))
                        b++;
                while (e > b && strchr(" \t\r", e[-1]))
                        e--;
                s = *eol ? eol + 1 : eol;
                if (b == e)
                        continue;

                if ((size_t) (e - b) >= sizeof(name) || memchr(b, ' ', (size_t) (e - b)) ||
                    memchr(b, '\t', (size_t) (e - b))) {
                        snprintf(err, errlen, "%s:%u: expected one system call name", where, line);
                        seccomp_policy_done(&p);
                        return -EINVAL;
                }
                memcpy(name, b, (size_t) (e - b));
                name[e - b] = 0;
                nr = seccomp_syscall_resolve_name(name);
                if (nr == __NR_SCMP_ERROR) {
                        snprintf(err, errlen, "%s:%u: unknown system call '%s'", where, line, name);
                        seccomp_policy_done(&p);
                        return -EINVAL;
                }
                if (nr < 0)
                        continue; /* a pseudo-syscall: not on this architecture */

                int *n = realloc(p.syscalls, (p.n + 1) * sizeof(int));
                if (!n) {
                        seccomp_policy_done(&p);
                        return -ENOMEM;
                }
                p.syscalls = n;
                p.syscalls[p.n++] = nr;
        }
        if (p.n == 0) {
                snprintf(err, errlen, "%s: allows no system call at all", where);
                return -EINVAL;
        }
        *ret = p;
        return 0;
}

int seccomp_policy_dir(char **ret) {
        char exe[PATH_MAX], *slash, *dir;
        struct stat st;
        ssize_t n;

        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n > 0) {
                exe[n] = 0;
                slash = strrchr(exe, '/');
                if (slash) {
                        *slash = 0;
                        if (asprintf(&dir, "%s/seccomp", exe) < 0)
                                return -ENOMEM;
                        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
                                *ret = dir;
                                return 0;
                        }
                        free(dir);
                }
        }
        dir = strdup(POLYVM_SECCOMP_DIR);
        if (!dir)
                return -ENOMEM;
        *ret = dir;
        return 0;
}

int seccomp_policy_load(const char *dir, const char *name, struct seccomp_policy *ret, char *err, size_t errlen) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        FILE *f;
        size_t n;

        if (asprintf(&path, "%s/%s.policy", dir, name) < 0)
                return -ENOMEM;
        f = fopen(path, "re");
        if (!f) {
                int r = -errno;
                snprintf(err, errlen, "%s: %s", path, strerror(errno));
                return r;
        }
        text = malloc(POLICY_MAX_SIZE + 1);
        if (!text) {
                fclose(f);
                return -ENOMEM;
        }
        n = fread(text, 1, POLICY_MAX_SIZE + 1, f);
        fclose(f);
        if (n > POLICY_MAX_SIZE) {
                snprintf(err, errlen, "%s: larger than %d bytes", path, POLICY_MAX_SIZE);
                return -EFBIG;
        }
        text[n] = 0;
        if (strlen(text) != n) {
                snprintf(err, errlen, "%s: contains a NUL byte", path);
                return -EINVAL;
        }
        return seccomp_policy_parse(text, path, ret, err, errlen);
}

/* What the jail itself calls once the filter is on (hand the listener to
 * devmgr, report Activate, free libseccomp's context, leave), whatever the
 * kind's file says: a call missing here would block the device for good
 * before devmgr holds the listener. */
static const char *const jail_baseline[] = { "sendmsg", "close", "brk", "munmap", "exit_group" };

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

/* ioctl() with exactly these requests (the kernel reads the request as 32
 * bits, so only those are compared): whatever fd it is on, none of them
 * does anything but on a userfaultfd or /dev/userfaultfd. */
static int allow_uffd_ioctls(scmp_filter_ctx ctx) {
        static const uint32_t requests[] = { USERFAULTFD_IOC_NEW, UFFDIO_API, UFFDIO_REGISTER };

        for (size_t i = 0; i < ELEMENTSOF(requests); i++) {
                int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                         SCMP_A1(SCMP_CMP_MASKED_EQ, UINT32_MAX, requests[i]));
                if (r < 0 && r != -EEXIST)
                        return r;
        }
        return 0;
}

int seccomp_policy_apply(const struct seccomp_policy *p, int *ret_listener) {
        scmp_filter_ctx ctx;
        int fd, r;

        /* NOTIFY: a call outside the list never runs; the calling thread
         * stops and the kernel tells whoever holds the listener (devmgr)
         * which call it was, and devmgr kills the process. The syscall number
         * comes from the kernel, not from the device. */
        ctx = seccomp_init(SCMP_ACT_NOTIFY);
        if (!ctx)
                return log_error_errno(EOPNOTSUPP, "Failed to create a seccomp filter with user notification: %m");
        /* System calls of another ABI (i386 through int 0x80) are killed
         * outright by the kernel. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0) {
                seccomp_release(ctx);
                return log_error_errno(r, "Failed to set the seccomp bad-arch action: %m");
        }
        for (size_t i = 0; i < p->n + ELEMENTSOF(jail_baseline); i++) {
                int nr = i < p->n ? p->syscalls[i] : seccomp_syscall_resolve_name(jail_baseline[i - p->n]);

                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
                /* -EEXIST: the file lists it too. */
                if (r < 0 && r != -EEXIST) {
                        seccomp_release(ctx);
                        return log_error_errno(r, "Failed to allow system call %d: %m", nr);
                }
        }
        if (p->uffd_ioctls) {
                r = allow_uffd_ioctls(ctx);
                if (r < 0) {
                        seccomp_release(ctx);
                        return log_error_errno(r, "Failed to allow the userfaultfd ioctls: %m");
                }
        }
        r = seccomp_load(ctx);
        if (r < 0) {
                seccomp_release(ctx);
                return log_error_errno(r, "Failed to load seccomp filter: %m");
        }
        fd = seccomp_notify_fd(ctx);
        seccomp_release(ctx);
        if (fd < 0)
                return log_error_errno(fd, "Failed to get the seccomp listener: %m");
        *ret_listener = fd;
        return 0;
}

char *seccomp_policy_syscall_name(uint32_t arch, int nr) {
        char *name = seccomp_syscall_resolve_num_arch(arch, nr), *s = NULL;
        int r;

        if (name)
                r = asprintf(&s, "%s (system call %d)", name, nr);
        else
                r = asprintf(&s, "system call %d of architecture 0x%x", nr, arch);
        free(name);
        return r < 0 ? NULL : s;
}
