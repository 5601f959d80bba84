/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The plugin protocol: how a plugin process (devices emulated outside
 * polyvm, after crosvm's plugin mode) drives the launcher that owns KVM.
 * Same transport as the device protocol (lib/proto.h): one request or reply
 * per SOCK_SEQPACKET packet, a fixed 16-byte header (magic, version, type,
 * body length), a body per type, fds as SCM_RIGHTS, all little-endian. Its
 * own magic keeps the two protocols apart. plugin_proto_parse() checks
 * magic, version, type, body length, every count, enum, flag and reserved
 * field, and the fd count before anyone reads the body; it is pure and
 * fuzzed. What only the launcher can know (ids, vCPU numbers, overlaps,
 * state) is the server's job: services/launcher/plugin-server.h.
 *
 * Sockets. The plugin gets its main socket at start (POLYVM_PLUGIN_FD, see
 * docs/plugins.md). Main-socket requests may also be sent on any connection
 * opened with OPEN_CONNECTION; vCPU requests only on the socket that
 * GET_VCPU_SOCKET returned for that vCPU. A request on the wrong kind of
 * socket gets EOPNOTSUPP. Each socket is strictly request -> reply, in
 * order; the only reply that can take long is WAIT's.
 *
 * Main socket (request body -> reply, fds):
 *   CREATE_IO_EVENT   plugin_io_event -> ID + 1 fd (an eventfd the launcher
 *                     signals when the guest writes the address; KVM_IOEVENTFD)
 *   CREATE_MEMORY     plugin_memory + 1 fd (the plugin's memfd) -> ID
 *   CREATE_IRQ_EVENT  plugin_irq_event -> ID + 1 fd (eventfd: a write raises
 *                     the irq; KVM_IRQFD) [+ 1 fd: the resample eventfd, with
 *                     PLUGIN_IRQ_RESAMPLE]
 *   DESTROY           plugin_id -> OK (undoes the create exactly)
 *   GET_DIRTY_LOG     plugin_id (a memory region with PLUGIN_MEMORY_DIRTY_LOG)
 *                     -> DIRTY_LOG (one bit per 4 KiB page, reset by the read)
 *   SET_IRQ_LINE      plugin_irq_line -> OK
 *   GET_CLOCK         none -> CLOCK;  SET_CLOCK plugin_clock -> OK
 *   PAUSE_VCPUS       plugin_vcpu_mask -> OK once the vCPUs in the mask are
 *                     out of the guest; they stay out until RESUME_VCPUS.
 *                     No event is reported for this VM-level hold.
 *   RESUME_VCPUS      plugin_vcpu_mask -> OK
 *   GET_FEATURES      none -> FEATURES (PLUGIN_FEATURE_* bits)
 *   RESERVE_RANGE     plugin_range -> OK: guest accesses there exit to the
 *                     plugin (as vCPU IO/MMIO events); EEXIST if it overlaps
 *   UNRESERVE_RANGE   plugin_range (exactly as reserved) -> OK
 *   OPEN_CONNECTION   none -> FD (a new main-type connection)
 *   GET_VCPU_SOCKET   plugin_vcpu_index -> FD (EBUSY if that vCPU has one)
 * vCPU socket:
 *   WAIT              none -> EVENT when the vCPU has stopped for one
 *                     (INIT first, before it ever runs); the vCPU then stays
 *                     stopped until RESUME.
 *   RESUME            plugin_resume (the data of an IO/MMIO read, exactly its
 *                     size; nothing otherwise) -> OK
 *   GET_REGS/SREGS/FPU/LAPIC  none -> REGS/SREGS/FPU/LAPIC
 *   SET_REGS/SREGS/FPU/LAPIC  the same body -> OK
 *   GET_MSRS          plugin_msrs (indices) -> MSRS (indices and values)
 *   SET_MSRS          plugin_msrs -> OK
 *   GET_CPUID         none -> CPUID;  SET_CPUID plugin_cpuid -> OK
 *   REQUEST_EXIT      none -> OK: the vCPU leaves the guest as soon as it can
 *                     (KVM immediate_exit) and reports IMMEDIATE_EXIT
 *   PAUSE             plugin_pause -> OK: the same, reporting PAUSED with the
 *                     plugin's cookie
 *   State requests (GET_ and SET_) are answered only while the vCPU is
 *   stopped at an event the plugin has received (EBUSY otherwise); the
 *   bodies are Linux's x86 KVM structs (<linux/kvm.h>), sizes exact.
 * Any request may instead get ERROR (a positive errno). A packet the parser
 * rejects gets ERROR EBADMSG and the connection stays usable. */

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define PLUGIN_PROTO_MAGIC 0x47554c50u /* "PLUG" in memory order */
#define PLUGIN_PROTO_VERSION 1
#define PLUGIN_MAX_FDS 2
#define PLUGIN_MAX_VCPUS 64 /* vCPU masks are 64 bits */
#define PLUGIN_MAX_IRQ 1024 /* irq numbers (GSIs) are below this */
#define PLUGIN_MAX_MSRS 64
#define PLUGIN_MAX_CPUID 128
#define PLUGIN_PAGE_SIZE 4096u
/* Dirty bitmaps travel in one packet: 32 KiB, one bit per 4 KiB page, so a
 * region with dirty logging is at most 1 GiB. */
#define PLUGIN_DIRTY_LOG_MAX 32768u
#define PLUGIN_DIRTY_LOG_MAX_REGION ((uint64_t) PLUGIN_DIRTY_LOG_MAX * 8 * PLUGIN_PAGE_SIZE)

enum plugin_type {
        /* main socket, plugin -> launcher */
        PLUGIN_CREATE_IO_EVENT = 1,
        PLUGIN_CREATE_MEMORY,
        PLUGIN_CREATE_IRQ_EVENT,
        PLUGIN_DESTROY,
        PLUGIN_GET_DIRTY_LOG,
        PLUGIN_SET_IRQ_LINE,
        PLUGIN_GET_CLOCK,
        PLUGIN_SET_CLOCK,
        PLUGIN_PAUSE_VCPUS,
        PLUGIN_RESUME_VCPUS,
        PLUGIN_GET_FEATURES,
        PLUGIN_RESERVE_RANGE,
        PLUGIN_UNRESERVE_RANGE,
        PLUGIN_OPEN_CONNECTION,
        PLUGIN_GET_VCPU_SOCKET,
        _PLUGIN_MAIN_MAX,

        /* vCPU socket, plugin -> launcher */
        PLUGIN_VCPU_WAIT = 0x40,
        PLUGIN_VCPU_RESUME,
        PLUGIN_VCPU_GET_REGS,
        PLUGIN_VCPU_SET_REGS,
        PLUGIN_VCPU_GET_SREGS,
        PLUGIN_VCPU_SET_SREGS,
        PLUGIN_VCPU_GET_FPU,
        PLUGIN_VCPU_SET_FPU,
        PLUGIN_VCPU_GET_MSRS,
        PLUGIN_VCPU_SET_MSRS,
        PLUGIN_VCPU_GET_CPUID,
        PLUGIN_VCPU_SET_CPUID,
        PLUGIN_VCPU_GET_LAPIC,
        PLUGIN_VCPU_SET_LAPIC,
        PLUGIN_VCPU_REQUEST_EXIT,
        PLUGIN_VCPU_PAUSE,
        _PLUGIN_VCPU_MAX,

        /* replies, launcher -> plugin */
        PLUGIN_REPLY_OK = 0x100,
        PLUGIN_REPLY_ERROR,
        PLUGIN_REPLY_ID,
        PLUGIN_REPLY_FD,
        PLUGIN_REPLY_DIRTY_LOG,
        PLUGIN_REPLY_CLOCK,
        PLUGIN_REPLY_FEATURES,
        PLUGIN_REPLY_EVENT,
        PLUGIN_REPLY_REGS,
        PLUGIN_REPLY_SREGS,
        PLUGIN_REPLY_FPU,
        PLUGIN_REPLY_MSRS,
        PLUGIN_REPLY_CPUID,
        PLUGIN_REPLY_LAPIC,
        _PLUGIN_REPLY_MAX,
};

enum plugin_space {
        PLUGIN_SPACE_PIO = 0,
        PLUGIN_SPACE_MMIO = 1,
};

enum {
        PLUGIN_MEMORY_READ_ONLY = 1u << 0,
        PLUGIN_MEMORY_DIRTY_LOG = 1u << 1,
        _PLUGIN_MEMORY_FLAGS = PLUGIN_MEMORY_READ_ONLY | PLUGIN_MEMORY_DIRTY_LOG,
};

enum {
        PLUGIN_IRQ_RESAMPLE = 1u << 0, /* level-triggered: a second eventfd signals EOI */
};

enum {
        PLUGIN_CLOCK_STABLE = 1u << 0, /* in CLOCK replies: the clock is the same on every host CPU */
};

/* What GET_FEATURES reports; bits not listed here are reserved (0). */
enum {
        PLUGIN_FEATURE_IO_EVENT = 1u << 0,
        PLUGIN_FEATURE_MEMORY = 1u << 1,
        PLUGIN_FEATURE_IRQ_EVENT = 1u << 2,
        PLUGIN_FEATURE_IRQ_RESAMPLE = 1u << 3,
        PLUGIN_FEATURE_DIRTY_LOG = 1u << 4,
        PLUGIN_FEATURE_READ_ONLY_MEMORY = 1u << 5,
        PLUGIN_FEATURE_CLOCK = 1u << 6,
        PLUGIN_FEATURE_IMMEDIATE_EXIT = 1u << 7,
        PLUGIN_FEATURE_MMIO_RESERVE = 1u << 8,
};

enum plugin_event_kind {
        PLUGIN_EVENT_INIT = 1,     /* before the vCPU first runs: set its state now */
        PLUGIN_EVENT_IO,           /* a port access in a reserved range */
        PLUGIN_EVENT_MMIO,         /* a memory access in a reserved range */
        PLUGIN_EVENT_HLT,          /* the vCPU halted; resuming ends its run */
        PLUGIN_EVENT_SHUTDOWN,     /* triple fault; resuming ends its run */
        PLUGIN_EVENT_PAUSED,       /* after PAUSE; user carries its cookie */
        PLUGIN_EVENT_IMMEDIATE_EXIT, /* after REQUEST_EXIT */
        _PLUGIN_EVENT_MAX,
};

/* Bodies. reserved fields are 0; anything else is malformed. */

struct plugin_io_event {
        uint32_t space;     /* enum plugin_space */
        uint32_t length;    /* 0 (any access), 1, 2, 4 or 8 */
        uint64_t address;   /* PIO: address + max(length, 1) <= 0x10000; MMIO: no wrap */
        uint32_t datamatch; /* 0 or 1: signal only when the written value equals value; needs length != 0 */
        uint32_t reserved;
        uint64_t value; /* fits in length bytes; 0 without datamatch */
} __attribute__((packed));

struct plugin_memory {
        uint64_t offset;        /* into the memfd; page aligned */
        uint64_t guest_address; /* page aligned */
        uint64_t size;          /* page aligned, >= 1 page, no wrap; <= PLUGIN_DIRTY_LOG_MAX_REGION with DIRTY_LOG */
        uint32_t flags;         /* PLUGIN_MEMORY_* */
        uint32_t reserved;
} __attribute__((packed));

struct plugin_irq_event {
        uint32_t irq;   /* < PLUGIN_MAX_IRQ */
        uint32_t flags; /* PLUGIN_IRQ_* */
} __attribute__((packed));

struct plugin_id {
        uint32_t id; /* >= 1 */
        uint32_t reserved;
} __attribute__((packed));

struct plugin_irq_line {
        uint32_t irq;   /* < PLUGIN_MAX_IRQ */
        uint32_t level; /* 0 or 1 */
} __attribute__((packed));

struct plugin_clock {
        uint64_t clock; /* kvmclock, ns */
        uint32_t flags; /* PLUGIN_CLOCK_STABLE in replies; 0 in SET_CLOCK */
        uint32_t reserved;
} __attribute__((packed));

struct plugin_vcpu_mask {
        uint64_t mask; /* bit n: vCPU n; >= 1 bit */
} __attribute__((packed));

struct plugin_features {
        uint64_t features; /* PLUGIN_FEATURE_* */
} __attribute__((packed));

struct plugin_range {
        uint32_t space; /* enum plugin_space */
        uint32_t reserved;
        uint64_t start;
        uint64_t length; /* >= 1, no wrap; PIO ranges end at or below 0x10000 */
} __attribute__((packed));

struct plugin_vcpu_index {
        uint32_t index; /* < PLUGIN_MAX_VCPUS */
        uint32_t reserved;
} __attribute__((packed));

struct plugin_error {
        int32_t error; /* positive errno, 1..4095 */
        uint32_t reserved;
} __attribute__((packed));

/* Variable length: 8 + length bytes. length is a multiple of 8 (KVM's
 * bitmap is made of 64-bit words), at most PLUGIN_DIRTY_LOG_MAX. */
struct plugin_dirty_log {
        uint32_t id;
        uint32_t length;
        uint8_t bitmap[PLUGIN_DIRTY_LOG_MAX];
};

/* IO: size 1, 2 or 4 and address + size <= 0x10000; MMIO: size 1..8, no
 * wrap. data holds size bytes of a write (rest 0) and is 0 for a read.
 * Other kinds: is_write, address, size and data are 0. user is 0 but for
 * PAUSED. */
struct plugin_event {
        uint32_t kind; /* enum plugin_event_kind */
        uint32_t is_write; /* 0 or 1 */
        uint64_t address;
        uint32_t size;
        uint32_t reserved;
        uint8_t data[8];
        uint64_t user;
} __attribute__((packed));

struct plugin_resume {
        uint32_t length; /* 0..8; bytes of data past length are 0 */
        uint32_t reserved;
        uint8_t data[8];
} __attribute__((packed));

struct plugin_pause {
        uint64_t user; /* returned in the PAUSED event */
} __attribute__((packed));

/* Naturally aligned (no padding), not packed, so that the entries can be
 * handed to KVM's structs by pointer. */
struct plugin_msr {
        uint32_t index;
        uint32_t reserved;
        uint64_t data; /* 0 in GET_MSRS requests */
};

/* Variable length: 8 + count * 16 bytes, count 1..PLUGIN_MAX_MSRS. */
struct plugin_msrs {
        uint32_t count;
        uint32_t reserved;
        struct plugin_msr entries[PLUGIN_MAX_MSRS];
};

/* Variable length: 8 + count * 40 bytes, count 0..PLUGIN_MAX_CPUID. */
struct plugin_cpuid {
        uint32_t count;
        uint32_t reserved;
        struct kvm_cpuid_entry2 entries[PLUGIN_MAX_CPUID];
};

/* A received message; it owns fds[] (plugin_msg_done() closes the ones the
 * receiver did not take: set an entry to -1 to take it). */
struct plugin_msg {
        struct proto_header hdr;
        union {
                struct plugin_io_event io_event;
                struct plugin_memory memory;
                struct plugin_irq_event irq_event;
                struct plugin_id id;
                struct plugin_irq_line irq_line;
                struct plugin_clock clock;
                struct plugin_vcpu_mask vcpu_mask;
                struct plugin_features features;
                struct plugin_range range;
                struct plugin_vcpu_index vcpu_index;
                struct plugin_error error;
                struct plugin_dirty_log dirty_log;
                struct plugin_event event;
                struct plugin_resume resume;
                struct plugin_pause pause;
                struct plugin_msrs msrs;
                struct plugin_cpuid cpuid;
                struct kvm_regs regs;
                struct kvm_sregs sregs;
                struct kvm_fpu fpu;
                struct kvm_lapic_state lapic;
        } body;
        int fds[PLUGIN_MAX_FDS];
        unsigned n_fds;
};

/* Name of a type for logs, "unknown" for anything else. */
const char *plugin_proto_type_to_string(unsigned type);

/* The reply a request takes (PLUGIN_REPLY_*), 0 for anything that is no
 * request. */
unsigned plugin_proto_reply_type(unsigned request);

bool plugin_proto_is_main_request(unsigned type);
/* Whether the protocol can carry e as an EVENT reply (the parser's check). */
bool plugin_proto_event_valid(const struct plugin_event *e);
bool plugin_proto_is_vcpu_request(unsigned type);

/* Sends one packet. 0 or -errno (-ECONNRESET when the peer is gone). */
int plugin_proto_send(int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds);
int plugin_proto_send_error(int sock, int error);

/* Validates one packet of len bytes with n_fds fds and fills m. m owns the
 * fds whatever the result (on failure they are closed). 0, or -EBADMSG for
 * anything malformed. Pure: the fuzz target calls it. */
int plugin_proto_parse(const void *buf, size_t len, const int *fds, size_t n_fds, struct plugin_msg *m);

/* Receives one packet and parses it: -ETIMEDOUT after timeout_ms (<0 waits
 * forever), -ECONNRESET on hang-up, and what plugin_proto_parse() returns. */
int plugin_proto_recv(int sock, struct plugin_msg *m, int timeout_ms);

void plugin_msg_done(struct plugin_msg *m);

/* Client side: sends a request and waits for its reply. An ERROR reply
 * becomes its -errno; a reply of another type than the request takes, or
 * an ID reply with other fds than the request asked for (see above), is
 * -EBADMSG. On success reply holds the reply (release it with
 * plugin_msg_done()); on failure it holds nothing. */
int plugin_proto_call(int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds,
                      struct plugin_msg *reply, int timeout_ms);
