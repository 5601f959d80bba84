/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The jail of a device process (docs/devmgr.md says what it builds). The
 * namespaces come from the clone flags (jail_clone_flags()); the child then
 * calls jail_enter(), which does everything else but seccomp, which comes
 * last (seccomp-policy.h). */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The device's ids inside its user namespace: nobody/nogroup. */
#define JAIL_INNER_ID 65534
/* On the host every device gets ids of its own, JAIL_HOST_ID_BASE + its
 * number (mod JAIL_HOST_ID_COUNT): two devices never share a uid. The range
 * must not be given to real users. */
#define JAIL_HOST_ID_BASE 0x70000000u
#define JAIL_HOST_ID_COUNT 65536u
/* Defaults for a kind that names no limits of its own. */
#define JAIL_NOFILE_DEFAULT 16

enum jail_ns {
        JAIL_NS_USER,
        JAIL_NS_PID,
        JAIL_NS_MNT,
        JAIL_NS_NET,
        JAIL_NS_IPC,
        JAIL_NS_UTS,
        JAIL_NS_CGROUP,
        _JAIL_NS_MAX,
};

/* "user", "pid", ... as in /proc/<pid>/ns/. */
const char *jail_ns_name(enum jail_ns ns);

struct jail_config {
        bool userns;            /* in a user namespace of its own (else host ids directly) */
        uid_t host_uid;         /* what the device's uid is on the host */
        gid_t host_gid;
        uint64_t rlimit_as;     /* bytes; 0: no limit */
        unsigned rlimit_nofile; /* 0: JAIL_NOFILE_DEFAULT */
        unsigned rlimit_nproc;  /* tasks (threads count) of its uid: 0 starts none */
        uint64_t rlimit_fsize;  /* RLIMIT_FSIZE: how far it may write into a file (0: it writes none) */
        /* For a process that execs a dynamically linked program (a plugin,
         * plugin-spawn.h): /usr, /lib and /lib64 of the host, read-only,
         * nosuid, nodev, in its otherwise empty root (symlinks stay
         * symlinks). Devices get nothing. */
        bool system_dirs;
};

/* clone() flags for the namespaces, with or without a user namespace. */
unsigned long jail_clone_flags(bool userns);
/* "user pid mnt net ipc uts cgroup" (without "user" if !userns). */
const char *jail_namespaces_string(bool userns);

/* devmgr side, after clone(): maps JAIL_INNER_ID to the host ids in the
 * child's user namespace. */
int jail_map_ids(pid_t pid, const struct jail_config *c);

/* Child side. Keeps only keep[0..n) (moved to fds 3, 4, ... in order) and
 * stderr; stdin and stdout become /dev/null. */
int jail_close_fds(int *keep, size_t n);

/* Arms PR_SET_PDEATHSIG(SIGKILL), then checks that devmgr did not die
 * before: parent_fd is a socket whose other end only devmgr holds, so it
 * hangs up when devmgr is gone (getppid() cannot tell: the device is pid 1
 * of its namespace and sees 0). -ESRCH if devmgr is gone. */
int jail_watch_parent(int parent_fd);

/* Everything but seccomp: parent-death signal, namespace inodes recorded,
 * empty read-only root, host name, rlimits, ids, no capabilities, no new
 * privileges; the parent-death signal is armed again after the ids change
 * (which clears it) through jail_watch_parent(parent_fd). */
int jail_enter(const struct jail_config *c, int parent_fd);

/* In the jailed process: the inode numbers of its namespaces, recorded by
 * jail_enter() before the root went away (there is no /proc after), indexed
 * by enum jail_ns; 0 where unknown. */
const uint64_t *jail_namespace_inodes(void);
