/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Applies the state built in cpu-state.c to a fresh vCPU through KVM. */

#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "cpu-state.h"
#include "log.h"
#include "vcpu-internal.h"

/* KVM holds at most a few hundred entries; the buffer grows on E2BIG. */
#define CPUID_ENTRIES_START 128
#define CPUID_ENTRIES_MAX 4096

static int kvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **ret) {
        for (size_t n = CPUID_ENTRIES_START; n <= CPUID_ENTRIES_MAX; n *= 2) {
                _cleanup_free_ struct kvm_cpuid2 *c = NULL;

                c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
                if (!c)
                        return -ENOMEM;
                c->nent = n;
                if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) >= 0) {
                        *ret = TAKE_PTR(c);
                        return 0;
                }
                if (errno != E2BIG)
                        return negative_errno();
        }
        return -E2BIG;
}

static int vcpu_setup_cpuid(struct vcpu *v, int kvm_fd, bool lapic) {
        _cleanup_free_ struct kvm_cpuid2 *c = NULL;
        int r;

        r = kvm_get_supported_cpuid(kvm_fd, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to get the CPUID KVM supports: %m");

        r = cpuid_adjust(c->entries, c->nent, v->index, v->n_vcpus);
        if (r < 0)
                return log_error_errno(r, "Failed to build CPUID for vCPU %u of %u: %m", v->index, v->n_vcpus);
        if (!lapic)
                cpuid_drop_x2apic(c->entries, c->nent);

        if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
                return log_error_errno(errno, "Failed to set CPUID of vCPU %u: %m", v->index);
        return 0;
}

static int vcpu_setup_lapic(struct vcpu *v) {
        struct kvm_lapic_state lapic = {};

        /* EINVAL here means the VM has no in-kernel irqchip. */
        if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
                return log_error_errno(errno, "Failed to read the LAPIC of vCPU %u (in-kernel irqchip missing?): %m",
                                       v->index);
        lapic_set_lint(&lapic);
        if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0)
                return log_error_errno(errno, "Failed to set the LAPIC LINT pins of vCPU %u: %m", v->index);
        return 0;
}

static int vcpu_setup_msrs(struct vcpu *v) {
        /* struct kvm_msrs ends in a flexible array: room for one entry. */
        union {
                struct kvm_msrs msrs;
                uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
        } u = {};
        struct kvm_msrs *msrs = &u.msrs;
        int r;

        msrs->nmsrs = 1;
        msrs->entries[0] = (struct kvm_msr_entry) { .index = MSR_IA32_MISC_ENABLE,
                                                    .data = MSR_IA32_MISC_ENABLE_FAST_STRING };

        /* Add fast strings to what KVM's reset put there (BTS and PEBS
         * unavailable, x86.c kvm_vcpu_reset) rather than clearing those:
         * a guest seeing DS in CPUID would believe in BTS/PEBS. GET returns
         * how many it read. */
        if (ioctl(v->fd, KVM_GET_MSRS, msrs) == 1)
                msrs->entries[0].data |= MSR_IA32_MISC_ENABLE_FAST_STRING;
        else
                msrs->entries[0].data = MSR_IA32_MISC_ENABLE_FAST_STRING;

        /* KVM_SET_MSRS returns how many it set: stops at the first refused. */
        r = ioctl(v->fd, KVM_SET_MSRS, msrs);
        if (r < 0)
                return log_error_errno(errno, "Failed to set MSRs of vCPU %u: %m", v->index);
        if (r != 1)
                log_warning("KVM refused MSR_IA32_MISC_ENABLE on vCPU %u, going on without fast strings", v->index);
        return 0;
}

static int vcpu_setup_fpu(struct vcpu *v) {
        struct kvm_fpu fpu;

        fpu_build(&fpu);
        if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
                return log_error_errno(errno, "Failed to set the FPU of vCPU %u: %m", v->index);
        return 0;
}

static int vcpu_setup_boot_regs(struct vcpu *v, const struct boot_entry *entry) {
        struct kvm_sregs sregs;
        struct kvm_regs regs;
        int r;

        if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
                return log_error_errno(errno, "Failed to read special registers of vCPU %u: %m", v->index);

        r = boot_regs_build(entry, &regs, &sregs);
        if (r < 0)
                return log_error_errno(r, "Failed to build boot registers for kernel format %d: %m", (int) entry->format);

        if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
                return log_error_errno(errno, "Failed to set special registers of vCPU %u: %m", v->index);
        if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
                return log_error_errno(errno, "Failed to set registers of vCPU %u: %m", v->index);
        return 0;
}

/* With the in-kernel LAPIC KVM already creates APs in this state (the API
 * docs: "an application processor which has not yet received an INIT
 * signal"); saying it explicitly keeps an AP from ever running its reset
 * vector on its own. */
static int vcpu_setup_wait_for_sipi(struct vcpu *v) {
        struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_UNINITIALIZED };

        if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0)
                return log_error_errno(errno, "Failed to put vCPU %u in wait-for-SIPI: %m", v->index);
        return 0;
}

/* A plugin VM's vCPUs: each runs what its plugin sets, APs included. */
static int vcpu_setup_runnable(struct vcpu *v) {
        struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };

        if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0)
                return log_error_errno(errno, "Failed to make vCPU %u runnable: %m", v->index);
        return 0;
}

int vcpu_setup(struct vcpu *v, int kvm_fd, const struct boot_entry *entry) {
        struct kvm_lapic_state probe;
        bool lapic;
        int r;

        /* Without an entry the VM may lack the in-kernel irqchip (KVM_GET_LAPIC
         * then fails with EINVAL). */
        lapic = entry || ioctl(v->fd, KVM_GET_LAPIC, &probe) >= 0;
        r = vcpu_setup_cpuid(v, kvm_fd, lapic);
        if (r < 0)
                return r;
        if (lapic) {
                r = vcpu_setup_lapic(v);
                if (r < 0)
                        return r;
        }
        r = vcpu_setup_msrs(v);
        if (r < 0)
                return r;
        r = vcpu_setup_fpu(v);
        if (r < 0)
                return r;

        if (!entry)
                return vcpu_setup_runnable(v);
        if (v->index == 0)
                return vcpu_setup_boot_regs(v, entry);
        return vcpu_setup_wait_for_sipi(v);
}
