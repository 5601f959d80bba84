/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-vsock's packet and connection logic (virtio-vsock-conn.c) with
 * hand-made chains as the guest and socketpairs as host clients and
 * listeners; and the launcher's vsock device config (vsock-config.c). */
#include <endian.h>
#include <errno.h>
#include <glib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "virtio-vsock-conn.h"
#include "vsock-config.h"

#define GUEST_CID 42

/* The fake broker: remembers what was asked. */
struct broker {
        unsigned calls;
        uint32_t port;
        uint64_t cookie;
        int fail; /* -errno to return */
};

static int broker_connect(void *userdata, uint32_t port, uint64_t cookie) {
        struct broker *b = userdata;

        b->calls++;
        b->port = port;
        b->cookie = cookie;
        return b->fail;
}

struct fixture {
        struct vsock_dev *v;
        struct broker broker;
        int listen_fd; /* -1: no listener in these tests but one */
        uint8_t tx_buf[VSOCK_HDR_LEN + 256 * 1024];
        uint8_t rx_buf[VSOCK_HDR_LEN + 64 * 1024];
};

static struct fixture *fixture_new(int listen_fd) {
        struct fixture *f = g_new0(struct fixture, 1);
        const struct vsock_ops ops = { .connect = broker_connect, .userdata = &f->broker };

        f->listen_fd = listen_fd;
        g_assert_cmpint(vsock_dev_new(GUEST_CID, listen_fd, &ops, &f->v), ==, 0);
        return f;
}

static void fixture_free(struct fixture *f) {
        vsock_dev_free(f->v);
        if (f->listen_fd >= 0)
                close(f->listen_fd);
        g_free(f);
}

static struct vsock_hdr hdr(uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t len) {
        return (struct vsock_hdr) {
                .src_cid = GUEST_CID, .dst_cid = VSOCK_HOST_CID, .src_port = src_port, .dst_port = dst_port,
                .len = len, .type = VSOCK_TYPE_STREAM, .op = op, .buf_alloc = 64 * 1024, .fwd_cnt = 0,
        };
}

/* A guest packet: header (+ payload) in one readable segment, split after
 * the header when split is true. */
static void send_pkt(struct fixture *f, struct vsock_hdr h, const void *payload, uint32_t n, bool split) {
        struct vq_chain *chain = g_malloc0(sizeof(*chain));
        struct vsock_hdr le = h;

        le.src_cid = htole64(h.src_cid);
        le.dst_cid = htole64(h.dst_cid);
        le.src_port = htole32(h.src_port);
        le.dst_port = htole32(h.dst_port);
        le.len = htole32(h.len);
        le.type = htole16(h.type);
        le.op = htole16(h.op);
        le.flags = htole32(h.flags);
        le.buf_alloc = htole32(h.buf_alloc);
        le.fwd_cnt = htole32(h.fwd_cnt);
        g_assert_cmpuint(VSOCK_HDR_LEN + n, <=, sizeof(f->tx_buf));
        memcpy(f->tx_buf, &le, VSOCK_HDR_LEN);
        if (n)
                memcpy(f->tx_buf + VSOCK_HDR_LEN, payload, n);
        if (split) {
                chain->segs[0] = (struct vq_seg) { f->tx_buf, VSOCK_HDR_LEN, false };
                chain->segs[1] = (struct vq_seg) { f->tx_buf + VSOCK_HDR_LEN, n, false };
                chain->n_segs = chain->n_readable = 2;
        } else {
                chain->segs[0] = (struct vq_seg) { f->tx_buf, VSOCK_HDR_LEN + n, false };
                chain->n_segs = chain->n_readable = 1;
        }
        chain->readable_bytes = VSOCK_HDR_LEN + n;
        vsock_dev_tx(f->v, chain);
        g_free(chain);
}

