/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "macro.h"
#include "proto.h"

/* What each type carries: the exact body length (or, for text, a bound)
 * and the exact number of fds. Anything else is malformed. */
struct proto_type_info {
        const char *name;
        size_t body_len;
        unsigned n_fds;
        bool text; /* body is 1..PROTO_TEXT_MAX bytes of text, body_len unused */
};

static const struct proto_type_info *proto_type_info(unsigned type) {
        static const struct proto_type_info requests[_PROTO_REQUEST_MAX] = {
                [PROTO_ACTIVATE] = { "Activate", 0, 0 },
                [PROTO_READ] = { "Read", sizeof(struct proto_access), 0 },
                [PROTO_WRITE] = { "Write", sizeof(struct proto_access), 0 },
                [PROTO_READ_CONFIG] = { "ReadConfig", sizeof(struct proto_u32), 0 },
                [PROTO_WRITE_CONFIG] = { "WriteConfig", sizeof(struct proto_config_write), 0 },
                [PROTO_INIT_PCI_CONFIG_MAPPING] = { "InitPciConfigMapping", sizeof(struct proto_pci_mapping), 1 },
                [PROTO_READ_VIRTUAL_CONFIG] = { "ReadVirtualConfig", sizeof(struct proto_u32), 0 },
                [PROTO_WRITE_VIRTUAL_CONFIG] = { "WriteVirtualConfig", sizeof(struct proto_u32), 0 },
                [PROTO_DESTROY_DEVICE] = { "DestroyDevice", 0, 0 },
                [PROTO_SHUTDOWN] = { "Shutdown", 0, 0 },
                [PROTO_GET_RANGES] = { "GetRanges", 0, 0 },
                [PROTO_SNAPSHOT] = { "Snapshot", 0, 0 },
                [PROTO_RESTORE] = { "Restore", 0, 0, true },
                [PROTO_SLEEP] = { "Sleep", 0, 0 },
                [PROTO_WAKE] = { "Wake", 0, 0 },
                [PROTO_ATTACH_FD] = { "AttachFd", sizeof(struct proto_attach_fd), 1 },
                [PROTO_GET_IOEVENTS] = { "GetIoevents", 0, 0 },
                [PROTO_GET_MSI_ROUTES] = { "GetMsiRoutes", 0, 0 },
        };
        static const struct proto_type_info replies[_PROTO_REPLY_MAX - PROTO_REPLY_OK] = {
                [PROTO_REPLY_OK - PROTO_REPLY_OK] = { "Ok", 0, 0 },
                [PROTO_REPLY_ERROR - PROTO_REPLY_OK] = { "Error", sizeof(struct proto_error), 0 },
                [PROTO_REPLY_DATA - PROTO_REPLY_OK] = { "Data", sizeof(struct proto_data), 0 },
                [PROTO_REPLY_U32 - PROTO_REPLY_OK] = { "U32", sizeof(struct proto_u32), 0 },
                [PROTO_REPLY_RANGES - PROTO_REPLY_OK] = { "Ranges", sizeof(struct proto_ranges), 0 },
                [PROTO_REPLY_CONFIG_WRITE - PROTO_REPLY_OK] = { "ConfigWrite", sizeof(struct proto_config_result), 0 },
                [PROTO_REPLY_BOOL - PROTO_REPLY_OK] = { "Bool", sizeof(struct proto_bool), 0 },
                [PROTO_REPLY_SNAPSHOT - PROTO_REPLY_OK] = { "Snapshot", 0, 0, true },
                [PROTO_REPLY_IOEVENTS - PROTO_REPLY_OK] = { "Ioevents", sizeof(struct proto_ioevents), 0 },
                [PROTO_REPLY_MSI_ROUTES - PROTO_REPLY_OK] = { "MsiRoutes", sizeof(struct proto_msi_routes), 0 },
        };

        if (type >= PROTO_ACTIVATE && type < _PROTO_REQUEST_MAX)
                return &requests[type];
        if (type >= PROTO_REPLY_OK && type < _PROTO_REPLY_MAX)
                return &replies[type - PROTO_REPLY_OK];
        return NULL;
}

