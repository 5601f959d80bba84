/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One logging helper for every polyvm program: lines go to stderr, which is
 * the journal under systemd. A context string (VM or device name) may be
 * set once per process so that every line says whom it is about. */

#include <stdarg.h>
#include <syslog.h>

#include "macro.h"

void log_set_ident(const char *ident);
void log_set_context(const char *context);
void log_set_max_level(int level);
int log_get_max_level(void);

/* Returns -abs(error) (or 0 if error is 0), so it can end an error path:
 * return log_error_errno(r, "Failed to map guest memory: %m"); %m prints error. */
int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) _printf_(5, 6);

#define log_full_errno(level, error, ...) log_internal(level, error, __FILE__, __LINE__, __VA_ARGS__)
#define log_full(level, ...) (void) log_internal(level, 0, __FILE__, __LINE__, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)
