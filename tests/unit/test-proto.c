/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device protocol over a real socketpair(SOCK_SEQPACKET): every message
 * type round-trips, and every malformed packet is rejected with its fds
 * closed. */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"

struct pair {
        int a, b; /* a: launcher side, b: device side */
};

static void pair_open(struct pair *p) {
        int sv[2];
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
        p->a = sv[0];
        p->b = sv[1];
}

static void pair_close(struct pair *p) {
        if (p->a >= 0)
                close(p->a);
        if (p->b >= 0)
                close(p->b);
}

/* Sends raw bytes as one packet, optionally with one fd. */
static void send_raw(int sock, const void *buf, size_t len, int fd) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (fd >= 0) {
                struct cmsghdr *c;
                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd, sizeof(int));
        }
        g_assert_cmpint(sendmsg(sock, &mh, 0), ==, (ssize_t) len);
}

static void header_fill(struct proto_header *h, uint16_t type, uint32_t length) {
        *h = (struct proto_header) { .magic = PROTO_MAGIC, .version = PROTO_VERSION, .type = type, .length = length };
}

/* A pipe whose write end we send: if the receiver closed it, the read end sees EOF. */
static void assert_fd_was_closed(int read_end) {
        char c;
        g_assert_cmpint(fcntl(read_end, F_SETFL, O_NONBLOCK), ==, 0);
        g_assert_cmpint(read(read_end, &c, 1), ==, 0);
}

static void test_type_names(void) {
        g_assert_cmpstr(proto_type_to_string(PROTO_ACTIVATE), ==, "Activate");
        g_assert_cmpstr(proto_type_to_string(PROTO_ATTACH_FD), ==, "AttachFd");
        g_assert_cmpstr(proto_type_to_string(PROTO_REPLY_RANGES), ==, "Ranges");
        g_assert_cmpstr(proto_type_to_string(0), ==, "unknown");
        g_assert_cmpstr(proto_type_to_string(_PROTO_REQUEST_MAX), ==, "unknown");
        g_assert_cmpstr(proto_type_to_string(0xffff), ==, "unknown");
}

/* Every request type with a valid body is received as sent. */
static void test_every_request_round_trips(void) {
        struct pair p;
        pair_open(&p);

        for (unsigned t = PROTO_ACTIVATE; t < _PROTO_REQUEST_MAX; t++) {
                uint8_t body[512] = {};
                size_t len = 0;
                int pipefd[2] = { -1, -1 };
                unsigned n_fds = 0;
                struct proto_msg m;

                switch (t) {
                case PROTO_READ:
                case PROTO_WRITE: {
                        struct proto_access a = { .address = 0x3f8, .offset = 0, .len = 1, .data = { 'x' } };
                        memcpy(body, &a, sizeof(a));
                        len = sizeof(a);
                        break;
                }
                case PROTO_READ_CONFIG:
                case PROTO_READ_VIRTUAL_CONFIG:
                case PROTO_WRITE_VIRTUAL_CONFIG: {
                        struct proto_u32 u = { .value = 7, .reg = 3 };
                        memcpy(body, &u, sizeof(u));
                        len = sizeof(u);
                        break;
                }
                case PROTO_WRITE_CONFIG: {
                        struct proto_config_write w = { .reg = 1, .offset = 2, .len = 2, .data = { 1, 2 } };
                        memcpy(body, &w, sizeof(w));
                        len = sizeof(w);
                        break;
                }
                case PROTO_ATTACH_FD: {
                        struct proto_attach_fd f = { .role = PROTO_FD_CONSOLE, .arg = 0 };
                        memcpy(body, &f, sizeof(f));
                        len = sizeof(f);
                        n_fds = 1;
                        break;
                }
                case PROTO_INIT_PCI_CONFIG_MAPPING: {
                        struct proto_pci_mapping pm = { .base = 0x1000, .len = 256 };
                        memcpy(body, &pm, sizeof(pm));
                        len = sizeof(pm);
                        n_fds = 1;
                        break;
                }
                case PROTO_RESTORE:
                        len = strlen("{\"a\":1}");
                        memcpy(body, "{\"a\":1}", len);
                        break;
                }
                if (n_fds)
                        g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);

                g_assert_cmpint(proto_send(p.a, t, body, len, n_fds ? &pipefd[1] : NULL, n_fds), ==, 0);
                g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, 0);
                g_assert_cmpuint(m.hdr.type, ==, t);
                g_assert_cmpuint(m.hdr.length, ==, len);
                g_assert_cmpuint(m.n_fds, ==, n_fds);
                if (t == PROTO_RESTORE) {
                        /* Text arrives NUL-terminated, outside the fixed body. */
                        g_assert_cmpstr(m.text, ==, "{\"a\":1}");
                        g_assert_cmpuint(m.text_len, ==, len);
                } else
                        g_assert_cmpmem(&m.body, len, body, len);
                if (n_fds) {
                        /* The received fd is a working, close-on-exec copy. */
                        g_assert_cmpint(m.fds[0], >=, 0);
                        g_assert_cmpint(fcntl(m.fds[0], F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
                        g_assert_cmpint(write(m.fds[0], "z", 1), ==, 1);
                        close(pipefd[1]);
                        proto_msg_done(&m);
                        g_assert_cmpint(m.fds[0], ==, -1);
                        char c[2];
                        g_assert_cmpint(read(pipefd[0], c, 2), ==, 1);
                        g_assert_cmpint(c[0], ==, 'z');
                        close(pipefd[0]);
                }
                proto_msg_done(&m);
        }
        pair_close(&p);
}

/* Runs one device-side answer while the launcher side is in proto_call. The
 * pair is a SEQPACKET socket, so we can queue the reply before calling. */
