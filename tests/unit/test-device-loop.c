/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device serve loop (services/devmgr/device-loop.c) with the real
 * device kinds, unjailed, in a forked child over socketpair(SOCK_SEQPACKET):
 * Activate exactly once, request handling, bad requests get error replies
 * and never end the loop, and the ways it ends. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
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
                _exit(device_loop_run(sv[1], kind, dev, NULL, NULL) < 0 ? 1 : 0);
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

        /* Sorted by name whatever the link order; others may join. */
        kinds = device_kind_list(&n);
        g_assert_cmpuint(n, >=, 3);
        for (size_t i = 1; i < n; i++)
                g_assert_cmpint(strcmp(kinds[i - 1]->name, kinds[i]->name), <, 0);
        g_assert_nonnull(device_kind_find("echo"));
        g_assert_nonnull(device_kind_find("rtc"));
        g_assert_nonnull(device_kind_find("serial"));
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

/* ---- the echo kind and the requests beyond port I/O ---- */

#define ECHO_PORT 0x500

static int config_read(struct running *r, uint16_t type, uint32_t reg, uint32_t *value) {
        struct proto_u32 q = { .reg = reg };
        struct proto_msg reply;
        int k = call(r, type, &q, sizeof(q), &reply);
        if (k == 0)
                *value = reply.body.u32.value;
        return k;
}

static uint32_t config_read_ok(struct running *r, uint16_t type, uint32_t reg) {
        uint32_t v = 0;
        g_assert_cmpint(config_read(r, type, reg, &v), ==, 0);
        return v;
}

static void test_writes_before_activate_get_no_reply(void) {
        struct running r;
        struct proto_access a = { .address = ECHO_PORT, .len = 1, .data = { 7 } };
        struct proto_msg m;

        start("echo", "{}", &r);
        g_assert_cmpint(proto_send(r.fd, PROTO_WRITE, &a, sizeof(a), NULL, 0), ==, 0);
        g_assert_cmpint(proto_send(r.fd, PROTO_DESTROY_DEVICE, NULL, 0, NULL, 0), ==, 0);
        /* Neither was answered nor acted on: the device still runs, and the
         * next reply is Activate's own. */
        g_assert_cmpint(proto_recv(r.fd, &m, 100), ==, -ETIMEDOUT);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        g_assert_cmpuint(read_byte(&r, ECHO_PORT, 0), ==, 0);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);
}

static void test_every_request_before_activate_is_refused(void) {
        struct running r;

        start("echo", "{}", &r);
        for (unsigned t = PROTO_ACTIVATE + 1; t < _PROTO_REQUEST_MAX; t++) {
                uint8_t body[64] = {};
                size_t len = 0;
                int fd = -1;

                switch (t) {
                case PROTO_WRITE:
                case PROTO_DESTROY_DEVICE:
                        continue;
                case PROTO_READ:
                        ((struct proto_access *) body)->len = 1;
                        len = sizeof(struct proto_access);
                        break;
                case PROTO_READ_CONFIG:
                case PROTO_READ_VIRTUAL_CONFIG:
                case PROTO_WRITE_VIRTUAL_CONFIG:
                        len = sizeof(struct proto_u32);
                        break;
                case PROTO_WRITE_CONFIG:
                        ((struct proto_config_write *) body)->len = 1;
                        len = sizeof(struct proto_config_write);
                        break;
                case PROTO_INIT_PCI_CONFIG_MAPPING:
                        ((struct proto_pci_mapping *) body)->len = 1;
                        len = sizeof(struct proto_pci_mapping);
                        fd = eventfd(0, EFD_CLOEXEC);
                        break;
                case PROTO_RESTORE:
                        memcpy(body, "{}", 2);
                        len = 2;
                        break;
                case PROTO_ATTACH_FD:
                        len = sizeof(struct proto_attach_fd);
                        fd = eventfd(0, EFD_CLOEXEC);
                        break;
                }
                g_assert_cmpint(proto_call(r.fd, t, body, len, fd >= 0 ? &fd : NULL, fd >= 0, NULL, 2000, NULL, 0), ==,
                                -EPERM);
                if (fd >= 0)
                        close(fd);
        }
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);
}