/* The next packet for the guest, if any (rx buffer of room payload bytes). */
static bool recv_pkt(struct fixture *f, uint32_t room, struct vsock_hdr *h, uint8_t **payload) {
        struct vq_chain *chain = g_malloc0(sizeof(*chain));
        uint32_t written = 0;
        int r;

        (void) vsock_dev_poll(f->v);
        chain->segs[0] = (struct vq_seg) { f->rx_buf, VSOCK_HDR_LEN + room, true };
        chain->n_segs = 1;
        chain->writable_bytes = VSOCK_HDR_LEN + room;
        r = vsock_dev_rx(f->v, chain, &written);
        g_free(chain);
        if (r == 0)
                return false;
        g_assert_cmpuint(written, >=, VSOCK_HDR_LEN);
        memcpy(h, f->rx_buf, VSOCK_HDR_LEN);
        h->src_cid = le64toh(h->src_cid);
        h->dst_cid = le64toh(h->dst_cid);
        h->src_port = le32toh(h->src_port);
        h->dst_port = le32toh(h->dst_port);
        h->len = le32toh(h->len);
        h->type = le16toh(h->type);
        h->op = le16toh(h->op);
        h->flags = le32toh(h->flags);
        h->buf_alloc = le32toh(h->buf_alloc);
        h->fwd_cnt = le32toh(h->fwd_cnt);
        g_assert_cmpuint(written, ==, VSOCK_HDR_LEN + h->len);
        g_assert_cmpuint(h->src_cid, ==, VSOCK_HOST_CID);
        g_assert_cmpuint(h->dst_cid, ==, GUEST_CID);
        g_assert_cmpuint(h->type, ==, VSOCK_TYPE_STREAM);
        if (payload)
                *payload = f->rx_buf + VSOCK_HDR_LEN;
        return true;
}

static void expect_pkt(struct fixture *f, uint16_t op, uint32_t src_port, uint32_t dst_port, struct vsock_hdr *ret) {
        struct vsock_hdr h;

        g_assert_true(recv_pkt(f, 4096, &h, NULL));
        g_assert_cmpuint(h.op, ==, op);
        g_assert_cmpuint(h.src_port, ==, src_port);
        g_assert_cmpuint(h.dst_port, ==, dst_port);
        if (ret)
                *ret = h;
}

static void expect_nothing(struct fixture *f) {
        struct vsock_hdr h;

        g_assert_false(recv_pkt(f, 4096, &h, NULL));
}

/* Guest connects to host port 5000, the broker answers with one end of a
 * socketpair; returns the host's end. */
static int guest_connect(struct fixture *f, uint32_t guest_port, uint32_t host_port) {
        int sv[2];

        send_pkt(f, hdr(VSOCK_OP_REQUEST, guest_port, host_port, 0), NULL, 0, false);
        g_assert_cmpuint(f->broker.port, ==, host_port);
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), ==, 0);
        vsock_dev_connect_done(f->v, f->broker.cookie, sv[0]);
        expect_pkt(f, VSOCK_OP_RESPONSE, host_port, guest_port, NULL);
        return sv[1];
}

