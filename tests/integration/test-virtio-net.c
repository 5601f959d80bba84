/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-net through the real devmgr and its jail, against a real tap and
 * the kernel's own ARP, ICMP and UDP.
 *
 * The whole test process moves into a network namespace of its own first
 * (unshare(CLONE_NEWNET)), before it starts the private bus: dbus-daemon
 * and the devmgr it activates are its children and live in that namespace
 * too, so devmgr sees the test's tap and nothing of the host's network.
 * Nothing needs undoing: the tap (persistent, 10.0.2.1/24) lives in the
 * namespace, and the namespace goes when its last process does; the bus
 * dies with the test (PR_SET_PDEATHSIG) also when an assertion aborts it.
 *
 * The test plays the guest's virtio-net driver (virtio-driver.h): 10.0.2.15
 * with MAC 02:00:00:00:00:0f. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "virtio-driver.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"
#define DEVICE_IFACE "org.polyvm.Device1"
#define RAM_SIZE (8u << 20)
#define TAP "pvmtest0"
#define HOST_IP "10.0.2.1"
#define GUEST_IP "10.0.2.15"
#define GUEST_MAC "02:00:00:00:00:0f"

#define F_MTU (1ULL << 3)
#define F_MAC (1ULL << 5)
#define F_STATUS (1ULL << 16)
#define F_VERSION_1 (1ULL << 32)

#define CONFIG_VECTOR 0
#define RX_VECTOR 1
#define TX_VECTOR 2
#define QSIZE 256
#define RX_BUFS 64
#define RX_BUF_LEN 2048
#define TX_BUFS 128
#define HDR 12

static struct harness h;
static const uint8_t guest_mac[6] = { 0x02, 0, 0, 0, 0, 0x0f };

struct net {
        struct vdrv d;
        char *path;
        pid_t pid;
        struct vdrv_queue *rx, *tx;
        uint64_t rx_gpa[QSIZE]; /* buffer of each rx head */
        uint64_t tx_gpa;        /* TX_BUFS buffers of RX_BUF_LEN */
        unsigned tx_next, tx_outstanding;
        uint8_t host_mac[6];
};

/* Setup of the namespace: a persistent tap with the host's address. */

static void ifreq_ioctl(int s, unsigned long req, struct ifreq *ifr) {
        if (ioctl(s, req, ifr) < 0)
                g_error("ioctl 0x%lx on %s: %s", req, ifr->ifr_name, strerror(errno));
}

static void namespace_setup(void) {
        struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
        struct sockaddr_in *sin = (struct sockaddr_in *) &ifr.ifr_addr;
        int fd, s;
        FILE *f;

        if (unshare(CLONE_NEWNET) < 0)
                g_error("unshare(CLONE_NEWNET): %s: this test needs root (CAP_SYS_ADMIN) for its own network namespace",
                        strerror(errno));
        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                g_error("/dev/net/tun: %s", strerror(errno));
        strcpy(ifr.ifr_name, TAP);
        g_assert_cmpint(ioctl(fd, TUNSETIFF, &ifr), ==, 0);
        g_assert_cmpint(ioctl(fd, TUNSETPERSIST, 1), ==, 0);
        close(fd);

        /* Less noise on rx: no IPv6 (router solicitations, MLD, DAD). */
        f = fopen("/proc/sys/net/ipv6/conf/" TAP "/disable_ipv6", "we");
        if (f) {
                fputs("1\n", f);
                fclose(f);
        }

        s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(s, >=, 0);
        memset(&ifr, 0, sizeof(ifr));
        strcpy(ifr.ifr_name, TAP);
        sin->sin_family = AF_INET;
        inet_pton(AF_INET, HOST_IP, &sin->sin_addr);
        ifreq_ioctl(s, SIOCSIFADDR, &ifr);
        inet_pton(AF_INET, "255.255.255.0", &sin->sin_addr);
        ifreq_ioctl(s, SIOCSIFNETMASK, &ifr);
        ifreq_ioctl(s, SIOCGIFFLAGS, &ifr);
        ifr.ifr_flags |= IFF_UP;
        ifreq_ioctl(s, SIOCSIFFLAGS, &ifr);
        close(s);
}

/* Checksums and frames. */

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n) {
        for (size_t i = 0; i + 1 < n; i += 2)
                sum += (uint32_t) (p[i] << 8 | p[i + 1]);
        if (n & 1)
                sum += (uint32_t) p[n - 1] << 8;
        return sum;
}

