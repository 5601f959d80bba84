/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A vCPU's life: create the KVM vCPU and its kvm_run mapping, start the
 * thread, tear down. */

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "bus-util.h"
#include "cpu-state.h"
#include "log.h"
#include "vcpu-internal.h"

static const char *const state_names[_VCPU_STATE_MAX] = {
        [VCPU_STATE_CREATED] = "created",
        [VCPU_STATE_RUNNING] = "running",
        [VCPU_STATE_PAUSED] = "paused",
        [VCPU_STATE_STOPPED] = "stopped",
};

const char *vcpu_state_to_string(enum vcpu_state s) {
        if ((unsigned) s >= _VCPU_STATE_MAX)
                return NULL;
        return state_names[s];
}

/* Names of the x86 exits; the other architectures' reasons stay unnamed
 * and are counted as "other". */
static const char *const exit_count_names[_VCPU_COUNT_MAX] = {
        [KVM_EXIT_UNKNOWN] = "unknown",
        [KVM_EXIT_EXCEPTION] = "exception",
        [KVM_EXIT_IO] = "io",
        [KVM_EXIT_HYPERCALL] = "hypercall",
        [KVM_EXIT_DEBUG] = "debug",
        [KVM_EXIT_HLT] = "hlt",
        [KVM_EXIT_MMIO] = "mmio",
        [KVM_EXIT_IRQ_WINDOW_OPEN] = "irq-window-open",
        [KVM_EXIT_SHUTDOWN] = "shutdown",
        [KVM_EXIT_FAIL_ENTRY] = "fail-entry",
        [KVM_EXIT_INTR] = "intr",
        [KVM_EXIT_SET_TPR] = "set-tpr",
        [KVM_EXIT_TPR_ACCESS] = "tpr-access",
        [KVM_EXIT_NMI] = "nmi",
        [KVM_EXIT_INTERNAL_ERROR] = "internal-error",
        [KVM_EXIT_SYSTEM_EVENT] = "system-event",
        [KVM_EXIT_IOAPIC_EOI] = "ioapic-eoi",
        [KVM_EXIT_HYPERV] = "hyperv",
        [KVM_EXIT_X86_RDMSR] = "rdmsr",
        [KVM_EXIT_X86_WRMSR] = "wrmsr",
        [KVM_EXIT_DIRTY_RING_FULL] = "dirty-ring-full",
        [KVM_EXIT_AP_RESET_HOLD] = "ap-reset-hold",
        [KVM_EXIT_X86_BUS_LOCK] = "bus-lock",
        [KVM_EXIT_XEN] = "xen",
        [KVM_EXIT_NOTIFY] = "notify",
        [VCPU_COUNT_EAGAIN] = "eagain",
        [VCPU_COUNT_OTHER] = "other",
};

const char *vcpu_exit_count_name(unsigned slot) {
        if (slot >= _VCPU_COUNT_MAX)
                return NULL;
        return exit_count_names[slot];
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct vcpu *, vcpu_free);

int vcpu_alloc(unsigned index, unsigned n_vcpus, void *mem, uint64_t mem_size, const struct vcpu_ops *ops,
               void *userdata, struct vcpu **ret) {
        struct vcpu *v;
        int r;

        r = vcpu_signal_init();
        if (r < 0)
                return r;

        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        v->fd = -1;
        v->index = index;
        v->n_vcpus = n_vcpus;
        v->mem = mem;
        v->mem_size = mem ? mem_size : 0;
        v->ops = ops;
        v->userdata = userdata;
        pthread_mutex_init(&v->lock, NULL);
        pthread_cond_init(&v->cond, NULL);
        atomic_init(&v->state, (int) VCPU_STATE_CREATED);
        *ret = v;
        return 0;
}

int vcpu_new(int kvm_fd, int vm_fd, unsigned index, unsigned n_vcpus, const struct boot_entry *entry,
             void *mem, uint64_t mem_size, const struct vcpu_ops *ops, void *userdata, struct vcpu **ret) {
        _cleanup_(vcpu_freep) struct vcpu *v = NULL;
        void *run;
        int r, size;

        assert(kvm_fd >= 0);
        assert(vm_fd >= 0);
        assert(ret);

        if (n_vcpus == 0 || n_vcpus > CPU_STATE_MAX_VCPUS || index >= n_vcpus)
                return log_error_errno(EINVAL, "vCPU %u of %u: invalid index or count", index, n_vcpus);

        r = vcpu_alloc(index, n_vcpus, mem, mem_size, ops, userdata, &v);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate vCPU %u: %m", index);

        /* The vCPU id is its APIC id: the CPUID, the MADT and INIT/SIPI agree. */
        v->fd = ioctl(vm_fd, KVM_CREATE_VCPU, (unsigned long) index);
        if (v->fd < 0)
                return log_error_errno(errno, "Failed to create vCPU %u: %m", index);

        size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
        if (size < 0)
                return log_error_errno(errno, "Failed to get the kvm_run size: %m");
        if ((size_t) size < sizeof(struct kvm_run))
                return log_error_errno(EPROTO, "KVM's kvm_run area is %d bytes, smaller than struct kvm_run", size);

        run = mmap(NULL, (size_t) size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
        if (run == MAP_FAILED)
                return log_error_errno(errno, "Failed to map kvm_run of vCPU %u: %m", index);
        v->run = run;
        v->run_size = (size_t) size;

        r = vcpu_setup(v, kvm_fd, entry);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(v);
        return 0;
}

int vcpu_start(struct vcpu *v) {
        sigset_t all, saved;
        char name[16];
        int r;

        assert(v);

        pthread_mutex_lock(&v->lock);
        if (v->thread_started || atomic_load(&v->state) != VCPU_STATE_CREATED) {
                pthread_mutex_unlock(&v->lock);
                return log_error_errno(EALREADY, "vCPU %u was started or stopped already", v->index);
        }

        /* The thread starts with every signal blocked (the process's signals
         * are the main loop's) and unblocks only the kick. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        r = pthread_create(&v->thread, NULL, vcpu_thread, v);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r != 0) {
                pthread_mutex_unlock(&v->lock);
                return log_error_errno(r, "Failed to start the thread of vCPU %u: %m", v->index);
        }
        v->thread_started = true;
        pthread_mutex_unlock(&v->lock);

        snprintf(name, sizeof(name), "vcpu%u", v->index);
        (void) pthread_setname_np(v->thread, name);
        return 0;
}

int vcpu_fd(const struct vcpu *v) {
        return v->fd;
}

void vcpu_free(struct vcpu *v) {
        if (!v)
                return;

        vcpu_stop(v);
        if (v->thread_started) {
                assert(!pthread_equal(pthread_self(), v->thread));
                pthread_join(v->thread, NULL);
        }

        v->slot = sd_bus_slot_unref(v->slot);
        if (v->run)
                munmap(v->run, v->run_size);
        safe_close(v->fd);
        pthread_cond_destroy(&v->cond);
        pthread_mutex_destroy(&v->lock);
        free(v);
}