static void test_echo_returns_what_was_written(void) {
        struct running r;
        struct proto_access a = { .address = ECHO_PORT + 2, .offset = 2, .len = 4, .data = { 1, 2, 3, 4 } };
        struct proto_msg reply;

        start("echo", "{}", &r);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(call(&r, PROTO_GET_RANGES, NULL, 0, &reply), ==, 0);
        g_assert_cmpuint(reply.body.ranges.count, ==, 1);
        g_assert_cmphex(reply.body.ranges.ranges[0].base, ==, ECHO_PORT);
        g_assert_cmpuint(reply.body.ranges.ranges[0].len, ==, 8);
        g_assert_cmpint(proto_send(r.fd, PROTO_WRITE, &a, sizeof(a), NULL, 0), ==, 0);
        write_byte(&r, ECHO_PORT, 7, 0xee);
        /* Each offset keeps its own byte; a wide read sees them together. */
        a = (struct proto_access) { .address = ECHO_PORT, .offset = 0, .len = 8 };
        g_assert_cmpint(call(&r, PROTO_READ, &a, sizeof(a), &reply), ==, 0);
        g_assert_cmpuint(reply.body.data.len, ==, 8);
        g_assert_cmpmem(reply.body.data.data, 8, ((uint8_t[]) { 0, 0, 1, 2, 3, 4, 0, 0xee }), 8);
        /* Past the window: refused, not read out of bounds. */
        a = (struct proto_access) { .address = ECHO_PORT + 6, .offset = 6, .len = 4 };
        g_assert_cmpint(call(&r, PROTO_READ, &a, sizeof(a), NULL), ==, -EINVAL);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);
}

static void test_echo_config_registers(void) {
        struct running r;
        struct proto_config_write w = { .reg = 2, .offset = 1, .len = 2, .data = { 0xaa, 0xbb } };
        struct proto_u32 v = { .reg = 3, .value = 0x12345678 };
        struct proto_msg reply;

        start("echo", "{}", &r);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(call(&r, PROTO_WRITE_CONFIG, &w, sizeof(w), &reply), ==, 0);
        g_assert_cmpuint(reply.hdr.type, ==, PROTO_REPLY_CONFIG_WRITE);
        g_assert_cmpuint(reply.body.config_result.n_io_add + reply.body.config_result.n_io_remove, ==, 0);
        g_assert_cmphex(config_read_ok(&r, PROTO_READ_CONFIG, 2), ==, 0x00bbaa00);
        /* Registers that do not exist read as all ones; writes to them vanish. */
        g_assert_cmphex(config_read_ok(&r, PROTO_READ_CONFIG, 99), ==, 0xffffffff);
        w.reg = 99;
        g_assert_cmpint(call(&r, PROTO_WRITE_CONFIG, &w, sizeof(w), NULL), ==, 0);

        g_assert_cmpint(call(&r, PROTO_WRITE_VIRTUAL_CONFIG, &v, sizeof(v), NULL), ==, 0);
        g_assert_cmphex(config_read_ok(&r, PROTO_READ_VIRTUAL_CONFIG, 3), ==, 0x12345678);
        g_assert_cmphex(config_read_ok(&r, PROTO_READ_CONFIG, 3), ==, 0);
        v.reg = 16;
        g_assert_cmpint(call(&r, PROTO_WRITE_VIRTUAL_CONFIG, &v, sizeof(v), NULL), ==, -EINVAL);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);
}

/* Config register 4 is the I/O BAR: a write that moves it says so in the
 * result, and the loop checks accesses against the new window. */
