/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest console: scrollback, fan-out to clients, input to the guest. */
#include <glib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "console.h"

/* Runs the event loop until nothing is pending. */
static void pump(sd_event *e) {
        while (sd_event_run(e, 20 * 1000) > 0)
                ;
}

static char *read_available(int fd) {
        GString *s = g_string_new(NULL);
        char buf[4096];
        struct pollfd p = { .fd = fd, .events = POLLIN };

        while (poll(&p, 1, 50) > 0) {
                ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n <= 0)
                        break;
                g_string_append_len(s, buf, n);
        }
        return g_string_free(s, FALSE);
}

static void test_new_client_gets_scrollback_then_live_output(void) {
        sd_event *e = NULL;
        struct console *c = NULL;
        int device = -1, a = -1, b = -1;
        g_autofree char *got_a = NULL, *got_b = NULL, *got_a2 = NULL;

        g_assert_cmpint(sd_event_new(&e), >=, 0);
        g_assert_cmpint(console_new(e, "vm", &c, &device), ==, 0);

        g_assert_cmpint(send(device, "early boot\n", 11, 0), ==, 11);
        pump(e);
        g_assert_cmpint(console_open_client(c, &a), ==, 0);
        got_a = read_available(a);
        g_assert_cmpstr(got_a, ==, "early boot\n");

        g_assert_cmpint(send(device, "tg> ", 4, 0), ==, 4);
        pump(e);
        g_assert_cmpint(console_open_client(c, &b), ==, 0);
        got_a2 = read_available(a);
        got_b = read_available(b);
        g_assert_cmpstr(got_a2, ==, "tg> ");
        g_assert_cmpstr(got_b, ==, "early boot\ntg> ");

        close(a);
        close(b);
        close(device);
        console_free(c);
        sd_event_unref(e);
}

static void test_client_input_reaches_the_guest(void) {
        sd_event *e = NULL;
        struct console *c = NULL;
        int device = -1, a = -1, b = -1;
        g_autofree char *got = NULL;

        g_assert_cmpint(sd_event_new(&e), >=, 0);
        g_assert_cmpint(console_new(e, "vm", &c, &device), ==, 0);
        g_assert_cmpint(console_open_client(c, &a), ==, 0);
        g_assert_cmpint(console_open_client(c, &b), ==, 0);
        g_assert_cmpint(send(a, "cpus\n", 5, 0), ==, 5);
        pump(e);
        g_assert_cmpint(send(b, "mem\n", 4, 0), ==, 4);
        pump(e);
        got = read_available(device);
        g_assert_cmpstr(got, ==, "cpus\nmem\n");

        /* A client that goes away is dropped; the others go on. */
        close(a);
        pump(e);
        g_assert_cmpint(send(device, "ok\n", 3, 0), ==, 3);
        pump(e);
        g_free(got);
        got = read_available(b);
        g_assert_cmpstr(got, ==, "ok\n");
        close(b);
        close(device);
        console_free(c);
        sd_event_unref(e);
}

/* The scrollback keeps the newest 64 KiB. */
static void test_scrollback_keeps_the_newest_output(void) {
        sd_event *e = NULL;
        struct console *c = NULL;
        int device = -1;
        g_autofree char *chunk = g_malloc(1000);
        g_autofree char *all = NULL;

        g_assert_cmpint(sd_event_new(&e), >=, 0);
        g_assert_cmpint(console_new(e, "vm", &c, &device), ==, 0);
        for (int i = 0; i < 100; i++) {
                memset(chunk, 'a' + i % 26, 1000);
                g_assert_cmpint(send(device, chunk, 1000, 0), ==, 1000);
                pump(e);
        }
        all = console_scrollback(c);
        g_assert_cmpuint(strlen(all), ==, 64 * 1024);
        /* The last byte written was from chunk 99 ('a' + 99 % 26). */
        g_assert_cmpint(all[strlen(all) - 1], ==, 'a' + 99 % 26);
        g_assert_cmpint(all[0], ==, 'a' + (100 - 66) % 26);
        close(device);
        console_free(c);
        sd_event_unref(e);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/console/new-client-gets-scrollback-then-live-output",
                        test_new_client_gets_scrollback_then_live_output);
        g_test_add_func("/console/client-input-reaches-the-guest", test_client_input_reaches_the_guest);
        g_test_add_func("/console/scrollback-keeps-the-newest-output", test_scrollback_keeps_the_newest_output);
        return g_test_run();
}
