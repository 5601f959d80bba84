/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pure parts of vCPU setup: CPUID per vCPU, LAPIC LINT pins, boot
 * registers for both entry formats, FPU control words. */

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "cpu-state.h"
#include "layout.h"

static struct kvm_cpuid_entry2 entry(uint32_t function, uint32_t index, uint32_t eax, uint32_t ebx, uint32_t ecx,
                                     uint32_t edx) {
        return (struct kvm_cpuid_entry2) {
                .function = function, .index = index, .eax = eax, .ebx = ebx, .ecx = ecx, .edx = edx,
        };
}

/* What a host might report, trimmed: leaf 0, 1, 4 (L1d, L2, L3, end), 0xB
 * (SMT, core, invalid), 0x1F (same), the KVM signature leaf. */
static size_t host_cpuid(struct kvm_cpuid_entry2 *e) {
        size_t n = 0;

        e[n++] = entry(0x0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69);
        e[n++] = entry(0x1, 0, 0x000906ea, 0x07100800, 0x7ffafbbf, 0xbfebfbff);
        e[n++] = entry(0x4, 0, 0x1c004121, 0x01c0003f, 0x3f, 0);
        e[n++] = entry(0x4, 2, 0x1c004143, 0x00c0003f, 0x3ff, 0);
        e[n++] = entry(0x4, 3, 0x1c03c163, 0x02c0003f, 0x2fff, 6);
        e[n++] = entry(0x4, 4, 0, 0, 0, 0);
        e[n++] = entry(0xb, 0, 1, 2, 0x100, 7);
        e[n++] = entry(0xb, 1, 4, 12, 0x201, 7);
        e[n++] = entry(0xb, 2, 0, 0, 2, 7);
        e[n++] = entry(0x1f, 0, 1, 2, 0x100, 7);
        e[n++] = entry(0x1f, 1, 4, 12, 0x201, 7);
        e[n++] = entry(0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d);
        return n;
}

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid_entry2 *e, size_t n, uint32_t f, uint32_t i) {
        for (size_t k = 0; k < n; k++)
                if (e[k].function == f && e[k].index == i)
                        return e + k;
        g_assert_not_reached();
}

static void test_cpuid_leaf1_apic_id_count_and_hypervisor_bit(void) {
        struct kvm_cpuid_entry2 e[16];
        size_t n = host_cpuid(e);
        const struct kvm_cpuid_entry2 *l1;

        g_assert_cmpint(cpuid_adjust(e, n, 2, 4), ==, 0);
        l1 = find(e, n, 1, 0);
        g_assert_cmphex(l1->ebx >> 24, ==, 2);
        g_assert_cmphex((l1->ebx >> 16) & 0xff, ==, 4);
        g_assert_cmphex((l1->ebx >> 8) & 0xff, ==, 0x08); /* CLFLUSH line kept */
        g_assert_cmphex(l1->ecx & CPUID_1_ECX_HYPERVISOR, ==, CPUID_1_ECX_HYPERVISOR);
        g_assert_cmphex(l1->edx & CPUID_1_EDX_HTT, ==, CPUID_1_EDX_HTT);
        g_assert_cmphex(l1->eax, ==, 0x000906ea); /* signature untouched */
}

static void test_cpuid_single_vcpu_clears_htt(void) {
        struct kvm_cpuid_entry2 e[16];
        size_t n = host_cpuid(e);
        const struct kvm_cpuid_entry2 *l1;

        g_assert_cmpint(cpuid_adjust(e, n, 0, 1), ==, 0);
        l1 = find(e, n, 1, 0);
        g_assert_cmphex(l1->ebx >> 24, ==, 0);
        g_assert_cmphex((l1->ebx >> 16) & 0xff, ==, 1);
        g_assert_cmphex(l1->edx & CPUID_1_EDX_HTT, ==, 0);
}

static void test_cpuid_fills_missing_clflush_size(void) {
        struct kvm_cpuid_entry2 e[1] = { entry(0x1, 0, 0, 0, 0, 0) };

        g_assert_cmpint(cpuid_adjust(e, 1, 0, 2), ==, 0);
        g_assert_cmphex((e[0].ebx >> 8) & 0xff, ==, 8);
}

