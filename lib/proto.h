/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The device protocol between the launcher and a device process: one
 * request or reply per SOCK_SEQPACKET packet, a fixed header, a body per
 * type, file descriptors as SCM_RIGHTS. The same code parses both
 * directions, and nothing in a packet is trusted: proto_parse() checks magic,
 * version, type, body length, the body's own ranges and the fd count before
 * anyone reads the body. proto_recv() is recvmsg() + proto_parse(). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROTO_MAGIC 0x504f4c59u /* "POLY" */
#define PROTO_VERSION 1
#define PROTO_MAX_FDS 4
#define PROTO_MAX_RANGES 16
#define PROTO_MAX_CONFIG_CHANGES 4 /* per list in a WriteConfig result */
#define PROTO_MAX_IOEVENTS 16
#define PROTO_MAX_MSI_ROUTES 32
#define PROTO_ERROR_MAX 200
#define PROTO_DEFAULT_TIMEOUT_MS 1000
/* The largest packet, header included. A SEQPACKET packet arrives whole or
 * not at all, so a snapshot is one packet: 64 KiB bounds what a device may
 * keep as state (far below the socket's default send buffer). */
#define PROTO_PACKET_MAX 65536
#define PROTO_TEXT_MAX (PROTO_PACKET_MAX - sizeof(struct proto_header))

/* Bodies (exact sizes unless said; fds exactly as listed, none elsewhere):
 *   ACTIVATE, DESTROY_DEVICE, SHUTDOWN, GET_RANGES, SNAPSHOT, SLEEP, WAKE:
 *     none.
 *   READ, WRITE: proto_access (len 1..8).
 *   READ_CONFIG, READ_VIRTUAL_CONFIG: proto_u32 (reg).
 *   WRITE_VIRTUAL_CONFIG: proto_u32 (reg, value).
 *   WRITE_CONFIG: proto_config_write (offset + len within the 4-byte register).
 *   INIT_PCI_CONFIG_MAPPING: proto_pci_mapping, one fd (shared memory).
 *   RESTORE: text (see below).
 *   ATTACH_FD: proto_attach_fd, one fd.
 *   GET_IOEVENTS, GET_MSI_ROUTES: none.
 *   REPLY_OK: none.  REPLY_ERROR: proto_error.  REPLY_DATA: proto_data.
 *   REPLY_U32: proto_u32.  REPLY_RANGES: proto_ranges (all 16 slots sent).
 *   REPLY_CONFIG_WRITE: proto_config_result.  REPLY_BOOL: proto_bool.
 *   REPLY_SNAPSHOT: text.  REPLY_IOEVENTS: proto_ioevents.
 *   REPLY_MSI_ROUTES: proto_msi_routes.
 * Text bodies (JSON) are 1..PROTO_TEXT_MAX bytes with no NUL byte and no
 * terminator on the wire; the receiver gets them NUL-terminated in
 * proto_msg.text.
 *
 * Replies: READ -> DATA; READ_CONFIG, READ_VIRTUAL_CONFIG -> U32;
 * WRITE_CONFIG -> CONFIG_WRITE; INIT_PCI_CONFIG_MAPPING -> BOOL;
 * GET_RANGES -> RANGES; SNAPSHOT -> SNAPSHOT; GET_IOEVENTS -> IOEVENTS;
 * GET_MSI_ROUTES -> MSI_ROUTES; WRITE, DESTROY_DEVICE -> none;
 * everything else -> OK. Any request may instead get ERROR. A device answers
 * every request but Activate with an error until it is activated (WRITE and
 * DESTROY_DEVICE are dropped), and a second Activate with an error. */
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
        PROTO_GET_IOEVENTS,
        PROTO_GET_MSI_ROUTES,
        _PROTO_REQUEST_MAX,

        /* replies, device -> launcher */
        PROTO_REPLY_OK = 0x100,
        PROTO_REPLY_ERROR,
        PROTO_REPLY_DATA,         /* to READ */
        PROTO_REPLY_U32,          /* to READ_CONFIG, READ_VIRTUAL_CONFIG */
        PROTO_REPLY_RANGES,       /* to GET_RANGES */
        PROTO_REPLY_CONFIG_WRITE, /* to WRITE_CONFIG */
        PROTO_REPLY_BOOL,         /* to INIT_PCI_CONFIG_MAPPING */
        PROTO_REPLY_SNAPSHOT,     /* to SNAPSHOT: JSON text */
        PROTO_REPLY_IOEVENTS,     /* to GET_IOEVENTS */
        PROTO_REPLY_MSI_ROUTES,   /* to GET_MSI_ROUTES */
        _PROTO_REPLY_MAX,
};

