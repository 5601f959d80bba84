/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The report channel between a device process and devmgr
 * (services/devmgr/device-report.c): what it accepts, and that anything
 * else (a device may be compromised) is refused with its fds closed. */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "device-report.h"

static void pair(int sv[2]) {
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), ==, 0);
}

static gboolean fd_open(int fd) {
        return fcntl(fd, F_GETFD) >= 0;
}

/* Sends raw bytes with an optional fd, as a hostile device could. */
static void send_raw(int sock, const void *buf, size_t len, int fd) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (fd >= 0) {
                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
                control.h.cmsg_level = SOL_SOCKET;
                control.h.cmsg_type = SCM_RIGHTS;
                control.h.cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(&control.h), &fd, sizeof(int));
        }
        g_assert_cmpint(sendmsg(sock, &mh, 0), ==, (ssize_t) len);
}

static void test_reports_round_trip(void) {
        enum device_report_type type;
        int sv[2], fd, efd;

        pair(sv);
        g_assert_cmpint(device_report_recv(sv[0], &type, &fd), ==, -EAGAIN);
        g_assert_cmpint(device_report_send(sv[1], DEVICE_REPORT_GO, -1), ==, 0);
        g_assert_cmpint(device_report_recv(sv[0], &type, &fd), ==, 0);
        g_assert_cmpint(type, ==, DEVICE_REPORT_GO);
        g_assert_cmpint(fd, ==, -1);

        g_assert_cmpint(device_report_send(sv[1], DEVICE_REPORT_ACTIVE, -1), ==, 0);
        g_assert_cmpint(device_report_recv(sv[0], &type, &fd), ==, 0);
        g_assert_cmpint(type, ==, DEVICE_REPORT_ACTIVE);

        efd = eventfd(0, EFD_CLOEXEC);
        g_assert_cmpint(device_report_send(sv[1], DEVICE_REPORT_LISTENER, efd), ==, 0);
        close(efd);
        g_assert_cmpint(device_report_recv(sv[0], &type, &fd), ==, 0);
        g_assert_cmpint(type, ==, DEVICE_REPORT_LISTENER);
        g_assert_cmpint(fd, >=, 0);
        close(fd);

        close(sv[1]);
        g_assert_cmpint(device_report_recv(sv[0], &type, &fd), ==, -ECONNRESET);
        close(sv[0]);
}

static void expect_refused(const void *buf, size_t len, gboolean with_fd) {
        enum device_report_type type;
        int sv[2], fd = -1, efd = -1;

        pair(sv);
        if (with_fd)
                efd = eventfd(0, EFD_CLOEXEC);
        send_raw(sv[1], buf, len, efd);
        if (efd >= 0)
                close(efd);
        g_assert_cmpint(device_report_recv(sv[0], &type, &fd), ==, -EBADMSG);
        g_assert_cmpint(fd, ==, -1);
        close(sv[0]);
        close(sv[1]);
}

static void test_malformed_reports_are_refused(void) {
        struct device_report ok = { .magic = DEVICE_REPORT_MAGIC, .type = DEVICE_REPORT_ACTIVE };
        struct device_report r;
        uint8_t big[64] = {};
        int before;

        /* Short, long, wrong magic, unknown types. */
        expect_refused(&ok, sizeof(ok) - 1, FALSE);
        memcpy(big, &ok, sizeof(ok));
        expect_refused(big, sizeof(big), FALSE);
        r = ok;
        r.magic = 0xdeadbeef;
        expect_refused(&r, sizeof(r), FALSE);
        r = ok;
        r.type = 0;
        expect_refused(&r, sizeof(r), FALSE);
        r.type = 99;
        expect_refused(&r, sizeof(r), FALSE);

        /* An fd where none belongs is refused and closed: the next fd
         * number is the same before and after. */
        before = dup(0);
        close(before);
        expect_refused(&ok, sizeof(ok), TRUE);
        r = ok;
        r.type = DEVICE_REPORT_GO;
        expect_refused(&r, sizeof(r), TRUE);
        {
                int now = dup(0);
                g_assert_cmpint(now, ==, before);
                close(now);
        }
        /* A listener report without its fd. */
        r.type = DEVICE_REPORT_LISTENER;
        expect_refused(&r, sizeof(r), FALSE);
        g_assert_false(fd_open(before + 1) && fd_open(before + 2));
}

