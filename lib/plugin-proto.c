/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "plugin-proto.h"

static_assert(sizeof(struct plugin_io_event) == 32, "wire layout");
static_assert(sizeof(struct plugin_memory) == 32, "wire layout");
static_assert(sizeof(struct plugin_range) == 24, "wire layout");
static_assert(sizeof(struct plugin_event) == 40, "wire layout");
static_assert(sizeof(struct plugin_resume) == 16, "wire layout");
static_assert(sizeof(struct plugin_msr) == 16, "wire layout");
static_assert(sizeof(struct kvm_cpuid_entry2) == 40, "wire layout");
static_assert(offsetof(struct plugin_msrs, entries) == 8, "wire layout");
static_assert(offsetof(struct plugin_cpuid, entries) == 8, "wire layout");
static_assert(offsetof(struct plugin_dirty_log, bitmap) == 8, "wire layout");
static_assert(sizeof(struct proto_header) + sizeof(struct plugin_dirty_log) < PROTO_PACKET_MAX, "fits a packet");

/* What each type carries: a fixed body, or (var) an 8-byte prefix whose
 * count says the rest; and how many fds. Anything else is malformed. */
struct plugin_type_info {
        const char *name;
        size_t body_len; /* exact, or the prefix of a variable body */
        bool var;
        unsigned fds_min, fds_max;
};

#define FIXED(n, t, f) { n, sizeof(t), false, f, f }
#define EMPTY(n) { n, 0, false, 0, 0 }
#define VAR(n) { n, 8, true, 0, 0 }

