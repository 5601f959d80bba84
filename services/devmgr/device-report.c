/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "device-report.h"
#include "macro.h"

static int own_sock = -1;

void device_report_set_own(int sock) {
        own_sock = sock;
}

int device_report_own(void) {
        return own_sock;
}

static int report_send_flags(int sock, const void *msg, size_t len, int fd, int flags) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = (void *) msg, .iov_len = len };
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
                ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
                if (n == (ssize_t) len)
                        return 0;
                if (n >= 0)
                        return -EIO;
                if (errno != EINTR)
                        return -errno;
        }
}

static int report_send(int sock, const void *msg, size_t len, int fd) {
        return report_send_flags(sock, msg, len, fd, 0);
}

int device_report_send(int sock, enum device_report_type type, int fd) {
        struct device_report r = { .magic = DEVICE_REPORT_MAGIC, .type = type };

        if (type == DEVICE_REPORT_UFFD || type == DEVICE_REPORT_CONNECT || type == DEVICE_REPORT_CONNECTED)
                return -EINVAL; /* they have a body */
        return report_send(sock, &r, sizeof(r), fd);
}

int device_report_send_uffd(int sock, int uffd, uint64_t base, uint64_t size) {
        struct device_report_uffd r = {
                .header = { .magic = DEVICE_REPORT_MAGIC, .type = DEVICE_REPORT_UFFD },
                .base = base,
                .size = size,
        };

        if (uffd < 0)
                return -EBADF;
        return report_send(sock, &r, sizeof(r), uffd);
}

int device_report_send_connect(int sock, uint64_t cookie, uint32_t port) {
        struct device_report_connect r = {
                .header = { .magic = DEVICE_REPORT_MAGIC, .type = DEVICE_REPORT_CONNECT },
                .cookie = cookie,
                .port = port,
        };

        return report_send_flags(sock, &r, sizeof(r), -1, MSG_DONTWAIT);
}

int device_report_send_connected(int sock, uint64_t cookie, uint32_t port, int32_t error, int fd) {
        struct device_report_connected r = {
                .header = { .magic = DEVICE_REPORT_MAGIC, .type = DEVICE_REPORT_CONNECTED },
                .cookie = cookie,
                .port = port,
                .error = error,
        };

        if ((error == 0) != (fd >= 0) || error < 0)
                return -EINVAL;
        return report_send_flags(sock, &r, sizeof(r), fd, MSG_DONTWAIT);
}

/* The size of a report of type, 0 for an unknown type. */
static size_t report_size(uint32_t type) {
        switch (type) {
        case DEVICE_REPORT_GO:
        case DEVICE_REPORT_LISTENER:
        case DEVICE_REPORT_ACTIVE:
                return sizeof(struct device_report);
        case DEVICE_REPORT_UFFD:
                return sizeof(struct device_report_uffd);
        case DEVICE_REPORT_CONNECT:
                return sizeof(struct device_report_connect);
        case DEVICE_REPORT_CONNECTED:
                return sizeof(struct device_report_connected);
        default:
                return 0;
        }
}

int device_report_receive(int sock, struct device_report_msg *ret) {
        /* One byte more than the largest report, to see a long one. */
        union {
                struct device_report_uffd uffd;
                struct device_report_connect connect;
                struct device_report_connected connected;
                uint8_t bytes[sizeof(struct device_report_uffd) + 1];
        } buf;
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * 4)];
        } control;
        struct iovec iov = { .iov_base = &buf, .iov_len = sizeof(buf) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        const struct device_report *h = &buf.uffd.header;
        int fds[4], n_fds = 0;
        bool with_fd;
        ssize_t n;

        *ret = (struct device_report_msg) { .fd = -1 };
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

        with_fd = n >= (ssize_t) sizeof(*h) && (h->type == DEVICE_REPORT_LISTENER || h->type == DEVICE_REPORT_UFFD ||
                                                (h->type == DEVICE_REPORT_CONNECTED &&
                                                 n == (ssize_t) sizeof(buf.connected) && buf.connected.error == 0));
        if (n < (ssize_t) sizeof(*h) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || h->magic != DEVICE_REPORT_MAGIC ||
            report_size(h->type) == 0 || (size_t) n != report_size(h->type) || n_fds != (with_fd ? 1 : 0)) {
                for (int i = 0; i < n_fds; i++)
                        close(fds[i]);
                return -EBADMSG;
        }
        ret->type = h->type;
        if (n_fds == 1)
                ret->fd = fds[0];
        if (h->type == DEVICE_REPORT_UFFD) {
                ret->base = buf.uffd.base;
                ret->size = buf.uffd.size;
        } else if (h->type == DEVICE_REPORT_CONNECT) {
                ret->cookie = buf.connect.cookie;
                ret->port = buf.connect.port;
        } else if (h->type == DEVICE_REPORT_CONNECTED) {
                ret->cookie = buf.connected.cookie;
                ret->port = buf.connected.port;
                ret->error = buf.connected.error;
        }
        return 0;
}

int device_report_recv(int sock, enum device_report_type *ret_type, int *ret_fd) {
        struct device_report_msg m;
        int r;

        *ret_fd = -1;
        r = device_report_receive(sock, &m);
        if (r < 0)
                return r;
        *ret_type = m.type;
        *ret_fd = m.fd;
        return 0;
}
