/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "acpi.h"
#include "apic.h"
#include "cpu.h"
#include "io.h"
#include "lib.h"
#include "smp.h"

#define AP_STACK_SIZE 4096
#define INIT_DELAY_NS 10000000ULL   /* 10 ms, as the MP spec asks */
#define SIPI_DELAY_NS 1000000ULL    /* then a second SIPI */
#define AP_TIMEOUT_NS 1000000000ULL /* an AP arrives within ms; give it 1 s */

extern const uint8_t trampoline_start[], trampoline_end[];
extern uint32_t tr_cr3;
extern uint64_t tr_stack, tr_entry;
extern uint8_t ap_stacks[], ap_stacks_end[];
extern void ap_start64(void);

volatile unsigned cpus_up = 1;
static uint32_t bsp_apic_id;
static unsigned waiting_for;

/* Where a trampoline variable lands in the copy below 1 MiB. */
#define TR_VAR(v) ((void *) (uintptr_t) (TRAMPOLINE_ADDR + ((uintptr_t) &(v) - (uintptr_t) trampoline_start)))

void ap_main(void) {
        cpu_init_ap();
        lapic_init_ap();
        __atomic_add_fetch(&cpus_up, 1, __ATOMIC_SEQ_CST);
        (void) lapic_send_ipi(bsp_apic_id, ICR_FIXED | VEC_WAKE);
        /* Nothing to do yet: sleep for good, interrupts on so an IPI could
         * reach us later. */
        irq_enable();
        for (;;)
                __asm__ volatile("hlt");
}

static bool ap_arrived(void) {
        return cpus_up >= waiting_for;
}

void smp_boot(void) {
        bsp_apic_id = lapic_id();
        memcpy((void *) TRAMPOLINE_ADDR, trampoline_start, trampoline_end - trampoline_start);
        *(uint32_t *) TR_VAR(tr_cr3) = (uint32_t) (uintptr_t) boot_pml4;
        *(uint64_t *) TR_VAR(tr_entry) = (uintptr_t) ap_start64;

        unsigned next_stack = 0;
        for (unsigned i = 0; i < acpi.n_cpus; i++) {
                uint32_t id = acpi.cpu_apic_ids[i];
                if (id == bsp_apic_id)
                        continue;
                if (id > 0xfe) {
                        kprintf("smp: cpu apic id %u needs x2APIC, skipped\n", id);
                        continue;
                }
                if (ap_stacks + (next_stack + 1) * AP_STACK_SIZE > ap_stacks_end)
                        break;
                /* One AP at a time: it takes the stack set here. */
                *(uint64_t *) TR_VAR(tr_stack) = (uintptr_t) (ap_stacks + ++next_stack * AP_STACK_SIZE);
                waiting_for = cpus_up + 1;
                __atomic_thread_fence(__ATOMIC_SEQ_CST);

                (void) lapic_send_ipi(id, ICR_INIT);
                sleep_ns(INIT_DELAY_NS);
                (void) lapic_send_ipi(id, ICR_SIPI | (TRAMPOLINE_ADDR >> 12));
                if (!wait_until(ap_arrived, SIPI_DELAY_NS)) {
                        (void) lapic_send_ipi(id, ICR_SIPI | (TRAMPOLINE_ADDR >> 12));
                        if (!wait_until(ap_arrived, AP_TIMEOUT_NS))
                                kprintf("smp: cpu apic id %u did not come up\n", id);
                }
        }
}
