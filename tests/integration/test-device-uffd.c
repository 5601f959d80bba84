/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Swap with a jailed device mapping guest memory, end to end and without
 * KVM: this test owns a VM's memory and registers the main uffd as the
 * launcher does; a "memcheck" device made by the real devmgr gets the memfd
 * (PROTO_FD_MEMORY), maps it in its jail and hands its uffd through devmgr
 * to memmgr. Then the device reads and writes guest memory while it is
 * swapped out and while it is leaving: its faults are served from the swap
 * file through its own uffd, and nothing it wrote is lost. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "memcheck.h"
#include "proto.h"

#define MEMMGR "org.polyvm.MemoryManager1"
#define MEMMGR_PATH "/org/polyvm/MemoryManager1"
#define MEMORY1 "org.polyvm.Memory1"
#define DEVMGR "org.polyvm.DeviceManager1"
#define DEVMGR_PATH "/org/polyvm/DeviceManager1"
#define MIB (UINT64_C(1) << 20)
#define VM_SIZE (64 * MIB)
#define PORT MEMCHECK_DEFAULT_PORT
#define SEED UINT64_C(0xd3f1ce)

static struct harness h;
static uint64_t page_size;

/* ---- the VM's memory, owned by this test as the launcher would ---- */

struct vm {
        const char *name;
        char *path;
        int memfd;
        volatile uint64_t *mem;
};

static uint64_t pattern(uint64_t word) {
        uint64_t x = (SEED ^ word) * UINT64_C(0x9e3779b97f4a7c15);
        return (x ^ (x >> 29)) | 1; /* never zero: no zero pages */
}

static void vm_start(struct vm *vm, const char *name) {
        vm->name = name;
        vm->path = harness_memory_path(name);
        vm->mem = harness_map_guarded_memory(&h, name, VM_SIZE, &vm->memfd);
        for (uint64_t w = 0; w < VM_SIZE / 8; w++)
                vm->mem[w] = pattern(w);
}

static void vm_stop(struct vm *vm) {
        g_assert_null(harness_call_error(&h, MEMMGR, MEMMGR_PATH, MEMMGR, "FreeMemory", NULL, "s", vm->name));
        munmap((void *) vm->mem, VM_SIZE);
        close(vm->memfd);
        g_free(vm->path);
}

static void set_num_static_devices(struct vm *vm, uint32_t n) {
        g_assert_null(harness_call_error(&h, MEMMGR, MEMMGR_PATH, MEMMGR, "SetNumStaticDevices", NULL, "su",
                                         vm->name, n));
}

static void swap(struct vm *vm, const char *method, const char *until) {
        g_assert_null(harness_call_error(&h, MEMMGR, vm->path, MEMORY1, method, NULL, ""));
        if (until && !harness_wait_property(&h, MEMMGR, vm->path, MEMORY1, "SwapState", until, 60000)) {
                g_autofree char *err = harness_get_string(&h, MEMMGR, vm->path, MEMORY1, "LastError");
                g_error("%s did not reach %s (LastError: %s)", method, until, err);
        }
}

struct uffd_row {
        uint32_t index;
        int is_static;
        uint32_t pid;
};

static GArray *get_uffds(struct vm *vm) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        GArray *rows = g_array_new(FALSE, FALSE, sizeof(struct uffd_row));
        struct uffd_row row;
        int r;

        g_assert_cmpint(sd_bus_get_property(h.bus, MEMMGR, vm->path, MEMORY1, "Uffds", &error, &reply, "a(ubu)"), >=,
                        0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "(ubu)"), >, 0);
        while ((r = sd_bus_message_read(reply, "(ubu)", &row.index, &row.is_static, &row.pid)) > 0)
                g_array_append_val(rows, row);
        g_assert_cmpint(r, ==, 0);
        sd_bus_message_unref(reply);
        return rows;
}

