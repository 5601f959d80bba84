/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polyvm-devmgr over a real private bus: device processes speak the device
 * protocol on the endpoint CreateDevice returns, are jailed, are reaped and
 * reported when they die, and bad input gets named errors. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus-util.h"
#include "harness.h"
#include "proto.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"
#define DEVICE_IFACE "org.polyvm.Device1"

static struct harness h;

/* Returns NULL on success (path, endpoint and pid set) or the error name. */
static char *create_device_on(sd_bus *bus, const char *kind, const char *config, char **path, int *fd, pid_t *pid,
                              char **message) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *p;
        int efd, r;
        uint32_t upid;

        r = sd_bus_call_method(bus, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &error, &reply, "sss", "vm1", kind,
                               config);
        if (r < 0) {
                char *name = g_strdup(error.name);
                if (message)
                        *message = g_strdup(error.message);
                sd_bus_error_free(&error);
                return name;
        }
        g_assert_cmpint(sd_bus_message_read(reply, "ohu", &p, &efd, &upid), >=, 0);
        *path = g_strdup(p);
        *fd = fcntl(efd, F_DUPFD_CLOEXEC, 3); /* the message owns efd */
        g_assert_cmpint(*fd, >=, 0);
        *pid = (pid_t) upid;
        sd_bus_message_unref(reply);
        return NULL;
}

static void create_device(const char *kind, const char *config, char **path, int *fd, pid_t *pid) {
        g_autofree char *message = NULL;
        g_autofree char *err = create_device_on(h.bus, kind, config, path, fd, pid, &message);
        if (err)
                g_error("CreateDevice(%s, %s) failed: %s: %s", kind, config, err, message);
}