static int call_with_queued_reply(uint16_t req, const void *reqbody, size_t reqlen, uint16_t rtype,
                                  const void *rbody, size_t rlen, struct proto_msg *reply, char *err, size_t errlen) {
        struct pair p;
        struct proto_msg m;
        int r;

        pair_open(&p);
        g_assert_cmpint(proto_send(p.b, rtype, rbody, rlen, NULL, 0), ==, 0);
        r = proto_call(p.a, req, reqbody, reqlen, NULL, 0, reply, 1000, err, errlen);
        /* The request did arrive on the device side. */
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, 0);
        g_assert_cmpuint(m.hdr.type, ==, req);
        proto_msg_done(&m);
        pair_close(&p);
        return r;
}

static void test_call_read_gets_data(void) {
        struct proto_access a = { .address = 0x3fd, .offset = 5, .len = 1 };
        struct proto_data d = { .len = 1, .data = { 0x60 } };
        struct proto_msg reply;

        g_assert_cmpint(call_with_queued_reply(PROTO_READ, &a, sizeof(a), PROTO_REPLY_DATA, &d, sizeof(d), &reply,
                                               NULL, 0), ==, 0);
        g_assert_cmpuint(reply.hdr.type, ==, PROTO_REPLY_DATA);
        g_assert_cmpuint(reply.body.data.data[0], ==, 0x60);
}

static void test_call_read_config_gets_u32(void) {
        struct proto_u32 q = { .reg = 4 }, u = { .value = 0xdeadbeef, .reg = 4 };
        struct proto_msg reply;

        g_assert_cmpint(call_with_queued_reply(PROTO_READ_CONFIG, &q, sizeof(q), PROTO_REPLY_U32, &u, sizeof(u),
                                               &reply, NULL, 0), ==, 0);
        g_assert_cmphex(reply.body.u32.value, ==, 0xdeadbeef);
}

static void test_call_get_ranges_gets_ranges(void) {
        struct proto_ranges rs = { .count = 1, .ranges = { { .base = 0x3f8, .len = 8, .bus = PROTO_BUS_PIO } } };
        struct proto_msg reply;

        g_assert_cmpint(call_with_queued_reply(PROTO_GET_RANGES, NULL, 0, PROTO_REPLY_RANGES, &rs, sizeof(rs), &reply,
                                               NULL, 0), ==, 0);
        g_assert_cmpuint(reply.body.ranges.count, ==, 1);
        g_assert_cmphex(reply.body.ranges.ranges[0].base, ==, 0x3f8);
        g_assert_cmpuint(reply.body.ranges.ranges[0].len, ==, 8);
}

static void test_call_activate_gets_ok(void) {
        struct proto_msg reply;
        g_assert_cmpint(call_with_queued_reply(PROTO_ACTIVATE, NULL, 0, PROTO_REPLY_OK, NULL, 0, &reply, NULL, 0), ==, 0);
        g_assert_cmpuint(reply.hdr.type, ==, PROTO_REPLY_OK);
}

static void test_call_error_reply_gives_errno_and_message(void) {
        struct proto_error e = { .error = EALREADY };
        char err[PROTO_ERROR_MAX];

        snprintf(e.message, sizeof(e.message), "already active");
        g_assert_cmpint(call_with_queued_reply(PROTO_ACTIVATE, NULL, 0, PROTO_REPLY_ERROR, &e, sizeof(e), NULL, err,
                                               sizeof(err)), ==, -EALREADY);
        g_assert_cmpstr(err, ==, "already active");
}

static void test_call_error_reply_with_bogus_errno_is_eio(void) {
        struct proto_error e = { .error = -5000 };
        g_assert_cmpint(call_with_queued_reply(PROTO_SHUTDOWN, NULL, 0, PROTO_REPLY_ERROR, &e, sizeof(e), NULL, NULL,
                                               0), ==, -EIO);
}

static void test_call_reply_of_wrong_type_is_rejected(void) {
        struct proto_access a = { .address = 0x3f8, .len = 1 };
        struct proto_data d = { .len = 1 };
        char err[64];

        /* READ answered with OK, ACTIVATE answered with DATA. */
        g_assert_cmpint(call_with_queued_reply(PROTO_READ, &a, sizeof(a), PROTO_REPLY_OK, NULL, 0, NULL, err,
                                               sizeof(err)), ==, -EBADMSG);
        g_assert_cmpstr(err, ==, "Ok reply to Read");
        g_assert_cmpint(call_with_queued_reply(PROTO_ACTIVATE, NULL, 0, PROTO_REPLY_DATA, &d, sizeof(d), NULL, NULL,
                                               0), ==, -EBADMSG);
        /* A request is no reply either. */
        g_assert_cmpint(call_with_queued_reply(PROTO_GET_RANGES, NULL, 0, PROTO_ACTIVATE, NULL, 0, NULL, NULL, 0), ==,
                        -EBADMSG);
}

static void test_call_write_takes_no_reply(void) {
        struct pair p;
        struct proto_access a = { .address = 0x3f8, .len = 1, .data = { 'h' } };
        struct proto_msg reply, m;

        pair_open(&p);
        /* Nothing is queued on the device side: proto_call must not wait. */
        g_assert_cmpint(proto_call(p.a, PROTO_WRITE, &a, sizeof(a), NULL, 0, &reply, 0, NULL, 0), ==, 0);
        g_assert_cmpint(proto_call(p.a, PROTO_DESTROY_DEVICE, NULL, 0, NULL, 0, &reply, 0, NULL, 0), ==, 0);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, 0);
        g_assert_cmpuint(m.hdr.type, ==, PROTO_WRITE);
        g_assert_cmpint(m.body.access.data[0], ==, 'h');
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, 0);
        g_assert_cmpuint(m.hdr.type, ==, PROTO_DESTROY_DEVICE);
        pair_close(&p);
}

static void test_recv_times_out(void) {
        struct pair p;
        struct proto_msg m;
        pair_open(&p);
        g_assert_cmpint(proto_recv(p.b, &m, 20), ==, -ETIMEDOUT);
        g_assert_cmpint(proto_call(p.a, PROTO_ACTIVATE, NULL, 0, NULL, 0, &m, 20, NULL, 0), ==, -ETIMEDOUT);
        pair_close(&p);
}

