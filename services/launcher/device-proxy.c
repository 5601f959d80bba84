/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "device-proxy.h"
#include "log.h"

int device_proxy_new(const char *kind, const char *object, pid_t pid, int endpoint, struct device_proxy **ret) {
        struct device_proxy *d;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->kind = strdup(kind);
        d->object = strdup(object);
        if (!d->kind || !d->object) {
                free(d->kind);
                free(d->object);
                free(d);
                return -ENOMEM;
        }
        d->pid = pid;
        d->endpoint = endpoint;
        d->notify_fd = -1;
        pthread_mutex_init(&d->lock, NULL);
        (void) device_proxy_set_timeout(d, PROTO_DEFAULT_TIMEOUT_MS);
        *ret = d;
        return 0;
}

int device_proxy_set_timeout(struct device_proxy *d, int timeout_ms) {
        struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };

        d->timeout_ms = timeout_ms;
        if (d->endpoint >= 0 && setsockopt(d->endpoint, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                return log_warning_errno(errno, "Failed to set the send timeout of device %s: %m", d->object);
        return 0;
}

void device_proxy_set_notify(struct device_proxy *d, int notify_fd) {
        d->notify_fd = notify_fd;
}

bool device_proxy_is_failed(struct device_proxy *d) {
        return atomic_load(&d->failed);
}

bool device_proxy_take_failure(struct device_proxy *d, const char **ret_reason) {
        if (d->reported || !atomic_load(&d->failed))
                return false;
        d->reported = true;
        *ret_reason = d->reason;
        return true;
}

struct device_proxy *device_proxy_free(struct device_proxy *d) {
        if (!d)
                return NULL;
        if (d->endpoint >= 0 && !atomic_load(&d->failing))
                (void) proto_send(d->endpoint, PROTO_DESTROY_DEVICE, NULL, 0, NULL, 0);
        safe_close(d->endpoint);
        pthread_mutex_destroy(&d->lock);
        free(d->kind);
        free(d->object);
        free(d);
        return NULL;
}

void device_proxy_fail(struct device_proxy *d, int r, const char *what) {
        if (atomic_exchange(&d->failing, true))
                return;
        snprintf(d->reason, sizeof(d->reason), "%s: %s", what,
                 r == -EAGAIN ? "send timed out" : strerror(r < 0 ? -r : r));
        atomic_store(&d->failed, true);
        log_error("Device %s (%s, pid %d) failed (%s); its reads now return all ones.", d->object, d->kind,
                  (int) d->pid, d->reason);
        if (d->notify_fd >= 0)
                (void) eventfd_write(d->notify_fd, 1);
}

int device_proxy_activate(struct device_proxy *d, char *err, size_t errlen) {
        struct proto_msg reply;
        char msg[PROTO_ERROR_MAX] = "";
        int r;

        pthread_mutex_lock(&d->lock);
        r = proto_call(d->endpoint, PROTO_ACTIVATE, NULL, 0, NULL, 0, &reply, d->timeout_ms, msg, sizeof(msg));
        if (r < 0) {
                snprintf(err, errlen, "device %s (%s): Activate failed: %s%s%s", d->object, d->kind, strerror(-r),
                         msg[0] ? ": " : "", msg);
                goto out;
        }
        proto_msg_done(&reply);

        r = proto_call(d->endpoint, PROTO_GET_RANGES, NULL, 0, NULL, 0, &reply, d->timeout_ms, msg, sizeof(msg));
        if (r < 0) {
                snprintf(err, errlen, "device %s (%s): GetRanges failed: %s%s%s", d->object, d->kind, strerror(-r),
                         msg[0] ? ": " : "", msg);
                goto out;
        }
        d->ranges = reply.body.ranges;
        proto_msg_done(&reply);
out:
        pthread_mutex_unlock(&d->lock);
        return r;
}

int device_proxy_attach_fd(struct device_proxy *d, enum proto_fd_role role, uint32_t arg, int fd) {
        struct proto_attach_fd body = { .role = role, .arg = arg };
        struct proto_msg reply;
        char msg[PROTO_ERROR_MAX] = "";
        int r;

        pthread_mutex_lock(&d->lock);
        r = proto_call(d->endpoint, PROTO_ATTACH_FD, &body, sizeof(body), &fd, 1, &reply, d->timeout_ms, msg,
                       sizeof(msg));
        pthread_mutex_unlock(&d->lock);
        if (r < 0)
                return log_error_errno(r, "Failed to attach fd (role %u) to device %s: %m%s%s", role, d->object,
                                       msg[0] ? ": " : "", msg);
        proto_msg_done(&reply);
        return 0;
}

void device_proxy_read(struct device_proxy *d, unsigned range, uint64_t addr, uint8_t *data, uint32_t len) {
        struct proto_access req = { .address = addr, .len = len, .range = range };
        struct proto_msg reply;
        int r;

        memset(data, 0xff, len);
        if (len == 0 || len > sizeof(req.data) || atomic_load(&d->failing))
                return;

        /* Under the lock: a config write on another vCPU may move ranges. */
        pthread_mutex_lock(&d->lock);
        if (range >= d->ranges.count) {
                pthread_mutex_unlock(&d->lock);
                return;
        }
        req.offset = addr - d->ranges.ranges[range].base;
        r = proto_call(d->endpoint, PROTO_READ, &req, sizeof(req), NULL, 0, &reply, d->timeout_ms, NULL, 0);
        pthread_mutex_unlock(&d->lock);
        if (r < 0) {
                /* The device refused this access and lives on: all ones, once. */
                if (reply.hdr.type != PROTO_REPLY_ERROR)
                        device_proxy_fail(d, r, "Read");
                return;
        }
        if (reply.body.data.len == len)
                memcpy(data, reply.body.data.data, len);
        proto_msg_done(&reply);
}

void device_proxy_write(struct device_proxy *d, unsigned range, uint64_t addr, const uint8_t *data, uint32_t len) {
        struct proto_access req = { .address = addr, .len = len, .range = range };
        int r;

        if (len == 0 || len > sizeof(req.data) || atomic_load(&d->failing))
                return;
        memcpy(req.data, data, len);

        pthread_mutex_lock(&d->lock);
        if (range >= d->ranges.count) {
                pthread_mutex_unlock(&d->lock);
                return;
        }
        req.offset = addr - d->ranges.ranges[range].base;
        r = proto_send(d->endpoint, PROTO_WRITE, &req, sizeof(req), NULL, 0);
        pthread_mutex_unlock(&d->lock);
        if (r < 0)
                device_proxy_fail(d, r, "Write");
}

int device_proxy_read_config(struct device_proxy *d, uint32_t reg, uint32_t *ret) {
        struct proto_u32 req = { .reg = reg };
        struct proto_msg reply;
        int r;

        *ret = UINT32_MAX;
        if (atomic_load(&d->failing))
                return -ENODEV;

        pthread_mutex_lock(&d->lock);
        r = proto_call(d->endpoint, PROTO_READ_CONFIG, &req, sizeof(req), NULL, 0, &reply, d->timeout_ms, NULL, 0);
        pthread_mutex_unlock(&d->lock);
        if (r < 0) {
                if (reply.hdr.type != PROTO_REPLY_ERROR)
                        device_proxy_fail(d, r, "ReadConfig");
                return r;
        }
        /* A reply for another register is no answer to this one. */
        if (reply.body.u32.reg == reg)
                *ret = reply.body.u32.value;
        else
                r = -EBADMSG;
        proto_msg_done(&reply);
        return r;
}

int device_proxy_write_config(struct device_proxy *d, uint32_t reg, uint32_t offset, uint32_t len,
                              const uint8_t *data, struct proto_config_result *ret, struct proto_ranges *ret_ranges) {
        struct proto_config_write req = { .reg = reg, .offset = offset, .len = len };
        struct proto_msg reply;
        int r;

        memset(ret, 0, sizeof(*ret));
        if (offset > 3 || len == 0 || len > 4 || offset + len > 4)
                return -EINVAL;
        if (atomic_load(&d->failing))
                return -ENODEV;
        memcpy(req.data, data, len);

        pthread_mutex_lock(&d->lock);
        r = proto_call(d->endpoint, PROTO_WRITE_CONFIG, &req, sizeof(req), NULL, 0, &reply, d->timeout_ms, NULL, 0);
        if (r < 0) {
                pthread_mutex_unlock(&d->lock);
                if (reply.hdr.type != PROTO_REPLY_ERROR)
                        device_proxy_fail(d, r, "WriteConfig");
                return r;
        }
        *ret = reply.body.config_result;
        proto_msg_done(&reply);

        /* Ranges moved: the device's list (and so the indices accesses
         * carry) changed with them; fetch it in the same critical section. */
        if (ret->n_io_remove || ret->n_io_add || ret->n_mmio_remove || ret->n_mmio_add) {
                r = proto_call(d->endpoint, PROTO_GET_RANGES, NULL, 0, NULL, 0, &reply, d->timeout_ms, NULL, 0);
                if (r < 0) {
                        pthread_mutex_unlock(&d->lock);
                        memset(ret, 0, sizeof(*ret));
                        if (reply.hdr.type != PROTO_REPLY_ERROR)
                                device_proxy_fail(d, r, "GetRanges");
                        return r;
                }
                d->ranges = reply.body.ranges;
                proto_msg_done(&reply);
        }
        if (ret_ranges)
                *ret_ranges = d->ranges;
        pthread_mutex_unlock(&d->lock);
        return 0;
}

/* A request without a body whose reply is copied whole into ret. */
static int device_proxy_query(struct device_proxy *d, uint16_t type, void *ret, size_t len) {
        struct proto_msg reply;
        int r;

        if (atomic_load(&d->failing))
                return -ENODEV;
        pthread_mutex_lock(&d->lock);
        r = proto_call(d->endpoint, type, NULL, 0, NULL, 0, &reply, d->timeout_ms, NULL, 0);
        pthread_mutex_unlock(&d->lock);
        if (r < 0) {
                if (reply.hdr.type != PROTO_REPLY_ERROR)
                        device_proxy_fail(d, r, proto_type_to_string(type));
                return r;
        }
        memcpy(ret, &reply.body, len);
        proto_msg_done(&reply);
        return 0;
}

int device_proxy_get_ioevents(struct device_proxy *d, struct proto_ioevents *ret) {
        return device_proxy_query(d, PROTO_GET_IOEVENTS, ret, sizeof(*ret));
}

int device_proxy_get_msi_routes(struct device_proxy *d, struct proto_msi_routes *ret) {
        return device_proxy_query(d, PROTO_GET_MSI_ROUTES, ret, sizeof(*ret));
}
