/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The data path of a virtio device: a worker thread that waits on the
 * queues' ioeventfds (what KVM signals on a guest notify), trapped notify
 * writes forwarded by the serve thread, and the model's own fd, and runs
 * the model's queue work without holding the transport lock, so the serve
 * thread answers the launcher at once even during long I/O. It runs from
 * DRIVER_OK until reset, Sleep or the end, and is always joined. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "virtio-pci-internal.h"

static void drain(int fd) {
        uint64_t v;

        /* The worker is the only reader, and poll said it is readable. */
        (void) !read(fd, &v, sizeof(v));
}

static void notify_queue(struct virtio_pci *vp, unsigned q) {
        if (q < vp->info.num_queues && vp->queues[q].ready && !atomic_load(&vp->needs_reset))
                vp->ops->queue_notify(vp, q);
}

static void *worker_main(void *arg) {
        struct virtio_pci *vp = arg;

        /* Buffers the driver made available before DRIVER_OK (or while we
         * slept) have had their kick already. */
        for (unsigned q = 0; q < vp->info.num_queues; q++)
                notify_queue(vp, q);

        while (!atomic_load(&vp->worker_stop)) {
                struct pollfd p[2 + VIRTIO_PCI_MAX_QUEUES];
                unsigned which[2 + VIRTIO_PCI_MAX_QUEUES], n = 0, kicked;
                int efd = -1;

                p[n++] = (struct pollfd) { .fd = vp->wake_fd, .events = POLLIN };
                for (unsigned q = 0; q < vp->info.num_queues; q++)
                        if (vp->queues[q].ready && vp->queues[q].ioevent_fd >= 0) {
                                which[n] = q;
                                p[n++] = (struct pollfd) { .fd = vp->queues[q].ioevent_fd, .events = POLLIN };
                        }
                /* A broken device does no work, so its event fd would only
                 * spin. */
                if (vp->ops->event_fd && !atomic_load(&vp->needs_reset))
                        efd = vp->ops->event_fd(vp);
                if (efd >= 0)
                        p[n++] = (struct pollfd) { .fd = efd, .events = POLLIN };

                if (poll(p, n, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error_errno(errno, "%s: worker cannot poll, stopping: %m", vp->ops->name);
                        virtio_pci_needs_reset(vp, "worker failed");
                        break;
                }
                if (atomic_load(&vp->worker_stop))
                        break;

                if (p[0].revents)
                        drain(vp->wake_fd);
                kicked = atomic_exchange(&vp->kicks, 0);
                for (unsigned i = 1; i < n; i++) {
                        if (efd >= 0 && i == n - 1)
                                break;
                        if (p[i].revents) {
                                drain(p[i].fd);
                                kicked |= 1u << which[i];
                        }
                }
                for (unsigned q = 0; q < vp->info.num_queues; q++)
                        if (kicked & (1u << q))
                                notify_queue(vp, q);
                if (efd >= 0 && p[n - 1].revents && !atomic_load(&vp->needs_reset))
                        vp->ops->handle_event(vp);
        }
        return NULL;
}

int virtio_pci_worker_start(struct virtio_pci *vp) {
        int r;

        if (vp->worker_running)
                return 0;
        if (vp->wake_fd < 0) {
                vp->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (vp->wake_fd < 0)
                        return log_error_errno(errno, "%s: cannot create the worker's eventfd: %m", vp->ops->name);
        }
        atomic_store(&vp->worker_stop, false);
        /* EAGAIN: RLIMIT_NPROC still counts a worker that was just joined
         * until the kernel has released it. */
        for (unsigned tries = 0;; tries++) {
                r = pthread_create(&vp->worker, NULL, worker_main, vp);
                if (r != EAGAIN || tries >= 1000)
                        break;
                sched_yield();
        }
        if (r != 0)
                return log_error_errno(r, "%s: cannot start the worker thread: %m", vp->ops->name);
        vp->worker_running = true;
        return 0;
}

void virtio_pci_worker_stop(struct virtio_pci *vp) {
        uint64_t one = 1;

        if (!vp->worker_running)
                return;
        atomic_store(&vp->worker_stop, true);
        if (write(vp->wake_fd, &one, sizeof(one)) < 0)
                log_warning_errno(errno, "%s: cannot wake the worker: %m", vp->ops->name);
        pthread_join(vp->worker, NULL);
        vp->worker_running = false;
        (void) !read(vp->wake_fd, &one, sizeof(one)); /* nonblocking */
}

void virtio_pci_worker_kick(struct virtio_pci *vp, unsigned q) {
        uint64_t one = 1;

        atomic_fetch_or(&vp->kicks, 1u << q);
        /* Not running: the next start looks at every queue anyway. */
        if (vp->worker_running && write(vp->wake_fd, &one, sizeof(one)) < 0)
                log_warning_errno(errno, "%s: cannot wake the worker: %m", vp->ops->name);
}

/* The queue helpers models call from queue_notify/handle_event. */

static struct virtio_pci_queue *live_queue(struct virtio_pci *vp, unsigned q) {
        if (q >= vp->info.num_queues || !vp->queues[q].ready)
                return NULL;
        return &vp->queues[q];
}

int virtio_pci_queue_pop(struct virtio_pci *vp, unsigned q, struct vq_chain *chain) {
        struct virtio_pci_queue *vq = live_queue(vp, q);
        int r;

        if (!vq || atomic_load(&vp->needs_reset))
                return 0;
        r = vq_pop(&vq->vq, chain);
        if (r < 0)
                virtio_pci_needs_reset(vp, "queue %u: %s", q, vq_error(&vq->vq));
        return r;
}

int virtio_pci_queue_push(struct virtio_pci *vp, unsigned q, uint16_t head, uint32_t written) {
        struct virtio_pci_queue *vq = live_queue(vp, q);

        if (!vq)
                return -EINVAL;
        return vq_push(&vq->vq, head, written);
}

void virtio_pci_queue_signal(struct virtio_pci *vp, unsigned q) {
        struct virtio_pci_queue *vq = live_queue(vp, q);

        if (!vq || !vq_needs_notify(&vq->vq))
                return;
        pthread_mutex_lock(&vp->lock);
        vp->isr |= 0x1;
        virtio_pci_raise(vp, vq->msix_vector);
        pthread_mutex_unlock(&vp->lock);
}

int virtio_pci_queue_complete(struct virtio_pci *vp, unsigned q, uint16_t head, uint32_t written) {
        int r = virtio_pci_queue_push(vp, q, head, written);

        if (r < 0)
                return r;
        virtio_pci_queue_signal(vp, q);
        return 0;
}
