/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The "jailcheck" device kind, for tests: what its jail looks like from
 * inside, as seen by the device process itself after the whole jail
 * (seccomp included) is on. Its window of JAILCHECK_SIZE I/O ports at
 * "port" (default JAILCHECK_DEFAULT_PORT) reads as a struct
 * jailcheck_report (little endian, the host's layout), collected afresh
 * whenever offset 0 is read. Writing 1 to the byte at JAILCHECK_CMD asks it
 * to call ptrace(), which its policy does not allow. */

#include <stdint.h>

#define JAILCHECK_DEFAULT_PORT 0x5000
#define JAILCHECK_SIZE 512
#define JAILCHECK_CMD 0x1ff
#define JAILCHECK_CMD_FORBIDDEN_SYSCALL 1
#define JAILCHECK_MAGIC 0x4b48434au /* "JCHK" */
#define JAILCHECK_NS 7             /* enum jail_ns: user pid mnt net ipc uts cgroup */
#define JAILCHECK_FDS 64

struct jailcheck_report {
        uint32_t magic;
        uint32_t uid[3], gid[3]; /* real, effective, saved */
        int32_t n_groups;        /* getgroups() */
        int32_t no_new_privs;    /* prctl(PR_GET_NO_NEW_PRIVS) */
        int32_t seccomp_mode;    /* prctl(PR_GET_SECCOMP): 2 = filter */
        int32_t pid, ppid;
        uint32_t reserved;
        uint64_t cap_eff, cap_prm, cap_inh; /* capget() */
        uint64_t cap_bnd, cap_amb;          /* bit n: capability n still in the set */
        uint64_t ns[JAILCHECK_NS];          /* inode numbers, recorded before pivot_root */
        uint64_t rlimit_core, rlimit_nofile, rlimit_as, rlimit_nproc, rlimit_fsize;
        uint64_t root_fs_type;   /* statfs("/").f_type */
        uint64_t root_flags;     /* statfs("/").f_flags (ST_RDONLY ...) */
        int32_t root_entries;    /* entries in "/" but "." and ".."; -errno */
        int32_t proc_errno;      /* what opening /proc gives (ENOENT: not there) */
        uint64_t open_fds;       /* bit n: fd n is open (0..63) */
        char hostname[65];
} __attribute__((packed));

_Static_assert(sizeof(struct jailcheck_report) <= JAILCHECK_CMD, "report overlaps the command byte");
