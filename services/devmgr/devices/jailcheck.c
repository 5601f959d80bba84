/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The "jailcheck" device kind (jailcheck.h): reports its own jail. Every
 * probe here is a plain system call a compromised device could make too;
 * the policy allows exactly these, nothing that changes anything. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "device.h"
#include "jail.h"
#include "jailcheck.h"
#include "json-util.h"

struct jailcheck {
        uint16_t port;
        struct jailcheck_report report;
};

static int jailcheck_create(json_object *config, void **ret, char *err, size_t errlen) {
        uint64_t port = JAILCHECK_DEFAULT_PORT;
        const struct json_field fields[] = {
                { "port", JSON_FIELD_UINT64, false, &port, 1, 0x10000 - JAILCHECK_SIZE },
        };
        struct jailcheck *j;
        int r;

        r = json_parse_fields(config, "jailcheck", fields, ELEMENTSOF(fields), err, errlen);
        if (r < 0)
                return r;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->port = (uint16_t) port;
        *ret = j;
        return 0;
}

static void jailcheck_destroy(void *dev) {
        free(dev);
}

static int jailcheck_get_ranges(void *dev, struct proto_ranges *ret) {
        struct jailcheck *j = dev;

        ret->count = 1;
        ret->ranges[0] = (struct proto_range) { .base = j->port, .len = JAILCHECK_SIZE, .bus = PROTO_BUS_PIO };
        return 0;
}

static uint64_t rlimit(int resource) {
        struct rlimit rl;
        return getrlimit(resource, &rl) < 0 ? 0 : (uint64_t) rl.rlim_cur;
}

static int32_t root_entries(void) {
        char buf[1024];
        int fd, n = 0;
        long len;

        fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        while ((len = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0)
                for (long off = 0; off < len;) {
                        /* struct linux_dirent64: ino, off, reclen, type, name */
                        unsigned short reclen;
                        const char *name = buf + off + 19;

                        memcpy(&reclen, buf + off + 16, sizeof(reclen));
                        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
                                n++;
                        off += reclen;
                }
        close(fd);
        return len < 0 ? -errno : n;
}

static void collect(struct jailcheck_report *rep) {
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct caps[2] = {};
        uid_t u[3] = {};
        gid_t g[3] = {};
        struct statfs sf;
        struct utsname un;
        const uint64_t *ns = jail_namespace_inodes();
        int fd;

        *rep = (struct jailcheck_report) { .magic = JAILCHECK_MAGIC };
        (void) getresuid(&u[0], &u[1], &u[2]);
        (void) getresgid(&g[0], &g[1], &g[2]);
        for (int i = 0; i < 3; i++) {
                rep->uid[i] = u[i];
                rep->gid[i] = g[i];
        }
        rep->n_groups = getgroups(0, NULL);
        rep->no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
        rep->seccomp_mode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
        rep->pid = getpid();
        rep->ppid = getppid();

        if (syscall(SYS_capget, &hdr, caps) == 0) {
                rep->cap_eff = caps[0].effective | (uint64_t) caps[1].effective << 32;
                rep->cap_prm = caps[0].permitted | (uint64_t) caps[1].permitted << 32;
                rep->cap_inh = caps[0].inheritable | (uint64_t) caps[1].inheritable << 32;
        }
        for (int cap = 0; cap < 64; cap++) {
                if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
                        rep->cap_bnd |= UINT64_C(1) << cap;
                if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1)
                        rep->cap_amb |= UINT64_C(1) << cap;
        }
        for (size_t i = 0; i < JAILCHECK_NS && i < _JAIL_NS_MAX; i++)
                rep->ns[i] = ns[i];

        rep->rlimit_core = rlimit(RLIMIT_CORE);
        rep->rlimit_nofile = rlimit(RLIMIT_NOFILE);
        rep->rlimit_as = rlimit(RLIMIT_AS);
        rep->rlimit_nproc = rlimit(RLIMIT_NPROC);
        rep->rlimit_fsize = rlimit(RLIMIT_FSIZE);

        if (statfs("/", &sf) == 0) {
                rep->root_fs_type = (uint64_t) sf.f_type;
                rep->root_flags = (uint64_t) sf.f_flags;
        }
        rep->root_entries = root_entries();
        fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        rep->proc_errno = fd < 0 ? errno : 0;
        if (fd >= 0)
                close(fd);

        /* After the probes above closed what they opened. */
        for (int i = 0; i < JAILCHECK_FDS; i++)
                if (fcntl(i, F_GETFD) >= 0)
                        rep->open_fds |= UINT64_C(1) << i;
        if (uname(&un) == 0)
                snprintf(rep->hostname, sizeof(rep->hostname), "%s", un.nodename);
}

static int jailcheck_read(void *dev, uint32_t range, uint64_t offset, uint32_t len, uint8_t *data) {
        struct jailcheck *j = dev;

        if (offset == 0)
                collect(&j->report);
        for (uint32_t i = 0; i < len; i++)
                data[i] = offset + i < sizeof(j->report) ? ((const uint8_t *) &j->report)[offset + i] : 0;
        return 0;
}

static int jailcheck_write(void *dev, uint32_t range, uint64_t offset, uint32_t len, const uint8_t *data) {
        /* Not in the policy: devmgr is told and kills the device. */
        if (offset == JAILCHECK_CMD && data[0] == JAILCHECK_CMD_FORBIDDEN_SYSCALL)
                (void) syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0);
        return 0;
}

static const struct device_kind jailcheck_kind = {
        .name = "jailcheck",
        .seccomp_policy = "jailcheck",
        .rlimit_as = 64 << 20,
        .rlimit_nofile = 8,
        .create = jailcheck_create,
        .destroy = jailcheck_destroy,
        .get_ranges = jailcheck_get_ranges,
        .read = jailcheck_read,
        .write = jailcheck_write,
};
DEVICE_KIND_REGISTER(jailcheck_kind);