static void destroy_device(const char *path) {
        g_autofree char *err = harness_call_error(&h, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", NULL, "o", path);
        g_assert_null(err);
}

static void activate(int fd) {
        g_assert_cmpint(proto_call(fd, PROTO_ACTIVATE, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
}

static int pio_read(int fd, uint16_t base, unsigned offset, uint8_t *value) {
        struct proto_access a = { .address = base + offset, .offset = offset, .len = 1 };
        struct proto_msg reply;
        int r = proto_call(fd, PROTO_READ, &a, sizeof(a), NULL, 0, &reply, 2000, NULL, 0);
        if (r == 0)
                *value = reply.body.data.data[0];
        return r;
}

static uint8_t pio_read_ok(int fd, uint16_t base, unsigned offset) {
        uint8_t v = 0;
        g_assert_cmpint(pio_read(fd, base, offset, &v), ==, 0);
        return v;
}

static void pio_write(int fd, uint16_t base, unsigned offset, uint8_t value) {
        struct proto_access a = { .address = base + offset, .offset = offset, .len = 1, .data = { value } };
        g_assert_cmpint(proto_send(fd, PROTO_WRITE, &a, sizeof(a), NULL, 0), ==, 0);
}

static int attach_fd(int fd, uint32_t role, int passed) {
        struct proto_attach_fd f = { .role = role };
        return proto_call(fd, PROTO_ATTACH_FD, &f, sizeof(f), &passed, 1, NULL, 2000, NULL, 0);
}

static gboolean readable(int fd, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/* The endpoint speaks the protocol: Activate once, then ranges, port I/O,
 * console output and input with an interrupt. */
static void test_serial_serves_the_protocol(void) {
        g_autofree char *path = NULL;
        struct proto_msg reply;
        char err[PROTO_ERROR_MAX];
        int fd, console[2], irq;
        pid_t pid;
        char buf[8] = {};
        uint64_t count;

        create_device("serial", "{}", &path, &fd, &pid);
        g_assert_true(g_str_has_prefix(path, DEVMGR_PATH "/device/"));

        /* Nothing but Activate before Activate. */
        g_assert_cmpint(proto_call(fd, PROTO_GET_RANGES, NULL, 0, NULL, 0, &reply, 2000, err, sizeof(err)), ==, -EPERM);
        activate(fd);
        g_assert_cmpint(proto_call(fd, PROTO_ACTIVATE, NULL, 0, NULL, 0, NULL, 2000, err, sizeof(err)), ==, -EALREADY);
        g_assert_nonnull(strstr(err, "already active"));

        /* Still serving after the refused Activate. */
        g_assert_cmpint(proto_call(fd, PROTO_GET_RANGES, NULL, 0, NULL, 0, &reply, 2000, NULL, 0), ==, 0);
        g_assert_cmpuint(reply.body.ranges.count, ==, 1);
        g_assert_cmphex(reply.body.ranges.ranges[0].base, ==, 0x3f8);
        g_assert_cmpuint(reply.body.ranges.ranges[0].len, ==, 8);
        g_assert_cmpuint(reply.body.ranges.ranges[0].bus, ==, PROTO_BUS_PIO);

        /* Guest output reaches the console socket. */
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, console), ==, 0);
        g_assert_cmpint(attach_fd(fd, PROTO_FD_CONSOLE, console[1]), ==, 0);
        close(console[1]);
        pio_write(fd, 0x3f8, 0, 'h');
        pio_write(fd, 0x3f8, 0, 'i');
        g_assert_true(readable(console[0], 2000));
        for (size_t got = 0; got < 2;) {
                g_assert_true(readable(console[0], 2000));
                ssize_t n = read(console[0], buf + got, sizeof(buf) - 1 - got);
                g_assert_cmpint(n, >, 0);
                got += (size_t) n;
        }
        g_assert_cmpstr(buf, ==, "hi");

        /* LSR: transmitter empty, no data. */
        g_assert_cmphex(pio_read_ok(fd, 0x3f8, 5), ==, 0x60);

        /* Console input raises the interrupt (an irqfd edge) and lands in RBR. */
        irq = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        g_assert_cmpint(irq, >=, 0);
        g_assert_cmpint(attach_fd(fd, PROTO_FD_IRQ, irq), ==, 0);
        pio_write(fd, 0x3f8, 1, 0x01); /* IER: received data */
        g_assert_cmpint(write(console[0], "x", 1), ==, 1);
        g_assert_true(readable(irq, 2000));
        g_assert_cmpint(read(irq, &count, sizeof(count)), ==, sizeof(count));
        g_assert_cmphex(pio_read_ok(fd, 0x3f8, 5) & 0x01, ==, 0x01);
        g_assert_cmphex(pio_read_ok(fd, 0x3f8, 2) & 0x0f, ==, 0x04);
        g_assert_cmpint(pio_read_ok(fd, 0x3f8, 0), ==, 'x');
        g_assert_cmphex(pio_read_ok(fd, 0x3f8, 2) & 0x0f, ==, 0x01);

        /* Accesses outside the ranges and unknown fd roles are refused. */
        {
                struct proto_access a = { .address = 0x400, .offset = 8, .len = 1 };
                int efd = eventfd(0, EFD_CLOEXEC);
                g_assert_cmpint(proto_call(fd, PROTO_READ, &a, sizeof(a), NULL, 0, &reply, 2000, NULL, 0), ==, -EINVAL);
                g_assert_cmpint(attach_fd(fd, PROTO_FD_MEMORY, efd), ==, -EINVAL);
                close(efd);
                g_assert_cmpint(proto_call(fd, PROTO_READ_CONFIG, &(struct proto_u32) {}, sizeof(struct proto_u32),
                                           NULL, 0, &reply, 2000, NULL, 0), ==, -EOPNOTSUPP);
        }

        /* A malformed packet gets an error reply; the device lives on. */
        {
                struct proto_header bad = { .magic = 0xdeadbeef, .version = 9, .type = 77 };
                g_assert_cmpint(send(fd, &bad, sizeof(bad), 0), ==, sizeof(bad));
                g_assert_cmpint(proto_recv(fd, &reply, 2000), ==, 0);
                g_assert_cmpuint(reply.hdr.type, ==, PROTO_REPLY_ERROR);
                g_assert_cmpint(reply.body.error.error, ==, EBADMSG);
                g_assert_cmphex(pio_read_ok(fd, 0x3f8, 5), ==, 0x60);
        }
        g_assert_true(harness_pid_alive(pid));

        g_assert_cmpint(proto_call(fd, PROTO_SHUTDOWN, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_true(harness_wait_property(&h, DEVMGR, path, DEVICE_IFACE, "State", "exited", 5000));
        {
                g_autofree char *reason = harness_get_string(&h, DEVMGR, path, DEVICE_IFACE, "ExitReason");
                g_assert_cmpstr(reason, ==, "exited with status 0");
        }
        destroy_device(path);
        close(fd);
        close(console[0]);
        close(irq);
}

static char *read_proc(pid_t pid, const char *file) {
        g_autofree char *p = g_strdup_printf("/proc/%d/%s", (int) pid, file);
        char *contents = NULL;
        g_assert_true(g_file_get_contents(p, &contents, NULL, NULL));
        return contents;
}

static char *status_field(const char *status, const char *field) {
        g_autofree char *key = g_strdup_printf("\n%s:", field);
        const char *s = strstr(status, key);
        g_assert_nonnull(s);
        s += strlen(key);
        while (*s == ' ' || *s == '\t')
                s++;
        return g_strndup(s, strcspn(s, "\n"));
}

static void assert_ns_differs(pid_t pid, const char *ns) {
        g_autofree char *ours_path = g_strdup_printf("/proc/self/ns/%s", ns);
        g_autofree char *theirs_path = g_strdup_printf("/proc/%d/ns/%s", (int) pid, ns);
        g_autofree char *ours = g_file_read_link(ours_path, NULL);
        g_autofree char *theirs = g_file_read_link(theirs_path, NULL);
        g_assert_nonnull(ours);
        g_assert_nonnull(theirs);
        g_assert_cmpstr(ours, !=, theirs);
}

/* The device process is jailed before it serves anything. */
static void test_device_is_jailed(void) {
        static const char *const kinds[] = { "serial", "rtc" };

        for (size_t k = 0; k < G_N_ELEMENTS(kinds); k++) {
                g_autofree char *path = NULL, *status = NULL, *cap_eff = NULL, *cap_bnd = NULL, *cap_prm = NULL;
                g_autofree char *nnp = NULL, *seccomp = NULL, *uid = NULL, *nspid = NULL, *mountinfo = NULL;
                int fd;
                pid_t pid;

                create_device(kinds[k], "", &path, &fd, &pid);
                /* The jail is complete once the device answers. */
                activate(fd);

                assert_ns_differs(pid, "pid");
                assert_ns_differs(pid, "net");
                assert_ns_differs(pid, "mnt");
                assert_ns_differs(pid, "ipc");
                assert_ns_differs(pid, "uts");

                status = read_proc(pid, "status");
                cap_eff = status_field(status, "CapEff");
                cap_prm = status_field(status, "CapPrm");
                cap_bnd = status_field(status, "CapBnd");
                nnp = status_field(status, "NoNewPrivs");
                seccomp = status_field(status, "Seccomp");
                uid = status_field(status, "Uid");
                nspid = status_field(status, "NSpid");
                g_assert_cmpstr(cap_eff, ==, "0000000000000000");
                g_assert_cmpstr(cap_prm, ==, "0000000000000000");
                g_assert_cmpstr(cap_bnd, ==, "0000000000000000");
                g_assert_cmpstr(nnp, ==, "1");
                g_assert_cmpstr(seccomp, ==, "2");
                /* A uid of its own from devmgr's range (65534 inside its
                 * user namespace: tests/integration/test-jail.c). */
                {
                        g_auto(GStrv) ids = g_strsplit(uid, "\t", -1);
                        g_assert_cmpuint(g_strv_length(ids), ==, 4);
                        g_assert_cmpuint(g_ascii_strtoull(ids[0], NULL, 10), >=, 0x70000000u);
                        for (size_t i = 1; i < 4; i++)
                                g_assert_cmpstr(ids[i], ==, ids[0]);
                }
                /* pid 1 of its own pid namespace. */
                g_assert_true(g_str_has_suffix(nspid, "\t1"));
                /* Its root is an empty read-only tmpfs: one mount. */
                mountinfo = read_proc(pid, "mountinfo");
                g_assert_nonnull(strstr(mountinfo, " / / ro,"));
                {
                        g_auto(GStrv) lines = g_strsplit(g_strchomp(mountinfo), "\n", -1);
                        g_assert_cmpuint(g_strv_length(lines), ==, 1);
                }

                /* Still serving under its seccomp policy. */
                if (k == 0)
                        g_assert_cmphex(pio_read_ok(fd, 0x3f8, 5), ==, 0x60);
                else {
                        pio_write(fd, 0x70, 0, 0x0b);
                        g_assert_cmphex(pio_read_ok(fd, 0x70, 1), ==, 0x02);
                }
                g_assert_true(harness_pid_alive(pid));
                destroy_device(path);
                close(fd);
        }
}

static void test_destroy_device_ends_the_process(void) {
        g_autofree char *path = NULL, *err = NULL, *msg = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *state = NULL;
        int fd;
        pid_t pid;

        create_device("serial", "{\"port\": 760, \"irq\": 3}", &path, &fd, &pid);
        activate(fd);
        {
                struct proto_msg reply;
                g_assert_cmpint(proto_call(fd, PROTO_GET_RANGES, NULL, 0, NULL, 0, &reply, 2000, NULL, 0), ==, 0);
                g_assert_cmphex(reply.body.ranges.ranges[0].base, ==, 0x2f8);
        }
        g_assert_true(harness_pid_alive(pid));
        destroy_device(path);
        g_assert_true(harness_wait_pid_gone(pid, 2000));
        /* The reaped process leaves no zombie: /proc/<pid> is gone. */
        {
                g_autofree char *proc = g_strdup_printf("/proc/%d", (int) pid);
                g_assert_false(g_file_test(proc, G_FILE_TEST_EXISTS));
        }
        /* The endpoint hangs up, and the object is gone. */
        g_assert_cmpint(proto_call(fd, PROTO_GET_RANGES, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, -ECONNRESET);
        g_assert_cmpint(sd_bus_get_property_string(h.bus, DEVMGR, path, DEVICE_IFACE, "State", &error, &state), <, 0);
        sd_bus_error_free(&error);
        err = harness_call_error(&h, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", &msg, "o", path);
        g_assert_cmpstr(err, ==, "org.polyvm.Error.NoSuchDevice");
        close(fd);
}

static void expect_create_error(const char *kind, const char *config, const char *error_name, const char *in_message) {
        g_autofree char *msg = NULL, *path = NULL;
        g_autofree char *err = NULL;
        int fd = -1;
        pid_t pid;

        err = create_device_on(h.bus, kind, config, &path, &fd, &pid, &msg);
        g_assert_cmpstr(err, ==, error_name);
        g_assert_nonnull(msg);
        if (!strstr(msg, in_message))
                g_error("error message '%s' does not mention '%s'", msg, in_message);
}

static void test_create_device_refuses_bad_input(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char **kinds = NULL;
        pid_t devmgr;

        expect_create_error("floppy", "{}", "org.polyvm.Error.InvalidArguments", "floppy");
        expect_create_error("", "{}", "org.polyvm.Error.InvalidArguments", "kind");
        expect_create_error("serial", "{\"port\": ", "org.polyvm.Error.InvalidConfig", "not valid JSON");
        expect_create_error("serial", "[1, 2]", "org.polyvm.Error.InvalidConfig", "JSON object");
        expect_create_error("serial", "{\"port\": 70000}", "org.polyvm.Error.InvalidConfig", "serial.port");
        expect_create_error("serial", "{\"port\": -1}", "org.polyvm.Error.InvalidConfig", "serial.port");
        expect_create_error("serial", "{\"port\": \"0x3f8\"}", "org.polyvm.Error.InvalidConfig", "serial.port");
        expect_create_error("serial", "{\"irq\": 99}", "org.polyvm.Error.InvalidConfig", "serial.irq");
        expect_create_error("serial", "{\"speed\": 9600}", "org.polyvm.Error.InvalidConfig", "serial.speed");
        expect_create_error("rtc", "{\"port\": 112}", "org.polyvm.Error.InvalidConfig", "rtc.port");
        {
                /* An empty VM name. */
                sd_bus_error e = SD_BUS_ERROR_NULL;
                g_assert_cmpint(sd_bus_call_method(h.bus, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &e, NULL,
                                                   "sss", "", "serial", "{}"), <, 0);
                g_assert_cmpstr(e.name, ==, "org.polyvm.Error.InvalidArguments");
                sd_bus_error_free(&e);
        }
        {
                g_autofree char *msg = NULL;
                g_autofree char *err = harness_call_error(&h, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", &msg, "o",
                                                          DEVMGR_PATH "/device/9999");
                g_assert_cmpstr(err, ==, "org.polyvm.Error.NoSuchDevice");
        }

        /* Still the same service, still answering. */
        devmgr = harness_name_pid(&h, DEVMGR);
        g_assert_cmpint(devmgr, >, 0);
        g_assert_cmpint(sd_bus_get_property_strv(h.bus, DEVMGR, DEVMGR_PATH, DEVMGR, "Kinds", &error, &kinds), >=, 0);
        g_assert_true(g_strv_contains((const char *const *) kinds, "rtc"));
        g_assert_true(g_strv_contains((const char *const *) kinds, "serial"));
        g_assert_true(g_strv_contains((const char *const *) kinds, "jailcheck"));
        g_strfreev(kinds);
        g_assert_true(harness_pid_alive(devmgr));
}

static void test_killed_device_shows_failed(void) {
        g_autofree char *path = NULL, *reason = NULL, *state = NULL;
        int fd;
        pid_t pid;

        create_device("serial", "{}", &path, &fd, &pid);
        activate(fd);
        /* The device reports its first Activate to devmgr on its own channel. */
        g_assert_true(harness_wait_property(&h, DEVMGR, path, DEVICE_IFACE, "State", "active", 5000));
        g_assert_cmpint(kill(pid, SIGKILL), ==, 0);
        g_assert_true(harness_wait_property(&h, DEVMGR, path, DEVICE_IFACE, "State", "failed", 5000));
        reason = harness_get_string(&h, DEVMGR, path, DEVICE_IFACE, "ExitReason");
        g_assert_cmpstr(reason, ==, "killed by signal 9 (SIGKILL)");
        /* Reaped, not a zombie. */
        g_assert_true(harness_wait_pid_gone(pid, 2000));
        destroy_device(path);
        close(fd);
}

static void test_list_devices_and_object_manager(void) {
        g_autofree char *path = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *o, *kind, *vm;
        uint32_t upid;
        gboolean found = FALSE;
        int fd;
        pid_t pid;

        create_device("rtc", "{}", &path, &fd, &pid);
        g_assert_cmpint(sd_bus_call_method(h.bus, DEVMGR, DEVMGR_PATH, DEVMGR, "ListDevices", &error, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(ossu)"), >=, 0);
        while (sd_bus_message_read(reply, "(ossu)", &o, &kind, &vm, &upid) > 0)
                if (strcmp(o, path) == 0) {
                        g_assert_cmpstr(kind, ==, "rtc");
                        g_assert_cmpstr(vm, ==, "vm1");
                        g_assert_cmpuint(upid, ==, (uint32_t) pid);
                        found = TRUE;
                }
        g_assert_true(found);
        reply = sd_bus_message_unref(reply);

        /* The object manager at the root knows the device and its interface. */
        found = FALSE;
        g_assert_cmpint(sd_bus_call_method(h.bus, DEVMGR, DEVMGR_PATH, "org.freedesktop.DBus.ObjectManager",
                                           "GetManagedObjects", &error, &reply, ""), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}"), >=, 0);
        while (sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}") > 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "o", &o), >=, 0);
                if (strcmp(o, path) == 0)
                        found = TRUE;
                g_assert_cmpint(sd_bus_message_skip(reply, "a{sa{sv}}"), >=, 0);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
        }
        g_assert_true(found);
        sd_bus_message_unref(reply);

        destroy_device(path);
        close(fd);
}

/* A caller that leaves the bus takes its devices with it. */
static void test_devices_die_with_their_owner(void) {
        g_autofree char *path = NULL;
        sd_bus *other = NULL;
        int fd;
        pid_t pid;

        g_assert_cmpint(bus_open(h.address, &other), >=, 0);
        g_assert_null(create_device_on(other, "serial", "{}", &path, &fd, &pid, NULL));
        g_assert_true(harness_pid_alive(pid));
        sd_bus_flush_close_unref(other);
        g_assert_true(harness_wait_pid_gone(pid, 5000));
        close(fd);
}

struct seen {
        const char *path;
        gboolean added, removed, state_changed;
};

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct seen *seen = userdata;
        const char *member = sd_bus_message_get_member(m), *o = NULL;

        if (strcmp(member, "InterfacesAdded") == 0 || strcmp(member, "InterfacesRemoved") == 0) {
                if (sd_bus_message_read(m, "o", &o) >= 0 && strcmp(o, seen->path) == 0) {
                        if (member[10] == 'A')
                                seen->added = TRUE;
                        else
                                seen->removed = TRUE;
                }
        } else if (strcmp(member, "PropertiesChanged") == 0 && strcmp(sd_bus_message_get_path(m), seen->path) == 0) {
                const char *iface, *prop;
                if (sd_bus_message_read(m, "s", &iface) < 0 || strcmp(iface, DEVICE_IFACE) != 0)
                        return 0;
                if (sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
                        return 0;
                while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                        if (sd_bus_message_read(m, "s", &prop) < 0)
                                return 0;
                        if (strcmp(prop, "State") == 0) {
                                const char *v;
                                if (sd_bus_message_read(m, "v", "s", &v) >= 0 && strcmp(v, "failed") == 0)
                                        seen->state_changed = TRUE;
                        } else if (sd_bus_message_skip(m, "v") < 0)
                                return 0;
                        sd_bus_message_exit_container(m);
                }
        }
        return 0;
}

static void pump_until(gboolean *flag, int timeout_ms) {
        gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;
        while (!*flag && g_get_monotonic_time() < deadline) {
                int r = sd_bus_process(h.bus, NULL);
                g_assert_cmpint(r, >=, 0);
                if (r == 0)
                        (void) sd_bus_wait(h.bus, 50 * 1000);
        }
}

/* InterfacesAdded on create, PropertiesChanged(State) on death,
 * InterfacesRemoved on destroy. */
static void test_signals(void) {
        g_autofree char *path = NULL;
        struct seen seen = {};
        sd_bus_slot *slot = NULL;
        int fd;
        pid_t pid;

        g_assert_cmpint(sd_bus_match_signal(h.bus, &slot, DEVMGR, NULL, NULL, NULL, on_signal, &seen), >=, 0);
        create_device("serial", "{}", &path, &fd, &pid);
        seen.path = path;
        pump_until(&seen.added, 5000);
        g_assert_true(seen.added);
        g_assert_cmpint(kill(pid, SIGKILL), ==, 0);
        pump_until(&seen.state_changed, 5000);
        g_assert_true(seen.state_changed);
        destroy_device(path);
        pump_until(&seen.removed, 5000);
        g_assert_true(seen.removed);
        sd_bus_slot_unref(slot);
        close(fd);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/devmgr/serial-serves-the-protocol", test_serial_serves_the_protocol);
        g_test_add_func("/devmgr/device-is-jailed", test_device_is_jailed);
        g_test_add_func("/devmgr/destroy-device-ends-the-process", test_destroy_device_ends_the_process);
        g_test_add_func("/devmgr/create-device-refuses-bad-input", test_create_device_refuses_bad_input);
        g_test_add_func("/devmgr/killed-device-shows-failed", test_killed_device_shows_failed);
        g_test_add_func("/devmgr/list-devices-and-object-manager", test_list_devices_and_object_manager);
        g_test_add_func("/devmgr/devices-die-with-their-owner", test_devices_die_with_their_owner);
        g_test_add_func("/devmgr/signals", test_signals);

        harness_start(&h);
        r = g_test_run();
        harness_stop(&h);
        return r;
}
