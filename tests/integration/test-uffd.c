/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memmgr's uffd list over a real private bus with real userfaultfds: this
 * test registers the main uffd for its own mapping of a VM's memfd, child
 * processes register theirs as devices, some die, and memmgr must collect
 * exactly the dead dynamic ones, keep the static ones, and go on serving
 * every remaining uffd's faults under its new index. */

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus-util.h"
#include "harness.h"

#define MEMMGR "org.polyvm.MemoryManager1"
#define MEMMGR_PATH "/org/polyvm/MemoryManager1"
#define MEMORY1 "org.polyvm.Memory1"
#define MIB (UINT64_C(1) << 20)
#define VM_SIZE (8 * MIB)
/* RegisterUffd's base: where we mapped offset 0. */
#define BASE(p) ((uint64_t) (uintptr_t) (p))

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

static struct harness h;
static size_t page_size;
/* Every touch uses a page nobody touched before: only those fault. */
static uint64_t next_page = 1;

struct child {
        pid_t pid;
        int pidfd; /* opened before the child can be reaped: exact */
        int sock;
        int uffd;  /* ours until registered */
        uint64_t base; /* where it mapped the memfd: RegisterDeviceUffd's base */
};

/* A uffd guarding [p, p + len) against missing pages. Faults from the
 * kernel need a full uffd (root); user-mode-only ones do for this test's
 * own reads when we are not root. */
static int guard(void *p, size_t len) {
        struct uffdio_api api = { .api = UFFD_API };
        struct uffdio_register reg = {
                .range = { .start = (uintptr_t) p, .len = len },
                .mode = UFFDIO_REGISTER_MODE_MISSING,
        };
        int fd;

        fd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
        if (fd < 0 && errno == EPERM)
                fd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
        if (fd < 0 || ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
                return -1;
        return fd;
}

static void *map_memfd(int memfd) {
        void *p = mmap(NULL, VM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        return p == MAP_FAILED ? NULL : p;
}

/* The fd with the address of the sender's mapping. */
static int send_fd(int sock, int fd, uint64_t base) {
        struct iovec iov = { .iov_base = &base, .iov_len = sizeof(base) };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } u = { 0 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        return sendmsg(sock, &msg, 0) == sizeof(base) ? 0 : -1;
}

static int recv_fd(int sock, uint64_t *ret_base) {
        struct iovec iov = { .iov_base = ret_base, .iov_len = sizeof(*ret_base) };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } u;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
        struct cmsghdr *cm;
        int fd;

        if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != sizeof(*ret_base))
                return -1;
        cm = CMSG_FIRSTHDR(&msg);
        if (!cm || cm->cmsg_type != SCM_RIGHTS)
                return -1;
        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
        return fd;
}

/* The child: maps guest memory, guards it, hands the uffd over (keeping
 * no copy, as a device process should) and reads the pages it is told. */
static _Noreturn void child_main(int sock, int memfd) {
        volatile unsigned char *p = map_memfd(memfd);
        uint64_t page;
        int uffd;

        if (!p)
                _exit(2);
        uffd = guard((void *) p, VM_SIZE);
        if (uffd < 0 || send_fd(sock, uffd, BASE(p)) < 0)
                _exit(3);
        close(uffd);
        while (recv(sock, &page, sizeof(page), 0) == sizeof(page)) {
                unsigned char v = p[page * page_size + 7];
                if (send(sock, &v, 1, 0) != 1)
                        _exit(4);
        }
        _exit(0);
}

