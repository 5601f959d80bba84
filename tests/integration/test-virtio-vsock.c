/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-vsock through the real devmgr and its jail: the test plays KVM
 * and the guest's vsock stack (virtio-driver.h) against the device
 * process, and the host side with plain AF_UNIX sockets: a client of
 * uds_path (host -> guest, "CONNECT <port>\n") and listeners on
 * "<uds_path>_<port>" (guest -> host, which devmgr connects for the
 * jailed device). */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "virtio-driver.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"
#define DEVICE_IFACE "org.polyvm.Device1"
#define RAM_SIZE (16u << 20)
#define F_VERSION_1 (1ULL << 32)
#define GUEST_CID 3
#define HOST_CID 2
#define QSIZE 64
#define RX_POSTED 48
#define RX_BUF 4096
#define TX_BUF (44 + 16384)
#define GUEST_BUF_ALLOC (64u * 1024)
#define HOST_PORT_BASE (1u << 30)
#define MAX_CONNS 64

enum { RX = 0, TX = 1, EVT = 2 };
enum { OP_REQUEST = 1, OP_RESPONSE = 2, OP_RST = 3, OP_SHUTDOWN = 4, OP_RW = 5, OP_CREDIT_UPDATE = 6,
       OP_CREDIT_REQUEST = 7 };

