/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-console through the real devmgr and its jail: the test plays KVM
 * and the guest driver (virtio-driver.h) against the device process, and
 * the launcher's console with the other end of a socket pair handed in as
 * PROTO_FD_CONSOLE. */

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "virtio-driver.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define LAUNCHER "org.polyvm.Launcher1"
#define LAUNCHER_PATH "/org/polyvm/Launcher1"
#define DEVICE_IFACE "org.polyvm.Device1"
#define RAM_SIZE (4u << 20)
#define F_VERSION_1 (1ULL << 32)
#define STATUS_NEEDS_RESET 0x40
#define CONFIG_VECTOR 0
#define RX_VECTOR 1
#define TX_VECTOR 2
#define RXQ 0
#define TXQ 1
#define QSIZE 128
#define TX_TOTAL (64u * 1024)

static struct harness h;

struct con {
        struct vdrv d;
        char *path;
        pid_t pid;
        int sock; /* the console's other end, -1 without one */
        struct vdrv_queue *rx, *tx;
};

/* Byte i of a stream: every value appears, and a shifted or repeated
 * chunk does not match. */
static uint8_t pattern(uint64_t seed, uint64_t i) {
        return (uint8_t) (i * 7 + i / 251 + seed);
}

static void console_attach(struct con *c, int sndbuf) {
        struct proto_attach_fd f = { .role = PROTO_FD_CONSOLE };
        char err[PROTO_ERROR_MAX] = "";
        int sv[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
        if (sndbuf > 0)
                g_assert_cmpint(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), ==, 0);
        if (proto_call(c->d.ep, PROTO_ATTACH_FD, &f, sizeof(f), &sv[1], 1, NULL, 2000, err, sizeof(err)) < 0)
                g_error("AttachFd(CONSOLE): %s", err);
        close(sv[1]);
        c->sock = sv[0];
}

/* A device, with a console socket unless sndbuf < 0 (sndbuf > 0: the
 * device end's send buffer), and a driver up to DRIVER_OK. */
static void con_start(struct con *c, int sndbuf) {
        int ep = vdrv_create_device(&h, "virtio-console", "{}", &c->path, &c->pid);

        vdrv_init(&c->d, ep, 3, RAM_SIZE);
        g_assert_true(harness_wait_property(&h, DEVMGR, c->path, DEVICE_IFACE, "State", "active", 5000));
        c->sock = -1;
        if (sndbuf >= 0)
                console_attach(c, sndbuf);
        vdrv_setup_ioevents(&c->d);
        vdrv_setup_msix(&c->d);
        g_assert_cmphex(vdrv_negotiate(&c->d, F_VERSION_1), ==, 0x0b);
        vdrv_common_write(&c->d, 0x10, 2, CONFIG_VECTOR);
        c->rx = vdrv_queue_setup(&c->d, RXQ, QSIZE, RX_VECTOR);
        c->tx = vdrv_queue_setup(&c->d, TXQ, QSIZE, TX_VECTOR);
        vdrv_driver_ok(&c->d);
        g_assert_cmphex(vdrv_status(&c->d), ==, 0x0f);
}

/* Still alive, jailed and not killed by its filter; then a clean exit. */
static void con_stop(struct con *c) {
        g_autofree char *state = harness_get_string(&h, DEVMGR, c->path, DEVICE_IFACE, "State");
        g_autofree char *reason = harness_get_string(&h, DEVMGR, c->path, DEVICE_IFACE, "ExitReason");

        g_assert_cmpstr(state, ==, "active");
        g_assert_cmpstr(reason, ==, "");
        g_assert_cmphex(vdrv_status(&c->d) & STATUS_NEEDS_RESET, ==, 0);
        g_assert_cmpint(proto_call(c->d.ep, PROTO_SHUTDOWN, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_true(harness_wait_property(&h, DEVMGR, c->path, DEVICE_IFACE, "State", "exited", 5000));
        {
                g_autofree char *why = harness_get_string(&h, DEVMGR, c->path, DEVICE_IFACE, "ExitReason");
                g_assert_cmpstr(why, ==, "exited with status 0");
        }
        close(c->d.ep);
        if (c->sock >= 0)
                close(c->sock);
        vdrv_done(&c->d);
        g_free(c->path);
}

/* Reads exactly n bytes from the console socket within timeout_ms. */
static void sock_read_exact(int fd, uint8_t *buf, size_t n, int timeout_ms) {
        size_t got = 0;

        while (got < n) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t k;

                if (poll(&p, 1, timeout_ms) != 1)
                        g_error("console: %zu of %zu bytes after %d ms", got, n, timeout_ms);
                k = recv(fd, buf + got, n - got, MSG_DONTWAIT);
                g_assert_cmpint(k, >, 0);
                got += (size_t) k;
        }
}

static bool sock_has_data(int fd, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        return poll(&p, 1, timeout_ms) == 1;
}

/* utime + stime of the whole device process, in clock ticks. */
static uint64_t cpu_ticks(pid_t pid) {
        g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int) pid), *text = NULL;
        unsigned long long ut, st;
        const char *p;

        g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
        p = strrchr(text, ')'); /* the command may hold spaces */
        g_assert_nonnull(p);
        /* After ")": state (3), then fields 4..13, utime (14), stime (15). */
        g_assert_cmpint(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st), ==, 2);
        return ut + st;
}

