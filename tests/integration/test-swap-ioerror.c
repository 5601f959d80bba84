/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memmgr's swap when the disk fails, for real: the state dir is an ext4
 * on a loop device (in this test's private mount namespace, which the bus
 * daemon and the memmgr it activates inherit), and the test makes the
 * device end early (LOOP_SET_STATUS64 with a size limit), so that the
 * block layer fails every request beyond it with EIO, as a dying disk
 * does; lifting the limit makes the disk whole again, data intact. The
 * test is the "launcher": it owns the memory and checks every byte. */

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define MEMMGR "org.polyvm.MemoryManager1"
#define MEMMGR_PATH "/org/polyvm/MemoryManager1"
#define MEMORY1 "org.polyvm.Memory1"
#define MIB (UINT64_C(1) << 20)
#define VM_SIZE (32 * MIB)
#define DISK_SIZE (64 * MIB)

static struct harness h;
static char *state_dir;
static int loop_fd = -1;

static char *get_string(const char *path, const char *property) {
        return harness_get_string(&h, MEMMGR, path, MEMORY1, property);
}

/* The device ends after limit bytes (0: at its backing file's end). */
static void disk_limit(uint64_t limit) {
        struct loop_info64 info;

        g_assert_cmpint(ioctl(loop_fd, LOOP_GET_STATUS64, &info), ==, 0);
        info.lo_sizelimit = limit;
        g_assert_cmpint(ioctl(loop_fd, LOOP_SET_STATUS64, &info), ==, 0);
}

static void run(const char *cmd) {
        g_autofree char *out = NULL, *err = NULL;
        int status;

        if (!g_spawn_command_line_sync(cmd, &out, &err, &status, NULL) || !g_spawn_check_wait_status(status, NULL))
                g_error("%s failed: %s%s (this test needs root, mkfs.ext4 and loop devices)", cmd, out ?: "",
                        err ?: "");
}

static void test_io_errors_fail_swap_and_lose_nothing(void) {
        g_autofree char *file = g_strdup_printf("%s/ioerr-vm.swap", state_dir);
        g_autofree char *path = NULL, *err = NULL;
        uint64_t *copy, x = UINT64_C(0x243f6a8885a308d3);
        uint8_t *guest;
        int memfd;

        path = harness_memory_path("ioerr-vm");
        guest = harness_map_guarded_memory(&h, "ioerr-vm", VM_SIZE, &memfd);
        copy = g_malloc(VM_SIZE);
        for (uint64_t i = 0; i < VM_SIZE / 8; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                copy[i] = x | 1;
        }
        memcpy(guest, copy, VM_SIZE);

        /* Writes fail part way: the pages that left come back, nothing is
         * lost, LastError names the file and the error. */
        disk_limit(20 * MIB);
        g_assert_null(harness_call_error(&h, MEMMGR, path, MEMORY1, "SwapOut", NULL, ""));
        harness_wait_swap_state(&h, path, "failed");
        err = get_string(path, "LastError");
        g_test_message("LastError after a failed write: %s", err);
        g_assert_nonnull(strstr(err, file));
        g_assert_nonnull(strstr(err, "cannot write guest memory"));
        g_assert_nonnull(strstr(err, g_strerror(EIO)));
        g_clear_pointer(&err, g_free);
        g_assert_cmpuint(harness_memory_u64(&h, path, "ResidentBytes"), ==, VM_SIZE);
        g_assert_cmpuint(harness_memory_u64(&h, path, "SwappedBytes"), ==, 0);
        g_assert_true(memcmp(guest, copy, VM_SIZE) == 0);

        /* The disk is whole again: out it goes. */
        disk_limit(0);
        g_assert_null(harness_call_error(&h, MEMMGR, path, MEMORY1, "SwapOut", NULL, ""));
        harness_wait_swap_state(&h, path, "active");
        g_assert_cmpuint(harness_memory_u64(&h, path, "SwappedBytes"), ==, VM_SIZE);

        /* Reads fail: SwapIn stops as failed, saying where; the pages stay
         * in the file (never a wrong page), memmgr keeps serving. */
        disk_limit(3 * MIB);
        g_assert_null(harness_call_error(&h, MEMMGR, path, MEMORY1, "SwapIn", NULL, ""));
        harness_wait_swap_state(&h, path, "failed");
        err = get_string(path, "LastError");
        g_test_message("LastError after a failed read: %s", err);
        g_assert_nonnull(strstr(err, file));
        g_assert_nonnull(strstr(err, "cannot read guest memory"));
        g_assert_nonnull(strstr(err, g_strerror(EIO)));
        g_clear_pointer(&err, g_free);
        g_assert_cmpuint(harness_memory_u64(&h, path, "SwappedBytes"), >, 0);

        /* Whole again: SwapIn from failed brings every page back intact. */
        disk_limit(0);
        g_assert_null(harness_call_error(&h, MEMMGR, path, MEMORY1, "SwapIn", NULL, ""));
        harness_wait_swap_state(&h, path, "ready");
        g_assert_cmpuint(harness_memory_u64(&h, path, "ResidentBytes"), ==, VM_SIZE);
        g_assert_true(memcmp(guest, copy, VM_SIZE) == 0);

        g_assert_null(harness_call_error(&h, MEMMGR, MEMMGR_PATH, MEMMGR, "FreeMemory", NULL, "s", "ioerr-vm"));
        munmap(guest, VM_SIZE);
        close(memfd);
        g_free(copy);
}

