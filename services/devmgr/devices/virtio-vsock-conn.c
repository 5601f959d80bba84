/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-vsock connections (virtio-vsock-conn.h): the state machine of
 * each bridged stream, credit accounting, and the packets both ways. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "virtio-vsock-conn.h"

#define TAG_LISTENER UINT64_MAX
#define TAG_AUX (UINT64_MAX - 1)

enum conn_state {
        CONN_FREE,
        CONN_HOST_LINE,      /* accepted; waiting for "CONNECT <port>\n" */
        CONN_HOST_REQUESTED, /* OP_REQUEST (to be) sent; waiting for OP_RESPONSE */
        CONN_GUEST_PENDING,  /* guest's OP_REQUEST; waiting for ops->connect's answer */
        CONN_ESTABLISHED,
};

struct conn {
        enum conn_state state;
        int fd;
        uint32_t local_port; /* the host side's port */
        uint32_t peer_port;  /* the guest's */
        uint64_t cookie;

        /* Host -> guest: what the guest told us of its buffer, and what we sent. */
        uint32_t peer_buf_alloc, peer_fwd_cnt, rx_cnt;
        bool host_readable, host_eof;

        /* Guest -> host: bytes waiting for the host socket (a ring), what
         * went out (fwd_cnt) and what the guest last heard of it. ok_bytes
         * at the head are our "OK <port>\n", not guest data. */
        uint8_t *buf;
        uint32_t head, len, ok_bytes;
        uint32_t fwd_cnt, fwd_cnt_sent;
        uint32_t guest_shutdown; /* VSOCK_SHUTDOWN_* the guest sent */

        /* Control packets owed to the guest. */
        bool want_request, want_response, want_rst, want_credit, want_shutdown, shutdown_sent;
};

struct vsock_rst {
        uint32_t src_port, dst_port; /* as the guest's packet had them */
};

struct vsock_dev {
        uint64_t guest_cid;
        int listen_fd;
        int epoll_fd;
        int aux_fd;
        struct vsock_ops ops;
        uint64_t next_cookie;
        uint32_t next_local_port;
        unsigned rr; /* where the next rx round starts */
        struct conn conns[VSOCK_MAX_CONNS];
        struct vsock_rst rsts[VSOCK_RST_QUEUE];
        unsigned n_rsts;
};

/* Header fields in host order, from/to the wire's little-endian. */
static void hdr_from_le(struct vsock_hdr *h) {
        h->src_cid = le64toh(h->src_cid);
        h->dst_cid = le64toh(h->dst_cid);
        h->src_port = le32toh(h->src_port);
        h->dst_port = le32toh(h->dst_port);
        h->len = le32toh(h->len);
        h->type = le16toh(h->type);
        h->op = le16toh(h->op);
        h->flags = le32toh(h->flags);
        h->buf_alloc = le32toh(h->buf_alloc);
        h->fwd_cnt = le32toh(h->fwd_cnt);
}

static void hdr_to_le(struct vsock_hdr *h) {
        h->src_cid = htole64(h->src_cid);
        h->dst_cid = htole64(h->dst_cid);
        h->src_port = htole32(h->src_port);
        h->dst_port = htole32(h->dst_port);
        h->len = htole32(h->len);
        h->type = htole16(h->type);
        h->op = htole16(h->op);
        h->flags = htole32(h->flags);
        h->buf_alloc = htole32(h->buf_alloc);
        h->fwd_cnt = htole32(h->fwd_cnt);
}

enum vsock_verdict vsock_hdr_check(const struct vsock_hdr *h, uint64_t guest_cid, uint64_t payload_avail) {
        /* A packet that is not from our guest to the host is not ours to
         * answer (the guest may not spoof another VM's address). */
        if (h->src_cid != guest_cid || h->dst_cid != VSOCK_HOST_CID)
                return VSOCK_DROP;
        if (h->op == VSOCK_OP_RST)
                return h->type == VSOCK_TYPE_STREAM && h->len == 0 ? VSOCK_ACCEPT : VSOCK_DROP;
        if (h->type != VSOCK_TYPE_STREAM)
                return VSOCK_RESET;
        if (h->op < VSOCK_OP_REQUEST || h->op > VSOCK_OP_CREDIT_REQUEST)
                return VSOCK_RESET;
        if (h->len > payload_avail || h->len > VSOCK_MAX_PAYLOAD)
                return VSOCK_RESET;
        if (h->op != VSOCK_OP_RW && h->len != 0)
                return VSOCK_RESET;
        return VSOCK_ACCEPT;
}

