/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-blk requests (services/devmgr/devices/virtio-blk-request.c) run
 * against a temporary image, with chains built by hand whose segments
 * point into a malloc'd "guest" buffer; hostile requests of every kind;
 * the image checks of blk_image_open(); config validation of the kind. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "device.h"
#include "json-util.h"
#include "virtio-blk-request.h"
#include "virtio-pci.h"

/* After our headers: GLib #undefs MIN/MAX before defining its own. */
#include <glib.h>

#define SECTORS 64u
#define IMAGE_BYTES (SECTORS * 512u)
#define GUEST_BYTES (1u << 20)

struct fixture {
        char *dir, *path;
        struct blk_disk *disk;
        struct vq_chain *chain;
        uint8_t *guest;     /* the "guest RAM" chains point into */
        uint64_t guest_next;
        uint8_t image[IMAGE_BYTES]; /* what the image held at setup */
};

static uint8_t pattern(uint64_t off) {
        return (uint8_t) (off * 7 + off / 512 + 1);
}

static void setup_in(struct fixture *f, const char *dir, bool readonly) {
        int fd;

        f->dir = g_strdup(dir);
        f->path = g_build_filename(f->dir, "disk.img", NULL);
        for (unsigned i = 0; i < IMAGE_BYTES; i++)
                f->image[i] = pattern(i);
        g_assert_true(g_file_set_contents(f->path, (const char *) f->image, IMAGE_BYTES, NULL));
        fd = open(f->path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);
        f->disk = g_new0(struct blk_disk, 1);
        f->disk->fd = fd;
        f->disk->capacity = SECTORS;
        f->disk->readonly = readonly;
        f->disk->seg_max = 254;
        memcpy(f->disk->serial, "polyvm-disk-0", 13);
        f->chain = g_new0(struct vq_chain, 1);
        f->guest = g_malloc(GUEST_BYTES);
        memset(f->guest, 0xaa, GUEST_BYTES);
        f->guest_next = 0;
}

static void setup(struct fixture *f, gconstpointer data) {
        char *dir = g_dir_make_tmp("test-virtio-blk-XXXXXX", NULL);

        g_assert_nonnull(dir);
        setup_in(f, dir, data != NULL);
        g_free(dir);
}

static void teardown(struct fixture *f, gconstpointer data) {
        close(f->disk->fd);
        unlink(f->path);
        rmdir(f->dir);
        g_free(f->path);
        g_free(f->dir);
        g_free(f->disk);
        g_free(f->chain);
        g_free(f->guest);
}

/* A fresh buffer in guest RAM (filled with 0xaa). */
static uint8_t *gbuf(struct fixture *f, uint32_t len) {
        uint8_t *p = f->guest + f->guest_next;

        g_assert_cmpuint(f->guest_next + len, <=, GUEST_BYTES);
        f->guest_next += len;
        return p;
}

static void chain_reset(struct fixture *f) {
        memset(f->chain, 0, sizeof(*f->chain));
        f->guest_next = 0;
        memset(f->guest, 0xaa, GUEST_BYTES);
}

/* Appends a segment (readable ones must come first, as vq_pop gives them). */
static void seg(struct fixture *f, void *ptr, uint32_t len, bool writable) {
        struct vq_chain *c = f->chain;

        g_assert_cmpuint(c->n_segs, <, VQ_CHAIN_MAX_SEGS);
        c->segs[c->n_segs++] = (struct vq_seg) { .ptr = ptr, .len = len, .writable = writable };
        if (writable)
                c->writable_bytes += len;
        else {
                g_assert_cmpuint(c->n_readable, ==, c->n_segs - 1);
                c->n_readable++;
                c->readable_bytes += len;
        }
}

static void put_header(uint8_t *p, uint32_t type, uint64_t sector) {
        uint32_t t = htole32(type), z = 0;
        uint64_t s = htole64(sector);

        memcpy(p, &t, 4);
        memcpy(p + 4, &z, 4);
        memcpy(p + 8, &s, 8);
}

/* A readable header segment. */
static void header(struct fixture *f, uint32_t type, uint64_t sector) {
        uint8_t *h = gbuf(f, 16);

        put_header(h, type, sector);
        seg(f, h, 16, false);
}

/* A writable status segment; returns the byte. */
static uint8_t *status_seg(struct fixture *f) {
        uint8_t *s = gbuf(f, 1);

        seg(f, s, 1, true);
        return s;
}

static uint8_t run(struct fixture *f, uint32_t *written) {
        return blk_request_execute(f->disk, f->chain, written);
}

static void assert_file(struct fixture *f, const uint8_t *expect) {
        gchar *data = NULL;
        gsize len = 0;

        g_assert_true(g_file_get_contents(f->path, &data, &len, NULL));
        g_assert_cmpuint(len, ==, IMAGE_BYTES);
        g_assert_cmpmem(data, len, expect, IMAGE_BYTES);
        g_free(data);
}

