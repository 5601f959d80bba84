/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-blk on swapped-out guest memory, without KVM: this test owns VM
 * vm1's memory (memmgr's memfd, its mapping registered with the main uffd
 * as the launcher does) and drives a jailed virtio-blk device made by the
 * real devmgr on it (virtio-driver.[ch]). The device maps guest memory and
 * its uffd reaches memmgr through devmgr. With the VM swapped out, the
 * device reads request buffers that are only in the swap file and writes
 * into others (its faults served through its own uffd); then again while
 * SwapIn runs. Every byte of the disk and of guest memory is checked. */

#include <string.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "harness.h"
#include "virtio-driver.h"

#define MEMMGR "org.polyvm.MemoryManager1"
#define MEMMGR_PATH "/org/polyvm/MemoryManager1"
#define MEMORY1 "org.polyvm.Memory1"
#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVICE_IFACE "org.polyvm.Device1"
#define MIB (UINT64_C(1) << 20)
#define VM "vm1" /* the VM vdrv_create_device() creates devices for */
#define RAM_SIZE (64 * MIB)
#define IMAGE_BYTES (8 * MIB)
#define HALF (IMAGE_BYTES / 2)
#define CHUNK (64u * 1024) /* bytes per request */
#define QUEUE_SIZE 64
#define EVENT_IDX (UINT64_C(1) << 29)
#define T_IN 0
#define T_OUT 1
#define S_OK 0

static struct harness h;
static char *tmpdir;

struct disk {
        struct vdrv d;
        char *path, *image, *memory_path;
        pid_t pid;
        struct vdrv_queue *q;
        uint64_t hdr, status, buf[2]; /* two HALF-sized buffers in guest RAM */
};

static uint8_t pattern(unsigned seed, uint64_t off) {
        return (uint8_t) ((off * 2654435761u) >> 13 ^ seed * 97 ^ (off >> 12));
}

static void fill(uint8_t *p, uint64_t len, unsigned seed, uint64_t base) {
        for (uint64_t i = 0; i < len; i++)
                p[i] = pattern(seed, base + i);
}

static void assert_pattern(const uint8_t *p, uint64_t len, unsigned seed, uint64_t base, const char *what) {
        for (uint64_t i = 0; i < len; i++)
                if (p[i] != pattern(seed, base + i))
                        g_error("%s: byte 0x%" G_GINT64_MODIFIER "x is 0x%02x, not 0x%02x", what, i, p[i],
                                pattern(seed, base + i));
}

static uint8_t *read_image(const char *image) {
        gchar *data = NULL;
        gsize len = 0;

        g_assert_true(g_file_get_contents(image, &data, &len, NULL));
        g_assert_cmpuint(len, ==, IMAGE_BYTES);
        return (uint8_t *) data;
}

static void swap_call(struct disk *k, const char *method, const char *until) {
        g_assert_null(harness_call_error(&h, MEMMGR, k->memory_path, MEMORY1, method, NULL, ""));
        if (until && !harness_wait_property(&h, MEMMGR, k->memory_path, MEMORY1, "SwapState", until, 60000)) {
                g_autofree char *err = harness_get_string(&h, MEMMGR, k->memory_path, MEMORY1, "LastError");
                g_error("%s did not reach %s (LastError: %s)", method, until, err);
        }
}

/* Faults memmgr served through uffd index i of the VM's list. */
static uint64_t uffd_faults(struct disk *k, guint i) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint64_t v = 0, n = 0;
        guint at = 0;

        g_assert_cmpint(sd_bus_get_property(h.bus, MEMMGR, k->memory_path, MEMORY1, "UffdFaults", &error, &reply,
                                            "at"), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "t"), >, 0);
        while (sd_bus_message_read(reply, "t", &v) > 0)
                if (at++ == i)
                        n = v;
        sd_bus_message_unref(reply);
        return n;
}

/* The VM's memory as the launcher has it, then the disk on it. */
static void disk_start(struct disk *k) {
        g_autofree char *config = NULL;
        int memfd, ep;
        void *ram;

        memset(k, 0, sizeof(*k));
        k->memory_path = harness_memory_path(VM);
        ram = harness_map_guarded_memory(&h, VM, RAM_SIZE, &memfd);

        k->image = g_build_filename(tmpdir, "swap-disk.img", NULL);
        {
                g_autofree uint8_t *bytes = g_malloc(IMAGE_BYTES);
                fill(bytes, IMAGE_BYTES, 1, 0);
                g_assert_true(g_file_set_contents(k->image, (const char *) bytes, IMAGE_BYTES, NULL));
        }
        config = g_strdup_printf("{\"path\": \"%s\"}", k->image);
        ep = vdrv_create_device(&h, "virtio-blk", config, &k->path, &k->pid);
        vdrv_init_with_ram(&k->d, ep, 2, memfd, ram, RAM_SIZE);
        g_assert_true(harness_wait_property(&h, DEVMGR, k->path, DEVICE_IFACE, "State", "active", 5000));
        vdrv_setup_ioevents(&k->d);
        vdrv_setup_msix(&k->d);
        g_assert_cmphex(vdrv_negotiate(&k->d, vdrv_device_features(&k->d) & ~EVENT_IDX), ==, 0x0b);
        vdrv_common_write(&k->d, 0x10, 2, 0); /* config vector */
        k->q = vdrv_queue_setup(&k->d, 0, QUEUE_SIZE, 1);
        vdrv_driver_ok(&k->d);
        k->hdr = vdrv_alloc(&k->d, 16, 16);
        k->status = vdrv_alloc(&k->d, 1, 1);
        k->buf[0] = vdrv_alloc(&k->d, HALF, 4096);
        k->buf[1] = vdrv_alloc(&k->d, HALF, 4096);
}

