/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jail.h"
#include "log.h"
#include "macro.h"

/* Where the new root is mounted before pivot_root; any directory does, the
 * mount is private to the device's mount namespace. */
#define JAIL_ROOT "/tmp"

static const struct {
        const char *name;
        unsigned long flag;
} namespaces[_JAIL_NS_MAX] = {
        [JAIL_NS_USER] = { "user", CLONE_NEWUSER },  [JAIL_NS_PID] = { "pid", CLONE_NEWPID },
        [JAIL_NS_MNT] = { "mnt", CLONE_NEWNS },      [JAIL_NS_NET] = { "net", CLONE_NEWNET },
        [JAIL_NS_IPC] = { "ipc", CLONE_NEWIPC },     [JAIL_NS_UTS] = { "uts", CLONE_NEWUTS },
        [JAIL_NS_CGROUP] = { "cgroup", CLONE_NEWCGROUP },
};

static uint64_t ns_inodes[_JAIL_NS_MAX];

const char *jail_ns_name(enum jail_ns ns) {
        return ns < _JAIL_NS_MAX ? namespaces[ns].name : NULL;
}

unsigned long jail_clone_flags(bool userns) {
        unsigned long flags = 0;

        for (size_t i = 0; i < _JAIL_NS_MAX; i++)
                if (i != JAIL_NS_USER || userns)
                        flags |= namespaces[i].flag;
        return flags;
}

const char *jail_namespaces_string(bool userns) {
        return userns ? "user pid mnt net ipc uts cgroup" : "pid mnt net ipc uts cgroup";
}

const uint64_t *jail_namespace_inodes(void) {
        return ns_inodes;
}

static int write_file(const char *path, const char *text) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        size_t len = strlen(text);

        if (fd < 0)
                return -errno;
        if (write(fd, text, len) != (ssize_t) len)
                return -errno;
        return 0;
}

int jail_map_ids(pid_t pid, const struct jail_config *c) {
        char path[64], map[64];
        int r;

        /* One id each way: nothing else of the host exists in there, and
         * the host's root is not mapped. setgroups stays allowed (we write
         * the map with CAP_SETGID) so that the child can drop the
         * supplementary groups it inherited; those are host groups. */
        snprintf(map, sizeof(map), "%u %u 1\n", JAIL_INNER_ID, (unsigned) c->host_uid);
        snprintf(path, sizeof(path), "/proc/%d/uid_map", (int) pid);
        r = write_file(path, map);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", path);
        snprintf(map, sizeof(map), "%u %u 1\n", JAIL_INNER_ID, (unsigned) c->host_gid);
        snprintf(path, sizeof(path), "/proc/%d/gid_map", (int) pid);
        r = write_file(path, map);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", path);
        return 0;
}

int jail_close_fds(int *keep, size_t n) {
        int null, next = 3;

        /* First out of the way (F_DUPFD >= 3 + n), then into place, so a
         * keep fd already at 3.. is never overwritten. */
        for (size_t i = 0; i < n; i++) {
                int fd = fcntl(keep[i], F_DUPFD_CLOEXEC, (int) (3 + n));
                if (fd < 0)
                        return log_error_errno(errno, "Failed to move fd %d: %m", keep[i]);
                keep[i] = fd;
        }
        for (size_t i = 0; i < n; i++, next++) {
                if (dup3(keep[i], next, O_CLOEXEC) < 0)
                        return log_error_errno(errno, "Failed to move fd %d to %d: %m", keep[i], next);
                keep[i] = next;
        }
        null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0)
                return log_error_errno(errno, "Failed to open /dev/null: %m");
        if (dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0)
                return log_error_errno(errno, "Failed to replace stdin/stdout: %m");
        /* Everything else devmgr had open (the bus, other endpoints, the
         * temporary copies above) goes. */
        if (syscall(SYS_close_range, (unsigned) next, ~0U, 0) < 0)
                return log_error_errno(errno, "Failed to close inherited fds: %m");
        return 0;
}

int jail_watch_parent(int parent_fd) {
        struct pollfd p = { .fd = parent_fd, .events = POLLIN };

        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
                return log_error_errno(errno, "Failed to set the parent-death signal: %m");
        if (poll(&p, 1, 0) < 0)
                return log_error_errno(errno, "Failed to poll the report socket: %m");
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
                return log_error_errno(ESRCH, "devmgr is gone, not starting.");
        return 0;
}

/* Before the root goes: /proc is still the host's, and the namespaces are
 * already the device's (they came with clone()). */
static void jail_record_namespaces(void) {
        for (size_t i = 0; i < _JAIL_NS_MAX; i++) {
                char path[64];
                struct stat st;

                snprintf(path, sizeof(path), "/proc/self/ns/%s", namespaces[i].name);
                ns_inodes[i] = stat(path, &st) == 0 ? (uint64_t) st.st_ino : 0;
        }
}

/* The flags a remount must keep: in a user namespace the ones the host set
 * are locked, and a remount that drops one fails. */
static unsigned long jail_locked_flags(const char *path) {
        static const struct {
                unsigned long st, ms;
        } map[] = {
                { ST_NOEXEC, MS_NOEXEC },       { ST_NOATIME, MS_NOATIME },
                { ST_NODIRATIME, MS_NODIRATIME }, { ST_RELATIME, MS_RELATIME },
        };
        struct statvfs sv;
        unsigned long flags = 0;

        if (statvfs(path, &sv) < 0)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (sv.f_flag & map[i].st)
                        flags |= map[i].ms;
        return flags;
}