struct hdr {
        uint64_t src_cid, dst_cid;
        uint32_t src_port, dst_port, len;
        uint16_t type, op;
        uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

static struct harness h;
/* What our guest consumed of the stream it moves data on (all it got: it
 * reads at once); every packet it sends tells it (5.10.6.3). */
static uint32_t guest_fwd_cnt, guest_fwd_told;

struct vsock {
        struct vdrv d;
        char *path;
        pid_t pid;
        char *dir, *uds;
        struct vdrv_queue *rxq, *txq;
        uint64_t rx_pool, tx_pool;
        uint8_t payload[RX_BUF];
};

static void rx_post(struct vsock *v) {
        uint64_t addr = v->rx_pool + (uint64_t) v->rxq->next_desc * (44 + RX_BUF);

        vdrv_queue_add(&v->d, v->rxq, (struct vdrv_buf[]) { { addr, 44 + RX_BUF, true } }, 1);
}

static void vsock_start(struct vsock *v) {
        g_autofree char *config = NULL;
        int ep;

        v->dir = g_dir_make_tmp("polyvm-vsock-XXXXXX", NULL);
        g_assert_nonnull(v->dir);
        v->uds = g_strdup_printf("%s/vsock.sock", v->dir);
        config = g_strdup_printf("{\"cid\": %d, \"uds_path\": \"%s\"}", GUEST_CID, v->uds);
        ep = vdrv_create_device(&h, "virtio-vsock", config, &v->path, &v->pid);
        vdrv_init(&v->d, ep, 19, RAM_SIZE);
        g_assert_true(harness_wait_property(&h, DEVMGR, v->path, DEVICE_IFACE, "State", "active", 5000));
        vdrv_setup_ioevents(&v->d);
        vdrv_setup_msix(&v->d);

        /* 5.10.3/5.10.4: STREAM offered, one le64 of config: our CID. */
        g_assert_true(vdrv_device_features(&v->d) & 1);
        g_assert_cmphex(vdrv_negotiate(&v->d, F_VERSION_1 | 1), ==, 0x0b);
        g_assert_cmpuint(vdrv_bar_read(&v->d, v->d.device, 4), ==, GUEST_CID);
        g_assert_cmpuint(vdrv_bar_read(&v->d, v->d.device + 4, 4), ==, 0);
        g_assert_cmpuint(v->d.num_queues, ==, 3);
        vdrv_common_write(&v->d, 0x10, 2, 0);
        v->rxq = vdrv_queue_setup(&v->d, RX, QSIZE, 1);
        v->txq = vdrv_queue_setup(&v->d, TX, QSIZE, 2);
        (void) vdrv_queue_setup(&v->d, EVT, 8, 3);
        v->rx_pool = vdrv_alloc(&v->d, (uint64_t) QSIZE * (44 + RX_BUF), 4096);
        v->tx_pool = vdrv_alloc(&v->d, (uint64_t) QSIZE * TX_BUF, 4096);
        for (int i = 0; i < RX_POSTED; i++)
                rx_post(v);
        vdrv_driver_ok(&v->d);
        g_assert_cmphex(vdrv_status(&v->d), ==, 0x0f);
}

/* The device is alive, never killed by its filter; then it shuts down. */
static void vsock_stop(struct vsock *v) {
        g_autofree char *state = harness_get_string(&h, DEVMGR, v->path, DEVICE_IFACE, "State");
        g_autofree char *reason = harness_get_string(&h, DEVMGR, v->path, DEVICE_IFACE, "ExitReason");

        g_assert_cmpstr(state, ==, "active");
        g_assert_cmpstr(reason, ==, "");
        g_assert_cmpint(proto_call(v->d.ep, PROTO_SHUTDOWN, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_true(harness_wait_property(&h, DEVMGR, v->path, DEVICE_IFACE, "State", "exited", 5000));
        close(v->d.ep);
        vdrv_done(&v->d);
        unlink(v->uds);
        rmdir(v->dir);
        g_free(v->path);
        g_free(v->uds);
        g_free(v->dir);
}

static struct hdr mkhdr(uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t len) {
        guest_fwd_told = guest_fwd_cnt;
        return (struct hdr) { .src_cid = htole64(GUEST_CID), .dst_cid = htole64(HOST_CID), .src_port = htole32(src_port),
                              .dst_port = htole32(dst_port), .len = htole32(len), .type = htole16(1),
                              .op = htole16(op), .buf_alloc = htole32(GUEST_BUF_ALLOC),
                              .fwd_cnt = htole32(guest_fwd_cnt) };
}

/* One guest packet on tx; waits until the device has taken it. */
static void send_raw(struct vsock *v, const struct hdr *hd, const void *payload, uint32_t n, uint32_t desc_len) {
        uint64_t addr = v->tx_pool + (uint64_t) v->txq->next_desc * TX_BUF;
        uint32_t id, len;

        g_assert_cmpuint(44 + n, <=, TX_BUF);
        memcpy(vdrv_ptr(&v->d, addr), hd, 44);
        if (n)
                memcpy(vdrv_ptr(&v->d, addr + 44), payload, n);
        vdrv_queue_add(&v->d, v->txq, (struct vdrv_buf[]) { { addr, desc_len, false } }, 1);
        vdrv_kick(&v->d, TX);
        while (!vdrv_queue_used(&v->d, v->txq, &id, &len))
                g_assert_true(vdrv_wait_irq(&v->d, 2, 5000));
}

static void send_pkt(struct vsock *v, struct hdr hd, const void *payload, uint32_t n) {
        send_raw(v, &hd, payload, n, 44 + n);
}

/* The next packet for the guest within timeout_ms; its payload in
 * v->payload. The buffer is posted again. */
static bool recv_pkt(struct vsock *v, struct hdr *ret, int timeout_ms) {
        uint32_t id, len;

        while (!vdrv_queue_used(&v->d, v->rxq, &id, &len))
                if (!vdrv_wait_irq(&v->d, 1, timeout_ms))
                        return false;
        {
                uint8_t *p = vdrv_ptr(&v->d, v->rx_pool + (uint64_t) id * (44 + RX_BUF));
                struct hdr hd;

                g_assert_cmpuint(len, >=, 44);
                memcpy(&hd, p, 44);
                *ret = (struct hdr) { .src_cid = le64toh(hd.src_cid), .dst_cid = le64toh(hd.dst_cid),
                                      .src_port = le32toh(hd.src_port), .dst_port = le32toh(hd.dst_port),
                                      .len = le32toh(hd.len), .type = le16toh(hd.type), .op = le16toh(hd.op),
                                      .flags = le32toh(hd.flags), .buf_alloc = le32toh(hd.buf_alloc),
                                      .fwd_cnt = le32toh(hd.fwd_cnt) };
                g_assert_cmpuint(len, ==, 44 + ret->len);
                g_assert_cmpuint(ret->len, <=, RX_BUF);
                g_assert_cmpuint(ret->src_cid, ==, HOST_CID);
                g_assert_cmpuint(ret->dst_cid, ==, GUEST_CID);
                g_assert_cmpuint(ret->type, ==, 1);
                memcpy(v->payload, p + 44, ret->len);
                if (ret->op == OP_RW)
                        guest_fwd_cnt += ret->len;
        }
        rx_post(v);
        vdrv_kick(&v->d, RX);
        return true;
}

static void expect_pkt(struct vsock *v, uint16_t op, uint32_t src_port, uint32_t dst_port, struct hdr *ret) {
        struct hdr hd;

        g_assert_true(recv_pkt(v, &hd, 5000));
        g_assert_cmpuint(hd.op, ==, op);
        g_assert_cmpuint(hd.src_port, ==, src_port);
        g_assert_cmpuint(hd.dst_port, ==, dst_port);
        if (ret)
                *ret = hd;
}

static int unix_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
        g_assert_cmpint(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), ==, 0);
        return fd;
}

static int unix_listen(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
        g_assert_cmpint(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), ==, 0);
        g_assert_cmpint(listen(fd, 128), ==, 0);
        return fd;
}

