/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* xAPIC (MMIO), the IOAPIC, and a LAPIC one-shot timer for sleeping with
 * `hlt` instead of spinning. */

#include <stdbool.h>
#include <stdint.h>

#define ICR_INIT 0x00004500  /* INIT, level assert */
#define ICR_SIPI 0x00004600  /* start-up; low byte is the page number */
#define ICR_FIXED 0x00004000 /* fixed delivery, assert; low byte is the vector */

void lapic_init(uint64_t base); /* BSP: map-free since we are identity mapped */
void lapic_init_ap(void);
uint32_t lapic_id(void);
void lapic_eoi(void);
/* Sends an IPI; false if the ICR stayed busy. */
bool lapic_send_ipi(uint32_t apic_id, uint32_t icr);

/* Routes a GSI to vector on the BSP; flags are MPS INTI flags. */
bool ioapic_route(uint64_t base, uint32_t gsi_base, uint32_t gsi, uint8_t vector, uint16_t flags, uint32_t dest);
/* Masks all 8259 lines: interrupts come through the IOAPIC. */
void pic_disable(void);

void apic_timer_irq(void);
/* Sleeps until done() is true or ns pass (LAPIC timer at 1 GHz, which is
 * what KVM and QEMU emulate). Returns done()'s final value. */
bool wait_until(bool (*done)(void), uint64_t ns);
/* How long the last wait_until() took, in ns (from the timer's count). */
extern uint64_t wait_last_ns;
void sleep_ns(uint64_t ns);
