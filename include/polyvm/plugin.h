/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libpolyvm-plugin: the client side of polyvm's plugin VMs.
 *
 * A plugin is a process that polyvm's launcher starts for a plugin VM
 * (config {"plugin": {"path": ..., "args": [...]}}). The launcher owns KVM
 * and the vCPU threads; the plugin emulates the devices: it creates guest
 * memory, io events and irq events, reserves the guest addresses whose
 * accesses it wants to see, and serves each vCPU's stops (IO/MMIO accesses
 * in reserved ranges, HLT, ...) on that vCPU's socket. The wire protocol is
 * described in docs/plugins.md.
 *
 * The launcher passes the plugin's main socket as an inherited fd whose
 * number is in the environment variable POLYVM_PLUGIN_FD;
 * polyvm_plugin_connect() picks it up.
 *
 * Files: the VM config's "plugin": {"files": [...]} are opened read-only by
 * the launcher and inherited by the plugin as fds 4, 5, ... in the order
 * the config lists them (fd 3 is the main socket); POLYVM_PLUGIN_FILES
 * holds their numbers, comma-separated ("4,5"), and is unset when there
 * are none. Each is a regular file the plugin may read (pread, fstat,
 * mmap without PROT_WRITE) but not write; the config's "args" name them as
 * the plugin expects, e.g. "fd:4". No other fd is open but 0..2.
 *
 * Conventions: every call returns 0 or a negative errno (-EINVAL for
 * arguments the protocol cannot carry, -ECONNRESET when the launcher is
 * gone, or the launcher's own error, e.g. -ENOENT for an unknown id, -EBUSY
 * for vCPU state while the vCPU runs). Handles are opaque; a handle is used
 * by one thread at a time (open more connections, or use one per vCPU, to
 * work from several threads). fds returned to the caller are close-on-exec
 * and the caller's to close. Compile with `pkg-config --cflags --libs
 * polyvm-plugin`. */

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POLYVM_PLUGIN_API __attribute__((visibility("default")))

/* The environment variable that holds the main socket's fd number. */
#define POLYVM_PLUGIN_FD_ENV "POLYVM_PLUGIN_FD"
/* The environment variable that lists the inherited files' fd numbers. */
#define POLYVM_PLUGIN_FILES_ENV "POLYVM_PLUGIN_FILES"

/* A connection of the plugin's to the launcher (main socket or an extra one). */
struct polyvm_plugin;
/* One vCPU's socket. */
struct polyvm_vcpu;

enum polyvm_space {
        POLYVM_SPACE_PIO = 0,  /* I/O ports, 0..0xFFFF */
        POLYVM_SPACE_MMIO = 1, /* guest physical addresses */
};

/* polyvm_plugin_create_memory() flags. */
#define POLYVM_MEMORY_READ_ONLY (1u << 0) /* guest writes exit as MMIO instead */
#define POLYVM_MEMORY_DIRTY_LOG (1u << 1) /* track written pages; regions up to 1 GiB */

/* polyvm_plugin_create_irq_event() flags. */
#define POLYVM_IRQ_RESAMPLE (1u << 0) /* level-triggered: also return a resample eventfd */

/* polyvm_plugin_get_clock() flags. */
#define POLYVM_CLOCK_STABLE (1u << 0)

/* polyvm_plugin_get_features() bits. */
#define POLYVM_FEATURE_IO_EVENT (1u << 0)
#define POLYVM_FEATURE_MEMORY (1u << 1)
#define POLYVM_FEATURE_IRQ_EVENT (1u << 2)
#define POLYVM_FEATURE_IRQ_RESAMPLE (1u << 3)
#define POLYVM_FEATURE_DIRTY_LOG (1u << 4)
#define POLYVM_FEATURE_READ_ONLY_MEMORY (1u << 5)
#define POLYVM_FEATURE_CLOCK (1u << 6)
#define POLYVM_FEATURE_IMMEDIATE_EXIT (1u << 7)
#define POLYVM_FEATURE_MMIO_RESERVE (1u << 8)

/* The largest bitmap polyvm_plugin_get_dirty_log() returns, in bytes. */
#define POLYVM_DIRTY_LOG_MAX 32768u
#define POLYVM_MAX_VCPUS 64
#define POLYVM_MAX_MSRS 64
#define POLYVM_MAX_CPUID 128

enum polyvm_vcpu_event_kind {
        POLYVM_VCPU_EVENT_INIT = 1,   /* before the vCPU first runs: set up its state */
        POLYVM_VCPU_EVENT_IO,         /* port access in a reserved range */
        POLYVM_VCPU_EVENT_MMIO,       /* memory access in a reserved range */
        POLYVM_VCPU_EVENT_HLT,        /* the vCPU halted; resuming ends its run */
        POLYVM_VCPU_EVENT_SHUTDOWN,   /* triple fault; resuming ends its run */
        POLYVM_VCPU_EVENT_PAUSED,     /* after polyvm_vcpu_pause(); user is its cookie */
        POLYVM_VCPU_EVENT_IMMEDIATE_EXIT, /* after polyvm_vcpu_request_exit() */
};

struct polyvm_vcpu_event {
        enum polyvm_vcpu_event_kind kind;
        bool is_write;    /* IO, MMIO */
        uint64_t address; /* IO: port; MMIO: guest physical address */
        uint32_t size;    /* IO: 1, 2, 4; MMIO: 1..8 */
        uint8_t data[8];  /* a write's size bytes */
        uint64_t user;    /* PAUSED */
};

/* Connects through the fd in $POLYVM_PLUGIN_FD (and unsets the variable, so
 * that the plugin's own children do not inherit the claim). -ENXIO if it is
 * not set, -EBADF if it is not a socket. */
POLYVM_PLUGIN_API int polyvm_plugin_connect(struct polyvm_plugin **ret);
/* The same with an explicit fd, which the handle then owns (also on failure). */
POLYVM_PLUGIN_API int polyvm_plugin_connect_fd(int fd, struct polyvm_plugin **ret);
/* Closes the connection. Closing the main socket ends the VM. NULL is fine. */
POLYVM_PLUGIN_API void polyvm_plugin_free(struct polyvm_plugin *p);
/* Another connection for main-socket calls (e.g. for a second thread). */
POLYVM_PLUGIN_API int polyvm_plugin_open_connection(struct polyvm_plugin *p, struct polyvm_plugin **ret);

/* POLYVM_FEATURE_* bits of this launcher on this host. */
POLYVM_PLUGIN_API int polyvm_plugin_get_features(struct polyvm_plugin *p, uint64_t *ret);

/* Objects share one id space (ids >= 1, not reused); polyvm_plugin_destroy()
 * undoes any of them. */

/* An eventfd the launcher signals when the guest writes length bytes (0:
 * any length) at address; with datamatch only when the value equals value. */
POLYVM_PLUGIN_API int polyvm_plugin_create_io_event(struct polyvm_plugin *p, enum polyvm_space space,
                                                    uint64_t address, uint32_t length, bool datamatch,
                                                    uint64_t value, uint32_t *ret_id, int *ret_eventfd);
/* Guest memory: size bytes of memfd from offset at guest_address (all page
 * aligned; the memfd must be that large). The plugin keeps its own mapping
 * of the memfd to read and write guest memory. */
POLYVM_PLUGIN_API int polyvm_plugin_create_memory(struct polyvm_plugin *p, int memfd, uint64_t offset,
                                                  uint64_t guest_address, uint64_t size, uint32_t flags,
                                                  uint32_t *ret_id);
/* An eventfd whose writes raise irq (a GSI); with POLYVM_IRQ_RESAMPLE also
 * a resample eventfd (ret_resample_fd may be NULL otherwise). */
POLYVM_PLUGIN_API int polyvm_plugin_create_irq_event(struct polyvm_plugin *p, uint32_t irq, uint32_t flags,
                                                     uint32_t *ret_id, int *ret_eventfd, int *ret_resample_fd);
POLYVM_PLUGIN_API int polyvm_plugin_destroy(struct polyvm_plugin *p, uint32_t id);
/* The pages written since the last call (one bit per 4 KiB page, in 64-bit
 * words) of a region created with POLYVM_MEMORY_DIRTY_LOG; *ret_len bytes
 * are written to bitmap. -ENOBUFS if size is too small. */
POLYVM_PLUGIN_API int polyvm_plugin_get_dirty_log(struct polyvm_plugin *p, uint32_t id, void *bitmap, size_t size,
                                                  size_t *ret_len);

POLYVM_PLUGIN_API int polyvm_plugin_set_irq_line(struct polyvm_plugin *p, uint32_t irq, bool level);
POLYVM_PLUGIN_API int polyvm_plugin_get_clock(struct polyvm_plugin *p, uint64_t *ret_clock, uint32_t *ret_flags);
POLYVM_PLUGIN_API int polyvm_plugin_set_clock(struct polyvm_plugin *p, uint64_t clock);
/* Holds the vCPUs in mask (bit n: vCPU n) out of the guest until resumed. */
POLYVM_PLUGIN_API int polyvm_plugin_pause_vcpus(struct polyvm_plugin *p, uint64_t mask);
POLYVM_PLUGIN_API int polyvm_plugin_resume_vcpus(struct polyvm_plugin *p, uint64_t mask);
/* Guest accesses in [start, start + length) reach the plugin as vCPU
 * events. -EEXIST if the range overlaps one already reserved; unreserve
 * takes exactly a reserved range. */
POLYVM_PLUGIN_API int polyvm_plugin_reserve_range(struct polyvm_plugin *p, enum polyvm_space space, uint64_t start,
                                                  uint64_t length);
POLYVM_PLUGIN_API int polyvm_plugin_unreserve_range(struct polyvm_plugin *p, enum polyvm_space space,
                                                    uint64_t start, uint64_t length);

/* vCPU index's socket; one at a time per vCPU (-EBUSY while one is open). */
POLYVM_PLUGIN_API int polyvm_plugin_get_vcpu(struct polyvm_plugin *p, unsigned index, struct polyvm_vcpu **ret);
POLYVM_PLUGIN_API void polyvm_vcpu_free(struct polyvm_vcpu *v);

/* Blocks until the vCPU stops for the plugin (the first time: INIT). The
 * vCPU then stays stopped until polyvm_vcpu_resume(). */
POLYVM_PLUGIN_API int polyvm_vcpu_wait(struct polyvm_vcpu *v, struct polyvm_vcpu_event *ret);
/* Lets it go on; for an IO/MMIO read, data holds exactly the event's size
 * bytes the guest reads, otherwise pass NULL, 0. */
POLYVM_PLUGIN_API int polyvm_vcpu_resume(struct polyvm_vcpu *v, const void *data, size_t len);

/* vCPU state, while the vCPU is stopped at an event (-EBUSY otherwise). */
POLYVM_PLUGIN_API int polyvm_vcpu_get_regs(struct polyvm_vcpu *v, struct kvm_regs *ret);
POLYVM_PLUGIN_API int polyvm_vcpu_set_regs(struct polyvm_vcpu *v, const struct kvm_regs *regs);
POLYVM_PLUGIN_API int polyvm_vcpu_get_sregs(struct polyvm_vcpu *v, struct kvm_sregs *ret);
POLYVM_PLUGIN_API int polyvm_vcpu_set_sregs(struct polyvm_vcpu *v, const struct kvm_sregs *sregs);
POLYVM_PLUGIN_API int polyvm_vcpu_get_fpu(struct polyvm_vcpu *v, struct kvm_fpu *ret);
POLYVM_PLUGIN_API int polyvm_vcpu_set_fpu(struct polyvm_vcpu *v, const struct kvm_fpu *fpu);
POLYVM_PLUGIN_API int polyvm_vcpu_get_lapic(struct polyvm_vcpu *v, struct kvm_lapic_state *ret);
POLYVM_PLUGIN_API int polyvm_vcpu_set_lapic(struct polyvm_vcpu *v, const struct kvm_lapic_state *lapic);
/* n (1..POLYVM_MAX_MSRS) entries: get fills each entry's data for its index. */
POLYVM_PLUGIN_API int polyvm_vcpu_get_msrs(struct polyvm_vcpu *v, struct kvm_msr_entry *entries, uint32_t n);
POLYVM_PLUGIN_API int polyvm_vcpu_set_msrs(struct polyvm_vcpu *v, const struct kvm_msr_entry *entries, uint32_t n);
/* Up to max entries (their number in *ret_n); set takes 0..POLYVM_MAX_CPUID. */
POLYVM_PLUGIN_API int polyvm_vcpu_get_cpuid(struct polyvm_vcpu *v, struct kvm_cpuid_entry2 *entries, uint32_t max,
                                            uint32_t *ret_n);
POLYVM_PLUGIN_API int polyvm_vcpu_set_cpuid(struct polyvm_vcpu *v, const struct kvm_cpuid_entry2 *entries,
                                            uint32_t n);

/* Before the next wait, while the vCPU runs: make it leave the guest as
 * soon as it can and report IMMEDIATE_EXIT, or PAUSED carrying user. */
POLYVM_PLUGIN_API int polyvm_vcpu_request_exit(struct polyvm_vcpu *v);
POLYVM_PLUGIN_API int polyvm_vcpu_pause(struct polyvm_vcpu *v, uint64_t user);

#ifdef __cplusplus
}
#endif