/* Puts TX_TOTAL bytes of pattern(seed) on transmitq0 as n_chains chains
 * of one or two buffers; returns their count. */
static unsigned tx_post(struct con *c, uint64_t seed, unsigned n_chains) {
        uint64_t buf = vdrv_alloc(&c->d, TX_TOTAL, 64);
        uint8_t *p = vdrv_ptr(&c->d, buf);
        uint32_t off = 0;

        for (uint32_t i = 0; i < TX_TOTAL; i++)
                p[i] = pattern(seed, i);
        for (unsigned i = 0; i < n_chains; i++) {
                uint32_t len = i + 1 < n_chains ? TX_TOTAL / n_chains + (i % 3) * 17 : TX_TOTAL - off;

                if (i % 2) {
                        struct vdrv_buf two[] = { { buf + off, len / 3, false },
                                                  { buf + off + len / 3, len - len / 3, false } };
                        vdrv_queue_add(&c->d, c->tx, two, 2);
                } else
                        vdrv_queue_add(&c->d, c->tx, (struct vdrv_buf[]) { { buf + off, len, false } }, 1);
                off += len;
        }
        g_assert_cmpuint(off, ==, TX_TOTAL);
        return n_chains;
}

/* Waits for n used tx chains, each with len 0 (the device wrote nothing). */
static void tx_wait_used(struct con *c, unsigned n) {
        uint32_t id, len;

        for (unsigned done = 0; done < n;) {
                if (vdrv_queue_used(&c->d, c->tx, &id, &len)) {
                        g_assert_cmpuint(len, ==, 0);
                        done++;
                        continue;
                }
                if (!vdrv_wait_irq(&c->d, TX_VECTOR, 2000))
                        g_error("transmitq: %u of %u chains back", done, n);
        }
        g_assert_false(vdrv_queue_used(&c->d, c->tx, &id, &len));
}

static void tx_check_stream(struct con *c, uint64_t seed) {
        g_autofree uint8_t *got = g_malloc(TX_TOTAL);

        sock_read_exact(c->sock, got, TX_TOTAL, 2000);
        for (uint32_t i = 0; i < TX_TOTAL; i++)
                if (got[i] != pattern(seed, i))
                        g_error("console byte %u: 0x%02x, expected 0x%02x", i, got[i], pattern(seed, i));
        g_assert_false(sock_has_data(c->sock, 50));
}

/* Posts n rx buffers of size bytes; their addresses by head in gpa[]. */
static void rx_post(struct con *c, unsigned n, uint32_t size, uint64_t gpa[QSIZE]) {
        for (unsigned i = 0; i < n; i++) {
                uint64_t b = vdrv_alloc(&c->d, size, 64);
                uint16_t head = vdrv_queue_add(&c->d, c->rx, (struct vdrv_buf[]) { { b, size, true } }, 1);

                gpa[head] = b;
        }
        vdrv_kick(&c->d, RXQ);
}

/* Collects n bytes from used rx buffers, in used-ring order. */
static void rx_collect(struct con *c, const uint64_t gpa[QSIZE], uint8_t *out, size_t n) {
        size_t got = 0;
        uint32_t id, len;

        while (got < n) {
                if (!vdrv_queue_used(&c->d, c->rx, &id, &len)) {
                        if (!vdrv_wait_irq(&c->d, RX_VECTOR, 2000))
                                g_error("receiveq: %zu of %zu bytes", got, n);
                        continue;
                }
                g_assert_cmpuint(id, <, QSIZE);
                g_assert_cmpuint(len, >, 0);
                g_assert_cmpuint(got + len, <=, n);
                memcpy(out + got, vdrv_ptr(&c->d, gpa[id]), len);
                got += len;
        }
}