static void test_cpuid_topology_leaves_give_x2apic_id_and_levels(void) {
        struct kvm_cpuid_entry2 e[16];
        size_t n = host_cpuid(e);

        g_assert_cmpint(cpuid_adjust(e, n, 2, 3), ==, 0);
        for (uint32_t leaf = 0xb; leaf <= 0x1f; leaf += 0x1f - 0xb) {
                const struct kvm_cpuid_entry2 *smt = find(e, n, leaf, 0), *core = find(e, n, leaf, 1);

                g_assert_cmphex(smt->edx, ==, 2);
                g_assert_cmphex(smt->eax, ==, 0); /* one thread per core */
                g_assert_cmphex(smt->ebx, ==, 1);
                g_assert_cmphex(smt->ecx, ==, 0x100);
                g_assert_cmphex(core->edx, ==, 2);
                g_assert_cmphex(core->eax, ==, 2); /* 3 vCPUs need 2 id bits */
                g_assert_cmphex(core->ebx, ==, 3);
                g_assert_cmphex(core->ecx, ==, 0x201);
        }
        g_assert_cmphex(find(e, n, 0xb, 2)->eax, ==, 0);
        g_assert_cmphex(find(e, n, 0xb, 2)->ebx, ==, 0);
        g_assert_cmphex(find(e, n, 0xb, 2)->ecx, ==, 2); /* level type invalid */
        g_assert_cmphex(find(e, n, 0xb, 2)->edx, ==, 2);
}

static void test_cpuid_id_bits_for_powers_of_two(void) {
        static const struct { unsigned n, bits; } cases[] = { { 1, 0 }, { 2, 1 }, { 4, 2 }, { 5, 3 }, { 16, 4 }, { 255, 8 } };

        for (size_t k = 0; k < G_N_ELEMENTS(cases); k++) {
                struct kvm_cpuid_entry2 e[1] = { entry(0xb, 1, 0, 0, 0, 0) };

                g_assert_cmpint(cpuid_adjust(e, 1, 0, cases[k].n), ==, 0);
                g_assert_cmpuint(e[0].eax, ==, cases[k].bits);
        }
}

static void test_cpuid_cache_leaf_counts_cores_and_sharing(void) {
        struct kvm_cpuid_entry2 e[16];
        size_t n = host_cpuid(e);

        g_assert_cmpint(cpuid_adjust(e, n, 0, 4), ==, 0);
        /* L1d: per core; cores per package 4. Low 14 bits kept. */
        g_assert_cmphex(find(e, n, 4, 0)->eax, ==, (3U << 26) | (0U << 14) | 0x121);
        g_assert_cmphex(find(e, n, 4, 2)->eax, ==, (3U << 26) | (0U << 14) | 0x143);
        /* L3: shared by all 4. */
        g_assert_cmphex(find(e, n, 4, 3)->eax, ==, (3U << 26) | (3U << 14) | 0x163);
        /* The terminating subleaf stays null. */
        g_assert_cmphex(find(e, n, 4, 4)->eax, ==, 0);
        g_assert_cmphex(find(e, n, 4, 0)->ebx, ==, 0x01c0003f);
}

static void test_cpuid_other_leaves_untouched(void) {
        struct kvm_cpuid_entry2 e[16], orig[16];
        size_t n = host_cpuid(e);

        memcpy(orig, e, sizeof(e));
        g_assert_cmpint(cpuid_adjust(e, n, 1, 2), ==, 0);
        g_assert_cmpmem(find(e, n, 0, 0), sizeof(e[0]), find(orig, n, 0, 0), sizeof(e[0]));
        g_assert_cmpmem(find(e, n, 0x40000000, 0), sizeof(e[0]), find(orig, n, 0x40000000, 0), sizeof(e[0]));
}

static void test_cpuid_each_vcpu_gets_its_own_apic_id(void) {
        for (unsigned i = 0; i < 8; i++) {
                struct kvm_cpuid_entry2 e[16];
                size_t n = host_cpuid(e);

                g_assert_cmpint(cpuid_adjust(e, n, i, 8), ==, 0);
                g_assert_cmpuint(find(e, n, 1, 0)->ebx >> 24, ==, i);
                g_assert_cmpuint(find(e, n, 0xb, 0)->edx, ==, i);
        }
}

