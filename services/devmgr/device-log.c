/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device-log.h"
#include "log.h"
#include "macro.h"

/* What one wake-up reads at most, so a chatty device cannot hog the loop. */
#define DEVICE_LOG_READ_MAX 65536

struct device_log {
        int fd;
        char *name;
        sd_event_source *source;
        char line[DEVICE_LOG_LINE_MAX];
        size_t len;
};

int device_log_format_line(const char *line, size_t len, char *out, size_t outlen) {
        int level = LOG_INFO;
        size_t o = 0;

        /* "<N>" as lib/log.c writes it; anything else is info. */
        if (len >= 3 && line[0] == '<' && line[1] >= '0' && line[1] <= '7' && line[2] == '>') {
                level = line[1] - '0';
                line += 3;
                len -= 3;
        }
        if (level < LOG_ERR)
                level = LOG_ERR;
        for (size_t i = 0; i < len && o + 5 < outlen; i++) {
                unsigned char c = (unsigned char) line[i];

                if (c < 0x20 || c == 0x7f)
                        o += (size_t) snprintf(out + o, outlen - o, "\\x%02x", c);
                else
                        out[o++] = (char) c;
        }
        out[o] = 0;
        return level;
}

static void device_log_emit(struct device_log *l) {
        char text[DEVICE_LOG_LINE_MAX * 4 + 1];
        int level;

        if (l->len == 0)
                return;
        level = device_log_format_line(l->line, l->len, text, sizeof(text));
        log_full(level, "device %s: %s", l->name, text);
        l->len = 0;
}

/* Reads until EAGAIN, EOF or budget; true while the pipe is open. */
static bool device_log_read(struct device_log *l, size_t budget) {
        char buf[4096];

        while (budget > 0) {
                ssize_t n = read(l->fd, buf, sizeof(buf) < budget ? sizeof(buf) : budget);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return errno == EAGAIN;
                if (n == 0)
                        return false;
                budget -= (size_t) n;
                for (ssize_t i = 0; i < n; i++) {
                        if (buf[i] == '\n') {
                                device_log_emit(l);
                                continue;
                        }
                        l->line[l->len++] = buf[i];
                        if (l->len == sizeof(l->line))
                                device_log_emit(l);
                }
        }
        return true;
}

static int on_device_log(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct device_log *l = userdata;

        if (!device_log_read(l, DEVICE_LOG_READ_MAX)) {
                device_log_emit(l);
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        }
        return 0;
}

int device_log_new(sd_event *event, int fd, const char *name, struct device_log **ret) {
        struct device_log *l;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l) {
                safe_close(fd);
                return -ENOMEM;
        }
        l->fd = fd;
        l->name = strdup(name);
        if (!l->name) {
                device_log_free(l);
                return -ENOMEM;
        }
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
                r = -errno;
                device_log_free(l);
                return r;
        }
        r = sd_event_add_io(event, &l->source, fd, EPOLLIN, on_device_log, l);
        if (r < 0) {
                device_log_free(l);
                return r;
        }
        *ret = l;
        return 0;
}

struct device_log *device_log_free(struct device_log *l) {
        if (!l)
                return NULL;
        if (l->source && l->fd >= 0)
                (void) device_log_read(l, DEVICE_LOG_READ_MAX);
        device_log_emit(l);
        sd_event_source_disable_unref(l->source);
        safe_close(l->fd);
        free(l->name);
        free(l);
        return NULL;
}