static const struct plugin_type_info *plugin_type_info(unsigned type) {
        static const struct plugin_type_info main_requests[_PLUGIN_MAIN_MAX] = {
                [PLUGIN_CREATE_IO_EVENT] = FIXED("CreateIoEvent", struct plugin_io_event, 0),
                [PLUGIN_CREATE_MEMORY] = FIXED("CreateMemory", struct plugin_memory, 1),
                [PLUGIN_CREATE_IRQ_EVENT] = FIXED("CreateIrqEvent", struct plugin_irq_event, 0),
                [PLUGIN_DESTROY] = FIXED("Destroy", struct plugin_id, 0),
                [PLUGIN_GET_DIRTY_LOG] = FIXED("GetDirtyLog", struct plugin_id, 0),
                [PLUGIN_SET_IRQ_LINE] = FIXED("SetIrqLine", struct plugin_irq_line, 0),
                [PLUGIN_GET_CLOCK] = EMPTY("GetClock"),
                [PLUGIN_SET_CLOCK] = FIXED("SetClock", struct plugin_clock, 0),
                [PLUGIN_PAUSE_VCPUS] = FIXED("PauseVcpus", struct plugin_vcpu_mask, 0),
                [PLUGIN_RESUME_VCPUS] = FIXED("ResumeVcpus", struct plugin_vcpu_mask, 0),
                [PLUGIN_GET_FEATURES] = EMPTY("GetFeatures"),
                [PLUGIN_RESERVE_RANGE] = FIXED("ReserveRange", struct plugin_range, 0),
                [PLUGIN_UNRESERVE_RANGE] = FIXED("UnreserveRange", struct plugin_range, 0),
                [PLUGIN_OPEN_CONNECTION] = EMPTY("OpenConnection"),
                [PLUGIN_GET_VCPU_SOCKET] = FIXED("GetVcpuSocket", struct plugin_vcpu_index, 0),
        };
        static const struct plugin_type_info vcpu_requests[_PLUGIN_VCPU_MAX - PLUGIN_VCPU_WAIT] = {
#define V(t) [(t) - PLUGIN_VCPU_WAIT]
                V(PLUGIN_VCPU_WAIT) = EMPTY("VcpuWait"),
                V(PLUGIN_VCPU_RESUME) = FIXED("VcpuResume", struct plugin_resume, 0),
                V(PLUGIN_VCPU_GET_REGS) = EMPTY("VcpuGetRegs"),
                V(PLUGIN_VCPU_SET_REGS) = FIXED("VcpuSetRegs", struct kvm_regs, 0),
                V(PLUGIN_VCPU_GET_SREGS) = EMPTY("VcpuGetSregs"),
                V(PLUGIN_VCPU_SET_SREGS) = FIXED("VcpuSetSregs", struct kvm_sregs, 0),
                V(PLUGIN_VCPU_GET_FPU) = EMPTY("VcpuGetFpu"),
                V(PLUGIN_VCPU_SET_FPU) = FIXED("VcpuSetFpu", struct kvm_fpu, 0),
                V(PLUGIN_VCPU_GET_MSRS) = VAR("VcpuGetMsrs"),
                V(PLUGIN_VCPU_SET_MSRS) = VAR("VcpuSetMsrs"),
                V(PLUGIN_VCPU_GET_CPUID) = EMPTY("VcpuGetCpuid"),
                V(PLUGIN_VCPU_SET_CPUID) = VAR("VcpuSetCpuid"),
                V(PLUGIN_VCPU_GET_LAPIC) = EMPTY("VcpuGetLapic"),
                V(PLUGIN_VCPU_SET_LAPIC) = FIXED("VcpuSetLapic", struct kvm_lapic_state, 0),
                V(PLUGIN_VCPU_REQUEST_EXIT) = EMPTY("VcpuRequestExit"),
                V(PLUGIN_VCPU_PAUSE) = FIXED("VcpuPause", struct plugin_pause, 0),
#undef V
        };
        static const struct plugin_type_info replies[_PLUGIN_REPLY_MAX - PLUGIN_REPLY_OK] = {
#define R(t) [(t) - PLUGIN_REPLY_OK]
                R(PLUGIN_REPLY_OK) = EMPTY("Ok"),
                R(PLUGIN_REPLY_ERROR) = FIXED("Error", struct plugin_error, 0),
                R(PLUGIN_REPLY_ID) = { "Id", sizeof(struct plugin_id), false, 0, 2 },
                R(PLUGIN_REPLY_FD) = { "Fd", 0, false, 1, 1 },
                R(PLUGIN_REPLY_DIRTY_LOG) = VAR("DirtyLog"),
                R(PLUGIN_REPLY_CLOCK) = FIXED("Clock", struct plugin_clock, 0),
                R(PLUGIN_REPLY_FEATURES) = FIXED("Features", struct plugin_features, 0),
                R(PLUGIN_REPLY_EVENT) = FIXED("Event", struct plugin_event, 0),
                R(PLUGIN_REPLY_REGS) = FIXED("Regs", struct kvm_regs, 0),
                R(PLUGIN_REPLY_SREGS) = FIXED("Sregs", struct kvm_sregs, 0),
                R(PLUGIN_REPLY_FPU) = FIXED("Fpu", struct kvm_fpu, 0),
                R(PLUGIN_REPLY_MSRS) = VAR("Msrs"),
                R(PLUGIN_REPLY_CPUID) = VAR("Cpuid"),
                R(PLUGIN_REPLY_LAPIC) = FIXED("Lapic", struct kvm_lapic_state, 0),
#undef R
        };

        if (type >= PLUGIN_CREATE_IO_EVENT && type < _PLUGIN_MAIN_MAX)
                return &main_requests[type];
        if (type >= PLUGIN_VCPU_WAIT && type < _PLUGIN_VCPU_MAX)
                return &vcpu_requests[type - PLUGIN_VCPU_WAIT];
        if (type >= PLUGIN_REPLY_OK && type < _PLUGIN_REPLY_MAX)
                return &replies[type - PLUGIN_REPLY_OK];
        return NULL;
}

const char *plugin_proto_type_to_string(unsigned type) {
        const struct plugin_type_info *i = plugin_type_info(type);
        return i ? i->name : "unknown";
}

bool plugin_proto_is_main_request(unsigned type) {
        return type >= PLUGIN_CREATE_IO_EVENT && type < _PLUGIN_MAIN_MAX;
}

bool plugin_proto_is_vcpu_request(unsigned type) {
        return type >= PLUGIN_VCPU_WAIT && type < _PLUGIN_VCPU_MAX;
}