static uint32_t conn_peer_credit(const struct conn *c) {
        uint32_t in_flight = c->rx_cnt - c->peer_fwd_cnt; /* wraps, as the spec's counters do */

        /* A guest claiming more consumed than we sent gets no extra. */
        return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static void conn_close(struct vsock_dev *v, struct conn *c) {
        if (c->fd >= 0) {
                if (v->epoll_fd >= 0)
                        (void) epoll_ctl(v->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
                safe_close(c->fd);
        }
        free(c->buf);
        *c = (struct conn) { .fd = -1 };
}

/* Closes the host side now and owes the guest an OP_RST (if it knows of
 * the connection). */
static void conn_reset(struct vsock_dev *v, struct conn *c, bool guest_knows) {
        uint32_t local = c->local_port, peer = c->peer_port;

        conn_close(v, c);
        if (guest_knows) {
                c->state = CONN_HOST_REQUESTED; /* a placeholder that only sends the RST */
                c->local_port = local;
                c->peer_port = peer;
                c->want_rst = true;
        }
}

static int conn_watch(struct vsock_dev *v, struct conn *c) {
        struct epoll_event ev = {
                .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                .data.u64 = (uint64_t) (c - v->conns),
        };

        if (v->epoll_fd >= 0 && epoll_ctl(v->epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
                return -errno;
        return 0;
}

static struct conn *conn_alloc(struct vsock_dev *v) {
        for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
                if (v->conns[i].state == CONN_FREE && !v->conns[i].want_rst) {
                        v->conns[i] = (struct conn) { .fd = -1 };
                        return &v->conns[i];
                }
        return NULL;
}

static struct conn *conn_find(struct vsock_dev *v, uint32_t local_port, uint32_t peer_port) {
        for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
                struct conn *c = &v->conns[i];

                if (c->state != CONN_FREE && !c->want_rst && c->local_port == local_port &&
                    c->peer_port == peer_port && c->state != CONN_HOST_LINE)
                        return c;
        }
        return NULL;
}

static bool local_port_used(struct vsock_dev *v, uint32_t port) {
        for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
                if (v->conns[i].state != CONN_FREE && v->conns[i].state != CONN_HOST_LINE &&
                    v->conns[i].local_port == port)
                        return true;
        return false;
}

static int conn_establish(struct conn *c) {
        c->buf = malloc(VSOCK_BUF_ALLOC);
        if (!c->buf)
                return -ENOMEM;
        c->state = CONN_ESTABLISHED;
        c->host_readable = true;
        return 0;
}

static void queue_rst(struct vsock_dev *v, const struct vsock_hdr *h) {
        /* Best effort: a guest flooding bad packets loses some answers. */
        if (v->n_rsts < VSOCK_RST_QUEUE)
                v->rsts[v->n_rsts++] = (struct vsock_rst) { .src_port = h->src_port, .dst_port = h->dst_port };
}

/* Writes what the guest sent to the host socket, as far as it takes it. */
static void conn_flush(struct vsock_dev *v, struct conn *c) {
        while (c->state == CONN_ESTABLISHED && c->len > 0) {
                uint32_t first = MIN(c->len, VSOCK_BUF_ALLOC - c->head);
                struct iovec iov[2] = {
                        { c->buf + c->head, first },
                        { c->buf, c->len - first },
                };
                struct msghdr mh = { .msg_iov = iov, .msg_iovlen = c->len > first ? 2 : 1 };
                ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                uint32_t data;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return;
                        /* EPIPE, ECONNRESET: the host side is gone. */
                        conn_reset(v, c, true);
                        return;
                }
                c->head = (c->head + (uint32_t) n) % VSOCK_BUF_ALLOC;
                c->len -= (uint32_t) n;
                data = (uint32_t) n > c->ok_bytes ? (uint32_t) n - c->ok_bytes : 0;
                c->ok_bytes -= (uint32_t) n - data;
                c->fwd_cnt += data;
        }
        if (c->state != CONN_ESTABLISHED)
                return;
        /* The guest sees our fwd_cnt in every packet; tell it explicitly
         * when half the buffer came free since it last heard. */
        if (c->fwd_cnt - c->fwd_cnt_sent >= VSOCK_BUF_ALLOC / 2)
                c->want_credit = true;
        /* The guest will send no more and everything is out: half-close
         * the host side; both ways shut: close and RST (5.10.6.6). */
        if (c->len == 0 && (c->guest_shutdown & VSOCK_SHUTDOWN_SEND)) {
                if (c->host_eof || (c->guest_shutdown & VSOCK_SHUTDOWN_RCV))
                        conn_reset(v, c, true);
                else
                        (void) shutdown(c->fd, SHUT_WR);
        }
}

/* Appends to the ring; the caller checked the room. */
static void conn_buf_put(struct conn *c, const uint8_t *p, uint32_t n) {
        uint32_t tail = (c->head + c->len) % VSOCK_BUF_ALLOC, first = MIN(n, VSOCK_BUF_ALLOC - tail);

        memcpy(c->buf + tail, p, first);
        memcpy(c->buf, p + first, n - first);
        c->len += n;
}

int vsock_dev_new(uint64_t guest_cid, int listen_fd, const struct vsock_ops *ops, struct vsock_dev **ret) {
        struct vsock_dev *v = calloc(1, sizeof(*v));
        struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = TAG_LISTENER };

        if (!v)
                return -ENOMEM;
        v->guest_cid = guest_cid;
        v->listen_fd = listen_fd;
        v->aux_fd = -1;
        v->ops = *ops;
        v->next_cookie = 1;
        v->next_local_port = VSOCK_LOCAL_PORT_BASE;
        for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
                v->conns[i].fd = -1;
        v->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (v->epoll_fd < 0 || (listen_fd >= 0 && epoll_ctl(v->epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev) < 0)) {
                int r = -errno;

                safe_close(v->epoll_fd);
                free(v);
                return r;
        }
        *ret = v;
        return 0;
}

void vsock_dev_free(struct vsock_dev *v) {
        if (!v)
                return;
        vsock_dev_reset(v);
        safe_close(v->epoll_fd);
        free(v);
}

int vsock_dev_epoll_fd(struct vsock_dev *v) {
        return v->epoll_fd;
}

int vsock_dev_watch_aux(struct vsock_dev *v, int aux_fd) {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = TAG_AUX };

        if (epoll_ctl(v->epoll_fd, EPOLL_CTL_ADD, aux_fd, &ev) < 0)
                return -errno;
        v->aux_fd = aux_fd;
        return 0;
}

