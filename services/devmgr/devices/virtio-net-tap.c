/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening the tap, in devmgr before the fork: the device process lives in
 * a network namespace of its own and has no capabilities, so it could
 * neither see the host's tap nor attach to it. It only gets the fd. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "virtio-net.h"

#define TUN_PATH "/dev/net/tun"

/* Brings the interface we created up, with c's MTU: a tap that is down
 * refuses the guest's frames (EIO). */
static int tap_configure_created(const struct net_config *c, const char *name, char *err, size_t errlen) {
        _cleanup_close_ int s = -1;
        struct ifreq ifr = {};

        s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
                int e = errno;

                snprintf(err, errlen, "virtio-net.tap: cannot configure the new tap %s: %s", name, strerror(e));
                return -e;
        }
        memcpy(ifr.ifr_name, name, strlen(name) + 1);
        if (c->mtu) {
                ifr.ifr_mtu = c->mtu;
                if (ioctl(s, SIOCSIFMTU, &ifr) < 0) {
                        int e = errno;

                        snprintf(err, errlen, "virtio-net.mtu: cannot set MTU %u on the new tap %s: %s", c->mtu, name,
                                 strerror(e));
                        return -e;
                }
        }
        if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0 || (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0)) {
                int e = errno;

                snprintf(err, errlen, "virtio-net.tap: cannot bring the new tap %s up: %s", name, strerror(e));
                return -e;
        }
        return 0;
}

int net_tap_open(const struct net_config *c, int *ret_fd, char ret_name[IFNAMSIZ], char *err, size_t errlen) {
        _cleanup_close_ int fd = -1;
        struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
        bool create = c->tap[0] == 0;
        int hdr_len = VIRTIO_NET_HDR_LEN, le = 1, r;

        /* TUNSETIFF creates a tap that does not exist; asked for an
         * existing one, a typo must not become a new, unconnected one. */
        if (!create && if_nametoindex(c->tap) == 0) {
                snprintf(err, errlen,
                         "virtio-net.tap: no interface named %s (create it first, e.g. ip tuntap add dev %s mode tap, "
                         "or leave \"tap\" out to have one created)",
                         c->tap, c->tap);
                return -ENODEV;
        }

        fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
                int e = errno;

                snprintf(err, errlen, "virtio-net.tap: cannot open %s: %s%s", TUN_PATH, strerror(e),
                         e == ENOENT ? " (is the tun module loaded?)" : "");
                return -e;
        }
        memcpy(ifr.ifr_name, create ? NET_TAP_TEMPLATE : c->tap,
               strlen(create ? NET_TAP_TEMPLATE : c->tap) + 1);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
                int e = errno;

                if (create)
                        snprintf(err, errlen, "virtio-net.tap: cannot create a tap: %s%s", strerror(e),
                                 e == EPERM ? " (devmgr needs CAP_NET_ADMIN)" : "");
                else if (e == EBUSY)
                        snprintf(err, errlen, "virtio-net.tap: %s is busy: another process (another VM?) is attached to it",
                                 c->tap);
                else if (e == EPERM)
                        snprintf(err, errlen,
                                 "virtio-net.tap: not permitted to attach to %s (it belongs to another user or group; "
                                 "devmgr needs CAP_NET_ADMIN or to be its owner)",
                                 c->tap);
                else if (e == EINVAL)
                        snprintf(err, errlen,
                                 "virtio-net.tap: %s is not a tap interface (a tun, multi-queue tap or another kind of "
                                 "link?)",
                                 c->tap);
                else
                        snprintf(err, errlen, "virtio-net.tap: cannot attach to %s: %s", c->tap, strerror(e));
                return -e;
        }

        /* The virtio header is the tap's: 12 bytes (VERSION_1 has
         * num_buffers), little endian. No offloads: the kernel hands us
         * complete, checksummed frames and takes only those. */
        if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0 || ioctl(fd, TUNSETVNETLE, &le) < 0 ||
            ioctl(fd, TUNSETOFFLOAD, (unsigned long) 0) < 0) {
                int e = errno;

                snprintf(err, errlen, "virtio-net.tap: cannot set up the virtio header on %s: %s", ifr.ifr_name,
                         strerror(e));
                return -e;
        }
        if (create) {
                r = tap_configure_created(c, ifr.ifr_name, err, errlen);
                if (r < 0)
                        return r;
                log_info("virtio-net: created tap %s.", ifr.ifr_name);
        }
        memcpy(ret_name, ifr.ifr_name, IFNAMSIZ);
        ret_name[IFNAMSIZ - 1] = 0;
        *ret_fd = TAKE_FD(fd);
        return 0;
}