enum proto_bus {
        PROTO_BUS_PIO = 0,
        PROTO_BUS_MMIO = 1,
};

/* The data path skips the launcher (docs/devmgr.md): queue notifications
 * arrive on ioeventfds the launcher registered with KVM where the device
 * asked (GetIoevents), and interrupts leave on irqfds. */
enum proto_fd_role {
        PROTO_FD_IRQ = 1,     /* eventfd bound to a KVM irqfd; arg: see PROTO_IRQ_* */
        PROTO_FD_CONSOLE = 2, /* stream socket: guest output is written, input read */
        PROTO_FD_MEMORY = 3,  /* guest memory memfd (lib/guest-ram.h layout); arg unused */
        PROTO_FD_IOEVENT = 4, /* eventfd KVM signals on a guest write; arg: the ioevent's arg */
};

/* PROTO_FD_IRQ's arg: a non-PCI device's one line is 0 (the GSI of its
 * GetRanges reply); a PCI device's MSI-X vector n is n, its INTx line is
 * PROTO_IRQ_INTX. */
#define PROTO_IRQ_INTX 0x10000u

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
        uint32_t reg; /* READ_CONFIG, READ_VIRTUAL_CONFIG, WRITE_VIRTUAL_CONFIG */
} __attribute__((packed));

/* The ranges of a device (GetRanges) and those a config write moves. Within
 * count: len >= 1, base + len does not wrap, bus is a proto_bus, and a PIO
 * range ends at or below 0x10000. */
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

/* What a config write changed (a BAR moved, a device went away), after
 * crosvm's ConfigWriteResult: address ranges to unmap and to map, in MMIO
 * and I/O space, and PCI devices (bus << 8 | device << 3 | function) that
 * are gone. Each list holds at most PROTO_MAX_CONFIG_CHANGES. */
struct proto_config_result {
        uint32_t n_mmio_remove, n_mmio_add, n_io_remove, n_io_add;
        uint32_t n_removed_pci;
        uint32_t reserved;
        struct proto_range mmio_remove[PROTO_MAX_CONFIG_CHANGES];
        struct proto_range mmio_add[PROTO_MAX_CONFIG_CHANGES];
        struct proto_range io_remove[PROTO_MAX_CONFIG_CHANGES];
        struct proto_range io_add[PROTO_MAX_CONFIG_CHANGES];
        uint32_t removed_pci[PROTO_MAX_CONFIG_CHANGES];
} __attribute__((packed));

/* The shared memory (the fd) that mirrors PCI config space: len >= 1 bytes
 * at base of it; base + len does not wrap. */
struct proto_pci_mapping {
        uint64_t base;
        uint64_t len;
} __attribute__((packed));

struct proto_bool {
        uint32_t value; /* 0 or 1 */
        uint32_t reserved;
} __attribute__((packed));

struct proto_attach_fd {
        uint32_t role; /* enum proto_fd_role */
        uint32_t arg;
} __attribute__((packed));

/* Where the device wants guest writes turned into eventfd signals (virtio
 * queue notify registers). len: 0 matches any access size, else 1, 2, 4 or
 * 8; address..address+max(len,1)-1 must lie in one of the device's current
 * ranges on that bus (the launcher checks: the device is not trusted).
 * arg comes back with the PROTO_FD_IOEVENT fd. */
struct proto_ioevent {
        uint64_t address;
        uint32_t len;
        uint32_t bus; /* enum proto_bus */
        uint32_t arg;
        uint32_t reserved;
} __attribute__((packed));

struct proto_ioevents {
        uint32_t count;
        uint32_t reserved;
        struct proto_ioevent ioevents[PROTO_MAX_IOEVENTS];
} __attribute__((packed));

/* A PCI device's MSI-X table as the guest programmed it, for the launcher's
 * KVM routes: vector n's message is routes[n]. enabled: MSI-X Enable set and
 * Function Mask clear. A masked vector is not delivered; the device keeps
 * it pending and signals its irqfd once unmasked. The launcher asks again
 * after every trapped write to a device with count > 0. */
struct proto_msi_route {
        uint64_t address;
        uint32_t data;
        uint32_t masked; /* 0 or 1 */
} __attribute__((packed));

struct proto_msi_routes {
        uint32_t count;   /* vectors, <= PROTO_MAX_MSI_ROUTES */
        uint32_t enabled; /* 0 or 1 */
        struct proto_msi_route routes[PROTO_MAX_MSI_ROUTES];
} __attribute__((packed));

