/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The vhost-user protocol as a back-end sees it (QEMU's
 * docs/interop/vhost-user.rst): a 12-byte header (request, flags, size)
 * and a payload on a Unix stream socket, fds as SCM_RIGHTS. Only what the
 * bridge speaks is here; numbers are the host's byte order. */

#include <stdint.h>

#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_REPLY_MASK (1u << 2)
#define VHOST_USER_NEED_REPLY_MASK (1u << 3)

/* Front-end requests (ids from the spec). */
enum vhost_user_request {
        VHOST_USER_GET_FEATURES = 1,
        VHOST_USER_SET_FEATURES = 2,
        VHOST_USER_SET_OWNER = 3,
        VHOST_USER_RESET_OWNER = 4,
        VHOST_USER_SET_MEM_TABLE = 5,
        VHOST_USER_SET_LOG_BASE = 6,
        VHOST_USER_SET_LOG_FD = 7,
        VHOST_USER_SET_VRING_NUM = 8,
        VHOST_USER_SET_VRING_ADDR = 9,
        VHOST_USER_SET_VRING_BASE = 10,
        VHOST_USER_GET_VRING_BASE = 11,
        VHOST_USER_SET_VRING_KICK = 12,
        VHOST_USER_SET_VRING_CALL = 13,
        VHOST_USER_SET_VRING_ERR = 14,
        VHOST_USER_GET_PROTOCOL_FEATURES = 15,
        VHOST_USER_SET_PROTOCOL_FEATURES = 16,
        VHOST_USER_GET_QUEUE_NUM = 17,
        VHOST_USER_SET_VRING_ENABLE = 18,
        VHOST_USER_GET_CONFIG = 24,
        VHOST_USER_SET_CONFIG = 25,
        VHOST_USER_RESET_DEVICE = 34,
        VHOST_USER_GET_MAX_MEM_SLOTS = 36,
        VHOST_USER_GET_STATUS = 40,
        _VHOST_USER_REQUEST_MAX = 41,
};

/* The virtio feature bit vhost-user borrows (30, reserved in virtio). */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

/* Protocol features; the bridge offers MQ, REPLY_ACK and CONFIG. */
#define VHOST_USER_PROTOCOL_F_MQ 0
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_CONFIG 9

/* SET_VRING_KICK/CALL/ERR payload: the vring index in bits 0-7, bit 8 set
 * when no fd came (polling). */
#define VHOST_USER_VRING_INDEX_MASK 0xffu
#define VHOST_USER_VRING_NOFD_MASK (1u << 8)

/* SET_VRING_ADDR flags bit 0: log used-ring writes (migration). */
#define VHOST_VRING_F_LOG 0x1u

#define VHOST_USER_MAX_REGIONS 8
#define VHOST_USER_MAX_FDS 8
/* GET_CONFIG/SET_CONFIG payload bytes at most (QEMU's limit). */
#define VHOST_USER_MAX_CONFIG_SIZE 256

struct vhost_user_header {
        uint32_t request;
        uint32_t flags;
        uint32_t size; /* of the payload that follows */
} __attribute__((packed));

struct vhost_user_vring_state {
        uint32_t index;
        uint32_t num;
} __attribute__((packed));

/* Ring addresses in the front-end's own virtual address space. */
struct vhost_user_vring_addr {
        uint32_t index;
        uint32_t flags;
        uint64_t desc;
        uint64_t used;
        uint64_t avail;
        uint64_t log;
} __attribute__((packed));

struct vhost_user_region {
        uint64_t guest_addr;
        uint64_t size;
        uint64_t user_addr;
        uint64_t mmap_offset;
} __attribute__((packed));

struct vhost_user_memory {
        uint32_t n_regions;
        uint32_t padding;
        struct vhost_user_region regions[VHOST_USER_MAX_REGIONS];
} __attribute__((packed));

struct vhost_user_config {
        uint32_t offset;
        uint32_t size;
        uint32_t flags;
        uint8_t payload[VHOST_USER_MAX_CONFIG_SIZE];
} __attribute__((packed));

#define VHOST_USER_CONFIG_HEADER_SIZE 12u

struct vhost_user_msg {
        struct vhost_user_header hdr;
        union {
                uint64_t u64;
                struct vhost_user_vring_state state;
                struct vhost_user_vring_addr addr;
                struct vhost_user_memory memory;
                struct vhost_user_config config;
                uint8_t raw[sizeof(struct vhost_user_memory)];
        } body;
        int fds[VHOST_USER_MAX_FDS];
        unsigned n_fds;
};

/* Name of a request for logs ("unknown" otherwise). */
const char *vhost_user_request_to_string(uint32_t request);

/* Receives one message from the stream socket fd: the header, then exactly
 * size payload bytes (size checked against the body first), fds from the
 * header's ancillary data (at most VHOST_USER_MAX_FDS, CLOEXEC). Returns 1
 * and fills m, 0 on a clean end of stream before a header, -EBADMSG for a
 * malformed message (bad version, reply flag, oversized, truncated, too
 * many fds), -errno otherwise. On failure no fd is left open. */
int vhost_user_recv(int fd, struct vhost_user_msg *m);
void vhost_user_msg_done(struct vhost_user_msg *m);

/* Sends a reply to request: the header (version, reply flag) and size
 * payload bytes. */
int vhost_user_send_reply(int fd, uint32_t request, const void *payload, uint32_t size);