/* DEVICE_REPORT_UFFD carries base and size with exactly one fd; the
 * receiver gets all three. The fd's type is not checked here (devmgr and
 * memmgr do), so any fd round-trips. */
static void test_uffd_report_round_trips(void) {
        struct device_report_msg m;
        int sv[2], efd;

        pair(sv);
        efd = eventfd(0, EFD_CLOEXEC);
        g_assert_cmpint(device_report_send_uffd(sv[1], efd, 0x7f0000000000, 64 << 20), ==, 0);
        close(efd);
        g_assert_cmpint(device_report_receive(sv[0], &m), ==, 0);
        g_assert_cmpint(m.type, ==, DEVICE_REPORT_UFFD);
        g_assert_cmphex(m.base, ==, 0x7f0000000000);
        g_assert_cmpuint(m.size, ==, 64 << 20);
        g_assert_cmpint(m.fd, >=, 0);
        g_assert_true(fd_open(m.fd));
        close(m.fd);

        /* Without an fd there is nothing to send; UFFD needs its body. */
        g_assert_cmpint(device_report_send_uffd(sv[1], -1, 0x1000, 0x1000), ==, -EBADF);
        g_assert_cmpint(device_report_send(sv[1], DEVICE_REPORT_UFFD, -1), ==, -EINVAL);
        g_assert_cmpint(device_report_receive(sv[0], &m), ==, -EAGAIN);
        close(sv[0]);
        close(sv[1]);
}

static void test_bad_uffd_reports_are_refused(void) {
        struct device_report_uffd ok = {
                .header = { .magic = DEVICE_REPORT_MAGIC, .type = DEVICE_REPORT_UFFD },
                .base = 0x10000,
                .size = 0x10000,
        };
        struct device_report_uffd r;
        uint8_t big[sizeof(ok) + 8] = {};
        int before = dup(0);

        close(before);
        /* Only the header, short bodies, a long one, with the fd each time. */
        expect_refused(&ok, sizeof(struct device_report), TRUE);
        expect_refused(&ok, sizeof(ok) - 1, TRUE);
        expect_refused(&ok, sizeof(ok) - 8, TRUE);
        memcpy(big, &ok, sizeof(ok));
        expect_refused(big, sizeof(big), TRUE);
        /* Right size, no fd; wrong magic. */
        expect_refused(&ok, sizeof(ok), FALSE);
        r = ok;
        r.header.magic = 0;
        expect_refused(&r, sizeof(r), TRUE);
        /* A body on a report type that has none. */
        r = ok;
        r.header.type = DEVICE_REPORT_ACTIVE;
        expect_refused(&r, sizeof(r), FALSE);
        r.header.type = DEVICE_REPORT_LISTENER;
        expect_refused(&r, sizeof(r), TRUE);
        /* Every fd of a refused report was closed. */
        {
                int now = dup(0);
                g_assert_cmpint(now, ==, before);
                close(now);
        }
}

