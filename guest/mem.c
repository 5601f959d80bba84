/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The shell side of memfill/memcheck/memwrite/memtouch: checks the
 * arguments, picks the region, runs the CPL 3 loop (mem-user.c) and prints
 * what it found. Kept short: every instruction here is emulated on the
 * production host. */
#include "apic.h"
#include "bootinfo.h"
#include "lib.h"
#include "mem-user.h"
#include "mem.h"

#define MIB (1UL << 20)
#define REGION_ALIGN (2 * MIB)      /* the image's last 2 MiB page stays out */
#define MAPPED_END (4ULL << 30)     /* the identity map's end (trap.c) */
#define TOUCH_MAX (1UL << 32)      /* keeps count * 1e9 within 64 bits */
#define CALIBRATE_NS 50000000ULL    /* TSC against the LAPIC timer */

extern char __image_end[];

static struct mem_job job;
static uint64_t tsc_khz; /* 0 until calibrated, or if that failed */

static inline uint64_t rdtsc(void) {
        uint32_t lo, hi;
        __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
        return (uint64_t) hi << 32 | lo;
}

/* The largest usable e820 window above the image (and below the end of the
 * identity map), page-aligned: [*ret_base, *ret_base + *ret_bytes). */
static bool mem_window(uint64_t *ret_base, uint64_t *ret_bytes) {
        uint64_t floor = ((uintptr_t) __image_end + REGION_ALIGN - 1) & ~(REGION_ALIGN - 1);
        uint64_t best = 0, best_base = 0;
        for (unsigned i = 0; i < bootinfo.n_e820; i++) {
                const struct e820_entry *e = &bootinfo.e820[i];
                if (e->type != E820_RAM)
                        continue;
                uint64_t start = (e->addr + MEM_PAGE - 1) & ~(MEM_PAGE - 1);
                uint64_t end = (e->addr + e->size) & ~(MEM_PAGE - 1);
                if (start < floor)
                        start = floor;
                if (end > MAPPED_END)
                        end = MAPPED_END;
                if (end > start && end - start > best) {
                        best = end - start;
                        best_base = start;
                }
        }
        *ret_base = best_base;
        *ret_bytes = best;
        return best > 0;
}

static bool parse_arg(const char *cmd, const char *what, const char *s, uint64_t *ret) {
        if (parse_u64(s, ret))
                return true;
        kprintf("%s: bad %s '%s': not a number (decimal or 0x hex)\n", cmd, what, s);
        return false;
}

/* MIB MiB at the start of the window, or a message saying what fits. */
static bool region(const char *cmd, const char *arg) {
        uint64_t mib, base, bytes;
        if (!parse_arg(cmd, "MIB", arg, &mib))
                return false;
        if (!mem_window(&base, &bytes)) {
                kprintf("%s: no usable RAM above the guest image (ends at 0x%lx)\n", cmd, (uintptr_t) __image_end);
                return false;
        }
        if (mib == 0 || mib > bytes / MIB) {
                kprintf("%s: MIB %lu out of range: 1..%lu MiB fit in RAM above the guest image (0x%lx-0x%lx)\n", cmd,
                        mib, bytes / MIB, base, base + bytes);
                return false;
        }
        job.base = base;
        job.pages = mib * MIB / MEM_PAGE;
        return true;
}

static uint64_t cycles_to_ns(uint64_t c) {
        return c < (1ULL << 43) ? c * 1000000 / tsc_khz : c / tsc_khz * 1000000;
}

static uint64_t elapsed_ms(uint64_t t0) {
        return tsc_khz ? (rdtsc() - t0) / tsc_khz : 0;
}

/* The guest's clock is the LAPIC timer at 1 GHz (apic.h): count TSC ticks
 * across one sleep on it. Once per boot; 0 if the TSC does not move. */
static void calibrate_tsc(void) {
        if (tsc_khz)
                return;
        uint64_t t0 = rdtsc();
        sleep_ns(CALIBRATE_NS);
        uint64_t t1 = rdtsc(), ns = wait_last_ns;
        if (ns && t1 > t0)
                tsc_khz = (t1 - t0) * 1000000 / ns;
}

/* Sets the inputs only: clearing the whole job (its histogram) at CPL 0
 * would cost thousands of emulated instructions; the user side clears it. */
static void job_reset(enum mem_op op) {
        job.op = op;
        job.seed = job.base = job.pages = job.rounds = job.count = 0;
        calibrate_tsc();
}

static bool run(const char *cmd) {
        if (mem_user_run(&job))
                return true;
        kprintf("%s: aborted: the CPL 3 loop faulted (see the line above)\n", cmd);
        return false;
}

static void cmd_memfill(int argc, char **argv) {
        if (argc != 3) {
                kprintf("memfill: usage: memfill SEED MIB\n");
                return;
        }
        job_reset(MEM_FILL);
        if (!parse_arg(argv[0], "SEED", argv[1], &job.seed) || !region(argv[0], argv[2]))
                return;
        uint64_t t0 = rdtsc();
        if (!run(argv[0]))
                return;
        kprintf("memfill: region 0x%lx-0x%lx, %lu pages (every odd page number zero), %lu ms\n", job.base,
                job.base + job.pages * MEM_PAGE, job.pages, elapsed_ms(t0));
        kprintf("memfill: %lu %lu sum 0x%016lx\n", job.seed, job.pages * MEM_PAGE / MIB, job.sum);
}

