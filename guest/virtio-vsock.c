/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio socket device (virtio 1.2, 5.10): STREAM sockets to the host
 * (CID 2) with credit-based flow control both ways. Receive and event
 * buffers stay posted; like the network, packets are handled from the
 * shell's idle loop and the commands' waits (virtio_vsock_poll()), never in
 * the interrupt handler. Every packet the device hands us is checked
 * before use; a bad one is counted and dropped, or answered with RST. */
#include "apic.h"
#include "console.h"
#include "lib.h"
#include "virtio.h"

#define VSOCK_CFG_GUEST_CID 0
#define VSOCK_HOST_CID 2
#define VSOCK_RXQ 0
#define VSOCK_TXQ 1
#define VSOCK_EVQ 2

#define VSOCK_TYPE_STREAM 1
enum {
        OP_INVALID,
        OP_REQUEST,
        OP_RESPONSE,
        OP_RST,
        OP_SHUTDOWN,
        OP_RW,
        OP_CREDIT_UPDATE,
        OP_CREDIT_REQUEST,
};
#define SHUTDOWN_RCV 1u
#define SHUTDOWN_SEND 2u
#define EVENT_TRANSPORT_RESET 0

/* struct virtio_vsock_hdr (5.10.6): little-endian, as x86 is. */
struct vsock_hdr {
        uint64_t src_cid, dst_cid;
        uint32_t src_port, dst_port;
        uint32_t len;
        uint16_t type, op;
        uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));
#define HDR_LEN 44
_Static_assert(sizeof(struct vsock_hdr) == HDR_LEN, "virtio_vsock_hdr is 44 bytes");

#define RX_BUFS 32
#define TX_BUFS 16
#define EV_BUFS 4
#define BUF_SIZE 4096 /* header + payload, as Linux's rx buffers */
#define MAX_PAYLOAD (BUF_SIZE - HDR_LEN)
#define RX_BUDGET 64 /* packets per poll, so a flood cannot hold the shell */

#define MAX_CONNS 8
#define MAX_LISTENERS 4
#define CONN_BUF 32768u /* our buf_alloc per connection */
#define CREDIT_UPDATE_AT (CONN_BUF / 4)
#define MAX_RSTS 8
#define EPHEMERAL_BASE 49152

#define CHUNK_MIN 8
#define CHUNK_MAX 4096
#define CONNECT_DEFAULT_MS 3000
#define RECV_DEFAULT_MS 10000
#define MAX_WAIT_MS 600000
#define SEND_STALL_NS 5000000000ULL   /* no credit or buffer for this long: give up */
#define CREDIT_REQUEST_NS 1000000000ULL /* no credit for this long: ask */
#define CLOSE_WAIT_NS 1000000000ULL
#define WAIT_STEP_NS 1000000000ULL
#define FNV32_OFFSET 0x811c9dc5u
#define FNV32_PRIME 0x01000193u
#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME 0x100000001b3ULL

enum conn_state { C_FREE, C_CONNECTING, C_ESTABLISHED, C_CLOSING, C_CLOSED };

struct vconn {
        enum conn_state state;
        bool echo;     /* accepted by an echo listener: what arrives goes back */
        bool accepted; /* host-initiated */
        uint32_t local_port, peer_port;
        /* Receive side: a ring of what the host sent and we did not consume. */
        uint32_t head, len;
        uint32_t fwd_cnt, fwd_cnt_sent; /* bytes consumed; as the peer last heard */
        bool want_credit, want_response;
        /* Send side: the peer's buffer as it last told us. */
        uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
        uint32_t peer_shutdown; /* SHUTDOWN_* the peer sent */
        bool shutdown_sent;
        uint64_t rx_bytes, tx_bytes;
        const char *why; /* C_CLOSED: how it ended */
};

struct listener {
        bool used, echo;
        uint32_t port;
};

static struct {
        uint32_t rx, tx, rx_bytes, tx_bytes, bad, rst_rx, rst_tx, credit_tx, credit_rx, no_conn, tx_full, events,
                resets, overrun;
} st;

static struct virtio_dev vs_dev;
static bool vs_ok;
static uint64_t guest_cid;
static struct vconn conns[MAX_CONNS];
static uint8_t conn_buf[MAX_CONNS][CONN_BUF];
static struct listener listeners[MAX_LISTENERS];
static uint32_t next_port = EPHEMERAL_BASE;
static struct {
        uint32_t src_port, dst_port; /* as the packet we answer had them */
} rsts[MAX_RSTS];
static unsigned n_rsts;

static uint8_t rx_bufs[RX_BUFS][BUF_SIZE] __attribute__((aligned(64)));
static uint8_t tx_bufs[TX_BUFS][BUF_SIZE] __attribute__((aligned(64)));
static uint32_t ev_bufs[EV_BUFS] __attribute__((aligned(64)));
static struct vq_pool rx_pool, tx_pool, ev_pool;