static void test_echo_bar_write_moves_the_window(void) {
        struct running r;
        struct proto_config_write w = { .reg = 4, .offset = 0, .len = 2, .data = { 0x00, 0x07 } };
        const struct proto_config_result *c;
        struct proto_msg reply;
        struct proto_access a;

        start("echo", "{\"size\": 16}", &r);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        g_assert_cmphex(config_read_ok(&r, PROTO_READ_CONFIG, 4), ==, ECHO_PORT);
        write_byte(&r, ECHO_PORT, 15, 0x42);
        g_assert_cmpint(call(&r, PROTO_WRITE_CONFIG, &w, sizeof(w), &reply), ==, 0);
        c = &reply.body.config_result;
        g_assert_cmpuint(c->n_io_remove, ==, 1);
        g_assert_cmpuint(c->n_io_add, ==, 1);
        g_assert_cmpuint(c->n_mmio_add + c->n_mmio_remove + c->n_removed_pci, ==, 0);
        g_assert_cmphex(c->io_remove[0].base, ==, ECHO_PORT);
        g_assert_cmphex(c->io_add[0].base, ==, 0x700);
        g_assert_cmpuint(c->io_add[0].len, ==, 16);
        g_assert_cmphex(read_byte(&r, 0x700, 15), ==, 0x42);
        a = (struct proto_access) { .address = ECHO_PORT, .offset = 0, .len = 1 };
        g_assert_cmpint(call(&r, PROTO_READ, &a, sizeof(a), NULL), ==, -EINVAL);
        g_assert_cmpint(call(&r, PROTO_GET_RANGES, NULL, 0, &reply), ==, 0);
        g_assert_cmphex(reply.body.ranges.ranges[0].base, ==, 0x700);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);
}

static void test_echo_snapshot_and_restore(void) {
        struct running r, r2;
        struct proto_u32 v = { .reg = 0, .value = 77 };
        struct proto_msg reply;
        g_autofree char *snap = NULL;
        char err[PROTO_ERROR_MAX];

        start("echo", "{\"size\": 4}", &r);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        write_byte(&r, ECHO_PORT, 1, 0xab);
        g_assert_cmpint(call(&r, PROTO_WRITE_VIRTUAL_CONFIG, &v, sizeof(v), NULL), ==, 0);
        g_assert_cmpint(call(&r, PROTO_SNAPSHOT, NULL, 0, &reply), ==, 0);
        g_assert_nonnull(strstr(reply.text, "\"data\":\"00ab0000\""));
        snap = g_strdup(reply.text);
        proto_msg_done(&reply);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);

        /* A fresh device takes the state, and refuses bad state unchanged. */
        start("echo", "{\"size\": 4}", &r2);
        g_assert_cmpint(call(&r2, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        {
                static const struct { const char *json, *msg; } bad[] = {
                        { "not json", "snapshot is not a JSON object" },
                        { "[1]", "snapshot is not a JSON object" },
                        { "{}", "snapshot.port: missing required field" },
                        { "{\"port\":1280,\"size\":8,\"data\":\"\",\"config\":[],\"virtual_config\":[]}",
                          "snapshot.port/size: 0x500/8 is not this device's window 0x500/4" },
                        { "{\"port\":1280,\"size\":4,\"data\":\"00\",\"config\":[],\"virtual_config\":[]}",
                          "snapshot.data: 2 hex digits, expected 8" },
                        { "{\"port\":1280,\"size\":4,\"data\":\"00zz0000\",\"config\":[],\"virtual_config\":[]}",
                          "snapshot.data: not a hex digit at offset 2" },
                        { "{\"port\":1280,\"size\":4,\"data\":\"11111111\",\"config\":[1],\"virtual_config\":[]}",
                          "snapshot.config: 1 registers, expected 16" },
                        { "{\"port\":1280,\"size\":4,\"data\":\"11111111\",\"config\":[0,0,0,0,1280,0,0,0,0,0,0,0,0,0,0,-1],\"virtual_config\":[]}",
                          "snapshot.config[15]: -1 is out of range 0..4294967295" },
                        { "{\"port\":1280,\"size\":4,\"data\":\"11111111\",\"config\":[0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0],\"virtual_config\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}",
                          "snapshot.config[4]: 0x1 disagrees with port 0x500" },
                        { "{\"port\":1280,\"size\":4,\"data\":\"11111111\",\"extra\":1}", "snapshot.extra" },
                };
                for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                        g_assert_cmpint(proto_call(r2.fd, PROTO_RESTORE, bad[i].json, strlen(bad[i].json), NULL, 0,
                                                   NULL, 2000, err, sizeof(err)), ==, -EINVAL);
                        if (!strstr(err, bad[i].msg))
                                g_error("restore of %s: \"%s\" does not say \"%s\"", bad[i].json, err, bad[i].msg);
                }
        }
        g_assert_cmphex(read_byte(&r2, ECHO_PORT, 1), ==, 0);
        g_assert_cmpint(proto_call(r2.fd, PROTO_RESTORE, snap, strlen(snap), NULL, 0, NULL, 2000, err, sizeof(err)),
                        ==, 0);
        g_assert_cmphex(read_byte(&r2, ECHO_PORT, 1), ==, 0xab);
        g_assert_cmpuint(config_read_ok(&r2, PROTO_READ_VIRTUAL_CONFIG, 0), ==, 77);
        g_assert_cmpint(call(&r2, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r2), ==, 0);
}

