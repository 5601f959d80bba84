/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The "virtio-rng" device kind (virtio 1.2 5.4): one request queue whose
 * device-writable buffers are filled from getrandom(). No config, no
 * feature bits. A request gets at most VIRTIO_RNG_MAX_BYTES, so one greedy
 * guest buffer cannot keep the worker busy. */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "json-util.h"
#include "log.h"
#include "virtio-pci.h"

#define VIRTIO_RNG_QUEUE_SIZE 64
#define VIRTIO_RNG_MAX_BYTES (64u * 1024)

struct virtio_rng {
        /* The worker's chain: 1024 segments are too much for its stack. */
        struct vq_chain chain;
};

static int rng_create(json_object *config, void **ret_model, struct virtio_pci_info *info, char *err,
                      size_t errlen) {
        struct virtio_rng *rng;
        int r;

        r = json_parse_fields(config, "virtio-rng", NULL, 0, err, errlen);
        if (r < 0)
                return r;
        rng = calloc(1, sizeof(*rng));
        if (!rng)
                return -ENOMEM;
        *info = (struct virtio_pci_info) {
                .device_id = VIRTIO_ID_RNG,
                .pci_class = VIRTIO_PCI_CLASS_OTHER,
                .num_queues = 1,
                .queue_max_size = VIRTIO_RNG_QUEUE_SIZE,
        };
        *ret_model = rng;
        return 0;
}

static void rng_destroy(void *model) {
        free(model);
}

/* Fills buf with len random bytes; returns how many it got. */
static uint32_t fill_random(uint8_t *buf, uint32_t len) {
        uint32_t done = 0;

        while (done < len) {
                ssize_t n = getrandom(buf + done, len - done, 0);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        log_warning_errno(errno, "virtio-rng: getrandom failed: %m");
                        break;
                }
                done += (uint32_t) n;
        }
        return done;
}

static void rng_queue_notify(struct virtio_pci *vp, unsigned q) {
        struct virtio_rng *rng = virtio_pci_model(vp);
        struct vq_chain *chain = &rng->chain;

        for (;;) {
                uint32_t written = 0, budget = VIRTIO_RNG_MAX_BYTES;
                int r = virtio_pci_queue_pop(vp, q, chain);

                if (r <= 0)
                        break;
                /* Readable buffers mean nothing to an entropy device. */
                for (unsigned i = chain->n_readable; i < chain->n_segs && budget > 0; i++) {
                        uint32_t want = chain->segs[i].len < budget ? chain->segs[i].len : budget;
                        uint32_t got = fill_random(chain->segs[i].ptr, want);

                        written += got;
                        budget -= got;
                        if (got < want)
                                break;
                }
                if (virtio_pci_queue_push(vp, q, chain->head, written) < 0)
                        break;
        }
        virtio_pci_queue_signal(vp, q);
}

static const struct virtio_model virtio_rng = {
        .name = "virtio-rng",
        .rlimit_as = 0, /* it maps guest memory */
        .create = rng_create,
        .destroy = rng_destroy,
        .queue_notify = rng_queue_notify,
};
VIRTIO_PCI_REGISTER(virtio_rng);
