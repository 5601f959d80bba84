/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The "virtio-net" device kind (virtio 1.2 5.1) with a tap backend: queue 0
 * receives, queue 1 transmits, no control queue. devmgr opens the tap in
 * create() (virtio-net-tap.c) and the jailed process keeps only its fd.
 *
 * TX: a kick sends every available chain to the tap (writev) and returns
 * it. A malformed chain is dropped and counted (tx_dropped); a frame the
 * tap refuses, EAGAIN included, is dropped and counted too (tx_errors):
 * Ethernet may lose frames, and retrying would need to hold the queue.
 * RX: the worker holds one popped rx chain and only then polls the tap
 * (event_fd), so with no buffers it sleeps instead of spinning; frames are
 * read straight into the chain (readv). The counters go to the log when
 * the device process ends. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "virtio-net.h"
#include "virtio-pci.h"

/* Frames moved per handle_event, so tx kicks are not kept waiting. */
#define NET_RX_BUDGET 64

struct virtio_net {
        struct net_config cfg;
        char tap_name[IFNAMSIZ];
        int tap_fd;
        uint8_t mac[6];
        uint32_t max_frame;    /* tx: 14 + 4 + (mtu or 1500) */
        uint32_t rx_max_frame; /* rx: the same with VIRTIO_NET_F_MTU negotiated, else 0 (any) */
        /* Device config; status changes (the tap went away) under the
         * transport lock. */
        uint8_t config[VIRTIO_NET_CONFIG_LEN];

        /* Worker state. */
        bool started;      /* DRIVER_OK was reached once: worth a log line */
        bool rx_held;      /* rx_chain is popped and waits for a frame */
        bool tap_dead;     /* reads failed for good: stop polling it */
        unsigned tx_logged; /* tx verdicts already logged, one bit each */
        struct net_stats st, logged; /* logged: as last written to the log */
        struct vq_chain rx_chain, tx_chain; /* 1024 segments: not on the stack */
        struct iovec iov[NET_IOV_MAX];
};

static void net_free(struct virtio_net *n) {
        if (!n)
                return;
        safe_close(n->tap_fd);
        free(n);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct virtio_net *, net_free);

static int net_create(json_object *config, void **ret_model, struct virtio_pci_info *info, char *err,
                      size_t errlen) {
        _cleanup_(net_freep) struct virtio_net *n = NULL;
        int r;

        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->tap_fd = -1;
        r = net_config_parse(config, &n->cfg, err, errlen);
        if (r < 0)
                return r;
        r = net_tap_open(&n->cfg, &n->tap_fd, n->tap_name, err, errlen);
        if (r < 0)
                return r;
        /* create() is not told the VM's name or the device's index, so the
         * default address hangs on the tap's name: stable for a named tap. */
        if (n->cfg.mac_set)
                memcpy(n->mac, n->cfg.mac, 6);
        else
                net_mac_derive(n->tap_name, 0, n->mac);
        n->max_frame = net_max_frame(&n->cfg);
        net_config_build(&n->cfg, n->mac, n->config);

        *info = (struct virtio_pci_info) {
                .device_id = VIRTIO_ID_NET,
                .pci_class = VIRTIO_PCI_CLASS_NETWORK,
                .num_queues = 2,
                .queue_max_size = n->cfg.queue_size,
                .features = VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |
                            (n->cfg.mtu ? VIRTIO_BIT(VIRTIO_NET_F_MTU) : 0),
                .config_len = VIRTIO_NET_CONFIG_LEN,
        };
        log_debug("virtio-net: tap %s, mac %02x:%02x:%02x:%02x:%02x:%02x, mtu %u, queues of %u", n->tap_name,
                  n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5], n->cfg.mtu ?: NET_MTU_DEFAULT,
                  n->cfg.queue_size);
        *ret_model = TAKE_PTR(n);
        return 0;
}

static void net_log_stats(struct virtio_net *n, const char *when, bool always) {
        const struct net_stats *s = &n->st;

        /* A driver resets twice in a row at start: one line is enough. */
        if (!always && memcmp(&n->st, &n->logged, sizeof(n->st)) == 0)
                return;
        n->logged = n->st;
        log_info("virtio-net %s %s: rx %" PRIu64 " packets %" PRIu64 " bytes %" PRIu64 " dropped %" PRIu64
                 " bad chains; tx %" PRIu64 " packets %" PRIu64 " bytes %" PRIu64 " dropped %" PRIu64 " errors.",
                 n->tap_name, when, s->rx_packets, s->rx_bytes, s->rx_dropped, s->rx_bad_chains, s->tx_packets,
                 s->tx_bytes, s->tx_dropped, s->tx_errors);
}

static void net_destroy(void *model) {
        struct virtio_net *n = model;

        /* devmgr's template copy never ran: only the device's own logs. */
        if (n && n->started)
                net_log_stats(n, "at exit", true);
        net_free(n);
}

static size_t net_owned_fds(void *model, int *ret[]) {
        struct virtio_net *n = model;

        ret[0] = &n->tap_fd;
        return 1;
}

static void net_config_read(struct virtio_pci *vp, uint32_t offset, uint32_t len, uint8_t *data) {
        struct virtio_net *n = virtio_pci_model(vp);

        /* The transport lock is held. */
        memcpy(data, n->config + offset, len);
}

