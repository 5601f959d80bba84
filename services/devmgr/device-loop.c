/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device-loop.h"
#include "log.h"

void device_loop_init(struct device_loop *l, int sock, const struct device_kind *kind, void *dev) {
        *l = (struct device_loop) { .sock = sock, .kind = kind, .dev = dev };
}

static int reply_ok(struct device_loop *l) {
        return proto_send(l->sock, PROTO_REPLY_OK, NULL, 0, NULL, 0);
}

static int reply_u32(struct device_loop *l, uint32_t reg, uint32_t value) {
        struct proto_u32 u = { .value = value, .reg = reg };
        return proto_send(l->sock, PROTO_REPLY_U32, &u, sizeof(u), NULL, 0);
}

static int reply_unsupported(struct device_loop *l, unsigned type) {
        return proto_reply_error(l->sock, EOPNOTSUPP, "%s is not supported by %s", proto_type_to_string(type),
                                 l->kind->name);
}

/* An op's failure as an error reply: its own message if it wrote one. */
static int reply_failure(struct device_loop *l, unsigned type, int r, const char *err) {
        return proto_reply_error(l->sock, r, "%s failed: %s", proto_type_to_string(type),
                                 err && err[0] ? err : strerror(-r));
}

/* The ranges a kind reports are input to the launcher's address map: held
 * to the same rules the launcher's parser applies. */
static int load_ranges(struct device_loop *l) {
        struct proto_ranges rs = {};
        int r;

        r = l->kind->get_ranges(l->dev, &rs);
        if (r < 0)
                return r;
        if (rs.count > PROTO_MAX_RANGES)
                return -EINVAL;
        l->ranges = rs;
        return 0;
}

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

static int handle_read_config(struct device_loop *l, unsigned type, uint32_t reg) {
        int (*op)(void *, uint32_t, uint32_t *) =
                type == PROTO_READ_CONFIG ? l->kind->read_config : l->kind->read_virtual_config;
        uint32_t value = 0;
        int r;

        if (!op)
                return reply_unsupported(l, type);
        r = op(l->dev, reg, &value);
        if (r < 0)
                return reply_failure(l, type, r, NULL);
        return reply_u32(l, reg, value);
}

static int handle_write_config(struct device_loop *l, const struct proto_config_write *w) {
        struct proto_config_result res = {};
        int r;

        if (!l->kind->write_config)
                return reply_unsupported(l, PROTO_WRITE_CONFIG);
        r = l->kind->write_config(l->dev, w->reg, w->offset, w->len, w->data, &res);
        if (r < 0)
                return reply_failure(l, PROTO_WRITE_CONFIG, r, NULL);
        /* A moved BAR moves what accesses are checked against. */
        if (res.n_io_remove || res.n_io_add || res.n_mmio_remove || res.n_mmio_add) {
                r = load_ranges(l);
                if (r < 0)
                        return proto_reply_error(l->sock, r, "device has no valid ranges after the config write");
        }
        return proto_send(l->sock, PROTO_REPLY_CONFIG_WRITE, &res, sizeof(res), NULL, 0);
}

static int handle_pci_mapping(struct device_loop *l, const struct proto_msg *m) {
        struct proto_bool b = {};
        bool ok = false;
        int r;

        if (!l->kind->init_pci_config_mapping)
                return reply_unsupported(l, PROTO_INIT_PCI_CONFIG_MAPPING);
        r = l->kind->init_pci_config_mapping(l->dev, m->fds[0], m->body.pci_mapping.base, m->body.pci_mapping.len,
                                             &ok);
        if (r < 0)
                return reply_failure(l, PROTO_INIT_PCI_CONFIG_MAPPING, r, NULL);
        b.value = ok;
        return proto_send(l->sock, PROTO_REPLY_BOOL, &b, sizeof(b), NULL, 0);
}

static int handle_write_virtual_config(struct device_loop *l, const struct proto_u32 *u) {
        int r;

        if (!l->kind->write_virtual_config)
                return reply_unsupported(l, PROTO_WRITE_VIRTUAL_CONFIG);
        r = l->kind->write_virtual_config(l->dev, u->reg, u->value);
        if (r < 0)
                return reply_failure(l, PROTO_WRITE_VIRTUAL_CONFIG, r, NULL);
        return reply_ok(l);
}

static int handle_snapshot(struct device_loop *l) {
        _cleanup_free_ char *json = NULL;
        char err[PROTO_ERROR_MAX] = "";
        size_t n;
        int r;

        if (!l->kind->snapshot)
                return reply_unsupported(l, PROTO_SNAPSHOT);
        r = l->kind->snapshot(l->dev, &json, err, sizeof(err));
        if (r < 0)
                return reply_failure(l, PROTO_SNAPSHOT, r, err);
        n = json ? strlen(json) : 0;
        if (n == 0 || n > PROTO_TEXT_MAX)
                return proto_reply_error(l->sock, EMSGSIZE, "Snapshot failed: %zu bytes of state, limit %zu", n,
                                         (size_t) PROTO_TEXT_MAX);
        return proto_send(l->sock, PROTO_REPLY_SNAPSHOT, json, n, NULL, 0);
}

static int handle_restore(struct device_loop *l, const struct proto_msg *m) {
        char err[PROTO_ERROR_MAX] = "";
        int r;

        if (!l->kind->restore)
                return reply_unsupported(l, PROTO_RESTORE);
        r = l->kind->restore(l->dev, m->text, err, sizeof(err));
        if (r < 0)
                return reply_failure(l, PROTO_RESTORE, r, err);
        return reply_ok(l);
}

/* Sleep and Wake are a state of the loop, so a second Sleep is refused
 * whatever the kind; the kind's own op (if any) runs on each change. */
