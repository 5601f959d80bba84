/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio network device (5.1) and the smallest IPv4 stack a test needs:
 * ARP, ICMP echo both ways, UDP datagrams with a verifiable payload.
 * Receive buffers stay posted; the shell's idle loop (woken by the queue
 * interrupts) and the commands' waits drain them through net_poll(), never
 * the interrupt handler, so nothing here runs concurrently. */
#include "apic.h"
#include "bootinfo.h"
#include "console.h"
#include "lib.h"
#include "virtio.h"

#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_STATUS 16
#define NET_CFG_MAC 0
#define NET_CFG_STATUS 6
#define VIRTIO_NET_S_LINK_UP 1

/* struct virtio_net_hdr: with VERSION_1 num_buffers is always there (5.1.6). */
#define NET_HDR_LEN 12
#define NET_RXQ 0
#define NET_TXQ 1
#define RX_BUFS 16
#define TX_BUFS 16
#define BUF_SIZE 2048
#define RX_BUDGET 64 /* frames per net_poll(), so a flood cannot hold the shell */

#define ETH_ALEN 6
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ARP_LEN 28
#define IP_HLEN 20
#define IP_PROTO_ICMP 1
#define IP_PROTO_UDP 17
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IP_DF 0x4000
#define ICMP_ECHO_REPLY 0
#define ICMP_ECHO_REQUEST 8
#define ICMP_HLEN 8
#define UDP_HLEN 8
#define UDP_MAX_PAYLOAD (1500 - IP_HLEN - UDP_HLEN)
#define UDP_MIN_PAYLOAD 8 /* sequence number and checksum */
#define UDP_SRC_PORT 40000
#define PING_IDENT 0x7467 /* "tg" */
#define PING_PAYLOAD 56
#define ARP_CACHE 4
#define ARP_TRIES 3
#define ARP_WAIT_NS 500000000ULL
#define PING_WAIT_NS 1000000000ULL
#define TX_WAIT_NS 1000000000ULL
#define WAIT_STEP_NS 1000000000ULL
#define FNV32_OFFSET 0x811c9dc5u
#define FNV32_PRIME 0x01000193u

struct net_stats {
        uint32_t rx, tx, dropped, ignored, tx_full;
};

struct arp_entry {
        uint32_t ip;
        uint8_t mac[ETH_ALEN];
        bool valid;
};

static struct virtio_dev net_dev;
static bool net_ok;
static uint8_t mac[ETH_ALEN];
static uint32_t my_ip, my_mask; /* host order; 0 = no address */
static unsigned my_prefix;
static struct net_stats stats;
static struct arp_entry arp_cache[ARP_CACHE];
static unsigned arp_next;
static uint16_t ip_id;

static uint8_t rx_bufs[RX_BUFS][BUF_SIZE] __attribute__((aligned(64)));
static uint8_t tx_bufs[TX_BUFS][BUF_SIZE] __attribute__((aligned(64)));
static struct vq_pool rx_pool, tx_pool;

/* What a running command waits for. */
static struct {
        uint16_t seq;
        bool got;
} ping;
static struct {
        bool active;
        uint16_t port;
        uint32_t received, bad, bytes;
} udp_listen;

static const uint8_t broadcast[ETH_ALEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static uint16_t get_be16(const uint8_t *p) { return (uint16_t) (p[0] << 8 | p[1]); }
static uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}
static void put_be16(uint8_t *p, uint16_t v) { p[0] = v >> 8, p[1] = (uint8_t) v; }
static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = v >> 24, p[1] = (uint8_t) (v >> 16), p[2] = (uint8_t) (v >> 8), p[3] = (uint8_t) v;
}