static void rx_send_and_check(struct con *c, const uint64_t gpa[QSIZE], uint64_t seed, size_t n) {
        g_autofree uint8_t *sent = g_malloc(n), *got = g_malloc(n);

        for (size_t i = 0; i < n; i++)
                sent[i] = pattern(seed, i);
        g_assert_cmpint(send(c->sock, sent, n, MSG_NOSIGNAL), ==, (ssize_t) n);
        rx_collect(c, gpa, got, n);
        g_assert_cmpmem(got, n, sent, n);
}

/* Identity and config as the guest's and Linux's drivers read them, then
 * both directions: 64 KiB over several chains (some of two buffers) out
 * in order, and 3000 bytes in across 512-byte receive buffers. */
static void test_virtio_console_transmits_in_order_and_receives_into_posted_buffers(void) {
        uint64_t gpa[QSIZE] = {};
        struct con c;
        unsigned n;

        con_start(&c, 0);
        g_assert_cmphex(vdrv_config_read(&c.d, 2) >> 8, ==, 0x078000);     /* class */
        g_assert_cmphex(vdrv_device_features(&c.d) & 0xffffff, ==, 0); /* no device bits: no SIZE, MULTIPORT */
        g_assert_cmphex(vdrv_device_features(&c.d) & F_VERSION_1, ==, F_VERSION_1);
        g_assert_cmpuint(c.d.device_len, ==, 12);
        g_assert_cmpuint(vdrv_bar_read(&c.d, c.d.device + 4, 4), ==, 1); /* max_nr_ports */
        g_assert_cmpuint(vdrv_bar_read(&c.d, c.d.device + 0, 4), ==, 0); /* cols, rows */

        n = tx_post(&c, 1, 24);
        vdrv_kick(&c.d, TXQ);
        tx_check_stream(&c, 1);
        tx_wait_used(&c, n);

        rx_post(&c, 8, 512, gpa);
        rx_send_and_check(&c, gpa, 2, 3000);
        /* A trapped notify works as well as the ioeventfd. */
        n = tx_post(&c, 3, 5);
        vdrv_kick_trapped(&c.d, TXQ);
        tx_check_stream(&c, 3);
        tx_wait_used(&c, n);
        con_stop(&c);
}

/* With no receive buffer the device does not poll the console: input
 * waits in the socket, the process stays idle, and buffers posted later
 * get it all. */
static void test_virtio_console_waits_for_rx_buffers_without_spinning(void) {
        uint64_t gpa[QSIZE] = {}, before;
        uint8_t sent[1000], got[1000];
        struct con c;

        con_start(&c, 0);
        for (size_t i = 0; i < sizeof(sent); i++)
                sent[i] = pattern(4, i);
        g_assert_cmpint(send(c.sock, sent, sizeof(sent), MSG_NOSIGNAL), ==, (ssize_t) sizeof(sent));
        before = cpu_ticks(c.pid);
        g_usleep(G_USEC_PER_SEC);
        /* A spinning worker would use ~100 ticks in that second. */
        g_assert_cmpuint(cpu_ticks(c.pid) - before, <=, 5);

        rx_post(&c, 4, 256, gpa);
        rx_collect(&c, gpa, got, sizeof(got));
        g_assert_cmpmem(got, sizeof(got), sent, sizeof(sent));
        con_stop(&c);
}

/* A console that does not read: the device keeps the chain it is sending
 * and takes no more (the transmitq fills), stays idle, and when the
 * console reads again everything comes out, in order, nothing lost. */
static void test_virtio_console_full_socket_loses_no_output(void) {
        g_autofree uint8_t *got = g_malloc(TX_TOTAL);
        uint64_t before;
        uint32_t id, len;
        unsigned n, back = 0;
        struct con c;

        con_start(&c, 4096); /* the kernel makes it its minimum, about 4.5 KiB */
        n = tx_post(&c, 5, 32);
        vdrv_kick(&c.d, TXQ);
        g_usleep(200 * 1000);
        before = cpu_ticks(c.pid);
        g_usleep(500 * 1000);
        g_assert_cmpuint(cpu_ticks(c.pid) - before, <=, 3);
        while (vdrv_queue_used(&c.d, c.tx, &id, &len))
                back++;
        g_assert_cmpuint(back, <, n); /* held, not dropped */

        sock_read_exact(c.sock, got, TX_TOTAL, 5000);
        for (uint32_t i = 0; i < TX_TOTAL; i++)
                if (got[i] != pattern(5, i))
                        g_error("console byte %u: 0x%02x, expected 0x%02x", i, got[i], pattern(5, i));
        tx_wait_used(&c, n - back);
        con_stop(&c);
}

/* 5.3.6.1: a driver MUST NOT put a device-writable buffer on a transmitq
 * nor a device-readable one on a receiveq. The device skips such chains
 * (used len 0, nothing sent, no input consumed), does not set
 * NEEDS_RESET, and goes on with the next ones. */
