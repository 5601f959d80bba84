/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libpolyvm-plugin: each call is one request and its reply on the handle's
 * socket (lib/plugin-proto.h). Requests are checked with the same parser
 * the launcher runs, so an argument the protocol cannot carry is -EINVAL
 * here rather than EBADMSG from the other side. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "macro.h"
#include "plugin-proto.h"
#include "polyvm/plugin.h"

static_assert(sizeof(struct kvm_msr_entry) == sizeof(struct plugin_msr), "MSR entries travel as KVM's");
static_assert(POLYVM_DIRTY_LOG_MAX == PLUGIN_DIRTY_LOG_MAX, "public limits match the protocol");
static_assert(POLYVM_MAX_MSRS == PLUGIN_MAX_MSRS && POLYVM_MAX_CPUID == PLUGIN_MAX_CPUID, "limits");
static_assert(POLYVM_MAX_VCPUS == PLUGIN_MAX_VCPUS, "limits");
static_assert((int) POLYVM_VCPU_EVENT_IMMEDIATE_EXIT == (int) PLUGIN_EVENT_IMMEDIATE_EXIT, "event kinds");
static_assert(POLYVM_FEATURE_MMIO_RESERVE == PLUGIN_FEATURE_MMIO_RESERVE, "feature bits");

struct polyvm_plugin {
        int fd;
};

struct polyvm_vcpu {
        int fd;
};

/* The calls block until the launcher answers: a launcher that goes away
 * hangs up, which ends the wait. */
#define CALL_TIMEOUT_MS (-1)

static int request_check(uint16_t type, const void *body, size_t len, size_t n_fds) {
        uint8_t buf[sizeof(struct proto_header) + sizeof(struct plugin_cpuid)];
        struct proto_header hdr = {
                .magic = PLUGIN_PROTO_MAGIC,
                .version = PLUGIN_PROTO_VERSION,
                .type = type,
                .length = (uint32_t) len,
        };
        int none[PLUGIN_MAX_FDS] = { -1, -1 };
        struct plugin_msg m;

        assert(len <= sizeof(buf) - sizeof(hdr) && n_fds <= PLUGIN_MAX_FDS);
        memcpy(buf, &hdr, sizeof(hdr));
        if (len > 0)
                memcpy(buf + sizeof(hdr), body, len);
        if (plugin_proto_parse(buf, sizeof(hdr) + len, none, n_fds, &m) < 0)
                return -EINVAL;
        plugin_msg_done(&m);
        return 0;
}

static int call(int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds,
                struct plugin_msg *reply) {
        int r = request_check(type, body, len, n_fds);
        if (r < 0)
                return r;
        return plugin_proto_call(sock, type, body, len, fds, n_fds, reply, CALL_TIMEOUT_MS);
}

/* For requests answered by OK. */
static int call_ok(int sock, uint16_t type, const void *body, size_t len) {
        struct plugin_msg reply;
        int r = call(sock, type, body, len, NULL, 0, &reply);
        if (r < 0)
                return r;
        plugin_msg_done(&reply);
        return 0;
}

int polyvm_plugin_connect_fd(int fd, struct polyvm_plugin **ret) {
        struct polyvm_plugin *p;
        int type = 0;
        socklen_t l = sizeof(type);

        if (!ret) {
                safe_close(fd);
                return -EINVAL;
        }
        if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0 || type != SOCK_SEQPACKET) {
                safe_close(fd);
                return -EBADF;
        }
        p = malloc(sizeof(*p));
        if (!p) {
                safe_close(fd);
                return -ENOMEM;
        }
        (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
        p->fd = fd;
        *ret = p;
        return 0;
}

int polyvm_plugin_connect(struct polyvm_plugin **ret) {
        const char *e = getenv(POLYVM_PLUGIN_FD_ENV);
        char *end;
        long fd;

        if (!e || !*e)
                return -ENXIO;
        errno = 0;
        fd = strtol(e, &end, 10);
        if (errno != 0 || *end || fd < 0 || fd > INT32_MAX)
                return -EBADF;
        unsetenv(POLYVM_PLUGIN_FD_ENV);
        return polyvm_plugin_connect_fd((int) fd, ret);
}