static void assert_file_unchanged(struct fixture *f) {
        assert_file(f, f->image);
}

/* A read of 4 sectors at sector 3 into three odd-sized segments. */
static void test_read_returns_image_data(struct fixture *f, gconstpointer data) {
        uint8_t *a, *b, *c, *st;
        uint32_t written;

        header(f, VIRTIO_BLK_T_IN, 3);
        a = gbuf(f, 700), b = gbuf(f, 1000), c = gbuf(f, 348);
        seg(f, a, 700, true);
        seg(f, b, 1000, true);
        seg(f, c, 348, true);
        st = status_seg(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_OK);
        g_assert_cmpuint(*st, ==, VIRTIO_BLK_S_OK);
        g_assert_cmpuint(written, ==, 2048 + 1);
        g_assert_cmpmem(a, 700, f->image + 3 * 512, 700);
        g_assert_cmpmem(b, 1000, f->image + 3 * 512 + 700, 1000);
        g_assert_cmpmem(c, 348, f->image + 3 * 512 + 1700, 348);
}

/* Linux may put the status right after the data in one buffer, and the
 * header may be split: the status is the last writable byte wherever it
 * is. */
static void test_read_status_in_data_segment_and_split_header(struct fixture *f, gconstpointer data) {
        uint8_t *h = gbuf(f, 16), *buf = gbuf(f, 513);
        uint32_t written;

        put_header(h, VIRTIO_BLK_T_IN, SECTORS - 1);
        seg(f, h, 5, false);
        seg(f, h + 5, 11, false);
        seg(f, buf, 513, true);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_OK);
        g_assert_cmpuint(written, ==, 513);
        g_assert_cmpmem(buf, 512, f->image + (SECTORS - 1) * 512, 512);
        g_assert_cmpuint(buf[512], ==, VIRTIO_BLK_S_OK);
}

/* Header and data in one readable segment; the file has the data. */
static void test_write_reaches_file(struct fixture *f, gconstpointer data) {
        uint8_t *req = gbuf(f, 16 + 1024), *st, expect[IMAGE_BYTES];
        uint32_t written;

        put_header(req, VIRTIO_BLK_T_OUT, 10);
        for (unsigned i = 0; i < 1024; i++)
                req[16 + i] = (uint8_t) (i ^ 0x5a);
        seg(f, req, 16 + 1024, false);
        st = status_seg(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_OK);
        g_assert_cmpuint(*st, ==, VIRTIO_BLK_S_OK);
        g_assert_cmpuint(written, ==, 1);
        memcpy(expect, f->image, IMAGE_BYTES);
        memcpy(expect + 10 * 512, req + 16, 1024);
        assert_file(f, expect);

        /* Write-through (FLUSH not negotiated) syncs and succeeds as well. */
        chain_reset(f);
        f->disk->writethrough = true;
        req = gbuf(f, 16 + 512);
        put_header(req, VIRTIO_BLK_T_OUT, SECTORS - 1);
        memset(req + 16, 0x11, 512);
        seg(f, req, 16 + 512, false);
        status_seg(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_OK);
        memset(expect + (SECTORS - 1) * 512, 0x11, 512);
        assert_file(f, expect);
}

static void test_flush_and_get_id(struct fixture *f, gconstpointer data) {
        uint8_t *st, *id;
        uint32_t written;

        header(f, VIRTIO_BLK_T_FLUSH, 0);
        st = status_seg(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_OK);
        g_assert_cmpuint(*st, ==, VIRTIO_BLK_S_OK);
        g_assert_cmpuint(written, ==, 1);

        /* 20 bytes, NUL-padded, in a larger buffer: the rest untouched. */
        chain_reset(f);
        header(f, VIRTIO_BLK_T_GET_ID, 0);
        id = gbuf(f, 41);
        seg(f, id, 41, true);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_OK);
        g_assert_cmpuint(written, ==, 21);
        g_assert_cmpmem(id, 20, "polyvm-disk-0\0\0\0\0\0\0\0", 20);
        for (unsigned i = 20; i < 40; i++)
                g_assert_cmpuint(id[i], ==, 0xaa);
        g_assert_cmpuint(id[40], ==, VIRTIO_BLK_S_OK);

        /* A small buffer gets what fits. */
        chain_reset(f);
        header(f, VIRTIO_BLK_T_GET_ID, 0);
        id = gbuf(f, 6);
        seg(f, id, 6, true);
        st = status_seg(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_OK);
        g_assert_cmpuint(written, ==, 7);
        g_assert_cmpmem(id, 6, "polyvm", 6);

        /* No room for an id at all. */
        chain_reset(f);
        header(f, VIRTIO_BLK_T_GET_ID, 0);
        st = status_seg(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(*st, ==, VIRTIO_BLK_S_IOERR);
}

