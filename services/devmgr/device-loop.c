/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "device-loop.h"
#include "log.h"

struct device_loop {
        int sock;
        const struct device_kind *kind;
        void *dev;
        bool active;
        struct proto_ranges ranges; /* fixed at Activate */
};

/* Checks an access against the ranges the device announced, so kinds only
 * ever see offsets within their own ranges. */
static bool access_valid(const struct device_loop *l, const struct proto_access *a, char *err, size_t errlen) {
        const struct proto_range *r;

        if (a->range >= l->ranges.count) {
                snprintf(err, errlen, "range %u out of %u", a->range, l->ranges.count);
                return false;
        }
        r = &l->ranges.ranges[a->range];
        if (a->offset >= r->len || a->len > r->len - a->offset || a->address != r->base + a->offset) {
                snprintf(err, errlen, "access of %u at 0x%" PRIx64 " (offset 0x%" PRIx64 ") outside range %u",
                         a->len, a->address, a->offset, a->range);
                return false;
        }
        return true;
}

static int handle_read(struct device_loop *l, const struct proto_access *a) {
        struct proto_data d = { .len = a->len };
        char err[PROTO_ERROR_MAX];
        int r;

        if (!access_valid(l, a, err, sizeof(err)))
                return proto_reply_error(l->sock, EINVAL, "%s", err);
        r = l->kind->read(l->dev, a->range, a->offset, a->len, d.data);
        if (r < 0)
                return proto_reply_error(l->sock, r, "read at 0x%" PRIx64 " failed: %s", a->address, strerror(-r));
        return proto_send(l->sock, PROTO_REPLY_DATA, &d, sizeof(d), NULL, 0);
}

/* WRITE takes no reply: errors can only be logged. */
static int handle_write(struct device_loop *l, const struct proto_access *a) {
        char err[PROTO_ERROR_MAX];
        int r;

        if (!access_valid(l, a, err, sizeof(err))) {
                log_warning("Write ignored: %s", err);
                return 0;
        }
        r = l->kind->write(l->dev, a->range, a->offset, a->len, a->data);
        if (r < 0)
                log_warning_errno(r, "Write at 0x%" PRIx64 " failed: %m", a->address);
        return 0;
}

static int handle_attach_fd(struct device_loop *l, struct proto_msg *m) {
        char err[PROTO_ERROR_MAX] = "";
        int r;

        if (!l->kind->attach_fd)
                return proto_reply_error(l->sock, EINVAL, "%s takes no fds", l->kind->name);
        r = l->kind->attach_fd(l->dev, m->body.attach_fd.role, m->body.attach_fd.arg, m->fds[0], err, sizeof(err));
        if (r < 0)
                return proto_reply_error(l->sock, r, "%s", err[0] ? err : strerror(-r));
        m->fds[0] = -1; /* the device owns it now */
        return proto_send(l->sock, PROTO_REPLY_OK, NULL, 0, NULL, 0);
}

/* Returns 1 when the loop should end, 0 to go on, -errno on socket failure. */
static int handle_request(struct device_loop *l, struct proto_msg *m) {
        unsigned type = m->hdr.type;
        int r;

        if (type == PROTO_ACTIVATE) {
                if (l->active) {
                        log_warning("Refusing a second Activate: the device is bound to its first owner.");
                        return proto_reply_error(l->sock, EALREADY, "device is already active");
                }
                r = l->kind->get_ranges(l->dev, &l->ranges);
                if (r < 0 || l->ranges.count > PROTO_MAX_RANGES)
                        return proto_reply_error(l->sock, r < 0 ? r : EINVAL, "device has no valid ranges");
                l->active = true;
                log_debug("Activated.");
                return proto_send(l->sock, PROTO_REPLY_OK, NULL, 0, NULL, 0);
        }
        if (type >= PROTO_REPLY_OK)
                return proto_reply_error(l->sock, EBADMSG, "%s is a reply, not a request", proto_type_to_string(type));
        if (!l->active) {
                /* A DESTROY_DEVICE takes no reply, even here. */
                if (type == PROTO_DESTROY_DEVICE)
                        return 1;
                return proto_reply_error(l->sock, EPERM, "%s before Activate", proto_type_to_string(type));
        }

        switch (type) {
        case PROTO_READ:
                return handle_read(l, &m->body.access);
        case PROTO_WRITE:
                return handle_write(l, &m->body.access);
        case PROTO_GET_RANGES:
                return proto_send(l->sock, PROTO_REPLY_RANGES, &l->ranges, sizeof(l->ranges), NULL, 0);
        case PROTO_ATTACH_FD:
                return handle_attach_fd(l, m);
        case PROTO_SLEEP:
        case PROTO_WAKE:
                /* Nothing runs on its own but input, which waits in the socket. */
                return proto_send(l->sock, PROTO_REPLY_OK, NULL, 0, NULL, 0);
        case PROTO_SHUTDOWN:
                r = proto_send(l->sock, PROTO_REPLY_OK, NULL, 0, NULL, 0);
                return r < 0 ? r : 1;
        case PROTO_DESTROY_DEVICE:
                return 1;
        default:
                return proto_reply_error(l->sock, EOPNOTSUPP, "%s is not supported by %s",
                                         proto_type_to_string(type), l->kind->name);
        }
}

int device_loop_run(int sock, const struct device_kind *kind, void *dev) {
        struct device_loop l = { .sock = sock, .kind = kind, .dev = dev };

        for (;;) {
                struct pollfd p[2] = { { .fd = sock, .events = POLLIN } };
                int efd = l.active && kind->event_fd ? kind->event_fd(dev) : -1;
                struct proto_msg m;
                int r;

                p[1] = (struct pollfd) { .fd = efd, .events = POLLIN };
                r = poll(p, efd >= 0 ? 2 : 1, -1);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_error_errno(errno, "Failed to poll: %m");
                }

                if (efd >= 0 && p[1].revents) {
                        r = kind->handle_event(dev);
                        if (r < 0)
                                log_warning_errno(r, "Device event failed: %m");
                }
                if (!p[0].revents)
                        continue;

                r = proto_recv(sock, &m, 0);
                if (r == -ECONNRESET) {
                        log_debug("Endpoint hung up, exiting.");
                        return 0;
                }
                if (r == -ETIMEDOUT)
                        continue;
                if (r == -EBADMSG) {
                        log_warning("Rejected a malformed packet.");
                        r = proto_reply_error(sock, EBADMSG, "malformed packet");
                } else if (r < 0)
                        return log_error_errno(r, "Failed to receive: %m");
                else {
                        r = handle_request(&l, &m);
                        proto_msg_done(&m);
                }
                if (r == -ECONNRESET)
                        return 0;
                if (r < 0)
                        return log_error_errno(r, "Failed to reply: %m");
                if (r > 0)
                        return 0;
        }
}
