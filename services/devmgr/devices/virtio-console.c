/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The "virtio-console" device kind (virtio 1.2 5.3): one console port on
 * receiveq0 (0) and transmitq0 (1), no MULTIPORT, no SIZE, no
 * EMERG_WRITE. Its other end is the stream socket the launcher hands in as
 * PROTO_FD_CONSOLE (the VM's console, what OpenConsole clients see).
 *
 * TX: chains are written to the socket without blocking. When it is full
 * the device keeps the one chain it is sending (and takes no more, so the
 * guest's transmitq is the back-pressure) and goes on when the socket is
 * writable again: nothing is dropped, and at most one chain is held.
 * Without a console, output is discarded and counted.
 * RX: the worker holds one popped rx chain and only then polls the socket
 * for input, so with no buffers posted it sleeps and the input waits in the
 * socket. Each read fills (part of) one chain, which goes back at once.
 *
 * The worker polls only for POLLIN on a model's fd, so the model hands it
 * an epoll fd holding the socket with the directions it wants now (IN with
 * an rx chain held, OUT with tx waiting): the epoll fd is readable exactly
 * when one of them is ready.
 *
 * Chains in the wrong direction (5.3.6.1: the driver MUST NOT put a
 * device-writable buffer on a transmitq nor a device-readable one on a
 * receiveq) are skipped: returned with len 0, nothing sent or received,
 * counted; the queue goes on. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "virtio-pci.h"

#define CONSOLE_RX_QUEUE 0
#define CONSOLE_TX_QUEUE 1
#define CONSOLE_QUEUE_SIZE 128
/* struct virtio_console_config: cols, rows (u16), max_nr_ports, emerg_wr (u32). */
#define CONSOLE_CONFIG_LEN 12
#define CONSOLE_CONFIG_MAX_NR_PORTS 4
/* Work per worker turn, so a busy direction does not starve the other or
 * the queue kicks; what is left continues on the next turn. */
#define CONSOLE_TX_BUDGET (256u * 1024)
#define CONSOLE_TX_CHAINS 256
#define CONSOLE_RX_BUDGET 64 /* chains */

struct console_stats {
        uint64_t tx_bytes, tx_discarded, rx_bytes, bad_chains;
};

struct virtio_console {
        int console_fd; /* stream socket, -1 without one */
        int epoll_fd;   /* what the worker polls; made in the device process */
        int more_fd;    /* eventfd in epoll_fd, readable while tx_more */
        uint32_t ep_events; /* what epoll_fd watches console_fd for now */

        /* Worker state. */
        bool rx_held, tx_held;
        bool tx_more;       /* the budget ran out with chains still available */
        uint64_t tx_off;    /* bytes of tx_chain already sent */
        bool started, bad_logged;
        struct console_stats st, logged;
        struct vq_chain rx_chain, tx_chain; /* 1024 segments: not on the stack */
        struct iovec iov[VQ_CHAIN_MAX_SEGS];
};

static int console_create(json_object *config, void **ret_model, struct virtio_pci_info *info, char *err,
                          size_t errlen) {
        struct virtio_console *c;
        int r;

        r = json_parse_fields(config, "virtio-console", NULL, 0, err, errlen);
        if (r < 0)
                return r;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->console_fd = c->epoll_fd = c->more_fd = -1;
        *info = (struct virtio_pci_info) {
                .device_id = VIRTIO_ID_CONSOLE,
                .pci_class = VIRTIO_PCI_CLASS_COMMUNICATION,
                .num_queues = 2,
                .queue_max_size = CONSOLE_QUEUE_SIZE,
                .config_len = CONSOLE_CONFIG_LEN,
        };
        *ret_model = c;
        return 0;
}

static void console_log_stats(struct virtio_console *c, const char *when) {
        const struct console_stats *s = &c->st;

        /* A driver resets twice in a row at start: one line is enough. */
        if (memcmp(&c->st, &c->logged, sizeof(c->st)) == 0)
                return;
        c->logged = c->st;
        log_info("virtio-console %s: tx %" PRIu64 " bytes, %" PRIu64 " discarded (no console); rx %" PRIu64
                 " bytes; %" PRIu64 " chains in the wrong direction skipped.",
                 when, s->tx_bytes, s->tx_discarded, s->rx_bytes, s->bad_chains);
}

static void console_destroy(void *model) {
        struct virtio_console *c = model;

        if (!c)
                return;
        /* devmgr's template copy never ran: only the device's own logs. */
        if (c->started)
                console_log_stats(c, "at exit");
        safe_close(c->console_fd);
        safe_close(c->epoll_fd);
        safe_close(c->more_fd);
        free(c);
}

/* The worker is stopped (attach_fd, reset) or it is the worker itself. */
static void console_detach(struct virtio_console *c) {
        c->console_fd = safe_close(c->console_fd);
        c->ep_events = 0;
}

/* The epoll fd the worker polls and the eventfd that keeps it readable
 * while tx work is left over; made in the device process, once. */
static int console_epoll_setup(struct virtio_console *c) {
        struct epoll_event ev = { .events = EPOLLIN };

        if (c->epoll_fd >= 0)
                return 0;
        c->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (c->epoll_fd < 0)
                return -errno;
        c->more_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (c->more_fd < 0 || epoll_ctl(c->epoll_fd, EPOLL_CTL_ADD, c->more_fd, &ev) < 0) {
                int r = -errno;

                c->more_fd = safe_close(c->more_fd);
                c->epoll_fd = safe_close(c->epoll_fd);
                return r;
        }
        return 0;
}

static int console_attach_fd(struct virtio_pci *vp, uint32_t role, uint32_t arg, int fd, char *err,
                             size_t errlen) {
        struct virtio_console *c = virtio_pci_model(vp);
        struct epoll_event ev = {};
        int r;

        if (role != PROTO_FD_CONSOLE) {
                snprintf(err, errlen, "virtio-console takes no fd of role %u", role);
                return -EINVAL;
        }
        r = console_epoll_setup(c);
        if (r < 0) {
                snprintf(err, errlen, "cannot create an epoll fd: %s", strerror(-r));
                return r;
        }
        /* Watched for nothing yet: event_fd() says what, turn by turn. */
        if (epoll_ctl(c->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot watch the console socket: %s", strerror(-r));
                return r;
        }
        /* The worker is stopped: a second console replaces the first; a
         * chain half sent goes on to the new one. */
        console_detach(c);
        c->console_fd = fd;
        return 0;
}

static void console_config_read(struct virtio_pci *vp, uint32_t offset, uint32_t len, uint8_t *data) {
        uint8_t config[CONSOLE_CONFIG_LEN] = {};

        /* cols = rows = 0 (no SIZE); one port; emerg_wr reads 0. Fixed. */
        config[CONSOLE_CONFIG_MAX_NR_PORTS] = 1;
        memcpy(data, config + offset, len);
}

static int console_driver_ok(struct virtio_pci *vp) {
        struct virtio_console *c = virtio_pci_model(vp);

        c->started = true;
        return 0;
}

static void console_reset(struct virtio_pci *vp) {
        struct virtio_console *c = virtio_pci_model(vp);

        /* The worker is stopped; held chains belonged to the old rings. A
         * half-sent chain's rest is lost with them. */
        c->rx_held = c->tx_held = c->tx_more = false;
        c->tx_off = 0;
        if (c->started)
                console_log_stats(c, "at reset");
}

static void console_bad_chain(struct virtio_console *c, unsigned q) {
        c->st.bad_chains++;
        if (!c->bad_logged) {
                c->bad_logged = true;
                log_warning("virtio-console: skipped a %s chain with %s buffers (further ones only counted).",
                            q == CONSOLE_TX_QUEUE ? "transmitq" : "receiveq",
                            q == CONSOLE_TX_QUEUE ? "device-writable" : "device-readable");
        }
}

/* Sends what is left of the held tx chain: > 0 when it is all out, 0 when
 * the socket is full, < 0 when the console failed (it is then detached). */
static int tx_send(struct virtio_console *c, uint32_t *budget) {
        uint64_t skip = c->tx_off;
        unsigned n = 0;
        ssize_t k;

        for (unsigned i = 0; i < c->tx_chain.n_readable; i++) {
                const struct vq_seg *s = &c->tx_chain.segs[i];

                if (skip >= s->len) {
                        skip -= s->len;
                        continue;
                }
                c->iov[n++] = (struct iovec) { .iov_base = (uint8_t *) s->ptr + skip, .iov_len = s->len - skip };
                skip = 0;
        }
        if (n == 0)
                return 1;
        do
                k = sendmsg(c->console_fd, &(struct msghdr) { .msg_iov = c->iov, .msg_iovlen = n },
                            MSG_DONTWAIT | MSG_NOSIGNAL);
        while (k < 0 && errno == EINTR);
        if (k < 0) {
                if (errno == EAGAIN)
                        return 0;
                log_warning_errno(errno, "virtio-console: console write failed, detaching it: %m");
                console_detach(c);
                return -EPIPE;
        }
        c->tx_off += (uint64_t) k;
        c->st.tx_bytes += (uint64_t) k;
        *budget = (uint64_t) k >= *budget ? 0 : *budget - (uint32_t) k;
        return c->tx_off >= c->tx_chain.readable_bytes;
}

/* Moves transmitq0 chains to the console until the queue is empty, the
 * socket is full (the chain stays held) or the budget is spent. */
static void tx_run(struct virtio_pci *vp, struct virtio_console *c) {
        uint32_t budget = CONSOLE_TX_BUDGET, chains = CONSOLE_TX_CHAINS;
        bool pushed = false;

        c->tx_more = false;
        for (;;) {
                if (!c->tx_held) {
                        if (budget == 0 || chains-- == 0) {
                                /* The next worker turn goes on, after the kicks. */
                                c->tx_more = true;
                                break;
                        }
                        if (virtio_pci_queue_pop(vp, CONSOLE_TX_QUEUE, &c->tx_chain) <= 0)
                                break;
                        if (c->tx_chain.n_readable != c->tx_chain.n_segs) {
                                console_bad_chain(c, CONSOLE_TX_QUEUE);
                                if (virtio_pci_queue_push(vp, CONSOLE_TX_QUEUE, c->tx_chain.head, 0) < 0)
                                        break;
                                pushed = true;
                                continue;
                        }
                        c->tx_held = true;
                        c->tx_off = 0;
                }
                if (c->console_fd >= 0) {
                        int r = tx_send(c, &budget);

                        if (r == 0)
                                break; /* full: event_fd() waits for room */
                        if (r < 0)
                                continue; /* detached: the rest is discarded below */
                } else {
                        c->st.tx_discarded += c->tx_chain.readable_bytes - c->tx_off;
                        budget = c->tx_chain.readable_bytes >= budget ? 0 :
                                 budget - (uint32_t) c->tx_chain.readable_bytes;
                }
                c->tx_held = false;
                /* Nothing was written to the chain. */
                if (virtio_pci_queue_push(vp, CONSOLE_TX_QUEUE, c->tx_chain.head, 0) < 0)
                        break;
                pushed = true;
        }
        if (pushed)
                virtio_pci_queue_signal(vp, CONSOLE_TX_QUEUE);
}

/* Holds the next usable rx chain; returns whether one is held. Chains
 * with device-readable buffers go back empty (*pushed is then set). */
static bool rx_take(struct virtio_pci *vp, struct virtio_console *c, bool *pushed) {
        while (!c->rx_held) {
                if (virtio_pci_queue_pop(vp, CONSOLE_RX_QUEUE, &c->rx_chain) <= 0)
                        return false;
                if (c->rx_chain.n_readable == 0 && c->rx_chain.writable_bytes > 0) {
                        c->rx_held = true;
                        break;
                }
                console_bad_chain(c, CONSOLE_RX_QUEUE);
                if (virtio_pci_queue_push(vp, CONSOLE_RX_QUEUE, c->rx_chain.head, 0) < 0)
                        return false;
                *pushed = true;
        }
        return true;
}

/* Console input into held rx chains, one read per chain. */
static void rx_run(struct virtio_pci *vp, struct virtio_console *c) {
        bool pushed = false;

        for (unsigned i = 0; i < CONSOLE_RX_BUDGET && c->console_fd >= 0 && rx_take(vp, c, &pushed); i++) {
                struct vq_chain *ch = &c->rx_chain;
                unsigned n = 0;
                ssize_t k;

                for (unsigned s = ch->n_readable; s < ch->n_segs; s++)
                        c->iov[n++] = (struct iovec) { .iov_base = ch->segs[s].ptr, .iov_len = ch->segs[s].len };
                do
                        k = recvmsg(c->console_fd, &(struct msghdr) { .msg_iov = c->iov, .msg_iovlen = n },
                                    MSG_DONTWAIT);
                while (k < 0 && errno == EINTR);
                if (k < 0) {
                        if (errno != EAGAIN) {
                                log_warning_errno(errno, "virtio-console: console read failed, detaching it: %m");
                                console_detach(c);
                        }
                        break;
                }
                if (k == 0) {
                        log_info("virtio-console: console hung up.");
                        console_detach(c);
                        break;
                }
                c->st.rx_bytes += (uint64_t) k;
                c->rx_held = false;
                if (virtio_pci_queue_push(vp, CONSOLE_RX_QUEUE, ch->head, (uint32_t) k) < 0)
                        break;
                pushed = true;
        }
        if (pushed)
                virtio_pci_queue_signal(vp, CONSOLE_RX_QUEUE);
}

static void console_queue_notify(struct virtio_pci *vp, unsigned q) {
        struct virtio_console *c = virtio_pci_model(vp);

        /* New rx buffers need nothing here: the next worker turn takes one
         * in console_event_fd(). A held tx chain goes first; tx_run() does. */
        if (q == CONSOLE_TX_QUEUE)
                tx_run(vp, c);
}

static int console_event_fd(struct virtio_pci *vp) {
        struct virtio_console *c = virtio_pci_model(vp);
        bool pushed = false;
        uint32_t want = 0;

        if (console_epoll_setup(c) < 0) {
                virtio_pci_needs_reset(vp, "cannot create an epoll fd");
                return -1;
        }
        if (c->console_fd >= 0) {
                if (rx_take(vp, c, &pushed))
                        want |= EPOLLIN;
                if (pushed)
                        virtio_pci_queue_signal(vp, CONSOLE_RX_QUEUE);
                if (c->tx_held)
                        want |= EPOLLOUT;
                if (want != c->ep_events) {
                        struct epoll_event ev = { .events = want };

                        if (epoll_ctl(c->epoll_fd, EPOLL_CTL_MOD, c->console_fd, &ev) < 0) {
                                log_warning_errno(errno, "virtio-console: cannot watch the console, detaching it: %m");
                                console_detach(c);
                                want = 0;
                        } else
                                c->ep_events = want;
                }
        }
        if (c->tx_more) {
                uint64_t one = 1;

                /* Keeps the epoll fd readable until handle_event() drains it. */
                if (write(c->more_fd, &one, sizeof(one)) < 0)
                        log_warning_errno(errno, "virtio-console: cannot wake the worker: %m");
        }
        /* A hang-up makes the epoll fd readable even with want 0: only
         * hand it out when there is something to do. */
        return want != 0 || c->tx_more ? c->epoll_fd : -1;
}

static void console_handle_event(struct virtio_pci *vp) {
        struct virtio_console *c = virtio_pci_model(vp);
        uint64_t v;

        /* Both directions are tried: each returns at once (EAGAIN) if its
         * side is not ready, and a hang-up shows as a failed send or an
         * empty read, which detaches the console, so nothing spins. */
        (void) !read(c->more_fd, &v, sizeof(v)); /* nonblocking; set again while tx_more */
        if (c->tx_held || c->tx_more)
                tx_run(vp, c);
        if (c->rx_held)
                rx_run(vp, c);
}

static const struct virtio_model virtio_console = {
        .name = "virtio-console",
        .rlimit_as = 0, /* it maps guest memory */
        /* Endpoint, report, stdio, the console, its epoll fd, guest memory,
         * per queue an ioeventfd, irqfds, the worker's eventfd. */
        .rlimit_nofile = 64,
        .create = console_create,
        .destroy = console_destroy,
        .attach_fd = console_attach_fd,
        .config_read = console_config_read,
        .driver_ok = console_driver_ok,
        .queue_notify = console_queue_notify,
        .event_fd = console_event_fd,
        .handle_event = console_handle_event,
        .reset = console_reset,
};
VIRTIO_PCI_REGISTER(virtio_console);
