/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The swap file's I/O: the plan of a SwapOut chunk's runs (which pages,
 * bridged gaps, pages from before never overwritten), write and read jobs
 * (errors with their range) and the I/O thread (jobs handed back in
 * order). */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <string.h>
#include <unistd.h>

#include "swap.h"
#include "swap-io.h"

#define P 4096

/* Builds next/read from a pattern: 'D' data read now, 'z' zero read now,
 * 'Z' zero from before, 'F' in the file from before (not read). */
static uint64_t pattern(const char *pat, uint8_t *next, bool *read) {
        uint64_t n = strlen(pat);

        for (uint64_t i = 0; i < n; i++) {
                read[i] = pat[i] == 'D' || pat[i] == 'z';
                next[i] = pat[i] == 'D' || pat[i] == 'F' ? SWAP_PAGE_FILE : SWAP_PAGE_ZERO;
        }
        return n;
}

static size_t plan(const char *pat, uint64_t gap, struct swap_run *runs) {
        uint8_t next[64];
        bool read[64];
        uint64_t n = pattern(pat, next, read);

        return swap_plan_runs(next, read, n, gap, P, 1 << 20, runs);
}

static void assert_run(const struct swap_run *r, uint64_t first, uint64_t n) {
        g_assert_cmpuint(r->buf_off, ==, first * P);
        g_assert_cmpuint(r->file_off, ==, (1 << 20) + first * P);
        g_assert_cmpuint(r->len, ==, n * P);
}

static void test_plan_only_data_pages_without_gap(void) {
        struct swap_run runs[64];

        g_assert_cmpuint(plan("DzDDzzD", 0, runs), ==, 3);
        assert_run(&runs[0], 0, 1);
        assert_run(&runs[1], 2, 2);
        assert_run(&runs[2], 6, 1);
}

static void test_plan_bridges_short_gaps_only(void) {
        struct swap_run runs[64];

        /* Gaps of 1 and 2 zero pages are bridged, one of 3 is not. */
        g_assert_cmpuint(plan("DzDzzDzzzD", 2, runs), ==, 2);
        assert_run(&runs[0], 0, 6);
        assert_run(&runs[1], 9, 1);
}

static void test_plan_never_writes_over_file_pages_from_before(void) {
        struct swap_run runs[64];

        g_assert_cmpuint(plan("DFD", 8, runs), ==, 2);
        assert_run(&runs[0], 0, 1);
        assert_run(&runs[1], 2, 1);
        /* Zero pages from before may be bridged: the file holds nothing of theirs. */
        g_assert_cmpuint(plan("DZD", 8, runs), ==, 1);
        assert_run(&runs[0], 0, 3);
}

static void test_plan_trailing_zeros_not_written(void) {
        struct swap_run runs[64];

        g_assert_cmpuint(plan("zzDzz", 8, runs), ==, 1);
        assert_run(&runs[0], 2, 1);
        g_assert_cmpuint(plan("zzzz", 8, runs), ==, 0);
        g_assert_cmpuint(plan("FFFF", 8, runs), ==, 0);
        g_assert_cmpuint(plan("", 8, runs), ==, 0);
}

static int tmpfile_fd(void) {
        g_autofree char *path = g_build_filename(g_get_tmp_dir(), "polyvm-test-swap-io-XXXXXX", NULL);
        int fd = g_mkstemp(path);

        g_assert_cmpint(fd, >=, 0);
        (void) unlink(path);
        return fd;
}

static void test_job_writes_runs_at_their_offsets(void) {
        static uint8_t buf[4 * P];
        struct swap_run runs[] = { { 0, 8 * P, P }, { 2 * P, 20 * P, 2 * P } };
        struct swap_job job = { .buf = buf, .runs = runs, .n_runs = 2, .sync = true };
        uint8_t back[2 * P];

        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t) (i / P + 1);
        job.fd = tmpfile_fd();
        job.error = 1;
        swap_job_run(&job);
        g_assert_cmpint(job.error, ==, 0);
        g_assert_cmpint(pread(job.fd, back, P, 8 * P), ==, P);
        g_assert_true(memcmp(back, buf, P) == 0);
        g_assert_cmpint(pread(job.fd, back, 2 * P, 20 * P), ==, 2 * P);
        g_assert_true(memcmp(back, buf + 2 * P, 2 * P) == 0);
        close(job.fd);
}

static void test_job_error_names_the_failing_run(void) {
        static uint8_t buf[2 * P];
        struct swap_run runs[] = { { 0, 3 * P, P }, { P, 9 * P, P } };
        struct swap_job job = { .buf = buf, .runs = runs, .n_runs = 2 };

        job.fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
        g_assert_cmpint(job.fd, >=, 0);
        swap_job_run(&job);
        g_assert_cmpint(job.error, ==, -ENOSPC);
        g_assert_cmpuint(job.error_off, ==, 3 * P);
        g_assert_cmpuint(job.error_len, ==, P);
        close(job.fd);
}

