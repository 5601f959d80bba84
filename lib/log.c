/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *log_ident = "polyvm";
static char log_context[128];
static int log_max_level = -1;

void log_set_ident(const char *ident) {
        log_ident = ident;
}

void log_set_context(const char *context) {
        snprintf(log_context, sizeof(log_context), "%s", context ?: "");
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        if (log_max_level < 0) {
                const char *e = getenv("POLYVM_LOG_LEVEL");
                log_max_level = e && strcmp(e, "debug") == 0 ? LOG_DEBUG : LOG_INFO;
        }
        return log_max_level;
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) {
        int saved = errno;
        char buf[2048];
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > log_get_max_level())
                return -error;

        /* Make %m print the error we were given, not whatever errno is. */
        errno = error;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);

        if (level == LOG_DEBUG)
                fprintf(stderr, "<%d>%s%s%s: %s (%s:%d)\n", level, log_ident,
                        log_context[0] ? " " : "", log_context, buf, file, line);
        else
                fprintf(stderr, "<%d>%s%s%s: %s\n", level, log_ident,
                        log_context[0] ? " " : "", log_context, buf);
        errno = saved;
        return -error;
}
