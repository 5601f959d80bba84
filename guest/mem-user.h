/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The CPL 3 side of the memory commands: one job per run, described by a
 * struct mem_job in memory both sides see (the whole identity map is
 * user-accessible), so a 200 MiB loop enters the kernel zero times. */

#include <stdbool.h>
#include <stdint.h>

#define MEM_PAGE 4096UL
#define MEM_BAD_MAX 8        /* bad words reported one by one */
#define MEM_HIST_SUB 32      /* histogram buckets per power of two (~3%) */
#define MEM_HIST_BUCKETS (60 * MEM_HIST_SUB)
#define MEM_RAND_STRIDE 2654435761UL /* a prime: i * it mod pages is a permutation */

enum mem_op { MEM_FILL, MEM_CHECK, MEM_WRITE, MEM_TOUCH_SEQ, MEM_TOUCH_RAND };

struct mem_bad {
        uint64_t paddr, got, want;
};

struct mem_job {
        /* in */
        enum mem_op op;
        uint64_t seed;
        uint64_t base, pages; /* the region: page-aligned physical addresses */
        uint64_t rounds;      /* memwrite: rounds to run; memcheck: rounds to expect */
        uint64_t count;       /* memtouch: pages to touch */
        /* out */
        bool done;            /* set last: false means the user code faulted */
        uint64_t sum;         /* FNV-1a 64 over the 64-bit words read or written */
        uint64_t n_bad;
        struct mem_bad bad[MEM_BAD_MAX];
        uint64_t tsc_start, tsc_end;
        uint32_t hist[MEM_HIST_BUCKETS]; /* memtouch: cycles per touch */
};

/* Word at physical address paddr after memfill SEED (before any memwrite):
 * the splitmix64 finaliser of seed * 0xd1b54a32d192ed03 ^ paddr on pages
 * whose number (paddr >> 12) is even, 0 on odd pages. */
uint64_t mem_pattern_word(uint64_t seed, uint64_t paddr);

/* Runs job at CPL 3; returns job->done. */
bool mem_user_run(struct mem_job *job);

/* The smallest cycle count that falls into histogram bucket b. */
uint64_t mem_hist_bucket_low(unsigned b);
