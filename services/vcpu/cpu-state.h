/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Pure builders of a vCPU's initial state: CPUID for vCPU i of n, the LAPIC
 * LINT pins, the boot registers for each entry format, the FPU. No ioctls,
 * so each is unit-tested without KVM; cpu-setup.c applies them. */

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loader-x86.h"

/* The most vCPUs the CPUID/APIC id scheme here supports: APIC ids are the
 * vCPU index and 8-bit (xAPIC, MADT), 0xff is broadcast. */
#define CPU_STATE_MAX_VCPUS 255U

#define CPUID_1_ECX_HYPERVISOR (1U << 31)
#define CPUID_1_EDX_HTT (1U << 28)
#define CPUID_1_ECX_X2APIC (1U << 21)

#define APIC_REG_LVT_LINT0 0x350
#define APIC_REG_LVT_LINT1 0x360
#define APIC_DELIVERY_NMI 4U
#define APIC_DELIVERY_EXTINT 7U

#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_IA32_MISC_ENABLE_FAST_STRING (1ULL << 0)

/* Rewrites entries (as KVM_GET_SUPPORTED_CPUID gave them) for vCPU index of
 * n_vcpus, one core per vCPU, one package: APIC id = index in leaf 1 and
 * x2APIC id in leaves 0xB/0x1F, logical processor counts = n_vcpus, the
 * hypervisor bit. -EINVAL if index >= n_vcpus or n_vcpus is 0 or above
 * CPU_STATE_MAX_VCPUS. */
int cpuid_adjust(struct kvm_cpuid_entry2 *entries, size_t n_entries, unsigned index, unsigned n_vcpus);

/* Clears x2APIC from leaf 1: KVM_GET_SUPPORTED_CPUID lists it whatever
 * the VM, but KVM emulates it only in its in-kernel LAPIC (QEMU clears it
 * too without kernel irqchip). For a VM without KVM_CREATE_IRQCHIP. */
void cpuid_drop_x2apic(struct kvm_cpuid_entry2 *entries, size_t n_entries);

/* LINT0 ExtINT (the legacy PIC), LINT1 NMI: what firmware sets up and
 * Linux expects of the boot CPU's and the APs' LAPICs. */
void lapic_set_lint(struct kvm_lapic_state *lapic);
uint32_t lapic_get_reg(const struct kvm_lapic_state *lapic, unsigned offset);

/* The hidden part of a segment register as loaded from GDT descriptor desc. */
void segment_from_descriptor(struct kvm_segment *s, uint16_t selector, uint64_t desc);

/* Registers of the boot CPU for entry. sregs must hold what KVM_GET_SREGS
 * returned (APIC base, TR, LDT stay as KVM reset them); regs is filled
 * from zero. -EINVAL for an unknown format. */
int boot_regs_build(const struct boot_entry *entry, struct kvm_regs *regs, struct kvm_sregs *sregs);

/* x87 and SSE control words as after FNINIT / reset. */
void fpu_build(struct kvm_fpu *fpu);
