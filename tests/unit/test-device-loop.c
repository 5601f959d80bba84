/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device serve loop (services/devmgr/device-loop.c) with the real
 * device kinds, unjailed, in a forked child over socketpair(SOCK_SEQPACKET):
 * Activate exactly once, request handling, bad requests get error replies
 * and never end the loop, and the ways it ends. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "device-loop.h"
#include "json-util.h"

/* After our headers: GLib #undefs MIN/MAX before defining its own. */
#include <glib.h>

struct running {
        int fd;
        pid_t pid;
};

static void start(const char *kind_name, const char *config, struct running *r) {
        const struct device_kind *kind = device_kind_find(kind_name);
        json_object *cfg = NULL;
        void *dev = NULL;
        char err[256];
        int sv[2];

        g_assert_nonnull(kind);
        g_assert_cmpint(json_parse_object(config, &cfg, err, sizeof(err)), ==, 0);
        g_assert_cmpint(kind->create(cfg, &dev, err, sizeof(err)), ==, 0);
        json_object_put(cfg);
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
        r->pid = fork();
        g_assert_cmpint(r->pid, >=, 0);
        if (r->pid == 0) {
                close(sv[0]);
                _exit(device_loop_run(sv[1], kind, dev) < 0 ? 1 : 0);
        }
        close(sv[1]);
        kind->destroy(dev);
        r->fd = sv[0];
}

static int finish(struct running *r) {
        int status;
        g_assert_cmpint(waitpid(r->pid, &status, 0), ==, r->pid);
        close(r->fd);
        g_assert_true(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static int call(struct running *r, uint16_t type, const void *body, size_t len, struct proto_msg *reply) {
        struct proto_msg local;
        return proto_call(r->fd, type, body, len, NULL, 0, reply ?: &local, 2000, NULL, 0);
}

static uint8_t read_byte(struct running *r, uint64_t base, uint64_t offset) {
        struct proto_access a = { .address = base + offset, .offset = offset, .len = 1 };
        struct proto_msg reply;
        g_assert_cmpint(call(r, PROTO_READ, &a, sizeof(a), &reply), ==, 0);
        g_assert_cmpuint(reply.body.data.len, ==, 1);
        return reply.body.data.data[0];
}

static void write_byte(struct running *r, uint64_t base, uint64_t offset, uint8_t v) {
        struct proto_access a = { .address = base + offset, .offset = offset, .len = 1, .data = { v } };
        g_assert_cmpint(proto_send(r->fd, PROTO_WRITE, &a, sizeof(a), NULL, 0), ==, 0);
}

static void test_requests_before_activate_are_refused(void) {
        struct running r;
        struct proto_access a = { .address = 0x3f8, .len = 1 };

        start("serial", "{}", &r);
        g_assert_cmpint(call(&r, PROTO_GET_RANGES, NULL, 0, NULL), ==, -EPERM);
        g_assert_cmpint(call(&r, PROTO_READ, &a, sizeof(a), NULL), ==, -EPERM);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, -EPERM);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, -EALREADY);
        g_assert_cmpint(call(&r, PROTO_GET_RANGES, NULL, 0, NULL), ==, 0);
        close(r.fd);
        r.fd = -1;
        /* Hang-up ends the loop cleanly. */
        g_assert_cmpint(finish(&r), ==, 0);
}