static void test_echo_sleep_and_wake(void) {
        struct running r;
        struct proto_access a = { .address = ECHO_PORT, .offset = 0, .len = 1 };
        char err[PROTO_ERROR_MAX];

        start("echo", "{}", &r);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        write_byte(&r, ECHO_PORT, 0, 0x11);
        g_assert_cmpint(call(&r, PROTO_WAKE, NULL, 0, NULL), ==, -EALREADY);
        g_assert_cmpint(call(&r, PROTO_SLEEP, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(proto_call(r.fd, PROTO_SLEEP, NULL, 0, NULL, 0, NULL, 2000, err, sizeof(err)), ==, -EALREADY);
        g_assert_cmpstr(err, ==, "Sleep failed: device is asleep already");
        /* Asleep: reads fail, writes are dropped, config still answers. */
        g_assert_cmpint(call(&r, PROTO_READ, &a, sizeof(a), NULL), ==, -EAGAIN);
        write_byte(&r, ECHO_PORT, 0, 0x22);
        g_assert_cmphex(config_read_ok(&r, PROTO_READ_CONFIG, 4), ==, ECHO_PORT);
        g_assert_cmpint(call(&r, PROTO_WAKE, NULL, 0, NULL), ==, 0);
        g_assert_cmphex(read_byte(&r, ECHO_PORT, 0), ==, 0x11);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);
}

static void test_echo_pci_config_mapping_checks_the_size(void) {
        struct running r;
        struct proto_pci_mapping pm = { .base = 0, .len = 4096 };
        struct proto_msg reply;
        int mfd = memfd_create("pci-config", MFD_CLOEXEC);

        g_assert_cmpint(mfd, >=, 0);
        g_assert_cmpint(ftruncate(mfd, 4096), ==, 0);
        start("echo", "{}", &r);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(proto_call(r.fd, PROTO_INIT_PCI_CONFIG_MAPPING, &pm, sizeof(pm), &mfd, 1, &reply, 2000, NULL,
                                   0), ==, 0);
        g_assert_cmpuint(reply.body.boolean.value, ==, 1);
        pm.base = 1;
        g_assert_cmpint(proto_call(r.fd, PROTO_INIT_PCI_CONFIG_MAPPING, &pm, sizeof(pm), &mfd, 1, &reply, 2000, NULL,
                                   0), ==, 0);
        g_assert_cmpuint(reply.body.boolean.value, ==, 0);
        close(mfd);
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);
}