static struct child spawn_child(int memfd) {
        struct child c;
        int sv[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
        c.pid = fork();
        g_assert_cmpint(c.pid, >=, 0);
        if (c.pid == 0) {
                close(sv[0]);
                child_main(sv[1], memfd);
        }
        close(sv[1]);
        c.sock = sv[0];
        c.pidfd = (int) syscall(SYS_pidfd_open, c.pid, 0);
        g_assert_cmpint(c.pidfd, >=, 0);
        c.uffd = recv_fd(c.sock, &c.base);
        g_assert_cmpint(c.uffd, >=, 0);
        return c;
}

/* Has the child read a fresh page; true if it answered (with zeros) in time. */
static gboolean child_touch(struct child *c) {
        uint64_t page = next_page++;
        struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
        unsigned char v = 0xff;

        g_assert_cmpuint(page, <, VM_SIZE / page_size);
        g_assert_cmpint(send(c->sock, &page, sizeof(page), 0), ==, sizeof(page));
        if (poll(&pfd, 1, 5000) != 1)
                return FALSE;
        g_assert_cmpint(recv(c->sock, &v, 1, 0), ==, 1);
        g_assert_cmpuint(v, ==, 0);
        return TRUE;
}

static void child_kill(struct child *c) {
        int status;

        g_assert_cmpint(kill(c->pid, SIGKILL), ==, 0);
        g_assert_cmpint(waitpid(c->pid, &status, 0), ==, c->pid);
        close(c->sock);
        close(c->pidfd);
        c->pid = 0;
}

static void child_stop(struct child *c) {
        int status;

        if (c->pid <= 0)
                return;
        close(c->sock); /* its recv() ends: it exits */
        g_assert_cmpint(waitpid(c->pid, &status, 0), ==, c->pid);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);
        close(c->pidfd);
        c->pid = 0;
}

/* Calls a register method; returns the D-Bus error name or NULL and the result. */
static char *call_registerv(sd_bus *bus, const char *member, const char *types, uint32_t *ret_index, int *ret_static,
                            char **ret_message, va_list ap) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        char *name = NULL;
        int r, is_static = -1;
        uint32_t index = UINT32_MAX;

        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, MEMMGR, MEMMGR_PATH, MEMMGR, member), >=, 0);
        g_assert_cmpint(sd_bus_message_appendv(m, types, ap), >=, 0);
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0) {
                name = g_strdup(error.name);
                if (ret_message)
                        *ret_message = g_strdup(error.message);
        } else if (ret_index) {
                g_assert_cmpint(sd_bus_message_read(reply, "ub", &index, &is_static), >, 0);
                *ret_index = index;
                *ret_static = is_static;
        }
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        return name;
}

static char *call_register(sd_bus *bus, const char *member, const char *types, uint32_t *ret_index, int *ret_static,
                           ...) {
        va_list ap;
        char *name;

        va_start(ap, ret_static);
        name = call_registerv(bus, member, types, ret_index, ret_static, NULL, ap);
        va_end(ap);
        return name;
}

/* The call must fail with the error named want, its message containing in_message. */
static void expect_error(sd_bus *bus, const char *want, const char *in_message, const char *member, const char *types,
                         ...) {
        g_autofree char *name = NULL, *message = NULL;
        va_list ap;

        va_start(ap, types);
        name = call_registerv(bus, member, types, NULL, NULL, &message, ap);
        va_end(ap);
        g_assert_cmpstr(name, ==, want);
        if (!message || !strstr(message, in_message))
                g_error("%s: expected \"%s\" in \"%s\"", member, in_message, message ? message : "(null)");
}

static void register_device(const char *vm, struct child *c, uint32_t want_index, gboolean want_static) {
        uint32_t index;
        int is_static;
        g_autofree char *err = call_register(h.bus, "RegisterDeviceUffd", "shht", &index, &is_static, vm, c->uffd,
                                             c->pidfd, c->base);

        if (err)
                g_test_message("RegisterDeviceUffd: %s", err);
        g_assert_null(err);
        g_assert_cmpuint(index, ==, want_index);
        g_assert_cmpint(is_static, ==, want_static);
        close(c->uffd); /* memmgr holds the only copy now */
        c->uffd = -1;
}

struct uffd_row {
        uint32_t index;
        int is_static;
        uint32_t pid;
};

/* Uffds and UffdCount are two reads; a collection may run between them
 * while processes die, so read until a pair agrees (memmgr's single thread
 * answers each read from one state). */