static void test_virtio_console_skips_chains_in_the_wrong_direction(void) {
        uint64_t gpa[QSIZE] = {}, out = 0, in = 0;
        uint32_t id, len;
        uint16_t bad;
        struct con c;

        con_start(&c, 0);
        out = vdrv_alloc(&c.d, 64, 64);
        memset(vdrv_ptr(&c.d, out), 'x', 64);
        in = vdrv_alloc(&c.d, 64, 64);

        /* transmitq: writable only, then readable + writable. */
        bad = vdrv_queue_add(&c.d, c.tx, (struct vdrv_buf[]) { { in, 64, true } }, 1);
        vdrv_kick(&c.d, TXQ);
        g_assert_true(vdrv_wait_irq(&c.d, TX_VECTOR, 2000));
        g_assert_true(vdrv_queue_used(&c.d, c.tx, &id, &len));
        g_assert_cmpuint(id, ==, bad);
        g_assert_cmpuint(len, ==, 0);
        bad = vdrv_queue_add(&c.d, c.tx, (struct vdrv_buf[]) { { out, 64, false }, { in, 64, true } }, 2);
        vdrv_kick(&c.d, TXQ);
        g_assert_true(vdrv_wait_irq(&c.d, TX_VECTOR, 2000));
        g_assert_true(vdrv_queue_used(&c.d, c.tx, &id, &len));
        g_assert_cmpuint(id, ==, bad);
        g_assert_cmpuint(len, ==, 0);
        g_assert_false(sock_has_data(c.sock, 100));

        /* receiveq: readable only, and readable + writable, while input
         * waits; they come back empty and the input stays for a good one. */
        g_assert_cmpint(send(c.sock, "hello", 5, MSG_NOSIGNAL), ==, 5);
        bad = vdrv_queue_add(&c.d, c.rx, (struct vdrv_buf[]) { { out, 64, false } }, 1);
        vdrv_kick(&c.d, RXQ);
        g_assert_true(vdrv_wait_irq(&c.d, RX_VECTOR, 2000));
        g_assert_true(vdrv_queue_used(&c.d, c.rx, &id, &len));
        g_assert_cmpuint(id, ==, bad);
        g_assert_cmpuint(len, ==, 0);
        bad = vdrv_queue_add(&c.d, c.rx, (struct vdrv_buf[]) { { out, 64, false }, { in, 64, true } }, 2);
        vdrv_kick(&c.d, RXQ);
        g_assert_true(vdrv_wait_irq(&c.d, RX_VECTOR, 2000));
        g_assert_true(vdrv_queue_used(&c.d, c.rx, &id, &len));
        g_assert_cmpuint(id, ==, bad);
        g_assert_cmpuint(len, ==, 0);
        g_assert_cmphex(vdrv_status(&c.d) & STATUS_NEEDS_RESET, ==, 0);

        /* Good chains still work both ways. */
        rx_post(&c, 1, 64, gpa);
        {
                char buf[5];

                rx_collect(&c, gpa, (uint8_t *) buf, 5);
                g_assert_cmpmem(buf, 5, "hello", 5);
        }
        vdrv_queue_add(&c.d, c.tx, (struct vdrv_buf[]) { { out, 64, false } }, 1);
        vdrv_kick(&c.d, TXQ);
        {
                uint8_t buf[64];

                sock_read_exact(c.sock, buf, 64, 2000);
                g_assert_cmpuint(buf[0], ==, 'x');
                g_assert_cmpuint(buf[63], ==, 'x');
        }
        tx_wait_used(&c, 1);

        /* A ring that points outside guest RAM is the transport's business:
         * NEEDS_RESET and a config interrupt; a reset brings it back. */
        vdrv_queue_add(&c.d, c.tx, (struct vdrv_buf[]) { { RAM_SIZE - 16, 4096, false } }, 1);
        vdrv_kick(&c.d, TXQ);
        g_assert_true(vdrv_wait_irq(&c.d, CONFIG_VECTOR, 2000));
        g_assert_cmphex(vdrv_status(&c.d) & STATUS_NEEDS_RESET, ==, STATUS_NEEDS_RESET);
        g_assert_cmphex(vdrv_config_read(&c.d, 0), ==, 0x10431af4);
        g_assert_cmphex(vdrv_negotiate(&c.d, F_VERSION_1), ==, 0x0b);
        c.rx = vdrv_queue_setup(&c.d, RXQ, QSIZE, RX_VECTOR);
        c.tx = vdrv_queue_setup(&c.d, TXQ, QSIZE, TX_VECTOR);
        vdrv_driver_ok(&c.d);
        vdrv_queue_add(&c.d, c.tx, (struct vdrv_buf[]) { { out, 64, false } }, 1);
        vdrv_kick(&c.d, TXQ);
        {
                uint8_t buf[64];

                sock_read_exact(c.sock, buf, 64, 2000);
                g_assert_cmpuint(buf[10], ==, 'x');
        }
        tx_wait_used(&c, 1);
        con_stop(&c);
}