static void test_short_header_is_ioerr(struct fixture *f, gconstpointer data) {
        uint8_t *h = gbuf(f, 16), *buf = gbuf(f, 512), *st;
        uint32_t written;

        put_header(h, VIRTIO_BLK_T_OUT, 0);
        seg(f, h, 15, false);
        seg(f, buf, 512, true);
        st = status_seg(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(*st, ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(written, ==, 1);
        g_assert_cmpuint(buf[0], ==, 0xaa);

        /* No readable part at all. */
        chain_reset(f);
        st = status_seg(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(*st, ==, VIRTIO_BLK_S_IOERR);
        assert_file_unchanged(f);
}

/* Without a writable byte there is nowhere to put a status: nothing is
 * written, not even into the readable buffers, and len 0 goes back. */
static void test_no_status_byte_writes_nothing(struct fixture *f, gconstpointer data) {
        uint8_t *req = gbuf(f, 16 + 512), copy[16 + 512];
        uint32_t written = 99;

        put_header(req, VIRTIO_BLK_T_IN, 0);
        memcpy(copy, req, sizeof(copy));
        /* The "status byte" is readable: the last byte of a readable chain. */
        seg(f, req, 16 + 512, false);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_NONE);
        g_assert_cmpuint(written, ==, 0);
        g_assert_cmpmem(req, sizeof(copy), copy, sizeof(copy));

        /* A write with no status byte does not reach the file either. */
        chain_reset(f);
        req = gbuf(f, 16 + 512);
        put_header(req, VIRTIO_BLK_T_OUT, 0);
        seg(f, req, 16 + 512, false);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_NONE);
        assert_file_unchanged(f);

        /* An empty chain. */
        chain_reset(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_NONE);
        g_assert_cmpuint(written, ==, 0);
}

/* One request of type with len data bytes at sector: IN gets writable
 * data, OUT readable data. Returns the status. */
static uint8_t rw(struct fixture *f, uint32_t type, uint64_t sector, uint32_t len) {
        uint8_t *buf, *st;
        uint32_t written;
        uint8_t r;

        chain_reset(f);
        header(f, type, sector);
        buf = gbuf(f, len ?: 1);
        if (len > 0)
                seg(f, buf, len, type == VIRTIO_BLK_T_IN);
        st = status_seg(f);
        r = run(f, &written);
        g_assert_cmpuint(*st, ==, r);
        if (r != VIRTIO_BLK_S_OK)
                g_assert_cmpuint(written, ==, 1);
        return r;
}

static void test_out_of_range_is_ioerr(struct fixture *f, gconstpointer data) {
        const uint32_t types[] = { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT };

        for (unsigned i = 0; i < G_N_ELEMENTS(types); i++) {
                uint32_t t = types[i];

                /* The last sector is fine, one more is not. */
                g_assert_cmpuint(rw(f, t, SECTORS - 1, 512), ==, VIRTIO_BLK_S_OK);
                g_assert_cmpuint(rw(f, t, SECTORS - 1, 1024), ==, VIRTIO_BLK_S_IOERR);
                g_assert_cmpuint(rw(f, t, SECTORS, 512), ==, VIRTIO_BLK_S_IOERR);
                g_assert_cmpuint(rw(f, t, SECTORS + 1, 0), ==, VIRTIO_BLK_S_IOERR);
                /* sector + count wraps; sector * 512 wraps. */
                g_assert_cmpuint(rw(f, t, UINT64_MAX, 512), ==, VIRTIO_BLK_S_IOERR);
                g_assert_cmpuint(rw(f, t, UINT64_MAX / 512 + 1, 512), ==, VIRTIO_BLK_S_IOERR);
                g_assert_cmpuint(rw(f, t, UINT64_C(1) << 63, 512), ==, VIRTIO_BLK_S_IOERR);
        }
}

static void test_length_not_sector_multiple_is_ioerr(struct fixture *f, gconstpointer data) {
        g_assert_cmpuint(rw(f, VIRTIO_BLK_T_IN, 0, 511), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(rw(f, VIRTIO_BLK_T_IN, 0, 513), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(rw(f, VIRTIO_BLK_T_OUT, 0, 1), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(rw(f, VIRTIO_BLK_T_OUT, 2, 1000), ==, VIRTIO_BLK_S_IOERR);
        assert_file_unchanged(f);
}

/* More data segments than seg_max: refused before any I/O. */
static void test_too_many_segments_is_ioerr(struct fixture *f, gconstpointer data) {
        uint32_t written;
        uint8_t *st;

        f->disk->seg_max = 4;
        for (unsigned n = 4; n <= 5; n++) {
                chain_reset(f);
                header(f, VIRTIO_BLK_T_IN, 0);
                for (unsigned i = 0; i < n; i++)
                        seg(f, gbuf(f, 512), 512, true);
                st = status_seg(f);
                g_assert_cmpuint(run(f, &written), ==, n <= 4 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR);
                g_assert_cmpuint(*st, ==, n <= 4 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR);
        }

        /* The most a chain can hold: 1022 data segments of a write (1024
         * bytes), refused at seg_max 254, served at seg_max 1022. */
        for (unsigned seg_max = 254; seg_max <= 1022; seg_max += 1022 - 254) {
                uint8_t expect[IMAGE_BYTES];

                f->disk->seg_max = seg_max;
                chain_reset(f);
                header(f, VIRTIO_BLK_T_OUT, 0);
                for (unsigned i = 0; i < VQ_CHAIN_MAX_SEGS - 3; i++)
                        seg(f, gbuf(f, 1), 1, false);
                seg(f, gbuf(f, 3), 3, false);
                status_seg(f);
                g_assert_cmpuint(f->chain->n_segs, ==, VQ_CHAIN_MAX_SEGS);
                memcpy(expect, f->image, IMAGE_BYTES);
                if (seg_max < 1022) {
                        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_IOERR);
                } else {
                        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_OK);
                        memset(expect, 0xaa, 1024);
                }
                assert_file(f, expect);
        }
}

static void test_unknown_type_is_unsupp(struct fixture *f, gconstpointer data) {
        const uint32_t types[] = { 2, 3, 5, 7, 9, 10, 12, 14, 15, 16, 99, UINT32_MAX };
        uint32_t written;
        uint8_t *st;

        for (unsigned i = 0; i < G_N_ELEMENTS(types); i++) {
                chain_reset(f);
                header(f, types[i], 0);
                seg(f, gbuf(f, 512), 512, true);
                st = status_seg(f);
                g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_UNSUPP);
                g_assert_cmpuint(*st, ==, VIRTIO_BLK_S_UNSUPP);
                g_assert_cmpuint(written, ==, 1);
        }
        assert_file_unchanged(f);
}

/* Data on the wrong side for the type. */
static void test_data_in_wrong_direction_is_ioerr(struct fixture *f, gconstpointer data) {
        uint32_t written;

        /* A read with readable data after the header. */
        header(f, VIRTIO_BLK_T_IN, 0);
        seg(f, gbuf(f, 512), 512, false);
        seg(f, gbuf(f, 512), 512, true);
        status_seg(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_IOERR);

        /* A write with writable data before the status. */
        chain_reset(f);
        header(f, VIRTIO_BLK_T_OUT, 0);
        seg(f, gbuf(f, 512), 512, false);
        seg(f, gbuf(f, 512), 512, true);
        status_seg(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_IOERR);

        /* A flush with data. */
        chain_reset(f);
        header(f, VIRTIO_BLK_T_FLUSH, 0);
        seg(f, gbuf(f, 512), 512, true);
        status_seg(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_IOERR);
        assert_file_unchanged(f);

        /* A chain whose segment flags contradict n_readable. */
        chain_reset(f);
        header(f, VIRTIO_BLK_T_IN, 0);
        status_seg(f);
        f->chain->n_readable = 2;
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_NONE);
        g_assert_cmpuint(written, ==, 0);
}