static GArray *get_uffds(const char *path) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        GArray *rows = g_array_new(FALSE, FALSE, sizeof(struct uffd_row));
        uint32_t count = 0;

        for (unsigned attempt = 0; attempt < 100; attempt++) {
                sd_bus_message *reply = NULL;
                struct uffd_row row;
                int r;

                g_array_set_size(rows, 0);
                g_assert_cmpint(sd_bus_get_property(h.bus, MEMMGR, path, MEMORY1, "Uffds", &error, &reply, "a(ubu)"),
                                >=, 0);
                g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(ubu)"), >, 0);
                while ((r = sd_bus_message_read(reply, "(ubu)", &row.index, &row.is_static, &row.pid)) > 0)
                        g_array_append_val(rows, row);
                g_assert_cmpint(r, ==, 0);
                sd_bus_message_unref(reply);
                g_assert_cmpint(sd_bus_get_property_trivial(h.bus, MEMMGR, path, MEMORY1, "UffdCount", &error, 'u',
                                                            &count),
                                >=, 0);
                if (count == rows->len)
                        break;
                g_usleep(20 * 1000);
        }
        g_assert_cmpuint(count, ==, rows->len);
        for (guint i = 0; i < rows->len; i++)
                g_assert_cmpuint(g_array_index(rows, struct uffd_row, i).index, ==, i);
        return rows;
}

/* Faults served through each current uffd, by index. */
static GArray *get_uffd_faults(const char *path) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        GArray *faults = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        uint64_t v;
        int r;

        g_assert_cmpint(sd_bus_get_property(h.bus, MEMMGR, path, MEMORY1, "UffdFaults", &error, &reply, "at"), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "t"), >, 0);
        while ((r = sd_bus_message_read(reply, "t", &v)) > 0)
                g_array_append_val(faults, v);
        g_assert_cmpint(r, ==, 0);
        sd_bus_message_unref(reply);
        return faults;
}

static uint64_t get_faults_served(const char *path) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t v = 0;

        g_assert_cmpint(sd_bus_get_property_trivial(h.bus, MEMMGR, path, MEMORY1, "FaultsServed", &error, 't', &v), >=,
                        0);
        return v;
}

/* Index of pid in the list, or -1. */
static int index_of(GArray *rows, pid_t pid) {
        for (guint i = 0; i < rows->len; i++)
                if (g_array_index(rows, struct uffd_row, i).pid == (uint32_t) pid)
                        return (int) i;
        return -1;
}

static gboolean wait_uffd_count(const char *path, guint count, int timeout_ms) {
        for (int waited = 0;; waited += 20) {
                g_autoptr(GArray) rows = get_uffds(path);
                if (rows->len == count)
                        return TRUE;
                if (waited >= timeout_ms)
                        return FALSE;
                g_usleep(20 * 1000);
        }
}

static uint64_t faults_of(const char *path, pid_t pid) {
        g_autoptr(GArray) rows = get_uffds(path);
        g_autoptr(GArray) faults = get_uffd_faults(path);
        int i = index_of(rows, pid);

        g_assert_cmpint(i, >=, 0);
        g_assert_cmpuint(faults->len, ==, rows->len);
        return g_array_index(faults, uint64_t, i);
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        unsigned *seen = userdata;
        const char *iface, *prop;

        if (sd_bus_message_read(m, "s", &iface) <= 0 || strcmp(iface, MEMORY1) != 0)
                return 0;
        if (sd_bus_message_enter_container(m, 'a', "{sv}") <= 0)
                return 0;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                if (sd_bus_message_read(m, "s", &prop) > 0 && strcmp(prop, "Uffds") == 0)
                        (*seen)++;
                (void) sd_bus_message_skip(m, "v");
                (void) sd_bus_message_exit_container(m);
        }
        return 0;
}

static void drain_signals(void) {
        for (int i = 0; i < 10; i++)
                if (sd_bus_process(h.bus, NULL) == 0)
                        (void) sd_bus_wait(h.bus, 20 * 1000);
}