unsigned plugin_proto_reply_type(unsigned request) {
        switch (request) {
        case PLUGIN_CREATE_IO_EVENT:
        case PLUGIN_CREATE_MEMORY:
        case PLUGIN_CREATE_IRQ_EVENT:
                return PLUGIN_REPLY_ID;
        case PLUGIN_GET_DIRTY_LOG:
                return PLUGIN_REPLY_DIRTY_LOG;
        case PLUGIN_GET_CLOCK:
                return PLUGIN_REPLY_CLOCK;
        case PLUGIN_GET_FEATURES:
                return PLUGIN_REPLY_FEATURES;
        case PLUGIN_OPEN_CONNECTION:
        case PLUGIN_GET_VCPU_SOCKET:
                return PLUGIN_REPLY_FD;
        case PLUGIN_VCPU_WAIT:
                return PLUGIN_REPLY_EVENT;
        case PLUGIN_VCPU_GET_REGS:
                return PLUGIN_REPLY_REGS;
        case PLUGIN_VCPU_GET_SREGS:
                return PLUGIN_REPLY_SREGS;
        case PLUGIN_VCPU_GET_FPU:
                return PLUGIN_REPLY_FPU;
        case PLUGIN_VCPU_GET_MSRS:
                return PLUGIN_REPLY_MSRS;
        case PLUGIN_VCPU_GET_CPUID:
                return PLUGIN_REPLY_CPUID;
        case PLUGIN_VCPU_GET_LAPIC:
                return PLUGIN_REPLY_LAPIC;
        default:
                if (plugin_proto_is_main_request(request) || plugin_proto_is_vcpu_request(request))
                        return PLUGIN_REPLY_OK;
                return 0;
        }
}

int plugin_proto_send(int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds) {
        struct proto_header hdr = {
                .magic = PLUGIN_PROTO_MAGIC,
                .version = PLUGIN_PROTO_VERSION,
                .type = type,
        };

        if (n_fds > PLUGIN_MAX_FDS)
                return -EINVAL;
        return proto_send_packet(sock, &hdr, body, len, fds, n_fds);
}

int plugin_proto_send_error(int sock, int error) {
        struct plugin_error e = { .error = error < 0 ? -error : error };

        if (e.error < 1 || e.error > 4095)
                e.error = EIO;
        return plugin_proto_send(sock, PLUGIN_REPLY_ERROR, &e, sizeof(e), NULL, 0);
}

static bool space_range_valid(uint32_t space, uint64_t start, uint64_t length) {
        if (start + length < start)
                return false;
        switch (space) {
        case PLUGIN_SPACE_PIO:
                return start + length <= 0x10000;
        case PLUGIN_SPACE_MMIO:
                return true;
        default:
                return false;
        }
}

static bool page_aligned(uint64_t v) {
        return (v & (PLUGIN_PAGE_SIZE - 1)) == 0;
}

static bool bytes_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

static bool io_event_valid(const struct plugin_io_event *e) {
        uint32_t l = e->length;

        if (l != 0 && l != 1 && l != 2 && l != 4 && l != 8)
                return false;
        if (e->reserved || e->datamatch > 1)
                return false;
        if (e->datamatch) {
                if (l == 0 || (l < 8 && (e->value >> (8 * l)) != 0))
                        return false;
        } else if (e->value != 0)
                return false;
        return space_range_valid(e->space, e->address, l ? l : 1);
}

bool plugin_proto_event_valid(const struct plugin_event *e) {
        if (e->reserved || e->is_write > 1)
                return false;
        if (e->kind != PLUGIN_EVENT_PAUSED && e->user)
                return false;
        switch (e->kind) {
        case PLUGIN_EVENT_IO:
                if (e->size != 1 && e->size != 2 && e->size != 4)
                        return false;
                break;
        case PLUGIN_EVENT_MMIO:
                if (e->size < 1 || e->size > 8)
                        return false;
                break;
        case PLUGIN_EVENT_INIT:
        case PLUGIN_EVENT_HLT:
        case PLUGIN_EVENT_SHUTDOWN:
        case PLUGIN_EVENT_PAUSED:
        case PLUGIN_EVENT_IMMEDIATE_EXIT:
                return !e->is_write && !e->address && !e->size && bytes_zero(e->data, sizeof(e->data));
        default:
                return false;
        }
        if (!space_range_valid(e->kind == PLUGIN_EVENT_IO ? PLUGIN_SPACE_PIO : PLUGIN_SPACE_MMIO, e->address,
                               e->size))
                return false;
        /* A write carries size bytes; a read carries none. */
        return bytes_zero(e->data + (e->is_write ? e->size : 0), sizeof(e->data) - (e->is_write ? e->size : 0));
}

/* The exact length of a variable body from its prefix, or 0 if the count
 * is out of range. */
