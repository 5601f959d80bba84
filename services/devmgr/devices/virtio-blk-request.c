/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-blk requests (virtio 1.2 5.2.6) and the image they go to: parse
 * the chain's header from its readable part, find the status byte (the
 * chain's last writable byte), check lengths and sector ranges against the
 * image, then run the request with preadv/pwritev/fdatasync/fallocate. The chain's segments
 * already lie in guest RAM (lib/virtqueue.c checked them); what they say is
 * checked here. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "virtio-blk-request.h"
#include "virtio-pci.h"

/* A part of a chain: bytes [skip, skip + len) of segments [first, end). */
struct span {
        unsigned first, end;
        uint64_t skip, len;
};

/* Bad requests are the guest's business: debug level, not the journal. */
#define bad_request(fmt, ...) log_debug("virtio-blk: bad request: " fmt, ##__VA_ARGS__)

/* A failing host file is the admin's business, but a guest must not be
 * able to flood the log with it: the first few, then one in 1024. */
static void log_io_error(struct blk_disk *d, int error, const char *what, uint64_t sector) {
        unsigned n = d->io_errors++;

        if (n < 8 || n % 1024 == 0)
                log_error_errno(error, "virtio-blk: %s at sector %" PRIu64 " failed (%u errors so far): %m", what,
                                sector, n + 1);
}

/* Copies span s out of the chain into out (s.len bytes). */
static void span_copy_out(const struct vq_chain *c, struct span s, void *out) {
        uint8_t *o = out;
        uint64_t skip = s.skip, left = s.len;

        for (unsigned i = s.first; i < s.end && left > 0; i++) {
                const struct vq_seg *g = &c->segs[i];
                uint64_t n;

                if (skip >= g->len) {
                        skip -= g->len;
                        continue;
                }
                n = MIN((uint64_t) g->len - skip, left);
                memcpy(o, (const uint8_t *) g->ptr + skip, n);
                o += n;
                left -= n;
                skip = 0;
        }
}

/* Copies len bytes of in into span s. */
static void span_copy_in(const struct vq_chain *c, struct span s, const void *in) {
        const uint8_t *p = in;
        uint64_t skip = s.skip, left = s.len;

        for (unsigned i = s.first; i < s.end && left > 0; i++) {
                const struct vq_seg *g = &c->segs[i];
                uint64_t n;

                if (skip >= g->len) {
                        skip -= g->len;
                        continue;
                }
                n = MIN((uint64_t) g->len - skip, left);
                memcpy((uint8_t *) g->ptr + skip, p, n);
                p += n;
                left -= n;
                skip = 0;
        }
}

/* Fills d->iov with span s; returns the number of entries, or -E2BIG if
 * that is more than the disk's seg_max. No entry is empty. */
static int span_to_iov(struct blk_disk *d, const struct vq_chain *c, struct span s) {
        uint64_t skip = s.skip, left = s.len;
        unsigned n = 0;

        for (unsigned i = s.first; i < s.end && left > 0; i++) {
                const struct vq_seg *g = &c->segs[i];
                uint64_t k;

                if (skip >= g->len) {
                        skip -= g->len;
                        continue;
                }
                if (n >= d->seg_max || n >= ELEMENTSOF(d->iov))
                        return -E2BIG;
                k = MIN((uint64_t) g->len - skip, left);
                d->iov[n++] = (struct iovec) { .iov_base = (uint8_t *) g->ptr + skip, .iov_len = k };
                left -= k;
                skip = 0;
        }
        return (int) n;
}

/* Reads or writes all of iov[0..n) at offset: loops over short transfers
 * and EINTR. Returns the bytes moved; *ret_error is 0, -errno, or -EIO
 * for an end of file (the image shrank under us). */
static uint64_t io_full(int fd, struct iovec *iov, unsigned n, uint64_t offset, bool write, int *ret_error) {
        uint64_t done = 0;

        *ret_error = 0;
        while (n > 0) {
                ssize_t k = write ? pwritev(fd, iov, (int) n, (off_t) offset) : preadv(fd, iov, (int) n, (off_t) offset);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        *ret_error = -errno;
                        break;
                }
                if (k == 0) {
                        *ret_error = write ? -ENOSPC : -EIO;
                        break;
                }
                done += (uint64_t) k;
                offset += (uint64_t) k;
                while (k > 0) {
                        if ((size_t) k >= iov->iov_len) {
                                k -= (ssize_t) iov->iov_len;
                                iov++;
                                n--;
                        } else {
                                iov->iov_base = (uint8_t *) iov->iov_base + k;
                                iov->iov_len -= (size_t) k;
                                k = 0;
                        }
                }
        }
        return done;
}