void vsock_dev_reset(struct vsock_dev *v) {
        for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
                conn_close(v, &v->conns[i]);
        v->n_rsts = 0;
}

unsigned vsock_dev_n_conns(const struct vsock_dev *v) {
        unsigned n = 0;

        for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
                if (v->conns[i].state != CONN_FREE && !v->conns[i].want_rst)
                        n++;
        return n;
}

static void accept_all(struct vsock_dev *v) {
        if (v->listen_fd < 0)
                return;
        for (;;) {
                int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                struct conn *c;

                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        return; /* EAGAIN, or EMFILE and friends: try on the next edge */
                }
                c = conn_alloc(v);
                if (!c) {
                        /* Table full: refuse this one (the client sees EOF). */
                        log_warning("virtio-vsock: %u connections already, refusing a host connection",
                                    VSOCK_MAX_CONNS);
                        close(fd);
                        continue;
                }
                c->state = CONN_HOST_LINE;
                c->fd = fd;
                if (conn_watch(v, c) < 0)
                        conn_close(v, c);
                else
                        c->host_readable = true;
        }
}

/* "CONNECT <port>\n": the port in decimal, nothing else. */
static int parse_connect_line(const char *line, size_t n, uint32_t *ret) {
        uint64_t port = 0;
        size_t i = 8;

        if (n < 10 || memcmp(line, "CONNECT ", 8) != 0 || line[n - 1] != '\n')
                return -EINVAL;
        for (; i < n - 1; i++) {
                if (line[i] < '0' || line[i] > '9' || i - 8 >= 10)
                        return -EINVAL;
                port = port * 10 + (uint64_t) (line[i] - '0');
        }
        if (port > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t) port;
        return 0;
}