const char *proto_type_to_string(unsigned type) {
        const struct proto_type_info *i = proto_type_info(type);
        return i ? i->name : "unknown";
}

unsigned proto_reply_type(unsigned request) {
        switch (request) {
        case PROTO_READ:
                return PROTO_REPLY_DATA;
        case PROTO_READ_CONFIG:
        case PROTO_READ_VIRTUAL_CONFIG:
                return PROTO_REPLY_U32;
        case PROTO_WRITE_CONFIG:
                return PROTO_REPLY_CONFIG_WRITE;
        case PROTO_INIT_PCI_CONFIG_MAPPING:
                return PROTO_REPLY_BOOL;
        case PROTO_GET_RANGES:
                return PROTO_REPLY_RANGES;
        case PROTO_SNAPSHOT:
                return PROTO_REPLY_SNAPSHOT;
        case PROTO_GET_IOEVENTS:
                return PROTO_REPLY_IOEVENTS;
        case PROTO_GET_MSI_ROUTES:
                return PROTO_REPLY_MSI_ROUTES;
        case PROTO_ACTIVATE:
        case PROTO_WRITE_VIRTUAL_CONFIG:
        case PROTO_SHUTDOWN:
        case PROTO_RESTORE:
        case PROTO_SLEEP:
        case PROTO_WAKE:
        case PROTO_ATTACH_FD:
                return PROTO_REPLY_OK;
        default: /* WRITE, DESTROY_DEVICE, replies, unknown */
                return 0;
        }
}

int proto_send(int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds) {
        struct proto_header hdr = {
                .magic = PROTO_MAGIC,
                .version = PROTO_VERSION,
                .type = type,
        };

        return proto_send_packet(sock, &hdr, body, len, fds, n_fds);
}

int proto_send_packet(int sock, const struct proto_header *header, const void *body, size_t len, const int *fds,
                      size_t n_fds) {
        struct proto_header hdr = *header;
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
        } control = {};
        struct iovec iov[2] = {
                { .iov_base = &hdr, .iov_len = sizeof(hdr) },
                { .iov_base = (void *) body, .iov_len = len },
        };
        struct msghdr mh = {
                .msg_iov = iov,
                .msg_iovlen = len > 0 ? 2 : 1,
        };
        ssize_t n;

        if (len > PROTO_TEXT_MAX || n_fds > PROTO_MAX_FDS || (len > 0 && !body))
                return -EINVAL;
        hdr.length = (uint32_t) len;

        if (n_fds > 0) {
                struct cmsghdr *c;

                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }

        do
                n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EPIPE ? -ECONNRESET : negative_errno();
        if ((size_t) n != sizeof(hdr) + len)
                return -EIO; /* SEQPACKET sends all or nothing; be safe anyway. */
        return 0;
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int proto_wait(int sock, int timeout_ms) {
        int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;

        for (;;) {
                struct pollfd p = { .fd = sock, .events = POLLIN };
                int left = -1, r;

                if (timeout_ms >= 0) {
                        int64_t d = deadline - now_ms();
                        left = d > 0 ? (int) d : 0;
                }
                r = poll(&p, 1, left);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (r == 0)
                        return -ETIMEDOUT;
                if (p.revents & POLLNVAL)
                        return -EBADF;
                /* POLLHUP with data still queued: read the data first; recvmsg
                 * returns 0 once it is drained. */
                return 0;
        }
}

