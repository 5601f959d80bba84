/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The "virtio-vsock" device kind (virtio 1.2 5.10): guest vsock streams
 * bridged to host AF_UNIX sockets, Firecracker's way (docs/devmgr.md).
 * devmgr binds and listens on uds_path in create(), before the fork; the
 * jailed process only has that listener (owned_fds). For guest-initiated
 * connections it cannot connect anywhere itself (empty root, own network
 * namespace): it asks devmgr over the report channel, which connects to
 * "<uds_path>_<port>" and sends the socket back (device-report.h). The
 * packet and connection logic is virtio-vsock-conn.c; this file is the
 * glue to the transport: queues in, queues out, one epoll fd as the
 * model's event fd. */
#include <errno.h>
#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "device-report.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "virtio-pci.h"
#include "virtio-vsock-conn.h"

#define VIRTIO_ID_VSOCK 19
#define VIRTIO_VSOCK_QUEUE_SIZE 256
#define VIRTIO_VSOCK_CONFIG_LEN 8 /* struct virtio_vsock_config: le64 guest_cid */
#define VIRTIO_VSOCK_BACKLOG 64
/* The longest port suffix devmgr appends for guest-initiated connections. */
#define VIRTIO_VSOCK_PORT_SUFFIX_MAX (sizeof("_4294967295") - 1)
/* Rx chains filled per worker turn, so one busy stream cannot hold it. */
#define VIRTIO_VSOCK_RX_BUDGET 4096

struct virtio_vsock {
        uint64_t cid;
        char *uds_path;
        int listen_fd;
        uint8_t config[VIRTIO_VSOCK_CONFIG_LEN];
        /* Made at the first DRIVER_OK, in the device process (its epoll fd
         * must be the jailed process's own). Worker thread from then on. */
        struct vsock_dev *dev;
        /* An rx chain popped but not filled yet (nothing to send then). */
        struct vq_chain rx_chain;
        bool rx_held;
        struct vq_chain tx_chain;
};

static void vsock_free(struct virtio_vsock *m) {
        if (!m)
                return;
        vsock_dev_free(m->dev);
        safe_close(m->listen_fd);
        free(m->uds_path);
        free(m);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct virtio_vsock *, vsock_free);

/* Whether something listens at path (a live socket must not be taken). */
static int socket_is_live(const char *path) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (fd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 || errno == EAGAIN)
                return 1;
        return errno == ECONNREFUSED ? 0 : -errno;
}

/* Binds and listens on path: a stale socket (nobody listening) is
 * replaced; any other file, or a live socket, is refused. */
static int listen_at(const char *path, int *ret, char *err, size_t errlen) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        int r;

        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode)) {
                        snprintf(err, errlen, "virtio-vsock.uds_path: %s exists and is not a socket", path);
                        return -EEXIST;
                }
                r = socket_is_live(path);
                if (r != 0) {
                        snprintf(err, errlen, "virtio-vsock.uds_path: %s %s", path,
                                 r > 0 ? "is in use: something listens on it" : "cannot be checked");
                        return r > 0 ? -EADDRINUSE : r;
                }
                if (unlink(path) < 0 && errno != ENOENT) {
                        r = -errno;
                        snprintf(err, errlen, "virtio-vsock.uds_path: cannot remove the stale socket %s: %s", path,
                                 strerror(errno));
                        return r;
                }
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, VIRTIO_VSOCK_BACKLOG) < 0) {
                r = -errno;
                snprintf(err, errlen, "virtio-vsock.uds_path: cannot listen on %s: %s", path, strerror(errno));
                return r;
        }
        *ret = TAKE_FD(fd);
        return 0;
}