static void test_recv_hang_up(void) {
        struct pair p;
        struct proto_msg m;
        pair_open(&p);
        close(p.a);
        p.a = -1;
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, -ECONNRESET);
        /* Sending to a closed peer is a hang-up too, not SIGPIPE. */
        g_assert_cmpint(proto_send(p.b, PROTO_REPLY_OK, NULL, 0, NULL, 0), ==, -ECONNRESET);
        pair_close(&p);
}

static void test_recv_queued_packet_before_hang_up(void) {
        struct pair p;
        struct proto_msg m;
        pair_open(&p);
        g_assert_cmpint(proto_send(p.a, PROTO_SHUTDOWN, NULL, 0, NULL, 0), ==, 0);
        close(p.a);
        p.a = -1;
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, 0);
        g_assert_cmpuint(m.hdr.type, ==, PROTO_SHUTDOWN);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, -ECONNRESET);
        pair_close(&p);
}

static void expect_rejected(const void *buf, size_t len) {
        struct pair p;
        struct proto_msg m;
        pair_open(&p);
        send_raw(p.a, buf, len, -1);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, -EBADMSG);
        /* The socket is still usable after a rejected packet. */
        g_assert_cmpint(proto_send(p.a, PROTO_ACTIVATE, NULL, 0, NULL, 0), ==, 0);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, 0);
        g_assert_cmpuint(m.hdr.type, ==, PROTO_ACTIVATE);
        pair_close(&p);
}

static void test_reject_short_packet(void) {
        struct proto_header h;
        header_fill(&h, PROTO_ACTIVATE, 0);
        expect_rejected(&h, sizeof(h) - 1);
        expect_rejected(&h, 1);
}

static void test_reject_oversized_packet(void) {
        uint8_t buf[sizeof(struct proto_header) + 4096] = {};
        struct proto_header h;
        header_fill(&h, PROTO_ACTIVATE, sizeof(buf) - sizeof(h));
        memcpy(buf, &h, sizeof(h));
        expect_rejected(buf, sizeof(buf));
        /* Exactly one byte more than the largest body. */
        header_fill(&h, PROTO_REPLY_RANGES, 513);
        memcpy(buf, &h, sizeof(h));
        expect_rejected(buf, sizeof(h) + 513);
}

static void test_reject_wrong_magic(void) {
        struct proto_header h;
        header_fill(&h, PROTO_ACTIVATE, 0);
        h.magic = 0x594c4f50;
        expect_rejected(&h, sizeof(h));
}

static void test_reject_wrong_version(void) {
        struct proto_header h;
        header_fill(&h, PROTO_ACTIVATE, 0);
        h.version = PROTO_VERSION + 1;
        expect_rejected(&h, sizeof(h));
}

static void test_reject_unknown_type(void) {
        static const uint16_t types[] = { 0, _PROTO_REQUEST_MAX, 0xff, _PROTO_REPLY_MAX, 0xffff };
        for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
                struct proto_header h;
                header_fill(&h, types[i], 0);
                expect_rejected(&h, sizeof(h));
        }
}

static void test_reject_body_length_wrong(void) {
        uint8_t buf[sizeof(struct proto_header) + sizeof(struct proto_access) + 1] = {};
        struct proto_header h;

        /* READ with a body one byte short, and one byte long. */
        header_fill(&h, PROTO_READ, sizeof(struct proto_access) - 1);
        memcpy(buf, &h, sizeof(h));
        buf[sizeof(h) + offsetof(struct proto_access, len)] = 1;
        expect_rejected(buf, sizeof(h) + sizeof(struct proto_access) - 1);
        header_fill(&h, PROTO_READ, sizeof(struct proto_access) + 1);
        memcpy(buf, &h, sizeof(h));
        expect_rejected(buf, sizeof(buf));
        /* Header length that disagrees with the packet size. */
        header_fill(&h, PROTO_READ, sizeof(struct proto_access));
        memcpy(buf, &h, sizeof(h));
        expect_rejected(buf, sizeof(buf));
        /* ACTIVATE with a body. */
        header_fill(&h, PROTO_ACTIVATE, 4);
        memcpy(buf, &h, sizeof(h));
        expect_rejected(buf, sizeof(h) + 4);
}

static void expect_body_rejected(uint16_t type, const void *body, size_t len) {
        struct pair p;
        struct proto_msg m;
        pair_open(&p);
        g_assert_cmpint(proto_send(p.a, type, body, len, NULL, 0), ==, 0);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, -EBADMSG);
        pair_close(&p);
}

static void test_reject_access_len_out_of_range(void) {
        struct proto_access a = { .address = 0x3f8 };
        a.len = 0;
        expect_body_rejected(PROTO_READ, &a, sizeof(a));
        a.len = 9;
        expect_body_rejected(PROTO_WRITE, &a, sizeof(a));
        a.len = 0xffffffff;
        expect_body_rejected(PROTO_READ, &a, sizeof(a));
}

static void test_reject_config_write_out_of_range(void) {
        static const struct { uint32_t offset, len; } bad[] = { { 0, 0 }, { 0, 5 }, { 4, 1 }, { 3, 2 }, { 2, 3 } };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                struct proto_config_write w = { .offset = bad[i].offset, .len = bad[i].len };
                expect_body_rejected(PROTO_WRITE_CONFIG, &w, sizeof(w));
        }
}

static void test_reject_ranges_count_too_big(void) {
        struct proto_ranges rs = { .count = PROTO_MAX_RANGES + 1 };
        expect_body_rejected(PROTO_REPLY_RANGES, &rs, sizeof(rs));
}

static void test_reject_data_len_out_of_range(void) {
        struct proto_data d = { .len = 9 };
        expect_body_rejected(PROTO_REPLY_DATA, &d, sizeof(d));
}

static void test_reject_error_message_unterminated(void) {
        struct proto_error e = { .error = EIO };
        memset(e.message, 'x', sizeof(e.message));
        expect_body_rejected(PROTO_REPLY_ERROR, &e, sizeof(e));
}

