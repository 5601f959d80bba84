/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polyvm-memmgr over a real private bus, activated from the build tree:
 * the memfd it hands out, its Memory1 objects, its named errors, and that
 * memory goes away with FreeMemory or with its owner's connection. */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus-util.h"
#include "harness.h"

#define MEMMGR "org.polyvm.MemoryManager1"
#define MEMMGR_PATH "/org/polyvm/MemoryManager1"
#define MIB (UINT64_C(1) << 20)

static struct harness h;

/* AllocateMemory on bus; returns a dup of the fd (or -1) and the path, or
 * the error name in *error_name. */
static int allocate(sd_bus *bus, const char *vm, uint64_t size, char **ret_path, char **error_name,
                    char **message) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;
        int fd, r;

        r = sd_bus_call_method(bus, MEMMGR, MEMMGR_PATH, MEMMGR, "AllocateMemory", &error, &reply, "st", vm, size);
        if (r < 0) {
                g_assert_true(sd_bus_error_is_set(&error));
                if (error_name)
                        *error_name = g_strdup(error.name);
                if (message)
                        *message = g_strdup(error.message);
                sd_bus_error_free(&error);
                return -1;
        }
        g_assert_cmpint(sd_bus_message_read(reply, "oh", &path, &fd), >, 0);
        if (ret_path)
                *ret_path = g_strdup(path);
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        g_assert_cmpint(fd, >=, 0);
        sd_bus_message_unref(reply);
        return fd;
}

/* Whether GetManagedObjects on the root lists path. */
static gboolean managed_object_exists(const char *path) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        gboolean found = FALSE;
        const char *p;
        int r;

        r = sd_bus_call_method(h.bus, MEMMGR, MEMMGR_PATH, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects",
                               &error, &reply, NULL);
        g_assert_cmpint(r, >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}"), >, 0);
        while ((r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                g_assert_cmpint(sd_bus_message_read(reply, "o", &p), >, 0);
                if (strcmp(p, path) == 0)
                        found = TRUE;
                g_assert_cmpint(sd_bus_message_skip(reply, "a{sa{sv}}"), >=, 0);
                g_assert_cmpint(sd_bus_message_exit_container(reply), >=, 0);
        }
        g_assert_cmpint(r, >=, 0);
        sd_bus_message_unref(reply);
        return found;
}

static gboolean wait_object_gone(const char *path, int timeout_ms) {
        for (int waited = 0; waited < timeout_ms; waited += 20) {
                if (!managed_object_exists(path))
                        return TRUE;
                g_usleep(20 * 1000);
        }
        return !managed_object_exists(path);
}

static void free_memory(const char *vm) {
        g_autofree char *err = harness_call_error(&h, MEMMGR, MEMMGR_PATH, MEMMGR, "FreeMemory", NULL, "s", vm);
        g_assert_null(err);
}

