/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "vhost-user.h"

static const char *const request_names[_VHOST_USER_REQUEST_MAX] = {
        [VHOST_USER_GET_FEATURES] = "GET_FEATURES",
        [VHOST_USER_SET_FEATURES] = "SET_FEATURES",
        [VHOST_USER_SET_OWNER] = "SET_OWNER",
        [VHOST_USER_RESET_OWNER] = "RESET_OWNER",
        [VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
        [VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
        [VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
        [VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
        [VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
        [VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
        [VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
        [VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
        [VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
        [VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
        [VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
        [VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
        [VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
        [VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
        [19] = "SEND_RARP",
        [20] = "NET_SET_MTU",
        [21] = "SET_BACKEND_REQ_FD",
        [22] = "IOTLB_MSG",
        [23] = "SET_VRING_ENDIAN",
        [VHOST_USER_GET_CONFIG] = "GET_CONFIG",
        [VHOST_USER_SET_CONFIG] = "SET_CONFIG",
        [26] = "CREATE_CRYPTO_SESSION",
        [27] = "CLOSE_CRYPTO_SESSION",
        [28] = "POSTCOPY_ADVISE",
        [29] = "POSTCOPY_LISTEN",
        [30] = "POSTCOPY_END",
        [31] = "GET_INFLIGHT_FD",
        [32] = "SET_INFLIGHT_FD",
        [33] = "GPU_SET_SOCKET",
        [VHOST_USER_RESET_DEVICE] = "RESET_DEVICE",
        [35] = "VRING_KICK",
        [VHOST_USER_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
        [37] = "ADD_MEM_REG",
        [38] = "REM_MEM_REG",
        [39] = "SET_STATUS",
        [VHOST_USER_GET_STATUS] = "GET_STATUS",
};

const char *vhost_user_request_to_string(uint32_t request) {
        if (request < _VHOST_USER_REQUEST_MAX && request_names[request])
                return request_names[request];
        return "unknown";
}

void vhost_user_msg_done(struct vhost_user_msg *m) {
        for (unsigned i = 0; i < m->n_fds; i++)
                m->fds[i] = safe_close(m->fds[i]);
        m->n_fds = 0;
}

/* The rest of a message whose first bytes came: a front-end that stops
 * in the middle of one is broken, not slow. */
#define REST_TIMEOUT_MS 2000

/* Reads exactly len bytes (a stream may split a message). 0 for EOF before
 * the first byte, -EBADMSG for EOF in the middle, -ETIMEDOUT if nothing
 * comes for REST_TIMEOUT_MS. */
static ssize_t read_full(int fd, void *buf, size_t len) {
        size_t done = 0;

        while (done < len) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t k;

                k = poll(&p, 1, REST_TIMEOUT_MS);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -ETIMEDOUT;
                k = read(fd, (uint8_t *) buf + done, len - done);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return done == 0 ? 0 : -EBADMSG;
                done += (size_t) k;
        }
        return (ssize_t) done;
}

/* The header of a request: version 1, no reply flag, a payload that fits. */
static int check_header(const struct vhost_user_msg *m) {
        const char *name = vhost_user_request_to_string(m->hdr.request);

        if ((m->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION)
                return log_error_errno(EBADMSG, "vhost-user: %s (%u): version %u, expected %u", name, m->hdr.request,
                                       m->hdr.flags & VHOST_USER_VERSION_MASK, VHOST_USER_VERSION);
        if (m->hdr.flags & VHOST_USER_REPLY_MASK)
                return log_error_errno(EBADMSG, "vhost-user: %s (%u): a reply where a request belongs", name,
                                       m->hdr.request);
        if (m->hdr.size > sizeof(m->body))
                return log_error_errno(EBADMSG, "vhost-user: %s (%u): payload of %u bytes, at most %zu allowed", name,
                                       m->hdr.request, m->hdr.size, sizeof(m->body));
        return 0;
}

int vhost_user_recv(int fd, struct vhost_user_msg *m) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int) * (VHOST_USER_MAX_FDS + 1))];
        } control;
        struct iovec iov = { .iov_base = &m->hdr, .iov_len = sizeof(m->hdr) };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof(control.buf),
        };
        size_t got;
        ssize_t k;
        int r = 0;

        memset(m, 0, sizeof(*m));
        do
                k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        if (k == 0)
                return 0;

        /* Take every fd that came, whatever follows, so that none leaks. */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                const int *fds = (const int *) CMSG_DATA(c);

                for (size_t i = 0; i < n; i++) {
                        if (m->n_fds < VHOST_USER_MAX_FDS)
                                m->fds[m->n_fds++] = fds[i];
                        else {
                                safe_close(fds[i]);
                                r = log_error_errno(EBADMSG, "vhost-user: more than %d fds with one message",
                                                    VHOST_USER_MAX_FDS);
                        }
                }
        }
        if (mh.msg_flags & MSG_CTRUNC)
                r = log_error_errno(EBADMSG, "vhost-user: ancillary data truncated (too many fds)");

        got = (size_t) k;
        if (got < sizeof(m->hdr)) {
                k = read_full(fd, (uint8_t *) &m->hdr + got, sizeof(m->hdr) - got);
                if (k <= 0) {
                        vhost_user_msg_done(m);
                        return log_error_errno(k < 0 ? (int) k : EBADMSG, "vhost-user: truncated header: %m");
                }
        }
        if (r >= 0)
                r = check_header(m);
        if (r >= 0 && m->hdr.size > 0) {
                k = read_full(fd, &m->body, m->hdr.size);
                if (k <= 0)
                        r = log_error_errno(k < 0 ? (int) k : EBADMSG, "vhost-user: %s: truncated payload: %m",
                                            vhost_user_request_to_string(m->hdr.request));
        }
        if (r < 0) {
                vhost_user_msg_done(m);
                return r;
        }
        return 1;
}

int vhost_user_send_reply(int fd, uint32_t request, const void *payload, uint32_t size) {
        struct vhost_user_header h = {
                .request = request,
                .flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK,
                .size = size,
        };
        struct iovec iov[2] = {
                { .iov_base = &h, .iov_len = sizeof(h) },
                { .iov_base = (void *) payload, .iov_len = size },
        };
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size > 0 ? 2 : 1 };
        size_t want = sizeof(h) + size;
        ssize_t k;

        do
                k = sendmsg(fd, &mh, MSG_NOSIGNAL);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        if ((size_t) k != want)
                return -EIO; /* a 12..268 byte message on a blocking socket goes whole */
        return 0;
}