/* /usr, /lib, /lib64 of the host into the new root at root: the loader and
 * the libraries a dynamically linked program needs, and nothing mounted
 * below them (the bind is not recursive). A symlink (Debian's /lib ->
 * usr/lib) is copied as a symlink. */
static int jail_bind_system_dirs(const char *root) {
        static const char *const dirs[] = { "usr", "lib", "lib64" };


        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                char src[32], dst[64], target[256];
                struct stat st;
                ssize_t n;

                snprintf(src, sizeof(src), "/%s", dirs[i]);
                snprintf(dst, sizeof(dst), "%s/%s", root, dirs[i]);
                if (lstat(src, &st) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return log_error_errno(errno, "Failed to look at %s: %m", src);
                }
                if (S_ISLNK(st.st_mode)) {
                        n = readlink(src, target, sizeof(target) - 1);
                        if (n < 0)
                                return log_error_errno(errno, "Failed to read the link %s: %m", src);
                        target[n] = 0;
                        if (symlink(target, dst) < 0)
                                return log_error_errno(errno, "Failed to link %s in the jail: %m", src);
                        continue;
                }
                if (!S_ISDIR(st.st_mode))
                        continue;
                if (mkdir(dst, 0555) < 0)
                        return log_error_errno(errno, "Failed to create %s: %m", dst);
                if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
                        return log_error_errno(errno, "Failed to bind %s into the jail: %m", src);
                if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | jail_locked_flags(src),
                          NULL) < 0)
                        return log_error_errno(errno, "Failed to make %s read-only in the jail: %m", src);
        }
        return 0;
}

/* tmpfs as the new root, then pivot_root(".", ".") and detach the old root,
 * so nothing of the host's file system is reachable (but the system
 * directories, for a process that asks for them). */
static int jail_pivot_root(bool system_dirs, bool userns) {
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return log_error_errno(errno, "Failed to make mounts private: %m");
        /* In a user namespace our host root is unmapped: an inode it owns
         * is beyond the namespace's capabilities and it can create none
         * (EOVERFLOW). The root and what goes in it are made as the jail's
         * id (fsuid only: it keeps the namespace's capabilities; the ids
         * all change later). */
        if (system_dirs && userns) {
                (void) setfsgid(JAIL_INNER_ID);
                (void) setfsuid(JAIL_INNER_ID);
        }
        if (mount("polyvm-jail", JAIL_ROOT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  system_dirs ? "size=4k,nr_inodes=8,mode=0555" : "size=4k,nr_inodes=4,mode=0555") < 0)
                return log_error_errno(errno, "Failed to mount the jail root: %m");
        if (system_dirs) {
                int r = jail_bind_system_dirs(JAIL_ROOT);
                if (r < 0)
                        return r;
        }
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

static int jail_rlimits(const struct jail_config *c) {
        const struct {
                int resource;
                rlim_t value;
        } limits[] = {
                { RLIMIT_CORE, 0 }, /* no core dumps of guest-facing code */
                { RLIMIT_NOFILE, c->rlimit_nofile ?: JAIL_NOFILE_DEFAULT },
                /* It writes no files (0); a kind with a backing file
                 * writes inside it, never grows it (device-spawn.c). */
                { RLIMIT_FSIZE, c->rlimit_fsize },
                /* and starts no processes; threads count too, so a kind
                 * with worker threads says how many tasks it runs. */
                { RLIMIT_NPROC, c->rlimit_nproc },
                { RLIMIT_MEMLOCK, 0 },
                { RLIMIT_MSGQUEUE, 0 },
#if !defined(__SANITIZE_ADDRESS__)
                /* ASan reserves terabytes of shadow: no address-space limit there. */
                { RLIMIT_AS, c->rlimit_as ?: RLIM_INFINITY },
#endif
        };

        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                struct rlimit rl = { limits[i].value, limits[i].value };

                /* Never raise: root here may lack CAP_SYS_RESOURCE. */
                if (limits[i].value == RLIM_INFINITY)
                        continue;
                if (setrlimit(limits[i].resource, &rl) < 0)
                        return log_error_errno(errno, "Failed to set rlimit %d: %m", limits[i].resource);
        }
        return 0;
}

static int jail_drop_privileges(const struct jail_config *c) {
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[2] = {};
        uid_t uid = c->userns ? JAIL_INNER_ID : c->host_uid;
        gid_t gid = c->userns ? JAIL_INNER_ID : c->host_gid;

        /* The bounding set first: dropping it needs CAP_SETPCAP. */
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
        if (setresgid(gid, gid, gid) < 0)
                return log_error_errno(errno, "Failed to set gid %u: %m", (unsigned) gid);
        if (setresuid(uid, uid, uid) < 0)
                return log_error_errno(errno, "Failed to set uid %u: %m", (unsigned) uid);

        /* In a user namespace whose root is unmapped, setresuid() clears
         * nothing; outside one it clears permitted and effective. Either
         * way, all three sets go to 0 here. */
        if (syscall(SYS_capset, &hdr, data) < 0)
                return log_error_errno(errno, "Failed to clear capabilities: %m");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_error_errno(errno, "Failed to set no_new_privs: %m");
        return 0;
}

int jail_enter(const struct jail_config *c, int parent_fd) {
        int r;

        jail_record_namespaces();
        r = jail_pivot_root(c->system_dirs, c->userns);
        if (r < 0)
                return r;
        if (sethostname("device", 6) < 0)
                return log_error_errno(errno, "Failed to set the host name: %m");
        r = jail_rlimits(c);
        if (r < 0)
                return r;
        r = jail_drop_privileges(c);
        if (r < 0)
                return r;
        /* Changing ids cleared the parent-death signal: arm it again. */
        return jail_watch_parent(parent_fd);
}