static GArray *wait_uffds(struct vm *vm, guint count) {
        for (int i = 0; i < 500; i++) {
                GArray *rows = get_uffds(vm);
                if (rows->len == count)
                        return rows;
                g_array_unref(rows);
                g_usleep(10000);
        }
        g_error("%s: the uffd list did not reach %u entries", vm->name, count);
}

static uint64_t uffd_faults(struct vm *vm, guint index) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint64_t v = 0, n = 0;
        guint i = 0;

        g_assert_cmpint(sd_bus_get_property(h.bus, MEMMGR, vm->path, MEMORY1, "UffdFaults", &error, &reply, "at"), >=,
                        0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "t"), >, 0);
        while (sd_bus_message_read(reply, "t", &v) > 0)
                if (i++ == index)
                        n = v;
        sd_bus_message_unref(reply);
        g_assert_cmpuint(i, >, index);
        return n;
}

/* ---- the device: a jailed memcheck through the real devmgr ---- */

struct device {
        char *path;
        int endpoint;
        pid_t pid;
};

static void device_start(struct device *d, struct vm *vm) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        struct proto_attach_fd a = { .role = PROTO_FD_MEMORY };
        char err[256] = "";
        const char *p;
        uint32_t pid;
        int fd;

        if (sd_bus_call_method(h.bus, DEVMGR, DEVMGR_PATH, DEVMGR, "CreateDevice", &error, &reply, "sss", vm->name,
                               "memcheck", "{}") < 0)
                g_error("CreateDevice(memcheck): %s: %s", error.name, error.message);
        g_assert_cmpint(sd_bus_message_read(reply, "ohu", &p, &fd, &pid), >, 0);
        d->path = g_strdup(p);
        d->endpoint = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        g_assert_cmpint(d->endpoint, >=, 0);
        d->pid = (pid_t) pid;
        sd_bus_message_unref(reply);

        g_assert_cmpint(proto_call(d->endpoint, PROTO_ACTIVATE, NULL, 0, NULL, 0, NULL, 5000, NULL, 0), ==, 0);
        /* Guest memory comes after Activate, under the seccomp filter. */
        if (proto_call(d->endpoint, PROTO_ATTACH_FD, &a, sizeof(a), &vm->memfd, 1, NULL, 5000, err, sizeof(err)) < 0)
                g_error("AttachFd(MEMORY): %s", err);
}

static void device_access(struct device *d, uint16_t type, uint64_t offset, uint32_t len, const void *data,
                          void *out) {
        struct proto_access a = { .address = PORT + offset, .offset = offset, .len = len };
        struct proto_msg reply;
        char err[256] = "";

        if (data)
                memcpy(a.data, data, len);
        if (proto_call(d->endpoint, type, &a, sizeof(a), NULL, 0, out ? &reply : NULL, 10000, err, sizeof(err)) < 0)
                g_error("device access at %" G_GUINT64_FORMAT ": %s", offset, err);
        if (out) {
                memcpy(out, reply.body.data.data, len);
                proto_msg_done(&reply);
        }
}

static uint64_t device_read(struct device *d, uint64_t gpa) {
        uint64_t v = 0;

        device_access(d, PROTO_WRITE, MEMCHECK_GPA, 8, &gpa, NULL);
        device_access(d, PROTO_READ, MEMCHECK_DATA, 8, NULL, &v);
        return v;
}

/* Returns once the write landed: a Write has no reply, the Read after it
 * on the same endpoint does. */
static void device_write(struct device *d, uint64_t gpa, uint64_t v) {
        uint32_t status = 0;

        device_access(d, PROTO_WRITE, MEMCHECK_GPA, 8, &gpa, NULL);
        device_access(d, PROTO_WRITE, MEMCHECK_DATA, 8, &v, NULL);
        device_access(d, PROTO_READ, MEMCHECK_STATUS, 4, NULL, &status);
        g_assert_cmpuint(status, ==, MEMCHECK_STATUS_MAPPED);
}