static void test_dead_dynamic_uffds_are_collected_and_the_rest_still_served(void) {
        g_autofree char *path = harness_memory_path("uffd-vm");
        g_autoptr(GArray) rows = NULL;
        struct child a, b, c, d;
        volatile unsigned char *mem;
        uint32_t index;
        int memfd, uffd, is_static;
        unsigned changed = 0;
        sd_bus_slot *slot = NULL;
        pid_t memmgr_pid, a_pid, b_pid;
        g_autofree char *err = NULL;

        g_assert_cmpint(sd_bus_match_signal(h.bus, &slot, MEMMGR, path, "org.freedesktop.DBus.Properties",
                                            "PropertiesChanged", on_properties_changed, &changed), >=, 0);
        memfd = harness_allocate_memory(&h, "uffd-vm", VM_SIZE);
        mem = map_memfd(memfd);
        g_assert_nonnull(mem);
        rows = get_uffds(path);
        g_assert_cmpuint(rows->len, ==, 0);
        g_clear_pointer(&rows, g_array_unref);

        /* The main uffd: ours, as the launcher's. */
        uffd = guard((void *) mem, VM_SIZE);
        g_assert_cmpint(uffd, >=, 0);
        err = call_register(h.bus, "RegisterUffd", "sht", &index, &is_static, "uffd-vm", uffd,
                            (uint64_t) (uintptr_t) mem);
        g_assert_null(err);
        g_assert_cmpuint(index, ==, 0);
        g_assert_true(is_static);
        close(uffd);
        /* Our own read of a fresh page waits for memmgr, which fills zeros. */
        g_assert_cmpuint(mem[next_page++ * page_size], ==, 0);
        g_assert_cmpuint(faults_of(path, getpid()), ==, 1);

        /* a: a static device (before the count); b, c, d: hot-plugged. */
        a = spawn_child(memfd);
        register_device("uffd-vm", &a, 1, TRUE);
        err = call_register(h.bus, "SetNumStaticDevices", "su", NULL, NULL, "uffd-vm", 1);
        g_assert_null(err);
        b = spawn_child(memfd);
        register_device("uffd-vm", &b, 2, FALSE);
        c = spawn_child(memfd);
        register_device("uffd-vm", &c, 3, FALSE);
        d = spawn_child(memfd);
        register_device("uffd-vm", &d, 4, FALSE);

        rows = get_uffds(path);
        g_assert_cmpuint(rows->len, ==, 5);
        g_assert_cmpint(index_of(rows, getpid()), ==, 0);
        g_assert_cmpint(index_of(rows, a.pid), ==, 1);
        g_assert_cmpint(index_of(rows, b.pid), ==, 2);
        g_assert_cmpint(index_of(rows, c.pid), ==, 3);
        g_assert_cmpint(index_of(rows, d.pid), ==, 4);
        for (guint i = 0; i < rows->len; i++)
                g_assert_cmpint(g_array_index(rows, struct uffd_row, i).is_static, ==, i < 2);
        g_clear_pointer(&rows, g_array_unref);

        /* Each process's fault comes through its own uffd. */
        g_assert_true(child_touch(&a));
        g_assert_true(child_touch(&b));
        g_assert_true(child_touch(&d));
        g_assert_true(child_touch(&d));
        g_assert_cmpuint(faults_of(path, a.pid), ==, 1);
        g_assert_cmpuint(faults_of(path, b.pid), ==, 1);
        g_assert_cmpuint(faults_of(path, c.pid), ==, 0);
        g_assert_cmpuint(faults_of(path, d.pid), ==, 2);
        g_assert_cmpuint(get_faults_served(path), ==, 5);

        /* With memmgr stopped, d faults (its uffd readable under token 4)
         * and b dies; memmgr then sees both and must still answer d. */
        memmgr_pid = harness_name_pid(&h, MEMMGR);
        g_assert_cmpint(memmgr_pid, >, 0);
        g_assert_cmpint(kill(memmgr_pid, SIGSTOP), ==, 0);
        uint64_t page = next_page++;
        g_assert_cmpint(send(d.sock, &page, sizeof(page), 0), ==, sizeof(page));
        a_pid = a.pid;
        b_pid = b.pid;
        child_kill(&a); /* static: stays */
        child_kill(&b); /* dynamic at 2: d moves from 4 to 2 */
        g_usleep(50 * 1000);
        g_assert_cmpint(kill(memmgr_pid, SIGCONT), ==, 0);
        {
                struct pollfd pfd = { .fd = d.sock, .events = POLLIN };
                unsigned char v = 0xff;
                g_assert_cmpint(poll(&pfd, 1, 5000), ==, 1);
                g_assert_cmpint(recv(d.sock, &v, 1, 0), ==, 1);
                g_assert_cmpuint(v, ==, 0);
        }

        g_assert_true(wait_uffd_count(path, 4, 5000));
        rows = get_uffds(path);
        g_assert_cmpint(index_of(rows, getpid()), ==, 0);
        g_assert_cmpint(index_of(rows, a_pid), ==, 1);
        g_assert_cmpint(index_of(rows, b_pid), ==, -1);
        g_assert_cmpint(index_of(rows, d.pid), ==, 2);
        g_assert_cmpint(index_of(rows, c.pid), ==, 3);
        g_assert_cmpint(g_array_index(rows, struct uffd_row, 1).is_static, ==, TRUE);
        g_clear_pointer(&rows, g_array_unref);
        /* d's count moved with it. */
        g_assert_cmpuint(faults_of(path, d.pid), ==, 3);

        /* The survivors' new faults reach them under their new indexes. */
        g_assert_true(child_touch(&d));
        g_assert_true(child_touch(&c));
        g_assert_cmpuint(faults_of(path, d.pid), ==, 4);
        g_assert_cmpuint(faults_of(path, c.pid), ==, 1);
        g_assert_cmpuint(mem[next_page++ * page_size], ==, 0);
        g_assert_cmpuint(faults_of(path, getpid()), ==, 2);

        /* The last entry dying moves nobody. */
        child_kill(&c);
        g_assert_true(wait_uffd_count(path, 3, 5000));
        g_assert_true(child_touch(&d));
        g_assert_cmpuint(faults_of(path, d.pid), ==, 5);
        /* Still there after a while: the dead static one. */
        g_usleep(300 * 1000);
        rows = get_uffds(path);
        g_assert_cmpuint(rows->len, ==, 3);
        g_assert_cmpint(index_of(rows, a_pid), ==, 1);
        g_clear_pointer(&rows, g_array_unref);
        g_assert_cmpuint(get_faults_served(path), ==, 10);

        drain_signals();
        /* Registered 5 times, collected twice (at least one signal each). */
        g_assert_cmpuint(changed, >=, 7);

        /* Freeing the memory releases every uffd: faults are plain again. */
        g_assert_null(harness_call_error(&h, MEMMGR, MEMMGR_PATH, MEMMGR, "FreeMemory", NULL, "s", "uffd-vm"));
        g_assert_true(child_touch(&d));
        g_assert_cmpuint(mem[next_page++ * page_size], ==, 0);
        child_stop(&d);
        munmap((void *) mem, VM_SIZE);
        close(memfd);
        sd_bus_slot_unref(slot);
}

