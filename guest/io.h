/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Port and MMIO accessors. The guest runs identity-mapped, so a physical
 * address is also a pointer. */

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }

static inline uint8_t inb(uint16_t port) {
        uint8_t v;
        __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
        return v;
}

static inline uint16_t inw(uint16_t port) {
        uint16_t v;
        __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
        return v;
}

static inline uint32_t inl(uint16_t port) {
        uint32_t v;
        __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
        return v;
}

/* A pointer to a physical address; hidden from the compiler so low
 * addresses (the BIOS data area) are not taken for NULL arithmetic. */
static inline void *phys_ptr(uint64_t addr) {
        __asm__("" : "+r"(addr));
        return (void *) (uintptr_t) addr;
}

static inline uint8_t mmio_read8(uint64_t addr) { return *(volatile uint8_t *) (uintptr_t) addr; }
static inline uint16_t mmio_read16(uint64_t addr) { return *(volatile uint16_t *) (uintptr_t) addr; }
static inline uint32_t mmio_read32(uint64_t addr) { return *(volatile uint32_t *) (uintptr_t) addr; }
static inline void mmio_write32(uint64_t addr, uint32_t v) { *(volatile uint32_t *) (uintptr_t) addr = v; }
static inline void mmio_write16(uint64_t addr, uint16_t v) { *(volatile uint16_t *) (uintptr_t) addr = v; }
static inline void mmio_write8(uint64_t addr, uint8_t v) { *(volatile uint8_t *) (uintptr_t) addr = v; }

static inline uint64_t rdmsr(uint32_t msr) {
        uint32_t lo, hi;
        __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
        return (uint64_t) hi << 32 | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v) {
        __asm__ volatile("wrmsr" :: "c"(msr), "a"((uint32_t) v), "d"((uint32_t) (v >> 32)));
}

static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }

/* Unaligned little-endian reads of firmware tables. */
static inline uint16_t get16(const void *p) { uint16_t v; __builtin_memcpy(&v, p, 2); return v; }
static inline uint32_t get32(const void *p) { uint32_t v; __builtin_memcpy(&v, p, 4); return v; }
static inline uint64_t get64(const void *p) { uint64_t v; __builtin_memcpy(&v, p, 8); return v; }