static uint16_t csum_fold(uint32_t sum) {
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t) ~sum;
}

static void put16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) v;
}

static uint16_t get16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

static void ip_addr(const char *s, uint8_t out[4]) {
        g_assert_cmpint(inet_pton(AF_INET, s, out), ==, 1);
}

static size_t eth_header(uint8_t *f, const uint8_t dst[6], uint16_t type) {
        memcpy(f, dst, 6);
        memcpy(f + 6, guest_mac, 6);
        put16(f + 12, type);
        return 14;
}

static size_t arp_request(uint8_t *f) {
        static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
        uint8_t *a = f + eth_header(f, bcast, 0x0806);

        put16(a, 1);
        put16(a + 2, 0x0800);
        a[4] = 6;
        a[5] = 4;
        put16(a + 6, 1); /* request */
        memcpy(a + 8, guest_mac, 6);
        ip_addr(GUEST_IP, a + 14);
        memset(a + 18, 0, 6);
        ip_addr(HOST_IP, a + 24);
        memset(a + 28, 0, 60 - 42); /* padding to the Ethernet minimum */
        return 60;
}

/* IPv4 header at f + 14 for a payload of len bytes; returns the header
 * length. */
static size_t ipv4_header(uint8_t *ip, uint8_t proto, size_t len, uint16_t id) {
        memset(ip, 0, 20);
        ip[0] = 0x45;
        put16(ip + 2, (uint16_t) (20 + len));
        put16(ip + 4, id);
        ip[8] = 64;
        ip[9] = proto;
        ip_addr(GUEST_IP, ip + 12);
        ip_addr(HOST_IP, ip + 16);
        put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
        return 20;
}

static size_t icmp_echo(const struct net *n, uint8_t *f, uint16_t seq) {
        uint8_t *ip = f + eth_header(f, n->host_mac, 0x0800), *icmp = ip + 20;

        icmp[0] = 8;
        icmp[1] = 0;
        put16(icmp + 2, 0);
        put16(icmp + 4, 0x1234);
        put16(icmp + 6, seq);
        for (unsigned i = 0; i < 56; i++)
                icmp[8 + i] = (uint8_t) (i ^ seq);
        put16(icmp + 2, csum_fold(csum_add(0, icmp, 64)));
        ipv4_header(ip, 1, 64, seq);
        return 14 + 20 + 64;
}

static uint32_t udp_pseudo(const uint8_t *ip, size_t udp_len) {
        uint32_t sum = csum_add(0, ip + 12, 8);

        return sum + 17 + (uint32_t) udp_len;
}

static size_t udp_datagram(const struct net *n, uint8_t *f, uint16_t dport, const char *payload) {
        uint8_t *ip = f + eth_header(f, n->host_mac, 0x0800), *udp = ip + 20;
        size_t plen = strlen(payload), ulen = 8 + plen;
        uint16_t c;

        put16(udp, 4444);
        put16(udp + 2, dport);
        put16(udp + 4, (uint16_t) ulen);
        put16(udp + 6, 0);
        memcpy(udp + 8, payload, plen);
        ipv4_header(ip, 17, ulen, 7);
        c = csum_fold(csum_add(udp_pseudo(ip, ulen), udp, ulen));
        put16(udp + 6, c ? c : 0xffff);
        return 14 + 20 + ulen;
}

/* The device. */

static void rx_post(struct net *n, uint64_t gpa) {
        uint16_t head = vdrv_queue_add(&n->d, n->rx, (struct vdrv_buf[]) { { gpa, RX_BUF_LEN, true } }, 1);

        n->rx_gpa[head] = gpa;
}

static void net_start(struct net *n, const char *config) {
        int ep;

        memset(n, 0, sizeof(*n));
        ep = vdrv_create_device(&h, "virtio-net", config, &n->path, &n->pid);
        vdrv_init(&n->d, ep, 1, RAM_SIZE);
        g_assert_true(harness_wait_property(&h, DEVMGR, n->path, DEVICE_IFACE, "State", "active", 5000));
        vdrv_setup_ioevents(&n->d);
        vdrv_setup_msix(&n->d);
        g_assert_cmpuint(n->d.num_queues, ==, 2);
}

/* Negotiates, sets up both queues, posts RX_BUFS rx buffers (the first
 * first_len bytes long if not 0), DRIVER_OK. Returns the first's head. */