static void device_kill(struct device *d) {
        g_assert_cmpint(kill(d->pid, SIGKILL), ==, 0);
        g_assert_true(harness_wait_property(&h, DEVMGR, d->path, "org.polyvm.Device1", "State", "failed", 5000));
        close(d->endpoint);
        g_free(d->path);
}

/* ---- the tests ---- */

struct written {
        uint64_t gpa, value;
};

/* Guest memory as this test's own mapping sees it: the pattern, except
 * where the device wrote. */
static void check_memory(struct vm *vm, const GArray *writes) {
        g_autoptr(GHashTable) last = g_hash_table_new(g_int64_hash, g_int64_equal);
        uint64_t bad = 0;

        /* The last value written to each word (later writes win). */
        for (guint i = 0; i < writes->len; i++) {
                struct written *w = &g_array_index(writes, struct written, i);
                g_hash_table_insert(last, &w->gpa, &w->value);
        }
        for (uint64_t w = 0; w < VM_SIZE / 8; w++) {
                uint64_t gpa = w * 8, want = pattern(w), *v = g_hash_table_lookup(last, &gpa);

                if (v)
                        want = *v;
                if (vm->mem[w] != want && bad++ < 4)
                        g_test_message("word at 0x%" G_GINT64_MODIFIER "x: 0x%" G_GINT64_MODIFIER "x, want 0x%"
                                       G_GINT64_MODIFIER "x", w * 8, vm->mem[w], want);
        }
        g_assert_cmpuint(bad, ==, 0);
}

/* One word per page, on a page that is still out (never touched since
 * SwapOut): its page index picks the word. */
static uint64_t gpa_of(uint64_t page) {
        return page * page_size + (page % (page_size / 8)) * 8;
}

static void run_device_swap(gboolean is_static) {
        g_autoptr(GArray) writes = g_array_new(FALSE, FALSE, sizeof(struct written));
        g_autoptr(GArray) rows = NULL;
        uint64_t n_pages = VM_SIZE / page_size, faults, during = 0;
        struct device d;
        struct vm vm;

        vm_start(&vm, is_static ? "dev-uffd-static" : "dev-uffd-dynamic");
        set_num_static_devices(&vm, is_static ? 1 : 0);
        device_start(&d, &vm);

        /* The device's uffd reached memmgr through devmgr, with its pid. */
        rows = wait_uffds(&vm, 2);
        g_assert_cmpuint(g_array_index(rows, struct uffd_row, 1).pid, ==, (uint32_t) d.pid);
        g_assert_cmpint(g_array_index(rows, struct uffd_row, 1).is_static, ==, is_static);
        /* It reads what we wrote, before any swap. */
        g_assert_cmphex(device_read(&d, gpa_of(3)), ==, pattern(gpa_of(3) / 8));

        /* Out: the device reads pages back from the file, through its uffd. */
        swap(&vm, "SwapOut", "active");
        g_assert_cmpuint(harness_memory_u64(&h, vm.path, "ResidentBytes"), <, VM_SIZE / 50);
        faults = uffd_faults(&vm, 1);
        for (uint64_t page = 0; page < n_pages; page += 97)
                g_assert_cmphex(device_read(&d, gpa_of(page)), ==, pattern(gpa_of(page) / 8));
        g_assert_cmpuint(uffd_faults(&vm, 1), >=, faults + n_pages / 97);
        g_test_message("device faults served: %" G_GUINT64_FORMAT, uffd_faults(&vm, 1) - faults);

        /* Writes while out, to pages still out and to pages it read back. */
        for (uint64_t page = 5; page < n_pages; page += 101) {
                struct written w = { gpa_of(page) + 8, UINT64_C(0xabc0000000000000) | page };
                device_write(&d, w.gpa, w.value);
                g_array_append_val(writes, w);
        }

        /* Writes while pages leave: in again, then out with the device
         * writing all along; every one must survive. */
        swap(&vm, "SwapIn", "ready");
        check_memory(&vm, writes);
        swap(&vm, "SwapOut", NULL);
        for (uint64_t i = 0;; i++) {
                g_autofree char *before = harness_get_string(&h, MEMMGR, vm.path, MEMORY1, "SwapState");
                g_autofree char *after = NULL;
                struct written w = { gpa_of((i * 7919) % n_pages) + 16, UINT64_C(0xdef0000000000000) | i };

                device_write(&d, w.gpa, w.value);
                g_array_append_val(writes, w);
                after = harness_get_string(&h, MEMMGR, vm.path, MEMORY1, "SwapState");
                if (strcmp(after, "swapping-out") != 0)
                        break;
                if (strcmp(before, "swapping-out") == 0)
                        during++;
        }
        g_test_message("device writes while swapping out: %" G_GUINT64_FORMAT, during);
        g_assert_cmpuint(during, >, 0);
        g_assert_true(harness_wait_property(&h, MEMMGR, vm.path, MEMORY1, "SwapState", "active", 60000));

        /* The device dies while out: collected if dynamic, kept if static. */
        device_kill(&d);
        if (is_static) {
                g_usleep(300 * 1000); /* past a collection and its retry */
                g_array_unref(rows);
                rows = wait_uffds(&vm, 2);
        } else
                g_array_unref(wait_uffds(&vm, 1));

        /* In: everything, nothing lost. */
        swap(&vm, "SwapIn", "ready");
        check_memory(&vm, writes);
        vm_stop(&vm);
}