static void disk_stop(struct disk *k) {
        g_autofree char *state = harness_get_string(&h, DEVMGR, k->path, DEVICE_IFACE, "State");

        g_assert_cmpstr(state, ==, "active"); /* never killed by a fault it took */
        g_assert_cmpint(proto_call(k->d.ep, PROTO_SHUTDOWN, NULL, 0, NULL, 0, NULL, 2000, NULL, 0), ==, 0);
        g_assert_true(harness_wait_property(&h, DEVMGR, k->path, DEVICE_IFACE, "State", "exited", 5000));
        close(k->d.ep);
        vdrv_done(&k->d);
        g_assert_null(harness_call_error(&h, MEMMGR, MEMMGR_PATH, MEMMGR, "FreeMemory", NULL, "s", VM));
        g_free(k->path);
        g_free(k->image);
        g_free(k->memory_path);
}

/* One request of CHUNK bytes at guest address gpa and disk offset off. */
static void request(struct disk *k, uint32_t type, uint64_t off, uint64_t gpa) {
        uint8_t *hdr = vdrv_ptr(&k->d, k->hdr), *st = vdrv_ptr(&k->d, k->status);
        uint64_t sector = off / 512;
        struct vdrv_buf bufs[3] = {
                { k->hdr, 16, false },
                { gpa, CHUNK, type == T_IN },
                { k->status, 1, true },
        };
        uint32_t id, len;
        uint16_t head;

        memset(hdr, 0, 16);
        memcpy(hdr, &type, 4);
        memcpy(hdr + 8, &sector, 8);
        *st = 0xee;
        head = vdrv_queue_add(&k->d, k->q, bufs, 3);
        vdrv_kick(&k->d, 0);
        for (int tries = 0; !vdrv_queue_used(&k->d, k->q, &id, &len); tries++) {
                g_assert_cmpint(tries, <, 3);
                g_assert_true(vdrv_wait_irq(&k->d, 1, 10000));
        }
        g_assert_cmpuint(id, ==, head);
        g_assert_cmpuint(*st, ==, S_OK);
        g_assert_cmpuint(len, ==, (type == T_IN ? CHUNK : 0) + 1);
}

/* buf[from] goes to the disk's first half, the disk's second half into
 * buf[to], CHUNK by CHUNK. */
static void copy_through_disk(struct disk *k, unsigned from, unsigned to) {
        for (uint64_t o = 0; o < HALF; o += CHUNK)
                request(k, T_OUT, o, k->buf[from] + o);
        for (uint64_t o = 0; o < HALF; o += CHUNK)
                request(k, T_IN, HALF + o, k->buf[to] + o);
}

static void test_blk_on_swapped_out_memory_loses_nothing(void) {
        struct disk k;
        g_autofree uint8_t *image = NULL;
        uint64_t device_faults;

        disk_start(&k);
        fill(vdrv_ptr(&k.d, k.buf[0]), HALF, 2, 0);
        memset(vdrv_ptr(&k.d, k.buf[1]), 0x55, HALF); /* data, not zeros: it goes to the file */

        /* Swapped out: the device's DMA faults through its own uffd. */
        swap_call(&k, "SwapOut", "active");
        g_assert_cmpuint(harness_memory_u64(&h, k.memory_path, "ResidentBytes"), <, RAM_SIZE / 50);
        copy_through_disk(&k, 0, 1);
        device_faults = uffd_faults(&k, 1);
        g_test_message("device faults served while swapped out: %" G_GUINT64_FORMAT, device_faults);
        /* It read buf[0] from the file: a fault per 16 pages at least
         * (memmgr reads ahead of faults in order). */
        g_assert_cmpuint(device_faults, >=, HALF / 4096 / 16);
        image = read_image(k.image);
        assert_pattern(image, HALF, 2, 0, "disk, first half (from swapped-out buf[0])");
        assert_pattern(image + HALF, HALF, 1, HALF, "disk, second half (untouched)");
        assert_pattern(vdrv_ptr(&k.d, k.buf[1]), HALF, 1, HALF, "buf[1] (read into swapped-out memory)");
        g_clear_pointer(&image, g_free);

        /* Out again, and the same the other way while SwapIn runs. */
        swap_call(&k, "SwapOut", "active");
        swap_call(&k, "SwapIn", NULL);
        copy_through_disk(&k, 1, 0);
        g_assert_true(harness_wait_property(&h, MEMMGR, k.memory_path, MEMORY1, "SwapState", "ready", 60000));
        image = read_image(k.image);
        assert_pattern(image, HALF, 1, HALF, "disk, first half (from buf[1] during SwapIn)");
        assert_pattern(image + HALF, HALF, 1, HALF, "disk, second half");
        assert_pattern(vdrv_ptr(&k.d, k.buf[0]), HALF, 1, HALF, "buf[0] (read during SwapIn)");
        g_assert_cmpuint(harness_memory_u64(&h, k.memory_path, "ResidentBytes"), >=, 2 * HALF);
        disk_stop(&k);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        tmpdir = g_dir_make_tmp("polyvm-virtio-blk-swap-XXXXXX", NULL);
        g_assert_nonnull(tmpdir);
        harness_start(&h);
        g_test_add_func("/virtio-blk/on-swapped-out-memory-loses-nothing", test_blk_on_swapped_out_memory_loses_nothing);
        r = g_test_run();
        harness_stop(&h);
        (void) g_remove(tmpdir);
        return r;
}
