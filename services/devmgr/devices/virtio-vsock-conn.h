/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The packet and connection logic of the virtio-vsock device (virtio 1.2
 * 5.10), apart from the transport so that tests/unit/test-virtio-vsock.c
 * can drive it with hand-made chains and socketpairs. Guest vsock streams
 * are bridged to host AF_UNIX stream sockets, Firecracker's way:
 *
 *   host -> guest: a client connects to uds_path (the listener), writes
 *     "CONNECT <port>\n"; we send OP_REQUEST to the guest's port and on
 *     OP_RESPONSE answer "OK <host_port>\n", then relay.
 *   guest -> host: OP_REQUEST to host port P; ops->connect() asks someone
 *     with access to the file system (devmgr) to connect to
 *     "<uds_path>_<P>"; vsock_dev_connect_done() brings the socket or an
 *     errno (then OP_RST).
 *
 * Everything the guest sends is checked (cids, type, op, len against the
 * buffer, credit); anything unexpected gets OP_RST or is dropped, never
 * trusted. Host sockets are non-blocking and watched by one edge-triggered
 * epoll fd (vsock_dev_epoll_fd()), which the model hands the transport as
 * its event fd. One thread only (the worker). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtqueue.h"

#define VSOCK_HOST_CID 2u
#define VSOCK_CID_MIN 3u
#define VSOCK_CID_MAX 0xfffffffeu

/* Queues (5.10.2). */
#define VSOCK_QUEUE_RX 0
#define VSOCK_QUEUE_TX 1
#define VSOCK_QUEUE_EVENT 2

#define VSOCK_F_STREAM 0 /* feature bit (5.10.3) */

#define VSOCK_TYPE_STREAM 1

enum vsock_op {
        VSOCK_OP_INVALID = 0,
        VSOCK_OP_REQUEST = 1,
        VSOCK_OP_RESPONSE = 2,
        VSOCK_OP_RST = 3,
        VSOCK_OP_SHUTDOWN = 4,
        VSOCK_OP_RW = 5,
        VSOCK_OP_CREDIT_UPDATE = 6,
        VSOCK_OP_CREDIT_REQUEST = 7,
};

#define VSOCK_SHUTDOWN_RCV 1u
#define VSOCK_SHUTDOWN_SEND 2u

/* struct virtio_vsock_hdr (5.10.6), little-endian on the wire. */
struct vsock_hdr {
        uint64_t src_cid;
        uint64_t dst_cid;
        uint32_t src_port;
        uint32_t dst_port;
        uint32_t len;
        uint16_t type;
        uint16_t op;
        uint32_t flags;
        uint32_t buf_alloc;
        uint32_t fwd_cnt;
} __attribute__((packed));
#define VSOCK_HDR_LEN 44u

/* Limits. Each connection buffers at most VSOCK_BUF_ALLOC bytes the guest
 * sent and the host socket has not taken yet: that is the buf_alloc we
 * advertise, so a guest that respects credit never overflows it. */
#define VSOCK_MAX_CONNS 64
#define VSOCK_BUF_ALLOC (128u * 1024)
#define VSOCK_MAX_PAYLOAD (64u * 1024) /* per packet, both ways */
#define VSOCK_RST_QUEUE 64             /* RSTs for packets of no connection */
#define VSOCK_CONNECT_LINE_MAX 32      /* "CONNECT 4294967295\n" fits */
/* Host ports of host-initiated connections, as Firecracker: from 2^30. */
#define VSOCK_LOCAL_PORT_BASE (1u << 30)

/* What to do with a guest packet whose header vsock_hdr_check() judged. */
enum vsock_verdict {
        VSOCK_ACCEPT = 0,
        VSOCK_DROP,  /* not for us / not from the guest: no answer */
        VSOCK_RESET, /* answer with OP_RST */
};

/* Header checks that need no connection: src_cid is the guest's, dst_cid
 * the host; type STREAM; a known op; len at most payload_avail (what the
 * chain holds after the header) and VSOCK_MAX_PAYLOAD, and 0 for every op
 * but RW. An RST is never answered with an RST. */
enum vsock_verdict vsock_hdr_check(const struct vsock_hdr *h, uint64_t guest_cid, uint64_t payload_avail);

struct vsock_ops {
        /* Asks for a connection to "<uds_path>_<port>"; the answer comes
         * later through vsock_dev_connect_done(cookie, ...). -errno: no
         * answer will come (the guest gets OP_RST). */
        int (*connect)(void *userdata, uint32_t port, uint64_t cookie);
        void *userdata;
};

struct vsock_dev;

/* listen_fd (a listening AF_UNIX stream socket, non-blocking, or -1) stays
 * the caller's. */
int vsock_dev_new(uint64_t guest_cid, int listen_fd, const struct vsock_ops *ops, struct vsock_dev **ret);
void vsock_dev_free(struct vsock_dev *v);

/* The epoll fd to poll for POLLIN; aux_fd (e.g. the report channel, or -1)
 * is watched too and vsock_dev_poll() says when it fired. */
int vsock_dev_epoll_fd(struct vsock_dev *v);
int vsock_dev_watch_aux(struct vsock_dev *v, int aux_fd);
/* Takes the ready events (non-blocking) and does the host side's work:
 * accepts, CONNECT lines, writes to host sockets. Returns whether aux_fd
 * was ready. */
bool vsock_dev_poll(struct vsock_dev *v);

/* One chain of the tx queue: a guest packet. Never fails: what is wrong
 * is dropped or answered with OP_RST (queued for vsock_dev_rx()). */
void vsock_dev_tx(struct vsock_dev *v, const struct vq_chain *chain);

/* Fills one rx chain with the next packet for the guest (control packets
 * first, then data the host sent, within the guest's credit). 1 and
 * *written, or 0 if there is nothing to send now (the chain is untouched).
 * A chain too small for a header is 1 with *written 0. */
int vsock_dev_rx(struct vsock_dev *v, struct vq_chain *chain, uint32_t *written);

/* The answer to ops->connect(): fd (taken) or -errno. */
void vsock_dev_connect_done(struct vsock_dev *v, uint64_t cookie, int fd_or_errno);

/* Device reset: every connection is closed (host peers see EOF). */
void vsock_dev_reset(struct vsock_dev *v);

/* For tests and logs. */
unsigned vsock_dev_n_conns(const struct vsock_dev *v);
