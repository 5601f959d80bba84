/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device jail, proven from inside and outside: a "jailcheck" device
 * reports what it sees of itself after the whole jail is on (ids,
 * capabilities, namespaces, its root, rlimits, fds), the test compares that
 * with /proc/<pid> from outside and with its own namespaces; a forbidden
 * system call is named in ExitReason and a Failed signal; a device killed
 * from outside is reaped and shown; and devmgr dying takes its devices
 * along, after which a fresh devmgr serves. */

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "harness.h"
#include "jailcheck.h"
#include "proto.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"
#define DEVICE_IFACE "org.polyvm.Device1"
#define PORT JAILCHECK_DEFAULT_PORT

static struct harness h;
static const char *const ns_names[JAILCHECK_NS] = { "user", "pid", "mnt", "net", "ipc", "uts", "cgroup" };

static void create_device(const char *kind, char **path, int *fd, pid_t *pid) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *p;
        uint32_t upid;
        int efd, r;

        r = sd_bus_call_method(h.bus, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &error, &reply, "sss", "vm1", kind,
                               "{}");
        if (r < 0)
                g_error("CreateDevice(%s) failed: %s: %s", kind, error.name, error.message);
        g_assert_cmpint(sd_bus_message_read(reply, "ohu", &p, &efd, &upid), >=, 0);
        *path = g_strdup(p);
        *fd = fcntl(efd, F_DUPFD_CLOEXEC, 3);
        g_assert_cmpint(*fd, >=, 0);
        *pid = (pid_t) upid;
        sd_bus_message_unref(reply);
}

