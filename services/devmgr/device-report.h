/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The report channel from a device process to devmgr: a SOCK_SEQPACKET pair
 * made at spawn, apart from the endpoint, open for the device's life.
 * devmgr uses it to release the child once its user namespace is mapped
 * ("go", devmgr -> device); the device sends its seccomp listener once,
 * right after the filter is on and before it reads any request, a note when
 * it is first activated, and the userfaultfd guarding its mapping of guest
 * memory when it maps it (device-memory.h). A virtio-vsock device asks
 * devmgr to connect to "<uds_path>_<port>" for it (CONNECT; devmgr answers
 * CONNECTED with the socket or an errno). Everything after the listener
 * comes from a device that may be compromised: it is advisory (State
 * "active"; memmgr checks the uffd), never trusted for enforcement. */

#include <stdint.h>

#define DEVICE_REPORT_MAGIC 0x4a41494cu /* "JAIL" */

enum device_report_type {
        DEVICE_REPORT_GO = 1,       /* devmgr -> device: maps written, go on */
        DEVICE_REPORT_LISTENER = 2, /* device -> devmgr: seccomp listener fd */
        DEVICE_REPORT_ACTIVE = 3,   /* device -> devmgr: first Activate answered */
        DEVICE_REPORT_UFFD = 4,     /* device -> devmgr: uffd fd + struct device_report_uffd */
        DEVICE_REPORT_CONNECT = 5,  /* device -> devmgr: struct device_report_connect, no fd */
        DEVICE_REPORT_CONNECTED = 6, /* devmgr -> device: struct device_report_connected, fd iff error 0 */
};

/* Every report starts with this; only UFFD has a body. */
struct device_report {
        uint32_t magic;
        uint32_t type;
} __attribute__((packed));

/* DEVICE_REPORT_UFFD: where the device mapped guest memory (offset 0 of
 * the memfd at base, size bytes), guarded by the uffd that comes with it. */
struct device_report_uffd {
        struct device_report header;
        uint64_t base;
        uint64_t size;
} __attribute__((packed));

/* DEVICE_REPORT_CONNECT: connect to "<the device's uds_path>_<port>" for
 * me (only kinds with device_kind.connect_prefix); cookie comes back. */
struct device_report_connect {
        struct device_report header;
        uint64_t cookie;
        uint32_t port;
        uint32_t reserved; /* 0 */
} __attribute__((packed));

/* DEVICE_REPORT_CONNECTED: the answer; error is 0 (a connected,
 * non-blocking AF_UNIX stream socket comes with it) or a positive errno. */
struct device_report_connected {
        struct device_report header;
        uint64_t cookie;
        uint32_t port;
        int32_t error;
} __attribute__((packed));

/* What device_report_receive() got. */
struct device_report_msg {
        enum device_report_type type;
        int fd;         /* LISTENER, UFFD, CONNECTED with error 0; else -1 */
        uint64_t base;  /* UFFD */
        uint64_t size;  /* UFFD */
        uint64_t cookie; /* CONNECT, CONNECTED */
        uint32_t port;  /* CONNECT, CONNECTED */
        int32_t error;  /* CONNECTED */
};

/* Sends one report without a body (not UFFD), with fd (or -1). Only
 * sendmsg(): it runs under the seccomp baseline. Returns 0 or -errno. */
int device_report_send(int sock, enum device_report_type type, int fd);

/* Sends DEVICE_REPORT_UFFD with uffd; as device_report_send(). */
int device_report_send_uffd(int sock, int uffd, uint64_t base, uint64_t size);

/* DEVICE_REPORT_CONNECT and its answer (fd -1 unless error is 0). Both
 * never block (MSG_DONTWAIT): -EAGAIN if the peer does not read. */
int device_report_send_connect(int sock, uint64_t cookie, uint32_t port);
int device_report_send_connected(int sock, uint64_t cookie, uint32_t port, int32_t error, int fd);

/* In the device process: its own end of the channel (device-spawn.c sets
 * it before the device serves; -1 before). */
void device_report_set_own(int sock);
int device_report_own(void);

/* Receives and checks one report: -EBADMSG for a size that is not its
 * type's, a wrong magic or type, or fds other than exactly one with
 * LISTENER, UFFD and CONNECTED with error 0 and none with the others (fds of a rejected report are
 * closed), -ECONNRESET on hang-up, -EAGAIN if nothing is there (the socket
 * is non-blocking). Checks only the shape: what the fd is and whether base
 * and size make sense is the receiver's to judge. */
int device_report_receive(int sock, struct device_report_msg *ret);

/* device_report_receive() for the reports without a body; *ret_fd is the
 * listener (or a UFFD report's uffd), else -1. */
int device_report_recv(int sock, enum device_report_type *ret_type, int *ret_fd);