static void test_reject_unexpected_fd_and_close_it(void) {
        struct pair p;
        struct proto_msg m;
        int pipefd[2];

        pair_open(&p);
        g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
        g_assert_cmpint(proto_send(p.a, PROTO_ACTIVATE, NULL, 0, &pipefd[1], 1), ==, 0);
        close(pipefd[1]);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, -EBADMSG);
        assert_fd_was_closed(pipefd[0]);
        close(pipefd[0]);
        pair_close(&p);
}

static void test_reject_attach_fd_without_fd(void) {
        struct proto_attach_fd f = { .role = PROTO_FD_IRQ };
        expect_body_rejected(PROTO_ATTACH_FD, &f, sizeof(f));
        expect_body_rejected(PROTO_INIT_PCI_CONFIG_MAPPING, NULL, 0);
}

static void test_reject_attach_fd_with_two_fds_and_close_both(void) {
        struct pair p;
        struct proto_msg m;
        struct proto_attach_fd f = { .role = PROTO_FD_IRQ };
        int p1[2], p2[2];

        pair_open(&p);
        g_assert_cmpint(pipe2(p1, O_CLOEXEC), ==, 0);
        g_assert_cmpint(pipe2(p2, O_CLOEXEC), ==, 0);
        int fds[2] = { p1[1], p2[1] };
        g_assert_cmpint(proto_send(p.a, PROTO_ATTACH_FD, &f, sizeof(f), fds, 2), ==, 0);
        close(p1[1]);
        close(p2[1]);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, -EBADMSG);
        assert_fd_was_closed(p1[0]);
        assert_fd_was_closed(p2[0]);
        close(p1[0]);
        close(p2[0]);
        pair_close(&p);
}

static void test_reject_fd_on_malformed_packet_and_close_it(void) {
        struct pair p;
        struct proto_msg m;
        struct proto_header h;
        int pipefd[2];

        pair_open(&p);
        g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
        header_fill(&h, PROTO_ATTACH_FD, 0);
        h.magic = 0;
        send_raw(p.a, &h, sizeof(h), pipefd[1]);
        close(pipefd[1]);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, -EBADMSG);
        assert_fd_was_closed(pipefd[0]);
        close(pipefd[0]);
        pair_close(&p);
}

static void test_send_rejects_bad_arguments(void) {
        struct pair p;
        g_autofree uint8_t *big = g_malloc0(PROTO_TEXT_MAX + 1);
        int fds[PROTO_MAX_FDS + 1] = {};
        pair_open(&p);
        g_assert_cmpint(proto_send(p.a, PROTO_REPLY_SNAPSHOT, big, PROTO_TEXT_MAX + 1, NULL, 0), ==, -EINVAL);
        g_assert_cmpint(proto_send(p.a, PROTO_ACTIVATE, NULL, 0, fds, PROTO_MAX_FDS + 1), ==, -EINVAL);
        g_assert_cmpint(proto_send(p.a, PROTO_ACTIVATE, NULL, 4, NULL, 0), ==, -EINVAL);
        pair_close(&p);
}

static void test_reply_error_formats_and_terminates(void) {
        struct pair p;
        struct proto_msg m;
        char longmsg[400];

        pair_open(&p);
        g_assert_cmpint(proto_reply_error(p.b, -EINVAL, "offset %d is bad", 9), ==, 0);
        g_assert_cmpint(proto_recv(p.a, &m, 1000), ==, 0);
        g_assert_cmpuint(m.hdr.type, ==, PROTO_REPLY_ERROR);
        g_assert_cmpint(m.body.error.error, ==, EINVAL);
        g_assert_cmpstr(m.body.error.message, ==, "offset 9 is bad");

        memset(longmsg, 'y', sizeof(longmsg) - 1);
        longmsg[sizeof(longmsg) - 1] = 0;
        g_assert_cmpint(proto_reply_error(p.b, EIO, "%s", longmsg), ==, 0);
        g_assert_cmpint(proto_recv(p.a, &m, 1000), ==, 0);
        g_assert_cmpuint(strlen(m.body.error.message), ==, PROTO_ERROR_MAX - 1);
        pair_close(&p);
}

/* ---- the rest of the protocol: replies, text bodies, the pure parser ---- */

static void test_reply_type_of_each_request(void) {
        g_assert_cmpuint(proto_reply_type(PROTO_ACTIVATE), ==, PROTO_REPLY_OK);
        g_assert_cmpuint(proto_reply_type(PROTO_READ), ==, PROTO_REPLY_DATA);
        g_assert_cmpuint(proto_reply_type(PROTO_WRITE), ==, 0);
        g_assert_cmpuint(proto_reply_type(PROTO_READ_CONFIG), ==, PROTO_REPLY_U32);
        g_assert_cmpuint(proto_reply_type(PROTO_WRITE_CONFIG), ==, PROTO_REPLY_CONFIG_WRITE);
        g_assert_cmpuint(proto_reply_type(PROTO_INIT_PCI_CONFIG_MAPPING), ==, PROTO_REPLY_BOOL);
        g_assert_cmpuint(proto_reply_type(PROTO_READ_VIRTUAL_CONFIG), ==, PROTO_REPLY_U32);
        g_assert_cmpuint(proto_reply_type(PROTO_WRITE_VIRTUAL_CONFIG), ==, PROTO_REPLY_OK);
        g_assert_cmpuint(proto_reply_type(PROTO_DESTROY_DEVICE), ==, 0);
        g_assert_cmpuint(proto_reply_type(PROTO_SHUTDOWN), ==, PROTO_REPLY_OK);
        g_assert_cmpuint(proto_reply_type(PROTO_GET_RANGES), ==, PROTO_REPLY_RANGES);
        g_assert_cmpuint(proto_reply_type(PROTO_SNAPSHOT), ==, PROTO_REPLY_SNAPSHOT);
        g_assert_cmpuint(proto_reply_type(PROTO_RESTORE), ==, PROTO_REPLY_OK);
        g_assert_cmpuint(proto_reply_type(PROTO_SLEEP), ==, PROTO_REPLY_OK);
        g_assert_cmpuint(proto_reply_type(PROTO_WAKE), ==, PROTO_REPLY_OK);
        g_assert_cmpuint(proto_reply_type(PROTO_ATTACH_FD), ==, PROTO_REPLY_OK);
        g_assert_cmpuint(proto_reply_type(PROTO_REPLY_OK), ==, 0);
        g_assert_cmpuint(proto_reply_type(0xffff), ==, 0);
        g_assert_cmpstr(proto_type_to_string(PROTO_REPLY_CONFIG_WRITE), ==, "ConfigWrite");
        g_assert_cmpstr(proto_type_to_string(PROTO_REPLY_BOOL), ==, "Bool");
        g_assert_cmpstr(proto_type_to_string(PROTO_REPLY_SNAPSHOT), ==, "Snapshot");
}