static void test_vsock_hdr_check_rules(void) {
        struct vsock_hdr h = hdr(VSOCK_OP_RW, 1, 2, 10);

        g_assert_cmpint(vsock_hdr_check(&h, GUEST_CID, 10), ==, VSOCK_ACCEPT);
        /* len beyond the buffer, beyond the packet limit */
        g_assert_cmpint(vsock_hdr_check(&h, GUEST_CID, 9), ==, VSOCK_RESET);
        h.len = VSOCK_MAX_PAYLOAD + 1;
        g_assert_cmpint(vsock_hdr_check(&h, GUEST_CID, UINT32_MAX), ==, VSOCK_RESET);
        /* not from our guest / not to the host: dropped silently */
        h = hdr(VSOCK_OP_RW, 1, 2, 0);
        h.src_cid = GUEST_CID + 1;
        g_assert_cmpint(vsock_hdr_check(&h, GUEST_CID, 0), ==, VSOCK_DROP);
        h = hdr(VSOCK_OP_RW, 1, 2, 0);
        h.dst_cid = 1;
        g_assert_cmpint(vsock_hdr_check(&h, GUEST_CID, 0), ==, VSOCK_DROP);
        h.dst_cid = (uint64_t) VSOCK_HOST_CID | (1ULL << 32); /* the upper half counts */
        g_assert_cmpint(vsock_hdr_check(&h, GUEST_CID, 0), ==, VSOCK_DROP);
        /* unknown type, unknown ops */
        h = hdr(VSOCK_OP_REQUEST, 1, 2, 0);
        h.type = 2; /* SEQPACKET: not negotiated */
        g_assert_cmpint(vsock_hdr_check(&h, GUEST_CID, 0), ==, VSOCK_RESET);
        h = hdr(VSOCK_OP_INVALID, 1, 2, 0);
        g_assert_cmpint(vsock_hdr_check(&h, GUEST_CID, 0), ==, VSOCK_RESET);
        h = hdr(8, 1, 2, 0);
        g_assert_cmpint(vsock_hdr_check(&h, GUEST_CID, 0), ==, VSOCK_RESET);
        /* a payload only on RW */
        h = hdr(VSOCK_OP_REQUEST, 1, 2, 4);
        g_assert_cmpint(vsock_hdr_check(&h, GUEST_CID, 4), ==, VSOCK_RESET);
        /* an RST is never answered with an RST */
        h = hdr(VSOCK_OP_RST, 1, 2, 0);
        g_assert_cmpint(vsock_hdr_check(&h, GUEST_CID, 0), ==, VSOCK_ACCEPT);
        h.type = 7;
        g_assert_cmpint(vsock_hdr_check(&h, GUEST_CID, 0), ==, VSOCK_DROP);
}

static void test_vsock_hostile_packets_get_rst_or_dropped(void) {
        struct fixture *f = fixture_new(-1);
        struct vsock_hdr h;
        uint8_t junk[16] = {};

        /* RW for no connection: RST back, ports swapped */
        send_pkt(f, hdr(VSOCK_OP_RW, 1234, 80, 16), junk, 16, false);
        expect_pkt(f, VSOCK_OP_RST, 80, 1234, NULL);
        /* spoofed source CID: nothing */
        h = hdr(VSOCK_OP_REQUEST, 1, 2, 0);
        h.src_cid = 3;
        send_pkt(f, h, NULL, 0, false);
        expect_nothing(f);
        /* len larger than the buffer */
        h = hdr(VSOCK_OP_RW, 5, 6, 1000);
        send_pkt(f, h, junk, 16, false);
        expect_pkt(f, VSOCK_OP_RST, 6, 5, NULL);
        /* unknown type and op */
        h = hdr(VSOCK_OP_REQUEST, 7, 8, 0);
        h.type = 9;
        send_pkt(f, h, NULL, 0, false);
        expect_pkt(f, VSOCK_OP_RST, 8, 7, NULL);
        send_pkt(f, hdr(99, 9, 10, 0), NULL, 0, false);
        expect_pkt(f, VSOCK_OP_RST, 10, 9, NULL);
        /* a chain shorter than a header: nothing */
        {
                struct vq_chain *chain = g_malloc0(sizeof(*chain));

                chain->segs[0] = (struct vq_seg) { junk, 10, false };
                chain->n_segs = chain->n_readable = 1;
                chain->readable_bytes = 10;
                vsock_dev_tx(f->v, chain);
                g_free(chain);
        }
        expect_nothing(f);
        g_assert_cmpuint(f->broker.calls, ==, 0);
        /* still works */
        close(guest_connect(f, 1000, 5000));
        fixture_free(f);
}

