/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A fake of the launcher's plugin_vm_ops for the plugin tests: it records
 * every call in a log, keeps the state a KVM VM would (objects, memory
 * mappings, vCPU registers), and can be told to fail the next call. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "plugin-server.h"

#define FAKE_MAX_MEMORY 8
#define FAKE_LOG_MAX 16384

struct fake_memory {
        uint32_t id;
        struct plugin_memory m;
        uint8_t *map; /* the memfd mapped, as the launcher would */
};

struct fake_vm {
        char log[FAKE_LOG_MAX]; /* one line per call: "name arg=value ..." */
        int fail_next;          /* if set, the next op returns -fail_next */
        uint64_t features;

        int live_io_events, live_irq_events, live_ranges;
        struct fake_memory memory[FAKE_MAX_MEMORY];
        unsigned n_memory;

        uint64_t clock;
        uint64_t paused_mask;
        uint32_t irq_level[PLUGIN_MAX_IRQ];

        struct kvm_regs regs;
        struct kvm_sregs sregs;
        struct kvm_fpu fpu;
        struct kvm_lapic_state lapic;
        uint64_t msr_value; /* every MSR reads index ^ msr_value */
        struct plugin_msr last_msrs[PLUGIN_MAX_MSRS];
        uint32_t n_last_msrs;
        struct kvm_cpuid_entry2 cpuid[PLUGIN_MAX_CPUID];
        uint32_t n_cpuid;

        /* vcpu_resume: what the plugin answered; a "vCPU thread" waits on cond. */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned resumes;
        uint8_t resume_data[8];
        uint32_t resume_len;
        unsigned exit_requests;
        uint64_t pause_user;
};

extern const struct plugin_vm_ops fake_ops;

void fake_vm_init(struct fake_vm *f);
void fake_vm_done(struct fake_vm *f);
/* Whether the log has a line starting with prefix. */
bool fake_vm_called(const struct fake_vm *f, const char *prefix);
/* Waits (up to 5 s) until resumes > seen; returns the new count or 0. */
unsigned fake_vm_wait_resume(struct fake_vm *f, unsigned seen);

/* A plugin server with the fake ops, served on a thread of its own until
 * the plugin's main socket hangs up or the server fails. */
struct fake_server {
        struct fake_vm fake;
        struct plugin_server *s;
        pthread_t thread;
        atomic_int result;
};

/* Returns the plugin's end of the main socket (the caller passes it on
 * and closes it), or -errno. */
int fake_server_new(struct fake_server *sv);
/* Starts serving; -errno if the thread cannot start. */
int fake_server_start(struct fake_server *sv);
/* Waits for the serving to end, frees everything, and returns what ended
 * it: -ECONNRESET when the plugin's end hung up. */
int fake_server_finish(struct fake_server *sv);
