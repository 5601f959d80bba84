/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>

#include "apic.h"
#include "cpu.h"
#include "io.h"

#define LAPIC_ID 0x20
#define LAPIC_TPR 0x80
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0

#define SVR_ENABLE 0x100
#define LVT_MASKED 0x10000
#define LVT_NMI 0x400
#define ICR_BUSY 0x1000
#define TIMER_DIV_1 0xb

#define MSR_APIC_BASE 0x1b
#define APIC_BASE_ENABLE 0x800

#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN 0x10
#define IOAPIC_VER 0x01
#define IOAPIC_REDTBL 0x10
#define REDIR_ACTIVE_LOW (1u << 13)
#define REDIR_LEVEL (1u << 15)

static uint64_t lapic_base = 0xfee00000;
static volatile bool timer_expired;
uint64_t wait_last_ns;

static uint32_t lapic_read(uint32_t reg) { return mmio_read32(lapic_base + reg); }
static void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(lapic_base + reg, v); }

static void lapic_setup(void) {
        lapic_write(LAPIC_TPR, 0);
        lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
        lapic_write(LAPIC_LVT_LINT0, LVT_MASKED); /* the 8259 is not used */
        lapic_write(LAPIC_LVT_LINT1, LVT_NMI);
        lapic_write(LAPIC_LVT_ERROR, LVT_MASKED);
        lapic_write(LAPIC_SVR, SVR_ENABLE | VEC_SPURIOUS);
}

void lapic_init(uint64_t base) {
        if (base)
                lapic_base = base;
        /* xAPIC mode at the address the MADT gave; firmware usually left it so. */
        uint64_t msr = rdmsr(MSR_APIC_BASE);
        uint64_t want = (lapic_base & ~0xfffULL) | APIC_BASE_ENABLE | (msr & 0x100);
        if ((msr & ~0x2ffULL) != (want & ~0x2ffULL))
                wrmsr(MSR_APIC_BASE, want);
        lapic_setup();
}

void lapic_init_ap(void) {
        uint64_t msr = rdmsr(MSR_APIC_BASE);
        uint64_t want = (lapic_base & ~0xfffULL) | APIC_BASE_ENABLE;
        if ((msr & ~0x2ffULL) != want)
                wrmsr(MSR_APIC_BASE, want);
        lapic_setup();
}

uint32_t lapic_id(void) {
        return lapic_read(LAPIC_ID) >> 24;
}

void lapic_eoi(void) {
        lapic_write(LAPIC_EOI, 0);
}

bool lapic_send_ipi(uint32_t apic_id, uint32_t icr) {
        lapic_write(LAPIC_ICR_HI, apic_id << 24);
        lapic_write(LAPIC_ICR_LO, icr);
        /* Virtual APICs deliver at once; the bound only guards odd ones. */
        for (unsigned i = 0; i < 1000; i++)
                if (!(lapic_read(LAPIC_ICR_LO) & ICR_BUSY))
                        return true;
        return false;
}

static uint32_t ioapic_read(uint64_t base, uint32_t reg) {
        mmio_write32(base + IOAPIC_REGSEL, reg);
        return mmio_read32(base + IOAPIC_WIN);
}

static void ioapic_write(uint64_t base, uint32_t reg, uint32_t v) {
        mmio_write32(base + IOAPIC_REGSEL, reg);
        mmio_write32(base + IOAPIC_WIN, v);
}

bool ioapic_route(uint64_t base, uint32_t gsi_base, uint32_t gsi, uint8_t vector, uint16_t flags, uint32_t dest) {
        uint32_t pins = ((ioapic_read(base, IOAPIC_VER) >> 16) & 0xff) + 1;
        if (gsi < gsi_base || gsi - gsi_base >= pins)
                return false;
        uint32_t pin = gsi - gsi_base;
        uint32_t lo = vector;
        /* MPS INTI polarity 3 = active low, trigger 3 = level; 0 = bus default (ISA: high, edge). */
        if ((flags & 3) == 3)
                lo |= REDIR_ACTIVE_LOW;
        if (((flags >> 2) & 3) == 3)
                lo |= REDIR_LEVEL;
        ioapic_write(base, IOAPIC_REDTBL + 2 * pin + 1, dest << 24);
        ioapic_write(base, IOAPIC_REDTBL + 2 * pin, lo);
        return true;
}

void pic_disable(void) {
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
}

void apic_timer_irq(void) {
        timer_expired = true;
}

bool wait_until(bool (*done)(void), uint64_t ns) {
        timer_expired = false;
        lapic_write(LAPIC_TIMER_DIV, TIMER_DIV_1);
        lapic_write(LAPIC_LVT_TIMER, VEC_TIMER); /* one-shot */
        lapic_write(LAPIC_TIMER_INIT, ns > 0xffffffffu ? 0xffffffffu : (uint32_t) (ns ? ns : 1));
        bool r;
        for (;;) {
                uint32_t snap = irq_count;
                r = done && done();
                if (r || timer_expired)
                        break;
                cpu_wait(snap);
        }
        uint32_t init = lapic_read(LAPIC_TIMER_INIT), cur = lapic_read(LAPIC_TIMER_CUR);
        wait_last_ns = timer_expired ? init : init - cur;
        lapic_write(LAPIC_TIMER_INIT, 0);
        return r;
}

void sleep_ns(uint64_t ns) {
        (void) wait_until(NULL, ns);
}