static void test_cpuid_bad_counts_are_refused(void) {
        struct kvm_cpuid_entry2 e[16], orig[16];
        size_t n = host_cpuid(e);

        memcpy(orig, e, sizeof(e));
        g_assert_cmpint(cpuid_adjust(e, n, 0, 0), ==, -EINVAL);
        g_assert_cmpint(cpuid_adjust(e, n, 4, 4), ==, -EINVAL);
        g_assert_cmpint(cpuid_adjust(e, n, 5, 4), ==, -EINVAL);
        g_assert_cmpint(cpuid_adjust(e, n, 0, CPU_STATE_MAX_VCPUS + 1), ==, -EINVAL);
        g_assert_cmpint(cpuid_adjust(NULL, 3, 0, 1), ==, -EINVAL);
        g_assert_cmpmem(e, sizeof(e), orig, sizeof(orig)); /* refused means untouched */

        g_assert_cmpint(cpuid_adjust(e, n, CPU_STATE_MAX_VCPUS - 1, CPU_STATE_MAX_VCPUS), ==, 0);
        g_assert_cmpuint(find(e, n, 1, 0)->ebx >> 24, ==, 254);
        g_assert_cmpint(cpuid_adjust(NULL, 0, 0, 1), ==, 0);
}

static void test_cpuid_without_lapic_drops_only_x2apic(void) {
        struct kvm_cpuid_entry2 e[16], orig[16];
        size_t n = host_cpuid(e);

        g_assert_cmpint(cpuid_adjust(e, n, 0, 2), ==, 0);
        g_assert_true(find(e, n, 1, 0)->ecx & CPUID_1_ECX_X2APIC); /* KVM lists it */
        memcpy(orig, e, sizeof(e));
        cpuid_drop_x2apic(e, n);
        g_assert_false(find(e, n, 1, 0)->ecx & CPUID_1_ECX_X2APIC);
        g_assert_cmphex(find(e, n, 1, 0)->ecx | CPUID_1_ECX_X2APIC, ==, find(orig, n, 1, 0)->ecx);
        for (size_t i = 0; i < n; i++)
                if (e[i].function != 0x1)
                        g_assert_cmpmem(&e[i], sizeof(e[i]), &orig[i], sizeof(orig[i]));
        cpuid_drop_x2apic(NULL, 0);
}

static void test_lapic_lint0_extint_lint1_nmi(void) {
        struct kvm_lapic_state l;
        uint32_t lint0 = 0x00010700 | 0x20, lint1 = 0x00010000, other = 0xdeadbeef;

        memset(&l, 0x5a, sizeof(l));
        memcpy(l.regs + APIC_REG_LVT_LINT0, &lint0, 4);
        memcpy(l.regs + APIC_REG_LVT_LINT1, &lint1, 4);
        memcpy(l.regs + 0x320, &other, 4);

        lapic_set_lint(&l);
        /* Delivery mode bits 10:8 replaced; mask and the rest kept. */
        g_assert_cmphex(lapic_get_reg(&l, APIC_REG_LVT_LINT0), ==, 0x00010000 | (APIC_DELIVERY_EXTINT << 8) | 0x20);
        g_assert_cmphex(lapic_get_reg(&l, APIC_REG_LVT_LINT1), ==, 0x00010000 | (APIC_DELIVERY_NMI << 8));
        g_assert_cmphex(lapic_get_reg(&l, 0x320), ==, 0xdeadbeef);
        g_assert_cmphex(lapic_get_reg(&l, 0x300), ==, 0x5a5a5a5a);
}