static void close_fds(int *fds, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

static bool range_valid(const struct proto_range *r) {
        if (r->len == 0 || r->base + r->len < r->base)
                return false;
        switch (r->bus) {
        case PROTO_BUS_PIO:
                return r->base + r->len <= 0x10000;
        case PROTO_BUS_MMIO:
                return true;
        default:
                return false;
        }
}

static bool ranges_valid(const struct proto_range *r, uint32_t n, uint32_t max) {
        if (n > max)
                return false;
        for (uint32_t i = 0; i < n; i++)
                if (!range_valid(&r[i]))
                        return false;
        return true;
}

static bool ioevent_valid(const struct proto_ioevent *e) {
        struct proto_range r = {
                .base = e->address,
                .len = e->len == 0 ? 1 : e->len,
                .bus = e->bus,
        };

        if (e->len > 8 || (e->len & (e->len - 1)) != 0)
                return false;
        return range_valid(&r);
}

/* Range checks on bodies, so that no reader indexes past a buffer. */
static int proto_check_body(const struct proto_msg *m) {
        switch (m->hdr.type) {
        case PROTO_READ:
        case PROTO_WRITE:
                if (m->body.access.len < 1 || m->body.access.len > 8)
                        return -EBADMSG;
                break;
        case PROTO_WRITE_CONFIG: {
                const struct proto_config_write *w = &m->body.config_write;
                if (w->offset > 3 || w->len < 1 || w->len > 4 || w->offset + w->len > 4)
                        return -EBADMSG;
                break;
        }
        case PROTO_INIT_PCI_CONFIG_MAPPING: {
                const struct proto_pci_mapping *p = &m->body.pci_mapping;
                if (p->len == 0 || p->base + p->len < p->base)
                        return -EBADMSG;
                break;
        }
        case PROTO_REPLY_DATA:
                if (m->body.data.len < 1 || m->body.data.len > 8)
                        return -EBADMSG;
                break;
        case PROTO_REPLY_RANGES:
                if (!ranges_valid(m->body.ranges.ranges, m->body.ranges.count, PROTO_MAX_RANGES))
                        return -EBADMSG;
                break;
        case PROTO_REPLY_CONFIG_WRITE: {
                const struct proto_config_result *c = &m->body.config_result;
                /* Each list is typed by its place: no MMIO range among the I/O ones. */
                for (uint32_t i = 0; i < c->n_io_remove && i < PROTO_MAX_CONFIG_CHANGES; i++)
                        if (c->io_remove[i].bus != PROTO_BUS_PIO)
                                return -EBADMSG;
                for (uint32_t i = 0; i < c->n_io_add && i < PROTO_MAX_CONFIG_CHANGES; i++)
                        if (c->io_add[i].bus != PROTO_BUS_PIO)
                                return -EBADMSG;
                for (uint32_t i = 0; i < c->n_mmio_remove && i < PROTO_MAX_CONFIG_CHANGES; i++)
                        if (c->mmio_remove[i].bus != PROTO_BUS_MMIO)
                                return -EBADMSG;
                for (uint32_t i = 0; i < c->n_mmio_add && i < PROTO_MAX_CONFIG_CHANGES; i++)
                        if (c->mmio_add[i].bus != PROTO_BUS_MMIO)
                                return -EBADMSG;
                if (!ranges_valid(c->mmio_remove, c->n_mmio_remove, PROTO_MAX_CONFIG_CHANGES) ||
                    !ranges_valid(c->mmio_add, c->n_mmio_add, PROTO_MAX_CONFIG_CHANGES) ||
                    !ranges_valid(c->io_remove, c->n_io_remove, PROTO_MAX_CONFIG_CHANGES) ||
                    !ranges_valid(c->io_add, c->n_io_add, PROTO_MAX_CONFIG_CHANGES) ||
                    c->n_removed_pci > PROTO_MAX_CONFIG_CHANGES)
                        return -EBADMSG;
                for (uint32_t i = 0; i < c->n_removed_pci; i++)
                        if (c->removed_pci[i] > 0xffff)
                                return -EBADMSG;
                break;
        }
        case PROTO_REPLY_BOOL:
                if (m->body.boolean.value > 1)
                        return -EBADMSG;
                break;
        case PROTO_REPLY_IOEVENTS:
                if (m->body.ioevents.count > PROTO_MAX_IOEVENTS)
                        return -EBADMSG;
                for (uint32_t i = 0; i < m->body.ioevents.count; i++)
                        if (!ioevent_valid(&m->body.ioevents.ioevents[i]))
                                return -EBADMSG;
                break;
        case PROTO_REPLY_MSI_ROUTES:
                if (m->body.msi_routes.count > PROTO_MAX_MSI_ROUTES || m->body.msi_routes.enabled > 1)
                        return -EBADMSG;
                for (uint32_t i = 0; i < m->body.msi_routes.count; i++)
                        if (m->body.msi_routes.routes[i].masked > 1)
                                return -EBADMSG;
                break;
        case PROTO_REPLY_ERROR:
                if (!memchr(m->body.error.message, 0, sizeof(m->body.error.message)))
                        return -EBADMSG;
                break;
        }
        return 0;
}

static void proto_msg_init(struct proto_msg *m) {
        memset(&m->hdr, 0, sizeof(m->hdr));
        m->text = NULL;
        m->text_len = 0;
        m->n_fds = 0;
        for (unsigned i = 0; i < PROTO_MAX_FDS; i++)
                m->fds[i] = -1;
}

int proto_parse(const void *buf, size_t len, const int *fds, size_t n_fds, struct proto_msg *m) {
        const struct proto_type_info *info;
        const uint8_t *body;
        int r;

        /* Only the header and the fixed body are cleared: a memset of the
         * whole message would cost on every port access. */
        proto_msg_init(m);
        for (size_t i = 0; i < n_fds; i++) {
                if (m->n_fds < PROTO_MAX_FDS)
                        m->fds[m->n_fds++] = fds[i];
                else
                        safe_close(fds[i]);
        }

        r = -EBADMSG;
        if (len < sizeof(struct proto_header) || len > PROTO_PACKET_MAX || n_fds > PROTO_MAX_FDS)
                goto bad;
        memcpy(&m->hdr, buf, sizeof(m->hdr));
        if (m->hdr.magic != PROTO_MAGIC || m->hdr.version != PROTO_VERSION)
                goto bad;
        info = proto_type_info(m->hdr.type);
        if (!info)
                goto bad;
        if (m->hdr.length != len - sizeof(struct proto_header))
                goto bad;
        if (m->n_fds != info->n_fds)
                goto bad;
        body = (const uint8_t *) buf + sizeof(struct proto_header);

        if (info->text) {
                if (m->hdr.length < 1 || m->hdr.length > PROTO_TEXT_MAX || memchr(body, 0, m->hdr.length))
                        goto bad;
                m->text = malloc(m->hdr.length + 1);
                if (!m->text) {
                        r = -ENOMEM;
                        goto bad;
                }
                memcpy(m->text, body, m->hdr.length);
                m->text[m->hdr.length] = 0;
                m->text_len = m->hdr.length;
                return 0;
        }

        if (m->hdr.length != info->body_len)
                goto bad;
        memset(&m->body, 0, sizeof(m->body));
        memcpy(&m->body, body, m->hdr.length);
        r = proto_check_body(m);
        if (r < 0)
                goto bad;
        return 0;

bad:
        proto_msg_done(m);
        /* Nobody may mistake the rest of a rejected packet for a reply. */
        memset(&m->hdr, 0, sizeof(m->hdr));
        return r;
}

int proto_recv(int sock, struct proto_msg *m, int timeout_ms) {
        /* One byte more than the largest packet, so that an oversized one is
         * seen as such even where MSG_TRUNC is not reported. On the stack,
         * not cleared: the kernel touches only what the packet fills. */
        uint8_t buf[PROTO_PACKET_MAX + 1];
        int fds[PROTO_MAX_FDS + 1];
        size_t n_fds = 0;
        ssize_t n;

        proto_msg_init(m);
        n = proto_recv_packet(sock, buf, sizeof(buf), fds, &n_fds, timeout_ms);
        if (n < 0)
                return (int) n;
        return proto_parse(buf, (size_t) n, fds, n_fds, m);
}

ssize_t proto_recv_packet(int sock, void *buf, size_t size, int fds[PROTO_MAX_FDS + 1], size_t *ret_n_fds,
                          int timeout_ms) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof(control.buf),
        };
        size_t n_fds = 0;
        ssize_t n;
        int r;

        *ret_n_fds = 0;
        r = proto_wait(sock, timeout_ms);
        if (r < 0)
                return r;

        do
                n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                if (errno == EAGAIN)
                        return -ETIMEDOUT;
                return errno == ECONNRESET || errno == EPIPE ? -ECONNRESET : negative_errno();
        }

        /* Take every fd first, so that all leave paths close them. One more
         * than allowed is kept so that the parser sees too many. */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                size_t k;
                const uint8_t *p;

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                p = CMSG_DATA(c);
                for (size_t i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, p + i * sizeof(int), sizeof(int));
                        if (n_fds < PROTO_MAX_FDS + 1)
                                fds[n_fds++] = fd;
                        else
                                safe_close(fd);
                }
        }

        if (n == 0) {
                /* End of stream (a zero-length packet carries nothing we take). */
                close_fds(fds, (unsigned) n_fds);
                return -ECONNRESET;
        }
        if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
                close_fds(fds, (unsigned) n_fds);
                return -EBADMSG;
        }
        *ret_n_fds = n_fds;
        return n;
}