/* Without a console, and after the console hangs up, output is discarded
 * (the chains still come back) and nothing else changes. */
static void test_virtio_console_without_console_discards_output(void) {
        struct con c;
        unsigned n;

        con_start(&c, -1);
        n = tx_post(&c, 6, 8);
        vdrv_kick(&c.d, TXQ);
        tx_wait_used(&c, n);
        con_stop(&c);

        con_start(&c, 0);
        close(c.sock);
        c.sock = -1;
        n = tx_post(&c, 7, 8);
        vdrv_kick(&c.d, TXQ);
        tx_wait_used(&c, n);
        /* A console attached later (a new launcher end) gets what follows. */
        console_attach(&c, 0);
        n = tx_post(&c, 8, 4);
        vdrv_kick(&c.d, TXQ);
        tx_check_stream(&c, 8);
        tx_wait_used(&c, n);
        con_stop(&c);
}

static char *create_vm(const char *name, const char *console, const char *devices, char **message) {
        g_autofree char *kernel = harness_build_path("guest/polyvm-testguest.elf");
        g_autofree char *config = g_strdup_printf(
                "{\"kernel\": \"%s\", \"memory_mib\": 64, \"devices\": %s, \"console\": \"%s\"}", kernel, devices,
                console);

        return harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "CreateVm", message, "ss", name, config);
}

/* The launcher hands the VM's console to the first device of the kind
 * "console" names; a kind that takes no console fails CreateVm by name
 * (devmgr's model knows, config.c cannot), and leaves no VM behind. */
static void test_launcher_gives_the_console_to_the_named_kind(void) {
        g_autofree char *err = NULL, *message = NULL;

        err = create_vm("vcon", "virtio-console", "[{\"kind\": \"serial\"}, {\"kind\": \"virtio-console\"}]",
                        &message);
        if (err)
                g_error("CreateVm: %s: %s", err, message);
        g_clear_pointer(&err, g_free);
        err = harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "DestroyVm", NULL, "s", "vcon");
        g_assert_null(err);

        g_clear_pointer(&message, g_free);
        err = create_vm("vcon-rtc", "rtc", "[{\"kind\": \"serial\"}, {\"kind\": \"rtc\"}]", &message);
        g_assert_cmpstr(err, ==, "org.polyvm.Error.InvalidConfig");
        g_assert_nonnull(strstr(message, "config.console: devices[1] (rtc) takes no console"));
        g_clear_pointer(&err, g_free);
        err = harness_call_error(&h, LAUNCHER, LAUNCHER_PATH, LAUNCHER, "DestroyVm", NULL, "s", "vcon-rtc");
        g_assert_cmpstr(err, ==, "org.polyvm.Error.NoSuchVm");

        g_clear_pointer(&err, g_free);
        g_clear_pointer(&message, g_free);
        err = create_vm("vcon-none", "virtio-console", "[{\"kind\": \"serial\"}]", &message);
        g_assert_cmpstr(err, ==, "org.polyvm.Error.InvalidConfig");
        g_assert_nonnull(strstr(message, "config.console: \"virtio-console\" is not the kind of any entry"));
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        harness_start(&h);
        g_test_add_func("/virtio-console/transmits-in-order-and-receives-into-posted-buffers",
                        test_virtio_console_transmits_in_order_and_receives_into_posted_buffers);
        g_test_add_func("/virtio-console/waits-for-rx-buffers-without-spinning",
                        test_virtio_console_waits_for_rx_buffers_without_spinning);
        g_test_add_func("/virtio-console/full-socket-loses-no-output", test_virtio_console_full_socket_loses_no_output);
        g_test_add_func("/virtio-console/skips-chains-in-the-wrong-direction",
                        test_virtio_console_skips_chains_in_the_wrong_direction);
        g_test_add_func("/virtio-console/without-console-discards-output",
                        test_virtio_console_without_console_discards_output);
        g_test_add_func("/virtio-console/launcher-gives-the-console-to-the-named-kind",
                        test_launcher_gives_the_console_to_the_named_kind);
        r = g_test_run();
        harness_stop(&h);
        return r;
}