/* The Internet checksum (RFC 1071): sum of 16-bit big-endian words. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n) {
        for (; n > 1; p += 2, n -= 2)
                sum += get_be16(p);
        if (n)
                sum += (uint32_t) p[0] << 8;
        return sum;
}

static uint16_t csum_fold(uint32_t sum) {
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t) ~sum;
}

static uint32_t pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len) {
        return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
}

static void ip_format(char *buf, uint32_t ip) {
        char *p = buf;
        for (int i = 3; i >= 0; i--) {
                unsigned b = ip >> (8 * i) & 0xff;
                if (b >= 100)
                        *p++ = '0' + b / 100;
                if (b >= 10)
                        *p++ = '0' + b / 10 % 10;
                *p++ = '0' + b % 10;
                if (i)
                        *p++ = '.';
        }
        *p = 0;
}

/* "A.B.C.D", or with want_prefix "A.B.C.D/NN". */
static bool ip_parse(const char *s, uint32_t *ret_ip, unsigned *ret_prefix) {
        uint32_t ip = 0;
        for (int i = 0; i < 4; i++) {
                unsigned v = 0, digits = 0;
                while (*s >= '0' && *s <= '9' && digits < 4) {
                        v = v * 10 + (unsigned) (*s++ - '0');
                        digits++;
                }
                if (digits == 0 || digits > 3 || v > 255)
                        return false;
                ip = ip << 8 | v;
                if (i < 3 && *s++ != '.')
                        return false;
        }
        if (ret_prefix) {
                uint64_t prefix;
                if (*s++ != '/' || !parse_u64(s, &prefix) || prefix < 1 || prefix > 32)
                        return false;
                *ret_prefix = (unsigned) prefix;
        } else if (*s)
                return false;
        *ret_ip = ip;
        return true;
}

static void arp_learn(uint32_t ip, const uint8_t *hw) {
        if (ip == 0 || hw[0] & 1) /* no multicast or broadcast senders */
                return;
        for (unsigned i = 0; i < ARP_CACHE; i++)
                if (arp_cache[i].valid && arp_cache[i].ip == ip) {
                        memcpy(arp_cache[i].mac, hw, ETH_ALEN);
                        return;
                }
        arp_cache[arp_next] = (struct arp_entry) { .ip = ip, .valid = true };
        memcpy(arp_cache[arp_next].mac, hw, ETH_ALEN);
        arp_next = (arp_next + 1) % ARP_CACHE;
}

static const uint8_t *arp_lookup(uint32_t ip) {
        for (unsigned i = 0; i < ARP_CACHE; i++)
                if (arp_cache[i].valid && arp_cache[i].ip == ip)
                        return arp_cache[i].mac;
        return NULL;
}

/* --- the queues --- */

/* A free transmit buffer with its virtio_net_hdr zeroed (no offloads);
 * the frame goes at + NET_HDR_LEN. -1 if all are in flight. */
static int tx_alloc(void) {
        int slot = vq_pool_alloc(&tx_pool);
        if (slot >= 0)
                memset(tx_bufs[slot], 0, NET_HDR_LEN);
        return slot;
}

static bool tx_has_free(void) {
        return vq_pool_alloc(&tx_pool) >= 0;
}

/* For commands: waits (up to 1 s) for a buffer. */
static int tx_alloc_wait(void) {
        int slot = tx_alloc();
        if (slot < 0 && wait_until(tx_has_free, TX_WAIT_NS))
                slot = tx_alloc();
        if (slot < 0)
                stats.tx_full++;
        return slot;
}

static void tx_send(int slot, uint32_t frame_len) {
        if (!vq_pool_put(&tx_pool, (unsigned) slot, NET_HDR_LEN + frame_len)) {
                stats.tx_full++;
                return;
        }
        vq_kick(&net_dev.vqs[NET_TXQ]);
        stats.tx++;
}

static uint8_t *eth_fill(int slot, const uint8_t *dst, uint16_t type) {
        uint8_t *f = tx_bufs[slot] + NET_HDR_LEN;
        memcpy(f, dst, ETH_ALEN);
        memcpy(f + ETH_ALEN, mac, ETH_ALEN);
        put_be16(f + 12, type);
        return f + ETH_HLEN;
}