static void read_exact(int fd, void *buf, size_t n) {
        size_t got = 0;

        while (got < n) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t r;

                g_assert_cmpint(poll(&p, 1, 5000), ==, 1);
                r = read(fd, (uint8_t *) buf + got, n - got);
                g_assert_cmpint(r, >, 0);
                got += (size_t) r;
        }
}

static void assert_eof(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        char c;

        g_assert_cmpint(poll(&p, 1, 5000), ==, 1);
        g_assert_cmpint(read(fd, &c, 1), ==, 0);
}

static uint8_t pattern(uint64_t i) {
        return (uint8_t) (i * 7 + (i >> 9));
}

/* 1 MiB each way over an established stream, with credit both ways: the
 * guest respects the device's buf_alloc/fwd_cnt and tells its own
 * consumption with CREDIT_UPDATE; the host socket is read and written
 * without blocking so both sides make progress in one thread. */
static void move_mib_both_ways(struct vsock *v, int host, uint32_t gport, uint32_t hport, uint32_t dev_buf_alloc,
                               uint32_t dev_fwd_cnt) {
        const uint64_t total = 1u << 20;
        uint64_t sent_g = 0, recv_h = 0, sent_h = 0, recv_g = 0;
        uint32_t tx_cnt = 0, fwd_base = dev_fwd_cnt, peer_fwd = dev_fwd_cnt, peer_alloc = dev_buf_alloc;
        uint32_t g_base = guest_fwd_cnt;
        static uint8_t chunk[16384];
        int fl = fcntl(host, F_GETFL);

        g_assert_cmpint(fcntl(host, F_SETFL, fl | O_NONBLOCK), ==, 0);
        gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

        while (recv_h < total || recv_g < total) {
                struct hdr hd;

                if (g_get_monotonic_time() > deadline)
                        g_error("stalled: guest sent %" G_GUINT64_FORMAT " (host got %" G_GUINT64_FORMAT
                                "), host sent %" G_GUINT64_FORMAT " (guest got %" G_GUINT64_FORMAT
                                "), credit: alloc %u fwd %u base %u tx %u",
                                sent_g, recv_h, sent_h, recv_g, peer_alloc, peer_fwd, fwd_base, tx_cnt);

                /* guest -> host within credit */
                while (sent_g < total) {
                        uint32_t credit = peer_alloc - (tx_cnt - (peer_fwd - fwd_base));
                        uint32_t n = (uint32_t) MIN(MIN((uint64_t) sizeof(chunk), total - sent_g), (uint64_t) credit);

                        if (n == 0)
                                break;
                        for (uint32_t i = 0; i < n; i++)
                                chunk[i] = pattern(sent_g + i);
                        send_pkt(v, mkhdr(OP_RW, gport, hport, n), chunk, n);
                        sent_g += n;
                        tx_cnt += n;
                }
                /* host -> guest */
                if (sent_h < total) {
                        uint32_t n = (uint32_t) MIN((uint64_t) sizeof(chunk), total - sent_h);
                        ssize_t w;

                        for (uint32_t i = 0; i < n; i++)
                                chunk[i] = pattern(sent_h + i) ^ 0x5a;
                        w = write(host, chunk, n);
                        if (w > 0)
                                sent_h += (uint64_t) w;
                        else
                                g_assert_cmpint(errno, ==, EAGAIN);
                }
                /* the host reads what the guest sent */
                for (;;) {
                        ssize_t r = read(host, chunk, sizeof(chunk));
                        if (r <= 0) {
                                g_assert_true(r < 0 && errno == EAGAIN);
                                break;
                        }
                        for (ssize_t i = 0; i < r; i++)
                                g_assert_cmpuint(chunk[i], ==, pattern(recv_h + (uint64_t) i));
                        recv_h += (uint64_t) r;
                }
                /* the guest reads what the device sent */
                while (recv_pkt(v, &hd, recv_g < total || sent_g < total ? 20 : 0)) {
                        g_assert_cmpuint(hd.src_port, ==, hport);
                        g_assert_cmpuint(hd.dst_port, ==, gport);
                        peer_fwd = hd.fwd_cnt;
                        peer_alloc = hd.buf_alloc;
                        if (hd.op == OP_CREDIT_UPDATE)
                                continue;
                        g_assert_cmpuint(hd.op, ==, OP_RW);
                        g_assert_cmpuint(recv_g + hd.len, <=, total);
                        /* never more than the credit we gave */
                        g_assert_cmpuint(recv_g + hd.len - (guest_fwd_told - g_base), <=, GUEST_BUF_ALLOC);
                        for (uint32_t i = 0; i < hd.len; i++)
                                g_assert_cmpuint(v->payload[i], ==, pattern(recv_g + i) ^ 0x5a);
                        recv_g += hd.len;
                }
                /* Told with every packet; explicitly when half came free. */
                if (guest_fwd_cnt - guest_fwd_told >= GUEST_BUF_ALLOC / 2 ||
                    (guest_fwd_cnt != guest_fwd_told && recv_g == total))
                        send_pkt(v, mkhdr(OP_CREDIT_UPDATE, gport, hport, 0), NULL, 0);
        }
        g_assert_cmpuint(recv_h, ==, total);
        g_assert_cmpuint(recv_g, ==, total);
        g_assert_cmpint(fcntl(host, F_SETFL, fl), ==, 0);
}