static void test_bad_registrations_get_named_errors(void) {
        g_autofree char *path = harness_memory_path("uffd-bad");
        volatile unsigned char *mem;
        sd_bus *other = NULL;
        struct child a, reaped;
        uint32_t index;
        int memfd, uffd, efd, raw, is_static, status;

        memfd = harness_allocate_memory(&h, "uffd-bad", VM_SIZE);
        mem = map_memfd(memfd);
        g_assert_nonnull(mem);
        uffd = guard((void *) mem, VM_SIZE);
        g_assert_cmpint(uffd, >=, 0);
        efd = eventfd(0, EFD_CLOEXEC);
        a = spawn_child(memfd);

        /* Before the main uffd. */
        expect_error(h.bus, "org.polyvm.Error.BadState", "RegisterUffd comes first", "RegisterDeviceUffd", "shht",
                     "uffd-bad", a.uffd, a.pidfd, a.base);
        expect_error(h.bus, "org.polyvm.Error.BadState", "no main uffd", "SetNumStaticDevices", "su", "uffd-bad", 1);

        /* Not a VM, not a uffd, a uffd without UFFDIO_API. */
        expect_error(h.bus, "org.polyvm.Error.NoSuchVm", "nope", "RegisterUffd", "sht", "nope", uffd, BASE(mem));
        expect_error(h.bus, "org.polyvm.Error.InvalidArguments", "not a userfaultfd", "RegisterUffd", "sht", "uffd-bad",
                     efd, BASE(mem));
        expect_error(h.bus, "org.polyvm.Error.InvalidArguments", "not a userfaultfd", "RegisterUffd", "sht", "uffd-bad",
                     memfd, BASE(mem));
        raw = (int) syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
        g_assert_cmpint(raw, >=, 0);
        expect_error(h.bus, "org.polyvm.Error.InvalidArguments", "UFFDIO_API", "RegisterUffd", "sht", "uffd-bad", raw,
                     BASE(mem));
        close(raw);

        /* Only the memory's owner. */
        g_assert_cmpint(bus_open(h.address, &other), >=, 0);
        expect_error(other, "org.polyvm.Error.NotPermitted", "owner", "RegisterUffd", "sht", "uffd-bad", uffd, BASE(mem));

        /* base: the owner's page-aligned address of offset 0. */
        expect_error(h.bus, "org.polyvm.Error.InvalidArguments", "base: 0x0 ", "RegisterUffd", "sht", "uffd-bad", uffd,
                     UINT64_C(0));
        expect_error(h.bus, "org.polyvm.Error.InvalidArguments", "page-aligned", "RegisterUffd", "sht", "uffd-bad",
                     uffd, BASE(mem) + 1);

        g_assert_null(call_register(h.bus, "RegisterUffd", "sht", &index, &is_static, "uffd-bad", uffd, BASE(mem)));
        g_assert_cmpuint(index, ==, 0);
        g_assert_true(is_static);
        expect_error(h.bus, "org.polyvm.Error.BadState", "already", "RegisterUffd", "sht", "uffd-bad", uffd, BASE(mem));
        close(uffd);

        expect_error(other, "org.polyvm.Error.NotPermitted", "owner", "RegisterDeviceUffd", "shht", "uffd-bad", a.uffd,
                     a.pidfd, a.base);
        expect_error(other, "org.polyvm.Error.NotPermitted", "owner", "SetNumStaticDevices", "su", "uffd-bad", 0);
        other = sd_bus_flush_close_unref(other);

        /* Bad pidfds: another kind of fd, a reaped process; a bad uffd. */
        expect_error(h.bus, "org.polyvm.Error.InvalidArguments", "not a pidfd", "RegisterDeviceUffd", "shht",
                     "uffd-bad", a.uffd, efd, a.base);
        reaped = spawn_child(memfd);
        close(reaped.sock);
        g_assert_cmpint(waitpid(reaped.pid, &status, 0), ==, reaped.pid);
        expect_error(h.bus, "org.polyvm.Error.InvalidArguments", "reaped", "RegisterDeviceUffd", "shht", "uffd-bad",
                     reaped.uffd, reaped.pidfd, reaped.base);
        close(reaped.uffd);
        close(reaped.pidfd);
        expect_error(h.bus, "org.polyvm.Error.InvalidArguments", "not a userfaultfd", "RegisterDeviceUffd", "shht",
                     "uffd-bad", efd, a.pidfd, a.base);
        /* base as for RegisterUffd. */
        expect_error(h.bus, "org.polyvm.Error.InvalidArguments", "base: 0x0 ", "RegisterDeviceUffd", "shht",
                     "uffd-bad", a.uffd, a.pidfd, UINT64_C(0));
        expect_error(h.bus, "org.polyvm.Error.InvalidArguments", "page-aligned", "RegisterDeviceUffd", "shht",
                     "uffd-bad", a.uffd, a.pidfd, a.base + 1);

        /* The static count: within bounds, once; a failed call changes nothing. */
        expect_error(h.bus, "org.polyvm.Error.InvalidArguments", "5000", "SetNumStaticDevices", "su", "uffd-bad", 5000);
        g_assert_null(call_register(h.bus, "SetNumStaticDevices", "su", NULL, NULL, "uffd-bad", 0));
        expect_error(h.bus, "org.polyvm.Error.BadState", "already", "SetNumStaticDevices", "su", "uffd-bad", 3);
        register_device("uffd-bad", &a, 1, FALSE);

        /* Nothing half-made: exactly the two good registrations. */
        g_assert_true(wait_uffd_count(path, 2, 0));
        child_stop(&a);
        g_assert_true(wait_uffd_count(path, 1, 5000));
        g_assert_null(harness_call_error(&h, MEMMGR, MEMMGR_PATH, MEMMGR, "FreeMemory", NULL, "s", "uffd-bad"));
        close(efd);
        munmap((void *) mem, VM_SIZE);
        close(memfd);
}