void polyvm_plugin_free(struct polyvm_plugin *p) {
        if (!p)
                return;
        safe_close(p->fd);
        free(p);
}

/* The socket an FD reply carries. */
static int call_fd(int sock, uint16_t type, const void *body, size_t len, int *ret_fd) {
        struct plugin_msg reply;
        int r = call(sock, type, body, len, NULL, 0, &reply);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(reply.fds[0]);
        plugin_msg_done(&reply);
        return 0;
}

int polyvm_plugin_open_connection(struct polyvm_plugin *p, struct polyvm_plugin **ret) {
        int fd = -1, r;

        if (!p || !ret)
                return -EINVAL;
        r = call_fd(p->fd, PLUGIN_OPEN_CONNECTION, NULL, 0, &fd);
        if (r < 0)
                return r;
        return polyvm_plugin_connect_fd(fd, ret);
}

int polyvm_plugin_get_features(struct polyvm_plugin *p, uint64_t *ret) {
        struct plugin_msg reply;
        int r;

        if (!p || !ret)
                return -EINVAL;
        r = call(p->fd, PLUGIN_GET_FEATURES, NULL, 0, NULL, 0, &reply);
        if (r < 0)
                return r;
        *ret = reply.body.features.features;
        plugin_msg_done(&reply);
        return 0;
}

/* An ID reply: the id and the fds it brought, as the request asked. */
static int call_create(int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds,
                       uint32_t *ret_id, int *ret_fd0, int *ret_fd1) {
        struct plugin_msg reply;
        int r = call(sock, type, body, len, fds, n_fds, &reply);
        if (r < 0)
                return r;
        if (ret_id)
                *ret_id = reply.body.id.id;
        if (ret_fd0)
                *ret_fd0 = TAKE_FD(reply.fds[0]);
        if (ret_fd1)
                *ret_fd1 = TAKE_FD(reply.fds[1]);
        plugin_msg_done(&reply);
        return 0;
}

int polyvm_plugin_create_io_event(struct polyvm_plugin *p, enum polyvm_space space, uint64_t address,
                                  uint32_t length, bool datamatch, uint64_t value, uint32_t *ret_id,
                                  int *ret_eventfd) {
        struct plugin_io_event e = {
                .space = space,
                .length = length,
                .address = address,
                .datamatch = datamatch,
                .value = value,
        };

        if (!p || !ret_eventfd)
                return -EINVAL;
        return call_create(p->fd, PLUGIN_CREATE_IO_EVENT, &e, sizeof(e), NULL, 0, ret_id, ret_eventfd, NULL);
}

int polyvm_plugin_create_memory(struct polyvm_plugin *p, int memfd, uint64_t offset, uint64_t guest_address,
                                uint64_t size, uint32_t flags, uint32_t *ret_id) {
        struct plugin_memory m = {
                .offset = offset,
                .guest_address = guest_address,
                .size = size,
                .flags = flags,
        };

        if (!p || memfd < 0)
                return -EINVAL;
        return call_create(p->fd, PLUGIN_CREATE_MEMORY, &m, sizeof(m), &memfd, 1, ret_id, NULL, NULL);
}

int polyvm_plugin_create_irq_event(struct polyvm_plugin *p, uint32_t irq, uint32_t flags, uint32_t *ret_id,
                                   int *ret_eventfd, int *ret_resample_fd) {
        struct plugin_irq_event e = { .irq = irq, .flags = flags };

        if (!p || !ret_eventfd || ((flags & POLYVM_IRQ_RESAMPLE) && !ret_resample_fd))
                return -EINVAL;
        if (ret_resample_fd)
                *ret_resample_fd = -1;
        return call_create(p->fd, PLUGIN_CREATE_IRQ_EVENT, &e, sizeof(e), NULL, 0, ret_id, ret_eventfd,
                           ret_resample_fd);
}