static void test_bad_requests_get_errors_and_the_loop_goes_on(void) {
        struct running r;
        struct proto_msg reply;

        start("serial", "{\"port\": 760}", &r);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);

        /* Outside the range, wrong range index, address that does not match. */
        {
                struct proto_access bad[] = {
                        { .address = 0x2f8 + 8, .offset = 8, .len = 1 },
                        { .address = 0x2f8 + 6, .offset = 6, .len = 4 },
                        { .address = 0x2f8, .offset = 0, .len = 1, .range = 1 },
                        { .address = 0x3f8, .offset = 0, .len = 1 },
                };
                for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                        g_assert_cmpint(call(&r, PROTO_READ, &bad[i], sizeof(bad[i]), NULL), ==, -EINVAL);
                        /* A bad WRITE is dropped without a reply. */
                        g_assert_cmpint(proto_send(r.fd, PROTO_WRITE, &bad[i], sizeof(bad[i]), NULL, 0), ==, 0);
                }
        }
        /* A reply sent as a request, requests the kind does not do. */
        g_assert_cmpint(call(&r, PROTO_REPLY_OK, NULL, 0, NULL), ==, -EBADMSG);
        g_assert_cmpint(call(&r, PROTO_READ_CONFIG, &(struct proto_u32) {}, sizeof(struct proto_u32), NULL), ==,
                        -EOPNOTSUPP);
        g_assert_cmpint(call(&r, PROTO_SNAPSHOT, NULL, 0, NULL), ==, -EOPNOTSUPP);
        g_assert_cmpint(call(&r, PROTO_SLEEP, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(call(&r, PROTO_WAKE, NULL, 0, NULL), ==, 0);
        /* A malformed packet. */
        {
                uint8_t junk[3] = { 1, 2, 3 };
                g_assert_cmpint(send(r.fd, junk, sizeof(junk), 0), ==, sizeof(junk));
                g_assert_cmpint(proto_recv(r.fd, &reply, 2000), ==, 0);
                g_assert_cmpuint(reply.hdr.type, ==, PROTO_REPLY_ERROR);
                g_assert_cmpint(reply.body.error.error, ==, EBADMSG);
        }
        /* Still serving, at its configured port. */
        g_assert_cmphex(read_byte(&r, 0x2f8, 5), ==, 0x60);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);
}

static void test_destroy_device_ends_without_reply(void) {
        struct running r;
        struct proto_msg m;

        start("rtc", "{}", &r);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(proto_send(r.fd, PROTO_DESTROY_DEVICE, NULL, 0, NULL, 0), ==, 0);
        g_assert_cmpint(proto_recv(r.fd, &m, 2000), ==, -ECONNRESET);
        g_assert_cmpint(finish(&r), ==, 0);
}

/* irqfd edges: one write per inactive -> active transition. */
static void test_serial_interrupt_edges(void) {
        struct running r;
        struct proto_attach_fd f = { .role = PROTO_FD_IRQ };
        struct pollfd p;
        uint64_t count = 0;
        int irq;

        start("serial", "{}", &r);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        irq = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        g_assert_cmpint(proto_call(r.fd, PROTO_ATTACH_FD, &f, sizeof(f), &irq, 1, NULL, 2000, NULL, 0), ==, 0);
        /* A second interrupt index does not exist. */
        f.arg = 1;
        g_assert_cmpint(proto_call(r.fd, PROTO_ATTACH_FD, &f, sizeof(f), &irq, 1, NULL, 2000, NULL, 0), ==, -EINVAL);

        write_byte(&r, 0x3f8, 1, 0x02); /* IER: THRI -> active at once */
        g_assert_cmphex(read_byte(&r, 0x3f8, 2), ==, 0x02); /* acknowledges: inactive */
        write_byte(&r, 0x3f8, 0, 'a'); /* THR empty again: second edge */
        (void) read_byte(&r, 0x3f8, 5); /* sync: the writes were handled */
        p = (struct pollfd) { .fd = irq, .events = POLLIN };
        g_assert_cmpint(poll(&p, 1, 2000), ==, 1);
        g_assert_cmpint(read(irq, &count, sizeof(count)), ==, sizeof(count));
        g_assert_cmpuint(count, ==, 2);
        close(irq);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);
}

