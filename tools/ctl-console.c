/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl-console.h"
#include "macro.h"

/* How long output may still trickle in after the VM stopped. */
#define DRAIN_QUIET_MS 200

static struct termios saved_termios;
static int saved_termios_fd = -1;

static void terminal_restore(void) {
        if (saved_termios_fd >= 0) {
                (void) tcsetattr(saved_termios_fd, TCSADRAIN, &saved_termios);
                saved_termios_fd = -1;
        }
}

static int terminal_make_raw(int fd) {
        static bool atexit_done;
        struct termios t;

        if (tcgetattr(fd, &saved_termios) < 0)
                return -errno;
        t = saved_termios;
        cfmakeraw(&t);
        if (tcsetattr(fd, TCSANOW, &t) < 0)
                return -errno;
        saved_termios_fd = fd;
        if (!atexit_done) {
                atexit(terminal_restore);
                atexit_done = true;
        }
        return 0;
}

ssize_t console_find_escape(const char *buf, size_t n) {
        const char *p = memchr(buf, CONSOLE_ESCAPE, n);
        return p ? p - buf : -1;
}

static int write_all(int fd, const char *buf, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, buf, n);
                if (k < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                buf += k;
                n -= (size_t) k;
        }
        return 0;
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static int bus_poll_timeout_ms(sd_bus *bus, int dflt) {
        uint64_t until, now;

        if (!bus || sd_bus_get_timeout(bus, &until) < 0 || until == UINT64_MAX)
                return dflt;
        now = now_usec();
        if (until <= now)
                return 0;
        until = (until - now + 999) / 1000;
        return dflt >= 0 && (uint64_t) dflt < until ? dflt : (int) MIN(until, (uint64_t) INT32_MAX);
}

static int bus_drain(sd_bus *bus) {
        int r;

        if (!bus)
                return 0;
        do
                r = sd_bus_process(bus, NULL);
        while (r > 0);
        return r;
}

/* Copies what the console still has, until it has been quiet a while. */
static int console_drain(int console_fd, int out_fd) {
        char buf[4096];

        for (;;) {
                struct pollfd p = { .fd = console_fd, .events = POLLIN };
                ssize_t n;
                int r;

                r = poll(&p, 1, DRAIN_QUIET_MS);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return r < 0 ? -errno : 0;
                n = read(console_fd, buf, sizeof(buf));
                if (n <= 0)
                        return 0;
                r = write_all(out_fd, buf, (size_t) n);
                if (r < 0)
                        return r;
        }
}

static int session_loop(const struct console_session *s, bool tty, int sigfd) {
        bool input_open = true;
        char buf[4096];
        int r;

        for (;;) {
                struct pollfd p[4] = {
                        { .fd = s->console_fd, .events = POLLIN },
                        { .fd = input_open ? s->in_fd : -1, .events = POLLIN },
                        { .fd = sigfd, .events = POLLIN },
                        { .fd = -1 },
                };
                ssize_t n;

                r = bus_drain(s->bus);
                if (r < 0)
                        return r;
                if (s->finished && s->finished(s->userdata)) {
                        r = console_drain(s->console_fd, s->out_fd);
                        return r < 0 ? r : CONSOLE_END_STOPPED;
                }
                if (s->bus) {
                        p[3].fd = sd_bus_get_fd(s->bus);
                        r = sd_bus_get_events(s->bus);
                        if (p[3].fd < 0 || r < 0)
                                return p[3].fd < 0 ? p[3].fd : r;
                        p[3].events = (short) r;
                }

                r = poll(p, 4, bus_poll_timeout_ms(s->bus, -1));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }

                if (p[2].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        /* Consumed here, or it would kill us once unblocked. */
                        (void) !read(sigfd, &si, sizeof(si));
                        return CONSOLE_END_SIGNAL;
                }

                if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        n = read(s->console_fd, buf, sizeof(buf));
                        if (n < 0 && errno != EINTR && errno != EAGAIN)
                                return -errno;
                        if (n == 0)
                                return CONSOLE_END_EOF;
                        if (n > 0) {
                                r = write_all(s->out_fd, buf, (size_t) n);
                                if (r < 0)
                                        return r;
                        }
                }

                if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
                        n = read(s->in_fd, buf, sizeof(buf));
                        if (n < 0 && errno != EINTR && errno != EAGAIN)
                                return -errno;
                        if (n == 0) {
                                input_open = false;
                                if (s->half_close)
                                        (void) shutdown(s->console_fd, SHUT_WR);
                        } else if (n > 0) {
                                ssize_t esc = tty ? console_find_escape(buf, (size_t) n) : -1;

                                r = write_all(s->console_fd, buf, esc >= 0 ? (size_t) esc : (size_t) n);
                                if (r < 0)
                                        return r;
                                if (esc >= 0)
                                        return CONSOLE_END_DETACHED;
                        }
                }
        }
}

int console_attach(const struct console_session *s) {
        _cleanup_close_ int sigfd = -1;
        sigset_t mask, old;
        bool tty;
        int r;

        /* Signals arrive through the poll loop so that the terminal is
         * always restored on the way out. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGQUIT);
        if (sigprocmask(SIG_BLOCK, &mask, &old) < 0)
                return -errno;
        sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sigfd < 0) {
                r = -errno;
                (void) sigprocmask(SIG_SETMASK, &old, NULL);
                return r;
        }

        tty = isatty(s->in_fd);
        if (tty) {
                r = terminal_make_raw(s->in_fd);
                if (r < 0) {
                        (void) sigprocmask(SIG_SETMASK, &old, NULL);
                        return r;
                }
        }

        r = session_loop(s, tty, sigfd);

        if (tty)
                terminal_restore();
        (void) sigprocmask(SIG_SETMASK, &old, NULL);
        return r;
}
