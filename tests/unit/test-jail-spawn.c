/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* device_spawn() without devmgr's bus around it (services/devmgr/jail.c,
 * device-spawn.c): the jail with a user namespace and the fallback for a
 * host that refuses one, seen from inside through the jailcheck kind; the
 * report channel (listener first, then Activate); and a violation reported
 * through the listener. Needs root, as devmgr does. */
#include <errno.h>
#include <glib.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "device-report.h"
#include "device-spawn.h"
#include "jailcheck.h"
#include "proto.h"

static enum device_report_type next_report(int fd, int *ret_fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        enum device_report_type type;

        g_assert_cmpint(poll(&p, 1, 5000), ==, 1);
        g_assert_cmpint(device_report_recv(fd, &type, ret_fd), ==, 0);
        return type;
}

static void spawn(bool userns, uid_t host_id, struct device_process *proc, int *listener) {
        const struct device_kind *kind = device_kind_find("jailcheck");
        struct seccomp_policy policy = {};
        struct jail_config jail = { .userns = userns, .host_uid = host_id, .host_gid = host_id,
                                    .rlimit_as = kind->rlimit_as, .rlimit_nofile = kind->rlimit_nofile };
        json_object *config = json_object_new_object();
        char err[256] = "";
        void *dev = NULL;
        int fd;

        g_assert_nonnull(kind);
        g_assert_cmpint(kind->create(config, &dev, err, sizeof(err)), ==, 0);
        json_object_put(config);
        g_assert_cmpint(seccomp_policy_load(POLYVM_DEVMGR_SECCOMP_SRC, "jailcheck", &policy, err, sizeof(err)), ==, 0);
        g_assert_cmpint(device_spawn(kind, dev, &policy, &jail, "jailcheck#test", proc), ==, 0);
        kind->destroy(dev);
        seccomp_policy_done(&policy);
        g_assert_cmpint(proc->userns, ==, userns);

        /* The listener comes first, before the device serves. */
        g_assert_cmpint(next_report(proc->report, &fd), ==, DEVICE_REPORT_LISTENER);
        g_assert_cmpint(fd, >=, 0);
        *listener = fd;
}

static void read_report(int fd, struct jailcheck_report *rep) {
        for (size_t off = 0; off < sizeof(*rep); off += 8) {
                struct proto_access a = { .address = JAILCHECK_DEFAULT_PORT + off, .offset = off, .len = 8 };
                struct proto_msg reply;

                g_assert_cmpint(proto_call(fd, PROTO_READ, &a, sizeof(a), NULL, 0, &reply, 2000, NULL, 0), ==, 0);
                memcpy((uint8_t *) rep + off, reply.body.data.data, MIN(8, sizeof(*rep) - off));
                proto_msg_done(&reply);
        }
        g_assert_cmphex(rep->magic, ==, JAILCHECK_MAGIC);
}

static void check_jail(bool userns) {
        const uid_t host_id = JAIL_HOST_ID_BASE + 4242;
        const uid_t inside = userns ? JAIL_INNER_ID : host_id;
        struct device_process proc;
        struct jailcheck_report rep;
        int listener, fd, status;

        spawn(userns, host_id, &proc, &listener);
        g_assert_cmpint(proto_call(proc.endpoint, PROTO_ACTIVATE, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_cmpint(next_report(proc.report, &fd), ==, DEVICE_REPORT_ACTIVE);

        read_report(proc.endpoint, &rep);
        for (int i = 0; i < 3; i++) {
                g_assert_cmpuint(rep.uid[i], ==, inside);
                g_assert_cmpuint(rep.gid[i], ==, inside);
        }
        g_assert_cmpint(rep.n_groups, ==, 0);
        g_assert_cmphex(rep.cap_eff | rep.cap_prm | rep.cap_inh | rep.cap_bnd | rep.cap_amb, ==, 0);
        g_assert_cmpint(rep.no_new_privs, ==, 1);
        g_assert_cmpint(rep.seccomp_mode, ==, 2);
        g_assert_cmpint(rep.pid, ==, 1);
        g_assert_cmpint(rep.root_entries, ==, 0);
        g_assert_cmpint(rep.proc_errno, ==, ENOENT);
        g_assert_cmpuint(rep.rlimit_nofile, ==, 8);
        g_assert_cmpstr(rep.hostname, ==, "device");
        /* The user namespace is its own only when it has one. */
        {
                g_autofree char *self = g_file_read_link("/proc/self/ns/user", NULL);
                g_autofree char *p = g_strdup_printf("/proc/%d/ns/user", (int) proc.pid);
                g_autofree char *theirs = g_file_read_link(p, NULL);
                g_assert_nonnull(theirs);
                if (userns)
                        g_assert_cmpstr(self, !=, theirs);
                else
                        g_assert_cmpstr(self, ==, theirs);
        }

        /* A forbidden call: the listener names it; our kill ends it. */
        {
                struct proto_access a = { .address = JAILCHECK_DEFAULT_PORT + JAILCHECK_CMD, .offset = JAILCHECK_CMD,
                                          .len = 1, .data = { JAILCHECK_CMD_FORBIDDEN_SYSCALL } };
                struct seccomp_notif *req = NULL;
                struct seccomp_notif_resp *resp = NULL;

                g_assert_cmpint(proto_send(proc.endpoint, PROTO_WRITE, &a, sizeof(a), NULL, 0), ==, 0);
                g_assert_cmpint(seccomp_notify_alloc(&req, &resp), ==, 0);
                g_assert_cmpint(seccomp_notify_receive(listener, req), ==, 0);
                g_assert_cmpint(req->pid, ==, proc.pid);
                g_assert_cmpint(req->data.nr, ==, SCMP_SYS(ptrace));
                seccomp_notify_free(req, resp);
        }
        g_assert_cmpint(kill(proc.pid, SIGKILL), ==, 0);
        g_assert_cmpint(waitpid(proc.pid, &status, 0), ==, proc.pid);
        g_assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        close(listener);
        close(proc.endpoint);
        close(proc.report);
}

static void test_jail_with_user_namespace(void) {
        check_jail(true);
}

static void test_jail_without_user_namespace(void) {
        check_jail(false);
}

/* Serving ends cleanly when the endpoint closes, even before Activate. */
static void test_device_exits_when_its_endpoint_closes(void) {
        struct device_process proc;
        int listener, status;

        spawn(true, JAIL_HOST_ID_BASE + 4243, &proc, &listener);
        /* Closing our end of the endpoint makes the device leave its loop: exit 0. */
        close(proc.endpoint);
        g_assert_cmpint(waitpid(proc.pid, &status, 0), ==, proc.pid);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
        close(listener);
        close(proc.report);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/jail/with-user-namespace", test_jail_with_user_namespace);
        g_test_add_func("/jail/without-user-namespace", test_jail_without_user_namespace);
        g_test_add_func("/jail/device-exits-when-its-endpoint-closes", test_device_exits_when_its_endpoint_closes);
        return g_test_run();
}
