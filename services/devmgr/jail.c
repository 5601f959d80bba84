/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jail.h"
#include "log.h"

#define JAIL_ROOT "/tmp"

int jail_close_fds(int keep_fd) {
        int null;

        if (keep_fd != 3) {
                if (dup3(keep_fd, 3, O_CLOEXEC) < 0)
                        return log_error_errno(errno, "Failed to move the endpoint: %m");
        }
        null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0)
                return log_error_errno(errno, "Failed to open /dev/null: %m");
        if (dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0)
                return log_error_errno(errno, "Failed to replace stdin/stdout: %m");
        /* Everything else devmgr had open (the bus, other endpoints) goes. */
        if (syscall(SYS_close_range, 4, ~0U, 0) < 0)
                return log_error_errno(errno, "Failed to close inherited fds: %m");
        return 3;
}

/* tmpfs as the new root, then pivot_root(".", ".") and detach the old root,
 * so nothing of the host's file system is reachable. */
static int jail_pivot_root(void) {
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return log_error_errno(errno, "Failed to make mounts private: %m");
        if (mount("polyvm-jail", JAIL_ROOT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=4,mode=0555") < 0)
                return log_error_errno(errno, "Failed to mount the jail root: %m");
        if (chdir(JAIL_ROOT) < 0)
                return log_error_errno(errno, "Failed to enter the jail root: %m");
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                return log_error_errno(errno, "Failed to pivot_root: %m");
        if (umount2(".", MNT_DETACH) < 0)
                return log_error_errno(errno, "Failed to detach the old root: %m");
        if (chdir("/") < 0)
                return log_error_errno(errno, "Failed to chdir to the new root: %m");
        if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return log_error_errno(errno, "Failed to make the root read-only: %m");
        return 0;
}

static int jail_rlimits(void) {
        static const struct { int resource; rlim_t value; } limits[] = {
                { RLIMIT_CORE, 0 },           /* no core dumps of guest-facing code */
                { RLIMIT_NOFILE, JAIL_NOFILE }, /* endpoint, irqfd, console, a few spare */
                { RLIMIT_FSIZE, 0 },          /* it writes no files */
                { RLIMIT_NPROC, 0 },          /* and starts no processes */
                { RLIMIT_MEMLOCK, 0 },
                { RLIMIT_MSGQUEUE, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                struct rlimit rl = { limits[i].value, limits[i].value };
                if (setrlimit(limits[i].resource, &rl) < 0)
                        return log_error_errno(errno, "Failed to set rlimit %d: %m", limits[i].resource);
        }
        return 0;
}

static int jail_drop_privileges(void) {
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[2] = {};

        /* The bounding set first: dropping it needs CAP_SETPCAP, which
         * setresuid() below takes away. */
        for (int cap = 0;; cap++) {
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
                        if (errno == EINVAL)
                                break; /* past the last capability the kernel knows */
                        return log_error_errno(errno, "Failed to drop capability %d from the bounding set: %m", cap);
                }
        }
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
                return log_error_errno(errno, "Failed to clear ambient capabilities: %m");

        if (setgroups(0, NULL) < 0)
                return log_error_errno(errno, "Failed to drop supplementary groups: %m");
        if (setresgid(JAIL_GID, JAIL_GID, JAIL_GID) < 0)
                return log_error_errno(errno, "Failed to set gid %d: %m", JAIL_GID);
        if (setresuid(JAIL_UID, JAIL_UID, JAIL_UID) < 0)
                return log_error_errno(errno, "Failed to set uid %d: %m", JAIL_UID);

        /* setresuid() cleared permitted and effective; inheritable stays. */
        if (syscall(SYS_capset, &hdr, data) < 0)
                return log_error_errno(errno, "Failed to clear capabilities: %m");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_error_errno(errno, "Failed to set no_new_privs: %m");
        return 0;
}

int jail_enter(void) {
        int r;

        r = jail_pivot_root();
        if (r < 0)
                return r;
        if (sethostname("device", 6) < 0)
                return log_error_errno(errno, "Failed to set the host name: %m");
        r = jail_rlimits();
        if (r < 0)
                return r;
        r = jail_drop_privileges();
        if (r < 0)
                return r;
        /* Changing ids cleared the parent-death signal: set it now. devmgr
         * dying takes its devices along. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
                return log_error_errno(errno, "Failed to set the parent-death signal: %m");
        return 0;
}