static void test_read_job_reads_runs_and_reports_the_end(void) {
        static uint8_t buf[4 * P], data[8 * P];
        struct swap_run runs[] = { { P, 2 * P, P }, { 2 * P, 5 * P, 2 * P } };
        struct swap_job job = { .buf = buf, .runs = runs, .n_runs = 2, .read = true, .sync = true };

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) (i / P + 7);
        job.fd = tmpfile_fd();
        g_assert_cmpint(pwrite(job.fd, data, sizeof(data), 0), ==, sizeof(data));
        swap_job_run(&job);
        g_assert_cmpint(job.error, ==, 0);
        g_assert_true(memcmp(buf + P, data + 2 * P, P) == 0);
        g_assert_true(memcmp(buf + 2 * P, data + 5 * P, 2 * P) == 0);
        /* Past the file's end: ENODATA, naming the run. */
        runs[1].file_off = 7 * P;
        swap_job_run(&job);
        g_assert_cmpint(job.error, ==, -ENODATA);
        g_assert_cmpuint(job.error_off, ==, 7 * P);
        g_assert_cmpuint(job.error_len, ==, 2 * P);
        close(job.fd);
}

struct done_log {
        struct swap_job *order[8];
        unsigned n;
        sd_event *event;
};

static void on_done(struct swap_job *job, void *userdata) {
        struct done_log *log = userdata;

        g_assert_cmpuint(log->n, <, G_N_ELEMENTS(log->order));
        log->order[log->n++] = job;
        if (log->n == 5)
                sd_event_exit(log->event, 0);
}

static void test_io_hands_jobs_back_in_order(void) {
        static uint8_t buf[P];
        struct swap_run runs[5];
        struct swap_job jobs[5];
        struct done_log log = { 0 };
        struct swap_io *w = NULL;
        int fd = tmpfile_fd();

        g_assert_cmpint(sd_event_new(&log.event), >=, 0);
        g_assert_cmpint(swap_io_new(log.event, on_done, &log, &w), ==, 0);
        for (unsigned i = 0; i < 5; i++) {
                runs[i] = (struct swap_run) { 0, i * P, P };
                jobs[i] = (struct swap_job) { .fd = fd, .buf = buf, .runs = &runs[i], .n_runs = 1, .error = 1 };
                swap_io_submit(w, &jobs[i]);
        }
        g_assert_cmpint(sd_event_loop(log.event), ==, 0);
        for (unsigned i = 0; i < 5; i++) {
                g_assert_true(log.order[i] == &jobs[i]);
                g_assert_cmpint(jobs[i].error, ==, 0);
        }
        g_assert_cmpint(lseek(fd, 0, SEEK_END), ==, 5 * P);
        swap_io_free(w);
        sd_event_unref(log.event);
        close(fd);
}

/* Freed with jobs queued: the thread stops, nothing is handed back. */
static void test_io_free_with_jobs_queued(void) {
        static uint8_t buf[P];
        struct swap_run run = { 0, 0, P };
        struct swap_job jobs[3];
        struct done_log log = { 0 };
        struct swap_io *w = NULL;
        int fd = tmpfile_fd();

        g_assert_cmpint(sd_event_new(&log.event), >=, 0);
        g_assert_cmpint(swap_io_new(log.event, on_done, &log, &w), ==, 0);
        for (unsigned i = 0; i < 3; i++) {
                jobs[i] = (struct swap_job) { .fd = fd, .buf = buf, .runs = &run, .n_runs = 1 };
                swap_io_submit(w, &jobs[i]);
        }
        swap_io_free(w);
        g_assert_cmpuint(log.n, ==, 0);
        sd_event_unref(log.event);
        close(fd);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/swap-io/plan-only-data-pages-without-gap", test_plan_only_data_pages_without_gap);
        g_test_add_func("/swap-io/plan-bridges-short-gaps-only", test_plan_bridges_short_gaps_only);
        g_test_add_func("/swap-io/plan-never-writes-over-file-pages-from-before",
                        test_plan_never_writes_over_file_pages_from_before);
        g_test_add_func("/swap-io/plan-trailing-zeros-not-written", test_plan_trailing_zeros_not_written);
        g_test_add_func("/swap-io/job-writes-runs-at-their-offsets", test_job_writes_runs_at_their_offsets);
        g_test_add_func("/swap-io/job-error-names-the-failing-run", test_job_error_names_the_failing_run);
        g_test_add_func("/swap-io/read-job-reads-runs-and-reports-the-end",
                        test_read_job_reads_runs_and_reports_the_end);
        g_test_add_func("/swap-io/hands-jobs-back-in-order", test_io_hands_jobs_back_in_order);
        g_test_add_func("/swap-io/free-with-jobs-queued", test_io_free_with_jobs_queued);
        return g_test_run();
}