static void test_virtio_vsock_host_to_guest_connect_data_and_shutdown(void) {
        struct vsock v;
        struct hdr hd;
        char line[32];
        int cl;

        vsock_start(&v);
        guest_fwd_cnt = 0;
        cl = unix_connect(v.uds);
        g_assert_cmpint(write(cl, "CONNECT 1234\n", 13), ==, 13);
        expect_pkt(&v, OP_REQUEST, HOST_PORT_BASE, 1234, &hd);
        send_pkt(&v, mkhdr(OP_RESPONSE, 1234, HOST_PORT_BASE, 0), NULL, 0);
        read_exact(cl, line, 14);
        g_assert_cmpmem(line, 14, "OK 1073741824\n", 14);

        /* both ways, small */
        send_pkt(&v, mkhdr(OP_RW, 1234, HOST_PORT_BASE, 4), "ping", 4);
        read_exact(cl, line, 4);
        g_assert_cmpmem(line, 4, "ping", 4);
        g_assert_cmpint(write(cl, "pong", 4), ==, 4);
        expect_pkt(&v, OP_RW, HOST_PORT_BASE, 1234, &hd);
        g_assert_cmpmem(v.payload, hd.len, "pong", 4);
        g_assert_cmpuint(hd.fwd_cnt, ==, 4);

        move_mib_both_ways(&v, cl, 1234, HOST_PORT_BASE, hd.buf_alloc, hd.fwd_cnt);

        /* the client closes: SHUTDOWN to the guest, which shuts both ways: RST */
        close(cl);
        expect_pkt(&v, OP_SHUTDOWN, HOST_PORT_BASE, 1234, &hd);
        g_assert_cmpuint(hd.flags, ==, 2);
        hd = mkhdr(OP_SHUTDOWN, 1234, HOST_PORT_BASE, 0);
        hd.flags = htole32(3);
        send_pkt(&v, hd, NULL, 0);
        expect_pkt(&v, OP_RST, HOST_PORT_BASE, 1234, NULL);
        vsock_stop(&v);
}