static void arp_send(int slot, uint16_t op, const uint8_t *dst_hw, uint32_t target_ip) {
        uint8_t *a = eth_fill(slot, op == 1 ? broadcast : dst_hw, ETH_P_ARP);
        put_be16(a, 1);
        put_be16(a + 2, ETH_P_IP);
        a[4] = ETH_ALEN;
        a[5] = 4;
        put_be16(a + 6, op);
        memcpy(a + 8, mac, ETH_ALEN);
        put_be32(a + 14, my_ip);
        if (op == 1)
                memset(a + 18, 0, ETH_ALEN);
        else
                memcpy(a + 18, dst_hw, ETH_ALEN);
        put_be32(a + 24, target_ip);
        tx_send(slot, ETH_HLEN + ARP_LEN);
}

/* The IPv4 header in a transmit buffer; the payload follows at + IP_HLEN. */
static uint8_t *ip_fill(int slot, const uint8_t *dst_hw, uint32_t dst, uint8_t proto, uint16_t payload_len) {
        uint8_t *ip = eth_fill(slot, dst_hw, ETH_P_IP);
        ip[0] = 0x45;
        ip[1] = 0;
        put_be16(ip + 2, IP_HLEN + payload_len);
        put_be16(ip + 4, ip_id++);
        put_be16(ip + 6, IP_DF);
        ip[8] = 64;
        ip[9] = proto;
        put_be16(ip + 10, 0);
        put_be32(ip + 12, my_ip);
        put_be32(ip + 16, dst);
        put_be16(ip + 10, csum_fold(csum_add(0, ip, IP_HLEN)));
        return ip + IP_HLEN;
}

/* --- receive --- */

static void arp_rx(const uint8_t *a, uint32_t len) {
        if (len < ARP_LEN || get_be16(a) != 1 || get_be16(a + 2) != ETH_P_IP || a[4] != ETH_ALEN || a[5] != 4) {
                stats.dropped++;
                return;
        }
        uint16_t op = get_be16(a + 6);
        uint32_t sender = get_be32(a + 14), target = get_be32(a + 24);
        if (!my_ip || target != my_ip || (op != 1 && op != 2)) {
                stats.ignored++;
                return;
        }
        arp_learn(sender, a + 8);
        if (op == 1) {
                int slot = tx_alloc();
                if (slot < 0) {
                        stats.tx_full++;
                        return;
                }
                arp_send(slot, 2, a + 8, sender);
        }
}

static void icmp_rx(const uint8_t *eth_src, uint32_t src, const uint8_t *icmp, uint32_t len) {
        if (len < ICMP_HLEN || csum_fold(csum_add(0, icmp, len)) != 0) {
                stats.dropped++;
                return;
        }
        if (icmp[0] == ICMP_ECHO_REQUEST && icmp[1] == 0) {
                /* Answered to the frame's sender: no ARP needed. */
                int slot = tx_alloc();
                if (slot < 0) {
                        stats.tx_full++;
                        return;
                }
                uint8_t *r = ip_fill(slot, eth_src, src, IP_PROTO_ICMP, (uint16_t) len);
                memcpy(r, icmp, len);
                r[0] = ICMP_ECHO_REPLY;
                put_be16(r + 2, 0);
                put_be16(r + 2, csum_fold(csum_add(0, r, len)));
                tx_send(slot, ETH_HLEN + IP_HLEN + len);
                return;
        }
        if (icmp[0] == ICMP_ECHO_REPLY && get_be16(icmp + 4) == PING_IDENT && get_be16(icmp + 6) == ping.seq) {
                ping.got = true;
                return;
        }
        stats.ignored++;
}

/* The datagram payload both sides agree on: a big-endian sequence number,
 * the FNV-1a 32 of the bytes after the first 8, then (seq * 7 + offset)
 * & 0xff; tests/qemu/test-virtio-net.py builds and checks the same. */
static uint32_t fnv1a32(const uint8_t *p, size_t n) {
        uint32_t h = FNV32_OFFSET;
        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * FNV32_PRIME;
        return h;
}

static void udp_payload_fill(uint8_t *p, uint32_t seq, uint32_t size) {
        put_be32(p, seq);
        for (uint32_t k = UDP_MIN_PAYLOAD; k < size; k++)
                p[k] = (uint8_t) (seq * 7 + k);
        put_be32(p + 4, fnv1a32(p + UDP_MIN_PAYLOAD, size - UDP_MIN_PAYLOAD));
}