static uint32_t fnv1a32(const uint8_t *p, size_t n) {
        uint32_t h = FNV32_OFFSET;
        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * FNV32_PRIME;
        return h;
}

static uint64_t fnv1a64_add(uint64_t h, const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * FNV64_PRIME;
        return h;
}

/* --- the queues --- */

static bool tx_has_free(void) {
        return vq_pool_alloc(&tx_pool) >= 0;
}

/* One packet: header and payload in one buffer. False (counted) if no
 * transmit buffer is free or the ring refused it. */
static bool tx_packet(struct vconn *c, uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t flags,
                      const uint8_t *payload, uint32_t len) {
        int slot = vq_pool_alloc(&tx_pool);
        if (slot < 0) {
                st.tx_full++;
                return false;
        }
        struct vsock_hdr *h = (struct vsock_hdr *) tx_bufs[slot];
        *h = (struct vsock_hdr) {
                .src_cid = guest_cid,
                .dst_cid = VSOCK_HOST_CID,
                .src_port = src_port,
                .dst_port = dst_port,
                .len = len,
                .type = VSOCK_TYPE_STREAM,
                .op = op,
                .flags = flags,
                .buf_alloc = c ? CONN_BUF : 0,
                .fwd_cnt = c ? c->fwd_cnt : 0,
        };
        if (len)
                memcpy(tx_bufs[slot] + HDR_LEN, payload, len);
        if (!vq_pool_put(&tx_pool, (unsigned) slot, HDR_LEN + len)) {
                st.tx_full++;
                return false;
        }
        vq_kick(tx_pool.q);
        st.tx++;
        st.tx_bytes += len;
        if (c) {
                c->fwd_cnt_sent = c->fwd_cnt; /* every packet tells the peer our fwd_cnt */
                c->want_credit = false;
        }
        if (op == OP_RST)
                st.rst_tx++;
        else if (op == OP_CREDIT_UPDATE)
                st.credit_tx++;
        return true;
}

static bool conn_tx(struct vconn *c, uint16_t op, uint32_t flags, const uint8_t *payload, uint32_t len) {
        return tx_packet(c, c->local_port, c->peer_port, op, flags, payload, len);
}

/* An RST to a packet that has no connection; queued if no buffer is free. */
static void rst_reply(const struct vsock_hdr *h) {
        if (tx_packet(NULL, h->dst_port, h->src_port, OP_RST, 0, NULL, 0))
                return;
        if (n_rsts < MAX_RSTS) {
                rsts[n_rsts].src_port = h->src_port;
                rsts[n_rsts].dst_port = h->dst_port;
                n_rsts++;
        }
}

/* --- connections --- */

static struct vconn *conn_find(uint32_t local_port, uint32_t peer_port) {
        for (unsigned i = 0; i < MAX_CONNS; i++) {
                struct vconn *c = &conns[i];
                if (c->state != C_FREE && c->state != C_CLOSED && c->local_port == local_port &&
                    c->peer_port == peer_port)
                        return c;
        }
        return NULL;
}

/* A free slot, else the oldest closed one. */
static struct vconn *conn_alloc(void) {
        for (unsigned i = 0; i < MAX_CONNS; i++)
                if (conns[i].state == C_FREE)
                        return &conns[i];
        for (unsigned i = 0; i < MAX_CONNS; i++)
                if (conns[i].state == C_CLOSED)
                        return &conns[i];
        return NULL;
}

static void conn_init(struct vconn *c, uint32_t local_port, uint32_t peer_port) {
        *c = (struct vconn) { .local_port = local_port, .peer_port = peer_port };
}

static void conn_set_closed(struct vconn *c, const char *why) {
        c->state = C_CLOSED;
        c->why = why;
}

/* Our reset: RST to the peer, the connection is closed. */
static void conn_reset(struct vconn *c, const char *why) {
        (void) conn_tx(c, OP_RST, 0, NULL, 0);
        conn_set_closed(c, why);
}

static uint32_t conn_index(const struct vconn *c) {
        return (uint32_t) (c - conns);
}

/* What we may still send: 5.10.6.3's peer_free (nothing before our
 * RESPONSE is out). */
