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

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/device-report/reports-round-trip", test_reports_round_trip);
        g_test_add_func("/device-report/malformed-reports-are-refused", test_malformed_reports_are_refused);
        return g_test_run();
}