static int vsock_create(json_object *config, void **ret_model, struct virtio_pci_info *info, char *err,
                        size_t errlen) {
        _cleanup_(vsock_freep) struct virtio_vsock *m = NULL;
        _cleanup_free_ char *uds_path = NULL;
        uint64_t cid = 0;
        const struct json_field fields[] = {
                { "cid", JSON_FIELD_UINT64, true, &cid, VSOCK_CID_MIN, VSOCK_CID_MAX },
                { "uds_path", JSON_FIELD_STRING, true, &uds_path },
        };
        json_object *v;
        int r;

        r = json_parse_fields(config, "virtio-vsock", fields, ELEMENTSOF(fields), err, errlen);
        if (r < 0)
                return r;
        if (json_object_object_get_ex(config, "uds_path", &v) &&
            (size_t) json_object_get_string_len(v) != strlen(uds_path)) {
                snprintf(err, errlen, "virtio-vsock.uds_path: must not contain a NUL character");
                return -EINVAL;
        }
        if (uds_path[0] != '/') {
                snprintf(err, errlen, "virtio-vsock.uds_path: \"%s\" is not an absolute path", uds_path);
                return -EINVAL;
        }
        if (strlen(uds_path) + VIRTIO_VSOCK_PORT_SUFFIX_MAX >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
                snprintf(err, errlen,
                         "virtio-vsock.uds_path: \"%s\" is too long: with \"_<port>\" it must fit a socket address (%zu bytes at most)",
                         uds_path, sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1 - VIRTIO_VSOCK_PORT_SUFFIX_MAX);
                return -EINVAL;
        }

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->listen_fd = -1;
        m->cid = cid;
        r = listen_at(uds_path, &m->listen_fd, err, errlen);
        if (r < 0)
                return r;
        m->uds_path = TAKE_PTR(uds_path);
        {
                uint64_t le = htole64(cid);
                memcpy(m->config, &le, sizeof(le));
        }
        *info = (struct virtio_pci_info) {
                .device_id = VIRTIO_ID_VSOCK,
                .pci_class = VIRTIO_PCI_CLASS_OTHER,
                .num_queues = 3,
                .queue_max_size = VIRTIO_VSOCK_QUEUE_SIZE,
                .features = VIRTIO_BIT(VSOCK_F_STREAM),
                .config_len = VIRTIO_VSOCK_CONFIG_LEN,
        };
        log_debug("virtio-vsock: CID %" PRIu64 ", listening on %s", cid, m->uds_path);
        *ret_model = TAKE_PTR(m);
        return 0;
}

static void vsock_destroy(void *model) {
        vsock_free(model);
}

static size_t vsock_owned_fds(void *model, int *ret[]) {
        struct virtio_vsock *m = model;

        ret[0] = &m->listen_fd;
        return 1;
}

static void vsock_config_read(struct virtio_pci *vp, uint32_t offset, uint32_t len, uint8_t *data) {
        struct virtio_vsock *m = virtio_pci_model(vp);

        /* Fixed for the device's life: no lock needed. */
        memcpy(data, m->config + offset, len);
}

/* ops->connect: devmgr connects for us (device-report.h). */
static int vsock_broker_connect(void *userdata, uint32_t port, uint64_t cookie) {
        int sock = device_report_own();

        (void) userdata;
        if (sock < 0)
                return -ENOTCONN;
        return device_report_send_connect(sock, cookie, port);
}

static int vsock_driver_ok(struct virtio_pci *vp) {
        struct virtio_vsock *m = virtio_pci_model(vp);
        const struct vsock_ops ops = { .connect = vsock_broker_connect, .userdata = m };
        int r;

        if (m->dev)
                return 0;
        r = vsock_dev_new(m->cid, m->listen_fd, &ops, &m->dev);
        if (r < 0)
                return log_error_errno(r, "virtio-vsock: cannot set up connections: %m");
        if (device_report_own() >= 0) {
                r = vsock_dev_watch_aux(m->dev, device_report_own());
                if (r < 0)
                        log_warning_errno(r, "virtio-vsock: cannot watch the report channel, guest connections will fail: %m");
        }
        return 0;
}

/* Fills rx chains while there is something for the guest. */
static void vsock_service_rx(struct virtio_pci *vp) {
        struct virtio_vsock *m = virtio_pci_model(vp);
        bool pushed = false;

        for (unsigned i = 0; i < VIRTIO_VSOCK_RX_BUDGET; i++) {
                uint32_t written;

                if (!m->rx_held) {
                        if (virtio_pci_queue_pop(vp, VSOCK_QUEUE_RX, &m->rx_chain) <= 0)
                                break;
                        m->rx_held = true;
                }
                if (vsock_dev_rx(m->dev, &m->rx_chain, &written) == 0)
                        break;
                m->rx_held = false;
                if (virtio_pci_queue_push(vp, VSOCK_QUEUE_RX, m->rx_chain.head, written) < 0)
                        break;
                pushed = true;
        }
        if (pushed)
                virtio_pci_queue_signal(vp, VSOCK_QUEUE_RX);
}