static uint32_t peer_credit(const struct vconn *c) {
        if (c->want_response)
                return 0;
        uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
        return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static void ring_put(struct vconn *c, const uint8_t *p, uint32_t n) {
        uint8_t *ring = conn_buf[conn_index(c)];
        uint32_t tail = (c->head + c->len) % CONN_BUF, first = n < CONN_BUF - tail ? n : CONN_BUF - tail;
        memcpy(ring + tail, p, first);
        memcpy(ring, p + first, n - first);
        c->len += n;
}

/* Takes up to n bytes from the ring into out (or only hashes them when
 * out is NULL); the peer hears of the room by a CREDIT_UPDATE once a
 * quarter of the buffer came free. */
static uint32_t ring_take(struct vconn *c, uint8_t *out, uint32_t n, uint64_t *hash) {
        const uint8_t *ring = conn_buf[conn_index(c)];
        if (n > c->len)
                n = c->len;
        for (uint32_t done = 0; done < n;) {
                uint32_t first = CONN_BUF - c->head;
                uint32_t k = n - done < first ? n - done : first;
                if (out)
                        memcpy(out + done, ring + c->head, k);
                if (hash)
                        *hash = fnv1a64_add(*hash, ring + c->head, k);
                c->head = (c->head + k) % CONN_BUF;
                c->len -= k;
                done += k;
        }
        c->fwd_cnt += n;
        if (c->fwd_cnt - c->fwd_cnt_sent >= CREDIT_UPDATE_AT)
                c->want_credit = true;
        return n;
}

/* 5.10.6.6: a clean close is SHUTDOWN (both) answered by the peer's RST. */
static void conn_shutdown(struct vconn *c) {
        if (conn_tx(c, OP_SHUTDOWN, SHUTDOWN_RCV | SHUTDOWN_SEND, NULL, 0)) {
                c->shutdown_sent = true;
                c->state = C_CLOSING;
        }
}

/* Echo connections send back what arrived, within the peer's credit. */
static void conn_echo(struct vconn *c) {
        static uint8_t tmp[MAX_PAYLOAD];
        while (c->state == C_ESTABLISHED && c->len > 0 && !(c->peer_shutdown & SHUTDOWN_RCV)) {
                uint32_t n = c->len, credit = peer_credit(c);
                if (n > credit)
                        n = credit;
                if (n > MAX_PAYLOAD)
                        n = MAX_PAYLOAD;
                if (n == 0 || !tx_has_free())
                        return;
                /* Copy out without consuming, so a refused packet loses nothing. */
                const uint8_t *ring = conn_buf[conn_index(c)];
                for (uint32_t k = 0; k < n; k++)
                        tmp[k] = ring[(c->head + k) % CONN_BUF];
                uint32_t fwd = c->fwd_cnt;
                c->fwd_cnt += n; /* the packet carries the room it makes */
                if (!conn_tx(c, OP_RW, 0, tmp, n)) {
                        c->fwd_cnt = fwd;
                        return;
                }
                c->fwd_cnt = fwd;
                (void) ring_take(c, NULL, n, NULL);
                c->fwd_cnt_sent = c->fwd_cnt;
                c->want_credit = false;
                c->tx_cnt += n;
                c->tx_bytes += n;
        }
        /* The peer sends no more and all of it went back: close. */
        if (c->state == C_ESTABLISHED && (c->peer_shutdown & SHUTDOWN_SEND) && c->len == 0)
                conn_shutdown(c);
}

/* Control packets owed, and the echo. */
static void conns_service(void) {
        while (n_rsts > 0) {
                if (!tx_packet(NULL, rsts[n_rsts - 1].dst_port, rsts[n_rsts - 1].src_port, OP_RST, 0, NULL, 0))
                        return;
                n_rsts--;
        }
        for (unsigned i = 0; i < MAX_CONNS; i++) {
                struct vconn *c = &conns[i];
                if (c->want_response) { /* nothing else before it */
                        if (!conn_tx(c, OP_RESPONSE, 0, NULL, 0))
                                continue;
                        c->want_response = false;
                }
                if (c->state == C_ESTABLISHED && c->echo)
                        conn_echo(c);
                if ((c->state == C_ESTABLISHED || c->state == C_CLOSING) && c->want_credit)
                        (void) conn_tx(c, OP_CREDIT_UPDATE, 0, NULL, 0);
        }
}

static const struct listener *listener_find(uint32_t port) {
        for (unsigned i = 0; i < MAX_LISTENERS; i++)
                if (listeners[i].used && listeners[i].port == port)
                        return &listeners[i];
        return NULL;
}

static void rx_request(const struct vsock_hdr *h) {
        const struct listener *l = listener_find(h->dst_port);
        struct vconn *c = l && !conn_find(h->dst_port, h->src_port) ? conn_alloc() : NULL;
        if (!c) { /* nobody listens, the same stream twice, or the table is full */
                rst_reply(h);
                return;
        }
        conn_init(c, h->dst_port, h->src_port);
        c->state = C_ESTABLISHED;
        c->accepted = true;
        c->echo = l->echo;
        c->peer_buf_alloc = h->buf_alloc;
        c->peer_fwd_cnt = h->fwd_cnt;
        c->want_response = true;
}

/* One packet for an existing connection; the header is checked. */
static void rx_conn(struct vconn *c, const struct vsock_hdr *h, const uint8_t *payload) {
        /* Every packet carries the peer's view of its buffer. */
        c->peer_buf_alloc = h->buf_alloc;
        c->peer_fwd_cnt = h->fwd_cnt;
        switch (h->op) {
        case OP_RST:
                st.rst_rx++;
                conn_set_closed(c, c->state == C_CONNECTING ? "refused (reset by the peer)"
                                   : c->state == C_CLOSING  ? "shut down cleanly"
                                                            : "reset by the peer");
                return;
        case OP_RESPONSE:
                if (c->state != C_CONNECTING) {
                        st.bad++;
                        conn_reset(c, "RESPONSE on an open connection");
                        return;
                }
                c->state = C_ESTABLISHED;
                return;
        case OP_REQUEST:
                st.bad++;
                conn_reset(c, "REQUEST on an open connection");
                return;
        case OP_RW:
                if (c->state != C_ESTABLISHED && c->state != C_CLOSING) {
                        st.bad++;
                        conn_reset(c, "data before the connection was open");
                        return;
                }
                if (c->state == C_CLOSING)
                        return; /* we said we take no more; it may have been in flight */
                if (c->peer_shutdown & SHUTDOWN_SEND) {
                        st.bad++; /* it said it sends no more */
                        return;
                }
                if (h->len > CONN_BUF - c->len) {
                        st.overrun++;
                        st.bad++;
                        conn_reset(c, "the peer overran our credit");
                        return;
                }
                ring_put(c, payload, h->len);
                c->rx_bytes += h->len;
                return;
        case OP_SHUTDOWN:
                c->peer_shutdown |= h->flags & (SHUTDOWN_RCV | SHUTDOWN_SEND);
                if ((c->peer_shutdown & (SHUTDOWN_RCV | SHUTDOWN_SEND)) == (SHUTDOWN_RCV | SHUTDOWN_SEND))
                        conn_reset(c, "shut down by the peer"); /* 5.10.6.6: answered with RST */
                return;
        case OP_CREDIT_UPDATE:
                st.credit_rx++;
                return;
        case OP_CREDIT_REQUEST:
                c->want_credit = true;
                return;
        }
}

/* len is what the device wrote into the buffer. */
static void packet_rx(const uint8_t *buf, uint32_t len) {
        st.rx++;
        if (len < HDR_LEN || len > BUF_SIZE) {
                st.bad++; /* no header to answer, or more than the buffer */
                return;
        }
        struct vsock_hdr h;
        memcpy(&h, buf, HDR_LEN);
        if (h.dst_cid != guest_cid || h.src_cid != VSOCK_HOST_CID) {
                st.bad++; /* not for us, or not from the host: not ours to answer */
                return;
        }
        bool bad_len = h.len > len - HDR_LEN || (h.op != OP_RW && h.len != 0);
        if (h.type != VSOCK_TYPE_STREAM || h.op == OP_INVALID || h.op > OP_CREDIT_REQUEST || bad_len) {
                st.bad++;
                if (h.op == OP_RST)
                        return; /* never answer an RST with one */
                struct vconn *c = conn_find(h.dst_port, h.src_port);
                if (c)
                        conn_reset(c, "a malformed packet from the peer");
                else
                        rst_reply(&h);
                return;
        }
        st.rx_bytes += h.len;
        if (h.op == OP_REQUEST && !conn_find(h.dst_port, h.src_port)) {
                rx_request(&h);
                return;
        }
        struct vconn *c = conn_find(h.dst_port, h.src_port);
        if (!c) {
                st.no_conn++;
                if (h.op != OP_RST)
                        rst_reply(&h);
                return;
        }
        rx_conn(c, &h, buf + HDR_LEN);
}

/* 5.10.6.1: after a transport reset every connection is gone and the CID
 * may have changed. */
static void transport_reset(void) {
        st.resets++;
        for (unsigned i = 0; i < MAX_CONNS; i++)
                if (conns[i].state != C_FREE && conns[i].state != C_CLOSED)
                        conn_set_closed(&conns[i], "transport reset");
        n_rsts = 0;
        uint64_t cid = 0;
        if (virtio_cfg_read(&vs_dev, VSOCK_CFG_GUEST_CID, &cid, 8))
                guest_cid = cid;
}

/* len is what the device wrote into one of ev_bufs. */
static void event_rx(const uint8_t *buf, uint32_t len) {
        uint32_t id;
        st.events++;
        if (len < sizeof(id)) {
                st.bad++;
                return;
        }
        memcpy(&id, buf, sizeof(id));
        if (id == EVENT_TRANSPORT_RESET)
                transport_reset();
        else
                st.bad++;
}

void virtio_vsock_poll(void) {
        if (!vs_ok)
                return;
        (void) vq_pool_drain(&ev_pool, VQ_POOL_ALL, event_rx);
        vq_pool_reap(&tx_pool);
        (void) vq_pool_drain(&rx_pool, RX_BUDGET, packet_rx);
        conns_service();
}

/* --- probe --- */

static void vsock_probe(struct pci_dev *pci) {
        if (vs_ok) {
                kprintf("virtio-vsock: %02x:%02x.%u: one socket device is enough, not used\n", pci->bus, pci->slot,
                        pci->fn);
                return;
        }
        /* Only STREAM (feature bit 0, which 1.2 leaves implied); no SEQPACKET. */
        if (!virtio_pci_setup(&vs_dev, pci, "virtio-vsock", 1ULL << 0, 3))
                return;
        if (!virtio_cfg_read(&vs_dev, VSOCK_CFG_GUEST_CID, &guest_cid, 8) || guest_cid < 3 ||
            guest_cid >= 0xffffffffULL) {
                kprintf("virtio-vsock: refused: guest_cid %lu is not a guest's CID\n", guest_cid);
                return;
        }
        vq_pool_init(&rx_pool, &vs_dev.vqs[VSOCK_RXQ], rx_bufs, RX_BUFS, BUF_SIZE, true);
        vq_pool_init(&tx_pool, &vs_dev.vqs[VSOCK_TXQ], tx_bufs, TX_BUFS, BUF_SIZE, false);
        vq_pool_init(&ev_pool, &vs_dev.vqs[VSOCK_EVQ], ev_bufs, EV_BUFS, sizeof(ev_bufs[0]), true);
        vq_pool_put_all(&rx_pool);
        vq_pool_put_all(&ev_pool);
        vq_kick(&vs_dev.vqs[VSOCK_RXQ]);
        vq_kick(&vs_dev.vqs[VSOCK_EVQ]);
        vs_ok = true;
        kprintf("virtio-vsock: cid %lu, %u rx buffers of %u bytes, %u connections of %u bytes\n", guest_cid,
                RX_BUFS, BUF_SIZE, MAX_CONNS, CONN_BUF);
}

const struct virtio_driver virtio_vsock_driver = { VIRTIO_ID_VSOCK, "virtio-vsock", vsock_probe };

/* --- commands --- */

static const char *state_name(const struct vconn *c) {
        switch (c->state) {
        case C_CONNECTING:
                return "connecting";
        case C_ESTABLISHED:
                return "established";
        case C_CLOSING:
                return "closing";
        case C_CLOSED:
                return "closed";
        default:
                return "free";
        }
}

static void vsock_info(void) {
        kprintf("vsock: %02x:%02x.%u cid %lu features 0x%lx (offered 0x%lx) irq %s irqs rx %u tx %u event %u\n",
                vs_dev.pci->bus, vs_dev.pci->slot, vs_dev.pci->fn, guest_cid, vs_dev.features,
                vs_dev.device_features, virtio_irq_mode_name(vs_dev.irq_mode), vs_dev.vqs[VSOCK_RXQ].irqs,
                vs_dev.vqs[VSOCK_TXQ].irqs, vs_dev.vqs[VSOCK_EVQ].irqs);
        kprintf("vsock: rx %u packets %u bytes tx %u packets %u bytes bad %u rst-rx %u rst-tx %u credit-rx %u "
                "credit-tx %u no-conn %u overrun %u tx-full %u events %u resets %u\n",
                st.rx, st.rx_bytes, st.tx, st.tx_bytes, st.bad, st.rst_rx, st.rst_tx, st.credit_rx, st.credit_tx,
                st.no_conn, st.overrun, st.tx_full, st.events, st.resets);
        for (unsigned i = 0; i < MAX_LISTENERS; i++)
                if (listeners[i].used)
                        kprintf("vsock: listen port %u %s\n", listeners[i].port, listeners[i].echo ? "echo" : "store");
        for (unsigned i = 0; i < MAX_CONNS; i++) {
                const struct vconn *c = &conns[i];
                if (c->state == C_FREE)
                        continue;
                kprintf("vsock: conn %u %s%s%s port %u peer %u:%u %s rx %lu tx %lu waiting %u peer-credit %u\n", i,
                        state_name(c), c->why ? ": " : "", c->why ? c->why : "", c->local_port, VSOCK_HOST_CID,
                        c->peer_port, c->echo ? "echo" : c->accepted ? "store (accepted)" : "store", c->rx_bytes,
                        c->tx_bytes, c->len, peer_credit(c));
        }
}

static void vsock_listen(uint64_t port, bool echo) {
        struct listener *free_l = NULL;
        for (unsigned i = 0; i < MAX_LISTENERS; i++) {
                if (listeners[i].used && listeners[i].port == port) {
                        listeners[i].echo = echo;
                        kprintf("vsock listen: port %lu (%s)\n", port, echo ? "echo" : "store");
                        return;
                }
                if (!listeners[i].used && !free_l)
                        free_l = &listeners[i];
        }
        if (!free_l) {
                kprintf("vsock listen: %u ports already\n", MAX_LISTENERS);
                return;
        }
        *free_l = (struct listener) { .used = true, .echo = echo, .port = (uint32_t) port };
        kprintf("vsock listen: port %lu (%s)\n", port, echo ? "echo" : "store");
}

static struct vconn *waiting_conn;

static bool connect_done(void) {
        virtio_vsock_poll();
        return waiting_conn->state != C_CONNECTING;
}

static uint32_t port_alloc(void) {
        for (;;) {
                uint32_t p = next_port++;
                if (next_port == 0)
                        next_port = EPHEMERAL_BASE;
                bool used = listener_find(p) != NULL;
                for (unsigned i = 0; i < MAX_CONNS; i++)
                        if (conns[i].state != C_FREE && conns[i].state != C_CLOSED && conns[i].local_port == p)
                                used = true;
                if (!used)
                        return p;
        }
}

static void vsock_connect(uint64_t cid, uint64_t port, uint64_t timeout_ms) {
        if (cid != VSOCK_HOST_CID) {
                kprintf("vsock connect: only the host (CID %u) can be reached from here\n", VSOCK_HOST_CID);
                return;
        }
        struct vconn *c = conn_alloc();
        if (!c) {
                kprintf("vsock connect: %u connections already\n", MAX_CONNS);
                return;
        }
        conn_init(c, port_alloc(), (uint32_t) port);
        c->state = C_CONNECTING;
        if (!conn_tx(c, OP_REQUEST, 0, NULL, 0)) {
                c->state = C_FREE;
                console_puts("vsock connect: no transmit buffer\n");
                return;
        }
        waiting_conn = c;
        if (!wait_until(connect_done, timeout_ms * 1000000)) {
                conn_reset(c, "no answer to the request");
                kprintf("vsock connect: %lu:%lu: no answer within %lu ms\n", cid, port, timeout_ms);
        } else if (c->state == C_ESTABLISHED)
                kprintf("vsock connect: conn %u port %u -> %lu:%lu established\n", conn_index(c), c->local_port, cid,
                        port);
        else
                kprintf("vsock connect: %lu:%lu %s\n", cid, port, c->why ? c->why : "failed");
}

/* Stream byte at offset o of `vsock send` with chunks of size: chunk
 * bytes 0-3 the chunk number (big endian), 4-7 the FNV-1a 32 of bytes
 * 8.. (big endian), byte k >= 8 is (chunk * 7 + k) & 0xff, as `net udp`. */
static void chunk_fill(uint8_t *p, uint32_t seq, uint32_t size) {
        for (uint32_t k = CHUNK_MIN; k < size; k++)
                p[k] = (uint8_t) (seq * 7 + k);
        uint32_t f = fnv1a32(p + CHUNK_MIN, size - CHUNK_MIN);
        p[0] = (uint8_t) (seq >> 24), p[1] = (uint8_t) (seq >> 16), p[2] = (uint8_t) (seq >> 8), p[3] = (uint8_t) seq;
        p[4] = (uint8_t) (f >> 24), p[5] = (uint8_t) (f >> 16), p[6] = (uint8_t) (f >> 8), p[7] = (uint8_t) f;
}

static bool can_send(void) {
        virtio_vsock_poll();
        return waiting_conn->state != C_ESTABLISHED || (peer_credit(waiting_conn) > 0 && tx_has_free());
}

static void vsock_send(struct vconn *c, uint64_t count, uint64_t size) {
        static uint8_t chunk[CHUNK_MAX], pkt[MAX_PAYLOAD];
        uint64_t total = count * size, sent = 0, hash = FNV64_OFFSET;
        uint32_t seq = 0, chunk_off = (uint32_t) size; /* no chunk built yet */
        uint64_t stalled = 0;
        bool asked = false;
        const char *why = NULL;
        waiting_conn = c;
        while (sent < total) {
                virtio_vsock_poll();
                if (c->state != C_ESTABLISHED || (c->peer_shutdown & SHUTDOWN_RCV)) {
                        why = c->state == C_ESTABLISHED ? "the peer takes no more" : c->why ? c->why : "closed";
                        break;
                }
                uint32_t n = peer_credit(c);
                if (n > MAX_PAYLOAD)
                        n = MAX_PAYLOAD;
                if (n > total - sent)
                        n = (uint32_t) (total - sent);
                if (n == 0 || !tx_has_free()) {
                        if (stalled >= CREDIT_REQUEST_NS && !asked && n == 0)
                                asked = conn_tx(c, OP_CREDIT_REQUEST, 0, NULL, 0);
                        if (stalled >= SEND_STALL_NS) {
                                why = n == 0 ? "no credit from the peer" : "no transmit buffer";
                                break;
                        }
                        if (!wait_until(can_send, WAIT_STEP_NS / 10))
                                stalled += wait_last_ns ? wait_last_ns : WAIT_STEP_NS / 10;
                        continue;
                }
                stalled = 0;
                asked = false;
                for (uint32_t k = 0; k < n; k++) {
                        if (chunk_off == size) {
                                chunk_fill(chunk, seq++, (uint32_t) size);
                                chunk_off = 0;
                        }
                        pkt[k] = chunk[chunk_off++];
                }
                if (!conn_tx(c, OP_RW, 0, pkt, n)) {
                        why = "the transmit queue refused a packet";
                        break;
                }
                hash = fnv1a64_add(hash, pkt, n);
                c->tx_cnt += n;
                c->tx_bytes += n;
                sent += n;
        }
        if (why)
                kprintf("vsock send: conn %u stopped after %lu of %lu bytes: %s\n", conn_index(c), sent, total, why);
        else
                kprintf("vsock send: conn %u %lu chunks of %lu bytes (%lu bytes) sent fnv1a64 0x%016lx\n",
                        conn_index(c), count, size, total, hash);
}

static struct {
        struct vconn *c;
        uint64_t want, got, hash;
} recv_op;

static bool recv_done(void) {
        virtio_vsock_poll();
        struct vconn *c = recv_op.c;
        if (c->len > 0 && recv_op.got < recv_op.want) {
                uint64_t left = recv_op.want - recv_op.got;
                recv_op.got += ring_take(c, NULL, left < c->len ? (uint32_t) left : c->len, &recv_op.hash);
                conns_service(); /* the CREDIT_UPDATE, now */
        }
        return recv_op.got >= recv_op.want || (c->len == 0 && (c->state == C_CLOSED || c->state == C_FREE ||
                                                                c->peer_shutdown & SHUTDOWN_SEND));
}

static void vsock_recv(struct vconn *c, uint64_t want, uint64_t timeout_ms) {
        recv_op.c = c;
        recv_op.want = want;
        recv_op.got = 0;
        recv_op.hash = FNV64_OFFSET;
        uint64_t left = timeout_ms * 1000000;
        bool done = recv_done();
        while (!done && left > 0) {
                uint64_t step = left < WAIT_STEP_NS ? left : WAIT_STEP_NS;
                done = wait_until(recv_done, step);
                uint64_t waited = wait_last_ns ? wait_last_ns : step;
                left -= waited < left ? waited : left;
        }
        const char *note = recv_op.got >= want                   ? ""
                           : !done                               ? " (timeout)"
                           : c->state == C_CLOSED                ? " (closed)"
                                                                 : " (end of stream)";
        kprintf("vsock recv: conn %u received %lu bytes fnv1a64 0x%016lx%s\n", conn_index(c), recv_op.got,
                recv_op.hash, note);
}

static bool close_done(void) {
        virtio_vsock_poll();
        return waiting_conn->state != C_CLOSING;
}

static void vsock_close(struct vconn *c) {
        unsigned i = conn_index(c);
        if (c->state == C_CLOSED) {
                kprintf("vsock close: conn %u was closed (%s)\n", i, c->why ? c->why : "closed");
        } else {
                if (c->state != C_CLOSING)
                        conn_shutdown(c);
                waiting_conn = c;
                if (c->state == C_CLOSING && wait_until(close_done, CLOSE_WAIT_NS))
                        kprintf("vsock close: conn %u closed (%s)\n", i, c->why ? c->why : "closed");
                else {
                        conn_reset(c, "reset by us");
                        kprintf("vsock close: conn %u: no RST from the peer within 1 s, reset\n", i);
                }
        }
        c->state = C_FREE;
        c->why = NULL;
}

/* `vsock selftest`: hand-made malformed packets through the same
 * packet_rx() the receive queue feeds, for what polyvm's device never
 * sends: each must be counted bad and dropped, or answered with RST,
 * and no connection may appear. */
static void vsock_selftest(void) {
        static uint8_t pkt[BUF_SIZE + 16];
        static const struct {
                const char *what;
                uint64_t src_cid, dst_cid; /* 0: the right one */
                uint16_t type, op;
                uint32_t hdr_len, used_len; /* used_len 0: HDR_LEN + hdr_len */
                bool rst;                   /* answered with RST */
        } cases[] = {
                { "shorter than a header", 0, 0, 1, OP_REQUEST, 0, 20, false },
                { "longer than the buffer", 0, 0, 1, OP_RW, 0, BUF_SIZE + 1, false },
                { "another guest's CID", 0, 77, 1, OP_REQUEST, 0, 0, false },
                { "not from the host", 1, 0, 1, OP_REQUEST, 0, 0, false },
                { "type SEQPACKET", 0, 0, 2, OP_REQUEST, 0, 0, true },
                { "unknown op 9", 0, 0, 1, 9, 0, 0, true },
                { "op INVALID", 0, 0, 1, OP_INVALID, 0, 0, true },
                { "CREDIT_UPDATE with a payload", 0, 0, 1, OP_CREDIT_UPDATE, 16, 0, true },
                { "RW longer than what was written", 0, 0, 1, OP_RW, 2000, HDR_LEN + 100, true },
                { "RST of a bad type", 0, 0, 3, OP_RST, 0, 0, false },
        };
        unsigned before = 0, after = 0, rsts = 0;
        for (unsigned i = 0; i < MAX_CONNS; i++)
                before += conns[i].state != C_FREE;
        uint32_t bad0 = st.bad, rst0 = st.rst_tx + (uint32_t) n_rsts;
        for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
                struct vsock_hdr *h = (struct vsock_hdr *) pkt;
                memset(pkt, 0x5a, sizeof(pkt));
                *h = (struct vsock_hdr) {
                        .src_cid = cases[i].src_cid ? cases[i].src_cid : VSOCK_HOST_CID,
                        .dst_cid = cases[i].dst_cid ? cases[i].dst_cid : guest_cid,
                        .src_port = 7000 + i, /* no connection has these */
                        .dst_port = 0x7e570000 + i,
                        .len = cases[i].hdr_len,
                        .type = cases[i].type,
                        .op = cases[i].op,
                        .buf_alloc = CONN_BUF,
                };
                uint32_t bad = st.bad, rst = st.rst_tx + (uint32_t) n_rsts;
                packet_rx(pkt, cases[i].used_len ? cases[i].used_len : HDR_LEN + cases[i].hdr_len);
                bool ok = st.bad == bad + 1 && (st.rst_tx + n_rsts - rst == (cases[i].rst ? 1u : 0u));
                rsts += cases[i].rst;
                kprintf("vsock selftest: %s: %s\n", cases[i].what, ok ? (cases[i].rst ? "bad, RST" : "bad, dropped")
                                                                        : "NOT HANDLED AS EXPECTED");
        }
        for (unsigned i = 0; i < MAX_CONNS; i++)
                after += conns[i].state != C_FREE;
        kprintf("vsock selftest: %u packets, bad +%u, rst-tx +%u (expected %u), connections %u -> %u\n",
                (unsigned) ARRAY_SIZE(cases), st.bad - bad0, st.rst_tx + (uint32_t) n_rsts - rst0, rsts, before,
                after);
}

