/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A device process's stderr, read from a pipe and logged by devmgr. The
 * device is not trusted: each line keeps its priority but no higher than
 * LOG_ERR (a device cannot raise alerts), goes out under devmgr's name with
 * the device's object path (it cannot pass for another service), control
 * characters escaped, long lines split. A pipe and not devmgr's own stderr
 * also keeps the jail's RLIMIT_FSIZE from killing a device whose log would
 * be a growing regular file. */

#include <systemd/sd-event.h>

#define DEVICE_LOG_LINE_MAX 1024

struct device_log;

/* Starts reading fd (takes it; made non-blocking) in event for the device
 * named name (its object path). */
int device_log_new(sd_event *event, int fd, const char *name, struct device_log **ret);
/* Logs what is left in the pipe and what is buffered (the process has
 * exited), then frees. NULL is fine. Returns NULL. */
struct device_log *device_log_free(struct device_log *l);

/* One line as devmgr logs it, for tests: the priority (LOG_ERR..LOG_DEBUG)
 * and the text with its "<N>" prefix removed and control bytes escaped as
 * \xNN into out (at most outlen - 1 bytes, NUL-terminated). */
int device_log_format_line(const char *line, size_t len, char *out, size_t outlen);