/* How many userfaultfds process pid holds. */
static unsigned count_uffds(pid_t pid) {
        g_autofree char *dir = g_strdup_printf("/proc/%d/fd", (int) pid);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;
        unsigned n = 0;

        g_assert_nonnull(d);
        while ((name = g_dir_read_name(d))) {
                g_autofree char *link = g_build_filename(dir, name, NULL);
                g_autofree char *target = g_file_read_link(link, NULL);
                if (target && g_str_equal(target, "anon_inode:[userfaultfd]"))
                        n++;
        }
        return n;
}

/* CreateVm: the launcher guards its mapping and memmgr holds the only copy
 * of that uffd as index 0; DestroyVm releases it. */
static void test_launcher_registers_its_main_uffd(void) {
        g_autofree char *kernel = harness_build_path("guest/polyvm-testguest.elf");
        g_autofree char *config = g_strdup_printf("{\"kernel\": \"%s\", \"memory_mib\": 16}", kernel);
        g_autofree char *path = harness_memory_path("uffd-launched");
        g_autoptr(GArray) rows = NULL;
        pid_t launcher, memmgr;
        unsigned before;

        memmgr = harness_name_pid(&h, MEMMGR);
        g_assert_cmpint(memmgr, >, 0);
        before = count_uffds(memmgr);
        g_assert_null(harness_call_error(&h, "org.polyvm.Launcher1", "/org/polyvm/Launcher1", "org.polyvm.Launcher1",
                                         "CreateVm", NULL, "ss", "uffd-launched", config));
        launcher = harness_name_pid(&h, "org.polyvm.Launcher1");
        g_assert_cmpint(launcher, >, 0);

        rows = get_uffds(path);
        g_assert_cmpuint(rows->len, ==, 1);
        g_assert_cmpuint(g_array_index(rows, struct uffd_row, 0).pid, ==, (uint32_t) launcher);
        g_assert_true(g_array_index(rows, struct uffd_row, 0).is_static);
        g_assert_cmpuint(count_uffds(launcher), ==, 0);
        g_assert_cmpuint(count_uffds(memmgr), ==, before + 1);

        g_assert_null(harness_call_error(&h, "org.polyvm.Launcher1", "/org/polyvm/Launcher1", "org.polyvm.Launcher1",
                                         "DestroyVm", NULL, "s", "uffd-launched"));
        for (int i = 0; i < 250 && count_uffds(memmgr) != before; i++)
                g_usleep(20 * 1000);
        g_assert_cmpuint(count_uffds(memmgr), ==, before);
}