/* Two fds with a UFFD report: refused, both closed. */
static void test_uffd_report_with_two_fds_is_refused(void) {
        struct device_report_uffd ok = {
                .header = { .magic = DEVICE_REPORT_MAGIC, .type = DEVICE_REPORT_UFFD },
                .base = 0x10000,
                .size = 0x10000,
        };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(2 * sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = &ok, .iov_len = sizeof(ok) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        struct device_report_msg m;
        int sv[2], fds[2], before = dup(0);

        close(before);
        pair(sv);
        fds[0] = eventfd(0, EFD_CLOEXEC);
        fds[1] = eventfd(0, EFD_CLOEXEC);
        control.h.cmsg_level = SOL_SOCKET;
        control.h.cmsg_type = SCM_RIGHTS;
        control.h.cmsg_len = CMSG_LEN(2 * sizeof(int));
        memcpy(CMSG_DATA(&control.h), fds, sizeof(fds));
        g_assert_cmpint(sendmsg(sv[1], &mh, 0), ==, (ssize_t) sizeof(ok));
        close(fds[0]);
        close(fds[1]);
        g_assert_cmpint(device_report_receive(sv[0], &m), ==, -EBADMSG);
        g_assert_cmpint(m.fd, ==, -1);
        close(sv[0]);
        close(sv[1]);
        {
                int now = dup(0);
                g_assert_cmpint(now, ==, before);
                close(now);
        }
}

/* virtio-vsock's connect broker: the request, both answers, and answers
 * whose fd does not match the error are refused with the fd closed. */
static void test_connect_reports_round_trip(void) {
        struct device_report_msg m;
        int sv[2], efd = eventfd(0, EFD_CLOEXEC);

        pair(sv);
        g_assert_cmpint(device_report_send_connect(sv[0], 77, 5000), ==, 0);
        g_assert_cmpint(device_report_receive(sv[1], &m), ==, 0);
        g_assert_cmpint(m.type, ==, DEVICE_REPORT_CONNECT);
        g_assert_cmpuint(m.cookie, ==, 77);
        g_assert_cmpuint(m.port, ==, 5000);
        g_assert_cmpint(m.fd, ==, -1);

        g_assert_cmpint(device_report_send_connected(sv[1], 77, 5000, 0, efd), ==, 0);
        g_assert_cmpint(device_report_receive(sv[0], &m), ==, 0);
        g_assert_cmpint(m.type, ==, DEVICE_REPORT_CONNECTED);
        g_assert_cmpuint(m.cookie, ==, 77);
        g_assert_cmpint(m.error, ==, 0);
        g_assert_cmpint(m.fd, >=, 0);
        close(m.fd);

        g_assert_cmpint(device_report_send_connected(sv[1], 78, 5001, ECONNREFUSED, -1), ==, 0);
        g_assert_cmpint(device_report_receive(sv[0], &m), ==, 0);
        g_assert_cmpint(m.error, ==, ECONNREFUSED);
        g_assert_cmpint(m.fd, ==, -1);

        /* the sender refuses a mismatch */
        g_assert_cmpint(device_report_send_connected(sv[1], 1, 1, 0, -1), ==, -EINVAL);
        g_assert_cmpint(device_report_send_connected(sv[1], 1, 1, EIO, efd), ==, -EINVAL);
        g_assert_cmpint(device_report_send(sv[0], DEVICE_REPORT_CONNECT, -1), ==, -EINVAL);

        /* a receiver refuses: an error with an fd, success without, a
         * request with an fd */
        {
                struct device_report_connected c = { { DEVICE_REPORT_MAGIC, DEVICE_REPORT_CONNECTED }, 1, 1, EIO };
                struct device_report_connect q = { { DEVICE_REPORT_MAGIC, DEVICE_REPORT_CONNECT }, 1, 1, 0 };
                int dup1 = dup(efd), dup2 = dup(efd);

                send_raw(sv[1], &c, sizeof(c), dup1);
                close(dup1);
                g_assert_cmpint(device_report_receive(sv[0], &m), ==, -EBADMSG);
                c.error = 0;
                send_raw(sv[1], &c, sizeof(c), -1);
                g_assert_cmpint(device_report_receive(sv[0], &m), ==, -EBADMSG);
                send_raw(sv[0], &q, sizeof(q), dup2);
                close(dup2);
                g_assert_cmpint(device_report_receive(sv[1], &m), ==, -EBADMSG);
                send_raw(sv[0], &q, sizeof(q) - 1, -1);
                g_assert_cmpint(device_report_receive(sv[1], &m), ==, -EBADMSG);
        }
        close(efd);
        close(sv[0]);
        close(sv[1]);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/device-report/reports-round-trip", test_reports_round_trip);
        g_test_add_func("/device-report/malformed-reports-are-refused", test_malformed_reports_are_refused);
        g_test_add_func("/device-report/uffd-report-round-trips", test_uffd_report_round_trips);
        g_test_add_func("/device-report/bad-uffd-reports-are-refused", test_bad_uffd_reports_are_refused);
        g_test_add_func("/device-report/uffd-report-with-two-fds-is-refused", test_uffd_report_with_two_fds_is_refused);
        g_test_add_func("/device-report/connect-reports-round-trip", test_connect_reports_round_trip);
        return g_test_run();
}
