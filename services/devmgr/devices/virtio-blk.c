/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The "virtio-blk" device kind (virtio 1.2 5.2): a raw image as a disk.
 * devmgr opens the image in create(), with its own rights, before the
 * fork; the jailed process only has that fd (owned_fds) and cannot open
 * anything. Requests are run by virtio-blk-request.c on the transport's
 * worker thread, one at a time, queue by queue. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "virtio-blk-request.h"
#include "virtio-pci.h"

#define VIRTIO_BLK_QUEUE_SIZE_DEFAULT 256
/* At least header + one data segment + status per chain. */
#define VIRTIO_BLK_QUEUE_SIZE_MIN     4

struct virtio_blk {
        struct blk_disk disk;
        unsigned queues;
        uint8_t config[VIRTIO_BLK_CONFIG_LEN];
        /* The worker's chain: 1024 segments are too much for its stack. */
        struct vq_chain chain;
};

/* The JSON string's own length, to catch an embedded NUL. */
static size_t json_string_len(json_object *config, const char *key) {
        json_object *v;

        if (!json_object_is_type(config, json_type_object) || !json_object_object_get_ex(config, key, &v) ||
            !json_object_is_type(v, json_type_string))
                return 0;
        return (size_t) json_object_get_string_len(v);
}

static void blk_free(struct virtio_blk *blk) {
        if (!blk)
                return;
        safe_close(blk->disk.fd);
        free(blk);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct virtio_blk *, blk_free);

static int blk_create(json_object *config, void **ret_model, struct virtio_pci_info *info, char *err,
                      size_t errlen) {
        _cleanup_(blk_freep) struct virtio_blk *blk = NULL;
        _cleanup_free_ char *path = NULL, *serial = NULL;
        uint64_t queues = 1, queue_size = VIRTIO_BLK_QUEUE_SIZE_DEFAULT;
        bool readonly = false;
        const struct json_field fields[] = {
                { "path", JSON_FIELD_STRING, true, &path },
                { "readonly", JSON_FIELD_BOOL, false, &readonly },
                { "serial", JSON_FIELD_STRING, false, &serial },
                { "queues", JSON_FIELD_UINT64, false, &queues, 1, VIRTIO_PCI_MAX_QUEUES },
                { "queue_size", JSON_FIELD_UINT64, false, &queue_size, VIRTIO_BLK_QUEUE_SIZE_MIN, VQ_MAX_SIZE },
        };
        int r;

        r = json_parse_fields(config, "virtio-blk", fields, ELEMENTSOF(fields), err, errlen);
        if (r < 0)
                return r;
        if (json_string_len(config, "path") != strlen(path)) {
                snprintf(err, errlen, "virtio-blk.path: must not contain a NUL character");
                return -EINVAL;
        }
        if (serial && json_string_len(config, "serial") != strlen(serial)) {
                snprintf(err, errlen, "virtio-blk.serial: must not contain a NUL character");
                return -EINVAL;
        }
        if (serial && strlen(serial) > VIRTIO_BLK_ID_BYTES) {
                snprintf(err, errlen, "virtio-blk.serial: \"%s\" is %zu bytes, longer than the limit of %u", serial,
                         strlen(serial), VIRTIO_BLK_ID_BYTES);
                return -EINVAL;
        }
        if ((queue_size & (queue_size - 1)) != 0) {
                snprintf(err, errlen, "virtio-blk.queue_size: %" PRIu64 " is not a power of 2", queue_size);
                return -EINVAL;
        }

        blk = calloc(1, sizeof(*blk));
        if (!blk)
                return -ENOMEM;
        blk->disk.fd = -1;
        r = blk_image_open(path, readonly, &blk->disk.fd, &blk->disk.capacity, err, errlen);
        if (r < 0)
                return r;
        blk->disk.readonly = readonly;
        /* Until the driver takes FLUSH, write through (5.2.6.4). */
        blk->disk.writethrough = true;
        /* Header and status take two descriptors of a chain; a chain has at
         * most queue_size descriptors (or VQ_CHAIN_MAX_SEGS indirect ones). */
        blk->disk.seg_max = (uint32_t) MIN(queue_size, (uint64_t) VQ_CHAIN_MAX_SEGS) - 2;
        if (serial)
                memcpy(blk->disk.serial, serial, strlen(serial));
        blk->queues = (unsigned) queues;
        blk_config_build(&blk->disk, blk->queues, blk->config);

        *info = (struct virtio_pci_info) {
                .device_id = VIRTIO_ID_BLOCK,
                .pci_class = VIRTIO_PCI_CLASS_STORAGE_SCSI,
                .num_queues = blk->queues,
                .queue_max_size = (uint16_t) queue_size,
                .features = blk_features(&blk->disk, blk->queues),
                .config_len = VIRTIO_BLK_CONFIG_LEN,
        };
        log_debug("virtio-blk: %s, %" PRIu64 " sectors%s, %u queue(s) of %" PRIu64, path, blk->disk.capacity,
                  readonly ? ", read-only" : "", blk->queues, queue_size);
        *ret_model = TAKE_PTR(blk);
        return 0;
}

static void blk_destroy(void *model) {
        blk_free(model);
}

static size_t blk_owned_fds(void *model, int *ret[]) {
        struct virtio_blk *blk = model;

        ret[0] = &blk->disk.fd;
        return 1;
}

static void blk_config_read(struct virtio_pci *vp, uint32_t offset, uint32_t len, uint8_t *data) {
        struct virtio_blk *blk = virtio_pci_model(vp);

        /* Fixed for the device's life: no lock needed. */
        memcpy(data, blk->config + offset, len);
}

static int blk_driver_ok(struct virtio_pci *vp) {
        struct virtio_blk *blk = virtio_pci_model(vp);

        /* The worker is stopped: the disk is ours to change. */
        blk->disk.writethrough = !(virtio_pci_features(vp) & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
        return 0;
}

static void blk_queue_notify(struct virtio_pci *vp, unsigned q) {
        struct virtio_blk *blk = virtio_pci_model(vp);

        for (;;) {
                uint32_t written;
                int r = virtio_pci_queue_pop(vp, q, &blk->chain);

                if (r <= 0)
                        break;
                (void) blk_request_execute(&blk->disk, &blk->chain, &written);
                if (virtio_pci_queue_push(vp, q, blk->chain.head, written) < 0)
                        break;
        }
        virtio_pci_queue_signal(vp, q);
}

static const struct virtio_model virtio_blk = {
        .name = "virtio-blk",
        .rlimit_as = 0, /* it maps guest memory */
        /* Endpoint, report, stdio, the image, guest memory, and per queue an
         * ioeventfd and an irqfd. */
        .rlimit_nofile = 64,
        .create = blk_create,
        .destroy = blk_destroy,
        .owned_fds = blk_owned_fds,
        .config_read = blk_config_read,
        .driver_ok = blk_driver_ok,
        .queue_notify = blk_queue_notify,
};
VIRTIO_PCI_REGISTER(virtio_blk);
