/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-net without a tap: the config object, the device config bytes,
 * the tx chain checks and both directions of frames, with a SEQPACKET
 * socket pair standing in for the tap (one packet per frame, as a tap). */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json-util.h"
#include "virtio-net.h"

/* Parses text; returns the error (g_free) or NULL. */
static char *parse(const char *text, struct net_config *c) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        char err[512] = "";
        int r;

        g_assert_cmpint(json_parse_object(text, &o, err, sizeof(err)), ==, 0);
        r = net_config_parse(o, c, err, sizeof(err));
        if (r == 0)
                return NULL;
        g_assert_cmpint(r, ==, -EINVAL);
        return g_strdup(err);
}

static void assert_refused(const char *text, const char *field, const char *why) {
        struct net_config c;
        g_autofree char *err = parse(text, &c);

        g_assert_nonnull(err);
        g_assert_true(g_str_has_prefix(err, field));
        if (why && !strstr(err, why))
                g_error("\"%s\" was refused with \"%s\", without \"%s\"", text, err, why);
}

static void test_config_defaults(void) {
        struct net_config c;

        g_assert_null(parse("{}", &c));
        g_assert_cmpstr(c.tap, ==, "");
        g_assert_false(c.mac_set);
        g_assert_cmpuint(c.mtu, ==, 0);
        g_assert_cmpuint(c.queue_size, ==, 256);
        g_assert_cmpuint(net_max_frame(&c), ==, 1518);
}

static void test_config_all_fields(void) {
        static const uint8_t want[6] = { 0x02, 0xab, 0xcd, 0xef, 0x01, 0x23 };
        struct net_config c;

        g_assert_null(parse("{\"tap\": \"tap0\", \"mac\": \"02:AB:cd:EF:01:23\", \"mtu\": 9000, \"queue_size\": 1024}",
                            &c));
        g_assert_cmpstr(c.tap, ==, "tap0");
        g_assert_true(c.mac_set);
        g_assert_cmpmem(c.mac, 6, want, 6);
        g_assert_cmpuint(c.mtu, ==, 9000);
        g_assert_cmpuint(c.queue_size, ==, 1024);
        g_assert_cmpuint(net_max_frame(&c), ==, 9018);
        /* The bounds themselves are fine. */
        g_assert_null(parse("{\"mtu\": 68, \"queue_size\": 2}", &c));
        g_assert_null(parse("{\"mtu\": 65535, \"queue_size\": 32768, \"tap\": \"abcdefghijklmno\"}", &c));
        g_assert_cmpuint(c.queue_size, ==, 32768);
}

static void test_config_refuses_bad_mac(void) {
        assert_refused("{\"mac\": \"02:00:00:00:00\"}", "virtio-net.mac", "not a MAC address");
        assert_refused("{\"mac\": \"02:00:00:00:00:01:02\"}", "virtio-net.mac", "not a MAC address");
        assert_refused("{\"mac\": \"02-00-00-00-00-01\"}", "virtio-net.mac", "not a MAC address");
        assert_refused("{\"mac\": \"0g:00:00:00:00:01\"}", "virtio-net.mac", "not a MAC address");
        assert_refused("{\"mac\": \"2:00:00:00:00:001\"}", "virtio-net.mac", "not a MAC address");
        assert_refused("{\"mac\": \"02:00:00:00:00:01\\u0000\"}", "virtio-net.mac", "not a MAC address");
        assert_refused("{\"mac\": \"01:00:5e:00:00:01\"}", "virtio-net.mac", "multicast");
        assert_refused("{\"mac\": \"ff:ff:ff:ff:ff:ff\"}", "virtio-net.mac", "multicast");
        assert_refused("{\"mac\": \"00:00:00:00:00:00\"}", "virtio-net.mac", "all-zero");
        assert_refused("{\"mac\": 42}", "virtio-net.mac", NULL);
}