static size_t var_body_len(const struct plugin_msg *m) {
        uint32_t count;

        switch (m->hdr.type) {
        case PLUGIN_VCPU_GET_MSRS:
        case PLUGIN_VCPU_SET_MSRS:
        case PLUGIN_REPLY_MSRS:
                count = m->body.msrs.count;
                if (count < 1 || count > PLUGIN_MAX_MSRS || m->body.msrs.reserved)
                        return 0;
                return 8 + count * sizeof(struct plugin_msr);
        case PLUGIN_VCPU_SET_CPUID:
        case PLUGIN_REPLY_CPUID:
                count = m->body.cpuid.count;
                if (count > PLUGIN_MAX_CPUID || m->body.cpuid.reserved)
                        return 0;
                return 8 + count * sizeof(struct kvm_cpuid_entry2);
        case PLUGIN_REPLY_DIRTY_LOG:
                count = m->body.dirty_log.length;
                if (m->body.dirty_log.id == 0 || count > PLUGIN_DIRTY_LOG_MAX || count % 8 != 0)
                        return 0;
                return 8 + count;
        default:
                return 0;
        }
}

/* Range checks on fixed bodies, so that no reader indexes past a buffer
 * and no enum escapes. */
static bool body_valid(const struct plugin_msg *m) {
        const typeof(m->body) *b = &m->body;

        switch (m->hdr.type) {
        case PLUGIN_CREATE_IO_EVENT:
                return io_event_valid(&b->io_event);
        case PLUGIN_CREATE_MEMORY: {
                const struct plugin_memory *r = &b->memory;
                if (r->reserved || (r->flags & ~(uint32_t) _PLUGIN_MEMORY_FLAGS) || r->size == 0)
                        return false;
                if (!page_aligned(r->offset) || !page_aligned(r->guest_address) || !page_aligned(r->size))
                        return false;
                if (r->guest_address + r->size < r->guest_address || r->offset + r->size < r->offset)
                        return false;
                return !(r->flags & PLUGIN_MEMORY_DIRTY_LOG) || r->size <= PLUGIN_DIRTY_LOG_MAX_REGION;
        }
        case PLUGIN_CREATE_IRQ_EVENT:
                return b->irq_event.irq < PLUGIN_MAX_IRQ && (b->irq_event.flags & ~(uint32_t) PLUGIN_IRQ_RESAMPLE) == 0;
        case PLUGIN_DESTROY:
        case PLUGIN_GET_DIRTY_LOG:
        case PLUGIN_REPLY_ID:
                return b->id.id != 0 && b->id.reserved == 0;
        case PLUGIN_SET_IRQ_LINE:
                return b->irq_line.irq < PLUGIN_MAX_IRQ && b->irq_line.level <= 1;
        case PLUGIN_SET_CLOCK:
                return b->clock.flags == 0 && b->clock.reserved == 0;
        case PLUGIN_REPLY_CLOCK:
                return (b->clock.flags & ~(uint32_t) PLUGIN_CLOCK_STABLE) == 0 && b->clock.reserved == 0;
        case PLUGIN_PAUSE_VCPUS:
        case PLUGIN_RESUME_VCPUS:
                return b->vcpu_mask.mask != 0;
        case PLUGIN_RESERVE_RANGE:
        case PLUGIN_UNRESERVE_RANGE:
                return b->range.reserved == 0 && b->range.length != 0 &&
                       space_range_valid(b->range.space, b->range.start, b->range.length);
        case PLUGIN_GET_VCPU_SOCKET:
                return b->vcpu_index.index < PLUGIN_MAX_VCPUS && b->vcpu_index.reserved == 0;
        case PLUGIN_REPLY_ERROR:
                return b->error.error >= 1 && b->error.error <= 4095 && b->error.reserved == 0;
        case PLUGIN_REPLY_EVENT:
                return plugin_proto_event_valid(&b->event);
        case PLUGIN_VCPU_RESUME:
                return b->resume.length <= 8 && b->resume.reserved == 0 &&
                       bytes_zero(b->resume.data + b->resume.length, 8 - b->resume.length);
        case PLUGIN_VCPU_GET_MSRS:
                for (uint32_t i = 0; i < b->msrs.count; i++)
                        if (b->msrs.entries[i].data || b->msrs.entries[i].reserved)
                                return false;
                return true;
        case PLUGIN_VCPU_SET_MSRS:
        case PLUGIN_REPLY_MSRS:
                for (uint32_t i = 0; i < b->msrs.count; i++)
                        if (b->msrs.entries[i].reserved)
                                return false;
                return true;
        default:
                return true;
        }
}

