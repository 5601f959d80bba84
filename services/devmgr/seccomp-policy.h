/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A device kind's seccomp allowlist is a text file, seccomp/<kind>.policy:
 * one system call name per line, '#' starts a comment. devmgr reads and
 * checks it before forking, so a broken policy is an error on the bus, not a
 * dead device; the child only applies the resolved numbers. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct seccomp_policy {
        int *syscalls;
        size_t n;
        /* Allow the ioctls that make and register a userfaultfd from an
         * open /dev/userfaultfd (USERFAULTFD_IOC_NEW, UFFDIO_API,
         * UFFDIO_REGISTER), and no other ioctl: set by devmgr for kinds
         * that map guest memory (device-memory.h), not by the file, whose
         * names cannot say which ioctls. */
        bool uffd_ioctls;
};

void seccomp_policy_done(struct seccomp_policy *p);

/* Parses policy text; where names the file in error messages. */
int seccomp_policy_parse(const char *text, const char *where, struct seccomp_policy *ret, char *err, size_t errlen);

/* The directory policies are read from: seccomp/ next to the running binary
 * if it exists (the build tree), else the installed one. */
int seccomp_policy_dir(char **ret);

/* Reads and parses <dir>/<name>.policy. */
int seccomp_policy_load(const char *dir, const char *name, struct seccomp_policy *ret, char *err, size_t errlen);

/* Installs the allowlist (plus the few calls the jail itself needs) on the
 * calling process. Anything else does not run: the thread stops and the
 * filter's listener (returned, to be handed to devmgr) reports the call;
 * the listener's holder kills the process. Calls of another architecture
 * are killed by the kernel directly. */
int seccomp_policy_apply(const struct seccomp_policy *p, int *ret_listener);

/* "ptrace (system call 101)" for a violation reported by the listener;
 * malloc'd, NULL on ENOMEM. */
char *seccomp_policy_syscall_name(uint32_t arch, int nr);