static void test_console_input_waits_for_fifo_space(void) {
        struct running r;
        struct proto_attach_fd f = { .role = PROTO_FD_CONSOLE };
        int console[2];
        char input[40];

        start("serial", "{}", &r);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, console), ==, 0);
        g_assert_cmpint(proto_call(r.fd, PROTO_ATTACH_FD, &f, sizeof(f), &console[1], 1, NULL, 2000, NULL, 0), ==, 0);
        close(console[1]);
        write_byte(&r, 0x3f8, 2, 0x07); /* FIFO on, and cleared */
        /* Writes have no reply: sync before input arrives, or the FIFO reset
         * could land after the first bytes and clear them. */
        (void) read_byte(&r, 0x3f8, 5);
        for (size_t i = 0; i < sizeof(input); i++)
                input[i] = (char) ('A' + i % 26);
        g_assert_cmpint(write(console[0], input, sizeof(input)), ==, sizeof(input));

        /* Every byte arrives, in order, none lost to overrun. */
        for (size_t i = 0; i < sizeof(input);) {
                uint8_t lsr = read_byte(&r, 0x3f8, 5);
                g_assert_cmphex(lsr & 0x02, ==, 0);
                if (lsr & 0x01)
                        g_assert_cmpint(read_byte(&r, 0x3f8, 0), ==, input[i++]);
                else
                        g_usleep(1000);
        }
        close(console[0]);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);
}

static void test_rtc_through_the_loop(void) {
        struct running r;
        struct proto_msg reply;

        start("rtc", "{}", &r);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(call(&r, PROTO_GET_RANGES, NULL, 0, &reply), ==, 0);
        g_assert_cmpuint(reply.body.ranges.count, ==, 1);
        g_assert_cmphex(reply.body.ranges.ranges[0].base, ==, 0x70);
        g_assert_cmpuint(reply.body.ranges.ranges[0].len, ==, 2);
        write_byte(&r, 0x70, 0, 0x0d);
        g_assert_cmphex(read_byte(&r, 0x70, 1), ==, 0x80);
        write_byte(&r, 0x70, 0, 0x32);
        g_assert_cmphex(read_byte(&r, 0x70, 1), ==, 0x20);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);
}

static void test_kinds_are_registered_and_validate_config(void) {
        const struct device_kind *const *kinds;
        const struct device_kind *serial = device_kind_find("serial");
        json_object *cfg = NULL;
        void *dev = NULL;
        char err[256] = "";
        size_t n;

        kinds = device_kind_list(&n);
        g_assert_cmpuint(n, ==, 2);
        g_assert_cmpstr(kinds[0]->name, ==, "rtc");
        g_assert_cmpstr(kinds[1]->name, ==, "serial");
        g_assert_null(device_kind_find("floppy"));

        g_assert_cmpint(json_parse_object("{\"port\": 65530}", &cfg, err, sizeof(err)), ==, 0);
        g_assert_cmpint(serial->create(cfg, &dev, err, sizeof(err)), ==, -EINVAL);
        g_assert_cmpstr(err, ==, "serial.port: 65530 is out of range 1..65528");
        json_object_put(cfg);
        g_assert_cmpint(json_parse_object("{\"irq\": 0}", &cfg, err, sizeof(err)), ==, 0);
        g_assert_cmpint(serial->create(cfg, &dev, err, sizeof(err)), ==, -EINVAL);
        g_assert_cmpstr(err, ==, "serial.irq: 0 is out of range 1..23");
        json_object_put(cfg);
        g_assert_null(dev);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/device-loop/requests-before-activate-are-refused", test_requests_before_activate_are_refused);
        g_test_add_func("/device-loop/bad-requests-get-errors-and-the-loop-goes-on",
                        test_bad_requests_get_errors_and_the_loop_goes_on);
        g_test_add_func("/device-loop/destroy-device-ends-without-reply", test_destroy_device_ends_without_reply);
        g_test_add_func("/device-loop/serial-interrupt-edges", test_serial_interrupt_edges);
        g_test_add_func("/device-loop/console-input-waits-for-fifo-space", test_console_input_waits_for_fifo_space);
        g_test_add_func("/device-loop/rtc-through-the-loop", test_rtc_through_the_loop);
        g_test_add_func("/device-loop/kinds-are-registered-and-validate-config",
                        test_kinds_are_registered_and_validate_config);
        return g_test_run();
}
