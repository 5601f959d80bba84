/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-blk through the real devmgr and its jail: the test plays KVM and
 * the guest driver (virtio-driver.h) against the device process, with a
 * temporary image of known content that the test reads back on the host
 * side. Every device stays `active` (no seccomp kill) to the end. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "virtio-driver.h"

#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"
#define DEVICE_IFACE "org.polyvm.Device1"
#define RAM_SIZE (8u << 20)
#define SECTORS 256u
#define IMAGE_BYTES (SECTORS * 512u)
#define DATA_MAX (64u * 1024)
#define QUEUE_SIZE 64

#define F(b) (1ULL << (b))
#define F_VERSION_1 F(32)
#define F_SEG_MAX F(2)
#define F_RO F(5)
#define F_BLK_SIZE F(6)
#define F_FLUSH F(9)
#define F_MQ F(12)
#define F_DISCARD F(13)
#define F_WRITE_ZEROES F(14)

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2

static struct harness h;
static char *tmpdir;

struct blk {
        struct vdrv d;
        char *path;      /* the Device1 object */
        pid_t pid;
        char *image;     /* the host file */
        uint64_t hdr, data, status; /* request buffers in guest RAM */
        struct vdrv_queue *q[2];
};

static uint8_t pattern(unsigned seed, uint64_t off) {
        return (uint8_t) (off * 13 + off / 512 + seed);
}

static char *make_image(const char *name, unsigned seed) {
        char *p = g_build_filename(tmpdir, name, NULL);
        uint8_t *buf = g_malloc(IMAGE_BYTES);

        for (unsigned i = 0; i < IMAGE_BYTES; i++)
                buf[i] = pattern(seed, i);
        g_assert_true(g_file_set_contents(p, (const char *) buf, IMAGE_BYTES, NULL));
        g_free(buf);
        return p;
}

static uint8_t *read_image(const char *image) {
        gchar *data = NULL;
        gsize len = 0;

        g_assert_true(g_file_get_contents(image, &data, &len, NULL));
        g_assert_cmpuint(len, ==, IMAGE_BYTES);
        return (uint8_t *) data;
}

static void assert_image_is_pattern(const char *image, unsigned seed) {
        g_autofree uint8_t *data = read_image(image);

        for (unsigned i = 0; i < IMAGE_BYTES; i++)
                if (data[i] != pattern(seed, i))
                        g_error("%s: byte %u is 0x%02x, not 0x%02x", image, i, data[i], pattern(seed, i));
}

/* Creates, activates and drives a disk up to DRIVER_OK with the features
 * the device offers (minus MQ when one queue). */
static void blk_start(struct blk *b, const char *image, const char *extra) {
        g_autofree char *config = g_strdup_printf("{\"path\": \"%s\"%s%s}", image, extra ? ", " : "", extra ?: "");
        uint64_t offered;
        int ep;

        memset(b, 0, sizeof(*b));
        ep = vdrv_create_device(&h, "virtio-blk", config, &b->path, &b->pid);
        b->image = g_strdup(image);
        vdrv_init(&b->d, ep, 2, RAM_SIZE);
        g_assert_true(harness_wait_property(&h, DEVMGR, b->path, DEVICE_IFACE, "State", "active", 5000));
        vdrv_setup_ioevents(&b->d);
        vdrv_setup_msix(&b->d);
        offered = vdrv_device_features(&b->d);
        /* All of it but EVENT_IDX: this driver does not move used_event. */
        g_assert_cmphex(vdrv_negotiate(&b->d, offered & ~F(29)), ==, 0x0b);
        vdrv_common_write(&b->d, 0x10, 2, 0); /* config vector */
        for (unsigned q = 0; q < b->d.num_queues && q < 2; q++)
                b->q[q] = vdrv_queue_setup(&b->d, q, QUEUE_SIZE, (uint16_t) (q + 1));
        vdrv_driver_ok(&b->d);
        g_assert_cmphex(vdrv_status(&b->d), ==, 0x0f);
        b->hdr = vdrv_alloc(&b->d, 16, 16);
        b->data = vdrv_alloc(&b->d, DATA_MAX, 4096);
        b->status = vdrv_alloc(&b->d, 1, 1);
}