static void test_introspection_matches_xml(void) {
        g_autofree char *path = harness_memory_path("uffd-xml");
        int memfd = harness_allocate_memory(&h, "uffd-xml", VM_SIZE);

        harness_compare_interface(&h, MEMMGR, MEMMGR_PATH, MEMMGR);
        harness_compare_interface(&h, MEMMGR, path, MEMORY1);
        g_assert_null(harness_call_error(&h, MEMMGR, MEMMGR_PATH, MEMMGR, "FreeMemory", NULL, "s", "uffd-xml"));
        close(memfd);
}

int main(int argc, char **argv) {
        int r;

        page_size = (size_t) sysconf(_SC_PAGESIZE);
        g_test_init(&argc, &argv, NULL);
        harness_start(&h);
        g_test_add_func("/uffd/dead-dynamic-uffds-are-collected-and-the-rest-still-served",
                        test_dead_dynamic_uffds_are_collected_and_the_rest_still_served);
        g_test_add_func("/uffd/bad-registrations-get-named-errors", test_bad_registrations_get_named_errors);
        g_test_add_func("/uffd/launcher-registers-its-main-uffd", test_launcher_registers_its_main_uffd);
        g_test_add_func("/uffd/introspection-matches-xml", test_introspection_matches_xml);
        r = g_test_run();
        harness_stop(&h);
        return r;
}