static void test_call_write_config_gets_result(void) {
        struct proto_config_write w = { .reg = 4, .offset = 0, .len = 2, .data = { 0x00, 0x06 } };
        struct proto_config_result res = {
                .n_io_remove = 1, .n_io_add = 1, .n_removed_pci = 1,
                .io_remove = { { .base = 0x500, .len = 8, .bus = PROTO_BUS_PIO } },
                .io_add = { { .base = 0x600, .len = 8, .bus = PROTO_BUS_PIO } },
                .removed_pci = { 0x0008 },
        };
        struct proto_msg reply;

        g_assert_cmpint(call_with_queued_reply(PROTO_WRITE_CONFIG, &w, sizeof(w), PROTO_REPLY_CONFIG_WRITE, &res,
                                               sizeof(res), &reply, NULL, 0), ==, 0);
        g_assert_cmpuint(reply.body.config_result.n_io_add, ==, 1);
        g_assert_cmphex(reply.body.config_result.io_add[0].base, ==, 0x600);
        g_assert_cmphex(reply.body.config_result.io_remove[0].base, ==, 0x500);
        g_assert_cmphex(reply.body.config_result.removed_pci[0], ==, 0x0008);
}

static void test_call_init_pci_config_mapping_passes_fd_and_gets_bool(void) {
        struct proto_pci_mapping pm = { .base = 0, .len = 4096 };
        struct proto_bool b = { .value = 1 };
        struct pair p;
        struct proto_msg m, reply;
        int pipefd[2];

        pair_open(&p);
        g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
        g_assert_cmpint(proto_send(p.b, PROTO_REPLY_BOOL, &b, sizeof(b), NULL, 0), ==, 0);
        g_assert_cmpint(proto_call(p.a, PROTO_INIT_PCI_CONFIG_MAPPING, &pm, sizeof(pm), &pipefd[1], 1, &reply, 1000,
                                   NULL, 0), ==, 0);
        g_assert_cmpuint(reply.body.boolean.value, ==, 1);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, 0);
        g_assert_cmpuint(m.n_fds, ==, 1);
        g_assert_cmpuint(m.body.pci_mapping.len, ==, 4096);
        proto_msg_done(&m);
        close(pipefd[0]);
        close(pipefd[1]);
        pair_close(&p);
}

static void test_call_snapshot_gets_text_and_restore_sends_it(void) {
        const char *json = "{\"data\":\"00ff\"}";
        struct proto_msg reply;
        struct pair p;
        struct proto_msg m;

        g_assert_cmpint(call_with_queued_reply(PROTO_SNAPSHOT, NULL, 0, PROTO_REPLY_SNAPSHOT, json, strlen(json),
                                               &reply, NULL, 0), ==, 0);
        g_assert_cmpstr(reply.text, ==, json);
        g_assert_cmpuint(reply.text_len, ==, strlen(json));
        proto_msg_done(&reply);
        g_assert_null(reply.text);

        /* Restore carries the text the other way and takes Ok. */
        pair_open(&p);
        g_assert_cmpint(proto_send(p.b, PROTO_REPLY_OK, NULL, 0, NULL, 0), ==, 0);
        g_assert_cmpint(proto_call(p.a, PROTO_RESTORE, json, strlen(json), NULL, 0, NULL, 1000, NULL, 0), ==, 0);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, 0);
        g_assert_cmpstr(m.text, ==, json);
        proto_msg_done(&m);
        pair_close(&p);
}

static void test_call_snapshot_error_reply_gives_string(void) {
        struct proto_error e = { .error = EOPNOTSUPP };
        char err[PROTO_ERROR_MAX];

        snprintf(e.message, sizeof(e.message), "Snapshot is not supported by rtc");
        g_assert_cmpint(call_with_queued_reply(PROTO_SNAPSHOT, NULL, 0, PROTO_REPLY_ERROR, &e, sizeof(e), NULL, err,
                                               sizeof(err)), ==, -EOPNOTSUPP);
        g_assert_cmpstr(err, ==, "Snapshot is not supported by rtc");
        e.error = EALREADY;
        snprintf(e.message, sizeof(e.message), "asleep already");
        g_assert_cmpint(call_with_queued_reply(PROTO_SLEEP, NULL, 0, PROTO_REPLY_ERROR, &e, sizeof(e), NULL, err,
                                               sizeof(err)), ==, -EALREADY);
        g_assert_cmpstr(err, ==, "asleep already");
}

/* Each request answered with every reply but its own is -EBADMSG. */
static void test_reply_check_rejects_every_wrong_reply(void) {
        for (unsigned req = PROTO_ACTIVATE; req < _PROTO_REQUEST_MAX; req++)
                for (unsigned rep = PROTO_REPLY_OK; rep < _PROTO_REPLY_MAX; rep++) {
                        struct proto_msg m = { .hdr = { .type = rep }, .fds = { -1, -1, -1, -1 } };
                        int r;

                        if (rep == PROTO_REPLY_ERROR)
                                continue;
                        r = proto_reply_check(req, &m, NULL, 0);
                        if (rep == proto_reply_type(req))
                                g_assert_cmpint(r, ==, 0);
                        else
                                g_assert_cmpint(r, ==, -EBADMSG);
                }
}

