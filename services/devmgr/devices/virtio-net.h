/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The parts of the "virtio-net" device kind (virtio 1.2 5.1) that need no
 * transport: its config (virtio-net-config.c), moving frames between a
 * chain and the tap (virtio-net-frame.c) and opening the tap
 * (virtio-net-tap.c). virtio-net.c ties them to the virtio-pci transport.
 *
 * First version: one rx/tx queue pair, no control queue, no offloads and
 * no VIRTIO_NET_F_MRG_RXBUF, so a frame travels in one chain behind the
 * 12-byte VERSION_1 header, which the tap (IFF_VNET_HDR, header size 12)
 * shares: frames pass through unchanged. */

#include <json-c/json.h>
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtqueue.h"

/* Device feature bits (5.1.3). */
#define VIRTIO_NET_F_MTU        3
#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_STATUS     16

#define VIRTIO_NET_S_LINK_UP    1

/* struct virtio_net_hdr (5.1.6) with num_buffers: always 12 bytes with
 * VERSION_1. */
#define VIRTIO_NET_HDR_LEN      12
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_GSO_NONE 0

/* Device config (5.1.4): mac[6], status, max_virtqueue_pairs, mtu. */
#define VIRTIO_NET_CONFIG_LEN   12

#define VIRTIO_NET_RX_QUEUE     0
#define VIRTIO_NET_TX_QUEUE     1

#define NET_ETH_HLEN            14
#define NET_VLAN_HLEN           4
#define NET_MTU_DEFAULT         1500
#define NET_MTU_MIN             68
#define NET_MTU_MAX             65535
#define NET_QUEUE_SIZE_DEFAULT  256
#define NET_QUEUE_SIZE_MIN      2
/* The name devmgr gives a tap it creates; the kernel picks the number. */
#define NET_TAP_TEMPLATE        "pvmnet%d"

/* At most this many iovecs per readv/writev (UIO_MAXIOV), our own header
 * or the spill byte included. */
#define NET_IOV_MAX             1024

struct net_config {
        char tap[IFNAMSIZ];   /* "" if devmgr creates one */
        uint8_t mac[6];
        bool mac_set;         /* else derived: net_mac_derive() */
        uint16_t mtu;         /* 0: not offered (VIRTIO_NET_F_MTU off) */
        uint16_t queue_size;
};

/* Counters, kept by the worker and logged when the device goes away. */
struct net_stats {
        uint64_t rx_packets, rx_bytes;
        uint64_t rx_dropped;     /* a frame larger than the chain or the MTU, or a header the guest cannot take */
        uint64_t rx_bad_chains;  /* rx chains too small for any frame, returned empty */
        uint64_t tx_packets, tx_bytes;
        uint64_t tx_dropped;     /* malformed chains (no header, too long, bad header, writable) */
        uint64_t tx_errors;      /* the tap refused the frame (EAGAIN, EIO: link down, ...) */
};

/* Why a tx chain was not sent. */
enum net_tx_verdict {
        NET_TX_OK = 0,
        NET_TX_NO_HEADER,     /* shorter than the 12-byte header */
        NET_TX_SHORT,         /* the frame is shorter than an Ethernet header */
        NET_TX_TOO_LONG,      /* the frame is longer than 14 + 4 + mtu */
        NET_TX_BAD_HEADER,    /* checksum or GSO asked for, none negotiated */
        NET_TX_WRITABLE,      /* device-writable buffers in a tx chain */
        NET_TX_TOO_MANY_SEGS, /* more than NET_IOV_MAX - 1 segments */
};

/* virtio-net-config.c */

/* Parses "aa:bb:cc:dd:ee:ff" (hex, either case); -EINVAL if it is not
 * that. */
int net_mac_parse(const char *s, uint8_t mac[6]);
/* A locally administered unicast address (02:xx:xx:xx:xx:xx) from a hash
 * of seed and index: stable for the same inputs. */
void net_mac_derive(const char *seed, unsigned index, uint8_t mac[6]);
/* Whether name can be an interface name (dev_valid_name(): 1..15 bytes,
 * not "." or "..", no '/', ':', whitespace) and is not a template ('%'). */
bool net_ifname_valid(const char *name);
/* Validates the device's config object: tap, mac, mtu, queue_size;
 * unknown fields refused. Errors name the field ("virtio-net.mac: ..."). */
int net_config_parse(json_object *config, struct net_config *ret, char *err, size_t errlen);
/* The largest frame (no header) a chain may carry: 14 + 4 + mtu. */
uint32_t net_max_frame(const struct net_config *c);
/* The device config bytes (5.1.4) for c with mac. */
void net_config_build(const struct net_config *c, const uint8_t mac[6], uint8_t out[VIRTIO_NET_CONFIG_LEN]);

/* virtio-net-frame.c */

/* Checks a tx chain: 12-byte header (no checksum, no GSO), a frame of
 * 14..max_frame bytes, readable buffers only. */
enum net_tx_verdict net_tx_check(const struct vq_chain *chain, uint32_t max_frame);
const char *net_tx_verdict_string(enum net_tx_verdict v);
/* Sends one tx chain to fd (writev: a zeroed header of our own, then the
 * frame straight from guest RAM) and counts it. Returns the verdict
 * (NET_TX_OK even if the tap refused it: that is counted in tx_errors, and
 * *ret_errno says why, or 0). iov holds NET_IOV_MAX entries. */
enum net_tx_verdict net_tx_send(int fd, const struct vq_chain *chain, uint32_t max_frame, struct iovec *iov,
                                struct net_stats *st, int *ret_errno);
/* Whether an rx chain can take a frame at all (header + an Ethernet
 * header, in writable buffers). */
bool net_rx_chain_usable(const struct vq_chain *chain);
/* Reads one frame from fd into chain's writable buffers (readv, with a
 * spill byte behind them to see frames that do not fit) and rewrites the
 * header for a driver with no offloads (flags 0, GSO none, num_buffers 1).
 * max_frame: the largest frame the driver takes (VIRTIO_NET_F_MTU
 * negotiated: 14 + 4 + mtu), 0 for any that fits. 1: a frame is in the
 * chain, *ret_written bytes with the header; 0: nothing to read;
 * -EMSGSIZE: a frame was read and dropped (too big, or a checksum/GSO
 * header), the chain is still free; other -errno: read failed. */
int net_rx_receive(int fd, const struct vq_chain *chain, uint32_t max_frame, struct iovec *iov,
                   struct net_stats *st, uint32_t *ret_written);

/* virtio-net-tap.c */

/* Opens /dev/net/tun and attaches to the tap named c->tap (it must exist)
 * or creates NET_TAP_TEMPLATE (non-persistent: gone with the device's last
 * fd; brought up, its MTU set to c->mtu if given). IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR, header size 12, little-endian headers, no offloads,
 * O_NONBLOCK. The interface's name goes to ret_name. Errors name the field
 * and say what to do. */
int net_tap_open(const struct net_config *c, int *ret_fd, char ret_name[IFNAMSIZ], char *err, size_t errlen);