static uint16_t net_driver_init_with(struct net *n, uint64_t features, uint32_t first_len) {
        uint16_t first;

        g_assert_cmphex(vdrv_negotiate(&n->d, features), ==, 0x0b);
        vdrv_common_write(&n->d, 0x10, 2, CONFIG_VECTOR);
        n->rx = vdrv_queue_setup(&n->d, 0, QSIZE, RX_VECTOR);
        n->tx = vdrv_queue_setup(&n->d, 1, QSIZE, TX_VECTOR);
        first = n->rx->next_desc;
        if (first_len)
                vdrv_queue_add(&n->d, n->rx,
                               (struct vdrv_buf[]) { { vdrv_alloc(&n->d, first_len, 64), first_len, true } }, 1);
        for (unsigned i = 0; i < RX_BUFS; i++)
                rx_post(n, vdrv_alloc(&n->d, RX_BUF_LEN, 64));
        n->tx_gpa = vdrv_alloc(&n->d, (uint64_t) TX_BUFS * RX_BUF_LEN, 64);
        vdrv_driver_ok(&n->d);
        g_assert_cmphex(vdrv_status(&n->d), ==, 0x0f);
        vdrv_kick(&n->d, 0);
        return first;
}

static void net_driver_init(struct net *n, uint64_t features) {
        (void) net_driver_init_with(n, features, 0);
}