static void vsock_usage(void) {
        console_puts("usage: vsock [info]\n"
                     "       vsock listen PORT [echo|store]\n"
                     "       vsock connect CID PORT [TIMEOUT_MS]\n"
                     "       vsock send CONN N SIZE          (SIZE 8..4096)\n"
                     "       vsock recv CONN BYTES [TIMEOUT_MS]\n"
                     "       vsock close CONN\n"
                     "       vsock selftest                  (malformed packets through the receive path)\n");
}

static struct vconn *conn_arg(const char *s, bool open) {
        uint64_t i;
        if (!parse_u64(s, &i) || i >= MAX_CONNS || conns[i].state == C_FREE) {
                kprintf("vsock: no connection %s\n", s);
                return NULL;
        }
        if (open && conns[i].state != C_ESTABLISHED) {
                kprintf("vsock: conn %lu is %s%s%s\n", i, state_name(&conns[i]), conns[i].why ? ": " : "",
                        conns[i].why ? conns[i].why : "");
                return NULL;
        }
        return &conns[i];
}

void virtio_vsock_cmd(int argc, char **argv) {
        if (!vs_ok) {
                console_puts("vsock: no virtio-vsock device\n");
                return;
        }
        virtio_vsock_poll();
        const char *op = argc > 1 ? argv[1] : "info";
        uint64_t a, b, t;
        struct vconn *c;
        if (strcmp(op, "info") == 0 && argc <= 2) {
                vsock_info();
        } else if (strcmp(op, "listen") == 0 && (argc == 3 || argc == 4)) {
                bool echo = argc == 4 && strcmp(argv[3], "echo") == 0;
                if (!parse_u64(argv[2], &a) || a > 0xffffffffULL ||
                    (argc == 4 && !echo && strcmp(argv[3], "store") != 0)) {
                        vsock_usage();
                        return;
                }
                vsock_listen(a, echo);
        } else if (strcmp(op, "connect") == 0 && (argc == 4 || argc == 5)) {
                t = CONNECT_DEFAULT_MS;
                if (!parse_u64(argv[2], &a) || !parse_u64(argv[3], &b) || b > 0xffffffffULL ||
                    (argc == 5 && (!parse_u64(argv[4], &t) || t < 1 || t > MAX_WAIT_MS))) {
                        vsock_usage();
                        return;
                }
                vsock_connect(a, b, t);
        } else if (strcmp(op, "send") == 0 && argc == 5) {
                if (!parse_u64(argv[3], &a) || a < 1 || a > 1000000 || !parse_u64(argv[4], &b) || b < CHUNK_MIN ||
                    b > CHUNK_MAX) {
                        vsock_usage();
                        return;
                }
                if ((c = conn_arg(argv[2], true)))
                        vsock_send(c, a, b);
        } else if (strcmp(op, "recv") == 0 && (argc == 4 || argc == 5)) {
                t = RECV_DEFAULT_MS;
                if (!parse_u64(argv[3], &a) || a < 1 || a > 1ULL << 32 ||
                    (argc == 5 && (!parse_u64(argv[4], &t) || t < 1 || t > MAX_WAIT_MS))) {
                        vsock_usage();
                        return;
                }
                if ((c = conn_arg(argv[2], false)))
                        vsock_recv(c, a, t);
        } else if (strcmp(op, "selftest") == 0 && argc == 2) {
                vsock_selftest();
        } else if (strcmp(op, "close") == 0 && argc == 3) {
                if ((c = conn_arg(argv[2], false)))
                        vsock_close(c);
        } else
                vsock_usage();
}
