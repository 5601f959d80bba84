/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device protocol end to end with the echo kind, jailed by the real
 * polyvm-devmgr on a private bus: an endpoint passed through a third process
 * over D-Bus is activated exactly once (the third process wins, our own
 * Activate is refused, and the third process keeps being served), and every
 * request of the protocol round-trips through the jailed process. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "proto.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"
#define DEVICE_IFACE "org.polyvm.Device1"
#define HOLDER_PATH "/org/polyvm/test/Holder"
#define HOLDER_IFACE "org.polyvm.test.Holder1"
#define ECHO_PORT 0x500

static struct harness h;

static void create_device(const char *config, char **path, int *fd, pid_t *pid) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *p;
        uint32_t upid;
        int efd, r;

        r = sd_bus_call_method(h.bus, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &error, &reply, "sss", "vm1",
                               "echo", config);
        if (r < 0)
                g_error("CreateDevice(echo, %s): %s: %s", config, error.name, error.message);
        g_assert_cmpint(sd_bus_message_read(reply, "ohu", &p, &efd, &upid), >=, 0);
        *path = g_strdup(p);
        *fd = fcntl(efd, F_DUPFD_CLOEXEC, 3);
        g_assert_cmpint(*fd, >=, 0);
        *pid = (pid_t) upid;
        sd_bus_message_unref(reply);
}

static int echo_write(int fd, unsigned offset, const void *data, uint32_t len) {
        struct proto_access a = { .address = ECHO_PORT + offset, .offset = offset, .len = len };
        memcpy(a.data, data, len);
        return proto_send(fd, PROTO_WRITE, &a, sizeof(a), NULL, 0);
}

static int echo_read(int fd, unsigned offset, void *data, uint32_t len) {
        struct proto_access a = { .address = ECHO_PORT + offset, .offset = offset, .len = len };
        struct proto_msg reply;
        int r = proto_call(fd, PROTO_READ, &a, sizeof(a), NULL, 0, &reply, 2000, NULL, 0);
        if (r == 0)
                memcpy(data, reply.body.data.data, len);
        return r;
}

/* ---- the third process: holds an endpoint it got over D-Bus ---- */

static int holder_endpoint = -1;
static bool holder_done;

static int holder_take(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int fd, r;

        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;
        holder_endpoint = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (holder_endpoint < 0)
                return -errno;
        r = proto_call(holder_endpoint, PROTO_ACTIVATE, NULL, 0, NULL, 0, NULL, 2000, NULL, 0);
        return sd_bus_reply_method_return(m, "i", r);
}

/* Writes value at offset 3 and reads it back through the held endpoint. */
static int holder_exchange(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint8_t v, back = 0;
        int r;

        r = sd_bus_message_read(m, "y", &v);
        if (r < 0)
                return r;
        r = echo_write(holder_endpoint, 3, &v, 1);
        if (r == 0)
                r = echo_read(holder_endpoint, 3, &back, 1);
        return sd_bus_reply_method_return(m, "iy", r, back);
}

static int holder_quit(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        holder_done = true;
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable holder_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Take", "h", "i", holder_take, 0),
        SD_BUS_METHOD("Exchange", "y", "iy", holder_exchange, 0),
        SD_BUS_METHOD("Quit", NULL, NULL, holder_quit, 0),
        SD_BUS_VTABLE_END,
};

static _Noreturn void holder_main(int name_pipe) {
        sd_bus *bus = NULL;
        const char *unique;

        alarm(60); /* never outlive a stuck test */
        if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, h.address) < 0 || sd_bus_set_bus_client(bus, 1) < 0 ||
            sd_bus_start(bus) < 0 || sd_bus_get_unique_name(bus, &unique) < 0 ||
            sd_bus_add_object_vtable(bus, NULL, HOLDER_PATH, HOLDER_IFACE, holder_vtable, NULL) < 0)
                _exit(2);
        if (write(name_pipe, unique, strlen(unique) + 1) < 0)
                _exit(3);
        close(name_pipe);
        while (!holder_done) {
                int r = sd_bus_process(bus, NULL);
                if (r < 0)
                        _exit(4);
                if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                        _exit(5);
        }
        (void) sd_bus_flush(bus);
        _exit(0);
}

static pid_t holder_start(char *name, size_t len) {
        int p[2];
        pid_t pid;
        ssize_t n;

        g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                close(p[0]);
                holder_main(p[1]);
        }
        close(p[1]);
        n = read(p[0], name, len - 1);
        g_assert_cmpint(n, >, 0);
        name[n] = 0;
        close(p[0]);
        return pid;
}

/* The third process activates the endpoint it received over D-Bus; our own
 * Activate (same device, our copy of the fd) is refused; the third process
 * is still served, before and after. */
