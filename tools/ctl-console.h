/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Attaching the terminal to a VM's console socket (Vm1.OpenConsole). */

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#define CONSOLE_ESCAPE 0x1d /* Ctrl-] */

enum console_end {
        CONSOLE_END_EOF,        /* the console closed */
        CONSOLE_END_DETACHED,   /* the user typed Ctrl-] */
        CONSOLE_END_STOPPED,    /* finished() said so; output drained */
        CONSOLE_END_SIGNAL,     /* SIGINT, SIGTERM or SIGHUP */
};

struct console_session {
        int console_fd;
        int in_fd, out_fd;
        /* Without a tty: after input EOF, shut down our write side (true, for
         * `console`) or just stop reading input (false, for `run`). */
        bool half_close;
        /* Processed while attached, so that watches stay current. May be NULL. */
        sd_bus *bus;
        bool (*finished)(void *userdata);
        void *userdata;
};

/* Copies both ways until one of enum console_end happens. When in_fd is a
 * tty it is put in raw mode and restored before returning (and at exit).
 * Returns an enum console_end or -errno. */
int console_attach(const struct console_session *s);

/* Index of the escape byte in buf, or -1. */
ssize_t console_find_escape(const char *buf, size_t n);
