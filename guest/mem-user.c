/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The loops of memfill/memcheck/memwrite/memtouch, run at CPL 3: user mode
 * runs natively on the production host while kernel mode is emulated at
 * ~3 MIPS (PLATFORM.md), so no loop here enters the kernel. Left with
 * `ud2`; a fault (say, a page the host could not give back) ends in
 * user_trap(), which reports it, and job->done stays false. */
#include "cpu.h"
#include "mem-user.h"

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL
#define SEED_MUL 0xd1b54a32d192ed03ULL
#define WORDS_PER_PAGE (MEM_PAGE / 8)

static uint8_t mem_user_stack[16384] __attribute__((aligned(16)));
static struct mem_job *current;

static inline uint64_t mix64(uint64_t z) {
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

uint64_t mem_pattern_word(uint64_t seed, uint64_t paddr) {
        return (paddr >> 12) & 1 ? 0 : mix64(seed * SEED_MUL ^ paddr);
}

static inline uint64_t tsc(void) {
        uint32_t lo, hi;
        /* lfence on both sides: the timed load neither starts before the
         * first read nor finishes after the second. */
        __asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) :: "memory");
        return (uint64_t) hi << 32 | lo;
}

static unsigned hist_bucket(uint64_t v) {
        if (v < MEM_HIST_SUB)
                return v;
        unsigned e = 63 - __builtin_clzll(v); /* >= 5 */
        return (e - 4) * MEM_HIST_SUB + ((v >> (e - 5)) & (MEM_HIST_SUB - 1));
}

uint64_t mem_hist_bucket_low(unsigned b) {
        if (b < MEM_HIST_SUB)
                return b;
        unsigned e = b / MEM_HIST_SUB + 4;
        return (uint64_t) (MEM_HIST_SUB + b % MEM_HIST_SUB) << (e - 5);
}

static void fill(struct mem_job *j) {
        uint64_t h = FNV_OFFSET, sk = j->seed * SEED_MUL;
        for (uint64_t pg = 0; pg < j->pages; pg++) {
                uint64_t paddr = j->base + pg * MEM_PAGE;
                volatile uint64_t *w = (volatile uint64_t *) (uintptr_t) paddr;
                bool zero = (paddr >> 12) & 1;
                for (uint64_t i = 0; i < WORDS_PER_PAGE; i++) {
                        uint64_t v = zero ? 0 : mix64(sk ^ (paddr + 8 * i));
                        w[i] = v;
                        h = (h ^ v) * FNV_PRIME;
                }
        }
        j->sum = h;
}

static void check(struct mem_job *j) {
        uint64_t h = FNV_OFFSET, sk = j->seed * SEED_MUL;
        for (uint64_t pg = 0; pg < j->pages; pg++) {
                uint64_t paddr = j->base + pg * MEM_PAGE;
                const volatile uint64_t *w = (const volatile uint64_t *) (uintptr_t) paddr;
                bool zero = (paddr >> 12) & 1;
                for (uint64_t i = 0; i < WORDS_PER_PAGE; i++) {
                        uint64_t want = zero ? 0 : mix64(sk ^ (paddr + 8 * i));
                        if (i == 0)
                                want += j->rounds; /* what memwrite added */
                        uint64_t got = w[i];
                        h = (h ^ got) * FNV_PRIME;
                        if (got != want) {
                                if (j->n_bad < MEM_BAD_MAX)
                                        j->bad[j->n_bad] = (struct mem_bad) { paddr + 8 * i, got, want };
                                j->n_bad++;
                        }
                }
        }
        j->sum = h;
}

/* A read-modify-write of word 0 of every page, round after round: a write
 * lost anywhere (or a stale page given back) leaves that page behind by
 * one, which memcheck sees, whichever round it happened in. */
static void write_rounds(struct mem_job *j) {
        for (uint64_t r = 0; r < j->rounds; r++)
                for (uint64_t pg = 0; pg < j->pages; pg++)
                        (*(volatile uint64_t *) (uintptr_t) (j->base + pg * MEM_PAGE))++;
}

static void touch(struct mem_job *j, bool rand) {
        uint64_t sum = 0;
        for (unsigned b = 0; b < MEM_HIST_BUCKETS; b++)
                j->hist[b] = 0;
        j->tsc_start = tsc();
        for (uint64_t i = 0; i < j->count; i++) {
                uint64_t pg = (rand ? i * MEM_RAND_STRIDE : i) % j->pages;
                const volatile uint64_t *w = (const volatile uint64_t *) (uintptr_t) (j->base + pg * MEM_PAGE);
                uint64_t t0 = tsc();
                sum += *w;
                uint64_t t1 = tsc();
                j->hist[hist_bucket(t1 - t0)]++;
        }
        j->tsc_end = tsc();
        j->sum = sum;
}

/* Runs at CPL 3. */
static void mem_user_main(void) {
        struct mem_job *j = current;
        switch (j->op) {
        case MEM_FILL:
                fill(j);
                break;
        case MEM_CHECK:
                check(j);
                break;
        case MEM_WRITE:
                write_rounds(j);
                break;
        case MEM_TOUCH_SEQ:
        case MEM_TOUCH_RAND:
                touch(j, j->op == MEM_TOUCH_RAND);
                break;
        }
        j->done = true;
        __asm__ volatile("ud2" ::: "memory");
        __builtin_unreachable();
}

bool mem_user_run(struct mem_job *job) {
        job->done = false;
        job->n_bad = 0;
        job->sum = 0;
        current = job;
        (void) user_enter(mem_user_main, (uintptr_t) (mem_user_stack + sizeof(mem_user_stack) - 8));
        return job->done;
}