/* A read-only disk: reads and flushes work, every kind of write is IOERR
 * and the file is unchanged. */
static void test_readonly_refuses_writes(struct fixture *f, gconstpointer data) {
        uint8_t *d;
        uint32_t written;

        g_assert_true(f->disk->readonly);
        g_assert_cmpuint(rw(f, VIRTIO_BLK_T_IN, 0, 512), ==, VIRTIO_BLK_S_OK);
        g_assert_cmpuint(rw(f, VIRTIO_BLK_T_OUT, 0, 512), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(rw(f, VIRTIO_BLK_T_FLUSH, 0, 0), ==, VIRTIO_BLK_S_OK);
        for (uint32_t t = VIRTIO_BLK_T_DISCARD; t <= VIRTIO_BLK_T_WRITE_ZEROES; t += 2) {
                chain_reset(f);
                header(f, t, 0);
                d = gbuf(f, 16);
                memset(d, 0, 16);
                d[8] = 1;
                seg(f, d, 16, false);
                status_seg(f);
                g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_IOERR);
        }
        assert_file_unchanged(f);
        g_assert_true(blk_features(f->disk, 1) & VIRTIO_BIT(VIRTIO_BLK_F_RO));
        g_assert_false(blk_features(f->disk, 1) & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));
        g_assert_false(blk_features(f->disk, 1) & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
}

struct dwz {
        uint64_t sector;
        uint32_t num_sectors, flags;
};

static uint8_t dwz(struct fixture *f, uint32_t type, const struct dwz *e, unsigned n, uint32_t extra_bytes) {
        uint8_t *d, *st;
        uint32_t written;
        uint8_t r;

        chain_reset(f);
        header(f, type, 0);
        d = gbuf(f, n * 16 + extra_bytes);
        for (unsigned i = 0; i < n; i++) {
                uint64_t s = htole64(e[i].sector);
                uint32_t k = htole32(e[i].num_sectors), fl = htole32(e[i].flags);

                memcpy(d + 16 * i, &s, 8);
                memcpy(d + 16 * i + 8, &k, 4);
                memcpy(d + 16 * i + 12, &fl, 4);
        }
        if (n * 16 + extra_bytes > 0)
                seg(f, d, n * 16 + extra_bytes, false);
        st = status_seg(f);
        r = run(f, &written);
        g_assert_cmpuint(*st, ==, r);
        g_assert_cmpuint(written, ==, 1);
        return r;
}

