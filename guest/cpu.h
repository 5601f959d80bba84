/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Descriptor tables, paging, traps and the CPL 3 entry/exit. Shared with
 * head.S, hence the assembler guard. */

#define GDT_CODE64 0x08
#define GDT_DATA 0x10
#define GDT_CODE32 0x18
#define GDT_UDATA 0x20 /* user data before user code, the sysret order */
#define GDT_UCODE64 0x28
#define GDT_TSS 0x30
#define GDT_ENTRIES 8

/* Vectors. 0x20-0x2f stay free for a remapped 8259. */
#define VEC_TIMER 0x40
#define VEC_SERIAL 0x41
#define VEC_WAKE 0x42 /* an AP telling the BSP it is up */
#define VEC_SCI 0x43  /* the ACPI SCI (power button) */
#define VEC_DYN_FIRST 0x50 /* handed out by irq_alloc_vectors() (MSI-X, INTx) */
#define VEC_DYN_LAST 0xef
#define VEC_SPURIOUS 0xff

#define TRAMPOLINE_ADDR 0x8000 /* AP real-mode entry, SIPI vector 0x08 */

#ifndef __ASSEMBLER__
#include <stdint.h>

struct trap_frame {
        uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
        uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
        uint64_t vector, error;
        uint64_t rip, cs, rflags, rsp, ss;
};

/* The identity map of the low 4 GiB used by every CPU (head.S builds it
 * for PVH; paging_init() builds it for the bzImage entry). */
extern uint64_t boot_pml4[512];

void paging_init(void);
void cpu_init_bsp(void); /* GDT with TSS, IDT */
void cpu_init_ap(void);  /* IDT only; GDT is loaded by the trampoline */

/* Counts every interrupt; cpu_wait() sleeps until it changes. */
extern volatile uint32_t irq_count;

/* Sleeps in `hlt` until the next interrupt. Interrupts must be enabled.
 * Use as: snap = irq_count; if (!cond) cpu_wait(snap); — an interrupt that
 * lands between the check and the hlt cannot be lost (see trap.c). */
void halt_if_equal(volatile uint32_t *p, uint32_t v);
static inline void cpu_wait(uint32_t snap) { halt_if_equal(&irq_count, snap); }

/* Reserves n consecutive vectors in VEC_DYN_FIRST..VEC_DYN_LAST and sets
 * fn(arg, vector) as the handler of each (called with interrupts off; the
 * LAPIC EOI follows it). Returns the first vector, or 0 if none are left. */
typedef void (*irq_handler_t)(void *arg, unsigned vector);
unsigned irq_alloc_vectors(unsigned n, irq_handler_t fn, void *arg);

/* Runs fn at CPL 3 on user_rsp until it executes ud2; returns its RAX. */
uint64_t user_enter(void (*fn)(void), uint64_t user_rsp);
/* Called by the #UD handler: unwinds back into user_enter(). */
__attribute__((noreturn)) void user_exit(uint64_t result);
#endif