static void test_endpoint_through_a_third_process_activates_once(void) {
        g_autofree char *path = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char holder[256], err[PROTO_ERROR_MAX];
        int fd, status, r;
        int32_t result;
        uint8_t back;
        pid_t pid, holder_pid;

        /* Forked before the device exists, so the endpoint can reach it only
         * through the bus. */
        holder_pid = holder_start(holder, sizeof(holder));
        create_device("{}", &path, &fd, &pid);

        r = sd_bus_call_method(h.bus, holder, HOLDER_PATH, HOLDER_IFACE, "Take", &error, &reply, "h", fd);
        if (r < 0)
                g_error("Take: %s", error.message);
        g_assert_cmpint(sd_bus_message_read(reply, "i", &result), >=, 0);
        g_assert_cmpint(result, ==, 0);
        reply = sd_bus_message_unref(reply);

        r = sd_bus_call_method(h.bus, holder, HOLDER_PATH, HOLDER_IFACE, "Exchange", &error, &reply, "y", 0x5a);
        g_assert_cmpint(r, >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "iy", &result, &back), >=, 0);
        g_assert_cmpint(result, ==, 0);
        g_assert_cmphex(back, ==, 0x5a);
        reply = sd_bus_message_unref(reply);

        /* Second Activate: an error, not a crash. */
        g_assert_cmpint(proto_call(fd, PROTO_ACTIVATE, NULL, 0, NULL, 0, NULL, 2000, err, sizeof(err)), ==, -EALREADY);
        g_assert_nonnull(strstr(err, "already active"));
        g_assert_true(harness_pid_alive(pid));
        {
                g_autofree char *state = harness_get_string(&h, DEVMGR, path, DEVICE_IFACE, "State");
                g_assert_cmpstr(state, !=, "exited");
        }

        /* The first owner is still served, state intact. */
        r = sd_bus_call_method(h.bus, holder, HOLDER_PATH, HOLDER_IFACE, "Exchange", &error, &reply, "y", 0xa5);
        g_assert_cmpint(r, >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "iy", &result, &back), >=, 0);
        g_assert_cmpint(result, ==, 0);
        g_assert_cmphex(back, ==, 0xa5);
        reply = sd_bus_message_unref(reply);

        r = sd_bus_call_method(h.bus, holder, HOLDER_PATH, HOLDER_IFACE, "Quit", &error, NULL, "");
        g_assert_cmpint(r, >=, 0);
        g_assert_cmpint(waitpid(holder_pid, &status, 0), ==, holder_pid);
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 0);

        g_assert_cmpint(proto_call(fd, PROTO_SHUTDOWN, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_true(harness_wait_property(&h, DEVMGR, path, DEVICE_IFACE, "State", "exited", 5000));
        close(fd);
        g_assert_null(harness_call_error(&h, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", NULL, "o", path));
}

static uint32_t config_read(int fd, uint16_t type, uint32_t reg) {
        struct proto_u32 q = { .reg = reg };
        struct proto_msg reply;
        g_assert_cmpint(proto_call(fd, type, &q, sizeof(q), NULL, 0, &reply, 2000, NULL, 0), ==, 0);
        return reply.body.u32.value;
}

/* Every request through the jailed echo process; it ends with exit status
 * 0, so its seccomp policy allowed all of it. */
static void test_every_request_round_trips_through_the_jail(void) {
        g_autofree char *path = NULL, *snap = NULL;
        struct proto_msg reply;
        char err[PROTO_ERROR_MAX];
        uint8_t buf[8];
        int fd, mfd;
        pid_t pid;

        create_device("{\"port\": 1280, \"size\": 8}", &path, &fd, &pid);
        g_assert_cmpint(proto_call(fd, PROTO_ACTIVATE, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_cmpint(proto_call(fd, PROTO_GET_RANGES, NULL, 0, NULL, 0, &reply, 2000, NULL, 0), ==, 0);
        g_assert_cmpuint(reply.body.ranges.count, ==, 1);
        g_assert_cmphex(reply.body.ranges.ranges[0].base, ==, ECHO_PORT);

        /* Port I/O of every width. */
        g_assert_cmpint(echo_write(fd, 0, "\x01\x02\x03\x04\x05\x06\x07\x08", 8), ==, 0);
        g_assert_cmpint(echo_write(fd, 2, "\xaa\xbb", 2), ==, 0);
        g_assert_cmpint(echo_read(fd, 0, buf, 8), ==, 0);
        g_assert_cmpmem(buf, 8, "\x01\x02\xaa\xbb\x05\x06\x07\x08", 8);
        g_assert_cmpint(echo_read(fd, 4, buf, 4), ==, 0);
        g_assert_cmpmem(buf, 4, "\x05\x06\x07\x08", 4);

        /* Config and virtual config. */
        {
                struct proto_config_write w = { .reg = 1, .offset = 0, .len = 4, .data = { 1, 2, 3, 4 } };
                struct proto_u32 v = { .reg = 5, .value = 0xcafe };
                g_assert_cmpint(proto_call(fd, PROTO_WRITE_CONFIG, &w, sizeof(w), NULL, 0, &reply, 2000, NULL, 0), ==, 0);
                g_assert_cmphex(config_read(fd, PROTO_READ_CONFIG, 1), ==, 0x04030201);
                g_assert_cmpint(proto_call(fd, PROTO_WRITE_VIRTUAL_CONFIG, &v, sizeof(v), NULL, 0, NULL, 2000, NULL, 0),
                                ==, 0);
                g_assert_cmphex(config_read(fd, PROTO_READ_VIRTUAL_CONFIG, 5), ==, 0xcafe);
        }

        /* A PCI config mapping: the shared memory is big enough, or not. */
        mfd = memfd_create("pci-config", MFD_CLOEXEC);
        g_assert_cmpint(ftruncate(mfd, 4096), ==, 0);
        {
                struct proto_pci_mapping pm = { .base = 0, .len = 4096 };
                g_assert_cmpint(proto_call(fd, PROTO_INIT_PCI_CONFIG_MAPPING, &pm, sizeof(pm), &mfd, 1, &reply, 2000,
                                           NULL, 0), ==, 0);
                g_assert_cmpuint(reply.body.boolean.value, ==, 1);
                pm.len = 8192;
                g_assert_cmpint(proto_call(fd, PROTO_INIT_PCI_CONFIG_MAPPING, &pm, sizeof(pm), &mfd, 1, &reply, 2000,
                                           NULL, 0), ==, 0);
                g_assert_cmpuint(reply.body.boolean.value, ==, 0);
        }
        close(mfd);

        /* Sleep: reads refused, then Wake. */
        g_assert_cmpint(proto_call(fd, PROTO_SLEEP, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_cmpint(echo_read(fd, 0, buf, 1), ==, -EAGAIN);
        g_assert_cmpint(proto_call(fd, PROTO_SLEEP, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, -EALREADY);

        /* Snapshot while asleep, change the state, Restore brings it back. */
        g_assert_cmpint(proto_call(fd, PROTO_SNAPSHOT, NULL, 0, NULL, 0, &reply, 2000, NULL, 0), ==, 0);
        g_assert_nonnull(strstr(reply.text, "\"data\":\"0102aabb05060708\""));
        snap = g_strdup(reply.text);
        proto_msg_done(&reply);
        g_assert_cmpint(proto_call(fd, PROTO_WAKE, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_cmpint(echo_write(fd, 0, "\xff", 1), ==, 0);
        g_assert_cmpint(proto_call(fd, PROTO_RESTORE, "{\"port\": 1}", 11, NULL, 0, NULL, 2000, err, sizeof(err)), ==,
                        -EINVAL);
        g_assert_nonnull(strstr(err, "snapshot.size: missing required field"));
        g_assert_cmpint(proto_call(fd, PROTO_RESTORE, "{", 1, NULL, 0, NULL, 2000, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "not a JSON object"));
        g_assert_cmpint(proto_call(fd, PROTO_RESTORE, snap, strlen(snap), NULL, 0, NULL, 2000, err, sizeof(err)), ==, 0);
        g_assert_cmpint(echo_read(fd, 0, buf, 1), ==, 0);
        g_assert_cmphex(buf[0], ==, 0x01);

        g_assert_cmpint(proto_call(fd, PROTO_SHUTDOWN, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_true(harness_wait_property(&h, DEVMGR, path, DEVICE_IFACE, "State", "exited", 5000));
        {
                g_autofree char *reason = harness_get_string(&h, DEVMGR, path, DEVICE_IFACE, "ExitReason");
                g_assert_cmpstr(reason, ==, "exited with status 0");
        }
        close(fd);
        g_assert_null(harness_call_error(&h, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", NULL, "o", path));
}

static void test_bad_echo_config_is_a_named_error(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(h.bus, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &error, NULL, "sss", "vm1", "echo",
                               "{\"size\": 0}");
        g_assert_cmpint(r, <, 0);
        g_assert_cmpstr(error.name, ==, "org.polyvm.Error.InvalidConfig");
        g_assert_nonnull(strstr(error.message, "echo.size: 0 is out of range 1..256"));
        sd_bus_error_free(&error);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        signal(SIGPIPE, SIG_IGN);
        harness_start(&h);
        g_test_add_func("/proxy/endpoint-through-a-third-process-activates-once",
                        test_endpoint_through_a_third_process_activates_once);
        g_test_add_func("/proxy/every-request-round-trips-through-the-jail",
                        test_every_request_round_trips_through_the_jail);
        g_test_add_func("/proxy/bad-echo-config-is-a-named-error", test_bad_echo_config_is_a_named_error);
        r = g_test_run();
        harness_stop(&h);
        return r;
}