/* A kind without the op answers EOPNOTSUPP, and keeps serving. */
static void test_kind_without_an_op_answers_eopnotsupp(void) {
        struct running r;
        struct proto_config_write w = { .len = 1 };
        struct proto_u32 u = {};
        struct proto_pci_mapping pm = { .len = 1 };
        char err[PROTO_ERROR_MAX];
        int efd = eventfd(0, EFD_CLOEXEC);

        start("rtc", "{}", &r);
        g_assert_cmpint(call(&r, PROTO_ACTIVATE, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(call(&r, PROTO_READ_CONFIG, &u, sizeof(u), NULL), ==, -EOPNOTSUPP);
        g_assert_cmpint(call(&r, PROTO_WRITE_CONFIG, &w, sizeof(w), NULL), ==, -EOPNOTSUPP);
        g_assert_cmpint(call(&r, PROTO_READ_VIRTUAL_CONFIG, &u, sizeof(u), NULL), ==, -EOPNOTSUPP);
        g_assert_cmpint(call(&r, PROTO_WRITE_VIRTUAL_CONFIG, &u, sizeof(u), NULL), ==, -EOPNOTSUPP);
        g_assert_cmpint(proto_call(r.fd, PROTO_INIT_PCI_CONFIG_MAPPING, &pm, sizeof(pm), &efd, 1, NULL, 2000, NULL, 0),
                        ==, -EOPNOTSUPP);
        g_assert_cmpint(proto_call(r.fd, PROTO_SNAPSHOT, NULL, 0, NULL, 0, NULL, 2000, err, sizeof(err)), ==,
                        -EOPNOTSUPP);
        g_assert_cmpstr(err, ==, "Snapshot is not supported by rtc");
        g_assert_cmpint(proto_call(r.fd, PROTO_RESTORE, "{}", 2, NULL, 0, NULL, 2000, NULL, 0), ==, -EOPNOTSUPP);
        g_assert_cmpint(call(&r, PROTO_GET_IOEVENTS, NULL, 0, NULL), ==, -EOPNOTSUPP);
        g_assert_cmpint(call(&r, PROTO_GET_MSI_ROUTES, NULL, 0, NULL), ==, -EOPNOTSUPP);
        close(efd);
        g_assert_cmphex(read_byte(&r, 0x70, 0), !=, 0x1234); /* still answers */
        g_assert_cmpint(call(&r, PROTO_SHUTDOWN, NULL, 0, NULL), ==, 0);
        g_assert_cmpint(finish(&r), ==, 0);
}

static void test_echo_validates_config(void) {
        const struct device_kind *echo = device_kind_find("echo");
        static const struct { const char *json, *msg; } bad[] = {
                { "{\"port\": 0}", "echo.port: 0 is out of range 1..65535" },
                { "{\"size\": 0}", "echo.size: 0 is out of range 1..256" },
                { "{\"size\": 257}", "echo.size: 257 is out of range 1..256" },
                { "{\"port\": 65535, \"size\": 2}", "echo.port: 0xffff + size 2 runs past the last port 0xffff" },
                { "{\"port\": \"x\"}", "echo.port" },
                { "{\"colour\": 1}", "echo.colour" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                json_object *cfg = NULL;
                void *dev = NULL;
                char err[256] = "";

                g_assert_cmpint(json_parse_object(bad[i].json, &cfg, err, sizeof(err)), ==, 0);
                g_assert_cmpint(echo->create(cfg, &dev, err, sizeof(err)), ==, -EINVAL);
                if (!g_str_has_prefix(err, bad[i].msg))
                        g_error("%s: \"%s\" does not start with \"%s\"", bad[i].json, err, bad[i].msg);
                g_assert_null(dev);
                json_object_put(cfg);
        }
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
        g_test_add_func("/device-loop/writes-before-activate-get-no-reply", test_writes_before_activate_get_no_reply);
        g_test_add_func("/device-loop/every-request-before-activate-is-refused",
                        test_every_request_before_activate_is_refused);
        g_test_add_func("/device-loop/echo-returns-what-was-written", test_echo_returns_what_was_written);
        g_test_add_func("/device-loop/echo-config-registers", test_echo_config_registers);
        g_test_add_func("/device-loop/echo-bar-write-moves-the-window", test_echo_bar_write_moves_the_window);
        g_test_add_func("/device-loop/echo-snapshot-and-restore", test_echo_snapshot_and_restore);
        g_test_add_func("/device-loop/echo-sleep-and-wake", test_echo_sleep_and_wake);
        g_test_add_func("/device-loop/echo-pci-config-mapping-checks-the-size",
                        test_echo_pci_config_mapping_checks_the_size);
        g_test_add_func("/device-loop/kind-without-an-op-answers-eopnotsupp", test_kind_without_an_op_answers_eopnotsupp);
        g_test_add_func("/device-loop/echo-validates-config", test_echo_validates_config);
        return g_test_run();
}