static int handle_sleep_wake(struct device_loop *l, unsigned type) {
        bool sleep = type == PROTO_SLEEP;
        int (*op)(void *, char *, size_t) = sleep ? l->kind->sleep : l->kind->wake;
        char err[PROTO_ERROR_MAX] = "";
        int r;

        if (l->asleep == sleep)
                return proto_reply_error(l->sock, EALREADY, "%s failed: device is %s already",
                                         proto_type_to_string(type), sleep ? "asleep" : "awake");
        if (op) {
                r = op(l->dev, err, sizeof(err));
                if (r < 0)
                        return reply_failure(l, type, r, err);
        }
        l->asleep = sleep;
        return reply_ok(l);
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
        return reply_ok(l);
}

static int handle_get_ioevents(struct device_loop *l) {
        struct proto_ioevents e = {};
        int r;

        if (!l->kind->get_ioevents)
                return reply_unsupported(l, PROTO_GET_IOEVENTS);
        r = l->kind->get_ioevents(l->dev, &e);
        if (r < 0)
                return reply_failure(l, PROTO_GET_IOEVENTS, r, NULL);
        return proto_send(l->sock, PROTO_REPLY_IOEVENTS, &e, sizeof(e), NULL, 0);
}

static int handle_get_msi_routes(struct device_loop *l) {
        struct proto_msi_routes routes = {};
        int r;

        if (!l->kind->get_msi_routes)
                return reply_unsupported(l, PROTO_GET_MSI_ROUTES);
        r = l->kind->get_msi_routes(l->dev, &routes);
        if (r < 0)
                return reply_failure(l, PROTO_GET_MSI_ROUTES, r, NULL);
        return proto_send(l->sock, PROTO_REPLY_MSI_ROUTES, &routes, sizeof(routes), NULL, 0);
}

static int handle_activate(struct device_loop *l) {
        int r;

        if (l->active) {
                /* The endpoint is an fd and may have been copied; the first
                 * Activate bound the device, and it stays bound. */
                log_warning("Refusing a second Activate: the device is bound to its first owner.");
                return proto_reply_error(l->sock, EALREADY, "device is already active");
        }
        r = load_ranges(l);
        if (r < 0)
                return proto_reply_error(l->sock, r, "device has no valid ranges");
        l->active = true;
        log_debug("Activated.");
        if (l->activated)
                l->activated(l->activated_userdata);
        return reply_ok(l);
}

int device_loop_handle(struct device_loop *l, struct proto_msg *m) {
        unsigned type = m->hdr.type;
        int r;

        if (type == PROTO_ACTIVATE)
                return handle_activate(l);
        if (type >= PROTO_REPLY_OK)
                return proto_reply_error(l->sock, EBADMSG, "%s is a reply, not a request", proto_type_to_string(type));
        if (!l->active) {
                /* Requests without a reply get none here either: an answer
                 * would be read as the reply to the sender's next call. */
                if (type == PROTO_WRITE || type == PROTO_DESTROY_DEVICE) {
                        log_warning("Dropped %s before Activate.", proto_type_to_string(type));
                        return 0;
                }
                return proto_reply_error(l->sock, EPERM, "%s before Activate", proto_type_to_string(type));
        }

        switch (type) {
        case PROTO_READ:
                return handle_read(l, &m->body.access);
        case PROTO_WRITE:
                return handle_write(l, &m->body.access);
        case PROTO_READ_CONFIG:
        case PROTO_READ_VIRTUAL_CONFIG:
                return handle_read_config(l, type, m->body.u32.reg);
        case PROTO_WRITE_CONFIG:
                return handle_write_config(l, &m->body.config_write);
        case PROTO_INIT_PCI_CONFIG_MAPPING:
                return handle_pci_mapping(l, m);
        case PROTO_WRITE_VIRTUAL_CONFIG:
                return handle_write_virtual_config(l, &m->body.u32);
        case PROTO_GET_RANGES:
                return proto_send(l->sock, PROTO_REPLY_RANGES, &l->ranges, sizeof(l->ranges), NULL, 0);
        case PROTO_SNAPSHOT:
                return handle_snapshot(l);
        case PROTO_RESTORE:
                return handle_restore(l, m);
        case PROTO_SLEEP:
        case PROTO_WAKE:
                return handle_sleep_wake(l, type);
        case PROTO_ATTACH_FD:
                return handle_attach_fd(l, m);
        case PROTO_GET_IOEVENTS:
                return handle_get_ioevents(l);
        case PROTO_GET_MSI_ROUTES:
                return handle_get_msi_routes(l);
        case PROTO_SHUTDOWN:
                /* Ok means: everything the device held is released. */
                if (l->kind->destroy_device)
                        l->kind->destroy_device(l->dev);
                r = reply_ok(l);
                return r < 0 ? r : 1;
        case PROTO_DESTROY_DEVICE:
                if (l->kind->destroy_device)
                        l->kind->destroy_device(l->dev);
                return 1;
        default:
                return reply_unsupported(l, type);
        }
}

int device_loop_run(int sock, const struct device_kind *kind, void *dev, device_loop_activated_t activated,
                    void *userdata) {
        struct device_loop l;

        device_loop_init(&l, sock, kind, dev);
        l.activated = activated;
        l.activated_userdata = userdata;
        for (;;) {
                struct pollfd p[2] = { { .fd = sock, .events = POLLIN } };
                int efd = l.active && !l.asleep && kind->event_fd ? kind->event_fd(dev) : -1;
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
                } else if (r == -ENOMEM)
                        r = proto_reply_error(sock, ENOMEM, "out of memory");
                else if (r < 0)
                        return log_error_errno(r, "Failed to receive: %m");
                else {
                        r = device_loop_handle(&l, &m);
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
