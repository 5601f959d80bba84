/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The report channel from a device process to devmgr: a SOCK_SEQPACKET pair
 * made at spawn, apart from the endpoint. devmgr uses it to release the
 * child once its user namespace is mapped ("go", devmgr -> device); the
 * device sends its seccomp listener once, right after the filter is on and
 * before it reads any request, and a note when it is first activated.
 * Everything after the listener comes from a device that may be compromised:
 * it is advisory (State "active"), never trusted for enforcement. */

#include <stdint.h>

#define DEVICE_REPORT_MAGIC 0x4a41494cu /* "JAIL" */

enum device_report_type {
        DEVICE_REPORT_GO = 1,       /* devmgr -> device: maps written, go on */
        DEVICE_REPORT_LISTENER = 2, /* device -> devmgr: seccomp listener fd */
        DEVICE_REPORT_ACTIVE = 3,   /* device -> devmgr: first Activate answered */
};

struct device_report {
        uint32_t magic;
        uint32_t type;
} __attribute__((packed));

/* Sends one report, with fd (or -1). Only sendmsg(): it runs under the
 * seccomp baseline. Returns 0 or -errno. */
int device_report_send(int sock, enum device_report_type type, int fd);

/* Receives and checks one report: -EBADMSG for a wrong size, magic or type,
 * or an fd with any type but LISTENER (fds of a rejected report are
 * closed), -ECONNRESET on hang-up, -EAGAIN if nothing is there (the socket
 * is non-blocking) . *ret_fd is the listener, else -1. */
int device_report_recv(int sock, enum device_report_type *ret_type, int *ret_fd);
