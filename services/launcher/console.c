/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "console.h"
#include "log.h"
#include "macro.h"

#define SCROLLBACK_SIZE (64 * 1024)
#define CONSOLE_MAX_CLIENTS 16

struct console_client {
        struct console *console;
        int fd;
        sd_event_source *source;
};

struct console {
        sd_event *event;
        char *vm_name;
        int fd; /* our end; the device has the other */
        sd_event_source *source;
        char ring[SCROLLBACK_SIZE];
        size_t head, used;
        struct console_client *clients[CONSOLE_MAX_CLIENTS];
};

static void client_free(struct console_client *cl) {
        struct console *c = cl->console;

        for (size_t i = 0; i < CONSOLE_MAX_CLIENTS; i++)
                if (c->clients[i] == cl)
                        c->clients[i] = NULL;
        sd_event_source_disable_unref(cl->source);
        safe_close(cl->fd);
        free(cl);
}

static void ring_append(struct console *c, const char *buf, size_t n) {
        for (size_t i = 0; i < n; i++) {
                c->ring[(c->head + c->used) % SCROLLBACK_SIZE] = buf[i];
                if (c->used < SCROLLBACK_SIZE)
                        c->used++;
                else
                        c->head = (c->head + 1) % SCROLLBACK_SIZE;
        }
}

char *console_scrollback(struct console *c) {
        char *s = malloc(c->used + 1);

        if (!s)
                return NULL;
        for (size_t i = 0; i < c->used; i++)
                s[i] = c->ring[(c->head + i) % SCROLLBACK_SIZE];
        s[c->used] = 0;
        return s;
}

/* Clients are written without blocking: a client that does not read loses
 * output (it can always re-read the scrollback), the guest never waits. */
static void client_write(struct console_client *cl, const char *buf, size_t n) {
        while (n > 0) {
                ssize_t k = send(cl->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                client_free(cl);
                        return;
                }
                buf += k;
                n -= (size_t) k;
        }
}

static int on_guest_output(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct console *c = userdata;
        char buf[4096];
        ssize_t n;

        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : log_error_errno(errno, "Console read failed: %m");
        if (n == 0) {
                /* The serial device went away; keep the scrollback. */
                sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        ring_append(c, buf, (size_t) n);
        for (size_t i = 0; i < CONSOLE_MAX_CLIENTS; i++)
                if (c->clients[i])
                        client_write(c->clients[i], buf, (size_t) n);
        return 0;
}

static int on_client_input(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct console_client *cl = userdata;
        char buf[1024];
        ssize_t n;

        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                client_free(cl);
                return 0;
        }
        /* Input is small and the device reads it at once; block briefly
         * rather than drop keystrokes. */
        for (ssize_t off = 0; off < n;) {
                ssize_t k = send(cl->console->fd, buf + off, (size_t) (n - off), MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_warning_errno(errno, "Console input to the guest lost: %m");
                }
                off += k;
        }
        return 0;
}

int console_new(sd_event *event, const char *vm_name, struct console **ret, int *ret_device_fd) {
        struct console *c;
        int pair[2], r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = -1;
        c->event = sd_event_ref(event);
        c->vm_name = strdup(vm_name);
        if (!c->vm_name) {
                console_free(c);
                return -ENOMEM;
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
                r = -errno;
                console_free(c);
                return r;
        }
        c->fd = pair[0];
        r = sd_event_add_io(event, &c->source, c->fd, EPOLLIN, on_guest_output, c);
        if (r < 0) {
                safe_close(pair[1]);
                console_free(c);
                return r;
        }
        *ret = c;
        *ret_device_fd = pair[1];
        return 0;
}

struct console *console_free(struct console *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < CONSOLE_MAX_CLIENTS; i++)
                if (c->clients[i])
                        client_free(c->clients[i]);
        sd_event_source_disable_unref(c->source);
        safe_close(c->fd);
        sd_event_unref(c->event);
        free(c->vm_name);
        free(c);
        return NULL;
}

int console_open_client(struct console *c, int *ret_fd) {
        _cleanup_free_ char *scrollback = NULL;
        struct console_client *cl;
        int pair[2], r;
        size_t slot;

        for (slot = 0; slot < CONSOLE_MAX_CLIENTS; slot++)
                if (!c->clients[slot])
                        break;
        if (slot == CONSOLE_MAX_CLIENTS)
                return -EMFILE;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        cl = calloc(1, sizeof(*cl));
        if (!cl) {
                safe_close(pair[0]);
                safe_close(pair[1]);
                return -ENOMEM;
        }
        cl->console = c;
        cl->fd = pair[0];
        r = sd_event_add_io(c->event, &cl->source, cl->fd, EPOLLIN, on_client_input, cl);
        if (r < 0) {
                safe_close(pair[1]);
                safe_close(cl->fd);
                free(cl);
                return r;
        }
        c->clients[slot] = cl;

        /* The scrollback is at most 64 KiB: it fits the socket buffer of a
         * fresh pair, so this does not drop anything. */
        (void) setsockopt(cl->fd, SOL_SOCKET, SO_SNDBUF, &(int) { SCROLLBACK_SIZE * 2 }, sizeof(int));
        scrollback = console_scrollback(c);
        if (scrollback)
                client_write(cl, scrollback, strlen(scrollback));
        *ret_fd = pair[1];
        return 0;
}