/* Alive, jailed, not killed by its filter; then a clean Shutdown. */
static void net_stop(struct net *n) {
        g_autofree char *state = harness_get_string(&h, DEVMGR, n->path, DEVICE_IFACE, "State");
        g_autofree char *reason = harness_get_string(&h, DEVMGR, n->path, DEVICE_IFACE, "ExitReason");

        g_assert_cmpstr(state, ==, "active");
        g_assert_cmpstr(reason, ==, "");
        g_assert_cmpint(proto_call(n->d.ep, PROTO_SHUTDOWN, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_true(harness_wait_property(&h, DEVMGR, n->path, DEVICE_IFACE, "State", "exited", 5000));
        {
                g_autofree char *why = harness_get_string(&h, DEVMGR, n->path, DEVICE_IFACE, "ExitReason");
                g_assert_cmpstr(why, ==, "exited with status 0");
        }
        close(n->d.ep);
        vdrv_done(&n->d);
        g_free(n->path);
}

/* The next used element of q, waiting up to timeout_ms for it (an
 * interrupt may be left over from entries already read). */
static bool wait_used(struct net *n, struct vdrv_queue *q, unsigned vector, uint32_t *id, uint32_t *len,
                      int timeout_ms) {
        gint64 end = g_get_monotonic_time() + (gint64) timeout_ms * 1000;

        while (!vdrv_queue_used(&n->d, q, id, len)) {
                gint64 left = (end - g_get_monotonic_time()) / 1000;

                /* One last look after the wait, whatever it said. */
                if (left <= 0 || !vdrv_wait_irq(&n->d, vector, (int) left))
                        return vdrv_queue_used(&n->d, q, id, len);
        }
        return true;
}

/* Queues a chain of the given buffers (already in guest RAM). */
static void tx_add_chain(struct net *n, const struct vdrv_buf *bufs, unsigned nb) {
        vdrv_queue_add(&n->d, n->tx, bufs, nb);
        n->tx_outstanding++;
}

/* Queues frame behind a zeroed header, header and frame in separate
 * descriptors every other time (drivers do both). */
static void tx_add(struct net *n, const uint8_t *frame, size_t len) {
        uint64_t gpa = n->tx_gpa + (uint64_t) (n->tx_next++ % TX_BUFS) * RX_BUF_LEN;
        uint8_t *p = vdrv_ptr(&n->d, gpa);

        g_assert_cmpuint(len + HDR, <=, RX_BUF_LEN);
        memset(p, 0, HDR);
        memcpy(p + HDR, frame, len);
        if (n->tx_next % 2)
                tx_add_chain(n, (struct vdrv_buf[]) { { gpa, (uint32_t) (HDR + len), false } }, 1);
        else
                tx_add_chain(n, (struct vdrv_buf[]) { { gpa, HDR, false }, { gpa + HDR, (uint32_t) len, false } }, 2);
}

/* Kicks tx and waits until every queued chain came back (length 0: the
 * device writes nothing into tx buffers). */
static void tx_flush(struct net *n) {
        uint32_t id, len;

        vdrv_kick(&n->d, 1);
        while (n->tx_outstanding > 0) {
                g_assert_true(wait_used(n, n->tx, TX_VECTOR, &id, &len, 2000));
                g_assert_cmpuint(len, ==, 0);
                n->tx_outstanding--;
        }
}

/* The next received frame (without header) into f; reposts its buffer.
 * Returns its length, or 0 on timeout. */
static size_t rx_next(struct net *n, uint8_t *f, int timeout_ms) {
        uint32_t id, len;

        if (!wait_used(n, n->rx, RX_VECTOR, &id, &len, timeout_ms))
                return 0;
        g_assert_cmpuint(id, <, QSIZE);
        g_assert_cmpuint(len, <=, RX_BUF_LEN);
        if (len == 0) /* a chain the device found too small: none are posted here */
                g_error("rx buffer %u came back empty", id);
        {
                const uint8_t *p = vdrv_ptr(&n->d, n->rx_gpa[id]);
                static const uint8_t hdr_want[HDR] = { [10] = 1 }; /* flags 0, no GSO, num_buffers 1 */

                g_assert_cmpuint(len, >=, HDR + 14);
                g_assert_cmpmem(p, HDR, hdr_want, HDR);
                memcpy(f, p + HDR, len - HDR);
        }
        rx_post(n, n->rx_gpa[id]);
        vdrv_kick(&n->d, 0);
        return len - HDR;
}

/* Waits for a frame accepted by match (others: IPv6 noise, ARP probes). */
static size_t rx_expect(struct net *n, uint8_t *f, bool (*match)(const uint8_t *, size_t, const void *),
                        const void *arg, int timeout_ms) {
        gint64 end = g_get_monotonic_time() + (gint64) timeout_ms * 1000;

        for (;;) {
                gint64 left = (end - g_get_monotonic_time()) / 1000;
                size_t len;

                if (left <= 0)
                        return 0;
                len = rx_next(n, f, (int) left);
                if (len == 0)
                        return 0;
                if (match(f, len, arg))
                        return len;
        }
}

static bool is_arp_reply(const uint8_t *f, size_t len, const void *arg) {
        uint8_t ip[4];

        ip_addr(HOST_IP, ip);
        return len >= 42 && get16(f + 12) == 0x0806 && get16(f + 20) == 2 && memcmp(f + 28, ip, 4) == 0;
}

static bool is_echo_reply(const uint8_t *f, size_t len, const void *arg) {
        return len >= 14 + 20 + 8 && get16(f + 12) == 0x0800 && f[14 + 9] == 1 && f[34] == 0 &&
               get16(f + 34 + 6) == *(const uint16_t *) arg;
}

static bool is_udp_to_4444(const uint8_t *f, size_t len, const void *arg) {
        return len >= 14 + 20 + 8 && get16(f + 12) == 0x0800 && f[14 + 9] == 17 && get16(f + 34 + 2) == 4444;
}

/* The kernel answers the ARP request; its reply names the host's MAC. */
static void resolve_host(struct net *n) {
        uint8_t f[RX_BUF_LEN];
        size_t len = arp_request(f);

        tx_add(n, f, len);
        tx_flush(n);
        len = rx_expect(n, f, is_arp_reply, NULL, 3000);
        g_assert_cmpuint(len, >=, 42);
        g_assert_cmpmem(f, 6, guest_mac, 6);             /* to us */
        g_assert_cmpmem(f + 14 + 18, 6, guest_mac, 6);   /* target hardware address */
        memcpy(n->host_mac, f + 14 + 8, 6);              /* sender hardware address */
        g_assert_cmpmem(f + 6, 6, n->host_mac, 6);
        g_assert_cmphex(n->host_mac[0] & 1, ==, 0);
}

static int udp_socket(const char *ip, uint16_t port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        g_assert_cmpint(s, >=, 0);
        inet_pton(AF_INET, ip, &a.sin_addr);
        g_assert_cmpint(bind(s, (struct sockaddr *) &a, sizeof(a)), ==, 0);
        return s;
}

/* The next datagram on s within timeout_ms into buf (NUL-terminated);
 * its length or -1. */
static ssize_t udp_recv(int s, char *buf, size_t size, int timeout_ms) {
        struct pollfd p = { .fd = s, .events = POLLIN };
        ssize_t k;

        if (poll(&p, 1, timeout_ms) != 1)
                return -1;
        k = recv(s, buf, size - 1, 0);
        if (k >= 0)
                buf[k] = 0;
        return k;
}

static const char *config_with_tap(void) {
        return "{\"tap\": \"" TAP "\", \"mac\": \"" GUEST_MAC "\", \"mtu\": 1500, \"queue_size\": 256}";
}

/* The config space and features a driver reads first. */
static void test_virtio_net_offers_mac_status_and_mtu(void) {
        struct net n;
        uint64_t f;

        net_start(&n, config_with_tap());
        f = vdrv_device_features(&n.d);
        g_assert_cmphex(f & (F_VERSION_1 | F_MAC | F_STATUS | F_MTU), ==, F_VERSION_1 | F_MAC | F_STATUS | F_MTU);
        /* No offloads, no mergeable buffers, no control queue in this version. */
        g_assert_cmphex(f & 0xffffff & ~(F_MAC | F_STATUS | F_MTU), ==, 0);
        for (unsigned i = 0; i < 6; i++)
                g_assert_cmphex(vdrv_bar_read(&n.d, n.d.device + i, 1), ==, guest_mac[i]);
        g_assert_cmphex(vdrv_bar_read(&n.d, n.d.device + 6, 2), ==, 1); /* VIRTIO_NET_S_LINK_UP */
        g_assert_cmpuint(vdrv_bar_read(&n.d, n.d.device + 10, 2), ==, 1500);
        g_assert_cmpuint(n.d.device_len, >=, 12);
        net_stop(&n);
}

/* ARP, ping and 100 UDP datagrams guest -> host, 20 host -> guest. */
static void test_virtio_net_arp_ping_and_udp_through_tap(void) {
        uint8_t f[RX_BUF_LEN];
        char buf[128];
        bool seen[100] = {};
        struct net n;
        int s, g;

        net_start(&n, config_with_tap());
        net_driver_init(&n, F_VERSION_1 | F_MAC | F_STATUS | F_MTU);
        resolve_host(&n);

        /* ICMP echo: the kernel's reply, both checksums right. */
        {
                uint16_t seq = 1;
                size_t len = icmp_echo(&n, f, seq);
                const uint8_t *ip = f + 14, *icmp = f + 34;

                tx_add(&n, f, len);
                tx_flush(&n);
                len = rx_expect(&n, f, is_echo_reply, &(uint16_t) { seq }, 3000);
                g_assert_cmpuint(len, >=, 14 + 20 + 64);
                g_assert_cmpmem(f, 6, guest_mac, 6);
                g_assert_cmphex(csum_fold(csum_add(0, ip, 20)), ==, 0);
                g_assert_cmpuint(get16(ip + 2), ==, 20 + 64);
                g_assert_cmphex(csum_fold(csum_add(0, icmp, 64)), ==, 0);
                g_assert_cmpuint(get16(icmp + 4), ==, 0x1234);
                for (unsigned i = 0; i < 56; i++)
                        g_assert_cmpuint(icmp[8 + i], ==, (uint8_t) (i ^ seq));
        }

        /* 100 datagrams to a socket on the host side, all arrive. */
        s = udp_socket(HOST_IP, 5555);
        for (unsigned i = 0; i < 100; i++) {
                char payload[32];

                snprintf(payload, sizeof(payload), "datagram %u", i);
                tx_add(&n, f, udp_datagram(&n, f, 5555, payload));
                if (i % 50 == 49)
                        tx_flush(&n);
        }
        for (unsigned i = 0; i < 100; i++) {
                unsigned k;

                g_assert_cmpint(udp_recv(s, buf, sizeof(buf), 3000), >, 0);
                g_assert_cmpint(sscanf(buf, "datagram %u", &k), ==, 1);
                g_assert_cmpuint(k, <, 100);
                g_assert_false(seen[k]);
                seen[k] = true;
        }

        /* And the other way: 20 datagrams from the host to the guest's
         * address, each with a valid UDP checksum. */
        g = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(g, >=, 0);
        for (unsigned i = 0; i < 20; i++) {
                struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(4444) };

                inet_pton(AF_INET, GUEST_IP, &to.sin_addr);
                snprintf(buf, sizeof(buf), "to guest %u", i);
                g_assert_cmpint(sendto(g, buf, strlen(buf), 0, (struct sockaddr *) &to, sizeof(to)), ==,
                                (ssize_t) strlen(buf));
        }
        for (unsigned i = 0; i < 20; i++) {
                size_t len = rx_expect(&n, f, is_udp_to_4444, NULL, 3000), ulen;
                const uint8_t *ip = f + 14, *udp = f + 34;
                char want[32];

                g_assert_cmpuint(len, >, 42);
                g_assert_cmpmem(f, 6, guest_mac, 6);
                g_assert_cmphex(csum_fold(csum_add(0, ip, 20)), ==, 0);
                ulen = get16(udp + 4);
                g_assert_cmpuint(14 + 20 + ulen, <=, len);
                g_assert_cmphex(csum_fold(csum_add(udp_pseudo(ip, ulen), udp, ulen)), ==, 0);
                snprintf(want, sizeof(want), "to guest %u", i);
                g_assert_cmpuint(ulen - 8, ==, strlen(want));
                g_assert_cmpmem(udp + 8, ulen - 8, want, strlen(want));
        }
        close(g);
        close(s);
        net_stop(&n);
}

/* Chains a driver must not send are completed and dropped, never reach
 * the tap (each carries a datagram the host socket would take), and the
 * device goes on; an rx buffer too small for any frame comes back empty. */
static void test_virtio_net_drops_hostile_tx_chains(void) {
        uint8_t f[RX_BUF_LEN];
        char buf[128];
        struct net n;
        uint64_t big, p;
        size_t len;
        int s;

        net_start(&n, config_with_tap());
        net_driver_init(&n, F_VERSION_1 | F_MAC | F_STATUS | F_MTU);
        resolve_host(&n);
        s = udp_socket(HOST_IP, 5556);

        /* No header: 6 bytes. */
        p = vdrv_alloc(&n.d, 64, 64);
        tx_add_chain(&n, (struct vdrv_buf[]) { { p, 6, false } }, 1);
        /* Longer than the MTU allows: a valid datagram padded to 3000 bytes. */
        big = vdrv_alloc(&n.d, 4096, 64);
        len = udp_datagram(&n, f, 5556, "hostile: too long");
        memset(vdrv_ptr(&n.d, big), 0, 4096);
        memcpy((uint8_t *) vdrv_ptr(&n.d, big) + HDR, f, len);
        tx_add_chain(&n, (struct vdrv_buf[]) { { big, HDR + 3000, false } }, 1);
        /* Checksum offload asked for, never negotiated. */
        p = vdrv_alloc(&n.d, 2048, 64);
        len = udp_datagram(&n, f, 5556, "hostile: needs csum");
        memset(vdrv_ptr(&n.d, p), 0, HDR);
        ((uint8_t *) vdrv_ptr(&n.d, p))[0] = 1;
        memcpy((uint8_t *) vdrv_ptr(&n.d, p) + HDR, f, len);
        tx_add_chain(&n, (struct vdrv_buf[]) { { p, (uint32_t) (HDR + len), false } }, 1);
        /* A device-writable buffer behind a valid frame. */
        p = vdrv_alloc(&n.d, 2048, 64);
        len = udp_datagram(&n, f, 5556, "hostile: writable");
        memset(vdrv_ptr(&n.d, p), 0, HDR);
        memcpy((uint8_t *) vdrv_ptr(&n.d, p) + HDR, f, len);
        tx_add_chain(&n,
                     (struct vdrv_buf[]) { { p, (uint32_t) (HDR + len), false }, { p + 1024, 64, true } }, 2);
        /* A header and a frame shorter than an Ethernet header. */
        p = vdrv_alloc(&n.d, 64, 64);
        tx_add_chain(&n, (struct vdrv_buf[]) { { p, HDR + 10, false } }, 1);
        tx_flush(&n);

        /* The device still works, and nothing of the above got through. */
        tx_add(&n, f, udp_datagram(&n, f, 5556, "after the hostile ones"));
        tx_flush(&n);
        g_assert_cmpint(udp_recv(s, buf, sizeof(buf), 3000), >, 0);
        g_assert_cmpstr(buf, ==, "after the hostile ones");
        g_assert_cmpint(udp_recv(s, buf, sizeof(buf), 200), ==, -1);

        /* After a reset, an rx buffer too small for header and Ethernet
         * header comes back at once, empty. */
        {
                uint32_t id, l;
                uint16_t tiny;

                vdrv_reset(&n.d);
                tiny = net_driver_init_with(&n, F_VERSION_1 | F_MAC | F_STATUS, 20);
                g_assert_true(wait_used(&n, n.rx, RX_VECTOR, &id, &l, 2000));
                g_assert_cmpuint(id, ==, tiny);
                g_assert_cmpuint(l, ==, 0);
        }
        /* And after a reset it still answers ARP. */
        resolve_host(&n);
        close(s);
        net_stop(&n);
}

/* Errors of CreateDevice name the field: a tap that does not exist, one
 * already taken, a multicast MAC; the default MAC is stable. */
static void test_virtio_net_config_errors_and_default_mac(void) {
        static const struct {
                const char *config, *error;
        } bad[] = {
                { "{\"tap\": \"nosuchtap0\"}", "virtio-net.tap: no interface named nosuchtap0" },
                { "{\"tap\": \"lo\"}", "virtio-net.tap: lo is not a tap interface" },
                { "{\"tap\": \"" TAP "\", \"mac\": \"01:00:5e:00:00:01\"}", "virtio-net.mac:" },
                { "{\"tap\": \"" TAP "\", \"speed\": 10}", "virtio-net.speed" },
        };
        uint8_t mac1[6], mac2[6];
        struct net n;

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int r = sd_bus_call_method(h.bus, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &error, NULL, "sss",
                                           "vm1", "virtio-net", bad[i].config);

                g_assert_cmpint(r, <, 0);
                g_assert_cmpstr(error.name, ==, "org.polyvm.Error.InvalidConfig");
                if (!g_str_has_prefix(error.message, bad[i].error))
                        g_error("%s: \"%s\", wanted \"%s...\"", bad[i].config, error.message, bad[i].error);
                sd_bus_error_free(&error);
        }

        /* Busy: one device holds the tap. */
        net_start(&n, "{\"tap\": \"" TAP "\"}");
        {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int r = sd_bus_call_method(h.bus, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &error, NULL, "sss",
                                           "vm1", "virtio-net", "{\"tap\": \"" TAP "\"}");

                g_assert_cmpint(r, <, 0);
                g_assert_cmpstr(error.name, ==, "org.polyvm.Error.InvalidConfig");
                g_assert_true(g_str_has_prefix(error.message, "virtio-net.tap: " TAP " is busy"));
                sd_bus_error_free(&error);
        }
        for (unsigned i = 0; i < 6; i++)
                mac1[i] = (uint8_t) vdrv_bar_read(&n.d, n.d.device + i, 1);
        net_stop(&n);
        g_assert_cmphex(mac1[0] & 0x03, ==, 0x02); /* locally administered unicast */
        g_assert_false(memcmp(mac1, guest_mac, 6) == 0);

        /* The same config again (a restart): the same address. */
        net_start(&n, "{\"tap\": \"" TAP "\"}");
        for (unsigned i = 0; i < 6; i++)
                mac2[i] = (uint8_t) vdrv_bar_read(&n.d, n.d.device + i, 1);
        g_assert_cmpmem(mac1, 6, mac2, 6);
        net_stop(&n);
}