int polyvm_plugin_destroy(struct polyvm_plugin *p, uint32_t id) {
        struct plugin_id b = { .id = id };

        if (!p)
                return -EINVAL;
        return call_ok(p->fd, PLUGIN_DESTROY, &b, sizeof(b));
}

int polyvm_plugin_get_dirty_log(struct polyvm_plugin *p, uint32_t id, void *bitmap, size_t size, size_t *ret_len) {
        struct plugin_id b = { .id = id };
        struct plugin_msg reply;
        int r;

        if (!p || !bitmap || !ret_len)
                return -EINVAL;
        r = call(p->fd, PLUGIN_GET_DIRTY_LOG, &b, sizeof(b), NULL, 0, &reply);
        if (r < 0)
                return r;
        if (reply.body.dirty_log.length > size)
                r = -ENOBUFS;
        else {
                memcpy(bitmap, reply.body.dirty_log.bitmap, reply.body.dirty_log.length);
                *ret_len = reply.body.dirty_log.length;
        }
        plugin_msg_done(&reply);
        return r;
}

int polyvm_plugin_set_irq_line(struct polyvm_plugin *p, uint32_t irq, bool level) {
        struct plugin_irq_line b = { .irq = irq, .level = level };

        if (!p)
                return -EINVAL;
        return call_ok(p->fd, PLUGIN_SET_IRQ_LINE, &b, sizeof(b));
}

int polyvm_plugin_get_clock(struct polyvm_plugin *p, uint64_t *ret_clock, uint32_t *ret_flags) {
        struct plugin_msg reply;
        int r;

        if (!p || !ret_clock)
                return -EINVAL;
        r = call(p->fd, PLUGIN_GET_CLOCK, NULL, 0, NULL, 0, &reply);
        if (r < 0)
                return r;
        *ret_clock = reply.body.clock.clock;
        if (ret_flags)
                *ret_flags = reply.body.clock.flags;
        plugin_msg_done(&reply);
        return 0;
}

int polyvm_plugin_set_clock(struct polyvm_plugin *p, uint64_t clock) {
        struct plugin_clock b = { .clock = clock };

        if (!p)
                return -EINVAL;
        return call_ok(p->fd, PLUGIN_SET_CLOCK, &b, sizeof(b));
}

int polyvm_plugin_pause_vcpus(struct polyvm_plugin *p, uint64_t mask) {
        struct plugin_vcpu_mask b = { .mask = mask };

        if (!p)
                return -EINVAL;
        return call_ok(p->fd, PLUGIN_PAUSE_VCPUS, &b, sizeof(b));
}

int polyvm_plugin_resume_vcpus(struct polyvm_plugin *p, uint64_t mask) {
        struct plugin_vcpu_mask b = { .mask = mask };

        if (!p)
                return -EINVAL;
        return call_ok(p->fd, PLUGIN_RESUME_VCPUS, &b, sizeof(b));
}

static int range_call(struct polyvm_plugin *p, uint16_t type, enum polyvm_space space, uint64_t start,
                      uint64_t length) {
        struct plugin_range b = { .space = space, .start = start, .length = length };

        if (!p)
                return -EINVAL;
        return call_ok(p->fd, type, &b, sizeof(b));
}

int polyvm_plugin_reserve_range(struct polyvm_plugin *p, enum polyvm_space space, uint64_t start, uint64_t length) {
        return range_call(p, PLUGIN_RESERVE_RANGE, space, start, length);
}

int polyvm_plugin_unreserve_range(struct polyvm_plugin *p, enum polyvm_space space, uint64_t start,
                                  uint64_t length) {
        return range_call(p, PLUGIN_UNRESERVE_RANGE, space, start, length);
}