static void destroy_device(const char *path) {
        g_autofree char *err = harness_call_error(&h, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", NULL, "o", path);
        g_assert_null(err);
}

static void activate(int fd) {
        g_assert_cmpint(proto_call(fd, PROTO_ACTIVATE, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
}

/* The whole report, 8 bytes per Read; offset 0 first (it collects). */
static void read_report(int fd, struct jailcheck_report *rep) {
        uint8_t *out = (uint8_t *) rep;

        for (size_t off = 0; off < sizeof(*rep); off += 8) {
                struct proto_access a = { .address = PORT + off, .offset = off, .len = 8 };
                struct proto_msg reply;
                size_t n = MIN(8, sizeof(*rep) - off);

                g_assert_cmpint(proto_call(fd, PROTO_READ, &a, sizeof(a), NULL, 0, &reply, 2000, NULL, 0), ==, 0);
                memcpy(out + off, reply.body.data.data, n);
                proto_msg_done(&reply);
        }
        g_assert_cmphex(rep->magic, ==, JAILCHECK_MAGIC);
}

static uint64_t ns_inode(const char *pid, const char *ns) {
        g_autofree char *p = g_strdup_printf("/proc/%s/ns/%s", pid, ns);
        struct stat st;

        g_assert_cmpint(stat(p, &st), ==, 0);
        return (uint64_t) st.st_ino;
}

static char *status_field(pid_t pid, const char *field) {
        g_autofree char *p = g_strdup_printf("/proc/%d/status", (int) pid);
        g_autofree char *status = NULL, *key = g_strdup_printf("\n%s:\t", field);
        const char *s;

        g_assert_true(g_file_get_contents(p, &status, NULL, NULL));
        s = strstr(status, key);
        g_assert_nonnull(s);
        s += strlen(key);
        return g_strndup(s, strcspn(s, "\n"));
}

/* What the device sees of itself, and what the host sees of it. */
static void test_jail_seen_from_inside(void) {
        g_autofree char *path = NULL, *state = NULL, *namespaces = NULL, *policy = NULL, *uid = NULL, *gid = NULL;
        g_autofree char *pidstr = NULL, *uid_map_path = NULL, *uid_map = NULL, *expected_map = NULL;
        struct jailcheck_report rep;
        unsigned long host_uid;
        int fd;
        pid_t pid;

        create_device("jailcheck", &path, &fd, &pid);
        /* Before Activate it is only created; the device says when it is activated. */
        state = harness_get_string(&h, DEVMGR, path, DEVICE_IFACE, "State");
        g_assert_cmpstr(state, ==, "created");
        activate(fd);
        g_assert_true(harness_wait_property(&h, DEVMGR, path, DEVICE_IFACE, "State", "active", 5000));
        harness_compare_interface(&h, DEVMGR, path, DEVICE_IFACE);

        read_report(fd, &rep);

        /* Unprivileged ids: nobody inside, no supplementary groups. */
        for (int i = 0; i < 3; i++) {
                g_assert_cmpuint(rep.uid[i], ==, 65534);
                g_assert_cmpuint(rep.gid[i], ==, 65534);
        }
        g_assert_cmpint(rep.n_groups, ==, 0);
        /* No capabilities in any set, bounding and ambient included. */
        g_assert_cmphex(rep.cap_eff, ==, 0);
        g_assert_cmphex(rep.cap_prm, ==, 0);
        g_assert_cmphex(rep.cap_inh, ==, 0);
        g_assert_cmphex(rep.cap_bnd, ==, 0);
        g_assert_cmphex(rep.cap_amb, ==, 0);
        g_assert_cmpint(rep.no_new_privs, ==, 1);
        g_assert_cmpint(rep.seccomp_mode, ==, 2);
        /* pid 1 of its own pid namespace; its parent is outside it. */
        g_assert_cmpint(rep.pid, ==, 1);
        g_assert_cmpint(rep.ppid, ==, 0);
        g_assert_cmpstr(rep.hostname, ==, "device");

        /* Its root: an empty read-only tmpfs, no /proc. */
        g_assert_cmphex(rep.root_fs_type, ==, TMPFS_MAGIC);
        g_assert_true(rep.root_flags & ST_RDONLY);
        g_assert_cmpint(rep.root_entries, ==, 0);
        g_assert_cmpint(rep.proc_errno, ==, ENOENT);

        /* rlimits of its kind. */
        g_assert_cmpuint(rep.rlimit_core, ==, 0);
        g_assert_cmpuint(rep.rlimit_nofile, ==, 8);
        g_assert_cmpuint(rep.rlimit_nproc, ==, 0);
        g_assert_cmpuint(rep.rlimit_fsize, ==, 0);
#if !defined(__SANITIZE_ADDRESS__)
        g_assert_cmpuint(rep.rlimit_as, ==, 64 << 20);
#endif

        /* fds: /dev/null as 0 and 1, stderr, the endpoint and the report
         * channel (open for the device's life: a uffd may follow).
         * Nothing of devmgr's, no /dev/userfaultfd (jailcheck maps no
         * guest memory). */
        g_assert_cmphex(rep.open_fds, ==, 0x1f);

        /* Namespaces: the ones it recorded are the ones the host sees, and
         * none is the test's own. */
        pidstr = g_strdup_printf("%d", (int) pid);
        for (size_t i = 0; i < JAILCHECK_NS; i++) {
                uint64_t outside = ns_inode(pidstr, ns_names[i]), ours = ns_inode("self", ns_names[i]);

                if (rep.ns[i] != outside)
                        g_error("%s namespace: inside %" G_GUINT64_FORMAT ", outside %" G_GUINT64_FORMAT, ns_names[i],
                                rep.ns[i], outside);
                if (outside == ours)
                        g_error("%s namespace is the test's own", ns_names[i]);
        }
        namespaces = harness_get_string(&h, DEVMGR, path, DEVICE_IFACE, "Namespaces");
        g_assert_cmpstr(namespaces, ==, "user pid mnt net ipc uts cgroup");
        policy = harness_get_string(&h, DEVMGR, path, DEVICE_IFACE, "SeccompPolicy");
        g_assert_true(g_str_has_suffix(policy, "/jailcheck.policy"));
        g_assert_true(g_file_test(policy, G_FILE_TEST_IS_REGULAR));

        /* On the host it is a uid of its own, mapped to 65534 inside. */
        uid = status_field(pid, "Uid");
        gid = status_field(pid, "Gid");
        host_uid = strtoul(uid, NULL, 10);
        g_assert_cmpuint(host_uid, >=, 0x70000000u);
        g_assert_cmpuint(strtoul(gid, NULL, 10), ==, host_uid);
        uid_map_path = g_strdup_printf("/proc/%d/uid_map", (int) pid);
        g_assert_true(g_file_get_contents(uid_map_path, &uid_map, NULL, NULL));
        g_strdelimit(uid_map, " ", ' ');
        {
                g_auto(GStrv) words = g_strsplit_set(g_strstrip(uid_map), " \t", -1);
                GPtrArray *w = g_ptr_array_new();
                for (char **s = words; *s; s++)
                        if (**s)
                                g_ptr_array_add(w, *s);
                g_assert_cmpuint(w->len, ==, 3);
                g_assert_cmpstr(w->pdata[0], ==, "65534");
                g_assert_cmpuint(strtoul(w->pdata[1], NULL, 10), ==, host_uid);
                g_assert_cmpstr(w->pdata[2], ==, "1");
                g_ptr_array_free(w, TRUE);
        }

        /* Still serving after all that probing: every probe was allowed. */
        read_report(fd, &rep);
        g_assert_true(harness_pid_alive(pid));
        destroy_device(path);
        close(fd);
}

struct failed_signal {
        const char *path;
        char *reason;
};

static int on_failed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct failed_signal *f = userdata;
        const char *reason;

        if (strcmp(sd_bus_message_get_path(m), f->path) == 0 && sd_bus_message_read(m, "s", &reason) >= 0 && !f->reason)
                f->reason = g_strdup(reason);
        return 0;
}

static void pump_until_failed(struct failed_signal *f, int timeout_ms) {
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;

        while (!f->reason && g_get_monotonic_time() < deadline) {
                int r = sd_bus_process(h.bus, NULL);
                g_assert_cmpint(r, >=, 0);
                if (r == 0)
                        (void) sd_bus_wait(h.bus, 50 * 1000);
        }
}

/* A device that dies shows failed with its reason, and a Failed signal
 * carries the same text. */
static void expect_failure(const char *path, pid_t pid, struct failed_signal *f, const char *reason) {
        g_autofree char *exit_reason = NULL;

        g_assert_true(harness_wait_property(&h, DEVMGR, path, DEVICE_IFACE, "State", "failed", 5000));
        exit_reason = harness_get_string(&h, DEVMGR, path, DEVICE_IFACE, "ExitReason");
        g_assert_cmpstr(exit_reason, ==, reason);
        pump_until_failed(f, 5000);
        g_assert_cmpstr(f->reason, ==, reason);
        /* Reaped, not a zombie. */
        g_assert_true(harness_wait_pid_gone(pid, 2000));
}

static void test_forbidden_syscall_is_named(void) {
        g_autofree char *path = NULL;
        struct failed_signal f = {};
        sd_bus_slot *slot = NULL;
        struct proto_access a = { .address = PORT + JAILCHECK_CMD, .offset = JAILCHECK_CMD, .len = 1,
                                  .data = { JAILCHECK_CMD_FORBIDDEN_SYSCALL } };
        int fd;
        pid_t pid;

        create_device("jailcheck", &path, &fd, &pid);
        f.path = path;
        g_assert_cmpint(sd_bus_match_signal(h.bus, &slot, DEVMGR, path, DEVICE_IFACE, "Failed", on_failed, &f), >=, 0);
        activate(fd);
        g_assert_cmpint(proto_send(fd, PROTO_WRITE, &a, sizeof(a), NULL, 0), ==, 0);
        expect_failure(path, pid, &f, "seccomp violation: ptrace (system call 101)");
        /* The launcher's end sees the hang-up. */
        g_assert_cmpint(proto_call(fd, PROTO_GET_RANGES, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, -ECONNRESET);
        sd_bus_slot_unref(slot);
        g_free(f.reason);
        destroy_device(path);
        close(fd);
}

static void test_device_killed_from_outside(void) {
        g_autofree char *path = NULL;
        struct failed_signal f = {};
        sd_bus_slot *slot = NULL;
        int fd;
        pid_t pid;

        create_device("jailcheck", &path, &fd, &pid);
        f.path = path;
        g_assert_cmpint(sd_bus_match_signal(h.bus, &slot, DEVMGR, path, DEVICE_IFACE, "Failed", on_failed, &f), >=, 0);
        activate(fd);
        g_assert_cmpint(kill(pid, SIGKILL), ==, 0);
        expect_failure(path, pid, &f, "killed by signal 9 (SIGKILL)");
        sd_bus_slot_unref(slot);
        g_free(f.reason);
        destroy_device(path);
        close(fd);
}

/* devmgr killed with SIGKILL cannot clean up: its devices go by their
 * parent-death signal. The next call activates a fresh devmgr. */
static void test_devmgr_death_leaves_no_orphans(void) {
        g_autofree char *path1 = NULL, *path2 = NULL, *state = NULL;
        pid_t devmgr, pid1, pid2, pid3;
        int fd1, fd2, fd3;

        create_device("jailcheck", &path1, &fd1, &pid1);
        activate(fd1);
        create_device("serial", &path2, &fd2, &pid2); /* never activated */
        devmgr = harness_name_pid(&h, DEVMGR);
        g_assert_cmpint(devmgr, >, 0);

        g_assert_cmpint(kill(devmgr, SIGKILL), ==, 0);
        g_assert_true(harness_wait_pid_gone(pid1, 2000));
        g_assert_true(harness_wait_pid_gone(pid2, 2000));
        /* The endpoints hang up. */
        g_assert_cmpint(proto_call(fd1, PROTO_GET_RANGES, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, -ECONNRESET);
        close(fd1);
        close(fd2);

        /* A fresh devmgr, knowing nothing of the old devices. */
        g_free(path1);
        path1 = NULL;
        create_device("jailcheck", &path1, &fd3, &pid3);
        g_assert_cmpint(harness_name_pid(&h, DEVMGR), !=, devmgr);
        activate(fd3);
        g_assert_true(harness_wait_property(&h, DEVMGR, path1, DEVICE_IFACE, "State", "active", 5000));
        {
                g_autofree char *msg = NULL;
                g_autofree char *err = harness_call_error(&h, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", &msg, "o",
                                                          path2);
                g_assert_cmpstr(err, ==, "org.polyvm.Error.NoSuchDevice");
        }
        destroy_device(path1);
        close(fd3);
}

/* devmgr dying takes no VM down: the launcher keeps its VM (and stays),
 * the dead devices only hang up. (Without /dev/kvm the VM cannot run here,
 * so on_device_failure "stop" has nothing to stop and must not fail it.) */
static void test_vm_survives_devmgr_death(void) {
        g_autofree char *kernel = harness_build_path("guest/polyvm-testguest.elf");
        g_autofree char *config = NULL, *err = NULL, *vm_path = NULL, *state = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *object, *kind, *vm;
        uint32_t upid;
        pid_t launcher, devmgr, device = 0;

        config = g_strdup_printf("{\"kernel\": \"%s\", \"memory_mib\": 32, \"on_device_failure\": \"stop\", "
                                 "\"devices\": [{\"kind\": \"jailcheck\"}]}", kernel);
        err = harness_call_error(&h, "org.polyvm.Launcher1", "/org/polyvm/Launcher1", "org.polyvm.Launcher1",
                                 "CreateVm", NULL, "ss", "jailvm", config);
        g_assert_null(err);
        launcher = harness_name_pid(&h, "org.polyvm.Launcher1");
        devmgr = harness_name_pid(&h, DEVMGR);
        g_assert_cmpint(launcher, >, 0);
        g_assert_cmpint(devmgr, >, 0);

        g_assert_cmpint(sd_bus_call_method(h.bus, DEVMGR, DEVMGR_PATH, DEVMGR, "ListDevices", &error, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(ossu)"), >=, 0);
        while (sd_bus_message_read(reply, "(ossu)", &object, &kind, &vm, &upid) > 0)
                if (strcmp(vm, "jailvm") == 0) {
                        g_assert_cmpstr(kind, ==, "jailcheck");
                        device = (pid_t) upid;
                }
        sd_bus_message_unref(reply);
        g_assert_cmpint(device, >, 0);

        g_assert_cmpint(kill(devmgr, SIGKILL), ==, 0);
        g_assert_true(harness_wait_pid_gone(device, 2000));
        /* Give the launcher time to see the hang-up, then check it is there
         * with its VM as it was. */
        g_usleep(200 * 1000);
        g_assert_true(harness_pid_alive(launcher));
        g_assert_cmpint(sd_bus_path_encode("/org/polyvm/Launcher1/vm", "jailvm", &vm_path), >=, 0);
        state = harness_get_string(&h, "org.polyvm.Launcher1", vm_path, "org.polyvm.Vm1", "State");
        g_assert_cmpstr(state, ==, "created");
        g_assert_cmpint(harness_name_pid(&h, "org.polyvm.Launcher1"), ==, launcher);

        err = harness_call_error(&h, "org.polyvm.Launcher1", "/org/polyvm/Launcher1", "org.polyvm.Launcher1",
                                 "DestroyVm", NULL, "s", "jailvm");
        g_assert_null(err);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/jail/seen-from-inside", test_jail_seen_from_inside);
        g_test_add_func("/jail/forbidden-syscall-is-named", test_forbidden_syscall_is_named);
        g_test_add_func("/jail/device-killed-from-outside", test_device_killed_from_outside);
        g_test_add_func("/jail/devmgr-death-leaves-no-orphans", test_devmgr_death_leaves_no_orphans);
        g_test_add_func("/jail/vm-survives-devmgr-death", test_vm_survives_devmgr_death);

        harness_start(&h);
        r = g_test_run();
        harness_stop(&h);
        return r;
}
