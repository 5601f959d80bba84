/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What CreatePlugin takes from its caller, checked in devmgr before any
 * fork (docs/plugins.md, "Starting a plugin"): the executable (opened here,
 * exec'd later through the fd, so no path is resolved inside the jail),
 * its arguments, its main socket, the files it may read (fds the caller
 * opened, docs/plugins.md "Files for a jailed plugin"), and the system
 * calls a VM config adds to the plugin's seccomp policy, which never
 * include the deny list below.
 * Each check writes a message naming the argument and the value to err. */

#include <stdbool.h>
#include <stddef.h>

#include "seccomp-policy.h"

#define PLUGIN_ARGS_MAX 64          /* arguments after argv[0] */
#define PLUGIN_ARG_LEN_MAX 4096     /* bytes of one argument */
#define PLUGIN_EXTRA_SYSCALLS_MAX 64
/* Files, the plugin's fds 4..: with the socket, 16 fds in one message,
 * dbus-daemon's default max_message_unix_fds (a 17th gets the sender
 * disconnected). */
#define PLUGIN_FILES_MAX 15

/* Opens path (absolute, no ".." needed: it is the caller's own choice) with
 * O_PATH|O_CLOEXEC and checks through the fd that it is a regular file
 * that anybody may execute (the plugin runs under a uid of its own).
 * -EINVAL for a relative path, -EISDIR, -EACCES, or open()'s error. */
int plugin_open_executable(const char *path, int *ret_fd, char *err, size_t errlen);

/* At most PLUGIN_ARGS_MAX arguments of at most PLUGIN_ARG_LEN_MAX bytes. */
int plugin_check_args(char *const *args, char *err, size_t errlen);

/* An AF_UNIX SOCK_SEQPACKET socket, else -ENOTSOCK / -EPROTOTYPE. */
int plugin_check_socket(int fd, char *err, size_t errlen);

/* At most PLUGIN_FILES_MAX fds, each of a regular file opened read-only
 * (not O_PATH, not for writing): the plugin may read them and nothing
 * more. -E2BIG, -EACCES for a writable or O_PATH fd, -EINVAL for
 * anything but a regular file; the message names files[i]. */
int plugin_check_files(const int *fds, size_t n, char *err, size_t errlen);

/* Whether name is on the deny list (ptrace, mount, bpf, ...). */
bool plugin_syscall_denied(const char *name);

/* Adds names (each known to libseccomp, not denied, at most
 * PLUGIN_EXTRA_SYSCALLS_MAX) to p. -EINVAL for an unknown name, -EPERM
 * for a denied one; p is unchanged on failure. */
int plugin_policy_add_extra(struct seccomp_policy *p, char *const *names, char *err, size_t errlen);
