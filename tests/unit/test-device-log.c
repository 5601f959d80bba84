/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How devmgr relays a device's stderr (device-log.c): priorities kept but
 * capped at LOG_ERR, control characters escaped, no prefix a device can
 * forge; and lines read from a real pipe, including a partial last line,
 * a line longer than the buffer and what is left when the process is gone. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "device-log.h"
#include "log.h"

#include <glib.h>

static void test_priority_is_kept_but_capped_at_err(void) {
        char out[256];

        g_assert_cmpint(device_log_format_line("<7>polyvm x: dbg", 16, out, sizeof(out)), ==, LOG_DEBUG);
        g_assert_cmpstr(out, ==, "polyvm x: dbg");
        g_assert_cmpint(device_log_format_line("<4>w", 4, out, sizeof(out)), ==, LOG_WARNING);
        g_assert_cmpint(device_log_format_line("<3>e", 4, out, sizeof(out)), ==, LOG_ERR);
        /* A device cannot raise alerts. */
        g_assert_cmpint(device_log_format_line("<0>emerg", 8, out, sizeof(out)), ==, LOG_ERR);
        g_assert_cmpstr(out, ==, "emerg");
        /* No prefix, or a malformed one: info, and the text stays as it is. */
        g_assert_cmpint(device_log_format_line("plain", 5, out, sizeof(out)), ==, LOG_INFO);
        g_assert_cmpstr(out, ==, "plain");
        g_assert_cmpint(device_log_format_line("<9>x", 4, out, sizeof(out)), ==, LOG_INFO);
        g_assert_cmpstr(out, ==, "<9>x");
        g_assert_cmpint(device_log_format_line("<", 1, out, sizeof(out)), ==, LOG_INFO);
}

static void test_control_bytes_are_escaped(void) {
        char out[256];
        const char line[] = "<6>a\rb\x1b[31mc\0d\x7f";

        g_assert_cmpint(device_log_format_line(line, sizeof(line) - 1, out, sizeof(out)), ==, LOG_INFO);
        g_assert_cmpstr(out, ==, "a\\x0db\\x1b[31mc\\x00d\\x7f");
}

static void test_output_is_bounded(void) {
        char out[16];
        char line[100];

        memset(line, 'x', sizeof(line));
        device_log_format_line(line, sizeof(line), out, sizeof(out));
        g_assert_cmpuint(strlen(out), <, sizeof(out));
        memset(line, '\x01', sizeof(line));
        device_log_format_line(line, sizeof(line), out, sizeof(out));
        g_assert_cmpuint(strlen(out), <, sizeof(out));
        g_assert_cmpuint(strlen(out) % 4, ==, 0); /* no cut escape */
}

/* The whole path through a pipe and sd-event: devmgr's stderr is captured
 * through a second pipe and checked. */
static void test_lines_from_a_pipe_reach_the_log(void) {
        int dev[2], err[2], saved;
        sd_event *e = NULL;
        struct device_log *l = NULL;
        char buf[8192] = "";
        char big[DEVICE_LOG_LINE_MAX + 10];
        ssize_t n;

        g_assert_cmpint(pipe2(dev, O_CLOEXEC), ==, 0);
        g_assert_cmpint(pipe2(err, O_CLOEXEC | O_NONBLOCK), ==, 0);
        saved = dup(STDERR_FILENO);
        g_assert_cmpint(dup2(err[1], STDERR_FILENO), ==, STDERR_FILENO);
        log_set_max_level(LOG_DEBUG);

        g_assert_cmpint(sd_event_new(&e), >=, 0);
        g_assert_cmpint(device_log_new(e, dev[0], "/org/polyvm/DeviceManager1/device/7", &l), ==, 0);
        g_assert_cmpint(write(dev[1], "<4>polyvm serial#7: one\n<6>two\nthr", 34), ==, 34);
        memset(big, 'y', sizeof(big));
        g_assert_cmpint(write(dev[1], "ee\n", 3), ==, 3);
        g_assert_cmpint(write(dev[1], big, sizeof(big)), ==, (ssize_t) sizeof(big));
        g_assert_cmpint(write(dev[1], "\n", 1), ==, 1);
        for (int i = 0; i < 5; i++)
                g_assert_cmpint(sd_event_run(e, 100 * 1000), >=, 0);
        g_assert_cmpint(write(dev[1], "<3>last words", 13), ==, 13);
        close(dev[1]);
        l = device_log_free(l); /* the process is gone: the rest comes out */
        sd_event_unref(e);

        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        n = read(err[0], buf, sizeof(buf) - 1);
        g_assert_cmpint(n, >, 0);
        g_assert_nonnull(strstr(buf, "<4>polyvm: device /org/polyvm/DeviceManager1/device/7: polyvm serial#7: one\n"));
        g_assert_nonnull(strstr(buf, "<6>polyvm: device /org/polyvm/DeviceManager1/device/7: two\n"));
        g_assert_nonnull(strstr(buf, "device/7: three\n"));
        g_assert_nonnull(strstr(buf, "<3>polyvm: device /org/polyvm/DeviceManager1/device/7: last words\n"));
        /* The long line came out in pieces, none longer than the buffer. */
        g_assert_nonnull(strstr(buf, "yyyyyyyyyy\n"));
        close(err[0]);
        close(err[1]);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/device-log/priority-is-kept-but-capped-at-err", test_priority_is_kept_but_capped_at_err);
        g_test_add_func("/device-log/control-bytes-are-escaped", test_control_bytes_are_escaped);
        g_test_add_func("/device-log/output-is-bounded", test_output_is_bounded);
        g_test_add_func("/device-log/lines-from-a-pipe-reach-the-log", test_lines_from_a_pipe_reach_the_log);
        return g_test_run();
}