static void test_discard_and_write_zeroes(struct fixture *f, gconstpointer data) {
        uint8_t expect[IMAGE_BYTES];
        const struct dwz ranges[] = { { 2, 3, 0 }, { 20, 8, 0 } };
        const struct dwz wz = { 40, 2, 0 }, wz_unmap = { 50, 9, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };

        memcpy(expect, f->image, IMAGE_BYTES);
        /* A hole reads as zeroes on the file systems tests run on. */
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_DISCARD, ranges, 2, 0), ==, VIRTIO_BLK_S_OK);
        memset(expect + 2 * 512, 0, 3 * 512);
        memset(expect + 20 * 512, 0, 8 * 512);
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, &wz, 1, 0), ==, VIRTIO_BLK_S_OK);
        memset(expect + 40 * 512, 0, 2 * 512);
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, &wz_unmap, 1, 0), ==, VIRTIO_BLK_S_OK);
        memset(expect + 50 * 512, 0, 9 * 512);
        assert_file(f, expect);
        g_assert_true(blk_features(f->disk, 1) & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));
        g_assert_true(blk_features(f->disk, 1) & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
}

/* On tmpfs FALLOC_FL_ZERO_RANGE is not there: zeroes are written. */
static void test_write_zeroes_without_zero_range(struct fixture *f, gconstpointer data) {
        uint8_t expect[IMAGE_BYTES];
        const struct dwz wz = { 1, 62, 0 };

        teardown(f, NULL);
        {
                char *dir = g_strdup("/dev/shm/test-virtio-blk-XXXXXX");

                g_assert_nonnull(g_mkdtemp(dir));
                setup_in(f, dir, false);
                g_free(dir);
        }
        memcpy(expect, f->image, IMAGE_BYTES);
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, &wz, 1, 0), ==, VIRTIO_BLK_S_OK);
        memset(expect + 512, 0, 62 * 512);
        assert_file(f, expect);
}

/* Bad discard/write-zeroes requests change nothing, not even their good
 * entries. */
static void test_bad_discard_changes_nothing(struct fixture *f, gconstpointer data) {
        struct dwz many[VIRTIO_BLK_MAX_DISCARD_SEG + 1];
        const struct dwz good_then_past_end[] = { { 0, 1, 0 }, { SECTORS - 1, 2, 0 } };
        const struct dwz good_then_wrap[] = { { 0, 1, 0 }, { UINT64_MAX, 1, 0 } };
        const struct dwz discard_unmap = { 0, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
        const struct dwz wz_unknown_flag = { 0, 1, 2 };
        const struct dwz too_large = { 0, VIRTIO_BLK_MAX_DISCARD_SECTORS + 1, 0 };
        const struct dwz two_wz[] = { { 0, 1, 0 }, { 1, 1, 0 } };

        for (unsigned i = 0; i < G_N_ELEMENTS(many); i++)
                many[i] = (struct dwz) { i, 1, 0 };
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_DISCARD, good_then_past_end, 2, 0), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_DISCARD, good_then_wrap, 2, 0), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_DISCARD, &discard_unmap, 1, 0), ==, VIRTIO_BLK_S_UNSUPP);
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, &wz_unknown_flag, 1, 0), ==, VIRTIO_BLK_S_UNSUPP);
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_DISCARD, &too_large, 1, 0), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, two_wz, 2, 0), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_DISCARD, many, G_N_ELEMENTS(many), 0), ==, VIRTIO_BLK_S_IOERR);
        /* Not a whole number of entries; no entry at all. */
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_DISCARD, many, 1, 8), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_DISCARD, many, 0, 0), ==, VIRTIO_BLK_S_IOERR);
        assert_file_unchanged(f);
        /* The most entries allowed is fine. */
        g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_DISCARD, many, VIRTIO_BLK_MAX_DISCARD_SEG, 0), ==, VIRTIO_BLK_S_OK);
}

/* Host-side failures: IOERR (and a log line), never a crash; a read cut
 * short by a shrunk image says how much it wrote. */