struct proto_error {
        int32_t error; /* positive errno */
        char message[PROTO_ERROR_MAX]; /* NUL-terminated */
} __attribute__((packed));

/* A received message. fds[] and text are owned by the message:
 * proto_msg_done() closes the fds the receiver did not take (set an entry to
 * -1 to take it) and frees text (set it to NULL to take it). */
struct proto_msg {
        struct proto_header hdr;
        union {
                struct proto_access access;
                struct proto_config_write config_write;
                struct proto_u32 u32;
                struct proto_ranges ranges;
                struct proto_data data;
                struct proto_config_result config_result;
                struct proto_pci_mapping pci_mapping;
                struct proto_bool boolean;
                struct proto_attach_fd attach_fd;
                struct proto_ioevents ioevents;
                struct proto_msi_routes msi_routes;
                struct proto_error error;
                uint8_t raw[512];
        } body;
        char *text; /* RESTORE, REPLY_SNAPSHOT: NUL-terminated, text_len bytes before the NUL */
        size_t text_len;
        int fds[PROTO_MAX_FDS];
        unsigned n_fds;
};

/* Name of a type for logs, "unknown" for anything else. */
const char *proto_type_to_string(unsigned type);

/* The reply type a request takes; 0 for those that take none (WRITE,
 * DESTROY_DEVICE) and for anything that is no request. */
unsigned proto_reply_type(unsigned request);

/* Sends one packet (body up to PROTO_PACKET_MAX - header). Returns 0 or
 * -errno; -EAGAIN if the socket has a send timeout (SO_SNDTIMEO) and the
 * peer did not make room in time. */
int proto_send(int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds);

/* The transport under proto_send()/proto_recv(), shared with the plugin
 * protocol (lib/plugin-proto.h), which has its own magic: sends header (its
 * length field is set to len) and body as one packet. */
int proto_send_packet(int sock, const struct proto_header *header, const void *body, size_t len, const int *fds,
                      size_t n_fds);

/* Receives one raw packet into buf (size bytes; give one more than the
 * largest valid packet, so that an oversized one shows) with up to
 * PROTO_MAX_FDS + 1 fds (one more than allowed, for the parser to refuse).
 * Returns its length, or -ETIMEDOUT, -ECONNRESET (hang-up), -EBADMSG
 * (truncated; its fds closed), -errno. The fds are the caller's. */
ssize_t proto_recv_packet(int sock, void *buf, size_t size, int fds[PROTO_MAX_FDS + 1], size_t *ret_n_fds,
                          int timeout_ms);

/* Validates one packet of len bytes in buf that came with n_fds fds, and
 * fills m. m owns fds[] from the start, whatever the result: on failure
 * they are closed and m holds nothing to free. Returns 0, -EBADMSG for
 * anything malformed (short, oversized, wrong magic or version, unknown
 * type, body length not the type's, a field out of range, fds where none
 * belong), or -ENOMEM. A pure function of its input: the fuzz targets call
 * it. */
int proto_parse(const void *buf, size_t len, const int *fds, size_t n_fds, struct proto_msg *m);

/* Receives one packet and parses it: -ETIMEDOUT after timeout_ms (<0 waits
 * forever), -ECONNRESET on hang-up, and what proto_parse returns; fds of a
 * rejected or truncated packet are closed. */
int proto_recv(int sock, struct proto_msg *m, int timeout_ms);

void proto_msg_done(struct proto_msg *m);

/* Launcher side: judges reply as the answer to request. A PROTO_REPLY_ERROR
 * becomes -error (an errno outside 1..4095 becomes -EIO) with the message
 * copied to errbuf (if given); a reply of a type the request does not take
 * is -EBADMSG (and reply is released). 0 if it is the right reply. */
int proto_reply_check(unsigned request, struct proto_msg *reply, char *errbuf, size_t errlen);

/* Request and wait for the reply, judged by proto_reply_check(). WRITE and
 * DESTROY_DEVICE take no reply: for them it only sends. reply may be NULL.
 * After a failure, reply->hdr.type tells a device's error reply
 * (PROTO_REPLY_ERROR: the device lives) from a failure of the transport or
 * the peer (anything else: timeout, hang-up, malformed or wrong reply). */
int proto_call(int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds,
               struct proto_msg *reply, int timeout_ms, char *errbuf, size_t errlen);

/* Device side: reply with an error (errno and a message). */
int proto_reply_error(int sock, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