int polyvm_plugin_get_vcpu(struct polyvm_plugin *p, unsigned index, struct polyvm_vcpu **ret) {
        struct plugin_vcpu_index b = { .index = index };
        struct polyvm_vcpu *v;
        int fd = -1, r;

        if (!p || !ret || index >= PLUGIN_MAX_VCPUS)
                return -EINVAL;
        v = malloc(sizeof(*v));
        if (!v)
                return -ENOMEM;
        r = call_fd(p->fd, PLUGIN_GET_VCPU_SOCKET, &b, sizeof(b), &fd);
        if (r < 0) {
                free(v);
                return r;
        }
        v->fd = fd;
        *ret = v;
        return 0;
}

void polyvm_vcpu_free(struct polyvm_vcpu *v) {
        if (!v)
                return;
        safe_close(v->fd);
        free(v);
}

int polyvm_vcpu_wait(struct polyvm_vcpu *v, struct polyvm_vcpu_event *ret) {
        struct plugin_msg reply;
        const struct plugin_event *e;
        int r;

        if (!v || !ret)
                return -EINVAL;
        r = call(v->fd, PLUGIN_VCPU_WAIT, NULL, 0, NULL, 0, &reply);
        if (r < 0)
                return r;
        e = &reply.body.event;
        *ret = (struct polyvm_vcpu_event) {
                .kind = (enum polyvm_vcpu_event_kind) e->kind,
                .is_write = e->is_write,
                .address = e->address,
                .size = e->size,
                .user = e->user,
        };
        memcpy(ret->data, e->data, sizeof(ret->data));
        plugin_msg_done(&reply);
        return 0;
}

int polyvm_vcpu_resume(struct polyvm_vcpu *v, const void *data, size_t len) {
        struct plugin_resume b = { .length = (uint32_t) len };

        if (!v || len > sizeof(b.data) || (len > 0 && !data))
                return -EINVAL;
        if (len > 0)
                memcpy(b.data, data, len);
        return call_ok(v->fd, PLUGIN_VCPU_RESUME, &b, sizeof(b));
}

/* A GET_ whose reply body is exactly *ret. */
static int vcpu_get(struct polyvm_vcpu *v, uint16_t type, void *ret, size_t size) {
        struct plugin_msg reply;
        int r;

        if (!v || !ret)
                return -EINVAL;
        r = call(v->fd, type, NULL, 0, NULL, 0, &reply);
        if (r < 0)
                return r;
        memcpy(ret, &reply.body, size);
        plugin_msg_done(&reply);
        return 0;
}

static int vcpu_set(struct polyvm_vcpu *v, uint16_t type, const void *state, size_t size) {
        if (!v || !state)
                return -EINVAL;
        return call_ok(v->fd, type, state, size);
}

int polyvm_vcpu_get_regs(struct polyvm_vcpu *v, struct kvm_regs *ret) {
        return vcpu_get(v, PLUGIN_VCPU_GET_REGS, ret, sizeof(*ret));
}

int polyvm_vcpu_set_regs(struct polyvm_vcpu *v, const struct kvm_regs *regs) {
        return vcpu_set(v, PLUGIN_VCPU_SET_REGS, regs, sizeof(*regs));
}

int polyvm_vcpu_get_sregs(struct polyvm_vcpu *v, struct kvm_sregs *ret) {
        return vcpu_get(v, PLUGIN_VCPU_GET_SREGS, ret, sizeof(*ret));
}

int polyvm_vcpu_set_sregs(struct polyvm_vcpu *v, const struct kvm_sregs *sregs) {
        return vcpu_set(v, PLUGIN_VCPU_SET_SREGS, sregs, sizeof(*sregs));
}

int polyvm_vcpu_get_fpu(struct polyvm_vcpu *v, struct kvm_fpu *ret) {
        return vcpu_get(v, PLUGIN_VCPU_GET_FPU, ret, sizeof(*ret));
}

int polyvm_vcpu_set_fpu(struct polyvm_vcpu *v, const struct kvm_fpu *fpu) {
        return vcpu_set(v, PLUGIN_VCPU_SET_FPU, fpu, sizeof(*fpu));
}