static void test_host_io_errors_are_ioerr(struct fixture *f, gconstpointer data) {
        uint8_t *buf, *st;
        uint32_t written;
        int fd;

        /* The image shrank to 1.5 sectors under the device. */
        g_assert_cmpint(truncate(f->path, 768), ==, 0);
        header(f, VIRTIO_BLK_T_IN, 0);
        buf = gbuf(f, 1024);
        seg(f, buf, 1024, true);
        st = status_seg(f);
        g_assert_cmpuint(run(f, &written), ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(*st, ==, VIRTIO_BLK_S_IOERR);
        g_assert_cmpuint(written, ==, 768 + 1);
        g_assert_cmpmem(buf, 768, f->image, 768);

        /* An fd that cannot write (EBADF). */
        fd = open(f->path, O_RDONLY | O_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);
        close(f->disk->fd);
        f->disk->fd = fd;
        g_assert_cmpuint(rw(f, VIRTIO_BLK_T_OUT, 0, 512), ==, VIRTIO_BLK_S_IOERR);
        {
                const struct dwz one = { 0, 1, 0 };

                g_assert_cmpuint(dwz(f, VIRTIO_BLK_T_DISCARD, &one, 1, 0), ==, VIRTIO_BLK_S_IOERR);
        }
        g_assert_cmpuint(f->disk->io_errors, >=, 3);
}

static void test_config_space_layout(void) {
        struct blk_disk *d = g_new0(struct blk_disk, 1);
        uint8_t cfg[VIRTIO_BLK_CONFIG_LEN];
        uint64_t cap;
        uint32_t v32;
        uint16_t v16;

        d->capacity = UINT64_C(0x123456789);
        d->seg_max = 254;
        blk_config_build(d, 4, cfg);
        memcpy(&cap, cfg + 0, 8);
        g_assert_cmphex(le64toh(cap), ==, 0x123456789);
        memcpy(&v32, cfg + 12, 4);
        g_assert_cmpuint(le32toh(v32), ==, 254);
        memcpy(&v32, cfg + 20, 4);
        g_assert_cmpuint(le32toh(v32), ==, 512);
        memcpy(&v16, cfg + 34, 2);
        g_assert_cmpuint(le16toh(v16), ==, 4);
        memcpy(&v32, cfg + 36, 4);
        g_assert_cmpuint(le32toh(v32), ==, VIRTIO_BLK_MAX_DISCARD_SECTORS);
        memcpy(&v32, cfg + 40, 4);
        g_assert_cmpuint(le32toh(v32), ==, VIRTIO_BLK_MAX_DISCARD_SEG);
        memcpy(&v32, cfg + 48, 4);
        g_assert_cmpuint(le32toh(v32), ==, VIRTIO_BLK_MAX_WZ_SECTORS);
        memcpy(&v32, cfg + 52, 4);
        g_assert_cmpuint(le32toh(v32), ==, VIRTIO_BLK_MAX_WZ_SEG);
        g_assert_cmpuint(cfg[56], ==, 1);
        g_assert_cmphex(blk_features(d, 4), ==,
                        VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
                                VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | VIRTIO_BIT(VIRTIO_BLK_F_MQ) |
                                VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
        g_assert_false(blk_features(d, 1) & VIRTIO_BIT(VIRTIO_BLK_F_MQ));

        /* Read-only: no discard or write-zeroes limits either. */
        d->readonly = true;
        blk_config_build(d, 1, cfg);
        memcpy(&v32, cfg + 36, 4);
        g_assert_cmpuint(v32, ==, 0);
        g_assert_cmpuint(cfg[56], ==, 0);
        g_free(d);
}

/* blk_image_open(): the flags, the size in whole sectors, and every file
 * that is not an image. */
static void test_image_open(void) {
        g_autofree char *dir = g_dir_make_tmp("test-virtio-blk-XXXXXX", NULL);
        g_autofree char *img = g_build_filename(dir, "img", NULL);
        g_autofree char *tiny = g_build_filename(dir, "tiny", NULL);
        g_autofree char *link = g_build_filename(dir, "link", NULL);
        g_autofree char *fifo = g_build_filename(dir, "fifo", NULL);
        g_autofree char *sock = g_build_filename(dir, "sock", NULL);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char buf[1300] = {}, err[256];
        uint64_t sectors;
        int fd, s, fl;

        g_assert_true(g_file_set_contents(img, buf, sizeof(buf), NULL));
        g_assert_true(g_file_set_contents(tiny, buf, 511, NULL));
        g_assert_cmpint(symlink(img, link), ==, 0);
        g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
        s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(s, >=, 0);
        g_strlcpy(sa.sun_path, sock, sizeof(sa.sun_path));
        g_assert_cmpint(bind(s, (struct sockaddr *) &sa, sizeof(sa)), ==, 0);

        /* 1300 bytes: two whole sectors, the rest is not exposed. */
        g_assert_cmpint(blk_image_open(img, false, &fd, &sectors, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(sectors, ==, 2);
        fl = fcntl(fd, F_GETFL);
        g_assert_cmpint(fl & O_ACCMODE, ==, O_RDWR);
        g_assert_false(fl & O_NONBLOCK);
        g_assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);
        g_assert_cmpint(blk_image_open(img, true, &fd, &sectors, err, sizeof(err)), ==, 0);
        g_assert_cmpint(fcntl(fd, F_GETFL) & O_ACCMODE, ==, O_RDONLY);
        close(fd);

#define REFUSED(p, ro, msg)                                                                        \
        do {                                                                                       \
                fd = -1;                                                                           \
                g_assert_cmpint(blk_image_open(p, ro, &fd, &sectors, err, sizeof(err)), <, 0);     \
                g_assert_cmpint(fd, ==, -1);                                                       \
                g_assert_true(g_str_has_prefix(err, "virtio-blk.path: "));                         \
                if (!strstr(err, msg))                                                             \
                        g_error("'%s' does not say '%s'", err, msg);                               \
        } while (0)
        REFUSED("disk.img", false, "must be an absolute path");
        REFUSED("/nonexistent/disk.img", true, "No such file or directory");
        REFUSED(link, false, "is a symbolic link");
        REFUSED(link, true, "is a symbolic link");
        REFUSED(dir, false, "is a directory");
        REFUSED(dir, true, "is a directory");
        REFUSED(fifo, false, "is a FIFO, not a regular file or block device");
        REFUSED(fifo, true, "is a FIFO");
        REFUSED("/dev/null", false, "is a character device, not a regular file or block device");
        REFUSED(sock, true, "not a regular file or block device");
        REFUSED(tiny, false, "511 bytes, less than one 512-byte sector");

        close(s);
        unlink(img), unlink(tiny), unlink(link), unlink(fifo), unlink(sock);
        rmdir(dir);
}

/* A block device (a loop device over a temporary file): its size comes
 * from BLKGETSIZE64. Needs root and the loop driver. */
static void test_image_open_block_device(void) {
        g_autofree char *dir = g_dir_make_tmp("test-virtio-blk-XXXXXX", NULL);
        g_autofree char *backing = g_build_filename(dir, "backing", NULL);
        char dev[64], err[256];
        uint64_t sectors;
        int ctl, ffd, lfd = -1, fd;

        ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        /* The machines this runs on have it (root, loop driver): a host
         * without it fails here loudly rather than skipping. */
        if (ctl < 0)
                g_error("/dev/loop-control: %s: this test needs root and the loop driver", g_strerror(errno));
        ffd = open(backing, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        g_assert_cmpint(ffd, >=, 0);
        g_assert_cmpint(ftruncate(ffd, 1024 * 1024), ==, 0);
        /* Another process may take the free device first: try again. */
        for (int tries = 0; tries < 10 && lfd < 0; tries++) {
                struct loop_config cfg = { .fd = (uint32_t) ffd };
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);

                g_assert_cmpint(n, >=, 0);
                snprintf(dev, sizeof(dev), "/dev/loop%d", n);
                lfd = open(dev, O_RDWR | O_CLOEXEC);
                g_assert_cmpint(lfd, >=, 0);
                if (ioctl(lfd, LOOP_CONFIGURE, &cfg) < 0) {
                        g_assert_cmpint(errno, ==, EBUSY);
                        close(lfd);
                        lfd = -1;
                }
        }
        g_assert_cmpint(lfd, >=, 0);

        g_assert_cmpint(blk_image_open(dev, false, &fd, &sectors, err, sizeof(err)), ==, 0);
        g_assert_cmpuint(sectors, ==, 2048);
        g_assert_cmpint(fcntl(fd, F_GETFL) & O_ACCMODE, ==, O_RDWR);
        close(fd);
        g_assert_cmpint(blk_image_open(dev, true, &fd, &sectors, err, sizeof(err)), ==, 0);
        g_assert_cmpint(fcntl(fd, F_GETFL) & O_ACCMODE, ==, O_RDONLY);
        close(fd);

        g_assert_cmpint(ioctl(lfd, LOOP_CLR_FD), ==, 0);
        close(lfd);
        close(ffd);
        close(ctl);
        unlink(backing);
        rmdir(dir);
}

/* The kind's config: every field and its bad values, through devmgr's
 * create (which runs before the fork). */
static void test_kind_config(void) {
        const struct device_kind *kind = device_kind_find("virtio-blk");
        g_autofree char *dir = g_dir_make_tmp("test-virtio-blk-XXXXXX", NULL);
        g_autofree char *img = g_build_filename(dir, "img", NULL);
        char buf[4096] = {}, err[256];
        struct {
                const char *config, *error; /* NULL: accepted */
        } cases[] = {
                { "{\"path\": \"@\"}", NULL },
                { "{\"path\": \"@\", \"readonly\": true, \"serial\": \"01234567890123456789\", \"queues\": 16, "
                  "\"queue_size\": 32768}", NULL },
                { "{\"path\": \"@\", \"queues\": 1, \"queue_size\": 4}", NULL },
                { "{}", "virtio-blk.path: missing required field" },
                { "{\"path\": 5}", "virtio-blk.path: must be a string" },
                { "{\"path\": \"@\", \"size\": 5}", "virtio-blk.size: unknown field" },
                { "{\"path\": \"@\", \"readonly\": 1}", "virtio-blk.readonly: must be a boolean" },
                { "{\"path\": \"@\", \"serial\": \"012345678901234567890\"}",
                  "virtio-blk.serial: \"012345678901234567890\" is 21 bytes, longer than the limit of 20" },
                { "{\"path\": \"@\", \"serial\": \"a\\u0000b\"}", "virtio-blk.serial: must not contain a NUL" },
                { "{\"path\": \"@\\u0000x\"}", "virtio-blk.path: must not contain a NUL" },
                { "{\"path\": \"@\", \"queues\": 0}", "virtio-blk.queues: 0 is out of range 1..16" },
                { "{\"path\": \"@\", \"queues\": 17}", "virtio-blk.queues: 17 is out of range 1..16" },
                { "{\"path\": \"@\", \"queue_size\": 100}", "virtio-blk.queue_size: 100 is not a power of 2" },
                { "{\"path\": \"@\", \"queue_size\": 2}", "virtio-blk.queue_size: 2 is out of range 4..32768" },
                { "{\"path\": \"@\", \"queue_size\": 65536}", "virtio-blk.queue_size: 65536 is out of range" },
                { "{\"path\": \"/dev/null\"}", "virtio-blk.path: /dev/null is a character device" },
        };

        g_assert_nonnull(kind);
        g_assert_cmpstr(kind->seccomp_policy, ==, "virtio-blk");
        g_assert_nonnull(kind->owned_fds);
        g_assert_true(g_file_set_contents(img, buf, sizeof(buf), NULL));
        for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *text = NULL;
                json_object *cfg = NULL;
                void *dev = NULL;
                char **parts = g_strsplit(cases[i].config, "@", -1);
                int r;

                text = g_strjoinv(img, parts);
                g_strfreev(parts);
                g_assert_cmpint(json_parse_object(text, &cfg, err, sizeof(err)), ==, 0);
                err[0] = 0;
                r = kind->create(cfg, &dev, err, sizeof(err));
                json_object_put(cfg);
                if (!cases[i].error) {
                        int *fds[DEVICE_OWNED_FDS_MAX];

                        if (r < 0)
                                g_error("%s refused: %s", text, err);
                        /* The jail keeps the image fd. */
                        g_assert_cmpuint(kind->owned_fds(dev, fds), ==, 1);
                        g_assert_cmpint(fcntl(*fds[0], F_GETFL) & O_ACCMODE, ==,
                                        strstr(text, "readonly") ? O_RDONLY : O_RDWR);
                        kind->destroy(dev);
                } else {
                        g_assert_cmpint(r, <, 0);
                        if (!g_str_has_prefix(err, cases[i].error))
                                g_error("%s: '%s' does not start with '%s'", text, err, cases[i].error);
                }
        }
        unlink(img);
        rmdir(dir);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
#define RW_TEST(name, fn) g_test_add("/virtio-blk/" name, struct fixture, NULL, setup, fn, teardown)
#define RO_TEST(name, fn) g_test_add("/virtio-blk/" name, struct fixture, "ro", setup, fn, teardown)
        RW_TEST("read-returns-image-data", test_read_returns_image_data);
        RW_TEST("read-status-in-data-segment-and-split-header", test_read_status_in_data_segment_and_split_header);
        RW_TEST("write-reaches-file", test_write_reaches_file);
        RW_TEST("flush-and-get-id-serial-nul-padded", test_flush_and_get_id);
        RW_TEST("hostile/short-header-is-ioerr", test_short_header_is_ioerr);
        RW_TEST("hostile/no-status-byte-writes-nothing", test_no_status_byte_writes_nothing);
        RW_TEST("hostile/out-of-range-and-overflow-is-ioerr", test_out_of_range_is_ioerr);
        RW_TEST("hostile/length-not-sector-multiple-is-ioerr", test_length_not_sector_multiple_is_ioerr);
        RW_TEST("hostile/too-many-segments-is-ioerr", test_too_many_segments_is_ioerr);
        RW_TEST("hostile/unknown-type-is-unsupp", test_unknown_type_is_unsupp);
        RW_TEST("hostile/data-in-wrong-direction-is-ioerr", test_data_in_wrong_direction_is_ioerr);
        RO_TEST("hostile/readonly-refuses-writes", test_readonly_refuses_writes);
        RW_TEST("discard-and-write-zeroes-zero-the-file", test_discard_and_write_zeroes);
        RW_TEST("write-zeroes-without-zero-range-writes-zeroes", test_write_zeroes_without_zero_range);
        RW_TEST("hostile/bad-discard-changes-nothing", test_bad_discard_changes_nothing);
        RW_TEST("host-io-errors-are-ioerr", test_host_io_errors_are_ioerr);
        g_test_add_func("/virtio-blk/config-space-layout", test_config_space_layout);
        g_test_add_func("/virtio-blk/image-open-refuses-non-images", test_image_open);
        g_test_add_func("/virtio-blk/image-open-block-device-size", test_image_open_block_device);
        g_test_add_func("/virtio-blk/kind-config-fields", test_kind_config);
        return g_test_run();
}