/* Reads the CONNECT line without taking a byte more: what the client
 * sends after it is for the guest. */
static void conn_read_line(struct vsock_dev *v, struct conn *c) {
        char line[VSOCK_CONNECT_LINE_MAX];
        ssize_t n;
        char *nl;
        uint32_t port;

        n = recv(c->fd, line, sizeof(line), MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                c->host_readable = false;
                return;
        }
        if (n <= 0) {
                conn_close(v, c);
                return;
        }
        nl = memchr(line, '\n', (size_t) n);
        if (!nl) {
                if ((size_t) n == sizeof(line))
                        conn_close(v, c); /* no line that long is valid */
                else
                        c->host_readable = false;
                return;
        }
        n = recv(c->fd, line, (size_t) (nl - line + 1), MSG_DONTWAIT);
        if (n != nl - line + 1 || parse_connect_line(line, (size_t) n, &port) < 0) {
                log_debug("virtio-vsock: bad CONNECT line from a host client, closing it");
                conn_close(v, c);
                return;
        }
        while (local_port_used(v, v->next_local_port))
                v->next_local_port = v->next_local_port == UINT32_MAX ? VSOCK_LOCAL_PORT_BASE : v->next_local_port + 1;
        c->local_port = v->next_local_port;
        v->next_local_port = v->next_local_port == UINT32_MAX ? VSOCK_LOCAL_PORT_BASE : v->next_local_port + 1;
        c->peer_port = port;
        c->state = CONN_HOST_REQUESTED;
        c->want_request = true;
}

