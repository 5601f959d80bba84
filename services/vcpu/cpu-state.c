/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "cpu-state.h"
#include "layout.h"
#include "macro.h"

/* Bits needed to number n things: the APIC id field width of a level. */
static unsigned id_bits(unsigned n) {
        unsigned b = 0;

        while ((1U << b) < n)
                b++;
        return b;
}

/* Leaf 0xB / 0x1F subleaf: level 0 is SMT (one thread per core), level 1
 * the cores of our one package; the rest invalid. */
static void cpuid_topology_level(struct kvm_cpuid_entry2 *e, unsigned index, unsigned n_vcpus) {
        unsigned level = e->index;

        e->edx = index;
        switch (level) {
        case 0:
                e->eax = 0;
                e->ebx = 1;
                e->ecx = (1U << 8) | level;
                break;
        case 1:
                e->eax = id_bits(n_vcpus);
                e->ebx = n_vcpus;
                e->ecx = (2U << 8) | level;
                break;
        default:
                e->eax = 0;
                e->ebx = 0;
                e->ecx = level & 0xff;
                break;
        }
}

int cpuid_adjust(struct kvm_cpuid_entry2 *entries, size_t n_entries, unsigned index, unsigned n_vcpus) {
        if (n_vcpus == 0 || n_vcpus > CPU_STATE_MAX_VCPUS || index >= n_vcpus)
                return -EINVAL;
        if (!entries && n_entries > 0)
                return -EINVAL;

        for (size_t i = 0; i < n_entries; i++) {
                struct kvm_cpuid_entry2 *e = entries + i;

                switch (e->function) {
                case 0x1:
                        /* EBX: [31:24] initial APIC id, [23:16] logical processors
                         * per package, [15:8] CLFLUSH line in 8-byte units. */
                        e->ebx = (index << 24) | (n_vcpus << 16) | (e->ebx & 0xff00) | (e->ebx & 0xff);
                        if ((e->ebx & 0xff00) == 0)
                                e->ebx |= 8U << 8;
                        e->ecx |= CPUID_1_ECX_HYPERVISOR;
                        if (n_vcpus > 1)
                                e->edx |= CPUID_1_EDX_HTT;
                        else
                                e->edx &= ~CPUID_1_EDX_HTT;
                        break;

                case 0x4: {
                        /* Deterministic cache parameters: EAX [31:26] cores per
                         * package - 1, [25:14] threads sharing this cache - 1.
                         * L1/L2 are per core, L3 is shared by the package. */
                        unsigned cache_level = (e->eax >> 5) & 0x7, sharing;

                        if ((e->eax & 0x1f) == 0) /* no more caches */
                                break;
                        sharing = cache_level >= 3 ? n_vcpus - 1 : 0;
                        e->eax = (e->eax & 0x3fff) | ((sharing & 0xfff) << 14) | ((n_vcpus - 1) << 26);
                        break;
                }

                case 0xb:
                case 0x1f:
                        cpuid_topology_level(e, index, n_vcpus);
                        break;
                }
        }
        return 0;
}

uint32_t lapic_get_reg(const struct kvm_lapic_state *lapic, unsigned offset) {
        uint32_t v;

        memcpy(&v, lapic->regs + offset, sizeof(v));
        return v;
}

static void lapic_set_delivery_mode(struct kvm_lapic_state *lapic, unsigned offset, uint32_t mode) {
        uint32_t v = lapic_get_reg(lapic, offset);

        v = (v & ~(UINT32_C(7) << 8)) | (mode << 8);
        memcpy(lapic->regs + offset, &v, sizeof(v));
}

void cpuid_drop_x2apic(struct kvm_cpuid_entry2 *entries, size_t n_entries) {
        for (size_t i = 0; i < n_entries; i++)
                if (entries[i].function == 0x1)
                        entries[i].ecx &= ~CPUID_1_ECX_X2APIC;
}

void lapic_set_lint(struct kvm_lapic_state *lapic) {
        lapic_set_delivery_mode(lapic, APIC_REG_LVT_LINT0, APIC_DELIVERY_EXTINT);
        lapic_set_delivery_mode(lapic, APIC_REG_LVT_LINT1, APIC_DELIVERY_NMI);
}

/* The hidden part of a segment register as the CPU would load it from the
 * GDT descriptor desc: the loader's BOOT_GDT_DESC_* values are the source. */
void segment_from_descriptor(struct kvm_segment *s, uint16_t selector, uint64_t desc) {
        uint32_t limit = (uint32_t) ((desc & 0xffff) | ((desc >> 32) & 0xf0000));
        bool g = (desc >> 55) & 1;

        *s = (struct kvm_segment) {
                .base = ((desc >> 16) & 0xffffff) | (((desc >> 56) & 0xff) << 24),
                .limit = g ? (limit << 12) | 0xfff : limit,
                .selector = selector,
                .type = (desc >> 40) & 0xf,
                .s = (desc >> 44) & 1,
                .dpl = (desc >> 45) & 3,
                .present = (desc >> 47) & 1,
                .avl = (desc >> 52) & 1,
                .l = (desc >> 53) & 1,
                .db = (desc >> 54) & 1,
                .g = g,
        };
}

#define X86_CR0_PE (1ULL << 0)
#define X86_CR0_ET (1ULL << 4)
#define X86_CR0_PG (1ULL << 31)
#define X86_CR4_PAE (1ULL << 5)
#define X86_EFER_LME (1ULL << 8)
#define X86_EFER_LMA (1ULL << 10)
#define X86_RFLAGS_RESERVED1 (1ULL << 1)

int boot_regs_build(const struct boot_entry *entry, struct kvm_regs *regs, struct kvm_sregs *sregs) {
        bool long_mode;

        switch (entry->format) {
        case KERNEL_BZIMAGE:
                long_mode = true;
                break;
        case KERNEL_PVH_ELF:
                long_mode = false;
                break;
        default:
                return -EINVAL;
        }

        *regs = (struct kvm_regs) {
                .rip = entry->rip,
                .rflags = X86_RFLAGS_RESERVED1, /* IF clear: interrupts off */
                /* Neither entry defines a stack and Linux sets its own before
                 * pushing; this is only a net: the unused page below the PVH
                 * start_info. */
                .rsp = LAYOUT_PVH_START_INFO,
        };

        if (long_mode)
                segment_from_descriptor(&sregs->cs, BOOT_GDT_CS64, BOOT_GDT_DESC_CS64);
        else
                segment_from_descriptor(&sregs->cs, BOOT_GDT_CS32, BOOT_GDT_DESC_CS32);
        segment_from_descriptor(&sregs->ds, BOOT_GDT_DS, BOOT_GDT_DESC_DS);
        sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;
        sregs->gdt.base = LAYOUT_GDT;
        sregs->gdt.limit = BOOT_GDT_ENTRIES * 8 - 1;

        if (long_mode) {
                regs->rsi = entry->boot_info;
                sregs->cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
                sregs->cr3 = LAYOUT_PML4;
                sregs->cr4 = X86_CR4_PAE;
                sregs->efer = X86_EFER_LME | X86_EFER_LMA;
        } else {
                regs->rbx = entry->boot_info;
                sregs->cr0 = X86_CR0_PE | X86_CR0_ET;
                sregs->cr3 = 0;
                sregs->cr4 = 0;
                sregs->efer = 0;
        }
        return 0;
}

void fpu_build(struct kvm_fpu *fpu) {
        *fpu = (struct kvm_fpu) {
                .fcw = 0x37f,
                .mxcsr = 0x1f80,
        };
}