static void test_config_refuses_bad_tap_name(void) {
        assert_refused("{\"tap\": \"\"}", "virtio-net.tap", "not an interface name");
        assert_refused("{\"tap\": \"abcdefghijklmnop\"}", "virtio-net.tap", "not an interface name");
        assert_refused("{\"tap\": \"a/b\"}", "virtio-net.tap", "not an interface name");
        assert_refused("{\"tap\": \"tap 0\"}", "virtio-net.tap", "not an interface name");
        assert_refused("{\"tap\": \"tap:0\"}", "virtio-net.tap", "not an interface name");
        assert_refused("{\"tap\": \"tap%d\"}", "virtio-net.tap", "not an interface name");
        assert_refused("{\"tap\": \"..\"}", "virtio-net.tap", "not an interface name");
        assert_refused("{\"tap\": \"tap\\u00000\"}", "virtio-net.tap", "not an interface name");
        assert_refused("{\"tap\": 0}", "virtio-net.tap", NULL);
}

static void test_config_refuses_bad_numbers_and_unknown_fields(void) {
        assert_refused("{\"mtu\": 67}", "virtio-net.mtu", "out of range");
        assert_refused("{\"mtu\": 65536}", "virtio-net.mtu", "out of range");
        assert_refused("{\"mtu\": -1}", "virtio-net.mtu", NULL);
        assert_refused("{\"queue_size\": 300}", "virtio-net.queue_size", "not a power of 2");
        assert_refused("{\"queue_size\": 1}", "virtio-net.queue_size", "out of range");
        assert_refused("{\"queue_size\": 65536}", "virtio-net.queue_size", "out of range");
        assert_refused("{\"bridge\": \"br0\"}", "virtio-net.bridge", NULL);
}

static void test_mac_derive_is_stable_local_unicast(void) {
        uint8_t a[6], b[6], c[6], d[6];

        net_mac_derive("vm1", 0, a);
        net_mac_derive("vm1", 0, b);
        net_mac_derive("vm1", 1, c);
        net_mac_derive("vm2", 0, d);
        g_assert_cmpmem(a, 6, b, 6);
        g_assert_cmpint(memcmp(a, c, 6), !=, 0);
        g_assert_cmpint(memcmp(a, d, 6), !=, 0);
        for (const uint8_t *m = a; m; m = m == a ? c : m == c ? d : NULL) {
                g_assert_cmphex(m[0] & 0x01, ==, 0); /* unicast */
                g_assert_cmphex(m[0] & 0x02, ==, 0x02); /* locally administered */
        }
}

static void test_config_space_layout(void) {
        static const uint8_t mac[6] = { 0x02, 1, 2, 3, 4, 5 };
        uint8_t out[VIRTIO_NET_CONFIG_LEN];
        struct net_config c = { .mtu = 1400 };

        net_config_build(&c, mac, out);
        g_assert_cmpmem(out, 6, mac, 6);
        g_assert_cmpuint(out[6] | out[7] << 8, ==, VIRTIO_NET_S_LINK_UP);
        g_assert_cmpuint(out[8] | out[9] << 8, ==, 1);
        g_assert_cmpuint(out[10] | out[11] << 8, ==, 1400);
}

/* Chains over test memory. */
static void chain_add(struct vq_chain *c, void *ptr, uint32_t len, bool writable) {
        c->segs[c->n_segs++] = (struct vq_seg) { .ptr = ptr, .len = len, .writable = writable };
        if (writable)
                c->writable_bytes += len;
        else {
                g_assert_cmpuint(c->n_readable, ==, c->n_segs - 1);
                c->n_readable++;
                c->readable_bytes += len;
        }
}

static struct vq_chain *chain_new(void) {
        return g_new0(struct vq_chain, 1);
}

