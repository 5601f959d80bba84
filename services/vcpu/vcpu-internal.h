/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the engine's files share about a vCPU. Fields read by the bus
 * (main) thread while the vCPU thread runs are atomics. */

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "emulate.h"
#include "vcpu.h"

enum vcpu_state {
        VCPU_STATE_CREATED,
        VCPU_STATE_RUNNING,
        VCPU_STATE_PAUSED,
        VCPU_STATE_STOPPED,
        _VCPU_STATE_MAX,
};

/* Exit counters are indexed by KVM exit reason; KVM_RUN returning EAGAIN
 * (a woken AP) and reasons past the table have their own slots. */
#define VCPU_EXIT_REASONS 40
#define VCPU_COUNT_EAGAIN VCPU_EXIT_REASONS
#define VCPU_COUNT_OTHER (VCPU_EXIT_REASONS + 1)
#define _VCPU_COUNT_MAX (VCPU_EXIT_REASONS + 2)

struct vcpu {
        unsigned index; /* 'u' property: read by sd-bus through its offset */
        unsigned n_vcpus;
        int fd;
        struct kvm_run *run;
        size_t run_size;

        void *mem;
        uint64_t mem_size;

        const struct vcpu_ops *ops;
        void *userdata;

        pthread_t thread;
        bool thread_started;

        /* lock/cond guard the pause handshake and state changes; the
         * flags are also read lock-free before each KVM_RUN. */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        atomic_bool pause_requested;
        atomic_bool stop_requested;
        atomic_bool exit_requested; /* vcpu_request_exit(): call ops->user_stop before re-entering */
        _Atomic int state; /* enum vcpu_state */

        _Atomic uint64_t exit_counts[_VCPU_COUNT_MAX];
        _Atomic uint64_t emulated[_EMULATE_INSN_MAX];

        sd_bus_slot *slot;
};

const char *vcpu_state_to_string(enum vcpu_state s);
/* "io", "mmio", "hlt", ...; NULL for a counter slot with no name. */
const char *vcpu_exit_count_name(unsigned slot);

/* cpu-setup.c: CPUID, LAPIC, MSRs, FPU, and the boot registers or the
 * wait-for-SIPI state, on a fresh vCPU fd. */
int vcpu_setup(struct vcpu *v, int kvm_fd, const struct boot_entry *entry);

/* vcpu.c: the struct alone, no KVM; vcpu_new adds the fd and kvm_run. */
int vcpu_alloc(unsigned index, unsigned n_vcpus, void *mem, uint64_t mem_size, const struct vcpu_ops *ops,
               void *userdata, struct vcpu **ret);

/* run.c */
struct exit_result {
        enum vcpu_exit_kind kind;
        char detail[256];
};

/* Dispatches the exit in v->run. Returns 0 to run the guest again, 1 to
 * stop with res filled; *pending says KVM must be re-entered to finish it. */
int vcpu_handle_exit(struct vcpu *v, struct exit_result *res, bool *pending);

void *vcpu_thread(void *arg);
void vcpu_kick(struct vcpu *v);
int vcpu_signal_init(void);