int polyvm_vcpu_get_lapic(struct polyvm_vcpu *v, struct kvm_lapic_state *ret) {
        return vcpu_get(v, PLUGIN_VCPU_GET_LAPIC, ret, sizeof(*ret));
}

int polyvm_vcpu_set_lapic(struct polyvm_vcpu *v, const struct kvm_lapic_state *lapic) {
        return vcpu_set(v, PLUGIN_VCPU_SET_LAPIC, lapic, sizeof(*lapic));
}

int polyvm_vcpu_get_msrs(struct polyvm_vcpu *v, struct kvm_msr_entry *entries, uint32_t n) {
        struct plugin_msrs b = { .count = n };
        struct plugin_msg reply;
        int r;

        if (!v || !entries || n < 1 || n > PLUGIN_MAX_MSRS)
                return -EINVAL;
        for (uint32_t i = 0; i < n; i++)
                b.entries[i] = (struct plugin_msr) { .index = entries[i].index };
        r = call(v->fd, PLUGIN_VCPU_GET_MSRS, &b, 8 + n * sizeof(struct plugin_msr), NULL, 0, &reply);
        if (r < 0)
                return r;
        if (reply.body.msrs.count != n)
                r = -EBADMSG;
        else
                for (uint32_t i = 0; i < n; i++)
                        entries[i].data = reply.body.msrs.entries[i].data;
        plugin_msg_done(&reply);
        return r;
}

int polyvm_vcpu_set_msrs(struct polyvm_vcpu *v, const struct kvm_msr_entry *entries, uint32_t n) {
        struct plugin_msrs b = { .count = n };

        if (!v || !entries || n < 1 || n > PLUGIN_MAX_MSRS)
                return -EINVAL;
        for (uint32_t i = 0; i < n; i++)
                b.entries[i] = (struct plugin_msr) { .index = entries[i].index, .data = entries[i].data };
        return call_ok(v->fd, PLUGIN_VCPU_SET_MSRS, &b, 8 + n * sizeof(struct plugin_msr));
}

int polyvm_vcpu_get_cpuid(struct polyvm_vcpu *v, struct kvm_cpuid_entry2 *entries, uint32_t max,
                          uint32_t *ret_n) {
        struct plugin_msg reply;
        int r;

        if (!v || !ret_n || (max > 0 && !entries))
                return -EINVAL;
        r = call(v->fd, PLUGIN_VCPU_GET_CPUID, NULL, 0, NULL, 0, &reply);
        if (r < 0)
                return r;
        if (reply.body.cpuid.count > max)
                r = -ENOBUFS;
        else {
                memcpy(entries, reply.body.cpuid.entries, reply.body.cpuid.count * sizeof(*entries));
                *ret_n = reply.body.cpuid.count;
        }
        plugin_msg_done(&reply);
        return r;
}

int polyvm_vcpu_set_cpuid(struct polyvm_vcpu *v, const struct kvm_cpuid_entry2 *entries, uint32_t n) {
        struct plugin_cpuid b = { .count = n };

        if (!v || (n > 0 && !entries) || n > PLUGIN_MAX_CPUID)
                return -EINVAL;
        if (n > 0)
                memcpy(b.entries, entries, n * sizeof(*entries));
        return call_ok(v->fd, PLUGIN_VCPU_SET_CPUID, &b, 8 + n * sizeof(*entries));
}

int polyvm_vcpu_request_exit(struct polyvm_vcpu *v) {
        if (!v)
                return -EINVAL;
        return call_ok(v->fd, PLUGIN_VCPU_REQUEST_EXIT, NULL, 0);
}

int polyvm_vcpu_pause(struct polyvm_vcpu *v, uint64_t user) {
        struct plugin_pause b = { .user = user };

        if (!v)
                return -EINVAL;
        return call_ok(v->fd, PLUGIN_VCPU_PAUSE, &b, sizeof(b));
}