/* Ticks of CPU time pid has used (utime + stime). */
static unsigned long cpu_ticks(pid_t pid) {
        g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int) pid), *text = NULL;
        unsigned long utime = 0, stime = 0;
        const char *p;

        g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
        p = strrchr(text, ')'); /* after the command name */
        g_assert_nonnull(p);
        g_assert_cmpint(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime), ==, 2);
        return utime + stime;
}

/* The tap's interface is deleted under a running device: the driver sees
 * the link go down (a config interrupt), the device neither dies nor
 * spins on the dead fd, and tx chains still come back. */
static void test_virtio_net_tap_deleted_link_down_no_spin(void) {
        g_autoptr(GError) error = NULL;
        struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
        char *argv[] = { "ip", "link", "del", "pvmtest1", NULL };
        uint8_t f[RX_BUF_LEN];
        unsigned long before;
        struct net n;
        int fd, status;

        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);
        strcpy(ifr.ifr_name, "pvmtest1");
        g_assert_cmpint(ioctl(fd, TUNSETIFF, &ifr), ==, 0);
        g_assert_cmpint(ioctl(fd, TUNSETPERSIST, 1), ==, 0);
        close(fd);

        net_start(&n, "{\"tap\": \"pvmtest1\", \"mac\": \"" GUEST_MAC "\"}");
        net_driver_init(&n, F_VERSION_1 | F_MAC | F_STATUS);
        g_assert_cmphex(vdrv_bar_read(&n.d, n.d.device + 6, 2), ==, 1);

        g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, &error));
        g_assert_no_error(error);
        g_assert_true(g_spawn_check_wait_status(status, NULL));

        g_assert_true(vdrv_wait_irq(&n.d, CONFIG_VECTOR, 3000));
        g_assert_cmphex(vdrv_bar_read(&n.d, n.d.device + 6, 2), ==, 0); /* link down */
        g_assert_cmphex(vdrv_status(&n.d), ==, 0x0f);                  /* no NEEDS_RESET: the guest did nothing wrong */

        before = cpu_ticks(n.pid);
        g_usleep(1000 * 1000);
        g_assert_cmpuint(cpu_ticks(n.pid) - before, <, 20); /* well under 20% of a CPU */

        tx_add(&n, f, arp_request(f));
        tx_flush(&n);
        net_stop(&n);
}

