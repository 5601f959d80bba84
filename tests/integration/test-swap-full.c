/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memmgr's SwapOut on a full disk, for real: memmgr's state dir is a 2 MiB
 * tmpfs (in this test's private mount namespace, which the bus daemon and
 * the memmgr it activates inherit), the VM has 16 MiB of random data. The
 * test itself is the "launcher": it owns the memory, maps it and registers
 * the main uffd, so it checks every byte through its own mapping. */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bus-util.h"
#include "harness.h"

#define MEMMGR "org.polyvm.MemoryManager1"
#define MEMMGR_PATH "/org/polyvm/MemoryManager1"
#define MEMORY1 "org.polyvm.Memory1"
#define MIB (UINT64_C(1) << 20)
#define VM_SIZE (16 * MIB)

static struct harness h;
static char *state_dir;

static uint64_t fnv1a(const void *p, size_t len) {
        const uint8_t *b = p;
        uint64_t x = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < len; i++)
                x = (x ^ b[i]) * UINT64_C(0x100000001b3);
        return x;
}

static char *get_string(const char *path, const char *property) {
        return harness_get_string(&h, MEMMGR, path, MEMORY1, property);
}

static void tmpfs_mount(const char *size) {
        g_autofree char *opts = g_strdup_printf("size=%s,mode=0700", size);

        g_assert_cmpint(mount("polyvm-swap-full", state_dir, "tmpfs", 0, opts), ==, 0);
}

static void tmpfs_resize(const char *size) {
        g_autofree char *opts = g_strdup_printf("size=%s", size);

        g_assert_cmpint(mount(NULL, state_dir, NULL, MS_REMOUNT, opts), ==, 0);
}

/* Bytes free on the state dir's file system. */
static uint64_t state_dir_free(void) {
        struct statvfs sv;

        g_assert_cmpint(statvfs(state_dir, &sv), ==, 0);
        return (uint64_t) sv.f_bfree * sv.f_frsize;
}

/* A writer in the "guest" during the failing SwapOut: every write must
 * land, also on pages that left and come back. It mirrors its writes in
 * the reference copy. */
struct writer {
        volatile uint64_t *guest;
        uint64_t *copy;
        uint64_t words;
        atomic_bool stop;
        uint64_t writes;
};

static void *writer_main(void *arg) {
        struct writer *w = arg;
        uint64_t x = UINT64_C(0x9e3779b97f4a7c15), counter = 1;

        while (!atomic_load(&w->stop)) {
                uint64_t i;

                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                i = (x % (w->words / 512)) * 512 + 1; /* word 1 of a random page */
                w->guest[i] = counter;
                w->copy[i] = counter++;
        }
        w->writes = counter - 1;
        return NULL;
}

