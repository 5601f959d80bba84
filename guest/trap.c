/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GDT/TSS/IDT setup, the page tables, and where every interrupt and
 * exception lands. */
#include "apic.h"
#include "console.h"
#include "cpu.h"
#include "io.h"
#include "lib.h"
#include "pm.h"
#include "user.h"

#define PTE_TABLE 0x07 /* present, writable, user */
#define PTE_2M 0x87
#define PTE_UNCACHED 0x18 /* PCD | PWT, for the MMIO GiB below 4 GiB */

struct idt_gate {
        uint16_t offset_lo;
        uint16_t selector;
        uint8_t ist;
        uint8_t type_attr;
        uint16_t offset_mid;
        uint32_t offset_hi;
        uint32_t zero;
} __attribute__((packed));

struct tss64 {
        uint32_t reserved0;
        uint64_t rsp[3];
        uint64_t reserved1;
        uint64_t ist[7];
        uint64_t reserved2;
        uint16_t reserved3;
        uint16_t iomap_base;
} __attribute__((packed));

struct desc_ptr {
        uint16_t limit;
        uint64_t base;
} __attribute__((packed));

extern uint64_t gdt[GDT_ENTRIES];
extern uint64_t boot_pdpt[512], boot_pd[4 * 512];
extern const uint8_t isr_stubs[];
extern const uint8_t halt_window_start[], halt_window_end[];
extern uint8_t trap_stack_top[];

static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct tss64 tss __attribute__((aligned(16)));
volatile uint32_t irq_count;

struct irq_slot {
        irq_handler_t fn;
        void *arg;
};
static struct irq_slot irq_slots[VEC_DYN_LAST - VEC_DYN_FIRST + 1];
static unsigned irq_next = VEC_DYN_FIRST;

unsigned irq_alloc_vectors(unsigned n, irq_handler_t fn, void *arg) {
        if (n == 0 || n > VEC_DYN_LAST + 1 - irq_next)
                return 0;
        unsigned first = irq_next;
        for (unsigned i = 0; i < n; i++)
                irq_slots[first + i - VEC_DYN_FIRST] = (struct irq_slot) { fn, arg };
        irq_next += n;
        return first;
}

void paging_init(void) {
        /* The same map head.S builds for PVH, plus uncached MMIO; this is
         * what the bzImage entry switches to from the loader's tables. */
        boot_pml4[0] = (uintptr_t) boot_pdpt | PTE_TABLE;
        for (unsigned i = 0; i < 4; i++)
                boot_pdpt[i] = ((uintptr_t) boot_pd + 4096 * i) | PTE_TABLE;
        for (uint64_t i = 0; i < 2048; i++)
                boot_pd[i] = (i << 21) | PTE_2M | (i >= 1536 ? PTE_UNCACHED : 0);
        __asm__ volatile("mov %0, %%cr3" :: "r"((uint64_t) (uintptr_t) boot_pml4) : "memory");
}

static void load_idt(void) {
        struct desc_ptr p = { sizeof(idt) - 1, (uintptr_t) idt };
        __asm__ volatile("lidt %0" :: "m"(p));
}

void cpu_init_bsp(void) {
        for (unsigned v = 0; v < 256; v++) {
                uint64_t a = (uintptr_t) isr_stubs + 16 * v;
                idt[v] = (struct idt_gate) {
                        .offset_lo = a & 0xffff,
                        .selector = GDT_CODE64,
                        .type_attr = 0x8e, /* present, DPL 0, interrupt gate */
                        .offset_mid = (a >> 16) & 0xffff,
                        .offset_hi = a >> 32,
                };
        }
        load_idt();

        /* A TSS so CPL 3 code can trap back in on trap_stack; no I/O
         * bitmap, so every port faults at CPL 3. */
        tss.rsp[0] = (uintptr_t) trap_stack_top;
        tss.iomap_base = sizeof(tss);
        uint64_t base = (uintptr_t) &tss, limit = sizeof(tss) - 1;
        gdt[GDT_TSS / 8] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ULL << 40 |
                           ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
        gdt[GDT_TSS / 8 + 1] = base >> 32;
        __asm__ volatile("ltr %w0" :: "r"(GDT_TSS));
}

void cpu_init_ap(void) {
        load_idt();
}

static const char *const exception_names[32] = {
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "",
        "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

static __attribute__((noreturn)) void fatal(struct trap_frame *f) {
        uint64_t cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        kprintf("\nFATAL: exception %lu %s error 0x%lx at rip 0x%lx cs 0x%lx rsp 0x%lx cr2 0x%lx\n", f->vector,
                f->vector < 32 ? exception_names[f->vector] : "", f->error, f->rip, f->cs, f->rsp, cr2);
        for (;;)
                __asm__ volatile("cli; hlt");
}

void trap_dispatch(struct trap_frame *f) {
        if (f->vector < 32) {
                if ((f->cs & 3) == 3 && user_trap(f))
                        return;
                fatal(f);
        }

        irq_count++;
        /* Interrupted between halt_if_equal()'s check and its hlt: skip
         * the hlt, the caller re-checks. This replaces `sti; hlt`, which
         * the production host does not treat as atomic. */
        if (f->rip >= (uintptr_t) halt_window_start && f->rip < (uintptr_t) halt_window_end)
                f->rip = (uintptr_t) halt_window_end;

        switch (f->vector) {
        case VEC_SERIAL:
                console_rx_irq();
                lapic_eoi();
                break;
        case VEC_TIMER:
                apic_timer_irq();
                lapic_eoi();
                break;
        case VEC_WAKE:
                lapic_eoi();
                break;
        case VEC_SCI:
                /* Level-triggered: the EOI is broadcast to the IOAPIC and
                 * clears the pin's Remote IRR, so it comes after the ack. */
                pm_sci_irq();
                lapic_eoi();
                break;
        case VEC_SPURIOUS:
                break; /* no EOI for the spurious vector */
        default:
                /* Dynamic vectors (MSI-X, PCI INTx): a level-triggered
                 * source is acknowledged by its handler before the EOI. */
                if (f->vector >= VEC_DYN_FIRST && f->vector <= VEC_DYN_LAST) {
                        const struct irq_slot *s = &irq_slots[f->vector - VEC_DYN_FIRST];
                        if (s->fn)
                                s->fn(s->arg, f->vector);
                }
                lapic_eoi();
                break;
        }
}