static bool udp_payload_ok(const uint8_t *p, uint32_t size) {
        if (size < UDP_MIN_PAYLOAD)
                return false;
        uint32_t seq = get_be32(p);
        for (uint32_t k = UDP_MIN_PAYLOAD; k < size; k++)
                if (p[k] != (uint8_t) (seq * 7 + k))
                        return false;
        return get_be32(p + 4) == fnv1a32(p + UDP_MIN_PAYLOAD, size - UDP_MIN_PAYLOAD);
}

static void udp_rx(uint32_t src, const uint8_t *u, uint32_t len) {
        if (len < UDP_HLEN) {
                stats.dropped++;
                return;
        }
        uint16_t ulen = get_be16(u + 4);
        if (ulen < UDP_HLEN || ulen > len ||
            (get_be16(u + 6) && csum_fold(csum_add(pseudo_sum(src, my_ip, IP_PROTO_UDP, ulen), u, ulen)) != 0)) {
                stats.dropped++;
                return;
        }
        if (!udp_listen.active || get_be16(u + 2) != udp_listen.port) {
                stats.ignored++;
                return;
        }
        udp_listen.received++;
        udp_listen.bytes += ulen - UDP_HLEN;
        if (!udp_payload_ok(u + UDP_HLEN, ulen - UDP_HLEN))
                udp_listen.bad++;
}

static void ip_rx(const uint8_t *eth_src, const uint8_t *ip, uint32_t len) {
        if (len < IP_HLEN || ip[0] >> 4 != 4) {
                stats.dropped++;
                return;
        }
        uint32_t hl = (ip[0] & 0xf) * 4u, total = get_be16(ip + 2);
        if (hl < IP_HLEN || total < hl || total > len || csum_fold(csum_add(0, ip, hl)) != 0) {
                stats.dropped++;
                return;
        }
        uint32_t src = get_be32(ip + 12), dst = get_be32(ip + 16);
        if (!my_ip || dst != my_ip || get_be16(ip + 6) & (IP_MF | IP_OFFSET)) {
                stats.ignored++; /* not ours, or a fragment (never reassembled) */
                return;
        }
        if (ip[9] == IP_PROTO_ICMP)
                icmp_rx(eth_src, src, ip + hl, total - hl);
        else if (ip[9] == IP_PROTO_UDP)
                udp_rx(src, ip + hl, total - hl);
        else
                stats.ignored++;
}

/* len is what the device wrote: the virtio_net_hdr, then the frame. */
static void frame_rx(const uint8_t *buf, uint32_t len) {
        stats.rx++;
        if (len < NET_HDR_LEN + ETH_HLEN || len > BUF_SIZE) {
                stats.dropped++;
                return;
        }
        const uint8_t *f = buf + NET_HDR_LEN;
        uint32_t flen = len - NET_HDR_LEN;
        if (memcmp(f, mac, ETH_ALEN) != 0 && memcmp(f, broadcast, ETH_ALEN) != 0) {
                stats.ignored++; /* multicast (IPv6 neighbour discovery and such) */
                return;
        }
        uint16_t type = get_be16(f + 12);
        if (type == ETH_P_ARP)
                arp_rx(f + ETH_HLEN, flen - ETH_HLEN);
        else if (type == ETH_P_IP)
                ip_rx(f + ETH_ALEN, f + ETH_HLEN, flen - ETH_HLEN);
        else
                stats.ignored++;
}

void virtio_net_poll(void) {
        if (!net_ok)
                return;
        vq_pool_reap(&tx_pool);
        (void) vq_pool_drain(&rx_pool, RX_BUDGET, frame_rx);
}

/* --- probe --- */

static void net_set_addr(uint32_t ip, unsigned prefix) {
        my_ip = ip;
        my_prefix = prefix;
        my_mask = prefix == 0 ? 0 : ~0u << (32 - prefix);
        memset(arp_cache, 0, sizeof(arp_cache));
}

