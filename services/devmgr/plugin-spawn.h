/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A plugin process (docs/plugins.md): an executable chosen by the VM's
 * config, started in a device's jail (namespaces, ids, no capabilities,
 * no new privileges, rlimits, every fd closed) with /usr, /lib and /lib64
 * read-only in its root for its loader and libraries, then its seccomp
 * policy (seccomp/plugin.policy plus the config's checked extras), then
 * exec'd through the fd devmgr opened: nothing is resolved by path inside
 * the jail. fd 3 is its main socket, fds 4, 5, ... the files the caller
 * passed (read-only, in order), stdin is /dev/null, stdout and stderr go
 * to devmgr's log; every other fd is closed. Its environment is
 * POLYVM_PLUGIN_FD=3 and, with files, POLYVM_PLUGIN_FILES=4,5,...; nothing
 * else. */

#include <stddef.h>

#include "device-spawn.h"
#include "jail.h"
#include "seccomp-policy.h"

/* The plugin's jail limits: file descriptors (its sockets, one per vCPU,
 * eventfds, memfds) and tasks (a thread per vCPU and a few more; threads
 * need clone/clone3 among the config's extra system calls). */
#define PLUGIN_NOFILE 256
#define PLUGIN_NPROC 128

/* Starts path's executable (exe_fd, from plugin_open_executable()) with
 * argv[0] = path and args, its main socket sock and n_files files (checked
 * by plugin_check_files(); the child gets copies, the caller keeps its
 * own), under policy and jail (jail->system_dirs is set here).
 * ret->endpoint is -1: the plugin's other end is the caller's. */
int plugin_spawn(int exe_fd, const char *path, char *const *args, int sock, const int *files, size_t n_files,
                 const struct seccomp_policy *policy, const struct jail_config *jail, const char *name,
                 struct device_process *ret);