/* Accepts the connection devmgr made for the device on listener lfd. */
static int accept_one(int lfd) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        int fd;

        g_assert_cmpint(poll(&p, 1, 5000), ==, 1);
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);
        return fd;
}

static void test_virtio_vsock_guest_to_host_connect_data_and_rst(void) {
        g_autofree char *lpath = NULL;
        struct vsock v;
        struct hdr hd;
        char buf[16];
        int lfd, s;

        vsock_start(&v);
        lpath = g_strdup_printf("%s_5000", v.uds);
        lfd = unix_listen(lpath);
        guest_fwd_cnt = 0;
        send_pkt(&v, mkhdr(OP_REQUEST, 1000, 5000, 0), NULL, 0);
        expect_pkt(&v, OP_RESPONSE, 5000, 1000, &hd);
        s = accept_one(lfd);
        send_pkt(&v, mkhdr(OP_RW, 1000, 5000, 5), "hello", 5);
        read_exact(s, buf, 5);
        g_assert_cmpmem(buf, 5, "hello", 5);
        g_assert_cmpint(write(s, "there", 5), ==, 5);
        expect_pkt(&v, OP_RW, 5000, 1000, &hd);
        g_assert_cmpmem(v.payload, hd.len, "there", 5);
        move_mib_both_ways(&v, s, 1000, 5000, hd.buf_alloc, hd.fwd_cnt);
        /* the guest resets: the host sees EOF */
        send_pkt(&v, mkhdr(OP_RST, 1000, 5000, 0), NULL, 0);
        assert_eof(s);
        close(s);

        /* no listener on 5001: RST */
        send_pkt(&v, mkhdr(OP_REQUEST, 1001, 5001, 0), NULL, 0);
        expect_pkt(&v, OP_RST, 5001, 1001, NULL);
        /* a non-socket file there: RST too */
        {
                g_autofree char *p = g_strdup_printf("%s_5002", v.uds);
                g_assert_true(g_file_set_contents(p, "x", 1, NULL));
                send_pkt(&v, mkhdr(OP_REQUEST, 1002, 5002, 0), NULL, 0);
                expect_pkt(&v, OP_RST, 5002, 1002, NULL);
                unlink(p);
        }
        close(lfd);
        unlink(lpath);
        vsock_stop(&v);
}