static void test_vsock_guest_connect_relays_both_ways_and_shuts_down(void) {
        struct fixture *f = fixture_new(-1);
        struct vsock_hdr h;
        uint8_t *payload, buf[64];
        int host;

        host = guest_connect(f, 1000, 5000);
        g_assert_cmpuint(vsock_dev_n_conns(f->v), ==, 1);

        /* guest -> host, header and payload in separate segments */
        send_pkt(f, hdr(VSOCK_OP_RW, 1000, 5000, 5), "hello", 5, true);
        g_assert_cmpint(read(host, buf, sizeof(buf)), ==, 5);
        g_assert_cmpmem(buf, 5, "hello", 5);

        /* host -> guest */
        g_assert_cmpint(write(host, "world!", 6), ==, 6);
        g_assert_true(recv_pkt(f, 4096, &h, &payload));
        g_assert_cmpuint(h.op, ==, VSOCK_OP_RW);
        g_assert_cmpuint(h.len, ==, 6);
        g_assert_cmpmem(payload, 6, "world!", 6);
        g_assert_cmpuint(h.buf_alloc, ==, VSOCK_BUF_ALLOC);
        g_assert_cmpuint(h.fwd_cnt, ==, 5);
        expect_nothing(f);

        /* host closes: SHUTDOWN(SEND) to the guest; the guest shuts both
         * ways: the device closes and sends RST */
        close(host);
        expect_pkt(f, VSOCK_OP_SHUTDOWN, 5000, 1000, &h);
        g_assert_cmpuint(h.flags, ==, VSOCK_SHUTDOWN_SEND);
        h = hdr(VSOCK_OP_SHUTDOWN, 1000, 5000, 0);
        h.flags = VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND;
        send_pkt(f, h, NULL, 0, false);
        expect_pkt(f, VSOCK_OP_RST, 5000, 1000, NULL);
        g_assert_cmpuint(vsock_dev_n_conns(f->v), ==, 0);
        fixture_free(f);
}

static void test_vsock_guest_connect_without_listener_gets_rst(void) {
        struct fixture *f = fixture_new(-1);
        int sv[2];

        /* devmgr answers ECONNREFUSED */
        send_pkt(f, hdr(VSOCK_OP_REQUEST, 1000, 6000, 0), NULL, 0, false);
        g_assert_cmpuint(f->broker.calls, ==, 1);
        expect_nothing(f); /* waiting for the broker */
        vsock_dev_connect_done(f->v, f->broker.cookie, -ECONNREFUSED);
        expect_pkt(f, VSOCK_OP_RST, 6000, 1000, NULL);
        g_assert_cmpuint(vsock_dev_n_conns(f->v), ==, 0);

        /* the request cannot even be sent */
        f->broker.fail = -EAGAIN;
        send_pkt(f, hdr(VSOCK_OP_REQUEST, 1001, 6000, 0), NULL, 0, false);
        expect_pkt(f, VSOCK_OP_RST, 6000, 1001, NULL);
        f->broker.fail = 0;

        /* the guest gives up first: a late socket is closed, nothing sent */
        send_pkt(f, hdr(VSOCK_OP_REQUEST, 1002, 6000, 0), NULL, 0, false);
        send_pkt(f, hdr(VSOCK_OP_RST, 1002, 6000, 0), NULL, 0, false);
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), ==, 0);
        vsock_dev_connect_done(f->v, f->broker.cookie, sv[0]);
        expect_nothing(f);
        {
                char c;
                g_assert_cmpint(read(sv[1], &c, 1), ==, 0); /* closed */
        }
        close(sv[1]);
        fixture_free(f);
}

