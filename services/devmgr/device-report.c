/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "device-report.h"
#include "macro.h"

int device_report_send(int sock, enum device_report_type type, int fd) {
        struct device_report r = { .magic = DEVICE_REPORT_MAGIC, .type = type };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = &r, .iov_len = sizeof(r) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (fd >= 0) {
                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
                control.h.cmsg_level = SOL_SOCKET;
                control.h.cmsg_type = SCM_RIGHTS;
                control.h.cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(&control.h), &fd, sizeof(int));
        }
        for (;;) {
                ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
                if (n == (ssize_t) sizeof(r))
                        return 0;
                if (n >= 0)
                        return -EIO;
                if (errno != EINTR)
                        return -errno;
        }
}

int device_report_recv(int sock, enum device_report_type *ret_type, int *ret_fd) {
        struct device_report r;
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * 4)];
        } control;
        struct iovec iov = { .iov_base = &r, .iov_len = sizeof(r) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        int fds[4], n_fds = 0;
        ssize_t n;

        *ret_fd = -1;
        do
                n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n == 0)
                return -ECONNRESET;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) && n_fds < 4; i++)
                                memcpy(&fds[n_fds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));

        if (n != (ssize_t) sizeof(r) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || r.magic != DEVICE_REPORT_MAGIC ||
            (r.type != DEVICE_REPORT_GO && r.type != DEVICE_REPORT_LISTENER && r.type != DEVICE_REPORT_ACTIVE) ||
            n_fds != (r.type == DEVICE_REPORT_LISTENER ? 1 : 0)) {
                for (int i = 0; i < n_fds; i++)
                        close(fds[i]);
                return -EBADMSG;
        }
        *ret_type = r.type;
        if (n_fds == 1)
                *ret_fd = fds[0];
        return 0;
}