static void test_virtio_vsock_hostile_packets_rst_or_dropped_and_device_keeps_working(void) {
        g_autofree char *lpath = NULL;
        struct vsock v;
        struct hdr hd;
        int lfd, s;

        vsock_start(&v);
        /* another VM's source CID: dropped, no answer */
        hd = mkhdr(OP_REQUEST, 1, 5000, 0);
        hd.src_cid = htole64(GUEST_CID + 1);
        send_pkt(&v, hd, NULL, 0);
        /* not to the host: dropped */
        hd = mkhdr(OP_REQUEST, 1, 5000, 0);
        hd.dst_cid = htole64(7);
        send_pkt(&v, hd, NULL, 0);
        g_assert_false(recv_pkt(&v, &hd, 200));
        /* unknown op */
        send_pkt(&v, mkhdr(42, 2, 5000, 0), NULL, 0);
        expect_pkt(&v, OP_RST, 5000, 2, NULL);
        /* unknown type */
        hd = mkhdr(OP_REQUEST, 3, 5000, 0);
        hd.type = htole16(2);
        send_pkt(&v, hd, NULL, 0);
        expect_pkt(&v, OP_RST, 5000, 3, NULL);
        /* len larger than the buffer it came in */
        hd = mkhdr(OP_RW, 4, 5000, 4096);
        send_raw(&v, &hd, "abcd", 4, 48);
        expect_pkt(&v, OP_RST, 5000, 4, NULL);
        /* len far beyond anything */
        hd = mkhdr(OP_RW, 5, 5000, 0xffffffff);
        send_raw(&v, &hd, NULL, 0, 44);
        expect_pkt(&v, OP_RST, 5000, 5, NULL);
        /* a buffer shorter than a header: dropped */
        hd = mkhdr(OP_REQUEST, 6, 5000, 0);
        send_raw(&v, &hd, NULL, 0, 20);
        g_assert_false(recv_pkt(&v, &hd, 200));

        /* still works */
        lpath = g_strdup_printf("%s_5000", v.uds);
        lfd = unix_listen(lpath);
        send_pkt(&v, mkhdr(OP_REQUEST, 1000, 5000, 0), NULL, 0);
        expect_pkt(&v, OP_RESPONSE, 5000, 1000, NULL);
        s = accept_one(lfd);
        close(s);
        close(lfd);
        unlink(lpath);
        vsock_stop(&v);
}

static void test_virtio_vsock_connections_up_to_the_limit(void) {
        g_autofree char *lpath = NULL;
        struct vsock v;
        int lfd, s[MAX_CONNS];

        vsock_start(&v);
        lpath = g_strdup_printf("%s_5000", v.uds);
        lfd = unix_listen(lpath);
        for (unsigned i = 0; i < MAX_CONNS; i++) {
                send_pkt(&v, mkhdr(OP_REQUEST, 2000 + i, 5000, 0), NULL, 0);
                expect_pkt(&v, OP_RESPONSE, 5000, 2000 + i, NULL);
                s[i] = accept_one(lfd);
        }
        /* one more: refused with RST */
        send_pkt(&v, mkhdr(OP_REQUEST, 9999, 5000, 0), NULL, 0);
        expect_pkt(&v, OP_RST, 5000, 9999, NULL);
        /* each one relays to its own socket */
        for (unsigned i = 0; i < MAX_CONNS; i += 7) {
                uint32_t x = i, y;

                send_pkt(&v, mkhdr(OP_RW, 2000 + i, 5000, 4), &x, 4);
                read_exact(s[i], &y, 4);
                g_assert_cmpuint(y, ==, i);
        }
        /* a host client while the table is full: refused (EOF) */
        {
                int cl = unix_connect(v.uds);
                struct pollfd p = { .fd = cl, .events = POLLIN };
                char c;
                ssize_t n;

                /* devmgr may close it before our line is sent: EPIPE,
                 * not a SIGPIPE that would end the test */
                n = send(cl, "CONNECT 1\n", 10, MSG_NOSIGNAL);
                g_assert_true(n == 10 || (n < 0 && (errno == EPIPE || errno == ECONNRESET)));
                /* closed with our line unread: EOF or a reset */
                g_assert_cmpint(poll(&p, 1, 5000), ==, 1);
                n = read(cl, &c, 1);
                g_assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
                close(cl);
        }
        /* one gone, one more fits */
        send_pkt(&v, mkhdr(OP_RST, 2000, 5000, 0), NULL, 0);
        assert_eof(s[0]);
        send_pkt(&v, mkhdr(OP_REQUEST, 9999, 5000, 0), NULL, 0);
        expect_pkt(&v, OP_RESPONSE, 5000, 9999, NULL);
        close(accept_one(lfd));
        for (unsigned i = 0; i < MAX_CONNS; i++)
                close(s[i]);
        close(lfd);
        unlink(lpath);
        vsock_stop(&v);
}