static void test_tx_check_verdicts(void) {
        static uint8_t buf[70000];
        g_autofree struct vq_chain *c = chain_new();

        memset(buf, 0, sizeof(buf));
        /* Header and a 60-byte frame, the header split over two buffers. */
        chain_add(c, buf, 5, false);
        chain_add(c, buf + 5, 7, false);
        chain_add(c, buf + 12, 60, false);
        g_assert_cmpint(net_tx_check(c, 1518), ==, NET_TX_OK);

        memset(c, 0, sizeof(*c));
        chain_add(c, buf, 11, false);
        g_assert_cmpint(net_tx_check(c, 1518), ==, NET_TX_NO_HEADER);
        memset(c, 0, sizeof(*c));
        g_assert_cmpint(net_tx_check(c, 1518), ==, NET_TX_NO_HEADER); /* empty */
        chain_add(c, buf, 12 + 13, false);
        g_assert_cmpint(net_tx_check(c, 1518), ==, NET_TX_SHORT);
        memset(c, 0, sizeof(*c));
        chain_add(c, buf, 12 + 1518, false);
        g_assert_cmpint(net_tx_check(c, 1518), ==, NET_TX_OK);
        memset(c, 0, sizeof(*c));
        chain_add(c, buf, 12 + 1519, false);
        g_assert_cmpint(net_tx_check(c, 1518), ==, NET_TX_TOO_LONG);
        memset(c, 0, sizeof(*c));
        chain_add(c, buf, 12 + 65553, false);
        g_assert_cmpint(net_tx_check(c, 65553), ==, NET_TX_OK);

        /* The guest asks for a checksum, or GSO, it did not negotiate. */
        memset(c, 0, sizeof(*c));
        chain_add(c, buf, 100, false);
        buf[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        g_assert_cmpint(net_tx_check(c, 1518), ==, NET_TX_BAD_HEADER);
        buf[0] = 0;
        buf[1] = 1; /* GSO_TCPV4 */
        g_assert_cmpint(net_tx_check(c, 1518), ==, NET_TX_BAD_HEADER);
        buf[1] = 0;

        /* A device-writable buffer has no place in a tx chain. */
        chain_add(c, buf + 100, 10, true);
        g_assert_cmpint(net_tx_check(c, 1518), ==, NET_TX_WRITABLE);

        /* More frame segments than one writev takes. */
        memset(c, 0, sizeof(*c));
        /* (The first buffer holds the header and a frame byte.) */
        chain_add(c, buf, 13, false);
        for (unsigned i = 1; i < VQ_CHAIN_MAX_SEGS; i++)
                chain_add(c, buf + 12 + i, 1, false);
        g_assert_cmpint(net_tx_check(c, 1518), ==, NET_TX_TOO_MANY_SEGS);
        g_assert_cmpstr(net_tx_verdict_string(NET_TX_TOO_MANY_SEGS), ==, "too many segments");
}

static void tap_pair(int sv[2]) {
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), ==, 0);
}

static void test_tx_send_writes_frame_behind_own_header(void) {
        static uint8_t mem[4096];
        g_autofree struct vq_chain *c = chain_new();
        g_autofree struct iovec *iov = g_new0(struct iovec, NET_IOV_MAX);
        struct net_stats st = {};
        uint8_t got[256];
        int sv[2], e;
        ssize_t n;

        tap_pair(sv);
        for (unsigned i = 0; i < 100; i++)
                mem[12 + i] = (uint8_t) i;
        memset(mem, 0, 12);
        /* Header and frame mixed over segments: 8 | 4 + 30 | 70. */
        chain_add(c, mem, 8, false);
        chain_add(c, mem + 8, 34, false);
        chain_add(c, mem + 42, 70, false);
        g_assert_cmpint(net_tx_send(sv[0], c, 1518, iov, &st, &e), ==, NET_TX_OK);
        g_assert_cmpint(e, ==, 0);
        n = recv(sv[1], got, sizeof(got), 0);
        g_assert_cmpint(n, ==, 112);
        for (unsigned i = 0; i < 12; i++)
                g_assert_cmpuint(got[i], ==, 0);
        g_assert_cmpmem(got + 12, 100, mem + 12, 100);
        g_assert_cmpuint(st.tx_packets, ==, 1);
        g_assert_cmpuint(st.tx_bytes, ==, 100);

        /* A malformed chain is counted and never reaches the tap. */
        memset(c, 0, sizeof(*c));
        chain_add(c, mem, 6, false);
        g_assert_cmpint(net_tx_send(sv[0], c, 1518, iov, &st, &e), ==, NET_TX_NO_HEADER);
        g_assert_cmpint(recv(sv[1], got, sizeof(got), 0), ==, -1);
        g_assert_cmpint(errno, ==, EAGAIN);
        g_assert_cmpuint(st.tx_dropped, ==, 1);
        g_assert_cmpuint(st.tx_packets, ==, 1);

        /* The tap refusing a frame is an error count, not a crash. */
        close(sv[1]);
        memset(c, 0, sizeof(*c));
        chain_add(c, mem, 112, false);
        g_assert_cmpint(net_tx_send(sv[0], c, 1518, iov, &st, &e), ==, NET_TX_OK);
        g_assert_cmpint(e, ==, EPIPE);
        g_assert_cmpuint(st.tx_errors, ==, 1);
        g_assert_cmpuint(st.tx_packets, ==, 1);
        close(sv[0]);
}