static void net_probe(struct pci_dev *pci) {
        if (net_ok) {
                kprintf("virtio-net: %02x:%02x.%u: one network device is enough, not used\n", pci->bus, pci->slot,
                        pci->fn);
                return;
        }
        uint64_t wanted = 1ULL << VIRTIO_NET_F_MAC | 1ULL << VIRTIO_NET_F_STATUS;
        if (!virtio_pci_setup(&net_dev, pci, "virtio-net", wanted, 2))
                return;
        if (!virtio_has(&net_dev, VIRTIO_NET_F_MAC)) {
                /* 5.1.5: without MAC the driver picks one; a locally administered one. */
                static const uint8_t fallback[ETH_ALEN] = { 0x02, 0x74, 0x67, 0x00, 0x00, 0x01 };
                memcpy(mac, fallback, ETH_ALEN);
        } else
                for (unsigned i = 0; i < ETH_ALEN; i++)
                        (void) virtio_cfg_read(&net_dev, NET_CFG_MAC + i, &mac[i], 1);
        vq_pool_init(&rx_pool, &net_dev.vqs[NET_RXQ], rx_bufs, RX_BUFS, BUF_SIZE, true);
        vq_pool_init(&tx_pool, &net_dev.vqs[NET_TXQ], tx_bufs, TX_BUFS, BUF_SIZE, false);
        vq_pool_put_all(&rx_pool);
        vq_kick(&net_dev.vqs[NET_RXQ]);
        net_ok = true;
        kprintf("virtio-net: mac %02x:%02x:%02x:%02x:%02x:%02x%s, %u rx buffers of %u bytes\n", mac[0], mac[1],
                mac[2], mac[3], mac[4], mac[5], virtio_has(&net_dev, VIRTIO_NET_F_MAC) ? "" : " (chosen, no F_MAC)",
                RX_BUFS, BUF_SIZE);

        char v[32];
        uint32_t ip;
        unsigned prefix;
        if (cmdline_get(bootinfo.cmdline, "tg.net.addr", v, sizeof(v))) {
                if (ip_parse(v, &ip, &prefix)) {
                        net_set_addr(ip, prefix);
                        kprintf("virtio-net: address %s from the command line\n", v);
                } else
                        kprintf("virtio-net: tg.net.addr=%s is not A.B.C.D/NN, ignored\n", v);
        }
}

const struct virtio_driver virtio_net_driver = { VIRTIO_ID_NET, "virtio-net", net_probe };

/* --- commands --- */

static uint32_t arp_target;

static bool arp_resolved(void) {
        virtio_net_poll();
        return arp_lookup(arp_target) != NULL;
}

static const uint8_t *resolve(uint32_t ip) {
        const uint8_t *hw = arp_lookup(ip);
        arp_target = ip;
        for (unsigned i = 0; !hw && i < ARP_TRIES; i++) {
                int slot = tx_alloc_wait();
                if (slot < 0)
                        break;
                arp_send(slot, 1, NULL, ip);
                if (wait_until(arp_resolved, ARP_WAIT_NS))
                        hw = arp_lookup(ip);
        }
        if (!hw) {
                char s[16];
                ip_format(s, ip);
                kprintf("net: no ARP reply from %s\n", s);
        }
        return hw;
}

/* A destination on our subnet (there is no router). */
static bool dest_ok(const char *arg, uint32_t *ret) {
        if (!my_ip) {
                console_puts("net: no address: net addr A.B.C.D/NN first\n");
                return false;
        }
        if (!ip_parse(arg, ret, NULL)) {
                kprintf("net: %s is not A.B.C.D\n", arg);
                return false;
        }
        if ((*ret & my_mask) != (my_ip & my_mask) || *ret == my_ip) {
                kprintf("net: %s is not another host on the local subnet (no routing)\n", arg);
                return false;
        }
        return true;
}

static bool ping_done(void) {
        virtio_net_poll();
        return ping.got;
}

