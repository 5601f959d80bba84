/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The device protocol between the launcher and a device process: one
 * request or reply per SOCK_SEQPACKET packet, a fixed header, a fixed-size
 * body per type, file descriptors as SCM_RIGHTS. The same code parses both
 * directions, and nothing in a packet is trusted: proto_recv() checks magic,
 * version, type, body length and fd count before anyone reads the body. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC 0x504f4c59u /* "POLY" */
#define PROTO_VERSION 1
#define PROTO_MAX_FDS 4
#define PROTO_MAX_RANGES 16
#define PROTO_ERROR_MAX 200
#define PROTO_DEFAULT_TIMEOUT_MS 1000

/* Bodies (exact sizes; fds exactly as listed, none elsewhere):
 *   ACTIVATE, DESTROY_DEVICE, SHUTDOWN, GET_RANGES, SNAPSHOT, RESTORE, SLEEP,
 *   WAKE: none.  READ, WRITE: proto_access.  READ_CONFIG,
 *   READ_VIRTUAL_CONFIG, WRITE_VIRTUAL_CONFIG: proto_u32.  WRITE_CONFIG:
 *   proto_config_write.  INIT_PCI_CONFIG_MAPPING: none, one fd.
 *   ATTACH_FD: proto_attach_fd, one fd.
 *   REPLY_OK: none.  REPLY_ERROR: proto_error.  REPLY_DATA: proto_data.
 *   REPLY_U32: proto_u32.  REPLY_RANGES: proto_ranges (all 16 slots sent).
 * A device answers every request but WRITE and DESTROY_DEVICE; before
 * ACTIVATE it answers everything else with an error. */
enum proto_type {
        /* requests, launcher -> device */
        PROTO_ACTIVATE = 1,
        PROTO_READ,
        PROTO_WRITE, /* no reply */
        PROTO_READ_CONFIG,
        PROTO_WRITE_CONFIG,
        PROTO_INIT_PCI_CONFIG_MAPPING,
        PROTO_READ_VIRTUAL_CONFIG,
        PROTO_WRITE_VIRTUAL_CONFIG,
        PROTO_DESTROY_DEVICE, /* no reply */
        PROTO_SHUTDOWN,
        PROTO_GET_RANGES,
        PROTO_SNAPSHOT,
        PROTO_RESTORE,
        PROTO_SLEEP,
        PROTO_WAKE,
        PROTO_ATTACH_FD, /* one fd; what it is for says role */
        _PROTO_REQUEST_MAX,

        /* replies, device -> launcher */
        PROTO_REPLY_OK = 0x100,
        PROTO_REPLY_ERROR,
        PROTO_REPLY_DATA,   /* to READ */
        PROTO_REPLY_U32,    /* to READ_CONFIG, READ_VIRTUAL_CONFIG */
        PROTO_REPLY_RANGES, /* to GET_RANGES */
        _PROTO_REPLY_MAX,
};

enum proto_bus {
        PROTO_BUS_PIO = 0,
        PROTO_BUS_MMIO = 1,
};

enum proto_fd_role {
        PROTO_FD_IRQ = 1,     /* eventfd bound to a KVM irqfd; arg = the device's irq index */
        PROTO_FD_CONSOLE = 2, /* stream socket: guest output is written, input read */
        PROTO_FD_MEMORY = 3,  /* guest memory memfd; arg unused */
};

struct proto_header {
        uint32_t magic;
        uint16_t version;
        uint16_t type;
        uint32_t length; /* of the body that follows */
        uint32_t reserved;
} __attribute__((packed));

struct proto_access {
        uint64_t address; /* absolute guest address or port */
        uint64_t offset;  /* from the start of the matching range */
        uint32_t len;     /* 1..8 */
        uint32_t range;   /* index into the device's GetRanges list */
        uint8_t data[8];  /* WRITE only */
} __attribute__((packed));

struct proto_config_write {
        uint32_t reg;
        uint32_t offset; /* 0..3 */
        uint32_t len;    /* 1..4, offset + len <= 4 */
        uint8_t data[4];
} __attribute__((packed));

struct proto_u32 {
        uint32_t value;
        uint32_t reg; /* READ_CONFIG, WRITE_VIRTUAL_CONFIG */
} __attribute__((packed));

struct proto_range {
        uint64_t base;
        uint64_t len;
        uint32_t bus; /* enum proto_bus */
        uint32_t reserved;
} __attribute__((packed));

struct proto_ranges {
        uint32_t count;
        uint32_t irq; /* GSI the device raises through its PROTO_FD_IRQ eventfd, 0 for none */
        struct proto_range ranges[PROTO_MAX_RANGES];
} __attribute__((packed));

struct proto_data {
        uint32_t len;
        uint32_t reserved;
        uint8_t data[8];
} __attribute__((packed));

struct proto_attach_fd {
        uint32_t role; /* enum proto_fd_role */
        uint32_t arg;
} __attribute__((packed));

struct proto_error {
        int32_t error; /* positive errno */
        char message[PROTO_ERROR_MAX]; /* NUL-terminated */
} __attribute__((packed));

/* A received message. fds[] are owned by the message: proto_msg_done()
 * closes those the receiver did not take (set an entry to -1 to take it). */
struct proto_msg {
        struct proto_header hdr;
        union {
                struct proto_access access;
                struct proto_config_write config_write;
                struct proto_u32 u32;
                struct proto_ranges ranges;
                struct proto_data data;
                struct proto_attach_fd attach_fd;
                struct proto_error error;
                uint8_t raw[512];
        } body;
        int fds[PROTO_MAX_FDS];
        unsigned n_fds;
};

/* Name of a type for logs, "unknown" for anything else. */
const char *proto_type_to_string(unsigned type);

/* Sends one packet. Returns 0 or -errno. */
int proto_send(int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds);

/* Receives one packet and validates it: -ETIMEDOUT after timeout_ms (<0 waits
 * forever), -ECONNRESET on hang-up, -EBADMSG for anything malformed (wrong
 * magic or version, unknown type, body length not the type's, fds where
 * none belong, truncated packet); fds of a rejected packet are closed. */
int proto_recv(int sock, struct proto_msg *m, int timeout_ms);

void proto_msg_done(struct proto_msg *m);

/* Request and wait for the reply; a PROTO_REPLY_ERROR becomes -error with the
 * message copied to errbuf (if given). A reply of a type the request does
 * not take is -EBADMSG. WRITE and DESTROY_DEVICE take no reply: for them it
 * only sends. reply may be NULL. */
int proto_call(int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds,
               struct proto_msg *reply, int timeout_ms, char *errbuf, size_t errlen);

/* Device side: reply with an error (errno and a message). */
int proto_reply_error(int sock, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