static void test_rx_receive_fills_chain_and_fixes_header(void) {
        static uint8_t mem[8192];
        g_autofree struct vq_chain *c = chain_new();
        g_autofree struct iovec *iov = g_new0(struct iovec, NET_IOV_MAX);
        struct net_stats st = {};
        uint8_t pkt[12 + 200];
        uint32_t written = 0;
        int sv[2];

        tap_pair(sv);
        memset(mem, 0xee, sizeof(mem));
        /* A readable buffer in front (ignored), then 7 + 4096 writable. */
        chain_add(c, mem, 16, false);
        chain_add(c, mem + 100, 7, true);
        chain_add(c, mem + 200, 4096, true);
        g_assert_true(net_rx_chain_usable(c));

        g_assert_cmpint(net_rx_receive(sv[0], c, 0, iov, &st, &written), ==, 0); /* nothing yet */

        memset(pkt, 0, sizeof(pkt));
        pkt[0] = 2; /* DATA_VALID: a complete frame, the flag is dropped */
        pkt[10] = 0x77;
        for (unsigned i = 12; i < sizeof(pkt); i++)
                pkt[i] = (uint8_t) (i * 7);
        g_assert_cmpint(send(sv[1], pkt, sizeof(pkt), 0), ==, (ssize_t) sizeof(pkt));
        g_assert_cmpint(net_rx_receive(sv[0], c, 0, iov, &st, &written), ==, 1);
        g_assert_cmpuint(written, ==, sizeof(pkt));
        {
                static const uint8_t hdr_want[12] = { [10] = 1 };
                uint8_t hdr[12];

                memcpy(hdr, mem + 100, 7);
                memcpy(hdr + 7, mem + 200, 5);
                g_assert_cmpmem(hdr, 12, hdr_want, 12);
        }
        g_assert_cmpmem(mem + 205, 200, pkt + 12, 200);
        g_assert_cmpuint(mem[0], ==, 0xee); /* the readable buffer is untouched */
        g_assert_cmpuint(st.rx_packets, ==, 1);
        g_assert_cmpuint(st.rx_bytes, ==, 200);
        close(sv[0]);
        close(sv[1]);
}