static void vsock_service_tx(struct virtio_pci *vp) {
        struct virtio_vsock *m = virtio_pci_model(vp);
        unsigned n = 0;

        while (virtio_pci_queue_pop(vp, VSOCK_QUEUE_TX, &m->tx_chain) > 0) {
                vsock_dev_tx(m->dev, &m->tx_chain);
                if (virtio_pci_queue_push(vp, VSOCK_QUEUE_TX, m->tx_chain.head, 0) < 0)
                        break;
                /* Answers (RST, RESPONSE, credit) go out as we go, so the
                 * bounded RST queue does not overflow on a burst. */
                if (++n % 16 == 0)
                        vsock_service_rx(vp);
        }
        virtio_pci_queue_signal(vp, VSOCK_QUEUE_TX);
}

static void vsock_queue_notify(struct virtio_pci *vp, unsigned q) {
        struct virtio_vsock *m = virtio_pci_model(vp);

        if (!m->dev)
                return;
        if (q == VSOCK_QUEUE_TX)
                vsock_service_tx(vp);
        /* The event queue's buffers stay with us: we never send an event
         * (TRANSPORT_RESET is for migration). */
        vsock_service_rx(vp);
}

static int vsock_event_fd(struct virtio_pci *vp) {
        struct virtio_vsock *m = virtio_pci_model(vp);

        return m->dev ? vsock_dev_epoll_fd(m->dev) : -1;
}

/* devmgr's answers to our connect requests. */
static void vsock_drain_reports(struct virtio_vsock *m) {
        for (unsigned i = 0; i < 256; i++) {
                struct device_report_msg msg;
                int r = device_report_receive(device_report_own(), &msg);

                if (r == -EBADMSG)
                        continue;
                if (r < 0)
                        return; /* EAGAIN; or devmgr is gone, and so are we soon */
                if (msg.type != DEVICE_REPORT_CONNECTED) {
                        safe_close(msg.fd);
                        continue;
                }
                vsock_dev_connect_done(m->dev, msg.cookie, msg.fd >= 0 ? msg.fd : -(msg.error > 0 ? msg.error : EIO));
        }
}

static void vsock_handle_event(struct virtio_pci *vp) {
        struct virtio_vsock *m = virtio_pci_model(vp);

        if (vsock_dev_poll(m->dev))
                vsock_drain_reports(m);
        vsock_service_rx(vp);
}

static void vsock_reset(struct virtio_pci *vp) {
        struct virtio_vsock *m = virtio_pci_model(vp);

        /* The queues are forgotten: so is a chain we held. */
        m->rx_held = false;
        if (m->dev)
                vsock_dev_reset(m->dev);
}

static const struct virtio_model virtio_vsock = {
        .name = "virtio-vsock",
        .rlimit_as = 0, /* it maps guest memory */
        /* Endpoint, report, stdio, listener, epoll, guest memory, an
         * ioeventfd and an irqfd per queue, and a socket per connection. */
        .rlimit_nofile = 32 + VSOCK_MAX_CONNS,
        .create = vsock_create,
        .destroy = vsock_destroy,
        .owned_fds = vsock_owned_fds,
        .config_read = vsock_config_read,
        .driver_ok = vsock_driver_ok,
        .queue_notify = vsock_queue_notify,
        .event_fd = vsock_event_fd,
        .handle_event = vsock_handle_event,
        .reset = vsock_reset,
};

/* VIRTIO_PCI_REGISTER() plus connect_prefix: devmgr connects to
 * "<uds_path>_<port>" for this kind only. */
static struct device_kind virtio_vsock_kind;

static int virtio_vsock_kind_create(json_object *config, void **ret, char *err, size_t errlen) {
        return virtio_pci_kind_create(&virtio_vsock, config, ret, err, errlen);
}

static const char *virtio_vsock_connect_prefix(void *dev) {
        struct virtio_vsock *m = virtio_pci_model(dev);

        return m ? m->uds_path : NULL;
}

static void __attribute__((constructor)) register_virtio_vsock(void) {
        virtio_pci_kind_init(&virtio_vsock_kind, &virtio_vsock, virtio_vsock_kind_create);
        virtio_vsock_kind.connect_prefix = virtio_vsock_connect_prefix;
        device_kind_register(&virtio_vsock_kind);
}