/* A rejected reply leaves no reply type behind: a malformed error reply is a
 * transport failure, not the device's error. */
static void test_call_malformed_error_reply_is_transport_failure(void) {
        struct proto_error e = { .error = EIO };
        struct proto_msg reply;

        memset(e.message, 'x', sizeof(e.message));
        g_assert_cmpint(call_with_queued_reply(PROTO_READ_CONFIG, &(struct proto_u32) {}, sizeof(struct proto_u32),
                                               PROTO_REPLY_ERROR, &e, sizeof(e), &reply, NULL, 0), ==, -EBADMSG);
        g_assert_cmpuint(reply.hdr.type, ==, 0);
}

static void test_text_at_the_limit_is_accepted(void) {
        g_autofree char *text = g_malloc(PROTO_TEXT_MAX);
        struct pair p;
        struct proto_msg m;
        int buf = 4 * PROTO_PACKET_MAX;

        memset(text, ' ', PROTO_TEXT_MAX);
        text[0] = '{';
        pair_open(&p);
        g_assert_cmpint(setsockopt(p.a, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf)), ==, 0);
        g_assert_cmpint(proto_send(p.a, PROTO_RESTORE, text, PROTO_TEXT_MAX, NULL, 0), ==, 0);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, 0);
        g_assert_cmpuint(m.text_len, ==, PROTO_TEXT_MAX);
        g_assert_cmpint(m.text[PROTO_TEXT_MAX], ==, 0);
        proto_msg_done(&m);
        pair_close(&p);
}

static void test_reject_packet_over_the_limit(void) {
        g_autofree uint8_t *buf = g_malloc0(PROTO_PACKET_MAX + 1);
        struct proto_header h;
        struct pair p;
        struct proto_msg m;
        int size = 4 * PROTO_PACKET_MAX;

        memset(buf, 'a', PROTO_PACKET_MAX + 1);
        header_fill(&h, PROTO_RESTORE, PROTO_TEXT_MAX + 1);
        memcpy(buf, &h, sizeof(h));
        pair_open(&p);
        g_assert_cmpint(setsockopt(p.a, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), ==, 0);
        send_raw(p.a, buf, PROTO_PACKET_MAX + 1, -1);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, -EBADMSG);
        pair_close(&p);
}

static void test_reject_text_empty_or_with_nul(void) {
        struct proto_header h;
        uint8_t buf[sizeof(h) + 8];

        header_fill(&h, PROTO_RESTORE, 0);
        expect_rejected(&h, sizeof(h));
        header_fill(&h, PROTO_REPLY_SNAPSHOT, 0);
        expect_rejected(&h, sizeof(h));
        header_fill(&h, PROTO_REPLY_SNAPSHOT, 8);
        memcpy(buf, &h, sizeof(h));
        memcpy(buf + sizeof(h), "{\"a\"\0:1}", 8);
        expect_rejected(buf, sizeof(buf));
}

static void test_reject_restore_with_fd_and_close_it(void) {
        struct pair p;
        struct proto_msg m;
        int pipefd[2];

        pair_open(&p);
        g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
        g_assert_cmpint(proto_send(p.a, PROTO_RESTORE, "{}", 2, &pipefd[1], 1), ==, 0);
        close(pipefd[1]);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, -EBADMSG);
        g_assert_null(m.text);
        assert_fd_was_closed(pipefd[0]);
        close(pipefd[0]);
        pair_close(&p);
}

static void test_reject_pci_mapping_without_fd_or_out_of_range(void) {
        struct proto_pci_mapping ok = { .base = 0, .len = 4096 }, zero = { .base = 0, .len = 0 },
                                 wrap = { .base = UINT64_MAX, .len = 2 };
        struct pair p;
        struct proto_msg m;
        int pipefd[2];

        expect_body_rejected(PROTO_INIT_PCI_CONFIG_MAPPING, &ok, sizeof(ok));
        pair_open(&p);
        g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
        g_assert_cmpint(proto_send(p.a, PROTO_INIT_PCI_CONFIG_MAPPING, &zero, sizeof(zero), &pipefd[1], 1), ==, 0);
        g_assert_cmpint(proto_send(p.a, PROTO_INIT_PCI_CONFIG_MAPPING, &wrap, sizeof(wrap), &pipefd[1], 1), ==, 0);
        close(pipefd[1]);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, -EBADMSG);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, -EBADMSG);
        assert_fd_was_closed(pipefd[0]);
        close(pipefd[0]);
        pair_close(&p);
}

static void test_reject_bool_not_0_or_1(void) {
        struct proto_bool b = { .value = 2 };
        expect_body_rejected(PROTO_REPLY_BOOL, &b, sizeof(b));
        b.value = 0xffffffff;
        expect_body_rejected(PROTO_REPLY_BOOL, &b, sizeof(b));
}

static void test_reject_ioevents_out_of_range(void) {
        static const struct proto_ioevent bad[] = {
                { .address = 0xd0000000, .len = 3, .bus = PROTO_BUS_MMIO },      /* not a power of 2 */
                { .address = 0xd0000000, .len = 16, .bus = PROTO_BUS_MMIO },     /* longer than 8 */
                { .address = 0xffff, .len = 2, .bus = PROTO_BUS_PIO },           /* past port 0xffff */
                { .address = UINT64_MAX, .len = 2, .bus = PROTO_BUS_MMIO },      /* wraps */
                { .address = 0x1000, .len = 4, .bus = 7 },                       /* no such bus */
        };
        struct proto_ioevents ok = { .count = 2,
                                     .ioevents = { { .address = 0xd0003000, .len = 0, .bus = PROTO_BUS_MMIO },
                                                   { .address = 0xc000, .len = 2, .bus = PROTO_BUS_PIO, .arg = 1 } } };
        struct proto_ioevents many = { .count = PROTO_MAX_IOEVENTS + 1 };
        struct pair p;
        struct proto_msg m;

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                struct proto_ioevents e = ok;
                e.ioevents[1] = bad[i];
                expect_body_rejected(PROTO_REPLY_IOEVENTS, &e, sizeof(e));
        }
        expect_body_rejected(PROTO_REPLY_IOEVENTS, &many, sizeof(many));

        pair_open(&p);
        g_assert_cmpint(proto_send(p.a, PROTO_REPLY_IOEVENTS, &ok, sizeof(ok), NULL, 0), ==, 0);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, 0);
        g_assert_cmpuint(m.body.ioevents.count, ==, 2);
        g_assert_cmpuint(m.body.ioevents.ioevents[1].arg, ==, 1);
        pair_close(&p);
}