/* With every rx buffer used up the device stops polling the tap instead
 * of spinning; the frames wait in the tap's queue and arrive once the
 * driver gives buffers back. */
static void test_virtio_net_no_rx_buffers_no_spin(void) {
        uint8_t f[RX_BUF_LEN];
        char buf[64];
        unsigned long before;
        struct net n;
        int g;

        net_start(&n, config_with_tap());
        net_driver_init(&n, F_VERSION_1 | F_MAC | F_STATUS | F_MTU);
        resolve_host(&n);

        /* Twice as many datagrams as the driver has rx buffers. */
        g = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(g, >=, 0);
        for (unsigned i = 0; i < 2 * RX_BUFS; i++) {
                struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(4444) };

                inet_pton(AF_INET, GUEST_IP, &to.sin_addr);
                snprintf(buf, sizeof(buf), "to guest %u", i);
                g_assert_cmpint(sendto(g, buf, strlen(buf), 0, (struct sockaddr *) &to, sizeof(to)), ==,
                                (ssize_t) strlen(buf));
        }
        close(g);
        g_usleep(200 * 1000);
        before = cpu_ticks(n.pid);
        g_usleep(1000 * 1000);
        g_assert_cmpuint(cpu_ticks(n.pid) - before, <, 20); /* well under 20% of a CPU */

        /* Now read (and give back) buffers: all of them arrive, in order. */
        for (unsigned i = 0; i < 2 * RX_BUFS; i++) {
                size_t len = rx_expect(&n, f, is_udp_to_4444, NULL, 3000);
                const uint8_t *udp = f + 34;
                char want[32];

                g_assert_cmpuint(len, >, 42);
                snprintf(want, sizeof(want), "to guest %u", i);
                g_assert_cmpuint(get16(udp + 4) - 8u, ==, strlen(want));
                g_assert_cmpmem(udp + 8, strlen(want), want, strlen(want));
        }
        net_stop(&n);
}