static void test_segments_follow_the_loader_descriptors(void) {
        struct kvm_segment s;

        segment_from_descriptor(&s, BOOT_GDT_CS64, BOOT_GDT_DESC_CS64);
        g_assert_cmphex(s.selector, ==, 0x10);
        g_assert_cmphex(s.base, ==, 0);
        g_assert_cmphex(s.limit, ==, 0xffffffff);
        g_assert_cmpuint(s.type, ==, 0xb);
        g_assert_cmpuint(s.l, ==, 1);
        g_assert_cmpuint(s.db, ==, 0);
        g_assert_cmpuint(s.g, ==, 1);
        g_assert_cmpuint(s.present, ==, 1);
        g_assert_cmpuint(s.s, ==, 1);
        g_assert_cmpuint(s.dpl, ==, 0);

        segment_from_descriptor(&s, BOOT_GDT_CS32, BOOT_GDT_DESC_CS32);
        g_assert_cmpuint(s.l, ==, 0);
        g_assert_cmpuint(s.db, ==, 1);
        g_assert_cmpuint(s.type, ==, 0xb);

        segment_from_descriptor(&s, BOOT_GDT_DS, BOOT_GDT_DESC_DS);
        g_assert_cmpuint(s.type, ==, 0x3);
        g_assert_cmpuint(s.db, ==, 1);
        g_assert_cmphex(s.limit, ==, 0xffffffff);

        /* Base and byte-granular limit are decoded, not assumed. */
        segment_from_descriptor(&s, 0x20, 0x124f9a345678ffffULL);
        g_assert_cmphex(s.base, ==, 0x12345678);
        g_assert_cmphex(s.limit, ==, 0xfffff);
        g_assert_cmpuint(s.g, ==, 0);
        g_assert_cmpuint(s.db, ==, 1);
        g_assert_cmpuint(s.type, ==, 0xa);
}

static void reset_sregs(struct kvm_sregs *s) {
        memset(s, 0, sizeof(*s));
        s->apic_base = 0xfee00900;
        s->tr.type = 11;
        s->tr.present = 1;
        s->tr.limit = 0xffff;
        s->idt.limit = 0xffff;
}

static void test_bzimage_enters_long_mode(void) {
        struct boot_entry e = { .format = KERNEL_BZIMAGE, .rip = 0x100200, .boot_info = LAYOUT_ZERO_PAGE };
        struct kvm_regs r;
        struct kvm_sregs s;

        reset_sregs(&s);
        g_assert_cmpint(boot_regs_build(&e, &r, &s), ==, 0);
        g_assert_cmphex(r.rip, ==, 0x100200);
        g_assert_cmphex(r.rsi, ==, LAYOUT_ZERO_PAGE);
        g_assert_cmphex(r.rbx, ==, 0);
        g_assert_cmphex(r.rflags, ==, 0x2);
        g_assert_cmphex(s.cr0, ==, 0x80000011);
        g_assert_cmphex(s.cr3, ==, LAYOUT_PML4);
        g_assert_cmphex(s.cr4, ==, 0x20);
        g_assert_cmphex(s.efer, ==, 0x500);
        g_assert_cmphex(s.cs.selector, ==, 0x10);
        g_assert_cmpuint(s.cs.l, ==, 1);
        g_assert_cmpuint(s.cs.db, ==, 0);
        g_assert_cmphex(s.ds.selector, ==, 0x18);
        g_assert_cmphex(s.es.selector, ==, 0x18);
        g_assert_cmphex(s.ss.selector, ==, 0x18);
        g_assert_cmphex(s.fs.selector, ==, 0x18);
        g_assert_cmphex(s.gs.selector, ==, 0x18);
        g_assert_cmphex(s.gdt.base, ==, LAYOUT_GDT);
        g_assert_cmphex(s.gdt.limit, ==, BOOT_GDT_ENTRIES * 8 - 1);
        /* What KVM's reset gave is kept. */
        g_assert_cmphex(s.apic_base, ==, 0xfee00900);
        g_assert_cmpuint(s.tr.type, ==, 11);
        g_assert_cmphex(s.idt.limit, ==, 0xffff);
}

