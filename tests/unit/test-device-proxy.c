/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The launcher's device proxy against a socketpair(SOCK_SEQPACKET) peer that
 * misbehaves: a peer that never answers fails the device within the
 * timeout, after which reads are all ones and writes are dropped without
 * waiting; a peer that stops reading cannot block a writer; a device's
 * error reply is not a failure; failures are reported once, through the
 * notify eventfd. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "device-proxy.h"

#include <glib.h>

#define BASE 0x500

struct fixture {
        struct device_proxy *d;
        int peer;
        int notify;
};

static void setup(struct fixture *f, int timeout_ms) {
        int sv[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
        g_assert_cmpint(device_proxy_new("echo", "/org/polyvm/DeviceManager1/device/1", 42, sv[0], &f->d), ==, 0);
        g_assert_cmpint(f->d->timeout_ms, ==, PROTO_DEFAULT_TIMEOUT_MS);
        g_assert_cmpint(device_proxy_set_timeout(f->d, timeout_ms), ==, 0);
        f->notify = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        device_proxy_set_notify(f->d, f->notify);
        /* As if Activate and GetRanges had run. */
        f->d->ranges.count = 1;
        f->d->ranges.ranges[0] = (struct proto_range) { .base = BASE, .len = 8, .bus = PROTO_BUS_PIO };
        f->peer = sv[1];
}

static void teardown(struct fixture *f) {
        device_proxy_free(f->d);
        close(f->peer);
        close(f->notify);
}

static int64_t now_ms(void) {
        return g_get_monotonic_time() / 1000;
}

static uint64_t notified(struct fixture *f) {
        eventfd_t v = 0;
        if (eventfd_read(f->notify, &v) < 0)
                return 0;
        return v;
}

static void test_silent_device_fails_within_timeout(void) {
        struct fixture f;
        uint8_t data[4];
        const char *reason = NULL;
        struct proto_msg m;
        int64_t t0, dt;

        setup(&f, 50);
        t0 = now_ms();
        device_proxy_read(f.d, 0, BASE + 1, data, 4);
        dt = now_ms() - t0;
        g_assert_cmpint(dt, >=, 45);
        g_assert_cmpint(dt, <, 1000);
        g_assert_cmpmem(data, 4, ((uint8_t[]) { 0xff, 0xff, 0xff, 0xff }), 4);
        g_assert_true(device_proxy_is_failed(f.d));
        g_assert_cmpuint(notified(&f), ==, 1);
        g_assert_true(device_proxy_take_failure(f.d, &reason));
        g_assert_cmpstr(reason, ==, "Read: Connection timed out");
        g_assert_false(device_proxy_take_failure(f.d, &reason)); /* reported once */

        /* From now on nothing waits and nothing is sent. */
        t0 = now_ms();
        memset(data, 0, sizeof(data));
        device_proxy_read(f.d, 0, BASE, data, 2);
        device_proxy_write(f.d, 0, BASE, (uint8_t[]) { 1, 2 }, 2);
        g_assert_cmpint(now_ms() - t0, <, 20);
        g_assert_cmpmem(data, 2, ((uint8_t[]) { 0xff, 0xff }), 2);
        g_assert_cmpuint(notified(&f), ==, 0);
        /* The peer saw only the one Read. */
        g_assert_cmpint(proto_recv(f.peer, &m, 100), ==, 0);
        g_assert_cmpuint(m.hdr.type, ==, PROTO_READ);
        g_assert_cmphex(m.body.access.offset, ==, 1);
        g_assert_cmpint(proto_recv(f.peer, &m, 50), ==, -ETIMEDOUT);
        teardown(&f);
}

/* A peer that does not read: writes fill its queue, then the send timeout
 * fails the device instead of blocking the vCPU for good. */
static void test_device_that_stops_reading_fails_a_write(void) {
        struct fixture f;
        const char *reason = NULL;
        int64_t t0 = now_ms();
        int i;

        setup(&f, 50);
        for (i = 0; i < 100000 && !device_proxy_is_failed(f.d); i++)
                device_proxy_write(f.d, 0, BASE, (uint8_t[]) { (uint8_t) i }, 1);
        g_assert_true(device_proxy_is_failed(f.d));
        g_assert_cmpint(now_ms() - t0, <, 2000);
        g_assert_true(device_proxy_take_failure(f.d, &reason));
        g_assert_cmpstr(reason, ==, "Write: send timed out");
        teardown(&f);
}

static void test_error_reply_is_not_a_failure(void) {
        struct fixture f;
        struct proto_data d = { .len = 1, .data = { 0x5a } };
        uint8_t v = 0;

        setup(&f, 500);
        g_assert_cmpint(proto_reply_error(f.peer, EAGAIN, "asleep"), ==, 0);
        g_assert_cmpint(proto_send(f.peer, PROTO_REPLY_DATA, &d, sizeof(d), NULL, 0), ==, 0);
        device_proxy_read(f.d, 0, BASE, &v, 1);
        g_assert_cmphex(v, ==, 0xff);
        g_assert_false(device_proxy_is_failed(f.d));
        device_proxy_read(f.d, 0, BASE, &v, 1);
        g_assert_cmphex(v, ==, 0x5a);
        g_assert_cmpuint(notified(&f), ==, 0);
        teardown(&f);
}

static void test_wrong_or_malformed_reply_fails(void) {
        struct fixture f;
        const char *reason;
        uint8_t v = 0;

        setup(&f, 500);
        g_assert_cmpint(proto_send(f.peer, PROTO_REPLY_OK, NULL, 0, NULL, 0), ==, 0);
        device_proxy_read(f.d, 0, BASE, &v, 1);
        g_assert_cmphex(v, ==, 0xff);
        g_assert_true(device_proxy_take_failure(f.d, &reason));
        g_assert_cmpstr(reason, ==, "Read: Bad message");
        teardown(&f);

        setup(&f, 500);
        g_assert_cmpint(send(f.peer, "junk", 4, 0), ==, 4);
        device_proxy_read(f.d, 0, BASE, &v, 1);
        g_assert_true(device_proxy_is_failed(f.d));
        teardown(&f);
}

static void test_hang_up_fails_at_once(void) {
        struct fixture f;
        const char *reason;
        uint8_t v = 0;
        int64_t t0;

        setup(&f, 5000);
        close(f.peer);
        f.peer = -1;
        t0 = now_ms();
        device_proxy_read(f.d, 0, BASE, &v, 1);
        g_assert_cmpint(now_ms() - t0, <, 1000);
        g_assert_cmphex(v, ==, 0xff);
        g_assert_true(device_proxy_take_failure(f.d, &reason));
        g_assert_true(g_str_has_prefix(reason, "Read: "));
        teardown(&f);
}

static void test_bad_accesses_are_not_sent(void) {
        struct fixture f;
        struct proto_msg m;
        uint8_t v[9];

        setup(&f, 50);
        device_proxy_read(f.d, 1, BASE, v, 1);  /* no such range */
        device_proxy_read(f.d, 0, BASE, v, 9);  /* too wide */
        device_proxy_write(f.d, 0, BASE, v, 0); /* empty */
        g_assert_cmphex(v[0], ==, 0xff);
        g_assert_false(device_proxy_is_failed(f.d));
        g_assert_cmpint(proto_recv(f.peer, &m, 50), ==, -ETIMEDOUT);
        teardown(&f);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/device-proxy/silent-device-fails-within-timeout", test_silent_device_fails_within_timeout);
        g_test_add_func("/device-proxy/device-that-stops-reading-fails-a-write",
                        test_device_that_stops_reading_fails_a_write);
        g_test_add_func("/device-proxy/error-reply-is-not-a-failure", test_error_reply_is_not_a_failure);
        g_test_add_func("/device-proxy/wrong-or-malformed-reply-fails", test_wrong_or_malformed_reply_fails);
        g_test_add_func("/device-proxy/hang-up-fails-at-once", test_hang_up_fails_at_once);
        g_test_add_func("/device-proxy/bad-accesses-are-not-sent", test_bad_accesses_are_not_sent);
        return g_test_run();
}