static void test_allocate_returns_sealed_memfd_of_size(void) {
        g_autofree char *path = NULL, *want = harness_memory_path("alpha");
        struct stat st;
        char link[64], target[256] = "";
        int fd;
        char *p;

        fd = allocate(h.bus, "alpha", 6 * MIB, &path, NULL, NULL);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpstr(path, ==, want);
        g_assert_cmpint(fstat(fd, &st), ==, 0);
        g_assert_cmpint(st.st_size, ==, 6 * MIB);
        g_assert_cmpint(fcntl(fd, F_GET_SEALS), ==, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
        g_assert_cmpint(ftruncate(fd, 8 * MIB), ==, -1);
        g_assert_cmpint(errno, ==, EPERM);
        g_snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        g_assert_cmpint(readlink(link, target, sizeof(target) - 1), >, 0);
        g_assert_true(g_str_has_prefix(target, "/memfd:polyvm-guest:alpha"));

        /* It is real shared memory, and stays valid after FreeMemory. */
        p = mmap(NULL, 6 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        g_assert_true(p != MAP_FAILED);
        p[6 * MIB - 1] = 7;
        free_memory("alpha");
        g_assert_cmpint(p[6 * MIB - 1], ==, 7);
        munmap(p, 6 * MIB);
        close(fd);
}

static void test_memory_object_has_properties(void) {
        g_autofree char *path = harness_memory_path("beta-1.x");
        sd_bus_error error = SD_BUS_ERROR_NULL;
        g_autofree char *vm = NULL;
        uint64_t size = 0;
        int fd;

        fd = allocate(h.bus, "beta-1.x", 2 * MIB, NULL, NULL, NULL);
        g_assert_cmpint(fd, >=, 0);
        g_assert_true(managed_object_exists(path));
        vm = harness_get_string(&h, MEMMGR, path, "org.polyvm.Memory1", "Vm");
        g_assert_cmpstr(vm, ==, "beta-1.x");
        g_assert_cmpint(sd_bus_get_property_trivial(h.bus, MEMMGR, path, "org.polyvm.Memory1", "Size", &error, 't',
                                                    &size), >=, 0);
        g_assert_cmpuint(size, ==, 2 * MIB);

        free_memory("beta-1.x");
        g_assert_false(managed_object_exists(path));
        g_assert_cmpint(sd_bus_get_property_trivial(h.bus, MEMMGR, path, "org.polyvm.Memory1", "Size", &error, 't',
                                                    &size), <, 0);
        sd_bus_error_free(&error);
        close(fd);
}

static int on_interfaces_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        GPtrArray *seen = userdata;
        const char *path;

        if (sd_bus_message_read(m, "o", &path) > 0)
                g_ptr_array_add(seen, g_strdup_printf("%s %s", sd_bus_message_get_member(m), path));
        return 0;
}

static gboolean wait_seen(GPtrArray *seen, const char *entry) {
        for (int i = 0; i < 250; i++) {
                for (guint j = 0; j < seen->len; j++)
                        if (strcmp(g_ptr_array_index(seen, j), entry) == 0)
                                return TRUE;
                if (sd_bus_process(h.bus, NULL) == 0)
                        (void) sd_bus_wait(h.bus, 20 * 1000);
        }
        return FALSE;
}

static void test_object_manager_signals(void) {
        g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *path = harness_memory_path("gamma");
        g_autofree char *added = g_strdup_printf("InterfacesAdded %s", path);
        g_autofree char *removed = g_strdup_printf("InterfacesRemoved %s", path);
        sd_bus_slot *slot = NULL;
        int fd;

        g_assert_cmpint(sd_bus_match_signal(h.bus, &slot, MEMMGR, MEMMGR_PATH, "org.freedesktop.DBus.ObjectManager",
                                            NULL, on_interfaces_signal, seen), >=, 0);
        fd = allocate(h.bus, "gamma", 2 * MIB, NULL, NULL, NULL);
        g_assert_cmpint(fd, >=, 0);
        g_assert_true(wait_seen(seen, added));
        free_memory("gamma");
        g_assert_true(wait_seen(seen, removed));
        sd_bus_slot_unref(slot);
        close(fd);
}

static void assert_allocate_error(const char *vm, uint64_t size, const char *name, const char *in_message) {
        g_autofree char *err = NULL, *message = NULL;

        g_assert_cmpint(allocate(h.bus, vm, size, NULL, &err, &message), ==, -1);
        g_assert_cmpstr(err, ==, name);
        if (in_message && !strstr(message, in_message))
                g_error("expected \"%s\" in \"%s\"", in_message, message);
}

static void test_bad_input_gets_named_errors(void) {
        g_autofree char *long_name = g_strnfill(65, 'n');
        g_autofree char *meminfo = NULL, *err = NULL, *message = NULL;
        g_autofree char *huge = NULL;
        pid_t pid;
        uint64_t total_kib = 0;
        const char *p;
        int fd;

        fd = allocate(h.bus, "delta", 2 * MIB, NULL, NULL, NULL);
        g_assert_cmpint(fd, >=, 0);
        pid = harness_name_pid(&h, MEMMGR);
        g_assert_cmpint(pid, >, 0);

        g_assert_true(g_file_get_contents("/proc/meminfo", &meminfo, NULL, NULL));
        p = strstr(meminfo, "MemTotal:");
        g_assert_nonnull(p);
        total_kib = g_ascii_strtoull(p + 9, NULL, 10);
        huge = g_strdup_printf("%" G_GUINT64_FORMAT, total_kib * 1024);

        assert_allocate_error("delta", 2 * MIB, "org.polyvm.Error.VmExists", "delta");
        assert_allocate_error("zero", 0, "org.polyvm.Error.InvalidArguments", "size");
        assert_allocate_error("odd", MIB + 1, "org.polyvm.Error.InvalidArguments", "1048577");
        assert_allocate_error("huge", (total_kib * 1024 + 2 * MIB) & ~(2 * MIB - 1),
                              "org.polyvm.Error.InvalidArguments", huge);
        assert_allocate_error("max", UINT64_MAX & ~(UINT64_C(4095)), "org.polyvm.Error.InvalidArguments", huge);
        assert_allocate_error("", 2 * MIB, "org.polyvm.Error.InvalidArguments", "empty");
        assert_allocate_error("a/b", 2 * MIB, "org.polyvm.Error.InvalidArguments", "'/'");
        assert_allocate_error(long_name, 2 * MIB, "org.polyvm.Error.InvalidArguments", "64");
        assert_allocate_error("sp ace", 2 * MIB, "org.polyvm.Error.InvalidArguments", "' '");
        assert_allocate_error("..", 2 * MIB, "org.polyvm.Error.InvalidArguments", "'.'");

        err = harness_call_error(&h, MEMMGR, MEMMGR_PATH, MEMMGR, "FreeMemory", &message, "s", "nope");
        g_assert_cmpstr(err, ==, "org.polyvm.Error.NoSuchVm");
        g_assert_nonnull(strstr(message, "nope"));

        /* Still the same process, still answering, nothing half-made left. */
        g_assert_cmpint(harness_name_pid(&h, MEMMGR), ==, pid);
        g_assert_true(managed_object_exists(MEMMGR_PATH "/vm/delta"));
        g_assert_false(managed_object_exists(MEMMGR_PATH "/vm/zero"));
        free_memory("delta");
        close(fd);
}

static void test_client_disconnect_frees_its_memory(void) {
        g_autofree char *mine = harness_memory_path("mine"), *theirs = harness_memory_path("theirs");
        sd_bus *client = NULL;
        int fd_theirs, fd_mine;

        g_assert_cmpint(bus_open(h.address, &client), >=, 0);
        fd_theirs = allocate(client, "theirs", 2 * MIB, NULL, NULL, NULL);
        g_assert_cmpint(fd_theirs, >=, 0);
        fd_mine = allocate(h.bus, "mine", 2 * MIB, NULL, NULL, NULL);
        g_assert_cmpint(fd_mine, >=, 0);
        g_assert_true(managed_object_exists(theirs));

        client = sd_bus_flush_close_unref(client);
        g_assert_true(wait_object_gone(theirs, 5000));
        /* Only the leaver's memory goes. */
        g_assert_true(managed_object_exists(mine));
        /* The name is free again. */
        close(fd_theirs);
        fd_theirs = allocate(h.bus, "theirs", 4 * MIB, NULL, NULL, NULL);
        g_assert_cmpint(fd_theirs, >=, 0);
        free_memory("theirs");
        free_memory("mine");
        close(fd_theirs);
        close(fd_mine);
}

int main(int argc, char **argv) {
        int r;

        g_test_init(&argc, &argv, NULL);
        harness_start(&h);
        g_test_add_func("/memmgr/allocate-returns-sealed-memfd-of-size", test_allocate_returns_sealed_memfd_of_size);
        g_test_add_func("/memmgr/memory-object-has-properties", test_memory_object_has_properties);
        g_test_add_func("/memmgr/object-manager-signals", test_object_manager_signals);
        g_test_add_func("/memmgr/bad-input-gets-named-errors", test_bad_input_gets_named_errors);
        g_test_add_func("/memmgr/client-disconnect-frees-its-memory", test_client_disconnect_frees_its_memory);
        r = g_test_run();
        harness_stop(&h);
        return r;
}