int main(int argc, char **argv) {
        g_autofree char *dir = NULL, *image = NULL, *cmd = NULL;
        char loop_path[64];
        int r, ctl, n, img_fd;

        g_test_init(&argc, &argv, NULL);
        /* A mount namespace of our own: the file system vanishes with this
         * process and every child (bus daemon, memmgr), whatever happens. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                g_error("a private mount namespace for the state dir: %s (run as root)", g_strerror(errno));
        dir = g_dir_make_tmp("polyvm-swap-ioerror-XXXXXX", NULL);
        g_assert_nonnull(dir);
        image = g_strdup_printf("%s/disk.img", dir);
        state_dir = g_strdup_printf("%s/state", dir);
        g_assert_cmpint(mkdir(state_dir, 0700), ==, 0);
        img_fd = open(image, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        g_assert_cmpint(img_fd, >=, 0);
        g_assert_cmpint(ftruncate(img_fd, DISK_SIZE), ==, 0);
        /* Few inodes and no journal: the file system's own blocks stay
         * at the start of the disk, where the limits above never reach. */
        cmd = g_strdup_printf("mkfs.ext4 -q -F -N 64 -O ^has_journal %s", image);
        run(cmd);
        ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0)
                g_error("/dev/loop-control: %s (this test needs loop devices)", g_strerror(errno));
        n = ioctl(ctl, LOOP_CTL_GET_FREE);
        g_assert_cmpint(n, >=, 0);
        close(ctl);
        snprintf(loop_path, sizeof(loop_path), "/dev/loop%d", n);
        loop_fd = open(loop_path, O_RDWR | O_CLOEXEC);
        g_assert_cmpint(loop_fd, >=, 0);
        g_assert_cmpint(ioctl(loop_fd, LOOP_SET_FD, img_fd), ==, 0);
        {
                struct loop_info64 info = { .lo_flags = LO_FLAGS_AUTOCLEAR };
                g_assert_cmpint(ioctl(loop_fd, LOOP_SET_STATUS64, &info), ==, 0);
        }
        close(img_fd);
        g_assert_cmpint(mount(loop_path, state_dir, "ext4", 0, NULL), ==, 0);
        g_setenv("STATE_DIRECTORY", state_dir, TRUE);
        harness_start(&h);
        g_test_add_func("/swap/io-errors-fail-swap-and-lose-nothing", test_io_errors_fail_swap_and_lose_nothing);
        r = g_test_run();
        harness_stop(&h);
        disk_limit(0);
        (void) umount2(state_dir, MNT_DETACH);
        close(loop_fd); /* autoclear: the device goes once unmounted and closed */
        (void) unlink(image);
        (void) rmdir(state_dir);
        (void) rmdir(dir);
        return r;
}