static void test_dynamic_device_swaps_and_is_collected(void) {
        run_device_swap(FALSE);
}

static void test_static_device_swaps_and_is_kept(void) {
        run_device_swap(TRUE);
}

/* A device that maps guest memory while the VM is out is guarded at once:
 * it reads the pages from the file, never zeros. */
static void test_device_attached_while_swapped_out(void) {
        g_autoptr(GArray) writes = g_array_new(FALSE, FALSE, sizeof(struct written));
        g_autoptr(GArray) rows = NULL;
        uint64_t n_pages = VM_SIZE / page_size;
        struct device d;
        struct vm vm;

        vm_start(&vm, "dev-uffd-late");
        swap(&vm, "SwapOut", "active");
        device_start(&d, &vm);
        /* Whatever it touches before memmgr has its uffd waits for it. */
        g_assert_cmphex(device_read(&d, gpa_of(1)), ==, pattern(gpa_of(1) / 8));
        rows = wait_uffds(&vm, 2);
        g_assert_cmpuint(g_array_index(rows, struct uffd_row, 1).pid, ==, (uint32_t) d.pid);
        for (uint64_t page = 2; page < n_pages; page += 89)
                g_assert_cmphex(device_read(&d, gpa_of(page)), ==, pattern(gpa_of(page) / 8));
        g_assert_cmpuint(uffd_faults(&vm, 1), >=, n_pages / 89);
        swap(&vm, "SwapIn", "ready");
        check_memory(&vm, writes);
        device_kill(&d);
        vm_stop(&vm);
}

int main(int argc, char **argv) {
        g_autofree char *dir = NULL;
        int r;

        g_test_init(&argc, &argv, NULL);
        page_size = (uint64_t) sysconf(_SC_PAGESIZE);
        dir = g_dir_make_tmp("polyvm-device-uffd-XXXXXX", NULL);
        g_assert_nonnull(dir);
        g_setenv("STATE_DIRECTORY", dir, TRUE);
        harness_start(&h);
        g_test_add_func("/device-uffd/dynamic-device-swaps-and-is-collected", test_dynamic_device_swaps_and_is_collected);
        g_test_add_func("/device-uffd/static-device-swaps-and-is-kept", test_static_device_swaps_and_is_kept);
        g_test_add_func("/device-uffd/device-attached-while-swapped-out", test_device_attached_while_swapped_out);
        r = g_test_run();
        harness_stop(&h);
        (void) rmdir(dir);
        return r;
}
