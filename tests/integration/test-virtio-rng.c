/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-rng through the real devmgr and its jail: the test plays KVM and
 * the guest driver (virtio-driver.h) against the device process over its
 * endpoint, with guest RAM in a memfd, kicks on ioeventfds or trapped
 * notify writes, and interrupts on irqfds. */

#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "virtio-driver.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVICE_IFACE "org.polyvm.Device1"
#define RAM_SIZE (4u << 20)
#define F_VERSION_1 (1ULL << 32)
#define STATUS_FEATURES_OK 0x08
#define STATUS_NEEDS_RESET 0x40
#define CONFIG_VECTOR 0
#define QUEUE_VECTOR 1

static struct harness h;

struct rng {
        struct vdrv d;
        char *path;
        pid_t pid;
};

static void rng_start(struct rng *r) {
        int ep = vdrv_create_device(&h, "virtio-rng", "{}", &r->path, &r->pid);

        vdrv_init(&r->d, ep, 4, RAM_SIZE);
        g_assert_true(harness_wait_property(&h, DEVMGR, r->path, DEVICE_IFACE, "State", "active", 5000));
}

/* Negotiates VERSION_1, sets up queue 0 on QUEUE_VECTOR, DRIVER_OK. */
static struct vdrv_queue *rng_driver_init(struct rng *r) {
        struct vdrv_queue *q;

        g_assert_cmphex(vdrv_negotiate(&r->d, F_VERSION_1), ==, 0x0b);
        vdrv_common_write(&r->d, 0x10, 2, CONFIG_VECTOR);
        g_assert_cmpuint(vdrv_common_read(&r->d, 0x10, 2), ==, CONFIG_VECTOR);
        q = vdrv_queue_setup(&r->d, 0, 16, QUEUE_VECTOR);
        vdrv_driver_ok(&r->d);
        g_assert_cmphex(vdrv_status(&r->d), ==, 0x0f);
        return q;
}