static void plugin_msg_init(struct plugin_msg *m) {
        memset(&m->hdr, 0, sizeof(m->hdr));
        m->n_fds = 0;
        for (unsigned i = 0; i < PLUGIN_MAX_FDS; i++)
                m->fds[i] = -1;
}

int plugin_proto_parse(const void *buf, size_t len, const int *fds, size_t n_fds, struct plugin_msg *m) {
        const struct plugin_type_info *info;
        const uint8_t *body;

        plugin_msg_init(m);
        for (size_t i = 0; i < n_fds; i++) {
                if (m->n_fds < PLUGIN_MAX_FDS)
                        m->fds[m->n_fds++] = fds[i];
                else
                        safe_close(fds[i]);
        }

        if (len < sizeof(struct proto_header) || n_fds > PLUGIN_MAX_FDS)
                goto bad;
        memcpy(&m->hdr, buf, sizeof(m->hdr));
        if (m->hdr.magic != PLUGIN_PROTO_MAGIC || m->hdr.version != PLUGIN_PROTO_VERSION || m->hdr.reserved)
                goto bad;
        info = plugin_type_info(m->hdr.type);
        if (!info)
                goto bad;
        if (m->hdr.length != len - sizeof(struct proto_header) || m->hdr.length > sizeof(m->body))
                goto bad;
        if (m->n_fds < info->fds_min || m->n_fds > info->fds_max)
                goto bad;
        body = (const uint8_t *) buf + sizeof(struct proto_header);

        if (info->var) {
                if (m->hdr.length < info->body_len)
                        goto bad;
                /* Only what the packet fills is copied; readers stay within the count. */
                memcpy(&m->body, body, m->hdr.length);
                if (var_body_len(m) != m->hdr.length)
                        goto bad;
        } else {
                if (m->hdr.length != info->body_len)
                        goto bad;
                memcpy(&m->body, body, m->hdr.length);
        }
        if (!body_valid(m))
                goto bad;
        return 0;

bad:
        plugin_msg_done(m);
        memset(&m->hdr, 0, sizeof(m->hdr));
        return -EBADMSG;
}

int plugin_proto_recv(int sock, struct plugin_msg *m, int timeout_ms) {
        uint8_t buf[PROTO_PACKET_MAX + 1];
        int fds[PROTO_MAX_FDS + 1];
        size_t n_fds = 0;
        ssize_t n;

        plugin_msg_init(m);
        n = proto_recv_packet(sock, buf, sizeof(buf), fds, &n_fds, timeout_ms);
        if (n < 0)
                return (int) n;
        return plugin_proto_parse(buf, (size_t) n, fds, n_fds, m);
}

void plugin_msg_done(struct plugin_msg *m) {
        for (unsigned i = 0; i < PLUGIN_MAX_FDS; i++)
                m->fds[i] = safe_close(m->fds[i]);
        m->n_fds = 0;
}

/* The fds an ID reply brings, as the request asked. */
static unsigned id_reply_fds(uint16_t type, const void *body, size_t len) {
        const struct plugin_irq_event *e = body;

        switch (type) {
        case PLUGIN_CREATE_IO_EVENT:
                return 1;
        case PLUGIN_CREATE_IRQ_EVENT:
                return len == sizeof(*e) && (e->flags & PLUGIN_IRQ_RESAMPLE) ? 2 : 1;
        default:
                return 0;
        }
}

int plugin_proto_call(int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds,
                      struct plugin_msg *reply, int timeout_ms) {
        unsigned want = plugin_proto_reply_type(type);
        int r;

        plugin_msg_init(reply);
        if (want == 0)
                return -EINVAL;
        r = plugin_proto_send(sock, type, body, len, fds, n_fds);
        if (r < 0)
                return r;
        r = plugin_proto_recv(sock, reply, timeout_ms);
        if (r < 0)
                return r;
        if (reply->hdr.type == PLUGIN_REPLY_ERROR) {
                r = -reply->body.error.error;
                plugin_msg_done(reply);
                return r;
        }
        if (reply->hdr.type != want || (want == PLUGIN_REPLY_ID && reply->n_fds != id_reply_fds(type, body, len))) {
                plugin_msg_done(reply);
                return -EBADMSG;
        }
        return 0;
}