static void cmd_ping(uint32_t dst, const char *name, uint64_t count) {
        const uint8_t *hw = resolve(dst);
        if (!hw)
                return;
        uint8_t dst_hw[ETH_ALEN];
        memcpy(dst_hw, hw, ETH_ALEN);
        unsigned received = 0;
        for (uint64_t i = 1; i <= count; i++) {
                int slot = tx_alloc_wait();
                if (slot < 0) {
                        console_puts("net ping: no transmit buffer\n");
                        break;
                }
                ping.seq = (uint16_t) i;
                ping.got = false;
                uint8_t *icmp = ip_fill(slot, dst_hw, dst, IP_PROTO_ICMP, ICMP_HLEN + PING_PAYLOAD);
                icmp[0] = ICMP_ECHO_REQUEST;
                icmp[1] = 0;
                put_be16(icmp + 2, 0);
                put_be16(icmp + 4, PING_IDENT);
                put_be16(icmp + 6, ping.seq);
                for (unsigned k = 0; k < PING_PAYLOAD; k++)
                        icmp[ICMP_HLEN + k] = (uint8_t) k;
                put_be16(icmp + 2, csum_fold(csum_add(0, icmp, ICMP_HLEN + PING_PAYLOAD)));
                tx_send(slot, ETH_HLEN + IP_HLEN + ICMP_HLEN + PING_PAYLOAD);
                if (wait_until(ping_done, PING_WAIT_NS)) {
                        received++;
                        kprintf("net ping: reply from %s seq %lu time %lu us\n", name, i, wait_last_ns / 1000);
                } else
                        kprintf("net ping: seq %lu: no reply within 1 s\n", i);
        }
        kprintf("net ping: %lu sent, %u received\n", count, received);
}

static void cmd_udp_send(uint32_t dst, const char *name, uint64_t port, uint64_t count, uint64_t size) {
        const uint8_t *hw = resolve(dst);
        if (!hw)
                return;
        uint8_t dst_hw[ETH_ALEN];
        memcpy(dst_hw, hw, ETH_ALEN);
        uint64_t sent = 0;
        for (; sent < count; sent++) {
                int slot = tx_alloc_wait();
                if (slot < 0) {
                        console_puts("net udp send: no transmit buffer within 1 s\n");
                        break;
                }
                uint16_t ulen = (uint16_t) (UDP_HLEN + size);
                uint8_t *u = ip_fill(slot, dst_hw, dst, IP_PROTO_UDP, ulen);
                put_be16(u, UDP_SRC_PORT);
                put_be16(u + 2, (uint16_t) port);
                put_be16(u + 4, ulen);
                put_be16(u + 6, 0);
                udp_payload_fill(u + UDP_HLEN, (uint32_t) sent, (uint32_t) size);
                uint16_t c = csum_fold(csum_add(pseudo_sum(my_ip, dst, IP_PROTO_UDP, ulen), u, ulen));
                put_be16(u + 6, c ? c : 0xffff); /* 0 means "no checksum" (RFC 768) */
                tx_send(slot, ETH_HLEN + IP_HLEN + ulen);
                virtio_net_poll(); /* keep answering ARP and pings meanwhile */
        }
        kprintf("net udp send: %lu datagrams of %lu bytes to %s:%lu sent\n", sent, size, name, port);
}

static uint32_t udp_rx_want;

static bool udp_rx_done(void) {
        virtio_net_poll();
        return udp_listen.received >= udp_rx_want;
}

static void cmd_udp_recv(uint64_t port, uint64_t count, uint64_t timeout_ms) {
        udp_listen = (typeof(udp_listen)) { .active = true, .port = (uint16_t) port };
        udp_rx_want = (uint32_t) count;
        kprintf("net udp recv: listening on port %lu for %lu datagrams, %lu ms\n", port, count, timeout_ms);
        uint64_t left = timeout_ms * 1000000;
        bool done = false;
        while (!done && left > 0) {
                uint64_t step = left < WAIT_STEP_NS ? left : WAIT_STEP_NS;
                done = wait_until(udp_rx_done, step);
                uint64_t waited = wait_last_ns ? wait_last_ns : step;
                left -= waited < left ? waited : left;
        }
        udp_listen.active = false;
        kprintf("net udp recv: port %lu received %u bytes %u bad %u%s\n", port, udp_listen.received, udp_listen.bytes,
                udp_listen.bad, done ? "" : " (timeout)");
}