/* The device is still alive, jailed and not killed by its filter. */
static void rng_stop(struct rng *r) {
        g_autofree char *state = harness_get_string(&h, DEVMGR, r->path, DEVICE_IFACE, "State");
        g_autofree char *reason = harness_get_string(&h, DEVMGR, r->path, DEVICE_IFACE, "ExitReason");

        g_assert_cmpstr(state, ==, "active");
        g_assert_cmpstr(reason, ==, "");
        g_assert_cmpint(proto_call(r->d.ep, PROTO_SHUTDOWN, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_true(harness_wait_property(&h, DEVMGR, r->path, DEVICE_IFACE, "State", "exited", 5000));
        {
                g_autofree char *why = harness_get_string(&h, DEVMGR, r->path, DEVICE_IFACE, "ExitReason");
                g_assert_cmpstr(why, ==, "exited with status 0");
        }
        close(r->d.ep);
        vdrv_done(&r->d);
        g_free(r->path);
}

/* Random-looking: not constant, many distinct byte values, not a copy of
 * the other buffer. */
static void assert_random(const uint8_t *a, const uint8_t *b, size_t n) {
        bool seen[256] = {};
        unsigned distinct = 0;

        for (size_t i = 0; i < n; i++)
                if (!seen[a[i]]) {
                        seen[a[i]] = true;
                        distinct++;
                }
        g_assert_cmpuint(distinct, >, 64);
        if (b)
                g_assert_cmpint(memcmp(a, b, n), !=, 0);
}

static void request_and_check(struct rng *r, struct vdrv_queue *q, bool trapped) {
        uint64_t a = vdrv_alloc(&r->d, 512, 64), b = vdrv_alloc(&r->d, 256, 64), c = vdrv_alloc(&r->d, 256, 64);
        struct vdrv_buf one[] = { { a, 512, true } }, two[] = { { b, 256, true }, { c, 256, true } };
        uint16_t h1 = vdrv_queue_add(&r->d, q, one, 1), h2 = vdrv_queue_add(&r->d, q, two, 2);
        uint32_t id, len;

        if (trapped)
                vdrv_kick_trapped(&r->d, 0);
        else
                vdrv_kick(&r->d, 0);
        g_assert_true(vdrv_wait_irq(&r->d, QUEUE_VECTOR, 2000));
        /* Both chains may come back under one interrupt. */
        for (int i = 0; i < 2; i++) {
                if (!vdrv_queue_used(&r->d, q, &id, &len)) {
                        g_assert_true(vdrv_wait_irq(&r->d, QUEUE_VECTOR, 2000));
                        g_assert_true(vdrv_queue_used(&r->d, q, &id, &len));
                }
                g_assert_true(id == h1 || id == h2);
                g_assert_cmpuint(len, ==, 512);
        }
        g_assert_false(vdrv_queue_used(&r->d, q, &id, &len));
        assert_random(vdrv_ptr(&r->d, a), vdrv_ptr(&r->d, b), 512);
        assert_random(vdrv_ptr(&r->d, b), vdrv_ptr(&r->d, c), 256);
}

/* The whole path as the launcher and a guest will use it: ioeventfd kick,
 * MSI-X irqfd, buffers filled in the shared memfd; then the same kicked by
 * a trapped write to the notify address. */
static void test_virtio_rng_fills_buffers_through_ioeventfd_and_trapped_notify(void) {
        struct vdrv_queue *q;
        struct rng r;

        rng_start(&r);
        vdrv_setup_ioevents(&r.d);
        vdrv_setup_msix(&r.d);
        g_assert_true(vdrv_device_features(&r.d) & F_VERSION_1);
        q = rng_driver_init(&r);
        request_and_check(&r, q, false);
        request_and_check(&r, q, true);
        /* A second device-readable buffer in front is ignored, the
         * writable one is filled. */
        {
                uint64_t in = vdrv_alloc(&r.d, 64, 64), out = vdrv_alloc(&r.d, 4096, 64);
                struct vdrv_buf bufs[] = { { in, 64, false }, { out, 4096, true } };
                uint32_t id, len;

                vdrv_queue_add(&r.d, q, bufs, 2);
                vdrv_kick(&r.d, 0);
                g_assert_true(vdrv_wait_irq(&r.d, QUEUE_VECTOR, 2000));
                g_assert_true(vdrv_queue_used(&r.d, q, &id, &len));
                g_assert_cmpuint(len, ==, 4096);
                assert_random(vdrv_ptr(&r.d, out), NULL, 4096);
        }
        rng_stop(&r);
}

/* A buffer outside guest RAM and a descriptor loop: DEVICE_NEEDS_RESET
 * with a config interrupt, the endpoint still answers, and a reset and a
 * new driver init work again. */
static void test_virtio_rng_hostile_ring_needs_reset_and_recovers(void) {
        struct vdrv_queue *q;
        struct rng r;
        uint32_t id, len;

        rng_start(&r);
        vdrv_setup_ioevents(&r.d);
        vdrv_setup_msix(&r.d);

        /* Outside RAM. */
        q = rng_driver_init(&r);
        vdrv_queue_add(&r.d, q, (struct vdrv_buf[]) { { RAM_SIZE - 16, 4096, true } }, 1);
        vdrv_kick(&r.d, 0);
        g_assert_true(vdrv_wait_irq(&r.d, CONFIG_VECTOR, 2000));
        g_assert_cmphex(vdrv_status(&r.d) & STATUS_NEEDS_RESET, ==, STATUS_NEEDS_RESET);
        g_assert_cmphex(vdrv_bar_read(&r.d, r.d.isr, 1), ==, 0x2); /* config change */
        g_assert_cmphex(vdrv_bar_read(&r.d, r.d.isr, 1), ==, 0);
        g_assert_false(vdrv_queue_used(&r.d, q, &id, &len));
        /* More kicks do nothing but leave it answering. */
        vdrv_kick(&r.d, 0);
        vdrv_kick_trapped(&r.d, 0);
        g_assert_cmphex(vdrv_config_read(&r.d, 0), ==, 0x10441af4);

        /* A reset brings it back. */
        q = rng_driver_init(&r);
        request_and_check(&r, q, false);

        /* A chain that loops onto itself. */
        {
                uint64_t buf = vdrv_alloc(&r.d, 64, 64);
                uint8_t *desc;
                uint16_t head, next;

                head = vdrv_queue_add(&r.d, q, (struct vdrv_buf[]) { { buf, 64, true } }, 1);
                desc = vdrv_ptr(&r.d, q->desc) + 16u * head;
                desc[12] = 3; /* NEXT | WRITE */
                next = head;
                memcpy(desc + 14, &next, 2);
                vdrv_kick(&r.d, 0);
                g_assert_true(vdrv_wait_irq(&r.d, CONFIG_VECTOR, 2000));
                g_assert_cmphex(vdrv_status(&r.d) & STATUS_NEEDS_RESET, ==, STATUS_NEEDS_RESET);
        }
        q = rng_driver_init(&r);
        request_and_check(&r, q, true);
        rng_stop(&r);
}

/* Without MSI-X: INTx edges with ISR bit 0, read to clear. */
static void test_virtio_rng_intx_with_isr(void) {
        struct vdrv_queue *q;
        struct rng r;
        uint64_t out;
        uint32_t id, len;

        rng_start(&r);
        vdrv_setup_ioevents(&r.d);
        vdrv_setup_intx(&r.d);
        g_assert_cmphex(vdrv_negotiate(&r.d, F_VERSION_1), ==, 0x0b);
        q = vdrv_queue_setup(&r.d, 0, 8, 0xffff);
        vdrv_driver_ok(&r.d);
        out = vdrv_alloc(&r.d, 128, 64);
        vdrv_queue_add(&r.d, q, (struct vdrv_buf[]) { { out, 128, true } }, 1);
        vdrv_kick(&r.d, 0);
        g_assert_true(vdrv_wait_intx(&r.d, 2000));
        g_assert_cmphex((vdrv_config_read(&r.d, 1) >> 16) & 0x08, ==, 0x08); /* PCI interrupt status */
        g_assert_cmphex(vdrv_bar_read(&r.d, r.d.isr, 1), ==, 0x1);
        g_assert_cmphex(vdrv_bar_read(&r.d, r.d.isr, 1), ==, 0);
        g_assert_cmphex((vdrv_config_read(&r.d, 1) >> 16) & 0x08, ==, 0);
        g_assert_true(vdrv_queue_used(&r.d, q, &id, &len));
        g_assert_cmpuint(len, ==, 128);
        rng_stop(&r);
}

/* FEATURES_OK is not kept without VERSION_1 or with a bit never offered;
 * Sleep stops the data path and Wake resumes it. */
static void test_virtio_rng_refuses_features_and_sleeps(void) {
        struct vdrv_queue *q;
        struct rng r;
        uint64_t out;
        uint32_t id, len;

        rng_start(&r);
        vdrv_setup_ioevents(&r.d);
        vdrv_setup_msix(&r.d);
        g_assert_cmphex(vdrv_negotiate(&r.d, 0) & STATUS_FEATURES_OK, ==, 0);
        g_assert_cmphex(vdrv_negotiate(&r.d, F_VERSION_1 | 1), ==, 0x03); /* bit 0 was not offered */
        q = rng_driver_init(&r);

        g_assert_cmpint(proto_call(r.d.ep, PROTO_SLEEP, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        out = vdrv_alloc(&r.d, 64, 64);
        vdrv_queue_add(&r.d, q, (struct vdrv_buf[]) { { out, 64, true } }, 1);
        vdrv_kick(&r.d, 0);
        g_assert_false(vdrv_wait_irq(&r.d, QUEUE_VECTOR, 200));
        g_assert_false(vdrv_queue_used(&r.d, q, &id, &len));
        g_assert_cmpint(proto_call(r.d.ep, PROTO_WAKE, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_true(vdrv_wait_irq(&r.d, QUEUE_VECTOR, 2000));
        g_assert_true(vdrv_queue_used(&r.d, q, &id, &len));
        g_assert_cmpuint(len, ==, 64);
        rng_stop(&r);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        harness_start(&h);
        g_test_add_func("/virtio-rng/fills-buffers-through-ioeventfd-and-trapped-notify",
                        test_virtio_rng_fills_buffers_through_ioeventfd_and_trapped_notify);
        g_test_add_func("/virtio-rng/hostile-ring-needs-reset-and-recovers",
                        test_virtio_rng_hostile_ring_needs_reset_and_recovers);
        g_test_add_func("/virtio-rng/intx-with-isr", test_virtio_rng_intx_with_isr);
        g_test_add_func("/virtio-rng/refuses-features-and-sleeps", test_virtio_rng_refuses_features_and_sleeps);
        r = g_test_run();
        harness_stop(&h);
        return r;
}
