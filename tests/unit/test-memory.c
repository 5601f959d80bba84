/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memmgr's pure parts: VM name and size rules, MemTotal parsing, the memfd. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memory.h" /* before glib.h, whose MIN/MAX win */
#include <glib.h>

#define MIB (UINT64_C(1) << 20)

static void test_name_accepts_valid_names(void) {
        char err[256];
        g_assert_cmpint(memory_check_vm_name("demo", err, sizeof(err)), ==, 0);
        g_assert_cmpint(memory_check_vm_name("a-b_c.d-09-XYZ", err, sizeof(err)), ==, 0);
        g_assert_cmpint(memory_check_vm_name("x", err, sizeof(err)), ==, 0);
        g_autofree char *max = g_strnfill(MEMORY_VM_NAME_MAX, 'a');
        g_assert_cmpint(memory_check_vm_name(max, err, sizeof(err)), ==, 0);
}

static void test_name_rejects_empty(void) {
        char err[256] = "";
        g_assert_cmpint(memory_check_vm_name("", err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "empty"));
        g_assert_cmpint(memory_check_vm_name(NULL, err, sizeof(err)), ==, -EINVAL);
}

static void test_name_rejects_slash_and_other_characters(void) {
        const char *bad[] = { "a/b", "/", "a b", "a:b", "ä", "a\nb", "vm$", "a*" };
        char err[256];

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                err[0] = 0;
                g_assert_cmpint(memory_check_vm_name(bad[i], err, sizeof(err)), ==, -EINVAL);
                g_assert_nonnull(strstr(err, "allowed are"));
        }
        memory_check_vm_name("a/b", err, sizeof(err));
        g_assert_nonnull(strstr(err, "'/'"));
}

static void test_name_rejects_too_long(void) {
        g_autofree char *name = g_strnfill(MEMORY_VM_NAME_MAX + 1, 'a');
        char err[256] = "";
        g_assert_cmpint(memory_check_vm_name(name, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "65"));
        g_assert_nonnull(strstr(err, "64"));
}

static void test_name_rejects_leading_dot(void) {
        char err[256];
        g_assert_cmpint(memory_check_vm_name(".", err, sizeof(err)), ==, -EINVAL);
        g_assert_cmpint(memory_check_vm_name("..", err, sizeof(err)), ==, -EINVAL);
        g_assert_cmpint(memory_check_vm_name(".hidden", err, sizeof(err)), ==, -EINVAL);
}

static void test_size_accepts_whole_pages_up_to_limit(void) {
        uint64_t page = (uint64_t) sysconf(_SC_PAGESIZE);
        char err[256];
        g_assert_cmpint(memory_check_size(page, 0, err, sizeof(err)), ==, 0);
        g_assert_cmpint(memory_check_size(256 * MIB, 1024 * MIB, err, sizeof(err)), ==, 0);
        g_assert_cmpint(memory_check_size(17 * MIB, 1024 * MIB, err, sizeof(err)), ==, 0);
        g_assert_cmpint(memory_check_size(1024 * MIB, 1024 * MIB, err, sizeof(err)), ==, 0);
}

static void test_size_rejects_zero(void) {
        char err[256] = "";
        g_assert_cmpint(memory_check_size(0, 0, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "size"));
}

static void test_size_rejects_partial_page_naming_value(void) {
        char err[256] = "";
        g_assert_cmpint(memory_check_size(MIB + 1, 0, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "1048577"));
        g_assert_nonnull(strstr(err, "page size"));
}

static void test_size_rejects_more_than_host_naming_limit(void) {
        char err[256] = "";
        g_assert_cmpint(memory_check_size(2048 * MIB, 1024 * MIB, err, sizeof(err)), ==, -EINVAL);
        g_assert_nonnull(strstr(err, "2147483648"));
        g_assert_nonnull(strstr(err, "1073741824"));
        g_assert_cmpint(memory_check_size(UINT64_MAX - 4095, 1024 * MIB, err, sizeof(err)), ==, -EINVAL);
}

static void test_meminfo_parses_memtotal(void) {
        uint64_t v = 0;
        g_assert_cmpint(memory_parse_meminfo("MemTotal:       24567892 kB\nMemFree: 1 kB\n", &v), ==, 0);
        g_assert_cmpuint(v, ==, UINT64_C(24567892) * 1024);
        g_assert_cmpint(memory_parse_meminfo("MemFree: 1 kB\nMemTotal: 2048 kB\n", &v), ==, 0);
        g_assert_cmpuint(v, ==, 2048 * 1024);
}

static void test_meminfo_rejects_missing_or_garbled(void) {
        uint64_t v = 7;
        g_assert_cmpint(memory_parse_meminfo("MemFree: 1 kB\n", &v), ==, -ENOENT);
        g_assert_cmpint(memory_parse_meminfo("", &v), ==, -ENOENT);
        g_assert_cmpint(memory_parse_meminfo("MemTotal: lots\n", &v), ==, -EBADMSG);
        g_assert_cmpint(memory_parse_meminfo("MemTotal: 12 MB\n", &v), ==, -EBADMSG);
        g_assert_cmpint(memory_parse_meminfo("MemTotal: 99999999999999999999 kB\n", &v), <, 0);
        g_assert_cmpuint(v, ==, 7);
}