static void test_reject_msi_routes_out_of_range(void) {
        struct proto_msi_routes r = { .count = 2, .enabled = 1,
                                      .routes = { { .address = 0xfee00000, .data = 0x41 },
                                                  { .address = 0xfee00000, .data = 0x42, .masked = 1 } } };
        struct pair p;
        struct proto_msg m;

        pair_open(&p);
        g_assert_cmpint(proto_send(p.a, PROTO_REPLY_MSI_ROUTES, &r, sizeof(r), NULL, 0), ==, 0);
        g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, 0);
        g_assert_cmpuint(m.body.msi_routes.routes[1].data, ==, 0x42);
        pair_close(&p);

        r.routes[1].masked = 2;
        expect_body_rejected(PROTO_REPLY_MSI_ROUTES, &r, sizeof(r));
        r.routes[1].masked = 0;
        r.enabled = 2;
        expect_body_rejected(PROTO_REPLY_MSI_ROUTES, &r, sizeof(r));
        r.enabled = 0;
        r.count = PROTO_MAX_MSI_ROUTES + 1;
        expect_body_rejected(PROTO_REPLY_MSI_ROUTES, &r, sizeof(r));
}

static void test_reject_ranges_out_of_range(void) {
        static const struct proto_range bad[] = {
                { .base = 0x3f8, .len = 0, .bus = PROTO_BUS_PIO },          /* empty */
                { .base = 0xfff8, .len = 9, .bus = PROTO_BUS_PIO },         /* past port 0xffff */
                { .base = UINT64_MAX - 1, .len = 4, .bus = PROTO_BUS_MMIO }, /* wraps */
                { .base = 0x1000, .len = 4, .bus = 2 },                     /* no such bus */
        };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                struct proto_ranges rs = { .count = 2, .ranges = { { .base = 0x70, .len = 2 }, bad[i] } };
                expect_body_rejected(PROTO_REPLY_RANGES, &rs, sizeof(rs));
        }
        /* Slots past count are not looked at. */
        {
                struct pair p;
                struct proto_msg m;
                struct proto_ranges rs = { .count = 1, .ranges = { { .base = 0x70, .len = 2 }, bad[3] } };
                pair_open(&p);
                g_assert_cmpint(proto_send(p.a, PROTO_REPLY_RANGES, &rs, sizeof(rs), NULL, 0), ==, 0);
                g_assert_cmpint(proto_recv(p.b, &m, 1000), ==, 0);
                pair_close(&p);
        }
}

static void test_reject_config_result_out_of_range(void) {
        struct proto_config_result r;
        const struct proto_range pio = { .base = 0x500, .len = 8, .bus = PROTO_BUS_PIO };
        const struct proto_range mmio = { .base = 0xd0000000, .len = 4096, .bus = PROTO_BUS_MMIO };

        r = (struct proto_config_result) { .n_io_add = PROTO_MAX_CONFIG_CHANGES + 1 };
        expect_body_rejected(PROTO_REPLY_CONFIG_WRITE, &r, sizeof(r));
        r = (struct proto_config_result) { .n_removed_pci = PROTO_MAX_CONFIG_CHANGES + 1 };
        expect_body_rejected(PROTO_REPLY_CONFIG_WRITE, &r, sizeof(r));
        r = (struct proto_config_result) { .n_removed_pci = 1, .removed_pci = { 0x10000 } };
        expect_body_rejected(PROTO_REPLY_CONFIG_WRITE, &r, sizeof(r));
        /* An MMIO range in an I/O list and the other way round. */
        r = (struct proto_config_result) { .n_io_remove = 1, .io_remove = { mmio } };
        expect_body_rejected(PROTO_REPLY_CONFIG_WRITE, &r, sizeof(r));
        r = (struct proto_config_result) { .n_mmio_add = 1, .mmio_add = { pio } };
        expect_body_rejected(PROTO_REPLY_CONFIG_WRITE, &r, sizeof(r));
        /* An empty range. */
        r = (struct proto_config_result) { .n_mmio_remove = 1, .mmio_remove = { { .base = 0x1000, .bus = PROTO_BUS_MMIO } } };
        expect_body_rejected(PROTO_REPLY_CONFIG_WRITE, &r, sizeof(r));
}