static void test_vsock_bad_state_packets_reset_the_connection(void) {
        struct fixture *f = fixture_new(-1);
        int host = guest_connect(f, 1000, 5000);
        char c;

        /* the same stream again */
        send_pkt(f, hdr(VSOCK_OP_REQUEST, 1000, 5000, 0), NULL, 0, false);
        expect_pkt(f, VSOCK_OP_RST, 5000, 1000, NULL);
        g_assert_cmpuint(vsock_dev_n_conns(f->v), ==, 1); /* the first one stands */
        /* a RESPONSE on an established stream: it is reset, the host sees EOF */
        send_pkt(f, hdr(VSOCK_OP_RESPONSE, 1000, 5000, 0), NULL, 0, false);
        expect_pkt(f, VSOCK_OP_RST, 5000, 1000, NULL);
        g_assert_cmpuint(vsock_dev_n_conns(f->v), ==, 0);
        g_assert_cmpint(read(host, &c, 1), ==, 0);
        close(host);
        /* a RESPONSE for nothing */
        send_pkt(f, hdr(VSOCK_OP_RESPONSE, 7, 8, 0), NULL, 0, false);
        expect_pkt(f, VSOCK_OP_RST, 8, 7, NULL);
        /* an RST for nothing: no answer */
        send_pkt(f, hdr(VSOCK_OP_RST, 7, 8, 0), NULL, 0, false);
        expect_nothing(f);
        fixture_free(f);
}

static void test_vsock_host_data_respects_guest_credit(void) {
        struct fixture *f = fixture_new(-1);
        struct vsock_hdr h;
        uint8_t *payload, data[100];
        int host;

        for (unsigned i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) i;
        send_pkt(f, (struct vsock_hdr) { .src_cid = GUEST_CID, .dst_cid = VSOCK_HOST_CID, .src_port = 1, .dst_port = 2,
                                         .type = VSOCK_TYPE_STREAM, .op = VSOCK_OP_REQUEST, .buf_alloc = 10 },
                 NULL, 0, false);
        {
                int sv[2];
                g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), ==, 0);
                vsock_dev_connect_done(f->v, f->broker.cookie, sv[0]);
                host = sv[1];
        }
        expect_pkt(f, VSOCK_OP_RESPONSE, 2, 1, NULL);
        g_assert_cmpint(write(host, data, sizeof(data)), ==, (ssize_t) sizeof(data));
        /* buf_alloc 10, nothing consumed: 10 bytes, then nothing */
        g_assert_true(recv_pkt(f, 4096, &h, &payload));
        g_assert_cmpuint(h.op, ==, VSOCK_OP_RW);
        g_assert_cmpuint(h.len, ==, 10);
        g_assert_cmpmem(payload, 10, data, 10);
        expect_nothing(f);
        /* the guest consumed 4: 4 more */
        h = hdr(VSOCK_OP_CREDIT_UPDATE, 1, 2, 0);
        h.buf_alloc = 10;
        h.fwd_cnt = 4;
        send_pkt(f, h, NULL, 0, false);
        g_assert_true(recv_pkt(f, 4096, &h, &payload));
        g_assert_cmpuint(h.len, ==, 4);
        g_assert_cmpmem(payload, 4, data + 10, 4);
        expect_nothing(f);
        /* a guest that claims to have consumed more than it got gains nothing */
        h = hdr(VSOCK_OP_CREDIT_UPDATE, 1, 2, 0);
        h.buf_alloc = 10;
        h.fwd_cnt = 1000;
        send_pkt(f, h, NULL, 0, false);
        expect_nothing(f);
        /* a bigger buffer, and a small rx chain bounds the packet too */
        h = hdr(VSOCK_OP_CREDIT_UPDATE, 1, 2, 0);
        h.buf_alloc = 1000;
        h.fwd_cnt = 14;
        send_pkt(f, h, NULL, 0, false);
        g_assert_true(recv_pkt(f, 7, &h, &payload));
        g_assert_cmpuint(h.len, ==, 7);
        g_assert_cmpmem(payload, 7, data + 14, 7);
        g_assert_true(recv_pkt(f, 4096, &h, &payload));
        g_assert_cmpuint(h.len, ==, 100 - 21);
        g_assert_cmpmem(payload, 100 - 21, data + 21, 100 - 21);
        close(host);
        fixture_free(f);
}