bool vsock_dev_poll(struct vsock_dev *v) {
        struct epoll_event ev[64];
        bool aux = false;
        int n;

        n = epoll_wait(v->epoll_fd, ev, (int) ELEMENTSOF(ev), 0);
        for (int i = 0; i < n; i++) {
                uint64_t tag = ev[i].data.u64;

                if (tag == TAG_AUX)
                        aux = true;
                else if (tag == TAG_LISTENER)
                        accept_all(v);
                else if (tag < VSOCK_MAX_CONNS && (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                        v->conns[tag].host_readable = true;
        }
        /* Host-side work that needs no rx buffer. */
        for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
                struct conn *c = &v->conns[i];

                if (c->state == CONN_HOST_LINE && c->host_readable)
                        conn_read_line(v, c);
                else if (c->state == CONN_ESTABLISHED && c->len > 0)
                        conn_flush(v, c);
        }
        return aux;
}

static void guest_request(struct vsock_dev *v, const struct vsock_hdr *h) {
        struct conn *c;
        int r;

        if (conn_find(v, h->dst_port, h->src_port)) {
                queue_rst(v, h); /* the same stream twice */
                return;
        }
        c = conn_alloc(v);
        if (!c) {
                log_debug("virtio-vsock: %u connections already, refusing the guest's request to port %" PRIu32,
                          VSOCK_MAX_CONNS, h->dst_port);
                queue_rst(v, h);
                return;
        }
        c->state = CONN_GUEST_PENDING;
        c->local_port = h->dst_port;
        c->peer_port = h->src_port;
        c->peer_buf_alloc = h->buf_alloc;
        c->peer_fwd_cnt = h->fwd_cnt;
        c->cookie = v->next_cookie++;
        r = v->ops.connect ? v->ops.connect(v->ops.userdata, h->dst_port, c->cookie) : -ENOSYS;
        if (r < 0) {
                conn_close(v, c);
                queue_rst(v, h);
        }
}

void vsock_dev_connect_done(struct vsock_dev *v, uint64_t cookie, int fd_or_errno) {
        struct conn *c = NULL;

        for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
                if (v->conns[i].state == CONN_GUEST_PENDING && !v->conns[i].want_rst && v->conns[i].cookie == cookie)
                        c = &v->conns[i];
        if (!c) {
                /* The guest gave up (RST) meanwhile, or a stale answer. */
                if (fd_or_errno >= 0)
                        close(fd_or_errno);
                return;
        }
        if (fd_or_errno < 0) {
                log_debug("virtio-vsock: no host listener for port %" PRIu32 ": %s", c->local_port,
                          strerror(-fd_or_errno));
                conn_reset(v, c, true);
                return;
        }
        c->fd = fd_or_errno;
        if (conn_watch(v, c) < 0 || conn_establish(c) < 0) {
                conn_reset(v, c, true);
                return;
        }
        c->want_response = true;
}

static void copy_from_chain(const struct vq_chain *chain, uint64_t offset, uint8_t *dst, uint32_t n) {
        for (unsigned i = 0; i < chain->n_readable && n > 0; i++) {
                const struct vq_seg *s = &chain->segs[i];
                uint32_t take;

                if (offset >= s->len) {
                        offset -= s->len;
                        continue;
                }
                take = (uint32_t) MIN((uint64_t) n, s->len - offset);
                memcpy(dst, (const uint8_t *) s->ptr + offset, take);
                dst += take;
                n -= take;
                offset = 0;
        }
}

/* Payload of an RW packet into the connection's ring, within credit. */
static void guest_rw(struct vsock_dev *v, struct conn *c, const struct vq_chain *chain, uint32_t len) {
        uint8_t tmp[4096];

        if (c->guest_shutdown & VSOCK_SHUTDOWN_SEND) {
                conn_reset(v, c, true); /* data after it said it sends no more */
                return;
        }
        if (len > VSOCK_BUF_ALLOC - c->len) {
                /* More than the credit we gave: a broken or hostile guest. */
                log_debug("virtio-vsock: guest port %" PRIu32 " overran its credit (%" PRIu32 " > %" PRIu32 "), resetting",
                          c->peer_port, len, VSOCK_BUF_ALLOC - c->len);
                conn_reset(v, c, true);
                return;
        }
        for (uint32_t off = 0; off < len;) {
                uint32_t n = MIN(len - off, (uint32_t) sizeof(tmp));

                copy_from_chain(chain, VSOCK_HDR_LEN + off, tmp, n);
                conn_buf_put(c, tmp, n);
                off += n;
        }
        conn_flush(v, c);
}

void vsock_dev_tx(struct vsock_dev *v, const struct vq_chain *chain) {
        struct vsock_hdr h;
        struct conn *c;
        enum vsock_verdict verdict;

        if (chain->readable_bytes < VSOCK_HDR_LEN)
                return; /* no header to answer to */
        copy_from_chain(chain, 0, (uint8_t *) &h, VSOCK_HDR_LEN);
        hdr_from_le(&h);
        verdict = vsock_hdr_check(&h, v->guest_cid, chain->readable_bytes - VSOCK_HDR_LEN);
        if (verdict == VSOCK_DROP)
                return;
        c = conn_find(v, h.dst_port, h.src_port);
        if (verdict == VSOCK_RESET) {
                if (c)
                        conn_reset(v, c, true);
                else
                        queue_rst(v, &h);
                return;
        }
        if (h.op == VSOCK_OP_REQUEST) {
                guest_request(v, &h);
                return;
        }
        if (!c) {
                if (h.op != VSOCK_OP_RST)
                        queue_rst(v, &h);
                return;
        }
        /* Every packet carries the guest's view of its receive buffer. */
        c->peer_buf_alloc = h.buf_alloc;
        c->peer_fwd_cnt = h.fwd_cnt;

        switch (h.op) {
        case VSOCK_OP_RST:
                conn_close(v, c);
                return;
        case VSOCK_OP_RESPONSE:
                if (c->state != CONN_HOST_REQUESTED || c->want_request) {
                        conn_reset(v, c, true);
                        return;
                }
                if (conn_establish(c) < 0) {
                        conn_reset(v, c, true);
                        return;
                }
                {
                        char ok[32];
                        int n = snprintf(ok, sizeof(ok), "OK %" PRIu32 "\n", c->local_port);

                        conn_buf_put(c, (const uint8_t *) ok, (uint32_t) n);
                        c->ok_bytes = (uint32_t) n;
                }
                conn_flush(v, c);
                return;
        case VSOCK_OP_RW:
                if (c->state != CONN_ESTABLISHED) {
                        conn_reset(v, c, true);
                        return;
                }
                guest_rw(v, c, chain, h.len);
                return;
        case VSOCK_OP_SHUTDOWN:
                if (c->state != CONN_ESTABLISHED || (h.flags & ~(VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND))) {
                        conn_reset(v, c, true);
                        return;
                }
                c->guest_shutdown |= h.flags;
                conn_flush(v, c);
                return;
        case VSOCK_OP_CREDIT_UPDATE:
                /* The new credit is taken above; host data may flow again. */
                return;
        case VSOCK_OP_CREDIT_REQUEST:
                if (c->state == CONN_ESTABLISHED)
                        c->want_credit = true;
                return;
        default:
                /* REQUEST on a live stream: it does not know this one. */
                conn_reset(v, c, true);
                return;
        }
}

/* Scatters n bytes into the chain's writable segments from offset. */
static void copy_to_chain(struct vq_chain *chain, uint64_t offset, const uint8_t *src, uint32_t n) {
        for (unsigned i = chain->n_readable; i < chain->n_segs && n > 0; i++) {
                struct vq_seg *s = &chain->segs[i];
                uint32_t take;

                if (offset >= s->len) {
                        offset -= s->len;
                        continue;
                }
                take = (uint32_t) MIN((uint64_t) n, s->len - offset);
                memcpy((uint8_t *) s->ptr + offset, src, take);
                src += take;
                n -= take;
                offset = 0;
        }
}

static void put_hdr(struct vsock_dev *v, struct vq_chain *chain, const struct conn *c, uint32_t local_port,
                    uint32_t peer_port, uint16_t op, uint32_t flags, uint32_t len) {
        struct vsock_hdr h = {
                .src_cid = VSOCK_HOST_CID,
                .dst_cid = v->guest_cid,
                .src_port = local_port,
                .dst_port = peer_port,
                .len = len,
                .type = VSOCK_TYPE_STREAM,
                .op = op,
                .flags = flags,
                .buf_alloc = c ? VSOCK_BUF_ALLOC : 0,
                .fwd_cnt = c ? c->fwd_cnt : 0,
        };

        hdr_to_le(&h);
        copy_to_chain(chain, 0, (const uint8_t *) &h, VSOCK_HDR_LEN);
}

/* Reads host data into the chain after the header: 1 if a packet was
 * made (data, or the SHUTDOWN for EOF). */
static int conn_rx_data(struct vsock_dev *v, struct conn *c, struct vq_chain *chain, uint32_t *written) {
        uint32_t room = (uint32_t) MIN(chain->writable_bytes - VSOCK_HDR_LEN, (uint64_t) VSOCK_MAX_PAYLOAD);
        uint32_t want = MIN(room, conn_peer_credit(c));
        struct iovec iov[64];
        struct msghdr mh = { .msg_iov = iov };
        uint64_t skip = VSOCK_HDR_LEN;
        uint32_t left = want;
        ssize_t n;

        if (want == 0)
                return 0;
        for (unsigned i = chain->n_readable; i < chain->n_segs && left > 0 && mh.msg_iovlen < ELEMENTSOF(iov); i++) {
                struct vq_seg *s = &chain->segs[i];
                uint32_t take;

                if (skip >= s->len) {
                        skip -= s->len;
                        continue;
                }
                take = (uint32_t) MIN((uint64_t) left, s->len - skip);
                iov[mh.msg_iovlen++] = (struct iovec) { (uint8_t *) s->ptr + skip, take };
                left -= take;
                skip = 0;
        }
        do
                n = recvmsg(c->fd, &mh, MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN) {
                c->host_readable = false;
                return 0;
        }
        if (n < 0) {
                conn_reset(v, c, true);
                return 0;
        }
        if (n == 0) {
                /* EOF: the host sends no more; tell the guest. */
                c->host_readable = false;
                c->host_eof = true;
                c->want_shutdown = true;
                return 0;
        }
        c->rx_cnt += (uint32_t) n;
        c->fwd_cnt_sent = c->fwd_cnt;
        c->want_credit = false;
        put_hdr(v, chain, c, c->local_port, c->peer_port, VSOCK_OP_RW, 0, (uint32_t) n);
        *written = VSOCK_HDR_LEN + (uint32_t) n;
        return 1;
}

/* The next packet connection c owes the guest, if any. */
static int conn_rx(struct vsock_dev *v, struct conn *c, struct vq_chain *chain, uint32_t *written) {
        uint16_t op = 0;
        uint32_t flags = 0;

        if (c->want_rst) {
                put_hdr(v, chain, NULL, c->local_port, c->peer_port, VSOCK_OP_RST, 0, 0);
                *written = VSOCK_HDR_LEN;
                *c = (struct conn) { .fd = -1 };
                return 1;
        }
        if (c->want_request) {
                c->want_request = false;
                op = VSOCK_OP_REQUEST;
        } else if (c->want_response) {
                c->want_response = false;
                op = VSOCK_OP_RESPONSE;
        } else if (c->state == CONN_ESTABLISHED && c->host_readable && !c->host_eof &&
                   !(c->guest_shutdown & VSOCK_SHUTDOWN_RCV)) {
                int r = conn_rx_data(v, c, chain, written);
                if (r != 0 || c->state != CONN_ESTABLISHED)
                        return r != 0 ? r : conn_rx(v, c, chain, written);
        }
        if (!op && c->state == CONN_ESTABLISHED && c->want_shutdown && !c->shutdown_sent) {
                c->want_shutdown = false;
                c->shutdown_sent = true;
                op = VSOCK_OP_SHUTDOWN;
                flags = VSOCK_SHUTDOWN_SEND;
        } else if (!op && c->state == CONN_ESTABLISHED && c->want_credit) {
                op = VSOCK_OP_CREDIT_UPDATE;
        }
        if (!op)
                return 0;
        if (c->state == CONN_ESTABLISHED) {
                c->want_credit = false;
                c->fwd_cnt_sent = c->fwd_cnt;
        }
        put_hdr(v, chain, c, c->local_port, c->peer_port, op, flags, 0);
        *written = VSOCK_HDR_LEN;
        /* Both ways done (host EOF told, the guest's data all out): close
         * and RST (5.10.6.6). Otherwise the guest's SHUTDOWN or RST ends it. */
        if (op == VSOCK_OP_SHUTDOWN && (c->guest_shutdown & VSOCK_SHUTDOWN_SEND) && c->len == 0)
                conn_reset(v, c, true);
        return 1;
}

int vsock_dev_rx(struct vsock_dev *v, struct vq_chain *chain, uint32_t *written) {
        *written = 0;
        if (chain->writable_bytes < VSOCK_HDR_LEN)
                return 1; /* useless to us: give it back empty */
        if (v->n_rsts > 0) {
                struct vsock_rst r = v->rsts[--v->n_rsts];

                put_hdr(v, chain, NULL, r.dst_port, r.src_port, VSOCK_OP_RST, 0, 0);
                *written = VSOCK_HDR_LEN;
                return 1;
        }
        for (unsigned k = 0; k < VSOCK_MAX_CONNS; k++) {
                unsigned i = (v->rr + k) % VSOCK_MAX_CONNS;
                struct conn *c = &v->conns[i];

                if (c->state == CONN_FREE || c->state == CONN_HOST_LINE || c->state == CONN_GUEST_PENDING)
                        continue;
                if (conn_rx(v, c, chain, written) > 0) {
                        v->rr = (i + 1) % VSOCK_MAX_CONNS;
                        return 1;
                }
        }
        return 0;
}