void proto_msg_done(struct proto_msg *m) {
        close_fds(m->fds, PROTO_MAX_FDS);
        m->n_fds = 0;
        free(m->text);
        m->text = NULL;
        m->text_len = 0;
}

int proto_reply_check(unsigned request, struct proto_msg *reply, char *errbuf, size_t errlen) {
        unsigned want = proto_reply_type(request);

        if (errbuf && errlen > 0)
                errbuf[0] = 0;
        if (reply->hdr.type == PROTO_REPLY_ERROR) {
                int e = reply->body.error.error;
                if (errbuf && errlen > 0)
                        snprintf(errbuf, errlen, "%s", reply->body.error.message);
                /* A peer's errno is input like any other: keep it in range. */
                return e > 0 && e < 4096 ? -e : -EIO;
        }
        if (want == 0 || reply->hdr.type != want) {
                if (errbuf && errlen > 0)
                        snprintf(errbuf, errlen, "%s reply to %s", proto_type_to_string(reply->hdr.type),
                                 proto_type_to_string(request));
                proto_msg_done(reply);
                return -EBADMSG;
        }
        return 0;
}

int proto_call(int sock, uint16_t type, const void *body, size_t len, const int *fds, size_t n_fds,
               struct proto_msg *reply, int timeout_ms, char *errbuf, size_t errlen) {
        struct proto_msg local;
        bool keep = reply;
        int r;

        if (!reply)
                reply = &local;
        proto_msg_init(reply);
        if (errbuf && errlen > 0)
                errbuf[0] = 0;

        r = proto_send(sock, type, body, len, fds, n_fds);
        if (r < 0)
                return r;
        if (type == PROTO_WRITE || type == PROTO_DESTROY_DEVICE)
                return 0;

        r = proto_recv(sock, reply, timeout_ms);
        if (r < 0)
                return r;
        r = proto_reply_check(type, reply, errbuf, errlen);
        if (!keep)
                proto_msg_done(reply);
        return r;
}

int proto_reply_error(int sock, int error, const char *fmt, ...) {
        struct proto_error e = { .error = error < 0 ? -error : error };
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(e.message, sizeof(e.message), fmt, ap);
        va_end(ap);
        return proto_send(sock, PROTO_REPLY_ERROR, &e, sizeof(e), NULL, 0);
}
