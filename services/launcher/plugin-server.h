/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The launcher's side of a plugin VM's sockets (lib/plugin-proto.h): it
 * owns the connections (the main socket, extra connections, one socket per
 * vCPU), checks what only the launcher can know (object ids, vCPU numbers,
 * overlaps, whether a vCPU is stopped) and turns each request into a call
 * of struct plugin_vm_ops, which the launcher implements with KVM. It never
 * touches KVM itself, so it is tested with a fake ops table.
 *
 * Objects (io events, memory regions, irq events) share one id space: ids
 * count up from 1 and are not reused while the server lives, a destroy
 * calls the remove op with exactly what the add op got, and
 * plugin_server_free() removes whatever is still live. Unknown ids get
 * ENOENT; a request the parser rejects gets EBADMSG; a value the parser
 * cannot judge (a vCPU number, a memfd too short) gets EINVAL; overlaps
 * EEXIST; state requests on a running vCPU EBUSY; a missing op EOPNOTSUPP.
 *
 * Threads: everything runs on the thread that calls plugin_server_process()
 * (the launcher's main loop), except plugin_server_vcpu_event(), which a
 * vCPU thread calls when its vCPU stops for the plugin. Each vCPU's state is
 * under its own lock; the vcpu_* ops are called with that lock held, while
 * the vCPU thread waits for vcpu_resume (so they may use the vCPU fd), and
 * must not wait for the vCPU thread themselves. The other ops are called
 * with no lock held. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin-proto.h"

#define PLUGIN_SERVER_MAX_OBJECTS 4096
#define PLUGIN_SERVER_MAX_RANGES 256
#define PLUGIN_SERVER_MAX_EXTRA_CONNECTIONS 16

/* Every op returns 0 or -errno (sent to the plugin as its error); a NULL op
 * makes its requests fail with EOPNOTSUPP. The fds are the server's: an op
 * that keeps one dups it. */
struct plugin_vm_ops {
        /* KVM_IOEVENTFD (assign / deassign) for e, signalling eventfd. */
        int (*add_io_event)(void *userdata, uint32_t id, const struct plugin_io_event *e, int eventfd);
        int (*remove_io_event)(void *userdata, uint32_t id, const struct plugin_io_event *e, int eventfd);
        /* Maps size bytes of memfd from offset at guest_address
         * (KVM_SET_USER_MEMORY_REGION); the server has checked alignment, the
         * memfd's size and overlaps with the plugin's other regions. */
        int (*add_memory)(void *userdata, uint32_t id, const struct plugin_memory *m, int memfd);
        int (*remove_memory)(void *userdata, uint32_t id, const struct plugin_memory *m);
        /* KVM_GET_DIRTY_LOG into bitmap (len bytes: one bit per page, rounded up to 64 bits). */
        int (*get_dirty_log)(void *userdata, uint32_t id, const struct plugin_memory *m, uint8_t *bitmap, size_t len);
        /* KVM_IRQFD (assign / deassign); resample_fd is -1 unless PLUGIN_IRQ_RESAMPLE. */
        int (*add_irq_event)(void *userdata, uint32_t id, uint32_t irq, int eventfd, int resample_fd);
        int (*remove_irq_event)(void *userdata, uint32_t id, uint32_t irq, int eventfd, int resample_fd);
        int (*set_irq_line)(void *userdata, uint32_t irq, bool level);
        int (*get_clock)(void *userdata, uint64_t *ret_clock, uint32_t *ret_flags);
        int (*set_clock)(void *userdata, uint64_t clock);
        /* Returns once every vCPU in mask is out of the guest; they stay out
         * until resume_vcpus. mask only names existing vCPUs. */
        int (*pause_vcpus)(void *userdata, uint64_t mask);
        int (*resume_vcpus)(void *userdata, uint64_t mask);
        /* Accesses in r now exit to the plugin (and no longer after unreserve). */
        int (*reserve_range)(void *userdata, const struct plugin_range *r);
        int (*unreserve_range)(void *userdata, const struct plugin_range *r);
        /* PLUGIN_FEATURE_* the launcher supports on this host. */
        uint64_t (*get_features)(void *userdata);

        /* vCPU cpu, stopped at an event the plugin has received. */
        int (*vcpu_get_regs)(void *userdata, unsigned cpu, struct kvm_regs *ret);
        int (*vcpu_set_regs)(void *userdata, unsigned cpu, const struct kvm_regs *regs);
        int (*vcpu_get_sregs)(void *userdata, unsigned cpu, struct kvm_sregs *ret);
        int (*vcpu_set_sregs)(void *userdata, unsigned cpu, const struct kvm_sregs *sregs);
        int (*vcpu_get_fpu)(void *userdata, unsigned cpu, struct kvm_fpu *ret);
        int (*vcpu_set_fpu)(void *userdata, unsigned cpu, const struct kvm_fpu *fpu);
        int (*vcpu_get_lapic)(void *userdata, unsigned cpu, struct kvm_lapic_state *ret);
        int (*vcpu_set_lapic)(void *userdata, unsigned cpu, const struct kvm_lapic_state *lapic);
        /* Fills entries[i].data for each entries[i].index. */
        int (*vcpu_get_msrs)(void *userdata, unsigned cpu, struct plugin_msr *entries, uint32_t n);
        int (*vcpu_set_msrs)(void *userdata, unsigned cpu, const struct plugin_msr *entries, uint32_t n);
        /* Up to max entries, their number in *ret_n. */
        int (*vcpu_get_cpuid)(void *userdata, unsigned cpu, struct kvm_cpuid_entry2 *entries, uint32_t max,
                              uint32_t *ret_n);
        int (*vcpu_set_cpuid)(void *userdata, unsigned cpu, const struct kvm_cpuid_entry2 *entries, uint32_t n);
        /* Lets the stopped vCPU go on; for an IO/MMIO read, data holds its
         * len bytes (the server has checked len against the event). */
        int (*vcpu_resume)(void *userdata, unsigned cpu, const uint8_t *data, uint32_t len);
        /* The vCPU may be running: kick it out of the guest (immediate_exit
         * plus a signal) so that it reports IMMEDIATE_EXIT, or PAUSED with
         * user. Must not wait for it. */
        int (*vcpu_request_exit)(void *userdata, unsigned cpu);
        int (*vcpu_pause)(void *userdata, unsigned cpu, uint64_t user);
};

struct plugin_server;

/* A server for n_vcpus (1..PLUGIN_MAX_VCPUS) vCPUs; *ret_plugin_fd is the
 * plugin's end of the main socket (close-on-exec; the spawner makes it the
 * plugin's POLYVM_PLUGIN_FD). */
int plugin_server_new(const struct plugin_vm_ops *ops, void *userdata, unsigned n_vcpus,
                      struct plugin_server **ret, int *ret_plugin_fd);

/* Removes every live object and reservation through the ops, then closes
 * every connection. Returns NULL. */
struct plugin_server *plugin_server_free(struct plugin_server *s);

/* An fd (epoll) that is readable when plugin_server_process() has work. */
int plugin_server_fd(const struct plugin_server *s);

/* Waits up to timeout_ms (0: not at all, <0: forever) and serves one
 * request from each connection that has one. A hang-up or transport error
 * on a connection drops that connection only (logged); a vCPU whose socket
 * went away keeps its pending event for the next GET_VCPU_SOCKET. Returns
 * 0, or -ECONNRESET once the main socket is gone (the VM must stop). */
int plugin_server_process(struct plugin_server *s, int timeout_ms);

/* vCPU thread: vCPU cpu stopped for the plugin (INIT before it first
 * runs, an IO/MMIO access in a reserved range, HLT, ...). The event goes to
 * the plugin's WAIT now or when it asks; the vCPU must then stay stopped
 * until the vcpu_resume op. -EBUSY if cpu already has an event not resumed,
 * -EINVAL for a bad cpu or an event the protocol cannot carry. */
int plugin_server_vcpu_event(struct plugin_server *s, unsigned cpu, const struct plugin_event *ev);

/* For tests and the VM's bus properties. */
size_t plugin_server_n_objects(const struct plugin_server *s);
size_t plugin_server_n_connections(const struct plugin_server *s);
bool plugin_server_main_connected(const struct plugin_server *s);