/* proto_parse() alone: owns the fds it is given whatever it decides. */
static void test_parse_closes_fds_of_rejected_input(void) {
        struct proto_header h;
        struct proto_msg m;
        int pipes[PROTO_MAX_FDS + 1][2], fds[PROTO_MAX_FDS + 1];

        header_fill(&h, PROTO_ACTIVATE, 0);
        for (size_t i = 0; i < G_N_ELEMENTS(fds); i++) {
                g_assert_cmpint(pipe2(pipes[i], O_CLOEXEC), ==, 0);
                fds[i] = pipes[i][1];
        }
        /* Too many fds for any type: every one closed, the extra one too. */
        g_assert_cmpint(proto_parse(&h, sizeof(h), fds, G_N_ELEMENTS(fds), &m), ==, -EBADMSG);
        g_assert_cmpuint(m.n_fds, ==, 0);
        g_assert_cmpuint(m.hdr.type, ==, 0);
        for (size_t i = 0; i < G_N_ELEMENTS(fds); i++) {
                assert_fd_was_closed(pipes[i][0]);
                close(pipes[i][0]);
        }
        /* Nothing at all, and a header alone that is valid. */
        g_assert_cmpint(proto_parse(&h, 0, NULL, 0, &m), ==, -EBADMSG);
        g_assert_cmpint(proto_parse(&h, sizeof(h), NULL, 0, &m), ==, 0);
        g_assert_cmpuint(m.hdr.type, ==, PROTO_ACTIVATE);
        proto_msg_done(&m);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/proto/type-names", test_type_names);
        g_test_add_func("/proto/every-request-round-trips", test_every_request_round_trips);
        g_test_add_func("/proto/call-read-gets-data", test_call_read_gets_data);
        g_test_add_func("/proto/call-read-config-gets-u32", test_call_read_config_gets_u32);
        g_test_add_func("/proto/call-get-ranges-gets-ranges", test_call_get_ranges_gets_ranges);
        g_test_add_func("/proto/call-activate-gets-ok", test_call_activate_gets_ok);
        g_test_add_func("/proto/call-error-reply-gives-errno-and-message", test_call_error_reply_gives_errno_and_message);
        g_test_add_func("/proto/call-error-reply-with-bogus-errno-is-eio", test_call_error_reply_with_bogus_errno_is_eio);
        g_test_add_func("/proto/call-reply-of-wrong-type-is-rejected", test_call_reply_of_wrong_type_is_rejected);
        g_test_add_func("/proto/call-write-takes-no-reply", test_call_write_takes_no_reply);
        g_test_add_func("/proto/recv-times-out", test_recv_times_out);
        g_test_add_func("/proto/recv-hang-up", test_recv_hang_up);
        g_test_add_func("/proto/recv-queued-packet-before-hang-up", test_recv_queued_packet_before_hang_up);
        g_test_add_func("/proto/reject-short-packet", test_reject_short_packet);
        g_test_add_func("/proto/reject-oversized-packet", test_reject_oversized_packet);
        g_test_add_func("/proto/reject-wrong-magic", test_reject_wrong_magic);
        g_test_add_func("/proto/reject-wrong-version", test_reject_wrong_version);
        g_test_add_func("/proto/reject-unknown-type", test_reject_unknown_type);
        g_test_add_func("/proto/reject-body-length-wrong", test_reject_body_length_wrong);
        g_test_add_func("/proto/reject-access-len-out-of-range", test_reject_access_len_out_of_range);
        g_test_add_func("/proto/reject-config-write-out-of-range", test_reject_config_write_out_of_range);
        g_test_add_func("/proto/reject-ranges-count-too-big", test_reject_ranges_count_too_big);
        g_test_add_func("/proto/reject-data-len-out-of-range", test_reject_data_len_out_of_range);
        g_test_add_func("/proto/reject-error-message-unterminated", test_reject_error_message_unterminated);
        g_test_add_func("/proto/reject-unexpected-fd-and-close-it", test_reject_unexpected_fd_and_close_it);
        g_test_add_func("/proto/reject-attach-fd-without-fd", test_reject_attach_fd_without_fd);
        g_test_add_func("/proto/reject-attach-fd-with-two-fds-and-close-both", test_reject_attach_fd_with_two_fds_and_close_both);
        g_test_add_func("/proto/reject-fd-on-malformed-packet-and-close-it", test_reject_fd_on_malformed_packet_and_close_it);
        g_test_add_func("/proto/send-rejects-bad-arguments", test_send_rejects_bad_arguments);
        g_test_add_func("/proto/reply-error-formats-and-terminates", test_reply_error_formats_and_terminates);
        g_test_add_func("/proto/reply-type-of-each-request", test_reply_type_of_each_request);
        g_test_add_func("/proto/call-write-config-gets-result", test_call_write_config_gets_result);
        g_test_add_func("/proto/call-init-pci-config-mapping-passes-fd-and-gets-bool",
                        test_call_init_pci_config_mapping_passes_fd_and_gets_bool);
        g_test_add_func("/proto/call-snapshot-gets-text-and-restore-sends-it",
                        test_call_snapshot_gets_text_and_restore_sends_it);
        g_test_add_func("/proto/call-snapshot-error-reply-gives-string", test_call_snapshot_error_reply_gives_string);
        g_test_add_func("/proto/reply-check-rejects-every-wrong-reply", test_reply_check_rejects_every_wrong_reply);
        g_test_add_func("/proto/call-malformed-error-reply-is-transport-failure",
                        test_call_malformed_error_reply_is_transport_failure);
        g_test_add_func("/proto/text-at-the-limit-is-accepted", test_text_at_the_limit_is_accepted);
        g_test_add_func("/proto/reject-packet-over-the-limit", test_reject_packet_over_the_limit);
        g_test_add_func("/proto/reject-text-empty-or-with-nul", test_reject_text_empty_or_with_nul);
        g_test_add_func("/proto/reject-restore-with-fd-and-close-it", test_reject_restore_with_fd_and_close_it);
        g_test_add_func("/proto/reject-pci-mapping-without-fd-or-out-of-range",
                        test_reject_pci_mapping_without_fd_or_out_of_range);
        g_test_add_func("/proto/reject-bool-not-0-or-1", test_reject_bool_not_0_or_1);
        g_test_add_func("/proto/reject-ranges-out-of-range", test_reject_ranges_out_of_range);
        g_test_add_func("/proto/reject-ioevents-out-of-range", test_reject_ioevents_out_of_range);
        g_test_add_func("/proto/reject-msi-routes-out-of-range", test_reject_msi_routes_out_of_range);
        g_test_add_func("/proto/reject-config-result-out-of-range", test_reject_config_result_out_of_range);
        g_test_add_func("/proto/parse-closes-fds-of-rejected-input", test_parse_closes_fds_of_rejected_input);
        return g_test_run();
}