static void test_vsock_guest_credit_request_and_overrun(void) {
        struct fixture *f = fixture_new(-1);
        static uint8_t big[VSOCK_MAX_PAYLOAD];
        struct vsock_hdr h;
        int sv[2], small = 4096;
        char c;

        send_pkt(f, hdr(VSOCK_OP_REQUEST, 1, 2, 0), NULL, 0, false);
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), ==, 0);
        /* the host reads nothing and its buffers are small */
        g_assert_cmpint(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), ==, 0);
        g_assert_cmpint(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), ==, 0);
        vsock_dev_connect_done(f->v, f->broker.cookie, sv[0]);
        expect_pkt(f, VSOCK_OP_RESPONSE, 2, 1, &h);
        g_assert_cmpuint(h.buf_alloc, ==, VSOCK_BUF_ALLOC);
        g_assert_cmpuint(h.fwd_cnt, ==, 0);

        send_pkt(f, hdr(VSOCK_OP_RW, 1, 2, sizeof(big)), big, sizeof(big), false);
        send_pkt(f, hdr(VSOCK_OP_CREDIT_REQUEST, 1, 2, 0), NULL, 0, false);
        expect_pkt(f, VSOCK_OP_CREDIT_UPDATE, 2, 1, &h);
        g_assert_cmpuint(h.fwd_cnt, <, sizeof(big)); /* the host took only part */
        /* more than the credit left (buf_alloc - in flight): reset */
        send_pkt(f, hdr(VSOCK_OP_RW, 1, 2, sizeof(big)), big, sizeof(big), false);
        send_pkt(f, hdr(VSOCK_OP_RW, 1, 2, sizeof(big)), big, sizeof(big), false);
        expect_pkt(f, VSOCK_OP_RST, 2, 1, NULL);
        g_assert_cmpuint(vsock_dev_n_conns(f->v), ==, 0);
        /* the host side is closed: drain to EOF */
        for (;;) {
                ssize_t n = read(sv[1], big, sizeof(big));
                if (n <= 0) {
                        g_assert_cmpint(n, ==, 0);
                        break;
                }
        }
        (void) c;
        close(sv[1]);
        fixture_free(f);
}

static void test_vsock_connection_limit_refuses_with_rst(void) {
        struct fixture *f = fixture_new(-1);
        int hosts[VSOCK_MAX_CONNS];

        for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
                hosts[i] = guest_connect(f, 2000 + i, 5000);
        g_assert_cmpuint(vsock_dev_n_conns(f->v), ==, VSOCK_MAX_CONNS);
        send_pkt(f, hdr(VSOCK_OP_REQUEST, 9999, 5000, 0), NULL, 0, false);
        expect_pkt(f, VSOCK_OP_RST, 5000, 9999, NULL);
        g_assert_cmpuint(f->broker.calls, ==, VSOCK_MAX_CONNS);
        /* reset closes them all */
        vsock_dev_reset(f->v);
        g_assert_cmpuint(vsock_dev_n_conns(f->v), ==, 0);
        for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
                char c;
                g_assert_cmpint(read(hosts[i], &c, 1), ==, 0);
                close(hosts[i]);
        }
        fixture_free(f);
}

static int make_listener(char **ret_path) {
        g_autofree char *dir = g_dir_make_tmp("vsock-XXXXXX", NULL);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        g_assert_nonnull(dir);
        *ret_path = g_strdup_printf("%s/v.sock", dir);
        g_strlcpy(sa.sun_path, *ret_path, sizeof(sa.sun_path));
        g_assert_cmpint(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), ==, 0);
        g_assert_cmpint(listen(fd, 8), ==, 0);
        return fd;
}

static int client_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
        g_assert_cmpint(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), ==, 0);
        return fd;
}