static int sync_data(int fd) {
        while (fdatasync(fd) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

/* Whether nsec sectors from sector lie within the image, overflow-safe. */
static bool in_range(const struct blk_disk *d, uint64_t sector, uint64_t nsec) {
        return sector <= d->capacity && nsec <= d->capacity - sector;
}

/* IN and OUT: data is span s, the writable data (IN) or the readable data
 * after the header (OUT). */
static uint8_t do_rw(struct blk_disk *d, const struct vq_chain *c, bool write, uint64_t sector, struct span s,
                     uint64_t *ret_data_written) {
        uint64_t done;
        int n, r;

        if (write && d->readonly) {
                bad_request("write to a read-only disk");
                return VIRTIO_BLK_S_IOERR;
        }
        if (s.len % VIRTIO_BLK_SECTOR_SIZE != 0) {
                bad_request("data length %" PRIu64 " is not a multiple of 512", s.len);
                return VIRTIO_BLK_S_IOERR;
        }
        if (!in_range(d, sector, s.len / VIRTIO_BLK_SECTOR_SIZE)) {
                bad_request("sector %" PRIu64 " + %" PRIu64 " bytes is past the end (%" PRIu64 " sectors)", sector,
                            s.len, d->capacity);
                return VIRTIO_BLK_S_IOERR;
        }
        n = span_to_iov(d, c, s);
        if (n < 0) {
                bad_request("more than %u data segments", d->seg_max);
                return VIRTIO_BLK_S_IOERR;
        }
        done = io_full(d->fd, d->iov, (unsigned) n, sector * VIRTIO_BLK_SECTOR_SIZE, write, &r);
        if (!write)
                *ret_data_written = done;
        if (r < 0) {
                log_io_error(d, r, write ? "write" : "read", sector);
                return VIRTIO_BLK_S_IOERR;
        }
        if (write && d->writethrough) {
                r = sync_data(d->fd);
                if (r < 0) {
                        log_io_error(d, r, "fdatasync after write", sector);
                        return VIRTIO_BLK_S_IOERR;
                }
        }
        return VIRTIO_BLK_S_OK;
}

static int punch(int fd, uint64_t off, uint64_t len, int mode) {
        while (fallocate(fd, mode, (off_t) off, (off_t) len) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

/* Zeroes by writing, for file systems that have neither hole punching nor
 * FALLOC_FL_ZERO_RANGE. */
static int write_zeroes(struct blk_disk *d, uint64_t off, uint64_t len) {
        static const uint8_t zeroes[64 * 1024];

        while (len > 0) {
                struct iovec iov = { .iov_base = (void *) zeroes, .iov_len = MIN(len, sizeof(zeroes)) };
                uint64_t k;
                int r;

                k = io_full(d->fd, &iov, 1, off, true, &r);
                if (r < 0)
                        return r;
                off += k;
                len -= k;
        }
        return 0;
}

static uint8_t dwz_one(struct blk_disk *d, uint32_t type, uint64_t sector, uint32_t nsec, uint32_t flags) {
        uint64_t off = sector * VIRTIO_BLK_SECTOR_SIZE, len = (uint64_t) nsec * VIRTIO_BLK_SECTOR_SIZE;
        int r;

        if (nsec == 0)
                return VIRTIO_BLK_S_OK;
        if (type == VIRTIO_BLK_T_DISCARD) {
                /* Discarded sectors may read as anything; a hole reads as 0. */
                r = punch(d->fd, off, len, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
                if (r == -EOPNOTSUPP)
                        return VIRTIO_BLK_S_UNSUPP;
        } else {
                r = -EOPNOTSUPP;
                if (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
                        r = punch(d->fd, off, len, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
                if (r == -EOPNOTSUPP)
                        r = punch(d->fd, off, len, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE);
                if (r == -EOPNOTSUPP || r == -EINVAL)
                        r = write_zeroes(d, off, len);
        }
        if (r < 0) {
                log_io_error(d, r, type == VIRTIO_BLK_T_DISCARD ? "discard" : "write zeroes", sector);
                return VIRTIO_BLK_S_IOERR;
        }
        return VIRTIO_BLK_S_OK;
}

/* DISCARD and WRITE_ZEROES: span s holds the struct
 * virtio_blk_discard_write_zeroes entries. All are checked before any is
 * run, so a bad request changes nothing. */
static uint8_t do_discard_write_zeroes(struct blk_disk *d, const struct vq_chain *c, uint32_t type, struct span s) {
        struct {
                uint64_t sector;
                uint32_t num_sectors, flags;
        } e[MAX(VIRTIO_BLK_MAX_DISCARD_SEG, VIRTIO_BLK_MAX_WZ_SEG)];
        bool discard = type == VIRTIO_BLK_T_DISCARD;
        uint32_t max_seg = discard ? VIRTIO_BLK_MAX_DISCARD_SEG : VIRTIO_BLK_MAX_WZ_SEG;
        uint32_t max_sectors = discard ? VIRTIO_BLK_MAX_DISCARD_SECTORS : VIRTIO_BLK_MAX_WZ_SECTORS;
        uint32_t allowed_flags = discard ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
        uint64_t n;

        if (d->readonly) {
                bad_request("discard or write zeroes on a read-only disk");
                return VIRTIO_BLK_S_IOERR;
        }
        if (s.len == 0 || s.len % VIRTIO_BLK_DWZ_BYTES != 0 || s.len / VIRTIO_BLK_DWZ_BYTES > max_seg) {
                bad_request("discard/write zeroes data of %" PRIu64 " bytes (1..%u entries of 16 bytes)", s.len,
                            max_seg);
                return VIRTIO_BLK_S_IOERR;
        }
        n = s.len / VIRTIO_BLK_DWZ_BYTES;
        for (uint64_t i = 0; i < n; i++) {
                uint8_t raw[VIRTIO_BLK_DWZ_BYTES];
                uint64_t sector;
                uint32_t le32;

                span_copy_out(c, (struct span) { s.first, s.end, s.skip + i * VIRTIO_BLK_DWZ_BYTES,
                                                 VIRTIO_BLK_DWZ_BYTES }, raw);
                memcpy(&sector, raw, 8);
                e[i].sector = le64toh(sector);
                memcpy(&le32, raw + 8, 4);
                e[i].num_sectors = le32toh(le32);
                memcpy(&le32, raw + 12, 4);
                e[i].flags = le32toh(le32);

                /* 5.2.6.2: an unknown flag (or unmap on a discard) is UNSUPP. */
                if (e[i].flags & ~allowed_flags) {
                        bad_request("flags 0x%x", e[i].flags);
                        return VIRTIO_BLK_S_UNSUPP;
                }
                if (e[i].num_sectors > max_sectors || !in_range(d, e[i].sector, e[i].num_sectors)) {
                        bad_request("range %" PRIu64 " + %u sectors (limit %u, capacity %" PRIu64 ")",
                                    e[i].sector, e[i].num_sectors, max_sectors, d->capacity);
                        return VIRTIO_BLK_S_IOERR;
                }
        }
        for (uint64_t i = 0; i < n; i++) {
                uint8_t st = dwz_one(d, type, e[i].sector, e[i].num_sectors, e[i].flags);

                if (st != VIRTIO_BLK_S_OK)
                        return st;
        }
        if (d->writethrough) {
                int r = sync_data(d->fd);

                if (r < 0) {
                        log_io_error(d, r, "fdatasync after write zeroes", e[0].sector);
                        return VIRTIO_BLK_S_IOERR;
                }
        }
        return VIRTIO_BLK_S_OK;
}

/* Runs the request whose header is in the chain's readable part; rdata
 * and wdata are the data around it (wdata without the status byte). */
static uint8_t execute(struct blk_disk *d, const struct vq_chain *c, struct span rdata, struct span wdata,
                       uint64_t *ret_data_written) {
        uint8_t hdr[VIRTIO_BLK_HEADER_BYTES];
        uint32_t type, le32;
        uint64_t sector;
        int r;

        span_copy_out(c, (struct span) { 0, c->n_readable, 0, VIRTIO_BLK_HEADER_BYTES }, hdr);
        memcpy(&le32, hdr, 4);
        type = le32toh(le32);
        memcpy(&sector, hdr + 8, 8);
        sector = le64toh(sector);

        switch (type) {
        case VIRTIO_BLK_T_IN:
                if (rdata.len != 0) {
                        bad_request("read with %" PRIu64 " readable data bytes", rdata.len);
                        return VIRTIO_BLK_S_IOERR;
                }
                return do_rw(d, c, false, sector, wdata, ret_data_written);
        case VIRTIO_BLK_T_OUT:
                if (wdata.len != 0) {
                        bad_request("write with %" PRIu64 " writable data bytes", wdata.len);
                        return VIRTIO_BLK_S_IOERR;
                }
                return do_rw(d, c, true, sector, rdata, ret_data_written);
        case VIRTIO_BLK_T_FLUSH:
                if (rdata.len != 0 || wdata.len != 0) {
                        bad_request("flush with data");
                        return VIRTIO_BLK_S_IOERR;
                }
                /* A read-only image has nothing of ours to write back. */
                if (d->readonly)
                        return VIRTIO_BLK_S_OK;
                r = sync_data(d->fd);
                if (r < 0) {
                        log_io_error(d, r, "flush", 0);
                        return VIRTIO_BLK_S_IOERR;
                }
                return VIRTIO_BLK_S_OK;
        case VIRTIO_BLK_T_GET_ID:
                if (rdata.len != 0 || wdata.len == 0) {
                        bad_request("get id with %" PRIu64 " readable and %" PRIu64 " writable data bytes",
                                    rdata.len, wdata.len);
                        return VIRTIO_BLK_S_IOERR;
                }
                /* 20 bytes, or what fits (as QEMU does). */
                wdata.len = MIN(wdata.len, (uint64_t) VIRTIO_BLK_ID_BYTES);
                span_copy_in(c, wdata, d->serial);
                *ret_data_written = wdata.len;
                return VIRTIO_BLK_S_OK;
        case VIRTIO_BLK_T_DISCARD:
        case VIRTIO_BLK_T_WRITE_ZEROES:
                if (wdata.len != 0) {
                        bad_request("discard/write zeroes with %" PRIu64 " writable data bytes", wdata.len);
                        return VIRTIO_BLK_S_IOERR;
                }
                return do_discard_write_zeroes(d, c, type, rdata);
        default:
                bad_request("unknown type %" PRIu32, type);
                return VIRTIO_BLK_S_UNSUPP;
        }
}

uint8_t blk_request_execute(struct blk_disk *d, const struct vq_chain *c, uint32_t *ret_written) {
        uint64_t readable = 0, writable = 0, data_written = 0;
        const struct vq_seg *last;
        uint8_t st, *status;

        *ret_written = 0;
        /* Our own sums: trust nothing but the segments themselves. */
        if (c->n_segs > VQ_CHAIN_MAX_SEGS || c->n_readable > c->n_segs)
                return VIRTIO_BLK_S_NONE;
        for (unsigned i = 0; i < c->n_segs; i++) {
                if (c->segs[i].writable != (i >= c->n_readable))
                        return VIRTIO_BLK_S_NONE;
                if (i < c->n_readable)
                        readable += c->segs[i].len;
                else
                        writable += c->segs[i].len;
        }
        if (readable + writable > VQ_CHAIN_MAX_BYTES)
                return VIRTIO_BLK_S_NONE;

        /* The status is the chain's last byte, which must be writable. */
        last = c->n_segs > c->n_readable ? &c->segs[c->n_segs - 1] : NULL;
        if (!last || last->len == 0) {
                bad_request("no writable status byte");
                return VIRTIO_BLK_S_NONE;
        }
        status = (uint8_t *) last->ptr + last->len - 1;

        if (readable < VIRTIO_BLK_HEADER_BYTES) {
                bad_request("header of %" PRIu64 " bytes", readable);
                st = VIRTIO_BLK_S_IOERR;
        } else
                st = execute(d, c,
                             (struct span) { 0, c->n_readable, VIRTIO_BLK_HEADER_BYTES,
                                             readable - VIRTIO_BLK_HEADER_BYTES },
                             (struct span) { c->n_readable, c->n_segs, 0, writable - 1 }, &data_written);
        *status = st;
        /* data_written <= writable - 1 < 2^32: the chain's bytes fit in 32 bits. */
        *ret_written = (uint32_t) (data_written + 1);
        return st;
}

uint64_t blk_features(const struct blk_disk *d, unsigned num_queues) {
        uint64_t f = VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
                     VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);

        if (d->readonly)
                f |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
        else
                f |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
        if (num_queues > 1)
                f |= VIRTIO_BIT(VIRTIO_BLK_F_MQ);
        return f;
}

static void put_le16(uint8_t *p, uint16_t v) {
        v = htole16(v);
        memcpy(p, &v, 2);
}

static void put_le32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, 4);
}

static void put_le64(uint8_t *p, uint64_t v) {
        v = htole64(v);
        memcpy(p, &v, 8);
}

void blk_config_build(const struct blk_disk *d, unsigned num_queues, uint8_t cfg[VIRTIO_BLK_CONFIG_LEN]) {
        memset(cfg, 0, VIRTIO_BLK_CONFIG_LEN);
        put_le64(cfg + VIRTIO_BLK_CFG_CAPACITY, d->capacity);
        put_le32(cfg + VIRTIO_BLK_CFG_SEG_MAX, d->seg_max);
        put_le32(cfg + VIRTIO_BLK_CFG_BLK_SIZE, VIRTIO_BLK_SECTOR_SIZE);
        put_le16(cfg + VIRTIO_BLK_CFG_NUM_QUEUES, (uint16_t) num_queues);
        if (!d->readonly) {
                put_le32(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, VIRTIO_BLK_MAX_DISCARD_SECTORS);
                put_le32(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, VIRTIO_BLK_MAX_DISCARD_SEG);
                /* A hint for splitting (4 KiB, a file system block); any
                 * range is served. */
                put_le32(cfg + VIRTIO_BLK_CFG_DISCARD_ALIGNMENT, 8);
                put_le32(cfg + VIRTIO_BLK_CFG_MAX_WZ_SECTORS, VIRTIO_BLK_MAX_WZ_SECTORS);
                put_le32(cfg + VIRTIO_BLK_CFG_MAX_WZ_SEG, VIRTIO_BLK_MAX_WZ_SEG);
                cfg[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1;
        }
}

static const char *file_type_name(mode_t mode) {
        switch (mode & S_IFMT) {
        case S_IFDIR: return "a directory";
        case S_IFCHR: return "a character device";
        case S_IFIFO: return "a FIFO";
        case S_IFSOCK: return "a socket";
        case S_IFLNK: return "a symbolic link";
        default: return "not a regular file";
        }
}

/* The image, opened in devmgr before the fork. O_NONBLOCK so that a FIFO
 * put in the image's place cannot hang devmgr; the type is checked on the
 * open fd, so nothing can be swapped in between. */
int blk_image_open(const char *path, bool readonly, int *ret_fd, uint64_t *ret_sectors, char *err,
                      size_t errlen) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        uint64_t bytes;
        int flags;

        if (path[0] != '/') {
                snprintf(err, errlen, "virtio-blk.path: \"%s\" must be an absolute path", path);
                return -EINVAL;
        }
        fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                int e = errno;

                if (e == ELOOP)
                        snprintf(err, errlen, "virtio-blk.path: %s is a symbolic link (not followed)", path);
                else if (e == EISDIR)
                        snprintf(err, errlen, "virtio-blk.path: %s is a directory, not a regular file or block device",
                                 path);
                else if (e == ENXIO)
                        snprintf(err, errlen, "virtio-blk.path: %s is not a regular file or block device", path);
                else if (!readonly && (e == EACCES || e == EPERM || e == EROFS))
                        snprintf(err, errlen, "virtio-blk.path: %s: %s (a read-only image needs \"readonly\": true)",
                                 path, strerror(e));
                else
                        snprintf(err, errlen, "virtio-blk.path: %s: %s", path, strerror(e));
                return -e;
        }
        if (fstat(fd, &st) < 0) {
                int e = errno;

                snprintf(err, errlen, "virtio-blk.path: %s: cannot stat: %s", path, strerror(e));
                return -e;
        }
        if (S_ISREG(st.st_mode))
                bytes = (uint64_t) st.st_size;
        else if (S_ISBLK(st.st_mode)) {
                if (ioctl(fd, BLKGETSIZE64, &bytes) < 0) {
                        int e = errno;

                        snprintf(err, errlen, "virtio-blk.path: %s: cannot read the block device's size: %s", path,
                                 strerror(e));
                        return -e;
                }
        } else {
                snprintf(err, errlen, "virtio-blk.path: %s is %s, not a regular file or block device", path,
                         file_type_name(st.st_mode));
                return -EINVAL;
        }
        /* A last partial sector is not part of the disk. */
        if (bytes < VIRTIO_BLK_SECTOR_SIZE) {
                snprintf(err, errlen, "virtio-blk.path: %s is %" PRIu64 " bytes, less than one 512-byte sector",
                         path, bytes);
                return -EINVAL;
        }
        /* O_NONBLOCK was only for the open. */
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
                int e = errno;

                snprintf(err, errlen, "virtio-blk.path: %s: %s", path, strerror(e));
                return -e;
        }
        *ret_sectors = bytes / VIRTIO_BLK_SECTOR_SIZE;
        *ret_fd = TAKE_FD(fd);
        return 0;
}
