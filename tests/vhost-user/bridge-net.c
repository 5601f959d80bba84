/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "bridge-net.h"
#include "log.h"

/* virtio 1.2 5.1.4: mac[6], status (le16), max_virtqueue_pairs (le16),
 * mtu (le16). */
#define NET_CONFIG_MAC 0
#define NET_CONFIG_STATUS 6
#define NET_CONFIG_MTU 10
#define NET_CONFIG_LEN 12
#define NET_F_MTU 3

uint64_t bridge_queue_num(const struct pdev *d) {
        if (d->virtio_id == BRIDGE_VIRTIO_ID_NET)
                return d->num_queues / 2;
        return d->num_queues;
}

bool bridge_rings_enabled_early(const struct pdev *d) {
        return d->virtio_id == BRIDGE_VIRTIO_ID_NET;
}

int bridge_net_describe(struct pdev *d) {
        uint8_t c[NET_CONFIG_LEN];
        int r;

        if (d->virtio_id != BRIDGE_VIRTIO_ID_NET)
                return 0;
        /* rx and tx: QEMU's vhost-net sets up exactly two rings per pair. */
        if (d->num_queues != 2)
                return log_error_errno(EPROTO, "Device %s: a virtio-net device with %u queues; the bridge serves one "
                                       "pair (rx, tx) and no control queue", d->path, d->num_queues);
        if (d->device_len < NET_CONFIG_STATUS + 2)
                return log_error_errno(EPROTO, "Device %s: virtio-net config of %u bytes, too short for mac and status",
                                       d->path, d->device_len);
        r = pdev_device_config_read(d, 0, sizeof(c), c);
        if (r < 0)
                return r;
        log_info("Device %s: virtio-net mac %02x:%02x:%02x:%02x:%02x:%02x status 0x%x mtu %u; QEMU's front-end "
                 "shows the guest its own -device mac=.",
                 d->path, c[NET_CONFIG_MAC], c[NET_CONFIG_MAC + 1], c[NET_CONFIG_MAC + 2], c[NET_CONFIG_MAC + 3],
                 c[NET_CONFIG_MAC + 4], c[NET_CONFIG_MAC + 5], c[NET_CONFIG_STATUS] | c[NET_CONFIG_STATUS + 1] << 8,
                 d->features & (UINT64_C(1) << NET_F_MTU) ? (unsigned) (c[NET_CONFIG_MTU] | c[NET_CONFIG_MTU + 1] << 8)
                                                          : 0u);
        return 0;
}