static void cleanup_listener(const char *path) {
        g_autofree char *dir = g_path_get_dirname(path);

        unlink(path);
        rmdir(dir);
}

static void test_vsock_host_connect_line_request_response_ok(void) {
        g_autofree char *path = NULL;
        struct fixture *f = fixture_new(make_listener(&path));
        struct vsock_hdr h;
        uint8_t *payload;
        char buf[64];
        int cl, bad;

        /* the bytes after the line are for the guest, not eaten */
        cl = client_connect(path);
        g_assert_cmpint(write(cl, "CONNECT 1234\nearly", 18), ==, 18);
        expect_pkt(f, VSOCK_OP_REQUEST, VSOCK_LOCAL_PORT_BASE, 1234, &h);
        g_assert_cmpuint(h.buf_alloc, ==, VSOCK_BUF_ALLOC); /* our buffer, advertised up front */
        expect_nothing(f);
        h = hdr(VSOCK_OP_RESPONSE, 1234, VSOCK_LOCAL_PORT_BASE, 0);
        send_pkt(f, h, NULL, 0, false);
        g_assert_true(recv_pkt(f, 4096, &h, &payload));
        g_assert_cmpuint(h.op, ==, VSOCK_OP_RW);
        g_assert_cmpmem(payload, h.len, "early", 5);
        {
                ssize_t n = read(cl, buf, sizeof(buf));
                g_assert_cmpint(n, ==, 14);
                g_assert_cmpmem(buf, 14, "OK 1073741824\n", 14);
        }
        /* guest data: after the OK line, and fwd_cnt counts only it */
        send_pkt(f, hdr(VSOCK_OP_RW, 1234, VSOCK_LOCAL_PORT_BASE, 3), "abc", 3, false);
        g_assert_cmpint(read(cl, buf, sizeof(buf)), ==, 3);
        g_assert_cmpmem(buf, 3, "abc", 3);
        send_pkt(f, hdr(VSOCK_OP_CREDIT_REQUEST, 1234, VSOCK_LOCAL_PORT_BASE, 0), NULL, 0, false);
        expect_pkt(f, VSOCK_OP_CREDIT_UPDATE, VSOCK_LOCAL_PORT_BASE, 1234, &h);
        g_assert_cmpuint(h.fwd_cnt, ==, 3);

        /* bad lines: closed, nothing to the guest */
        bad = client_connect(path);
        g_assert_cmpint(write(bad, "CONNECT x\n", 10), ==, 10);
        expect_nothing(f);
        g_assert_cmpint(read(bad, buf, 1), ==, 0);
        close(bad);
        bad = client_connect(path);
        g_assert_cmpint(write(bad, "CONNECT 99999999999\n", 20), ==, 20);
        expect_nothing(f);
        g_assert_cmpint(read(bad, buf, 1), ==, 0);
        close(bad);

        /* the guest refuses: the client sees EOF */
        bad = client_connect(path);
        g_assert_cmpint(write(bad, "CONNECT 7\n", 10), ==, 10);
        expect_pkt(f, VSOCK_OP_REQUEST, VSOCK_LOCAL_PORT_BASE + 1, 7, NULL);
        send_pkt(f, hdr(VSOCK_OP_RST, 7, VSOCK_LOCAL_PORT_BASE + 1, 0), NULL, 0, false);
        g_assert_cmpint(read(bad, buf, 1), ==, 0);
        close(bad);

        /* the guest shuts its sending side: the client reads EOF, can still write */
        h = hdr(VSOCK_OP_SHUTDOWN, 1234, VSOCK_LOCAL_PORT_BASE, 0);
        h.flags = VSOCK_SHUTDOWN_SEND;
        send_pkt(f, h, NULL, 0, false);
        g_assert_cmpint(read(cl, buf, 1), ==, 0);
        g_assert_cmpint(write(cl, "late", 4), ==, 4);
        g_assert_true(recv_pkt(f, 4096, &h, &payload));
        g_assert_cmpmem(payload, h.len, "late", 4);
        /* then closes: both ways done: RST */
        close(cl);
        expect_pkt(f, VSOCK_OP_SHUTDOWN, VSOCK_LOCAL_PORT_BASE, 1234, NULL);
        expect_pkt(f, VSOCK_OP_RST, VSOCK_LOCAL_PORT_BASE, 1234, NULL);
        g_assert_cmpuint(vsock_dev_n_conns(f->v), ==, 0);
        cleanup_listener(path);
        fixture_free(f);
}