static void test_host_total_is_plausible(void) {
        uint64_t v = 0;
        g_assert_cmpint(memory_host_total(&v), ==, 0);
        g_assert_cmpuint(v, >, 16 * MIB);
}

static void test_memfd_has_size_name_and_seals(void) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        char link[64], target[256] = "";

        g_assert_cmpint(memory_memfd_new("demo", 4 * MIB, &fd), ==, 0);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(fstat(fd, &st), ==, 0);
        g_assert_cmpint(st.st_size, ==, 4 * MIB);
        g_assert_cmpint(fcntl(fd, F_GET_SEALS), ==, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
        g_assert_cmpint(fcntl(fd, F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        g_assert_cmpint(readlink(link, target, sizeof(target) - 1), >, 0);
        g_assert_nonnull(strstr(target, "memfd:polyvm-guest:demo"));
}

static void test_memfd_refuses_grow_and_shrink(void) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        g_assert_cmpint(memory_memfd_new("seals", 2 * MIB, &fd), ==, 0);
        g_assert_cmpint(ftruncate(fd, 4 * MIB), ==, -1);
        g_assert_cmpint(errno, ==, EPERM);
        g_assert_cmpint(ftruncate(fd, MIB), ==, -1);
        g_assert_cmpint(errno, ==, EPERM);
        /* writing past the end would grow it */
        g_assert_cmpint(pwrite(fd, "x", 1, 2 * MIB), ==, -1);
        g_assert_cmpint(errno, ==, EPERM);
        /* and the seals themselves are sealed */
        g_assert_cmpint(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), ==, -1);
        g_assert_cmpint(errno, ==, EPERM);
        g_assert_cmpint(fstat(fd, &st), ==, 0);
        g_assert_cmpint(st.st_size, ==, 2 * MIB);
}

static void test_memfd_is_shared_writable_memory(void) {
        _cleanup_close_ int fd = -1;
        char *p, *q;

        g_assert_cmpint(memory_memfd_new("rw", 2 * MIB, &fd), ==, 0);
        p = mmap(NULL, 2 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        q = mmap(NULL, 2 * MIB, PROT_READ, MAP_SHARED, fd, 0);
        g_assert_true(p != MAP_FAILED && q != MAP_FAILED);
        g_assert_cmpint(q[2 * MIB - 1], ==, 0);
        p[2 * MIB - 1] = 0x5a;
        g_assert_cmpint(q[2 * MIB - 1], ==, 0x5a);
        munmap(p, 2 * MIB);
        munmap(q, 2 * MIB);
}

static void test_vm_memory_new_sets_path_and_fd(void) {
        _cleanup_(vm_memory_freep) struct vm_memory *m = NULL;

        g_assert_cmpint(vm_memory_new("my-vm.1", 2 * MIB, "/org/polyvm/MemoryManager1/vm", &m), ==, 0);
        g_assert_cmpstr(m->vm, ==, "my-vm.1");
        g_assert_cmpuint(m->size, ==, 2 * MIB);
        g_assert_cmpint(m->memfd, >=, 0);
        /* sd_bus_path_encode escapes '-' and '.' */
        g_assert_true(g_str_has_prefix(m->path, "/org/polyvm/MemoryManager1/vm/"));
        g_assert_null(strchr(m->path + strlen("/org/polyvm/MemoryManager1/vm/"), '.'));
        g_assert_null(strchr(m->path + strlen("/org/polyvm/MemoryManager1/vm/"), '-'));
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/memory/name/accepts-valid-names", test_name_accepts_valid_names);
        g_test_add_func("/memory/name/rejects-empty", test_name_rejects_empty);
        g_test_add_func("/memory/name/rejects-slash-and-other-characters", test_name_rejects_slash_and_other_characters);
        g_test_add_func("/memory/name/rejects-too-long", test_name_rejects_too_long);
        g_test_add_func("/memory/name/rejects-leading-dot", test_name_rejects_leading_dot);
        g_test_add_func("/memory/size/accepts-whole-pages-up-to-limit", test_size_accepts_whole_pages_up_to_limit);
        g_test_add_func("/memory/size/rejects-zero", test_size_rejects_zero);
        g_test_add_func("/memory/size/rejects-partial-page-naming-value", test_size_rejects_partial_page_naming_value);
        g_test_add_func("/memory/size/rejects-more-than-host-naming-limit", test_size_rejects_more_than_host_naming_limit);
        g_test_add_func("/memory/meminfo/parses-memtotal", test_meminfo_parses_memtotal);
        g_test_add_func("/memory/meminfo/rejects-missing-or-garbled", test_meminfo_rejects_missing_or_garbled);
        g_test_add_func("/memory/meminfo/host-total-is-plausible", test_host_total_is_plausible);
        g_test_add_func("/memory/memfd/has-size-name-and-seals", test_memfd_has_size_name_and_seals);
        g_test_add_func("/memory/memfd/refuses-grow-and-shrink", test_memfd_refuses_grow_and_shrink);
        g_test_add_func("/memory/memfd/is-shared-writable-memory", test_memfd_is_shared_writable_memory);
        g_test_add_func("/memory/vm-memory/new-sets-path-and-fd", test_vm_memory_new_sets_path_and_fd);
        return g_test_run();
}