static int net_driver_ok(struct virtio_pci *vp) {
        struct virtio_net *n = virtio_pci_model(vp);

        n->started = true;
        n->rx_held = false;
        n->rx_max_frame = virtio_pci_features(vp) & VIRTIO_BIT(VIRTIO_NET_F_MTU) ? n->max_frame : 0;
        return 0;
}

static void net_reset(struct virtio_pci *vp) {
        struct virtio_net *n = virtio_pci_model(vp);

        /* The worker is stopped; a held chain belonged to the old rings. */
        n->rx_held = false;
        if (n->started)
                net_log_stats(n, "at reset", false);
}

static void net_tx(struct virtio_pci *vp, struct virtio_net *n) {
        for (;;) {
                enum net_tx_verdict v;
                int r = virtio_pci_queue_pop(vp, VIRTIO_NET_TX_QUEUE, &n->tx_chain), e;

                if (r <= 0)
                        break;
                v = net_tx_send(n->tap_fd, &n->tx_chain, n->max_frame, n->iov, &n->st, &e);
                /* Guest-made: the first of each kind is worth a line, the
                 * rest only a count. */
                if (v != NET_TX_OK && !(n->tx_logged & (1u << v))) {
                        n->tx_logged |= 1u << v;
                        log_warning("virtio-net %s: dropped a tx chain: %s (further ones only counted).", n->tap_name,
                                    net_tx_verdict_string(v));
                } else if (e != 0 && n->st.tx_errors == 1)
                        log_warning_errno(e, "virtio-net %s: the tap refused a frame: %m (further ones only counted).",
                                          n->tap_name);
                if (virtio_pci_queue_push(vp, VIRTIO_NET_TX_QUEUE, n->tx_chain.head, 0) < 0)
                        break;
        }
        virtio_pci_queue_signal(vp, VIRTIO_NET_TX_QUEUE);
}

static void net_queue_notify(struct virtio_pci *vp, unsigned q) {
        struct virtio_net *n = virtio_pci_model(vp);

        /* New rx buffers need nothing here: the next worker turn takes one
         * in net_event_fd(). */
        if (q == VIRTIO_NET_TX_QUEUE)
                net_tx(vp, n);
}

/* Holds the next usable rx chain; returns whether one is held. Chains too
 * small for any frame go back empty (*pushed is then set). */
static bool rx_take(struct virtio_pci *vp, struct virtio_net *n, bool *pushed) {
        while (!n->rx_held) {
                if (virtio_pci_queue_pop(vp, VIRTIO_NET_RX_QUEUE, &n->rx_chain) <= 0)
                        return false;
                if (net_rx_chain_usable(&n->rx_chain)) {
                        n->rx_held = true;
                        break;
                }
                n->st.rx_bad_chains++;
                if (virtio_pci_queue_push(vp, VIRTIO_NET_RX_QUEUE, n->rx_chain.head, 0) < 0)
                        return false;
                *pushed = true;
        }
        return true;
}

static int net_event_fd(struct virtio_pci *vp) {
        struct virtio_net *n = virtio_pci_model(vp);
        bool pushed = false, held;

        if (n->tap_dead)
                return -1;
        held = rx_take(vp, n, &pushed);
        if (pushed)
                virtio_pci_queue_signal(vp, VIRTIO_NET_RX_QUEUE);
        return held ? n->tap_fd : -1;
}

/* The tap is gone (its interface deleted) or broken: tell the driver the
 * link is down and stop polling it, which would only spin. */
static void net_tap_failed(struct virtio_pci *vp, struct virtio_net *n, int e) {
        log_error_errno(e, "virtio-net %s: cannot read from the tap, link down: %m", n->tap_name);
        n->tap_dead = true;
        virtio_pci_lock(vp);
        n->config[6] &= (uint8_t) ~VIRTIO_NET_S_LINK_UP;
        virtio_pci_unlock(vp);
        virtio_pci_config_changed(vp);
}

static void net_handle_event(struct virtio_pci *vp) {
        struct virtio_net *n = virtio_pci_model(vp);
        bool pushed = false;

        for (unsigned i = 0; i < NET_RX_BUDGET && rx_take(vp, n, &pushed); i++) {
                uint32_t written;
                int r = net_rx_receive(n->tap_fd, &n->rx_chain, n->rx_max_frame, n->iov, &n->st, &written);

                if (r == 0)
                        break;
                if (r == -EMSGSIZE)
                        continue; /* dropped and counted; the chain waits for the next frame */
                if (r < 0) {
                        net_tap_failed(vp, n, r);
                        break;
                }
                n->rx_held = false;
                if (virtio_pci_queue_push(vp, VIRTIO_NET_RX_QUEUE, n->rx_chain.head, written) < 0)
                        break;
                pushed = true;
        }
        if (pushed)
                virtio_pci_queue_signal(vp, VIRTIO_NET_RX_QUEUE);
}

static const struct virtio_model virtio_net = {
        .name = "virtio-net",
        .rlimit_as = 0, /* it maps guest memory */
        /* Endpoint, report, stdio, the tap, guest memory, per queue an
         * ioeventfd, irqfds, the worker's eventfd. */
        .rlimit_nofile = 64,
        .create = net_create,
        .destroy = net_destroy,
        .owned_fds = net_owned_fds,
        .config_read = net_config_read,
        .driver_ok = net_driver_ok,
        .queue_notify = net_queue_notify,
        .event_fd = net_event_fd,
        .handle_event = net_handle_event,
        .reset = net_reset,
};
VIRTIO_PCI_REGISTER(virtio_net);
