/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polyvm-vhost-user-bridge: a vhost-user back-end that hands what QEMU
 * gives it to a real, jailed polyvm device process, so that a guest under
 * QEMU (TCG: no /dev/kvm needed) drives polyvm's device models end to end.
 *
 * A vhost-user back-end gets exactly what polyvm's launcher gives a device:
 * the guest memory fd (SET_MEM_TABLE -> AttachFd MEMORY), an eventfd per
 * queue that the guest's notify write signals (SET_VRING_KICK -> AttachFd
 * IOEVENT, KVM's ioeventfd there) and one that becomes the guest's
 * interrupt (SET_VRING_CALL -> AttachFd IRQ, KVM's irqfd there). The
 * bridge plays the launcher and the guest's virtio driver towards the
 * device over its endpoint (BAR0 placement, common cfg, MSI-X) and never
 * touches a ring: every buffer the guest gets back was filled by the
 * device process. One QEMU connection per run; the bridge exits 0 when
 * QEMU closes it, non-zero on anything malformed or unsupported. */

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bridge-net.h"
#include "bus-util.h"
#include "guest-ram.h"
#include "log.h"
#include "macro.h"
#include "polyvm-device.h"
#include "vhost-user.h"

#define STATUS_ACK 0x01
#define STATUS_DRIVER 0x02
#define STATUS_DRIVER_OK 0x04
#define STATUS_FEATURES_OK 0x08
#define STATUS_NEEDS_RESET 0x40
#define STATUS_FAILED 0x80

#define F_PROTOCOL_FEATURES (UINT64_C(1) << VHOST_USER_F_PROTOCOL_FEATURES)

/* QEMU sends a ring's size, addresses and kick fd at every start: a
 * start waits for all three anew, never for what an old one left. */
#define FRESH_NUM 0x1u
#define FRESH_ADDR 0x2u
#define FRESH_KICK 0x4u
#define FRESH_ALL (FRESH_NUM | FRESH_ADDR | FRESH_KICK)

struct vring {
        bool has_num, has_addr, enabled;
        unsigned fresh;             /* FRESH_*: what QEMU sent since the last stop */
        uint32_t num;
        uint64_t desc, avail, used; /* guest physical */
        int kick_fd, call_fd;       /* our copies; the device has its own */
};

struct bridge {
        struct pdev dev;
        int conn;
        uint64_t acked_features;    /* from SET_FEATURES, bit 30 included */
        uint64_t protocol_features; /* from SET_PROTOCOL_FEATURES */
        bool protocol_set;          /* SET_PROTOCOL_FEATURES came */
        bool features_ok;           /* the device has FEATURES_OK */
        bool running;               /* the device has DRIVER_OK */
        bool device_failed;         /* it said DEVICE_NEEDS_RESET */
        unsigned starts;

        struct vhost_user_region regions[VHOST_USER_MAX_REGIONS];
        unsigned n_regions;
        int memfd; /* the one QEMU memory file the device mapped */
        dev_t mem_dev;
        ino_t mem_ino;
        uint64_t mem_size;
        const uint8_t *ram; /* read-only view: used indices for the log */

        int sink_fd; /* interrupts of a queue QEMU gave no call fd */
        struct vring vrings[PDEV_MAX_QUEUES];
};

/* CONFIG only for a device with a device cfg that QEMU's front-end asks
 * the back-end for (QEMU warns about it where its front-end has no config
 * ops, as vhost-user-rng, or keeps the config itself, as virtio-net). */
static uint64_t protocol_offered(const struct bridge *b) {
        bool config = b->dev.device_len > 0 && b->dev.virtio_id != BRIDGE_VIRTIO_ID_NET;

        return (UINT64_C(1) << VHOST_USER_PROTOCOL_F_MQ) | (UINT64_C(1) << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
               (config ? UINT64_C(1) << VHOST_USER_PROTOCOL_F_CONFIG : 0);
}

/* Bit 30 acked, or protocol features set: QEMU's virtio-net enables its
 * rings (SET_VRING_ENABLE) at realize, before its first SET_FEATURES,
 * once GET_FEATURES offered bit 30 and protocol features were set. */
static bool protocol_negotiated(const struct bridge *b) {
        return (b->acked_features & F_PROTOCOL_FEATURES) || b->protocol_set;
}

static int bad_size(const struct vhost_user_msg *m, size_t want) {
        return log_error_errno(EBADMSG, "vhost-user: %s with a %u-byte payload, expected %zu",
                               vhost_user_request_to_string(m->hdr.request), m->hdr.size, want);
}

static int vring_index(struct bridge *b, const struct vhost_user_msg *m, uint32_t index) {
        if (index >= b->dev.num_queues)
                return log_error_errno(EINVAL, "vhost-user: %s for vring %u; the device has %u queue(s)",
                                       vhost_user_request_to_string(m->hdr.request), index, b->dev.num_queues);
        return 0;
}

/* The used index the device last published for queue q, from guest RAM;
 * -1 if the ring or the memory is not known. */
static int used_idx(struct bridge *b, unsigned q) {
        const struct vring *v = &b->vrings[q];
        const uint8_t *p;

        if (!b->ram || !v->has_addr)
                return -1;
        p = guest_ram_ptr((void *) b->ram, b->mem_size, v->used + 2, 2);
        if (!p)
                return -1;
        return __atomic_load_n((const uint16_t *) p, __ATOMIC_ACQUIRE);
}

/* Reset the device (status 0): its worker stops and it forgets the
 * queues; QEMU sends everything again at the next start. */
static int stop_device(struct bridge *b, const char *why) {
        int r;

        if (!b->running && !b->features_ok)
                return 0;
        r = pdev_common_write(&b->dev, PDEV_CC_STATUS, 1, 0);
        if (r < 0)
                return r;
        if (pdev_status(&b->dev) != 0)
                return log_error_errno(EPROTO, "Device %s: status reads 0x%02x after a reset, not 0", b->dev.path,
                                       pdev_status(&b->dev));
        for (unsigned q = 0; q < b->dev.num_queues; q++) {
                struct vring *v = &b->vrings[q];

                if (b->running && v->has_addr)
                        log_info("Queue %u stopped (%s): used idx %d.", q, why, used_idx(b, q));
                v->fresh = 0;
                if (!bridge_rings_enabled_early(&b->dev))
                        v->enabled = false;
        }
        b->running = b->features_ok = false;
        return 0;
}

/* 3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, and check
 * that the device kept FEATURES_OK. */
static int negotiate(struct bridge *b, uint64_t features) {
        uint64_t f = features & ~F_PROTOCOL_FEATURES, v;
        uint8_t status;
        int r;

        if (f & ~b->dev.features)
                return log_error_errno(EINVAL,
                                       "vhost-user: SET_FEATURES 0x%llx has bits 0x%llx the device did not offer "
                                       "(it offers 0x%llx)",
                                       (unsigned long long) features, (unsigned long long) (f & ~b->dev.features),
                                       (unsigned long long) b->dev.features);
        r = stop_device(b, "new features");
        if (r < 0)
                return r;
        if ((r = pdev_common_write(&b->dev, PDEV_CC_STATUS, 1, 0)) < 0 ||
            (r = pdev_common_write(&b->dev, PDEV_CC_STATUS, 1, STATUS_ACK)) < 0 ||
            (r = pdev_common_write(&b->dev, PDEV_CC_STATUS, 1, STATUS_ACK | STATUS_DRIVER)) < 0 ||
            (r = pdev_common_write(&b->dev, PDEV_CC_GFSELECT, 4, 0)) < 0 ||
            (r = pdev_common_write(&b->dev, PDEV_CC_GF, 4, (uint32_t) f)) < 0 ||
            (r = pdev_common_write(&b->dev, PDEV_CC_GFSELECT, 4, 1)) < 0 ||
            (r = pdev_common_write(&b->dev, PDEV_CC_GF, 4, (uint32_t) (f >> 32))) < 0 ||
            (r = pdev_common_write(&b->dev, PDEV_CC_STATUS, 1, STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK)) < 0)
                return r;
        status = pdev_status(&b->dev);
        if (!(status & STATUS_FEATURES_OK) || (status & (STATUS_NEEDS_RESET | STATUS_FAILED)))
                return log_error_errno(EPROTO, "Device %s refused features 0x%llx: status 0x%02x after FEATURES_OK",
                                       b->dev.path, (unsigned long long) f, status);
        /* The config interrupt on vector 0, ours (NEEDS_RESET is logged). */
        if ((r = pdev_common_write(&b->dev, PDEV_CC_MSIX, 2, 0)) < 0 ||
            (r = pdev_common_read(&b->dev, PDEV_CC_MSIX, 2, &v)) < 0)
                return r;
        if (v != 0)
                log_warning("Device %s: config_msix_vector reads 0x%llx after writing 0", b->dev.path,
                            (unsigned long long) v);
        b->acked_features = features;
        b->features_ok = true;
        for (unsigned q = 0; q < b->dev.num_queues; q++) {
                b->vrings[q].fresh = 0;
                if (!bridge_rings_enabled_early(&b->dev))
                        b->vrings[q].enabled = false;
        }
        log_info("Device %s: features 0x%llx accepted (FEATURES_OK).", b->dev.path, (unsigned long long) f);
        return 0;
}

/* DRIVER_OK once every ring QEMU set up is complete: size, addresses and
 * kick fd sent for this start, a call fd, and enabled. Most front-ends
 * enable their rings right after they set up all of them; QEMU's
 * vhost-net enabled them before the start, so there every ring is waited
 * for (bridge-net.h). */
static int maybe_start(struct bridge *b) {
        bool all = bridge_rings_enabled_early(&b->dev);
        unsigned configured = 0;
        uint8_t status;
        int r;

        if (b->running || !b->features_ok || b->memfd < 0)
                return 0;
        for (unsigned q = 0; q < b->dev.num_queues; q++) {
                const struct vring *v = &b->vrings[q];
                bool enabled = v->enabled || !protocol_negotiated(b);

                if (!all && v->fresh == 0)
                        continue;
                if (v->fresh != FRESH_ALL || v->call_fd < 0 || !enabled)
                        return 0;
                configured++;
        }
        if (configured == 0)
                return 0;

        for (unsigned q = 0; q < b->dev.num_queues; q++) {
                const struct vring *v = &b->vrings[q];
                uint64_t vector, enabled;

                if (v->fresh == 0)
                        continue;
                if ((r = pdev_common_write(&b->dev, PDEV_CC_Q_SELECT, 2, q)) < 0 ||
                    (r = pdev_common_write(&b->dev, PDEV_CC_Q_SIZE, 2, v->num)) < 0 ||
                    (r = pdev_common_write(&b->dev, PDEV_CC_Q_MSIX, 2, q + 1)) < 0 ||
                    (r = pdev_common_read(&b->dev, PDEV_CC_Q_MSIX, 2, &vector)) < 0)
                        return r;
                if (vector != q + 1)
                        return log_error_errno(EPROTO, "Device %s: queue %u's MSI-X vector reads 0x%llx after writing %u",
                                               b->dev.path, q, (unsigned long long) vector, q + 1);
                if ((r = pdev_common_write(&b->dev, PDEV_CC_Q_DESC, 8, v->desc)) < 0 ||
                    (r = pdev_common_write(&b->dev, PDEV_CC_Q_DRIVER, 8, v->avail)) < 0 ||
                    (r = pdev_common_write(&b->dev, PDEV_CC_Q_DEVICE, 8, v->used)) < 0 ||
                    (r = pdev_common_write(&b->dev, PDEV_CC_Q_ENABLE, 2, 1)) < 0 ||
                    (r = pdev_common_read(&b->dev, PDEV_CC_Q_ENABLE, 2, &enabled)) < 0)
                        return r;
                if (enabled != 1)
                        return log_error_errno(EPROTO, "Device %s: queue %u does not read enabled after queue_enable=1",
                                               b->dev.path, q);
                log_debug("Queue %u: size %u desc 0x%llx avail 0x%llx used 0x%llx vector %u", q, v->num,
                          (unsigned long long) v->desc, (unsigned long long) v->avail, (unsigned long long) v->used,
                          q + 1);
        }
        r = pdev_common_write(&b->dev, PDEV_CC_STATUS, 1,
                              STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
        if (r < 0)
                return r;
        status = pdev_status(&b->dev);
        if (!(status & STATUS_DRIVER_OK) || (status & (STATUS_NEEDS_RESET | STATUS_FAILED)))
                return log_error_errno(EPROTO, "Device %s did not start: status 0x%02x after DRIVER_OK (see devmgr's log)",
                                       b->dev.path, status);
        b->running = true;
        b->starts++;
        log_info("Device %s started (DRIVER_OK, start %u): %u queue(s).", b->dev.path, b->starts, configured);
        return 0;
}

static int region_of_user_addr(struct bridge *b, uint64_t uva, uint64_t len, uint64_t *ret_gpa) {
        for (unsigned i = 0; i < b->n_regions; i++) {
                const struct vhost_user_region *g = &b->regions[i];

                if (uva >= g->user_addr && uva - g->user_addr < g->size && len <= g->size - (uva - g->user_addr)) {
                        *ret_gpa = g->guest_addr + (uva - g->user_addr);
                        return 0;
                }
        }
        return -EFAULT;
}

static int handle_set_mem_table(struct bridge *b, struct vhost_user_msg *m) {
        const struct vhost_user_memory *mem = &m->body.memory;
        struct stat st0 = {};
        int r;

        if (m->hdr.size < 8)
                return bad_size(m, 8);
        if (mem->n_regions < 1 || mem->n_regions > VHOST_USER_MAX_REGIONS)
                return log_error_errno(EBADMSG, "vhost-user: SET_MEM_TABLE with %u regions (1..%d)", mem->n_regions,
                                       VHOST_USER_MAX_REGIONS);
        if (m->hdr.size != 8 + mem->n_regions * sizeof(struct vhost_user_region))
                return bad_size(m, 8 + mem->n_regions * sizeof(struct vhost_user_region));
        if (m->n_fds != mem->n_regions)
                return log_error_errno(EBADMSG, "vhost-user: SET_MEM_TABLE with %u regions and %u fds", mem->n_regions,
                                       m->n_fds);

        for (unsigned i = 0; i < mem->n_regions; i++) {
                const struct vhost_user_region *g = &mem->regions[i];
                struct stat st;
                uint64_t off;

                if (fstat(m->fds[i], &st) < 0)
                        return log_error_errno(errno, "Failed to stat the fd of memory region %u: %m", i);
                log_debug("  region %u: guest 0x%llx size 0x%llx user 0x%llx offset 0x%llx (file of %lld bytes)", i,
                          (unsigned long long) g->guest_addr, (unsigned long long) g->size,
                          (unsigned long long) g->user_addr, (unsigned long long) g->mmap_offset,
                          (long long) st.st_size);
                if (i == 0)
                        st0 = st;
                else if (st.st_dev != st0.st_dev || st.st_ino != st0.st_ino)
                        return log_error_errno(EINVAL,
                                               "vhost-user: memory region %u is another file than region 0; a polyvm "
                                               "device maps one guest memory file (use one memory-backend-memfd)",
                                               i);
                if (!S_ISREG(st.st_mode))
                        return log_error_errno(EINVAL, "vhost-user: memory region %u is no regular file (memfd)", i);
                r = guest_ram_offset(g->guest_addr, g->size, (uint64_t) st.st_size, &off);
                if (r < 0)
                        return log_error_errno(EINVAL,
                                               "vhost-user: memory region %u (guest 0x%llx size 0x%llx) is at file "
                                               "offset 0x%llx, but polyvm's layout (lib/guest-ram.h) has no room for "
                                               "it in a %lld-byte file; give the guest at most 2 GiB of RAM",
                                               i, (unsigned long long) g->guest_addr, (unsigned long long) g->size,
                                               (unsigned long long) g->mmap_offset, (long long) st.st_size);
                if (off != g->mmap_offset)
                        return log_error_errno(EINVAL,
                                               "vhost-user: memory region %u (guest 0x%llx size 0x%llx) is at file "
                                               "offset 0x%llx, but polyvm's layout (lib/guest-ram.h) has it at 0x%llx; "
                                               "give the guest at most 2 GiB of RAM",
                                               i, (unsigned long long) g->guest_addr, (unsigned long long) g->size,
                                               (unsigned long long) g->mmap_offset, (unsigned long long) off);
        }

        if (b->memfd < 0) {
                void *p;

                b->mem_size = (uint64_t) st0.st_size;
                p = mmap(NULL, b->mem_size, PROT_READ, MAP_SHARED, m->fds[0], 0);
                if (p == MAP_FAILED)
                        return log_error_errno(errno, "Failed to map guest memory read-only: %m");
                b->ram = p;
                b->memfd = TAKE_FD(m->fds[0]);
                b->mem_dev = st0.st_dev;
                b->mem_ino = st0.st_ino;
                r = pdev_attach(&b->dev, PROTO_FD_MEMORY, 0, b->memfd);
                if (r < 0)
                        return r;
                log_info("Guest memory (%llu MiB memfd) attached to device %s.",
                         (unsigned long long) (b->mem_size >> 20), b->dev.path);
        } else if (st0.st_dev != b->mem_dev || st0.st_ino != b->mem_ino || (uint64_t) st0.st_size != b->mem_size)
                return log_error_errno(EINVAL, "vhost-user: SET_MEM_TABLE names another memory file than before; a "
                                       "polyvm device maps guest memory once");

        memcpy(b->regions, mem->regions, mem->n_regions * sizeof(struct vhost_user_region));
        b->n_regions = mem->n_regions;
        return 0;
}

static int handle_set_vring_addr(struct bridge *b, const struct vhost_user_msg *m) {
        const struct vhost_user_vring_addr *a = &m->body.addr;
        uint64_t num, desc, avail, used;
        struct vring *v;
        int r;

        if (m->hdr.size != sizeof(*a))
                return bad_size(m, sizeof(*a));
        if ((r = vring_index(b, m, a->index)) < 0)
                return r;
        if (a->flags & VHOST_VRING_F_LOG)
                return log_error_errno(EOPNOTSUPP, "vhost-user: vring %u asks for used-ring logging (migration), "
                                       "which the bridge does not do", a->index);
        if (b->n_regions == 0)
                return log_error_errno(EPROTO, "vhost-user: SET_VRING_ADDR before SET_MEM_TABLE");
        v = &b->vrings[a->index];
        num = v->has_num ? v->num : 1;
        if (region_of_user_addr(b, a->desc, 16 * num, &desc) < 0 ||
            region_of_user_addr(b, a->avail, 6 + 2 * num, &avail) < 0 ||
            region_of_user_addr(b, a->used, 6 + 8 * num, &used) < 0)
                return log_error_errno(EFAULT,
                                       "vhost-user: vring %u (desc 0x%llx avail 0x%llx used 0x%llx, QEMU addresses) "
                                       "is not inside the memory table",
                                       a->index, (unsigned long long) a->desc, (unsigned long long) a->avail,
                                       (unsigned long long) a->used);
        if (b->running && (desc != v->desc || avail != v->avail || used != v->used))
                return log_error_errno(EBUSY, "vhost-user: vring %u moved while the device runs", a->index);
        v->desc = desc;
        v->avail = avail;
        v->used = used;
        v->has_addr = true;
        v->fresh |= FRESH_ADDR;
        log_debug("  vring %u: desc 0x%llx avail 0x%llx used 0x%llx (guest physical)", a->index,
                  (unsigned long long) desc, (unsigned long long) avail, (unsigned long long) used);
        return maybe_start(b);
}

/* SET_VRING_KICK, _CALL, _ERR: the index in bits 0-7, bit 8 for no fd. */
static int vring_fd_payload(struct bridge *b, const struct vhost_user_msg *m, unsigned *ret_index, bool *ret_nofd) {
        int r;

        if (m->hdr.size != 8)
                return bad_size(m, 8);
        if (m->body.u64 & ~(uint64_t) (VHOST_USER_VRING_INDEX_MASK | VHOST_USER_VRING_NOFD_MASK))
                return log_error_errno(EBADMSG, "vhost-user: %s payload 0x%llx has unknown bits",
                                       vhost_user_request_to_string(m->hdr.request), (unsigned long long) m->body.u64);
        *ret_index = (unsigned) (m->body.u64 & VHOST_USER_VRING_INDEX_MASK);
        *ret_nofd = m->body.u64 & VHOST_USER_VRING_NOFD_MASK;
        if ((r = vring_index(b, m, *ret_index)) < 0)
                return r;
        if (m->n_fds != (*ret_nofd ? 0u : 1u))
                return log_error_errno(EBADMSG, "vhost-user: %s with %u fd(s) and the no-fd flag %s",
                                       vhost_user_request_to_string(m->hdr.request), m->n_fds,
                                       *ret_nofd ? "set" : "clear");
        return 0;
}

static int handle_set_vring_kick(struct bridge *b, struct vhost_user_msg *m) {
        unsigned q;
        bool nofd;
        int r;

        if ((r = vring_fd_payload(b, m, &q, &nofd)) < 0)
                return r;
        if (nofd)
                return log_error_errno(EOPNOTSUPP, "vhost-user: vring %u without a kick fd (polling): not supported", q);
        safe_close(b->vrings[q].kick_fd);
        b->vrings[q].kick_fd = TAKE_FD(m->fds[0]);
        b->vrings[q].fresh |= FRESH_KICK;
        /* The device waits on it itself, as on KVM's ioeventfd. */
        r = pdev_attach(&b->dev, PROTO_FD_IOEVENT, q, b->vrings[q].kick_fd);
        if (r < 0)
                return r;
        return maybe_start(b);
}

static int handle_set_vring_call(struct bridge *b, struct vhost_user_msg *m) {
        unsigned q;
        bool nofd;
        int r;

        if ((r = vring_fd_payload(b, m, &q, &nofd)) < 0)
                return r;
        safe_close(b->vrings[q].call_fd);
        if (nofd) {
                /* The device still signals; into an eventfd nobody reads. */
                log_info("vhost-user: vring %u has no call fd now: its interrupts are dropped.", q);
                if (b->sink_fd < 0) {
                        b->sink_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                        if (b->sink_fd < 0)
                                return log_error_errno(errno, "Failed to create an eventfd: %m");
                }
                return pdev_attach(&b->dev, PROTO_FD_IRQ, q + 1, b->sink_fd);
        }
        b->vrings[q].call_fd = TAKE_FD(m->fds[0]);
        /* Queue q raises MSI-X vector q + 1 (maybe_start programs that). */
        r = pdev_attach(&b->dev, PROTO_FD_IRQ, q + 1, b->vrings[q].call_fd);
        if (r < 0)
                return r;
        return maybe_start(b);
}

static int handle_get_config(struct bridge *b, const struct vhost_user_msg *m) {
        struct vhost_user_config reply = {};
        const struct vhost_user_config *c = &m->body.config;
        int r;

        if (m->hdr.size < VHOST_USER_CONFIG_HEADER_SIZE)
                return bad_size(m, VHOST_USER_CONFIG_HEADER_SIZE);
        if (c->size > VHOST_USER_MAX_CONFIG_SIZE || m->hdr.size != VHOST_USER_CONFIG_HEADER_SIZE + c->size)
                return log_error_errno(EBADMSG, "vhost-user: %s of %u bytes in a %u-byte payload (at most %d)",
                                       vhost_user_request_to_string(m->hdr.request), c->size, m->hdr.size,
                                       VHOST_USER_MAX_CONFIG_SIZE);
        if (c->offset > UINT32_MAX - c->size)
                return log_error_errno(EBADMSG, "vhost-user: config access at %u + %u wraps", c->offset, c->size);
        reply.offset = c->offset;
        reply.size = c->size;
        reply.flags = c->flags;
        r = pdev_device_config_read(&b->dev, c->offset, c->size, reply.payload);
        if (r < 0)
                return r;
        log_debug("  config %u..%u read (device has %u bytes)", c->offset, c->offset + c->size, b->dev.device_len);
        return vhost_user_send_reply(b->conn, m->hdr.request, &reply, VHOST_USER_CONFIG_HEADER_SIZE + c->size);
}

static int handle_set_config(struct bridge *b, const struct vhost_user_msg *m) {
        const struct vhost_user_config *c = &m->body.config;

        if (m->hdr.size < VHOST_USER_CONFIG_HEADER_SIZE)
                return bad_size(m, VHOST_USER_CONFIG_HEADER_SIZE);
        if (c->size > VHOST_USER_MAX_CONFIG_SIZE || m->hdr.size != VHOST_USER_CONFIG_HEADER_SIZE + c->size)
                return log_error_errno(EBADMSG, "vhost-user: SET_CONFIG of %u bytes in a %u-byte payload", c->size,
                                       m->hdr.size);
        if (c->flags > 1)
                return log_error_errno(EBADMSG, "vhost-user: SET_CONFIG flags 0x%x (0 or 1)", c->flags);
        log_debug("  config %u..%u written", c->offset, c->offset + c->size);
        return pdev_device_config_write(&b->dev, c->offset, c->size, c->payload);
}

/* Answers a u64. */
static int reply_u64(struct bridge *b, const struct vhost_user_msg *m, uint64_t value) {
        if (m->hdr.size != 0)
                return bad_size(m, 0);
        log_debug("  -> 0x%llx", (unsigned long long) value);
        return vhost_user_send_reply(b->conn, m->hdr.request, &value, sizeof(value));
}

/* One request. Returns 0, or -errno: the bridge then stops. *replied says
 * whether it sent a reply of its own (else REPLY_ACK may be due). */
static int handle(struct bridge *b, struct vhost_user_msg *m, bool *replied) {
        const struct vhost_user_vring_state *s = &m->body.state;
        int r;

        *replied = false;
        /* fds only come with these. */
        if (m->n_fds > 0 && m->hdr.request != VHOST_USER_SET_MEM_TABLE && m->hdr.request != VHOST_USER_SET_VRING_KICK &&
            m->hdr.request != VHOST_USER_SET_VRING_CALL && m->hdr.request != VHOST_USER_SET_VRING_ERR)
                return log_error_errno(EBADMSG, "vhost-user: %s came with %u fd(s)",
                                       vhost_user_request_to_string(m->hdr.request), m->n_fds);

        switch (m->hdr.request) {
        case VHOST_USER_GET_FEATURES:
                *replied = true;
                return reply_u64(b, m, b->dev.features | F_PROTOCOL_FEATURES);

        case VHOST_USER_SET_FEATURES:
                if (m->hdr.size != 8)
                        return bad_size(m, 8);
                log_debug("  features 0x%llx", (unsigned long long) m->body.u64);
                if (b->running) {
                        if (m->body.u64 == b->acked_features)
                                return 0;
                        return log_error_errno(EBUSY, "vhost-user: features change to 0x%llx while the device runs "
                                               "(migration logging?): not supported",
                                               (unsigned long long) m->body.u64);
                }
                return negotiate(b, m->body.u64);

        case VHOST_USER_GET_PROTOCOL_FEATURES:
                *replied = true;
                return reply_u64(b, m, protocol_offered(b));

        case VHOST_USER_SET_PROTOCOL_FEATURES:
                if (m->hdr.size != 8)
                        return bad_size(m, 8);
                if (m->body.u64 & ~protocol_offered(b))
                        return log_error_errno(EINVAL, "vhost-user: protocol features 0x%llx were not offered (0x%llx)",
                                               (unsigned long long) m->body.u64,
                                               (unsigned long long) protocol_offered(b));
                b->protocol_features = m->body.u64;
                b->protocol_set = true;
                log_debug("  protocol features 0x%llx", (unsigned long long) m->body.u64);
                return 0;

        case VHOST_USER_SET_OWNER:
                return m->hdr.size == 0 ? 0 : bad_size(m, 0);

        case VHOST_USER_RESET_OWNER: /* deprecated: "disable all rings" */
                if (m->hdr.size != 0)
                        return bad_size(m, 0);
                return stop_device(b, "RESET_OWNER");

        case VHOST_USER_GET_QUEUE_NUM:
                *replied = true;
                return reply_u64(b, m, bridge_queue_num(&b->dev));

        case VHOST_USER_SET_MEM_TABLE:
                r = handle_set_mem_table(b, m);
                return r < 0 ? r : maybe_start(b);

        case VHOST_USER_SET_VRING_NUM:
                if (m->hdr.size != sizeof(*s))
                        return bad_size(m, sizeof(*s));
                if ((r = vring_index(b, m, s->index)) < 0)
                        return r;
                log_debug("  vring %u num %u", s->index, s->num);
                if (s->num == 0 || s->num > b->dev.queue_max[s->index] || (s->num & (s->num - 1)))
                        return log_error_errno(EINVAL, "vhost-user: vring %u size %u: the device takes a power of 2 "
                                               "up to %u", s->index, s->num, b->dev.queue_max[s->index]);
                if (b->running && s->num != b->vrings[s->index].num)
                        return log_error_errno(EBUSY, "vhost-user: vring %u resized while the device runs", s->index);
                b->vrings[s->index].num = s->num;
                b->vrings[s->index].has_num = true;
                b->vrings[s->index].fresh |= FRESH_NUM;
                return 0;

        case VHOST_USER_SET_VRING_ADDR:
                return handle_set_vring_addr(b, m);

        case VHOST_USER_SET_VRING_BASE:
                if (m->hdr.size != sizeof(*s))
                        return bad_size(m, sizeof(*s));
                if ((r = vring_index(b, m, s->index)) < 0)
                        return r;
                log_debug("  vring %u base %u", s->index, s->num);
                if (s->num != 0)
                        return log_error_errno(EOPNOTSUPP, "vhost-user: vring %u base %u: a polyvm device starts its "
                                               "rings at 0; resuming a ring is not supported", s->index, s->num);
                return 0;

        case VHOST_USER_GET_VRING_BASE: {
                struct vhost_user_vring_state reply;
                int idx;

                if (m->hdr.size != sizeof(*s))
                        return bad_size(m, sizeof(*s));
                if ((r = vring_index(b, m, s->index)) < 0)
                        return r;
                /* Stopping a ring stops the device: reset it. Its worker is
                 * joined and rng and blk complete every chain they take, so
                 * the used index is where the available ring was consumed to;
                 * virtio-net's rx may hold one chain with no frame in it yet,
                 * which a resumed ring would then offer again. */
                r = stop_device(b, "GET_VRING_BASE");
                if (r < 0)
                        return r;
                idx = used_idx(b, s->index);
                reply = (struct vhost_user_vring_state) { .index = s->index, .num = idx < 0 ? 0 : (uint32_t) idx };
                log_debug("  -> vring %u base %u", reply.index, reply.num);
                *replied = true;
                return vhost_user_send_reply(b->conn, m->hdr.request, &reply, sizeof(reply));
        }

        case VHOST_USER_SET_VRING_KICK:
                return handle_set_vring_kick(b, m);

        case VHOST_USER_SET_VRING_CALL:
                return handle_set_vring_call(b, m);

        case VHOST_USER_SET_VRING_ERR: {
                unsigned q;
                bool nofd;

                /* The bridge reports errors in its log; the fd is not used. */
                return vring_fd_payload(b, m, &q, &nofd);
        }

        case VHOST_USER_SET_VRING_ENABLE:
                if (m->hdr.size != sizeof(*s))
                        return bad_size(m, sizeof(*s));
                if ((r = vring_index(b, m, s->index)) < 0)
                        return r;
                log_debug("  vring %u %s", s->index, s->num ? "enabled" : "disabled");
                if (s->num > 1)
                        return log_error_errno(EBADMSG, "vhost-user: SET_VRING_ENABLE %u (0 or 1)", s->num);
                if (!protocol_negotiated(b))
                        return log_error_errno(EPROTO, "vhost-user: SET_VRING_ENABLE without protocol features");
                if (s->num == 0) {
                        b->vrings[s->index].enabled = false;
                        /* A virtio queue cannot pause alone: stop the device
                         * (QEMU does so right before GET_VRING_BASE). */
                        return b->running ? stop_device(b, "vring disabled") : 0;
                }
                b->vrings[s->index].enabled = true;
                return maybe_start(b);

        case VHOST_USER_GET_CONFIG:
                *replied = true;
                return handle_get_config(b, m);

        case VHOST_USER_SET_CONFIG:
                return handle_set_config(b, m);

        default:
                return log_error_errno(EOPNOTSUPP, "vhost-user: request %s (%u) is not supported by the bridge",
                                       vhost_user_request_to_string(m->hdr.request), m->hdr.request);
        }
}

/* One message from QEMU: 1 to go on, 0 when QEMU has gone, -errno. */
static int serve_one(struct bridge *b) {
        struct vhost_user_msg m;
        bool replied;
        int r;

        r = vhost_user_recv(b->conn, &m);
        if (r == 0 || r == -ECONNRESET) {
                log_info("QEMU closed the vhost-user connection.");
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to receive a vhost-user message: %m");

        log_debug("vhost-user: %s (%u) flags 0x%x size %u fds %u", vhost_user_request_to_string(m.hdr.request),
                  m.hdr.request, m.hdr.flags, m.hdr.size, m.n_fds);
        r = handle(b, &m, &replied);
        vhost_user_msg_done(&m);
        if (!replied && (m.hdr.flags & VHOST_USER_NEED_REPLY_MASK) &&
            (b->protocol_features & (UINT64_C(1) << VHOST_USER_PROTOCOL_F_REPLY_ACK))) {
                uint64_t ack = r < 0 ? (uint64_t) -r : 0;
                int k = vhost_user_send_reply(b->conn, m.hdr.request, &ack, sizeof(ack));

                if (k < 0 && r >= 0)
                        r = log_error_errno(k, "Failed to send a REPLY_ACK: %m");
        }
        if (r < 0)
                return log_error_errno(r, "Stopping after a failed vhost-user %s.",
                                       vhost_user_request_to_string(m.hdr.request));
        return 1;
}

/* The device's config interrupt: a model raises it when it needs a reset
 * (a broken ring) or its config changed. */
static void config_interrupt(struct bridge *b) {
        uint64_t n;
        uint8_t status;

        if (read(b->dev.config_irq_fd, &n, sizeof(n)) != sizeof(n))
                return;
        status = pdev_status(&b->dev);
        if (status & STATUS_NEEDS_RESET) {
                log_error("Device %s needs a reset (status 0x%02x): see devmgr's log for why.", b->dev.path, status);
                b->device_failed = true;
        } else
                log_info("Device %s: config interrupt (status 0x%02x).", b->dev.path, status);
}

static int listen_on(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "Socket path %s is too long", path);
        strcpy(sa.sun_path, path);
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return log_error_errno(EEXIST, "%s exists and is no socket; not replacing it", path);
                (void) unlink(path);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create a socket: %m");
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return log_error_errno(errno, "Failed to bind %s: %m", path);
        if (listen(fd, 1) < 0)
                return log_error_errno(errno, "Failed to listen on %s: %m", path);
        return TAKE_FD(fd);
}

enum { WAIT_SIGNAL, WAIT_DEVICE, WAIT_CONFIG_IRQ, WAIT_MAIN };

/* Waits on the signals, the device endpoint (nothing comes there
 * unasked: a hang-up is a dead device), the config interrupt and fd.
 * Returns WAIT_MAIN when fd is readable, or a negative errno. */
static int wait_for(struct bridge *b, int sigfd, int fd) {
        for (;;) {
                struct pollfd p[] = {
                        [WAIT_SIGNAL] = { .fd = sigfd, .events = POLLIN },
                        [WAIT_DEVICE] = { .fd = b->dev.ep, .events = POLLIN },
                        [WAIT_CONFIG_IRQ] = { .fd = b->dev.config_irq_fd, .events = POLLIN },
                        [WAIT_MAIN] = { .fd = fd, .events = POLLIN },
                };

                if (poll(p, ELEMENTSOF(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_error_errno(errno, "poll failed: %m");
                }
                if (p[WAIT_SIGNAL].revents) {
                        struct signalfd_siginfo si;

                        if (read(sigfd, &si, sizeof(si)) == sizeof(si))
                                log_info("Got signal %u, stopping.", si.ssi_signo);
                        return -EINTR;
                }
                if (p[WAIT_DEVICE].revents)
                        return log_error_errno(ECONNRESET, "Device %s (pid %u) hung up or spoke unasked: it is gone "
                                               "(see devmgr's log and its Device1 ExitReason)",
                                               b->dev.path, b->dev.pid);
                if (p[WAIT_CONFIG_IRQ].revents)
                        config_interrupt(b);
                if (p[WAIT_MAIN].revents)
                        return WAIT_MAIN;
        }
}

static int run(struct bridge *b, const char *socket_path, int sigfd) {
        _cleanup_close_ int lfd = -1;
        int r;

        lfd = listen_on(socket_path);
        if (lfd < 0)
                return lfd;
        /* Tests wait for this line before they start QEMU. */
        printf("READY %s %u\n", b->dev.path, b->dev.pid);
        fflush(stdout);
        log_info("Listening on %s for QEMU.", socket_path);

        r = wait_for(b, sigfd, lfd);
        if (r < 0) {
                (void) unlink(socket_path);
                return r == -EINTR ? 0 : r;
        }
        b->conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        (void) unlink(socket_path);
        if (b->conn < 0)
                return log_error_errno(errno, "Failed to accept QEMU's connection: %m");
        lfd = safe_close(lfd); /* one front-end per run */
        log_info("QEMU connected.");

        for (;;) {
                r = wait_for(b, sigfd, b->conn);
                if (r < 0)
                        return r == -EINTR ? 0 : r;
                r = serve_one(b);
                if (r <= 0)
                        return r;
        }
}

static void help(void) {
        printf("polyvm-vhost-user-bridge --socket PATH --kind KIND [--config JSON] [--vm NAME] [--bus=ADDR] [--debug]\n\n"
               "A vhost-user back-end for QEMU (-chardev socket,path=PATH -device vhost-user-*-pci, or\n"
               "-netdev vhost-user + -device virtio-net-pci for --kind virtio-net) that creates\n"
               "a polyvm device of KIND through devmgr and hands it QEMU's guest memory, kick and call fds.\n"
               "Prints 'READY <device object> <pid>' once it listens; exits 0 when QEMU disconnects.\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' }, { "kind", required_argument, NULL, 'k' },
                { "config", required_argument, NULL, 'c' }, { "vm", required_argument, NULL, 'm' },
                { "bus", required_argument, NULL, 'b' },    { "debug", no_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },         {},
        };
        const char *socket_path = NULL, *kind = NULL, *config = "{}", *vm = "vhost-user", *bus_spec = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        struct bridge b = { .conn = -1, .memfd = -1, .sink_fd = -1 };
        _cleanup_close_ int sigfd = -1;
        sigset_t mask;
        int c, r;

        log_set_ident("polyvm-vhost-user-bridge");
        while ((c = getopt_long(argc, argv, "s:k:c:m:b:dh", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        socket_path = optarg;
                        break;
                case 'k':
                        kind = optarg;
                        break;
                case 'c':
                        config = optarg;
                        break;
                case 'm':
                        vm = optarg;
                        break;
                case 'b':
                        bus_spec = optarg;
                        break;
                case 'd':
                        log_set_max_level(LOG_DEBUG);
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        if (!socket_path || !kind || optind < argc) {
                help();
                return 2;
        }
        for (unsigned q = 0; q < PDEV_MAX_QUEUES; q++)
                b.vrings[q].kick_fd = b.vrings[q].call_fd = -1;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || (sigfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
                log_error_errno(errno, "Failed to set up signals: %m");
                return 1;
        }

        r = bus_open(bus_spec, &bus);
        if (r < 0) {
                log_error_errno(r, "Failed to connect to the bus %s: %m", bus_spec ?: "(default)");
                return 1;
        }
        r = pdev_create(&b.dev, bus, vm, kind, config);
        if (r >= 0)
                r = pdev_setup(&b.dev);
        if (r >= 0)
                r = bridge_net_describe(&b.dev);
        if (r >= 0)
                r = run(&b, socket_path, sigfd);

        if (b.running)
                for (unsigned q = 0; q < b.dev.num_queues; q++)
                        if (b.vrings[q].has_addr)
                                log_info("Queue %u at exit: used idx %d.", q, used_idx(&b, q));
        log_info("Device %s served %u start(s).", b.dev.path ?: "-", b.starts);
        pdev_destroy(&b.dev);
        for (unsigned q = 0; q < PDEV_MAX_QUEUES; q++) {
                safe_close(b.vrings[q].kick_fd);
                safe_close(b.vrings[q].call_fd);
        }
        if (b.ram)
                munmap((void *) b.ram, b.mem_size);
        safe_close(b.memfd);
        safe_close(b.sink_fd);
        safe_close(b.conn);
        if (r < 0)
                return 1;
        if (b.device_failed) {
                log_error("Exiting with an error: the device needed a reset.");
                return 1;
        }
        return 0;
}