static void test_swap_out_on_full_disk_loses_nothing(void) {
        g_autofree char *file = g_strdup_printf("%s/full-vm.swap", state_dir);
        g_autofree char *path = NULL, *err = NULL, *msg = NULL, *state = NULL;
        struct writer w = { 0 };
        uint64_t *copy, fnv0, x = UINT64_C(0x243f6a8885a308d3), free_before;
        pthread_t thread;
        uint8_t *guest;
        int memfd;
        struct stat st;

        /* The owner's side, as the launcher does it. */
        path = harness_memory_path("full-vm");
        guest = harness_map_guarded_memory(&h, "full-vm", VM_SIZE, &memfd);

        /* Random data in every page: no zero page to skip. */
        copy = g_malloc(VM_SIZE);
        for (uint64_t i = 0; i < VM_SIZE / 8; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                copy[i] = x | 1;
        }
        memcpy(guest, copy, VM_SIZE);
        fnv0 = fnv1a(guest, VM_SIZE);
        g_assert_cmpuint(harness_memory_u64(&h, path, "ResidentBytes"), ==, VM_SIZE);
        free_before = state_dir_free();
        g_test_message("state dir %s: %" G_GUINT64_FORMAT " bytes free for %" G_GUINT64_FORMAT " bytes of guest memory",
                       state_dir, free_before, (uint64_t) VM_SIZE);
        g_assert_cmpuint(free_before, <, VM_SIZE / 4);

        /* SwapOut runs out of room after a few chunks, with a writer busy. */
        w.guest = (volatile uint64_t *) guest;
        w.copy = copy;
        w.words = VM_SIZE / 8;
        g_assert_cmpint(pthread_create(&thread, NULL, writer_main, &w), ==, 0);
        g_assert_null(harness_call_error(&h, MEMMGR, path, MEMORY1, "SwapOut", NULL, ""));
        harness_wait_swap_state(&h, path, "failed");
        atomic_store(&w.stop, true);
        g_assert_cmpint(pthread_join(thread, NULL), ==, 0);
        g_test_message("%" G_GUINT64_FORMAT " writes during the failing SwapOut", w.writes);

        err = get_string(path, "LastError");
        g_test_message("LastError: %s", err);
        g_assert_nonnull(strstr(err, file));
        g_assert_nonnull(strstr(err, g_strerror(ENOSPC)));
        g_clear_pointer(&err, g_free);

        /* Everything is back in memory, nothing in the file, the disk freed. */
        g_assert_cmpuint(harness_memory_u64(&h, path, "ResidentBytes"), ==, VM_SIZE);
        g_assert_cmpuint(harness_memory_u64(&h, path, "SwappedBytes"), ==, 0);
        g_assert_cmpint(stat(file, &st), ==, 0);
        g_assert_cmpuint((uint64_t) st.st_blocks * 512, ==, 0);
        g_assert_cmpuint(state_dir_free(), ==, free_before);
        /* Every byte as the guest left it (the writer's words included). */
        g_assert_true(memcmp(guest, copy, VM_SIZE) == 0);
        fnv0 = fnv1a(copy, VM_SIZE); /* the random data and the writer's words */
        g_assert_cmpuint(fnv1a(guest, VM_SIZE), ==, fnv0);

        /* From failed: SwapIn has nothing to bring back and ends ready. */
        g_assert_null(harness_call_error(&h, MEMMGR, path, MEMORY1, "SwapIn", NULL, ""));
        harness_wait_swap_state(&h, path, "ready");
        state = get_string(path, "LastError");
        g_assert_cmpstr(state, ==, "");
        g_clear_pointer(&state, g_free);

        /* Room again: SwapOut and SwapIn work and keep every byte. */
        tmpfs_resize("64m");
        g_assert_null(harness_call_error(&h, MEMMGR, path, MEMORY1, "SwapOut", NULL, ""));
        harness_wait_swap_state(&h, path, "active");
        g_assert_cmpuint(harness_memory_u64(&h, path, "SwappedBytes"), ==, VM_SIZE);
        g_assert_cmpuint(harness_memory_u64(&h, path, "ResidentBytes"), <, VM_SIZE / 50);
        g_assert_null(harness_call_error(&h, MEMMGR, path, MEMORY1, "SwapIn", NULL, ""));
        harness_wait_swap_state(&h, path, "ready");
        g_assert_cmpuint(harness_memory_u64(&h, path, "ResidentBytes"), ==, VM_SIZE);
        g_assert_true(memcmp(guest, copy, VM_SIZE) == 0);
        g_assert_cmpuint(fnv1a(guest, VM_SIZE), ==, fnv0);

        /* Full again while a first SwapOut left pages out (SwapOut from
         * active rewrites the pages that came back): the failing one must
         * bring back the pages the earlier one put out, too. */
        g_assert_null(harness_call_error(&h, MEMMGR, path, MEMORY1, "SwapOut", NULL, ""));
        harness_wait_swap_state(&h, path, "active");
        memcpy(guest, copy, 8 * MIB); /* faults half of it back in, same bytes */
        /* The file holds 16 MiB, 8 MiB of it in memory again; after Trim
         * 8 MiB: leave room for 1 MiB more. */
        g_assert_null(harness_call_error(&h, MEMMGR, path, MEMORY1, "Trim", NULL, ""));
        /* (Up to 15 pages past the first 8 MiB came back too: read ahead.) */
        g_assert_cmpuint(harness_memory_u64(&h, path, "SwappedBytes"), <=, 8 * MIB);
        g_assert_cmpuint(harness_memory_u64(&h, path, "SwappedBytes"), >=, 8 * MIB - 15 * 4096);
        tmpfs_resize("9m");
        g_assert_null(harness_call_error(&h, MEMMGR, path, MEMORY1, "SwapOut", NULL, ""));
        harness_wait_swap_state(&h, path, "failed");
        err = get_string(path, "LastError");
        g_assert_nonnull(strstr(err, g_strerror(ENOSPC)));
        g_assert_cmpuint(harness_memory_u64(&h, path, "ResidentBytes"), ==, VM_SIZE);
        g_assert_cmpuint(harness_memory_u64(&h, path, "SwappedBytes"), ==, 0);
        g_assert_true(memcmp(guest, copy, VM_SIZE) == 0);
        g_assert_cmpuint(fnv1a(guest, VM_SIZE), ==, fnv0);
        tmpfs_resize("64m");

        g_assert_null(harness_call_error(&h, MEMMGR, MEMMGR_PATH, MEMMGR, "FreeMemory", NULL, "s", "full-vm"));
        g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));
        munmap(guest, VM_SIZE);
        close(memfd);
        g_free(copy);
}

int main(int argc, char **argv) {
        g_autofree char *dir = NULL;
        int r;

        g_test_init(&argc, &argv, NULL);
        /* A mount namespace of our own: the tmpfs vanishes with this
         * process and every child (bus daemon, memmgr), whatever happens. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                g_error("a private mount namespace for the tiny state dir: %s (run as root)", g_strerror(errno));
        dir = g_dir_make_tmp("polyvm-swap-full-XXXXXX", NULL);
        g_assert_nonnull(dir);
        state_dir = dir;
        tmpfs_mount("2m");
        g_setenv("STATE_DIRECTORY", dir, TRUE);
        harness_start(&h);
        g_test_add_func("/swap/out-on-full-disk-loses-nothing", test_swap_out_on_full_disk_loses_nothing);
        r = g_test_run();
        harness_stop(&h);
        (void) umount2(dir, MNT_DETACH);
        (void) rmdir(dir);
        return r;
}
