/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* virtio-blk requests (virtio 1.2 section 5.2.6) against an open image,
 * apart from the transport so unit tests can feed chains built by hand.
 * Every chain is hostile: its header, data lengths, sector numbers and
 * discard ranges are checked before any I/O, and a bad request completes
 * with VIRTIO_BLK_S_IOERR (VIRTIO_BLK_S_UNSUPP for an unknown type or
 * flag), never with an access outside the image or the chain. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtqueue.h"

#define VIRTIO_BLK_SECTOR_SIZE        512u
#define VIRTIO_BLK_ID_BYTES           20u
#define VIRTIO_BLK_HEADER_BYTES       16u /* le32 type, le32 reserved, le64 sector */
#define VIRTIO_BLK_DWZ_BYTES          16u /* struct virtio_blk_discard_write_zeroes */

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX         1
#define VIRTIO_BLK_F_SEG_MAX          2
#define VIRTIO_BLK_F_GEOMETRY         4
#define VIRTIO_BLK_F_RO               5
#define VIRTIO_BLK_F_BLK_SIZE         6
#define VIRTIO_BLK_F_FLUSH            9
#define VIRTIO_BLK_F_TOPOLOGY         10
#define VIRTIO_BLK_F_CONFIG_WCE       11
#define VIRTIO_BLK_F_MQ               12
#define VIRTIO_BLK_F_DISCARD          13
#define VIRTIO_BLK_F_WRITE_ZEROES     14

/* Request types and status values (5.2.6). */
#define VIRTIO_BLK_T_IN               0
#define VIRTIO_BLK_T_OUT              1
#define VIRTIO_BLK_T_FLUSH            4
#define VIRTIO_BLK_T_GET_ID           8
#define VIRTIO_BLK_T_DISCARD          11
#define VIRTIO_BLK_T_WRITE_ZEROES     13
#define VIRTIO_BLK_S_OK               0
#define VIRTIO_BLK_S_IOERR            1
#define VIRTIO_BLK_S_UNSUPP           2
/* What blk_request_execute() returns when the chain has no writable byte
 * for a status: nothing was written, the chain goes back with len 0. */
#define VIRTIO_BLK_S_NONE             0xff

#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1u

/* struct virtio_blk_config (5.2.4) up to write_zeroes_may_unmap and its
 * padding; the secure-erase fields are not offered. */
#define VIRTIO_BLK_CFG_CAPACITY            0  /* le64, 512-byte sectors */
#define VIRTIO_BLK_CFG_SEG_MAX             12 /* le32 */
#define VIRTIO_BLK_CFG_BLK_SIZE            20 /* le32 */
#define VIRTIO_BLK_CFG_NUM_QUEUES          34 /* le16 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36 /* le32 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG     40 /* le32 */
#define VIRTIO_BLK_CFG_DISCARD_ALIGNMENT   44 /* le32, sectors */
#define VIRTIO_BLK_CFG_MAX_WZ_SECTORS      48 /* le32 */
#define VIRTIO_BLK_CFG_MAX_WZ_SEG          52 /* le32 */
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP        56 /* u8 */
#define VIRTIO_BLK_CONFIG_LEN              60

/* Our limits, in the config space for the driver and enforced on every
 * request: they bound the time one request keeps the worker busy. */
#define VIRTIO_BLK_MAX_DISCARD_SECTORS     (UINT32_C(1) << 21) /* 1 GiB */
#define VIRTIO_BLK_MAX_DISCARD_SEG         32u
#define VIRTIO_BLK_MAX_WZ_SECTORS          (UINT32_C(1) << 21)
#define VIRTIO_BLK_MAX_WZ_SEG              1u

struct blk_disk {
        int fd;                 /* the image, opened by devmgr */
        uint64_t capacity;      /* in 512-byte sectors */
        bool readonly;
        bool writethrough;      /* FLUSH not negotiated: every write is synced (5.2.6.4) */
        uint32_t seg_max;       /* data segments per request */
        char serial[VIRTIO_BLK_ID_BYTES]; /* NUL-padded, not terminated */
        unsigned io_errors;     /* for log rate limiting */
        /* Scratch for one request: the worker is one thread. */
        struct iovec iov[VQ_CHAIN_MAX_SEGS];
};

/* Validates and runs one request. Returns the status written to the
 * chain's last writable byte (VIRTIO_BLK_S_NONE if it has none) and in
 * *ret_written the bytes written to the chain (data and status), for the
 * used ring. */
uint8_t blk_request_execute(struct blk_disk *d, const struct vq_chain *chain, uint32_t *ret_written);

/* The device feature bits for d (offered to the driver). */
uint64_t blk_features(const struct blk_disk *d, unsigned num_queues);

/* The device config space (little-endian) for d. */
void blk_config_build(const struct blk_disk *d, unsigned num_queues, uint8_t cfg[VIRTIO_BLK_CONFIG_LEN]);

/* Opens the image at path for a device (devmgr, before the fork): no
 * symbolic link as the last component, never blocking (a FIFO), never a
 * controlling tty, only a regular file or a block device, O_RDONLY if
 * readonly else O_RDWR. *ret_sectors is its size in whole 512-byte sectors
 * (a last partial sector is not part of the disk). On failure err names
 * the field ("virtio-blk.path: ...") and why. */
int blk_image_open(const char *path, bool readonly, int *ret_fd, uint64_t *ret_sectors, char *err, size_t errlen);