static void test_virtio_vsock_config_is_checked_by_devmgr(void) {
        g_autofree char *dir = g_dir_make_tmp("polyvm-vsock-XXXXXX", NULL);
        g_autofree char *file = g_strdup_printf("%s/plain", dir);
        g_autofree char *sock = g_strdup_printf("%s/live.sock", dir);
        const struct {
                const char *config, *needle;
        } bad[] = {
                { "{\"uds_path\": \"/tmp/x\"}", "cid" },
                { "{\"cid\": 2, \"uds_path\": \"/tmp/x\"}", "cid" },
                { "{\"cid\": 4294967295, \"uds_path\": \"/tmp/x\"}", "cid" },
                { "{\"cid\": 3}", "uds_path" },
                { "{\"cid\": 3, \"uds_path\": \"relative.sock\"}", "absolute" },
                { "{\"cid\": 3, \"uds_path\": \"/nonexistent-dir/v.sock\"}", "cannot listen" },
                { "{\"cid\": 3, \"uds_path\": \"/tmp/x\", \"port\": 1}", "port" },
        };
        int lfd = -1;

        for (size_t i = 0; i < G_N_ELEMENTS(bad) + 2; i++) {
                g_autofree char *config = NULL;
                const char *needle;
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;

                if (i < G_N_ELEMENTS(bad)) {
                        config = g_strdup(bad[i].config);
                        needle = bad[i].needle;
                } else if (i == G_N_ELEMENTS(bad)) {
                        g_assert_true(g_file_set_contents(file, "x", 1, NULL));
                        config = g_strdup_printf("{\"cid\": 3, \"uds_path\": \"%s\"}", file);
                        needle = "not a socket";
                } else {
                        lfd = unix_listen(sock);
                        config = g_strdup_printf("{\"cid\": 3, \"uds_path\": \"%s\"}", sock);
                        needle = "in use";
                }
                g_assert_cmpint(sd_bus_call_method(h.bus, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &error, &reply,
                                                   "sss", "vm1", "virtio-vsock", config),
                                <, 0);
                g_test_message("%s -> %s: %s", config, error.name, error.message);
                g_assert_cmpstr(error.name, ==, "org.polyvm.Error.InvalidConfig");
                g_assert_nonnull(strstr(error.message, needle));
                sd_bus_error_free(&error);
        }
        /* the file was left alone, the live socket too */
        {
                struct stat st;
                g_assert_cmpint(stat(file, &st), ==, 0);
                g_assert_true(S_ISREG(st.st_mode));
                close(unix_connect(sock));
        }
        close(lfd);
        unlink(sock);
        unlink(file);
        /* a stale socket (nobody listening) is replaced */
        lfd = unix_listen(sock);
        close(lfd);
        {
                g_autofree char *config = g_strdup_printf("{\"cid\": 3, \"uds_path\": \"%s\"}", sock);
                g_autofree char *path = NULL;
                pid_t pid;
                int ep = vdrv_create_device(&h, "virtio-vsock", config, &path, &pid);
                g_assert_cmpint(ep, >=, 0);
                close(unix_connect(sock));
                g_assert_null(harness_call_error(&h, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", NULL, "o", path));
                close(ep);
                g_assert_true(harness_wait_pid_gone(pid, 5000));
        }
        unlink(sock);
        rmdir(dir);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        harness_start(&h);
        g_test_add_func("/virtio-vsock/host-to-guest-connect-data-and-shutdown",
                        test_virtio_vsock_host_to_guest_connect_data_and_shutdown);
        g_test_add_func("/virtio-vsock/guest-to-host-connect-data-and-rst", test_virtio_vsock_guest_to_host_connect_data_and_rst);
        g_test_add_func("/virtio-vsock/hostile-packets-rst-or-dropped-and-device-keeps-working",
                        test_virtio_vsock_hostile_packets_rst_or_dropped_and_device_keeps_working);
        g_test_add_func("/virtio-vsock/connections-up-to-the-limit", test_virtio_vsock_connections_up_to_the_limit);
        g_test_add_func("/virtio-vsock/config-is-checked-by-devmgr", test_virtio_vsock_config_is_checked_by_devmgr);
        r = g_test_run();
        harness_stop(&h);
        return r;
}