/* Without "tap", devmgr creates one (pvmnet<N>, up), which goes away with
 * the device. */
static void test_virtio_net_creates_tap_when_none_named(void) {
        struct ifreq ifr = {};
        struct net n;
        int s;

        g_assert_cmpuint(if_nametoindex("pvmnet0"), ==, 0);
        net_start(&n, "{\"mtu\": 1400}");
        g_assert_cmpuint(if_nametoindex("pvmnet0"), >, 0);
        s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(s, >=, 0);
        strcpy(ifr.ifr_name, "pvmnet0");
        ifreq_ioctl(s, SIOCGIFFLAGS, &ifr);
        g_assert_cmphex(ifr.ifr_flags & IFF_UP, ==, IFF_UP);
        ifreq_ioctl(s, SIOCGIFMTU, &ifr);
        g_assert_cmpint(ifr.ifr_mtu, ==, 1400);
        close(s);
        g_assert_cmpuint(vdrv_bar_read(&n.d, n.d.device + 10, 2), ==, 1400);
        net_stop(&n);
        /* Not persistent: gone with the device's fd. */
        for (int i = 0; i < 100 && if_nametoindex("pvmnet0") > 0; i++)
                g_usleep(20 * 1000);
        g_assert_cmpuint(if_nametoindex("pvmnet0"), ==, 0);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        namespace_setup();
        harness_start(&h);
        g_test_add_func("/virtio-net/offers-mac-status-and-mtu", test_virtio_net_offers_mac_status_and_mtu);
        g_test_add_func("/virtio-net/arp-ping-and-udp-through-tap", test_virtio_net_arp_ping_and_udp_through_tap);
        g_test_add_func("/virtio-net/drops-hostile-tx-chains", test_virtio_net_drops_hostile_tx_chains);
        g_test_add_func("/virtio-net/config-errors-and-default-mac", test_virtio_net_config_errors_and_default_mac);
        g_test_add_func("/virtio-net/creates-tap-when-none-named", test_virtio_net_creates_tap_when_none_named);
        g_test_add_func("/virtio-net/no-rx-buffers-no-spin", test_virtio_net_no_rx_buffers_no_spin);
        g_test_add_func("/virtio-net/tap-deleted-link-down-no-spin", test_virtio_net_tap_deleted_link_down_no_spin);
        r = g_test_run();
        harness_stop(&h);
        return r;
}
