/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "lib.h"
#include "user.h"

#define VEC_UD 6
#define VEC_GP 13
#define OPCODE_HLT 0xf4
#define UCALL_REPORT_CPL 1
#define USER_LOOP 10000000ULL

static uint8_t user_stack[8192] __attribute__((aligned(16)));
static uint64_t ucall_count, reported_cpl = ~0ULL;

static inline void ucall(uint64_t nr, uint64_t arg) {
        __asm__ volatile("hlt" :: "a"(nr), "D"(arg) : "memory");
}

/* Runs at CPL 3. */
static void user_main(void) {
        uint16_t cs;
        __asm__ volatile("mov %%cs, %0" : "=r"(cs));
        ucall(UCALL_REPORT_CPL, cs & 3);

        uint64_t sum = 0;
        for (uint64_t i = 0; i < USER_LOOP; i++) {
                sum += i ^ (sum >> 3);
                __asm__ volatile("" : "+r"(sum));
        }
        __asm__ volatile("ud2" :: "a"(sum));
        __builtin_unreachable();
}

bool user_trap(struct trap_frame *f) {
        if (f->vector == VEC_UD)
                user_exit(f->rax);
        if (f->vector == VEC_GP && f->error == 0 && *(const uint8_t *) (uintptr_t) f->rip == OPCODE_HLT) {
                ucall_count++;
                if (f->rax == UCALL_REPORT_CPL)
                        reported_cpl = f->rdi;
                f->rip += 1;
                return true;
        }
        kprintf("user: unexpected exception %lu error 0x%lx at rip 0x%lx\n", f->vector, f->error, f->rip);
        user_exit(~0ULL);
}

void user_selftest(void) {
        ucall_count = 0;
        reported_cpl = ~0ULL;
        uint64_t sum = user_enter(user_main, (uintptr_t) (user_stack + sizeof(user_stack) - 8));
        kprintf("user: cpl=%lu loop=%lu sum=0x%lx ucalls=%lu\n", reported_cpl, (uint64_t) USER_LOOP, sum,
                ucall_count);
}
