/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What is particular about a virtio-net device behind QEMU's vhost-user
 * netdev (QEMU's hw/net/vhost_net.c and virtio-net.c): QEMU's front-end
 * keeps the device config space (MAC, link status) itself and never asks
 * the back-end for it, acks to the back-end only the ring and offload
 * bits it lets a back-end decide (VERSION_1 with polyvm's device: the
 * 12-byte header the device and its tap use), and reads GET_QUEUE_NUM as
 * queue pairs. */

#include <stdbool.h>
#include <stdint.h>

#include "polyvm-device.h"

#define BRIDGE_VIRTIO_ID_NET 1

/* The GET_QUEUE_NUM answer: queue pairs for virtio-net (rx + tx, no
 * control queue: QEMU serves that one itself), queues otherwise. */
uint64_t bridge_queue_num(const struct pdev *d);

/* Whether the front-end enables the rings before a start and not at it:
 * QEMU's vhost-net sends SET_VRING_ENABLE when the guest sets features
 * (before its first SET_FEATURES, too) and never in the start itself,
 * while its other front-ends enable every ring right after setting them
 * all up. So for virtio-net the enable state outlives features and stops,
 * and a start waits for every ring (rx and tx). */
bool bridge_rings_enabled_early(const struct pdev *d);

/* For virtio-net, logs the MAC, status and MTU in the device's own config
 * space, so a test can check them against what QEMU shows the guest
 * (give the device the same "mac" as QEMU's -device mac=). 0 for other
 * devices. */
int bridge_net_describe(struct pdev *d);