static void test_pvh_enters_protected_mode_without_paging(void) {
        struct boot_entry e = { .format = KERNEL_PVH_ELF, .rip = 0x1000000, .boot_info = LAYOUT_PVH_START_INFO };
        struct kvm_regs r;
        struct kvm_sregs s;

        reset_sregs(&s);
        s.cr3 = 0x1234; /* whatever was there is cleared */
        g_assert_cmpint(boot_regs_build(&e, &r, &s), ==, 0);
        g_assert_cmphex(r.rip, ==, 0x1000000);
        g_assert_cmphex(r.rbx, ==, LAYOUT_PVH_START_INFO);
        g_assert_cmphex(r.rsi, ==, 0);
        g_assert_cmphex(r.rflags, ==, 0x2);
        g_assert_cmphex(s.cr0, ==, 0x11);
        g_assert_cmphex(s.cr3, ==, 0);
        g_assert_cmphex(s.cr4, ==, 0);
        g_assert_cmphex(s.efer, ==, 0);
        g_assert_cmphex(s.cs.selector, ==, BOOT_GDT_CS32);
        g_assert_cmpuint(s.cs.db, ==, 1);
        g_assert_cmpuint(s.cs.l, ==, 0);
        g_assert_cmphex(s.cs.limit, ==, 0xffffffff);
        g_assert_cmphex(s.ds.selector, ==, BOOT_GDT_DS);
        g_assert_cmphex(s.ss.selector, ==, BOOT_GDT_DS);
        g_assert_cmphex(s.apic_base, ==, 0xfee00900);
}

static void test_unknown_format_is_refused(void) {
        struct boot_entry e = { .format = (enum kernel_format) 7, .rip = 1 };
        struct kvm_regs r;
        struct kvm_sregs s;

        reset_sregs(&s);
        g_assert_cmpint(boot_regs_build(&e, &r, &s), ==, -EINVAL);
        g_assert_cmphex(s.cr0, ==, 0);
}

static void test_fpu_control_words_after_reset(void) {
        struct kvm_fpu f;

        memset(&f, 0xff, sizeof(f));
        fpu_build(&f);
        g_assert_cmphex(f.fcw, ==, 0x37f);
        g_assert_cmphex(f.mxcsr, ==, 0x1f80);
        g_assert_cmphex(f.fsw, ==, 0);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/vcpu-setup/cpuid-leaf1-apic-id-count-and-hypervisor-bit", test_cpuid_leaf1_apic_id_count_and_hypervisor_bit);
        g_test_add_func("/vcpu-setup/cpuid-single-vcpu-clears-htt", test_cpuid_single_vcpu_clears_htt);
        g_test_add_func("/vcpu-setup/cpuid-fills-missing-clflush-size", test_cpuid_fills_missing_clflush_size);
        g_test_add_func("/vcpu-setup/cpuid-topology-leaves-give-x2apic-id-and-levels", test_cpuid_topology_leaves_give_x2apic_id_and_levels);
        g_test_add_func("/vcpu-setup/cpuid-id-bits-for-powers-of-two", test_cpuid_id_bits_for_powers_of_two);
        g_test_add_func("/vcpu-setup/cpuid-cache-leaf-counts-cores-and-sharing", test_cpuid_cache_leaf_counts_cores_and_sharing);
        g_test_add_func("/vcpu-setup/cpuid-other-leaves-untouched", test_cpuid_other_leaves_untouched);
        g_test_add_func("/vcpu-setup/cpuid-each-vcpu-gets-its-own-apic-id", test_cpuid_each_vcpu_gets_its_own_apic_id);
        g_test_add_func("/vcpu-setup/cpuid-bad-counts-are-refused", test_cpuid_bad_counts_are_refused);
        g_test_add_func("/vcpu-setup/cpuid-without-lapic-drops-only-x2apic", test_cpuid_without_lapic_drops_only_x2apic);
        g_test_add_func("/vcpu-setup/lapic-lint0-extint-lint1-nmi", test_lapic_lint0_extint_lint1_nmi);
        g_test_add_func("/vcpu-setup/segments-follow-the-loader-descriptors", test_segments_follow_the_loader_descriptors);
        g_test_add_func("/vcpu-setup/bzimage-enters-long-mode", test_bzimage_enters_long_mode);
        g_test_add_func("/vcpu-setup/pvh-enters-protected-mode-without-paging", test_pvh_enters_protected_mode_without_paging);
        g_test_add_func("/vcpu-setup/unknown-format-is-refused", test_unknown_format_is_refused);
        g_test_add_func("/vcpu-setup/fpu-control-words-after-reset", test_fpu_control_words_after_reset);
        return g_test_run();
}
