/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: bytes -> the plugin protocol, both directions. Byte 0:
 * low 2 bits the number of fds (memfds of 64 KiB) sent with the packet, bit
 * 4 send it on vCPU 0's socket instead of the main one, bit 5 stop vCPU 0
 * at an INIT event first. The rest is one packet. It goes through
 * plugin_proto_parse() directly, and through a fresh plugin server (ops
 * that accept everything) over a socketpair; every packet the server sends
 * back must itself pass plugin_proto_parse() as a reply: the launcher never
 * emits what the plugin's library would reject. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "plugin-server.h"

static int ok_io(void *u, uint32_t id, const struct plugin_io_event *e, int fd) { return 0; }
static int ok_mem(void *u, uint32_t id, const struct plugin_memory *m, int fd) { return 0; }
static int ok_unmem(void *u, uint32_t id, const struct plugin_memory *m) { return 0; }
static int ok_dirty(void *u, uint32_t id, const struct plugin_memory *m, uint8_t *b, size_t len) {
        memset(b, 0xff, len);
        return 0;
}
static int ok_irq(void *u, uint32_t id, uint32_t irq, int fd, int rfd) { return 0; }
static int ok_line(void *u, uint32_t irq, bool level) { return 0; }
static int ok_get_clock(void *u, uint64_t *c, uint32_t *f) { *c = 1; *f = UINT32_MAX; return 0; }
static int ok_u64(void *u, uint64_t v) { return 0; }
static int ok_range(void *u, const struct plugin_range *r) { return 0; }
static uint64_t all_features(void *u) { return UINT64_MAX; }
#define STATE(name, type)                                                               \
        static int get_##name(void *u, unsigned cpu, type *p) { memset(p, 0, sizeof(*p)); return 0; } \
        static int set_##name(void *u, unsigned cpu, const type *p) { return 0; }
STATE(regs, struct kvm_regs)
STATE(sregs, struct kvm_sregs)
STATE(fpu, struct kvm_fpu)
STATE(lapic, struct kvm_lapic_state)
static int ok_msrs(void *u, unsigned cpu, struct plugin_msr *e, uint32_t n) { return 0; }
static int ok_set_msrs(void *u, unsigned cpu, const struct plugin_msr *e, uint32_t n) { return 0; }
static int ok_get_cpuid(void *u, unsigned cpu, struct kvm_cpuid_entry2 *e, uint32_t max, uint32_t *n) {
        memset(e, 0, sizeof(*e) * 3);
        *n = 3;
        return 0;
}
static int ok_set_cpuid(void *u, unsigned cpu, const struct kvm_cpuid_entry2 *e, uint32_t n) { return 0; }
static int ok_resume(void *u, unsigned cpu, const uint8_t *d, uint32_t len) { return 0; }
static int ok_cpu(void *u, unsigned cpu) { return 0; }
static int ok_pause(void *u, unsigned cpu, uint64_t user) { return 0; }

static const struct plugin_vm_ops ops = {
        .add_io_event = ok_io, .remove_io_event = ok_io,
        .add_memory = ok_mem, .remove_memory = ok_unmem, .get_dirty_log = ok_dirty,
        .add_irq_event = ok_irq, .remove_irq_event = ok_irq, .set_irq_line = ok_line,
        .get_clock = ok_get_clock, .set_clock = ok_u64,
        .pause_vcpus = ok_u64, .resume_vcpus = ok_u64,
        .reserve_range = ok_range, .unreserve_range = ok_range, .get_features = all_features,
        .vcpu_get_regs = get_regs, .vcpu_set_regs = set_regs,
        .vcpu_get_sregs = get_sregs, .vcpu_set_sregs = set_sregs,
        .vcpu_get_fpu = get_fpu, .vcpu_set_fpu = set_fpu,
        .vcpu_get_lapic = get_lapic, .vcpu_set_lapic = set_lapic,
        .vcpu_get_msrs = ok_msrs, .vcpu_set_msrs = ok_set_msrs,
        .vcpu_get_cpuid = ok_get_cpuid, .vcpu_set_cpuid = ok_set_cpuid,
        .vcpu_resume = ok_resume, .vcpu_request_exit = ok_cpu, .vcpu_pause = ok_pause,
};