/* Still alive, jailed, never killed by its filter; then a clean Shutdown. */
static void blk_stop(struct blk *b) {
        g_autofree char *state = harness_get_string(&h, DEVMGR, b->path, DEVICE_IFACE, "State");
        g_autofree char *reason = harness_get_string(&h, DEVMGR, b->path, DEVICE_IFACE, "ExitReason");

        g_assert_cmpstr(state, ==, "active");
        g_assert_cmpstr(reason, ==, "");
        g_assert_cmpint(proto_call(b->d.ep, PROTO_SHUTDOWN, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_true(harness_wait_property(&h, DEVMGR, b->path, DEVICE_IFACE, "State", "exited", 5000));
        close(b->d.ep);
        vdrv_done(&b->d);
        g_free(b->path);
        g_free(b->image);
}

static uint64_t cfg_read(struct blk *b, uint32_t off, uint32_t len) {
        return vdrv_bar_read(&b->d, b->d.device + off, len);
}

/* Queues a chain on queue qi, kicks, waits for it to come back; returns
 * the used length. */
static uint32_t submit(struct blk *b, unsigned qi, const struct vdrv_buf *bufs, unsigned n) {
        uint32_t id, len;
        uint16_t head = vdrv_queue_add(&b->d, b->q[qi], bufs, n);

        vdrv_kick(&b->d, qi);
        /* An interrupt may be left over from a chain already seen. */
        for (int tries = 0; !vdrv_queue_used(&b->d, b->q[qi], &id, &len); tries++) {
                g_assert_cmpint(tries, <, 3);
                if (!vdrv_wait_irq(&b->d, qi + 1, 5000))
                        g_error("no interrupt: status 0x%x, used idx %u", vdrv_status(&b->d),
                                *(uint16_t *) ((uint8_t *) vdrv_ptr(&b->d, b->q[qi]->used) + 2));
        }
        g_assert_cmpuint(id, ==, head);
        return len;
}

/* One well-formed request: header, data (len bytes of b->data, written by
 * the device for IN and GET_ID), status. Returns the status. */
static uint8_t request_on(struct blk *b, unsigned qi, uint32_t type, uint64_t sector, uint32_t len) {
        uint8_t *hdr = vdrv_ptr(&b->d, b->hdr), *st = vdrv_ptr(&b->d, b->status);
        bool dev_writes = type == T_IN || type == T_GET_ID;
        struct vdrv_buf bufs[3];
        unsigned n = 0;
        uint32_t used;

        memset(hdr, 0, 16);
        memcpy(hdr, &type, 4);
        memcpy(hdr + 8, &sector, 8);
        *st = 0xee;
        bufs[n++] = (struct vdrv_buf) { b->hdr, 16, false };
        if (len > 0)
                bufs[n++] = (struct vdrv_buf) { b->data, len, dev_writes };
        bufs[n++] = (struct vdrv_buf) { b->status, 1, true };
        used = submit(b, qi, bufs, n);
        g_assert_cmpuint(*st, !=, 0xee);
        if (*st == S_OK)
                g_assert_cmpuint(used, ==, (dev_writes ? MIN(len, type == T_GET_ID ? 20u : len) : 0) + 1);
        return *st;
}

static uint8_t request(struct blk *b, uint32_t type, uint64_t sector, uint32_t len) {
        return request_on(b, 0, type, sector, len);
}

static uint8_t *data(struct blk *b) {
        return vdrv_ptr(&b->d, b->data);
}

/* Reads sectors [sector, sector + n) and compares them with the file. */
static void assert_reads_file(struct blk *b, uint64_t sector, unsigned n) {
        g_autofree uint8_t *file = read_image(b->image);

        memset(data(b), 0x55, n * 512);
        g_assert_cmpuint(request(b, T_IN, sector, n * 512), ==, S_OK);
        g_assert_cmpmem(data(b), n * 512, file + sector * 512, n * 512);
}

static void test_virtio_blk_reads_writes_flushes_and_gets_id(void) {
        g_autofree char *image = make_image("rw.img", 1);
        g_autofree uint8_t *file = NULL;
        uint64_t offered;
        struct blk b;

        blk_start(&b, image, "\"serial\": \"polyvm-serial-42\"");
        offered = vdrv_device_features(&b.d);
        g_assert_cmphex(offered & (F_VERSION_1 | F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_DISCARD | F_WRITE_ZEROES), ==,
                        F_VERSION_1 | F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_DISCARD | F_WRITE_ZEROES);
        g_assert_cmphex(offered & (F_RO | F_MQ), ==, 0);
        g_assert_cmpuint(b.d.num_queues, ==, 1);
        /* 5.2.4: capacity, seg_max (queue size 256 - 2), blk_size. */
        g_assert_cmpuint(cfg_read(&b, 0, 8), ==, SECTORS);
        g_assert_cmpuint(cfg_read(&b, 12, 4), ==, 254);
        g_assert_cmpuint(cfg_read(&b, 20, 4), ==, 512);
        g_assert_cmpuint(cfg_read(&b, 34, 2), ==, 1);

        assert_reads_file(&b, 0, 8);
        assert_reads_file(&b, SECTORS - 100, 100);

        /* The jail lets it write inside its image, never grow it. */
        {
                g_autofree char *limits_path = g_strdup_printf("/proc/%d/limits", (int) b.pid);
                g_autofree char *limits = NULL, *want = g_strdup_printf("%u", IMAGE_BYTES);
                const char *line;

                g_assert_true(g_file_get_contents(limits_path, &limits, NULL, NULL));
                line = strstr(limits, "Max file size");
                g_assert_nonnull(line);
                line += strlen("Max file size");
                while (*line == ' ')
                        line++;
                g_assert_true(g_str_has_prefix(line, want));
        }

        /* Write 3 sectors at 5 and flush: the host file has them. */
        for (unsigned i = 0; i < 3 * 512; i++)
                data(&b)[i] = (uint8_t) (i * 31 + 7);
        g_assert_cmpuint(request(&b, T_OUT, 5, 3 * 512), ==, S_OK);
        g_assert_cmpuint(request(&b, T_FLUSH, 0, 0), ==, S_OK);
        file = read_image(image);
        for (unsigned i = 0; i < IMAGE_BYTES; i++) {
                uint8_t want = i >= 5 * 512 && i < 8 * 512 ? (uint8_t) ((i - 5 * 512) * 31 + 7) : pattern(1, i);

                if (file[i] != want)
                        g_error("byte %u of the image is 0x%02x, not 0x%02x", i, file[i], want);
        }
        assert_reads_file(&b, 4, 5);

        /* GET_ID: the serial, NUL-padded to 20 bytes. */
        memset(data(&b), 0xaa, 20);
        g_assert_cmpuint(request(&b, T_GET_ID, 0, 20), ==, S_OK);
        g_assert_cmpmem(data(&b), 20, "polyvm-serial-42\0\0\0\0", 20);

        /* DISCARD of sectors 100..109: reads back as zeroes. */
        {
                uint64_t sector = 100;
                uint32_t num = 10, flags = 0;

                memcpy(data(&b), &sector, 8);
                memcpy(data(&b) + 8, &num, 4);
                memcpy(data(&b) + 12, &flags, 4);
                g_assert_cmpuint(request(&b, T_DISCARD, 0, 16), ==, S_OK);
                g_assert_cmpuint(request(&b, T_IN, 100, 10 * 512), ==, S_OK);
                for (unsigned i = 0; i < 10 * 512; i++)
                        g_assert_cmpuint(data(&b)[i], ==, 0);
        }
        blk_stop(&b);
}

static void test_virtio_blk_readonly_refuses_writes(void) {
        g_autofree char *image = make_image("ro.img", 2);
        struct blk b;

        blk_start(&b, image, "\"readonly\": true");
        g_assert_cmphex(vdrv_device_features(&b.d) & (F_RO | F_DISCARD | F_WRITE_ZEROES), ==, F_RO);
        assert_reads_file(&b, 0, 16);
        memset(data(&b), 0x77, 4096);
        g_assert_cmpuint(request(&b, T_OUT, 0, 4096), ==, S_IOERR);
        g_assert_cmpuint(request(&b, T_FLUSH, 0, 0), ==, S_OK);
        memset(data(&b), 0, 16);
        data(&b)[8] = 1;
        g_assert_cmpuint(request(&b, T_DISCARD, 0, 16), ==, S_IOERR);
        assert_image_is_pattern(image, 2);
        assert_reads_file(&b, 0, 16);
        blk_stop(&b);
}

/* Two disks at once, requests interleaved: each file gets its own data
 * only. */
static void test_virtio_blk_two_disks_at_once(void) {
        g_autofree char *image1 = make_image("one.img", 3), *image2 = make_image("two.img", 4);
        g_autofree uint8_t *f1 = NULL, *f2 = NULL;
        struct blk b1, b2;

        blk_start(&b1, image1, NULL);
        blk_start(&b2, image2, "\"serial\": \"second\"");
        g_assert_cmpint(b1.pid, !=, b2.pid);
        memset(data(&b1), 0x11, 1024);
        memset(data(&b2), 0x22, 1024);
        g_assert_cmpuint(request(&b1, T_OUT, 7, 1024), ==, S_OK);
        g_assert_cmpuint(request(&b2, T_OUT, 9, 1024), ==, S_OK);
        g_assert_cmpuint(request(&b2, T_FLUSH, 0, 0), ==, S_OK);
        g_assert_cmpuint(request(&b1, T_FLUSH, 0, 0), ==, S_OK);
        assert_reads_file(&b1, 0, 32);
        assert_reads_file(&b2, 0, 32);
        f1 = read_image(image1);
        f2 = read_image(image2);
        for (unsigned i = 0; i < IMAGE_BYTES; i++) {
                g_assert_cmpuint(f1[i], ==, i >= 7 * 512 && i < 9 * 512 ? 0x11 : pattern(3, i));
                g_assert_cmpuint(f2[i], ==, i >= 9 * 512 && i < 11 * 512 ? 0x22 : pattern(4, i));
        }
        g_assert_cmpuint(request(&b2, T_GET_ID, 0, 20), ==, S_OK);
        g_assert_cmpmem(data(&b2), 6, "second", 6);
        blk_stop(&b1);
        blk_stop(&b2);
}

/* Hostile requests get IOERR (UNSUPP for an unknown type, len 0 without a
 * status byte) and the device goes on serving. */
static void test_virtio_blk_hostile_requests_get_ioerr_and_device_serves(void) {
        g_autofree char *image = make_image("hostile.img", 5);
        uint8_t *hdr, *st;
        uint64_t sector;
        struct blk b;

        blk_start(&b, image, NULL);
        hdr = vdrv_ptr(&b.d, b.hdr);
        st = vdrv_ptr(&b.d, b.status);
        g_assert_cmpuint(request(&b, T_IN, SECTORS, 512), ==, S_IOERR);
        g_assert_cmpuint(request(&b, T_IN, SECTORS - 1, 1024), ==, S_IOERR);
        g_assert_cmpuint(request(&b, T_OUT, UINT64_MAX, 512), ==, S_IOERR);
        g_assert_cmpuint(request(&b, T_OUT, UINT64_MAX / 512 + 1, 512), ==, S_IOERR);
        g_assert_cmpuint(request(&b, T_IN, 0, 100), ==, S_IOERR);
        g_assert_cmpuint(request(&b, 77, 0, 512), ==, S_UNSUPP);

        /* A 15-byte header. */
        memset(hdr, 0, 16);
        *st = 0xee;
        g_assert_cmpuint(submit(&b, 0,
                                (struct vdrv_buf[]) { { b.hdr, 15, false }, { b.data, 512, true },
                                                      { b.status, 1, true } }, 3), ==, 1);
        g_assert_cmpuint(*st, ==, S_IOERR);

        /* No writable byte at all: nothing written, len 0. */
        sector = 0;
        memcpy(hdr + 8, &sector, 8);
        g_assert_cmpuint(submit(&b, 0, (struct vdrv_buf[]) { { b.hdr, 16, false }, { b.data, 512, false } }, 2),
                         ==, 0);

        assert_image_is_pattern(image, 5);
        assert_reads_file(&b, 0, 128);
        blk_stop(&b);
}

/* Written and flushed data is in the file even when the device process
 * is killed right after (DestroyDevice is a SIGKILL). */
static void test_virtio_blk_flushed_data_survives_kill(void) {
        g_autofree char *image = make_image("kill.img", 6);
        g_autofree uint8_t *file = NULL;
        g_autofree char *err = NULL;
        struct blk b;

        blk_start(&b, image, NULL);
        memset(data(&b), 0xc3, 8 * 512);
        g_assert_cmpuint(request(&b, T_OUT, 40, 8 * 512), ==, S_OK);
        g_assert_cmpuint(request(&b, T_FLUSH, 0, 0), ==, S_OK);
        {
                g_autofree char *state = harness_get_string(&h, DEVMGR, b.path, DEVICE_IFACE, "State");

                g_assert_cmpstr(state, ==, "active");
        }
        err = harness_call_error(&h, DEVMGR, DEVMGR_PATH, DEVMGR, "DestroyDevice", NULL, "o", b.path);
        g_assert_null(err);
        g_assert_true(harness_wait_pid_gone(b.pid, 5000));
        file = read_image(image);
        for (unsigned i = 0; i < IMAGE_BYTES; i++)
                g_assert_cmpuint(file[i], ==, i >= 40 * 512 && i < 48 * 512 ? 0xc3 : pattern(6, i));
        close(b.d.ep);
        vdrv_done(&b.d);
        g_free(b.path);
        g_free(b.image);
}

/* Two queues: MQ offered, num_queues 2, and both serve. */
static void test_virtio_blk_two_queues(void) {
        g_autofree char *image = make_image("mq.img", 7);
        struct blk b;

        blk_start(&b, image, "\"queues\": 2, \"queue_size\": 64");
        g_assert_true(vdrv_device_features(&b.d) & F_MQ);
        g_assert_cmpuint(b.d.num_queues, ==, 2);
        g_assert_cmpuint(cfg_read(&b, 34, 2), ==, 2);
        g_assert_cmpuint(cfg_read(&b, 12, 4), ==, 62);
        memset(data(&b), 0x5e, 512);
        g_assert_cmpuint(request_on(&b, 1, T_OUT, 3, 512), ==, S_OK);
        g_assert_cmpuint(request_on(&b, 1, T_FLUSH, 0, 0), ==, S_OK);
        memset(data(&b), 0, 512);
        g_assert_cmpuint(request_on(&b, 0, T_IN, 3, 512), ==, S_OK);
        for (unsigned i = 0; i < 512; i++)
                g_assert_cmpuint(data(&b)[i], ==, 0x5e);
        blk_stop(&b);
}

/* CreateDevice refuses what is not an image, naming the field. */
static void test_virtio_blk_create_refuses_bad_images(void) {
        g_autofree char *image = make_image("real.img", 8);
        g_autofree char *link = g_build_filename(tmpdir, "link.img", NULL);
        struct {
                char *config;
                const char *message;
        } cases[] = {
                { g_strdup_printf("{\"path\": \"%s\"}", link), "virtio-blk.path: " },
                { g_strdup_printf("{\"path\": \"%s\"}", tmpdir), "is a directory" },
                { g_strdup("{\"path\": \"/dev/null\"}"), "is a character device" },
                { g_strdup("{\"path\": \"relative.img\"}"), "must be an absolute path" },
                { g_strdup_printf("{\"path\": \"%s\", \"serial\": \"123456789012345678901\"}", image),
                  "virtio-blk.serial" },
                { g_strdup("{}"), "virtio-blk.path: missing required field" },
        };

        g_assert_cmpint(symlink(image, link), ==, 0);
        for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *msg = NULL;
                g_autofree char *name = harness_call_error(&h, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &msg,
                                                           "sss", "vm1", "virtio-blk", cases[i].config);

                g_assert_cmpstr(name, ==, "org.polyvm.Error.InvalidConfig");
                if (!strstr(msg, cases[i].message))
                        g_error("%s: '%s' does not say '%s'", cases[i].config, msg, cases[i].message);
                g_free(cases[i].config);
        }
        unlink(link);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        tmpdir = g_dir_make_tmp("test-virtio-blk-XXXXXX", NULL);
        g_assert_nonnull(tmpdir);
        harness_start(&h);
        g_test_add_func("/virtio-blk/reads-writes-flushes-and-gets-id",
                        test_virtio_blk_reads_writes_flushes_and_gets_id);
        g_test_add_func("/virtio-blk/readonly-refuses-writes", test_virtio_blk_readonly_refuses_writes);
        g_test_add_func("/virtio-blk/two-disks-at-once", test_virtio_blk_two_disks_at_once);
        g_test_add_func("/virtio-blk/hostile-requests-get-ioerr-and-device-serves",
                        test_virtio_blk_hostile_requests_get_ioerr_and_device_serves);
        g_test_add_func("/virtio-blk/flushed-data-survives-kill", test_virtio_blk_flushed_data_survives_kill);
        g_test_add_func("/virtio-blk/two-queues", test_virtio_blk_two_queues);
        g_test_add_func("/virtio-blk/create-refuses-bad-images", test_virtio_blk_create_refuses_bad_images);
        r = g_test_run();
        harness_stop(&h);
        {
                g_autoptr(GDir) dir = g_dir_open(tmpdir, 0, NULL);
                const char *name;

                while (dir && (name = g_dir_read_name(dir))) {
                        g_autofree char *p = g_build_filename(tmpdir, name, NULL);

                        unlink(p);
                }
                rmdir(tmpdir);
                g_free(tmpdir);
        }
        return r;
}