static void cmd_memcheck(int argc, char **argv) {
        if (argc != 3 && argc != 4) {
                kprintf("memcheck: usage: memcheck SEED MIB [ROUNDS]\n");
                return;
        }
        job_reset(MEM_CHECK);
        if (!parse_arg(argv[0], "SEED", argv[1], &job.seed) || !region(argv[0], argv[2]) ||
            (argc == 4 && !parse_arg(argv[0], "ROUNDS", argv[3], &job.rounds)))
                return;
        uint64_t t0 = rdtsc();
        if (!run(argv[0]))
                return;
        kprintf("memcheck: region 0x%lx-0x%lx, %lu pages, rounds %lu, %lu ms\n", job.base,
                job.base + job.pages * MEM_PAGE, job.pages, job.rounds, elapsed_ms(t0));
        if (job.n_bad == 0) {
                kprintf("memcheck: ok sum 0x%016lx\n", job.sum);
                return;
        }
        for (uint64_t i = 0; i < job.n_bad && i < MEM_BAD_MAX; i++)
                kprintf("memcheck: BAD at 0x%lx got 0x%016lx want 0x%016lx\n", job.bad[i].paddr, job.bad[i].got,
                        job.bad[i].want);
        kprintf("memcheck: FAILED %lu bad word(s) of %lu, sum 0x%016lx\n", job.n_bad, job.pages * (MEM_PAGE / 8),
                job.sum);
}

static void cmd_memwrite(int argc, char **argv) {
        if (argc != 4) {
                kprintf("memwrite: usage: memwrite SEED MIB ROUNDS\n");
                return;
        }
        job_reset(MEM_WRITE);
        if (!parse_arg(argv[0], "SEED", argv[1], &job.seed) || !region(argv[0], argv[2]) ||
            !parse_arg(argv[0], "ROUNDS", argv[3], &job.rounds))
                return;
        if (job.rounds == 0) {
                kprintf("memwrite: ROUNDS must be at least 1\n");
                return;
        }
        /* Tests start SwapOut on this line: the loop runs from here on. */
        kprintf("memwrite: running %lu rounds over %lu pages\n", job.rounds, job.pages);
        uint64_t t0 = rdtsc();
        if (!run(argv[0]))
                return;
        kprintf("memwrite: done %lu rounds over %lu pages, %lu ms\n", job.rounds, job.pages, elapsed_ms(t0));
}

/* The middle of histogram bucket b, in cycles. */
static uint64_t bucket_mid(unsigned b) {
        uint64_t lo = mem_hist_bucket_low(b);
        return b + 1 < MEM_HIST_BUCKETS ? lo + (mem_hist_bucket_low(b + 1) - lo) / 2 : lo;
}

/* The value below which a share num/den of the touches fell, in cycles. */
static uint64_t percentile(uint64_t num, uint64_t den) {
        uint64_t rank = (job.count * num + den - 1) / den, seen = 0;
        for (unsigned b = 0; b < MEM_HIST_BUCKETS; b++) {
                seen += job.hist[b];
                if (seen >= rank && seen > 0)
                        return bucket_mid(b);
        }
        return 0;
}

static void print_us(uint64_t cycles) {
        uint64_t ns = cycles_to_ns(cycles);
        kprintf("%lu.%03lu us", ns / 1000, ns % 1000);
}

static void cmd_memtouch(int argc, char **argv) {
        if (argc != 4) {
                kprintf("memtouch: usage: memtouch seq|rand MIB COUNT\n");
                return;
        }
        if (strcmp(argv[1], "seq") == 0)
                job_reset(MEM_TOUCH_SEQ);
        else if (strcmp(argv[1], "rand") == 0)
                job_reset(MEM_TOUCH_RAND);
        else {
                kprintf("memtouch: the order must be seq or rand, not '%s'\n", argv[1]);
                return;
        }
        if (!region(argv[0], argv[2]) || !parse_arg(argv[0], "COUNT", argv[3], &job.count))
                return;
        if (job.count == 0 || job.count > TOUCH_MAX) {
                kprintf("memtouch: COUNT %lu out of range: 1..%lu\n", job.count, TOUCH_MAX);
                return;
        }
        if (!run(argv[0]))
                return;
        uint64_t cycles = job.tsc_end - job.tsc_start;
        if (!tsc_khz) {
                kprintf("memtouch: %lu pages, %lu cycles, p50 %lu cycles, p99 %lu cycles (TSC not calibrated)\n",
                        job.count, cycles, percentile(1, 2), percentile(99, 100));
                return;
        }
        uint64_t ns = cycles_to_ns(cycles);
        kprintf("memtouch: %s %lu MiB from 0x%lx, tsc %lu kHz, max ", argv[1], job.pages * MEM_PAGE / MIB, job.base,
                tsc_khz);
        print_us(percentile(1, 1));
        kprintf("\nmemtouch: %lu pages, %lu pages/s, p50 ", job.count, ns ? job.count * 1000000000 / ns : 0);
        print_us(percentile(1, 2));
        kprintf(", p99 ");
        print_us(percentile(99, 100));
        kprintf("\n");
}

void mem_cmd(int argc, char **argv) {
        if (strcmp(argv[0], "memfill") == 0)
                cmd_memfill(argc, argv);
        else if (strcmp(argv[0], "memcheck") == 0)
                cmd_memcheck(argc, argv);
        else if (strcmp(argv[0], "memwrite") == 0)
                cmd_memwrite(argc, argv);
        else
                cmd_memtouch(argc, argv);
}