static void send_raw(int sock, const uint8_t *buf, size_t len, const int *fds, size_t n_fds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 4)];
        } control = {};
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (n_fds > 0) {
                struct cmsghdr *c;
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        (void) sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Every packet the server sent must parse as a reply. */
static void drain_and_check(int sock) {
        static struct plugin_msg m;
        for (;;) {
                int r = plugin_proto_recv(sock, &m, 0);
                if (r == -EBADMSG)
                        __builtin_trap();
                if (r < 0)
                        break;
                if (m.hdr.type < PLUGIN_REPLY_OK)
                        __builtin_trap();
                plugin_msg_done(&m);
        }
}

static int get_vcpu_socket(struct plugin_server *s, int sock) {
        struct plugin_vcpu_index b = { .index = 0 };
        static struct plugin_msg m;
        int fd;

        if (plugin_proto_send(sock, PLUGIN_GET_VCPU_SOCKET, &b, sizeof(b), NULL, 0) < 0 ||
            plugin_server_process(s, 0) < 0 || plugin_proto_recv(sock, &m, 0) < 0 || m.hdr.type != PLUGIN_REPLY_FD)
                abort();
        fd = m.fds[0];
        m.fds[0] = -1;
        plugin_msg_done(&m);
        return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct plugin_msg m;
        struct plugin_server *s;
        int fds[3], sock, target, vsock = -1;
        size_t n_fds;

        if (size < 1)
                return 0;
        log_set_max_level(LOG_CRIT);
        n_fds = data[0] & 3;
        for (size_t i = 0; i < n_fds; i++) {
                fds[i] = memfd_create("fuzz", MFD_CLOEXEC);
                if (fds[i] < 0 || ftruncate(fds[i], 0x10000) < 0)
                        abort();
        }

        /* The parser alone: it owns (and closes) dups of the fds. */
        {
                int dups[3];
                for (size_t i = 0; i < n_fds; i++)
                        dups[i] = dup(fds[i]);
                if (plugin_proto_parse(data + 1, size - 1, dups, n_fds, &m) == 0) {
                        if (!plugin_proto_is_main_request(m.hdr.type) && !plugin_proto_is_vcpu_request(m.hdr.type) &&
                            m.hdr.type < PLUGIN_REPLY_OK)
                                __builtin_trap();
                        plugin_msg_done(&m);
                }
        }

        /* Through a server. */
        if (plugin_server_new(&ops, NULL, 2, &s, &sock) < 0)
                abort();
        target = sock;
        if (data[0] & 0x10) {
                vsock = get_vcpu_socket(s, sock);
                target = vsock;
                if (data[0] & 0x20) {
                        struct plugin_event init = { .kind = PLUGIN_EVENT_INIT };
                        struct plugin_msg *w = &m;
                        if (plugin_server_vcpu_event(s, 0, &init) < 0 ||
                            plugin_proto_send(vsock, PLUGIN_VCPU_WAIT, NULL, 0, NULL, 0) < 0 ||
                            plugin_server_process(s, 0) < 0 || plugin_proto_recv(vsock, w, 0) < 0)
                                abort();
                        plugin_msg_done(w);
                }
        }
        send_raw(target, data + 1, size - 1, fds, n_fds);
        (void) plugin_server_process(s, 0);
        drain_and_check(target);
        drain_and_check(sock);
        /* A vCPU event after whatever the packet did must still be deliverable. */
        if (vsock >= 0) {
                struct plugin_event hlt = { .kind = PLUGIN_EVENT_HLT };
                (void) plugin_server_vcpu_event(s, 0, &hlt);
                drain_and_check(vsock);
                close(vsock);
        }
        for (size_t i = 0; i < n_fds; i++)
                close(fds[i]);
        close(sock);
        plugin_server_free(s);
        return 0;
}
