/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pure parts of memmgr's swap: zero-page detection, the latency
 * histogram's percentiles, fault address to guest offset, the file path. */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "swap.h"

static void test_zero_page_detected(void) {
        static uint64_t page[512];

        memset(page, 0, sizeof(page));
        g_assert_true(swap_page_is_zero(page, sizeof(page)));
}

static void test_nonzero_byte_anywhere_is_not_zero(void) {
        static uint8_t page[4096];

        for (size_t i = 0; i < sizeof(page); i += 509) {
                memset(page, 0, sizeof(page));
                page[i] = 1;
                g_assert_false(swap_page_is_zero(page, sizeof(page)));
        }
        memset(page, 0, sizeof(page));
        page[sizeof(page) - 1] = 0x80;
        g_assert_false(swap_page_is_zero(page, sizeof(page)));
}

static void test_histogram_empty_is_zero(void) {
        struct swap_histogram h = { 0 };

        g_assert_cmpuint(swap_histogram_percentile(&h, 0.5), ==, 0);
        g_assert_cmpuint(swap_histogram_percentile(&h, 0.99), ==, 0);
}

static void test_histogram_percentiles(void) {
        struct swap_histogram h = { 0 };

        /* 98 fast faults (5 µs: bucket < 8), 2 slow ones (3000 µs: < 4096). */
        for (int i = 0; i < 98; i++)
                swap_histogram_add(&h, 5);
        swap_histogram_add(&h, 3000);
        swap_histogram_add(&h, 3000);
        g_assert_cmpuint(h.count, ==, 100);
        g_assert_cmpuint(swap_histogram_percentile(&h, 0.5), ==, 8);
        g_assert_cmpuint(swap_histogram_percentile(&h, 0.98), ==, 8);
        g_assert_cmpuint(swap_histogram_percentile(&h, 0.99), ==, 4096);
        g_assert_cmpuint(swap_histogram_percentile(&h, 1.0), ==, 4096);
}

static void test_histogram_bounds(void) {
        struct swap_histogram h = { 0 };

        swap_histogram_add(&h, 0);
        g_assert_cmpuint(h.buckets[0], ==, 1);
        g_assert_cmpuint(swap_histogram_percentile(&h, 0.5), ==, 1);
        /* Anything huge lands in the last bucket instead of overflowing. */
        swap_histogram_add(&h, UINT64_MAX);
        g_assert_cmpuint(h.buckets[SWAP_HIST_BUCKETS - 1], ==, 1);
        g_assert_cmpuint(swap_histogram_percentile(&h, 1.0), ==, UINT64_C(1) << (SWAP_HIST_BUCKETS - 1));
}

static void test_offset_math(void) {
        uint64_t off = 99;

        g_assert_cmpint(swap_offset(0x7f0000000000, 1 << 20, 4096, 0x7f0000000000, &off), ==, 0);
        g_assert_cmpuint(off, ==, 0);
        g_assert_cmpint(swap_offset(0x7f0000000000, 1 << 20, 4096, 0x7f0000003fff, &off), ==, 0);
        g_assert_cmpuint(off, ==, 0x3000);
        g_assert_cmpint(swap_offset(0x7f0000000000, 1 << 20, 4096, 0x7f00000fffff, &off), ==, 0);
        g_assert_cmpuint(off, ==, 0xff000);
}

static void test_offset_outside_is_erange(void) {
        uint64_t off = 99;

        g_assert_cmpint(swap_offset(0x10000, 0x2000, 4096, 0xffff, &off), ==, -ERANGE);
        g_assert_cmpint(swap_offset(0x10000, 0x2000, 4096, 0x12000, &off), ==, -ERANGE);
        g_assert_cmpint(swap_offset(0x10000, 0x2000, 4096, UINT64_MAX, &off), ==, -ERANGE);
        g_assert_cmpuint(off, ==, 99);
}

static void test_state_names(void) {
        g_assert_cmpstr(swap_state_to_string(SWAP_READY), ==, "ready");
        g_assert_cmpstr(swap_state_to_string(SWAP_SWAPPING_OUT), ==, "swapping-out");
        g_assert_cmpstr(swap_state_to_string(SWAP_ACTIVE), ==, "active");
        g_assert_cmpstr(swap_state_to_string(SWAP_SWAPPING_IN), ==, "swapping-in");
        g_assert_cmpstr(swap_state_to_string(SWAP_FAILED), ==, "failed");
        g_assert_cmpstr(swap_state_to_string((enum swap_state) 42), ==, "unknown");
}

static void test_file_path(void) {
        char *p = NULL;

        g_assert_cmpint(swap_file_path("/var/lib/polyvm", "alpha", &p), ==, 0);
        g_assert_cmpstr(p, ==, "/var/lib/polyvm/alpha.swap");
        free(p);
}

static void test_pwrite_full_writes_everything(void) {
        g_autofree char *path = g_build_filename(g_get_tmp_dir(), "polyvm-test-swap-XXXXXX", NULL);
        char buf[3 * 4096], back[sizeof(buf)];
        int fd = g_mkstemp(path);

        g_assert_cmpint(fd, >=, 0);
        (void) unlink(path);
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (char) (i * 7 + 1);
        g_assert_cmpint(swap_pwrite_full(fd, buf, sizeof(buf), 8192), ==, 0);
        g_assert_cmpint(pread(fd, back, sizeof(back), 8192), ==, sizeof(back));
        g_assert_true(memcmp(buf, back, sizeof(buf)) == 0);
        close(fd);
}

/* /dev/full: every write fails as on a full disk; the error is passed on. */
static void test_pwrite_full_reports_enospc(void) {
        char buf[4096] = { 1 };
        int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(swap_pwrite_full(fd, buf, sizeof(buf), 0), ==, -ENOSPC);
        close(fd);
}

static void test_pwrite_full_bad_fd_is_error(void) {
        char buf[16] = { 0 };
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(swap_pwrite_full(fd, buf, sizeof(buf), 0), ==, -EBADF);
        close(fd);
        g_assert_cmpint(swap_pwrite_full(-1, buf, sizeof(buf), 0), ==, -EBADF);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/swap/zero-page-detected", test_zero_page_detected);
        g_test_add_func("/swap/nonzero-byte-anywhere-is-not-zero", test_nonzero_byte_anywhere_is_not_zero);
        g_test_add_func("/swap/histogram-empty-is-zero", test_histogram_empty_is_zero);
        g_test_add_func("/swap/histogram-p50-p99", test_histogram_percentiles);
        g_test_add_func("/swap/histogram-bounds", test_histogram_bounds);
        g_test_add_func("/swap/offset-math", test_offset_math);
        g_test_add_func("/swap/offset-outside-is-erange", test_offset_outside_is_erange);
        g_test_add_func("/swap/state-names", test_state_names);
        g_test_add_func("/swap/file-path", test_file_path);
        g_test_add_func("/swap/pwrite-full-writes-everything", test_pwrite_full_writes_everything);
        g_test_add_func("/swap/pwrite-full-reports-enospc", test_pwrite_full_reports_enospc);
        g_test_add_func("/swap/pwrite-full-bad-fd-is-error", test_pwrite_full_bad_fd_is_error);
        return g_test_run();
}