static void test_vsock_launcher_fills_cid_and_early_path(void) {
        char err[256];
        char *out = NULL;

        g_assert_cmpint(vsock_device_config("{\"uds_path\": \"/tmp/v.sock\"}", 300, NULL, "config.devices[0]", &out, err,
                                            sizeof(err)), ==, 0);
        g_assert_cmpstr(out, ==, "{\"uds_path\":\"/tmp/v.sock\",\"cid\":300}");
        g_free(out);
        out = NULL;
        g_assert_cmpint(vsock_device_config("{\"cid\": 301, \"uds_path\": \"/x\"}", 301, NULL, "d", &out, err, sizeof(err)), ==, 0);
        free(out);
        out = NULL;
        /* another VM's CID */
        g_assert_cmpint(vsock_device_config("{\"cid\": 5, \"uds_path\": \"/x\"}", 301, NULL, "config.devices[1]", &out, err,
                                            sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "config.devices[1].cid"));
        g_assert_cmpint(vsock_device_config("{\"cid\": \"301\"}", 301, NULL, "d", &out, err, sizeof(err)), ==, -EINVAL);
        /* early VM: the path is the launcher's */
        g_assert_cmpint(vsock_device_config("", 123, "/run/polyvm/early/123/vsock.sock", "d", &out, err, sizeof(err)), ==, 0);
        g_assert_cmpstr(out, ==, "{\"cid\":123,\"uds_path\":\"/run/polyvm/early/123/vsock.sock\"}");
        free(out);
        out = NULL;
        g_assert_cmpint(vsock_device_config("{\"uds_path\": \"/tmp/other\"}", 123, "/run/polyvm/early/123/vsock.sock", "d",
                                            &out, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "d.uds_path"));
        g_assert_cmpint(vsock_device_config("[1]", 123, NULL, "d", &out, err, sizeof(err)), <, 0);
        g_assert_null(out);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/virtio-vsock/hdr-check-rules", test_vsock_hdr_check_rules);
        g_test_add_func("/virtio-vsock/hostile-packets-get-rst-or-dropped", test_vsock_hostile_packets_get_rst_or_dropped);
        g_test_add_func("/virtio-vsock/guest-connect-relays-both-ways-and-shuts-down",
                        test_vsock_guest_connect_relays_both_ways_and_shuts_down);
        g_test_add_func("/virtio-vsock/guest-connect-without-listener-gets-rst",
                        test_vsock_guest_connect_without_listener_gets_rst);
        g_test_add_func("/virtio-vsock/bad-state-packets-reset-the-connection",
                        test_vsock_bad_state_packets_reset_the_connection);
        g_test_add_func("/virtio-vsock/host-data-respects-guest-credit", test_vsock_host_data_respects_guest_credit);
        g_test_add_func("/virtio-vsock/guest-credit-request-and-overrun", test_vsock_guest_credit_request_and_overrun);
        g_test_add_func("/virtio-vsock/connection-limit-refuses-with-rst", test_vsock_connection_limit_refuses_with_rst);
        g_test_add_func("/virtio-vsock/host-connect-line-request-response-ok",
                        test_vsock_host_connect_line_request_response_ok);
        g_test_add_func("/virtio-vsock/launcher-fills-cid-and-early-path", test_vsock_launcher_fills_cid_and_early_path);
        return g_test_run();
}