static void test_rx_receive_drops_what_does_not_fit(void) {
        static uint8_t mem[8192];
        g_autofree struct vq_chain *c = chain_new();
        g_autofree struct iovec *iov = g_new0(struct iovec, NET_IOV_MAX);
        struct net_stats st = {};
        uint8_t pkt[12 + 100] = {};
        uint32_t written = 0;
        int sv[2];

        tap_pair(sv);
        chain_add(c, mem, 12 + 60, true);
        /* Too big for the chain: dropped, the chain stays for the next. */
        g_assert_cmpint(send(sv[1], pkt, sizeof(pkt), 0), ==, (ssize_t) sizeof(pkt));
        /* Exactly the chain's size fits. */
        g_assert_cmpint(send(sv[1], pkt, 12 + 60, 0), ==, 12 + 60);
        /* Checksum still to do: a driver without GUEST_CSUM cannot take it. */
        pkt[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        g_assert_cmpint(send(sv[1], pkt, 12 + 40, 0), ==, 12 + 40);
        /* Shorter than header and Ethernet header. */
        g_assert_cmpint(send(sv[1], pkt, 20, 0), ==, 20);

        g_assert_cmpint(net_rx_receive(sv[0], c, 0, iov, &st, &written), ==, -EMSGSIZE);
        g_assert_cmpuint(st.rx_dropped, ==, 1);
        g_assert_cmpint(net_rx_receive(sv[0], c, 0, iov, &st, &written), ==, 1);
        g_assert_cmpuint(written, ==, 72);
        g_assert_cmpint(net_rx_receive(sv[0], c, 0, iov, &st, &written), ==, -EMSGSIZE);
        g_assert_cmpint(net_rx_receive(sv[0], c, 0, iov, &st, &written), ==, -EMSGSIZE);
        g_assert_cmpuint(st.rx_dropped, ==, 3);
        g_assert_cmpuint(st.rx_packets, ==, 1);
        g_assert_cmpint(net_rx_receive(sv[0], c, 0, iov, &st, &written), ==, 0);

        /* With VIRTIO_NET_F_MTU negotiated, a frame over 14 + 4 + mtu is
         * dropped even if it would fit the chain (5.1.4.1). */
        memset(c, 0, sizeof(*c));
        chain_add(c, mem, 4096, true);
        memset(pkt, 0, sizeof(pkt));
        g_assert_cmpint(send(sv[1], pkt, 12 + 61, 0), ==, 12 + 61);
        g_assert_cmpint(send(sv[1], pkt, 12 + 60, 0), ==, 12 + 60);
        g_assert_cmpint(net_rx_receive(sv[0], c, 60, iov, &st, &written), ==, -EMSGSIZE);
        g_assert_cmpint(net_rx_receive(sv[0], c, 60, iov, &st, &written), ==, 1);
        g_assert_cmpuint(written, ==, 72);
        g_assert_cmpuint(st.rx_dropped, ==, 4);

        /* A chain too small for any frame, or with no writable buffer. */
        memset(c, 0, sizeof(*c));
        chain_add(c, mem, 25, true);
        g_assert_false(net_rx_chain_usable(c));
        memset(c, 0, sizeof(*c));
        chain_add(c, mem, 2000, false);
        g_assert_false(net_rx_chain_usable(c));

        /* A broken fd is an error, not "nothing to read". */
        close(sv[0]);
        g_assert_cmpint(net_rx_receive(sv[0], c, 0, iov, &st, &written), ==, -EBADF);
        close(sv[1]);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        signal(SIGPIPE, SIG_IGN);
        g_test_add_func("/virtio-net/config/defaults", test_config_defaults);
        g_test_add_func("/virtio-net/config/all-fields", test_config_all_fields);
        g_test_add_func("/virtio-net/config/refuses-bad-mac", test_config_refuses_bad_mac);
        g_test_add_func("/virtio-net/config/refuses-bad-tap-name", test_config_refuses_bad_tap_name);
        g_test_add_func("/virtio-net/config/refuses-bad-numbers-and-unknown-fields",
                        test_config_refuses_bad_numbers_and_unknown_fields);
        g_test_add_func("/virtio-net/mac/derive-is-stable-local-unicast", test_mac_derive_is_stable_local_unicast);
        g_test_add_func("/virtio-net/config-space/layout", test_config_space_layout);
        g_test_add_func("/virtio-net/tx/check-verdicts", test_tx_check_verdicts);
        g_test_add_func("/virtio-net/tx/send-writes-frame-behind-own-header",
                        test_tx_send_writes_frame_behind_own_header);
        g_test_add_func("/virtio-net/rx/receive-fills-chain-and-fixes-header",
                        test_rx_receive_fills_chain_and_fixes_header);
        g_test_add_func("/virtio-net/rx/receive-drops-what-does-not-fit", test_rx_receive_drops_what_does_not_fit);
        return g_test_run();
}