static void net_info(void) {
        char a[16];
        ip_format(a, my_ip);
        const char *link = "up (no STATUS feature)";
        if (virtio_has(&net_dev, VIRTIO_NET_F_STATUS)) {
                uint16_t st = 0;
                (void) virtio_cfg_read(&net_dev, NET_CFG_STATUS, &st, 2);
                link = st & VIRTIO_NET_S_LINK_UP ? "up" : "down";
        }
        kprintf("net: mac %02x:%02x:%02x:%02x:%02x:%02x link %s addr ", mac[0], mac[1], mac[2], mac[3], mac[4],
                mac[5], link);
        if (my_ip)
                kprintf("%s/%u\n", a, my_prefix);
        else
                console_puts("none\n");
        kprintf("net: rx %u tx %u dropped %u ignored %u tx-full %u\n", stats.rx, stats.tx, stats.dropped,
                stats.ignored, stats.tx_full);
        kprintf("net: features 0x%lx irq %s irqs rx %u tx %u config %u\n", net_dev.features,
                virtio_irq_mode_name(net_dev.irq_mode), net_dev.vqs[NET_RXQ].irqs, net_dev.vqs[NET_TXQ].irqs,
                net_dev.config_irqs);
}

static void net_usage(void) {
        console_puts("usage: net [info]\n"
                     "       net addr [A.B.C.D/NN]\n"
                     "       net ping A.B.C.D [N]\n"
                     "       net udp send A.B.C.D PORT N SIZE   (SIZE 8..1472)\n"
                     "       net udp recv PORT N [TIMEOUT_MS]\n");
}

void virtio_net_cmd(int argc, char **argv) {
        if (!net_ok) {
                console_puts("net: no virtio-net device\n");
                return;
        }
        virtio_net_poll();
        const char *op = argc > 1 ? argv[1] : "info";
        uint64_t a, b, c;
        uint32_t ip;
        unsigned prefix;
        if (strcmp(op, "info") == 0 && argc <= 2) {
                net_info();
        } else if (strcmp(op, "addr") == 0 && argc == 2) {
                char s[16];
                ip_format(s, my_ip);
                if (my_ip)
                        kprintf("net addr: %s/%u\n", s, my_prefix);
                else
                        console_puts("net addr: none\n");
        } else if (strcmp(op, "addr") == 0 && argc == 3) {
                if (!ip_parse(argv[2], &ip, &prefix) || ip == 0) {
                        kprintf("net addr: %s is not A.B.C.D/NN\n", argv[2]);
                        return;
                }
                net_set_addr(ip, prefix);
                kprintf("net addr: %s\n", argv[2]);
        } else if (strcmp(op, "ping") == 0 && (argc == 3 || argc == 4)) {
                a = 3;
                if (argc == 4 && (!parse_u64(argv[3], &a) || a < 1 || a > 1000)) {
                        net_usage();
                        return;
                }
                if (dest_ok(argv[2], &ip))
                        cmd_ping(ip, argv[2], a);
        } else if (strcmp(op, "udp") == 0 && argc == 7 && strcmp(argv[2], "send") == 0) {
                if (!parse_u64(argv[4], &a) || a < 1 || a > 65535 || !parse_u64(argv[5], &b) || b < 1 ||
                    b > 1000000 || !parse_u64(argv[6], &c) || c < UDP_MIN_PAYLOAD || c > UDP_MAX_PAYLOAD) {
                        net_usage();
                        return;
                }
                if (dest_ok(argv[3], &ip))
                        cmd_udp_send(ip, argv[3], a, b, c);
        } else if (strcmp(op, "udp") == 0 && (argc == 5 || argc == 6) && strcmp(argv[2], "recv") == 0) {
                c = 10000;
                if (!parse_u64(argv[3], &a) || a < 1 || a > 65535 || !parse_u64(argv[4], &b) || b < 1 ||
                    b > 1000000 || (argc == 6 && (!parse_u64(argv[5], &c) || c < 1 || c > 600000))) {
                        net_usage();
                        return;
                }
                if (!my_ip) {
                        console_puts("net: no address: net addr A.B.C.D/NN first\n");
                        return;
                }
                cmd_udp_recv(a, b, c);
        } else
                net_usage();
}
